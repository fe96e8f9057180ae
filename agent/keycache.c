/*
 * keycache.c - the DEK cache with single-flight loads (see keycache.h).
 *
 * Entries (lookup key, customer digest, DEK, expiry) sit in one anonymous
 * mapping, locked and kept out of core dumps; the bookkeeping that holds
 * no secret (hash chains, LRU links, free list) is ordinary heap.  The
 * hash table is indexed by the first bytes of the entry key, itself a
 * SHA-256, so it needs no hash function of its own.
 *
 * Loads in flight are kept in a short list: a miss first looks there and,
 * if a load of the same key is under way, waits on that flight's condition
 * variable.  The leader removes the flight from the list before it wakes
 * the waiters, and the last one out frees it.
 */
#include <sys/mman.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "keycache.h"

#define DIGEST_LEN	32

struct kc_entry {			/* in the locked region */
	uint8_t		key[DIGEST_LEN];
	uint8_t		cust[DIGEST_LEN];
	uint8_t		ver[DIGEST_LEN];	/* SHA-256(customer, 0, kid) */
	uint8_t		dek[KEYCACHE_DEK_MAX];
	uint8_t		dek_len;
	uint64_t	expires_ns;
};

struct kc_link {			/* heap: no secrets */
	int32_t		hnext;		/* hash chain */
	int32_t		prev;		/* LRU (or free list: next only) */
	int32_t		next;
	uint8_t		used;
};

struct kc_flight {
	struct kc_flight *next;
	uint8_t		key[DIGEST_LEN];
	pthread_cond_t	cv;
	unsigned	waiters;
	int		done;
	int		rc;
	uint64_t	gen;
	struct xerr	err;
	uint8_t		dek[KEYCACHE_DEK_MAX];
	size_t		dek_len;
};

struct keycache {
	pthread_mutex_t	 mu;
	/* region */
	struct kc_entry	*ent;
	size_t		 map_len;
	size_t		 cap;
	int		 locked;
	struct kc_link	*link;
	int32_t		*bucket;
	size_t		 nbucket;	/* power of two */
	int32_t		 lru_head;	/* most recently used */
	int32_t		 lru_tail;
	int32_t		 free_head;
	size_t		 n;
	/* purges bump gen; a load that started before one is not cached */
	uint64_t	 gen;
	struct kc_flight *flights;
	struct keycache_stats st;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* SHA-256(customer, 0, kid): what a purge of one key version matches. */
static int
version_key(const char *customer, const char *kid, uint8_t ver[DIGEST_LEN])
{
	static const uint8_t zero;
	EVP_MD_CTX *md;
	unsigned int len;
	int rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, customer, strlen(customer)) == 1 &&
	    EVP_DigestUpdate(md, &zero, 1) == 1 &&
	    EVP_DigestUpdate(md, kid, strlen(kid)) == 1 &&
	    EVP_DigestFinal_ex(md, ver, &len) == 1 && len == DIGEST_LEN)
		rc = 0;
	EVP_MD_CTX_free(md);
	return rc;
}

/* Returns 0, or -1 if OpenSSL cannot hash (no default provider). */
static int
entry_key(const char *customer, const char *kid, const uint8_t *blob,
    size_t blob_len, uint8_t key[DIGEST_LEN], uint8_t cust[DIGEST_LEN],
    uint8_t ver[DIGEST_LEN])
{
	static const uint8_t zero;
	EVP_MD_CTX *md;
	unsigned int len;
	int rc = -1;

	if (SHA256((const unsigned char *)customer, strlen(customer),
	    cust) == NULL)
		return -1;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, customer, strlen(customer)) == 1 &&
	    EVP_DigestUpdate(md, &zero, 1) == 1 &&
	    EVP_DigestUpdate(md, kid, strlen(kid)) == 1 &&
	    EVP_DigestUpdate(md, &zero, 1) == 1 &&
	    EVP_DigestUpdate(md, blob, blob_len) == 1 &&
	    EVP_DigestFinal_ex(md, key, &len) == 1 && len == DIGEST_LEN)
		rc = 0;
	EVP_MD_CTX_free(md);
	if (rc == 0 && ver != NULL)
		rc = version_key(customer, kid, ver);
	return rc;
}

/* ---- region ---- */

static void
region_fini(struct keycache *c)
{
	if (c->ent != NULL) {
		OPENSSL_cleanse(c->ent, c->map_len);
		if (c->locked)
			munlock(c->ent, c->map_len);
		munmap(c->ent, c->map_len);
	}
	free(c->link);
	free(c->bucket);
	c->ent = NULL;
	c->link = NULL;
	c->bucket = NULL;
	c->map_len = 0;
	c->cap = 0;
	c->nbucket = 0;
	c->locked = 0;
	c->n = 0;
	c->lru_head = c->lru_tail = c->free_head = -1;
}

static int
region_init(struct keycache *c, size_t cap, struct xerr *e)
{
	size_t page, i;
	void *m;

	c->ent = NULL;
	c->link = NULL;
	c->bucket = NULL;
	c->map_len = 0;
	c->cap = 0;
	c->nbucket = 0;
	c->locked = 0;
	c->n = 0;
	c->lru_head = c->lru_tail = c->free_head = -1;
	if (cap > KEYCACHE_CAPACITY_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "DEK cache capacity %zu is "
		    "over the limit %d", cap, KEYCACHE_CAPACITY_MAX);
	if (cap == 0)
		return 0;
	page = (size_t)sysconf(_SC_PAGESIZE);
	c->map_len = (cap * sizeof(struct kc_entry) + page - 1) / page * page;
	m = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		c->map_len = 0;
		return xerr_set(e, XTCMK_E_NOMEM, "cannot map %zu entries for "
		    "the DEK cache: lower its capacity", cap);
	}
	c->ent = m;
	if (mlock(m, c->map_len) == 0)
		c->locked = 1;
	else if (errno != EPERM && errno != ENOMEM && errno != EAGAIN) {
		region_fini(c);
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot lock the DEK "
		    "cache in memory: %s", strerror(errno));
	}
#ifdef MADV_DONTDUMP
	(void)madvise(m, c->map_len, MADV_DONTDUMP);
#endif
#ifdef MADV_WIPEONFORK
	(void)madvise(m, c->map_len, MADV_WIPEONFORK);
#endif
	for (c->nbucket = 1; c->nbucket < cap * 2; c->nbucket <<= 1)
		;
	c->link = calloc(cap, sizeof(*c->link));
	c->bucket = malloc(c->nbucket * sizeof(*c->bucket));
	if (c->link == NULL || c->bucket == NULL) {
		region_fini(c);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory for the DEK "
		    "cache index");
	}
	for (i = 0; i < c->nbucket; i++)
		c->bucket[i] = -1;
	/* Free list through `next`, in index order. */
	for (i = 0; i < cap; i++)
		c->link[i].next = i + 1 < cap ? (int32_t)(i + 1) : -1;
	c->free_head = 0;
	c->cap = cap;
	return 0;
}

static size_t
bucket_of(const struct keycache *c, const uint8_t key[DIGEST_LEN])
{
	uint32_t h;

	h = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 |
	    (uint32_t)key[2] << 8 | key[3];
	return h & (c->nbucket - 1);
}

static int32_t
find(const struct keycache *c, const uint8_t key[DIGEST_LEN])
{
	int32_t i;

	if (c->cap == 0)
		return -1;
	for (i = c->bucket[bucket_of(c, key)]; i != -1; i = c->link[i].hnext)
		if (memcmp(c->ent[i].key, key, DIGEST_LEN) == 0)
			return i;
	return -1;
}

static void
lru_remove(struct keycache *c, int32_t i)
{
	struct kc_link *l = &c->link[i];

	if (l->prev != -1)
		c->link[l->prev].next = l->next;
	else
		c->lru_head = l->next;
	if (l->next != -1)
		c->link[l->next].prev = l->prev;
	else
		c->lru_tail = l->prev;
	l->prev = l->next = -1;
}

static void
lru_push_front(struct keycache *c, int32_t i)
{
	struct kc_link *l = &c->link[i];

	l->prev = -1;
	l->next = c->lru_head;
	if (c->lru_head != -1)
		c->link[c->lru_head].prev = i;
	c->lru_head = i;
	if (c->lru_tail == -1)
		c->lru_tail = i;
}

/* Unlink, wipe and free entry i. */
static void
drop(struct keycache *c, int32_t i)
{
	int32_t *pp;

	for (pp = &c->bucket[bucket_of(c, c->ent[i].key)]; *pp != -1;
	    pp = &c->link[*pp].hnext)
		if (*pp == i) {
			*pp = c->link[i].hnext;
			break;
		}
	lru_remove(c, i);
	OPENSSL_cleanse(&c->ent[i], sizeof(c->ent[i]));
	c->link[i].used = 0;
	c->link[i].hnext = -1;
	c->link[i].next = c->free_head;
	c->free_head = i;
	c->n--;
}

static void
insert(struct keycache *c, const uint8_t key[DIGEST_LEN],
    const uint8_t cust[DIGEST_LEN], const uint8_t ver[DIGEST_LEN],
    const uint8_t *dek, size_t dek_len, unsigned ttl_s)
{
	uint64_t now = now_ns();
	int32_t i;
	size_t b;

	if (c->cap == 0 || ttl_s == 0)
		return;
	if (ttl_s > KEYCACHE_TTL_MAX)
		ttl_s = KEYCACHE_TTL_MAX;
	if ((i = find(c, key)) == -1) {
		if (c->free_head == -1) {
			i = c->lru_tail;
			if (c->ent[i].expires_ns <= now)
				c->st.expired++;
			else
				c->st.evictions++;
			drop(c, i);
		}
		i = c->free_head;
		c->free_head = c->link[i].next;
		memcpy(c->ent[i].key, key, DIGEST_LEN);
		b = bucket_of(c, key);
		c->link[i].hnext = c->bucket[b];
		c->bucket[b] = i;
		c->link[i].used = 1;
		c->n++;
	} else
		lru_remove(c, i);
	memcpy(c->ent[i].cust, cust, DIGEST_LEN);
	memcpy(c->ent[i].ver, ver, DIGEST_LEN);
	OPENSSL_cleanse(c->ent[i].dek, sizeof(c->ent[i].dek));
	memcpy(c->ent[i].dek, dek, dek_len);
	c->ent[i].dek_len = (uint8_t)dek_len;
	c->ent[i].expires_ns = now + (uint64_t)ttl_s * 1000000000ULL;
	lru_push_front(c, i);
}

/* Called locked: 0 and the DEK on a live hit, -1 otherwise. */
static int
lookup_locked(struct keycache *c, const uint8_t key[DIGEST_LEN],
    uint8_t dek[KEYCACHE_DEK_MAX], size_t *ret_len)
{
	int32_t i;

	if ((i = find(c, key)) == -1)
		return -1;
	if (c->ent[i].expires_ns <= now_ns()) {
		c->st.expired++;
		drop(c, i);
		return -1;
	}
	memcpy(dek, c->ent[i].dek, c->ent[i].dek_len);
	*ret_len = c->ent[i].dek_len;
	lru_remove(c, i);
	lru_push_front(c, i);
	return 0;
}

/* ---- public ---- */

int
keycache_new(size_t capacity, struct keycache **ret_cache, struct xerr *e)
{
	struct keycache *c;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if ((rc = region_init(c, capacity, e)) < 0) {
		free(c);
		return rc;
	}
	pthread_mutex_init(&c->mu, NULL);
	*ret_cache = c;
	return 0;
}

void
keycache_free(struct keycache *c)
{
	if (c == NULL)
		return;
	/* Callers must not free the cache with loads in flight. */
	region_fini(c);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void
flight_free(struct kc_flight *f)
{
	pthread_cond_destroy(&f->cv);
	OPENSSL_clear_free(f, sizeof(*f));
}

int
keycache_get_or_load(struct keycache *c, const char *customer,
    const char *kid, const uint8_t *blob, size_t blob_len, unsigned ttl_s,
    keycache_loader loader, void *loader_arg,
    uint8_t ret_dek[KEYCACHE_DEK_MAX], size_t *ret_len, struct xerr *e)
{
	uint8_t key[DIGEST_LEN], cust[DIGEST_LEN], ver[DIGEST_LEN];
	uint8_t dek[KEYCACHE_DEK_MAX];
	struct kc_flight *f, **fp;
	struct xerr err;
	size_t dek_len = 0;
	int rc;

	if (c == NULL || customer == NULL || kid == NULL || blob == NULL ||
	    loader == NULL || ret_dek == NULL || ret_len == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "keycache: missing argument");
	if (entry_key(customer, kid, blob, blob_len, key, cust, ver) < 0)
		return xerr_set(e, XTCMK_E_INTERNAL, "keycache: SHA-256 is "
		    "not available from OpenSSL");

	pthread_mutex_lock(&c->mu);
	if (lookup_locked(c, key, ret_dek, ret_len) == 0) {
		c->st.hits++;
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	c->st.misses++;
	for (f = c->flights; f != NULL; f = f->next)
		if (memcmp(f->key, key, DIGEST_LEN) == 0)
			break;
	if (f != NULL) {
		/* Someone is loading this very key: wait for its result. */
		f->waiters++;
		while (!f->done)
			pthread_cond_wait(&f->cv, &c->mu);
		rc = f->rc;
		if (rc == 0) {
			memcpy(ret_dek, f->dek, f->dek_len);
			*ret_len = f->dek_len;
		} else if (e != NULL)
			*e = f->err;
		if (--f->waiters == 0)
			flight_free(f);
		pthread_mutex_unlock(&c->mu);
		return rc;
	}
	if ((f = calloc(1, sizeof(*f))) != NULL) {
		memcpy(f->key, key, DIGEST_LEN);
		pthread_cond_init(&f->cv, NULL);
		f->gen = c->gen;
		f->next = c->flights;
		c->flights = f;
	}
	/* Without memory for a flight, load alone (still correct). */
	pthread_mutex_unlock(&c->mu);

	xerr_clear(&err);
	rc = loader(loader_arg, dek, &dek_len, &err);
	if (rc >= 0 && (dek_len < KEYCACHE_DEK_MIN ||
	    dek_len > KEYCACHE_DEK_MAX))
		rc = xerr_set(&err, XTCMK_E_INTERNAL, "keycache: the key "
		    "loader returned a %zu-byte key", dek_len);
	if (rc > 0)
		rc = 0;
	if (rc < 0 && err.code == 0)
		xerr_set(&err, XTCMK_E_INTERNAL, "keycache: the key loader "
		    "failed without saying why");
	if (rc < 0)
		rc = -err.code;

	pthread_mutex_lock(&c->mu);
	c->st.loads++;
	if (rc < 0)
		c->st.load_errors++;
	if (f != NULL) {
		for (fp = &c->flights; *fp != NULL; fp = &(*fp)->next)
			if (*fp == f) {
				*fp = f->next;
				break;
			}
	}
	if (rc == 0 && (f == NULL || f->gen == c->gen))
		insert(c, key, cust, ver, dek, dek_len, ttl_s);
	if (f != NULL) {
		f->done = 1;
		f->rc = rc;
		f->err = err;
		if (rc == 0) {
			memcpy(f->dek, dek, dek_len);
			f->dek_len = dek_len;
		}
		if (f->waiters == 0)
			flight_free(f);
		else
			pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&c->mu);

	if (rc == 0) {
		memcpy(ret_dek, dek, dek_len);
		*ret_len = dek_len;
	} else if (e != NULL)
		*e = err;
	OPENSSL_cleanse(dek, sizeof(dek));
	return rc;
}

int
keycache_lookup(struct keycache *c, const char *customer, const char *kid,
    const uint8_t *blob, size_t blob_len, uint8_t ret_dek[KEYCACHE_DEK_MAX],
    size_t *ret_len)
{
	uint8_t key[DIGEST_LEN], cust[DIGEST_LEN];
	int rc;

	if (c == NULL || customer == NULL || kid == NULL || blob == NULL ||
	    ret_len == NULL ||
	    entry_key(customer, kid, blob, blob_len, key, cust, NULL) < 0)
		return -XTCMK_E_NOT_FOUND;
	pthread_mutex_lock(&c->mu);
	rc = lookup_locked(c, key, ret_dek, ret_len);
	if (rc == 0)
		c->st.hits++;
	else
		c->st.misses++;
	pthread_mutex_unlock(&c->mu);
	return rc == 0 ? 0 : -XTCMK_E_NOT_FOUND;
}

int
keycache_put(struct keycache *c, const char *customer, const char *kid,
    const uint8_t *blob, size_t blob_len, const uint8_t *dek, size_t dek_len,
    unsigned ttl_s)
{
	uint8_t key[DIGEST_LEN], cust[DIGEST_LEN], ver[DIGEST_LEN];

	if (c == NULL || customer == NULL || kid == NULL || blob == NULL ||
	    dek == NULL || dek_len < KEYCACHE_DEK_MIN ||
	    dek_len > KEYCACHE_DEK_MAX)
		return -XTCMK_E_INVAL;
	if (entry_key(customer, kid, blob, blob_len, key, cust, ver) < 0)
		return -XTCMK_E_INTERNAL;
	pthread_mutex_lock(&c->mu);
	insert(c, key, cust, ver, dek, dek_len, ttl_s);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Drop every entry whose customer (or, by_version, version) digest is d. */
static size_t
purge_where(struct keycache *c, int by_version, const uint8_t d[DIGEST_LEN])
{
	size_t i, n = 0;

	pthread_mutex_lock(&c->mu);
	c->gen++;
	for (i = 0; i < c->cap; i++)
		if (c->link[i].used && CRYPTO_memcmp(by_version ?
		    c->ent[i].ver : c->ent[i].cust, d, DIGEST_LEN) == 0) {
			drop(c, (int32_t)i);
			n++;
		}
	c->st.purged += n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

size_t
keycache_purge_customer(struct keycache *c, const char *customer)
{
	uint8_t cust[DIGEST_LEN];

	if (c == NULL || customer == NULL ||
	    SHA256((const unsigned char *)customer, strlen(customer),
	    cust) == NULL)
		return 0;
	return purge_where(c, 0, cust);
}

size_t
keycache_purge_version(struct keycache *c, const char *customer,
    const char *kid)
{
	uint8_t ver[DIGEST_LEN];

	if (c == NULL || customer == NULL || kid == NULL ||
	    version_key(customer, kid, ver) < 0)
		return 0;
	return purge_where(c, 1, ver);
}

size_t
keycache_purge_all(struct keycache *c)
{
	size_t i, n = 0;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	c->gen++;
	for (i = 0; i < c->cap; i++)
		if (c->link[i].used) {
			drop(c, (int32_t)i);
			n++;
		}
	c->st.purged += n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

size_t
keycache_expire(struct keycache *c)
{
	uint64_t now = now_ns();
	size_t i, n = 0;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	for (i = 0; i < c->cap; i++)
		if (c->link[i].used && c->ent[i].expires_ns <= now) {
			drop(c, (int32_t)i);
			n++;
		}
	c->st.expired += n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* Exchange the regions (entries and index) of a and b. */
static void
region_swap(struct keycache *a, struct keycache *b)
{
#define SWAP(f) do { __typeof__(a->f) t_ = a->f; a->f = b->f; b->f = t_; } \
	while (0)
	SWAP(ent);
	SWAP(map_len);
	SWAP(cap);
	SWAP(locked);
	SWAP(link);
	SWAP(bucket);
	SWAP(nbucket);
	SWAP(lru_head);
	SWAP(lru_tail);
	SWAP(free_head);
	SWAP(n);
#undef SWAP
}

int
keycache_set_limits(struct keycache *c, size_t capacity, struct xerr *e)
{
	struct keycache nr;
	int rc;

	if (c == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "keycache: no cache");
	/* Map and lock the new region without holding the lock. */
	memset(&nr, 0, sizeof(nr));
	if ((rc = region_init(&nr, capacity, e)) < 0)
		return rc;
	pthread_mutex_lock(&c->mu);
	c->st.purged += c->n;
	c->gen++;
	region_swap(c, &nr);
	pthread_mutex_unlock(&c->mu);
	region_fini(&nr);	/* the old region: wiped and unmapped */
	return 0;
}

void
keycache_stats(struct keycache *c, struct keycache_stats *ret_stats)
{
	struct keycache_stats st;

	memset(&st, 0, sizeof(st));
	if (c != NULL) {
		pthread_mutex_lock(&c->mu);
		st = c->st;
		st.entries = c->n;
		st.capacity = c->cap;
		st.locked = c->locked;
		st.locked_bytes = c->locked ? c->map_len : 0;
		pthread_mutex_unlock(&c->mu);
	}
	*ret_stats = st;
}
