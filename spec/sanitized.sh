#!/usr/bin/env bash
# Runs a command (a busted run with the AddressSanitizer runtime preloaded) and passes its exit
# status on, with one exception: when LeakSanitizer's own tracer crashed at exit ("LeakSanitizer
# has encountered a fatal error": it stops the process's threads with ptrace, and once, on a
# heavily loaded machine, crashed doing so after every spec had passed) and the run printed no
# sanitizer report and no failed spec, the run is repeated once. A leak, any other sanitizer
# report or a failing spec is never retried.
#
#   bash spec/sanitized.sh COMMAND [ARGS...]
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for attempt in 1 2; do
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  [ "$status" = 0 ] && exit 0
  if [ "$attempt" = 1 ] && grep -q 'LeakSanitizer has encountered a fatal error' "$log" &&
     ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error:' "$log" &&
     grep -qE '^[0-9]+ successes / 0 failures / 0 errors' "$log"; then
    echo "sanitized.sh: LeakSanitizer's tracer crashed after a clean run; running it once more" >&2
    continue
  fi
  exit "$status"
done
