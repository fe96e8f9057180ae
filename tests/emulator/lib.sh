# tests/emulator/lib.sh: shell helpers for tests that use the Azure
# emulator.  Source it from bash:
#
#   . "$XTCMK_SRCDIR/tests/emulator/lib.sh"
#   emu_start || exit 1          # CA + emulator; exports EMU_* below
#   emu_basic                    # optional: standard cross-tenant setup
#   emu_ctl /key/enable '{"vault":"contoso","name":"cmk","enabled":false}'
#   emu_stop
#
# emu_start exports EMU_HTTPS_PORT EMU_HTTP_PORT EMU_CONTROL_PORT
# EMU_CA_FILE EMU_DIR EMU_PID EMU_LOG.  Needs node (>= 20), openssl, curl.
# Set EMU_KEEP=1 to keep $EMU_DIR (log, state, CA) after emu_stop.

EMU_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# emu_start [extra emulator options]: makes a test CA in a fresh temp
# dir, starts the emulator on loopback ports, waits for its ready line.
emu_start() {
	EMU_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-emu.XXXXXX") || return 1
	if ! "$EMU_SRC/mkca.sh" "$EMU_DIR/ca"; then
		echo "emu_start: mkca.sh failed (is openssl installed?)" >&2
		return 1
	fi
	EMU_CA_FILE=$EMU_DIR/ca/ca.pem
	EMU_LOG=$EMU_DIR/emulator.log
	node "$EMU_SRC/emulator.js" --tls-cert "$EMU_DIR/ca/server.pem" \
		--tls-key "$EMU_DIR/ca/server.key" --https-port 0 \
		--http-port 0 --control-port 0 \
		--state-file "$EMU_DIR/state.json" "$@" \
		>"$EMU_DIR/ready" 2>"$EMU_LOG" &
	EMU_PID=$!
	local i line=
	for ((i = 0; i < 100; i++)); do
		line=$(head -n 1 "$EMU_DIR/ready" 2>/dev/null)
		[[ $line == *control* ]] && break
		if ! kill -0 "$EMU_PID" 2>/dev/null; then
			echo "emu_start: emulator exited; log:" >&2
			cat "$EMU_LOG" >&2
			return 1
		fi
		sleep 0.1
	done
	if [[ $line != *control* ]]; then
		echo "emu_start: no ready line from the emulator after 10 s" >&2
		return 1
	fi
	EMU_HTTPS_PORT=$(sed -n 's/.*"https":\([0-9]*\).*/\1/p' <<<"$line")
	EMU_HTTP_PORT=$(sed -n 's/.*"http":\([0-9]*\).*/\1/p' <<<"$line")
	EMU_CONTROL_PORT=$(sed -n 's/.*"control":\([0-9]*\).*/\1/p' <<<"$line")
	export EMU_HTTPS_PORT EMU_HTTP_PORT EMU_CONTROL_PORT EMU_CA_FILE \
		EMU_DIR EMU_PID EMU_LOG
}

# emu_ctl PATH [JSON]: POSTs JSON to the control API and prints the
# reply.  Returns 1 when the emulator answers with an HTTP error.
emu_ctl() {
	local out code
	out=$(curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' \
		--data "${2:-{\}}" -w '\n%{http_code}' \
		"http://127.0.0.1:$EMU_CONTROL_PORT$1") || return 1
	code=${out##*$'\n'}
	printf '%s\n' "${out%$'\n'*}"
	[[ $code =~ ^2 ]]
}

# emu_basic: the standard cross-tenant CMK setup (FACTS 7.4).  Exports
# EMU_PROVIDER_TENANT EMU_CUSTOMER_TENANT EMU_UAMI_CLIENT_ID
# EMU_UAMI_PRINCIPAL_ID EMU_APP_ID EMU_VAULT EMU_KEY_NAME EMU_KEY_KID
# (versioned) and EMU_KEY_URI (versionless, https://contoso.vault.azure.net/keys/cmk).
emu_basic() {
	EMU_PROVIDER_TENANT=11111111-aaaa-4aaa-8aaa-111111111111
	EMU_CUSTOMER_TENANT=22222222-bbbb-4bbb-8bbb-222222222222
	EMU_UAMI_CLIENT_ID=33333333-cccc-4ccc-8ccc-333333333333
	EMU_UAMI_PRINCIPAL_ID=44444444-dddd-4ddd-8ddd-444444444444
	EMU_APP_ID=55555555-eeee-4eee-8eee-555555555555
	EMU_VAULT=contoso
	EMU_KEY_NAME=cmk
	local p=$EMU_PROVIDER_TENANT c=$EMU_CUSTOMER_TENANT
	emu_ctl /tenant "{\"id\":\"$p\"}" >/dev/null &&
	emu_ctl /tenant "{\"id\":\"$c\"}" >/dev/null &&
	emu_ctl /identity "{\"tenant\":\"$p\",\"client_id\":\"$EMU_UAMI_CLIENT_ID\",\"principal_id\":\"$EMU_UAMI_PRINCIPAL_ID\"}" >/dev/null &&
	emu_ctl /app "{\"tenant\":\"$p\",\"app_id\":\"$EMU_APP_ID\",\"name\":\"xtcmk-cmk\"}" >/dev/null &&
	emu_ctl /fic "{\"app_id\":\"$EMU_APP_ID\",\"name\":\"uami-1\",\"issuer\":\"https://login.microsoftonline.com/$p/v2.0\",\"subject\":\"$EMU_UAMI_PRINCIPAL_ID\",\"audience\":\"api://AzureADTokenExchange\"}" >/dev/null &&
	emu_ctl /sp "{\"tenant\":\"$c\",\"app_id\":\"$EMU_APP_ID\"}" >/dev/null &&
	emu_ctl /vault "{\"name\":\"$EMU_VAULT\",\"kind\":\"vault\",\"tenant\":\"$c\",\"auth\":\"rbac\"}" >/dev/null &&
	emu_ctl /grant "{\"vault\":\"$EMU_VAULT\",\"tenant\":\"$c\",\"app_id\":\"$EMU_APP_ID\",\"role\":\"Key Vault Crypto Service Encryption User\"}" >/dev/null || return 1
	local r
	r=$(emu_ctl /key "{\"vault\":\"$EMU_VAULT\",\"name\":\"$EMU_KEY_NAME\",\"kty\":\"RSA\",\"size\":2048}") || return 1
	EMU_KEY_KID=$(sed -n 's/.*"kid":"\([^"]*\)".*/\1/p' <<<"$r")
	EMU_KEY_URI=https://$EMU_VAULT.vault.azure.net/keys/$EMU_KEY_NAME
	export EMU_PROVIDER_TENANT EMU_CUSTOMER_TENANT EMU_UAMI_CLIENT_ID \
		EMU_UAMI_PRINCIPAL_ID EMU_APP_ID EMU_VAULT EMU_KEY_NAME \
		EMU_KEY_KID EMU_KEY_URI
}

# emu_curl ARGS...: curl against the emulator's HTTPS port with the
# real host names (use https://contoso.vault.azure.net/... URLs).
emu_curl() {
	curl -sS --max-time 30 --cacert "$EMU_CA_FILE" \
		--connect-to "::127.0.0.1:$EMU_HTTPS_PORT" "$@"
}

# emu_stop: stops the emulator and removes $EMU_DIR (unless EMU_KEEP=1).
emu_stop() {
	if [[ -n ${EMU_PID:-} ]]; then
		kill "$EMU_PID" 2>/dev/null
		wait "$EMU_PID" 2>/dev/null
		EMU_PID=
	fi
	if [[ -n ${EMU_DIR:-} && -d $EMU_DIR && ${EMU_KEEP:-0} != 1 ]]; then
		rm -rf "$EMU_DIR"
	fi
}
