#!/bin/bash
# policy.sh - policy calls in worker processes against policies inside
# the agent, in the same run: for each of [policy] isolation = process and
# inprocess (and, with BASE=DIR, the xtcmkd of another build, e.g. the
# tree before policy workers), start a throw-away agent (default
# policies, policy_workers 2), register a workload and a customer and run
# bench_policy: uncached decision (role + versioning policies) p50/p99,
# cached DECIDE p50/p99, onboarding adds/s.  The modes alternate ROUNDS
# times (default 2) so a noisy host weighs on each alike.
#
#	bench/policy.sh [BUILDDIR] [CALLS] [ADDS]
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
calls=${2:-2000}
adds=${3:-200}
rounds=${ROUNDS:-2}

for b in agent/xtcmkd agent/policyworker/xtcmk-policyd bench/bench_policy; do
	if [ ! -x "$build/$b" ]; then
		echo "policy.sh: $build/$b is missing: build first" >&2
		exit 1
	fi
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-bench-policy-XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# run MODE ROUND: one agent, one bench_policy line.
run() {
	local mode=$1 round=$2 bin=$build/agent/xtcmkd st=$dir/$1-$2
	mkdir -p "$st"
	{
		echo "[agent]"
		echo "socket = $st/s.sock"
		echo "state_dir = $st/state"
		echo "policy_dir = $src/policies/default"
		echo "lua_dir = $src/lua"
		echo "workload = wl-eu-1"
		echo "policy_workers = 2"
		if [ "$mode" != base ]; then
			echo "[policy]"
			echo "isolation = $mode"
		fi
	} > "$st/c.conf"
	[ "$mode" = base ] && bin=$BASE/agent/xtcmkd
	"$bin" -c "$st/c.conf" 2> "$st/log" &
	pid=$!
	for _ in $(seq 100); do [ -S "$st/s.sock" ] && break; sleep 0.1; done
	"$build/ctl/xtcmkctl" -s "$st/s.sock" -c "$st/c.conf" workload add \
	    wl-eu-1 --client-id 10000000-0000-4000-8000-000000000001 \
	    --principal-id 20000000-0000-4000-8000-000000000001 \
	    --label region=eu > /dev/null
	"$build/ctl/xtcmkctl" -s "$st/s.sock" -c "$st/c.conf" customer add \
	    b1 --tenant 00000000-0000-4000-8000-000000000001 \
	    --key-uri https://kv-1.vault.local/keys/cmk --label region=eu \
	    > /dev/null
	printf '%-10s round %d: ' "$mode" "$round"
	"$build/bench/bench_policy" -s "$st/s.sock" -c b1 -n "$calls" \
	    -a "$adds" -p "$mode"
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
}

modes="inprocess process"
[ -n "${BASE:-}" ] && modes="base $modes"
for r in $(seq "$rounds"); do
	for m in $modes; do
		run "$m" "$r"
	done
done
