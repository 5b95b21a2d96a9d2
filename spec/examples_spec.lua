-- The example bots (examples/bots/), each driven through the simulator with whatsapp.testing:
-- real conversations with buttons, lists, ask, templates, the 24-hour window, opt-out and
-- sequences.
local testing = require "whatsapp.testing"
local botlib = require "whatsapp.bot"

local USER = testing.USER

local function example(name)
  return dofile("examples/bots/" .. name .. ".lua")
end

local function texts(replies)
  local out = {}
  for i, r in ipairs(replies) do out[i] = r.text or ("<" .. r.type .. ">") end
  return out
end

describe("example bots", function()
  local t
  after_each(function()
    if t then t:close() end
    t = nil
  end)

  it("each has a name, a description, setup, templates and bot options", function()
    for _, name in ipairs{ "echo", "menu", "orders" } do
      local ex = example(name)
      assert.equal(name, ex.name)
      assert.equal("string", type(ex.description))
      assert.equal("function", type(ex.setup))
      assert.equal("table", type(ex.templates))
      assert.equal("table", type(ex.bot_options))
    end
  end)

  describe("echo", function()
    before_each(function() t = testing.start{ example = example("echo") } end)

    it("echoes texts and marks every message read", function()
      local replies, wamid = t:say("Hello there")
      assert.same({ "Hello there" }, texts(replies))
      assert.equal("text", replies[1].type)
      local _, second = t:say("ünïcødé ✓")
      assert.equal("ünïcødé ✓", t:last().text)
      assert.same({ wamid, second }, t:reads())
    end)

    it("reacts to media with an emoji", function()
      local replies, wamid = t:say{ type = "image", image = { id = "5001", mime_type = "image/jpeg" } }
      assert.equal(1, #replies)
      assert.equal("reaction", replies[1].type)
      assert.equal("😍", replies[1].emoji)
      assert.equal(wamid, replies[1].message_id)
      assert.equal("🎧", t:say{ type = "audio", audio = { id = "5002", mime_type = "audio/ogg", voice = true } }[1]
        .emoji)
      assert.equal("📄", t:say{ type = "document", document = { id = "5003", mime_type = "application/pdf",
        filename = "a.pdf" } }[1].emoji)
    end)

    it("says what it cannot echo, and lets reactions be", function()
      local replies = t:say{ type = "location", location = { latitude = 52.52, longitude = 13.40 } }
      assert.same({ "I can only echo text (and react to media), so I cannot echo a location." }, texts(replies))
      replies = t:say{ type = "contacts", contacts = { { name = { formatted_name = "Ana" } } } }
      assert.truthy(replies[1].text:find("a contact card", 1, true))
      local mine = t:last()
      assert.same({}, t:say{ type = "reaction", reaction = { message_id = mine.id, emoji = "❤️" } })
    end)

    it("can leave messages unread", function()
      t:close()
      t = testing.start{ example = example("echo"), setup_options = { mark_read = false } }
      assert.same({ "x" }, texts(t:say("x")))
      assert.same({}, t:reads())
    end)
  end)

  describe("menu", function()
    before_each(function() t = testing.start{ example = example("menu") } end)

    it("greets with reply buttons on hi or /start", function()
      local r = t:say("hi")[1]
      assert.equal("buttons", r.type)
      assert.equal("Hi there! What would you like to do?", r.text)
      assert.same({ "Menu", "Order status", "Help" }, r.choices)
      assert.equal("Pizza Lua", r.header)
      assert.same({ "Menu", "Order status", "Help" }, t:say("/start")[1].choices)
      assert.same({ "Menu", "Order status", "Help" }, t:say("  Hello ")[1].choices)
      assert.truthy(t:tap("Help")[1].text:find("Tap *Menu* to order", 1, true))
      assert.same({ "Send *hi* to see what I can do." }, texts(t:say("what?")))
    end)

    it("takes an order: list, quantity, name, confirmation, then the order status", function()
      t:say("hi")
      local list = t:tap("Menu")[1]
      assert.equal("list", list.type)
      assert.equal("See the menu", list.button)
      assert.same({ "Margherita", "Funghi", "Diavola", "Lemonade", "Espresso" }, list.choices)
      assert.equal("Pizza", list.rows[1].section)
      assert.equal("Drinks", list.rows[4].section)
      assert.equal("Tomato, mozzarella, basil, €8.50", list.rows[1].description)

      assert.same({ "How many Margherita would you like?" }, texts(t:choose("Margherita")))
      assert.same({ "Please send a number from 1 to 20." }, texts(t:say("two")))
      assert.same({ "Please send a number from 1 to 20." }, texts(t:say("99")))
      assert.same({ "What name should we put on the order?" }, texts(t:say("2")))
      local summary = t:say("Ana")[1]
      assert.equal("buttons", summary.type)
      assert.equal("2 × Margherita, €17.00 for Ana.\nShall we start baking?", summary.text)
      assert.same({ "Confirm", "Cancel" }, summary.choices)
      assert.same({ "Thanks Ana! Order A-1001 is confirmed: 2 × Margherita, €17.00. We will message you when it "
        .. "is on its way." }, texts(t:tap("Confirm")))

      -- the session keeps the name and the orders
      assert.same({ "A-1001: 2 × Margherita, €17.00 (being prepared)" }, texts(t:tap("Order status")))
      t:say("hi")
      assert.equal("Hi Ana! What would you like to do?", t:last().text)
      t:tap("Menu")
      t:choose("item:espresso")
      local again = t:say("1")[1]
      assert.equal("1 × Espresso, €2.00 for Ana.\nShall we start baking?", again.text, "no second name question")
      t:tap("Confirm")
      assert.same({ "A-1002: 1 × Espresso, €2.00 (being prepared)\nA-1001: 2 × Margherita, €17.00 (being prepared)" },
        texts(t:tap("Order status")))
    end)

    it("cancels, gives up after three wrong quantities, and stops asking on STOP", function()
      t:say("hi")
      t:tap("Menu")
      t:choose("Funghi")
      t:say("1")
      t:say("Bo")
      assert.same({ "No problem, the order is cancelled." }, texts(t:tap("Cancel")))
      assert.same({ "You have no orders yet. Tap Menu to order." }, texts(t:tap("Order status")))

      t:choose("Diavola")
      t:say("a")
      t:say("b")
      assert.same({ "Let's start over: send *hi* when you are ready." }, texts(t:say("c")))
      assert.same({ "Send *hi* to see what I can do." }, texts(t:say("d")), "the conversation is over")

      t:choose("Lemonade")
      assert.same({ botlib.OPT_OUT_CONFIRM }, texts(t:say("STOP")))
      assert.is_false(t:busy())
      assert.equal(0, t.bot:active_users(), "the question ended")
    end)

    it("serves two customers at once, each in their own conversation", function()
      local ana, bo = t:as("15550003333", "Ana"), t:as("15550004444", "Bo")
      ana:say("hi")
      bo:say("hi")
      ana:tap("Menu")
      bo:tap("Menu")
      ana:choose("Margherita")
      bo:choose("Espresso")
      assert.same({ "What name should we put on the order?" }, texts(bo:say("3")))
      assert.same({ "What name should we put on the order?" }, texts(ana:say("1")))
      assert.equal("1 × Margherita, €8.50 for Ana.\nShall we start baking?", ana:say("Ana")[1].text)
      assert.equal("3 × Espresso, €6.00 for Bo.\nShall we start baking?", bo:say("Bo")[1].text)
      ana:tap("Confirm")
      bo:tap("Cancel")
      assert.same({ "A-1001: 1 × Margherita, €8.50 (being prepared)" }, texts(ana:tap("Order status")))
      assert.same({ "You have no orders yet. Tap Menu to order." }, texts(bo:tap("Order status")))
    end)
  end)

  describe("orders", function()
    local orders
    local order = { id = "A-1001", phone = "+1 555 000 2222", customer = "Ana", total = 1700, currency = "EUR",
      carrier = "DHL", tracking = "JD0146", eta = "Friday, May 3" }
    local failed

    before_each(function()
      orders = example("orders")
      failed = {}
      t = testing.start{ example = orders, setup_options = { on_failed = function(info)
        failed[#failed + 1] = info
      end } }
    end)

    it("confirms an order with a template and named parameters, inside or outside the window", function()
      local replies, sent = t:run(orders.confirm, order)
      assert.truthy(sent)
      local r = replies[1]
      assert.equal("template", r.type)
      assert.equal("order_confirmed", r.name)
      assert.same({ customer = "Ana", order_id = "A-1001", total = "€17.00" }, r.params)
      assert.equal("Hi Ana, thanks for your order A-1001 of €17.00. We will let you know when it ships.", r.text)
      local total = r.body.template.components[1].parameters[3]
      assert.same({ type = "currency", parameter_name = "total",
        currency = { code = "EUR", amount_1000 = 17000, fallback_value = "€17.00" } }, total)
      assert.same({ "A-1001: confirmed" }, texts(t:say("status")))
    end)

    it("ships with a sequence: the template, then the details once it was delivered", function()
      t:say("hi") -- the customer wrote: the window is open
      local replies, results = t:run(orders.ship, order)
      assert.equal(2, #results)
      assert.equal("order_shipped", replies[1].name)
      assert.equal("Order A-1001 is on its way", replies[1].header)
      assert.equal("Hi Ana, your parcel left with DHL and should arrive Friday, May 3.", replies[1].text)
      assert.same({ { title = "Track parcel", url = "https://example.com/track/JD0146" } }, replies[1].links)
      assert.equal("Tracking number JD0146 (DHL). If nobody is home, the parcel waits at the nearest pick-up point.",
        replies[2].text)
      assert.equal("delivered", t.bot:last_status(results[1].id))
      assert.same({ "A-1001: shipped" }, texts(t:say("/status")))
    end)

    it("outside the window sends order_news instead, and hands the text over when they reply", function()
      t:say("hi")
      t:advance(25 * 3600)
      local replies, sent = t:run(orders.notify, order.phone, "Your parcel is a day late, sorry!")
      assert.is_true(sent.fallback)
      assert.equal(1, #replies)
      assert.equal("order_news", replies[1].name)
      assert.equal("There is news about your order. Reply to this message to read it.", replies[1].text)
      -- shipping details held the same way
      local shipped = t:run(orders.ship, order)
      assert.same({ "order_shipped", "order_news" }, { shipped[1].name, shipped[2].name })
      local answer = t:say("What news?")
      assert.same({ "Your parcel is a day late, sorry!",
        "Tracking number JD0146 (DHL). If nobody is home, the parcel waits at the nearest pick-up point.",
        "I send updates about your orders. Send *status* to see them, STOP to stop the updates." }, texts(answer))
      assert.equal("text", answer[1].type)
      -- handed over once
      assert.same({ "A-1001: shipped" }, texts(t:say("status")))
    end)

    it("STOP stops every update until START", function()
      assert.same({ orders.bot_options.opt_out.confirm }, texts(t:say("stop")))
      assert.is_true(t.bot:opted_out(USER))
      local replies, sent, err = t:run(orders.confirm, order)
      assert.same({}, replies)
      assert.is_nil(sent)
      assert.equal("opted_out", err.code)
      local _, results, serr = t:run(orders.ship, order)
      assert.is_nil(results)
      assert.equal("opted_out", serr.code)
      -- what the customer asks is still answered
      assert.same({ "We have no orders for this number." }, texts(t:say("status")))
      assert.same({ orders.bot_options.opt_out.resumed }, texts(t:say("START")))
      local _, again = t:run(orders.confirm, order)
      assert.truthy(again)
    end)

    it("the Stop updates button of order_shipped opts out too", function()
      t:say("hi")
      t:run(orders.ship, order)
      assert.same({ orders.bot_options.opt_out.confirm }, texts(t:tap("Stop updates")))
      assert.is_true(t.bot:opted_out(USER))
      local _, _, err = t:run(orders.notify, order.phone, "more news")
      assert.equal("opted_out", err.code)
    end)

    it("logs deliveries that failed", function()
      local replies = t:run(orders.confirm, order)
      t:fail(replies[1], 131026, "Message undeliverable")
      assert.equal(1, #failed)
      assert.same({ id = replies[1].id, to = USER, template = "order_confirmed", code = 131026,
        title = "Message undeliverable" }, failed[1])
      local lines = t:log_lines("order update not delivered")
      assert.equal(1, #lines)
      assert.equal("order_confirmed", lines[1].template)
      assert.equal(131026, lines[1].code)
      assert.equal("*******2222", lines[1].user)
      assert.equal("failed", t.bot:last_status(replies[1].id))
    end)

    it("the registry refuses a value the template does not have, before sending", function()
      local bad = {}
      for k, v in pairs(order) do bad[k] = v end
      bad.customer = nil
      local replies, sent, err = t:run(orders.confirm, bad)
      assert.same({}, replies)
      assert.is_nil(sent)
      assert.equal("validation", err.code)
      assert.equal("template.body.customer", err.path)
    end)
  end)
end)
