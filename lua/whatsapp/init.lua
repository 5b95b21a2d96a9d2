--- lua-whatsapp: the WhatsApp Cloud API for Lua, with a C core.
--
--     local whatsapp = require "whatsapp"
--     local hook = whatsapp.webhook.new{ app_secret = "...", verify_token = "..." }
--
-- Submodules load on first use: `whatsapp.webhook`, `whatsapp.crypto`,
-- `whatsapp.errors`, `whatsapp.openresty`, `whatsapp.loop`, `whatsapp.http`,
-- `whatsapp.server`, `whatsapp.client` (callable: `whatsapp.client{...}`),
-- `whatsapp.message`, `whatsapp.validate`, `whatsapp.rate`,
-- `whatsapp.templates`, `whatsapp.simulator`, `whatsapp.bot` (callable), `whatsapp.store`.
-- @module whatsapp
local whatsapp = {
  _VERSION = "0.1.0",
}

local submodules = {
  webhook = true, crypto = true, errors = true, openresty = true,
  loop = true, http = true, server = true,
  client = true, message = true, validate = true, rate = true, templates = true, simulator = true,
  bot = true, store = true, sandbox = true, testing = true,
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
