-- lua-whatsapp: the WhatsApp Cloud API for Lua, with a C core.
-- Offline install from a checkout:
--   luarocks --lua-version=5.4 make --deps-mode=none rockspec/lua-whatsapp-scm-1.rockspec
--   luarocks --lua-version=5.1 make --deps-mode=none rockspec/lua-whatsapp-scm-1.rockspec \
--       LUA_INCDIR=/usr/include/luajit-2.1
rockspec_format = "3.0"
package = "lua-whatsapp"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lua-whatsapp.git",
}
description = {
  summary = "WhatsApp Cloud API library with a C core: webhooks, signatures, Graph API",
  detailed = [[
Receives Meta's WhatsApp webhooks safely (constant-time X-Hub-Signature-256
check over the raw body, every message/status/change of a batch as flat
events) with the hot paths in C, for plain Lua 5.4 and OpenResty (LuaJIT).
A libevent loop drives a libcurl transport and an embedded HTTP listener;
code in loop tasks reads as straight-line Lua and waits without blocking.
]],
  license = "MIT",
  labels = { "whatsapp", "webhook", "openresty", "graph-api" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}
external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  SIMDJSON = { header = "simdjson.h", library = "simdjson" },
  -- Debian keeps curl.h under the multiarch include dir, which the compiler
  -- searches anyway: check only for the library.
  CURL = { library = "curl" },
  LIBEVENT = { header = "event2/http.h", library = "event" },
}
build = {
  type = "builtin",
  modules = {
    -- The core: crypto, webhook parser, loop, listener.  No libcurl here, so a process
    -- that only listens does not map it and the libraries it pulls in.
    ["whatsapp.core"] = {
      -- json_tape.cpp is the C++ bridge to simdjson; the compiler picks C++ by its name.
      sources = {
        "csrc/core.c", "csrc/crypto.c", "csrc/json.c", "csrc/json_tape.cpp", "csrc/webhook.c",
        "csrc/loop.c", "csrc/headers.c", "csrc/server.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "crypto", "simdjson", "event", "stdc++" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(SIMDJSON_INCDIR)", "$(LIBEVENT_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(SIMDJSON_LIBDIR)", "$(LIBEVENT_LIBDIR)" },
    },
    -- The libcurl transport, loaded by whatsapp.http on first use.
    ["whatsapp.core.http"] = {
      sources = { "csrc/http.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "event", "crypto" },
      incdirs = { "$(CURL_INCDIR)", "$(LIBEVENT_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(LIBEVENT_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["whatsapp"] = "lua/whatsapp/init.lua",
    ["whatsapp.errors"] = "lua/whatsapp/errors.lua",
    ["whatsapp.crypto"] = "lua/whatsapp/crypto.lua",
    ["whatsapp.webhook"] = "lua/whatsapp/webhook.lua",
    ["whatsapp.openresty"] = "lua/whatsapp/openresty.lua",
    ["whatsapp.loop"] = "lua/whatsapp/loop.lua",
    ["whatsapp.http"] = "lua/whatsapp/http.lua",
    ["whatsapp.server"] = "lua/whatsapp/server.lua",
    ["whatsapp.message"] = "lua/whatsapp/message.lua",
    ["whatsapp.validate"] = "lua/whatsapp/validate.lua",
    ["whatsapp.rate"] = "lua/whatsapp/rate.lua",
    ["whatsapp.client"] = "lua/whatsapp/client.lua",
    ["whatsapp.templates"] = "lua/whatsapp/templates.lua",
    ["whatsapp.simulator"] = "lua/whatsapp/simulator.lua",
    ["whatsapp.store"] = "lua/whatsapp/store.lua",
    ["whatsapp.bot"] = "lua/whatsapp/bot.lua",
    ["whatsapp.sandbox"] = "lua/whatsapp/sandbox.lua",
    ["whatsapp.testing"] = "lua/whatsapp/testing.lua",
  },
}
