-- Inbound HTTP benchmark listener (run by bench/http.sh): whatsapp.server on a free
-- loopback port, every POST checked and parsed with hook:parse (HMAC-SHA256 signature, then
-- the payload) and its events handed to a no-op handler; answers 200 (401/400/413 on a bad
-- request). Runs until SIGTERM/SIGINT.
--
--   BENCH_APP_SECRET=... BENCH_PORT_FILE=/tmp/port \
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/lua5.4/?.so;;" \
--     lua5.4 bench/http_in.lua
--
-- Writes the port to BENCH_PORT_FILE (or stdout) once listening; prints nothing on the hot
-- path; at shutdown prints
--   RESULT impl=<interp> requests=N ok=N failed=N events=N
-- and exits 1 when any request failed to parse.
local loop = require "whatsapp.loop"
local server = require "whatsapp.server"
local webhook = require "whatsapp.webhook"

local secret = os.getenv("BENCH_APP_SECRET") or "bench-app-secret"
local hook = webhook.new{ app_secret = secret }

local requests, ok_count, failed, nevents = 0, 0, 0, 0
local first_err

local function on_event(_) end -- the application's no-op handler

local srv = assert(server.listen{
  host = "127.0.0.1",
  port = tonumber(os.getenv("BENCH_PORT") or "") or 0,
  handler = function(req)
    requests = requests + 1
    local events, err = hook:parse(req.body, req.headers)
    if not events then
      failed = failed + 1
      first_err = first_err or err
      return err.status or 400, nil, ""
    end
    ok_count = ok_count + 1
    local n = #events
    nevents = nevents + n
    for i = 1, n do on_event(events[i]) end
    return 200, nil, ""
  end,
})

local port_file = os.getenv("BENCH_PORT_FILE")
if port_file then
  local f = assert(io.open(port_file .. ".tmp", "w"))
  f:write(srv:port(), "\n")
  f:close()
  assert(os.rename(port_file .. ".tmp", port_file))
else
  io.write(srv:port(), "\n")
  io.flush()
end

loop.run{ grace = 2 }

local interp = (type(jit) == "table" and jit.version) and "luajit" or _VERSION:gsub("Lua ", "lua")
io.write(string.format("RESULT impl=%s requests=%d ok=%d failed=%d events=%d\n",
  interp, requests, ok_count, failed, nevents))
if failed > 0 then
  io.stderr:write("http_in: ", failed, " requests failed; first: ", tostring(first_err), "\n")
  os.exit(1)
end
