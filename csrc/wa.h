/*
 * wa.h - internal declarations shared by the C core's areas, and by the C
 * modules built beside it (whatsapp.core.http).
 *
 * Each area of whatsapp.core (crypto.c, webhook.c, loop.c, server.c, ...)
 * registers its functions into the module table with wa_<area>_open(L).
 * Only luaopen_* functions are exported from a shared object.
 *
 * whatsapp.core.http (http.c, the libcurl transport) is a shared object of
 * its own, loaded by whatsapp.http on first use: libcurl drags some thirty
 * libraries (TLS, HTTP/2, IDN, LDAP, SSH, Kerberos, ...) into a process, and
 * one that only listens should not map them.  Its symbols are hidden like
 * the core's, so it cannot link against the core's functions; it reaches the
 * loop's machinery through the table of function pointers every loop carries
 * (wa_loop_api, below).  It is compiled with WA_OUTSIDE_CORE defined, which
 * turns the wa_loop_* calls below into calls through that table.
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
WA_HIDDEN void wa_headers_open(lua_State *L);
WA_HIDDEN void wa_server_open(lua_State *L);

/* Registers the metatable of a userdata type: name (also its __name), an
 * __index table of methods, and gc as __gc and __close.  Leaves the stack as
 * it was.  Inline: the core and the modules beside it each need it. */
static inline void wa_class(lua_State *L, const char *name, const luaL_Reg *methods,
			    lua_CFunction gc)
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

/* ---- The event loop, shared by server.c and http.c (loop.c) ---------------
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
typedef struct wa_loop wa_loop;

#define WA_LOOP_MT "whatsapp.loop.Loop"

/* What a module outside the core may call (through lp->api).  Bump
 * WA_LOOP_ABI whenever this table or struct wa_loop changes: a module built
 * against another layout refuses the loop instead of misreading it. */
#define WA_LOOP_ABI 1

typedef struct wa_loop_api {
	int abi;             /* WA_LOOP_ABI of the core that made the loop */
	size_t loop_size;    /* sizeof(struct wa_loop) there */
	int (*ref)(wa_loop *lp, lua_State *L);
	void (*unref)(wa_loop *lp, lua_State *L, int ref);
	void (*push_dispatch)(wa_loop *lp, lua_State *T, int ref);
	int (*call)(wa_loop *lp, lua_CFunction fn, void *arg);
	void (*defer_error)(wa_loop *lp, int ref, const char *code, const char *msg);
	void (*retain)(wa_loop *lp);
	void (*release)(wa_loop *lp, lua_State *L);
	void (*headers_new)(lua_State *L);
	void (*headers_add)(lua_State *L, const char *name, size_t nl,
			    const char *value, size_t vl);
} wa_loop_api;

struct wa_loop {
	const wa_loop_api *api; /* first: a module checks it before anything else */
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
};

/* The Loop userdata holds a pointer (see loop.c). */
typedef struct {
	wa_loop *lp; /* NULL once closed */
} wa_loop_ud;

#ifndef WA_OUTSIDE_CORE

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

/* Headers tables (headers.c): names in lower case, looked up in any case
 * through the "whatsapp.http.Headers" metatable.  wa_headers_new pushes an
 * empty one; wa_headers_add adds a header to the table on top, joining a
 * repeated name's values with ", ".  Both may raise (memory). */
WA_HIDDEN void wa_headers_new(lua_State *L);
WA_HIDDEN void wa_headers_add(lua_State *L, const char *name, size_t nl,
			      const char *value, size_t vl);

#else /* a module beside the core: the same calls, through the loop's table */

#define wa_loop_ref(lp, L) ((lp)->api->ref((lp), (L)))
#define wa_loop_unref(lp, L, ref) ((lp)->api->unref((lp), (L), (ref)))
#define wa_loop_push_dispatch(lp, T, ref) ((lp)->api->push_dispatch((lp), (T), (ref)))
#define wa_loop_call(lp, fn, arg) ((lp)->api->call((lp), (fn), (arg)))
#define wa_loop_defer_error(lp, ref, code, msg) ((lp)->api->defer_error((lp), (ref), (code), (msg)))
#define wa_loop_retain(lp) ((lp)->api->retain(lp))
#define wa_loop_release(lp, L) ((lp)->api->release((lp), (L)))

/* The loop of the userdata at idx; raises if it is not one, is closed, or
 * was made by a core this module was not built with. */
static inline wa_loop *wa_loop_check(lua_State *L, int idx)
{
	wa_loop_ud *u = (wa_loop_ud *)luaL_checkudata(L, idx, WA_LOOP_MT);
	if (u->lp == NULL)
		luaL_argerror(L, idx, "loop is closed");
	if (u->lp->api == NULL || u->lp->api->abi != WA_LOOP_ABI ||
	    u->lp->api->loop_size != sizeof(struct wa_loop))
		luaL_error(L, "this C module and whatsapp.core come from different builds");
	return u->lp;
}

#endif /* WA_OUTSIDE_CORE */

#endif /* WA_H */
