/*
 * test_shm.c - the fast path's file, writer (agent/shmcache.c) against
 * reader (module/shm.c), in one process on real files.
 *
 * Publishing, invalidation, bounded probe chains and key-state events;
 * then files damaged on purpose (bad header, truncated, foreign mode,
 * stale heartbeat, retired, odd sequence, records swapped between
 * customers, garbage), each of which must make the reader fall back for
 * the right reason and never crash or answer; a file replaced under a
 * reader; and reader threads racing a writer that keeps rewriting the
 * records, checking every copy is whole.  Then libxtcmk's DEK cache
 * (module/dekcache.c): reader threads racing writers that insert, evict
 * and invalidate, checking every hit is the blob's own key.
 * scripts/tsan.sh runs this under ThreadSanitizer.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dekcache.h"
#include "memcache.h"
#include "shm.h"
#include "shmcache.h"
#include "t.h"
#include "wire.h"
#include "xtcmk.h"

#define PAYLOAD_CAP	XM_SLOT_SIZE_MAX
#define RACE_IDS	16

static char dir[64];

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A socket file at dir/NAME.sock (the reader checks its owner). */
static void
make_socket(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", dir, name);
	ASSERT_TRUE(fd != -1);
	ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

static void
path_of(const char *name, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.%s", dir, name, ext);
}

/*
 * A decision payload for `id` whose fields must agree with each other:
 * tenant "t-ID", GRACE_S == CACHE_MAX == n, a 64-character policy hash
 * of the letter 'a' + n % 26.  `pad` extra bytes of kind strings.
 */
static size_t
payload(const char *id, uint64_t n, size_t pad, uint8_t *buf, size_t cap)
{
	struct xw_buf b;
	char t[160], h[65], k[256];

	xw_buf_init(&b, buf, cap);
	snprintf(t, sizeof(t), "t-%s", id);
	memset(h, 'a' + (int)(n % 26), 64);
	h[64] = '\0';
	xw_put_str(&b, XT_CUSTOMER, id);
	xw_put_str(&b, XT_TENANT, t);
	xw_put_u64(&b, XT_GRACE_S, n);
	xw_put_str(&b, XT_POLICY_HASH, h);
	while (pad > 0) {
		size_t m = pad < sizeof(k) - 1 ? pad : sizeof(k) - 1;

		memset(k, 'k', m);
		k[m] = '\0';
		xw_put_str(&b, XT_KIND, k);
		pad -= m;
	}
	xw_put_u64(&b, XT_CACHE_MAX, n);
	return b.err == 0 ? b.len : 0;
}

/* Does a payload read back agree with itself and name `id`? */
static int
payload_whole(const char *id, const uint8_t *p, size_t len)
{
	struct xw_field f;
	uint64_t g, c;
	char t[160];
	uint32_t i;

	snprintf(t, sizeof(t), "t-%s", id);
	if (xw_find(p, len, XT_CUSTOMER, &f) != 1 || f.len != strlen(id) ||
	    memcmp(f.val, id, f.len) != 0)
		return 0;
	if (xw_find(p, len, XT_TENANT, &f) != 1 || f.len != strlen(t) ||
	    memcmp(f.val, t, f.len) != 0)
		return 0;
	if (xw_find(p, len, XT_GRACE_S, &f) != 1 || xw_field_u64(&f, &g) < 0 ||
	    xw_find(p, len, XT_CACHE_MAX, &f) != 1 ||
	    xw_field_u64(&f, &c) < 0 || g != c)
		return 0;
	if (xw_find(p, len, XT_POLICY_HASH, &f) != 1 || f.len != 64)
		return 0;
	for (i = 0; i < 64; i++)
		if (f.val[i] != 'a' + (int)(g % 26))
			return 0;
	return 1;
}

/* Publish a decision computed at registry generation g, now at `now`. */
static void
publish_at(struct shmcache *sc, const char *id, uint64_t n,
    unsigned long long g, unsigned long long now)
{
	uint8_t p[PAYLOAD_CAP];
	size_t len = payload(id, n, 0, p, sizeof(p));

	shmcache_publish(sc, id, p, len, g, 0, now, 0);
}

static void
publish(struct shmcache *sc, const char *id, uint64_t n, unsigned long long g)
{
	publish_at(sc, id, n, g, g);
}

static struct xtcmk_fastpath_stats
stats(struct xm_client *c)
{
	struct xtcmk_fastpath_stats st;

	xm_client_stats(c, &st);
	return st;
}

/* Look `id` up on a fresh client of dir/NAME.sock: 1 if answered. */
static int
lookup_fresh(const char *name, const char *id,
    struct xtcmk_fastpath_stats *ret_st)
{
	char sock[128];
	uint8_t buf[PAYLOAD_CAP];
	struct xm_client *c;
	size_t len = 0;
	int hit;

	path_of(name, "sock", sock, sizeof(sock));
	c = xm_client_new(sock);
	ASSERT_TRUE(c != NULL);
	hit = xm_client_lookup(c, id, buf, sizeof(buf), &len);
	if (hit)
		ASSERT_TRUE(payload_whole(id, buf, len));
	*ret_st = stats(c);
	xm_client_free(c);
	return hit;
}

static void
test_publish(void)
{
	struct xtcmk_fastpath_stats st;
	struct shmcache *sc;
	struct xerr e;
	char path[128], id[32];
	uint8_t p[PAYLOAD_CAP];
	size_t len;
	int i, published = 0, hits = 0, full;
	json_t *js;

	make_socket("pub");
	path_of("pub", "mc", path, sizeof(path));
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 64, &sc, &e), 0);
	ASSERT_EQ(lookup_fresh("pub", "c1", &st), 0);
	ASSERT_EQ(st.misses, 1);
	ASSERT_EQ(st.maps, 1);
	publish(sc, "c1", 1, 1);
	ASSERT_EQ(lookup_fresh("pub", "c1", &st), 1);
	ASSERT_EQ(st.hits, 1);

	/* The data moved on: every record is stale at once. */
	shmcache_sync(sc, 2, 0);
	ASSERT_EQ(lookup_fresh("pub", "c1", &st), 0);
	ASSERT_EQ(st.stale, 1);
	/* Computed from the old data: not published. */
	publish_at(sc, "c1", 1, 1, 2);
	ASSERT_EQ(lookup_fresh("pub", "c1", &st), 0);
	publish(sc, "c1", 2, 2);
	ASSERT_EQ(lookup_fresh("pub", "c1", &st), 1);

	/* Larger than a slot: not published. */
	len = payload("big", 1, XM_SLOT_SIZE, p, sizeof(p));
	ASSERT_INT(len, >, XM_PAYLOAD_MAX(XM_SLOT_SIZE));
	shmcache_publish(sc, "big", p, len, 2, 0, 2, 0);
	ASSERT_EQ(lookup_fresh("pub", "big", &st), 0);
	ASSERT_EQ(st.misses, 1);

	/* 64 slots, 200 customers: chains fill, lookups stay bounded and
	 * every published customer is found. */
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "many-%d", i);
		publish(sc, id, (uint64_t)i, 2);
	}
	js = shmcache_stats(sc);
	full = (int)json_integer_value(json_object_get(js, "full"));
	published = (int)json_integer_value(json_object_get(js,
	    "published"));
	json_decref(js);
	ASSERT_INT(full, >, 0);
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "many-%d", i);
		hits += lookup_fresh("pub", id, &st);
	}
	/* c1 holds a slot, two publishes of it counted, and one stale. */
	ASSERT_EQ(hits, 200 - full);
	ASSERT_EQ(hits + 2, published);
	shmcache_close(sc);
	ASSERT_EQ(access(path, F_OK), -1);	/* removed at close */
}

/* The slot of `id` in a mapped image, or NULL. */
static struct xm_slot *
slot_of(uint8_t *img, const char *id)
{
	struct xm_header *h = (struct xm_header *)img;
	struct xm_slot *s;
	uint32_t i;

	for (i = 0; i < h->nslots; i++) {
		s = (struct xm_slot *)(img + XM_HDR_SIZE +
		    (size_t)i * h->slot_size);
		if (s->id_len == strlen(id) && memcmp(s->id, id, s->id_len) == 0)
			return s;
	}
	return NULL;
}

static uint8_t *
read_file(const char *path, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd == -1 || fstat(fd, &st) == -1)
		return NULL;
	buf = malloc((size_t)st.st_size);
	if (buf != NULL && pread(fd, buf, (size_t)st.st_size, 0) !=
	    st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*ret_len = (size_t)st.st_size;
	return buf;
}

static void
write_file(const char *name, const uint8_t *img, size_t len, mode_t mode)
{
	char path[128];
	int fd;

	path_of(name, "mc", path, sizeof(path));
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(fd != -1);
	ASSERT_EQ(write(fd, img, len), (ssize_t)len);
	ASSERT_EQ(fchmod(fd, mode), 0);
	close(fd);
}

/* Key-state events give the customer a new revocation generation. */
static void
test_key_state(void)
{
	struct shmcache *sc;
	struct xerr e;
	char path[128];
	uint8_t *img;
	size_t len;
	uint64_t r0;

	make_socket("ks");
	path_of("ks", "mc", path, sizeof(path));
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 64, &sc, &e), 0);
	publish(sc, "k1", 1, 1);
	publish(sc, "k2", 1, 1);
	img = read_file(path, &len);
	ASSERT_TRUE(img != NULL && slot_of(img, "k1") != NULL);
	r0 = slot_of(img, "k1")->rev_gen;
	ASSERT_TRUE(r0 != slot_of(img, "k2")->rev_gen);
	ASSERT_EQ(slot_of(img, "k1")->state, XM_STATE_UNKNOWN);
	free(img);
	shmcache_key_state(sc, "k1", XM_STATE_REVOKED, 1);
	img = read_file(path, &len);
	ASSERT_INT(slot_of(img, "k1")->rev_gen, >, r0);
	ASSERT_EQ(slot_of(img, "k1")->state, XM_STATE_REVOKED);
	ASSERT_INT(slot_of(img, "k1")->len, >, 0);	/* decision kept */
	r0 = slot_of(img, "k1")->rev_gen;
	free(img);
	/* The same state found again: nothing changes. */
	shmcache_key_state(sc, "k1", XM_STATE_REVOKED, 0);
	img = read_file(path, &len);
	ASSERT_EQ(slot_of(img, "k1")->rev_gen, r0);
	free(img);
	/* A new version: same state, new generation. */
	shmcache_key_state(sc, "k1", XM_STATE_REVOKED, 1);
	img = read_file(path, &len);
	ASSERT_INT(slot_of(img, "k1")->rev_gen, >, r0);
	free(img);
	/* A republished decision keeps the key state and generation. */
	publish(sc, "k1", 5, 1);
	img = read_file(path, &len);
	ASSERT_EQ(slot_of(img, "k1")->state, XM_STATE_REVOKED);
	ASSERT_INT(slot_of(img, "k1")->rev_gen, >, r0);
	free(img);
	shmcache_close(sc);
}

enum damage {
	D_NONE, D_MAGIC, D_VERSION, D_TRUNCATE, D_NSLOTS, D_SLOT_SIZE,
	D_PROBE, D_MODE, D_OLD_BEAT, D_FUTURE_BEAT, D_GEN0, D_RETIRED,
	D_REC_GEN, D_ODD_SEQ, D_SWAP, D_LEN, D_PAYLOAD, D_GARBAGE,
	D_SLOTS_GARBAGE, D_SYMLINK, D__COUNT
};

static const char *const damage_name[D__COUNT] = {
	"none", "magic", "version", "truncated", "nslots", "slot_size",
	"probe_max", "mode", "old heartbeat", "future heartbeat",
	"generation 0", "retired", "record generation", "odd sequence",
	"swapped records", "length", "payload", "garbage header",
	"garbage slots", "symlink",
};

/*
 * Damage a copy of a good file one way, and check the reader: no answer
 * (except for D_NONE, the control), the expected counter, no crash.
 */
static void
damaged(const uint8_t *good, size_t len, enum damage d)
{
	struct xtcmk_fastpath_stats st;
	struct xm_header *h;
	struct xm_slot *s1, *s2;
	uint8_t *img = malloc(len);
	size_t n = len, i;
	mode_t mode = 0600;
	char path[128], target[128];
	uint64_t *reason;
	int hit;

	memcpy(img, good, len);
	h = (struct xm_header *)img;
	atomic_store(&h->heartbeat_ms, mono_ms());
	s1 = slot_of(img, "c1");
	s2 = slot_of(img, "c2");
	switch (d) {
	case D_NONE:
		break;
	case D_MAGIC:
		h->magic ^= 1;
		break;
	case D_VERSION:
		h->version = XM_VERSION + 1;
		break;
	case D_TRUNCATE:
		n = XM_HDR_SIZE + (len - XM_HDR_SIZE) / 2;
		break;
	case D_NSLOTS:
		h->nslots = h->nslots + 1;
		break;
	case D_SLOT_SIZE:
		h->slot_size = XM_SLOT_SIZE_MAX * 2;
		break;
	case D_PROBE:
		h->probe_max = 1000;
		break;
	case D_MODE:
		mode = 0622;
		break;
	case D_OLD_BEAT:
		atomic_store(&h->heartbeat_ms, mono_ms() - 5000);
		break;
	case D_FUTURE_BEAT:
		atomic_store(&h->heartbeat_ms, mono_ms() + 60000);
		break;
	case D_GEN0:
		atomic_store(&h->generation, 0);
		break;
	case D_RETIRED:
		atomic_store(&h->retired, 1);
		break;
	case D_REC_GEN:
		s1->gen = atomic_load(&h->generation) + 1;
		break;
	case D_ODD_SEQ:
		atomic_store(&s1->seq, atomic_load(&s1->seq) | 1);
		break;
	case D_SWAP: {
		/* c2's decision under c1's id, hash and sequence. */
		uint32_t seq = atomic_load(&s1->seq), l2 = s2->len;

		memcpy(s1->payload, s2->payload, l2);
		s1->len = l2;
		atomic_store(&s1->seq, seq);
		break;
	}
	case D_LEN:
		s1->len = h->slot_size;
		break;
	case D_PAYLOAD:
		s1->payload[1] ^= 0x40;	/* a field tag/length byte */
		s1->len = 7;
		break;
	case D_GARBAGE:
		for (i = 0; i < XM_HDR_SIZE; i++)
			img[i] = (uint8_t)(i * 131 + 7);
		break;
	case D_SLOTS_GARBAGE:
		for (i = XM_HDR_SIZE; i < len; i++)
			img[i] = (uint8_t)(i * 2654435761u >> 13);
		break;
	default:
		break;
	}
	if (d == D_SYMLINK) {
		write_file("real", img, n, mode);
		path_of("real", "mc", target, sizeof(target));
		path_of("bad", "mc", path, sizeof(path));
		unlink(path);
		ASSERT_EQ(symlink(target, path), 0);
	} else
		write_file("bad", img, n, mode);
	hit = lookup_fresh("bad", "c1", &st);
	ASSERT_EQ(hit, d == D_NONE);
	switch (d) {
	case D_NONE:
		reason = &st.hits;
		break;
	case D_OLD_BEAT:
	case D_FUTURE_BEAT:
		reason = &st.heartbeat;
		break;
	case D_GEN0:
	case D_REC_GEN:
		reason = &st.stale;
		break;
	case D_RETIRED:
		reason = &st.recycled;
		break;
	case D_ODD_SEQ:
		reason = &st.busy;
		break;
	case D_SWAP:
	case D_PAYLOAD:
		reason = &st.bad;
		break;
	case D_LEN:
		reason = &st.misses;
		break;
	case D_SLOTS_GARBAGE:
		/* Whatever the garbage looks like: never an answer. */
		st.misses += st.busy + st.bad;
		reason = &st.misses;
		break;
	default:
		reason = &st.no_file;
	}
	if (*reason != 1)
		T_FAIL("damage '%s': not counted where expected (hits %llu "
		    "misses %llu no_file %llu stale %llu heartbeat %llu "
		    "recycled %llu busy %llu bad %llu)", damage_name[d],
		    (unsigned long long)st.hits,
		    (unsigned long long)st.misses,
		    (unsigned long long)st.no_file,
		    (unsigned long long)st.stale,
		    (unsigned long long)st.heartbeat,
		    (unsigned long long)st.recycled,
		    (unsigned long long)st.busy, (unsigned long long)st.bad);
	free(img);
}

static void
test_damaged(void)
{
	struct shmcache *sc;
	struct xerr e;
	char path[128];
	uint8_t *good;
	size_t len;
	int d;

	make_socket("src");
	make_socket("bad");
	path_of("src", "mc", path, sizeof(path));
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 256, &sc, &e), 0);
	publish(sc, "c1", 1, 1);
	publish(sc, "c2", 2, 1);
	good = read_file(path, &len);
	ASSERT_TRUE(good != NULL);
	for (d = 0; d < D__COUNT; d++)
		damaged(good, len, (enum damage)d);
	free(good);
	shmcache_close(sc);
}

/* A new agent's file replaces the old one under a reader. */
static void
test_replaced(void)
{
	struct xtcmk_fastpath_stats st;
	struct shmcache *a, *b;
	struct xm_client *c;
	struct xerr e;
	char path[128], sock[128];
	uint8_t buf[PAYLOAD_CAP];
	size_t len;

	make_socket("rep");
	path_of("rep", "mc", path, sizeof(path));
	path_of("rep", "sock", sock, sizeof(sock));
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 64, &a, &e), 0);
	publish(a, "c1", 1, 1);
	c = xm_client_new(sock);
	ASSERT_EQ(xm_client_lookup(c, "c1", buf, sizeof(buf), &len), 1);
	/* The same process plays the second agent: its own pid is not
	 * "another agent", so the first file is retired. */
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 64, &b, &e), 0);
	ASSERT_EQ(xm_client_lookup(c, "c1", buf, sizeof(buf), &len), 0);
	publish(b, "c1", 7, 1);
	usleep(250000);		/* the re-check interval */
	ASSERT_EQ(xm_client_lookup(c, "c1", buf, sizeof(buf), &len), 1);
	ASSERT_TRUE(payload_whole("c1", buf, len));
	st = stats(c);
	ASSERT_EQ(st.maps, 2);
	ASSERT_EQ(st.recycled, 1);
	ASSERT_EQ(st.hits, 2);
	xm_client_free(c);
	/* a's close must not remove b's file; b's does. */
	shmcache_close(a);
	ASSERT_EQ(access(path, F_OK), 0);
	shmcache_close(b);
	ASSERT_EQ(access(path, F_OK), -1);
}

struct race {
	struct shmcache	*sc;
	char		 sock[128];
	atomic_int	 stop;
	atomic_llong	 hits, torn, busy, writes;
};

static void *
race_writer(void *arg)
{
	struct race *r = arg;
	char id[32];
	uint8_t p[PAYLOAD_CAP];
	uint64_t n = 0;
	size_t len;

	while (!atomic_load(&r->stop)) {
		n++;
		snprintf(id, sizeof(id), "race-%d", (int)(n % RACE_IDS));
		/* Sizes vary too, so a torn copy would mix lengths. */
		len = payload(id, n, (size_t)(n % 7) * 150, p, sizeof(p));
		shmcache_publish(r->sc, id, p, len, 1, 0, 1, 0);
		atomic_fetch_add(&r->writes, 1);
	}
	return NULL;
}

static void *
race_reader(void *arg)
{
	struct race *r = arg;
	struct xm_client *c = xm_client_new(r->sock);
	uint8_t buf[PAYLOAD_CAP];
	char id[32];
	size_t len;
	unsigned i = 0;

	while (!atomic_load(&r->stop)) {
		snprintf(id, sizeof(id), "race-%u", i++ % RACE_IDS);
		if (!xm_client_lookup(c, id, buf, sizeof(buf), &len))
			continue;
		atomic_fetch_add(&r->hits, 1);
		if (!payload_whole(id, buf, len))
			atomic_fetch_add(&r->torn, 1);
	}
	atomic_fetch_add(&r->busy, (long long)stats(c).busy);
	xm_client_free(c);
	return NULL;
}

static void
test_race(void)
{
	struct race r;
	struct xerr e;
	pthread_t w, rd[4];
	char path[128];
	int i;

	memset(&r, 0, sizeof(r));
	make_socket("race");
	path_of("race", "mc", path, sizeof(path));
	path_of("race", "sock", r.sock, sizeof(r.sock));
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 256, &r.sc, &e), 0);
	pthread_create(&w, NULL, race_writer, &r);
	for (i = 0; i < 4; i++)
		pthread_create(&rd[i], NULL, race_reader, &r);
	sleep(2);
	atomic_store(&r.stop, 1);
	pthread_join(w, NULL);
	for (i = 0; i < 4; i++)
		pthread_join(rd[i], NULL);
	printf("race: %lld writes, %lld whole reads, %lld torn, %lld busy\n",
	    (long long)r.writes, (long long)r.hits, (long long)r.torn,
	    (long long)r.busy);
	ASSERT_INT(r.writes, >, 1000);
	ASSERT_INT(r.hits, >, 1000);
	ASSERT_EQ(r.torn, 0);
	shmcache_close(r.sc);
}

/* --- the DEK cache under concurrent readers and writers ------------- */

#define HC_BLOBS	400	/* more than HC_ENTRIES_MAX: evictions */

struct hcrace {
	struct hc	*c;
	atomic_int	 stop;
	_Atomic uint64_t rev;		/* the revocation generation */
	atomic_llong	 hits, wrong, gets;
};

/* Blob i and its key (16..64 bytes, *ret_dek_len): each key says which
 * blob it belongs to. */
static size_t
hc_blob(unsigned i, uint8_t *b, uint8_t dek[64], size_t *ret_dek_len)
{
	size_t len = 40 + i % 50, j;

	for (j = 0; j < len; j++)
		b[j] = (uint8_t)(i * 7 + j);
	b[0] = (uint8_t)i;
	b[1] = (uint8_t)(i >> 8);
	*ret_dek_len = 16 + (i % 7) * 8;
	for (j = 0; j < *ret_dek_len; j++)
		dek[j] = (uint8_t)(i * 31 + j * 3 + 1);
	return len;
}

static void *
hc_writer(void *arg)
{
	struct hcrace *r = arg;
	uint8_t b[128], dek[64];
	struct xm_rec at = { .file_id = 7, .state = XM_STATE_ACTIVE };
	unsigned n = 0;
	size_t len, dlen;

	while (!atomic_load(&r->stop)) {
		n++;
		len = hc_blob((n * 2654435761u) % HC_BLOBS, b, dek, &dlen);
		/* Now and then a revocation: older entries are invalid. */
		if (n % 5000 == 0)
			atomic_fetch_add(&r->rev, 1);
		at.rev_gen = atomic_load(&r->rev);
		hc_put(r->c, "race", b, len, &at, mono_ms() + 60000, dek,
		    dlen);
	}
	return NULL;
}

static void *
hc_reader(void *arg)
{
	struct hcrace *r = arg;
	uint8_t b[128], dek[64], got[64];
	struct xm_rec now = { .file_id = 7, .state = XM_STATE_ACTIVE };
	unsigned n = 0;
	size_t len, dlen, glen;

	while (!atomic_load(&r->stop)) {
		len = hc_blob(n++ % HC_BLOBS, b, dek, &dlen);
		now.rev_gen = atomic_load(&r->rev);
		atomic_fetch_add(&r->gets, 1);
		glen = sizeof(got);
		if (!hc_get(r->c, "race", b, len, &now, mono_ms(), got, &glen))
			continue;
		atomic_fetch_add(&r->hits, 1);
		if (glen != dlen || memcmp(got, dek, dlen) != 0)
			atomic_fetch_add(&r->wrong, 1);
	}
	return NULL;
}

static void
test_dek_race(void)
{
	struct hcrace r;
	struct hc_stats st;
	pthread_t w[2], rd[3];
	int i;

	memset(&r, 0, sizeof(r));
	ASSERT_TRUE((r.c = hc_new()) != NULL);
	atomic_store(&r.rev, 1);
	for (i = 0; i < 2; i++)
		pthread_create(&w[i], NULL, hc_writer, &r);
	for (i = 0; i < 3; i++)
		pthread_create(&rd[i], NULL, hc_reader, &r);
	sleep(2);
	atomic_store(&r.stop, 1);
	for (i = 0; i < 2; i++)
		pthread_join(w[i], NULL);
	for (i = 0; i < 3; i++)
		pthread_join(rd[i], NULL);
	hc_get_stats(r.c, &st);
	printf("dek race: %lld lookups, %lld hits, %lld wrong keys; %llu "
	    "inserts, %llu evictions, %llu invalid, %llu entries\n",
	    (long long)r.gets, (long long)r.hits, (long long)r.wrong,
	    (unsigned long long)st.inserts, (unsigned long long)st.evictions,
	    (unsigned long long)st.invalid, (unsigned long long)st.entries);
	ASSERT_INT(r.hits, >, 1000);
	ASSERT_EQ(r.wrong, 0);
	ASSERT_INT(st.evictions, >, 0);
	ASSERT_INT(st.invalid, >, 0);
	ASSERT_INT(st.entries, <=, HC_ENTRIES_MAX);
	ASSERT_EQ(st.hits, r.hits);
	hc_free(r.c);
}

/* The default file holds 100,000 customers, every one found. */
static void
test_capacity(void)
{
	struct xtcmk_fastpath_stats st;
	struct shmcache *sc;
	struct xerr e;
	struct stat sb;
	char path[128], id[32];
	json_t *js;
	int i, hits = 0;

	make_socket("cap");
	path_of("cap", "mc", path, sizeof(path));
	ASSERT_EQ(shmcache_open(path, 0600, (gid_t)-1, 0, &sc, &e), 0);
	for (i = 0; i < 100000; i++) {
		snprintf(id, sizeof(id), "customer-%06d", i);
		publish(sc, id, (uint64_t)i, 1);
	}
	js = shmcache_stats(sc);
	ASSERT_EQ(json_integer_value(json_object_get(js, "published")),
	    100000);
	ASSERT_EQ(json_integer_value(json_object_get(js, "full")), 0);
	json_decref(js);
	ASSERT_EQ(stat(path, &sb), 0);
	ASSERT_EQ(sb.st_size, (off_t)xm_file_size(XM_SLOTS, XM_SLOT_SIZE));
	for (i = 0; i < 100000; i += 997) {
		snprintf(id, sizeof(id), "customer-%06d", i);
		hits += lookup_fresh("cap", id, &st);
	}
	ASSERT_EQ(hits, 101);
	shmcache_close(sc);
}

int
main(void)
{
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/xtcmk-shm-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	test_publish();
	test_key_state();
	test_damaged();
	test_replaced();
	test_race();
	test_dek_race();
	test_capacity();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
	return t_done();
}
