-- whatsapp.message: the builders' options, shorthands, encoding, and the errors raised for
-- programmer mistakes (which must blame the caller's line). The wire forms against Meta's
-- examples and schema are in conformance_spec.lua.
local cjson = require "cjson"
local message = require "whatsapp.message"
local P = message.param

local U = "15550002222"

-- The error a call raises, asserting it blames this file (error level 2 seen from the caller).
local function raises(f, pattern)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  err = tostring(err)
  assert.matches("message_spec.lua:%d+:", err)
  if pattern then assert.matches(pattern, err, 1, true) end
  return err
end

local function decoded(m)
  return cjson.decode(message.encode(m))
end

describe("whatsapp.message envelope", function()
  it("writes messaging_product, type, to and recipient_type individual by default", function()
    local m = message.text(U, "hi")
    assert.are.same({ messaging_product = "whatsapp", recipient_type = "individual", to = U, type = "text",
                      text = { body = "hi" } }, m)
  end)

  it("sends to a group, leaves recipient_type out with false", function()
    assert.equal("group", message.text("G", "hi", { recipient_type = "group" }).recipient_type)
    local m = message.text(U, "hi", { recipient_type = false })
    assert.is_nil(m.recipient_type)
    assert.equal(U, m.to)
  end)

  it("addresses a BSUID as recipient instead of to", function()
    local m = message.image("US.1000000000000001", "123")
    assert.equal("US.1000000000000001", m.recipient)
    assert.is_nil(m.to)
    assert.equal("individual", m.recipient_type)
  end)

  it("writes reply_to as context.message_id and biz_opaque_callback_data", function()
    local m = message.sticker(U, "1", { reply_to = "wamid.X", biz_opaque_callback_data = "track" })
    assert.are.same({ message_id = "wamid.X" }, m.context)
    assert.equal("track", m.biz_opaque_callback_data)
  end)

  it("raises for a missing or non-string recipient, bad opts and unknown options", function()
    raises(function() message.text(nil, "hi") end, "whatsapp.message.text: missing recipient")
    raises(function() message.text(15550002222, "hi") end, "recipient must be a string, got number")
    raises(function() message.text("", "hi") end, "recipient must not be empty")
    raises(function() message.text(U, "hi", "opts") end, "opts must be a table")
    raises(function() message.text(U, "hi", { reply_too = "x" }) end, "unknown option 'reply_too'")
    raises(function() message.image(U, "1", { filename = "a" }) end,
           "whatsapp.message.image: unknown option 'filename'")
    raises(function() message.text(U, "hi", { recipient_type = 1 }) end, "opts.recipient_type must be a string")
    raises(function() message.text(U, "hi", { reply_to = 1 }) end, "opts.reply_to must be a string")
    raises(function() message.location_request(U, "Where?", { header = "H" }) end, "unknown option 'header'")
  end)

  it("returns new tables each call and does not change the caller's tables", function()
    local opts = { reply_to = "wamid.X" }
    local a, b = message.text(U, "hi", opts), message.text(U, "hi", opts)
    assert.are.same(a, b)
    assert.are_not.equal(a, b)
    assert.are.same({ reply_to = "wamid.X" }, opts)
    local media = { id = "1" }
    local m = message.document(U, media, { caption = "c", filename = "f" })
    assert.are.same({ id = "1" }, media)
    assert.are.same({ id = "1", caption = "c", filename = "f" }, m.document)
  end)
end)

describe("whatsapp.message text and media", function()
  it("writes preview_url only when given, true or false", function()
    assert.is_nil(message.text(U, "x").text.preview_url)
    assert.is_false(message.text(U, "x", { preview_url = false }).text.preview_url)
    assert.is_true(message.text(U, "x", { preview_url = true }).text.preview_url)
    raises(function() message.text(U, "x", { preview_url = "yes" }) end, "preview_url must be a boolean")
    raises(function() message.text(U, nil) end, "body must be a string, got nil")
    assert.equal("", message.text(U, "").text.body) -- lengths are whatsapp.validate's matter
    assert.are.same({ type = "text", text = "" }, P.text(""))
  end)

  it("tells a media id from an http(s) URL, and takes tables", function()
    assert.are.same({ id = "123" }, message.image(U, "123").image)
    assert.are.same({ link = "https://e.com/a.png" }, message.image(U, "https://e.com/a.png").image)
    assert.are.same({ link = "HTTP://e.com/a.mp4" }, message.video(U, "HTTP://e.com/a.mp4").video)
    assert.are.same({ link = "x://not-http" }, message.video(U, { link = "x://not-http" }).video)
    assert.are.same({ id = "ftp://x" }, message.sticker(U, "ftp://x").sticker)
  end)

  it("has caption, filename and voice where they belong", function()
    assert.equal("c", message.image(U, "1", { caption = "c" }).image.caption)
    assert.equal("c", message.video(U, "1", { caption = "c" }).video.caption)
    local d = message.document(U, "1", { caption = "c", filename = "a.pdf" }).document
    assert.are.same({ id = "1", caption = "c", filename = "a.pdf" }, d)
    assert.is_true(message.audio(U, "1", { voice = true }).audio.voice)
    raises(function() message.audio(U, "1", { voice = 1 }) end, "opts.voice must be a boolean")
    raises(function() message.audio(U, "1", { caption = "c" }) end, "unknown option 'caption'")
    raises(function() message.sticker(U, "1", { caption = "c" }) end, "unknown option 'caption'")
    raises(function() message.image(U, "1", { caption = 5 }) end, "opts.caption must be a string")
  end)

  it("raises for media that is not an id, a URL or a table with one", function()
    raises(function() message.image(U, nil) end, "media must be a media id, a URL or a table")
    raises(function() message.image(U, 5) end, "got number")
    raises(function() message.image(U, "") end, "media must not be empty")
    raises(function() message.document(U, { caption = "c" }) end, "media needs an id or a link")
  end)
end)

describe("whatsapp.message location, contacts, reaction", function()
  it("keeps coordinates as given and takes them positionally", function()
    assert.are.same({ latitude = "1.5", longitude = "-2", name = "N" },
                    message.location(U, { latitude = "1.5", longitude = "-2", name = "N" }).location)
    assert.are.same({ latitude = 1.5, longitude = 2.5, address = "A" },
                    message.location(U, { 1.5, 2.5, address = "A" }).location)
    raises(function() message.location(U, { longitude = 1 }) end, "location.latitude must be a number or a string")
    raises(function() message.location(U, "here") end, "location must be a table")
  end)

  it("wraps a single contact card, refuses none", function()
    local card = { name = { formatted_name = "A" } }
    assert.are.same({ card }, message.contacts(U, card).contacts)
    assert.are.same({ card, card }, message.contacts(U, { card, card }).contacts)
    raises(function() message.contacts(U, {}) end, "cards must not be empty")
    raises(function() message.contacts(U, "A") end, "cards must be a table")
    raises(function() message.contacts(U, { card, "B" }) end, "cards[2] must be a table")
  end)

  it("removes a reaction with an empty emoji, refuses reply_to", function()
    assert.equal("", message.reaction(U, "wamid.X").reaction.emoji)
    assert.equal("", message.reaction(U, "wamid.X", "").reaction.emoji)
    assert.equal("\240\159\145\141", message.reaction(U, "wamid.X", "\240\159\145\141").reaction.emoji)
    raises(function() message.reaction(U, "wamid.X", "x", { reply_to = "wamid.Y" }) end, "cannot be a reply")
    raises(function() message.reaction(U, nil, "x") end, "message_id must be a string")
    raises(function() message.reaction(U, "wamid.X", 1) end, "emoji must be a string")
  end)
end)

describe("whatsapp.message interactive", function()
  it("builds reply buttons from tables, strings and the wire form", function()
    local m = message.buttons(U, "Pick", { { id = "a", title = "A" }, "B",
                                           { type = "reply", reply = { id = "c", title = "C" } } })
    assert.equal("interactive", m.type)
    assert.equal("button", m.interactive.type)
    assert.are.same({ text = "Pick" }, m.interactive.body)
    assert.are.same({
      { type = "reply", reply = { id = "a", title = "A" } },
      { type = "reply", reply = { id = "B", title = "B" } },
      { type = "reply", reply = { id = "c", title = "C" } },
    }, m.interactive.action.buttons)
    raises(function() message.buttons(U, "Pick", {}) end, "buttons must not be empty")
    raises(function() message.buttons(U, "Pick", { { id = "a" } }) end, "buttons[1] needs an id and a title")
    raises(function() message.buttons(U, "Pick", { "a", 5 }) end, "buttons[2] must be a string or a table")
    raises(function() message.buttons(U, nil, { "a" }) end, "body must be a string")
  end)

  it("takes headers as text, media shorthands or the wire form, and footers", function()
    local function header(h) return message.buttons(U, "b", { "x" }, { header = h }).interactive.header end
    assert.are.same({ type = "text", text = "Hi" }, header("Hi"))
    assert.are.same({ type = "text", text = "Hi", sub_text = "s" }, header({ text = "Hi", sub_text = "s" }))
    assert.are.same({ type = "image", image = { link = "https://e.com/a.png" } },
                    header({ image = "https://e.com/a.png" }))
    assert.are.same({ type = "document", document = { id = "9", filename = "a.pdf" } },
                    header({ document = "9", filename = "a.pdf" }))
    assert.are.same({ type = "video", video = { id = "7" } }, header({ type = "video", video = "7" }))
    assert.are.same({ type = "image", image = { id = "1" } }, header({ type = "image", image = { id = "1" } }))
    raises(function() header({ image = "1", video = "2" }) end, "opts.header has both")
    raises(function() header({ caption = "x" }) end, "opts.header needs a type")
    raises(function() header(5) end, "opts.header must be a table")
    local m = message.buttons(U, "b", { "x" }, { footer = "F" })
    assert.are.same({ text = "F" }, m.interactive.footer)
    raises(function() message.buttons(U, "b", { "x" }, { footer = 5 }) end, "opts.footer must be a string")
  end)

  it("builds lists from sections or directly from rows", function()
    local m = message.list(U, "Choose", "Open", { "a", { id = "b", title = "B", description = "d" } })
    assert.are.same({ button = "Open", sections = { { rows = {
      { id = "a", title = "a" }, { id = "b", title = "B", description = "d" } } } } }, m.interactive.action)
    m = message.list(U, "Choose", "Open", { { title = "S1", rows = { "a" } }, { title = "S2", rows = { "b" } } },
                     { header = "H" })
    assert.equal("S2", m.interactive.action.sections[2].title)
    assert.are.same({ { id = "b", title = "b" } }, m.interactive.action.sections[2].rows)
    assert.are.same({ type = "text", text = "H" }, m.interactive.header)
    raises(function() message.list(U, "Choose", "Open", {}) end, "sections must not be empty")
    raises(function() message.list(U, "Choose", nil, { "a" }) end, "button_label must be a string")
    raises(function() message.list(U, "Choose", "Open", { { title = "S", rows = { "a" } }, { title = "T" } }) end,
           "sections[2] needs a rows array")
    raises(function() message.list(U, "Choose", "Open", { { rows = { "a", 3 } } }) end,
           "sections[1].rows[2] must be a string or a table")
  end)

  it("builds cta_url, location_request and call_permission_request actions", function()
    local m = message.cta_url(U, "Go", "Open", "https://e.com", { header = "H", footer = "F" })
    assert.equal("cta_url", m.interactive.type)
    assert.are.same({ name = "cta_url", parameters = { display_text = "Open", url = "https://e.com" } },
                    m.interactive.action)
    raises(function() message.cta_url(U, "Go", "Open") end, "url must be a string")
    m = message.location_request(U, "Where?")
    assert.equal("location_request_message", m.interactive.type)
    assert.are.same({ name = "send_location" }, m.interactive.action)
    m = message.call_permission_request(U, "May we call?")
    assert.are.same({ name = "call_permission_request" }, m.interactive.action)
    assert.equal("call_permission_request", m.interactive.type)
  end)

  it("builds flows from friendly or wire parameter names", function()
    local m = message.flow(U, "Start", { id = "1", cta = "Go", token = "t", mode = "draft", action = "navigate",
                                         screen = "S", data = { k = "v" } })
    assert.are.same({ name = "flow", parameters = {
      flow_message_version = "3", flow_id = "1", flow_cta = "Go", flow_token = "t", mode = "draft",
      flow_action = "navigate", flow_action_payload = { screen = "S", data = { k = "v" } } } }, m.interactive.action)
    m = message.flow(U, "Start", { flow_name = "signup", flow_cta = "Go", version = "4" })
    assert.are.same({ flow_message_version = "4", flow_name = "signup", flow_cta = "Go" },
                    m.interactive.action.parameters)
    m = message.flow(U, "Start", { name = "n", cta = "Go", screen = "ONLY" })
    assert.are.same({ screen = "ONLY" }, m.interactive.action.parameters.flow_action_payload)
    raises(function() message.flow(U, "Start", { cta = "Go" }) end, "params needs an id or a name")
    raises(function() message.flow(U, "Start", { id = "1" }) end, "params.cta must be a string")
    raises(function() message.flow(U, "Start", { id = "1", cta = "Go", colour = "red" }) end,
           "unknown flow parameter 'colour'")
  end)

  it("builds product, product_list and catalog messages", function()
    local m = message.product(U, "C", "SKU", { body = "b" })
    assert.are.same({ catalog_id = "C", product_retailer_id = "SKU" }, m.interactive.action)
    assert.are.same({ text = "b" }, m.interactive.body)
    assert.is_nil(m.interactive.footer)
    raises(function() message.product(U, "C", "SKU", { header = "H" }) end, "unknown option 'header'")
    m = message.product_list(U, "C", { { title = "S", items = { "a", { product_retailer_id = "b" } } } },
                             { header = "H", body = "B" })
    assert.are.same({ catalog_id = "C", sections = { { title = "S", product_items = {
      { product_retailer_id = "a" }, { product_retailer_id = "b" } } } } }, m.interactive.action)
    raises(function() message.product_list(U, "C", { { title = "S" } }) end, "sections[1] needs product_items")
    m = message.catalog(U, "See")
    assert.are.same({ name = "catalog_message" }, m.interactive.action)
    m = message.catalog(U, "See", { thumbnail = "SKU", footer = "F" })
    assert.are.same({ thumbnail_product_retailer_id = "SKU" }, m.interactive.action.parameters)
  end)

  it("builds order messages and takes any interactive object", function()
    local m = message.order_details(U, "Pay", { reference_id = "r" }, { header = { image = "1" } })
    assert.are.same({ name = "review_and_pay", parameters = { reference_id = "r" } }, m.interactive.action)
    m = message.order_status(U, "Done", { reference_id = "r", order = { status = "completed" } })
    assert.equal("review_order", m.interactive.action.name)
    local obj = { type = "button", action = {} }
    assert.equal(obj, message.interactive(U, obj, { reply_to = "wamid.X" }).interactive)
    raises(function() message.interactive(U, { action = {} }) end, "object.type must be a string")
  end)
end)

describe("whatsapp.message templates", function()
  local function components(c) return message.template(U, "t", "en", c).template.components end

  it("takes a language code or table, and no components", function()
    local m = message.template(U, "hello_world", "en_US")
    assert.are.same({ name = "hello_world", language = { code = "en_US" } }, m.template)
    m = message.template(U, "t", { code = "en", policy = "deterministic" }, {})
    assert.are.same({ name = "t", language = { code = "en", policy = "deterministic" } }, m.template)
    raises(function() message.template(U, "t", 5) end, "language must be a string or a table")
    raises(function() message.template(U, "t", { policy = "deterministic" }) end, "language.code must be a string")
    raises(function() message.template(U, nil, "en") end, "name must be a string")
    raises(function() message.template(U, "t", "en", "body") end, "components must be a table")
  end)

  it("uses a components array as given", function()
    local raw = { { type = "body", parameters = { P.text("x") } } }
    assert.are.same(raw, components(raw))
  end)

  it("builds header and body parameters: positional, single, numbers", function()
    assert.are.same({
      { type = "header", parameters = { { type = "text", text = "Hi" } } },
      { type = "body", parameters = { { type = "text", text = "a" }, { type = "text", text = "42" },
                                      { type = "text", text = "1.5" }, P.currency("EUR", 1500, "1.50 EUR") } },
    }, components({ header = "Hi", body = { "a", 42, 1.5, P.currency("EUR", 1500, "1.50 EUR") } }))
    assert.are.same({ { type = "body", parameters = { { type = "text", text = "x" } } } },
                    components({ body = P.text("x") }))
    raises(function() components({ body = { "a", true } }) end, "body[2] must be a string, a number or a parameter")
    raises(function() components({ footer = "x" }) end, "unknown component 'footer'")
  end)

  it("builds named parameters, sorted by name", function()
    assert.are.same({ { type = "body", parameters = {
      { type = "text", text = "Ana", parameter_name = "first_name" },
      { type = "currency", currency = { fallback_value = "$1", code = "USD", amount_1000 = 1000 },
        parameter_name = "total" },
    } } }, components({ body = { total = P.currency("USD", 1000, "$1"), first_name = "Ana" } }))
    assert.are.same({ type = "text", text = "A-1", parameter_name = "order" }, P.named("order", "A-1"))
    assert.are.same({ type = "text", text = "Ana", parameter_name = "name" }, P.text("Ana", "name"))
    local p = P.text("x")
    P.named("n", p)
    assert.is_nil(p.parameter_name)
    raises(function() components({ body = { "a", named = "b" } }) end, "body mixes positional and named")
  end)

  it("builds buttons of every sub type, with default and explicit indexes", function()
    local c = components({ buttons = {
      "STOP",
      { type = "url", text = "suffix" },
      { type = "copy_code", code = "C1" },
      { type = "copy_code", coupon_code = "C2", index = 7 },
      { type = "flow", token = "T", data = { a = 1 } },
      { type = "catalog", thumbnail = "SKU" },
      { type = "mpm", thumbnail = "SKU", sections = { { title = "S" } } },
      { sub_type = "quick_reply", index = "9", parameters = { P.payload("P") } },
    } })
    assert.are.same({
      { type = "button", sub_type = "quick_reply", index = "0", parameters = { P.payload("STOP") } },
      { type = "button", sub_type = "url", index = "1", parameters = { P.text("suffix") } },
      { type = "button", sub_type = "copy_code", index = "2", parameters = { P.coupon_code("C1") } },
      { type = "button", sub_type = "copy_code", index = 7, parameters = { P.coupon_code("C2") } },
      { type = "button", sub_type = "flow", index = "4",
        parameters = { P.action{ flow_token = "T", flow_action_data = { a = 1 } } } },
      { type = "button", sub_type = "catalog", index = "5",
        parameters = { P.action{ thumbnail_product_retailer_id = "SKU" } } },
      { type = "button", sub_type = "mpm", index = "6",
        parameters = { P.action{ thumbnail_product_retailer_id = "SKU", sections = { { title = "S" } } } } },
      { type = "button", sub_type = "quick_reply", index = "9", parameters = { P.payload("P") } },
    }, c)
    raises(function() components({ buttons = { { type = "quick_reply" } } }) end,
           "buttons[1]: missing the quick_reply value")
    raises(function() components({ buttons = { { type = "phone_number" } } }) end,
           "sub type 'phone_number' needs parameters")
    raises(function() components({ buttons = { { payload = "x" } } }) end, "buttons[1] needs a type")
    raises(function() components({ buttons = { { type = "url", txt = "x" } } }) end, "buttons[1]: unknown field 'txt'")
    raises(function() components({ buttons = { 5 } }) end, "buttons[1] must be a string or a table")
    local action = { flow_token = "T" }
    local b = components({ buttons = { { type = "flow", action = action, data = { x = 1 } } } })[1]
    assert.are.same({ flow_token = "T", flow_action_data = { x = 1 } }, b.parameters[1].action)
    assert.are.same({ flow_token = "T" }, action)
  end)

  it("builds the limited_time_offer component from a number, a table or a parameter", function()
    local want = { { type = "limited_time_offer", parameters = { P.limited_time_offer(99) } } }
    assert.are.same(want, components({ limited_time_offer = 99 }))
    assert.are.same(want, components({ limited_time_offer = { expiration_time_ms = 99 } }))
    assert.are.same(want, components({ limited_time_offer = P.limited_time_offer(99) }))
    raises(function() components({ limited_time_offer = "soon" }) end, "limited_time_offer must be a table")
  end)

  it("orders components header, body, limited_time_offer, buttons", function()
    local c = components({ buttons = { "X" }, limited_time_offer = 1, body = "b", header = "h" })
    assert.are.same({ "header", "body", "limited_time_offer", "button" },
                    { c[1].type, c[2].type, c[3].type, c[4].type })
  end)

  it("has parameter helpers that check their arguments", function()
    assert.are.same({ type = "date_time", date_time = { fallback_value = "May 1", year = 2024 } },
                    P.date_time("May 1", { year = 2024 }))
    assert.are.same({ type = "date_time", date_time = { fallback_value = "May 1", day_of_month = 1 } },
                    P.date_time{ fallback_value = "May 1", day_of_month = 1 })
    assert.are.same({ type = "document", document = { link = "https://e.com/a.pdf", filename = "a.pdf" } },
                    P.document("https://e.com/a.pdf", "a.pdf"))
    assert.are.same({ type = "image", image = { id = "1" } }, P.image("1"))
    assert.are.same({ type = "video", video = { link = "https://e.com/v.mp4" } }, P.video("https://e.com/v.mp4"))
    assert.are.same({ type = "location", location = { latitude = 1, longitude = 2, name = "N" } },
                    P.location{ latitude = 1, longitude = 2, name = "N" })
    raises(function() P.text(nil) end, "param.text: value must be a string")
    raises(function() P.currency("USD", "100", "$0.10") end, "amount_1000 must be a number")
    raises(function() P.currency("USD", 100) end, "fallback must be a string")
    raises(function() P.date_time() end, "fallback must be a string")
    raises(function() P.date_time{ year = 2024 } end, "fallback_value must be a string")
    raises(function() P.image(nil) end, "param.image: media must be")
    raises(function() P.document("1", 5) end, "filename must be a string")
    raises(function() P.payload(1) end, "payload must be a string")
    raises(function() P.coupon_code(nil) end, "code must be a string")
    raises(function() P.action("x") end, "action must be a table")
    raises(function() P.limited_time_offer("x") end, "expiration_time_ms must be a number")
    raises(function() P.location{ latitude = 1 } end, "location.longitude must be a number or a string")
    raises(function() P.named(nil, "x") end, "name must be a string")
  end)
end)

describe("whatsapp.message read and raw", function()
  it("marks as read, with the typing indicator and recipient_type on request", function()
    assert.are.same({ messaging_product = "whatsapp", status = "read", message_id = "wamid.X" },
                    message.read("wamid.X"))
    assert.are.same({ messaging_product = "whatsapp", status = "read", message_id = "wamid.X",
                      recipient_type = "individual", typing_indicator = { type = "text" } },
                    message.read("wamid.X", { typing = true, recipient_type = "individual" }))
    raises(function() message.read(nil) end, "message_id must be a string")
    raises(function() message.read("wamid.X", { reply_to = "y" }) end, "unknown option 'reply_to'")
  end)

  it("copies a raw body and adds messaging_product", function()
    local body = { to = U, type = "text", text = { body = "x" } }
    local m = message.raw(body)
    assert.equal("whatsapp", m.messaging_product)
    assert.is_nil(body.messaging_product)
    assert.equal("other", message.raw({ messaging_product = "other" }).messaging_product)
    raises(function() message.raw("x") end, "body must be a table")
  end)
end)

describe("whatsapp.message.encode", function()
  it("encodes builder output that decodes to the same table", function()
    local m = message.template(U, "t", "en", { body = { "a" }, buttons = { "P" } })
    assert.are.same(m, cjson.decode(message.encode(m)))
  end)

  it("writes arrays marked with message.array as [] when empty, objects as {}", function()
    local m = message.raw({ list = message.array(), nested = { inner = message.array({}) }, obj = {} })
    local text = message.encode(m)
    assert.matches('"list":[]', text, 1, true)
    assert.matches('"inner":[]', text, 1, true)
    assert.matches('"obj":{}', text, 1, true)
    assert.equal(message.array_mt, getmetatable(message.array()))
    raises(function() message.array("x") end, "table expected")
  end)

  it("keeps strings that look like its placeholder intact", function()
    local token = "\1wa-empty-array\1"
    local m = { a = message.array(), s = token, t = "x" .. token }
    local back = cjson.decode(message.encode(m))
    assert.equal(token, back.s)
    assert.equal("x" .. token, back.t)
    assert.matches('"a":[]', message.encode(m), 1, true)
  end)

  it("leaves the global cjson settings alone and raises for a non-table", function()
    local before = cjson.encode_number_precision()
    message.encode(message.text(U, "x"))
    assert.equal(before, cjson.encode_number_precision())
    raises(function() message.encode("x") end, "msg must be a table")
  end)

  it("keeps coordinates and amounts readable", function()
    local back = decoded(message.location(U, { latitude = 37.758056, longitude = -122.425332 }))
    assert.equal(37.758056, back.location.latitude)
    assert.equal(-122.425332, back.location.longitude)
    assert.equal(100990, decoded(message.template(U, "t", "en", { body = P.currency("USD", 100990, "x") }))
      .template.components[1].parameters[1].currency.amount_1000)
  end)
end)

describe("whatsapp.message.encode_text", function()
  -- How often each byte value occurs in a string: two JSON texts with the same fields in
  -- another order have the same counts.
  local function byte_counts(s)
    local c = {}
    for i = 1, #s do
      local b = s:byte(i)
      c[b] = (c[b] or 0) + 1
    end
    return c
  end

  local BODIES = {
    "hi", "Hello Maria, your order #48213 has shipped", "", " ", "héllo wörld 👍🏽 €", "a/b\\c\"d",
    "line\nbreak\ttab\r\0nul\1\31\127", "</script>", "\226\128\168\226\128\169", "invalid \255\192 bytes",
    string.rep("x", 5000), string.rep("é", 4096),
  }
  local RECIPIENTS = { U, "+15550002222", "1 (555) 000-2222", "US.1000000000000001", "a\"b", "group-id" }

  it("writes what message.encode writes for message.text, field for field and byte for byte", function()
    for _, to in ipairs(RECIPIENTS) do
      for _, body in ipairs(BODIES) do
        for _, preview in ipairs{ "none", true, false } do
          local opts, flag = nil, nil
          if preview ~= "none" then opts, flag = { preview_url = preview }, preview end
          local fast = message.encode_text(to, body, flag)
          local general = message.encode(message.text(to, body, opts))
          assert.are.same(cjson.decode(general), cjson.decode(fast))
          assert.equal(#general, #fast)
          assert.are.same(byte_counts(general), byte_counts(fast))
        end
      end
    end
  end)

  it("writes the fields in a fixed order", function()
    assert.equal('{"messaging_product":"whatsapp","recipient_type":"individual","to":"15550002222",'
      .. '"type":"text","text":{"preview_url":false,"body":"a\\/b"}}', message.encode_text(U, "a/b", false))
    assert.equal('{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"US.1",'
      .. '"type":"text","text":{"body":"x"}}', message.encode_text("US.1", "x"))
  end)

  it("raises for arguments message.text refuses", function()
    raises(function() message.encode_text(nil, "hi") end, "recipient must be a string")
    raises(function() message.encode_text("", "hi") end, "recipient must not be empty")
    raises(function() message.encode_text(U, 42) end, "body must be a string, got number")
    raises(function() message.encode_text(U, "hi", "yes") end, "preview_url must be a boolean")
  end)
end)
