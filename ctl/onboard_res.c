/*
 * onboard_res.c - phase 3 (the provider configures a resource with the
 * customer's key: Storage new and existing accounts, Cosmos DB, NetApp
 * Files, host services through the module) and the rotation and
 * revocation plan.  Each kind names the federated application
 * differently: `federatedIdentityClientId` (Storage), `federatedClientId`
 * (NetApp Files), `FederatedClientId=` inside `defaultIdentity` (Cosmos
 * DB).  The key-versioning decision is checked against each kind's rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onboard.h"
#include "onboard_int.h"

#define ROLE_CRYPTO_USER	"12338af0-0e69-4776-bea7-57ae8d297424"
#define ROLE_CSE_USER		"e147488a-f6f5-4113-8e2d-b22465e65bf6"
#define ROLE_MHSM_CSE_USER	"33413926-3206-4cdd-b39a-83574fe37a17"
#define COSMOS_API		"2022-05-15"
#define NETAPP_API		"2025-01-01"
#define STORAGE_CHECK_S		86400	/* Storage looks once a day */


static int
pick_identity(json_t *d, json_t *workloads, const char *want,
    json_t **ret_w, struct xerr *e)
{
	json_t *fed = json_object_get(d, "workloads"), *v, *w;
	const char *app = onb_str(d, "app"), *n;
	size_t i, j;
	char *list;

	if (want != NULL && !onb_has(fed, want)) {
		list = json_dumps(fed, JSON_COMPACT);
		xerr_set(e, XTCMK_E_CONFLICT, "workload '%s' holds no federated "
		    "credential on application '%s', so it cannot act as the "
		    "application: choose one of %s with --identity, or "
		    "federate it (`xtcmkctl app fic add %s %s`, then `xtcmkctl "
		    "app plan %s`)", want, app, list ? list : "[]", app, want,
		    app);
		free(list);
		return -XTCMK_E_CONFLICT;
	}
	json_array_foreach(fed, i, v) {
		n = json_string_value(v);
		if (want != NULL && strcmp(n, want) != 0)
			continue;
		json_array_foreach(workloads, j, w) {
			if (onb_str(w, "name") == NULL ||
			    strcmp(onb_str(w, "name"), n) != 0)
				continue;
			if (onb_str(w, "resource_id") != NULL) {
				*ret_w = w;
				return 0;
			}
		}
	}
	if (want != NULL)
		return xerr_set(e, XTCMK_E_CONFLICT, "workload '%s' has no "
		    "resource id recorded; Azure resources name the "
		    "user-assigned identity by it: re-add the workload with "
		    "--resource-id /subscriptions/.../userAssignedIdentities/"
		    "NAME", want);
	return xerr_set(e, XTCMK_E_CONFLICT, "no workload federated with "
	    "application '%s' has a resource id recorded; Azure resources "
	    "name the user-assigned identity by it: re-add one with "
	    "`xtcmkctl workload add NAME ... --resource-id ID`", app);
}

const char *
onb_ph(const char *v, const char *placeholder)
{
	return v != NULL ? v : placeholder;
}

json_t *
onb_uami_identity(const char *type, const char *uami)
{
	json_t *ua = json_object();

	json_object_set_new(ua, uami, json_object());
	return json_pack("{s:s, s:o}", "type", type,
	    "userAssignedIdentities", ua);
}

json_t *
onb_arm_template(json_t *resource, json_t *params)
{
	return json_pack("{s:s, s:s, s:o, s:[O]}", "$schema", ARM_SCHEMA,
	    "contentVersion", "1.0.0.0", "parameters", params != NULL ?
	    params : json_object(), "resources", resource);
}

/* Rules of the kind against the decisions; 0 or a refusal. */
static int
check_kind(struct res *r, struct xerr *e)
{
	json_t *role = json_object_get(r->d, "role");
	json_t *ver = json_object_get(r->d, "versioning");
	const char *mech = onb_str(role, "mechanism"), *rid;
	int pinned = strcmp(r->mode, "pinned") == 0;

	rid = onb_str(role, "role_id");
	if (strcmp(r->kind, "cosmosdb") == 0 && pinned)
		return xerr_set(e, XTCMK_E_POLICY, "Cosmos DB accepts only a "
		    "versionless key URI (no version, no trailing slash) and "
		    "follows new versions itself, but the versioning decision "
		    "for customer '%s' pins version %s: make the versioning "
		    "policy return mode \"auto\" for this customer (the "
		    "default policy pins only customers labelled "
		    "key_mode=pinned) and record cosmosdb among its kinds so "
		    "the agent enforces it", r->id, r->version);
	if (strcmp(r->kind, "netapp") == 0 && pinned)
		return xerr_set(e, XTCMK_E_POLICY, "NetApp Files' encryption "
		    "settings carry no key version (keyName only), so the "
		    "pinned version %s of customer '%s' cannot be expressed: "
		    "make the versioning policy return mode \"auto\" for it",
		    r->version, r->id);
	if (strcmp(r->kind, "netapp") == 0 && strcmp(mech, "rbac") != 0)
		return xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' declares "
		    "a vault with access policies, but the NetApp Files "
		    "cross-tenant setup is documented only with the Azure RBAC "
		    "role Key Vault Crypto User: ask the customer to switch the "
		    "vault to the RBAC permission model, record it (`xtcmkctl "
		    "customer remove %s`, `customer add %s ... --auth rbac "
		    "--kind netapp`) and send a new kit (`xtcmkctl customer "
		    "kit %s`)", r->id, r->id, r->id, r->id);
	if (strcmp(r->kind, "netapp") == 0 && (rid == NULL ||
	    strcmp(rid, ROLE_CRYPTO_USER) != 0))
		return xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' was asked "
		    "for the role '%s', but NetApp Files needs Key Vault Crypto "
		    "User (%s): record netapp among the customer's kinds so the "
		    "role policy decides it (`xtcmkctl customer remove %s`, "
		    "`customer add %s ... --kind netapp`) and send a new kit",
		    r->id, onb_ph(onb_str(role, "role"), "?"), ROLE_CRYPTO_USER,
		    r->id, r->id);
	if (strncmp(r->kind, "storage", 7) == 0 && json_integer_value(
	    json_object_get(ver, "grace")) < STORAGE_CHECK_S)
		return xerr_set(e, XTCMK_E_POLICY, "Azure Storage checks the "
		    "vault for a new key version once a day, but the "
		    "versioning decision for customer '%s' keeps an old "
		    "version only %llds: make the policy return grace >= %d",
		    r->id, (long long)json_integer_value(json_object_get(ver,
		    "grace")), STORAGE_CHECK_S);
	if (strcmp(mech, "rbac") == 0 && strcmp(r->kind, "host") != 0 &&
	    rid != NULL && strcmp(rid, ROLE_CSE_USER) != 0 &&
	    strcmp(rid, ROLE_MHSM_CSE_USER) != 0 &&
	    strcmp(rid, ROLE_CRYPTO_USER) != 0)
		onb_note(r->doc, "The customer's grant is '%s'; the documents "
		    "use Key Vault Crypto Service Encryption User (Storage, "
		    "Cosmos DB) or Key Vault Crypto User (NetApp Files).",
		    onb_ph(onb_str(role, "role"), "?"));
	if (!onb_has(json_object_get(r->d, "kinds"), r->kind))
		onb_note(r->doc, "Customer %s is not recorded with kind %s, so "
		    "the role and versioning policies did not consider it; the "
		    "checks above did.", r->id, r->kind);
	return 0;
}

static void
res_cosmos(struct res *r)
{
	json_t *body, *arm, *tpl;
	char *di = onb_printf("UserAssignedIdentity=%s&FederatedClientId=%s",
	    r->uami, r->cid);

	arm = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:[{s:s, s:i, "
	    "s:b}], s:s, s:s, s:s}}",
	    "type", "Microsoft.DocumentDB/databaseAccounts",
	    "apiVersion", COSMOS_API,
	    "name", onb_ph(r->account, "<cosmos-account>"),
	    "kind", "GlobalDocumentDB",
	    "location", onb_ph(r->loc, "<location>"),
	    "identity", onb_uami_identity("UserAssigned", r->uami),
	    "properties", "locations", "locationName", onb_ph(r->loc,
	    "<location>"), "failoverPriority", 0, "isZoneRedundant", 0,
	    "databaseAccountOfferType", "Standard",
	    "keyVaultKeyUri", r->key_uri,
	    "defaultIdentity", di ? di : "");
	free(di);
	json_object_set_new(r->doc, "arm", arm);
	body = onb_section(r->doc, "Create the Cosmos DB account");
	onb_p(body, "Cross-tenant customer-managed keys are set when the "
	    "account is created, with an ARM template (apiVersion %s). "
	    "keyVaultKeyUri is versionless with no trailing slash; Cosmos DB "
	    "picks up new key versions itself. defaultIdentity names the "
	    "user-assigned identity (workload %s) and the application "
	    "(FederatedClientId).", COSMOS_API, r->wl);
	tpl = onb_arm_template(arm, NULL);
	json_object_set_new(r->doc, "template", tpl);
	onb_p(body, "Save the template as cosmos-cmk.json and deploy it:");
	onb_code_json(body, tpl);
	onb_code(body, "sh", "az deployment group create --resource-group %s "
	    "--template-file cosmos-cmk.json", onb_ph(r->rg, "<resource-group>"));
	onb_note(r->doc, "The Cosmos DB document (2022) says cross-tenant CMK "
	    "is not yet supported in PowerShell, the CLI or the portal: ARM "
	    "only. This may have changed.");
}

static void
res_netapp(struct res *r)
{
	json_t *body, *b;
	char *s, *uri;

	b = json_pack("{s:s, s:o, s:{s:{s:s, s:{s:s, s:s, s:s}, s:{s:s, "
	    "s:s}}}}",
	    "location", onb_ph(r->loc, "<location>"),
	    "identity", onb_uami_identity("userAssigned", r->uami),
	    "properties", "encryption", "keySource", "Microsoft.KeyVault",
	    "keyVaultProperties", "keyVaultUri", r->ku.base,
	    "keyVaultResourceId", onb_ph(r->vault_rid, "<vault-resource-id>"),
	    "keyName", r->ku.name,
	    "identity", "userAssignedIdentity", r->uami,
	    "federatedClientId", r->cid);
	json_object_set_new(r->doc, "body", b);
	uri = onb_printf("/subscriptions/%s/resourceGroups/%s/providers/"
	    "Microsoft.NetApp/netAppAccounts/%s?api-version=%s",
	    onb_ph(r->sub, "<subscription-id>"), onb_ph(r->rg, "<resource-group>"),
	    onb_ph(r->account, "<netapp-account>"), NETAPP_API);
	json_object_set_new(r->doc, "uri", json_string(uri ? uri : ""));

	body = onb_section(r->doc, "Before: private endpoint and grant, in "
	    "this order");
	onb_li(body, "1. The customer granted the application's service "
	    "principal the Azure RBAC role Key Vault Crypto User (%s) on the "
	    "vault or key (`xtcmkctl customer kit %s`).", ROLE_CRYPTO_USER,
	    r->id);
	onb_li(body, "2. The customer sends the vault's full resource id%s.",
	    r->vault_rid ? "" : " (pass it with --vault-resource-id)");
	onb_li(body, "3. You create a private endpoint to that resource id, "
	    "target subresource \"vault\", in the same virtual network as "
	    "the volumes but in a subnet of its own: not the subnet delegated "
	    "to Microsoft.NetApp/volumes, which takes only volumes.");
	onb_code(body, "sh", "az network private-endpoint create --name %s-pe "
	    "--resource-group %s \\\n    --vnet-name <vnet> --subnet "
	    "<endpoint-subnet> --private-connection-resource-id %s \\\n"
	    "    --group-id vault --connection-name %s-pe --manual-request "
	    "true", r->ku.vault, onb_ph(r->rg, "<resource-group>"),
	    onb_ph(r->vault_rid, "<vault-resource-id>"), r->ku.vault);
	onb_li(body, "4. The customer approves the pending connection (`az "
	    "network private-endpoint-connection approve`, see their kit); "
	    "until then the endpoint is Pending and the account cannot reach "
	    "the key. Check:");
	onb_code(body, "sh", "az network private-endpoint show --name %s-pe "
	    "--resource-group %s --query "
	    "\"manualPrivateLinkServiceConnections[0]."
	    "privateLinkServiceConnectionState.status\" -o tsv",
	    r->ku.vault, onb_ph(r->rg, "<resource-group>"));
	onb_li(body, "An account that uses a same-tenant customer-managed key "
	    "must first switch back to Microsoft-managed keys.");
	onb_li(body, "The key must be an RSA key; the vault needs soft delete "
	    "and purge protection.");

	body = onb_section(r->doc, "Configure the NetApp account");
	onb_p(body, "Only `az rest` configures a NetApp account with a key in "
	    "another tenant. Save the body as anf-cmk.json:");
	onb_code_json(body, b);
	onb_code(body, "sh", "az rest --method put --uri \"%s\" --body "
	    "@anf-cmk.json", uri ? uri : "");
	onb_p(body, "Check that encryption.identity.federatedClientId is "
	    "set:");
	onb_code(body, "sh", "az netappfiles account show --resource-group %s "
	    "--name %s --query encryption.identity.federatedClientId",
	    onb_ph(r->rg, "<resource-group>"), onb_ph(r->account, "<netapp-account>"));
	body = onb_section(r->doc, "Create volumes");
	onb_code(body, "sh", "az netappfiles volume create --resource-group %s "
	    "--account-name %s --pool-name <pool> --name <volume> \\\n"
	    "    --location %s --service-level premium --usage-threshold 100 "
	    "--file-path <path> \\\n    --vnet <vnet> --subnet <delegated-subnet> "
	    "--network-features Standard \\\n    --encryption-key-source "
	    "Microsoft.KeyVault --kv-private-endpoint-id \"$(az network "
	    "private-endpoint show --name %s-pe --resource-group %s --query id "
	    "-o tsv)\"", onb_ph(r->rg, "<resource-group>"),
	    onb_ph(r->account, "<netapp-account>"), onb_ph(r->loc, "<location>"),
	    r->ku.vault, onb_ph(r->rg, "<resource-group>"));
	onb_p(body, "--subnet here is the subnet delegated to "
	    "Microsoft.NetApp/volumes; the private endpoint is in another "
	    "subnet of the same virtual network.");
	free(uri);
	s = r->vault_rid ? NULL : onb_printf("<vault-resource-id> stands for "
	    "the customer's vault resource id; pass --vault-resource-id.");
	if (s != NULL)
		onb_note(r->doc, "%s", s);
	free(s);
	onb_note(r->doc, "api-version %s is from the current NetApp Files "
	    "document; the seed copy uses 2024-01-01-preview. Whether NetApp "
	    "Files follows new key versions on its own is UNVERIFIED: keep "
	    "old versions enabled. The `az network private-endpoint create` "
	    "line is from memory (UNVERIFIED); the seed shows the portal.",
	    NETAPP_API);
}

static void
res_host(struct res *r, json_t *status)
{
	json_t *body, *ver = json_object_get(r->d, "versioning");
	const char *tenant = onb_str(json_object_get(status, "azure"),
	    "tenant");

	/* A host with more than one user-assigned identity must say which
	 * one is the workload's: name it by client id and resource id. */
	json_object_set_new(r->doc, "agent_config", json_pack("{s:{s:s}, "
	    "s:{s:s, s:s, s:s, s:s*, s:s*}}", "agent", "workload", r->wl,
	    "azure", "tenant", onb_ph(tenant, "<provider-tenant>"),
	    "authority", onb_authority(status), "identity", "imds",
	    "identity_client_id", r->wl_client_id,
	    "identity_resource_id", r->wl_client_id ? NULL : r->uami));
	body = onb_section(r->doc, "The agent on each host");
	onb_p(body, "Every host that serves customer %s runs xtcmkd as a "
	    "workload identity federated with application %s (here %s, "
	    "identity %s, assigned to the VM, scale set or pod). In "
	    "xtcmk.conf (identity = imds on a VM, scale set or AKS node; "
	    "workload-identity or app-service elsewhere, see xtcmk.conf(5)):",
	    r->id, onb_str(r->d, "app"), r->wl, r->uami);
	if (r->wl_client_id != NULL)
		onb_code(body, "ini", "[agent]\nworkload = %s\n\n[azure]\n"
		    "tenant = %s\nauthority = %s\nidentity = imds\n"
		    "identity_client_id = %s", r->wl,
		    onb_ph(tenant, "<provider-tenant>"), onb_authority(status),
		    r->wl_client_id);
	else
		onb_code(body, "ini", "[agent]\nworkload = %s\n\n[azure]\n"
		    "tenant = %s\nauthority = %s\nidentity = imds\n"
		    "identity_resource_id = %s", r->wl,
		    onb_ph(tenant, "<provider-tenant>"), onb_authority(status),
		    r->uami);
	onb_p(body, "The identity selector makes the agent ask for the "
	    "workload's own identity: a host with two user-assigned "
	    "identities would otherwise get the wrong one, or none.");
	onb_p(body, "The agent exchanges the identity's token (audience "
	    "%s) for a token of application %s in "
	    "tenant %s and wraps and unwraps data keys with %s. Versioning: "
	    "%s; it looks for new versions every %llds, checks for "
	    "revocation every %llds and caches data keys %llds.",
	    onb_audience(status), r->cid, onb_str(r->d, "tenant"), r->key_uri, r->mode,
	    (long long)json_integer_value(json_object_get(ver, "refresh")),
	    (long long)json_integer_value(json_object_get(ver,
	    "revocation_check")),
	    (long long)json_integer_value(json_object_get(ver, "cache_ttl")));
	body = onb_section(r->doc, "The host service");
	onb_p(body, "The service links libxtcmk (pkg-config xtcmk) or "
	    "dlopen()s it, and never sees a token:");
	onb_code(body, "c", "struct xtcmk *h;\nuint8_t dek[XTCMK_DEK_LEN], "
	    "blob[1024];\nsize_t blob_len = sizeof(blob);\n\n"
	    "if (xtcmk_open(NULL, 5000, &h) != XTCMK_OK ||\n"
	    "    xtcmk_dek_new(h, \"%s\", dek, blob, &blob_len) != XTCMK_OK)\n"
	    "        /* fail closed: xtcmk_last_error() says why */;\n"
	    "/* encrypt with dek, store blob next to the data, wipe dek */", r->id);
	onb_p(body, "Check from the host: `xtcmkctl decide %s` must say "
	    "\"served\", and `xtcmkctl key status %s` \"active\".", r->id,
	    r->id);
}

int
onb_resource_config(json_t *status, json_t *show, json_t *workloads,
    const char *kind, json_t *opts, json_t **ret_doc, struct xerr *e)
{
	struct res r;
	json_t *w = NULL, *ver;
	char *title;
	int rc;

	memset(&r, 0, sizeof(r));
	r.id = onb_str(json_object_get(show, "customer"), "id");
	r.kind = kind;
	r.account = onb_str(opts, "account");
	r.rg = onb_str(opts, "resource_group");
	r.sub = onb_str(opts, "subscription");
	r.loc = onb_str(opts, "location");
	r.vault_rid = onb_str(opts, "vault_resource_id");
	if ((rc = onb_safe_arg(r.account, "--account", e)) < 0 ||
	    (rc = onb_safe_arg(r.rg, "--resource-group", e)) < 0 ||
	    (rc = onb_safe_arg(r.sub, "--subscription", e)) < 0 ||
	    (rc = onb_safe_arg(r.loc, "--location", e)) < 0)
		return rc;
	if ((rc = onb_decision(show, r.id, &r.d, e)) < 0 ||
	    (rc = onb_client_id(r.d, &r.cid, e)) < 0 ||
	    (rc = key_uri_parse(onb_str(r.d, "key_uri"), &r.ku, e)) < 0)
		return rc;
	if (r.vault_rid != NULL &&
	    (rc = onb_vault_rid(r.vault_rid, &r.ku, e)) < 0)
		return rc;
	if ((rc = pick_identity(r.d, workloads, onb_str(opts, "identity"),
	    &w, e)) < 0)
		return rc;
	r.wl = onb_str(w, "name");
	r.wl_client_id = onb_str(w, "client_id");
	r.uami = onb_str(w, "resource_id");
	ver = json_object_get(r.d, "versioning");
	r.mode = onb_ph(onb_str(ver, "mode"), "auto");
	r.version = onb_str(ver, "version");
	snprintf(r.key_uri, sizeof(r.key_uri), "%s/keys/%s%s%s", r.ku.base,
	    r.ku.name, strcmp(r.mode, "pinned") == 0 ? "/" : "",
	    strcmp(r.mode, "pinned") == 0 ? onb_ph(r.version, "") : "");
	title = onb_printf("Customer %s: %s configuration", r.id, kind);
	r.doc = onb_doc_new("resource-config", title ? title : kind);
	free(title);
	if ((rc = check_kind(&r, e)) < 0) {
		json_decref(r.doc);
		return rc;
	}
	json_object_set_new(r.doc, "customer", json_string(r.id));
	json_object_set_new(r.doc, "kind", json_string(kind));
	json_object_set_new(r.doc, "app", json_string(onb_str(r.d, "app")));
	json_object_set_new(r.doc, "app_client_id", json_string(r.cid));
	json_object_set_new(r.doc, "identity", json_pack("{s:s, s:s}",
	    "workload", r.wl, "resource_id", r.uami));
	json_object_set_new(r.doc, "key", json_pack("{s:s, s:s, s:s, s:s, "
	    "s:s?}", "uri", r.key_uri, "vault_uri", r.ku.base, "name",
	    r.ku.name, "mode", r.mode, "version", r.version));
	if (strcmp(kind, "storage") == 0)
		onb_res_storage(&r, 0);
	else if (strcmp(kind, "storage-existing") == 0)
		onb_res_storage(&r, 1);
	else if (strcmp(kind, "cosmosdb") == 0)
		res_cosmos(&r);
	else if (strcmp(kind, "netapp") == 0)
		res_netapp(&r);
	else
		res_host(&r, status);
	if (r.account == NULL && strcmp(kind, "host") != 0)
		onb_note(r.doc, "Words in <angle brackets> are placeholders; "
		    "--account, --resource-group, --subscription and "
		    "--location fill them in.");
	*ret_doc = r.doc;
	return 0;
}

/* --- rotation and revocation ---------------------------------------- */

static void
rot_kind(json_t *doc, json_t *body, const char *kind, json_t *ver,
    long long *max)
{
	long long grace = json_integer_value(json_object_get(ver, "grace"));
	long long check = json_integer_value(json_object_get(ver,
	    "revocation_check"));
	long long refresh = json_integer_value(json_object_get(ver,
	    "refresh"));
	int pinned = strcmp(onb_str(ver, "mode"), "pinned") == 0;
	long long after = -1;
	const char *when, *revoke;
	char buf[512];

	if (strncmp(kind, "storage", 7) == 0) {
		after = pinned ? -1 : (grace > STORAGE_CHECK_S ? grace :
		    STORAGE_CHECK_S);
		when = pinned ? "the version is pinned: Storage keeps using it "
		    "until you update keyversion (`xtcmkctl resource config "
		    "CUSTOMER --kind storage-existing`); disable the old "
		    "version only after that update" : "Storage checks the "
		    "vault for a new version once a day: keep the old version "
		    "enabled 24 hours (or the policy's grace, if longer)";
		revoke = "clients can no longer read or write blobs or their "
		    "metadata; the data stays encrypted; re-enabling the key "
		    "restores access without downtime";
	} else if (strcmp(kind, "cosmosdb") == 0) {
		after = grace > STORAGE_CHECK_S ? grace : STORAGE_CHECK_S;
		when = "Cosmos DB picks up new versions automatically; its "
		    "documentation says the old version can be disabled after "
		    "24 hours: keep it enabled 24 hours (or the policy's grace, "
		    "if longer)";
		revoke = "the account loses access to the key and goes into "
		    "a revoked state until the key is enabled again (details "
		    "in the Cosmos DB CMK documentation; UNVERIFIED here)";
	} else if (strcmp(kind, "netapp") == 0) {
		when = "NetApp Files names the key without a version; whether "
		    "it follows new versions on its own is UNVERIFIED: do not "
		    "disable an old version before you have checked that the "
		    "account uses the new one";
		revoke = "volumes can no longer be accessed (errors such as "
		    "'Azure Key Vault key is not enabled'); details UNVERIFIED";
	} else {
		after = pinned ? -1 : (grace > refresh ? grace : refresh);
		when = pinned ? "the agent uses the pinned version; update the "
		    "customer's key URI before disabling it" : "the agent "
		    "picks up a new version within the refresh interval and "
		    "keeps unwrapping data wrapped with older versions: keep "
		    "the old version enabled for the policy's grace, and until "
		    "`xtcmkctl key status CUSTOMER` shows no data wrapped with "
		    "it (`rewrap` moves data to the current version)";
		snprintf(buf, sizeof(buf), "the agent fails closed within %lld "
		    "seconds (the revocation check interval) and purges cached "
		    "data keys; re-enabling restores service within the same "
		    "interval, without restarts", check);
		revoke = buf;
	}
	if (after < 0)
		*max = -1;
	else if (*max >= 0 && after > *max)
		*max = after;
	json_array_append_new(json_object_get(doc, "kinds"), json_pack(
	    "{s:s, s:o, s:s, s:s}", "kind", kind, "disable_old_after",
	    after < 0 ? json_null() : json_integer(after), "when", when,
	    "revoke", revoke));
	if (after >= 0)
		onb_li(body, "%s: not before %lld hours after the rotation; %s.",
		    kind, (after + 3599) / 3600, when);
	else
		onb_li(body, "%s: %s.", kind, when);
}

int
onb_plan_rotation(json_t *show, json_t **ret_doc, struct xerr *e)
{
	const char *id = onb_str(json_object_get(show, "customer"), "id");
	json_t *d, *ver, *doc, *body, *k, *v;
	long long max = 0;
	char *title;
	size_t i;
	int rc;

	if ((rc = onb_decision(show, id, &d, e)) < 0)
		return rc;
	ver = json_object_get(d, "versioning");
	title = onb_printf("Customer %s: rotation and revocation", id);
	doc = onb_doc_new("rotation-plan", title ? title : id);
	free(title);
	json_object_set_new(doc, "customer", json_string(id));
	json_object_set_new(doc, "key_uri", json_string(onb_str(d,
	    "key_uri")));
	json_object_set_new(doc, "versioning", json_deep_copy(ver));
	json_object_set_new(doc, "kinds", json_array());
	body = onb_section(doc, "Key versioning");
	onb_p(body, "Key %s, mode %s%s%s (%s). The agent looks for new "
	    "versions every %llds and checks for revocation every %llds; "
	    "the policy keeps an old version %llds after a rotation.",
	    onb_str(d, "key_uri"), onb_str(ver, "mode"),
	    onb_str(ver, "version") ? " at version " : "",
	    onb_str(ver, "version") ? onb_str(ver, "version") : "",
	    onb_str(ver, "reason") ? onb_str(ver, "reason") : "policy",
	    (long long)json_integer_value(json_object_get(ver, "refresh")),
	    (long long)json_integer_value(json_object_get(ver,
	    "revocation_check")),
	    (long long)json_integer_value(json_object_get(ver, "grace")));
	body = onb_section(doc, "After a rotation: when the old version may "
	    "be disabled");
	json_array_foreach(json_object_get(d, "kinds"), i, v)
		rot_kind(doc, body, json_string_value(v), ver, &max);
	json_object_set_new(doc, "disable_old_after", max < 0 ? json_null() :
	    json_integer(max));
	if (max >= 0)
		onb_p(body, "For this customer: disable the old version no "
		    "sooner than %lld seconds (%lld hours) after the rotation.",
		    max, (max + 3599) / 3600);
	else
		onb_p(body, "For this customer there is no fixed delay: one of "
		    "its resources needs a manual check first (above).");
	body = onb_section(doc, "Revoking: what disabling the key does");
	json_array_foreach(json_object_get(doc, "kinds"), i, k)
		onb_li(body, "%s: %s.", onb_str(k, "kind"), onb_str(k,
		    "revoke"));
	*ret_doc = doc;
	return 0;
}
