#!/bin/sh
# Install the rock offline into a fresh tree, for Lua 5.4 and for LuaJIT
# (Lua 5.1 ABI), and prove the installed modules work from there, away from
# the source tree.
set -eu
root=$(pwd)
spec="$root/rockspec/lua-whatsapp-scm-1.rockspec"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check='
local webhook = require "whatsapp.webhook"
local core = require "whatsapp.core"
assert(package.searchpath("whatsapp.core", package.cpath):find(TREE, 1, true), "core not from the tree")
assert(package.searchpath("whatsapp.core.http", package.cpath):find(TREE, 1, true), "core.http not from the tree")
local f = assert(io.open(FIXTURE, "rb")); local body = f:read("*a"); f:close()
local hook = webhook.new{ app_secret = "s" }
local evs = assert(hook:parse(body, { ["X-Hub-Signature-256"] = webhook.sign(body, "s") }))
assert(#evs == 1 and evs[1].text == "Does it come in another color?", "unexpected events")
local _, err = hook:parse(body, { ["X-Hub-Signature-256"] = webhook.sign(body, "t") })
assert(err.status == 401)
-- the runtime from the tree: own listener, own transport, one round trip
local loop, http, server = require "whatsapp.loop", require "whatsapp.http", require "whatsapp.server"
local srv = assert(server.listen{ port = 0, handler = function(req) return 200, nil, "pong " .. req.body end })
assert(package.loaded["whatsapp.core.http"] == nil, "libcurl loaded before the first request")
local res = assert(http.request{ url = "http://127.0.0.1:" .. srv:port() .. "/", body = "ping" })
assert(res.status == 200 and res.body == "pong ping", "runtime round trip failed")
srv:close()
assert(loop.run() == "done")
print("rock ok: " .. core._LUA .. " " .. core._VERSION .. " from " .. TREE)
'

run() {
	luaver=$1 interp=$2
	shift 2
	tree="$tmp/tree-$luaver"
	# Build from a copy so nothing is written into the checkout.
	rm -rf "$tmp/src" && mkdir "$tmp/src"
	(cd "$root" && git ls-files -z --cached --others --exclude-standard csrc lua rockspec | xargs -0 -I{} cp --parents {} "$tmp/src/")
	(cd "$tmp/src" && luarocks --lua-version="$luaver" --tree="$tree" make --deps-mode=none \
		"rockspec/lua-whatsapp-scm-1.rockspec" "$@" >"$tmp/build-$luaver.log" 2>&1) ||
		{ cat "$tmp/build-$luaver.log"; exit 1; }
	lpath=$(luarocks --lua-version="$luaver" --tree="$tree" path --lr-path)
	cpath=$(luarocks --lua-version="$luaver" --tree="$tree" path --lr-cpath)
	(cd "$tmp" && LUA_PATH="$lpath;;" LUA_CPATH="$cpath;;" "$interp" -e \
		"TREE='$tree' FIXTURE='$root/spec/fixtures/webhooks/messages_text_basic.json'" -e "$check")
}

[ -f "$spec" ]
run 5.4 lua5.4
run 5.1 luajit LUA_INCDIR=/usr/include/luajit-2.1
