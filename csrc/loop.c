/*
 * loop.c - the process's event loop: one libevent base, timers, signals, and
 * the bridge from C callbacks into Lua.
 *
 * The Loop userdata ("whatsapp.loop.Loop") holds a pointer to a malloc'd
 * wa_loop rather than the struct itself: sessions, listeners and timers point
 * at it too, and each holds it (users) so the base outlives every object that
 * registered events on it, whatever order the collector finalises them in.
 *
 * Reaching Lua.  libevent calls us with no Lua frame below; a Lua error there
 * would longjmp through libevent (or libcurl) and wreck it.  So every entry
 * into Lua goes through wa_loop_call, which runs a C function under a
 * protected call on T, a thread created with the loop and anchored in the
 * registry (the thread that created the loop may be a coroutine that dies
 * before the loop does).  Errors go to the reporter, a Lua function; if even
 * that fails they are written to stderr, never dropped.
 *
 * Tokens.  What waits for an answer is represented by a Lua value (usually a
 * coroutine) stored in the refs table; the answer is dispatch(token, ...).
 * Results that must not be delivered from inside the caller's own Lua call
 * (a cancelled transfer, a closed session) are queued as deferred errors and
 * delivered on the next loop turn, so no Lua code runs re-entrantly on T.
 *
 * alive counts what run() waits for: transfers in flight, pending timers,
 * queued deferred results and open listeners.  Signal handlers do not count.
 */
#include "wa.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define WA_TIMER_MT "whatsapp.loop.Timer"
#define WA_SIGNAL_MT "whatsapp.loop.Signal"

struct wa_deferred {
	wa_deferred *next;
	int ref;
	char code[24];
	char msg[200];
};

/* ---- life cycle ----------------------------------------------------------- */

static void wa_loop_free_native(wa_loop *lp, lua_State *L)
{
	wa_deferred *d = lp->defer_head;
	while (d != NULL) {
		wa_deferred *next = d->next;
		free(d);
		d = next;
	}
	lp->defer_head = lp->defer_tail = NULL;
	if (lp->defer_ev != NULL)
		event_free(lp->defer_ev);
	if (lp->base != NULL)
		event_base_free(lp->base);
	if (L != NULL) {
		luaL_unref(L, LUA_REGISTRYINDEX, lp->thread_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, lp->refs_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, lp->dispatch_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, lp->report_ref);
	}
	free(lp);
}

void wa_loop_retain(wa_loop *lp)
{
	lp->users++;
}

void wa_loop_release(wa_loop *lp, lua_State *L)
{
	/* Inside run() the loop frees itself when the turn returns. */
	if (--lp->users == 0 && lp->closed && !lp->running)
		wa_loop_free_native(lp, L);
}

wa_loop *wa_loop_check(lua_State *L, int idx)
{
	wa_loop_ud *u = (wa_loop_ud *)luaL_checkudata(L, idx, WA_LOOP_MT);
	if (u->lp == NULL)
		luaL_argerror(L, idx, "loop is closed");
	return u->lp;
}

/* ---- reaching Lua ---------------------------------------------------------- */

int wa_loop_ref(wa_loop *lp, lua_State *L)
{
	int ref;
	lua_rawgeti(L, LUA_REGISTRYINDEX, lp->refs_ref);
	lua_insert(L, -2);
	ref = luaL_ref(L, -2);
	lua_pop(L, 1);
	return ref;
}

void wa_loop_unref(wa_loop *lp, lua_State *L, int ref)
{
	if (ref == LUA_NOREF || ref == LUA_REFNIL)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, lp->refs_ref);
	luaL_unref(L, -1, ref);
	lua_pop(L, 1);
}

void wa_loop_push_dispatch(wa_loop *lp, lua_State *T, int ref)
{
	lua_rawgeti(T, LUA_REGISTRYINDEX, lp->dispatch_ref);
	lua_rawgeti(T, LUA_REGISTRYINDEX, lp->refs_ref);
	lua_rawgeti(T, -1, ref);
	lua_remove(T, -2);
}

/* The error value is on top of T: hand it to the reporter, or to stderr. */
static void wa_loop_report(wa_loop *lp, lua_State *T)
{
	if (lp->report_ref != LUA_NOREF && lp->report_ref != LUA_REFNIL) {
		lua_rawgeti(T, LUA_REGISTRYINDEX, lp->report_ref);
		lua_insert(T, -2);
		if (lua_pcall(T, 1, 0, 0) == 0)
			return;
	}
	{
		const char *msg = lua_tostring(T, -1);
		fprintf(stderr, "whatsapp.loop: error in a callback: %s\n",
			msg != NULL ? msg : "(error object is not a string)");
		fflush(stderr);
	}
	lua_pop(T, 1);
}

int wa_loop_call(wa_loop *lp, lua_CFunction fn, void *arg)
{
	lua_State *T = lp->T;
	int top = lua_gettop(T);
	int status;
#if LUA_VERSION_NUM < 502
	/* lua_cpcall allocates nothing outside the protected call. */
	status = lua_cpcall(T, fn, arg);
#else
	/* A light C function and a light userdata: nothing allocated either. */
	lua_pushcfunction(T, fn);
	lua_pushlightuserdata(T, arg);
	status = lua_pcall(T, 1, 0, 0);
#endif
	if (status != 0)
		wa_loop_report(lp, T);
	lua_settop(T, top);
	return status;
}

/* ---- deferred results ------------------------------------------------------ */

typedef struct {
	wa_loop *lp;
	wa_deferred *d;
} wa_defer_call;

static int wa_deferred_call(lua_State *T)
{
	wa_defer_call *c = (wa_defer_call *)lua_touserdata(T, 1);
	wa_loop_push_dispatch(c->lp, T, c->d->ref);
	lua_pushnil(T);
	lua_pushstring(T, c->d->code);
	lua_pushstring(T, c->d->msg);
	lua_call(T, 4, 0);
	return 0;
}

static void wa_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	wa_loop *lp = (wa_loop *)arg;
	wa_deferred *d = lp->defer_head;
	(void)fd;
	(void)what;
	/* Take the whole queue: what Lua defers now runs on the next turn. */
	lp->defer_head = lp->defer_tail = NULL;
	while (d != NULL) {
		wa_deferred *next = d->next;
		wa_defer_call c;
		c.lp = lp;
		c.d = d;
		lp->alive--;
		wa_loop_call(lp, wa_deferred_call, &c);
		wa_loop_unref(lp, lp->T, d->ref);
		free(d);
		d = next;
	}
}

void wa_loop_defer_error(wa_loop *lp, int ref, const char *code, const char *msg)
{
	wa_deferred *d = (wa_deferred *)calloc(1, sizeof *d);
	if (d == NULL) {
		/* Nothing sensible left to do but say so; the token stays anchored. */
		fprintf(stderr, "whatsapp.loop: out of memory delivering %s\n", code);
		return;
	}
	d->ref = ref;
	snprintf(d->code, sizeof d->code, "%s", code);
	snprintf(d->msg, sizeof d->msg, "%s", msg);
	if (lp->defer_tail != NULL)
		lp->defer_tail->next = d;
	else
		lp->defer_head = d;
	lp->defer_tail = d;
	lp->alive++;
	event_active(lp->defer_ev, EV_TIMEOUT, 0);
}

/* ---- the table modules outside the core call through ----------------------- */

static const wa_loop_api wa_api = {
	WA_LOOP_ABI,
	sizeof(struct wa_loop),
	wa_loop_ref,
	wa_loop_unref,
	wa_loop_push_dispatch,
	wa_loop_call,
	wa_loop_defer_error,
	wa_loop_retain,
	wa_loop_release,
	wa_headers_new,
	wa_headers_add,
};

/* ---- the Loop object ------------------------------------------------------- */

/* core.loop() -> Loop.  Raises on memory exhaustion or if libevent fails. */
static int wa_loop_new(lua_State *L)
{
	wa_loop_ud *u = (wa_loop_ud *)lua_newuserdata(L, sizeof *u);
	wa_loop *lp;
	u->lp = NULL;
	luaL_getmetatable(L, WA_LOOP_MT);
	lua_setmetatable(L, -2);

	lp = (wa_loop *)calloc(1, sizeof *lp);
	if (lp == NULL)
		return luaL_error(L, "out of memory");
	lp->api = &wa_api;
	lp->thread_ref = lp->refs_ref = LUA_NOREF;
	lp->dispatch_ref = lp->report_ref = LUA_NOREF;
	u->lp = lp;
	{
		/* With a changelist, epoll_ctl calls are batched per turn: evhttp
		 * turns write interest on and off around every reply, which then
		 * costs nothing when both happen in one turn.  (Its one caveat,
		 * dup()ed descriptors, does not arise: libcurl and evhttp own
		 * their sockets.) */
		struct event_config *cfg = event_config_new();
		if (cfg != NULL) {
			event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
			lp->base = event_base_new_with_config(cfg);
			event_config_free(cfg);
		}
	}
	if (lp->base == NULL)
		lp->base = event_base_new();
	if (lp->base == NULL)
		return luaL_error(L, "event_base_new failed");
	lp->defer_ev = event_new(lp->base, -1, 0, wa_deferred_cb, lp);
	if (lp->defer_ev == NULL)
		return luaL_error(L, "event_new failed");
	lp->T = lua_newthread(L);
	lp->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	lp->refs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 1;
}

/* loop:close(), __gc, __close.  Safe twice.  Inside run() the base is freed
 * when run() returns; while sessions or listeners still use it, when the last
 * of them lets go. */
static int wa_loop__gc(lua_State *L)
{
	wa_loop_ud *u = (wa_loop_ud *)luaL_checkudata(L, 1, WA_LOOP_MT);
	wa_loop *lp = u->lp;
	if (lp == NULL)
		return 0;
	u->lp = NULL;
	lp->closed = 1;
	lp->stopping = 1;
	if (lp->running) {
		event_base_loopbreak(lp->base);
		return 0;
	}
	if (lp->users == 0)
		wa_loop_free_native(lp, L);
	return 0;
}

/* loop:set_dispatch(fn), loop:set_reporter(fn): the two Lua functions C calls. */
static int wa_loop_set_fn(lua_State *L, int which)
{
	wa_loop *lp = wa_loop_check(L, 1);
	int *slot = which ? &lp->report_ref : &lp->dispatch_ref;
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	luaL_unref(L, LUA_REGISTRYINDEX, *slot);
	*slot = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

static int wa_loop_set_dispatch(lua_State *L)
{
	return wa_loop_set_fn(L, 0);
}

static int wa_loop_set_reporter(lua_State *L)
{
	return wa_loop_set_fn(L, 1);
}

/* One turn of the base: wait for at least one event (or none, with nowait),
 * run the callbacks of every active one.  Raises when called from inside a
 * callback of this loop: a blocking call there would re-enter libevent. */
static int wa_loop_turn(lua_State *L, wa_loop *lp, int flags)
{
	int rc;
	if (lp->running)
		return luaL_error(L, "whatsapp.loop: cannot block inside a loop callback;"
				     " run this call in a loop task (loop.spawn)");
	lp->running = 1;
	rc = event_base_loop(lp->base, flags);
	lp->running = 0;
	if (rc < 0)
		return luaL_error(L, "whatsapp.loop: event_base_loop failed");
	return rc;
}

/* Frees the native loop if close() came while it ran.  Returns 1 if it did. */
static int wa_loop_finish_close(lua_State *L, wa_loop_ud *u, wa_loop *lp)
{
	if (u->lp == NULL && lp->closed) {
		if (lp->users == 0)
			wa_loop_free_native(lp, L);
		return 1;
	}
	return 0;
}

/* loop:run() -> true.  Turns the base until nothing is alive or loop:stop(). */
static int wa_loop_run(lua_State *L)
{
	wa_loop_ud *u = (wa_loop_ud *)luaL_checkudata(L, 1, WA_LOOP_MT);
	wa_loop *lp = wa_loop_check(L, 1);
	lp->stopping = 0;
	while (!lp->stopping && lp->alive > 0) {
		wa_loop_turn(L, lp, EVLOOP_ONCE);
		if (wa_loop_finish_close(L, u, lp))
			break;
	}
	if (u->lp != NULL)
		u->lp->stopping = 0;
	lua_pushboolean(L, 1);
	return 1;
}

/* loop:step([nowait]) -> alive.  One turn; returns false (without blocking)
 * when nothing is alive, so a caller waiting on a result that can never come
 * sees it instead of hanging. */
static int wa_loop_step(lua_State *L)
{
	wa_loop_ud *u = (wa_loop_ud *)luaL_checkudata(L, 1, WA_LOOP_MT);
	wa_loop *lp = wa_loop_check(L, 1);
	int nowait = lua_toboolean(L, 2);
	if (lp->alive <= 0 && !nowait) {
		lua_pushboolean(L, 0);
		return 1;
	}
	wa_loop_turn(L, lp, nowait ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
	if (wa_loop_finish_close(L, u, lp)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_pushboolean(L, lp->alive > 0);
	return 1;
}

/* loop:stop(): run() returns after the current turn. */
static int wa_loop_stop(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	lp->stopping = 1;
	if (lp->running)
		event_base_loopbreak(lp->base);
	return 0;
}

/* loop:alive() -> integer: what run() is still waiting for. */
static int wa_loop_alive(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	lua_pushinteger(L, (lua_Integer)lp->alive);
	return 1;
}

/* loop:running() -> boolean: true inside run()/step() (in a callback). */
static int wa_loop_running(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	lua_pushboolean(L, lp->running);
	return 1;
}

/* loop:defer(token, code, message): deliver dispatch(token, nil, code,
 * message) on the next turn (for the Lua layer's own cancellations). */
static int wa_loop_defer(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	const char *code = luaL_checkstring(L, 3);
	const char *msg = luaL_optstring(L, 4, code);
	int ref;
	lua_pushvalue(L, 2);
	ref = wa_loop_ref(lp, L);
	wa_loop_defer_error(lp, ref, code, msg);
	return 0;
}

/* core.now() -> seconds (float) on the monotonic clock. */
static int wa_loop_now(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

/* ---- timers ---------------------------------------------------------------- */

typedef struct {
	wa_loop *lp;      /* NULL once closed */
	struct event *ev;
	int ref;          /* token */
	int self_ref;     /* anchors the userdata while pending */
	int pending;
	int weak;         /* does not keep run() going */
} wa_timer;

static wa_timer *wa_timer_check(lua_State *L, int idx)
{
	return (wa_timer *)luaL_checkudata(L, idx, WA_TIMER_MT);
}

/* Drop the pending state: alive, token and the self anchor. */
static void wa_timer_disarm(wa_timer *t, lua_State *L)
{
	if (!t->pending)
		return;
	t->pending = 0;
	if (!t->weak)
		t->lp->alive--;
	wa_loop_unref(t->lp, L, t->ref);
	wa_loop_unref(t->lp, L, t->self_ref);
	t->ref = t->self_ref = LUA_NOREF;
}

static int wa_timer_deliver(lua_State *T)
{
	wa_timer *t = (wa_timer *)lua_touserdata(T, 1);
	wa_loop_push_dispatch(t->lp, T, t->ref);
	lua_call(T, 1, 0);
	return 0;
}

static void wa_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	wa_timer *t = (wa_timer *)arg;
	wa_loop *lp = t->lp;
	int ref = t->ref, self_ref = t->self_ref;
	(void)fd;
	(void)what;
	t->pending = 0; /* a close() from Lua during dispatch unrefs nothing */
	if (!t->weak)
		lp->alive--;
	/* self_ref keeps t's memory valid through the call. */
	wa_loop_call(lp, wa_timer_deliver, t);
	t->ref = t->self_ref = LUA_NOREF;
	wa_loop_unref(lp, lp->T, ref);
	wa_loop_unref(lp, lp->T, self_ref); /* may make t collectable: last use */
}

/* loop:timer(seconds, token[, weak]) -> Timer: dispatch(token) after
 * seconds.  A weak timer does not keep run() going (a grace deadline). */
static int wa_loop_timer(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	lua_Number secs = luaL_checknumber(L, 2);
	int weak = lua_toboolean(L, 4); /* before anything is pushed at 4 */
	wa_timer *t;
	struct timeval tv;
	luaL_argcheck(L, secs >= 0 && secs < 1e9, 2, "seconds out of range");
	luaL_argcheck(L, !lua_isnoneornil(L, 3), 3, "token expected");
	t = (wa_timer *)lua_newuserdata(L, sizeof *t);
	memset(t, 0, sizeof *t);
	t->ref = t->self_ref = LUA_NOREF;
	luaL_getmetatable(L, WA_TIMER_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, 1);
	wa_setuservalue(L, -2); /* the timer keeps its Loop userdata */
	t->ev = evtimer_new(lp->base, wa_timer_cb, t);
	if (t->ev == NULL)
		return luaL_error(L, "evtimer_new failed");
	t->lp = lp;
	wa_loop_retain(lp);
	tv.tv_sec = (long)secs;
	tv.tv_usec = (long)((secs - (lua_Number)tv.tv_sec) * 1e6);
	lua_pushvalue(L, 3);
	t->ref = wa_loop_ref(lp, L);
	lua_pushvalue(L, -1);
	t->self_ref = wa_loop_ref(lp, L);
	if (evtimer_add(t->ev, &tv) != 0) {
		wa_loop_unref(lp, L, t->ref);
		wa_loop_unref(lp, L, t->self_ref);
		t->ref = t->self_ref = LUA_NOREF;
		return luaL_error(L, "evtimer_add failed");
	}
	t->pending = 1;
	t->weak = weak;
	if (!t->weak)
		lp->alive++;
	return 1;
}

/* timer:cancel() -> boolean (true if it was still pending).  The token is not
 * called. */
static int wa_timer_cancel(lua_State *L)
{
	wa_timer *t = wa_timer_check(L, 1);
	int was = t->pending;
	if (t->lp != NULL && t->pending) {
		event_del(t->ev);
		wa_timer_disarm(t, L);
	}
	lua_pushboolean(L, was);
	return 1;
}

/* timer:pending() -> boolean */
static int wa_timer_pending(lua_State *L)
{
	wa_timer *t = wa_timer_check(L, 1);
	lua_pushboolean(L, t->pending);
	return 1;
}

/* timer:close(), __gc, __close: cancel and free; safe twice. */
static int wa_timer__gc(lua_State *L)
{
	wa_timer *t = wa_timer_check(L, 1);
	wa_loop *lp = t->lp;
	if (lp == NULL)
		return 0;
	if (t->ev != NULL) {
		event_del(t->ev);
		wa_timer_disarm(t, L);
		event_free(t->ev);
		t->ev = NULL;
	}
	t->lp = NULL;
	wa_loop_release(lp, L);
	return 0;
}

/* ---- signals ----------------------------------------------------------------- */

typedef struct {
	wa_loop *lp;
	struct event *ev;
	int ref;
	int signum;
} wa_signal;

static int wa_signal_deliver(lua_State *T)
{
	wa_signal *s = (wa_signal *)lua_touserdata(T, 1);
	wa_loop_push_dispatch(s->lp, T, s->ref);
	lua_pushinteger(T, s->signum);
	lua_call(T, 2, 0);
	return 0;
}

static void wa_signal_cb(evutil_socket_t fd, short what, void *arg)
{
	wa_signal *s = (wa_signal *)arg;
	(void)fd;
	(void)what;
	wa_loop_call(s->lp, wa_signal_deliver, s);
}

/* loop:signal(name, token) -> Signal: dispatch(token, signum) on each
 * delivery of SIGINT, SIGTERM, SIGHUP, SIGUSR1 or SIGUSR2 until closed.  A
 * handler does not keep run() going. */
static int wa_loop_signal(lua_State *L)
{
	static const char *const names[] = {"INT", "TERM", "HUP", "USR1", "USR2", NULL};
	static const int nums[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
	wa_loop *lp = wa_loop_check(L, 1);
	int which = luaL_checkoption(L, 2, NULL, names);
	wa_signal *s;
	luaL_argcheck(L, !lua_isnoneornil(L, 3), 3, "token expected");
	s = (wa_signal *)lua_newuserdata(L, sizeof *s);
	memset(s, 0, sizeof *s);
	s->ref = LUA_NOREF;
	luaL_getmetatable(L, WA_SIGNAL_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, 1);
	wa_setuservalue(L, -2);
	s->signum = nums[which];
	s->ev = evsignal_new(lp->base, s->signum, wa_signal_cb, s);
	if (s->ev == NULL)
		return luaL_error(L, "evsignal_new failed");
	s->lp = lp;
	wa_loop_retain(lp);
	lua_pushvalue(L, 3);
	s->ref = wa_loop_ref(lp, L);
	if (event_add(s->ev, NULL) != 0)
		return luaL_error(L, "cannot watch signal %s", names[which]);
	return 1;
}

/* signal:close(), __gc, __close: stop watching; the default action returns. */
static int wa_signal__gc(lua_State *L)
{
	wa_signal *s = (wa_signal *)luaL_checkudata(L, 1, WA_SIGNAL_MT);
	wa_loop *lp = s->lp;
	if (lp == NULL)
		return 0;
	if (s->ev != NULL) {
		event_del(s->ev);
		event_free(s->ev);
		s->ev = NULL;
	}
	wa_loop_unref(lp, L, s->ref);
	s->ref = LUA_NOREF;
	s->lp = NULL;
	wa_loop_release(lp, L);
	return 0;
}

/* ---- registration -------------------------------------------------------------- */

static const luaL_Reg wa_loop_methods[] = {
	{"run", wa_loop_run},
	{"step", wa_loop_step},
	{"stop", wa_loop_stop},
	{"alive", wa_loop_alive},
	{"running", wa_loop_running},
	{"timer", wa_loop_timer},
	{"signal", wa_loop_signal},
	{"defer", wa_loop_defer},
	{"set_dispatch", wa_loop_set_dispatch},
	{"set_reporter", wa_loop_set_reporter},
	{"close", wa_loop__gc},
	{NULL, NULL},
};

static const luaL_Reg wa_timer_methods[] = {
	{"cancel", wa_timer_cancel},
	{"pending", wa_timer_pending},
	{"close", wa_timer__gc},
	{NULL, NULL},
};

static const luaL_Reg wa_signal_methods[] = {
	{"close", wa_signal__gc},
	{NULL, NULL},
};

void wa_loop_open(lua_State *L)
{
	wa_class(L, WA_LOOP_MT, wa_loop_methods, wa_loop__gc);
	wa_class(L, WA_TIMER_MT, wa_timer_methods, wa_timer__gc);
	wa_class(L, WA_SIGNAL_MT, wa_signal_methods, wa_signal__gc);
	lua_pushcfunction(L, wa_loop_new);
	lua_setfield(L, -2, "loop");
	lua_pushcfunction(L, wa_loop_now);
	lua_setfield(L, -2, "now");
}
