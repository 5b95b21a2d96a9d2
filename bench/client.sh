#!/usr/bin/env bash
# Client benchmark: what whatsapp.client costs over the raw transport, measured in the same run.
#
#   bash bench/client.sh            (make bench runs it after the HTTP benchmark)
#
# For each peer, nginx answering the Cloud API's fixed send response and the project's own
# simulator (a separate process), and each interpreter (lua5.4, luajit), one process
# (bench/client_out.lua paired) sends BENCH_MESSAGES (40000) text messages each way, 64 in
# flight: with whatsapp.http and a prebuilt body (raw, the floor) and through
# client:send_text (builder, validation, JSON encode, send, decode). It alternates the two in
# BENCH_ROUNDS (20) rounds, over one session. Reports messages/s, CPU seconds, the process's
# peak RSS, and the client's cost over raw:
#   overhead = median over rounds of cpu(client) / cpu(raw) - 1     (target: at most 0.30)
# with the quartiles. Why rounds: on this shared machine a whole run's CPU for the same work
# moves by up to 2x from one run to the next, while the two halves of a round run within a
# fraction of a second of each other. bench/client_instr.sh counts instructions per send
# instead (no noise at all), for comparing changes.
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_MESSAGES=${BENCH_MESSAGES:-40000}
export BENCH_ROUNDS=${BENCH_ROUNDS:-20}
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"
NGINX=${NGINX:-/usr/sbin/nginx}
. bench/graph_peers.sh

make -s build >/dev/null
make -s build LUA=luajit >/dev/null

start_graph_nginx
NPORT=$NGINX_PORT
start_graph_simulator
SPORT=$SIM_PORT

declare -A CPATH=([lua5.4]="./build/lua5.4/?.so;;" [luajit]="./build/luajit/?.so;;")

# paired <peer> <impl> <url>: one paired run, as
# "raw_rate raw_cpu client_rate client_cpu rss_mb median q1 q3"
paired() {
  local peer=$1 impl=$2 url=$3 out
  out=$(LUA_CPATH="${CPATH[$impl]}" /usr/bin/time -f "RSS %M" "$impl" bench/client_out.lua paired "$url" 2>&1) || {
    echo "client.sh: $peer $impl failed:" >&2; echo "$out" >&2; exit 1; }
  echo "$out" | awk '
    /^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                rate[f["mode"]] = f["rate"]; cpu[f["mode"]] = f["cpu"] }
    /^OVERHEAD/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); o[kv[1]] = kv[2] } }
    /^RSS/ { rss = $2 / 1024 }
    END { printf "%s %s %s %s %.1f %s %s %s\n", rate["raw"], cpu["raw"], rate["client"], cpu["client"],
                 rss, o["median"], o["q1"], o["q3"] }'
}

printf '== client vs raw transport: %d messages each way, 64 in flight, %d alternating rounds ==\n' \
  "$BENCH_MESSAGES" "$BENCH_ROUNDS"
printf '%-10s %-7s %10s %12s %8s %10s %7s %9s %16s %s\n' peer impl "raw msg/s" "client msg/s" \
  "raw cpu" "client cpu" "RSS MB" overhead "(quartiles)" "target <= 30%"
for peer in nginx simulator; do
  if [ $peer = nginx ]; then url="http://127.0.0.1:$NPORT"; else url="http://127.0.0.1:$SPORT"; fi
  for impl in lua5.4 luajit; do
    read -r rr rc cr cc rss med q1 q3 < <(paired $peer $impl "$url")
    [ -n "${q3:-}" ] || { echo "client.sh: $peer $impl failed" >&2; exit 1; }
    read -r ov quart verdict < <(awk -v m="$med" -v a="$q1" -v b="$q3" 'BEGIN {
      printf "%+.0f%% [%+.0f%%,%+.0f%%] %s\n", m * 100, a * 100, b * 100, (m <= 0.30) ? "PASS" : "ABOVE" }')
    printf '%-10s %-7s %10s %12s %8s %10s %7s %9s %16s %s\n' $peer $impl "$rr" "$cr" "$rc" "$cc" "$rss" \
      "$ov" "$quart" "$verdict"
  done
done
