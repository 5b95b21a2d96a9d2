--- Independent peers for the runtime specs (loop, http, server): Debian's nginx on loopback
-- (plain HTTP/1.1, TLS + HTTP/2 with a throwaway self-signed certificate, and a server block
-- that plays an HTTP proxy), the curl command, and child Lua processes.
--
-- Same approach as spec/nginx_spec.lua: a fresh temporary directory holds nginx.conf, the pid
-- file, logs and temp paths; nginx runs single-process and daemonized on a free port; stop()
-- kills it by its pid and removes the directory. Nothing here uses the library under test.
--
-- Under `make asan` the spec process has libasan preloaded through the environment. The
-- commands run from here (nginx, curl, sh tools) are not ours: they run without it (their exit
-- would trip the leak checker), while child Lua processes get it back (they load the sanitized
-- core).
local peer = {}

local PRELOAD = os.getenv("LD_PRELOAD")
local NOSAN = "unset LD_PRELOAD; "

local NDK_MODULE = "/usr/lib/nginx/modules/ndk_http_module.so"
local LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

-- ---- small shell helpers ------------------------------------------------------

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end
peer.exists = exists

--- Quote one argument for /bin/sh.
function peer.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = peer.q

--- Output of a shell command (stdout).
function peer.capture(cmd)
  local p = assert(io.popen(NOSAN .. cmd))
  local out = p:read("*a")
  p:close()
  return out
end
local capture = peer.capture

--- Run a shell command; true when it exits 0.
function peer.sh(cmd)
  local ok = os.execute(NOSAN .. cmd)
  return ok == true or ok == 0
end
local sh = peer.sh

function peer.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end
local write_file = peer.write_file

function peer.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end
local read_file = peer.read_file

--- A fresh temporary directory (removed by peer.rmdir).
function peer.tmpdir()
  local d = capture("mktemp -d /tmp/wa-peer.XXXXXX"):gsub("%s+$", "")
  assert(d ~= "", "mktemp failed")
  return d
end

function peer.rmdir(d)
  if d and d:match("^/tmp/wa%-peer%.") then sh("rm -rf " .. q(d)) end
end

--- Blocking sleep of the whole process (not the loop).
function peer.sleep(seconds)
  sh("sleep " .. seconds)
end

--- sha256 of a file as hex, by the sha256sum command.
function peer.sha256_file(path)
  return (capture("sha256sum " .. q(path)):match("^(%x+)"))
end


-- ---- what is installed -----------------------------------------------------------

local function find_nginx()
  if exists("/usr/sbin/nginx") then return "/usr/sbin/nginx" end
  local path = capture("command -v nginx 2>/dev/null"):gsub("%s+$", "")
  if path ~= "" then return path end
  return nil
end
local NGINX = find_nginx()
--- Path of the nginx binary, or nil.
peer.NGINX = NGINX

--- Why the nginx peer cannot run here, or nil.
function peer.missing()
  if not NGINX then return "nginx is not installed" end
  if not exists(LUA_MODULE) then
    return "the nginx Lua module is missing (" .. LUA_MODULE .. "; install libnginx-mod-http-lua)"
  end
  if not exists(NDK_MODULE) then return "the NDK module is missing (" .. NDK_MODULE .. ")" end
  if capture("command -v curl 2>/dev/null") == "" then return "the curl command is missing" end
  if capture("command -v openssl 2>/dev/null") == "" then return "the openssl command is missing" end
  return nil
end

--- In a spec file: true when the peers can run. Otherwise registers a pending spec and
-- returns false, except under CI=true, where a missing peer is an error (make deps installs it).
function peer.available(what)
  local why = peer.missing()
  if not why then return true end
  if os.getenv("CI") == "true" then error((what or "peer spec") .. " cannot run: " .. why) end
  describe(what or "peer", function() pending("skipped: " .. why) end)
  return false
end

-- ---- ports --------------------------------------------------------------------------

-- Ports some process listens on, from /proc/net/tcp{,6} (state 0A = LISTEN).
local function listening_ports()
  local ports = {}
  for _, file in ipairs{ "/proc/net/tcp", "/proc/net/tcp6" } do
    local data = read_file(file) or ""
    for port, state in data:gmatch("%x+:(%x%x%x%x) %x+:%x+ (%x%x)") do
      if state == "0A" then ports[tonumber(port, 16)] = true end
    end
  end
  return ports
end

local seeded = false
--- A port nobody listens on now (a race with other processes is retried by the caller).
function peer.free_port()
  if not seeded then
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
    seeded = true
  end
  local busy = listening_ports()
  for _ = 1, 200 do
    local port = math.random(20000, 59999)
    if not busy[port] then return port end
  end
  error("no free port found")
end

-- ---- nginx -------------------------------------------------------------------------

-- Locations (plain server; the TLS server has a few of them too):
--   /json                fixed JSON
--   /slow?s=N            answers "slow" after N seconds (ngx.sleep), with the X-Conn headers
--   /big?n=N             N bytes of "0123456789" repeated, with Content-Length
--   /chunked?n=N&k=K     the same bytes in K flushed pieces, chunked (no Content-Length)
--   /reset               closes the connection without an answer (444)
--   /cut                 promises 100000 bytes, sends 10 and closes
--   /status/500          500 with a JSON body
--   /status/429          429 with Retry-After: 7
--   /echo                JSON: method, uri, headers, body of the request
--   /vN.N/<id>/messages  a Graph send endpoint (token "nginx-token"): to 15550009001 gets 130429
--                        twice, 15550009002 a plain 503 once, 15550009003 always 131047,
--                        15550009004 a dropped connection once, 15550009005 always 130429
--                        (with Retry-After: 0); others succeed
--   /conn                X-Conn: $connection, X-Conn-Requests: $connection_requests
--   /static/<file>       files from <dir>/www
-- and a server block for Host wa-proxy-test.invalid answering "proxied" itself (the proxy peer).
local function config(p)
  return ([[
daemon on;
master_process off;
error_log %DIR%/error.log warn;
pid %DIR%/nginx.pid;
load_module %NDK%;
load_module %LUA%;

events { worker_connections 2048; }

http {
    access_log off;
    client_body_temp_path %DIR%/client_body;
    proxy_temp_path %DIR%/proxy;
    fastcgi_temp_path %DIR%/fastcgi;
    uwsgi_temp_path %DIR%/uwsgi;
    scgi_temp_path %DIR%/scgi;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    client_max_body_size 32m;
    client_body_buffer_size 32m;
    lua_socket_log_errors off;
    lua_shared_dict graph 1m;

    server {
        listen 127.0.0.1:%PORT% default_server;
        listen 127.0.0.1:%TLSPORT% ssl http2;
        server_name localhost;
        ssl_certificate %DIR%/cert.pem;
        ssl_certificate_key %DIR%/key.pem;

        location = /json {
            default_type application/json;
            return 200 '{"ok":true,"answer":42}';
        }
        location = /slow {
            content_by_lua_block {
                ngx.header["X-Conn"] = ngx.var.connection
                ngx.header["X-Conn-Requests"] = ngx.var.connection_requests
                ngx.sleep(tonumber(ngx.var.arg_s) or 1)
                ngx.say("slow")
            }
        }
        location = /big {
            content_by_lua_block {
                local n = tonumber(ngx.var.arg_n) or 0
                ngx.header["Content-Type"] = "application/octet-stream"
                ngx.header["Content-Length"] = n
                local unit = string.rep("0123456789", 6554)
                while n > 0 do
                    local piece = n >= #unit and unit or unit:sub(1, n)
                    ngx.print(piece)
                    n = n - #piece
                end
            }
        }
        location = /chunked {
            content_by_lua_block {
                local n = tonumber(ngx.var.arg_n) or 0
                local k = tonumber(ngx.var.arg_k) or 4
                local size = math.ceil(n / k)
                local all = string.rep("0123456789", math.ceil(n / 10)):sub(1, n)
                local i = 1
                while i <= n do
                    ngx.print(all:sub(i, i + size - 1))
                    ngx.flush(true)
                    i = i + size
                end
            }
        }
        location = /reset {
            return 444;
        }
        location = /cut {
            content_by_lua_block {
                ngx.header["Content-Length"] = 100000
                ngx.print("0123456789")
                ngx.flush(true)
                ngx.exit(444)
            }
        }
        location = /status/500 {
            default_type application/json;
            return 500 '{"error":{"message":"boom","code":1}}';
        }
        location = /status/429 {
            default_type application/json;
            add_header Retry-After 7 always;
            return 429 '{"error":{"message":"slow down","code":4}}';
        }
        location = /echo {
            content_by_lua_block {
                local cjson = require "cjson"
                ngx.req.read_body()
                local body = ngx.req.get_body_data()
                if not body then
                    local file = ngx.req.get_body_file()
                    if file then
                        local f = io.open(file, "rb")
                        body = f:read("*a")
                        f:close()
                    end
                end
                ngx.header["Content-Type"] = "application/json"
                ngx.print(cjson.encode{
                    method = ngx.req.get_method(), uri = ngx.var.request_uri,
                    headers = ngx.req.get_headers(200), body = body or "",
                    http_version = ngx.req.http_version(),
                })
            }
        }
        location ~ ^/v[0-9.]+/[0-9]+/messages$ {
            content_by_lua_block {
                local cjson = require "cjson.safe"
                local function answer(status, t, headers)
                    ngx.status = status
                    ngx.header["Content-Type"] = "application/json"
                    for k, v in pairs(headers or {}) do ngx.header[k] = v end
                    ngx.print(cjson.encode(t))
                end
                local function fail(status, code, title, headers)
                    return answer(status, { error = { message = "(#" .. code .. ") " .. title,
                        type = "OAuthException", code = code, fbtrace_id = "NGINX" } }, headers)
                end
                if ngx.var.http_authorization ~= "Bearer nginx-token" then
                    return fail(401, 190, "Invalid OAuth access token")
                end
                ngx.req.read_body()
                local msg = cjson.decode(ngx.req.get_body_data() or "")
                if type(msg) ~= "table" or msg.messaging_product ~= "whatsapp" or type(msg.to) ~= "string" then
                    return fail(400, 100, "Invalid parameter")
                end
                local n = ngx.shared.graph:incr(msg.to, 1, 0)
                if msg.to == "15550009001" and n <= 2 then
                    return fail(400, 130429, "Rate limit hit")
                elseif msg.to == "15550009002" and n <= 1 then
                    ngx.status = 503
                    ngx.header["Retry-After"] = "0"
                    return ngx.print("upstream unavailable")
                elseif msg.to == "15550009003" then
                    return fail(400, 131047, "Re-engagement message")
                elseif msg.to == "15550009005" then
                    return fail(400, 130429, "Rate limit hit", { ["Retry-After"] = "0" })
                elseif msg.to == "15550009004" and n <= 1 then
                    return ngx.exit(444)
                end
                answer(200, { messaging_product = "whatsapp",
                    contacts = { { input = msg.to, wa_id = msg.to } },
                    messages = { { id = "wamid.NGINX" .. ngx.shared.graph:incr("#", 1, 0) } } })
            }
        }
        location = /conn {
            add_header X-Conn $connection always;
            add_header X-Conn-Requests $connection_requests always;
            return 200 'conn';
        }
        location /static/ {
            alias %DIR%/www/;
        }
    }

    server {
        listen 127.0.0.1:%PORT%;
        server_name wa-proxy-test.invalid;
        location / {
            add_header X-Proxy-Host $host always;
            return 200 'proxied';
        }
    }
}
]]):gsub("%%(%u+)%%", { DIR = p.dir, PORT = tostring(p.port), TLSPORT = tostring(p.tls_port),
                         NDK = NDK_MODULE, LUA = LUA_MODULE })
end

local Peer = {}
Peer.__index = Peer

--- Start nginx; returns the peer (fields dir, port, tls_port, cert). Raises when it cannot.
function peer.start()
  local p = setmetatable({ dir = peer.tmpdir() }, Peer)
  local dir = p.dir
  assert(sh("mkdir -p " .. q(dir .. "/www")))
  -- A throwaway certificate for 127.0.0.1 / localhost.
  local ok = sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    .. " -keyout " .. q(dir .. "/key.pem") .. " -out " .. q(dir .. "/cert.pem")
    .. " -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost"
    .. " >" .. q(dir .. "/openssl.log") .. " 2>&1")
  if not ok then error("openssl could not make a certificate:\n" .. (read_file(dir .. "/openssl.log") or "")) end
  p.cert = dir .. "/cert.pem"
  for _ = 1, 8 do
    p.port = peer.free_port()
    repeat p.tls_port = peer.free_port() until p.tls_port ~= p.port
    write_file(dir .. "/nginx.conf", config(p))
    local cmd = ("%s -p %s -c %s -e %s 2>%s"):format(q(NGINX), q(dir .. "/"),
      q(dir .. "/nginx.conf"), q(dir .. "/error.log"), q(dir .. "/start.log"))
    if sh(cmd) then
      for _ = 1, 100 do
        if p:pid() then return p end
        peer.sleep(0.05)
      end
      p:stop()
      error("nginx started but wrote no pid file" .. p:log_tail())
    end
    local why = (read_file(dir .. "/start.log") or "") .. (read_file(dir .. "/error.log") or "")
    if not why:find("Address already in use", 1, true) then
      peer.rmdir(dir)
      error("nginx did not start:\n" .. why)
    end
  end
  peer.rmdir(dir)
  error("nginx did not start: no free port after 8 tries")
end

function Peer:pid()
  local s = read_file(self.dir .. "/nginx.pid")
  return s and tonumber(s:match("%d+"))
end

--- http://127.0.0.1:<port><path>
function Peer:url(path)
  return "http://127.0.0.1:" .. self.port .. path
end

--- https://127.0.0.1:<tls_port><path>
function Peer:tls_url(path)
  return "https://127.0.0.1:" .. self.tls_port .. path
end

function Peer:log_tail()
  local log = read_file(self.dir .. "/error.log") or ""
  return "\n--- nginx error.log (tail) ---\n" .. log:sub(-3000)
end

--- True while process `pid` runs (a zombie waiting for its parent to reap it counts as gone).
function peer.running(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Stop nginx and remove the directory. Safe twice.
function Peer:stop()
  local pid = self.dir and self:pid()
  if pid then
    sh("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 200 do
      if not peer.running(pid) then break end
      peer.sleep(0.02)
    end
    if peer.running(pid) then sh("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  peer.rmdir(self.dir)
  self.dir = nil
end

-- ---- background commands -----------------------------------------------------------

--- Start a shell command in the background; its stdout, stderr and exit status go to files in
-- `dir`. Returns a job: job:done() (non-blocking), job.rc, job:stdout(), job:stderr(), job.pid.
function peer.spawn(dir, cmd, name)
  name = name or ("job" .. tostring(math.random(1, 1e9)))
  local base = dir .. "/" .. name
  local job = { out = base .. ".out", err = base .. ".err", rcfile = base .. ".rc",
                pidfile = base .. ".pid" }
  os.remove(job.rcfile)
  -- The command runs in its own background process whose pid is recorded; a wrapper waits for
  -- it and writes its exit status last.
  local wrapper = ("( %s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s ) </dev/null >/dev/null 2>&1 &")
    :format(cmd, q(job.out), q(job.err), q(job.pidfile), q(job.rcfile), q(job.rcfile), q(job.rcfile),
            q(job.rcfile))
  assert(sh(wrapper), "could not start: " .. cmd)
  for _ = 1, 200 do
    local s = read_file(job.pidfile)
    if s and s:match("%d+") then job.pid = tonumber(s:match("%d+")) break end
    peer.sleep(0.01)
  end
  function job.done()
    if job.rc then return true end
    local s = read_file(job.rcfile)
    if s and s:match("%d+") then job.rc = tonumber(s:match("%d+")) return true end
    return false
  end
  function job.stdout() return read_file(job.out) or "" end
  function job.stderr() return read_file(job.err) or "" end
  --- Block the process (not the loop) until done or `timeout` seconds; returns done.
  function job.wait_blocking(timeout)
    for _ = 1, math.floor((timeout or 30) / 0.05) do
      if job.done() then return true end
      peer.sleep(0.05)
    end
    return job.done()
  end
  function job.kill(sig)
    if job.pid then sh("kill -" .. (sig or "TERM") .. " " .. job.pid .. " 2>/dev/null") end
  end
  return job
end

--- The curl command, quiet, with a generous time limit.
function peer.curl(args)
  return "curl -sS --max-time 30 " .. args
end

-- ---- child Lua processes ---------------------------------------------------------------

local function interpreter()
  if rawget(_G, "jit") then return "luajit" end
  return "lua5.4"
end

--- A shell command running `script` (a path) with the interpreter and module paths of this
-- process (so a child loads the same build of the core: plain, LuaJIT or sanitized).
function peer.lua_cmd(script, env)
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  if PRELOAD then parts[#parts + 1] = "LD_PRELOAD=" .. q(PRELOAD) end
  table.sort(parts)
  return ("env LUA_PATH=%s LUA_CPATH=%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s %s %s %s"):format(
    q(package.path), q(package.cpath), q(package.path), q(package.cpath),
    table.concat(parts, " "), interpreter(), q(script))
end

return peer
