--- The bot runtime: routing, middleware, handler contexts, conversations, and hosting.
--
--     local whatsapp = require "whatsapp"
--     local bot = require("whatsapp.bot"){
--       client = whatsapp.client{ phone_number_id = "100000000000001", access_token = os.getenv "WA_TOKEN" },
--       webhook = whatsapp.webhook.new{ app_secret = os.getenv "WA_APP_SECRET", verify_token = "xyz" },
--       window = { template = { name = "hello_world", language = "en_US" } },
--     }
--     bot:command("start", function(ctx)
--       local answer = ctx:ask("What is your name?")          -- waits for the user's next message
--       if answer then
--         ctx.session.name = answer.text
--         ctx:reply("Hello " .. answer.text .. "!")
--       end
--     end)
--     bot:button("yes", function(ctx) ctx:reply("Great") end)
--     bot:fallback(function(ctx) ctx:reply("Send /start") end)
--     bot:listen{ port = 8080 }              -- GET/POST /webhook, GET /health
--     whatsapp.loop.run()                     -- until SIGINT/SIGTERM, then gracefully
--
-- ## What happens to a webhook
--
-- `bot:handle(body, headers)` checks the signature and parses the batch (`whatsapp.webhook`),
-- answers at once, and on the next loop turn hands every event to a task of its own. There
-- each event is deduplicated (a message by its id, a status by id + status, through the
-- store's atomic `incr`, within `dedupe` seconds), then:
--
-- * a **message** opens (refreshes) the sender's 24-hour window; a stop word opts the sender
--   out (one confirmation, then routing stops), a start word opts an opted-out sender back in;
--   a message from a user with a pending `ctx:ask` answers it; anything else is routed.
--   Messages of one user (per phone number) are handled one after the other, in arrival
--   order: the next starts when the previous handler returns or waits in `ctx:ask`.
-- * a **status** is recorded against the message sent (`ctx.sent` is what the bot recorded
--   when it sent it; `bot:last_status(wamid)`), wakes a waiting `send_sequence`, and is routed.
-- * an **error** or a **change** is routed.
--
-- ## Routing
--
-- Routes are tried in the order they were registered. The middleware (`bot:use`) runs around
-- the routing of every event. A handler that returns `bot.CONTINUE` lets the next matching
-- route run; any other return value stops the routing. The fallback routes run for a message
-- no route stopped. A handler that raises is logged (a JSON line) and the event ends there.
--
-- ## Sending rules
--
-- Every send made through the bot (context methods, `bot:send`) goes through two local checks
-- before the client is called:
--
-- * **Opt-out**: business-initiated sends (`bot:send`, `bot:send_template`,
--   `ctx:send_template`, `ctx:send_sequence`, and any send from the context of a status,
--   error or change) to an opted-out user fail with `code = "opted_out"`. Replies to a
--   message the user sent (`ctx:reply`, `ctx:react`, `ctx:ask`...) are allowed.
-- * **24-hour window**: a free-form message (anything but a template; reactions included) to a
--   user who has not written in the last 24 hours, by the bot's own record, is replaced by the
--   configured `window.template`, or fails with the error object Meta would give (`code =
--   131047`, `category = "window"`, `local = true`) without calling Meta. A reaction is never
--   replaced. Mark-as-read and typing are not messages and are not checked. When Meta itself
--   answers 131047 (its record differs from the bot's), the template is sent too.
--
-- ## Limits
--
-- A pending `ctx:ask` and a waiting `send_sequence` live in the process that started them: with
-- several processes behind a load balancer, route a user's webhooks to one process (sessions,
-- windows, opt-outs and dedupe are in the store and shared). Changes and errors have no id and
-- are not deduplicated.
-- @module whatsapp.bot
local cjson_safe = require "cjson.safe"
local errors = require "whatsapp.errors"
local loop = require "whatsapp.loop"
local message = require "whatsapp.message"
local store_mod = require "whatsapp.store"

local bot = {}

local type, pairs, ipairs, tostring, setmetatable, error, select =
  type, pairs, ipairs, tostring, setmetatable, error, select
local xpcall, pcall, rawget, rawset, next = xpcall, pcall, rawget, rawset, next
local traceback = debug.traceback
local concat, remove = table.concat, table.remove
local lower, gsub, sub, find, match, rep, char, byte =
  string.lower, string.gsub, string.sub, string.find, string.match, string.rep, string.char, string.byte
local floor = math.floor
local os_time, os_date = os.time, os.date
local unpack = table.unpack or unpack -- luacheck: ignore 143

local json = cjson_safe.new()
json.encode_sparse_array(true)
json.encode_invalid_numbers("null")

local base = loop.core

--- Returned by a handler to let the next matching route run.
bot.CONTINUE = setmetatable({}, { __tostring = function() return "whatsapp.bot.CONTINUE" end })
local CONTINUE = bot.CONTINUE

--- The customer-service window, in seconds.
bot.WINDOW = 24 * 3600

--- Default stop words (matched trimmed and without regard to case).
bot.STOP_WORDS = { "STOP", "STOPALL", "UNSUBSCRIBE", "PARAR", "BAJA", "ARRET", "ARRÊT", "STOPP", "ABMELDEN",
  "DISISCRIVITI", "SAIR", "DESCADASTRAR" }
--- Default start words.
bot.START_WORDS = { "START", "UNSTOP", "ALTA", "INICIAR", "REPRENDRE", "ANMELDEN" }
--- Default confirmation sent once when a user opts out.
bot.OPT_OUT_CONFIRM = "You have been unsubscribed and will get no more messages from us. Reply START to "
  .. "subscribe again."
--- Default confirmation sent when a user opts back in.
bot.OPT_IN_CONFIRM = "You are subscribed again. Reply STOP to unsubscribe."

local MEDIA = { image = true, video = true, audio = true, document = true, sticker = true }
local KINDS = { message = true, status = true, error = true, change = true }
local RANK = { sent = 1, delivered = 2, read = 3, played = 3 }

-- ---- small helpers -------------------------------------------------------------------------

local function trim(s)
  return (gsub(gsub(s, "^%s+", ""), "%s+$", ""))
end

-- Lower case, ASCII and the Latin-1 capitals of UTF-8 (so "ARRÊT" and "arrêt" compare equal).
local function fold(s)
  s = lower(s)
  return (gsub(s, "\195([\128-\158])", function(c)
    if c == "\151" then return nil end
    return "\195" .. char(byte(c) + 32)
  end))
end

local function word_set(list, fname)
  if type(list) ~= "table" then error("whatsapp.bot: " .. fname .. " must be a list of words", 4) end
  local s = {}
  for _, w in ipairs(list) do
    if type(w) ~= "string" then error("whatsapp.bot: " .. fname .. " must be a list of strings", 4) end
    s[fold(trim(w))] = true
  end
  return s
end

-- The key of a user: a phone number in any formatting becomes its digits; a user id stays as is.
local function user_key(to)
  if type(to) ~= "string" then return tostring(to) end
  if find(to, "^[%d%s%+%-%(%)%.]+$") then return (gsub(to, "%D", "")) end
  return to
end

-- A phone number with every digit but the last four hidden.
local function mask(s)
  if type(s) ~= "string" then return s end
  local n = #s
  if n <= 4 then return rep("*", n) end
  return rep("*", n - 4) .. sub(s, -4)
end

local function mask_digits(s)
  return (gsub(s, "%d%d%d%d%d%d%d+", mask))
end

local function escape_pattern(s)
  return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function new_error(code, msg, fields)
  local e = fields or {}
  e.code, e.message = code, msg
  return errors.new(e)
end

--- Wait until `fire` (the function given to `register`) is called, or `timeout` seconds pass;
-- yields in a loop task, blocks in a plain script. `fire` may be called from anywhere, once
-- (later calls return false); waking goes through a zero-delay timer.
-- @tparam function register called at once with `fire`
-- @tparam[opt] number timeout seconds
-- @tparam[opt] string what named in the timeout error
-- @return what fire was called with, or nil and an error object with code "timeout"
local function suspend(register, timeout, what)
  local box, timer, token
  local function fire(...)
    if box then return false end
    box = { n = select("#", ...), ... }
    if timer then timer:cancel(); timer = nil end
    if token then base:timer(0, token) end
    return true
  end
  register(fire)
  if not box and timeout then
    timer = base:timer(timeout, function()
      timer = nil
      fire(nil, new_error("timeout", (what or "wait") .. ": nothing within " .. tostring(timeout) .. " s",
        { category = "timeout", retry = false }))
    end)
  end
  if not box then
    loop.await(function(t)
      token = t
      return true
    end)
  end
  return unpack(box, 1, box.n)
end
bot.suspend = suspend

-- ---- construction --------------------------------------------------------------------------

local Bot = {}
Bot.__index = Bot
Bot.__name = "whatsapp.bot.Bot"
Bot.__tostring = function() return "whatsapp.bot.Bot" end

local function check_client(c, where)
  if type(c) ~= "table" or type(c.send) ~= "function" then
    error("whatsapp.bot: " .. where .. " must be a whatsapp.client", 3)
  end
end

--- Make a bot.
-- @tparam table opts
-- @param opts.client the client of the phone number (`whatsapp.client`)
-- @param opts.clients several: a list of clients, or a table phone_number_id -> client; an
--   event is handled with the client of the number it arrived at
-- @param opts.webhook a `whatsapp.webhook` hook (needed by `handle` and `listen`)
-- @param opts.store a store (see `whatsapp.store`; default `store.memory()`)
-- @param opts.window `false` (no local window check), or `{ template = { name =, language =,
--   components = } | function(to, msg) -> message }`: what to send instead of a free-form
--   message outside the 24-hour window; default: check, and fail with 131047
-- @param opts.opt_out `false`, or `{ stop = {words}, start = {words}, confirm = text,
--   resumed = text }` (defaults `bot.STOP_WORDS`, `bot.START_WORDS`, `bot.OPT_OUT_CONFIRM`,
--   `bot.OPT_IN_CONFIRM`; `confirm = false` / `resumed = false` send nothing)
-- @param opts.dedupe seconds a message or status id is remembered (default 86400; false: off)
-- @param opts.log `function(line)` getting one JSON text per line (default: stderr); false: off
-- @param opts.mask_phones hide all but the last 4 digits of phone numbers in logs (default true)
-- @param opts.secrets extra strings never to be logged (client tokens are always hidden)
-- @param opts.ask_timeout seconds `ctx:ask` waits by default (default 300; false: forever)
-- @param opts.sequence_timeout seconds `send_sequence` waits for each status (default 60)
-- @param opts.session_ttl seconds a session is kept after its last change (default 30 days)
-- @param opts.track_ttl seconds a sent message is remembered for statuses (default 3 days)
-- @param opts.clock wall-clock seconds for the window (default `os.time`)
-- @param opts.prefix prefix of every store key (default "wa:")
-- @param opts.on_error `function(err, ctx)` also called when a handler raises
-- @param opts.spawn `function(fn, ...)` starting a task per event (default `loop.spawn`)
-- @return the bot
function bot.new(opts)
  if type(opts) ~= "table" then error("whatsapp.bot: options table expected", 2) end
  local self = setmetatable({
    clients = {},
    nclients = 0,
    routes = {},
    fallbacks = {},
    middleware = {},
    servers = {},
    _users = {},      -- "<pnid>|<user>" -> { busy, waiters, ask }
    _waiters = {},    -- wamid -> function(status event)
    _asks = {},       -- ask -> true (pending, for close)
    _secrets = {},
  }, Bot)
  if opts.client ~= nil then
    check_client(opts.client, "client")
    self:add_client(opts.client)
  end
  if opts.clients ~= nil then
    if type(opts.clients) ~= "table" then error("whatsapp.bot: clients must be a table", 2) end
    for k, c in pairs(opts.clients) do
      check_client(c, "clients[" .. tostring(k) .. "]")
      self:add_client(c, type(k) == "string" and k or nil)
    end
  end
  local hook = opts.webhook
  if hook ~= nil and (type(hook) ~= "table" or type(hook.parse) ~= "function") then
    error("whatsapp.bot: webhook must be a whatsapp.webhook hook", 2)
  end
  self.webhook = hook
  local st = opts.store
  if st == nil then st = store_mod.memory() end
  if not store_mod.is_store(st) then error("whatsapp.bot: store must have get, set, delete and incr", 2) end
  self.store = st

  local w = opts.window
  if w == nil or w == true then
    self.window = true
  elseif w == false then
    self.window = false
  elseif type(w) == "table" then
    self.window = true
    local t = w.template
    if t ~= nil and type(t) ~= "function" and (type(t) ~= "table" or type(t.name) ~= "string"
        or (t.language == nil and t.values == nil)) then
      error("whatsapp.bot: window.template must be { name =, language = [, components =] } or a function", 2)
    end
    self.window_template = t
  else
    error("whatsapp.bot: window must be a table or a boolean", 2)
  end

  local oo = opts.opt_out
  if oo == false then
    self.opt_out = false
  else
    if oo ~= nil and type(oo) ~= "table" then error("whatsapp.bot: opt_out must be a table or false", 2) end
    oo = oo or {}
    local confirm, resumed = oo.confirm, oo.resumed
    if confirm == nil then confirm = bot.OPT_OUT_CONFIRM end
    if resumed == nil then resumed = bot.OPT_IN_CONFIRM end
    self.opt_out = {
      stop = word_set(oo.stop or bot.STOP_WORDS, "opt_out.stop"),
      start = word_set(oo.start or bot.START_WORDS, "opt_out.start"),
      confirm = confirm, resumed = resumed,
    }
  end

  local function seconds(k, default)
    local v = opts[k]
    if v == nil then return default end
    if v == false then return false end
    if type(v) ~= "number" or v <= 0 then error("whatsapp.bot: " .. k .. " must be a positive number or false", 3) end
    return v
  end
  self.dedupe = seconds("dedupe", 86400)
  self.ask_timeout = seconds("ask_timeout", 300)
  self.sequence_timeout = seconds("sequence_timeout", 60)
  self.session_ttl = seconds("session_ttl", 30 * 86400)
  self.track_ttl = seconds("track_ttl", 3 * 86400)

  local log = opts.log
  if log == nil then
    log = function(line) io.stderr:write(line, "\n") end
  elseif log ~= false and type(log) ~= "function" then
    error("whatsapp.bot: log must be a function or false", 2)
  end
  self.logger = log
  self.mask_phones = opts.mask_phones ~= false
  for _, s in ipairs(opts.secrets or {}) do
    if type(s) == "string" and s ~= "" then self._secrets[#self._secrets + 1] = s end
  end
  if opts.clock ~= nil and type(opts.clock) ~= "function" then error("whatsapp.bot: clock must be a function", 2) end
  self.clock = opts.clock or os_time
  self.prefix = opts.prefix or "wa:"
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error("whatsapp.bot: on_error must be a function", 2)
  end
  self.on_error = opts.on_error
  self.spawn = opts.spawn or loop.spawn
  return self
end

--- Serve one more phone number (or replace the client of one).
-- @param c a `whatsapp.client` with a `phone_number_id`
-- @tparam[opt] string pnid the number it serves (default `c.phone_number_id`)
-- @return the bot
function Bot:add_client(c, pnid)
  check_client(c, "client")
  pnid = pnid or c.phone_number_id
  if type(pnid) ~= "string" then error("bot:add_client: the client has no phone_number_id", 2) end
  if not self.clients[pnid] then self.nclients = self.nclients + 1 end
  self.clients[pnid] = c
  self.default = self.default or c
  local tok = type(c.private) == "table" and c.private.token
  if type(tok) == "string" and tok ~= "" then self._secrets[#self._secrets + 1] = tok end
  return self
end

--- The client of a phone number (default: the first one given).
-- @tparam[opt] string pnid
-- @return the client or nil
function Bot:client(pnid)
  if pnid == nil then return self.default end
  return self.clients[pnid]
end

-- ---- keys ----------------------------------------------------------------------------------

function Bot:_key(kind, a, b)
  if b ~= nil then return self.prefix .. kind .. ":" .. tostring(a or "") .. ":" .. tostring(b) end
  return self.prefix .. kind .. ":" .. tostring(a)
end

-- ---- logs ----------------------------------------------------------------------------------

local PHONE_FIELDS = { from = true, to = true, user = true, recipient_id = true, wa_id = true }

local function scrub(self, s)
  -- Secrets shorter than 8 bytes are not real tokens (test values such as "t"); hiding
  -- every occurrence of them would only mangle the line.
  for _, secret in ipairs(self._secrets) do
    if #secret >= 8 and find(s, secret, 1, true) then s = gsub(s, escape_pattern(secret), "[redacted]") end
  end
  return s
end

--- Write one JSON log line (fields of `rec`, plus `time` and `level`). Phone-number fields
-- (`from`, `to`, `user`, `recipient_id`, `wa_id`) and long digit runs in `error` are masked
-- when `mask_phones`; tokens never appear.
-- @tparam table rec
function Bot:log(rec)
  local out = self.logger
  if not out then return end
  local line = { time = os_date("!%Y-%m-%dT%H:%M:%SZ"), level = rec.level or "info" }
  for k, v in pairs(rec) do
    if type(v) == "string" then
      v = scrub(self, v)
      if self.mask_phones then
        if PHONE_FIELDS[k] then v = mask(v) elseif k == "error" or k == "trace" then v = mask_digits(v) end
      end
    elseif type(v) == "table" or type(v) == "function" or type(v) == "userdata" then
      v = tostring(v)
    end
    line[k] = v
  end
  local text = json.encode(line)
  if not text then return end
  text = scrub(self, text)
  local ok, err = pcall(out, text)
  if not ok then io.stderr:write("whatsapp.bot: log function failed: ", tostring(err), "\n") end
end

-- ---- routes --------------------------------------------------------------------------------

-- (spec, handler) or (handler): the spec is optional.
local function args(a, b, fname)
  if b == nil and type(a) == "function" then return nil, a end
  if type(b) ~= "function" then error("bot:" .. fname .. ": handler function expected", 3) end
  return a, b
end

local function add(self, name, test, handler)
  self.routes[#self.routes + 1] = { name = name, test = test, handler = handler }
  return self
end

-- A matcher for an id-like value: nil (any), a string (exact), a list of strings, a function.
local function id_matcher(spec, fname)
  if spec == nil then return function() return true end end
  if type(spec) == "string" or type(spec) == "number" then
    spec = tostring(spec)
    return function(v) return v == spec end
  end
  if type(spec) == "function" then return spec end
  if type(spec) == "table" then
    local s = {}
    for _, v in ipairs(spec) do s[tostring(v)] = true end
    return function(v) return v ~= nil and s[v] == true end
  end
  error("bot:" .. fname .. ": a string, a list of strings or a function expected", 3)
end

--- Route text messages. `spec` is a string (the whole text, trimmed, compared without regard
-- to case), `{ pattern = "lua pattern" }` (captures in `ctx.matches`), `{ exact = "text" }`
-- (byte for byte), a function `(text, ctx) -> truthy`, or absent (every text).
-- @param[opt] spec
-- @tparam function handler `function(ctx)`
-- @return the bot
function Bot:text(spec, handler)
  spec, handler = args(spec, handler, "text")
  local test
  if spec == nil then
    test = function() return true end
  elseif type(spec) == "string" then
    local want = fold(trim(spec))
    test = function(text) return fold(trim(text)) == want end
  elseif type(spec) == "function" then
    test = spec
  elseif type(spec) == "table" and type(spec.pattern) == "string" then
    local p = spec.pattern
    test = function(text, ctx)
      local caps = { match(text, p) }
      if caps[1] == nil then return false end
      ctx.matches = caps
      return true
    end
  elseif type(spec) == "table" and type(spec.exact) == "string" then
    local want = spec.exact
    test = function(text) return text == want end
  else
    error("bot:text: a string, { pattern = }, { exact = } or a function expected", 2)
  end
  return add(self, "text", function(ev, ctx)
    return ev.kind == "message" and ev.type == "text" and type(ev.text) == "string" and test(ev.text, ctx)
  end, handler)
end

--- Route text messages matching a Lua pattern (`bot:text{ pattern = p }`).
-- @tparam string pattern
-- @tparam function handler
-- @return the bot
function Bot:pattern(pattern, handler)
  if type(pattern) ~= "string" then error("bot:pattern: pattern string expected", 2) end
  return self:text({ pattern = pattern }, handler)
end

--- Route a command: a text starting with `/name` (any case) followed by a space or the end.
-- The context gets `command` (the name, lower case), `args` (the rest, trimmed) and `argv`
-- (the rest split at spaces). Without a name, every command matches.
-- @tparam[opt] string name without the slash
-- @tparam function handler
-- @return the bot
function Bot:command(name, handler)
  name, handler = args(name, handler, "command")
  if name ~= nil and type(name) ~= "string" then error("bot:command: name must be a string", 2) end
  local want = name and lower((gsub(name, "^/", "")))
  return add(self, "command", function(ev, ctx)
    if ev.kind ~= "message" or ev.type ~= "text" or type(ev.text) ~= "string" then return false end
    local cmd, rest = match(trim(ev.text), "^/([%w_%-]+)(.*)$")
    if not cmd then return false end
    if rest ~= "" and not find(rest, "^%s") then return false end
    cmd = lower(cmd)
    if want and cmd ~= want then return false end
    ctx.command, ctx.args = cmd, trim(rest)
    local argv = {}
    for w in ctx.args:gmatch("%S+") do argv[#argv + 1] = w end
    ctx.argv = argv
    return true
  end, handler)
end

local function reply_route(self, fname, types, spec, handler)
  spec, handler = args(spec, handler, fname)
  local test = id_matcher(spec, fname)
  return add(self, fname, function(ev)
    return ev.kind == "message" and types[ev.type] == true and type(ev.reply) == "table" and test(ev.reply.id)
  end, handler)
end

--- Route a reply button tap by the button's id (`button_reply`).
-- @param[opt] id a string, a list of strings, or a function(id)
-- @tparam function handler
-- @return the bot
function Bot:button(id, handler)
  return reply_route(self, "button", { button_reply = true }, id, handler)
end

--- Route a list row choice by the row's id (`list_reply`).
-- @param[opt] id
-- @tparam function handler
-- @return the bot
function Bot:list(id, handler)
  return reply_route(self, "list", { list_reply = true }, id, handler)
end

--- Route a button or list reply by its id.
-- @param[opt] id
-- @tparam function handler
-- @return the bot
function Bot:reply_id(id, handler)
  return reply_route(self, "reply_id", { button_reply = true, list_reply = true }, id, handler)
end

--- Route a template quick-reply button (`type = "button"`) by its payload.
-- @param[opt] payload
-- @tparam function handler
-- @return the bot
function Bot:payload(payload, handler)
  payload, handler = args(payload, handler, "payload")
  local test = id_matcher(payload, "payload")
  return add(self, "payload", function(ev)
    return ev.kind == "message" and ev.type == "button" and test(ev.payload)
  end, handler)
end

--- Route by type: a message type (`"image"`, `"location"`, `"contacts"`, `"reaction"`,
-- `"order"`, `"system"`, `"flow_reply"`, `"unsupported"`...), `"media"` (image, video, audio,
-- document, sticker), or a kind (`"message"`, `"status"`, `"error"`, `"change"`: every event
-- of that kind). A list of these matches any of them.
-- @param what
-- @tparam function handler
-- @return the bot
function Bot:on(what, handler)
  if type(handler) ~= "function" then error("bot:on: handler function expected", 2) end
  if type(what) ~= "string" and type(what) ~= "table" then error("bot:on: a type or a list of types expected", 2) end
  local list = type(what) == "table" and what or { what }
  local kinds, types, media = {}, {}, false
  for _, t in ipairs(list) do
    if type(t) ~= "string" then error("bot:on: type string expected", 2) end
    if KINDS[t] then kinds[t] = true elseif t == "media" then media = true else types[t] = true end
  end
  return add(self, "on:" .. concat(list, ","), function(ev)
    if kinds[ev.kind] then return true end
    if ev.kind ~= "message" then return false end
    return types[ev.type] == true or (media and MEDIA[ev.type] == true)
  end, handler)
end

--- Route statuses: one status (`"sent"`, `"delivered"`, `"read"`, `"failed"`...), a list, or
-- every status. `ctx.sent` is the record of the message sent through the bot, when known.
-- @param[opt] status
-- @tparam function handler
-- @return the bot
function Bot:status(status, handler)
  status, handler = args(status, handler, "status")
  local test = id_matcher(status, "status")
  return add(self, "status", function(ev)
    return ev.kind == "status" and test(ev.status)
  end, handler)
end

--- Route failed statuses, by error code (a number, a list of numbers) or all of them.
-- `ctx.error` is the first error object of the status.
-- @param[opt] code
-- @tparam function handler
-- @return the bot
function Bot:failed(code, handler)
  code, handler = args(code, handler, "failed")
  local test = id_matcher(code, "failed")
  return add(self, "failed", function(ev, ctx)
    if ev.kind ~= "status" or ev.status ~= "failed" then return false end
    local errs = type(ev.errors) == "table" and ev.errors or {}
    if code == nil then
      ctx.error = errs[1]
      return true
    end
    for _, e in ipairs(errs) do
      if type(e) == "table" and e.code ~= nil and test(tostring(errors.int(e.code))) then
        ctx.error = e
        return true
      end
    end
    return false
  end, handler)
end

--- Route the errors Meta reports in a webhook (`kind = "error"`), by code or all of them.
-- `ctx.error` is the error object.
-- @param[opt] code
-- @tparam function handler
-- @return the bot
function Bot:error(code, handler)
  code, handler = args(code, handler, "error")
  local test = id_matcher(code, "error")
  return add(self, "error", function(ev, ctx)
    if ev.kind ~= "error" then return false end
    if code ~= nil and not test(tostring(errors.int(ev.code))) then return false end
    ctx.error = ev.error
    return true
  end, handler)
end

--- Route changes (template status updates, quality, account updates...) by field name
-- (`"message_template_status_update"`...), a list of them, or all.
-- @param[opt] field
-- @tparam function handler
-- @return the bot
function Bot:change(field, handler)
  field, handler = args(field, handler, "change")
  local test = id_matcher(field, "change")
  return add(self, "change", function(ev)
    return ev.kind == "change" and test(ev.field or ev.type)
  end, handler)
end

--- Route every message that no route stopped.
-- @tparam function handler
-- @return the bot
function Bot:fallback(handler)
  if type(handler) ~= "function" then error("bot:fallback: handler function expected", 2) end
  self.fallbacks[#self.fallbacks + 1] = { name = "fallback", handler = handler }
  return self
end

--- Add middleware: `function(ctx, next)`, called around the routing of every event in the
-- order added. Calling `next()` runs the rest (and returns whether a route stopped the
-- routing); not calling it stops the event there.
-- @tparam function fn
-- @return the bot
function Bot:use(fn)
  if type(fn) ~= "function" then error("bot:use: function expected", 2) end
  self.middleware[#self.middleware + 1] = fn
  return self
end

-- ---- per-user order and asks ----------------------------------------------------------------

function Bot:_user(pnid, user)
  local key = tostring(pnid or "") .. "|" .. tostring(user)
  local u = self._users[key]
  if not u then
    u = { busy = false, waiters = {} }
    self._users[key] = u
  end
  return key, u
end

function Bot:_tidy(key, u)
  if not u.busy and not u.ask and #u.waiters == 0 and self._users[key] == u then self._users[key] = nil end
end

-- Take the user's turn; waits (yields) while another handler of theirs runs.
local function acquire(u)
  if not u.busy then
    u.busy = true
    return
  end
  -- The turn is handed over directly by _release (FIFO).
  suspend(function(fire) u.waiters[#u.waiters + 1] = fire end)
end

function Bot:_release(key, u)
  local w = remove(u.waiters, 1)
  if w then return w() end
  u.busy = false
  self:_tidy(key, u)
end

--- Number of users with a handler running, waiting or asking (for tests and metrics).
-- @treturn integer
function Bot:active_users()
  local n = 0
  for _ in pairs(self._users) do n = n + 1 end
  return n
end

-- ---- the context ---------------------------------------------------------------------------

local Context = {}
Context.__name = "whatsapp.bot.Context"

local function load_session(ctx)
  local self = ctx.bot
  local s
  if ctx.from then
    local v = self.store:get(self:_key("session", ctx.phone_number_id, ctx.from))
    if type(v) == "table" then s = v end
  end
  s = s or {}
  rawset(ctx, "session", s)
  rawset(ctx, "_session_json", json.encode(s) or "")
  rawset(ctx, "_session_had", next(s) ~= nil)
  return s
end

Context.__index = function(ctx, k)
  local m = Context[k]
  if m ~= nil then return m end
  if k == "session" then return load_session(ctx) end
  return nil
end

-- Save the session when it was loaded and changed.
local function save_session(ctx)
  local s = rawget(ctx, "session")
  if s == nil or not ctx.from then return true end
  local self = ctx.bot
  if type(s) ~= "table" then
    error("ctx.session must stay a table", 0)
  end
  local text, jerr = json.encode(s)
  if not text then error("ctx.session cannot be saved: " .. tostring(jerr), 0) end
  if text == ctx._session_json then return true end
  local key = self:_key("session", ctx.phone_number_id, ctx.from)
  local ok, err
  if next(s) == nil then
    ok, err = self.store:delete(key)
  else
    ok, err = self.store:set(key, s, self.session_ttl or nil)
  end
  if not ok then
    self:log{ level = "error", msg = "session not saved", error = tostring(err), user = ctx.from }
    return nil, err
  end
  rawset(ctx, "_session_json", text)
  return true
end

local function new_context(self, ev, client, pnid)
  local from
  if ev.kind == "message" then
    from = ev.from
  elseif ev.kind == "status" then
    from = ev.recipient_id
  end
  return setmetatable({
    bot = self, event = ev, client = client, phone_number_id = pnid,
    kind = ev.kind, type = ev.type, id = ev.id, text = ev.text,
    from = from and user_key(from) or nil,
    initiated = ev.kind == "message" and "reply" or "business",
  }, Context)
end

-- A message table for `to`: a string is a text; a table is used as given, with `to` and
-- `messaging_product` filled in when missing.
local function as_message(what, to, fname)
  if type(what) == "string" then return message.text(to, what) end
  if type(what) ~= "table" then error(fname .. ": text or message table expected", 3) end
  if what.to == nil and what.recipient == nil then
    local m = {}
    for k, v in pairs(what) do m[k] = v end
    m.to = to
    if m.messaging_product == nil then m.messaging_product = "whatsapp" end
    return m
  end
  return what
end

local function need_user(ctx, fname)
  if not ctx.from then error("ctx:" .. fname .. ": this event has no user", 3) end
end

--- Reply to the user: a text, or a message table (its `to` is filled in when missing).
-- @param what string or message table
-- @tparam[opt] table opts `quote = true` quotes the message being handled; text options
--   (`preview_url`)
-- @return `{ id, wa_id, ... }` or nil and an error object
function Context:reply(what, opts)
  need_user(self, "reply")
  local msg
  if type(what) == "string" then
    local o
    if opts then
      o = {}
      for k, v in pairs(opts) do if k ~= "quote" then o[k] = v end end
    end
    msg = message.text(self.from, what, o)
  else
    msg = as_message(what, self.from, "ctx:reply")
  end
  if opts and opts.quote and self.id and msg.context == nil and msg.type ~= "reaction" then
    msg.context = { message_id = self.id }
  end
  return self.bot:_send(self.phone_number_id, self.client, msg, self.initiated)
end

--- Reply with buttons (`message.buttons`).
-- @tparam string body
-- @tparam table buttons `{ {id=, title=}, ... }` or strings
-- @tparam[opt] table opts `header`, `footer`
-- @return as `reply`
function Context:reply_buttons(body, buttons, opts)
  need_user(self, "reply_buttons")
  return self:reply(message.buttons(self.from, body, buttons, opts))
end

--- Reply with a list (`message.list`).
-- @tparam string body
-- @tparam string label the button that opens the list
-- @tparam table sections
-- @tparam[opt] table opts
-- @return as `reply`
function Context:reply_list(body, label, sections, opts)
  need_user(self, "reply_list")
  return self:reply(message.list(self.from, body, label, sections, opts))
end

--- React to the message being handled (an empty emoji removes the reaction).
-- @tparam string emoji
-- @return as `reply`
function Context:react(emoji)
  need_user(self, "react")
  if not self.id then error("ctx:react: this event has no message id", 2) end
  return self.bot:_send(self.phone_number_id, self.client, message.reaction(self.from, self.id, emoji or ""),
    self.initiated)
end

local function no_client(pnid)
  return new_error("no_client", "no client serves phone number " .. tostring(pnid), { category = "param",
    retry = false })
end

--- Mark the message being handled as read.
-- @return `{ success = true }` or nil, err
function Context:mark_read()
  if not self.client then return nil, no_client(self.phone_number_id) end
  return self.client:mark_read(self.id)
end

--- Mark the message as read and show the typing indicator.
-- @return `{ success = true }` or nil, err
function Context:typing()
  if not self.client then return nil, no_client(self.phone_number_id) end
  return self.client:typing(self.id)
end

--- Send the user a template (a business-initiated send: refused when they opted out).
-- With the client's template registry, `language_or_values` may be the named values.
-- @tparam string name
-- @param language_or_values a language code, or values for the registry
-- @param[opt] components
-- @param[opt] opts
-- @return as `reply`
function Context:send_template(name, language_or_values, components, opts)
  need_user(self, "send_template")
  return self.bot:send_template(self.from, name, language_or_values, components, opts,
    self.phone_number_id)
end

--- Download the media of the message being handled to a file.
-- @tparam string path
-- @return `{ path, size, sha256, mime_type }` or nil, err
function Context:download_media(path)
  local media = self.event.media
  if type(media) ~= "table" or not media.id then
    return nil, new_error("no_media", "this event has no media", { category = "media", retry = false })
  end
  if not self.client then return nil, no_client(self.phone_number_id) end
  return self.client:download(media, path)
end

--- Save `ctx.session` now (it is saved after the handler anyway).
-- @return true or nil, err
function Context:save()
  return save_session(self)
end

--- Ask the user and wait for their next message (yields; other users go on being served).
-- @param[opt] prompt a text or message sent first (nil: send nothing)
-- @tparam[opt] table opts `timeout` (seconds; default the bot's `ask_timeout`; false: none)
-- @return the event answering (use `.text`, `.reply.id`, `.media`...), or nil and an error
--   object: code `"timeout"`, `"opted_out"` (they sent a stop word), `"stopped"` (the bot was
--   closed), `"ask_pending"` (this user already has a question pending), or the send's error
function Context:ask(prompt, opts)
  need_user(self, "ask")
  if opts ~= nil and type(opts) ~= "table" then error("ctx:ask: opts must be a table", 2) end
  opts = opts or {}
  local b = self.bot
  local key, u = b:_user(self.phone_number_id, self.from)
  if u.ask then
    b:_tidy(key, u)
    return nil, new_error("ask_pending", "this user already has a question pending", { retry = false })
  end
  if prompt ~= nil then
    local sent, err = self:reply(prompt)
    if not sent then
      b:_tidy(key, u)
      return nil, err
    end
  end
  save_session(self)
  local timeout = opts.timeout
  if timeout == nil then timeout = b.ask_timeout end
  if timeout ~= false and (type(timeout) ~= "number" or timeout <= 0) then
    error("ctx:ask: timeout must be a positive number or false", 2)
  end
  local ask = {}
  u.ask = ask
  b._asks[ask] = true
  local held = rawget(self, "_locked")
  if held then
    rawset(self, "_locked", false)
    b:_release(key, u)
  end
  local ev, err = suspend(function(fire) ask.fire = fire end, timeout or nil, "ask")
  b._asks[ask] = nil
  if ev and ask.handed then
    -- The answering event handed its hold on the user over to this handler.
    rawset(self, "_locked", true)
    return ev
  end
  if u.ask == ask then u.ask = nil end
  if ask.handed then rawset(self, "_locked", true) elseif held then
    acquire(u)
    rawset(self, "_locked", true)
  else
    b:_tidy(key, u)
  end
  return ev, err
end

--- Send messages one after the other, each once the previous one has been delivered.
-- A string is a text to the user; a table is a message (its `to` filled in when missing).
-- These are business-initiated sends.
-- @tparam table list the messages
-- @tparam[opt] table opts `wait_for` (`"delivered"` (default), `"read"` or `"sent"`), `timeout`
--   (seconds per message, default the bot's `sequence_timeout`), `wait_last` (also wait for
--   the last message's status)
-- @return the list of send results, or nil, an error object (the send's error, the failed
--   status's error, or code `"timeout"`) and the results so far
function Context:send_sequence(list, opts)
  need_user(self, "send_sequence")
  return self.bot:send_sequence(self.from, list, opts, self.phone_number_id)
end

-- ---- sending ---------------------------------------------------------------------------------

local function window_error()
  return new_error(131047, "Re-engagement message", {
    title = "Re-engagement message", category = "window", retry = false, ["local"] = true,
    details = "More than 24 hours have passed since the recipient last replied to the sender number; "
      .. "not sent (checked locally). Send a template instead.",
  })
end

--- Whether a user wrote to a phone number in the last 24 hours (by the bot's record).
-- @tparam string user
-- @tparam[opt] string pnid (default: the first client's number)
-- @treturn boolean
function Bot:in_window(user, pnid)
  pnid = pnid or (self.default and self.default.phone_number_id)
  local t = self.store:get(self:_key("window", pnid, user_key(user)))
  return type(t) == "number" and self.clock() - t < bot.WINDOW
end

--- Whether a user opted out on a phone number.
-- @tparam string user
-- @tparam[opt] string pnid
-- @treturn boolean
function Bot:opted_out(user, pnid)
  pnid = pnid or (self.default and self.default.phone_number_id)
  return self.store:get(self:_key("optout", pnid, user_key(user))) ~= nil
end

--- Mark a user opted out (true) or back in (false), without sending anything.
-- @tparam string user
-- @tparam boolean out
-- @tparam[opt] string pnid
function Bot:set_opted_out(user, out, pnid)
  pnid = pnid or (self.default and self.default.phone_number_id)
  local key = self:_key("optout", pnid, user_key(user))
  if out then return self.store:set(key, { at = self.clock() }) end
  return self.store:delete(key)
end

local function fallback_template(self, to, msg)
  local t = self.window_template
  if type(t) == "function" then return t(to, msg) end
  local c = self:client()
  local reg = c and c.templates
  if t.values ~= nil and reg and reg.get and reg:get(t.name) then
    return reg:build(to, t.name, t.values)
  end
  return message.template(to, t.name, t.language, t.components)
end

-- The one way out: opt-out and window checks, the client's send, and the record kept for
-- statuses. `how` is "reply" (an answer to the user), "business" (business-initiated) or
-- "confirm" (the opt-out confirmations).
function Bot:_send(pnid, client, msg, how)
  if not client then return nil, no_client(pnid) end
  pnid = pnid or client.phone_number_id
  local to = msg.to or msg.recipient
  local user = user_key(to)
  if how == "business" and self.opt_out and self:opted_out(user, pnid) then
    local err = new_error("opted_out", "the recipient opted out of messages from this number", {
      category = "recipient", retry = false, ["local"] = true })
    self:log{ level = "warn", msg = "send refused", code = "opted_out", to = user, pnid = pnid }
    return nil, err
  end
  local fallback = false
  if self.window and msg.type ~= "template" and msg.status == nil and not self:in_window(user, pnid) then
    if self.window_template and msg.type ~= "reaction" then
      local tm, terr = fallback_template(self, to, msg)
      if not tm then return nil, terr end
      msg, fallback = tm, true
    else
      self:log{ level = "warn", msg = "send refused", code = 131047, to = user, pnid = pnid, type = msg.type }
      return nil, window_error()
    end
  end
  local sent, err = client:send(msg)
  if not sent and err and err.code == 131047 and not fallback and self.window_template
      and msg.type ~= "template" and msg.type ~= "reaction" then
    local tm, terr = fallback_template(self, to, msg)
    if not tm then return nil, terr end
    msg, fallback = tm, true
    sent, err = client:send(msg)
  end
  if not sent then
    self:log{ level = "warn", msg = "send failed", code = err and tostring(err.code), error = tostring(err),
      to = user, pnid = pnid, type = msg.type }
    return nil, err
  end
  if fallback then sent.fallback = true end
  if self.track_ttl then
    self.store:set(self:_key("sent", sent.id), {
      id = sent.id, to = user, type = msg.type, pnid = pnid, time = self.clock(), fallback = fallback or nil,
      template = msg.type == "template" and msg.template and msg.template.name or nil,
    }, self.track_ttl)
  end
  return sent
end

local function pick_client(self, pnid)
  if pnid == nil then return self.default, self.default and self.default.phone_number_id end
  return self.clients[pnid], pnid
end

--- Send a business-initiated message (refused when the user opted out; window rules apply).
-- @tparam string to
-- @param what a text or a message table
-- @tparam[opt] table opts `phone_number_id` (which number sends; default the first client's)
-- @return `{ id, wa_id, ..., fallback }` or nil and an error object
function Bot:send(to, what, opts)
  if type(to) ~= "string" then error("bot:send: recipient string expected", 2) end
  local client, pnid = pick_client(self, opts and opts.phone_number_id)
  return self:_send(pnid, client, as_message(what, to, "bot:send"), "business")
end

--- Send a template (business-initiated).
-- @tparam string to
-- @tparam string name
-- @param language_or_values a language code, or values for the client's template registry
-- @param[opt] components
-- @param[opt] opts message options
-- @tparam[opt] string pnid which number sends
-- @return as `send`
function Bot:send_template(to, name, language_or_values, components, opts, pnid)
  local client
  client, pnid = pick_client(self, pnid)
  if not client then return nil, no_client(pnid) end
  local msg, err
  local reg = client.templates
  if reg and type(language_or_values) ~= "string" and reg.get and reg:get(name) then
    msg, err = reg:build(to, name, language_or_values or {}, components)
    if not msg then return nil, err end
  else
    msg = message.template(to, name, language_or_values, components, opts)
  end
  return self:_send(pnid, client, msg, "business")
end

--- The most advanced status seen for a message sent (`"sent"`, `"delivered"`, `"read"`,
-- `"failed"`), or nil.
-- @tparam string wamid
-- @treturn string|nil
function Bot:last_status(wamid)
  local v = self.store:get(self:_key("status", wamid))
  if type(v) == "table" then return v.status end
  return nil
end

-- The status record of a wamid: { status, errors }.
local function status_record(self, wamid)
  local v = self.store:get(self:_key("status", wamid))
  return type(v) == "table" and v or nil
end

local function failed_error(rec_or_ev, wamid)
  local e = type(rec_or_ev.errors) == "table" and rec_or_ev.errors[1] or nil
  if type(e) == "table" and e.code ~= nil then
    if not errors.is(e) then e = errors.new(e) end
    return e
  end
  return new_error("failed", "message " .. tostring(wamid) .. " failed", { retry = false })
end

-- Wait (yielding) until the status of `wamid` reaches `want` (a rank); true, or nil, err.
function Bot:_await_status(wamid, want, timeout)
  local rec = status_record(self, wamid)
  if rec then
    if rec.status == "failed" then return nil, failed_error(rec, wamid) end
    if (RANK[rec.status] or 0) >= want then return true end
  end
  local ev, err = suspend(function(fire)
    self._waiters[wamid] = function(status_ev)
      if status_ev.status == "failed" or (RANK[status_ev.status] or 0) >= want then fire(status_ev) end
    end
  end, timeout, "status of " .. wamid)
  self._waiters[wamid] = nil
  if not ev then return nil, err end
  if ev.status == "failed" then return nil, failed_error(ev, wamid) end
  return true
end

--- Send messages to a user one after the other, each once the previous one was delivered
-- (see `ctx:send_sequence`).
-- @tparam string to
-- @tparam table list
-- @tparam[opt] table opts `wait_for`, `timeout`, `wait_last`
-- @tparam[opt] string pnid which number sends
-- @return the results, or nil, err, the results so far
function Bot:send_sequence(to, list, opts, pnid)
  if type(list) ~= "table" then error("send_sequence: list of messages expected", 2) end
  opts = opts or {}
  local want = RANK[opts.wait_for or "delivered"]
  if not want then error("send_sequence: wait_for must be sent, delivered or read", 2) end
  local timeout = opts.timeout or self.sequence_timeout or nil
  local client
  client, pnid = pick_client(self, pnid)
  local results = {}
  for i, item in ipairs(list) do
    local sent, err = self:_send(pnid, client, as_message(item, to, "send_sequence"), "business")
    if not sent then return nil, err, results end
    results[i] = sent
    if i < #list or opts.wait_last then
      local ok, werr = self:_await_status(sent.id, want, timeout)
      if not ok then return nil, werr, results end
    end
  end
  return results
end

-- ---- dispatch --------------------------------------------------------------------------------

local function handler_failed(self, ctx, err)
  local text = tostring(err)
  local first = match(text, "^[^\n]*") or text
  self:log{ level = "error", msg = "handler error", error = first, trace = sub(text, #first + 2, #first + 2000),
    kind = ctx.kind, type = ctx.type, id = ctx.id, user = ctx.from, pnid = ctx.phone_number_id,
    route = ctx.route }
  if self.on_error then
    local ok, e = pcall(self.on_error, err, ctx)
    if not ok then self:log{ level = "error", msg = "on_error failed", error = tostring(e) } end
  end
end

-- Run the routes for ctx (inside the middleware). Returns whether a route stopped the routing.
local function run_routes(self, ctx)
  local ev = ctx.event
  local routes = self.routes
  for i = 1, #routes do
    local r = routes[i]
    if r.test(ev, ctx) then
      ctx.route = r.name
      ctx.handled = (ctx.handled or 0) + 1
      if r.handler(ctx) ~= CONTINUE then return true end
    end
  end
  if ev.kind == "message" then
    for _, r in ipairs(self.fallbacks) do
      ctx.route = r.name
      ctx.handled = (ctx.handled or 0) + 1
      if r.handler(ctx) ~= CONTINUE then return true end
    end
  end
  return false
end

local function route(self, ctx)
  local mw = self.middleware
  local n = #mw
  if n == 0 then return run_routes(self, ctx) end
  local function step(i)
    if i > n then return run_routes(self, ctx) end
    local called, result = false, nil
    mw[i](ctx, function()
      if called then return result end
      called = true
      result = step(i + 1)
      return result
    end)
    return result
  end
  return step(1)
end

-- Route with errors caught; then the session is saved.
local function routed(self, ctx)
  local ok, err = xpcall(route, traceback, self, ctx)
  if not ok then handler_failed(self, ctx, err) end
  local sok, serr = pcall(save_session, ctx)
  if not sok then handler_failed(self, ctx, serr) end
  return ok
end

function Bot:_duplicate(ev, pnid)
  if not self.dedupe or not ev.id then return false end
  local key
  if ev.kind == "message" then
    key = self:_key("seen", pnid, ev.id)
  elseif ev.kind == "status" then
    key = self:_key("seen", ev.id, ev.status)
  else
    return false
  end
  local n, err = self.store:incr(key, 1, self.dedupe)
  if not n then
    self:log{ level = "warn", msg = "dedupe unavailable", error = tostring(err) }
    return false
  end
  return n > 1
end

-- A message: opt-out words, pending asks, then the routes; one at a time per user.
function Bot:_message(ctx)
  local ev = ctx.event
  local pnid, user = ctx.phone_number_id, ctx.from
  if user then
    self.store:set(self:_key("window", pnid, user), self.clock(), bot.WINDOW + 3600)
  end
  if not user then
    routed(self, ctx)
    return "routed"
  end
  local key, u = self:_user(pnid, user)
  acquire(u)
  rawset(ctx, "_locked", true)
  local outcome
  local ok, err = xpcall(function()
    local oo = self.opt_out
    local word = oo and ev.type == "text" and type(ev.text) == "string" and fold(trim(ev.text))
    if word and oo.stop[word] then
      outcome = "opt_out"
      if not self:opted_out(user, pnid) then
        self:set_opted_out(user, true, pnid)
        if oo.confirm then self:_send(pnid, ctx.client, message.text(user, oo.confirm), "confirm") end
        self:log{ level = "info", msg = "opted out", user = user, pnid = pnid }
      end
      if u.ask then
        local a = u.ask
        u.ask = nil
        a.fire(nil, new_error("opted_out", "the user opted out while a question was pending",
          { retry = false }))
      end
      return
    end
    if word and oo.start[word] and self:opted_out(user, pnid) then
      outcome = "opt_in"
      self:set_opted_out(user, false, pnid)
      if oo.resumed then self:_send(pnid, ctx.client, message.text(user, oo.resumed), "confirm") end
      self:log{ level = "info", msg = "opted in", user = user, pnid = pnid }
      return
    end
    if u.ask then
      outcome = "answer"
      local a = u.ask
      u.ask = nil
      a.handed = true
      rawset(ctx, "_locked", false) -- the asker holds the turn now
      a.fire(ev)
      return
    end
    outcome = "routed"
    routed(self, ctx)
  end, traceback)
  if not ok then handler_failed(self, ctx, err) end
  if rawget(ctx, "_locked") then
    rawset(ctx, "_locked", false)
    self:_release(key, u)
  end
  return outcome
end

-- A status: recorded, correlated with the message sent, waiters woken, then routed.
function Bot:_status(ctx)
  local ev = ctx.event
  local id = ev.id
  if id then
    local key = self:_key("status", id)
    local rec = self.store:get(key)
    local old = type(rec) == "table" and rec.status or nil
    local newer = ev.status == "failed" or (old ~= "failed" and (RANK[ev.status] or 0) > (RANK[old] or 0))
    if newer and self.track_ttl then
      local errs
      if ev.status == "failed" and type(ev.errors) == "table" then
        errs = {}
        for i, e in ipairs(ev.errors) do
          errs[i] = { code = e.code, title = e.title, message = e.message, details = e.details }
        end
      end
      self.store:set(key, { status = ev.status, errors = errs }, self.track_ttl)
    end
    ctx.sent = self.store:get(self:_key("sent", id))
    local w = self._waiters[id]
    if w then w(ev) end
  end
  if ev.status == "failed" and type(ev.errors) == "table" then ctx.error = ev.errors[1] end
  routed(self, ctx)
  return "routed"
end

--- Handle one event now, in the calling task (dedupe, then as described in the module).
-- @tparam table ev an event from `whatsapp.webhook`
-- @treturn string what happened: "duplicate", "routed", "answer", "opt_out", "opt_in"
function Bot:process(ev)
  local t0 = loop.now()
  local pnid = ev.phone_number_id
  local client
  if pnid ~= nil then client = self.clients[pnid] else client, pnid = pick_client(self, nil) end
  local ctx = new_context(self, ev, client, pnid)
  if self:_duplicate(ev, pnid) then
    self:log{ level = "info", msg = "duplicate", kind = ev.kind, type = ev.type, id = ev.id, pnid = pnid }
    return "duplicate"
  end
  if client == nil and ev.phone_number_id ~= nil then
    self:log{ level = "warn", msg = "no client for this phone number", pnid = pnid, kind = ev.kind }
  end
  local outcome
  if ev.kind == "message" then
    outcome = self:_message(ctx)
  elseif ev.kind == "status" then
    outcome = self:_status(ctx)
  else
    if ev.kind == "error" then ctx.error = ev.error end
    routed(self, ctx)
    outcome = "routed"
  end
  if rawget(ctx, "_locked") then
    -- A handler of a status asked the user, and the answer handed it the user's turn.
    rawset(ctx, "_locked", false)
    self:_release(self:_user(ctx.phone_number_id, ctx.from))
  end
  self:log{
    level = "info", msg = "event", kind = ev.kind, type = ev.type, id = ev.id, pnid = pnid, user = ctx.from,
    field = ev.kind == "change" and ev.field or nil, outcome = outcome, handled = ctx.handled or 0,
    ms = floor((loop.now() - t0) * 1000 + 0.5),
  }
  return outcome
end

local function process_safely(self, ev)
  local ok, err = xpcall(self.process, traceback, self, ev)
  if not ok then
    self:log{ level = "error", msg = "event failed", error = match(tostring(err), "^[^\n]*"),
      kind = type(ev) == "table" and ev.kind or nil }
  end
end

--- Handle a list of events, each in a loop task of its own.
-- @tparam table events
function Bot:dispatch(events)
  if type(events) ~= "table" then error("bot:dispatch: list of events expected", 2) end
  for i = 1, #events do
    self.spawn(process_safely, self, events[i])
  end
end

-- ---- hosting ---------------------------------------------------------------------------------

--- Answer Meta's GET verification handshake.
-- @tparam table query decoded query string
-- @treturn integer status
-- @treturn string body
function Bot:verify(query)
  if not self.webhook then error("bot:verify: the bot has no webhook", 2) end
  return self.webhook:verify(query)
end

local REASON = { [200] = "ok", [400] = "bad request", [401] = "invalid signature", [413] = "payload too large" }

--- Handle a webhook POST: verify and parse it, schedule its events (each in its own task, on
-- the next loop turn), and answer at once.
-- @tparam string body the raw body
-- @tparam table headers the request headers
-- @treturn integer status (200, or 400 / 401 / 413)
-- @treturn string a short body
function Bot:handle(body, headers)
  if not self.webhook then error("bot:handle: the bot has no webhook", 2) end
  local events, err = self.webhook:parse(body, headers or {})
  if not events then
    self:log{ level = "warn", msg = "webhook rejected", code = tostring(err.code), status = err.status,
      error = err.message }
    local st = err.status or 400
    return st, REASON[st] or "bad request"
  end
  if #events > 0 then
    loop.timer(0, function() self:dispatch(events) end)
  end
  return 200, "ok"
end

local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }

--- Listen for webhooks on the runtime's listener (`whatsapp.server`).
-- @tparam[opt] table opts `host` ("127.0.0.1"), `port` (0 picks one), `path` ("/webhook"),
--   `health` ("/health", answered `200 {"status":"ok"}`; false: none), `max_body`
-- @return the server (`srv:port()`, `srv:drain()`, `srv:close()`), or nil and an error object
function Bot:listen(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bot:listen: options table expected", 2) end
  if not self.webhook then error("bot:listen: the bot has no webhook", 2) end
  local server = require "whatsapp.server"
  local path = opts.path or "/webhook"
  local health = opts.health
  if health == nil then health = "/health" end
  local srv, err = server.listen{
    host = opts.host or "127.0.0.1", port = opts.port or 0, health = health or nil,
    max_body = opts.max_body or ((self.webhook.max_body or 3145728) + 4096),
    handler = function(req)
      if req.path ~= path then return 404, TEXT, "not found\n" end
      if req.method == "GET" then
        local st, b = self:verify(req.query or {})
        return st, TEXT, b
      elseif req.method == "POST" then
        local st, b = self:handle(req.body or "", req.headers)
        return st, TEXT, b
      end
      return 405, { ["Content-Type"] = "text/plain", Allow = "GET, POST" }, "method not allowed\n"
    end,
  }
  if not srv then
    return nil, new_error("listen", "bot:listen: " .. tostring(err), { retry = false })
  end
  self.servers[#self.servers + 1] = srv
  if not self._unstop then
    self._unstop = loop.on_stop(function() self:stop() end)
  end
  self:log{ level = "info", msg = "listening", port = srv:port(), path = path }
  return srv
end

-- Give every pending question its answer: nil and `code`.
local function end_asks(self, code, msg)
  local list = {}
  for a in pairs(self._asks) do list[#list + 1] = a end
  for _, a in ipairs(list) do
    self._asks[a] = nil
    if a.fire then a.fire(nil, new_error(code, msg, { retry = false })) end
  end
end

--- Stop gracefully: listeners stop accepting (requests in flight finish) and pending questions
-- end with code "stopped". Called on SIGINT/SIGTERM by `loop.run`.
function Bot:stop()
  for _, srv in ipairs(self.servers) do pcall(srv.drain, srv) end
  end_asks(self, "stopped", "the bot is stopping")
end

--- Close at once: listeners closed, pending questions ended.
function Bot:close()
  for _, srv in ipairs(self.servers) do pcall(srv.close, srv) end
  self.servers = {}
  if self._unstop then self._unstop(); self._unstop = nil end
  end_asks(self, "stopped", "the bot was closed")
end

return setmetatable(bot, { __call = function(_, opts) return bot.new(opts) end })
