-- The webhook examples of Meta's OpenAPI description (spec/fixtures/reference/
-- business-messaging-api_v23.0.yaml, paths["/whatsapp/webhooks"].post.requestBody
-- .content["application/json"].examples): each example's `value` is written out as JSON,
-- signed, parsed with hook:parse and its events checked against doc/events.md.
local cjson = require "cjson"
local lyaml = require "lyaml"
local helpers = require "helpers"

local YAML = "spec/fixtures/reference/business-messaging-api_v23.0.yaml"
local SECRET = "test_app_secret"

local WABA_A = "419561257915477"
local WABA_B = "102290129340398"
local PNID = "106540352242922"
local DPN = "15550783881"
local FROM = "16505551234"

local THUMBS_UP = "\240\159\145\141"            -- U+1F44D
local LUCIA = "Luc\195\173a G\195\179mez"       -- "Lucía Gómez" in UTF-8

---------------------------------------------------------------------------------------------
-- YAML -> JSON text (written here so that YAML nulls, integers and strings are kept exactly)
---------------------------------------------------------------------------------------------
local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

local function to_json(v)
  if v == lyaml.null then return "null" end
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type and math.type(v) == "integer" then return tostring(v) end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  assert(t == "table", "cannot write a " .. t .. " as JSON")
  local parts = {}
  if is_array(v) then
    for i = 1, #v do parts[i] = to_json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. to_json(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function load_examples()
  local doc = lyaml.load(helpers.read(YAML))
  return doc.paths["/whatsapp/webhooks"].post.requestBody.content["application/json"].examples
end

---------------------------------------------------------------------------------------------
-- Expectation language (as in webhook_fixtures_spec.lua)
--   NIL / FALSY / SAME(v) / SRC"path" (deep-equal to that path of the event's source object,
--   decoded from the JSON sent) / ALL{...} / partial tables / plain values (assert.equal;
--   the event's `timestamp` must be an integer)
---------------------------------------------------------------------------------------------
local expect = require "expect"
local NIL, FALSY, SRC, ALL = expect.NIL, expect.FALSY, expect.SRC, expect.ALL
local match, with = expect.match, expect.with
local SHEENA = { name = "Sheena Nelson", wa_id = FROM, user_id = NIL, parent_user_id = NIL,
                 username = NIL }

-- an inbound message of a `messages` change from the user +1 650-555-1234
local function MSG(waba, t)
  return with({ kind = "message", field = "messages", waba_id = waba, phone_number_id = PNID,
                display_phone_number = DPN, from = FROM, contact = SHEENA, entry_time = NIL },
              t)
end

-- a group_* change: the whole value is kept, no flat `event`
local function GROUP(field, value)
  return { kind = "change", type = field, field = field, waba_id = WABA_B, entry_time = NIL,
           phone_number_id = PNID, display_phone_number = DPN, event = NIL, id = NIL,
           value = ALL{ SRC"", { messaging_product = "whatsapp", groups = value } } }
end

local GROUP_ID = "Y2FwaV9ncm91cDoxODA1NTU1MDE3MjoxMjAzNjMyMjI3NzE5NjMwNjcZD"
local REQUEST_ID = "784D93D0C468593037EA0B1ECA245D9C"

---------------------------------------------------------------------------------------------
-- One entry per example name
---------------------------------------------------------------------------------------------
local EXPECT = {}

EXPECT["Text Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "text", id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                timestamp = 1749416383, text = "Does it come in another color?", context = NIL,
                referral = NIL }),
} }

EXPECT["Text Message with Context (Product Inquiry)"] = { n = 1, events = {
  MSG(WABA_B, { type = "text", id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=",
                timestamp = 1750016800, text = "Is this still available?",
                context = { from = DPN,
                            id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA",
                            forwarded = NIL, frequently_forwarded = NIL,
                            referred_product = { catalog_id = "194836987003835",
                                                 product_retailer_id = "di9ozbzfi4" } } }),
} }

EXPECT["Text Message from Click to WhatsApp Ad"] = { n = 1, events = {
  MSG(WABA_B, { type = "text", id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
                timestamp = 1750275992, text = "Hello! Can I get more info on this?",
                context = NIL,
                referral = ALL{ SRC"referral", {
                  source_url = "https://fb.me/3cr4Wqqkv", source_id = "120226305854810726",
                  source_type = "ad", body = "Summer Succulents are here!",
                  headline = "Chat with us", media_type = "image",
                  image_url = "https://scontent.xx.fbcdn.net/v/t45.1...",
                  welcome_message = { text = "Hi there! Let us know how we can help!" } } } }),
} }

EXPECT["Image Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "image", id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                timestamp = 1744344496, text = "Taj Mahal",
                media = { id = "1003383421387256", mime_type = "image/jpeg",
                          sha256 = "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
                          caption = "Taj Mahal", url = NIL, filename = NIL, voice = NIL,
                          animated = NIL } }),
} }

EXPECT["Button Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "button", id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUU0M0MxQzQzMUJCMTMwNUZFOQA=",
                timestamp = 1750091045, text = "Unsubscribe", payload = "Unsubscribe",
                reply = { id = "Unsubscribe", title = "Unsubscribe" },
                context = { from = DPN,
                            id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA" } }),
} }

EXPECT["Contact Sharing Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "contacts",
                id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                timestamp = 1744344496, text = NIL,
                contacts = ALL{ SRC"contacts", { {
                  name = { formatted_name = LUCIA, first_name = "Luc\195\173a",
                           last_name = "G\195\179mez" },
                  org = { company = "Google" },
                  phones = { { wa_id = "19835552319", phone = "+1 (983) 555-2319",
                               type = "MOBILE" } } } } } }),
} }

EXPECT["Interactive Button Reply Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "button_reply",
                id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=",
                timestamp = 1750025136, text = "Cancel", payload = NIL,
                reply = { id = "cancel-button", title = "Cancel", description = NIL },
                context = { from = DPN,
                            id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA" } }),
} }

EXPECT["Interactive List Reply Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "list_reply",
                id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJDQ0NDM0FEODY4ODkzOTc5RgA=",
                timestamp = 1749854575, text = "Priority Mail Express",
                reply = { id = "priority_express", title = "Priority Mail Express",
                          description = "Next Day to 2 Days" },
                context = { from = DPN,
                            id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJGMzEyNzhENTZDMzNGODlDRDgA" } }),
} }

EXPECT["Location Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "location",
                id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTU2MjZEMDBGRkE3MENEMDE0RQA=",
                timestamp = 1744344496, text = NIL,
                location = { latitude = 37.44221496582, longitude = -122.16165924072,
                             name = "Philz Coffee", address = "101 Forest Ave, Palo Alto, CA 94301",
                             url = "https://philzcoffee.com/" } }),
} }

EXPECT["Order Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "order", id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTEyQjFGNzI1QTQxMjI5QTMyOQA=",
                timestamp = 1750096325, text = "",
                order = ALL{ SRC"order", { catalog_id = "194836987003835", text = "",
                  product_items = {
                    { product_retailer_id = "di9ozbzfi4", quantity = 2, item_price = 30,
                      currency = "USD" },
                    { product_retailer_id = "nqryix03ez", quantity = 1, item_price = 25,
                      currency = "USD" },
                  } } } }),
} }

EXPECT["Reaction Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "reaction",
                id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                timestamp = 1749419544, text = NIL,
                reaction = { message_id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA",
                             emoji = THUMBS_UP, removed = FALSY } }),
} }

EXPECT["System Message"] = { n = 1, events = {
  MSG(WABA_B, { type = "system", id = "wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==",
                timestamp = 1750269342, contact = NIL, -- no contacts[] in system messages
                text = "User Sheena Nelson changed from 16505551234 to 12195555358",
                system = ALL{ SRC"system", { wa_id = "12195555358",
                                             type = "user_changed_number" } } }),
} }

EXPECT["Unsupported Message"] = { n = 1, events = {
  MSG(WABA_A, { type = "unsupported",
                id = "wamid.HBgLMTQyMDU1NTA3NDkVAgASGBI5N0MwRjg0RTVBNUI1RDA2OTkA",
                timestamp = 1750090702, unsupported_type = NIL, text = NIL,
                errors = { { code = 131051, title = "Message type unknown",
                             message = "Message type unknown",
                             details = "Message type is currently not supported.",
                             href = NIL } } }),
} }

EXPECT["Group Create Message"] = { n = 1, events = {
  GROUP("group_lifecycle_update", { {
    type = "group_create", group_id = GROUP_ID, request_id = REQUEST_ID,
    subject = "your-group-subject", description = "your-group-description",
    timestamp = "1750269342",
    added_participants = { { wa_id = 16505551234, input = 16505551234 },
                           { wa_id = 16505551235, input = 16505551235 } } } }),
} }

EXPECT["Group Remove Participants"] = { n = 1, events = {
  GROUP("group_participants_update", { {
    type = "group_create", group_id = GROUP_ID, request_id = REQUEST_ID,
    timestamp = "1750269342",
    removed_participants = { { wa_id = 16505551234, input = 16505551234 },
                             { wa_id = 16505551235, input = 16505551235 } } } }),
} }

EXPECT["Group Settings Update"] = { n = 1, events = {
  GROUP("group_settings_update", { {
    type = "group_settings_update", group_id = GROUP_ID, request_id = REQUEST_ID,
    timestamp = "1750269342",
    profile_picture = { mime_type = "image/jpeg", sha256 = "SfInY0gGKTsJlUWbwxC1k+FAD0FZHv" } } }),
} }

---------------------------------------------------------------------------------------------
local hook

local function parse_json(body)
  if not hook then
    hook = require("whatsapp.webhook").new{ app_secret = SECRET }
  end
  return hook:parse(body, helpers.signed(body))
end

-- source objects in event order: messages, statuses, errors of `messages` changes, else values
local function source_objects(src)
  local out = {}
  for _, entry in ipairs(src.entry) do
    for _, change in ipairs(entry.changes) do
      local v, n = change.value, #out
      if change.field == "messages" then
        for _, list in ipairs{ v.messages or {}, v.statuses or {}, v.errors or {} } do
          for _, obj in ipairs(list) do out[#out + 1] = obj end
        end
      end
      if #out == n then out[#out + 1] = v end
    end
  end
  return out
end

describe("OpenAPI webhook examples", function()
  local examples = load_examples()
  local names = {}
  for name in pairs(examples) do names[#names + 1] = name end
  table.sort(names)

  it("finds the 16 examples", function()
    assert.equal(16, #names)
  end)

  it("has an expectation entry for every example and no stale entry", function()
    local missing, stale = {}, {}
    for _, name in ipairs(names) do
      if not EXPECT[name] then missing[#missing + 1] = name end
    end
    for name in pairs(EXPECT) do
      if not examples[name] then stale[#stale + 1] = name end
    end
    table.sort(stale)
    assert.same({}, missing)
    assert.same({}, stale)
  end)

  it("writes JSON that decodes back to the YAML value", function()
    local function strip(v)
      if v == lyaml.null then return cjson.null end
      if type(v) ~= "table" then return v end
      local out = {}
      for k, x in pairs(v) do out[k] = strip(x) end
      return out
    end
    for _, name in ipairs(names) do
      assert.same(strip(examples[name].value), cjson.decode(to_json(examples[name].value)), name)
    end
  end)

  for _, name in ipairs(names) do
    it(name, function()
      local exp = EXPECT[name]
      assert.is_table(exp, "no expectation entry for example " .. name)
      local body = to_json(examples[name].value)
      local events, err = parse_json(body)
      assert.is_nil(err, name .. ": parse error " .. tostring(err and (err.message or err.code)))
      assert.is_table(events, name)
      assert.equal(exp.n, #events, name .. ": number of events")
      local src = cjson.decode(body)
      local objs = source_objects(src)
      assert.equal(#objs, #events, name .. ": one event per message / status / error / change")
      for i, want in ipairs(exp.events) do
        local ev = events[i]
        local path = name .. " event " .. i
        assert.is_table(ev, path)
        match(want, ev, path, objs[i], nil, nil)
        assert.is_string(ev.type, path .. ".type")
        assert.same(objs[i], ev.raw, path .. ".raw")
        if ev.kind == "message" then
          assert.equal(objs[i].id, ev.id, path .. ".id (vs source)")
          assert.equal(tonumber(objs[i].timestamp), ev.timestamp, path .. ".timestamp (vs source)")
          if objs[i].text then assert.equal(objs[i].text.body, ev.text, path .. ".text (vs source)") end
        end
        for j, e in ipairs(type(ev.errors) == "table" and ev.errors or {}) do
          assert.is_not_nil(e.category, path .. ".errors[" .. j .. "].category")
          assert.is_nil(tostring(e):match("^table: "), path .. ".errors[" .. j .. "] __tostring")
        end
      end
    end)
  end
end)
