/*
 * bench_keys.c - what data keys cost a host, through libxtcmk.so against
 * a running agent whose customer (with its key) the caller set up.
 *
 *	bench_keys -s socket -c customer [-n calls] [-r reps] [--json]
 *	bench_keys -s socket -c customer -w file [-m blobs]
 *	bench_keys -s socket -c customer --cold file [-t threads] [--json]
 *	bench_keys -s socket -c customer --spread file [-k times] [-t threads]
 *	    [--json]
 *	bench_keys -s socket -c customer --hot [-d seconds] [-t threads]
 *	    [-r reps] [--json]
 *
 * Warm (default): p50/p99 of a cached unwrap beside the round trip of an
 * in-process AF_UNIX echo server with frames of the unwrap request's size
 * (target: cached unwrap p50 within 2.5x of the echo), and of a new DEK.
 *
 * -w file: make `blobs` + 1 fresh blobs and store them in `file` (length-
 * prefixed wrapped blobs, no DEKs).  Restart the agent afterwards so that
 * no DEK of them is cached.
 *
 * --cold file: after that restart, time the first (cold) unwrap of each
 * blob but the last; then 1,000 unwraps of the last blob, cold as well,
 * from `threads` threads started together, and the number of key-service
 * unwraps they cost (1 with single flight), read from the agent's stats
 * (an XW_ADMIN {"cmd":"stats"} request as xtcmkctl sends it).
 * `threads` defaults to 100.
 *
 * --spread file: after that restart, unwrap every blob of the file `times`
 * times (default 20) in a shuffled order from `threads` threads (8)
 * sharing one handle, as a host service's worker pool would: the wall time
 * and the key-service unwraps they cost (at most one per blob with the DEK
 * cache and single flight).  bench/azure.sh reads the same count from the
 * Azure emulator.
 *
 * --hot: the throughput of cached unwraps of one blob from `threads`
 * threads (2) sharing one handle, for `seconds` (default 3) per run; the
 * median of `reps` runs.  bench/azure.sh compares it with the official
 * Azure SDK calling Key Vault for every unwrap.
 *
 * Every loop is bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "echo.h"
#include "wire.h"
#include "xtcmk.h"

#define CALLS_MAX	10000000
#define NEW_MAX		5000		/* new DEKs timed per run */
#define REPS_MAX	99
#define BLOBS_MAX	10000		/* blobs in a -w file */
#define THREADS_MAX	1000
#define CONCURRENT	1000		/* cold unwraps of one blob */
#define RATIO_TARGET	2.5
#define TIMEOUT_MS	10000
#define TIMES_MAX	1000		/* unwraps of each blob, --spread */
#define SECONDS_MAX	60		/* length of one --hot run */

struct opts {
	const char	*socket;
	const char	*customer;
	const char	*write_file;
	const char	*cold_file;
	const char	*spread_file;
	long		 n;
	long		 times;
	int		 seconds;
	int		 hot;
	long		 m;
	int		 reps;
	int		 threads;
	int		 json;
};

struct lat {
	double		 p50_us;
	double		 p99_us;
};

struct blobv {
	uint8_t		 b[XTCMK_BLOB_MAX];
	size_t		 len;
};

static struct opts o = {
	.n = 20000, .m = 200, .times = 20, .seconds = 3, .reps = 3,
};


static void
percentiles(double *lat, long n, struct lat *r)
{
	qsort(lat, (size_t)n, sizeof(*lat), bench_cmp_double);
	r->p50_us = lat[n / 2];
	r->p99_us = lat[(n * 99) / 100];
}

static void
fail(const char *what, int rc)
{
	fprintf(stderr, "bench_keys: %s: %s: %s\n", what, xtcmk_strerror(rc),
	    xtcmk_last_error());
	exit(1);
}

/* The agent's key-service unwraps (keys.provider_calls.unwrap, the local
 * keystore's, plus keys.azure.unwrap), or -1. */
static long long
provider_unwraps(void)
{
	static const char req[] = "{\"cmd\":\"stats\"}";
	char err[XC_ERR_MAX];
	uint8_t payload[64], *reply = NULL;
	struct xc_conn c;
	struct xw_buf b;
	struct xw_field f;
	uint16_t status;
	size_t rlen;
	int64_t dl = xc_deadline(TIMEOUT_MS);
	json_t *j = NULL, *k, *v, *a;
	long long n = -1;

	if (xc_connect(o.socket, dl, err, sizeof(err), &c) < 0) {
		fprintf(stderr, "bench_keys: stats: %s\n", err);
		return -1;
	}
	xw_buf_init(&b, payload, sizeof(payload));
	xw_put_str(&b, XT_JSON, req);
	if (xc_request(&c, XW_ADMIN, payload, b.len, XW_PAYLOAD_MAX, dl, err,
	    sizeof(err), &status, &reply, &rlen) == 0 && status == 0 &&
	    xw_find(reply, rlen, XT_JSON, &f) == 1)
		j = json_loadb((const char *)f.val, f.len, 0, NULL);
	k = json_object_get(j, "keys");
	v = json_object_get(json_object_get(k, "provider_calls"), "unwrap");
	a = json_object_get(json_object_get(k, "azure"), "unwrap");
	if (json_is_integer(v))
		n = json_integer_value(v) + (json_is_integer(a) ?
		    json_integer_value(a) : 0);
	else
		fprintf(stderr, "bench_keys: no keys.provider_calls.unwrap in "
		    "the agent's stats (is -s the agent's socket, and this "
		    "user an admin?)\n");
	json_decref(j);
	free(reply);
	xc_close(&c);
	return n;
}

/* --- warm: cached unwrap against the echo, new DEKs ------------------- */

static void
echo_latency(size_t frame_len, double *lat, struct lat *r)
{
	uint8_t frame[ECHO_FRAME_MAX];
	struct echo *srv;
	double t0;
	long i;
	int fd;

	if (echo_start(&srv) == -1 || (fd = echo_connect(srv)) == -1) {
		perror("bench_keys: echo server");
		exit(1);
	}
	echo_frame(frame, frame_len);
	for (i = 0; i < o.n; i++) {
		t0 = bench_now_us();
		if (echo_round_trip(fd, frame, frame_len) == -1) {
			fprintf(stderr, "bench_keys: echo round trip failed\n");
			exit(1);
		}
		lat[i] = bench_now_us() - t0;
	}
	close(fd);
	echo_stop(srv);
	percentiles(lat, o.n, r);
}

static void
unwrap_latency(struct xtcmk *h, const struct blobv *bv, double *lat,
    struct lat *r)
{
	uint8_t dek[XTCMK_DEK_LEN];
	double t0;
	long i;
	int rc;

	for (i = 0; i < o.n; i++) {
		t0 = bench_now_us();
		rc = xtcmk_dek_unwrap(h, o.customer, bv->b, bv->len, dek);
		lat[i] = bench_now_us() - t0;
		if (rc != XTCMK_OK)
			fail("unwrap", rc);
	}
	percentiles(lat, o.n, r);
}

static long
new_latency(struct xtcmk *h, double *lat, struct lat *r)
{
	uint8_t dek[XTCMK_DEK_LEN];
	struct blobv bv;
	long i, n = o.n < NEW_MAX ? o.n : NEW_MAX;
	double t0;
	int rc;

	for (i = 0; i < n; i++) {
		bv.len = sizeof(bv.b);
		t0 = bench_now_us();
		rc = xtcmk_dek_new(h, o.customer, dek, bv.b, &bv.len);
		lat[i] = bench_now_us() - t0;
		if (rc != XTCMK_OK)
			fail("new DEK", rc);
	}
	percentiles(lat, n, r);
	return n;
}

static int
warm(void)
{
	double e50[REPS_MAX], e99[REPS_MAX], u50[REPS_MAX], u99[REPS_MAX];
	double n50[REPS_MAX], n99[REPS_MAX], *lat;
	struct lat echo, unw, nw, r;
	uint8_t dek[XTCMK_DEK_LEN];
	struct xtcmk *h;
	struct blobv bv;
	size_t frame_len;
	long i, nnew = 0;
	int rc, k;

	if ((rc = xtcmk_open(o.socket, TIMEOUT_MS, &h)) != XTCMK_OK)
		fail("open", rc);
	bv.len = sizeof(bv.b);
	if ((rc = xtcmk_dek_new(h, o.customer, dek, bv.b, &bv.len)) !=
	    XTCMK_OK)
		fail("new DEK", rc);
	/* The unwrap request: header, customer field, blob field. */
	frame_len = ECHO_HDR_LEN + 2 * XW_FIELD_HDR + strlen(o.customer) +
	    bv.len;
	if (frame_len > ECHO_FRAME_MAX) {
		fprintf(stderr, "bench_keys: request of %zu bytes is over the "
		    "echo's frame limit\n", frame_len);
		return 1;
	}
	if ((lat = calloc((size_t)o.n, sizeof(*lat))) == NULL)
		return 1;
	for (i = 0; i < 100; i++)
		if ((rc = xtcmk_dek_unwrap(h, o.customer, bv.b, bv.len,
		    dek)) != XTCMK_OK)
			fail("unwrap", rc);
	for (k = 0; k < o.reps; k++) {
		echo_latency(frame_len, lat, &r);
		e50[k] = r.p50_us;
		e99[k] = r.p99_us;
		unwrap_latency(h, &bv, lat, &r);
		u50[k] = r.p50_us;
		u99[k] = r.p99_us;
		nnew = new_latency(h, lat, &r);
		n50[k] = r.p50_us;
		n99[k] = r.p99_us;
	}
	free(lat);
	xtcmk_close(h);
	echo.p50_us = bench_median(e50, o.reps);
	echo.p99_us = bench_median(e99, o.reps);
	unw.p50_us = bench_median(u50, o.reps);
	unw.p99_us = bench_median(u99, o.reps);
	nw.p50_us = bench_median(n50, o.reps);
	nw.p99_us = bench_median(n99, o.reps);

	if (o.json) {
		printf("{\"calls\":%ld,\"new_calls\":%ld,\"reps\":%d,"
		    "\"frame_bytes\":%zu,\n"
		    " \"echo\":{\"p50_us\":%.2f,\"p99_us\":%.2f},\n"
		    " \"cached_unwrap\":{\"p50_us\":%.2f,\"p99_us\":%.2f},\n"
		    " \"new_dek\":{\"p50_us\":%.2f,\"p99_us\":%.2f},\n"
		    " \"ratio_p50\":%.2f,\"ratio_target\":%.1f,"
		    "\"target_met\":%s}\n", o.n, nnew, o.reps, frame_len,
		    echo.p50_us, echo.p99_us, unw.p50_us, unw.p99_us,
		    nw.p50_us, nw.p99_us, unw.p50_us / echo.p50_us,
		    RATIO_TARGET, unw.p50_us / echo.p50_us <= RATIO_TARGET ?
		    "true" : "false");
		return 0;
	}
	printf("%ld calls per run (%ld new DEKs), median of %d runs, "
	    "%zu-byte echo frames\n", o.n, nnew, o.reps, frame_len);
	printf("%-14s %10s %10s\n", "", "p50 us", "p99 us");
	printf("%-14s %10.2f %10.2f\n", "echo", echo.p50_us, echo.p99_us);
	printf("%-14s %10.2f %10.2f\n", "cached unwrap", unw.p50_us,
	    unw.p99_us);
	printf("%-14s %10.2f %10.2f\n", "new DEK", nw.p50_us, nw.p99_us);
	printf("cached unwrap p50 / echo p50: %.2f (target <= %.1f: %s)\n",
	    unw.p50_us / echo.p50_us, RATIO_TARGET,
	    unw.p50_us / echo.p50_us <= RATIO_TARGET ? "met" : "missed");
	return 0;
}

/* --- blobs for the cold runs ---------------------------------------- */

static int
write_blobs(void)
{
	uint8_t dek[XTCMK_DEK_LEN];
	struct xtcmk *h;
	struct blobv bv;
	FILE *f;
	long i;
	int rc;

	if ((rc = xtcmk_open(o.socket, TIMEOUT_MS, &h)) != XTCMK_OK)
		fail("open", rc);
	if ((f = fopen(o.write_file, "wb")) == NULL) {
		fprintf(stderr, "bench_keys: %s: %s\n", o.write_file,
		    strerror(errno));
		return 1;
	}
	for (i = 0; i <= o.m; i++) {
		bv.len = sizeof(bv.b);
		if ((rc = xtcmk_dek_new(h, o.customer, dek, bv.b, &bv.len)) !=
		    XTCMK_OK)
			fail("new DEK", rc);
		fputc((int)(bv.len >> 8), f);
		fputc((int)(bv.len & 0xff), f);
		fwrite(bv.b, 1, bv.len, f);
	}
	memset(dek, 0, sizeof(dek));
	xtcmk_close(h);
	if (fclose(f) != 0) {
		fprintf(stderr, "bench_keys: %s: %s\n", o.write_file,
		    strerror(errno));
		return 1;
	}
	printf("wrote %ld blobs to %s: restart the agent, then run "
	    "bench_keys --cold %s\n", o.m + 1, o.write_file, o.write_file);
	return 0;
}

static long
read_blobs(const char *path, struct blobv **ret)
{
	struct blobv *v;
	FILE *f;
	long n = 0;
	int hi, lo;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "bench_keys: %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
	if ((v = calloc(BLOBS_MAX + 1, sizeof(*v))) == NULL)
		exit(1);
	while (n <= BLOBS_MAX && (hi = fgetc(f)) != EOF &&
	    (lo = fgetc(f)) != EOF) {
		v[n].len = (size_t)hi << 8 | (size_t)lo;
		if (v[n].len == 0 || v[n].len > XTCMK_BLOB_MAX ||
		    fread(v[n].b, 1, v[n].len, f) != v[n].len) {
			fprintf(stderr, "bench_keys: %s is not a file of "
			    "bench_keys -w\n", path);
			exit(1);
		}
		n++;
	}
	fclose(f);
	if (n < 2) {
		fprintf(stderr, "bench_keys: %s holds %ld blobs; make at "
		    "least 2 with -w\n", path, n);
		exit(1);
	}
	*ret = v;
	return n;
}

/* --- cold: first unwraps, and many at once -------------------------- */

struct flight {
	pthread_barrier_t	*bar;
	const struct blobv	*bv;
	struct xtcmk		*h;
	long			 n;
	long			 ok;
	pthread_t		 t;
};

static void *
flight_main(void *arg)
{
	struct flight *f = arg;
	uint8_t dek[XTCMK_DEK_LEN];
	long i;

	pthread_barrier_wait(f->bar);
	for (i = 0; i < f->n; i++)
		if (xtcmk_dek_unwrap(f->h, o.customer, f->bv->b, f->bv->len,
		    dek) == XTCMK_OK)
			f->ok++;
	memset(dek, 0, sizeof(dek));
	return NULL;
}

/* CONCURRENT unwraps of one blob from o.threads threads at once. */
static int
flights(const struct blobv *bv, long *ret_ok, double *ret_ms)
{
	struct flight *f;
	pthread_barrier_t bar;
	pthread_attr_t attr;
	char state[32];
	double t0;
	int i, rc, started = 0;

	if ((f = calloc((size_t)o.threads, sizeof(*f))) == NULL)
		return -1;
	pthread_barrier_init(&bar, NULL, (unsigned)o.threads + 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (i = 0; i < o.threads; i++) {
		f[i].bar = &bar;
		f[i].bv = bv;
		f[i].n = CONCURRENT / o.threads +
		    (i < CONCURRENT % o.threads);
		/* Connect first so that the unwraps arrive together. */
		if ((rc = xtcmk_open(o.socket, TIMEOUT_MS, &f[i].h)) !=
		    XTCMK_OK || (rc = xtcmk_key_status(f[i].h, o.customer,
		    state, sizeof(state), NULL, 0)) != XTCMK_OK)
			fail("connect", rc);
	}
	for (i = 0; i < o.threads; i++) {
		if (pthread_create(&f[i].t, &attr, flight_main, &f[i]) != 0)
			break;
		started++;
	}
	if (started < o.threads) {
		fprintf(stderr, "bench_keys: only %d threads started\n",
		    started);
		exit(1);
	}
	t0 = bench_now_us();
	pthread_barrier_wait(&bar);
	*ret_ok = 0;
	for (i = 0; i < started; i++) {
		pthread_join(f[i].t, NULL);
		*ret_ok += f[i].ok;
	}
	*ret_ms = (bench_now_us() - t0) / 1e3;
	for (i = 0; i < o.threads; i++)
		xtcmk_close(f[i].h);
	pthread_attr_destroy(&attr);
	pthread_barrier_destroy(&bar);
	free(f);
	return 0;
}

static int
cold(void)
{
	uint8_t dek[XTCMK_DEK_LEN];
	struct blobv *v;
	struct xtcmk *h;
	struct lat r;
	char state[32];
	double *lat, t0, ms;
	long long u0, u1, u2;
	long n, i, ok;
	int rc;

	n = read_blobs(o.cold_file, &v);
	if ((lat = calloc((size_t)n, sizeof(*lat))) == NULL)
		return 1;
	if ((rc = xtcmk_open(o.socket, TIMEOUT_MS, &h)) != XTCMK_OK)
		fail("open", rc);
	/* The customer's first request since the restart learns its key's
	 * state; time only what a cold DEK costs. */
	if ((rc = xtcmk_key_status(h, o.customer, state, sizeof(state), NULL,
	    0)) != XTCMK_OK)
		fail("key status", rc);
	if ((u0 = provider_unwraps()) < 0)
		return 1;
	for (i = 0; i < n - 1; i++) {
		t0 = bench_now_us();
		rc = xtcmk_dek_unwrap(h, o.customer, v[i].b, v[i].len, dek);
		lat[i] = bench_now_us() - t0;
		if (rc != XTCMK_OK)
			fail("cold unwrap", rc);
	}
	memset(dek, 0, sizeof(dek));
	xtcmk_close(h);
	percentiles(lat, n - 1, &r);
	free(lat);
	u1 = provider_unwraps();
	if (flights(&v[n - 1], &ok, &ms) < 0)
		return 1;
	u2 = provider_unwraps();
	free(v);

	if (o.json) {
		printf("{\"cold_unwraps\":%ld,\"cold_provider_calls\":%lld,\n"
		    " \"cold_unwrap\":{\"p50_us\":%.2f,\"p99_us\":%.2f},\n"
		    " \"concurrent\":{\"unwraps\":%d,\"threads\":%d,"
		    "\"ok\":%ld,\"ms\":%.1f,\"provider_calls\":%lld}}\n",
		    n - 1, u1 - u0, r.p50_us, r.p99_us, CONCURRENT, o.threads,
		    ok, ms, u2 - u1);
		return ok == CONCURRENT ? 0 : 1;
	}
	printf("%-14s %10s %10s\n", "", "p50 us", "p99 us");
	printf("%-14s %10.2f %10.2f  (%ld blobs, %lld key service calls; "
	    "%ld expected if the agent was restarted)\n", "cold unwrap",
	    r.p50_us, r.p99_us, n - 1, u1 - u0, n - 1);
	printf("%d unwraps of one cold blob from %d threads: %ld ok in "
	    "%.1f ms, %lld key service unwrap calls (1 = single flight)\n",
	    CONCURRENT, o.threads, ok, ms, u2 - u1);
	return ok == CONCURRENT ? 0 : 1;
}

/* --- spread: many blobs, each unwrapped many times, from a pool ------- */

struct spread {
	pthread_barrier_t	*bar;
	struct xtcmk		*h;
	const struct blobv	*v;
	const long		*order;		/* blob index per unwrap */
	long			 total;
	atomic_long		*next;
	long			 ok;
	int			 rc;		/* first failure, or XTCMK_OK */
	char			 err[256];
	pthread_t		 t;
};

static void *
spread_main(void *arg)
{
	struct spread *s = arg;
	uint8_t dek[XTCMK_DEK_LEN];
	long i;
	int rc;

	pthread_barrier_wait(s->bar);
	while ((i = atomic_fetch_add(s->next, 1)) < s->total) {
		rc = xtcmk_dek_unwrap(s->h, o.customer, s->v[s->order[i]].b,
		    s->v[s->order[i]].len, dek);
		if (rc == XTCMK_OK)
			s->ok++;
		else if (s->rc == XTCMK_OK) {
			s->rc = rc;
			snprintf(s->err, sizeof(s->err), "%s",
			    xtcmk_last_error());
		}
	}
	memset(dek, 0, sizeof(dek));
	return NULL;
}

/* xorshift64*: a shuffle that needs no library state. */
static uint64_t
rnd(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dULL;
}

static int
spread(void)
{
	struct spread *s;
	struct blobv *v;
	struct xtcmk *h;
	pthread_barrier_t bar;
	atomic_long next = 0;
	char state[32];
	uint64_t x;
	long *order, n, total, i, j, t, ok = 0;
	long long u0, u1;
	double t0, ms;
	int rc, k, started = 0, failed = XTCMK_OK;
	const char *why = "";

	n = read_blobs(o.spread_file, &v);
	total = n * o.times;
	if (total > CALLS_MAX) {
		fprintf(stderr, "bench_keys: %ld blobs x %ld times is over "
		    "%d unwraps; use a smaller -k\n", n, o.times, CALLS_MAX);
		return 1;
	}
	if ((order = calloc((size_t)total, sizeof(*order))) == NULL ||
	    (s = calloc((size_t)o.threads, sizeof(*s))) == NULL)
		return 1;
	for (i = 0; i < total; i++)
		order[i] = i % n;
	x = (uint64_t)bench_now_us() | 1;
	for (i = total - 1; i > 0; i--) {
		j = (long)(rnd(&x) % (uint64_t)(i + 1));
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	if ((rc = xtcmk_open(o.socket, TIMEOUT_MS, &h)) != XTCMK_OK)
		fail("open", rc);
	/* The customer's first request since the restart learns its key's
	 * state; it costs a get-key, not an unwrap. */
	if ((rc = xtcmk_key_status(h, o.customer, state, sizeof(state), NULL,
	    0)) != XTCMK_OK)
		fail("key status", rc);
	if ((u0 = provider_unwraps()) < 0)
		return 1;
	pthread_barrier_init(&bar, NULL, (unsigned)o.threads + 1);
	for (k = 0; k < o.threads; k++) {
		s[k].bar = &bar;
		s[k].h = h;
		s[k].v = v;
		s[k].order = order;
		s[k].total = total;
		s[k].next = &next;
		if (pthread_create(&s[k].t, NULL, spread_main, &s[k]) != 0)
			break;
		started++;
	}
	if (started < o.threads) {
		fprintf(stderr, "bench_keys: only %d threads started\n",
		    started);
		exit(1);
	}
	t0 = bench_now_us();
	pthread_barrier_wait(&bar);
	for (k = 0; k < started; k++) {
		pthread_join(s[k].t, NULL);
		ok += s[k].ok;
		if (failed == XTCMK_OK && s[k].rc != XTCMK_OK) {
			failed = s[k].rc;
			why = s[k].err;
		}
	}
	ms = (bench_now_us() - t0) / 1e3;
	u1 = provider_unwraps();
	pthread_barrier_destroy(&bar);
	xtcmk_close(h);
	if (failed != XTCMK_OK)
		fprintf(stderr, "bench_keys: unwrap: %s: %s\n",
		    xtcmk_strerror(failed), why);

	if (o.json)
		printf("{\"blobs\":%ld,\"times\":%ld,\"unwraps\":%ld,"
		    "\"threads\":%d,\"ok\":%ld,\"ms\":%.1f,"
		    "\"provider_calls\":%lld}\n", n, o.times, total,
		    o.threads, ok, ms, u1 - u0);
	else
		printf("%ld unwraps (%ld blobs x %ld, shuffled) from %d "
		    "threads: %ld ok in %.1f ms, %lld key service unwrap "
		    "calls (at most %ld expected)\n", total, n, o.times,
		    o.threads, ok, ms, u1 - u0, n);
	free(s);
	free(order);
	free(v);
	return ok == total ? 0 : 1;
}

/* --- hot: cached unwraps of one blob, as many as fit in the time ------ */

struct hot {
	pthread_barrier_t	*bar;
	struct xtcmk		*h;
	const struct blobv	*bv;
	double			 end_us;	/* set before the barrier */
	long			 max;
	long			 ok;
	int			 rc;
	pthread_t		 t;
};

static void *
hot_main(void *arg)
{
	struct hot *w = arg;
	uint8_t dek[XTCMK_DEK_LEN];
	long i;
	int rc;

	pthread_barrier_wait(w->bar);
	for (i = 0; i < w->max && bench_now_us() < w->end_us; i++) {
		rc = xtcmk_dek_unwrap(w->h, o.customer, w->bv->b, w->bv->len,
		    dek);
		if (rc != XTCMK_OK) {
			w->rc = rc;
			break;
		}
		w->ok++;
	}
	memset(dek, 0, sizeof(dek));
	return NULL;
}

/* One run: cached unwraps per second over o.seconds, or -1. */
static double
hot_run(struct xtcmk *h, const struct blobv *bv, long *ret_calls)
{
	struct hot w[THREADS_MAX];
	pthread_barrier_t bar;
	double t0, t1;
	long calls = 0;
	int k, started = 0, rc = XTCMK_OK;

	memset(w, 0, sizeof(w[0]) * (size_t)o.threads);
	pthread_barrier_init(&bar, NULL, (unsigned)o.threads + 1);
	for (k = 0; k < o.threads; k++) {
		w[k].bar = &bar;
		w[k].h = h;
		w[k].bv = bv;
		w[k].max = CALLS_MAX / o.threads;
		if (pthread_create(&w[k].t, NULL, hot_main, &w[k]) != 0)
			break;
		started++;
	}
	if (started < o.threads) {
		fprintf(stderr, "bench_keys: only %d threads started\n",
		    started);
		exit(1);
	}
	/* Every thread waits at the barrier, which publishes end_us. */
	t0 = bench_now_us();
	for (k = 0; k < started; k++)
		w[k].end_us = t0 + 1e6 * o.seconds;
	pthread_barrier_wait(&bar);
	for (k = 0; k < started; k++) {
		pthread_join(w[k].t, NULL);
		calls += w[k].ok;
		if (rc == XTCMK_OK)
			rc = w[k].rc;
	}
	t1 = bench_now_us();
	pthread_barrier_destroy(&bar);
	if (rc != XTCMK_OK)
		fail("hot unwrap", rc);
	*ret_calls = calls;
	return calls / ((t1 - t0) / 1e6);
}

static int
hot(void)
{
	double rate[REPS_MAX], med;
	long calls[REPS_MAX];
	uint8_t dek[XTCMK_DEK_LEN];
	struct xtcmk *h;
	struct blobv bv;
	long long u0, u1;
	int rc, k;

	if ((rc = xtcmk_open(o.socket, TIMEOUT_MS, &h)) != XTCMK_OK)
		fail("open", rc);
	bv.len = sizeof(bv.b);
	if ((rc = xtcmk_dek_new(h, o.customer, dek, bv.b, &bv.len)) !=
	    XTCMK_OK)
		fail("new DEK", rc);
	if ((rc = xtcmk_dek_unwrap(h, o.customer, bv.b, bv.len, dek)) !=
	    XTCMK_OK)
		fail("unwrap", rc);
	memset(dek, 0, sizeof(dek));
	if ((u0 = provider_unwraps()) < 0)
		return 1;
	for (k = 0; k < o.reps; k++)
		rate[k] = hot_run(h, &bv, &calls[k]);
	u1 = provider_unwraps();
	xtcmk_close(h);

	if (o.json) {
		printf("{\"threads\":%d,\"seconds\":%d,\"reps\":%d,"
		    "\"per_s\":[", o.threads, o.seconds, o.reps);
		for (k = 0; k < o.reps; k++)
			printf("%s%.0f", k ? "," : "", rate[k]);
		printf("],\"calls\":[");
		for (k = 0; k < o.reps; k++)
			printf("%s%ld", k ? "," : "", calls[k]);
	}
	med = bench_median(rate, o.reps);
	if (o.json)
		printf("],\"per_s_median\":%.0f,\"provider_calls\":%lld}\n",
		    med, u1 - u0);
	else
		printf("hot unwrap of one cached blob from %d threads, %d s "
		    "runs: %.0f/s (median of %d), %lld key service unwrap "
		    "calls\n", o.threads, o.seconds, med, o.reps, u1 - u0);
	return 0;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: bench_keys -s socket -c customer [-n calls] [-r reps] "
	    "[--json]\n"
	    "       bench_keys -s socket -c customer -w file [-m blobs]\n"
	    "       bench_keys -s socket -c customer --cold file "
	    "[-t threads] [--json]\n"
	    "       bench_keys -s socket -c customer --spread file "
	    "[-k times] [-t threads] [--json]\n"
	    "       bench_keys -s socket -c customer --hot [-d seconds] "
	    "[-t threads] [-r reps] [--json]\n");
	exit(1);
}

static long
num(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	int a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--json") == 0)
			o.json = 1;
		else if (strcmp(argv[a], "--hot") == 0)
			o.hot = 1;
		else if (a + 1 >= argc)
			usage();
		else if (strcmp(argv[a], "-s") == 0)
			o.socket = argv[++a];
		else if (strcmp(argv[a], "-c") == 0)
			o.customer = argv[++a];
		else if (strcmp(argv[a], "-n") == 0)
			o.n = num(argv[++a], 100, CALLS_MAX);
		else if (strcmp(argv[a], "-r") == 0)
			o.reps = (int)num(argv[++a], 1, REPS_MAX);
		else if (strcmp(argv[a], "-m") == 0)
			o.m = num(argv[++a], 1, BLOBS_MAX - 1);
		else if (strcmp(argv[a], "-t") == 0)
			o.threads = (int)num(argv[++a], 1, THREADS_MAX);
		else if (strcmp(argv[a], "-w") == 0)
			o.write_file = argv[++a];
		else if (strcmp(argv[a], "--cold") == 0)
			o.cold_file = argv[++a];
		else if (strcmp(argv[a], "--spread") == 0)
			o.spread_file = argv[++a];
		else if (strcmp(argv[a], "-k") == 0)
			o.times = num(argv[++a], 1, TIMES_MAX);
		else if (strcmp(argv[a], "-d") == 0)
			o.seconds = (int)num(argv[++a], 1, SECONDS_MAX);
		else
			usage();
	}
	if (o.socket == NULL || o.customer == NULL ||
	    (o.write_file != NULL) + (o.cold_file != NULL) +
	    (o.spread_file != NULL) + o.hot > 1)
		usage();
	if (o.write_file != NULL)
		return write_blobs();
	if (o.cold_file != NULL) {
		o.threads = o.threads ? o.threads : 100;
		return cold();
	}
	if (o.spread_file != NULL) {
		o.threads = o.threads ? o.threads : 8;
		return spread();
	}
	if (o.hot) {
		o.threads = o.threads ? o.threads : 2;
		return hot();
	}
	return warm();
}
