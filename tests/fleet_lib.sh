# fleet_lib.sh - real etcd members and xtcmkd agents on loopback for
# tests/fleet.sh and bench/fleet.sh (sourced; needs $B, $S, $T).
#
# etcd_start N       start an N-member cluster (client URLs in $EPS)
# etcd_kill I        SIGKILL member I;  etcd_restore I: start it again
# agent_start A [PREFIX]   start agent A (backend etcd; PREFIX default /t/)
# agent_kill A [SIG] stop it;  ctl A ARGS...: xtcmkctl against agent A

ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
declare -a EPID APID CPORT PPORT
EPS=

free_ports() {	# free_ports N: N free loopback ports
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

ETCD_N=0
etcd_member() {	# etcd_member I: (re)start member I of the cluster
	local i=$1 cluster= j
	for j in $(seq 1 "$ETCD_N"); do
		cluster="$cluster${cluster:+,}m$j=http://127.0.0.1:${PPORT[$j]}"
	done
	"$ETCD" --name "m$i" --data-dir "$T/etcd/m$i" \
		--listen-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--advertise-client-urls "http://127.0.0.1:${CPORT[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
		--initial-cluster "$cluster" --initial-cluster-token "xtcmk-$$" \
		--initial-cluster-state new --log-outputs "$T/etcd/m$i.log" \
		--logger zap >/dev/null 2>&1 &
	EPID[$i]=$!
}

etcd_start() {	# etcd_start N
	local p i
	ETCD_N=$1
	mkdir -p "$T/etcd"
	p=($(free_ports $((2 * ETCD_N))))
	for i in $(seq 1 "$ETCD_N"); do
		CPORT[$i]=${p[$((2 * i - 2))]}
		PPORT[$i]=${p[$((2 * i - 1))]}
	done
	EPS=
	for i in $(seq 1 "$ETCD_N"); do
		EPS="$EPS${EPS:+,}http://127.0.0.1:${CPORT[$i]}"
		etcd_member "$i"
	done
	for _ in $(seq 100); do
		"$ETCDCTL" --endpoints "$EPS" endpoint health >/dev/null 2>&1 &&
			return 0
		sleep 0.2
	done
	echo "etcd cluster did not become healthy"; tail -5 "$T"/etcd/*.log
	return 1
}

# Signal PID only while it is still one of ours (PIDs get reused).
ours() { [ -n "$1" ] && grep -qF "$T" "/proc/$1/cmdline" 2>/dev/null; }
etcd_kill() { ours "${EPID[$1]}" && kill -9 "${EPID[$1]}"; wait "${EPID[$1]}" 2>/dev/null; EPID[$1]=; }
etcd_restore() { etcd_member "$1"; }
etcdctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints "$EPS" "$@"; }

etcd_stop_all() {
	local i
	for i in "${!EPID[@]}"; do
		ours "${EPID[$i]}" && kill -9 "${EPID[$i]}" 2>/dev/null
	done
	wait "${EPID[@]}" 2>/dev/null
}

agent_conf() {	# agent_conf A PREFIX [EXTRA-REGISTRY-LINES]
	local a=$1
	mkdir -p "$T/a$a"
	{
		printf '[agent]\nsocket = %s/a%s/s.sock\nstate_dir = %s/a%s/state\n' \
			"$T" "$a" "$T" "$a"
		printf 'policy_dir = %s/policies/default\nlua_dir = %s/lua\n' "$S" "$S"
		printf 'workload = %s\n' "${AGENT_WORKLOAD:-wl-eu-1}"
		printf '[params]\ncustomers_per_app = %s\n' "${PER_APP:-50}"
		if [ "$2" != sqlite ]; then
			printf '[registry]\nbackend = etcd\nendpoints = %s\n' "$EPS"
			printf 'prefix = %s\ntimeout_ms = %s\n' "$2" "${TIMEOUT_MS:-3000}"
			[ -n "${3:-}" ] && printf '%s\n' "$3"
		fi
	} >"$T/a$a/conf"
}

agent_start() {	# agent_start A [PREFIX|sqlite] [EXTRA]
	local a=$1
	[ -f "$T/a$a/conf" ] || agent_conf "$a" "${2:-/t/}" "${3:-}"
	rm -f "$T/a$a/s.sock"
	"$B/agent/xtcmkd" -c "$T/a$a/conf" >>"$T/a$a/log" 2>&1 &
	APID[$a]=$!
	for _ in $(seq 100); do [ -S "$T/a$a/s.sock" ] && return 0; sleep 0.1; done
	echo "agent $a did not start:"; tail -20 "$T/a$a/log"
	return 1
}

agent_kill() { ours "${APID[$1]}" && kill -"${2:-TERM}" "${APID[$1]}"; wait "${APID[$1]}" 2>/dev/null; APID[$1]=; }
agents_stop_all() {
	local a
	for a in "${!APID[@]}"; do
		ours "${APID[$a]}" && kill "${APID[$a]}" 2>/dev/null
	done
	wait "${APID[@]}" 2>/dev/null
}

ctl() { local a=$1; shift; "$B/ctl/xtcmkctl" -s "$T/a$a/s.sock" "$@"; }

# A JSON field of `xtcmkctl -j status`'s registry_backend.
fleet_field() {	# fleet_field A FIELD
	ctl "$1" -j status | python3 -c "import json, sys
r = json.load(sys.stdin)['registry_backend']
v = r
for k in sys.argv[1].split('.'):
    v = v.get(k) if isinstance(v, dict) else None
print(v)" "$2"
}

# Wait until every listed agent's mirror is at etcd's newest change.
converge() {	# converge A...
	local a ok
	for _ in $(seq 150); do
		ok=1
		for a in "$@"; do
			[ "$(fleet_field "$a" lag)" = 0 ] || ok=0
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.2
	done
	return 1
}

# The registry as a host sees it, without volatile fields.
snapshot() {	# snapshot A
	{ ctl "$1" customer list; ctl "$1" app list; ctl "$1" workload list; } |
		sort
}

ISV_GUID() { printf '%08d-1111-4111-8111-%012d' "$1" "$2"; }

WLN=0
add_workloads() {	# add_workloads A REGION N
	local i
	for i in $(seq 1 "$3"); do
		WLN=$((WLN + 1))
		ctl "$1" workload add "wl-$2-$i" \
			--client-id "$(ISV_GUID 1 "$WLN")" \
			--principal-id "$(ISV_GUID 2 "$WLN")" \
			--label "region=$2" >/dev/null || return 1
	done
}

# onboard A FROM STEP TO REGIONS... : customers cFROM, cFROM+STEP ..
# through agent A, regions in turn; acknowledged ids go to $T/acked.A,
# refused ones (with the message) to $T/refused.A
onboard() {
	local a=$1 from=$2 step=$3 to=$4 i r out; shift 4
	local regions=("$@") n=${#regions[@]}
	for i in $(seq "$from" "$step" "$to"); do
		r=${regions[$((i / 3 % n))]}
		if out=$(ctl "$a" customer add "c$i" \
			--tenant "$(ISV_GUID 3 "$i")" \
			--key-uri "https://cust-$r.vault.local/keys/k" \
			--label "region=$r" 2>&1); then
			echo "c$i" >>"$T/acked.$a"
		else
			echo "c$i $out" >>"$T/refused.$a"
		fi
	done
}
