-- GET verification handshake: hook:verify(query) -> status, body.
local helpers = require "helpers"
local cjson = require "cjson"
local webhook = require "whatsapp.webhook"

local TOKEN = "vibecoding"

--- Call hook:verify and check the shape of the answer: a status and a string body.
local function verify(hook, query)
  local n = select("#", hook:verify(query))
  local status, body = hook:verify(query)
  assert.are.equal(2, n, "verify must return exactly status, body")
  assert.are.equal("number", type(status))
  assert.are.equal("string", type(body))
  return status, body
end

local function q(mode, token, challenge)
  return { ["hub.mode"] = mode, ["hub.verify_token"] = token, ["hub.challenge"] = challenge }
end

describe("hook:verify fixtures", function()
  local files = helpers.list("verification")

  it("has the verification fixtures", function()
    assert.is_true(#files >= 6)
  end)

  for _, name in ipairs(files) do
    local fx = helpers.fixture("verification/" .. name)
    it(("%s -> %d"):format(name, fx.expected_status), function()
      local hook = webhook.new { verify_token = fx.configured_verify_token, app_secret = "s" }
      local status, body = verify(hook, fx.query)
      assert.are.equal(fx.expected_status, status)
      if fx.expected_body ~= cjson.null then
        assert.are.equal(fx.expected_body, body)
      else
        -- a reason, never the challenge or the configured token
        assert.are_not.equal(fx.query["hub.challenge"], body)
        assert.is_nil(body:find(fx.configured_verify_token, 1, true))
      end
    end)
  end
end)

describe("hook:verify", function()
  local hook = webhook.new { verify_token = TOKEN, app_secret = "app_secret_value" }

  it("echoes the challenge verbatim", function()
    for _, c in ipairs { "1158201444", "0042", "-1", "1e3", " spaced ", "<b>&amp;</b>",
      "\195\169\240\159\152\128", string.rep("x", 10000), "a\0b" } do
      local status, body = verify(hook, q("subscribe", TOKEN, c))
      assert.are.equal(200, status)
      assert.are.equal(c, body)
    end
  end)

  it("400 when the challenge is missing", function()
    local status, body = verify(hook, q("subscribe", TOKEN, nil))
    assert.are.equal(400, status)
    assert.is_true(#body > 0)
  end)

  it("403 for a wrong token (prefix, longer, other case, padded)", function()
    for _, t in ipairs { "wrong", "vibecodin", "vibecodingX", "VIBECODING", " vibecoding",
      "vibecoding ", "vibecoding\0", "" } do
      local status = verify(hook, q("subscribe", t, "123"))
      assert.are.equal(403, status, ("token %q"):format(t))
    end
  end)

  it("403 when the token or the mode is missing", function()
    assert.are.equal(403, (verify(hook, q("subscribe", nil, "123"))))
    assert.are.equal(403, (verify(hook, q(nil, TOKEN, "123"))))
    assert.are.equal(403, (verify(hook, {})))
  end)

  it("403 for a mode other than subscribe", function()
    for _, m in ipairs { "unsubscribe", "Subscribe", "SUBSCRIBE", "subscribe ", "" } do
      assert.are.equal(403, (verify(hook, q(m, TOKEN, "123"))), ("mode %q"):format(m))
    end
  end)

  it("403 when a value is a table (repeated query parameter)", function()
    assert.are.equal(403, (verify(hook, q("subscribe", { TOKEN }, "123"))))
    assert.are.equal(403, (verify(hook, q("subscribe", { TOKEN, TOKEN }, "123"))))
    assert.are.equal(403, (verify(hook, q({ "subscribe" }, TOKEN, "123"))))
  end)

  it("403 when the challenge is a table (repeated hub.challenge)", function()
    assert.are.equal(403, (verify(hook, q("subscribe", TOKEN, { "123", "456" }))))
  end)

  it("403 for values of other types", function()
    local numeric = webhook.new { verify_token = "42", app_secret = "s" }
    assert.are.equal(403, (verify(numeric, q("subscribe", true, "123"))))
    assert.are.equal(403, (verify(hook, q(true, TOKEN, "123"))))
  end)

  it("never puts the configured token or the app secret in a reason", function()
    for _, query in ipairs { q("subscribe", "wrong", "1"), q("x", TOKEN, "1"), q("subscribe", TOKEN),
      q("subscribe", { TOKEN }, "1") } do
      local _, body = verify(hook, query)
      assert.is_nil(body:find(TOKEN, 1, true))
      assert.is_nil(body:find("app_secret_value", 1, true))
    end
  end)
end)

describe("hook:verify without a verify_token configured", function()
  it("403 for every request", function()
    local hook = webhook.new { app_secret = "s" }
    assert.are.equal(403, (verify(hook, q("subscribe", "vibecoding", "123"))))
    assert.are.equal(403, (verify(hook, q("subscribe", "", "123"))))
    assert.are.equal(403, (verify(hook, q("subscribe", nil, "123"))))
    local open = webhook.new { skip_signature = true }
    assert.are.equal(403, (verify(open, q("subscribe", "", "123"))))
    assert.are.equal(403, (verify(open, q("subscribe", nil, "123"))))
  end)
end)

describe("hook:verify with empty strings", function()
  it("an empty configured token never verifies (raises at new, or 403)", function()
    local ok, hook = pcall(webhook.new, { verify_token = "", app_secret = "s" })
    if ok then
      assert.are.equal(403, (verify(hook, q("subscribe", "", "123"))))
      assert.are.equal(403, (verify(hook, q("subscribe", nil, "123"))))
    end
  end)

  it("an empty challenge with the right token is echoed or refused, never a crash", function()
    local hook = webhook.new { verify_token = TOKEN, app_secret = "s" }
    local status, body = verify(hook, q("subscribe", TOKEN, ""))
    assert.is_true(status == 200 and body == "" or status == 400,
      ("got %s %q"):format(tostring(status), body))
  end)
end)

describe("webhook.new verify_token argument", function()
  it("raises for a verify_token that is not a string", function()
    assert.has_error(function() webhook.new { verify_token = 42, app_secret = "s" } end)
    assert.has_error(function() webhook.new { verify_token = { "a" }, app_secret = "s" } end)
    assert.has_error(function() webhook.new { verify_token = true, app_secret = "s" } end)
  end)
end)
