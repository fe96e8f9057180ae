/*
 * test_import.c - onboarding at scale through the real agent: an
 * idempotent `customer add` (same fields: success with "already"; other
 * fields: EXISTS naming them; xtcmkctl exit codes), `customer.import`
 * with assigned, already and refused results in input order, a later
 * customer of the batch seeing the earlier ones' assignments, the
 * invariants afterwards (<= 20 FICs and <= customers_per_app customers
 * per application, one application per customer, the decided workloads
 * are the application's FICs), durability of an acknowledged batch
 * across SIGKILL, and the counters proving the scoped path was taken.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"
#include "harness.h"
#include "harness_admin.h"
#include "t.h"
#include "wire.h"
#include "xtcmk.h"

#define CALL_MS		20000
#define PER_APP		3
#define NBATCH		20

static struct agent A;
static struct xc_conn adm = { .fd = -1 };
static char extra[256];

static json_t *
admin(json_t *req, int *ret_status, char *msg, size_t msglen)
{
	return h_admin(A.sock, &adm, CALL_MS, req, ret_status, msg, msglen);
}

static json_t *
customer(const char *id, const char *region, int n)
{
	char tenant[40], uri[128];

	snprintf(tenant, sizeof(tenant),
	    "00000000-0000-4000-8000-%012d", n);
	snprintf(uri, sizeof(uri), "https://kv-%d.vault.local/keys/cmk", n);
	return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:{s:s}}", "id", id,
	    "tenant", tenant, "key_uri", uri, "vault_auth", "rbac",
	    "kinds", "host", "labels", "region", region);
}

static void
add_workloads(void)
{
	static const char *const wl[][2] = { { "wl-eu-1", "eu" },
	    { "wl-eu-2", "eu" }, { "wl-us-1", "us" } };
	char cid[40], pid[40];
	json_t *r;
	size_t i;

	for (i = 0; i < sizeof(wl) / sizeof(wl[0]); i++) {
		snprintf(cid, sizeof(cid), "10000000-0000-4000-8000-%012zu", i);
		snprintf(pid, sizeof(pid), "20000000-0000-4000-8000-%012zu", i);
		r = admin(json_pack("{s:s, s:{s:s, s:s, s:s, s:{s:s}}}", "cmd",
		    "workload.add", "workload", "name", wl[i][0], "client_id",
		    cid, "principal_id", pid, "labels", "region", wl[i][1]),
		    NULL, NULL, 0);
		ASSERT_TRUE(r != NULL);
		json_decref(r);
	}
}

static json_int_t
stat_of(const char *group, const char *key)
{
	json_t *st = admin(json_pack("{s:s}", "cmd", "stats"), NULL, NULL, 0);
	json_int_t v;

	v = json_integer_value(json_object_get(json_object_get(st, group),
	    key));
	json_decref(st);
	return v;
}

static void
check_idempotent_add(void)
{
	char msg[1024], out[2048];
	json_t *c, *r;
	int st;

	c = customer("solo", "eu", 1);
	r = admin(json_pack("{s:s, s:O}", "cmd", "customer.add", "customer",
	    c), &st, msg, sizeof(msg));
	ASSERT_TRUE(r != NULL);
	ASSERT_TRUE(json_object_get(r, "already") == NULL);
	ASSERT_STR(json_string_value(json_object_get(r, "app")),
	    "xtcmk-eu-1");
	json_decref(r);

	/* The reply was "lost": the retry succeeds, marked already. */
	r = admin(json_pack("{s:s, s:O}", "cmd", "customer.add", "customer",
	    c), &st, msg, sizeof(msg));
	ASSERT_TRUE(r != NULL);
	ASSERT_TRUE(json_is_true(json_object_get(r, "already")));
	ASSERT_STR(json_string_value(json_object_get(r, "app")),
	    "xtcmk-eu-1");
	json_decref(r);
	ASSERT_EQ(stat_of("onboarding", "already"), 1);
	ASSERT_EQ(stat_of("onboarding", "assigned"), 1);

	/* A different repeat is refused and says what differs. */
	json_object_set_new(json_object_get(c, "labels"), "tier", json_string(
	    "gold"));
	json_object_set_new(c, "vault_auth", json_string("access-policy"));
	r = admin(json_pack("{s:s, s:O}", "cmd", "customer.add", "customer",
	    c), &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_EXISTS);
	ASSERT_CONTAINS(msg, "vault_auth labels");
	ASSERT_CONTAINS(msg, "xtcmk-eu-1");
	json_decref(c);

	/* xtcmkctl: the same repeat exits 0, a different one 5. */
	ASSERT_EQ(ctl(&A, out, sizeof(out), "customer add solo --tenant "
	    "00000000-0000-4000-8000-000000000001 --key-uri "
	    "https://kv-1.vault.local/keys/cmk --label region=eu"), 0);
	ASSERT_CONTAINS(out, "customer solo already assigned to application "
	    "xtcmk-eu-1");
	ASSERT_EQ(ctl(&A, out, sizeof(out), "customer add solo --tenant "
	    "00000000-0000-4000-8000-000000000001 --key-uri "
	    "https://kv-1.vault.local/keys/cmk --label region=us"), 5);
	ASSERT_CONTAINS(out, "labels");
}

/* Every customer's decision names the workloads its app trusts. */
static void
check_invariants(json_t *ids)
{
	json_t *r, *apps, *a, *d, *id;
	size_t i;
	int total = 0;

	apps = admin(json_pack("{s:s, s:i}", "cmd", "app.list", "limit", 500),
	    NULL, NULL, 0);
	ASSERT_TRUE(apps != NULL);
	json_array_foreach(json_object_get(apps, "items"), i, a) {
		ASSERT_INT(json_integer_value(json_object_get(a, "fic_count")),
		    <=, 20);
		ASSERT_INT(json_integer_value(json_object_get(a, "customers")),
		    <=, PER_APP);
		total += (int)json_integer_value(json_object_get(a,
		    "customers"));
	}
	json_array_foreach(ids, i, id) {
		d = admin(json_pack("{s:s, s:O}", "cmd", "decide", "id", id),
		    NULL, NULL, 0);
		ASSERT_TRUE(d != NULL);
		r = admin(json_pack("{s:s, s:O}", "cmd", "app.show", "name",
		    json_object_get(d, "app")), NULL, NULL, 0);
		ASSERT_TRUE(r != NULL);
		ASSERT_TRUE(json_equal(json_object_get(d, "workloads"),
		    json_object_get(r, "fics")));
		json_decref(r);
		json_decref(d);
	}
	r = admin(json_pack("{s:s}", "cmd", "check"), NULL, NULL, 0);
	ASSERT_TRUE(json_is_true(json_object_get(r, "ok")));
	/* One application per customer: the counts add up. */
	ASSERT_EQ(total, json_integer_value(json_object_get(json_object_get(r,
	    "counts"), "assignments")));
	json_decref(r);
	json_decref(apps);
}

static void
check_import(void)
{
	json_t *batch = json_array(), *r, *res, *ids = json_array(), *c;
	char id[32], msg[1024];
	size_t i;
	int st, n;

	/* 0..NBATCH-1: new customers, eu and us alternating. */
	for (n = 0; n < NBATCH; n++) {
		snprintf(id, sizeof(id), "imp-%02d", n);
		json_array_append_new(batch, customer(id, n % 2 ? "us" : "eu",
		    100 + n));
	}
	/* A repeat of an earlier customer of this batch: already. */
	json_array_append_new(batch, customer("imp-00", "eu", 100));
	/* A repeat of the customer added before: already. */
	json_array_append_new(batch, customer("solo", "eu", 1));
	/* Bad input and a region without workloads: refused. */
	c = customer("imp-bad", "eu", 999);
	json_object_set_new(c, "tenant", json_string("not-a-guid"));
	json_array_append_new(batch, c);
	json_array_append_new(batch, customer("imp-mars", "mars", 998));
	/* A conflicting repeat within the batch: refused. */
	json_array_append_new(batch, customer("imp-01", "eu", 101));

	r = admin(json_pack("{s:s, s:O}", "cmd", "customer.import",
	    "customers", batch), &st, msg, sizeof(msg));
	ASSERT_TRUE(r != NULL);
	if (r == NULL) {
		fprintf(stderr, "import failed: %d %s\n", st, msg);
		return;
	}
	ASSERT_EQ(json_integer_value(json_object_get(r, "assigned")), NBATCH);
	ASSERT_EQ(json_integer_value(json_object_get(r, "already")), 2);
	ASSERT_EQ(json_integer_value(json_object_get(r, "refused")), 3);
	res = json_object_get(r, "results");
	ASSERT_EQ(json_array_size(res), json_array_size(batch));
	/* In input order. */
	json_array_foreach(res, i, c) {
		ASSERT_TRUE(json_equal(json_object_get(c, "customer"),
		    json_object_get(json_array_get(batch, i), "id")));
		if (i < NBATCH) {
			ASSERT_STR(json_string_value(json_object_get(c,
			    "status")), "assigned");
			json_array_append(ids, json_object_get(c, "customer"));
		}
	}
	/* PER_APP = 3: the eu customers imp-00, 02, 04 join solo's app
	 * until it is full, so a later customer saw the earlier ones. */
	ASSERT_STR(json_string_value(json_object_get(json_array_get(res, 0),
	    "app")), "xtcmk-eu-1");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(res, 2),
	    "app")), "xtcmk-eu-1");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(res, 4),
	    "app")), "xtcmk-eu-2");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(res, 1),
	    "app")), "xtcmk-us-1");
	c = json_array_get(res, NBATCH);
	ASSERT_STR(json_string_value(json_object_get(c, "status")), "already");
	ASSERT_STR(json_string_value(json_object_get(c, "app")), "xtcmk-eu-1");
	c = json_array_get(res, NBATCH + 1);
	ASSERT_STR(json_string_value(json_object_get(c, "status")), "already");
	c = json_array_get(res, NBATCH + 2);
	ASSERT_STR(json_string_value(json_object_get(c, "status")), "refused");
	ASSERT_EQ(json_integer_value(json_object_get(c, "code")),
	    XTCMK_E_INVAL);
	ASSERT_CONTAINS(json_string_value(json_object_get(c, "error")),
	    "tenant");
	c = json_array_get(res, NBATCH + 3);
	ASSERT_EQ(json_integer_value(json_object_get(c, "code")),
	    XTCMK_E_POLICY);
	ASSERT_CONTAINS(json_string_value(json_object_get(c, "error")),
	    "region=mars");
	c = json_array_get(res, NBATCH + 4);
	ASSERT_EQ(json_integer_value(json_object_get(c, "code")),
	    XTCMK_E_EXISTS);
	json_decref(r);
	json_array_append_new(ids, json_string("solo"));
	ASSERT_EQ(stat_of("onboarding", "import_batches"), 1);
	/* Every decision went through P.scope, none got the registry. */
	ASSERT_INT(stat_of("onboarding", "scoped"), >=, NBATCH + 1);
	ASSERT_EQ(stat_of("onboarding", "unscoped"), 0);
	check_invariants(ids);

	/* Acknowledged means durable: SIGKILL and look again. */
	agent_stop_sig(&A, SIGKILL);
	xc_close(&adm);
	ASSERT_EQ(agent_start(&A), 0);
	r = admin(json_pack("{s:s}", "cmd", "check"), NULL, NULL, 0);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(r,
	    "counts"), "customers")), NBATCH + 1);
	json_decref(r);
	check_invariants(ids);

	/* Over IMPORT_BATCH_MAX (1000). */
	json_array_clear(batch);
	for (n = 0; n <= 1000; n++)
		json_array_append_new(batch, json_pack("{s:s}", "id", "x"));
	r = admin(json_pack("{s:s, s:O}", "cmd", "customer.import",
	    "customers", batch), &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_TOOBIG);
	ASSERT_CONTAINS(msg, "at most 1000 per request");
	/* Results that would not fit one reply: nothing is imported, not
	 * even the valid first customer. */
	json_array_clear(batch);
	json_array_append_new(batch, customer("imp-lost", "eu", 700));
	for (n = 0; n < 999; n++) {
		snprintf(id, sizeof(id), "bad-%03d", n);
		json_array_append_new(batch, json_pack("{s:s}", "id", id));
	}
	r = admin(json_pack("{s:s, s:O}", "cmd", "customer.import",
	    "customers", batch), &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_TOOBIG);
	ASSERT_CONTAINS(msg, "nothing was imported");
	r = admin(json_pack("{s:s, s:s}", "cmd", "customer.show", "id",
	    "imp-lost"), &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_NOT_FOUND);

	/* Limits: not an array, an empty one. */
	r = admin(json_pack("{s:s, s:s}", "cmd", "customer.import",
	    "customers", "x"), &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_INVAL);
	ASSERT_CONTAINS(msg, "array of customer objects");
	json_decref(ids);
	json_decref(batch);
}

/*
 * A partition policy without P.scope sees the whole registry, which is
 * allowed only while it is small: past SCOPE_FULL_MAX (1000) workloads
 * onboarding fails with a message saying how to port the policy.
 */
static void
check_unscoped(void)
{
	char dir[300], path[700], cmd[1400], msg[1024], cid[40], pid[40];
	json_t *r;
	FILE *f;
	int i, st;

	snprintf(dir, sizeof(dir), "%s/unscoped", A.dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/policies/default/"
	    "role.lua' '%s/policies/default/versioning.lua' '%s'", dir,
	    h_srcdir(), h_srcdir(), dir);
	ASSERT_EQ(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/partition.lua", dir);
	ASSERT_TRUE((f = fopen(path, "w")) != NULL);
	fputs("return { name = \"unscoped\", decide = function(input)\n"
	    "  return { app = \"plain-1\", federate = "
	    "{ input.workloads[1].name } }\nend }\n", f);
	fclose(f);
	agent_stop(&A);
	xc_close(&adm);
	snprintf(A.policy_dir, sizeof(A.policy_dir), "%s", dir);
	ASSERT_EQ(agent_config(&A, NULL, extra), 0);
	ASSERT_EQ(agent_start(&A), 0);
	r = admin(json_pack("{s:s, s:o}", "cmd", "customer.add", "customer",
	    customer("plain-a", "eu", 500)), &st, msg, sizeof(msg));
	ASSERT_TRUE(r != NULL);
	ASSERT_STR(json_string_value(json_object_get(r, "app")), "plain-1");
	json_decref(r);
	ASSERT_EQ(stat_of("onboarding", "unscoped"), 1);
	ASSERT_EQ(stat_of("onboarding", "scoped"), 0);
	/* 1001 workloads in all. */
	for (i = 3; i <= 1000; i++) {
		snprintf(cid, sizeof(cid), "30000000-0000-4000-8000-%012d", i);
		snprintf(pid, sizeof(pid), "40000000-0000-4000-8000-%012d", i);
		snprintf(path, sizeof(path), "wl-zz-%04d", i);
		r = admin(json_pack("{s:s, s:{s:s, s:s, s:s}}", "cmd",
		    "workload.add", "workload", "name", path, "client_id",
		    cid, "principal_id", pid), &st, msg, sizeof(msg));
		if (r == NULL) {
			T_FAIL("workload.add %s: %s", path, msg);
			return;
		}
		json_decref(r);
	}
	r = admin(json_pack("{s:s, s:o}", "cmd", "customer.add", "customer",
	    customer("plain-b", "eu", 501)), &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_POLICY);
	ASSERT_CONTAINS(msg, "policy 'unscoped' (partition.lua) has no "
	    "P.scope");
	ASSERT_CONTAINS(msg, "add P.scope(customer, params)");
	ASSERT_EQ(stat_of("onboarding", "unscoped"), 1);
}

int
main(void)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);
	snprintf(extra, sizeof(extra), "[params]\ncustomers_per_app = %d\n",
	    PER_APP);
	ASSERT_EQ(agent_init(&A, NULL, extra), 0);
	A.die_with_test = 1;
	if (agent_start(&A) != 0) {
		T_FAIL("the agent did not start; see %s", A.log);
		return t_done();
	}
	add_workloads();
	check_idempotent_add();
	check_import();
	check_unscoped();
	xc_close(&adm);
	rc = agent_stop(&A);
	ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	{
		/* The agent's own sanitizer reports land in its log. */
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "grep -qE 'runtime error|Sanitizer' "
		    "'%s'", A.log);
		rc = system(cmd);
		ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
	}
	if (t_failures != 0)
		fprintf(stderr, "agent log: %s (kept: set XTCMK_KEEP=1)\n",
		    A.log);
	agent_cleanup(&A);
	return t_done();
}
