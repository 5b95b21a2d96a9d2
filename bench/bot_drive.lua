-- Load driver for bench/bot_load.sh: posts signed webhooks, every message id never used before,
-- to a bot, from BENCH_CONCURRENCY tasks (default 32) each waiting for the answer before its
-- next post.
--
--   luajit bench/bot_drive.lua URL SIM_STATS_FILE BOT_PID
--
-- Environment: BENCH_SECRET (app secret), BENCH_SECONDS (stop after that long) or
-- BENCH_EVENTS (stop after that many messages), BENCH_BATCH (messages per webhook, default 1,
-- as Meta batches them under load), BENCH_USERS (distinct senders, default 1000),
-- BENCH_REPORT_EVERY (a progress line every that many messages, default 0: none), BENCH_TAG
-- (makes message ids unique across runs), BENCH_MAX_BACKLOG (see below), BENCH_ACCEPTED0 (the
-- simulator's count of accepted messages before this run). Prints
--   AT events=N seconds=S events_per_s=R accepted=A bot_rss_kb=K     (progress)
--   RESULT webhooks=N events=N ok=N bad=N seconds=S rate=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
--          waited_s=W
-- (rate: webhooks per second; accepted: replies the simulator accepted so far). The latency is
-- from the start of the POST to the bot's answer (200 once the signature is checked and the
-- events are queued).
local loop = require "whatsapp.loop"
local http = require "whatsapp.http"
local webhook = require "whatsapp.webhook"

local url, stats_file, bot_pid = arg[1], arg[2], arg[3]
assert(url and stats_file and bot_pid, "usage: bot_drive.lua URL SIM_STATS_FILE BOT_PID")
local secret = os.getenv("BENCH_SECRET") or "bench-app-secret"
local seconds = tonumber(os.getenv("BENCH_SECONDS") or "")
local events = tonumber(os.getenv("BENCH_EVENTS") or "")
local concurrency = tonumber(os.getenv("BENCH_CONCURRENCY") or "") or 32
local users = tonumber(os.getenv("BENCH_USERS") or "") or 1000
local every = tonumber(os.getenv("BENCH_REPORT_EVERY") or "") or 0
local tag = os.getenv("BENCH_TAG") or tostring(os.time())
local batch = tonumber(os.getenv("BENCH_BATCH") or "") or 1
assert(seconds or events, "set BENCH_SECONDS or BENCH_EVENTS")

local format, floor, sign = string.format, math.floor, webhook.sign

local function rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return -1 end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or -1
end

-- The simulator's counters, less what it had counted before this run (BENCH_ACCEPTED0).
local accepted0 = tonumber(os.getenv("BENCH_ACCEPTED0") or "") or 0
local function sim_stats()
  local f = io.open(stats_file)
  if not f then return {} end
  local s = f:read("*a")
  f:close()
  local t = {}
  for k, v in s:gmatch("(%w+)=(%d+)") do t[k] = tonumber(v) end
  if t.accepted then t.accepted = t.accepted - accepted0 end
  return t
end

-- One webhook as Meta sends it: `batch` text messages (ids first .. first + batch - 1), each
-- from one of `users` senders, in one change.
local HEAD = '{"object":"whatsapp_business_account","entry":[{"id":"100000000000002","changes":[{"value":'
  .. '{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111",'
  .. '"phone_number_id":"100000000000001"},"contacts":['
local concat = table.concat
local function body(first)
  local contacts, messages = {}, {}
  local now = os.time()
  for k = 1, batch do
    local i = first + k - 1
    local from = format("1555%07d", i % users)
    contacts[k] = '{"profile":{"name":"Load Test"},"wa_id":"' .. from .. '"}'
    messages[k] = '{"from":"' .. from .. '","id":"wamid.BENCH' .. tag .. "x" .. i .. '","timestamp":"' .. now
      .. '","type":"text","text":{"body":"Hello bot, this is message number ' .. i .. '"}}'
  end
  return HEAD .. concat(contacts, ",") .. '],"messages":[' .. concat(messages, ",")
    .. ']},"field":"messages"}]}]}'
end

-- Latency histogram: 10 µs buckets up to 2 s, then one overflow bucket.
local BUCKET, NB = 1e-5, 200000
local hist, max_lat = {}, 0
for i = 0, NB do hist[i] = 0 end
local function record(d)
  local b = floor(d / BUCKET)
  if b > NB then b = NB end
  hist[b] = hist[b] + 1
  if d > max_lat then max_lat = d end
end
local function percentile(p, n)
  local want, acc = n * p, 0
  for i = 0, NB do
    acc = acc + hist[i]
    if acc >= want then return (i + 1) * BUCKET end
  end
  return max_lat
end

local session = http.session{ max_host_connections = concurrency }

local posted, sent_events, ok, bad = 0, 0, 0, 0
local t0 = loop.now()
local deadline = seconds and t0 + seconds
local first_error, next_report = nil, every

local function progress(n)
  local st = sim_stats()
  local el = loop.now() - t0
  io.stdout:write(format("AT events=%d seconds=%.1f events_per_s=%.0f accepted=%d bot_rss_kb=%d\n",
    n, el, n / el, st.accepted or -1, rss_kb(bot_pid)))
  io.stdout:flush()
end

-- The bot answers a webhook before it handles the events, so a driver can post faster than
-- the bot replies and the backlog (and the bot's memory) grows without bound. With
-- BENCH_MAX_BACKLOG, posting pauses while more events than that are unanswered.
local max_backlog = tonumber(os.getenv("BENCH_MAX_BACKLOG") or "")
local accepted, accepted_at, waited = 0, -1, 0
local function backlog()
  local now = loop.now()
  if now - accepted_at > 0.05 then
    accepted, accepted_at = sim_stats().accepted or accepted, now
  end
  return sent_events - accepted
end

local function worker()
  while true do
    if events and sent_events >= events then return end
    if deadline and loop.now() >= deadline then return end
    while max_backlog and backlog() > max_backlog do
      waited = waited + 0.01 / concurrency
      loop.sleep(0.01)
    end
    local first = sent_events + 1
    sent_events = sent_events + batch
    posted = posted + 1
    local raw = body(first)
    local t1 = loop.now()
    local res, err = session:request{ method = "POST", url = url, body = raw, timeout = 30, headers = {
      ["Content-Type"] = "application/json", ["User-Agent"] = "facebookexternalua",
      ["X-Hub-Signature-256"] = sign(raw, secret) } }
    record(loop.now() - t1)
    if res and res.status == 200 then
      ok = ok + 1
    else
      bad = bad + 1
      first_error = first_error or (res and ("HTTP " .. res.status) or tostring(err))
    end
    if every > 0 and (ok + bad) * batch >= next_report then
      next_report = next_report + every
      progress((ok + bad) * batch)
    end
  end
end

local tasks = {}
for i = 1, concurrency do tasks[i] = loop.spawn(worker) end
loop.wait_all(tasks)
local el = loop.now() - t0
session:close()
local n = ok + bad
io.stdout:write(format("RESULT webhooks=%d events=%d ok=%d bad=%d seconds=%.3f rate=%.1f p50_ms=%.3f "
  .. "p90_ms=%.3f p99_ms=%.3f max_ms=%.3f waited_s=%.1f\n", n, n * batch, ok, bad, el, n / el,
  percentile(0.5, n) * 1000, percentile(0.9, n) * 1000, percentile(0.99, n) * 1000, max_lat * 1000, waited))
if first_error then io.stderr:write("bot_drive: first failure: ", first_error, "\n") end
os.exit(bad == 0 and 0 or 1)
