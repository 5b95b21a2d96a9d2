/*
 * wa.h - internal declarations shared by the C core's areas.
 *
 * Each area (crypto.c, webhook.c, json.c) registers its functions into the
 * module table with wa_<area>_open(L).  Only luaopen_whatsapp_core (core.c)
 * is exported from the shared object.
 */
#ifndef WA_H
#define WA_H

#include "compat.h"
#include <stddef.h>

#define WA_VERSION "0.1.0"

/* Registrars: each takes the module table at the top of the stack. */
WA_HIDDEN void wa_crypto_open(lua_State *L);
WA_HIDDEN void wa_webhook_open(lua_State *L);
WA_HIDDEN void wa_loop_open(lua_State *L);
WA_HIDDEN void wa_http_open(lua_State *L);
WA_HIDDEN void wa_server_open(lua_State *L);

/* Headers tables (http.c): names in lower case, looked up in any case
 * through the "whatsapp.http.Headers" metatable.  wa_headers_new pushes an
 * empty one; wa_headers_add adds a header to the table on top, joining a
 * repeated name's values with ", ".  Both may raise (memory). */
WA_HIDDEN void wa_headers_new(lua_State *L);
WA_HIDDEN void wa_headers_add(lua_State *L, const char *name, size_t nl,
			      const char *value, size_t vl);

/* Registers the metatable of a userdata type: name (also its __name), an
 * __index table of methods, and gc as __gc and __close.  Leaves the stack as
 * it was. */
WA_HIDDEN void wa_class(lua_State *L, const char *name, const luaL_Reg *methods,
			lua_CFunction gc);

/* ---- The event loop, shared by http.c and server.c (loop.c) ---------------
 *
 * One libevent base.  Callbacks reach Lua on T, a thread the loop creates and
 * anchors, always under lua_pcall: a Lua error never unwinds through libevent
 * or libcurl; it goes to the loop's reporter (a Lua function) instead.
 *
 * Everything that waits for an answer (a transfer, a timer, a request to the
 * listener) holds a "token": any Lua value (a coroutine or a function) kept in
 * the loop's refs table.  Completion calls dispatch(token, ...), a Lua function
 * the Lua layer installs, which resumes or calls the token.
 */
struct event_base;
struct event;
typedef struct wa_deferred wa_deferred;

typedef struct wa_loop {
	struct event_base *base;
	lua_State *T;        /* the thread callbacks run on */
	int thread_ref;      /* registry: T */
	int refs_ref;        /* registry: table of tokens */
	int dispatch_ref;    /* registry: dispatch(token, ...) or LUA_NOREF */
	int report_ref;      /* registry: report(err) or LUA_NOREF */
	struct event *defer_ev;
	wa_deferred *defer_head, *defer_tail;
	long alive;          /* pending transfers, timers, deferred results, listeners */
	int users;           /* sessions, listeners, timers that point here */
	int running;         /* inside event_base_loop */
	int stopping;        /* loop:stop() asked run() to return */
	int closed;
} wa_loop;

/* The loop of the userdata at idx; raises if it is not one or is closed. */
WA_HIDDEN wa_loop *wa_loop_check(lua_State *L, int idx);
/* Pops the value on top of L into the refs table; returns its ref. */
WA_HIDDEN int wa_loop_ref(wa_loop *lp, lua_State *L);
WA_HIDDEN void wa_loop_unref(wa_loop *lp, lua_State *L, int ref);
/* Pushes dispatch and the token of ref on T (inside a wa_loop_call). */
WA_HIDDEN void wa_loop_push_dispatch(wa_loop *lp, lua_State *T, int ref);
/* Calls fn(T) with arg as its only (light userdata) argument, protected; an
 * error goes to the reporter.  Returns 0 when fn ran without error. */
WA_HIDDEN int wa_loop_call(wa_loop *lp, lua_CFunction fn, void *arg);
/* Queues dispatch(token, nil, code, message) for the next loop turn, then
 * drops ref.  Holds the loop alive until delivered. */
WA_HIDDEN void wa_loop_defer_error(wa_loop *lp, int ref, const char *code, const char *msg);
/* A dependent object takes / gives back its hold on the loop's memory. */
WA_HIDDEN void wa_loop_retain(wa_loop *lp);
WA_HIDDEN void wa_loop_release(wa_loop *lp, lua_State *L);

#endif /* WA_H */
