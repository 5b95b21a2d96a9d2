#!/usr/bin/env lua5.4
--- webhook_cat: verify and parse signed WhatsApp webhooks, print their events
-- as JSON lines (one event per line, `raw` included).
--
--   lua5.4 examples/webhook_cat.lua --secret S --signature 'sha256=...' body.json
--   lua5.4 examples/webhook_cat.lua --secret S --signature 'sha256=...' < body.json
--   lua5.4 examples/webhook_cat.lua --demo
--
-- The app secret may also come from WA_APP_SECRET. --demo signs the payloads in
-- examples/payloads/ with a throwaway secret, then verifies and prints them, and
-- shows what a tampered body and an oversized body get.
-- Exit status: 0 when every input verified and parsed, 1 otherwise.
local here = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
package.cpath = here .. "/build/lua5.4/?.so;" .. package.cpath

local webhook = require "whatsapp.webhook"
local cjson = require("cjson").new()

local function usage()
  io.stderr:write("usage: webhook_cat.lua [--secret S] [--signature SIG] [FILE...] | --demo\n")
  os.exit(2)
end

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  return data
end

-- Print one event per line. `raw`, `conversation`, `value`... are lazy fields
-- (pairs does not list them until they are read): ask for them explicitly.
local function print_events(events)
  for _, ev in ipairs(events) do
    local out = {}
    for k, v in pairs(ev) do out[k] = v end
    for _, k in ipairs(webhook.LAZY_FIELDS) do out[k] = ev[k] end
    io.write(cjson.encode(out), "\n")
  end
end

local function handle(hook, name, body, signature)
  local events, err = hook:parse(body, { ["X-Hub-Signature-256"] = signature })
  if not events then
    io.stderr:write(name, ": rejected: ", tostring(err), err.path and (" at " .. err.path) or "", "\n")
    return false
  end
  io.stderr:write(name, ": ", #events, " event(s)\n")
  print_events(events)
  return true
end

local function demo()
  local secret = "demo-secret-" .. tostring(os.time())
  local hook = webhook.new{ app_secret = secret, max_body = 64 * 1024 }
  local dir = here .. "/examples/payloads"
  local p = assert(io.popen('ls -1 "' .. dir .. '"'))
  local ok = true
  for name in p:lines() do
    if name:match("%.json$") then
      local body = assert(read(dir .. "/" .. name))
      ok = handle(hook, name, body, webhook.sign(body, secret)) and ok
    end
  end
  p:close()
  -- What an attacker gets: a body changed after signing, and an oversized one.
  local body = assert(read(dir .. "/text.json"))
  local sig = webhook.sign(body, secret)
  local tampered = body:gsub("Hello", "Hellp")
  handle(hook, "text.json (tampered)", tampered, sig)
  local big = string.rep(" ", 65 * 1024) .. body
  handle(hook, "text.json (65 KiB of padding)", big, webhook.sign(big, secret))
  return ok
end

local secret, signature, files = os.getenv("WA_APP_SECRET"), nil, {}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--demo" then
    os.exit(demo() and 0 or 1)
  elseif a == "--secret" then
    i = i + 1; secret = arg[i]
  elseif a == "--signature" then
    i = i + 1; signature = arg[i]
  elseif a:sub(1, 2) == "--" then
    usage()
  else
    files[#files + 1] = a
  end
  i = i + 1
end
if not secret or secret == "" or not signature then usage() end

local hook = webhook.new{ app_secret = secret }
local ok = true
if #files == 0 then
  ok = handle(hook, "stdin", io.read("*a"), signature)
else
  for _, f in ipairs(files) do
    local body, err = read(f)
    if not body then
      io.stderr:write(f, ": ", err, "\n")
      ok = false
    else
      ok = handle(hook, f, body, signature) and ok
    end
  end
end
os.exit(ok and 0 or 1)
