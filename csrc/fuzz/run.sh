#!/bin/sh
# Build the libFuzzer target (clang, ASan + UBSan) and run it for $1 seconds
# (default 60) on a corpus seeded from the webhook and signature fixtures.
# $2 is the Lua it is built for: lua5.4 (the default) or luajit, whose build
# makes events from records (csrc/webhook.c, WA_RECORDS).
# Findings are written as csrc/fuzz/crash-* (git-ignored) and make this fail.
set -eu
secs=${1:-60}
lua=${2:-lua5.4}
case $lua in
lua5.4) inc=/usr/include/lua5.4 lib=-llua5.4 ;;
luajit) inc=/usr/include/luajit-2.1 lib=-lluajit-5.1 ;;
*) echo "run.sh: unknown Lua: $lua (lua5.4 or luajit)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/fuzz-$lua"
mkdir -p "$out" "$root/csrc/fuzz/corpus-work"
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
# The C++ bridge to simdjson first, then the C sources; clang++ links (libstdc++).
clang++ -g -O1 -std=c++17 $san -c -o "$out/json_tape.o" "$root/csrc/json_tape.cpp"
(cd "$out" && clang -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L $san -I"$inc" -c \
	"$root/csrc/fuzz/fuzz_webhook.c" "$root/csrc/core.c" "$root/csrc/crypto.c" \
	"$root/csrc/json.c" "$root/csrc/webhook.c" "$root/csrc/loop.c" "$root/csrc/headers.c" \
	"$root/csrc/server.c")
clang++ $san "$out"/*.o $lib -lsimdjson -levent -lcrypto -lm -o "$out/fuzz_webhook"
cp "$root"/spec/fixtures/webhooks/*.json "$root/csrc/fuzz/corpus-work/" 2>/dev/null || true
cp "$root"/csrc/fuzz/seeds/* "$root/csrc/fuzz/corpus-work/" 2>/dev/null || true
cd "$root/csrc/fuzz"
"$out/fuzz_webhook" -max_total_time="$secs" -max_len=65536 -timeout=10 \
	-dict="$root/csrc/fuzz/json.dict" -print_final_stats=1 corpus-work
