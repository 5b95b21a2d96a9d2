-- Pacing (whatsapp.rate) on a virtual clock: the limiter's arithmetic is
-- checked exactly, without timing anything.
local rate = require "whatsapp.rate"

-- A fake clock whose sleep advances time and records each wait.
local function fake()
  local c = { t = 1000, waits = {} }
  c.clock = function() return c.t end
  c.sleep = function(s)
    c.waits[#c.waits + 1] = s
    c.t = c.t + s
  end
  return c
end

local function near(a, b) return math.abs(a - b) < 1e-9 end

describe("rate.new", function()
  it("lets a burst through, then spaces requests 1/per_second apart", function()
    local c = fake()
    local l = rate.new{ per_second = 10, burst = 3, clock = c.clock, sleep = c.sleep }
    for _ = 1, 3 do assert.are.equal(0, l:take()) end
    assert.are.equal(0, #c.waits)
    assert.is_true(near(l:take(), 0.1))
    assert.is_true(near(l:take(), 0.1))
    assert.are.equal(2, #c.waits)
  end)

  it("refills while idle, but never beyond the burst", function()
    local c = fake()
    local l = rate.new{ per_second = 2, burst = 2, clock = c.clock, sleep = c.sleep }
    l:take(); l:take()
    assert.is_true(near(l:delay(), 0.5))
    c.t = c.t + 100
    assert.are.equal(0, l:take())
    assert.are.equal(0, l:take())
    assert.is_true(l:take() > 0)
  end)

  it("reserves slots in order for concurrent callers (no two get the same slot)", function()
    local c = fake()
    -- A sleep that does not advance time: callers queue up, each must get a
    -- later slot than the previous one.
    local waits = {}
    local l = rate.new{ per_second = 4, burst = 1, clock = c.clock, sleep = function(s) waits[#waits + 1] = s end }
    for _ = 1, 5 do l:take() end
    assert.are.same(4, #waits)
    for i = 1, 4 do assert.is_true(near(waits[i], 0.25 * i), "slot " .. i .. " got " .. waits[i]) end
  end)

  it("hold pushes every sender back", function()
    local c = fake()
    local l = rate.new{ per_second = 80, clock = c.clock, sleep = c.sleep }
    l:hold(2)
    assert.is_true(near(l:take(), 2))
  end)

  it("defaults the burst to one second's worth", function()
    local c = fake()
    local l = rate.new{ per_second = 80, clock = c.clock, sleep = c.sleep }
    for _ = 1, 80 do l:take() end
    assert.are.equal(0, #c.waits)
    l:take()
    assert.are.equal(1, #c.waits)
  end)

  it("raises on bad options", function()
    assert.has_error(function() rate.new{ per_second = 0 } end)
    assert.has_error(function() rate.new{ per_second = -1 } end)
    assert.has_error(function() rate.new{ per_second = 0 / 0 } end)
    assert.has_error(function() rate.new() end)
    assert.has_error(function() rate.new{ per_second = 5, burst = "x" } end)
  end)
end)

describe("rate.keyed", function()
  it("spaces each key on its own", function()
    local c = fake()
    local k = rate.keyed{ burst = 2, interval = 6, clock = c.clock, sleep = c.sleep }
    assert.are.equal(0, k:take("a"))
    assert.are.equal(0, k:take("a"))
    assert.are.equal(0, k:take("b"))
    assert.is_true(near(k:delay("a"), 6))
    assert.are.equal(0, k:delay("b"))
    assert.is_true(near(k:take("a"), 6))
  end)

  it("forgets keys that have recovered, so memory follows active recipients", function()
    local c = fake()
    local k = rate.keyed{ burst = 1, interval = 1, clock = c.clock, sleep = c.sleep }
    for i = 1, 500 do k:take("user" .. i) end
    assert.are.equal(500, k:size())
    c.t = c.t + 10
    k:take("late")
    assert.are.equal(1, k:size())
  end)

  it("hold delays one key only", function()
    local c = fake()
    local k = rate.keyed{ burst = 45, interval = 6, clock = c.clock, sleep = c.sleep }
    k:hold("a", 3)
    assert.is_true(near(k:take("a"), 3))
    assert.are.equal(0, k:take("b"))
  end)

  it("waits through the real loop when no clock is given (yielding in a task)", function()
    local loop = require "whatsapp.loop"
    local k = rate.keyed{ burst = 1, interval = 0.02 }
    local order = {}
    local t1 = loop.spawn(function()
      k:take("x"); order[#order + 1] = "first"
      k:take("x"); order[#order + 1] = "x2"
    end)
    local t2 = loop.spawn(function() k:take("y"); order[#order + 1] = "other" end)
    loop.wait_all{ t1, t2 }
    -- The second take of "x" had to wait; "y" did not wait behind it.
    assert.are.same({ "first", "other", "x2" }, order)
  end)
end)
