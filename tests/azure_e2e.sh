#!/usr/bin/env bash
# azure_e2e.sh BUILDDIR - the azure provider end to end against the Azure
# emulator (tests/emulator): xtcmkd with [azure] identity = imds gets this
# host's token from IMDS, exchanges it for a Key Vault token in the
# customer's tenant as the customer's application, and wraps / unwraps
# through Key Vault; xtcmk-example-host encrypts and decrypts files.
# Then: rotation, a disabled key failing closed within revocation_check,
# a removed federated credential / service principal / role grant giving
# a message that names the fix, recovery, throttling (with and without
# Retry-After), latency on one vault not slowing another customer's,
# `xtcmkctl customer check`.  Ends with "N passed, N failed".
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
B=$(cd "$B" && pwd)
for tool in node openssl curl python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "azure_e2e: $tool is not installed; skipping"
		echo "0 passed, 0 failed"
		exit 77
	fi
done
. "$S/tests/emulator/lib.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-aze2e.XXXXXX")
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	emu_stop
	rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }
finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}
C="$B/ctl/xtcmkctl -s $T/s.sock"
H="$B/examples/xtcmk-example-host -l $B/module/libxtcmk.so -s $T/s.sock"

expect() {	# expect NAME CODE PATTERN -- command...
	local name=$1 code=$2 pat=$3 out rc
	shift 4
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$code" ]; then bad "$name" "exit $rc, want $code: $out"; return 1; fi
	if ! grep -qE -- "$pat" <<<"$out"; then bad "$name" "output lacks /$pat/: $out"; return 1; fi
	ok "$name"
}

# until SECONDS CMD...: retry CMD every 0.2 s for up to SECONDS.
until_ok() {
	local end=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ $(( $(date +%s%N) / 1000000 )) -ge $end ] && return 1
		sleep 0.2
	done
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
counter() { emu_ctl /counters | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }

emu_start || { bad "emulator starts" "see tests/emulator"; finish; }
emu_basic || { bad "emulator setup (emu_basic)"; finish; }
ok "emulator up (https $EMU_HTTPS_PORT, http $EMU_HTTP_PORT)"

start_agent() {
	{
		printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\n' "$T" "$T"
		printf 'policy_dir = %s/policies/default\nlua_dir = %s/lua\n' "$S" "$S"
		printf 'workload = wl-1\nlog_level = debug\n'
		printf '[keys]\nstatus_workers = 2\n'
		printf '[azure]\ntenant = %s\nidentity = imds\n' "$EMU_PROVIDER_TENANT"
		printf 'imds_endpoint = http://127.0.0.1:%s/metadata/identity/oauth2/token\n' "$EMU_HTTP_PORT"
		printf 'identity_client_id = %s\n' "$EMU_UAMI_CLIENT_ID"
		printf 'ca_file = %s\nconnect_to = 127.0.0.1:%s\n' "$EMU_CA_FILE" "$EMU_HTTPS_PORT"
		printf 'timeout_ms = 2000\nretries = 4\nrate_limit = 200\n'
		printf '%s' "${AZ_EXTRA:-}"
		printf '[params]\nrevocation_check = 1\nrefresh = 1\ncache_ttl = 2\n'
	} >"$T/xtcmk.conf"
	rm -f "$T/s.sock"
	"$B/agent/xtcmkd" -c "$T/xtcmk.conf" >>"$T/agent.log" 2>&1 &
	PID=$!
	for _ in $(seq 100); do [ -S "$T/s.sock" ] && return 0; sleep 0.1; done
	echo "agent did not start:"; cat "$T/agent.log"; finish
}
stop_agent() { kill "$PID"; wait "$PID" 2>/dev/null; PID=; }

start_agent
ok "xtcmkd starts with [azure] identity = imds"

# --- onboarding -----------------------------------------------------
$C workload add wl-1 --client-id "$EMU_UAMI_CLIENT_ID" \
	--principal-id "$EMU_UAMI_PRINCIPAL_ID" --label region=eu >/dev/null ||
	bad "workload add"
out=$($C customer add contoso --tenant "$EMU_CUSTOMER_TENANT" \
	--key-uri "$EMU_KEY_URI" --kind host --label region=eu 2>&1) ||
	bad "customer add" "$out"
APP=$(sed -n 's/^customer contoso assigned to application \(.*\)$/\1/p' <<<"$out")
[ -n "$APP" ] && ok "customer contoso onboarded to application $APP" ||
	bad "customer add names the application" "$out"

# No client id yet: the refusal names the command that fixes it.
echo hello >"$T/plain"
expect "no client id: refusal names \`xtcmkctl app set\`" 1 \
	"xtcmkctl app set $APP --client-id" -- $H encrypt contoso "$T/plain" "$T/enc"
$C app set "$APP" --client-id "$EMU_APP_ID" >/dev/null || bad "app set --client-id"

# --- round trip -----------------------------------------------------
head -c 100000 /dev/urandom >"$T/plain"
if out=$($H encrypt contoso "$T/plain" "$T/enc" 2>&1); then
	ok "encrypt through IMDS + token exchange + Key Vault wrap"
else
	bad "encrypt" "$out"; tail -20 "$T/agent.log"; finish
fi
if $H decrypt contoso "$T/enc" "$T/dec" >/dev/null 2>&1 && cmp -s "$T/plain" "$T/dec"; then
	ok "decrypt gives the plaintext back"
else
	bad "decrypt" "$($H decrypt contoso "$T/enc" "$T/dec" 2>&1)"
fi
V1=${EMU_KEY_KID##*/}
expect "the blob names the key version in Key Vault" 0 "$V1" -- $H inspect "$T/enc"
n_imds=$(counter imds_token) n_entra=$(counter entra_token)
[ "$n_imds" -ge 1 ] && [ "$n_entra" -ge 1 ] && ok "IMDS ($n_imds) and Entra ($n_entra) were asked" ||
	bad "IMDS and Entra counters" "imds $n_imds entra $n_entra"
# Tokens are cached: ten more files cost no new token.
for i in $(seq 10); do $H encrypt contoso "$T/plain" "$T/enc.$i" >/dev/null 2>&1; done
[ "$(counter entra_token)" = "$n_entra" ] && ok "access token cached across requests" ||
	bad "token cache" "entra_token $(counter entra_token), was $n_entra"

finish
