-- Prints, for each webhook body file named on the command line, every event hook:parse makes
-- of it, in a canonical text form: keys sorted, the lazy fields read first (so they are
-- included), numbers written the same way under every interpreter, each table's metatable
-- (batch, error or other) and which tables are one and the same (a sender's shared contact). spec/abi_events_spec.lua
-- runs it under the other interpreter and compares with its own in-process dump: the Lua 5.4
-- and the LuaJIT builds of the core must make the same events.
--
--   lua5.4 spec/abi/dump.lua FILE...     (LUA_PATH / LUA_CPATH pointing at the build)
local webhook = require "whatsapp.webhook"
local errors = require "whatsapp.errors"

local M = {}

local function num(v)
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return ("%d"):format(v) end
  return ("%.17g"):format(v)
end

-- A string quoted the same way by every interpreter (%q differs between them).
local function quote(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c) return ("\\%03d"):format(c:byte()) end) .. '"'
end

-- What a table's metatable is: the batch's (events), the error objects', or another.
local function mt_name(v)
  local mt = getmetatable(v)
  if mt == nil then return "" end
  if mt == errors.metatable then return "<mt:error>" end
  if type(rawget(mt, "__index")) == "function" and rawget(mt, 1) ~= nil then return "<mt:batch>" end
  return "<mt:other>"
end

local function ser(v, out, seen)
  local t = type(v)
  if t == "table" then
    -- Shared tables (a sender's contact, for one) are numbered in order of first sight.
    local id = seen[v]
    if not id then
      seen.n = seen.n + 1
      id = seen.n
      seen[v] = id
      out[#out + 1] = ("#%d"):format(id)
    else
      out[#out + 1] = ("@%d"):format(id)
      return
    end
    out[#out + 1] = mt_name(v)
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) == type(b) then return a < b end
      return type(a) < type(b)
    end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      out[#out + 1] = type(k) == "number" and num(k) or quote(tostring(k))
      out[#out + 1] = "="
      ser(v[k], out, seen)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = quote(v)
  elseif t == "number" then
    out[#out + 1] = num(v)
  elseif v == webhook.null then
    out[#out + 1] = "null"
  else
    out[#out + 1] = tostring(v)
  end
end

--- The canonical dump of one body's events, or of its error.
function M.dump(body)
  local hook = webhook.new{ skip_signature = true }
  local events, err = hook:parse(body)
  if not events then return ("error %s %s %s"):format(err.status, err.message, err.path or "") end
  local out, seen, n = {}, { n = 0 }, 0
  for _ in pairs(events) do n = n + 1 end
  out[1] = ("%d events (%d keys)\n"):format(#events, n)
  for i = 1, n do
    local ev = events[i]
    if type(ev) == "table" then
      for _, f in ipairs(webhook.LAZY_FIELDS) do local _ = ev[f] end
    end
    out[#out + 1] = ("event %d "):format(i)
    ser(ev, out, seen)
    out[#out + 1] = "\n"
  end
  return table.concat(out)
end

--- The dumps of the body files at paths, one after the other, each under its path.
function M.dump_files(paths)
  local out = {}
  for _, path in ipairs(paths) do
    local f = assert(io.open(path, "rb"))
    local body = f:read("a")
    f:close()
    out[#out + 1] = "== " .. path .. "\n" .. M.dump(body) .. "\n"
  end
  return table.concat(out)
end

if arg and arg[0] and arg[0]:match("dump%.lua$") then
  io.write(M.dump_files(arg), "END\n")
end

return M
