#!/usr/bin/env bash
# demo.sh - xtcmk end to end on the embedded defaults: the agent with the
# local key provider and the SQLite registry on a throw-away state dir,
# customers onboarded through the default policies, and a host service
# (xtcmk-example-host, which dlopen()s libxtcmk.so) encrypting files while
# a customer's key is rotated, disabled and re-enabled.
#
# Installs the Debian packages it needs, builds into build-demo/, runs in a
# temporary directory and removes it (XTCMK_KEEP=1 keeps it).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/deps.sh
xtcmk_deps

B=$top/build-demo
if [ ! -d "$B" ]; then
	meson setup "$B" >/dev/null
fi
ninja -C "$B" >/dev/null
# The uninstalled agent and CLI find the tree's lua/ and policies/default/
# through this variable (`meson devenv -C build-demo` sets it too).
export XTCMK_SRCDIR=$top

T=$(mktemp -d /tmp/xtcmk-demo.XXXXXX)
agent_pid=
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	if [ -z "${XTCMK_KEEP:-}" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s|$B/||g; s|$T/||g"; "$@"; }

cat >"$T/xtcmk.conf" <<EOF
# The demo's agent: everything on the embedded defaults except paths.
[agent]
socket = $T/xtcmkd.sock
state_dir = $T/state
# This host runs as the westeurope workload identity.
workload = wl-westeurope-1
[params]
# Small numbers so the demo shows applications filling up, and short
# intervals so rotation and revocation take seconds, not hours.
customers_per_app = 2
dedicated_tier = enterprise
refresh = 2
revocation_check = 2
cache_ttl = 60
EOF

say "Starting xtcmkd (local key provider, SQLite registry in $T/state)"
"$B/agent/xtcmkd" -c "$T/xtcmk.conf" 2>"$T/agent.log" &
agent_pid=$!
for _ in $(seq 100); do [ -S "$T/xtcmkd.sock" ] && break; sleep 0.1; done
ctl() { run "$B/ctl/xtcmkctl" -c "$T/xtcmk.conf" "$@"; }
host() { run "$B/examples/xtcmk-example-host" -l "$B/module/libxtcmk.so" \
	-s "$T/xtcmkd.sock" "$@"; }
ctl status

say "Phase 1 (provider): the workload identities hosts run as"
n=1
for w in westeurope-1 westeurope-2 eastus-1 eastus-2; do
	ctl workload add "wl-$w" \
		--client-id "$(printf '0000000%d-aaaa-4aaa-8aaa-00000000000%d' $n $n)" \
		--principal-id "$(printf '0000000%d-bbbb-4bbb-8bbb-00000000000%d' $n $n)" \
		--label "region=${w%-*}"
	n=$((n + 1))
done
ctl workload list

say "Phase 2 (customers): keys in their vaults (here: the embedded keystore)"
for c in contoso fabrikam northwind woodgrove; do
	ctl key create "https://$c-kv.vault.local/keys/cmk"
done

say "Onboarding customers: the partition policy picks each one's application"
ctl customer add contoso --tenant 11111111-1111-4111-8111-111111111111 \
	--key-uri https://contoso-kv.vault.local/keys/cmk --label region=westeurope
ctl customer add northwind --tenant 33333333-3333-4333-8333-333333333333 \
	--key-uri https://northwind-kv.vault.local/keys/cmk --label region=westeurope \
	--kind host,storage
ctl customer add woodgrove --tenant 44444444-4444-4444-8444-444444444444 \
	--key-uri https://woodgrove-kv.vault.local/keys/cmk --label region=westeurope \
	--auth access-policy
ctl customer add fabrikam --tenant 22222222-2222-4222-8222-222222222222 \
	--key-uri https://fabrikam-kv.vault.local/keys/cmk --label region=eastus \
	--label tier=enterprise --kind host,netapp
echo "(a second 'customer add contoso' is refused: assignments are sticky)"
ctl customer add contoso --tenant 11111111-1111-4111-8111-111111111111 \
	--key-uri https://contoso-kv.vault.local/keys/cmk --label region=westeurope || true
ctl app list

say "Phase 3 (host service): the decisions it gets through libxtcmk.so"
host decide contoso woodgrove fabrikam

say "Envelope encryption: contoso's data under contoso's key"
printf 'Q3 revenue: confidential\n' >"$T/report.txt"
host encrypt contoso "$T/report.txt" "$T/report.v1.xtc"
host decrypt contoso "$T/report.v1.xtc" "$T/report.out" && cat "$T/report.out"
echo "(the same file for another customer is refused:)"
host decrypt northwind "$T/report.v1.xtc" "$T/report.out" || true

say "The customer rotates the key: new data uses the new version, old data still opens"
ctl key rotate https://contoso-kv.vault.local/keys/cmk
echo "waiting for the policy's refresh interval (2 s)..."
sleep 3
host encrypt contoso "$T/report.txt" "$T/report.v2.xtc"
host inspect "$T/report.v1.xtc" "$T/report.v2.xtc"
host decrypt contoso "$T/report.v1.xtc" "$T/report.out" && echo "old file: $(cat "$T/report.out")"
host rewrap contoso "$T/report.v1.xtc"
host inspect "$T/report.v1.xtc"
ctl key status contoso

say "The customer disables the key: reads fail closed within the check interval"
ctl key disable https://contoso-kv.vault.local/keys/cmk
start=$(date +%s.%N)
for _ in $(seq 100); do
	if ! "$B/examples/xtcmk-example-host" -l "$B/module/libxtcmk.so" \
		-s "$T/xtcmkd.sock" decrypt contoso "$T/report.v2.xtc" "$T/report.out" 2>"$T/err"; then
		break
	fi
	sleep 0.2
done
printf 'reads refused after %.1f s (policy: revocation check every 2 s):\n' \
	"$(echo "$(date +%s.%N) - $start" | bc)"
cat "$T/err"
host status contoso || true

say "The customer re-enables the key: service comes back without a restart"
ctl key enable https://contoso-kv.vault.local/keys/cmk
start=$(date +%s.%N)
for _ in $(seq 100); do
	"$B/examples/xtcmk-example-host" -l "$B/module/libxtcmk.so" \
		-s "$T/xtcmkd.sock" decrypt contoso "$T/report.v2.xtc" "$T/report.out" 2>/dev/null && break
	sleep 0.2
done
printf 'reads work again after %.1f s: %s\n' \
	"$(echo "$(date +%s.%N) - $start" | bc)" "$(cat "$T/report.out")"

say "What the agent did"
ctl stats
echo "decision log: $(wc -l <"$T/state/decisions.jsonl") decisions in state/decisions.jsonl"
echo "agent log:"
sed "s|$T/||g" "$T/agent.log"
say "Done."
