#!/bin/bash
# onboard.sh - onboarding cost against registry size: start a throw-away
# xtcmkd (default policies, customers_per_app = 50, the embedded
# registry), and run bench_onboard, which registers 150 workloads in 6
# regions, grows the registry with customer.import and measures the
# agent's CPU time per `customer add` at each size, then the registry's
# bytes per customer:
#
#	bench/onboard.sh [BUILDDIR] [SIZES] [SAMPLE]
#
# SIZES defaults to 1000,10000 and SAMPLE (adds timed per size) to 200.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
sizes=${2:-1000,10000}
sample=${3:-200}

for b in agent/xtcmkd ctl/xtcmkctl bench/bench_onboard; do
	if [ ! -x "$build/$b" ]; then
		echo "onboard.sh: $build/$b is missing: build first" >&2
		exit 1
	fi
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-bench-onboard-XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

cat > "$dir/xtcmk.conf" <<CONF
[agent]
socket = $dir/xtcmkd.sock
state_dir = $dir/state
policy_dir = $src/policies/default
lua_dir = $src/lua
log_level = warning
[params]
customers_per_app = 50
CONF
"$build/agent/xtcmkd" -c "$dir/xtcmk.conf" 2>>"$dir/agent.log" &
pid=$!
for _ in $(seq 1 200); do
	[ -S "$dir/xtcmkd.sock" ] && break
	sleep 0.05
done
"$build/bench/bench_onboard" -s "$dir/xtcmkd.sock" -p "$pid" \
    -r "$dir/state/registry.db" -n "$sizes" -m "$sample"
