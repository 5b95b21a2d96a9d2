--- A small expectation language for event assertions, shared by the fixture
-- and OpenAPI specs.
--   NIL          the field must be absent
--   FALSY        nil or false
--   SAME(v)      deep equality (assert.same) with v
--   SRC"a.b.c"   deep equality with that path of the event's source object
--   ALL{a, b}    every one of the expectations a, b, ...
--   table        the listed keys are checked recursively (other keys may exist); when the
--                table is a non-empty array, the actual array must have the same length
--   other        assert.equal; the event's own `timestamp` and `entry_time` must also be
--                integers (numbers inside generic copies are only compared by value)
local assert = require "luassert"

local expect = {}

expect.NIL = setmetatable({}, { __tostring = function() return "NIL" end })
expect.FALSY = setmetatable({}, { __tostring = function() return "FALSY" end })
local NIL, FALSY = expect.NIL, expect.FALSY
local SAME_MT, SRC_MT, ALL_MT = {}, {}, {}

function expect.SAME(v) return setmetatable({ v }, SAME_MT) end
function expect.SRC(path) return setmetatable({ path }, SRC_MT) end
function expect.ALL(list) return setmetatable(list, ALL_MT) end

local INTEGER_KEYS = { timestamp = true, entry_time = true }

--- True when v is an integral number (a Lua 5.4 integer where there are integers).
function expect.is_integer(v)
  if type(v) ~= "number" then return false end
  if math.type then return math.type(v) == "integer" end
  return v == math.floor(v)
end

local function resolve(obj, path)
  for part in path:gmatch("[^.]+") do
    if type(obj) ~= "table" then return nil end
    obj = obj[tonumber(part) or part]
  end
  return obj
end

--- Assert that act matches the expectation exp; path names it in messages, src is
-- the event's source object.
function expect.match(exp, act, path, src, key, top)
  if exp == NIL then
    assert.is_nil(act, path .. " should be absent")
  elseif exp == FALSY then
    assert.is_falsy(act, path .. " should be nil or false")
  elseif getmetatable(exp) == SAME_MT then
    assert.same(exp[1], act, path)
  elseif getmetatable(exp) == SRC_MT then
    local want = exp[1] == "" and src or resolve(src, exp[1])
    assert.is_not_nil(want, path .. ": source path " .. exp[1] .. " missing in the source")
    assert.same(want, act, path .. " (vs source " .. exp[1] .. ")")
  elseif getmetatable(exp) == ALL_MT then
    for _, e in ipairs(exp) do expect.match(e, act, path, src, key, top) end
  elseif type(exp) == "table" then
    assert.equal("table", type(act), path .. " should be a table")
    if #exp > 0 then assert.equal(#exp, #act, path .. " length") end
    for k, v in pairs(exp) do
      expect.match(v, act[k], path .. "." .. tostring(k), src, k, top == nil)
    end
  else
    assert.equal(exp, act, path)
    if top and INTEGER_KEYS[key] then
      assert.is_true(expect.is_integer(act), path .. " should be an integer")
    end
  end
end

--- A copy of defaults with the fields of t laid over it.
function expect.with(defaults, t)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(t) do out[k] = v end
  return out
end

return expect
