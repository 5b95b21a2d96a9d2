--- Running spec bodies on the process's loop (shared by the loop, http, server and GC specs).
--
-- run.task(fn) returns a function for `it`: it spawns fn as a loop task, turns the loop until
-- nothing is pending, and re-raises fn's error (an assertion) in the spec. A weak watchdog timer
-- stops a loop that would otherwise hang (a bug), so a failure never stalls the suite; it is
-- cancelled afterwards so it cannot fire in a later spec. Errors reported to loop.on_error while
-- fn runs are collected in run.reported (and cleared before each run).
local loop = require "whatsapp.loop"

local run = {}

run.reported = {}

loop.on_error(function(err)
  run.reported[#run.reported + 1] = tostring(err)
end)

--- Turn the loop (loop.run) with a watchdog; returns what loop.run returned.
function run.loop(limit)
  local fired = false
  local dog = loop.timer(limit or 60, function()
    fired = true
    loop.stop()
  end, true)
  local how = loop.run{ signals = false }
  dog:cancel()
  assert(not fired, "the loop was still busy after " .. (limit or 60) .. " s (watchdog)")
  return how
end

--- A spec body running as a task.
function run.task(fn, limit)
  return function()
    run.reported = {}
    local ok, err = true, nil
    local finished = false
    loop.spawn(function()
      ok, err = xpcall(fn, debug.traceback)
      finished = true
    end)
    if not finished then run.loop(limit) end
    if not ok then error(err, 0) end
    assert(finished, "the spec's task never finished")
  end
end

--- Inside a task: wait (yielding) until pred() is true; false after `timeout` seconds.
function run.wait_for(pred, timeout, step)
  local deadline = loop.now() + (timeout or 30)
  while not pred() do
    if loop.now() > deadline then return false end
    loop.sleep(step or 0.02)
  end
  return true
end

--- Inside a task: wait for a peer job (peer.spawn) to finish; returns its exit status.
function run.wait_job(job, timeout)
  assert(run.wait_for(job.done, timeout or 40), "background command did not finish")
  return job.rc
end

return run
