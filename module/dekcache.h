/*
 * dekcache.h - libxtcmk's cache of unwrapped DEKs (module/dekcache.c),
 * opt-in per customer by the versioning policy's host_cache_ttl.
 */
#ifndef XTCMK_DEKCACHE_H
#define XTCMK_DEKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

#define HC_ENTRIES_MAX	256	/* DEKs per handle, least recently used out */

struct hc;

struct hc_stats {
	uint64_t	hits, misses, inserts, evictions, invalid;
	uint64_t	entries;
};

/* NULL on OOM only; the locked memory comes at the first insert. */
struct hc	*hc_new(void);
/* Wipe and release.  Accepts NULL. */
void	 hc_free(struct hc *c);
#define HC_DEK_MIN	16	/* DEK lengths kept, bytes */
#define HC_DEK_MAX	64

/*
 * The DEK of (customer, blob) if cached under the same file and
 * revocation generation as `now`, the key active, and not expired: 1
 * with dek and *dek_len (the room in dek on entry) written, else 0 (an
 * entry that failed a check is wiped; one longer than the room stays).
 */
int	 hc_get(struct hc *c, const char *customer, const uint8_t *blob,
	    size_t blob_len, const struct xm_rec *now, uint64_t now_ms,
	    uint8_t *dek, size_t *dek_len);
/* Keep a DEK (HC_DEK_MIN..HC_DEK_MAX bytes) unwrapped while the
 * customer's record read `at`. */
void	 hc_put(struct hc *c, const char *customer, const uint8_t *blob,
	    size_t blob_len, const struct xm_rec *at, uint64_t expires_ms,
	    const uint8_t *dek, size_t dek_len);
void	 hc_get_stats(struct hc *c, struct hc_stats *ret);

#endif
