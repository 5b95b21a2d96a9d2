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
  YAJL = { header = "yajl/yajl_parse.h", library = "yajl" },
}
build = {
  type = "builtin",
  modules = {
    ["whatsapp.core"] = {
      sources = { "csrc/core.c", "csrc/crypto.c", "csrc/json.c", "csrc/webhook.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "crypto", "yajl" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(YAJL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(YAJL_LIBDIR)" },
    },
    ["whatsapp"] = "lua/whatsapp/init.lua",
    ["whatsapp.errors"] = "lua/whatsapp/errors.lua",
    ["whatsapp.crypto"] = "lua/whatsapp/crypto.lua",
    ["whatsapp.webhook"] = "lua/whatsapp/webhook.lua",
    ["whatsapp.openresty"] = "lua/whatsapp/openresty.lua",
  },
}
