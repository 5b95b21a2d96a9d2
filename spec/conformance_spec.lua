-- The message builders (whatsapp.message) against Meta's OpenAPI description
-- (spec/fixtures/reference/business-messaging-api_v23.0.yaml) and the request fixtures:
--
-- 1. spec/schema.lua, the JSON-Schema validator used here, has its own tests: it must
--    reject what is wrong, with the path of the failure.
-- 2. Every request example of paths["/{Version}/{Phone-Number-ID}/messages"].post has a
--    builder call in EXAMPLES whose output (encoded to JSON and decoded again) equals the
--    example exactly; an example without an entry fails.
-- 3. The same for every spec/fixtures/requests/*.json whose endpoint (manifest.json) is
--    POST /{PHONE_NUMBER_ID}/messages, in FIXTURES.
-- 4. Every builder output of 2, 3 and EXTRA validates against #/components/schemas/Message,
--    except where Meta's schema itself is wrong or incomplete: each such case names the
--    SCHEMA_DEFECTS it runs into, and must run into exactly those.
--
-- Where an example or fixture differs from what a builder writes on purpose (a field the
-- API requires is missing from Meta's example, a value in another case), the entry lists
-- the JSON paths that differ, with the reason; they must differ, and nothing else may.
local cjson = require "cjson"
local lyaml = require "lyaml"
local helpers = require "helpers"
local schema = require "schema"
local message = require "whatsapp.message"
local P = message.param

local YAML = "spec/fixtures/reference/business-messaging-api_v23.0.yaml"
local MESSAGES_PATH = "/{Version}/{Phone-Number-ID}/messages"
local MESSAGE_SCHEMA = "#/components/schemas/Message"

local doc = lyaml.load(helpers.read(YAML))
local validator = schema.new(doc, { nulls = { cjson.null, lyaml.null } })

---------------------------------------------------------------------------------------------
-- JSON values: deep comparison with a readable path
---------------------------------------------------------------------------------------------
local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

local function jtype(v)
  if v == cjson.null or v == lyaml.null then return "null" end
  if type(v) == "table" then
    if next(v) == nil then return "empty" end
    return is_array(v) and "array" or "object"
  end
  return type(v)
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  return tostring(v)
end

-- Every difference between `got` and `want`: a list of { path = "/a/0/b", why = "..." }.
local function diff(got, want, path, out)
  path, out = path or "", out or {}
  local tg, tw = jtype(got), jtype(want)
  if tg ~= tw then
    out[#out + 1] = { path = path, why = string.format("%s %s, expected %s %s", tg, show(got), tw, show(want)) }
  elseif tg == "object" or tg == "array" then
    local keys = {}
    for k in pairs(want) do keys[#keys + 1] = k end
    for k in pairs(got) do
      if want[k] == nil then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local sub = path .. "/" .. (tg == "array" and tostring(k - 1) or tostring(k))
      if got[k] == nil then
        out[#out + 1] = { path = sub, why = "missing (expected " .. show(want[k]) .. ")" }
      elseif want[k] == nil then
        out[#out + 1] = { path = sub, why = "unexpected " .. show(got[k]) }
      else
        diff(got[k], want[k], sub, out)
      end
    end
  elseif got ~= want then
    out[#out + 1] = { path = path, why = string.format("%s, expected %s", show(got), show(want)) }
  end
  return out
end

-- The builder output as it goes on the wire: encoded, then decoded.
local function wire(msg)
  return cjson.decode(message.encode(msg))
end

-- Compare, allowing exactly the listed paths to differ.
local function assert_same(got, want, differs)
  differs = differs or {}
  local d = diff(got, want)
  local lines, seen = {}, {}
  for _, e in ipairs(d) do
    seen[e.path] = true
    if not differs[e.path] then lines[#lines + 1] = e.path .. ": " .. e.why end
  end
  for p in pairs(differs) do
    if not seen[p] then lines[#lines + 1] = p .. ": listed as differing, but is the same" end
  end
  table.sort(lines)
  assert(#lines == 0, "builder output vs expected JSON:\n  " .. table.concat(lines, "\n  "))
end

---------------------------------------------------------------------------------------------
-- Where Meta's Message schema is wrong or incomplete. An error of the validator matches a
-- defect when its keyword is the same and its path matches the Lua pattern.
---------------------------------------------------------------------------------------------
local SCHEMA_DEFECTS = {
  language_policy = {
    keyword = "required", path = "^/template/language/policy$",
    reason = "LanguageObject requires `policy`, but its only value (deterministic) is optional: Meta's own "
      .. "examples, and the API, take a language with only `code`",
  },
  component_type = {
    keyword = "enum", path = "^/template/components/%d+/type$",
    reason = "TemplateComponent.type lists header/body/button only; limited_time_offer (and carousel) "
      .. "are documented component types",
  },
  button_sub_type = {
    keyword = "enum", path = "^/template/components/%d+/sub_type$",
    reason = "TemplateComponent.sub_type lists quick_reply/url/catalog only (no copy_code, flow, mpm), and "
      .. "is case-sensitive where Meta's own example sends CATALOG",
  },
  button_index = {
    keyword = "pattern", path = "^/template/components/%d+/index$",
    reason = "TemplateComponent.index has the pattern ^[2-6, 11-14]$, a character class that rejects \"0\" "
      .. "(the first button) while Meta's examples send \"0\"",
  },
  button_index_number = {
    keyword = "type", path = "^/template/components/%d+/index$",
    reason = "TemplateComponent.index is typed string, while Meta's own examples and recorded traffic send "
      .. "numbers (0, 1)",
  },
  recipient_type_omitted = {
    keyword = "required", path = "^/recipient_type$",
    reason = "BaseMessageProperties requires recipient_type, which defaults to individual: Meta's own "
      .. "examples leave it out",
  },
  bsuid_recipient = {
    keyword = "required", path = "^/to$",
    reason = "a message to a business-scoped user id has `recipient` instead of `to` (not in v23 schema)",
  },
  bsuid_recipient_field = {
    keyword = "additionalProperties", path = "^/recipient$",
    reason = "`recipient` (BSUID addressing) is not in the v23 schema",
  },
  biz_opaque_callback_data = {
    keyword = "additionalProperties", path = "^/biz_opaque_callback_data$",
    reason = "biz_opaque_callback_data is a documented message field, missing from the schema's "
      .. "closed (additionalProperties: false) message objects",
  },
  numeric_coordinates = {
    keyword = "type", path = "^/location/l[a-z]+itude$",
    reason = "LocationMessage types latitude/longitude as strings, while Meta's own example (and recorded "
      .. "traffic) sends numbers",
  },
  interactive_type = {
    keyword = "enum", path = "^/interactive/type$",
    reason = "InteractiveObject.type lacks cta_url, location_request_message, order_details and "
      .. "order_status, all documented (and in this file's own examples)",
  },
  interactive_action = {
    keyword = "oneOf", path = "^/interactive/action$",
    reason = "ActionObject has no branch for cta_url, send_location, review_and_pay or review_order actions",
  },
  header_placeholder = {
    keyword = "enum", path = "^/interactive/header/type$",
    reason = "Meta's Multi-Product example has the placeholder <HEADER_TYPE> as header type",
  },
  contact_field_type_case = {
    keyword = "enum", path = "^/contacts/%d+/[a-z]+/%d+/type$",
    reason = "contact address/email/phone/url types are enums of HOME/WORK, while recorded traffic sent "
      .. "Home/Work and the API accepted it",
  },
  not_a_message = {
    keyword = "oneOf", path = "^$",
    reason = "the schema describes only messages; mark-as-read / typing-indicator bodies (no `type`) are "
      .. "posted to the same endpoint, as this file's own example \"Send typing indicator and read receipt\" shows",
  },
}

-- The defect ids the errors run into; errors that match none are returned as text.
local function classify(errs)
  local ids, unknown = {}, {}
  for _, e in ipairs(errs) do
    local hit
    for id, d in pairs(SCHEMA_DEFECTS) do
      if e.keyword == d.keyword and e.path:find(d.path) then hit = id end
    end
    if hit then ids[hit] = true else unknown[#unknown + 1] = schema.format({ e }) end
  end
  return ids, unknown
end

local function assert_schema(msg, defects)
  local _, errs = validator:validate(wire(msg), MESSAGE_SCHEMA)
  local ids, unknown = classify(errs)
  local want = {}
  for _, id in ipairs(defects or {}) do
    assert(SCHEMA_DEFECTS[id], "no schema defect named " .. id)
    want[id] = true
  end
  local lines = {}
  for _, u in ipairs(unknown) do lines[#lines + 1] = "invalid: " .. u end
  for id in pairs(ids) do
    if not want[id] then lines[#lines + 1] = "runs into schema defect " .. id .. " (not listed for this case)" end
  end
  for id in pairs(want) do
    if not ids[id] then lines[#lines + 1] = "listed schema defect " .. id .. " does not occur" end
  end
  table.sort(lines)
  assert(#lines == 0, "against " .. MESSAGE_SCHEMA .. ":\n  " .. table.concat(lines, "\n  "))
end

---------------------------------------------------------------------------------------------
-- Meta's request examples: name -> { build, differs?, schema? }
---------------------------------------------------------------------------------------------
local R = "{{Recipient-Phone-Number}}"
local PREV = "<MSGID_OF_PREV_MSG>"
local REPLYING = "<MSGID_OF_MSG_YOU_ARE_REPLYING_TO>"
local NO_RT = { recipient_type = false }
local TEMPLATE_DEFECTS = { "language_policy" }

local SAMPLE_DATE = P.date_time("February 25, 1977", {
  calendar = "GREGORIAN", day_of_month = 25, day_of_week = 5, hour = 15, minute = 33, month = 2, year = 1977 })
local SAMPLE_BODY = { "text-string", P.currency("USD", 100990, "$100.99"), SAMPLE_DATE }

local CONTACT_CARD = {
  addresses = {
    { city = "Menlo Park", country = "United States", country_code = "us", state = "CA",
      street = "1 Hacker Way", type = "HOME", zip = "94025" },
    { city = "Menlo Park", country = "United States", country_code = "us", state = "CA",
      street = "200 Jefferson Dr", type = "WORK", zip = "94025" },
  },
  birthday = "2012-08-18",
  emails = { { email = "test@fb.com", type = "WORK" }, { email = "test@whatsapp.com", type = "HOME" } },
  name = { first_name = "John", formatted_name = "John Smith", last_name = "Smith", middle_name = "D.",
           prefix = "Dr", suffix = "Jr" },
  org = { company = "WhatsApp", department = "Design", title = "Manager" },
  phones = { { phone = "+1 (940) 555-1234", type = "HOME" },
             { phone = "+1 (650) 555-1234", type = "WORK", wa_id = "16505551234" } },
  urls = { { type = "WORK", url = "https://www.facebook.com" }, { type = "HOME", url = "https://www.whatsapp.com" } },
}

local LIST_SECTIONS = {
  { title = "<LIST_SECTION_1_TITLE>", rows = {
    { id = "<LIST_SECTION_1_ROW_1_ID>", title = "<SECTION_1_ROW_1_TITLE>", description = "<SECTION_1_ROW_1_DESC>" },
    { id = "<LIST_SECTION_1_ROW_2_ID>", title = "<SECTION_1_ROW_2_TITLE>", description = "<SECTION_1_ROW_2_DESC>" },
  } },
  { title = "<LIST_SECTION_2_TITLE>", rows = {
    { id = "<LIST_SECTION_2_ROW_1_ID>", title = "<SECTION_2_ROW_1_TITLE>", description = "<SECTION_2_ROW_1_DESC>" },
    { id = "<LIST_SECTION_2_ROW_2_ID>", title = "<SECTION_2_ROW_2_TITLE>", description = "<SECTION_2_ROW_2_DESC>" },
  } },
}
local LIST_OPTS = { header = "<HEADER_TEXT>", footer = "<FOOTER_TEXT>" }

local function flow_params(extra)
  local p = { cta = "Open Flow!", token = "<FLOW_TOKEN>", action = "navigate", screen = "<SCREEN_ID>",
              data = { ["<CUSTOM_KEY>"] = "<CUSTOM_VALUE>" } }
  for k, v in pairs(extra) do p[k] = v end
  return p
end
local FLOW_OPTS = { header = "<HEADER_TEXT>", footer = "<FOOTER_TEXT>" }
local DRAFT = "Not shown in draft mode"
local DRAFT_OPTS = { header = DRAFT, footer = DRAFT }

local EXAMPLES = {
  ["Send Audio Message by ID"] = { build = function() return message.audio(R, "<AUDIO_OBJECT_ID>") end },
  ["Send Audio Message by URL"] = {
    build = function() return message.audio(R, { link = "<http(s)://audio-url>" }) end },
  ["Send Catalog Message"] = {
    build = function()
      return message.catalog("+16505551234", "Hello! Thanks for your interest. Ordering is easy. Just visit our "
        .. "catalog and add items to purchase.",
        { thumbnail = "2lc20305pt", footer = "Best grocery deals on WhatsApp!" })
    end },
  ["Send Catalog Template Message"] = {
    build = function()
      return message.template("+16505551234", "intro_catalog_offer", "en_US", {
        body = { "100", "400", "3" },
        buttons = { { type = "CATALOG", thumbnail = "2lc20305pt", index = 0 } } })
    end,
    schema = { "language_policy", "button_sub_type", "button_index_number" } },
  ["Send Contact Message"] = {
    build = function() return message.contacts(R, { CONTACT_CARD }, NO_RT) end,
    schema = { "recipient_type_omitted" } },
  ["Send Document Message by ID"] = {
    build = function()
      return message.document(R, "<DOCUMENT_OBJECT_ID>",
                              { caption = "<DOCUMENT_CAPTION_TO_SEND>", filename = "<DOCUMENT_FILENAME>" })
    end },
  ["Send Document Message by URL"] = {
    build = function()
      return message.document(R, { link = "<http(s)://document-url>" }, { caption = "<DOCUMENT-CAPTION-TEXT>" })
    end },
  ["Send Draft Flow by ID"] = {
    build = function()
      return message.flow(R, DRAFT, flow_params{ id = "{{Flow-ID}}", cta = DRAFT, mode = "draft" }, DRAFT_OPTS)
    end },
  ["Send Draft Flow by Name"] = {
    build = function()
      return message.flow(R, DRAFT, flow_params{ name = "{{Flow-Name}}", cta = DRAFT, mode = "draft" }, DRAFT_OPTS)
    end },
  ["Send Flow Template Message"] = {
    build = function()
      return message.template(R, "<TEMPLATE_NAME>", "en_US", {
        buttons = { { type = "flow", token = "<FLOW_TOKEN>", data = { ["<CUSTOM_KEY>"] = "<CUSTOM_VALUE>" } } },
      }, NO_RT)
    end,
    schema = { "language_policy", "recipient_type_omitted", "button_sub_type", "button_index" } },
  ["Send Image Message by ID"] = { build = function() return message.image(R, "<IMAGE_OBJECT_ID>") end },
  ["Send Image Message by URL"] = {
    build = function() return message.image(R, { link = "http(s)://image-url" }) end },
  ["Send List Message"] = {
    build = function() return message.list(R, "<BODY_TEXT>", "<BUTTON_TEXT>", LIST_SECTIONS, LIST_OPTS) end },
  ["Send Location Message"] = {
    build = function()
      return message.location(R, { latitude = 37.758056, longitude = -122.425332, name = "META HQ",
                                   address = "1 Hacker Way, Menlo Park, CA 94025" })
    end,
    schema = { "numeric_coordinates" } },
  ["Send Message Template Interactive"] = {
    build = function()
      return message.template(R, "template-name", "language-and-locale-code", {
        header = P.image{ link = "http(s)://the-image-url" },
        body = SAMPLE_BODY,
        buttons = { "aGlzIHRoaXMgaXMgY29v", "9rwnB8RbYmPF5t2Mn09x4h" } })
    end,
    schema = { "language_policy", "button_index" } },
  ["Send Message Template Media"] = {
    build = function()
      return message.template(R, "template-name", "language-and-locale-code", {
        header = P.image{ link = "http(s)://the-image-url" }, body = SAMPLE_BODY })
    end,
    schema = TEMPLATE_DEFECTS },
  ["Send Message Template Text"] = {
    build = function()
      return message.template(R, "template-name", "language-and-locale-code", { body = SAMPLE_BODY })
    end,
    schema = TEMPLATE_DEFECTS },
  ["Send Multi-Product Message"] = {
    build = function()
      return message.product_list(R, "146265584024623", {
        { title = "<SECTION1_TITLE>",
          product_items = { "<YOUR_PRODUCT1_SKU_IN_CATALOG>", "<YOUR_SECOND_PRODUCT1_SKU_IN_CATALOG>" } },
        { title = "<SECTION2_TITLE>",
          items = { { product_retailer_id = "<YOUR_PRODUCT2_SKU_IN_CATALOG>" },
                    { product_retailer_id = "<YOUR_SECOND_PRODUCT2_SKU_IN_CATALOG>" } } },
      }, { header = { type = "<HEADER_TYPE>", text = "<YOUR_TEXT_HEADER_CONTENT>" },
           body = "<YOUR_TEXT_BODY_CONTENT>", footer = "<YOUR_TEXT_FOOTER_CONTENT>" })
    end,
    schema = { "header_placeholder" } },
  ["Send Order Details Message"] = {
    build = function()
      return message.order_details("{{Recipient-WA-Phone-Number}}", "your-text-body-content", {
        currency = "INR",
        order = {
          discount = { description = "optional_text", discount_program_name = "optional_text", offset = 100,
                       value = 100 },
          items = { { amount = { offset = 100, value = 1500 }, name = "bread", quantity = 1, retailer_id = "1234567",
                      sale_amount = { offset = 100, value = 1000 } } },
          shipping = { description = "optional_text", offset = 100, value = 100 },
          status = "pending",
          subtotal = { offset = 100, value = 1000 },
          tax = { description = "optional_text", offset = 100, value = 100 },
        },
        payment_configuration = "my-payment-config-name",
        payment_type = "upi",
        reference_id = "unique-reference-id",
        total_amount = { offset = 100, value = 1100 },
        type = "digital-goods",
      }, { header = { image = "https://upload.wikimedia.org/wikipedia/commons/thumb/3/3b/"
                        .. "Home_made_sour_dough_bread.jpg/640px-Home_made_sour_dough_bread.jpg" },
           footer = "your-text-footer-content" })
    end,
    schema = { "interactive_type", "interactive_action" } },
  ["Send Order Status Message"] = {
    build = function()
      return message.order_status("{{Recipient-WA-Phone-Number}}", "your-text-body-content", {
        order = { description = "optional-text", status = "processing" },
        reference_id = "unique-reference-id-from-order-details-msg" })
    end,
    schema = { "interactive_type", "interactive_action" } },
  ["Send Published Flow by ID"] = {
    build = function() return message.flow(R, "<BODY_TEXT>", flow_params{ id = "{{Flow-ID}}" }, FLOW_OPTS) end },
  ["Send Published Flow by Name"] = {
    build = function()
      return message.flow(R, "<BODY_TEXT>", flow_params{ name = "{{Flow-Name}}" }, FLOW_OPTS)
    end },
  ["Send Reply Button"] = {
    build = function()
      return message.buttons(R, "<BUTTON_TEXT>", { { id = "<UNIQUE_BUTTON_ID_1>", title = "<BUTTON_TITLE_1>" },
                                                   { id = "<UNIQUE_BUTTON_ID_2>", title = "<BUTTON_TITLE_2>" } })
    end },
  ["Send Reply to Audio Message by ID"] = {
    build = function() return message.audio(R, "<AUDIO_OBJECT_ID>", { reply_to = REPLYING }) end },
  ["Send Reply to Audio Message by URL"] = {
    build = function() return message.audio(R, { link = "http(s)://audio-url" }, { reply_to = REPLYING }) end },
  ["Send Reply to Contact Message"] = {
    build = function()
      return message.contacts(R, CONTACT_CARD, { reply_to = "<MSGID_OF_PREV_MSG>", recipient_type = false })
    end,
    schema = { "recipient_type_omitted" } },
  ["Send Reply to Document Message by ID"] = {
    build = function()
      return message.document(R, "<DOCUMENT_OBJECT_ID>", { caption = "<DOCUMENT_CAPTION_TO_SEND>",
                                                           filename = "<DOCUMENT_FILENAME>", reply_to = REPLYING })
    end },
  ["Send Reply to Document Message by URL"] = {
    build = function()
      return message.document(R, { link = "<http(s)://document-url>" },
                              { caption = "<DOCUMENT_CAPTION_TEXT>", reply_to = REPLYING })
    end },
  ["Send Reply to Image Message by ID"] = {
    build = function() return message.image(R, "<IMAGE_OBJECT_ID>", { reply_to = PREV }) end },
  ["Send Reply to Image Message by URL"] = {
    build = function() return message.image(R, { link = "http(s)://image-url" }, { reply_to = PREV }) end },
  ["Send Reply to List Message"] = {
    build = function()
      return message.list(R, "<BODY_TEXT>", "<BUTTON_TEXT>", LIST_SECTIONS,
                          { header = "<HEADER_TEXT>", footer = "<FOOTER_TEXT>", reply_to = PREV })
    end,
    differs = { ["/type"] = "Meta's example leaves out type = \"interactive\", which the API requires "
                           .. "(Message.type is required in the same file)" } },
  ["Send Reply to Location Message"] = {
    build = function()
      return message.location(R, { 37.758056, -122.425332, name = "META HQ",
                                   address = "1 Hacker Way, Menlo Park, CA 94025" }, { reply_to = PREV })
    end,
    schema = { "numeric_coordinates" } },
  ["Send Reply to Sticker Message by ID"] = {
    build = function() return message.sticker(R, "<MEDIA_OBJECT_ID>", { reply_to = REPLYING }) end },
  ["Send Reply to Sticker Message by URL"] = {
    build = function() return message.sticker(R, { link = "<http(s)://sticker-url>" }, { reply_to = REPLYING }) end },
  ["Send Reply to Text Message"] = {
    build = function()
      return message.text(R, "<TEXT_MSG_CONTENT>", { preview_url = false, reply_to = PREV })
    end },
  ["Send Reply to Video Message by ID"] = {
    build = function()
      return message.video(R, "<VIDEO_OBJECT_ID>", { caption = "<VIDEO_CAPTION_TEXT>", reply_to = REPLYING })
    end },
  ["Send Reply to Video Message by URL"] = {
    build = function()
      return message.video(R, { link = "<http(s)://video-url>" },
                           { caption = "<VIDEO_CAPTION_TEXT>", reply_to = REPLYING })
    end },
  ["Send Reply with Reaction Message"] = {
    build = function() return message.reaction(R, "wamid.HBgLM...", "\240\159\152\128") end },
  ["Send Sample Issue Resolution Template"] = {
    build = function()
      return message.template(R, "sample_issue_resolution", { code = "en_US", policy = "deterministic" }, {
        body = { "*Mr. Jones*" },
        buttons = { { type = "quick_reply", index = 0, parameters = { { type = "text", text = true } } },
                    { type = "quick_reply", index = 1, parameters = { { type = "text", text = false } } } },
      }, NO_RT)
    end,
    schema = { "recipient_type_omitted", "button_index_number" } },
  ["Send Sample Shipping Confirmation Template"] = {
    build = function()
      return message.template("16315555555", "template-name", "language-and-locale-code", { body = SAMPLE_BODY })
    end,
    schema = TEMPLATE_DEFECTS },
  ["Send Sample Text Message"] = {
    build = function()
      return message.template("16315555555", "template-name", "language-and-locale-code", { body = SAMPLE_BODY })
    end,
    schema = TEMPLATE_DEFECTS },
  ["Send Single Product Message"] = {
    build = function()
      return message.product(R, "367025965434465", "<ID_TEST_ITEM_1>",
                             { body = "<OPTIONAL_BODY_TEXT>", footer = "<OPTIONAL_FOOTER_TEXT>" })
    end },
  ["Send Sticker Message by ID"] = { build = function() return message.sticker(R, "<MEDIA_OBJECT_ID>") end },
  ["Send Sticker Message by URL"] = {
    build = function() return message.sticker(R, { link = "<http(s)://sticker-url>" }) end },
  ["Send Test Message"] = {
    build = function() return message.template(R, "hello_world", "en_US", nil, NO_RT) end,
    schema = { "language_policy", "recipient_type_omitted" } },
  ["Send Text Message"] = {
    build = function() return message.text(R, "text-message-content", { preview_url = false }) end },
  ["Send Text Message with Preview URL"] = {
    build = function()
      return message.text(R, "Please visit https://youtu.be/hpltvTEiRrY.",
                          { preview_url = true, recipient_type = false })
    end,
    differs = { ["/type"] = "Meta's example leaves out type = \"text\", which the API requires "
                           .. "(Message.type is required in the same file)" },
    schema = { "recipient_type_omitted" } },
  ["Send Video Message by ID"] = {
    build = function() return message.video(R, "<VIDEO_OBJECT_ID>", { caption = "<VIDEO_CAPTION_TEXT>" }) end },
  ["Send Video Message by URL"] = {
    build = function()
      return message.video(R, { link = "<http(s)://video-url>" }, { caption = "<VIDEO_CAPTION_TEXT>" })
    end },
  ["Send typing indicator and read receipt"] = {
    build = function()
      return message.read("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUYzMjEzNDM2RTZGQ0MzMDJBRgA=", { typing = true })
    end,
    schema = { "not_a_message" } },
}

---------------------------------------------------------------------------------------------
-- Request fixtures: file -> { build, differs?, schema? }
---------------------------------------------------------------------------------------------
local U = "15550002222"
local UP = "+15550002222"
local LOOKASIDE = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid="
local UPPER_BUTTON = {
  ["/interactive/type"] = "recorded from a Java SDK that sends interactive.type in upper case (BUTTON); "
    .. "the builder writes the documented \"button\"" }

local FIXTURES = {
  ["audio_by_id.json"] = { build = function() return message.audio(U, "914268667232441") end },
  ["audio_voice_note.json"] = {
    build = function() return message.audio(UP, "1013859600285441", { voice = true }) end },
  ["contacts_full_card.json"] = {
    build = function()
      local addr = { street = "1 Example Street", city = "Example City", state = "CA", zip = "94025",
                     country = "United States", country_code = "US", type = "Work" }
      return message.contacts(U, { {
        addresses = { addr, addr },
        birthday = "2019-01-01",
        emails = { { email = "contact1@example.com", type = "Work" },
                   { email = "contact2@example.com", type = "Home" } },
        name = { formatted_name = "Contact One", first_name = "Contact", last_name = "One", middle_name = "Middle",
                 suffix = "Jr.", prefix = "Dr." },
        org = { company = "Example Co", department = "Engineering", title = "Engineer" },
        phones = { { phone = "15550004444", type = "Home", wa_id = "15550003333" },
                   { phone = "15550005555", type = "Work", wa_id = "15550003333" } },
        urls = { { url = "https://example.com", type = "Home" }, { url = "https://example.com", type = "Work" } },
      } })
    end,
    schema = { "contact_field_type_case" } },
  ["document_by_id_with_filename.json"] = {
    build = function()
      return message.document(U, "1753306975419607", { caption = "Example caption", filename = "custom_name" })
    end },
  ["document_by_link_with_filename.json"] = {
    build = function()
      return message.document(U, LOOKASIDE .. "1753306975419607&ext=1728915089&hash=PLACEHOLDER_HASH",
                              { caption = "Example caption", filename = "custom_name" })
    end },
  ["image_by_id_with_caption.json"] = {
    build = function() return message.image(U, "1761991787669262", { caption = "Example caption" }) end },
  ["image_by_link_with_caption.json"] = {
    build = function()
      return message.image(U, "https://example.com/static/profile-pic.avif", { caption = "Example caption" })
    end },
  ["interactive_button_document_header.json"] = {
    build = function()
      return message.buttons(U, "Would you like to confirm your appointment for tomorrow?", {
        { id = "1278454", title = "YES" }, { id = "1278455", title = "NO" }, { id = "1278456", title = "CHANGE" },
      }, { header = { document = "https://www.w3.org/WAI/ER/tests/xhtml/testfiles/resources/pdf/dummy.pdf",
                      filename = "schedule.pdf" },
           footer = "Choose an option:" })
    end,
    differs = UPPER_BUTTON },
  ["interactive_button_image_header.json"] = {
    build = function()
      return message.buttons(UP, "Hi Test! Your gardening workshop is scheduled for 9am tomorrow. Use the buttons "
        .. "if you need to reschedule. Thank you!",
        { { id = "change-button", title = "Change" }, { id = "cancel-button", title = "Cancel" } },
        { header = { image = "2762702990552401" }, footer = "Lucky Shrub: Your gateway to succulents!\226\132\162" })
    end },
  ["interactive_button_text_header.json"] = {
    build = function()
      return message.buttons(U, "I am the body!", {
        { id = "button_1", title = "This is button 1!" }, { id = "button_2", title = "This is button 2!" },
      }, { header = "I am the header!", footer = "I am the footer!" })
    end },
  ["interactive_button_video_header.json"] = {
    build = function()
      return message.buttons(U, "Do you like this video?", { { id = "1278454", title = "YES" },
                                                             { id = "1278455", title = "NO" } },
        { header = { type = "video", video = "https://example.com/media/sample.mp4" }, footer = "Choose an option:" })
    end,
    differs = UPPER_BUTTON },
  ["interactive_call_permission_request.json"] = {
    build = function()
      return message.call_permission_request(U, "We would like to call you to help support your query on "
        .. "Order No: ON-12853.")
    end },
  ["interactive_catalog_message.json"] = {
    build = function()
      return message.catalog(U, "Thanks for your order! Tell us what address you\226\128\153d like this order "
        .. "delivered to.", { thumbnail = "SKU-THUMB-1" })
    end },
  ["interactive_cta_url.json"] = {
    build = function()
      return message.cta_url(UP, "Tap the button below to see available dates.", "See Dates",
        "https://www.luckyshrub.com?clickID=kqDGWd24Q5TRwoEQTICY7W1JKoXvaZOXWAS7h1P76s0R7Paec4",
        { header = { image = "https://www.luckyshrub.com/assets/lucky-shrub-banner-logo-v1.png" },
          footer = "Dates subject to change." })
    end,
    schema = { "interactive_type", "interactive_action" } },
  ["interactive_flow.json"] = {
    build = function()
      return message.flow(U, "Flow message body", {
        flow_message_version = "3", flow_token = "AQAAAAACS5FpgQ_cAAAAAD0QI3s.", flow_id = "123456",
        flow_cta = "Book!", flow_action = "navigate",
        flow_action_payload = { screen = "SCREEN_NAME",
                                data = { product_name = "name", product_description = "description",
                                         product_price = 100 } },
      }, { header = "Flow message header", footer = "Flow message footer" })
    end },
  ["interactive_list.json"] = {
    build = function()
      return message.list(U, "I am the body!", "I am the button CTA", {
        { title = "I am section 1", rows = {
          { id = "section_1_row_1", title = "I am row 1",
            description = "I am the optional section 1 row 1 description" },
        } },
        { title = "I am section 2", rows = {
          { id = "section_2_row_1", title = "I am row 1",
            description = "I am the optional section 2 row 1 description" },
          { id = "section_2_row_2", title = "I am row 2",
            description = "I am the optional section 2 row 2 description" },
        } },
      }, { header = "I am the header!", footer = "I am the footer!" })
    end },
  ["interactive_location_request.json"] = {
    build = function()
      return message.location_request(UP, "Let's start with your pickup. You can either manually *enter an "
        .. "address* or *share your current location*.")
    end,
    schema = { "interactive_type", "interactive_action" } },
  ["interactive_product.json"] = {
    build = function()
      return message.product(U, "CATALOG_ID", "ID_TEST_ITEM_1",
                             { body = "optional body text", footer = "optional footer text" })
    end },
  ["interactive_product_list.json"] = {
    build = function()
      return message.product_list(U, "CATALOG_ID", {
        { title = "section-title", product_items = { "product-SKU-in-catalog", "product-SKU-2" } },
        { title = "section-title-2", product_items = { "product-SKU-3", "product-SKU-4" } },
      }, { header = "header-content", body = "body-content", footer = "footer-content" })
    end },
  ["location_numeric_coords.json"] = {
    build = function()
      return message.location(U, { longitude = 45.4215, latitude = 75.6972, name = "Example place",
                                   address = "1 Example Street" })
    end,
    schema = { "numeric_coordinates" } },
  ["location_string_coords.json"] = {
    build = function()
      return message.location(UP, { latitude = "37.44216251868683", longitude = "-122.16153582049394",
                                    name = "Philz Coffee", address = "101 Forest Ave, Palo Alto, CA 94301" })
    end },
  ["mark_as_read.json"] = {
    build = function() return message.read("wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=") end,
    schema = { "not_a_message" } },
  ["mark_as_read_with_typing_indicator.json"] = {
    build = function()
      return message.read("wamid.HBgLMTU1NTAwMDIyMjIVAgASGBYzRUIwRDc5NDk5M0E4OTAzODVBNkNGAA==",
                          { typing = true, recipient_type = "individual" })
    end,
    schema = { "not_a_message" } },
  ["reaction.json"] = {
    build = function()
      return message.reaction(U, "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI2REVCOTdDQkIyMTcyQUQ1MkUA", "\240\159\149\144")
    end },
  ["reaction_remove.json"] = {
    build = function()
      return message.reaction(U, "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=")
    end },
  ["sticker_by_id.json"] = { build = function() return message.sticker(U, "503335829198997") end },
  ["sticker_by_link.json"] = {
    build = function()
      return message.sticker(U, LOOKASIDE .. "503335829198997&ext=1728915786&hash=PLACEHOLDER_HASH")
    end },
  ["template_auth_otp_copy_code.json"] = {
    build = function()
      return message.template(U, "verification_code", "en_US", {
        body = { "J$FpnYnP" }, buttons = { { type = "url", text = "J$FpnYnP" } } })
    end,
    schema = { "language_policy", "button_index" } },
  ["template_body_text_uppercase_type.json"] = {
    build = function()
      return message.template(U, "sample_shipping_confirmation", "en_US", {
        body = { { type = "TEXT", text = "2 hours" } } })
    end,
    schema = TEMPLATE_DEFECTS },
  ["template_catalog_button_action.json"] = {
    build = function()
      return message.template(U, "intro_catalog_offer", "en_US", {
        body = "100", buttons = { { type = "catalog", thumbnail = "2lc20305pt", index = 0 } } })
    end,
    schema = { "language_policy", "button_index_number" } },
  ["template_flow_button_action.json"] = {
    build = function()
      return message.template(U, "TEMPLATE_NAME", "en_US", {
        buttons = { { type = "flow", token = "FLOW_TOKEN", data = { product_name = "name" } } } })
    end,
    schema = { "language_policy", "button_sub_type", "button_index" } },
  ["template_header_document_url_button.json"] = {
    build = function()
      return message.template(U, "new_classes_pdf", "en_US", {
        header = P.document("928860901494862", "Class.pdf"),
        body = { "Test User" },
        buttons = { { type = "url", text = "career-academy/?trk_ref=globalnav", index = 0 } } })
    end,
    schema = { "language_policy", "button_index_number" } },
  ["template_header_image_body_currency_datetime_quick_replies.json"] = {
    build = function()
      return message.template(U, "TEMPLATE_NAME", "LANGUAGE_AND_LOCALE_CODE", {
        header = P.image("https://example.com/image.png"),
        body = { "TEXT_STRING", P.currency("USD", 100990, "VALUE"), P.date_time("MONTH DAY, YEAR") },
        buttons = { "PAYLOAD", "PAYLOAD" } })
    end,
    schema = { "language_policy", "button_index" } },
  ["template_header_image_id_currency_datetime.json"] = {
    build = function()
      return message.template(U, "marketing_music_2", "en_US", {
        header = P.image("3196424913981611"),
        body = {
          P.date_time{ fallback_value = "May 10th, 2023", calendar = "GREGORIAN", month = 3, hour = 10,
                       year = 2023, day_of_month = 26, day_of_week = 1, minute = 50 },
          P.currency("USD", 30000, "$35"),
        },
        buttons = { { type = "quick_reply", payload = "OP_SHN_454584", index = 0 },
                    { type = "quick_reply", payload = "OP_SPR_454585", index = 1 } } })
    end,
    schema = { "language_policy", "button_index_number" } },
  ["template_header_location.json"] = {
    build = function()
      return message.template(U, "order_delivery_update", "en_US", {
        header = P.location{ latitude = 37.483307, longitude = 122.148981, name = "Example Store",
                             address = "1 Hacker Way, Menlo Park, CA 94025" },
        body = "ORD-12345" })
    end,
    schema = TEMPLATE_DEFECTS },
  ["template_header_video.json"] = {
    build = function()
      return message.template(U, "video_tm", "en_US", { header = P.video("4548775454857854"), body = "Test User" })
    end,
    schema = TEMPLATE_DEFECTS },
  ["template_limited_time_offer_coupon_code.json"] = {
    build = function()
      return message.template(U, "limited_time_offer_caribbean_pkg_2023", "en_US", {
        header = P.image("1602186516975000"),
        body = { "Test", "CARIBE25" },
        limited_time_offer = 1209600000,
        buttons = { { type = "copy_code", code = "CARIBE25", index = 0 },
                    { type = "url", text = "n3mtql", index = 1 } },
      })
    end,
    schema = { "language_policy", "component_type", "button_sub_type", "button_index_number" } },
  ["template_named_body_params.json"] = {
    build = function()
      return message.template(U, "order_confirmation_named", "en", {
        body = { customer_name = "Test", order_number = "ORD-12345" } })
    end,
    schema = TEMPLATE_DEFECTS },
  ["text_basic.json"] = { build = function() return message.text(U, "hola") end },
  ["text_preview_url.json"] = {
    build = function()
      return message.text(UP, "As requested, here's the link to our latest product: "
        .. "https://www.meta.com/quest/quest-3/", { preview_url = true })
    end },
  ["text_reply_with_context.json"] = {
    build = function()
      return message.text(U, "gracias", { reply_to = "wamid.HBgLMTU1NTAwMDIyMjIVAgARGBI3OEVCRjczQ0JGNzYzMTdBRDIA" })
    end },
  ["text_to_bsuid_recipient.json"] = {
    build = function() return message.text("US.1000000000000001", "Hello world") end,
    schema = { "bsuid_recipient", "bsuid_recipient_field" } },
  ["text_to_group.json"] = {
    build = function() return message.text("GROUP_ID_PLACEHOLDER", "Hello world", { recipient_type = "group" }) end },
  ["text_with_biz_opaque_callback_data.json"] = {
    build = function() return message.text(U, "Hello world", { biz_opaque_callback_data = "tracker" }) end,
    schema = { "biz_opaque_callback_data" } },
  ["video_by_id_with_caption.json"] = {
    build = function() return message.video(U, "535689082735659", { caption = "here we have the caption" }) end },
  ["video_by_link_with_caption.json"] = {
    build = function()
      return message.video(U, LOOKASIDE .. "535689082735659&ext=1728914425&hash=PLACEHOLDER_HASH",
                           { caption = "Example video" })
    end },
}

---------------------------------------------------------------------------------------------
-- More builder calls, for the schema: every builder and option
---------------------------------------------------------------------------------------------
local EXTRA = {
  { "text, every common option", function()
      return message.text(U, "hi", { reply_to = "wamid.A", biz_opaque_callback_data = "t", preview_url = false })
    end, { "biz_opaque_callback_data" } },
  { "text to a group, replying", function()
      return message.text("GROUP_ID", "hi", { recipient_type = "group", reply_to = "wamid.A" })
    end },
  { "image by URL string", function() return message.image(U, "https://example.com/a.png") end },
  { "image by id table with caption", function() return message.image(U, { id = "1" }, { caption = "c" }) end },
  { "video by URL with caption", function()
      return message.video(U, "http://example.com/a.mp4", { caption = "c" })
    end },
  { "document by link table", function()
      return message.document(U, { link = "https://example.com/a.pdf" }, { filename = "a.pdf" })
    end },
  { "audio by URL, voice false", function()
      return message.audio(U, "https://example.com/a.ogg", { voice = false })
    end },
  { "sticker replying", function() return message.sticker(U, "1", { reply_to = "wamid.A" }) end },
  { "location with string coordinates only", function()
      return message.location(U, { latitude = "1.5", longitude = "2.5" })
    end },
  { "location with numbers", function() return message.location(U, { 1.5, 2.5 }) end, { "numeric_coordinates" } },
  { "contacts, one card", function()
      return message.contacts(U, { name = { formatted_name = "A B", first_name = "A" },
                                   phones = { { phone = "+1 555", type = "WORK", wa_id = "1555" } } })
    end },
  { "reaction with emoji", function() return message.reaction(U, "wamid.A", "\240\159\145\141") end },
  { "reaction removed", function() return message.reaction(U, "wamid.A", "") end },
  { "buttons from strings", function() return message.buttons(U, "Pick", { "Yes", "No", "Maybe" }) end },
  { "buttons in wire form, image header table", function()
      return message.buttons(U, "Pick", { { type = "reply", reply = { id = "y", title = "Yes" } } },
                             { header = { type = "image", image = { id = "1" } }, footer = { text = "f" } })
    end },
  { "buttons with a document header by id", function()
      return message.buttons(U, "Pick", { { id = "y", title = "Yes" } },
                             { header = { document = "1", filename = "a.pdf" } })
    end },
  { "buttons with a video header", function()
      return message.buttons(U, "Pick", { { id = "y", title = "Yes" } }, { header = { video = { link = "x" } } })
    end },
  { "list from rows", function()
      return message.list(U, "Choose", "Open", { "a", { id = "b", title = "B", description = "bb" } })
    end },
  { "list replying", function()
      return message.list(U, "Choose", "Open", { { title = "S", rows = { "a" } } }, { reply_to = "wamid.A" })
    end },
  { "cta_url plain", function() return message.cta_url(U, "Go", "Open", "https://example.com") end,
    { "interactive_type", "interactive_action" } },
  { "cta_url with text header", function()
      return message.cta_url(U, "Go", "Open", "https://example.com", { header = "H", footer = "F" })
    end, { "interactive_type", "interactive_action" } },
  { "flow by name, data exchange", function()
      return message.flow(U, "Start", { name = "signup", cta = "Go", action = "data_exchange", token = "t" })
    end },
  { "flow by id with screen only", function()
      return message.flow(U, "Start", { id = "1", cta = "Go", screen = "WELCOME", mode = "published" })
    end },
  { "location request replying", function()
      return message.location_request(U, "Where?", { reply_to = "wamid.A" })
    end, { "interactive_type", "interactive_action" } },
  { "call permission request with footer", function()
      return message.call_permission_request(U, "May we call?", { footer = "F" })
    end },
  { "product without body", function() return message.product(U, "C", "SKU") end },
  { "product list with header", function()
      return message.product_list(U, "C", { { title = "S", items = { "a", "b" } } },
                                  { header = "H", body = "B" })
    end },
  { "catalog without thumbnail", function() return message.catalog(U, "See our catalog") end,
    { "interactive_action" } },
  { "interactive in wire form", function()
      return message.interactive(U, { type = "button", body = { text = "b" },
                                      action = { buttons = {
                                        { type = "reply", reply = { id = "1", title = "t" } } } } })
    end },
  { "template, language table with policy, no components", function()
      return message.template(U, "hello_world", { code = "en_US", policy = "deterministic" })
    end },
  { "template, components in wire form", function()
      return message.template(U, "t", { code = "en", policy = "deterministic" }, {
        { type = "body", parameters = { P.text("x"), P.text(42) } },
        { type = "button", sub_type = "quick_reply", index = "1", parameters = { P.payload("p") } },
      })
    end },
  { "template, named header and body, url button", function()
      return message.template(U, "t", { code = "en", policy = "deterministic" }, {
        header = { title = "Hi" },
        body = { name = "Ana", total = P.currency("EUR", 5000, "5 EUR"), when = P.date_time("today") },
        buttons = { { type = "url", text = "abc", index = "1" } },
      })
    end },
  { "template, named params by helper, document header link", function()
      return message.template(U, "t", { code = "en", policy = "deterministic" }, {
        header = P.document("https://example.com/a.pdf", "a.pdf"),
        body = { P.text("Ana", "name"), P.named("order", "A-1") },
      })
    end },
  { "template, video header by link, coupon and flow and mpm buttons", function()
      return message.template(U, "t", { code = "en", policy = "deterministic" }, {
        header = P.video("https://example.com/a.mp4"),
        limited_time_offer = { expiration_time_ms = 1 },
        buttons = {
          { type = "copy_code", coupon_code = "C", index = "2" },
          { type = "flow", flow_token = "T", index = "3" },
          { type = "mpm", thumbnail = "SKU", index = "4",
            sections = { { title = "S", product_items = { { product_retailer_id = "a" } } } } },
          { type = "catalog", action = { thumbnail_product_retailer_id = "SKU" }, index = "5" },
        },
      })
    end, { "component_type", "button_sub_type" } },
  { "template, header location and action parameter in wire form", function()
      return message.template(U, "t", { code = "en", policy = "deterministic" }, {
        header = P.location{ latitude = "1", longitude = "2", name = "N", address = "A" },
        buttons = { { type = "quick_reply", index = "2", parameters = { P.action{ x = 1 }, P.coupon_code("c") } } },
      })
    end },
  { "template, lto as a parameter", function()
      return message.template(U, "t", { code = "en", policy = "deterministic" }, {
        limited_time_offer = P.limited_time_offer(5) })
    end, { "component_type" } },
  { "template to a BSUID", function()
      return message.template("US.1000000000000001", "t", { code = "en", policy = "deterministic" })
    end, { "bsuid_recipient" } }, -- (TemplateMessage is not closed: `recipient` passes)
  { "mark as read", function() return message.read("wamid.A") end, { "not_a_message" } },
  { "raw body", function()
      return message.raw{ to = U, recipient_type = "individual", type = "text", text = { body = "raw" } }
    end },
}

---------------------------------------------------------------------------------------------
-- The specs
---------------------------------------------------------------------------------------------
-- YAML example value -> the JSON value (nulls as cjson.null)
local function from_yaml(v)
  if v == lyaml.null then return cjson.null end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = from_yaml(x) end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

describe("spec/schema.lua", function()
  local function errors_of(value, s)
    local ok, errs = validator:validate(value, s or MESSAGE_SCHEMA)
    return ok, errs, schema.format(errs)
  end
  local function has(errs, path, keyword)
    for _, e in ipairs(errs) do
      if e.path == path and e.keyword == keyword then return true end
    end
    return false
  end
  local TEXT = function()
    return { messaging_product = "whatsapp", recipient_type = "individual", to = "1", type = "text",
             text = { body = "hi", preview_url = true } }
  end

  it("accepts a valid text message (allOf merged: base properties allowed next to a closed branch)", function()
    local ok, _, text = errors_of(TEXT())
    assert.is_true(ok, text)
  end)

  it("rejects an unknown property of a closed message object, with its path", function()
    local m = TEXT()
    m.colour = "red"
    local ok, errs, text = errors_of(m)
    assert.is_false(ok)
    assert.is_true(has(errs, "/colour", "additionalProperties"), text)
    m = TEXT()
    m.text.bold = true
    ok, errs, text = errors_of(m)
    assert.is_false(ok)
    assert.is_true(has(errs, "/text/bold", "additionalProperties"), text)
  end)

  it("rejects a wrong type, deep inside", function()
    local m = TEXT()
    m.text.body = 5
    local ok, errs, text = errors_of(m)
    assert.is_false(ok)
    assert.is_true(has(errs, "/text/body", "type"), text)
    m = TEXT()
    m.text.preview_url = "yes"
    errs = select(2, errors_of(m))
    assert.is_true(has(errs, "/text/preview_url", "type"))
  end)

  it("rejects a missing required property and a value outside an enum", function()
    local m = TEXT()
    m.messaging_product = nil
    m.recipient_type = "everyone"
    local ok, errs, text = errors_of(m)
    assert.is_false(ok)
    assert.is_true(has(errs, "/messaging_product", "required"), text)
    assert.is_true(has(errs, "/recipient_type", "enum"), text)
  end)

  it("reports the branch the discriminator names when a oneOf fails", function()
    local m = TEXT()
    m.type = "image"
    m.text = nil
    m.image = { caption = "no id nor link" }
    local ok, errs, text = errors_of(m)
    assert.is_false(ok)
    assert.is_true(has(errs, "/image", "oneOf"), text) -- MediaObject: neither id nor link
  end)

  it("rejects a body that matches no branch and no discriminator", function()
    local ok, errs = errors_of({ messaging_product = "whatsapp" })
    assert.is_false(ok)
    assert.is_true(has(errs, "", "oneOf"))
    ok = errors_of("not an object")
    assert.is_false(ok)
  end)

  it("checks items, minItems, maxItems and maxLength (in characters)", function()
    local m = { messaging_product = "whatsapp", recipient_type = "individual", to = "1", type = "interactive",
                interactive = { type = "button", body = { text = "b" }, action = { buttons = {} } } }
    local buttons = m.interactive.action.buttons
    for i = 1, 4 do buttons[i] = { type = "reply", reply = { id = tostring(i), title = "t" } } end
    local ok, _, text = errors_of(m)
    assert.is_false(ok, text)
    assert.matches("/interactive/action", text, 1, true)
    buttons[4] = nil
    buttons[3].reply.title = string.rep("\195\169", 20) -- 20 characters, 40 bytes: allowed
    ok, _, text = errors_of(m)
    assert.is_true(ok, text)
    buttons[3].reply.title = string.rep("\195\169", 21)
    ok = errors_of(m)
    assert.is_false(ok)
    buttons[3].reply.title = "t"
    buttons[2].type = "url"
    ok, _, text = errors_of(m)
    assert.is_false(ok)
    assert.matches("/interactive/action", text, 1, true)
    local s = { type = "array", items = { type = "string" }, minItems = 2 }
    local errs
    ok, errs = validator:validate({ "a", 1 }, s)
    assert.is_false(ok)
    assert.is_true(has(errs, "/1", "type"))
    errs = select(2, validator:validate({ "a" }, s))
    assert.is_true(has(errs, "", "minItems"))
  end)

  it("merges allOf, resolves $ref, and checks anyOf, not, const, minimum and nullable", function()
    local root = { defs = {
      base = { type = "object", properties = { a = { type = "string" } }, required = { "a" } },
      closed = { allOf = { { ["$ref"] = "#/defs/base" },
                           { type = "object", additionalProperties = false,
                             properties = { b = { type = "integer" } } } } },
    } }
    local v = schema.new(root)
    assert.is_true((v:validate({ a = "x", b = 2 }, "#/defs/closed")))
    local ok, errs = v:validate({ a = "x", b = 2.5, c = 1 }, "#/defs/closed")
    assert.is_false(ok)
    assert.is_true(has(errs, "/b", "type"))
    assert.is_true(has(errs, "/c", "additionalProperties"))
    errs = select(2, v:validate({ b = 1 }, "#/defs/closed"))
    assert.is_true(has(errs, "/a", "required"))
    assert.is_false((v:validate(true, { anyOf = { { type = "string" }, { type = "number" } } })))
    assert.is_true((v:validate(1, { anyOf = { { type = "string" }, { type = "number" } } })))
    assert.is_false((v:validate("x", { ["not"] = { type = "string" } })))
    assert.is_false((v:validate("y", { const = "x" })))
    assert.is_false((v:validate(0, { type = "integer", minimum = 1 })))
    assert.is_false((v:validate(cjson.null, { type = "string" })))
    local with_nulls = schema.new(root, { nulls = { cjson.null } })
    assert.is_true((with_nulls:validate(cjson.null, { type = "string", nullable = true })))
    assert.is_false((v:validate(1, { oneOf = { { type = "number" }, { type = "integer" } } })))
  end)

  it("translates patterns, and refuses what it cannot translate or does not know", function()
    assert.is_true((validator:validate("1", { type = "string", pattern = "^[2-6, 11-14]$" })))
    assert.is_false((validator:validate("0", { type = "string", pattern = "^[2-6, 11-14]$" })))
    assert.is_false((validator:validate("12", { type = "string", pattern = "^[2-6, 11-14]$" })))
    assert.is_true((validator:validate("ab-1", { type = "string", pattern = "^\\w+-\\d$" })))
    assert.is_false((validator:validate("ab.1", { type = "string", pattern = "^\\w+-\\d$" })))
    assert.has_error(function() validator:validate("a", { pattern = "^(a|b)$" }) end)
    assert.has_error(function() validator:validate("a", { uniqueItems = true }) end)
    assert.has_error(function() validator:validate("a", "#/components/schemas/NoSuchSchema") end)
  end)
end)

describe("Meta's OpenAPI request examples", function()
  local examples = doc.paths[MESSAGES_PATH].post.requestBody.content["application/json"].examples

  it("are all mapped to a builder call (and every mapping names an example)", function()
    local missing, extra = {}, {}
    for _, name in ipairs(sorted_keys(examples)) do
      if not EXAMPLES[name] then missing[#missing + 1] = name end
    end
    for _, name in ipairs(sorted_keys(EXAMPLES)) do
      if not examples[name] then extra[#extra + 1] = name end
    end
    assert.are.same({}, missing, "examples without a builder call")
    assert.are.same({}, extra, "builder calls without an example")
    assert.is_true(#sorted_keys(examples) >= 50)
  end)

  for _, name in ipairs(sorted_keys(EXAMPLES)) do
    local case = EXAMPLES[name]
    it("builds " .. name, function()
      local ex = examples[name]
      assert(ex, "no such example")
      assert_same(wire(case.build()), from_yaml(ex.value), case.differs)
    end)
    it("validates " .. name .. " against the Message schema", function()
      assert_schema(case.build(), case.schema)
    end)
  end
end)

describe("request fixtures for POST /{PHONE_NUMBER_ID}/messages", function()
  local manifest = helpers.fixture("manifest.json")
  local bodies = {}
  for _, f in ipairs(manifest.files) do
    if f.kind == "requests" and f.endpoint == "POST /{PHONE_NUMBER_ID}/messages" then
      bodies[#bodies + 1] = f.file:match("^requests/(.+)$")
    end
  end
  table.sort(bodies)

  it("are all mapped to a builder call, and only those", function()
    local missing, extra, set = {}, {}, {}
    for _, file in ipairs(bodies) do
      set[file] = true
      if not FIXTURES[file] then missing[#missing + 1] = file end
    end
    for _, file in ipairs(sorted_keys(FIXTURES)) do
      if not set[file] then extra[#extra + 1] = file end
    end
    assert.are.same({}, missing, "fixtures without a builder call")
    assert.are.same({}, extra, "builder calls for files that are not message bodies")
    -- every file in requests/ is either a message body or template management
    for _, file in ipairs(helpers.list("requests")) do
      assert(set[file] or file:find("^template_create") or file:find("^template_update"),
             file .. " is neither a message body nor a template-management body")
    end
  end)

  for _, file in ipairs(sorted_keys(FIXTURES)) do
    local case = FIXTURES[file]
    it("builds " .. file, function()
      assert_same(wire(case.build()), helpers.fixture("requests/" .. file), case.differs)
    end)
    it("validates " .. file .. " against the Message schema", function()
      assert_schema(case.build(), case.schema)
    end)
  end
end)

describe("every builder and option against the Message schema", function()
  for _, case in ipairs(EXTRA) do
    it(case[1], function()
      assert_schema(case[2](), case[3])
    end)
  end

  it("every listed schema defect is listed by some case", function()
    -- (each case's list is checked against what it runs into by the specs above)
    local listed = {}
    local function add(ids)
      for _, id in ipairs(ids or {}) do listed[id] = true end
    end
    for _, case in pairs(EXAMPLES) do add(case.schema) end
    for _, case in pairs(FIXTURES) do add(case.schema) end
    for _, case in ipairs(EXTRA) do add(case[3]) end
    local unused = {}
    for _, id in ipairs(sorted_keys(SCHEMA_DEFECTS)) do
      if not listed[id] then unused[#unused + 1] = id end
    end
    assert.are.same({}, unused)
  end)
end)
