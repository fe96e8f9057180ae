#!/usr/bin/env bash
# policy_cli.sh - the offline commands: `xtcmkctl policy check|test` on the
# shipped policy sets and on broken ones, and `xtcmkd --check-config`.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
CTL=$B/ctl/xtcmkctl
T=$(mktemp -d /tmp/xtcmk-polcli.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() {	# expect CODE PATTERN -- command...
	local code=$1 pat=$2; shift 3
	local out rc
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$code" ]; then bad "$* exited $rc, want $code: $out"; return; fi
	if ! grep -qE -- "$pat" <<<"$out"; then bad "$*: output lacks /$pat/: $out"; return; fi
	ok
}
printf '[agent]\nlua_dir = %s/lua\n' "$S" >"$T/empty.conf"
C="$CTL -c $T/empty.conf"

for set in default examples/by-tier examples/hash-spread; do
	expect 0 "ok \(hash [0-9a-f]{12}" -- $C policy check "$S/policies/$set"
	expect 0 "[1-9][0-9]* passed, 0 failed" -- \
		$C policy test --dir "$S/policies/$set" "$S"/policies/$set/tests/*.json
done
expect 0 '"ok": true' -- $C --json policy check "$S/policies/default"

# A broken copy: syntax error, failing selftest, missing file.
cp -r "$S/policies/default" "$T/broken"
printf 'local P = {\nreturn P +\n' >"$T/broken/role.lua"
expect 6 "role.lua:[0-9]+:" -- $C policy check "$T/broken"
cp "$S/policies/default/role.lua" "$T/broken/role.lua"
sed -i 's/^function P.selftest(params)$/function P.selftest(params)\n\tif true then return false, "deliberately broken" end/' \
	"$T/broken/versioning.lua"
expect 6 "selftest failed: deliberately broken" -- $C policy check "$T/broken"
rm "$T/broken/versioning.lua"
expect 6 "needs partition.lua, role.lua and versioning.lua" -- $C policy check "$T/broken"

# A fixture that expects the wrong answer fails with exit 6 and says why.
cat >"$T/wrong.json" <<'JSON'
{"decision": "role",
 "input": {"customer": {"id": "c1", "tenant": "11111111-1111-4111-8111-111111111111",
   "key_uri": "https://kv1.vault.azure.net/keys/k", "vault_auth": "rbac",
   "kinds": ["host"], "labels": {}}, "app": {"name": "a1"}},
 "expect": {"mechanism": "access-policy"}}
JSON
expect 6 "FAIL .*mechanism" -- $C policy test --dir "$S/policies/default" "$T/wrong.json"
expect 2 "usage" -- $C policy test --dir "$S/policies/default"

# Hostile policy: an endless loop is stopped by the instruction budget.
cp -r "$S/policies/default" "$T/loop"
sed -i 's/^function P.decide(input, params)$/function P.decide(input, params)\n\twhile true do end/' "$T/loop/role.lua"
sed -i 's/^function P.selftest(params)$/function P.selftest(params)\n\tdo return true end/' "$T/loop/role.lua"
expect 6 "instruction|budget|limit" -- $C policy test --dir "$T/loop" \
	"$S/policies/default/tests/role.json"

# xtcmkd --check-config
printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/policies/default\nlua_dir = %s/lua\n[params]\ncustomers_per_app = 10\n' \
	"$T" "$T" "$S" "$S" >"$T/good.conf"
expect 0 "policy set [0-9a-f]{64}: ok" -- "$B/agent/xtcmkd" --check-config -c "$T/good.conf"
printf '[agent]\nmax_connections = many\n' >"$T/bad.conf"
expect 1 "bad.conf:2: max_connections = 'many'" -- "$B/agent/xtcmkd" --check-config -c "$T/bad.conf"
printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/broken\nlua_dir = %s/lua\n' "$T" "$T" "$T" "$S" >"$T/badpol.conf"
expect 1 "policies:" -- "$B/agent/xtcmkd" --check-config -c "$T/badpol.conf"
expect 0 "^xtcmkd [0-9]" -- "$B/agent/xtcmkd" -V
expect 2 "usage" -- "$B/agent/xtcmkd" --no-such-option

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
