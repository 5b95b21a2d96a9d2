-- Client benchmark driver (run by bench/client.sh).
--
--   lua5.4 bench/client_out.lua raw    BASE_URL   -- whatsapp.http, a prebuilt JSON body
--   lua5.4 bench/client_out.lua client BASE_URL   -- client:send_text (build, validate, encode,
--                                                  -- send, decode, error handling)
--   lua5.4 bench/client_out.lua paired BASE_URL   -- both, in one process, alternating
--
-- paired: BENCH_ROUNDS (default 16) rounds; each runs BENCH_MESSAGES / BENCH_ROUNDS messages
-- raw and as many through the client, raw first in odd rounds and second in even ones, over the
-- same session. A round's two halves run within a fraction of a second of each other, so a
-- change in the machine's load (which moves a whole run's CPU by up to 2x here) hits both
-- alike; the overhead reported is the median over rounds of cpu(client) / cpu(raw) - 1, with
-- the quartiles, and one line is printed per mode plus one OVERHEAD line:
--   RESULT mode=<raw|client> impl=<interp> messages=N ok=N bad=N seconds=S rate=R cpu=C
--   OVERHEAD impl=<interp> rounds=R median=M q1=Q1 q3=Q3      (fractions: 0.16 is +16%)
--
-- Both send BENCH_MESSAGES (default 20000) text messages of the same 220-byte body shape with a
-- 190-character token to BASE_URL/v23.0/100000000000001/messages from BENCH_INFLIGHT (64) tasks,
-- through one session allowing 64 connections, and print one line:
--   RESULT mode=<raw|client> impl=<interp> messages=N ok=N bad=N seconds=S rate=R cpu=C
-- With BENCH_GARBAGE=1 the collector is stopped for the run and the line also carries
-- garbage_kb=G, the kilobytes allocated per message (collectgarbage("count") delta / N);
-- cpu then is not comparable with a normal run.
-- BASE_URL "stub" replaces the session by one that answers at once, in Lua, with the Cloud
-- API's send response (what bench/client.sh's nginx answers): no network, no libcurl, so only
-- the Lua work of each path is measured (bench/client_instr.sh uses it for exact counts).
-- The client runs with pacing off (rate = false): pacing exists to stay under Meta's limits
-- and would measure the limit, not the client. Exits 1 when any message failed.
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local cjson = require "cjson.safe"

local mode, base = arg[1], arg[2]
if (mode ~= "raw" and mode ~= "client" and mode ~= "paired") or not base then
  io.stderr:write("usage: client_out.lua raw|client|paired BASE_URL\n")
  os.exit(2)
end
local total = tonumber(os.getenv("BENCH_MESSAGES") or "") or 20000
local inflight = tonumber(os.getenv("BENCH_INFLIGHT") or "") or 64

local token = "EAAG" .. ("Zb7QxT9kLmN2pR4sVw6yA8cE1gJ3hK5"):rep(6):sub(1, 186)
local PNID = "100000000000001"
local TO = "16505551234"
local TEXT = "Hello Maria, your order #48213 has shipped and arrives Thursday. Reply STOP to opt out"

local session
if base == "stub" then
  base = "http://127.0.0.1:9"
  local answer = '{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],'
    .. '"messages":[{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}'
  session = {
    request = function(_, req)
      if type(req) ~= "table" or type(req.body) ~= "string" then error("stub: bad request") end
      return { status = 200, headers = {}, body = answer }
    end,
    close = function() end,
  }
else
  session = http.session{ max_host_connections = inflight }
end
local sends = {}

do
  local url = base .. "/v23.0/" .. PNID .. "/messages"
  local body = cjson.encode{ messaging_product = "whatsapp", recipient_type = "individual", to = TO,
    type = "text", text = { preview_url = false, body = TEXT } }
  local req = { method = "POST", url = url, body = body, timeout = 30,
    headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" } }
  local decode = cjson.decode
  sends.raw = function()
    local res = session:request(req)
    if not res or res.status ~= 200 then return false end
    local doc = decode(res.body)
    return type(doc) == "table" and type(doc.messages) == "table" and doc.messages[1] ~= nil
      and type(doc.messages[1].id) == "string"
  end
end
do
  local client = require("whatsapp.client").new{
    phone_number_id = PNID, access_token = token, base_url = base, http = session, rate = false,
  }
  local opts = { preview_url = false }
  sends.client = function()
    local sent = client:send_text(TO, TEXT, opts)
    return sent ~= nil and type(sent.id) == "string"
  end
end

-- run(send, n): n messages from `inflight` tasks; returns ok, bad, wall seconds, CPU seconds.
local function run(send, n)
  local started, ok_count, bad = 0, 0, 0
  local function worker()
    while started < n do
      started = started + 1
      if send() then ok_count = ok_count + 1 else bad = bad + 1 end
    end
  end
  local cpu0, t0 = os.clock(), loop.now()
  local tasks = {}
  for i = 1, inflight do tasks[i] = loop.spawn(worker) end
  loop.wait_all(tasks)
  return ok_count, bad, loop.now() - t0, os.clock() - cpu0
end

local impl = rawget(_G, "jit") and "luajit" or _VERSION:gsub("Lua ", "lua")
local function result(m, n, ok_count, bad, seconds, cpu, note)
  print(("RESULT mode=%s impl=%s messages=%d ok=%d bad=%d seconds=%.3f rate=%.0f cpu=%.3f%s"):format(
    m, impl, n, ok_count, bad, seconds, ok_count / seconds, cpu, note or ""))
end

if mode == "paired" then
  local rounds = math.floor(tonumber(os.getenv("BENCH_ROUNDS") or "") or 16)
  if rounds < 1 or rounds > total then
    io.stderr:write("client_out.lua: BENCH_ROUNDS must be between 1 and BENCH_MESSAGES\n")
    os.exit(2)
  end
  local per = math.floor(total / rounds) -- at least 1: rounds <= total
  local sum = { raw = { 0, 0, 0, 0 }, client = { 0, 0, 0, 0 } }
  local ratios = {}
  -- warm-up, not counted: connections, JIT traces, caches
  local _, wbad = run(sends.raw, per)
  local _, wbad2 = run(sends.client, per)
  local bad = wbad + wbad2
  for r = 1, rounds do
    local order = r % 2 == 1 and { "raw", "client" } or { "client", "raw" }
    local cpu = {}
    for _, m in ipairs(order) do
      local ok_count, nbad, seconds, c = run(sends[m], per)
      local acc = sum[m]
      acc[1], acc[2], acc[3], acc[4] = acc[1] + ok_count, acc[2] + nbad, acc[3] + seconds, acc[4] + c
      cpu[m] = c
    end
    ratios[r] = cpu.client / cpu.raw - 1
  end
  session:close()
  table.sort(ratios)
  local function quantile(q)
    local x = 1 + (#ratios - 1) * q
    local lo = math.floor(x)
    local hi = math.min(lo + 1, #ratios)
    return ratios[lo] + (ratios[hi] - ratios[lo]) * (x - lo)
  end
  for _, m in ipairs({ "raw", "client" }) do
    local acc = sum[m]
    result(m, per * rounds, acc[1], acc[2], acc[3], acc[4])
    bad = bad + acc[2]
  end
  print(("OVERHEAD impl=%s rounds=%d median=%.4f q1=%.4f q3=%.4f"):format(
    impl, rounds, quantile(0.5), quantile(0.25), quantile(0.75)))
  os.exit(bad == 0 and 0 or 1)
end

local garbage = os.getenv("BENCH_GARBAGE") == "1"
local kb0
if garbage then
  collectgarbage("collect")
  collectgarbage("stop")
  kb0 = collectgarbage("count")
end
local ok_count, bad, seconds, cpu = run(sends[mode], total)
local garbage_note = ""
if garbage then
  garbage_note = (" garbage_kb=%.3f"):format((collectgarbage("count") - kb0) / total)
  collectgarbage("restart")
end
session:close()
result(mode, total, ok_count, bad, seconds, cpu, garbage_note)
os.exit(bad == 0 and 0 or 1)
