-- Hostile input for hook:parse: malformed JSON, wrong types at every level, extreme sizes and
-- nesting, bad signature headers. Every case has its documented result (doc/events.md,
-- "What is rejected"); nothing may crash, and no error may reveal a secret.
local helpers = require "helpers"
local webhook = require "whatsapp.webhook"

local SECRET = helpers.SECRET
local VERIFY_TOKEN = "verify_token_value"
local MIB3 = 3145728
local P = "entry[1].changes[1].value" -- err.path prefix of the first change's value

local function pack(...) return { n = select("#", ...), ... } end

local function signed(body, secret) return helpers.signed(body, secret) end

--- Assert that no string reachable from err (tostring and string fields) holds a secret.
local function assert_no_secret(err, secrets)
  local texts = { tostring(err) }
  if type(err) == "table" then
    for _, v in pairs(err) do
      if type(v) == "string" then texts[#texts + 1] = v end
    end
  end
  for _, t in ipairs(texts) do
    for _, s in ipairs(secrets) do
      assert.is_nil(t:find(s, 1, true), "error text reveals a secret: " .. t)
    end
  end
end

--- hook:parse must return exactly (nil, err) with this status/code (and path when given).
local function reject(hook, body, headers, status, code, path, secrets)
  local res = pack(hook:parse(body, headers))
  assert.are.equal(2, res.n, "a rejected call returns exactly nil, err")
  assert.is_nil(res[1], "expected a rejection")
  local err = res[2]
  assert.is_truthy(type(err) == "table" or type(err) == "userdata", "err is an object")
  assert.are.equal(status, err.status)
  assert.are.equal(code, err.code)
  if path ~= nil then assert.are.equal(path, err.path) end
  local text = tostring(err)
  assert.is_string(text)
  assert.is_true(#text > 0)
  assert.is_nil(text:match("^table: "), "tostring(err) is not readable: " .. text)
  assert_no_secret(err, secrets or { SECRET, VERIFY_TOKEN })
  return err
end

--- hook:parse must return an array of events.
local function accept(hook, body, headers)
  local events, err = hook:parse(body, headers)
  assert.is_table(events, "expected events, got: " .. tostring(err))
  return events
end

local function default_hook()
  return webhook.new { app_secret = SECRET, verify_token = VERIFY_TOKEN }
end

-- payload builders -----------------------------------------------------------------------

local META = '"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111",'
  .. '"phone_number_id":"100000000000001"}'

--- Whole envelope around one change whose value is the JSON text `value`.
local function envelope(value, field)
  return '{"object":"whatsapp_business_account","entry":[{"id":"100000000000002","changes":'
    .. '[{"field":"' .. (field or "messages") .. '","value":' .. value .. '}]}]}'
end

--- A messages-field value with the given extra members (JSON text).
local function value_with(members)
  return "{" .. META .. (members and ("," .. members) or "") .. "}"
end

--- One message object; `members` (JSON text) replaces the default text content.
local function message(members)
  return '{"from":"15550002222","id":"wamid.TEST","timestamp":"1749416383",'
    .. (members or '"type":"text","text":{"body":"hello"}') .. "}"
end

--- A message object with only from and id preset; `members` (JSON text) gives the rest.
local function bare_message(members)
  return '{"from":"15550002222","id":"wamid.TEST",' .. members .. "}"
end

local function messages_body(list)
  return envelope(value_with('"messages":[' .. list .. "]"))
end

local function text_body(text_json)
  return messages_body(message('"type":"text","text":{"body":' .. text_json .. "}"))
end

--- Lines of VmRSS from /proc (kB), or nil when not available.
local function rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  local kb = s:match("VmRSS:%s*(%d+)")
  return kb and tonumber(kb)
end

-- -----------------------------------------------------------------------------------------

describe("hostile payloads: wrong types at every level (400 invalid_payload)", function()
  local hook = default_hook()
  local ok_entry = '{"id":"1","changes":[]}'
  local ok_change = '{"field":"messages","value":' .. value_with() .. "}"

  local cases = {
    -- top level
    { "top-level array", "[]" },
    { "top-level array of an envelope", "[" .. envelope(value_with()) .. "]" },
    { "top-level string", '"whatsapp_business_account"' },
    { "top-level number", "42" },
    { "top-level null", "null" },
    { "top-level true", "true" },
    { "empty body", "" },
    { "whitespace only", "  \n\t " },
    -- object
    { "object is another product", '{"object":"page","entry":[]}', "object" },
    { "object is a number", '{"object":1,"entry":[]}', "object" },
    { "object is an array", '{"object":["whatsapp_business_account"],"entry":[]}', "object" },
    { "object is an object", '{"object":{},"entry":[]}', "object" },
    -- entry
    { "entry missing", '{"object":"whatsapp_business_account"}', "entry" },
    { "entry is an object", '{"object":"whatsapp_business_account","entry":{}}', "entry" },
    { "entry is a string", '{"object":"whatsapp_business_account","entry":"x"}', "entry" },
    { "entry is null", '{"object":"whatsapp_business_account","entry":null}', "entry" },
    { "entry is a number", '{"entry":1}', "entry" },
    { "entry element is a string", '{"object":"whatsapp_business_account","entry":["x"]}', "entry[1]" },
    { "entry element is an array", '{"object":"whatsapp_business_account","entry":[[]]}', "entry[1]" },
    { "entry element is null", '{"object":"whatsapp_business_account","entry":[null]}', "entry[1]" },
    { "second entry element is a number",
      '{"object":"whatsapp_business_account","entry":[' .. ok_entry .. ",5]}", "entry[2]" },
    -- changes
    { "changes is an object", '{"entry":[{"id":"1","changes":{}}]}', "entry[1].changes" },
    { "changes is a string", '{"entry":[{"id":"1","changes":"x"}]}', "entry[1].changes" },
    { "change element is a number", '{"entry":[{"id":"1","changes":[5]}]}', "entry[1].changes[1]" },
    { "change element is null", '{"entry":[{"id":"1","changes":[null]}]}', "entry[1].changes[1]" },
    { "second change element is a string",
      '{"entry":[{"id":"1","changes":[' .. ok_change .. ',"x"]}]}', "entry[1].changes[2]" },
    { "changes of the third entry wrong",
      '{"entry":[' .. ok_entry .. "," .. ok_entry .. ',{"id":"3","changes":true}]}', "entry[3].changes" },
    -- field
    { "field is a number", '{"entry":[{"id":"1","changes":[{"field":5,"value":{}}]}]}',
      "entry[1].changes[1].field" },
    { "field is an object", '{"entry":[{"id":"1","changes":[{"field":{},"value":{}}]}]}',
      "entry[1].changes[1].field" },
    { "field is a boolean", '{"entry":[{"id":"1","changes":[{"field":true,"value":{}}]}]}',
      "entry[1].changes[1].field" },
    -- messages / statuses / errors
    { "messages is an object", envelope(value_with('"messages":{}')), P .. ".messages" },
    { "messages is a string", envelope(value_with('"messages":"hi"')), P .. ".messages" },
    { "messages is a number", envelope(value_with('"messages":0')), P .. ".messages" },
    { "messages element is a string", messages_body('"hi"'), P .. ".messages[1]" },
    { "messages element is an array", messages_body("[]"), P .. ".messages[1]" },
    { "messages element is null", messages_body("null"), P .. ".messages[1]" },
    { "second messages element is a number", messages_body(message() .. ",7"), P .. ".messages[2]" },
    { "statuses is a number", envelope(value_with('"statuses":5')), P .. ".statuses" },
    { "statuses is an object", envelope(value_with('"statuses":{"id":"x"}')), P .. ".statuses" },
    { "statuses element is a string", envelope(value_with('"statuses":["delivered"]')), P .. ".statuses[1]" },
    { "errors is a string", envelope(value_with('"errors":"boom"')), P .. ".errors" },
    { "errors element is a number", envelope(value_with('"errors":[131000]')), P .. ".errors[1]" },
    { "wrong messages in a later entry and change",
      '{"object":"whatsapp_business_account","entry":[' .. ok_entry .. ',{"id":"2","changes":['
        .. ok_change .. "," .. ok_change .. ',{"field":"messages","value":{"messages":['
        .. message() .. ',"x"]}}]}]}', "entry[2].changes[3].value.messages[2]" },
  }

  for _, c in ipairs(cases) do
    it(c[1], function()
      reject(hook, c[2], signed(c[2]), 400, "invalid_payload", c[3])
    end)
  end

  it("duplicate object key: the last (wrong) one wins", function()
    local body = '{"object":"whatsapp_business_account","object":"page","entry":[]}'
    reject(hook, body, signed(body), 400, "invalid_payload", "object")
  end)
end)

describe("hostile payloads: invalid JSON (400 invalid_payload)", function()
  local hook = default_hook()
  local good = text_body('"hello"')

  local cases = {
    { "trailing garbage", good .. "x" },
    { "trailing comma garbage", good .. "," },
    { "two concatenated documents", good .. good },
    { "two documents separated by a newline", good .. "\n" .. good },
    { "UTF-8 BOM prefix", "\239\187\191" .. good },
    { "NUL byte after the document", good .. "\0" },
    { "NUL byte before the document", "\0" .. good },
    { "NUL byte between tokens", (good:gsub('"object":', '"object"\0:', 1)) },
    { "raw NUL byte inside a string", text_body('"a\0b"') },
    { "raw newline inside a string", text_body('"a\nb"') },
    { "raw 0xff byte inside a string", text_body('"a\255b"') },
    { "raw 0xff byte outside a string", (good:gsub("^{", "{\255", 1)) },
    { "truncated UTF-8 sequence at the end of a string", text_body('"a\226\130"') },
    { "UTF-8 continuation byte alone", text_body('"a\128b"') },
    { "5-byte UTF-8 sequence (F8 88 80 80 80)", text_body('"a\248\136\128\128\128b"') },
    { "single-quoted string", (good:gsub('"hello"', "'hello'", 1)) },
    { "unquoted key", (good:gsub('"object"', "object", 1)) },
    { "trailing comma in an object", (good:gsub("}$", ",}", 1)) },
    { "trailing comma in an array", messages_body(message() .. ",") },
    { "comment", "/* c */" .. good },
    { "NaN", text_body("NaN") },
    { "Infinity", text_body("Infinity") },
    { "unterminated string", '{"object":"whatsapp_business_account' },
    { "invalid escape", text_body('"a\\xb"') },
    { "bad \\u escape", text_body('"\\u12G4"') },
    { "short \\u escape at the end", text_body('"\\u12"') },
    { "missing colon", '{"object" "whatsapp_business_account","entry":[]}' },
    { "missing value", '{"object":,"entry":[]}' },
    { "unbalanced close", good .. "}" },
    { "100k open brackets", string.rep("[", 100000) },
    { "100k open objects", string.rep('{"a":', 100000) },
    { "100k balanced brackets", string.rep("[", 100000) .. string.rep("]", 100000) },
    { "deep nested value (100 levels) inside a message",
      messages_body(message('"type":"text","x":' .. string.rep("[", 100) .. string.rep("]", 100))) },
    { "deep nested value (100k levels) inside a message",
      messages_body(message('"type":"text","x":' .. string.rep("[", 100000) .. string.rep("]", 100000))) },
    { "deep nested objects (200 levels) inside a change value",
      envelope(string.rep('{"a":', 200) .. "1" .. string.rep("}", 200), "account_update") },
  }

  for _, c in ipairs(cases) do
    it(c[1], function()
      reject(hook, c[2], signed(c[2]), 400, "invalid_payload")
    end)
  end

  it("invalid UTF-8 of the well-formed shape: overlong, encoded surrogate, above U+10FFFF", function()
    local accepted = {}
    for _, c in ipairs {
      { "overlong '/' (C0 AF)", '"a\192\175b"' },
      { "overlong '/' (E0 80 AF)", '"a\224\128\175b"' },
      { "UTF-8-encoded surrogate U+D800 (ED A0 80)", '"a\237\160\128b"' },
      { "above U+10FFFF (F4 90 80 80)", '"a\244\144\128\128b"' },
    } do
      local body = text_body(c[2])
      local res = pack(hook:parse(body, signed(body)))
      if res[1] ~= nil then
        accepted[#accepted + 1] = c[1]
      else
        assert.are.equal(2, res.n)
        assert.are.equal(400, res[2].status)
        assert.are.equal("invalid_payload", res[2].code)
      end
    end
    assert.are.same({}, accepted, "invalid UTF-8 accepted")
  end)

  it("nesting: depth 64 is accepted, depth 65 is rejected", function()
    -- object(1) entry[](2) entry(3) changes[](4) change(5) value(6) messages[](7) message(8)
    local function nested(total)
      local k = total - 8
      return messages_body(message('"type":"text","x":' .. string.rep("[", k) .. string.rep("]", k)))
    end
    local body = nested(64)
    local events = accept(hook, body, signed(body))
    assert.are.equal(1, #events)
    body = nested(65)
    reject(hook, body, signed(body), 400, "invalid_payload")
  end)

  local function truncations(body)
    local hk = default_hook()
    local bad = {}
    for len = 0, #body - 1 do
      local prefix = body:sub(1, len)
      local res = pack(hk:parse(prefix, signed(prefix)))
      local err = res[2]
      if not (res.n == 2 and res[1] == nil and err and err.status == 400
          and err.code == "invalid_payload") then
        bad[#bad + 1] = len
      end
    end
    assert.are.same({}, bad, "prefix lengths not rejected with 400")
    local events = accept(hk, body, signed(body))
    assert.are.equal(1, #events)
    assert.are.equal("Does it come in another color?", events[1].text)
  end

  it("every prefix of a pretty-printed fixture is 400, the full body parses", function()
    truncations((helpers.fixture_raw("webhooks/messages_text_basic.json"):gsub("%s+$", "")))
  end)

  it("every prefix of a compact body is 400, the full body parses", function()
    truncations(helpers.fixture("signatures/valid_text_compact.json").raw_body)
  end)

  it("signature is checked before JSON: invalid JSON with a bad signature is 401", function()
    reject(hook, "{not json", signed("{other"), 401, "invalid_signature")
    reject(hook, "[]", {}, 401, "invalid_signature")
  end)
end)

describe("hostile payloads: accepted oddities", function()
  local hook = default_hook()
  local function parse(body) return accept(hook, body, signed(body)) end

  it("20,000 contacts: each event gets the first contact with its wa_id or user_id", function()
    -- Contact k has wa_id 1000k (k = 1..20000) and user_id US.k; contact 20000 repeats contact
    -- 7's wa_id and contact 19999 contact 9's user_id, so the first one must win for those.
    local contacts = {}
    for k = 1, 20000 do
      local wa = k == 20000 and "10007" or tostring(10000 + k)
      local uid = k == 19999 and "US.9" or ("US." .. k)
      contacts[k] = ('{"profile":{"name":"C%d"},"wa_id":"%s","user_id":"%s"}'):format(k, wa, uid)
    end
    local msgs = {
      '{"from":"29999","id":"m1","type":"text","text":{"body":"near the end"}}',
      '{"from":"10007","id":"m2","type":"text","text":{"body":"repeated wa_id"}}',
      '{"from":"99999","from_user_id":"US.9","id":"m3","type":"text","text":{"body":"by user_id"}}',
      '{"from":"10005","from_user_id":"US.3","id":"m4","type":"text","text":{"body":"both"}}',
      '{"from":"77","id":"m5","type":"text","text":{"body":"nobody"}}',
    }
    local body = envelope(value_with('"contacts":[' .. table.concat(contacts, ",") .. '],"messages":['
      .. table.concat(msgs, ",") .. "]"))
    local events = parse(body)
    assert.equal(5, #events)
    assert.equal("C19999", events[1].contact.name)
    assert.equal("C7", events[2].contact.name)
    assert.equal("C9", events[3].contact.name)
    -- from matches contact 5, from_user_id contact 3: the first of the two in the list
    assert.equal("C3", events[4].contact.name)
    assert.is_nil(events[5].contact)
  end)

  it("empty entry array -> zero events", function()
    assert.are.same({}, parse('{"object":"whatsapp_business_account","entry":[]}'))
  end)

  it("no object member -> still parsed", function()
    assert.are.same({}, parse('{"entry":[]}'))
  end)

  it("empty changes and an entry with no changes -> zero events", function()
    assert.are.same({}, parse('{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}'))
    assert.are.same({}, parse('{"object":"whatsapp_business_account","entry":[{"id":"1","time":1}]}'))
    assert.are.same({}, parse('{"object":"whatsapp_business_account","entry":[{},{"changes":[]}]}'))
  end)

  it("whitespace around the document", function()
    local events = parse(" \r\n\t" .. text_body('"hello"') .. "\n\n ")
    assert.are.equal("hello", events[1].text)
  end)

  it("duplicate keys: the last one wins", function()
    local events = parse(messages_body(message(
      '"type":"image","type":"text","text":{"body":"first","body":"second"},"from":"15550009999"')))
    assert.are.equal(1, #events)
    assert.are.equal("text", events[1].type)
    assert.are.equal("second", events[1].text)
    assert.are.equal("15550009999", events[1].from)
  end)

  it("duplicate object key: the last (right) one wins", function()
    assert.are.same({}, parse('{"object":"page","object":"whatsapp_business_account","entry":[]}'))
  end)

  it("duplicate messages array: the last one wins", function()
    local events = parse(envelope(value_with('"messages":[' .. message() .. '],"messages":['
      .. message('"type":"text","id":"wamid.SECOND","text":{"body":"b"}') .. "]")))
    assert.are.equal(1, #events)
    assert.are.equal("wamid.SECOND", events[1].id)
  end)

  it("null leaf: text.body null -> message event without text", function()
    local events = parse(text_body("null"))
    assert.are.equal(1, #events)
    assert.are.equal("message", events[1].kind)
    assert.are.equal("text", events[1].type)
    assert.is_nil(events[1].text)
    assert.are.equal("wamid.TEST", events[1].id)
  end)

  it("null leaves everywhere in a message", function()
    local events = parse(messages_body(
      '{"from":null,"id":null,"timestamp":null,"type":null,"text":null,"context":null}'))
    assert.are.equal(1, #events)
    local ev = events[1]
    assert.are.equal("message", ev.kind)
    assert.are.equal("unknown", ev.type)
    assert.is_nil(ev.from)
    assert.is_nil(ev.id)
    assert.is_nil(ev.timestamp)
    assert.is_nil(ev.text)
  end)

  it("numbers where strings belong: from as a number is absent, raw keeps it", function()
    local events = parse(messages_body(
      '{"from":15550002222,"id":"wamid.N","timestamp":"1","type":"text","text":{"body":"x"}}'))
    local ev = events[1]
    assert.is_nil(ev.from)
    assert.are.equal(15550002222, ev.raw.from)
    assert.are.equal("x", ev.text)
  end)

  it("timestamp as a number -> integer", function()
    local events = parse(messages_body(bare_message('"type":"text","timestamp":1749416383,"text":{"body":"x"}')))
    local ts = events[1].timestamp
    assert.are.equal(1749416383, ts)
    if math.type then assert.are.equal("integer", math.type(ts)) end
    events = parse(messages_body(message()))
    assert.are.equal(1749416383, events[1].timestamp)
    if math.type then assert.are.equal("integer", math.type(events[1].timestamp)) end
  end)

  it("type as a number -> unknown; other leaves of the wrong type are left out", function()
    local events = parse(messages_body(
      '{"from":"1","id":{"x":1},"timestamp":"1","type":5,"text":"not an object"}'))
    local ev = events[1]
    assert.are.equal("unknown", ev.type)
    assert.is_nil(ev.id)
    assert.is_nil(ev.text)
    events = parse(messages_body(message('"type":"text","text":"plain string"')))
    assert.are.equal("text", events[1].type)
    assert.is_nil(events[1].text)
  end)

  it("status with a numeric status -> unknown", function()
    local events = parse(envelope(value_with('"statuses":[{"id":"wamid.S","status":3,"timestamp":"5"}]')))
    assert.are.equal(1, #events)
    assert.are.equal("status", events[1].kind)
    assert.are.equal("unknown", events[1].type)
  end)

  it("contacts that is not an array does not break the message", function()
    local events = parse(envelope(value_with('"contacts":{"wa_id":"15550002222"},"messages":['
      .. message() .. "]")))
    assert.are.equal(1, #events)
    assert.are.equal("hello", events[1].text)
  end)

  it("value as an array for a messages field -> one change event", function()
    local events = parse(envelope("[1,2,3]"))
    assert.are.equal(1, #events)
    assert.are.equal("change", events[1].kind)
    assert.are.equal("messages", events[1].type)
  end)

  it("escaped NUL in a string is kept", function()
    local events = parse(text_body('"a\\u0000b"'))
    assert.are.equal("a\0b", events[1].text)
    assert.are.equal(3, #events[1].text)
  end)

  it("escaped surrogate pair decodes to UTF-8", function()
    local events = parse(text_body('"\\ud83d\\ude2e"'))
    assert.are.equal("\240\159\152\174", events[1].text)
  end)

  it("lone surrogate escape \\ud800: no crash (documented below)", function()
    -- JSON-valid but not a character. Either refused as 400 or parsed to a string.
    for _, s in ipairs { '"a\\ud800b"', '"a\\udc00b"', '"\\ud800"', '"\\ud800\\u0041"' } do
      local body = text_body(s)
      local res = pack(hook:parse(body, signed(body)))
      if res[1] == nil then
        assert.are.equal(400, res[2].status, s)
        assert.are.equal("invalid_payload", res[2].code, s)
      else
        assert.is_string(res[1][1].text, s)
        local _ = res[1][1].raw -- lazy decode must not raise
      end
    end
  end)

  it("huge array: 100k empty message objects -> 100k events", function()
    local body = messages_body(string.rep("{},", 99999) .. "{}")
    local events = parse(body)
    assert.are.equal(100000, #events)
    assert.are.equal("message", events[1].kind)
    assert.are.equal("unknown", events[1].type)
    assert.are.equal("unknown", events[100000].type)
  end)

  it("huge array inside a message is kept in raw", function()
    local events = parse(messages_body(message('"type":"text","x":[' .. string.rep("1,", 99999) .. '1]')))
    assert.are.equal(1, #events)
    assert.are.equal(100000, #events[1].raw.x)
  end)

  it("many keys in one message", function()
    local keys = {}
    for i = 1, 20000 do keys[i] = ('"k%d":%d'):format(i, i) end
    local events = parse(messages_body(message('"type":"text","text":{"body":"k"},' .. table.concat(keys, ","))))
    assert.are.equal("k", events[1].text)
    assert.are.equal(20000, events[1].raw.k20000)
  end)

  it("huge string: a 2 MB text body is intact", function()
    local big = string.rep("0123456789abcdef", 131072) -- 2 MiB
    local events = parse(text_body('"' .. big .. '"'))
    assert.are.equal(1, #events)
    assert.are.equal(#big, #events[1].text)
    assert.are.equal(big, events[1].text)
  end)

  it("odd numbers do not crash", function()
    for _, n in ipairs { "1e400", "-1e400", "123456789012345678901234567890", "-0", "1.5", "-1",
      "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1E2" } do
      local body = messages_body(bare_message('"type":"text","timestamp":' .. n .. ',"x":' .. n))
      local res = pack(hook:parse(body, signed(body)))
      if res[1] == nil then
        assert.are.equal(400, res[2].status, n)
      else
        assert.are.equal(1, #res[1], n)
        local ts = res[1][1].timestamp
        assert.is_true(ts == nil or type(ts) == "number", n)
      end
    end
  end)

  it("unknown field passes through as a change event", function()
    local events = parse(envelope('{"event":"WHATEVER","x":[null,{}]}', "some_future_field"))
    assert.are.equal(1, #events)
    assert.are.equal("change", events[1].kind)
    assert.are.equal("some_future_field", events[1].type)
    assert.are.equal("WHATEVER", events[1].event)
  end)
end)

describe("hostile payloads: size limit", function()
  local hook = default_hook()

  --- A signed-able messages body of exactly `size` bytes (text body padded with 'a').
  local function body_of(size)
    local pre, post = text_body('"@@PAD@@"'):match("^(.-)@@PAD@@(.*)$")
    local body = pre .. string.rep("a", size - #pre - #post) .. post
    assert(#body == size)
    return body
  end

  it("3 MiB + 1 -> 413 even when correctly signed", function()
    local body = body_of(MIB3 + 1)
    reject(hook, body, signed(body), 413, "too_large")
  end)

  it("3 MiB + 1 with a wrong or missing signature -> still 413", function()
    local body = body_of(MIB3 + 1)
    reject(hook, body, { ["X-Hub-Signature-256"] = "sha256=" .. string.rep("0", 64) }, 413, "too_large")
    reject(hook, body, {}, 413, "too_large")
    reject(hook, body, nil, 413, "too_large")
    reject(webhook.new {}, body, signed(body), 413, "too_large")
  end)

  it("3 MiB + 1 of invalid JSON -> 413", function()
    local body = string.rep("[", MIB3 + 1)
    reject(hook, body, signed(body), 413, "too_large")
  end)

  it("exactly 3 MiB -> parsed", function()
    local body = body_of(MIB3)
    local events = accept(hook, body, signed(body))
    assert.are.equal(1, #events)
    assert.are.equal(MIB3 - #text_body('""'), #events[1].text)
  end)

  it("custom max_body", function()
    local small = webhook.new { app_secret = SECRET, max_body = 100 }
    local body = '{"object":"whatsapp_business_account","entry":[]}'
    body = body .. string.rep(" ", 100 - #body)
    assert.are.same({}, accept(small, body, signed(body)))
    local over = body .. " "
    reject(small, over, signed(over), 413, "too_large")
    local big = body_of(MIB3 + 10)
    local roomy = webhook.new { app_secret = SECRET, max_body = MIB3 + 10 }
    assert.are.equal(1, #accept(roomy, big, signed(big)))
  end)
end)

describe("hostile headers", function()
  local hook = default_hook()
  local body = text_body('"hello"')
  local sig = webhook.sign(body, SECRET)
  local hex = sig:sub(8)
  local H = "X-Hub-Signature-256"

  local bad = {
    { "missing header", {} },
    { "only another header", { ["Content-Type"] = "application/json" } },
    { "legacy sha1 header only", { ["X-Hub-Signature"] = "sha1=" .. string.rep("a", 40) } },
    { "empty value", { [H] = "" } },
    { "sha256= only", { [H] = "sha256=" } },
    { "no prefix", { [H] = hex } },
    { "SHA256= prefix", { [H] = "SHA256=" .. hex } },
    { "sha1= prefix", { [H] = "sha1=" .. hex } },
    { "wrong length (63)", { [H] = sig:sub(1, -2) } },
    { "wrong length (65)", { [H] = sig .. "0" } },
    { "wrong length (128)", { [H] = sig .. hex } },
    { "non-hex characters", { [H] = "sha256=" .. hex:sub(1, 62) .. "zz" } },
    { "leading whitespace", { [H] = " " .. sig } },
    { "trailing whitespace", { [H] = sig .. " " } },
    { "trailing CRLF", { [H] = sig .. "\r\n" } },
    { "space after the prefix", { [H] = "sha256= " .. hex:sub(2) } },
    { "NUL after the digest", { [H] = sig .. "\0" } },
    { "two digests comma-separated", { [H] = sig .. "," .. sig } },
    { "value is a table with two values", { [H] = { sig, sig } } },
    { "value is a table with a good and a bad value", { [H] = { "sha256=" .. string.rep("0", 64), sig } } },
    { "repeated under two spellings", { [H] = sig, ["x-hub-signature-256"] = sig } },
    { "value is a number", { [H] = 42 } },
    { "value is a boolean", { [H] = true } },
    { "array-like headers", { sig } },
    { "signature of a different body", { [H] = webhook.sign(body .. " ", SECRET) } },
    { "signature with the verify token as key", { [H] = webhook.sign(body, VERIFY_TOKEN) } },
    { "signature with another secret", { [H] = webhook.sign(body, "other_secret") } },
    { "all-zero digest", { [H] = "sha256=" .. string.rep("0", 64) } },
  }

  for _, c in ipairs(bad) do
    it(c[1] .. " -> 401", function()
      reject(hook, body, c[2], 401, "invalid_signature")
    end)
  end

  it("nil headers -> 401", function()
    reject(hook, body, nil, 401, "invalid_signature")
  end)

  it("upper-case hex is accepted", function()
    local events = accept(hook, body, { [H] = "sha256=" .. hex:upper() })
    assert.are.equal("hello", events[1].text)
  end)

  it("header name in lower, upper and mixed case", function()
    for _, name in ipairs { "x-hub-signature-256", "X-HUB-SIGNATURE-256", "X-Hub-Signature-256",
      "x-HuB-sIgNaTuRe-256" } do
      local events = accept(hook, body, { [name] = sig, ["content-type"] = "application/json" })
      assert.are.equal(1, #events, name)
    end
  end)

  it("key rotation: a body signed with either configured secret is accepted", function()
    local rot = webhook.new { app_secret = { "old_secret", "new_secret" } }
    assert.are.equal(1, #accept(rot, body, signed(body, "old_secret")))
    assert.are.equal(1, #accept(rot, body, signed(body, "new_secret")))
    reject(rot, body, signed(body, "neither"), 401, "invalid_signature", nil, { "old_secret", "new_secret" })
  end)

  it("no app secret and no opt-out: every POST is 401", function()
    for _, h in ipairs { webhook.new {}, webhook.new { verify_token = VERIFY_TOKEN },
      webhook.new { skip_signature = false } } do
      reject(h, body, signed(body), 401, "invalid_signature")
      reject(h, body, {}, 401, "invalid_signature")
      reject(h, body, { [H] = webhook.sign(body, "") }, 401, "invalid_signature")
    end
  end)

  it("skip_signature = true: unsigned bodies are parsed", function()
    local open = webhook.new { skip_signature = true }
    assert.are.equal("hello", accept(open, body, {})[1].text)
    assert.are.equal("hello", accept(open, body, nil)[1].text)
    reject(open, "[]", {}, 400, "invalid_payload")
    local over = string.rep(" ", MIB3 + 1)
    reject(open, over, {}, 413, "too_large")
  end)

  it("errors never contain the secret (long distinctive secret)", function()
    local secret = "S3CR3T-" .. string.rep("x", 40)
    local h = webhook.new { app_secret = secret, verify_token = "TOKEN-ABC" }
    local secrets = { secret, "TOKEN-ABC" }
    reject(h, body, {}, 401, "invalid_signature", nil, secrets)
    reject(h, body, { [H] = "sha256=" .. hex }, 401, "invalid_signature", nil, secrets)
    reject(h, body, signed(body, "TOKEN-ABC"), 401, "invalid_signature", nil, secrets)
    reject(h, "[]", signed("[]", secret), 400, "invalid_payload", nil, secrets)
    reject(h, "{\"object\":", signed("{\"object\":", secret), 400, "invalid_payload", nil, secrets)
    local over = string.rep("a", MIB3 + 1)
    reject(h, over, signed(over, secret), 413, "too_large", nil, secrets)
  end)
end)

describe("webhook.new and hook:parse argument errors", function()
  it("raise for wrong option types", function()
    assert.has_error(function() webhook.new { app_secret = 42 } end)
    assert.has_error(function() webhook.new { app_secret = true } end)
    assert.has_error(function() webhook.new { app_secret = {} } end)
    assert.has_error(function() webhook.new { app_secret = { "a", 42 } } end)
    assert.has_error(function() webhook.new { app_secret = SECRET, max_body = "big" } end)
    assert.has_error(function() webhook.new { app_secret = SECRET, max_body = {} } end)
    assert.has_error(function() webhook.new { skip_signature = "yes" } end)
  end)

  it("raise when both app_secret and skip_signature = true are given", function()
    assert.has_error(function() webhook.new { app_secret = SECRET, skip_signature = true } end)
    assert.has_error(function() webhook.new { app_secret = { SECRET }, skip_signature = true } end)
  end)

  it("argument errors do not reveal the secret", function()
    local ok, msg = pcall(webhook.new, { app_secret = SECRET, skip_signature = true })
    assert.is_false(ok)
    assert.is_nil(tostring(msg):find(SECRET, 1, true))
  end)

  it("hook:parse raises for a non-string body", function()
    local hook = default_hook()
    assert.has_error(function() hook:parse(nil, {}) end)
    assert.has_error(function() hook:parse({}, {}) end)
    assert.has_error(function() hook:parse(true, {}) end)
  end)
end)

describe("hostile payloads: memory", function()
  it("does not grow over 20k bad and 20k good parses", function()
    local hook = default_hook()
    local good = helpers.fixture("signatures/valid_text_compact.json").raw_body
    local good_h = signed(good)
    local bad = good:sub(1, 300)
    local bad_h = signed(bad)
    local badsig_h = { ["X-Hub-Signature-256"] = "sha256=" .. string.rep("0", 64) }
    local function round(n)
      for _ = 1, n do
        local events = hook:parse(good, good_h)
        assert(events and #events == 1 and events[1].text)
        local _ = events[1].raw
        local none, err = hook:parse(bad, bad_h)
        assert(none == nil and err.status == 400)
        none, err = hook:parse(good, badsig_h)
        assert(none == nil and err.status == 401)
        local _ = tostring(err)
      end
    end
    round(2000) -- warm up caches and allocator
    collectgarbage()
    collectgarbage()
    local lua_before, rss_before = collectgarbage("count"), rss_kb()
    round(20000)
    collectgarbage()
    collectgarbage()
    local lua_after, rss_after = collectgarbage("count"), rss_kb()
    assert.is_true(lua_after - lua_before < 64,
      ("Lua heap grew by %.1f kB"):format(lua_after - lua_before))
    -- RSS means nothing under ASan (quarantine) or valgrind, which both preload a library.
    local preload = os.getenv("LD_PRELOAD")
    if rss_before and rss_after and (preload == nil or preload == "") then
      assert.is_true(rss_after - rss_before < 2048,
        ("RSS grew by %d kB"):format(rss_after - rss_before))
    end
  end)
end)
