--- Message builders: the JSON bodies of `POST /{Phone-Number-ID}/messages`.
--
--     local message = require "whatsapp.message"
--     local P = message.param
--     local m = message.text("15550002222", "Hello!", { reply_to = "wamid.HBgL..." })
--     local b = message.buttons("15550002222", "Confirm?", { { id = "yes", title = "Yes" }, "No" },
--                               { header = "Booking", footer = "Lucky Shrub" })
--     local t = message.template("15550002222", "order_update", "en_US", {
--       header = P.image("https://example.com/a.png"),
--       body = { "Ana", P.currency("USD", 100990, "$100.99") },
--       buttons = { { type = "quick_reply", payload = "STOP" } },
--     })
--     local json = message.encode(t)
--
-- Every builder is a pure function returning a plain table: exactly the JSON body
-- (CLOUD-API.md section 4). Nothing is sent and Meta's length limits are not checked
-- here (that is `whatsapp.validate`'s job). Only programmer errors raise: a missing
-- recipient, an argument of the wrong type, an unknown option name.
--
-- Options common to every message (`opts`, last argument):
--
-- * `reply_to`: a wamid to quote (`context.message_id`); not allowed on reactions.
-- * `biz_opaque_callback_data`: a string echoed back in the status webhooks.
-- * `recipient_type`: `"individual"` (the default, always written), `"group"` (then the
--   recipient is a group id), or `false` to leave the field out.
--
-- A recipient beginning with `"US."` is a business-scoped user id (BSUID) and is written
-- as `recipient` instead of `to`.
--
-- Media arguments (`media`) are a media id string, an `http(s)://` URL string (written as
-- `link`), or a table `{ id = ... }` / `{ link = ... }` (other fields of the table are kept).
--
-- Arrays built here carry `message.array_mt` (lua-cjson's `array_mt` when it has one), so
-- `message.encode` writes them as JSON arrays even when empty.
-- @module whatsapp.message
local cjson = require "cjson"

local type, pairs, ipairs, next, error, select = type, pairs, ipairs, next, error, select
local setmetatable, getmetatable, tostring, rawget = setmetatable, getmetatable, tostring, rawget
local format, find, sub, lower = string.format, string.find, string.sub, string.lower
local sort, concat = table.sort, table.concat
local floor, huge = math.floor, math.huge
local getinfo = debug.getinfo

local message = {}

-- A private lua-cjson instance: the application's cjson settings stay its own.
local json = cjson.new()

--- Metatable that marks a Lua table as a JSON array (lua-cjson's `array_mt` when present).
message.array_mt = rawget(cjson, "array_mt") or { __name = "whatsapp.message.array" }
local array_mt = message.array_mt

---------------------------------------------------------------------------------------------
-- Argument checks. An error blames the first caller outside this file (what error(msg, 2)
-- does in a public function), found on the stack so that helpers and tail calls between
-- the public function and the check do not matter.
---------------------------------------------------------------------------------------------
local SOURCE = getinfo(1, "S").source

local function fail(fname, msg, ...)
  local level = 2
  while true do
    local info = getinfo(level, "S")
    if not info or info.source ~= SOURCE then break end
    level = level + 1
  end
  error("whatsapp.message." .. fname .. ": " .. format(msg, ...), level)
end

--- Mark a table as a JSON array (so that an empty one encodes as `[]`) and return it.
-- @tparam[opt] table t the table (a new empty one when nil)
-- @treturn table t
function message.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then fail("array", "table expected, got %s", type(t)) end
  return setmetatable(t, array_mt)
end
local array = message.array

local function check_string(fname, what, v, optional)
  if v == nil and optional then return nil end
  if type(v) ~= "string" then
    fail(fname, "%s must be a string, got %s", what, type(v))
  end
  return v -- (an empty string is a length matter: whatsapp.validate's)
end

local function check_table(fname, what, v, optional)
  if v == nil and optional then return nil end
  if type(v) ~= "table" then fail(fname, "%s must be a table, got %s", what, type(v)) end
  return v
end

local function is_sequence(t)
  return type(t) == "table" and (t[1] ~= nil or getmetatable(t) == array_mt)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A JSON array copied from a Lua sequence, each element passed through `f` (if given).
local function map_array(t, f, ...)
  local out = array()
  for i = 1, #t do
    if f then out[i] = f(t[i], i, ...) else out[i] = t[i] end
  end
  return out
end

-- Option names every message accepts.
local COMMON = { reply_to = true, biz_opaque_callback_data = true, recipient_type = true }

local NO_OPTS = setmetatable({}, { __newindex = function() error("read-only", 2) end })

local function check_opts(fname, opts, allowed)
  if opts == nil then return NO_OPTS end
  if type(opts) ~= "table" then fail(fname, "opts must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not (COMMON[k] or (allowed and allowed[k])) then
      fail(fname, "unknown option '%s'", tostring(k))
    end
  end
  return opts
end

local function set(...)
  local s = {}
  for i = 1, select("#", ...) do s[select(i, ...)] = true end
  return s
end
local TEXT_OPTS = set("preview_url")

-- The envelope shared by every message type.
local function envelope(fname, to, mtype, opts)
  if to == nil then fail(fname, "missing recipient") end
  check_string(fname, "recipient", to)
  if to == "" then fail(fname, "recipient must not be empty") end
  local m = { messaging_product = "whatsapp", type = mtype }
  if sub(to, 1, 3) == "US." then m.recipient = to else m.to = to end
  local rt = opts.recipient_type
  if rt == nil then rt = "individual" end
  if rt ~= false then
    check_string(fname, "opts.recipient_type", rt)
    m.recipient_type = rt
  end
  if opts.reply_to ~= nil then
    m.context = { message_id = check_string(fname, "opts.reply_to", opts.reply_to) }
  end
  if opts.biz_opaque_callback_data ~= nil then
    m.biz_opaque_callback_data = check_string(fname, "opts.biz_opaque_callback_data",
                                              opts.biz_opaque_callback_data)
  end
  return m
end

-- A media object from an id, a URL or a table.
local function media_object(fname, what, v)
  if type(v) == "string" then
    if v == "" then fail(fname, "%s must not be empty", what) end
    if find(v, "^[Hh][Tt][Tt][Pp][Ss]?://") then return { link = v } end
    return { id = v }
  elseif type(v) == "table" then
    if v.id == nil and v.link == nil then fail(fname, "%s needs an id or a link", what) end
    return copy(v)
  end
  fail(fname, "%s must be a media id, a URL or a table, got %s", what, type(v))
end

---------------------------------------------------------------------------------------------
-- Text, media, location, contacts, reaction
---------------------------------------------------------------------------------------------

--- A text message.
-- @tparam string to recipient: phone number, group id (with `recipient_type = "group"`) or BSUID
-- @tparam string body the text
-- @tparam[opt] table opts common options, and `preview_url` (boolean, written when given)
-- @treturn table the message body
function message.text(to, body, opts)
  opts = check_opts("text", opts, TEXT_OPTS)
  local m = envelope("text", to, "text", opts)
  m.text = { body = check_string("text", "body", body) }
  if opts.preview_url ~= nil then
    if type(opts.preview_url) ~= "boolean" then
      fail("text", "opts.preview_url must be a boolean")
    end
    m.text.preview_url = opts.preview_url
  end
  return m
end

--- The JSON text of a text message, made without the message table: the same fields and
-- values as `message.encode(message.text(to, body, { preview_url = preview_url }))`
-- (strings escaped by the same encoder), in a fixed field order where the table's order
-- depends on the interpreter and, in Lua 5.4, on the run. For `client:send_text`, which
-- otherwise spends more on building, checking and encoding the table than on the JSON.
-- @tparam string to recipient: a phone number, a group id (with the default
--   `recipient_type` it is written as `"individual"`, as `message.text` does) or a BSUID
-- @tparam string body the text
-- @tparam[opt] boolean preview_url written when not nil
-- @treturn string the JSON text
function message.encode_text(to, body, preview_url)
  if type(to) ~= "string" or to == "" or type(body) ~= "string" then
    check_string("encode_text", "recipient", to)
    if to == "" then fail("encode_text", "recipient must not be empty") end
    check_string("encode_text", "body", body)
  end
  local encode = json.encode
  local field = sub(to, 1, 3) == "US." and '","recipient":' or '","to":'
  if preview_url == nil then
    return '{"messaging_product":"whatsapp","recipient_type":"individual' .. field .. encode(to)
      .. ',"type":"text","text":{"body":' .. encode(body) .. '}}'
  end
  if type(preview_url) ~= "boolean" then fail("encode_text", "preview_url must be a boolean") end
  return '{"messaging_product":"whatsapp","recipient_type":"individual' .. field .. encode(to)
    .. ',"type":"text","text":{"preview_url":' .. (preview_url and "true" or "false") .. ',"body":'
    .. encode(body) .. '}}'
end

local MEDIA_OPTS = {
  image = set("caption"),
  video = set("caption"),
  document = set("caption", "filename"),
  audio = set("voice"),
  sticker = set(),
}

local function media_message(kind, to, media, opts)
  opts = check_opts(kind, opts, MEDIA_OPTS[kind])
  local m = envelope(kind, to, kind, opts)
  local obj = media_object(kind, "media", media)
  if opts.caption ~= nil then obj.caption = check_string(kind, "opts.caption", opts.caption) end
  if opts.filename ~= nil then obj.filename = check_string(kind, "opts.filename", opts.filename) end
  if opts.voice ~= nil then
    if type(opts.voice) ~= "boolean" then fail(kind, "opts.voice must be a boolean") end
    obj.voice = opts.voice
  end
  m[kind] = obj
  return m
end

--- An image message.
-- @tparam string to recipient
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @tparam[opt] table opts common options, and `caption`
-- @treturn table the message body
function message.image(to, media, opts) return media_message("image", to, media, opts) end

--- A video message.
-- @tparam string to recipient
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @tparam[opt] table opts common options, and `caption`
-- @treturn table the message body
function message.video(to, media, opts) return media_message("video", to, media, opts) end

--- A document message.
-- @tparam string to recipient
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @tparam[opt] table opts common options, and `caption`, `filename`
-- @treturn table the message body
function message.document(to, media, opts) return media_message("document", to, media, opts) end

--- An audio message.
-- @tparam string to recipient
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @tparam[opt] table opts common options, and `voice` (true: an OGG/OPUS voice note)
-- @treturn table the message body
function message.audio(to, media, opts) return media_message("audio", to, media, opts) end

--- A sticker message.
-- @tparam string to recipient
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @tparam[opt] table opts common options
-- @treturn table the message body
function message.sticker(to, media, opts) return media_message("sticker", to, media, opts) end

-- A location object: latitude/longitude (numbers or strings, kept as given; also
-- accepted as [1] and [2]), name, address and any other field as given.
local function location_object(fname, loc)
  check_table(fname, "location", loc)
  local out = {}
  for k, v in pairs(loc) do
    if type(k) == "string" then out[k] = v end
  end
  if out.latitude == nil then out.latitude = loc[1] end
  if out.longitude == nil then out.longitude = loc[2] end
  for _, k in ipairs({ "latitude", "longitude" }) do
    local t = type(out[k])
    if t ~= "number" and t ~= "string" then
      fail(fname, "location.%s must be a number or a string, got %s", k, t)
    end
  end
  return out
end

--- A location message.
-- @tparam string to recipient
-- @tparam table loc `{latitude=, longitude=, name=, address=}` (coordinates as numbers or
--   strings, written as given; `{lat, lon, name=...}` also works)
-- @tparam[opt] table opts common options
-- @treturn table the message body
function message.location(to, loc, opts)
  opts = check_opts("location", opts)
  local m = envelope("location", to, "location", opts)
  m.location = location_object("location", loc)
  return m
end

--- A contacts message.
-- @tparam string to recipient
-- @tparam table cards an array of contact cards in the wire form (`name`, `phones`,
--   `emails`, `addresses`, `org`, `urls`, `birthday`), or a single card
-- @tparam[opt] table opts common options
-- @treturn table the message body
function message.contacts(to, cards, opts)
  opts = check_opts("contacts", opts)
  local m = envelope("contacts", to, "contacts", opts)
  check_table("contacts", "cards", cards)
  if next(cards) == nil then fail("contacts", "cards must not be empty") end
  if not is_sequence(cards) then cards = { cards } end
  m.contacts = map_array(cards, function(card, i)
    if type(card) ~= "table" then fail("contacts", "cards[%d] must be a table", i) end
    return card
  end)
  return m
end

--- A reaction to a message, or the removal of one.
-- @tparam string to recipient
-- @tparam string message_id the wamid reacted to
-- @tparam[opt] string emoji the emoji; nil or `""` removes the reaction (written as `""`)
-- @tparam[opt] table opts common options except `reply_to`
-- @treturn table the message body
function message.reaction(to, message_id, emoji, opts)
  opts = check_opts("reaction", opts)
  if opts.reply_to ~= nil then fail("reaction", "a reaction cannot be a reply") end
  local m = envelope("reaction", to, "reaction", opts)
  m.reaction = { message_id = check_string("reaction", "message_id", message_id),
                 emoji = check_string("reaction", "emoji", emoji, true) or "" }
  return m
end

---------------------------------------------------------------------------------------------
-- Interactive messages
---------------------------------------------------------------------------------------------
local HEADER_MEDIA = { image = true, video = true, document = true }

-- header: a string (text header), or a table: `{type=..., ...}` (wire form, media fields
-- may be shorthands) or `{image=media}` / `{video=media}` / `{document=media, filename=}` /
-- `{text=...}`.
local function header_object(fname, h)
  if type(h) == "string" then return { type = "text", text = h } end
  check_table(fname, "opts.header", h)
  local kind = h.type
  if kind == nil then
    for k in pairs(HEADER_MEDIA) do
      if h[k] ~= nil then
        if kind then fail(fname, "opts.header has both %s and %s", kind, k) end
        kind = k
      end
    end
    kind = kind or (h.text ~= nil and "text")
    if not kind then fail(fname, "opts.header needs a type, text, image, video or document") end
  end
  local out = copy(h)
  out.type = kind
  if HEADER_MEDIA[kind] and out[kind] ~= nil then
    out[kind] = media_object(fname, "opts.header." .. kind, out[kind])
    if out.filename ~= nil then
      out[kind].filename = out.filename
      out.filename = nil
    end
  end
  return out
end

local function text_object(fname, what, v)
  if type(v) == "table" then return copy(v) end
  return { text = check_string(fname, what, v) }
end

local INTERACTIVE_OPTS = set("header", "footer")

-- The envelope plus an `interactive` object with type, header/body/footer and action.
local function interactive(fname, to, itype, body, action, opts, allowed)
  opts = check_opts(fname, opts, allowed or INTERACTIVE_OPTS)
  local m = envelope(fname, to, "interactive", opts)
  local i = { type = itype, action = action }
  if opts.header ~= nil then i.header = header_object(fname, opts.header) end
  body = body == nil and opts.body or body
  if body ~= nil then i.body = text_object(fname, "body", body) end
  if opts.footer ~= nil then i.footer = text_object(fname, "opts.footer", opts.footer) end
  m.interactive = i
  return m
end

--- Reply buttons.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam table buttons array of `{id=, title=}`, a plain string (id = title), or the wire
--   form `{type="reply", reply={...}}`
-- @tparam[opt] table opts common options, and `header`, `footer`
-- @treturn table the message body
function message.buttons(to, body, buttons, opts)
  check_string("buttons", "body", body)
  check_table("buttons", "buttons", buttons)
  if #buttons == 0 then fail("buttons", "buttons must not be empty") end
  local list = map_array(buttons, function(b, i)
    if type(b) == "string" then return { type = "reply", reply = { id = b, title = b } } end
    if type(b) ~= "table" then fail("buttons", "buttons[%d] must be a string or a table", i) end
    if b.reply ~= nil then return b end
    if b.id == nil or b.title == nil then fail("buttons", "buttons[%d] needs an id and a title", i) end
    return { type = "reply", reply = { id = b.id, title = b.title } }
  end)
  return interactive("buttons", to, "button", body, { buttons = list }, opts)
end

--- A list message.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam string button_label the label of the button that opens the list
-- @tparam table sections array of `{title=, rows={ {id=, title=, description=}, ... }}`, or
--   directly an array of rows (one section without a title); a row may be a plain string
-- @tparam[opt] table opts common options, and `header`, `footer`
-- @treturn table the message body
function message.list(to, body, button_label, sections, opts)
  check_string("list", "body", body)
  check_string("list", "button_label", button_label)
  check_table("list", "sections", sections)
  if #sections == 0 then fail("list", "sections must not be empty") end
  if type(sections[1]) ~= "table" or sections[1].rows == nil then sections = { { rows = sections } } end
  local function row(r, j, i)
    if type(r) == "string" then return { id = r, title = r } end
    if type(r) ~= "table" then fail("list", "sections[%d].rows[%d] must be a string or a table", i, j) end
    return r
  end
  local list = map_array(sections, function(s, i)
    if type(s) ~= "table" or type(s.rows) ~= "table" then
      fail("list", "sections[%d] needs a rows array", i)
    end
    local out = copy(s)
    out.rows = map_array(s.rows, row, i)
    return out
  end)
  return interactive("list", to, "list", body, { button = button_label, sections = list }, opts)
end

--- A call-to-action URL button.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam string display_text the button label
-- @tparam string url the URL opened
-- @tparam[opt] table opts common options, and `header`, `footer`
-- @treturn table the message body
function message.cta_url(to, body, display_text, url, opts)
  check_string("cta_url", "body", body)
  local action = { name = "cta_url", parameters = {
    display_text = check_string("cta_url", "display_text", display_text),
    url = check_string("cta_url", "url", url) } }
  return interactive("cta_url", to, "cta_url", body, action, opts)
end

-- Friendly names of the flow parameters, and their wire names.
local FLOW_NAMES = {
  id = "flow_id", name = "flow_name", cta = "flow_cta", token = "flow_token",
  action = "flow_action", version = "flow_message_version", mode = "mode",
  flow_id = "flow_id", flow_name = "flow_name", flow_cta = "flow_cta", flow_token = "flow_token",
  flow_action = "flow_action", flow_message_version = "flow_message_version",
  flow_action_payload = "flow_action_payload", screen = true, data = true,
}

--- A WhatsApp Flow message.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam table params `id` or `name` (the flow), `cta` (button label), and optionally
--   `token`, `mode` ("draft"/"published"), `action` ("navigate"/"data_exchange"), `screen`,
--   `data`, `version` (default "3"); the wire names (`flow_id`, `flow_cta`,
--   `flow_action_payload`...) are accepted too
-- @tparam[opt] table opts common options, and `header`, `footer`
-- @treturn table the message body
function message.flow(to, body, params, opts)
  check_string("flow", "body", body)
  check_table("flow", "params", params)
  local p = { flow_message_version = "3" }
  for k, v in pairs(params) do
    local wire = FLOW_NAMES[k]
    if not wire then fail("flow", "unknown flow parameter '%s'", tostring(k)) end
    if wire ~= true then p[wire] = v end
  end
  if params.screen ~= nil or params.data ~= nil then
    local payload = p.flow_action_payload and copy(p.flow_action_payload) or {}
    payload.screen = params.screen or payload.screen
    payload.data = params.data or payload.data
    p.flow_action_payload = payload
  end
  if p.flow_id == nil and p.flow_name == nil then
    fail("flow", "params needs an id or a name")
  end
  check_string("flow", "params.cta", p.flow_cta)
  return interactive("flow", to, "flow", body, { name = "flow", parameters = p }, opts)
end

--- A location request: asks the user to share a location.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam[opt] table opts common options
-- @treturn table the message body
function message.location_request(to, body, opts)
  check_string("location_request", "body", body)
  return interactive("location_request", to, "location_request_message", body,
                     { name = "send_location" }, opts, set())
end

--- A call permission request (Calling API).
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam[opt] table opts common options, and `header`, `footer`
-- @treturn table the message body
function message.call_permission_request(to, body, opts)
  check_string("call_permission_request", "body", body)
  return interactive("call_permission_request", to, "call_permission_request", body,
                     { name = "call_permission_request" }, opts)
end

--- A single-product message.
-- @tparam string to recipient
-- @tparam string catalog_id the catalog
-- @tparam string product_retailer_id the product (SKU)
-- @tparam[opt] table opts common options, and `body`, `footer`
-- @treturn table the message body
function message.product(to, catalog_id, product_retailer_id, opts)
  local action = { catalog_id = check_string("product", "catalog_id", catalog_id),
                   product_retailer_id = check_string("product", "product_retailer_id",
                                                      product_retailer_id) }
  return interactive("product", to, "product", nil, action, opts, set("body", "footer"))
end

--- A multi-product message.
-- @tparam string to recipient
-- @tparam string catalog_id the catalog
-- @tparam table sections array of `{title=, product_items={...}}` (or `items=`), each item a
--   product retailer id string or `{product_retailer_id=}`
-- @tparam[opt] table opts common options, and `header` (Meta requires one), `body`, `footer`
-- @treturn table the message body
function message.product_list(to, catalog_id, sections, opts)
  check_string("product_list", "catalog_id", catalog_id)
  check_table("product_list", "sections", sections)
  if #sections == 0 then fail("product_list", "sections must not be empty") end
  local list = map_array(sections, function(s, i)
    local items = type(s) == "table" and (s.product_items or s.items)
    if type(items) ~= "table" then fail("product_list", "sections[%d] needs product_items", i) end
    local out = copy(s)
    out.items = nil
    out.product_items = map_array(items, function(it)
      if type(it) == "string" then return { product_retailer_id = it } end
      return it
    end)
    return out
  end)
  return interactive("product_list", to, "product_list", nil,
                     { catalog_id = catalog_id, sections = list }, opts, set("header", "body", "footer"))
end

--- A catalog message (opens the business's catalog).
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam[opt] table opts common options, and `thumbnail` (product retailer id shown as the
--   thumbnail), `footer`
-- @treturn table the message body
function message.catalog(to, body, opts)
  check_string("catalog", "body", body)
  local action = { name = "catalog_message" }
  if type(opts) == "table" and opts.thumbnail ~= nil then
    action.parameters = { thumbnail_product_retailer_id = check_string("catalog", "opts.thumbnail",
                                                                       opts.thumbnail) }
  end
  return interactive("catalog", to, "catalog_message", body, action, opts, set("thumbnail", "footer"))
end

--- An order details message (payments): `action{name="review_and_pay", parameters}`.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam table parameters the `action.parameters` object, in the wire form
-- @tparam[opt] table opts common options, and `header`, `footer`
-- @treturn table the message body
function message.order_details(to, body, parameters, opts)
  check_string("order_details", "body", body)
  check_table("order_details", "parameters", parameters)
  return interactive("order_details", to, "order_details", body,
                     { name = "review_and_pay", parameters = parameters }, opts)
end

--- An order status message (payments): `action{name="review_order", parameters}`.
-- @tparam string to recipient
-- @tparam string body the body text
-- @tparam table parameters the `action.parameters` object (`reference_id`, `order`)
-- @tparam[opt] table opts common options, and `footer`
-- @treturn table the message body
function message.order_status(to, body, parameters, opts)
  check_string("order_status", "body", body)
  check_table("order_status", "parameters", parameters)
  return interactive("order_status", to, "order_status", body,
                     { name = "review_order", parameters = parameters }, opts, set("footer"))
end

--- Any interactive message, from its `interactive` object in the wire form.
-- @tparam string to recipient
-- @tparam table object the `interactive` object (`type`, `action`, ...), used as given
-- @tparam[opt] table opts common options
-- @treturn table the message body
function message.interactive(to, object, opts)
  check_table("interactive", "object", object)
  check_string("interactive", "object.type", object.type)
  opts = check_opts("interactive", opts)
  local m = envelope("interactive", to, "interactive", opts)
  m.interactive = object
  return m
end

---------------------------------------------------------------------------------------------
-- Templates
---------------------------------------------------------------------------------------------

--- Template parameter helpers: each returns one entry of a component's `parameters`.
-- @table param
local param = {}
message.param = param

--- A text parameter.
-- @tparam string|number value the text (a number is written as text)
-- @tparam[opt] string name the parameter name, for named-parameter templates
-- @treturn table `{type="text", text=..., parameter_name=?}`
function param.text(value, name)
  if type(value) == "number" then
    value = (value == floor(value) and value > -huge and value < huge) and format("%d", value)
      or tostring(value)
  end
  local p = { type = "text", text = check_string("param.text", "value", value) }
  if name ~= nil then p.parameter_name = check_string("param.text", "name", name) end
  return p
end

--- A currency parameter.
-- @tparam string code ISO 4217 code
-- @tparam number amount_1000 the amount times 1000
-- @tparam string fallback the text shown (the Cloud API always shows it)
-- @treturn table `{type="currency", currency={...}}`
function param.currency(code, amount_1000, fallback)
  check_string("param.currency", "code", code)
  if type(amount_1000) ~= "number" then fail("param.currency", "amount_1000 must be a number") end
  check_string("param.currency", "fallback", fallback)
  return { type = "currency", currency = { fallback_value = fallback, code = code, amount_1000 = amount_1000 } }
end

--- A date_time parameter.
-- @tparam string|table fallback the text shown, or the whole `date_time` object
-- @tparam[opt] table fields more fields of the object (`calendar`, `year`, `month`, ...)
-- @treturn table `{type="date_time", date_time={fallback_value=..., ...}}`
function param.date_time(fallback, fields)
  local dt
  if type(fallback) == "table" then
    dt = copy(fallback)
  else
    dt = { fallback_value = check_string("param.date_time", "fallback", fallback) }
  end
  if fields ~= nil then
    check_table("param.date_time", "fields", fields)
    for k, v in pairs(fields) do dt[k] = v end
  end
  check_string("param.date_time", "fallback_value", dt.fallback_value)
  return { type = "date_time", date_time = dt }
end

local function media_param(kind, media, filename)
  local p = { type = kind, [kind] = media_object("param." .. kind, "media", media) }
  if filename ~= nil then p[kind].filename = check_string("param." .. kind, "filename", filename) end
  return p
end

--- An image parameter (header).
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @treturn table `{type="image", image={...}}`
function param.image(media) return media_param("image", media) end

--- A video parameter (header).
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @treturn table `{type="video", video={...}}`
function param.video(media) return media_param("video", media) end

--- A document parameter (header).
-- @tparam string|table media media id, http(s) URL, or `{id=}` / `{link=}`
-- @tparam[opt] string filename the file name shown
-- @treturn table `{type="document", document={...}}`
function param.document(media, filename) return media_param("document", media, filename) end

--- A location parameter (header of a location template).
-- @tparam table loc `{latitude=, longitude=, name=, address=}`
-- @treturn table `{type="location", location={...}}`
function param.location(loc)
  return { type = "location", location = location_object("param.location", loc) }
end

--- A quick-reply button payload.
-- @tparam string payload returned in the webhook as `button.payload`
-- @treturn table `{type="payload", payload=...}`
function param.payload(payload)
  return { type = "payload", payload = check_string("param.payload", "payload", payload) }
end

--- A copy-code button's coupon code.
-- @tparam string code
-- @treturn table `{type="coupon_code", coupon_code=...}`
function param.coupon_code(code)
  return { type = "coupon_code", coupon_code = check_string("param.coupon_code", "code", code) }
end

--- An action parameter (flow, catalog and multi-product buttons).
-- @tparam table action e.g. `{flow_token=, flow_action_data=}` or `{thumbnail_product_retailer_id=}`
-- @treturn table `{type="action", action=...}`
function param.action(action)
  return { type = "action", action = check_table("param.action", "action", action) }
end

--- A limited-time-offer parameter.
-- @tparam number expiration_time_ms when the offer expires (Unix time in milliseconds)
-- @treturn table `{type="limited_time_offer", limited_time_offer={expiration_time_ms=...}}`
function param.limited_time_offer(expiration_time_ms)
  if type(expiration_time_ms) ~= "number" then
    fail("param.limited_time_offer", "expiration_time_ms must be a number")
  end
  return { type = "limited_time_offer", limited_time_offer = { expiration_time_ms = expiration_time_ms } }
end

--- A copy of a parameter with its `parameter_name` set (named-parameter templates).
-- @tparam string name the parameter name
-- @tparam table|string p a parameter (a string is a text parameter)
-- @treturn table the named parameter
function param.named(name, p)
  check_string("param.named", "name", name)
  if type(p) ~= "table" then p = param.text(p) else p = copy(p) end
  p.parameter_name = name
  return p
end

-- One parameter: a table as given, a string or a number as a text parameter.
local function to_param(fname, v, where)
  if type(v) == "table" then return v end
  if type(v) == "string" or type(v) == "number" then return param.text(v) end
  fail(fname, "%s must be a string, a number or a parameter table, got %s", where, type(v))
end

-- A single parameter table (as opposed to an array or a map of named parameters): its
-- `type` names a field it has (`{type="text", text=...}`).
local function is_param(t)
  return type(t.type) == "string" and t[lower(t.type)] ~= nil
end

-- The parameters of a header or body: one parameter, an array, or a map name -> value.
local function parameters(fname, where, v)
  if type(v) ~= "table" then return array({ to_param(fname, v, where) }) end
  if is_param(v) then return array({ v }) end
  if is_sequence(v) then
    for k in pairs(v) do
      if type(k) ~= "number" then fail(fname, "%s mixes positional and named parameters", where) end
    end
    return map_array(v, function(p, i) return to_param(fname, p, where .. "[" .. i .. "]") end)
  end
  local names = {}
  for k in pairs(v) do
    if type(k) ~= "string" then fail(fname, "%s mixes positional and named parameters", where) end
    names[#names + 1] = k
  end
  sort(names)
  return map_array(names, function(k)
    local p = to_param(fname, v[k], where .. "." .. k)
    p = copy(p)
    p.parameter_name = k
    return p
  end)
end

-- Button sub types and how their friendly field becomes the parameter.
local BUTTON_PARAMS = {
  quick_reply = function(b) return b.payload ~= nil and param.payload(b.payload) end,
  url = function(b) return b.text ~= nil and param.text(b.text) end,
  copy_code = function(b)
    local c = b.coupon_code or b.code
    return c ~= nil and param.coupon_code(c)
  end,
  flow = function(b)
    local a = b.action ~= nil and copy(check_table("template", "button action", b.action)) or {}
    if b.token ~= nil or b.flow_token ~= nil then a.flow_token = b.token or b.flow_token end
    if b.data ~= nil or b.flow_action_data ~= nil then a.flow_action_data = b.data or b.flow_action_data end
    return param.action(a)
  end,
  catalog = function(b)
    local a = b.action ~= nil and copy(check_table("template", "button action", b.action)) or {}
    local thumb = b.thumbnail or b.thumbnail_product_retailer_id
    if thumb ~= nil then a.thumbnail_product_retailer_id = thumb end
    return param.action(a)
  end,
}
BUTTON_PARAMS.mpm = function(b)
  local p = BUTTON_PARAMS.catalog(b)
  if b.sections ~= nil then p.action.sections = b.sections end
  return p
end

local BUTTON_KEYS = set("type", "sub_type", "index", "parameters", "payload", "text", "coupon_code", "code",
                        "token", "flow_token", "data", "flow_action_data", "action", "thumbnail",
                        "thumbnail_product_retailer_id", "sections")

local function button_component(fname, b, i)
  if type(b) == "string" then b = { type = "quick_reply", payload = b } end
  if type(b) ~= "table" then fail(fname, "buttons[%d] must be a string or a table", i) end
  for k in pairs(b) do
    if not BUTTON_KEYS[k] then fail(fname, "buttons[%d]: unknown field '%s'", i, tostring(k)) end
  end
  local sub_type = b.sub_type or b.type
  if type(sub_type) ~= "string" then fail(fname, "buttons[%d] needs a type", i) end
  local c = { type = "button", sub_type = sub_type, index = b.index }
  if c.index == nil then c.index = tostring(i - 1) end
  if b.parameters ~= nil then
    check_table(fname, "buttons[" .. i .. "].parameters", b.parameters)
    c.parameters = map_array(b.parameters)
  else
    local make = BUTTON_PARAMS[lower(sub_type)]
    if not make then fail(fname, "buttons[%d]: sub type '%s' needs parameters", i, sub_type) end
    local p = make(b)
    if not p then fail(fname, "buttons[%d]: missing the %s value", i, sub_type) end
    c.parameters = array({ p })
  end
  return c
end

local COMPONENT_KEYS = set("header", "body", "limited_time_offer", "buttons")

-- Wire components from the friendly map.
local function components_from_map(fname, map)
  for k in pairs(map) do
    if not COMPONENT_KEYS[k] then fail(fname, "unknown component '%s'", tostring(k)) end
  end
  local out = array()
  if map.header ~= nil then
    out[#out + 1] = { type = "header", parameters = parameters(fname, "header", map.header) }
  end
  if map.body ~= nil then
    out[#out + 1] = { type = "body", parameters = parameters(fname, "body", map.body) }
  end
  local lto = map.limited_time_offer
  if lto ~= nil then
    if type(lto) == "number" then
      lto = param.limited_time_offer(lto)
    elseif type(lto) == "table" and lto.type == nil then
      lto = { type = "limited_time_offer", limited_time_offer = lto }
    end
    check_table(fname, "limited_time_offer", lto)
    out[#out + 1] = { type = "limited_time_offer", parameters = array({ lto }) }
  end
  if map.buttons ~= nil then
    check_table(fname, "buttons", map.buttons)
    for i, b in ipairs(map.buttons) do out[#out + 1] = button_component(fname, b, i) end
  end
  return out
end

--- A template message.
-- @tparam string to recipient
-- @tparam string name the template name
-- @tparam string|table language a language code (`"en_US"`) or `{code=, policy=}`
-- @tparam[opt] table components either the wire array of components (used as given), or a
--   map `{header=, body=, limited_time_offer=, buttons=}`:
--
--   * `header` / `body`: one parameter, an array of parameters, or a map name -> value for
--     named-parameter templates (sorted by name); a string or number is a text parameter.
--   * `limited_time_offer`: the expiration time in ms, or `{expiration_time_ms=}`.
--   * `buttons`: array; each a payload string (quick reply), or `{type=sub_type, ...}` with
--     `payload` (quick_reply), `text` (url suffix), `code` / `coupon_code` (copy_code),
--     `token` / `data` (flow), `thumbnail` (catalog, mpm) or raw `parameters`; `index`
--     defaults to the position ("0", "1", ...), give it to override (number or string).
-- @tparam[opt] table opts common options
-- @treturn table the message body
function message.template(to, name, language, components, opts)
  opts = check_opts("template", opts)
  local m = envelope("template", to, "template", opts)
  check_string("template", "name", name)
  local lang
  if type(language) == "string" then
    lang = { code = language }
  elseif type(language) == "table" then
    lang = copy(language)
    check_string("template", "language.code", lang.code)
  else
    fail("template", "language must be a string or a table, got %s", type(language))
  end
  local t = { name = name, language = lang }
  if components ~= nil then
    check_table("template", "components", components)
    if is_sequence(components) then
      t.components = map_array(components)
    elseif next(components) ~= nil then
      t.components = components_from_map("template", components)
    end
  end
  m.template = t
  return m
end

---------------------------------------------------------------------------------------------
-- Read receipts, raw bodies, encoding
---------------------------------------------------------------------------------------------

--- Mark an incoming message as read (and optionally show the typing indicator).
-- @tparam string message_id the wamid of the incoming message
-- @tparam[opt] table opts `typing` (true: add `typing_indicator{type="text"}`),
--   `recipient_type` (written only when given)
-- @treturn table the request body (no recipient)
function message.read(message_id, opts)
  check_string("read", "message_id", message_id)
  if opts ~= nil then
    check_table("read", "opts", opts)
    for k in pairs(opts) do
      if k ~= "typing" and k ~= "recipient_type" then
        fail("read", "unknown option '%s'", tostring(k))
      end
    end
  else
    opts = {}
  end
  local m = { messaging_product = "whatsapp", status = "read", message_id = message_id }
  if opts.recipient_type then m.recipient_type = check_string("read", "opts.recipient_type", opts.recipient_type) end
  if opts.typing then m.typing_indicator = { type = "text" } end
  return m
end

--- Any body, as given: a shallow copy with `messaging_product = "whatsapp"` added when absent.
-- @tparam table body the request body in the wire form
-- @treturn table the body
function message.raw(body)
  check_table("raw", "body", body)
  local m = copy(body)
  if m.messaging_product == nil then m.messaging_product = "whatsapp" end
  return m
end

-- Empty tables marked as arrays are swapped for a token string cjson encodes verbatim, then
-- the quoted token is replaced by `[]`. The token is chosen absent from every string.
local function scan(v, seen, st)
  if type(v) == "string" then
    if find(v, st.token, 1, true) then st.clash = true end
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    if next(v) == nil and getmetatable(v) == array_mt then st.empty = true end
    for k, x in pairs(v) do
      scan(k, seen, st)
      scan(x, seen, st)
    end
  end
end

local function substitute(v, token)
  if type(v) ~= "table" then return v end
  if next(v) == nil and getmetatable(v) == array_mt then return token end
  local c = {}
  for k, x in pairs(v) do c[k] = substitute(x, token) end
  return c
end

--- Encode a body as JSON text (arrays built by this module stay arrays, even empty).
-- @tparam table msg a body made by a builder (or any JSON-encodable table)
-- @treturn string the JSON text
function message.encode(msg)
  check_table("encode", "msg", msg)
  if rawget(cjson, "array_mt") then return json.encode(msg) end
  -- Fast path: an empty Lua table is the only thing that encodes as "{}", so a text
  -- without "{}" has no empty array to fix (the scan below costs 3x the encoding).
  local plain = json.encode(msg)
  if not find(plain, "{}", 1, true) then return plain end
  local st = { token = "\1wa-empty-array\1" }
  scan(msg, {}, st)
  if not st.empty then return json.encode(msg) end
  local n = 0
  while st.clash do
    n = n + 1
    st = { token = "\1wa-empty-array-" .. n .. "\1" }
    scan(msg, {}, st)
  end
  local text = json.encode(substitute(msg, st.token))
  local quoted = json.encode(st.token)
  local parts, pos = {}, 1
  while true do
    local a, b = find(text, quoted, pos, true)
    if not a then break end
    parts[#parts + 1] = sub(text, pos, a - 1)
    parts[#parts + 1] = "[]"
    pos = b + 1
  end
  parts[#parts + 1] = sub(text, pos)
  return concat(parts)
end


return message
