/*
 * compat.h - the small shim that lets one C source build against Lua 5.4 and
 * LuaJIT 2.1 (the Lua 5.1 C API that OpenResty embeds).
 *
 * We write to the 5.1 API and map the few 5.2+ conveniences onto our own
 * prefixed helpers.  Nothing here defines a lua_* or luaL_* symbol: LuaJIT
 * exports some 5.2 functions itself, and defining them again would clash at
 * link or load time.
 */
#ifndef WA_COMPAT_H
#define WA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 504
/* The table a userdata keeps (its first user value / its environment). */
#define wa_setuservalue(L, i) lua_setiuservalue((L), (i), 1)
#define wa_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define wa_setuservalue(L, i) lua_setuservalue((L), (i))
#define wa_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#else
#define wa_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#define wa_getuservalue(L, i) lua_getfenv((L), (i))
#endif

#if LUA_VERSION_NUM >= 502
#define wa_rawlen(L, i) lua_rawlen((L), (i))
#define wa_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#else
#define wa_rawlen(L, i) lua_objlen((L), (i))
/* Register every function of l into the table below the nup upvalues. */
static inline void wa_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	luaL_checkstack(L, nup + 1, "too many upvalues");
	for (; l->name != NULL; l++) {
		int i;
		for (i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}
#endif

/* Hide everything but luaopen_* from the shared object. */
#if defined(__GNUC__)
#define WA_HIDDEN __attribute__((visibility("hidden")))
#define WA_EXPORT __attribute__((visibility("default")))
#else
#define WA_HIDDEN
#define WA_EXPORT
#endif

#endif /* WA_COMPAT_H */
