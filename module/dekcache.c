/*
 * dekcache.c - unwrapped DEKs kept inside the host process, for customers
 * whose versioning policy sets host_cache_ttl (xtcmk-policy(7)).
 *
 * The keys live in one anonymous mapping that is locked (mlock), left
 * out of core dumps (MADV_DONTDUMP) and zeroed in forked children
 * (MADV_WIPEONFORK); without all three nothing is cached.  Each key's
 * sequence number lives inside that mapping, so a child, whose copy was
 * zeroed, finds nothing (and libxtcmk does not call here in a child).
 * An entry is served only under the same memory-cache file and
 * revocation generation it was stored under, with the key active and its
 * lifetime not over: the agent advances the generation before it acts on
 * a revocation, so revocation keeps its bound for keys cached here.
 *
 * Lookups take no lock and write no shared memory: the cache is
 * set-associative (a seeded hash of customer and blob picks a set of
 * HC_WAYS entries), and each entry is guarded by a sequence number (odd
 * while written); a reader copies the entry's fields with relaxed atomic
 * loads and keeps the copy only if the number was even and unchanged
 * around it.  The key is copied to a local buffer first and handed out
 * only after that check, so a torn read never reaches the caller.
 * Inserts and wipes take the handle's mutex with trylock only (a busy
 * cache stores nothing; a lookup that found an entry to wipe leaves it
 * to the next one).  Eviction within a set is CLOCK, an approximation of
 * least recently used whose reference bit a hit writes only when it was
 * clear.  Entries are wiped on eviction, on any failed check and at
 * close.  Counters are sharded per thread (module/shm.c's shards).
 */
#include <sys/mman.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dekcache.h"
#include "wire.h"
#include "xtcmk.h"

#define HC_WAYS		8	/* entries per set */
#define HC_SETS		(HC_ENTRIES_MAX / HC_WAYS)
/* Customer id, NUL, blob, padded to whole words. */
#define HC_IDENT_MAX	(XW_CUSTOMER_MAX + 1 + XTCMK_BLOB_MAX)
#define HC_WORDS	((HC_IDENT_MAX + 7) / 8)
#define HC_DEK_WORDS	(HC_DEK_MAX / 8)

_Static_assert(HC_DEK_MAX == XTCMK_DEK_MAX && HC_DEK_MAX % 8 == 0,
    "the host cache holds every DEK length the API takes");

_Static_assert((HC_SETS & (HC_SETS - 1)) == 0 && HC_SETS * HC_WAYS ==
    HC_ENTRIES_MAX, "sets");

struct hc_key {			/* in the locked mapping, XM_LINE each */
	_Atomic uint64_t seq;		/* 0 never used, odd writing */
	_Atomic uint64_t dek[HC_DEK_WORDS];
	_Atomic uint8_t	 len;		/* bytes of dek in use */
	_Atomic uint8_t	 ref;		/* CLOCK reference bit */
	uint8_t		 pad[54];
};

_Static_assert(sizeof(struct hc_key) == XM_LINE, "hc_key: one XM_LINE");

struct hc_meta {		/* not secret; read under hc_key.seq */
	_Atomic uint64_t hash;
	_Atomic uint64_t file_id, rev_gen, expires_ms;
	_Atomic uint32_t nwords;	/* 0: empty */
	_Atomic uint64_t ident[HC_WORDS];
};

struct hc_shard {
	atomic_ullong	 hits, misses, inserts, evictions, invalid;
} __attribute__((aligned(XM_LINE)));

struct hc {
	struct hc_shard	 shard[XM_SHARDS];
	pthread_mutex_t	 mu;		/* inserts and wipes; trylock only */
	uint64_t	 seed[2];
	struct hc_key	*keys;		/* HC_ENTRIES_MAX, locked; or NULL */
	struct hc_meta	*meta;
	_Atomic(struct hc_key *) ready;	/* keys, once all is in place */
	int		 failed;	/* could not lock: never cache */
	uint8_t		 hand[HC_SETS];	/* CLOCK hand per set */
	atomic_ullong	 entries;
};

/* Customer, NUL and blob as zero-padded words; the number of words. */
static size_t
ident_of(const char *customer, const uint8_t *blob, size_t blob_len,
    uint64_t w[HC_WORDS])
{
	size_t n = strlen(customer) + 1, words;

	words = (n + blob_len + 7) / 8;
	w[words - 1] = 0;
	memcpy(w, customer, n);
	memcpy((uint8_t *)w + n, blob, blob_len);
	return words;
}

/* The set of an identity: a seeded multiply-xorshift over its words. */
static uint64_t
ident_hash(const struct hc *c, const uint64_t *w, size_t words)
{
	uint64_t h = c->seed[0] ^ words;
	size_t i;

	for (i = 0; i < words; i++) {
		h = (h ^ w[i]) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	h = (h ^ c->seed[1]) * 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 31);
}

static struct hc_shard *
shard(struct hc *c)
{
	return &c->shard[xm_thread_shard()];
}

static void
bump(atomic_ullong *n)
{
	atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
}

struct hc *
hc_new(void)
{
	struct timespec ts;
	struct hc *c;

	if (posix_memalign((void **)&c, XM_LINE, sizeof(*c)) != 0)
		return NULL;
	memset(c, 0, sizeof(*c));
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return NULL;
	}
	/* The hash only spreads entries over sets (a lookup compares the
	 * whole identity); a seed keeps chosen blobs from crowding one. */
	if (getentropy(c->seed, sizeof(c->seed)) == -1) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		c->seed[0] = (uint64_t)(uintptr_t)c ^ (uint64_t)ts.tv_nsec;
		c->seed[1] = (uint64_t)ts.tv_sec * 0x9e3779b97f4a7c15ULL;
	}
	atomic_init(&c->ready, NULL);
	return c;
}

static size_t
keys_size(void)
{
	return HC_ENTRIES_MAX * sizeof(struct hc_key);
}

/* With c->mu: the locked, undumped, wiped-on-fork key memory; 0 or -1. */
static int
keys_alloc(struct hc *c)
{
	void *p;

	if (c->keys != NULL)
		return 0;
	if (c->failed)
		return -1;
	p = mmap(NULL, keys_size(), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		c->failed = 1;
		return -1;
	}
	if (mlock(p, keys_size()) == -1 ||
	    madvise(p, keys_size(), MADV_DONTDUMP) == -1 ||
	    madvise(p, keys_size(), MADV_WIPEONFORK) == -1 ||
	    (c->meta = calloc(HC_ENTRIES_MAX, sizeof(*c->meta))) == NULL) {
		munmap(p, keys_size());
		c->failed = 1;
		return -1;
	}
	c->keys = p;
	atomic_store_explicit(&c->ready, c->keys, memory_order_release);
	return 0;
}

void
hc_free(struct hc *c)
{
	if (c == NULL)
		return;
	if (c->keys != NULL) {
		explicit_bzero(c->keys, keys_size());
		munmap(c->keys, keys_size());
	}
	free(c->meta);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Writers (c->mu held): open and close an entry's write section. */
static uint64_t
write_begin(struct hc_key *k)
{
	uint64_t s = atomic_load_explicit(&k->seq, memory_order_relaxed);

	atomic_store_explicit(&k->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return s + 2;
}

static void
write_end(struct hc_key *k, uint64_t s)
{
	atomic_store_explicit(&k->seq, s, memory_order_release);
}

/* With c->mu: wipe entry i (key and identity). */
static void
wipe(struct hc *c, size_t i)
{
	struct hc_key *k = &c->keys[i];
	uint64_t s;
	int j;

	if (atomic_load_explicit(&c->meta[i].nwords,
	    memory_order_relaxed) == 0)
		return;
	s = write_begin(k);
	for (j = 0; j < HC_DEK_WORDS; j++)
		atomic_store_explicit(&k->dek[j], 0, memory_order_relaxed);
	atomic_store_explicit(&k->len, 0, memory_order_relaxed);
	atomic_store_explicit(&c->meta[i].nwords, 0, memory_order_relaxed);
	atomic_store_explicit(&c->meta[i].hash, 0, memory_order_relaxed);
	atomic_store_explicit(&k->ref, 0, memory_order_relaxed);
	write_end(k, s);
	atomic_fetch_sub_explicit(&c->entries, 1, memory_order_relaxed);
}

/*
 * Read entry i under its sequence number: 1 if it holds `w` (its key in
 * dek, its record in *ret_m's scalars), 0 if not, -1 if it kept changing.
 * Only the caller's stack is written.
 */
static int
entry_read(const struct hc_key *k, const struct hc_meta *m, uint64_t hash,
    const uint64_t *w, size_t words, uint64_t *ret_seq,
    uint64_t dek[HC_DEK_WORDS], size_t *ret_len, uint64_t rec[3])
{
	uint64_t s1, s2;
	size_t i;
	int tries, same;

	for (tries = 0; tries < (int)XM_RETRY_MAX; tries++) {
		s1 = atomic_load_explicit(&k->seq, memory_order_acquire);
		if (s1 == 0)
			return 0;
		if (s1 & 1)
			continue;
		same = atomic_load_explicit(&m->hash,
		    memory_order_relaxed) == hash &&
		    atomic_load_explicit(&m->nwords,
		    memory_order_relaxed) == words;
		for (i = 0; same && i < words; i++)
			same = atomic_load_explicit(&m->ident[i],
			    memory_order_relaxed) == w[i];
		if (same) {
			for (i = 0; i < HC_DEK_WORDS; i++)
				dek[i] = atomic_load_explicit(&k->dek[i],
				    memory_order_relaxed);
			*ret_len = atomic_load_explicit(&k->len,
			    memory_order_relaxed);
			rec[0] = atomic_load_explicit(&m->file_id,
			    memory_order_relaxed);
			rec[1] = atomic_load_explicit(&m->rev_gen,
			    memory_order_relaxed);
			rec[2] = atomic_load_explicit(&m->expires_ms,
			    memory_order_relaxed);
		}
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&k->seq, memory_order_relaxed);
		if (s1 == s2) {
			*ret_seq = s1;
			return same;
		}
	}
	return -1;
}

int
hc_get(struct hc *c, const char *customer, const uint8_t *blob,
    size_t blob_len, const struct xm_rec *now, uint64_t now_ms,
    uint8_t *dek, size_t *dek_len)
{
	uint64_t w[HC_WORDS], key[HC_DEK_WORDS], rec[3], hash, seq = 0;
	struct hc_key *keys;
	size_t words, base, i, len = 0;
	int rc = 0;

	if (c == NULL || blob_len == 0 || blob_len > XTCMK_BLOB_MAX ||
	    strlen(customer) > XW_CUSTOMER_MAX)
		return 0;
	if ((keys = atomic_load_explicit(&c->ready,
	    memory_order_acquire)) == NULL) {
		bump(&shard(c)->misses);
		return 0;
	}
	words = ident_of(customer, blob, blob_len, w);
	hash = ident_hash(c, w, words);
	base = (size_t)(hash & (HC_SETS - 1)) * HC_WAYS;
	for (i = base; i < base + HC_WAYS; i++)
		if ((rc = entry_read(&keys[i], &c->meta[i], hash, w, words,
		    &seq, key, &len, rec)) != 0)
			break;
	if (rc <= 0) {
		bump(&shard(c)->misses);
		return 0;
	}
	if (rec[0] != now->file_id || rec[1] != now->rev_gen ||
	    now->state != XM_STATE_ACTIVE || now_ms >= rec[2]) {
		explicit_bzero(key, sizeof(key));
		/* Wipe it unless it changed since (or the lock is busy:
		 * then the next lookup finds it invalid again). */
		if (pthread_mutex_trylock(&c->mu) == 0) {
			if (atomic_load_explicit(&keys[i].seq,
			    memory_order_relaxed) == seq)
				wipe(c, i);
			pthread_mutex_unlock(&c->mu);
		}
		bump(&shard(c)->invalid);
		bump(&shard(c)->misses);
		return 0;
	}
	if (len < HC_DEK_MIN || len > HC_DEK_MAX || len > *dek_len) {
		/* Not this caller's to take (the agent answers TOOBIG), or
		 * read while being replaced. */
		explicit_bzero(key, sizeof(key));
		bump(&shard(c)->misses);
		return 0;
	}
	memcpy(dek, key, len);
	*dek_len = len;
	explicit_bzero(key, sizeof(key));
	if (atomic_load_explicit(&keys[i].ref, memory_order_relaxed) == 0)
		atomic_store_explicit(&keys[i].ref, 1, memory_order_relaxed);
	bump(&shard(c)->hits);
	return 1;
}

/* With c->mu: where to store `w` in its set (the CLOCK victim if the
 * set is full and `w` is not in it); *ret_new if it was not there. */
static size_t
slot_for(struct hc *c, uint64_t hash, const uint64_t *w, size_t words,
    int *ret_new)
{
	size_t set = (size_t)(hash & (HC_SETS - 1)), base = set * HC_WAYS, i;
	const struct hc_meta *m;
	unsigned turn;

	*ret_new = 1;
	for (i = base; i < base + HC_WAYS; i++) {
		m = &c->meta[i];
		if (atomic_load_explicit(&m->nwords, memory_order_relaxed) ==
		    words && atomic_load_explicit(&m->hash,
		    memory_order_relaxed) == hash &&
		    memcmp((const void *)m->ident, w, words * 8) == 0) {
			*ret_new = 0;
			return i;
		}
	}
	for (i = base; i < base + HC_WAYS; i++)
		if (atomic_load_explicit(&c->meta[i].nwords,
		    memory_order_relaxed) == 0)
			return i;
	/* Each entry's bit is cleared at most once: bounded. */
	for (turn = 0; turn < 2 * HC_WAYS; turn++) {
		i = base + c->hand[set];
		c->hand[set] = (uint8_t)((c->hand[set] + 1) % HC_WAYS);
		if (atomic_load_explicit(&c->keys[i].ref,
		    memory_order_relaxed) == 0)
			break;
		atomic_store_explicit(&c->keys[i].ref, 0,
		    memory_order_relaxed);
	}
	bump(&shard(c)->evictions);
	return i;
}

void
hc_put(struct hc *c, const char *customer, const uint8_t *blob,
    size_t blob_len, const struct xm_rec *at, uint64_t expires_ms,
    const uint8_t *dek, size_t dek_len)
{
	uint64_t w[HC_WORDS], key[HC_DEK_WORDS], hash, s;
	struct hc_meta *m;
	struct hc_key *k;
	size_t words, i, j;
	int fresh;

	if (c == NULL || blob_len == 0 || blob_len > XTCMK_BLOB_MAX ||
	    dek_len < HC_DEK_MIN || dek_len > HC_DEK_MAX ||
	    strlen(customer) > XW_CUSTOMER_MAX ||
	    at->state != XM_STATE_ACTIVE ||
	    pthread_mutex_trylock(&c->mu) != 0)
		return;
	if (keys_alloc(c) < 0)
		goto out;
	words = ident_of(customer, blob, blob_len, w);
	hash = ident_hash(c, w, words);
	i = slot_for(c, hash, w, words, &fresh);
	wipe(c, i);
	k = &c->keys[i];
	m = &c->meta[i];
	memset(key, 0, sizeof(key));
	memcpy(key, dek, dek_len);
	s = write_begin(k);
	for (j = 0; j < HC_DEK_WORDS; j++)
		atomic_store_explicit(&k->dek[j], key[j],
		    memory_order_relaxed);
	atomic_store_explicit(&k->len, (uint8_t)dek_len, memory_order_relaxed);
	explicit_bzero(key, sizeof(key));
	for (j = 0; j < words; j++)
		atomic_store_explicit(&m->ident[j], w[j],
		    memory_order_relaxed);
	atomic_store_explicit(&m->hash, hash, memory_order_relaxed);
	atomic_store_explicit(&m->file_id, at->file_id, memory_order_relaxed);
	atomic_store_explicit(&m->rev_gen, at->rev_gen, memory_order_relaxed);
	atomic_store_explicit(&m->expires_ms, expires_ms,
	    memory_order_relaxed);
	atomic_store_explicit(&m->nwords, (uint32_t)words,
	    memory_order_relaxed);
	atomic_store_explicit(&k->ref, 1, memory_order_relaxed);
	write_end(k, s);
	atomic_fetch_add_explicit(&c->entries, 1, memory_order_relaxed);
	bump(&shard(c)->inserts);
	(void)fresh;
out:
	pthread_mutex_unlock(&c->mu);
}

void
hc_get_stats(struct hc *c, struct hc_stats *ret)
{
	unsigned i;

	memset(ret, 0, sizeof(*ret));
	if (c == NULL)
		return;
	for (i = 0; i < XM_SHARDS; i++) {
		ret->hits += atomic_load(&c->shard[i].hits);
		ret->misses += atomic_load(&c->shard[i].misses);
		ret->inserts += atomic_load(&c->shard[i].inserts);
		ret->evictions += atomic_load(&c->shard[i].evictions);
		ret->invalid += atomic_load(&c->shard[i].invalid);
	}
	ret->entries = atomic_load(&c->entries);
}
