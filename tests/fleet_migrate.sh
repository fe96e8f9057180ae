#!/usr/bin/env bash
# fleet_migrate.sh - from one host to a fleet and back (xtcmk-fleet(7)):
# a SQLite registry exported and imported into etcd (a real member with
# TLS, client certificates and user/password auth, from a test CA), the
# two exports identical, `xtcmkctl check` clean on both backends, a
# second agent mirroring the same registry, a repeat import changing
# nothing, the way back into SQLite, a registry with objects etcd lacks
# reported as diverged and kept, and wrong credentials refused.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d /tmp/xtcmk-fleetmig.XXXXXX)
. "$S/tests/fleet_lib.sh"
cleanup() { agents_stop_all; etcd_stop_all; [ -n "${FLEET_KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
TIMEOUT_MS=3000

# --- a test CA, the member's and a client's certificates ------------------
P=$T/pki
mkdir -p "$P"
gen() {	# gen NAME CN EXT
	openssl req -newkey rsa:2048 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" \
		-subj "${2:+/CN=$2}${2:-/O=xtcmk}" 2>/dev/null &&
	openssl x509 -req -in "$P/$1.csr" -CA "$P/$4.pem" -CAkey "$P/$4.key" \
		-CAcreateserial -out "$P/$1.pem" -days 2 \
		-extfile <(printf '%s\n' "$3") 2>/dev/null
}
for ca in ca other-ca; do
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/$ca.key" \
		-out "$P/$ca.pem" -days 2 -subj "/CN=xtcmk test $ca" 2>/dev/null
done
gen server etcd "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth" ca || bad "server certificate"
# No CN: etcd's gateway refuses client certificates with one when auth
# is on ("CommonName ... will be ignored"), see xtcmk-fleet(7).
gen client "" "extendedKeyUsage=clientAuth" ca || bad "client certificate"

# --- one TLS member with auth ---------------------------------------------------
read -r CP PP <<<"$(free_ports 2)"
ETCD_N=1
"$ETCD" --name m1 --data-dir "$T/etcd/m1" \
	--listen-client-urls "https://127.0.0.1:$CP" \
	--advertise-client-urls "https://127.0.0.1:$CP" \
	--listen-peer-urls "http://127.0.0.1:$PP" \
	--initial-advertise-peer-urls "http://127.0.0.1:$PP" \
	--initial-cluster "m1=http://127.0.0.1:$PP" \
	--cert-file "$P/server.pem" --key-file "$P/server.key" \
	--trusted-ca-file "$P/ca.pem" --client-cert-auth \
	--log-outputs "$T/etcd.log" --logger zap >/dev/null 2>&1 &
EPID[1]=$!
EPS="https://127.0.0.1:$CP"
tls() { ETCDCTL_API=3 "$ETCDCTL" --endpoints "$EPS" --cacert "$P/ca.pem" \
	--cert "$P/client.pem" --key "$P/client.key" "$@"; }
for _ in $(seq 50); do tls endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
printf 'hunter2-%s\n' "$$" >"$T/pw"
chmod 600 "$T/pw"
tls user add "root:hunter2-$$" >/dev/null &&
	tls user grant-role root root >/dev/null && tls auth enable >/dev/null ||
	bad "etcd auth enable"
tls --user "root:hunter2-$$" user list >/dev/null || bad "etcd auth works"
TLSCONF="ca_file = $P/ca.pem
cert_file = $P/client.pem
key_file = $P/client.key
user = root
password_file = $T/pw"

# --- a single host on SQLite ------------------------------------------------------
agent_start 1 sqlite
for r in eu us; do add_workloads 1 "$r" 2 || bad "workloads $r"; done
onboard 1 1 1 40 eu us
# Then a spare shared application of region us: c3 (a us customer) may move
# there under the default partition policy's move check.
ctl 1 app add xtcmk-us-9 --client-id 0000aaaa-1111-4111-8111-000000000001 \
	--label region=us >/dev/null || bad "app add"
ctl 1 app fic add xtcmk-us-9 wl-us-1 >/dev/null || bad "fic add"
ctl 1 customer move c3 --to xtcmk-us-9 --reason "test move" >/dev/null ||
	bad "move"
ctl 1 app set xtcmk-us-1 --client-id 0000aaaa-1111-4111-8111-000000000002 \
	>/dev/null || bad "app set"
ctl 1 registry export >"$T/sqlite.jsonl"
check "export from SQLite has every line" \
	'[ "$(grep -c "\"kind\":\"customer\"" "$T/sqlite.jsonl")" = 40 ] && [ "$(grep -c "\"kind\":\"workload\"" "$T/sqlite.jsonl")" = 4 ]'
check "check on SQLite" 'ctl 1 check >/dev/null'

# --- into etcd over TLS with auth ---------------------------------------------------
agent_start 2 /mig/ "$TLSCONF"
check "agent 2 reaches etcd over TLS with auth" \
	'[ "$(fleet_field 2 etcd_reachable)" = True ]'
out=$(ctl 2 registry import "$T/sqlite.jsonl")
n=$(wc -l <"$T/sqlite.jsonl")
check "import adds every line ($out)" '[ "$out" = "$n added, 0 already there, 0 refused" ]'
ctl 2 registry export >"$T/etcd.jsonl"
check "export from etcd is identical to the SQLite export" 'cmp -s "$T/sqlite.jsonl" "$T/etcd.jsonl"'
check "check on the etcd mirror" 'ctl 2 check >/dev/null'
check "the import was batched (few transactions)" \
	'[ "$(fleet_field 2 counters.txns)" -lt 10 ]'
out=$(ctl 2 registry import "$T/sqlite.jsonl")
check "a repeat import changes nothing ($out)" '[ "$out" = "0 added, $n already there, 0 refused" ]'
check "etcd holds the customers (etcdctl)" \
	'[ "$(tls --user "root:hunter2-$$" get /mig/c/ --prefix --keys-only | grep -c "^/mig/c/")" = 40 ]'

# --- a second agent mirrors it ------------------------------------------------------
agent_start 3 /mig/ "$TLSCONF"
converge 2 3
ctl 3 registry export >"$T/etcd3.jsonl"
check "a second agent's mirror exports the same" 'cmp -s "$T/sqlite.jsonl" "$T/etcd3.jsonl"'
check "decisions agree across backends" \
	'[ "$(ctl 3 -j decide c7 | grep -v assigned_at)" = "$(ctl 1 -j decide c7 | grep -v assigned_at)" ] && [ "$(ctl 3 -j decide c3 | grep -v assigned_at)" = "$(ctl 1 -j decide c3 | grep -v assigned_at)" ]'

# --- and back into SQLite -------------------------------------------------------------
agent_start 4 sqlite
out=$(ctl 3 registry export | ctl 4 registry import)
check "import into SQLite ($out)" '[ "$out" = "$n added, 0 already there, 0 refused" ]'
check "the way back is identical" 'cmp -s "$T/sqlite.jsonl" <(ctl 4 registry export)'
check "check on the SQLite copy" 'ctl 4 check >/dev/null'

# --- a registry with objects etcd lacks is kept and reported -------------------------
agent_kill 1
agent_conf 1 /empty/ "$TLSCONF"
agent_start 1
for _ in $(seq 50); do [ "$(fleet_field 1 diverged)" = True ] && break; sleep 0.2; done
check "switching a populated host to an empty prefix reports divergence" \
	'[ "$(fleet_field 1 diverged)" = True ] && fleet_field 1 last_error | grep -q "registry import"'
check "and deletes nothing" 'ctl 1 decide c7 >/dev/null'

# --- wrong credentials: refused, the agent stays up ---------------------------------------
agent_conf 5 /mig/ "ca_file = $P/other-ca.pem
cert_file = $P/client.pem
key_file = $P/client.key
user = root
password_file = $T/pw"
agent_start 5
sleep 1
check "a member outside ca_file is refused (verification on)" \
	'[ "$(fleet_field 5 etcd_reachable)" = False ] && fleet_field 5 last_error | grep -qi "certificate"'
printf 'wrong\n' >"$T/badpw"
agent_conf 6 /mig/ "ca_file = $P/ca.pem
cert_file = $P/client.pem
key_file = $P/client.key
user = root
password_file = $T/badpw"
agent_start 6
sleep 1
check "a wrong password is refused with etcd's reason" \
	'[ "$(fleet_field 6 etcd_reachable)" = False ] && fleet_field 6 last_error | grep -qi "authentication failed"'
out=$(ctl 6 workload add wl-z --client-id "$(ISV_GUID 7 1)" \
	--principal-id "$(ISV_GUID 7 2)" 2>&1)
check "a registry change through it is refused with the reason ($out)" \
	'grep -qi "authentication failed" <<<"$out"'
check "agents with bad credentials keep serving status" 'ctl 6 status >/dev/null'

echo "fleet_migrate.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
