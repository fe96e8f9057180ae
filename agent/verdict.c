/*
 * verdict.c - checks every policy result against the agent's invariants
 * and the resource-kind rules before anything acts on it, and normalises
 * it (role ids from role names, canonical permission casing, defaults for
 * the versioning intervals).  Whatever a policy returns, nothing here
 * lets through more than 20 FICs per application, a grant the vault
 * cannot take, or a key mode a resource kind refuses.
 */
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"
#include "validate.h"

#define VERDICT_FIC_MAX		20	/* Entra: federated credentials per app */
#define VERDICT_PERMS_MAX	32	/* permissions in an access policy */

struct role {
	const char	*name;
	const char	*id;
	int		 wraps;		/* grants keys/read + wrap + unwrap */
	int		 netapp;	/* enough for NetApp Files */
	int		 mhsm;		/* Managed HSM local RBAC, else ARM */
};

/*
 * FACTS.md section 6.  A Managed HSM has its own local RBAC: the Key
 * Vault roles do not exist there, and its roles do not exist on a vault.
 */
static const struct role roles[] = {
	{ "Key Vault Crypto Service Encryption User",
	    "e147488a-f6f5-4113-8e2d-b22465e65bf6", 1, 0, 0 },
	{ "Key Vault Crypto User",
	    "12338af0-0e69-4776-bea7-57ae8d297424", 1, 1, 0 },
	{ "Key Vault Crypto Officer",
	    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", 1, 1, 0 },
	{ "Key Vault Administrator",
	    "00482a5a-887f-4fb3-b363-3b7fe8e74483", 1, 1, 0 },
	{ "Key Vault Reader",
	    "21090545-7ca7-4776-b22c-e363652d74d2", 0, 0, 0 },
	{ "Key Vault Contributor",
	    "f25e0fa2-a7c8-4377-a976-54943a77a395", 0, 0, 0 },
	{ "Key Vault Crypto Service Release User",
	    "08bbd89e-9f13-488c-ac41-acfcb10c90ab", 0, 0, 0 },
	{ "Managed HSM Crypto Service Encryption User",
	    "33413926-3206-4cdd-b39a-83574fe37a17", 1, 0, 1 },
	{ NULL, NULL, 0, 0, 0 }
};

static const char *const key_perms[] = {
	"get", "list", "update", "create", "import", "delete", "recover",
	"backup", "restore", "decrypt", "encrypt", "unwrapKey", "wrapKey",
	"verify", "sign", "purge", "release", "rotate", "getrotationpolicy",
	"setrotationpolicy", "all", NULL
};

struct bound {
	const char	*field;
	json_int_t	 min, max, def;
};

#define HOST_CACHE_TTL_MAX	86400

static const struct bound bounds[] = {
	{ "refresh", 1, 604800, 3600 },
	{ "revocation_check", 1, 86400, 300 },
	{ "grace", 0, 7776000, 86400 },
	{ "cache_ttl", 0, 86400, 300 },
	{ "cache_max", 0, 1000000, 10000 },
	{ NULL, 0, 0, 0 }
};

static int
refuse(struct xerr *e, const struct policy_set *s, enum policy_kind k,
    const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
refuse(struct xerr *e, const struct policy_set *s, enum policy_kind k,
    const char *rule, const char *fmt, ...)
{
	char what[XERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return xerr_set(e, XTCMK_E_POLICY, "policy '%s' (%s.lua): %s: %s",
	    policy_set_name(s, k), policy_kind_name(k), rule, what);
}

static const char *
str_field(json_t *o, const char *f)
{
	return json_string_value(json_object_get(o, f));
}

/* Is the customer's key in a Managed HSM? */
static int
key_in_mhsm(json_t *in)
{
	struct key_uri u;

	return key_uri_parse(str_field(json_object_get(in, "customer"),
	    "key_uri"), &u, NULL) == 0 && u.service == KEY_SERVICE_MHSM;
}

static int
has_kind(json_t *input, const char *kind)
{
	json_t *kinds, *v;
	size_t i;

	kinds = json_object_get(json_object_get(input, "customer"), "kinds");
	json_array_foreach(kinds, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), kind) == 0)
			return 1;
	return 0;
}

static int
in_array(json_t *a, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return 1;
	return 0;
}

static json_t *
find_named(json_t *a, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v) {
		const char *n = str_field(v, "name");
		if (n != NULL && strcmp(n, name) == 0)
			return v;
	}
	return NULL;
}

/* A string and where it was, for sorting names once per check. */
struct named {
	const char	*s;
	size_t		 at;
};

static int
named_cmp(const void *x, const void *y)
{
	const struct named *a = x, *b = y;
	int c = strcmp(a->s, b->s);

	return c != 0 ? c : a->at < b->at ? -1 : a->at > b->at;
}

/*
 * The strings of array `a` (with `field`: that string field of its
 * objects), sorted, in *ret (free() it); their count, or -1 when out of
 * memory.  Items that are not strings are left out.
 */
static ssize_t
sorted_names(json_t *a, const char *field, struct named **ret)
{
	struct named *v;
	const char *n;
	size_t i, k = 0;
	json_t *x;

	*ret = NULL;
	if (json_array_size(a) == 0)
		return 0;
	if ((v = calloc(json_array_size(a), sizeof(*v))) == NULL)
		return -1;
	json_array_foreach(a, i, x) {
		n = field != NULL ? str_field(x, field) : json_string_value(x);
		if (n != NULL) {
			v[k].s = n;
			v[k++].at = i;
		}
	}
	qsort(v, k, sizeof(*v), named_cmp);
	*ret = v;
	return (ssize_t)k;
}

static int
sorted_has(const struct named *v, ssize_t n, const char *s)
{
	ssize_t lo = 0, hi = n - 1, mid;
	int c;

	while (lo <= hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(s, v[mid].s)) == 0)
			return 1;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return 0;
}

/*
 * Every name federate[] lists must be a string, a workload of
 * input.workloads and there once; refused at the first place in
 * federate's order that is not.  Names are sorted once and searched, so
 * a long list costs n log n, not n * m.
 */
static int
check_federate(const struct policy_set *s, json_t *fed, json_t *workloads,
    struct xerr *e)
{
	const enum policy_kind k = POLICY_PARTITION;
	struct named *wls = NULL, *names = NULL;
	unsigned char *again = NULL;
	ssize_t nwl, nfed, j;
	const char *wl;
	json_t *v;
	size_t i;
	int rc = 0;

	if ((nwl = sorted_names(workloads, "name", &wls)) < 0 ||
	    (nfed = sorted_names(fed, NULL, &names)) < 0 ||
	    (again = calloc(json_array_size(fed) + 1, 1)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	/* The second and later places of a name that repeats. */
	for (j = 1; j < nfed; j++)
		if (strcmp(names[j].s, names[j - 1].s) == 0)
			again[names[j].at] = 1;
	json_array_foreach(fed, i, v) {
		if ((wl = json_string_value(v)) == NULL)
			rc = refuse(e, s, k, "federate", "federate[%zu] must "
			    "be a workload name (a string)", i + 1);
		else if (!sorted_has(wls, nwl, wl))
			rc = refuse(e, s, k, "federate", "workload '%s' is "
			    "not registered; federate only workloads listed in "
			    "input.workloads", wl);
		else if (again[i])
			rc = refuse(e, s, k, "federate", "workload "
			    "'%s' is listed twice", wl);
		if (rc < 0)
			break;
	}
out:
	free(wls);
	free(names);
	free(again);
	return rc;
}

/* How many names of fed[] the strings of have[] lack, or -1 when out of
 * memory. */
static ssize_t
count_missing(json_t *fed, json_t *have)
{
	struct named *v;
	ssize_t n, missing = 0;
	json_t *x;
	size_t i;

	if ((n = sorted_names(have, NULL, &v)) < 0)
		return -1;
	json_array_foreach(fed, i, x)
		if (!sorted_has(v, n, json_string_value(x)))
			missing++;
	free(v);
	return missing;
}

static int
check_partition(const struct policy_set *s, json_t *in, json_t *out,
    struct xerr *e)
{
	const enum policy_kind k = POLICY_PARTITION;
	json_t *fed, *v, *app, *fics, *labels;
	const char *name, *key;
	struct xerr ve;
	json_int_t limit = VERDICT_FIC_MAX;
	ssize_t added;
	size_t total;
	int rc;

	if ((name = str_field(out, "app")) == NULL)
		return refuse(e, s, k, "app", "return app = \"name\" (a "
		    "string), the application the customer goes to");
	if (valid_name(name, "app", &ve) < 0)
		return refuse(e, s, k, "app name", "%s", ve.msg);
	labels = json_object_get(out, "app_labels");
	if (labels != NULL) {
		if (!json_is_object(labels))
			return refuse(e, s, k, "app_labels", "app_labels must "
			    "be a table of string values");
		json_object_foreach(labels, key, v) {
			if (!json_is_string(v))
				return refuse(e, s, k, "app_labels", "label "
				    "'%s' must be a string", key);
			if (valid_label(key, json_string_value(v), &ve) < 0)
				return refuse(e, s, k, "app_labels", "%s",
				    ve.msg);
		}
	}
	fed = json_object_get(out, "federate");
	if (!json_is_array(fed) || json_array_size(fed) == 0)
		return refuse(e, s, k, "federate", "return federate = { "
		    "\"workload\", ... } naming at least one workload identity "
		    "that will serve the customer");
	if ((rc = check_federate(s, fed, json_object_get(in, "workloads"),
	    e)) < 0)
		return rc;
	v = json_object_get(in, "limit");
	if (json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) < limit)
		limit = json_integer_value(v);
	app = find_named(json_object_get(in, "apps"), name);
	total = json_array_size(fed);
	if (app != NULL) {
		fics = json_object_get(app, "fics");
		if ((added = count_missing(fed, fics)) < 0)
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		total = json_array_size(fics) + (size_t)added;
		if ((json_int_t)total > limit)
			return refuse(e, s, k, "20 FICs per application",
			    "application '%s' holds %zu FICs and federate adds "
			    "%zd more, over the limit of %lld; choose another "
			    "application or fewer workloads", name,
			    json_array_size(fics), added, (long long)limit);
	} else if ((json_int_t)total > limit)
		return refuse(e, s, k, "20 FICs per application", "a new "
		    "application can trust at most %lld workloads; federate "
		    "names %zu", (long long)limit, total);
	return 0;
}

static int
check_rbac(const struct policy_set *s, json_t *in, json_t *out,
    struct xerr *e)
{
	const enum policy_kind k = POLICY_ROLE;
	const struct role *r;
	const char *role, *scope;
	int mhsm = key_in_mhsm(in);

	if ((role = str_field(out, "role")) == NULL)
		return refuse(e, s, k, "rbac role", "return role = \"%s\" (or "
		    "another role name)", mhsm ? "Managed HSM Crypto Service "
		    "Encryption User" : "Key Vault Crypto Service Encryption "
		    "User");
	for (r = roles; r->name != NULL; r++)
		if (strcasecmp(r->name, role) == 0 ||
		    strcasecmp(r->id, role) == 0)
			break;
	if (r->name == NULL)
		return refuse(e, s, k, "rbac role", "'%s' is not a known Key "
		    "Vault role; use \"Key Vault Crypto Service Encryption "
		    "User\", \"Key Vault Crypto User\", \"Key Vault Crypto "
		    "Officer\" or \"Key Vault Administrator\" (a Managed HSM: "
		    "\"Managed HSM Crypto Service Encryption User\")", role);
	if (r->mhsm != mhsm)
		return refuse(e, s, k, "rbac role", "'%s' does not exist %s: "
		    "the customer's key is in a %s; use \"%s\"", r->name,
		    mhsm ? "on a Managed HSM" : "in Key Vault", mhsm ?
		    "Managed HSM (local RBAC)" : "key vault (Azure RBAC)",
		    mhsm ? "Managed HSM Crypto Service Encryption User" :
		    "Key Vault Crypto Service Encryption User");
	if (!r->wraps)
		return refuse(e, s, k, "rbac role", "'%s' does not grant key "
		    "read, wrap and unwrap; use \"Key Vault Crypto Service "
		    "Encryption User\"", r->name);
	if (has_kind(in, "netapp") && !r->netapp)
		return refuse(e, s, k, "netapp role", "NetApp Files needs "
		    "\"Key Vault Crypto User\" (or Crypto Officer or "
		    "Administrator), not '%s'", r->name);
	scope = str_field(out, "scope");
	if (json_object_get(out, "scope") != NULL && scope == NULL)
		return refuse(e, s, k, "rbac scope", "scope must be \"key\" or "
		    "\"vault\"");
	if (scope == NULL)
		scope = "key";
	if (strcmp(scope, "key") != 0 && strcmp(scope, "vault") != 0)
		return refuse(e, s, k, "rbac scope", "scope '%s' is neither "
		    "\"key\" nor \"vault\"", scope);
	if (json_object_set_new(out, "role", json_string(r->name)) == -1 ||
	    json_object_set_new(out, "role_id", json_string(r->id)) == -1 ||
	    json_object_set_new(out, "scope", json_string(scope)) == -1)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	return 0;
}

static int
check_access_policy(const struct policy_set *s, json_t *out, struct xerr *e)
{
	const enum policy_kind k = POLICY_ROLE;
	static const char *const need[] = { "get", "wrapKey", "unwrapKey" };
	json_t *perms, *norm, *v;
	const char *p;
	size_t i, n;
	int j;

	perms = json_object_get(out, "permissions");
	if (!json_is_array(perms) || json_array_size(perms) == 0)
		return refuse(e, s, k, "access-policy permissions", "return "
		    "permissions = { \"get\", \"wrapKey\", \"unwrapKey\" }");
	if (json_array_size(perms) > VERDICT_PERMS_MAX)
		return refuse(e, s, k, "access-policy permissions", "more than "
		    "%d permissions", VERDICT_PERMS_MAX);
	if ((norm = json_array()) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	json_array_foreach(perms, i, v) {
		if ((p = json_string_value(v)) == NULL) {
			json_decref(norm);
			return refuse(e, s, k, "access-policy permissions",
			    "permissions[%zu] must be a string", i + 1);
		}
		for (j = 0; key_perms[j] != NULL; j++)
			if (strcasecmp(key_perms[j], p) == 0)
				break;
		if (key_perms[j] == NULL) {
			json_decref(norm);
			return refuse(e, s, k, "access-policy permissions",
			    "'%s' is not a Key Vault key permission", p);
		}
		if (!in_array(norm, key_perms[j]))
			json_array_append_new(norm, json_string(key_perms[j]));
	}
	n = sizeof(need) / sizeof(need[0]);
	for (i = 0; i < n; i++)
		if (!in_array(norm, need[i]) && !in_array(norm, "all")) {
			json_decref(norm);
			return refuse(e, s, k, "access-policy permissions",
			    "the grant lacks '%s'; it needs get, wrapKey and "
			    "unwrapKey", need[i]);
		}
	if (json_object_set_new(out, "permissions", norm) == -1)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	return 0;
}

static int
check_role(const struct policy_set *s, json_t *in, json_t *out,
    struct xerr *e)
{
	const enum policy_kind k = POLICY_ROLE;
	const char *mech, *auth;

	auth = str_field(json_object_get(in, "customer"), "vault_auth");
	if ((mech = str_field(out, "mechanism")) == NULL)
		return refuse(e, s, k, "mechanism", "return mechanism = "
		    "\"rbac\" or \"access-policy\" (the customer's vault "
		    "declares \"%s\")", auth != NULL ? auth : "nothing");
	if (strcmp(mech, "rbac") != 0 && strcmp(mech, "access-policy") != 0)
		return refuse(e, s, k, "mechanism", "'%s' is neither \"rbac\" "
		    "nor \"access-policy\"", mech);
	if (auth != NULL && strcmp(auth, mech) != 0)
		return refuse(e, s, k, "mechanism", "the customer's vault "
		    "declares %s (vault_auth = \"%s\"), so a grant by %s would "
		    "fail with 403; return mechanism = \"%s\" or correct the "
		    "customer's vault_auth",
		    strcmp(auth, "rbac") == 0 ? "Azure RBAC" : "access policies",
		    auth, strcmp(mech, "rbac") == 0 ? "RBAC role" :
		    "access policy", auth);
	if (strcmp(mech, "rbac") == 0)
		return check_rbac(s, in, out, e);
	return check_access_policy(s, out, e);
}

static int
hex32(const char *v)
{
	size_t i;

	if (v == NULL || strlen(v) != 32)
		return 0;
	for (i = 0; i < 32; i++)
		if (!((v[i] >= '0' && v[i] <= '9') ||
		    (v[i] >= 'a' && v[i] <= 'f') ||
		    (v[i] >= 'A' && v[i] <= 'F')))
			return 0;
	return 1;
}

static int
check_versioning(const struct policy_set *s, json_t *in, json_t *out,
    struct xerr *e)
{
	const enum policy_kind k = POLICY_VERSIONING;
	const struct bound *b;
	const char *mode, *ver;
	json_t *v;
	json_int_t n;

	mode = str_field(out, "mode");
	if (mode == NULL || (strcmp(mode, "auto") != 0 &&
	    strcmp(mode, "pinned") != 0))
		return refuse(e, s, k, "mode", "return mode = \"auto\" "
		    "(versionless, follows rotation) or \"pinned\"");
	if (strcmp(mode, "pinned") == 0) {
		if (has_kind(in, "cosmosdb"))
			return refuse(e, s, k, "cosmosdb", "Cosmos DB accepts "
			    "only versionless key URIs; return mode = \"auto\"");
		ver = str_field(out, "version");
		if (json_object_get(out, "version") == NULL)
			ver = str_field(json_object_get(in, "key"), "version");
		if (!hex32(ver))
			return refuse(e, s, k, "pinned version", "mode "
			    "\"pinned\" needs a 32-hex-digit key version, in "
			    "the result or in the customer's key URI");
		if (json_object_set_new(out, "version", json_string(ver)) == -1)
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	} else if (json_object_get(out, "version") != NULL)
		return refuse(e, s, k, "auto version", "mode \"auto\" follows "
		    "the newest key version; drop version or use mode "
		    "\"pinned\"");
	for (b = bounds; b->field != NULL; b++) {
		v = json_object_get(out, b->field);
		if (v == NULL) {
			if (json_object_set_new(out, b->field,
			    json_integer(b->def)) == -1)
				return xerr_set(e, XTCMK_E_NOMEM,
				    "out of memory");
			continue;
		}
		if (!json_is_integer(v))
			return refuse(e, s, k, b->field, "%s must be an integer "
			    "(seconds or a count)", b->field);
		n = json_integer_value(v);
		if (n < b->min || n > b->max)
			return refuse(e, s, k, b->field, "%s = %lld is outside "
			    "%lld..%lld", b->field, (long long)n,
			    (long long)b->min, (long long)b->max);
	}
	/* Optional, absent is 0: how long host processes may keep a DEK. */
	if ((v = json_object_get(out, "host_cache_ttl")) != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > HOST_CACHE_TTL_MAX))
		return refuse(e, s, k, "host_cache_ttl", "host_cache_ttl must "
		    "be an integer 0..%d (seconds a host process may keep an "
		    "unwrapped DEK; 0: not at all)", HOST_CACHE_TTL_MAX);
	n = json_integer_value(json_object_get(out, "grace"));
	if ((has_kind(in, "storage") || has_kind(in, "storage-existing")) &&
	    n < 86400)
		return refuse(e, s, k, "storage grace", "Azure Storage checks "
		    "for new versions once a day, so an old version must stay "
		    "enabled 24 h after rotation; return grace >= 86400 "
		    "(got %lld)", (long long)n);
	return 0;
}

int
policy_verdict_check(const struct policy_set *s, enum policy_kind k,
    json_t *input, json_t *output, struct xerr *e)
{
	if (!json_is_object(output))
		return refuse(e, s, k, "result", "the result must be a table "
		    "with named fields");
	if (json_object_get(output, "reason") != NULL &&
	    !json_is_string(json_object_get(output, "reason")))
		return refuse(e, s, k, "reason", "reason must be a string");
	switch (k) {
	case POLICY_PARTITION:
		return check_partition(s, input, output, e);
	case POLICY_ROLE:
		return check_role(s, input, output, e);
	case POLICY_VERSIONING:
		return check_versioning(s, input, output, e);
	default:
		return xerr_set(e, XTCMK_E_INVAL, "unknown decision %d", k);
	}
}
