/*
 * onboard_steps.c - the steps around the cross-tenant setup that the
 * Azure documents leave to other pages, so that a provider or a customer
 * can follow the generated documents without them: create the
 * multitenant application and the workload identities (phase 1), a
 * federated credential with PowerShell, a vault and key of the customer's
 * own (phase 2), and the NetApp Files private endpoint's order (phase 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onboard.h"
#include "onboard_int.h"

/* Phase 1: the application, when the registry has no client id yet. */
void
onb_step_app_create(json_t *body, const char *name)
{
	onb_p(body, "Application %s has no client id in the registry: create "
	    "it once in your tenant as a multitenant application (sign-in "
	    "audience AzureADMultipleOrgs) and record its application "
	    "(client) id:", name);
	onb_code(body, "sh", "app_id=$(az ad app create --display-name %s "
	    "--sign-in-audience AzureADMultipleOrgs --query appId -o tsv)\n"
	    "xtcmkctl app set %s --client-id \"$app_id\"", name, name);
	onb_code(body, "http", "POST https://graph.microsoft.com/v1.0/"
	    "applications\nContent-Type: application/json\n\n"
	    "{\"displayName\": \"%s\", \"signInAudience\": "
	    "\"AzureADMultipleOrgs\"}", name);
	onb_code(body, "powershell", "$app = New-AzADApplication -DisplayName "
	    "%s -SignInAudience AzureADMultipleOrgs\nxtcmkctl app set %s "
	    "--client-id $app.AppId", name, name);
}

/* Phase 1: the user-assigned identities a workload runs as. */
void
onb_step_identities(json_t *body, const char *tenant)
{
	onb_p(body, "Each workload identity is a user-assigned managed "
	    "identity in tenant %s (a system-assigned one cannot be a "
	    "federated credential), assigned to the workload's VMs, scale "
	    "sets or pods. Create one per workload and record its client id, "
	    "principal id and resource id:", tenant);
	onb_code(body, "sh", "az identity create --name <workload> "
	    "--resource-group <resource-group> --location <location>\n"
	    "xtcmkctl workload add <workload> --client-id \"$(az identity show "
	    "--name <workload> --resource-group <resource-group> --query "
	    "clientId -o tsv)\" \\\n    --principal-id \"$(az identity show "
	    "--name <workload> --resource-group <resource-group> --query "
	    "principalId -o tsv)\" \\\n    --resource-id \"$(az identity show "
	    "--name <workload> --resource-group <resource-group> --query id "
	    "-o tsv)\"");
	onb_code(body, "powershell", "$id = New-AzUserAssignedIdentity -Name "
	    "<workload> -ResourceGroupName <resource-group> -Location "
	    "<location>\nxtcmkctl workload add <workload> --client-id "
	    "$id.ClientId --principal-id $id.PrincipalId --resource-id $id.Id");
}

/* Phase 1: one federated credential with PowerShell. */
char *
onb_step_fic_ps(const char *prev, json_t *fic)
{
	return onb_printf("%s\nNew-AzADAppFederatedCredential "
	    "-ApplicationObjectId $app.Id -Name %s `\n    -Issuer %s "
	    "-Subject %s -Audience %s", prev, onb_str(fic, "name"),
	    onb_str(fic, "issuer"), onb_str(fic, "subject"),
	    json_string_value(json_array_get(json_object_get(fic,
	    "audiences"), 0)));
}

/*
 * Phase 2: a vault and key of the customer's own, when there is none yet:
 * purge protection (and soft delete) on, the permission model the
 * customer declared, the customer's own right to make keys, an RSA key.
 */
void
onb_step_vault_create(json_t *body, const struct key_uri *ku, int rbac,
    int cosmos)
{
	if (ku->service == KEY_SERVICE_MHSM)
		return;
	onb_p(body, "No vault or key yet? Create them (the vault name and key "
	    "name are the ones your provider recorded):");
	if (rbac)
		onb_code(body, "sh", "az keyvault create --name %s "
		    "--resource-group <resource-group> --location <location> "
		    "\\\n    --enable-purge-protection true "
		    "--enable-rbac-authorization true\n"
		    "# you need Key Vault Crypto Officer to create keys:\n"
		    "az role assignment create --role \"Key Vault Crypto "
		    "Officer\" \\\n    --assignee-object-id \"$(az ad "
		    "signed-in-user show --query id -o tsv)\" "
		    "--assignee-principal-type User \\\n    --scope \"$(az "
		    "keyvault show --name %s --query id -o tsv)\"\n"
		    "az keyvault key create --vault-name %s --name %s --kty RSA "
		    "--size 2048", ku->vault, ku->vault, ku->vault, ku->name);
	else
		onb_code(body, "sh", "az keyvault create --name %s "
		    "--resource-group <resource-group> --location <location> "
		    "\\\n    --enable-purge-protection true "
		    "--enable-rbac-authorization false\n"
		    "# the creator gets an access policy with key permissions\n"
		    "az keyvault key create --vault-name %s --name %s --kty RSA "
		    "--size 2048", ku->vault, ku->vault, ku->name);
	if (!cosmos)
		return;
	onb_p(body, "Azure Cosmos DB reaches the vault through its public "
	    "endpoint or as a trusted Microsoft service: allow public access, "
	    "or keep the firewall and let trusted services through:");
	onb_code(body, "sh", "az keyvault update --name %s --bypass "
	    "AzureServices", ku->vault);
}

/* Phase 2, NetApp Files: approve the provider's private endpoint. */
void
onb_step_netapp_approve(json_t *body, const struct key_uri *ku,
    const char *vault_rid)
{
	onb_p(body, "For Azure NetApp Files, the order is: you send the "
	    "vault's resource id (step 4), your provider creates a private "
	    "endpoint to the vault, then you approve it. Once your provider "
	    "says it exists, approve the pending connection:");
	onb_code(body, "sh", "vault_id=%s%s%s\nconn_id=$(az network "
	    "private-endpoint-connection list --id \"$vault_id\" \\\n    "
	    "--query \"[?properties.privateLinkServiceConnectionState.status"
	    "=='Pending'].id\" -o tsv)\naz network "
	    "private-endpoint-connection approve --id \"$conn_id\" "
	    "--description \"NetApp Files customer-managed keys\"",
	    vault_rid ? vault_rid : "$(az keyvault show --name ",
	    vault_rid ? "" : ku->vault, vault_rid ? "" : " --query id -o tsv)");
	onb_p(body, "(Portal: key vault, Networking, Private endpoint "
	    "connections, select the pending connection, Approve.)");
}
