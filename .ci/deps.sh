#!/bin/sh
# Install the Debian packages lua-whatsapp needs to build, test and benchmark,
# when any is missing.  Needs root (or sudo) the first time; afterwards it only
# checks.  Used by `make deps`, `make test` and `make run`.
set -eu

PKGS="
build-essential clang pkg-config make
lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
lua-cjson libyajl-dev libssl-dev
libcurl4-openssl-dev libevent-dev
luarocks lua-busted lua-check lua-yaml lua-luaossl
nginx-light libnginx-mod-http-lua
valgrind libclang-rt-14-dev curl time nodejs wrk openssl
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
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
echo "deps: done"
