#!/usr/bin/env bash
# import_workerkill.sh - policy workers killed (SIGKILL) in the middle of
# an import, while its pipeline has decisions out on them: the import
# goes on with replaced workers.  Only the customers whose calls were on
# a killed worker may be refused (each with an error naming the worker),
# every other line is assigned, nothing is lost, and running the same
# file again assigns the refused ones and answers "already" for the
# rest.  The counters prove the pipeline ran (decided_ahead) and that
# workers were replaced (policy_workers.spawned).
NAME=import_workerkill
. "$(dirname "$0")/agent_lib.sh"
N=${XTCMK_WORKERKILL_CUSTOMERS:-4000}
REGIONS=(eu us asia)

start_agent wl-eu-1
region_workloads 2 "${REGIONS[@]}"
for i in $(seq 1 "$N"); do
	printf '{"id": "k-%05d", "tenant": "%s", "key_uri": "https://kv%05d.vault.azure.net/keys/cmk", "labels": {"region": "%s"}}\n' \
	    "$i" "$TENANT" "$i" "${REGIONS[$((i % 3))]}"
done >"$T/all.jsonl"
spawned0=$($C -j stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["policy_workers"]["spawned"])')

$C -j customer import "$T/all.jsonl" >"$T/run1.json" 2>"$T/run1.err" &
imp=$!
# Kill every worker three times while the import runs.
kills=0
for round in 1 2 3; do
	for _ in $(seq 200); do
		done_n=$($C -j stats 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["onboarding"]["assigned"])' 2>/dev/null || echo 0)
		[ "$done_n" -ge $((round * N / 5)) ] && break
		sleep 0.05
	done
	for p in $($C -j stats | python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["policy_workers"]["pids"])))'); do
		kill -9 "$p" 2>/dev/null && kills=$((kills + 1))
	done
done
wait "$imp"
rc=$?
[ "$kills" -ge 3 ] && ok || bad "only $kills workers were killed"
python3 - "$T" "$N" "$rc" <<'PY' && ok || bad "the first run: see above"
import json, sys
t, n, rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(f"{t}/run1.json"))
res = r["results"]
assert len(res) == n, (len(res), n)
assert [x["line"] for x in res] == list(range(1, n + 1))
refused = [x for x in res if x["status"] == "refused"]
print(f"killed workers: {len(refused)} of {n} refused", file=sys.stderr)
for x in refused:
    assert "worker" in x["error"], x
# Three rounds of kills, two workers each: only customers with a call on
# a killed worker, at most the pipeline's five out and the one in line
# per kill (PIPE_DEPTH in agent/onboard.c); the rest went on.
assert len(refused) <= 3 * 2 * (5 + 1), len(refused)
assert r["assigned"] == n - len(refused), r
assert rc == (10 if refused else 0), rc
PY
$C -j stats >"$T/st.json" || bad "stats"
python3 - "$T" "$spawned0" <<'PY' && ok || bad "counters: see above"
import json, sys
st = json.load(open(f"{sys.argv[1]}/st.json"))
assert st["policy_workers"]["spawned"] > int(sys.argv[2]), st["policy_workers"]
assert st["onboarding"]["decided_ahead"] > 1000, st["onboarding"]
PY
# Again: the refused ones now, everything else already there.
$C -j customer import "$T/all.jsonl" >"$T/run2.json" 2>"$T/run2.err" ||
    bad "second run exited $?: $(tail -2 "$T/run2.err")"
python3 - "$T" "$N" <<'PY' && ok || bad "the second run: see above"
import json, sys
t, n = sys.argv[1], int(sys.argv[2])
r1 = json.load(open(f"{t}/run1.json"))
r2 = json.load(open(f"{t}/run2.json"))
assert r2["refused"] == 0 and r2["assigned"] == r1["refused"], (r1["refused"], r2)
assert r2["already"] == n - r1["refused"], r2
PY
[ "$($C customer list | tail -n +2 | wc -l)" = "$N" ] && ok ||
    bad "customer list does not hold the $N customers"
finish
