/*
 * http.c - the libcurl transport, the C module whatsapp.core.http (a shared
 * object of its own, so that only a process that makes HTTP requests maps
 * libcurl and its libraries; whatsapp.http loads it on first use).  It
 * reaches the loop through the loop's function table (see wa.h).
 *
 * A Session ("whatsapp.http.Session") owns a curl multi handle and a share
 * handle, driven by the loop's libevent base.
 *
 * session:submit(request, token) adds a transfer and returns at once; when it
 * ends the loop calls dispatch(token, response) or dispatch(token, nil, code,
 * message).  The Lua layer turns that into a yield in a loop task, or a
 * blocking wait in a plain script (it turns the loop until its answer comes).
 *
 * libcurl drives its sockets through two callbacks (the multi_socket API):
 * the socket callback tells us which fds to watch for what, and the timer
 * callback when to call curl_multi_socket_action without an fd.  We keep one
 * libevent event per socket and one timer event per session.  Lua is never
 * called from inside a libcurl callback: transfers are finished (and Lua
 * reached, through wa_loop_call) only after curl_multi_socket_action returns.
 *
 * The share handle holds the connection cache, DNS cache and TLS sessions, so
 * keep-alive and TLS resumption work across every transfer of the session.
 * Easy handles are reset and reused.  Strings we hand libcurl are copied by it
 * (URL, headers via curl_slist, body via CURLOPT_COPYPOSTFIELDS, mime data),
 * so nothing borrowed from Lua has to stay anchored.
 *
 * Errors carry a stable code (timeout, connect, resolve, tls, too_large,
 * aborted, connection, io, url, transport) and libcurl's message, which names
 * the host but never a request header: the Authorization header cannot leak.
 */
#define WA_OUTSIDE_CORE /* loop calls through lp->api */
#include "wa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/evp.h>

#define WA_SESSION_MT "whatsapp.http.Session"
#define WA_HOLDER_MT "whatsapp.http.Holder"
#define WA_POOL_MAX 64
#define WA_HEADER_MAX 8192 /* one request header line */

typedef struct wa_session wa_session;

typedef struct {
	char *p;
	size_t len, cap;
} wa_buf;

typedef struct wa_xfer {
	struct wa_xfer *prev, *next; /* the session's in-flight list */
	wa_session *s;
	CURL *easy;
	lua_Integer id;
	int ref;                     /* token */
	struct curl_slist *headers;
	curl_mime *mime;
	wa_buf body;                 /* response body (not for downloads) */
	wa_buf hdr;                  /* raw header lines of the last response */
	FILE *out;                   /* download target */
	char *out_path;
	EVP_MD_CTX *md;              /* sha256 of a download */
	curl_off_t max_size;         /* 0: no limit */
	curl_off_t got;
	int too_large;
	int io_failed;
	char errbuf[CURL_ERROR_SIZE];
} wa_xfer;

typedef struct wa_sock {
	struct wa_sock *prev, *next; /* the session's list, freed at close */
	wa_session *s;
	struct event *ev;
	curl_socket_t fd;
} wa_sock;

struct wa_session {
	wa_loop *lp;         /* NULL once closed */
	CURLM *multi;
	CURLSH *share;
	struct event *timer;
	wa_xfer *inflight;
	long ninflight;
	wa_sock *socks;
	CURL *pool[WA_POOL_MAX];
	int npool;
	lua_Integer next_id;
	char *ca_file, *ca_path, *user_agent;
	int verify;
	long timeout_ms, connect_timeout_ms; /* defaults for requests without */
	int busy;            /* inside socket_action / finishing transfers */
	int closing;         /* close() came while busy */
};

/* ---- small buffers ------------------------------------------------------ */

static int wa_buf_add(wa_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		np = (char *)realloc(b->p, cap);
		if (np == NULL)
			return 0;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 1;
}

static void wa_buf_free(wa_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static char *wa_strdup(const char *s)
{
	size_t n;
	char *d;
	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	d = (char *)malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* ---- libcurl callbacks (no Lua in here) ---------------------------------- */

static size_t wa_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	wa_xfer *x = (wa_xfer *)arg;
	size_t n = size * nmemb;
	if (x->max_size > 0 && x->got + (curl_off_t)n > x->max_size) {
		x->too_large = 1;
		return 0; /* abort: CURLE_WRITE_ERROR */
	}
	x->got += (curl_off_t)n;
	if (x->out != NULL) {
		if (fwrite(ptr, 1, n, x->out) != n) {
			x->io_failed = 1;
			return 0;
		}
		if (x->md != NULL && EVP_DigestUpdate(x->md, ptr, n) != 1) {
			x->io_failed = 1;
			return 0;
		}
		return n;
	}
	if (!wa_buf_add(&x->body, ptr, n)) {
		x->io_failed = 1;
		return 0;
	}
	return n;
}

static size_t wa_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	wa_xfer *x = (wa_xfer *)arg;
	size_t n = size * nmemb;
	/* A new status line (after 1xx, or a redirect) starts a new header set. */
	if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
		x->hdr.len = 0;
		return n;
	}
	if (x->hdr.len + n > 256 * 1024)
		return n; /* absurd header volume: keep what we have */
	if (!wa_buf_add(&x->hdr, ptr, n)) {
		x->io_failed = 1;
		return 0;
	}
	return n;
}

static void wa_check_done(wa_session *s);

static void wa_sock_free(wa_session *s, wa_sock *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		s->socks = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	event_free(k->ev);
	free(k);
}

static void wa_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	wa_session *s = (wa_session *)arg;
	int running = 0;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	s->busy++;
	curl_multi_socket_action(s->multi, fd, action, &running);
	s->busy--;
	wa_check_done(s);
}

static void wa_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	wa_session *s = (wa_session *)arg;
	int running = 0;
	(void)fd;
	(void)what;
	s->busy++;
	curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	s->busy--;
	wa_check_done(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what libcurl asks, or stop. */
static int wa_curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	wa_session *s = (wa_session *)userp;
	wa_sock *k = (wa_sock *)sockp;
	short kind;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (k != NULL) {
			wa_sock_free(s, k);
			curl_multi_assign(s->multi, fd, NULL);
		}
		return 0;
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
		       ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (k == NULL) {
		k = (wa_sock *)calloc(1, sizeof *k);
		if (k == NULL)
			return -1;
		k->s = s;
		k->fd = fd;
		k->ev = event_new(s->lp->base, fd, kind, wa_sock_cb, s);
		if (k->ev == NULL) {
			free(k);
			return -1;
		}
		k->next = s->socks;
		if (s->socks != NULL)
			s->socks->prev = k;
		s->socks = k;
		curl_multi_assign(s->multi, fd, k);
	} else {
		event_del(k->ev);
		event_assign(k->ev, s->lp->base, fd, kind, wa_sock_cb, s);
	}
	event_add(k->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the session's timer. */
static int wa_curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	wa_session *s = (wa_session *)userp;
	struct timeval tv;
	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(s->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
	return 0;
}

/* ---- transfers ------------------------------------------------------------ */

static void wa_xfer_unlink(wa_session *s, wa_xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		s->inflight = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	s->ninflight--;
}

/* Free what the transfer holds; its easy handle goes back to the pool. */
static void wa_xfer_free(wa_session *s, wa_xfer *x, int failed)
{
	if (x->out != NULL) {
		fclose(x->out);
		x->out = NULL;
		if (failed && x->out_path != NULL)
			unlink(x->out_path); /* never leave a partial download */
	}
	free(x->out_path);
	if (x->md != NULL)
		EVP_MD_CTX_free(x->md);
	if (x->headers != NULL)
		curl_slist_free_all(x->headers);
	if (x->mime != NULL)
		curl_mime_free(x->mime);
	wa_buf_free(&x->body);
	wa_buf_free(&x->hdr);
	if (x->easy != NULL) {
		if (s != NULL && s->npool < WA_POOL_MAX && s->lp != NULL) {
			curl_easy_reset(x->easy);
			s->pool[s->npool++] = x->easy;
		} else {
			curl_easy_cleanup(x->easy);
		}
	}
	free(x);
}

/* Stable code for a libcurl result. */
static const char *wa_curl_code(const wa_xfer *x, CURLcode rc)
{
	if (x->too_large)
		return "too_large";
	if (x->io_failed)
		return "io";
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "resolve";
	case CURLE_COULDNT_CONNECT:
		return "connect";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return "tls";
	case CURLE_FILESIZE_EXCEEDED:
		return "too_large";
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return "url";
	case CURLE_READ_ERROR:
	case CURLE_WRITE_ERROR:
		return "io";
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return "connection";
	default:
		return "transport";
	}
}

/* Push the header lines of hdr as a headers table (the core's, see
 * headers.c): lower-cased names, repeated headers joined with ", ". */
static void wa_push_headers(wa_loop *lp, lua_State *T, const wa_buf *hdr)
{
	const char *p = hdr->p, *end = hdr->p + hdr->len;
	lp->api->headers_new(T);
	while (p != NULL && p < end) {
		const char *eol = (const char *)memchr(p, '\n', (size_t)(end - p));
		const char *colon, *v, *ve;
		if (eol == NULL)
			eol = end;
		colon = (const char *)memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL && colon > p) {
			v = colon + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			lp->api->headers_add(T, p, (size_t)(colon - p), v, (size_t)(ve - v));
		}
		p = eol + 1;
	}
}

typedef struct {
	wa_xfer *x;
	CURLcode rc;
} wa_done;

/* Runs protected on T: dispatch(token, response) or dispatch(token, nil,
 * code, message). */
static int wa_xfer_deliver(lua_State *T)
{
	wa_done *d = (wa_done *)lua_touserdata(T, 1);
	wa_xfer *x = d->x;
	wa_loop_push_dispatch(x->s->lp, T, x->ref);
	if (d->rc == CURLE_OK && !x->too_large && !x->io_failed) {
		long status = 0, ver = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &ver);
		lua_createtable(T, 0, 6);
		lua_pushinteger(T, status);
		lua_setfield(T, -2, "status");
		wa_push_headers(x->s->lp, T, &x->hdr);
		lua_setfield(T, -2, "headers");
		if (x->out_path != NULL) {
			unsigned char dg[EVP_MAX_MD_SIZE];
			unsigned int dl = 0, i;
			char hex[2 * EVP_MAX_MD_SIZE + 1];
			EVP_DigestFinal_ex(x->md, dg, &dl);
			for (i = 0; i < dl; i++)
				snprintf(hex + 2 * i, 3, "%02x", dg[i]);
			lua_pushlstring(T, hex, 2 * (size_t)dl);
			lua_setfield(T, -2, "sha256");
			lua_pushstring(T, x->out_path);
			lua_setfield(T, -2, "file");
		} else {
			lua_pushlstring(T, x->body.p != NULL ? x->body.p : "", x->body.len);
			lua_setfield(T, -2, "body");
		}
		lua_pushinteger(T, (lua_Integer)x->got);
		lua_setfield(T, -2, "size");
		lua_pushstring(T, ver == CURL_HTTP_VERSION_2_0 ? "2" :
				  ver == CURL_HTTP_VERSION_1_0 ? "1.0" :
#ifdef CURL_HTTP_VERSION_3
				  ver == CURL_HTTP_VERSION_3 ? "3" :
#endif
				  "1.1");
		lua_setfield(T, -2, "http_version");
		lua_call(T, 2, 0);
	} else {
		const char *code = wa_curl_code(x, d->rc);
		const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(d->rc);
		lua_pushnil(T);
		lua_pushstring(T, code);
		if (x->too_large || d->rc == CURLE_FILESIZE_EXCEEDED) {
			/* Both ways over max_size (the write callback counting a
			 * chunked body, or libcurl seeing Content-Length) say the same. */
			char msg[64];
			snprintf(msg, sizeof msg, "response larger than %lld bytes",
				 (long long)x->max_size);
			lua_pushstring(T, msg);
		} else {
			lua_pushstring(T, detail);
		}
		lua_call(T, 4, 0);
	}
	return 0;
}

/* Collect the finished transfers, then reach Lua for each.  Lua may submit
 * new transfers or close the session from dispatch; both are safe here since
 * no libcurl call is on the stack. */
static void wa_session_cleanup(wa_session *s, lua_State *L);

static void wa_check_done(wa_session *s)
{
	CURLMsg *m;
	int left;
	wa_loop *lp = s->lp;
	if (lp == NULL)
		return;
	s->busy++;
	while (!s->closing && (m = curl_multi_info_read(s->multi, &left)) != NULL) {
		wa_xfer *x;
		char *priv = NULL;
		wa_done d;
		int ref, failed;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (wa_xfer *)priv;
		d.x = x;
		d.rc = m->data.result;
		curl_multi_remove_handle(s->multi, x->easy);
		wa_xfer_unlink(s, x);
		lp->alive--;
		failed = d.rc != CURLE_OK || x->too_large || x->io_failed;
		/* The download file is complete, or gone, before Lua hears of it:
		 * a task resumed by the dispatch may look at it at once. */
		if (x->out != NULL) {
			if (fclose(x->out) != 0 && !failed) {
				x->io_failed = 1;
				failed = 1;
			}
			x->out = NULL;
			if (failed)
				unlink(x->out_path);
		}
		ref = x->ref;
		wa_loop_call(lp, wa_xfer_deliver, &d);
		x->ref = LUA_NOREF;
		wa_loop_unref(lp, lp->T, ref);
		wa_xfer_free(s, x, failed);
	}
	s->busy--;
	if (s->closing && s->busy == 0) {
		/* close() or __gc came during a dispatch: the userdata may be
		 * gone already, the struct is ours to free. */
		wa_session_cleanup(s, lp->T);
		free(s);
	}
}

/* ---- the Session object ----------------------------------------------------- */

/* The userdata holds a pointer: a session closed or collected while one of
 * its dispatches runs (busy) must outlive the userdata until that returns. */
typedef struct {
	wa_session *s; /* NULL once closed */
} wa_session_ud;

static wa_session *wa_session_check(lua_State *L, int idx)
{
	wa_session_ud *u = (wa_session_ud *)luaL_checkudata(L, idx, WA_SESSION_MT);
	if (u->s == NULL)
		luaL_argerror(L, idx, "session is closed");
	return u->s;
}

static const char *wa_optfield_str(lua_State *L, int t, const char *k)
{
	const char *v;
	lua_getfield(L, t, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "option '%s' must be a string", k);
	v = lua_tostring(L, -1);
	lua_pop(L, 1); /* the string stays alive in the table */
	return v;
}

static lua_Number wa_optfield_num(lua_State *L, int t, const char *k, lua_Number def)
{
	lua_Number v;
	lua_getfield(L, t, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return def;
	}
	if (lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "option '%s' must be a number", k);
	v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

/* Seconds to whole milliseconds, at least 1 (0 would mean "no limit"). */
static long wa_ms(lua_Number secs)
{
	long ms = (long)(secs * 1000 + 0.5);
	return ms > 0 ? ms : 1;
}

/* http.session(loop, opts) -> Session.  opts: ca_file, ca_path, verify
 * (default true), user_agent, max_host_connections, max_connections, timeout
 * and connect_timeout (seconds; defaults for requests that give none). */
static int wa_session_new(lua_State *L)
{
	wa_loop *lp = wa_loop_check(L, 1);
	wa_session_ud *u;
	wa_session *s;
	const char *ca_file = NULL, *ca_path = NULL, *ua = NULL;
	long max_host = 0, max_total = 0;
	lua_Number to = 0, cto = 0;
	int verify = 1;
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		ca_file = wa_optfield_str(L, 2, "ca_file");
		ca_path = wa_optfield_str(L, 2, "ca_path");
		ua = wa_optfield_str(L, 2, "user_agent");
		max_host = (long)wa_optfield_num(L, 2, "max_host_connections", 0);
		max_total = (long)wa_optfield_num(L, 2, "max_connections", 0);
		to = wa_optfield_num(L, 2, "timeout", 0);
		cto = wa_optfield_num(L, 2, "connect_timeout", 0);
		if (to < 0 || cto < 0)
			return luaL_error(L, "timeouts must not be negative");
		lua_getfield(L, 2, "verify");
		if (!lua_isnil(L, -1))
			verify = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	{
		/* On first use, not at require: a webhook-only process (an nginx
		 * worker) never pays for libcurl's global set-up. */
		static int curl_ready = 0;
		if (!curl_ready) {
			if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
				return luaL_error(L, "curl_global_init failed");
			curl_ready = 1;
		}
	}
	u = (wa_session_ud *)lua_newuserdata(L, sizeof *u);
	u->s = NULL;
	luaL_getmetatable(L, WA_SESSION_MT);
	lua_setmetatable(L, -2);
	s = (wa_session *)calloc(1, sizeof *s);
	if (s == NULL)
		return luaL_error(L, "out of memory");
	u->s = s; /* from here __gc frees whatever was made */
	lua_pushvalue(L, 1);
	wa_setuservalue(L, -2); /* the session keeps its Loop userdata */
	s->lp = lp;
	wa_loop_retain(lp);
	s->verify = verify;
	s->timeout_ms = to > 0 ? wa_ms(to) : 0;
	s->connect_timeout_ms = cto > 0 ? wa_ms(cto) : 0;
	s->next_id = 1;
	s->multi = curl_multi_init();
	s->share = curl_share_init();
	s->timer = evtimer_new(lp->base, wa_timeout_cb, s);
	if (s->multi == NULL || s->share == NULL || s->timer == NULL)
		return luaL_error(L, "cannot create an HTTP session");
	/* One thread: the share needs no lock callbacks. */
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, wa_curl_socket_cb);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, wa_curl_timer_cb);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
	if (max_host > 0)
		curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host);
	if (max_total > 0)
		curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total);
	s->ca_file = wa_strdup(ca_file);
	s->ca_path = wa_strdup(ca_path);
	s->user_agent = wa_strdup(ua != NULL ? ua : "lua-whatsapp/" WA_VERSION);
	if ((ca_file && !s->ca_file) || (ca_path && !s->ca_path) || !s->user_agent)
		return luaL_error(L, "out of memory");
	return 1;
}

/* Append one "Name: value" line; raises on CR/LF (header injection). */
static void wa_add_header(lua_State *L, wa_xfer *x, const char *name, size_t nl,
			  const char *val, size_t vl)
{
	char line[WA_HEADER_MAX];
	struct curl_slist *nh;
	size_t i;
	if (nl == 0 || nl + vl + 3 > sizeof line)
		luaL_error(L, "header too long or empty name");
	for (i = 0; i < nl; i++)
		if (name[i] == '\r' || name[i] == '\n' || name[i] == ':' || name[i] == ' ')
			luaL_error(L, "invalid character in header name");
	for (i = 0; i < vl; i++)
		if (val[i] == '\r' || val[i] == '\n' || val[i] == '\0')
			luaL_error(L, "invalid character in the value of header '%s'", name);
	memcpy(line, name, nl);
	line[nl] = ':';
	if (vl > 0) {
		line[nl + 1] = ' ';
		memcpy(line + nl + 2, val, vl);
		line[nl + 2 + vl] = '\0';
	} else {
		/* "Name;" sends an empty header; "Name:" would remove it. */
		line[nl] = ';';
		line[nl + 1] = '\0';
	}
	nh = curl_slist_append(x->headers, line);
	if (nh == NULL)
		luaL_error(L, "out of memory");
	x->headers = nh;
}

/* The multipart parts of request.multipart (at the top of the stack). */
static void wa_add_mime(lua_State *L, wa_xfer *x)
{
	int t = lua_gettop(L), n, i;
	luaL_checktype(L, t, LUA_TTABLE);
	n = (int)wa_rawlen(L, t);
	if (n == 0)
		luaL_error(L, "multipart needs at least one part");
	x->mime = curl_mime_init(x->easy);
	if (x->mime == NULL)
		luaL_error(L, "out of memory");
	for (i = 1; i <= n; i++) {
		curl_mimepart *part;
		const char *name, *file, *fname, *type;
		lua_rawgeti(L, t, i);
		if (lua_type(L, -1) != LUA_TTABLE)
			luaL_error(L, "multipart[%d] must be a table", i);
		part = curl_mime_addpart(x->mime);
		if (part == NULL)
			luaL_error(L, "out of memory");
		name = wa_optfield_str(L, -1, "name");
		if (name == NULL)
			luaL_error(L, "multipart[%d].name is required", i);
		curl_mime_name(part, name);
		file = wa_optfield_str(L, -1, "file");
		lua_getfield(L, -1, "data"); /* the part is on top */
		if (file != NULL && !lua_isnil(L, -1))
			luaL_error(L, "multipart[%d]: give data or file, not both", i);
		if (file != NULL) {
			/* Read when the transfer runs; an unreadable file fails it with "io". */
			curl_mime_filedata(part, file);
		} else if (lua_type(L, -1) == LUA_TSTRING) {
			size_t dl;
			const char *data = lua_tolstring(L, -1, &dl);
			if (curl_mime_data(part, data, dl) != CURLE_OK)
				luaL_error(L, "out of memory");
		} else {
			luaL_error(L, "multipart[%d] needs data (a string) or file", i);
		}
		lua_pop(L, 1);
		fname = wa_optfield_str(L, -1, "filename");
		if (fname != NULL)
			curl_mime_filename(part, fname);
		type = wa_optfield_str(L, -1, "type");
		if (type != NULL)
			curl_mime_type(part, type);
		lua_pop(L, 1);
	}
	curl_easy_setopt(x->easy, CURLOPT_MIMEPOST, x->mime);
}

/* Everything that can raise while a request is built runs here, with the
 * transfer owned by a holder userdata at stack index 3, so a raise frees it. */
typedef struct {
	wa_xfer *x;
} wa_holder;

static int wa_holder__gc(lua_State *L)
{
	wa_holder *h = (wa_holder *)lua_touserdata(L, 1);
	if (h->x != NULL) {
		wa_xfer *x = h->x;
		h->x = NULL;
		wa_xfer_free(NULL, x, 1); /* its session may be gone by now */
	}
	return 0;
}

/* Sets every option of x from the request table at index 2.  Returns 0, or 1
 * with a message pushed when the download file cannot be created. */
static int wa_build(lua_State *L, wa_session *s, wa_xfer *x)
{
	CURL *e = x->easy;
	const char *url, *method, *dl;
	lua_Number to, cto, maxs;
	int has_body = 0;

	url = wa_optfield_str(L, 2, "url");
	if (url == NULL)
		luaL_error(L, "request.url is required");
	method = wa_optfield_str(L, 2, "method");

	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wa_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, wa_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_USERAGENT, s->user_agent);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	/* Wait for a connection being set up to learn whether it multiplexes (h2)
	 * only where h2 can be offered (https, ALPN): on plain http it would hold
	 * every concurrent request to a host until the first response arrived. */
	if (strncasecmp(url, "https:", 6) == 0)
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, s->verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, s->verify ? 2L : 0L);
	if (s->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
	if (s->ca_path != NULL)
		curl_easy_setopt(e, CURLOPT_CAPATH, s->ca_path);
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK)
		luaL_error(L, "out of memory");

	to = wa_optfield_num(L, 2, "timeout", 0);
	cto = wa_optfield_num(L, 2, "connect_timeout", 0);
	maxs = wa_optfield_num(L, 2, "max_size", 0);
	if (to < 0 || cto < 0 || maxs < 0)
		luaL_error(L, "timeouts and max_size must not be negative");
	if (to > 0 || s->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to > 0 ? wa_ms(to) : s->timeout_ms);
	if (cto > 0 || s->connect_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
				 cto > 0 ? wa_ms(cto) : s->connect_timeout_ms);
	if (maxs > 0) {
		x->max_size = (curl_off_t)maxs;
		curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, x->max_size);
	}

	/* Headers: a map name -> value, or "Name: value" strings in the array part. */
	lua_getfield(L, 2, "headers");
	if (!lua_isnil(L, -1)) {
		int ht = lua_gettop(L);
		luaL_argcheck(L, lua_istable(L, ht), 1, "request.headers must be a table");
		lua_pushnil(L);
		while (lua_next(L, ht) != 0) {
			size_t nl, vl;
			const char *n, *v;
			if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
				const char *line = lua_tolstring(L, -1, &vl);
				const char *c = (const char *)memchr(line, ':', vl);
				if (c == NULL)
					luaL_error(L, "header line without ':'");
				v = c + 1;
				while (*v == ' ')
					v++;
				wa_add_header(L, x, line, (size_t)(c - line), v,
					      vl - (size_t)(v - line));
			} else if (lua_type(L, -2) == LUA_TSTRING &&
				   (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
				n = lua_tolstring(L, -2, &nl);
				lua_pushvalue(L, -1);
				v = lua_tolstring(L, -1, &vl); /* converts the copy, not the key */
				wa_add_header(L, x, n, nl, v, vl);
				lua_pop(L, 1);
			} else {
				luaL_error(L, "request.headers: names and values must be strings");
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	/* libcurl would send "Expect: 100-continue" for big bodies: a round trip
	 * nobody here needs. */
	{
		struct curl_slist *nh = curl_slist_append(x->headers, "Expect:");
		if (nh == NULL)
			luaL_error(L, "out of memory");
		x->headers = nh;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);

	lua_getfield(L, 2, "body");
	if (!lua_isnil(L, -1)) {
		size_t bl;
		const char *body;
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "request.body must be a string");
		body = lua_tolstring(L, -1, &bl);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bl);
		if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK)
			luaL_error(L, "out of memory");
		has_body = 1;
	}
	lua_pop(L, 1);
	lua_getfield(L, 2, "multipart");
	if (!lua_isnil(L, -1)) {
		if (has_body)
			luaL_error(L, "request: give body or multipart, not both");
		wa_add_mime(L, x);
		has_body = 1;
	}
	lua_pop(L, 1);

	if (method == NULL)
		method = has_body ? "POST" : "GET";
	if (strcmp(method, "GET") == 0) {
		if (has_body)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "GET");
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		if (!has_body) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
			curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
		}
	} else {
		size_t i, ml = strlen(method);
		for (i = 0; i < ml; i++)
			if (method[i] < 'A' || method[i] > 'Z')
				luaL_error(L, "request.method must be an upper-case token");
		if (curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
			luaL_error(L, "out of memory");
	}

	dl = wa_optfield_str(L, 2, "download");
	if (dl != NULL) {
		x->out_path = wa_strdup(dl);
		x->md = EVP_MD_CTX_new();
		if (x->out_path == NULL || x->md == NULL ||
		    EVP_DigestInit_ex(x->md, EVP_sha256(), NULL) != 1)
			luaL_error(L, "out of memory");
		/* Opened last: a raise before this leaves no file behind. */
		x->out = fopen(dl, "wb");
		if (x->out == NULL) {
			lua_pushfstring(L, "cannot open %s for writing", dl);
			return 1;
		}
	}
	/* Last: a request that raised above never held the share (its holder may
	 * be collected after the session is gone). */
	curl_easy_setopt(e, CURLOPT_SHARE, s->share);
	return 0;
}

/* session:submit(request, token) -> id | nil, code, message.
 * Raises on a malformed request table (a programmer error); returns nil, "io"
 * when the download file cannot be created. */
static int wa_session_submit(lua_State *L)
{
	wa_session *s = wa_session_check(L, 1);
	wa_xfer *x;
	wa_holder *h;
	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_argcheck(L, !lua_isnoneornil(L, 3), 3, "token expected");
	lua_settop(L, 3);
	h = (wa_holder *)lua_newuserdata(L, sizeof *h); /* index 4 */
	h->x = NULL;
	luaL_getmetatable(L, WA_HOLDER_MT);
	lua_setmetatable(L, -2);
	x = (wa_xfer *)calloc(1, sizeof *x);
	if (x == NULL)
		return luaL_error(L, "out of memory");
	x->s = s;
	x->ref = LUA_NOREF;
	h->x = x;
	x->easy = s->npool > 0 ? s->pool[--s->npool] : curl_easy_init();
	if (x->easy == NULL)
		return luaL_error(L, "curl_easy_init failed");
	if (wa_build(L, s, x)) {
		h->x = NULL;
		wa_xfer_free(s, x, 1);
		lua_pushnil(L);
		lua_pushliteral(L, "io");
		lua_pushvalue(L, -3);
		return 3;
	}
	lua_settop(L, 4);
	if (curl_multi_add_handle(s->multi, x->easy) != CURLM_OK) {
		h->x = NULL;
		wa_xfer_free(s, x, 1);
		return luaL_error(L, "curl_multi_add_handle failed");
	}
	h->x = NULL; /* the session owns it now */
	lua_pushvalue(L, 3);
	x->ref = wa_loop_ref(s->lp, L);
	x->id = s->next_id++;
	x->next = s->inflight;
	if (s->inflight != NULL)
		s->inflight->prev = x;
	s->inflight = x;
	s->ninflight++;
	s->lp->alive++;
	lua_pushinteger(L, x->id);
	return 1;
}

/* Aborts x: out of the multi, "aborted" delivered on the next loop turn. */
static void wa_xfer_abort(wa_session *s, wa_xfer *x, const char *why)
{
	curl_multi_remove_handle(s->multi, x->easy);
	wa_xfer_unlink(s, x);
	s->lp->alive--;
	wa_loop_defer_error(s->lp, x->ref, "aborted", why);
	x->ref = LUA_NOREF; /* the deferred result owns the token now */
	wa_xfer_free(s, x, 1);
}

/* session:cancel(id) -> boolean: the transfer ends with "aborted". */
static int wa_session_cancel(lua_State *L)
{
	wa_session *s = wa_session_check(L, 1);
	lua_Integer id = luaL_checkinteger(L, 2);
	wa_xfer *x;
	for (x = s->inflight; x != NULL; x = x->next) {
		if (x->id == id) {
			wa_xfer_abort(s, x, "request cancelled");
			lua_pushboolean(L, 1);
			return 1;
		}
	}
	lua_pushboolean(L, 0);
	return 1;
}

/* session:inflight() -> integer */
static int wa_session_inflight(lua_State *L)
{
	wa_session *s = wa_session_check(L, 1);
	lua_pushinteger(L, (lua_Integer)s->ninflight);
	return 1;
}

/* Frees the native parts.  With L (close) in-flight tokens are told
 * "aborted"; from __gc nothing can be waiting on them any more. */
static void wa_session_cleanup(wa_session *s, lua_State *L)
{
	wa_loop *lp = s->lp;
	int i;
	if (lp == NULL)
		return;
	while (s->inflight != NULL)
		wa_xfer_abort(s, s->inflight, "session closed");
	for (i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	s->npool = 0;
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi); /* removes the sockets: REMOVE callbacks */
	if (s->share != NULL)
		curl_share_cleanup(s->share);
	/* Whatever libcurl did not say REMOVE for. */
	while (s->socks != NULL)
		wa_sock_free(s, s->socks);
	if (s->timer != NULL)
		event_free(s->timer);
	s->multi = NULL;
	s->share = NULL;
	s->timer = NULL;
	free(s->ca_file);
	free(s->ca_path);
	free(s->user_agent);
	s->ca_file = s->ca_path = s->user_agent = NULL;
	s->lp = NULL;
	wa_loop_release(lp, L);
}

/* session:close(), __gc, __close: transfers in flight end with "aborted".
 * Safe twice, and from inside a dispatch of this session. */
static int wa_session__gc(lua_State *L)
{
	wa_session_ud *u = (wa_session_ud *)luaL_checkudata(L, 1, WA_SESSION_MT);
	wa_session *s = u->s;
	if (s == NULL)
		return 0;
	u->s = NULL;
	if (s->busy > 0) {
		s->closing = 1; /* wa_check_done finishes it and frees s */
		return 0;
	}
	wa_session_cleanup(s, L);
	free(s);
	return 0;
}

static const luaL_Reg wa_session_methods[] = {
	{"submit", wa_session_submit},
	{"cancel", wa_session_cancel},
	{"inflight", wa_session_inflight},
	{"close", wa_session__gc},
	{NULL, NULL},
};

/* http.curl_version() -> string */
static int wa_curl_version(lua_State *L)
{
	lua_pushstring(L, curl_version());
	return 1;
}

WA_EXPORT int luaopen_whatsapp_core_http(lua_State *L);

/* require "whatsapp.core.http" -> { session = fn(loop, opts), curl_version = fn }.
 * The headers metatable is the core's: whatsapp.core is loaded first (the
 * loop that every session needs comes from it). */
int luaopen_whatsapp_core_http(lua_State *L)
{
	wa_class(L, WA_SESSION_MT, wa_session_methods, wa_session__gc);
	luaL_newmetatable(L, WA_HOLDER_MT);
	lua_pushcfunction(L, wa_holder__gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, wa_session_new);
	lua_setfield(L, -2, "session");
	lua_pushcfunction(L, wa_curl_version);
	lua_setfield(L, -2, "curl_version");
	return 1;
}
