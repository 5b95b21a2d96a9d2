/*
 * json.h - a flat "tape" of a JSON document, filled by yajl's SAX parser.
 *
 * yajl (Debian's libyajl) does the lexing, validation of the grammar and
 * string unescaping (the input's UTF-8 is checked in one pass before, by
 * json.c, more strictly than yajl does); we record what it reports, in document order, so
 * that C code can walk the tree without building Lua tables for the parts it
 * does not need.  Strings that yajl hands us as pointers into the input are
 * not copied; unescaped ones are copied into an arena.
 *
 * Layout: one node per value; an object's children are key, value, key,
 * value, ...; a container's `next` is the index just past its subtree, so a
 * sibling is one step away.  Containers also keep their byte span in the
 * input, which lets `raw` be decoded lazily from exactly those bytes.
 */
#ifndef WA_JSON_H
#define WA_JSON_H

#include "compat.h"
#include <stddef.h>
#include <stdint.h>

enum { WA_J_NULL, WA_J_FALSE, WA_J_TRUE, WA_J_NUM, WA_J_STR, WA_J_OBJ, WA_J_ARR };

/* Deepest nesting accepted; Meta's payloads stay below 10. */
#define WA_JSON_MAX_DEPTH 64

typedef struct {
	unsigned char type;
	uint32_t len; /* bytes of a string/number; children of an array; members of an object */
	union {
		struct {
			uint32_t next;	/* containers: index past the subtree */
			uint32_t start; /* containers: byte offset of '{' or '[' */
			uint32_t end;	/* containers: byte offset past '}' or ']' */
		} c;
		const char *p; /* strings and numbers: the text (input or arena) */
	} u;
} wa_jnode;

typedef struct {
	wa_jnode *nodes;
	size_t n, cap;
	char *arena;
	size_t alen, acap;
	/* parse state */
	uint32_t stack[WA_JSON_MAX_DEPTH];
	int depth;
	int too_deep;
	int nomem;
	int values; /* top-level values seen (exactly one is allowed) */
	const char *input;
	size_t input_len;
	void *handle; /* the yajl handle, kept between parses */
} wa_tape;

/* Release a tape's buffers and yajl handle; safe on a zeroed tape and twice. */
WA_HIDDEN void wa_tape_free(wa_tape *t);

/*
 * Parse text into t (reusing its buffers and yajl handle).  Returns 1 on
 * success; on failure 0, with a message (at most errlen bytes, NUL-terminated)
 * in err.  The tape's strings point into text or into the tape's arena, so
 * they stay valid until the next parse or wa_tape_free.
 */
WA_HIDDEN int wa_tape_parse(wa_tape *t, const char *text, size_t len, char *err, size_t errlen);

/* Index just past node i's subtree. */
static inline uint32_t wa_jskip(const wa_tape *t, uint32_t i)
{
	const wa_jnode *nd = &t->nodes[i];
	return (nd->type == WA_J_OBJ || nd->type == WA_J_ARR) ? nd->u.c.next : i + 1;
}

/* Push node i and its subtree as plain Lua values (null -> light userdata NULL). */
WA_HIDDEN void wa_tape_push(lua_State *L, const wa_tape *t, uint32_t i);

/* Push a JSON number's text as a Lua number (an integer when it is one). */
WA_HIDDEN void wa_push_jnumber(lua_State *L, const char *p, size_t len);

#endif /* WA_JSON_H */
