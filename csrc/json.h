/*
 * json.h - JSON tapes (jtape.h, filled by simdjson in json_tape.cpp) turned
 * into Lua values.
 */
#ifndef WA_JSON_H
#define WA_JSON_H

#include "compat.h"
#include "jtape.h"

/* Push node i and its subtree as plain Lua values (null -> light userdata NULL). */
WA_HIDDEN void wa_tape_push(lua_State *L, const wa_tape *t, uint32_t i);

/* Push a number node as a Lua number (an integer when it is one that fits). */
WA_HIDDEN void wa_push_jnum(lua_State *L, const wa_tape *t, uint32_t i);

#endif /* WA_JSON_H */
