-- Webhook-ingest benchmark: ns per hook:parse (signature check included) against the pure-Lua
-- way (bench/peer_lua.lua: luaossl HMAC + cjson.decode + a Lua walk), in the same process.
--
-- Run from the repository root, after `make` (or `make LUA=luajit`):
--
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/lua5.4/?.so;;" \
--     lua5.4 bench/webhook.lua
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/luajit/?.so;;" \
--     luajit bench/webhook.lua
--
-- bench/run.sh does both, runs the Node peer and prints the combined report.
--
-- For each body: check once that both implementations accept the signed body, reject a wrongly
-- signed one, and produce the same events (count, kind, type, id; from, timestamp, text and
-- contact name are compared too), then calibrate N so one measurement takes about
-- BENCH_SECONDS (default 0.5 s of CPU time, os.clock), and time BENCH_REPS (default 5)
-- interleaved repetitions of N calls of each; the median is reported.
--
-- Environment: BENCH_SECONDS, BENCH_REPS, BENCH_BODIES (directory with single.json and
-- batch.json; default: bench/bodies next to this script), BENCH_PEER_ONLY=1 (time only the
-- pure-Lua peer; for use while whatsapp.core is not built).
--
-- Output: a human-readable table, plus one machine-readable line per measurement:
--   RESULT interp=<lua5.4|luajit> impl=<whatsapp|purelua> body=<name> bytes=<n> events=<n>
--          n=<iterations> ns=<ns per call> check=<hash of kinds and ids>

local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local hmac = require "openssl.hmac"
local digest = require "openssl.digest"
local peer = require "peer_lua"

local SECRET = "bench-app-secret-0123456789abcdef"
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or 0.5
local REPS = math.floor(tonumber(os.getenv("BENCH_REPS") or "") or 5)
local BODIES = os.getenv("BENCH_BODIES") or (here .. "/bodies")
local PEER_ONLY = os.getenv("BENCH_PEER_ONLY") == "1"
local BODY_NAMES = { "single", "batch" }

local INTERP = rawget(_G, "jit") and "luajit" or _VERSION:gsub("^Lua ", "lua")
local clock = os.clock

local webhook
if not PEER_ONLY then
  local ok, mod = pcall(require, "whatsapp.webhook")
  if not ok then
    io.stderr:write("bench/webhook.lua: cannot load whatsapp.webhook (build with make, set ",
                    "LUA_PATH/LUA_CPATH, or use BENCH_PEER_ONLY=1):\n", tostring(mod), "\n")
    os.exit(1)
  end
  webhook = mod
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local HEX = {}
for i = 0, 255 do HEX[string.char(i)] = string.format("%02x", i) end
local function tohex(s) return (s:gsub(".", HEX)) end

local function sign(body)
  return "sha256=" .. tohex(hmac.new(SECRET, "sha256"):final(body))
end

------------------------------------------------------------------------------------------------
-- Sanity: both must accept the signed body, reject a bad signature, and agree on the events.
------------------------------------------------------------------------------------------------

local function fingerprint(events)
  local parts = {}
  for i, ev in ipairs(events) do
    parts[i] = tostring(ev.kind) .. ":" .. tostring(ev.id)
  end
  return tohex(digest.new("sha256"):final(table.concat(parts, "\n"))):sub(1, 16)
end

local function contact_name(ev)
  return type(ev.contact) == "table" and ev.contact.name or nil
end

local function fail(msg)
  io.stderr:write("bench/webhook.lua: ", msg, "\n")
  os.exit(2)
end

local warnings = 0
local function warn(msg)
  warnings = warnings + 1
  io.stderr:write("WARN ", msg, "\n")
end

local function compare(name, lib_events, peer_events)
  if #lib_events ~= #peer_events then
    fail(string.format("%s: whatsapp.webhook returned %d events, the pure-Lua peer %d",
                       name, #lib_events, #peer_events))
  end
  for i = 1, #peer_events do
    local a, b = lib_events[i], peer_events[i]
    if type(a) ~= "table" then
      fail(string.format("%s: event %d is a %s, not a table", name, i, type(a)))
    end
    for _, k in ipairs({ "kind", "id" }) do
      if a[k] ~= b[k] then
        fail(string.format("%s: event %d: %s is %q in whatsapp.webhook, %q in the peer",
                           name, i, k, tostring(a[k]), tostring(b[k])))
      end
    end
    for _, k in ipairs({ "type", "from", "timestamp", "text", "waba_id", "phone_number_id" }) do
      if a[k] ~= b[k] then
        warn(string.format("%s: event %d (%s %s): %s is %s (%s) in whatsapp.webhook, %s (%s) "
                           .. "in the peer", name, i, tostring(b.kind), tostring(b.type), k,
                           tostring(a[k]), type(a[k]), tostring(b[k]), type(b[k])))
      end
    end
    if contact_name(a) ~= contact_name(b) then
      warn(string.format("%s: event %d: contact.name is %s in whatsapp.webhook, %s in the peer",
                         name, i, tostring(contact_name(a)), tostring(contact_name(b))))
    end
  end
end

------------------------------------------------------------------------------------------------
-- Timing. Separate loops per implementation so neither pays for an extra closure call (and,
-- under LuaJIT, so each loop gets its own trace).
------------------------------------------------------------------------------------------------

local function loop_hook(hook, body, headers, n)
  local last
  local t0 = clock()
  for _ = 1, n do last = hook:parse(body, headers) end
  local t = clock() - t0
  assert(last, "hook:parse failed during timing")
  return t
end

local function loop_peer(parse, body, headers, n)
  local last
  local t0 = clock()
  for _ = 1, n do last = parse(body, headers) end
  local t = clock() - t0
  assert(last, "peer failed during timing")
  return t
end

-- Doubles n until one run takes at least 0.1 s (this is also the warm-up), then scales it so one
-- run takes about SECONDS.
local function calibrate(loop, impl, body, headers)
  local n = 1
  while true do
    local t = loop(impl, body, headers, n)
    if t >= 0.1 then
      return math.max(1, math.floor(n * SECONDS / t + 0.5))
    end
    n = n * (t < 0.01 and 10 or 2)
  end
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local m = #s
  local h = math.floor(m / 2)
  if m % 2 == 1 then return s[h + 1] end
  return (s[h] + s[h + 1]) / 2
end

------------------------------------------------------------------------------------------------

local hook = webhook and webhook.new { app_secret = SECRET }
local parse_peer = peer.new(SECRET)
local results = {}

for _, name in ipairs(BODY_NAMES) do
  local body = read_file(BODIES .. "/" .. name .. ".json")
  local sig = sign(body)
  local headers = { ["X-Hub-Signature-256"] = sig }
  local bad = { ["X-Hub-Signature-256"] = sign(body .. " ") }

  local peer_events, perr = parse_peer(body, headers)
  if not peer_events then fail(name .. ": the pure-Lua peer failed: " .. tostring(perr)) end
  if parse_peer(body, bad) then fail(name .. ": the pure-Lua peer accepted a bad signature") end
  local check = fingerprint(peer_events)

  local lib_events
  if hook then
    if webhook.sign then
      local s = webhook.sign(body, SECRET)
      if s ~= sig then warn(string.format("webhook.sign gives %q, luaossl %q", tostring(s), sig)) end
    end
    local err
    lib_events, err = hook:parse(body, headers)
    if not lib_events then
      fail(string.format("%s: hook:parse failed: %s (status %s, code %s)", name, tostring(err),
                         tostring(type(err) == "table" and err.status),
                         tostring(type(err) == "table" and err.code)))
    end
    local rejected, rerr = hook:parse(body, bad)
    if rejected then fail(name .. ": hook:parse accepted a bad signature") end
    if type(rerr) == "table" and rerr.status ~= nil and rerr.status ~= 401 then
      warn(string.format("%s: bad signature gave status %s, expected 401", name,
                         tostring(rerr.status)))
    end
    compare(name, lib_events, peer_events)
  end

  -- calibrate (and warm up) each implementation, then interleave the timed repetitions
  local n_lib = hook and calibrate(loop_hook, hook, body, headers)
  local n_peer = calibrate(loop_peer, parse_peer, body, headers)
  local t_lib, t_peer = {}, {}
  for r = 1, REPS do
    if hook then
      collectgarbage()
      t_lib[r] = loop_hook(hook, body, headers, n_lib) / n_lib * 1e9
    end
    collectgarbage()
    t_peer[r] = loop_peer(parse_peer, body, headers, n_peer) / n_peer * 1e9
  end

  if hook then
    results[#results + 1] = { impl = "whatsapp", body = name, bytes = #body,
                              events = #lib_events, n = n_lib, ns = median(t_lib),
                              check = fingerprint(lib_events) }
  end
  results[#results + 1] = { impl = "purelua", body = name, bytes = #body,
                            events = #peer_events, n = n_peer, ns = median(t_peer),
                            check = check }
end

io.write(string.format("webhook ingest, %s, median of %d x ~%.2g s, ns per call " ..
                       "(HMAC-SHA256 check + parse + events)\n", INTERP, REPS, SECONDS))
io.write(string.format("  %-8s %-9s %7s %6s %9s %12s\n",
                       "body", "impl", "bytes", "events", "n", "ns/op"))
for _, r in ipairs(results) do
  io.write(string.format("  %-8s %-9s %7d %6d %9d %12.1f\n",
                         r.body, r.impl, r.bytes, r.events, r.n, r.ns))
end
for _, name in ipairs(BODY_NAMES) do
  local lib, pl
  for _, r in ipairs(results) do
    if r.body == name and r.impl == "whatsapp" then lib = r end
    if r.body == name and r.impl == "purelua" then pl = r end
  end
  if lib and pl then
    io.write(string.format("  %-8s whatsapp is %.2fx the speed of pure Lua\n", name, pl.ns / lib.ns))
  end
end
for _, r in ipairs(results) do
  io.write(string.format("RESULT interp=%s impl=%s body=%s bytes=%d events=%d n=%d ns=%.1f check=%s\n",
                         INTERP, r.impl, r.body, r.bytes, r.events, r.n, r.ns, r.check))
end
if warnings > 0 then
  io.write(string.format("WARNINGS %d (see stderr)\n", warnings))
end
