#!/bin/sh
# Run the core-heavy specs under valgrind's memcheck with the normal -O2 build:
# any invalid read/write, use of uninitialised memory or definite leak fails.
# The nginx spec (its own processes) and the specs tagged slow are left out;
# the runtime specs (loop, http, server, GC) run with their #peer parts: nginx,
# curl and child Lua processes are separate processes valgrind does not trace.
set -eu
valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite \
	lua5.4 /usr/bin/busted --cpath='build/lua5.4/?.so' --exclude-tags=nginx,slow \
	spec/crypto_spec.lua spec/webhook_fixtures_spec.lua spec/webhook_verify_spec.lua \
	spec/webhook_hostile_spec.lua spec/core_spec.lua \
	spec/loop_spec.lua spec/runtime_gc_spec.lua spec/http_spec.lua spec/server_spec.lua
