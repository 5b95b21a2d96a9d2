--- The sandbox: a WhatsApp-like chat page in front of the Cloud API simulator.
--
--     local sandbox = require "whatsapp.sandbox"
--     local sb = assert(sandbox.start{
--       sim = sim,                    -- a running whatsapp.simulator (with a webhook to the bot),
--                                     -- or the options to start one
--       port = 8080,                  -- 0 picks a free port
--       transcript = io.stdout,       -- one line per message, both ways
--     })
--     print("Chat page: " .. sb.url .. "/")
--     require("whatsapp.loop").run()  -- until Ctrl-C
--
-- A person opens the page and writes as a WhatsApp user (phone number and name are set on
-- the page; default 15550002222 "Test User"). Each message goes to the bot as a signed
-- webhook from the simulator; what the bot sends through the simulator shows up on the page
-- the way WhatsApp shows it: text with *bold* / _italic_, reply buttons and list rows that can
-- be tapped (the bot gets a `button_reply` / `list_reply` with `context` pointing at its
-- message), link buttons, templates filled in with their parameters, media as placeholders,
-- locations, contacts, reactions and the typing indicator. The user's messages get ticks:
-- one when the simulator took them, two when the bot answered the webhook, blue once the bot
-- marked them read. The page marks the bot's messages read when it shows them (the bot gets
-- a `read` status after `sent` and `delivered`).
--
-- The page talks JSON to its own listener:
--
-- * `GET  /` the page (one self-contained HTML file; nothing is fetched from elsewhere)
-- * `GET  /_sandbox/info` the business, the default user, the title
-- * `GET  /_sandbox/events?after=N&user=U&wait=S` events after sequence number N for user U,
--   waiting up to S seconds (at most 30) for the first one (long polling):
--   `{ "events": [...], "last": M }`
-- * `POST /_sandbox/send` `{ from, name, text }` or `{ from, name, type, <type> = object, context }`
-- * `POST /_sandbox/reply` `{ from, name, message_id, id }` taps a reply button or list row of the
--   bot's message `message_id`; `{ ..., index }` taps a template's quick-reply button
-- * `POST /_sandbox/read` `{ id }` the user read the bot's message `id`
--
-- Events are `{ seq, kind, user, time, ... }` with kind `"user"` (`id, name, message`), `"bot"`
-- (`id, type, body` as sent to the API, `template` rendered for a template), `"status"` (`id,
-- status, side = "user" | "bot"`), `"typing"` and `"notice"` (`text`).
-- @module whatsapp.sandbox
local loop = require "whatsapp.loop"
local server = require "whatsapp.server"
local errors = require "whatsapp.errors"
local simulator = require "whatsapp.simulator"
local suspend = require("whatsapp.bot").suspend
local cjson_safe = require "cjson.safe"

local sandbox = {}

local type, pairs, ipairs, tostring, tonumber, setmetatable, error, pcall, next =
  type, pairs, ipairs, tostring, tonumber, setmetatable, error, pcall, next
local concat, remove = table.concat, table.remove
local format, gsub, sub, find, upper, lower = string.format, string.gsub, string.sub, string.find,
  string.upper, string.lower
local min, max = math.min, math.max
local os_time, os_date = os.time, os.date

local json = cjson_safe.new()
json.encode_sparse_array(true)
json.encode_invalid_numbers("null")
json.decode_max_depth(32)

--- The default user of the page.
sandbox.DEFAULT_USER = { phone = "15550002222", name = "Test User" }

--- Events kept in memory (the oldest go first).
sandbox.MAX_EVENTS = 5000

--- Longest wait of one `GET /_sandbox/events`, in seconds.
sandbox.MAX_WAIT = 30

-- ---- helpers ------------------------------------------------------------------------------

local function digits(s)
  if type(s) ~= "string" then return nil end
  if find(s, "%a") then return s end
  local d = gsub(s, "%D", "")
  if d == "" then return nil end
  return d
end

local function one_line(s, limit)
  s = gsub(tostring(s or ""), "\r?\n", " \226\143\142 ") -- ⏎
  limit = limit or 200
  -- Cut on a UTF-8 boundary.
  if #s > limit then
    local cut = limit
    while cut > 0 and find(sub(s, cut + 1, cut + 1), "^[\128-\191]") do cut = cut - 1 end
    s = sub(s, 1, cut) .. "\226\128\166" -- …
  end
  return s
end

local function titles(list, key)
  local out = {}
  for _, x in ipairs(list) do out[#out + 1] = tostring(key(x)) end
  return concat(out, " | ")
end

-- ---- templates ----------------------------------------------------------------------------

local function component(list, kind)
  if type(list) ~= "table" then return nil end
  for _, c in ipairs(list) do
    if type(c) == "table" and type(c.type) == "string" and upper(c.type) == kind then return c end
  end
end

local function param_text(p)
  if type(p) ~= "table" then return tostring(p) end
  local t = lower(tostring(p.type))
  if t == "text" then return tostring(p.text) end
  if t == "currency" and type(p.currency) == "table" then
    return tostring(p.currency.fallback_value or p.currency.amount_1000 and
      format("%.2f %s", (tonumber(p.currency.amount_1000) or 0) / 1000, tostring(p.currency.code)))
  end
  if t == "date_time" and type(p.date_time) == "table" then return tostring(p.date_time.fallback_value) end
  if t == "payload" then return tostring(p.payload) end
  return "[" .. t .. "]"
end

-- Fill `{{1}}` / `{{name}}` of `text` with the parameters sent.
local function fill(text, params)
  if type(text) ~= "string" then return nil end
  params = type(params) == "table" and params or {}
  local named, pos = {}, {}
  for i, p in ipairs(params) do
    if type(p) == "table" and type(p.parameter_name) == "string" then named[p.parameter_name] = p end
    pos[i] = p
  end
  return (gsub(text, "{{%s*([%w_]+)%s*}}", function(key)
    local p = named[key] or pos[tonumber(key) or -1]
    if p == nil then return "{{" .. key .. "}}" end
    return param_text(p)
  end))
end

--- Render a template send as WhatsApp shows it: the stored definition (`def`, as given to the
-- simulator) filled in with the parameters of the send (`sent`, the `template` object of the
-- request).
-- @tparam[opt] table def the template definition (`components`: HEADER, BODY, FOOTER, BUTTONS)
-- @tparam table sent the `template` object sent
-- @treturn table `{ name, language, header = { format, text }, body, footer, buttons = { { type,
--   text, payload, url, phone, index } } }`
function sandbox.render_template(def, sent)
  if type(sent) ~= "table" then error("render_template: the sent template object expected", 2) end
  local out = { name = sent.name, language = type(sent.language) == "table" and sent.language.code or nil,
    buttons = {} }
  local comps = type(sent.components) == "table" and sent.components or {}
  local function sent_params(kind)
    local c = component(comps, kind)
    return c and c.parameters or {}
  end
  if type(def) ~= "table" then
    -- Unknown here: show the parameters as they were sent.
    local list = {}
    for _, p in ipairs(sent_params("BODY")) do list[#list + 1] = param_text(p) end
    out.body = "[template " .. tostring(sent.name) .. "]" .. (#list > 0 and (" " .. concat(list, ", ")) or "")
    return out
  end
  local h = component(def.components, "HEADER")
  if h then
    local f = upper(tostring(h.format or "TEXT"))
    if f == "TEXT" then
      out.header = { format = "TEXT", text = fill(h.text, sent_params("HEADER")) }
    else
      local p = sent_params("HEADER")[1]
      local media = type(p) == "table" and p[lower(f)] or nil
      out.header = { format = f, text = type(media) == "table" and (media.filename or media.caption) or nil }
      if f == "LOCATION" and type(p) == "table" and type(p.location) == "table" then
        out.header.text = p.location.name or p.location.address
      end
    end
  end
  local b = component(def.components, "BODY")
  out.body = b and fill(b.text, sent_params("BODY")) or ""
  local f = component(def.components, "FOOTER")
  out.footer = f and f.text or nil
  local bs = component(def.components, "BUTTONS")
  if bs and type(bs.buttons) == "table" then
    for i, btn in ipairs(bs.buttons) do
      local index = i - 1
      local sent_btn
      for _, c in ipairs(comps) do
        if type(c) == "table" and lower(tostring(c.type)) == "button" and tonumber(c.index) == index then
          sent_btn = c
        end
      end
      local sp = sent_btn and type(sent_btn.parameters) == "table" and sent_btn.parameters[1] or nil
      local bt = lower(tostring(btn.type))
      local o = { type = bt, text = btn.text, index = index }
      if bt == "quick_reply" then
        o.payload = sp and (sp.payload or sp.text) or btn.text
      elseif bt == "url" then
        o.url = fill(btn.url, sp and { sp } or {})
      elseif bt == "phone_number" then
        o.phone = btn.phone_number
      end
      out.buttons[#out.buttons + 1] = o
    end
  end
  return out
end

-- ---- one-line descriptions (the transcript) --------------------------------------------------

local MEDIA = { image = true, video = true, audio = true, document = true, sticker = true }

--- Describe a message the bot sends (a Cloud API request body) on one line, e.g.
-- `Welcome! [buttons: Menu | Help]`.
-- @tparam table body the request body (`type` and the object of that type)
-- @tparam[opt] table rendered a rendered template (`render_template`)
-- @treturn string
function sandbox.describe(body, rendered)
  if type(body) ~= "table" then error("describe: a message body expected", 2) end
  local t = body.type or "text"
  local o = body[t]
  if type(o) ~= "table" then return "[" .. tostring(t) .. "]" end
  if t == "text" then return one_line(o.body) end
  if MEDIA[t] then
    local what = o.filename or o.caption
    return "[" .. t .. "]" .. (what and (" " .. one_line(what, 80)) or "")
  end
  if t == "location" then
    return "[location] " .. one_line(concat({ o.name or "", o.address or "",
      tostring(o.latitude) .. "," .. tostring(o.longitude) }, " "), 120)
  end
  if t == "contacts" then
    return "[contacts] " .. titles(o, function(c) return type(c.name) == "table" and c.name.formatted_name or "?" end)
  end
  if t == "reaction" then
    if o.emoji == "" then return "[reaction removed]" end
    return "[reaction " .. tostring(o.emoji) .. "]"
  end
  if t == "template" then
    local r = rendered or sandbox.render_template(nil, o)
    local s = "[template " .. tostring(o.name) .. "] " .. one_line((r.header and r.header.format == "TEXT"
      and r.header.text and (r.header.text .. " ") or "") .. (r.body or ""))
    if r.buttons and #r.buttons > 0 then
      s = s .. " [buttons: " .. titles(r.buttons, function(x) return x.text end) .. "]"
    end
    return s
  end
  if t == "interactive" then
    local text = one_line(type(o.body) == "table" and o.body.text or "")
    local a = type(o.action) == "table" and o.action or {}
    local it = o.type
    if it == "button" and type(a.buttons) == "table" then
      return text .. " [buttons: " .. titles(a.buttons, function(x)
        return type(x.reply) == "table" and x.reply.title or "?" end) .. "]"
    elseif it == "list" and type(a.sections) == "table" then
      local rows = {}
      for _, s in ipairs(a.sections) do
        for _, r in ipairs(type(s.rows) == "table" and s.rows or {}) do rows[#rows + 1] = r end
      end
      return text .. " [list " .. tostring(a.button) .. ": " .. titles(rows, function(r) return r.title end) .. "]"
    elseif it == "cta_url" and type(a.parameters) == "table" then
      return text .. " [link: " .. tostring(a.parameters.display_text) .. " -> " .. tostring(a.parameters.url) .. "]"
    elseif it == "flow" and type(a.parameters) == "table" then
      return text .. " [flow: " .. tostring(a.parameters.flow_cta) .. "]"
    elseif it == "location_request_message" then
      return text .. " [send location]"
    end
    return text .. " [" .. tostring(it) .. "]"
  end
  return "[" .. t .. "]"
end

-- What a user's message reads like on one line.
local function describe_inbound(m)
  local t = m.type
  if t == "text" then return one_line(m.text and m.text.body) end
  if t == "interactive" and type(m.interactive) == "table" then
    local i = m.interactive
    local r = i.button_reply or i.list_reply
    if r then
      return "[" .. (i.button_reply and "button" or "list") .. "] " .. one_line(r.title) .. " (id " .. tostring(r.id)
        .. ")"
    end
    return "[" .. tostring(i.type) .. "]"
  end
  if t == "button" and type(m.button) == "table" then
    return "[button] " .. one_line(m.button.text) .. " (payload " .. tostring(m.button.payload) .. ")"
  end
  return sandbox.describe(m)
end
sandbox.describe_inbound = describe_inbound

-- ---- the sandbox object -------------------------------------------------------------------

local Sandbox = {}
Sandbox.__index = Sandbox
Sandbox.__name = "whatsapp.sandbox.Sandbox"

local TICKS = { sent = "\226\156\147", delivered = "\226\156\147\226\156\147", read = "\226\156\147\226\156\147",
  failed = "!" }

function Sandbox:_line(s)
  local out = self._transcript
  if not out then return end
  local text = os_date("%H:%M:%S ") .. s
  if type(out) == "function" then
    local ok, err = pcall(out, text)
    if not ok then loop.report("sandbox: transcript: " .. tostring(err)) end
  else
    out:write(text, "\n")
    if out.flush then out:flush() end
  end
end

function Sandbox:_name_of(user)
  return self._names[user] or (user == sandbox.DEFAULT_USER.phone and sandbox.DEFAULT_USER.name) or ("+" .. user)
end

-- Add an event and wake the waiting polls.
function Sandbox:_push(ev)
  self._seq = self._seq + 1
  ev.seq = self._seq
  ev.time = ev.time or os_time()
  local list = self._events
  list[#list + 1] = ev
  if #list > sandbox.MAX_EVENTS then remove(list, 1) end
  self:_wake()
  return ev
end

function Sandbox:_wake()
  local waiters = self._waiters
  if next(waiters) == nil then return end
  self._waiters = {}
  for fire in pairs(waiters) do fire(true) end
end

--- The events after sequence number `after`, of one user (all users when `user` is nil).
-- @tparam[opt=0] integer after
-- @tparam[opt] string user the user's phone number
-- @treturn table a list of events (the sandbox's own tables: read them, do not change them)
function Sandbox:events(after, user)
  after = tonumber(after) or 0
  user = user and digits(user)
  local list, out = self._events, {}
  local i = #list
  while i >= 1 and list[i].seq > after do i = i - 1 end
  for j = i + 1, #list do
    local ev = list[j]
    if user == nil or ev.user == user or ev.user == nil then out[#out + 1] = ev end
  end
  return out
end

--- The last sequence number given to an event.
-- @treturn integer
function Sandbox:last()
  return self._seq
end

-- Wait (yields) until there are events for the user after `after`, or `wait` seconds pass.
function Sandbox:_poll(after, user, wait)
  local list = self:events(after, user)
  local deadline = loop.now() + wait
  while #list == 0 and not self._stopping do
    local left = deadline - loop.now()
    if left <= 0 then break end
    local mine
    suspend(function(fire)
      mine = fire
      self._waiters[fire] = true
    end, left)
    self._waiters[mine] = nil
    list = self:events(after, user)
  end
  return list
end

-- A bot message accepted by the simulator.
function Sandbox:_on_message(msg)
  local body = msg.body
  local ev = { kind = "bot", id = msg.id, user = msg.to, type = msg.type, body = body, status = "accepted" }
  if msg.type == "template" and type(body.template) == "table" then
    local def
    local lang = type(body.template.language) == "table" and body.template.language.code
    for _, t in ipairs(self.sim:templates()) do
      if t.name == body.template.name and t.language == lang then def = t end
    end
    ev.template = sandbox.render_template(def, body.template)
  end
  if type(body.context) == "table" then ev.context = body.context.message_id end
  self._bot[msg.id] = ev
  self:_push(ev)
  self:_line("< bot -> " .. self:_name_of(msg.to) .. ": " .. sandbox.describe(body, ev.template))
end

-- The bot marked a user's message read (perhaps with the typing indicator).
function Sandbox:_on_read(id, typing)
  local u = self._user_msgs[id]
  if not u then return end
  -- Reading a message reads every earlier one too, as in WhatsApp.
  for _, ev in ipairs(self._order[u.user] or {}) do
    if ev.status ~= "read" then
      ev.status = "read"
      self:_push{ kind = "status", side = "user", id = ev.id, user = u.user, status = "read" }
    end
    if ev == u then break end
  end
  if self._show_statuses then self:_line("  " .. TICKS.read .. " bot read: " .. one_line(u.text, 60)) end
  if typing then
    self:_push{ kind = "typing", user = u.user, id = id }
    if self._show_statuses then self:_line("  ... bot is typing") end
  end
end

-- A webhook delivered to the bot (statuses of the bot's messages).
function Sandbox:_on_delivery(d)
  if d.kind ~= "status" or not d.wamid then return end
  local ev = self._bot[d.wamid]
  local st = d.message_status
  if ev and st then
    ev.status = st
    self:_push{ kind = "status", side = "bot", id = d.wamid, user = ev.user, status = st }
    if self._show_statuses and ev.type ~= "reaction" then
      self:_line("  " .. (TICKS[st] or "") .. " " .. st .. ": " .. one_line(sandbox.describe(ev.body, ev.template), 60))
    end
  end
  if st == "delivered" or (st == "sent" and ev and ev.type == "reaction") then
    self._delivered[d.wamid] = true
    if self._want_read[d.wamid] then
      self._want_read[d.wamid] = nil
      loop.spawn(self._send_read, self, d.wamid)
    end
  end
end

function Sandbox:_send_read(wamid)
  if self._read_sent[wamid] or self._closed then return end
  self._read_sent[wamid] = true
  local ok, err = self.sim:read(wamid)
  if not ok then self:_line("  ! read status not taken by the bot: " .. tostring(err)) end
end

--- The user read the bot's message `id`: the simulator sends the bot a `read` status (after
-- `delivered`). Does not wait.
-- @tparam string id the bot message's wamid
-- @treturn[1] boolean true
-- @return[2] nil and an error object (code "not_found")
function Sandbox:read(id)
  local ev = self._bot[id]
  if not ev then return nil, errors.new{ code = "not_found", message = "no message of the bot with that id" } end
  if self._read_sent[id] or self._want_read[id] then return true end
  if self._delivered[id] then
    loop.spawn(self._send_read, self, id)
  else
    self._want_read[id] = true
  end
  return true
end

local INBOUND_TYPES = { text = true, image = true, video = true, audio = true, document = true, sticker = true,
  location = true, contacts = true, interactive = true, button = true, reaction = true }

--- Send a message as a user (what the page's composer does): the simulator sends the bot a
-- signed webhook. Waits for the bot's answer (yields in a task, blocks in a plain script).
-- @tparam table m `from` (phone number, default "15550002222"), `name` (default "Test User"), and
--   `text`, or `type` with the object of that type; optional `context` (`{ id = wamid }`)
-- @treturn[1] string the message's wamid
-- @return[2] nil and an error object (code "validation", or the webhook's failure)
function Sandbox:send(m)
  if type(m) ~= "table" then error("send: table expected", 2) end
  local from = m.from == nil and sandbox.DEFAULT_USER.phone or digits(m.from)
  if not from or #from > 32 then
    return nil, errors.new{ code = "validation", message = "from must be a phone number", path = "from" }
  end
  local name = m.name
  if name ~= nil and (type(name) ~= "string" or name == "" or #name > 256) then
    return nil, errors.new{ code = "validation", message = "name must be a non-empty string", path = "name" }
  end
  local mtype = m.type or "text"
  if type(mtype) ~= "string" or not INBOUND_TYPES[mtype] then
    return nil, errors.new{ code = "validation", message = "unsupported message type", path = "type" }
  end
  local msg = { type = mtype }
  if mtype == "text" then
    local text = m.text
    if type(text) == "table" then text = text.body end
    if type(text) ~= "string" or text == "" or #text > 65536 then
      return nil, errors.new{ code = "validation", message = "text must be a non-empty string", path = "text" }
    end
    msg.text = { body = text }
  else
    if type(m[mtype]) ~= "table" then
      return nil, errors.new{ code = "validation", message = "the " .. mtype .. " object is missing", path = mtype }
    end
    msg[mtype] = m[mtype]
  end
  if m.context ~= nil then
    if type(m.context) ~= "table" or type(m.context.id) ~= "string" then
      return nil, errors.new{ code = "validation", message = "context must be { id = wamid }", path = "context" }
    end
    msg.context = { from = self.sim.display_phone_number, id = m.context.id }
  end
  if name then self._names[from] = name end
  name = self:_name_of(from)
  local id = self.sim:new_wamid(from)
  local ev = { kind = "user", id = id, user = from, name = name, message = msg, status = "sent",
    text = describe_inbound(msg) }
  self._user_msgs[id] = ev
  local order = self._order[from] or {}
  self._order[from] = order
  order[#order + 1] = ev
  if #order > 500 then remove(order, 1) end
  self:_push(ev)
  self:_line("> " .. name .. ": " .. ev.text)
  local args = { from = from, name = name, id = id, type = mtype, context = msg.context }
  args[mtype] = msg[mtype]
  if mtype == "text" then args.text = msg.text.body end
  local ok, err = self.sim:send_user_message(args)
  if not ok then
    ev.status = "failed"
    self:_push{ kind = "status", side = "user", id = id, user = from, status = "failed", error = tostring(err) }
    self:_push{ kind = "notice", user = from, text = "The bot did not take the message: " .. tostring(err) }
    self:_line("  ! the bot did not take it: " .. tostring(err))
    return nil, err
  end
  if ev.status == "sent" then
    ev.status = "delivered"
    self:_push{ kind = "status", side = "user", id = id, user = from, status = "delivered" }
  end
  return id
end

--- Tap a reply button or a list row of the bot's message `message_id` (or a quick-reply button
-- of its template, by `index`), as the user: the bot gets a `button_reply` / `list_reply` (or a
-- template `button` message) with `context` pointing at its message.
-- @tparam table t `from`, `name`, `message_id`, and `id` (the button's or row's id) or `index`
--   (0-based, a template's button)
-- @treturn[1] string the reply's wamid
-- @return[2] nil and an error object (code "not_found", "validation", or the webhook's failure)
function Sandbox:reply(t)
  if type(t) ~= "table" then error("reply: table expected", 2) end
  local ev = type(t.message_id) == "string" and self._bot[t.message_id]
  if not ev then
    return nil, errors.new{ code = "not_found", message = "no message of the bot with that id", path = "message_id" }
  end
  local body = ev.body
  local context = { id = ev.id }
  local base = { from = t.from, name = t.name, context = context }
  if ev.type == "template" then
    local idx = tonumber(t.index)
    for _, b in ipairs(ev.template and ev.template.buttons or {}) do
      if b.index == idx and b.type == "quick_reply" then
        base.type = "button"
        base.button = { text = b.text, payload = b.payload }
        return self:send(base)
      end
    end
    return nil, errors.new{ code = "not_found", path = "index",
      message = "the template has no quick-reply button " .. tostring(t.index) }
  end
  local it = type(body.interactive) == "table" and body.interactive or {}
  local a = type(it.action) == "table" and it.action or {}
  if it.type == "button" then
    for _, b in ipairs(a.buttons or {}) do
      if type(b.reply) == "table" and b.reply.id == t.id then
        base.type = "interactive"
        base.interactive = { type = "button_reply", button_reply = { id = b.reply.id, title = b.reply.title } }
        return self:send(base)
      end
    end
  elseif it.type == "list" then
    for _, s in ipairs(a.sections or {}) do
      for _, r in ipairs(type(s.rows) == "table" and s.rows or {}) do
        if r.id == t.id then
          base.type = "interactive"
          base.interactive = { type = "list_reply", list_reply = { id = r.id, title = r.title,
            description = r.description } }
          return self:send(base)
        end
      end
    end
  else
    return nil, errors.new{ code = "validation", message = "that message has no reply buttons or list",
      path = "message_id" }
  end
  return nil, errors.new{ code = "not_found", message = "no button or row with that id", path = "id" }
end

-- ---- HTTP ---------------------------------------------------------------------------------

local JSON_HEADERS = { ["Content-Type"] = "application/json; charset=utf-8", ["Cache-Control"] = "no-store" }
local HTML_HEADERS = { ["Content-Type"] = "text/html; charset=utf-8", ["Cache-Control"] = "no-store",
  ["Content-Security-Policy"] = "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    .. "img-src 'self' data:" }

local function answer(status, tbl)
  return status, JSON_HEADERS, json.encode(tbl) or "{}"
end

local function fail(status, err)
  return answer(status, { error = { code = tostring(err.code), message = err.message or tostring(err) } })
end

local function status_of(err)
  if err.code == "validation" then return 400 end
  if err.code == "not_found" then return 404 end
  return 502
end

--- What `GET /_sandbox/info` answers: `{ title, description, business = { name, phone,
-- phone_number_id }, user = { phone, name } }`.
-- @treturn table
function Sandbox:info()
  return {
    title = self.title,
    description = self.description,
    business = { name = self.business_name, phone = self.sim.display_phone_number,
      phone_number_id = self.sim.pnid },
    user = { phone = self.user.phone, name = self.user.name },
  }
end

function Sandbox:_handle(req)
  local path, method = req.path, req.method
  if path == "/" or path == "/index.html" then
    if method ~= "GET" and method ~= "HEAD" then return 405, { Allow = "GET" }, "method not allowed\n" end
    return 200, HTML_HEADERS, sandbox.PAGE
  end
  if path == "/favicon.ico" then return 204, {}, "" end
  if path == "/_sandbox/info" then return answer(200, self:info()) end
  if path == "/_sandbox/events" then
    local q = req.query or {}
    local after = tonumber(q.after) or 0
    local wait = max(0, min(tonumber(q.wait) or 0, sandbox.MAX_WAIT))
    local list = self:_poll(after, q.user, wait)
    if #list == 0 then return 200, JSON_HEADERS, '{"events":[],"last":' .. format("%d", self._seq) .. "}" end
    return answer(200, { events = list, last = self._seq })
  end
  if method ~= "POST" then
    return 404, JSON_HEADERS, '{"error":{"code":"not_found","message":"no such endpoint"}}'
  end
  local body = json.decode(req.body or "")
  if type(body) ~= "table" then
    return fail(400, { code = "validation", message = "a JSON object expected" })
  end
  if path == "/_sandbox/send" then
    local id, err = self:send(body)
    if not id then return fail(status_of(err), err) end
    return answer(200, { id = id })
  elseif path == "/_sandbox/reply" then
    local id, err = self:reply(body)
    if not id then return fail(status_of(err), err) end
    return answer(200, { id = id })
  elseif path == "/_sandbox/read" then
    local ok, err = self:read(body.id)
    if not ok then return fail(status_of(err), err) end
    return answer(200, { ok = true })
  end
  return 404, JSON_HEADERS, '{"error":{"code":"not_found","message":"no such endpoint"}}'
end

--- Start the sandbox.
-- @tparam table opts
-- @param opts.sim a running simulator with a webhook to the bot, or the options to start one
--   (`simulator.start`; the sandbox then owns it and closes it)
-- @param opts.host ("127.0.0.1")
-- @param opts.port (0 picks a free one)
-- @param opts.transcript a file handle (`io.stdout`) or `function(line)` getting one line per
--   message both ways and per status; default none
-- @param opts.statuses print statuses in the transcript too (default true)
-- @param opts.title the page's title (default the business's verified name)
-- @param opts.description a line shown under the title in the page
-- @param opts.user the page's default user `{ phone =, name = }`
-- @return the sandbox (`sb.url`, `sb.sim`), or nil and an error object when the address cannot be used
function sandbox.start(opts)
  if type(opts) ~= "table" then error("sandbox.start: options table expected", 2) end
  local sim, owned = opts.sim, false
  if type(sim) ~= "table" then error("sandbox.start: sim (a simulator or its options) is required", 2) end
  if type(sim.subscribe) ~= "function" then
    local s, err = simulator.start(sim)
    if not s then return nil, err end
    sim, owned = s, true
  end
  if not sim._webhook then
    if owned then sim:close() end
    error("sandbox.start: the simulator needs a webhook to the bot", 2)
  end
  local tr = opts.transcript
  if tr ~= nil and type(tr) ~= "function" and not ((type(tr) == "table" or type(tr) == "userdata") and tr.write) then
    error("sandbox.start: transcript must be a file handle or a function", 2)
  end
  local user = opts.user or sandbox.DEFAULT_USER
  if type(user) ~= "table" or type(user.phone) ~= "string" or type(user.name) ~= "string" then
    error("sandbox.start: user must be { phone =, name = } (strings)", 2)
  end
  local self = setmetatable({
    sim = sim, _owned = owned,
    _transcript = tr, _show_statuses = opts.statuses ~= false,
    title = opts.title or (sim._phone and sim._phone.verified_name) or "Test Business",
    description = opts.description,
    business_name = (sim._phone and sim._phone.verified_name) or "Test Business",
    user = { phone = digits(user.phone) or sandbox.DEFAULT_USER.phone, name = user.name },
    _events = {}, _seq = 0, _waiters = {},
    _bot = {},          -- wamid -> bot event
    _user_msgs = {},    -- wamid -> user event
    _order = {},        -- user -> user events in order
    _names = {},        -- user -> name
    _delivered = {}, _want_read = {}, _read_sent = {},
  }, Sandbox)
  self._names[self.user.phone] = self.user.name
  self._unsubscribe = sim:subscribe(function(ev)
    if ev.kind == "message" then
      self:_on_message(ev.message)
    elseif ev.kind == "read" then
      self:_on_read(ev.message_id, ev.typing_indicator)
    elseif ev.kind == "delivery" then
      self:_on_delivery(ev.delivery)
    end
  end)
  local host = opts.host or "127.0.0.1"
  local srv, err = server.listen{
    host = host, port = opts.port or 0, max_body = 1024 * 1024,
    handler = function(req) return self:_handle(req) end,
  }
  if not srv then
    self._unsubscribe()
    if owned then sim:close() end
    return nil, errors.new{ code = "listen", message = "sandbox: " .. tostring(err) }
  end
  self._srv = srv
  self._unstop = loop.on_stop(function() self:stop() end)
  self.url = srv:url()
  return self
end

--- The port listened on.
-- @treturn integer
function Sandbox:port()
  return self._srv:port()
end

--- Stop gracefully: waiting polls are answered, the listener stops accepting, and a simulator
-- the sandbox started closes. Called on SIGINT/SIGTERM by `loop.run`.
function Sandbox:stop()
  self._stopping = true
  self:_wake()
  pcall(self._srv.drain, self._srv)
  if self._owned then pcall(self.sim.close, self.sim) end
end

--- Close at once (and the simulator, when the sandbox started it). Safe twice.
function Sandbox:close()
  if self._closed then return end
  self._closed = true
  self._stopping = true
  self:_wake()
  if self._unstop then self._unstop(); self._unstop = nil end
  self._unsubscribe()
  self._srv:close()
  if self._owned then self.sim:close() end
end
Sandbox.__close = Sandbox.close

-- ---- the page -----------------------------------------------------------------------------

sandbox.PAGE = [==[
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WhatsApp sandbox</title>
<style>
:root { --green: #008069; --bg: #efeae2; --out: #d9fdd3; --in: #fff; --blue: #53bdeb; --grey: #667781;
  --text: #111b21; --link: #027eb5; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; font-family: "Segoe UI", Helvetica, Arial, sans-serif; color: var(--text);
  background: #d1d7db; }
#app { display: flex; flex-direction: column; height: 100%; max-width: 920px; margin: 0 auto; background: var(--bg);
  box-shadow: 0 0 8px rgba(0, 0, 0, .2); }
header { background: var(--green); color: #fff; display: flex; align-items: center; gap: 12px; padding: 10px 14px; }
.avatar { width: 40px; height: 40px; border-radius: 50%; background: #dfe5e7; color: var(--green); display: flex;
  align-items: center; justify-content: center; font-weight: 700; font-size: 18px; flex: none; }
.who { flex: 1; min-width: 0; }
.who .name { font-size: 16px; font-weight: 600; }
.who .sub { font-size: 13px; opacity: .85; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#userbtn { background: transparent; border: 1px solid rgba(255, 255, 255, .6); color: #fff; border-radius: 16px;
  padding: 5px 10px; cursor: pointer; font-size: 13px; white-space: nowrap; }
#settings { display: none; background: #f0f2f5; padding: 10px 14px; gap: 8px; align-items: center; flex-wrap: wrap;
  border-bottom: 1px solid #d1d7db; font-size: 13px; }
#settings.open { display: flex; }
#settings input { padding: 6px 8px; border: 1px solid #c8cdd0; border-radius: 6px; font-size: 14px; }
#settings button { background: var(--green); color: #fff; border: none; border-radius: 6px; padding: 7px 12px;
  cursor: pointer; }
#chat { flex: 1; overflow-y: auto; padding: 14px 7%; display: flex; flex-direction: column; }
.row { display: flex; flex-direction: column; margin: 3px 0; max-width: 75%; position: relative; }
.row.in { align-self: flex-start; align-items: stretch; }
.row.out { align-self: flex-end; align-items: stretch; }
.row.has-reaction { margin-bottom: 18px; }
.bubble { position: relative; padding: 6px 8px 8px 9px; border-radius: 8px; font-size: 14.2px; line-height: 19px;
  box-shadow: 0 1px .5px rgba(11, 20, 26, .13); white-space: pre-wrap; overflow-wrap: anywhere; min-width: 90px; }
.in .bubble { background: var(--in); border-top-left-radius: 0; }
.out .bubble { background: var(--out); border-top-right-radius: 0; }
.meta { float: right; margin: 6px 0 -5px 12px; font-size: 11px; color: var(--grey); white-space: nowrap; }
.ticks { margin-left: 4px; letter-spacing: -5px; padding-right: 5px; color: var(--grey); font-size: 13px;
  font-weight: 700; }
.ticks.read { color: var(--blue); }
.ticks.failed { color: #d93025; letter-spacing: 0; }
.hdr { font-weight: 600; margin-bottom: 3px; }
.foot { color: var(--grey); font-size: 12.5px; margin-top: 3px; }
.quote { background: rgba(0, 0, 0, .05); border-left: 4px solid #06cf9c; border-radius: 6px; padding: 4px 8px;
  margin-bottom: 5px; font-size: 12.5px; color: var(--grey); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.media { display: flex; align-items: center; gap: 10px; background: rgba(0, 0, 0, .06); border-radius: 6px;
  padding: 10px; margin-bottom: 4px; white-space: normal; }
.media .icon { font-size: 28px; line-height: 30px; }
.media .label { font-size: 13px; color: #3b4a54; }
.media a { color: var(--link); }
.btns { display: flex; flex-direction: column; gap: 2px; margin-top: 2px; }
.btn { background: var(--in); border: none; border-radius: 8px; box-shadow: 0 1px .5px rgba(11, 20, 26, .13);
  color: var(--link); padding: 9px; font-size: 14px; cursor: pointer; text-align: center; text-decoration: none;
  display: block; width: 100%; font-family: inherit; }
.btn:hover { background: #f5f6f6; }
.btn:disabled { color: var(--grey); cursor: default; }
.reaction { position: absolute; bottom: -16px; background: #fff; border-radius: 12px; padding: 0 5px; font-size: 15px;
  box-shadow: 0 1px 2px rgba(0, 0, 0, .25); }
.in .reaction { left: 10px; }
.out .reaction { right: 10px; }
.notice { align-self: center; background: #ffeecd; color: #54656f; font-size: 12.5px; border-radius: 8px;
  padding: 5px 12px; margin: 6px 0; max-width: 85%; text-align: center; }
.typing .bubble { color: var(--grey); font-style: italic; }
.dots span { animation: blink 1.4s infinite both; font-weight: 700; }
.dots span:nth-child(2) { animation-delay: .2s; }
.dots span:nth-child(3) { animation-delay: .4s; }
@keyframes blink { 0% { opacity: .2; } 20% { opacity: 1; } 100% { opacity: .2; } }
b { font-weight: 600; }
code { font-family: Consolas, "Courier New", monospace; font-size: 13px; }
footer { display: flex; gap: 8px; padding: 8px 10px; background: #f0f2f5; align-items: center; }
#text { flex: 1; border: none; border-radius: 8px; padding: 11px 12px; font-size: 15px; outline: none;
  font-family: inherit; }
.round { width: 42px; height: 42px; border-radius: 50%; border: none; background: var(--green); color: #fff;
  font-size: 18px; cursor: pointer; flex: none; }
.round.light { background: transparent; color: #54656f; font-size: 20px; }
#sheet-bg { position: fixed; inset: 0; background: rgba(0, 0, 0, .35); display: none; align-items: flex-end;
  justify-content: center; }
#sheet-bg.open { display: flex; }
#sheet { background: #fff; width: 100%; max-width: 520px; border-radius: 14px 14px 0 0; max-height: 75%;
  overflow: auto; padding-bottom: 10px; }
#sheet h3 { margin: 0; padding: 14px; text-align: center; font-size: 16px; border-bottom: 1px solid #e9edef;
  position: relative; }
#sheet .close { position: absolute; left: 12px; top: 9px; border: none; background: none; font-size: 22px;
  cursor: pointer; color: #54656f; }
.section { padding: 12px 16px 2px; color: var(--green); font-size: 13px; font-weight: 600; }
.rowbtn { display: block; width: 100%; text-align: left; border: none; background: none; padding: 10px 16px;
  border-bottom: 1px solid #f0f2f5; cursor: pointer; font-family: inherit; }
.rowbtn:hover { background: #f5f6f6; }
.rowbtn .t { font-size: 15px; color: var(--text); }
.rowbtn .d { font-size: 13px; color: var(--grey); }
#conn { display: none; background: #fdecea; color: #b3261e; text-align: center; font-size: 13px; padding: 4px; }
#conn.down { display: block; }
</style>
</head>
<body>
<div id="app">
  <header>
    <div class="avatar" id="avatar">B</div>
    <div class="who">
      <div class="name" id="bizname">Business</div>
      <div class="sub" id="sub">online</div>
    </div>
    <button id="userbtn" type="button" title="Who you are on this page">You: Test User</button>
  </header>
  <form id="settings">
    <label>Phone <input id="phone" inputmode="tel" size="16" autocomplete="off"></label>
    <label>Name <input id="uname" size="16" autocomplete="off"></label>
    <button type="submit">Use</button>
    <span id="bizinfo"></span>
  </form>
  <div id="conn">Not connected to the sandbox; retrying&hellip;</div>
  <main id="chat" aria-live="polite"></main>
  <footer>
    <button class="round light" id="loc" type="button" title="Share a location" aria-label="Share a location">
      <svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor"
        d="M12 2a7 7 0 0 0-7 7c0 5.2 7 13 7 13s7-7.8 7-13a7 7 0 0 0-7-7zm0 9.5A2.5 2.5 0 1 1 12 6.5a2.5 2.5 0 0 1
        0 5z"/>
      </svg></button>
    <form id="composer" style="display:flex;flex:1;gap:8px">
      <input id="text" autocomplete="off" placeholder="Type a message" aria-label="Message">
      <button class="round" id="send" type="submit" title="Send">&#10148;</button>
    </form>
  </footer>
</div>
<div id="sheet-bg"><div id="sheet" role="dialog" aria-modal="true"></div></div>
<script>
(function () {
  "use strict";
  var $ = function (s) { return document.querySelector(s); };
  var chat = $("#chat");
  var info = null, user = null, after = 0, generation = 0, controller = null;
  var bubbles = {};          // id -> { row, bubble, ticks, ev }
  var unread = [];           // ids of the bot's messages not yet marked read
  var typingRow = null, typingTimer = null;
  var RANK = { sent: 1, delivered: 2, read: 3, failed: 4 };
  var MEDIA_ICON = { image: "\uD83D\uDDBC\uFE0F", video: "\uD83C\uDFAC", audio: "\uD83C\uDFB5",
    document: "\uD83D\uDCC4", sticker: "\uD83D\uDE00", location: "\uD83D\uDCCD", contacts: "\uD83D\uDC64" };

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c];
    });
  }
  // WhatsApp's formatting: *bold*, _italic_, ~strike~, ```mono```.
  function fmt(s) {
    var h = esc(s);
    h = h.replace(/```([\s\S]+?)```/g, "<code>$1</code>");
    var edge = "(^|[\\s(>])", end = "(?=$|[\\s).,!?:;<])";
    h = h.replace(new RegExp(edge + "\\*(?!\\s)([^*\\n]+?)\\*" + end, "g"), "$1<b>$2</b>");
    h = h.replace(new RegExp(edge + "_(?!\\s)([^_\\n]+?)_" + end, "g"), "$1<i>$2</i>");
    h = h.replace(new RegExp(edge + "~(?!\\s)([^~\\n]+?)~" + end, "g"), "$1<s>$2</s>");
    return h;
  }
  function el(tag, cls, html) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (html != null) e.innerHTML = html;
    return e;
  }
  function hhmm(t) {
    var d = t ? new Date(t * 1000) : new Date();
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }
  function api(path, body) {
    var opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) };
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status));
        return j;
      });
    });
  }
  function txt(html) { return el("span", "txt", html); }
  function atBottom() { return chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80; }
  function scrollDown() { chat.scrollTop = chat.scrollHeight; }
  function place(node) {
    var stick = atBottom();
    if (typingRow && typingRow.parentNode === chat) chat.insertBefore(node, typingRow);
    else chat.appendChild(node);
    if (stick) scrollDown();
  }
  function notice(text) {
    var n = el("div", "notice");
    n.textContent = text;
    place(n);
    scrollDown();
  }

  function setTicks(entry, status) {
    var t = entry.ticks;
    if (!t) return;
    var cur = t.getAttribute("data-status");
    if (cur && RANK[cur] >= RANK[status] && status !== "failed") return;
    t.setAttribute("data-status", status);
    t.className = "ticks " + status;
    t.textContent = status === "sent" ? "\u2713" : status === "failed" ? "!" : "\u2713\u2713";
    t.title = status;
    entry.row.setAttribute("data-status", status);
  }

  function media(kind, label, caption, link) {
    var box = el("div", "media");
    box.appendChild(el("span", "icon", MEDIA_ICON[kind] || "\uD83D\uDCCE"));
    var l = el("div", "label");
    l.textContent = label || kind;
    if (link) {
      var a = el("a");
      a.href = link; a.target = "_blank"; a.rel = "noopener noreferrer"; a.textContent = " (link)";
      l.appendChild(a);
    }
    box.appendChild(l);
    var frag = document.createDocumentFragment();
    frag.appendChild(box);
    if (caption) frag.appendChild(el("div", "", fmt(caption)));
    return frag;
  }
  function mediaLabel(kind, o) {
    if (!o) return kind;
    if (kind === "document") return o.filename || "Document";
    if (kind === "audio") return o.voice ? "Voice message" : "Audio";
    return { image: "Photo", video: "Video", sticker: "Sticker" }[kind] || kind;
  }
  function describe(ev) {
    if (!ev) return "";
    var m = ev.kind === "user" ? ev.message : ev.body;
    if (ev.kind === "user") return ev.text || "";
    if (ev.template) return ev.template.body || "";
    if (m.type === "text") return m.text.body;
    if (m.type === "interactive") return (m.interactive.body && m.interactive.body.text) || "";
    return "[" + m.type + "]";
  }

  function newRow(side, ev) {
    var row = el("div", "row " + side);
    row.setAttribute("data-id", ev.id);
    row.setAttribute("data-type", ev.type || (ev.message && ev.message.type) || "");
    var b = el("div", "bubble");
    row.appendChild(b);
    var entry = { row: row, bubble: b, ev: ev };
    bubbles[ev.id] = entry;
    var ctx = ev.context || (ev.message && ev.message.context && ev.message.context.id);
    if (ctx && bubbles[ctx]) b.appendChild(el("div", "quote", fmt(describe(bubbles[ctx].ev))));
    return entry;
  }
  function finish(entry, side) {
    var m = el("span", "meta");
    m.appendChild(document.createTextNode(hhmm(entry.ev.time)));
    if (side === "out") {
      entry.ticks = el("span", "ticks");
      m.appendChild(entry.ticks);
      setTicks(entry, entry.ev.status === "accepted" ? "sent" : (entry.ev.status || "sent"));
    }
    entry.bubble.appendChild(m);
    place(entry.row);
  }

  function button(text, cls, onclick) {
    var b = el("button", "btn" + (cls ? " " + cls : ""));
    b.type = "button";
    b.textContent = text;
    if (onclick) b.addEventListener("click", onclick); else b.disabled = true;
    return b;
  }
  function linkButton(text, href) {
    var a = el("a", "btn");
    a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
    a.textContent = "\u2197 " + text;
    return a;
  }
  function reply(ev, fields) {
    var body = { from: user.phone, name: user.name, message_id: ev.id };
    for (var k in fields) body[k] = fields[k];
    return api("/_sandbox/reply", body).catch(function (e) { notice("Not sent: " + e.message); });
  }

  function openList(ev) {
    var a = ev.body.interactive.action;
    var sheet = $("#sheet");
    sheet.innerHTML = "";
    var h = el("h3");
    h.textContent = a.button;
    var close = el("button", "close", "&times;");
    close.type = "button";
    close.addEventListener("click", closeSheet);
    h.appendChild(close);
    sheet.appendChild(h);
    (a.sections || []).forEach(function (s) {
      if (s.title) { var st = el("div", "section"); st.textContent = s.title; sheet.appendChild(st); }
      (s.rows || []).forEach(function (r) {
        var rb = el("button", "rowbtn");
        rb.type = "button";
        rb.setAttribute("data-row-id", r.id);
        var t = el("div", "t"); t.textContent = r.title; rb.appendChild(t);
        if (r.description) { var d = el("div", "d"); d.textContent = r.description; rb.appendChild(d); }
        rb.addEventListener("click", function () { closeSheet(); reply(ev, { id: r.id }); });
        sheet.appendChild(rb);
      });
    });
    $("#sheet-bg").className = "open";
  }
  function closeSheet() { $("#sheet-bg").className = ""; }

  function renderHeader(b, h) {
    if (!h) return;
    if (h.type === "text") { var d = el("div", "hdr"); d.textContent = h.text; b.appendChild(d); return; }
    var o = h[h.type];
    b.appendChild(media(h.type, mediaLabel(h.type, o), null, o && o.link));
  }

  function renderBot(ev) {
    var body = ev.body, t = ev.type;
    if (t === "reaction") return react(body.reaction.message_id, body.reaction.emoji);
    hideTyping();
    var entry = newRow("in", ev), b = entry.bubble, btns = null;
    var o = body[t];
    if (t === "text") {
      b.appendChild(txt(fmt(o.body)));
    } else if (MEDIA_ICON[t] && t !== "location" && t !== "contacts") {
      b.appendChild(media(t, mediaLabel(t, o), o.caption, o.link));
    } else if (t === "location") {
      b.appendChild(media("location", [o.name, o.address].filter(Boolean).join(", ") || "Location",
        o.latitude + ", " + o.longitude));
    } else if (t === "contacts") {
      o.forEach(function (c) {
        var phones = (c.phones || []).map(function (p) { return p.phone; }).join(", ");
        b.appendChild(media("contacts", (c.name && c.name.formatted_name) || "Contact", phones));
      });
    } else if (t === "interactive") {
      renderHeader(b, o.header);
      if (o.body) b.appendChild(txt(fmt(o.body.text)));
      if (o.footer) { var f = el("div", "foot"); f.textContent = o.footer.text; b.appendChild(f); }
      var a = o.action || {};
      btns = el("div", "btns");
      if (o.type === "button") {
        (a.buttons || []).forEach(function (x) {
          var bt = button(x.reply.title, "", function () { reply(ev, { id: x.reply.id }); });
          bt.setAttribute("data-reply-id", x.reply.id);
          btns.appendChild(bt);
        });
      } else if (o.type === "list") {
        btns.appendChild(button("\u2630 " + a.button, "list-open", function () { openList(ev); }));
      } else if (o.type === "cta_url") {
        btns.appendChild(linkButton(a.parameters.display_text, a.parameters.url));
      } else if (o.type === "location_request_message") {
        btns.appendChild(button("\uD83D\uDCCD Send location", "", shareLocation));
      } else if (o.type === "flow") {
        btns.appendChild(button((a.parameters && a.parameters.flow_cta) || "Open", "", null));
      } else {
        btns.appendChild(button("[" + o.type + "] not shown in the sandbox", "", null));
      }
    } else if (t === "template") {
      var r = ev.template || {};
      if (r.header) {
        if (r.header.format === "TEXT") {
          var hd = el("div", "hdr"); hd.textContent = r.header.text || ""; b.appendChild(hd);
        } else {
          var k = r.header.format.toLowerCase();
          b.appendChild(media(k, r.header.text || mediaLabel(k)));
        }
      }
      b.appendChild(txt(fmt(r.body || "")));
      if (r.footer) { var tf = el("div", "foot"); tf.textContent = r.footer; b.appendChild(tf); }
      if (r.buttons && r.buttons.length) {
        btns = el("div", "btns");
        r.buttons.forEach(function (x) {
          if (x.type === "quick_reply") {
            var qb = button(x.text, "", function () { reply(ev, { index: x.index }); });
            qb.setAttribute("data-index", x.index);
            btns.appendChild(qb);
          } else if (x.type === "url" && x.url) {
            btns.appendChild(linkButton(x.text, x.url));
          } else if (x.type === "phone_number") {
            btns.appendChild(linkButton(x.text, "tel:" + x.phone));
          } else {
            btns.appendChild(button(x.text, "", null));
          }
        });
      }
    } else {
      b.appendChild(document.createTextNode("[" + t + "] (not shown in the sandbox)"));
    }
    finish(entry, "in");
    if (btns) entry.row.appendChild(btns);
    markRead(ev.id);
  }

  function renderUser(ev) {
    var m = ev.message, t = m.type;
    if (t === "reaction") return react(m.reaction.message_id, m.reaction.emoji);
    var entry = newRow("out", ev), b = entry.bubble;
    if (t === "text") {
      b.appendChild(txt(fmt(m.text.body)));
    } else if (t === "interactive") {
      var r = m.interactive.button_reply || m.interactive.list_reply || {};
      b.appendChild(txt(esc(r.title || "")));
      if (r.description) { var d = el("div", "foot"); d.textContent = r.description; b.appendChild(d); }
    } else if (t === "button") {
      b.appendChild(txt(esc(m.button.text)));
    } else if (t === "location") {
      var l = m.location;
      b.appendChild(media("location", l.name || "Location", l.latitude + ", " + l.longitude));
    } else {
      b.appendChild(document.createTextNode(ev.text || ("[" + t + "]")));
    }
    finish(entry, "out");
    scrollDown();
  }

  function react(id, emoji) {
    var entry = bubbles[id];
    if (!entry) return;
    var old = entry.row.querySelector(".reaction");
    if (old) old.remove();
    entry.row.classList.remove("has-reaction");
    if (emoji) {
      var r = el("span", "reaction");
      r.textContent = emoji;
      entry.bubble.appendChild(r);
      entry.row.classList.add("has-reaction");
    }
  }

  function showTyping() {
    hideTyping();
    typingRow = el("div", "row in typing");
    var b = el("div", "bubble", "typing<span class=\"dots\"><span>.</span><span>.</span><span>.</span></span>");
    typingRow.appendChild(b);
    chat.appendChild(typingRow);
    scrollDown();
    $("#sub").textContent = "typing\u2026";
    typingTimer = setTimeout(hideTyping, 25000);
  }
  function hideTyping() {
    if (typingTimer) { clearTimeout(typingTimer); typingTimer = null; }
    if (typingRow) { typingRow.remove(); typingRow = null; }
    if (info) $("#sub").textContent = subtitle();
  }

  function markRead(id) {
    if (document.visibilityState === "hidden") { unread.push(id); return; }
    api("/_sandbox/read", { id: id }).catch(function () {});
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") return;
    var list = unread; unread = [];
    list.forEach(markRead);
  });

  function apply(ev) {
    if (ev.kind === "user") {
      if (!bubbles[ev.id]) renderUser(ev);
    } else if (ev.kind === "bot") {
      if (!bubbles[ev.id]) renderBot(ev);
    } else if (ev.kind === "status") {
      var entry = bubbles[ev.id];
      if (!entry) return;
      if (ev.side === "user") setTicks(entry, ev.status);
      else entry.row.setAttribute("data-status", ev.status);
      if (ev.error && entry.ticks) entry.ticks.title = ev.error;
    } else if (ev.kind === "typing") {
      showTyping();
    } else if (ev.kind === "notice") {
      notice(ev.text);
    }
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function poll(gen) {
    if (gen !== generation) return;
    var url = "/_sandbox/events?after=" + after + "&user=" + encodeURIComponent(user.phone) + "&wait=25";
    fetch(url, { signal: controller.signal }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (j) {
      if (gen !== generation) return;
      $("#conn").className = "";
      j.events.forEach(function (ev) {
        try { apply(ev); } catch (e) { console.error("sandbox: event", ev, e); }
      });
      after = j.last;
      poll(gen);
    }).catch(function () {
      if (gen !== generation) return;
      $("#conn").className = "down";
      sleep(1500).then(function () { poll(gen); });
    });
  }

  function subtitle() {
    return info.description || ("+" + info.business.phone);
  }
  function start() {
    generation += 1;
    if (controller) controller.abort();
    controller = new AbortController();
    after = 0; bubbles = {}; unread = [];
    chat.innerHTML = "";
    hideTyping();
    $("#userbtn").textContent = "You: " + user.name + " (+" + user.phone + ")";
    $("#phone").value = user.phone;
    $("#uname").value = user.name;
    poll(generation);
  }

  function send(body) {
    body.from = user.phone; body.name = user.name;
    return api("/_sandbox/send", body).catch(function (e) {
      if (!/did not take/.test(e.message)) notice("Not sent: " + e.message);
    });
  }
  function shareLocation() {
    send({ type: "location", location: { latitude: 52.520008, longitude: 13.404954, name: "Sandbox place",
      address: "Alexanderplatz, Berlin" } });
  }

  $("#composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("#text"), text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text });
  });
  $("#loc").addEventListener("click", shareLocation);
  $("#userbtn").addEventListener("click", function () { $("#settings").classList.toggle("open"); });
  $("#settings").addEventListener("submit", function (e) {
    e.preventDefault();
    var phone = $("#phone").value.replace(/\D/g, ""), name = $("#uname").value.trim();
    if (!phone || !name) return;
    user = { phone: phone, name: name };
    try { localStorage.setItem("sandbox.user", JSON.stringify(user)); } catch (err) { /* private mode */ }
    $("#settings").classList.remove("open");
    start();
  });
  $("#sheet-bg").addEventListener("click", function (e) { if (e.target === $("#sheet-bg")) closeSheet(); });

  api("/_sandbox/info").then(function (i) {
    info = i;
    document.title = i.title + " \u2013 WhatsApp sandbox";
    $("#bizname").textContent = i.title;
    $("#avatar").textContent = (i.title || "B").charAt(0).toUpperCase();
    $("#sub").textContent = subtitle();
    $("#bizinfo").textContent = "Business +" + i.business.phone + " (phone number id " +
      i.business.phone_number_id + ")";
    user = i.user;
    try {
      var saved = JSON.parse(localStorage.getItem("sandbox.user") || "null");
      if (saved && saved.phone && saved.name) user = saved;
    } catch (err) { /* none saved */ }
    var q = new URLSearchParams(location.search);
    if (q.get("user")) user = { phone: q.get("user").replace(/\D/g, ""), name: q.get("name") || "User" };
    start();
    $("#text").focus();
  }).catch(function (e) { notice("The sandbox is not answering: " + e.message); });
})();
</script>
</body>
</html>
]==]

return sandbox
