/*
 * jtape.h - a flat "tape" of a JSON document, filled from simdjson's DOM.
 *
 * simdjson (Debian's libsimdjson) does all of the parsing: the grammar, UTF-8
 * validation, string unescaping (surrogate pairs included; a lone surrogate
 * escape is an error) and numbers.  json_tape.cpp copies what it found into
 * this tape, in document order, so that the C walk in webhook.c can look
 * members up and skip subtrees without building Lua tables for the parts it
 * does not need.  This header has no Lua in it: the C++ side includes it.
 *
 * Layout: one node per value; an object's children are key, value, key,
 * value, ...; a container's `next` is the index just past its subtree, so a
 * sibling is one step away.  The numbering depends only on the text, so the
 * same text always gives the same node indexes (the lazy fields of events
 * rely on that: they remember a node index, not a pointer).
 */
#ifndef WA_JTAPE_H
#define WA_JTAPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { WA_J_NULL, WA_J_FALSE, WA_J_TRUE, WA_J_NUM, WA_J_STR, WA_J_OBJ, WA_J_ARR };
/* What a WA_J_NUM node holds. */
enum { WA_JN_INT, WA_JN_UINT, WA_JN_DBL };

/* Deepest nesting accepted; Meta's payloads stay below 10. */
#define WA_JSON_MAX_DEPTH 64

typedef struct {
	unsigned char type; /* WA_J_* */
	unsigned char num;  /* numbers: WA_JN_* */
	uint32_t len;	    /* bytes of a string; children of an array; members of an object */
	union {
		uint32_t next; /* containers: index past the subtree */
		const char *p; /* strings: the unescaped text (not NUL-terminated) */
		int64_t i;     /* WA_JN_INT */
		uint64_t u;    /* WA_JN_UINT: above INT64_MAX */
		double d;      /* WA_JN_DBL */
	} u;
} wa_jnode;

typedef struct {
	wa_jnode *nodes;
	size_t n, cap;
	void *impl; /* the simdjson parser, kept between parses; owns the strings */
} wa_tape;

#if defined(__GNUC__)
#define WA_JT_HIDDEN __attribute__((visibility("hidden")))
#else
#define WA_JT_HIDDEN
#endif

/*
 * Parse text into t, reusing its buffers.  Returns 1 on success; on failure
 * 0, with a one-line message (at most errlen bytes, NUL-terminated) in err.
 * The tape's strings live in t until the next parse or wa_tape_free.
 * Never throws and never calls into Lua.
 */
WA_JT_HIDDEN int wa_tape_parse(wa_tape *t, const char *text, size_t len, char *err, size_t errlen);

/* Bytes the tape keeps allocated between parses (nodes and parser). */
WA_JT_HIDDEN size_t wa_tape_bytes(const wa_tape *t);

/* Release a tape's buffers and parser; safe on a zeroed tape and twice. */
WA_JT_HIDDEN void wa_tape_free(wa_tape *t);

/* Index just past node i's subtree. */
static inline uint32_t wa_jskip(const wa_tape *t, uint32_t i)
{
	const wa_jnode *nd = &t->nodes[i];
	return (nd->type == WA_J_OBJ || nd->type == WA_J_ARR) ? nd->u.next : i + 1;
}

#ifdef __cplusplus
}
#endif

#endif /* WA_JTAPE_H */
