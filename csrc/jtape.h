/*
 * jtape.h - a parsed JSON document, read in place from simdjson's tape.
 *
 * simdjson (Debian's libsimdjson) does all of the parsing: the grammar, UTF-8
 * validation, string unescaping (surrogate pairs included; a lone surrogate
 * escape is an error) and numbers.  Its DOM is one array of 64-bit words in
 * document order (doc/tape.md in simdjson's sources), which the C walk in
 * webhook.c reads directly with the accessors below, so that looking up
 * members and skipping subtrees builds nothing.  This header has no Lua in
 * it: the C++ side includes it.
 *
 * A node is a word index.  A word holds its type letter in the top byte and
 * a payload below it:
 *   '{' '['  a container: bits 0-31 the index just past its closing word,
 *            bits 32-55 the number of members or items (saturated at 2^24-1);
 *            an object's children are key, value, key, value, ...
 *   '"'      a string: the offset in the string buffer of a 32-bit length,
 *            followed by the bytes (unescaped) and a NUL
 *   'l' 'u' 'd'  a signed, unsigned (above INT64_MAX) or double number, whose
 *            value is the next word
 *   't' 'f' 'n'  true, false, null
 * Word 0 is the root word; the document's value is node WA_JROOT.  So 0 is
 * never a value, and the walk uses it for "absent".  The numbering depends
 * only on the text, so the same text always gives the same node indexes (the
 * lazy fields of events rely on that: they remember a node index).
 *
 * When simdjson's tape is not in this format (json_tape.cpp checks once per
 * process, against its documented DOM API), the parse writes the same format
 * itself from that API, into buffers of the tape.
 */
#ifndef WA_JTAPE_H
#define WA_JTAPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Node types: simdjson's letters. */
enum {
	WA_J_NULL = 'n',
	WA_J_FALSE = 'f',
	WA_J_TRUE = 't',
	WA_J_STR = '"',
	WA_J_OBJ = '{',
	WA_J_ARR = '[',
	WA_J_INT = 'l',	 /* int64 */
	WA_J_UINT = 'u', /* uint64 above INT64_MAX */
	WA_J_DBL = 'd'
};

/* The document's value. */
#define WA_JROOT 1u
/* Deepest nesting accepted; Meta's payloads stay below 10. */
#define WA_JSON_MAX_DEPTH 64
/* The payload bits of a word, and a saturated count. */
#define WA_JPAYLOAD 0x00FFFFFFFFFFFFFFull
#define WA_JCOUNT_MAX 0xFFFFFFu

typedef struct {
	const uint64_t *w;	 /* the words: simdjson's, or own_w */
	const unsigned char *s; /* the string buffer: simdjson's, or own_s */
	uint32_t n;		 /* words in use, 0 when nothing is parsed */
	void *impl;		 /* the simdjson parser, kept between parses */
	/* the tape written here when simdjson's is not read directly */
	uint64_t *own_w;
	unsigned char *own_s;
	size_t own_wcap, own_scap;
} wa_tape;

#if defined(__GNUC__)
#define WA_JT_HIDDEN __attribute__((visibility("hidden")))
#else
#define WA_JT_HIDDEN
#endif

/*
 * Parse text into t, reusing its buffers.  Returns 1 on success; on failure
 * 0, with a one-line message (at most errlen bytes, NUL-terminated) in err.
 * The tape lives in t until the next parse or wa_tape_free.  Never throws
 * and never calls into Lua.
 */
WA_JT_HIDDEN int wa_tape_parse(wa_tape *t, const char *text, size_t len, char *err, size_t errlen);

/* Bytes the tape keeps allocated between parses. */
WA_JT_HIDDEN size_t wa_tape_bytes(const wa_tape *t);

/* Release a tape's buffers and parser; safe on a zeroed tape and twice. */
WA_JT_HIDDEN void wa_tape_free(wa_tape *t);

/*
 * Whether parses hand out simdjson's own tape (1) or write one (0).  set < 0
 * only asks; 0 makes every later parse write its tape (for the specs, which
 * compare the two ways); 1 goes back to reading simdjson's when it can (the
 * once-per-process check is not made again).
 */
WA_JT_HIDDEN int wa_tape_direct(int set);

/* Members or items of container i, when its count saturated (counted). */
WA_JT_HIDDEN uint32_t wa_jcount_slow(const wa_tape *t, uint32_t i);

static inline int wa_jtype(const wa_tape *t, uint32_t i)
{
	return (int)(t->w[i] >> 56);
}

static inline int wa_jisnum(int type)
{
	return type == WA_J_INT || type == WA_J_UINT || type == WA_J_DBL;
}

/* Container i: the index of its closing word (its children come before). */
static inline uint32_t wa_jclose(const wa_tape *t, uint32_t i)
{
	return (uint32_t)t->w[i] - 1;
}

/* Index just past node i's subtree. */
static inline uint32_t wa_jskip(const wa_tape *t, uint32_t i)
{
	uint64_t x = t->w[i];
	switch ((int)(x >> 56)) {
	case WA_J_OBJ:
	case WA_J_ARR:
		return (uint32_t)x;
	case WA_J_INT:
	case WA_J_UINT:
	case WA_J_DBL:
		return i + 2;
	default:
		return i + 1;
	}
}

/* Container i: its members (an object) or items (an array). */
static inline uint32_t wa_jcount(const wa_tape *t, uint32_t i)
{
	uint32_t c = (uint32_t)(t->w[i] >> 32) & WA_JCOUNT_MAX;
	return c == WA_JCOUNT_MAX ? wa_jcount_slow(t, i) : c;
}

/* String i: its bytes (NUL-terminated, but may hold NULs) and length. */
static inline const char *wa_jstr(const wa_tape *t, uint32_t i)
{
	return (const char *)t->s + (t->w[i] & WA_JPAYLOAD) + 4;
}

static inline uint32_t wa_jlen(const wa_tape *t, uint32_t i)
{
	uint32_t n;
	memcpy(&n, t->s + (t->w[i] & WA_JPAYLOAD), sizeof n);
	return n;
}

/* Number i's value, by its type. */
static inline int64_t wa_jint(const wa_tape *t, uint32_t i)
{
	int64_t v;
	memcpy(&v, &t->w[i + 1], sizeof v);
	return v;
}

static inline uint64_t wa_juint(const wa_tape *t, uint32_t i)
{
	return t->w[i + 1];
}

static inline double wa_jdbl(const wa_tape *t, uint32_t i)
{
	double v;
	memcpy(&v, &t->w[i + 1], sizeof v);
	return v;
}

#ifdef __cplusplus
}
#endif

#endif /* WA_JTAPE_H */
