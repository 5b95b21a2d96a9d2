#!/bin/sh
# Build the libFuzzer target (clang, ASan + UBSan) and run it for $1 seconds
# (default 60) on a corpus seeded from the webhook and signature fixtures.
# Findings are written as csrc/fuzz/crash-* (git-ignored) and make this fail.
set -eu
secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/fuzz"
mkdir -p "$out" "$root/csrc/fuzz/corpus-work"
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
# The C++ bridge to simdjson first, then the C sources; clang++ links (libstdc++).
clang++ -g -O1 -std=c++17 $san -c -o "$out/json_tape.o" "$root/csrc/json_tape.cpp"
(cd "$out" && clang -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L $san -I/usr/include/lua5.4 -c \
	"$root/csrc/fuzz/fuzz_webhook.c" "$root/csrc/core.c" "$root/csrc/crypto.c" \
	"$root/csrc/json.c" "$root/csrc/webhook.c" "$root/csrc/loop.c" "$root/csrc/headers.c" \
	"$root/csrc/server.c")
clang++ $san "$out"/*.o -llua5.4 -lsimdjson -levent -lcrypto -lm -o "$out/fuzz_webhook"
cp "$root"/spec/fixtures/webhooks/*.json "$root/csrc/fuzz/corpus-work/" 2>/dev/null || true
cp "$root"/csrc/fuzz/seeds/* "$root/csrc/fuzz/corpus-work/" 2>/dev/null || true
cd "$root/csrc/fuzz"
"$out/fuzz_webhook" -max_total_time="$secs" -max_len=65536 -timeout=10 \
	-dict="$root/csrc/fuzz/json.dict" -print_final_stats=1 corpus-work
