/*
 * keycache.h - the agent's cache of unwrapped data keys (DEKs).
 *
 * Bounded in entries and in lifetime (per-entry TTL on the monotonic
 * clock); all DEKs live in one mmap'ed region that is mlock'ed (when the
 * RLIMIT_MEMLOCK allows), excluded from core dumps and wiped in forked
 * children; an entry is wiped with OPENSSL_cleanse when evicted, expired
 * or purged.  Least recently used entries are evicted first.
 *
 * An entry's key is SHA-256(customer, 0, kid, 0, blob bytes): a hit can
 * only return the DEK of the very blob that was unwrapped, for the same
 * customer and key id.
 *
 * keycache_get_or_load() is single flight: concurrent misses for one key
 * cost one loader call; the others wait for its result, success or error.
 *
 * Thread-safe.  Capacity 0 disables caching (single flight still works).
 */
#ifndef XTCMK_KEYCACHE_H
#define XTCMK_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "xerr.h"

#define KEYCACHE_CAPACITY_MAX	(1024 * 1024)	/* entries */
#define KEYCACHE_TTL_MAX	(7 * 86400)	/* seconds; longer is cut */
#define KEYCACHE_DEK_MIN	16		/* DEK lengths, bytes */
#define KEYCACHE_DEK_MAX	XTCMK_DEK_MAX

struct keycache;

struct keycache_stats {
	size_t			entries;
	size_t			capacity;
	unsigned long long	hits;
	unsigned long long	misses;
	unsigned long long	loads;		/* loader calls */
	unsigned long long	load_errors;
	unsigned long long	evictions;	/* pushed out when full */
	unsigned long long	expired;	/* dropped past their TTL */
	unsigned long long	purged;		/* dropped by purge calls */
	size_t			locked_bytes;	/* 0 if mlock was refused */
	int			locked;
};

/*
 * Loads the DEK on a miss (parse the blob, unwrap, verify the tag).
 * Returns 0 and fills `dek` with *ret_len bytes (KEYCACHE_DEK_MIN..MAX),
 * or a negative code with a sentence in `e`.
 */
typedef int (*keycache_loader)(void *arg, uint8_t dek[KEYCACHE_DEK_MAX],
    size_t *ret_len, struct xerr *e);

int	keycache_new(size_t capacity, struct keycache **ret_cache,
	    struct xerr *e);
/* Wipes every entry; accepts NULL. */
void	keycache_free(struct keycache *c);

/*
 * The DEK of (customer, kid, blob) and its length: from the cache, or
 * from one call of `loader` shared by every concurrent caller for the
 * same key.  A loaded DEK is cached for `ttl_s` seconds (0: not cached).
 */
int	keycache_get_or_load(struct keycache *c, const char *customer,
	    const char *kid, const uint8_t *blob, size_t blob_len,
	    unsigned ttl_s, keycache_loader loader, void *loader_arg,
	    uint8_t ret_dek[KEYCACHE_DEK_MAX], size_t *ret_len,
	    struct xerr *e);
/* Cache hit only: 0, or -XTCMK_E_NOT_FOUND on a miss. */
int	keycache_lookup(struct keycache *c, const char *customer,
	    const char *kid, const uint8_t *blob, size_t blob_len,
	    uint8_t ret_dek[KEYCACHE_DEK_MAX], size_t *ret_len);
/* Insert (or refresh) a DEK the caller already holds, e.g. a new one;
 * -XTCMK_E_INVAL for a length outside KEYCACHE_DEK_MIN..MAX. */
int	keycache_put(struct keycache *c, const char *customer,
	    const char *kid, const uint8_t *blob, size_t blob_len,
	    const uint8_t *dek, size_t dek_len, unsigned ttl_s);

/* Wipe every entry of `customer`; returns how many.  Loads in flight
 * when a purge happens return their result but do not cache it. */
size_t	keycache_purge_customer(struct keycache *c, const char *customer);
/* Wipe every entry of one key version (`kid`, with its version) of
 * `customer`; returns how many.  In-flight loads are not cached. */
size_t	keycache_purge_version(struct keycache *c, const char *customer,
	    const char *kid);
/* Wipe everything; returns how many. */
size_t	keycache_purge_all(struct keycache *c);
/* Wipe expired entries now (they also go lazily); returns how many. */
size_t	keycache_expire(struct keycache *c);
/* New capacity: rebuilds the region, dropping every entry. */
int	keycache_set_limits(struct keycache *c, size_t capacity,
	    struct xerr *e);
void	keycache_stats(struct keycache *c, struct keycache_stats *ret_stats);

#endif
