#!/usr/bin/env bash
# deps.sh - install the Debian packages xtcmk needs to build, test and run
# its demo (sourced by demo.sh and test.sh).  Installs only what is missing.
xtcmk_deps() {
	local pkgs="gcc pkg-config meson ninja-build liblua5.4-dev libjansson-dev
		libsqlite3-dev libssl-dev libcurl4-openssl-dev openssl mandoc
		sqlite3 valgrind bc clang libclang-rt-14-dev python3 curl $*"
	local missing=""
	for p in $pkgs; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	# The Azure emulator and the SDK fidelity test run on Node.js; keep
	# a node that is already installed (whatever its source).
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (run as root, or install them)" >&2
		return 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
