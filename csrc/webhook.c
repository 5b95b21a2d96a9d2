/*
 * webhook.c - raw webhook body -> list of flat events (doc/events.md).
 *
 * The body is parsed once into a tape (json.c); this file walks the envelope
 * (object -> entry[] -> changes[] -> value) and fans out every message,
 * status and value-level error of a `messages` change, and every other change,
 * into one Lua table each.  Only the fields an event exposes are turned into
 * Lua values; each event's `raw` source table is decoded later, on first
 * access, from the byte span the tape remembers (see wa_raw_index).
 *
 * Structural problems the caller cannot interpret (not an object, `entry`
 * not an array, ...) make the whole parse fail with a message and a path such
 * as "entry[1].changes[2].value.messages[3]".  Leaf fields of an unexpected
 * type are just left out of the flat event; `raw` still has them.
 *
 * Memory: the tape's buffers belong to a userdata (a "Parser"), so a Lua
 * memory error raised while building events cannot leak them; the parser is
 * kept between calls to avoid a malloc per webhook.
 */
#include "wa.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WA_PARSER_MT "whatsapp.webhook.Parser"
/* Above this, the buffers are released after a parse instead of kept. */
#define WA_KEEP_BYTES (1u << 20)
/* Spans are packed as start * WA_SPAN_LIMIT + end below this body size. */
#define WA_SPAN_LIMIT 67108864.0

typedef struct {
	wa_tape tape;
	int closed;
} wa_parser;

/* What the walk needs at hand. */
typedef struct {
	lua_State *L;
	const wa_tape *t;
	int events;  /* stack index of the result array */
	int nevents; /* events stored so far */
	int rawfn;   /* stack index of the shared metatable for raw, or 0 */
	int spans;   /* stack index of the event -> span table */
	int errmt;   /* stack index of the error objects' metatable, or 0 */
	/* stack indexes of per-change strings, pushed once and reused (0 = none) */
	int s_field, s_waba, s_pnid, s_dpn;
	int has_time;
	lua_Integer entry_time;
	char path[160];
	char err[200];
} wa_walk;

/* ---- tape helpers -------------------------------------------------------- */

#define WA_KEY(k) (k), (sizeof(k) - 1)

static int wa_is(const wa_tape *t, uint32_t i, const char *s, size_t n)
{
	return t->nodes[i].len == n && memcmp(t->nodes[i].u.p, s, n) == 0;
}

/*
 * Value of key in object node obj, or 0 when absent (0 is the root, never a
 * member value).  The last duplicate wins, as in lua-cjson.
 */
static uint32_t wa_get(const wa_tape *t, uint32_t obj, const char *key, size_t klen)
{
	uint32_t j, found = 0, end;
	if (t->nodes[obj].type != WA_J_OBJ)
		return 0;
	end = t->nodes[obj].u.c.next;
	for (j = obj + 1; j < end; j = wa_jskip(t, j + 1))
		if (wa_is(t, j, key, klen))
			found = j + 1;
	return found;
}

static int wa_type(const wa_tape *t, uint32_t i)
{
	return i ? t->nodes[i].type : -1;
}

/* Member of obj if it is a string, else 0. */
static uint32_t wa_gets(const wa_tape *t, uint32_t obj, const char *key, size_t klen)
{
	uint32_t v = obj ? wa_get(t, obj, key, klen) : 0;
	return wa_type(t, v) == WA_J_STR ? v : 0;
}

/* Member of obj if it is an object, else 0. */
static uint32_t wa_geto(const wa_tape *t, uint32_t obj, const char *key, size_t klen)
{
	uint32_t v = obj ? wa_get(t, obj, key, klen) : 0;
	return wa_type(t, v) == WA_J_OBJ ? v : 0;
}

static int wa_streq(const wa_tape *t, uint32_t i, const char *s, size_t n)
{
	return i && t->nodes[i].type == WA_J_STR && wa_is(t, i, s, n);
}

/* Parse a decimal integer from a JSON number or a numeric string. */
static int wa_toint(const wa_tape *t, uint32_t i, lua_Integer *out)
{
	const wa_jnode *nd;
	long long v = 0;
	uint32_t k;
	int neg = 0;
	if (i == 0)
		return 0;
	nd = &t->nodes[i];
	if (nd->type != WA_J_STR && nd->type != WA_J_NUM)
		return 0;
	if (nd->len == 0 || nd->len > 18) /* fits in 63 bits without overflow checks */
		return 0;
	k = 0;
	if (nd->u.p[0] == '-') {
		neg = 1;
		k = 1;
		if (nd->len == 1)
			return 0;
	}
	for (; k < nd->len; k++) {
		char c = nd->u.p[k];
		if (c < '0' || c > '9')
			return 0;
		v = v * 10 + (c - '0');
	}
	*out = (lua_Integer)(neg ? -v : v);
	return 1;
}

/* ---- setting fields on the table at the top of the stack ----------------- */

static void wa_setstr(wa_walk *w, const char *name, uint32_t i)
{
	if (wa_type(w->t, i) == WA_J_STR) {
		lua_pushlstring(w->L, w->t->nodes[i].u.p, w->t->nodes[i].len);
		lua_setfield(w->L, -2, name);
	}
}

/* Set name from member key of obj when it is a string. */
static void wa_copystr(wa_walk *w, uint32_t obj, const char *name, const char *key, size_t klen)
{
	if (obj)
		wa_setstr(w, name, wa_get(w->t, obj, key, klen));
}

static void wa_copybool(wa_walk *w, uint32_t obj, const char *name, const char *key, size_t klen)
{
	uint32_t v = obj ? wa_get(w->t, obj, key, klen) : 0;
	int ty = wa_type(w->t, v);
	if (ty == WA_J_TRUE || ty == WA_J_FALSE) {
		lua_pushboolean(w->L, ty == WA_J_TRUE);
		lua_setfield(w->L, -2, name);
	}
}

/* A number, or a string holding one (location coordinates come as both). */
static void wa_copynum(wa_walk *w, uint32_t obj, const char *name, const char *key, size_t klen)
{
	uint32_t v = obj ? wa_get(w->t, obj, key, klen) : 0;
	int ty = wa_type(w->t, v);
	if (ty == WA_J_NUM) {
		wa_push_jnumber(w->L, w->t->nodes[v].u.p, w->t->nodes[v].len);
		lua_setfield(w->L, -2, name);
	} else if (ty == WA_J_STR) {
		const wa_jnode *nd = &w->t->nodes[v];
		char buf[64];
		char *end;
		double d;
		if (nd->len == 0 || nd->len >= sizeof buf)
			return;
		memcpy(buf, nd->u.p, nd->len);
		buf[nd->len] = '\0';
		d = strtod(buf, &end);
		if (end == buf + nd->len) {
			lua_pushnumber(w->L, (lua_Number)d);
			lua_setfield(w->L, -2, name);
		}
	}
}

static void wa_copyint(wa_walk *w, uint32_t obj, const char *name, const char *key, size_t klen)
{
	lua_Integer v;
	if (obj && wa_toint(w->t, wa_get(w->t, obj, key, klen), &v)) {
#if LUA_VERSION_NUM >= 503
		lua_pushinteger(w->L, v);
#else
		lua_pushnumber(w->L, (lua_Number)v);
#endif
		lua_setfield(w->L, -2, name);
	}
}

/* Generic copy of member key (any JSON type) under name. */
static void wa_copyany(wa_walk *w, uint32_t obj, const char *name, const char *key, size_t klen)
{
	uint32_t v = obj ? wa_get(w->t, obj, key, klen) : 0;
	if (v && w->t->nodes[v].type != WA_J_NULL) {
		wa_tape_push(w->L, w->t, v);
		lua_setfield(w->L, -2, name);
	}
}

static void wa_setlit(wa_walk *w, const char *name, const char *value)
{
	lua_pushstring(w->L, value);
	lua_setfield(w->L, -2, name);
}

/* ---- errors -------------------------------------------------------------- */

/* Record a structural failure at the current path plus suffix; returns 0. */
static int wa_fail(wa_walk *w, const char *suffix, const char *what)
{
	char full[200];
	snprintf(full, sizeof full, "%s%s", w->path, suffix ? suffix : "");
	memcpy(w->path, full, sizeof w->path - 1);
	w->path[sizeof w->path - 1] = '\0';
	snprintf(w->err, sizeof w->err, "%s%s%s", what, w->path[0] ? " at " : "", w->path);
	return 0;
}

/*
 * One error table {code, title, message, details, href} from an error object
 * of a message, status or value.
 */
static void wa_push_error(wa_walk *w, uint32_t e)
{
	uint32_t data = wa_geto(w->t, e, WA_KEY("error_data"));
	lua_createtable(w->L, 0, 5);
	wa_copyint(w, e, "code", WA_KEY("code"));
	wa_copystr(w, e, "title", WA_KEY("title"));
	wa_copystr(w, e, "message", WA_KEY("message"));
	wa_copystr(w, data, "details", WA_KEY("details"));
	/* The legacy (On-Premises style) shape put details at the top. */
	if (!wa_gets(w->t, data, WA_KEY("details")))
		wa_copystr(w, e, "details", WA_KEY("details"));
	wa_copystr(w, e, "href", WA_KEY("href"));
	/* Meta's message repeats the title; keep one when only the title came. */
	if (!wa_gets(w->t, e, WA_KEY("message")))
		wa_copystr(w, e, "message", WA_KEY("title"));
	if (w->errmt) {
		lua_pushvalue(w->L, w->errmt);
		lua_setmetatable(w->L, -2);
	}
}

/* ev.errors = list of error tables, when obj has an `errors` array. */
static void wa_set_errors(wa_walk *w, uint32_t obj)
{
	uint32_t arr = obj ? wa_get(w->t, obj, WA_KEY("errors")) : 0, j;
	int k = 1;
	if (wa_type(w->t, arr) != WA_J_ARR)
		return;
	lua_createtable(w->L, (int)w->t->nodes[arr].len, 0);
	for (j = arr + 1; j < w->t->nodes[arr].u.c.next; j = wa_jskip(w->t, j)) {
		if (w->t->nodes[j].type != WA_J_OBJ)
			continue;
		wa_push_error(w, j);
		lua_rawseti(w->L, -2, k++);
	}
	lua_setfield(w->L, -2, "errors");
}

/* ---- events -------------------------------------------------------------- */

/*
 * Start an event table with the fields every event has, and remember the
 * span of its source for `raw`.  Leaves the table on the stack.
 */
static void wa_begin_event(wa_walk *w, const char *kind, uint32_t src)
{
	lua_State *L = w->L;
	lua_createtable(L, 0, 16);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	if (w->s_field) {
		lua_pushvalue(L, w->s_field);
		lua_setfield(L, -2, "field");
	}
	if (w->s_waba) {
		lua_pushvalue(L, w->s_waba);
		lua_setfield(L, -2, "waba_id");
	}
	if (w->has_time) {
#if LUA_VERSION_NUM >= 503
		lua_pushinteger(L, w->entry_time);
#else
		lua_pushnumber(L, (lua_Number)w->entry_time);
#endif
		lua_setfield(L, -2, "entry_time");
	}
	if (w->s_pnid) {
		lua_pushvalue(L, w->s_pnid);
		lua_setfield(L, -2, "phone_number_id");
	}
	if (w->s_dpn) {
		lua_pushvalue(L, w->s_dpn);
		lua_setfield(L, -2, "display_phone_number");
	}
	/*
	 * raw: every event of the batch shares one metatable whose __index
	 * decodes the event's byte span on first access.  The spans live in one
	 * table keyed by event (upvalue of __index), packed as start * 2^26 + end,
	 * exact in a double for bodies under 64 MiB (longer ones use a pair).
	 * Sources that are not containers get no span.
	 */
	if (w->rawfn && src) {
		const wa_jnode *nd = &w->t->nodes[src];
		if (nd->type == WA_J_OBJ || nd->type == WA_J_ARR) {
			lua_pushvalue(L, -1);
			if (w->t->input_len < WA_SPAN_LIMIT) {
				lua_pushnumber(L, (lua_Number)nd->u.c.start * WA_SPAN_LIMIT +
							  (lua_Number)nd->u.c.end);
			} else {
				lua_createtable(L, 2, 0);
				lua_pushnumber(L, (lua_Number)nd->u.c.start);
				lua_rawseti(L, -2, 1);
				lua_pushnumber(L, (lua_Number)nd->u.c.end);
				lua_rawseti(L, -2, 2);
			}
			lua_rawset(L, w->spans);
			lua_pushvalue(L, w->rawfn);
			lua_setmetatable(L, -2);
		}
	}
}

static void wa_end_event(wa_walk *w)
{
	lua_rawseti(w->L, w->events, ++w->nevents);
}

/*
 * contact = {name, wa_id, user_id, parent_user_id, username} from the entry
 * of contacts (an array node, or 0) that matches id (by wa_id) or user_id;
 * the only entry when there is exactly one.
 */
static void wa_set_contact(wa_walk *w, uint32_t contacts, uint32_t id, uint32_t user_id)
{
	const wa_tape *t = w->t;
	uint32_t j, match = 0, profile;
	if (wa_type(t, contacts) != WA_J_ARR || t->nodes[contacts].len == 0)
		return;
	for (j = contacts + 1; j < t->nodes[contacts].u.c.next && !match; j = wa_jskip(t, j)) {
		uint32_t v;
		if (t->nodes[j].type != WA_J_OBJ)
			continue;
		v = wa_gets(t, j, WA_KEY("wa_id"));
		if (id && v && t->nodes[v].len == t->nodes[id].len &&
		    memcmp(t->nodes[v].u.p, t->nodes[id].u.p, t->nodes[v].len) == 0)
			match = j;
		v = wa_gets(t, j, WA_KEY("user_id"));
		if (!match && user_id && v && t->nodes[v].len == t->nodes[user_id].len &&
		    memcmp(t->nodes[v].u.p, t->nodes[user_id].u.p, t->nodes[v].len) == 0)
			match = j;
	}
	if (!match && t->nodes[contacts].len == 1 && t->nodes[contacts + 1].type == WA_J_OBJ)
		match = contacts + 1;
	if (!match)
		return;
	profile = wa_geto(t, match, WA_KEY("profile"));
	lua_createtable(w->L, 0, 5);
	wa_copystr(w, profile, "name", WA_KEY("name"));
	wa_copystr(w, profile, "username", WA_KEY("username"));
	wa_copystr(w, match, "wa_id", WA_KEY("wa_id"));
	wa_copystr(w, match, "user_id", WA_KEY("user_id"));
	wa_copystr(w, match, "parent_user_id", WA_KEY("parent_user_id"));
	lua_setfield(w->L, -2, "contact");
}

static void wa_set_context(wa_walk *w, uint32_t msg)
{
	uint32_t c = wa_geto(w->t, msg, WA_KEY("context")), rp;
	if (!c)
		return;
	lua_createtable(w->L, 0, 5);
	wa_copystr(w, c, "from", WA_KEY("from"));
	wa_copystr(w, c, "id", WA_KEY("id"));
	wa_copybool(w, c, "forwarded", WA_KEY("forwarded"));
	wa_copybool(w, c, "frequently_forwarded", WA_KEY("frequently_forwarded"));
	rp = wa_geto(w->t, c, WA_KEY("referred_product"));
	if (rp) {
		lua_createtable(w->L, 0, 2);
		wa_copystr(w, rp, "catalog_id", WA_KEY("catalog_id"));
		wa_copystr(w, rp, "product_retailer_id", WA_KEY("product_retailer_id"));
		lua_setfield(w->L, -2, "referred_product");
	}
	lua_setfield(w->L, -2, "context");
}

/* media = {...} and text = caption for the five media types. */
static void wa_set_media(wa_walk *w, uint32_t m)
{
	if (!m)
		return;
	lua_createtable(w->L, 0, 8);
	wa_copystr(w, m, "id", WA_KEY("id"));
	wa_copystr(w, m, "mime_type", WA_KEY("mime_type"));
	wa_copystr(w, m, "sha256", WA_KEY("sha256"));
	wa_copystr(w, m, "caption", WA_KEY("caption"));
	wa_copystr(w, m, "filename", WA_KEY("filename"));
	wa_copybool(w, m, "voice", WA_KEY("voice"));
	wa_copybool(w, m, "animated", WA_KEY("animated"));
	wa_copystr(w, m, "url", WA_KEY("url"));
	lua_setfield(w->L, -2, "media");
	wa_copystr(w, m, "text", WA_KEY("caption"));
}

/*
 * flow = {name, body, response_json, response}: response is response_json
 * decoded with a tape of its own (left out when it is not valid JSON).
 */
static void wa_set_flow(wa_walk *w, uint32_t r)
{
	uint32_t rj = wa_gets(w->t, r, WA_KEY("response_json"));
	lua_createtable(w->L, 0, 4);
	wa_copystr(w, r, "name", WA_KEY("name"));
	wa_copystr(w, r, "body", WA_KEY("body"));
	if (rj) {
		wa_parser *p;
		char err[160];
		lua_pushlstring(w->L, w->t->nodes[rj].u.p, w->t->nodes[rj].len);
		lua_setfield(w->L, -2, "response_json");
		/* A second, temporary parser: the outer tape is still in use. */
		p = (wa_parser *)lua_newuserdata(w->L, sizeof *p);
		memset(p, 0, sizeof *p);
		luaL_getmetatable(w->L, WA_PARSER_MT);
		lua_setmetatable(w->L, -2);
		if (wa_tape_parse(&p->tape, w->t->nodes[rj].u.p, w->t->nodes[rj].len, err, sizeof err)) {
			wa_tape_push(w->L, &p->tape, 0);
			lua_setfield(w->L, -3, "response");
		}
		wa_tape_free(&p->tape);
		lua_pop(w->L, 1);
	}
	lua_setfield(w->L, -2, "flow");
}

/* The part of a message event that depends on its type; sets ev.type. */
static void wa_message_body(wa_walk *w, uint32_t msg, uint32_t ty)
{
	const wa_tape *t = w->t;
	lua_State *L = w->L;
	const char *tname = "unknown";
	char tbuf[64];
	uint32_t o;

	if (ty) {
		size_t n = t->nodes[ty].len < sizeof tbuf - 1 ? t->nodes[ty].len : sizeof tbuf - 1;
		memcpy(tbuf, t->nodes[ty].u.p, n);
		tbuf[n] = '\0';
		tname = tbuf;
		/* A type with an embedded NUL would be truncated: keep it whole. */
		if (n != t->nodes[ty].len || memchr(tbuf, '\0', n) != NULL)
			tname = NULL;
	}

	if (tname == NULL) {
		wa_setstr(w, "type", ty);
		return;
	}
	if (strcmp(tname, "text") == 0) {
		wa_copystr(w, wa_geto(t, msg, WA_KEY("text")), "text", WA_KEY("body"));
	} else if (strcmp(tname, "image") == 0 || strcmp(tname, "video") == 0 ||
		   strcmp(tname, "audio") == 0 || strcmp(tname, "document") == 0 ||
		   strcmp(tname, "sticker") == 0) {
		wa_set_media(w, wa_geto(t, msg, tname, strlen(tname)));
	} else if (strcmp(tname, "location") == 0) {
		o = wa_geto(t, msg, WA_KEY("location"));
		if (o) {
			lua_createtable(L, 0, 5);
			wa_copynum(w, o, "latitude", WA_KEY("latitude"));
			wa_copynum(w, o, "longitude", WA_KEY("longitude"));
			wa_copystr(w, o, "name", WA_KEY("name"));
			wa_copystr(w, o, "address", WA_KEY("address"));
			wa_copystr(w, o, "url", WA_KEY("url"));
			lua_setfield(L, -2, "location");
		}
	} else if (strcmp(tname, "contacts") == 0) {
		wa_copyany(w, msg, "contacts", WA_KEY("contacts"));
	} else if (strcmp(tname, "interactive") == 0) {
		uint32_t it = wa_geto(t, msg, WA_KEY("interactive"));
		uint32_t st = wa_gets(t, it, WA_KEY("type"));
		if (wa_streq(t, st, WA_KEY("button_reply")) || wa_streq(t, st, WA_KEY("list_reply"))) {
			uint32_t r = wa_geto(t, it, t->nodes[st].u.p, t->nodes[st].len);
			wa_setstr(w, "type", st);
			if (r) {
				lua_createtable(L, 0, 3);
				wa_copystr(w, r, "id", WA_KEY("id"));
				wa_copystr(w, r, "title", WA_KEY("title"));
				wa_copystr(w, r, "description", WA_KEY("description"));
				lua_setfield(L, -2, "reply");
				wa_copystr(w, r, "text", WA_KEY("title"));
			}
			return;
		}
		if (wa_streq(t, st, WA_KEY("nfm_reply"))) {
			uint32_t r = wa_geto(t, it, WA_KEY("nfm_reply"));
			uint32_t name = wa_gets(t, r, WA_KEY("name"));
			wa_setlit(w, "type", wa_streq(t, name, WA_KEY("address_message")) ? "address_reply"
										   : "flow_reply");
			if (r) {
				wa_set_flow(w, r);
				wa_copystr(w, r, "text", WA_KEY("body"));
			}
			return;
		}
		if (wa_streq(t, st, WA_KEY("call_permission_reply"))) {
			wa_setstr(w, "type", st);
			wa_copyany(w, it, "call_permission", WA_KEY("call_permission_reply"));
			return;
		}
		if (st)
			wa_setstr(w, "type", st);
		else
			wa_setlit(w, "type", "interactive");
		return;
	} else if (strcmp(tname, "button") == 0) {
		o = wa_geto(t, msg, WA_KEY("button"));
		if (o) {
			wa_copystr(w, o, "payload", WA_KEY("payload"));
			wa_copystr(w, o, "text", WA_KEY("text"));
			lua_createtable(L, 0, 2);
			wa_copystr(w, o, "id", WA_KEY("payload"));
			wa_copystr(w, o, "title", WA_KEY("text"));
			lua_setfield(L, -2, "reply");
		}
	} else if (strcmp(tname, "reaction") == 0) {
		o = wa_geto(t, msg, WA_KEY("reaction"));
		if (o) {
			uint32_t e = wa_gets(t, o, WA_KEY("emoji"));
			lua_createtable(L, 0, 3);
			wa_copystr(w, o, "message_id", WA_KEY("message_id"));
			if (e && t->nodes[e].len > 0)
				wa_setstr(w, "emoji", e);
			else {
				lua_pushboolean(L, 1);
				lua_setfield(L, -2, "removed");
			}
			lua_setfield(L, -2, "reaction");
		}
	} else if (strcmp(tname, "order") == 0) {
		wa_copyany(w, msg, "order", WA_KEY("order"));
		wa_copystr(w, wa_geto(t, msg, WA_KEY("order")), "text", WA_KEY("text"));
	} else if (strcmp(tname, "system") == 0) {
		wa_copyany(w, msg, "system", WA_KEY("system"));
		wa_copystr(w, wa_geto(t, msg, WA_KEY("system")), "text", WA_KEY("body"));
	} else if (strcmp(tname, "unsupported") == 0) {
		wa_copystr(w, wa_geto(t, msg, WA_KEY("unsupported")), "unsupported_type", WA_KEY("type"));
	} else if (strcmp(tname, "edit") == 0) {
		o = wa_geto(t, msg, WA_KEY("edit"));
		if (o) {
			uint32_t m = wa_geto(t, o, WA_KEY("message"));
			lua_createtable(L, 0, 2);
			wa_copystr(w, o, "original_message_id", WA_KEY("original_message_id"));
			wa_copyany(w, o, "message", WA_KEY("message"));
			lua_setfield(L, -2, "edit");
			if (m) {
				uint32_t txt = wa_geto(t, m, WA_KEY("text"));
				if (txt)
					wa_copystr(w, txt, "text", WA_KEY("body"));
				else {
					/* An edited caption: look in the edited media object. */
					uint32_t mt = wa_gets(t, m, WA_KEY("type"));
					uint32_t mo = mt ? wa_geto(t, m, t->nodes[mt].u.p, t->nodes[mt].len) : 0;
					wa_copystr(w, mo, "text", WA_KEY("caption"));
				}
			}
		}
	} else if (strcmp(tname, "revoke") == 0) {
		o = wa_geto(t, msg, WA_KEY("revoke"));
		if (o) {
			lua_createtable(L, 0, 1);
			wa_copystr(w, o, "original_message_id", WA_KEY("original_message_id"));
			lua_setfield(L, -2, "revoke");
		}
	}
	lua_pushstring(L, tname);
	lua_setfield(L, -2, "type");
}

static void wa_message_event(wa_walk *w, uint32_t msg, uint32_t contacts)
{
	const wa_tape *t = w->t;
	uint32_t from = wa_gets(t, msg, WA_KEY("from"));
	uint32_t from_uid = wa_gets(t, msg, WA_KEY("from_user_id"));
	wa_begin_event(w, "message", msg);
	wa_copystr(w, msg, "id", WA_KEY("id"));
	wa_setstr(w, "from", from);
	wa_setstr(w, "from_user_id", from_uid);
	wa_copystr(w, msg, "from_parent_user_id", WA_KEY("from_parent_user_id"));
	wa_copystr(w, msg, "group_id", WA_KEY("group_id"));
	wa_copyint(w, msg, "timestamp", WA_KEY("timestamp"));
	wa_set_contact(w, contacts, from, from_uid);
	wa_set_context(w, msg);
	wa_copyany(w, msg, "referral", WA_KEY("referral"));
	wa_copyany(w, msg, "identity", WA_KEY("identity"));
	wa_set_errors(w, msg);
	wa_message_body(w, msg, wa_gets(t, msg, WA_KEY("type")));
	wa_end_event(w);
}

static void wa_status_event(wa_walk *w, uint32_t st, uint32_t contacts)
{
	const wa_tape *t = w->t;
	uint32_t status = wa_gets(t, st, WA_KEY("status"));
	wa_begin_event(w, "status", st);
	if (status) {
		wa_setstr(w, "type", status);
		wa_setstr(w, "status", status);
	} else {
		wa_setlit(w, "type", "unknown");
	}
	wa_copystr(w, st, "id", WA_KEY("id"));
	wa_copyint(w, st, "timestamp", WA_KEY("timestamp"));
	wa_copystr(w, st, "recipient_id", WA_KEY("recipient_id"));
	wa_copystr(w, st, "recipient_user_id", WA_KEY("recipient_user_id"));
	wa_copystr(w, st, "parent_recipient_user_id", WA_KEY("parent_recipient_user_id"));
	wa_copystr(w, st, "recipient_participant_id", WA_KEY("recipient_participant_id"));
	wa_copystr(w, st, "recipient_type", WA_KEY("recipient_type"));
	wa_copystr(w, st, "biz_opaque_callback_data", WA_KEY("biz_opaque_callback_data"));
	wa_copyany(w, st, "conversation", WA_KEY("conversation"));
	wa_copyany(w, st, "pricing", WA_KEY("pricing"));
	wa_set_errors(w, st);
	wa_set_contact(w, contacts, wa_gets(t, st, WA_KEY("recipient_id")),
		       wa_gets(t, st, WA_KEY("recipient_user_id")));
	wa_end_event(w);
}

static void wa_error_event(wa_walk *w, uint32_t e)
{
	wa_begin_event(w, "error", e);
	wa_setlit(w, "type", "error");
	wa_copyint(w, e, "code", WA_KEY("code"));
	wa_push_error(w, e);
	lua_setfield(w->L, -2, "error");
	wa_end_event(w);
}

static void wa_change_event(wa_walk *w, uint32_t value, uint32_t field)
{
	wa_begin_event(w, "change", value);
	wa_setstr(w, "type", field);
	if (value && w->t->nodes[value].type != WA_J_NULL) {
		wa_tape_push(w->L, w->t, value);
		lua_setfield(w->L, -2, "value");
	}
	if (wa_type(w->t, value) == WA_J_OBJ)
		wa_copystr(w, value, "event", WA_KEY("event"));
	wa_end_event(w);
}

/*
 * Check that member key of value is absent or an array of objects; sets *arr.
 * Returns 0 (with the error recorded) when it is not.
 */
static int wa_check_list(wa_walk *w, uint32_t value, const char *key, size_t klen, uint32_t *arr)
{
	const wa_tape *t = w->t;
	uint32_t a = wa_get(t, value, key, klen), j;
	size_t base = strlen(w->path);
	int k = 1;
	*arr = 0;
	if (!a)
		return 1;
	if (t->nodes[a].type != WA_J_ARR) {
		snprintf(w->path + base, sizeof w->path - base, ".%s", key);
		return wa_fail(w, NULL, "expected an array");
	}
	for (j = a + 1; j < t->nodes[a].u.c.next; j = wa_jskip(t, j), k++) {
		if (t->nodes[j].type != WA_J_OBJ) {
			snprintf(w->path + base, sizeof w->path - base, ".%s[%d]", key, k);
			return wa_fail(w, NULL, "expected an object");
		}
	}
	*arr = a;
	return 1;
}

/* A `messages` change: fan out messages, statuses and errors. */
static int wa_messages_change(wa_walk *w, uint32_t value, uint32_t field)
{
	const wa_tape *t = w->t;
	uint32_t msgs, sts, errs, contacts, j;
	size_t base = strlen(w->path);
	if (wa_type(t, value) != WA_J_OBJ) {
		/* Nothing to fan out, but nothing to drop either. */
		wa_change_event(w, value, field);
		return 1;
	}
	snprintf(w->path + base, sizeof w->path - base, ".value");
	if (!wa_check_list(w, value, WA_KEY("messages"), &msgs) ||
	    !wa_check_list(w, value, WA_KEY("statuses"), &sts) ||
	    !wa_check_list(w, value, WA_KEY("errors"), &errs))
		return 0;
	w->path[base] = '\0';
	if (!msgs && !sts && !errs) {
		wa_change_event(w, value, field);
		return 1;
	}
	contacts = wa_get(t, value, WA_KEY("contacts"));
	if (msgs)
		for (j = msgs + 1; j < t->nodes[msgs].u.c.next; j = wa_jskip(t, j))
			wa_message_event(w, j, contacts);
	if (sts)
		for (j = sts + 1; j < t->nodes[sts].u.c.next; j = wa_jskip(t, j))
			wa_status_event(w, j, contacts);
	if (errs)
		for (j = errs + 1; j < t->nodes[errs].u.c.next; j = wa_jskip(t, j))
			wa_error_event(w, j);
	return 1;
}

/* Push a string node into a fresh stack slot and return the slot (0 if none). */
static int wa_slot(wa_walk *w, uint32_t i)
{
	if (wa_type(w->t, i) != WA_J_STR)
		return 0;
	lua_pushlstring(w->L, w->t->nodes[i].u.p, w->t->nodes[i].len);
	return lua_gettop(w->L);
}

static int wa_walk_envelope(wa_walk *w)
{
	const wa_tape *t = w->t;
	lua_State *L = w->L;
	uint32_t obj, entry, e, c;
	int ei = 1;

	if (t->nodes[0].type != WA_J_OBJ)
		return wa_fail(w, NULL, "payload is not a JSON object");
	obj = wa_get(t, 0, WA_KEY("object"));
	if (obj && !wa_streq(t, obj, WA_KEY("whatsapp_business_account")))
		return wa_fail(w, "object", "not a WhatsApp Business Account webhook");
	entry = wa_get(t, 0, WA_KEY("entry"));
	if (wa_type(t, entry) != WA_J_ARR)
		return wa_fail(w, "entry", entry ? "expected an array" : "missing");

	for (e = entry + 1; e < t->nodes[entry].u.c.next; e = wa_jskip(t, e), ei++) {
		uint32_t changes;
		int top = lua_gettop(L), ci = 1;
		snprintf(w->path, sizeof w->path, "entry[%d]", ei);
		if (t->nodes[e].type != WA_J_OBJ)
			return wa_fail(w, NULL, "expected an object");
		w->s_waba = wa_slot(w, wa_get(t, e, WA_KEY("id")));
		w->has_time = wa_toint(t, wa_get(t, e, WA_KEY("time")), &w->entry_time);
		changes = wa_get(t, e, WA_KEY("changes"));
		if (changes && t->nodes[changes].type != WA_J_ARR)
			return wa_fail(w, ".changes", "expected an array");
		if (changes) {
			for (c = changes + 1; c < t->nodes[changes].u.c.next; c = wa_jskip(t, c), ci++) {
				uint32_t field, value, meta;
				int ctop = lua_gettop(L);
				snprintf(w->path, sizeof w->path, "entry[%d].changes[%d]", ei, ci);
				if (t->nodes[c].type != WA_J_OBJ)
					return wa_fail(w, NULL, "expected an object");
				field = wa_get(t, c, WA_KEY("field"));
				if (wa_type(t, field) != WA_J_STR)
					return wa_fail(w, ".field", field ? "expected a string" : "missing");
				value = wa_get(t, c, WA_KEY("value"));
				meta = wa_geto(t, wa_type(t, value) == WA_J_OBJ ? value : 0, WA_KEY("metadata"));
				w->s_field = wa_slot(w, field);
				w->s_pnid = wa_slot(w, wa_gets(t, meta, WA_KEY("phone_number_id")));
				w->s_dpn = wa_slot(w, wa_gets(t, meta, WA_KEY("display_phone_number")));
				if (wa_streq(t, field, WA_KEY("messages"))) {
					if (!wa_messages_change(w, value, field))
						return 0;
				} else {
					wa_change_event(w, value, field);
				}
				lua_settop(L, ctop);
			}
		}
		lua_settop(L, top);
		w->s_waba = 0;
	}
	return 1;
}

/* ---- the Lua side -------------------------------------------------------- */

/*
 * __index of every event: decodes `raw` from the event's byte span with the
 * decoder given to parse (upvalue 1) over the body (upvalue 2), the span
 * coming from the batch's span table (upvalue 3), then caches it in the
 * event.  Any other missing key is nil.
 */
static int wa_raw_index(lua_State *L)
{
	size_t klen;
	const char *k = lua_tolstring(L, 2, &klen);
	lua_Number first, last;
	if (lua_type(L, 2) != LUA_TSTRING || klen != 3 || memcmp(k, "raw", 3) != 0)
		return 0;
	lua_pushvalue(L, 1);
	lua_rawget(L, lua_upvalueindex(3));
	if (lua_type(L, -1) == LUA_TNUMBER) {
		lua_Number v = lua_tonumber(L, -1);
		first = (lua_Number)(long long)(v / WA_SPAN_LIMIT);
		last = v - first * WA_SPAN_LIMIT;
	} else if (lua_type(L, -1) == LUA_TTABLE) {
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		first = lua_tonumber(L, -2);
		last = lua_tonumber(L, -1);
	} else {
		return 0;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushnumber(L, first + 1);
	lua_pushnumber(L, last);
	lua_call(L, 3, 1);
	lua_pushliteral(L, "raw");
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

static wa_parser *wa_parser_check(lua_State *L, int idx)
{
	wa_parser *p = (wa_parser *)luaL_checkudata(L, idx, WA_PARSER_MT);
	if (p->closed)
		luaL_argerror(L, idx, "parser is closed");
	return p;
}

/*
 * core.parser() -> Parser: reusable parse buffers.  Raises only on memory
 * exhaustion.
 */
static int wa_webhook_parser(lua_State *L)
{
	wa_parser *p = (wa_parser *)lua_newuserdata(L, sizeof *p);
	memset(p, 0, sizeof *p);
	luaL_getmetatable(L, WA_PARSER_MT);
	lua_setmetatable(L, -2);
	return 1;
}

/*
 * parser:parse(body [, raw_decoder [, error_mt]]) -> events | nil, message, path.
 * raw_decoder(body, first, last) is called on first access of ev.raw;
 * error_mt becomes the metatable of every error table.  Raises on a
 * non-string body or wrong argument types; never raises for bad JSON.
 */
static int wa_parser_parse(lua_State *L)
{
	wa_parser *p = wa_parser_check(L, 1);
	size_t len;
	const char *body = luaL_checklstring(L, 2, &len);
	wa_walk w;
	int ok;

	memset(&w, 0, sizeof w);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 4))
		luaL_checktype(L, 4, LUA_TTABLE);
	lua_settop(L, 4);
	if (!lua_isnil(L, 4))
		w.errmt = 4;
	if (!wa_tape_parse(&p->tape, body, len, w.err, sizeof w.err)) {
		lua_pushnil(L);
		lua_pushstring(L, w.err);
		lua_pushliteral(L, "");
		return 3;
	}
	w.L = L;
	w.t = &p->tape;
	if (!lua_isnil(L, 3)) {
		lua_newtable(L);
		w.spans = lua_gettop(L);
		lua_createtable(L, 0, 1); /* the batch's shared metatable */
		lua_pushvalue(L, 3);
		lua_pushvalue(L, 2);
		lua_pushvalue(L, w.spans);
		lua_pushcclosure(L, wa_raw_index, 3);
		lua_setfield(L, -2, "__index");
		w.rawfn = lua_gettop(L);
	}
	lua_newtable(L);
	w.events = lua_gettop(L);
	ok = wa_walk_envelope(&w);
	lua_settop(L, w.events);
	/* A huge body should not pin its buffers for the life of the hook. */
	if (p->tape.cap * sizeof(wa_jnode) + p->tape.acap > WA_KEEP_BYTES)
		wa_tape_free(&p->tape);
	if (!ok) {
		lua_pushnil(L);
		lua_pushstring(L, w.err);
		lua_pushstring(L, w.path);
		return 3;
	}
	return 1;
}

/* close, __gc and __close: free the buffers; safe twice. */
static int wa_parser__gc(lua_State *L)
{
	wa_parser *p = (wa_parser *)luaL_checkudata(L, 1, WA_PARSER_MT);
	wa_tape_free(&p->tape);
	p->closed = 1;
	return 0;
}

/*
 * core.json_decode(text) -> value | nil, message: strict JSON decoding with
 * the same tape (used for values the parser leaves as strings).
 */
static int wa_webhook_json_decode(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	char err[200];
	wa_parser *p;
	lua_settop(L, 1);
	wa_webhook_parser(L);
	p = (wa_parser *)lua_touserdata(L, 2);
	if (!wa_tape_parse(&p->tape, text, len, err, sizeof err)) {
		wa_tape_free(&p->tape);
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	wa_tape_push(L, &p->tape, 0);
	wa_tape_free(&p->tape);
	return 1;
}

static const luaL_Reg wa_parser_methods[] = {
	{"parse", wa_parser_parse},
	{"close", wa_parser__gc},
	{NULL, NULL}};

static const luaL_Reg wa_webhook_funcs[] = {
	{"parser", wa_webhook_parser},
	{"json_decode", wa_webhook_json_decode},
	{NULL, NULL}};

void wa_webhook_open(lua_State *L)
{
	if (luaL_newmetatable(L, WA_PARSER_MT)) {
		lua_newtable(L);
		wa_setfuncs(L, wa_parser_methods, 0);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, wa_parser__gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, wa_parser__gc);
		lua_setfield(L, -2, "__close");
		lua_pushliteral(L, "whatsapp.webhook.Parser");
		lua_setfield(L, -2, "__name");
	}
	lua_pop(L, 1);
	wa_setfuncs(L, wa_webhook_funcs, 0);
	/* whatsapp.null: what JSON null becomes inside generic sub-tables. */
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
}
