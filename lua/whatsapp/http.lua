--- HTTP client: libcurl in C, driven by the loop; yields in a task, blocks in a
-- plain script.
--
--     local http = require "whatsapp.http"
--     local res, err = http.request{
--       method = "POST", url = "https://graph.facebook.com/v23.0/123/messages",
--       headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" },
--       body = json, timeout = 30,
--     }
--     if not res then print(err.code, err.message) end   -- "timeout", "connect", ...
--     print(res.status, res.headers["content-type"], res.body)
--
-- A request table: `url` (required), `method` (default GET, or POST with a
-- body), `headers` (a map, or "Name: value" strings), `body` (string) or
-- `multipart` (a list of `{ name =, data = | file =, filename =, type = }`),
-- `download` (a path: the body streams there and `res.sha256` is its digest),
-- `timeout` and `connect_timeout` (seconds), `max_size` (bytes).
--
-- A response: `status`, `headers` (names in lower case; lookups in any case),
-- `body` (or `file` and `sha256` for a download), `size`, `http_version`.
--
-- A failure: `nil, err`, an error object (`whatsapp.errors`) with `code` one
-- of "timeout", "connect", "resolve", "tls", "too_large", "aborted",
-- "connection", "io", "url", "transport", `category = "transport"` and
-- `retry = true` where trying again may help. Its message is libcurl's (it
-- names the host, never a request header).
--
-- The transport seam: `http.set_backend(b)` makes `http.request` call
-- `b.request(req)` instead (the OpenResty host plugs its cosocket client in
-- here); sessions made with `http.session` always use libcurl.
-- @module whatsapp.http
local loop = require "whatsapp.loop"
local errors = require "whatsapp.errors"

local http = {}

local setmetatable, type, require = setmetatable, type, require
local base = loop.core

-- The libcurl transport is the C module whatsapp.core.http, loaded on first use: libcurl
-- maps some thirty libraries into the process, which one that only listens (or only
-- uses another backend) does without.
local native
local function curl()
  if not native then native = require "whatsapp.core.http" end
  return native
end

local RETRY = { timeout = true, connect = true, connection = true, resolve = false }
local WEAK = { __mode = "k" }

local function transport_error(code, message)
  return errors.new{
    code = code, message = message, category = "transport", retry = RETRY[code] or false,
  }
end
http.error = transport_error

local Session = {}
Session.__index = Session
Session.__name = "whatsapp.http.Session"

--- A session: one libcurl multi handle and its caches (connections, DNS,
-- TLS sessions).
-- @tparam[opt] table opts `ca_file`, `ca_path`, `verify` (default true),
--   `user_agent`, `timeout`, `connect_timeout` (defaults for requests),
--   `max_host_connections`, `max_connections`
-- @return the session
function http.session(opts)
  if opts ~= nil and type(opts) ~= "table" then error("http.session: table expected", 2) end
  -- waiting: token (the waiting coroutine or function) -> transfer id, for cancel
  return setmetatable({ core = curl().session(base, opts), waiting = setmetatable({}, WEAK) }, Session)
end

--- Send a request (see the module comment) and wait for its response.
-- @tparam table req
-- @return response, or nil and an error object
function Session:request(req)
  if type(req) ~= "table" then error("request: table expected", 2) end
  local s, waiting = self.core, self.waiting
  local mine
  local res, code, message = loop.await(function(token)
    local id, c, m = s:submit(req, token)
    if not id then return false, c, m end
    mine = token
    waiting[token] = id
    return true
  end)
  if mine ~= nil then waiting[mine] = nil end
  if res then return res end
  return nil, transport_error(code, message)
end

--- Cancel the request `task` is waiting for in this session: it returns `nil, err`
-- with code "aborted" (on the next loop turn). Returns true if there was one.
-- @param task a task from `loop.spawn`
-- @treturn boolean
function Session:cancel(task)
  if self.closed then return false end
  local id = task and task.co and self.waiting[task.co]
  if not id then return false end
  return self.core:cancel(id)
end

--- Number of transfers in flight.
function Session:inflight()
  return self.core:inflight()
end

--- Abort every transfer in flight (each ends with "aborted") and free the
-- session. Safe to call twice.
function Session:close()
  self.closed = true
  self.core:close()
end
Session.__close = Session.close

local default_session
local backend

--- The process's shared session (made on first use).
function http.default()
  if not default_session then default_session = http.session() end
  return default_session
end

--- Send a request through the backend in use (libcurl unless one was set).
-- @tparam table req
-- @return response, or nil and an error object
function http.request(req)
  if backend then return backend.request(req) end
  return http.default():request(req)
end

--- Cancel the request `task` is waiting for in the shared session (see Session:cancel).
function http.cancel(task)
  return default_session ~= nil and default_session:cancel(task) or false
end

--- Plug another transport in (a table with `request(req)` returning a
-- response or nil, err); `nil` goes back to libcurl.
function http.set_backend(b)
  if b ~= nil and (type(b) ~= "table" or type(b.request) ~= "function") then
    error("http.set_backend: a table with a request function expected", 2)
  end
  backend = b
end

--- libcurl's version line (loads libcurl).
function http.curl_version()
  return curl().curl_version()
end

return http
