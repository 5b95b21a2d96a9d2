--- lua-whatsapp: the WhatsApp Cloud API for Lua, with a C core.
--
--     local whatsapp = require "whatsapp"
--     local hook = whatsapp.webhook.new{ app_secret = "...", verify_token = "..." }
--
-- Submodules load on first use: `whatsapp.webhook`, `whatsapp.crypto`,
-- `whatsapp.errors`, `whatsapp.openresty`.
-- @module whatsapp
local whatsapp = {
  _VERSION = "0.1.0",
}

local submodules = {
  webhook = true, crypto = true, errors = true, openresty = true,
  loop = true, http = true, server = true,
}

return setmetatable(whatsapp, {
  __index = function(t, k)
    if submodules[k] then
      local m = require("whatsapp." .. k)
      rawset(t, k, m)
      return m
    end
    return nil
  end,
})
