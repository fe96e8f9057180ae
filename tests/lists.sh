#!/usr/bin/env bash
# lists.sh - keyset paging of the admin lists against a real agent: a page
# of large rows stops at the frame and hands back "next" (fewer items
# than asked for), streaming follows "next" to the end with every row
# once in key order, --limit/--after give one page, the old "offset" and
# bad limits are refused with a sentence saying what to do, and the moves
# log and the keystore's keys page like the rest; `check` of a broken
# registry shows the first 100 problems and counts them all.
NAME=lists
. "$(dirname "$0")/agent_lib.sh"
start_agent wl-eu-1 '[params]
customers_per_app = 4
'

# An idle agent (decision file and heartbeat on, the default) sleeps: its
# CPU over 2 s stays far below a spinning thread's 2 s.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }
t0=$(ticks); sleep 2; t1=$(ticks)
[ $((t1 - t0)) -lt $(($(getconf CLK_TCK) / 5)) ] && ok ||
    bad "idle agent used $((t1 - t0)) clock ticks of CPU in 2 s"

for i in $(seq 1 22); do
	$C workload add "wl-eu-$i" \
	    --client-id "$(printf '%08x-0000-4000-8000-%012x' 1 "$i")" \
	    --principal-id "$(printf '%08x-0000-4000-8000-%012x' 2 "$i")" \
	    --label region=eu >/dev/null || bad "workload add wl-eu-$i"
done
# 14 customers of ~10 KiB each (32 labels of 255 characters): six or so
# fill a frame.
long=$(printf 'v%.0s' $(seq 1 255))
labels=$(for k in $(seq 1 31); do printf -- '--label k%02d=%s ' "$k" "$long"; done)
for i in $(seq -w 1 14); do
	# shellcheck disable=SC2086
	$C customer add "big-$i" --tenant "$TENANT" \
	    --key-uri "https://big$i-kv.vault.azure.net/keys/cmk" \
	    --label region=eu $labels >/dev/null || bad "customer add big-$i"
done

# One page asked for 1000 rows stops at the frame, with "next".
$C -j customer list --limit 1000 >"$T/p1.json" || bad "customer list --limit 1000"
read -r n next < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(len(d["items"]), d["next"])' "$T/p1.json")
if [ "$n" -ge 1 ] && [ "$n" -lt 14 ] && [ "$next" = "$(printf 'big-%02d' "$n")" ]; then ok
else bad "a page of large rows: $n items, next '$next'"; fi
[ "$(stat -c %s "$T/p1.json")" -lt 65536 ] && ok || bad "a page is over a frame"
# The next page starts after it.
$C -j customer list --limit 1000 --after "$next" >"$T/p2.json" || bad "customer list --after"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["items"][0]["id"] == sys.argv[2], d["items"][0]["id"]' \
    "$T/p2.json" "$(printf 'big-%02d' $((n + 1)))" && ok || bad "the page after $next"
# Streaming follows next to the end: every row once, in order.
$C -j customer list >"$T/all.json" || bad "customer list"
python3 -c '
import json, sys
ids = [c["id"] for c in json.load(open(sys.argv[1]))]
assert ids == ["big-%02d" % i for i in range(1, 15)], ids' "$T/all.json" && ok ||
    bad "streamed customer list"
[ "$($C customer list | wc -l)" = 15 ] && ok || bad "human customer list rows"
# Small pages: --limit 3 --after walks the workloads.
after= seen=
while :; do
	out=$($C -j workload list --limit 3 ${after:+--after "$after"}) || { bad "workload list --limit 3"; break; }
	read -r names next < <(python3 -c 'import json, sys; d = json.load(sys.stdin); print(",".join(w["name"] for w in d["items"]), d["next"] or "")' <<<"$out")
	seen="$seen${seen:+,}$names"
	[ -z "$next" ] && break
	after=$next
done
want=$(for i in $(seq 1 22); do echo "wl-eu-$i"; done | sort | paste -sd,)
[ "$seen" = "$want" ] && ok || bad "workload pages: $seen"
out=$($C workload list --limit 3 2>&1 >/dev/null)
grep -q 'more follow: --after wl-eu-11' <<<"$out" && ok || bad "one human page: '$out'"
# Applications with their FIC and customer counts, all pages.
$C -j app list >"$T/apps.json" && python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert sum(x["customers"] for x in a) == 14 and all(x["fic_count"] == len(x["fics"]) <= 20 for x in a), a' "$T/apps.json" &&
    ok || bad "app list counts"

# Refusals that say what to do.
expect_err() {	# expect_err CODE PATTERN -- command...
	local code=$1 pat=$2 out rc; shift 3
	out=$("$@" 2>&1); rc=$?
	[ "$rc" = "$code" ] && grep -qE -- "$pat" <<<"$out" && ok ||
	    bad "$* exited $rc, want $code /$pat/: $out"
}
expect_err 2 "--limit takes a number from 1 to 1000" -- $C customer list --limit 0
expect_err 2 "--limit takes" -- $C customer list --limit 1001
expect_err 2 "--after takes the number" -- $C customer moves --after x

# The moves log pages by its number.
$C customer move big-01 --to xtcmk-eu-2 --reason r1 >/dev/null || bad "customer move"
$C customer remove big-14 >/dev/null || bad "customer remove"
$C -j customer moves --limit 1 >"$T/m1.json" || bad "customer moves --limit 1"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d["items"]) == 1 and isinstance(d["next"], int), d' "$T/m1.json" &&
    ok || bad "moves page"
[ "$($C -j customer moves | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" = 2 ] && ok || bad "moves stream"
[ "$($C -j customer moves big-14 | python3 -c 'import json, sys; a = json.load(sys.stdin); print(a[0]["op"])')" = remove ] &&
    ok || bad "moves of one customer"

# The keystore's keys page by VAULT/NAME.
for k in k1 k2 k3; do $C key create "https://lists.vault.local/keys/$k" >/dev/null || bad "key create $k"; done
[ "$($C -j key list --limit 2 | python3 -c 'import json, sys; d = json.load(sys.stdin); print(len(d["items"]), d["next"])')" = "2 lists/k2" ] &&
    ok || bad "key list page"
[ "$($C -j key list --after lists/k2 | python3 -c 'import json, sys; d = json.load(sys.stdin); print([k["name"] for k in d["items"]])')" = "['k3']" ] &&
    ok || bad "key list after"
[ "$($C key list | wc -l)" = 4 ] && ok || bad "human key list"

# A registry broken behind the agent's back: `check` lists the first 100
# problems of 150 and counts them all, in one reply.
stop_agent
if command -v sqlite3 >/dev/null; then
	sqlite3 "$T/state/registry.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150) INSERT INTO fics (app, workload, name, created) SELECT 'ghost-' || i, 'wl-eu-1', 'xtcmk-wl-eu-1', 0 FROM n" ||
	    bad "sqlite3 insert"
	start_agent wl-eu-1 '[params]
customers_per_app = 4
'
	out=$($C check); rc=$?
	[ "$rc" = 5 ] && grep -q '150 problems in all' <<<"$out" && ok || bad "check: rc $rc: $(tail -2 <<<"$out")"
	$C -j check | python3 -c 'import json, sys; d = json.load(sys.stdin); assert len(d["problems"]) == 100 and d["problems_total"] == 150, d["problems_total"]' &&
	    ok || bad "check --json: first 100 of 150"
else
	bad "sqlite3 is not installed (apt-get install sqlite3)"
fi

finish
