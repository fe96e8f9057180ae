#!/usr/bin/env bash
# ops.sh - xtcmkd as installed and operated: a DESTDIR install with no
# build path in it, the installed agent started with the installed sample
# config through systemd-socket-activate with a NOTIFY_SOCKET this test
# reads (READY, a good reload, a refused reload), `status` naming the
# activated socket, decision-log rotation (mv + SIGHUP), a torn last line
# cut at start, one agent per state_dir, fd 3 that is not a socket,
# journal priorities, and --check-config refusing what start-up would.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d /tmp/xtcmk-ops.XXXXXX)
PID= LPID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	[ -n "$LPID" ] && kill "$LPID" 2>/dev/null
	wait 2>/dev/null
	if [ -z "${XTCMK_KEEP:-}" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
waitfor() {	# waitfor SECONDS COMMAND...: poll until COMMAND succeeds
	local n=$(($1 * 20)); shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done
	return 1
}

# --- a DESTDIR install -------------------------------------------------
D=$T/dest
if ! meson install -C "$B" --quiet --no-rebuild --destdir "$D" >"$T/install.log" 2>&1; then
	cat "$T/install.log"; bad "meson install --destdir"; exit 1
fi
prefix=$(meson introspect "$B" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
P=$D$prefix
AGENT=$P/sbin/xtcmkd CTL=$P/bin/xtcmkctl
check "installed: xtcmkd, xtcmkctl, sample config, logrotate, example policies" \
	test -x "$AGENT" -a -x "$CTL" -a -f "$P/share/doc/xtcmk/xtcmk.conf" \
	-a -f "$P/etc/logrotate.d/xtcmk" \
	-a -f "$P/share/doc/xtcmk/examples/policies/by-tier/partition.lua" \
	-a -f "$P/share/bash-completion/completions/xtcmkctl"
hits=$(for f in $(find "$D" -type f); do
	strings -a "$f" | grep -qF -e "$S" -e "$(cd "$B" && pwd)" && echo "$f"; done)
check "no source or build path in any installed file${hits:+: $hits}" test -z "$hits"
U=$P/lib/systemd/system/xtcmkd.service
check "unit: Type=notify with NotifyAccess=main" grep -qx 'Type=notify' "$U"
grep -q '^Restart=on-failure$' "$U" && grep -q "^ConditionPathExists=$prefix/etc/xtcmk/xtcmk.conf$" "$U" &&
	grep -q '^LimitNOFILE=' "$U" && grep -q '^StartLimitBurst=' "$U" &&
	grep -q "^ConditionPathExists=" "$P/lib/systemd/system/xtcmkd.socket" &&
	ok "unit: restart policy with a start limit; both units need the config" ||
	bad "unit lacks Restart=/ConditionPathExists=/LimitNOFILE=/StartLimitBurst="
grep -q 'postrotate' "$P/etc/logrotate.d/xtcmk" && grep -q -- '--signal=HUP' "$P/etc/logrotate.d/xtcmk" &&
	ok "logrotate: HUP in postrotate" || bad "logrotate config"
if command -v logrotate >/dev/null; then
	check "logrotate -d accepts the config" logrotate -d "$P/etc/logrotate.d/xtcmk"
fi

# The installed sample config, with paths moved under $T (the install is
# under DESTDIR) and the socket unused: systemd's is.
cp "$P/share/doc/xtcmk/xtcmk.conf" "$T/xtcmk.conf"
cat >>"$T/xtcmk.conf" <<CONF
[agent]
socket = $T/unused.sock
state_dir = $T/state
policy_dir = $P/etc/xtcmk/policies/default
lua_dir = $P/share/xtcmk/lua
workload = wl-eu-1
[access]
monitor_uids = 65534
CONF
chmod 0644 "$T/xtcmk.conf"
cp "$T/xtcmk.conf" "$T/good.conf"

# --- systemd-socket-activate with a NOTIFY_SOCKET we read -------------
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
' "$T/notify" "$T/notify.log" &
LPID=$!
waitfor 5 test -S "$T/notify"
: >"$T/notify.log"
env -u XTCMK_SRCDIR systemd-socket-activate -l "$T/xtcmkd.sock" -E NOTIFY_SOCKET="$T/notify" \
	"$AGENT" -c "$T/xtcmk.conf" 2>"$T/agent.log" &
PID=$!
waitfor 5 test -S "$T/xtcmkd.sock"
C="$CTL -s $T/xtcmkd.sock"
# The first connection starts the agent (as xtcmkd.socket does).
st=$(env -u XTCMK_SRCDIR $C --json status 2>&1)
waitfor 10 grep -q '^READY=1' "$T/notify.log" &&
	ok "READY=1 from the installed agent: $(grep '^READY=1' "$T/notify.log" | head -1)" ||
	{ bad "no READY=1 (notify: $(cat "$T/notify.log"); log: $(cat "$T/agent.log"))"; exit 1; }
sock=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["socket"])' "$st" 2>/dev/null)
check "status names the activated socket ($sock), not the config's" test "$sock" = "$T/xtcmkd.sock"
grep -q "from systemd" "$T/agent.log" && ok "agent log: listening on the socket from systemd" ||
	bad "agent did not take systemd's socket: $(cat "$T/agent.log")"

# A good reload: RELOADING=1 with MONOTONIC_USEC=, then READY=1.
: >"$T/notify.log"
kill -HUP "$PID"
waitfor 10 grep -q '^READY=1.*last reload ok' "$T/notify.log"
if grep -q '^RELOADING=1|MONOTONIC_USEC=[0-9][0-9]*$' "$T/notify.log" &&
	[ "$(sed -n 2p "$T/notify.log" | cut -c1-7)" = "READY=1" ] &&
	grep -q 'ERRNO=0' "$T/notify.log"; then
	ok "good reload: RELOADING=1 + MONOTONIC_USEC, then READY=1"
else
	bad "good reload notifications: $(cat "$T/notify.log")"
fi
# A refused reload: READY=1 (still serving the old set) with STATUS= and ERRNO=.
: >"$T/notify.log"
echo "[polcy]" >>"$T/xtcmk.conf"
kill -HUP "$PID"
waitfor 10 grep -q '^READY=1' "$T/notify.log"
if grep -q '^RELOADING=1' "$T/notify.log" &&
	grep -q "^READY=1|STATUS=reload refused.*xtcmk.conf:[0-9]*: unknown section \[polcy\].*|ERRNO=22$" "$T/notify.log"; then
	ok "refused reload: STATUS names file:line, ERRNO=22"
else
	bad "refused reload notifications: $(cat "$T/notify.log")"
fi
cp "$T/good.conf" "$T/xtcmk.conf"
check "agent still serving after the refused reload" $C status >/dev/null

# --- decision log rotation: mv + SIGHUP ------------------------------
$C workload add wl-eu-1 --client-id 21111111-1111-4111-8111-111111111111 \
	--principal-id 31111111-1111-4111-8111-111111111111 --label region=eu >/dev/null
add() {
	$C customer add "$1" --tenant 11111111-1111-4111-8111-1111111111$2 \
		--key-uri "https://kv-$1.vault.local/keys/k" --label region=eu >/dev/null
}
add c1 01 && add c2 02
L=$T/state/decisions.jsonl
waitfor 5 grep -q '"c2"' "$L"
before=$(wc -l <"$L")
mv "$L" "$L.1"
: >"$T/notify.log"
kill -HUP "$PID"
waitfor 10 grep -q '^READY=1' "$T/notify.log"
add c3 03 && add c4 04
waitfor 5 grep -q '"c4"' "$L" 2>/dev/null
if [ -f "$L" ] && grep -q '"c3"' "$L" && grep -q '"c4"' "$L" &&
	! grep -q '"c3"' "$L.1" && [ "$(wc -l <"$L.1")" = "$before" ]; then
	ok "rotation: after mv + SIGHUP new lines go to the new file ($(wc -l <"$L") lines), the old one stays at $before"
else
	bad "rotation: new=$(cat "$L" 2>/dev/null | wc -l) old=$(wc -l <"$L.1") before=$before"
fi
# `xtcmkctl reload` reopens it too.
mv "$L" "$L.2"
$C reload >/dev/null
add c5 05
waitfor 5 grep -q '"c5"' "$L" 2>/dev/null
check "rotation: xtcmkctl reload reopens the decision log" grep -q '"c5"' "$L"

# --- the read-only monitor role (uid 65534 in monitor_uids) ------------------
chmod 0711 "$T"
chmod 0666 "$T/xtcmkd.sock"	# as xtcmkd.socket's SocketMode=0666
M="setpriv --reuid=65534 --regid=65534 --clear-groups $C"
for cmd in "status" "stats" "customer list" "customer show c1" "workload list" \
	"app list" "decide c1" "key list"; do
	if out=$($M $cmd 2>&1); then ok "monitor may: $cmd"
	else bad "monitor refused '$cmd': $out"; fi
done
for cmd in "customer remove c2" "reload" "customer move c1 --to xtcmk-eu-9 --reason x" \
	"workload remove wl-eu-1" "check" "key create https://m.vault.local/keys/k"; do
	out=$($M $cmd 2>&1); rc=$?
	if [ $rc -ne 0 ] && grep -q "needs admin_uids" <<<"$out"; then ok "monitor may not: $cmd"
	else bad "monitor ran '$cmd': rc=$rc $out"; fi
done
check "the refused removal changed nothing" eval "$C customer show c2 >/dev/null"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$P/libexec/xtcmk/examples/xtcmk-example-host" \
	-l "$(find "$D" -name 'libxtcmk.so*' -type f | head -1)" -s "$T/xtcmkd.sock" decide c1 2>&1); rc=$?
[ $rc -ne 0 ] && grep -qi "monitor_uids\|denied\|may only" <<<"$out" &&
	ok "monitor may not use the data plane (decide through libxtcmk)" ||
	bad "monitor on the data plane: rc=$rc $out"
$C customer remove c5 >/dev/null 2>&1
waitfor 2 grep -q "notice: admin customer.remove by uid 0 pid [0-9]*: id=c5" "$T/agent.log" &&
	ok "admin changes logged at notice with actor and subject" ||
	bad "no notice for customer.remove: $(grep admin "$T/agent.log")"
# Refusals (uid 65533 is in no [access] list): counted, logged once.
r0=$($C --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"]["refused"])')
for _ in $(seq 20); do
	setpriv --reuid=65533 --regid=65533 --clear-groups $C status >/dev/null 2>&1
done
r1=$($C --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"]["refused"])')
n=$(grep -c "refused connection from uid 65533" "$T/agent.log")
[ $((r1 - r0)) = 20 ] && [ "$n" = 1 ] &&
	ok "20 refused connections: all counted, one log line" ||
	bad "refusals: counted $((r1 - r0)), logged $n times"
chmod 0700 "$T"

# --- one agent per state_dir --------------------------------------------
sed "s|^socket = .*|socket = $T/second.sock|" "$T/good.conf" >"$T/second.conf"
out=$(env -u XTCMK_SRCDIR timeout 10 "$AGENT" -c "$T/second.conf" 2>&1); rc=$?
if [ $rc = 1 ] && grep -q "in use by another xtcmkd (pid $PID)" <<<"$out"; then
	ok "a second agent on the same state_dir is refused: ${out##*: }"
else
	bad "second agent: rc=$rc $out"
fi

# --- stop; a torn last line is cut at the next start ---------------------
kill -TERM "$PID"; wait "$PID" 2>/dev/null; PID=
printf '{"torn' >>"$L"
lines=$(wc -l <"$L")
env -u XTCMK_SRCDIR "$AGENT" -c "$T/xtcmk.conf" 2>"$T/agent2.log" &
PID=$!
C2="$CTL -s $T/unused.sock"
waitfor 10 test -S "$T/unused.sock"
cut=$($C2 --json stats 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["decision_log"]["torn_bytes_cut"])')
if [ "$cut" = 6 ] && [ "$(tail -c1 "$L" | od -An -c | tr -d ' ')" = '\n' ] &&
	[ "$(wc -l <"$L")" = "$lines" ] && grep -q "torn last line of 6 bytes" "$T/agent2.log"; then
	ok "torn last line (6 bytes) cut at start, counted in stats and logged"
else
	bad "torn line: cut=$cut lines=$(wc -l <"$L")/$lines log=$(cat "$T/agent2.log")"
fi
kill -TERM "$PID"; wait "$PID" 2>/dev/null; PID=

# --- a key-service failure is logged once per customer, not per call ------
# connect_to sends every HTTPS host to a closed loopback port.
mkdir -p "$T/pf"
cat >"$T/pf.conf" <<CONF
[agent]
socket = $T/pf/s.sock
state_dir = $T/pf/state
workload = wl-eu-1
policy_dir = $P/etc/xtcmk/policies/default
lua_dir = $P/share/xtcmk/lua
[azure]
imds_endpoint = http://127.0.0.1:1
connect_to = 127.0.0.1:1
retries = 0
[params]
revocation_check = 1
refresh = 1
CONF
env -u XTCMK_SRCDIR "$AGENT" -c "$T/pf.conf" 2>"$T/pf.log" &
PID=$!
waitfor 10 test -S "$T/pf/s.sock"
CP="$CTL -s $T/pf/s.sock"
$CP workload add wl-eu-1 --client-id 21111111-1111-4111-8111-111111111111 \
	--principal-id 31111111-1111-4111-8111-111111111111 --label region=eu >/dev/null
$CP customer add az1 --tenant 11111111-1111-4111-8111-111111111101 \
	--key-uri https://kv1.vault.azure.net/keys/k --label region=eu >/dev/null
$CP app set xtcmk-eu-1 --client-id 41111111-1111-4111-8111-111111111111 >/dev/null
for _ in 1 2 3; do $CP key status az1 >/dev/null 2>&1; done
sleep 3
checks=$($CP --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"]["checks"])')
lines=$(grep -c "customer az1: key service key check failed: .*Couldn't connect.*; fix: " "$T/pf.log")
if [ "$checks" -ge 4 ] && [ "$lines" = 1 ] && grep -q "key check failed.*\[customer az1 app xtcmk-eu-1\]" "$T/pf.log"; then
	ok "key-service failure: $checks failed checks, one warning with cause, fix, customer and app"
else
	bad "key-service failure logging: checks=$checks lines=$lines $(grep 'key service' "$T/pf.log")"
fi
kill -TERM "$PID"; wait "$PID" 2>/dev/null; PID=

# --- fd 3 that is not a listening socket: refuse, do not spin -------------
: >"$T/notasocket"
out=$(env -u XTCMK_SRCDIR timeout 10 sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"' \
	"$AGENT" "$T/xtcmk.conf" 3<"$T/notasocket" 2>&1); rc=$?
if [ $rc = 1 ] && grep -q "fd 3 is not a listening Unix stream socket" <<<"$out"; then
	ok "fd 3 not a socket under activation: refused at start (rc 1)"
else
	bad "fd 3 not a socket: rc=$rc $out"
fi

# --- journal priorities from the first line --------------------------------
printf '[agent]\nmax_connections = many\n' >"$T/bad.conf"
: >"$T/j.err"
JS=$(stat -c '%d:%i' "$T/j.err")
JOURNAL_STREAM=$JS "$AGENT" -c "$T/bad.conf" 2>>"$T/j.err"
first=$(head -1 "$T/j.err")
[[ $first == "<3>cannot start: $T/bad.conf:2: max_connections = 'many'"* ]] &&
	ok "start-up config error carries <3> when JOURNAL_STREAM matches stderr" ||
	bad "journal priority: '$first'"
: >"$T/j2.err"
JOURNAL_STREAM=1:1 "$AGENT" -c "$T/bad.conf" 2>>"$T/j2.err"
first=$(head -1 "$T/j2.err")
[[ $first == 20*" error: cannot start: "* ]] &&
	ok "JOURNAL_STREAM of another file: plain timestamped line, no <3>" ||
	bad "mismatched JOURNAL_STREAM: '$first'"

# --- --check-config refuses what start-up would, naming file:line ---------
cc() {	# cc NAME EXPECTED_REGEX: check-config of $T/cc.conf must fail so
	local out rc
	out=$(env -u XTCMK_SRCDIR "$AGENT" --check-config -c "$T/cc.conf" 2>&1); rc=$?
	if [ $rc = 1 ] && grep -Eq -- "$2" <<<"$out"; then ok "check-config: $1"
	else bad "check-config: $1: rc=$rc $out"; fi
}
base() { cp "$T/good.conf" "$T/cc.conf"; chmod 0644 "$T/cc.conf"; printf '%s\n' "$@" >>"$T/cc.conf"; }
n=$(($(wc -l <"$T/good.conf") + 2))	# the line after "[agent]" appended below
long=$T/$(printf 'd%.0s' $(seq 120))/s.sock
base "[agent]" "socket = $long"
cc "socket path over 107 bytes" "cc.conf:$n: \[agent\] socket: .* a Unix socket path holds at most 107"
base "[agent]" "socket = $T/nodir/s.sock"
cc "missing socket directory" "cc.conf:$n: \[agent\] socket: directory $T/nodir"
base "[agent]" "decision_log = $T/nologdir/d.jsonl"
cc "missing decision-log directory" "cc.conf:$n: \[agent\] decision_log: directory $T/nologdir"
base "[agent]" "state_dir = $T/a/b/state"
cc "missing state_dir parent" "cc.conf:$n: \[agent\] state_dir: directory $T/a/b"
base "[azure]" "tenant = not-a-guid"
cc "[azure] tenant" "cc.conf:$n: \[azure\] tenant"
base "[azure]" "identity = magic"
cc "[azure] identity" "cc.conf:$n: \[azure\] identity 'magic'"
base "[azure]" "imds_endpoint = ftp://x"
cc "[azure] imds_endpoint" "cc.conf:$n: \[azure\] imds_endpoint must be an http"
base "[azure]" "ca_file = $T/no-ca.pem"
cc "[azure] ca_file" "cc.conf:$n: \[azure\] ca_file: $T/no-ca.pem is not readable"
base "[agent]" "workload = $(printf 'w%.0s' $(seq 65))"
cc "workload name length" "cc.conf:$n: \[agent\] workload: longer than 64"
base
chmod 0666 "$T/cc.conf"
cc "world-writable config" "config $T/cc.conf is owned by uid 0 gid 0 with mode 0666"
cp -r "$P/etc/xtcmk/policies/default" "$T/pol777"
chmod 0777 "$T/pol777"
base "[agent]" "policy_dir = $T/pol777"
cc "0777 policy dir" "cc.conf:$n: \[agent\] policy_dir $T/pol777 is owned by .* mode 0777"
chmod 0755 "$T/pol777"; chmod 0666 "$T/pol777/role.lua"
cc "group/world-writable policy file" "policy_dir $T/pol777/role.lua .* mode 0666"
chmod 0644 "$T/pol777/role.lua"
out=$(env -u XTCMK_SRCDIR "$AGENT" --check-config -c "$T/cc.conf" 2>&1) &&
	ok "check-config: the repaired config passes" || bad "repaired config: $out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
