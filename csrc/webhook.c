/*
 * webhook.c - raw webhook body -> list of flat events (doc/events.md).
 *
 * simdjson parses the body once, and this file reads its tape in place
 * (jtape.h, json_tape.cpp): it walks the envelope
 * (object -> entry[] -> changes[] -> value) and fans out every message,
 * status and value-level error of a `messages` change, and every other change,
 * into one Lua table each.  Only the fields an event exposes are turned into
 * Lua values.  An event's `raw` source table, and the generic copies that are
 * costly and seldom read (a message's `referral` and `identity`, a status's
 * `conversation` and `pricing`, a change's `value`), are decoded later, on
 * first access, from the tape node the batch remembers (see wa_event_index).
 *
 * Structural problems the caller cannot interpret (not an object, `entry`
 * not an array, ...) make the whole parse fail with a message and a path such
 * as "entry[1].changes[2].value.messages[3]".  Leaf fields of an unexpected
 * type are just left out of the flat event; `raw` still has them.
 *
 * Speed: every key and fixed value string is interned once, as an upvalue of
 * the walk, and stored with lua_rawset; each object of the
 * payload is scanned once for all the members the walk needs; the contacts of
 * a change are indexed once and each contact table is built once per change
 * and shared by the events of that sender.  Under LuaJIT, message and status
 * events and their contacts are written as records, which a Lua function
 * compiled by the JIT makes into tables (WA_RECORDS).
 *
 * Memory: the tape's buffers (and the contact index, the events' source
 * nodes and the records) belong to a userdata (a "Parser"), so a Lua memory error raised
 * while building events cannot leak them; the parser is kept between calls
 * to avoid a malloc per webhook.
 */
#include "wa.h"
#include "json.h"

#include <lualib.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WA_PARSER_MT "whatsapp.webhook.Parser"
/* Above this, the buffers are released after a parse instead of kept. */
#define WA_KEEP_BYTES (4u << 20)

/*
 * Under LuaJIT with its FFI, message and status events and their contacts are
 * not made through the Lua/C API one value at a time.  The walk writes each
 * as a record (wa_rec, wa_crec: pointers to the strings in the tape's string
 * buffer, numbers) and, once per `messages` change, calls the builder
 * (wa_build_chunk, kept in the constants table), a Lua function that reads
 * the records through the FFI in a loop the JIT compiles, and makes the
 * tables with table constructors (a template copied at once, its keys in
 * place).  A record carries the commonest shapes: a text, media, a button or
 * list reply, a context without a referred product.  The rest (other types,
 * errors, the rarer ids) is then set by the walk as usual, on the events that
 * have it.  That does about a tenth less work per batch than calling a Lua
 * constructor per event.  Without the FFI or with the JIT compiler off
 * (and under Lua 5.4, where none of this saves anything) every event is made
 * through the API.
 */
#if defined(LUA_JITLIBNAME) /* LuaJIT's lualib.h */
#define WA_RECORDS 1
#define WA_CONST_BUILD 2
#define WA_CONST_CTL 3	     /* the builder's control block (wa_ctl) */
#define WA_CONST_JITSTATUS 4 /* jit.status (see wa_jit_on) */
#define WA_CONST_N WA_CONST_JITSTATUS
#else
#define WA_RECORDS 0
#define WA_CONST_N WA_CONST_WALKFN
#endif

/*
 * A message or status event for the builder; wa_build_chunk declares the same
 * layout.  Strings (s, len; s NULL: absent):
 *   message: 0 id, 1 from, 2 from_user_id, 3 text (the body, a caption or a
 *            reply's title); with media: 4 id, 5 mime_type, 6 sha256,
 *            7 filename, 8 url; with a reply: 4 id, 5 description; with a
 *            context: 9 from, 10 id;
 *   status:  0 id, 1 recipient_id, 2 recipient_user_id, 3 status (when not a
 *            usual one).
 * Booleans (b: 0 absent, 1 false, 2 true): media's voice and animated, the
 * context's forwarded and frequently_forwarded.
 */
typedef struct {
	const char *s[11];
	uint32_t len[11];
	double ts;	 /* timestamp, when has_ts */
	int32_t n;	 /* position in the events */
	int32_t kind;	 /* WA_R_MESSAGE or WA_R_STATUS */
	int32_t contact; /* the contact's record + 1, or 0 */
	int32_t st;	 /* status: index in wa_nm_status + 1, or 0 */
	int32_t body;	 /* message: WA_B_*, what the record holds of the type's part */
	int32_t sub;	 /* WA_B_MEDIA: which (image..sticker); WA_B_REPLY: button or list */
	int32_t ctx;	 /* message: the record holds the context */
	int32_t has_ts;
	int32_t extra; /* has fields the walk sets after the builder (wa_flush_records) */
	int32_t b[4];
} wa_rec;

/* A contact for the builder: name, username, wa_id, user_id, parent_user_id. */
typedef struct {
	const char *s[5];
	uint32_t len[5];
} wa_crec;

/*
 * Where the builder finds the records of the change (see wa_build_chunk):
 * set by wa_flush_records for the time of the call only.  magic is set by
 * the builder's chunk, so that the C side knows it reads the block itself.
 */
typedef struct {
	const wa_rec *recs;
	const wa_crec *crecs;
	int32_t nrec, ncrec, magic;
} wa_ctl;
#define WA_CTL_MAGIC 0x57415245

enum { WA_R_MESSAGE = 1, WA_R_STATUS = 2 };
/* What a message record holds of the part that depends on the type (0: none, the walk sets it). */
enum { WA_B_TEXT = 1, WA_B_MEDIA, WA_B_REPLY };

/* Which of a contact's ids: wa_id, user_id. */
enum { WA_ID, WA_USER_ID };

/*
 * One contact of a change: its wa_id and user_id string nodes (or 0), their
 * hashes (wa_strhash), and the value nodes of its profile and parent_user_id
 * members (or 0), all found in one scan of its object; and, under the
 * builder, its record + 1 once an event has needed it (else 0).
 */
typedef struct {
	uint32_t id[2], hash[2]; /* by WA_ID, WA_USER_ID */
	uint32_t profile, parent;
	int32_t rec;
} wa_contact;

typedef struct {
	wa_tape tape;
	/*
	 * The current change's contact index (wa_index_contacts): the contacts,
	 * then two open-addressing tables (by wa_id, by user_id) of contact
	 * numbers + 1, in one block kept between parses.
	 */
	void *cbuf;
	size_t cbytes;
	/* The source node of each event of the current parse (0: none). */
	uint32_t *srcs;
	size_t srcs_cap;
	/* The current change's records for the builder (WA_RECORDS). */
	wa_rec *recs;
	size_t recs_cap;
	wa_crec *crecs;
	size_t crecs_cap;
	/* per record, the members its scan found, for what the builder leaves (WA_RECM) */
	uint32_t *recm;
	size_t recm_cap;
	int busy; /* the tape is in use (a parse or a lazy decode is running) */
	unsigned jit_ticks; /* parses since the JIT compiler's status was asked (wa_jit_on) */
	int jit_off;
	lua_Integer gen; /* bumped whenever the tape is parsed or freed */
	int closed;
} wa_parser;

/*
 * The strings the walk stores: keys of events and sub-tables, and a few fixed
 * values.  They are interned once, and are upvalues K_<name> + 1 of the walk
 * (wa_parser_walk), which the constants table (upvalue 1 of parse) holds
 * with the other functions below.
 */
#define WA_STRINGS(X)                                                                              \
	X(kind) X(type) X(field) X(waba_id) X(entry_time) X(phone_number_id)                      \
	X(display_phone_number) X(id) X(from) X(from_user_id) X(from_parent_user_id) X(group_id)   \
	X(timestamp) X(contact) X(context) X(errors) X(text) X(media) X(location) X(contacts)      \
	X(reply) X(payload) X(reaction) X(order) X(system) X(unsupported_type) X(edit) X(revoke)   \
	X(flow) X(call_permission) X(status) X(recipient_id) X(recipient_user_id)                  \
	X(parent_recipient_user_id) X(recipient_participant_id) X(recipient_type)                  \
	X(biz_opaque_callback_data) X(error) X(code) X(value) X(event) X(name) X(wa_id)            \
	X(user_id) X(parent_user_id) X(username) X(forwarded) X(frequently_forwarded)              \
	X(referred_product) X(catalog_id) X(product_retailer_id) X(mime_type) X(sha256)            \
	X(caption) X(filename) X(voice) X(animated) X(url) X(latitude) X(longitude) X(address)     \
	X(title) X(description) X(message_id) X(emoji) X(removed) X(original_message_id)           \
	X(message) X(body) X(response_json) X(response) X(details) X(href) X(change) X(unknown)    \
	X(interactive) X(address_reply) X(flow_reply) X(image) X(video) X(audio) X(document)         \
	X(sticker) X(button) X(unsupported) X(sent) X(delivered) X(read) X(failed) X(played)       \
	X(button_reply) X(list_reply)

#define WA_ENUM(n) K_##n,
enum { WA_STRINGS(WA_ENUM) K__COUNT };
#undef WA_ENUM
#define WA_NAME(n) #n,
static const char *const wa_strings[] = {WA_STRINGS(WA_NAME)};
#undef WA_NAME
/* Index of wa_parser_walk, the protected part of parse, in the constants table. */
#define WA_CONST_WALKFN 1

/*
 * A batch's events share one metatable, whose array part is the batch's own
 * list of its events and whose __index (wa_event_index) is a closure per
 * batch with these upvalues: the body, the events' source nodes (packed,
 * see wa_event_src), the parser, its generation after the parse (see
 * wa_batch_tape), the metatable (the list), and the event -> position map
 * (made on first use, see wa_event_map).  Lua code can reach the metatable
 * but not the upvalues, so it cannot point a lazy field at a word of the
 * tape that is not a node, nor at another body's tape.
 */
enum { WA_UP_BODY = 1, WA_UP_SRCS, WA_UP_PARSER, WA_UP_GEN, WA_UP_LIST, WA_UP_MAP, WA_UP_N = WA_UP_MAP };

/* What the walk needs at hand. */
typedef struct {
	lua_State *L;
	const wa_tape *t;
	wa_parser *p;
	int consts;  /* stack index of the constants table */
	int events;  /* stack index of the result array */
	int nevents; /* events stored so far */
	int mt;	     /* stack index of the batch's shared metatable */
	uint32_t src; /* source node of the event being built (wa_begin_event) */
	/* stack indexes of per-change strings, pushed once and reused (0 = none) */
	int s_field, s_waba, s_pnid, s_dpn;
	int has_time;
	lua_Integer entry_time;
	/* the current change's contacts: array node, index, cache of built tables */
	uint32_t contacts;
	int ncontacts;		/* -1 until indexed */
	wa_contact *cl;		/* the indexed contacts */
	uint32_t *by[2];	/* by WA_ID, WA_USER_ID: tables of cmask + 1 slots */
	uint32_t cmask;
	int ctabs;     /* stack slot of the contact tables made so far (see wa_push_contact) */
	int build;     /* stack slot of the builder, or 0: no records (WA_RECORDS) */
	int nrec, ncrec; /* the current change's records so far */
	int ei, ci;    /* entry / change being walked (1-based), for error paths */
	char path[160];
	char err[200];
} wa_walk;

/* ---- tape helpers -------------------------------------------------------- */

#define WA_KEY(k) (k), (sizeof(k) - 1)

static int wa_is(const wa_tape *t, uint32_t i, const char *s, size_t n)
{
	return wa_jlen(t, i) == n && memcmp(wa_jstr(t, i), s, n) == 0;
}

/*
 * Value of key in object node obj, or 0 when absent (0 is the tape's root
 * word, never a value).  The last duplicate wins, as in lua-cjson.
 */
static uint32_t wa_get(const wa_tape *t, uint32_t obj, const char *key, size_t klen)
{
	uint32_t j, found = 0, end;
	if (wa_jtype(t, obj) != WA_J_OBJ)
		return 0;
	end = wa_jclose(t, obj);
	for (j = obj + 1; j < end; j = wa_jskip(t, j + 1))
		if (wa_is(t, j, key, klen))
			found = j + 1;
	return found;
}

static int wa_type(const wa_tape *t, uint32_t i)
{
	return i ? wa_jtype(t, i) : -1;
}

/* i if it is a string node, else 0. */
static uint32_t wa_str(const wa_tape *t, uint32_t i)
{
	return wa_type(t, i) == WA_J_STR ? i : 0;
}

/* i if it is an object node, else 0. */
static uint32_t wa_obj(const wa_tape *t, uint32_t i)
{
	return wa_type(t, i) == WA_J_OBJ ? i : 0;
}

/* String node i into a record's s / len, NULL when it is not one. */
static void wa_rstr(const wa_tape *t, uint32_t i, const char **s, uint32_t *len)
{
	if (wa_type(t, i) == WA_J_STR) {
		*s = wa_jstr(t, i);
		*len = wa_jlen(t, i);
	} else {
		*s = NULL;
		*len = 0;
	}
}

/* Member of obj if it is a string, else 0. */
static uint32_t wa_gets(const wa_tape *t, uint32_t obj, const char *key, size_t klen)
{
	return obj ? wa_str(t, wa_get(t, obj, key, klen)) : 0;
}

/* Member of obj if it is an object, else 0. */
static uint32_t wa_geto(const wa_tape *t, uint32_t obj, const char *key, size_t klen)
{
	return obj ? wa_obj(t, wa_get(t, obj, key, klen)) : 0;
}

static int wa_streq(const wa_tape *t, uint32_t i, const char *s, size_t n)
{
	return i && wa_jtype(t, i) == WA_J_STR && wa_is(t, i, s, n);
}

/*
 * A hash of string node i's text (0 when i is 0) for telling contacts apart
 * quickly: its length and its first and last 8 bytes (ids are digits of one
 * length that differ anywhere), so constant time whatever the length.
 */
static uint32_t wa_strhash(const wa_tape *t, uint32_t i)
{
	const char *p;
	uint64_t a, b, h;
	size_t n, k;
	if (i == 0)
		return 0;
	p = wa_jstr(t, i);
	n = wa_jlen(t, i);
	if (n >= 8) {
		memcpy(&a, p, 8);
		memcpy(&b, p + n - 8, 8);
	} else {
		a = b = 0;
		for (k = 0; k < n; k++)
			a = a << 8 | (unsigned char)p[k];
	}
	h = (a * 0x9E3779B97F4A7C15u) ^ (b * 0xC2B2AE3D27D4EB4Fu) ^ n;
	return (uint32_t)(h ^ h >> 32);
}

/* Two string nodes with the same text. */
static int wa_sameval(const wa_tape *t, uint32_t a, uint32_t b)
{
	return wa_jlen(t, a) == wa_jlen(t, b) &&
	       memcmp(wa_jstr(t, a), wa_jstr(t, b), wa_jlen(t, a)) == 0;
}

/* A member name the walk looks for. */
typedef struct {
	const char *s;
	size_t len;
} wa_name;

#define WA_N(k) {(k), sizeof(k) - 1}

/* Longest member name a set can hold, and most names in one set. */
#define WA_NAME_MAX 31
#define WA_SET_MAX 32

/* Slots of a name set's hash table: at least twice WA_SET_MAX, a power of 2. */
#define WA_SET_SLOTS 64

/*
 * The member names one scan looks for, in a small open-addressing hash table
 * keyed by a name's length and words (wa_words), so that a member is mostly
 * compared with one name, in two word compares.  The tables are built once
 * per process (wa_sets_init), before any parse.
 */
typedef struct {
	const wa_name *names;
	int n;
	/* Name indexes + 1, so that a set left out of wa_all_sets finds nothing
	 * (and its specs fail) instead of looping: */
	unsigned char slot[WA_SET_SLOTS];
	uint64_t head[WA_SET_MAX], tail[WA_SET_MAX];
} wa_nameset;

#define WA_SET(a) {(a), (int)(sizeof(a) / sizeof((a)[0])), {0}, {0}, {0}}

/*
 * Two words that tell strings of n bytes (1 <= n <= WA_NAME_MAX) apart when
 * n <= 16, read without going outside the string: the first and the last 8
 * bytes (overlapping when n < 16); for 4 <= n < 8, the first and the last 4;
 * below that, the bytes.  Longer strings also need their middle compared.
 */
static void wa_words(const char *p, size_t n, uint64_t *head, uint64_t *tail)
{
	if (n >= 8) {
		memcpy(head, p, 8);
		memcpy(tail, p + n - 8, 8);
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, p, 4);
		memcpy(&b, p + n - 4, 4);
		*head = a;
		*tail = b;
	} else {
		*head = (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[n / 2] << 8 |
			(uint64_t)(unsigned char)p[n - 1] << 16;
		*tail = 0;
	}
}

/* The home slot of a name of len bytes whose first word is head. */
static unsigned wa_slot_of(uint64_t head, size_t len)
{
	return (unsigned)(((head ^ len) * 0x9E3779B97F4A7C15u) >> 58) & (WA_SET_SLOTS - 1);
}

/*
 * Index a name set; 0 (and an empty set, which finds nothing) when it breaks
 * the limits above: a set of the walk's own, so wa_webhook_open refuses to
 * load instead.
 */
static int wa_set_index(wa_nameset *set)
{
	int i;
	memset(set->slot, 0, sizeof set->slot);
	if (set->n > WA_SET_MAX) {
		set->n = 0;
		return 0;
	}
	for (i = 0; i < set->n; i++)
		if (set->names[i].len == 0 || set->names[i].len > WA_NAME_MAX) {
			set->n = 0;
			return 0;
		}
	for (i = 0; i < set->n; i++) {
		size_t len = set->names[i].len;
		unsigned h;
		wa_words(set->names[i].s, len, &set->head[i], &set->tail[i]);
		for (h = wa_slot_of(set->head[i], len); set->slot[h]; h = (h + 1) & (WA_SET_SLOTS - 1))
			;
		set->slot[h] = (unsigned char)(i + 1);
	}
	return 1;
}

/* Index in set of the name k (len bytes), or -1. */
static int wa_set_find(const wa_nameset *set, const char *k, uint32_t len)
{
	uint64_t head, tail;
	unsigned h;
	int i;
	if (len == 0 || len > WA_NAME_MAX)
		return -1;
	wa_words(k, len, &head, &tail);
	for (h = wa_slot_of(head, len); (i = set->slot[h]) != 0; h = (h + 1) & (WA_SET_SLOTS - 1)) {
		i--;
		if (set->head[i] == head && set->tail[i] == tail && set->names[i].len == len &&
		    (len <= 16 || memcmp(set->names[i].s + 8, k + 8, len - 16) == 0))
			return i;
	}
	return -1;
}

/*
 * One pass over the members of object obj: out[i] is the value node of the
 * member named set->names[i] (the last duplicate wins), or 0.  All zero when
 * obj is 0 (absent: never the root here) or not an object.  This is the
 * walk's innermost loop: it reads the tape words and the string buffer
 * directly (jtape.h).
 */
static void wa_scan(const wa_tape *t, uint32_t obj, const wa_nameset *set, uint32_t *out)
{
	uint32_t j, end;
	memset(out, 0, (size_t)set->n * sizeof *out);
	if (obj == 0 || wa_jtype(t, obj) != WA_J_OBJ)
		return;
	end = wa_jclose(t, obj);
	for (j = obj + 1; j < end; j = wa_jskip(t, j + 1)) {
		int i = wa_set_find(set, wa_jstr(t, j), wa_jlen(t, j));
		if (i >= 0)
			out[i] = j + 1;
	}
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WA_SWAR_DIGITS 1
/*
 * The value of the 8 decimal digits at p (the first is the most significant),
 * or -1 when one of them is not a digit.  The 8 bytes are read as one
 * little-endian word: each byte is checked to be 0x30..0x39 (its high nibble
 * is 3, and adding 6 does not carry out of its low one), then neighbouring
 * digits are combined in pairs, the pairs into fours, the fours into eight.
 */
static long long wa_digits8(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	if (((v & 0xF0F0F0F0F0F0F0F0u) | (((v + 0x0606060606060606u) & 0xF0F0F0F0F0F0F0F0u) >> 4)) !=
	    0x3333333333333333u)
		return -1;
	v -= 0x3030303030303030u;
	v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FFu;
	v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFFu;
	v = (v * 10000 + (v >> 32)) & 0xFFFFFFFFu;
	return (long long)v;
}
#else
#define WA_SWAR_DIGITS 0
#endif

/* An integer from a JSON integer or a string of decimal digits. */
static int wa_toint(const wa_tape *t, uint32_t i, lua_Integer *out)
{
	const char *p;
	long long v = 0;
	uint32_t k, len;
	int neg = 0;
	if (i == 0)
		return 0;
	if (wa_jtype(t, i) == WA_J_INT) {
		*out = (lua_Integer)wa_jint(t, i);
		return 1;
	}
	if (wa_jtype(t, i) != WA_J_STR)
		return 0;
	p = wa_jstr(t, i);
	len = wa_jlen(t, i);
	if (len == 0 || len > 18) /* fits in 63 bits without overflow checks */
		return 0;
	k = 0;
	if (p[0] == '-') {
		neg = 1;
		k = 1;
		if (len == 1)
			return 0;
	}
#if WA_SWAR_DIGITS
	for (; len - k >= 8; k += 8) {
		long long d = wa_digits8(p + k);
		if (d < 0)
			return 0;
		v = v * 100000000 + d;
	}
#endif
	for (; k < len; k++) {
		char c = p[k];
		if (c < '0' || c > '9')
			return 0;
		v = v * 10 + (c - '0');
	}
	*out = (lua_Integer)(neg ? -v : v);
	return 1;
}

static void wa_pushint(lua_State *L, lua_Integer v)
{
#if LUA_VERSION_NUM >= 503
	lua_pushinteger(L, v);
#else
	lua_pushnumber(L, (lua_Number)v);
#endif
}

/* ---- setting fields on the table at the top of the stack ----------------- */

/*
 * Push the interned string K_<name>: upvalue K_<name> + 1 of wa_parser_walk,
 * the function running the walk (an upvalue is quicker to reach than a table
 * slot).
 */
static void wa_pushk(wa_walk *w, int k)
{
	lua_pushvalue(w->L, lua_upvalueindex(k + 1));
}

/* table[k] = string node i, when i is a string node. */
static void wa_setstr(wa_walk *w, int k, uint32_t i)
{
	if (wa_type(w->t, i) == WA_J_STR) {
		wa_pushk(w, k);
		lua_pushlstring(w->L, wa_jstr(w->t, i), wa_jlen(w->t, i));
		lua_rawset(w->L, -3);
	}
}

/* table[k] = the interned string K_<v>. */
static void wa_setk(wa_walk *w, int k, int v)
{
	wa_pushk(w, k);
	wa_pushk(w, v);
	lua_rawset(w->L, -3);
}

/* table[k] = the value at stack index idx. */
static void wa_setslot(wa_walk *w, int k, int idx)
{
	wa_pushk(w, k);
	lua_pushvalue(w->L, idx);
	lua_rawset(w->L, -3);
}

/* A number, or a string holding one (location coordinates come as both). */
static void wa_setnum(wa_walk *w, int k, uint32_t v)
{
	int ty = wa_type(w->t, v);
	if (wa_jisnum(ty)) {
		wa_pushk(w, k);
		wa_push_jnum(w->L, w->t, v);
		lua_rawset(w->L, -3);
	} else if (ty == WA_J_STR) {
		uint32_t len = wa_jlen(w->t, v);
		char buf[64];
		char *end;
		double d;
		if (len == 0 || len >= sizeof buf)
			return;
		memcpy(buf, wa_jstr(w->t, v), len);
		buf[len] = '\0';
		d = strtod(buf, &end);
		if (end == buf + len) {
			wa_pushk(w, k);
			lua_pushnumber(w->L, (lua_Number)d);
			lua_rawset(w->L, -3);
		}
	}
}

static void wa_setint(wa_walk *w, int k, uint32_t v)
{
	lua_Integer n;
	if (wa_toint(w->t, v, &n)) {
		wa_pushk(w, k);
		wa_pushint(w->L, n);
		lua_rawset(w->L, -3);
	}
}

/* Generic copy of node v (any JSON type but null). */
static void wa_setany(wa_walk *w, int k, uint32_t v)
{
	if (v && wa_jtype(w->t, v) != WA_J_NULL) {
		wa_pushk(w, k);
		wa_tape_push(w->L, w->t, v);
		lua_rawset(w->L, -3);
	}
}

/* ---- errors -------------------------------------------------------------- */

/*
 * Record a structural failure; the path is the current entry / change plus
 * the suffix (printf-style).  Returns 0.
 */
static int wa_fail(wa_walk *w, const char *what, const char *fmt, ...)
{
	size_t n = 0;
	w->path[0] = '\0';
	if (w->ei)
		n = (size_t)snprintf(w->path, sizeof w->path, "entry[%d]", w->ei);
	if (w->ci && n < sizeof w->path)
		n += (size_t)snprintf(w->path + n, sizeof w->path - n, ".changes[%d]", w->ci);
	if (fmt && n < sizeof w->path) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->path + n, sizeof w->path - n, fmt, ap);
		va_end(ap);
	}
	snprintf(w->err, sizeof w->err, "%s%s%s", what, w->path[0] ? " at " : "", w->path);
	return 0;
}

static const wa_name wa_nm_push_error[] = {WA_N("code"),	 WA_N("title"), WA_N("message"),
	WA_N("details"), WA_N("href"),	WA_N("error_data")};
static wa_nameset wa_ns_push_error = WA_SET(wa_nm_push_error);

/*
 * One error table {code, title, message, details, href} from an error object
 * of a message, status or value.
 */
static void wa_push_error(wa_walk *w, uint32_t e)
{
	enum { E_CODE, E_TITLE, E_MESSAGE, E_DETAILS, E_HREF, E_DATA, E_N };
	const wa_tape *t = w->t;
	uint32_t m[E_N], details;
	wa_scan(t, e, &wa_ns_push_error, m);
	details = wa_gets(t, wa_obj(t, m[E_DATA]), WA_KEY("details"));
	lua_createtable(w->L, 0, 5);
	wa_setint(w, K_code, m[E_CODE]);
	wa_setstr(w, K_title, m[E_TITLE]);
	/* Meta's message repeats the title; keep one when only the title came. */
	wa_setstr(w, K_message, wa_str(t, m[E_MESSAGE]) ? m[E_MESSAGE] : m[E_TITLE]);
	/* The legacy (On-Premises style) shape put details at the top. */
	wa_setstr(w, K_details, details ? details : m[E_DETAILS]);
	wa_setstr(w, K_href, m[E_HREF]);
	if (!lua_isnil(w->L, 4)) {
		lua_pushvalue(w->L, 4); /* the error metatable given to parse */
		lua_setmetatable(w->L, -2);
	}
}

/* ev.errors = list of error tables, when arr is an array node. */
static void wa_set_errors(wa_walk *w, uint32_t arr)
{
	uint32_t j;
	int k = 1;
	if (wa_type(w->t, arr) != WA_J_ARR)
		return;
	wa_pushk(w, K_errors);
	lua_createtable(w->L, (int)wa_jcount(w->t, arr), 0);
	for (j = arr + 1; j < wa_jclose(w->t, arr); j = wa_jskip(w->t, j)) {
		if (wa_jtype(w->t, j) != WA_J_OBJ)
			continue;
		wa_push_error(w, j);
		lua_rawseti(w->L, -2, k++);
	}
	lua_rawset(w->L, -3);
}

/* ---- events -------------------------------------------------------------- */

/*
 * Start an event table with the fields every event has, and remember its
 * source node for `raw` and the lazy fields (wa_end_event notes it).  Leaves
 * the table on the stack.
 */
static void wa_begin_event(wa_walk *w, int kind, uint32_t src)
{
	lua_State *L = w->L;
	lua_createtable(L, 0, 16);
	wa_setk(w, K_kind, kind);
	if (w->s_field)
		wa_setslot(w, K_field, w->s_field);
	if (w->s_waba)
		wa_setslot(w, K_waba_id, w->s_waba);
	if (w->has_time) {
		wa_pushk(w, K_entry_time);
		wa_pushint(L, w->entry_time);
		lua_rawset(L, -3);
	}
	if (w->s_pnid)
		wa_setslot(w, K_phone_number_id, w->s_pnid);
	if (w->s_dpn)
		wa_setslot(w, K_display_phone_number, w->s_dpn);
	/*
	 * Every event of the batch with a source to decode lazily shares one
	 * metatable, whose __index decodes the lazy fields on first access (see
	 * wa_note_src).  Sources that are not containers get none.
	 */
	if (src) {
		int ty = wa_jtype(w->t, src);
		if (ty != WA_J_OBJ && ty != WA_J_ARR)
			src = 0;
	}
	if (src) {
		lua_pushvalue(L, w->mt);
		lua_setmetatable(L, -2);
	}
	w->src = src;
}

/*
 * A parser buffer (buf, *cap elements of size bytes) with room for at least
 * need elements: buf itself, or a larger block (*cap updated).  Raises a
 * memory error, leaving buf as it was, when that cannot be had.
 */
static void *wa_reserve(lua_State *L, void *buf, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *nb;
	if (need <= *cap)
		return buf;
	while (n < need && n <= SIZE_MAX / 2 / size)
		n *= 2;
	if (n < need || (nb = realloc(buf, n * size)) == NULL) {
		luaL_error(L, "not enough memory");
		return buf;
	}
	*cap = n;
	return nb;
}

/*
 * Note the source node of event w->nevents + 1 (0 for none), in the parser's
 * buffer; wa_parser_walk packs them into an upvalue of the batch's __index
 * once the walk is done (see WA_UP_*), and wa_event_src finds an event's
 * source there on first access to a lazy field.  Parsing the same body again
 * gives the same node indexes (wa_batch_tape).
 */
static void wa_note_src(wa_walk *w, uint32_t src)
{
	wa_parser *p = w->p;
	size_t n = (size_t)w->nevents;
	if (n >= p->srcs_cap)
		p->srcs = (uint32_t *)wa_reserve(w->L, p->srcs, &p->srcs_cap, n + 1, sizeof *p->srcs);
	p->srcs[n] = src;
}

/* Append the event at the top of the stack to the events and pop it. */
static void wa_end_event(wa_walk *w)
{
	wa_note_src(w, w->src);
	lua_pushvalue(w->L, -1);
	lua_rawseti(w->L, w->mt, w->nevents + 1);
	lua_rawseti(w->L, w->events, ++w->nevents);
}

#if WA_RECORDS
/* Push the value at stack slot idx, or nil when idx is 0. */
static void wa_pushslot_or_nil(wa_walk *w, int idx)
{
	if (idx)
		lua_pushvalue(w->L, idx);
	else
		lua_pushnil(w->L);
}

/*
 * A new record for the event at position w->nevents + 1, whose source node
 * is src (an object); wa_messages_change has made room for every record of
 * the change.
 */
static wa_rec *wa_new_rec(wa_walk *w, int kind, uint32_t src)
{
	wa_rec *r = &w->p->recs[w->nrec++];
	wa_note_src(w, src);
	r->n = ++w->nevents;
	r->kind = kind;
	return r;
}

/*
 * The builder (see WA_RECORDS), loaded once per state by wa_webhook_open:
 * returns the builder, its control block (a wa_ctl, FFI memory), the sizes of
 * the two record types, which the C side checks against its own, and
 * jit.status; or nothing without the FFI.  The builder takes (events,
 * metatable, field, waba_id, entry_time, phone_number_id,
 * display_phone_number); it reads where the records are from the control
 * block, once, on entry, makes the contacts, then each event, gives it the
 * batch metatable and stores it at its position in the events and in the
 * batch's own list (the metatable's array part).  It takes no address from
 * its caller: outside wa_flush_records the control block holds no records,
 * so Lua code that gets hold of the builder (jit.attach hands it over) can
 * make it read nothing else.
 */
static const char wa_build_chunk[] =
    "local ok, ffi = pcall(require, 'ffi')\n"
    "if not ok then return end\n"
    "local setmetatable, fstring = setmetatable, ffi.string\n"
    "local REC = 'struct { const char *s[11]; uint32_t len[11]; double ts;'\n"
    "  .. ' int32_t n, kind, contact, st, body, sub, ctx, has_ts, extra, b[4]; }'\n"
    "local CREC = 'struct { const char *s[5]; uint32_t len[5]; }'\n"
    "local ctl = ffi.new('struct { const ' .. REC .. ' *recs; const ' .. CREC .. ' *crecs;'\n"
    "  .. ' int32_t nrec, ncrec, magic; }')\n"
    "ctl.magic = 0x57415245\n"
    "local USUAL = { 'sent', 'delivered', 'read', 'failed', 'played' }\n"
    "local MEDIA = { 'image', 'video', 'audio', 'document', 'sticker' }\n"
    "local REPLY = { 'button_reply', 'list_reply' }\n"
    "local tnew = select(2, pcall(require, 'table.new'))\n"
    "if type(tnew) ~= 'function' then tnew = function() return {} end end\n"
    "local function build(events, mt, field, waba_id, entry_time, pnid, dpn)\n"
    "  local recs, crecs, nrec, ncon = ctl.recs, ctl.crecs, ctl.nrec, ctl.ncrec\n"
    "  local contacts = tnew(ncon, 0)\n"
    "  for i = 0, ncon - 1 do\n"
    "    local s, len = crecs[i].s, crecs[i].len\n"
    "    contacts[i + 1] = {\n"
    "      name = s[0] ~= nil and fstring(s[0], len[0]) or nil,\n"
    "      username = s[1] ~= nil and fstring(s[1], len[1]) or nil,\n"
    "      wa_id = s[2] ~= nil and fstring(s[2], len[2]) or nil,\n"
    "      user_id = s[3] ~= nil and fstring(s[3], len[3]) or nil,\n"
    "      parent_user_id = s[4] ~= nil and fstring(s[4], len[4]) or nil }\n"
    "  end\n"
    "  for i = 0, nrec - 1 do\n"
    "    local r = recs[i]\n"
    "    local s, len = r.s, r.len\n"
    "    local ts, contact, ev\n"
    "    if r.has_ts ~= 0 then ts = r.ts end\n"
    "    if r.contact ~= 0 then contact = contacts[r.contact] end\n"
    "    if r.kind == 1 then\n"
    "      local body, b, ty, text, media, reply, context = r.body, r.b\n"
    "      if s[3] ~= nil then text = fstring(s[3], len[3]) end\n"
    "      if body == 1 then\n"
    "        ty = 'text'\n"
    "      elseif body == 2 then\n"
    "        local voice, animated\n"
    "        if b[0] ~= 0 then voice = b[0] == 2 end\n"
    "        if b[1] ~= 0 then animated = b[1] == 2 end\n"
    "        ty = MEDIA[r.sub]\n"
    "        media = { id = s[4] ~= nil and fstring(s[4], len[4]) or nil,\n"
    "          mime_type = s[5] ~= nil and fstring(s[5], len[5]) or nil,\n"
    "          sha256 = s[6] ~= nil and fstring(s[6], len[6]) or nil, caption = text,\n"
    "          filename = s[7] ~= nil and fstring(s[7], len[7]) or nil,\n"
    "          voice = voice, animated = animated,\n"
    "          url = s[8] ~= nil and fstring(s[8], len[8]) or nil }\n"
    "      elseif body == 3 then\n"
    "        ty = REPLY[r.sub]\n"
    "        reply = { id = s[4] ~= nil and fstring(s[4], len[4]) or nil, title = text,\n"
    "          description = s[5] ~= nil and fstring(s[5], len[5]) or nil }\n"
    "      end\n"
    "      if r.ctx ~= 0 then\n"
    "        local fwd, ffwd\n"
    "        if b[2] ~= 0 then fwd = b[2] == 2 end\n"
    "        if b[3] ~= 0 then ffwd = b[3] == 2 end\n"
    "        context = { from = s[9] ~= nil and fstring(s[9], len[9]) or nil,\n"
    "          id = s[10] ~= nil and fstring(s[10], len[10]) or nil,\n"
    "          forwarded = fwd, frequently_forwarded = ffwd }\n"
    "      end\n"
    "      ev = { kind = 'message', field = field, waba_id = waba_id, entry_time = entry_time,\n"
    "        phone_number_id = pnid, display_phone_number = dpn,\n"
    "        id = s[0] ~= nil and fstring(s[0], len[0]) or nil,\n"
    "        from = s[1] ~= nil and fstring(s[1], len[1]) or nil,\n"
    "        from_user_id = s[2] ~= nil and fstring(s[2], len[2]) or nil,\n"
    "        timestamp = ts, contact = contact, type = ty, text = text, media = media,\n"
    "        reply = reply, context = context }\n"
    "    else\n"
    "      local st\n"
    "      if r.st ~= 0 then st = USUAL[r.st] elseif s[3] ~= nil then st = fstring(s[3], len[3]) end\n"
    "      ev = { kind = 'status', field = field, waba_id = waba_id, entry_time = entry_time,\n"
    "        phone_number_id = pnid, display_phone_number = dpn, type = st or 'unknown',\n"
    "        status = st, id = s[0] ~= nil and fstring(s[0], len[0]) or nil, timestamp = ts,\n"
    "        recipient_id = s[1] ~= nil and fstring(s[1], len[1]) or nil,\n"
    "        recipient_user_id = s[2] ~= nil and fstring(s[2], len[2]) or nil, contact = contact }\n"
    "    end\n"
    "    local n = r.n\n"
    "    events[n] = setmetatable(ev, mt)\n"
    "    mt[n] = ev\n"
    "  end\n"
    "end\n"
    "return build, ctl, ffi.sizeof(REC), ffi.sizeof(CREC), require('jit').status\n";
#endif

/* (wa_id and user_id first: WA_ID, WA_USER_ID) */
static const wa_name wa_nm_index_contacts[] = {WA_N("wa_id"), WA_N("user_id"), WA_N("profile"),
	WA_N("parent_user_id")};
static wa_nameset wa_ns_index_contacts = WA_SET(wa_nm_index_contacts);

/*
 * Slot of table w->by[which] for string node v, hash h: the slot of the
 * first contact whose id `which` has v's text, or the empty slot where such
 * a contact goes.
 */
static uint32_t *wa_contact_slot(const wa_walk *w, int which, uint32_t v, uint32_t h)
{
	uint32_t *tab = w->by[which], i;
	for (i = h & w->cmask;; i = (i + 1) & w->cmask) {
		const wa_contact *c;
		if (tab[i] == 0)
			return &tab[i];
		c = &w->cl[tab[i] - 1];
		if (c->hash[which] == h && wa_sameval(w->t, c->id[which], v))
			return &tab[i];
	}
}

/*
 * Index the current change's contacts (objects only, in order), with tables
 * from wa_id and from user_id to the first contact that has it: matching an
 * event to its sender takes constant time, however many contacts come.
 */
static void wa_index_contacts(wa_walk *w)
{
	const wa_tape *t = w->t;
	wa_parser *p = w->p;
	uint32_t arr = w->contacts, j, size = 8;
	size_t need = wa_jcount(t, arr), n = 0, bytes;
	w->ncontacts = 0;
	/* At most half full; node counts stay far below 2^31 (the body limit). */
	while (size < 2 * need)
		size <<= 1;
	bytes = need * sizeof(wa_contact) + 2 * (size_t)size * sizeof(uint32_t);
	p->cbuf = wa_reserve(w->L, p->cbuf, &p->cbytes, bytes, 1);
#if WA_RECORDS
	if (w->build)
		p->crecs = (wa_crec *)wa_reserve(w->L, p->crecs, &p->crecs_cap, need, sizeof *p->crecs);
#endif
	w->cl = (wa_contact *)p->cbuf;
	w->by[WA_ID] = (uint32_t *)(void *)(w->cl + need);
	w->by[WA_USER_ID] = w->by[WA_ID] + size;
	w->cmask = size - 1;
	memset(w->by[WA_ID], 0, 2 * (size_t)size * sizeof(uint32_t));
	for (j = arr + 1; j < wa_jclose(t, arr); j = wa_jskip(t, j)) {
		uint32_t m[4];
		wa_contact *c = &w->cl[n];
		int which;
		if (wa_jtype(t, j) != WA_J_OBJ)
			continue;
		wa_scan(t, j, &wa_ns_index_contacts, m);
		c->profile = m[2];
		c->parent = m[3];
		c->rec = 0;
		n++;
		for (which = WA_ID; which <= WA_USER_ID; which++) {
			uint32_t *slot;
			c->id[which] = wa_str(t, m[which]);
			c->hash[which] = wa_strhash(t, c->id[which]);
			if (!c->id[which])
				continue;
			/* An empty slot only: a repeated id keeps its first contact. */
			slot = wa_contact_slot(w, which, c->id[which], c->hash[which]);
			if (*slot == 0)
				*slot = (uint32_t)n;
		}
	}
	w->ncontacts = (int)n;
}

static const wa_name wa_nm_set_contact_pnames[] = {WA_N("name"), WA_N("username")};
static wa_nameset wa_ns_set_contact_pnames = WA_SET(wa_nm_set_contact_pnames);


/*
 * The contact of an event, from the entries of the change's contacts: the
 * first that matches id (by wa_id) or user_id, or the only entry when there
 * is exactly one.  Its index in w->cl, or -1.
 */
static int wa_find_contact(wa_walk *w, uint32_t id, uint32_t user_id)
{
	const wa_tape *t = w->t;
	uint32_t arr = w->contacts, want[2];
	int which, match = -1;
	if (wa_type(t, arr) != WA_J_ARR || wa_jcount(t, arr) == 0)
		return -1;
	if (w->ncontacts < 0)
		wa_index_contacts(w);
	/* The first contact with either: the lower of the two first matches. */
	want[WA_ID] = id;
	want[WA_USER_ID] = user_id;
	for (which = WA_ID; which <= WA_USER_ID; which++) {
		int j;
		if (!want[which])
			continue;
		j = (int)*wa_contact_slot(w, which, want[which], wa_strhash(t, want[which])) - 1;
		if (j >= 0 && (match < 0 || j < match))
			match = j;
	}
	if (match < 0 && wa_jcount(t, arr) == 1 && w->ncontacts == 1)
		match = 0;
	return match;
}

/* The fields of a contact table, in this order (wa_contact_fields). */
static const unsigned char wa_contact_keys[] = {K_name, K_username, K_wa_id, K_user_id,
	K_parent_user_id};

/* The nodes of contact c's fields (wa_contact_keys), 0 for absent. */
static void wa_contact_fields(const wa_walk *w, const wa_contact *c, uint32_t out[5])
{
	wa_scan(w->t, wa_obj(w->t, c->profile), &wa_ns_set_contact_pnames, out);
	out[2] = c->id[WA_ID];
	out[3] = c->id[WA_USER_ID];
	out[4] = c->parent;
}

/*
 * Push contact = {name, wa_id, user_id, parent_user_id, username} of an event
 * (wa_find_contact), or return 0 when it has none.  One table per contact per
 * change, shared by the events that match it.
 */
static int wa_push_contact(wa_walk *w, uint32_t id, uint32_t user_id)
{
	lua_State *L = w->L;
	int match = wa_find_contact(w, id, user_id);
	if (match < 0)
		return 0;
	/*
	 * The slot holds the change's contact tables made so far: the only
	 * contact's table itself when there is one (the usual single message),
	 * else a list of them by contact.
	 */
	if (w->ncontacts == 1)
		lua_pushvalue(L, w->ctabs);
	else {
		if (lua_isnil(L, w->ctabs)) {
			lua_createtable(L, w->ncontacts, 0);
			lua_replace(L, w->ctabs);
		}
		lua_rawgeti(L, w->ctabs, match + 1);
	}
	if (lua_isnil(L, -1)) {
		uint32_t f[5];
		size_t k;
		lua_pop(L, 1);
		wa_contact_fields(w, &w->cl[match], f);
		lua_createtable(L, 0, 5);
		for (k = 0; k < sizeof wa_contact_keys; k++)
			wa_setstr(w, wa_contact_keys[k], f[k]);
		lua_pushvalue(L, -1);
		if (w->ncontacts == 1)
			lua_replace(L, w->ctabs);
		else
			lua_rawseti(L, w->ctabs, match + 1);
	}
	return 1;
}

#if WA_RECORDS
/*
 * The record + 1 of an event's contact (see wa_push_contact), written the
 * first time an event of the change needs it; 0 when the event has none.
 */
static int32_t wa_contact_rec(wa_walk *w, uint32_t id, uint32_t user_id)
{
	int match = wa_find_contact(w, id, user_id);
	wa_contact *c;
	if (match < 0)
		return 0;
	c = &w->cl[match];
	if (!c->rec) {
		wa_crec *r = &w->p->crecs[w->ncrec];
		uint32_t f[5];
		int k;
		wa_contact_fields(w, c, f);
		for (k = 0; k < 5; k++)
			wa_rstr(w->t, f[k], &r->s[k], &r->len[k]);
		c->rec = ++w->ncrec;
	}
	return c->rec;
}
#endif

/* ev.contact, for the event at the top of the stack (see wa_push_contact). */
static void wa_set_contact(wa_walk *w, uint32_t id, uint32_t user_id)
{
	if (wa_push_contact(w, id, user_id)) {
		wa_pushk(w, K_contact);
		lua_insert(w->L, -2);
		lua_rawset(w->L, -3);
	}
}

static const wa_name wa_nm_set_context_rnames[] = {WA_N("catalog_id"), WA_N("product_retailer_id")};
static wa_nameset wa_ns_set_context_rnames = WA_SET(wa_nm_set_context_rnames);

static const wa_name wa_nm_set_context[] = {WA_N("from"), WA_N("id"), WA_N("forwarded"),
	WA_N("frequently_forwarded"), WA_N("referred_product")};
static wa_nameset wa_ns_set_context = WA_SET(wa_nm_set_context);

static const wa_name wa_nm_set_media[] = {WA_N("id"),	  WA_N("mime_type"), WA_N("sha256"),
	WA_N("caption"),  WA_N("filename"),  WA_N("voice"),
	WA_N("animated"), WA_N("url")};
static wa_nameset wa_ns_set_media = WA_SET(wa_nm_set_media);

/* Push a fresh, empty Parser userdata (its __gc frees whatever it holds). */
static wa_parser *wa_push_parser(lua_State *L)
{
	wa_parser *p = (wa_parser *)lua_newuserdata(L, sizeof *p);
	memset(p, 0, sizeof *p);
	luaL_getmetatable(L, WA_PARSER_MT);
	lua_setmetatable(L, -2);
	return p;
}

/* Free buffer b of a parser and zero its capacity cap. */
#define WA_BUF_FREE(b, cap) (free(b), (b) = NULL, (cap) = 0)

/* Free the parser's buffers (a later parse allocates them again). */
static void wa_parser_free(wa_parser *p)
{
	wa_tape_free(&p->tape);
	p->gen++;
	WA_BUF_FREE(p->cbuf, p->cbytes);
	WA_BUF_FREE(p->srcs, p->srcs_cap);
	WA_BUF_FREE(p->recs, p->recs_cap);
	WA_BUF_FREE(p->crecs, p->crecs_cap);
	WA_BUF_FREE(p->recm, p->recm_cap);
}

/* Bytes the parser's buffers hold (those wa_parser_free frees). */
static size_t wa_parser_bytes(const wa_parser *p)
{
	return wa_tape_bytes(&p->tape) + p->cbytes + p->srcs_cap * sizeof *p->srcs +
	       p->recs_cap * sizeof *p->recs + p->crecs_cap * sizeof *p->crecs +
	       p->recm_cap * sizeof *p->recm;
}

/*
 * The tape of p is no longer in use; a close asked for meanwhile (by a
 * finalizer or a debug hook run in the middle) frees the buffers now.
 */
static void wa_parser_release(wa_parser *p)
{
	p->busy = 0;
	if (p->closed)
		wa_parser_free(p);
}

static const wa_name wa_nm_set_flow[] = {WA_N("name"), WA_N("body"), WA_N("response_json")};
static wa_nameset wa_ns_set_flow = WA_SET(wa_nm_set_flow);

/*
 * flow = {name, body, response_json, response}: response is response_json
 * decoded with a tape of its own (left out when it is not valid JSON).
 */
static void wa_set_flow(wa_walk *w, uint32_t r)
{
	uint32_t m[3], rj;
	wa_scan(w->t, r, &wa_ns_set_flow, m);
	rj = wa_str(w->t, m[2]);
	wa_pushk(w, K_flow);
	lua_createtable(w->L, 0, 4);
	wa_setstr(w, K_name, m[0]);
	wa_setstr(w, K_body, m[1]);
	if (rj) {
		wa_parser *p;
		char err[160];
		wa_setstr(w, K_response_json, rj);
		/* A second, temporary parser: the outer tape is still in use. */
		p = wa_push_parser(w->L);
		if (wa_tape_parse(&p->tape, wa_jstr(w->t, rj), wa_jlen(w->t, rj), err, sizeof err)) {
			wa_pushk(w, K_response);
			wa_tape_push(w->L, &p->tape, WA_JROOT);
			lua_rawset(w->L, -4);
		}
		wa_tape_free(&p->tape);
		lua_pop(w->L, 1);
	}
	lua_rawset(w->L, -3);
	wa_setstr(w, K_text, m[1]);
}

/* Members of a message the walk reads; M_TEXT..M_REVOKE are also type names. */
static const wa_name wa_msg_names[] = {
    WA_N("from"),     WA_N("from_user_id"), WA_N("from_parent_user_id"), WA_N("group_id"),
    WA_N("id"),	      WA_N("timestamp"),    WA_N("type"),		 WA_N("context"),
    WA_N("errors"),   WA_N("text"),	    WA_N("image"),		 WA_N("video"),
    WA_N("audio"),    WA_N("document"),	    WA_N("sticker"),		 WA_N("location"),
    WA_N("contacts"), WA_N("interactive"),  WA_N("button"),		 WA_N("reaction"),
    WA_N("order"),    WA_N("system"),	    WA_N("unsupported"),	 WA_N("edit"),
    WA_N("revoke")};
enum {
	M_FROM, M_FROM_USER_ID, M_FROM_PARENT, M_GROUP_ID, M_ID, M_TIMESTAMP, M_TYPE, M_CONTEXT,
	M_ERRORS, M_TEXT, M_IMAGE, M_VIDEO, M_AUDIO, M_DOCUMENT, M_STICKER, M_LOCATION,
	M_CONTACTS, M_INTERACTIVE, M_BUTTON, M_REACTION, M_ORDER, M_SYSTEM, M_UNSUPPORTED,
	M_EDIT, M_REVOKE, M_N
};
/* Room for one record's scan in the parser's recm: wa_ns_msg's or wa_ns_status_event's. */
#define WA_RECM (M_N > 10 ? M_N : 10)
static wa_nameset wa_ns_msg = WA_SET(wa_msg_names);
/* The interned type name of M_TEXT..M_REVOKE, by M_<type> - M_TEXT. */
static const unsigned char wa_msg_type_k[] = {K_text, K_image, K_video, K_audio, K_document,
	K_sticker, K_location, K_contacts, K_interactive, K_button, K_reaction, K_order, K_system,
	K_unsupported, K_edit, K_revoke};
typedef char wa_msg_type_k_covers_the_types[sizeof wa_msg_type_k == M_REVOKE - M_TEXT + 1 ? 1 : -1];

static const wa_name wa_nm_message_interactive[] = {WA_N("type"), WA_N("button_reply"), WA_N("list_reply"),
	WA_N("nfm_reply"), WA_N("call_permission_reply")};
static wa_nameset wa_ns_message_interactive = WA_SET(wa_nm_message_interactive);

static const wa_name wa_nm_message_interactive_rnames[] = {WA_N("id"), WA_N("title"), WA_N("description")};
static wa_nameset wa_ns_message_interactive_rnames = WA_SET(wa_nm_message_interactive_rnames);

/* A JSON boolean for a record's b: 2 true, 1 false, 0 anything else. */
static int32_t wa_rbool(const wa_tape *t, uint32_t v)
{
	int ty = wa_type(t, v);
	return ty == WA_J_TRUE ? 2 : ty == WA_J_FALSE ? 1 : 0;
}

/*
 * Put into r the part of message m (wa_ns_msg's members) that depends on its
 * type, for the commonest shapes (see wa_rec): a text, media, a button or
 * list reply.  Returns WA_B_*, or 0 (r->s[3] NULL) for any other shape, which
 * wa_message_body makes.
 */
static int32_t wa_rec_body(const wa_tape *t, wa_rec *r, const uint32_t *m)
{
	uint32_t ty = wa_str(t, m[M_TYPE]), o, f[8];
	int which = ty ? wa_set_find(&wa_ns_msg, wa_jstr(t, ty), wa_jlen(t, ty)) : -1;
	r->s[3] = NULL;
	if (which < M_TEXT || (o = wa_obj(t, m[which])) == 0)
		return 0;
	switch (which) {
	case M_TEXT:
		wa_rstr(t, wa_gets(t, o, WA_KEY("body")), &r->s[3], &r->len[3]);
		return WA_B_TEXT;
	case M_IMAGE:
	case M_VIDEO:
	case M_AUDIO:
	case M_DOCUMENT:
	case M_STICKER:
		wa_scan(t, o, &wa_ns_set_media, f);
		wa_rstr(t, f[3], &r->s[3], &r->len[3]);
		wa_rstr(t, f[0], &r->s[4], &r->len[4]);
		wa_rstr(t, f[1], &r->s[5], &r->len[5]);
		wa_rstr(t, f[2], &r->s[6], &r->len[6]);
		wa_rstr(t, f[4], &r->s[7], &r->len[7]);
		wa_rstr(t, f[7], &r->s[8], &r->len[8]);
		r->b[0] = wa_rbool(t, f[5]);
		r->b[1] = wa_rbool(t, f[6]);
		r->sub = which - M_IMAGE + 1;
		return WA_B_MEDIA;
	case M_INTERACTIVE: {
		uint32_t st, reply;
		int list;
		wa_scan(t, o, &wa_ns_message_interactive, f);
		st = wa_str(t, f[0]);
		list = wa_streq(t, st, WA_KEY("list_reply"));
		if (!list && !wa_streq(t, st, WA_KEY("button_reply")))
			return 0;
		if ((reply = wa_obj(t, f[list ? 2 : 1])) == 0)
			return 0;
		wa_scan(t, reply, &wa_ns_message_interactive_rnames, f);
		wa_rstr(t, f[0], &r->s[4], &r->len[4]);
		wa_rstr(t, f[1], &r->s[3], &r->len[3]);
		wa_rstr(t, f[2], &r->s[5], &r->len[5]);
		r->sub = list + 1;
		return WA_B_REPLY;
	}
	default:
		return 0;
	}
}

/*
 * Put context object c into r (see wa_rec) and return its referred product
 * (an object node), or 0.
 */
static uint32_t wa_rec_context(const wa_tape *t, wa_rec *r, uint32_t c)
{
	uint32_t f[5];
	wa_scan(t, c, &wa_ns_set_context, f);
	wa_rstr(t, f[0], &r->s[9], &r->len[9]);
	wa_rstr(t, f[1], &r->s[10], &r->len[10]);
	r->b[2] = wa_rbool(t, f[2]);
	r->b[3] = wa_rbool(t, f[3]);
	return wa_obj(t, f[4]);
}

/* table[k] = string i of record r, when it has one. */
static void wa_setrstr(wa_walk *w, int k, const wa_rec *r, int i)
{
	if (r->s[i]) {
		wa_pushk(w, k);
		lua_pushlstring(w->L, r->s[i], r->len[i]);
		lua_rawset(w->L, -3);
	}
}

/* table[k] = boolean i of record r, when it has one. */
static void wa_setrbool(wa_walk *w, int k, const wa_rec *r, int i)
{
	if (r->b[i]) {
		wa_pushk(w, k);
		lua_pushboolean(w->L, r->b[i] == 2);
		lua_rawset(w->L, -3);
	}
}

/*
 * ev.context, for the event at the top of the stack, from context object c
 * (0: none).  The same table as the builder makes, with the referred product
 * when there is one.
 */
static void wa_set_context(wa_walk *w, uint32_t c)
{
	wa_rec r;
	uint32_t product;
	if (!c)
		return;
	memset(&r, 0, sizeof r);
	product = wa_rec_context(w->t, &r, c);
	wa_pushk(w, K_context);
	lua_createtable(w->L, 0, 5);
	wa_setrstr(w, K_from, &r, 9);
	wa_setrstr(w, K_id, &r, 10);
	wa_setrbool(w, K_forwarded, &r, 2);
	wa_setrbool(w, K_frequently_forwarded, &r, 3);
	if (product) {
		uint32_t f[2];
		wa_scan(w->t, product, &wa_ns_set_context_rnames, f);
		wa_pushk(w, K_referred_product);
		lua_createtable(w->L, 0, 2);
		wa_setstr(w, K_catalog_id, f[0]);
		wa_setstr(w, K_product_retailer_id, f[1]);
		lua_rawset(w->L, -3);
	}
	lua_rawset(w->L, -3);
}

/*
 * The type of the event at the top of the stack and its part, from a message
 * record's body (r->body, WA_B_*): the same tables as the builder makes.
 */
static void wa_set_rec_body(wa_walk *w, const wa_rec *r)
{
	lua_State *L = w->L;
	switch (r->body) {
	case WA_B_TEXT:
		wa_setk(w, K_type, K_text);
		break;
	case WA_B_MEDIA:
		wa_setk(w, K_type, wa_msg_type_k[M_IMAGE - M_TEXT + r->sub - 1]);
		wa_pushk(w, K_media);
		lua_createtable(L, 0, 8);
		wa_setrstr(w, K_id, r, 4);
		wa_setrstr(w, K_mime_type, r, 5);
		wa_setrstr(w, K_sha256, r, 6);
		wa_setrstr(w, K_caption, r, 3);
		wa_setrstr(w, K_filename, r, 7);
		wa_setrbool(w, K_voice, r, 0);
		wa_setrbool(w, K_animated, r, 1);
		wa_setrstr(w, K_url, r, 8);
		lua_rawset(L, -3);
		break;
	case WA_B_REPLY:
		wa_setk(w, K_type, r->sub == 2 ? K_list_reply : K_button_reply);
		wa_pushk(w, K_reply);
		lua_createtable(L, 0, 3);
		wa_setrstr(w, K_id, r, 4);
		wa_setrstr(w, K_title, r, 3);
		wa_setrstr(w, K_description, r, 5);
		lua_rawset(L, -3);
		break;
	}
	wa_setrstr(w, K_text, r, 3);
}


/* The interactive part of a message: sets ev.type and what goes with it. */
static void wa_message_interactive(wa_walk *w, uint32_t it)
{
	const wa_tape *t = w->t;
	uint32_t m[5], st;
	wa_scan(t, it, &wa_ns_message_interactive, m);
	st = wa_str(t, m[0]);
	/* (a button or list reply with its reply object is a record's: wa_rec_body) */
	if (wa_streq(t, st, WA_KEY("nfm_reply"))) {
		uint32_t r = wa_obj(t, m[3]);
		uint32_t name = wa_gets(t, r, WA_KEY("name"));
		wa_setk(w, K_type,
			wa_streq(t, name, WA_KEY("address_message")) ? K_address_reply : K_flow_reply);
		if (r)
			wa_set_flow(w, r);
	} else if (wa_streq(t, st, WA_KEY("call_permission_reply"))) {
		wa_setstr(w, K_type, st);
		wa_setany(w, K_call_permission, m[4]);
	} else if (st) {
		wa_setstr(w, K_type, st);
	} else {
		wa_setk(w, K_type, K_interactive);
	}
}

static const wa_name wa_nm_message_body[] = {WA_N("latitude"), WA_N("longitude"),
	WA_N("name"), WA_N("address"), WA_N("url")};
static wa_nameset wa_ns_message_body = WA_SET(wa_nm_message_body);

/* The part of a message event that depends on its type; sets ev.type. */
static void wa_message_body(wa_walk *w, const uint32_t *m)
{
	const wa_tape *t = w->t;
	lua_State *L = w->L;
	uint32_t ty = wa_str(t, m[M_TYPE]), o;
	int which;
	wa_rec r;

	memset(&r, 0, sizeof r);
	if (!ty) {
		wa_setk(w, K_type, K_unknown);
		return;
	}
	/* A text, media, a button or list reply: as the records have them. */
	if ((r.body = wa_rec_body(t, &r, m)) != 0) {
		wa_set_rec_body(w, &r);
		return;
	}
	which = wa_set_find(&wa_ns_msg, wa_jstr(t, ty), wa_jlen(t, ty));
	if (which < M_TEXT || which > M_REVOKE)
		which = -1;
	o = which >= 0 ? wa_obj(t, m[which]) : 0;
	switch (which) {
	case M_LOCATION:
		if (o) {
			uint32_t lm[5];
			wa_scan(t, o, &wa_ns_message_body, lm);
			wa_pushk(w, K_location);
			lua_createtable(L, 0, 5);
			wa_setnum(w, K_latitude, lm[0]);
			wa_setnum(w, K_longitude, lm[1]);
			wa_setstr(w, K_name, lm[2]);
			wa_setstr(w, K_address, lm[3]);
			wa_setstr(w, K_url, lm[4]);
			lua_rawset(L, -3);
		}
		break;
	case M_CONTACTS:
		wa_setany(w, K_contacts, m[M_CONTACTS]);
		break;
	case M_INTERACTIVE:
		wa_message_interactive(w, o);
		return; /* it sets the type */
	case M_BUTTON:
		if (o) {
			uint32_t pl = wa_gets(t, o, WA_KEY("payload")), tx = wa_gets(t, o, WA_KEY("text"));
			wa_setstr(w, K_payload, pl);
			wa_setstr(w, K_text, tx);
			wa_pushk(w, K_reply);
			lua_createtable(L, 0, 2);
			wa_setstr(w, K_id, pl);
			wa_setstr(w, K_title, tx);
			lua_rawset(L, -3);
		}
		break;
	case M_REACTION:
		if (o) {
			uint32_t e = wa_gets(t, o, WA_KEY("emoji"));
			wa_pushk(w, K_reaction);
			lua_createtable(L, 0, 3);
			wa_setstr(w, K_message_id, wa_get(t, o, WA_KEY("message_id")));
			if (e && wa_jlen(t, e) > 0) {
				wa_setstr(w, K_emoji, e);
			} else {
				wa_pushk(w, K_removed);
				lua_pushboolean(L, 1);
				lua_rawset(L, -3);
			}
			lua_rawset(L, -3);
		}
		break;
	case M_ORDER:
		wa_setany(w, K_order, m[M_ORDER]);
		wa_setstr(w, K_text, wa_gets(t, o, WA_KEY("text")));
		break;
	case M_SYSTEM:
		wa_setany(w, K_system, m[M_SYSTEM]);
		wa_setstr(w, K_text, wa_gets(t, o, WA_KEY("body")));
		break;
	case M_UNSUPPORTED:
		wa_setstr(w, K_unsupported_type, wa_gets(t, o, WA_KEY("type")));
		break;
	case M_EDIT:
		if (o) {
			uint32_t msg = wa_get(t, o, WA_KEY("message")), mo = wa_obj(t, msg);
			wa_pushk(w, K_edit);
			lua_createtable(L, 0, 2);
			wa_setstr(w, K_original_message_id, wa_get(t, o, WA_KEY("original_message_id")));
			wa_setany(w, K_message, msg);
			lua_rawset(L, -3);
			if (mo) {
				uint32_t txt = wa_geto(t, mo, WA_KEY("text"));
				if (txt) {
					wa_setstr(w, K_text, wa_gets(t, txt, WA_KEY("body")));
				} else {
					/* An edited caption: look in the edited media object. */
					uint32_t mt = wa_gets(t, mo, WA_KEY("type"));
					uint32_t media =
					    mt ? wa_geto(t, mo, wa_jstr(t, mt), wa_jlen(t, mt)) : 0;
					wa_setstr(w, K_text, wa_gets(t, media, WA_KEY("caption")));
				}
			}
		}
		break;
	case M_REVOKE:
		if (o) {
			wa_pushk(w, K_revoke);
			lua_createtable(L, 0, 1);
			wa_setstr(w, K_original_message_id, wa_get(t, o, WA_KEY("original_message_id")));
			lua_rawset(L, -3);
		}
		break;
	default:
		/* a type not known yet: its own name */
		wa_setstr(w, K_type, ty);
		return;
	}
	wa_setk(w, K_type, wa_msg_type_k[which - M_TEXT]);
}

#if WA_RECORDS
/* Where the last record's members go (WA_RECM words; see wa_flush_records). */
static uint32_t *wa_rec_members(wa_walk *w)
{
	return &w->p->recm[(size_t)(w->nrec - 1) * WA_RECM];
}
#endif

/*
 * The fields of the message event at the top of the stack (m: wa_ns_msg's
 * members) that the builder does not set, with the context when context is
 * set, and the type and its part when body is.
 */
static void wa_message_rest(wa_walk *w, const uint32_t *m, int body, int context)
{
	wa_setstr(w, K_from_parent_user_id, m[M_FROM_PARENT]);
	wa_setstr(w, K_group_id, m[M_GROUP_ID]);
	if (context)
		wa_set_context(w, wa_obj(w->t, m[M_CONTEXT]));
	/* referral and identity: lazy (wa_event_index) */
	wa_set_errors(w, m[M_ERRORS]);
	if (body)
		wa_message_body(w, m);
}

static void wa_message_event(wa_walk *w, uint32_t msg)
{
	const wa_tape *t = w->t;
	uint32_t m[M_N], from, from_uid;
	wa_scan(t, msg, &wa_ns_msg, m);
	from = wa_str(t, m[M_FROM]);
	from_uid = wa_str(t, m[M_FROM_USER_ID]);
#if WA_RECORDS
	if (w->build) {
		wa_rec *r = wa_new_rec(w, WA_R_MESSAGE, msg);
		lua_Integer ts;
		uint32_t ctx = wa_obj(t, m[M_CONTEXT]);
		wa_rstr(t, m[M_ID], &r->s[0], &r->len[0]);
		wa_rstr(t, from, &r->s[1], &r->len[1]);
		wa_rstr(t, from_uid, &r->s[2], &r->len[2]);
		r->body = wa_rec_body(t, r, m);
		r->ctx = ctx && !wa_rec_context(t, r, ctx); /* (not with a referred product) */
		r->has_ts = wa_toint(t, m[M_TIMESTAMP], &ts);
		r->ts = r->has_ts ? (double)ts : 0;
		r->contact = wa_contact_rec(w, from, from_uid);
		/* The commonest messages (text, media, replies) are whole after the builder. */
		r->extra = !r->body || (ctx && !r->ctx) || m[M_FROM_PARENT] || m[M_GROUP_ID] ||
			   m[M_ERRORS];
		if (r->extra)
			memcpy(wa_rec_members(w), m, sizeof m);
		return;
	}
#endif
	wa_begin_event(w, K_message, msg);
	wa_setstr(w, K_id, m[M_ID]);
	wa_setstr(w, K_from, from);
	wa_setstr(w, K_from_user_id, from_uid);
	wa_setint(w, K_timestamp, m[M_TIMESTAMP]);
	wa_set_contact(w, from, from_uid);
	wa_message_rest(w, m, 1, 1);
	wa_end_event(w);
}

static const wa_name wa_nm_status_event[] = {
	WA_N("status"),	       WA_N("id"),
	WA_N("timestamp"),	       WA_N("recipient_id"),
	WA_N("recipient_user_id"), WA_N("parent_recipient_user_id"),
	WA_N("recipient_participant_id"), WA_N("recipient_type"),
	WA_N("biz_opaque_callback_data"), WA_N("errors")};
static wa_nameset wa_ns_status_event = WA_SET(wa_nm_status_event);

/*
 * Push the status of a status event, string node i: interned once when it is
 * one of the usual ones.
 */
static const wa_name wa_nm_status[] = {WA_N("sent"), WA_N("delivered"), WA_N("read"),
	WA_N("failed"), WA_N("played")};
static wa_nameset wa_ns_status = WA_SET(wa_nm_status);
static const unsigned char wa_status_k[] = {K_sent, K_delivered, K_read, K_failed, K_played};

static void wa_push_status(wa_walk *w, uint32_t i)
{
	const char *p = wa_jstr(w->t, i);
	uint32_t len = wa_jlen(w->t, i);
	int k = wa_set_find(&wa_ns_status, p, len);
	if (k >= 0)
		wa_pushk(w, wa_status_k[k]);
	else
		lua_pushlstring(w->L, p, len);
}

/* The fields of the status event at the top of the stack the builder does not set. */
static void wa_status_rest(wa_walk *w, const uint32_t *m)
{
	wa_setstr(w, K_parent_recipient_user_id, m[5]);
	wa_setstr(w, K_recipient_participant_id, m[6]);
	wa_setstr(w, K_recipient_type, m[7]);
	wa_setstr(w, K_biz_opaque_callback_data, m[8]);
	/* conversation and pricing: lazy (wa_event_index) */
	wa_set_errors(w, m[9]);
}

static void wa_status_event(wa_walk *w, uint32_t st)
{
	const wa_tape *t = w->t;
	uint32_t m[10], status;
	wa_scan(t, st, &wa_ns_status_event, m);
	status = wa_str(t, m[0]);
#if WA_RECORDS
	if (w->build) {
		wa_rec *r = wa_new_rec(w, WA_R_STATUS, st);
		lua_Integer ts;
		int k = status ? wa_set_find(&wa_ns_status, wa_jstr(t, status), wa_jlen(t, status)) : -1;
		r->st = k + 1;
		wa_rstr(t, m[1], &r->s[0], &r->len[0]);
		wa_rstr(t, m[3], &r->s[1], &r->len[1]);
		wa_rstr(t, m[4], &r->s[2], &r->len[2]);
		wa_rstr(t, k < 0 ? status : 0, &r->s[3], &r->len[3]);
		r->has_ts = wa_toint(t, m[2], &ts);
		r->ts = r->has_ts ? (double)ts : 0;
		r->contact = wa_contact_rec(w, wa_str(t, m[3]), wa_str(t, m[4]));
		r->extra = m[5] || m[6] || m[7] || m[8] || m[9];
		if (r->extra)
			memcpy(wa_rec_members(w), m, sizeof m);
		return;
	}
#endif
	wa_begin_event(w, K_status, st);
	if (status) {
		wa_push_status(w, status);
		wa_pushk(w, K_type);
		lua_pushvalue(w->L, -2);
		lua_rawset(w->L, -4);
		wa_pushk(w, K_status);
		lua_insert(w->L, -2);
		lua_rawset(w->L, -3);
	} else {
		wa_setk(w, K_type, K_unknown);
	}
	wa_setstr(w, K_id, m[1]);
	wa_setint(w, K_timestamp, m[2]);
	wa_setstr(w, K_recipient_id, m[3]);
	wa_setstr(w, K_recipient_user_id, m[4]);
	wa_status_rest(w, m);
	wa_set_contact(w, wa_str(t, m[3]), wa_str(t, m[4]));
	wa_end_event(w);
}

static void wa_error_event(wa_walk *w, uint32_t e)
{
	wa_begin_event(w, K_error, e);
	wa_setk(w, K_type, K_error);
	wa_setint(w, K_code, wa_get(w->t, e, WA_KEY("code")));
	wa_pushk(w, K_error);
	wa_push_error(w, e);
	lua_rawset(w->L, -3);
	wa_end_event(w);
}

static void wa_change_event(wa_walk *w, uint32_t value, uint32_t field)
{
	int ty = wa_type(w->t, value);
	wa_begin_event(w, K_change, value);
	wa_setstr(w, K_type, field);
	/* A container value is lazy (wa_event_index); a scalar is stored now. */
	if (ty != WA_J_OBJ && ty != WA_J_ARR)
		wa_setany(w, K_value, value);
	if (ty == WA_J_OBJ)
		wa_setstr(w, K_event, wa_get(w->t, value, WA_KEY("event")));
	wa_end_event(w);
}

#if WA_RECORDS
/*
 * Make the current change's message and status events from their records:
 * the builder makes them, then the walk sets what the records leave out, on
 * the events that have more.
 */
static void wa_flush_records(wa_walk *w)
{
	lua_State *L = w->L;
	wa_parser *p = w->p;
	wa_ctl *ctl;
	int i;
	if (w->nrec == 0)
		return;
	luaL_checkstack(L, 16, "webhook parse");
	lua_rawgeti(L, w->consts, WA_CONST_CTL);
	ctl = (wa_ctl *)lua_topointer(L, -1); /* kept by the constants table */
	lua_pop(L, 1);
	lua_pushvalue(L, w->build);
	lua_pushvalue(L, w->events);
	lua_pushvalue(L, w->mt);
	wa_pushslot_or_nil(w, w->s_field);
	wa_pushslot_or_nil(w, w->s_waba);
	if (w->has_time)
		wa_pushint(L, w->entry_time);
	else
		lua_pushnil(L);
	wa_pushslot_or_nil(w, w->s_pnid);
	wa_pushslot_or_nil(w, w->s_dpn);
	ctl->recs = p->recs;
	ctl->nrec = w->nrec;
	ctl->crecs = p->crecs;
	ctl->ncrec = w->ncrec;
	/*
	 * (a memory error in the builder skips the reset below: the next flush
	 * sets the block again, and until then it points at the parser's own
	 * buffers, which the builder only reads)
	 */
	lua_call(L, 7, 0);
	ctl->recs = NULL;
	ctl->crecs = NULL;
	ctl->nrec = ctl->ncrec = 0;
	for (i = 0; i < w->nrec; i++) {
		const wa_rec *r = &p->recs[i];
		const uint32_t *m = &p->recm[(size_t)i * WA_RECM];
		if (!r->extra)
			continue;
		lua_rawgeti(L, w->events, r->n);
		if (r->kind == WA_R_MESSAGE)
			wa_message_rest(w, m, !r->body, !r->ctx);
		else
			wa_status_rest(w, m);
		lua_pop(L, 1);
	}
	w->nrec = 0;
}
#endif

/*
 * Check that a (member key of the value, or 0) is absent or an array of
 * objects.  Returns 0 (with the error recorded) when it is not.
 */
static int wa_check_list(wa_walk *w, uint32_t a, const char *key)
{
	const wa_tape *t = w->t;
	uint32_t j;
	int k = 1;
	if (!a)
		return 1;
	if (wa_jtype(t, a) != WA_J_ARR)
		return wa_fail(w, "expected an array", ".value.%s", key);
	for (j = a + 1; j < wa_jclose(t, a); j = wa_jskip(t, j), k++)
		if (wa_jtype(t, j) != WA_J_OBJ)
			return wa_fail(w, "expected an object", ".value.%s[%d]", key, k);
	return 1;
}

/* Members of a change's value the walk reads. */
static const wa_name wa_value_names[] = {WA_N("metadata"), WA_N("messages"), WA_N("statuses"),
					 WA_N("errors"), WA_N("contacts")};
enum { V_METADATA, V_MESSAGES, V_STATUSES, V_ERRORS, V_CONTACTS, V_N };
static wa_nameset wa_ns_value = WA_SET(wa_value_names);

/* A `messages` change: fan out messages, statuses and errors. */
static int wa_messages_change(wa_walk *w, uint32_t value, uint32_t field, const uint32_t *v)
{
	const wa_tape *t = w->t;
	uint32_t msgs = v[V_MESSAGES], sts = v[V_STATUSES], errs = v[V_ERRORS], j;
	if (wa_type(t, value) != WA_J_OBJ) {
		/* Nothing to fan out, but nothing to drop either. */
		wa_change_event(w, value, field);
		return 1;
	}
	if (!wa_check_list(w, msgs, "messages") || !wa_check_list(w, sts, "statuses") ||
	    !wa_check_list(w, errs, "errors"))
		return 0;
	if (!msgs && !sts && !errs) {
		wa_change_event(w, value, field);
		return 1;
	}
	w->contacts = v[V_CONTACTS];
	w->ncontacts = -1;
	lua_pushnil(w->L);
	w->ctabs = lua_gettop(w->L);
#if WA_RECORDS
	if (w->build) {
		size_t need = (msgs ? wa_jcount(t, msgs) : 0) + (sts ? wa_jcount(t, sts) : 0);
		wa_parser *p = w->p;
		p->recs = (wa_rec *)wa_reserve(w->L, p->recs, &p->recs_cap, need, sizeof *p->recs);
		p->recm = (uint32_t *)wa_reserve(w->L, p->recm, &p->recm_cap, need * WA_RECM,
						 sizeof *p->recm);
		w->nrec = w->ncrec = 0;
	}
#endif
	if (msgs)
		for (j = msgs + 1; j < wa_jclose(t, msgs); j = wa_jskip(t, j))
			wa_message_event(w, j);
	if (sts)
		for (j = sts + 1; j < wa_jclose(t, sts); j = wa_jskip(t, j))
			wa_status_event(w, j);
#if WA_RECORDS
	if (w->build)
		wa_flush_records(w);
#endif
	if (errs)
		for (j = errs + 1; j < wa_jclose(t, errs); j = wa_jskip(t, j))
			wa_error_event(w, j);
	return 1;
}

/* Push a string node into a fresh stack slot and return the slot (0 if none). */
static int wa_slot(wa_walk *w, uint32_t i)
{
	if (wa_type(w->t, i) != WA_J_STR)
		return 0;
	lua_pushlstring(w->L, wa_jstr(w->t, i), wa_jlen(w->t, i));
	return lua_gettop(w->L);
}

static const wa_name wa_nm_walk_envelope_mnames[] = {WA_N("phone_number_id"), WA_N("display_phone_number")};
static wa_nameset wa_ns_walk_envelope_mnames = WA_SET(wa_nm_walk_envelope_mnames);

static const wa_name wa_nm_walk_envelope_cnames[] = {WA_N("field"), WA_N("value")};
static wa_nameset wa_ns_walk_envelope_cnames = WA_SET(wa_nm_walk_envelope_cnames);

static const wa_name wa_nm_walk_envelope_enames[] = {WA_N("id"), WA_N("time"), WA_N("changes")};
static wa_nameset wa_ns_walk_envelope_enames = WA_SET(wa_nm_walk_envelope_enames);

static int wa_walk_envelope(wa_walk *w)
{
	const wa_tape *t = w->t;
	lua_State *L = w->L;
	uint32_t obj, entry, e, c;
	int ei = 1;

	if (wa_jtype(t, WA_JROOT) != WA_J_OBJ)
		return wa_fail(w, "payload is not a JSON object", NULL);
	obj = wa_get(t, WA_JROOT, WA_KEY("object"));
	if (obj && !wa_streq(t, obj, WA_KEY("whatsapp_business_account")))
		return wa_fail(w, "not a WhatsApp Business Account webhook", "object");
	entry = wa_get(t, WA_JROOT, WA_KEY("entry"));
	if (wa_type(t, entry) != WA_J_ARR)
		return wa_fail(w, entry ? "expected an array" : "missing", "entry");

	for (e = entry + 1; e < wa_jclose(t, entry); e = wa_jskip(t, e), ei++) {
		uint32_t em[3], changes;
		int top = lua_gettop(L), ci = 1;
		w->ei = ei;
		w->ci = 0;
		if (wa_jtype(t, e) != WA_J_OBJ)
			return wa_fail(w, "expected an object", NULL);
		wa_scan(t, e, &wa_ns_walk_envelope_enames, em);
		w->s_waba = wa_slot(w, em[0]);
		w->has_time = wa_toint(t, em[1], &w->entry_time);
		changes = em[2];
		if (changes && wa_jtype(t, changes) != WA_J_ARR)
			return wa_fail(w, "expected an array", ".changes");
		if (changes) {
			for (c = changes + 1; c < wa_jclose(t, changes); c = wa_jskip(t, c), ci++) {
				uint32_t cm[2], vm[V_N], mm[2], field, value;
				int ctop = lua_gettop(L);
				w->ci = ci;
				if (wa_jtype(t, c) != WA_J_OBJ)
					return wa_fail(w, "expected an object", NULL);
				wa_scan(t, c, &wa_ns_walk_envelope_cnames, cm);
				field = cm[0];
				value = cm[1];
				if (wa_type(t, field) != WA_J_STR)
					return wa_fail(w, field ? "expected a string" : "missing", ".field");
				wa_scan(t, value, &wa_ns_value, vm);
				wa_scan(t, wa_obj(t, vm[V_METADATA]), &wa_ns_walk_envelope_mnames, mm);
				w->s_field = wa_slot(w, field);
				w->s_pnid = wa_slot(w, wa_str(t, mm[0]));
				w->s_dpn = wa_slot(w, wa_str(t, mm[1]));
				if (wa_streq(t, field, WA_KEY("messages"))) {
					if (!wa_messages_change(w, value, field, vm))
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

/* About how many events the payload makes (a size hint; never walks far). */
static int wa_count_events(const wa_tape *t)
{
	uint32_t entry = wa_get(t, WA_JROOT, WA_KEY("entry")), e, c;
	size_t n = 0;
	if (wa_type(t, entry) != WA_J_ARR)
		return 0;
	for (e = entry + 1; e < wa_jclose(t, entry); e = wa_jskip(t, e)) {
		uint32_t changes = e && wa_jtype(t, e) == WA_J_OBJ ? wa_get(t, e, WA_KEY("changes")) : 0;
		if (wa_type(t, changes) != WA_J_ARR)
			continue;
		for (c = changes + 1; c < wa_jclose(t, changes); c = wa_jskip(t, c)) {
			uint32_t v = wa_jtype(t, c) == WA_J_OBJ ? wa_geto(t, c, WA_KEY("value")) : 0;
			uint32_t m[V_N];
			size_t k = 0;
			int i;
			wa_scan(t, v, &wa_ns_value, m);
			for (i = V_MESSAGES; i <= V_ERRORS; i++)
				if (wa_type(t, m[i]) == WA_J_ARR)
					k += wa_jcount(t, m[i]);
			n += k ? k : 1;
		}
	}
	return n > 100000 ? 100000 : (int)n;
}

/* ---- the Lua side -------------------------------------------------------- */

/*
 * Push the table that maps each event of the batch to its position in it
 * (negated once its lazy fields are decoded).  Made on first use, from the
 * batch's own list of its events (which the caller's list may no longer
 * match), and kept as an upvalue of __index: so a parse that nobody reads
 * `raw` from costs no table keyed by event.
 */
static void wa_event_map(lua_State *L)
{
	size_t n;
	int i;
	lua_pushvalue(L, lua_upvalueindex(WA_UP_MAP));
	if (lua_istable(L, -1))
		return;
	lua_pop(L, 1);
	n = wa_rawlen(L, lua_upvalueindex(WA_UP_SRCS)) / sizeof(uint32_t); /* the event count */
	lua_createtable(L, 0, (int)n);
	for (i = 1; (size_t)i <= n; i++) {
		lua_rawgeti(L, lua_upvalueindex(WA_UP_LIST), i);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			break;
		}
		lua_pushinteger(L, i);
		lua_rawset(L, -3);
	}
	lua_pushvalue(L, -1);
	lua_replace(L, lua_upvalueindex(WA_UP_MAP));
}

/* Event 1's position in its batch (0 if it is not one), and whether it is done. */
static uint32_t wa_event_pos(lua_State *L, int *done)
{
	lua_Integer pos;
	wa_event_map(L);
	lua_pushvalue(L, 1);
	lua_rawget(L, -2);
	pos = lua_tointeger(L, -1);
	lua_pop(L, 2);
	*done = pos < 0;
	if (pos < -(lua_Integer)UINT32_MAX || pos > (lua_Integer)UINT32_MAX)
		return 0;
	return (uint32_t)(pos < 0 ? -pos : pos);
}

/*
 * The source node of event 1 (0 when it has none), its position in the batch
 * in *pos, and in *done whether its lazy fields are decoded.  The sources
 * are the walk's, in an upvalue that Lua code cannot reach: each is a real
 * container node of the batch's body.
 */
static uint32_t wa_event_src(lua_State *L, uint32_t *pos, int *done)
{
	size_t len;
	uint32_t node = 0;
	const char *srcs = lua_tolstring(L, lua_upvalueindex(WA_UP_SRCS), &len);
	*pos = wa_event_pos(L, done);
	if (srcs != NULL && *pos > 0 && *pos <= len / sizeof(uint32_t))
		memcpy(&node, srcs + (size_t)(*pos - 1) * sizeof(uint32_t), sizeof node);
	return node;
}

/* Mark event 1, at position pos, as having its lazy fields decoded. */
static void wa_event_done(lua_State *L, uint32_t pos)
{
	wa_event_map(L);
	lua_pushvalue(L, 1);
	lua_pushinteger(L, -(lua_Integer)pos);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

/*
 * The tape of the batch (upvalues of __index: the body, the parser and its
 * generation after that parse), marked busy.  When the parser has parsed
 * something else since, the body is parsed again (the same text gives the
 * same node indexes); when the parser is in use or gone, a temporary one is
 * pushed and used.  Returns NULL if the body no longer parses (it always
 * does: it did once).
 */
static wa_parser *wa_batch_tape(lua_State *L)
{
	size_t blen;
	const char *body = lua_tolstring(L, lua_upvalueindex(WA_UP_BODY), &blen);
	wa_parser *p;
	char err[200];
	if (body == NULL)
		return NULL;
	p = (wa_parser *)luaL_testudata(L, lua_upvalueindex(WA_UP_PARSER), WA_PARSER_MT);
	if (p != NULL && !p->busy && !p->closed) {
		lua_Integer gen = lua_tointeger(L, lua_upvalueindex(WA_UP_GEN));
		if (gen == p->gen && p->tape.n > 0) {
			p->busy = 1;
			return p;
		}
	} else {
		p = wa_push_parser(L); /* left on the stack until the caller returns */
	}
	p->gen++;
	if (!wa_tape_parse(&p->tape, body, blen, err, sizeof err))
		return NULL;
	lua_pushinteger(L, p->gen);
	lua_replace(L, lua_upvalueindex(WA_UP_GEN));
	p->busy = 1;
	return p;
}

/* The lazy generic copies of each event kind (doc/events.md). */
static const char *const wa_lazy_message[] = {"referral", "identity", NULL};
static const char *const wa_lazy_status[] = {"conversation", "pricing", NULL};
static const char *const wa_lazy_change[] = {"value", NULL};

/*
 * Decode event 1's lazy fields from its source node, and store them in the
 * event.  `whole`: the source itself is the (single) lazy field.
 */
static void wa_event_decode(lua_State *L, const char *const *names, int whole, uint32_t node,
			    uint32_t pos)
{
	wa_parser *p = wa_batch_tape(L);
	const wa_tape *t;
	if (p == NULL)
		return;
	t = &p->tape;
	if (node >= t->n) {
		wa_parser_release(p);
		return;
	}
	if (whole) {
		lua_pushstring(L, names[0]);
		wa_tape_push(L, t, node);
		lua_rawset(L, 1);
	} else {
		for (; *names != NULL; names++) {
			uint32_t v = wa_get(t, node, *names, strlen(*names));
			if (v && wa_jtype(t, v) != WA_J_NULL) {
				lua_pushstring(L, *names);
				wa_tape_push(L, t, v);
				lua_rawset(L, 1);
			}
		}
	}
	wa_parser_release(p);
	wa_event_done(L, pos);
}

/*
 * __index of every event of a batch: a closure per batch, whose upvalues
 * (WA_UP_*) hold what finding an event's source needs.  `raw` (the event's
 * whole source) and the lazy generic copies of the event's kind (all at
 * once) are decoded from the batch's tape on first access, then stored in
 * the event.  Any other missing key is nil.
 */
static int wa_event_index(lua_State *L)
{
	size_t klen;
	const char *k, *kind;
	const char *const *names = NULL;
	uint32_t node, pos;
	int done, i, whole = 0;
	if (lua_type(L, 2) != LUA_TSTRING || !lua_istable(L, 1))
		return 0;
	k = lua_tolstring(L, 2, &klen);
	if (klen < 3 || klen > 12)
		return 0;
	lua_settop(L, 2);
	if (klen == 3 && memcmp(k, "raw", 3) == 0) {
		wa_parser *p;
		if ((node = wa_event_src(L, &pos, &done)) == 0)
			return 0;
		p = wa_batch_tape(L);
		if (p == NULL)
			return 0;
		if (node >= p->tape.n) {
			wa_parser_release(p);
			return 0;
		}
		lua_pushliteral(L, "raw");
		wa_tape_push(L, &p->tape, node);
		wa_parser_release(p);
		lua_pushvalue(L, -1);
		lua_insert(L, -3);
		lua_rawset(L, 1);
		return 1;
	}
	lua_pushliteral(L, "kind");
	lua_rawget(L, 1);
	kind = lua_tostring(L, -1);
	if (kind == NULL)
		return 0;
	if (strcmp(kind, "message") == 0)
		names = wa_lazy_message;
	else if (strcmp(kind, "status") == 0)
		names = wa_lazy_status;
	else if (strcmp(kind, "change") == 0)
		names = wa_lazy_change, whole = 1;
	else
		return 0;
	for (i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == klen && memcmp(names[i], k, klen) == 0)
			break;
	if (names[i] == NULL)
		return 0;
	if ((node = wa_event_src(L, &pos, &done)) == 0 || done)
		return 0;
	wa_event_decode(L, names, whole, node, pos);
	lua_settop(L, 2);
	lua_rawget(L, 1);
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
	wa_push_parser(L);
	return 1;
}

#if WA_RECORDS
/*
 * Whether the JIT compiler is on (jit.status()), asked at every 64th parse of
 * p: with it off, the builder's FFI accesses are interpreted, and events made
 * through the API take half the time.
 */
static int wa_jit_on(lua_State *L, wa_parser *p, int consts)
{
	if (p->jit_ticks++ % 64 == 0) {
		lua_rawgeti(L, consts, WA_CONST_JITSTATUS);
		lua_call(L, 0, 1);
		p->jit_off = !lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	return !p->jit_off;
}
#endif

/*
 * The protected part of parser:parse: wa_parser_parse calls it with
 * (parser, body, nil, error_mt or nil, constants) and clears the parser's
 * busy mark whatever happens, so that an error raised in the walk (memory,
 * or a debug hook in the LuaJIT build's builder) cannot leave the
 * buffers marked in use for good.  Kept in the constants table.
 */
static int wa_parser_walk(lua_State *L)
{
	wa_parser *p = (wa_parser *)lua_touserdata(L, 1);
	size_t len;
	const char *body = lua_tolstring(L, 2, &len);
	wa_walk w;
	int ok, n;

	memset(&w, 0, sizeof w);
	p->gen++;
	if (!wa_tape_parse(&p->tape, body, len, w.err, sizeof w.err)) {
		lua_pushnil(L);
		lua_pushstring(L, w.err);
		lua_pushliteral(L, "");
		return 3;
	}
	luaL_checkstack(L, 40, "webhook parse");
	w.L = L;
	w.t = &p->tape;
	w.p = p;
	w.consts = 5;
#if WA_RECORDS
	lua_rawgeti(L, w.consts, WA_CONST_BUILD);
	if (!lua_isnil(L, -1) && wa_jit_on(L, p, w.consts))
		w.build = lua_gettop(L);
#endif
	n = wa_count_events(&p->tape);
	/* The batch's shared metatable: its __index comes after the walk. */
	lua_createtable(L, n, 1);
	w.mt = lua_gettop(L);
	lua_createtable(L, n, 0);
	w.events = lua_gettop(L);
	ok = wa_walk_envelope(&w);
	lua_settop(L, w.events);
	if (!ok) {
		lua_pushnil(L);
		lua_pushstring(L, w.err);
		lua_pushstring(L, w.path);
		return 3;
	}
	lua_pushliteral(L, "__index");
	lua_pushvalue(L, 2);
	lua_pushlstring(L, (const char *)p->srcs, (size_t)w.nevents * sizeof(uint32_t));
	lua_pushvalue(L, 1);
	lua_pushinteger(L, p->gen);
	lua_pushvalue(L, w.mt);
	lua_pushnil(L);
	lua_pushcclosure(L, wa_event_index, WA_UP_N);
	lua_rawset(L, w.mt);
	return 1;
}

/*
 * parser:parse(body [, error_mt]) -> events | nil, message, path.
 * error_mt becomes the metatable of every error table.  Raises on a
 * non-string body or wrong argument types; never raises for bad JSON.
 * Upvalue 1: the constants table.
 */
static int wa_parser_parse(lua_State *L)
{
	wa_parser *p = wa_parser_check(L, 1);
	int status;

	luaL_checkstring(L, 2);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	/* The walk finds error_mt at index 4. */
	lua_settop(L, 3);
	lua_pushnil(L);
	lua_insert(L, 3);
	/*
	 * The tape is in use further up the C stack (a finalizer run by the
	 * collector called us during a parse or a lazy decode): parse with
	 * buffers of our own.
	 */
	if (p->busy) {
		p = wa_push_parser(L);
		lua_replace(L, 1);
	}
	p->busy = 1;
	lua_rawgeti(L, lua_upvalueindex(1), WA_CONST_WALKFN);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushnil(L);
	lua_pushvalue(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	status = lua_pcall(L, 5, LUA_MULTRET, 0);
	wa_parser_release(p); /* p is still referenced at index 1 */
	/* A huge body should not pin its buffers for the life of the hook. */
	if (wa_parser_bytes(p) > WA_KEEP_BYTES)
		wa_parser_free(p);
	if (status != 0)
		return lua_error(L);
	return lua_gettop(L) - 4;
}

/* __gc: free the buffers (a parser being collected is in use nowhere). */
static int wa_parser__gc(lua_State *L)
{
	wa_parser *p = (wa_parser *)luaL_checkudata(L, 1, WA_PARSER_MT);
	p->closed = 1;
	wa_parser_free(p);
	return 0;
}

/*
 * close and __close: free the buffers, or once they are no longer in use
 * (wa_parser_release), or at the latest when collected; safe twice.
 */
static int wa_parser_close(lua_State *L)
{
	wa_parser *p = (wa_parser *)luaL_checkudata(L, 1, WA_PARSER_MT);
	p->closed = 1;
	if (!p->busy)
		wa_parser_free(p);
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
	p = wa_push_parser(L);
	if (!wa_tape_parse(&p->tape, text, len, err, sizeof err)) {
		wa_tape_free(&p->tape);
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	wa_tape_push(L, &p->tape, WA_JROOT);
	wa_tape_free(&p->tape);
	return 1;
}

static const luaL_Reg wa_parser_methods[] = {
	{"parse", wa_parser_parse},
	{"close", wa_parser_close},
	{NULL, NULL}};

/*
 * core._tape_direct([use]) -> boolean: whether parses read simdjson's own
 * tape (jtape.h) rather than write one from its DOM API.  For the specs: they
 * expect true with the simdjson they are built against, and pass false to
 * check that the written tape gives the same events.  Process-wide.
 */
static int wa_webhook_tape_direct(lua_State *L)
{
	int set = lua_isnoneornil(L, 1) ? -1 : lua_toboolean(L, 1);
	lua_pushboolean(L, wa_tape_direct(set));
	return 1;
}

/*
 * core._records([use]) -> boolean: whether parses make message and status
 * events from records (see WA_RECORDS).  use = false makes them through the
 * API instead, use = true goes back to records where there is a builder.  For
 * the specs, which compare the two ways.  For this Lua state; upvalue 1: the
 * constants table, where a builder set aside waits in slot WA_CONST_N + 1.
 */
static int wa_webhook_records(lua_State *L)
{
#if WA_RECORDS
	int from = WA_CONST_N + 1, to = WA_CONST_BUILD;
	if (!lua_isnoneornil(L, 1)) {
		if (!lua_toboolean(L, 1)) {
			from = WA_CONST_BUILD;
			to = WA_CONST_N + 1;
		}
		lua_rawgeti(L, lua_upvalueindex(1), from);
		if (!lua_isnil(L, -1)) {
			lua_rawseti(L, lua_upvalueindex(1), to);
			lua_pushnil(L);
			lua_rawseti(L, lua_upvalueindex(1), from);
		}
	}
	lua_rawgeti(L, lua_upvalueindex(1), WA_CONST_BUILD);
	lua_pushboolean(L, !lua_isnil(L, -1));
#else
	lua_pushboolean(L, 0);
#endif
	return 1;
}

static const luaL_Reg wa_webhook_funcs[] = {
	{"parser", wa_webhook_parser},
	{"_tape_direct", wa_webhook_tape_direct},
	{"json_decode", wa_webhook_json_decode},
	{NULL, NULL}};

/* Every name set of the walk, indexed once per process. */
static wa_nameset *const wa_all_sets[] = {
	&wa_ns_push_error,
	&wa_ns_index_contacts,
	&wa_ns_set_contact_pnames,
	&wa_ns_set_context,
	&wa_ns_set_context_rnames,
	&wa_ns_set_media,
	&wa_ns_set_flow,
	&wa_ns_message_interactive,
	&wa_ns_message_interactive_rnames,
	&wa_ns_message_body,
	&wa_ns_msg,
	&wa_ns_status_event,
	&wa_ns_status,
	&wa_ns_value,
	&wa_ns_walk_envelope_enames,
	&wa_ns_walk_envelope_cnames,
	&wa_ns_walk_envelope_mnames,
};

static pthread_once_t wa_sets_once = PTHREAD_ONCE_INIT;

static int wa_sets_ok;

static void wa_sets_init(void)
{
	size_t i;
	wa_sets_ok = 1;
	for (i = 0; i < sizeof wa_all_sets / sizeof wa_all_sets[0]; i++)
		if (!wa_set_index(wa_all_sets[i]))
			wa_sets_ok = 0;
}

void wa_webhook_open(lua_State *L)
{
	pthread_once(&wa_sets_once, wa_sets_init);
	if (!wa_sets_ok)
		luaL_error(L, "whatsapp.core: a member name set of the webhook walk is over its limits");
	if (luaL_newmetatable(L, WA_PARSER_MT)) {
		int i;
		lua_newtable(L);
		/* the constants table, shared by the methods as upvalue 1 */
		lua_createtable(L, WA_CONST_N, 0);
		/* the walk, with the strings as its upvalues (wa_pushk) */
		luaL_checkstack(L, K__COUNT, "whatsapp.core");
		for (i = 0; i < K__COUNT; i++)
			lua_pushstring(L, wa_strings[i]);
		lua_pushcclosure(L, wa_parser_walk, K__COUNT);
		lua_rawseti(L, -2, WA_CONST_WALKFN);
#if WA_RECORDS
		/* the builder, when the FFI is there and agrees on the records' layout */
		if (luaL_loadbuffer(L, wa_build_chunk, sizeof wa_build_chunk - 1, "=whatsapp.core(build)"))
			lua_error(L);
		lua_call(L, 0, 5);
		if (lua_tointeger(L, -3) == (lua_Integer)sizeof(wa_rec) &&
		    lua_tointeger(L, -2) == (lua_Integer)sizeof(wa_crec) && lua_isfunction(L, -1) &&
		    lua_topointer(L, -4) != NULL &&
		    ((const wa_ctl *)lua_topointer(L, -4))->magic == WA_CTL_MAGIC) {
			lua_rawseti(L, -6, WA_CONST_JITSTATUS);
			lua_pop(L, 2);
			lua_rawseti(L, -3, WA_CONST_CTL);
			lua_rawseti(L, -2, WA_CONST_BUILD);
		} else {
			lua_pop(L, 5);
		}
#endif
		wa_setfuncs(L, wa_parser_methods, 1);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, wa_parser__gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, wa_parser_close);
		lua_setfield(L, -2, "__close");
		lua_pushliteral(L, "whatsapp.webhook.Parser");
		lua_setfield(L, -2, "__name");
	}
	/* _records gets the constants table: upvalue 1 of parse */
	lua_getfield(L, -1, "__index");
	lua_getfield(L, -1, "parse");
	lua_getupvalue(L, -1, 1);
	lua_pushcclosure(L, wa_webhook_records, 1);
	lua_setfield(L, -5, "_records");
	lua_pop(L, 3);
	wa_setfuncs(L, wa_webhook_funcs, 0);
	/* whatsapp.null: what JSON null becomes inside generic sub-tables. */
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
}
