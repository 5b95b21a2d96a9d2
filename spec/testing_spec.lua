-- whatsapp.testing: the harness that lets users test their bots in busted. Each test starts a
-- simulator and a bot wired together on loopback and talks to the bot as a user would.
local testing = require "whatsapp.testing"
local loop = require "whatsapp.loop"
local message = require "whatsapp.message"

local USER = testing.USER

describe("whatsapp.testing", function()
  local t
  after_each(function()
    if t then t:close() end
    t = nil
  end)

  describe("start", function()
    it("checks its options", function()
      assert.has_error(function() testing.start() end, "testing.start: options table expected")
      assert.has_error(function() testing.start{ setup = 1 } end, "testing.start: setup must be a function")
      assert.has_error(function() testing.start{ example = "x" } end, "testing.start: example must be a table")
      assert.has_error(function() testing.start{ bot = 1 } end, "testing.start: bot must be a table")
      assert.has_error(function() testing.start{ timeout = 0 } end,
        "testing.start: timeout must be a positive number")
    end)

    it("wires a bot, a simulator and a client together; setup gets the bot and its options", function()
      local got
      t = testing.start{ setup = function(bot, o) got = { bot = bot, o = o } end, setup_options = { x = 1 } }
      assert.equal(t.bot, got.bot)
      assert.same({ x = 1 }, got.o)
      assert.equal(t.client, t.bot:client())
      assert.equal(t.sim.url, t.client.base_url)
      assert.truthy(t.url:find("^http://127%.0%.0%.1:%d+/webhook$"))
      assert.same({}, t:say("anyone?"), "no handler, no reply")
    end)

    it("raises what setup raises, and closes what it started", function()
      assert.has_error(function() testing.start{ setup = function() error("broken setup", 0) end } end,
        "broken setup")
    end)
  end)

  describe("exchanges", function()
    it("say returns the replies to the message, as friendly tables", function()
      t = testing.start{ setup = function(bot)
        bot:text("hi", function(ctx)
          ctx:mark_read()
          ctx:reply("Hello " .. ctx.event.contact.name)
          ctx:reply("Second", { quote = true })
        end)
        bot:on("image", function(ctx) ctx:react("👍") end)
      end }
      local replies, wamid = t:say("hi", { name = "Ana" })
      assert.equal(2, #replies)
      assert.equal("text", replies[1].type)
      assert.equal("Hello Ana", replies[1].text)
      assert.equal(USER, replies[1].to)
      assert.equal(wamid, replies[2].quoted)
      assert.truthy(replies[1].id:find("^wamid%."))
      assert.equal("whatsapp", replies[1].body.messaging_product)
      assert.same({ wamid }, t:reads())
      local r2, img = t:say{ type = "image", image = { id = "1234", mime_type = "image/jpeg" } }
      assert.equal(1, #r2)
      assert.equal("reaction", r2[1].type)
      assert.equal("👍", r2[1].emoji)
      assert.equal(img, r2[1].message_id)
      assert.equal(3, #t:replies())
      assert.equal("reaction", t:last().type)
    end)

    it("waits for a handler that takes a while before it answers", function()
      t = testing.start{ setup = function(bot)
        bot:text(function(ctx)
          loop.sleep(0.05)
          ctx:reply("slow " .. ctx.text)
          loop.sleep(0.02)
          ctx:reply("and done")
        end)
      end }
      local replies = t:say("one")
      assert.same({ "slow one", "and done" }, { replies[1].text, replies[2].text })
    end)

    it("returns as soon as `count` replies arrived", function()
      t = testing.start{ setup = function(bot)
        bot:text(function(ctx)
          ctx:reply("first")
          loop.sleep(0.3)
          ctx:reply("second")
        end)
      end }
      local replies = t:say("go", { count = 1 })
      assert.equal(1, #replies)
      assert.equal("first", replies[1].text)
      assert.is_true(t:busy())
      local rest = t:wait()
      assert.equal(1, #rest)
      assert.equal("second", rest[1].text)
      assert.is_false(t:busy())
    end)

    it("raises when the bot stays busy past the timeout", function()
      t = testing.start{ setup = function(bot)
        bot:text(function() loop.sleep(5) end)
      end }
      assert.has_error(function() t:say("hang", { timeout = 0.1 }) end)
      local ok, err = pcall(t.say, t, "hang", { timeout = 0.1 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("still busy after 0.1 s", 1, true))
    end)

    it("a handler error fails the exchange with its message, unless raise = false", function()
      t = testing.start{ setup = function(bot)
        bot:text("boom", function() error("kaput") end)
        bot:text("fine", function(ctx) ctx:reply("ok") end)
      end }
      local ok, err = pcall(t.say, t, "boom")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("a handler raised while handling a text", 1, true))
      assert.truthy(tostring(err):find("kaput", 1, true))
      assert.equal("ok", t:say("fine")[1].text)
      t:close()

      t = testing.start{ raise = false, setup = function(bot) bot:text(function() error("kaput") end) end }
      assert.same({}, t:say("boom"))
      assert.equal(1, #t:errors())
      assert.truthy(tostring(t:errors()[1].error):find("kaput", 1, true))
      assert.equal(1, #t:log_lines("handler error"))
    end)

    it("keeps the bot's log lines", function()
      t = testing.start{ setup = function(bot) bot:text(function(ctx) ctx:reply("x") end) end }
      local _, wamid = t:say("hi")
      local events = t:log_lines(function(l) return l.msg == "event" and l.id == wamid end)
      assert.equal(1, #events)
      assert.equal("routed", events[1].outcome)
      for _, line in ipairs(t.logs) do
        assert.is_nil(line:find("EAAG", 1, true), "the token is never logged")
      end
    end)

    it("refuses to work once closed", function()
      t = testing.start{}
      t:close()
      t:close()
      assert.has_error(function() t:say("hi") end, "t:say: the test world was closed")
    end)
  end)

  describe("buttons and lists", function()
    before_each(function()
      t = testing.start{ setup = function(bot)
        bot:text("hi", function(ctx)
          ctx:reply_buttons("Pick one", { { id = "a", title = "Apple" }, { id = "b", title = "Banana" } },
            { header = "Fruit", footer = "fresh" })
        end)
        bot:text("list", function(ctx)
          ctx:reply_list("Choose", "Open", { { title = "Red", rows = { { id = "r1", title = "Cherry",
            description = "sweet" } } }, { title = "Green", rows = { { id = "g1", title = "Lime" } } } })
        end)
        bot:button(function(ctx)
          ctx:reply("tapped " .. ctx.event.reply.id .. " on " .. tostring(ctx.event.context.id))
        end)
        bot:list(function(ctx) ctx:reply("chose " .. ctx.event.reply.id .. " " .. ctx.event.reply.title) end)
      end }
    end)

    it("tap sends a button reply (by title or id) quoting the message with the buttons", function()
      local replies = t:say("hi")
      local r = replies[1]
      assert.equal("buttons", r.type)
      assert.equal("Pick one", r.text)
      assert.equal("Fruit", r.header)
      assert.equal("fresh", r.footer)
      assert.same({ { id = "a", title = "Apple" }, { id = "b", title = "Banana" } }, r.buttons)
      assert.same({ "Apple", "Banana" }, r.choices)
      assert.equal("tapped b on " .. r.id, t:tap("Banana")[1].text)
      assert.equal("tapped a on " .. r.id, t:tap("a")[1].text)
      assert.has_error(function() t:tap("Cherry") end, "t:tap: no message to " .. USER .. " has a button Cherry")
    end)

    it("choose sends a list reply (by title or id)", function()
      local r = t:say("list")[1]
      assert.equal("list", r.type)
      assert.equal("Open", r.button)
      assert.same({ "Cherry", "Lime" }, r.choices)
      assert.same({ id = "r1", title = "Cherry", description = "sweet", section = "Red" }, r.rows[1])
      assert.equal("chose r1 Cherry", t:choose("Cherry")[1].text)
      assert.equal("chose g1 Lime", t:choose("g1")[1].text)
      assert.has_error(function() t:choose("Apple") end, "t:choose: no list sent to " .. USER .. " has a row Apple")
    end)

    it("each user taps their own messages", function()
      local ana = t:as("+1 555 000 3333", "Ana")
      ana:say("hi")
      assert.has_error(function() t:tap("Apple") end)
      assert.equal("tapped a on " .. ana:replies()[1].id, ana:tap("Apple")[1].text)
      assert.equal(2, #ana:replies())
      assert.equal(0, #t:replies{ to = USER })
    end)
  end)

  describe("conversations", function()
    it("an exchange ends while the handler waits in ask; the answer resumes it", function()
      t = testing.start{ setup = function(bot)
        bot:command("order", function(ctx)
          local qty = ctx:ask("How many?")
          local name = ctx:ask("Name?")
          ctx.session.last = qty.text .. " for " .. name.text
          ctx:reply("OK: " .. ctx.session.last)
        end)
      end }
      assert.equal("How many?", t:say("/order")[1].text)
      assert.is_false(t:busy())
      assert.equal("Name?", t:say("3")[1].text)
      assert.equal("OK: 3 for Ana", t:say("Ana")[1].text)
      assert.equal(0, t.bot:active_users())
    end)

    it("a sequence runs to its end within the exchange (status webhooks included)", function()
      t = testing.start{ status_delay = 0.01, setup = function(bot)
        bot:command("seq", function(ctx) assert(ctx:send_sequence{ "one", "two", "three" }) end)
      end }
      local replies = t:say("/seq")
      assert.same({ "one", "two", "three" }, { replies[1].text, replies[2].text, replies[3].text })
      for _, r in ipairs(replies) do assert.equal("delivered", t.bot:last_status(r.id)) end
    end)

    it("run drives business-initiated sends and returns what the function returned", function()
      t = testing.start{}
      t:say("hi")
      local replies, sent, err = t:run(function(bot, to, text) return bot:send(to, text) end, USER, "news")
      assert.is_nil(err)
      assert.equal(replies[1].id, sent.id)
      assert.equal("news", replies[1].text)
      local ok, rerr = pcall(t.run, t, function() error("bad", 0) end)
      assert.is_false(ok)
      assert.truthy(tostring(rerr):find("t:run: the function raised: bad", 1, true))
    end)

    it("fail and read send status webhooks for a reply", function()
      local seen = {}
      t = testing.start{ setup = function(bot)
        bot:text(function(ctx) ctx:reply("x") end)
        bot:failed(function(ctx) seen[#seen + 1] = "failed " .. ctx.error.code end)
        bot:status("read", function(ctx) seen[#seen + 1] = "read " .. ctx.id end)
      end }
      local r = t:say("hi")[1]
      t:read(r)
      t:fail(r, 131049)
      assert.same({ "read " .. r.id, "failed 131049" }, seen)
      assert.equal("failed", t.bot:last_status(r.id))
      assert.has_error(function() t:fail("wamid.nope") end, "t:fail: the simulator accepted no message wamid.nope")
    end)
  end)

  describe("templates and time", function()
    local defs = {
      { name = "receipt", language = "en_US", category = "UTILITY", parameter_format = "NAMED",
        components = {
          { type = "HEADER", format = "TEXT", text = "Receipt {{number}}" },
          { type = "BODY", text = "Hi {{name}}, you paid {{amount}}." },
          { type = "BUTTONS", buttons = {
            { type = "URL", text = "See it", url = "https://example.com/r/{{1}}" },
            { type = "QUICK_REPLY", text = "Thanks" } } },
        },
        types = { amount = "currency" } },
    }

    it("declares templates in the registry and the simulator, and renders what the user sees", function()
      t = testing.start{ templates = defs, setup = function(bot)
        bot:payload("THX", function(ctx) ctx:reply("you're welcome") end)
      end }
      local replies, sent = t:run(function(bot)
        return bot:send_template(USER, "receipt", { number = "R-7", name = "Ana",
          amount = { code = "EUR", amount_1000 = 9990, fallback = "€9.99" }, buttons = { "R-7", "THX" } })
      end)
      assert.truthy(sent)
      local r = replies[1]
      assert.equal("template", r.type)
      assert.equal("receipt", r.name)
      assert.equal("en_US", r.language)
      assert.same({ name = "Ana", amount = "€9.99" }, r.params)
      assert.same({ number = "R-7" }, r.header_params)
      assert.equal("Hi Ana, you paid €9.99.", r.text)
      assert.equal("Receipt R-7", r.header)
      assert.same({ { title = "See it", url = "https://example.com/r/R-7" } }, r.links)
      assert.same({ { title = "Thanks", payload = "THX", index = 1 } }, r.buttons)
      -- a template's quick reply is tapped like a button
      assert.equal("you're welcome", t:tap("Thanks")[1].text)
      -- the simulator still knows hello_world
      local _, hello = t:run(function(bot) return bot:send_template(USER, "hello_world", "en_US") end)
      assert.truthy(hello)
    end)

    it("advance moves the clocks of the bot and the simulator: the 24-hour window closes", function()
      t = testing.start{ setup = function(bot) bot:text(function(ctx) ctx:reply("hi") end) end }
      local before = t:now()
      t:say("hello")
      assert.is_true(t.bot:in_window(USER))
      t:advance(25 * 3600)
      assert.is_true(t:now() >= before + 25 * 3600)
      assert.is_false(t.bot:in_window(USER))
      local replies, sent, err = t:run(function(bot) return bot:send(USER, "late") end)
      assert.same({}, replies)
      assert.is_nil(sent)
      assert.equal(131047, err.code)
      -- the simulator agrees: a send that skips the bot's own check is refused by "Meta" too
      local _, raw, rerr = t:run(function(bot) return bot:client():send(message.text(USER, "raw")) end)
      assert.is_nil(raw)
      assert.equal(131047, rerr.code)
      assert.is_false(rerr["local"] == true)
      assert.equal("hi", t:say("back")[1].text)
    end)

    it("can turn the simulator's window off", function()
      t = testing.start{ window = false, bot = { window = false } }
      local _, sent = t:run(function(bot) return bot:send(USER, "cold") end)
      assert.truthy(sent)
    end)
  end)

  describe("reply", function()
    it("turns any message record into a friendly table", function()
      local r = testing.reply{ id = "wamid.X", to = USER, type = "image",
        body = { messaging_product = "whatsapp", to = USER, type = "image", image = { link = "https://x/y.png",
          caption = "look" } } }
      assert.equal("image", r.type)
      assert.equal("look", r.text)
      assert.equal("https://x/y.png", r.media.link)
      local loc = testing.reply{ id = "wamid.Y", type = "location",
        body = { type = "location", location = { latitude = 1, longitude = 2 } } }
      assert.same({ latitude = 1, longitude = 2 }, loc.location)
      assert.has_error(function() testing.reply(1) end, "testing.reply: a message record expected")
      assert.equal("1. text: a\n2. buttons: b [x] [y]", testing.describe{ { type = "text", text = "a" },
        { type = "buttons", text = "b", choices = { "x", "y" } } })
    end)
  end)
end)
