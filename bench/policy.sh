#!/bin/bash
# policy.sh - policy calls in worker processes against policies inside
# the agent, in the same run: for each of [policy] isolation = process and
# inprocess (and, with BASE=DIR, the xtcmkd of another build, e.g. the
# tree before policy workers), start a throw-away agent (default
# policies, policy_workers 2), register a workload and a customer and run
# bench_policy: uncached decision (role + versioning policies) p50/p99,
# cached DECIDE p50/p99, onboarding adds/s (one customer.add, one fsync,
# each), and onboarding through customer.import in batches of BATCH
# (default 100: one commit per batch, so the disk does not set the pace):
# customers/s and the CPU the agent and its policy workers spent per
# customer (/proc schedstat, nanoseconds).  The modes alternate ROUNDS
# times (default 3) so a noisy host weighs on each alike; the summary is
# each figure's median over the rounds and the ratio process/inprocess.
#
#	bench/policy.sh [BUILDDIR] [CALLS] [ADDS] [IMPORTS]
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
calls=${2:-2000}
adds=${3:-200}
imports=${4:-1000}
batch=${BATCH:-100}
rounds=${ROUNDS:-3}

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
	    -a "$adds" -p "$mode" -i "$imports" -b "$batch" -P "$pid" |
	    tee -a "$dir/$mode.jsonl"
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
}

modes="inprocess process"
[ -n "${BASE:-}" ] && modes="base $modes"
echo "# $(uptime)"
for r in $(seq "$rounds"); do
	# Alternate which mode goes first, so neither always follows the
	# other's page cache and CPU frequency.
	order=$modes
	[ $((r % 2)) = 0 ] && order=$(echo "$modes" | tr ' ' '\n' | tac | tr '\n' ' ')
	for m in $order; do
		run "$m" "$r"
	done
done
echo "# $(uptime)"

# Medians over the rounds, and process / inprocess.
median() {	# median MODE FIELD
	jq -s "map(.$2) | sort | .[length / 2 | floor]" "$dir/$1.jsonl"
}
printf '%-20s %12s %12s %8s\n' median inprocess process ratio
for f in uncached_p50_us uncached_p99_us cached_p50_us cached_p99_us \
    adds_per_s imports_per_s cpu_us_per_onboard; do
	a=$(median inprocess "$f") b=$(median process "$f")
	printf '%-20s %12s %12s %8s\n' "$f" "$a" "$b" \
	    "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a + 0 > 0) ? b / a : 0 }')"
done
