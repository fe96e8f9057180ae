#!/usr/bin/env bash
# import_equiv.sh - the property that bulk import decides exactly as
# one-by-one onboarding: the same 300 customers (three regions, an
# enterprise tier, the dedicated tier, mixed kinds, a repeated line) are
# onboarded into a fresh agent one `xtcmkctl customer add` at a time, and
# into another fresh agent by one `xtcmkctl customer import` (small
# batches, so batch edges fall everywhere), with customers_per_app = 7 so
# that many applications open and fill.  Both registries must end with
# the same application for every customer, the same applications with
# the same federated workloads and customer counts, and the same
# "already" answer for the repeat; the agents' counters must show that
# the first was onboarded by adds and the second by imports, most of it
# decided while the customer before was recorded (decided_ahead).
NAME=import_equiv
. "$(dirname "$0")/agent_lib.sh"
CONF='[params]
customers_per_app = 7
'
REGIONS=(eu us asia)
workloads() { region_workloads 4 "${REGIONS[@]}"; }

# Customer i: region, tier and kinds from i; line 150 repeats line 10.
cust_fields() {
	local i=$1 r=${REGIONS[$(($1 % 3))]} tier=standard kinds=host
	[ $((i % 10)) = 3 ] && tier=enterprise
	[ $((i % 37)) = 5 ] && tier=dedicated
	[ $((i % 4)) = 1 ] && kinds=host,netapp
	echo "$r $tier $kinds"
}
idx() { [ "$1" = 150 ] && echo 10 || echo "$1"; }

dump() {
	$C -j customer list >"$T/$1.customers.json" || bad "customer list ($1)"
	$C -j app list >"$T/$1.apps.json" || bad "app list ($1)"
	$C -j stats >"$T/$1.stats.json" || bad "stats ($1)"
}

fresh() {
	[ -n "$PID" ] && stop_agent
	rm -rf "$T/state"
	start_agent wl-eu-1 "$CONF"
	workloads
}

# 1. One by one.
fresh
: >"$T/adds.out"
for n in $(seq 1 300); do
	i=$(idx "$n")
	read -r r tier kinds <<<"$(cust_fields "$i")"
	$C customer add "c-$(printf %04d "$i")" --tenant "$TENANT" \
	    --key-uri "https://c$i-kv.vault.azure.net/keys/cmk" \
	    --kind "$kinds" --label region="$r" --label tier="$tier" \
	    >>"$T/adds.out" 2>&1 || bad "customer add c-$i (line $n)"
done
grep -c "already assigned" "$T/adds.out" >"$T/adds.already"
dump one
# 2. By import, 300 lines in batches of 23.
fresh
for n in $(seq 1 300); do
	i=$(idx "$n")
	read -r r tier kinds <<<"$(cust_fields "$i")"
	printf '{"id": "c-%04d", "tenant": "%s", "key_uri": "https://c%d-kv.vault.azure.net/keys/cmk", "kinds": ["%s"], "labels": {"region": "%s", "tier": "%s"}}\n' \
	    "$i" "$TENANT" "$i" "${kinds//,/\", \"}" "$r" "$tier"
done >"$T/all.jsonl"
$C -j customer import "$T/all.jsonl" --batch 23 >"$T/import.json" 2>"$T/err" ||
    bad "import exited $?: $(cat "$T/err")"
dump imp

python3 - "$T" <<'EOF' && ok || bad "one-by-one and import differ: see above"
import json, sys
t = sys.argv[1]
def load(run):
    cs = json.load(open(f"{t}/{run}.customers.json"))
    apps = json.load(open(f"{t}/{run}.apps.json"))
    st = json.load(open(f"{t}/{run}.stats.json"))
    return ({c["id"]: c["app"] for c in cs},
            {a["name"]: (sorted(a.get("fics", [])), a.get("customers"))
             for a in apps}, st)
c1, a1, s1 = load("one")
c2, a2, s2 = load("imp")
assert len(c1) == 299 and len(c2) == 299, (len(c1), len(c2))
diff = [k for k in c1 if c1[k] != c2.get(k)]
assert not diff, ("assignments differ", [(k, c1[k], c2.get(k)) for k in diff[:5]])
assert a1 == a2, ("applications differ",
    [(k, a1.get(k), a2.get(k)) for k in set(a1) | set(a2) if a1.get(k) != a2.get(k)][:5])
assert len(a1) >= 40, ("too few applications to test filling", len(a1))
assert any(n.startswith("xtcmk-d-") for n in a1), "no dedicated application"
imp = json.load(open(f"{t}/import.json"))
assert imp["assigned"] == 299 and imp["already"] == 1 and imp["refused"] == 0, imp
assert int(open(f"{t}/adds.already").read()) == 1
# The paths the counters prove: adds vs imports (14 requests of <= 23).
def onb(st):
    return st.get("onboarding", st)
o1, o2 = onb(s1), onb(s2)
assert o1["import_batches"] == 0 and o2["import_batches"] == 14, (o1, o2)
# Consecutive customers are in different regions: the import decided
# most while the one before was recorded (the pipeline), the adds none.
print("decided ahead:", o2["decided_ahead"], "of 299")
assert o1["decided_ahead"] == 0 and o2["decided_ahead"] >= 200, (o1, o2)
assert o1["assigned"] == o2["assigned"] == 299, (o1, o2)
# The comparison has something to compare: FICs and counts are there.
assert all(len(f) > 0 and n > 0 for f, n in a1.values()), list(a1.items())[:3]
EOF
finish
