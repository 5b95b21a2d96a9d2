/*
 * fuzz_webhook.c - libFuzzer target for the signature check and the webhook
 * parser, driven through the same Lua API users call.
 *
 * Besides "no crash, no sanitizer report", it checks properties that would
 * catch silent bugs: a successful parse implies the body is valid JSON for the
 * standalone decoder too, and gives the same events when the tape is written
 * from simdjson's API instead of read from simdjson's own (jtape.h), and,
 * built for LuaJIT, when the events are made through the Lua/C API instead of
 * from records (webhook.c, WA_RECORDS); every
 * event's raw is a table or nil, the same before and after the parser has
 * parsed another body (its lazy fields then parse the body again); and a
 * failure comes back as (nil, message).
 * A violated property aborts, which libFuzzer reports as a crash.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int luaopen_whatsapp_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *driver =
	"local core = ...\n"
	"local parser = core.parser()\n"
	"local verifier = core.verifier({ 'k1', 'secret-two' })\n"
	"local other = '{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":\"f\",\"value\":{}}]}]}'\n"
	"local writer = core.parser() -- parses with the tape written from simdjson's API\n"
	"local function digest(list)\n"
	"  local out = {}\n"
	"  for i = 1, #list do\n"
	"    local ev = list[i]\n"
	"    local m, r, c = ev.media or {}, ev.reply or {}, ev.context or {}\n"
	"    out[i] = table.concat({ ev.kind, ev.type, tostring(ev.id), tostring(ev.from),\n"
	"      tostring(ev.timestamp), tostring(ev.text), tostring(ev.contact and ev.contact.wa_id),\n"
	"      tostring(ev.status), tostring(ev.recipient_id), tostring(m.id), tostring(m.voice),\n"
	"      tostring(r.id), tostring(r.description), tostring(c.id), tostring(c.forwarded) }, '|')\n"
	"  end\n"
	"  return table.concat(out, '\\n')\n"
	"end\n"
	"return function(input)\n"
	"  -- signature: the first 71 bytes play the header, the rest the body\n"
	"  local h, body = input:sub(1, 71), input:sub(72)\n"
	"  assert(type(verifier:check(body, h)) == 'boolean')\n"
	"  assert(core.check_signature(body, h, 'k1') == verifier:check(body, h))\n"
	"  local evs, msg = parser:parse(input, {})\n"
	"  if evs then\n"
	"    assert(core.json_decode(input) ~= nil, 'parsed but not valid JSON')\n"
	"    for i = 1, #evs do\n"
	"      local ev = evs[i]\n"
	"      assert(type(ev.kind) == 'string' and type(ev.type) == 'string')\n"
	"      if i % 2 == 1 then\n"
	"        local r = ev.raw\n"
	"        assert(r == nil or type(r) == 'table')\n"
	"      end\n"
	"    end\n"
	"    -- the tape written from simdjson's API gives the same events as its own tape\n"
	"    core._tape_direct(false)\n"
	"    local written = writer:parse(input, {})\n"
	"    core._tape_direct(true)\n"
	"    assert(written and digest(written) == digest(evs), 'written tape differs')\n"
	"    -- under LuaJIT: events made through the API, the same as from records\n"
	"    if core._records() then\n"
	"      core._records(false)\n"
	"      local plain = writer:parse(input, {})\n"
	"      core._records(true)\n"
	"      assert(plain and digest(plain) == digest(evs), 'records differ from the API')\n"
	"    end\n"
	"    assert(parser:parse(other, {}))\n"
	"    for i = 2, #evs, 2 do\n"
	"      local r = evs[i].raw\n"
	"      assert(r == nil or type(r) == 'table', 'raw after another parse')\n"
	"    end\n"
	"  else\n"
	"    assert(type(msg) == 'string' and #msg > 0)\n"
	"  end\n"
	"end\n";

static lua_State *L;
static unsigned long runs;

/*
 * Closed at exit, before LeakSanitizer looks: LuaJIT keeps its heap in memory
 * of its own, where LeakSanitizer does not see the parsers' buffers.
 */
static void wa_fuzz_close(void)
{
	lua_close(L);
	L = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (L == NULL) {
		L = luaL_newstate();
		atexit(wa_fuzz_close);
		luaL_openlibs(L);
		if (luaL_loadstring(L, driver) != LUA_OK) {
			fprintf(stderr, "driver: %s\n", lua_tostring(L, -1));
			abort();
		}
		luaopen_whatsapp_core(L);
		lua_call(L, 1, 1);
		lua_setfield(L, LUA_REGISTRYINDEX, "wa_fuzz");
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "wa_fuzz");
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "property violated: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_settop(L, 0);
	/* A full collection now and then, so use-after-free shows up. */
	if (++runs % 64 == 0)
		lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}
