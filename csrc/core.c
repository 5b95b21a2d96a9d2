/*
 * core.c - luaopen_whatsapp_core, the only symbol this shared object exports.
 *
 * whatsapp.core is the private C half of the library (mechanism only); the
 * public API is the Lua modules in lua/whatsapp/.  Each area registers its
 * functions into one module table: crypto (HMAC, signature check), webhook
 * (payload parser), loop (libevent base, timers, signals), headers (the
 * tables of request and response headers) and server (evhttp listener).  The
 * libcurl transport is a module of its own, whatsapp.core.http (http.c).
 */
#include "wa.h"

#include <lualib.h> /* LUA_JITLIBNAME tells LuaJIT apart */

WA_EXPORT int luaopen_whatsapp_core(lua_State *L);

/* Pushes the module table; raises only on memory exhaustion. */
int luaopen_whatsapp_core(lua_State *L)
{
	lua_newtable(L);
	wa_crypto_open(L);
	wa_webhook_open(L);
	wa_loop_open(L);
	wa_headers_open(L);
	wa_server_open(L);
	lua_pushliteral(L, WA_VERSION);
	lua_setfield(L, -2, "_VERSION");
#ifdef LUA_JITLIBNAME
	lua_pushliteral(L, "luajit");
#else
	lua_pushliteral(L, LUA_VERSION);
#endif
	lua_setfield(L, -2, "_LUA");
	return 1;
}
