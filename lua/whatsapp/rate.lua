--- Pacing for outbound messages: a rate per sending number and spacing per
-- recipient, so a bot stays under Meta's throughput (130429) and pair rate
-- (131056) limits without writing any backoff code.
--
--     local rate = require "whatsapp.rate"
--     local pace = rate.new{ per_second = 80, burst = 80 }
--     pace:take()            -- waits (yielding the task) until a slot is free
--
--     local pairs = rate.keyed{ burst = 45, interval = 6 }
--     pairs:take("15550002222")
--
-- Both use the generic cell rate algorithm: each limiter keeps one number, the
-- theoretical arrival time of the next request, and a caller reserves its slot
-- before it waits. Concurrent tasks therefore get ordered slots and none of
-- them spins; waiting goes through `whatsapp.loop.sleep`, which yields inside a
-- task and turns the loop in a plain script, never sleeping the process.
-- @module whatsapp.rate
local loop = require "whatsapp.loop"

local rate = {}

local setmetatable, type, pairs, max = setmetatable, type, pairs, math.max
-- Waits shorter than this are rounding noise from adding up intervals.
local EPS = 1e-9

local Limiter = {}
Limiter.__index = Limiter
Limiter.__name = "whatsapp.rate.Limiter"

local function check_positive(v, what, level)
  if type(v) ~= "number" or v <= 0 or v ~= v then
    error("whatsapp.rate: " .. what .. " must be a positive number", level + 1)
  end
end

--- A limiter allowing `per_second` requests a second on average, and bursts of
-- up to `burst` at once (default: one second's worth, at least 1).
-- `clock` and `sleep` replace `loop.now` and `loop.sleep` (for tests).
-- @tparam table opts `per_second`, `burst`, `clock`, `sleep`
-- @return the limiter
function rate.new(opts)
  if type(opts) ~= "table" then error("rate.new: table expected", 2) end
  check_positive(opts.per_second, "per_second", 2)
  local burst = opts.burst or max(1, opts.per_second)
  check_positive(burst, "burst", 2)
  local interval = 1 / opts.per_second
  return setmetatable({
    interval = interval,
    tolerance = (burst - 1) * interval,
    tat = 0,
    now = opts.clock or loop.now,
    sleep = opts.sleep or loop.sleep,
  }, Limiter)
end

--- How long a request made now would wait (seconds, 0 when it may go at once);
-- reserves nothing.
-- @treturn number
function Limiter:delay()
  local t = self.now()
  local tat = self.tat > t and self.tat or t
  local wait = tat - self.tolerance - t
  return wait > EPS and wait or 0
end

--- Reserve the next slot and wait for it. Returns the seconds waited.
-- @treturn number
function Limiter:take()
  local t = self.now()
  local tat = self.tat > t and self.tat or t
  self.tat = tat + self.interval
  local wait = tat - self.tolerance - t
  if wait > EPS then
    self.sleep(wait)
    return wait
  end
  return 0
end

--- Push the next free slot at least `seconds` into the future (after the API
-- said the limit was hit, so that every waiting sender backs off together).
-- @tparam number seconds
function Limiter:hold(seconds)
  local until_ = self.now() + seconds + self.tolerance
  if until_ > self.tat then self.tat = until_ end
end

local Keyed = {}
Keyed.__index = Keyed
Keyed.__name = "whatsapp.rate.Keyed"

--- Limiters by key (one per recipient): bursts of `burst`, then one request
-- every `interval` seconds. Keys whose limiter has fully recovered are
-- forgotten, so memory follows the recipients active within `burst * interval`.
-- @tparam table opts `burst` (default 45), `interval` (seconds, default 6),
--   `clock`, `sleep` (as for `rate.new`)
-- @return the keyed limiter
function rate.keyed(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("rate.keyed: table expected", 2) end
  local burst, interval = opts.burst or 45, opts.interval or 6
  check_positive(burst, "burst", 2)
  check_positive(interval, "interval", 2)
  return setmetatable({
    interval = interval,
    tolerance = (burst - 1) * interval,
    tat = {},
    count = 0,
    sweep_at = 0,
    now = opts.clock or loop.now,
    sleep = opts.sleep or loop.sleep,
  }, Keyed)
end

-- Forget keys whose theoretical arrival time is in the past: their limiter is
-- back at a full burst, exactly as if it had never been used.
local function sweep(self, t)
  local tat, n = self.tat, 0
  for k, v in pairs(tat) do
    if v <= t then tat[k] = nil else n = n + 1 end
  end
  self.count = n
  self.sweep_at = t + self.interval
end

--- Reserve the next slot for `key` and wait for it. Returns the seconds waited.
-- @param key usually the recipient
-- @treturn number
function Keyed:take(key)
  local t = self.now()
  if t >= self.sweep_at and self.count > 64 then sweep(self, t) end
  local cur = self.tat[key]
  if cur == nil then self.count = self.count + 1 end
  local tat = (cur and cur > t) and cur or t
  self.tat[key] = tat + self.interval
  local wait = tat - self.tolerance - t
  if wait > EPS then
    self.sleep(wait)
    return wait
  end
  return 0
end

--- How long a request for `key` made now would wait; reserves nothing.
-- @param key
-- @treturn number
function Keyed:delay(key)
  local t = self.now()
  local cur = self.tat[key]
  local tat = (cur and cur > t) and cur or t
  local wait = tat - self.tolerance - t
  return wait > EPS and wait or 0
end

--- Make `key` wait at least `seconds` before its next request.
-- @param key
-- @tparam number seconds
function Keyed:hold(key, seconds)
  local until_ = self.now() + seconds + self.tolerance
  local cur = self.tat[key]
  if cur == nil then self.count = self.count + 1 end
  if cur == nil or until_ > cur then self.tat[key] = until_ end
end

--- Number of keys remembered (for tests and metrics).
-- @treturn number
function Keyed:size()
  local n = 0
  for _ in pairs(self.tat) do n = n + 1 end
  return n
end

return rate
