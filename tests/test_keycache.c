/*
 * test_keycache.c - DEK cache: hits and misses, TTL, capacity and LRU,
 * purges, key separation, single flight (success and failure).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keycache.h"
#include "t.h"

#define KID	"https://v.vault.local/keys/k/0123456789abcdef0123456789abcdef"

struct load {
	atomic_int	calls;
	int		fail;		/* return this error */
	unsigned	sleep_ms;
	uint8_t		fill;		/* DEK bytes */
	size_t		len;		/* DEK length; 0: 32 */
};

/* Length of the DEK last returned (tests are single-threaded here). */
static size_t dl;

static int
loader(void *arg, uint8_t dek[KEYCACHE_DEK_MAX], size_t *ret_len,
    struct xerr *e)
{
	struct load *l = arg;
	struct timespec ts;

	atomic_fetch_add(&l->calls, 1);
	if (l->sleep_ms > 0) {
		ts.tv_sec = l->sleep_ms / 1000;
		ts.tv_nsec = (long)(l->sleep_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
	if (l->fail)
		return xerr_set(e, l->fail, "key https://v.vault.local/keys/k "
		    "version 1 is disabled in its vault; the customer must "
		    "re-enable it");
	*ret_len = l->len != 0 ? l->len : 32;
	memset(dek, l->fill, *ret_len < KEYCACHE_DEK_MAX ? *ret_len :
	    KEYCACHE_DEK_MAX);
	return 0;
}

static int
all(const uint8_t *p, uint8_t v)
{
	size_t i;

	for (i = 0; i < dl; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static void
test_basic(void)
{
	struct keycache *c = NULL;
	struct keycache_stats st;
	struct load l = { .fill = 0x11 };
	struct xerr e;
	uint8_t dek[KEYCACHE_DEK_MAX];
	const uint8_t blob1[] = "blob-one", blob2[] = "blob-two";

	ASSERT_EQ(keycache_new(KEYCACHE_CAPACITY_MAX + 1, &c, &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(keycache_new(4, &c, &e), 0);
	if (c == NULL)
		return;
	ASSERT_EQ(keycache_lookup(c, "a", KID, blob1, sizeof(blob1), dek, &dl),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_get_or_load(c, "a", KID, blob1, sizeof(blob1), 60,
	    loader, &l, dek, &dl, &e), 0);
	ASSERT_TRUE(all(dek, 0x11));
	ASSERT_EQ(l.calls, 1);
	/* Hit: no second load. */
	memset(dek, 0, sizeof(dek));
	ASSERT_EQ(keycache_get_or_load(c, "a", KID, blob1, sizeof(blob1), 60,
	    loader, &l, dek, &dl, &e), 0);
	ASSERT_TRUE(all(dek, 0x11));
	ASSERT_EQ(l.calls, 1);
	ASSERT_EQ(keycache_lookup(c, "a", KID, blob1, sizeof(blob1), dek, &dl), 0);

	/* Distinct blob, customer or kid: distinct entries. */
	l.fill = 0x22;
	ASSERT_EQ(keycache_get_or_load(c, "a", KID, blob2, sizeof(blob2), 60,
	    loader, &l, dek, &dl, &e), 0);
	ASSERT_TRUE(all(dek, 0x22));
	ASSERT_EQ(l.calls, 2);
	ASSERT_EQ(keycache_lookup(c, "b", KID, blob1, sizeof(blob1), dek, &dl),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_lookup(c, "a", KID "x", blob1, sizeof(blob1), dek, &dl),
	    -XTCMK_E_NOT_FOUND);
	/* Boundaries of the key fields cannot be shifted ("a"+"bc" vs
	 * "ab"+"c"). */
	ASSERT_EQ(keycache_put(c, "ab", "c", blob1, sizeof(blob1), dek, 32, 60), 0);
	ASSERT_EQ(keycache_lookup(c, "a", "bc", blob1, sizeof(blob1), dek, &dl),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_lookup(c, "a", KID, blob1, sizeof(blob1), dek, &dl), 0);
	ASSERT_TRUE(all(dek, 0x11));
	ASSERT_EQ(keycache_lookup(c, "a", KID, blob2, sizeof(blob2), dek, &dl), 0);
	ASSERT_TRUE(all(dek, 0x22));

	keycache_stats(c, &st);
	ASSERT_EQ(st.entries, 3);
	ASSERT_EQ(st.capacity, 4);
	ASSERT_EQ(st.loads, 2);
	ASSERT_EQ(st.hits, 4);
	ASSERT_TRUE(st.misses >= 4);
	ASSERT_EQ(st.locked_bytes, st.locked ? 4096 : 0);
	if (!st.locked)
		fprintf(stderr, "note: mlock refused, cache not locked\n");

	/* ttl 0: returned, not cached. */
	l.fill = 0x33;
	ASSERT_EQ(keycache_get_or_load(c, "z", KID, blob1, sizeof(blob1), 0,
	    loader, &l, dek, &dl, &e), 0);
	ASSERT_TRUE(all(dek, 0x33));
	ASSERT_EQ(keycache_lookup(c, "z", KID, blob1, sizeof(blob1), dek, &dl),
	    -XTCMK_E_NOT_FOUND);

	/* Failure is not cached and carries code and message. */
	l.fail = XTCMK_E_REVOKED;
	ASSERT_EQ(keycache_get_or_load(c, "f", KID, blob1, sizeof(blob1), 60,
	    loader, &l, dek, &dl, &e), -XTCMK_E_REVOKED);
	ASSERT_EQ(e.code, XTCMK_E_REVOKED);
	ASSERT_CONTAINS(e.msg, "is disabled in its vault");
	l.fail = 0;
	keycache_stats(c, &st);
	ASSERT_EQ(st.load_errors, 1);
	keycache_free(c);
	keycache_free(NULL);
}

/*
 * DEKs of 16..64 bytes keep their length through loads, hits and puts;
 * an entry reused for a shorter key holds no byte of the longer one.
 */
static void
test_lengths(void)
{
	static const size_t lens[] = { 16, 24, 48, 64 };
	struct keycache *c = NULL;
	struct keycache_stats st;
	struct load l = { .fill = 0x55 };
	struct xerr e;
	uint8_t dek[KEYCACHE_DEK_MAX], big[KEYCACHE_DEK_MAX];
	char blob[8];
	size_t i;

	ASSERT_EQ(keycache_new(1, &c, &e), 0);
	if (c == NULL)
		return;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		snprintf(blob, sizeof(blob), "L%zu", lens[i]);
		l.len = lens[i];
		l.fill = (uint8_t)(0x50 + i);
		dl = 0;
		ASSERT_EQ(keycache_get_or_load(c, "n", KID, (uint8_t *)blob,
		    strlen(blob), 60, loader, &l, dek, &dl, &e), 0);
		ASSERT_EQ(dl, lens[i]);
		ASSERT_TRUE(all(dek, (uint8_t)(0x50 + i)));
		/* A hit, with the length it was loaded with. */
		memset(dek, 0, sizeof(dek));
		dl = 0;
		ASSERT_EQ(keycache_lookup(c, "n", KID, (uint8_t *)blob,
		    strlen(blob), dek, &dl), 0);
		ASSERT_EQ(dl, lens[i]);
		ASSERT_TRUE(all(dek, (uint8_t)(0x50 + i)));
	}
	ASSERT_EQ(l.calls, 4);
	keycache_stats(c, &st);
	ASSERT_EQ(st.loads, 4);
	ASSERT_EQ(st.hits, 4);
	ASSERT_EQ(st.evictions, 3);	/* one slot: each load pushed out one */
	/* Out-of-range lengths are refused, not truncated. */
	memset(big, 0x77, sizeof(big));
	ASSERT_EQ(keycache_put(c, "n", KID, (uint8_t *)"p", 1, big, 15, 60),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(keycache_put(c, "n", KID, (uint8_t *)"p", 1, big, 65, 60),
	    -XTCMK_E_INVAL);
	/* The 64-byte slot reused for a 16-byte key: a hit gives 16. */
	ASSERT_EQ(keycache_put(c, "n", KID, (uint8_t *)"p", 1, big, 16, 60),
	    0);
	memset(dek, 0, sizeof(dek));
	ASSERT_EQ(keycache_lookup(c, "n", KID, (uint8_t *)"p", 1, dek, &dl),
	    0);
	ASSERT_EQ(dl, 16);
	ASSERT_TRUE(dek[15] == 0x77 && dek[16] == 0);
	/* A loader returning a length out of range is an error. */
	l.len = 65;
	ASSERT_EQ(keycache_get_or_load(c, "n", KID, (uint8_t *)"q", 1, 60,
	    loader, &l, dek, &dl, &e), -XTCMK_E_INTERNAL);
	ASSERT_TRUE(strstr(e.msg, "65-byte") != NULL);
	keycache_free(c);
}

static void
test_ttl(void)
{
	struct keycache *c = NULL;
	struct keycache_stats st;
	struct load l = { .fill = 0x44 };
	struct xerr e;
	uint8_t dek[KEYCACHE_DEK_MAX];
	const uint8_t b[] = "blob", b2[] = "blob2";

	ASSERT_EQ(keycache_new(8, &c, &e), 0);
	if (c == NULL)
		return;
	ASSERT_EQ(keycache_get_or_load(c, "a", KID, b, sizeof(b), 1, loader,
	    &l, dek, &dl, &e), 0);
	ASSERT_EQ(keycache_put(c, "a", KID, b2, sizeof(b2), dek, 32, 1), 0);
	ASSERT_EQ(keycache_lookup(c, "a", KID, b, sizeof(b), dek, &dl), 0);
	usleep(1200 * 1000);
	ASSERT_EQ(keycache_lookup(c, "a", KID, b, sizeof(b), dek, &dl),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_get_or_load(c, "a", KID, b, sizeof(b), 60, loader,
	    &l, dek, &dl, &e), 0);
	ASSERT_EQ(l.calls, 2);
	/* The other expired entry goes with a sweep. */
	ASSERT_EQ(keycache_expire(c), 1);
	keycache_stats(c, &st);
	ASSERT_EQ(st.expired, 2);
	ASSERT_EQ(st.entries, 1);
	keycache_free(c);
}

static void
test_capacity(void)
{
	struct keycache *c = NULL;
	struct keycache_stats st;
	struct xerr e;
	uint8_t dek[KEYCACHE_DEK_MAX], got[KEYCACHE_DEK_MAX];
	char blob[32];
	int i, present = 0;

	ASSERT_EQ(keycache_new(16, &c, &e), 0);
	if (c == NULL)
		return;
	for (i = 0; i < 40; i++) {
		snprintf(blob, sizeof(blob), "blob-%d", i);
		memset(dek, i, sizeof(dek));
		ASSERT_EQ(keycache_put(c, "a", KID, (uint8_t *)blob,
		    strlen(blob), dek, 32, 60), 0);
		if (i == 5) {
			/* Touch blob-0 so that LRU keeps it. */
			snprintf(blob, sizeof(blob), "blob-%d", 0);
			ASSERT_EQ(keycache_lookup(c, "a", KID, (uint8_t *)blob,
			    strlen(blob), got, &dl), 0);
		}
	}
	keycache_stats(c, &st);
	ASSERT_EQ(st.entries, 16);
	ASSERT_EQ(st.evictions, 24);
	/* The 16 newest are there with the right DEKs; older ones are gone. */
	for (i = 0; i < 40; i++) {
		snprintf(blob, sizeof(blob), "blob-%d", i);
		if (keycache_lookup(c, "a", KID, (uint8_t *)blob, strlen(blob),
		    got, &dl) == 0) {
			present++;
			ASSERT_TRUE(all(got, (uint8_t)i));
			ASSERT_TRUE(i >= 24);
		}
	}
	ASSERT_EQ(present, 16);

	/* set_limits: new capacity, everything dropped. */
	ASSERT_EQ(keycache_set_limits(c, 2, &e), 0);
	keycache_stats(c, &st);
	ASSERT_EQ(st.capacity, 2);
	ASSERT_EQ(st.entries, 0);
	ASSERT_EQ(keycache_set_limits(c, KEYCACHE_CAPACITY_MAX + 1, &e),
	    -XTCMK_E_INVAL);

	/* Capacity 0 disables caching. */
	ASSERT_EQ(keycache_set_limits(c, 0, &e), 0);
	ASSERT_EQ(keycache_put(c, "a", KID, (uint8_t *)"x", 1, dek, 32, 60), 0);
	ASSERT_EQ(keycache_lookup(c, "a", KID, (uint8_t *)"x", 1, got, &dl),
	    -XTCMK_E_NOT_FOUND);
	keycache_stats(c, &st);
	ASSERT_EQ(st.entries, 0);
	ASSERT_EQ(st.locked_bytes, 0);
	keycache_free(c);
}

static void
test_purge(void)
{
	struct keycache *c = NULL;
	struct keycache_stats st;
	struct xerr e;
	uint8_t dek[KEYCACHE_DEK_MAX], got[KEYCACHE_DEK_MAX];
	char blob[32];
	int i;

	ASSERT_EQ(keycache_new(64, &c, &e), 0);
	if (c == NULL)
		return;
	memset(dek, 0x5a, sizeof(dek));
	for (i = 0; i < 10; i++) {
		snprintf(blob, sizeof(blob), "b%d", i);
		ASSERT_EQ(keycache_put(c, i % 2 ? "odd" : "even", KID,
		    (uint8_t *)blob, strlen(blob), dek, 32, 60), 0);
	}
	ASSERT_EQ(keycache_purge_customer(c, "odd"), 5);
	ASSERT_EQ(keycache_purge_customer(c, "odd"), 0);
	ASSERT_EQ(keycache_purge_customer(c, "nobody"), 0);
	keycache_stats(c, &st);
	ASSERT_EQ(st.entries, 5);
	ASSERT_EQ(st.purged, 5);
	ASSERT_EQ(keycache_lookup(c, "odd", KID, (uint8_t *)"b1", 2, got, &dl),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_lookup(c, "even", KID, (uint8_t *)"b0", 2, got, &dl), 0);
	/* One version of one customer: the other version and the other
	 * customer's entries of the same kid stay. */
	ASSERT_EQ(keycache_put(c, "even", KID "x", (uint8_t *)"v2", 2, dek, 32,
	    60), 0);
	ASSERT_EQ(keycache_put(c, "odd", KID "x", (uint8_t *)"v2", 2, dek, 32,
	    60), 0);
	ASSERT_EQ(keycache_purge_version(c, "even", KID "x"), 1);
	ASSERT_EQ(keycache_purge_version(c, "even", KID "x"), 0);
	ASSERT_EQ(keycache_lookup(c, "even", KID "x", (uint8_t *)"v2", 2,
	    got, &dl), -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_lookup(c, "odd", KID "x", (uint8_t *)"v2", 2, got, &dl),
	    0);
	ASSERT_EQ(keycache_lookup(c, "even", KID, (uint8_t *)"b0", 2, got, &dl), 0);
	ASSERT_EQ(keycache_purge_version(c, "even", KID), 5);
	ASSERT_EQ(keycache_lookup(c, "even", KID, (uint8_t *)"b0", 2, got, &dl),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keycache_purge_all(c), 1);
	ASSERT_EQ(keycache_lookup(c, "odd", KID "x", (uint8_t *)"v2", 2, got, &dl),
	    -XTCMK_E_NOT_FOUND);
	keycache_stats(c, &st);
	ASSERT_EQ(st.entries, 0);
	keycache_free(c);
}

/* ---- single flight ---- */

#define NTHREADS	64

struct worker {
	struct keycache	*c;
	struct load	*l;
	pthread_barrier_t *bar;
	const char	*customer;
	int		 rc;
	struct xerr	 e;
	uint8_t		 dek[KEYCACHE_DEK_MAX];
	size_t		 dl;
};

static void *
worker(void *arg)
{
	struct worker *w = arg;
	static const uint8_t blob[] = "single-flight-blob";

	pthread_barrier_wait(w->bar);
	xerr_clear(&w->e);
	w->rc = keycache_get_or_load(w->c, w->customer, KID, blob,
	    sizeof(blob), 60, loader, w->l, w->dek, &w->dl, &w->e);
	return NULL;
}

static void
run_flight(struct keycache *c, struct load *l, const char *customer,
    struct worker *w)
{
	pthread_barrier_t bar;
	pthread_t th[NTHREADS];
	int i;

	pthread_barrier_init(&bar, NULL, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		w[i].c = c;
		w[i].l = l;
		w[i].bar = &bar;
		w[i].customer = customer;
		w[i].rc = 1;
		pthread_create(&th[i], NULL, worker, &w[i]);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
}

static void
test_single_flight(void)
{
	static struct worker w[NTHREADS];
	struct keycache *c = NULL;
	struct keycache_stats st;
	struct load l = { .fill = 0x77, .sleep_ms = 50 };
	struct xerr e;
	int i, ok = 0, same = 0, err = 0, msg = 0;

	ASSERT_EQ(keycache_new(16, &c, &e), 0);
	if (c == NULL)
		return;
	run_flight(c, &l, "sf", w);
	for (i = 0; i < NTHREADS; i++) {
		ok += w[i].rc == 0;
		same += all(w[i].dek, 0x77);
	}
	ASSERT_EQ(l.calls, 1);
	ASSERT_EQ(ok, NTHREADS);
	ASSERT_EQ(same, NTHREADS);
	keycache_stats(c, &st);
	ASSERT_EQ(st.loads, 1);
	ASSERT_EQ(st.entries, 1);

	/* Failure: one call, every waiter gets its code and message. */
	memset(w, 0, sizeof(w));
	atomic_store(&l.calls, 0);
	l.fail = XTCMK_E_REVOKED;
	run_flight(c, &l, "sf-fail", w);
	for (i = 0; i < NTHREADS; i++) {
		err += w[i].rc == -XTCMK_E_REVOKED &&
		    w[i].e.code == XTCMK_E_REVOKED;
		msg += strstr(w[i].e.msg, "is disabled in its vault") != NULL;
	}
	ASSERT_EQ(l.calls, 1);
	ASSERT_EQ(err, NTHREADS);
	ASSERT_EQ(msg, NTHREADS);

	/* After the failure, the next caller loads again (not cached). */
	l.fail = 0;
	atomic_store(&l.calls, 0);
	l.sleep_ms = 0;
	memset(w, 0, sizeof(w));
	run_flight(c, &l, "sf-fail", w);
	ASSERT_EQ(l.calls, 1);
	ASSERT_EQ(w[0].rc, 0);
	keycache_free(c);

	/* Capacity 0: nothing cached, concurrent misses still share. */
	ASSERT_EQ(keycache_new(0, &c, &e), 0);
	if (c == NULL)
		return;
	atomic_store(&l.calls, 0);
	l.sleep_ms = 50;
	memset(w, 0, sizeof(w));
	run_flight(c, &l, "zero", w);
	ASSERT_EQ(l.calls, 1);
	for (i = 0, ok = 0; i < NTHREADS; i++)
		ok += w[i].rc == 0 && all(w[i].dek, 0x77);
	ASSERT_EQ(ok, NTHREADS);
	keycache_free(c);
}

/* A purge while a load is in flight: the result is not cached. */
struct purger {
	struct keycache	*c;
};

static void *
purge_later(void *arg)
{
	struct purger *p = arg;

	usleep(20 * 1000);
	keycache_purge_customer(p->c, "rev");
	return NULL;
}

static void
test_purge_race(void)
{
	struct keycache *c = NULL;
	struct load l = { .fill = 0x66, .sleep_ms = 80 };
	struct purger pg;
	struct xerr e;
	pthread_t th;
	uint8_t dek[KEYCACHE_DEK_MAX];
	const uint8_t b[] = "b";

	ASSERT_EQ(keycache_new(4, &c, &e), 0);
	if (c == NULL)
		return;
	pg.c = c;
	pthread_create(&th, NULL, purge_later, &pg);
	ASSERT_EQ(keycache_get_or_load(c, "rev", KID, b, sizeof(b), 60,
	    loader, &l, dek, &dl, &e), 0);
	pthread_join(th, NULL);
	ASSERT_EQ(keycache_lookup(c, "rev", KID, b, sizeof(b), dek, &dl),
	    -XTCMK_E_NOT_FOUND);
	keycache_free(c);
}

int
main(void)
{
	test_basic();
	test_lengths();
	test_ttl();
	test_capacity();
	test_purge();
	test_single_flight();
	test_purge_race();
	return t_done();
}
