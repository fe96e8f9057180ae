/*
 * shmcache.c - the writer of the host-local fast path (common/memcache.h,
 * xtcmk-protocol(7) "MEMORY CACHE").
 *
 * Owns the mapped file: creating it (a temporary file renamed into
 * place, after retiring the one it replaces), the heartbeat thread, the
 * generation that invalidates every record at once, and the records.
 * Writers serialise on one mutex; readers (libxtcmk in host processes)
 * take no lock: each slot has a sequence number made odd for the length
 * of a write (release stores, so a reader that sees the same even number
 * before and after its copy has a whole record).  Slots are never
 * emptied again once used, so a probe chain stays intact; a record of
 * an older generation is free for reuse.
 */
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memcache.h"
#include "shmcache.h"

struct shmcache {
	char			*path;
	uint8_t			*base;
	size_t			 size;
	struct xm_header	*hdr;
	uint32_t		 nslots, slot_size;
	dev_t			 dev;		/* of the file we made */
	ino_t			 ino;

	pthread_mutex_t		 mu;		/* everything below */
	unsigned long long	 rg, pg;	/* what records reflect */
	uint64_t		 gen;
	uint64_t		 rev_counter;

	pthread_t		 beat;
	pthread_mutex_t		 beat_mu;
	pthread_cond_t		 beat_cv;
	int			 beat_stop, beat_started;

	atomic_ullong		 n_published, n_unchanged, n_oversize,
				 n_full, n_invalidations, n_key_events;
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct xm_slot *
slot_at(struct shmcache *sc, uint32_t i)
{
	return (struct xm_slot *)(sc->base + XM_HDR_SIZE +
	    (size_t)i * sc->slot_size);
}

static void *
beat_main(void *arg)
{
	struct shmcache *sc = arg;
	struct timespec ts;

	pthread_mutex_lock(&sc->beat_mu);
	while (!sc->beat_stop) {
		atomic_store_explicit(&sc->hdr->heartbeat_ms, mono_ms(),
		    memory_order_release);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += XM_HEARTBEAT_PERIOD_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&sc->beat_cv, &sc->beat_mu, &ts);
	}
	pthread_mutex_unlock(&sc->beat_mu);
	return NULL;
}

/*
 * Tell readers of the file now at `path` (a previous agent's, maybe one
 * that was killed) that it is replaced.  Only a file of ours that looks
 * like a cache is touched; one a live agent still beats in is refused.
 */
static int
retire_old(const char *path, struct xerr *e)
{
	struct xm_header *h;
	struct stat st;
	uint64_t hb, now = mono_ms();
	pid_t pid;
	int fd, rc = 0;

	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || st.st_size < (off_t)XM_HDR_SIZE) {
		close(fd);
		return 0;
	}
	h = mmap(NULL, XM_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (h == MAP_FAILED)
		return 0;
	if (h->magic == XM_MAGIC) {
		hb = atomic_load_explicit(&h->heartbeat_ms,
		    memory_order_acquire);
		pid = (pid_t)h->pid;
		if (!atomic_load(&h->retired) && now - hb < 2 *
		    XM_HEARTBEAT_BOUND_MS && pid > 0 && pid != getpid() &&
		    kill(pid, 0) == 0)
			rc = xerr_set(e, XTCMK_E_EXISTS, "another xtcmkd (pid "
			    "%d) publishes decisions in %s", (int)pid, path);
		else {
			atomic_store_explicit(&h->generation, 0,
			    memory_order_release);
			atomic_store_explicit(&h->retired, 1,
			    memory_order_release);
		}
	}
	munmap(h, XM_HDR_SIZE);
	return rc;
}

int
shmcache_open(const char *path, mode_t mode, gid_t gid, uint32_t nslots,
    struct shmcache **ret_sc, struct xerr *e)
{
	struct shmcache *sc;
	pthread_condattr_t ca;
	char *tmp = NULL;
	int fd = -1, rc;

	if (nslots == 0)
		nslots = XM_SLOTS;
	if ((sc = calloc(1, sizeof(*sc))) == NULL ||
	    (sc->path = strdup(path)) == NULL ||
	    asprintf(&tmp, "%s.XXXXXX", path) == -1) {
		tmp = NULL;
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&sc->mu, NULL);
	pthread_mutex_init(&sc->beat_mu, NULL);
	/* The heartbeat's deadlines are CLOCK_MONOTONIC: so must the
	 * condition's clock be (the default, CLOCK_REALTIME, makes every
	 * wait time out at once and the thread spin). */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sc->beat_cv, &ca);
	pthread_condattr_destroy(&ca);
	sc->nslots = nslots;
	sc->slot_size = XM_SLOT_SIZE;
	sc->size = xm_file_size(nslots, sc->slot_size);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		rc = xerr_set(e, XTCMK_E_INVAL, "cannot create the memory "
		    "cache %s: %s (set [agent] memcache to a writable path "
		    "or to none)", tmp, strerror(errno));
		goto fail;
	}
	if ((gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) == -1) ||
	    fchmod(fd, mode) == -1 || ftruncate(fd, (off_t)sc->size) == -1) {
		rc = xerr_set(e, XTCMK_E_INVAL, "cannot set up the memory "
		    "cache %s: %s", tmp, strerror(errno));
		goto fail;
	}
	{
		struct stat st;

		if (fstat(fd, &st) == 0) {
			sc->dev = st.st_dev;
			sc->ino = st.st_ino;
		}
	}
	sc->base = mmap(NULL, sc->size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0);
	if (sc->base == MAP_FAILED) {
		sc->base = NULL;
		rc = xerr_set(e, XTCMK_E_INTERNAL, "cannot map the memory "
		    "cache %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	sc->hdr = (struct xm_header *)sc->base;
	sc->hdr->magic = XM_MAGIC;
	sc->hdr->version = XM_VERSION;
	sc->hdr->hdr_size = XM_HDR_SIZE;
	sc->hdr->slot_size = sc->slot_size;
	sc->hdr->nslots = nslots;
	sc->hdr->probe_max = XM_PROBE_MAX;
	sc->hdr->heartbeat_period_ms = XM_HEARTBEAT_PERIOD_MS;
	sc->hdr->heartbeat_bound_ms = XM_HEARTBEAT_BOUND_MS;
	if (getrandom(sc->hdr->seed, sizeof(sc->hdr->seed), 0) !=
	    (ssize_t)sizeof(sc->hdr->seed) ||
	    getrandom(&sc->hdr->file_id, sizeof(sc->hdr->file_id), 0) !=
	    (ssize_t)sizeof(sc->hdr->file_id)) {
		rc = xerr_set(e, XTCMK_E_INTERNAL, "getrandom failed");
		goto fail;
	}
	sc->hdr->pid = (uint64_t)getpid();
	sc->gen = 1;
	sc->rg = sc->pg = ~0ULL;	/* nothing published yet */
	atomic_store_explicit(&sc->hdr->heartbeat_ms, mono_ms(),
	    memory_order_relaxed);
	atomic_store_explicit(&sc->hdr->generation, sc->gen,
	    memory_order_release);
	if ((rc = retire_old(path, e)) < 0)
		goto fail;
	if (rename(tmp, path) == -1) {
		rc = xerr_set(e, XTCMK_E_INVAL, "cannot move the memory cache "
		    "into place at %s: %s", path, strerror(errno));
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	if (pthread_create(&sc->beat, NULL, beat_main, sc) != 0) {
		rc = xerr_set(e, XTCMK_E_INTERNAL, "cannot start the "
		    "heartbeat thread");
		goto fail;
	}
	sc->beat_started = 1;
	*ret_sc = sc;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	shmcache_close(sc);
	return rc;
}

void
shmcache_close(struct shmcache *sc)
{
	struct stat st;

	if (sc == NULL)
		return;
	if (sc->beat_started) {
		pthread_mutex_lock(&sc->beat_mu);
		sc->beat_stop = 1;
		pthread_cond_signal(&sc->beat_cv);
		pthread_mutex_unlock(&sc->beat_mu);
		pthread_join(sc->beat, NULL);
		atomic_store_explicit(&sc->hdr->generation, 0,
		    memory_order_release);
		atomic_store_explicit(&sc->hdr->retired, 1,
		    memory_order_release);
		/* Only the file we made is ours to remove, not one a later
		 * agent has put in its place. */
		if (lstat(sc->path, &st) == 0 && st.st_dev == sc->dev &&
		    st.st_ino == sc->ino)
			unlink(sc->path);
	}
	if (sc->base != NULL)
		munmap(sc->base, sc->size);
	free(sc->path);
	free(sc);
}

static void
sync_locked(struct shmcache *sc, unsigned long long rg, unsigned long long pg)
{
	if (rg == sc->rg && pg == sc->pg)
		return;
	sc->rg = rg;
	sc->pg = pg;
	sc->gen++;
	atomic_store_explicit(&sc->hdr->generation, sc->gen,
	    memory_order_release);
	atomic_fetch_add(&sc->n_invalidations, 1);
}

void
shmcache_sync(struct shmcache *sc, unsigned long long rg,
    unsigned long long pg)
{
	if (sc == NULL)
		return;
	pthread_mutex_lock(&sc->mu);
	sync_locked(sc, rg, pg);
	pthread_mutex_unlock(&sc->mu);
}

/*
 * The slot holding `id`, or else the first reusable one of its probe
 * chain (never used, or of an older generation); NULL if the chain is
 * full.  *ret_same tells which.
 */
static struct xm_slot *
find_slot(struct shmcache *sc, const char *id, size_t idlen, uint64_t hash,
    int *ret_same)
{
	struct xm_slot *s, *free_slot = NULL;
	uint32_t i, mask = sc->nslots - 1;

	for (i = 0; i < XM_PROBE_MAX; i++) {
		s = slot_at(sc, xm_probe(hash, i, mask));
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) == 0) {
			if (free_slot == NULL)
				free_slot = s;
			break;
		}
		if (s->hash == hash && s->id_len == idlen &&
		    memcmp(s->id, id, idlen) == 0) {
			*ret_same = 1;
			return s;
		}
		if (free_slot == NULL && s->gen != sc->gen)
			free_slot = s;
	}
	*ret_same = 0;
	return free_slot;
}

/* Rewrite one slot under its sequence number. */
static void
slot_write(struct xm_slot *s, const char *id, size_t idlen, uint64_t hash,
    uint64_t gen, uint64_t rev_gen, uint32_t state, const uint8_t *payload,
    size_t len)
{
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

	atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	s->len = (uint32_t)len;
	s->gen = gen;
	s->hash = hash;
	s->rev_gen = rev_gen;
	s->state = state;
	s->id_len = (uint16_t)idlen;
	memcpy(s->id, id, idlen);
	if (payload != NULL)
		memcpy(s->payload, payload, len);
	atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

void
shmcache_publish(struct shmcache *sc, const char *id, const uint8_t *payload,
    size_t len, unsigned long long rg, unsigned long long pg,
    unsigned long long now_rg, unsigned long long now_pg)
{
	size_t idlen;
	uint64_t hash;
	struct xm_slot *s;
	int same;

	if (sc == NULL)
		return;
	idlen = strlen(id);
	if (len == 0 || len > XM_PAYLOAD_MAX(sc->slot_size) ||
	    idlen == 0 || idlen > XM_ID_MAX) {
		atomic_fetch_add(&sc->n_oversize, 1);
		return;
	}
	hash = xm_hash(sc->hdr->seed, id, idlen);
	pthread_mutex_lock(&sc->mu);
	sync_locked(sc, now_rg, now_pg);
	if (rg != sc->rg || pg != sc->pg)
		goto out;	/* computed from data already replaced */
	if ((s = find_slot(sc, id, idlen, hash, &same)) == NULL) {
		atomic_fetch_add(&sc->n_full, 1);
		goto out;
	}
	if (same && s->gen == sc->gen && s->len == len &&
	    memcmp(s->payload, payload, len) == 0) {
		atomic_fetch_add(&sc->n_unchanged, 1);
		goto out;
	}
	slot_write(s, id, idlen, hash, sc->gen,
	    same ? s->rev_gen : ++sc->rev_counter,
	    same ? s->state : XM_STATE_UNKNOWN, payload, len);
	atomic_fetch_add(&sc->n_published, 1);
out:
	pthread_mutex_unlock(&sc->mu);
}

/* A new revocation generation for `id`; state < 0 keeps the state. */
static void
key_event(struct shmcache *sc, const char *id, int state, int changed)
{
	size_t idlen;
	uint64_t hash;
	struct xm_slot *s;
	int same;

	if (sc == NULL || (idlen = strlen(id)) == 0 || idlen > XM_ID_MAX)
		return;
	hash = xm_hash(sc->hdr->seed, id, idlen);
	pthread_mutex_lock(&sc->mu);
	/* A customer without a slot has nothing that could be served from
	 * an older state: a new slot always gets a fresh generation. */
	s = find_slot(sc, id, idlen, hash, &same);
	if (s != NULL && same && state < 0)
		state = (int)s->state;
	if (s != NULL && same && (changed || s->state != (uint32_t)state)) {
		slot_write(s, id, idlen, hash, s->gen, ++sc->rev_counter,
		    (uint32_t)state, NULL, s->len);
		atomic_fetch_add(&sc->n_key_events, 1);
	}
	pthread_mutex_unlock(&sc->mu);
}

void
shmcache_key_state(struct shmcache *sc, const char *id, int state,
    int changed)
{
	key_event(sc, id, state, changed);
}

void
shmcache_customer_bump(struct shmcache *sc, const char *id)
{
	key_event(sc, id, -1, 1);
}

json_t *
shmcache_stats(struct shmcache *sc)
{
	if (sc == NULL)
		return json_pack("{s:b}", "enabled", 0);
	return json_pack("{s:b, s:s, s:I, s:i, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:i}",
	    "enabled", 1, "path", sc->path,
	    "generation", (json_int_t)atomic_load(&sc->hdr->generation),
	    "slots", (int)sc->nslots,
	    "published", (json_int_t)atomic_load(&sc->n_published),
	    "unchanged", (json_int_t)atomic_load(&sc->n_unchanged),
	    "oversize", (json_int_t)atomic_load(&sc->n_oversize),
	    "full", (json_int_t)atomic_load(&sc->n_full),
	    "invalidations", (json_int_t)atomic_load(&sc->n_invalidations),
	    "key_events", (json_int_t)atomic_load(&sc->n_key_events),
	    "heartbeat_ms", (int)XM_HEARTBEAT_PERIOD_MS);
}
