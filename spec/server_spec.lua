-- whatsapp.server: the evhttp listener, reached by the curl command (an independent client, run
-- in the background while the loop serves) and by the project's own transport; graceful stop
-- of a child process on SIGTERM.
local cjson = require "cjson"
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local server = require "whatsapp.server"
local peer = require "peer"
local run = require "peer.run"

local q = peer.q

-- A handler echoing what it got as JSON.
local function echo_handler(req)
  return 200, { ["Content-Type"] = "application/json" }, cjson.encode{
    method = req.method, uri = req.uri, path = req.path, query = req.query,
    query_string = req.query_string or cjson.null, body = req.body, peer = req.peer or cjson.null,
    custom = req.headers["X-Custom-Thing"] or cjson.null,
    custom_lower = req.headers["x-custom-thing"] or cjson.null,
    custom_upper = req.headers["X-CUSTOM-THING"] or cjson.null,
  }
end

describe("whatsapp.server with its own transport", function()
  it("port 0 picks a port and reports it", run.task(function()
    local srv = assert(server.listen{ port = 0, handler = echo_handler })
    local port = srv:port()
    assert.is_true(port > 0 and port < 65536)
    local res = assert(http.request{ url = "http://127.0.0.1:" .. port .. "/a/b?x=1" })
    assert.equal(200, res.status)
    assert.equal("/a/b", cjson.decode(res.body).path)
    assert.equal("127.0.0.1", cjson.decode(res.body).peer)
    srv:close()
  end))

  it("the request table: fields, methods, and an empty query table without a query string", run.task(function()
    local seen = {}
    local srv = assert(server.listen{ port = 0, handler = function(req)
      seen[#seen + 1] = {
        query_type = type(req.query), same = req.query == req.query, query_string = req.query_string,
        handle = req.handle ~= nil, respond = type(req.respond), gone = req:gone(), x = req.query.x,
      }
      req.query.added = "yes" -- the table is the request's own
      return 200, nil, req.query.added
    end })
    local url = "http://127.0.0.1:" .. srv:port()
    assert.equal("yes", assert(http.request{ url = url .. "/plain" }).body)
    assert.equal("yes", assert(http.request{ url = url .. "/q?x=1" }).body)
    assert.equal("yes", assert(http.request{ url = url .. "/plain" }).body)
    assert.same({ query_type = "table", same = true, handle = true, respond = "function", gone = false },
                seen[1])
    assert.same({ query_type = "table", same = true, query_string = "x=1", handle = true,
                  respond = "function", gone = false, x = "1" }, seen[2])
    assert.same(seen[1], seen[3])
    srv:close()
  end))

  it("a taken port gives nil, message", run.task(function()
    local a = assert(server.listen{ port = 0, handler = echo_handler })
    local b, err = server.listen{ port = a:port(), handler = echo_handler }
    assert.is_nil(b)
    assert.matches("cannot listen", err)
    a:close()
  end))

  it("checks its options", function()
    assert.has_error(function() server.listen{} end)
    assert.has_error(function() server.listen{ handler = echo_handler, port = 70000 } end)
    assert.has_error(function() server.listen{ handler = echo_handler, max_body = 0 } end)
  end)

  it("round trip: method, body, headers, status and response headers", run.task(function()
    local srv = assert(server.listen{ port = 0, handler = function(req)
      return 201, { ["X-Reply"] = "yes", ["Set-Cookie"] = { "a=1", "b=2" } },
        req.method .. ":" .. req.body .. ":" .. (req.headers["content-type"] or "-")
    end })
    local body = string.rep("x\0y", 30000)
    local res = assert(http.request{ method = "PATCH", url = "http://127.0.0.1:" .. srv:port() .. "/p",
                                     body = body, headers = { ["Content-Type"] = "text/odd" } })
    assert.equal(201, res.status)
    assert.equal("yes", res.headers["x-reply"])
    assert.equal("a=1, b=2", res.headers["set-cookie"])
    assert.equal("PATCH:" .. body .. ":text/odd", res.body)
    srv:close()
  end))

  it("a handler that yields (sleeps) before answering, and one answering later by respond()", run.task(function()
    local srv = assert(server.listen{ port = 0, handler = function(req)
      if req.path == "/later" then
        loop.timer(0.05, function() req:respond(202, nil, "later") end)
        return
      end
      loop.sleep(0.05)
      return 200, nil, "slept"
    end })
    local base = "http://127.0.0.1:" .. srv:port()
    assert.equal("slept", assert(http.request{ url = base .. "/sleep" }).body)
    local res = assert(http.request{ url = base .. "/later" })
    assert.equal(202, res.status)
    assert.equal("later", res.body)
    srv:close()
  end))

  it("a handler that raises: 500, the error reported, and the server keeps serving", run.task(function()
    local srv = assert(server.listen{ port = 0, handler = function(req)
      if req.path == "/boom" then error("handler boom") end
      if req.path == "/bad-header" then return 200, { ["X-Bad"] = "a\r\nb" }, "x" end
      return 200, nil, "fine"
    end })
    local base = "http://127.0.0.1:" .. srv:port()
    local res = assert(http.request{ url = base .. "/boom" })
    assert.equal(500, res.status)
    assert.equal(1, #run.reported)
    assert.matches("handler boom", run.reported[1])
    res = assert(http.request{ url = base .. "/bad-header" })
    assert.equal(500, res.status)
    assert.equal(2, #run.reported)
    assert.matches("invalid character", run.reported[2])
    assert.equal("fine", assert(http.request{ url = base .. "/ok" }).body)
    srv:close()
  end))

  it("a handler that never answers: 500 once its request is collected", run.task(function()
    local srv = assert(server.listen{ port = 0, handler = function() end })
    local url = "http://127.0.0.1:" .. srv:port() .. "/"
    local t = loop.spawn(function() return http.request{ url = url, timeout = 30 } end)
    assert(run.wait_for(function() return srv:pending() == 1 end, 10))
    for _ = 1, 3 do collectgarbage() collectgarbage() end
    local res = assert(t:wait())
    assert.equal(500, res.status)
    assert.equal(0, srv:pending())
    srv:close()
  end))

  it("the health path is answered without Lua", run.task(function()
    local called = false
    local srv = assert(server.listen{ port = 0, health = "/healthz", handler = function()
      called = true
      return 200
    end })
    local res = assert(http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/healthz" })
    assert.equal(200, res.status)
    assert.equal("ok", cjson.decode(res.body).status)
    assert.equal("application/json", res.headers["content-type"])
    assert.is_false(called)
    srv:close()
  end))

  it("1000+ concurrent requests from tasks while it serves", run.task(function()
    local N = 1200
    local seen = 0
    local srv = assert(server.listen{ port = 0, handler = function(req)
      seen = seen + 1
      if tonumber(req.query.i) % 2 == 0 then loop.sleep(0.01) end
      return 200, nil, "n=" .. req.query.i
    end })
    local s = http.session()
    local base = "http://127.0.0.1:" .. srv:port() .. "/item?i="
    local tasks = {}
    for i = 1, N do
      tasks[i] = loop.spawn(function()
        local res, err = s:request{ url = base .. i, timeout = 120 }
        if not res then return nil, err.code .. " " .. err.message end
        return res.status, res.body
      end)
    end
    assert.is_true(s:inflight() > 0)
    loop.wait_all(tasks)
    local bad = {}
    for i = 1, N do
      local status, body = tasks[i]:wait()
      if status ~= 200 or body ~= "n=" .. i then bad[#bad + 1] = i .. ": " .. tostring(body) end
    end
    assert.same({}, bad)
    assert.equal(N, seen)
    s:close()
    srv:close()
  end, 180))

  it("close() answers pending requests with 503 and frees the port", run.task(function()
    local released = false
    local srv = assert(server.listen{ port = 0, handler = function()
      run.wait_for(function() return released end, 30)
      return 200
    end })
    local port = srv:port()
    local t = loop.spawn(function() return http.request{ url = "http://127.0.0.1:" .. port .. "/" } end)
    assert(run.wait_for(function() return srv:pending() == 1 end, 10))
    srv:close()
    srv:close() -- twice is fine
    local res = assert(t:wait())
    assert.equal(503, res.status)
    local _, err = http.request{ url = "http://127.0.0.1:" .. port .. "/" }
    assert.equal("connect", err.code)
    -- the handler task is still waiting; its late answer is refused quietly
    released = true
  end, 60))

  it("drain(): in-flight requests finish, new connections are refused", run.task(function()
    local srv = assert(server.listen{ port = 0, handler = function() loop.sleep(0.3) return 200, nil, "done" end })
    local port = srv:port()
    local t = loop.spawn(function() return http.request{ url = "http://127.0.0.1:" .. port .. "/" } end)
    assert(run.wait_for(function() return srv:pending() == 1 end, 10))
    assert.equal(1, srv:drain())
    local _, err = http.request{ url = "http://127.0.0.1:" .. port .. "/" }
    assert.equal("connect", err.code)
    local res = assert(t:wait())
    assert.equal(200, res.status)
    assert.equal("done", res.body)
    srv:close()
  end))
end)

if not peer.available("whatsapp.server with curl #peer") then return end

describe("whatsapp.server with curl #peer", function()
  local dir
  setup(function() dir = peer.tmpdir() end)
  teardown(function() peer.rmdir(dir) end)

  local n = 0
  -- Start curl in the background with `args`; returns the job.
  local function curl(args)
    n = n + 1
    return peer.spawn(dir, peer.curl(args), "curl" .. n)
  end

  local function listen(opts)
    local srv = assert(server.listen(opts))
    return srv, "http://127.0.0.1:" .. srv:port()
  end

  it("query decoding and headers in any case", run.task(function()
    local srv, base = listen{ port = 0, handler = echo_handler }
    local job = curl("-H 'X-Custom-Thing: v1' " .. q(base .. "/p%20q/r?a=1&b=hello%20world&c=%26%3D&a=2&empty="))
    assert.equal(0, run.wait_job(job), job.stderr())
    local got = cjson.decode(job.stdout())
    assert.equal("GET", got.method)
    assert.equal("/p%20q/r", got.path)
    assert.same({ a = "1", b = "hello world", c = "&=", empty = "" }, got.query)
    assert.equal("a=1&b=hello%20world&c=%26%3D&a=2&empty=", got.query_string)
    assert.equal("v1", got.custom)
    assert.equal("v1", got.custom_lower)
    assert.equal("v1", got.custom_upper)
    srv:close()
  end))

  it("a POST body arrives whole", run.task(function()
    local srv, base = listen{ port = 0, handler = echo_handler }
    local body = string.rep("0123456789", 100000)
    peer.write_file(dir .. "/body", body)
    local job = curl("-H 'Expect:' --data-binary @" .. q(dir .. "/body") .. " " .. q(base .. "/post"))
    assert.equal(0, run.wait_job(job), job.stderr())
    local got = cjson.decode(job.stdout())
    assert.equal("POST", got.method)
    assert.equal(body, got.body)
    srv:close()
  end))

  it("a body over max_body gets 413 and the handler never runs", run.task(function()
    local called = false
    local srv, base = listen{ port = 0, max_body = 1000, handler = function() called = true return 200 end }
    peer.write_file(dir .. "/big", string.rep("x", 5000))
    local job = curl("-o /dev/null -w '%{http_code}' -H 'Expect:' --data-binary @" .. q(dir .. "/big")
                     .. " " .. q(base .. "/"))
    run.wait_job(job)
    assert.equal("413", job.stdout())
    -- chunked, no Content-Length
    job = curl("-o /dev/null -w '%{http_code}' -H 'Expect:' -H 'Transfer-Encoding: chunked' --data-binary @"
               .. q(dir .. "/big") .. " " .. q(base .. "/"))
    run.wait_job(job)
    assert.equal("413", job.stdout())
    assert.is_false(called)
    -- a body at the limit is fine
    peer.write_file(dir .. "/fits", string.rep("x", 1000))
    job = curl("-o /dev/null -w '%{http_code}' -H 'Expect:' --data-binary @" .. q(dir .. "/fits") .. " "
               .. q(base .. "/"))
    run.wait_job(job)
    assert.equal("200", job.stdout())
    srv:close()
  end))

  it("keep-alive: two URLs in one curl use one connection", run.task(function()
    local srv, base = listen{ port = 0, handler = function() return 200, nil, "k" end }
    local job = curl("-o /dev/null -o /dev/null -w '%{num_connects}\\n' " .. q(base .. "/one") .. " "
                     .. q(base .. "/two"))
    assert.equal(0, run.wait_job(job), job.stderr())
    assert.equal("1\n0\n", job.stdout())
    srv:close()
  end))

  it("the health endpoint", run.task(function()
    local srv, base = listen{ port = 0, health = "/health", handler = function() return 404 end }
    local job = curl("-w ' %{http_code}' " .. q(base .. "/health"))
    run.wait_job(job)
    assert.equal('{"status":"ok"}\n 200', job.stdout())
    srv:close()
  end))

  it("a handler that yields then answers, for several curl clients at once", run.task(function()
    local srv, base = listen{ port = 0, handler = function(req)
      loop.sleep(0.05)
      return 200, nil, "hello " .. req.query.n
    end }
    local jobs = {}
    for i = 1, 10 do jobs[i] = curl(q(base .. "/?n=" .. i)) end
    for i = 1, 10 do
      assert.equal(0, run.wait_job(jobs[i]), jobs[i].stderr())
      assert.equal("hello " .. i, jobs[i].stdout())
    end
    srv:close()
  end))

  it("a handler that raises gives curl 500", run.task(function()
    local srv, base = listen{ port = 0, handler = function() error("curl boom") end }
    local job = curl("-o /dev/null -w '%{http_code}' " .. q(base .. "/"))
    run.wait_job(job)
    assert.equal("500", job.stdout())
    assert.matches("curl boom", run.reported[1])
    srv:close()
  end))

  it("a process that listens does not load libcurl until its first request", function()
    local script = dir .. "/lazy.lua"
    peer.write_file(script, [[
      local function mapped(lib)
        local f = assert(io.open("/proc/self/maps"))
        local maps = f:read("*a")
        f:close()
        return maps:find(lib, 1, true) ~= nil
      end
      local loop = require "whatsapp.loop"
      local server = require "whatsapp.server"
      local http = require "whatsapp.http"
      local srv = assert(server.listen{ port = 0, handler = function() return 200, nil, "pong" end })
      io.stdout:write("listening curl=", tostring(mapped("libcurl")),
                      " module=", tostring(package.loaded["whatsapp.core.http"] ~= nil), "\n")
      local res
      loop.spawn(function()
        res = http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/" }
        srv:close()
      end)
      loop.run()
      io.stdout:write("requested curl=", tostring(mapped("libcurl")), " status=", tostring(res and res.status),
                      " body=", tostring(res and res.body), "\n")
    ]])
    local out = peer.capture(peer.lua_cmd(script) .. " 2>&1")
    assert.matches("listening curl=false module=false\n", out, 1, true)
    assert.matches("requested curl=true status=200 body=pong\n", out, 1, true)
  end)

  it("graceful stop on SIGTERM: the request in flight completes, new ones are refused, exit 0",
     run.task(function()
    local script = dir .. "/graceful.lua"
    local marks = dir .. "/graceful"
    peer.write_file(script, ([[
      local loop = require "whatsapp.loop"
      local server = require "whatsapp.server"
      local MARKS = %q
      local function mark(name)
        local f = assert(io.open(MARKS .. "." .. name, "w"))
        f:write("x")
        f:close()
      end
      local srv = assert(server.listen{ port = 0, handler = function()
        mark("arrived")
        loop.sleep(1.5)
        return 200, nil, "finished"
      end })
      loop.on_stop(function() mark("stopping") end)
      io.stdout:write(srv:port(), "\n")
      io.stdout:flush()
      local how = loop.run()
      io.stdout:write("run: ", how, "\n")
      io.stdout:flush()
      os.exit(how == "signal" and 0 or 3)
    ]]):format(marks))
    local child = peer.spawn(dir, peer.lua_cmd(script), "graceful")
    assert(run.wait_for(function() return child.stdout():match("%d+\n") or child.done() end, 30),
           "child did not start")
    local port = tonumber(child.stdout():match("^(%d+)"))
    assert(port, "child failed: " .. child.stderr())
    local base = "http://127.0.0.1:" .. port
    local inflight = curl("-w ' %{http_code}' " .. q(base .. "/slow"))
    assert(run.wait_for(function() return peer.exists(marks .. ".arrived") end, 30), "request never arrived")
    child.kill("TERM")
    assert(run.wait_for(function() return peer.exists(marks .. ".stopping") end, 30), "signal not handled")
    -- listener closed: a new connection is refused (curl exit 7)
    local refused = curl("-o /dev/null " .. q(base .. "/new"))
    assert.equal(7, run.wait_job(refused))
    -- the request in flight completes
    assert.equal(0, run.wait_job(inflight), inflight.stderr())
    assert.equal("finished 200", inflight.stdout())
    -- and the child exits 0 after run() returned "signal"
    assert.equal(0, run.wait_job(child), child.stdout() .. child.stderr())
    assert.matches("run: signal", child.stdout())
  end))
end)
