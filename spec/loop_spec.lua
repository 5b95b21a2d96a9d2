-- whatsapp.loop: tasks, timers, sleep, waiting, error reporting, stop.
local loop = require "whatsapp.loop"
local run = require "peer.run"

describe("whatsapp.loop", function()
  describe("tasks", function()
    it("runs a task at once until it first waits, then from the loop", function()
      local steps = {}
      local before = loop.tasks()
      local t = loop.spawn(function(a, b)
        steps[#steps + 1] = "start " .. a .. b
        loop.sleep(0)
        steps[#steps + 1] = "after sleep"
        return a + b, "x"
      end, 1, 2)
      assert.same({ "start 12" }, steps)
      assert.is_nil(t.done)
      assert.equal(before + 1, loop.tasks())
      assert.equal("done", run.loop())
      assert.same({ "start 12", "after sleep" }, steps)
      local r1, r2 = t:wait()
      assert.equal(3, r1)
      assert.equal("x", r2)
      assert.equal(before, loop.tasks())
    end)

    it("current() is the task inside it and nil outside", function()
      assert.is_nil(loop.current())
      local seen
      local t = loop.spawn(function() seen = loop.current() end)
      assert.equal(t, seen)
    end)

    it("task:wait blocks a plain script and yields in a task", run.task(function()
      local inner = loop.spawn(function() loop.sleep(0.01) return "inner" end)
      assert.equal("inner", inner:wait())
      -- waiting again on a finished task returns at once
      assert.equal("inner", inner:wait())
    end))

    it("task:wait outside any task turns the loop until the task ends", function()
      local t = loop.spawn(function() loop.sleep(0.01) return 7, nil, 9 end)
      local a, b, c = t:wait()
      assert.equal(7, a)
      assert.is_nil(b)
      assert.equal(9, c)
    end)

    it("keeps results with embedded nils", run.task(function()
      local t = loop.spawn(function() loop.sleep(0) return nil, 2, nil end)
      local n = select("#", t:wait())
      assert.equal(3, n)
    end))

    it("a task that raises: reported to on_error, never swallowed; wait gives nil, err", run.task(function()
      local t = loop.spawn(function()
        loop.sleep(0)
        error("task boom")
      end)
      local r, err = t:wait()
      assert.is_nil(r)
      assert.matches("task boom", tostring(err))
      assert.equal(1, #run.reported)
      assert.matches("task boom", run.reported[1])
      assert.matches("traceback", run.reported[1]) -- with where it happened
      -- and the loop keeps working
      loop.sleep(0.01)
      local t2 = loop.spawn(function() loop.sleep(0) return "fine" end)
      assert.equal("fine", t2:wait())
    end))

    it("a task that raises before its first wait is reported too", function()
      run.reported = {}
      local t = loop.spawn(function() error("early boom") end)
      assert.is_true(t.done)
      assert.matches("early boom", tostring(t.err))
      assert.equal(1, #run.reported)
    end)

    it("spawn checks its argument", function()
      assert.has_error(function() loop.spawn(42) end)
      assert.has_error(function() loop.spawn_detached(42) end)
    end)
  end)

  describe("detached tasks", function()
    it("run at once, wait like tasks, count in tasks(), return nothing", function()
      local before = loop.tasks()
      local steps = {}
      local r = loop.spawn_detached(function(a, b, c)
        steps[#steps + 1] = a .. b .. c
        loop.sleep(0)
        steps[#steps + 1] = "after sleep"
        return "dropped"
      end, 1, 2, 3)
      assert.is_nil(r)
      assert.same({ "123" }, steps)
      assert.equal(before + 1, loop.tasks())
      assert.equal("done", run.loop())
      assert.same({ "123", "after sleep" }, steps)
      assert.equal(before, loop.tasks())
      -- one that never waits is over when spawn_detached returns
      loop.spawn_detached(function() steps[#steps + 1] = "quick" end)
      assert.equal("quick", steps[3])
      assert.equal(before, loop.tasks())
    end)

    it("current() gives a detached job a task of its own, the same one after a wait", run.task(function()
      local seen = {}
      loop.spawn_detached(function()
        seen[1] = loop.current()
        loop.sleep(0.01)
        seen[2] = loop.current()
        return "r1", nil, "r3"
      end)
      assert.is_table(seen[1])
      assert.equal(seen[1], seen[2] or seen[1])
      assert.are_not.equal(loop.current(), seen[1])
      -- from then on it is an ordinary task: others can wait for it and get its results
      local a, b, c = seen[1]:wait()
      assert.equal(seen[1], seen[2])
      assert.same({ "r1", nil, "r3" }, { a, b, c })
      -- one that asks only after its first wait
      local late
      loop.spawn_detached(function()
        loop.sleep(0)
        late = loop.current()
        return "late"
      end)
      assert.is_nil(late)
      run.wait_for(function() return late ~= nil end, 5)
      assert.equal("late", late:wait())
    end))

    it("an error is reported, before or after a wait, and the loop keeps working", run.task(function()
      run.reported = {}
      loop.spawn_detached(function() error("detached early boom") end)
      assert.equal(1, #run.reported)
      assert.matches("detached early boom", run.reported[1])
      assert.matches("traceback", run.reported[1])
      local before = loop.tasks()
      loop.spawn_detached(function() loop.sleep(0) error("detached late boom") end)
      run.wait_for(function() return #run.reported == 2 end, 5)
      assert.matches("detached late boom", run.reported[2])
      assert.equal(before, loop.tasks())
      -- the pool still hands out working coroutines
      local ok = false
      loop.spawn_detached(function() loop.sleep(0) ok = true end)
      run.wait_for(function() return ok end, 5)
      assert.is_true(ok)
    end))
  end)

  describe("timers", function()
    it("sleeps wake in deadline order", run.task(function()
      local order = {}
      local ts = {}
      for _, d in ipairs{ 0.06, 0.02, 0.04, 0, 0.01 } do
        ts[#ts + 1] = loop.spawn(function()
          loop.sleep(d)
          order[#order + 1] = d
        end)
      end
      loop.wait_all(ts)
      assert.same({ 0, 0.01, 0.02, 0.04, 0.06 }, order)
    end))

    it("loop.timer calls its function once; cancel stops it", run.task(function()
      local calls, cancelled = 0, 0
      local t1 = loop.timer(0.01, function() calls = calls + 1 end)
      local t2 = loop.timer(0.01, function() cancelled = cancelled + 1 end)
      assert.is_true(t1:pending())
      assert.is_true(t2:cancel())
      assert.is_false(t2:cancel()) -- already cancelled
      assert.is_false(t2:pending())
      loop.sleep(0.05)
      assert.equal(1, calls)
      assert.equal(0, cancelled)
      assert.is_false(t1:pending())
      assert.is_false(t1:cancel()) -- already fired
    end))

    it("a cancelled timer does not keep run going", function()
      local t = loop.timer(30, function() error("must not run") end)
      t:cancel()
      assert.equal("done", run.loop(10))
    end)

    it("a weak timer does not keep run going, and does not fire after it", function()
      local fired = false
      local weak = loop.timer(30, function() fired = true end, true)
      local strong = 0
      loop.timer(0.01, function() strong = strong + 1 end)
      assert.equal("done", run.loop(10))
      assert.equal(1, strong)
      assert.is_false(fired)
      assert.is_true(weak:pending())
      assert.is_true(weak:cancel())
    end)

    it("a weak timer fires while something else keeps the loop going", function()
      local fired = false
      loop.timer(0.01, function() fired = true end, true)
      loop.timer(0.2, function() end)
      run.loop(10)
      assert.is_true(fired)
    end)

    it("an error in a timer callback is reported and the loop keeps working", function()
      run.reported = {}
      loop.timer(0, function() error("timer boom") end)
      local later = false
      loop.timer(0.02, function() later = true end)
      assert.equal("done", run.loop(10))
      assert.is_true(later)
      assert.equal(1, #run.reported)
      assert.matches("timer boom", run.reported[1])
    end)

    it("rejects bad arguments", function()
      assert.has_error(function() loop.timer(1, "nope") end)
      assert.has_error(function() loop.timer(-1, function() end) end)
      assert.has_error(function() loop.sleep(-1) end)
      assert.has_error(function() loop.sleep("x") end)
    end)

    it("now() is monotonic and moves with sleep", run.task(function()
      local a = loop.now()
      loop.sleep(0.02)
      local b = loop.now()
      assert.is_true(b > a)
    end))
  end)

  describe("waiting on several tasks", function()
    it("wait_any returns the first to finish", run.task(function()
      local slow = loop.spawn(function() loop.sleep(0.2) return "slow" end)
      local fast = loop.spawn(function() loop.sleep(0.01) return "fast" end)
      local i, t = loop.wait_any{ slow, fast }
      assert.equal(2, i)
      assert.equal(fast, t)
      assert.equal("fast", t:wait())
      assert.equal("slow", slow:wait())
      -- with one already done it returns at once
      assert.equal(1, (loop.wait_any{ slow, fast }))
    end))

    it("wait_any outside a task blocks until one is done", function()
      local a = loop.spawn(function() loop.sleep(0.05) end)
      local b = loop.spawn(function() loop.sleep(0.01) end)
      local i = loop.wait_any{ a, b }
      assert.equal(2, i)
      run.loop(10)
    end)

    it("wait_all waits for every task, failed ones included", run.task(function()
      local ts = {}
      for i = 1, 20 do
        ts[i] = loop.spawn(function()
          loop.sleep((i % 5) * 0.005)
          if i == 7 then error("seven") end
          return i * 2
        end)
      end
      assert.equal(ts, loop.wait_all(ts))
      for i = 1, 20 do
        assert.is_true(ts[i].done)
        if i == 7 then
          assert.is_nil((ts[i]:wait()))
        else
          assert.equal(i * 2, ts[i]:wait())
        end
      end
      assert.equal(1, #run.reported)
    end))

    it("wait_any checks its argument", function()
      assert.has_error(function() loop.wait_any{} end)
    end)
  end)

  describe("blocking where it cannot", function()
    it("a blocking call inside a plain loop callback raises a clear error", function()
      local ok, err
      loop.timer(0, function()
        ok, err = pcall(loop.sleep, 0.01)
      end)
      run.loop(10)
      assert.is_false(ok)
      assert.matches("cannot block inside a loop callback", tostring(err))
      assert.matches("loop.spawn", tostring(err))
    end)

    it("the same call in a task spawned from the callback works", function()
      local done = false
      loop.timer(0, function()
        loop.spawn(function()
          loop.sleep(0.01)
          done = true
        end)
      end)
      run.loop(10)
      assert.is_true(done)
    end)

    it("waiting on a task that can never finish raises instead of hanging", function()
      -- a task whose coroutine is parked forever (never resumed by anyone)
      local t = loop.spawn(function() coroutine.yield() end)
      local ok, err = pcall(t.wait, t)
      assert.is_false(ok)
      assert.matches("nothing is pending", tostring(err))
    end)
  end)

  describe("run and stop", function()
    it("run returns 'done' when nothing is pending", function()
      assert.equal("done", run.loop(10))
    end)

    it("stop makes run return 'stopped' with work still pending", function()
      local t = loop.timer(30, function() end)
      loop.timer(0.01, function() loop.stop() end)
      assert.equal("stopped", run.loop(10))
      assert.is_true(t:cancel())
      assert.equal("done", run.loop(10))
    end)

    it("on_stop registers and unregisters", function()
      local unregister = loop.on_stop(function() end)
      assert.is_function(unregister)
      unregister()
    end)

    it("report goes to on_error", function()
      run.reported = {}
      loop.report("by hand")
      assert.same({ "by hand" }, run.reported)
    end)

    it("on_error checks its argument", function()
      assert.has_error(function() loop.on_error("x") end)
    end)
  end)
end)
