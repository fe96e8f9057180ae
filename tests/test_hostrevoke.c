/*
 * test_hostrevoke.c - revocation keeps its bound with libxtcmk's own DEK
 * cache on (host_cache_ttl).
 *
 * A real xtcmkd (local key provider, revocation_check = 1 s) and one
 * libxtcmk handle shared by HAMMERS threads that unwrap cached blobs of
 * CUSTOMERS customers (each with its own key) as fast as they can.  In
 * each round every customer's key is disabled at its own random moment:
 * a trial.  Every unwrap that started later than the bound (the check
 * interval plus one tick of the agent's checkers) after the disable was
 * acknowledged and still succeeded is counted: there must be none.
 *
 *   key:      the whole key is disabled; every unwrap must stop.
 *   version:  the key was rotated and only the OLD version is disabled;
 *             unwraps of blobs under the old version must stop, those
 *             under the version in force must keep working throughout.
 *
 * ROUNDS x CUSTOMERS = 20 trials per variant; the key is enabled again
 * between rounds (and must serve again).  Before its disable, every
 * unwrap of a customer must have been a host-cache hit: the module's
 * dek_hits prove the path taken.  XTCMK_TEST_SEED replays a run.
 */
#include <sys/types.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "t.h"
#include "xtcmk.h"

#define WL		"wl-hrev-1"
#define VAULT		"https://hrev.vault.local/keys/"
#define CUSTOMERS	10
#define ROUNDS		2
#define HAMMERS		4
#define CHECK_S		1	/* revocation_check */
#define TICK_MS		200	/* agent/keys.c CHECK_TICK_MS */
#define BOUND_MS	(CHECK_S * 1000 + TICK_MS)
#define SPREAD_MS	1200	/* disables fall in [WARM_MS, +SPREAD_MS) */
#define WARM_MS		150
#define WATCH_MS	700	/* observed past the bound */
#define WAIT_MS		6000	/* for a re-enabled key to serve */

static struct agent A;
static char out[65536];

enum variant { V_KEY, V_VERSION };

struct blob {
	uint8_t		 b[XTCMK_BLOB_MAX];
	size_t		 len;
	uint8_t		 dek[XTCMK_DEK_LEN];
};

/* One customer's trial in a round; the counters are the hammers'. */
struct trial {
	char		 id[32];
	char		 uri[128];
	char		 stop_ver[64];	/* V_VERSION: the version disabled */
	struct blob	 stop;		/* its unwraps must stop */
	struct blob	 keep;		/* V_VERSION: under the new version */
	_Atomic double	 disable_start;	/* ms; far future until it begins */
	_Atomic double	 ack;		/* ms: the disable acknowledged */
	_Atomic double	 deadline;	/* ack + BOUND_MS */
	atomic_long	 pre_ok;	/* ended before the disable began */
	atomic_long	 late_ok;	/* started past the deadline, served */
	atomic_long	 revoked;	/* XTCMK_E_REVOKED answers */
	atomic_long	 other_err;	/* any other failure of `stop` */
	atomic_long	 keep_late;	/* `keep` served past the deadline */
	atomic_long	 keep_err;	/* `keep` failed */
	_Atomic double	 last_ok;	/* of `stop`: start, ms after ack */
};

static struct trial T[CUSTOMERS];
static struct xtcmk *H;
static enum variant V;
static atomic_int stop_hammers;
static atomic_long wrong_key;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
sleep_until(double t)
{
	double d;

	while ((d = t - now_ms()) > 0)
		usleep(d > 50 ? 50000 : (useconds_t)(d * 1000) + 1);
}

static void
atomic_max(_Atomic double *m, double v)
{
	double cur = atomic_load(m);

	while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
		;
}

static uint64_t
dek_hits(void)
{
	struct xtcmk_fastpath_stats st;

	memset(&st, 0, sizeof(st));
	ASSERT_EQ(xtcmk_fastpath_stats(H, &st, sizeof(st)), XTCMK_OK);
	return st.dek_hits;
}

/* The version part of a kid: after its last '/'. */
static const char *
kid_version(const char *kid)
{
	const char *s = strrchr(kid, '/');

	return s != NULL ? s + 1 : "";
}

/* `xtcmkctl --json ARGS`'s "kid" version into buf; 0 or -1. */
static int
ctl_version(char *buf, size_t len, const char *args)
{
	const char *kid;
	json_t *j;
	int rc = -1;

	if (ctl(&A, out, sizeof(out), "--json %s", args) != 0 ||
	    (j = json_loads(out, 0, NULL)) == NULL)
		return -1;
	if ((kid = json_string_value(json_object_get(j, "kid"))) != NULL) {
		snprintf(buf, len, "%s", kid_version(kid));
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/*
 * A new DEK of the customer into b, its version into ver; with `want`,
 * retried until the agent wraps under that version (it resolves the
 * version in force every `refresh` second).  0 or -1.
 */
static int
new_blob(const char *id, const char *want, struct blob *b, char *ver,
    size_t verlen)
{
	char kid[XTCMK_KEY_ID_MAX + 1];
	double t0 = now_ms();
	size_t dl;

	do {
		b->len = sizeof(b->b);
		dl = sizeof(b->dek);
		if (xtcmk_dek_new2(H, id, NULL, b->dek, &dl, b->b, &b->len,
		    kid, sizeof(kid)) != XTCMK_OK)
			return -1;
		snprintf(ver, verlen, "%s", kid_version(kid));
		if (want == NULL || strcmp(ver, want) == 0)
			return 0;
		usleep(100000);
	} while (now_ms() - t0 < WAIT_MS);
	return -1;
}

/*
 * The blob unwraps (a re-enabled key serves once a check found it) and
 * then comes from the host cache: 0, or -1 after WAIT_MS.
 */
static int
warm(const char *id, const struct blob *b)
{
	uint8_t dek[XTCMK_DEK_LEN];
	double t0 = now_ms();
	uint64_t h0;
	int rc;

	do {
		h0 = dek_hits();
		rc = xtcmk_dek_unwrap(H, id, b->b, b->len, dek);
		if (rc == XTCMK_OK && memcmp(dek, b->dek, sizeof(dek)) != 0)
			return -1;
		if (rc == XTCMK_OK && dek_hits() == h0 + 1)
			return 0;
		usleep(rc == XTCMK_OK ? 1000 : 50000);
	} while (now_ms() - t0 < WAIT_MS);
	return -1;
}

static void
setup(void)
{
	char t[40], args[256];
	int i;

	ASSERT_EQ(agent_init(&A, WL, "[params]\nrevocation_check = 1\n"
	    "refresh = 1\nhost_cache_ttl = 60\ncache_ttl = 600\n"), 0);
	A.die_with_test = 1;
	ASSERT_EQ(agent_start(&A), 0);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "workload add " WL " --client-id "
	    "11111111-1111-1111-1111-111111111111 --principal-id "
	    "22222222-2222-2222-2222-222222222222 --label region=eu"), 0);
	for (i = 0; i < CUSTOMERS; i++) {
		struct trial *tr = &T[i];

		snprintf(tr->id, sizeof(tr->id), "hrev-%d", i);
		snprintf(tr->uri, sizeof(tr->uri), VAULT "k%d", i);
		snprintf(t, sizeof(t), "%08d-3333-3333-3333-333333333333", i);
		snprintf(args, sizeof(args), "key create %s", tr->uri);
		ASSERT_EQ(ctl_version(tr->stop_ver, sizeof(tr->stop_ver),
		    args), 0);
		ASSERT_EQ(ctl(&A, out, sizeof(out), "customer add %s --tenant "
		    "%s --key-uri %s --label region=eu", tr->id, t, tr->uri),
		    0);
	}
	ASSERT_EQ(xtcmk_open(A.sock, 2000, &H), XTCMK_OK);
	/* A decision publishes the customer's record, which the host
	 * cache's entries are kept under (as a host decides first). */
	for (i = 0; i < CUSTOMERS; i++) {
		struct xtcmk_decision *d;

		ASSERT_EQ(xtcmk_decide(H, T[i].id, &d), XTCMK_OK);
		xtcmk_decision_free(d);
	}
}

/*
 * The blobs of a variant, each in the host cache.  V_VERSION: `stop`
 * under the version in force now, then the key is rotated and `keep`
 * made under the new version.
 */
static void
prepare(enum variant v)
{
	char args[256], ver[64], newver[64];
	int i;

	for (i = 0; i < CUSTOMERS; i++) {
		struct trial *tr = &T[i];

		ASSERT_EQ(new_blob(tr->id, NULL, &tr->stop, tr->stop_ver,
		    sizeof(tr->stop_ver)), 0);
		ASSERT_EQ(warm(tr->id, &tr->stop), 0);
		if (v != V_VERSION)
			continue;
		snprintf(args, sizeof(args), "key rotate %s", tr->uri);
		ASSERT_EQ(ctl_version(newver, sizeof(newver), args), 0);
		ASSERT_TRUE(strcmp(newver, tr->stop_ver) != 0);
		ASSERT_EQ(new_blob(tr->id, newver, &tr->keep, ver,
		    sizeof(ver)), 0);
		ASSERT_EQ(warm(tr->id, &tr->keep), 0);
	}
	/* The rotation's new generation may have reached `stop` after it
	 * was warmed: warm again. */
	for (i = 0; i < CUSTOMERS; i++)
		ASSERT_EQ(warm(T[i].id, &T[i].stop), 0);
}

/* One unwrap of a trial's blob, counted against the trial's clock. */
static void
hammer_one(struct trial *tr, int keep)
{
	const struct blob *b = keep ? &tr->keep : &tr->stop;
	uint8_t dek[XTCMK_DEK_LEN];
	double t0, t1;
	int rc;

	t0 = now_ms();
	rc = xtcmk_dek_unwrap(H, tr->id, b->b, b->len, dek);
	t1 = now_ms();
	if (rc == XTCMK_OK && memcmp(dek, b->dek, sizeof(dek)) != 0)
		atomic_fetch_add(&wrong_key, 1);
	if (keep) {
		if (rc != XTCMK_OK)
			atomic_fetch_add(&tr->keep_err, 1);
		else if (t0 > atomic_load(&tr->deadline))
			atomic_fetch_add(&tr->keep_late, 1);
		return;
	}
	if (rc == XTCMK_OK) {
		if (t1 < atomic_load(&tr->disable_start))
			atomic_fetch_add(&tr->pre_ok, 1);
		if (t0 > atomic_load(&tr->deadline))
			atomic_fetch_add(&tr->late_ok, 1);
		if (t0 > atomic_load(&tr->ack))
			atomic_max(&tr->last_ok, t0 - atomic_load(&tr->ack));
	} else if (rc == XTCMK_E_REVOKED)
		atomic_fetch_add(&tr->revoked, 1);
	else
		atomic_fetch_add(&tr->other_err, 1);
}

static void *
hammer(void *arg)
{
	int i = (int)(intptr_t)arg;

	while (!atomic_load(&stop_hammers)) {
		i = (i + 1) % CUSTOMERS;
		hammer_one(&T[i], 0);
		if (V == V_VERSION)
			hammer_one(&T[i], 1);
	}
	return NULL;
}

static int
by_offset(const void *a, const void *b)
{
	const double *x = a, *y = b;

	return (x[0] > y[0]) - (x[0] < y[0]);
}

/*
 * One round: CUSTOMERS trials, each customer's key (or its old version)
 * disabled at its own random moment while the hammers unwrap.
 */
static void
round_run(enum variant v, int round, unsigned *seed)
{
	double off[CUSTOMERS][2], t0, end = 0, worst = -1, ctl_max = 0;
	long pre = 0, revoked = 0;
	pthread_t th[HAMMERS];
	uint64_t h0, h1;
	char what[256];
	int i, n;

	V = v;
	for (i = 0; i < CUSTOMERS; i++) {
		struct trial *tr = &T[i];

		atomic_store(&tr->disable_start, 1e18);
		atomic_store(&tr->ack, 1e18);
		atomic_store(&tr->deadline, 1e18);
		atomic_store(&tr->pre_ok, 0);
		atomic_store(&tr->late_ok, 0);
		atomic_store(&tr->revoked, 0);
		atomic_store(&tr->other_err, 0);
		atomic_store(&tr->keep_late, 0);
		atomic_store(&tr->keep_err, 0);
		atomic_store(&tr->last_ok, -1);
		off[i][0] = WARM_MS + (double)(rand_r(seed) % SPREAD_MS);
		off[i][1] = i;
	}
	qsort(off, CUSTOMERS, sizeof(off[0]), by_offset);
	atomic_store(&stop_hammers, 0);
	h0 = dek_hits();
	for (n = 0; n < HAMMERS; n++)
		ASSERT_EQ(pthread_create(&th[n], NULL, hammer,
		    (void *)(intptr_t)(n * CUSTOMERS / HAMMERS)), 0);
	t0 = now_ms();
	for (i = 0; i < CUSTOMERS; i++) {
		struct trial *tr = &T[(int)off[i][1]];
		double a;

		sleep_until(t0 + off[i][0]);
		if (v == V_KEY)
			snprintf(what, sizeof(what), "key disable %s",
			    tr->uri);
		else
			snprintf(what, sizeof(what), "key disable %s/%s",
			    tr->uri, tr->stop_ver);
		atomic_store(&tr->disable_start, now_ms());
		ASSERT_EQ(ctl(&A, out, sizeof(out), "%s", what), 0);
		a = now_ms();
		atomic_store(&tr->ack, a);
		atomic_store(&tr->deadline, a + BOUND_MS);
		if (a - atomic_load(&tr->disable_start) > ctl_max)
			ctl_max = a - atomic_load(&tr->disable_start);
		if (a + BOUND_MS > end)
			end = a + BOUND_MS;
	}
	sleep_until(end + WATCH_MS);
	atomic_store(&stop_hammers, 1);
	for (n = 0; n < HAMMERS; n++)
		pthread_join(th[n], NULL);
	h1 = dek_hits();

	for (i = 0; i < CUSTOMERS; i++) {
		struct trial *tr = &T[i];
		long late = atomic_load(&tr->late_ok);
		long refused = atomic_load(&tr->revoked);
		long other = atomic_load(&tr->other_err);
		long ok = atomic_load(&tr->pre_ok);
		long keep_err = atomic_load(&tr->keep_err);
		long keep_late = atomic_load(&tr->keep_late);
		double last = atomic_load(&tr->last_ok);

		/* Served past the bound: never. */
		ASSERT_EQ(late, 0);
		/* The revocation reached this customer's unwraps. */
		ASSERT_INT(refused, >, 0);
		ASSERT_EQ(other, 0);
		ASSERT_INT(ok, >, 0);
		if (v == V_VERSION) {
			/* The version in force kept serving. */
			ASSERT_EQ(keep_err, 0);
			ASSERT_INT(keep_late, >, 0);
		}
		pre += ok;
		revoked += refused;
		if (last > worst)
			worst = last;
	}
	n = (int)atomic_load(&wrong_key);
	ASSERT_EQ(n, 0);
	/* Before its disable every unwrap came from the host cache. */
	ASSERT_INT(h1 - h0, >=, pre);
	printf("%s round %d: %d trials, %ld host-cache unwraps before the "
	    "disables, %ld refused after; last success %.0f ms after a "
	    "disable was acknowledged (bound %d ms; disable took <= %.0f "
	    "ms)\n", v == V_KEY ? "key" : "old version", round, CUSTOMERS,
	    pre, revoked, worst, BOUND_MS, ctl_max);

	/* Enabled again: each customer's blobs serve again, from the host
	 * cache. */
	for (i = 0; i < CUSTOMERS; i++) {
		struct trial *tr = &T[i];

		if (v == V_KEY)
			ASSERT_EQ(ctl(&A, out, sizeof(out), "key enable %s",
			    tr->uri), 0);
		else
			ASSERT_EQ(ctl(&A, out, sizeof(out), "key enable "
			    "%s/%s", tr->uri, tr->stop_ver), 0);
	}
	for (i = 0; i < CUSTOMERS; i++) {
		ASSERT_EQ(warm(T[i].id, &T[i].stop), 0);
		if (v == V_VERSION)
			ASSERT_EQ(warm(T[i].id, &T[i].keep), 0);
	}
}

int
main(void)
{
	const char *e = getenv("XTCMK_TEST_SEED");
	unsigned seed = e != NULL ? (unsigned)strtoul(e, NULL, 10) :
	    (unsigned)time(NULL) ^ (unsigned)getpid();
	int r;

	printf("XTCMK_TEST_SEED=%u\n", seed);
	setup();
	prepare(V_KEY);
	for (r = 0; r < ROUNDS; r++)
		round_run(V_KEY, r, &seed);
	prepare(V_VERSION);
	for (r = 0; r < ROUNDS; r++)
		round_run(V_VERSION, r, &seed);
	xtcmk_close(H);
	agent_cleanup(&A);
	return t_done();
}
