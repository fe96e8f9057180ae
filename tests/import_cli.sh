#!/usr/bin/env bash
# import_cli.sh - `xtcmkctl customer import` against a real agent: JSON lines
# and CSV files, standard input, the per-line report and summary, --json,
# exit codes (0, 9 with nothing sent, 10 when the agent refused some),
# re-running a file (every customer "already"), and an agent killed
# half-way (exit 3, the line to go on from, a rerun completes it).
# Fails, never skips, when the agent has no customer.import.
NAME=import
. "$(dirname "$0")/agent_lib.sh"
AGENT_CONF='[params]
customers_per_app = 40
'
count() { $C -j "$1" list | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'; }
# jsonl FIRST LAST [REGION]: customers imp-FIRST..imp-LAST, one a line.
jsonl() {
	local i
	for i in $(seq "$1" "$2"); do
		printf '{"id": "imp-%05d", "tenant": "%s", "key_uri": "https://imp%05d-kv.vault.azure.net/keys/cmk", "labels": {"region": "%s"}}\n' \
		    "$i" "$TENANT" "$i" "${3:-eu}"
	done
}

start_agent wl-eu-1 "$AGENT_CONF"
for i in 1 2 3; do
	$C workload add wl-eu-$i --client-id "$(guid 1 $i)" \
	    --principal-id "$(guid 2 $i)" --label region=eu >/dev/null ||
	    bad "workload add wl-eu-$i"
done

# 0. The agent must know customer.import: fail loudly if it does not.
jsonl 1 1 >"$T/one.jsonl"
out=$($C customer import "$T/one.jsonl" 2>&1); rc=$?
if grep -q "does not have customer.import" <<<"$out"; then
	echo "FAIL: this xtcmkd has no customer.import admin command (the"
	echo "      agent side of bulk import is not in this build): $out"
	exit 1
fi
[ "$rc" = 0 ] && grep -q '^1 imp-00001 assigned xtcmk-eu-' <<<"$out" && ok ||
    bad "first import: rc $rc: $out"

# 1. JSON lines: 250 customers (several batches), one line each, in order.
jsonl 1 250 >"$T/a.jsonl"
out=$($C customer import "$T/a.jsonl" --batch 64 2>"$T/err"); rc=$?
[ "$rc" = 0 ] || bad "import a.jsonl exited $rc: $(cat "$T/err")"
[ "$(grep -c ' assigned xtcmk-eu-' <<<"$out")" = 249 ] && ok ||
    bad "want 249 assigned lines: $(head -5 <<<"$out")"
[ "$(grep -c '^1 imp-00001 already xtcmk-eu-' <<<"$out")" = 1 ] && ok ||
    bad "imp-00001 should be already there"
[ "$(awk '/^[0-9]+ imp-/{print $1}' <<<"$out" | tr '\n' ' ')" = \
    "$(seq 1 250 | tr '\n' ' ')" ] && ok || bad "lines not reported in order"
grep -q 'a.jsonl: 250 customer(s): 249 assigned, 1 already there, 0 refused' \
    <<<"$out" && ok || bad "summary: $(tail -1 <<<"$out")"
[ "$(count customer)" = 250 ] && ok || bad "customer list has $(count customer), want 250"

# 2. Running it again: every customer "already", same applications.
$C -j customer import "$T/a.jsonl" >"$T/again.json" 2>"$T/err"; rc=$?
[ "$rc" = 0 ] || bad "re-import exited $rc: $(cat "$T/err")"
python3 - "$T/again.json" <<'EOF' && ok || bad "re-import --json: see above"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["already"] == 250 and d["assigned"] == 0 and d["refused"] == 0, d
r = d["results"]
assert len(r) == 250 and [x["line"] for x in r] == list(range(1, 251)), r[:3]
assert all(x["status"] == "already" and x["app"].startswith("xtcmk-eu-") for x in r)
assert [x["customer"] for x in r] == ["imp-%05d" % i for i in range(1, 251)]
EOF

[ ! -s "$T/err" ] && ok || bad "progress or errors on a stderr that is not a terminal: $(head -2 "$T/err")"
# On a terminal, a progress line updated with \r.
if command -v script >/dev/null; then
	script -qc "$C customer import $T/a.jsonl >/dev/null" /dev/null >"$T/tty.txt"
	grep -q $'\r250/250 customers: 0 assigned, 250 already, 0 refused' "$T/tty.txt" &&
	    ok || bad "no progress line on a terminal: $(od -c "$T/tty.txt" | head -3)"
else
	bad "script(1) is needed to test the progress line (apt-get install bsdutils)"
fi

# 3. CSV from standard input, with blank lines; kinds and labels.
{
	echo "id,tenant,key_uri,vault_auth,kinds,labels"
	echo "csv-1,$TENANT,https://csv1-kv.vault.azure.net/keys/cmk,rbac,host;storage,region=eu;tier=gold"
	echo
	echo "csv-2,$TENANT,https://csv2-kv.vault.azure.net/keys/cmk,access-policy,,region=eu"
} >"$T/b.csv"
out=$($C customer import - <"$T/b.csv" 2>&1); rc=$?
[ "$rc" = 0 ] && grep -q '^2 csv-1 assigned ' <<<"$out" &&
    grep -q '^4 csv-2 assigned ' <<<"$out" && ok || bad "csv import: rc $rc: $out"
$C -j customer show csv-1 >"$T/show.json" && python3 - "$T/show.json" <<'EOF' && ok || bad "csv-1 as imported"
import json, sys
c = json.load(open(sys.argv[1]))["customer"]
assert c["kinds"] == ["host", "storage"] and c["labels"] == {"region": "eu", "tier": "gold"}, c
EOF

# 4. A line with a mistake: every error with its line, nothing sent.
{
	jsonl 300 301
	echo '{"id": "imp-bad", "tenant": "not-a-guid", "key_uri": "https://impbad-kv.vault.azure.net/keys/cmk"}'
	echo '{"id": "imp-00302", "tenant": "'$TENANT'"'
} >"$T/c.jsonl"
out=$($C customer import "$T/c.jsonl" 2>&1); rc=$?
[ "$rc" = 9 ] && grep -q 'c.jsonl: line 3: ' <<<"$out" &&
    grep -q 'c.jsonl: line 4: not a JSON object' <<<"$out" &&
    grep -q 'nothing was sent' <<<"$out" && ok || bad "bad lines: rc $rc: $out"
$C customer show imp-00300 >/dev/null 2>&1; [ $? = 4 ] && ok ||
    bad "imp-00300 was sent although the file had errors"

# 5. Refused by the agent (no workload in the customer's region): exit 10.
{ jsonl 400 401; jsonl 402 402 mars; } >"$T/d.jsonl"
out=$($C customer import "$T/d.jsonl" 2>&1); rc=$?
[ "$rc" = 10 ] && grep -q '^3 imp-00402 refused: ' <<<"$out" &&
    grep -q '2 assigned, 0 already there, 1 refused' <<<"$out" && ok ||
    bad "refused customer: rc $rc: $out"

# 5b. Many refusals in big requests: every customer reported once, in
#     order, nothing on standard error.
jsonl 500 1399 mars >"$T/f.jsonl"
out=$($C customer import "$T/f.jsonl" --batch 1000 2>"$T/f.err"); rc=$?
[ "$rc" = 10 ] && [ "$(grep -c '^[0-9]* imp-[0-9]* refused: ' <<<"$out")" = 900 ] &&
    [ "$(awk '/^[0-9]+ imp-/{print $1}' <<<"$out" | tr '\n' ' ')" = "$(seq 1 900 | tr '\n' ' ')" ] &&
    grep -q '900 customer(s): 0 assigned, 0 already there, 900 refused' <<<"$out" &&
    [ ! -s "$T/f.err" ] && ok ||
    bad "900 refusals: rc $rc: $(tail -1 <<<"$out") $(head -3 "$T/f.err")"

# 6. The agent dies half-way: exit 3 with the line to go on from; a rerun
#    of the same file completes it.
jsonl 1000 4999 >"$T/e.jsonl"
$C customer import "$T/e.jsonl" --batch 20 >"$T/e.out" 2>"$T/e.err" &
IMP=$!
for _ in $(seq 200); do
	[ "$(wc -l <"$T/e.out")" -ge 40 ] && break
	sleep 0.05
done
kill_agent
wait "$IMP"; rc=$?
done_lines=$(wc -l <"$T/e.out")
if [ "$rc" = 3 ] && grep -q 'e.jsonl: stopped at line [0-9]*' "$T/e.err"; then
	at=$(grep -o 'stopped at line [0-9]*' "$T/e.err" | grep -o '[0-9]*$')
	[ "$at" -gt "$done_lines" ] && [ "$at" -le 4000 ] && ok ||
	    bad "stopped at line $at after $done_lines reported lines"
elif [ "$rc" = 0 ]; then
	bad "the import finished before the agent was killed; make the file longer"
else
	bad "killed agent: rc $rc: $(cat "$T/e.err")"
fi
start_agent wl-eu-1 "$AGENT_CONF"
out=$($C customer import "$T/e.jsonl" 2>&1); rc=$?
# A batch in flight when the agent died may or may not have committed.
sum=$(tail -1 <<<"$out")
if [ "$rc" = 0 ] && [[ $sum =~ 4000\ customer\(s\):\ ([0-9]+)\ assigned,\ ([0-9]+)\ already\ there,\ 0\ refused ]] &&
    [ $((BASH_REMATCH[1] + BASH_REMATCH[2])) = 4000 ] &&
    [ "${BASH_REMATCH[2]}" -ge "$done_lines" ] &&
    [ "${BASH_REMATCH[2]}" -le $((done_lines + 20)) ]; then ok
else bad "rerun after the crash: rc $rc, $done_lines done before: $sum"; fi
n=$(count customer)
[ "$n" = $((250 + 2 + 2 + 4000)) ] && ok || bad "customer list has $n after the rerun"
$C check >/dev/null && ok || bad "registry check after the imports"

finish
