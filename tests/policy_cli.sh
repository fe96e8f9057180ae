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

# Fixtures see their own params only; the host's [params] (here a prefix
# that would rename every application) only with --host-params.
printf '[agent]\nlua_dir = %s/lua\n[params]\napp_prefix = host\n' "$S" >"$T/params.conf"
expect 0 "[1-9][0-9]* passed, 0 failed" -- $CTL -c "$T/params.conf" policy test \
	--dir "$S/policies/default" "$S/policies/default/tests/partition.json"
expect 6 'expected "xtcmk-westeurope-1" got "host-westeurope-1"' -- \
	$CTL -c "$T/params.conf" policy test --dir "$S/policies/default" \
	--host-params "$S/policies/default/tests/partition.json"

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

# --- Policies run in a confined policy worker, as in the agent ----------
# tests/policy/attack.lua as the partition policy: every attack, as a
# fixture, fails with its named error within its budget (time_ms 100:
# 500 ms of wall clock each), and the command ends.
mkdir "$T/attack"
cp "$S/tests/policy/attack.lua" "$T/attack/partition.lua"
cp "$S/policies/default/role.lua" "$S/policies/default/versioning.lua" "$T/attack/"
printf '[agent]\nlua_dir = %s/lua\n[policy]\ntime_ms = 100\n' "$S" >"$T/fast.conf"
{
	echo '['
	sep=
	for a in 'xpcall:exceeded' 'xpcall_nested:exceeded' 'sort_loop:exceeded' \
	    'pattern_b:too costly' 'question:too costly' 'move:table.move of more than' \
	    'nul_app:result.app holds a NUL byte' 'write:'; do
		name=${a%%:*} err=${a#*:}
		if [ -n "$err" ]; then want="\"expect_error\": \"$err\""
		else want='"expect": {"app": "atk-1"}'; fi
		printf '%s{"name": "%s", "decision": "partition", "input": {"customer": {"id": "c-%s", "labels": {"attack": "%s"}}, "apps": [], "workloads": [{"name": "wl-eu-1", "labels": {}}], "limit": 20}, %s}\n' \
		    "$sep" "$name" "$name" "$name" "$want"
		sep=,
	done
	# Nothing the writer wrote is seen by the next call.
	printf ',{"name": "after", "decision": "partition", "input": {"customer": {"id": "c-after", "labels": {}}, "apps": [], "workloads": [{"name": "wl-eu-1", "labels": {}}], "limit": 20}, "expect": {"app": "atk-1"}}\n]\n'
} >"$T/attacks.json"
t0=$(date +%s%N)
expect 0 "^9 passed, 0 failed" -- $CTL -c "$T/fast.conf" policy test --dir "$T/attack" "$T/attacks.json"
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$ms" -lt 10000 ]; then ok; else bad "policy test of the attacks took $ms ms"; fi
# A worker that spins in C where no Lua limit reaches it (the test hook
# of xtcmk-policyd) is killed at its CPU budget with the agent's error,
# fixture after fixture, each by a fresh worker.
t0=$(date +%s%N)
expect 6 "killed after exceeding the CPU time limit of 100 ms \(it ran 1[5-9][0-9] ms\)" -- \
	env XTCMK_TEST_POLICYD=spin $CTL -c "$T/fast.conf" policy test --dir "$S/policies/default" \
	"$S/policies/default/tests/role.json"
ms=$((($(date +%s%N) - t0) / 1000000))
n=$(jq length "$S/policies/default/tests/role.json" 2>/dev/null || echo 5)
if [ "$ms" -lt $((n * 500 + 5000)) ]; then ok; else bad "spinning fixtures took $ms ms"; fi
out=$(env XTCMK_TEST_POLICYD=spin $CTL -c "$T/fast.conf" policy test --dir "$S/policies/default" \
	"$S/policies/default/tests/role.json" 2>&1)
k=$(grep -c "killed after exceeding the CPU time limit" <<<"$out")
if [ "$k" -ge 2 ]; then ok; else bad "spin: $k fixtures killed: $out"; fi
# The worker is confined (seccomp): opening a file kills it, in a call
# and while the set is compiled and self-tested (policy check).  An
# AddressSanitizer build's worker has no seccomp filter (see policyd.c):
# the plain build checks this.
if grep -q __asan_init "$B/agent/policyworker/xtcmk-policyd"; then
	asan=1
	echo "AddressSanitizer build: seccomp checks skipped"
else
	asan=0
	expect 6 "SIGSYS: a system call its seccomp filter forbids" -- \
		env XTCMK_TEST_POLICYD=open $CTL -c "$T/fast.conf" policy test --dir "$S/policies/default" \
		"$S/policies/default/tests/role.json"
	expect 6 "compiling and self-testing it\): its policy worker killed by signal 31 \(SIGSYS" -- \
		env XTCMK_TEST_POLICYD=load-open $CTL -c "$T/fast.conf" policy check "$S/policies/default"
fi
# isolation = inprocess (for comparison) runs Lua in the command itself.
printf '[agent]\nlua_dir = %s/lua\n[policy]\nisolation = inprocess\n' "$S" >"$T/inproc.conf"
expect 0 "ok \(hash" -- env XTCMK_TEST_POLICYD=load-open $CTL -c "$T/inproc.conf" policy check "$S/policies/default"
# The worker dies with an interrupted command (PR_SET_PDEATHSIG).
XTCMK_TEST_POLICYD=load-spin $CTL -c "$T/fast.conf" policy check "$S/policies/default" >/dev/null 2>&1 &
cpid=$!
wpid=
for _ in $(seq 100); do
	wpid=$(ps -o pid= --ppid "$cpid" | tr -d ' ')
	[ -n "$wpid" ] && break
	sleep 0.05
done
kill -KILL "$cpid"; wait "$cpid" 2>/dev/null
for _ in $(seq 100); do [ -d "/proc/$wpid" ] || break; sleep 0.02; done
if [ -n "$wpid" ] && [ ! -d "/proc/$wpid" ]; then ok; else bad "worker '$wpid' outlived its xtcmkctl"; fi

# xtcmkd --check-config
printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/policies/default\nlua_dir = %s/lua\n[params]\ncustomers_per_app = 10\n' \
	"$T" "$T" "$S" "$S" >"$T/good.conf"
expect 0 "policy set [0-9a-f]{64}: ok" -- "$B/agent/xtcmkd" --check-config -c "$T/good.conf"
printf '[agent]\nmax_connections = many\n' >"$T/bad.conf"
expect 1 "bad.conf:2: max_connections = 'many'" -- "$B/agent/xtcmkd" --check-config -c "$T/bad.conf"
printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/broken\nlua_dir = %s/lua\n' "$T" "$T" "$T" "$S" >"$T/badpol.conf"
expect 1 "policies:" -- "$B/agent/xtcmkd" --check-config -c "$T/badpol.conf"
# A self-test that loops in an xpcall message handler: refused, bounded,
# named; and the set is compiled in a confined worker (load-open).
cp -r "$S/policies/default" "$T/hostile"
printf 'return { name = "looper", decide = function() return {} end,\n  selftest = function() xpcall(error, function() while true do end end) end }\n' \
	>"$T/hostile/partition.lua"
printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/hostile\nlua_dir = %s/lua\n[policy]\ntime_ms = 100\n' \
	"$T" "$T" "$T" "$S" >"$T/hostile.conf"
t0=$(date +%s%N)
expect 1 "policy 'looper' \(partition.lua\): .*exceeded" -- "$B/agent/xtcmkd" --check-config -c "$T/hostile.conf"
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$ms" -lt 5000 ]; then ok; else bad "check-config of a looping self-test took $ms ms"; fi
[ "$asan" = 1 ] || expect 1 "SIGSYS: a system call its seccomp filter forbids" -- \
	env XTCMK_TEST_POLICYD=load-open "$B/agent/xtcmkd" --check-config -c "$T/good.conf"
expect 0 "^xtcmkd [0-9]" -- "$B/agent/xtcmkd" -V
expect 2 "usage" -- "$B/agent/xtcmkd" --no-such-option

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
