--- The one error object of lua-whatsapp.
--
-- Runtime failures across the library return `nil, err` where `err` is a table
-- made here: it has a stable `code` (a Graph API code such as `131047`, or a
-- token such as `"invalid_signature"`, `"invalid_payload"`, `"too_large"`,
-- `"timeout"`, `"validation"`), a `message`, and where known `status` (the HTTP
-- status to answer or that was answered), `path`, `title`, `details`, `href`,
-- `subcode`, `fbtrace_id`, `category` and `retry`. `tostring(err)` gives one
-- readable line. Secrets never go into an error: callers pass messages that do
-- not contain them, and nothing here copies request headers.
-- @module whatsapp.errors
local errors = {}

local setmetatable, tostring, tonumber, type, rawget = setmetatable, tostring, tonumber, type, rawget
local getmetatable = getmetatable
local concat = table.concat
local decode = require("cjson.safe").decode
local floor = math.floor
local tointeger = math.tointeger

-- lua-cjson decodes every number as a float under Lua 5.3+; codes are integers
-- and must print as such ("131047", not "131047.0").
local function int(v)
  v = tonumber(v)
  if v == nil or v ~= floor(v) then return v end
  return tointeger and tointeger(v) or v
end
errors.int = int

local Error = {}
Error.__name = "whatsapp.Error"
-- The category and the retry advice are derived from the code when asked
-- for (an explicit field set by the maker wins), so error tables made in bulk
-- by the C webhook parser carry them too.
Error.__index = function(e, k)
  if k == "category" then return errors.category(rawget(e, "code")) end
  if k == "retry" then return errors.retryable(rawget(e, "code")) end
  return nil
end

--- Category of a Graph / WhatsApp error code (see CLOUD-API.md section 7).
-- @tparam number code
-- @treturn string|nil one of "auth", "integrity", "throttling", "server",
--   "param", "window", "recipient", "template", "media"
function errors.category(code)
  if type(code) ~= "number" then return nil end
  if code == 0 or code == 3 or code == 10 or code == 190 or (code >= 200 and code <= 299) then
    return "auth"
  elseif code == 368 or code == 130497 or code == 131031 then
    return "integrity"
  elseif code == 4 or code == 80007 or code == 130429 or code == 131048 or code == 131056
      or code == 133016 or code == 131064 then
    return "throttling"
  elseif code == 1 or code == 2 or code == 131000 or code == 131016 or code == 131057 then
    return "server"
  elseif code == 131047 then
    return "window"
  elseif code == 131052 or code == 131053 then
    return "media"
  elseif code >= 132000 and code < 133000 then
    return "template"
  elseif code == 33 or code == 100 or code == 131008 or code == 131009 or code == 131021
      or code == 131030 or code == 133010 then
    return "param"
  elseif code >= 130000 and code < 140000 then
    return "recipient"
  end
  return nil
end

-- Graph codes after which the same request may succeed later, and Meta surely
-- did not act on the one that failed: throttling (app 4, WABA 80007,
-- throughput 130429, pair rate 131056), and the transient server codes
-- (1, 2, 131000, 131016, 131057).  131048 (spam rate limit) and 131026 / 131049
-- (undeliverable, ecosystem limits) are not: sending again soon does not help.
local RETRYABLE = {
  [1] = true, [2] = true, [4] = true, [80007] = true, [130429] = true, [131056] = true,
  [131000] = true, [131016] = true, [131057] = true, [133016] = true,
}

--- Whether sending the same request again may succeed, for a Graph code or a
-- transport token.
-- @param code a number (Graph code) or a string token
-- @treturn boolean
function errors.retryable(code)
  if type(code) == "number" then return RETRYABLE[code] == true end
  return code == "timeout" or code == "connect" or code == "connection" or code == "http"
end

--- Make the error object for a Graph API answer that is not a success.
-- `body` is the raw response body; Meta's `{"error": {...}}` gives `code`,
-- `subcode`, `title` (`error_user_title`, or the title inside "(#code) title"),
-- `message`, `details` (`error_data.details`), `user_message`, `type`,
-- `fbtrace_id`, `is_transient`; any other body gives code `"http"`. The result
-- also has `http_status`, `status` (the same), `category`, `retry`, and
-- `retry_after` (seconds) when the answer had a `Retry-After` header.
-- @tparam number http_status
-- @tparam string|nil body
-- @tparam[opt] table headers response headers (case-insensitive lookups)
-- @treturn table the error object
function errors.from_graph(http_status, body, headers)
  local decoded = type(body) == "string" and decode(body) or nil
  local g = type(decoded) == "table" and decoded.error
  local e
  if type(g) == "table" and g.code ~= nil then
    local code = int(g.code) or g.code
    local message = type(g.message) == "string" and g.message or nil
    local title = type(g.error_user_title) == "string" and g.error_user_title or nil
    if not title and message then title = message:match("^%(#%d+%)%s*(.*)$") end
    local data = type(g.error_data) == "table" and g.error_data or nil
    local details = data and data.details
    if type(details) ~= "string" then details = nil end
    e = {
      code = code, subcode = int(g.error_subcode), message = message or ("Graph error " .. tostring(code)),
      title = title, details = details, type = type(g.type) == "string" and g.type or nil,
      user_message = type(g.error_user_msg) == "string" and g.error_user_msg or nil,
      fbtrace_id = type(g.fbtrace_id) == "string" and g.fbtrace_id or nil,
      is_transient = g.is_transient == true or nil,
      href = type(g.href) == "string" and g.href or nil,
    }
    if g.is_transient == true then e.retry = true end
  else
    -- Not Graph's shape (a proxy's page, an empty body): a 5xx may succeed later.
    local snippet = type(body) == "string" and body:sub(1, 120):gsub("[%c]+", " ") or ""
    e = {
      code = "http", message = "HTTP " .. tostring(http_status) .. (snippet ~= "" and (": " .. snippet) or ""),
      category = (http_status or 0) >= 500 and "server" or (http_status == 429 and "throttling" or "param"),
      retry = (http_status or 0) >= 500 or http_status == 429,
    }
  end
  e.http_status, e.status = http_status, http_status
  local ra = headers and headers["retry-after"]
  if ra then
    local secs = tonumber(ra)
    if secs and secs >= 0 then e.retry_after = secs end
  end
  return setmetatable(e, Error)
end

local function render(e)
  local parts = {}
  if e.status then parts[#parts + 1] = "[" .. tostring(e.status) .. "]" end
  parts[#parts + 1] = tostring(e.code)
  if e.message then parts[#parts + 1] = e.message end
  local s = concat(parts, " ")
  if e.details and e.details ~= e.message then s = s .. " (" .. tostring(e.details) .. ")" end
  return s
end
Error.__tostring = render

--- Make an error object from a table of fields (at least `code`).
-- The table becomes the error object (it is not copied).
-- @tparam table fields
-- @treturn table the error object
function errors.new(fields)
  if type(fields) ~= "table" or fields.code == nil then
    error("errors.new needs a table with a code", 2)
  end
  return setmetatable(fields, Error)
end

--- True when `v` is an error object made by this module.
function errors.is(v)
  return type(v) == "table" and getmetatable(v) == Error
end

--- The metatable of error objects, for code that builds them in bulk (the C
-- webhook parser sets it on the error tables of statuses and messages).
errors.metatable = Error

return errors
