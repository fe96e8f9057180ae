#!/usr/bin/env bash
# fleet_import.sh - `xtcmkctl customer import` throughput on the fleet
# registry (xtcmk-fleet(7)): a real 3-member etcd cluster on loopback,
#
#	bench/fleet_import.sh [BUILDDIR] [CUSTOMERS]
#
# 1. one agent imports CUSTOMERS (default 1000) in requests of 500;
# 2. three agents import CUSTOMERS each at once, into the same regions.
# Prints customers/s and the etcd transactions the imports took (the
# agents' import_txns / txns counters).  Run two build dirs one after
# the other to compare them.
set -u
S=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$S/build}" && pwd)
N=${2:-1000}
T=$(mktemp -d /tmp/xtcmk-fleetimpbench.XXXXXX)
. "$S/tests/fleet_lib.sh"
cleanup() { agents_stop_all; etcd_stop_all; rm -rf "$T"; }
trap cleanup EXIT
PER_APP=50
AGENT_WORKLOAD=wl-eu-1
REGIONS=(eu us ap)
ms() { date +%s%3N; }
customers() {	# customers FROM TO PREFIX
	local i r
	for i in $(seq "$1" "$2"); do
		r=${REGIONS[$((i % 3))]}
		printf '{"id": "%s%d", "tenant": "%s", "key_uri": "https://cust-%s.vault.local/keys/k", "labels": {"region": "%s"}}\n' \
			"$3" "$i" "$(ISV_GUID 3 "$i")" "$r" "$r"
	done
}
txns() { local a n=0; for a in "$@"; do n=$((n + $(fleet_field "$a" counters.txns))); done; echo $n; }

etcd_start 3 || exit 1
for a in 1 2 3; do agent_start "$a" || exit 1; done
for r in "${REGIONS[@]}"; do add_workloads 1 "$r" 3 || exit 1; done
converge 1 2 3
customers 1 "$N" a >"$T/a.jsonl"
for a in 1 2 3; do customers 1 "$N" "b$a" >"$T/b$a.jsonl"; done

x0=$(txns 1)
t0=$(ms)
ctl 1 customer import "$T/a.jsonl" --batch 500 >"$T/a.out" || { tail -3 "$T/a.out"; exit 1; }
t1=$(ms)
echo "one agent: $N customers in $((t1 - t0)) ms: $(echo "scale=1; $N * 1000 / ($t1 - $t0)" | bc)/s, $(( $(txns 1) - x0 )) etcd transactions"

x0=$(txns 1 2 3)
t0=$(ms)
bg=
for a in 1 2 3; do
	ctl "$a" customer import "$T/b$a.jsonl" --batch 500 >"$T/b$a.out" &
	bg="$bg $!"
done
wait $bg
t1=$(ms)
n=$(cat "$T"/b?.out | awk '$3 == "assigned"' | wc -l)
echo "three agents at once: $n of $((3 * N)) customers in $((t1 - t0)) ms: $(echo "scale=1; $n * 1000 / ($t1 - $t0)" | bc)/s, $(( $(txns 1 2 3) - x0 )) etcd transactions"
