#!/bin/bash
# tests/emulator.sh BUILDDIR: the Azure emulator's own test.
#  1. installs the pinned Azure SDK (npm ci from tests/emulator/package-lock.json)
#     into tests/emulator/node_modules when it is missing;
#  2. starts the emulator (tests/emulator/lib.sh) and runs the fidelity
#     test with the official Azure SDK for JavaScript;
#  3. checks raw wire shapes with curl against /work/shared/azure/FACTS.md.
# Ends with "N passed, N failed"; non-zero exit on any failure.
set -u
SRC=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
EMU=$SRC/tests/emulator
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }
check() { # check NAME CMD...: passes when CMD succeeds
	local name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name" "${detail:-}"; fi
	detail=
}
finish() {
	echo "$pass passed, $fail failed"
	[[ $fail -eq 0 ]]
	exit $?
}

for tool in node npm openssl curl; do
	if ! command -v "$tool" >/dev/null; then
		bad "$tool is installed" "install $tool to run the Azure emulator test"
		finish
	fi
done

# 1. the SDK, from the lock file only.
if [[ ! -d $EMU/node_modules/@azure/keyvault-keys || ! -d $EMU/node_modules/@azure/identity ]]; then
	echo "# installing the pinned Azure SDK: npm ci in $EMU"
	if ! (cd "$EMU" && npm ci --no-audit --no-fund >"${TMPDIR:-/tmp}/xtcmk-npm-ci.log" 2>&1); then
		cat "${TMPDIR:-/tmp}/xtcmk-npm-ci.log" >&2
		bad "npm ci (Azure SDK for the fidelity test)" \
			"the npm registry is unreachable or the install failed; the fidelity test CANNOT run (this is a failure, not a skip). Fix network access to registry.npmjs.org or preinstall tests/emulator/node_modules with 'npm ci'"
	fi
fi

. "$EMU/lib.sh"
cleanup() { emu_stop; rm -rf "${T:-}"; }
trap cleanup EXIT
T=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-emutest.XXXXXX")
if ! emu_start; then
	bad "emulator starts"
	finish
fi
ok "emulator starts and prints its ports"

# 2. fidelity test with the official SDK.
if [[ -d $EMU/node_modules/@azure/keyvault-keys ]]; then
	if (cd "$EMU" && NODE_EXTRA_CA_CERTS=$EMU_CA_FILE timeout 300 \
		node --require ./dns-preload.cjs fidelity.mjs); then
		ok "fidelity test with @azure/identity + @azure/keyvault-keys"
	else
		bad "fidelity test with @azure/identity + @azure/keyvault-keys" "see the FAIL lines above and $EMU_LOG"
		EMU_KEEP=1
	fi
fi

# 3. raw wire shapes.
# req METHOD URL [curl args]: sets $status, $body (file $T/body), $hdrs.
req() {
	local m=$1 u=$2
	shift 2
	status=$(curl -sS --max-time 20 --cacert "$EMU_CA_FILE" \
		--connect-to "::127.0.0.1:$EMU_HTTPS_PORT" -X "$m" \
		-o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$@" "$u") || status=000
	body=$(cat "$T/body")
	hdrs=$(tr -d '\r' <"$T/hdrs")
}
# jt JSON EXPR: true when the JS expression over j (the parsed JSON) is truthy.
jt() {
	node -e 'let j; try { j = JSON.parse(require("fs").readFileSync(0, "utf8")); } catch (e) { process.exit(1); } process.exit(eval(process.argv[1]) ? 0 : 1)' "$2" <<<"$1"
}
jget() {
	node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); const v = eval(process.argv[1]); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v))' "$2" <<<"$1"
}
ctl() { emu_ctl "$@" >/dev/null || bad "control $1 $2"; }

emu_basic || { bad "emu_basic setup"; finish; }
P=$EMU_PROVIDER_TENANT C=$EMU_CUSTOMER_TENANT
IMDS="http://127.0.0.1:$EMU_HTTP_PORT/metadata/identity/oauth2/token"
LOGIN=https://login.microsoftonline.com
KV=https://contoso.vault.azure.net
AV=api-version=7.4
JB=urn:ietf:params:oauth:client-assertion-type:jwt-bearer

# IMDS
status=$(curl -sS -o "$T/body" -w '%{http_code}' "$IMDS?api-version=2018-02-01&resource=api://AzureADTokenExchange")
body=$(cat "$T/body")
check "IMDS without Metadata: true -> 400 invalid_request" \
	jt "$body" '"'"$status"'" === "400" && j.error === "invalid_request" && /metadata header/i.test(j.error_description)'
status=$(curl -sS -o "$T/body" -w '%{http_code}' -H 'Metadata: true' "$IMDS?api-version=2018-02-01&resource=api://AzureADTokenExchange&client_id=00000000-0000-0000-0000-000000000000")
check "IMDS unknown client_id -> 400 Identity not found" \
	jt "$(cat "$T/body")" '"'"$status"'" === "400" && j.error_description === "Identity not found"'
mi=$(curl -sS -H 'Metadata: true' "$IMDS?api-version=2018-02-01&resource=api://AzureADTokenExchange&client_id=$EMU_UAMI_CLIENT_ID")
check "IMDS token: expires_in/expires_on/not_before are strings, token_type Bearer" \
	jt "$mi" 'typeof j.expires_in === "string" && /^\d+$/.test(j.expires_on) && typeof j.not_before === "string" && j.token_type === "Bearer" && j.resource === "api://AzureADTokenExchange" && j.refresh_token === ""'
MI=$(jget "$mi" j.access_token)
jwtpart() { cut -d. -f"$2" <<<"$1" | node -e 'process.stdout.write(Buffer.from(require("fs").readFileSync(0,"utf8").trim(), "base64url").toString())'; }
check "MI token header {alg RS256, typ JWT, kid}" jt "$(jwtpart "$MI" 1)" 'j.alg === "RS256" && j.typ === "JWT" && typeof j.kid === "string"'
check "MI token payload: aud, v2 iss, sub=oid=principal, tid, appid" \
	jt "$(jwtpart "$MI" 2)" 'j.aud === "api://AzureADTokenExchange" && j.iss === "https://login.microsoftonline.com/'"$P"'/v2.0" && j.sub === "'"$EMU_UAMI_PRINCIPAL_ID"'" && j.oid === j.sub && j.tid === "'"$P"'" && j.appid === "'"$EMU_UAMI_CLIENT_ID"'" && j.exp > j.iat'
# App Service
AS="http://127.0.0.1:$EMU_HTTP_PORT/msi/token?api-version=2019-08-01&resource=https://vault.azure.net&client_id=$EMU_UAMI_CLIENT_ID"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H 'X-IDENTITY-HEADER: wrong' "$AS")
check "App Service: wrong X-IDENTITY-HEADER refused" test "$status" = 401
ctl /appservice '{"identity_header":"s3cret"}'
r=$(curl -sS -H 'X-IDENTITY-HEADER: s3cret' "$AS")
check "App Service 2019-08-01: expires_on string, client_id" jt "$r" 'typeof j.expires_on === "string" && j.client_id === "'"$EMU_UAMI_CLIENT_ID"'" && j.token_type === "Bearer"'

# Entra
exchange() { # exchange TENANT APP SCOPE ASSERTION
	req POST "$LOGIN/$1/oauth2/v2.0/token" --data-urlencode "scope=$3" \
		--data-urlencode "client_id=$2" --data-urlencode "client_assertion_type=$JB" \
		--data-urlencode "client_assertion=$4" --data-urlencode grant_type=client_credentials
}
exchange "$C" "$EMU_APP_ID" https://vault.azure.net/.default "$MI"
check "Entra token: 200, expires_in/ext_expires_in are numbers" \
	jt "$body" '"'"$status"'" === "200" && j.token_type === "Bearer" && typeof j.expires_in === "number" && typeof j.ext_expires_in === "number" && Object.keys(j).sort().join() === "access_token,expires_in,ext_expires_in,token_type"'
TOK=$(jget "$body" j.access_token)
check "KV token: aud vault, tid customer, appid app, iss sts v1" \
	jt "$(jwtpart "$TOK" 2)" 'j.aud === "https://vault.azure.net" && j.tid === "'"$C"'" && j.appid === "'"$EMU_APP_ID"'" && j.iss === "https://sts.windows.net/'"$C"'/"'
aadshape() { # aadshape CODE ERROR HTTP
	jt "$body" '"'"$status"'" === "'"$3"'" && j.error === "'"$2"'" && j.error_codes.length === 1 && j.error_codes[0] === '"$1"' && /^AADSTS'"$1"': [^\r]*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test(j.error_description) && j.trace_id && j.correlation_id && j.timestamp && Object.keys(j).sort().join() === "correlation_id,error,error_codes,error_description,timestamp,trace_id"'
}
exchange "$C" "$EMU_APP_ID" https://graph.microsoft.com/.default "$MI"
check "bad scope -> 400 invalid_scope AADSTS70011, FACTS 4.4 body" aadshape 70011 invalid_scope 400
exchange 99999999-0000-0000-0000-000000000000 "$EMU_APP_ID" https://vault.azure.net/.default "$MI"
check "unknown tenant -> AADSTS90002" aadshape 90002 invalid_tenant 400
ctl /tenant '{"id":"66666666-0000-4000-8000-000000000066"}'
exchange 66666666-0000-4000-8000-000000000066 "$EMU_APP_ID" https://vault.azure.net/.default "$MI"
check "app not installed -> 400 unauthorized_client AADSTS700016" aadshape 700016 unauthorized_client 400
check "AADSTS700016 message is the official text" jt "$body" 'j.error_description.startsWith("AADSTS700016: Application with identifier '"'$EMU_APP_ID'"' was not found in the directory '"'66666666-0000-4000-8000-000000000066'"'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.\r\n")'
ctl /app "{\"tenant\":\"$P\",\"app_id\":\"77777777-0000-4000-8000-000000000077\"}"
ctl /sp "{\"tenant\":\"$C\",\"app_id\":\"77777777-0000-4000-8000-000000000077\"}"
exchange "$C" 77777777-0000-4000-8000-000000000077 https://vault.azure.net/.default "$MI"
check "no matching FIC -> 400 invalid_request AADSTS70021" aadshape 70021 invalid_request 400
exchange "$C" "$EMU_APP_ID" https://vault.azure.net/.default "${MI%?????}AAAAA"
check "forged assertion signature -> 401 invalid_client AADSTS700027" aadshape 700027 invalid_client 401
ctl /clock '{"offset_s":7200}'
exchange "$C" "$EMU_APP_ID" https://vault.azure.net/.default "$MI"
check "expired assertion (clock +2 h) -> 401 invalid_client AADSTS700024" aadshape 700024 invalid_client 401
ctl /clock '{"offset_s":0}'
ctl /fault '{"match":{"host":"^login\\."},"kind":"expire-tokens","count":1}'
exchange "$C" "$EMU_APP_ID" https://vault.azure.net/.default "$MI"
check "expire-tokens fault -> AADSTS700024" aadshape 700024 invalid_client 401
exchange "$C" "$EMU_APP_ID" https://vault.azure.net/.default "$MI"
check "expire-tokens fault with count 1 is used up" test "$status" = 200
exchange "$C" "$EMU_APP_ID" https://managedhsm.azure.net/.default "$MI"
check "MHSM scope accepted" test "$status" = 200
HSMTOK=$(jget "$body" j.access_token)
# FIC limit (Graph: max 20 per app)
for i in $(seq 2 20); do
	emu_ctl /fic "{\"app_id\":\"$EMU_APP_ID\",\"name\":\"extra-$i\",\"issuer\":\"https://login.microsoftonline.com/$P/v2.0\",\"subject\":\"subject-$i\"}" >/dev/null || bad "FIC $i accepted"
done
r=$(emu_ctl /fic "{\"app_id\":\"$EMU_APP_ID\",\"name\":\"extra-21\",\"issuer\":\"https://login.microsoftonline.com/$P/v2.0\",\"subject\":\"subject-21\"}")
check "21st FIC on an app -> 400" jt "$r" 'j.error && j.error.code === "Request_BadRequest"'

# Key Vault 401 challenge
req GET "$KV/keys/cmk?$AV"
check "KV without token: 401" test "$status" = 401
check "KV WWW-Authenticate exactly as FACTS 2" grep -qxF "WWW-Authenticate: Bearer authorization=\"https://login.windows.net/$C\", resource=\"https://vault.azure.net\"" <<<"$hdrs"
check "KV 401 body is AKV10000" test "$body" = '{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}'
ctl /vault "{\"name\":\"contosohsm\",\"kind\":\"mhsm\",\"tenant\":\"$C\",\"auth\":\"rbac\"}"
ctl /grant "{\"vault\":\"contosohsm\",\"app_id\":\"$EMU_APP_ID\"}"
ctl /key '{"vault":"contosohsm","name":"hsmkey","kty":"oct-HSM","size":256}'
req GET "https://contosohsm.managedhsm.azure.net/keys/hsmkey?$AV"
check "MHSM 401: exact challenge, empty body" test "$status:$(grep -ci '^content-length: 0$' <<<"$hdrs"):$(grep -cxF "WWW-Authenticate: Bearer authorization=\"https://login.microsoftonline.com/$C\", resource=\"https://managedhsm.azure.net\"" <<<"$hdrs")" = 401:1:1
AUTH=(-H "Authorization: Bearer $TOK")
JSON=(-H 'Content-Type: application/json')
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "GET key: KeyBundle shape (FACTS 1.2)" \
	jt "$body" '"'"$status"'" === "200" && j.key.kid === "'"$EMU_KEY_KID"'" && j.key.kty === "RSA" && j.key.e === "AQAB" && /^[A-Za-z0-9_-]{342}$/.test(j.key.n) && j.key.key_ops.includes("unwrapKey") && j.attributes.enabled === true && typeof j.attributes.created === "number" && j.attributes.recoveryLevel === "Recoverable+Purgeable"'
check "KV response headers x-ms-request-id, x-ms-keyvault-region" test "$(grep -ci '^x-ms-request-id:\|^x-ms-keyvault-region:' <<<"$hdrs")" = 2
req GET "$KV/keys/cmk?$AV" -H "Authorization: Bearer $HSMTOK"
check "MHSM-audience token on a vault -> 401" test "$status" = 401
req GET "https://contosohsm.managedhsm.azure.net/keys/hsmkey?$AV" -H "Authorization: Bearer $HSMTOK"
check "MHSM oct-HSM key: exportable false, recoverableDays 90" jt "$body" 'j.key.kty === "oct-HSM" && j.attributes.exportable === false && j.attributes.recoverableDays === 90'
DEK=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
req POST "$KV/keys/cmk//wrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$DEK\"}"
check "versionless wrapkey: {kid versioned, value base64url}" jt "$body" 'j.kid === "'"$EMU_KEY_KID"'" && /^[A-Za-z0-9_-]{342}$/.test(j.value) && Object.keys(j).length === 2'
W=$(jget "$body" j.value)
req POST "$EMU_KEY_KID/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "unwrapkey returns the DEK" jt "$body" 'j.value === "'"$DEK"'" && j.kid === "'"$EMU_KEY_KID"'"'
req POST "$EMU_KEY_KID/unwrapkey" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "missing api-version -> 400 BadParameter" jt "$body" '"'"$status"'" === "400" && j.error.code === "BadParameter"'
for bad_av in 1.0 9.9 2099-01-01 7.4x; do
	req GET "$KV/keys/cmk?api-version=$bad_av" "${AUTH[@]}"
	check "api-version $bad_av -> 400 BadParameter naming it" jt "$body" '"'"$status"'" === "400" && j.error.code === "BadParameter" && j.error.message.includes("('"$bad_av"')")'
done
for av in 7.4 7.5 7.6 2025-06-01 2025-07-01; do
	req GET "$KV/keys/cmk?api-version=$av" "${AUTH[@]}"
	check "api-version $av is served" test "$status" = 200
done
status=$(curl -sS -o "$T/body" -w '%{http_code}' -H 'Metadata: true' "$IMDS?api-version=2099-01-01&resource=api://AzureADTokenExchange&client_id=$EMU_UAMI_CLIENT_ID")
check "IMDS: unknown api-version -> 400" test "$status:$(jget "$(cat "$T/body")" j.error)" = 400:invalid_request
req GET "$KV/keys/nokey?$AV" "${AUTH[@]}"
check "missing key -> 404 KeyNotFound, FACTS 2 message" test "$status:$body" = '404:{"error":{"code":"KeyNotFound","message":"A key with (name/id) nokey was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"}}'
ctl /key/enable '{"vault":"contoso","name":"cmk","enabled":false}'
req POST "$EMU_KEY_KID/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "disabled key: unwrap -> 403 KeyDisabled (FACTS 2 body)" test "$status:$body" = '403:{"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}'
ctl /key/enable '{"vault":"contoso","name":"cmk","enabled":true}'
req POST "$EMU_KEY_KID/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "re-enabled key unwraps" test "$status" = 200
r=$(emu_ctl /key '{"vault":"contoso","name":"signonly","key_ops":["sign","verify"]}')
req POST "$(jget "$r" j.kid)/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "op not in key_ops -> 403 KeyOperationForbidden" test "$status:$body" = '403:{"error":{"code":"Forbidden","message":"Operation unwrapKey is not permitted on this key.","innererror":{"code":"KeyOperationForbidden"}}}'
r=$(emu_ctl /key/rotate '{"vault":"contoso","name":"cmk"}')
V2=$(jget "$r" j.kid)
req POST "$KV/keys/cmk//wrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$DEK\"}"
check "after rotation versionless wrap names the new version" jt "$body" 'j.kid === "'"$V2"'"'
req POST "$EMU_KEY_KID/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "old version still unwraps its DEK" jt "$body" 'j.value === "'"$DEK"'"'
# RBAC
ctl /grant/remove "{\"vault\":\"contoso\",\"app_id\":\"$EMU_APP_ID\"}"
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "role removed -> 403 ForbiddenByRbac" jt "$body" '"'"$status"'" === "403" && j.error.code === "Forbidden" && j.error.innererror.code === "ForbiddenByRbac" && j.error.message.startsWith("Caller is not authorized to perform action on resource.\r\n") && j.error.message.includes("Action: '"'Microsoft.KeyVault/vaults/keys/read'"'")'
# The newer denial form, per vault (FACTS 2), and the Managed HSM form.
ctl /vault "{\"name\":\"contoso\",\"kind\":\"vault\",\"tenant\":\"$EMU_CUSTOMER_TENANT\",\"auth\":\"rbac\",\"deny_form\":\"access-denied\"}"
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "deny_form access-denied -> 403 innererror AccessDenied" jt "$body" '"'"$status"'" === "403" && j.error.code === "Forbidden" && j.error.innererror.code === "AccessDenied"'
ctl /vault "{\"name\":\"contoso\",\"kind\":\"vault\",\"tenant\":\"$EMU_CUSTOMER_TENANT\",\"auth\":\"rbac\"}"
ctl /grant/remove "{\"vault\":\"contosohsm\",\"app_id\":\"$EMU_APP_ID\"}"
req GET "https://contosohsm.managedhsm.azure.net/keys/hsmkey?$AV" -H "Authorization: Bearer $HSMTOK"
check "Managed HSM without a role -> 403 error.code AccessDenied (local RBAC)" jt "$body" '"'"$status"'" === "403" && j.error.code === "AccessDenied" && j.error.innererror === undefined && j.error.message.startsWith("Not authorized to access Microsoft.KeyVault/managedHsm/keys/read/action")'
ctl /grant "{\"vault\":\"contosohsm\",\"app_id\":\"$EMU_APP_ID\"}"
ctl /grant "{\"vault\":\"contoso\",\"app_id\":\"$EMU_APP_ID\",\"scope\":\"key:cmk\"}"
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
s1=$status
req GET "$KV/keys/signonly?$AV" "${AUTH[@]}"
check "key-scope role: allowed on that key, 403 on another" test "$s1:$status" = 200:403
# token checks
ctl /clock '{"offset_s":4000}'
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "expired KV token (clock +4000 s) -> 401 with challenge" test "$status:$(grep -c '^WWW-Authenticate: Bearer authorization=' <<<"$hdrs")" = 401:1
ctl /clock '{"offset_s":0}'
ctl /tenant '{"id":"88888888-0000-4000-8000-000000000088"}'
ctl /vault '{"name":"othervault","tenant":"88888888-0000-4000-8000-000000000088"}'
req GET "https://othervault.vault.azure.net/keys/cmk?$AV" "${AUTH[@]}"
check "token of another tenant -> 401 challenge naming the vault's tenant" grep -qF 'authorization="https://login.windows.net/88888888-0000-4000-8000-000000000088"' <<<"$hdrs"
# throttling and faults
ctl /fault '{"match":{"host":"^contoso\\."},"kind":"throttle","count":1}'
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "throttle without retry_after: 429, FACTS 2 body, no Retry-After" test "$status:$(grep -ci '^retry-after' <<<"$hdrs"):$body" = '429:0:{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}'
ctl /fault '{"match":{"host":"^contoso\\."},"kind":"throttle","retry_after":7,"count":1}'
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "throttle with retry_after: 429 and Retry-After: 7" test "$status:$(grep -xi 'retry-after: 7' <<<"$hdrs")" = '429:Retry-After: 7'
ctl /fault '{"match":{"path":"/unwrapkey$","method":"POST"},"kind":"latency","ms":400,"count":1}'
t0=$(date +%s%N)
req POST "$EMU_KEY_KID/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
ms=$((($(date +%s%N) - t0) / 1000000))
check "latency fault delays the answer (${ms} ms >= 400) and then answers 200" test "$status" = 200 -a "$ms" -ge 400
ctl /fault '{"match":{"host":"^contoso\\."},"kind":"reset","count":1}'
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}" 2>/dev/null
check "reset fault: connection dropped without an answer" test "$status" = 000
ctl /fault '{"match":{"host":"^contoso\\."},"kind":"status","status":503,"count":2}'
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
s1=$status
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
s2=$status
req GET "$KV/keys/cmk?$AV" "${AUTH[@]}"
check "status fault 503 with count 2, then normal" test "$s1:$s2:$status" = 503:503:200
ctl /fault '{"match":{"path":"^/metadata/"},"kind":"status","status":500,"count":1}'
status=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Metadata: true' "$IMDS?api-version=2018-02-01&resource=api://AzureADTokenExchange")
check "faults apply to IMDS too" test "$status" = 500
ctl /vault '{"name":"tiny","tenant":"'"$C"'","limit_per_10s":2}'
ctl /grant "{\"vault\":\"tiny\",\"app_id\":\"$EMU_APP_ID\"}"
ctl /key '{"vault":"tiny","name":"k"}'
codes=
for i in 1 2 3; do
	req GET "https://tiny.vault.azure.net/keys/k?$AV" "${AUTH[@]}"
	codes=$codes$status,
done
check "vault limit_per_10s=2: third request in 10 s is 429" test "$codes" = 200,200,429,
r=$(emu_ctl /counters)
check "counters count ops per kind and per vault" jt "$r" 'j.unwrapkey >= 3 && j["contoso/unwrapkey"] >= 3 && j.imds_token >= 1 && j.entra_token >= 1 && j.challenge_401 >= 2 && j.throttled_429 >= 3'
# state file: restart keeps keys, grants and the signing key
kill "$EMU_PID"
wait "$EMU_PID" 2>/dev/null
node "$EMU/emulator.js" --tls-cert "$EMU_DIR/ca/server.pem" --tls-key "$EMU_DIR/ca/server.key" \
	--https-port "$EMU_HTTPS_PORT" --http-port 0 --control-port "$EMU_CONTROL_PORT" \
	--state-file "$EMU_DIR/state.json" >"$EMU_DIR/ready2" 2>>"$EMU_LOG" &
EMU_PID=$!
for ((i = 0; i < 100; i++)); do
	grep -q control "$EMU_DIR/ready2" 2>/dev/null && break
	sleep 0.1
done
req POST "$EMU_KEY_KID/unwrapkey?$AV" "${AUTH[@]}" "${JSON[@]}" -d "{\"alg\":\"RSA-OAEP-256\",\"value\":\"$W\"}"
check "after a restart with --state-file the old token and key still unwrap" jt "$body" 'j.value === "'"$DEK"'"'

finish
