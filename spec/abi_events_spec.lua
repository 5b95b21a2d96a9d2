-- The Lua 5.4 and the LuaJIT builds of whatsapp.core make the same events.
--
-- They do not build them the same way: under LuaJIT, message and status events and their
-- contacts are written as records that a Lua function makes into tables (csrc/webhook.c,
-- WA_RECORDS), elsewhere through the Lua/C API, one lua_rawset per field. This spec dumps
-- every event of every webhook fixture, of the benchmark bodies and of spec/abi/bodies/ (keys
-- sorted, lazy fields read, see spec/abi/dump.lua) in this process, and again under the other
-- interpreter with its own build, and compares the two texts (metatables and shared tables
-- included). Runs under both interpreters; needs both builds (make test makes them).
local helpers = require "helpers"
local dump = require "abi.dump"

local THIS = helpers.interpreter()
local OTHER = THIS == "luajit" and "lua5.4" or "luajit"

-- Besides the fixtures and the bench bodies, spec/abi/bodies/ holds bodies that set what the
-- records leave to later stores: group and parent ids, contexts with a referred product,
-- errors on messages and statuses, every optional status field, repeated and missing contacts, a status without a
-- status, numbers in strings, and a body with more contacts than events.
local PATHS = {}
for _, name in ipairs(helpers.list("webhooks")) do
  PATHS[#PATHS + 1] = helpers.FIXTURES .. "/webhooks/" .. name
end
PATHS[#PATHS + 1] = "bench/bodies/single.json"
PATHS[#PATHS + 1] = "bench/bodies/batch.json"
PATHS[#PATHS + 1] = "spec/abi/bodies/extra1.json"
PATHS[#PATHS + 1] = "spec/abi/bodies/extra2.json"

-- This process's dump of them all, made once.
local my_dump_text
local function my_dump()
  my_dump_text = my_dump_text or dump.dump_files(PATHS)
  return my_dump_text
end

-- The dump of PATHS with switch (core._tape_direct or core._records) off, then back as it was;
-- checks that this process's dump has the batch's events to compare with.
local function dump_switched_off(switch)
  assert.is_truthy(my_dump():find("\nevent 50 ", 1, true), "the batch's 50 events are missing")
  local before = switch()
  assert.is_false(switch(false))
  local ok, dumped = pcall(dump.dump_files, PATHS)
  assert.equal(before, switch(true))
  assert(ok, dumped)
  return dumped
end

describe("events from simdjson's own tape", function()
  -- The walk reads simdjson's DOM tape in place (csrc/jtape.h); if that internal format ever
  -- differs from what the core expects, each parse writes the tape itself from simdjson's API.
  local core = require "whatsapp.core"

  it("are what the simdjson this is built against gives (its tape is read in place)", function()
    assert.is_true(core._tape_direct())
  end)

  it("are the same as from the tape the core writes itself", function()
    assert.equal(my_dump(), dump_switched_off(core._tape_direct))
  end)
end)

describe("events from records", function()
  -- Under LuaJIT with its FFI, the walk writes message and status events as records that a
  -- Lua function makes into tables; core._records(false) makes them through the API instead,
  -- as a LuaJIT without the FFI would.
  local core = require "whatsapp.core"

  it("are what LuaJIT uses, and nothing else does", function()
    assert.equal(THIS == "luajit", core._records())
  end)

  it("are not used while the JIT compiler is off (the builder would be interpreted)", function()
    if THIS ~= "luajit" then return end
    local body = helpers.read("bench/bodies/single.json")
    -- whether a parse by a new parser calls the builder
    local function builder_ran()
      local ran = false
      debug.sethook(function()
        if debug.getinfo(2, "S").source == "=whatsapp.core(build)" then ran = true end
      end, "c")
      local p = core.parser()
      local ok, err = pcall(p.parse, p, body)
      debug.sethook()
      assert(ok, err)
      return ran
    end
    local jit = require "jit"
    jit.off()
    local ok, off = pcall(builder_ran)
    jit.on()
    assert(ok, off)
    assert.is_false(off)
    assert.is_true(builder_ran())
  end)

  it("are the same as the events made through the API", function()
    assert.equal(my_dump(), dump_switched_off(core._records))
  end)
end)

describe("events under Lua 5.4 and LuaJIT", function()
  it("are the same for every fixture, the bench bodies and the extra bodies", function()
    local core = "build/" .. OTHER .. "/whatsapp/core.so"
    assert(io.open(core, "rb"),
      core .. " is missing: build both ABIs first (make; make LUA=luajit), as make test does")
    local mine = my_dump()
    -- (not under the sanitizer the suite may run with: the other build is a plain one)
    local cmd = ('env -u LD_PRELOAD -u ASAN_OPTIONS LUA_PATH="./lua/?.lua;./spec/?.lua;;" '
      .. 'LUA_CPATH="./build/%s/?.so;;" %s spec/abi/dump.lua %s'):format(OTHER, OTHER,
      table.concat(PATHS, " "))
    -- (the exit status comes on the last line: LuaJIT's popen:close does not report it)
    local p = assert(io.popen(cmd .. '; echo "exit=$?"'))
    local theirs = p:read("a")
    p:close()
    local status = theirs:match("exit=(%d+)\n$")
    assert.equal("0", status, OTHER .. " spec/abi/dump.lua failed:\n" .. theirs:sub(-2000))
    theirs = theirs:gsub("exit=%d+\n$", "")
    assert.equal("END\n", theirs:sub(-4), OTHER .. " spec/abi/dump.lua stopped early")
    theirs = theirs:sub(1, -5)
    -- Both dumps must have found events, and the same ones.
    assert.is_truthy(mine:find("\nevent 50 ", 1, true), "the batch's 50 events are missing")
    if mine ~= theirs then
      local a, b = {}, {}
      for line in mine:gmatch("[^\n]*") do a[#a + 1] = line end
      for line in theirs:gmatch("[^\n]*") do b[#b + 1] = line end
      for i = 1, math.max(#a, #b) do
        if a[i] ~= b[i] then
          error(("first difference at line %d:\n%s: %s\n%s: %s"):format(i, THIS, tostring(a[i]),
            OTHER, tostring(b[i])), 0)
        end
      end
      error("the two dumps differ", 0)
    end
  end)
end)
