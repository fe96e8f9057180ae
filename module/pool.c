/*
 * pool.c - the handle's connection pool inside libxtcmk (see pool.h).
 *
 * A guest in the host's process: libc and pthread only, no atfork
 * handler, no thread, no constructor.  Fork safety without atfork: a pool
 * belongs to the process that made it; a child detects the pid change
 * before touching any lock and installs a pool of its own.
 */
#include <sys/mman.h>
#include <sys/types.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "xtcmk.h"
#include "dekcache.h"
#include "pool.h"
#include "shm.h"

struct xtcmk_pool *
pool_new(struct xtcmk_pool *prev)
{
	struct xtcmk_pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return NULL;
	}
	p->pid = getpid();
	p->prev = prev;
	return p;
}

/*
 * Close every connection of a pool, without its lock.  For a pool of this
 * process only when no call is inside; for an inherited pool, xc_close
 * closes the child's copy only if it is still the same socket.
 */
static void
pool_drop_all(struct xtcmk_pool *p)
{
	struct xtcmk_chunk *ch;
	size_t i;

	for (ch = __atomic_load_n(&p->chunks, __ATOMIC_ACQUIRE); ch != NULL;
	    ch = ch->next)
		for (i = 0; i < XTCMK_CHUNK_SLOTS; i++)
			if (__atomic_load_n(&ch->slot[i].c.fd,
			    __ATOMIC_ACQUIRE) >= 0)
				xc_close(&ch->slot[i].c);
}

/* Free a pool chain (connections already dropped). */
static void
pool_free(struct xtcmk_pool *p, pid_t me)
{
	struct xtcmk_pool *prev;
	struct xtcmk_chunk *ch, *next;

	for (; p != NULL; p = prev) {
		prev = p->prev;
		for (ch = p->chunks; ch != NULL; ch = next) {
			next = ch->next;
			free(ch);
		}
		/* An inherited mutex may be locked for ever: never touch it. */
		if (p->pid == me)
			pthread_mutex_destroy(&p->lock);
		free(p);
	}
}

/*
 * The pool of this process.  In a forked child the first call installs a
 * fresh pool (compare-and-swap, so concurrent first calls agree) and
 * closes the inherited descriptors; no inherited lock is ever taken.
 */
struct xtcmk_pool *
pool_get(struct xtcmk *h)
{
	struct xtcmk_pool *p, *np;
	pid_t me = getpid();

	p = __atomic_load_n(&h->pool, __ATOMIC_ACQUIRE);
	while (p->pid != me) {
		if ((np = pool_new(p)) == NULL)
			return NULL;
		if (__atomic_compare_exchange_n(&h->pool, &p, np, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			pool_drop_all(p);
			return np;
		}
		/* Another thread of this child won; p is now its pool. */
		np->prev = NULL;
		pool_free(np, me);
	}
	return p;
}

/* Called with p->lock held: a free slot, allocating a chunk if needed. */
static struct xtcmk_slot *
slot_alloc(struct xtcmk_pool *p)
{
	struct xtcmk_chunk *ch;
	struct xtcmk_slot *s;
	size_t i;

	if (p->free == NULL) {
		if ((ch = calloc(1, sizeof(*ch))) == NULL)
			return NULL;
		for (i = 0; i < XTCMK_CHUNK_SLOTS; i++) {
			ch->slot[i].c.fd = -1;
			ch->slot[i].next = i + 1 < XTCMK_CHUNK_SLOTS ?
			    &ch->slot[i + 1] : NULL;
		}
		ch->next = p->chunks;
		__atomic_store_n(&p->chunks, ch, __ATOMIC_RELEASE);
		p->free = &ch->slot[0];
	}
	s = p->free;
	p->free = s->next;
	return s;
}

/*
 * A slot for one call: an idle connection (s->c.fd >= 0) or an empty slot
 * to connect in.  The call owns the slot until pool_put.
 */
int
pool_take(struct xtcmk *h, struct xtcmk_pool **ret_pool,
    struct xtcmk_slot **ret_slot)
{
	struct xtcmk_pool *p;
	struct xtcmk_slot *s;

	if ((p = pool_get(h)) == NULL)
		return XTCMK_E_NOMEM;
	pthread_mutex_lock(&p->lock);
	if ((s = p->idle) != NULL) {
		p->idle = s->next;
		p->nidle--;
	} else if ((s = slot_alloc(p)) == NULL) {
		pthread_mutex_unlock(&p->lock);
		return XTCMK_E_NOMEM;
	}
	s->state = SLOT_BUSY;
	s->next = NULL;
	p->busy++;
	pthread_mutex_unlock(&p->lock);
	*ret_pool = p;
	*ret_slot = s;
	return 0;
}

void
pool_note(struct xtcmk_pool *p, int rc, const char *err)
{
	if (rc != 0) {
		p->err_code = rc;
		(void)snprintf(p->err, sizeof(p->err), "%s", err);
	} else if (p->err_code != 0) {
		p->err_code = 0;
		p->err[0] = '\0';
	}
}

/*
 * End a call that ended in `rc`: keep its connection idle (if still open
 * and the pool has room) or close it, and note the result for
 * xtcmk_handle_error.  The last call to end after xtcmk_close frees the
 * handle.
 */
void
pool_put(struct xtcmk *h, struct xtcmk_pool *p, struct xtcmk_slot *s, int rc,
    const char *err)
{
	int last;

	pthread_mutex_lock(&p->lock);
	pool_note(p, rc, err);
	if (s->c.fd >= 0 && p->nidle < XTCMK_POOL_MAX && !p->closing) {
		s->state = SLOT_IDLE;
		s->next = p->idle;
		p->idle = s;
		p->nidle++;
	} else {
		xc_close(&s->c);
		s->state = SLOT_FREE;
		s->next = p->free;
		p->free = s;
	}
	last = --p->busy == 0 && p->closing;
	pthread_mutex_unlock(&p->lock);
	if (last)
		handle_free(h);
}

/* Close every idle connection: after one went stale, the rest likely did. */
void
pool_flush(struct xtcmk_pool *p)
{
	struct xtcmk_slot *s;

	while ((s = p->idle) != NULL) {
		p->idle = s->next;
		xc_close(&s->c);
		s->state = SLOT_FREE;
		s->next = p->free;
		p->free = s;
	}
	p->nidle = 0;
}

void
handle_free(struct xtcmk *h)
{
	struct xtcmk_pool *p = __atomic_load_n(&h->pool, __ATOMIC_ACQUIRE);
	struct xtcmk_pool *q;

	for (q = p; q != NULL; q = q->prev)
		pool_drop_all(q);
	pool_free(p, getpid());
	xm_client_free(h->fast);
	hc_free(h->dek_cache);
	if (h->fk != NULL)
		munmap(h->fk, (size_t)sysconf(_SC_PAGESIZE));
	free(h->path);
	free(h);
}
