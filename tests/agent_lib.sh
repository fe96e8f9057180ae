# agent_lib.sh - sourced by the shell tests that drive a real agent
# (import_cli.sh, lists.sh, scale.sh, ...) after they set NAME: the build
# dir from $1, a temporary directory removed at exit with the agent in
# it, pass/fail counters, the agent's start and stop, and workloads.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d "/tmp/xtcmk-$NAME.XXXXXX")
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
C="$B/ctl/xtcmkctl -s $T/s.sock"
TENANT=72f988bf-86f1-41af-91ab-2d7cd011db47

# start_agent WORKLOAD [MORE CONFIG]: the default policies, state in $T.
start_agent() {
	printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\npolicy_dir = %s/policies/default\nlua_dir = %s/lua\nworkload = %s\n%s' \
	    "$T" "$T" "$S" "$S" "$1" "${2:-}" >"$T/xtcmk.conf"
	mkdir -p "$T/state"
	rm -f "$T/s.sock"
	"$B/agent/xtcmkd" -c "$T/xtcmk.conf" >>"$T/agent.log" 2>&1 &
	PID=$!
	for _ in $(seq 100); do
		$C status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "FAIL: the agent did not start:"; cat "$T/agent.log"; exit 1
}
stop_agent() { kill "$PID"; wait "$PID" 2>/dev/null; PID=; }
kill_agent() { kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=; }
guid() { printf '%08x-0000-4000-8000-%012x' "$1" "$2"; }
# region_workloads PER REGION...: PER workloads wl-REGION-1.. in each
# REGION, labelled region=REGION.
region_workloads() {
	local per=$1 r i n=0
	shift
	for r in "$@"; do
		for i in $(seq 1 "$per"); do
			n=$((n + 1))
			$C workload add "wl-$r-$i" --client-id "$(guid 1 $n)" \
			    --principal-id "$(guid 2 $n)" --label region="$r" \
			    >/dev/null || bad "workload add wl-$r-$i"
		done
	done
}
# The summary line and the exit status.
finish() { echo "$NAME: $pass passed, $fail failed"; [ "$fail" = 0 ]; }
