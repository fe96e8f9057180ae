#!/usr/bin/env bash
# fleet_import.sh - `xtcmkctl customer import` on the fleet registry
# (xtcmk-fleet(7)), real 3-member etcd cluster and 3 real agents:
#   - one agent imports a file: its customers ride a few etcd
#     transactions (counters: import_txns, import_customers), not one
#     each, and the reply says assigned per line as on SQLite;
#   - a re-import answers "already" for every line and commits nothing;
#   - 3 agents import overlapping files at once into the same regions:
#     every customer assigned exactly once across the three replies,
#     none refused, etcd itself holds <= 20 FICs and <= the policy's
#     customers per application and every customer, every agent lists
#     and decides the same, lost races were re-decided (counter), and
#     the onboarding stats count each customer once;
#   - a workload holding FICs cannot be removed (an indexed count, not
#     a list of the registry); one without is removed fleet-wide;
#   - without quorum every line of an import is refused, none assigned.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d /tmp/xtcmk-fleetimp.XXXXXX)
. "$S/tests/fleet_lib.sh"
cleanup() { agents_stop_all; etcd_stop_all; [ -n "${FLEET_KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
PER_APP=50
AGENT_WORKLOAD=wl-eu-1
REGIONS=(eu us ap)
N=${FLEET_IMPORT_CUSTOMERS:-600}

[ -x "$ETCD" ] || { echo "fleet_import.sh: $ETCD missing (scripts/deps.sh installs etcd-server)"; exit 1; }
etcd_start 3 || exit 1
for a in 1 2 3; do agent_start "$a" || exit 1; done
for r in "${REGIONS[@]}"; do add_workloads 1 "$r" 3 || bad "workload add $r"; done
converge 1 2 3 || bad "mirrors converge on the workloads"

# customers FROM TO PREFIX: JSON lines, regions in turn.
customers() {
	local i r
	for i in $(seq "$1" "$2"); do
		r=${REGIONS[$((i % 3))]}
		printf '{"id": "%s%d", "tenant": "%s", "key_uri": "https://cust-%s.vault.local/keys/k", "labels": {"region": "%s"}}\n' \
			"$3" "$i" "$(ISV_GUID 3 "$i")" "$r" "$r"
	done
}
counter() { fleet_field "$1" "counters.$2"; }
stat() {	# stat A KEY: onboarding stats
	ctl "$1" -j stats | python3 -c "import json, sys
print(json.load(sys.stdin)['onboarding'][sys.argv[1]])" "$2"
}

# --- one agent, one file: a few transactions --------------------------------
customers 1 "$N" s >"$T/single.jsonl"
tx0=$(counter 1 txns)
it0=$(counter 1 import_txns)
ctl 1 customer import "$T/single.jsonl" --batch 1000 >"$T/single.out" 2>&1 ||
	bad "import single.jsonl: $(tail -3 "$T/single.out")"
tx=$(( $(counter 1 txns) - tx0 ))
it=$(( $(counter 1 import_txns) - it0 ))
echo "fleet_import: $N customers in $it import transactions ($tx etcd transactions)"
check "every line assigned" \
	'[ "$(grep -c " assigned " "$T/single.out")" = "$N" ]'
check "summary as on SQLite" \
	'grep -q "single.jsonl: $N customer(s): $N assigned, 0 already there, 0 refused" "$T/single.out"'
check "$N customers batched: $it transactions, each $N/$it customers" \
	'[ "$it" -ge 1 ] && [ "$it" -le $((N / 50)) ] && [ "$tx" = "$it" ]'
check "import_customers counts every customer once" \
	'[ "$(counter 1 import_customers)" = "$N" ] && [ "$(counter 1 import_redecided)" = 0 ]'
check "onboarding stats count each once" '[ "$(stat 1 assigned)" = "$N" ]'
# Lines in file order, as on SQLite.
check "lines in order" \
	'[ "$(awk "/ assigned /{print \$2}" "$T/single.out" | tr "\n" " ")" = "$(seq -f "s%g" 1 "$N" | tr "\n" " ")" ]'

# Again: all already there, nothing committed.
tx0=$(counter 1 txns)
ctl 1 customer import "$T/single.jsonl" >"$T/again.out" 2>&1 ||
	bad "re-import: $(tail -3 "$T/again.out")"
check "re-import: every line already there, no transaction" \
	'grep -q "$N customer(s): 0 assigned, $N already there, 0 refused" "$T/again.out" && [ "$(counter 1 txns)" = "$tx0" ]'

# --- 3 agents, overlapping files, at once --------------------------------------
M=$((N * 3 / 2))
customers 1 "$M" o | head -n $((M * 2 / 3)) >"$T/o1.jsonl"
customers 1 "$M" o | sed -n "$((M / 3 + 1)),\$p" >"$T/o2.jsonl"
customers 1 "$M" o | awk 'NR % 2 == 0' | tac >"$T/o3.jsonl"
for a in 1 2 3; do
	before[$a]=$(stat "$a" assigned)
	rd0[$a]=$(counter "$a" import_redecided)
done
t0=$(date +%s.%N)
bg=
for a in 1 2 3; do
	ctl "$a" customer import "$T/o$a.jsonl" --batch 200 >"$T/o$a.out" 2>&1 &
	bg="$bg $!"
done
wait $bg
t1=$(date +%s.%N)
echo "fleet_import: 3 overlapping imports ($(cat "$T"/o?.jsonl | wc -l) lines, $M customers) in $(echo "$t1 - $t0" | bc) s"
check "no line refused" '[ "$(cat "$T"/o?.out | awk "\$3 == \"refused:\"" | wc -l)" = 0 ] && [ "$(grep -h -c "customer(s): .*, 0 refused\$" "$T"/o?.out | paste -sd+ | bc)" = 3 ]'
check "every customer assigned exactly once across the agents" \
	'[ "$(grep -h " assigned " "$T"/o?.out | awk "{print \$2}" | sort | uniq -d | wc -l)" = 0 ] &&
	 [ "$(grep -h " assigned " "$T"/o?.out | awk "{print \$2}" | sort -u | wc -l)" = "$M" ]'
check "the others said already" \
	'[ $(( $(cat "$T"/o?.out | awk "\$3 == \"already\"" | wc -l) + M )) = "$(cat "$T"/o?.jsonl | wc -l)" ]'
redecided=0 assigned=0
for a in 1 2 3; do
	redecided=$((redecided + $(counter "$a" import_redecided) - rd0[$a]))
	assigned=$((assigned + $(stat "$a" assigned) - before[$a]))
done
echo "fleet_import: $redecided customers re-decided after lost races"
check "lost races re-decided (counter)" '[ "$redecided" -gt 0 ]'
check "stats count each customer assigned once ($assigned)" '[ "$assigned" = "$M" ]'
check "mirrors converge" "converge 1 2 3"

grep -h " assigned " "$T"/o?.out | awk '{print $2}' >"$T/acked.o"
seq -f "s%g" 1 "$N" >"$T/acked.s"
etcdctl get /t/ --prefix -w json >"$T/dump.json" || bad "etcdctl get"
python3 - "$T/dump.json" "$PER_APP" "$T/acked.s" "$T/acked.o" <<'PY' && ok || bad "etcd invariants"
import base64, collections, json, sys
d = json.load(open(sys.argv[1]))
per_app = int(sys.argv[2])
kv = {base64.b64decode(k["key"]).decode()[3:]:
      base64.b64decode(k.get("value", "")).decode() for k in d.get("kvs", [])}
fics = collections.Counter(k.split("/")[1] for k in kv if k.startswith("f/"))
apps = {k[2:] for k in kv if k.startswith("a/")}
cust = {k[2:]: json.loads(v) for k, v in kv.items() if k.startswith("c/")}
per = collections.Counter(c["app"] for c in cust.values())
err = []
for a, n in fics.items():
    if n > 20: err.append("%s holds %d FICs" % (a, n))
for a, n in per.items():
    if a not in apps: err.append("customers on unknown application %s" % a)
    if fics[a] == 0: err.append("%s serves customers without FICs" % a)
    if n > per_app: err.append("%s holds %d customers > %d" % (a, n, per_app))
for f in sys.argv[3:]:
    for line in open(f):
        if line.strip() not in cust: err.append("acknowledged %s missing" % line.strip())
if err:
    print("\n".join(err[:20])); sys.exit(1)
print("etcd: %d customers on %d applications, max %d FICs, max %d customers"
      % (len(cust), len(apps), max(fics.values()), max(per.values())))
PY
same() {
	snapshot 1 >"$T/snap.1"
	for a in 2 3; do
		snapshot "$a" >"$T/snap.$a"
		cmp -s "$T/snap.1" "$T/snap.$a" || { diff "$T/snap.1" "$T/snap.$a" | head -5; return 1; }
	done
	for c in o1 o$((M / 2)) o$M s1 s$N; do
		d1=$(ctl 1 -j decide "$c" | grep -v assigned_at) || return 1
		for a in 2 3; do
			[ "$(ctl "$a" -j decide "$c" | grep -v assigned_at)" = "$d1" ] ||
				{ echo "decide $c differs on $a"; return 1; }
		done
	done
}
check "every agent lists and decides the same" same
for a in 1 2 3; do
	check "agent $a applied without errors" '[ "$(counter "$a" apply_errors)" = 0 ]'
	check "registry check on agent $a" 'ctl "$a" check >/dev/null'
done

# --- workload removal: refused while it holds FICs (an indexed count) ---------
out=$(ctl 2 workload remove wl-eu-1 2>&1)
rc=$?
check "removing a workload with FICs is refused with their count: $out" \
	'[ "$rc" != 0 ] && grep -q "holds federated credentials on [1-9][0-9]* application" <<<"$out"'
add_workloads 1 spare 1 || bad "workload add spare"
converge 1 2 3
check "a workload without FICs is removed through another agent" \
	'ctl 2 workload remove wl-spare-1 >/dev/null && converge 1 2 3 && ! ctl 3 workload list | grep -q wl-spare-1'

# --- no quorum: the transaction is not taken, no line says assigned -------------
# q1 twice: the repeat, decided as "already" on the uncommitted first,
# is refused with it.
{ customers 1 5 q; customers 1 1 q; } >"$T/q.jsonl"
etcd_kill 3
etcd_kill 2
t0=$(date +%s%N)
ctl 1 customer import "$T/q.jsonl" >"$T/q.out" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "fleet_import: no quorum: import refused in $ms ms"
check "no quorum: every line refused, exit 10 ($rc)" \
	'[ "$rc" = 10 ] && [ "$(awk "\$3 == \"refused:\"" "$T/q.out" | wc -l)" = 6 ] && [ "$(awk "\$3 == \"assigned\" || \$3 == \"already\"" "$T/q.out" | wc -l)" = 0 ]'
check "the refusals name etcd and the quorum" 'grep -q "quorum" "$T/q.out"'
check "refused within timeout_ms ($ms ms)" '[ "$ms" -le 8000 ]'

echo "fleet_import.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
