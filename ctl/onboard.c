/*
 * onboard.c - the three phases of cross-tenant CMK as documents:
 * `app plan` (provider, per application: the FICs), `customer kit`
 * (customer: consent, vault prerequisites, the grant, what to send back),
 * `key plan-rotation` (when an old version may go, what revoking does),
 * and the command-line side of all four (resource config is generated in
 * onboard_res.c).  Field names, role ids, URLs and commands follow the
 * seed documents and shared/azure/FACTS.md; where a fact is marked
 * UNVERIFIED there, the document says so in a note.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "onboard.h"
#include "onboard_int.h"
#include "validate.h"

#define AUDIENCE	"api://AzureADTokenExchange"	/* public cloud */
#define GRAPH_FIC_URL	"https://graph.microsoft.com/v1.0/applications/" \
			    "{application-object-id}/federatedIdentityCredentials"
#define FILE_MAX	(4 * 1024 * 1024)	/* --current FILE */

/* --- shared helpers ------------------------------------------------- */

const char *
onb_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const char *
onb_authority(json_t *status)
{
	const char *a = onb_str(json_object_get(status, "azure"),
	    "authority");

	return a != NULL ? a : "https://login.microsoftonline.com";
}

/*
 * The audience the agent requests for its identity token ([azure]
 * token_audience, which follows the authority's cloud): every federated
 * credential must name it, or the exchange fails (AADSTS70021).
 */
const char *
onb_audience(json_t *status)
{
	const char *a = onb_str(json_object_get(status, "azure"),
	    "token_audience");

	return a != NULL ? a : AUDIENCE;
}

int
onb_decision(json_t *show, const char *id, json_t **ret_d, struct xerr *e)
{
	json_t *d = json_object_get(show, "decision");

	*ret_d = NULL;
	if (!json_is_object(d))
		return xerr_set(e, XTCMK_E_POLICY, "the policies refuse "
		    "customer '%s' now (%s); fix the policy or the customer "
		    "record and check with `xtcmkctl customer show %s`", id,
		    onb_str(show, "decision_error") ? onb_str(show,
		    "decision_error") : "no decision", id);
	*ret_d = d;
	return 0;
}

int
onb_client_id(json_t *d, const char **ret_id, struct xerr *e)
{
	const char *id = onb_str(d, "app_client_id");

	*ret_id = NULL;
	if (id == NULL)
		return xerr_set(e, XTCMK_E_CONFLICT, "application '%s' has no "
		    "client id yet: register the application in Microsoft "
		    "Entra ID (multitenant: accounts in any organizational "
		    "directory) and run `xtcmkctl app set %s --client-id "
		    "GUID`", onb_str(d, "app"), onb_str(d, "app"));
	*ret_id = id;
	return 0;
}

int
onb_has(json_t *list, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return 1;
	return 0;
}

/* /subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/
 * vaults/NAME (case-insensitive), naming the key URI's vault. */
int
onb_vault_rid(const char *rid, const struct key_uri *ku, struct xerr *e)
{
	static const char *fixed[] = { "subscriptions", NULL,
	    "resourceGroups", NULL, "providers", "Microsoft.KeyVault",
	    "vaults", NULL };
	const char *p, *q;
	size_t i, n;

	if (rid == NULL || strlen(rid) > RESOURCE_ID_MAX || rid[0] != '/')
		goto bad;
	for (i = 0, p = rid + 1; i < 8; i++, p = q + 1) {
		if ((q = strchr(p, '/')) == NULL)
			q = p + strlen(p);
		n = (size_t)(q - p);
		if (n == 0 || (i < 7) != (*q == '/'))
			goto bad;
		if (strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
		    "vwxyz0123456789._()-") < n)
			goto bad;
		if (fixed[i] != NULL && (strlen(fixed[i]) != n ||
		    strncasecmp(p, fixed[i], n) != 0))
			goto bad;
		if (i == 7 && (strlen(ku->vault) != n ||
		    strncasecmp(p, ku->vault, n) != 0))
			return xerr_set(e, XTCMK_E_INVAL, "--vault-resource-id "
			    "names vault '%.*s' but the customer's key is in "
			    "vault '%s'; give the resource id of '%s' (`az "
			    "keyvault show --name %s --query id -o tsv`)",
			    (int)n, p, ku->vault, ku->vault, ku->vault);
		if (*q == '\0')
			break;
	}
	if (i != 7)
		goto bad;
	return 0;
bad:
	return xerr_set(e, XTCMK_E_INVAL, "--vault-resource-id must look like "
	    "/subscriptions/GUID/resourceGroups/RG/providers/"
	    "Microsoft.KeyVault/vaults/%s (the customer gets it with `az "
	    "keyvault show --name %s --query id -o tsv`)", ku->vault,
	    ku->vault);
}

/* A name the user gives for a generated command: no shell specials. */
int
onb_safe_arg(const char *v, const char *what, struct xerr *e)
{
	if (v == NULL)
		return 0;
	if (*v == '\0' || strlen(v) > ONB_ARG_MAX ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._()- ") != strlen(v))
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s' has characters "
		    "other than letters, digits, spaces and ._()- or is longer "
		    "than %d; give the Azure name as is", what, v,
		    ONB_ARG_MAX);
	return 0;
}

/* --- phase 1: app plan ---------------------------------------------- */

static int
fic_name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len < ONB_FIC_NAME_MIN || len > ONB_FIC_NAME_MAX)
		return 0;
	if (!((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z') ||
	    (n[0] >= '0' && n[0] <= '9')))
		return 0;
	return strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == len;
}

static json_t *
find_named(json_t *list, const char *key, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (onb_str(v, key) != NULL && strcmp(onb_str(v, key),
		    name) == 0)
			return v;
	return NULL;
}

/* The registry's name for a new FIC: xtcmk-WORKLOAD, dots as dashes. */
static char *
new_fic_name(json_t *taken, const char *wl)
{
	char *n = NULL;
	size_t i;
	int k;

	for (k = 1; k <= ONB_FIC_MAX + 1; k++) {
		free(n);
		n = k == 1 ? onb_printf("xtcmk-%s", wl) :
		    onb_printf("xtcmk-%s-%d", wl, k);
		if (n == NULL)
			return NULL;
		for (i = 0; n[i] != '\0'; i++)
			if (n[i] == '.')
				n[i] = '-';
		if (find_named(taken, "name", n) == NULL)
			break;
	}
	return n;
}

static json_t *
fic_body(const char *name, const char *issuer, const char *aud,
    const char *subject, const char *wl, const char *app)
{
	char *desc = onb_printf("xtcmk: workload identity %s acts as "
	    "application %s (cross-tenant customer-managed keys)", wl, app);
	json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "name", name,
	    "issuer", issuer, "subject", subject, "description",
	    desc ? desc : "", "audiences", aud);

	free(desc);
	return b;
}

static int
same_fic(json_t *cur, const char *issuer, const char *subject)
{
	return onb_str(cur, "issuer") != NULL &&
	    onb_str(cur, "subject") != NULL &&
	    strcmp(onb_str(cur, "issuer"), issuer) == 0 &&
	    strcmp(onb_str(cur, "subject"), subject) == 0;
}

static int
plan_refuse(struct xerr *e, const char *app, size_t keep, size_t add,
    size_t foreign, json_t *labels)
{
	const char *region = onb_str(labels, "region");

	return xerr_set(e, XTCMK_E_CONFLICT, "application '%s' would hold "
	    "%zu federated identity credentials (%zu kept, %zu to create, "
	    "%zu not managed by xtcmk); Entra allows %d per application. "
	    "Instead the partition policy can federate fewer workloads with "
	    "it (pick at most %d), or open another application%s%s%s for the "
	    "extra workloads (as the default policy does when an application "
	    "is full); or remove credentials of workloads that no longer run",
	    app, keep + add + foreign, keep, add, foreign, ONB_FIC_MAX,
	    ONB_FIC_MAX, region ? " in region " : "", region ? region : "",
	    region ? "" : "");
}

static int
plan_app(json_t *doc, json_t *app, json_t *workloads, json_t *cur,
    json_t *extra, const char *issuer, const char *aud, struct xerr *e)
{
	const char *name = onb_str(app, "name"), *cid, *wl, *subj;
	json_t *fics = json_array(), *remove = json_array(), *foreign =
	    json_array(), *unfed = json_array(), *planned, *w, *f, *c, *b;
	json_t *out, *body, *taken;
	size_t i, j, keep = 0, add = 0;
	char *n, *s, *cmds = NULL, *ps = NULL, *t;
	int rc = 0, found;

	cid = onb_str(app, "client_id");
	planned = json_deep_copy(json_object_get(app,
	    "federated_credentials"));
	taken = json_deep_copy(planned);
	json_array_extend(taken, cur != NULL ? cur : NULL);
	json_array_foreach(extra, i, w) {
		wl = json_string_value(w);
		if (find_named(planned, "workload", wl) != NULL)
			continue;
		if ((n = new_fic_name(taken, wl)) == NULL)
			continue;
		json_array_append_new(planned, json_pack("{s:s, s:s}",
		    "workload", wl, "name", n));
		json_array_append_new(taken, json_pack("{s:s}", "name", n));
		free(n);
	}
	json_decref(taken);
	json_array_foreach(planned, i, f) {
		wl = onb_str(f, "workload");
		w = find_named(workloads, "name", wl);
		if (w == NULL || (subj = onb_str(w, "principal_id")) == NULL) {
			rc = xerr_set(e, XTCMK_E_NOT_FOUND, "workload '%s' "
			    "(federated with application '%s') is not "
			    "registered: `xtcmkctl workload add %s "
			    "--client-id GUID --principal-id GUID`", wl, name,
			    wl);
			goto out;
		}
		if (!fic_name_ok(onb_str(f, "name"))) {
			rc = xerr_set(e, XTCMK_E_INVAL, "federated credential "
			    "name '%s' breaks Microsoft Graph's rule (3-120 "
			    "letters, digits, '-' or '_', first a letter or "
			    "digit); rename workload '%s'", onb_str(f, "name"),
			    wl);
			goto out;
		}
		found = 0;
		json_array_foreach(cur, j, c)
			if (same_fic(c, issuer, subj))
				found = 1;
		b = fic_body(onb_str(f, "name"), issuer, aud, subj, wl, name);
		json_object_set_new(b, "workload", json_string(wl));
		json_object_set_new(b, "action", json_string(found ? "keep" :
		    "create"));
		json_array_append_new(fics, b);
		if (found)
			keep++;
		else
			add++;
	}
	json_array_foreach(cur, j, c) {
		found = 0;
		json_array_foreach(fics, i, f)
			if (same_fic(c, issuer, onb_str(f, "subject")))
				found = 1;
		if (found)
			continue;
		if (onb_str(c, "issuer") != NULL && strcmp(onb_str(c,
		    "issuer"), issuer) == 0 && onb_has(json_object_get(c,
		    "audiences"), aud))
			json_array_append_new(remove, json_pack("{s:s?, s:s?, "
			    "s:s}", "name", onb_str(c, "name"), "subject",
			    onb_str(c, "subject"), "reason", "its subject is "
			    "not the principal id of a workload federated with "
			    "this application in the registry"));
		else
			json_array_append_new(foreign, json_string(onb_str(c,
			    "name") ? onb_str(c, "name") : "(unnamed)"));
	}
	if (keep + add + json_array_size(foreign) > ONB_FIC_MAX) {
		rc = plan_refuse(e, name, keep, add, json_array_size(foreign),
		    json_object_get(app, "labels"));
		goto out;
	}
	if (onb_str(json_object_get(app, "labels"), "region") != NULL)
		json_array_foreach(workloads, i, w)
			if (onb_str(json_object_get(w, "labels"), "region") !=
			    NULL && strcmp(onb_str(json_object_get(w,
			    "labels"), "region"), onb_str(json_object_get(app,
			    "labels"), "region")) == 0 &&
			    find_named(planned, "workload", onb_str(w,
			    "name")) == NULL)
				json_array_append_new(unfed, json_string(
				    onb_str(w, "name")));

	out = json_pack("{s:s, s:s?, s:O, s:O, s:I, s:i, s:I, s:b, s:O, "
	    "s:O, s:O, s:O}", "name", name, "client_id", cid,
	    "customers", json_object_get(app, "customers"),
	    "labels", json_object_get(app, "labels"),
	    "fic_count", (json_int_t)json_array_size(fics),
	    "limit", ONB_FIC_MAX,
	    "total_after", (json_int_t)(keep + add +
	    json_array_size(foreign)),
	    "current_known", cur != NULL, "fics", fics, "remove", remove,
	    "foreign", foreign, "unfederated", unfed);
	json_object_set_new(out, "room", json_integer(ONB_FIC_MAX -
	    (json_int_t)(keep + add + json_array_size(foreign))));
	json_array_append_new(json_object_get(doc, "apps"), out);

	s = onb_printf("Application %s", name);
	body = onb_section(doc, s ? s : name);
	free(s);
	onb_p(body, "Client id %s; serves %lld customer(s); labels %s. "
	    "Federated identity credentials after this plan: %zu of %d "
	    "(%zu to create, %zu already present, %zu to remove, %zu not "
	    "managed by xtcmk), room for %zu more.", cid ? cid :
	    "NOT SET (register the application, then `xtcmkctl app set`)",
	    (long long)json_integer_value(json_object_get(app, "customers")),
	    (s = json_dumps(json_object_get(app, "labels"), JSON_COMPACT |
	    JSON_SORT_KEYS)) ? s : "{}", keep + add + json_array_size(foreign),
	    ONB_FIC_MAX, add, keep, json_array_size(remove),
	    json_array_size(foreign), ONB_FIC_MAX - (keep + add +
	    json_array_size(foreign)));
	free(s);
	json_array_foreach(fics, i, f)
		onb_li(body, "%s: %s, workload %s (subject %s)",
		    onb_str(f, "action"), onb_str(f, "name"),
		    onb_str(f, "workload"), onb_str(f, "subject"));
	json_array_foreach(remove, i, f)
		onb_li(body, "remove: %s (subject %s): %s", onb_str(f, "name"),
		    onb_str(f, "subject"), onb_str(f, "reason"));
	if (json_array_size(unfed) > 0) {
		s = json_dumps(unfed, JSON_COMPACT);
		onb_p(body, "Workloads of the application's region without a "
		    "credential on it (hosts running as them cannot serve its "
		    "customers): %s. Add one with `xtcmkctl app plan %s --add "
		    "WORKLOAD`, then `xtcmkctl app fic add %s WORKLOAD`.",
		    s ? s : "", name, name);
		free(s);
	}
	if (cid == NULL)
		onb_step_app_create(body, name);
	if (add > 0) {
		ps = onb_printf("$app = Get-AzADApplication -ApplicationId %s",
		    cid ? cid : "<application-client-id>");
		onb_p(body, "Microsoft Graph requests (one per credential; the "
		    "application object id is not its client id: `az ad app "
		    "show --id %s --query id -o tsv`):", cid ? cid :
		    "<application-client-id>");
		cmds = onb_printf("app_obj=$(az ad app show --id %s --query id "
		    "-o tsv)", cid ? cid : "<application-client-id>");
		json_array_foreach(fics, i, f) {
			if (strcmp(onb_str(f, "action"), "create") != 0)
				continue;
			b = fic_body(onb_str(f, "name"), issuer, aud,
			    onb_str(f, "subject"), onb_str(f, "workload"),
			    name);
			s = json_dumps(b, JSON_INDENT(2) |
			    JSON_PRESERVE_ORDER);
			onb_code(body, "http", "POST %s\nContent-Type: "
			    "application/json\n\n%s", GRAPH_FIC_URL,
			    s ? s : "");
			free(s);
			s = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
			t = onb_printf("%s\naz ad app federated-credential "
			    "create --id \"$app_obj\" --parameters '%s'",
			    cmds ? cmds : "", s ? s : "");
			free(s);
			free(cmds);
			cmds = t;
			t = onb_step_fic_ps(ps ? ps : "", b);
			free(ps);
			ps = t;
			json_decref(b);
		}
		onb_p(body, "The same with the Azure CLI:");
		onb_code(body, "sh", "%s", cmds ? cmds : "");
		onb_p(body, "With PowerShell (Az.Resources):");
		onb_code(body, "powershell", "%s", ps ? ps : "");
		free(cmds);
		free(ps);
		cmds = ps = NULL;
	}
	if (json_array_size(remove) > 0) {
		onb_p(body, "Credentials to delete (Graph: DELETE %s/{name}; "
		    "the name is an alternate key):", GRAPH_FIC_URL);
		cmds = onb_printf("app_obj=$(az ad app show --id %s --query id "
		    "-o tsv)", cid ? cid : "<application-client-id>");
		json_array_foreach(remove, i, f) {
			t = onb_printf("%s\naz ad app federated-credential "
			    "delete --id \"$app_obj\" --federated-credential-id "
			    "%s", cmds ? cmds : "", onb_str(f, "name") ?
			    onb_str(f, "name") : "<name>");
			free(cmds);
			cmds = t;
		}
		onb_code(body, "sh", "%s", cmds ? cmds : "");
		free(cmds);
	}
	if (add == 0 && json_array_size(remove) == 0)
		onb_p(body, "Nothing to change.");
out:
	json_decref(planned);
	json_decref(fics);
	json_decref(remove);
	json_decref(foreign);
	json_decref(unfed);
	return rc;
}

struct onb_plan {
	json_t		*doc;
	json_t		*intro;		/* body of the first section */
	json_t		*workloads, *current, *extra;
	const char	*only;
	char		*issuer, *aud;
	size_t		 n;
};

int
onb_plan_begin(json_t *status, json_t *workloads, const char *only,
    json_t *current, json_t *extra, struct onb_plan **ret_plan,
    struct xerr *e)
{
	const char *tenant = onb_str(json_object_get(status, "azure"),
	    "tenant");
	struct onb_plan *p;
	json_t *doc, *w, *body;
	char *issuer, *aud = NULL;
	size_t i;

	if (tenant == NULL)
		return xerr_set(e, XTCMK_E_CONFLICT, "the provider tenant is "
		    "not configured, and it is the issuer of every federated "
		    "credential: set `tenant = <your tenant GUID>` in the "
		    "[azure] section of xtcmk.conf and restart xtcmkd");
	json_array_foreach(extra, i, w)
		if (find_named(workloads, "name", json_string_value(w)) ==
		    NULL)
			return xerr_set(e, XTCMK_E_NOT_FOUND, "unknown workload "
			    "'%s'; `xtcmkctl workload list` shows the "
			    "registered ones", json_string_value(w));
	if ((issuer = onb_printf("%s/%s/v2.0", onb_authority(status),
	    tenant)) == NULL || (aud = strdup(onb_audience(status))) == NULL ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		free(issuer);
		free(aud);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	doc = onb_doc_new("app-plan", only != NULL ?
	    "Federated identity credentials: one application" :
	    "Federated identity credentials: every application");
	json_object_set_new(doc, "provider_tenant", json_string(tenant));
	json_object_set_new(doc, "issuer", json_string(issuer));
	json_object_set_new(doc, "audience", json_string(aud));
	json_object_set_new(doc, "limit", json_integer(ONB_FIC_MAX));
	json_object_set_new(doc, "apps", json_array());
	body = onb_section(doc, "Phase 1: the provider federates its "
	    "workload identities");
	onb_p(body, "Each workload identity (a user-assigned managed "
	    "identity in tenant %s) that serves an application's customers "
	    "needs one federated identity credential on that multitenant "
	    "application: issuer %s, subject the identity's principal "
	    "(object) id, audience %s. An application holds at most %d. "
	    "Creating one needs Application Administrator, Application "
	    "Developer, Cloud Application Administrator or ownership of the "
	    "application.", tenant, issuer, aud, ONB_FIC_MAX);
	onb_step_identities(body, tenant);
	if (current == NULL)
		onb_p(body, "Without --current, every credential the registry "
		    "holds is listed as one to create. To see what must be "
		    "added or removed, save what Entra has (`az ad app "
		    "federated-credential list --id APP_OBJECT_ID > "
		    "current.json`) and pass --current current.json.");
	onb_note(doc, "Graph accepts a wrong issuer, subject or audience "
	    "when the credential is created; it fails only at token exchange "
	    "(AADSTS70021). Only user-assigned identities of the same tenant "
	    "as the application work.");
	onb_note(doc, "The PowerShell lines New-AzADApplication "
	    "-SignInAudience and New-AzUserAssignedIdentity are from memory "
	    "(UNVERIFIED); the az lines are parsed by the real Azure CLI in "
	    "xtcmk's tests.");
	onb_note(doc, "`az ad app federated-credential delete "
	    "--federated-credential-id NAME` is from memory, not from the "
	    "seed documents (UNVERIFIED); Graph's DELETE by name is "
	    "documented.");
	p->doc = doc;
	p->intro = body;
	p->workloads = workloads;
	p->current = current;
	p->extra = extra;
	p->only = only;
	p->issuer = issuer;
	p->aud = aud;
	*ret_plan = p;
	return 0;
}

json_t *
onb_plan_doc(struct onb_plan *p)
{
	return p->doc;
}

int
onb_plan_app(struct onb_plan *p, json_t *app, struct xerr *e)
{
	const char *name = onb_str(app, "name");
	json_t *cur = NULL;
	int rc;

	if (name == NULL || (p->only != NULL && strcmp(name, p->only) != 0))
		return 0;
	if (json_is_array(p->current) && p->only != NULL)
		cur = p->current;
	else if (json_is_object(p->current))
		cur = json_object_get(p->current, name);
	if ((rc = plan_app(p->doc, app, p->workloads, cur, p->only != NULL ?
	    p->extra : NULL, p->issuer, p->aud, e)) < 0)
		return rc;
	p->n++;
	return 0;
}

void
onb_plan_none(struct onb_plan *p)
{
	onb_p(p->intro, "No application is registered yet: onboard a "
	    "customer (`xtcmkctl customer add`) or add one (`xtcmkctl app "
	    "add`).");
}

void
onb_plan_free(struct onb_plan *p)
{
	if (p == NULL)
		return;
	json_decref(p->doc);
	free(p->issuer);
	free(p->aud);
	free(p);
}

int
onb_app_plan(json_t *status, json_t *apps, json_t *workloads,
    const char *only, json_t *current, json_t *extra, json_t **ret_doc,
    struct xerr *e)
{
	struct onb_plan *p;
	json_t *app;
	size_t i;
	int rc;

	if (only != NULL && find_named(apps, "name", only) == NULL)
		return xerr_set(e, XTCMK_E_NOT_FOUND, "unknown application "
		    "'%s'; `xtcmkctl app list` shows the registered ones",
		    only);
	if ((rc = onb_plan_begin(status, workloads, only, current, extra, &p,
	    e)) < 0)
		return rc;
	json_array_foreach(apps, i, app)
		if ((rc = onb_plan_app(p, app, e)) < 0) {
			onb_plan_free(p);
			return rc;
		}
	if (p->n == 0)
		onb_plan_none(p);
	*ret_doc = json_incref(p->doc);
	onb_plan_free(p);
	return 0;
}

/* --- phase 2: customer kit ------------------------------------------ */

static const char *
consent_url(json_t *status, const char *tenant, const char *cid, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s/%s/adminconsent?client_id=%s",
	    onb_authority(status), tenant, cid);
	return buf;
}

static void
kit_grant_rbac(json_t *doc, json_t *body, json_t *role,
    const struct key_uri *ku, const char *cid, const char *vault_rid)
{
	const char *rname = onb_str(role, "role"), *rid = onb_str(role,
	    "role_id"), *scope = onb_str(role, "scope");
	int on_key = scope == NULL || strcmp(scope, "vault") != 0;
	const char *v = vault_rid ? vault_rid : "<vault-resource-id>";
	char *sc, *arm_scope;
	json_t *arm;

	if (ku->service == KEY_SERVICE_MHSM) {
		/* Managed HSM local RBAC: the Key Vault roles do not exist
		 * there (FACTS 6); the role decision names the HSM's own. */
		onb_p(body, "Managed HSM uses its own local RBAC, not Azure "
		    "RBAC. Assign its role '%s' (role definition id %s) to the "
		    "application's service principal %s; the Key Vault roles "
		    "do not exist on a Managed HSM.", rname,
		    rid, on_key ? "on the key" : "on the HSM");
		onb_code(body, "sh", "sp_id=$(az ad sp show --id %s --query id "
		    "-o tsv)\naz keyvault role assignment create --hsm-name "
		    "%s --role \"%s\" --assignee-object-id \"$sp_id\" "
		    "--assignee-principal-type ServicePrincipal --scope "
		    "/keys%s%s", cid, ku->vault, rname, on_key ? "/" : "",
		    on_key ? ku->name : "");
		return;
	}
	sc = onb_printf("%s%s%s", v, on_key ? "/keys/" : "", on_key ?
	    ku->name : "");
	onb_p(body, "Assign the Azure RBAC role '%s' (role definition id "
	    "%s) to the application's service principal, scope: the %s "
	    "(%s). Assigning roles needs User Access Administrator (or "
	    "Owner) on the vault.", rname, rid, on_key ? "key" : "vault",
	    sc ? sc : "");
	onb_p(body, "Azure CLI:");
	onb_code(body, "sh", "sp_id=$(az ad sp show --id %s --query id -o "
	    "tsv)\nvault_id=%s%s%s\naz role assignment create --role %s "
	    "--assignee-object-id \"$sp_id\" --assignee-principal-type "
	    "ServicePrincipal --scope \"$vault_id%s%s\"", cid,
	    vault_rid ? "" : "$(az keyvault show --name ", vault_rid ?
	    vault_rid : ku->vault, vault_rid ? "" : " --query id -o tsv)", rid,
	    on_key ? "/keys/" : "", on_key ? ku->name : "");
	onb_p(body, "PowerShell:");
	onb_code(body, "powershell", "$sp = Get-AzADServicePrincipal "
	    "-ApplicationId %s\n$vaultId = %s%s%s\nNew-AzRoleAssignment "
	    "-ObjectId $sp.Id -RoleDefinitionId %s -Scope \"$vaultId%s%s\"",
	    cid, vault_rid ? "'" : "(Get-AzKeyVault -VaultName ", vault_rid ?
	    vault_rid : ku->vault, vault_rid ? "'" : ").ResourceId", rid,
	    on_key ? "/keys/" : "", on_key ? ku->name : "");
	arm_scope = on_key ? onb_printf("Microsoft.KeyVault/vaults/%s/keys/%s",
	    ku->vault, ku->name) : onb_printf("Microsoft.KeyVault/vaults/%s",
	    ku->vault);
	arm = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}}",
	    "type", "Microsoft.Authorization/roleAssignments",
	    "apiVersion", "2022-04-01",
	    "scope", arm_scope ? arm_scope : "",
	    "name", "[guid(resourceGroup().id, '<vault>', '<role>', "
	    "parameters('servicePrincipalObjectId'))]",
	    "properties",
	    "roleDefinitionId", "",
	    "principalId", "[parameters('servicePrincipalObjectId')]",
	    "principalType", "ServicePrincipal");
	free(sc);
	sc = onb_printf("[subscriptionResourceId('Microsoft.Authorization/"
	    "roleDefinitions', '%s')]", rid);
	json_object_set_new(json_object_get(arm, "properties"),
	    "roleDefinitionId", json_string(sc ? sc : ""));
	free(sc);
	sc = onb_printf("[guid(resourceGroup().id, '%s', '%s', "
	    "parameters('servicePrincipalObjectId'))]", arm_scope ?
	    arm_scope : "", rid);
	json_object_set_new(arm, "name", json_string(sc ? sc : ""));
	free(sc);
	free(arm_scope);
	onb_p(body, "ARM template resource (deploy it in the vault's "
	    "resource group; servicePrincipalObjectId is the id `az ad sp "
	    "show --id %s --query id -o tsv` prints):", cid);
	onb_code_json(body, arm);
	json_object_set_new(doc, "arm", arm);
	onb_note(doc, "The role-assignment apiVersion 2022-04-01 in the ARM "
	    "resource is from memory (UNVERIFIED); any current "
	    "Microsoft.Authorization/roleAssignments api-version works.");
}

static void
kit_grant_policy(json_t *doc, json_t *body, json_t *role,
    const struct key_uri *ku, const char *cid)
{
	json_t *perms = json_object_get(role, "permissions"), *v;
	char az[256] = "", ps[256] = "";
	size_t i, n;

	json_array_foreach(perms, i, v) {
		n = strlen(az);
		snprintf(az + n, sizeof(az) - n, "%s%s", i ? " " : "",
		    json_string_value(v));
		n = strlen(ps);
		snprintf(ps + n, sizeof(ps) - n, "%s%s", i ? "," : "",
		    json_string_value(v));
	}
	onb_p(body, "The vault uses access policies. Give the application's "
	    "service principal these key permissions, and nothing else: %s.",
	    ps);
	onb_p(body, "Azure CLI:");
	onb_code(body, "sh", "sp_id=$(az ad sp show --id %s --query id -o "
	    "tsv)\naz keyvault set-policy --name %s --object-id \"$sp_id\" "
	    "--key-permissions %s", cid, ku->vault, az);
	onb_p(body, "PowerShell:");
	onb_code(body, "powershell", "$sp = Get-AzADServicePrincipal "
	    "-ApplicationId %s\nSet-AzKeyVaultAccessPolicy -VaultName %s "
	    "-ObjectId $sp.Id -PermissionsToKeys %s", cid, ku->vault, ps);
	onb_note(doc, "The access-policy command line of the Azure CLI is "
	    "empty in the seed document; `az keyvault set-policy "
	    "--key-permissions` is from memory. The single-tenant Storage "
	    "document also grants `recover`, which wrap and unwrap do not "
	    "need.");
}

int
onb_customer_kit(json_t *status, json_t *show, const char *grant,
    const char *vault_rid, json_t **ret_doc, struct xerr *e)
{
	const char *id, *cid, *tenant, *mech;
	json_t *d, *role, *ver, *doc, *body, *kinds, *back;
	struct key_uri ku;
	char url[512], *s;
	int rc, netapp;

	id = onb_str(json_object_get(show, "customer"), "id");
	if ((rc = onb_decision(show, id, &d, e)) < 0)
		return rc;
	if ((rc = onb_client_id(d, &cid, e)) < 0)
		return rc;
	if ((rc = key_uri_parse(onb_str(d, "key_uri"), &ku, e)) < 0)
		return rc;
	if (vault_rid != NULL && (rc = onb_vault_rid(vault_rid, &ku, e)) < 0)
		return rc;
	role = json_object_get(d, "role");
	ver = json_object_get(d, "versioning");
	mech = onb_str(role, "mechanism");
	tenant = onb_str(d, "tenant");
	kinds = json_object_get(d, "kinds");
	netapp = onb_has(kinds, "netapp");
	if (grant != NULL && strcmp(grant, mech) != 0) {
		if (strcmp(mech, "access-policy") == 0)
			return xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' "
			    "declares a vault with access policies, so an RBAC "
			    "role assignment would not be evaluated: drop "
			    "--grant to get the access-policy grant (get, "
			    "wrapKey, unwrapKey), or have the customer switch "
			    "the vault to the Azure RBAC permission model and "
			    "record it (`xtcmkctl customer remove %s`, then "
			    "`customer add %s ... --auth rbac`)", id, id, id);
		return xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' declares a "
		    "vault with the Azure RBAC permission model, where access "
		    "policies are ignored: drop --grant to get the RBAC role "
		    "assignment, or record the vault as --auth access-policy "
		    "if the customer uses access policies", id);
	}
	doc = onb_doc_new("customer-kit", "Cross-tenant customer-managed "
	    "keys: what your administrator does");
	json_object_set_new(doc, "customer", json_string(id));
	json_object_set_new(doc, "tenant", json_string(tenant));
	json_object_set_new(doc, "app", json_string(onb_str(d, "app")));
	json_object_set_new(doc, "app_client_id", json_string(cid));
	json_object_set_new(doc, "admin_consent_url", json_string(
	    consent_url(status, tenant, cid, url, sizeof(url))));
	json_object_set_new(doc, "key", json_pack("{s:s, s:s, s:s, s:s, s:s?}",
	    "uri", onb_str(d, "key_uri"), "vault_uri", ku.base, "vault",
	    ku.vault, "name", ku.name, "version", ku.version[0] ? ku.version :
	    NULL));
	json_object_set_new(doc, "vault_prerequisites", json_pack("{s:b, s:b, "
	    "s:s}", "soft_delete", 1, "purge_protection", 1,
	    "permission_model", mech));
	json_object_set_new(doc, "grant", json_deep_copy(role));
	if (strcmp(mech, "rbac") == 0) {
		s = ku.service == KEY_SERVICE_MHSM ? NULL : onb_printf(
		    "%s%s%s", vault_rid ? vault_rid : "<vault-resource-id>",
		    onb_str(role, "scope") && strcmp(onb_str(role, "scope"),
		    "vault") == 0 ? "" : "/keys/", onb_str(role, "scope") &&
		    strcmp(onb_str(role, "scope"), "vault") == 0 ? "" :
		    ku.name);
		json_object_set_new(json_object_get(doc, "grant"), "scope_id",
		    s ? json_string(s) : json_null());
		free(s);
	}

	body = onb_section(doc, "What this is");
	onb_p(body, "Your provider encrypts your data with a key that stays "
	    "in your Key Vault, in your tenant %s. Its multitenant "
	    "application %s (application id %s) acts for it; you install "
	    "that application in your tenant, let it use the key, and send "
	    "back where the key is. You can rotate, disable or re-enable the "
	    "key at any time.", tenant, onb_str(d, "app"), cid);

	body = onb_section(doc, "1. Install the application (admin consent)");
	onb_p(body, "An administrator with Application Administrator, Cloud "
	    "Application Administrator or Global Administrator opens:");
	onb_code(body, "text", "%s", url);
	onb_p(body, "After signing in you may see an error that no redirect "
	    "URL is configured; that is expected, the consent is recorded. "
	    "Instead of the URL you can create the service principal "
	    "directly:");
	onb_code(body, "sh", "az ad sp create --id %s", cid);
	onb_code(body, "powershell", "New-AzADServicePrincipal -ApplicationId "
	    "%s", cid);

	body = onb_section(doc, "2. Vault prerequisites");
	onb_p(body, "The key vault %s must have soft delete and purge "
	    "protection enabled, and uses the %s permission model. Check:",
	    ku.vault, strcmp(mech, "rbac") == 0 ? "Azure RBAC" :
	    "access policy");
	if (ku.service == KEY_SERVICE_MHSM)
		onb_code(body, "sh", "az keyvault show --hsm-name %s --query "
		    "\"{softDelete: properties.enableSoftDelete, "
		    "purgeProtection: properties.enablePurgeProtection}\"",
		    ku.vault);
	else
		onb_code(body, "sh", "az keyvault show --name %s --query "
		    "\"{softDelete: properties.enableSoftDelete, "
		    "purgeProtection: properties.enablePurgeProtection, rbac: "
		    "properties.enableRbacAuthorization}\"\n"
		    "# if purge protection is off (it cannot be turned off "
		    "again):\naz keyvault update --name %s "
		    "--enable-purge-protection true", ku.vault, ku.vault);
	if (ku.service != KEY_SERVICE_MHSM) {
		/* The vault's resource group is the 4th segment of its id. */
		char rg[128] = "<resource-group>";

		if (vault_rid != NULL)
			sscanf(vault_rid, "/%*[^/]/%*[^/]/%*[^/]/%127[^/]", rg);
		onb_code(body, "powershell", "Get-AzKeyVault -VaultName %s | "
		    "Select-Object EnableSoftDelete, EnablePurgeProtection, "
		    "EnableRbacAuthorization\nUpdate-AzKeyVault -VaultName %s "
		    "-ResourceGroupName %s -EnablePurgeProtection", ku.vault,
		    ku.vault, rg);
	}
	onb_p(body, "The key %s must be an RSA key (RSA or RSA-HSM).",
	    ku.name);
	onb_step_vault_create(body, &ku, strcmp(mech, "rbac") == 0,
	    onb_has(kinds, "cosmosdb"));

	body = onb_section(doc, "3. Grant the application access to the key");
	if (strcmp(mech, "rbac") == 0)
		kit_grant_rbac(doc, body, role, &ku, cid, vault_rid);
	else
		kit_grant_policy(doc, body, role, &ku, cid);
	if (netapp) {
		onb_step_netapp_approve(body, &ku, vault_rid);
		if (strcmp(mech, "rbac") != 0)
			onb_note(doc, "The NetApp Files cross-tenant document "
			    "grants only the RBAC role Key Vault Crypto User; "
			    "an access-policy vault is not described there "
			    "(an older NetApp document lists Get, Encrypt, "
			    "Decrypt): your provider cannot configure NetApp "
			    "Files until the vault uses Azure RBAC.");
	}

	body = onb_section(doc, "4. Send back to your provider");
	back = json_array();
	if (strcmp(onb_str(ver, "mode"), "pinned") == 0) {
		s = onb_printf("%s/keys/%s/%s", ku.base, ku.name,
		    onb_str(ver, "version"));
		onb_li(body, "the key URI with its version: %s (this version "
		    "is used until your provider changes it; tell them before "
		    "you rotate)", s ? s : "");
	} else {
		s = onb_printf("%s/keys/%s", ku.base, ku.name);
		onb_li(body, "the key URI without a version: %s (%s)", s ? s :
		    "", netapp ? "NetApp Files names the key without a "
		    "version; whether it follows new versions on its own is "
		    "unverified: tell your provider before you rotate or disable "
		    "a version" : "new versions are picked up automatically");
	}
	json_array_append_new(back, json_pack("{s:s, s:s}", "item", "key_uri",
	    "value", s ? s : ""));
	free(s);
	if (netapp) {
		onb_li(body, "the full resource id of the key vault (`az "
		    "keyvault show --name %s --query id -o tsv`): NetApp "
		    "Files needs it for the private endpoint and "
		    "keyVaultResourceId", ku.vault);
		json_array_append_new(back, json_pack("{s:s, s:s}", "item",
		    "vault_resource_id", "value", vault_rid ? vault_rid :
		    "<vault-resource-id>"));
	}
	onb_li(body, "confirmation that the application is installed and the "
	    "grant above is in place");
	json_object_set_new(doc, "send_back", back);

	body = onb_section(doc, "Rotation and revocation");
	onb_p(body, "Rotate by creating a new key version. Keep the previous "
	    "version enabled for at least %lld hours after a rotation%s. "
	    "Disabling the key revokes access: your provider's services "
	    "stop reading and writing your data (the agent within %lld "
	    "seconds) until you enable it again.",
	    (long long)(json_integer_value(json_object_get(ver, "grace")) +
	    3599) / 3600, onb_has(kinds, "storage") || onb_has(kinds,
	    "storage-existing") ? " (Azure Storage checks for a new version "
	    "once a day)" : "", (long long)json_integer_value(
	    json_object_get(ver, "revocation_check")));
	if (vault_rid == NULL && strcmp(mech, "rbac") == 0 &&
	    ku.service != KEY_SERVICE_MHSM)
		onb_note(doc, "<vault-resource-id> stands for the vault's "
		    "resource id (`az keyvault show --name %s --query id -o "
		    "tsv`); the provider can fill it in with "
		    "--vault-resource-id.", ku.vault);
	if (ku.service == KEY_SERVICE_LOCAL)
		onb_note(doc, "The key is in the local keystore (.vault.local): "
		    "nothing is granted in Azure; this kit shows what an Azure "
		    "customer would do.");
	*ret_doc = doc;
	return 0;
}
