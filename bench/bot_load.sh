#!/usr/bin/env bash
# Bot load benchmark: signed webhooks posted to a standalone echo bot (examples/bots/echo.lua)
# that replies through the Cloud API simulator. Three processes on loopback:
#
#   bench/bot_sim.lua    the simulator (no rate limits, no window; counts what it accepts)
#   bench/bot_echo.lua   the echo bot: bot:listen + whatsapp.client pointed at the simulator
#   bench/bot_drive.lua  the load driver: whatsapp.http, every webhook signed for its own body
#                        (X-Hub-Signature-256) with message ids never used before
#
# Phase 1, throughput: BENCH_SECONDS (10) of one-message webhooks from BENCH_CONCURRENCY (32)
#   connections, as fast as the bot answers. Reports webhooks/s, replies/s (messages the
#   simulator accepted / time), p50/p99/max time to answer the webhook, replies lost, and the
#   bot's RSS before and after.
# Phase 2, memory: BENCH_EVENTS (1000000) messages to a fresh bot whose dedupe window is
#   BENCH_DEDUPE (10 s), so entries expire as the run goes; posting pauses while more than
#   BENCH_MAX_BACKLOG (2000) events wait for their reply (the bot answers webhooks before it
#   handles them, so an unpaced driver only measures a growing queue). Reports the bot's RSS
#   every BENCH_REPORT_EVERY (100000) events and whether it grew after the first interval.
#   BENCH_EVENTS=0 skips it.
#
# Other knobs: BENCH_USERS (1000 distinct senders), BENCH_BATCH (messages per webhook in
# phase 2, default 1), BENCH_MARK_READ=1 (the echo bot also marks every message read: a second
# API call per message), BOT_LUA (lua5.4) / SIM_LUA and DRIVER_LUA (luajit).
# It is a report: it exits non-zero only when a process fails or a webhook is refused. The
# default run takes about 5 minutes on 2 shared cores (a million events at ~3.5k/s); set
# BENCH_EVENTS=200000 for a quick one.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_1=${BENCH_SECONDS:-10}
EVENTS=${BENCH_EVENTS:-1000000}
CONC=${BENCH_CONCURRENCY:-32}
DEDUPE=${BENCH_DEDUPE:-10}
EVERY=${BENCH_REPORT_EVERY:-100000}
BACKLOG=${BENCH_MAX_BACKLOG:-2000}
BOT_LUA=${BOT_LUA:-lua5.4}
SIM_LUA=${SIM_LUA:-luajit}
DRIVER_LUA=${DRIVER_LUA:-luajit}
export BENCH_SECRET="bench-app-secret-$$"
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"

cpath() { case "$1" in luajit) echo "./build/luajit/?.so;;" ;; *) echo "./build/lua5.4/?.so;;" ;; esac; }

tmp=$(mktemp -d)
SIM_PID="" BOT_PID=""
cleanup() {
  [ -n "$BOT_PID" ] && kill "$BOT_PID" 2>/dev/null || true
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

make -s build >/dev/null
make -s build LUA=luajit >/dev/null

# wait_port FILE PID: the port a process printed ("PORT n"), once it did
wait_port() {
  for _ in $(seq 100); do
    if grep -q '^PORT' "$1" 2>/dev/null; then awk '/^PORT/ {print $2; exit}' "$1"; return; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "bot_load.sh: a process did not start:" >&2
  cat "${1%.out}.err" >&2 || true
  exit 1
}

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
accepted() { sed -n 's/.*accepted=\([0-9]*\).*/\1/p' "$tmp/sim.stats" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# drain EXPECTED: wait until the simulator accepted EXPECTED replies or nothing moved for 2 s
drain() {
  local want=$1 last=-1 still=0
  while :; do
    local a
    a=$(accepted)
    [ "$a" -ge "$want" ] && break
    if [ "$a" = "$last" ]; then still=$((still + 1)); else still=0; fi
    [ "$still" -ge 20 ] && break
    last=$a
    sleep 0.1
  done
}

start_bot() { # start_bot DEDUPE
  BENCH_DEDUPE=$1 LUA_CPATH=$(cpath "$BOT_LUA") "$BOT_LUA" bench/bot_echo.lua "http://127.0.0.1:$SPORT" \
    >"$tmp/bot.out" 2>"$tmp/bot.err" &
  BOT_PID=$!
  BPORT=$(wait_port "$tmp/bot.out" "$BOT_PID")
}

stop_bot() {
  kill "$BOT_PID" 2>/dev/null || true
  wait "$BOT_PID" 2>/dev/null || true
  BOT_PID=""
  rm -f "$tmp/bot.out"
}

drive() { # drive LABEL ENV...: runs the driver, its output in $tmp/LABEL.out
  local label=$1
  shift
  env "$@" LUA_CPATH="$(cpath "$DRIVER_LUA")" "$DRIVER_LUA" bench/bot_drive.lua \
    "http://127.0.0.1:$BPORT/webhook" "$tmp/sim.stats" "$BOT_PID" | tee "$tmp/$label.out" | grep --line-buffered '^AT' \
    | sed -u 's/^AT /  at /' || true
  if ! grep -q '^RESULT' "$tmp/$label.out"; then echo "bot_load.sh: the driver failed" >&2; exit 1; fi
}

field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$1" | tail -n1; }

LUA_CPATH=$(cpath "$SIM_LUA") "$SIM_LUA" bench/bot_sim.lua "$tmp/sim.stats" >"$tmp/sim.out" 2>"$tmp/sim.err" &
SIM_PID=$!
SPORT=$(wait_port "$tmp/sim.out" "$SIM_PID")
for _ in $(seq 50); do [ -f "$tmp/sim.stats" ] && break; sleep 0.05; done

status=0
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "== bot load: echo bot ($BOT_LUA) replying through the simulator ($SIM_LUA), driver $DRIVER_LUA =="
echo "cpu: ${cpu:-unknown} ($(nproc) cores), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
  "the three processes share these cores"

# ---- phase 1: throughput ------------------------------------------------------------------
start_bot 86400
rss0=$(rss "$BOT_PID")
a0=$(accepted)
drive p1 BENCH_SECONDS="$SECONDS_1" BENCH_CONCURRENCY="$CONC" BENCH_TAG="p1$$" BENCH_BATCH=1 BENCH_EVENTS= \
  BENCH_REPORT_EVERY=0 BENCH_MAX_BACKLOG= BENCH_ACCEPTED0="$a0"
a_end=$(accepted)
n=$(field "$tmp/p1.out" webhooks)
bad=$(field "$tmp/p1.out" bad)
secs=$(field "$tmp/p1.out" seconds)
drain $((a0 + n))
a1=$(accepted)
rss1=$(rss "$BOT_PID")
lost=$((n - (a1 - a0)))
[ "$bad" = 0 ] || status=1
echo
echo "-- throughput: $SECONDS_1 s, $CONC connections, one message per webhook"
awk -v n="$n" -v s="$secs" -v r="$((a_end - a0))" -v all="$((a1 - a0))" 'BEGIN {
  printf "  webhooks/s  %8.0f   (%d webhooks in %.1f s)\n", n / s, n, s
  printf "  replies/s   %8.0f   (%d replies accepted by the simulator during the run, %d after it drained)\n",
    r / s, r, all }'
echo "  answer latency: p50 $(field "$tmp/p1.out" p50_ms) ms, p90 $(field "$tmp/p1.out" p90_ms) ms," \
  "p99 $(field "$tmp/p1.out" p99_ms) ms, max $(field "$tmp/p1.out" max_ms) ms"
echo "  webhooks refused: $bad; replies lost: $lost"
echo "  bot RSS: $(mb "$rss0") MB before, $(mb "$rss1") MB after (peak $(mb "$(hwm "$BOT_PID")") MB)"
stop_bot

# ---- phase 2: a million events, RSS flat ----------------------------------------------------
if [ "$EVENTS" -gt 0 ]; then
  start_bot "$DEDUPE"
  rss0=$(rss "$BOT_PID")
  a0=$(accepted)
  echo
  echo "-- memory: $EVENTS events, dedupe window $DEDUPE s, at most $BACKLOG events waiting for a reply"
  echo "  bot RSS at start: $(mb "$rss0") MB"
  drive p2 BENCH_EVENTS="$EVENTS" BENCH_SECONDS= BENCH_CONCURRENCY="$CONC" BENCH_TAG="p2$$" \
    BENCH_REPORT_EVERY="$EVERY" BENCH_MAX_BACKLOG="$BACKLOG" BENCH_BATCH="${BENCH_BATCH:-1}" BENCH_ACCEPTED0="$a0"
  n=$(field "$tmp/p2.out" events)
  bad=$(field "$tmp/p2.out" bad)
  secs=$(field "$tmp/p2.out" seconds)
  drain $((a0 + n))
  a1=$(accepted)
  rss1=$(rss "$BOT_PID")
  lost=$((n - (a1 - a0)))
  [ "$bad" = 0 ] || status=1
  awk -v n="$n" -v s="$secs" 'BEGIN { printf "  %d events in %.0f s: %.0f events/s (replies keep up)\n", n, s, n / s }'
  echo "  webhooks refused: $bad; replies lost: $lost"
  echo "  bot RSS at the end: $(mb "$rss1") MB (peak $(mb "$(hwm "$BOT_PID")") MB)"
  # Growth is judged from the middle of the run (the store fills up to the dedupe window and the
  # heap settles first) to its end.
  sed -n 's/.*bot_rss_kb=\([0-9]*\).*/\1/p' "$tmp/p2.out" | awk -v last="$rss1" '
    { v[NR] = $1 }
    END {
      if (NR < 2) { print "  (too few samples for a growth verdict)"; exit }
      mid = v[int((NR + 1) / 2)]
      g = last - mid
      printf "  growth over the second half: %+.1f MB (%.1f MB at mid-run, %.1f MB at the end): %s\n",
        g / 1024, mid / 1024, last / 1024, (g < 0.05 * mid + 2048) ? "flat" : "GROWING"
    }'
  stop_bot
fi
exit $status
