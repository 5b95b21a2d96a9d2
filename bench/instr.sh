#!/usr/bin/env bash
# Per-request cost of the inbound listener in instructions (callgrind), for comparing changes
# on a noisy machine where req/s moves by +-25% from run to run.
#
# Starts bench/http_in.lua (whatsapp.server + hook:parse + no-op handler, as bench/http.sh
# does) under valgrind --tool=callgrind, zeroes the counters once it listens, lets wrk post
# the signed bench/bodies/single.json for INSTR_SECONDS (INSTR_CONNECTIONS connections: the
# slowed-down listener always has work queued), dumps, stops the listener, and prints
#   INSTR impl=<interp> requests=N instructions=I per_request=I/N
# N is the listener's own count (it includes the requests wrk had in flight when it stopped).
# Also prints the listener's idle RSS, measured without valgrind.
# With INSTR_ANNOTATE=1 it prints the top functions (callgrind_annotate) too.
#
#   bash bench/instr.sh [lua5.4|luajit ...]       (default: lua5.4)
# Environment: INSTR_SECONDS (20), INSTR_CONNECTIONS (32), INSTR_INTERP (the command to run
# instead of the interpreter named, e.g. one linked from liblua5.4.a, whose Lua functions
# callgrind can then name), INSTR_KEEP (a directory to
# keep the callgrind output in). Needs valgrind and wrk; run `make` (and `make LUA=luajit`).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SECS=${INSTR_SECONDS:-20}
CONNS=${INSTR_CONNECTIONS:-32}
export BENCH_APP_SECRET=${BENCH_APP_SECRET:-bench-app-secret-3f9a7c1e}
LUAPATH="./lua/?.lua;./lua/?/init.lua;;"
impls=("$@")
[ "${#impls[@]}" -gt 0 ] || impls=(lua5.4)

for cmd in valgrind callgrind_control wrk; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "instr.sh: $cmd not found (Debian: valgrind wrk)" >&2; exit 2; }
done

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# wait_port_file <file> <pid> <tries>: until the listener wrote its port.
wait_port_file() {
  local i
  for i in $(seq 1 "$3"); do
    if [ -s "$1" ]; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

body=bench/bodies/single.json
for impl in "${impls[@]}"; do
  cpath="./build/$impl/?.so;;"
  interp=${INSTR_INTERP:-$impl}
  sig=$(env LUA_PATH="$LUAPATH" LUA_CPATH="$cpath" BODY="$body" "$impl" -e '
    local f = assert(io.open(os.getenv("BODY"), "rb")); local b = f:read("*a"); f:close()
    io.write(require("whatsapp.webhook").sign(b, os.getenv("BENCH_APP_SECRET")))')

  # Idle RSS, plain run.
  rm -f "$tmp/port"
  env LUA_PATH="$LUAPATH" LUA_CPATH="$cpath" BENCH_PORT_FILE="$tmp/port" "$impl" bench/http_in.lua \
    >"$tmp/idle.out" 2>&1 &
  pid=$!
  wait_port_file "$tmp/port" "$pid" 100 || { cat "$tmp/idle.out" >&2; exit 1; }
  sleep 0.3
  idle=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""

  # Instructions per request, under callgrind.
  rm -f "$tmp/port" "$tmp"/cg.out*
  env LUA_PATH="$LUAPATH" LUA_CPATH="$cpath" BENCH_PORT_FILE="$tmp/port" \
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out.%p" "$interp" bench/http_in.lua \
    >"$tmp/srv.out" 2>"$tmp/srv.err" &
  pid=$!
  wait_port_file "$tmp/port" "$pid" 600 || { cat "$tmp/srv.err" >&2; exit 1; }
  callgrind_control -z "$pid" >/dev/null
  wrk -t1 -c"$CONNS" -d"$SECS"s --timeout 30s -s bench/wrk_post.lua \
    "http://127.0.0.1:$(cat "$tmp/port")/webhook" -- "$body" "X-Hub-Signature-256: $sig" >"$tmp/wrk.out"
  sleep 2 # the requests still in flight when wrk stopped
  callgrind_control -d "$pid" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || { cat "$tmp/srv.err" >&2; exit 1; }
  pid=""
  grep -q ' err_connect=0 .* err_status=0 err_timeout=0 ' "$tmp/wrk.out" ||
    { echo "instr.sh: wrk saw errors:" >&2; cat "$tmp/wrk.out" >&2; exit 1; }
  reqs=$(sed -n 's/^RESULT .* requests=\([0-9]*\).*/\1/p' "$tmp/srv.out")
  # The dump taken by callgrind_control -d (the one whose name has a part number).
  dump=$(ls "$tmp"/cg.out.*.1 2>/dev/null | head -n1)
  [ -n "$dump" ] || { echo "instr.sh: no callgrind dump" >&2; ls "$tmp" >&2; exit 1; }
  ins=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dump")
  [ -n "$ins" ] || ins=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump")
  printf "INSTR impl=%s requests=%s instructions=%s per_request=%.0f idle_rss_kb=%s\n" \
    "$impl" "$reqs" "$ins" "$(awk -v i="$ins" -v r="$reqs" 'BEGIN { print i / r }')" "$idle"
  if [ "${INSTR_ANNOTATE:-0}" = 1 ]; then
    callgrind_annotate --inclusive=no --threshold=100 "$dump" 2>/dev/null | grep -v "'" |
      sed -n '/file:function/,+45p' | cut -c1-150
  fi
  if [ -n "${INSTR_KEEP:-}" ]; then mkdir -p "$INSTR_KEEP"; cp "$dump" "$INSTR_KEEP/callgrind.$impl.out"; fi
done
