-- Outbound HTTP benchmark client (run by bench/http.sh).
--
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/lua5.4/?.so;;" \
--     lua5.4 bench/http_out.lua http://127.0.0.1:PORT/v23.0/106540352242922/messages
--
-- Sends BENCH_MESSAGES (default 20000) POSTs of a typical 220-byte text message with a
-- 190-character bearer token through one whatsapp.http session, BENCH_INFLIGHT (default 64)
-- tasks each looping, checks every answer is 200 with a body that parses as the Cloud API's
-- send response, and prints one line:
--   RESULT impl=<interp> messages=N ok=N bad=N seconds=S rate=R cpu=C
-- cpu is os.clock(): this process's CPU seconds (user + system) for the timed part.
-- Exits 1 when any request failed or answered anything else.
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"

local url = arg[1] or os.getenv("BENCH_URL")
if not url then
  io.stderr:write("usage: http_out.lua URL | http_out.lua --dump DIR\n")
  os.exit(2)
end
local total = tonumber(os.getenv("BENCH_MESSAGES") or "") or 20000
local inflight = tonumber(os.getenv("BENCH_INFLIGHT") or "") or 64

-- The response decoder an application would use: lua-cjson when installed, else the core's.
local decode, decoder
do
  local ok, cjson = pcall(require, "cjson.safe")
  if ok then
    decode, decoder = cjson.new().decode, "cjson"
  else
    decode, decoder = require("whatsapp.core").json_decode, "core"
  end
end

-- 190-character token, the shape of a system-user token.
local token = "EAAG" .. ("Zb7QxT9kLmN2pR4sVw6yA8cE1gJ3hK5"):rep(6):sub(1, 186)
assert(#token == 190)

-- A typical text message: 220 bytes.
local body = '{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",'
  .. '"type":"text","text":{"preview_url":false,"body":"Hello Maria, your order #48213 has '
  .. 'shipped and arrives Thursday. Reply STOP to opt out"}}'
body = body .. (" "):rep(220 - #body)
assert(#body == 220, #body)

local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}

-- `--dump DIR`: write the request body (DIR/message.json) and the Authorization header line
-- (DIR/auth.header) for wrk, so it sends exactly the same request; then exit.
if url == "--dump" then
  local dir = assert(arg[2], "--dump needs a directory")
  local f = assert(io.open(dir .. "/message.json", "wb"))
  f:write(body)
  f:close()
  f = assert(io.open(dir .. "/auth.header", "wb"))
  f:write("Authorization: ", headers.Authorization)
  f:close()
  os.exit(0)
end

local session = http.session{ max_host_connections = inflight }

local sent, ok_count, bad = 0, 0, 0
local first_bad

local function worker()
  local req = { method = "POST", url = url, headers = headers, body = body, timeout = 30 }
  while sent < total do
    sent = sent + 1
    local res, err = session:request(req)
    if res and res.status == 200 then
      local doc = decode(res.body)
      if type(doc) == "table" and doc.messages and doc.messages[1]
        and type(doc.messages[1].id) == "string" then
        ok_count = ok_count + 1
      else
        bad = bad + 1
        first_bad = first_bad or ("unparsable body: " .. tostring(res.body))
      end
    else
      bad = bad + 1
      first_bad = first_bad or (res and ("status " .. tostring(res.status))
        or ("error " .. tostring(err and err.code) .. ": " .. tostring(err and err.message)))
    end
  end
end

local interp = (type(jit) == "table" and jit.version) and "luajit" or _VERSION:gsub("Lua ", "lua")

local c0, t0 = os.clock(), loop.now()
for _ = 1, inflight do loop.spawn(worker) end
loop.run()
local c1, t1 = os.clock(), loop.now()
session:close()

local secs = t1 - t0
io.write(string.format(
  "RESULT impl=%s messages=%d ok=%d bad=%d seconds=%.3f rate=%.0f cpu=%.3f decoder=%s\n",
  interp, sent, ok_count, bad, secs, sent / secs, c1 - c0, decoder))
if bad > 0 or ok_count ~= total then
  io.stderr:write("http_out: ", bad, " bad answers; first: ", tostring(first_bad), "\n")
  os.exit(1)
end
