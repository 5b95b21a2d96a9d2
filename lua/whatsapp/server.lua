--- The embedded HTTP listener (libevent's evhttp) for standalone bots.
--
--     local server = require "whatsapp.server"
--     local srv = assert(server.listen{
--       host = "127.0.0.1", port = 8080, health = "/health",
--       handler = function(req)
--         return 200, { ["Content-Type"] = "text/plain" }, "hello " .. req.path
--       end,
--     })
--     require("whatsapp.loop").run()   -- until SIGINT/SIGTERM, then gracefully
--
-- Each request runs its handler in a task of its own, so a handler may wait
-- (HTTP calls, sleeps) before it answers. The handler gets `req` with
-- `method`, `uri`, `path`, `query` (decoded table), `query_string`,
-- `headers` (lower-case names, lookups in any case), `body` and `peer`, and
-- answers by returning `status, headers, body`, or later with
-- `req:respond(status, headers, body)` (then it returns nothing). A handler
-- that raises gets 500 and the error is reported. Bodies over `max_body` get
-- 413 before any Lua runs.
-- @module whatsapp.server
local loop = require "whatsapp.loop"
local core = require "whatsapp.core"

local server = {}

local setmetatable, type, pcall, xpcall, tostring, rawset = setmetatable, type, pcall, xpcall, tostring, rawset
local traceback = debug.traceback
local spawn_detached = loop.spawn_detached
local base = loop.core

-- Methods of the request tables handlers get. C builds each table with this metatable
-- and `handle` already set; a request without a query string gets its (empty) `query`
-- table only if something reads it.
local Request = {}
local methods = {}
Request.__index = function(req, k)
  if k == "query" then
    local q = {}
    rawset(req, "query", q)
    return q
  end
  return methods[k]
end

--- Answer the request (once; later calls return false).
function methods:respond(status, headers, body)
  return self.handle:respond(status, headers, body)
end

--- True once the client has closed its connection.
function methods:gone()
  return self.handle:gone()
end

local function on_error(e)
  return traceback(tostring(e), 2)
end

local function run_handler(handler, req, h)
  local ok, status, headers, body = xpcall(handler, on_error, req)
  if not ok then
    loop.report("handler error: " .. tostring(status))
    if not h:answered() then h:respond(500, nil, "internal error\n") end
    return
  end
  if status ~= nil then
    -- respond() returns false, sending nothing, when the handler answered already (what it
    -- returned then does not matter, even if respond() would refuse it).
    local sent, err = pcall(h.respond, h, status, headers, body)
    if not sent and not h:answered() then
      loop.report("bad response from handler: " .. tostring(err))
      h:respond(500, nil, "internal error\n")
    end
  end
end

local Server = {}
Server.__index = Server
Server.__name = "whatsapp.server.Server"

--- Listen for HTTP requests.
-- @tparam table opts `handler` (required), `host` (default "127.0.0.1"),
--   `port` (0 or nil picks a free one), `max_body` (bytes, default 3 MiB +
--   4 KiB), `max_headers` (bytes, 64 KiB), `timeout` (idle seconds, 60),
--   `backlog`, `health` (a path answered `200 {"status":"ok"}` by C)
-- @return the server, or nil and a message when the address cannot be used
function server.listen(opts)
  if type(opts) ~= "table" or type(opts.handler) ~= "function" then
    error("server.listen: a table with a handler function expected", 2)
  end
  local handler = opts.handler
  local function on_request(req, h)
    spawn_detached(run_handler, handler, req, h)
  end
  local c, err = core.server(base, opts, on_request, Request)
  if not c then return nil, err end
  local srv = setmetatable({ core = c, host = opts.host or "127.0.0.1" }, Server)
  srv.unregister = loop.on_stop(function() srv:drain() end)
  return srv
end

--- The port listened on.
function Server:port()
  return self.core:port()
end

--- The base URL a client on this machine reaches the listener at, such as
-- "http://127.0.0.1:8080" (a wildcard address becomes its loopback; IPv6 is
-- bracketed).
-- @treturn string
function Server:url()
  local host = self.host
  if host == "0.0.0.0" or host == "" then host = "127.0.0.1" elseif host == "::" then host = "::1" end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return "http://" .. host .. ":" .. self:port()
end

--- Requests handed to handlers and not answered yet.
function Server:pending()
  return self.core:pending()
end

--- Stop accepting; requests in flight finish, new ones on open connections
-- get 503; the listener goes away when nothing is pending.
function Server:drain()
  return self.core:drain()
end

--- Close at once: requests still pending get 503. Safe twice.
function Server:close()
  if self.unregister then self.unregister(); self.unregister = nil end
  self.core:close()
end
Server.__close = Server.close

return server
