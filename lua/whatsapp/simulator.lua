--- A local stand-in for Meta's WhatsApp Cloud API (the Graph API), for tests.
--
--     local simulator = require "whatsapp.simulator"
--     local sim = assert(simulator.start{ access_token = "TOKEN" })
--     sim:user_wrote("15550002222")            -- opens the 24-hour window
--     -- point a client at sim.url, e.g. POST sim.url .. "/v23.0/100000000000001/messages"
--     --   Authorization: Bearer TOKEN
--     --   {"messaging_product":"whatsapp","to":"15550002222","type":"text","text":{"body":"hi"}}
--     print(#sim:messages())                    -- 1
--     sim:fault{ code = 130429, times = 1 }     -- the next request gets a rate-limit error
--     sim:close()
--
-- It runs on the project's own listener (`whatsapp.server`) in the process's
-- loop, so it serves while the test's tasks (or a plain script's blocking
-- calls) wait. It checks request bodies the way Meta does and answers Meta's
-- shapes: messages (text, media, location, contacts, interactive, template,
-- reaction, mark as read), media upload / info / download / delete, template
-- management with paging, the business profile and phone numbers. Errors are
-- Graph error bodies (`{"error":{"message":"(#131047) Re-engagement message",
-- "type":"OAuthException","code":131047,"error_data":{...},"fbtrace_id":...}}`)
-- with the HTTP status Meta uses (400, 401 for code 190, 500 for server
-- errors). It enforces the token, `appsecret_proof`, the 24-hour window, the
-- throughput per phone number and the pair rate per recipient, records every
-- request, injects faults (error codes, statuses, Retry-After, delays, dropped
-- connections), and can play the WhatsApp side of a bot's webhook: signed
-- `sent`/`delivered`/`read` statuses and inbound user messages.
--
-- Paths are `/{version}/{object}[/{edge}]`, any `vNN.N` version or none.
-- Media bytes are served at `sim.url .. "/media/<id>?hash=..."`.
-- @module whatsapp.simulator
local loop = require "whatsapp.loop"
local server = require "whatsapp.server"
local http = require "whatsapp.http"
local errors = require "whatsapp.errors"
local crypto = require "whatsapp.crypto"
local webhook = require "whatsapp.webhook"
local core = require "whatsapp.core"
local cjson_safe = require "cjson.safe"

local simulator = {}

local type, pairs, ipairs, next, tostring, tonumber = type, pairs, ipairs, next, tostring, tonumber
local setmetatable, select, error, xpcall = setmetatable, select, error, xpcall
local floor, min, max, random = math.floor, math.min, math.max, math.random
local byte, char, format, rep, sub, gsub, lower, upper, find, concat =
  string.byte, string.char, string.format, string.rep, string.sub, string.gsub, string.lower, string.upper,
  string.find, table.concat
local sort, remove = table.sort, table.remove
local traceback = debug.traceback
local os_time = os.time

-- A private lua-cjson instance: strict numbers on input, no Lua error on output.
local json = cjson_safe.new()
json.decode_invalid_numbers(false)
json.decode_max_depth(200)
json.encode_invalid_numbers("null")
json.encode_sparse_array(true)

-- lua-cjson encodes an empty table as {}: where Meta sends [], this marker is
-- put in its place and replaced in the encoded text.
local EMPTY = "\0\1whatsapp.simulator.empty_array\1\0"
local EMPTY_JSON = json.encode(EMPTY)

local function encode(v)
  local s = assert(json.encode(v))
  if find(s, EMPTY_JSON, 1, true) then
    s = gsub(s, "\"\\u0000\\u0001whatsapp%.simulator%.empty_array\\u0001\\u0000\"", "[]")
  end
  return s
end

--- Default limits of uploaded media per MIME type (bytes), after Meta's media page.
simulator.MEDIA_TYPES = {
  ["audio/aac"] = "audio", ["audio/amr"] = "audio", ["audio/mpeg"] = "audio",
  ["audio/mp4"] = "audio", ["audio/ogg"] = "audio",
  ["text/plain"] = "document", ["application/pdf"] = "document",
  ["application/vnd.ms-powerpoint"] = "document", ["application/msword"] = "document",
  ["application/vnd.ms-excel"] = "document",
  ["application/vnd.openxmlformats-officedocument.wordprocessingml.document"] = "document",
  ["application/vnd.openxmlformats-officedocument.presentationml.presentation"] = "document",
  ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"] = "document",
  ["image/jpeg"] = "image", ["image/png"] = "image",
  ["image/webp"] = "sticker",
  ["video/mp4"] = "video", ["video/3gpp"] = "video",
}

--- Largest upload per media kind (bytes); `opts.media_limits` overrides any of them.
simulator.MEDIA_LIMITS = {
  audio = 16 * 1024 * 1024, document = 100 * 1024 * 1024, image = 5 * 1024 * 1024,
  sticker = 500 * 1024, video = 16 * 1024 * 1024,
}

-- ---- small helpers -----------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = floor(v / 262144) % 64 + 1, floor(v / 4096) % 64 + 1
    local c3, c4 = floor(v / 64) % 64 + 1, v % 64 + 1
    out[#out + 1] = sub(B64, c1, c1) .. sub(B64, c2, c2)
      .. (b and sub(B64, c3, c3) or "=") .. (c and sub(B64, c4, c4) or "=")
  end
  return concat(out)
end

-- SHA-256 of a string as 64 lowercase hex digits. The C core has no plain
-- digest (only HMAC), so this is done in Lua: with native operators on Lua
-- 5.3+ (compiled from text so LuaJIT never parses them), with `bit` on LuaJIT.
local sha256_hex
do
  local K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  }
  local H0 = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local compress, tohex
  local bit = rawget(_G, "bit")
  if bit then
    local band, bor, bxor, bnot, ror = bit.band, bit.bor, bit.bxor, bit.bnot, bit.ror
    local rshift, lshift, tobit = bit.rshift, bit.lshift, bit.tobit
    tohex = function(x) return bit.tohex(x, 8) end
    compress = function(H, s, off, w)
      for j = 0, 15 do
        local a, b, c, d = byte(s, off + j * 4, off + j * 4 + 3)
        w[j] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
      end
      for j = 16, 63 do
        local x, y = w[j - 15], w[j - 2]
        local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
        local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
        w[j] = tobit(w[j - 16] + s0 + w[j - 7] + s1)
      end
      local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
      for j = 0, 63 do
        local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
        local ch = bxor(band(e, f), band(bnot(e), g))
        local t1 = h + S1 + ch + K[j + 1] + w[j]
        local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
        local maj = bxor(band(a, b), band(a, c), band(b, c))
        h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + S0 + maj)
      end
      H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
      H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
    end
  else
    tohex = function(x) return format("%08x", x) end
    compress = assert(load([[
      local K, byte = ...
      local M = 0xffffffff
      local function ror(x, n) return ((x >> n) | (x << (32 - n))) & M end
      return function(H, s, off, w)
        for j = 0, 15 do
          local a, b, c, d = byte(s, off + j * 4, off + j * 4 + 3)
          w[j] = (a << 24) | (b << 16) | (c << 8) | d
        end
        for j = 16, 63 do
          local x, y = w[j - 15], w[j - 2]
          local s0 = ror(x, 7) ~ ror(x, 18) ~ (x >> 3)
          local s1 = ror(y, 17) ~ ror(y, 19) ~ (y >> 10)
          w[j] = (w[j - 16] + s0 + w[j - 7] + s1) & M
        end
        local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
        for j = 0, 63 do
          local S1 = ror(e, 6) ~ ror(e, 11) ~ ror(e, 25)
          local ch = (e & f) ~ ((~e) & g)
          local t1 = h + S1 + ch + K[j + 1] + w[j]
          local S0 = ror(a, 2) ~ ror(a, 13) ~ ror(a, 22)
          local maj = (a & b) ~ (a & c) ~ (b & c)
          h, g, f, e, d, c, b, a = g, f, e, (d + t1) & M, c, b, a, (t1 + S0 + maj) & M
        end
        H[1], H[2], H[3], H[4] = (H[1] + a) & M, (H[2] + b) & M, (H[3] + c) & M, (H[4] + d) & M
        H[5], H[6], H[7], H[8] = (H[5] + e) & M, (H[6] + f) & M, (H[7] + g) & M, (H[8] + h) & M
      end
    ]], "=sha256", "t"))(K, byte)
  end
  sha256_hex = function(msg)
    local n = #msg
    local bits = n * 8
    local tail = { "\128", rep("\0", (55 - n) % 64) }
    for i = 7, 0, -1 do tail[#tail + 1] = char(floor(bits / 256 ^ i) % 256) end
    msg = msg .. concat(tail)
    local H = { H0[1], H0[2], H0[3], H0[4], H0[5], H0[6], H0[7], H0[8] }
    local w = {}
    for off = 1, #msg, 64 do compress(H, msg, off, w) end
    local out = {}
    for i = 1, 8 do out[i] = tohex(H[i]) end
    return concat(out)
  end
  if type(core.sha256) == "function" then sha256_hex = core.sha256 end
end
simulator.sha256 = sha256_hex

-- Characters (UTF-8 code points) in s.
local function ulen(s)
  local _, cont = gsub(s, "[\128-\191]", "")
  return #s - cont
end

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local function token(n)
  local t = {}
  for i = 1, n do
    local k = random(1, #ALNUM)
    t[i] = sub(ALNUM, k, k)
  end
  return concat(t)
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

local function is_object(t)
  return type(t) == "table" and (next(t) == nil or not is_list(t))
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- A user's id as Meta resolves it: digits of a phone number; a business-scoped
-- user id (letters) or a group id stays as it is.
local function wa_id_of(v)
  if type(v) == "number" then return format("%.0f", v) end
  if find(v, "%a") then return v end
  return (gsub(v, "%D", ""))
end

local function split_list(s)
  local out = {}
  if type(s) ~= "string" then return out end
  for item in s:gmatch("[^,%s]+") do out[item] = true end
  return out
end

local function only_fields(obj, fields, always)
  if type(fields) ~= "string" or fields == "" then return copy(obj) end
  local want, out = split_list(fields), {}
  for k, v in pairs(obj) do
    if want[k] or k == always then out[k] = copy(v) end
  end
  return out
end

-- A value shown inside an error message: short and printable.
local function show(v)
  local s = type(v) == "string" and v or json.encode(v) or tostring(v)
  s = gsub(s, "[%c\"\\]", "")
  if #s > 60 then s = sub(s, 1, 57) .. "..." end
  return s
end

-- ---- Graph error bodies ------------------------------------------------------

--- Titles of the error codes the simulator answers (the text after `(#code)`).
simulator.TITLES = {
  [0] = "AuthException", [1] = "An unknown error occurred", [2] = "Service temporarily unavailable",
  [3] = "Capability or permissions issue", [4] = "Application request limit reached",
  [10] = "Permission denied", [100] = "Invalid parameter", [190] = "Invalid OAuth access token",
  [200] = "Permission error", [368] = "Temporarily blocked for policies violations",
  [80007] = "Rate limit issues", [130429] = "Rate limit hit", [130472] = "User's number is part of an experiment",
  [130497] = "Business account is restricted from messaging users in this country",
  [131000] = "Something went wrong", [131005] = "Access denied", [131008] = "Required parameter is missing",
  [131009] = "Parameter value is not valid", [131016] = "Service unavailable",
  [131021] = "Recipient cannot be sender", [131026] = "Message undeliverable",
  [131030] = "Recipient phone number not in allowed list", [131031] = "Business Account locked",
  [131037] = "WhatsApp provided number needs display name approval before message can be sent",
  [131042] = "Business eligibility payment issue", [131045] = "Incorrect certificate",
  [131047] = "Re-engagement message", [131048] = "Spam rate limit hit", [131049] = "Message not delivered",
  [131051] = "Unsupported message type", [131052] = "Media download error", [131053] = "Media upload error",
  [131056] = "(Business Account, Consumer Account) pair rate limit hit",
  [131057] = "Account in maintenance mode",
  [132000] = "Number of parameters does not match the expected number of params",
  [132001] = "Template name does not exist in the translation", [132005] = "Translated text too long",
  [132007] = "Template Format Character Policy Violated",
  [132012] = "Parameter format does not match format in the created template",
  [132015] = "Template is Paused", [132016] = "Template is Disabled",
  [133010] = "Account not registered", [133016] = "Account register deregister rate limit exceeded",
}

local DETAILS = {
  [1] = "An unknown error occurred", [2] = "Service temporarily unavailable",
  [130429] = "Cloud API message throughput has been reached.",
  [131000] = "Something went wrong", [131016] = "A service is temporarily unavailable.",
  [131047] = "Message failed to send because more than 24 hours have passed since the customer last replied "
    .. "to this number.",
  [131056] = "Message failed to send because there were too many messages sent from this phone number to the "
    .. "same phone number in a short period of time.",
  [131057] = "Business Account is in maintenance mode",
}

local SUBCODES = { [130429] = 2494055 }

-- HTTP status per code: 401 for a bad token, 500 for Meta's transient server
-- errors, 400 for everything else (Meta's recorded traffic; see CLOUD-API.md 7).
local STATUS = { [190] = 401, [1] = 500, [2] = 500, [131000] = 500, [131016] = 500 }
local TRANSIENT = { [1] = true, [2] = true, [131000] = true, [131016] = true, [131057] = true }

-- Codes whose message is a plain Graph message with no error_data.
local function graph_body(code, fields)
  local e = {
    message = fields.message or ("(#" .. code .. ") " .. (simulator.TITLES[code] or "Unknown error")),
    type = fields.type or "OAuthException",
    code = code,
  }
  local details = fields.details
  if details == nil and not fields.plain then details = DETAILS[code] end
  if details ~= nil and not fields.plain then
    e.error_data = { messaging_product = "whatsapp", details = details }
  end
  local subcode = fields.subcode
  if subcode == nil then subcode = SUBCODES[code] end
  if subcode then e.error_subcode = subcode end
  if fields.user_title then
    e.is_transient = false
    e.error_user_title = fields.user_title
    e.error_user_msg = fields.user_msg
  elseif TRANSIENT[code] then
    e.is_transient = true
  end
  e.fbtrace_id = "A" .. token(22)
  return { error = e }
end

local function fail(code, details, extra)
  local f = extra or {}
  f.code = code
  if details ~= nil then f.details = details end
  return f
end

-- "The parameter X is required." (Graph's wording for a missing parameter).
local function required(name)
  return fail(100, nil, { message = "(#100) The parameter " .. name .. " is required.", plain = true })
end

-- "Unexpected key" for a field Meta does not know.
local function unexpected(key, where)
  return fail(100, "Unexpected key \"" .. show(key) .. "\" on param \"" .. where .. "\".")
end

local function check_keys(obj, allowed, where)
  for k in pairs(obj) do
    if not allowed[k] then return unexpected(k, where) end
  end
end

local function set(...)
  local t = {}
  for i = 1, select("#", ...) do t[select(i, ...)] = true end
  return t
end

-- ---- message bodies ----------------------------------------------------------

local function need_string(obj, key, where, maxlen, allow_empty)
  local v = obj[key]
  local name = where .. "['" .. key .. "']"
  if v == nil or (v == "" and not allow_empty) then
    return fail(131008, "Parameter '" .. name .. "' is required.")
  end
  if type(v) ~= "string" then return fail(131009, "Parameter '" .. name .. "' must be a string.") end
  if maxlen and ulen(v) > maxlen then
    return fail(131009, "Parameter '" .. name .. "' must be at most " .. maxlen .. " characters long.")
  end
end

local function opt_string(obj, key, where, maxlen)
  if obj[key] == nil then return nil end
  return need_string(obj, key, where, maxlen, true)
end

local function need_object(obj, key, where)
  local v = obj[key]
  local name = where .. "['" .. key .. "']"
  if v == nil then return fail(131008, "Parameter '" .. name .. "' is required.") end
  if not is_object(v) then return fail(131009, "Parameter '" .. name .. "' must be a JSON object.") end
end

local function need_list(obj, key, where, lo, hi)
  local v = obj[key]
  local name = where .. "['" .. key .. "']"
  if v == nil then return fail(131008, "Parameter '" .. name .. "' is required.") end
  if not is_list(v) then return fail(131009, "Parameter '" .. name .. "' must be an array.") end
  if (lo and #v < lo) or (hi and #v > hi) then
    return fail(131009, "Parameter '" .. name .. "' must have between " .. lo .. " and " .. hi .. " elements.")
  end
end

local function is_url(v)
  return type(v) == "string" and find(v, "^[Hh][Tt][Tt][Pp][Ss]?://[^%s]+$") ~= nil
end

local function coordinate(v, lo, hi)
  local n = tonumber(v)
  return (type(v) == "number" or type(v) == "string") and n ~= nil and n == n and n >= lo and n <= hi
end

local MEDIA_KEYS = {
  image = set("id", "link", "caption", "provider"),
  video = set("id", "link", "caption", "provider"),
  audio = set("id", "link", "voice", "provider"),
  document = set("id", "link", "caption", "filename", "provider"),
  sticker = set("id", "link", "provider"),
}

local function check_media(obj, kind)
  local e = check_keys(obj, MEDIA_KEYS[kind], kind)
  if e then return e end
  if obj.id == nil and obj.link == nil then
    return fail(131008, "Parameter '" .. kind .. "' must have either 'id' or 'link'.")
  end
  if obj.id ~= nil and obj.link ~= nil then
    return fail(131009, "Parameter '" .. kind .. "' must have only one of 'id' or 'link'.")
  end
  if obj.id ~= nil and (type(obj.id) ~= "string" or not find(obj.id, "^%w[%w_%-%.]*$")) then
    return fail(131009, "Parameter '" .. kind .. "['id']' is not a valid media id.")
  end
  if obj.link ~= nil and not is_url(obj.link) then
    return fail(131009, "Parameter '" .. kind .. "['link']' must be an http(s) URL.")
  end
  e = opt_string(obj, "caption", kind, 1024) or opt_string(obj, "filename", kind, 240)
  if e then return e end
  if obj.voice ~= nil and type(obj.voice) ~= "boolean" then
    return fail(131009, "Parameter 'audio['voice']' must be a boolean.")
  end
end

local INTERACTIVE_TYPES = set("button", "list", "cta_url", "flow", "location_request_message", "product",
  "product_list", "catalog_message", "call_permission_request", "address_message", "carousel")

local function check_header(h)
  if h == nil then return nil end
  if not is_object(h) then return fail(131009, "Parameter 'interactive['header']' must be a JSON object.") end
  local t = h.type
  if t == "text" then return need_string(h, "text", "interactive['header']", 60) end
  if t == "image" or t == "video" or t == "document" then
    local e = need_object(h, t, "interactive['header']")
    if e then return e end
    return check_media(h[t], t)
  end
  if t == nil then return fail(131008, "Parameter 'interactive['header']['type']' is required.") end
  return fail(131009, "Parameter 'interactive['header']['type']' is not valid: " .. show(t) .. ".")
end

local function check_interactive(obj)
  local e = check_keys(obj, set("type", "header", "body", "footer", "action"), "interactive")
  if e then return e end
  local t = obj.type
  if t == nil then return fail(131008, "Parameter 'interactive['type']' is required.") end
  if type(t) == "string" then t = lower(t) end
  if type(t) ~= "string" or not INTERACTIVE_TYPES[t] then
    return fail(131009, "Parameter 'interactive['type']' is not valid: " .. show(t) .. ".")
  end
  e = check_header(obj.header)
  if e then return e end
  if obj.body ~= nil then
    if not is_object(obj.body) then return fail(131009, "Parameter 'interactive['body']' must be a JSON object.") end
    e = need_string(obj.body, "text", "interactive['body']", 4096)
    if e then return e end
  elseif t ~= "product" and t ~= "carousel" then
    return fail(131008, "Parameter 'interactive['body']' is required.")
  end
  if obj.footer ~= nil then
    if not is_object(obj.footer) then
      return fail(131009, "Parameter 'interactive['footer']' must be a JSON object.")
    end
    e = need_string(obj.footer, "text", "interactive['footer']", 60)
    if e then return e end
  end
  e = need_object(obj, "action", "interactive")
  if e then return e end
  local a = obj.action
  if t == "button" then
    e = need_list(a, "buttons", "interactive['action']", 1, 3)
    if e then return e end
    for i, b in ipairs(a.buttons) do
      local where = "interactive['action']['buttons'][" .. (i - 1) .. "]"
      if not is_object(b) or b.type ~= "reply" then
        return fail(131009, "Parameter '" .. where .. "' is not valid.")
      end
      e = need_object(b, "reply", where) or need_string(b.reply, "id", where .. "['reply']", 256)
        or need_string(b.reply, "title", where .. "['reply']", 20)
      if e then return e end
    end
  elseif t == "list" then
    e = need_string(a, "button", "interactive['action']", 20)
      or need_list(a, "sections", "interactive['action']", 1, 10)
    if e then return e end
    local rows = 0
    for i, s in ipairs(a.sections) do
      local where = "interactive['action']['sections'][" .. (i - 1) .. "]"
      if not is_object(s) then return fail(131009, "Parameter '" .. where .. "' must be a JSON object.") end
      e = opt_string(s, "title", where, 24) or need_list(s, "rows", where, 1, 10)
      if e then return e end
      for j, r in ipairs(s.rows) do
        local rw = where .. "['rows'][" .. (j - 1) .. "]"
        if not is_object(r) then return fail(131009, "Parameter '" .. rw .. "' must be a JSON object.") end
        e = need_string(r, "id", rw, 200) or need_string(r, "title", rw, 24) or opt_string(r, "description", rw, 72)
        if e then return e end
        rows = rows + 1
      end
    end
    if rows > 10 then return fail(131009, "Parameter 'interactive['action']['sections']' has more than 10 rows.") end
  elseif t == "cta_url" or t == "flow" or t == "location_request_message" or t == "catalog_message"
      or t == "call_permission_request" then
    local want = ({ cta_url = "cta_url", flow = "flow", location_request_message = "send_location",
      catalog_message = "catalog_message", call_permission_request = "call_permission_request" })[t]
    if a.name ~= want then
      return fail(131009, "Parameter 'interactive['action']['name']' must be '" .. want .. "'.")
    end
    if t == "cta_url" then
      e = need_object(a, "parameters", "interactive['action']")
        or need_string(a.parameters, "display_text", "interactive['action']['parameters']", 20)
      if e then return e end
      if not is_url(a.parameters.url) then
        return fail(131009, "Parameter 'interactive['action']['parameters']['url']' must be an http(s) URL.")
      end
    elseif t == "flow" then
      e = need_object(a, "parameters", "interactive['action']")
        or need_string(a.parameters, "flow_cta", "interactive['action']['parameters']", 30)
      if e then return e end
      if a.parameters.flow_id == nil and a.parameters.flow_name == nil then
        return fail(131008, "Parameter 'interactive['action']['parameters']' needs 'flow_id' or 'flow_name'.")
      end
    end
  elseif t == "product" then
    e = need_string(a, "catalog_id", "interactive['action']") or need_string(a, "product_retailer_id",
      "interactive['action']")
    if e then return e end
  elseif t == "product_list" then
    if obj.header == nil then return fail(131008, "Parameter 'interactive['header']' is required.") end
    e = need_string(a, "catalog_id", "interactive['action']")
      or need_list(a, "sections", "interactive['action']", 1, 10)
    if e then return e end
  end
end

local function check_contacts(list)
  if not is_list(list) or #list == 0 then return fail(131009, "Parameter 'contacts' must be a non-empty array.") end
  for i, c in ipairs(list) do
    local where = "contacts[" .. (i - 1) .. "]"
    if not is_object(c) then return fail(131009, "Parameter '" .. where .. "' must be a JSON object.") end
    local e = need_object(c, "name", where) or need_string(c.name, "formatted_name", where .. "['name']")
    if e then return e end
    for _, k in ipairs{ "phones", "emails", "urls", "addresses" } do
      if c[k] ~= nil and not is_list(c[k]) then
        return fail(131009, "Parameter '" .. where .. "['" .. k .. "']' must be an array.")
      end
    end
  end
end

local function check_template_shape(obj)
  local e = check_keys(obj, set("name", "language", "components", "namespace"), "template")
    or need_string(obj, "name", "template", 512) or need_object(obj, "language", "template")
    or need_string(obj.language, "code", "template['language']")
  if e then return e end
  if obj.language.policy ~= nil and obj.language.policy ~= "deterministic" then
    return fail(131009, "Parameter 'template['language']['policy']' must be 'deterministic'.")
  end
  if obj.components ~= nil then
    if not is_list(obj.components) then return fail(131009, "Parameter 'template['components']' must be an array.") end
    for i, c in ipairs(obj.components) do
      local where = "template['components'][" .. (i - 1) .. "]"
      if not is_object(c) then return fail(131009, "Parameter '" .. where .. "' must be a JSON object.") end
      e = need_string(c, "type", where)
      if e then return e end
      if c.parameters ~= nil then
        if not is_list(c.parameters) then
          return fail(131009, "Parameter '" .. where .. "['parameters']' must be an array.")
        end
        for j, p in ipairs(c.parameters) do
          local pw = where .. "['parameters'][" .. (j - 1) .. "]"
          if not is_object(p) then return fail(131009, "Parameter '" .. pw .. "' must be a JSON object.") end
          e = need_string(p, "type", pw)
          if e then return e end
          local pt = lower(p.type)
          if pt == "text" then
            e = need_string(p, "text", pw, 32768) or opt_string(p, "parameter_name", pw)
            if e then return e end
          elseif p[pt] == nil then
            return fail(131008, "Parameter '" .. pw .. "['" .. pt .. "']' is required.")
          end
        end
      end
    end
  end
end

local TYPES = {
  text = function(obj)
    local e = check_keys(obj, set("body", "preview_url"), "text")
    if e then return e end
    if obj.body == nil or obj.body == "" then return fail(131008, "Parameter 'text['body']' is required.") end
    if type(obj.body) ~= "string" then return fail(131009, "Parameter 'text['body']' must be a string.") end
    if ulen(obj.body) > 4096 then
      return fail(100, "Param text['body'] must be at most 4096 characters long.",
        { message = "(#100) Param text['body'] must be at most 4096 characters long." })
    end
    if obj.preview_url ~= nil and type(obj.preview_url) ~= "boolean" then
      return fail(131009, "Parameter 'text['preview_url']' must be a boolean.")
    end
  end,
  image = function(obj) return check_media(obj, "image") end,
  video = function(obj) return check_media(obj, "video") end,
  audio = function(obj) return check_media(obj, "audio") end,
  document = function(obj) return check_media(obj, "document") end,
  sticker = function(obj) return check_media(obj, "sticker") end,
  location = function(obj)
    local e = check_keys(obj, set("latitude", "longitude", "name", "address"), "location")
    if e then return e end
    if obj.latitude == nil then return fail(131008, "Parameter 'location['latitude']' is required.") end
    if obj.longitude == nil then return fail(131008, "Parameter 'location['longitude']' is required.") end
    if not coordinate(obj.latitude, -90, 90) then
      return fail(131009, "Parameter 'location['latitude']' is not a valid latitude.")
    end
    if not coordinate(obj.longitude, -180, 180) then
      return fail(131009, "Parameter 'location['longitude']' is not a valid longitude.")
    end
    return opt_string(obj, "name", "location", 1000) or opt_string(obj, "address", "location", 1000)
  end,
  contacts = check_contacts,
  interactive = check_interactive,
  template = check_template_shape,
  reaction = function(obj)
    local e = check_keys(obj, set("message_id", "emoji"), "reaction") or need_string(obj, "message_id", "reaction")
    if e then return e end
    if obj.emoji == nil then return fail(131008, "Parameter 'reaction['emoji']' is required.") end
    if type(obj.emoji) ~= "string" or ulen(obj.emoji) > 10 then
      return fail(131009, "Parameter 'reaction['emoji']' must be an emoji or an empty string.")
    end
  end,
}

local ENVELOPE = set("messaging_product", "recipient_type", "to", "recipient", "type", "context",
  "biz_opaque_callback_data")
for k in pairs(TYPES) do ENVELOPE[k] = true end

-- Placeholders of a template text: { n = count, names = { name = true }, named = bool }.
local function placeholders(text)
  local seen, n, named, names = {}, 0, false, {}
  if type(text) ~= "string" then return { n = 0, names = names, named = false } end
  for p in text:gmatch("{{%s*([%w_]+)%s*}}") do
    if not seen[p] then
      seen[p] = true
      n = n + 1
      if not find(p, "^%d+$") then named = true; names[p] = true end
    end
  end
  return { n = n, names = names, named = named }
end

-- A template's component of `kind` ("BODY", "HEADER"), or nil.
local function component(tpl, kind)
  if type(tpl.components) ~= "table" then return nil end
  for _, c in ipairs(tpl.components) do
    if type(c) == "table" and type(c.type) == "string" and upper(c.type) == kind then return c end
  end
end

-- Check a send's parameters against the stored template's placeholders (body,
-- and a text header; a media header's parameter is the media itself).
local function check_template_params(tpl, sent)
  for _, kind in ipairs{ "BODY", "HEADER" } do
    local c = component(tpl, kind)
    local text_header = kind == "BODY" or c == nil or c.format == nil or upper(tostring(c.format)) == "TEXT"
    if text_header then
      local want = placeholders(c and c.text)
      local given = {}
      for _, sc in ipairs(sent.components or {}) do
        if upper(sc.type) == kind then given = sc.parameters or {} end
      end
      local lk = lower(kind)
      if #given ~= want.n then
        return fail(132000, lk .. ": number of localizable_params (" .. #given
          .. ") does not match the expected number of params (" .. want.n .. ")")
      end
      if want.named then
        for _, p in ipairs(given) do
          if type(p.parameter_name) ~= "string" or not want.names[p.parameter_name] then
            return fail(132000, lk .. ": parameter_name " .. show(p.parameter_name or "(none)")
              .. " does not match the template's named parameters")
          end
        end
      end
    end
  end
end

-- ---- the simulator object ----------------------------------------------------

local Sim = {}
Sim.__index = Sim
Sim.__name = "whatsapp.simulator.Simulator"

local DEFAULT_TEMPLATES = {
  { name = "hello_world", language = "en_US", category = "UTILITY", status = "APPROVED",
    components = {
      { type = "HEADER", format = "TEXT", text = "Hello World" },
      { type = "BODY", text = "Welcome and congratulations!! This message demonstrates your ability to send a "
        .. "WhatsApp message notification from the Cloud API, hosted by Meta." },
      { type = "FOOTER", text = "WhatsApp Business Platform sample message" },
    } },
}

local function opt_type(opts, key, want)
  local v = opts[key]
  if v ~= nil and type(v) ~= want then error("simulator.start: " .. key .. " must be a " .. want, 3) end
  return v
end

--- Start a simulator listening on loopback.
-- @tparam table opts `access_token` (required), `app_secret`, `host` ("127.0.0.1"), `port` (0 picks one),
--   `phone_number_id` ("100000000000001"), `display_phone_number` ("15550001111"), `waba_id`
--   ("100000000000002"), `verified_name`, `rate` (messages per second per phone number, default 80;
--   false: no limit), `pair_limit` (`{ burst = 45, per = 6 }`: per recipient, a burst then one message
--   per `per` seconds; false: no limit), `window` (default true: free-form messages need the user to
--   have written in the last 24 hours), `templates` (list of `{ name, language, category, status,
--   components, id }`; default: hello_world), `auto_approve` (created templates are APPROVED at once),
--   `profile` (business profile fields), `media_limits` (bytes per kind: audio, document, image,
--   sticker, video), `max_body` (bytes, default 20 MiB), `now` (clock function in seconds, default
--   the loop's monotonic clock), `webhook` (`{ url = , app_secret = , delay = }`: signed status
--   webhooks for accepted messages and inbound messages from `send_user_message`)
-- @return the simulator, or nil and an error object when the address cannot be used
-- @raise on wrong option types or a missing access token
function simulator.start(opts)
  if type(opts) ~= "table" then error("simulator.start: options table expected", 2) end
  if type(opts.access_token) ~= "string" or opts.access_token == "" then
    error("simulator.start: access_token (a non-empty string) is required", 2)
  end
  for _, k in ipairs{ "app_secret", "host", "phone_number_id", "display_phone_number", "waba_id",
                      "verified_name" } do
    opt_type(opts, k, "string")
  end
  if opts.app_secret == "" then error("simulator.start: app_secret must not be empty", 2) end
  opt_type(opts, "templates", "table")
  opt_type(opts, "profile", "table")
  opt_type(opts, "media_limits", "table")
  opt_type(opts, "now", "function")
  opt_type(opts, "webhook", "table")
  local rate = opts.rate
  if rate == nil then rate = 80 end
  if rate ~= false and (type(rate) ~= "number" or rate <= 0) then
    error("simulator.start: rate must be a positive number or false", 2)
  end
  local pair = opts.pair_limit
  if pair == nil then pair = { burst = 45, per = 6 } end
  if pair ~= false and (type(pair) ~= "table" or type(pair.burst) ~= "number" or pair.burst < 1
      or type(pair.per) ~= "number" or pair.per <= 0) then
    error("simulator.start: pair_limit must be { burst = n >= 1, per = seconds > 0 } or false", 2)
  end
  local wh = opts.webhook
  if wh and (type(wh.url) ~= "string" or type(wh.app_secret) ~= "string" or wh.app_secret == "") then
    error("simulator.start: webhook needs a url and an app_secret (strings)", 2)
  end

  local self = setmetatable({
    _token = opts.access_token,
    _secret = opts.app_secret,
    pnid = opts.phone_number_id or "100000000000001",
    display_phone_number = opts.display_phone_number or "15550001111",
    waba_id = opts.waba_id or "100000000000002",
    _rate = rate, _pair = pair,
    _window = opts.window ~= false,
    _auto_approve = opts.auto_approve and true or false,
    _now = opts.now or loop.now,
    _webhook = wh,
    _requests = {}, _messages = {}, _reads = {}, _deliveries = {}, _faults = {},
    _media = {}, _templates = {}, _by_id = {},
    _opened = {},          -- wa_id -> time the user last wrote
    _outgoing = {},        -- wamid -> message record
    _incoming = {},        -- wamid -> true (from send_user_message)
    _bucket = nil, _pairs = {},
    _seq = 0, _calls = 0,
    _listeners = {},       -- functions given to subscribe
  }, Sim)
  self._limits = {}
  for k, v in pairs(simulator.MEDIA_LIMITS) do self._limits[k] = v end
  for k, v in pairs(opts.media_limits or {}) do self._limits[k] = v end
  self._phone = {
    id = self.pnid,
    display_phone_number = self.display_phone_number,
    verified_name = opts.verified_name or "Test Business",
    code_verification_status = "VERIFIED",
    quality_rating = "GREEN",
    platform_type = "CLOUD_API",
    throughput = { level = "STANDARD" },
    name_status = "APPROVED",
    messaging_limit_tier = "TIER_1K",
  }
  self._profile = {
    about = "", address = "", description = "", email = "", profile_picture_url = "",
    websites = EMPTY, vertical = "UNDEFINED",
  }
  for k, v in pairs(opts.profile or {}) do self._profile[k] = copy(v) end
  for _, t in ipairs(opts.templates or DEFAULT_TEMPLATES) do
    if type(t) ~= "table" or type(t.name) ~= "string" or type(t.language) ~= "string" then
      error("simulator.start: each template needs a name and a language (strings)", 2)
    end
    local tpl = copy(t)
    tpl.id = tpl.id and tostring(tpl.id) or self:_new_id()
    tpl.status = tpl.status or "APPROVED"
    tpl.category = tpl.category or "UTILITY"
    tpl.components = tpl.components or {}
    self:_add_template(tpl)
  end

  local host = opts.host or "127.0.0.1"
  local srv, err = server.listen{
    host = host, port = opts.port or 0, max_body = opts.max_body or (20 * 1024 * 1024 + 65536),
    handler = function(req) return self:_handle(req) end,
  }
  if not srv then
    return nil, errors.new{ code = "listen", message = "simulator: " .. tostring(err) }
  end
  self._srv = srv
  self.url = srv:url()
  return self
end

--- The port listened on.
-- @treturn integer
function Sim:port()
  return self._srv:port()
end

--- Stop listening (requests in flight get 503). Safe twice.
function Sim:close()
  if self._closed then return end
  self._closed = true
  self._srv:close()
end
Sim.__close = Sim.close

--- Every request received, in order: `{ method, path, query, query_string, headers (lower-case names),
-- body (raw), json (decoded body or nil), status (answered; nil while pending or when dropped),
-- dropped, time }`. The list is the simulator's own: read it, do not change it.
-- @treturn table
function Sim:requests()
  return self._requests
end

--- Accepted messages, in order: `{ id = wamid, to (resolved id), input (as sent), type, body (the decoded
-- request), time }`.
-- @treturn table
function Sim:messages()
  return self._messages
end

--- Accepted mark-as-read calls: `{ message_id, typing_indicator, body, time }`.
-- @treturn table
function Sim:reads()
  return self._reads
end

--- Webhook deliveries made to the bot: `{ kind ("status" | "message"), status (HTTP status or nil),
-- err (transport error or nil), payload (table), body (raw JSON) }`.
-- @treturn table
function Sim:deliveries()
  return self._deliveries
end

--- Forget recorded requests, messages (and which ids were sent), reads, deliveries and
-- pending faults (templates, media, windows and rate-limit state stay).
function Sim:clear()
  self._requests, self._messages, self._reads, self._deliveries, self._faults = {}, {}, {}, {}, {}
  self._outgoing = {}
end

--- Be told what happens, as it happens (the sandbox chat page uses this). `fn(ev)` is called,
-- from the loop, with one table per event:
-- `{ kind = "message", message = m }` for an accepted message (the record `messages()` lists),
-- `{ kind = "read", message_id =, typing_indicator = bool }` for an accepted mark-as-read, and
-- `{ kind = "delivery", delivery = d }` once a webhook to the bot was answered or failed (the
-- record `deliveries()` lists; a status webhook's has `wamid` and `message_status`). An error raised by
-- `fn` is reported and does not reach the simulator.
-- @tparam function fn
-- @treturn function a function that unsubscribes
function Sim:subscribe(fn)
  if type(fn) ~= "function" then error("subscribe: function expected", 2) end
  local key = {}
  self._listeners[key] = fn
  return function() self._listeners[key] = nil end
end

function Sim:_emit(ev)
  for _, fn in pairs(self._listeners) do
    local ok, err = xpcall(fn, traceback, ev)
    if not ok then loop.report("simulator: subscriber: " .. tostring(err)) end
  end
end

--- A new message id shaped like Meta's (`wamid.` + base64), for a message to or from `wa_id`.
-- @tparam string wa_id the user's phone number or user id
-- @treturn string
function Sim:new_wamid(wa_id)
  if type(wa_id) ~= "string" then error("new_wamid: wa_id must be a string", 2) end
  return self:_wamid(wa_id_of(wa_id))
end

--- Open (or refresh) the 24-hour customer-service window of a user, as a message from them would.
-- @tparam string wa_id the user's phone number (any formatting) or user id
-- @tparam[opt] number time when they wrote, on the simulator's clock (default now)
function Sim:user_wrote(wa_id, time)
  if type(wa_id) ~= "string" and type(wa_id) ~= "number" then
    error("user_wrote: wa_id must be a string", 2)
  end
  if time ~= nil and type(time) ~= "number" then error("user_wrote: time must be a number", 2) end
  self._opened[wa_id_of(wa_id)] = time or self._now()
end

--- Replace the access token the simulator accepts (the old one then gets code 190).
-- @tparam string token
function Sim:set_access_token(tok)
  if type(tok) ~= "string" or tok == "" then error("set_access_token: non-empty string expected", 2) end
  self._token = tok
  self._expired = nil
end

--- Make the access token expire: requests then get 401, code 190, subcode 463.
function Sim:expire_token()
  self._expired = true
end

--- Inject a fault into the next matching requests.
-- @tparam table f `status` (HTTP status to answer), `code` (a Graph error code: a Meta-shaped body),
--   `subcode`, `message`, `details`, `body` (a raw body instead, with `headers`), `retry_after`
--   (seconds, sent as `Retry-After`), `delay` (seconds to wait first; alone it only slows the
--   request down), `drop` (close the connection without a usable answer: the client gets a transport
--   error), `times` (how many requests, default 1; `math.huge` for all), `match` (Lua pattern the
--   path must contain), `method`
-- @treturn table the fault (its `times` counts down)
function Sim:fault(f)
  if type(f) ~= "table" then error("fault: table expected", 2) end
  if f.match ~= nil and type(f.match) ~= "string" then error("fault: match must be a string pattern", 2) end
  if f.delay ~= nil and (type(f.delay) ~= "number" or f.delay < 0) then
    error("fault: delay must be a number >= 0", 2)
  end
  if f.status ~= nil and (type(f.status) ~= "number" or f.status < 100 or f.status > 599) then
    error("fault: status must be an HTTP status", 2)
  end
  if f.code ~= nil and type(f.code) ~= "number" then error("fault: code must be a number", 2) end
  local fault = copy(f)
  fault.times = fault.times or 1
  self._faults[#self._faults + 1] = fault
  return fault
end

--- Set the status of a template (for instance APPROVED after a create, or PAUSED).
-- @tparam string name_or_id
-- @tparam string status
-- @treturn boolean whether one was found
function Sim:set_template_status(name_or_id, status)
  local found = false
  for _, t in ipairs(self._templates) do
    if t.id == name_or_id or t.name == name_or_id then t.status = status; found = true end
  end
  return found
end

--- The stored templates (the simulator's own list).
-- @treturn table
function Sim:templates()
  return self._templates
end

--- The stored media: `{ id, mime_type, data, file_size, filename, time }` by id.
-- @treturn table
function Sim:media()
  return self._media
end

-- ---- internals -----------------------------------------------------------------

function Sim:_new_id()
  self._seq = self._seq + 1
  return format("%d", 1000000000000000 + floor(self._now() * 1000) % 100000000 * 1000 + self._seq)
end

function Sim:_add_template(tpl)
  self._templates[#self._templates + 1] = tpl
  self._by_id[tpl.id] = tpl
end

-- A wamid shaped like Meta's: base64 of a small binary record holding the
-- user's number and a unique hex id.
function Sim:_wamid(wa_id)
  self._seq = self._seq + 1
  local hex = upper(format("%08X%06X%06X", random(0, 0x7fffffff), self._seq % 0x1000000, random(0, 0xffffff)))
  local who = sub(tostring(wa_id), 1, 60)
  return "wamid." .. base64("\28\24" .. char(#who) .. who .. "\21\2\0\17\24\20" .. hex .. "\0")
end

function Sim:_headers(rec, extra)
  self._calls = self._calls + 1
  local kind = rec.usage or "whatsapp_business_management"
  local usage = {
    [self.waba_id] = { {
      type = kind, call_count = min(100, 1 + floor(self._calls / 100)), total_cputime = 1, total_time = 1,
      estimated_time_to_regain_access = 0,
    } },
  }
  local h = {
    ["Content-Type"] = "application/json; charset=UTF-8",
    ["X-Business-Use-Case-Usage"] = encode(usage),
    ["Facebook-Api-Version"] = rec.version or "v23.0",
    ["Cache-Control"] = "private, no-cache, no-store, must-revalidate",
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

function Sim:_ok(rec, status, tbl)
  return status, self:_headers(rec), encode(tbl)
end

-- Answer an error: `f` from fail()/required()/... (code, details, message, subcode, type, ...).
function Sim:_error(rec, f, extra_headers)
  local code = f.code
  local body = graph_body(code, f)
  local status = f.status or STATUS[code] or 400
  local msg = gsub(body.error.message, "[%c\"\\]", "")
  local h = {
    ["WWW-Authenticate"] = "OAuth \"Facebook Platform\" \"" .. (code == 190 and "invalid_token" or "invalid_request")
      .. "\" \"" .. msg .. "\"",
    ["X-App-Usage"] = "{\"call_count\":1,\"total_cputime\":1,\"total_time\":1}",
    ["Cache-Control"] = "no-store",
  }
  for k, v in pairs(extra_headers or {}) do h[k] = v end
  rec.error_code = code
  return status, self:_headers(rec, h), encode(body)
end

local function object_missing(method, id)
  return fail(100, nil, {
    message = "Unsupported " .. lower(method) .. " request. Object with ID '" .. show(id)
      .. "' does not exist, cannot be loaded due to missing permissions, or does not support this operation. "
      .. "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
    type = "GraphMethodException", subcode = 33, plain = true,
  })
end

local function nonexisting_field(field, node)
  return fail(100, nil, {
    message = "(#100) Tried accessing nonexisting field (" .. show(field) .. ") on node type (" .. node .. ")",
    plain = true,
  })
end

function Sim:_take_fault(req)
  local list = self._faults
  for i = 1, #list do
    local f = list[i]
    if (f.match == nil or find(req.path, f.match) ~= nil)
        and (f.method == nil or upper(f.method) == req.method) then
      f.times = f.times - 1
      if f.times <= 0 then remove(list, i) end
      return f
    end
  end
end

function Sim:_fault_answer(rec, f)
  local extra = {}
  if f.retry_after ~= nil then extra["Retry-After"] = tostring(f.retry_after) end
  if f.body ~= nil then
    local h = { ["Content-Type"] = "text/html; charset=utf-8" }
    for k, v in pairs(extra) do h[k] = v end
    for k, v in pairs(f.headers or {}) do h[k] = v end
    return f.status or 500, h, tostring(f.body)
  end
  local code = f.code
  if code == nil then
    local st = f.status
    code = (st == 429 and 130429) or (st == 401 and 190) or (st == 503 and 2) or (st and st < 500 and 100) or 1
  end
  local e = { code = code, status = f.status, subcode = f.subcode, details = f.details, message = f.message }
  if f.message and f.details == nil then e.plain = true end
  return self:_error(rec, e, extra)
end

-- ---- dispatch ----------------------------------------------------------------

local function on_error(e) return traceback(tostring(e), 2) end

function Sim:_handle(req)
  local headers = {}
  for k, v in pairs(req.headers or {}) do headers[lower(k)] = v end
  local rec = {
    method = req.method, path = req.path, query = req.query or {}, query_string = req.query_string,
    headers = headers, body = req.body or "", time = self._now(),
  }
  if rec.body ~= "" then
    local v = json.decode(rec.body)
    if v ~= nil then rec.json = v end
  end
  self._requests[#self._requests + 1] = rec
  local f = self:_take_fault(req)
  if f then
    rec.fault = f
    if f.delay and f.delay > 0 then loop.sleep(f.delay) end
    if f.drop then
      rec.dropped = true
      -- A head that promises more than is sent, then the connection closes:
      -- the client sees a broken transfer, never a usable answer.
      return 200, { ["Content-Length"] = "1048576", Connection = "close" }, ""
    end
    if f.status or f.code or f.body then
      local status, h, body = self:_fault_answer(rec, f)
      rec.status = status
      return status, h, body
    end
  end
  local ok, status, h, body = xpcall(self._route, on_error, self, req, rec)
  if not ok then
    loop.report("simulator: " .. tostring(status))
    status, h, body = self:_error(rec, fail(1))
  end
  rec.status = status
  return status, h, body
end

function Sim:_auth(req, rec)
  local auth = rec.headers.authorization
  local tok
  if type(auth) == "string" then tok = auth:match("^[Bb]earer%s+(%S+)%s*$") or auth:match("^OAuth%s+(%S+)%s*$") end
  if tok == nil and type(rec.query.access_token) == "string" then tok = rec.query.access_token end
  if tok == nil then
    return fail(190, nil, { message = "An access token is required to request this resource.", plain = true })
  end
  if not crypto.equal(tok, self._token) then
    return fail(190, nil, { message = "Invalid OAuth access token - Cannot parse access token", plain = true })
  end
  if self._expired then
    return fail(190, nil, { subcode = 463, plain = true,
      message = "Error validating access token: Session has expired. The current time is later than the expiry." })
  end
  if self._secret then
    local proof = req.query and req.query.appsecret_proof
    if type(proof) ~= "string" or proof == "" then
      return fail(100, nil, { message = "API calls from the server require an appsecret_proof argument",
        type = "GraphMethodException", plain = true })
    end
    if not crypto.equal(lower(proof), crypto.appsecret_proof(self._token, self._secret)) then
      return fail(100, nil, { message = "Invalid appsecret_proof provided in the API argument",
        type = "GraphMethodException", plain = true })
    end
  end
end

function Sim:_route(req, rec)
  local segs = {}
  for s in req.path:gmatch("[^/]+") do segs[#segs + 1] = s end
  if segs[1] == "media" and #segs == 2 then return self:_download(req, rec, segs[2]) end
  if segs[1] and find(segs[1], "^v%d+%.%d+$") then
    rec.version = remove(segs, 1)
  end
  local method = req.method
  local e = self:_auth(req, rec)
  if e then return self:_error(rec, e) end
  local obj, edge = segs[1], segs[2]
  if obj == nil then
    return self:_error(rec, object_missing(method, ""))
  end
  if #segs > 2 then return self:_error(rec, object_missing(method, obj)) end
  if obj == self.pnid then
    if edge == "messages" then
      rec.usage = "whatsapp"
      if method == "POST" then return self:_send(req, rec) end
    elseif edge == "media" then
      rec.usage = "whatsapp"
      if method == "POST" then return self:_upload(req, rec) end
    elseif edge == "whatsapp_business_profile" then
      if method == "GET" then return self:_get_profile(req, rec) end
      if method == "POST" then return self:_set_profile(req, rec) end
    elseif edge == nil and method == "GET" then
      return self:_ok(rec, 200, only_fields(self._phone, rec.query.fields, "id"))
    elseif edge ~= nil and method == "GET" then
      return self:_error(rec, nonexisting_field(edge, "WhatsAppBusinessPhoneNumber"))
    end
    return self:_error(rec, object_missing(method, obj))
  elseif obj == self.waba_id then
    if edge == "message_templates" then
      if method == "GET" then return self:_list_templates(req, rec) end
      if method == "POST" then return self:_create_template(req, rec) end
      if method == "DELETE" then return self:_delete_template(req, rec) end
    elseif edge == "phone_numbers" and method == "GET" then
      local ph = only_fields(self._phone, rec.query.fields, "id")
      return self:_ok(rec, 200, { data = { ph }, paging = { cursors = {
        before = base64(self.pnid), after = base64(self.pnid) } } })
    elseif edge == nil and method == "GET" then
      return self:_ok(rec, 200, only_fields({ id = self.waba_id, name = "Test WhatsApp Business Account",
        currency = "USD", timezone_id = "1", message_template_namespace = "00000000_0000_0000_0000_000000000000" },
        rec.query.fields, "id"))
    elseif edge ~= nil and method == "GET" then
      return self:_error(rec, nonexisting_field(edge, "WhatsAppBusinessAccount"))
    end
    return self:_error(rec, object_missing(method, obj))
  elseif self._media[obj] and edge == nil then
    rec.usage = "whatsapp"
    if method == "GET" then return self:_media_info(req, rec, obj) end
    if method == "DELETE" then
      self._media[obj] = nil
      return self:_ok(rec, 200, { success = true })
    end
  elseif self._by_id[obj] and edge == nil then
    if method == "GET" then return self:_ok(rec, 200, only_fields(self._by_id[obj], rec.query.fields, "id")) end
    if method == "POST" then return self:_edit_template(req, rec, self._by_id[obj]) end
  end
  return self:_error(rec, object_missing(method, obj))
end

-- ---- messages ----------------------------------------------------------------

local function json_body(rec)
  local body = rec.json
  if rec.body == "" then return nil, fail(100, "The request body is empty.") end
  if body == nil then return nil, fail(100, "The request body is not valid JSON.") end
  if type(body) ~= "table" or (next(body) ~= nil and is_list(body)) then
    return nil, fail(100, "The request body must be a JSON object.")
  end
  return body
end

local function check_product(body)
  local mp = body.messaging_product
  if mp == nil then return required("messaging_product") end
  if mp ~= "whatsapp" then
    return fail(100, nil, { message = "(#100) Param messaging_product must be one of {WHATSAPP} - got \""
      .. show(mp) .. "\".", plain = true })
  end
end

-- Token bucket: refill, then whether a token is there (taken later by spend).
local function bucket_ready(b, capacity, per_second, now)
  if b.t == nil then b.tokens, b.t = capacity, now end
  b.tokens = min(capacity, b.tokens + max(0, now - b.t) * per_second)
  b.t = now
  return b.tokens >= 1
end

function Sim:_mark_read(rec, body)
  local e = check_keys(body, set("messaging_product", "status", "message_id", "typing_indicator",
    "recipient_type"), "<root>") or check_product(body)
  if e then return self:_error(rec, e) end
  if body.status ~= "read" then
    return self:_error(rec, fail(131009, "Parameter 'status' must be 'read'."))
  end
  local id = body.message_id
  if id == nil then return self:_error(rec, required("message_id")) end
  if type(id) ~= "string" or not find(id, "^wamid%.[%w%+/=_%-]+$") then
    return self:_error(rec, fail(100, "Please check the message ID you have provided."))
  end
  if self._outgoing[id] then
    return self:_error(rec, fail(100, "Message supplied to mark message as read API with message ID: " .. id
      .. " is outgoing. Please use an incoming message ID."))
  end
  local ti = body.typing_indicator
  if ti ~= nil and (not is_object(ti) or ti.type ~= "text") then
    return self:_error(rec, fail(131009, "Parameter 'typing_indicator['type']' must be 'text'."))
  end
  self._reads[#self._reads + 1] = { message_id = id, typing_indicator = ti ~= nil, body = body, time = self._now() }
  self:_emit{ kind = "read", message_id = id, typing_indicator = ti ~= nil }
  return self:_ok(rec, 200, { success = true })
end

function Sim:_find_template(name, language)
  for _, t in ipairs(self._templates) do
    if t.name == name and t.language == language then return t end
  end
end

function Sim:_send(_, rec)
  local body, e = json_body(rec)
  if not body then return self:_error(rec, e) end
  if body.status ~= nil and body.type == nil and body.to == nil then return self:_mark_read(rec, body) end
  e = check_product(body) or check_keys(body, ENVELOPE, "<root>")
  if e then return self:_error(rec, e) end
  local rtype = body.recipient_type
  if rtype ~= nil and rtype ~= "individual" and rtype ~= "group" then
    return self:_error(rec, fail(131009, "Parameter 'recipient_type' must be 'individual' or 'group'."))
  end
  local input = body.to
  if input == nil then input = body.recipient end
  if input == nil then return self:_error(rec, required("to")) end
  if type(input) == "number" then
    if input ~= input or input < 1 or input >= 2 ^ 53 or input % 1 ~= 0 then
      return self:_error(rec, fail(131009, "Parameter 'to' is not a valid phone number."))
    end
  elseif type(input) ~= "string" then
    return self:_error(rec, fail(131009, "Parameter 'to' must be a string."))
  end
  local to = wa_id_of(input)
  if to == "" or #to > 64 or (rtype ~= "group" and body.to ~= nil and not find(to, "%a") and #to < 5) then
    return self:_error(rec, fail(131009, "Parameter 'to' is not a valid phone number."))
  end
  local mtype = body.type
  if mtype == nil then mtype = "text" end
  if type(mtype) ~= "string" or not TYPES[mtype] then
    return self:_error(rec, fail(131009, "Parameter 'type' is not valid: " .. show(mtype) .. "."))
  end
  local obj = body[mtype]
  if obj == nil then
    return self:_error(rec, fail(131008, "Parameter '" .. mtype .. "' is required for messages of type '"
      .. mtype .. "'."))
  end
  if mtype == "contacts" then
    if not is_list(obj) then return self:_error(rec, fail(131009, "Parameter 'contacts' must be an array.")) end
  elseif not is_object(obj) then
    return self:_error(rec, fail(131009, "Parameter '" .. mtype .. "' must be a JSON object."))
  end
  for k in pairs(TYPES) do
    if k ~= mtype and body[k] ~= nil then return self:_error(rec, unexpected(k, "<root>")) end
  end
  e = TYPES[mtype](obj)
  if e then return self:_error(rec, e) end
  local ctx = body.context
  if ctx ~= nil then
    if not is_object(ctx) then return self:_error(rec, fail(131009, "Parameter 'context' must be a JSON object.")) end
    e = check_keys(ctx, set("message_id"), "context") or need_string(ctx, "message_id", "context")
    if e then return self:_error(rec, e) end
    if mtype == "reaction" then return self:_error(rec, unexpected("context", "<root>")) end
  end
  local bocd = body.biz_opaque_callback_data
  if bocd ~= nil and (type(bocd) ~= "string" or #bocd > 512) then
    return self:_error(rec, fail(131009, "Parameter 'biz_opaque_callback_data' must be a string of at most 512 "
      .. "characters."))
  end
  local tpl
  if mtype == "template" then
    tpl = self:_find_template(obj.name, obj.language.code)
    local st = tpl and upper(tostring(tpl.status))
    if st == "PAUSED" then
      return self:_error(rec, fail(132015, "Template " .. show(obj.name) .. " is paused."))
    elseif st == "DISABLED" then
      return self:_error(rec, fail(132016, "Template " .. show(obj.name) .. " is disabled."))
    elseif st ~= "APPROVED" and st ~= "ACTIVE" then
      return self:_error(rec, fail(132001, "template name (" .. show(obj.name) .. ") does not exist in "
        .. show(obj.language.code)))
    end
    e = check_template_params(tpl, obj)
    if e then return self:_error(rec, e) end
  end
  local now = self._now()
  if self._window and mtype ~= "template" and rtype ~= "group" then
    local last = self._opened[to]
    if last == nil or now - last > 86400 then return self:_error(rec, fail(131047)) end
  end
  local bucket, pb
  if self._rate then
    bucket = self._bucket or {}
    self._bucket = bucket
    if not bucket_ready(bucket, self._rate, self._rate, now) then return self:_error(rec, fail(130429)) end
  end
  if self._pair then
    pb = self._pairs[to] or {}
    self._pairs[to] = pb
    if not bucket_ready(pb, self._pair.burst, 1 / self._pair.per, now) then
      return self:_error(rec, fail(131056))
    end
  end
  if bucket then bucket.tokens = bucket.tokens - 1 end
  if pb then pb.tokens = pb.tokens - 1 end
  local wamid = self:_wamid(to)
  local msg = { id = wamid, to = to, input = input, type = mtype, body = body, time = now,
    template = tpl, group = rtype == "group" }
  self._messages[#self._messages + 1] = msg
  self._outgoing[wamid] = msg
  local contact = { input = input }
  if find(to, "%a") and rtype ~= "group" then contact.user_id = to else contact.wa_id = to end
  local m = { id = wamid }
  if tpl then m.message_status = "accepted" end
  if self._webhook then loop.spawn(self._statuses, self, msg) end
  self:_emit{ kind = "message", message = msg }
  return self:_ok(rec, 200, { messaging_product = "whatsapp", contacts = { contact }, messages = { m } })
end

-- ---- media -------------------------------------------------------------------

-- The boundary parameter of a multipart Content-Type (quoted or not).
local function boundary_of(ct)
  if type(ct) ~= "string" or not find(lower(ct), "^%s*multipart/form%-data") then return nil end
  local b = ct:match("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]%s*=%s*\"([^\"]+)\"")
    or ct:match("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]%s*=%s*([^%s;]+)")
  if b == nil or #b > 200 then return nil end
  return b
end

-- Parse a multipart/form-data body: a list of { name, filename, type, data }, or nil and a reason.
function simulator.parse_multipart(body, boundary)
  if type(body) ~= "string" or type(boundary) ~= "string" or boundary == "" then return nil, "no boundary" end
  local delim = "--" .. boundary
  local pos = find(body, delim, 1, true)
  if pos == nil then return nil, "boundary not found" end
  local parts = {}
  pos = pos + #delim
  while true do
    if sub(body, pos, pos + 1) == "--" then return parts end
    -- the rest of the delimiter line
    local eol = find(body, "\r\n", pos, true)
    if eol == nil then return nil, "truncated body" end
    pos = eol + 2
    local hend = find(body, "\r\n\r\n", pos, true)
    local part = {}
    if sub(body, pos, pos + 1) == "\r\n" then
      hend = pos - 2
    elseif hend == nil then
      return nil, "part headers not terminated"
    end
    for line in sub(body, pos, hend + 1):gmatch("([^\r\n]+)") do
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = lower(name)
        if name == "content-disposition" then
          part.name = value:match(";%s*[Nn][Aa][Mm][Ee]%s*=%s*\"([^\"]*)\"")
            or value:match(";%s*[Nn][Aa][Mm][Ee]%s*=%s*([^;%s]+)")
          part.filename = value:match(";%s*[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]%s*=%s*\"([^\"]*)\"")
            or value:match(";%s*[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]%s*=%s*([^;%s]+)")
        elseif name == "content-type" then
          part.type = value
        end
      end
    end
    local dstart = hend + 4
    local nxt = find(body, "\r\n" .. delim, dstart, true)
    if nxt == nil then return nil, "closing boundary not found" end
    part.data = sub(body, dstart, nxt - 1)
    parts[#parts + 1] = part
    pos = nxt + 2 + #delim
  end
end

function Sim:_upload(req, rec)
  local boundary = boundary_of(rec.headers["content-type"])
  if not boundary then
    return self:_error(rec, fail(100, "The request must be multipart/form-data with a boundary."))
  end
  local parts = simulator.parse_multipart(req.body or "", boundary)
  if not parts then return self:_error(rec, fail(100, "The multipart/form-data body could not be parsed.")) end
  local fields = {}
  for _, p in ipairs(parts) do
    if p.name and fields[p.name] == nil then fields[p.name] = p end
  end
  local mp = fields.messaging_product
  if mp == nil then return self:_error(rec, required("messaging_product")) end
  if mp.data ~= "whatsapp" then return self:_error(rec, check_product{ messaging_product = mp.data }) end
  local file = fields.file
  if file == nil or file.filename == nil and file.type == nil then return self:_error(rec, required("file")) end
  local tf = fields.type
  if tf == nil then return self:_error(rec, required("type")) end
  local mime = lower((tf.data:gsub(";.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")))
  local kind = simulator.MEDIA_TYPES[mime]
  if not kind then
    return self:_error(rec, fail(131053, "Upload attempted with an unsupported media type (" .. show(mime) .. ")."))
  end
  local size = #file.data
  if size == 0 then return self:_error(rec, fail(131053, "The uploaded file is empty.")) end
  local limit = self._limits[kind]
  if limit and size > limit then
    return self:_error(rec, fail(131053, "File size " .. size .. " bytes is over the limit of " .. limit
      .. " bytes for " .. kind .. "."))
  end
  local id = self:_new_id()
  self._media[id] = { id = id, mime_type = mime, data = file.data, file_size = size, filename = file.filename,
    kind = kind, hash = token(24), time = self._now() }
  return self:_ok(rec, 200, { id = id })
end

function Sim:_media_info(_, rec, id)
  local m = self._media[id]
  if not m.sha256 then m.sha256 = sha256_hex(m.data) end
  m.url_time = self._now()
  return self:_ok(rec, 200, {
    messaging_product = "whatsapp",
    url = self.url .. "/media/" .. id .. "?hash=" .. m.hash .. "&mid=" .. id .. "&ext=" .. os_time(),
    mime_type = m.mime_type, sha256 = m.sha256, file_size = m.file_size, id = id,
  })
end

-- The download URL: the bytes with the Bearer token, 404 for an unknown or
-- deleted id, a wrong hash or a URL older than 5 minutes, 401 without the token.
function Sim:_download(req, rec, id)
  local e = self:_auth({ query = {} }, rec)
  if e then return self:_error(rec, e) end
  local m = self._media[id]
  if req.method ~= "GET" or m == nil or rec.query.hash ~= m.hash or m.url_time == nil
      or self._now() - m.url_time > 300 then
    return 404, { ["Content-Type"] = "text/plain", ["Cache-Control"] = "no-store" }, "Not Found"
  end
  local ext = (m.filename and m.filename:match("%.([%w]+)$")) or (m.mime_type:match("/([%w]+)$")) or "bin"
  return 200, {
    ["Content-Type"] = m.mime_type,
    ["Content-Disposition"] = "inline;filename=whatsapp." .. ext,
    ["Cache-Control"] = "private, no-cache, no-store, must-revalidate",
  }, m.data
end

-- ---- templates -----------------------------------------------------------------

local CATEGORIES = set("MARKETING", "UTILITY", "AUTHENTICATION")

local function cursor(id) return (gsub(base64(id), "=", "")) end

function Sim:_list_templates(_, rec)
  local q = rec.query
  local limit = tonumber(q.limit) or 25
  if limit ~= limit or limit < 1 or limit % 1 ~= 0 then
    return self:_error(rec, fail(100, nil, { message = "(#100) Param limit must be a positive integer", plain = true }))
  end
  limit = min(limit, 1000)
  local statuses = split_list(q.status and upper(q.status))
  local list = {}
  for _, t in ipairs(self._templates) do
    if (q.name == nil or find(lower(t.name), lower(tostring(q.name)), 1, true))
        and (q.status == nil or statuses[upper(tostring(t.status))])
        and (q.category == nil or upper(tostring(t.category)) == upper(tostring(q.category)))
        and (q.language == nil or t.language == q.language) then
      list[#list + 1] = t
    end
  end
  local first, last = 1, min(#list, limit)
  local function index_of(cur)
    for i, t in ipairs(list) do if cursor(t.id) == cur then return i end end
  end
  if q.after then
    local i = index_of(q.after)
    if not i then return self:_error(rec, fail(100, nil, { message = "(#100) Invalid cursor", plain = true })) end
    first, last = i + 1, min(#list, i + limit)
  elseif q.before then
    local i = index_of(q.before)
    if not i then return self:_error(rec, fail(100, nil, { message = "(#100) Invalid cursor", plain = true })) end
    first, last = max(1, i - limit), i - 1
  end
  local data = {}
  for i = first, last do data[#data + 1] = only_fields(list[i], q.fields, "id") end
  if #data == 0 then return self:_ok(rec, 200, { data = EMPTY }) end
  local out = { data = data, paging = { cursors = { before = cursor(list[first].id), after = cursor(list[last].id) } } }
  local function page_url(key, cur)
    local parts = {}
    local keys = {}
    for k in pairs(q) do keys[#keys + 1] = k end
    sort(keys)
    for _, k in ipairs(keys) do
      if k ~= "after" and k ~= "before" and k ~= "access_token" and type(q[k]) == "string" then
        parts[#parts + 1] = k .. "=" .. gsub(q[k], "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end)
      end
    end
    if q.limit == nil then parts[#parts + 1] = "limit=" .. limit end
    parts[#parts + 1] = key .. "=" .. cur
    return self.url .. "/" .. (rec.version or "v23.0") .. "/" .. self.waba_id .. "/message_templates?"
      .. concat(parts, "&")
  end
  if last < #list then out.paging.next = page_url("after", cursor(list[last].id)) end
  if first > 1 then out.paging.previous = page_url("before", cursor(list[first].id)) end
  return self:_ok(rec, 200, out)
end

function Sim:_create_template(_, rec)
  local body, e = json_body(rec)
  if not body then return self:_error(rec, e) end
  e = check_keys(body, set("name", "category", "language", "components", "parameter_format",
    "allow_category_change", "message_send_ttl_seconds", "sub_category", "library_template_name",
    "library_template_button_inputs", "cta_url_link_tracking_opted_out"), "<root>")
  if e then return self:_error(rec, e) end
  for _, k in ipairs{ "name", "language", "category" } do
    if body[k] == nil then return self:_error(rec, required(k)) end
    if type(body[k]) ~= "string" then
      return self:_error(rec, fail(100, nil, { message = "(#100) Param " .. k .. " must be a string", plain = true }))
    end
  end
  if not find(body.name, "^[a-z0-9_]+$") or #body.name > 512 then
    return self:_error(rec, fail(100, nil, { plain = true, message = "Invalid parameter", subcode = 2388042,
      user_title = "Invalid template name",
      user_msg = "Template names can only have lowercase letters, numbers and underscores." }))
  end
  local category = upper(body.category)
  if not CATEGORIES[category] then
    return self:_error(rec, fail(100, nil, { plain = true, message = "(#100) Param category must be one of "
      .. "{AUTHENTICATION, MARKETING, UTILITY} - got \"" .. show(body.category) .. "\"." }))
  end
  if body.components == nil and body.library_template_name == nil then
    return self:_error(rec, required("components"))
  end
  if body.components ~= nil and not is_list(body.components) then
    return self:_error(rec, fail(100, nil, { message = "(#100) Param components must be an array", plain = true }))
  end
  for _, c in ipairs(body.components or {}) do
    if not is_object(c) or type(c.type) ~= "string" then
      return self:_error(rec, fail(100, nil, { message = "(#100) Param components[]['type'] is required",
        plain = true }))
    end
  end
  if self:_find_template(body.name, body.language) then
    return self:_error(rec, fail(100, nil, { plain = true, message = "Invalid parameter", subcode = 2388024,
      user_title = "Content in This Language Already Exists",
      user_msg = "There is already " .. show(body.language) .. " content for this template. You can create a new "
        .. "template and try again." }))
  end
  if #self._templates >= 250 then
    return self:_error(rec, fail(100, nil, { plain = true, message = "Invalid parameter", subcode = 2388019,
      user_title = "Message Template Limit Exceeded",
      user_msg = "You have reached the limit of 250 message templates for this account." }))
  end
  local tpl = copy(body)
  tpl.id = self:_new_id()
  tpl.category = category
  tpl.status = self._auto_approve and "APPROVED" or "PENDING"
  tpl.components = tpl.components or {}
  if tpl.parameter_format then tpl.parameter_format = upper(tpl.parameter_format) end
  self:_add_template(tpl)
  return self:_ok(rec, 200, { id = tpl.id, status = tpl.status, category = tpl.category })
end

function Sim:_edit_template(_, rec, tpl)
  local body, e = json_body(rec)
  if not body then return self:_error(rec, e) end
  e = check_keys(body, set("components", "category", "message_send_ttl_seconds", "parameter_format",
    "cta_url_link_tracking_opted_out"), "<root>")
  if e then return self:_error(rec, e) end
  if next(body) == nil then return self:_error(rec, required("components")) end
  if body.components ~= nil and not is_list(body.components) then
    return self:_error(rec, fail(100, nil, { message = "(#100) Param components must be an array", plain = true }))
  end
  if body.category ~= nil and (type(body.category) ~= "string" or not CATEGORIES[upper(body.category)]) then
    return self:_error(rec, fail(100, nil, { plain = true, message = "(#100) Param category must be one of "
      .. "{AUTHENTICATION, MARKETING, UTILITY} - got \"" .. show(body.category) .. "\"." }))
  end
  for k, v in pairs(body) do tpl[k] = copy(v) end
  if body.category then tpl.category = upper(body.category) end
  return self:_ok(rec, 200, { success = true })
end

function Sim:_delete_template(_, rec)
  local name, hsm = rec.query.name, rec.query.hsm_id
  if type(name) ~= "string" or name == "" then return self:_error(rec, required("name")) end
  local keep, gone = {}, 0
  for _, t in ipairs(self._templates) do
    if t.name == name and (hsm == nil or t.id == hsm) then
      gone = gone + 1
      self._by_id[t.id] = nil
    else
      keep[#keep + 1] = t
    end
  end
  if gone == 0 then
    return self:_error(rec, fail(100, nil, { plain = true, message = "Invalid parameter", subcode = 2593002,
      user_title = "Message Template Not Found",
      user_msg = "The message template " .. show(name) .. " wasn't found for this account." }))
  end
  self._templates = keep
  return self:_ok(rec, 200, { success = true })
end

-- ---- business profile ----------------------------------------------------------

local VERTICALS = set("UNDEFINED", "OTHER", "AUTO", "BEAUTY", "APPAREL", "EDU", "ENTERTAIN", "EVENT_PLAN",
  "FINANCE", "GROCERY", "GOVT", "HOTEL", "HEALTH", "NONPROFIT", "PROF_SERVICES", "RETAIL", "TRAVEL",
  "RESTAURANT", "NOT_A_BIZ", "ALCOHOL", "ONLINE_GAMBLING", "PHYSICAL_GAMBLING", "OTC_DRUGS")

function Sim:_get_profile(_, rec)
  local p = only_fields(self._profile, rec.query.fields, nil)
  p.messaging_product = "whatsapp"
  return self:_ok(rec, 200, { data = { p } })
end

function Sim:_set_profile(_, rec)
  local body, e = json_body(rec)
  if not body then return self:_error(rec, e) end
  e = check_product(body) or check_keys(body, set("messaging_product", "about", "address", "description",
    "email", "profile_picture_handle", "vertical", "websites"), "<root>")
    or opt_string(body, "about", "about", 139) or opt_string(body, "address", "address", 256)
    or opt_string(body, "description", "description", 512) or opt_string(body, "email", "email", 128)
    or opt_string(body, "profile_picture_handle", "profile_picture_handle")
  if e then return self:_error(rec, e) end
  if body.vertical ~= nil and not VERTICALS[body.vertical] then
    return self:_error(rec, fail(100, "Param vertical is not a valid business vertical."))
  end
  if body.websites ~= nil then
    if not is_list(body.websites) or #body.websites > 2 then
      return self:_error(rec, fail(100, "Param websites must be an array of at most 2 URLs."))
    end
    for _, w in ipairs(body.websites) do
      if not is_url(w) then return self:_error(rec, fail(100, "Param websites must contain http(s) URLs.")) end
    end
  end
  for k, v in pairs(body) do
    if k == "profile_picture_handle" then
      self._profile.profile_picture_url = self.url .. "/media/profile_picture?handle=" .. v
    elseif k ~= "messaging_product" then
      self._profile[k] = (k == "websites" and #v == 0) and EMPTY or copy(v)
    end
  end
  return self:_ok(rec, 200, { success = true })
end

-- ---- webhooks to the bot --------------------------------------------------------

function Sim:_envelope(value)
  value.messaging_product = "whatsapp"
  value.metadata = { display_phone_number = self.display_phone_number, phone_number_id = self.pnid }
  return {
    object = "whatsapp_business_account",
    entry = { { id = self.waba_id, changes = { { value = value, field = "messages" } } } },
  }
end

-- POST one signed webhook to the bot; records the delivery (for a status webhook with the
-- message's `wamid` and its `message_status`) and tells the subscribers once it is done.
function Sim:_deliver(kind, payload)
  local wh = self._webhook
  local raw = encode(payload)
  local d = { kind = kind, payload = payload, body = raw }
  local value = payload.entry[1].changes[1].value
  if kind == "status" and value.statuses then
    d.wamid, d.message_status = value.statuses[1].id, value.statuses[1].status
  end
  self._deliveries[#self._deliveries + 1] = d
  local res, err = http.request{
    method = "POST", url = wh.url, body = raw, timeout = wh.timeout or 10,
    headers = {
      ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = webhook.sign(raw, wh.app_secret),
      ["User-Agent"] = "facebookexternalua",
    },
  }
  if not res then
    d.err = err
  else
    d.status = res.status
    if res.status < 200 or res.status > 299 then
      err = errors.new{ code = "webhook", status = res.status,
        message = "the bot answered the webhook with HTTP " .. res.status }
      res = nil
    end
  end
  if next(self._listeners) then self:_emit{ kind = "delivery", delivery = d } end
  return res, err
end

function Sim:_status_payload(msg, status)
  local st = { id = msg.id, status = status, timestamp = tostring(os_time()), recipient_id = msg.to }
  if msg.group then st.recipient_type = "group" end
  if msg.body.biz_opaque_callback_data then st.biz_opaque_callback_data = msg.body.biz_opaque_callback_data end
  if status ~= "read" then
    if msg.template then
      st.pricing = { billable = true, pricing_model = "PMP", type = "regular",
        category = lower(tostring(msg.template.category)) }
    else
      st.pricing = { billable = false, pricing_model = "PMP", type = "free_customer_service", category = "service" }
    end
  end
  return self:_envelope{ statuses = { st } }
end

-- Loop task: `sent` then `delivered` for an accepted message (reactions get
-- only `sent`), after the API has answered.
function Sim:_statuses(msg)
  local wh = self._webhook
  loop.sleep(wh.delay or 0)
  if self._closed then return end
  self:_deliver("status", self:_status_payload(msg, "sent"))
  if msg.type == "reaction" or self._closed then return end
  self:_deliver("status", self:_status_payload(msg, "delivered"))
end

--- Send the bot a signed `read` status webhook for an accepted message.
-- Waits for the bot's answer (yields in a task, blocks in a plain script).
-- @tparam string wamid the id the API answered
-- @return the bot's response, or nil and an error object (code "not_found", "webhook" or a transport code)
function Sim:read(wamid)
  if not self._webhook then error("read: the simulator has no webhook configured", 2) end
  local msg = self._outgoing[wamid]
  if not msg then
    return nil, errors.new{ code = "not_found", message = "no accepted message with that id" }
  end
  return self:_deliver("status", self:_status_payload(msg, "read"))
end

--- Send the bot a signed `failed` status webhook for an accepted message, with Meta's error
-- (`errors = { { code, title, message, error_data = { details } } }`).
-- Waits for the bot's answer (yields in a task, blocks in a plain script).
-- @tparam string wamid the id the API answered
-- @tparam[opt=131026] integer code the error code (e.g. 131026 undeliverable, 131049 not delivered)
-- @tparam[opt] string details the error's details
-- @return the bot's response, or nil and an error object (code "not_found", "webhook" or a transport code)
function Sim:fail(wamid, code, details)
  if not self._webhook then error("fail: the simulator has no webhook configured", 2) end
  if code ~= nil and type(code) ~= "number" then error("fail: code must be a number", 2) end
  if details ~= nil and type(details) ~= "string" then error("fail: details must be a string", 2) end
  local msg = self._outgoing[wamid]
  if not msg then
    return nil, errors.new{ code = "not_found", message = "no accepted message with that id" }
  end
  code = code or 131026
  local title = simulator.TITLES[code] or "Unknown error"
  local payload = self:_status_payload(msg, "failed")
  local st = payload.entry[1].changes[1].value.statuses[1]
  st.pricing = nil
  st.errors = { { code = code, title = title, message = title,
    error_data = { details = details or DETAILS[code] or title },
    href = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/" } }
  return self:_deliver("status", payload)
end

local INBOUND_KEYS = { "text", "image", "video", "audio", "document", "sticker", "location", "contacts",
  "interactive", "button", "reaction", "order", "system", "referral" }

--- Send the bot a signed inbound message webhook from a user, and open that user's 24-hour window.
-- Waits for the bot's answer (yields in a task, blocks in a plain script).
-- @tparam table m `from` (the user's number, default "15550002222"), `name` (profile name, default
--   "Test User"), and either `text` (a string) or `type` with the object of that type (e.g.
--   `type = "interactive", interactive = { type = "button_reply", button_reply = { id =, title = } }`);
--   optional `context` (`{ from =, id = }`), `id` (the wamid to use), `timestamp`
-- @treturn[1] string the inbound message's wamid
-- @return[2] nil and an error object when the bot could not be reached or did not answer 2xx
function Sim:send_user_message(m)
  if not self._webhook then error("send_user_message: the simulator has no webhook configured", 2) end
  if type(m) ~= "table" then error("send_user_message: table expected", 2) end
  local from = m.from or "15550002222"
  if type(from) ~= "string" then error("send_user_message: from must be a string", 2) end
  local mtype = m.type or (m.text ~= nil and "text") or nil
  if type(mtype) ~= "string" then error("send_user_message: text or type is required", 2) end
  local wa_id = wa_id_of(from)
  local wamid = m.id or self:_wamid(wa_id)
  local msg = { from = wa_id, id = wamid, timestamp = tostring(m.timestamp or os_time()), type = mtype }
  if mtype == "text" and type(m.text) == "string" then
    msg.text = { body = m.text }
  else
    if m[mtype] == nil then error("send_user_message: the " .. mtype .. " object is missing", 2) end
    msg[mtype] = copy(m[mtype])
  end
  for _, k in ipairs(INBOUND_KEYS) do
    if k ~= mtype and m[k] ~= nil and type(m[k]) == "table" then msg[k] = copy(m[k]) end
  end
  if m.context then msg.context = copy(m.context) end
  self._incoming[wamid] = true
  self._opened[wa_id] = self._now()
  local payload = self:_envelope{
    contacts = { { profile = { name = m.name or "Test User" }, wa_id = wa_id } },
    messages = { msg },
  }
  local res, err = self:_deliver("message", payload)
  if not res then return nil, err end
  return wamid
end

return simulator
