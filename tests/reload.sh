#!/usr/bin/env bash
# reload.sh - `xtcmkctl reload` and SIGHUP re-read [params] and [policy]
# from the config file; a broken config or policy set is refused and the
# running one keeps serving.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d /tmp/xtcmk-reload.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
C="$B/ctl/xtcmkctl -s $T/s.sock"
cp -r "$S/policies/default" "$T/pol"
conf() {	# conf CUSTOMERS_PER_APP [extra lines]
	printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/pol\nlua_dir = %s/lua\nworkload = wl-eu-1\n%s\n[params]\ncustomers_per_app = %s\n' \
		"$T" "$T" "$T" "$S" "${2:-}" "$1" >"$T/xtcmk.conf"
}
app_of() { $C --json customer show "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["customer"]["app"])'; }
hash() { $C --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"]["hash"])'; }
add() {
	$C customer add "$1" --tenant 11111111-1111-4111-8111-11111111111$2 \
		--key-uri "https://kv-$1.vault.local/keys/k" --label region=eu >/dev/null
}

conf 1
"$B/agent/xtcmkd" -c "$T/xtcmk.conf" 2>"$T/agent.log" &
PID=$!
for _ in $(seq 100); do [ -S "$T/s.sock" ] && break; sleep 0.05; done
$C workload add wl-eu-1 --client-id 21111111-1111-4111-8111-111111111111 \
	--principal-id 31111111-1111-4111-8111-111111111111 --label region=eu >/dev/null
add c1 1 && add c2 2
[ "$(app_of c1)" != "$(app_of c2)" ] && ok "customers_per_app = 1: two applications" ||
	bad "customers_per_app = 1 gave one application"

# New params through `xtcmkctl reload`.
conf 5
if $C reload >/dev/null 2>&1 && add c3 3 && [ "$(app_of c3)" = "$(app_of c1)" ]; then
	ok "reload re-reads [params]: customers_per_app = 5 fills the first application"
else
	bad "reload did not apply the new [params]"
fi
h=$(hash)
grep -q "take effect at the next restart" "$T/agent.log" &&
	bad "a reload changing only [params] warned about a restart" ||
	ok "a reload changing only [params] needs no restart"

# A broken config is refused with file:line; the running set keeps serving.
printf '[agent]\nsocket = %s/s.sock\n[params]\ncustomers_per_app = 5\n[polcy]\n' "$T" >"$T/xtcmk.conf"
out=$($C reload 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "xtcmk.conf:5: unknown section \[polcy\]" <<<"$out"; then
	ok "broken config refused: $out"
else
	bad "broken config: rc=$rc out=$out"
fi
[ "$(hash)" = "$h" ] && add c4 4 && [ "$(app_of c4)" = "$(app_of c1)" ] &&
	ok "after the refusal the previous set and params keep serving" ||
	bad "the previous set stopped serving"

# The same through SIGHUP: logged, still serving.
kill -HUP "$PID"
for _ in $(seq 50); do grep -q "reload refused" "$T/agent.log" && break; sleep 0.05; done
grep -q "reload refused.*unknown section \[polcy\]" "$T/agent.log" && kill -0 "$PID" &&
	[ "$($C --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"]["reloads_refused"])')" -ge 2 ] &&
	ok "SIGHUP with a broken config: refusal logged, agent serving" ||
	bad "SIGHUP refusal"

# A broken policy file is refused the same way.
conf 5
cp "$T/pol/role.lua" "$T/role.lua.good"
printf 'return {\n' >"$T/pol/role.lua"
out=$($C reload 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "role.lua:" <<<"$out" && [ "$(hash)" = "$h" ] &&
	ok "broken policy refused naming role.lua, hash unchanged" || bad "broken policy: $out"
cp "$T/role.lua.good" "$T/pol/role.lua"

# Settings a reload cannot change are reported, the rest applies.
conf 2 "max_frame = 4096"
$C reload >/dev/null 2>&1 && add c5 5 &&
	grep -q "take effect at the next restart" "$T/agent.log" &&
	ok "other settings changed: reload applies [params], warns about a restart" ||
	bad "restart-only settings"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
