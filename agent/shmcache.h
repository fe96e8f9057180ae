/*
 * shmcache.h - the agent's side of the host-local fast path: publishes
 * decisions and per-customer key state in a memory-mapped file that
 * libxtcmk reads without a round trip (format: common/memcache.h).
 */
#ifndef XTCMK_SHMCACHE_H
#define XTCMK_SHMCACHE_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "xerr.h"

struct shmcache;

/*
 * Create a fresh file at `path` (a temporary name renamed into place),
 * readable as `mode` and, if gid is not (gid_t)-1, by that group; retire
 * the file it replaces; start the heartbeat thread.  nslots 0: default.
 */
int	shmcache_open(const char *path, mode_t mode, gid_t gid,
	    uint32_t nslots, struct shmcache **ret_sc, struct xerr *e);
/* Retire and remove the file, stop the heartbeat.  Accepts NULL. */
void	shmcache_close(struct shmcache *sc);
/*
 * The data the decisions depend on is now at (rg, pg): if that differs
 * from what the published records were computed from, invalidate them
 * all (one store to the header) before returning.
 */
void	shmcache_sync(struct shmcache *sc, unsigned long long rg,
	    unsigned long long pg);
/*
 * Publish the DECIDE payload of `id`, computed from data at (rg, pg),
 * if that is still current (now_rg, now_pg).  Oversize payloads and full
 * probe chains are counted, not published.
 */
void	shmcache_publish(struct shmcache *sc, const char *id,
	    const uint8_t *payload, size_t len, unsigned long long rg,
	    unsigned long long pg, unsigned long long now_rg,
	    unsigned long long now_pg);
/* The key state of `id` (enum xm_state) as just found: if it differs
 * from the record's, or `changed`, a new revocation generation, written
 * before the change is acknowledged. */
void	shmcache_key_state(struct shmcache *sc, const char *id, int state,
	    int changed);
/* `id` moved or was removed: a new revocation generation, same state. */
void	shmcache_customer_bump(struct shmcache *sc, const char *id);
/* Counters for `xtcmkctl stats`; NULL sc gives {"enabled": false}. */
json_t	*shmcache_stats(struct shmcache *sc);

#endif
