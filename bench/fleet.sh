#!/usr/bin/env bash
# fleet.sh - the fleet registry's costs (xtcmk-fleet(7)), on a real
# 3-member etcd cluster and real agents on loopback, in one run:
#
#	bench/fleet.sh [BUILDDIR] [CUSTOMERS] [SAMPLES]
#
# 1. Propagation: `customer add` on agent A, then `decide` polled on agent
#    C until it answers; p50/p99 from the start of the add and from its
#    acknowledgement (SAMPLES customers, default 100; target p99 <= 1 s).
# 2. Onboarding throughput: CUSTOMERS (default 600) added by 3 admins at
#    once, through 3 agents on etcd, then through 1 agent on SQLite
#    (target etcd >= 0.5x SQLite).
# 3. Decision lookup (bench_decide) on an etcd-backed agent and on a
#    SQLite-backed one holding the same registry (target <= 1.1x).
set -u
S=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$S/build}" && pwd)
N=${2:-600}
SAMPLES=${3:-100}
T=$(mktemp -d /tmp/xtcmk-fleetbench.XXXXXX)
. "$S/tests/fleet_lib.sh"
cleanup() { agents_stop_all; etcd_stop_all; rm -rf "$T"; }
trap cleanup EXIT
PER_APP=50
AGENT_WORKLOAD=wl-eu-1
REGIONS=(eu us ap)
ms() { date +%s%3N; }

etcd_start 3 || exit 1
for a in 1 2 3; do agent_start "$a" || exit 1; done
for r in "${REGIONS[@]}"; do add_workloads 1 "$r" 3 || exit 1; done
converge 1 2 3

# --- 1. propagation A -> C -------------------------------------------------
: >"$T/prop"
for i in $(seq 1 "$SAMPLES"); do
	r=${REGIONS[$((i % 3))]}
	t0=$(ms)
	ctl 1 customer add "p$i" --tenant "$(ISV_GUID 8 "$i")" \
		--key-uri "https://cust-$r.vault.local/keys/k" --label "region=$r" \
		>/dev/null || { echo "add p$i failed"; exit 1; }
	t1=$(ms)
	until ctl 3 decide "p$i" >/dev/null 2>&1; do
		[ $(($(ms) - t0)) -gt 10000 ] && { echo "p$i never reached agent 3"; exit 1; }
	done
	t2=$(ms)
	echo "$((t2 - t0)) $((t2 - t1))" >>"$T/prop"
done
pct() {	# pct COLUMN P
	cut -d' ' -f"$1" "$T/prop" | sort -n | awk -v p="$2" \
		'{v[NR]=$1} END {i=int(NR*p/100+0.999); if (i<1) i=1; print v[i]}'
}
echo "propagation A -> C over $SAMPLES customers (ms):"
echo "  from the start of the add:  p50 $(pct 1 50)  p99 $(pct 1 99)"
echo "  from its acknowledgement:   p50 $(pct 2 50)  p99 $(pct 2 99)"
echo "  (each poll of agent C is one xtcmkctl process, ~5-10 ms)"

# --- 2. onboarding throughput ------------------------------------------------
run_admins() {	# run_admins AGENT... : 3 admins, N customers, prefix q$1
	local bg= k=0 a
	for a in "$@"; do
		k=$((k + 1))
		onboard "$a" $((1000000 * ${TAG} + k)) 3 $((1000000 * ${TAG} + N)) \
			"${REGIONS[@]}" &
		bg="$bg $!"
	done
	wait $bg
}
rm -f "$T"/acked.* "$T"/refused.*
TAG=1
t0=$(ms)
run_admins 1 2 3
t1=$(ms)
etcd_ms=$((t1 - t0))
etcd_n=$(cat "$T"/acked.* | wc -l)
etcd_rate=$(echo "scale=1; $etcd_n * 1000 / ($t1 - $t0)" | bc)
races=0
for a in 1 2 3; do
	n=$(fleet_field "$a" counters.retries)
	races=$((races + ${n//[!0-9]/}))
done

agent_start 4 sqlite
for r in "${REGIONS[@]}"; do add_workloads 4 "$r" 3 || exit 1; done
rm -f "$T"/acked.* "$T"/refused.*
TAG=2
t0=$(ms)
run_admins 4 4 4
t1=$(ms)
sql_n=$(cat "$T"/acked.* | wc -l)
sql_rate=$(echo "scale=1; $sql_n * 1000 / ($t1 - $t0)" | bc)
echo "onboarding, 3 admins at once, $N customers:"
echo "  3 agents on etcd:  $etcd_n in $etcd_ms ms, $etcd_rate/s ($races re-decisions)"
echo "  1 agent on SQLite: $sql_n in $((t1 - t0)) ms, $sql_rate/s"
echo "  etcd / SQLite: $(echo "scale=2; $etcd_rate / $sql_rate" | bc)x (target >= 0.5x)"

# --- 3. decision lookup --------------------------------------------------------------
# The same registry on both sides: agent 3's mirror, exported into a
# fresh SQLite agent.
converge 1 2 3
agent_start 5 sqlite
ctl 3 registry export | ctl 5 registry import >/dev/null || { echo "import failed"; exit 1; }
c=p7
# bench_decide measures the fast path (decisions from the agent's
# memory-mapped file) and the socket; both read only the local registry.
for a in 3 5; do
	"$B/bench/bench_decide" -s "$T/a$a/s.sock" -c "$c" -n 20000 -r 5 \
		--json >"$T/decide.$a" ||
		{ echo "bench_decide on agent $a failed"; exit 1; }
done
python3 - "$T" <<'EOF2'
import json, sys
t = sys.argv[1]
e = json.load(open("%s/decide.3" % t))
s = json.load(open("%s/decide.5" % t))
print("decision lookup (bench_decide, 20000 calls, median of 5, 2 threads):")
for k, name in (("decide", "fast path"), ("decide_socket", "socket")):
    a, b = e[k], s[k]
    print("  %-9s etcd-backed   p50 %6.2f us  p99 %6.2f us  %9.0f/s" % (name, a["p50_us"], a["p99_us"], a["ops_t"]))
    print("  %-9s SQLite-backed p50 %6.2f us  p99 %6.2f us  %9.0f/s" % (name, b["p50_us"], b["p99_us"], b["ops_t"]))
    print("  %-9s etcd / SQLite: p50 %.2fx, time per call at 2 threads %.2fx (target <= 1.1x)" % (name, a["p50_us"] / b["p50_us"], b["ops_t"] / a["ops_t"]))
EOF2
