/*
 * core.c - luaopen_whatsapp_core, the only symbol this shared object exports.
 *
 * whatsapp.core is the private C half of the library (mechanism only); the
 * public API is the Lua modules in lua/whatsapp/.  Each area registers its
 * functions into one module table: crypto (HMAC, signature check), webhook
 * (payload parser), loop (libevent base, timers, signals), http (libcurl
 * transport) and server (evhttp listener).
 */
#include "wa.h"

#include <lualib.h> /* LUA_JITLIBNAME tells LuaJIT apart */

#if defined(__GNUC__)
#define WA_EXPORT __attribute__((visibility("default")))
#else
#define WA_EXPORT
#endif

WA_EXPORT int luaopen_whatsapp_core(lua_State *L);

void wa_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	wa_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__close");
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
}

/* Pushes the module table; raises only on memory exhaustion. */
int luaopen_whatsapp_core(lua_State *L)
{
	lua_newtable(L);
	wa_crypto_open(L);
	wa_webhook_open(L);
	wa_loop_open(L);
	wa_http_open(L);   /* before server: it registers the headers metatable */
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
