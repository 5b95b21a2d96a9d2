/*
 * json.c - turn subtrees of a JSON tape (jtape.h) into Lua values.
 */
#include "json.h"

/* ---- to Lua -------------------------------------------------------------- */

void wa_push_jnum(lua_State *L, const wa_tape *t, uint32_t i)
{
	switch (wa_jtype(t, i)) {
	case WA_J_INT:
#if LUA_VERSION_NUM >= 503
		lua_pushinteger(L, (lua_Integer)wa_jint(t, i));
#else
		lua_pushnumber(L, (lua_Number)wa_jint(t, i));
#endif
		return;
	case WA_J_UINT: /* above the integers Lua has */
		lua_pushnumber(L, (lua_Number)wa_juint(t, i));
		return;
	default:
		lua_pushnumber(L, (lua_Number)wa_jdbl(t, i));
	}
}

void wa_tape_push(lua_State *L, const wa_tape *t, uint32_t i)
{
	uint32_t k, j, end;
	switch (wa_jtype(t, i)) {
	case WA_J_NULL:
		lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
		return;
	case WA_J_FALSE:
		lua_pushboolean(L, 0);
		return;
	case WA_J_TRUE:
		lua_pushboolean(L, 1);
		return;
	case WA_J_INT:
	case WA_J_UINT:
	case WA_J_DBL:
		wa_push_jnum(L, t, i);
		return;
	case WA_J_STR:
		lua_pushlstring(L, wa_jstr(t, i), wa_jlen(t, i));
		return;
	case WA_J_ARR:
		/* Depth is bounded by WA_JSON_MAX_DEPTH, so the C recursion is too. */
		luaL_checkstack(L, 3, "JSON too deep");
		lua_createtable(L, (int)wa_jcount(t, i), 0);
		end = wa_jclose(t, i);
		for (j = i + 1, k = 1; j < end; j = wa_jskip(t, j), k++) {
			wa_tape_push(L, t, j);
			lua_rawseti(L, -2, (int)k);
		}
		return;
	case WA_J_OBJ:
		luaL_checkstack(L, 4, "JSON too deep");
		lua_createtable(L, 0, (int)wa_jcount(t, i));
		end = wa_jclose(t, i);
		for (j = i + 1; j < end; j = wa_jskip(t, j + 1)) {
			lua_pushlstring(L, wa_jstr(t, j), wa_jlen(t, j));
			wa_tape_push(L, t, j + 1);
			lua_rawset(L, -3); /* duplicate keys: the last one wins */
		}
		return;
	default:
		lua_pushnil(L);
	}
}
