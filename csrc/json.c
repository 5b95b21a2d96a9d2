/*
 * json.c - fill a wa_tape from yajl's SAX callbacks, and turn tape subtrees
 * into Lua values.
 *
 * The callbacks never call into Lua (yajl is C code we must not longjmp
 * through); on an allocation failure or excessive depth they set a flag and
 * return 0, which makes yajl stop with "client cancelled", and we report our
 * own reason instead.
 */
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* ---- building ------------------------------------------------------------ */

static int wa_tape_grow_nodes(wa_tape *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	wa_jnode *nn;
	if (cap > UINT32_MAX)
		return 0;
	nn = (wa_jnode *)realloc(t->nodes, cap * sizeof *nn);
	if (nn == NULL)
		return 0;
	t->nodes = nn;
	t->cap = cap;
	return 1;
}

/* Append a node; also counts it as a child of an enclosing array. */
static wa_jnode *wa_tape_add(wa_tape *t, unsigned char type)
{
	wa_jnode *nd;
	if (t->depth > 0) {
		wa_jnode *parent = &t->nodes[t->stack[t->depth - 1]];
		/* Object members are counted when their key arrives. */
		if (parent->type == WA_J_ARR)
			parent->len++;
	} else if (t->values++ > 0) {
		/* The handle allows several values (so it can be reused); we do not. */
		return NULL;
	}
	if (t->n == t->cap && !wa_tape_grow_nodes(t)) {
		t->nomem = 1;
		return NULL;
	}
	nd = &t->nodes[t->n++];
	nd->type = type;
	nd->len = 0;
	return nd;
}

/*
 * The offset of the first byte of text that is not well-formed UTF-8 (RFC
 * 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or
 * (size_t)-1 when it all is.  yajl only checks the shape of sequences inside
 * strings, so its check is off and this one pass over the whole input does
 * the job: bytes >= 0x80 outside strings are lexical errors for yajl anyway,
 * and a sequence cannot straddle a string's closing quote, so a well-formed
 * input means well-formed strings.  ASCII is skipped 16 bytes at a time.
 */
static size_t wa_bad_utf8(const unsigned char *s, size_t len)
{
	const uint64_t high = 0x8080808080808080u;
	size_t i = 0;
	while (i < len) {
		unsigned char c;
		size_t n;
		unsigned char lo = 0x80, hi = 0xBF;
		if (len - i >= 16) {
			uint64_t a, b;
			memcpy(&a, s + i, 8);
			memcpy(&b, s + i + 8, 8);
			if (((a | b) & high) == 0) {
				i += 16;
				continue;
			}
		}
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			else if (c == 0xED)
				hi = 0x9F; /* surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90; /* overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* above U+10FFFF */
		} else
			return i;
		if (len - i <= n)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return i;
		i += n + 1;
	}
	return (size_t)-1;
}

/*
 * Record text for a string/number node.  yajl passes pointers into our input
 * for text without escapes: those are kept as they are.  Unescaped text lives
 * in a yajl buffer that is reused, so it is copied into the arena, which was
 * sized for the whole input before the parse (unescaping never lengthens
 * text), so it never moves and pointers into it stay valid.
 */
static int wa_tape_text(wa_tape *t, wa_jnode *nd, const char *s, size_t len)
{
	nd->len = (uint32_t)len; /* len <= input_len < UINT32_MAX */
	if (s >= t->input && s + len <= t->input + t->input_len) {
		nd->u.p = s;
		return 1;
	}
	if (len > t->acap - t->alen) {
		t->nomem = 1; /* cannot happen: see above */
		return 0;
	}
	memcpy(t->arena + t->alen, s, len);
	nd->u.p = t->arena + t->alen;
	t->alen += len;
	return 1;
}

static int wa_cb_null(void *ctx)
{
	return wa_tape_add((wa_tape *)ctx, WA_J_NULL) != NULL;
}

static int wa_cb_boolean(void *ctx, int b)
{
	return wa_tape_add((wa_tape *)ctx, b ? WA_J_TRUE : WA_J_FALSE) != NULL;
}

static int wa_cb_number(void *ctx, const char *s, size_t len)
{
	wa_tape *t = (wa_tape *)ctx;
	wa_jnode *nd = wa_tape_add(t, WA_J_NUM);
	return nd != NULL && wa_tape_text(t, nd, s, len);
}

/* Strings and keys: the input's UTF-8 was checked before the parse. */
static int wa_cb_string(void *ctx, const unsigned char *s, size_t len)
{
	wa_tape *t = (wa_tape *)ctx;
	wa_jnode *nd = wa_tape_add(t, WA_J_STR);
	return nd != NULL && wa_tape_text(t, nd, (const char *)s, len);
}

static int wa_cb_key(void *ctx, const unsigned char *s, size_t len)
{
	wa_tape *t = (wa_tape *)ctx;
	wa_jnode *nd;
	/* The enclosing object gains a member; keys are never array children. */
	t->nodes[t->stack[t->depth - 1]].len++;
	if (t->n == t->cap && !wa_tape_grow_nodes(t)) {
		t->nomem = 1;
		return 0;
	}
	nd = &t->nodes[t->n++];
	nd->type = WA_J_STR;
	return wa_tape_text(t, nd, (const char *)s, len);
}

static int wa_cb_open(wa_tape *t, unsigned char type)
{
	wa_jnode *nd;
	size_t consumed;
	if (t->depth >= WA_JSON_MAX_DEPTH) {
		t->too_deep = 1;
		return 0;
	}
	nd = wa_tape_add(t, type);
	if (nd == NULL)
		return 0;
	/* yajl has just consumed the opening bracket. */
	consumed = yajl_get_bytes_consumed((yajl_handle)t->handle);
	nd->u.c.start = (uint32_t)(consumed - 1);
	nd->u.c.next = 0;
	nd->u.c.end = 0;
	t->stack[t->depth++] = (uint32_t)(t->n - 1);
	return 1;
}

static int wa_cb_close(wa_tape *t)
{
	wa_jnode *nd = &t->nodes[t->stack[--t->depth]];
	nd->u.c.next = (uint32_t)t->n;
	nd->u.c.end = (uint32_t)yajl_get_bytes_consumed((yajl_handle)t->handle);
	return 1;
}

static int wa_cb_start_map(void *ctx)
{
	return wa_cb_open((wa_tape *)ctx, WA_J_OBJ);
}

static int wa_cb_start_array(void *ctx)
{
	return wa_cb_open((wa_tape *)ctx, WA_J_ARR);
}

static int wa_cb_end(void *ctx)
{
	return wa_cb_close((wa_tape *)ctx);
}

static const yajl_callbacks wa_callbacks = {
	wa_cb_null, wa_cb_boolean, NULL, NULL, wa_cb_number, wa_cb_string,
	wa_cb_start_map, wa_cb_key, wa_cb_end, wa_cb_start_array, wa_cb_end};

static int wa_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;
	for (i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return 0;
	}
	*out = v;
	return 1;
}

/*
 * yajl turns a lone \uD800 into '?' and pairs a high surrogate with whatever
 * \u escape follows, silently changing the text.  Find the first unpaired
 * surrogate escape; returns its byte offset, or (size_t)-1 when there is none.
 * Backslashes only mean escapes inside strings, and anything else is a
 * lexical error yajl reports, so a scan of the raw bytes is enough.
 */
static size_t wa_bad_surrogate(const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		unsigned u, lo;
		if (end - p < 2)
			break;
		if (p[1] != 'u' || end - p < 6 || !wa_hex4(p + 2, &u)) {
			p += 2; /* \" \\ \n ... (or malformed: yajl reports it) */
			continue;
		}
		if (u >= 0xDC00 && u <= 0xDFFF)
			return (size_t)(p - text);
		if (u >= 0xD800 && u <= 0xDBFF) {
			if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !wa_hex4(p + 8, &lo) ||
			    lo < 0xDC00 || lo > 0xDFFF)
				return (size_t)(p - text);
			p += 12;
			continue;
		}
		p += 6;
	}
	return (size_t)-1;
}

void wa_tape_free(wa_tape *t)
{
	if (t->handle != NULL)
		yajl_free((yajl_handle)t->handle);
	t->handle = NULL;
	free(t->nodes);
	free(t->arena);
	t->nodes = NULL;
	t->arena = NULL;
	t->n = t->cap = t->alen = t->acap = 0;
}

int wa_tape_parse(wa_tape *t, const char *text, size_t len, char *err, size_t errlen)
{
	yajl_handle h;
	yajl_status st;
	size_t i;

	if (len >= UINT32_MAX) {
		snprintf(err, errlen, "body too large to parse");
		return 0;
	}
	i = wa_bad_surrogate(text, len);
	if (i != (size_t)-1) {
		snprintf(err, errlen, "invalid JSON at byte %lu: unpaired UTF-16 surrogate escape",
			 (unsigned long)i);
		return 0;
	}
	i = wa_bad_utf8((const unsigned char *)text, len);
	if (i != (size_t)-1) {
		snprintf(err, errlen, "invalid JSON at byte %lu: ill-formed UTF-8", (unsigned long)i);
		return 0;
	}
	/* Unescaped strings go to the arena; they never outgrow the input. */
	if (t->acap < len || t->arena == NULL) {
		size_t cap = len > 1024 ? len : 1024;
		char *na = (char *)malloc(cap);
		if (na == NULL) {
			snprintf(err, errlen, "out of memory");
			return 0;
		}
		free(t->arena);
		t->arena = na;
		t->acap = cap;
	}
	t->n = 0;
	t->alen = 0;
	t->depth = 0;
	t->too_deep = 0;
	t->nomem = 0;
	t->values = 0;
	t->input = text;
	t->input_len = len;
	h = (yajl_handle)t->handle;
	if (h == NULL) {
		h = yajl_alloc(&wa_callbacks, NULL, t);
		if (h == NULL) {
			snprintf(err, errlen, "out of memory");
			return 0;
		}
		/*
		 * Strict JSON: no comments; UTF-8 is validated by wa_bad_utf8.
		 * Several values are allowed only so that the handle can parse the
		 * next body; a second value is refused by wa_tape_add.
		 */
		yajl_config(h, yajl_allow_multiple_values, 1);
		yajl_config(h, yajl_dont_validate_strings, 1);
		t->handle = h;
	}
	st = yajl_parse(h, (const unsigned char *)text, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	if (st != yajl_status_ok) {
		if (t->too_deep)
			snprintf(err, errlen, "JSON nested deeper than %d levels", WA_JSON_MAX_DEPTH);
		else if (t->nomem)
			snprintf(err, errlen, "out of memory while parsing JSON");
		else if (t->values > 1)
			snprintf(err, errlen, "invalid JSON at byte %lu: trailing garbage",
				 (unsigned long)yajl_get_bytes_consumed(h));
		else {
			unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
			size_t at = yajl_get_bytes_consumed(h);
			const char *m = msg ? (const char *)msg : "invalid JSON";
			/* yajl's messages end in ".\n"; keep them to one line. */
			size_t ml = strcspn(m, "\n");
			while (ml > 0 && (m[ml - 1] == '.' || m[ml - 1] == ' '))
				ml--;
			snprintf(err, errlen, "invalid JSON at byte %lu: %.*s", (unsigned long)at, (int)ml, m);
			if (msg)
				yajl_free_error(h, msg);
		}
		/* A handle that has failed stays failed: start afresh next time. */
		yajl_free(h);
		t->handle = NULL;
		return 0;
	}
	if (t->n == 0) {
		snprintf(err, errlen, "empty JSON document");
		return 0;
	}
	return 1;
}

/* ---- to Lua -------------------------------------------------------------- */

void wa_push_jnumber(lua_State *L, const char *p, size_t len)
{
	char small[64];
	char *buf = small, *end = NULL;
	int integral = 1;
	size_t i;
	for (i = 0; i < len; i++) {
		if (p[i] == '.' || p[i] == 'e' || p[i] == 'E') {
			integral = 0;
			break;
		}
	}
	if (len >= sizeof small) {
		/* Hostile input can send a number of any length: box it in Lua memory. */
		buf = (char *)lua_newuserdata(L, len + 1);
	}
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (integral) {
		long long v;
		errno = 0;
		v = strtoll(buf, &end, 10);
		if (errno == 0 && end == buf + len) {
			if (buf != small)
				lua_pop(L, 1);
#if LUA_VERSION_NUM >= 503
			lua_pushinteger(L, (lua_Integer)v);
#else
			lua_pushnumber(L, (lua_Number)v);
#endif
			return;
		}
	}
	{
		double d = strtod(buf, NULL);
		if (buf != small)
			lua_pop(L, 1);
		lua_pushnumber(L, (lua_Number)d);
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
		wa_push_jnumber(L, nd->u.p, nd->len);
		return;
	case WA_J_STR:
		lua_pushlstring(L, nd->u.p, nd->len);
		return;
	case WA_J_ARR:
		/* Depth is bounded by WA_JSON_MAX_DEPTH, so the C recursion is too. */
		luaL_checkstack(L, 3, "JSON too deep");
		lua_createtable(L, (int)nd->len, 0);
		for (j = i + 1, k = 1; j < nd->u.c.next; j = wa_jskip(t, j), k++) {
			wa_tape_push(L, t, j);
			lua_rawseti(L, -2, (int)k);
		}
		return;
	case WA_J_OBJ:
		luaL_checkstack(L, 4, "JSON too deep");
		lua_createtable(L, 0, (int)nd->len);
		end = nd->u.c.next;
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
