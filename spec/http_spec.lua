-- whatsapp.http against independent peers on loopback: Debian's nginx (plain HTTP/1.1, TLS +
-- HTTP/2 with a throwaway certificate, a proxy), a listener that never accepts (connect timeout),
-- and ports nobody listens on. Every failure must be nil, err with a stable code and a message
-- that never carries the request's Authorization header.
local cjson = require "cjson"
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local errors = require "whatsapp.errors"
local peer = require "peer"
local run = require "peer.run"

local SECRET = "Bearer EAAG-secret-token-must-never-leak-0123456789"
local AUTH = { Authorization = SECRET }

-- A failed request: nil, err with this code, an error object, and no secret anywhere.
local function assert_fails(code, res, err)
  assert.is_nil(res)
  assert.is_true(errors.is(err), "an error object expected, got " .. tostring(err))
  assert.equal(code, err.code, "code " .. tostring(err.code) .. ": " .. tostring(err.message))
  assert.equal("transport", err.category)
  assert.is_string(err.message)
  assert.is_nil(tostring(err):find("EAAG-secret", 1, true), "the Authorization header leaked")
  assert.is_nil(err.message:find("EAAG-secret", 1, true), "the Authorization header leaked")
  return err
end

local function with_auth(req)
  req.headers = req.headers or {}
  for k, v in pairs(AUTH) do req.headers[k] = v end
  return req
end

describe("whatsapp.http without peers", function()
  it("connection refused is 'connect'", run.task(function()
    local port = peer.free_port()
    local err = assert_fails("connect", http.request(with_auth{ url = "http://127.0.0.1:" .. port .. "/" }))
    assert.is_true(err.retry)
  end))

  it("connection refused from a plain script (blocking) is 'connect' too", function()
    local port = peer.free_port()
    assert_fails("connect", http.request(with_auth{ url = "http://127.0.0.1:" .. port .. "/" }))
  end)

  it("a bad URL is 'url'", run.task(function()
    assert_fails("url", http.request(with_auth{ url = "ftp://127.0.0.1/x" }))
    assert_fails("url", http.request(with_auth{ url = "http://[::1/x" }))
  end))

  it("an unresolvable host is 'resolve' (when resolution fails fast here)", run.task(function()
    local res, err = http.request(with_auth{ url = "http://nonexistent.invalid/x", timeout = 5 })
    if err and err.code == "timeout" then
      pending("name resolution does not fail fast on this machine") -- luacheck: ignore
      return
    end
    assert_fails("resolve", res, err)
  end))

  it("malformed requests raise (programmer errors)", function()
    assert.has_error(function() http.request("x") end)
    assert.has_error(function() http.request{} end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", headers = { ["X-A"] = "a\r\nX-B: b" } } end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", headers = { ["X A"] = "a" } } end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", body = {} } end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", method = "get" } end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", timeout = -1 } end)
    assert.has_error(function()
      http.request{ url = "http://127.0.0.1/", body = "x", multipart = { { name = "a", data = "b" } } }
    end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", multipart = {} } end)
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", multipart = { { data = "b" } } } end)
  end)

  it("a download to a path that cannot be created is 'io'", run.task(function()
    local port = peer.free_port()
    assert_fails("io", http.request{ url = "http://127.0.0.1:" .. port .. "/", download = "/nonexistent-dir/x/y" })
  end))

  it("set_backend replaces the transport of http.request", run.task(function()
    local seen
    http.set_backend{ request = function(req) seen = req.url return { status = 299, body = "fake" } end }
    local res = http.request{ url = "http://example.invalid/" }
    http.set_backend(nil)
    assert.equal(299, res.status)
    assert.equal("http://example.invalid/", seen)
    assert.has_error(function() http.set_backend{} end)
  end))

  it("a listener that never accepts: connect timeout is 'timeout'", run.task(function()
    -- A child process listens with a backlog of 1 and never turns its loop: once a few
    -- connections fill the queue, the kernel drops further SYNs and connect() cannot finish.
    local dir = peer.tmpdir()
    local script = dir .. "/blocked.lua"
    local stop = dir .. "/stop"
    peer.write_file(script, ([[
      local server = require "whatsapp.server"
      local srv = assert(server.listen{ port = 0, backlog = 1, handler = function() return 200 end })
      io.stdout:write(srv:port(), "\n")
      io.stdout:flush()
      for _ = 1, 600 do -- until told to stop (at most a minute)
        local f = io.open(%q)
        if f then f:close() break end
        os.execute("unset LD_PRELOAD; sleep 0.1")
      end
    ]]):format(stop))
    local job = peer.spawn(dir, peer.lua_cmd(script), "blocked")
    assert(run.wait_for(function() return job.stdout():match("%d+\n") ~= nil or job.done() end, 30),
           "child did not start")
    local port = tonumber(job.stdout():match("%d+"))
    assert(port, "child failed: " .. job.stderr())
    local s = http.session()
    local fillers = {}
    for i = 1, 4 do
      fillers[i] = loop.spawn(function()
        return s:request{ url = "http://127.0.0.1:" .. port .. "/", timeout = 3 }
      end)
    end
    loop.sleep(0.3)
    local res, err = s:request(with_auth{ url = "http://127.0.0.1:" .. port .. "/", connect_timeout = 0.5,
                                          timeout = 20 })
    assert_fails("timeout", res, err)
    assert.is_true(err.retry)
    for _, t in ipairs(fillers) do
      local r, e = t:wait()
      assert.is_nil(r)
      assert.equal("timeout", e.code)
    end
    s:close()
    peer.write_file(stop, "")
    assert.equal(0, run.wait_job(job), job.stderr())
    peer.rmdir(dir)
  end))
end)

if not peer.available("whatsapp.http against nginx #peer") then return end

describe("whatsapp.http against nginx #peer", function()
  local p
  setup(function() p = peer.start() end)
  teardown(function() if p then p:stop() end end)

  describe("answers", function()
    it("fixed JSON: status, headers in any case, body, size, version", run.task(function()
      local res, err = http.request{ url = p:url("/json"), headers = AUTH }
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("application/json", res.headers["Content-Type"])
      assert.equal("application/json", res.headers["CONTENT-TYPE"])
      assert.equal("23", res.headers["Content-Length"])
      assert.equal('{"ok":true,"answer":42}', res.body)
      assert.equal(23, res.size)
      assert.equal("1.1", res.http_version)
      assert.equal(42, cjson.decode(res.body).answer)
    end))

    it("works from a plain script too (blocks)", function()
      local res = assert(http.request{ url = p:url("/json") })
      assert.equal(200, res.status)
    end)

    it("500 and 429 are answers, not transport errors; Retry-After is there", run.task(function()
      local res = assert(http.request{ url = p:url("/status/500") })
      assert.equal(500, res.status)
      assert.equal("boom", cjson.decode(res.body).error.message)
      res = assert(http.request{ url = p:url("/status/429") })
      assert.equal(429, res.status)
      assert.equal("7", res.headers["retry-after"])
      assert.equal("7", res.headers["Retry-After"])
    end))

    it("a slow answer arrives", run.task(function()
      local res = assert(http.request{ url = p:url("/slow?s=0.3"), timeout = 30 })
      assert.equal(200, res.status)
      assert.equal("slow\n", res.body)
    end))

    it("a large body with Content-Length", run.task(function()
      local n = 5 * 1024 * 1024 + 3
      local res = assert(http.request{ url = p:url("/big?n=" .. n) })
      assert.equal(200, res.status)
      assert.equal(n, #res.body)
      assert.equal(n, res.size)
      assert.equal(string.rep("0123456789", 5):sub(1, 50), res.body:sub(1, 50))
      assert.equal(string.rep("0123456789", math.ceil(n / 10)):sub(n - 19, n), res.body:sub(-20))
    end))

    it("a chunked body in pieces", run.task(function()
      local n = 1000003
      local res = assert(http.request{ url = p:url("/chunked?n=" .. n .. "&k=37") })
      assert.equal(200, res.status)
      assert.is_nil(res.headers["content-length"])
      assert.equal("chunked", res.headers["transfer-encoding"])
      assert.equal(string.rep("0123456789", math.ceil(n / 10)):sub(1, n), res.body)
    end))

    it("the request's method, headers and body reach the server", run.task(function()
      local body = string.rep("b\0dy", 1000)
      local res = assert(http.request{
        method = "PUT", url = p:url("/echo?x=1"), body = body,
        headers = { ["Content-Type"] = "application/octet-stream", ["X-Empty"] = "",
                    "X-Line: from a line", ["X-Number"] = 5 },
      })
      local echo = cjson.decode(res.body)
      assert.equal("PUT", echo.method)
      assert.equal("/echo?x=1", echo.uri)
      assert.equal(body, echo.body)
      assert.equal("application/octet-stream", echo.headers["content-type"])
      assert.equal("from a line", echo.headers["x-line"])
      assert.equal("5", echo.headers["x-number"])
      assert.equal("", echo.headers["x-empty"])
      assert.is_nil(echo.headers["expect"])
      assert.matches("^lua%-whatsapp/", echo.headers["user-agent"])
      -- POST is the default with a body, GET without
      assert.equal("POST", cjson.decode(assert(http.request{ url = p:url("/echo"), body = "x" }).body).method)
      assert.equal("GET", cjson.decode(assert(http.request{ url = p:url("/echo") }).body).method)
      assert.equal("DELETE", cjson.decode(assert(http.request{ url = p:url("/echo"), method = "DELETE" }).body)
        .method)
      local head = assert(http.request{ url = p:url("/json"), method = "HEAD" })
      assert.equal(200, head.status)
      assert.equal("", head.body)
    end))
  end)

  describe("failures", function()
    it("a connection closed without an answer is 'connection'", run.task(function()
      local err = assert_fails("connection", http.request(with_auth{ url = p:url("/reset") }))
      assert.is_true(err.retry)
    end))

    it("a body cut short is 'connection'", run.task(function()
      assert_fails("connection", http.request(with_auth{ url = p:url("/cut") }))
    end))

    it("the total timeout is 'timeout'", run.task(function()
      local err = assert_fails("timeout", http.request(with_auth{ url = p:url("/slow?s=10"), timeout = 0.3 }))
      assert.is_true(err.retry)
    end))

    it("a session's default timeout applies", run.task(function()
      local s = http.session{ timeout = 0.3 }
      assert_fails("timeout", s:request(with_auth{ url = p:url("/slow?s=10") }))
      s:close()
    end))

    it("max_size: too_large with Content-Length", run.task(function()
      local err = assert_fails("too_large", http.request(with_auth{ url = p:url("/big?n=100000"), max_size = 1000 }))
      assert.is_false(err.retry)
      assert.matches("1000", err.message)
      -- exactly the limit is fine
      local res = assert(http.request{ url = p:url("/big?n=1000"), max_size = 1000 })
      assert.equal(1000, #res.body)
    end))

    it("max_size: too_large with a chunked body", run.task(function()
      assert_fails("too_large", http.request(with_auth{ url = p:url("/chunked?n=100000&k=10"), max_size = 1000 }))
    end))
  end)

  describe("connections", function()
    it("keep-alive: a session reuses one connection for sequential requests", run.task(function()
      local s = http.session()
      local conn
      for i = 1, 5 do
        local res = assert(s:request{ url = p:url("/conn") })
        assert.equal(200, res.status)
        conn = conn or res.headers["x-conn"]
        assert.equal(conn, res.headers["x-conn"])
        assert.equal(tostring(i), res.headers["x-conn-requests"])
      end
      s:close()
    end))

    it("a new session opens a new connection", run.task(function()
      local a, b = http.session(), http.session()
      local ra = assert(a:request{ url = p:url("/conn") })
      local rb = assert(b:request{ url = p:url("/conn") })
      assert.are_not.equal(ra.headers["x-conn"], rb.headers["x-conn"])
      a:close()
      b:close()
    end))

    it("many requests in flight at once from tasks", run.task(function()
      local s = http.session()
      local tasks = {}
      for i = 1, 200 do
        tasks[i] = loop.spawn(function()
          local path = (i % 3 == 0) and "/slow?s=0.2" or (i % 3 == 1) and "/json" or ("/big?n=" .. i * 100)
          local res, err = s:request{ url = p:url(path), timeout = 60 }
          assert(res, err and tostring(err))
          assert(res.status == 200)
          return res.size
        end)
      end
      assert.is_true(s:inflight() > 0)
      loop.wait_all(tasks)
      for i = 1, 200 do
        local size = tasks[i]:wait()
        assert.is_number(size, tostring(tasks[i].err))
        if i % 3 == 2 then assert.equal(i * 100, size) end
      end
      assert.equal(0, s:inflight())
      s:close()
    end))

    it("concurrent slow requests to one host run in parallel (HTTP/1.1)", run.task(function()
      -- Each waits 1 s at the server. Held until the first answered (as PIPEWAIT did on plain
      -- http), they would all reuse its kept-alive connection; in parallel each needs its own.
      local s = http.session()
      local tasks = {}
      for i = 1, 5 do
        tasks[i] = loop.spawn(function() return assert(s:request{ url = p:url("/slow?s=1"), timeout = 60 }) end)
      end
      loop.wait_all(tasks)
      local conns, n = {}, 0
      for i = 1, 5 do
        local res = tasks[i]:wait()
        assert.equal(200, res and res.status)
        assert.equal("1", res.headers["x-conn-requests"])
        local c = res.headers["x-conn"]
        if not conns[c] then n = n + 1 end
        conns[c] = true
      end
      assert.equal(5, n)
      s:close()
    end))
  end)

  describe("cancelling", function()
    it("cancel gives 'aborted' to the waiting task", run.task(function()
      local s = http.session()
      local t = loop.spawn(function() return s:request(with_auth{ url = p:url("/slow?s=10") }) end)
      loop.sleep(0.1)
      assert.equal(1, s:inflight())
      assert.is_true(s:cancel(t))
      assert.is_false(s:cancel(t)) -- nothing left to cancel
      local res, err = t:wait()
      local e = assert_fails("aborted", res, err)
      assert.is_false(e.retry)
      assert.equal(0, s:inflight())
      -- the session still works
      assert.equal(200, assert(s:request{ url = p:url("/json") }).status)
      s:close()
    end))

    it("http.cancel cancels in the shared session", run.task(function()
      local t = loop.spawn(function() return http.request(with_auth{ url = p:url("/slow?s=10") }) end)
      loop.sleep(0.1)
      assert.is_true(http.cancel(t))
      assert_fails("aborted", t:wait())
    end))

    it("session:close() with transfers in flight: each gets 'aborted'", run.task(function()
      local s = http.session()
      local tasks = {}
      for i = 1, 10 do
        tasks[i] = loop.spawn(function() return s:request(with_auth{ url = p:url("/slow?s=10") }) end)
      end
      loop.sleep(0.1)
      assert.equal(10, s:inflight())
      s:close()
      s:close() -- twice is fine
      for i = 1, 10 do
        local err = assert_fails("aborted", tasks[i]:wait())
        assert.matches("closed", err.message)
      end
      assert.has_error(function() s:request{ url = p:url("/json") } end)
      assert.is_false(s:cancel(tasks[1]))
    end))

    it("session:close() from a plain script's blocking request is not needed: it returns", function()
      local s = http.session()
      local res = assert(s:request{ url = p:url("/json") })
      assert.equal(200, res.status)
      s:close()
    end)
  end)

  describe("uploads and downloads", function()
    it("multipart from strings and from files", run.task(function()
      local dir = peer.tmpdir()
      local file = dir .. "/photo.jpg"
      local bytes = {}
      for i = 0, 4095 do bytes[#bytes + 1] = string.char(i % 256) end
      local content = table.concat(bytes)
      peer.write_file(file, content)
      local res = assert(http.request(with_auth{
        url = p:url("/echo"),
        multipart = {
          { name = "messaging_product", data = "whatsapp" },
          { name = "note", data = "two\r\nlines", type = "text/plain" },
          { name = "file", file = file, filename = "photo.jpg", type = "image/jpeg" },
        },
      }))
      local echo = cjson.decode(res.body)
      assert.equal("POST", echo.method)
      local boundary = echo.headers["content-type"]:match("^multipart/form%-data; boundary=(%S+)$")
      assert.is_string(boundary)
      local b = echo.body
      assert.truthy(b:find("--" .. boundary .. "\r\n", 1, true))
      assert.truthy(b:find('Content-Disposition: form-data; name="messaging_product"\r\n\r\nwhatsapp\r\n', 1, true))
      assert.truthy(b:find('name="note"\r\nContent-Type: text/plain\r\n\r\ntwo\r\nlines\r\n', 1, true))
      assert.truthy(b:find('name="file"; filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
                           .. content .. "\r\n", 1, true))
      assert.truthy(b:find("--" .. boundary .. "--", 1, true))
      -- a file that cannot be read fails the transfer
      local r2, e2 = http.request(with_auth{ url = p:url("/echo"),
                                            multipart = { { name = "f", file = dir .. "/missing" } } })
      assert.is_nil(r2)
      assert.is_true(errors.is(e2))
      assert.is_nil(tostring(e2):find("EAAG-secret", 1, true))
      peer.rmdir(dir)
    end))

    it("download to a file: sha256 and size checked", run.task(function()
      -- a file nginx serves statically, with content made here
      local parts, x = {}, 12345
      for i = 1, 300000 do
        x = (x * 1103515245 + 12345) % 2147483648
        parts[i] = string.char(x % 256)
      end
      local content = table.concat(parts)
      peer.write_file(p.dir .. "/www/blob.bin", content)
      local want = peer.sha256_file(p.dir .. "/www/blob.bin")
      local dir = peer.tmpdir()
      local out = dir .. "/blob.bin"
      local res = assert(http.request{ url = p:url("/static/blob.bin"), download = out })
      assert.equal(200, res.status)
      assert.equal(out, res.file)
      assert.is_nil(res.body)
      assert.equal(#content, res.size)
      assert.equal(want, res.sha256)
      assert.equal(want, peer.sha256_file(out))
      assert.equal(content, peer.read_file(out))
      -- max_size exceeded: no partial file left
      local out2 = dir .. "/too-big.bin"
      assert_fails("too_large", http.request(with_auth{ url = p:url("/static/blob.bin"), download = out2,
                                                        max_size = 1000 }))
      assert.is_false(peer.exists(out2))
      local out3 = dir .. "/chunked-too-big.bin"
      assert_fails("too_large", http.request{ url = p:url("/chunked?n=100000&k=20"), download = out3,
                                              max_size = 5000 })
      assert.is_false(peer.exists(out3))
      -- a connection cut mid-body: no partial file either
      local out4 = dir .. "/cut.bin"
      assert_fails("connection", http.request{ url = p:url("/cut"), download = out4 })
      assert.is_false(peer.exists(out4))
      -- cancelled mid-way
      local out5 = dir .. "/cancelled.bin"
      local s = http.session()
      local t = loop.spawn(function() return s:request{ url = p:url("/slow?s=10"), download = out5 } end)
      loop.sleep(0.1)
      assert.is_true(s:cancel(t))
      assert_fails("aborted", t:wait())
      assert.is_false(peer.exists(out5))
      s:close()
      peer.rmdir(dir)
    end))
  end)

  describe("TLS and HTTP/2", function()
    it("verification is on by default: a self-signed certificate is 'tls'", run.task(function()
      local s = http.session()
      local err = assert_fails("tls", s:request(with_auth{ url = p:tls_url("/json") }))
      assert.is_false(err.retry)
      s:close()
    end))

    it("with ca_file the certificate is trusted and HTTP/2 is used", run.task(function()
      local s = http.session{ ca_file = p.cert }
      local res = assert(s:request{ url = p:tls_url("/json"), headers = AUTH })
      assert.equal(200, res.status)
      assert.equal("2", res.http_version)
      assert.equal("application/json", res.headers["Content-Type"])
      assert.equal('{"ok":true,"answer":42}', res.body)
      -- more requests, some at once, on the same multiplexed connection
      local first = assert(s:request{ url = p:tls_url("/conn") }).headers["x-conn"]
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = loop.spawn(function() return assert(s:request{ url = p:tls_url("/conn") }) end)
      end
      loop.wait_all(tasks)
      for i = 1, 20 do
        local r = tasks[i]:wait()
        assert.equal("2", r.http_version)
        assert.equal(first, r.headers["x-conn"])
      end
      -- a body over HTTP/2
      local echo = cjson.decode(assert(s:request{ url = p:tls_url("/echo"), body = "h2 body" }).body)
      assert.equal("h2 body", echo.body)
      assert.equal(2, echo.http_version)
      s:close()
    end))

    it("verify = false accepts the certificate", run.task(function()
      local s = http.session{ verify = false }
      assert.equal(200, assert(s:request{ url = p:tls_url("/json") }).status)
      s:close()
    end))
  end)

  describe("proxies from the environment", function()
    it("http_proxy is used as by curl", function()
      -- A child process with http_proxy set asks for a host that cannot resolve; the nginx
      -- peer, acting as the proxy, answers it itself (it never forwards).
      local dir = peer.tmpdir()
      local script = dir .. "/proxy.lua"
      peer.write_file(script, [[
        local http = require "whatsapp.http"
        local res, err = http.request{ url = "http://wa-proxy-test.invalid/x", timeout = 20 }
        if not res then io.stdout:write("ERR ", err.code, " ", err.message, "\n") os.exit(1) end
        io.stdout:write(res.status, " ", res.headers["x-proxy-host"] or "-", " ", res.body, "\n")
        os.exit(0)
      ]])
      local out = peer.capture(peer.lua_cmd(script, { http_proxy = p:url(""), no_proxy = "" }) .. " 2>&1")
      assert.equal("200 wa-proxy-test.invalid proxied\n", out)
      -- and no_proxy is honoured
      out = peer.capture(peer.lua_cmd(script, { http_proxy = p:url(""), no_proxy = "wa-proxy-test.invalid" })
                         .. " 2>&1")
      assert.matches("^ERR resolve", out)
      peer.rmdir(dir)
    end)
  end)
end)
