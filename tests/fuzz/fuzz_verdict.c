/*
 * fuzz_verdict.c - the invariant checks every policy result goes through
 * (agent/verdict.c), on results an admin's policy could return.
 *
 * The input is JSON (NUL bytes in strings allowed, as Lua strings may hold
 * them).  It is the policy's result, checked as each of the three
 * decisions against fixed, well-formed inputs; an array [input, result]
 * supplies its own input.  Properties: an accepted result satisfies the
 * invariants the agent promises (at most 20 FICs per application, a grant
 * the vault can take, bounded intervals, Cosmos DB versionless, Storage
 * grace of a day); checking an accepted, normalised result again accepts
 * it unchanged; a refusal carries a message.
 */
#include <strings.h>

#include "config.h"
#include "policy.h"
#include "validate.h"
#include "fuzz.h"

static struct policy_set *set;
static json_t *inputs[3];

static const char *const input_text[] = {
	/* RBAC vault, Storage and NetApp, an application with room. */
	"{\"customer\": {\"id\": \"c1\", \"tenant\": "
	"\"00000000-0000-0000-0000-000000000001\", \"vault_auth\": \"rbac\", "
	"\"kinds\": [\"host\", \"storage\", \"netapp\"], \"labels\": "
	"{\"region\": \"westeurope\"}}, "
	"\"apps\": [{\"name\": \"xtcmk-westeurope-1\", \"labels\": "
	"{\"region\": \"westeurope\"}, \"fics\": [\"wl-we-a\", \"wl-we-b\"], "
	"\"fic_count\": 2, \"customers\": 49}], "
	"\"workloads\": [{\"name\": \"wl-we-a\"}, {\"name\": \"wl-we-b\"}, "
	"{\"name\": \"wl-us-a\"}], \"limit\": 20, "
	"\"app\": {\"name\": \"xtcmk-westeurope-1\"}, "
	"\"key\": {\"uri\": \"https://contoso.vault.azure.net/keys/k1/"
	"0123456789abcdef0123456789abcdef\", \"service\": \"vault\", "
	"\"name\": \"k1\", \"version\": \"0123456789abcdef0123456789abcdef\"}}",
	/* Access-policy vault, Cosmos DB, a full application, limit 3. */
	"{\"customer\": {\"id\": \"c2\", \"vault_auth\": \"access-policy\", "
	"\"kinds\": [\"cosmosdb\", \"storage-existing\"]}, "
	"\"apps\": [{\"name\": \"full\", \"fics\": [\"a\", \"b\", \"c\"]}], "
	"\"workloads\": [{\"name\": \"a\"}, {\"name\": \"b\"}, "
	"{\"name\": \"c\"}, {\"name\": \"d\"}], \"limit\": 3, "
	"\"key\": {\"uri\": \"https://contoso.vault.azure.net/keys/k1\", "
	"\"service\": \"vault\", \"name\": \"k1\"}}",
	/* No declared mechanism, nothing registered. */
	"{\"customer\": {\"id\": \"c3\"}}",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[4096], lua[4096];
	const char *src;
	json_error_t je;
	struct xerr e;
	size_t i;

	(void)argc;
	(void)argv;
	if ((src = getenv("XTCMK_SRCDIR")) == NULL)
		src = XTCMK_SRCDIR;
	snprintf(dir, sizeof(dir), "%s/policies/default", src);
	snprintf(lua, sizeof(lua), "%s/lua", src);
	if (policy_set_load(dir, lua, NULL, NULL, &set, &e) < 0) {
		fprintf(stderr, "fuzz_verdict: %s\n", e.msg);
		abort();
	}
	for (i = 0; i < 3; i++)
		if ((inputs[i] = json_loads(input_text[i], 0, &je)) == NULL) {
			fprintf(stderr, "fuzz_verdict: input %zu: %s\n", i,
			    je.text);
			abort();
		}
	return 0;
}

static int
is_string_in(json_t *a, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return 1;
	return 0;
}

static int
has_kind(json_t *in, const char *kind)
{
	return is_string_in(json_object_get(json_object_get(in, "customer"),
	    "kinds"), kind);
}

static json_t *
find_named(json_t *a, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_string(json_object_get(v, "name")) &&
		    strcmp(json_string_value(json_object_get(v, "name")),
		    name) == 0)
			return v;
	return NULL;
}

static void
check_partition(json_t *in, json_t *out)
{
	json_t *fed, *v, *app, *lim;
	const char *name;
	struct xerr e;
	size_t i, j, total, limit = 20;

	name = json_string_value(json_object_get(out, "app"));
	FUZZ_CHECK(name != NULL && valid_name(name, "app", &e) == 0);
	fed = json_object_get(out, "federate");
	FUZZ_CHECK(json_is_array(fed) && json_array_size(fed) >= 1);
	lim = json_object_get(in, "limit");
	if (json_is_integer(lim) && json_integer_value(lim) > 0 &&
	    json_integer_value(lim) < 20)
		limit = (size_t)json_integer_value(lim);
	json_array_foreach(fed, i, v) {
		FUZZ_CHECK(json_is_string(v));
		FUZZ_CHECK(find_named(json_object_get(in, "workloads"),
		    json_string_value(v)) != NULL);
		for (j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(json_string_value(v),
			    json_string_value(json_array_get(fed, j))) != 0);
	}
	total = json_array_size(fed);
	if ((app = find_named(json_object_get(in, "apps"), name)) != NULL) {
		total = json_array_size(json_object_get(app, "fics"));
		json_array_foreach(fed, i, v)
			if (!is_string_in(json_object_get(app, "fics"),
			    json_string_value(v)))
				total++;
	}
	FUZZ_CHECK(total <= limit);
}

static void
check_role(json_t *in, json_t *out)
{
	const char *mech, *auth, *role, *scope;
	json_t *perms;
	struct xerr e;

	mech = json_string_value(json_object_get(out, "mechanism"));
	auth = json_string_value(json_object_get(json_object_get(in,
	    "customer"), "vault_auth"));
	FUZZ_CHECK(mech != NULL);
	FUZZ_CHECK(auth == NULL || strcmp(auth, mech) == 0);
	if (strcmp(mech, "rbac") == 0) {
		role = json_string_value(json_object_get(out, "role"));
		scope = json_string_value(json_object_get(out, "scope"));
		FUZZ_CHECK(role != NULL && scope != NULL);
		FUZZ_CHECK(valid_guid(json_string_value(json_object_get(out,
		    "role_id")), "role_id", &e) == 0);
		FUZZ_CHECK(strcmp(scope, "key") == 0 ||
		    strcmp(scope, "vault") == 0);
		FUZZ_CHECK(strstr(role, "Crypto") != NULL ||
		    strcmp(role, "Key Vault Administrator") == 0);
		FUZZ_CHECK(strcmp(role, "Key Vault Crypto Service Release "
		    "User") != 0);
		if (has_kind(in, "netapp"))
			FUZZ_CHECK(strcmp(role, "Key Vault Crypto Service "
			    "Encryption User") != 0);
		return;
	}
	FUZZ_CHECK(strcmp(mech, "access-policy") == 0);
	perms = json_object_get(out, "permissions");
	FUZZ_CHECK(json_is_array(perms) && json_array_size(perms) >= 1 &&
	    json_array_size(perms) <= 32);
	FUZZ_CHECK(is_string_in(perms, "all") ||
	    (is_string_in(perms, "get") && is_string_in(perms, "wrapKey") &&
	    is_string_in(perms, "unwrapKey")));
}

static void
check_versioning(json_t *in, json_t *out)
{
	static const struct {
		const char	*f;
		json_int_t	 min, max;
	} b[] = {
		{ "refresh", 1, 604800 }, { "revocation_check", 1, 86400 },
		{ "grace", 0, 7776000 }, { "cache_ttl", 0, 86400 },
		{ "cache_max", 0, 1000000 },
	};
	const char *mode, *ver;
	json_t *v;
	size_t i;

	mode = json_string_value(json_object_get(out, "mode"));
	FUZZ_CHECK(mode != NULL);
	ver = json_string_value(json_object_get(out, "version"));
	if (strcmp(mode, "pinned") == 0) {
		FUZZ_CHECK(!has_kind(in, "cosmosdb"));
		FUZZ_CHECK(ver != NULL && strlen(ver) == 32 &&
		    strspn(ver, "0123456789abcdefABCDEF") == 32);
	} else {
		FUZZ_CHECK(strcmp(mode, "auto") == 0);
		FUZZ_CHECK(json_object_get(out, "version") == NULL);
	}
	for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		v = json_object_get(out, b[i].f);
		FUZZ_CHECK(json_is_integer(v));
		FUZZ_CHECK(json_integer_value(v) >= b[i].min &&
		    json_integer_value(v) <= b[i].max);
	}
	if (has_kind(in, "storage") || has_kind(in, "storage-existing"))
		FUZZ_CHECK(json_integer_value(json_object_get(out,
		    "grace")) >= 86400);
}

static void
check_one(enum policy_kind k, json_t *input, json_t *result)
{
	json_t *in, *out, *again;
	struct xerr e;
	int rc;

	in = json_deep_copy(input);
	out = json_deep_copy(result);
	FUZZ_CHECK(in != NULL && out != NULL);
	memset(&e, 0, sizeof(e));
	rc = policy_verdict_check(set, k, in, out, &e);
	if (rc != 0) {
		FUZZ_CHECK(rc == -XTCMK_E_POLICY && e.code == XTCMK_E_POLICY);
		FUZZ_CHECK(e.msg[0] != '\0');
		goto out;
	}
	/* The check only reads its input. */
	FUZZ_CHECK(json_equal(in, input));
	FUZZ_CHECK(json_is_object(out));
	FUZZ_CHECK(json_object_get(out, "reason") == NULL ||
	    json_is_string(json_object_get(out, "reason")));
	switch (k) {
	case POLICY_PARTITION:
		check_partition(in, out);
		break;
	case POLICY_ROLE:
		check_role(in, out);
		break;
	default:
		check_versioning(in, out);
		break;
	}
	/* Normalising is idempotent. */
	again = json_deep_copy(out);
	FUZZ_CHECK(again != NULL);
	rc = policy_verdict_check(set, k, in, again, &e);
	if (rc != 0)
		fprintf(stderr, "second check refused: %s\n", e.msg);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(json_equal(again, out));
	json_decref(again);
out:
	json_decref(in);
	json_decref(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *j;
	size_t i;
	int k;

	j = json_loadb((const char *)data, size,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (j == NULL)
		return 0;
	for (k = 0; k < POLICY__COUNT; k++) {
		if (json_is_array(j) && json_array_size(j) == 2) {
			check_one(k, json_array_get(j, 0),
			    json_array_get(j, 1));
			continue;
		}
		for (i = 0; i < 3; i++)
			check_one(k, inputs[i], j);
	}
	json_decref(j);
	return 0;
}
