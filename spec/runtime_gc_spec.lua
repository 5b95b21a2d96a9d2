-- Collection of the runtime's userdata: whatsapp.loop.Timer, whatsapp.loop.Signal,
-- whatsapp.http.Session, whatsapp.server.Server and whatsapp.server.Request. For each: it is
-- collectable once nothing holds it (a weak table sees it go), close() then __gc is safe, close()
-- twice is safe, and (Lua 5.4) `local x <close>` closes it. whatsapp.loop.Loop is the process's
-- one loop and is left alone.
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local server = require "whatsapp.server"
local peer = require "peer"
local run = require "peer.run"

-- This process's pid (from /proc: no os.getpid in Lua).
local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end

local base = loop.core

local function full_gc()
  collectgarbage()
  collectgarbage()
end

-- True when the value weak[1] was collected.
local function collected(weak)
  full_gc()
  return weak[1] == nil
end

local function weak_ref(v)
  return setmetatable({ v }, { __mode = "v" })
end

-- Runs `src` (a chunk using `<close>`) with `env` values as upvalue-free globals; nil when the
-- interpreter has no to-be-closed variables (LuaJIT), so this file still parses there.
local function with_close(src, env)
  local chunk = load(src, "=close", "t", setmetatable(env, { __index = _G }))
  if not chunk then return nil end
  return chunk
end

local HAS_CLOSE = load("local x <close> = nil") ~= nil

local function metaname(u)
  local mt = getmetatable(u)
  return mt and mt.__name
end

describe("runtime userdata and the collector", function()
  describe("whatsapp.loop.Timer", function()
    it("a fired timer is collectable", function()
      local w = weak_ref(base:timer(0, function() end))
      assert.equal("whatsapp.loop.Timer", metaname(w[1]))
      run.loop(10)
      assert.is_true(collected(w))
    end)

    it("a pending timer is anchored by the loop until it fires or is cancelled", function()
      local fired = false
      local w = weak_ref(base:timer(0.01, function() fired = true end))
      assert.is_false(collected(w))
      run.loop(10)
      assert.is_true(fired)
      assert.is_true(collected(w))
      w = weak_ref(base:timer(30, function() error("cancelled timer ran") end))
      w[1]:cancel()
      assert.is_true(collected(w))
      assert.equal("done", run.loop(10))
    end)

    it("close() then __gc, close() twice, close() on a pending timer", function()
      local t = base:timer(30, function() error("closed timer ran") end)
      t:close()
      t:close()
      assert.is_false(t:pending())
      assert.is_false(t:cancel())
      local w = weak_ref(t)
      t = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
      assert.equal("done", run.loop(10))
    end)

    it("<close> closes it (Lua 5.4)", function()
      if not HAS_CLOSE then return pending("no <close> in this Lua") end
      local chunk = with_close([[
        local t <close> = base:timer(30, function() error("closed timer ran") end)
        return t
      ]], { base = base })
      local t = chunk()
      assert.is_false(t:pending())
      assert.equal("done", run.loop(10))
    end)
  end)

  describe("whatsapp.loop.Signal", function()
    it("is collectable, and collecting it stops the watch", function()
      local w = weak_ref(base:signal("USR2", function() end))
      assert.equal("whatsapp.loop.Signal", metaname(w[1]))
      assert.is_true(collected(w))
    end)

    it("delivers while open; close() then __gc, close() twice", function()
      local got = 0
      local s = base:signal("USR1", function(signum) got = got + 1 assert(type(signum) == "number") end)
      loop.timer(0, function() peer.sh("kill -USR1 " .. own_pid()) end)
      -- the signal handler does not keep run going: a timer waits for it
      loop.spawn(function() run.wait_for(function() return got > 0 end, 10) end)
      run.loop(20)
      assert.equal(1, got)
      s:close()
      s:close()
      local w = weak_ref(s)
      s = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
    end)

    it("<close> closes it (Lua 5.4)", function()
      if not HAS_CLOSE then return pending("no <close> in this Lua") end
      with_close([[ local s <close> = base:signal("HUP", function() end) ]], { base = base })()
      full_gc()
    end)
  end)

  describe("whatsapp.http.Session", function()
    it("is collectable unused and after requests", run.task(function()
      local w = weak_ref(http.session().core)
      assert.equal("whatsapp.http.Session", metaname(w[1]))
      assert.is_true(collected(w))
      local s = http.session()
      -- a refused connection: a transfer went through it
      local _, err = s:request{ url = "http://127.0.0.1:1/" }
      assert.equal("connect", err.code)
      w = weak_ref(s.core)
      s = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
    end))

    it("close() then __gc, close() twice; a closed session refuses requests", function()
      local s = http.session()
      s:close()
      s:close()
      assert.has_error(function() s:request{ url = "http://127.0.0.1:1/" } end)
      local w = weak_ref(s.core)
      s = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
    end)

    it("<close> closes it (Lua 5.4)", function()
      if not HAS_CLOSE then return pending("no <close> in this Lua") end
      local s = with_close([[ local s <close> = http.session() return s ]], { http = http })()
      assert.has_error(function() s:request{ url = "http://127.0.0.1:1/" } end)
      local core = with_close([[ local c <close> = s.core return c ]], { s = http.session() })()
      assert.has_error(function() core:inflight() end)
    end)
  end)

  describe("whatsapp.server.Server", function()
    it("is collectable once closed (open, the loop holds it)", function()
      -- the C object directly: while it listens the loop anchors it
      local core = require "whatsapp.core"
      local w = weak_ref(core.server(base, { port = 0 }, function() end))
      assert.equal("whatsapp.server.Server", metaname(w[1]))
      assert.is_false(collected(w))
      w[1]:close()
      assert.is_true(collected(w))
      -- and through the module: closed and dropped, it goes
      local srv = assert(server.listen{ port = 0, handler = function() return 200 end })
      w = weak_ref(srv.core)
      srv:close()
      srv = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
      assert.equal("done", run.loop(10))
    end)

    it("close() then __gc, close() twice; a closed server refuses use", function()
      local srv = assert(server.listen{ port = 0, handler = function() return 200 end })
      srv:close()
      srv:close()
      assert.has_error(function() srv:port() end)
      local w = weak_ref(srv.core)
      srv = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
      assert.equal("done", run.loop(10))
    end)

    it("drain() then close()", run.task(function()
      local srv = assert(server.listen{ port = 0, handler = function() return 200 end })
      assert.equal(0, srv:drain())
      loop.sleep(0.01)
      srv:close()
      srv:close()
    end))

    it("<close> closes it (Lua 5.4)", function()
      if not HAS_CLOSE then return pending("no <close> in this Lua") end
      local srv = with_close([[
        local srv <close> = assert(server.listen{ port = 0, handler = function() return 200 end })
        return srv
      ]], { server = server })()
      assert.has_error(function() srv:port() end)
      assert.equal("done", run.loop(10))
    end)
  end)

  describe("whatsapp.server.Request", function()
    it("an answered request handle is collectable", run.task(function()
      local w = setmetatable({}, { __mode = "v" })
      local srv = assert(server.listen{ port = 0, handler = function(req)
        w[1] = req.handle
        return 200, nil, "ok"
      end })
      local res = assert(http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/" })
      assert.equal(200, res.status)
      assert.equal("whatsapp.server.Request", metaname(w[1]))
      assert.is_true(collected(w))
      srv:close()
    end))

    it("close()/__gc on an unanswered one answers 500; twice is safe; respond after is false", run.task(function()
      local handle
      local srv = assert(server.listen{ port = 0, handler = function(req) handle = req.handle end })
      local t = loop.spawn(function() return http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/" } end)
      assert(run.wait_for(function() return handle ~= nil end, 10))
      assert.is_false(handle:answered())
      getmetatable(handle).__gc(handle) -- what the collector would do
      getmetatable(handle).__gc(handle)
      assert.is_true(handle:answered())
      assert.is_false(handle:respond(200, nil, "late"))
      assert.equal(500, assert(t:wait()).status)
      local w = weak_ref(handle)
      handle = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
      srv:close()
    end))

    it("a request handle outliving its closed server is safe", run.task(function()
      local handle
      local srv = assert(server.listen{ port = 0, handler = function(req) handle = req.handle end })
      local t = loop.spawn(function() return http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/" } end)
      assert(run.wait_for(function() return handle ~= nil end, 10))
      srv:close()
      assert.equal(503, assert(t:wait()).status)
      assert.is_false(handle:respond(200))
      assert.is_true(handle:gone())
      srv = nil -- luacheck: ignore 311
      local w = weak_ref(handle)
      handle = nil -- luacheck: ignore 311
      assert.is_true(collected(w))
    end))

    it("<close> answers it (Lua 5.4)", run.task(function()
      if not HAS_CLOSE then return end
      local srv = assert(server.listen{ port = 0, handler = function(req)
        with_close([[ local h <close> = req.handle ]], { req = req })()
      end })
      local res = assert(http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/" })
      assert.equal(500, res.status)
      srv:close()
    end))
  end)
end)
