/*
 * test_registry.c - the durable registry on a real SQLite file: objects,
 * the 20-FIC limit (C check, trigger, concurrent writers), sticky
 * onboarding, logged moves, atomic failure, reopening, schema versions
 * and the consistency check.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "registry.h"
#include "registry_int.h"
#include "t.h"

#define TENANT	"72f988bf-86f1-41af-91ab-2d7cd011db47"

static char dir[256];
static char path[300];

static void
guid(char *buf, int kind, int i)
{
	snprintf(buf, 37, "%08x-0000-4000-8000-%012x", kind, i);
}

static int
add_workload(struct registry *r, const char *name, int i, struct xerr *e)
{
	char c[37], p[37];
	json_t *wl;
	int rc;

	guid(c, 1, i);
	guid(p, 2, i);
	wl = json_pack("{s:s, s:s, s:s, s:{s:s}}", "name", name,
	    "client_id", c, "principal_id", p, "labels", "region", "eu");
	rc = reg_workload_add(r, wl, e);
	json_decref(wl);
	return rc;
}

static json_t *
customer(const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:[s, s], s:{s:s}}",
	    "id", id, "tenant", "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
	    "key_uri", "https://Contoso.vault.azure.net/keys/cmk/",
	    "vault_auth", "rbac", "kinds", "host", "storage",
	    "labels", "tier", "gold");
}

static int
onboard(struct registry *r, const char *id, const char *app,
    json_t *federate, struct xerr *e)
{
	json_t *c = customer(id), *d, *in;
	int rc;

	d = json_pack("{s:s, s:{s:s}, s:O}", "app", app, "app_labels",
	    "region", "eu", "federate", federate);
	in = json_pack("{s:s}", "customer", id);
	rc = reg_customer_onboard(r, c, d, in, "sha256:abc", e);
	json_decref(c);
	json_decref(d);
	json_decref(in);
	return rc;
}

static long long
count(json_t *report, const char *table)
{
	return json_integer_value(json_object_get(json_object_get(report,
	    "counts"), table));
}

static void
test_objects(struct registry *r)
{
	struct xerr e;
	json_t *v, *a;
	unsigned long long g;

	g = reg_generation(r);
	ASSERT_EQ(add_workload(r, "wl.eu.1", 1, &e), 0);
	ASSERT_EQ(add_workload(r, "wl-eu-1", 2, &e), 0);
	ASSERT_INT(reg_generation(r), ==, g + 2);
	ASSERT_EQ(add_workload(r, "wl.eu.1", 3, &e), -XTCMK_E_EXISTS);
	ASSERT_CONTAINS(e.msg, "'wl.eu.1' exists already");
	ASSERT_EQ(add_workload(r, "wl-eu-x", 1, &e), -XTCMK_E_EXISTS);
	ASSERT_CONTAINS(e.msg, "principal id");
	ASSERT_EQ(add_workload(r, "-bad", 4, &e), -XTCMK_E_INVAL);
	ASSERT_INT(reg_generation(r), ==, g + 2);
	v = json_pack("{s:s, s:s, s:s}", "name", "wl-x", "client_id", "nope",
	    "principal_id", TENANT);
	ASSERT_EQ(reg_workload_add(r, v, &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "workload client_id");
	json_decref(v);
	v = json_pack("{s:s, s:s, s:s, s:s}", "name", "wl-x", "client_id",
	    TENANT, "principal_id", TENANT, "resource_id", "/x");
	ASSERT_EQ(reg_workload_add(r, v, &e), -XTCMK_E_INVAL);
	json_decref(v);
	v = json_pack("{s:s, s:s, s:s, s:{s:i}}", "name", "wl-x", "client_id",
	    TENANT, "principal_id", TENANT, "labels", "region", 1);
	ASSERT_EQ(reg_workload_add(r, v, &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "string value");
	json_decref(v);

	ASSERT_EQ(reg_workload_get(r, "wl.eu.1", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "principal_id")),
	    "00000002-0000-4000-8000-000000000001");
	ASSERT_STR(json_string_value(json_object_get(json_object_get(v,
	    "labels"), "region")), "eu");
	json_decref(v);
	ASSERT_EQ(reg_workload_get(r, "nope", &v, &e), -XTCMK_E_NOT_FOUND);
	ASSERT_CONTAINS(e.msg, "no workload 'nope'; list them with "
	    "`xtcmkctl workload list`");
	ASSERT_EQ(reg_workload_list(r, &a, &e), 0);
	ASSERT_EQ(json_array_size(a), 2);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 0),
	    "name")), "wl-eu-1");
	json_decref(a);

	v = json_pack("{s:s, s:{s:s}}", "name", "app-eu-1", "labels", "region",
	    "eu");
	ASSERT_EQ(reg_app_add(r, v, &e), 0);
	ASSERT_EQ(reg_app_add(r, v, &e), -XTCMK_E_EXISTS);
	json_decref(v);
	v = json_pack("{s:s, s:s}", "name", "app-bad", "client_id", "x");
	ASSERT_EQ(reg_app_add(r, v, &e), -XTCMK_E_INVAL);
	json_decref(v);
	ASSERT_EQ(reg_app_set_client_id(r, "app-eu-1",
	    "11111111-2222-3333-4444-AAAAAAAAAAAA", &e), 0);
	ASSERT_EQ(reg_app_set_client_id(r, "nope",
	    "11111111-2222-3333-4444-aaaaaaaaaaaa", &e), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_fic_add(r, "app-eu-1", "wl.eu.1", &e), 0);
	ASSERT_EQ(reg_fic_add(r, "app-eu-1", "wl-eu-1", &e), 0);
	g = reg_generation(r);
	ASSERT_EQ(reg_fic_add(r, "app-eu-1", "wl-eu-1", &e), 0);  /* no-op */
	ASSERT_INT(reg_generation(r), ==, g);
	ASSERT_EQ(reg_fic_add(r, "app-eu-1", "nope", &e), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_fic_add(r, "nope", "wl-eu-1", &e), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_fic_exists(r, "app-eu-1", "wl.eu.1", &e), 1);
	ASSERT_EQ(reg_fic_exists(r, "app-eu-1", "nope", &e), 0);

	ASSERT_EQ(reg_app_get(r, "app-eu-1", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "client_id")),
	    "11111111-2222-3333-4444-aaaaaaaaaaaa");
	ASSERT_EQ(json_integer_value(json_object_get(v, "fic_count")), 2);
	ASSERT_EQ(json_integer_value(json_object_get(v, "customers")), 0);
	a = json_object_get(v, "fics");
	ASSERT_STR(json_string_value(json_array_get(a, 0)), "wl-eu-1");
	ASSERT_STR(json_string_value(json_array_get(a, 1)), "wl.eu.1");
	/* "wl.eu.1" (added first) and "wl-eu-1" map to the same FIC name:
	 * the second gets a suffix. */
	a = json_object_get(v, "federated_credentials");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 0),
	    "name")), "xtcmk-wl-eu-1-2");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 1),
	    "name")), "xtcmk-wl-eu-1");
	json_decref(v);
	ASSERT_EQ(reg_app_get(r, "nope", &v, &e), -XTCMK_E_NOT_FOUND);
	ASSERT_CONTAINS(e.msg, "`xtcmkctl app list`");
	ASSERT_EQ(reg_workload_remove(r, "wl.eu.1", &e), -XTCMK_E_CONFLICT);
	ASSERT_EQ(reg_fic_remove(r, "app-eu-1", "wl.eu.1", &e), 0);
	ASSERT_EQ(reg_fic_remove(r, "app-eu-1", "wl.eu.1", &e),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_workload_remove(r, "wl.eu.1", &e), 0);
	ASSERT_EQ(reg_workload_remove(r, "wl.eu.1", &e), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(add_workload(r, "wl.eu.1", 1, &e), 0);
}

/* 20 FICs through reg_fic_add; the 21st refused. */
static void
test_fic_limit(struct registry *r)
{
	struct xerr e;
	char name[32];
	json_t *v;
	int i;

	v = json_pack("{s:s}", "name", "app-full");
	ASSERT_EQ(reg_app_add(r, v, &e), 0);
	json_decref(v);
	for (i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "wl-%02d", i);
		ASSERT_EQ(add_workload(r, name, 100 + i, &e), 0);
	}
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "wl-%02d", i);
		ASSERT_EQ(reg_fic_add(r, "app-full", name, &e), 0);
	}
	ASSERT_EQ(reg_fic_add(r, "app-full", "wl-20", &e), -XTCMK_E_CONFLICT);
	ASSERT_CONTAINS(e.msg, "application 'app-full' would hold 21 "
	    "federated credentials; Entra allows 20 per application");
	ASSERT_EQ(reg_fic_add(r, "app-full", "wl-00", &e), 0);
	ASSERT_EQ(reg_app_get(r, "app-full", &v, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(v, "fic_count")), 20);
	json_decref(v);
}

struct racer {
	struct registry	*r;
	int		 base, ok, full;
};

static void *
race(void *arg)
{
	struct racer *rc = arg;
	struct xerr e;
	char name[32];
	int i, n;

	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "wl-%02d", rc->base + i);
		n = reg_fic_add(rc->r, "app-race", name, &e);
		if (n == 0)
			rc->ok++;
		else if (n == -XTCMK_E_CONFLICT)
			rc->full++;
	}
	return NULL;
}

/* Three threads each try to add 10 FICs: exactly 20 land. */
static void
test_fic_race(struct registry *r)
{
	struct racer rc[3];
	pthread_t t[3];
	struct xerr e;
	json_t *v;
	int i;

	v = json_pack("{s:s}", "name", "app-race");
	ASSERT_EQ(reg_app_add(r, v, &e), 0);
	json_decref(v);
	for (i = 0; i < 3; i++) {
		rc[i] = (struct racer){ r, i * 7, 0, 0 };
		pthread_create(&t[i], NULL, race, &rc[i]);
	}
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	ASSERT_EQ(reg_app_get(r, "app-race", &v, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(v, "fic_count")), 20);
	json_decref(v);
	/* 24 distinct workloads (0-23, some twice), 20 slots. */
	ASSERT_EQ(rc[0].ok + rc[1].ok + rc[2].ok +
	    rc[0].full + rc[1].full + rc[2].full, 30);
	ASSERT_TRUE(rc[0].full + rc[1].full + rc[2].full >= 4);
}

static void
test_onboard(struct registry *r)
{
	struct xerr e;
	json_t *v, *before, *after, *fed, *c, *d;
	unsigned long long g;
	char name[32];
	int i;

	ASSERT_EQ(reg_check(r, &before, &e), 0);

	/* Fails atomically: unknown workload after a good one, new app. */
	fed = json_pack("[s, s]", "wl-eu-1", "wl-missing");
	g = reg_generation(r);
	ASSERT_EQ(onboard(r, "contoso", "app-new", fed, &e),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_CONTAINS(e.msg, "no workload 'wl-missing'");
	json_decref(fed);
	/* 21 FICs through onboarding: 19 workloads on a fresh app + 2. */
	fed = json_array();
	for (i = 0; i < 21; i++) {
		snprintf(name, sizeof(name), "wl-%02d", i);
		json_array_append_new(fed, json_string(name));
	}
	json_array_append_new(fed, json_string("wl-00"));	/* repeated */
	ASSERT_EQ(onboard(r, "contoso", "app-new", fed, &e),
	    -XTCMK_E_CONFLICT);
	ASSERT_CONTAINS(e.msg, "application 'app-new' would hold 21 "
	    "federated credentials; Entra allows 20 per application: "
	    "federate fewer workloads or open a new application");
	/* The full app cannot take one more either. */
	json_array_clear(fed);
	json_array_append_new(fed, json_string("wl-24"));
	ASSERT_EQ(onboard(r, "contoso", "app-full", fed, &e),
	    -XTCMK_E_CONFLICT);
	ASSERT_CONTAINS(e.msg, "would hold 21");
	/* A new app with no workload would serve nobody. */
	json_array_clear(fed);
	ASSERT_EQ(onboard(r, "contoso", "app-empty", fed, &e),
	    -XTCMK_E_CONFLICT);
	/* Bad inputs. */
	c = customer("contoso");
	json_object_set_new(c, "vault_auth", json_string("acl"));
	d = json_pack("{s:s, s:[s]}", "app", "app-eu-1", "federate",
	    "wl-eu-1");
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "vault_auth");
	json_object_set_new(c, "vault_auth", json_string("access-policy"));
	json_object_set_new(c, "kinds", json_pack("[s]", "blob"));
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e),
	    -XTCMK_E_INVAL);
	json_object_set_new(c, "kinds", json_pack("[s, s]", "host", "host"));
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e),
	    -XTCMK_E_INVAL);
	json_object_del(c, "kinds");
	json_object_set_new(c, "key_uri", json_string(
	    "http://contoso.vault.azure.net/keys/cmk"));
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "https");
	json_object_set_new(c, "key_uri", json_string(
	    "https://contoso.vault.azure.net/keys/cmk/"
	    "0698C2156C1A4E1DA5B6BAB6F6422FD6"));
	json_object_set_new(d, "federate", json_string("wl-eu-1"));
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e),
	    -XTCMK_E_INVAL);
	ASSERT_INT(reg_generation(r), ==, g);
	ASSERT_EQ(reg_check(r, &after, &e), 0);
	ASSERT_TRUE(json_equal(json_object_get(before, "counts"),
	    json_object_get(after, "counts")));
	ASSERT_EQ(reg_app_get(r, "app-new", &v, &e), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_customer_get(r, "contoso", &v, &e), -XTCMK_E_NOT_FOUND);
	ASSERT_CONTAINS(e.msg, "no customer 'contoso'; list them with "
	    "`xtcmkctl customer list`");
	json_decref(after);

	/* Success: versioned key, default kinds, policy hash NULL. */
	json_object_set_new(d, "federate", json_pack("[s]", "wl-eu-1"));
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e), 0);
	ASSERT_INT(reg_generation(r), ==, g + 1);
	ASSERT_EQ(reg_customer_get(r, "contoso", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "key_uri")),
	    "https://contoso.vault.azure.net/keys/cmk/"
	    "0698c2156c1a4e1da5b6bab6f6422fd6");
	ASSERT_STR(json_string_value(json_object_get(v, "tenant")), TENANT);
	ASSERT_STR(json_string_value(json_object_get(v, "app")), "app-eu-1");
	ASSERT_STR(json_string_value(json_array_get(json_object_get(v,
	    "kinds"), 0)), "host");
	ASSERT_TRUE(json_is_null(json_object_get(v, "policy_hash")));
	ASSERT_TRUE(json_integer_value(json_object_get(v, "created")) > 0);
	ASSERT_TRUE(json_integer_value(json_object_get(v, "assigned_at")) > 0);
	json_decref(v);

	/* Sticky: a second onboarding is refused, even to another app. */
	json_object_set_new(d, "app", json_string("app-other"));
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e),
	    -XTCMK_E_EXISTS);
	ASSERT_CONTAINS(e.msg, "on application 'app-eu-1'");
	ASSERT_CONTAINS(e.msg, "sticky");
	ASSERT_EQ(reg_app_get(r, "app-other", &v, &e), -XTCMK_E_NOT_FOUND);
	json_decref(c);
	json_decref(d);

	/* A new app made by onboarding, with labels and the FICs. */
	json_array_clear(fed);
	json_array_append_new(fed, json_string("wl-eu-1"));
	json_array_append_new(fed, json_string("wl.eu.1"));
	ASSERT_EQ(onboard(r, "fabrikam", "app-new", fed, &e), 0);
	ASSERT_EQ(reg_app_get(r, "app-new", &v, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(v, "fic_count")), 2);
	ASSERT_EQ(json_integer_value(json_object_get(v, "customers")), 1);
	ASSERT_STR(json_string_value(json_object_get(json_object_get(v,
	    "labels"), "region")), "eu");
	json_decref(v);
	ASSERT_EQ(reg_customer_get(r, "fabrikam", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "policy_hash")),
	    "sha256:abc");
	ASSERT_STR(json_string_value(json_object_get(v, "key_uri")),
	    "https://contoso.vault.azure.net/keys/cmk");
	ASSERT_STR(json_string_value(json_array_get(json_object_get(v,
	    "kinds"), 1)), "storage");
	json_decref(v);
	ASSERT_EQ(reg_assignment_get(r, "fabrikam", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(json_object_get(v,
	    "why"), "customer")), "fabrikam");
	/* The stored inputs are never read back (they can be megabytes). */
	ASSERT_TRUE(json_object_get(v, "inputs") == NULL);
	ASSERT_EQ(json_integer_value(json_object_get(v, "moves_total")), 0);
	ASSERT_STR(json_string_value(json_object_get(json_object_get(v,
	    "outputs"), "app")), "app-new");
	ASSERT_EQ(json_array_size(json_object_get(v, "moves")), 0);
	json_decref(v);
	json_decref(fed);
	ASSERT_EQ(reg_customer_list(r, &v, &e), 0);
	ASSERT_EQ(json_array_size(v), 2);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 0),
	    "id")), "contoso");
	json_decref(v);
	ASSERT_EQ(reg_app_list(r, &v, &e), 0);
	ASSERT_EQ(json_array_size(v), 4);
	json_decref(v);
	json_decref(before);

	/* The last FIC of an app with customers stays. */
	ASSERT_EQ(reg_fic_remove(r, "app-eu-1", "wl-eu-1", &e),
	    -XTCMK_E_CONFLICT);
	ASSERT_CONTAINS(e.msg, "last federated credential");
	/* Customers consented to this client id. */
	ASSERT_EQ(reg_app_set_client_id(r, "app-eu-1",
	    "99999999-2222-3333-4444-aaaaaaaaaaaa", &e), -XTCMK_E_CONFLICT);
}

static void
test_move(struct registry *r)
{
	struct xerr e;
	json_t *v, *m;
	unsigned long long g = reg_generation(r);

	ASSERT_EQ(reg_customer_move(r, "contoso", "app-eu-1", "x", "root", &e),
	    -XTCMK_E_CONFLICT);
	ASSERT_CONTAINS(e.msg, "already on");
	ASSERT_EQ(reg_customer_move(r, "nope", "app-new", "x", "root", &e),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_customer_move(r, "contoso", "nope", "x", "root", &e),
	    -XTCMK_E_NOT_FOUND);
	v = json_pack("{s:s}", "name", "app-bare");
	ASSERT_EQ(reg_app_add(r, v, &e), 0);
	json_decref(v);
	ASSERT_EQ(reg_customer_move(r, "contoso", "app-bare", "x", "root", &e),
	    -XTCMK_E_CONFLICT);
	ASSERT_CONTAINS(e.msg, "no federated credential");
	ASSERT_INT(reg_generation(r), ==, g + 1);

	ASSERT_EQ(reg_customer_move(r, "contoso", "app-new", "region merge",
	    "uid=0", &e), 0);
	ASSERT_INT(reg_generation(r), ==, g + 2);
	ASSERT_EQ(reg_customer_get(r, "contoso", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "app")), "app-new");
	json_decref(v);
	ASSERT_EQ(reg_assignment_get(r, "contoso", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "app")), "app-new");
	m = json_object_get(v, "moves");
	ASSERT_EQ(json_array_size(m), 1);
	m = json_array_get(m, 0);
	ASSERT_STR(json_string_value(json_object_get(m, "from")), "app-eu-1");
	ASSERT_STR(json_string_value(json_object_get(m, "to")), "app-new");
	ASSERT_STR(json_string_value(json_object_get(m, "reason")),
	    "region merge");
	ASSERT_STR(json_string_value(json_object_get(m, "actor")), "uid=0");
	json_decref(v);
	/* Now app-eu-1 serves nobody: its last FIC may go. */
	ASSERT_EQ(reg_app_get(r, "app-eu-1", &v, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(v, "customers")), 0);
	json_decref(v);

	/* Remove: gone, logged, and a re-onboarding starts a clean history. */
	ASSERT_EQ(reg_customer_remove(r, "contoso", "uid=0", &e), 0);
	ASSERT_EQ(reg_customer_remove(r, "contoso", "uid=0", &e),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_customer_get(r, "contoso", &v, &e), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(reg_assignment_get(r, "contoso", &v, &e),
	    -XTCMK_E_NOT_FOUND);
	v = json_pack("[s]", "wl-eu-1");
	ASSERT_EQ(onboard(r, "contoso", "app-eu-1", v, &e), 0);
	json_decref(v);
	ASSERT_EQ(reg_assignment_get(r, "contoso", &v, &e), 0);
	ASSERT_EQ(json_array_size(json_object_get(v, "moves")), 0);
	json_decref(v);
	ASSERT_EQ(reg_check(r, &v, &e), 0);
	ASSERT_EQ(count(v, "moves"), 2);
	json_decref(v);
	ASSERT_EQ(reg_moves_list(r, "contoso", &v, &e), 0);
	ASSERT_EQ(json_array_size(v), 2);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 0),
	    "op")), "move");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 1),
	    "op")), "remove");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 1),
	    "from")), "app-new");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 1),
	    "actor")), "uid=0");
	json_decref(v);
	ASSERT_EQ(reg_moves_list(r, NULL, &v, &e), 0);
	ASSERT_EQ(json_array_size(v), 2);
	json_decref(v);
	ASSERT_EQ(reg_moves_list(r, "fabrikam", &v, &e), 0);
	ASSERT_EQ(json_array_size(v), 0);
	json_decref(v);
}

/*
 * Walk a paged list `limit` at a time; every key once, in strictly
 * increasing order; returns the number of items and of pages.
 */
static size_t
walk(struct registry *r, int (*fn)(struct registry *, const char *, int,
    json_t **, int *, struct xerr *), const char *key, int limit,
    json_t *all, size_t *ret_pages)
{
	struct xerr e;
	json_t *items, *v;
	char after[200] = "";
	size_t i, n = 0, pages = 0;
	int more = 1;

	while (more) {
		if (fn(r, n ? after : NULL, limit, &items, &more, &e) != 0) {
			T_FAIL("page after '%s': %s", after, e.msg);
			break;
		}
		pages++;
		ASSERT_TRUE(json_array_size(items) <= (size_t)limit);
		if (more)
			ASSERT_EQ(json_array_size(items), (size_t)limit);
		json_array_foreach(items, i, v) {
			const char *k = json_string_value(json_object_get(v,
			    key));

			ASSERT_TRUE(k != NULL && (n == 0 || strcmp(k,
			    after) > 0));
			snprintf(after, sizeof(after), "%s", k ? k : "");
			json_array_append(all, v);
			n++;
		}
		json_decref(items);
		if (pages > 1000)
			break;
	}
	*ret_pages = pages;
	return n;
}

/*
 * customer.list's text pages (reg_customer_page_text) are byte for byte
 * the compact dump of reg_customer_page()'s items, for plain rows (from
 * the columns) and rows with quotes and backslashes in labels or no
 * policy hash (through the JSON row), in pages cut by limit or by bytes.
 */
static void
test_page_text(struct registry *r)
{
	json_t *items, *c, *d, *fed;
	struct xerr e;
	char buf[4096], last[130], *want, after[130];
	size_t used, runs = 0;
	int lim, more, wmore, bytes;

	fed = json_pack("[s]", "wl-eu-1");
	c = customer("text-quote");
	json_object_set_new(c, "labels", json_pack("{s:s, s:s}", "note",
	    "say \"hi\" \\o/", "tier", "gold"));
	d = json_pack("{s:s, s:O}", "app", "app-page-a", "federate", fed);
	ASSERT_EQ(reg_customer_onboard(r, c, d, NULL, NULL, &e), 0);
	json_decref(c);
	json_decref(d);
	json_decref(fed);
	for (bytes = 0; bytes < 2; bytes++)
		for (lim = 1; lim <= 9; lim += 4) {
			after[0] = '\0';
			do {
				buf[0] = '[';
				used = 1;
				ASSERT_EQ(reg_customer_page_text(r, after[0] ?
				    after : NULL, lim, buf, bytes ? 700 :
				    sizeof(buf) - 2, &used, last, sizeof(last),
				    &more, &e), 0);
				buf[used++] = ']';
				buf[used] = '\0';
				ASSERT_EQ(reg_customer_page(r, after[0] ? after :
				    NULL, lim, &items, &wmore, &e), 0);
				if (bytes) {
					/* Cut by bytes: a prefix of the page. */
					for (;;) {
						want = json_dumps(items,
						    JSON_COMPACT);
						if (want == NULL ||
						    strlen(want) <= used ||
						    json_array_size(items) < 2)
							break;
						free(want);
						json_array_remove(items,
						    json_array_size(items) - 1);
						wmore = 1;
					}
					free(want);
				}
				want = json_dumps(items, JSON_COMPACT);
				ASSERT_STR(buf, want);
				ASSERT_EQ(more, wmore);
				free(want);
				json_decref(items);
				snprintf(after, sizeof(after), "%s", last);
				runs++;
			} while (more);
		}
	ASSERT_INT(runs, >, 10);
}

/*
 * Keyset paging: pages of every size return each object once in key
 * order, equal to the whole list; an application read by page has the
 * FICs and customer count reg_app_get() gives; the moves log pages by
 * its integer id; a long policy reason is cut in the assignment.
 */
static void
test_paging(struct registry *r)
{
	json_t *all, *whole, *v, *fed, *one, *c, *d, *in;
	struct xerr e;
	char id[32], reason[3000];
	size_t n, pages, i;
	int lim, more;

	fed = json_pack("[s]", "wl-eu-1");
	for (i = 0; i < 23; i++) {
		snprintf(id, sizeof(id), "page-%03zu", i);
		ASSERT_EQ(onboard(r, id, i % 3 ? "app-page-a" : "app-page-b",
		    fed, &e), 0);
	}
	json_decref(fed);
	ASSERT_EQ(reg_customer_list(r, &whole, &e), 0);
	for (lim = 1; lim <= 30; lim += 4) {
		all = json_array();
		n = walk(r, reg_customer_page, "id", lim, all, &pages);
		ASSERT_EQ(n, json_array_size(whole));
		/* limit + 1 rows are read, so no empty last page. */
		ASSERT_EQ(pages, (n + (size_t)lim - 1) / (size_t)lim);
		ASSERT_TRUE(json_equal(all, whole));
		json_decref(all);
	}
	json_decref(whole);
	ASSERT_EQ(reg_app_list(r, &whole, &e), 0);
	all = json_array();
	n = walk(r, reg_app_page, "name", 2, all, &pages);
	ASSERT_EQ(n, json_array_size(whole));
	ASSERT_TRUE(json_equal(all, whole));
	json_array_foreach(all, i, v) {
		ASSERT_EQ(reg_app_get(r, json_string_value(json_object_get(v,
		    "name")), &one, &e), 0);
		ASSERT_TRUE(json_equal(v, one));
		json_decref(one);
		if (strcmp(json_string_value(json_object_get(v, "name")),
		    "app-page-a") == 0) {
			ASSERT_EQ(json_integer_value(json_object_get(v,
			    "customers")), 15);
			ASSERT_EQ(json_integer_value(json_object_get(v,
			    "fic_count")), 1);
			ASSERT_STR(json_string_value(json_array_get(
			    json_object_get(v, "fics"), 0)), "wl-eu-1");
		}
	}
	json_decref(all);
	json_decref(whole);
	ASSERT_EQ(reg_workload_list(r, &whole, &e), 0);
	all = json_array();
	ASSERT_EQ(walk(r, reg_workload_page, "name", 1, all, &pages),
	    json_array_size(whole));
	ASSERT_TRUE(json_equal(all, whole));
	json_decref(all);
	json_decref(whole);
	/* Past the end: empty, no more. */
	ASSERT_EQ(reg_customer_page(r, "zzzz", 5, &v, &more, &e), 0);
	ASSERT_EQ(json_array_size(v), 0);
	ASSERT_EQ(more, 0);
	json_decref(v);

	/* The moves log by id: three moves, pages of one. */
	ASSERT_EQ(reg_customer_move(r, "page-000", "app-page-a", "r1", "t",
	    &e), 0);
	ASSERT_EQ(reg_customer_move(r, "page-000", "app-page-b", "r2", "t",
	    &e), 0);
	ASSERT_EQ(reg_customer_move(r, "page-001", "app-page-b", "r3", "t",
	    &e), 0);
	ASSERT_EQ(reg_moves_page(r, "page-000", 0, 1, &v, &more, &e), 0);
	ASSERT_EQ(json_array_size(v), 1);
	ASSERT_EQ(more, 1);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(v, 0),
	    "reason")), "r1");
	ASSERT_EQ(reg_moves_page(r, "page-000", json_integer_value(
	    json_object_get(json_array_get(v, 0), "id")), 5, &one, &more,
	    &e), 0);
	ASSERT_EQ(json_array_size(one), 1);
	ASSERT_EQ(more, 0);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(one, 0),
	    "reason")), "r2");
	json_decref(v);
	json_decref(one);
	ASSERT_EQ(reg_moves_page(r, NULL, 0, 1000, &v, &more, &e), 0);
	ASSERT_TRUE(json_array_size(v) >= 3);
	json_decref(v);
	ASSERT_EQ(reg_assignment_get(r, "page-000", &v, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(v, "moves_total")), 2);
	ASSERT_EQ(json_array_size(json_object_get(v, "moves")), 2);
	json_decref(v);

	/* A policy's long reason and big "why" stay out of the reply. */
	memset(reason, 'x', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	c = customer("page-long");
	d = json_pack("{s:s, s:[s], s:s, s:{s:s}}", "app", "app-page-a",
	    "federate", "wl-eu-1", "reason", reason, "why", "rule", "region");
	in = json_pack("{s:s}", "customer", "page-long");
	ASSERT_EQ(reg_customer_onboard(r, c, d, in, "sha256:abc", &e), 0);
	ASSERT_EQ(reg_assignment_get(r, "page-long", &v, &e), 0);
	ASSERT_TRUE(strlen(json_string_value(json_object_get(json_object_get(v,
	    "outputs"), "reason"))) < 1100);
	ASSERT_STR(json_string_value(json_object_get(json_object_get(
	    json_object_get(v, "outputs"), "why"), "rule")), "region");
	ASSERT_TRUE(json_object_get(v, "inputs") == NULL);
	json_decref(v);
	json_decref(c);
	json_decref(d);
	json_decref(in);
}

/* Run SQL on the file behind the registry's back. */
static int
raw(const char *file, const char *sql)
{
	sqlite3 *db;
	int rc;

	if (sqlite3_open(file, &db) != SQLITE_OK)
		return -1;
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static void
test_reopen_and_check(struct registry **rp)
{
	struct xerr e;
	struct stat sb;
	json_t *v, *p;
	char other[320];
	struct registry *r2;

	reg_close(*rp);
	*rp = NULL;
	ASSERT_EQ(stat(path, &sb), 0);
	ASSERT_EQ(sb.st_mode & 0777, 0600);
	ASSERT_EQ(reg_open(path, rp, &e), 0);
	ASSERT_EQ(reg_customer_get(*rp, "fabrikam", &v, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "app")), "app-new");
	json_decref(v);
	ASSERT_EQ(reg_app_get(*rp, "app-full", &v, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(v, "fic_count")), 20);
	json_decref(v);
	ASSERT_EQ(reg_check(*rp, &v, &e), 0);
	ASSERT_TRUE(json_is_true(json_object_get(v, "ok")));
	ASSERT_EQ(json_array_size(json_object_get(v, "problems")), 0);
	ASSERT_EQ(count(v, "customers"), 2);
	ASSERT_EQ(count(v, "assignments"), 2);
	ASSERT_EQ(count(v, "workloads"), 27);
	json_decref(v);
	reg_close(*rp);
	*rp = NULL;

	/* The trigger alone refuses a 21st FIC. */
	ASSERT_EQ(raw(path, "INSERT INTO fics VALUES ('app-full', 'wl-24', "
	    "'x-24', 0)"), SQLITE_CONSTRAINT);
	/* Break the invariants behind the registry's back. */
	ASSERT_EQ(raw(path, "DROP TRIGGER fics_max_insert;"
	    "INSERT INTO fics VALUES ('app-full', 'wl-24', 'x-24', 0);"
	    "INSERT INTO fics VALUES ('app-full', 'ghost', 'x-ghost', 0);"
	    "UPDATE assignments SET app = 'app-gone' "
	    "WHERE customer = 'fabrikam';"), SQLITE_OK);
	ASSERT_EQ(reg_open(path, rp, &e), 0);
	ASSERT_EQ(reg_check(*rp, &v, &e), 0);
	ASSERT_TRUE(json_is_false(json_object_get(v, "ok")));
	p = json_object_get(v, "problems");
	ASSERT_EQ(json_array_size(p), 5);
	ASSERT_STR(json_string_value(json_array_get(p, 0)),
	    "application app-full holds 22 federated credentials (at most 20)");
	ASSERT_STR(json_string_value(json_array_get(p, 1)),
	    "customer fabrikam is assigned to missing application app-gone");
	ASSERT_STR(json_string_value(json_array_get(p, 2)),
	    "application app-gone serves customers but holds no federated "
	    "credential");
	ASSERT_STR(json_string_value(json_array_get(p, 3)),
	    "FIC app-full -> ghost names a missing workload");
	ASSERT_CONTAINS(json_string_value(json_array_get(p, 4)),
	    "fics_max_insert is missing");
	json_decref(v);

	/* Newer schema and foreign files are refused. */
	snprintf(other, sizeof(other), "%s/newer.db", dir);
	ASSERT_EQ(reg_open(other, &r2, &e), 0);
	reg_close(r2);
	ASSERT_EQ(raw(other, "PRAGMA user_version = 99"), SQLITE_OK);
	r2 = NULL;
	ASSERT_EQ(reg_open(other, &r2, &e), -XTCMK_E_UNSUPPORTED);
	{
		char want[128];

		snprintf(want, sizeof(want), "schema version 99, newer than "
		    "this build understands (%d)", REG_SCHEMA_VERSION);
		ASSERT_CONTAINS(e.msg, want);
	}
	ASSERT_TRUE(r2 == NULL);
	snprintf(other, sizeof(other), "%s/foreign.db", dir);
	ASSERT_EQ(raw(other, "CREATE TABLE t (x)"), SQLITE_OK);
	ASSERT_EQ(reg_open(other, &r2, &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "not an xtcmk registry");
	snprintf(other, sizeof(other), "%s/none/reg.db", dir);
	ASSERT_EQ(reg_open(other, &r2, &e), -XTCMK_E_INTERNAL);
	ASSERT_CONTAINS(e.msg, "cannot open registry");
}

static void
rm_dir(void)
{
	struct dirent *d;
	char p[600];
	DIR *dp = opendir(dir);

	while (dp != NULL && (d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, d->d_name);
		unlink(p);
	}
	if (dp != NULL)
		closedir(dp);
	rmdir(dir);
}

/* Key usage accumulates per (customer, version) and keeps first/last. */
static void
test_usage(struct registry *r)
{
	unsigned long long gen = reg_generation(r);
	json_t *rows, *got = NULL;
	struct xerr e;

	rows = json_pack("[{s:s, s:s, s:i, s:i, s:i, s:i}, "
	    "{s:s, s:s, s:i, s:i, s:i, s:i}]",
	    "customer", "u1", "version", "aa", "wraps", 2, "unwraps", 3,
	    "first", 100, "last", 200,
	    "customer", "u1", "version", "bb", "wraps", 1, "unwraps", 0,
	    "first", 300, "last", 300);
	ASSERT_EQ(reg_usage_add(r, rows, &e), 0);
	json_decref(rows);
	rows = json_pack("[{s:s, s:s, s:i, s:i, s:i, s:i}]", "customer", "u1",
	    "version", "aa", "wraps", 1, "unwraps", 1, "first", 50, "last", 400);
	ASSERT_EQ(reg_usage_add(r, rows, &e), 0);
	json_decref(rows);
	ASSERT_EQ(reg_usage_get(r, "u1", &got, &e), 0);
	ASSERT_EQ(json_array_size(got), 2);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(got, 0),
	    "version")), "aa");
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(got, 0),
	    "wraps")), 3);
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(got, 0),
	    "unwraps")), 4);
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(got, 0),
	    "first")), 50);
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(got, 0),
	    "last")), 400);
	json_decref(got);
	/* Usage is bookkeeping: decision caches stay valid. */
	ASSERT_EQ(reg_generation(r), gen);
	ASSERT_EQ(reg_usage_get(r, "nobody", &got, &e), 0);
	ASSERT_EQ(json_array_size(got), 0);
	json_decref(got);
}

/*
 * Savepoints (one per customer in an import batch) keep the pages they
 * may have to restore in memory, not in a temporary file: a file cost
 * 15 writes per customer.  Sizes the agent relies on too.
 */
static void
test_settings(struct registry *r)
{
	struct xerr e;

	ASSERT_EQ(regi_num(r, &e, "PRAGMA temp_store", ""), 2);
	ASSERT_EQ(regi_num(r, &e, "PRAGMA synchronous", ""), 2);
	ASSERT_EQ(regi_num(r, &e, "PRAGMA cache_size", ""), -16384);
}

int
main(void)
{
	struct registry *r = NULL;
	struct xerr e;
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/xtcmk-reg-XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/registry.db", dir);
	ASSERT_EQ(reg_open(path, &r, &e), 0);
	if (r == NULL) {
		fprintf(stderr, "reg_open: %s\n", e.msg);
		rm_dir();
		return t_done();
	}
	test_settings(r);
	test_objects(r);
	test_fic_limit(r);
	test_fic_race(r);
	test_onboard(r);
	test_move(r);
	test_usage(r);
	test_reopen_and_check(&r);
	test_paging(r);
	test_page_text(r);
	reg_close(r);
	rm_dir();
	return t_done();
}
