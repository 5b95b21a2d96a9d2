/*
 * server.c - the embedded HTTP listener (libevent's evhttp) for standalone
 * bots: webhooks in, answers out, on the loop's base.
 *
 * Each request reaches Lua as dispatch(token, request, handle): request is a
 * table (method, uri, path, query, headers, body, peer, handle) and handle a
 * Request userdata ("whatsapp.server.Request") whose respond() answers it,
 * now or later: a handler may yield first.  evhttp keeps a request alive until
 * it is answered even when the client has gone (it then only detaches it), so
 * every request handed to Lua is answered exactly once: by respond(), or with
 * 500 when the handle is collected unanswered, or with 503 when the server is
 * closed under it.
 *
 * alive (see loop.c) counts the listening socket and every request handed to
 * Lua and not yet answered, so run() does not return under a request.
 * drain() stops accepting and answers later requests on kept-alive connections
 * with 503; once nothing is pending the evhttp object is freed on a fresh loop
 * turn (never inside one of its own callbacks).
 */
#include "wa.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h> /* TAILQ_* over evhttp header lists */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#define WA_SERVER_MT "whatsapp.server.Server"
#define WA_REQUEST_MT "whatsapp.server.Request"

typedef struct wa_req wa_req;

typedef struct {
	wa_loop *lp;                  /* NULL once closed */
	struct evhttp *http;          /* NULL once freed */
	struct evhttp_bound_socket *bound; /* NULL once not listening */
	struct event *drained_ev;
	int ref;                      /* handler token */
	int self_ref;                 /* anchors the userdata while open */
	int mt_ref;                   /* metatable of request tables, or LUA_NOREF */
	int port;
	long pending;                 /* handed to Lua, not answered */
	long writing;                 /* answered, reply not yet written out */
	wa_req *reqs;
	char *health;                 /* path answered here, or NULL */
	int draining;
	int closing;                  /* close() waits for its 503s to be written */
} wa_server;

struct wa_req {
	wa_req *prev, *next;
	wa_server *srv;
	struct evhttp_request *req;   /* NULL once answered */
};

/* ---- answering ------------------------------------------------------------- */

static void wa_req_unlink(wa_req *w)
{
	wa_server *srv = w->srv;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		srv->reqs = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->req = NULL;
	srv->pending--;
	srv->lp->alive--;
	if (srv->draining && srv->pending == 0 && srv->writing == 0 && srv->drained_ev != NULL)
		event_active(srv->drained_ev, EV_TIMEOUT, 0);
}

/* A reply being written out keeps the loop alive: run() must not return (and
 * the process exit) with an answer still in a socket buffer.  evhttp tells us
 * the end through on_complete when the write finishes, and through the
 * connection's close callback when it fails instead; whichever comes first
 * counts, and on_complete removes the close callback so it cannot fire for a
 * later request on the same connection.  A connection carries one request at
 * a time (evhttp reads the next one only after the reply is out), so the
 * server itself is all either callback needs: no allocation per reply. */
static void wa_write_finish(wa_server *srv)
{
	srv->writing--;
	srv->lp->alive--;
	if (srv->draining && srv->pending == 0 && srv->writing == 0 && srv->drained_ev != NULL)
		event_active(srv->drained_ev, EV_TIMEOUT, 0);
}

static void wa_write_done(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *con = evhttp_request_get_connection(req);
	if (con != NULL)
		evhttp_connection_set_closecb(con, NULL, NULL);
	wa_write_finish((wa_server *)arg);
}

static void wa_write_lost(struct evhttp_connection *con, void *arg)
{
	evhttp_connection_set_closecb(con, NULL, NULL);
	wa_write_finish((wa_server *)arg);
}

/* evhttp_send_reply, counted as above.  The body is already in the request's
 * output buffer (evhttp would only move it there from a buffer of ours). */
static void wa_send(wa_server *srv, struct evhttp_request *req, int status, const char *reason)
{
	struct evhttp_connection *con = evhttp_request_get_connection(req);
	if (srv->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (con != NULL) {
		srv->writing++;
		srv->lp->alive++;
		evhttp_request_set_on_complete_cb(req, wa_write_done, srv);
		evhttp_connection_set_closecb(con, wa_write_lost, srv);
	}
	/* A detached request (client gone) is only freed by this. */
	evhttp_send_reply(req, status, reason, NULL);
}

static void wa_reply_plain(wa_server *srv, struct evhttp_request *req, int status,
			   const char *reason, const char *body, int close)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	if (close)
		evhttp_add_header(h, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	wa_send(srv, req, status, reason);
}

static const char *wa_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" :
			status < 500 ? "Client Error" : "Server Error";
	}
}

/* Adds one response header; raises on CR/LF in either part. */
static void wa_out_header(lua_State *L, struct evkeyvalq *h, const char *k, const char *v)
{
	if (strpbrk(k, "\r\n: ") != NULL || *k == '\0')
		luaL_error(L, "invalid response header name");
	if (strpbrk(v, "\r\n") != NULL)
		luaL_error(L, "invalid character in response header '%s'", k);
	if (evhttp_add_header(h, k, v) != 0)
		luaL_error(L, "cannot add response header '%s'", k);
}

/* handle:respond(status, headers, body) -> true | false.  false when it was
 * answered already.  Raises on a bad status or header (nothing is sent then,
 * so the caller can still answer 500). */
static int wa_req_respond(lua_State *L)
{
	wa_req *w = (wa_req *)luaL_checkudata(L, 1, WA_REQUEST_MT);
	lua_Integer status = luaL_optinteger(L, 2, 200);
	size_t bl = 0;
	const char *body = luaL_optlstring(L, 4, "", &bl);
	struct evhttp_request *req = w->req;
	struct evkeyvalq *h;
	struct evbuffer *b;
	luaL_argcheck(L, status >= 100 && status <= 999, 2, "HTTP status out of range");
	if (req == NULL) {
		lua_pushboolean(L, 0);
		return 1;
	}
	h = evhttp_request_get_output_headers(req);
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 3) != 0) {
			const char *k;
			if (lua_type(L, -2) != LUA_TSTRING)
				luaL_error(L, "response header names must be strings");
			k = lua_tostring(L, -2);
			if (lua_type(L, -1) == LUA_TTABLE) {
				int i, n = (int)wa_rawlen(L, -1);
				for (i = 1; i <= n; i++) {
					lua_rawgeti(L, -1, i);
					if (!lua_isstring(L, -1))
						luaL_error(L, "response header '%s': values must be strings", k);
					wa_out_header(L, h, k, lua_tostring(L, -1));
					lua_pop(L, 1);
				}
			} else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
				lua_pushvalue(L, -1);
				wa_out_header(L, h, k, lua_tostring(L, -1));
				lua_pop(L, 1);
			} else {
				luaL_error(L, "response header '%s' must be a string", k);
			}
			lua_pop(L, 1);
		}
	}
	b = evhttp_request_get_output_buffer(req);
	if (bl > 0 && evbuffer_add(b, body, bl) != 0) {
		/* Nothing half-written stays behind for the 500 that follows. */
		evbuffer_drain(b, evbuffer_get_length(b));
		return luaL_error(L, "out of memory");
	}
	wa_req_unlink(w);
	wa_send(w->srv, req, (int)status, wa_reason((int)status));
	lua_pushboolean(L, 1);
	return 1;
}

/* handle:gone() -> boolean: the client closed its connection. */
static int wa_req_gone(lua_State *L)
{
	wa_req *w = (wa_req *)luaL_checkudata(L, 1, WA_REQUEST_MT);
	lua_pushboolean(L, w->req == NULL || evhttp_request_get_connection(w->req) == NULL);
	return 1;
}

/* handle:answered() -> boolean */
static int wa_req_answered(lua_State *L)
{
	wa_req *w = (wa_req *)luaL_checkudata(L, 1, WA_REQUEST_MT);
	lua_pushboolean(L, w->req == NULL);
	return 1;
}

/* __gc (and close): a request nobody answered gets 500, so evhttp frees it. */
static int wa_req__gc(lua_State *L)
{
	wa_req *w = (wa_req *)luaL_checkudata(L, 1, WA_REQUEST_MT);
	struct evhttp_request *req = w->req;
	if (req != NULL) {
		wa_req_unlink(w);
		wa_reply_plain(w->srv, req, 500, "Internal Server Error", "handler did not answer\n", 0);
	}
	return 0;
}

/* ---- requests into Lua --------------------------------------------------------- */

typedef struct {
	wa_server *srv;
	struct evhttp_request *req;
	wa_req *w;
} wa_incoming;

static const char *wa_method(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "UNKNOWN";
	}
}

/* Runs protected on T: builds the request and calls dispatch. */
static int wa_incoming_deliver(lua_State *T)
{
	wa_incoming *c = (wa_incoming *)lua_touserdata(T, 1);
	wa_server *srv = c->srv;
	struct evhttp_request *req = c->req;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evhttp_connection *con = evhttp_request_get_connection(req);
	struct evkeyval *kv;
	wa_req *w;
	size_t bl;

	wa_loop_push_dispatch(srv->lp, T, srv->ref);
	/* Sized for every field set here, handle included: no rehash. */
	lua_createtable(T, 0, query != NULL ? 9 : srv->mt_ref != LUA_NOREF ? 7 : 8);
	if (srv->mt_ref != LUA_NOREF) {
		/* The Lua layer's Request metatable (methods, and the query table of
		 * a request without one, made on first access). */
		lua_rawgeti(T, LUA_REGISTRYINDEX, srv->lp->refs_ref);
		lua_rawgeti(T, -1, srv->mt_ref);
		lua_setmetatable(T, -3);
		lua_pop(T, 1);
	}
	lua_pushstring(T, wa_method(evhttp_request_get_command(req)));
	lua_setfield(T, -2, "method");
	lua_pushstring(T, evhttp_request_get_uri(req));
	lua_setfield(T, -2, "uri");
	lua_pushstring(T, (path != NULL && *path) ? path : "/");
	lua_setfield(T, -2, "path");
	if (query != NULL) {
		struct evkeyvalq q;
		lua_pushstring(T, query);
		lua_setfield(T, -2, "query_string");
		lua_newtable(T);
		TAILQ_INIT(&q);
		if (evhttp_parse_query_str(query, &q) == 0) {
			TAILQ_FOREACH(kv, &q, next) {
				lua_getfield(T, -1, kv->key);
				if (lua_isnil(T, -1)) { /* the first of repeated keys wins */
					lua_pushstring(T, kv->value);
					lua_setfield(T, -3, kv->key);
				}
				lua_pop(T, 1);
			}
		}
		evhttp_clear_headers(&q);
		lua_setfield(T, -2, "query");
	} else if (srv->mt_ref == LUA_NOREF) {
		lua_newtable(T);
		lua_setfield(T, -2, "query");
	}
	wa_headers_new(T);
	TAILQ_FOREACH(kv, ih, next)
		wa_headers_add(T, kv->key, strlen(kv->key), kv->value, strlen(kv->value));
	lua_setfield(T, -2, "headers");
	bl = evbuffer_get_length(in);
	if (bl > 0) {
		const char *p = (const char *)evbuffer_pullup(in, -1);
		if (p == NULL)
			return luaL_error(T, "out of memory");
		lua_pushlstring(T, p, bl);
	} else {
		lua_pushliteral(T, "");
	}
	lua_setfield(T, -2, "body");
	if (con != NULL) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(con, &addr, &port);
		if (addr != NULL) {
			lua_pushstring(T, addr);
			lua_setfield(T, -2, "peer");
		}
	}

	w = (wa_req *)lua_newuserdata(T, sizeof *w);
	memset(w, 0, sizeof *w);
	luaL_getmetatable(T, WA_REQUEST_MT);
	lua_setmetatable(T, -2);
	lua_rawgeti(T, LUA_REGISTRYINDEX, srv->lp->refs_ref);
	lua_rawgeti(T, -1, srv->self_ref);
	lua_remove(T, -2);
	wa_setuservalue(T, -2); /* the handle keeps its Server alive */
	lua_pushvalue(T, -1);
	lua_setfield(T, -3, "handle");
	/* From here the handle owns the answer. */
	w->srv = srv;
	w->req = req;
	w->next = srv->reqs;
	if (srv->reqs != NULL)
		srv->reqs->prev = w;
	srv->reqs = w;
	srv->pending++;
	srv->lp->alive++;
	c->w = w;
	lua_call(T, 3, 0);
	return 0;
}

static void wa_gencb(struct evhttp_request *req, void *arg)
{
	wa_server *srv = (wa_server *)arg;
	wa_incoming c;
	if (srv->draining) {
		wa_reply_plain(srv, req, 503, "Service Unavailable", "shutting down\n", 1);
		return;
	}
	if (srv->health != NULL) {
		const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
		const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
		if (path != NULL && strcmp(path, srv->health) == 0) {
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "Content-Type", "application/json");
			evbuffer_add(evhttp_request_get_output_buffer(req), "{\"status\":\"ok\"}\n", 16);
			wa_send(srv, req, 200, "OK");
			return;
		}
	}
	c.srv = srv;
	c.req = req;
	c.w = NULL;
	if (wa_loop_call(srv->lp, wa_incoming_deliver, &c) != 0) {
		/* The Lua layer failed before it could own the answer (the error was
		 * reported): answer here, once. */
		if (c.w == NULL) {
			wa_reply_plain(srv, req, 500, "Internal Server Error", "internal error\n", 0);
		} else if (c.w->req != NULL) {
			wa_req_unlink(c.w);
			wa_reply_plain(srv, req, 500, "Internal Server Error", "internal error\n", 0);
		}
	}
}

/* ---- the Server object ---------------------------------------------------------- */

static wa_server *wa_server_check(lua_State *L, int idx)
{
	wa_server *srv = (wa_server *)luaL_checkudata(L, idx, WA_SERVER_MT);
	if (srv->lp == NULL)
		luaL_argerror(L, idx, "server is closed");
	return srv;
}

static void wa_server_unlisten(wa_server *srv)
{
	if (srv->bound != NULL) {
		evhttp_del_accept_socket(srv->http, srv->bound); /* closes the socket */
		srv->bound = NULL;
		srv->lp->alive--;
	}
}

/* Answers every request still waiting for Lua with 503 (closing). */
static void wa_refuse_pending(wa_server *srv)
{
	while (srv->reqs != NULL) {
		wa_req *w = srv->reqs;
		struct evhttp_request *req = w->req;
		wa_req_unlink(w);
		wa_reply_plain(srv, req, 503, "Service Unavailable", "server closed\n", 1);
	}
}

/* Frees everything; pending requests get 503.  L may be NULL (then refs are
 * left to the loop's table, which dies with it). */
static void wa_server_free(wa_server *srv, lua_State *L)
{
	wa_loop *lp = srv->lp;
	if (lp == NULL)
		return;
	if (srv->http != NULL) {
		wa_server_unlisten(srv);
		wa_refuse_pending(srv);
		evhttp_free(srv->http); /* fires the close callbacks: writing drops */
		srv->http = NULL;
	}
	if (srv->drained_ev != NULL) {
		event_free(srv->drained_ev);
		srv->drained_ev = NULL;
	}
	free(srv->health);
	srv->health = NULL;
	if (L != NULL) {
		wa_loop_unref(lp, L, srv->ref);
		wa_loop_unref(lp, L, srv->mt_ref);
		wa_loop_unref(lp, L, srv->self_ref);
	}
	srv->ref = srv->self_ref = srv->mt_ref = LUA_NOREF;
	srv->lp = NULL;
	wa_loop_release(lp, L);
}

/* After drain(), once nothing is pending: free evhttp on a turn of its own. */
static void wa_drained_cb(evutil_socket_t fd, short what, void *arg)
{
	wa_server *srv = (wa_server *)arg;
	(void)fd;
	(void)what;
	if (srv->lp != NULL && srv->http != NULL && srv->pending == 0 && srv->writing == 0) {
		if (srv->closing) {
			/* close() is done: its answers are out.  Nothing of this
			 * server is on the stack (a turn of its own), so the anchor
			 * can go too. */
			wa_server_free(srv, srv->lp->T);
			return;
		}
		evhttp_free(srv->http); /* closes idle kept-alive connections */
		srv->http = NULL;
		/* The userdata stays anchored until close(): dropping the anchor
		 * here could run __gc inside this callback's caller. */
	}
}

/* core.server(loop, opts, token[, request_mt]) -> Server.  opts: host
 * (default "127.0.0.1"), port (0 picks one), max_body, max_headers, timeout
 * (seconds), backlog, health (a path answered 200 without reaching Lua).
 * Each request is dispatch(token, request, handle); request.handle is the
 * handle too, and request_mt, when given, the request table's metatable (set
 * here rather than by a Lua call per request); then a request without a query
 * string has no query field, for the metatable to supply.  Returns nil,
 * message when the address cannot be bound. */
static int wa_server_new(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	const char *host = "127.0.0.1", *health = NULL;
	lua_Integer port = 0, max_body = 3 * 1024 * 1024 + 4096, max_headers = 64 * 1024;
	lua_Integer timeout = 60, backlog = 1024;
	wa_server *srv;
	struct addrinfo hints, *ai = NULL;
	struct evconnlistener *lst;
	char portstr[16];
	int rc;
	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_argcheck(L, !lua_isnoneornil(L, 3), 3, "handler token expected");
	lua_getfield(L, 2, "host");
	if (!lua_isnil(L, -1))
		host = luaL_checkstring(L, -1);
	lua_getfield(L, 2, "port");
	port = luaL_optinteger(L, -1, 0);
	lua_getfield(L, 2, "max_body");
	max_body = luaL_optinteger(L, -1, max_body);
	lua_getfield(L, 2, "max_headers");
	max_headers = luaL_optinteger(L, -1, max_headers);
	lua_getfield(L, 2, "timeout");
	timeout = luaL_optinteger(L, -1, timeout);
	lua_getfield(L, 2, "backlog");
	backlog = luaL_optinteger(L, -1, backlog);
	lua_getfield(L, 2, "health");
	if (!lua_isnil(L, -1))
		health = luaL_checkstring(L, -1);
	lua_pop(L, 6); /* host stays on the stack: it is borrowed below */
	luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
	luaL_argcheck(L, max_body > 0 && max_headers > 0 && timeout > 0 && backlog > 0, 2,
		      "limits must be positive");

	if (!lua_isnoneornil(L, 4))
		luaL_checktype(L, 4, LUA_TTABLE);
	srv = (wa_server *)lua_newuserdata(L, sizeof *srv);
	memset(srv, 0, sizeof *srv);
	srv->ref = srv->self_ref = srv->mt_ref = LUA_NOREF;
	luaL_getmetatable(L, WA_SERVER_MT);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, 1);
	wa_setuservalue(L, -2);
	srv->lp = lp;
	wa_loop_retain(lp);
	if (health != NULL && (srv->health = (char *)malloc(strlen(health) + 1)) != NULL)
		memcpy(srv->health, health, strlen(health) + 1);
	srv->http = evhttp_new(lp->base);
	srv->drained_ev = event_new(lp->base, -1, 0, wa_drained_cb, srv);
	if (srv->http == NULL || srv->drained_ev == NULL || (health != NULL && srv->health == NULL))
		return luaL_error(L, "cannot create the listener");
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)max_body);
	evhttp_set_max_headers_size(srv->http, (ev_ssize_t)max_headers);
	evhttp_set_timeout(srv->http, (int)timeout);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(srv->http, "text/plain; charset=utf-8");
	evhttp_set_gencb(srv->http, wa_gencb, srv);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", (int)port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0) {
		wa_server_free(srv, L);
		lua_pushnil(L);
		lua_pushfstring(L, "cannot resolve %s: %s", host, gai_strerror(rc));
		return 2;
	}
	lst = evconnlistener_new_bind(lp->base, NULL, NULL,
				      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				      (int)backlog, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (lst == NULL) {
		wa_server_free(srv, L);
		lua_pushnil(L);
		lua_pushfstring(L, "cannot listen on %s:%d", host, (int)port);
		return 2;
	}
	srv->bound = evhttp_bind_listener(srv->http, lst);
	if (srv->bound == NULL) {
		evconnlistener_free(lst);
		wa_server_free(srv, L);
		return luaL_error(L, "evhttp_bind_listener failed");
	}
	lp->alive++;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getsockname(evhttp_bound_socket_get_fd(srv->bound), (struct sockaddr *)&ss, &sl) == 0) {
			if (ss.ss_family == AF_INET)
				srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			else if (ss.ss_family == AF_INET6)
				srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	lua_pushvalue(L, 3);
	srv->ref = wa_loop_ref(lp, L);
	if (lua_istable(L, 4)) {
		lua_pushvalue(L, 4);
		srv->mt_ref = wa_loop_ref(lp, L);
	}
	lua_pushvalue(L, -1);
	srv->self_ref = wa_loop_ref(lp, L);
	return 1;
}

/* server:port() -> integer (the one picked when asked for port 0) */
static int wa_server_port(lua_State *L)
{
	wa_server *srv = wa_server_check(L, 1);
	lua_pushinteger(L, srv->port);
	return 1;
}

/* server:pending() -> integer: requests handed to Lua, not yet answered */
static int wa_server_pending(lua_State *L)
{
	wa_server *srv = wa_server_check(L, 1);
	lua_pushinteger(L, (lua_Integer)srv->pending);
	return 1;
}

/* server:drain() -> pending: stop accepting; requests that still come on open
 * connections get 503; the listener goes away once nothing is pending. */
static int wa_server_drain(lua_State *L)
{
	wa_server *srv = wa_server_check(L, 1);
	if (!srv->draining && srv->http != NULL) {
		srv->draining = 1;
		wa_server_unlisten(srv);
		if (srv->pending == 0 && srv->writing == 0)
			event_active(srv->drained_ev, EV_TIMEOUT, 0);
	}
	lua_pushinteger(L, (lua_Integer)srv->pending);
	return 1;
}

/* server:close(), __gc, __close: at once; pending requests get 503. */
static int wa_server__gc(lua_State *L)
{
	wa_server *srv = (wa_server *)luaL_checkudata(L, 1, WA_SERVER_MT);
	wa_server_free(srv, L);
	return 0;
}

/* server:close(): stops listening and answers pending requests with 503 at
 * once.  Freeing evhttp right away would drop those answers unwritten (the
 * client would see an empty reply), so while any is being written the server
 * stays anchored and wa_drained_cb frees it once they are out.  Safe twice. */
static int wa_server_close(lua_State *L)
{
	wa_server *srv = (wa_server *)luaL_checkudata(L, 1, WA_SERVER_MT);
	if (srv->lp == NULL || srv->closing)
		return 0;
	if (srv->http != NULL) {
		srv->draining = 1; /* later requests on open connections: 503 */
		wa_server_unlisten(srv);
		wa_refuse_pending(srv);
		if (srv->writing > 0) {
			srv->closing = 1;
			return 0;
		}
	}
	wa_server_free(srv, L);
	return 0;
}

static const luaL_Reg wa_server_methods[] = {
	{"port", wa_server_port},
	{"pending", wa_server_pending},
	{"drain", wa_server_drain},
	{"close", wa_server_close},
	{NULL, NULL},
};

static const luaL_Reg wa_request_methods[] = {
	{"respond", wa_req_respond},
	{"gone", wa_req_gone},
	{"answered", wa_req_answered},
	{NULL, NULL},
};

void wa_server_open(lua_State *L)
{
	wa_class(L, WA_SERVER_MT, wa_server_methods, wa_server__gc);
	wa_class(L, WA_REQUEST_MT, wa_request_methods, wa_req__gc);
	lua_pushcfunction(L, wa_server_new);
	lua_setfield(L, -2, "server");
}
