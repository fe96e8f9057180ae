/*
 * test_fastpath.c - the host-local fast path end to end: a real xtcmkd
 * publishes decisions in its memory-mapped file and libxtcmk reads them.
 *
 * Every claim is proved with counters from both sides: the agent's
 * "decide" request counter (a decision that crossed the socket) and the
 * module's xtcmk_fastpath_stats() (hits and each reason to fall back).
 * The agent is really stopped (SIGSTOP) and killed (SIGKILL) while
 * threads decide in a loop, and the time of the last fast-path answer is
 * measured against the heartbeat bound.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "memcache.h"
#include "t.h"
#include "xtcmk.h"

#define WL		"wl-fast-1"
#define CUSTOMERS	8
#define BOUND_MS	1000	/* XM_HEARTBEAT_BOUND_MS */
#define SLACK_MS	300	/* scheduling on a loaded test machine */

static struct agent A;
static char out[65536];

/* Customer i's tenant, in the caller's buffer (threads share none). */
static const char *
tenant_of(int i, char t[40])
{
	snprintf(t, 40, "%08d-3333-3333-3333-333333333333", i);
	return t;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The agent's count of DECIDE requests (each one crossed the socket). */
/* One counter of the agent's `stats`: group.key, or -1. */
static long long
agent_stat(const char *group, const char *key)
{
	json_t *st;
	long long n = -1;

	if (ctl(&A, out, sizeof(out), "--json stats") != 0)
		return -1;
	if ((st = json_loads(out, 0, NULL)) == NULL)
		return -1;
	n = json_integer_value(json_object_get(json_object_get(st, group),
	    key));
	json_decref(st);
	return n;
}

static long long
agent_decides(void)
{
	return agent_stat("requests", "decide");
}

static long long
agent_unwraps(void)
{
	return agent_stat("requests", "dek_unwrap");
}

static long long
agent_memcache(const char *key)
{
	return agent_stat("memcache", key);
}

static struct xtcmk_fastpath_stats
fstats(struct xtcmk *h)
{
	struct xtcmk_fastpath_stats st;

	memset(&st, 0, sizeof(st));
	ASSERT_EQ(xtcmk_fastpath_stats(h, &st, sizeof(st)), XTCMK_OK);
	return st;
}

/* Decide and check the answer names the customer and its tenant. */
static int
decide_ok(struct xtcmk *h, int i, char *ret_app, size_t applen)
{
	char id[32], t[40];
	struct xtcmk_decision *d;
	int rc;

	snprintf(id, sizeof(id), "fast-%d", i);
	if ((rc = xtcmk_decide(h, id, &d)) != XTCMK_OK)
		return rc;
	if (xtcmk_decision_str(d, XTCMK_F_CUSTOMER) == NULL ||
	    strcmp(xtcmk_decision_str(d, XTCMK_F_CUSTOMER), id) != 0 ||
	    xtcmk_decision_str(d, XTCMK_F_TENANT) == NULL ||
	    strcmp(xtcmk_decision_str(d, XTCMK_F_TENANT), tenant_of(i, t)) != 0) {
		fprintf(stderr, "wrong answer for %s: %s %s\n", id,
		    xtcmk_decision_str(d, XTCMK_F_CUSTOMER),
		    xtcmk_decision_str(d, XTCMK_F_TENANT));
		rc = -1;
	}
	if (ret_app != NULL)
		snprintf(ret_app, applen, "%s",
		    xtcmk_decision_str(d, XTCMK_F_APP) ?
		    xtcmk_decision_str(d, XTCMK_F_APP) : "");
	xtcmk_decision_free(d);
	return rc;
}

static void
setup(void)
{
	char t[40];
	int i;

	/* Host processes may keep DEKs for 60 s (xtcmk-policy(7)). */
	ASSERT_EQ(agent_init(&A, WL, "[params]\nhost_cache_ttl = 60\n"), 0);
	A.die_with_test = 1;
	ASSERT_EQ(agent_start(&A), 0);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "workload add " WL " --client-id "
	    "11111111-1111-1111-1111-111111111111 --principal-id "
	    "22222222-2222-2222-2222-222222222222 --label region=eu"), 0);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "key create "
	    "https://fast.vault.local/keys/k1"), 0);
	for (i = 0; i < CUSTOMERS; i++)
		ASSERT_EQ(ctl(&A, out, sizeof(out), "customer add fast-%d "
		    "--tenant %s --key-uri https://fast.vault.local/keys/k1 "
		    "--label region=eu", i, tenant_of(i, t)), 0);
}

/* Hits come from the file: the agent's decide counter stays put. */
static void
test_hits(void)
{
	struct xtcmk *h;
	struct xtcmk_fastpath_stats st;
	long long before, after;
	int i, bad = 0;

	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	for (i = 0; i < CUSTOMERS; i++)
		ASSERT_EQ(decide_ok(h, i, NULL, 0), 0);	/* publishes */
	st = fstats(h);
	ASSERT_EQ(st.hits, 0);
	ASSERT_INT(st.no_file + st.misses, >=, 1);
	ASSERT_EQ(st.maps, 1);
	ASSERT_INT(agent_memcache("published"), >=, CUSTOMERS);

	before = agent_decides();
	for (i = 0; i < 10000; i++)
		bad += decide_ok(h, i % CUSTOMERS, NULL, 0) != 0;
	after = agent_decides();
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(after, before);
	st = fstats(h);
	ASSERT_EQ(st.hits, 10000);

	/* Not onboarded: not published, the socket answers NOT_FOUND. */
	{
		struct xtcmk_decision *d = NULL;
		long long m = st.misses;

		before = agent_decides();
		ASSERT_EQ(xtcmk_decide(h, "nobody-here", &d),
		    XTCMK_E_NOT_FOUND);
		ASSERT_EQ(agent_decides(), before + 1);
		ASSERT_EQ(fstats(h).misses, m + 1);
	}
	xtcmk_close(h);
}

/* XTCMK_NO_MEMCACHE=1: every decision crosses the socket. */
static void
test_disabled(void)
{
	struct xtcmk *h;
	struct xtcmk_fastpath_stats st;
	long long before;
	int i, bad = 0;

	setenv("XTCMK_NO_MEMCACHE", "1", 1);
	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	unsetenv("XTCMK_NO_MEMCACHE");
	before = agent_decides();
	for (i = 0; i < 200; i++)
		bad += decide_ok(h, i % CUSTOMERS, NULL, 0) != 0;
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(agent_decides(), before + 200);
	st = fstats(h);
	ASSERT_EQ(st.hits, 0);
	ASSERT_EQ(st.disabled, 200);
	ASSERT_EQ(st.maps, 0);
	xtcmk_close(h);
}

/*
 * A reload and a move invalidate every record before they are
 * acknowledged: the next decision crosses the socket and shows the move.
 */
static void
test_invalidation(void)
{
	struct xtcmk *h;
	struct xtcmk_fastpath_stats st;
	char app[128], app2[128];
	long long before, inv;

	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	/* Published before: a new handle maps the file on its first call
	 * and answers from it. */
	ASSERT_EQ(decide_ok(h, 0, app, sizeof(app)), 0);
	ASSERT_EQ(decide_ok(h, 0, app, sizeof(app)), 0);
	ASSERT_EQ(fstats(h).hits, 2);

	inv = agent_memcache("invalidations");
	ASSERT_EQ(ctl(&A, out, sizeof(out), "reload"), 0);
	ASSERT_INT(agent_memcache("invalidations"), >, inv);
	before = agent_decides();
	ASSERT_EQ(decide_ok(h, 0, NULL, 0), 0);
	st = fstats(h);
	ASSERT_EQ(st.stale, 1);
	ASSERT_EQ(agent_decides(), before + 1);
	ASSERT_EQ(decide_ok(h, 0, NULL, 0), 0);	/* republished */
	ASSERT_EQ(fstats(h).hits, 3);

	/* A move to an application this workload federates with (a shared
	 * application of the region, as the default P.move requires). */
	ASSERT_EQ(ctl(&A, out, sizeof(out), "app add xtcmk-eu-9 --label "
	    "region=eu"), 0);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "app fic add xtcmk-eu-9 " WL), 0);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "customer move fast-0 --to "
	    "xtcmk-eu-9 --reason 'fast path test'"), 0);
	before = agent_decides();
	ASSERT_EQ(decide_ok(h, 0, app2, sizeof(app2)), 0);
	ASSERT_STR(app2, "xtcmk-eu-9");
	ASSERT_TRUE(strcmp(app, app2) != 0);
	ASSERT_EQ(agent_decides(), before + 1);
	ASSERT_EQ(fstats(h).stale, 2);
	ASSERT_EQ(decide_ok(h, 0, app2, sizeof(app2)), 0);
	ASSERT_STR(app2, "xtcmk-eu-9");
	ASSERT_EQ(fstats(h).hits, 4);
	xtcmk_close(h);
}

struct hot {
	atomic_int	 stop;
	atomic_llong	 last_hit_ms;	/* time of the last fast answer */
	atomic_llong	 wrong;		/* answers not for the customer */
	atomic_llong	 failures;	/* UNAVAILABLE/TIMEOUT */
	atomic_llong	 other;		/* any other result */
	atomic_llong	 hits;
	atomic_int	 saw_heartbeat;	/* fell back: heartbeat too old */
};

/* One thread's loop, on its own handle so its hits are its own. */
static void *
hot_loop(void *arg)
{
	struct hot *x = arg;
	struct xtcmk_fastpath_stats st;
	struct xtcmk *h;
	uint64_t hits, last = 0;
	int i = 0, rc;

	if (xtcmk_open(A.sock, 300, &h) != XTCMK_OK) {
		atomic_fetch_add(&x->other, 1);
		return NULL;
	}
	while (!atomic_load(&x->stop)) {
		rc = decide_ok(h, i++ % CUSTOMERS, NULL, 0);
		if (rc == -1)
			atomic_fetch_add(&x->wrong, 1);
		else if (rc == XTCMK_E_UNAVAILABLE || rc == XTCMK_E_TIMEOUT)
			atomic_fetch_add(&x->failures, 1);
		else if (rc != 0)
			atomic_fetch_add(&x->other, 1);
		(void)xtcmk_fastpath_stats(h, &st, sizeof(st));
		hits = st.hits;
		if (hits != last) {
			last = hits;
			atomic_store(&x->last_hit_ms, now_ms());
			atomic_fetch_add(&x->hits, 1);
		}
		if (st.heartbeat > 0)
			atomic_store(&x->saw_heartbeat, 1);
	}
	xtcmk_close(h);
	return NULL;
}

/*
 * Stop or kill the agent under hot traffic: the fast path answers no
 * later than the heartbeat bound after the agent's last beat, and then
 * every call fails closed (UNAVAILABLE or TIMEOUT).
 */
static void
stop_under_load(int sig)
{
	struct hot x;
	struct xtcmk *h;
	pthread_t t[2];
	long long t0, failures, last, wrong, other;
	int i;

	memset(&x, 0, sizeof(x));
	ASSERT_EQ(xtcmk_open(A.sock, 300, &h), XTCMK_OK);
	for (i = 0; i < CUSTOMERS; i++)
		(void)decide_ok(h, i, NULL, 0);		/* published */
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, hot_loop, &x);
	usleep(300000);
	ASSERT_INT(atomic_load(&x.hits), >, 100);
	t0 = now_ms();
	kill(A.pid, sig);
	usleep((BOUND_MS + SLACK_MS + 700) * 1000);
	failures = atomic_load(&x.failures);
	last = atomic_load(&x.last_hit_ms) - t0;
	ASSERT_INT(failures, >, 0);
	/* The last beat came at most one period before the signal. */
	ASSERT_INT(last, <=, BOUND_MS + SLACK_MS);
	ASSERT_EQ(atomic_load(&x.saw_heartbeat), 1);
	atomic_store(&x.stop, 1);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	wrong = atomic_load(&x.wrong);
	other = atomic_load(&x.other);
	ASSERT_EQ(wrong, 0);
	ASSERT_EQ(other, 0);
	if (sig == SIGSTOP) {
		/* Beating again: the same file serves again. */
		kill(A.pid, SIGCONT);
		usleep(300000);
		ASSERT_EQ(decide_ok(h, 1, NULL, 0), 0);
		ASSERT_INT(fstats(h).hits, >, 0);
		ASSERT_EQ(fstats(h).maps, 1);
	}
	fprintf(stderr, "signal %d: last fast answer %lld ms after it, "
	    "%lld calls failed closed\n", sig, last, failures);
	xtcmk_close(h);
}

/* The record of `id` in the agent's file right now (0: not found). */
static int
record_of(const char *id, uint64_t *ret_rev, uint32_t *ret_state)
{
	char path[400];
	struct stat st;
	const struct xm_header *h;
	const struct xm_slot *s;
	uint8_t *base;
	uint32_t i;
	int fd, found = 0;

	snprintf(path, sizeof(path), "%s/xtcmkd.mc", A.dir);
	if ((fd = open(path, O_RDONLY)) == -1 || fstat(fd, &st) == -1)
		return 0;
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return 0;
	h = (const struct xm_header *)base;
	for (i = 0; i < h->nslots && !found; i++) {
		s = (const struct xm_slot *)(base + XM_HDR_SIZE +
		    (size_t)i * h->slot_size);
		if (s->id_len == strlen(id) &&
		    memcmp(s->id, id, s->id_len) == 0) {
			*ret_rev = s->rev_gen;
			*ret_state = s->state;
			found = 1;
		}
	}
	munmap(base, (size_t)st.st_size);
	return found;
}

/*
 * A key found disabled, then enabled again: the customer's record gets a
 * new revocation generation and state each time, before the command
 * that found it returns.
 */
static void
test_key_events(void)
{
	struct xtcmk *h;
	uint64_t r0 = 0, r1 = 0, r2 = 0;
	uint32_t s0 = 9, s1 = 9, s2 = 9;
	long long ev;

	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	ASSERT_EQ(decide_ok(h, 3, NULL, 0), 0);
	ASSERT_EQ(record_of("fast-3", &r0, &s0), 1);
	ev = agent_memcache("key_events");
	ASSERT_EQ(ctl(&A, out, sizeof(out), "key disable "
	    "https://fast.vault.local/keys/k1"), 0);
	(void)ctl(&A, out, sizeof(out), "key status fast-3");
	ASSERT_EQ(record_of("fast-3", &r1, &s1), 1);
	ASSERT_EQ(s1, XM_STATE_REVOKED);
	ASSERT_INT(r1, >, r0);
	ASSERT_INT(agent_memcache("key_events"), >, ev);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "key enable "
	    "https://fast.vault.local/keys/k1"), 0);
	(void)ctl(&A, out, sizeof(out), "key status fast-3");
	ASSERT_EQ(record_of("fast-3", &r2, &s2), 1);
	ASSERT_EQ(s2, XM_STATE_ACTIVE);
	ASSERT_INT(r2, >, r1);
	/* Decisions do not depend on the key's state: still served. */
	ASSERT_EQ(decide_ok(h, 3, NULL, 0), 0);
	ASSERT_INT(fstats(h).hits, >=, 1);
	(void)s0;
	xtcmk_close(h);
}

/*
 * The versioning policy allows DEKs in the host (host_cache_ttl): an
 * unwrap is answered in process, never past a revocation (the agent's
 * new revocation generation), never in a forked child, never after the
 * heartbeat bound; DEK_NEW always asks the agent.
 */
static void test_dek_cache_lengths(void);

static void
test_dek_cache(void)
{
	struct xtcmk *h;
	uint8_t dek[XTCMK_DEK_LEN], d2[XTCMK_DEK_LEN], blob[XTCMK_BLOB_MAX];
	size_t blen = sizeof(blob);
	long long u0, t0, last = -1;
	int i, bad = 0, st, rc;
	pid_t pid;

	ASSERT_EQ(xtcmk_open(A.sock, 300, &h), XTCMK_OK);
	ASSERT_EQ(decide_ok(h, 4, NULL, 0), 0);
	ASSERT_EQ(xtcmk_dek_new(h, "fast-4", dek, blob, &blen), XTCMK_OK);
	u0 = agent_unwraps();
	ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2), XTCMK_OK);
	ASSERT_TRUE(memcmp(dek, d2, sizeof(dek)) == 0);
	ASSERT_EQ(agent_unwraps(), u0 + 1);
	for (i = 0; i < 100; i++) {
		memset(d2, 0, sizeof(d2));
		bad += xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2) !=
		    XTCMK_OK || memcmp(dek, d2, sizeof(dek)) != 0;
	}
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(agent_unwraps(), u0 + 1);
	ASSERT_EQ(fstats(h).dek_hits, 100);
	ASSERT_EQ(fstats(h).dek_entries, 1);

	/* A child's copy of the keys is wiped: it asks the agent. */
	pid = fork();
	if (pid == 0) {
		/* The read-only mapping still answers decisions here. */
		uint64_t h0 = fstats(h).hits;

		if (decide_ok(h, 4, NULL, 0) != 0 || fstats(h).hits != h0 + 1)
			_exit(4);
		memset(d2, 0, sizeof(d2));
		rc = xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2);
		_exit(rc != XTCMK_OK ? 1 : memcmp(dek, d2, sizeof(dek)) != 0 ?
		    2 : fstats(h).dek_hits != 100 ? 3 : 0);
	}
	waitpid(pid, &st, 0);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ASSERT_EQ(agent_unwraps(), u0 + 2);

	/* DEK_NEW is never served here. */
	{
		uint8_t n1[XTCMK_DEK_LEN], n2[XTCMK_DEK_LEN];
		uint8_t b1[XTCMK_BLOB_MAX], b2[XTCMK_BLOB_MAX];
		size_t l1 = sizeof(b1), l2 = sizeof(b2);

		ASSERT_EQ(xtcmk_dek_new(h, "fast-4", n1, b1, &l1), XTCMK_OK);
		ASSERT_EQ(xtcmk_dek_new(h, "fast-4", n2, b2, &l2), XTCMK_OK);
		ASSERT_TRUE(memcmp(n1, n2, sizeof(n1)) != 0);
	}

	/* Revoked: the agent's new generation empties the host cache. */
	ASSERT_EQ(ctl(&A, out, sizeof(out), "key disable "
	    "https://fast.vault.local/keys/k1"), 0);
	(void)ctl(&A, out, sizeof(out), "key status fast-4");
	ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2),
	    XTCMK_E_REVOKED);
	ASSERT_INT(fstats(h).dek_invalid + fstats(h).dek_misses, >=, 1);
	ASSERT_EQ(fstats(h).dek_hits, 100);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "key enable "
	    "https://fast.vault.local/keys/k1"), 0);
	(void)ctl(&A, out, sizeof(out), "key status fast-4");
	u0 = agent_unwraps();
	ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2), XTCMK_OK);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2), XTCMK_OK);
	ASSERT_EQ(agent_unwraps(), u0 + 1);
	ASSERT_EQ(fstats(h).dek_hits, 101);

	/* A reload invalidates the decision: one DECIDE publishes it again
	 * (same revocation generation), and the key is still served. */
	{
		long long d0;

		ASSERT_EQ(ctl(&A, out, sizeof(out), "reload"), 0);
		u0 = agent_unwraps();
		d0 = agent_decides();
		ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2),
		    XTCMK_OK);
		ASSERT_TRUE(memcmp(dek, d2, sizeof(dek)) == 0);
		ASSERT_EQ(agent_unwraps(), u0);
		ASSERT_EQ(agent_decides(), d0 + 1);
		ASSERT_EQ(fstats(h).dek_hits, 102);
	}

	/* A move gives the customer a new revocation generation: its keys
	 * cached here are not served again, only fetched anew. */
	{
		uint64_t inv = fstats(h).dek_invalid;

		ASSERT_EQ(ctl(&A, out, sizeof(out), "customer move fast-4 "
		    "--to xtcmk-eu-9 --reason 'dek cache test'"), 0);
		u0 = agent_unwraps();
		ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2),
		    XTCMK_OK);
		ASSERT_EQ(agent_unwraps(), u0 + 1);
		ASSERT_EQ(fstats(h).dek_invalid, inv + 1);
		ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2),
		    XTCMK_OK);
		ASSERT_EQ(agent_unwraps(), u0 + 1);
		ASSERT_EQ(fstats(h).dek_hits, 103);
	}

	/* Agent stopped: cached keys stop within the heartbeat bound. */
	kill(A.pid, SIGSTOP);
	t0 = now_ms();
	while (now_ms() - t0 < BOUND_MS + SLACK_MS + 500) {
		uint64_t before = fstats(h).dek_hits;

		rc = xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2);
		if (rc == XTCMK_OK && fstats(h).dek_hits > before)
			last = now_ms() - t0;
		else if (rc != XTCMK_E_TIMEOUT && rc != XTCMK_E_UNAVAILABLE)
			bad++;
	}
	kill(A.pid, SIGCONT);
	fprintf(stderr, "agent stopped: last in-process unwrap %lld ms "
	    "after it\n", last);
	ASSERT_EQ(bad, 0);
	ASSERT_INT(last, >=, 0);
	ASSERT_INT(last, <=, BOUND_MS + SLACK_MS);
	usleep(300000);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-4", blob, blen, d2), XTCMK_OK);
	xtcmk_close(h);
}

/* A new agent replaces the file: a handle notices and maps the new one. */
static void
test_restart(void)
{
	struct xtcmk *h;
	struct xtcmk_fastpath_stats st;
	uint64_t hits;

	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	ASSERT_EQ(decide_ok(h, 2, NULL, 0), 0);
	ASSERT_EQ(decide_ok(h, 2, NULL, 0), 0);
	hits = fstats(h).hits;
	ASSERT_INT(hits, >=, 1);	/* 2 if published since the move */
	ASSERT_EQ(agent_stop(&A) == -1, 0);
	ASSERT_EQ(agent_start(&A), 0);
	usleep(250000);		/* past the re-check interval */
	ASSERT_EQ(decide_ok(h, 2, NULL, 0), 0);	/* remaps, publishes */
	ASSERT_EQ(decide_ok(h, 2, NULL, 0), 0);
	st = fstats(h);
	ASSERT_EQ(st.maps, 2);
	ASSERT_INT(st.recycled + st.no_file + st.misses, >=, 1);
	ASSERT_EQ(st.hits, hits + 1);
	xtcmk_close(h);
}

/* No file can be made: the agent warns and serves over the socket. */
static void
test_no_file(void)
{
	struct xtcmk *h;
	json_t *st;
	char log[8192];
	FILE *f;
	size_t n;

	ASSERT_EQ(agent_config(&A, WL, "[agent]\nmemcache = "
	    "/nonexistent-xtcmk-dir/x.mc\n"), 0);
	ASSERT_EQ(agent_start(&A), 0);
	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	ASSERT_EQ(decide_ok(h, 5, NULL, 0), 0);
	ASSERT_EQ(decide_ok(h, 5, NULL, 0), 0);
	/* The killed agent's file is still at the default path: its
	 * heartbeat is long stale. */
	ASSERT_EQ(fstats(h).hits, 0);
	ASSERT_EQ(fstats(h).heartbeat + fstats(h).no_file, 2);
	ASSERT_EQ(ctl(&A, out, sizeof(out), "--json stats"), 0);
	st = json_loads(out, 0, NULL);
	ASSERT_TRUE(json_is_false(json_object_get(json_object_get(st,
	    "memcache"), "enabled")));
	json_decref(st);
	ASSERT_TRUE((f = fopen(A.log, "r")) != NULL);
	n = f != NULL ? fread(log, 1, sizeof(log) - 1, f) : 0;
	log[n] = '\0';
	if (f != NULL)
		fclose(f);
	ASSERT_CONTAINS(log, "fast path off");
	xtcmk_close(h);
	agent_stop(&A);
}


/*
 * The host cache keeps DEKs of every length the 1.1 calls make: each is
 * asked of the agent once, then answered in process with its length; a
 * room too small for a cached key is not served from here (the agent
 * refuses it before unwrapping, with the length needed).
 */
static void
test_dek_cache_lengths(void)
{
	static const size_t lens[] = { 16, 24, 48, 64 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	struct xtcmk_opts o = { .size = sizeof(o) };
	struct xtcmk *h;
	uint8_t dek[XTCMK_DEK_MAX], got[XTCMK_DEK_MAX];
	uint8_t blob[N][XTCMK_BLOB_MAX];
	size_t blen[N], dlen, i;
	uint64_t hits0, ins0;
	long long u0;
	int j, bad = 0;

	ASSERT_EQ(xtcmk_open(A.sock, 2000, &h), XTCMK_OK);
	ASSERT_EQ(decide_ok(h, 6, NULL, 0), 0);
	for (i = 0; i < N; i++) {
		o.dek_len = (uint32_t)lens[i];
		dlen = sizeof(dek);
		blen[i] = sizeof(blob[i]);
		ASSERT_EQ(xtcmk_dek_new2(h, "fast-6", &o, dek, &dlen, blob[i],
		    &blen[i], NULL, 0), XTCMK_OK);
		ASSERT_EQ(dlen, lens[i]);
		hits0 = fstats(h).dek_hits;
		ins0 = fstats(h).dek_inserts;
		u0 = agent_unwraps();
		for (j = 0; j < 10; j++) {
			memset(got, 0, sizeof(got));
			dlen = sizeof(got);
			bad += xtcmk_dek_unwrap2(h, "fast-6", NULL, blob[i],
			    blen[i], got, &dlen) != XTCMK_OK ||
			    dlen != lens[i] || memcmp(got, dek, lens[i]) != 0;
		}
		ASSERT_EQ(bad, 0);
		ASSERT_EQ(agent_unwraps(), u0 + 1);
		ASSERT_EQ(fstats(h).dek_inserts, ins0 + 1);
		ASSERT_EQ(fstats(h).dek_hits, hits0 + 9);
	}
	/* 64 bytes cached, 32 of room: the agent says so, unwrapping
	 * nothing; the entry stays for callers with room. */
	hits0 = fstats(h).dek_hits;
	u0 = agent_unwraps();
	dlen = 32;
	ASSERT_EQ(xtcmk_dek_unwrap2(h, "fast-6", NULL, blob[3], blen[3], got,
	    &dlen), XTCMK_E_TOOBIG);
	ASSERT_EQ(dlen, 64);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "fast-6", blob[3], blen[3], got),
	    XTCMK_E_TOOBIG);
	ASSERT_EQ(agent_unwraps(), u0 + 2);
	dlen = sizeof(got);
	ASSERT_EQ(xtcmk_dek_unwrap2(h, "fast-6", NULL, blob[3], blen[3], got,
	    &dlen), XTCMK_OK);
	ASSERT_EQ(dlen, 64);
	ASSERT_EQ(fstats(h).dek_hits, hits0 + 1);
	ASSERT_EQ(agent_unwraps(), u0 + 2);
	explicit_bzero(dek, sizeof(dek));
	explicit_bzero(got, sizeof(got));
	xtcmk_close(h);
}

int
main(void)
{
	setup();
	test_hits();
	test_disabled();
	test_invalidation();
	test_key_events();
	test_dek_cache();
	test_dek_cache_lengths();
	test_restart();
	stop_under_load(SIGSTOP);
	stop_under_load(SIGKILL);
	waitpid(A.pid, NULL, 0);
	A.pid = 0;
	test_no_file();
	agent_cleanup(&A);
	return t_done();
}
