-- luacheck configuration (luacheck -q lua spec bench examples)
std = "max"
max_line_length = 120
exclude_files = { "spec/fixtures/**", "build/**" }

files["spec/**"] = { std = "+busted" }
-- The OpenResty host adapter runs inside nginx, with the ngx API.
files["lua/whatsapp/openresty.lua"] = { std = "ngx_lua" }
files["examples/nginx/**"] = { std = "ngx_lua" }
files["spec/nginx/**"] = { std = "ngx_lua" }
