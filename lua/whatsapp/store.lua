--- State stores for the bot runtime: the interface, and the in-memory default.
--
--     local store = require "whatsapp.store"
--     local s = store.memory()                 -- or store.memory{ clock = function() return t end }
--     s:set("session:15550002222", { step = "name" }, 3600)
--     local v = s:get("session:15550002222")   -- a copy: { step = "name" }
--     local n = s:incr("seen:wamid.X", 1, 86400) -- 1 the first time, 2 after that
--     s:delete("session:15550002222")
--
-- ## The interface a store implements
--
-- A store is any table with these four methods. The bot calls them from inside loop tasks, so
-- an implementation may yield (a Redis store talking over the network does); they must not
-- raise on a runtime failure, but return `nil, err`.
--
-- * `store:get(key)` → the value, or `nil` when the key is absent or expired.
-- * `store:set(key, value, ttl)` → `true`. `ttl` is in seconds (`nil`: no expiry). Values are
--   JSON-serialisable: strings, numbers, booleans and tables of them (no functions, no
--   cycles, no metatables). A store returns a value equal to the one set, never the same
--   table: changing a value after `set` or after `get` does not change what is stored (a Redis
--   store gets that for free by storing `cjson.encode(value)`).
-- * `store:delete(key)` → `true`.
-- * `store:incr(key, by, ttl)` → the new number. Atomic: two concurrent increments of the same
--   key both count, across every process that shares the store. A missing or expired key
--   counts from 0; `ttl` is applied when the increment creates the key (an existing key keeps
--   its expiry). In Redis: `INCRBY key by` then `EXPIRE key ttl NX` (or a small Lua script).
--
-- Keys are strings made by the bot, such as `"wa:session:<phone_number_id>:<user>"`; a shared
-- store can prefix them further.
--
-- ## The memory store
--
-- One process, no persistence. Expired keys are dropped when read, and swept out in bulk as
-- writes go by (a full sweep after as many writes as there were keys, so the amortised cost is
-- constant and the table never holds much more than twice the live keys).
--
-- `store.encode` and `store.decode` turn values into JSON text and back, for stores that keep
-- text (Redis): decoding gives integral numbers back as integers under Lua 5.3+, as the
-- memory store would.
-- @module whatsapp.store
local store = {}

local type, pairs, ipairs, setmetatable, getmetatable, error, tonumber =
  type, pairs, ipairs, setmetatable, getmetatable, error, tonumber
local os_time = os.time

-- The default clock: the loop's monotonic seconds when the C core is there, else os.time.
local default_clock
do
  local ok, core = pcall(require, "whatsapp.core")
  default_clock = ok and core.now or os_time
end

-- A deep copy of a JSON-serialisable value (tables are copied, metatables kept only for the
-- empty-array marker so that an empty JSON array stays one).
local function copy(v, depth)
  if type(v) ~= "table" then return v end
  depth = (depth or 0) + 1
  if depth > 100 then error("whatsapp.store: value nested too deep (a cycle?)", 3 + depth) end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x, depth) end
  local mt = getmetatable(v)
  if mt ~= nil then setmetatable(c, mt) end
  return c
end
store.copy = copy

local cjson = require "cjson.safe"
local json = cjson.new()
json.encode_sparse_array(true)
local tointeger, floor = math.tointeger, math.floor

local function integers(v)
  if type(v) == "number" then
    if tointeger and v == floor(v) and v >= -2 ^ 63 and v < 2 ^ 63 then return tointeger(v) or v end
    return v
  end
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if type(x) == "number" or type(x) == "table" then v[k] = integers(x) end
  end
  return v
end

--- A value as JSON text (for stores that keep text).
-- @param value a JSON-serialisable value
-- @treturn string|nil the text, or nil and a message
function store.encode(value)
  return json.encode(value)
end

--- A value from JSON text made by `store.encode` (integral numbers become integers).
-- @tparam string text
-- @return the value, or nil and a message
function store.decode(text)
  local v, err = json.decode(text)
  if v == nil then return nil, err end
  return integers(v)
end

local Memory = {}
Memory.__index = Memory
Memory.__name = "whatsapp.store.Memory"

--- An in-memory store.
-- @tparam[opt] table opts `clock` (a function returning seconds; default the loop's monotonic
--   clock), `sweep_min` (writes between two sweeps at least, default 1024)
-- @return the store
function store.memory(opts)
  if opts ~= nil and type(opts) ~= "table" then error("store.memory: options must be a table", 2) end
  opts = opts or {}
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    error("store.memory: clock must be a function", 2)
  end
  return setmetatable({
    clock = opts.clock or default_clock,
    sweep_min = opts.sweep_min or 1024,
    values = {},    -- key -> value
    expires = {},   -- key -> deadline (absent: no expiry)
    n = 0,          -- keys held (live or expired, not yet swept)
    writes = 0,     -- writes since the last sweep
    swept = 0,      -- keys left by the last sweep
  }, Memory)
end

local function check_key(key, fname)
  if type(key) ~= "string" then error("store:" .. fname .. ": key must be a string", 3) end
end

local function check_ttl(ttl, fname)
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0) then
    error("store:" .. fname .. ": ttl must be a positive number of seconds or nil", 3)
  end
end

-- Drop every expired key; the tables are rebuilt so their memory is given back.
function Memory:sweep()
  local now = self.clock()
  local values, expires = {}, {}
  local n = 0
  local old_values, old_expires = self.values, self.expires
  for k, v in pairs(old_values) do
    local d = old_expires[k]
    if d == nil or d > now then
      values[k] = v
      expires[k] = d
      n = n + 1
    end
  end
  self.values, self.expires, self.n, self.writes, self.swept = values, expires, n, 0, n
  return n
end

local function wrote(self)
  local w = self.writes + 1
  self.writes = w
  local limit = self.swept
  if limit < self.sweep_min then limit = self.sweep_min end
  if w >= limit then self:sweep() end
end

-- The value of a live key, dropping an expired one.
local function live(self, key)
  local v = self.values[key]
  if v == nil then return nil end
  local d = self.expires[key]
  if d ~= nil and d <= self.clock() then
    self.values[key], self.expires[key] = nil, nil
    self.n = self.n - 1
    return nil
  end
  return v
end

--- The value of a key (a copy), or nil when it is absent or expired.
-- @tparam string key
-- @return the value or nil
function Memory:get(key)
  check_key(key, "get")
  return copy(live(self, key))
end

--- Store a value (a copy of it) under a key.
-- @tparam string key
-- @param value a JSON-serialisable value (nil deletes the key)
-- @tparam[opt] number ttl seconds until it expires (nil: never)
-- @treturn boolean true
function Memory:set(key, value, ttl)
  check_key(key, "set")
  check_ttl(ttl, "set")
  if value == nil then return self:delete(key) end
  local t = type(value)
  if t == "function" or t == "userdata" or t == "thread" then
    error("store:set: value must be JSON-serialisable, got a " .. t, 2)
  end
  if self.values[key] == nil then self.n = self.n + 1 end
  self.values[key] = copy(value)
  self.expires[key] = ttl and (self.clock() + ttl) or nil
  wrote(self)
  return true
end

--- Remove a key.
-- @tparam string key
-- @treturn boolean true
function Memory:delete(key)
  check_key(key, "delete")
  if self.values[key] ~= nil then
    self.values[key], self.expires[key] = nil, nil
    self.n = self.n - 1
  end
  return true
end

--- Add `by` to the number under a key, atomically; a missing or expired key counts from 0.
-- @tparam string key
-- @tparam[opt=1] number by
-- @tparam[opt] number ttl seconds, applied when this call creates the key
-- @treturn number the new value
function Memory:incr(key, by, ttl)
  check_key(key, "incr")
  check_ttl(ttl, "incr")
  by = by or 1
  if type(by) ~= "number" then error("store:incr: by must be a number", 2) end
  local v = live(self, key)
  if v == nil then
    self.n = self.n + 1
    self.values[key] = by
    self.expires[key] = ttl and (self.clock() + ttl) or nil
    wrote(self)
    return by
  end
  v = tonumber(v)
  if v == nil then
    return nil, require("whatsapp.errors").new{ code = "not_a_number",
      message = "store:incr: the value under the key is not a number" }
  end
  v = v + by
  self.values[key] = v
  return v
end

--- Number of keys held now (expired ones not swept yet included).
-- @treturn integer
function Memory:size()
  return self.n
end

--- Forget everything.
function Memory:clear()
  self.values, self.expires, self.n, self.writes, self.swept = {}, {}, 0, 0, 0
end

--- Whether `s` has the four methods of the store interface.
-- @param s
-- @treturn boolean
function store.is_store(s)
  if type(s) ~= "table" then return false end
  for _, m in ipairs{ "get", "set", "delete", "incr" } do
    local f = s[m]
    if type(f) ~= "function" and not (type(f) == "table" and getmetatable(f) and getmetatable(f).__call) then
      return false
    end
  end
  return true
end

return store
