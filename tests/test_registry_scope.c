/*
 * test_registry_scope.c - partition scopes against a real SQLite file:
 * the registry's indexed resolution gives exactly what the offline
 * resolution (scope_apply, used by `policy test`) gives on the same
 * data; selector caps and refusals; the per-application counts kept by
 * triggers; batches with savepoints; and the migration of a schema-2
 * registry (full decision inputs stored) to schema 3.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "registry.h"
#include "scope.h"
#include "t.h"

static char dir[256];

static void
guid(char *buf, int kind, int i)
{
	snprintf(buf, 37, "%08x-0000-4000-8000-%012x", kind, i);
}

static void
workload(struct registry *r, const char *name, const char *region, int i)
{
	char c[37], p[37];
	struct xerr e;
	json_t *wl;

	guid(c, 1, i);
	guid(p, 2, i);
	wl = json_pack("{s:s, s:s, s:s, s:{s:s}}", "name", name,
	    "client_id", c, "principal_id", p, "labels", "region", region);
	ASSERT_EQ(reg_workload_add(r, wl, &e), 0);
	json_decref(wl);
}

static int
onboard(struct registry *r, const char *id, const char *app,
    const char *region, const char *dedicated, const char *wl,
    struct xerr *e)
{
	char tenant[37];
	json_t *c, *d;
	int rc;

	guid(tenant, 3, (int)strlen(id) * 7919 + id[strlen(id) - 1]);
	c = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "tenant", tenant,
	    "key_uri", "https://kvx.vault.local/keys/k", "vault_auth", "rbac");
	d = json_pack("{s:s, s:{s:s, s:s*}, s:[s]}", "app", app, "app_labels",
	    "region", region, "dedicated", dedicated, "federate", wl);
	rc = reg_customer_onboard(r, c, d, NULL, "h", e);
	if (rc < 0 && getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "onboard %s: %s\n", id, e->msg);
	json_decref(c);
	json_decref(d);
	return rc;
}

static json_t *
J(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	ASSERT_TRUE(j != NULL);
	return j;
}

static const char *
name_at(json_t *in, const char *list, size_t i)
{
	return json_string_value(json_object_get(json_array_get(
	    json_object_get(in, list), i), "name"));
}

/* Online (registry) and offline (fixture lists) resolution agree. */
static void
same_both_ways(struct registry *r, const char *doc_text, json_t **ret_online)
{
	struct scope sc;
	struct xerr e;
	json_t *doc = J(doc_text), *base, *all_apps, *all_wls, *fixture;
	json_t *online = NULL, *offline = NULL;
	size_t i;

	ASSERT_EQ(scope_parse(doc, &sc, &e), 0);
	base = json_pack("{s:{s:s}, s:i}", "customer", "id", "x", "limit", 20);
	ASSERT_EQ(reg_scope_resolve(r, &sc, base, &online, &e), 0);
	if (online == NULL)
		fprintf(stderr, "resolve: %s\n", e.msg);
	ASSERT_EQ(reg_app_list(r, &all_apps, &e), 0);
	ASSERT_EQ(reg_workload_list(r, &all_wls, &e), 0);
	fixture = json_pack("{s:{s:s}, s:i, s:o, s:o}", "customer", "id", "x",
	    "limit", 20, "apps", all_apps, "workloads", all_wls);
	ASSERT_EQ(scope_apply(&sc, fixture, &offline, &e), 0);
	if (getenv("T_VERBOSE") != NULL) {
		json_dumpf(json_object_get(online, "apps"), stderr, 0);
		json_dumpf(json_object_get(offline, "scope"), stderr, 0);
		json_dumpf(json_object_get(online, "scope"), stderr, 0);
		fprintf(stderr, "\n");
	}
	ASSERT_EQ(json_array_size(json_object_get(online, "apps")),
	    json_array_size(json_object_get(offline, "apps")));
	for (i = 0; i < json_array_size(json_object_get(online, "apps")); i++) {
		ASSERT_STR(name_at(online, "apps", i),
		    name_at(offline, "apps", i));
		/* The counts the registry keeps are the real ones. */
		ASSERT_EQ(json_integer_value(json_object_get(json_array_get(
		    json_object_get(online, "apps"), i), "customers")),
		    json_integer_value(json_object_get(json_array_get(
		    json_object_get(offline, "apps"), i), "customers")));
		ASSERT_TRUE(json_equal(json_object_get(json_array_get(
		    json_object_get(online, "apps"), i), "fics"),
		    json_object_get(json_array_get(json_object_get(offline,
		    "apps"), i), "fics")));
	}
	ASSERT_EQ(json_array_size(json_object_get(online, "workloads")),
	    json_array_size(json_object_get(offline, "workloads")));
	for (i = 0; i < json_array_size(json_object_get(online, "workloads"));
	    i++)
		ASSERT_STR(name_at(online, "workloads", i),
		    name_at(offline, "workloads", i));
	ASSERT_TRUE(json_equal(json_object_get(online, "scope"),
	    json_object_get(offline, "scope")));
	scope_clear(&sc);
	json_decref(doc);
	json_decref(base);
	json_decref(fixture);
	json_decref(offline);
	*ret_online = online;
}

static void
test_resolve(struct registry *r)
{
	struct xerr e;
	json_t *in;
	char id[32], app[64];
	int i, j;

	workload(r, "wl-eu-b", "eu", 1);
	workload(r, "wl-eu-a", "eu", 2);
	workload(r, "wl-us-a", "us", 3);
	/* eu apps 1..12 (10 and 11 before 2 by name, not by number), each
	 * with i % 4 customers; a dedicated numbered app; us apps. */
	for (i = 1; i <= 12; i++) {
		snprintf(app, sizeof(app), "xtcmk-eu-%d", i);
		for (j = 0; j < 1 + i % 4; j++) {
			snprintf(id, sizeof(id), "eu-%d-%d", i, j);
			ASSERT_EQ(onboard(r, id, app, "eu", NULL, "wl-eu-a",
			    &e), 0);
		}
	}
	ASSERT_EQ(onboard(r, "big", "xtcmk-eu-77", "eu", "big", "wl-eu-b",
	    &e), 0);
	ASSERT_EQ(onboard(r, "us-1", "xtcmk-us-1", "us", NULL, "wl-us-a",
	    &e), 0);

	/* With room for 3: apps with 1 or 2 customers, numeric order. */
	same_both_ways(r, "{\"apps\": {\"stem\": \"xtcmk-eu-\", \"labels\": "
	    "{\"region\": \"eu\", \"dedicated\": false}, \"room\": 3, "
	    "\"limit\": 4}, \"workloads\": {\"labels\": {\"region\": "
	    "\"eu\"}}}", &in);
	ASSERT_EQ(json_array_size(json_object_get(in, "apps")), 4);
	ASSERT_STR(name_at(in, "apps", 0), "xtcmk-eu-1");
	ASSERT_STR(name_at(in, "apps", 1), "xtcmk-eu-4");
	ASSERT_STR(name_at(in, "apps", 2), "xtcmk-eu-5");
	ASSERT_STR(name_at(in, "apps", 3), "xtcmk-eu-8");
	ASSERT_TRUE(json_is_true(json_object_get(json_object_get(in, "scope"),
	    "apps_more")));
	/* The highest number in use counts every numbered app. */
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(in,
	    "scope"), "max_number")), 77);
	ASSERT_STR(name_at(in, "workloads", 0), "wl-eu-a");
	ASSERT_EQ(json_array_size(json_object_get(in, "workloads")), 2);
	json_decref(in);

	/* By label only, by name, present/absent labels. */
	same_both_ways(r, "{\"apps\": {\"labels\": {\"region\": \"eu\", "
	    "\"dedicated\": true}}, \"app_names\": [\"xtcmk-us-1\", "
	    "\"nope\"], \"workloads\": {}}", &in);
	ASSERT_EQ(json_array_size(json_object_get(in, "apps")), 2);
	ASSERT_STR(name_at(in, "apps", 0), "xtcmk-us-1");
	ASSERT_STR(name_at(in, "apps", 1), "xtcmk-eu-77");
	ASSERT_EQ(json_array_size(json_object_get(in, "workloads")), 3);
	json_decref(in);

	/* Steady state: onboarding and resolving prepare nothing new. */
	{
		unsigned long long p0, u0, p1, u1;
		struct scope sc;
		json_t *doc = J("{\"apps\": {\"stem\": \"xtcmk-eu-\", "
		    "\"room\": 9}, \"workloads\": {\"labels\": "
		    "{\"region\": \"eu\"}}}"), *base = json_object(), *c;

		ASSERT_EQ(scope_parse(doc, &sc, &e), 0);
		ASSERT_EQ(onboard(r, "warm", "xtcmk-eu-30", "eu", NULL,
		    "wl-eu-a", &e), 0);
		ASSERT_EQ(reg_scope_resolve(r, &sc, base, &in, &e), 0);
		json_decref(in);
		ASSERT_EQ(reg_customer_get(r, "warm", &c, &e), 0);
		json_decref(c);
		reg_stmt_counts(r, &p0, &u0);
		for (i = 0; i < 20; i++) {
			snprintf(id, sizeof(id), "steady-%d", i);
			ASSERT_EQ(onboard(r, id, "xtcmk-eu-30", "eu", NULL,
			    "wl-eu-a", &e), 0);
			ASSERT_EQ(reg_scope_resolve(r, &sc, base, &in, &e), 0);
			json_decref(in);
			ASSERT_EQ(reg_customer_get(r, id, &c, &e), 0);
			json_decref(c);
		}
		reg_stmt_counts(r, &p1, &u1);
		ASSERT_EQ(p1 - p0, 0);
		ASSERT_INT(u1 - u0, >=, 20 * 10);
		for (i = 0; i < 20; i++) {
			snprintf(id, sizeof(id), "steady-%d", i);
			ASSERT_EQ(reg_customer_remove(r, id, "t", &e), 0);
		}
		ASSERT_EQ(reg_customer_remove(r, "warm", "t", &e), 0);
		scope_clear(&sc);
		json_decref(doc);
		json_decref(base);
	}

	/* A customer leaving frees room: the trigger-kept count follows. */
	ASSERT_EQ(reg_customer_remove(r, "eu-2-0", "t", &e), 0);
	ASSERT_EQ(reg_customer_move(r, "eu-3-0", "xtcmk-eu-1", "t", "t", &e),
	    0);
	same_both_ways(r, "{\"apps\": {\"stem\": \"xtcmk-eu-\", \"room\": 2, "
	    "\"limit\": 10}}", &in);
	/* eu-1 had 2 (+1 moved in = 3: full); eu-2 had 3 (-1 = 2: full at
	 * room 2); eu-3 had 4 - 1 = 3. */
	for (i = 0; i < (int)json_array_size(json_object_get(in, "apps"));
	    i++) {
		ASSERT_TRUE(strcmp(name_at(in, "apps", i), "xtcmk-eu-1") != 0);
		ASSERT_INT(json_integer_value(json_object_get(json_array_get(
		    json_object_get(in, "apps"), i), "customers")), <, 2);
	}
	json_decref(in);
}

static void
expect_refused(const char *text, const char *needle)
{
	struct scope sc;
	struct xerr e;
	json_t *doc = J(text);

	xerr_clear(&e);
	ASSERT_TRUE(scope_parse(doc, &sc, &e) < 0);
	ASSERT_EQ(e.code, XTCMK_E_POLICY);
	ASSERT_CONTAINS(e.msg, needle);
	json_decref(doc);
}

static void
test_caps(void)
{
	char buf[2048];
	size_t n;
	int i;

	expect_refused("{\"apps\": {\"labels\": {\"dedicated\": false}}}",
	    "needs a stem or a label equal to a value");
	expect_refused("{\"apps\": {\"stem\": \"a-\", \"limit\": 257}}",
	    "from 1 to 256");
	expect_refused("{\"workloads\": {\"limit\": 1001}}", "from 1 to 1000");
	expect_refused("{\"apps\": {\"stem\": \"a-1\"}}", "not ending in a "
	    "digit");
	expect_refused("{\"apps\": {\"stem\": \"a-\", \"rooms\": 3}}",
	    "unknown field 'rooms'");
	expect_refused("{\"everything\": true}", "unknown field");
	expect_refused("{\"apps\": {\"stem\": \"a-\", \"labels\": {\"r\": "
	    "[\"x\"]}}}", "must be a string, true (present) or false");
	n = (size_t)snprintf(buf, sizeof(buf), "{\"app_names\": [");
	for (i = 0; i <= SCOPE_NAMES_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"a%d\"",
		    i ? ", " : "", i);
	snprintf(buf + n, sizeof(buf) - n, "]}");
	expect_refused(buf, "at most 32");
}

static void
test_batch(struct registry *r)
{
	struct xerr e;
	json_t *c;
	char wl[32];
	int i;

	for (i = 0; i < 21; i++) {
		snprintf(wl, sizeof(wl), "wl-b-%02d", i);
		workload(r, wl, "b", 100 + i);
	}
	ASSERT_EQ(reg_batch_begin(r, &e), 0);
	ASSERT_EQ(onboard(r, "batch-1", "xtcmk-b-1", "b", NULL, "wl-b-00", &e),
	    0);
	/* Seen inside the batch, before the commit. */
	ASSERT_EQ(reg_customer_get(r, "batch-1", &c, &e), 0);
	json_decref(c);
	for (i = 1; i < 20; i++) {
		snprintf(wl, sizeof(wl), "wl-b-%02d", i);
		ASSERT_EQ(reg_fic_add(r, "xtcmk-b-1", wl, &e), 0);
	}
	/* The 21st FIC fails and undoes only its own customer. */
	ASSERT_TRUE(onboard(r, "batch-2", "xtcmk-b-1", "b", NULL, "wl-b-20",
	    &e) < 0);
	ASSERT_EQ(onboard(r, "batch-3", "xtcmk-b-1", "b", NULL, "wl-b-00", &e),
	    0);
	ASSERT_EQ(reg_batch_end(r, 1, &e), 0);
	ASSERT_EQ(reg_customer_get(r, "batch-1", &c, &e), 0);
	json_decref(c);
	ASSERT_TRUE(reg_customer_get(r, "batch-2", &c, &e) < 0);
	ASSERT_EQ(reg_customer_get(r, "batch-3", &c, &e), 0);
	json_decref(c);
	/* A batch rolled back leaves nothing. */
	ASSERT_EQ(reg_batch_begin(r, &e), 0);
	ASSERT_EQ(onboard(r, "batch-4", "xtcmk-b-2", "b", NULL, "wl-b-00", &e),
	    0);
	ASSERT_TRUE(reg_batch_end(r, 0, &e) < 0);
	ASSERT_TRUE(reg_customer_get(r, "batch-4", &c, &e) < 0);
	ASSERT_TRUE(reg_app_get(r, "xtcmk-b-2", &c, &e) < 0);
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		T_FAIL("%s: %s", sql, err ? err : "?");
	sqlite3_free(err);
}

/*
 * A registry as today's (schema 2) code writes it: the full decision
 * input stored with every assignment.  Opening it migrates to 3.
 */
static void
test_migration(void)
{
	char path[512], sql[512], *big;
	struct registry *r = NULL;
	struct scope sc;
	struct xerr e;
	sqlite3 *db;
	json_t *in, *a, *doc;
	struct stat sb;
	off_t before;
	size_t i;
	int n;

	snprintf(path, sizeof(path), "%s/v2.db", dir);
	ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
	exec_ok(db, "BEGIN");
	exec_ok(db, reg_migration_sql(1));
	exec_ok(db, reg_migration_sql(2));
	exec_ok(db, "PRAGMA user_version = 2");
	exec_ok(db, "PRAGMA application_id = 2020895602");
	exec_ok(db, "INSERT INTO workloads VALUES ('wl-eu', "
	    "'00000001-0000-4000-8000-000000000001', "
	    "'00000002-0000-4000-8000-000000000001', NULL, "
	    "'{\"region\":\"eu\"}', 1)");
	exec_ok(db, "INSERT INTO apps VALUES ('xtcmk-eu-1', NULL, "
	    "'{\"region\":\"eu\"}', 1), ('xtcmk-eu-2', NULL, "
	    "'{\"region\":\"eu\"}', 1)");
	exec_ok(db, "INSERT INTO fics VALUES ('xtcmk-eu-1', 'wl-eu', "
	    "'xtcmk-wl-eu', 1), ('xtcmk-eu-2', 'wl-eu', 'xtcmk-wl-eu', 1)");
	/* ~200 KB of input per assignment, as the whole-registry input
	 * grew. */
	big = malloc(200 * 1024);
	ASSERT_TRUE(big != NULL);
	n = snprintf(big, 200 * 1024, "{\"customer\":{\"id\":\"x\"},"
	    "\"workloads\":[{\"name\":\"wl-eu\"}],\"apps\":[");
	for (i = 0; n < 190 * 1024; i++)
		n += snprintf(big + n, 200 * 1024 - (size_t)n,
		    "%s{\"name\":\"xtcmk-eu-%zu\",\"fics\":[\"wl-eu\"]}",
		    i ? "," : "", i);
	snprintf(big + n, 200 * 1024 - (size_t)n, "]}");
	for (i = 0; i < 30; i++) {
		sqlite3_stmt *s;

		snprintf(sql, sizeof(sql), "INSERT INTO customers VALUES "
		    "('c%zu', '00000003-0000-4000-8000-000000000001', "
		    "'https://kvx.vault.local/keys/k', 'rbac', '[\"host\"]', "
		    "'{}', 1)", i);
		exec_ok(db, sql);
		ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO assignments "
		    "VALUES (?, ?, ?, '{\"app\":\"x\"}', 'h', 1)", -1, &s,
		    NULL), SQLITE_OK);
		snprintf(sql, sizeof(sql), "c%zu", i);
		sqlite3_bind_text(s, 1, sql, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 2, i < 20 ? "xtcmk-eu-1" : "xtcmk-eu-2",
		    -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, big, -1, SQLITE_STATIC);
		ASSERT_EQ(sqlite3_step(s), SQLITE_DONE);
		sqlite3_finalize(s);
	}
	exec_ok(db, "COMMIT");
	sqlite3_close(db);
	free(big);

	ASSERT_EQ(stat(path, &sb), 0);
	before = sb.st_size;
	ASSERT_INT(before, >, 30 * 190 * 1024);
	ASSERT_EQ(reg_open(path, &r, &e), 0);
	if (r == NULL) {
		fprintf(stderr, "migration: %s\n", e.msg);
		return;
	}
	/* The space of the dropped inputs is given back. */
	ASSERT_EQ(stat(path, &sb), 0);
	ASSERT_INT(sb.st_size, <, before / 10);
	/* The compact record replaced the input. */
	ASSERT_EQ(reg_assignment_get(r, "c3", &a, &e), 0);
	ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(a,
	    "why"), "migrated")), "compact record");
	ASSERT_INT(json_integer_value(json_object_get(json_object_get(a,
	    "why"), "apps")), >, 1000);
	{
		char *t = json_dumps(json_object_get(a, "why"), 0);

		ASSERT_INT(strlen(t), <, 300);
		free(t);
	}
	json_decref(a);
	/* Counts and label indexes built: scope resolution works. */
	doc = J("{\"apps\": {\"stem\": \"xtcmk-eu-\", \"labels\": "
	    "{\"region\": \"eu\"}, \"room\": 15}, \"workloads\": {\"labels\": "
	    "{\"region\": \"eu\"}}}");
	ASSERT_EQ(scope_parse(doc, &sc, &e), 0);
	a = json_object();
	ASSERT_EQ(reg_scope_resolve(r, &sc, a, &in, &e), 0);
	ASSERT_EQ(json_array_size(json_object_get(in, "apps")), 1);
	ASSERT_STR(name_at(in, "apps", 0), "xtcmk-eu-2");
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(
	    json_object_get(in, "apps"), 0), "customers")), 10);
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(
	    json_object_get(in, "apps"), 0), "fic_count")), 1);
	ASSERT_STR(name_at(in, "workloads", 0), "wl-eu");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(in,
	    "scope"), "max_number")), 2);
	scope_clear(&sc);
	json_decref(doc);
	json_decref(in);
	json_decref(a);
	ASSERT_EQ(reg_check(r, &a, &e), 0);
	ASSERT_TRUE(json_is_true(json_object_get(a, "ok")));
	json_decref(a);
	/* The check notices counts and index rows that went wrong. */
	ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
	exec_ok(db, "UPDATE apps SET customers = 99 WHERE name = "
	    "'xtcmk-eu-2'");
	exec_ok(db, "DELETE FROM workload_labels");
	sqlite3_close(db);
	ASSERT_EQ(reg_check(r, &a, &e), 0);
	ASSERT_TRUE(json_is_false(json_object_get(a, "ok")));
	{
		char *t = json_dumps(json_object_get(a, "problems"), 0);

		ASSERT_CONTAINS(t, "xtcmk-eu-2 counts 99 customers but "
		    "serves 10");
		ASSERT_CONTAINS(t, "wl-eu label region is missing from the "
		    "label index");
		free(t);
	}
	json_decref(a);
	reg_close(r);
	/* Opened again: nothing more to migrate. */
	ASSERT_EQ(reg_open(path, &r, &e), 0);
	reg_close(r);
}

/*
 * A workload selection is kept and reused (same array, same text, made
 * once) until the workloads table changes: then a resolution reads it
 * again, with the new workload, and drops the workload removed.
 */
static void
test_kept_workloads(struct registry *r)
{
	struct scope sc;
	struct xerr e;
	json_t *doc, *base, *in1 = NULL, *in2 = NULL, *in3 = NULL, *t1, *t2;
	json_t *in4 = NULL;
	char *dump;

	doc = J("{\"workloads\": {\"labels\": {\"region\": \"kept\"}}}");
	ASSERT_EQ(scope_parse(doc, &sc, &e), 0);
	base = json_pack("{s:{s:s}, s:i}", "customer", "id", "x", "limit", 20);
	workload(r, "wl-kept-1", "kept", 901);
	ASSERT_EQ(reg_scope_resolve(r, &sc, base, &in1, &e), 0);
	ASSERT_EQ(reg_scope_resolve(r, &sc, base, &in2, &e), 0);
	ASSERT_EQ(json_array_size(json_object_get(in1, "workloads")), 1);
	/* Kept: the very same array, and one text for it. */
	ASSERT_TRUE(json_object_get(in1, "workloads") ==
	    json_object_get(in2, "workloads"));
	t1 = reg_scope_text(r, json_object_get(in1, "workloads"));
	t2 = reg_scope_text(r, json_object_get(in2, "workloads"));
	ASSERT_TRUE(t1 != NULL && t1 == t2);
	dump = json_dumps(json_object_get(in1, "workloads"), JSON_COMPACT);
	ASSERT_STR(json_string_value(t1), dump);
	free(dump);
	ASSERT_TRUE(reg_scope_text(r, json_object_get(in1, "apps")) == NULL);
	/* A new workload: read again. */
	workload(r, "wl-kept-2", "kept", 902);
	ASSERT_EQ(reg_scope_resolve(r, &sc, base, &in3, &e), 0);
	ASSERT_EQ(json_array_size(json_object_get(in3, "workloads")), 2);
	ASSERT_STR(name_at(in3, "workloads", 1), "wl-kept-2");
	/* The old selection's text is gone with it. */
	ASSERT_TRUE(reg_scope_text(r, json_object_get(in1, "workloads")) ==
	    NULL);
	ASSERT_EQ(reg_workload_remove(r, "wl-kept-1", &e), 0);
	ASSERT_EQ(reg_scope_resolve(r, &sc, base, &in4, &e), 0);
	ASSERT_EQ(json_array_size(json_object_get(in4, "workloads")), 1);
	ASSERT_STR(name_at(in4, "workloads", 0), "wl-kept-2");
	json_decref(t1);
	json_decref(t2);
	json_decref(in1);
	json_decref(in2);
	json_decref(in3);
	json_decref(in4);
	json_decref(base);
	scope_clear(&sc);
	json_decref(doc);
}

int
main(void)
{
	char path[512];
	struct registry *r = NULL;
	struct xerr e;
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/xtcmk-regscope-XXXXXX",
	    t != NULL ? t : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/reg.db", dir);
	ASSERT_EQ(reg_open(path, &r, &e), 0);
	if (r == NULL)
		return t_done();
	test_resolve(r);
	test_kept_workloads(r);
	test_caps();
	test_batch(r);
	reg_close(r);
	test_migration();
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	(void)!system(path);
	return t_done();
}
