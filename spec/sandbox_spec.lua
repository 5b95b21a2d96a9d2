-- whatsapp.sandbox: the chat page's JSON endpoints driven from Lua against a real simulator and
-- a real bot (both on loopback, in this process's loop), the terminal transcript, `make run`'s
-- script, and the page itself in headless Chromium (#browser).
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local simulator = require "whatsapp.simulator"
local sandbox = require "whatsapp.sandbox"
local bot_mod = require "whatsapp.bot"
local client_mod = require "whatsapp.client"
local webhook = require "whatsapp.webhook"
local helpers = require "helpers"
local cjson = require "cjson"

local SECRET, TOKEN = "sandbox_spec_secret", "sandbox_spec_token"
-- Child processes run without `make asan`'s preloaded sanitizer runtime.
local NO_SAN = "-u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
local USER = "15550002222"

local TEMPLATES = {
  { name = "order_confirmation", language = "en_US", category = "UTILITY", components = {
    { type = "HEADER", format = "TEXT", text = "Order confirmed" },
    { type = "BODY", text = "Your {{1}} is in the oven." },
    { type = "FOOTER", text = "Sandbox Pizza" },
    { type = "BUTTONS", buttons = { { type = "QUICK_REPLY", text = "Track order" },
      { type = "URL", text = "Open", url = "https://example.com/o/{{1}}" } } },
  } },
}

-- The test bot (spec/browser/chat.js holds this conversation too).
local function pizza_bot(b, seen)
  b:use(function(ctx, nxt)
    if ctx.kind == "message" then
      seen[#seen + 1] = ctx.event
      if ctx.type ~= "reaction" then ctx:mark_read() end
    elseif ctx.kind == "status" then
      seen[#seen + 1] = ctx.event
    end
    return nxt()
  end)
  b:text("hi", function(ctx)
    ctx:typing()
    ctx:reply_buttons("Welcome to *Sandbox Pizza*! What next?",
      { { id = "menu", title = "Menu" }, { id = "help", title = "Help" } })
  end)
  b:button("menu", function(ctx)
    ctx:reply_list("Pick a dish", "See menu", { { title = "Pizzas", rows = {
      { id = "pizza", title = "Pizza", description = "Margherita" }, { id = "pasta", title = "Pasta" } } } })
  end)
  b:button("help", function(ctx)
    ctx:reply(require("whatsapp.message").cta_url(ctx.from, "Read the docs", "Docs", "https://example.com/docs"))
  end)
  b:list("pizza", function(ctx)
    ctx:react("\240\159\145\141")
    ctx:send_template("order_confirmation", "en_US", { body = { "Pizza" }, buttons = { "track" } })
    ctx:reply("You chose Pizza")
  end)
  b:payload("track", function(ctx) ctx:reply("On its way") end)
  b:text("location", function(ctx)
    ctx:reply{ type = "location", location = { latitude = 52.5, longitude = 13.4, name = "Shop" } }
  end)
end

local function start_world(opts)
  opts = opts or {}
  local seen = {}
  local hook = webhook.new{ app_secret = SECRET, verify_token = "verify" }
  local b = bot_mod{ webhook = hook, log = false }
  local bsrv = assert(b:listen{ port = 0 })
  local sim = assert(simulator.start{ access_token = TOKEN, templates = TEMPLATES,
    webhook = { url = "http://127.0.0.1:" .. bsrv:port() .. "/webhook", app_secret = SECRET } })
  b:add_client(client_mod{ phone_number_id = sim.pnid, access_token = TOKEN, base_url = sim.url, retry = false })
  pizza_bot(b, seen)
  local lines = {}
  local sb = assert(sandbox.start{ sim = sim, title = "Sandbox Pizza", description = "spec bot",
    transcript = opts.transcript or function(l) lines[#lines + 1] = l end })
  local w = { bot = b, sim = sim, sb = sb, lines = lines, seen = seen, bsrv = bsrv, after = 0, events = {} }
  function w.close()
    sb:close()
    b:close()
    sim:close()
  end
  return w
end

local function get(url)
  local res = assert(http.request{ url = url, timeout = 40 })
  return res.status, res.body, res.headers
end

local function post(w, path, tbl)
  local res = assert(http.request{ url = w.sb.url .. path, method = "POST", timeout = 20,
    headers = { ["Content-Type"] = "application/json" }, body = type(tbl) == "string" and tbl or cjson.encode(tbl) })
  return res.status, cjson.decode(res.body)
end

-- Long-poll the events feed until `pred(all events so far)` holds (at most ~15 s).
local function wait_for(w, pred, user)
  for _ = 1, 15 do
    if pred(w.events) then return true end
    local st, body = get(w.sb.url .. "/_sandbox/events?after=" .. w.after .. "&user=" .. (user or USER) .. "&wait=1")
    assert.equals(200, st)
    local j = cjson.decode(body)
    for _, ev in ipairs(j.events) do w.events[#w.events + 1] = ev end
    w.after = j.last
  end
  return pred(w.events)
end

-- os.execute's success, under Lua 5.4 (true) and LuaJIT (0).
local function sh(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function find(list, fn)
  for _, x in ipairs(list) do if fn(x) then return x end end
end

local function bot_msg(w, fn)
  return find(w.events, function(ev) return ev.kind == "bot" and fn(ev) end)
end

local function bot_text(w, text)
  return bot_msg(w, function(ev)
    local b = ev.body
    return (b.text and b.text.body == text)
      or (b.interactive and b.interactive.body and b.interactive.body.text == text)
      or (ev.template and ev.template.body == text)
  end)
end

local function has_line(w, pattern)
  for _, l in ipairs(w.lines) do if l:find(pattern) then return true end end
  return false
end

local function send_text(w, text, from, name)
  local st, j = post(w, "/_sandbox/send", { from = from or USER, name = name or "Test User", text = text })
  assert.equals(200, st)
  assert.matches("^wamid%.", j.id)
  return j.id
end

-- Statuses the bot saw for one of its messages, in order.
local function bot_statuses(w, wamid)
  local out = {}
  for _, ev in ipairs(w.seen) do
    if ev.kind == "status" and ev.id == wamid then out[#out + 1] = ev.type end
  end
  return out
end

describe("whatsapp.sandbox", function()
  local w
  before_each(function() w = start_world() end)
  after_each(function() if w then w.close() end end)

  it("serves one self-contained chat page and its info", function()
    local st, body, headers = get(w.sb.url .. "/")
    assert.equals(200, st)
    assert.matches("text/html", headers["content-type"] or headers["Content-Type"])
    assert.truthy(body:find("<!doctype html>", 1, true))
    assert.truthy(body:find("/_sandbox/events", 1, true))
    assert.truthy(body:find("<style>", 1, true) and body:find("<script>", 1, true))
    -- No external resources: no src/href to another origin, no @import, no CDN.
    assert.falsy(body:find("src=\"http", 1, true))
    assert.falsy(body:find("href=\"http", 1, true))
    assert.falsy(body:find("@import", 1, true))
    st, body = get(w.sb.url .. "/_sandbox/info")
    assert.equals(200, st)
    local info = cjson.decode(body)
    assert.equals("Sandbox Pizza", info.title)
    assert.same({ phone = USER, name = "Test User" }, info.user)
    assert.equals(w.sim.display_phone_number, info.business.phone)
    st = get(w.sb.url .. "/nope")
    assert.equals(404, st)
  end)

  it("sends a user's text to the bot and shows the reply with its buttons", function()
    local id = send_text(w, "hi")
    assert.truthy(wait_for(w, function() return bot_text(w, "Welcome to *Sandbox Pizza*! What next?") end))
    local user_ev = find(w.events, function(ev) return ev.kind == "user" and ev.id == id end)
    assert.equals("Test User", user_ev.name)
    assert.equals("hi", user_ev.message.text.body)
    local reply = bot_text(w, "Welcome to *Sandbox Pizza*! What next?")
    assert.equals(USER, reply.user)
    assert.equals("button", reply.body.interactive.type)
    assert.equals("Menu", reply.body.interactive.action.buttons[1].reply.title)
    -- The bot got the text as a signed webhook from the simulator.
    local got = find(w.seen, function(ev) return ev.kind == "message" and ev.id == id end)
    assert.equals("hi", got.text)
    assert.equals("Test User", got.contact.name)
    -- The transcript, both ways.
    assert.truthy(has_line(w, "> Test User: hi$"))
    assert.truthy(has_line(w,
      "< bot %-> Test User: Welcome to %*Sandbox Pizza%*! What next%? %[buttons: Menu | Help%]"))
  end)

  it("taps a reply button: button_reply with the id, the title and context", function()
    send_text(w, "hi")
    assert.truthy(wait_for(w, function() return bot_text(w, "Welcome to *Sandbox Pizza*! What next?") end))
    local welcome = bot_text(w, "Welcome to *Sandbox Pizza*! What next?")
    local st, j = post(w, "/_sandbox/reply", { from = USER, message_id = welcome.id, id = "menu" })
    assert.equals(200, st)
    assert.truthy(wait_for(w, function() return bot_text(w, "Pick a dish") end))
    local got = find(w.seen, function(ev) return ev.kind == "message" and ev.id == j.id end)
    assert.equals("button_reply", got.type)
    assert.same({ id = "menu", title = "Menu" }, { id = got.reply.id, title = got.reply.title })
    assert.equals(welcome.id, got.context.id)
    assert.equals(w.sim.display_phone_number, got.context.from)
    local user_ev = find(w.events, function(ev) return ev.kind == "user" and ev.id == j.id end)
    assert.equals("button_reply", user_ev.message.interactive.type)
    assert.truthy(has_line(w, "> Test User: %[button%] Menu %(id menu%)"))
    assert.truthy(has_line(w, "%[list See menu: Pizza | Pasta%]"))
    -- A button the message does not have, and a message that does not exist.
    st = post(w, "/_sandbox/reply", { from = USER, message_id = welcome.id, id = "nope" })
    assert.equals(404, st)
    st = post(w, "/_sandbox/reply", { from = USER, message_id = "wamid.none", id = "menu" })
    assert.equals(404, st)
  end)

  it("picks a list row: list_reply, then a reaction, a rendered template and its quick reply", function()
    send_text(w, "hi")
    assert.truthy(wait_for(w, function() return bot_text(w, "Welcome to *Sandbox Pizza*! What next?") end))
    post(w, "/_sandbox/reply", { message_id = bot_text(w, "Welcome to *Sandbox Pizza*! What next?").id, id = "menu" })
    assert.truthy(wait_for(w, function() return bot_text(w, "Pick a dish") end))
    local list = bot_text(w, "Pick a dish")
    local st, j = post(w, "/_sandbox/reply", { message_id = list.id, id = "pizza" })
    assert.equals(200, st)
    assert.truthy(wait_for(w, function() return bot_text(w, "You chose Pizza") end))
    local got = find(w.seen, function(ev) return ev.kind == "message" and ev.id == j.id end)
    assert.equals("list_reply", got.type)
    assert.equals("pizza", got.reply.id)
    assert.equals("Pizza", got.reply.title)
    assert.equals("Margherita", got.reply.description)
    assert.equals(list.id, got.context.id)
    -- The reaction points at the row the user picked.
    local reaction = bot_msg(w, function(ev) return ev.type == "reaction" end)
    assert.equals(j.id, reaction.body.reaction.message_id)
    -- The template, filled in with its parameters.
    local tpl = bot_msg(w, function(ev) return ev.type == "template" end)
    assert.equals("Order confirmed", tpl.template.header.text)
    assert.equals("Your Pizza is in the oven.", tpl.template.body)
    assert.equals("Sandbox Pizza", tpl.template.footer)
    assert.same({ type = "quick_reply", text = "Track order", payload = "track", index = 0 }, tpl.template.buttons[1])
    assert.equals("url", tpl.template.buttons[2].type)
    assert.truthy(has_line(w, "%[template order_confirmation%] Order confirmed Your Pizza is in the oven%."))
    -- Its quick reply: a `button` message with the payload.
    st, j = post(w, "/_sandbox/reply", { message_id = tpl.id, index = 0 })
    assert.equals(200, st)
    assert.truthy(wait_for(w, function() return bot_text(w, "On its way") end))
    got = find(w.seen, function(ev) return ev.kind == "message" and ev.id == j.id end)
    assert.equals("button", got.type)
    assert.equals("track", got.reply.id)
    assert.equals(tpl.id, got.context.id)
    st = post(w, "/_sandbox/reply", { message_id = tpl.id, index = 1 })
    assert.equals(404, st)
  end)

  it("ticks: delivered when the bot took the webhook, read when it marked the message read", function()
    local id = send_text(w, "hi")
    assert.truthy(wait_for(w, function()
      return find(w.events, function(ev) return ev.kind == "status" and ev.id == id and ev.status == "read" end)
    end))
    local order = {}
    for _, ev in ipairs(w.events) do
      if ev.kind == "status" and ev.id == id then order[#order + 1] = ev.status end
    end
    assert.same({ "delivered", "read" }, order)
    assert.equals("user", find(w.events, function(ev) return ev.kind == "status" and ev.id == id end).side)
    assert.truthy(wait_for(w, function() return find(w.events, function(ev) return ev.kind == "typing" end) end))
    assert.truthy(has_line(w, "bot read: hi"))
    -- The simulator recorded the bot's mark-as-read.
    assert.truthy(find(w.sim:reads(), function(r) return r.message_id == id end))
  end)

  it("the user reads the bot's message: the bot gets sent, delivered, then read", function()
    send_text(w, "hi")
    assert.truthy(wait_for(w, function() return bot_text(w, "Welcome to *Sandbox Pizza*! What next?") end))
    local reply = bot_text(w, "Welcome to *Sandbox Pizza*! What next?")
    local st = post(w, "/_sandbox/read", { id = reply.id })
    assert.equals(200, st)
    assert.truthy(wait_for(w, function()
      return find(w.events, function(ev) return ev.kind == "status" and ev.id == reply.id and ev.status == "read" end)
    end))
    assert.truthy(wait_for(w, function() return #bot_statuses(w, reply.id) == 3 end))
    assert.same({ "sent", "delivered", "read" }, bot_statuses(w, reply.id))
    assert.equals("read", w.bot:last_status(reply.id))
    -- Twice is once.
    post(w, "/_sandbox/read", { id = reply.id })
    st = post(w, "/_sandbox/read", { id = "wamid.unknown" })
    assert.equals(404, st)
    assert.truthy(has_line(w, "read: Welcome to"))
  end)

  it("a failed status from the simulator reaches the bot and the page", function()
    send_text(w, "hi")
    assert.truthy(wait_for(w, function() return bot_text(w, "Welcome to *Sandbox Pizza*! What next?") end))
    local reply = bot_text(w, "Welcome to *Sandbox Pizza*! What next?")
    assert.truthy(w.sim:fail(reply.id, 131026))
    assert.truthy(wait_for(w, function()
      return find(w.events, function(ev) return ev.id == reply.id and ev.status == "failed" end)
    end))
    local st = find(w.seen, function(ev) return ev.kind == "status" and ev.type == "failed" end)
    assert.equals(reply.id, st.id)
    assert.equals(131026, st.errors[1].code)
    assert.has_error(function() w.sim:fail(reply.id, "x") end)
    local ok, err = w.sim:fail("wamid.nope")
    assert.is_nil(ok)
    assert.equals("not_found", err.code)
  end)

  it("keeps users apart and sends other message types", function()
    send_text(w, "hi", "15550003333", "Second User")
    assert.truthy(wait_for(w, function() return bot_text(w, "Welcome to *Sandbox Pizza*! What next?") end,
      "15550003333"))
    for _, ev in ipairs(w.events) do
      if ev.user then assert.equals("15550003333", ev.user) end
    end
    assert.truthy(has_line(w, "> Second User: hi"))
    -- The first user's feed has none of it.
    local _, body = get(w.sb.url .. "/_sandbox/events?after=0&user=" .. USER)
    assert.same({}, cjson.decode(body).events)
    -- A location from the user.
    local st, j = post(w, "/_sandbox/send", { type = "location",
      location = { latitude = 52.52, longitude = 13.4, name = "Here" } })
    assert.equals(200, st)
    w.events, w.after = {}, 0
    assert.truthy(wait_for(w, function()
      return find(w.seen, function(ev) return ev.id == j.id end)
    end))
    assert.equals("location", find(w.seen, function(ev) return ev.id == j.id end).type)
    -- A location from the bot.
    send_text(w, "location")
    assert.truthy(wait_for(w, function() return bot_msg(w, function(ev) return ev.type == "location" end) end))
    assert.truthy(has_line(w, "< bot %-> Test User: %[location%] Shop"))
  end)

  it("rejects bad input and reports a bot that does not answer", function()
    local st, j = post(w, "/_sandbox/send", "not json")
    assert.equals(400, st)
    assert.equals("validation", j.error.code)
    st = post(w, "/_sandbox/send", { text = "" })
    assert.equals(400, st)
    st = post(w, "/_sandbox/send", { type = "order", order = {} })
    assert.equals(400, st)
    st = post(w, "/_sandbox/send", { from = "abc!", text = "x" })
    assert.equals(200, st) -- a business-scoped user id is a user too
    st = post(w, "/_sandbox/send", { from = "+ ()", text = "x" })
    assert.equals(400, st)
    -- The bot goes away: the send fails with 502, the message gets a failed status and a notice.
    w.bot:close()
    st, j = post(w, "/_sandbox/send", { text = "anyone?" })
    assert.equals(502, st)
    assert.truthy(j.error.message)
    assert.truthy(wait_for(w, function()
      return find(w.events, function(ev) return ev.kind == "notice" end)
    end))
    assert.truthy(find(w.events, function(ev) return ev.kind == "status" and ev.status == "failed" end))
    assert.truthy(has_line(w, "the bot did not take it"))
  end)

  it("long polls: a waiting request is answered when an event arrives", function()
    local answered
    local task = loop.spawn(function()
      local res = http.request{ url = w.sb.url .. "/_sandbox/events?after=0&user=" .. USER .. "&wait=20", timeout = 30 }
      answered = cjson.decode(res.body)
    end)
    loop.spawn(function()
      loop.sleep(0.05)
      w.sb:send{ text = "hi" }
    end)
    task:wait()
    assert.truthy(#answered.events >= 1)
    assert.equals("user", answered.events[1].kind)
    -- Closing answers the waiting polls at once.
    local t2 = loop.spawn(function()
      return http.request{ url = w.sb.url .. "/_sandbox/events?after=" .. answered.last + 1000 .. "&wait=20",
        timeout = 30 }
    end)
    loop.spawn(function() loop.sleep(0.05); w.sb:stop() end)
    local res = t2:wait()
    assert.equals(200, res.status)
  end)

  it("checks its options", function()
    assert.has_error(function() sandbox.start() end)
    assert.has_error(function() sandbox.start{ sim = w.sim, transcript = 42 } end)
    assert.has_error(function() sandbox.start{ sim = w.sim, user = { phone = 1 } } end)
    local sim2 = assert(simulator.start{ access_token = "t" })
    assert.has_error(function() sandbox.start{ sim = sim2 } end) -- no webhook to a bot
    sim2:close()
    -- Simulator options: the sandbox starts (and closes) its own.
    local sb2 = assert(sandbox.start{ sim = { access_token = "t",
      webhook = { url = "http://127.0.0.1:9/", app_secret = "s" } } })
    assert.truthy(sb2.sim.url)
    sb2:close()
    sb2:close()
    assert.has_error(function() w.sim:subscribe(42) end)
  end)
end)

describe("whatsapp.sandbox rendering", function()
  it("renders templates with positional and named parameters", function()
    local r = sandbox.render_template({ components = {
      { type = "HEADER", format = "IMAGE" },
      { type = "BODY", text = "Hi {{name}}, your total is {{total}}." },
      { type = "BUTTONS", buttons = { { type = "PHONE_NUMBER", text = "Call", phone_number = "+15550001111" } } },
    } }, { name = "t", language = { code = "en" }, components = {
      { type = "header", parameters = { { type = "image", image = { link = "https://example.com/a.png" } } } },
      { type = "body", parameters = {
        { type = "text", parameter_name = "total", text = "$5" },
        { type = "text", parameter_name = "name", text = "Ana" } } },
    } })
    assert.equals("IMAGE", r.header.format)
    assert.equals("Hi Ana, your total is $5.", r.body)
    assert.same({ type = "phone_number", text = "Call", phone = "+15550001111", index = 0 }, r.buttons[1])
    local unknown = sandbox.render_template(nil, { name = "gone", components = {
      { type = "body", parameters = { { type = "text", text = "x" } } } } })
    assert.equals("[template gone] x", unknown.body)
    assert.has_error(function() sandbox.render_template({}, nil) end)
  end)

  it("describes every kind of message on one line", function()
    assert.equals("a \226\143\142 b", sandbox.describe{ type = "text", text = { body = "a\nb" } })
    assert.equals("[document] menu.pdf",
      sandbox.describe{ type = "document", document = { id = "1", filename = "menu.pdf" } })
    assert.equals("[reaction removed]",
      sandbox.describe{ type = "reaction", reaction = { message_id = "x", emoji = "" } })
    assert.equals("Go [link: Docs -> https://example.com]", sandbox.describe{ type = "interactive", interactive = {
      type = "cta_url", body = { text = "Go" },
      action = { name = "cta_url", parameters = { display_text = "Docs", url = "https://example.com" } } } })
    assert.equals("[contacts] Ana",
      sandbox.describe{ type = "contacts", contacts = { { name = { formatted_name = "Ana" } } } })
    assert.equals("[button] Yes (payload y)",
      sandbox.describe_inbound{ type = "button", button = { text = "Yes", payload = "y" } })
    local long = sandbox.describe{ type = "text", text = { body = string.rep("\195\169", 300) } }
    assert.truthy(#long <= 210)
    assert.truthy(long:find("\226\128\166$"))
  end)
end)

-- `make run`: examples/run.lua with no WA_* variables, as a separate process.
describe("examples/run.lua", function()
  it("starts the sandbox and a bot, prints the page's URL and a live transcript, stops on SIGINT", function()
    local out = os.tmpname()
    local cmd = "env -u WA_PHONE_NUMBER_ID -u WA_ACCESS_TOKEN -u WA_APP_SECRET -u WA_VERIFY_TOKEN " .. NO_SAN
      .. "WA_SANDBOX_PORT=0 " .. helpers.interpreter() .. " examples/run.lua echo > " .. out .. " 2>&1 & echo $!"
    local p = assert(io.popen(cmd))
    local pid = assert(tonumber(p:read("*l")))
    p:close()
    local ok, err = pcall(function()
      local url
      for _ = 1, 100 do
        url = helpers.read(out):match("Chat page: (http://127%.0%.0%.1:%d+/)")
        if url then break end
        loop.sleep(0.1)
      end
      assert(url, "no Chat page line in: " .. helpers.read(out))
      local res = assert(http.request{ url = url .. "_sandbox/send", method = "POST", body = '{"text":"hello"}' })
      assert.equals(200, res.status)
      local text
      for _ = 1, 100 do
        text = helpers.read(out)
        if text:find("< bot %->") then break end
        loop.sleep(0.1)
      end
      assert.matches("> Test User: hello", text)
      assert.matches("< bot %-> Test User: ", text)
    end)
    sh("kill -INT " .. pid)
    local gone = false
    for _ = 1, 100 do
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then
        gone = true
        break
      end
      loop.sleep(0.1)
    end
    local text = helpers.read(out)
    os.remove(out)
    if not gone then sh("kill -KILL " .. pid) end
    assert(ok, err)
    assert.truthy(gone, "run.lua did not stop on SIGINT")
    assert.matches("stopped %(signal%)", text)
    assert.falsy(text:find(TOKEN, 1, true))
  end)

  it("with the WA_* variables, runs the bot against the Cloud API (here a simulator) and prints no secret", function()
    local wh = { url = "http://127.0.0.1:9/webhook", app_secret = "run_app_secret" }
    local sim = assert(simulator.start{ access_token = "run_access_token", app_secret = "run_app_secret",
      webhook = wh })
    local out = os.tmpname()
    local cmd = "env " .. NO_SAN .. "WA_PHONE_NUMBER_ID=" .. sim.pnid .. " WA_ACCESS_TOKEN=run_access_token "
      .. "WA_APP_SECRET=run_app_secret WA_VERIFY_TOKEN=run_verify_token WA_HOST=127.0.0.1 WA_PORT=0 "
      .. "WA_BASE_URL=" .. sim.url .. " " .. helpers.interpreter() .. " examples/run.lua echo > " .. out
      .. " 2>&1 & echo $!"
    local p = assert(io.popen(cmd))
    local pid = assert(tonumber(p:read("*l")))
    p:close()
    local ok, err = pcall(function()
      local port
      for _ = 1, 100 do
        port = helpers.read(out):match("Listening on http://127%.0%.0%.1:(%d+)/webhook")
        if port then break end
        loop.sleep(0.1)
      end
      assert(port, "no Listening line in: " .. helpers.read(out))
      -- Meta's verification handshake, with the verify token.
      local res = assert(http.request{ url = "http://127.0.0.1:" .. port
        .. "/webhook?hub.mode=subscribe&hub.verify_token=run_verify_token&hub.challenge=42" })
      assert.equals(200, res.status)
      assert.equals("42", res.body)
      wh.url = "http://127.0.0.1:" .. port .. "/webhook"
      assert(sim:send_user_message{ text = "hello cloud" })
      for _ = 1, 100 do
        if #sim:messages() > 0 and helpers.read(out):find("< bot:") then break end
        loop.sleep(0.1)
      end
      assert.truthy(#sim:messages() > 0)
      local text = helpers.read(out)
      assert.matches("> Test User: hello cloud", text)
      assert.matches("< bot: ", text)
    end)
    sh("kill -INT " .. pid)
    local gone = false
    for _ = 1, 100 do
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then gone = true break end
      loop.sleep(0.1)
    end
    if not gone then sh("kill -KILL " .. pid .. " 2>/dev/null") end
    local text = helpers.read(out)
    os.remove(out)
    sim:close()
    assert(ok, err)
    assert.matches("stopped %(signal%)", text)
    assert.falsy(text:find("run_access_token", 1, true))
    assert.falsy(text:find("run_app_secret", 1, true))
  end)

  it("with only some WA_* variables set, says which are missing", function()
    local p = assert(io.popen("env -u WA_ACCESS_TOKEN -u WA_APP_SECRET -u WA_VERIFY_TOKEN WA_PHONE_NUMBER_ID=1 "
      .. helpers.interpreter() .. " examples/run.lua echo 2>&1; echo \"exit=$?\""))
    local text = p:read("*a")
    p:close()
    assert.matches("missing: WA_ACCESS_TOKEN, WA_APP_SECRET, WA_VERIFY_TOKEN", text)
    assert.matches("exit=2", text)
  end)
end)

-- The page in headless Chromium: spec/browser/chat.js (playwright-core + Debian's chromium).
describe("the chat page in a browser #browser", function()
  local function have(path)
    local f = io.open(path, "rb")
    if f then f:close() return true end
    return false
  end

  it("holds a conversation through buttons and a list, with ticks, and saves a screenshot", function()
    local missing = {}
    if not have("/usr/bin/chromium") then missing[#missing + 1] = "/usr/bin/chromium (apt-get install chromium)" end
    if not have("spec/browser/node_modules/playwright-core/package.json") then
      missing[#missing + 1] = "playwright-core (cd spec/browser && npm ci)"
    end
    if not sh("command -v node >/dev/null 2>&1") then
      missing[#missing + 1] = "node"
    end
    if #missing > 0 then
      if os.getenv("CI") == "true" then
        error("browser test: missing " .. table.concat(missing, ", "))
      end
      pending("browser test skipped: missing " .. table.concat(missing, ", "))
      return
    end
    local w = start_world()
    local out = os.tmpname()
    local shot = "build/screenshots/chat.png"
    os.remove(shot)
    -- node runs as a child; this process's loop must keep serving the page meanwhile.
    local done = false
    local cmd = "env " .. NO_SAN .. "node spec/browser/chat.js " .. w.sb.url .. "/ " .. shot
      .. " > " .. out .. " 2>&1; echo $? >> " .. out .. ".rc"
    os.remove(out .. ".rc")
    local p = assert(io.popen("(" .. cmd .. ") >/dev/null 2>&1 & echo $!"))
    local pid = p:read("*l")
    p:close()
    local rc
    for _ = 1, 900 do
      if have(out .. ".rc") then
        rc = tonumber(helpers.read(out .. ".rc"):match("%d+"))
        if rc then done = true break end
      end
      loop.sleep(0.1)
    end
    local text = helpers.read(out)
    os.remove(out)
    os.remove(out .. ".rc")
    if not done then sh("kill " .. pid .. " 2>/dev/null") end
    w.close()
    assert.truthy(done, "chat.js did not finish: " .. text)
    assert.equals(0, rc, text)
    assert.truthy(have(shot), "no screenshot")
  end)
end)
