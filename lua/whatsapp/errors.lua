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

local setmetatable, tostring, type = setmetatable, tostring, type
local concat = table.concat

local Error = {}
Error.__name = "whatsapp.Error"
-- The category is derived from the code when asked for (an explicit
-- `category` field set by the maker wins).
Error.__index = function(e, k)
  if k == "category" then return errors.category(rawget(e, "code")) end
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
