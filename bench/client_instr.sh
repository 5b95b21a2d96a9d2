#!/usr/bin/env bash
# What one send costs in instructions (callgrind) and in garbage, for the raw transport and
# for client:send_text, so that changes to the client can be compared on a noisy machine
# where bench/client.sh's CPU seconds move by +-20% from run to run.
#
#   bash bench/client_instr.sh [lua5.4|luajit ...]          (default: lua5.4)
#
# For each interpreter and each mode of bench/client_out.lua (raw: whatsapp.http with a
# prebuilt body; client: client:send_text), against nginx answering the Cloud API's fixed
# send response (as bench/client.sh runs it), the project's simulator, or "stub" (no network:
# a Lua stand-in for the session answers at once, so only the Lua work of each path counts):
#   - runs the driver under valgrind --tool=callgrind with INSTR_SMALL and with INSTR_LARGE
#     messages, INSTR_REPS times each, and takes instructions per send =
#     (min I_large - min I_small) / (large - small): start-up, module loading and the
#     session's connection set-up cancel out. Against a real peer the count still moves by
#     a few per cent from run to run (how often the loop wakes up before an answer is
#     there); against the stub it is exact;
#   - runs it once more without valgrind, with the collector stopped (BENCH_GARBAGE=1), for
#     the kilobytes allocated per send.
# and prints
#   INSTR impl=<interp> peer=<peer> mode=<raw|client> per_send=I garbage_kb=G
#   INSTR impl=<interp> peer=<peer> client_over_raw=I (+P%)
# Callgrind counts user-space instructions of the client process only: the kernel's share
# of a send (socket calls) is not in it, so the percentage is higher than the CPU-time
# overhead bench/client.sh reports, whose floor includes the system time.
#
# Environment: INSTR_PEER (nginx | simulator | stub; default nginx), INSTR_SMALL (1000),
# INSTR_LARGE (4000), INSTR_REPS (3), INSTR_INFLIGHT (64), INSTR_INTERP (a command to run instead of the interpreter named, e.g.
# one linked from liblua5.4.a whose functions callgrind can name), INSTR_KEEP (a directory to
# keep the callgrind outputs in), INSTR_ANNOTATE=1 (print the top functions of the large
# client run). Needs valgrind; runs `make build` for the interpreters named.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PEER=${INSTR_PEER:-nginx}
SMALL=${INSTR_SMALL:-1000}
export BENCH_INFLIGHT=${INSTR_INFLIGHT:-64}
LARGE=${INSTR_LARGE:-4000}
REPS=${INSTR_REPS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"
impls=("$@")
[ "${#impls[@]}" -gt 0 ] || impls=(lua5.4)
command -v valgrind >/dev/null 2>&1 || { echo "client_instr.sh: valgrind not found" >&2; exit 2; }
[ "$LARGE" -gt "$SMALL" ] || { echo "client_instr.sh: INSTR_LARGE must exceed INSTR_SMALL" >&2; exit 2; }

. bench/graph_peers.sh

for impl in "${impls[@]}"; do
  if [ "$impl" = lua5.4 ]; then make -s build >/dev/null; else make -s build LUA="$impl" >/dev/null; fi
done

if [ "$PEER" = nginx ]; then
  start_graph_nginx
  port=$NGINX_PORT
elif [ "$PEER" = simulator ]; then
  start_graph_simulator
  port=$SIM_PORT
elif [ "$PEER" = stub ]; then
  port=""
else
  echo "client_instr.sh: INSTR_PEER must be nginx, simulator or stub" >&2; exit 2
fi
url="http://127.0.0.1:$port"
[ "$PEER" = stub ] && url=stub

# instructions <impl> <mode> <messages>: total instructions of one driver run under callgrind.
instructions_once() {
  local impl=$1 mode=$2 n=$3 out="$tmp/cg.$1.$2.$3" extra=()
  # LuaJIT patches its machine code in place (trace linking): valgrind must notice.
  [ "$impl" = luajit ] && extra=(--smc-check=all)
  LUA_CPATH="./build/$impl/?.so;;" BENCH_MESSAGES=$n \
    valgrind --tool=callgrind "${extra[@]}" --callgrind-out-file="$out" "${INSTR_INTERP:-$impl}" \
    bench/client_out.lua "$mode" "$url" >"$out.stdout" 2>"$out.stderr" ||
    { echo "client_instr.sh: $impl $mode $n failed:" >&2; cat "$out.stdout" "$out.stderr" >&2; exit 1; }
  local ins
  ins=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out")
  [ -n "$ins" ] || ins=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out")
  if [ -n "${INSTR_KEEP:-}" ]; then mkdir -p "$INSTR_KEEP"; cp "$out" "$INSTR_KEEP/"; fi
  echo "$ins"
}

# instructions <impl> <mode> <messages>: the least of REPS runs (noise only adds).
instructions() {
  local best="" i v
  for i in $(seq "$REPS"); do
    v=$(instructions_once "$@") || exit 1
    if [ -z "$best" ] || [ "$v" -lt "$best" ]; then best=$v; fi
  done
  echo "$best"
}

for impl in "${impls[@]}"; do
  declare -A per=()
  for mode in raw client; do
    small=$(instructions "$impl" "$mode" "$SMALL")
    large=$(instructions "$impl" "$mode" "$LARGE")
    per[$mode]=$(awk -v a="$small" -v b="$large" -v n="$SMALL" -v m="$LARGE" 'BEGIN { printf "%.0f", (b - a) / (m - n) }')
    g=$(LUA_CPATH="./build/$impl/?.so;;" BENCH_MESSAGES=$LARGE BENCH_GARBAGE=1 "$impl" bench/client_out.lua \
      "$mode" "$url" | sed -n 's/.* garbage_kb=\([0-9.]*\).*/\1/p')
    printf 'INSTR impl=%s peer=%s mode=%s per_send=%s garbage_kb=%s\n' "$impl" "$PEER" "$mode" "${per[$mode]}" "$g"
  done
  awk -v c="${per[client]}" -v r="${per[raw]}" -v i="$impl" -v p="$PEER" \
    'BEGIN { printf "INSTR impl=%s peer=%s client_over_raw=%d (%+.1f%%)\n", i, p, c - r, (c / r - 1) * 100 }'
  if [ "${INSTR_ANNOTATE:-0}" = 1 ]; then
    callgrind_annotate --inclusive=no --threshold=100 "$tmp/cg.$impl.client.$LARGE" 2>/dev/null | grep -v "'" |
      sed -n '/file:function/,+40p' | cut -c1-150
  fi
  unset per
done
