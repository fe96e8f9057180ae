/*
 * shm.h - libxtcmk's reader of the host-local fast path (module/shm.c).
 * Internal to the module; the format is common/memcache.h.
 */
#ifndef XTCMK_SHM_H
#define XTCMK_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "memcache.h"

struct xtcmk_fastpath_stats;

#define XM_SHARDS	16	/* counter shards per handle */
#define XM_LINE		128	/* bytes a shard is aligned to */

/* This thread's counter shard, 0..XM_SHARDS-1 (threads take turns). */
unsigned xm_thread_shard(void);

/* Why a lookup did not answer (and the counter it lands in). */
enum xm_why {
	XM_HIT = 0,
	XM_MISS,
	XM_DISABLED,
	XM_NO_FILE,
	XM_STALE,
	XM_HEARTBEAT,
	XM_RECYCLED,
	XM_BUSY,
	XM_BAD,
	XM__WHY_COUNT
};

/* A file's geometry, checked once and copied out of the mapping. */
struct xm_geom {
	uint32_t	nslots, slot_size, probe_max, bound_ms;
	uint64_t	seed[2];
	uint64_t	file_id;
	size_t		size;
};

/* What a hit says about the customer's key, besides the decision. */
struct xm_rec {
	uint64_t	file_id;	/* the file it came from */
	uint64_t	rev_gen;	/* revocation generation */
	uint32_t	state;		/* enum xm_state */
};

/* Check a mapped header against the file size: 0 or -1. */
int	xm_geom_check(const uint8_t *base, size_t size, struct xm_geom *ret_g);
/*
 * Look `id` up in a checked mapping at time now_ms (CLOCK_MONOTONIC):
 * XM_HIT with the payload copied to buf (at most cap bytes) and its
 * length in *ret_len, or the reason to ask the socket.
 */
enum xm_why xm_lookup(const struct xm_geom *g, const uint8_t *base,
	    const char *id, size_t idlen, uint64_t now_ms, uint8_t *buf,
	    size_t cap, size_t *ret_len, struct xm_rec *ret_rec);

struct xm_client;

/* Per handle; reads XTCMK_NO_MEMCACHE and XTCMK_MEMCACHE.  NULL: OOM. */
struct xm_client *xm_client_new(const char *socket_path);
void	xm_client_free(struct xm_client *c);
/* 1 with a payload for `id` in buf, or 0: ask the socket. */
int	xm_client_lookup(struct xm_client *c, const char *id, uint8_t *buf,
	    size_t cap, size_t *ret_len);
/*
 * The key record of `id` and its decision's host_cache_ttl (seconds) for
 * the DEK cache, not counted in the decision counters: XM_HIT or why
 * not.  For a record invalidated since (XM_STALE, republished by a
 * DECIDE) only *ret_ttl_s is set, from the old decision.
 */
enum xm_why xm_client_key(struct xm_client *c, const char *id,
	    struct xm_rec *ret_rec, uint64_t *ret_ttl_s);
/* The payload of the last hit failed to parse: count it as bad. */
void	xm_client_bad(struct xm_client *c);
void	xm_client_stats(struct xm_client *c,
	    struct xtcmk_fastpath_stats *ret_stats);

#endif
