#!/bin/bash
# scale.sh - what onboarding and the admin lists cost as the registry
# grows.  For each size (default 1,000, 10,000 and 100,000 customers) a
# fresh agent (default policies, 150 workloads in 6 regions) is filled
# with one `xtcmkctl customer import`, then 1,000 more customers are
# onboarded twice over: by import (10 files of 100) and one `customer
# add` at a time (10 blocks of 100).  Per customer it reports the agent's
# CPU (`cpu_seconds` of `xtcmkctl status`) and the wall time, as medians
# of the 10 samples, and the ratio of the largest size to the smallest
# (1.0 means onboarding costs the same whatever the registry holds).  At
# the largest size also: the registry's bytes per customer (file and
# WAL), the agent's RSS, the time of the fill import, and the time of
# `customer list` over every row (median of 3).
#
#	bash bench/scale.sh BUILDDIR [SIZE ...]
#
# Needs the agent's customer.import; says so and stops without it.
set -u

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd) || exit 1
shift
sizes=${*:-1000 10000 100000}
for b in agent/xtcmkd ctl/xtcmkctl; do
	[ -x "$build/$b" ] || { echo "scale.sh: $build/$b is missing: build first" >&2; exit 1; }
done
command -v bc >/dev/null || { echo "scale.sh: needs bc" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-bench-scale-XXXXXX")
pid=
stop_agent() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=
	fi
}
trap 'stop_agent; rm -rf "$dir"' EXIT
C="$build/ctl/xtcmkctl -s $dir/s.sock"
REGIONS="westeurope northeurope eastus westus japaneast australiaeast"

now() { date +%s.%N; }
# The agent's CPU seconds so far, all its threads (finished ones too),
# to the microsecond: /proc's clock ticks (10 ms) were a third of a
# sample of 100 imported customers.
cpu() { $C -j status | sed -n 's/^ *"cpu_seconds": *\([0-9.e+-]*\).*/\1/p'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.9f\n", m }'; }
calc() { echo "scale=9; $*" | bc; }

start_agent() {
	rm -rf "$dir/state" "$dir/s.sock"
	mkdir -p "$dir/state"
	printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/policies/default\nlua_dir = %s/lua\nworkload = wl-westeurope-01\n' \
	    "$dir" "$dir" "$src" "$src" >"$dir/xtcmk.conf"
	"$build/agent/xtcmkd" -c "$dir/xtcmk.conf" >>"$dir/agent.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.1; done
	[ -S "$dir/s.sock" ] || { echo "scale.sh: the agent did not start:" >&2; cat "$dir/agent.log" >&2; exit 1; }
	local r=0 i n
	for region in $REGIONS; do
		r=$((r + 1))
		for i in $(seq 1 25); do
			n=$(printf 'wl-%s-%02d' "$region" "$i")
			$C workload add "$n" \
			    --client-id "$(printf '%08x-0000-4000-8000-%012x' 1 $((r * 100 + i)))" \
			    --principal-id "$(printf '%08x-0000-4000-8000-%012x' 2 $((r * 100 + i)))" \
			    --label region="$region" >/dev/null || exit 1
		done
	done
}

# customers PREFIX FIRST COUNT: JSON lines.
customers() {
	awk -v p="$1" -v first="$2" -v n="$3" -v regions="$REGIONS" 'BEGIN {
		split(regions, R, " ")
		for (i = first; i < first + n; i++)
			printf "{\"id\": \"%s-%07d\", \"tenant\": \"%08x-2222-4222-8222-%012x\", \"key_uri\": \"https://%s%07d.vault.azure.net/keys/cmk\", \"labels\": {\"region\": \"%s\"}}\n", p, i, i, i, p, i, R[(i % 6) + 1]
	}'
}

import() {	# import FILE: quiet, fails loudly
	if ! $C customer import "$1" >"$dir/import.out" 2>"$dir/import.err"; then
		if grep -q "does not have customer.import" "$dir/import.err"; then
			echo "scale.sh: this xtcmkd has no customer.import; build a tree with the agent side of bulk import" >&2
		else
			echo "scale.sh: customer import $1 failed:" >&2
			tail -3 "$dir/import.err" >&2
		fi
		exit 1
	fi
}

declare -A res
# Other work on the host moves every wall figure: show how much there was.
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-8s %14s %14s\n' "registry" "path" "CPU/customer" "wall/customer"
for size in $sizes; do
	start_agent
	customers fill 1 "$size" >"$dir/fill.jsonl"
	t0=$(now)
	import "$dir/fill.jsonl"
	fill_wall=$(calc "$(now) - $t0")

	# By import: 10 files of 100.
	: >"$dir/imp.cpu"; : >"$dir/imp.wall"
	for k in $(seq 0 9); do
		customers mimp $((k * 100 + 1)) 100 >"$dir/m.jsonl"
		c0=$(cpu); t0=$(now)
		import "$dir/m.jsonl"
		t1=$(now); c1=$(cpu)
		calc "($c1 - $c0) / 100" >>"$dir/imp.cpu"
		calc "($t1 - $t0) / 100" >>"$dir/imp.wall"
	done
	# One by one: 10 blocks of 100 `customer add`.
	: >"$dir/add.cpu"; : >"$dir/add.wall"
	customers madd 1 1000 | python3 -c '
import json, sys
for line in sys.stdin:
    c = json.loads(line)
    print(c["id"], c["tenant"], c["key_uri"], c["labels"]["region"])' >"$dir/add.txt"
	for k in $(seq 0 9); do
		c0=$(cpu); t0=$(now)
		sed -n "$((k * 100 + 1)),$((k * 100 + 100))p" "$dir/add.txt" |
		while read -r id tenant uri region; do
			$C customer add "$id" --tenant "$tenant" --key-uri "$uri" \
			    --label region="$region" >/dev/null || echo "add $id failed" >&2
		done
		t1=$(now); c1=$(cpu)
		calc "($c1 - $c0) / 100" >>"$dir/add.cpu"
		calc "($t1 - $t0) / 100" >>"$dir/add.wall"
	done
	for m in imp.cpu imp.wall add.cpu add.wall; do
		res[$size,$m]=$(median <"$dir/$m")
	done
	printf '%-9s %-8s %12.3f ms %12.3f ms\n' "$size" import \
	    "$(calc "${res[$size,imp.cpu]} * 1000")" "$(calc "${res[$size,imp.wall]} * 1000")"
	printf '%-9s %-8s %12.3f ms %12.3f ms\n' "$size" add \
	    "$(calc "${res[$size,add.cpu]} * 1000")" "$(calc "${res[$size,add.wall]} * 1000")"
	last=$size
	n=$((size + 2000))
	[ -z "${first:-}" ] && first=$size
	# What the largest registry costs to hold and to list.
	db=$(ls "$dir"/state/*.db | head -1)
	bytes=$(( $(stat -c %s "$db") + $(stat -c %s "$db-wal" 2>/dev/null || echo 0) ))
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
	: >"$dir/list.wall"
	for _ in 1 2 3; do
		t0=$(now)
		$C customer list >"$dir/list.out" || exit 1
		calc "$(now) - $t0" >>"$dir/list.wall"
	done
	rows=$(($(wc -l <"$dir/list.out") - 1))
	res[$size,extra]=$(printf '  %d customers: registry %d bytes (%.0f per customer), agent RSS %d KiB (peak %d KiB), fill import %.1f s (%.0f customers/s), customer list of %d rows %.2f s (median of 3)' \
	    "$n" "$bytes" "$(calc "$bytes / $n")" "$rss" "$hwm" "$fill_wall" \
	    "$(calc "$size / $fill_wall")" "$rows" "$(median <"$dir/list.wall")")
	echo "${res[$size,extra]}"
	echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	stop_agent
done

echo
echo "ratios, registry of $last : registry of $first (1.00 = flat)"
for m in imp.cpu imp.wall add.cpu add.wall; do
	printf '  %-9s %6.2f\n' "$m" "$(calc "${res[$last,$m]} / ${res[$first,$m]}")"
done
