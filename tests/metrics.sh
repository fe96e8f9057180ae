#!/usr/bin/env bash
# metrics.sh - [metrics] listen: after a scripted workload the Prometheus
# page counts exactly the work done (requests by op and result, key
# provider calls, the DEK cache, customers by key state, FICs per
# application, policy calls, decision-log lines), the histograms agree
# with the counters, /healthz answers, and nothing listens by default.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d /tmp/xtcmk-metrics.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
if ! grep -q 'HAVE_MICROHTTPD 1' "$B/config.h"; then
	echo "built without libmicrohttpd: skipped"; exit 77
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start() {	# start [extra config lines]
	printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\nworkload = wl-eu-1\n%s\n' \
		"$T" "$T" "${1:-}" >"$T/xtcmk.conf"
	"$B/agent/xtcmkd" -c "$T/xtcmk.conf" 2>>"$T/agent.log" &
	PID=$!
	for _ in $(seq 100); do [ -S "$T/s.sock" ] && break; sleep 0.05; done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null; PID=; }
C="$B/ctl/xtcmkctl -s $T/s.sock"
H="$B/examples/xtcmk-example-host -l $B/module/libxtcmk.so -s $T/s.sock"
M=http://127.0.0.1:$PORT

# Off by default: no [metrics], nothing on the port.
start
curl -s -o /dev/null "$M/metrics" && bad "something listens without [metrics]" ||
	ok "no [metrics] listen: no endpoint"
stop

start "$(printf '[metrics]\nlisten = 127.0.0.1:%s' "$PORT")"
$C workload add wl-eu-1 --client-id 21111111-1111-4111-8111-111111111111 \
	--principal-id 31111111-1111-4111-8111-111111111111 --label region=eu >/dev/null
for i in 1 2 3; do
	$C key create "https://kv-c$i.vault.local/keys/k" >/dev/null
	$C customer add "c$i" --tenant "11111111-1111-4111-8111-11111111111$i" \
		--key-uri "https://kv-c$i.vault.local/keys/k" --label region=eu >/dev/null
done
head -c 1000 /dev/urandom >"$T/plain"
for i in 1 2 3 4 5; do $H encrypt c1 "$T/plain" "$T/f$i" >/dev/null || bad "encrypt $i"; done
for i in 1 2 3; do $H decrypt c1 "$T/f$i" "$T/out" >/dev/null || bad "decrypt $i"; done
$H encrypt c2 "$T/plain" "$T/g1" >/dev/null
for i in 1 2 3 4; do $C decide c3 >/dev/null; done
$C customer show nosuch >/dev/null 2>&1
$C key disable https://kv-c2.vault.local/keys/k >/dev/null
$H encrypt c2 "$T/plain" "$T/g2" >/dev/null 2>&1

curl -s "$M/metrics" >"$T/m1"
sleep 0.2
curl -s "$M/metrics" >"$T/m"
$C --json stats >"$T/stats.json"
val() { awk -v k="$1" '$1 == k { print $2 }' "$T/m"; }
expect() {	# expect SERIES VALUE
	local v; v=$(val "$1")
	[ "$v" = "$2" ] && ok "$1 = $2" || bad "$1 = '$v', expected $2"
}
expect 'xtcmk_up' 1
# 5 + 1 encrypts succeeded, the one after the disable failed.
expect 'xtcmk_requests_total{op="dek_new",result="ok"}' 6
expect 'xtcmk_requests_total{op="dek_new",result="error"}' 1
expect 'xtcmk_requests_total{op="dek_unwrap",result="ok"}' 3
expect 'xtcmk_request_duration_seconds_count{op="dek_new",result="ok"}' 6
expect 'xtcmk_request_duration_seconds_bucket{op="dek_new",result="ok",le="+Inf"}' 6
adm=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"]["admin"])' "$T/stats.json")
ok_adm=$(val 'xtcmk_requests_total{op="admin",result="ok"}')
err_adm=$(val 'xtcmk_requests_total{op="admin",result="error"}')
# The stats call itself came after the scrape.
[ $((ok_adm + err_adm + 1)) = "$adm" ] && [ "$err_adm" = 1 ] &&
	ok "admin requests: $ok_adm ok + $err_adm error, as xtcmkctl stats counts" ||
	bad "admin requests: ok=$ok_adm err=$err_adm stats=$adm"
expect 'xtcmk_provider_calls_total{provider="local",op="wrap",result="ok"}' 6
pu=$(val 'xtcmk_provider_calls_total{provider="local",op="unwrap",result="ok"}')
hits=$(val 'xtcmk_dek_cache_lookups_total{result="hit"}')
[ $((pu + hits)) -ge 3 ] && [ "$pu" -le 3 ] &&
	ok "unwraps: $pu from the provider, $hits from the DEK cache" ||
	bad "unwraps: provider=$pu hits=$hits"
[ "$(val 'xtcmk_provider_calls_total{provider="azure",op="wrap",result="ok"}')" = 0 ] &&
	ok "no azure calls in a local-only workload" || bad "azure calls counted"
expect 'xtcmk_customers{key_state="revoked"}' 1
expect 'xtcmk_customers{key_state="ok"}' 1
# The list's JSON is an array or a page ({"items", "total"}).
apps=$($C --json app list | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(len(d) if isinstance(d, list) else d.get("total", len(d.get("items", []))))')
expect 'xtcmk_app_fics_count' "$apps"
expect 'xtcmk_app_fics_bucket{le="+Inf"}' "$apps"
expect 'xtcmk_apps_near_fic_limit' 0
expect 'xtcmk_registry_up' 1
pc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["policy"]["calls"])' "$T/stats.json")
expect 'xtcmk_policy_calls_total' "$pc"
expect 'xtcmk_policy_limit_kills_total{limit="instructions"}' 0
dw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["decision_log"]["written"])' "$T/stats.json")
expect 'xtcmk_decision_log_lines_total{outcome="written"}' "$dw"
expect 'xtcmk_decision_log_lines_total{outcome="dropped"}' 0
[ "$dw" -ge 3 ] && ok "decision log: $dw lines written" || bad "decision log lines: $dw"
grep -q '^# TYPE xtcmk_request_duration_seconds histogram$' "$T/m" &&
	ok "histograms typed for Prometheus" || bad "no TYPE line"
dup=$(grep -v '^#' "$T/m" | awk '{print $1}' | sort | uniq -d | head -3)
[ -z "$dup" ] && ok "no series twice" || bad "duplicate series: $dup"
code=$(curl -s -o "$T/h" -w '%{http_code}' "$M/healthz")
[ "$code" = 200 ] && [ "$(cat "$T/h")" = ok ] && ok "/healthz: 200 ok" || bad "/healthz: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$M/nope")
[ "$code" = 404 ] && ok "unknown path: 404" || bad "unknown path: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$M/metrics")
[ "$code" = 405 ] && ok "POST: 405" || bad "POST: $code"
stop

# A bad listen is refused by --check-config with file:line.
printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\n[metrics]\nlisten = localhost\n' "$T" "$T" >"$T/bad.conf"
out=$("$B/agent/xtcmkd" --check-config -c "$T/bad.conf" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "bad.conf:5: \[metrics\] listen 'localhost': use ADDRESS:PORT" <<<"$out" &&
	ok "check-config: bad [metrics] listen names file:line" || bad "bad listen: rc=$rc $out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
