/*
 * pool.h - the handle of libxtcmk and its connection pool (module/pool.c):
 * per-process pools, fork detection without locks, connection slots a
 * forked child can find, and the handle's last error.
 *
 * Internal to libxtcmk.so (hidden symbols).  Functions returning int give
 * 0 or an enum xtcmk_result.
 */
#ifndef XTCMK_POOL_H
#define XTCMK_POOL_H

#include <sys/types.h>

#include <pthread.h>

#include "client.h"

#define XTCMK_POOL_MAX		8	/* idle connections kept per handle */
#define XTCMK_CHUNK_SLOTS	16	/* connection slots allocated at once */
#define XTCMK_ERR_MAX		512	/* error text, thread or handle */

/*
 * The connection pool.  Every connection a call uses lives in a slot of a
 * chunk owned by the pool, so the pool knows each descriptor it ever
 * handed out, idle or in flight.  A pool belongs to one process (`pid`):
 * a forked child never takes the inherited pool's lock (another parent
 * thread may have held it at fork time) nor talks on its connections; it
 * installs a fresh pool and closes its copies of every inherited
 * descriptor that fstat still shows to be the same socket.  Chunks are
 * only ever added (published with a release store) and freed with the
 * handle, so the child can walk them without the lock.
 */
enum { SLOT_FREE, SLOT_IDLE, SLOT_BUSY };

struct xtcmk_slot {
	struct xc_conn		 c;	/* c.fd -1 when not connected */
	int			 state;	/* SLOT_* */
	struct xtcmk_slot	*next;	/* idle or free list */
};

struct xtcmk_chunk {
	struct xtcmk_chunk	*next;
	struct xtcmk_slot	 slot[XTCMK_CHUNK_SLOTS];
};

struct xtcmk_pool {
	pid_t			 pid;	/* the process this pool belongs to */
	pthread_mutex_t		 lock;	/* guards everything below */
	unsigned		 busy;	/* calls inside */
	int			 closing; /* xtcmk_close ran; last call frees */
	size_t			 nidle;
	struct xtcmk_slot	*idle;	/* most recently used first */
	struct xtcmk_slot	*free;
	struct xtcmk_chunk	*chunks;
	struct xtcmk_pool	*prev;	/* the pool inherited at fork */
	int			 err_code; /* last failed call on the handle */
	char			 err[XTCMK_ERR_MAX];
};

struct xm_client;
struct hc;

struct xtcmk {
	char			*path;
	unsigned		 timeout_ms;
	struct xtcmk_pool	*pool;	/* atomic: replaced in a child */
	struct xm_client	*fast;	/* module/shm.c; NULL: socket only */
	struct hc		*dek_cache; /* module/dekcache.c; NULL: none */
	int			 closed;   /* atomic: xtcmk_close has begun */
	struct xtcmk_fork	*fk;	/* MADV_WIPEONFORK page; NULL: no
					 * fast path */
};

#define XTCMK_BUSY_SHARDS	16	/* fast-path user counts, per thread */
#define XTCMK_BUSY_LINE		128	/* bytes each count is aligned to */

/*
 * Per-process state of a handle, in a MADV_WIPEONFORK page: a forked
 * child reads it all zero.  Fast-path users are counted per thread
 * shard, so that threads on other cores never write the same line.
 */
struct xtcmk_fork {
	int			 unforked;  /* 1: this process's pool is in */
	int			 opener;    /* 1 in the process that opened
					     * the handle: its DEK cache */
	struct {
		unsigned	 n;	    /* atomic: fast-path users inside */
	} __attribute__((aligned(XTCMK_BUSY_LINE))) busy[XTCMK_BUSY_SHARDS];
};

_Static_assert(sizeof(struct xtcmk_fork) <= 4096, "one page");

/* A fresh pool for this process; `prev` is the one it replaces. */
struct xtcmk_pool *pool_new(struct xtcmk_pool *prev);
/* This process's pool of h, installing one in a forked child; NULL: OOM. */
struct xtcmk_pool *pool_get(struct xtcmk *h);
/* A slot for one call; XTCMK_E_NOMEM. */
int	pool_take(struct xtcmk *h, struct xtcmk_pool **ret_pool,
	    struct xtcmk_slot **ret_slot);
/* End a call that ended in rc (with `err` its text); may free h. */
void	pool_put(struct xtcmk *h, struct xtcmk_pool *p, struct xtcmk_slot *s,
	    int rc, const char *err);
/* With p->lock held: note a result for xtcmk_handle_error. */
void	pool_note(struct xtcmk_pool *p, int rc, const char *err);
/* With p->lock held: close the idle connections. */
void	pool_flush(struct xtcmk_pool *p);
/* Close everything and free h (no call inside). */
void	handle_free(struct xtcmk *h);

#endif
