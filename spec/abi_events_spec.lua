-- The Lua 5.4 and the LuaJIT builds of whatsapp.core make the same events.
--
-- They do not build them the same way: under LuaJIT, message, status and contact tables come
-- from Lua table constructors called by the walk (csrc/webhook.c, WA_EVENT_CTORS), elsewhere
-- from one lua_rawset per field. This spec dumps every event of every webhook fixture, of the
-- benchmark bodies and of the bodies below (keys sorted, lazy fields read, see spec/abi/dump.lua)
-- in this process, and again under the other interpreter with its own build, and compares the
-- two texts (metatables and shared tables included). Runs under both interpreters; needs both
-- builds (make test makes them).
local helpers = require "helpers"
local dump = require "abi.dump"

local THIS = helpers.interpreter()
local OTHER = THIS == "luajit" and "lua5.4" or "luajit"

-- Bodies that set what the constructors leave to later stores: group and parent ids,
-- context, errors on messages and statuses, every optional status field, repeated and
-- missing contacts, a status without a status, numbers in strings, and a body with more
-- contacts than events.
local EXTRA = {
  [[{"object":"whatsapp_business_account","entry":[{"id":"1","time":"1750000000",
    "changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
    "metadata":{"display_phone_number":"15550001111","phone_number_id":"222"},
    "contacts":[{"profile":{"name":"A","username":"a_user"},"wa_id":"111","user_id":"US.1",
                 "parent_user_id":"US.P1"},
                {"profile":{"name":"A again"},"wa_id":"111","user_id":"US.2"},
                {"profile":{"name":"B"},"wa_id":"333"}],
    "messages":[
      {"from":"111","from_user_id":"US.2","from_parent_user_id":"US.P1","group_id":"G1","id":"m1",
       "timestamp":"-12","type":"text","text":{"body":"hi"},
       "context":{"from":"999","id":"m0","forwarded":true,"frequently_forwarded":false,
                  "referred_product":{"catalog_id":"c","product_retailer_id":"r"}},
       "errors":[{"code":131051,"title":"Unsupported","error_data":{"details":"d"}},{"code":"7"},3]},
      {"from":"333","id":"m2","timestamp":123456789012345678,"type":"image",
       "image":{"id":"i","mime_type":"image/jpeg","sha256":"s","caption":"c","animated":false}},
      {"from":"444","id":"m3","timestamp":"12345678901234567","type":"location",
       "location":{"latitude":"1.5","longitude":-2.25,"name":"n"}},
      {"id":"m4","type":"button","button":{"payload":"p","text":"t"}},
      {"from":"333","id":"m5","type":"reaction","reaction":{"message_id":"m2","emoji":""}},
      {"from":"333","id":"m6","type":"interactive","interactive":{"type":"list_reply",
       "list_reply":{"id":"r1","title":"T","description":"D"}}},
      {"from":"333","id":"m7","type":"interactive","interactive":{"type":"nfm_reply",
       "nfm_reply":{"name":"flow","body":"Sent","response_json":"{\"a\":[1,2.5,null]}"}}},
      {"from":"333","id":"m8"}],
    "statuses":[
      {"id":"s1","status":"failed","timestamp":"1750000001","recipient_id":"333",
       "recipient_user_id":"US.3","parent_recipient_user_id":"US.P3","recipient_participant_id":"333",
       "recipient_type":"group","biz_opaque_callback_data":"cb",
       "errors":[{"code":131047,"title":"Re-engagement message","message":"More than 24 hours",
                  "error_data":{"details":"window"},"href":"https://h"}],
       "conversation":{"id":"c1","origin":{"type":"service"}},"pricing":{"billable":true}},
      {"id":"s2","timestamp":1750000002,"recipient_id":"555"},
      {"id":"s3","status":"read","recipient_user_id":"US.2"}],
    "errors":[{"code":131000,"title":"Something went wrong"}]}}]}]}]],
  [[{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[{"field":"messages","value":{
    "metadata":{"phone_number_id":"8"},"contacts":[{"wa_id":"7"}],
    "messages":[{"from":"6","id":"x","type":"text","text":{"body":"only contact, not the sender"}}]}}]}]}]],
}

local function files()
  local out = {}
  for _, name in ipairs(helpers.list("webhooks")) do
    out[#out + 1] = helpers.FIXTURES .. "/webhooks/" .. name
  end
  out[#out + 1] = "bench/bodies/single.json"
  out[#out + 1] = "bench/bodies/batch.json"
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  for i, body in ipairs(EXTRA) do
    local path = ("%s/extra%d.json"):format(dir, i)
    local f = assert(io.open(path, "wb"))
    f:write(body)
    f:close()
    out[#out + 1] = path
  end
  return out, dir
end

describe("events from simdjson's own tape", function()
  -- The walk reads simdjson's DOM tape in place (csrc/jtape.h); if that internal format ever
  -- differs from what the core expects, each parse writes the tape itself from simdjson's API.
  local core = require "whatsapp.core"

  it("are what the simdjson this is built against gives (its tape is read in place)", function()
    assert.is_true(core._tape_direct())
  end)

  it("are the same as from the tape the core writes itself", function()
    local paths, dir = files()
    local function all()
      local out = {}
      for _, path in ipairs(paths) do
        out[#out + 1] = "== " .. path .. "\n" .. dump.dump(helpers.read(path)) .. "\n"
      end
      return table.concat(out)
    end
    local direct = all()
    assert.is_false(core._tape_direct(false))
    local ok, written = pcall(all)
    assert.is_true(core._tape_direct(true))
    os.execute("rm -rf " .. dir)
    assert(ok, written)
    assert.is_truthy(direct:find("\nevent 50 ", 1, true), "the batch's 50 events are missing")
    assert.equal(direct, written)
  end)
end)

describe("events under Lua 5.4 and LuaJIT", function()
  it("are the same for every fixture, the bench bodies and the extra bodies", function()
    local core = "build/" .. OTHER .. "/whatsapp/core.so"
    assert(io.open(core, "rb"),
      core .. " is missing: build both ABIs first (make; make LUA=luajit), as make test does")
    local paths, dir = files()
    local mine = {}
    for _, path in ipairs(paths) do
      mine[#mine + 1] = "== " .. path .. "\n" .. dump.dump(helpers.read(path)) .. "\n"
    end
    mine = table.concat(mine)
    -- (not under the sanitizer the suite may run with: the other build is a plain one)
    local cmd = ('env -u LD_PRELOAD -u ASAN_OPTIONS LUA_PATH="./lua/?.lua;./spec/?.lua;;" '
      .. 'LUA_CPATH="./build/%s/?.so;;" %s spec/abi/dump.lua %s'):format(OTHER, OTHER,
      table.concat(paths, " "))
    -- (the exit status comes on the last line: LuaJIT's popen:close does not report it)
    local p = assert(io.popen(cmd .. '; echo "exit=$?"'))
    local theirs = p:read("a")
    p:close()
    os.execute("rm -rf " .. dir)
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
