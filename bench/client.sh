#!/usr/bin/env bash
# Client benchmark: what whatsapp.client costs over the raw transport, measured in the same run.
#
#   bash bench/client.sh            (make bench runs it after the HTTP benchmark)
#
# For each peer, nginx answering the Cloud API's fixed send response and the project's own
# simulator (a separate process), and each interpreter (lua5.4, luajit): BENCH_MESSAGES (20000)
# text messages, 64 in flight, once with whatsapp.http and a prebuilt body (raw, the floor),
# once through client:send_text (builder, validation, JSON encode, send, decode). Reports
# messages/s, client CPU seconds, peak RSS, and the client's cost over raw:
#   overhead = cpu(client) / cpu(raw) - 1     (target: at most 0.30)
# The machine is shared and noisy: raw and client run BENCH_REPS (3) times each, alternating,
# and each figure is the best of its runs (the highest rate, the least CPU, taken separately).
# bench/client_instr.sh counts instructions per send instead, for comparing changes.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${BENCH_REPS:-3}
export BENCH_MESSAGES=${BENCH_MESSAGES:-20000}
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"
NGINX=${NGINX:-/usr/sbin/nginx}
NDK=/usr/lib/nginx/modules/ndk_http_module.so
tmp=$(mktemp -d)
. bench/graph_peers.sh
cleanup() {
  stop_graph_peers
  rm -rf "$tmp"
}
trap cleanup EXIT

make -s build >/dev/null
make -s build LUA=luajit >/dev/null

start_graph_nginx
NPORT=$NGINX_PORT
start_graph_simulator
SPORT=$SIM_PORT

declare -A CPATH=([lua5.4]="./build/lua5.4/?.so;;" [luajit]="./build/luajit/?.so;;")

# once <peer> <impl> <mode> <url>: one run, as "rate cpu rss"
once() {
  local peer=$1 impl=$2 mode=$3 url=$4 out
  out=$(LUA_CPATH="${CPATH[$impl]}" /usr/bin/time -f "RSS %M" "$impl" bench/client_out.lua "$mode" "$url" 2>&1) || {
    echo "client.sh: $peer $impl $mode failed:" >&2; echo "$out" >&2; exit 1; }
  echo "$(echo "$out" | sed -n 's/.* rate=\([0-9.]*\).*/\1/p')" \
    "$(echo "$out" | sed -n 's/.* cpu=\([0-9.]*\).*/\1/p')" \
    "$(echo "$out" | awk '/^RSS/ {printf "%.1f", $2/1024}')"
}

# pair <peer> <impl> <url>: REPS runs of raw and client, alternating (so that a change in
# the machine's load hits both alike); the best rate and the least CPU of each, each taken
# on its own (noise only adds CPU), and the client's peak RSS:
# "raw_rate raw_cpu client_rate client_cpu client_rss"
pair() {
  local peer=$1 impl=$2 url=$3 rr=0 rc="" cr=0 cc="" cm=0 r c m
  for _ in $(seq "$REPS"); do
    read -r r c m < <(once "$peer" "$impl" raw "$url")
    [ -n "$r" ] || exit 1
    rr=$(awk -v a="$r" -v b="$rr" 'BEGIN { print (a > b) ? a : b }')
    rc=$(awk -v a="$c" -v b="$rc" 'BEGIN { print (b == "" || a < b) ? a : b }')
    read -r r c m < <(once "$peer" "$impl" client "$url")
    [ -n "$r" ] || exit 1
    cr=$(awk -v a="$r" -v b="$cr" 'BEGIN { print (a > b) ? a : b }')
    cc=$(awk -v a="$c" -v b="$cc" 'BEGIN { print (b == "" || a < b) ? a : b }')
    cm=$(awk -v a="$m" -v b="$cm" 'BEGIN { print (a > b) ? a : b }')
  done
  echo "$rr $rc $cr $cc $cm"
}

printf '== client vs raw transport: %d messages, 64 in flight, best of %d alternating runs ==\n' "$BENCH_MESSAGES" "$REPS"
printf '%-10s %-7s %12s %12s %10s %10s %10s %10s\n' peer impl "raw msg/s" "client msg/s" "raw cpu" "client cpu" "RSS MB" overhead
for peer in nginx simulator; do
  if [ $peer = nginx ]; then url="http://127.0.0.1:$NPORT"; else url="http://127.0.0.1:$SPORT"; fi
  for impl in lua5.4 luajit; do
    read -r rr rc cr cc cm < <(pair $peer $impl "$url")
    [ -n "${cm:-}" ] || { echo "client.sh: $peer $impl failed" >&2; exit 1; }
    ov=$(awk -v c="$cc" -v r="$rc" 'BEGIN{printf "%+.0f%%", (c/r-1)*100}')
    printf '%-10s %-7s %12s %12s %10s %10s %10s %10s\n' $peer $impl "$rr" "$cr" "$rc" "$cc" "$cm" "$ov"
  done
done
