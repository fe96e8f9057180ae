/*
 * test_integration.c - the real xtcmkd, libxtcmk.so and xtcmkctl end to
 * end: 1,000 customers onboarded by the default policies, restarts and
 * crashes, decisions through the module, invariants through the CLI,
 * policy reloads, concurrency with threads and a forked child, malformed
 * frames on a raw socket and the decision log.
 *
 * One agent (tests/harness.h) on a temporary directory runs the whole
 * test; its config sets request_timeout = 1 and max_frame = 4096 so the
 * framing limits can be hit quickly, and points policy_dir at a copy of
 * policies/default that the reload checks overwrite.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "harness.h"
#include "harness_admin.h"
#include "t.h"
#include "wire.h"
#include "xtcmk.h"

#define NREGION		5
#define WL_PER_REGION	12
#define NCUST		1000
#define NCLI_ONBOARD	10	/* customers onboarded with xtcmkctl */
#define PER_APP		50
#define FIC_LIMIT	20
#define LAB_WL		21	/* one more than an app may federate */
#define NTHREADS	8
#define CALLS		500
#define MAX_FRAME	4096
#define CALL_MS		20000	/* generous: ASan builds are slow */
#define CTL_OUT_MAX	(4 * 1024 * 1024)
#define NAME_LEN	64

static const char *const regions[NREGION] = { "eu", "us", "asia", "au",
    "br" };
static const char *const served_region = "asia";
static const char *const served_wl = "wl-asia-03";

static struct agent A;
static struct xc_conn adm = { .fd = -1 };
static char *ctl_out;
static char app_of[NCUST][NAME_LEN];
static char extra_base[512];
static int workload_set;		/* agent runs as served_wl */
static int onboarded;		/* customers the agent acknowledged */

static char *slurp(const char *);

static void
progress(const char *fmt, ...)
{
	static struct timespec t0;
	struct timespec now;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (t0.tv_sec == 0)
		t0 = now;
	printf("[%6.1fs] ", (double)(now.tv_sec - t0.tv_sec) +
	    (double)(now.tv_nsec - t0.tv_nsec) / 1e9);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* --- customers and workloads of the test ---------------------------------- */

static const char *
cust_region(int i)
{
	return regions[i % NREGION];
}

static void
cust_id(int i, char *buf, size_t len)
{
	snprintf(buf, len, "cust-%04d", i);
}

static int
cust_index(const char *id)
{
	int i;

	if (strncmp(id, "cust-", 5) != 0)
		return -1;
	i = atoi(id + 5);
	return i >= 0 && i < NCUST ? i : -1;
}

static int
cust_pinned(int i)
{
	return i % 20 == 5;
}

static const char *
cust_auth(int i)
{
	return i % 4 == 1 ? "access-policy" : "rbac";
}

static const char *
cust_kinds(int i)
{
	switch (i % 4) {
	case 2:
		return "storage,netapp";
	case 3:
		return "cosmosdb";
	default:
		return "host";
	}
}

static void
cust_tenant(int i, char *buf, size_t len)
{
	snprintf(buf, len, "%08x-1111-4111-8111-%012x", i + 1, i);
}

static void
cust_uri(int i, char *buf, size_t len)
{
	snprintf(buf, len, "https://demo.vault.local/keys/k%04d%s", i,
	    cust_pinned(i) ? "/0123456789abcdef0123456789abcdef" : "");
}

static json_t *
cust_json(int i)
{
	char id[32], tenant[40], uri[128], kinds[64], *tok, *save = NULL;
	json_t *c, *k = json_array(), *labels;

	cust_id(i, id, sizeof(id));
	cust_tenant(i, tenant, sizeof(tenant));
	cust_uri(i, uri, sizeof(uri));
	snprintf(kinds, sizeof(kinds), "%s", cust_kinds(i));
	for (tok = strtok_r(kinds, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save))
		json_array_append_new(k, json_string(tok));
	labels = json_pack("{s:s}", "region", cust_region(i));
	if (cust_pinned(i))
		json_object_set_new(labels, "key_mode", json_string("pinned"));
	c = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "tenant",
	    tenant, "key_uri", uri, "vault_auth", cust_auth(i), "kinds", k,
	    "labels", labels);
	return c;
}

static void
wl_name(int r, int j, char *buf, size_t len)
{
	snprintf(buf, len, "wl-%s-%02d", regions[r], j + 1);
}

/* Region of a test workload name ("wl-REGION-NN"), or NULL. */
static const char *
wl_region(const char *name)
{
	char buf[NAME_LEN];
	int r, j;

	for (r = 0; r < NREGION; r++)
		for (j = 0; j < WL_PER_REGION; j++) {
			wl_name(r, j, buf, sizeof(buf));
			if (strcmp(buf, name) == 0)
				return regions[r];
		}
	return NULL;
}

/* --- talking to the agent ------------------------------------------------- */

/*
 * One admin request over the shared client code; the reply object on
 * success (status 0), else NULL with the status and the agent's message.
 * `req` is consumed.
 */
static json_t *
admin(json_t *req, int *ret_status, char *msg, size_t msglen)
{
	return h_admin(A.sock, &adm, CALL_MS, req, ret_status, msg, msglen);
}

static json_t *
admin_simple(const char *cmd)
{
	return admin(json_pack("{s:s}", "cmd", cmd), NULL, NULL, 0);
}

/* Every page of a list command. */
static json_t *
admin_list(const char *cmd)
{
	json_t *all = json_array(), *r, *after = json_null();

	for (;;) {
		r = admin(json_pack("{s:s, s:o, s:i}", "cmd", cmd, "after",
		    after, "limit", 100), NULL, NULL, 0);
		if (r == NULL) {
			json_decref(all);
			return NULL;
		}
		json_array_extend(all, json_object_get(r, "items"));
		if (!json_is_string(json_object_get(r, "next"))) {
			json_decref(r);
			return all;
		}
		after = json_incref(json_object_get(r, "next"));
		json_decref(r);
	}
}

/* xtcmkctl --json ...: the exit code; *ret the parsed stdout (or NULL). */
static int
ctl_json(json_t **ret, const char *fmt, ...)
{
	char args[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "--json %s", args);
	*ret = rc == 0 ? json_loads(ctl_out, 0, NULL) : NULL;
	return rc;
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *
status_hash(void)
{
	static char hash[80];
	json_t *st;

	hash[0] = '\0';
	if (ctl_json(&st, "status") == 0 && st != NULL)
		snprintf(hash, sizeof(hash), "%s",
		    jstr(json_object_get(st, "policy"), "hash"));
	json_decref(st);
	return hash;
}

static int
start_agent(void)
{
	xc_close(&adm);
	return agent_start(&A);
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* List field of a module decision equals a JSON array of strings? */
static int
same_list(const struct xtcmk_decision *d, enum xtcmk_field f, json_t *a)
{
	size_t i, n = xtcmk_decision_count(d, f);

	if (!json_is_array(a))
		return n == 0;
	if (n != json_array_size(a))
		return 0;
	for (i = 0; i < n; i++)
		if (!same_str(xtcmk_decision_item(d, f, i),
		    json_string_value(json_array_get(a, i))))
			return 0;
	return 1;
}

static uint64_t
jint(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

/* --- 1. onboarding -------------------------------------------------------- */

static void
add_workloads(void)
{
	char name[NAME_LEN], cid[40], pid[40], out[512];
	int r, j, k = 0, st, fails = 0;
	json_t *res;

	for (r = 0; r < NREGION; r++)
		for (j = 0; j < WL_PER_REGION; j++, k++) {
			wl_name(r, j, name, sizeof(name));
			snprintf(cid, sizeof(cid),
			    "%08x-2222-4222-8222-%012x", k + 1, k);
			snprintf(pid, sizeof(pid),
			    "%08x-3333-4333-8333-%012x", k + 1, k);
			if (j == 0) {
				/* One per region through the CLI. */
				st = ctl(&A, out, sizeof(out), "workload add "
				    "%s --client-id %s --principal-id %s "
				    "--label region=%s", name, cid, pid,
				    regions[r]);
				if (st != 0) {
					fails++;
					fprintf(stderr, "%s\n", out);
				}
				continue;
			}
			res = admin(json_pack("{s:s, s:{s:s, s:s, s:s, "
			    "s:{s:s}}}", "cmd", "workload.add", "workload",
			    "name", name, "client_id", cid, "principal_id",
			    pid, "labels", "region", regions[r]), &st, out,
			    sizeof(out));
			if (res == NULL) {
				fails++;
				fprintf(stderr, "workload %s: %s\n", name, out);
			}
			json_decref(res);
		}
	ASSERT_EQ(fails, 0);
}

static void
onboard_all(void)
{
	char id[32], tenant[40], uri[128], msg[512], out[1024];
	int i, st, fails = 0;
	json_t *res;

	for (i = 0; i < NCUST; i++) {
		if (i < NCLI_ONBOARD) {
			cust_id(i, id, sizeof(id));
			cust_tenant(i, tenant, sizeof(tenant));
			cust_uri(i, uri, sizeof(uri));
			st = ctl(&A, out, sizeof(out), "customer add %s "
			    "--tenant %s --key-uri %s --auth %s --kind %s "
			    "--label region=%s%s", id, tenant, uri,
			    cust_auth(i), cust_kinds(i), cust_region(i),
			    cust_pinned(i) ? " --label key_mode=pinned" : "");
			if (st != 0) {
				fails++;
				fprintf(stderr, "customer add %s: exit %d: "
				    "%s\n", id, st, out);
			} else {
				ASSERT_CONTAINS(out, "assigned to application");
				onboarded++;
			}
			continue;
		}
		res = admin(json_pack("{s:s, s:o}", "cmd", "customer.add",
		    "customer", cust_json(i)), &st, msg, sizeof(msg));
		if (res == NULL) {
			fails++;
			fprintf(stderr, "customer %d: status %d: %s\n", i, st,
			    msg);
		} else {
			onboarded++;
			if (strcmp(jstr(res, "customer"), "") == 0)
				fails++;
		}
		json_decref(res);
		if (i % 250 == 249)
			progress("onboarded %d customers", i + 1);
	}
	ASSERT_EQ(fails, 0);
	ASSERT_EQ(onboarded, NCUST);
}

/*
 * Keyset paging in the admin protocol: "offset" and a limit out of range
 * are refused with what to send instead; a page's "next" is the key of
 * its last item and the following page starts after it.
 */
static void
check_paging(void)
{
	char msg[512];
	json_t *r, *p2, *items;
	int st = 0;

	r = admin(json_pack("{s:s, s:i}", "cmd", "customer.list", "offset", 0),
	    &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_EQ(st, XTCMK_E_INVAL);
	ASSERT_CONTAINS(msg, "pass \"after\"");
	json_decref(r);
	r = admin(json_pack("{s:s, s:i}", "cmd", "app.list", "limit", 1001),
	    &st, msg, sizeof(msg));
	ASSERT_TRUE(r == NULL);
	ASSERT_CONTAINS(msg, "from 1 to 1000");
	json_decref(r);
	r = admin(json_pack("{s:s, s:i}", "cmd", "customer.list", "limit", 7),
	    NULL, NULL, 0);
	items = json_object_get(r, "items");
	ASSERT_EQ(json_array_size(items), 7);
	ASSERT_STR(json_string_value(json_object_get(r, "next")),
	    jstr(json_array_get(items, 6), "id"));
	p2 = admin(json_pack("{s:s, s:O, s:i}", "cmd", "customer.list",
	    "after", json_object_get(r, "next"), "limit", 1), NULL, NULL, 0);
	ASSERT_EQ(json_array_size(json_object_get(p2, "items")), 1);
	ASSERT_TRUE(strcmp(jstr(json_array_get(json_object_get(p2, "items"),
	    0), "id"), jstr(json_array_get(items, 6), "id")) > 0);
	json_decref(p2);
	json_decref(r);
}

/* Fill app_of[] from the registry (customer.list); number of customers. */
static int
read_assignments(char (*map)[NAME_LEN])
{
	json_t *all = admin_list("customer.list"), *c;
	size_t k;
	int i, n = 0;

	if (all == NULL)
		return -1;
	json_array_foreach(all, k, c) {
		if ((i = cust_index(jstr(c, "id"))) < 0)
			continue;
		snprintf(map[i], NAME_LEN, "%s", jstr(c, "app") ?
		    jstr(c, "app") : "");
		n++;
	}
	json_decref(all);
	return n;
}

static json_t *
find_app(json_t *apps, const char *name)
{
	json_t *a;
	size_t k;

	json_array_foreach(apps, k, a)
		if (same_str(jstr(a, "name"), name))
			return a;
	return NULL;
}

static void
check_partition(struct xtcmk *h)
{
	json_t *apps, *a, *w, *fics;
	struct xtcmk_decision *d;
	char id[32];
	size_t k, m;
	long long total = 0;
	int i, rc, bad_apps = 0, bad_region = 0, bad_wl = 0, bad_dec = 0;
	int over = 0, full = 0;

	rc = ctl_json(&apps, "app list");
	ASSERT_EQ(rc, 0);
	ASSERT_TRUE(json_is_array(apps));
	if (apps == NULL)
		return;
	/* 200 customers per region at 50 per application. */
	ASSERT_EQ(json_array_size(apps), NREGION * (NCUST / NREGION / PER_APP));
	json_array_foreach(apps, k, a) {
		const char *region = jstr(json_object_get(a, "labels"),
		    "region");

		fics = json_object_get(a, "fics");
		if (jint(a, "fic_count") > FIC_LIMIT ||
		    json_array_size(fics) > FIC_LIMIT)
			over++;
		if (jint(a, "fic_count") != json_array_size(fics))
			bad_apps++;
		if (json_array_size(fics) != WL_PER_REGION)
			bad_apps++;
		if (jint(a, "customers") > PER_APP)
			over++;
		if (jint(a, "customers") == PER_APP)
			full++;
		total += (long long)jint(a, "customers");
		json_array_foreach(fics, m, w)
			if (!same_str(wl_region(json_string_value(w)), region))
				bad_wl++;
	}
	ASSERT_EQ(over, 0);
	ASSERT_EQ(bad_apps, 0);
	ASSERT_EQ(bad_wl, 0);
	ASSERT_EQ(full, NREGION * (NCUST / NREGION / PER_APP));
	ASSERT_EQ(total, NCUST);

	ASSERT_EQ(read_assignments(app_of), NCUST);
	check_paging();
	for (i = 0; i < NCUST; i++) {
		a = find_app(apps, app_of[i]);
		if (a == NULL || !same_str(jstr(json_object_get(a, "labels"),
		    "region"), cust_region(i))) {
			bad_region++;
			continue;
		}
		cust_id(i, id, sizeof(id));
		if ((rc = xtcmk_decide(h, id, &d)) != XTCMK_OK) {
			bad_dec++;
			fprintf(stderr, "decide %s: %s: %s\n", id,
			    xtcmk_strerror(rc), xtcmk_last_error());
			continue;
		}
		/* Served only by the workloads federated with its app. */
		fics = json_object_get(a, "fics");
		if (!same_str(xtcmk_decision_str(d, XTCMK_F_APP), app_of[i]) ||
		    !same_list(d, XTCMK_F_WORKLOAD, fics) ||
		    xtcmk_decision_u64(d, XTCMK_F_SERVED, 9) != 0)
			bad_dec++;
		for (m = 0; m < xtcmk_decision_count(d, XTCMK_F_WORKLOAD); m++)
			if (!same_str(wl_region(xtcmk_decision_item(d,
			    XTCMK_F_WORKLOAD, m)), cust_region(i)))
				bad_wl++;
		xtcmk_decision_free(d);
	}
	ASSERT_EQ(bad_region, 0);
	ASSERT_EQ(bad_dec, 0);
	ASSERT_EQ(bad_wl, 0);
	json_decref(apps);

	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "check");
	ASSERT_EQ(rc, 0);
	ASSERT_CONTAINS(ctl_out, "consistent");
	rc = ctl_json(&a, "check");
	ASSERT_EQ(rc, 0);
	ASSERT_TRUE(json_is_true(json_object_get(a, "ok")));
	ASSERT_EQ(json_array_size(json_object_get(a, "problems")), 0);
	ASSERT_EQ(jint(json_object_get(a, "counts"), "customers"), NCUST);
	ASSERT_EQ(jint(json_object_get(a, "counts"), "workloads"),
	    NREGION * WL_PER_REGION);
	json_decref(a);
}

/* --- 2. restarts ---------------------------------------------------------- */

static int
map_diff(char (*a)[NAME_LEN], char (*b)[NAME_LEN])
{
	int i, n = 0;

	for (i = 0; i < NCUST; i++)
		if (a[i][0] == '\0' || strcmp(a[i], b[i]) != 0)
			n++;
	return n;
}

#define CRASH_MAX	400	/* customers the crash thread may add */

struct crasher {
	int	acked;			/* replies with status 0 */
	char	app[CRASH_MAX][NAME_LEN];
	int	stop;
	pthread_mutex_t mu;
};

/* Onboard crash-NNN customers one by one until the agent goes away. */
static void *
crasher_main(void *arg)
{
	struct crasher *cr = arg;
	struct xc_conn c = { .fd = -1 };
	char err[XC_ERR_MAX], id[32], *text;
	uint8_t *payload, *reply;
	struct xw_field f;
	struct xw_buf b;
	uint16_t status;
	size_t rlen;
	json_t *req, *r;
	int i, rc;

	if ((payload = malloc(XW_PAYLOAD_MAX)) == NULL)
		return NULL;
	if (xc_connect(A.sock, xc_deadline(CALL_MS), err, sizeof(err),
	    &c) < 0) {
		free(payload);
		return NULL;
	}
	for (i = 0; i < CRASH_MAX; i++) {
		snprintf(id, sizeof(id), "crash-%03d", i);
		req = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:{s:s}}}",
		    "cmd", "customer.add", "customer", "id", id, "tenant",
		    "cccccccc-1111-4111-8111-000000000001", "key_uri",
		    "https://demo.vault.local/keys/crash", "vault_auth", "rbac",
		    "labels", "region", "eu");
		text = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		xw_buf_init(&b, payload, XW_PAYLOAD_MAX);
		xw_put_str(&b, XT_JSON, text);
		free(text);
		reply = NULL;
		rc = xc_request(&c, XW_ADMIN, payload, b.len, XW_PAYLOAD_MAX,
		    xc_deadline(CALL_MS), err, sizeof(err), &status, &reply,
		    &rlen);
		if (rc < 0 || status != 0) {
			free(reply);
			break;
		}
		r = NULL;
		if (xw_find(reply, rlen, XT_JSON, &f) == 1)
			r = json_loadb((const char *)f.val, f.len, 0, NULL);
		free(reply);
		pthread_mutex_lock(&cr->mu);
		snprintf(cr->app[i], NAME_LEN, "%s", jstr(r, "app") ?
		    jstr(r, "app") : "?");
		cr->acked = i + 1;
		pthread_mutex_unlock(&cr->mu);
		json_decref(r);
	}
	xc_close(&c);
	free(payload);
	return NULL;
}

/*
 * SIGKILL while customers are being onboarded: after a restart every
 * acknowledged assignment is there, with the application it was given.
 */
static void
check_crash_onboarding(void)
{
	static struct crasher cr;
	pthread_t tid;
	json_t *c;
	char id[32];
	int i, n, st, lost = 0, moved = 0;

	memset(&cr, 0, sizeof(cr));
	pthread_mutex_init(&cr.mu, NULL);
	ASSERT_EQ(pthread_create(&tid, NULL, crasher_main, &cr), 0);
	for (i = 0, n = 0; i < 3000 && n < 40; i++) {
		usleep(5000);
		pthread_mutex_lock(&cr.mu);
		n = cr.acked;
		pthread_mutex_unlock(&cr.mu);
	}
	st = agent_stop_sig(&A, SIGKILL);
	ASSERT_TRUE(WIFSIGNALED(st));
	pthread_join(tid, NULL);
	ASSERT_INT(cr.acked, >=, 40);
	ASSERT_EQ(start_agent(), 0);
	for (i = 0; i < cr.acked; i++) {
		snprintf(id, sizeof(id), "crash-%03d", i);
		c = admin(json_pack("{s:s, s:s}", "cmd", "customer.show", "id",
		    id), NULL, NULL, 0);
		if (c == NULL)
			lost++;
		else if (!same_str(jstr(json_object_get(c, "assignment"),
		    "app"), cr.app[i]))
			moved++;
		json_decref(c);
	}
	ASSERT_EQ(lost, 0);
	ASSERT_EQ(moved, 0);
	onboarded += cr.acked;
	/* The one in flight may or may not be there, never half. */
	ASSERT_EQ(ctl(&A, ctl_out, CTL_OUT_MAX, "check"), 0);
	c = admin_simple("check");
	onboarded += (int)jint(json_object_get(c, "counts"), "customers") -
	    NCUST - cr.acked;
	json_decref(c);
	pthread_mutex_destroy(&cr.mu);
	progress("SIGKILL while onboarding: %d acknowledged customers all "
	    "kept", cr.acked);
}

static void
check_restarts(struct xtcmk *h)
{
	static char after[NCUST][NAME_LEN];
	struct xtcmk_decision *d = NULL;
	int st, rc;

	st = agent_stop(&A);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ASSERT_EQ(start_agent(), 0);
	memset(after, 0, sizeof(after));
	ASSERT_EQ(read_assignments(after), NCUST);
	ASSERT_EQ(map_diff(app_of, after), 0);
	/* The module's pooled connection died with the agent. */
	rc = xtcmk_decide(h, "cust-0042", &d);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_STR(d != NULL ? xtcmk_decision_str(d, XTCMK_F_APP) : NULL,
	    app_of[42]);
	xtcmk_decision_free(d);
	progress("SIGTERM + restart: %d assignments identical", NCUST);

	st = agent_stop_sig(&A, SIGKILL);
	ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* Come back as one region's workload (used by the served checks). */
	ASSERT_EQ(agent_config(&A, served_wl, extra_base), 0);
	workload_set = 1;
	ASSERT_EQ(start_agent(), 0);
	memset(after, 0, sizeof(after));
	ASSERT_EQ(read_assignments(after), NCUST);
	ASSERT_EQ(map_diff(app_of, after), 0);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "check");
	ASSERT_EQ(rc, 0);
	progress("SIGKILL + restart: %d assignments identical, check clean",
	    NCUST);

	check_crash_onboarding();
	memset(after, 0, sizeof(after));
	ASSERT_EQ(read_assignments(after), NCUST);
	ASSERT_EQ(map_diff(app_of, after), 0);
}

/* --- 3. decisions through libxtcmk ---------------------------------------- */

static void
compare_decision(const struct xtcmk_decision *d, json_t *j, int i)
{
	json_t *role = json_object_get(j, "role");
	json_t *ver = json_object_get(j, "versioning");
	char id[32];

	cust_id(i, id, sizeof(id));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_CUSTOMER), id);
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_CUSTOMER), jstr(j,
	    "customer"));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_TENANT), jstr(j, "tenant"));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_APP), jstr(j, "app"));
	ASSERT_TRUE(same_str(xtcmk_decision_str(d, XTCMK_F_APP_CLIENT_ID),
	    jstr(j, "app_client_id")));
	ASSERT_TRUE(same_list(d, XTCMK_F_WORKLOAD,
	    json_object_get(j, "workloads")));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_SERVED, 9),
	    json_is_true(json_object_get(j, "served")));
	ASSERT_TRUE(same_str(xtcmk_decision_str(d, XTCMK_F_THIS_WORKLOAD),
	    jstr(j, "this_workload")));
	ASSERT_TRUE(same_list(d, XTCMK_F_KIND, json_object_get(j, "kinds")));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_ROLE_MECHANISM),
	    jstr(role, "mechanism"));
	ASSERT_TRUE(same_str(xtcmk_decision_str(d, XTCMK_F_ROLE_NAME),
	    jstr(role, "role")));
	ASSERT_TRUE(same_str(xtcmk_decision_str(d, XTCMK_F_ROLE_ID),
	    jstr(role, "role_id")));
	ASSERT_TRUE(same_str(xtcmk_decision_str(d, XTCMK_F_ROLE_SCOPE),
	    jstr(role, "scope")));
	ASSERT_TRUE(same_list(d, XTCMK_F_PERMISSION,
	    json_object_get(role, "permissions")));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_KEY_URI), jstr(j, "key_uri"));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_KEY_MODE), jstr(ver, "mode"));
	ASSERT_TRUE(same_str(xtcmk_decision_str(d, XTCMK_F_KEY_VERSION),
	    jstr(ver, "version")));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_REFRESH_S, 0),
	    jint(ver, "refresh"));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_REVOCATION_CHECK_S, 0),
	    jint(ver, "revocation_check"));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_GRACE_S, 0),
	    jint(ver, "grace"));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_CACHE_TTL_S, 0),
	    jint(ver, "cache_ttl"));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_CACHE_MAX, 0),
	    jint(ver, "cache_max"));
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_POLICY_HASH),
	    jstr(j, "policy_hash"));
	ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_ASSIGNED_AT, 0),
	    jint(j, "assigned_at"));
	ASSERT_TRUE(xtcmk_decision_u64(d, XTCMK_F_REFRESH_S, 0) > 0);

	/* What the default policies must have said for this customer. */
	if (strcmp(cust_auth(i), "access-policy") == 0) {
		ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_ROLE_MECHANISM),
		    "access-policy");
		ASSERT_EQ(xtcmk_decision_count(d, XTCMK_F_PERMISSION), 3);
	} else {
		ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_ROLE_MECHANISM),
		    "rbac");
		ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_ROLE_NAME),
		    strstr(cust_kinds(i), "netapp") != NULL ?
		    "Key Vault Crypto User" :
		    "Key Vault Crypto Service Encryption User");
		ASSERT_TRUE(xtcmk_decision_str(d, XTCMK_F_ROLE_ID) != NULL);
	}
	ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_KEY_MODE), cust_pinned(i) ?
	    "pinned" : "auto");
	if (cust_pinned(i))
		ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_KEY_VERSION),
		    "0123456789abcdef0123456789abcdef");
}

static void
check_module_decisions(struct xtcmk *h)
{
	static const int extra_sample[] = { 1, 2, 3, 5, 25, 45 };
	struct xtcmk_decision *d = NULL;
	json_t *j;
	char id[32];
	int i, k, rc, n = 0, bad = 0, served = 0;
	int sample[NCUST / 37 + 16], nsample = 0;

	for (i = 0; i < NCUST; i += 37)
		sample[nsample++] = i;
	for (k = 0; k < (int)(sizeof(extra_sample) / sizeof(extra_sample[0]));
	    k++)
		sample[nsample++] = extra_sample[k];
	for (k = 0; k < nsample; k++) {
		i = sample[k];
		cust_id(i, id, sizeof(id));
		rc = ctl_json(&j, "decide %s", id);
		ASSERT_EQ(rc, 0);
		rc = xtcmk_decide(h, id, &d);
		ASSERT_EQ(rc, XTCMK_OK);
		if (j != NULL && rc == XTCMK_OK)
			compare_decision(d, j, i);
		json_decref(j);
		xtcmk_decision_free(d);
		d = NULL;
		n++;
	}
	progress("module decisions match `xtcmkctl --json decide` for %d "
	    "customers", n);

	rc = xtcmk_decide(h, "nobody-here", &d);
	ASSERT_EQ(rc, XTCMK_E_NOT_FOUND);
	ASSERT_TRUE(d == NULL);
	ASSERT_CONTAINS(xtcmk_last_error(), "nobody-here");
	ASSERT_CONTAINS(xtcmk_last_error(), "customer");
	rc = xtcmk_decide(h, "bad id!", &d);
	ASSERT_EQ(rc, XTCMK_E_INVAL);
	ASSERT_CONTAINS(xtcmk_last_error(), "customer id");
	rc = xtcmk_decide(h, "", &d);
	ASSERT_EQ(rc, XTCMK_E_INVAL);
	ASSERT_TRUE(xtcmk_last_error()[0] != '\0');
	{
		char longid[XW_CUSTOMER_MAX + 2];

		memset(longid, 'a', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		ASSERT_EQ(xtcmk_decide(h, longid, &d), XTCMK_E_INVAL);
	}
	/* A good call after errors clears nothing it should not. */
	ASSERT_EQ(xtcmk_decide(h, "cust-0001", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	d = NULL;

	/* The agent runs as served_wl: served exactly for its region. */
	for (i = 0; i < NCUST; i++) {
		cust_id(i, id, sizeof(id));
		if (xtcmk_decide(h, id, &d) != XTCMK_OK) {
			bad++;
			continue;
		}
		if (xtcmk_decision_u64(d, XTCMK_F_SERVED, 9) !=
		    (strcmp(cust_region(i), served_region) == 0))
			bad++;
		if (!same_str(xtcmk_decision_str(d, XTCMK_F_THIS_WORKLOAD),
		    served_wl))
			bad++;
		served += xtcmk_decision_u64(d, XTCMK_F_SERVED, 0) == 1;
		xtcmk_decision_free(d);
		d = NULL;
	}
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(served, NCUST / NREGION);
	progress("workload = %s: served %d of %d customers, all in %s",
	    served_wl, served, NCUST, served_region);
}

/* --- 4. invariants through the CLI ---------------------------------------- */

static void
check_cli_invariants(struct xtcmk *h)
{
	char name[NAME_LEN], cid[40], pid[40], msg[512], lab_app[NAME_LEN];
	char other[NAME_LEN] = "", tenant[40], uri[128];
	struct xtcmk_decision *d = NULL;
	json_t *r, *apps, *a, *fics, *mv;
	size_t k;
	int j, rc, fails = 0, outsider = -1;

	/* A region with more workloads than an application may federate. */
	for (j = 0; j < LAB_WL; j++) {
		snprintf(name, sizeof(name), "wl-lab-%02d", j + 1);
		snprintf(cid, sizeof(cid), "%08x-4444-4444-8444-%012x", j + 1,
		    j);
		snprintf(pid, sizeof(pid), "%08x-5555-4555-8555-%012x", j + 1,
		    j);
		r = admin(json_pack("{s:s, s:{s:s, s:s, s:s, s:{s:s}}}", "cmd",
		    "workload.add", "workload", "name", name, "client_id", cid,
		    "principal_id", pid, "labels", "region", "lab"), NULL, msg,
		    sizeof(msg));
		if (r == NULL) {
			fails++;
			fprintf(stderr, "%s: %s\n", name, msg);
		}
		json_decref(r);
	}
	ASSERT_EQ(fails, 0);
	rc = ctl_json(&r, "customer add lab-1 --tenant "
	    "aaaaaaaa-1111-4111-8111-000000000001 --key-uri "
	    "https://demo.vault.local/keys/lab1 --label region=lab");
	ASSERT_EQ(rc, 0);
	onboarded += rc == 0;
	snprintf(lab_app, sizeof(lab_app), "%s", r ? jstr(r, "app") : "");
	ASSERT_EQ(json_array_size(json_object_get(r, "federate")), FIC_LIMIT);
	json_decref(r);
	rc = ctl_json(&a, "app show %s", lab_app);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(jint(a, "fic_count"), FIC_LIMIT);
	/* The one lab workload the policy left out. */
	fics = json_object_get(a, "fics");
	for (j = 0; j < LAB_WL && outsider < 0; j++) {
		snprintf(name, sizeof(name), "wl-lab-%02d", j + 1);
		outsider = j;
		json_array_foreach(fics, k, r)
			if (same_str(json_string_value(r), name))
				outsider = -1;
	}
	json_decref(a);
	ASSERT_TRUE(outsider >= 0);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "app fic add %s wl-lab-%02d",
	    lab_app, outsider + 1);
	ASSERT_EQ(rc, 5);
	ASSERT_CONTAINS(ctl_out, " 20 ");
	ASSERT_CONTAINS(ctl_out, "federated credential");
	ASSERT_CONTAINS(ctl_out, lab_app);
	if (getenv("XTCMK_VERBOSE") != NULL)
		fprintf(stderr, "21st FIC: %s", ctl_out);
	rc = ctl_json(&a, "app show %s", lab_app);
	ASSERT_EQ(jint(a, "fic_count"), FIC_LIMIT);
	json_decref(a);
	/* A hand-made application hits the same wall at the 21st. */
	ASSERT_EQ(ctl(&A, ctl_out, CTL_OUT_MAX, "app add hand-made --label "
	    "region=lab"), 0);
	for (j = 0, fails = 0; j < FIC_LIMIT; j++)
		fails += ctl(&A, NULL, 0, "app fic add hand-made wl-lab-%02d",
		    j + 1) != 0;
	ASSERT_EQ(fails, 0);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "app fic add hand-made wl-lab-%02d",
	    LAB_WL);
	ASSERT_EQ(rc, 5);
	ASSERT_CONTAINS(ctl_out, " 20 ");
	progress("21st FIC refused (exit %d)", rc);

	/* Sticky: a second add is refused, whatever it says. */
	cust_tenant(0, tenant, sizeof(tenant));
	cust_uri(0, uri, sizeof(uri));
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer add cust-0000 --tenant "
	    "%s --key-uri %s --label region=us", tenant, uri);
	ASSERT_EQ(rc, 5);
	ASSERT_CONTAINS(ctl_out, "sticky");
	ASSERT_CONTAINS(ctl_out, app_of[0]);
	rc = ctl_json(&r, "customer show cust-0000");
	ASSERT_EQ(rc, 0);
	ASSERT_STR(jstr(json_object_get(r, "assignment"), "app"), app_of[0]);
	ASSERT_EQ(json_array_size(json_object_get(json_object_get(r,
	    "assignment"), "moves")), 0);
	json_decref(r);

	/* Moves are explicit. */
	rc = ctl_json(&apps, "app list");
	ASSERT_EQ(rc, 0);
	json_array_foreach(apps, k, a)
		if (same_str(jstr(json_object_get(a, "labels"), "region"),
		    cust_region(0)) && !same_str(jstr(a, "name"), app_of[0]) &&
		    other[0] == '\0')
			snprintf(other, sizeof(other), "%s", jstr(a, "name"));
	json_decref(apps);
	ASSERT_TRUE(other[0] != '\0');
	ASSERT_EQ(ctl(&A, NULL, 0, "app add empty-app --label region=eu"), 0);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer move cust-0000 --to "
	    "empty-app --reason 'no fic'");
	ASSERT_EQ(rc, 5);
	ASSERT_CONTAINS(ctl_out, "federate");
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer move cust-0000 --to "
	    "no-such-app --reason 'nowhere'");
	ASSERT_EQ(rc, 4);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer move cust-0000 --to "
	    "%s --reason 'same app'", app_of[0]);
	ASSERT_EQ(rc, 5);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer move cust-0000 --to %s "
	    "--reason 'integration test move'", other);
	ASSERT_EQ(rc, 0);
	rc = ctl_json(&r, "customer show cust-0000");
	ASSERT_EQ(rc, 0);
	a = json_object_get(r, "assignment");
	ASSERT_STR(jstr(a, "app"), other);
	ASSERT_STR(jstr(json_object_get(r, "customer"), "app"), other);
	ASSERT_STR(jstr(json_object_get(r, "decision"), "app"), other);
	mv = json_object_get(a, "moves");
	ASSERT_EQ(json_array_size(mv), 1);
	ASSERT_STR(jstr(json_array_get(mv, 0), "from"), app_of[0]);
	ASSERT_STR(jstr(json_array_get(mv, 0), "to"), other);
	ASSERT_STR(jstr(json_array_get(mv, 0), "reason"),
	    "integration test move");
	json_decref(r);
	/* The decision cache follows the move at once. */
	rc = xtcmk_decide(h, "cust-0000", &d);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_STR(d ? xtcmk_decision_str(d, XTCMK_F_APP) : NULL, other);
	xtcmk_decision_free(d);
	snprintf(app_of[0], NAME_LEN, "%s", other);
	progress("sticky add refused, explicit move to %s recorded", other);

	/* Unknown customers: exit 4. */
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer show nobody-here");
	ASSERT_EQ(rc, 4);
	ASSERT_CONTAINS(ctl_out, "nobody-here");
	ASSERT_EQ(ctl(&A, NULL, 0, "decide nobody-here"), 4);
	ASSERT_EQ(ctl(&A, NULL, 0, "customer move nobody-here --to %s "
	    "--reason x", other), 4);
	ASSERT_EQ(ctl(&A, NULL, 0, "customer remove nobody-here"), 4);

	/* Bad input: exit 9 and the message names the field. */
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer add bad-1 --tenant "
	    "not-a-guid --key-uri https://demo.vault.local/keys/b1 "
	    "--label region=eu");
	ASSERT_EQ(rc, 9);
	ASSERT_CONTAINS(ctl_out, "tenant");
	ASSERT_CONTAINS(ctl_out, "not-a-guid");
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer add bad-2 --tenant "
	    "aaaaaaaa-1111-4111-8111-000000000002 --key-uri "
	    "http://demo.vault.local/keys/b2 --label region=eu");
	ASSERT_EQ(rc, 9);
	ASSERT_CONTAINS(ctl_out, "key URI");
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer add bad-3 --tenant "
	    "aaaaaaaa-1111-4111-8111-000000000003 --key-uri "
	    "https://demo.vault.local/secrets/b3 --label region=eu");
	ASSERT_EQ(rc, 9);
	ASSERT_CONTAINS(ctl_out, "key URI");
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "customer add 'bad 4' --tenant "
	    "aaaaaaaa-1111-4111-8111-000000000004 --key-uri "
	    "https://demo.vault.local/keys/b4 --label region=eu");
	ASSERT_EQ(rc, 9);
	ASSERT_CONTAINS(ctl_out, "customer id");
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "workload add wl-bad --client-id "
	    "1234 --principal-id aaaaaaaa-1111-4111-8111-000000000005");
	ASSERT_EQ(rc, 9);
	ASSERT_CONTAINS(ctl_out, "client");
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "workload add wl-bad --client-id "
	    "aaaaaaaa-1111-4111-8111-000000000005 --principal-id xyz");
	ASSERT_EQ(rc, 9);
	ASSERT_CONTAINS(ctl_out, "principal");
	ASSERT_EQ(ctl(&A, NULL, 0, "customer show bad-1"), 4);
	ASSERT_EQ(ctl(&A, NULL, 0, "customer show bad-2"), 4);
	ASSERT_EQ(ctl(&A, NULL, 0, "workload show wl-bad"), 4);
	ASSERT_EQ(ctl(&A, ctl_out, CTL_OUT_MAX, "check"), 0);
	progress("CLI exit codes: 4 unknown, 5 conflict, 9 invalid");
}

/* --- 5. policy reload ----------------------------------------------------- */

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	if ((buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int
spit(const char *path, const char *text)
{
	char tmp[600];
	FILE *f;

	/* Replace atomically: the agent may read it at any time. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

static int
onboard_one(const char *id, const char *region, char *ret_hash)
{
	json_t *r;
	int rc;

	rc = ctl_json(&r, "customer add %s --tenant "
	    "bbbbbbbb-1111-4111-8111-000000000001 --key-uri "
	    "https://demo.vault.local/keys/%s --label region=%s", id, id,
	    region);
	if (rc == 0 && r != NULL) {
		snprintf(ret_hash, 80, "%s", jstr(r, "policy_hash"));
		onboarded++;
	}
	json_decref(r);
	return rc;
}

static int
wait_log(const char *needle, int count)
{
	char *log;
	const char *p;
	int i, n = 0;

	for (i = 0; i < 500; i++) {
		if ((log = slurp(A.log)) != NULL) {
			for (n = 0, p = log; (p = strstr(p, needle)) != NULL;
			    p++)
				n++;
			free(log);
		}
		if (n >= count)
			return n;
		usleep(20000);
	}
	return n;
}

static void
check_reload(struct xtcmk *h)
{
	char path[600], h1[80], h2[80], got[80], *orig, *text;
	struct xtcmk_decision *d = NULL;
	const char *p;
	json_t *st;
	size_t n;
	int rc, line, refusals;

	snprintf(path, sizeof(path), "%s/partition.lua", A.policy_dir);
	orig = slurp(path);
	ASSERT_TRUE(orig != NULL);
	if (orig == NULL)
		return;
	snprintf(h1, sizeof(h1), "%s", status_hash());
	ASSERT_EQ(strlen(h1), 64);
	ASSERT_EQ(onboard_one("reload-1", "eu", got), 0);
	ASSERT_STR(got, h1);

	/* A syntax error on a known line, after the header comment. */
	for (line = 1, p = orig; p < strstr(orig, "local place"); p++)
		line += *p == '\n';
	n = (size_t)(strstr(orig, "local place") - orig);
	text = malloc(strlen(orig) + 64);
	memcpy(text, orig, n);
	snprintf(text + n, strlen(orig) + 64 - n, "local x = = 1\n%s",
	    orig + n);
	ASSERT_EQ(spit(path, text), 0);
	free(text);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "reload");
	ASSERT_TRUE(rc != 0);
	if (getenv("XTCMK_VERBOSE") != NULL)
		fprintf(stderr, "reload (exit %d): %s", rc, ctl_out);
	snprintf(got, sizeof(got), "partition.lua:%d", line);
	ASSERT_CONTAINS(ctl_out, got);
	ASSERT_STR(status_hash(), h1);
	ASSERT_EQ(onboard_one("reload-2", "us", got), 0);
	ASSERT_STR(got, h1);
	rc = xtcmk_decide(h, "reload-2", &d);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_STR(d ? xtcmk_decision_str(d, XTCMK_F_POLICY_HASH) : NULL, h1);
	xtcmk_decision_free(d);
	d = NULL;
	snprintf(got, sizeof(got), "partition.lua:%d", line);
	progress("broken policy refused by `reload`, naming %s", got);

	/* The same through SIGHUP: logged, and the old set keeps serving. */
	refusals = wait_log("policy reload refused", 0);
	ASSERT_EQ(kill(A.pid, SIGHUP), 0);
	ASSERT_EQ(wait_log("policy reload refused", refusals + 1),
	    refusals + 1);
	text = slurp(A.log);
	snprintf(got, sizeof(got), "partition.lua:%d", line);
	ASSERT_CONTAINS(text, got);
	free(text);
	ASSERT_STR(status_hash(), h1);
	rc = ctl_json(&st, "stats");
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(jint(json_object_get(st, "policy"), "reloads_refused"), 2);
	json_decref(st);
	ASSERT_EQ(onboard_one("reload-3", "asia", got), 0);
	ASSERT_STR(got, h1);
	ASSERT_EQ(xtcmk_decide(h, "cust-0007", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	d = NULL;
	progress("SIGHUP with the broken policy: refused and logged");

	/* A valid change is taken, with a new hash. */
	text = malloc(strlen(orig) + 64);
	snprintf(text, strlen(orig) + 64, "%s-- changed by the test\n", orig);
	ASSERT_EQ(spit(path, text), 0);
	free(text);
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "reload");
	ASSERT_EQ(rc, 0);
	snprintf(h2, sizeof(h2), "%s", status_hash());
	ASSERT_EQ(strlen(h2), 64);
	ASSERT_TRUE(strcmp(h1, h2) != 0);
	ASSERT_EQ(onboard_one("reload-4", "au", got), 0);
	ASSERT_STR(got, h2);
	rc = xtcmk_decide(h, "cust-0007", &d);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_STR(d ? xtcmk_decision_str(d, XTCMK_F_POLICY_HASH) : NULL, h2);
	ASSERT_STR(d ? xtcmk_decision_str(d, XTCMK_F_APP) : NULL, app_of[7]);
	xtcmk_decision_free(d);
	d = NULL;

	/* A policy whose selftest fails is refused like a broken one. */
	p = strstr(orig, "\nreturn P");
	ASSERT_TRUE(p != NULL);
	if (p != NULL) {
		n = (size_t)(p - orig) + 1;
		text = malloc(strlen(orig) + 128);
		memcpy(text, orig, n);
		snprintf(text + n, strlen(orig) + 128 - n, "function "
		    "P.selftest() return false, \"broken on purpose\" end\n"
		    "%s", orig + n);
		ASSERT_EQ(spit(path, text), 0);
		free(text);
	}
	rc = ctl(&A, ctl_out, CTL_OUT_MAX, "reload");
	ASSERT_TRUE(rc != 0);
	ASSERT_CONTAINS(ctl_out, "selftest");
	ASSERT_CONTAINS(ctl_out, "broken on purpose");
	ASSERT_STR(status_hash(), h2);
	ASSERT_EQ(onboard_one("reload-5", "br", got), 0);
	ASSERT_STR(got, h2);
	progress("failing selftest refused; hash %.12s kept", h2);

	/* Leave the valid set in place for the rest. */
	ASSERT_EQ(spit(path, orig), 0);
	ASSERT_EQ(ctl(&A, NULL, 0, "reload"), 0);
	ASSERT_STR(status_hash(), h1);
	free(orig);
}

/* --- 6. concurrency ------------------------------------------------------- */

struct hammer {
	struct xtcmk	*h;
	int		 seed;
	int		 calls;
	int		 bad;
};

static int
hammer_run(struct xtcmk *h, int seed, int calls)
{
	struct xtcmk_decision *d;
	char id[32];
	int k, i, bad = 0;

	for (k = 0; k < calls; k++) {
		i = (seed * 131 + k * 7) % NCUST;
		cust_id(i, id, sizeof(id));
		d = NULL;
		if (xtcmk_decide(h, id, &d) != XTCMK_OK) {
			bad++;
			continue;
		}
		if (!same_str(xtcmk_decision_str(d, XTCMK_F_CUSTOMER), id) ||
		    !same_str(xtcmk_decision_str(d, XTCMK_F_APP), app_of[i]) ||
		    xtcmk_decision_u64(d, XTCMK_F_SERVED, 9) !=
		    (uint64_t)(strcmp(cust_region(i), served_region) == 0) ||
		    xtcmk_decision_count(d, XTCMK_F_WORKLOAD) == 0)
			bad++;
		xtcmk_decision_free(d);
	}
	return bad;
}

static void *
hammer_main(void *arg)
{
	struct hammer *hm = arg;

	hm->bad = hammer_run(hm->h, hm->seed, hm->calls);
	return NULL;
}

static void
check_concurrency(struct xtcmk *h)
{
	struct hammer hm[NTHREADS];
	pthread_t tid[NTHREADS];
	struct xtcmk_decision *d = NULL;
	int go[2], i, st, bad = 0;
	pid_t child;
	char c;

	/* The handle has pooled connections the child must not use. */
	ASSERT_EQ(xtcmk_decide(h, "cust-0003", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	d = NULL;
	ASSERT_EQ(pipe(go), 0);
	fflush(NULL);
	child = fork();
	ASSERT_TRUE(child != -1);
	if (child == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(100);
		bad = hammer_run(h, 99, CALLS);
		_exit(bad > 99 ? 99 : bad);
	}
	close(go[0]);
	for (i = 0; i < NTHREADS; i++) {
		hm[i].h = h;
		hm[i].seed = i;
		hm[i].calls = CALLS;
		hm[i].bad = 0;
		ASSERT_EQ(pthread_create(&tid[i], NULL, hammer_main, &hm[i]),
		    0);
	}
	c = 'g';
	ASSERT_EQ(write(go[1], &c, 1), 1);
	close(go[1]);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		bad += hm[i].bad;
	}
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(waitpid(child, &st, 0), child);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	/* The parent's connections survived the child's exit. */
	ASSERT_EQ(hammer_run(h, 5, 50), 0);
	progress("%d threads x %d calls + a forked child x %d: all correct",
	    NTHREADS, CALLS, CALLS);
}

/* --- 7. malformed frames -------------------------------------------------- */

static int
raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(A.sock) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, A.sock, strlen(A.sock));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
raw_send(int fd, const void *buf, size_t len)
{
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int
raw_frame(int fd, uint16_t type, uint32_t reqid, const void *payload,
    size_t len)
{
	uint8_t buf[XW_HDR_LEN + 1024];
	struct xw_hdr hdr = { .len = (uint32_t)len, .type = type,
	    .reqid = reqid };

	if (len > sizeof(buf) - XW_HDR_LEN)
		return -1;
	xw_hdr_encode(buf, &hdr);
	if (len > 0)
		memcpy(buf + XW_HDR_LEN, payload, len);
	return raw_send(fd, buf, XW_HDR_LEN + len);
}

/* Read n bytes within ms: n read, 0 at EOF before any, -1 timeout/error. */
static int
raw_read_n(int fd, uint8_t *buf, size_t n, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if (poll(&pfd, 1, ms) <= 0)
			return -1;
		r = recv(fd, buf + got, n - got, 0);
		if (r == 0)
			return got == 0 ? 0 : -1;
		if (r < 0)
			return -1;
		got += (size_t)r;
	}
	return (int)n;
}

/* One reply frame: 1 read (payload NUL-terminated), 0 EOF, -1 error. */
static int
raw_reply(int fd, struct xw_hdr *h, uint8_t *payload, size_t cap, int ms)
{
	uint8_t hb[XW_HDR_LEN];
	int rc;

	if ((rc = raw_read_n(fd, hb, sizeof(hb), ms)) <= 0)
		return rc;
	if (xw_hdr_decode(hb, XW_PAYLOAD_MAX, h) < 0 || h->len >= cap)
		return -1;
	if (h->len > 0 && raw_read_n(fd, payload, h->len, ms) != (int)h->len)
		return -1;
	payload[h->len] = '\0';
	return 1;
}

/* Does the agent close the connection within ms (reading what comes)? */
static int
raw_closed(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t sink[512];
	ssize_t r;

	for (;;) {
		if (poll(&pfd, 1, ms) <= 0)
			return 0;
		r = recv(fd, sink, sizeof(sink), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 1;
		if (r < 0)
			return 0;
	}
}

static const char *
reply_msg(const uint8_t *payload, size_t len)
{
	static char msg[512];

	xc_reply_message(payload, len, msg, sizeof(msg));
	return msg;
}

static int
raw_hello(int fd)
{
	uint8_t p[64], reply[1024];
	struct xw_buf b;
	struct xw_hdr h;

	xw_buf_init(&b, p, sizeof(p));
	xw_put_u64(&b, XT_VERSION_MIN, XW_VERSION);
	xw_put_u64(&b, XT_VERSION_MAX, XW_VERSION);
	if (raw_frame(fd, XW_HELLO, 1, b.data, b.len) < 0 ||
	    raw_reply(fd, &h, reply, sizeof(reply), 5000) != 1)
		return -1;
	return h.type == XW_HELLO && h.status == 0 && h.reqid == 1 ? 0 : -1;
}

static int
agent_answers(struct xtcmk *h)
{
	struct xtcmk_decision *d = NULL;
	int ok;

	ok = xtcmk_decide(h, "cust-0011", &d) == XTCMK_OK &&
	    same_str(xtcmk_decision_str(d, XTCMK_F_APP), app_of[11]);
	xtcmk_decision_free(d);
	return ok;
}

static void
check_frames(struct xtcmk *h)
{
	uint8_t hb[XW_HDR_LEN], p[256], reply[4096];
	struct xw_hdr hdr, rh;
	struct xw_buf b;
	struct timespec t0, t1;
	double waited;
	int fd, rc, i;

	/* Bad magic. */
	fd = raw_connect();
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(raw_hello(fd), 0);
	hdr = (struct xw_hdr){ .len = 0, .type = XW_PING, .reqid = 2 };
	xw_hdr_encode(hb, &hdr);
	hb[12] = 'Z';
	hb[13] = 'Z';
	ASSERT_EQ(raw_send(fd, hb, sizeof(hb)), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, XTCMK_E_PROTOCOL);
	ASSERT_CONTAINS(reply_msg(reply, rh.len), "magic");
	ASSERT_EQ(raw_closed(fd, 5000), 1);
	close(fd);
	ASSERT_TRUE(agent_answers(h));

	/* Oversized length, over max_frame and far over. */
	for (i = 0; i < 2; i++) {
		fd = raw_connect();
		ASSERT_TRUE(fd >= 0);
		ASSERT_EQ(raw_hello(fd), 0);
		hdr = (struct xw_hdr){ .len = i == 0 ? MAX_FRAME + 1 :
		    0xfffffff0u, .type = XW_DECIDE, .reqid = 3 };
		xw_hdr_encode(hb, &hdr);
		ASSERT_EQ(raw_send(fd, hb, sizeof(hb)), 0);
		rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
		ASSERT_EQ(rc, 1);
		ASSERT_EQ(rh.status, XTCMK_E_TOOBIG);
		ASSERT_CONTAINS(reply_msg(reply, rh.len), "max_frame");
		ASSERT_EQ(raw_closed(fd, 5000), 1);
		close(fd);
		ASSERT_TRUE(agent_answers(h));
	}

	/* The first frame must be HELLO. */
	fd = raw_connect();
	ASSERT_TRUE(fd >= 0);
	xw_buf_init(&b, p, sizeof(p));
	xw_put_str(&b, XT_CUSTOMER, "cust-0001");
	ASSERT_EQ(raw_frame(fd, XW_DECIDE, 7, b.data, b.len), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, XTCMK_E_PROTOCOL);
	ASSERT_EQ(rh.reqid, 7);
	ASSERT_CONTAINS(reply_msg(reply, rh.len), "HELLO");
	ASSERT_TRUE(strstr((char *)reply, "cust-0001") == NULL);
	ASSERT_EQ(raw_closed(fd, 5000), 1);
	close(fd);
	ASSERT_TRUE(agent_answers(h));

	/* A truncated field: tag, a length of 100, 3 bytes. */
	fd = raw_connect();
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(raw_hello(fd), 0);
	memset(p, 0, sizeof(p));
	p[1] = XT_CUSTOMER;
	p[5] = 100;
	memcpy(p + XW_FIELD_HDR, "abc", 3);
	ASSERT_EQ(raw_frame(fd, XW_DECIDE, 8, p, XW_FIELD_HDR + 3), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, XTCMK_E_PROTOCOL);
	ASSERT_EQ(rh.reqid, 8);
	ASSERT_EQ(raw_closed(fd, 5000), 1);
	close(fd);
	ASSERT_TRUE(agent_answers(h));

	/* Garbage: whatever comes back, the connection ends. */
	fd = raw_connect();
	ASSERT_TRUE(fd >= 0);
	srand(42);
	for (i = 0; i < (int)sizeof(p); i++)
		p[i] = (uint8_t)rand();
	ASSERT_EQ(raw_send(fd, p, sizeof(p)), 0);
	ASSERT_EQ(raw_closed(fd, 5000), 1);
	close(fd);
	ASSERT_TRUE(agent_answers(h));

	/* Partial frames held open past request_timeout (1 s). */
	for (i = 0; i < 2; i++) {
		fd = raw_connect();
		ASSERT_TRUE(fd >= 0);
		ASSERT_EQ(raw_hello(fd), 0);
		xw_buf_init(&b, p, sizeof(p));
		xw_put_str(&b, XT_CUSTOMER, "cust-0001");
		hdr = (struct xw_hdr){ .len = (uint32_t)b.len,
		    .type = XW_DECIDE, .reqid = 9 };
		xw_hdr_encode(hb, &hdr);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (i == 0)	/* half a header */
			ASSERT_EQ(raw_send(fd, hb, 8), 0);
		else {		/* a header and part of the payload */
			ASSERT_EQ(raw_send(fd, hb, sizeof(hb)), 0);
			ASSERT_EQ(raw_send(fd, p, b.len - 3), 0);
		}
		/* Meanwhile other clients are served. */
		ASSERT_TRUE(agent_answers(h));
		ASSERT_EQ(raw_closed(fd, 10000), 1);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		waited = (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		ASSERT_TRUE(waited >= 0.8);
		ASSERT_TRUE(waited < 8.0);
		close(fd);
		ASSERT_TRUE(agent_answers(h));
	}

	/* A header with another protocol version, or junk in status or
	 * flags: refused, connection closed. */
	for (i = 0; i < 3; i++) {
		fd = raw_connect();
		ASSERT_TRUE(fd >= 0);
		ASSERT_EQ(raw_hello(fd), 0);
		hdr = (struct xw_hdr){ .len = 0, .type = XW_PING, .reqid = 13,
		    .status = i == 1 ? 5 : 0 };
		xw_hdr_encode(hb, &hdr);
		if (i == 0)
			hb[14] = XW_VERSION + 7;
		if (i == 2)
			hb[15] = 0x80;
		ASSERT_EQ(raw_send(fd, hb, sizeof(hb)), 0);
		rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
		ASSERT_EQ(rc, 1);
		ASSERT_EQ(rh.status, i == 0 ? XTCMK_E_UNSUPPORTED :
		    XTCMK_E_PROTOCOL);
		ASSERT_EQ(raw_closed(fd, 5000), 1);
		close(fd);
	}
	/* A HELLO for protocol versions the agent does not speak. */
	fd = raw_connect();
	ASSERT_TRUE(fd >= 0);
	xw_buf_init(&b, p, sizeof(p));
	xw_put_u64(&b, XT_VERSION_MIN, XW_VERSION + 1);
	xw_put_u64(&b, XT_VERSION_MAX, XW_VERSION + 5);
	ASSERT_EQ(raw_frame(fd, XW_HELLO, 14, b.data, b.len), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, XTCMK_E_UNSUPPORTED);
	ASSERT_CONTAINS(reply_msg(reply, rh.len), "upgrade");
	ASSERT_EQ(raw_closed(fd, 5000), 1);
	close(fd);
	ASSERT_TRUE(agent_answers(h));

	/* Unknown message type: UNSUPPORTED, and the connection lives on. */
	fd = raw_connect();
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(raw_hello(fd), 0);
	ASSERT_EQ(raw_frame(fd, 77, 10, NULL, 0), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, XTCMK_E_UNSUPPORTED);
	ASSERT_EQ(rh.reqid, 10);
	ASSERT_EQ(rh.type, 77);
	ASSERT_EQ(raw_frame(fd, XW_PING, 11, NULL, 0), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, 0);
	ASSERT_EQ(rh.reqid, 11);
	xw_buf_init(&b, p, sizeof(p));
	xw_put_str(&b, XT_CUSTOMER, "cust-0011");
	ASSERT_EQ(raw_frame(fd, XW_DECIDE, 12, b.data, b.len), 0);
	rc = raw_reply(fd, &rh, reply, sizeof(reply), 5000);
	ASSERT_EQ(rc, 1);
	ASSERT_EQ(rh.status, 0);
	ASSERT_EQ(rh.reqid, 12);
	{
		struct xw_field f;

		ASSERT_EQ(xw_find(reply, rh.len, XT_APP, &f), 1);
		ASSERT_TRUE(f.len == strlen(app_of[11]) &&
		    memcmp(f.val, app_of[11], f.len) == 0);
	}
	close(fd);
	ASSERT_TRUE(agent_answers(h));
	progress("malformed frames refused; the agent keeps serving");
}

/* --- 8. the decision log -------------------------------------------------- */

static void
check_decision_log(void)
{
	char path[400], *line, *next, *text;
	json_t *st, *e, *v;
	unsigned long long w0 = 1, w1 = 0;
	int i, lines = 0, bad = 0, partitions = 0, errors = 0;
	const char *kind;

	/* Let the writer drain: two equal counts 200 ms apart. */
	for (i = 0; i < 50 && w0 != w1; i++) {
		w0 = w1;
		usleep(200000);
		st = admin_simple("stats");
		w1 = jint(json_object_get(st, "decision_log"), "written");
		ASSERT_EQ(jint(json_object_get(st, "decision_log"), "dropped"),
		    0);
		json_decref(st);
	}
	snprintf(path, sizeof(path), "%s/decisions.jsonl", A.state);
	text = slurp(path);
	ASSERT_TRUE(text != NULL);
	if (text == NULL)
		return;
	for (line = text; *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) == NULL) {
			bad++;	/* last line without its newline */
			break;
		}
		*next++ = '\0';
		lines++;
		e = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
		kind = jstr(e, "decision");
		if (!json_is_object(e) || kind == NULL ||
		    (strcmp(kind, "partition") != 0 &&
		    strcmp(kind, "role") != 0 &&
		    strcmp(kind, "versioning") != 0) ||
		    !json_is_string(json_object_get(e, "customer")) ||
		    !json_is_object(json_object_get(e,
		    strcmp(kind, "partition") == 0 ? "why" : "input")) ||
		    !json_is_string(json_object_get(e, "policy")) ||
		    !json_is_string(json_object_get(e, "policy_hash")) ||
		    strlen(jstr(e, "policy_hash")) != 64 ||
		    !json_is_integer(json_object_get(e, "time")) ||
		    json_integer_value(json_object_get(e, "time")) <
		    1600000000) {
			bad++;
			if (bad < 3)
				fprintf(stderr, "bad log line: %.300s\n", line);
			json_decref(e);
			continue;
		}
		v = json_object_get(e, "output");
		if (v == NULL) {
			if (!json_is_string(json_object_get(e, "error")))
				bad++;
			errors++;
		} else if (!json_is_object(v))
			bad++;
		if (strcmp(kind, "partition") == 0) {
			partitions++;
			if (v != NULL && !json_is_string(json_object_get(v,
			    "app")))
				bad++;
			/* The bounded record, not the input. */
			if (json_object_get(e, "input") != NULL ||
			    !json_is_array(json_object_get(json_object_get(e,
			    "why"), "candidates")) ||
			    json_array_size(json_object_get(json_object_get(e,
			    "why"), "candidates")) > 16 ||
			    strlen(line) > 8192)
				bad++;
		}
		json_decref(e);
	}
	free(text);
	ASSERT_EQ(bad, 0);
	ASSERT_INT(partitions, >=, onboarded);
	ASSERT_INT(lines, >=, 3 * onboarded);
	progress("decision log: %d lines, %d partition decisions for %d "
	    "customers, %d refusals", lines, partitions, onboarded, errors);
}

/* After everything: still no application above the limit, registry clean. */
static void
check_final_invariants(void)
{
	json_t *apps, *a, *r;
	size_t k;
	int rc, over = 0;

	rc = ctl_json(&apps, "app list");
	ASSERT_EQ(rc, 0);
	ASSERT_INT(json_array_size(apps), >, NREGION * (NCUST / NREGION /
	    PER_APP));
	json_array_foreach(apps, k, a)
		if (jint(a, "fic_count") > FIC_LIMIT ||
		    json_array_size(json_object_get(a, "fics")) > FIC_LIMIT)
			over++;
	ASSERT_EQ(over, 0);
	json_decref(apps);
	rc = ctl_json(&r, "check");
	ASSERT_EQ(rc, 0);
	ASSERT_TRUE(json_is_true(json_object_get(r, "ok")));
	ASSERT_EQ(jint(json_object_get(r, "counts"), "customers"), onboarded);
	json_decref(r);
}

int
main(void)
{
	char pol[512], cmd[1200];
	struct xtcmk *h = NULL;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if ((ctl_out = malloc(CTL_OUT_MAX)) == NULL)
		return 1;
	progress("integration: starting xtcmkd");
	ASSERT_EQ(agent_init(&A, NULL, NULL), 0);
	A.die_with_test = 1;
	/* The policies are a copy the reload checks may overwrite. */
	snprintf(pol, sizeof(pol), "%s/policies", A.dir);
	snprintf(cmd, sizeof(cmd), "cp -r '%s/policies/default' '%s'",
	    h_srcdir(), pol);
	ASSERT_EQ(system(cmd), 0);
	snprintf(A.policy_dir, sizeof(A.policy_dir), "%s", pol);
	snprintf(extra_base, sizeof(extra_base), "request_timeout = 1\n"
	    "max_frame = %d\n[params]\ncustomers_per_app = %d\n", MAX_FRAME,
	    PER_APP);
	ASSERT_EQ(agent_config(&A, NULL, extra_base), 0);
	rc = start_agent();
	ASSERT_EQ(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "the agent did not start; see %s\n", A.log);
		agent_cleanup(&A);
		return t_done();
	}
	ASSERT_EQ(xtcmk_open(A.sock, CALL_MS, &h), XTCMK_OK);

	/* 1. */
	add_workloads();
	onboard_all();
	check_partition(h);
	progress("1,000 customers in %d applications, <= %d FICs each, "
	    "served by their region only", NREGION * (NCUST / NREGION /
	    PER_APP), FIC_LIMIT);
	/* 2. */
	check_restarts(h);
	/* 3. */
	if (workload_set)
		check_module_decisions(h);
	/* 4. */
	check_cli_invariants(h);
	/* 5. */
	check_reload(h);
	/* 6. */
	check_concurrency(h);
	/* 7. */
	check_frames(h);
	/* 8. */
	check_decision_log();
	check_final_invariants();

	xtcmk_close(h);
	xc_close(&adm);
	rc = agent_stop(&A);
	ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	{
		/* The agent's own sanitizer reports land in its log. */
		char *log = slurp(A.log);

		ASSERT_TRUE(log != NULL);
		ASSERT_TRUE(log == NULL || strstr(log, "runtime error") ==
		    NULL);
		ASSERT_TRUE(log == NULL || strstr(log, "Sanitizer") == NULL);
		free(log);
	}
	if (t_failures != 0)
		fprintf(stderr, "agent log: %s (kept: set XTCMK_KEEP=1)\n",
		    A.log);
	agent_cleanup(&A);
	free(ctl_out);
	return t_done();
}
