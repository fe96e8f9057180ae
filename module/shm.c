/*
 * shm.c - libxtcmk's reader of the host-local fast path: decisions the
 * agent publishes in a memory-mapped file (common/memcache.h), read
 * without a lock or a system call.
 *
 * Nothing in the file is trusted beyond what a check here proves: the
 * geometry is checked once against the file's size and copied out, every
 * index is masked into that geometry, every length is bounded before a
 * copy, a record is kept only if its slot's sequence number was even and
 * unchanged around the copy, it names the customer asked for (id in the
 * slot and in the payload), and the header's generation was the
 * record's before and after the copy.  The agent's heartbeat must be
 * fresh.  Anything else answers "ask the socket".
 *
 * A guest's rules hold: no threads, no signals, no atfork; the mapping
 * is read-only and holds no secret, so a forked child may keep it.
 * Lookups write no shared memory (threads on other cores stay fast): the
 * current mapping is one pointer, and the counters are sharded per
 * thread.  When the agent replaced the file, the new one is mapped and
 * published through the pointer; the old range is then overlaid with
 * zero pages (MAP_FIXED), which a reader still inside it sees as
 * "nothing published" (and which free the old file at once), and only
 * unmapped at xtcmk_close().
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"
#include "wire.h"
#include "xtcmk.h"

#define XM_RECHECK_MS	200	/* between attempts to (re)open the file */

struct xm_map {
	uint8_t		*base;
	struct xm_geom	 g;
	dev_t		 dev;
	ino_t		 ino;
	struct xm_map	*older;		/* replaced mappings, kept to close */
};

struct xm_shard {
	atomic_ullong	 n[XM__WHY_COUNT];
} __attribute__((aligned(XM_LINE)));

struct xm_client {
	struct xm_shard		 shard[XM_SHARDS];
	_Atomic(struct xm_map *) map;		/* NULL: none mapped */
	pthread_mutex_t		 remap_mu;	/* trylock only */
	atomic_ullong		 next_check_ms;
	atomic_ullong		 n_maps;
	int			 disabled;
	char			 path[PATH_MAX];
	char			 socket[PATH_MAX];
};

static __thread unsigned shard_of_thread = UINT_MAX;
static atomic_uint shard_next;

/*
 * The agent's clock at tick resolution: the heartbeat bound is a second,
 * and the coarse clock costs a few nanoseconds instead of tens.
 */
static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
xm_geom_check(const uint8_t *base, size_t size, struct xm_geom *ret_g)
{
	const struct xm_header *h = (const struct xm_header *)base;
	struct xm_geom g;

	if (size < XM_HDR_SIZE || h->magic != XM_MAGIC ||
	    h->version != XM_VERSION || h->hdr_size != XM_HDR_SIZE)
		return -1;
	if (h->slot_size < offsetof(struct xm_slot, payload) + XW_FIELD_HDR ||
	    h->slot_size > XM_SLOT_SIZE_MAX || h->slot_size % 8 != 0)
		return -1;
	if (h->nslots == 0 || h->nslots > XM_SLOTS_MAX ||
	    (h->nslots & (h->nslots - 1)) != 0)
		return -1;
	if (h->probe_max == 0 || h->probe_max > XM_PROBE_MAX ||
	    h->heartbeat_bound_ms == 0)
		return -1;
	if (xm_file_size(h->nslots, h->slot_size) > size)
		return -1;
	g.nslots = h->nslots;
	g.slot_size = h->slot_size;
	g.probe_max = h->probe_max;
	g.bound_ms = h->heartbeat_bound_ms < XM_HEARTBEAT_BOUND_MAX ?
	    h->heartbeat_bound_ms : XM_HEARTBEAT_BOUND_MAX;
	memcpy(g.seed, h->seed, sizeof(g.seed));
	g.file_id = h->file_id;
	g.size = size;
	*ret_g = g;
	return 0;
}

/* Does the payload's XT_CUSTOMER field name `id`? */
static int
payload_names(const uint8_t *p, size_t len, const char *id, size_t idlen)
{
	struct xw_field f;

	return xw_find(p, len, XT_CUSTOMER, &f) == 1 && f.len == idlen &&
	    memcmp(f.val, id, idlen) == 0;
}

/*
 * Copy one slot under its sequence number.  1: a consistent copy in
 * *fix (and, if it names `id`, its payload in buf); 0: the slot was
 * never used; -1: still being rewritten after the retries.
 */
static int
slot_read(const struct xm_slot *s, const struct xm_geom *g, const char *id,
    size_t idlen, struct xm_slot *fix, uint8_t *buf, size_t cap)
{
	uint32_t s1, s2, tries;
	size_t len;

	for (tries = 0; tries < XM_RETRY_MAX; tries++) {
		s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (s1 == 0)
			return 0;
		if (s1 & 1)
			continue;
		memcpy(fix, s, offsetof(struct xm_slot, payload));
		len = fix->len;
		if (fix->id_len == idlen && len <= XM_PAYLOAD_MAX(g->slot_size)
		    && len <= cap && memcmp(fix->id, id, idlen) == 0)
			memcpy(buf, s->payload, len);
		else
			fix->id_len = 0;	/* not ours: payload not read */
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
		if (s1 == s2)
			return 1;
	}
	return -1;
}

enum xm_why
xm_lookup(const struct xm_geom *g, const uint8_t *base, const char *id,
    size_t idlen, uint64_t now_ms, uint8_t *buf, size_t cap,
    size_t *ret_len, struct xm_rec *ret_rec)
{
	const struct xm_header *h = (const struct xm_header *)base;
	const struct xm_slot *s;
	struct xm_slot fix;
	uint64_t gen, hb, hash, age;
	uint32_t i, mask = g->nslots - 1;
	int rc;

	if (idlen == 0 || idlen > XM_ID_MAX)
		return XM_MISS;
	if (atomic_load_explicit(&h->retired, memory_order_acquire) != 0)
		return XM_RECYCLED;
	gen = atomic_load_explicit(&h->generation, memory_order_acquire);
	if (gen == 0)
		return XM_STALE;
	hb = atomic_load_explicit(&h->heartbeat_ms, memory_order_acquire);
	age = now_ms >= hb ? now_ms - hb : hb - now_ms;
	if (age > g->bound_ms)
		return XM_HEARTBEAT;
	hash = xm_hash(g->seed, id, idlen);
	for (i = 0; i < g->probe_max; i++) {
		s = (const struct xm_slot *)(base + XM_HDR_SIZE +
		    (size_t)xm_probe(hash, i, mask) * g->slot_size);
		if ((rc = slot_read(s, g, id, idlen, &fix, buf, cap)) == 0)
			return XM_MISS;
		if (rc < 0)
			return XM_BUSY;
		if (fix.hash != hash || fix.id_len != idlen)
			continue;
		/* Ours.  Published at the current generation, with a
		 * payload that names the customer? */
		if (fix.gen != gen) {
			*ret_len = fix.len;	/* the old decision */
			return XM_STALE;
		}
		if (fix.len == 0)
			return XM_MISS;
		if (!payload_names(buf, fix.len, id, idlen))
			return XM_BAD;
		if (atomic_load_explicit(&h->generation,
		    memory_order_acquire) != gen)
			return XM_STALE;
		*ret_len = fix.len;
		if (ret_rec != NULL) {
			ret_rec->file_id = g->file_id;
			ret_rec->rev_gen = fix.rev_gen;
			ret_rec->state = fix.state;
		}
		return XM_HIT;
	}
	return XM_MISS;
}

/* --- the handle's mapping -------------------------------------------- */

/*
 * Map the file if it is the agent's: a regular file owned by the
 * socket's owner, writable by nobody else, with a sound header.
 */
static struct xm_map *
map_open(const struct xm_client *c)
{
	struct stat st, sst;
	struct xm_map *m;
	void *base;
	int fd;

	if (stat(c->socket, &sst) == -1)
		return NULL;
	fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != sst.st_uid || (st.st_mode & 022) != 0 ||
	    st.st_size < (off_t)XM_HDR_SIZE ||
	    (uint64_t)st.st_size > xm_file_size(XM_SLOTS_MAX,
	    XM_SLOT_SIZE_MAX)) {
		close(fd);
		return NULL;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    xm_geom_check(base, (size_t)st.st_size, &m->g) < 0) {
		free(m);
		munmap(base, (size_t)st.st_size);
		return NULL;
	}
	m->base = base;
	m->g.size = (size_t)st.st_size;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	return m;
}

/* Is the file at the path still the one mapped, and not retired? */
static int
map_current(const struct xm_client *c, const struct xm_map *m)
{
	struct stat st;

	return m != NULL && stat(c->path, &st) == 0 && st.st_dev == m->dev &&
	    st.st_ino == m->ino && atomic_load_explicit(&((const struct
	    xm_header *)m->base)->retired, memory_order_acquire) == 0;
}

/*
 * The current mapping cannot answer (none yet, replaced, agent silent):
 * at most every XM_RECHECK_MS, map the file at the path if it is another
 * one.  Never blocks: if another thread is remapping, it does the work.
 * 1 if a new file is mapped.
 */
static int
map_refresh(struct xm_client *c, uint64_t now)
{
	struct xm_map *fresh, *old;
	unsigned long long next = atomic_load_explicit(&c->next_check_ms,
	    memory_order_relaxed);

	if (now < next || !atomic_compare_exchange_strong(&c->next_check_ms,
	    &next, (unsigned long long)(now + XM_RECHECK_MS)))
		return 0;
	if (pthread_mutex_trylock(&c->remap_mu) != 0)
		return 0;
	old = atomic_load_explicit(&c->map, memory_order_acquire);
	if (map_current(c, old) || (fresh = map_open(c)) == NULL) {
		pthread_mutex_unlock(&c->remap_mu);
		return 0;	/* same file (the agent is silent), or none */
	}
	fresh->older = old;
	atomic_store_explicit(&c->map, fresh, memory_order_release);
	/* Free the old file now; readers still in it read zeros. */
	if (old != NULL)
		(void)mmap(old->base, old->g.size, PROT_READ,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	pthread_mutex_unlock(&c->remap_mu);
	atomic_fetch_add_explicit(&c->n_maps, 1, memory_order_relaxed);
	return 1;
}

struct xm_client *
xm_client_new(const char *socket_path)
{
	struct xm_client *c;
	const char *v, *p;

	if (posix_memalign((void **)&c, XM_LINE, sizeof(*c)) != 0)
		return NULL;
	memset(c, 0, sizeof(*c));
	atomic_init(&c->map, NULL);
	v = secure_getenv("XTCMK_NO_MEMCACHE");
	c->disabled = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
	p = secure_getenv("XTCMK_MEMCACHE");
	if (p != NULL && *p != '\0') {
		if (strlen(p) >= sizeof(c->path))
			c->disabled = 1;
		else
			memcpy(c->path, p, strlen(p) + 1);
	} else if (xm_default_path(socket_path, c->path, sizeof(c->path)) < 0)
		c->disabled = 1;
	if (strlen(socket_path) >= sizeof(c->socket))
		c->disabled = 1;
	else
		memcpy(c->socket, socket_path, strlen(socket_path) + 1);
	if (pthread_mutex_init(&c->remap_mu, NULL) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

void
xm_client_free(struct xm_client *c)
{
	struct xm_map *m, *older;

	if (c == NULL)
		return;
	for (m = atomic_load(&c->map); m != NULL; m = older) {
		older = m->older;
		munmap(m->base, m->g.size);
		free(m);
	}
	pthread_mutex_destroy(&c->remap_mu);
	free(c);
}

unsigned
xm_thread_shard(void)
{
	if (shard_of_thread == UINT_MAX)
		shard_of_thread = atomic_fetch_add_explicit(&shard_next, 1,
		    memory_order_relaxed) % XM_SHARDS;
	return shard_of_thread;
}

/* This thread's counters (threads spread over the shards). */
static struct xm_shard *
shard(struct xm_client *c)
{
	return &c->shard[xm_thread_shard()];
}

static int
count(struct xm_client *c, enum xm_why why)
{
	atomic_fetch_add_explicit(&shard(c)->n[why], 1, memory_order_relaxed);
	return why == XM_HIT;
}

static enum xm_why
client_lookup(struct xm_client *c, const char *id, uint8_t *buf, size_t cap,
    size_t *ret_len, struct xm_rec *ret_rec)
{
	struct xm_map *m;
	enum xm_why why;
	uint64_t now;
	int tries = 0;

	if (c->disabled)
		return XM_DISABLED;
	now = mono_ms();
	do {
		m = atomic_load_explicit(&c->map, memory_order_acquire);
		why = m == NULL ? XM_NO_FILE : xm_lookup(&m->g, m->base, id,
		    strlen(id), now, buf, cap, ret_len, ret_rec);
		/* Once more on a file just mapped in place of this one. */
	} while ((why == XM_NO_FILE || why == XM_RECYCLED ||
	    why == XM_HEARTBEAT) && tries++ == 0 && map_refresh(c, now));
	return why;
}

int
xm_client_lookup(struct xm_client *c, const char *id, uint8_t *buf,
    size_t cap, size_t *ret_len)
{
	if (c == NULL)
		return 0;
	return count(c, client_lookup(c, id, buf, cap, ret_len, NULL));
}

enum xm_why
xm_client_key(struct xm_client *c, const char *id, struct xm_rec *ret_rec,
    uint64_t *ret_ttl_s)
{
	uint8_t buf[XM_SLOT_SIZE_MAX];
	struct xw_field f;
	struct xm_rec rec;
	enum xm_why why;
	uint64_t ttl = 0;
	size_t len;

	if (c == NULL)
		return XM_DISABLED;
	len = 0;
	why = client_lookup(c, id, buf, sizeof(buf), &len, &rec);
	if (why != XM_HIT && why != XM_STALE)
		return why;
	/* Of a stale record: the TTL the old decision had. */
	if (xw_find(buf, len, XT_HOST_CACHE_TTL_S, &f) == 1 &&
	    xw_field_u64(&f, &ttl) < 0)
		return XM_BAD;
	*ret_ttl_s = ttl;
	if (why == XM_HIT)
		*ret_rec = rec;
	return why;
}

void
xm_client_bad(struct xm_client *c)
{
	struct xm_shard *sh = shard(c);

	atomic_fetch_sub_explicit(&sh->n[XM_HIT], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sh->n[XM_BAD], 1, memory_order_relaxed);
}

void
xm_client_stats(struct xm_client *c, struct xtcmk_fastpath_stats *st)
{
	unsigned long long n[XM__WHY_COUNT];
	unsigned i, w;

	memset(st, 0, sizeof(*st));
	if (c == NULL)
		return;
	memset(n, 0, sizeof(n));
	for (i = 0; i < XM_SHARDS; i++)
		for (w = 0; w < XM__WHY_COUNT; w++)
			n[w] += atomic_load_explicit(&c->shard[i].n[w],
			    memory_order_relaxed);
	st->hits = n[XM_HIT];
	st->misses = n[XM_MISS];
	st->disabled = n[XM_DISABLED];
	st->no_file = n[XM_NO_FILE];
	st->stale = n[XM_STALE];
	st->heartbeat = n[XM_HEARTBEAT];
	st->recycled = n[XM_RECYCLED];
	st->busy = n[XM_BUSY];
	st->bad = n[XM_BAD];
	st->maps = atomic_load(&c->n_maps);
}
