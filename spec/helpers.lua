--- Shared helpers for the specs: fixture files, JSON, signing.
-- Fixtures live in spec/fixtures/ (copied from the project's shared test data) so the
-- suite stands on its own in a fresh clone.
local cjson = require "cjson"

local helpers = {}

--- Directory of the fixtures, relative to the repository root (busted runs from there).
helpers.FIXTURES = "spec/fixtures"

--- Read a whole file as a binary string; raises when it cannot be read.
function helpers.read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

--- Read and decode a JSON fixture, path relative to spec/fixtures.
function helpers.fixture(rel)
  return cjson.decode(helpers.read(helpers.FIXTURES .. "/" .. rel))
end

--- Raw bytes of a fixture, path relative to spec/fixtures.
function helpers.fixture_raw(rel)
  return helpers.read(helpers.FIXTURES .. "/" .. rel)
end

--- Sorted list of file names (not paths) in a fixture folder that end in `suffix`.
function helpers.list(dir, suffix)
  suffix = suffix or ".json"
  local p = assert(io.popen('ls -1 "' .. helpers.FIXTURES .. "/" .. dir .. '"'))
  local out = {}
  for name in p:lines() do
    if name:sub(-#suffix) == suffix then out[#out + 1] = name end
  end
  p:close()
  table.sort(out)
  return out
end

--- The app secret the fixtures are signed with.
helpers.SECRET = "test_app_secret"

--- Headers for a body signed with `secret` (default helpers.SECRET).
function helpers.signed(body, secret)
  local webhook = require "whatsapp.webhook"
  return { ["X-Hub-Signature-256"] = webhook.sign(body, secret or helpers.SECRET) }
end

--- Which interpreter runs the suite: "luajit" or "lua5.4" (or the _VERSION otherwise).
function helpers.interpreter()
  if rawget(_G, "jit") then return "luajit" end
  if _VERSION == "Lua 5.4" then return "lua5.4" end
  return _VERSION
end

return helpers
