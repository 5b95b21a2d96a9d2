/*
 * json_tape.cpp - parse JSON with simdjson and hand its tape to the C walk.
 *
 * This is the only C++ in the core, kept to the one thing C cannot do: call
 * simdjson (Debian's libsimdjson), which parses and validates a webhook body
 * several times faster than a byte-at-a-time parser.  The interface is the C
 * one of jtape.h; nothing here throws across it or calls into Lua.
 *
 * The walk reads simdjson's own tape (the words of its DOM and its string
 * buffer), which saves copying the document.  That format is simdjson's
 * documented internal layout, not its API, so once per process tape_readable()
 * writes a sample document's tape a second time from the DOM API and
 * compares the two; if they differ, every parse writes its tape that way
 * (writer below), into the tape's own buffers.  Either way the C side sees
 * one format.
 *
 * simdjson needs a few bytes of readable padding after its input, which a Lua
 * string does not promise, so the parser copies the text into a padded buffer
 * of its own (parse's realloc_if_needed); the tape and its strings live in
 * the parser until its next parse.
 */
#include "jtape.h"

#include <simdjson.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr uint64_t letter(char c)
{
	return static_cast<uint64_t>(static_cast<unsigned char>(c)) << 56;
}

/* Writes a document's tape in jtape.h's format from simdjson's DOM API. */
struct writer {
	wa_tape *t;
	size_t nw = 0, ns = 0;

	bool grow(void **buf, size_t *cap, size_t need, size_t unit)
	{
		if (need <= *cap)
			return true;
		size_t cap2 = *cap ? *cap : 256;
		while (cap2 < need)
			cap2 *= 2;
		void *nb = std::realloc(*buf, cap2 * unit);
		if (nb == nullptr)
			return false;
		*buf = nb;
		*cap = cap2;
		return true;
	}

	/* Append a word; false when out of memory or past 32-bit indexes. */
	bool word(uint64_t x)
	{
		if (nw >= UINT32_MAX - 1)
			return false;
		void *buf = t->own_w;
		if (!grow(&buf, &t->own_wcap, nw + 1, sizeof(uint64_t)))
			return false;
		t->own_w = static_cast<uint64_t *>(buf);
		t->own_w[nw++] = x;
		return true;
	}

	bool str(std::string_view s)
	{
		uint32_t len = static_cast<uint32_t>(s.size()); /* texts are under 4 GiB */
		size_t at = ns;
		void *buf = t->own_s;
		if (!grow(&buf, &t->own_scap, ns + sizeof len + s.size() + 1, 1))
			return false;
		t->own_s = static_cast<unsigned char *>(buf);
		std::memcpy(t->own_s + at, &len, sizeof len);
		std::memcpy(t->own_s + at + sizeof len, s.data(), s.size());
		t->own_s[at + sizeof len + s.size()] = 0;
		ns += sizeof len + s.size() + 1;
		return word(letter('"') | at);
	}

	bool number(char type, uint64_t bits)
	{
		return word(letter(type)) && word(bits);
	}

	/* Close the container opened at word `at` with `count` children. */
	bool close(size_t at, char type, uint64_t count)
	{
		if (!word(letter(type) | at))
			return false;
		if (count > WA_JCOUNT_MAX)
			count = WA_JCOUNT_MAX;
		t->own_w[at] |= count << 32 | nw;
		return true;
	}

	/* Write e and its subtree; depth is bounded by the parser's max_depth. */
	bool value(element e)
	{
		size_t at = nw;
		uint64_t count = 0, bits;
		switch (e.type()) {
		case element_type::OBJECT: {
			simdjson::dom::object obj;
			if (e.get(obj) || !word(letter('{')))
				return false;
			for (simdjson::dom::key_value_pair kv : obj) {
				if (!str(kv.key) || !value(kv.value))
					return false;
				count++;
			}
			return close(at, '}', count);
		}
		case element_type::ARRAY: {
			simdjson::dom::array arr;
			if (e.get(arr) || !word(letter('[')))
				return false;
			for (element item : arr) {
				if (!value(item))
					return false;
				count++;
			}
			return close(at, ']', count);
		}
		case element_type::STRING:
			return str(e.get_string().value_unsafe());
		case element_type::INT64: {
			int64_t v = e.get_int64().value_unsafe();
			std::memcpy(&bits, &v, sizeof bits);
			return number('l', bits);
		}
		case element_type::UINT64:
			return number('u', e.get_uint64().value_unsafe());
		case element_type::DOUBLE: {
			double v = e.get_double().value_unsafe();
			std::memcpy(&bits, &v, sizeof bits);
			return number('d', bits);
		}
		case element_type::BOOL:
			return word(letter(e.get_bool().value_unsafe() ? 't' : 'f'));
		case element_type::NULL_VALUE:
			break;
		}
		return word(letter('n'));
	}

	/* The whole tape: a root word, the value, a closing root word. */
	bool document(element root)
	{
		nw = ns = 0;
		if (!word(letter('r')) || !value(root) || !word(letter('r')))
			return false;
		t->own_w[0] |= nw;
		t->w = t->own_w;
		t->s = t->own_s;
		t->n = static_cast<uint32_t>(nw);
		return true;
	}
};

/* Point t at the parser's own tape (jtape.h's format, checked by tape_readable). */
bool use_direct(wa_tape *t, const simdjson::dom::document &doc)
{
	const uint64_t *w = doc.tape.get();
	uint64_t n;
	if (w == nullptr || doc.string_buf.get() == nullptr || (w[0] >> 56) != 'r')
		return false;
	n = w[0] & WA_JPAYLOAD;
	if (n < 3 || n > UINT32_MAX || (w[n - 1] >> 56) != 'r')
		return false;
	t->w = w;
	t->s = doc.string_buf.get();
	t->n = static_cast<uint32_t>(n);
	return true;
}

/*
 * Two tapes that the walk would read alike: the same type letters, container
 * ends and counts, string contents and number bits (where a closing word
 * points back to is not read, nor string offsets).
 */
bool same_tape(const wa_tape &a, const wa_tape &b)
{
	if (a.n != b.n || a.n < 3)
		return false;
	for (uint32_t i = 0; i < a.n; i++) {
		uint64_t x = a.w[i], y = b.w[i];
		int type = static_cast<int>(x >> 56);
		if (type != static_cast<int>(y >> 56))
			return false;
		switch (type) {
		case WA_J_OBJ:
		case WA_J_ARR:
			if ((x & WA_JPAYLOAD) != (y & WA_JPAYLOAD))
				return false;
			break;
		case WA_J_STR:
			if (wa_jlen(&a, i) != wa_jlen(&b, i) ||
			    std::memcmp(wa_jstr(&a, i), wa_jstr(&b, i), wa_jlen(&a, i) + 1) != 0)
				return false;
			break;
		case WA_J_INT:
		case WA_J_UINT:
		case WA_J_DBL:
			if (i + 1 >= a.n || a.w[i + 1] != b.w[i + 1])
				return false;
			i++;
			break;
		case 'r':
			if (i == 0 && (x & WA_JPAYLOAD) != (y & WA_JPAYLOAD))
				return false;
			break;
		default:
			break;
		}
	}
	return true;
}

/*
 * Whether simdjson's tape can be read directly: 1 yes, 0 no, -1 not known
 * yet.  Decided once, on first use, by writing a document with every kind of
 * value both ways.  Atomic, so that threads parsing at once may each decide
 * it, but never see it half written.
 */
std::atomic<int> direct{-1};
/* Set by wa_tape_direct(0): write every tape anyway (for the specs). */
std::atomic<bool> force_write{false};

/* Whether this simdjson's tape reads as jtape.h's format (decided once). */
bool tape_readable()
{
	static const char sample[] =
	    "{\"a\":[1,-2,18446744073709551615,2.5,true,false,null,\"x\\u00e9y\"],"
	    "\"b\":{},\"c\":[],\"d\":{\"e\":[{\"f\":\"\"}]},\"g\":\"h\",\"i\":[[0]]}";
	int known = direct.load(std::memory_order_relaxed);
	if (known >= 0)
		return known == 1;
	simdjson::dom::parser p;
	element root;
	wa_tape viadom{}, viatape{};
	bool ok = false;
	if (!p.parse(sample, sizeof sample - 1).get(root)) {
		writer wr{&viadom};
		ok = wr.document(root) && use_direct(&viatape, p.doc) && same_tape(viadom, viatape);
	}
	std::free(viadom.own_w);
	std::free(viadom.own_s);
	direct.store(ok ? 1 : 0, std::memory_order_relaxed);
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
		/* Until this parse succeeds the tape holds nothing (and points nowhere). */
		t->n = 0;
		t->w = nullptr;
		t->s = nullptr;
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
		element root;
		simdjson::error_code code = p->parse(text, len, true).get(root);
		if (code) {
			fail(err, errlen, code);
			return 0;
		}
		if (!force_write.load(std::memory_order_relaxed) && tape_readable() &&
		    use_direct(t, p->doc))
			return 1;
		writer wr{t};
		if (!wr.document(root)) {
			t->n = 0;
			t->w = nullptr;
			t->s = nullptr;
			fail(err, errlen, simdjson::MEMALLOC);
			return 0;
		}
		return 1;
	} catch (...) {
		/* Nothing above is meant to throw; never let it cross into C. */
		t->n = 0;
		t->w = nullptr;
		t->s = nullptr;
		fail(err, errlen, simdjson::MEMALLOC);
		return 0;
	}
}

extern "C" uint32_t wa_jcount_slow(const wa_tape *t, uint32_t i)
{
	uint32_t n = 0, j, end = wa_jclose(t, i);
	int obj = wa_jtype(t, i) == WA_J_OBJ;
	for (j = i + 1; j < end; j = wa_jskip(t, j), n++)
		if (obj)
			j = wa_jskip(t, j); /* the key */
	return n;
}

extern "C" size_t wa_tape_bytes(const wa_tape *t)
{
	const auto *p = static_cast<const simdjson::dom::parser *>(t->impl);
	/* Roughly what simdjson keeps per byte of capacity: indexes, tape, strings, copy. */
	size_t parser = p ? p->capacity() * 15 : 0;
	return parser + t->own_wcap * sizeof(uint64_t) + t->own_scap;
}

extern "C" void wa_tape_free(wa_tape *t)
{
	delete static_cast<simdjson::dom::parser *>(t->impl);
	t->impl = nullptr;
	std::free(t->own_w);
	std::free(t->own_s);
	t->own_w = nullptr;
	t->own_s = nullptr;
	t->own_wcap = t->own_scap = 0;
	t->w = nullptr;
	t->s = nullptr;
	t->n = 0;
}

extern "C" int wa_tape_direct(int set)
{
	if (set >= 0)
		force_write.store(set == 0, std::memory_order_relaxed);
	return !force_write.load(std::memory_order_relaxed) && tape_readable() ? 1 : 0;
}
