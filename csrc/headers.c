/*
 * headers.c - the tables of HTTP headers Lua sees: those of a request to the
 * listener (server.c) and those of a response to the transport (http.c, in
 * whatsapp.core.http, which reaches these functions through the loop's
 * wa_loop_api).
 *
 * Names are stored in lower case; the "whatsapp.http.Headers" metatable's
 * __index lowers the name asked for, so lookups work in any case.  A repeated
 * header's values are joined with ", " (RFC 9110 5.3).
 */
#include "wa.h"

#include <string.h>

#define WA_HEADERS_MT "whatsapp.http.Headers"
#define WA_NAME_MAX 256 /* longer header names are kept as they are */

/* Pushes name in lower case (as it is when it is absurdly long). */
static void wa_push_lower(lua_State *L, const char *name, size_t n)
{
	char buf[WA_NAME_MAX];
	size_t i;
	if (n >= sizeof buf) {
		lua_pushlstring(L, name, n);
		return;
	}
	for (i = 0; i < n; i++) {
		char c = name[i];
		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	lua_pushlstring(L, buf, n);
}

static int wa_headers_index(lua_State *L)
{
	size_t n;
	const char *k;
	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	k = lua_tolstring(L, 2, &n);
	wa_push_lower(L, k, n);
	lua_rawget(L, 1);
	return 1;
}

void wa_headers_new(lua_State *L)
{
	lua_createtable(L, 0, 8);
	luaL_getmetatable(L, WA_HEADERS_MT);
	lua_setmetatable(L, -2);
}

void wa_headers_add(lua_State *L, const char *name, size_t nl, const char *value, size_t vl)
{
	wa_push_lower(L, name, nl);
	lua_pushvalue(L, -1);
	lua_rawget(L, -3);
	if (lua_isstring(L, -1)) {
		lua_pushliteral(L, ", ");
		lua_pushlstring(L, value, vl);
		lua_concat(L, 3);
	} else {
		lua_pop(L, 1);
		lua_pushlstring(L, value, vl);
	}
	lua_rawset(L, -3);
}

void wa_headers_open(lua_State *L)
{
	luaL_newmetatable(L, WA_HEADERS_MT);
	lua_pushcfunction(L, wa_headers_index);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
