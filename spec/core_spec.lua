-- The C boundary: userdata lifetimes, closed objects, lazy raw, the error object.
local core = require "whatsapp.core"
local webhook = require "whatsapp.webhook"
local errors = require "whatsapp.errors"
local helpers = require "helpers"
local cjson = require "cjson"

local function collectable(make)
  local weak = setmetatable({}, { __mode = "v" })
  for i = 1, 50 do weak[i] = make() end
  collectgarbage(); collectgarbage()
  return next(weak) == nil
end

describe("whatsapp.core", function()
  it("reports its version and the Lua it was built for", function()
    assert.equal("0.1.0", core._VERSION)
    assert.equal(rawget(_G, "jit") and "luajit" or _VERSION, core._LUA)
    assert.equal(require("whatsapp")._VERSION, core._VERSION)
  end)

  it("null is the same value as cjson.null", function()
    assert.equal(cjson.null, core.null)
    assert.equal(cjson.null, webhook.null)
  end)

  describe("Verifier", function()
    it("is collectable", function()
      assert.is_true(collectable(function() return core.verifier{ "a", "b" } end))
    end)

    it("close is idempotent and a closed verifier refuses use", function()
      local v = core.verifier{ "k" }
      v:close(); v:close()
      assert.has_error(function() v:check("x", "sha256=" .. ("0"):rep(64)) end)
      assert.matches("closed", tostring(v))
    end)

    it("never prints key material", function()
      local v = core.verifier{ "super-secret-key" }
      assert.not_matches("super%-secret", tostring(v))
      assert.matches("1 secret", tostring(v))
    end)

    it("refuses bad secret lists", function()
      assert.has_error(function() core.verifier{} end)
      assert.has_error(function() core.verifier{ 1 } end)
      assert.has_error(function() core.verifier("k") end)
      local many = {}
      for i = 1, 17 do many[i] = "k" .. i end
      assert.has_error(function() core.verifier(many) end)
    end)

    it("gives the same answer as the one-shot check", function()
      local v = core.verifier{ "k1", "k2" }
      local body = helpers.fixture_raw("webhooks/messages_text_basic.json")
      for _, key in ipairs{ "k1", "k2", "k3" } do
        local sig = webhook.sign(body, key)
        assert.equal(core.check_signature(body, sig, "k1", "k2"), v:check(body, sig))
      end
      assert.is_false(v:check(body, nil))
      assert.is_false(v:check(body, 42))
    end)

    if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
      it("is released by a to-be-closed variable", function()
        local chunk = assert(load([[
          local core = ...
          local v <close> = core.verifier{ "k" }
          return v
        ]]))
        local v = chunk(core)
        assert.has_error(function() v:check("x", "y") end)
      end)
    end
  end)

  describe("Parser", function()
    it("is collectable and closes twice", function()
      assert.is_true(collectable(function() return core.parser() end))
      local p = core.parser()
      p:close(); p:close()
      assert.has_error(function() p:parse("{}") end)
    end)

    it("an error raised inside the walk leaves the parser usable, with its own buffers", function()
      -- Under LuaJIT the walk calls a Lua function that makes the events (csrc/webhook.c,
      -- WA_RECORDS), so a debug hook can raise in the middle of it; under Lua 5.4 the walk
      -- runs no Lua code and this spec only checks the normal path.
      local p = core.parser()
      local body = helpers.read("bench/bodies/batch.json")
      -- the parser a batch's lazy fields use: upvalue 3 of its events' __index
      local function parser_of(ev)
        local _, v = debug.getupvalue(getmetatable(ev).__index, 3)
        return v
      end
      local first = assert(p:parse(body))
      assert.equal(p, parser_of(first[1]), "the parser's own buffers serve the batch")
      if rawget(_G, "jit") then
        debug.sethook(function()
          if debug.getinfo(2, "S").source == "=whatsapp.core(build)" then
            debug.sethook()
            error("hook raised in the walk")
          end
        end, "c")
        local ok, err = pcall(p.parse, p, body)
        debug.sethook()
        assert.is_false(ok)
        assert.matches("hook raised in the walk", tostring(err))
      end
      local again = assert(p:parse(body))
      assert.equal(50, #again)
      assert.equal(p, parser_of(again[1]), "after the error the parser reuses its buffers")
      assert.equal(first[7].id, again[7].raw.id)
    end)

    it("closed in the middle of its own parse, frees its buffers only after it", function()
      -- A finalizer or a debug hook may close a parser while its tape is being read. Under
      -- LuaJIT the hook runs inside the walk's builder (the walk goes on reading the tape
      -- after it); under Lua 5.4 finalizers that close the parser run during the parse and
      -- during lazy decoding, whenever the collector gets to them.
      local body = helpers.read("bench/bodies/batch.json")
      local want = assert(core.parser():parse(body))
      local function check(events)
        assert.equal(#want, #events)
        for i = 1, #want, 7 do
          assert.equal(want[i].id, events[i].id)
          assert.equal(want[i].text, events[i].text)
          assert.same(want[i].raw, events[i].raw)
        end
      end
      if rawget(_G, "jit") then
        local p = core.parser()
        local closed = 0
        debug.sethook(function()
          if closed == 0 and debug.getinfo(2, "S").source == "=whatsapp.core(build)" then
            closed = closed + 1
            p:close()
          end
        end, "c")
        local ok, events = pcall(p.parse, p, body)
        debug.sethook()
        assert(ok, events)
        assert.equal(1, closed)
        check(events)
        assert.has_error(function() p:parse(body) end)
      else
        -- (in a process of its own, whose heap is small: see spec/close_in_use.lua)
        local cmd = ("LUA_CPATH=%q lua5.4 spec/close_in_use.lua bench/bodies/batch.json 2>&1; "
          .. 'echo "exit=$?"'):format(package.cpath)
        local out = assert(io.popen(cmd)):read("a")
        local in_parse, in_raw, status = out:match("^(%d+)\t(%d+)\nexit=(%d+)\n$")
        assert(status == "0", out)
        assert.is_true(tonumber(in_parse) > 0, "no parse was closed in the middle")
        assert.is_true(tonumber(in_raw) > 0, "no lazy decoding was closed in the middle")
      end
    end)

    it("a parse run from inside another's builder leaves the outer one its own records", function()
      -- Lua code (a finalizer, a hook) may run inside the LuaJIT builder and parse another
      -- body: the outer builder must go on with its own records.
      if not rawget(_G, "jit") then return end
      local outer = helpers.read("bench/bodies/batch.json")
      local inner = helpers.read("bench/bodies/single.json")
      local want = assert(core.parser():parse(outer))
      local p, fired = core.parser(), false
      debug.sethook(function()
        if not fired and debug.getinfo(2, "S").source == "=whatsapp.core(build)" then
          fired = true
          assert(core.parser():parse(inner))
        end
      end, "", 50)
      local ok, events = pcall(p.parse, p, outer)
      debug.sethook()
      assert(ok, events)
      assert.is_true(fired)
      assert.equal(#want, #events)
      for i = 1, #want do
        assert.equal(want[i].id, events[i].id)
        assert.equal(want[i].text, events[i].text)
        assert.equal(want[i].contact and want[i].contact.name, events[i].contact and events[i].contact.name)
      end
    end)

    it("has a builder that, called from Lua, reads no records", function()
      -- jit.attach hands Lua code the builder (here the debug library does, from the
      -- constants table, upvalue 1 of parse): outside a parse it must find nothing to read.
      if not rawget(_G, "jit") then return end
      local _, consts = debug.getupvalue(getmetatable(core.parser()).__index.parse, 1)
      local builder = consts[2]
      assert.is_function(builder)
      local events, mt = {}, {}
      builder(events, mt, "messages", "1", 1, "2", "3")
      assert.is_nil(next(events))
      assert.is_nil(next(mt))
      assert(core.parser():parse(helpers.read("bench/bodies/single.json")))
      builder(events, mt, "messages", "1", 1, "2", "3")
      assert.is_nil(next(events))
    end)

    it("raises on argument errors, returns nil + message for bad JSON", function()
      local p = core.parser()
      assert.has_error(function() p:parse({}) end)
      assert.has_error(function() p:parse("{}", 42) end)
      local ok, msg, path = p:parse("{")
      assert.is_nil(ok)
      assert.matches("invalid JSON", msg)
      assert.equal("", path)
    end)

    it("keeps working across many parses of different sizes", function()
      local p = core.parser()
      local small = helpers.fixture_raw("webhooks/messages_text_basic.json")
      local parts = {}
      for i = 1, 3000 do parts[i] = ('{"id":"w%d","from":"1","type":"text","text":{"body":"x"}}'):format(i) end
      local big = '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",'
        .. '"value":{"messages":[' .. table.concat(parts, ",") .. ']}}]}]}'
      for _ = 1, 3 do
        assert.equal(1, #assert(p:parse(small)))
        assert.equal(3000, #assert(p:parse(big)))
      end
      local evs = assert(p:parse(big))
      assert.equal("w3000", evs[3000].id)
    end)
  end)

  describe("timestamps", function()
    local p = core.parser()
    local function ts(json)
      local body = '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{'
        .. '"field":"messages","value":{"messages":[{"from":"1","id":"x","type":"text",'
        .. '"text":{"body":"b"},"timestamp":' .. json .. '}]}}]}]}'
      return assert(p:parse(body))[1].timestamp
    end

    it("are read from strings of 1 to 18 digits, with a sign", function()
      local digits = "918273645546372819"
      for n = 1, 18 do
        local s = digits:sub(1, n)
        assert.equal(tonumber(s), ts('"' .. s .. '"'), s)
        -- (18 characters at most, the sign included)
        if n < 18 then assert.equal(-tonumber(s), ts('"-' .. s .. '"'), "-" .. s) end
      end
      assert.is_nil(ts('"-' .. digits .. '"'))
      assert.equal(1750280005, ts("1750280005"))
      assert.equal(0, ts('"0000000000"'))
    end)

    it("are left out when a string is not all digits or is too long", function()
      -- every position of 8-, 10- and 16-digit strings, with bytes on both sides of '0'..'9'
      for _, n in ipairs({ 8, 10, 16 }) do
        for i = 1, n do
          for _, c in ipairs({ "/", ":", "a", " ", "-", "." }) do
            if i > 1 or c ~= "-" then
              local s = ("1"):rep(i - 1) .. c .. ("1"):rep(n - i)
              assert.is_nil(ts('"' .. s .. '"'), s)
            end
          end
        end
      end
      for _, s in ipairs({ "", "-", "--1", "1e9", "1234567890123456789", " 1", "1 " }) do
        assert.is_nil(ts('"' .. s .. '"'), s)
      end
    end)
  end)

  describe("contact tables", function()
    it("are one per contact and change, shared by that sender's events", function()
      local function change(contacts, messages, statuses)
        return ('{"field":"messages","value":{"metadata":{"phone_number_id":"1"},'
          .. '"contacts":[%s],"messages":[%s],"statuses":[%s]}}'):format(contacts, messages,
          statuses or "")
      end
      local function msg(id, from)
        return ('{"id":"%s","from":"%s","type":"text","text":{"body":"x"}}'):format(id, from)
      end
      local body = '{"object":"whatsapp_business_account","entry":[{"id":"9","changes":['
        .. change('{"profile":{"name":"A"},"wa_id":"111"}',
             msg("m1", "111") .. "," .. msg("m2", "111") .. "," .. msg("m3", "999"),
             '{"id":"s1","status":"read","recipient_id":"111"}') .. ","
        .. change('{"profile":{"name":"A2"},"wa_id":"111"}', msg("m4", "111")) .. ","
        .. change('{"profile":{"name":"B"},"wa_id":"222"},{"profile":{"name":"C"},"wa_id":"333"}',
             msg("m5", "333") .. "," .. msg("m6", "222") .. "," .. msg("m7", "333"))
        .. ']}]}'
      local hook = webhook.new{ skip_signature = true }
      local evs = assert(hook:parse(body))
      assert.equal(8, #evs)
      -- one contact in the change: every event of it gets that contact, the same table
      assert.equal("A", evs[1].contact.name)
      assert.equal(evs[1].contact, evs[2].contact)
      assert.equal(evs[1].contact, evs[3].contact)
      assert.equal(evs[1].contact, evs[4].contact)
      -- the next change has its own
      assert.equal("A2", evs[5].contact.name)
      assert.not_equal(evs[1].contact, evs[5].contact)
      -- two contacts: one table each, shared by each sender's events
      assert.equal("C", evs[6].contact.name)
      assert.equal("B", evs[7].contact.name)
      assert.equal(evs[6].contact, evs[8].contact)
      assert.not_equal(evs[6].contact, evs[7].contact)
    end)
  end)

  describe("raw", function()
    local hook = webhook.new{ app_secret = helpers.SECRET }
    local body = helpers.fixture_raw("webhooks/messages_batch_two_messages.json")

    it("is decoded on first access and then cached in the event", function()
      local ev = assert(hook:parse(body, helpers.signed(body)))[2]
      assert.is_nil(rawget(ev, "raw"))
      local r = ev.raw
      assert.equal("table", type(r))
      assert.equal(r, rawget(ev, "raw"))
      assert.equal(r, ev.raw)
      assert.same(cjson.decode(body).entry[1].changes[1].value.messages[2], r)
    end)

    it("does not answer for other missing keys", function()
      local ev = assert(hook:parse(body, helpers.signed(body)))[1]
      assert.is_nil(ev.no_such_field)
      assert.is_nil(ev[1])
    end)

    it("outlives the body string and the hook", function()
      local evs = assert(webhook.new{ app_secret = "k" }:parse(body, helpers.signed(body, "k")))
      collectgarbage(); collectgarbage()
      assert.equal("table", type(evs[1].raw))
    end)

    -- The lazy fields remember a node of the parse; when the parser has parsed other bodies
    -- since, the batch's own body is parsed again.
    it("is right after the same hook has parsed other bodies, in any order", function()
      local other = helpers.fixture_raw("webhooks/statuses_delivered_cbp.json")
      local doc, odoc = cjson.decode(body), cjson.decode(other)
      local a = assert(hook:parse(body, helpers.signed(body)))
      local b = assert(hook:parse(other, helpers.signed(other)))
      local a2 = assert(hook:parse(body, helpers.signed(body)))
      assert.same(odoc.entry[1].changes[1].value.statuses[1], b[1].raw)
      assert.same(doc.entry[1].changes[1].value.messages[2], a[2].raw)
      assert.same(odoc.entry[1].changes[1].value.statuses[1].pricing, b[1].pricing)
      assert.same(doc.entry[1].changes[1].value.messages[1], a[1].raw)
      assert.same(doc.entry[1].changes[1].value.messages[1], a2[1].raw)
      assert.not_equal(a[1].raw, a2[1].raw)
    end)

    -- Each event finds its source through the batch's own list of its events, not the
    -- caller's, which may be reordered, cut down or filled with other values.
    it("is each event's own after the caller reorders and empties its list", function()
      local doc = cjson.decode(body).entry[1].changes[1].value.messages
      local evs = assert(hook:parse(body, helpers.signed(body)))
      local first, second = evs[1], evs[2]
      evs[1], evs[2] = "not an event", first
      table.remove(evs, 1)
      evs[3] = second
      for i = #evs, 1, -1 do evs[i] = nil end
      collectgarbage(); collectgarbage()
      assert.same(doc[2], second.raw)
      assert.same(doc[1], first.raw)
      -- a table that is not one of the batch's events, given its metatable, gets nothing
      local other = assert(hook:parse(body, helpers.signed(body)))[1]
      assert.is_nil(getmetatable(first).__index(setmetatable({ kind = "message" },
        getmetatable(first)), "raw"))
      assert.same(doc[1], other.raw)
    end)

    -- What __index needs (body, sources, parser) is out of Lua's reach: editing the shared
    -- metatable can at worst pair an event with another source of the same batch.
    it("stays one of the batch's own sources when Lua code edits the metatable", function()
      local msgs = cjson.decode(body).entry[1].changes[1].value.messages
      local evs = assert(hook:parse(body, helpers.signed(body)))
      local mt = getmetatable(evs[1])
      local index = mt.__index
      mt[1], mt[2] = evs[2], evs[1]
      mt[3], mt[4], mt[5], mt[6] = "x", 2 ^ 40, math.mininteger, true
      for k in pairs(mt) do if type(k) == "string" and k ~= "__index" then mt[k] = nil end end
      assert.same(msgs[1], evs[2].raw)
      assert.same(msgs[2], evs[1].raw)
      local stranger = { kind = "message" }
      assert.is_nil(index(stranger, "raw"))
      assert.is_nil(index("not a table", "raw"))
      assert.is_nil(index(evs[1], "referral"))
    end)

    it("is right after the hook is closed", function()
      local h = webhook.new{ app_secret = helpers.SECRET }
      local evs = assert(h:parse(body, helpers.signed(body)))
      h:close()
      assert.same(cjson.decode(body).entry[1].changes[1].value.messages[2], evs[2].raw)
    end)
  end)

  describe("lazy generic copies", function()
    local hook = webhook.new{ app_secret = helpers.SECRET }
    local function parse(name)
      local body = helpers.fixture_raw("webhooks/" .. name)
      return assert(hook:parse(body, helpers.signed(body))), cjson.decode(body)
    end

    it("status conversation and pricing: decoded on access, then plain fields", function()
      local evs, doc = parse("statuses_delivered_cbp.json")
      local ev, src = evs[1], doc.entry[1].changes[1].value.statuses[1]
      assert.is_nil(rawget(ev, "conversation"))
      assert.is_nil(rawget(ev, "pricing"))
      local listed = {}
      for k in pairs(ev) do listed[k] = true end
      assert.is_nil(listed.conversation)
      assert.same(src.conversation, ev.conversation)
      assert.same(src.pricing, ev.pricing)
      assert.equal(ev.conversation, rawget(ev, "conversation"))
      assert.equal(ev.pricing, rawget(ev, "pricing"))
      -- separate tables from raw's
      assert.same(src, ev.raw)
      assert.not_equal(ev.raw.conversation, ev.conversation)
    end)

    it("absent stays absent, however often it is asked for", function()
      local ev = parse("statuses_read_no_pricing.json")[1]
      for _ = 1, 3 do
        assert.is_nil(ev.pricing)
        assert.is_nil(ev.conversation)
      end
      assert.is_nil(ev.referral) -- not a status field, even if the source had one
    end)

    it("message referral and change value", function()
      local evs, doc = parse("messages_text_referral_ctwa_ad.json")
      assert.same(doc.entry[1].changes[1].value.messages[1].referral, evs[1].referral)
      assert.is_nil(evs[1].identity)
      assert.is_nil(evs[1].conversation)
      evs, doc = parse("account_update_pricing_tier.json")
      assert.equal("change", evs[1].kind)
      assert.is_nil(rawget(evs[1], "value"))
      assert.same(doc.entry[1].changes[1].value, evs[1].value)
    end)

    it("work after the hook is closed and the body collected", function()
      local ev
      do
        local body = helpers.fixture_raw("webhooks/statuses_delivered_cbp.json")
        local h = webhook.new{ app_secret = helpers.SECRET }
        ev = assert(h:parse(body, helpers.signed(body)))[1]
        h:close()
      end
      collectgarbage(); collectgarbage()
      assert.equal("table", type(ev.pricing))
      assert.equal("table", type(ev.conversation))
    end)

    it("webhook.LAZY_FIELDS names them", function()
      local set = {}
      for _, k in ipairs(webhook.LAZY_FIELDS) do set[k] = true end
      for _, k in ipairs{ "raw", "referral", "identity", "conversation", "pricing", "value" } do
        assert.is_true(set[k], k)
      end
    end)
  end)

  describe("json_decode", function()
    it("decodes strictly", function()
      assert.same({ a = { 1, 2.5, "x", true } }, core.json_decode('{"a":[1,2.5,"x",true]}'))
      assert.equal(core.null, core.json_decode("null"))
      local v, err = core.json_decode("[1,]")
      assert.is_nil(v)
      assert.matches("invalid JSON", err)
      assert.is_nil((core.json_decode('"\192\175"')))
    end)

    it("keeps large integers exact on Lua 5.4", function()
      local v = core.json_decode("[1689556908129801, -42]")
      if math.type then
        assert.equal("integer", math.type(v[1]))
        assert.equal(1689556908129801, v[1])
      else
        assert.equal(1689556908129801, v[1])
      end
      assert.equal(-42, v[2])
    end)
  end)
end)

describe("whatsapp.errors", function()
  it("renders one readable line and knows categories", function()
    local e = errors.new{ code = 131047, status = 400, message = "Re-engagement message",
      details = "more than 24 hours" }
    assert.equal("[400] 131047 Re-engagement message (more than 24 hours)", tostring(e))
    assert.equal("window", e.category)
    assert.is_true(errors.is(e))
    assert.is_false(errors.is({}))
    assert.has_error(function() errors.new{} end)
  end)

  it("classifies the codes the retry policy will need", function()
    local cases = { [190] = "auth", [130429] = "throttling", [131056] = "throttling",
      [131000] = "server", [132001] = "template", [100] = "param", [131053] = "media",
      [131026] = "recipient", [368] = "integrity" }
    for code, cat in pairs(cases) do assert.equal(cat, errors.category(code), code) end
    assert.is_nil(errors.category("timeout"))
  end)

  it("webhook error tables are error objects with a lazy category", function()
    local body = helpers.fixture_raw("webhooks/statuses_failed_131049_ecosystem.json")
    local ev = assert(webhook.new{ app_secret = helpers.SECRET }:parse(body, helpers.signed(body)))[1]
    local e = ev.errors[1]
    assert.is_true(errors.is(e))
    assert.equal(131049, e.code)
    assert.equal("recipient", e.category)
    assert.matches("^131049 ", tostring(e))
  end)
end)

describe("the whatsapp module", function()
  it("loads submodules on first use", function()
    local whatsapp = require "whatsapp"
    assert.equal(require "whatsapp.webhook", whatsapp.webhook)
    assert.equal(require "whatsapp.crypto", whatsapp.crypto)
    assert.is_nil(whatsapp.nonexistent)
  end)
end)

describe("examples/webhook_cat.lua #cli", function()
  local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
  local function run(cmd)
    local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
    local out = p:read("*a")
    p:close()
    return out
  end

  it("verifies, parses and prints events as JSON lines", function()
    if lua ~= "lua5.4" then return end -- the script runs on the Lua 5.4 build
    local f = "spec/fixtures/webhooks/messages_batch_two_messages.json"
    local sig = webhook.sign(helpers.read(f), "cli-secret")
    local out = run(("lua5.4 examples/webhook_cat.lua --secret cli-secret --signature %s %s"):format(sig, f))
    assert.matches("exit=0", out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then lines[#lines + 1] = cjson.decode(line) end
    end
    assert.equal(2, #lines)
    assert.equal("message", lines[1].kind)
    assert.equal("table", type(lines[2].raw))
    out = run(("lua5.4 examples/webhook_cat.lua --secret wrong --signature %s < %s"):format(sig, f))
    assert.matches("exit=1", out)
    assert.matches("invalid_signature", out)
    assert.not_matches("cli%-secret", out)
  end)
end)
