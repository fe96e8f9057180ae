#!/usr/bin/env bash
# secrets.sh - no secret leaves the agent through its logs, and its files
# and socket have the modes xtcmkd(8) promises.
#
# A full scenario (workloads, keys, customers, decisions, envelope
# encryption through xtcmk-example-host, rotation, rewrap, revocation)
# runs against an agent at log_level = debug.  Then the agent's stderr and
# the decision log are scanned for: any line of the base64 body of the
# private key PEM files under state/keys, "PRIVATE KEY", JWT-looking
# strings (eyJ...), and every data key the test obtained (test_guest
# --print-deks), in hex and base64.  The DEK cache must be locked memory
# (VmLck > 0) unless RLIMIT_MEMLOCK is 0.
set -u
B=${1:?build dir}
B=$(cd "$B" && pwd)
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
CTL=$B/ctl/xtcmkctl
HOST=$B/examples/xtcmk-example-host
GUEST=$B/tests/test_guest
export XTCMK_BUILDDIR=$B
T=$(mktemp -d /tmp/xtcmk-secrets.XXXXXX)
AGENT=
cleanup() {
	if [ -n "$AGENT" ]; then kill "$AGENT" 2>/dev/null; wait "$AGENT" 2>/dev/null; fi
	[ -n "${XTCMK_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
run() {		# run command...: must exit 0
	local out
	if out=$("$@" 2>&1); then ok; else bad "$* exited $?: $out"; fi
}

SOCK=$T/xtcmkd.sock
STATE=$T/state
cat >"$T/xtcmk.conf" <<EOF
[agent]
socket = $SOCK
state_dir = $STATE
policy_dir = $S/policies/default
lua_dir = $S/lua
workload = wl-eu-1
log_level = debug
EOF
C="$CTL -c $T/xtcmk.conf -s $SOCK"

"$B/agent/xtcmkd" -c "$T/xtcmk.conf" 2>"$T/agent.log" &
AGENT=$!
for _ in $(seq 500); do [ -S "$SOCK" ] && $C status >/dev/null 2>&1 && break; sleep 0.02; done
run $C status

# --- the scenario --------------------------------------------------------
V=https://demo.vault.local/keys
run $C workload add wl-eu-1 --client-id 11111111-1111-4111-8111-111111111111 \
	--principal-id 22222222-2222-4222-8222-222222222222 --label region=eu
run $C key create $V/sec1
run $C key create $V/sec2 --bits 3072
run $C customer add sec-1 --tenant 77777777-7777-4777-8777-777777777777 \
	--key-uri $V/sec1 --label region=eu
run $C customer add sec-2 --tenant 88888888-8888-4888-8888-888888888888 \
	--key-uri $V/sec2 --auth access-policy --kind storage,cosmosdb --label region=eu
run $C decide sec-1
run $C --json customer show sec-2
head -c 100000 /dev/urandom >"$T/plain"
H="$HOST -l $B/module/libxtcmk.so -s $SOCK"
run $H decide sec-1 sec-2
run $H encrypt sec-1 "$T/plain" "$T/enc1"
run $H encrypt sec-2 "$T/plain" "$T/enc2"
run $H decrypt sec-1 "$T/enc1" "$T/dec1"
run cmp "$T/plain" "$T/dec1"
run $C key rotate $V/sec1
run $H rewrap sec-1 "$T/enc1"
run $H decrypt sec-1 "$T/enc1" "$T/dec1b"
run cmp "$T/plain" "$T/dec1b"
run $H inspect "$T/enc1" "$T/enc2"
run $H status sec-1
run $C key status sec-1
# DEKs the test knows: fresh ones, each also unwrapped once.
if ! "$GUEST" --print-deks "$SOCK" sec-1 10 >"$T/deks" 2>"$T/deks.err" ||
    ! "$GUEST" --print-deks "$SOCK" sec-2 10 >>"$T/deks" 2>>"$T/deks.err"; then
	bad "test_guest --print-deks: $(cat "$T/deks.err")"
fi
[ "$(grep -cE '^[0-9a-f]{64}$' "$T/deks")" = 20 ] && ok || bad "expected 20 DEKs, got: $(cat "$T/deks")"
# Revocation and restore.
run $C key disable $V/sec2
run $C key enable $V/sec2
run $C --json stats

# --- VmLck: the DEK cache is locked memory --------------------------------
vmlck=$(awk '/^VmLck:/ { print $2 }' "/proc/$AGENT/status")
memlock=$(ulimit -l)
if [ "$memlock" = 0 ]; then
	echo "VmLck: skipped (RLIMIT_MEMLOCK is 0)"
elif ldd "$B/agent/xtcmkd" 2>/dev/null | grep -q libasan; then
	# ASan's mlock() interceptor does nothing and returns 0.
	echo "VmLck: skipped (ASan build: mlock is a no-op under ASan)"
elif [ "${vmlck:-0}" -gt 0 ]; then
	echo "VmLck: $vmlck kB locked (RLIMIT_MEMLOCK $memlock)"
	ok
else
	bad "agent VmLck is ${vmlck:-?} kB: the DEK cache is not locked (RLIMIT_MEMLOCK $memlock)"
fi

# --- modes --------------------------------------------------------------
mode() {	# mode PATH WANT [TYPE]
	local m
	m=$(stat -c %a "$1" 2>/dev/null)
	if [ "$m" = "$2" ]; then ok; else bad "$1: mode ${m:-missing}, want $2"; fi
	if [ -n "${3:-}" ]; then
		[ "$(stat -c %F "$1")" = "$3" ] && ok || bad "$1 is a $(stat -c %F "$1"), want $3"
	fi
}
mode "$SOCK" 666 socket
mode "$STATE" 700 directory
mode "$STATE/registry.db" 600
mode "$STATE/decisions.jsonl" 600
for f in "$STATE/registry.db-wal" "$STATE/registry.db-shm"; do
	[ -e "$f" ] && mode "$f" 600
done
nkeys=0
while IFS= read -r d; do mode "$d" 700 directory; done < <(find "$STATE/keys" -type d)
while IFS= read -r f; do
	mode "$f" 600
	nkeys=$((nkeys + 1))
done < <(find "$STATE/keys" -type f)
[ "$nkeys" -ge 4 ] && ok || bad "expected key files under $STATE/keys, found $nkeys"

# --- stop the agent (its exit must not print secrets either) -------------
kill "$AGENT"; wait "$AGENT" 2>/dev/null; AGENT=

# --- scan the logs ------------------------------------------------------
LOGS=("$T/agent.log" "$STATE/decisions.jsonl")
cat "${LOGS[@]}" >"$T/all.log"
lines=$(wc -l <"$T/all.log")
[ "$lines" -gt 20 ] && ok || bad "logs too short to mean anything ($lines lines)"
# (xtcmkd logs nothing at debug level yet; the scan covers what it logs.)

# 1. private key material: every base64 line of every PEM body.
pem_lines=0 pem_leaks=0
while IFS= read -r pem; do
	grep -q 'PRIVATE KEY' "$pem" || continue
	while IFS= read -r l; do
		case "$l" in -----*|'') continue ;; esac
		pem_lines=$((pem_lines + 1))
		# Whole lines, and their first 24 characters (a truncated dump).
		if grep -qF -- "$l" "$T/all.log" || grep -qF -- "${l:0:24}" "$T/all.log"; then
			pem_leaks=$((pem_leaks + 1))
			bad "private key material of $pem appears in the logs: $l"
		fi
	done <"$pem"
done < <(find "$STATE/keys" -name '*.pem')
[ "$pem_lines" -gt 50 ] && ok || bad "found only $pem_lines PEM body lines to look for"
[ "$pem_leaks" = 0 ] && ok

# 2. PEM armour, JWTs.
if grep -n 'PRIVATE KEY' "$T/all.log"; then bad "'PRIVATE KEY' in the logs"; else ok; fi
if grep -nE 'eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}' "$T/all.log"; then
	bad "a JWT-looking string in the logs"
else
	ok
fi

# 3. the DEKs: hex (either case) and base64 / base64url.
dek_leaks=0 ndek=0
while IFS= read -r hex; do
	[ -n "$hex" ] || continue
	ndek=$((ndek + 1))
	b64=$(printf '%s' "$hex" | xxd -r -p | base64 -w0)
	b64url=$(printf '%s' "$b64" | tr '+/' '-_' | tr -d '=')
	for pat in "$hex" "${hex:0:32}" "${b64%%=*}" "$b64url"; do
		if grep -qiF -- "$pat" "$T/all.log"; then
			dek_leaks=$((dek_leaks + 1))
			bad "DEK $hex appears in the logs (as $pat)"
			break
		fi
	done
done <"$T/deks"
[ "$dek_leaks" = 0 ] && ok
# Any 64-hex-digit run in the logs must be a known non-secret (a policy
# hash): it may not be one of the DEKs in any case.
if grep -oiE '\b[0-9a-f]{64}\b' "$T/all.log" | tr 'A-F' 'a-f' | sort -u |
    grep -qxFf "$T/deks"; then
	bad "a DEK appears as a 64-hex-digit string in the logs"
else
	ok
fi

echo "secrets: $lines log lines scanned ($(grep -c 'debug' "$T/agent.log") debug), $pem_lines PEM lines, $ndek DEKs; $pass passed, $fail failed"
[ "$fail" = 0 ]
