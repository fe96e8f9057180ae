#!/bin/bash
# run.sh - start a throw-away xtcmkd (temporary state dir, socket and
# config, the default policies, the local keystore), onboard one customer
# with its key, and run the benchmarks against it:
#
#	bench/run.sh [BUILDDIR] [CALLS]
#
# bench_decide measures decisions through the fast path (the agent's
# memory-mapped decision file), through the socket (XTCMK_NO_MEMCACHE=1)
# and through a fast path that always falls back, and (-u) unwraps of one
# blob from libxtcmk's own DEK cache, against the echo baseline of the
# same run; bench_keys measures cached unwraps from the
# agent's DEK cache (XTCMK_NO_MEMCACHE=1) and from libxtcmk's own
# (the config sets host_cache_ttl).
#
# BUILDDIR defaults to ./build, CALLS (per measurement) to 20000.  The
# agent is restarted once between bench_keys -w and bench_keys --cold so
# the cold unwraps find no cached key.  Everything is removed at the end.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
calls=${2:-20000}
cold_blobs=${COLD_BLOBS:-200}
threads=${THREADS:-100}

for b in agent/xtcmkd ctl/xtcmkctl bench/bench_decide bench/bench_keys; do
	if [ ! -x "$build/$b" ]; then
		echo "run.sh: $build/$b is missing: build first (ninja -C $build)" >&2
		exit 1
	fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-bench-run-XXXXXX")
sock=$dir/xtcmkd.sock
pid=

stop_agent() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
	fi
}

cleanup() {
	stop_agent
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

cat > "$dir/xtcmk.conf" <<CONF
[agent]
socket = $sock
state_dir = $dir/state
policy_dir = $src/policies/default
lua_dir = $src/lua
workload = wl-bench-1
log_level = warning
[params]
# The versioning policy lets host processes keep DEKs (libxtcmk(3)).
host_cache_ttl = 60
CONF

start_agent() {
	"$build/agent/xtcmkd" -c "$dir/xtcmk.conf" 2>>"$dir/agent.log" &
	pid=$!
	# Bounded wait for the socket: 10 s.
	for _ in $(seq 1 200); do
		if "$build/ctl/xtcmkctl" -s "$sock" -c "$dir/xtcmk.conf" status \
		    >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.05
	done
	echo "run.sh: xtcmkd did not start; its log:" >&2
	cat "$dir/agent.log" >&2
	exit 1
}

ctl() {
	"$build/ctl/xtcmkctl" -s "$sock" -c "$dir/xtcmk.conf" "$@" >/dev/null
}

start_agent
ctl workload add wl-bench-1 \
    --client-id 11111111-1111-1111-1111-111111111111 \
    --principal-id 22222222-2222-2222-2222-222222222222 --label region=eu
ctl key create https://bench.vault.local/keys/bench1
ctl customer add bench1 --tenant 33333333-3333-3333-3333-333333333333 \
    --key-uri https://bench.vault.local/keys/bench1 --label region=eu

echo "== bench_decide ($calls calls)"
"$build/bench/bench_decide" -s "$sock" -c bench1 -n "$calls" -u
echo
echo "== bench_keys, warm ($calls calls), the agent's DEK cache" \
    "(XTCMK_NO_MEMCACHE=1: every call over the socket)"
XTCMK_NO_MEMCACHE=1 "$build/bench/bench_keys" -s "$sock" -c bench1 -n "$calls"
echo
echo "== bench_keys, warm ($calls calls), DEK cache in the host process" \
    "(host_cache_ttl = 60)"
"$build/bench/bench_keys" -s "$sock" -c bench1 -n "$calls"
echo
echo "== bench_keys, cold ($cold_blobs blobs, agent restarted)"
"$build/bench/bench_keys" -s "$sock" -c bench1 -w "$dir/blobs" \
    -m "$cold_blobs" >/dev/null
stop_agent
start_agent
"$build/bench/bench_keys" -s "$sock" -c bench1 --cold "$dir/blobs" \
    -t "$threads"
