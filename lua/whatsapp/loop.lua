--- The event loop and its tasks: straight-line Lua that waits without blocking.
--
--     local loop = require "whatsapp.loop"
--     loop.spawn(function()
--       local res, err = http.request{ url = "http://127.0.0.1:8080/" }  -- yields
--       loop.sleep(0.5)                                                   -- yields
--     end)
--     loop.run()   -- returns when nothing is left to wait for
--
-- One libevent base per process (C, `whatsapp.core`) drives the HTTP
-- transport, the listener, timers and signals. A *task* is a coroutine the
-- loop runs: inside one, a call that waits (an HTTP request, `sleep`,
-- `task:wait`) submits its work and yields, and the loop resumes it with the
-- result. The same call made outside any task (a plain script) turns the loop
-- itself until its own result is in, so it simply blocks.
--
-- Errors raised in a task are reported (to stderr, or to the function given to
-- `loop.on_error`) and kept on the task; they never unwind into C.
-- @module whatsapp.loop
local core = require "whatsapp.core"

local loop = {}

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_status = coroutine.running, coroutine.status
local traceback = debug.traceback
local select, setmetatable, type, tostring = select, setmetatable, type, tostring
local unpack = table.unpack or unpack -- luacheck: ignore 143

local base = core.loop()

--- The C loop object (for the transport and listener modules).
loop.core = base

local reporter = function(err)
  io.stderr:write("whatsapp.loop: ", tostring(err), "\n")
end

--- Set the function that receives errors raised in tasks and callbacks.
-- @tparam function fn called with one value (a message with a traceback)
function loop.on_error(fn)
  if type(fn) ~= "function" then error("loop.on_error: function expected", 2) end
  reporter = fn
end

--- Report an error the way the loop does.
function loop.report(err)
  local ok, e = pcall(reporter, err)
  if not ok then io.stderr:write("whatsapp.loop: reporter failed: ", tostring(e), "\n") end
end

base:set_reporter(loop.report)

-- ---- tasks -------------------------------------------------------------------

local Task = {}
Task.__index = Task
Task.__name = "whatsapp.loop.Task"

local task_of = setmetatable({}, { __mode = "k" }) -- coroutine -> task
local live = 0
local NONE = {} -- the results of every task that returned nothing (never written to)

local wake -- forward

local function finish(task, ok, ...)
  task.done = true
  live = live - 1
  -- Drop the entry now: the value refers to its own key, which LuaJIT's weak
  -- tables (no ephemerons) would otherwise keep forever.
  task_of[task.co] = nil
  if ok then
    local n = select("#", ...)
    if n > 0 then
      task.n = n
      task.results = { ... }
    end
  else
    local err = ...
    task.err = err
    loop.report(traceback(task.co, tostring(err)))
  end
  local waiters = task.waiters
  if waiters then
    task.waiters = nil
    for i = 1, #waiters do waiters[i](task) end
  end
end

-- Tasks run in pooled coroutines (a listener starts one per request). A
-- worker takes its job from its box, runs it, then yields DONE and the
-- results; it is resumed when the box holds the next job. The job is read by
-- box_call, which clears the box and tail-calls the function: once the
-- function returns, no frame of the idle worker still refers to it or to its
-- arguments (a parked worker must not keep a request alive). A worker whose
-- function raised is dead and is not reused. DONE is private, so no user
-- yield can look like it.
local DONE = {}
local idle_co, idle_box, nidle, MAX_IDLE = {}, {}, 0, 64

local function box_call(box)
  local fn, a, b, c = box[1], box[2], box[3], box[4]
  box[1], box[2], box[3], box[4] = nil, nil, nil, nil
  return fn(a, b, c)
end

local function worker(box)
  while true do
    co_yield(DONE, box_call(box))
  end
end

-- An idle worker and its box from the pool, or a new pair.
local function take_worker()
  if nidle == 0 then
    local box = {}
    return co_create(worker), box
  end
  local co, box = idle_co[nidle], idle_box[nidle]
  idle_co[nidle], idle_box[nidle] = nil, nil
  nidle = nidle - 1
  return co, box
end

-- Park a worker whose job finished, unless the pool is full.
local function park_worker(co, box)
  if nidle < MAX_IDLE then
    nidle = nidle + 1
    idle_co[nidle], idle_box[nidle] = co, box
  end
end

local function after(task, ok, first, ...)
  if not ok then
    return finish(task, false, first)
  end
  if first == DONE then
    finish(task, true, ...)
    park_worker(task.co, task.box)
    task.box = nil
  end
end

local function resume(task, ...)
  return after(task, co_resume(task.co, ...))
end

--- Run `fn(...)` as a new task. It starts at once and runs until it first
-- waits; the rest runs from the loop.
-- @tparam function fn
-- @return the task
function loop.spawn(fn, ...)
  if type(fn) ~= "function" then error("loop.spawn: function expected", 2) end
  local n = select("#", ...)
  local a, b, c = ...
  if n > 3 then
    local args = { ... }
    fn, a, b, c = function() return fn(unpack(args, 1, n)) end, nil, nil, nil
  end
  local co, box = take_worker()
  box[1], box[2], box[3], box[4] = fn, a, b, c
  -- Five fields from the start size the table for the two it may get later (done, err):
  -- it is never resized.
  local task = setmetatable({ co = co, box = box, n = 0, results = NONE, waiters = false }, Task)
  task_of[co] = task
  live = live + 1
  resume(task, box)
  return task
end

-- Detached tasks (the listener runs each request's handler as one): nobody holds or waits
-- for them, so most never need a task object. Their pooled coroutine is listed in
-- `detached` (coroutine -> its box) while the job runs; a task object is made only if the
-- job asks for it (loop.current()), and from then on the job is an ordinary task. Results
-- are dropped; an error is reported as for any task.
local detached = setmetatable({}, { __mode = "k" })

local function after_detached(co, box, ok, first, ...)
  local task = task_of[co]
  if task then return after(task, ok, first, ...) end -- became a task during this run
  if not ok then
    detached[co] = nil
    live = live - 1
    return loop.report(traceback(co, tostring(first)))
  end
  if first == DONE then
    detached[co] = nil
    live = live - 1
    park_worker(co, box)
  end
end

--- Run `fn(a, b, c)` as a task that nobody waits for: like `spawn`, but it returns
-- nothing, drops fn's results, and makes no task object unless code inside calls
-- `loop.current()`. Cheaper per call; the listener runs its handlers this way.
-- @tparam function fn
function loop.spawn_detached(fn, a, b, c)
  if type(fn) ~= "function" then error("loop.spawn_detached: function expected", 2) end
  local co, box = take_worker()
  box[1], box[2], box[3], box[4] = fn, a, b, c
  detached[co] = box
  live = live + 1
  return after_detached(co, box, co_resume(co, box))
end

--- The task running now, or nil outside any task.
function loop.current()
  local co = co_running()
  if not co then return nil end
  local task = task_of[co]
  if task == nil then
    local box = detached[co]
    if box == nil then return nil end
    -- A detached job asks for its task: it gets one, and is an ordinary task from now on.
    detached[co] = nil
    task = setmetatable({ co = co, box = box, n = 0, results = NONE, waiters = false }, Task)
    task_of[co] = task
  end
  return task
end

--- Number of tasks started and not finished.
function loop.tasks()
  return live
end

--- Called by C for every completion: resume the waiting coroutine or call
-- the waiting function with the result.
local function dispatch(token, ...)
  if type(token) == "function" then return token(...) end
  local task = task_of[token]
  if task then return resume(task, ...) end
  local box = detached[token]
  if box then return after_detached(token, box, co_resume(token, ...)) end
  -- A coroutine that is not a task (made by the caller): resume it as is.
  -- A late answer for one that has finished is dropped.
  if co_status(token) == "dead" then return end
  local ok, err = co_resume(token, ...)
  if not ok then loop.report(traceback(token, tostring(err))) end
end
base:set_dispatch(dispatch)

-- Resume co now if it is suspended, else on the next loop turn.
wake = function(co, ...)
  if co_status(co) == "suspended" then return dispatch(co, ...) end
  local n, args = select("#", ...), { ... }
  base:timer(0, function() wake(co, unpack(args, 1, n)) end)
end

--- Turn the loop until `done()` is true (a plain script waiting for one
-- result). Raises when nothing left could ever make it true.
-- @local
function loop.block_until(done)
  while not done() do
    if not base:step() and not done() then
      error("whatsapp.loop: waiting for a result but nothing is pending", 3)
    end
  end
end

--- Wait for `submit(token)`'s answer: in a task, yield until the loop
-- dispatches it; elsewhere, turn the loop until it arrives. `submit` gets the
-- token to register and may return false-y plus an error to give up early.
-- @tparam function submit
-- @return what the completion was dispatched with
function loop.await(submit)
  local co = co_running()
  if co and (task_of[co] or detached[co]) then
    local ok, e1, e2 = submit(co)
    if not ok then return nil, e1, e2 end
    return co_yield()
  end
  local box
  local ok, e1, e2 = submit(function(...) box = { n = select("#", ...), ... } end)
  if not ok then return nil, e1, e2 end
  loop.block_until(function() return box ~= nil end)
  return unpack(box, 1, box.n)
end

--- Sleep `seconds` (yields in a task, blocks elsewhere).
function loop.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("loop.sleep: seconds must be a number >= 0", 2)
  end
  loop.await(function(token)
    base:timer(seconds, token)
    return true
  end)
end

--- Call `fn()` after `seconds`, from the loop; returns the timer, whose
-- `cancel()` stops it. A `weak` timer does not keep `loop.run` going.
function loop.timer(seconds, fn, weak)
  if type(fn) ~= "function" then error("loop.timer: function expected", 2) end
  return base:timer(seconds, fn, weak)
end

--- Seconds on a monotonic clock.
loop.now = core.now

-- A token is a coroutine (resume it) or a function (call it).
local function wake_token(token)
  if type(token) == "function" then return token() end
  return wake(token)
end

--- Wait for the task to finish.
-- @return its results, or nil and its error when it raised
function Task:wait()
  if not self.done then
    loop.await(function(token)
      local waiters = self.waiters or {}
      self.waiters = waiters
      waiters[#waiters + 1] = function() wake_token(token) end
      return true
    end)
  end
  if self.err ~= nil then return nil, self.err end
  return unpack(self.results, 1, self.n)
end

--- Wait until any of the given tasks finishes.
-- @tparam {task,...} list
-- @return the index of the first finished task, and that task
function loop.wait_any(list)
  if type(list) ~= "table" or #list == 0 then error("loop.wait_any: a list of tasks expected", 2) end
  for i = 1, #list do
    if list[i].done then return i, list[i] end
  end
  local first
  loop.await(function(token)
    local fired = false
    for i = 1, #list do
      local t = list[i]
      local waiters = t.waiters or {}
      t.waiters = waiters
      waiters[#waiters + 1] = function()
        if fired then return end
        fired = true
        first = i
        wake_token(token)
      end
    end
    return true
  end)
  return first, list[first]
end

--- Wait until every task has finished; returns the list.
function loop.wait_all(list)
  for i = 1, #list do list[i]:wait() end
  return list
end

-- ---- running -----------------------------------------------------------------

local stoppers = {} -- name -> function(grace): things to stop on SIGINT/SIGTERM

--- Register `fn` to be called when a stop signal arrives (the listener uses
-- this to stop accepting). Returns a function that unregisters it.
function loop.on_stop(fn)
  local key = {}
  stoppers[key] = fn
  return function() stoppers[key] = nil end
end

--- Run the loop until nothing is left to wait for, or `loop.stop()`.
--
-- With `opts.signals` (the default when something registered with
-- `on_stop`, such as a listener), SIGINT and SIGTERM stop gracefully: the
-- listeners stop accepting, requests and tasks in flight finish, then `run`
-- returns. After `opts.grace` seconds (default 10) or a second signal it
-- returns anyway.
-- @tparam[opt] table opts `signals`, `grace`
-- @treturn string "done", "stopped" or "signal"
function loop.run(opts)
  opts = opts or {}
  local signals = opts.signals
  if signals == nil then signals = next(stoppers) ~= nil end
  local how = "done"
  local handlers = {}
  if signals then
    local stopping = false
    local function on_signal()
      how = "signal"
      if stopping then base:stop(); return end
      stopping = true
      for _, fn in pairs(stoppers) do
        local ok, err = pcall(fn)
        if not ok then loop.report(err) end
      end
      base:timer(opts.grace or 10, function() base:stop() end, true)
    end
    handlers[1] = base:signal("INT", on_signal)
    handlers[2] = base:signal("TERM", on_signal)
  end
  local ok, err = pcall(base.run, base)
  for i = 1, #handlers do handlers[i]:close() end
  if not ok then error(err, 0) end
  if how == "done" and base:alive() > 0 then how = "stopped" end
  return how
end

--- Make `loop.run` return after the current turn.
function loop.stop()
  base:stop()
end

return loop
