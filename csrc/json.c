/*
 * json.c - turn subtrees of a JSON tape (jtape.h) into Lua values.
 */
#include "json.h"

/* ---- to Lua -------------------------------------------------------------- */

void wa_push_jnum(lua_State *L, const wa_jnode *nd)
{
	switch (nd->num) {
	case WA_JN_INT:
#if LUA_VERSION_NUM >= 503
		lua_pushinteger(L, (lua_Integer)nd->u.i);
#else
		lua_pushnumber(L, (lua_Number)nd->u.i);
#endif
		return;
	case WA_JN_UINT: /* above the integers Lua has */
		lua_pushnumber(L, (lua_Number)nd->u.u);
		return;
	default:
		lua_pushnumber(L, (lua_Number)nd->u.d);
	}
}

void wa_tape_push(lua_State *L, const wa_tape *t, uint32_t i)
{
	const wa_jnode *nd = &t->nodes[i];
	uint32_t k, j, end;
	switch (nd->type) {
	case WA_J_NULL:
		lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
		return;
	case WA_J_FALSE:
		lua_pushboolean(L, 0);
		return;
	case WA_J_TRUE:
		lua_pushboolean(L, 1);
		return;
	case WA_J_NUM:
		wa_push_jnum(L, nd);
		return;
	case WA_J_STR:
		lua_pushlstring(L, nd->u.p, nd->len);
		return;
	case WA_J_ARR:
		/* Depth is bounded by WA_JSON_MAX_DEPTH, so the C recursion is too. */
		luaL_checkstack(L, 3, "JSON too deep");
		lua_createtable(L, (int)nd->len, 0);
		for (j = i + 1, k = 1; j < nd->u.next; j = wa_jskip(t, j), k++) {
			wa_tape_push(L, t, j);
			lua_rawseti(L, -2, (int)k);
		}
		return;
	case WA_J_OBJ:
		luaL_checkstack(L, 4, "JSON too deep");
		lua_createtable(L, 0, (int)nd->len);
		end = nd->u.next;
		for (j = i + 1; j < end; j = wa_jskip(t, j + 1)) {
			lua_pushlstring(L, t->nodes[j].u.p, t->nodes[j].len);
			wa_tape_push(L, t, j + 1);
			lua_rawset(L, -3); /* duplicate keys: the last one wins */
		}
		return;
	default:
		lua_pushnil(L);
	}
}
