/*
 * json_tape.cpp - parse JSON with simdjson and copy its DOM into a wa_tape.
 *
 * This is the only C++ in the core, kept to the one thing C cannot do: call
 * simdjson (Debian's libsimdjson), which parses and validates a webhook body
 * several times faster than a byte-at-a-time parser.  The interface is the C
 * one of jtape.h; nothing here throws across it or calls into Lua.
 *
 * simdjson needs a few bytes of readable padding after its input, which a Lua
 * string does not promise, so the parser copies the text into a padded buffer
 * of its own (parse's realloc_if_needed); the strings the tape points to are
 * unescaped copies in the parser's string buffer, valid until its next parse.
 */
#include "jtape.h"

#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

struct walker {
	wa_tape *t;

	/* Index of a new node of the given type, or UINT32_MAX when out of memory. */
	uint32_t add(unsigned char type)
	{
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 256;
			void *nn = cap > UINT32_MAX ? nullptr : std::realloc(t->nodes, cap * sizeof(wa_jnode));
			if (nn == nullptr)
				return UINT32_MAX;
			t->nodes = static_cast<wa_jnode *>(nn);
			t->cap = cap;
		}
		wa_jnode *nd = &t->nodes[t->n];
		nd->type = type;
		nd->num = 0;
		nd->len = 0;
		return static_cast<uint32_t>(t->n++);
	}

	bool str(std::string_view s)
	{
		uint32_t i = add(WA_J_STR);
		if (i == UINT32_MAX)
			return false;
		/* The parse refuses texts of 4 GiB and more, so a string fits. */
		t->nodes[i].len = static_cast<uint32_t>(s.size());
		t->nodes[i].u.p = s.data();
		return true;
	}

	/* Copy e and its subtree; depth is bounded by the parser's max_depth. */
	bool value(element e)
	{
		uint32_t i;
		switch (e.type()) {
		case element_type::OBJECT: {
			uint32_t members = 0;
			simdjson::dom::object obj;
			if (e.get(obj) || (i = add(WA_J_OBJ)) == UINT32_MAX)
				return false;
			for (simdjson::dom::key_value_pair kv : obj) {
				if (!str(kv.key) || !value(kv.value))
					return false;
				members++;
			}
			t->nodes[i].len = members;
			t->nodes[i].u.next = static_cast<uint32_t>(t->n);
			return true;
		}
		case element_type::ARRAY: {
			uint32_t items = 0;
			simdjson::dom::array arr;
			if (e.get(arr) || (i = add(WA_J_ARR)) == UINT32_MAX)
				return false;
			for (element item : arr) {
				if (!value(item))
					return false;
				items++;
			}
			t->nodes[i].len = items;
			t->nodes[i].u.next = static_cast<uint32_t>(t->n);
			return true;
		}
		case element_type::STRING:
			return str(e.get_string().value_unsafe());
		case element_type::INT64:
			if ((i = add(WA_J_NUM)) == UINT32_MAX)
				return false;
			t->nodes[i].num = WA_JN_INT;
			t->nodes[i].u.i = e.get_int64().value_unsafe();
			return true;
		case element_type::UINT64:
			if ((i = add(WA_J_NUM)) == UINT32_MAX)
				return false;
			t->nodes[i].num = WA_JN_UINT;
			t->nodes[i].u.u = e.get_uint64().value_unsafe();
			return true;
		case element_type::DOUBLE:
			if ((i = add(WA_J_NUM)) == UINT32_MAX)
				return false;
			t->nodes[i].num = WA_JN_DBL;
			t->nodes[i].u.d = e.get_double().value_unsafe();
			return true;
		case element_type::BOOL:
			return add(e.get_bool().value_unsafe() ? WA_J_TRUE : WA_J_FALSE) != UINT32_MAX;
		case element_type::NULL_VALUE:
			return add(WA_J_NULL) != UINT32_MAX;
		}
		return add(WA_J_NULL) != UINT32_MAX;
	}

	/*
	 * The same copy, read straight from the document's tape: simdjson's DOM
	 * is one array of 64-bit words (doc/tape.md in simdjson's sources: the
	 * type letter in the top byte; containers carry the index past their end
	 * and their count; strings an offset into the string buffer, where a
	 * 32-bit length precedes the bytes; numbers take a second word).  About
	 * four times faster than going through dom::element; tape_format_ok()
	 * checks once per process that both give the same tape.  Returns false
	 * on memory exhaustion or anything unexpected.
	 */
	bool tape(const simdjson::dom::document &doc)
	{
		const uint64_t *tp = doc.tape.get();
		const uint8_t *sb = doc.string_buf.get();
		uint32_t stack[WA_JSON_MAX_DEPTH + 2];
		int depth = 0;
		if (tp == nullptr || sb == nullptr || (tp[0] >> 56) != 'r')
			return false;
		/* The first word holds the index past the closing root word. */
		size_t end = static_cast<size_t>(tp[0] & simdjson::internal::JSON_VALUE_MASK) - 1;
		if (end < 2 || end > UINT32_MAX || (tp[end] >> 56) != 'r')
			return false;
		/* A value takes at least one word, so end - 1 nodes are enough. */
		if (t->cap < end) {
			void *nn = std::realloc(t->nodes, end * sizeof(wa_jnode));
			if (nn == nullptr)
				return false;
			t->nodes = static_cast<wa_jnode *>(nn);
			t->cap = end;
		}
		wa_jnode *nodes = t->nodes;
		uint32_t n = 0;
		for (size_t i = 1; i < end; i++) {
			uint64_t word = tp[i];
			wa_jnode *nd = &nodes[n];
			nd->num = 0;
			switch (static_cast<unsigned char>(word >> 56)) {
			case '{':
			case '[': {
				uint32_t count = static_cast<uint32_t>(word >> 32) & simdjson::internal::JSON_COUNT_MASK;
				if (depth == WA_JSON_MAX_DEPTH + 2 || count == simdjson::internal::JSON_COUNT_MASK)
					return false; /* a saturated count: the DOM path counts */
				nd->type = (word >> 56) == '{' ? WA_J_OBJ : WA_J_ARR;
				nd->len = count;
				stack[depth++] = n++;
				break;
			}
			case '}':
			case ']':
				if (depth == 0)
					return false;
				nodes[stack[--depth]].u.next = n;
				break;
			case '"': {
				const uint8_t *at = sb + (word & simdjson::internal::JSON_VALUE_MASK);
				uint32_t len;
				std::memcpy(&len, at, sizeof len);
				nd->type = WA_J_STR;
				nd->len = len;
				nd->u.p = reinterpret_cast<const char *>(at + sizeof len);
				n++;
				break;
			}
			case 'l':
				nd->type = WA_J_NUM;
				nd->len = 0;
				nd->num = WA_JN_INT;
				std::memcpy(&nd->u.i, &tp[++i], sizeof(int64_t));
				n++;
				break;
			case 'u':
				nd->type = WA_J_NUM;
				nd->len = 0;
				nd->num = WA_JN_UINT;
				std::memcpy(&nd->u.u, &tp[++i], sizeof(uint64_t));
				n++;
				break;
			case 'd':
				nd->type = WA_J_NUM;
				nd->len = 0;
				nd->num = WA_JN_DBL;
				std::memcpy(&nd->u.d, &tp[++i], sizeof(double));
				n++;
				break;
			case 't':
				nd->type = WA_J_TRUE;
				nd->len = 0;
				n++;
				break;
			case 'f':
				nd->type = WA_J_FALSE;
				nd->len = 0;
				n++;
				break;
			case 'n':
				nd->type = WA_J_NULL;
				nd->len = 0;
				n++;
				break;
			default:
				return false;
			}
		}
		t->n = n;
		return depth == 0 && n > 0;
	}
};

/* Two tapes with the same nodes (strings compared by content). */
bool same_tape(const wa_tape &a, const wa_tape &b)
{
	if (a.n != b.n)
		return false;
	for (size_t i = 0; i < a.n; i++) {
		const wa_jnode &x = a.nodes[i], &y = b.nodes[i];
		if (x.type != y.type || x.len != y.len || x.num != y.num)
			return false;
		switch (x.type) {
		case WA_J_OBJ:
		case WA_J_ARR:
			if (x.u.next != y.u.next)
				return false;
			break;
		case WA_J_STR:
			if (std::memcmp(x.u.p, y.u.p, x.len) != 0)
				return false;
			break;
		case WA_J_NUM:
			if (std::memcmp(&x.u, &y.u, sizeof x.u) != 0)
				return false;
			break;
		default:
			break;
		}
	}
	return true;
}

/*
 * Whether walker::tape reads this simdjson's tape right: 1 yes, 0 no, -1 not
 * known yet.  Decided on first use by copying a document with every kind of
 * value both ways.  (A race between threads only computes it twice.)
 */
int tape_format = -1;

bool tape_format_ok()
{
	static const char sample[] =
	    "{\"a\":[1,-2,18446744073709551615,2.5,true,false,null,\"x\\u00e9y\"],"
	    "\"b\":{},\"c\":[],\"d\":{\"e\":[{\"f\":\"\"}]},\"g\":\"h\"}";
	if (tape_format >= 0)
		return tape_format == 1;
	simdjson::dom::parser p;
	element root;
	wa_tape viadom{}, viatape{};
	bool ok = false;
	if (!p.parse(sample, sizeof sample - 1).get(root)) {
		walker a{&viadom}, b{&viatape};
		ok = a.value(root) && b.tape(p.doc) && same_tape(viadom, viatape);
	}
	std::free(viadom.nodes);
	std::free(viatape.nodes);
	tape_format = ok ? 1 : 0;
	return ok;
}

void fail(char *err, size_t errlen, simdjson::error_code code)
{
	switch (code) {
	case simdjson::DEPTH_ERROR:
		std::snprintf(err, errlen, "JSON nested deeper than %d levels", WA_JSON_MAX_DEPTH);
		break;
	case simdjson::UTF8_ERROR:
		std::snprintf(err, errlen, "invalid JSON: ill-formed UTF-8");
		break;
	case simdjson::EMPTY:
		std::snprintf(err, errlen, "empty JSON document");
		break;
	case simdjson::MEMALLOC:
		std::snprintf(err, errlen, "out of memory while parsing JSON");
		break;
	case simdjson::CAPACITY:
		std::snprintf(err, errlen, "body too large to parse");
		break;
	default: {
		/* simdjson's messages are single English sentences. */
		const char *m = simdjson::error_message(code);
		std::snprintf(err, errlen, "invalid JSON: %s", m ? m : "parse error");
	}
	}
}

} // namespace

extern "C" int wa_tape_parse(wa_tape *t, const char *text, size_t len, char *err, size_t errlen)
{
	try {
		auto *p = static_cast<simdjson::dom::parser *>(t->impl);
		if (len >= UINT32_MAX) {
			std::snprintf(err, errlen, "body too large to parse");
			return 0;
		}
		if (p == nullptr) {
			p = new (std::nothrow) simdjson::dom::parser();
			if (p == nullptr || p->allocate(len > 4096 ? len : 4096, WA_JSON_MAX_DEPTH)) {
				delete p;
				fail(err, errlen, simdjson::MEMALLOC);
				return 0;
			}
			t->impl = p;
		}
		t->n = 0;
		element root;
		simdjson::error_code code = p->parse(text, len, true).get(root);
		if (code) {
			fail(err, errlen, code);
			return 0;
		}
		walker w{t};
		/* The tape read leaves t->n at 0 when it gives up; the DOM path then starts afresh. */
		bool copied = tape_format_ok() && w.tape(p->doc);
		if (!copied && !w.value(root)) {
			t->n = 0;
			fail(err, errlen, simdjson::MEMALLOC);
			return 0;
		}
		return 1;
	} catch (...) {
		/* Nothing above is meant to throw; never let it cross into C. */
		t->n = 0;
		fail(err, errlen, simdjson::MEMALLOC);
		return 0;
	}
}

extern "C" size_t wa_tape_bytes(const wa_tape *t)
{
	const auto *p = static_cast<const simdjson::dom::parser *>(t->impl);
	/* Roughly what simdjson keeps per byte of capacity: indexes, tape, strings, copy. */
	size_t parser = p ? p->capacity() * 15 : 0;
	return t->cap * sizeof(wa_jnode) + parser;
}

extern "C" void wa_tape_free(wa_tape *t)
{
	delete static_cast<simdjson::dom::parser *>(t->impl);
	t->impl = nullptr;
	std::free(t->nodes);
	t->nodes = nullptr;
	t->n = t->cap = 0;
}
