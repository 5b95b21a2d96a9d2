#!/bin/sh
# Install the Debian packages lua-whatsapp needs to build, test and benchmark,
# when any is missing.  Needs root (or sudo) the first time; afterwards it only
# checks.  Used by `make deps` and `make run`; `make test` runs it with "test",
# which adds the browser test's parts: Debian's Chromium and an emoji font, and
# playwright-core from npm (the exact version in spec/browser/package-lock.json).
set -eu
MODE=${1:-}

PKGS="
build-essential clang pkg-config make
lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
lua-cjson libsimdjson-dev libssl-dev
libcurl4-openssl-dev libevent-dev
luarocks lua-busted lua-check lua-yaml lua-luaossl
nginx-light libnginx-mod-http-lua
valgrind libclang-rt-14-dev curl time nodejs wrk openssl
"
if [ "$MODE" = test ]; then
	PKGS="$PKGS chromium fonts-noto-color-emoji"
fi

# playwright-core for the browser test, installed from the lock file (no browser download:
# the test drives /usr/bin/chromium).
browser_modules() {
	[ "$MODE" = test ] || return 0
	dir="$(dirname "$0")/../spec/browser"
	[ -d "$dir/node_modules/playwright-core" ] && return 0
	if ! command -v npm >/dev/null 2>&1; then
		echo "deps: npm is missing (it comes with Node.js 20 or later)" >&2
		exit 1
	fi
	echo "deps: npm ci in spec/browser"
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent --prefix "$dir" >/dev/null
}

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	browser_modules
	exit 0
fi

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps: missing packages:$missing; run this as root" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts nginx on install; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop nginx >/dev/null 2>&1 || true; fi
$SUDO service nginx stop >/dev/null 2>&1 || true
browser_modules
echo "deps: done"
