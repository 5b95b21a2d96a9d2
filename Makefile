# lua-whatsapp: build, test, bench.  `make help` lists the targets.
#
# Knobs are ?= and take LuaRocks' names, so `make LUA=luajit` or
# `make LUA_INCDIR=/usr/include/luajit-2.1` both work.  The build goes to
# build/$(LUA)/whatsapp/core.so and build/$(LUA)/whatsapp/core/http.so, so
# Lua 5.4 and LuaJIT builds live side by side.
#
# Two C modules: whatsapp.core (crypto, webhook parser, loop, listener: links
# libevent, libcrypto, simdjson) and whatsapp.core.http (the libcurl transport,
# loaded by whatsapp.http on first use), so a process that only listens never
# maps libcurl and the thirty-odd libraries it pulls in.

LUA        ?= lua5.4
ifeq ($(LUA),luajit)
LUA_INCDIR ?= /usr/include/luajit-2.1
else
LUA_INCDIR ?= /usr/include/$(LUA)
endif
# OpenResty spells it this way.
ifdef LUA_INCLUDE_DIR
LUA_INCDIR := $(LUA_INCLUDE_DIR)
endif
CC         ?= cc
# The one C++ file (csrc/json_tape.cpp, the bridge to simdjson) uses the
# compiler that goes with CC.
ifeq ($(findstring clang,$(CC)),clang)
CXX        := clang++
else
CXX        := g++
endif
CFLAGS     ?= -O2 -g
LIBFLAG    ?= -shared
WARNFLAGS  ?= -std=c99 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
PKG_CONFIG ?= pkg-config
SSL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
SSL_LIBS   := $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
JSON_LIBS  ?= -lsimdjson
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS  := $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
EVENT_LIBS := $(shell $(PKG_CONFIG) --libs libevent 2>/dev/null || echo -levent)
BUILD      ?= build/$(LUA)
SAN        ?=

# Where `make install` puts things (LuaRocks passes its own).
PREFIX     ?= /usr/local
LUAVER     ?= 5.4
LUADIR     ?= $(PREFIX)/share/lua/$(LUAVER)
LIBDIR     ?= $(PREFIX)/lib/lua/$(LUAVER)

SRCS := csrc/core.c csrc/crypto.c csrc/json.c csrc/webhook.c csrc/loop.c csrc/headers.c \
	csrc/server.c
CXX_SRCS := csrc/json_tape.cpp
HTTP_SRCS := csrc/http.c
HDRS := csrc/compat.h csrc/wa.h csrc/json.h csrc/jtape.h
CORE := $(BUILD)/whatsapp/core.so
HTTP := $(BUILD)/whatsapp/core/http.so

ALL_CFLAGS = $(WARNFLAGS) $(CFLAGS) $(SAN) -fPIC -fvisibility=hidden \
	-D_POSIX_C_SOURCE=200809L -I$(LUA_INCDIR) $(SSL_CFLAGS) $(CURL_CFLAGS)
CXXWARNFLAGS ?= -std=c++17 -Wall -Wextra -Werror -Wshadow
ALL_CXXFLAGS = $(CXXWARNFLAGS) $(CFLAGS) $(SAN) -fPIC -fvisibility=hidden
# Link only the libraries a module calls directly (Debian's toolchain does
# this by default; say it for the others).
AS_NEEDED  ?= -Wl,--as-needed

.PHONY: all build deps test test-quick spec spec-luajit lint asan asan-luajit valgrind rock \
	nginx-test bench fuzz run clean help

all: build
build: $(CORE) $(HTTP)

JSON_OBJ := $(BUILD)/json_tape.o
$(JSON_OBJ): $(CXX_SRCS) csrc/jtape.h Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) -c -o $@ $(CXX_SRCS)

$(CORE): $(SRCS) $(JSON_OBJ) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(SRCS) $(JSON_OBJ) $(AS_NEEDED) $(JSON_LIBS) \
		$(EVENT_LIBS) $(SSL_LIBS) -lstdc++

$(HTTP): $(HTTP_SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(HTTP_SRCS) $(AS_NEEDED) $(CURL_LIBS) $(EVENT_LIBS) $(SSL_LIBS)

help:
	@echo "make run          the sandbox: chat page + example bot (BOT=menu|echo|orders); WA_* vars: the real API"
	@echo "make test         install missing Debian packages, then every check"
	@echo "make deps         install the Debian packages the project needs (as root)"
	@echo "make / make LUA=luajit   build whatsapp.core for Lua 5.4 / LuaJIT"
	@echo "make spec spec-luajit lint asan asan-luajit valgrind rock   the parts of make test"
	@echo "make bench        the benchmarks (webhook parse; HTTP out and in);  make fuzz FUZZ_SECONDS=60 (each Lua)"

deps:
	@sh .ci/deps.sh

# Everything CI runs.
test:
	@sh .ci/deps.sh test
	$(MAKE) test-quick
	$(MAKE) asan
	$(MAKE) asan-luajit
	$(MAKE) valgrind
	$(MAKE) rock
	@echo "make test: all checks passed"

test-quick: lint
	$(MAKE) build
	$(MAKE) build LUA=luajit
	$(MAKE) build CC=clang BUILD=build/clang          # warning-free under clang too
	$(MAKE) build CC=clang LUA=luajit BUILD=build/clang-luajit
	$(MAKE) spec
	$(MAKE) spec-luajit

BUSTED ?= /usr/bin/busted
spec: build
	$(MAKE) build LUA=luajit  # the nginx spec loads the LuaJIT build
	lua5.4 $(BUSTED) --cpath='build/lua5.4/?.so' $(BUSTED_ARGS)

spec-luajit:
	$(MAKE) build LUA=luajit
	luajit $(BUSTED) --cpath='build/luajit/?.so' --exclude-tags=nginx $(BUSTED_ARGS)

lint:
	luacheck -q lua spec bench examples

# The specs again with AddressSanitizer + UBSan in the core (interpreter uninstrumented,
# so the runtime is preloaded).  nginx runs its own LuaJIT build and is left out.
ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
# The build options and the command prefix both sanitized runs share.
ASAN_BUILD = CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
ASAN_RUN = bash spec/sanitized.sh env LD_PRELOAD=$(ASAN_LIB) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan:
	$(MAKE) build LUA=lua5.4 BUILD=build/asan $(ASAN_BUILD)
	$(ASAN_RUN) lua5.4 $(BUSTED) --cpath='build/asan/?.so' --exclude-tags=nginx,slow $(BUSTED_ARGS)

# The LuaJIT build has C paths of its own (the walk's records for the builder, WA_RECORDS):
# the webhook, core and crypto specs under luajit with that build instrumented too.
asan-luajit:
	$(MAKE) build LUA=luajit BUILD=build/asan-luajit $(ASAN_BUILD)
	$(ASAN_RUN) luajit $(BUSTED) --cpath='build/asan-luajit/?.so' --exclude-tags=nginx,slow \
		spec/core_spec.lua spec/crypto_spec.lua spec/webhook_fixtures_spec.lua \
		spec/webhook_hostile_spec.lua spec/webhook_verify_spec.lua spec/openapi_webhooks_spec.lua \
		spec/abi_events_spec.lua

valgrind: build
	sh spec/valgrind.sh

rock:
	sh spec/rock.sh

nginx-test: build
	$(MAKE) build LUA=luajit
	lua5.4 $(BUSTED) --cpath='build/lua5.4/?.so' --tags=nginx

bench: build
	$(MAKE) build LUA=luajit
	bash bench/run.sh
	bash bench/http.sh
	bash bench/client.sh
	bash bench/bot_load.sh

FUZZ_SECONDS ?= 60
fuzz:
	sh csrc/fuzz/run.sh $(FUZZ_SECONDS) lua5.4
	sh csrc/fuzz/run.sh $(FUZZ_SECONDS) luajit

BOT ?= menu
run: deps build
	lua5.4 examples/run.lua $(BOT)

install: build
	mkdir -p $(DESTDIR)$(LUADIR)/whatsapp $(DESTDIR)$(LIBDIR)/whatsapp/core
	cp lua/whatsapp/*.lua $(DESTDIR)$(LUADIR)/whatsapp/
	cp $(CORE) $(DESTDIR)$(LIBDIR)/whatsapp/core.so
	cp $(HTTP) $(DESTDIR)$(LIBDIR)/whatsapp/core/http.so

clean:
	rm -rf build
