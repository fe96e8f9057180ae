#!/usr/bin/env bash
# luks.sh BUILDDIR - the cryptsetup LUKS2 token plugin and xtcmk-luks(8)
# against the real agent and the real cryptsetup, on a LUKS2 image file.
#
# cryptsetup loads token plugins only from its compiled-in directory, so
# every cryptsetup run that should see the plugin runs in a private mount
# namespace (unshare -m) with a temporary directory holding the built
# plugin bind-mounted over that directory: nothing is installed into the
# system.  --test-passphrase needs no device-mapper.
#
# Cases: enrol; unlock through the plugin (and not without it); the key
# disabled -> refused within the revocation check interval; re-enabled ->
# unlocks; rotate + rewrap -> the key id changes, the old version can be
# disabled and the volume still unlocks; a bit-flipped blob -> clear
# error; malformed tokens refused at import by the validate hook; the
# agent stopped or down -> a clear error within a bound.
set -u
B=$(cd "${1:?usage: luks.sh BUILDDIR}" && pwd)
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
if ! command -v cryptsetup >/dev/null; then
	echo "SKIP: cryptsetup is not installed (apt-get install cryptsetup-bin)"
	exit 77
fi
T=$(mktemp -d /tmp/xtcmk-luks.XXXXXX)
PID=
cleanup() {
	if [ -n "$PID" ]; then
		kill -CONT "$PID" 2>/dev/null
		kill "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
now() { date +%s%N; }
ms() { echo $((($(now) - $1) / 1000000)); }
C="$B/ctl/xtcmkctl -s $T/s.sock"
L=$B/luks/xtcmk-luks
KEY=https://contoso-kv.vault.local/keys/cmk

# cryptsetup's plugin directory, as the binary itself reports it.
TOKDIR=$(cryptsetup --help | sed -n 's/^LUKS2 external token plugin path: \(.*\)\.$/\1/p')
if [ -z "$TOKDIR" ]; then
	bad "cryptsetup --help names no external token plugin path (built without plugin support?)"
	exit 1
fi
mkdir "$T/tokens"
cp "$B/luks/libcryptsetup-token-xtcmk.so" "$T/tokens/"
NS=(unshare -m)
[ "$(id -u)" = 0 ] || NS=(unshare -rm)
# A plugin built with -Db_sanitize needs its runtimes loaded first, as
# cryptsetup itself is not instrumented.
PRELOAD=$(ldd "$B/luks/libcryptsetup-token-xtcmk.so" |
	awk '/lib(asan|ubsan)\.so/ { print $3 }' | sort | tr '\n' ' ')
# cs ARGS: cryptsetup with our plugin in its token directory.  The plugin
# finds the built libxtcmk.so.1 through LD_LIBRARY_PATH.
cs() {
	LD_PRELOAD=$PRELOAD LD_LIBRARY_PATH=$B/module "${NS[@]}" bash -c \
	    'mount --bind "$1" "$2" && shift 2 && exec cryptsetup "$@"' \
	    _ "$T/tokens" "$TOKDIR" "$@"
}
unwraps() {
	$C --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"]["dek_unwrap"])'
}
keystat() {	# keystat revocations|restores
	$C --json stats | python3 -c "import json,sys; print(json.load(sys.stdin)['keys']['$1'])"
}
unlock() {	# unlock: 0 if the token alone opens the image; stderr in $T/err
	cs open --test-passphrase --token-only "$T/img" 2>"$T/err"
}

# The agent: local key provider, short refresh and revocation intervals.
cat >"$T/xtcmk.conf" <<CONF
[agent]
socket = $T/s.sock
state_dir = $T/state
policy_dir = $S/policies/default
lua_dir = $S/lua
workload = wl-eu-1
[params]
refresh = 2
revocation_check = 2
cache_ttl = 60
CONF
"$B/agent/xtcmkd" -c "$T/xtcmk.conf" 2>"$T/agent.log" &
PID=$!
for _ in $(seq 100); do [ -S "$T/s.sock" ] && break; sleep 0.05; done
# Onboarding as scripts/demo.sh does it: workload, key, customer.
$C workload add wl-eu-1 --client-id 21111111-1111-4111-8111-111111111111 \
	--principal-id 31111111-1111-4111-8111-111111111111 --label region=eu >/dev/null &&
	$C key create "$KEY" >/dev/null &&
	$C customer add contoso --tenant 11111111-1111-4111-8111-111111111111 \
	--key-uri "$KEY" --label region=eu >/dev/null ||
	{ bad "agent setup failed"; cat "$T/agent.log"; exit 1; }

# A LUKS2 image with a key file in keyslot 0.
truncate -s 32M "$T/img"
head -c 64 /dev/urandom >"$T/keyfile"
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 \
	--pbkdf-force-iterations 1000 "$T/img" "$T/keyfile" ||
	{ bad "luksFormat failed"; exit 1; }

# 1. Enrol.
out=$("$L" enrol "$T/img" --customer contoso --key-file "$T/keyfile" \
	--socket "$T/s.sock" 2>&1)
if [[ $out =~ ^token\ 0:\ customer\ contoso,\ key\ ($KEY/[0-9a-f]{32}),\ keyslot\ 1$ ]]; then
	kid1=${BASH_REMATCH[1]}
	ok "enrol: $out"
else
	bad "enrol: $out"
	exit 1
fi
dump=$(cs luksDump "$T/img")
grep -q "0: xtcmk" <<<"$dump" && grep -q "customer:   contoso" <<<"$dump" &&
	grep -q "key id:     $kid1" <<<"$dump" &&
	grep -A8 "0: xtcmk" <<<"$dump" | grep -q "Keyslot:    1" &&
	ok "luksDump shows the token (plugin dump hook) bound to keyslot 1" ||
	bad "luksDump: $dump"
grep -A6 "^  1: luks2" <<<"$dump" | grep -q "PBKDF:      pbkdf2" &&
	ok "keyslot 1 uses pbkdf2" || bad "keyslot 1 PBKDF: $dump"
echo "wrong" >"$T/wrongkey"
"$L" enrol "$T/img" --customer contoso --key-file "$T/wrongkey" \
	--socket "$T/s.sock" >/dev/null 2>"$T/e2"
[ $? -ne 0 ] && grep -q "key file does not unlock" "$T/e2" &&
	ok "enrol with a wrong key file refused: $(cat "$T/e2")" ||
	bad "enrol with a wrong key file: $(cat "$T/e2")"
"$L" enrol "$T/img" --customer nobody --key-file "$T/keyfile" \
	--socket "$T/s.sock" >/dev/null 2>"$T/e2"
[ $? -ne 0 ] && grep -q "customer nobody: not found" "$T/e2" &&
	ok "enrol of an unknown customer refused: $(cat "$T/e2")" ||
	bad "enrol of an unknown customer: $(cat "$T/e2")"

# 2. Unlock with the token only, through the agent.
u0=$(unwraps)
t0=$(now)
if unlock; then
	t_unlock=$(ms "$t0")
	ok "token-only unlock through the plugin in $t_unlock ms"
else
	bad "token-only unlock: $(cat "$T/err")"
fi
[ "$(unwraps)" = $((u0 + 1)) ] && ok "the unlock cost one agent unwrap" ||
	bad "agent unwraps $u0 -> $(unwraps), expected one more"
# Ten more, against cryptsetup with the key file (keyslot 0, the same
# PBKDF) and plugins off, since cryptsetup tries tokens before a key file:
# what the token costs over a local key.
t0=$(now)
for _ in $(seq 10); do unlock || bad "unlock: $(cat "$T/err")"; done
t_unlock10=$(($(ms "$t0") / 10))
t0=$(now)
for _ in $(seq 10); do
	cs open --test-passphrase --disable-external-tokens \
		--key-file "$T/keyfile" --key-slot 0 "$T/img" ||
		bad "key file unlock"
done
t_keyfile10=$(($(ms "$t0") / 10))
[ "$(unwraps)" = $((u0 + 11)) ] && ok "10 more unlocks: $t_unlock10 ms each (key file: $t_keyfile10 ms), one unwrap each" ||
	bad "agent unwraps $u0 -> $(unwraps), expected 11 more"
cs --debug open --test-passphrase --token-only "$T/img" 2>&1 |
	grep -q "Token handler xtcmk-.* loaded successfully" &&
	ok "cryptsetup loaded our plugin from $TOKDIR" || bad "plugin not loaded"
cryptsetup open --test-passphrase --token-only "$T/img" 2>/dev/null &&
	bad "unlocked without the plugin" ||
	ok "without the plugin the token does not unlock (the plugin did the work)"
[ ! -e "$TOKDIR/libcryptsetup-token-xtcmk.so" ] &&
	ok "nothing installed into $TOKDIR" || echo "note: a plugin is installed in $TOKDIR"

# 3. The customer disables the key: refused within the check interval.
r0=$(keystat revocations)
$C key disable "$KEY" >/dev/null
t0=$(now)
t_revoke=
while [ $(($(now) - t0)) -lt 15000000000 ]; do
	if ! unlock; then t_revoke=$(ms "$t0"); break; fi
	sleep 0.2
done
if [ -n "$t_revoke" ] && [ "$t_revoke" -le 6000 ] && grep -q "revoked" "$T/err"; then
	ok "key disabled: unlock refused after $t_revoke ms (check interval 2 s): $(grep xtcmk "$T/err")"
else
	bad "key disabled: refused after '${t_revoke:-never}' ms: $(cat "$T/err")"
fi
[ "$(keystat revocations)" -gt "$r0" ] && ok "the agent counted the revocation" ||
	bad "revocations did not grow"
if unlock; then
	bad "a second unlock after revocation succeeded"
else
	grep -q "revoked" "$T/err" && ok "stays refused while disabled" ||
		bad "second unlock while disabled: $(cat "$T/err")"
fi

# 4. Re-enabled: unlocks again, no change to the volume.
$C key enable "$KEY" >/dev/null
t0=$(now)
t_restore=
while [ $(($(now) - t0)) -lt 15000000000 ]; do
	if unlock; then t_restore=$(ms "$t0"); break; fi
	sleep 0.2
done
[ -n "$t_restore" ] && ok "key re-enabled: unlocks again after $t_restore ms" ||
	bad "key re-enabled: still refused: $(cat "$T/err")"

# 5. Rotation: rewrap moves the blob to the new version, same keyslot.
$C key rotate "$KEY" >/dev/null
sleep 3	# the policy's refresh interval (2 s)
out=$("$L" rewrap "$T/img" --token 0 2>&1)
kid2=$("$L" show "$T/img" | sed -n 's/^token 0: customer contoso, key \([^,]*\),.*/\1/p')
if [[ $out == "token 0: key $kid1 -> $kid2" ]] && [ "$kid2" != "$kid1" ] &&
    [[ $kid2 =~ ^$KEY/[0-9a-f]{32}$ ]]; then
	ok "rewrap: $out"
else
	bad "rewrap: '$out', show: $kid2"
fi
unlock && ok "unlocks after rewrap" || bad "after rewrap: $(cat "$T/err")"
out=$("$L" rewrap "$T/img" --token 0 2>&1)
[[ $out == "token 0: already at the current key version $kid2" ]] &&
	ok "a second rewrap changes nothing" || bad "second rewrap: $out"
# The old version no longer matters: disable it, the volume still opens.
$C key disable "$kid1" >/dev/null 2>&1 &&
	{ sleep 3; unlock && ok "old version $kid1 disabled: still unlocks" ||
	bad "old version disabled: $(cat "$T/err")"; } ||
	echo "note: xtcmkctl cannot disable a single version"

# 6. A bit-flipped blob: a clear error, not a revocation.
cs token export --token-id 0 "$T/img" >"$T/tok.json"
python3 - "$T/tok.json" >"$T/flip.json" <<'PY'
import base64, json, sys
t = json.load(open(sys.argv[1]))
b = bytearray(base64.b64decode(t["xtcmk-blob"]))
b[len(b) - 40] ^= 0x01		# inside the wrapped DEK
t["xtcmk-blob"] = base64.b64encode(bytes(b)).decode()
print(json.dumps(t))
PY
if cs token import --token-id 0 --token-replace --json-file "$T/flip.json" "$T/img"; then
	r0=$(keystat revocations)
	unlock && bad "bit-flipped blob unlocked" || {
		grep -q "corrupt" "$T/err" &&
		ok "bit-flipped blob refused: $(grep xtcmk "$T/err")" ||
		bad "bit-flipped blob: $(cat "$T/err")"; }
	[ "$(keystat revocations)" = "$r0" ] &&
		ok "a damaged blob does not count as a revocation" ||
		bad "a damaged blob marked the customer revoked"
	cs token import --token-id 0 --token-replace --json-file "$T/tok.json" "$T/img"
	unlock && ok "original token restored: unlocks" || bad "restore: $(cat "$T/err")"
else
	bad "could not import the bit-flipped token"
fi

# 7. Malformed tokens are refused at import by the validate hook.
malformed() {	# malformed NAME PYTHON-EXPR-ON-t EXPECTED-MESSAGE
	python3 -c "import json,sys; t=json.load(open(sys.argv[1])); $2; print(json.dumps(t))" \
		"$T/tok.json" >"$T/bad.json"
	if cs token import --token-id 5 --json-file "$T/bad.json" "$T/img" 2>"$T/e2"; then
		bad "$1: imported"
		cs token remove --token-id 5 "$T/img"
	elif grep -q "xtcmk token refused: $3" "$T/e2"; then
		ok "$1 refused: $(grep xtcmk "$T/e2")"
	else
		bad "$1: $(cat "$T/e2")"
	fi
}
malformed "bad base64" 't["xtcmk-blob"] = "not*base64!"' '"xtcmk-blob" is not valid base64'
malformed "missing customer" 'del t["xtcmk-customer"]' 'token lacks "xtcmk-customer"'
malformed "missing blob" 'del t["xtcmk-blob"]' 'token lacks "xtcmk-blob"'
malformed "numeric customer" 't["xtcmk-customer"] = 7' '"xtcmk-customer" must be a string'
malformed "string timeout" 't["xtcmk-timeout-ms"] = "3000"' '"xtcmk-timeout-ms" must be an integer'
malformed "future version" 't["xtcmk-version"] = 2' 'token format 2 is not 1'
malformed "other customer" 't["xtcmk-customer"] = "fabrikam"' '"xtcmk-customer" is fabrikam but the blob belongs to contoso'
malformed "relative socket" 't["xtcmk-socket"] = "s.sock"' '"xtcmk-socket" must be an absolute path'
malformed "not a blob" 't["xtcmk-blob"] = "aGVsbG8gd29ybGQ="' '"xtcmk-blob" is not a wrapped data key'
[ "$(cs token export --token-id 5 "$T/img" 2>/dev/null)" = "" ] &&
	ok "no malformed token was stored" || bad "a malformed token was stored"

# 8. The agent stopped (accepts nothing): fails at the token's deadline,
# the default 3 s or what enrol --timeout recorded.
out=$("$L" enrol "$T/img" --customer contoso --key-file "$T/keyfile" \
	--socket "$T/s.sock" --timeout 1000 2>&1)
[[ $out == "token 1: customer contoso, key $kid2, keyslot 2" ]] &&
	"$L" show "$T/img" | grep -q "^token 1: .*, timeout 1000 ms$" &&
	ok "second token with a 1000 ms timeout: $out" || bad "enrol --timeout: $out"
kill -STOP "$PID"
t0=$(now)
cs open --test-passphrase --token-only --token-id 0 "$T/img" 2>"$T/err" &&
	bad "unlocked with the agent stopped"
t_stopped=$(ms "$t0")
if [ "$t_stopped" -ge 2900 ] && [ "$t_stopped" -le 5000 ] &&
    grep -q "deadline passed" "$T/err"; then
	ok "agent stopped: token 0 refused in $t_stopped ms (timeout 3000 ms): $(grep xtcmk "$T/err")"
else
	bad "agent stopped: token 0 after $t_stopped ms: $(cat "$T/err")"
fi
t0=$(now)
cs open --test-passphrase --token-only --token-id 1 "$T/img" 2>"$T/err" &&
	bad "unlocked with the agent stopped"
t_stopped1=$(ms "$t0")
if [ "$t_stopped1" -ge 900 ] && [ "$t_stopped1" -le 2500 ] &&
    grep -q "deadline passed" "$T/err"; then
	ok "agent stopped: token 1 refused in $t_stopped1 ms (timeout 1000 ms)"
else
	bad "agent stopped: token 1 after $t_stopped1 ms: $(cat "$T/err")"
fi
kill -CONT "$PID"
cs open --test-passphrase --token-only --token-id 1 "$T/img" 2>"$T/err" &&
	ok "agent continued: token 1 unlocks" || bad "token 1: $(cat "$T/err")"

# 9. The agent down: a clear error, quickly.
kill "$PID"
wait "$PID" 2>/dev/null
PID=
t0=$(now)
unlock && bad "unlocked with the agent down" || true
t_down=$(ms "$t0")
if [ "$t_down" -le 5000 ] && grep -q "xtcmkd is not reachable" "$T/err"; then
	ok "agent down: refused in $t_down ms: $(grep xtcmk "$T/err")"
else
	bad "agent down: $t_down ms: $(cat "$T/err")"
fi

echo "measured: unlock ${t_unlock:-?} ms (mean of 10: ${t_unlock10:-?} ms, key file ${t_keyfile10:-?} ms)," \
	"revocation ${t_revoke:-?} ms," \
	"restore ${t_restore:-?} ms, agent stopped ${t_stopped:-?}/${t_stopped1:-?} ms" \
	"(timeout 3000/1000 ms), agent down ${t_down:-?} ms"
echo "luks.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
