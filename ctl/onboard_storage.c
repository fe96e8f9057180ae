/*
 * onboard_storage.c - phase 3 for Azure Storage: a new account (an ARM
 * template, `az storage account create`, `New-AzStorageAccount`) or an
 * existing one (`az storage account update`, `Set-AzStorageAccount`, or
 * the template deployed with the account's own sku, kind and location),
 * then the key's life: change it, revoke it, go back to Microsoft-managed
 * keys.  An existing account keeps its system-assigned identity: the
 * identity type is SystemAssigned,UserAssigned (FACTS 8).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onboard.h"
#include "onboard_int.h"

/* The storage account resource of the template. */
static json_t *
storage_resource(struct res *r, int existing)
{
	json_t *kvp, *enc, *arm;

	kvp = json_pack("{s:s, s:s}", "keyvaulturi", r->ku.base, "keyname",
	    r->ku.name);
	if (strcmp(r->mode, "pinned") == 0)
		json_object_set_new(kvp, "keyversion",
		    json_string(r->version));
	enc = json_pack("{s:{s:s, s:s}, s:o, s:s, s:{s:{s:s, s:b}, "
	    "s:{s:s, s:b}}}",
	    "identity", "userAssignedIdentity", r->uami,
	    "federatedIdentityClientId", r->cid,
	    "keyvaultproperties", kvp,
	    "keySource", "Microsoft.Keyvault",
	    "services", "blob", "keyType", "Account", "enabled", 1,
	    "file", "keyType", "Account", "enabled", 1);
	/* A PUT needs sku, kind and location (FACTS 8); an existing
	 * account's own come in as template parameters. */
	arm = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:o, s:{s:o}}",
	    "type", "Microsoft.Storage/storageAccounts",
	    "apiVersion", STORAGE_API,
	    "name", onb_ph(r->account, "<storage-account>"),
	    "location", existing ? "[parameters('location')]" :
	    onb_ph(r->loc, "<location>"),
	    "kind", existing ? "[parameters('kind')]" : "StorageV2",
	    "sku", "name", existing ? "[parameters('skuName')]" :
	    "Standard_LRS",
	    "identity", onb_uami_identity(existing ?
	    "SystemAssigned,UserAssigned" : "UserAssigned", r->uami),
	    "properties", "encryption", enc);
	return arm;
}

/* `--encryption-key-version V` / `-KeyVersion V` when pinned. */
static void
version_args(struct res *r, char *cli, size_t clen, char *ps, size_t plen)
{
	cli[0] = ps[0] = '\0';
	if (strcmp(r->mode, "pinned") != 0)
		return;
	snprintf(cli, clen, " \\\n    --encryption-key-version %s",
	    r->version);
	snprintf(ps, plen, " `\n    -KeyVersion %s", r->version);
}

static void
storage_template(struct res *r, json_t *body, json_t *arm, int existing)
{
	json_t *params = NULL, *tpl;
	const char *acct = onb_ph(r->account, "<storage-account>");
	const char *rg = onb_ph(r->rg, "<resource-group>");

	if (existing)
		params = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}}",
		    "location", "type", "string", "kind", "type", "string",
		    "skuName", "type", "string");
	tpl = onb_arm_template(arm, params);
	json_object_set_new(r->doc, "template", tpl);
	onb_p(body, "ARM template (resource api-version %s or later); save "
	    "it as storage-cmk.json:", STORAGE_API);
	onb_code_json(body, tpl);
	if (!existing) {
		onb_p(body, "Deploy it:");
		onb_code(body, "sh", "az deployment group create "
		    "--resource-group %s --template-file storage-cmk.json", rg);
		return;
	}
	onb_p(body, "A PUT of an existing account needs its location, kind "
	    "and sku; deploy the template with the account's own:");
	onb_code(body, "sh", "location=$(az storage account show --name %s "
	    "--resource-group %s --query location -o tsv)\nkind=$(az storage "
	    "account show --name %s --resource-group %s --query kind -o tsv)\n"
	    "sku=$(az storage account show --name %s --resource-group %s "
	    "--query sku.name -o tsv)\naz deployment group create "
	    "--resource-group %s --template-file storage-cmk.json \\\n"
	    "    --parameters location=\"$location\" kind=\"$kind\" "
	    "skuName=\"$sku\"", acct, rg, acct, rg, acct, rg, rg);
}

static void
storage_new(struct res *r, json_t *body)
{
	char ver[80], psver[80];

	version_args(r, ver, sizeof(ver), psver, sizeof(psver));
	onb_p(body, "Or with the Azure CLI (2.42.0 or later):");
	onb_code(body, "sh", "az storage account create --name %s "
	    "--resource-group %s --location %s \\\n    --sku Standard_LRS "
	    "--kind StorageV2 \\\n    --identity-type UserAssigned "
	    "--user-identity-id %s \\\n    --encryption-key-source "
	    "Microsoft.Keyvault \\\n    --encryption-key-vault %s "
	    "--encryption-key-name %s%s \\\n    --key-vault-user-identity-id "
	    "%s \\\n    --key-vault-federated-client-id %s",
	    onb_ph(r->account, "<storage-account>"),
	    onb_ph(r->rg, "<resource-group>"), onb_ph(r->loc, "<location>"),
	    r->uami, r->ku.base, r->ku.name, ver, r->uami, r->cid);
	onb_p(body, "Or with PowerShell (Az.Storage 5.1.0 or later):");
	onb_code(body, "powershell", "New-AzStorageAccount -ResourceGroupName "
	    "%s -Name %s -Location %s `\n    -SkuName Standard_LRS -Kind "
	    "StorageV2 `\n    -IdentityType UserAssigned "
	    "-UserAssignedIdentityId %s `\n    -KeyVaultUri %s -KeyName %s%s `\n"
	    "    -KeyVaultUserAssignedIdentityId %s `\n"
	    "    -KeyVaultFederatedClientId %s",
	    onb_ph(r->rg, "<resource-group>"),
	    onb_ph(r->account, "<storage-account>"),
	    onb_ph(r->loc, "<location>"), r->uami, r->ku.base, r->ku.name,
	    psver, r->uami, r->cid);
}

static void
storage_existing(struct res *r, json_t *body)
{
	char ver[80], psver[80];

	version_args(r, ver, sizeof(ver), psver, sizeof(psver));
	onb_p(body, "Or, changing only these settings, with the Azure CLI "
	    "(2.42.0 or later):");
	onb_code(body, "sh", "az storage account update --name %s "
	    "--resource-group %s \\\n    --identity-type "
	    "SystemAssigned,UserAssigned --user-identity-id %s \\\n"
	    "    --encryption-key-source Microsoft.Keyvault \\\n"
	    "    --encryption-key-vault %s --encryption-key-name %s%s \\\n"
	    "    --key-vault-user-identity-id %s \\\n"
	    "    --key-vault-federated-client-id %s",
	    onb_ph(r->account, "<storage-account>"),
	    onb_ph(r->rg, "<resource-group>"), r->uami, r->ku.base,
	    r->ku.name, ver, r->uami, r->cid);
	onb_p(body, "Or with PowerShell (Az.Storage 5.1.0 or later):");
	onb_code(body, "powershell", "Set-AzStorageAccount -ResourceGroupName "
	    "%s -AccountName %s `\n    -IdentityType "
	    "SystemAssignedUserAssigned -UserAssignedIdentityId %s `\n"
	    "    -KeyvaultEncryption -KeyVaultUri %s -KeyName %s%s `\n"
	    "    -KeyVaultUserAssignedIdentityId %s `\n"
	    "    -KeyVaultFederatedClientId %s",
	    onb_ph(r->rg, "<resource-group>"),
	    onb_ph(r->account, "<storage-account>"), r->uami, r->ku.base,
	    r->ku.name, psver, r->uami, r->cid);
	onb_p(body, "The identity type keeps a system-assigned identity the "
	    "account may already have; UserAssigned alone would remove it.");
}

/*
 * Disable (and re-enable) the key version Storage uses: the pinned one
 * by its version, since `set-attributes` without --version changes the
 * latest version (FACTS 8).
 */
static void
storage_revoke(struct res *r, json_t *body)
{
	int pinned = strcmp(r->mode, "pinned") == 0;
	int hsm = r->ku.service == KEY_SERVICE_MHSM;
	const char *where = hsm ? "--hsm-name" : "--vault-name";
	const char *pswhere = hsm ? "-HsmName" : "-VaultName";
	char v[64] = "", psv[64] = "";

	if (pinned) {
		snprintf(v, sizeof(v), " --version %s", r->version);
		snprintf(psv, sizeof(psv), " -Version %s", r->version);
	}
	onb_p(body, "The customer disables %s in the %s. Clients can then no "
	    "longer read or write blobs or their metadata; the data stays "
	    "encrypted and becomes accessible again when the key is "
	    "re-enabled. No downtime or performance cost.", pinned ?
	    "the pinned key version" : "the key's latest version (the one "
	    "Storage uses once it has picked it up; it checks once a day)",
	    hsm ? "Managed HSM" : "vault");
	onb_code(body, "sh", "az keyvault key set-attributes %s %s --name "
	    "%s%s --enabled false\n# restore:\naz keyvault key set-attributes "
	    "%s %s --name %s%s --enabled true", where, r->ku.vault,
	    r->ku.name, v, where, r->ku.vault, r->ku.name, v);
	onb_code(body, "powershell", "Update-AzKeyVaultKey %s %s -Name %s%s "
	    "-Enable $false\n# restore:\nUpdate-AzKeyVaultKey %s %s -Name %s%s "
	    "-Enable $true", pswhere, r->ku.vault, r->ku.name, psv, pswhere,
	    r->ku.vault, r->ku.name, psv);
}

void
onb_res_storage(struct res *r, int existing)
{
	const char *acct = onb_ph(r->account, "<storage-account>");
	const char *rg = onb_ph(r->rg, "<resource-group>");
	json_t *body, *arm;

	arm = storage_resource(r, existing);
	json_object_set_new(r->doc, "arm", arm);
	body = onb_section(r->doc, existing ? "Configure the existing storage "
	    "account" : "Create the storage account");
	onb_p(body, "The account gets the user-assigned identity %s (workload "
	    "%s) and encrypts with key %s in the customer's vault %s, acting "
	    "as application %s (federatedIdentityClientId). %s", r->uami,
	    r->wl, r->ku.name, r->ku.base, r->cid,
	    strcmp(r->mode, "pinned") == 0 ? "The key version is pinned "
	    "(keyversion): Storage uses it until you change it (manual "
	    "updates)." : "No key version is given: Storage updates to new "
	    "versions automatically (it checks once a day).");
	storage_template(r, body, arm, existing);
	if (existing)
		storage_existing(r, body);
	else
		storage_new(r, body);

	body = onb_section(r->doc, "Change the key");
	onb_p(body, "You can change the key at any time without downtime; "
	    "the data stays encrypted. Run `az storage account update` (or "
	    "Set-AzStorageAccount) as above with the new key name (and "
	    "version, if pinned), after the customer granted the application "
	    "access to the new key. To go from a pinned version to automatic "
	    "updates, give an empty version (--encryption-key-version \"\").");
	body = onb_section(r->doc, "Revoke access");
	storage_revoke(r, body);
	body = onb_section(r->doc, "Switch back to Microsoft-managed keys");
	onb_code(body, "sh", "az storage account update --name %s "
	    "--resource-group %s --encryption-key-source Microsoft.Storage",
	    acct, rg);
	onb_code(body, "powershell", "Set-AzStorageAccount -ResourceGroupName "
	    "%s -AccountName %s -StorageEncryption", rg, acct);
	onb_note(r->doc, "The seed documents show the change-key, revoke and "
	    "switch-back steps in the portal; the PowerShell lines for them "
	    "and the -IdentityType/-UserAssignedIdentityId/"
	    "-KeyVaultUserAssignedIdentityId parameters are from memory "
	    "(UNVERIFIED). The first Storage api-version with "
	    "federatedIdentityClientId is UNVERIFIED; %s has it.",
	    STORAGE_API);
	if (existing)
		onb_note(r->doc, "Whether a template PUT of an existing account "
		    "keeps settings the template does not name (network rules, "
		    "TLS version) is UNVERIFIED here; `az storage account "
		    "update` changes only the settings it names.");
}
