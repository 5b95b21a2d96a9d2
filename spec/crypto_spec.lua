-- HMAC-SHA256 (whatsapp.crypto), X-Hub-Signature-256 signing/checking (whatsapp.webhook),
-- appsecret_proof, constant-time equality, and collectability of webhook objects.
local helpers = require "helpers"
local cjson = require "cjson"
local crypto = require "whatsapp.crypto"
local webhook = require "whatsapp.webhook"

--- Bytes from a hex string ("0b0c" -> "\11\12").
local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

--- A 64-char lower-case hex digest.
local function assert_hex64(s)
  assert.is_string(s)
  assert.are.equal(64, #s)
  assert.is_truthy(s:match("^[0-9a-f]+$"), "not lower-case hex: " .. s)
end

describe("whatsapp.crypto.hmac_sha256", function()
  -- RFC 4231, section 4: HMAC-SHA-256 test vectors (keys/data written out from the RFC).
  local rfc4231 = {
    { n = 1, key = string.rep("\11", 20), data = "Hi There",
      mac = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
    { n = 2, key = "Jefe", data = "what do ya want for nothing?",
      mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
    { n = 3, key = string.rep("\170", 20), data = string.rep("\221", 50),
      mac = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
    { n = 4, key = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
      data = string.rep("\205", 50),
      mac = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
    -- case 5: the RFC gives only the first 128 bits of the output
    { n = 5, key = string.rep("\12", 20), data = "Test With Truncation",
      mac = "a3b6167473100ee06e0c796c2955552b", truncated = true },
    { n = 6, key = string.rep("\170", 131),
      data = "Test Using Larger Than Block-Size Key - Hash Key First",
      mac = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
    { n = 7, key = string.rep("\170", 131),
      data = "This is a test using a larger than block-size key and a larger than block-size data."
        .. " The key needs to be hashed before being used by the HMAC algorithm.",
      mac = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
  }

  for _, v in ipairs(rfc4231) do
    it("RFC 4231 test case " .. v.n, function()
      local got = crypto.hmac_sha256(v.key, v.data)
      assert_hex64(got)
      if v.truncated then
        assert.are.equal(v.mac, got:sub(1, #v.mac))
      else
        assert.are.equal(v.mac, got)
      end
    end)
  end

  it("published vector: key 'secret', message 'test'", function()
    assert.are.equal("0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914",
      crypto.hmac_sha256("secret", "test"))
  end)

  -- SHA-256 padding and HMAC block-size boundaries (key "k" * klen, message "m" * mlen).
  local boundaries = {
    { 1, 55, "f34adb810de21416d98b08b0587fd82fd71d8825d9d742cb731059ac5122d92c" },
    { 1, 56, "4eab6ba51500389e351573e6536d07686cef99348b6bce14c72ad88d37e3e043" },
    { 1, 63, "c03f12715a073f856de19b4e79ce550a8e6c7310f5eb3c71b2936c5f2704ff7e" },
    { 1, 64, "5025145616b124703b0750b9069f4dba2facdca2be088fcb16eaeb2e8755f964" },
    { 1, 65, "f8657161cf5fe484087886e4abb2ee4e5e875a02e23dc50eaf02b3f9b358a5ee" },
    { 63, 3, "ae3b79be01b02a121a48b543120102c1e57c18ce87e3a5ffe719cc9c397cb71f" },
    { 64, 3, "e06eb4f3ebdb4a0627cc74628d37c551bd7711093903587be835435d2f0605df" },
    { 65, 3, "b462577eddd97adcb674eef8118581c5b5dcbb301c16da5f3d56cef7d73244cb" },
    { 64, 64, "6c5d941ffa5c767ab48ab913e070f40807115a8478907ad61bee6f2283c72966" },
    { 128, 119, "300160ad6eeb64ee860cba19b4ad6b5019ac3a48a5a79dd725c174f323cd5923" },
    { 200, 1000, "f2a749f7feec39acb0d2236debf655818d8de421af490b5e809b6034982a98de" },
  }
  it("block and padding boundaries (key/message lengths around 55, 56, 64 bytes)", function()
    for _, b in ipairs(boundaries) do
      local klen, mlen, mac = b[1], b[2], b[3]
      assert.are.equal(mac, crypto.hmac_sha256(string.rep("k", klen), string.rep("m", mlen)),
        ("key length %d, message length %d"):format(klen, mlen))
    end
  end)

  it("empty key and empty message", function()
    assert.are.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
      crypto.hmac_sha256("", ""))
  end)

  it("NUL bytes in key and message are data, not terminators", function()
    assert.are.equal("d846dc7408aafb0032c18fe477e530dcffc8dd88bd95953f4ea555df894338be",
      crypto.hmac_sha256("k\0ey", "m\0sg"))
    assert.are_not.equal(crypto.hmac_sha256("k", "m"), crypto.hmac_sha256("k\0ey", "m\0sg"))
  end)

  it("every byte value in key and message", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert.are.equal("b61f300e0fd3a9479cc09fa8709a30dba518182dd7cb3e492e9a888fd87b3697",
      crypto.hmac_sha256(all, all))
  end)

  it("a 1 MB message", function()
    assert.are.equal("62f034e2808b6f60f65459e4102739e6780a9ea0dec8af40f3f6da40f1bb3ede",
      crypto.hmac_sha256("key", string.rep("abcdefghij", 100000)))
  end)

  it("is deterministic across calls (no state carried over)", function()
    local a = crypto.hmac_sha256("Jefe", "what do ya want for nothing?")
    crypto.hmac_sha256(string.rep("x", 1000), string.rep("y", 5000))
    local b = crypto.hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.are.equal(a, b)
  end)

  -- The webhook check does not call hmac_sha256: a Verifier keeps the SHA-256 states
  -- of its prepared key blocks and copies them per body. Same vectors, through it.
  it("a Verifier (the webhook check's prepared keys) gives the same MACs", function()
    local core = require "whatsapp.core"
    local cases = {}
    for _, v in ipairs(rfc4231) do
      if not v.truncated then cases[#cases + 1] = { v.key, v.data, v.mac } end
    end
    for _, b in ipairs(boundaries) do
      cases[#cases + 1] = { string.rep("k", b[1]), string.rep("m", b[2]), b[3] }
    end
    cases[#cases + 1] = { "", "", "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad" }
    cases[#cases + 1] = { "k\0ey", "m\0sg",
      "d846dc7408aafb0032c18fe477e530dcffc8dd88bd95953f4ea555df894338be" }
    for i, c in ipairs(cases) do
      local key, data, mac = c[1], c[2], c[3]
      local v = core.verifier({ key })
      local flipped = mac:sub(1, 63) .. (mac:sub(64) == "0" and "1" or "0")
      assert.is_true(v:check(data, "sha256=" .. mac), "case " .. i)
      assert.is_true(v:check(data, "sha256=" .. mac:upper()), "case " .. i .. " upper-case")
      assert.is_false(v:check(data, "sha256=" .. flipped), "case " .. i .. " flipped")
      assert.is_false(v:check(data .. "x", "sha256=" .. mac), "case " .. i .. " longer body")
      -- Twice more: a check must leave the prepared states as they were.
      assert.is_true(v:check(data, "sha256=" .. mac), "case " .. i .. " again")
      local other = core.verifier({ "other secret", key, "third" })
      assert.is_true(other:check(data, "sha256=" .. mac), "case " .. i .. " among 3 secrets")
      v:close()
      other:close()
    end
  end)
end)

describe("whatsapp.crypto.appsecret_proof", function()
  it("is the hex HMAC-SHA256 of the access token keyed by the app secret", function()
    local proof = crypto.appsecret_proof("ACCESS_TOKEN_PLACEHOLDER", "test_app_secret")
    assert_hex64(proof)
    assert.are.equal("621d4d77d11187fa601e0bace1bd6bc02de6fc36c7a51405003a4444503ad50a", proof)
    assert.are.equal(crypto.hmac_sha256("test_app_secret", "ACCESS_TOKEN_PLACEHOLDER"), proof)
  end)

  it("does not swap key and message", function()
    assert.are_not.equal("38c9d515f64ee014d11c7049f31e0531849ec6e82a981f77dbbd480a06a4ca5d",
      crypto.appsecret_proof("ACCESS_TOKEN_PLACEHOLDER", "test_app_secret"))
  end)
end)

describe("whatsapp.crypto.equal", function()
  it("is true for equal strings", function()
    assert.is_true(crypto.equal("abc", "abc"))
    assert.is_true(crypto.equal("", ""))
    assert.is_true(crypto.equal("a\0b", "a\0b"))
    local long = string.rep("z", 100000)
    assert.is_true(crypto.equal(long, string.rep("z", 100000)))
  end)

  it("is false for different strings", function()
    assert.is_false(crypto.equal("abc", "abd"))
    assert.is_false(crypto.equal("abc", "xbc"))
    assert.is_false(crypto.equal("abc", "ABC"))
  end)

  it("is false for different lengths, including prefixes and the empty string", function()
    assert.is_false(crypto.equal("abc", "abcd"))
    assert.is_false(crypto.equal("abcd", "abc"))
    assert.is_false(crypto.equal("", "a"))
    assert.is_false(crypto.equal("a", ""))
  end)

  it("compares past NUL bytes", function()
    assert.is_false(crypto.equal("a\0b", "a\0c"))
    assert.is_false(crypto.equal("a\0", "a"))
  end)

  it("returns a boolean", function()
    assert.are.equal("boolean", type(crypto.equal("x", "x")))
    assert.are.equal("boolean", type(crypto.equal("x", "y")))
  end)
end)

describe("whatsapp.webhook.sign", function()
  it("gives sha256= and 64 lower-case hex digits", function()
    local sig = webhook.sign("test", "secret")
    assert.are.equal("sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914", sig)
    local body = helpers.fixture_raw("webhooks/messages_text_basic.json")
    local s = webhook.sign(body, helpers.SECRET)
    assert.is_truthy(s:match("^sha256=[0-9a-f]+$"))
    assert.are.equal(7 + 64, #s)
    assert.are.equal("sha256=" .. crypto.hmac_sha256(helpers.SECRET, body), s)
  end)

  it("round-trips through check_signature", function()
    local body = "{\"a\":\"\\u00e9\"}\n"
    assert.is_true(webhook.check_signature(body, webhook.sign(body, "s1"), "s1"))
    assert.is_false(webhook.check_signature(body, webhook.sign(body, "s1"), "s2"))
  end)
end)

describe("whatsapp.webhook.check_signature", function()
  local files = helpers.list("signatures")

  it("has the signature fixtures", function()
    assert.is_true(#files >= 12)
  end)

  for _, name in ipairs(files) do
    local fx = helpers.fixture("signatures/" .. name)
    -- expected_valid null = implementation choice; this library accepts upper-case hex
    local expected = fx.expected_valid
    if expected == cjson.null then expected = true end
    it(("fixture %s -> %s"):format(name, tostring(expected)), function()
      assert.are.equal(fx.raw_body_length, #fx.raw_body)
      local got = webhook.check_signature(fx.raw_body, fx.header_value, fx.app_secret)
      assert.are.equal("boolean", type(got))
      assert.are.equal(expected, got)
    end)
  end

  local fx = helpers.fixture("signatures/valid_text_compact.json")

  it("key rotation: a list of secrets, the second one matches", function()
    assert.is_true(webhook.check_signature(fx.raw_body, fx.header_value,
      { "previous_secret", fx.app_secret }))
    assert.is_true(webhook.check_signature(fx.raw_body, fx.header_value,
      { fx.app_secret, "next_secret" }))
    assert.is_false(webhook.check_signature(fx.raw_body, fx.header_value,
      { "previous_secret", "next_secret" }))
  end)

  it("accepts upper-case and mixed-case hex", function()
    local hex = fx.header_value:sub(8)
    assert.is_true(webhook.check_signature(fx.raw_body, "sha256=" .. hex:upper(), fx.app_secret))
    local mixed = hex:gsub("()(%x)", function(i, c) if i % 2 == 0 then return c:upper() end end)
    assert.is_true(webhook.check_signature(fx.raw_body, "sha256=" .. mixed, fx.app_secret))
  end)

  it("returns false (no error) for nil, malformed and wrong header values", function()
    local hex = fx.header_value:sub(8)
    local bad = {
      "", "sha256=", "sha256", hex, "SHA256=" .. hex, "sha1=" .. hex,
      "sha256=" .. hex:sub(1, 63), "sha256=" .. hex .. "0", "sha256=" .. hex:sub(1, 63) .. "g",
      "sha256=" .. hex:sub(1, 63) .. " ", " sha256=" .. hex, "sha256=" .. hex .. " ",
      "sha256= " .. hex:sub(2), "sha256=" .. hex .. "\0", "sha256=" .. string.rep("0", 64),
      "sha256=" .. hex .. ",sha256=" .. hex,
    }
    for _, h in ipairs(bad) do
      local ok, res = pcall(webhook.check_signature, fx.raw_body, h, fx.app_secret)
      assert.is_true(ok, "raised for " .. ("%q"):format(h) .. ": " .. tostring(res))
      assert.are.equal(false, res, ("%q"):format(h))
    end
    local ok, res = pcall(webhook.check_signature, fx.raw_body, nil, fx.app_secret)
    assert.is_true(ok, tostring(res))
    assert.are.equal(false, res)
    ok, res = pcall(webhook.check_signature, fx.raw_body, 42, fx.app_secret)
    assert.is_true(ok, tostring(res))
    assert.are.equal(false, res)
  end)

  it("is bound to the exact raw bytes", function()
    assert.is_false(webhook.check_signature(fx.raw_body .. " ", fx.header_value, fx.app_secret))
    assert.is_false(webhook.check_signature(fx.raw_body:sub(1, -2), fx.header_value, fx.app_secret))
    assert.is_false(webhook.check_signature("", fx.header_value, fx.app_secret))
  end)
end)

describe("webhook objects", function()
  -- Created in a separate function so no stack slot of the test keeps the last one alive.
  local function make_hooks(weak, n)
    for i = 1, n do
      weak[i] = webhook.new { app_secret = "secret" .. i, verify_token = "token" .. i }
    end
    for i = n + 1, 2 * n do
      weak[i] = webhook.new { app_secret = { "a" .. i, "b" .. i }, max_body = 1024 + i }
    end
  end

  it("are collectable", function()
    local weak = setmetatable({}, { __mode = "v" })
    make_hooks(weak, 500)
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("are not collected while referenced (control for the test above)", function()
    local weak = setmetatable({}, { __mode = "v" })
    local keep = webhook.new { app_secret = "kept" }
    weak.keep = keep
    make_hooks(weak, 10)
    collectgarbage()
    collectgarbage()
    local k, v = next(weak)
    assert.are.equal("keep", k)
    assert.are.equal(keep, v)
    assert.is_nil(next(weak, k))
  end)

  it("stay usable while referenced", function()
    local hook = webhook.new { app_secret = "s", verify_token = "t" }
    collectgarbage()
    collectgarbage()
    local body = "{\"object\":\"whatsapp_business_account\",\"entry\":[]}"
    local events = hook:parse(body, { ["X-Hub-Signature-256"] = webhook.sign(body, "s") })
    assert.are.same({}, events)
  end)
end)
