/*
 * test_crash.c - crash consistency: the agent is killed with SIGKILL at a
 * random moment (5-300 ms into a round) while 8 client threads onboard
 * customers, move them, add FICs and rotate local keys, each over its own
 * admin connection.  Every operation whose reply (status 0) arrived is
 * recorded as acknowledged; after each restart the registry and keystore
 * must hold all of them:
 *
 *	- every acknowledged customer exactly once, on the application of
 *	  its last acknowledged onboarding or move; a refused onboarding
 *	  leaves no customer behind; an unanswered one may go either way;
 *	- no application above 20 FICs; every acknowledged FIC present;
 *	- every acknowledged key version present (xtcmkctl --json key show),
 *	  the current version one of the key's versions;
 *	- sqlite3 state/registry.db "PRAGMA integrity_check" says ok;
 *	- xtcmkctl check passes.
 *
 * XTCMK_CRASH_ITERATIONS sets the number of kill/restart rounds (default
 * 50; a nightly run can ask for thousands).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "harness.h"
#include "t.h"
#include "wire.h"

#define ITERATIONS_DEFAULT	50
#define NTHREADS		8
#define NROTATORS		2	/* of them: rotate keys across rounds */
#define NKEYS			4
#define NSPARE			25	/* workloads only for fic.add */
#define NREGION_WL		3	/* workloads labelled region=eu */
#define FIC_LIMIT		20
#define KILL_MIN_MS		5
#define KILL_MAX_MS		300
#define PACE_US			8000	/* between one thread's operations */
#define CUST_MAX		40000
#define APP_MAX			4096
#define FIC_ACK_MAX		8192
#define VER_MAX			4096
#define NAME_LEN		64
#define CALL_MS			10000
#define OUT_MAX			(256 * 1024)
#define VAULT			"https://demo.vault.local/keys/"
#define TENANT			"66666666-6666-4666-8666-666666666666"

enum cstate {
	C_UNUSED = 0,
	C_ACKED,		/* onboarded (or moved): app is certain */
	C_MAYBE,		/* onboarding unanswered: may exist */
	C_MOVING,		/* move unanswered: app or alt */
	C_REFUSED,		/* onboarding refused: must not exist */
};

struct cust {
	char		id[32];
	char		app[NAME_LEN];
	char		alt[NAME_LEN];
	int		state;
	int		owner;		/* thread that created it */
};

struct fic_ack {
	char		app[NAME_LEN];
	char		wl[NAME_LEN];
};

static struct agent A;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct cust custs[CUST_MAX];
static int ncust;
static char apps[APP_MAX][NAME_LEN];
static int napps;
static struct fic_ack fics[FIC_ACK_MAX];
static int nfics;
static char vers[NKEYS][VER_MAX][40];	/* acknowledged versions per key */
static int nvers[NKEYS];
static atomic_int stop, all_done;
static char *out;

/* Counters of the whole run. */
static long n_ack[4], n_refused[4], n_unknown[4];
static const char *const opname[4] = { "onboard", "move", "fic.add",
    "key.rotate" };

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One admin request on `c` (connecting first if needed): 1 acknowledged
 * (reply in *ret if wanted), 0 refused by the agent, -1 no reply, -2 not
 * sent (no agent to connect to).  `req` is consumed.
 */
static int
admin(struct xc_conn *c, json_t *req, json_t **ret)
{
	char err[XC_ERR_MAX];
	uint8_t *payload, *reply = NULL;
	struct xw_buf b;
	struct xw_field f;
	uint16_t status = 0;
	size_t rlen = 0;
	int64_t dl = xc_deadline(CALL_MS);
	char *text = json_dumps(req, JSON_COMPACT);
	int rc;

	json_decref(req);
	if (ret != NULL)
		*ret = NULL;
	if (text == NULL || (payload = malloc(XW_PAYLOAD_MAX)) == NULL) {
		free(text);
		return -1;
	}
	xw_buf_init(&b, payload, XW_PAYLOAD_MAX);
	xw_put_str(&b, XT_JSON, text);
	free(text);
	if (c->fd == -1 && xc_connect(A.sock, dl, err, sizeof(err), c) < 0) {
		free(payload);
		return -2;
	}
	rc = xc_request(c, XW_ADMIN, payload, b.len, XW_PAYLOAD_MAX,
		    dl, err, sizeof(err), &status, &reply, &rlen);
	free(payload);
	if (rc < 0) {
		xc_close(c);
		return -1;
	}
	if (status != 0 && getenv("XTCMK_CRASH_DEBUG") != NULL) {
		xc_reply_message(reply, rlen, err, sizeof(err));
		fprintf(stderr, "refused (%u): %s\n", status, err);
	}
	if (status == 0 && ret != NULL && xw_find(reply, rlen, XT_JSON,
	    &f) == 1)
		*ret = json_loadb((const char *)f.val, f.len, 0, NULL);
	free(reply);
	return status == 0 ? 1 : 0;
}

static const char *
jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static void
key_uri(int k, char *buf, size_t len)
{
	snprintf(buf, len, VAULT "crash%d", k);
}

/* --- the client threads ------------------------------------------------ */

static void
op_onboard(struct xc_conn *c, int t, unsigned *seed)
{
	char uri[128];
	json_t *r = NULL;
	struct cust *cu;
	int i, rc;

	pthread_mutex_lock(&mu);
	if (ncust >= CUST_MAX) {
		pthread_mutex_unlock(&mu);
		return;
	}
	i = ncust++;
	cu = &custs[i];
	snprintf(cu->id, sizeof(cu->id), "c%d-%05d", t, i);
	cu->state = C_MAYBE;
	cu->owner = t;
	pthread_mutex_unlock(&mu);
	key_uri((int)(rand_r(seed) % NKEYS), uri, sizeof(uri));
	rc = admin(c, json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:{s:s}}}", "cmd",
	    "customer.add", "customer", "id", cu->id, "tenant", TENANT,
	    "vault_auth", "rbac", "key_uri", uri, "labels", "region", "eu"),
	    &r);
	pthread_mutex_lock(&mu);
	if (rc == 1 && r != NULL && jstr(r, "app")[0] != '\0') {
		snprintf(cu->app, sizeof(cu->app), "%s", jstr(r, "app"));
		cu->state = C_ACKED;
		for (i = 0; i < napps; i++)
			if (strcmp(apps[i], cu->app) == 0)
				break;
		if (i == napps && napps < APP_MAX)
			snprintf(apps[napps++], NAME_LEN, "%s", cu->app);
		n_ack[0]++;
	} else if (rc == 0) {
		cu->state = C_REFUSED;
		n_refused[0]++;
	} else if (rc == -2)
		cu->state = C_REFUSED;	/* never sent */
	else
		n_unknown[0]++;
	pthread_mutex_unlock(&mu);
	json_decref(r);
}

static void
op_move(struct xc_conn *c, int t, unsigned *seed)
{
	char id[32], from[NAME_LEN], to[NAME_LEN];
	struct cust *cu = NULL;
	int i, tries, rc;

	pthread_mutex_lock(&mu);
	/* One of this thread's own acknowledged customers: no one else
	 * moves it, so its history is this thread's order. */
	for (tries = 0; tries < 20 && ncust > 0 && cu == NULL; tries++) {
		i = (int)(rand_r(seed) % (unsigned)ncust);
		if (custs[i].owner == t && custs[i].state == C_ACKED)
			cu = &custs[i];
	}
	if (cu == NULL || napps < 2) {
		pthread_mutex_unlock(&mu);
		return;
	}
	do
		snprintf(to, sizeof(to), "%s", apps[rand_r(seed) %
		    (unsigned)napps]);
	while (strcmp(to, cu->app) == 0);
	snprintf(id, sizeof(id), "%s", cu->id);
	snprintf(from, sizeof(from), "%s", cu->app);
	snprintf(cu->alt, sizeof(cu->alt), "%s", to);
	cu->state = C_MOVING;
	pthread_mutex_unlock(&mu);
	rc = admin(c, json_pack("{s:s, s:s, s:s, s:s}", "cmd",
	    "customer.move", "id", id, "to", to, "reason", "crash test"),
	    NULL);
	pthread_mutex_lock(&mu);
	if (rc == 1) {
		snprintf(cu->app, sizeof(cu->app), "%s", to);
		cu->state = C_ACKED;
		n_ack[1]++;
	} else if (rc == 0 || rc == -2) {
		cu->state = C_ACKED;	/* stays on `from` */
		n_refused[1] += rc == 0;
	} else
		n_unknown[1]++;	/* C_MOVING: from or to */
	pthread_mutex_unlock(&mu);
	(void)from;
}

static void
op_fic(struct xc_conn *c, unsigned *seed)
{
	char app[NAME_LEN], wl[NAME_LEN];
	int rc;

	pthread_mutex_lock(&mu);
	if (napps == 0) {
		pthread_mutex_unlock(&mu);
		return;
	}
	snprintf(app, sizeof(app), "%s", apps[rand_r(seed) % (unsigned)napps]);
	pthread_mutex_unlock(&mu);
	snprintf(wl, sizeof(wl), "wl-spare-%02u", rand_r(seed) % NSPARE);
	rc = admin(c, json_pack("{s:s, s:s, s:s}", "cmd", "fic.add", "app",
	    app, "workload", wl), NULL);
	pthread_mutex_lock(&mu);
	if (rc == 1 && nfics < FIC_ACK_MAX) {
		snprintf(fics[nfics].app, NAME_LEN, "%s", app);
		snprintf(fics[nfics].wl, NAME_LEN, "%s", wl);
		nfics++;
	}
	if (rc == 1)
		n_ack[2]++;
	else if (rc == 0)
		n_refused[2]++;
	else if (rc == -1)
		n_unknown[2]++;
	pthread_mutex_unlock(&mu);
}

static void
op_rotate(struct xc_conn *c, unsigned *seed)
{
	char uri[128];
	const char *kid, *v;
	json_t *r = NULL;
	int k = (int)(rand_r(seed) % NKEYS), rc;

	key_uri(k, uri, sizeof(uri));
	rc = admin(c, json_pack("{s:s, s:s}", "cmd", "key.rotate", "uri",
	    uri), &r);
	pthread_mutex_lock(&mu);
	if (rc == 1 && (kid = json_string_value(json_object_get(r,
	    "kid"))) != NULL && (v = strrchr(kid, '/')) != NULL &&
	    nvers[k] < VER_MAX) {
		snprintf(vers[k][nvers[k]++], sizeof(vers[k][0]), "%s", v + 1);
		n_ack[3]++;
	} else if (rc == 0)
		n_refused[3]++;
	else if (rc == -1)
		n_unknown[3]++;
	pthread_mutex_unlock(&mu);
	json_decref(r);
}

struct worker {
	pthread_t	tid;
	int		t;
	unsigned	seed;
};

/*
 * A key rotation generates an RSA key (200-400 ms here), longer than most
 * rounds: the rotators run through the kills and restarts, so some
 * rotations finish (during the checks) and some are cut off.
 */
static void *
rotator_main(void *arg)
{
	struct worker *w = arg;
	struct xc_conn c = { .fd = -1 };

	while (!atomic_load(&all_done)) {
		op_rotate(&c, &w->seed);
		usleep(c.fd == -1 ? 5000 : PACE_US);
	}
	xc_close(&c);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct xc_conn c = { .fd = -1 };
	unsigned k = w->seed % 12;

	while (!atomic_load(&stop)) {
		switch (k++ % 12) {
		case 3:
		case 9:
			op_move(&c, w->t, &w->seed);
			break;
		case 5:
		case 11:
			op_fic(&c, &w->seed);
			break;
		default:
			op_onboard(&c, w->t, &w->seed);
			break;
		}
		usleep(c.fd == -1 ? 2000 : PACE_US);
	}
	xc_close(&c);
	return NULL;
}

/* --- checks after a restart ------------------------------------------- */

/* Every page of a list command into one array (NULL on failure). */
static json_t *
list_all(struct xc_conn *c, const char *cmd, int limit)
{
	json_t *all = json_array(), *r, *after = json_null();

	for (;;) {
		if (admin(c, json_pack("{s:s, s:o, s:i}", "cmd", cmd, "after",
		    after, "limit", limit), &r) != 1 || r == NULL) {
			json_decref(r);
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

static int
cust_index(const char *id)
{
	const char *dash = strchr(id, '-');
	int i;

	if (id[0] != 'c' || dash == NULL)
		return -1;
	i = atoi(dash + 1);
	return i >= 0 && i < ncust && strcmp(custs[i].id, id) == 0 ? i : -1;
}

static int
check_customers(struct xc_conn *c, int it)
{
	json_t *all = list_all(c, "customer.list", 100), *row;
	static unsigned char seen[CUST_MAX];
	const char *id, *app;
	size_t k;
	int i, bad = 0;

	if (all == NULL) {
		T_FAIL("round %d: customer.list failed", it);
		return -1;
	}
	memset(seen, 0, sizeof(seen));
	json_array_foreach(all, k, row) {
		id = jstr(row, "id");
		app = jstr(row, "app");
		if ((i = cust_index(id)) < 0) {
			T_FAIL("round %d: customer %s was never onboarded",
			    it, id);
			bad++;
			continue;
		}
		if (seen[i]++) {
			T_FAIL("round %d: customer %s listed twice", it, id);
			bad++;
		}
		switch (custs[i].state) {
		case C_ACKED:
			if (strcmp(custs[i].app, app) != 0) {
				T_FAIL("round %d: customer %s on %s, "
				    "acknowledged on %s", it, id, app,
				    custs[i].app);
				bad++;
			}
			break;
		case C_MAYBE:
			/* The unanswered onboarding took effect. */
			snprintf(custs[i].app, NAME_LEN, "%s", app);
			custs[i].state = C_ACKED;
			break;
		case C_MOVING:
			if (strcmp(custs[i].app, app) != 0 &&
			    strcmp(custs[i].alt, app) != 0) {
				T_FAIL("round %d: customer %s on %s, neither "
				    "%s nor %s", it, id, app, custs[i].app,
				    custs[i].alt);
				bad++;
			}
			snprintf(custs[i].app, NAME_LEN, "%s", app);
			custs[i].state = C_ACKED;
			break;
		case C_REFUSED:
			T_FAIL("round %d: refused customer %s exists", it, id);
			bad++;
			break;
		}
	}
	for (i = 0; i < ncust; i++) {
		if (custs[i].state == C_ACKED && !seen[i]) {
			T_FAIL("round %d: acknowledged customer %s (on %s) "
			    "is gone", it, custs[i].id, custs[i].app);
			bad++;
		}
		if (custs[i].state == C_MAYBE)
			custs[i].state = C_REFUSED;	/* it did not happen */
	}
	json_decref(all);
	return bad;
}

static int
check_apps(struct xc_conn *c, int it, int *ret_apps, int *ret_fics)
{
	json_t *all = list_all(c, "app.list", 20), *a, *w;
	size_t k, j;
	int i, bad = 0, found, nf = 0;

	if (all == NULL) {
		T_FAIL("round %d: app.list failed", it);
		return -1;
	}
	json_array_foreach(all, k, a) {
		size_t n = json_array_size(json_object_get(a, "fics"));

		nf += (int)n;
		if (n > FIC_LIMIT || json_integer_value(json_object_get(a,
		    "fic_count")) > FIC_LIMIT) {
			T_FAIL("round %d: application %s holds %zu FICs", it,
			    jstr(a, "name"), n);
			bad++;
		}
	}
	for (i = 0; i < nfics; i++) {
		found = 0;
		json_array_foreach(all, k, a) {
			if (strcmp(jstr(a, "name"), fics[i].app) != 0)
				continue;
			json_array_foreach(json_object_get(a, "fics"), j, w)
				if (strcmp(json_string_value(w),
				    fics[i].wl) == 0)
					found = 1;
		}
		if (!found) {
			T_FAIL("round %d: acknowledged FIC %s -> %s is gone",
			    it, fics[i].app, fics[i].wl);
			bad++;
		}
	}
	*ret_apps = (int)json_array_size(all);
	*ret_fics = nf;
	json_decref(all);
	return bad;
}

static int
check_keys(int it, int *ret_versions)
{
	char uri[128];
	json_t *j, *v;
	size_t k;
	int key, i, found, bad = 0, cur, total = 0, rc, n;

	for (key = 0; key < NKEYS; key++) {
		key_uri(key, uri, sizeof(uri));
		/* Rotators run on: what was acknowledged before we look. */
		pthread_mutex_lock(&mu);
		n = nvers[key];
		pthread_mutex_unlock(&mu);
		rc = ctl(&A, out, OUT_MAX, "--json key show %s", uri);
		if (rc != 0 || (j = json_loads(out, 0, NULL)) == NULL) {
			T_FAIL("round %d: key show %s: exit %d: %s", it, uri,
			    rc, out);
			bad++;
			continue;
		}
		total += (int)json_array_size(json_object_get(j, "versions"));
		cur = 0;
		json_array_foreach(json_object_get(j, "versions"), k, v)
			if (strcmp(jstr(v, "version"), jstr(j, "current")) == 0)
				cur = 1;
		if (!cur) {
			T_FAIL("round %d: key %s: current version %s is not "
			    "among its versions", it, uri, jstr(j, "current"));
			bad++;
		}
		for (i = 0; i < n; i++) {
			found = 0;
			json_array_foreach(json_object_get(j, "versions"), k,
			    v)
				if (strcmp(jstr(v, "version"), vers[key][i]) ==
				    0)
					found = 1;
			if (!found) {
				T_FAIL("round %d: acknowledged version %s of "
				    "%s is gone", it, vers[key][i], uri);
				bad++;
			}
		}
		json_decref(j);
	}
	*ret_versions = total;
	return bad;
}

/* sqlite3 CLI integrity check: 1 ok, 0 not ok, -1 no sqlite3. */
static int
integrity_ok(int it)
{
	char cmd[700], buf[512];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "sqlite3 '%s/registry.db' 'PRAGMA "
	    "integrity_check' 2>&1", A.state);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	st = pclose(p);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return -1;
	if (strcmp(buf, "ok\n") != 0) {
		T_FAIL("round %d: integrity_check: %s", it, buf);
		return 0;
	}
	return 1;
}

/* --- setup -------------------------------------------------------------- */

static int
setup(void)
{
	char uri[128];
	int i, rc = 0;

	if (agent_init(&A, "wl-eu-1", "[params]\ncustomers_per_app = 20\n")
	    == -1 || agent_start(&A) == -1)
		return -1;
	for (i = 0; rc == 0 && i < NREGION_WL; i++)
		rc = ctl(&A, out, OUT_MAX, "workload add wl-eu-%d --client-id "
		    "%08x-1111-4111-8111-111111111111 --principal-id "
		    "%08x-2222-4222-8222-222222222222 --label region=eu", i + 1,
		    i + 1, i + 1);
	for (i = 0; rc == 0 && i < NSPARE; i++)
		rc = ctl(&A, out, OUT_MAX, "workload add wl-spare-%02d "
		    "--client-id %08x-3333-4333-8333-333333333333 "
		    "--principal-id %08x-4444-4444-8444-444444444444 --label "
		    "region=spare", i, i + 1, i + 1);
	for (i = 0; rc == 0 && i < NKEYS; i++) {
		key_uri(i, uri, sizeof(uri));
		rc = ctl(&A, out, OUT_MAX, "key create %s", uri);
	}
	if (rc != 0)
		fprintf(stderr, "setup: %s\n", out);
	return rc == 0 ? 0 : -1;
}

int
main(void)
{
	struct worker w[NTHREADS], rot[NROTATORS];
	struct xc_conn adm = { .fd = -1 };
	const char *env = getenv("XTCMK_CRASH_ITERATIONS");
	int iterations = env != NULL && atoi(env) > 0 ? atoi(env) :
	    ITERATIONS_DEFAULT;
	int it, i, bad, failed_rounds = 0, napp = 0, nfic = 0, nver = 0;
	int no_sqlite = 0, acked_now, st;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	long kill_ms_sum = 0;
	double t0 = now_s();

	if (getenv("XTCMK_CRASH_SEED") != NULL)
		seed = (unsigned)atoi(getenv("XTCMK_CRASH_SEED"));
	printf("crash test: %d iterations, seed %u (XTCMK_CRASH_SEED)\n",
	    iterations, seed);
	if ((out = malloc(OUT_MAX)) == NULL || setup() == -1) {
		fprintf(stderr, "cannot set up the agent (see %s)\n", A.log);
		ASSERT_TRUE(0);
		agent_cleanup(&A);
		free(out);
		return t_done();
	}
	for (i = 0; i < NROTATORS; i++) {
		rot[i].t = NTHREADS - NROTATORS + i;
		rot[i].seed = rand_r(&seed);
		if (pthread_create(&rot[i].tid, NULL, rotator_main, &rot[i]) !=
		    0)
			T_FAIL("pthread_create");
	}
	for (it = 0; it < iterations; it++) {
		int kill_ms = KILL_MIN_MS + (int)(rand_r(&seed) %
		    (KILL_MAX_MS - KILL_MIN_MS + 1));

		atomic_store(&stop, 0);
		for (i = 0; i < NTHREADS - NROTATORS; i++) {
			w[i].t = i;
			w[i].seed = rand_r(&seed);
			if (pthread_create(&w[i].tid, NULL, worker_main,
			    &w[i]) != 0)
				T_FAIL("pthread_create");
		}
		usleep((useconds_t)kill_ms * 1000);
		kill(A.pid, SIGKILL);
		waitpid(A.pid, &st, 0);
		A.pid = 0;
		atomic_store(&stop, 1);
		for (i = 0; i < NTHREADS - NROTATORS; i++)
			pthread_join(w[i].tid, NULL);
		kill_ms_sum += kill_ms;

		xc_close(&adm);
		if (agent_start(&A) == -1) {
			T_FAIL("round %d: the agent does not start again (see "
			    "%s)", it, A.log);
			break;
		}
		bad = check_customers(&adm, it);
		bad += check_apps(&adm, it, &napp, &nfic);
		bad += check_keys(it, &nver);
		if ((i = integrity_ok(it)) == 0)
			bad++;
		else if (i < 0)
			no_sqlite = 1;
		if ((i = ctl(&A, out, OUT_MAX, "check")) != 0) {
			T_FAIL("round %d: xtcmkctl check: exit %d: %s", it, i,
			    out);
			bad++;
		}
		t_checks++;
		if (bad != 0)
			failed_rounds++;
		acked_now = 0;
		for (i = 0; i < ncust; i++)
			acked_now += custs[i].state == C_ACKED;
		if (it % 10 == 9 || it == iterations - 1 || bad != 0)
			printf("[%6.1fs] round %d: killed after %d ms; %d "
			    "customers, %d apps, %d FICs, %d key versions: "
			    "%s\n", now_s() - t0, it + 1, kill_ms, acked_now,
			    napp, nfic, nver, bad == 0 ? "consistent" :
			    "INCONSISTENT");
		fflush(stdout);
	}
	xc_close(&adm);
	atomic_store(&all_done, 1);
	for (i = 0; i < NROTATORS; i++)
		pthread_join(rot[i].tid, NULL);
	for (i = 0; i < 4; i++)
		printf("%-10s acknowledged %ld, refused %ld, unanswered %ld\n",
		    opname[i], n_ack[i], n_refused[i], n_unknown[i]);
	printf("crash test: %d kill/restart rounds (mean kill delay %ld ms), "
	    "%d inconsistent, %.1f s%s\n", it, it > 0 ? kill_ms_sum / it : 0,
	    failed_rounds, now_s() - t0, no_sqlite ? " (no sqlite3 CLI: "
	    "integrity via xtcmkctl check only)" : "");
	ASSERT_EQ(it, iterations);
	ASSERT_EQ(failed_rounds, 0);
	ASSERT_INT(n_ack[0], >, 0);
	ASSERT_INT(n_ack[1], >, 0);
	ASSERT_INT(n_ack[2], >, 0);
	ASSERT_INT(n_ack[3], >, 0);
	agent_cleanup(&A);
	free(out);
	return t_done();
}
