/*
 * dekcache.c - unwrapped DEKs kept inside the host process, for customers
 * whose versioning policy sets host_cache_ttl (xtcmk-policy(7)).
 *
 * The keys live in one anonymous mapping that is locked (mlock), left
 * out of core dumps (MADV_DONTDUMP) and zeroed in forked children
 * (MADV_WIPEONFORK); without all three nothing is cached.  Each key slot
 * carries a "present" byte inside that mapping, so a child, whose copy
 * was zeroed, finds nothing.  An entry is served only under the same
 * memory-cache file and revocation generation it was stored under, with
 * the key active and its lifetime not over: the agent advances the
 * generation before it acts on a revocation, so revocation keeps its
 * bound for keys cached here.  Entries are wiped on eviction, on any
 * failed check and at close.  One mutex per handle, taken with trylock
 * only (a busy cache is a miss; a child forked while it was held never
 * blocks on it).  A child caches nothing: locks are not inherited.
 */
#include <sys/mman.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dekcache.h"
#include "wire.h"
#include "xtcmk.h"

struct hc_key {			/* in the locked mapping */
	uint8_t		dek[HC_DEK_MAX];
	uint8_t		len;
	uint8_t		present;
	uint8_t		pad[62];
};
_Static_assert(HC_DEK_MAX == XTCMK_DEK_MAX, "the host cache holds every "
    "DEK length the API takes");

struct hc_meta {		/* not secret */
	uint64_t	hash;		/* of customer and blob */
	uint64_t	file_id, rev_gen, expires_ms, used;
	uint16_t	blob_len;
	char		customer[XW_CUSTOMER_MAX + 1];
	uint8_t		blob[XTCMK_BLOB_MAX];
};

struct hc {
	pthread_mutex_t	 mu;
	pid_t		 pid;		/* the process whose keys these are */
	struct hc_key	*keys;		/* HC_ENTRIES_MAX, locked; or NULL */
	struct hc_meta	*meta;
	int		 failed;	/* could not lock: never cache */
	uint64_t	 clock;		/* LRU stamps */
	struct hc_stats	 st;
};

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n-- > 0)
		h = (h ^ *b++) * 1099511628211ULL;
	return h;
}

static uint64_t
key_hash(const char *customer, const uint8_t *blob, size_t len)
{
	return fnv(fnv(14695981039346656037ULL, customer,
	    strlen(customer) + 1), blob, len);
}

struct hc *
hc_new(void)
{
	struct hc *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

static size_t
keys_size(void)
{
	return HC_ENTRIES_MAX * sizeof(struct hc_key);
}

/* The locked, undumped, wiped-on-fork key memory; 0 or -1. */
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
	c->pid = getpid();
	return 0;
}

static void
wipe(struct hc *c, size_t i)
{
	explicit_bzero(&c->keys[i], sizeof(c->keys[i]));
	c->meta[i].hash = 0;
	c->meta[i].used = 0;
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

static int
find(struct hc *c, uint64_t h, const char *customer, const uint8_t *blob,
    size_t len)
{
	size_t i;

	for (i = 0; i < HC_ENTRIES_MAX; i++) {
		struct hc_meta *m = &c->meta[i];

		if (m->used != 0 && m->hash == h && m->blob_len == len &&
		    strcmp(m->customer, customer) == 0 &&
		    memcmp(m->blob, blob, len) == 0)
			return (int)i;
	}
	return -1;
}

int
hc_get(struct hc *c, const char *customer, const uint8_t *blob,
    size_t blob_len, const struct xm_rec *now, uint64_t now_ms,
    uint8_t *dek, size_t *dek_len)
{
	int i, hit = 0;

	if (c == NULL || blob_len > XTCMK_BLOB_MAX ||
	    pthread_mutex_trylock(&c->mu) != 0)
		return 0;
	if (c->keys == NULL || c->pid != getpid() ||
	    (i = find(c, key_hash(customer, blob, blob_len), customer, blob,
	    blob_len)) < 0 || !c->keys[i].present) {
		c->st.misses++;
		goto out;
	}
	if (c->meta[i].file_id != now->file_id ||
	    c->meta[i].rev_gen != now->rev_gen ||
	    now->state != XM_STATE_ACTIVE || now_ms >= c->meta[i].expires_ms) {
		wipe(c, (size_t)i);
		c->st.entries--;
		c->st.invalid++;
		c->st.misses++;
		goto out;
	}
	if (c->keys[i].len > *dek_len) {
		/* Not this caller's to take: the agent says TOOBIG. */
		c->st.misses++;
		goto out;
	}
	memcpy(dek, c->keys[i].dek, c->keys[i].len);
	*dek_len = c->keys[i].len;
	c->meta[i].used = ++c->clock;
	c->st.hits++;
	hit = 1;
out:
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void
hc_put(struct hc *c, const char *customer, const uint8_t *blob,
    size_t blob_len, const struct xm_rec *at, uint64_t expires_ms,
    const uint8_t *dek, size_t dek_len)
{
	uint64_t h;
	size_t i, victim = 0;
	int at_i;

	if (c == NULL || blob_len == 0 || blob_len > XTCMK_BLOB_MAX ||
	    dek_len < HC_DEK_MIN || dek_len > HC_DEK_MAX ||
	    strlen(customer) > XW_CUSTOMER_MAX ||
	    at->state != XM_STATE_ACTIVE ||
	    pthread_mutex_trylock(&c->mu) != 0)
		return;
	if (keys_alloc(c) < 0 || c->pid != getpid())
		goto out;
	h = key_hash(customer, blob, blob_len);
	if ((at_i = find(c, h, customer, blob, blob_len)) >= 0)
		victim = (size_t)at_i;
	else {
		for (i = 0; i < HC_ENTRIES_MAX; i++) {
			if (c->meta[i].used == 0) {
				victim = i;
				break;
			}
			if (c->meta[i].used < c->meta[victim].used)
				victim = i;
		}
		if (c->meta[victim].used != 0) {
			c->st.evictions++;
			c->st.entries--;
		}
		c->st.entries++;
	}
	wipe(c, victim);
	memcpy(c->keys[victim].dek, dek, dek_len);
	c->keys[victim].len = (uint8_t)dek_len;
	c->keys[victim].present = 1;
	c->meta[victim].hash = h;
	c->meta[victim].file_id = at->file_id;
	c->meta[victim].rev_gen = at->rev_gen;
	c->meta[victim].expires_ms = expires_ms;
	c->meta[victim].blob_len = (uint16_t)blob_len;
	memcpy(c->meta[victim].customer, customer, strlen(customer) + 1);
	memcpy(c->meta[victim].blob, blob, blob_len);
	c->meta[victim].used = ++c->clock;
	c->st.inserts++;
out:
	pthread_mutex_unlock(&c->mu);
}

void
hc_get_stats(struct hc *c, struct hc_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (c == NULL || pthread_mutex_trylock(&c->mu) != 0)
		return;
	*ret = c->st;
	pthread_mutex_unlock(&c->mu);
}
