--- Test bot loaded by the nginx that spec/nginx_spec.lua starts (LuaJIT, inside nginx).
-- It builds the hooks once, in init_by_lua, and records every event handed to a callback as one
-- JSON line in a file the spec reads back. Not part of the library.
-- luacheck: read globals ngx
local cjson = require "cjson.safe"
local webhook = require "whatsapp.webhook"

local M = {}

local events_file

--- Build the hooks. `cfg.events_file`: where the JSON lines go.
function M.init(cfg)
  events_file = assert(cfg.events_file, "events_file required")
  local secret = assert(os.getenv("WA_APP_SECRET"), "WA_APP_SECRET is not set")
  local token = assert(os.getenv("WA_VERIFY_TOKEN"), "WA_VERIFY_TOKEN is not set")
  M.hook = webhook.new{ app_secret = secret, verify_token = token, max_body = 2 * 1024 * 1024 }
  M.small = webhook.new{ app_secret = secret, verify_token = token, max_body = 64 * 1024 }
end

-- The flat fields the spec asserts on; `raw` and other nested tables are left out.
local function record(tag, ev, index, count)
  return {
    tag = tag, index = index, count = count,
    kind = ev.kind, type = ev.type, id = ev.id, from = ev.from, text = ev.text,
    timestamp = ev.timestamp, phone_number_id = ev.phone_number_id,
    display_phone_number = ev.display_phone_number, waba_id = ev.waba_id,
    contact_name = type(ev.contact) == "table" and ev.contact.name or nil,
    contact_wa_id = type(ev.contact) == "table" and ev.contact.wa_id or nil,
    in_timer = ngx.get_phase() == "timer",
  }
end

--- A callback for `whatsapp.openresty.serve` that appends one line per event, tagged `tag`.
-- A message whose text is "raise please" makes it raise after writing, to test error logging.
function M.callback(tag)
  return function(events)
    local f = assert(io.open(events_file, "ab"))
    local raise = false
    for i, ev in ipairs(events) do
      f:write(assert(cjson.encode(record(tag, ev, i, #events))), "\n")
      if ev.text == "raise please" then raise = true end
    end
    f:close()
    if raise then error("boom from on_events") end
  end
end

return M
