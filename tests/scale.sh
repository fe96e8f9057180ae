#!/usr/bin/env bash
# scale.sh - the admin commands at scale against a real agent: 150
# workloads in 6 regions, 20,000 customers onboarded with `customer
# import`, then, read straight from the SQLite file with sqlite3: at most
# 20 FICs per application, one application per customer, and each
# customer's federated workloads are FICs of its application (and every
# FIC is some customer's decision); every list command streams all its
# rows (counts equal the file's); `app plan`, `customer show`, `customer
# kit` and `resource config` work for the last customer.
#
# XTCMK_SCALE_CUSTOMERS sets the number of customers (default 20000);
# XTCMK_SCALE_VIA=add onboards them one `customer add` at a time instead
# (slow; for an agent without customer.import).  Fails, never skips,
# when the agent has no customer.import.
NAME=scale
. "$(dirname "$0")/agent_lib.sh"
N=${XTCMK_SCALE_CUSTOMERS:-20000}
VIA=${XTCMK_SCALE_VIA:-import}
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 is not installed (apt-get install sqlite3)"; exit 1; }
REGIONS="westeurope northeurope eastus westus japaneast australiaeast"

start_agent wl-westeurope-01 "[azure]
tenant = $TENANT
"
DB=$(ls "$T"/state/*.db | head -1)

# 150 workloads, 25 per region.
t0=$(now)
r=0
for region in $REGIONS; do
	r=$((r + 1))
	for i in $(seq 1 25); do
		n=$(printf 'wl-%s-%02d' "$region" "$i")
		$C workload add "$n" \
		    --client-id "$(printf '%08x-0000-4000-8000-%012x' 1 $((r * 100 + i)))" \
		    --principal-id "$(printf '%08x-0000-4000-8000-%012x' 2 $((r * 100 + i)))" \
		    --resource-id "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourceGroups/isv-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/$n" \
		    --label region="$region" >/dev/null || bad "workload add $n"
	done
done
echo "150 workloads registered in $(since "$t0") s"

# N customers spread over the regions, as JSON lines.
awk -v n="$N" -v regions="$REGIONS" 'BEGIN {
	split(regions, R, " ")
	for (i = 1; i <= n; i++)
		printf "{\"id\": \"cust-%06d\", \"tenant\": \"%08x-1111-4111-8111-%012x\", \"key_uri\": \"https://kv%06d.vault.azure.net/keys/cmk\", \"kinds\": [\"host\", \"storage\"], \"labels\": {\"region\": \"%s\"}}\n", i, i, i, i, R[(i % 6) + 1]
}' >"$T/customers.jsonl"
LAST=$(printf 'cust-%06d' "$N")

t0=$(now)
if [ "$VIA" = add ]; then
	python3 - "$T/customers.jsonl" >"$T/add.sh" <<'EOF'
import json, shlex, sys
for line in open(sys.argv[1]):
    c = json.loads(line)
    print("$C customer add %s --tenant %s --key-uri %s --kind %s --label region=%s >/dev/null || bad 'customer add %s'"
          % (c["id"], c["tenant"], c["key_uri"], ",".join(c["kinds"]), c["labels"]["region"], c["id"]))
EOF
	. "$T/add.sh"
else
	cpu0=$($C -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_seconds"])')
	$C customer import "$T/customers.jsonl" >"$T/import.out" 2>"$T/import.err"
	rc=$?
	# The agent's CPU counts every thread: the import ran on a
	# connection's, and onboarding costs well over 20 us a customer.
	cpu1=$($C -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_seconds"])')
	python3 -c "import sys; sys.exit(0 if $cpu1 - $cpu0 > $N * 20e-6 else 1)" && ok ||
	    bad "status cpu_seconds $cpu0 -> $cpu1 for $N customers"
	if grep -q "does not have customer.import" "$T/import.err"; then
		echo "FAIL: this xtcmkd has no customer.import admin command: $(cat "$T/import.err")"
		exit 1
	fi
	[ "$rc" = 0 ] || bad "customer import exited $rc: $(tail -3 "$T/import.err")"
	[ "$(grep -c " assigned " "$T/import.out")" = "$N" ] && ok ||
	    bad "want $N assigned lines: $(tail -2 "$T/import.out")"
fi
echo "$N customers onboarded ($VIA) in $(since "$t0") s"

# --- the invariants, from the file itself ----------------------------
q() { sqlite3 -batch -noheader "$DB" "$1"; }
ncust=$(q "SELECT count(*) FROM customers")
napps=$(q "SELECT count(*) FROM apps")
nwl=$(q "SELECT count(*) FROM workloads")
[ "$ncust" = "$N" ] && ok || bad "registry holds $ncust customers, want $N"
[ "$nwl" = 150 ] && ok || bad "registry holds $nwl workloads, want 150"
maxfic=$(q "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM fics GROUP BY app)")
[ "$maxfic" -le 20 ] && [ "$maxfic" -ge 1 ] && ok || bad "an application holds $maxfic FICs"
[ "$(q "SELECT count(*) FROM customers c WHERE (SELECT count(*) FROM assignments a WHERE a.customer = c.id) <> 1")" = 0 ] &&
    ok || bad "customers without exactly one application"
[ "$(q "SELECT count(*) FROM assignments a LEFT JOIN apps p ON p.name = a.app WHERE p.name IS NULL")" = 0 ] &&
    ok || bad "assignments to missing applications"
# Each customer's decided workloads are FICs of its application ...
[ "$(q "SELECT count(*) FROM assignments a, json_each(a.outputs, '\$.federate') f WHERE NOT EXISTS (SELECT 1 FROM fics x WHERE x.app = a.app AND x.workload = f.value)")" = 0 ] &&
    ok || bad "decided workloads missing from their application's FICs"
[ "$(q "SELECT count(*) FROM assignments WHERE json_array_length(outputs, '\$.federate') IS NULL OR json_array_length(outputs, '\$.federate') = 0")" = 0 ] &&
    ok || bad "assignments without decided workloads"
# ... and every FIC is some customer's decision.
[ "$(q "SELECT count(*) FROM fics x WHERE NOT EXISTS (SELECT 1 FROM assignments a, json_each(a.outputs, '\$.federate') f WHERE a.app = x.app AND f.value = x.workload)")" = 0 ] &&
    ok || bad "FICs no customer's decision asked for"
# Regions: a customer's application only federates its region's workloads.
[ "$(q "SELECT count(*) FROM assignments a JOIN customers c ON c.id = a.customer JOIN fics x ON x.app = a.app JOIN workloads w ON w.name = x.workload WHERE json_extract(w.labels, '\$.region') <> json_extract(c.labels, '\$.region')")" = 0 ] &&
    ok || bad "applications federating another region's workloads"
echo "registry: $ncust customers, $napps applications, max $maxfic FICs per application"

# --- every list streams every row ------------------------------------
t0=$(now)
$C customer list >"$T/customers.txt" 2>"$T/list.err" || bad "customer list: $(cat "$T/list.err")"
echo "customer list: $N rows in $(since "$t0") s"
[ "$(($(wc -l <"$T/customers.txt") - 1))" = "$ncust" ] && ok ||
    bad "customer list printed $(($(wc -l <"$T/customers.txt") - 1)) rows, the file holds $ncust"
t0=$(now)
$C -j customer list >"$T/customers.json" || bad "customer list --json"
echo "customer list --json: $N rows in $(since "$t0") s"
python3 - "$T/customers.json" "$ncust" "$LAST" <<'EOF' && ok || bad "customer list --json: see above"
import json, sys
a = json.load(open(sys.argv[1]))
ids = [c["id"] for c in a]
assert len(a) == int(sys.argv[2]), len(a)
assert ids == sorted(ids) and len(set(ids)) == len(ids), "order or duplicates"
assert ids[-1] == sys.argv[3] and all(c["app"] for c in a)
EOF
for what in app workload; do
	want=$([ $what = app ] && echo "$napps" || echo "$nwl")
	got=$($C -j $what list | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
	[ "$got" = "$want" ] && ok || bad "$what list --json has $got rows, the file holds $want"
	got=$(($($C $what list | wc -l) - 1))
	[ "$got" = "$want" ] && ok || bad "$what list has $got rows, the file holds $want"
done
# Paging by hand: pages of 1000 cover the list exactly once.
after= pages=0 rows=0
while :; do
	$C -j customer list --limit 1000 ${after:+--after "$after"} >"$T/page.json" || { bad "customer list --limit"; break; }
	read -r n next < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(len(d["items"]), d["next"] or "")' "$T/page.json")
	rows=$((rows + n)); pages=$((pages + 1))
	[ -z "$next" ] && break
	after=$next
	[ $pages -gt $((N / 10)) ] && { bad "paging does not end"; break; }
done
[ "$rows" = "$ncust" ] && ok || bad "paging by hand gave $rows rows in $pages pages"
$C -j app list | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert all(x["fic_count"] <= 20 and x["fic_count"] == len(x["fics"]) for x in a)
assert sum(x["customers"] for x in a) == int(sys.argv[1])' "$ncust" && ok ||
    bad "app list: FIC and customer counts"

# --- documents for the last customer ----------------------------------
APP=$(q "SELECT app FROM assignments WHERE customer = '$LAST'")
$C app set "$APP" --client-id bbbb1b1b-cc2c-4d3d-8e4e-ffffff5f5f5f >/dev/null || bad "app set $APP"
for cmd in "customer show $LAST" "customer kit $LAST" \
    "resource config $LAST --kind storage" "decide $LAST"; do
	if out=$($C $cmd 2>&1) && [ -n "$out" ]; then ok
	else bad "$cmd: $out"; fi
done
$C -j customer show "$LAST" | python3 -c '
import json, sys
d = json.load(sys.stdin)
a = d["assignment"]
assert "inputs" not in a and a["app"] == sys.argv[1] and a["outputs"]["federate"]' "$APP" &&
    ok || bad "customer show: no bounded assignment"
t0=$(now)
$C app plan >"$T/plan.txt" 2>&1 || bad "app plan: $(tail -2 "$T/plan.txt")"
echo "app plan over $napps applications: $(since "$t0") s"
# One section per application, titled "Application NAME".
nplan=$(grep -cE '^Application [A-Za-z0-9._-]+$' "$T/plan.txt")
[ "$nplan" = "$napps" ] && ok ||
    bad "app plan covers $nplan of $napps applications"
$C check >/dev/null && ok || bad "registry check"

finish
