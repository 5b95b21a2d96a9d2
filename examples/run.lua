#!/usr/bin/env lua5.4
--- run: start an example bot (what `make run` runs).
--
--   lua5.4 examples/run.lua [BOT]        BOT is a file in examples/bots/ (default "menu")
--
-- Without WA_* variables: the local Cloud API simulator, the bot wired to it through signed
-- webhooks, and the sandbox chat page. It prints the page's URL (port WA_SANDBOX_PORT, default
-- 8080, or a free one when that is taken) and a live transcript, until Ctrl-C.
--
-- With WA_PHONE_NUMBER_ID, WA_ACCESS_TOKEN, WA_APP_SECRET and WA_VERIFY_TOKEN set: the same bot
-- against the real Cloud API, listening for Meta's webhooks on WA_HOST:WA_PORT (default
-- 0.0.0.0:8080) at /webhook. The token and the secret are never printed. (WA_BASE_URL replaces
-- https://graph.facebook.com, e.g. with a simulator's URL; WA_WABA_ID is optional.)
--
-- A bot file returns `{ name =, description =, setup = function(bot) ... end, templates = {...} }`
-- (`templates`: definitions the simulator knows, as `simulator.start` takes them; optional
-- `options`: more `whatsapp.bot` options).
local here = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local interp = rawget(_G, "jit") and "luajit" or "lua5.4"
package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
package.cpath = here .. "/build/" .. interp .. "/?.so;" .. package.cpath

local whatsapp = require "whatsapp"
local loop = require "whatsapp.loop"

local out = io.stdout
out:setvbuf("line")

local function say(...)
  out:write(...)
  out:write("\n")
end

local function die(msg, status)
  io.stderr:write("run: ", msg, "\n")
  os.exit(status or 1)
end

-- A stand-in when examples/bots/<name>.lua does not exist (yet): echo with a menu.
local function echo_bot()
  return {
    name = "echo",
    description = "echoes what you write; /menu shows buttons",
    setup = function(bot)
      bot:use(function(ctx, nxt)
        if ctx.kind == "message" and ctx.type ~= "reaction" then ctx:mark_read() end
        return nxt()
      end)
      bot:command("menu", function(ctx)
        ctx:reply_buttons("What now?", { { id = "hello", title = "Say hello" }, { id = "bye", title = "Bye" } })
      end)
      bot:button("hello", function(ctx)
        local who = ctx.event.contact and ctx.event.contact.name or "you"
        ctx:reply("Hello, *" .. tostring(who) .. "*!")
      end)
      bot:button("bye", function(ctx) ctx:reply("Bye!") end)
      bot:fallback(function(ctx)
        if ctx.text then ctx:reply("You wrote: " .. ctx.text) end
      end)
    end,
  }
end

local function load_example(name)
  if not name:match("^[%w_%-]+$") then die("bad bot name: " .. name, 2) end
  local path = here .. "/examples/bots/" .. name .. ".lua"
  local f = io.open(path, "rb")
  if not f then
    if name == "menu" or name == "echo" then return echo_bot() end
    die("no bot " .. path, 2)
  end
  f:close()
  local chunk, err = loadfile(path)
  if not chunk then die(err) end
  local ok, ex = pcall(chunk)
  if not ok then die(tostring(ex)) end
  if type(ex) ~= "table" or type(ex.setup) ~= "function" then
    die(path .. " must return { name =, description =, setup = function(bot) end, templates = }")
  end
  ex.name = ex.name or name
  return ex
end

-- Bot log lines: warnings and errors only (the transcript shows the rest).
local function bot_log(line)
  if not line:find('"level":"info"', 1, true) and not line:find('"level":"debug"', 1, true) then
    io.stderr:write(line, "\n")
  end
end

local function bot_options(ex, extra)
  local o = {}
  for k, v in pairs(ex.bot_options or ex.options or {}) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  if o.log == nil then o.log = bot_log end
  return o
end

local function random_token(n)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  local t = {}
  for i = 1, n do
    local k = math.random(1, #chars)
    t[i] = chars:sub(k, k)
  end
  return table.concat(t)
end

local function run_sandbox(ex)
  local sandbox = require "whatsapp.sandbox"
  math.randomseed(os.time() + math.floor(loop.now() * 1000) % 100000)
  local app_secret, token = random_token(32), random_token(48)
  local hook = whatsapp.webhook.new{ app_secret = app_secret, verify_token = random_token(16) }
  local bot = whatsapp.bot(bot_options(ex, { webhook = hook, secrets = { app_secret, token } }))
  local bsrv, err = bot:listen{ host = "127.0.0.1", port = 0, path = "/webhook" }
  if not bsrv then die("the bot cannot listen: " .. tostring(err)) end
  local templates = ex.templates
  if type(templates) == "table" and #templates == 0 then templates = nil end
  local sim
  sim, err = whatsapp.simulator.start{
    access_token = token, templates = templates, window = true, auto_approve = true,
    webhook = { url = "http://127.0.0.1:" .. bsrv:port() .. "/webhook", app_secret = app_secret },
  }
  if not sim then die("the simulator cannot start: " .. tostring(err)) end
  bot:add_client(whatsapp.client{ phone_number_id = sim.pnid, waba_id = sim.waba_id, access_token = token,
    base_url = sim.url })
  ex.setup(bot)

  local port = tonumber(os.getenv("WA_SANDBOX_PORT") or "8080")
  if not port or port < 0 or port > 65535 or port % 1 ~= 0 then die("WA_SANDBOX_PORT must be a port number", 2) end
  local opts = { sim = sim, port = port, transcript = out, title = ex.title or (ex.name:gsub("^%l", string.upper)),
    description = ex.description }
  local sb
  sb, err = sandbox.start(opts)
  if not sb and port ~= 0 then
    io.stderr:write("run: port ", port, " is taken (", tostring(err), "); using a free one\n")
    opts.port = 0
    sb, err = sandbox.start(opts)
  end
  if not sb then die("the sandbox cannot listen: " .. tostring(err)) end

  say("lua-whatsapp sandbox: bot \"", ex.name, "\"", ex.description and (": " .. ex.description) or "")
  say("Chat page: ", sb.url, "/")
  say("(Cloud API simulator ", sim.url, ", bot webhook http://127.0.0.1:", bsrv:port(), "/webhook; Ctrl-C stops)")
  say("")
  local how = loop.run()
  sb:close()
  bot:close()
  sim:close()
  say("stopped (", how, ")")
end

local ENV = { "WA_PHONE_NUMBER_ID", "WA_ACCESS_TOKEN", "WA_APP_SECRET", "WA_VERIFY_TOKEN" }

local function run_cloud(ex, env)
  local sandbox = require "whatsapp.sandbox"
  local client = whatsapp.client{ phone_number_id = env.WA_PHONE_NUMBER_ID, access_token = env.WA_ACCESS_TOKEN,
    app_secret = env.WA_APP_SECRET, waba_id = os.getenv("WA_WABA_ID"), base_url = os.getenv("WA_BASE_URL") }
  local hook = whatsapp.webhook.new{ app_secret = env.WA_APP_SECRET, verify_token = env.WA_VERIFY_TOKEN }
  local bot = whatsapp.bot(bot_options(ex, { client = client, webhook = hook,
    secrets = { env.WA_ACCESS_TOKEN, env.WA_APP_SECRET, env.WA_VERIFY_TOKEN } }))
  -- The transcript: what users send and statuses (middleware), what the bot sends (the client).
  local function line(s) say(os.date("%H:%M:%S "), s) end
  bot:use(function(ctx, nxt)
    local ev = ctx.event
    if ctx.kind == "message" and type(ev.raw) == "table" then
      local who = ev.contact and ev.contact.name or "+" .. tostring(ctx.from)
      line("> " .. tostring(who) .. ": " .. sandbox.describe_inbound(ev.raw))
    elseif ctx.kind == "status" then
      line("  " .. tostring(ctx.type) .. ": " .. tostring(ctx.id))
    end
    return nxt()
  end)
  local send = client.send
  client.send = function(c, msg, o)
    local res, err = send(c, msg, o)
    if type(msg) == "table" and msg.type and msg.status == nil then
      line("< bot: " .. sandbox.describe(msg) .. (res and "" or ("  (failed: " .. tostring(err and err.code) .. ")")))
    end
    return res, err
  end
  ex.setup(bot)
  local host = os.getenv("WA_HOST") or "0.0.0.0"
  local port = tonumber(os.getenv("WA_PORT") or "8080")
  if not port then die("WA_PORT must be a port number", 2) end
  local srv, err = bot:listen{ host = host, port = port, path = "/webhook" }
  if not srv then die("cannot listen: " .. tostring(err)) end
  say("lua-whatsapp: bot \"", ex.name, "\" on the Cloud API, phone number id ", env.WA_PHONE_NUMBER_ID)
  say("Listening on http://", host, ":", srv:port(), "/webhook")
  say("In the App Dashboard (WhatsApp > Configuration), set the callback URL to https://<your public host>/webhook")
  say("(a tunnel or reverse proxy to this port) and the verify token to the value of WA_VERIFY_TOKEN.")
  say("Ctrl-C stops.")
  say("")
  local how = loop.run()
  bot:close()
  say("stopped (", how, ")")
end

local name = arg and arg[1] or os.getenv("WA_BOT") or "menu"
if name == "-h" or name == "--help" then
  say("usage: lua5.4 examples/run.lua [BOT]   (bots: examples/bots/*.lua; default menu)")
  os.exit(0)
end
local ex = load_example(name)
local env, set, missing = {}, 0, {}
for _, k in ipairs(ENV) do
  local v = os.getenv(k)
  if v and v ~= "" then env[k] = v; set = set + 1 else missing[#missing + 1] = k end
end
if set == #ENV then
  run_cloud(ex, env)
elseif set > 0 then
  die("for the Cloud API set all of " .. table.concat(ENV, ", ") .. "; missing: " .. table.concat(missing, ", "), 2)
else
  run_sandbox(ex)
end
