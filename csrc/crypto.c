/*
 * crypto.c - HMAC-SHA256 and Meta's X-Hub-Signature-256 check.
 *
 * Meta signs every webhook POST with HMAC-SHA256 over the exact request body
 * bytes, keyed with the app secret, and sends "sha256=<hex>".  The check must
 * run over the raw bytes (never re-serialised JSON) and compare in constant
 * time.  We decode the received hex (either case) to 32 bytes and compare the
 * digests with CRYPTO_memcmp, so a wrong value costs the same time whatever
 * its first differing byte.
 *
 * A Verifier ("whatsapp.crypto.Verifier") keeps one keyed HMAC context per app
 * secret, so the per-request cost is hashing the body with the inner and
 * outer key blocks already prepared.  Several secrets allow key rotation: a
 * signature is valid when it matches any of them.
 *
 * OpenSSL version differences live in the seam section below and only there.
 * Where OpenSSL still builds its low-level SHA-256 calls (1.1, and 3.x unless
 * configured without the 3.0-deprecated API), a context is the two SHA-256
 * states left after hashing the inner and outer key blocks: a check copies
 * them (two struct copies) and hashes, with no allocation and no provider
 * dispatch, about 0.2 us less per webhook than EVP_MAC.  The digests are the
 * same (RFC 4231 vectors in spec/crypto_spec.lua).  OpenSSL 3 uses EVP_MAC
 * instead when built without that API, and when the process asks for FIPS
 * algorithms by default (the low-level calls bypass the providers).
 */
/* This file's one use of the 3.0-deprecated API is the SHA256_* seam below. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "wa.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>

#define WA_SHA256_LEN 32
#define WA_SIG_PREFIX "sha256="
#define WA_SIG_PREFIX_LEN 7
#define WA_VERIFIER_MT "whatsapp.crypto.Verifier"
#define WA_MAX_SECRETS 16

/* ---- OpenSSL version seam ------------------------------------------------ */

#if !defined(OPENSSL_NO_DEPRECATED_3_0)
#include <openssl/sha.h>
#define WA_HMAC_STATES 1 /* the low-level SHA-256 calls exist */
#else
#define WA_HMAC_STATES 0
#endif
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#include <openssl/params.h>
#define WA_HMAC_EVP 1
#else
#define WA_HMAC_EVP 0
#endif

typedef struct {
#if WA_HMAC_STATES
	SHA256_CTX inner, outer; /* in use when there is no mac */
#endif
#if WA_HMAC_EVP
	EVP_MAC_CTX *mac;
#endif
} wa_hmac_ctx;

static void wa_hmac_free(wa_hmac_ctx *ctx)
{
	if (ctx == NULL)
		return;
#if WA_HMAC_EVP
	EVP_MAC_CTX_free(ctx->mac);
#endif
	OPENSSL_clear_free(ctx, sizeof *ctx);
}

#if WA_HMAC_STATES
/* c started with one block: the key block k, each byte xored with x. 1 on success. */
static int wa_hmac_pad(SHA256_CTX *c, const unsigned char *k, unsigned char x)
{
	unsigned char pad[SHA256_CBLOCK];
	size_t i;
	int ok;
	for (i = 0; i < SHA256_CBLOCK; i++)
		pad[i] = (unsigned char)(k[i] ^ x);
	ok = SHA256_Init(c) && SHA256_Update(c, pad, SHA256_CBLOCK);
	OPENSSL_cleanse(pad, sizeof pad);
	return ok;
}

/* ctx->inner and ->outer keyed with key (RFC 2104). 1 on success. */
static int wa_hmac_states(wa_hmac_ctx *ctx, const char *key, size_t keylen)
{
	unsigned char k[SHA256_CBLOCK];
	int ok = 1;
	memset(k, 0, sizeof k);
	if (keylen > SHA256_CBLOCK) {
		/* A key longer than a block is replaced by its digest. */
		ok = SHA256((const unsigned char *)key, keylen, k) != NULL;
	} else if (keylen > 0) {
		memcpy(k, key, keylen);
	}
	ok = ok && wa_hmac_pad(&ctx->inner, k, 0x36) && wa_hmac_pad(&ctx->outer, k, 0x5c);
	OPENSSL_cleanse(k, sizeof k);
	return ok;
}
#endif

#if WA_HMAC_EVP
/* ctx->mac keyed with key. 1 on success. */
static int wa_hmac_evp(wa_hmac_ctx *ctx, const char *key, size_t keylen)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	OSSL_PARAM params[2];
	char digest[] = "SHA256";
	if (mac == NULL)
		return 0;
	ctx->mac = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac); /* the context keeps its own reference */
	if (ctx->mac == NULL)
		return 0;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	/* HMAC accepts an empty key; pass a valid pointer for it. */
	return EVP_MAC_init(ctx->mac, (const unsigned char *)(keylen ? key : ""), keylen, params);
}
#endif

/* A context keyed with key, or NULL on failure. */
static wa_hmac_ctx *wa_hmac_new(const char *key, size_t keylen)
{
	wa_hmac_ctx *ctx = (wa_hmac_ctx *)OPENSSL_zalloc(sizeof *ctx);
	int ok;
	if (ctx == NULL)
		return NULL;
#if WA_HMAC_STATES && WA_HMAC_EVP
	if (EVP_default_properties_is_fips_enabled(NULL))
		ok = wa_hmac_evp(ctx, key, keylen);
	else
		ok = wa_hmac_states(ctx, key, keylen);
#elif WA_HMAC_STATES
	ok = wa_hmac_states(ctx, key, keylen);
#else
	ok = wa_hmac_evp(ctx, key, keylen);
#endif
	if (!ok) {
		wa_hmac_free(ctx);
		return NULL;
	}
	return ctx;
}

/* MAC of msg into out (32 bytes), with the key set at creation. 1 on success. */
static int wa_hmac_run(wa_hmac_ctx *ctx, const char *msg, size_t len, unsigned char *out)
{
#if WA_HMAC_EVP
	if (ctx->mac != NULL) {
		size_t outl = 0;
		/* A NULL key re-initialises with the key set at creation. */
		if (!EVP_MAC_init(ctx->mac, NULL, 0, NULL))
			return 0;
		if (len > 0 && !EVP_MAC_update(ctx->mac, (const unsigned char *)msg, len))
			return 0;
		if (!EVP_MAC_final(ctx->mac, out, &outl, WA_SHA256_LEN))
			return 0;
		return outl == WA_SHA256_LEN;
	}
#endif
#if WA_HMAC_STATES
	{
		SHA256_CTX c = ctx->inner;
		unsigned char inner[WA_SHA256_LEN];
		int ok = SHA256_Update(&c, msg, len) && SHA256_Final(inner, &c);
		c = ctx->outer;
		ok = ok && SHA256_Update(&c, inner, WA_SHA256_LEN) && SHA256_Final(out, &c);
		OPENSSL_cleanse(&c, sizeof c);
		return ok;
	}
#else
	return 0; /* (unreached: without the states, every context has its mac) */
#endif
}

/* One-shot HMAC-SHA256; the HMAC() call exists unchanged in 1.1 and 3.x. */
static int wa_hmac_oneshot(const char *key, size_t keylen, const char *msg, size_t len,
			   unsigned char *out)
{
	unsigned int outl = 0;
	if (HMAC(EVP_sha256(), keylen ? key : "", (int)keylen, (const unsigned char *)(len ? msg : ""),
		 len, out, &outl) == NULL)
		return 0;
	return outl == WA_SHA256_LEN;
}

/* Raise a Lua error for an OpenSSL failure, after draining its error queue. */
static int wa_crypto_fail(lua_State *L, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	ERR_clear_error();
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		return luaL_error(L, "%s failed: %s", what, buf);
	}
	return luaL_error(L, "%s failed", what);
}

/* ---- hex ----------------------------------------------------------------- */

static void wa_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;
	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
}

static int wa_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parse "sha256=<64 hex digits>" into 32 bytes.  Returns 1 when the header is
 * well formed.  The hex digits are public (the attacker sent them), so a
 * data-dependent decode loop leaks nothing.
 */
static int wa_parse_signature(const char *h, size_t len, unsigned char *digest)
{
	size_t i;
	if (len != WA_SIG_PREFIX_LEN + 2 * WA_SHA256_LEN)
		return 0;
	if (memcmp(h, WA_SIG_PREFIX, WA_SIG_PREFIX_LEN) != 0)
		return 0;
	h += WA_SIG_PREFIX_LEN;
	for (i = 0; i < WA_SHA256_LEN; i++) {
		int hi = wa_hexval((unsigned char)h[2 * i]);
		int lo = wa_hexval((unsigned char)h[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return 0;
		digest[i] = (unsigned char)(hi << 4 | lo);
	}
	return 1;
}

/* ---- module functions ---------------------------------------------------- */

/*
 * core.hmac_sha256(key, msg) -> 64-char lowercase hex.
 * Raises on a non-string argument or an OpenSSL failure.
 */
static int wa_crypto_hmac_sha256(lua_State *L)
{
	size_t klen, mlen;
	const char *key = luaL_checklstring(L, 1, &klen);
	const char *msg = luaL_checklstring(L, 2, &mlen);
	unsigned char mac[WA_SHA256_LEN];
	char hex[2 * WA_SHA256_LEN];
	if (!wa_hmac_oneshot(key, klen, msg, mlen, mac))
		return wa_crypto_fail(L, "HMAC-SHA256");
	wa_hex(mac, sizeof mac, hex);
	lua_pushlstring(L, hex, sizeof hex);
	return 1;
}

/*
 * core.sign(body, secret) -> "sha256=<hex>", the X-Hub-Signature-256 value
 * Meta would send for body.  Raises on bad arguments.
 */
static int wa_crypto_sign(lua_State *L)
{
	size_t blen, klen;
	const char *body = luaL_checklstring(L, 1, &blen);
	const char *key = luaL_checklstring(L, 2, &klen);
	unsigned char mac[WA_SHA256_LEN];
	char out[WA_SIG_PREFIX_LEN + 2 * WA_SHA256_LEN];
	if (!wa_hmac_oneshot(key, klen, body, blen, mac))
		return wa_crypto_fail(L, "HMAC-SHA256");
	memcpy(out, WA_SIG_PREFIX, WA_SIG_PREFIX_LEN);
	wa_hex(mac, sizeof mac, out + WA_SIG_PREFIX_LEN);
	lua_pushlstring(L, out, sizeof out);
	return 1;
}

/*
 * core.equal(a, b) -> boolean: constant-time comparison of two strings of the
 * same length (the length itself is not secret).
 */
static int wa_crypto_equal(lua_State *L)
{
	size_t alen, blen;
	const char *a = luaL_checklstring(L, 1, &alen);
	const char *b = luaL_checklstring(L, 2, &blen);
	lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
	return 1;
}

/*
 * core.check_signature(body, header, secret [, secret...]) -> boolean.
 * false for a missing (non-string), malformed or wrong header.  One-shot:
 * for many requests use a Verifier.
 */
static int wa_crypto_check_signature(lua_State *L)
{
	size_t blen, hlen;
	const char *body = luaL_checklstring(L, 1, &blen);
	const char *header;
	unsigned char want[WA_SHA256_LEN], got[WA_SHA256_LEN];
	int i, top = lua_gettop(L), ok = 0;
	if (top < 3)
		return luaL_error(L, "check_signature needs at least one secret");
	for (i = 3; i <= top; i++)
		luaL_checkstring(L, i);
	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushboolean(L, 0);
		return 1;
	}
	header = lua_tolstring(L, 2, &hlen);
	if (!wa_parse_signature(header, hlen, want)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	for (i = 3; i <= top; i++) {
		size_t klen;
		const char *key = lua_tolstring(L, i, &klen);
		if (!wa_hmac_oneshot(key, klen, body, blen, got))
			return wa_crypto_fail(L, "HMAC-SHA256");
		/* No early exit: every secret costs the same. */
		ok |= CRYPTO_memcmp(got, want, WA_SHA256_LEN) == 0;
	}
	lua_pushboolean(L, ok);
	return 1;
}

/* ---- Verifier userdata --------------------------------------------------- */

typedef struct {
	int n;			    /* contexts held; 0 once closed */
	int closed;
	wa_hmac_ctx *ctx[WA_MAX_SECRETS];
} wa_verifier;

/* The checked accessor: raises on a wrong type or a closed verifier. */
static wa_verifier *wa_verifier_check(lua_State *L, int idx)
{
	wa_verifier *v = (wa_verifier *)luaL_checkudata(L, idx, WA_VERIFIER_MT);
	if (v->closed)
		luaL_argerror(L, idx, "verifier is closed");
	return v;
}

/* Release every context; safe to run more than once (close, __gc, __close). */
static void wa_verifier_release(wa_verifier *v)
{
	int i;
	for (i = 0; i < v->n; i++) {
		wa_hmac_free(v->ctx[i]);
		v->ctx[i] = NULL;
	}
	v->n = 0;
	v->closed = 1;
}

/*
 * core.verifier({secret, ...}) -> Verifier.  Raises on an empty or
 * non-string list, too many secrets, or an OpenSSL failure.
 */
static int wa_crypto_verifier(lua_State *L)
{
	wa_verifier *v;
	int i, n;
	luaL_checktype(L, 1, LUA_TTABLE);
	n = (int)wa_rawlen(L, 1);
	luaL_argcheck(L, n >= 1, 1, "at least one secret is required");
	luaL_argcheck(L, n <= WA_MAX_SECRETS, 1, "too many secrets");
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		if (lua_type(L, -1) != LUA_TSTRING)
			return luaL_argerror(L, 1, "secrets must be strings");
		lua_pop(L, 1);
	}
	/* Create first, acquire second: __gc always sees a valid object. */
	v = (wa_verifier *)lua_newuserdata(L, sizeof *v);
	memset(v, 0, sizeof *v);
	luaL_getmetatable(L, WA_VERIFIER_MT);
	lua_setmetatable(L, -2);
	for (i = 1; i <= n; i++) {
		size_t klen;
		const char *key;
		lua_rawgeti(L, 1, i);
		key = lua_tolstring(L, -1, &klen);
		v->ctx[v->n] = wa_hmac_new(key, klen);
		lua_pop(L, 1);
		if (v->ctx[v->n] == NULL)
			return wa_crypto_fail(L, "HMAC key setup");
		v->n++;
	}
	return 1;
}

/*
 * verifier:check(body, header) -> boolean.  header may be nil (missing):
 * that is a plain false, like any malformed or wrong value.
 */
static int wa_verifier_check_m(lua_State *L)
{
	wa_verifier *v = wa_verifier_check(L, 1);
	size_t blen, hlen;
	const char *body = luaL_checklstring(L, 2, &blen);
	const char *header;
	unsigned char want[WA_SHA256_LEN], got[WA_SHA256_LEN];
	int i, ok = 0;
	if (lua_type(L, 3) != LUA_TSTRING) {
		lua_pushboolean(L, 0);
		return 1;
	}
	header = lua_tolstring(L, 3, &hlen);
	if (!wa_parse_signature(header, hlen, want)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	for (i = 0; i < v->n; i++) {
		if (!wa_hmac_run(v->ctx[i], body, blen, got))
			return wa_crypto_fail(L, "HMAC-SHA256");
		ok |= CRYPTO_memcmp(got, want, WA_SHA256_LEN) == 0;
	}
	lua_pushboolean(L, ok);
	return 1;
}

/* verifier:close(), __gc and __close: release the contexts; idempotent. */
static int wa_verifier__gc(lua_State *L)
{
	wa_verifier *v = (wa_verifier *)luaL_checkudata(L, 1, WA_VERIFIER_MT);
	wa_verifier_release(v);
	return 0;
}

static int wa_verifier__tostring(lua_State *L)
{
	wa_verifier *v = (wa_verifier *)luaL_checkudata(L, 1, WA_VERIFIER_MT);
	/* Never print key material: only the count. */
	if (v->closed)
		lua_pushliteral(L, "whatsapp.crypto.Verifier (closed)");
	else
		lua_pushfstring(L, "whatsapp.crypto.Verifier (%d secret%s)", v->n, v->n == 1 ? "" : "s");
	return 1;
}

/*
 * core.appsecret_proof(access_token, app_secret) -> hex HMAC-SHA256 of the
 * token keyed with the app secret, as the Graph API's appsecret_proof wants.
 */
static int wa_crypto_appsecret_proof(lua_State *L)
{
	lua_settop(L, 2);
	/* hmac_sha256(key = app_secret, msg = token) */
	lua_pushcfunction(L, wa_crypto_hmac_sha256);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

static const luaL_Reg wa_verifier_methods[] = {
	{"check", wa_verifier_check_m},
	{"close", wa_verifier__gc},
	{NULL, NULL}};

static const luaL_Reg wa_crypto_funcs[] = {
	{"hmac_sha256", wa_crypto_hmac_sha256},
	{"sign", wa_crypto_sign},
	{"equal", wa_crypto_equal},
	{"check_signature", wa_crypto_check_signature},
	{"verifier", wa_crypto_verifier},
	{"appsecret_proof", wa_crypto_appsecret_proof},
	{NULL, NULL}};

void wa_crypto_open(lua_State *L)
{
	wa_class(L, WA_VERIFIER_MT, wa_verifier_methods, wa_verifier__gc);
	luaL_getmetatable(L, WA_VERIFIER_MT);
	lua_pushcfunction(L, wa_verifier__tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
	wa_setfuncs(L, wa_crypto_funcs, 0);
}
