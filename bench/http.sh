#!/usr/bin/env bash
# Runtime (HTTP) benchmark report: the outbound client and the inbound listener, each against
# nginx and Node in the same run.
#
# Builds nothing: run `make` and `make LUA=luajit` first (an interpreter whose core.so is
# missing is skipped with a NOTE). Starts its own nginx (from a temp dir, generated conf, free
# loopback ports) with two servers:
#   send   answers every request with the Cloud API's fixed send response (the outbound target)
#   floor  answers 200 to anything (the inbound floor)
#
# Outbound: BENCH_MESSAGES (20000) POSTs of a 220-byte text message with a 190-character bearer
#   token, BENCH_INFLIGHT (64) in flight: bench/http_out.lua (whatsapp.http session) under
#   lua5.4 and luajit, bench/peer_node_out.js (Node `http`, keep-alive agent), and wrk posting
#   the same request for BENCH_DURATION as the ceiling.
#   Targets: ours >= 25000 msg/s, >= 1.7x Node `http`, peak RSS <= 20 MB.
# Inbound: wrk (-t BENCH_THREADS -c BENCH_CONNECTIONS -d BENCH_DURATION --latency) posting the
#   signed bench/bodies/single.json to nginx (floor), bench/http_in.lua (whatsapp.server +
#   hook:parse + no-op handler) under lua5.4 and luajit, and bench/peer_node_in.js (Node `http`,
#   HMAC + JSON.parse).
#   Targets: ours >= 32000 req/s, >= 1.3x Node, zero errors, idle listener RSS <= 10 MB.
#
# It is a report: a target missed prints BELOW and does not fail the script. It exits non-zero
# only when a run fails or errors occur (failed requests, non-2xx answers, socket errors).
#
# Environment: BENCH_DURATION (wrk -d, default 5s), BENCH_CONNECTIONS (64), BENCH_THREADS (1),
# BENCH_MESSAGES (20000), BENCH_INFLIGHT (64), BENCH_REPS (outbound clients: best of 3), LUA54 / LUAJIT / NODE / WRK / NGINX (commands).
# Needs nginx, wrk, node and /usr/bin/time (Debian packages nginx-light, wrk, nodejs, time).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

LUA54=${LUA54:-lua5.4}
LUAJIT=${LUAJIT:-luajit}
NODE=${NODE:-node}
WRK=${WRK:-wrk}
NGINX=${NGINX:-nginx}
DURATION=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
export BENCH_MESSAGES=${BENCH_MESSAGES:-20000}
export BENCH_INFLIGHT=${BENCH_INFLIGHT:-64}
REPS=${BENCH_REPS:-3}
export BENCH_APP_SECRET=${BENCH_APP_SECRET:-bench-app-secret-3f9a7c1e}
LUAPATH="./lua/?.lua;./lua/?/init.lua;;"

for cmd in "$NGINX" "$WRK" "$NODE" "$LUA54" /usr/bin/time ss; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "http.sh: $cmd not found (Debian: nginx-light wrk nodejs lua5.4 time iproute2)" >&2
    exit 2
  fi
done

tmp=$(mktemp -d)
pids=()
nginx_pid=""
cleanup() {
  local p
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    sleep 0.2
    kill -KILL "$nginx_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
say() {
  local line="$*"
  [ "${#line}" -le 160 ] || line="${line:0:157}..."
  echo "$line" >&2
}
fail() {
  echo "FAILED: $*" >&2
  status=1
}

clk_tck=$(getconf CLK_TCK)

. bench/ports.sh

# wait_http <url>: until something answers on that port (any status), for up to 5 s.
wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# wait_file <file> <pid>: until the file exists (the port a listener writes), for up to 10 s.
wait_file() {
  local f=$1 pid=$2
  for _ in $(seq 1 200); do
    if [ -s "$f" ]; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}

# kv <file> <key>: the value of key=value in the file's RESULT/WRK line.
kv() {
  sed -n "s/^\(RESULT\|WRK\) .*\b$2=\([^ ]*\).*/\2/p" "$1" 2>/dev/null | tail -n1
}

# proc_cpu <pid>: user+system CPU seconds so far (from /proc/<pid>/stat).
proc_cpu() {
  awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / t }' "/proc/$1/stat"
}
# proc_kb <pid> <field>: VmRSS / VmHWM in KiB.
proc_kb() {
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- nginx ---------------------------------------------------------------------------------
send_port=$(free_port)
floor_port=$(free_port)
mkdir -p "$tmp/nginx/logs"
SEND_RESPONSE='{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}'
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_max_body_size 4m;
  server {
    listen 127.0.0.1:$send_port;
    default_type application/json;
    location / { return 200 '$SEND_RESPONSE'; }
  }
  server {
    listen 127.0.0.1:$floor_port;
    default_type text/plain;
    location / { return 200 ''; }
  }
}
EOF
"$NGINX" -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" \
  >"$tmp/nginx/stdout" 2>&1 &
nginx_pid=$!
if ! wait_port "$send_port" || ! wait_port "$floor_port"; then
  echo "http.sh: nginx did not start:" >&2
  cat "$tmp/nginx/stdout" "$tmp/nginx/logs/error.log" >&2 || true
  exit 1
fi
nginx_worker=$(pgrep -P "$nginx_pid" | head -n1 || true)
send_url="http://127.0.0.1:$send_port/v23.0/106540352242922/messages"
floor_url="http://127.0.0.1:$floor_port/webhook"

# Which interpreters have a build.
lua_impls=()
declare -A INTERP=([lua5.4]="$LUA54" [luajit]="$LUAJIT")
declare -A CPATHOF=([lua5.4]="./build/lua5.4/?.so;;" [luajit]="./build/luajit/?.so;;")
for impl in lua5.4 luajit; do
  if [ ! -f "build/$impl/whatsapp/core.so" ] || [ ! -f "build/$impl/whatsapp/core/http.so" ]; then
    echo "NOTE: build/$impl/whatsapp/core.so or core/http.so missing (run make LUA=$impl); skipping $impl" >&2
  elif ! command -v "${INTERP[$impl]}" >/dev/null 2>&1; then
    echo "NOTE: ${INTERP[$impl]} not found; skipping $impl" >&2
  else
    lua_impls+=("$impl")
  fi
done
if [ "${#lua_impls[@]}" = 0 ]; then
  echo "http.sh: no build of whatsapp.core found; run make first" >&2
  exit 1
fi
first_impl=${lua_impls[0]}

# The requests: the outbound message and header (from http_out.lua), the signed webhook.
env LUA_PATH="$LUAPATH" LUA_CPATH="${CPATHOF[$first_impl]}" "${INTERP[$first_impl]}" \
  bench/http_out.lua --dump "$tmp"
auth_header=$(cat "$tmp/auth.header")
webhook_body=bench/bodies/single.json
signature=$(env LUA_PATH="$LUAPATH" LUA_CPATH="${CPATHOF[$first_impl]}" BODY="$webhook_body" \
  "${INTERP[$first_impl]}" -e '
  local f = assert(io.open(os.getenv("BODY"), "rb")); local b = f:read("*a"); f:close()
  io.write(require("whatsapp.webhook").sign(b, os.getenv("BENCH_APP_SECRET")))')
sig_header="X-Hub-Signature-256: $signature"

declare -A RATE CPU PEAK IDLE P99 ERRS
# Results by key: out.wrk out.lua5.4 out.luajit out.node in.nginx in.lua5.4 in.luajit in.node

# timed <label> <command...>: stdout/stderr to $tmp/<label>.out/.err, "%U %S %M" to .time.
timed() {
  local label=$1 rc=0
  shift
  say "running $label: $*"
  /usr/bin/time -f '%U %S %M' -o "$tmp/$label.time" "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" \
    || rc=$?
  if [ "$rc" != 0 ]; then
    fail "$label exited with status $rc"
    sed 's/^/  /' "$tmp/$label.err" >&2
  fi
  return 0
}
time_cpu() { { tail -n1 "$tmp/$1.time" 2>/dev/null || true; } | awk 'NF >= 3 { printf "%.2f", $1 + $2 }'; }
time_rss() { { tail -n1 "$tmp/$1.time" 2>/dev/null || true; } | awk 'NF >= 3 { print $3 }'; }

wrk_errors() {
  local f=$1
  echo $(( $(kv "$f" err_connect) + $(kv "$f" err_read) + $(kv "$f" err_write) \
    + $(kv "$f" err_status) + $(kv "$f" err_timeout) ))
}

# run_wrk <label> <url> <body file> <header...>
run_wrk() {
  local label=$1 url=$2 body=$3
  shift 3
  timed "$label" "$WRK" -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
    -s bench/wrk_post.lua "$url" -- "$body" "$@"
  if ! grep -q '^WRK ' "$tmp/$label.out"; then
    fail "$label: no summary from wrk"
    sed 's/^/  /' "$tmp/$label.out" >&2
    return 0
  fi
  local e
  e=$(wrk_errors "$tmp/$label.out")
  if [ "$e" != 0 ]; then fail "$label: $e errors (non-2xx or socket errors)"; fi
}

# ---- outbound ------------------------------------------------------------------------------
run_wrk out.wrk "$send_url" "$tmp/message.json" "$auth_header"
RATE[out.wrk]=$(kv "$tmp/out.wrk.out" rps)
P99[out.wrk]=$(kv "$tmp/out.wrk.out" p99_ms)
ERRS[out.wrk]=$(wrk_errors "$tmp/out.wrk.out" 2>/dev/null || echo "?")
CPU[out.wrk]=$(time_cpu out.wrk)
PEAK[out.wrk]=$(time_rss out.wrk)

out_result() {
  local key=$1
  RATE[$key]=$(kv "$tmp/$key.out" rate)
  CPU[$key]=$(time_cpu "$key")
  PEAK[$key]=$(time_rss "$key")
  ERRS[$key]=$(kv "$tmp/$key.out" bad)
  [ -n "${ERRS[$key]}" ] || ERRS[$key]="?"
}
# best_of <key> <command...>: run it BENCH_REPS times; keep the fastest run's figures (a short
# run on a shared machine is easily slowed by other work) and the largest peak RSS.
best_of() {
  local key=$1 rep best="" peak=0 r
  shift
  for rep in $(seq 1 "$REPS"); do
    timed "$key.$rep" "$@"
    r=$(kv "$tmp/$key.$rep.out" rate)
    [ -n "$r" ] || continue
    peak=$(awk -v a="$peak" -v b="$(time_rss "$key.$rep")" 'BEGIN { print (b > a) ? b : a }')
    if [ -z "$best" ] || [ "$r" -gt "$(kv "$tmp/$key.$best.out" rate)" ]; then best=$rep; fi
  done
  if [ -n "$best" ]; then
    cp "$tmp/$key.$best.out" "$tmp/$key.out"
    cp "$tmp/$key.$best.time" "$tmp/$key.time"
  fi
  out_result "$key"
  [ "$peak" = 0 ] || PEAK[$key]=$peak
}
for impl in "${lua_impls[@]}"; do
  best_of "out.$impl" env LUA_PATH="$LUAPATH" LUA_CPATH="${CPATHOF[$impl]}" \
    "${INTERP[$impl]}" bench/http_out.lua "$send_url"
done
best_of out.node "$NODE" bench/peer_node_out.js "$send_url"

# ---- inbound -------------------------------------------------------------------------------
# inbound <key> <pid>: idle RSS, wrk, CPU and peak RSS of the listener, then stop it.
inbound() {
  local key=$1 pid=$2 c0 c1
  sleep 0.3
  IDLE[$key]=$(proc_kb "$pid" VmRSS)
  c0=$(proc_cpu "$pid")
  run_wrk "$key" "$URL" "$webhook_body" "$sig_header"
  c1=$(proc_cpu "$pid")
  CPU[$key]=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
  PEAK[$key]=$(proc_kb "$pid" VmHWM)
  RATE[$key]=$(kv "$tmp/$key.out" rps)
  P99[$key]=$(kv "$tmp/$key.out" p99_ms)
  ERRS[$key]=$(wrk_errors "$tmp/$key.out" 2>/dev/null || echo "?")
}

# start_listener <key> <command...>: start it in the background, wait for its port.
start_listener() {
  local key=$1 pid
  shift
  say "running $key: $*"
  rm -f "$tmp/$key.port"
  BENCH_PORT_FILE="$tmp/$key.port" "$@" >"$tmp/$key.srv" 2>"$tmp/$key.srverr" &
  pid=$!
  pids+=("$pid")
  if ! wait_file "$tmp/$key.port" "$pid"; then
    fail "$key did not start"
    sed 's/^/  /' "$tmp/$key.srverr" >&2
    return 1
  fi
  LISTENER=$pid
  URL="http://127.0.0.1:$(cat "$tmp/$key.port")/webhook"
}

# stop_listener <key> <pid>: SIGTERM, wait, check its own count of failed requests.
stop_listener() {
  local key=$1 pid=$2 rc=0 failed
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    fail "$key listener exited with status $rc"
    sed 's/^/  /' "$tmp/$key.srverr" >&2
  fi
  failed=$(kv "$tmp/$key.srv" failed)
  if [ -n "$failed" ] && [ "$failed" != 0 ]; then
    ERRS[$key]=$(( ${ERRS[$key]:-0} + failed ))
  fi
}

# The floor: nginx answering 200 (its worker's CPU and RSS).
if [ -n "$nginx_worker" ]; then
  IDLE[in.nginx]=$(proc_kb "$nginx_worker" VmRSS)
  c0=$(proc_cpu "$nginx_worker")
fi
URL=$floor_url
run_wrk in.nginx "$floor_url" "$webhook_body" "$sig_header"
RATE[in.nginx]=$(kv "$tmp/in.nginx.out" rps)
P99[in.nginx]=$(kv "$tmp/in.nginx.out" p99_ms)
ERRS[in.nginx]=$(wrk_errors "$tmp/in.nginx.out" 2>/dev/null || echo "?")
if [ -n "$nginx_worker" ]; then
  CPU[in.nginx]=$(awk -v a="$c0" -v b="$(proc_cpu "$nginx_worker")" 'BEGIN { printf "%.2f", b - a }')
  PEAK[in.nginx]=$(proc_kb "$nginx_worker" VmHWM)
fi

for impl in "${lua_impls[@]}"; do
  if start_listener "in.$impl" env LUA_PATH="$LUAPATH" LUA_CPATH="${CPATHOF[$impl]}" \
      "${INTERP[$impl]}" bench/http_in.lua; then
    inbound "in.$impl" "$LISTENER"
    stop_listener "in.$impl" "$LISTENER"
  fi
done
if start_listener in.node "$NODE" bench/peer_node_in.js; then
  inbound in.node "$LISTENER"
  stop_listener in.node "$LISTENER"
fi

# ---- report --------------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
curl_v=$(env LUA_PATH="$LUAPATH" LUA_CPATH="${CPATHOF[$first_impl]}" "${INTERP[$first_impl]}" \
  -e 'io.write((require("whatsapp.http").curl_version()))' 2>/dev/null | cut -d' ' -f1 || true)
echo
echo "== HTTP runtime: outbound $BENCH_MESSAGES x 220 B POSTs, $BENCH_INFLIGHT in flight (best of $REPS);" \
  "inbound wrk -t$THREADS -c$CONNS -d$DURATION, $(wc -c <"$webhook_body") B signed webhook =="
echo "cpu: ${cpu_model:-unknown} ($(nproc) cores); load average before: $load_before (other work on" \
  "the machine makes these numbers noisy; CPU per message is the steadier figure);" \
  "${curl_v:-libcurl ?}; node $("$NODE" --version); nginx 1 worker"

mb() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "-"; }
row() {
  local dir=$1 name=$2 key=$3 unit=$4
  printf "%-9s %-30s %10s %-5s %8s %8s %9s %9s %7s\n" "$dir" "$name" "${RATE[$key]:-n/a}" "$unit" \
    "${P99[$key]:--}" "${CPU[$key]:--}" "$(mb "${PEAK[$key]:-}")" "$(mb "${IDLE[$key]:-}")" \
    "${ERRS[$key]:--}"
}
echo
printf "%-9s %-30s %10s %-5s %8s %8s %9s %9s %7s\n" "" "" "rate" "" "p99 ms" "CPU s" \
  "peak MB" "idle MB" "errors"
row outbound "wrk (ceiling)" out.wrk req/s
for impl in "${lua_impls[@]}"; do row outbound "whatsapp.http $impl" "out.$impl" msg/s; done
row outbound "node http keep-alive agent" out.node msg/s
row inbound "nginx return 200 (floor)" in.nginx req/s
for impl in "${lua_impls[@]}"; do row inbound "whatsapp.server $impl" "in.$impl" req/s; done
row inbound "node http + HMAC + JSON.parse" in.node req/s
echo "(CPU s: outbound = the client's user+sys for its whole run incl. startup (wrk: its own);"
echo " inbound = the server's user+sys during the wrk run. Peak = max RSS; idle = listener"
echo " RSS after startup, before load; nginx rows are its one worker.)"

echo
echo "targets:"
below=0
# check <label> <value> <op> <target> <unit>
check() {
  local label=$1 v=$2 op=$3 t=$4 unit=$5 verdict
  if [ -z "$v" ] || [ "$v" = "n/a" ]; then
    printf "  %-34s %10s      (target %s %s%s)  n/a\n" "$label" "-" "$op" "$t" "$unit"
    return
  fi
  verdict=$(awk -v v="$v" -v t="$t" -v op="$op" \
    'BEGIN { ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "OK" : "BELOW" }')
  [ "$verdict" = OK ] || below=$((below + 1))
  printf "  %-34s %10s%-5s (target %s %s%s)  %s\n" "$label" "$v" "$unit" "$op" "$t" "$unit" "$verdict"
}
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b == 0) print ""; else printf "%.2f", a / b }'; }
for impl in "${lua_impls[@]}"; do
  check "out $impl msg/s" "$(printf '%.0f' "${RATE[out.$impl]:-0}")" ">=" 25000 ""
  check "out $impl / node_http" "$(ratio "${RATE[out.$impl]:-}" "${RATE[out.node]:-}")" ">=" 1.7 x
  check "out $impl peak RSS MB" "$(mb "${PEAK[out.$impl]:-}")" "<=" 20 ""
done
for impl in "${lua_impls[@]}"; do
  check "in  $impl req/s" "$(printf '%.0f' "${RATE[in.$impl]:-0}")" ">=" 32000 ""
  check "in  $impl / node_http" "$(ratio "${RATE[in.$impl]:-}" "${RATE[in.node]:-}")" ">=" 1.3 x
  check "in  $impl idle RSS MB" "$(mb "${IDLE[in.$impl]:-}")" "<=" 10 ""
  check "in  $impl errors" "${ERRS[in.$impl]:-?}" "<=" 0 ""
done
echo "context:"
for impl in "${lua_impls[@]}"; do
  printf "  out %-7s = %5sx wrk,  %s us CPU per message\n" "$impl" \
    "$(ratio "${RATE[out.$impl]:-}" "${RATE[out.wrk]:-}")" \
    "$(awk -v c="${CPU[out.$impl]:-0}" -v n="$BENCH_MESSAGES" 'BEGIN { printf "%.1f", c / n * 1e6 }')"
  printf "  in  %-7s = %5sx nginx, %s us server CPU per request\n" "$impl" \
    "$(ratio "${RATE[in.$impl]:-}" "${RATE[in.nginx]:-}")" \
    "$(awk -v c="${CPU[in.$impl]:-0}" -v r="${RATE[in.$impl]:-0}" -v d="$(kv "$tmp/in.$impl.out" duration_s)" \
      'BEGIN { n = r * d; if (n > 0) printf "%.1f", c / n * 1e6; else print "-" }')"
done
printf "  out node    %s us CPU per message; in node %s us server CPU per request\n" \
  "$(awk -v c="${CPU[out.node]:-0}" -v n="$BENCH_MESSAGES" 'BEGIN { printf "%.1f", c / n * 1e6 }')" \
  "$(awk -v c="${CPU[in.node]:-0}" -v r="${RATE[in.node]:-0}" -v d="$(kv "$tmp/in.node.out" duration_s)" \
    'BEGIN { n = r * d; if (n > 0) printf "%.1f", c / n * 1e6; else print "-" }')"
echo "targets below: $below (a report: this does not fail the run)"

if [ "$status" != 0 ]; then echo "http.sh: some runs failed or had errors (see above)" >&2; fi
exit $status
