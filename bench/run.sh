#!/usr/bin/env bash
# Webhook-ingest benchmark report (what `make bench` runs).
#
# Builds nothing: run `make` and `make LUA=luajit` first. Runs bench/webhook.lua under lua5.4
# and under luajit (whatsapp.webhook's hook:parse and the pure-Lua peer, same process), then the
# Node peer (bench/peer_node.js), BENCH_ROUNDS times in turn (so that a quiet or a busy spell
# of this shared machine is not all one implementation's), and prints one table, each figure
# the best round's (noise only adds time), plus the ratios against the targets:
#   vs pure Lua (same interpreter): >= 3x on both bodies
#   vs Node: >= 2x on the single message, >= 1.3x on the batch
# It is a report, not a test: a ratio below its target prints BELOW but does not fail the
# script. It exits non-zero only when a run fails or the implementations disagree on the events.
#
# Environment: BENCH_SECONDS (per measurement, default 0.5), BENCH_REPS (default 5: each round's
# figure is the median of that many interleaved measurements), BENCH_ROUNDS (default 3),
# LUA54 / LUAJIT / NODE (interpreter commands; defaults lua5.4, luajit, node).
# Peak RSS comes from /usr/bin/time (Debian package "time") when it is installed.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

LUA54=${LUA54:-lua5.4}
LUAJIT=${LUAJIT:-luajit}
NODE=${NODE:-node}
export BENCH_SECONDS=${BENCH_SECONDS:-0.5}
export BENCH_REPS=${BENCH_REPS:-5}
ROUNDS=${BENCH_ROUNDS:-3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_time=0
if [ -x /usr/bin/time ]; then have_time=1; fi

status=0

# run <label> <command...>: stdout to $tmp/<label>.out, stderr to $tmp/<label>.err,
# peak RSS (KiB) to $tmp/<label>.rss
run() {
  local label=$1
  shift
  echo "running $label: $*" >&2
  local rc=0
  if [ "$have_time" = 1 ]; then
    /usr/bin/time -f '%M' -o "$tmp/$label.rss" "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" || rc=$?
  else
    "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" || rc=$?
  fi
  if [ "$rc" != 0 ]; then
    echo "FAILED: $label exited with status $rc" >&2
    rm -f "$tmp/$label.rss"
    sed 's/^/  /' "$tmp/$label.err" >&2
    status=1
  fi
}

lua_run() {
  local label=$1 interp=$2 builddir=$3
  local peer_only=0
  if [ ! -f lua/whatsapp/webhook.lua ] || [ ! -f "$builddir/whatsapp/core.so" ]; then
    echo "NOTE: lua/whatsapp/webhook.lua or $builddir/whatsapp/core.so missing;" \
         "timing only the pure-Lua peer under $interp" >&2
    peer_only=1
  fi
  run "$label" env BENCH_PEER_ONLY=$peer_only \
    LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$builddir/?.so;;" \
    "$interp" bench/webhook.lua
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

for r in $(seq "$ROUNDS"); do
  lua_run "lua54_$r" "$LUA54" build/lua5.4
  lua_run "luajit_$r" "$LUAJIT" build/luajit
  run "node_$r" "$NODE" bench/peer_node.js
done

cat "$tmp"/*.out | grep -h '^RESULT' >"$tmp/results" || true
# peak RSS of a label over its rounds
peak_rss() { cat "$tmp"/"$1"_*.rss 2>/dev/null | sort -n | tail -n1; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo
echo "== webhook ingest: ns per call, signature check included (best of $ROUNDS rounds, each the median of $BENCH_REPS x ~${BENCH_SECONDS} s) =="
version() {
  if command -v "$1" >/dev/null 2>&1; then
    { "$@" 2>&1 || true; } | head -n1 | cut -d' ' -f1-2
  else
    echo "$1 (not found)"
  fi
}
echo "cpu: ${cpu:-unknown} ($(nproc) cores); $(version "$LUA54" -v); $(version "$LUAJIT" -v);" \
     "node $(version "$NODE" --version)"
echo "load average before the runs: $load_before (other work on the machine makes the numbers noisy)"

awk -v rss54="$(peak_rss lua54)" -v rssjit="$(peak_rss luajit)" -v rssnode="$(peak_rss node)" '
function val(s,   i, kv) {
  # the fields of one RESULT line into the array F
  delete F
  for (i = 2; i <= NF; i++) { split($i, kv, "="); F[kv[1]] = kv[2] }
}
function cell(key) { return (key in NS) ? sprintf("%.0f", NS[key]) : "n/a" }
function ratio(label, num, den, target,   r, verdict) {
  if (!(num in NS) || !(den in NS)) {
    printf "  %-7s %-26s %8s  (target >= %sx)  n/a\n", body, label, "-", target
    return
  }
  r = NS[num] / NS[den]
  verdict = (r >= target) ? "PASS" : "BELOW"
  if (verdict == "BELOW") below++
  printf "  %-7s %-26s %7.2fx  (target >= %sx)  %s\n", body, label, r, target, verdict
}
{
  val()
  key = F["body"] SUBSEP F["interp"] SUBSEP F["impl"]
  if (!(key in NS) || F["ns"] + 0 < NS[key] + 0) NS[key] = F["ns"]
  BYTES[F["body"]] = F["bytes"]
  if (!(F["body"] in EVENTS)) { EVENTS[F["body"]] = F["events"]; CHECK[F["body"]] = F["check"] }
  else if (EVENTS[F["body"]] != F["events"] || CHECK[F["body"]] != F["check"]) {
    MISMATCH = MISMATCH sprintf("  %s: %s/%s gives %s events (ids %s), expected %s (ids %s)\n",
      F["body"], F["interp"], F["impl"], F["events"], F["check"], EVENTS[F["body"]], CHECK[F["body"]])
  }
}
END {
  nb = split("single batch", bodies, " ")
  printf "\n%-7s %6s %6s %14s %14s %14s %14s %10s\n", "body", "bytes", "events",
    "whatsapp 5.4", "whatsapp jit", "pure Lua 5.4", "pure Lua jit", "node"
  for (b = 1; b <= nb; b++) {
    body = bodies[b]
    printf "%-7s %6s %6s %14s %14s %14s %14s %10s\n", body, BYTES[body], EVENTS[body],
      cell(body SUBSEP "lua5.4" SUBSEP "whatsapp"), cell(body SUBSEP "luajit" SUBSEP "whatsapp"),
      cell(body SUBSEP "lua5.4" SUBSEP "purelua"), cell(body SUBSEP "luajit" SUBSEP "purelua"),
      cell(body SUBSEP "node" SUBSEP "node")
  }
  print "\nspeed-up of whatsapp (higher is better):"
  below = 0
  for (b = 1; b <= nb; b++) {
    body = bodies[b]
    node_target = (body == "single") ? 2 : 1.3
    w54 = body SUBSEP "lua5.4" SUBSEP "whatsapp"; wjit = body SUBSEP "luajit" SUBSEP "whatsapp"
    ratio("lua5.4 vs pure Lua 5.4", body SUBSEP "lua5.4" SUBSEP "purelua", w54, 3)
    ratio("luajit vs pure Lua jit", body SUBSEP "luajit" SUBSEP "purelua", wjit, 3)
    ratio("lua5.4 vs node", body SUBSEP "node" SUBSEP "node", w54, node_target)
    ratio("luajit vs node", body SUBSEP "node" SUBSEP "node", wjit, node_target)
  }
  printf "\npeak RSS (KiB): lua5.4 run %s, luajit run %s, node run %s\n",
    (rss54 != "" ? rss54 : "n/a"), (rssjit != "" ? rssjit : "n/a"), (rssnode != "" ? rssnode : "n/a")
  if (MISMATCH != "") {
    printf "\nEVENT MISMATCH between implementations:\n%s", MISMATCH
    exit 3
  }
  print "\nevents: every implementation returned the same count, kinds and ids on both bodies"
  printf "targets: %d below\n", below
}' "$tmp/results" || status=1

if cat "$tmp"/lua54_*.err "$tmp"/luajit_*.err 2>/dev/null | grep -q '^WARN'; then
  echo
  echo "warnings (field differences between whatsapp.webhook and the pure-Lua peer):"
  cat "$tmp"/lua54_*.err "$tmp"/luajit_*.err | grep -h '^WARN' | sort -u | sed 's/^/  /'
fi

exit $status
