--- The Graph API client: messages, media, templates, business profile and
-- phone numbers, with validation before sending, retries and pacing.
--
--     local whatsapp = require "whatsapp"
--     local client = whatsapp.client{
--       phone_number_id = "100000000000001",
--       access_token = os.getenv("WA_ACCESS_TOKEN"),
--       app_secret = os.getenv("WA_APP_SECRET"),   -- optional: adds appsecret_proof
--     }
--     local sent, err = client:send_text("15550002222", "Hello!")
--     if sent then print(sent.id, sent.wa_id) else print(err.code, err.message) end
--
-- Every call yields inside a loop task (`whatsapp.loop.spawn`) and blocks in a
-- plain script. Failures return `nil, err` with one error object type
-- (`whatsapp.errors`): `err.code` is Meta's code (`131047`, `190`, ...), a
-- transport token (`"timeout"`, `"connect"`, ...), `"validation"` (with
-- `err.path`) or `"http"` (a non-Graph answer); see `err.category`,
-- `err.retry`, `err.http_status`, `err.details`, `err.fbtrace_id`.
--
-- Retries: a failed call is tried again, with exponential backoff and full
-- jitter and honouring `Retry-After`, when the error says it may succeed later
-- and, for a send, only when Meta surely did not accept the first attempt
-- (a Graph error answer, connection refused, 429 / 503). After an ambiguous
-- failure (a timeout or a dropped connection once the request was written) a
-- send is not repeated unless `retry.ambiguous` is set, because the message may
-- already be on its way. Pacing: a rate per phone number (default 80/s) and
-- spacing per recipient (bursts of 45, then one every 6 s) keep sends under
-- Meta's throughput and pair rate limits; waiting yields, never blocks.
-- @module whatsapp.client
local cjson = require "cjson.safe"
local errors = require "whatsapp.errors"
local http = require "whatsapp.http"
local loop = require "whatsapp.loop"
local message = require "whatsapp.message"
local rate = require "whatsapp.rate"
local validate = require "whatsapp.validate"
local crypto = require "whatsapp.crypto"

local client = {}

local setmetatable, getmetatable, type, tostring, tonumber, pairs, ipairs, next, pcall = setmetatable, getmetatable,
  type, tostring, tonumber, pairs, ipairs, next, pcall
local concat, sort = table.concat, table.sort
local random, min, max = math.random, math.min, math.max
local format, gsub, byte = string.format, string.gsub, string.byte
local encode, decode = cjson.encode, cjson.decode

local VERSION = "0.1.0"
local DEFAULT_BASE = "https://graph.facebook.com"
local DEFAULT_API = "v23.0"

local NO_OPTS = setmetatable({}, { __newindex = function() error("read-only", 2) end })

local Client = {}
Client.__index = Client
Client.__name = "whatsapp.Client"
-- The token must not show up when a client is printed or logged.
Client.__tostring = function(c) return "whatsapp.Client(" .. tostring(c.phone_number_id) .. ")" end

local function urlencode(s)
  return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

--- Percent-encode a table as a query string (keys sorted, so URLs are stable).
-- @tparam table q
-- @treturn string
function client.query_string(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = urlencode(k) .. "=" .. urlencode(q[k]) end
  return concat(out, "&")
end
local query_string = client.query_string

local RETRY_DEFAULTS = { attempts = 4, base = 0.5, cap = 20, budget = 60, ambiguous = false }

local function check_string(opts, k, required)
  local v = opts[k]
  if v == nil and not required then return nil end
  if type(v) ~= "string" or v == "" then
    error("whatsapp.client: option " .. k .. " must be a non-empty string", 3)
  end
  return v
end

--- Make a client.
-- @tparam table opts
--   `phone_number_id` (the sending number), `access_token` (required),
--   `api_version` ("v23.0"), `base_url` ("https://graph.facebook.com"),
--   `app_secret` (adds `appsecret_proof` to every call), `waba_id` (needed for
--   templates and phone numbers), `timeout` (seconds, default 30),
--   `connect_timeout` (10),
--   `retry` (false, or `{ attempts = 4, base = 0.5, cap = 20, budget = 60,
--   ambiguous = false }`: tries after the first, the backoff's first step and
--   ceiling, the total seconds it may wait, and whether to repeat a send after
--   an ambiguous failure),
--   `rate` (false, or `{ per_second = 80, burst, pair = { burst = 45,
--   interval = 6 } | false }`),
--   `validate` (default true: check bodies against Meta's limits before sending),
--   `http` (an `http.session()` or any table with `request(self, req)`; default:
--   the process's shared transport), `templates` (a `whatsapp.templates`
--   registry used by `send_template`)
-- @return the client
function client.new(opts)
  if type(opts) ~= "table" then error("whatsapp.client: table expected", 2) end
  local token = check_string(opts, "access_token", true)
  local self = setmetatable({
    phone_number_id = opts.phone_number_id ~= nil and tostring(opts.phone_number_id) or nil,
    waba_id = opts.waba_id ~= nil and tostring(opts.waba_id) or nil,
    api_version = check_string(opts, "api_version") or DEFAULT_API,
    base_url = (check_string(opts, "base_url") or DEFAULT_BASE):gsub("/+$", ""),
    timeout = opts.timeout or 30,
    connect_timeout = opts.connect_timeout or 10,
    validate = opts.validate ~= false,
    templates = opts.templates,
  }, Client)
  if self.phone_number_id == "" then error("whatsapp.client: phone_number_id is empty", 2) end
  -- Secrets live in a closure-free private table the client never prints.
  local secret = check_string(opts, "app_secret")
  self.private = setmetatable({
    auth = "Bearer " .. token,
    token = token,
    proof = secret and crypto.appsecret_proof(token, secret) or nil,
  }, { __tostring = function() return "(secrets)" end })
  self.json_headers = {
    Authorization = self.private.auth, ["Content-Type"] = "application/json",
    ["User-Agent"] = "lua-whatsapp/" .. VERSION,
  }
  self.plain_headers = { Authorization = self.private.auth, ["User-Agent"] = "lua-whatsapp/" .. VERSION }

  if opts.retry == false then
    self.retry = false
  else
    local r = {}
    for k, v in pairs(RETRY_DEFAULTS) do r[k] = v end
    if type(opts.retry) == "table" then for k, v in pairs(opts.retry) do r[k] = v end end
    self.retry = r
  end
  if opts.rate ~= false then
    local r = type(opts.rate) == "table" and opts.rate or {}
    self.pace = rate.new{ per_second = r.per_second or 80, burst = r.burst }
    if r.pair ~= false then self.pair = rate.keyed(type(r.pair) == "table" and r.pair or nil) end
  end

  local h = opts.http
  if h == nil then
    self.transport = http.request
  elseif type(h) == "table" and type(h.request) == "function" then
    self.transport = function(req) return h:request(req) end
  else
    error("whatsapp.client: http must be a session (a table with a request method)", 2)
  end
  return self
end

-- URL of a Graph path (relative to the version) with its query.
local function graph_url(self, path, query)
  local url = self.base_url .. "/" .. self.api_version .. "/" .. path
  local proof = self.private.proof
  if proof then
    query = query or {}
    query.appsecret_proof = proof
  end
  if query and next(query) ~= nil then url = url .. "?" .. query_string(query) end
  return url
end

-- Whether Meta surely did not act on a failed attempt (so sending it again
-- cannot duplicate a message).
local function surely_refused(e)
  local code = e.code
  if type(code) == "number" then return true end
  if code == "connect" or code == "resolve" then return true end
  if code == "http" then return e.http_status == 429 or e.http_status == 503 end
  return false
end

-- Send `req`, retrying per the client's policy. `idempotent` calls (reads,
-- deletes, mark-as-read) may be repeated after an ambiguous failure.
-- Returns the response (2xx) or nil, err.
local function perform(self, req, idempotent, recipient, paced)
  local policy = self.retry
  local attempt, waited = 0, 0
  while true do
    -- A paced call takes a slot for every attempt, retries included, so a retry
    -- does not jump ahead of the senders waiting their turn.
    if paced then
      if self.pair and recipient then self.pair:take(recipient) end
      if self.pace then self.pace:take() end
    end
    local res, e = self.transport(req)
    if res then
      local status = res.status
      if status >= 200 and status < 300 then return res end
      e = errors.from_graph(status, res.body, res.headers)
    end
    e.attempts = attempt + 1
    if not policy or attempt >= policy.attempts or not e.retry then return nil, e end
    if not (idempotent or policy.ambiguous or surely_refused(e)) then return nil, e end
    -- Full jitter over an exponential ceiling; Retry-After is a floor.
    local delay = random() * min(policy.cap, policy.base * 2 ^ attempt)
    if e.retry_after then delay = max(delay, e.retry_after) end
    if waited + delay > policy.budget then return nil, e end
    -- Every sender of this number backs off on a throughput answer, and every
    -- send to this recipient on a pair rate answer.
    if e.code == 130429 and self.pace then self.pace:hold(delay) end
    if e.code == 131056 and self.pair and recipient then self.pair:hold(recipient, delay) end
    loop.sleep(delay)
    waited = waited + delay
    attempt = attempt + 1
  end
end

local function decode_body(res)
  local body = res.body
  if body == nil or body == "" then return {} end
  local v = decode(body)
  if type(v) ~= "table" then
    return nil, errors.new{
      code = "invalid_response", message = "the Graph API answered with a body that is not JSON",
      http_status = res.status, status = res.status, category = "server", retry = false,
    }
  end
  return v
end

--- Call any Graph API endpoint.
-- @tparam string method "GET", "POST", "DELETE"
-- @tparam string path relative to the API version, e.g. "123/messages"
-- @tparam[opt] table opts `query` (table), `json` (a table sent as the JSON
--   body) or `body` (JSON text), `multipart` (parts, see `whatsapp.http`), `idempotent` (may be
--   repeated after an ambiguous failure; default true except for POST),
--   `paced` (take a slot of the number's rate, and of `recipient`'s, before
--   each attempt), `recipient`, `timeout`
-- @return the decoded JSON answer, or nil and an error object
function Client:request(method, path, opts)
  if type(method) ~= "string" or type(path) ~= "string" then
    error("client:request: method and path expected", 2)
  end
  opts = opts or {}
  local req = {
    method = method, url = graph_url(self, path, opts.query),
    timeout = opts.timeout or self.timeout, connect_timeout = self.connect_timeout,
  }
  if opts.body ~= nil then
    req.body, req.headers = opts.body, self.json_headers
  elseif opts.json ~= nil then
    local body, jerr = encode(opts.json)
    if not body then error("client:request: the body cannot be encoded as JSON: " .. tostring(jerr), 2) end
    req.body, req.headers = body, self.json_headers
  elseif opts.multipart then
    req.multipart, req.headers = opts.multipart, self.plain_headers
  else
    req.headers = self.plain_headers
  end
  local idempotent = opts.idempotent
  if idempotent == nil then idempotent = method ~= "POST" end
  local res, err = perform(self, req, idempotent, opts.recipient, opts.paced)
  if not res then return nil, err end
  return decode_body(res)
end

local function need_phone(self)
  if not self.phone_number_id then error("whatsapp.client: this call needs phone_number_id", 3) end
  return self.phone_number_id
end

local function need_waba(self)
  if not self.waba_id then error("whatsapp.client: this call needs waba_id", 3) end
  return self.waba_id
end

-- POST a JSON body to /{phone_number_id}/messages and make the result of a send.
-- `recipient` is paced (unless `is_read`); `idempotent` as for perform.
local function post_message(self, text, recipient, is_read, idempotent, timeout)
  -- The hot path: the URL is made once per client, and no options table per send.
  local url = self.messages_url
  if not url then
    url = graph_url(self, self.phone_number_id .. "/messages")
    self.messages_url = url
  end
  local res, err = perform(self, {
    method = "POST", url = url, body = text, headers = self.json_headers,
    timeout = timeout or self.timeout, connect_timeout = self.connect_timeout,
  }, idempotent, recipient, not is_read)
  if not res then return nil, err end
  local body, derr = decode_body(res)
  if not body then return nil, derr end
  if is_read then return { success = body.success == true, response = body } end
  local m = type(body.messages) == "table" and body.messages[1] or nil
  local c = type(body.contacts) == "table" and body.contacts[1] or nil
  if type(m) ~= "table" or type(m.id) ~= "string" then
    return nil, errors.new{
      code = "invalid_response", message = "the Graph API accepted the message but sent no message id",
      category = "server", retry = false,
    }
  end
  return {
    id = m.id, message_status = m.message_status,
    wa_id = type(c) == "table" and c.wa_id or nil, input = type(c) == "table" and c.input or nil,
    response = body,
  }
end

local text_quick, encode_text, build_text = validate.text_quick, message.encode_text, message.text

-- The fields of a text body exactly as `message.text` builds it for a phone number with no
-- option but preview_url (no metatables, nothing else): to, body, preview_url.
-- Anything else: nil.
local TEXT_FIELDS = { messaging_product = "whatsapp", recipient_type = "individual", type = "text" }
local function plain_text_body(msg)
  if getmetatable(msg) ~= nil then return nil end
  local to, text, fields = nil, nil, 0
  for k, v in next, msg do
    if k == "to" then
      to = v
    elseif k == "text" then
      text = v
    elseif TEXT_FIELDS[k] ~= v then
      return nil
    end
    fields = fields + 1
  end
  -- to, text and the three fixed fields
  if fields ~= 5 or type(text) ~= "table" or getmetatable(text) ~= nil then return nil end
  local body, preview = text.body, text.preview_url
  fields = 0
  for _ in next, text do fields = fields + 1 end
  if fields ~= (preview == nil and 1 or 2) or (preview ~= nil and type(preview) ~= "boolean") then
    return nil
  end
  if not text_quick(to, body) then return nil end
  return to, body, preview
end

--- Send a message body (as made by `whatsapp.message`): validated, paced,
-- posted to `/{phone_number_id}/messages`, retried per the policy.
-- A text to a phone number of digits, exactly as `message.text` builds it with no
-- option but `preview_url`, is checked by `validate.text_quick` and written by
-- `message.encode_text` (the same JSON in a fixed field order); anything else is
-- checked by `validate.message` and written by `message.encode`.
-- @tparam table msg
-- @tparam[opt] table opts `validate` (false skips the checks), `timeout`
-- @return `{ id = wamid, wa_id =, input =, message_status =, response = }`
--   (for a mark-as-read body: `{ success = true }`), or nil and an error object
function Client:send(msg, opts)
  if type(msg) ~= "table" then error("client:send: message table expected", 2) end
  need_phone(self)
  opts = opts or NO_OPTS
  if msg.type == "text" then
    local to, body, preview = plain_text_body(msg)
    if to then return post_message(self, encode_text(to, body, preview), to, false, false, opts.timeout) end
  end
  if self.validate and opts.validate ~= false then
    local ok, verr = validate.message(msg)
    if not ok then return nil, verr end
  end
  local is_read = msg.status == "read"
  -- message.encode keeps the builders' empty arrays as [] (lua-cjson 2.1 has no array marker).
  local ok, text = pcall(message.encode, msg)
  if not ok then error("client:send: the message cannot be encoded as JSON: " .. tostring(text), 2) end
  return post_message(self, text, msg.to or msg.recipient, is_read, is_read or msg.type == "reaction", opts.timeout)
end
local plain_send = Client.send

-- Convenience senders: client:send_<kind>(...) = client:send(message.<kind>(...)) (send_text:
-- below).
local SENDERS = {
  "image", "audio", "video", "document", "sticker", "location", "contacts",
  "buttons", "list", "cta_url", "flow", "location_request", "product", "product_list",
  "catalog", "call_permission_request", "reaction",
}
for _, kind in ipairs(SENDERS) do
  local build = message[kind]
  if build then
    Client["send_" .. kind] = function(self, ...)
      return self:send(build(...))
    end
  end
end

-- send_text's options when they are none or only preview_url (a boolean): the value of
-- preview_url (nil when absent), or NOT_PLAIN.
local NOT_PLAIN = {}
local function plain_text_opts(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then return NOT_PLAIN end
  local k, v = next(opts)
  if k == nil then return nil end
  if k ~= "preview_url" or type(v) ~= "boolean" or next(opts, k) ~= nil then return NOT_PLAIN end
  return v
end

--- Send a text: `client:send(message.text(to, body, opts))`.
-- The commonest case (a phone number of digits, a valid body, no option but
-- `preview_url`, `send` not replaced on the client) skips the message table: the
-- body is checked by `validate.text_quick` and encoded by `message.encode_text`.
-- Anything else, and every failing check, takes the general way, which raises or
-- returns the validation error.
-- @tparam string to
-- @tparam string body
-- @tparam[opt] table opts as for `message.text`
-- @return as `send`
function Client:send_text(to, body, opts)
  local preview = plain_text_opts(opts)
  if preview ~= NOT_PLAIN and self.send == plain_send and self.phone_number_id and text_quick(to, body) then
    return post_message(self, encode_text(to, body, preview), to, false, false, nil)
  end
  return self:send(build_text(to, body, opts))
end

--- Send a template. With a `templates` registry that declares `name`, `values`
-- is a table of named values (checked against the declaration); otherwise
-- `language` and `components` are passed to `message.template`.
-- @tparam string to
-- @tparam string name
-- @param values_or_language
-- @param[opt] components
-- @param[opt] opts
-- @return as `send`
function Client:send_template(to, name, values_or_language, components, opts)
  local reg = self.templates
  if reg and type(values_or_language) ~= "string" and reg:get(name) then
    local msg, err = reg:build(to, name, values_or_language or {}, components)
    if not msg then return nil, err end
    return self:send(msg)
  end
  return self:send(message.template(to, name, values_or_language, components, opts))
end

local function event_parts(ev)
  if type(ev) == "table" then return ev.from, ev.id end
  return nil, ev
end

--- Reply to an inbound event (or a message id, with `to` in opts), quoting it.
-- `what` is a text, or a message table (its `to` and `context` are filled in).
-- @tparam table event an event from `whatsapp.webhook` (uses `from` and `id`)
-- @param what string or message table
-- @tparam[opt] table opts text options (`preview_url`, ...)
-- @return as `send`
function Client:reply(event, what, opts)
  local to, id = event_parts(event)
  to = to or (opts and opts.to)
  if not to then error("client:reply: an event with from, or opts.to, expected", 2) end
  local msg
  if type(what) == "string" then
    local o = { reply_to = id }
    if opts then for k, v in pairs(opts) do if k ~= "to" then o[k] = v end end end
    msg = message.text(to, what, o)
  elseif type(what) == "table" then
    msg = what
    if msg.to == nil and msg.recipient == nil then msg.to = to end
    if id and msg.context == nil and msg.type ~= "reaction" then msg.context = { message_id = id } end
  else
    error("client:reply: text or message table expected", 2)
  end
  return self:send(msg)
end

--- React to a message: `client:react(event, "👍")` or
-- `client:react(to, message_id, "👍")`; an empty or nil emoji removes it.
-- @return as `send`
function Client:react(a, b, c)
  if type(a) == "table" then return self:send(message.reaction(a.from, a.id, b)) end
  return self:send(message.reaction(a, b, c))
end

--- Mark a received message as read (optionally showing the typing indicator).
-- @param event_or_id an event or a wamid
-- @tparam[opt] table opts `typing = true`
-- @return `{ success = true }` or nil, err
function Client:mark_read(event_or_id, opts)
  local _, id = event_parts(event_or_id)
  return self:send(message.read(id, opts))
end

--- Mark as read and show the typing indicator (for up to 25 s or until the reply).
-- @param event_or_id
function Client:typing(event_or_id)
  local _, id = event_parts(event_or_id)
  return self:send(message.read(id, { typing = true }))
end

---------------------------------------------------------------------------
-- Media
---------------------------------------------------------------------------

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:close()
  return size
end

--- Upload media for sending. `src` is `{ file = path | data = string,
-- mime_type = "image/jpeg", filename = }`; the type and size are checked
-- against Meta's limits first.
-- @tparam table src
-- @return the media id, or nil and an error object
function Client:upload(src)
  if type(src) ~= "table" or (src.file == nil and src.data == nil) then
    error("client:upload: { file = path } or { data = string } expected", 2)
  end
  if type(src.mime_type) ~= "string" then error("client:upload: mime_type expected", 2) end
  local size
  if src.data ~= nil then
    if type(src.data) ~= "string" then error("client:upload: data must be a string", 2) end
    size = #src.data
  else
    size = file_size(src.file)
    if not size then
      return nil, errors.new{ code = "io", message = "cannot read " .. tostring(src.file), category = "media",
        retry = false }
    end
  end
  local ok, verr = validate.media_upload(src.mime_type, size, src)
  if not ok then return nil, verr end
  local filename = src.filename or (src.file and src.file:match("[^/]+$")) or "upload"
  local body, err = self:request("POST", need_phone(self) .. "/media", {
    multipart = {
      { name = "messaging_product", data = "whatsapp" },
      { name = "type", data = src.mime_type },
      { name = "file", data = src.data, file = src.file, filename = filename, type = src.mime_type },
    },
  })
  if not body then return nil, err end
  if type(body.id) ~= "string" then
    return nil, errors.new{ code = "invalid_response", message = "upload answered without an id",
      category = "server", retry = false }
  end
  return body.id
end

--- Metadata of a media id: `{ url, mime_type, sha256 (hex), file_size, id }`.
-- The URL is valid for five minutes and needs the access token.
-- @tparam string id
-- @return table or nil, err
function Client:media(id)
  if type(id) ~= "string" or id == "" then error("client:media: media id expected", 2) end
  local q = self.phone_number_id and { phone_number_id = self.phone_number_id } or nil
  local body, err = self:request("GET", urlencode(id), { query = q })
  if not body then return nil, err end
  body.file_size = tonumber(body.file_size) or body.file_size
  return body
end

--- Download media to a file, streamed, with the access token; the sha256 and
-- size Meta reports are checked (a mismatch removes the file and fails with
-- code "media_mismatch"). An expired URL is fetched again once.
-- @param media a media id, or a table from `client:media` / an event's `media`
-- @tparam string path where to write
-- @return `{ path, size, sha256, mime_type }` or nil, err
function Client:download(media, path)
  if type(path) ~= "string" then error("client:download: path expected", 2) end
  local id = type(media) == "table" and media.id or media
  if type(id) ~= "string" then error("client:download: media id expected", 2) end
  for try = 1, 2 do
    local info, err = self:media(id)
    if not info then return nil, err end
    if type(info.url) ~= "string" then
      return nil, errors.new{ code = "invalid_response", message = "media metadata without url",
        category = "server", retry = false }
    end
    local limit = tonumber(info.file_size)
    local res, terr = perform(self, {
      method = "GET", url = info.url, headers = self.plain_headers, download = path,
      timeout = max(self.timeout, 120), connect_timeout = self.connect_timeout,
      max_size = limit and (limit + 1) or nil,
    }, true)
    if res then
      local want = type(info.sha256) == "string" and info.sha256:lower() or nil
      if (want and res.sha256 ~= want) or (limit and res.size ~= limit) then
        os.remove(path)
        return nil, errors.new{
          code = "media_mismatch", category = "media", retry = false,
          message = format("downloaded %d bytes with sha256 %s; Meta announced %s bytes with %s",
            res.size or -1, tostring(res.sha256), tostring(limit), tostring(want)),
        }
      end
      return { path = path, size = res.size, sha256 = res.sha256, mime_type = info.mime_type }
    end
    if not (try == 1 and terr.http_status == 404) then return nil, terr end
  end
end

--- Delete an uploaded media id.
-- @tparam string id
-- @return true or nil, err
function Client:delete_media(id)
  if type(id) ~= "string" or id == "" then error("client:delete_media: media id expected", 2) end
  local q = self.phone_number_id and { phone_number_id = self.phone_number_id } or nil
  local body, err = self:request("DELETE", urlencode(id), { query = q })
  if not body then return nil, err end
  return body.success == true
end

---------------------------------------------------------------------------
-- Templates, profile, phone numbers
---------------------------------------------------------------------------

-- Every page of a listing, following the `after` cursor (never the `next` URL,
-- which may point elsewhere and carry a token).
local function all_pages(self, path, query, cap)
  local out = {}
  query = query or {}
  for _ = 1, cap or 1000 do
    local q = {}
    for k, v in pairs(query) do q[k] = v end
    local body, err = self:request("GET", path, { query = q })
    if not body then return nil, err end
    if type(body.data) == "table" then
      for _, item in ipairs(body.data) do out[#out + 1] = item end
    end
    local paging = body.paging
    local after = type(paging) == "table" and paging.next and type(paging.cursors) == "table"
      and paging.cursors.after
    if type(after) ~= "string" or after == "" or after == query.after then break end
    query.after = after
  end
  return out
end

--- Every message template of the WABA (all pages).
-- @tparam[opt] table filter `name`, `status`, `category`, `language`, `fields`, `limit` (page size)
-- @return list or nil, err
function Client:templates_list(filter)
  local q = {}
  if filter then for k, v in pairs(filter) do q[k] = v end end
  return all_pages(self, need_waba(self) .. "/message_templates", q)
end

--- One template by id.
-- @tparam string id
-- @return table or nil, err
function Client:template(id)
  return self:request("GET", urlencode(id))
end

--- Create a template on the WABA (`{ name, category, language,
-- components, parameter_format? }`). Returns `{ id, status, category }`.
-- @tparam table def
-- @return table or nil, err
function Client:create_template(def)
  if type(def) ~= "table" then error("client:create_template: table expected", 2) end
  return self:request("POST", need_waba(self) .. "/message_templates", { json = def })
end

--- Edit a template's components or category.
-- @tparam string id
-- @tparam table changes
-- @return true or nil, err
function Client:update_template(id, changes)
  local body, err = self:request("POST", urlencode(id), { json = changes })
  if not body then return nil, err end
  return body.success == true
end

--- Delete a template by name (every language), or one of them by `hsm_id`.
-- @tparam string name
-- @tparam[opt] string hsm_id
-- @return true or nil, err
function Client:delete_template(name, hsm_id)
  local body, err = self:request("DELETE", need_waba(self) .. "/message_templates",
    { query = { name = name, hsm_id = hsm_id } })
  if not body then return nil, err end
  return body.success == true
end

local PROFILE_FIELDS = "about,address,description,email,profile_picture_url,websites,vertical"

--- The business profile of the phone number.
-- @tparam[opt] string fields comma-separated
-- @return table or nil, err
function Client:business_profile(fields)
  local body, err = self:request("GET", need_phone(self) .. "/whatsapp_business_profile",
    { query = { fields = fields or PROFILE_FIELDS } })
  if not body then return nil, err end
  return type(body.data) == "table" and body.data[1] or body
end

--- Update the business profile (`about`, `address`, `description`, `email`,
-- `websites`, `vertical`, `profile_picture_handle`).
-- @tparam table fields
-- @return true or nil, err
function Client:update_business_profile(fields)
  local body = { messaging_product = "whatsapp" }
  for k, v in pairs(fields) do body[k] = v end
  local res, err = self:request("POST", need_phone(self) .. "/whatsapp_business_profile",
    { json = body, idempotent = true })
  if not res then return nil, err end
  return res.success == true
end

--- Every phone number of the WABA.
-- @return list or nil, err
function Client:phone_numbers()
  return all_pages(self, need_waba(self) .. "/phone_numbers")
end

--- One phone number (default: the client's).
-- @tparam[opt] string id
-- @return table or nil, err
function Client:phone_number(id)
  return self:request("GET", urlencode(id or need_phone(self)))
end

--- A copy of this client for another phone number of the same account.
-- Shares the transport and the rate policy's settings (not its state).
-- @tparam string phone_number_id
-- @return client
function Client:for_number(phone_number_id)
  local c = setmetatable({}, Client)
  for k, v in pairs(self) do c[k] = v end
  c.phone_number_id = tostring(phone_number_id)
  c.messages_url = nil
  if self.pace then
    c.pace = rate.new{ per_second = 1 / self.pace.interval, burst = self.pace.tolerance / self.pace.interval + 1 }
  end
  return c
end

return setmetatable(client, { __call = function(_, opts) return client.new(opts) end })
