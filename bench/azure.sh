#!/bin/bash
# azure.sh - the azure provider's benchmark (xtcmk issue 4), on loopback
# against the Azure emulator (tests/emulator) with 20 ms of latency
# injected on the customer's vault:
#
#	bench/azure.sh [BUILDDIR]
#
# It starts the emulator (emu_basic: a provider tenant with a managed
# identity, a multi-tenant application federated with it, a customer
# tenant whose RBAC vault "contoso" holds an RSA key), a throw-away xtcmkd
# with [azure] identity = imds against it, onboards customer contoso and
# then measures:
#
#  (a) cold unwraps: 100 blobs made with xtcmk_dek_new, the agent
#      restarted (no DEK cached), the emulator's counters reset, then 2,000
#      unwraps (each blob 20 times, shuffled) from 8 threads through
#      libxtcmk.so (bench_keys --spread).  Target: at most 100 unwrapkey
#      calls reach the vault.  SPREAD_REPS runs (default 3), each after a
#      restart; the median wall time.
#  (b) hot-DEK unwrap throughput: one cached blob, unwrapped through
#      libxtcmk.so from HOT_THREADS threads (2) for HOT_SECONDS (3) per
#      run, median of 3 runs (bench_keys --hot); against the official JS
#      SDK's CryptographyClient.unwrapKey("RSA-OAEP-256") calling the
#      vault for every request (bench/sdk_unwrap.mjs: SDK_CALLS calls (200)
#      with SDK_CONCURRENCY in flight (8), median of 3 runs), same emulator,
#      same 20 ms latency.  Target: libxtcmk >= 100x the SDK.
#
# Exits 0 when both targets are met, 1 when one is missed, 2 on a setup
# failure.  Every loop and wait is bounded; everything it starts is
# stopped and its temporary directories removed at the end.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
latency_ms=${LATENCY_MS:-20}
spread_reps=${SPREAD_REPS:-3}
hot_threads=${HOT_THREADS:-2}
hot_seconds=${HOT_SECONDS:-3}
sdk_calls=${SDK_CALLS:-200}
sdk_concurrency=${SDK_CONCURRENCY:-8}
blobs=100
times=20
spread_threads=8
unwrap_target=$blobs
ratio_target=100

die() { echo "azure.sh: $*" >&2; exit 2; }

for t in node npm openssl curl python3; do
	command -v "$t" >/dev/null || die "$t is not installed (the Azure emulator and this script need it)"
done
for b in agent/xtcmkd ctl/xtcmkctl bench/bench_keys module/libxtcmk.so; do
	[ -e "$build/$b" ] || die "$build/$b is missing: build first (ninja -C $build)"
done
emu=$src/tests/emulator
if [ ! -d "$emu/node_modules/@azure/keyvault-keys" ] ||
    [ ! -d "$emu/node_modules/@azure/identity" ]; then
	echo "# installing the pinned Azure SDK: npm ci in $emu"
	(cd "$emu" && npm ci --no-audit --no-fund >/dev/null) ||
		die "npm ci in $emu failed: the SDK baseline cannot run"
fi

. "$emu/lib.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-bench-azure-XXXXXX")
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
	emu_stop
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

emu_start >/dev/null || die "the emulator did not start"
emu_basic || die "emulator setup (emu_basic) failed"

cat >"$dir/xtcmk.conf" <<CONF
[agent]
socket = $sock
state_dir = $dir/state
policy_dir = $src/policies/default
lua_dir = $src/lua
workload = wl-bench-1
log_level = warning
[azure]
tenant = $EMU_PROVIDER_TENANT
identity = imds
imds_endpoint = http://127.0.0.1:$EMU_HTTP_PORT/metadata/identity/oauth2/token
identity_client_id = $EMU_UAMI_CLIENT_ID
ca_file = $EMU_CA_FILE
connect_to = 127.0.0.1:$EMU_HTTPS_PORT
CONF

ctl() { "$build/ctl/xtcmkctl" -s "$sock" -c "$dir/xtcmk.conf" "$@"; }

start_agent() {
	"$build/agent/xtcmkd" -c "$dir/xtcmk.conf" 2>>"$dir/agent.log" &
	pid=$!
	# Bounded wait for the socket: 10 s.
	for _ in $(seq 1 200); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$dir/agent.log" >&2
	die "xtcmkd did not start (its log is above)"
}

counter() {
	emu_ctl /counters | python3 -c \
	    "import json,sys; print(json.load(sys.stdin).get('$1', 0))"
}
field() {	# field JSON KEY
	python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"
}

start_agent
ctl workload add wl-bench-1 --client-id "$EMU_UAMI_CLIENT_ID" \
    --principal-id "$EMU_UAMI_PRINCIPAL_ID" --label region=eu >/dev/null ||
	die "xtcmkctl workload add failed"
out=$(ctl customer add contoso --tenant "$EMU_CUSTOMER_TENANT" \
    --key-uri "$EMU_KEY_URI" --kind host --label region=eu) ||
	die "xtcmkctl customer add failed: $out"
app=$(sed -n 's/^customer contoso assigned to application \(.*\)$/\1/p' <<<"$out")
[ -n "$app" ] || die "customer add did not name the application: $out"
ctl app set "$app" --client-id "$EMU_APP_ID" >/dev/null ||
	die "xtcmkctl app set $app --client-id failed"

emu_ctl /fault "{\"match\":{\"host\":\"^$EMU_VAULT\\\\.\"},\"kind\":\"latency\",\"ms\":$latency_ms}" \
    >/dev/null || die "could not inject latency"
echo "emulator on 127.0.0.1 (https $EMU_HTTPS_PORT), $latency_ms ms latency" \
    "on $EMU_VAULT.vault.azure.net; key $EMU_KEY_KID"
echo

status=0

# --- (a) cold: 2,000 unwraps of 100 blobs from 8 threads -------------
echo "== (a) $((blobs * times)) unwraps of $blobs cold blobs from" \
    "$spread_threads threads, agent restarted before each of $spread_reps runs"
"$build/bench/bench_keys" -s "$sock" -c contoso -w "$dir/blobs" \
    -m $((blobs - 1)) >/dev/null || die "bench_keys -w failed"
walls=() worst=0
for r in $(seq 1 "$spread_reps"); do
	stop_agent
	start_agent
	emu_ctl /counters/reset >/dev/null
	j=$("$build/bench/bench_keys" -s "$sock" -c contoso --spread \
	    "$dir/blobs" -k $times -t $spread_threads --json) ||
		die "bench_keys --spread failed: $j"
	n=$(counter unwrapkey)
	printf '  run %d: %s/%s ok in %8.1f ms; vault unwrapkey calls %3d' \
	    "$r" "$(field "$j" ok)" "$(field "$j" unwraps)" \
	    "$(field "$j" ms)" "$n"
	printf ' (agent: %s), get key %d, token exchanges %d\n' \
	    "$(field "$j" provider_calls)" "$(counter get_key)" \
	    "$(counter entra_token)"
	walls+=("$(field "$j" ms)")
	if [ "$n" -gt "$worst" ]; then worst=$n; fi
done
wall=$(printf '%s\n' "${walls[@]}" | sort -g |
    awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
if [ "$worst" -le "$unwrap_target" ]; then verdict=met; else verdict=missed; status=1; fi
echo "  median wall time $wall ms; at most $worst unwrapkey calls per run" \
    "(target <= $unwrap_target: $verdict)"
echo

# --- (b) hot DEK: libxtcmk vs the SDK calling the vault per request ----
echo "== (b) hot-DEK unwrap throughput, same emulator, same $latency_ms ms latency"
u0=$(counter unwrapkey)
jx=$("$build/bench/bench_keys" -s "$sock" -c contoso --hot \
    -t "$hot_threads" -d "$hot_seconds" -r 3 --json) ||
	die "bench_keys --hot failed: $jx"
u1=$(counter unwrapkey)
js=$(cd "$emu" && NODE_EXTRA_CA_CERTS=$EMU_CA_FILE timeout 300 \
    node --require ./dns-preload.cjs "$src/bench/sdk_unwrap.mjs" \
    --tenant "$EMU_CUSTOMER_TENANT" --app "$EMU_APP_ID" \
    --identity "$EMU_UAMI_CLIENT_ID" --kid "$EMU_KEY_KID" \
    --calls "$sdk_calls" --concurrency "$sdk_concurrency" --reps 3) ||
	die "the SDK baseline (sdk_unwrap.mjs) failed: $js"
u2=$(counter unwrapkey)
x=$(field "$jx" per_s_median)
s=$(field "$js" per_s_median)
ratio=$(awk -v x="$x" -v s="$s" 'BEGIN {printf "%.0f", x / s}')
echo "  libxtcmk.so  $(printf '%10.0f' "$x")/s  ($hot_threads threads, $hot_seconds s runs," \
    "runs $(field "$jx" per_s | tr -d '[] '), vault unwrapkey calls $((u1 - u0)))"
echo "  JS SDK       $(printf '%10.1f' "$s")/s  ($sdk_calls calls, $sdk_concurrency in flight," \
    "runs $(field "$js" per_s | tr -d '[] '), p50 $(field "$js" p50_ms) ms," \
    "vault unwrapkey calls $((u2 - u1)))"
if [ "$ratio" -ge "$ratio_target" ]; then verdict=met; else verdict=missed; status=1; fi
echo "  ratio ${ratio}x (target >= ${ratio_target}x: $verdict)"

if grep -qE "Sanitizer|runtime error" "$dir/agent.log"; then
	grep -E -A20 "Sanitizer|runtime error" "$dir/agent.log" | head -40 >&2
	status=1
fi
exit $status
