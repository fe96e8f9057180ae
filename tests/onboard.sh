#!/usr/bin/env bash
# onboard.sh - the onboarding documents against a real agent: `app plan`,
# `customer kit`, `resource config` (every kind), `key plan-rotation`.
# Outputs are compared with tests/golden/onboard/ (XTCMK_UPDATE_GOLDEN=1
# rewrites them); the JSON documents are parsed back and checked field by
# field against shared/azure/FACTS.md; impossible requests must be refused
# with the right exit code and a message that says what to do.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
G=$S/tests/golden/onboard
T=$(mktemp -d /tmp/xtcmk-onboard.XXXXXX)
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

expect() {	# expect CODE PATTERN -- command...
	local code=$1 pat=$2; shift 3
	local out rc
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$code" ]; then bad "$* exited $rc, want $code: $out"; return; fi
	if ! grep -qE -- "$pat" <<<"$out"; then bad "$*: output lacks /$pat/: $out"; return; fi
	ok
}

# Volatile values: timestamps and policy hashes.
norm() { sed -E 's/"(created|assigned_at|time)": [0-9]+/"\1": 0/; s/[0-9a-f]{64}/POLICYHASH/g'; }

golden() {	# golden NAME -- command...
	local name=$1 out rc; shift 2
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != 0 ]; then bad "$name: $* exited $rc: $out"; return; fi
	out=$(norm <<<"$out")
	if [ "${XTCMK_UPDATE_GOLDEN:-0}" = 1 ]; then
		mkdir -p "$G"
		printf '%s\n' "$out" >"$G/$name"
		ok
		return
	fi
	if [ ! -f "$G/$name" ]; then bad "$name: no golden file (run with XTCMK_UPDATE_GOLDEN=1)"; return; fi
	if diff -u "$G/$name" <(printf '%s\n' "$out") >"$T/diff"; then ok
	else bad "$name differs from $G/$name:"; head -40 "$T/diff"; fi
}

check_json() {	# check_json NAME PYTHON -- command...
	local name=$1 prog=$2 out; shift 3
	if ! out=$("$@" 2>&1); then bad "$name: $* failed: $out"; return; fi
	if printf '%s' "$out" | python3 -c "import json, re, sys
d = json.load(sys.stdin)
$prog" 2>"$T/pyerr"; then ok; else bad "$name: $(cat "$T/pyerr")"; fi
}

start_agent() {	# start_agent [TENANT]
	{
		printf '[agent]\nsocket = %s/s.sock\nstate_dir = %s/state\n' "$T" "$T"
		printf 'policy_dir = %s/policies/default\nlua_dir = %s/lua\n' "$S" "$S"
		printf 'workload = wl-eu-1\n[params]\ncustomers_per_app = 10\n'
		[ -n "${1:-}" ] && printf '[azure]\ntenant = %s\n%s\n' "$1" "${2:-}"
	} >"$T/xtcmk.conf"
	rm -f "$T/s.sock"
	"$B/agent/xtcmkd" -c "$T/xtcmk.conf" >>"$T/agent.log" 2>&1 &
	PID=$!
	for _ in $(seq 100); do [ -S "$T/s.sock" ] && return 0; sleep 0.1; done
	echo "agent did not start:"; cat "$T/agent.log"; exit 1
}
stop_agent() { kill "$PID"; wait "$PID" 2>/dev/null; PID=; }

ISV=72f988bf-86f1-41af-91ab-2d7cd011db47
SUB=aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e
rid() { echo "/subscriptions/$SUB/resourcegroups/isv-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/$1"; }
APPID=bbbb1b1b-cc2c-4d3d-8e4e-ffffff5f5f5f
APPID_US=cccc2c2c-dd3d-4e4e-8f5f-000000606060
VER=0698c2156c1a4e1da5b6bab6f6422fd6
VRID=/subscriptions/dddd3d3d-ee4e-4f5f-8060-111111717171/resourceGroups/cust-rg/providers/Microsoft.KeyVault/vaults/north-kv

# --- without [azure] tenant: app plan is refused ---------------------
start_agent
$C workload add wl-eu-1 --client-id 11111111-1111-4111-8111-111111111111 \
	--principal-id 21111111-1111-4111-8111-111111111111 --resource-id "$(rid wl-eu-1)" \
	--label region=eu >/dev/null
$C workload add wl-eu-2 --client-id 11111111-1111-4111-8111-111111111112 \
	--principal-id 21111111-1111-4111-8111-111111111112 --resource-id "$(rid wl-eu-2)" \
	--label region=eu >/dev/null
$C workload add wl-us-1 --client-id 11111111-1111-4111-8111-111111111113 \
	--principal-id 21111111-1111-4111-8111-111111111113 --resource-id "$(rid wl-us-1)" \
	--label region=us >/dev/null
$C workload add wl-eu-norid --client-id 11111111-1111-4111-8111-111111111114 \
	--principal-id 21111111-1111-4111-8111-111111111114 --label role=spare >/dev/null
for i in $(seq 10 29); do
	$C workload add wl-x-$i --client-id 11111111-1111-4111-8111-0000000000$i \
		--principal-id 21111111-1111-4111-8111-0000000000$i --label role=spare >/dev/null
done
$C customer add contoso --tenant 31111111-1111-4111-8111-111111111111 \
	--key-uri https://contoso-kv.vault.azure.net/keys/cmk --kind storage,cosmosdb \
	--label region=eu >/dev/null
$C customer add fabrikam --tenant 31111111-1111-4111-8111-111111111112 \
	--key-uri https://fab-kv.vault.azure.net/keys/cmk/$VER --kind storage-existing \
	--auth access-policy --label region=eu --label key_mode=pinned >/dev/null
$C customer add northwind --tenant 31111111-1111-4111-8111-111111111113 \
	--key-uri https://north-kv.vault.azure.net/keys/files --kind netapp --label region=eu >/dev/null
$C customer add tailspin --tenant 31111111-1111-4111-8111-111111111114 \
	--key-uri https://tail-kv.vault.azure.net/keys/files --kind netapp \
	--auth access-policy --label region=eu >/dev/null
$C customer add hostco --tenant 31111111-1111-4111-8111-111111111115 \
	--key-uri https://host-kv.vault.azure.net/keys/dek-kek --kind host --label region=us >/dev/null
expect 5 "\[azure\] section of xtcmk.conf" -- $C app plan
stop_agent

# --- with the tenant ------------------------------------------------
start_agent $ISV
expect 5 "xtcmkctl app set xtcmk-eu-1 --client-id GUID" -- $C customer kit contoso
expect 5 "xtcmkctl app set xtcmk-eu-1 --client-id GUID" -- $C resource config contoso --kind storage
golden app-plan-noclient.txt -- $C app plan xtcmk-eu-1
$C app set xtcmk-eu-1 --client-id $APPID >/dev/null
$C app set xtcmk-us-1 --client-id $APPID_US >/dev/null

# Phase 1
golden app-plan.txt -- $C app plan
golden app-plan.md -- $C app plan xtcmk-eu-1 --format md
golden app-plan.json -- $C app plan --json
cat >"$T/current.json" <<JSON
[{"name": "xtcmk-wl-eu-1", "issuer": "https://login.microsoftonline.com/$ISV/v2.0",
  "subject": "21111111-1111-4111-8111-111111111111", "audiences": ["api://AzureADTokenExchange"]},
 {"name": "old-host", "issuer": "https://login.microsoftonline.com/$ISV/v2.0",
  "subject": "29999999-1111-4111-8111-111111111111", "audiences": ["api://AzureADTokenExchange"]},
 {"name": "github-ci", "issuer": "https://token.actions.githubusercontent.com",
  "subject": "repo:contoso/app:ref:refs/heads/main", "audiences": ["api://AzureADTokenExchange"]}]
JSON
golden app-plan-current.txt -- $C app plan xtcmk-eu-1 --current "$T/current.json"
check_json app-plan-current.json '
a = d["apps"][0]
acts = {f["name"]: f["action"] for f in a["fics"]}
assert acts == {"xtcmk-wl-eu-1": "keep", "xtcmk-wl-eu-2": "create"}, acts
assert [r["name"] for r in a["remove"]] == ["old-host"], a["remove"]
assert a["foreign"] == ["github-ci"], a["foreign"]
assert a["total_after"] == 3 and a["room"] == 17, a
' -- $C --json app plan xtcmk-eu-1 --current "$T/current.json"
check_json app-plan-fields '
ISS = "https://login.microsoftonline.com/'$ISV'/v2.0"
assert d["issuer"] == ISS and d["limit"] == 20
wl = {"wl-eu-1": "21111111-1111-4111-8111-111111111111",
      "wl-eu-2": "21111111-1111-4111-8111-111111111112",
      "wl-us-1": "21111111-1111-4111-8111-111111111113"}
names = {a["name"]: a for a in d["apps"]}
assert set(names) == {"xtcmk-eu-1", "xtcmk-us-1"}, names
assert names["xtcmk-eu-1"]["client_id"] == "'$APPID'"
assert names["xtcmk-eu-1"]["customers"] == 4
for a in d["apps"]:
    assert a["fic_count"] <= 20 and a["room"] == 20 - a["total_after"]
    for f in a["fics"]:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}", f["name"]), f
        assert f["issuer"] == ISS, f
        assert f["subject"] == wl[f["workload"]], f
        assert f["audiences"] == ["api://AzureADTokenExchange"], f
        assert len(f["description"]) <= 600
' -- $C app plan --json
check_json app-plan-add '
a = d["apps"][0]
assert [f["workload"] for f in a["fics"] if f["workload"].startswith("wl-x")] == ["wl-x-10"]
assert a["total_after"] == 3
assert a["unfederated"] == [], a["unfederated"]
' -- $C app plan xtcmk-eu-1 --add wl-x-10 --json
# The 21st FIC: refused by the plan and by the registry.
adds=""; for i in $(seq 10 28); do adds="$adds --add wl-x-$i"; done
expect 5 "would hold 21 federated identity credentials.*open another application" -- \
	$C app plan xtcmk-eu-1 $adds
expect 5 "would hold 21 .*not managed by xtcmk" -- \
	$C app plan xtcmk-eu-1 --current "$T/current.json" $(for i in $(seq 10 27); do echo --add wl-x-$i; done)
for i in $(seq 10 28); do $C app fic add xtcmk-us-1 wl-x-$i >/dev/null || bad "fic add wl-x-$i"; done
expect 0 "20 of 20" -- $C app plan xtcmk-us-1
expect 5 "would hold 21 federated credentials" -- $C app fic add xtcmk-us-1 wl-x-29
# Adding an existing FIC does nothing, and says so (xtcmkctl(8)).
expect 0 "already holds a federated credential for workload wl-x-10: nothing changed" -- \
	$C app fic add xtcmk-us-1 wl-x-10
check_json fic-add-existing 'assert d["changed"] is False, d' -- $C --json app fic add xtcmk-us-1 wl-x-10
expect 5 "would hold 21" -- $C app plan xtcmk-us-1 --add wl-x-29
for i in $(seq 10 28); do $C app fic remove xtcmk-us-1 wl-x-$i >/dev/null; done
expect 4 "unknown application 'nope'" -- $C app plan nope
expect 4 "unknown workload 'nope'" -- $C app plan xtcmk-eu-1 --add nope
expect 2 "usage" -- $C app plan --add wl-x-10
expect 9 "cannot read" -- $C app plan xtcmk-eu-1 --current "$T/missing.json"

# Phase 2
# A Managed HSM key: its local RBAC role, never the Key Vault one.
$C customer add adventure --tenant 31111111-1111-4111-8111-111111111116 \
	--key-uri https://adv-hsm.managedhsm.azure.net/keys/cmk --kind host --label region=us >/dev/null ||
	bad "customer adventure (Managed HSM) added"
golden kit-adventure.txt -- $C customer kit adventure
check_json kit-mhsm '
g = d["grant"]
assert g["role"] == "Managed HSM Crypto Service Encryption User", g
assert g["role_id"] == "33413926-3206-4cdd-b39a-83574fe37a17", g
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "--hsm-name adv-hsm --role \"Managed HSM Crypto Service Encryption User\"" in code, code
assert "Key Vault Crypto Service Encryption User" not in json.dumps(d), d
' -- $C customer kit adventure --json
golden kit-contoso.txt -- $C customer kit contoso
golden kit-contoso.md -- $C customer kit contoso --format md
golden kit-contoso.json -- $C customer kit contoso --json
golden kit-fabrikam.txt -- $C customer kit fabrikam
golden kit-northwind.md -- $C customer kit northwind --vault-resource-id "$VRID" --format md
check_json kit-fields '
assert d["admin_consent_url"] == "https://login.microsoftonline.com/31111111-1111-4111-8111-111111111111/adminconsent?client_id='$APPID'"
g = d["grant"]
assert g["mechanism"] == "rbac" and g["role"] == "Key Vault Crypto Service Encryption User"
assert g["role_id"] == "e147488a-f6f5-4113-8e2d-b22465e65bf6" and g["scope"] == "key"
assert g["scope_id"] == "<vault-resource-id>/keys/cmk"
assert d["vault_prerequisites"]["soft_delete"] is True
assert d["vault_prerequisites"]["purge_protection"] is True
assert d["arm"]["type"] == "Microsoft.Authorization/roleAssignments"
assert "e147488a-f6f5-4113-8e2d-b22465e65bf6" in d["arm"]["properties"]["roleDefinitionId"]
assert d["arm"]["properties"]["principalType"] == "ServicePrincipal"
assert d["send_back"] == [{"item": "key_uri", "value": "https://contoso-kv.vault.azure.net/keys/cmk"}]
' -- $C customer kit contoso --json
check_json kit-access-policy '
g = d["grant"]
assert g["mechanism"] == "access-policy" and g["permissions"] == ["get", "wrapKey", "unwrapKey"], g
assert "arm" not in d
assert d["send_back"][0]["value"] == "https://fab-kv.vault.azure.net/keys/cmk/'$VER'"
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "--key-permissions get wrapKey unwrapKey" in code
assert "-PermissionsToKeys get,wrapKey,unwrapKey" in code
' -- $C customer kit fabrikam --json
check_json kit-netapp '
g = d["grant"]
assert g["role"] == "Key Vault Crypto User" and g["role_id"] == "12338af0-0e69-4776-bea7-57ae8d297424"
assert g["scope_id"] == "'$VRID'/keys/files"
assert {"item": "vault_resource_id", "value": "'$VRID'"} in d["send_back"]
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "-ResourceGroupName cust-rg -EnablePurgeProtection" in code, code
text = json.dumps(d)
assert "picked up automatically" not in text, "NetApp: following new versions is unverified"
' -- $C customer kit northwind --vault-resource-id "$VRID" --json
expect 5 "access policies.*drop --grant" -- $C customer kit fabrikam --grant rbac
expect 5 "Azure RBAC permission model.*drop --grant" -- $C customer kit contoso --grant access-policy
expect 0 "Key Vault Crypto Service Encryption User" -- $C customer kit contoso --grant rbac
expect 4 "no customer 'nobody'" -- $C customer kit nobody
expect 9 "names vault 'other-kv'.*north-kv" -- \
	$C customer kit northwind --vault-resource-id "${VRID%north-kv}other-kv"
expect 9 "must look like" -- $C customer kit northwind --vault-resource-id /subscriptions/x
expect 2 "--grant takes rbac or access-policy" -- $C customer kit contoso --grant owner

# Phase 3
golden res-storage.txt -- $C resource config contoso --kind storage --account contosodata \
	--resource-group isv-rg --location westeurope
golden res-storage.json -- $C resource config contoso --kind storage --json
golden res-storage-existing.txt -- $C resource config fabrikam --kind storage-existing \
	--account fabdata --resource-group isv-rg
golden res-cosmosdb.txt -- $C resource config contoso --kind cosmosdb --account contosodb \
	--resource-group isv-rg --location "West Europe"
golden res-cosmosdb.json -- $C resource config contoso --kind cosmosdb --json
golden res-netapp.txt -- $C resource config northwind --kind netapp --account anf1 \
	--resource-group isv-rg --subscription $SUB --location westeurope --vault-resource-id "$VRID"
golden res-netapp.json -- $C resource config northwind --kind netapp --json
golden res-host.txt -- $C resource config hostco --kind host
golden res-host.md -- $C resource config hostco --kind host --format md
golden res-host.json -- $C resource config hostco --kind host --json
RID1=$(rid wl-eu-1)
check_json res-storage-fields '
enc = d["arm"]["properties"]["encryption"]
assert d["arm"]["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"'$RID1'": {}}}
assert enc["identity"] == {"userAssignedIdentity": "'$RID1'", "federatedIdentityClientId": "'$APPID'"}, enc
assert enc["keyvaultproperties"] == {"keyvaulturi": "https://contoso-kv.vault.azure.net", "keyname": "cmk"}
assert enc["keySource"] == "Microsoft.Keyvault"
assert "federatedClientId" not in json.dumps(d["arm"])
assert d["key"]["mode"] == "auto"
# FACTS 8: --template-file takes a template, not a bare resource.
t = d["template"]
assert t["$schema"].endswith("/deploymentTemplate.json#") and t["contentVersion"] == "1.0.0.0", t
assert t["resources"] == [d["arm"]], t
assert d["arm"]["sku"] == {"name": "Standard_LRS"} and d["arm"]["kind"] == "StorageV2"
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "az storage account create" in code and "--key-vault-federated-client-id '$APPID'" in code, code
assert "New-AzStorageAccount" in code and "-KeyVaultFederatedClientId '$APPID'" in code, code
assert "az keyvault key set-attributes --vault-name contoso-kv --name cmk --enabled false" in code, code
assert "--encryption-key-source Microsoft.Storage" in code
' -- $C resource config contoso --kind storage --json
check_json res-storage-pinned '
kvp = d["arm"]["properties"]["encryption"]["keyvaultproperties"]
assert kvp == {"keyvaulturi": "https://fab-kv.vault.azure.net", "keyname": "cmk", "keyversion": "'$VER'"}, kvp
assert d["arm"]["properties"]["encryption"]["identity"]["federatedIdentityClientId"] == "'$APPID'"
# A PUT needs sku, kind and location: those of the account, as parameters.
a = d["arm"]
assert a["sku"] == {"name": "[parameters(\x27skuName\x27)]"} and a["kind"] == "[parameters(\x27kind\x27)]", a
assert a["location"] == "[parameters(\x27location\x27)]", a
assert set(d["template"]["parameters"]) == {"location", "kind", "skuName"}
assert d["template"]["resources"] == [a]
# Keep an existing system-assigned identity.
assert a["identity"]["type"] == "SystemAssigned,UserAssigned", a["identity"]
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "--encryption-key-version '$VER'" in code and "--key-vault-federated-client-id '$APPID'" in code
assert "--identity-type SystemAssigned,UserAssigned" in code and "-IdentityType SystemAssignedUserAssigned" in code
assert "UserAssigned --" not in code.replace("SystemAssigned,UserAssigned", "")
assert "--encryption-key-source Microsoft.Storage" in code
assert "skuName=\"$sku\"" in code
# Revoking a pinned key disables the pinned version, not the latest.
assert "set-attributes --vault-name fab-kv --name cmk --version '$VER' --enabled false" in code, code
assert "set-attributes --vault-name fab-kv --name cmk --version '$VER' --enabled true" in code, code
assert "Update-AzKeyVaultKey -VaultName fab-kv -Name cmk -Version '$VER' -Enable $false" in code, code
' -- $C resource config fabrikam --kind storage-existing --json
check_json res-cosmosdb-fields '
p = d["arm"]["properties"]
assert d["arm"]["apiVersion"] == "2022-05-15"
assert p["keyVaultKeyUri"] == "https://contoso-kv.vault.azure.net/keys/cmk"
assert not p["keyVaultKeyUri"].endswith("/")
assert p["defaultIdentity"] == "UserAssignedIdentity='$RID1'&FederatedClientId='$APPID'"
assert d["arm"]["identity"]["userAssignedIdentities"] == {"'$RID1'": {}}
assert "federatedIdentityClientId" not in json.dumps(d["arm"])
t = d["template"]
assert t["$schema"].endswith("/deploymentTemplate.json#") and t["contentVersion"] == "1.0.0.0", t
assert t["resources"] == [d["arm"]], t
' -- $C resource config contoso --kind cosmosdb --json
check_json res-netapp-fields '
b = d["body"]
e = b["properties"]["encryption"]
assert e["keySource"] == "Microsoft.KeyVault"
assert e["keyVaultProperties"] == {"keyVaultUri": "https://north-kv.vault.azure.net", "keyVaultResourceId": "'$VRID'", "keyName": "files"}, e
assert e["identity"] == {"userAssignedIdentity": "'$RID1'", "federatedClientId": "'$APPID'"}, e
assert b["identity"] == {"type": "userAssigned", "userAssignedIdentities": {"'$RID1'": {}}}
assert "federatedIdentityClientId" not in json.dumps(b)
assert d["uri"] == "/subscriptions/'$SUB'/resourceGroups/isv-rg/providers/Microsoft.NetApp/netAppAccounts/anf1?api-version=2025-01-01"
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "--group-id vault" in code and "--kv-private-endpoint-id" in code
' -- $C resource config northwind --kind netapp --account anf1 --resource-group isv-rg \
	--subscription $SUB --vault-resource-id "$VRID" --json
check_json res-host-fields '
assert d["agent_config"]["agent"]["workload"] == "wl-us-1"
assert d["agent_config"]["azure"]["tenant"] == "'$ISV'"
assert d["identity"]["resource_id"].endswith("/wl-us-1")
# The identity selector: the identity of the workload, by client id.
az = d["agent_config"]["azure"]
assert az["identity"] == "imds", az
assert az["identity_client_id"] == "11111111-1111-4111-8111-111111111113", az
assert "identity_resource_id" not in az, az	# one selector only
code = "\n".join(i.get("code", "") for s in d["sections"] for i in s["body"])
assert "identity_client_id = 11111111-1111-4111-8111-111111111113" in code, code
text = json.dumps(d)
assert "only the local key provider" not in text, text
' -- $C resource config hostco --kind host --json
check_json res-identity '
assert d["identity"]["workload"] == "wl-eu-2"
assert d["arm"]["properties"]["encryption"]["identity"]["userAssignedIdentity"].endswith("/wl-eu-2")
' -- $C resource config contoso --kind storage --identity wl-eu-2 --json
expect 6 "Cosmos DB accepts only a versionless key URI.*mode \"auto\"" -- \
	$C resource config fabrikam --kind cosmosdb
expect 6 "NetApp Files.*no key version" -- $C resource config fabrikam --kind netapp
expect 5 "documented only with the Azure RBAC role Key Vault Crypto User.*--auth rbac" -- \
	$C resource config tailspin --kind netapp
expect 5 "NetApp Files needs Key Vault Crypto User" -- $C resource config contoso --kind netapp
expect 5 "holds no federated credential on application 'xtcmk-eu-1'.*app fic add" -- \
	$C resource config contoso --kind storage --identity wl-us-1
expect 4 "no customer 'nobody'" -- $C resource config nobody --kind storage
expect 2 "needs --kind" -- $C resource config contoso --kind blob
expect 2 "needs --kind" -- $C resource config contoso
expect 9 "--account 'a;rm' has characters" -- $C resource config contoso --kind storage --account 'a;rm'

# Rotation and revocation
golden rot-contoso.txt -- $C key plan-rotation contoso
golden rot-fabrikam.json -- $C key plan-rotation fabrikam --json
golden rot-northwind.md -- $C key plan-rotation northwind --format md
check_json rot-fields '
k = {x["kind"]: x for x in d["kinds"]}
assert k["storage"]["disable_old_after"] == 86400 and k["cosmosdb"]["disable_old_after"] == 86400
assert d["disable_old_after"] == 86400
assert "can be disabled after 24 hours" in k["cosmosdb"]["when"], k["cosmosdb"]
assert "UNVERIFIED" not in k["cosmosdb"]["when"]
' -- $C key plan-rotation contoso --json
check_json rot-host '
assert d["kinds"][0]["disable_old_after"] == 86400
assert "300 seconds" in d["kinds"][0]["revoke"]
' -- $C key plan-rotation hostco --json
check_json rot-pinned '
assert d["kinds"][0]["disable_old_after"] is None and d["disable_old_after"] is None
' -- $C key plan-rotation fabrikam --json
expect 4 "no customer 'nobody'" -- $C key plan-rotation nobody

# The steps around the setup that the documents must carry themselves.
code_of() { python3 -c "import json, sys
d = json.load(sys.stdin)
print(\"\\n\".join(i.get(\"code\", \"\") for s in d[\"sections\"] for i in s[\"body\"]))"; }
steps() {	# steps NAME PATTERN... -- command
	local name=$1 out p; shift
	local pats=()
	while [ "$1" != "--" ]; do pats+=("$1"); shift; done
	shift
	out=$("$@" --json 2>&1 | code_of 2>&1)
	for p in "${pats[@]}"; do
		grep -qF -- "$p" <<<"$out" || { bad "$name: lacks '$p'"; return; }
	done
	ok
}
$C app add xtcmk-eu-9 --label region=eu >/dev/null || bad "app add xtcmk-eu-9"
steps "phase 1: app, identities, PowerShell FIC" \
	"az ad app create --display-name xtcmk-eu-9 --sign-in-audience AzureADMultipleOrgs" \
	'{"displayName": "xtcmk-eu-9", "signInAudience": "AzureADMultipleOrgs"}' \
	"az identity create --name <workload>" "New-AzUserAssignedIdentity" \
	-- $C app plan xtcmk-eu-9
steps "phase 1: New-AzADAppFederatedCredential" "New-AzADAppFederatedCredential -ApplicationObjectId \$app.Id" \
	"-Audience api://AzureADTokenExchange" -- $C app plan
steps "phase 2: the customer's own vault and key" \
	"az keyvault create --name contoso-kv" "--enable-purge-protection true --enable-rbac-authorization true" \
	'az role assignment create --role "Key Vault Crypto Officer"' \
	"az keyvault key create --vault-name contoso-kv --name cmk --kty RSA" \
	"--bypass AzureServices" -- $C customer kit contoso
steps "phase 2, NetApp: approve the private endpoint" \
	"az network private-endpoint-connection approve --id" \
	"private-endpoint-connection list --id \"\$vault_id\"" \
	-- $C customer kit northwind --vault-resource-id "$VRID"
steps "phase 3, NetApp: endpoint id looked up, not a placeholder" \
	"--kv-private-endpoint-id \"\$(az network private-endpoint show --name north-kv-pe" \
	"--subnet <endpoint-subnet>" -- \
	$C resource config northwind --kind netapp --account anf1 --resource-group isv-rg --vault-resource-id "$VRID"
check_json netapp-order '
text = json.dumps(d)
assert "private-endpoint-id>" not in text, "placeholder"
assert "delegated to Microsoft.NetApp/volumes" in text
' -- $C resource config northwind --kind netapp --account anf1 --resource-group isv-rg --vault-resource-id "$VRID" --json

# Every Azure CLI command of the documents, parsed by the real az
# (Debian's azure-cli; offline, no login: "Please run 'az login'" means
# the arguments parsed).
AZPY=/usr/bin/python3
if command -v az >/dev/null && "$AZPY" -c "import azure.cli.core" 2>/dev/null; then
	mkdir -p "$T/docs" "$T/azcfg"
	n=0
	for args in "app plan" "customer kit contoso" "customer kit fabrikam" \
	    "customer kit northwind --vault-resource-id $VRID" "customer kit adventure" \
	    "resource config contoso --kind storage --account contosodata --resource-group isv-rg --location westeurope" \
	    "resource config fabrikam --kind storage-existing --account fabdata --resource-group isv-rg" \
	    "resource config contoso --kind cosmosdb --account contosodb --resource-group isv-rg --location westeurope" \
	    "resource config northwind --kind netapp --account anf1 --resource-group isv-rg --subscription $SUB --location westeurope --vault-resource-id $VRID" \
	    "resource config hostco --kind host" "key plan-rotation contoso" "key plan-rotation fabrikam"; do
		n=$((n + 1))
		$C $args --json >"$T/docs/$n.json" 2>&1 || bad "az parse: $args --json failed: $(cat "$T/docs/$n.json")"
	done
	NET=
	command -v unshare >/dev/null && unshare -n true 2>/dev/null && NET="unshare -n"
	if (cd "$T/docs" && AZURE_CONFIG_DIR="$T/azcfg" AZURE_CORE_COLLECT_TELEMETRY=0 \
	    AZURE_CORE_ERROR_RECOMMENDATION=off AZURE_CORE_SURVEY_MESSAGE=false \
	    $NET "$AZPY" "$S/tests/az_parse.py" "$T"/docs/*.json >"$T/azparse" 2>&1); then ok
	else bad "az parse:"; grep -v "^ok " "$T/azparse"; fi
	grep -E "^(UNCHECKED|FAIL)|parsed," "$T/azparse" | sed 's/^/az: /'
else
	echo "SKIP: az parse: the Azure CLI is not installed (apt-get install azure-cli, see scripts/deps.sh)"
fi

# US Government cloud: the issuer and the FIC audience follow the
# authority, and are what the agent requests ([azure] token_audience).
stop_agent
start_agent $ISV "authority = https://login.microsoftonline.us"
check_json app-plan-usgov '
assert d["issuer"] == "https://login.microsoftonline.us/'$ISV'/v2.0", d["issuer"]
assert d["audience"] == "api://AzureADTokenExchangeUSGov", d["audience"]
n = 0
for a in d["apps"]:
    for f in a["fics"]:
        assert f["audiences"] == ["api://AzureADTokenExchangeUSGov"], f
        n += 1
assert n > 0
' -- $C app plan --json
expect 0 "api://AzureADTokenExchangeUSGov\) for a token" -- $C resource config hostco --kind host
stop_agent

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
