--- OpenResty / nginx-lua host adapter: receive WhatsApp webhooks inside nginx.
--
-- One call in a `content_by_lua_block` answers both sides of the webhook:
-- the `GET` verification handshake (`hub.mode`, `hub.verify_token`, `hub.challenge`) and the
-- signed `POST` deliveries. The body is read exactly as nginx received it (from memory, or from
-- the temporary file nginx spooled it to), checked and parsed by `hook:parse`, answered, and only
-- then handed to the bot's callback, so Meta gets its `200` without waiting for handlers.
--
--     location = /webhook {
--         client_max_body_size 3m;
--         content_by_lua_block {
--             local bot = require "mybot"          -- builds the hook once per worker
--             require("whatsapp.openresty").serve(bot.hook, bot.on_events)
--         }
--     }
--
-- This module touches the `ngx` API only inside its functions, so requiring it outside nginx
-- (documentation tools, module listings) does not fail; calling it there does.
--
-- @module whatsapp.openresty

local M = {}

--- The short plain-text bodies sent with each status. Fixed strings on purpose: nothing from the
-- request, the hook or its error objects is echoed back to the caller.
local REASONS = {
  [200] = "ok",
  [400] = "bad request",
  [401] = "invalid signature",
  [403] = "forbidden",
  [405] = "method not allowed",
  [413] = "payload too large",
  [500] = "internal server error",
}

local PREFIX = "whatsapp.openresty: "

-- Send a complete plain-text response. Content-Length is set so that the client sees the end of
-- the response at once, even when the handler keeps running after `ngx.eof()`.
local function respond(status, body, extra)
  ngx.status = status
  ngx.header["Content-Type"] = "text/plain; charset=utf-8"
  ngx.header["Content-Length"] = #body
  ngx.header["Cache-Control"] = "no-store"
  if extra then
    for k, v in pairs(extra) do ngx.header[k] = v end
  end
  ngx.print(body)
  return status
end

local function reject(status, extra)
  return respond(status, (REASONS[status] or "error") .. "\n", extra)
end

-- The body limit the adapter enforces before reading: opts.max_body, else the hook's own
-- `max_body` when it exposes one as a number. nil means "no early check" (the hook still checks).
local function body_limit(hook, opts)
  if opts.max_body ~= nil then return opts.max_body end
  local ok, v = pcall(function() return hook.max_body end)
  if ok and type(v) == "number" then return v end
  return nil
end

-- Read a whole file in binary mode; returns its bytes or nil, message.
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data, rerr = f:read("*a")
  f:close()
  if not data then return nil, rerr or "read failed" end
  return data
end

--- Read the request body as raw bytes.
--
-- syntax: `body, status, message = openresty.read_body(max_body)`
--
-- Checks `Content-Length` against `max_body` first (when both are known) and then reads the body
-- with `ngx.req.read_body()`, from memory or, when nginx spooled it to a temporary file
-- (`client_body_buffer_size` exceeded), from that file in binary mode. A request without a body
-- gives `""`. Bodies over `client_max_body_size` never get here: nginx answers them `413` itself.
-- @tparam[opt] number max_body largest body accepted, in bytes
-- @treturn string|nil the body, or nil on failure
-- @treturn[2] number the HTTP status to answer: 413 (too large) or 500 (temporary file unreadable)
-- @treturn[2] string what went wrong, for the log
function M.read_body(max_body)
  if max_body then
    local declared = tonumber(ngx.var.http_content_length)
    if declared and declared > max_body then
      -- Drop what the client still sends, so a keep-alive connection stays usable.
      ngx.req.discard_body()
      return nil, 413, "Content-Length " .. declared .. " exceeds max_body " .. max_body
    end
  end
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data then return data end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local body, err = read_file(path)
  if not body then
    return nil, 500, "cannot read spooled request body: " .. tostring(err)
  end
  return body
end

-- Run the callback in protected mode; a failure is logged with its traceback and goes no further.
local function run_callback(on_events, events)
  local ok, err = xpcall(function() return on_events(events) end, debug.traceback)
  if not ok then
    ngx.log(ngx.ERR, PREFIX, "on_events failed: ", tostring(err))
  end
end

-- Hand the events over once the 200 has been sent. "timer" runs them in a zero-delay timer
-- (detached from the request); "eof" finishes the response with ngx.eof() and runs them in the
-- request's own handler. When no timer can be created (lua_max_pending_timers reached) the events
-- are not dropped: they fall back to the "eof" way.
local function dispatch(on_events, events, defer)
  if defer == "timer" then
    local ok, err = ngx.timer.at(0, function() run_callback(on_events, events) end)
    if ok then return end
    ngx.log(ngx.WARN, PREFIX, "cannot create timer (", tostring(err), "); running on_events in the request")
  end
  ngx.eof()
  run_callback(on_events, events)
end

local function check_args(hook, on_events, opts)
  local th = type(hook)
  if th ~= "table" and th ~= "userdata" then
    error("bad argument #1 to 'serve' (webhook hook expected, got " .. th .. ")", 3)
  end
  if on_events ~= nil and type(on_events) ~= "function" then
    error("bad argument #2 to 'serve' (function or nil expected, got " .. type(on_events) .. ")", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'serve' (table or nil expected, got " .. type(opts) .. ")", 3)
  end
  opts = opts or {}
  if opts.defer ~= nil and opts.defer ~= "eof" and opts.defer ~= "timer" then
    error("bad option 'defer' to 'serve' (\"eof\" or \"timer\" expected)", 3)
  end
  if opts.max_body ~= nil and type(opts.max_body) ~= "number" then
    error("bad option 'max_body' to 'serve' (number expected)", 3)
  end
  return opts
end

--- Answer one webhook request; call it from `content_by_lua_block`.
--
-- syntax: `status = openresty.serve(hook, on_events, opts)`
--
-- * `GET`: the verification handshake. The query arguments go to `hook:verify`; a `200` answers
--   the challenge verbatim as `text/plain`, anything else answers the status it returned (`403`, or
--   `400` when the challenge is missing) with a short fixed body.
-- * `POST`: an early `413` when `Content-Length` exceeds the body limit, then the raw body and the
--   request headers (as `ngx.req.get_headers()` gives them: lower-case names, a table for a
--   repeated header) go to `hook:parse`. A rejection answers `err.status` (`401`, `400`, `413`)
--   with a short fixed body and logs `tostring(err)`; success answers `200` and then calls
--   `on_events(events)` after the response has been sent. An error raised by `on_events` is
--   logged at `ngx.ERR` with its traceback; the client has its `200` already.
-- * any other method: `405` with `Allow: GET, POST`.
--
-- No response body ever contains the app secret, the verify token or the request's contents.
-- @param hook a webhook object from `whatsapp.webhook.new` (anything with `verify` and `parse`)
-- @tparam[opt] function on_events called as `on_events(events)` with the array of events of each
--   accepted delivery (possibly empty); nil to only acknowledge
-- @tparam[opt] table opts options:
--
--   * `defer`: `"eof"` (default: `ngx.eof()`, then the callback runs in the request's handler,
--     with cosockets available) or `"timer"` (a zero-delay `ngx.timer.at`, detached from the request)
--   * `max_body`: limit for the early `Content-Length` check, in bytes (default: `hook.max_body` when
--     the hook exposes it); `hook:parse` enforces its own limit regardless
--   * `log_level`: level for rejected requests (default `ngx.WARN`)
-- @treturn number the HTTP status sent
-- @raise when `hook`, `on_events` or `opts` have the wrong type
function M.serve(hook, on_events, opts)
  opts = check_args(hook, on_events, opts)
  local log_level = opts.log_level or ngx.WARN
  local method = ngx.req.get_method()

  if method == "GET" then
    local args = ngx.req.get_uri_args()
    local status, value = hook:verify(args)
    if status == 200 then
      return respond(200, tostring(value))
    end
    ngx.log(log_level, PREFIX, "verification refused (", tostring(status), "): ", tostring(value))
    return reject(REASONS[status] and status or 403)
  end

  if method ~= "POST" then
    return reject(405, { ["Allow"] = "GET, POST" })
  end

  local body, status, why = M.read_body(body_limit(hook, opts))
  if not body then
    ngx.log(status == 500 and ngx.ERR or log_level, PREFIX, "request refused (", status, "): ", why)
    return reject(status)
  end

  local headers = ngx.req.get_headers()
  local ok, events, err = pcall(hook.parse, hook, body, headers)
  if not ok then
    -- A bug, not a bad request: log it in full, tell the client nothing about it.
    ngx.log(ngx.ERR, PREFIX, "hook:parse raised: ", tostring(events))
    return reject(500)
  end
  if not events then
    local code = type(err) == "table" and tonumber(err.status) or 400
    if not REASONS[code] then code = 400 end
    ngx.log(log_level, PREFIX, "delivery refused (", code, "): ", tostring(err))
    return reject(code)
  end

  respond(200, REASONS[200] .. "\n")
  if on_events then dispatch(on_events, events, opts.defer or "eof") end
  return 200
end

--- Build a handler function bound to a hook, for configurations that prefer a closure.
--
-- syntax: `handler = openresty.handler(hook, on_events, opts)`, then `handler()` in
-- `content_by_lua_block`.
-- @param hook a webhook object, as for `serve`
-- @tparam[opt] function on_events as for `serve`
-- @tparam[opt] table opts as for `serve`
-- @treturn function a function of no arguments that calls `serve(hook, on_events, opts)`
-- @raise when the arguments have the wrong type
function M.handler(hook, on_events, opts)
  opts = check_args(hook, on_events, opts)
  return function() return M.serve(hook, on_events, opts) end
end

return M
