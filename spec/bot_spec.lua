-- whatsapp.bot end to end: the project's Cloud API simulator (same process, same loop) posts
-- signed webhooks to bot:listen{port = 0}; the bot answers through a client whose base_url is
-- the simulator; the assertions read sim:messages(). The spec body is a plain script: blocking
-- calls (the simulator's send_user_message, loop.sleep) turn the loop, so the listener, the
-- handlers' tasks and the simulator all run while it waits. Also: unit tests of the memory store.
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local webhook = require "whatsapp.webhook"
local client_mod = require "whatsapp.client"
local simulator = require "whatsapp.simulator"
local message = require "whatsapp.message"
local store = require "whatsapp.store"
local botlib = require "whatsapp.bot"
local cjson = require "cjson"

local TOKEN = "EAAG-bot-token-that-must-never-be-logged-0123456789"
local TOKEN2 = "EAAG-second-number-token-never-logged-9876543210"
local SECRET = "bot-spec-app-secret"
local PNID, PNID2, WABA = "100000000000001", "100000000000009", "100000000000002"
local USER, USER2 = "15550002222", "15550003333"
local CONTINUE = botlib.CONTINUE

-- Turn the loop until pred() holds (false after `timeout` seconds).
local function wait_until(pred, timeout)
  local deadline = loop.now() + (timeout or 10)
  while not pred() do
    if loop.now() > deadline then return false end
    loop.sleep(0.005)
  end
  return true
end

local function envelope(value, pnid, field)
  value.messaging_product = value.messaging_product or "whatsapp"
  value.metadata = value.metadata or { display_phone_number = "15550001111", phone_number_id = pnid or PNID }
  return {
    object = "whatsapp_business_account",
    entry = { { id = WABA, changes = { { field = field or "messages", value = value } } } },
  }
end

local function text_msg(from, body, id)
  return { from = from, id = id or ("wamid.T" .. tostring(math.random(1, 1e9))), timestamp = tostring(os.time()),
    type = "text", text = { body = body } }
end

-- A store with the memory store's interface that keeps JSON text, as a Redis store would.
local function json_store()
  local data = {}
  return {
    get = function(_, k)
      local v = data[k]
      if v == nil then return nil end
      return store.decode(v)
    end,
    set = function(_, k, v) data[k] = assert(store.encode(v)); return true end,
    delete = function(_, k) data[k] = nil; return true end,
    incr = function(_, k, by)
      local n = (data[k] and store.decode(data[k]) or 0) + (by or 1)
      data[k] = store.encode(n)
      return n
    end,
    data = data,
  }
end

local worlds = {}

local World = {}
World.__index = World

-- A bot listening on loopback, a simulator posting to it, and the bot's client pointed at the
-- simulator. opts: bot (bot options), sim (simulator options), client (client options),
-- delay (seconds before the simulator's status webhooks).
local function world(opts)
  opts = opts or {}
  local w = setmetatable({ logs = {} }, World)
  local hook = webhook.new{ app_secret = SECRET, verify_token = "verify-me" }
  local bo = { webhook = hook, log = function(line) w.logs[#w.logs + 1] = line end, ask_timeout = 10,
    sequence_timeout = 10 }
  for k, v in pairs(opts.bot or {}) do bo[k] = v end
  w.bot = botlib(bo)
  w.srv = assert(w.bot:listen{ port = 0 })
  w.url = "http://127.0.0.1:" .. w.srv:port() .. "/webhook"
  local so = {
    access_token = TOKEN, phone_number_id = PNID, waba_id = WABA, window = false, rate = false,
    pair_limit = false, webhook = { url = w.url, app_secret = SECRET, delay = opts.delay },
  }
  for k, v in pairs(opts.sim or {}) do so[k] = v end
  w.sim = assert(simulator.start(so))
  local co = { phone_number_id = PNID, waba_id = WABA, access_token = TOKEN, base_url = w.sim.url,
    retry = false, rate = false }
  for k, v in pairs(opts.client or {}) do co[k] = v end
  w.client = client_mod(co)
  w.bot:add_client(w.client)
  worlds[#worlds + 1] = w
  return w
end

function World:close()
  self.bot:close()
  self.sim:close()
  if self.sim2 then self.sim2:close() end
end

-- The user writes (a text, or a send_user_message table); returns the inbound wamid.
function World:say(m, from)
  if type(m) == "string" then m = { text = m } end
  m.from = m.from or from or USER
  return assert(self.sim:send_user_message(m))
end

-- Decoded log lines.
function World:log_lines()
  local out = {}
  for i, line in ipairs(self.logs) do out[i] = cjson.decode(line) end
  return out
end

function World:find_log(pred)
  for _, l in ipairs(self:log_lines()) do
    if pred(l) then return l end
  end
end

-- Wait until the bot logged the end of the event with this id (and status, for a status).
function World:done(id, msg)
  return wait_until(function()
    return self:find_log(function(l) return l.id == id and l.msg == (msg or "event") end) ~= nil
  end)
end

-- Wait until the simulator accepted n messages.
function World:sent(n, sim)
  sim = sim or self.sim
  return wait_until(function() return #sim:messages() >= n end)
end

-- What the user saw: text bodies, or "<type>" for other messages.
function World:texts(sim)
  local out = {}
  for i, m in ipairs((sim or self.sim):messages()) do
    out[i] = m.type == "text" and m.body.text.body or ("<" .. m.type .. ">")
  end
  return out
end

-- POST a payload (a table, or raw text) to the bot, signed; returns the response.
function World:post(payload)
  local raw = type(payload) == "string" and payload or cjson.encode(payload)
  return assert(http.request{
    method = "POST", url = self.url, body = raw,
    headers = { ["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = webhook.sign(raw, SECRET) },
  })
end

describe("whatsapp.store.memory", function()
  it("gets, sets, deletes, and hands out copies", function()
    local s = store.memory()
    assert.is_nil(s:get("a"))
    local v = { list = { 1, 2 }, name = "x" }
    assert.is_true(s:set("a", v))
    v.name = "changed"
    local got = s:get("a")
    assert.same({ list = { 1, 2 }, name = "x" }, got)
    got.list[1] = 99
    assert.same({ 1, 2 }, s:get("a").list)
    assert.is_true(s:set("n", 5))
    assert.equal(5, s:get("n"))
    assert.is_true(s:set("s", "text"))
    assert.equal("text", s:get("s"))
    assert.is_true(s:delete("a"))
    assert.is_nil(s:get("a"))
    assert.is_true(s:delete("never"))
    assert.is_true(store.is_store(s))
    assert.is_false(store.is_store({ get = function() end }))
  end)

  it("expires keys after their TTL (injected clock)", function()
    local now = 1000
    local s = store.memory{ clock = function() return now end }
    s:set("short", "x", 10)
    s:set("forever", "y")
    now = 1009.9
    assert.equal("x", s:get("short"))
    now = 1010
    assert.is_nil(s:get("short"))
    assert.equal("y", s:get("forever"))
    s:set("short", "again", 5) -- a new set gives a new expiry
    now = 1014
    assert.equal("again", s:get("short"))
    s:set("short", "no ttl")
    now = 5000
    assert.equal("no ttl", s:get("short"))
  end)

  it("increments atomically, applying the TTL when the key is created", function()
    local now = 0
    local s = store.memory{ clock = function() return now end }
    assert.equal(1, s:incr("k", 1, 10))
    assert.equal(3, s:incr("k", 2, 10))
    now = 9 -- a later incr does not push the expiry further
    assert.equal(4, s:incr("k", 1, 10))
    now = 10
    assert.is_nil(s:get("k"))
    assert.equal(1, s:incr("k", nil, 10))
    assert.equal(1, s:get("k"))
    -- many tasks incrementing the same key all count
    local tasks = {}
    for i = 1, 50 do
      tasks[i] = loop.spawn(function()
        loop.sleep(0)
        return s:incr("shared", 1, 100)
      end)
    end
    loop.wait_all(tasks)
    local seen = {}
    for _, t in ipairs(tasks) do seen[t.results[1]] = true end
    for i = 1, 50 do assert.is_true(seen[i], "value " .. i .. " handed out") end
    assert.equal(50, s:get("shared"))
    s:set("text", "abc")
    local none, err = s:incr("text")
    assert.is_nil(none)
    assert.equal("not_a_number", err.code)
  end)

  it("sweeps expired keys out: the size stays bounded as keys come and go", function()
    local now = 0
    local s = store.memory{ clock = function() return now end, sweep_min = 256 }
    local biggest = 0
    for i = 1, 50000 do
      now = i * 0.01         -- 100 keys per second of clock
      s:incr("dedupe:" .. i, 1, 5) -- each lives 5 s: about 500 live at a time
      if s:size() > biggest then biggest = s:size() end
    end
    assert.is_true(biggest <= 2 * 500 + 256 + 1, "held " .. biggest .. " keys")
    now = now + 10
    assert.equal(0, s:sweep())
    assert.equal(0, s:size())
  end)

  it("encodes values as JSON and decodes them with integers kept", function()
    local v = store.decode(assert(store.encode({ n = 3, f = 1.5, list = { 1, 2 }, s = "x" })))
    assert.same({ n = 3, f = 1.5, list = { 1, 2 }, s = "x" }, v)
    if math.type then assert.equal("integer", math.type(v.n)) end
    assert.is_nil(store.decode("{bad"))
  end)

  it("raises on programmer errors", function()
    local s = store.memory()
    assert.has_error(function() s:get(1) end)
    assert.has_error(function() s:set("k", "v", -1) end)
    assert.has_error(function() s:set("k", function() end) end)
    assert.has_error(function() s:incr("k", "x") end)
    assert.has_error(function() store.memory{ clock = 1 } end)
  end)
end)

describe("whatsapp.bot", function()
  after_each(function()
    for _, w in ipairs(worlds) do w:close() end
    worlds = {}
  end)

  describe("construction", function()
    it("checks its options", function()
      assert.has_error(function() botlib() end)
      assert.has_error(function() botlib{ client = {} } end)
      assert.has_error(function() botlib{ webhook = {} } end)
      assert.has_error(function() botlib{ store = {} } end)
      assert.has_error(function() botlib{ window = { template = { language = "en" } } } end)
      assert.has_error(function() botlib{ dedupe = -1 } end)
      assert.has_error(function() botlib{ log = "yes" } end)
      local b = botlib{ log = false }
      assert.has_error(function() b:text("x") end)
      assert.has_error(function() b:on(nil, function() end) end)
      assert.has_error(function() b:use("x") end)
      assert.has_error(function() b:handle("{}", {}) end) -- no webhook
    end)
  end)

  describe("hosting", function()
    it("answers the handshake, health, wrong paths and unsigned posts", function()
      local w = world()
      local base = "http://127.0.0.1:" .. w.srv:port()
      local q = "?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=42"
      local res = assert(http.request{ url = w.url .. q })
      assert.equal(200, res.status)
      assert.equal("42", res.body)
      res = assert(http.request{ url = w.url .. "?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42" })
      assert.equal(403, res.status)
      res = assert(http.request{ url = base .. "/health" })
      assert.equal(200, res.status)
      res = assert(http.request{ url = base .. "/elsewhere" })
      assert.equal(404, res.status)
      res = assert(http.request{ method = "POST", url = w.url, body = "{}",
        headers = { ["X-Hub-Signature-256"] = "sha256=" .. string.rep("0", 64) } })
      assert.equal(401, res.status)
      res = assert(http.request{ method = "PUT", url = w.url, body = "x" })
      assert.equal(405, res.status)
      assert.truthy(w:find_log(function(l) return l.msg == "webhook rejected" and l.code == "invalid_signature" end))
    end)

    it("dispatches every event of a batch, each in its own task", function()
      local w = world()
      local seen = {}
      w.bot:text(function(ctx)
        loop.sleep(0.05) -- handlers of different users overlap
        seen[#seen + 1] = ctx.from .. ":" .. ctx.text
        ctx:reply("ok " .. ctx.text)
      end)
      local res = w:post(envelope{ messages = {
        text_msg("15550000001", "a"), text_msg("15550000002", "b"), text_msg("15550000003", "c"),
      } })
      assert.equal(200, res.status)
      assert.is_true(w:sent(3))
      table.sort(seen)
      assert.same({ "15550000001:a", "15550000002:b", "15550000003:c" }, seen)
    end)

    it("handles one user's messages in order, and a batch can answer a question", function()
      local w = world()
      w.bot:command("q", function(ctx)
        loop.sleep(0.05)
        local a = assert(ctx:ask("Number?"))
        ctx:reply("got " .. a.text)
      end)
      w.bot:text(function(ctx) ctx:reply("routed " .. ctx.text) end)
      w:post(envelope{ messages = { text_msg(USER, "/q"), text_msg(USER, "42"), text_msg(USER, "after") } })
      assert.is_true(w:sent(3))
      assert.same({ "Number?", "got 42", "routed after" }, w:texts())
    end)

    it("stop ends pending questions; close frees the port", function()
      local w = world()
      local result
      w.bot:command("wait", function(ctx)
        local a, err = ctx:ask(nil, { timeout = 30 })
        result = a or err.code
      end)
      local id = w:say("/wait")
      assert.is_true(wait_until(function() return w.bot:active_users() == 1 end))
      w.bot:stop()
      assert.is_true(w:done(id))
      assert.equal("stopped", result)
      assert.equal(0, w.bot:active_users())
    end)
  end)

  describe("routing", function()
    it("routes every kind of message to its route", function()
      local w = world()
      local hits, last = {}, nil
      local function hit(name)
        return function(ctx)
          hits[#hits + 1] = name
          last = ctx
        end
      end
      local b = w.bot
      b:text("Hello", hit("text"))
      b:pattern("^order (%d+)$", hit("pattern"))
      b:command("start", hit("command"))
      b:button("yes", hit("button"))
      b:list({ "row_1", "row_2" }, hit("list"))
      b:payload("PROMO_OK", hit("payload"))
      b:on("image", hit("image"))
      b:on("media", hit("media"))
      b:on("location", hit("location"))
      b:on("contacts", hit("contacts"))
      b:on("reaction", hit("reaction"))
      b:on("order", hit("order"))
      b:fallback(hit("fallback"))
      local function button(id)
        return { type = "interactive", interactive = { type = "button_reply", button_reply = { id = id, title = id } } }
      end
      local function check(m, name)
        local id = w:say(m)
        assert.is_true(w:done(id), "event handled: " .. name)
        assert.equal(name, hits[#hits])
        return last
      end
      check("  hello ", "text")
      assert.equal("order 42", check("order 42", "pattern").text)
      assert.same({ "42" }, last.matches)
      local ctx = check("/start now please", "command")
      assert.equal("start", ctx.command)
      assert.equal("now please", ctx.args)
      assert.same({ "now", "please" }, ctx.argv)
      check("/starting", "fallback")
      check(button("yes"), "button")
      check({ type = "interactive", interactive = { type = "list_reply",
        list_reply = { id = "row_2", title = "Two", description = "d" } } }, "list")
      check({ type = "button", button = { payload = "PROMO_OK", text = "Sure" } }, "payload")
      check({ type = "image", image = { id = "1234", mime_type = "image/jpeg", sha256 = "abc" } }, "image")
      check({ type = "document", document = { id = "5678", mime_type = "application/pdf", filename = "a.pdf" } },
        "media")
      check({ type = "location", location = { latitude = 38.7, longitude = -9.1, name = "Lisboa" } }, "location")
      check({ type = "contacts", contacts = { { name = { formatted_name = "Ana" },
        phones = { { phone = "+1555" } } } } }, "contacts")
      check({ type = "reaction", reaction = { message_id = "wamid.X", emoji = "👍" } }, "reaction")
      check({ type = "order", order = { catalog_id = "1", product_items = { { product_retailer_id = "p1",
        quantity = 1, item_price = 5, currency = "USD" } } } }, "order")
      check(button("no"), "fallback")
      check("something else", "fallback")
      assert.equal(15, #hits)
    end)

    it("stops after a handler unless it returns CONTINUE", function()
      local w = world()
      local hits = {}
      w.bot:text("both", function() hits[#hits + 1] = "first"; return CONTINUE end)
      w.bot:text("both", function() hits[#hits + 1] = "second"; return true end)
      w.bot:text("both", function() hits[#hits + 1] = "third" end)
      w.bot:text("pass", function() hits[#hits + 1] = "pass"; return CONTINUE end)
      w.bot:fallback(function() hits[#hits + 1] = "fallback" end)
      assert.is_true(w:done(w:say("both")))
      assert.same({ "first", "second" }, hits)
      hits = {}
      assert.is_true(w:done(w:say("pass")))
      assert.same({ "pass", "fallback" }, hits)
    end)

    it("runs middleware around the routing of every event, in order; not calling next stops", function()
      local w = world()
      local trace = {}
      w.bot:use(function(ctx, next)
        trace[#trace + 1] = "outer>" .. ctx.kind
        local stopped = next()
        trace[#trace + 1] = "outer<" .. tostring(stopped)
      end)
      w.bot:use(function(ctx, next)
        if ctx.kind == "message" and ctx.text == "blocked" then
          trace[#trace + 1] = "denied"
          return
        end
        return next()
      end)
      w.bot:text(function(ctx) trace[#trace + 1] = "handler:" .. ctx.text end)
      assert.is_true(w:done(w:say("hi")))
      assert.same({ "outer>message", "handler:hi", "outer<true" }, trace)
      trace = {}
      assert.is_true(w:done(w:say("blocked")))
      assert.same({ "outer>message", "denied", "outer<nil" }, trace)
      -- statuses go through the middleware too
      trace = {}
      assert(w.bot:send(USER, "x"))
      assert.is_true(wait_until(function() return #trace >= 4 end))
      assert.equal("outer>status", trace[1])
    end)

    it("routes statuses, failures by code, webhook errors and changes", function()
      local w = world()
      local got = {}
      w.bot:status("delivered", function(ctx) got.delivered = ctx end)
      w.bot:status({ "sent", "read" }, function(ctx) got[ctx.event.status] = ctx end)
      w.bot:failed(131026, function(ctx) got.undeliverable = ctx end)
      w.bot:failed(function(ctx) got.other_failure = ctx end)
      w.bot:error(function(ctx) got.error = ctx end)
      w.bot:change("message_template_status_update", function(ctx) got.template = ctx end)
      w.bot:change(function(ctx) got.change = ctx end)
      w.bot:text(function(ctx) ctx:reply("answer") end)
      w:say("hi")
      assert.is_true(wait_until(function() return got.delivered ~= nil end))
      local wamid = w.sim:messages()[1].id
      local ctx = got.delivered
      assert.equal(wamid, ctx.id)
      assert.equal(USER, ctx.from)
      assert.equal(PNID, ctx.phone_number_id)
      -- correlated with the message sent
      assert.equal("text", ctx.sent.type)
      assert.equal(USER, ctx.sent.to)
      assert.equal(wamid, ctx.sent.id)
      assert.equal("delivered", w.bot:last_status(wamid))
      assert(w.sim:read(wamid))
      assert.is_true(wait_until(function() return got.read ~= nil end))
      assert.equal("read", w.bot:last_status(wamid))
      assert.truthy(got.sent)
      -- a failure with a routed code, then one with another code
      w:post(envelope{ statuses = { { id = wamid, status = "failed", timestamp = tostring(os.time()),
        recipient_id = USER, errors = { { code = 131026, title = "Message undeliverable",
          message = "Message undeliverable", error_data = { details = "not on WhatsApp" } } } } } })
      assert.is_true(wait_until(function() return got.undeliverable ~= nil end))
      assert.equal(131026, got.undeliverable.error.code)
      assert.equal("failed", w.bot:last_status(wamid))
      assert.is_nil(got.other_failure)
      w:post(envelope{ statuses = { { id = "wamid.OTHER", status = "failed", timestamp = tostring(os.time()),
        recipient_id = USER, errors = { { code = 131049, title = "Not delivered to maintain ecosystem health" } } } } })
      assert.is_true(wait_until(function() return got.other_failure ~= nil end))
      assert.equal(131049, got.other_failure.error.code)
      -- an error in the webhook, and changes
      w:post(envelope{ errors = { { code = 131000, title = "Something went wrong", message = "Something went wrong",
        error_data = { details = "try later" } } } })
      assert.is_true(wait_until(function() return got.error ~= nil end))
      assert.equal(131000, got.error.error.code)
      assert.equal("server", got.error.error.category)
      w:post(envelope({ event = "APPROVED", message_template_id = 12345, message_template_name = "promo",
        message_template_language = "en_US", reason = "NONE" }, nil, "message_template_status_update"))
      assert.is_true(wait_until(function() return got.template ~= nil end))
      assert.equal("APPROVED", got.template.event.event)
      assert.is_nil(got.change)
      w:post(envelope({ event = "FLAGGED", current_limit = "TIER_1K" }, nil, "phone_number_quality_update"))
      assert.is_true(wait_until(function() return got.change ~= nil end))
      assert.equal("phone_number_quality_update", got.change.event.field)
    end)

    it("catches a handler error, logs it, and goes on", function()
      local reported = {}
      local w = world{ bot = { on_error = function(err, ctx) reported[#reported + 1] = { err, ctx.text } end } }
      w.bot:text("boom", function() error("cannot reach " .. USER .. " with " .. TOKEN) end)
      w.bot:text("ok", function(ctx) ctx:reply("fine") end)
      assert.is_true(w:done(w:say("boom")))
      assert.is_true(w:done(w:say("ok")))
      assert.same({ "fine" }, w:texts())
      local line = w:find_log(function(l) return l.msg == "handler error" end)
      assert.truthy(line)
      assert.equal("error", line.level)
      assert.truthy(line.error:find("cannot reach *******2222 with [redacted]", 1, true))
      assert.equal(1, #reported)
      assert.equal("boom", reported[1][2])
    end)
  end)

  describe("the context", function()
    it("replies in every shape, reacts, marks read, types and sends templates", function()
      local w = world()
      w.bot:text("all", function(ctx)
        assert(ctx:mark_read())
        assert(ctx:typing())
        assert(ctx:reply("plain"))
        assert(ctx:reply("quoted", { quote = true }))
        assert(ctx:reply_buttons("Pick", { { id = "a", title = "A" }, { id = "b", title = "B" } }))
        assert(ctx:reply_list("Menu", "Open", { { title = "S", rows = { { id = "r1", title = "Row 1" } } } }))
        assert(ctx:react("👍"))
        assert(ctx:send_template("hello_world", "en_US"))
        assert(ctx:reply(message.image(ctx.from, "https://example.com/a.jpg")))
        assert(ctx:reply({ type = "location", location = { latitude = 1.5, longitude = 2.5 } }))
      end)
      local id = w:say("all")
      assert.is_true(w:done(id))
      local msgs = w.sim:messages()
      assert.same({ "plain", "quoted", "<interactive>", "<interactive>", "<reaction>", "<template>", "<image>",
        "<location>" }, w:texts())
      assert.is_nil(msgs[1].body.context)
      assert.equal(id, msgs[2].body.context.message_id)
      assert.equal("button", msgs[3].body.interactive.type)
      assert.equal("list", msgs[4].body.interactive.type)
      assert.equal(id, msgs[5].body.reaction.message_id)
      assert.equal("hello_world", msgs[6].body.template.name)
      for _, m in ipairs(msgs) do assert.equal(USER, m.to) end
      local reads = w.sim:reads()
      assert.equal(2, #reads)
      assert.equal(id, reads[1].message_id)
      assert.is_false(reads[1].typing_indicator)
      assert.is_true(reads[2].typing_indicator)
    end)

    it("downloads the media of the message", function()
      local w = world()
      local data = "\255\216\255 not really a jpeg, but bytes all the same"
      local media_id = assert(w.client:upload{ data = data, mime_type = "image/jpeg", filename = "p.jpg" })
      local path = os.tmpname()
      local got
      w.bot:on("image", function(ctx) got = { ctx:download_media(path) } end)
      w.bot:text(function(ctx) got = { ctx:download_media(path) } end)
      assert.is_true(w:done(w:say{ type = "image", image = { id = media_id, mime_type = "image/jpeg" } }))
      assert.equal(#data, got[1].size)
      local f = assert(io.open(path, "rb"))
      assert.equal(data, f:read("*a"))
      f:close()
      os.remove(path)
      assert.is_true(w:done(w:say("no media here")))
      assert.is_nil(got[1])
      assert.equal("no_media", got[2].code)
    end)

    it("keeps a per-user session through the store, across webhooks", function()
      local js = json_store()
      local w = world{ bot = { store = js } }
      w.bot:text("count", function(ctx)
        ctx.session.n = (ctx.session.n or 0) + 1
        ctx:reply("n=" .. ctx.session.n)
      end)
      w.bot:text("forget", function(ctx)
        ctx.session.n = nil
        ctx:reply("forgotten")
      end)
      w.bot:text("peek", function(ctx) ctx:reply("peek " .. tostring(ctx.session.n)) end)
      for _ = 1, 3 do assert.is_true(w:done(w:say("count"))) end
      assert.is_true(w:done(w:say("count", USER2)))
      assert.same({ "n=1", "n=2", "n=3", "n=1" }, w:texts())
      assert.equal(3, js:get("wa:session:" .. PNID .. ":" .. USER).n)
      assert.is_true(w:done(w:say("forget")))
      assert.is_nil(js.data["wa:session:" .. PNID .. ":" .. USER])
      assert.is_true(w:done(w:say("peek", USER2)))
      assert.equal("peek 1", w:texts()[6])
    end)

    it("asks across webhooks: a conversation in straight-line Lua", function()
      local w = world()
      local finished
      w.bot:command("start", function(ctx)
        local name = assert(ctx:ask("What is your name?"))
        local age = assert(ctx:ask(message.buttons(ctx.from, "Your age, " .. name.text .. "?",
          { { id = "young", title = "Under 30" }, { id = "old", title = "30 or more" } })))
        ctx.session.name = name.text
        ctx:reply(name.text .. " is " .. age.reply.id)
        finished = true
      end)
      w.bot:fallback(function(ctx) ctx:reply("fallback " .. tostring(ctx.text)) end)
      local start = w:say("/start")
      assert.is_true(w:sent(1))
      assert.is_true(w:done(w:say("Ana"), "event"))
      assert.is_true(w:sent(2))
      -- another user is routed normally meanwhile
      assert.is_true(w:done(w:say("hey", USER2)))
      w:say{ type = "interactive", interactive = { type = "button_reply",
        button_reply = { id = "old", title = "30+" } } }
      assert.is_true(w:done(start))
      assert.is_true(finished)
      assert.same({ "What is your name?", "<interactive>", "fallback hey", "Ana is old" }, w:texts())
      assert.equal("Ana", w.bot.store:get("wa:session:" .. PNID .. ":" .. USER).name)
      local answer = w:find_log(function(l) return l.outcome == "answer" end)
      assert.truthy(answer)
      assert.equal(0, w.bot:active_users())
    end)

    it("a status handler can ask too, and the user's turn comes back", function()
      local w = world()
      local asked = false
      w.bot:status("delivered", function(ctx)
        if ctx.sent and ctx.sent.type == "text" and not asked then
          asked = true
          local a = ctx:ask("Did it arrive?")
          if a then ctx:reply("thanks: " .. a.text) end
        end
      end)
      w.bot:text("hello", function(ctx) ctx:reply("hi there") end)
      w.bot:fallback(function(ctx) ctx:reply("fallback " .. ctx.text) end)
      assert.is_true(w:done(w:say("hello")))
      assert.is_true(w:sent(2))
      assert.is_true(w:done(w:say("yes")))
      assert.is_true(w:sent(3))
      assert.is_true(w:done(w:say("again")))
      assert.is_true(w:sent(4))
      assert.same({ "hi there", "Did it arrive?", "thanks: yes", "fallback again" }, w:texts())
      assert.is_true(wait_until(function() return w.bot:active_users() == 0 end))
    end)

    it("an ask times out, and the next message is routed again", function()
      local w = world()
      w.bot:command("quiz", function(ctx)
        local a, err = ctx:ask("Quick!", { timeout = 0.2 })
        if not a then ctx:reply("Too slow: " .. err.code) end
      end)
      w.bot:fallback(function(ctx) ctx:reply("fallback " .. ctx.text) end)
      assert.is_true(w:done(w:say("/quiz")))
      assert.is_true(w:done(w:say("late answer")))
      assert.same({ "Quick!", "Too slow: timeout", "fallback late answer" }, w:texts())
      assert.equal(0, w.bot:active_users())
    end)
  end)

  describe("the 24-hour window", function()
    it("refuses a free-form send outside it locally, with 131047", function()
      local now = 1700000000
      local w = world{ bot = { clock = function() return now end } }
      w.bot:text("hi", function(ctx) ctx:reply("hello") end)
      local inbound = w:say("hi")
      assert.is_true(w:done(inbound))
      assert.is_true(w.bot:in_window(USER))
      assert(w.bot:send(USER, "news"))
      now = now + 25 * 3600
      assert.is_false(w.bot:in_window(USER))
      local before = #w.sim:requests()
      local sent, err = w.bot:send("+1 555-000-2222", "later")
      assert.is_nil(sent)
      assert.equal(131047, err.code)
      assert.equal("window", err.category)
      assert.is_false(err.retry)
      assert.truthy(tostring(err):find("131047", 1, true))
      local _, rerr = w.bot:send(USER, message.reaction(USER, inbound, "👍"))
      assert.equal(131047, rerr.code)
      assert.equal(before, #w.sim:requests(), "nothing reached the API")
      -- templates are allowed outside the window
      assert(w.bot:send_template(USER, "hello_world", "en_US"))
      -- a new message opens it again
      assert.is_true(w:done(w:say("hi")))
      assert(w.bot:send(USER, "welcome back"))
    end)

    it("falls back to the configured template", function()
      local now = 1700000000
      local w = world{ bot = { clock = function() return now end,
        window = { template = { name = "hello_world", language = "en_US" } } } }
      assert.is_true(w:done(w:say("hi")))
      local sent = assert(w.bot:send(USER, "in the window"))
      assert.is_nil(sent.fallback)
      now = now + 86400
      sent = assert(w.bot:send(USER, "outside"))
      assert.is_true(sent.fallback)
      local last = w.sim:messages()[#w.sim:messages()]
      assert.equal("template", last.type)
      assert.equal("hello_world", last.body.template.name)
      -- a reaction is never replaced
      local _, err = w.bot:send(USER, message.reaction(USER, "wamid.X", "👍"))
      assert.equal(131047, err.code)
    end)

    it("falls back too when Meta answers 131047", function()
      local sim_now = 5000
      local w = world{ sim = { window = true, now = function() return sim_now end },
        bot = { window = { template = { name = "hello_world", language = "en_US" } } } }
      assert.is_true(w:done(w:say("hi")))
      assert.is_nil(assert(w.bot:send(USER, "fine")).fallback)
      sim_now = sim_now + 90000 -- Meta's clock moved on, the bot's record did not
      local sent = assert(w.bot:send(USER, "refused by Meta"))
      assert.is_true(sent.fallback)
      assert.same({ "fine", "<template>" }, w:texts())
    end)
  end)

  describe("opt-out", function()
    it("opts out on a stop word, confirms once, refuses business sends, opts back in", function()
      local w = world()
      w.bot:text("hi", function(ctx) ctx:reply("hello") end)
      w.bot:text("promo", function(ctx)
        local _, err = ctx:send_template("hello_world", "en_US")
        ctx:reply("template: " .. tostring(err and err.code))
      end)
      assert.is_true(w:done(w:say("STOP")))
      assert.same({ botlib.OPT_OUT_CONFIRM }, w:texts())
      assert.is_true(w.bot:opted_out(USER))
      assert.is_true(w:done(w:say(" stop ")))
      assert.equal(1, #w.sim:messages(), "confirmed once")
      local before = #w.sim:requests()
      local sent, err = w.bot:send(USER, "buy now")
      assert.is_nil(sent)
      assert.equal("opted_out", err.code)
      local _, serr = w.bot:send_sequence(USER, { "a", "b" })
      assert.equal("opted_out", serr.code)
      assert.equal(before, #w.sim:requests())
      -- what the user asks for is still answered; business-initiated templates are not
      assert.is_true(w:done(w:say("hi")))
      assert.is_true(w:done(w:say("promo")))
      assert.same({ botlib.OPT_OUT_CONFIRM, "hello", "template: opted_out" }, w:texts())
      assert.is_true(w:done(w:say("Start")))
      assert.equal(botlib.OPT_IN_CONFIRM, w:texts()[4])
      assert.is_false(w.bot:opted_out(USER))
      assert(w.bot:send(USER, "welcome back"))
      -- stop words in other languages, any case
      assert.is_true(w:done(w:say("arrêt")))
      assert.is_true(w.bot:opted_out(USER))
      assert.truthy(w:find_log(function(l) return l.msg == "opted out" and l.user == "*******2222" end))
    end)

    it("takes its words and texts from the options; START routes when not opted out", function()
      local w = world{ bot = { opt_out = { stop = { "halt" }, start = { "go" }, confirm = "Halted.",
        resumed = false } } }
      w.bot:fallback(function(ctx) ctx:reply("fallback " .. ctx.text) end)
      assert.is_true(w:done(w:say("go")))
      assert.is_true(w:done(w:say("STOP")))
      assert.is_true(w:done(w:say("HALT")))
      assert.is_true(w:done(w:say("go")))
      assert.same({ "fallback go", "fallback STOP", "Halted." }, w:texts())
      assert.is_false(w.bot:opted_out(USER))
    end)

    it("a stop word ends a pending question", function()
      local w = world()
      local result
      w.bot:command("ask", function(ctx)
        local a, err = ctx:ask("Yes or no?")
        result = a and a.text or err.code
      end)
      local id = w:say("/ask")
      assert.is_true(w:sent(1))
      w:say("STOP")
      assert.is_true(w:done(id))
      assert.equal("opted_out", result)
      assert.same({ "Yes or no?", botlib.OPT_OUT_CONFIRM }, w:texts())
    end)
  end)

  describe("dedupe", function()
    it("drops a replayed message webhook and a replayed status", function()
      local w = world()
      local count, delivered = 0, 0
      w.bot:text("once", function(ctx)
        count = count + 1
        ctx:reply("done")
      end)
      w.bot:status("delivered", function() delivered = delivered + 1 end)
      local id = w:say("once")
      assert.is_true(w:done(id))
      assert.is_true(wait_until(function() return delivered == 1 end))
      local message_body, status_body
      for _, d in ipairs(w.sim:deliveries()) do
        if d.kind == "message" then message_body = d.body end
        if d.kind == "status" and d.payload.entry[1].changes[1].value.statuses[1].status == "delivered" then
          status_body = d.body
        end
      end
      assert.equal(200, w:post(message_body).status)
      assert.equal(200, w:post(status_body).status)
      assert.is_true(wait_until(function()
        local n = 0
        for _, l in ipairs(w:log_lines()) do if l.msg == "duplicate" then n = n + 1 end end
        return n == 2
      end))
      assert.equal(1, count)
      assert.equal(1, delivered)
      assert.equal(1, #w.sim:messages())
    end)

    it("can be turned off", function()
      local w = world{ bot = { dedupe = false } }
      local count = 0
      w.bot:text("again", function() count = count + 1 end)
      w:say("again")
      local body = w.sim:deliveries()[1].body
      w:post(body)
      assert.is_true(wait_until(function() return count == 2 end))
    end)
  end)

  describe("send_sequence", function()
    it("sends each message only after the previous one was delivered", function()
      local ids, checks, w = {}, {}, nil
      local transport = { request = function(_, req)
        local body = req.body and cjson.decode(req.body)
        if type(body) == "table" and body.type == "text" and #ids > 0 then
          checks[#checks + 1] = w.bot:last_status(ids[#ids])
        end
        local res, err = http.request(req)
        if res and res.status == 200 then
          local b = cjson.decode(res.body)
          if type(b.messages) == "table" then ids[#ids + 1] = b.messages[1].id end
        end
        return res, err
      end }
      w = world{ client = { http = transport }, delay = 0.02 }
      local results
      w.bot:command("seq", function(ctx) results = assert(ctx:send_sequence{ "one", "two", "three" }) end)
      assert.is_true(w:done(w:say("/seq")))
      assert.same({ "one", "two", "three" }, w:texts())
      assert.equal(3, #results)
      assert.same({ "delivered", "delivered" }, checks)
      assert.equal(ids[1], results[1].id)
    end)

    it("stops at a failed status", function()
      local w = world{ delay = 3 }
      local out
      w.bot:command("seq", function(ctx) out = { ctx:send_sequence{ "first", "second" } } end)
      w:say("/seq")
      assert.is_true(w:sent(1))
      local wamid = w.sim:messages()[1].id
      w:post(envelope{ statuses = { { id = wamid, status = "failed", timestamp = tostring(os.time()),
        recipient_id = USER, errors = { { code = 131026, title = "Message undeliverable" } } } } })
      assert.is_true(wait_until(function() return out ~= nil end))
      assert.is_nil(out[1])
      assert.equal(131026, out[2].code)
      assert.equal(wamid, out[3][1].id)
      assert.same({ "first" }, w:texts())
    end)

    it("gives up after the timeout", function()
      local w = world()
      local out
      w.bot:command("seq", function(ctx)
        -- a reaction only ever gets "sent": the next message waits in vain
        out = { ctx:send_sequence({ message.reaction(ctx.from, ctx.id, "👍"), "never" }, { timeout = 0.2 }) }
      end)
      assert.is_true(w:done(w:say("/seq")))
      assert.is_nil(out[1])
      assert.equal("timeout", out[2].code)
      assert.same({ "<reaction>" }, w:texts())
    end)
  end)

  describe("memory", function()
    it("stays flat as events go by past the dedupe window", function()
      local now = 0
      local st = store.memory{ clock = function() return now end, sweep_min = 256 }
      local b = botlib{ store = st, log = false, dedupe = 5 }
      local handled = 0
      b:text(function(ctx) ctx.session.last = ctx.text; handled = handled + 1 end)
      local function run(from, to)
        for i = from, to do
          now = i * 0.01
          b:process{ kind = "message", type = "text", id = "wamid.M" .. i, from = "1555000" .. (i % 100),
            text = "t" .. i, phone_number_id = PNID }
        end
      end
      run(1, 20000)
      collectgarbage(); collectgarbage()
      local kb, size = collectgarbage("count"), st:size()
      run(20001, 60000)
      collectgarbage(); collectgarbage()
      assert.equal(60000, handled)
      assert.is_true(st:size() <= size + 600, "store grew from " .. size .. " to " .. st:size())
      assert.is_true(collectgarbage("count") < kb + 512, "heap grew from " .. kb .. " KiB")
      assert.equal(0, b:active_users())
    end)
  end)

  describe("several phone numbers", function()
    it("answers each event with the client of the number it arrived at", function()
      local w = world()
      w.sim2 = assert(simulator.start{
        access_token = TOKEN2, phone_number_id = PNID2, display_phone_number = "15550009999", waba_id = WABA,
        window = false, rate = false, pair_limit = false, webhook = { url = w.url, app_secret = SECRET },
      })
      w.bot:add_client(client_mod{ phone_number_id = PNID2, waba_id = WABA, access_token = TOKEN2,
        base_url = w.sim2.url, retry = false, rate = false })
      w.bot:text("which", function(ctx)
        ctx.session.n = (ctx.session.n or 0) + 1
        ctx:reply(ctx.phone_number_id .. " #" .. ctx.session.n)
      end)
      assert(w.sim2:send_user_message{ from = USER, text = "which" })
      assert.is_true(w:sent(1, w.sim2))
      assert.same({ PNID2 .. " #1" }, w:texts(w.sim2))
      assert.equal(0, #w.sim:messages())
      assert.is_true(w:done(w:say("which")))
      assert.same({ PNID .. " #1" }, w:texts())
      assert(w.sim2:send_user_message{ from = USER, text = "which" })
      assert.is_true(w:sent(2, w.sim2))
      assert.same({ PNID2 .. " #1", PNID2 .. " #2" }, w:texts(w.sim2))
      -- proactive sends pick the number
      assert(w.bot:send(USER, "from two", { phone_number_id = PNID2 }))
      assert.equal(3, #w.sim2:messages())
      for _, line in ipairs(w.logs) do assert.is_nil(line:find(TOKEN2, 1, true)) end
    end)
  end)

  describe("logs", function()
    it("are JSON lines with masked numbers and never a token", function()
      local w = world()
      w.bot:text("hi", function(ctx) ctx:reply("hello") end)
      w.bot:text("boom", function() error("token " .. TOKEN .. " user " .. USER) end)
      assert.is_true(w:done(w:say("hi")))
      assert.is_true(w:done(w:say("boom")))
      w:post("not json")
      assert.is_true(#w.logs >= 3)
      for _, line in ipairs(w.logs) do
        assert.is_nil(line:find(TOKEN, 1, true), "token in " .. line)
        assert.is_nil(line:find(SECRET, 1, true), "secret in " .. line)
        assert.is_nil(line:find(USER, 1, true), "phone number in " .. line)
        assert.is_nil(line:find("\n", 1, true))
        assert.equal("table", type(cjson.decode(line)))
      end
      local ev = w:find_log(function(l) return l.msg == "event" and l.kind == "message" end)
      assert.equal("*******2222", ev.user)
      assert.equal(PNID, ev.pnid)
      assert.equal("routed", ev.outcome)
      assert.equal(1, ev.handled)
      assert.equal("number", type(ev.ms))
      assert.truthy(ev.time:match("^%d%d%d%d%-%d%d%-%d%dT"))
    end)

    it("show numbers when masking is off", function()
      local w = world{ bot = { mask_phones = false } }
      assert.is_true(w:done(w:say("hi")))
      local ev = w:find_log(function(l) return l.msg == "event" and l.kind == "message" end)
      assert.equal(USER, ev.user)
    end)
  end)
end)
