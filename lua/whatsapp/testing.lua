--- Test your bot in busted: the project's Cloud API simulator and your bot, wired together in
-- this process, and a user who talks to it.
--
--     local testing = require "whatsapp.testing"
--
--     describe("my bot", function()
--       local t
--       before_each(function()
--         t = testing.start{ setup = function(bot)
--           bot:text("hi", function(ctx) ctx:reply_buttons("Hello! Coffee?", { "Yes", "No" }) end)
--           bot:button("Yes", function(ctx) ctx:reply("On its way") end)
--         end }
--       end)
--       after_each(function() t:close() end)
--
--       it("serves coffee", function()
--         local replies = t:say("hi")
--         assert.equal("Hello! Coffee?", replies[1].text)
--         assert.same({ "Yes", "No" }, replies[1].choices)
--         assert.equal("On its way", t:tap("Yes")[1].text)
--       end)
--     end)
--
-- `testing.start` makes a bot (`whatsapp.bot`) listening on a free loopback port, a simulator
-- (`whatsapp.simulator`) that posts signed webhooks to it, and a client pointed at the
-- simulator; then it calls your `setup(bot)` to register the handlers. An example bot module
-- (`{ setup =, templates =, bot_options = }`, as in `examples/bots/`) can be given as is.
--
-- The user's side: `t:say(text | message)`, `t:tap(button)`, `t:choose(row)` (each returns the
-- bot's replies), `t:as(phone, name)` for another user, `t:read(reply)` and `t:fail(reply,
-- code)` for status webhooks, `t:post(payload)` for any signed webhook. The business side:
-- `t:run(function(bot) ... end)` for sends the bot starts itself (templates, sequences).
-- Looking around: `t:replies()`, `t:last()`, `t:reads()`, `t:log_lines()`, `t:errors()`,
-- `t.bot`, `t.sim`, `t.client`. Time: `t:advance(seconds)`. The end: `t:close()`.
--
-- ## Waiting without sleeping
--
-- `t:say` sends the user's message and returns once the bot is done with it: every task the
-- bot started for the events of that exchange has finished or waits for the user in
-- `ctx:ask`, the simulator has delivered the status webhooks of the replies (so a
-- `send_sequence` runs to its end), and no webhook is still queued in the bot. Nothing sleeps
-- for a fixed time: it turns the event loop until that holds (checked twice, a loop turn
-- apart), or until `count` replies arrived, or raises after `timeout` seconds.
--
-- ## Replies
--
-- A reply is a plain table made from what the simulator accepted:
--
-- * `id` (wamid), `to`, `type`, `body` (the request body as the bot sent it), `quoted` (the
--   wamid it quotes, if any);
-- * `text`: the text a person sees (a text's body, an interactive body, a media caption, a
--   template's body with its parameters filled in);
-- * interactive: `type = "buttons"` with `buttons = { {id=, title=} }`, or `type = "list"` with
--   `button` (the label) and `rows = { {id=, title=, description=, section=} }`; both with
--   `choices` (the titles), `header`, `footer`; other interactive kinds keep `type =
--   "interactive"` and `subtype`;
-- * template: `name`, `language`, `params` (named: name -> value; positional: a list),
--   `header_params`, `button_params`, and from the definition the simulator holds: `text`,
--   `header`, `footer`, `buttons` (quick replies: `{ title =, payload = }`) and `links`;
-- * reaction: `emoji`, `message_id`; media: `media`, `caption`; location: `location`.
--
-- ## Time
--
-- The bot's clock, its store's clock and the simulator's clock are one offset clock:
-- `t:advance(25 * 3600)` closes every 24-hour window (timers such as `ask` timeouts still run
-- on real time).
-- @module whatsapp.testing
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local webhook = require "whatsapp.webhook"
local client_mod = require "whatsapp.client"
local simulator = require "whatsapp.simulator"
local templates_mod = require "whatsapp.templates"
local store_mod = require "whatsapp.store"
local bot_mod = require "whatsapp.bot"
local cjson_safe = require "cjson.safe"

local testing = {}

local type, pairs, ipairs, next, tostring, tonumber, setmetatable, error, select, pcall =
  type, pairs, ipairs, next, tostring, tonumber, setmetatable, error, select, pcall
local gsub, lower, upper, format = string.gsub, string.lower, string.upper, string.format
local concat = table.concat
local os_time = os.time
local unpack = table.unpack or unpack -- luacheck: ignore 143
local xpcall, traceback = xpcall, debug.traceback

local function pack(...) return { n = select("#", ...), ... } end

--- The default user's phone number.
testing.USER = "15550002222"
--- The default user's profile name.
testing.NAME = "Test User"
--- The bot's phone number id.
testing.PHONE_NUMBER_ID = "100000000000001"
--- The WhatsApp Business Account id.
testing.WABA_ID = "100000000000002"

local TOKEN = "EAAG-whatsapp-testing-access-token-0000000000"
local SECRET = "whatsapp-testing-app-secret"
local VERIFY = "whatsapp-testing-verify-token"

local HELLO_WORLD = {
  name = "hello_world", language = "en_US", category = "UTILITY", status = "APPROVED",
  components = {
    { type = "HEADER", format = "TEXT", text = "Hello World" },
    { type = "BODY", text = "Welcome and congratulations!! This message demonstrates your ability to send a "
      .. "WhatsApp message notification from the Cloud API, hosted by Meta." },
    { type = "FOOTER", text = "WhatsApp Business Platform sample message" },
  },
}

local function digits(s)
  s = tostring(s)
  if s:find("^[%d%s%+%-%(%)%.]+$") then return (gsub(s, "%D", "")) end
  return s
end

-- ---- replies ------------------------------------------------------------------------------

-- What a person sees for one template parameter.
local function param_value(p)
  if type(p) ~= "table" then return p end
  local t = p.type
  if t == "text" then return p.text end
  if t == "currency" then return p.currency and p.currency.fallback_value end
  if t == "date_time" then return p.date_time and p.date_time.fallback_value end
  if t == "payload" then return p.payload end
  if t == "coupon_code" then return p.coupon_code end
  if t == "image" or t == "video" or t == "document" then
    local m = p[t] or {}
    return m.link or m.id
  end
  return p
end

local function render(text, params)
  if type(text) ~= "string" then return nil end
  return (gsub(text, "{{%s*([%w_]+)%s*}}", function(k)
    local v = params[tonumber(k) or k]
    if type(v) == "string" or type(v) == "number" then return tostring(v) end
    return nil
  end))
end

local function template_def(sim, name, language)
  if not sim then return nil end
  for _, d in ipairs(sim:templates()) do
    if d.name == name and (language == nil or d.language == language) then return d end
  end
end

local function fill_template(r, tp, sim)
  r.name = tp.name
  r.language = type(tp.language) == "table" and tp.language.code or tp.language
  r.params, r.header_params, r.button_params = {}, {}, {}
  for _, c in ipairs(type(tp.components) == "table" and tp.components or {}) do
    local ctype = lower(tostring(c.type))
    local into = ctype == "body" and r.params or ctype == "header" and r.header_params or nil
    for _, p in ipairs(type(c.parameters) == "table" and c.parameters or {}) do
      local v = param_value(p)
      if into then
        if type(p) == "table" and p.parameter_name then into[p.parameter_name] = v else into[#into + 1] = v end
      elseif ctype == "button" then
        r.button_params[#r.button_params + 1] = { index = tonumber(c.index), sub_type = c.sub_type, value = v }
      end
    end
  end
  local def = template_def(sim, r.name, r.language)
  if not def then return end
  local function button_value(index)
    for _, b in ipairs(r.button_params) do
      if b.index == index then return b.value end
    end
  end
  r.buttons, r.links, r.choices = {}, {}, {}
  for _, c in ipairs(def.components or {}) do
    local ctype = upper(tostring(c.type))
    if ctype == "BODY" then
      r.text = render(c.text, r.params)
    elseif ctype == "HEADER" and (c.format == nil or upper(c.format) == "TEXT") then
      r.header = render(c.text, r.header_params)
    elseif ctype == "FOOTER" then
      r.footer = c.text
    elseif ctype == "BUTTONS" then
      for j, b in ipairs(c.buttons or {}) do
        local btype = upper(tostring(b.type))
        if btype == "QUICK_REPLY" then
          r.buttons[#r.buttons + 1] = { title = b.text, payload = button_value(j - 1) or b.text, index = j - 1 }
          r.choices[#r.choices + 1] = b.text
        elseif btype == "URL" then
          local suffix = button_value(j - 1)
          r.links[#r.links + 1] = { title = b.text, url = render(b.url, { suffix }) }
        end
      end
    end
  end
end

local MEDIA = { image = true, video = true, audio = true, document = true, sticker = true }

--- A friendly reply table from a message record of `sim:messages()` (see the module comment).
-- @tparam table rec the simulator's record
-- @param[opt] sim the simulator (to render templates from their definitions)
-- @treturn table
function testing.reply(rec, sim)
  if type(rec) ~= "table" or type(rec.body) ~= "table" then error("testing.reply: a message record expected", 2) end
  local body = rec.body
  local kind = rec.type or body.type or "text"
  local r = { id = rec.id, to = rec.to, type = kind, body = body, time = rec.time }
  if type(body.context) == "table" then r.quoted = body.context.message_id end
  local obj = body[kind]
  if kind == "text" then
    r.text = obj and obj.body
  elseif kind == "interactive" and type(obj) == "table" then
    r.subtype = obj.type
    r.text = type(obj.body) == "table" and obj.body.text or nil
    local h = obj.header
    if type(h) == "table" then r.header = h.text or h end
    r.footer = type(obj.footer) == "table" and obj.footer.text or nil
    local action = obj.action or {}
    if obj.type == "button" then
      r.type, r.buttons, r.choices = "buttons", {}, {}
      for i, b in ipairs(action.buttons or {}) do
        local reply = b.reply or {}
        r.buttons[i] = { id = reply.id, title = reply.title }
        r.choices[i] = reply.title
      end
    elseif obj.type == "list" then
      r.type, r.button, r.rows, r.choices = "list", action.button, {}, {}
      for _, s in ipairs(action.sections or {}) do
        for _, row in ipairs(s.rows or {}) do
          r.rows[#r.rows + 1] = { id = row.id, title = row.title, description = row.description, section = s.title }
          r.choices[#r.choices + 1] = row.title
        end
      end
    end
  elseif kind == "template" and type(obj) == "table" then
    fill_template(r, obj, sim)
  elseif kind == "reaction" and type(obj) == "table" then
    r.emoji, r.message_id = obj.emoji, obj.message_id
  elseif MEDIA[kind] and type(obj) == "table" then
    r.media, r.caption, r.text = obj, obj.caption, obj.caption
  elseif kind == "location" then
    r.location = obj
  end
  return r
end

-- ---- the test world -----------------------------------------------------------------------

local T = {}
T.__index = T
T.__name = "whatsapp.testing.T"
T.__tostring = function() return "whatsapp.testing" end

local User = {}
User.__index = User

local function merge(into, from)
  if type(from) == "table" then
    for k, v in pairs(from) do into[k] = v end
  end
  return into
end

local function strip_types(def)
  local d = {}
  for k, v in pairs(def) do if k ~= "types" then d[k] = v end end
  return d
end

--- Start a simulator and a bot wired together.
-- @tparam table opts
-- @param opts.example an example bot module: `{ setup =, templates =, bot_options = }` (the
--   other options override its fields); its fields may also be given directly
-- @param opts.setup `function(bot, setup_options)` registering the handlers
-- @param opts.setup_options passed to `setup`
-- @param opts.bot options for `whatsapp.bot`, over the example's `bot_options` (or `options`;
--   also accepted here as `bot_options`). `webhook` and `spawn` are the harness's; `log` (default: kept, see
--   `t:logs`), `clock`, `store` and `on_error` (called too) may be given
-- @param opts.templates template definitions (Meta's shape, plus `types` for the registry):
--   declared in the client's registry and approved in the simulator (which also keeps
--   `hello_world`)
-- @param opts.window the simulator enforces the 24-hour window (default true)
-- @param opts.user the default user's number (default `testing.USER`); `opts.name` their name
-- @param opts.timeout seconds an exchange may take before it raises (default 10)
-- @param opts.status_delay seconds before the simulator's status webhooks (default 0)
-- @param opts.raise a handler that raises fails the exchange (default true)
-- @param opts.log true: also write the bot's log lines to stderr
-- @param opts.sim more `simulator.start` options; `opts.client` more client options
-- @return the test world `t`, with fields `bot`, `sim`, `client`, `url` (the bot's webhook URL);
--   or nil and an error object when no loopback port could be listened on
-- @raise on wrong option types, and what `setup` raises
function testing.start(opts)
  if type(opts) ~= "table" then error("testing.start: options table expected", 2) end
  local ex = opts.example
  if ex ~= nil and type(ex) ~= "table" then error("testing.start: example must be a table", 2) end
  ex = ex or {}
  local function pick(k)
    if opts[k] ~= nil then return opts[k] end
    return ex[k]
  end
  local setup = pick("setup")
  if setup ~= nil and type(setup) ~= "function" then error("testing.start: setup must be a function", 2) end
  local defs = pick("templates")
  if defs ~= nil and type(defs) ~= "table" then error("testing.start: templates must be a list", 2) end
  for _, k in ipairs{ "bot", "bot_options", "sim", "client" } do
    if opts[k] ~= nil and type(opts[k]) ~= "table" then error("testing.start: " .. k .. " must be a table", 2) end
  end
  local timeout = opts.timeout or 10
  if type(timeout) ~= "number" or timeout <= 0 then error("testing.start: timeout must be a positive number", 2) end
  local user = opts.user or testing.USER
  if type(user) ~= "string" then error("testing.start: user must be a string", 2) end

  local self = setmetatable({
    user = user, name = opts.name or testing.NAME, timeout = timeout, raise = opts.raise ~= false,
    logs = {}, _errors = {}, _tasks = {}, _pending = {}, _sim_busy = 0, _offset = 0, _mark = 0,
  }, T)

  -- One clock for everything that reads the time, moved by t:advance.
  local function mono() return loop.now() + self._offset end
  local function wall() return os_time() + self._offset end

  local bo = merge(merge(merge(merge({}, ex.options), ex.bot_options), opts.bot_options), opts.bot)
  local user_log, user_on_error, user_spawn = bo.log, bo.on_error, bo.spawn
  local echo = opts.log and true or false
  bo.log = function(line)
    self.logs[#self.logs + 1] = line
    if echo then io.stderr:write(line, "\n") end
    if type(user_log) == "function" then user_log(line) end
  end
  bo.on_error = function(err, ctx)
    self._errors[#self._errors + 1] = { error = err, kind = ctx and ctx.kind, type = ctx and ctx.type,
      id = ctx and ctx.id }
    if user_on_error then return user_on_error(err, ctx) end
  end
  local spawn = user_spawn or loop.spawn
  bo.spawn = function(fn, ...)
    local task = spawn(fn, ...)
    if type(task) == "table" and not task.done then self._tasks[task] = true end
    return task
  end
  if bo.clock == nil then bo.clock = wall end
  if bo.store == nil then bo.store = store_mod.memory{ clock = mono } end
  if bo.ask_timeout == nil then bo.ask_timeout = 300 end

  -- The webhook hook: every parsed batch with events is pending until the bot dispatches it.
  local hook = webhook.new{ app_secret = SECRET, verify_token = VERIFY }
  local parse = hook.parse
  hook.parse = function(h, body, headers)
    local events, err = parse(h, body, headers)
    if events and #events > 0 then self._pending[events] = true end
    return events, err
  end
  self.hook = hook
  bo.webhook = hook

  local b = bot_mod.new(bo)
  local dispatch = b.dispatch
  b.dispatch = function(bot, events)
    self._pending[events] = nil
    return dispatch(bot, events)
  end
  self.bot = b
  local srv, err = b:listen{ port = 0 }
  if not srv then
    hook:close()
    return nil, err
  end
  self.url = "http://127.0.0.1:" .. srv:port() .. "/webhook"

  local sim_templates
  if defs then
    sim_templates = {}
    local has_hello = false
    for _, d in ipairs(defs) do
      sim_templates[#sim_templates + 1] = strip_types(d)
      if d.name == "hello_world" then has_hello = true end
    end
    if not has_hello then sim_templates[#sim_templates + 1] = HELLO_WORLD end
  end
  local so = merge({
    access_token = TOKEN, phone_number_id = testing.PHONE_NUMBER_ID, waba_id = testing.WABA_ID,
    window = opts.window ~= false, rate = false, pair_limit = false, templates = sim_templates, now = mono,
    webhook = { url = self.url, app_secret = SECRET, delay = opts.status_delay },
  }, opts.sim)
  local sim, serr = simulator.start(so)
  if not sim then
    b:close()
    hook:close()
    return nil, serr
  end
  self.sim = sim
  -- The simulator's status webhooks run in tasks of their own: count them as work in flight.
  local statuses = sim._statuses
  if type(statuses) == "function" then
    sim._statuses = function(s, msg)
      self._sim_busy = self._sim_busy + 1
      local ok, e = pcall(statuses, s, msg)
      self._sim_busy = self._sim_busy - 1
      if not ok then error(e, 0) end
    end
  end

  local reg = templates_mod.new()
  for _, d in ipairs(defs or {}) do reg:declare(d) end
  self.registry = reg
  self.client = client_mod.new(merge({
    phone_number_id = testing.PHONE_NUMBER_ID, waba_id = testing.WABA_ID, access_token = TOKEN,
    base_url = sim.url, retry = false, rate = false, templates = reg,
  }, opts.client))
  b:add_client(self.client)

  if setup then
    local ok, e = pcall(setup, b, opts.setup_options)
    if not ok then
      self:close()
      error(e, 0)
    end
  end
  return self
end

--- Bot and simulator time (wall-clock seconds, moved by `advance`).
-- @treturn number
function T:now()
  return os_time() + self._offset
end

--- Move the clocks of the bot, its store and the simulator forward.
-- @tparam number seconds
function T:advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then error("t:advance: seconds must be a number >= 0", 2) end
  self._offset = self._offset + seconds
end

local function check_open(self, fname)
  if self._closed then error("t:" .. fname .. ": the test world was closed", 3) end
end

-- Number of users the bot is waiting for in ctx:ask.
local function pending_asks(b)
  local n = 0
  for _, u in pairs(b._users or {}) do
    if u.ask then n = n + 1 end
  end
  return n
end

--- Whether the bot or the simulator still has work in flight for the exchanges so far
-- (tasks waiting in `ctx:ask` do not count).
-- @treturn boolean
function T:busy()
  if next(self._pending) ~= nil or self._sim_busy > 0 then return true end
  local live = 0
  for task in pairs(self._tasks) do
    if task.done then self._tasks[task] = nil else live = live + 1 end
  end
  return live > pending_asks(self.bot)
end

-- Turn the loop until quiet (twice, a turn apart), or `count` messages after `from`.
local function settle(self, from, count, timeout)
  local deadline = loop.now() + (timeout or self.timeout)
  local calm = 0
  while true do
    if count and #self.sim:messages() - from >= count then break end
    if self:busy() then calm = 0 else calm = calm + 1 end
    if calm >= 2 then break end
    if loop.now() > deadline then
      local live = 0
      for task in pairs(self._tasks) do if not task.done then live = live + 1 end end
      error(format("whatsapp.testing: the bot was still busy after %g s (%d task(s) running, %d waiting in ask, "
        .. "%d status webhook(s) in flight); give a larger timeout or a count", timeout or self.timeout, live,
        pending_asks(self.bot), self._sim_busy), 0)
    end
    loop.sleep(calm > 0 and 0 or 0.001)
  end
  self._mark = #self.sim:messages()
end

local function since(self, from)
  local out = {}
  local msgs = self.sim:messages()
  for i = from + 1, #msgs do out[#out + 1] = testing.reply(msgs[i], self.sim) end
  return out
end

local function raise_new_errors(self, before)
  if not self.raise or #self._errors <= before then return end
  local e = self._errors[before + 1]
  error("whatsapp.testing: a handler raised while handling a " .. tostring(e.type or e.kind) .. ": "
    .. tostring(e.error), 0)
end

-- Run `send` (which makes the bot receive something), wait, and collect the replies.
local function exchange(self, send, opts)
  local from = #self.sim:messages()
  local errs = #self._errors
  local a, b = send()
  settle(self, from, opts and opts.count, opts and opts.timeout)
  raise_new_errors(self, errs)
  return since(self, from), a, b
end

local function deliver_user_message(self, m, fname)
  local wamid, err = self.sim:send_user_message(m)
  if not wamid then
    error("whatsapp.testing: t:" .. fname .. ": the bot did not take the webhook: " .. tostring(err), 0)
  end
  return wamid
end

local function user_message(self, what, opts, fname)
  local m
  if type(what) == "string" then
    m = { text = what }
  elseif type(what) == "table" then
    m = merge({}, what)
  else
    error("t:" .. fname .. ": a text or a message table expected", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then error("t:" .. fname .. ": opts must be a table", 3) end
  opts = opts or {}
  m.from = opts.from or m.from or self.user
  m.name = opts.name or m.name or self.name
  local q = opts.reply_to
  if q ~= nil then
    m.context = { from = self.sim.display_phone_number, id = type(q) == "table" and q.id or q }
  end
  return m, opts
end

--- The user sends a message; returns the bot's replies to it once it is done.
-- @param what a text, or a message in `sim:send_user_message`'s shape (`{ type = "image",
--   image = { id =, mime_type = } }`, `{ type = "location", location = {...} }`...)
-- @tparam[opt] table opts `from`, `name` (the user), `reply_to` (a reply or a wamid the user
--   quotes), `count` (return as soon as that many replies arrived), `timeout`
-- @treturn table the replies (see the module comment)
-- @treturn string the wamid of the user's message
function T:say(what, opts)
  check_open(self, "say")
  local m
  m, opts = user_message(self, what, opts, "say")
  return exchange(self, function() return deliver_user_message(self, m, "say") end, opts)
end

-- The newest message to `user` with a button or row matching `x`.
local function find_choice(self, user, x, kinds)
  local wa = digits(user)
  local msgs = self.sim:messages()
  for i = #msgs, 1, -1 do
    local rec = msgs[i]
    if rec.to == wa then
      local r = testing.reply(rec, self.sim)
      local list = kinds == "row" and r.type == "list" and r.rows
        or kinds == "button" and (r.type == "buttons" or r.type == "template") and r.buttons or nil
      for _, c in ipairs(list or {}) do
        if c.id == x or c.title == x or (c.payload ~= nil and c.payload == x) then return r, c end
      end
    end
  end
end

--- The user taps a reply button (by id or title) of the newest message that has it, or a
-- template's quick-reply button (by title or payload); returns the bot's replies.
-- @tparam string button an id, a title or a payload
-- @tparam[opt] table opts as for `say`
-- @treturn table the replies
-- @treturn string the wamid of the user's message
function T:tap(button, opts)
  check_open(self, "tap")
  if type(button) ~= "string" then error("t:tap: a button id or title expected", 2) end
  opts = opts or {}
  local user = opts.from or self.user
  local r, b = find_choice(self, user, button, "button")
  if not r then error("t:tap: no message to " .. user .. " has a button " .. button, 2) end
  local m
  if r.type == "template" then
    m = { type = "button", button = { payload = b.payload, text = b.title } }
  else
    m = { type = "interactive", interactive = { type = "button_reply", button_reply = { id = b.id, title = b.title } } }
  end
  m.context = { from = self.sim.display_phone_number, id = r.id }
  m = user_message(self, m, opts, "tap")
  return exchange(self, function() return deliver_user_message(self, m, "tap") end, opts)
end

--- The user chooses a row (by id or title) of the newest list message that has it.
-- @tparam string row an id or a title
-- @tparam[opt] table opts as for `say`
-- @treturn table the replies
-- @treturn string the wamid of the user's message
function T:choose(row, opts)
  check_open(self, "choose")
  if type(row) ~= "string" then error("t:choose: a row id or title expected", 2) end
  opts = opts or {}
  local user = opts.from or self.user
  local r, c = find_choice(self, user, row, "row")
  if not r then error("t:choose: no list sent to " .. user .. " has a row " .. row, 2) end
  local m = { type = "interactive", interactive = { type = "list_reply",
    list_reply = { id = c.id, title = c.title, description = c.description } },
    context = { from = self.sim.display_phone_number, id = r.id } }
  m = user_message(self, m, opts, "choose")
  return exchange(self, function() return deliver_user_message(self, m, "choose") end, opts)
end

--- Run `fn(bot, ...)` in a loop task (for business-initiated sends: `bot:send_template`,
-- `bot:send_sequence`...), wait until everything it caused is done, and return the messages
-- sent meanwhile, then what `fn` returned.
-- @tparam function fn
-- @return the replies, then fn's results
function T:run(fn, ...)
  check_open(self, "run")
  if type(fn) ~= "function" then error("t:run: function expected", 2) end
  local task
  local args = { n = select("#", ...), ... }
  local out = exchange(self, function()
    task = loop.spawn(function()
      return pack(xpcall(fn, traceback, self.bot, unpack(args, 1, args.n)))
    end)
    if not task.done then self._tasks[task] = true end
  end)
  local res = task.done and task.results[1]
  if not res then return out end
  if not res[1] then error("whatsapp.testing: t:run: the function raised: " .. tostring(res[2]), 0) end
  return out, unpack(res, 2, res.n)
end

--- Wait until the bot is done (after something started outside `say`), and return the
-- messages sent since the last exchange ended.
-- @tparam[opt] table opts `count`, `timeout`
-- @treturn table the replies
function T:wait(opts)
  check_open(self, "wait")
  local from = self._mark
  local errs = #self._errors
  settle(self, from, opts and opts.count, opts and opts.timeout)
  raise_new_errors(self, errs)
  return since(self, from)
end

--- Post a payload to the bot's webhook, signed as Meta would, and wait until it is handled.
-- @param payload a table (encoded as JSON) or the raw body
-- @treturn table the replies
-- @treturn table the bot's HTTP response
function T:post(payload)
  check_open(self, "post")
  local raw = payload
  if type(payload) == "table" then raw = assert(cjson_safe.encode(payload)) end
  if type(raw) ~= "string" then error("t:post: a table or a string expected", 2) end
  return exchange(self, function()
    local res, err = http.request{ method = "POST", url = self.url, body = raw, headers = {
      ["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = webhook.sign(raw, SECRET) } }
    if not res then error("whatsapp.testing: t:post: " .. tostring(err), 0) end
    return res
  end)
end

local function outgoing(self, reply_or_wamid, fname)
  local id = type(reply_or_wamid) == "table" and reply_or_wamid.id or reply_or_wamid
  if type(id) ~= "string" then error("t:" .. fname .. ": a reply or a wamid expected", 3) end
  for _, rec in ipairs(self.sim:messages()) do
    if rec.id == id then return rec end
  end
  error("t:" .. fname .. ": the simulator accepted no message " .. id, 3)
end

--- Meta reports that a message the bot sent could not be delivered: a signed `failed` status
-- webhook reaches the bot.
-- @param reply a reply (or its wamid)
-- @tparam[opt=131026] integer code
-- @tparam[opt] string title
-- @treturn table the replies
function T:fail(reply, code, title)
  check_open(self, "fail")
  local rec = outgoing(self, reply, "fail")
  code = code or 131026
  title = title or "Message undeliverable"
  local status = { id = rec.id, status = "failed", timestamp = tostring(os_time()), recipient_id = rec.to,
    errors = { { code = code, title = title, message = title, error_data = { details = title } } } }
  return (self:post{ object = "whatsapp_business_account", entry = { { id = testing.WABA_ID, changes = { {
    field = "messages", value = { messaging_product = "whatsapp", statuses = { status },
      metadata = { display_phone_number = self.sim.display_phone_number, phone_number_id = testing.PHONE_NUMBER_ID },
    } } } } } })
end

--- The user reads a message the bot sent: a signed `read` status webhook reaches the bot.
-- @param reply a reply (or its wamid)
-- @treturn table the replies
function T:read(reply)
  check_open(self, "read")
  local rec = outgoing(self, reply, "read")
  return (exchange(self, function()
    local res, err = self.sim:read(rec.id)
    if not res then error("whatsapp.testing: t:read: " .. tostring(err), 0) end
  end))
end

--- Every message the bot sent (the simulator accepted), as replies.
-- @tparam[opt] table opts `to`: only those to this user
-- @treturn table
function T:replies(opts)
  local to = opts and opts.to and digits(opts.to)
  local out = {}
  for _, rec in ipairs(self.sim:messages()) do
    if not to or rec.to == to then out[#out + 1] = testing.reply(rec, self.sim) end
  end
  return out
end

--- The last message the bot sent, as a reply (or nil).
-- @treturn table|nil
function T:last()
  local msgs = self.sim:messages()
  return msgs[#msgs] and testing.reply(msgs[#msgs], self.sim) or nil
end

--- The ids of the messages the bot marked as read, in order.
-- @treturn table
function T:reads()
  local out = {}
  for i, r in ipairs(self.sim:reads()) do out[i] = r.message_id end
  return out
end

--- The bot's log lines, decoded; only those whose `msg` is `what`, or for which `what(line)`
-- is true, when given.
-- @param[opt] what
-- @treturn table
function T:log_lines(what)
  local out = {}
  for _, line in ipairs(self.logs) do
    local l = cjson_safe.decode(line)
    if type(l) == "table" and (what == nil or (type(what) == "function" and what(l)) or l.msg == what) then
      out[#out + 1] = l
    end
  end
  return out
end

--- Errors raised by handlers so far: `{ error, kind, type, id }`.
-- @treturn table
function T:errors()
  return self._errors
end

--- A user other than the default one: `local ana = t:as("15550003333", "Ana")`, then
-- `ana:say("hi")`, `ana:tap(...)`, `ana:choose(...)`, `ana:replies()`.
-- @tparam string phone
-- @tparam[opt] string name
-- @return the user
function T:as(phone, name)
  if type(phone) ~= "string" then error("t:as: phone string expected", 2) end
  return setmetatable({ t = self, phone = phone, name = name or testing.NAME }, User)
end

local function with_user(u, opts)
  local o = merge({}, opts)
  o.from, o.name = u.phone, o.name or u.name
  return o
end

--- As `t:say`, from this user.
function User:say(what, opts) return self.t:say(what, with_user(self, opts)) end
--- As `t:tap`, from this user.
function User:tap(button, opts) return self.t:tap(button, with_user(self, opts)) end
--- As `t:choose`, from this user.
function User:choose(row, opts) return self.t:choose(row, with_user(self, opts)) end
--- The messages the bot sent this user.
function User:replies() return self.t:replies{ to = self.phone } end

--- Close the bot and the simulator (pending questions end). Safe twice.
function T:close()
  if self._closed then return end
  self._closed = true
  if self.bot then self.bot:close() end
  if self.sim then self.sim:close() end
  if self.hook then pcall(self.hook.close, self.hook) end
end
T.__close = T.close

--- A short description of a list of replies, for assertion messages: one line each.
-- @tparam table replies
-- @treturn string
function testing.describe(replies)
  local lines = {}
  for i, r in ipairs(replies or {}) do
    local extra = r.choices and #r.choices > 0 and (" [" .. concat(r.choices, "] [") .. "]") or ""
    lines[i] = format("%d. %s%s: %s%s", i, r.type, r.name and (" " .. r.name) or "",
      tostring(r.text or r.emoji or ""), extra)
  end
  return concat(lines, "\n")
end

return testing
