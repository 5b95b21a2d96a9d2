-- Closes parsers from finalizers while they are in use, under Lua 5.4 (core_spec.lua runs it
-- in a process of its own: in a small heap, a collection cycle is short enough that the
-- finalizer set up just before a parse or a lazy decoding runs in the middle of it).
--
--   LUA_CPATH="./build/lua5.4/?.so;;" lua5.4 spec/close_in_use.lua BODY
--
-- Prints how many of 40 parses and of 40 rounds of lazy decoding were closed in the middle;
-- raises if any event came out wrong.
local core = require "whatsapp.core"

local f = assert(io.open(arg[1], "rb"))
local body = f:read("a")
f:close()
local want = assert(core.parser():parse(body))

local function check(events)
  assert(#events == #want, "wrong number of events")
  for i = 1, #want do
    assert(events[i].id == want[i].id and events[i].text == want[i].text, "wrong event")
    assert(events[i].raw.id == want[i].raw.id, "wrong raw")
  end
end

local function is_closed(p) return not pcall(p.parse, p, "{}") end
local function closer(p) setmetatable({}, { __gc = function() p:close() end }) end

collectgarbage("setpause", 1)
collectgarbage("setstepmul", 100)
local in_parse, in_raw = 0, 0
for _ = 1, 40 do
  local p = core.parser()
  closer(p)
  local ok, events = pcall(p.parse, p, body)
  if ok then
    if is_closed(p) then in_parse = in_parse + 1 end
    check(events)
  else
    assert(tostring(events):find("parser is closed", 1, true), events)
  end
  p = core.parser()
  events = assert(p:parse(body))
  closer(p)
  check(events)
  if is_closed(p) then in_raw = in_raw + 1 end
end
print(in_parse, in_raw)
