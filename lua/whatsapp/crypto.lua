--- HMAC-SHA256 helpers backed by OpenSSL (through `whatsapp.core`).
-- @module whatsapp.crypto
local core = require "whatsapp.core"

local crypto = {}

--- HMAC-SHA256 of `msg` keyed with `key`, as 64 lowercase hex digits.
-- Raises when an argument is not a string.
-- @function hmac_sha256
-- @tparam string key
-- @tparam string msg
-- @treturn string
crypto.hmac_sha256 = core.hmac_sha256

--- The Graph API's `appsecret_proof`: hex HMAC-SHA256 of the access token keyed
-- with the app secret.
-- @function appsecret_proof
-- @tparam string access_token
-- @tparam string app_secret
-- @treturn string
crypto.appsecret_proof = core.appsecret_proof

--- Constant-time equality of two strings (the length is not treated as secret).
-- @function equal
-- @tparam string a
-- @tparam string b
-- @treturn boolean
crypto.equal = core.equal

return crypto
