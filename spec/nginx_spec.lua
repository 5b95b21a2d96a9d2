-- whatsapp.openresty inside a real nginx (Debian's nginx + libnginx-mod-http-lua, LuaJIT).
--
-- The suite writes an nginx.conf into a fresh temporary directory, starts nginx on a free
-- loopback port (single process, daemonized, pid file and logs in that directory), talks to it
-- with the curl command, and stops it and removes the directory in teardown. nginx loads the LuaJIT
-- build of the C core (build/luajit/whatsapp/core.so, from `make LUA=luajit`) and the Lua modules
-- from the source tree; the events reach spec/nginx/testbot.lua, which writes one JSON line per
-- event to a file the spec reads back.
local cjson = require "cjson"
local helpers = require "helpers"
local webhook = require "whatsapp.webhook"

local NDK_MODULE = "/usr/lib/nginx/modules/ndk_http_module.so"
local LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
local TOKEN = "spec-verify-token"
local SECRET = helpers.SECRET
local FIXTURE = "webhooks/messages_text_basic.json"

-- Shell, file and port helpers shared with the runtime specs.
local peer = require "peer"
local exists, q, capture, sh = peer.exists, peer.q, peer.capture, peer.sh
local write_file, read_file, sleep = peer.write_file, peer.read_file, peer.sleep
local pick_port = peer.free_port

-- The configuration under test. Everything nginx writes goes under `dir`.
local function config(dir, root, port)
  return ([[
daemon on;
master_process off;
error_log %DIR%/error.log info;
pid %DIR%/nginx.pid;
load_module %NDK%;
load_module %LUA%;
env WA_APP_SECRET;
env WA_VERIFY_TOKEN;

events { worker_connections 128; }

http {
    access_log %DIR%/access.log;
    client_body_temp_path %DIR%/client_body;
    proxy_temp_path %DIR%/proxy;
    fastcgi_temp_path %DIR%/fastcgi;
    uwsgi_temp_path %DIR%/uwsgi;
    scgi_temp_path %DIR%/scgi;

    lua_package_path "%ROOT%/lua/?.lua;%ROOT%/lua/?/init.lua;%ROOT%/spec/nginx/?.lua;;";
    lua_package_cpath "%ROOT%/build/luajit/?.so;;";

    init_by_lua_block {
        require("testbot").init{ events_file = "%DIR%/events.jsonl" }
    }

    server {
        listen 127.0.0.1:%PORT%;
        client_max_body_size 3m;
        client_body_buffer_size 16k;

        location = /ready {
            return 204;
        }

        # hook max_body 2 MiB, callback after ngx.eof()
        location = /webhook {
            content_by_lua_block {
                local bot = require "testbot"
                require("whatsapp.openresty").serve(bot.hook, bot.callback("eof"))
            }
        }

        # the same hook, callback in a zero-delay timer
        location = /webhook-timer {
            content_by_lua_block {
                local bot = require "testbot"
                require("whatsapp.openresty").serve(bot.hook, bot.callback("timer"), { defer = "timer" })
            }
        }

        # hook max_body 64 KiB (the adapter learns the limit from the hook or from opts)
        location = /small {
            content_by_lua_block {
                local bot = require "testbot"
                require("whatsapp.openresty").serve(bot.small, bot.callback("small"),
                                                    { max_body = 64 * 1024 })
            }
        }

        # hook max_body 64 KiB, no early Content-Length check in the adapter: hook:parse decides
        location = /small-late {
            content_by_lua_block {
                local bot = require "testbot"
                require("whatsapp.openresty").serve(bot.small, bot.callback("small-late"),
                                                    { max_body = math.huge })
            }
        }
    }
}
]]):gsub("%%(%u+)%%", { DIR = dir, ROOT = root, PORT = tostring(port), NDK = NDK_MODULE,
                         LUA = LUA_MODULE })
end

local NGINX = peer.NGINX
local missing = (not NGINX and "nginx is not installed")
  or (not exists(LUA_MODULE) and ("the nginx Lua module is missing (" .. LUA_MODULE
                                   .. "; install libnginx-mod-http-lua)"))
  or (not exists(NDK_MODULE) and ("the NDK module is missing (" .. NDK_MODULE
                                  .. "; install libnginx-mod-http-ndk)"))

if missing then
  -- CI installs nginx through `make deps`: there a missing piece is a failure.
  if os.getenv("CI") == "true" then error("nginx spec cannot run: " .. missing) end
  describe("whatsapp.openresty in nginx #nginx", function()
    pending("skipped: " .. missing)
  end)
  return
end

describe("whatsapp.openresty in nginx #nginx", function()
  local root = capture("pwd"):gsub("%s+$", "")
  local dir, port, base
  local nreq = 0

  local function log_tail()
    local log = read_file(dir .. "/error.log") or ""
    return "\n--- nginx error.log (tail) ---\n" .. log:sub(-3000)
  end

  local function start()
    for _ = 1, 5 do
      port = pick_port()
      write_file(dir .. "/nginx.conf", config(dir, root, port))
      local cmd = ("WA_APP_SECRET=%s WA_VERIFY_TOKEN=%s %s -p %s -c %s -e %s 2>%s"):format(
        q(SECRET), q(TOKEN), q(NGINX), q(dir .. "/"), q(dir .. "/nginx.conf"),
        q(dir .. "/error.log"), q(dir .. "/start.log"))
      if sh(cmd) then return end
      local why = (read_file(dir .. "/start.log") or "") .. (read_file(dir .. "/error.log") or "")
      if not why:find("Address already in use", 1, true) then
        error("nginx did not start:\n" .. why)
      end
    end
    error("nginx did not start: no free port after 5 tries")
  end

  local function pid()
    local p = read_file(dir .. "/nginx.pid")
    return p and tonumber(p:match("%d+"))
  end

  local function alive(p)
    return sh("kill -0 " .. p .. " 2>/dev/null")
  end

  local function stop()
    local p = pid()
    if not p then return end
    sh("kill -TERM " .. p .. " 2>/dev/null")
    for _ = 1, 100 do
      if not alive(p) then return end
      sleep(0.05)
    end
    sh("kill -KILL " .. p .. " 2>/dev/null")
  end

  --- One HTTP request with curl. `r`: method, path, body (string), headers (list of
  -- "Name: value"), chunked. Returns status, body, response headers (lower-case names).
  local function request(r)
    nreq = nreq + 1
    local out, hdr = dir .. "/resp-" .. nreq, dir .. "/resp-" .. nreq .. ".h"
    local args = { "curl", "-sS", "--max-time", "20", "-o", q(out), "-D", q(hdr),
                   "-w", q("%{http_code}"), "-H", q("Expect:") }
    if r.method then args[#args + 1] = "-X " .. q(r.method) end
    for _, h in ipairs(r.headers or {}) do args[#args + 1] = "-H " .. q(h) end
    if r.body then
      local file = dir .. "/req-" .. nreq
      write_file(file, r.body)
      args[#args + 1] = "--data-binary " .. q("@" .. file)
      args[#args + 1] = "-H " .. q("Content-Type: application/json")
      if r.chunked then args[#args + 1] = "-H " .. q("Transfer-Encoding: chunked") end
    end
    args[#args + 1] = q(base .. r.path)
    local code = capture(table.concat(args, " ") .. " 2>" .. q(out .. ".err"))
    local headers = {}
    for line in (read_file(hdr) or ""):gmatch("[^\r\n]+") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    end
    return tonumber(code:match("(%d%d%d)$")), read_file(out) or "", headers
  end

  local function post(path, body, headers, extra)
    local r = { path = path, body = body, headers = headers }
    for k, v in pairs(extra or {}) do r[k] = v end
    return request(r)
  end

  local function sig_header(body, secret)
    return "X-Hub-Signature-256: " .. webhook.sign(body, secret or SECRET)
  end

  -- The recorded events with this tag whose id matches `pattern` (any id when nil); waits up to
  -- `timeout` seconds (default 10) until at least `n` are there. A line still being written is
  -- skipped.
  local function wait_events(tag, n, pattern, timeout)
    local found
    for _ = 1, math.max(1, math.floor((timeout or 10) / 0.05)) do
      found = {}
      for line in (read_file(dir .. "/events.jsonl") or ""):gmatch("[^\n]+") do
        local ok, ev = pcall(cjson.decode, line)
        if ok and ev.tag == tag and (pattern == nil or (type(ev.id) == "string" and ev.id:find(pattern))) then
          found[#found + 1] = ev
        end
      end
      if #found >= n then return found end
      sleep(0.05)
    end
    return found
  end

  -- A messages payload with `n` text messages of about `size` bytes each, ids "wamid.spec.<tag>.<i>".
  local function batch(tag, n, size)
    local messages = {}
    for i = 1, n do
      messages[i] = {
        from = "15550002222", id = ("wamid.spec.%s.%d"):format(tag, i),
        timestamp = tostring(1749416000 + i), type = "text",
        text = { body = ("%05d "):format(i) .. ("x"):rep(size) },
      }
    end
    return cjson.encode{
      object = "whatsapp_business_account",
      entry = { {
        id = "100000000000002",
        changes = { {
          field = "messages",
          value = {
            messaging_product = "whatsapp",
            metadata = { display_phone_number = "15550001111", phone_number_id = "100000000000001" },
            contacts = { { profile = { name = "Test User" }, wa_id = "15550002222" } },
            messages = messages,
          },
        } },
      } },
    }
  end

  -- No response body may carry the secret or the verify token.
  local function assert_no_secrets(body)
    assert.is_nil(body:find(SECRET, 1, true), "response echoes the app secret")
    assert.is_nil(body:find(TOKEN, 1, true), "response echoes the verify token")
  end

  setup(function()
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
    assert(exists(root .. "/build/luajit/whatsapp/core.so"),
      "build/luajit/whatsapp/core.so is missing: run `make LUA=luajit` first")
    dir = capture("mktemp -d 2>/dev/null"):gsub("%s+$", "")
    assert(dir ~= "" and dir:sub(1, 1) == "/", "mktemp -d failed")
    start()
    base = "http://127.0.0.1:" .. port
    for _ = 1, 100 do
      if request{ path = "/ready" } == 204 then return end
      sleep(0.05)
    end
    error("nginx is not answering on port " .. port .. log_tail())
  end)

  teardown(function()
    if dir then
      stop()
      sh("rm -rf " .. q(dir))
    end
  end)

  describe("GET verification handshake", function()
    it("answers the challenge verbatim as text/plain for the right token", function()
      local status, body, headers = request{
        path = "/webhook?hub.mode=subscribe&hub.verify_token=" .. TOKEN .. "&hub.challenge=1158201444" }
      assert.are.equal(200, status, log_tail())
      assert.are.equal("1158201444", body)
      assert.matches("^text/plain", headers["content-type"])
    end)

    it("keeps a non-numeric challenge byte for byte", function()
      local status, body = request{
        path = "/webhook?hub.mode=subscribe&hub.verify_token=" .. TOKEN .. "&hub.challenge=abc-XYZ_1.2" }
      assert.are.equal(200, status, log_tail())
      assert.are.equal("abc-XYZ_1.2", body)
    end)

    it("refuses a wrong token with 403", function()
      local status, body = request{
        path = "/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444" }
      assert.are.equal(403, status, log_tail())
      assert.is_nil(body:find("1158201444", 1, true))
      assert_no_secrets(body)
    end)

    it("answers 400 when the challenge is missing", function()
      local status, body = request{
        path = "/webhook?hub.mode=subscribe&hub.verify_token=" .. TOKEN }
      assert.are.equal(400, status, log_tail())
      assert_no_secrets(body)
    end)
  end)

  describe("POST delivery", function()
    it("accepts a signed fixture and hands its events to the callback after answering", function()
      local body = helpers.fixture_raw(FIXTURE)
      local status, rbody = post("/webhook", body, { sig_header(body) })
      assert.are.equal(200, status, log_tail())
      assert_no_secrets(rbody)
      local got = wait_events("eof", 1, "^wamid%.HBgL")
      assert.are.equal(1, #got, "no event reached on_events" .. log_tail())
      local ev = got[1]
      assert.are.equal("message", ev.kind)
      assert.are.equal("text", ev.type)
      assert.are.equal("wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", ev.id)
      assert.are.equal("15550002222", ev.from)
      assert.are.equal("Does it come in another color?", ev.text)
      assert.are.equal(1749416383, ev.timestamp)
      assert.are.equal("100000000000001", ev.phone_number_id)
      assert.are.equal("15550001111", ev.display_phone_number)
      assert.are.equal("100000000000002", ev.waba_id)
      assert.are.equal("Test User", ev.contact_name)
      assert.are.equal("15550002222", ev.contact_wa_id)
      assert.is_false(ev.in_timer)
    end)

    it("runs the callback in a timer with defer = \"timer\"", function()
      local body = helpers.fixture_raw(FIXTURE)
      local status = post("/webhook-timer", body, { sig_header(body) })
      assert.are.equal(200, status, log_tail())
      local got = wait_events("timer", 1)
      assert.are.equal(1, #got, "no event reached on_events" .. log_tail())
      assert.are.equal("Does it come in another color?", got[1].text)
      assert.is_true(got[1].in_timer)
    end)

    it("refuses an unsigned body with 401", function()
      local body = batch("unsigned", 1, 10)
      local status, rbody = post("/webhook", body, {})
      assert.are.equal(401, status, log_tail())
      assert_no_secrets(rbody)
      assert.are.equal(0, #wait_events("eof", 1, "^wamid%.spec%.unsigned%.", 0.2))
    end)

    it("refuses a body signed with another secret with 401", function()
      local body = batch("wrongsecret", 1, 10)
      local status, rbody = post("/webhook", body, { sig_header(body, "not-the-secret") })
      assert.are.equal(401, status, log_tail())
      assert_no_secrets(rbody)
    end)

    it("refuses a tampered body with 401", function()
      local body = batch("tampered", 1, 10)
      local status = post("/webhook", body:gsub("xxxxxxxxxx", "yyyyyyyyyy"), { sig_header(body) })
      assert.are.equal(401, status, log_tail())
    end)

    it("refuses a repeated signature header with 401", function()
      local body = batch("repeated", 1, 10)
      local status = post("/webhook", body, { sig_header(body), sig_header(body) })
      assert.are.equal(401, status, log_tail())
    end)

    it("refuses signed malformed JSON with 400", function()
      local body = '{"object":"whatsapp_business_account","entry":[{"id":"1",'
      local status, rbody = post("/webhook", body, { sig_header(body) })
      assert.are.equal(400, status, log_tail())
      assert_no_secrets(rbody)
    end)

    it("reads a ~1 MB body that nginx spooled to a temporary file", function()
      local body = batch("big", 1000, 1000)
      assert.is_true(#body > 1000 * 1000 and #body < 2 * 1024 * 1024)
      local status = post("/webhook", body, { sig_header(body) })
      assert.are.equal(200, status, log_tail())
      local big = wait_events("eof", 1000, "^wamid%.spec%.big%.")
      assert.are.equal(1000, #big, log_tail())
      assert.are.equal("wamid.spec.big.1", big[1].id)
      assert.are.equal("wamid.spec.big.1000", big[1000].id)
      assert.are.equal("01000 " .. ("x"):rep(1000), big[1000].text)
      assert.are.equal(1749417000, big[1000].timestamp)
      -- nginx says so when it spools a body
      assert.truthy((read_file(dir .. "/error.log") or ""):find("buffered to a temporary file", 1, true))
    end)

    it("reads a chunked body (no Content-Length)", function()
      local body = batch("chunked", 3, 100)
      local status = post("/webhook", body, { sig_header(body) }, { chunked = true })
      assert.are.equal(200, status, log_tail())
      local got = wait_events("eof", 3, "^wamid%.spec%.chunked%.")
      assert.are.equal(3, #got, log_tail())
      assert.are.equal("wamid.spec.chunked.3", got[3].id)
    end)

    it("answers 413 early when Content-Length exceeds the hook's max_body", function()
      local body = batch("small", 100, 1000)
      assert.is_true(#body > 64 * 1024)
      local status, rbody = post("/small", body, { sig_header(body) })
      assert.are.equal(413, status, log_tail())
      assert_no_secrets(rbody)
      -- the location still accepts a delivery within the limit
      local ok = post("/small", helpers.fixture_raw(FIXTURE), { sig_header(helpers.fixture_raw(FIXTURE)) })
      assert.are.equal(200, ok, log_tail())
      assert.are.equal(1, #wait_events("small", 1))
    end)

    it("answers 413 from hook:parse when the body exceeds max_body", function()
      local body = batch("smalllate", 100, 1000)
      local status = post("/small-late", body, { sig_header(body) })
      assert.are.equal(413, status, log_tail())
      local chunked = post("/small", body, { sig_header(body) }, { chunked = true })
      assert.are.equal(413, chunked, log_tail())
    end)

    it("answers 413 (nginx itself) above client_max_body_size", function()
      local body = batch("huge", 4000, 1000)
      assert.is_true(#body > 3 * 1024 * 1024)
      local status = post("/webhook", body, { sig_header(body) })
      assert.are.equal(413, status, log_tail())
    end)

    it("logs an error raised by on_events and still answers 200", function()
      local body = helpers.fixture_raw(FIXTURE):gsub("Does it come in another color%?", "raise please")
      local status = post("/webhook", body, { sig_header(body) })
      assert.are.equal(200, status, log_tail())
      local log
      for _ = 1, 100 do
        log = read_file(dir .. "/error.log") or ""
        if log:find("boom from on_events", 1, true) then break end
        sleep(0.05)
      end
      assert.truthy(log:find("on_events failed", 1, true), log_tail())
      assert.truthy(log:find("boom from on_events", 1, true), log_tail())
      -- the worker is still fine
      local again = helpers.fixture_raw(FIXTURE)
      assert.are.equal(200, (post("/webhook", again, { sig_header(again) })))
    end)
  end)

  describe("other methods", function()
    it("answers 405 with an Allow header", function()
      local status, _, headers = request{ method = "PUT", path = "/webhook", body = "{}" }
      assert.are.equal(405, status, log_tail())
      assert.are.equal("GET, POST", headers["allow"])
      status = request{ method = "DELETE", path = "/webhook" }
      assert.are.equal(405, status)
    end)
  end)

  it("never writes the app secret to the error log", function()
    local log = read_file(dir .. "/error.log") or ""
    assert.is_nil(log:find(SECRET, 1, true))
  end)
end)
