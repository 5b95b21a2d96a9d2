--- Receiving Meta's webhooks: the GET handshake and signed POST notifications.
--
--     local webhook = require "whatsapp.webhook"
--     local hook = webhook.new{ app_secret = os.getenv "WA_APP_SECRET",
--                               verify_token = os.getenv "WA_VERIFY_TOKEN" }
--     -- GET:  local status, body = hook:verify(query)
--     -- POST: local events, err = hook:parse(raw_body, headers)
--
-- `parse` checks, in this order, the body size (413), the `X-Hub-Signature-256`
-- HMAC over the raw bytes (401), and the payload (400), then returns every
-- message, status, error and change of the batch as flat events (see
-- doc/events.md). The signature check and the parser are C (`whatsapp.core`).
-- @module whatsapp.webhook
local core = require "whatsapp.core"
local errors = require "whatsapp.errors"

local type, pairs, ipairs, setmetatable, error = type, pairs, ipairs, setmetatable, error
local lower, gsub, char, tonumber = string.lower, string.gsub, string.char, tonumber

local webhook = {}

--- Default largest body accepted: Meta documents payloads of up to 3 MB.
webhook.MAX_BODY = 3 * 1024 * 1024

--- What JSON `null` becomes inside the generic sub-tables of events (equal to `cjson.null`).
webhook.null = core.null

--- The event fields decoded on first access (doc/events.md, "Lazy fields"): reading one gives
-- the same value an eager copy would, but `pairs` lists it only once it has been read.
webhook.LAZY_FIELDS = { "raw", "referral", "identity", "conversation", "pricing", "value" }

local Hook = {}
Hook.__index = Hook
Hook.__name = "whatsapp.webhook.Hook"

local function fail(status, code, message, path)
  return nil, errors.new{ status = status, code = code, message = message, path = path }
end

--- Create a webhook receiver.
-- @tparam table opts
-- @tparam[opt] string|{string,...} opts.app_secret the app secret, or several
--   (during a rotation a signature valid under any of them is accepted)
-- @tparam[opt] string opts.verify_token the token configured in the App Dashboard
-- @tparam[opt=3145728] integer opts.max_body largest body accepted, in bytes
-- @tparam[opt=false] boolean opts.skip_signature accept unsigned POSTs; only
--   allowed when no app secret is given (for local tests behind a trusted proxy)
-- @treturn Hook
-- @raise on invalid options (wrong types, empty secret list, both
--   app_secret and skip_signature)
function webhook.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("webhook.new: options must be a table", 2) end
  local secrets = opts.app_secret
  if type(secrets) == "string" then
    secrets = { secrets }
  elseif secrets ~= nil and type(secrets) ~= "table" then
    error("webhook.new: app_secret must be a string or a list of strings", 2)
  end
  if secrets then
    if #secrets == 0 then error("webhook.new: app_secret list is empty", 2) end
    for i, s in ipairs(secrets) do
      if type(s) ~= "string" or s == "" then
        error("webhook.new: app_secret[" .. i .. "] must be a non-empty string", 2)
      end
    end
  end
  if opts.verify_token ~= nil and (type(opts.verify_token) ~= "string" or opts.verify_token == "") then
    error("webhook.new: verify_token must be a non-empty string", 2)
  end
  local max_body = opts.max_body or webhook.MAX_BODY
  if type(max_body) ~= "number" or max_body < 0 or max_body ~= max_body or max_body % 1 ~= 0 then
    error("webhook.new: max_body must be a non-negative integer", 2)
  end
  if opts.skip_signature ~= nil and type(opts.skip_signature) ~= "boolean" then
    error("webhook.new: skip_signature must be a boolean", 2)
  end
  if opts.skip_signature and secrets then
    error("webhook.new: skip_signature cannot be combined with app_secret", 2)
  end
  local self = setmetatable({
    verify_token = opts.verify_token,
    max_body = max_body,
    skip_signature = opts.skip_signature and true or false,
    _parser = core.parser(),
  }, Hook)
  if secrets then self._verifier = core.verifier(secrets) end
  return self
end

--- Answer Meta's GET verification handshake.
-- @tparam table query the decoded query string (`hub.mode`, `hub.verify_token`,
--   `hub.challenge`); see `webhook.decode_query`
-- @treturn integer status: 200, 400 (no challenge) or 403
-- @treturn string the challenge, verbatim, with 200; else a short reason
function Hook:verify(query)
  if type(query) ~= "table" then error("hook:verify: query must be a table", 2) end
  local token = query["hub.verify_token"]
  if not self.verify_token then return 403, "no verify token configured" end
  if query["hub.mode"] ~= "subscribe" then return 403, "hub.mode is not subscribe" end
  if type(token) ~= "string" or not core.equal(token, self.verify_token) then
    return 403, "verify token does not match"
  end
  local challenge = query["hub.challenge"]
  if type(challenge) == "table" then return 403, "hub.challenge given more than once" end
  if type(challenge) ~= "string" or challenge == "" then return 400, "hub.challenge is missing" end
  return 200, challenge
end

-- The X-Hub-Signature-256 value from a header table, matched without regard to
-- case. Returns the value, or nil and a reason.
local SIG = "x-hub-signature-256"
local SIG_CANON = "X-Hub-Signature-256"
local SIGLEN = #SIG
local function signature_header(headers)
  if headers == nil then return nil, "missing X-Hub-Signature-256 header" end
  if type(headers) ~= "table" then error("hook:parse: headers must be a table", 3) end
  -- Scan every name (the two usual spellings compare as they are, others get a
  -- length test first): the same header under two spellings is as ambiguous as
  -- a repeated one.
  local v
  for k, hv in pairs(headers) do
    if k == SIG or k == SIG_CANON
      or (type(k) == "string" and #k == SIGLEN and lower(k) == SIG) then
      if v ~= nil then return nil, "X-Hub-Signature-256 header given twice" end
      v = hv
    end
  end
  if v == nil then return nil, "missing X-Hub-Signature-256 header" end
  if type(v) == "table" then
    if #v ~= 1 then return nil, "X-Hub-Signature-256 header given more than once" end
    v = v[1]
  end
  if type(v) ~= "string" then return nil, "X-Hub-Signature-256 header is not a string" end
  return v
end

--- Verify and parse a webhook POST.
-- @tparam string raw_body the request body exactly as received
-- @tparam table headers request headers (names in any case; a repeated header
--   may be a list of values, as `ngx.req.get_headers` gives it)
-- @treturn[1] {table,...} the events, in payload order (possibly empty)
-- @treturn[2] nil
-- @treturn[2] table error object: `status` 413 (`too_large`), 401
--   (`invalid_signature`) or 400 (`invalid_payload`, with `path`)
-- @raise when raw_body is not a string or headers not a table
function Hook:parse(raw_body, headers)
  if type(raw_body) ~= "string" then error("hook:parse: raw_body must be a string", 2) end
  if #raw_body > self.max_body then
    return fail(413, "too_large", "body of " .. #raw_body .. " bytes is over the limit of "
      .. self.max_body .. " bytes")
  end
  local verifier = self._verifier
  if verifier then
    local h, why = signature_header(headers)
    if not h then return fail(401, "invalid_signature", why) end
    if not verifier:check(raw_body, h) then
      if #h ~= 71 or not h:find("^sha256=%x+$") then
        return fail(401, "invalid_signature", "malformed X-Hub-Signature-256 header")
      end
      return fail(401, "invalid_signature", "signature does not match the body")
    end
  elseif not self.skip_signature then
    return fail(401, "invalid_signature",
      "no app secret configured: refusing an unverifiable webhook (set app_secret)")
  end
  local events, msg, path = self._parser:parse(raw_body, errors.metatable)
  if not events then
    return fail(400, "invalid_payload", msg, path ~= "" and path or nil)
  end
  return events
end

--- Release the hook's native resources now (also done by the garbage collector).
-- Safe to call twice; the hook cannot be used afterwards.
function Hook:close()
  if self._verifier then self._verifier:close() end
  self._parser:close()
end

--- The `X-Hub-Signature-256` value Meta would send for `raw_body`.
-- @tparam string raw_body
-- @tparam string secret the app secret
-- @treturn string `"sha256=" .. hex`
-- @function sign
webhook.sign = core.sign

--- Check an `X-Hub-Signature-256` value against a body, in constant time.
-- @tparam string raw_body
-- @tparam string|nil header_value (nil, malformed or wrong values give false)
-- @tparam string|{string,...} secrets one app secret or several
-- @treturn boolean
function webhook.check_signature(raw_body, header_value, secrets)
  if type(secrets) == "table" then
    return core.check_signature(raw_body, header_value, (table.unpack or unpack)(secrets))
  end
  return core.check_signature(raw_body, header_value, secrets)
end

local function unhex(h) return char(tonumber(h, 16)) end

--- Decode a URL query string (`a=1&b=x%20y`) into a table; a repeated name
-- gives a list of its values, as in OpenResty.
-- @tparam string qs
-- @treturn table
function webhook.decode_query(qs)
  local out = {}
  if type(qs) ~= "string" then return out end
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = gsub(gsub(k, "+", " "), "%%(%x%x)", unhex)
    v = gsub(gsub(v, "+", " "), "%%(%x%x)", unhex)
    local old = out[k]
    if old == nil then
      out[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      out[k] = { old, v }
    end
  end
  return out
end

return webhook
