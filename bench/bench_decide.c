/*
 * bench_decide.c - what a decision costs a host, against what the socket
 * itself costs.
 *
 *	bench_decide -s socket -c customer [-n calls] [-t threads] [-r reps]
 *	    [-u] [--json]
 *
 * (a) Baseline: an AF_UNIX echo server run in this process (a thread per
 *     connection) echoing frames of 16 + N bytes, N the size of a DECIDE
 *     request for `customer`.
 * (b) xtcmk_decide() through libxtcmk.so against the running agent, three
 *     ways: the default (the fast path: decisions from the agent's
 *     memory-mapped file; every call must be a hit, checked with
 *     xtcmk_fastpath_stats), XTCMK_NO_MEMCACHE=1 (every call over the
 *     socket, as before the fast path), and a fast path that always
 *     falls back (XTCMK_MEMCACHE naming a missing file: the cost a miss
 *     adds to the socket round trip).
 *
 * (c) With -u, for a customer whose versioning policy sets host_cache_ttl:
 *     xtcmk_dek_unwrap() of one blob, answered from libxtcmk's own DEK
 *     cache (every call must be a host-cache hit, checked with
 *     xtcmk_fastpath_stats).
 *
 * For each: p50/p99 latency with one thread, throughput with 1 and with
 * `threads` client threads.  Every measurement is repeated `reps` times and
 * the median printed, with the ratios decide/echo.  All loops are bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "echo.h"
#include "xtcmk.h"

#define FIELD_HDR	6
#define THREADS_MAX	64
#define CALLS_MAX	10000000
#define REPS_MAX	99

struct opts {
	const char	*socket;
	const char	*customer;
	long		 n;
	int		 threads;
	int		 reps;
	int		 json;
	int		 unwrap;	/* -u: (c) too */
};

struct result {
	double		 p50_us;
	double		 p99_us;
	double		 ops1;		/* calls/s, one thread */
	double		 opsT;		/* calls/s, `threads` threads */
	struct xtcmk_fastpath_stats fp;	/* the handle's, after the runs */
};

static struct opts o = { NULL, NULL, 20000, 2, 3, 0, 0 };
static uint8_t hot_blob[XTCMK_BLOB_MAX];	/* (c): its wrapped DEK */
static size_t hot_len;
static struct echo *srv;
static size_t frame_len;


struct worker {
	int		 kind;		/* 0 echo, 1 decide, 2 unwrap */
	struct xtcmk	*h;
	long		 n;
	double		*lat;		/* per-call latency, or NULL */
	long		 fails;
	int		 started;
	pthread_t	 t;
};

static void *
run(void *arg)
{
	struct worker *w = arg;
	struct xtcmk_decision *d;
	uint8_t frame[ECHO_FRAME_MAX], dek[XTCMK_DEK_LEN];
	double t0;
	long i;
	int fd = -1;

	if (w->kind == 0) {
		if ((fd = echo_connect(srv)) == -1) {
			w->fails = w->n;
			return NULL;
		}
		echo_frame(frame, frame_len);
	}
	for (i = 0; i < w->n; i++) {
		t0 = w->lat != NULL ? bench_now_us() : 0;
		if (w->kind == 0) {
			if (echo_round_trip(fd, frame, frame_len) == -1) {
				w->fails++;
				break;
			}
		} else if (w->kind == 2) {
			if (xtcmk_dek_unwrap(w->h, o.customer, hot_blob,
			    hot_len, dek) != XTCMK_OK)
				w->fails++;
		} else {
			if (xtcmk_decide(w->h, o.customer, &d) != XTCMK_OK)
				w->fails++;
			else
				xtcmk_decision_free(d);
		}
		if (w->lat != NULL)
			w->lat[i] = bench_now_us() - t0;
	}
	if (fd != -1)
		close(fd);
	memset(dek, 0, sizeof(dek));
	return NULL;
}

/* Latency percentiles with one thread; returns failures. */
static long
latency(int kind, struct xtcmk *h, double *lat, double *p50, double *p99)
{
	struct worker w = { .kind = kind, .h = h, .n = o.n, .lat = lat };

	run(&w);
	qsort(lat, (size_t)o.n, sizeof(*lat), bench_cmp_double);
	*p50 = lat[o.n / 2];
	*p99 = lat[(o.n * 99) / 100];
	return w.fails;
}

/* Calls per second with `threads` threads; failures into *fails. */
static double
throughput(int kind, struct xtcmk *h, int threads, long *fails)
{
	struct worker w[THREADS_MAX];
	double t0, el;
	int i;

	t0 = bench_now_us();
	for (i = 0; i < threads; i++) {
		w[i] = (struct worker){ .kind = kind, .h = h, .n = o.n };
		if (pthread_create(&w[i].t, NULL, run, &w[i]) == 0)
			w[i].started = 1;
		else
			w[i].fails = o.n;
	}
	for (i = 0; i < threads; i++)
		if (w[i].started)
			pthread_join(w[i].t, NULL);
	el = bench_now_us() - t0;
	for (i = 0; i < threads; i++)
		*fails += w[i].fails;
	return (double)threads * (double)o.n / (el / 1e6);
}

static long
measure(int kind, struct xtcmk *h, struct result *r)
{
	double p50[REPS_MAX], p99[REPS_MAX], o1[REPS_MAX], oT[REPS_MAX];
	double *lat;
	long fails = 0;
	int i;

	if ((lat = calloc((size_t)o.n, sizeof(*lat))) == NULL)
		return -1;
	for (i = 0; i < o.reps; i++) {
		fails += latency(kind, h, lat, &p50[i], &p99[i]);
		o1[i] = throughput(kind, h, 1, &fails);
		oT[i] = throughput(kind, h, o.threads, &fails);
	}
	free(lat);
	r->p50_us = bench_median(p50, o.reps);
	r->p99_us = bench_median(p99, o.reps);
	r->ops1 = bench_median(o1, o.reps);
	r->opsT = bench_median(oT, o.reps);
	return fails;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: bench_decide -s socket -c customer "
	    "[-n calls] [-t threads] [-r reps] [-u] [--json]\n");
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

enum mode { M_FAST, M_SOCKET, M_FALLBACK };

/*
 * Measure xtcmk_decide in one mode (the environment is read by
 * xtcmk_open only) and check that the calls took the intended path.
 */
static int
bench_module(enum mode m, struct result *r)
{
	struct xtcmk_fastpath_stats st;
	struct xtcmk *h;
	struct xtcmk_decision *d;
	long fails, i;
	int rc;

	if (m == M_SOCKET)
		setenv("XTCMK_NO_MEMCACHE", "1", 1);
	if (m == M_FALLBACK)
		setenv("XTCMK_MEMCACHE", "/nonexistent/xtcmk-bench.mc", 1);
	rc = xtcmk_open(o.socket, 5000, &h);
	unsetenv("XTCMK_NO_MEMCACHE");
	unsetenv("XTCMK_MEMCACHE");
	if (rc != XTCMK_OK) {
		fprintf(stderr, "bench_decide: %s\n", xtcmk_last_error());
		return -1;
	}
	for (i = 0; i < 100; i++) {
		if ((rc = xtcmk_decide(h, o.customer, &d)) != XTCMK_OK) {
			fprintf(stderr, "bench_decide: decide %s: %s: %s\n",
			    o.customer, xtcmk_strerror(rc),
			    xtcmk_last_error());
			xtcmk_close(h);
			return -1;
		}
		xtcmk_decision_free(d);
	}
	(void)xtcmk_fastpath_stats(h, &st, sizeof(st));
	fails = measure(1, h, r);
	(void)xtcmk_fastpath_stats(h, &r->fp, sizeof(r->fp));
	xtcmk_close(h);
	if (fails != 0) {
		fprintf(stderr, "bench_decide: %ld decide calls failed\n",
		    fails);
		return -1;
	}
	/* Every measured call took the path this mode is about. */
	if ((m == M_FAST && r->fp.hits - st.hits !=
	    (uint64_t)(o.reps * (1 + 1 + o.threads) * o.n)) ||
	    (m != M_FAST && r->fp.hits != 0)) {
		fprintf(stderr, "bench_decide: mode %d: %llu fast-path hits, "
		    "%llu misses, %llu stale, %llu heartbeat: not the path "
		    "measured\n", (int)m, (unsigned long long)r->fp.hits,
		    (unsigned long long)r->fp.misses,
		    (unsigned long long)r->fp.stale,
		    (unsigned long long)r->fp.heartbeat);
		return -1;
	}
	return 0;
}

/*
 * (c): one blob unwrapped once through the agent, then measured; every
 * measured call must be a hit of the host's DEK cache.
 */
static int
bench_unwrap(struct result *r)
{
	struct xtcmk_fastpath_stats st;
	uint8_t dek[XTCMK_DEK_LEN];
	struct xtcmk *h;
	long fails;
	int rc;

	if ((rc = xtcmk_open(o.socket, 5000, &h)) != XTCMK_OK) {
		fprintf(stderr, "bench_decide: %s\n", xtcmk_last_error());
		return -1;
	}
	hot_len = sizeof(hot_blob);
	if ((rc = xtcmk_dek_new(h, o.customer, dek, hot_blob, &hot_len)) !=
	    XTCMK_OK || (rc = xtcmk_dek_unwrap(h, o.customer, hot_blob,
	    hot_len, dek)) != XTCMK_OK) {
		fprintf(stderr, "bench_decide: data key of %s: %s: %s\n",
		    o.customer, xtcmk_strerror(rc), xtcmk_last_error());
		xtcmk_close(h);
		return -1;
	}
	memset(dek, 0, sizeof(dek));
	(void)xtcmk_fastpath_stats(h, &st, sizeof(st));
	fails = measure(2, h, r);
	(void)xtcmk_fastpath_stats(h, &r->fp, sizeof(r->fp));
	xtcmk_close(h);
	if (fails != 0) {
		fprintf(stderr, "bench_decide: %ld unwraps failed\n", fails);
		return -1;
	}
	if (r->fp.dek_hits - st.dek_hits !=
	    (uint64_t)(o.reps * (1 + 1 + o.threads) * o.n)) {
		fprintf(stderr, "bench_decide: %llu host-cache hits, %llu "
		    "misses: not the path measured (does the versioning "
		    "policy set host_cache_ttl for %s?)\n",
		    (unsigned long long)(r->fp.dek_hits - st.dek_hits),
		    (unsigned long long)(r->fp.dek_misses - st.dek_misses),
		    o.customer);
		return -1;
	}
	return 0;
}

static void
row(const char *name, const struct result *r)
{
	printf("%-10s %10.2f %10.2f %14.0f %14.0f  (%d threads)\n", name,
	    r->p50_us, r->p99_us, r->ops1, r->opsT, o.threads);
}

static void
json_row(const char *name, const struct result *r, const struct result *e,
    int last)
{
	printf(" \"%s\":{\"p50_us\":%.3f,\"p99_us\":%.3f,\"ops_1\":%.0f,"
	    "\"ops_t\":%.0f,\"ratio_p50\":%.4f,\"ratio_ops_t\":%.3f}%s\n",
	    name, r->p50_us, r->p99_us, r->ops1, r->opsT,
	    r->p50_us / e->p50_us, r->opsT / e->opsT, last ? "" : ",");
}

int
main(int argc, char **argv)
{
	struct result echo, fast, sock, fall, unw;
	long fails;
	int a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--json") == 0)
			o.json = 1;
		else if (strcmp(argv[a], "-u") == 0)
			o.unwrap = 1;
		else if (a + 1 >= argc)
			usage();
		else if (strcmp(argv[a], "-s") == 0)
			o.socket = argv[++a];
		else if (strcmp(argv[a], "-c") == 0)
			o.customer = argv[++a];
		else if (strcmp(argv[a], "-n") == 0)
			o.n = num(argv[++a], 100, CALLS_MAX);
		else if (strcmp(argv[a], "-t") == 0)
			o.threads = (int)num(argv[++a], 1, THREADS_MAX);
		else if (strcmp(argv[a], "-r") == 0)
			o.reps = (int)num(argv[++a], 1, REPS_MAX);
		else
			usage();
	}
	if (o.socket == NULL || o.customer == NULL)
		usage();
	frame_len = ECHO_HDR_LEN + FIELD_HDR + strlen(o.customer);
	if (frame_len > ECHO_FRAME_MAX) {
		fprintf(stderr, "bench_decide: customer id too long\n");
		return 1;
	}

	/* (a) echo baseline */
	if (echo_start(&srv) == -1) {
		perror("bench_decide: echo server");
		return 1;
	}
	fails = measure(0, NULL, &echo);
	echo_stop(srv);
	if (fails != 0) {
		fprintf(stderr, "bench_decide: echo baseline failed\n");
		return 1;
	}

	/* (b) xtcmk_decide through the module, after a warm-up each */
	if (bench_module(M_FAST, &fast) < 0 ||
	    bench_module(M_SOCKET, &sock) < 0 ||
	    bench_module(M_FALLBACK, &fall) < 0)
		return 1;
	/* (c) host-cache unwraps */
	if (o.unwrap && bench_unwrap(&unw) < 0)
		return 1;

	if (o.json) {
		printf("{\"calls\":%ld,\"threads\":%d,\"reps\":%d,"
		    "\"frame_bytes\":%zu,\n", o.n, o.threads, o.reps, frame_len);
		json_row("echo", &echo, &echo, 0);
		json_row("decide", &fast, &echo, 0);
		json_row("decide_socket", &sock, &echo, 0);
		json_row("decide_fallback", &fall, &echo, !o.unwrap);
		if (o.unwrap)
			json_row("unwrap_host", &unw, &echo, 1);
		printf("}\n");
		return 0;
	}
	printf("%ld calls per run, median of %d runs, %zu-byte echo frames\n",
	    o.n, o.reps, frame_len);
	printf("%-10s %10s %10s %14s %14s\n", "", "p50 us", "p99 us",
	    "calls/s 1 thr", "calls/s");
	row("echo", &echo);
	row("fast path", &fast);
	row("socket", &sock);
	row("fallback", &fall);
	if (o.unwrap)
		row("unwrap", &unw);
	printf("echo p50 / fast path p50: %.1fx; fast path / echo "
	    "throughput, %d threads: %.1fx\n", echo.p50_us / fast.p50_us,
	    o.threads, fast.opsT / echo.opsT);
	printf("socket (XTCMK_NO_MEMCACHE=1) p50 / echo p50: %.2f; "
	    "throughput %d threads: %.3f\n", sock.p50_us / echo.p50_us,
	    o.threads, sock.opsT / echo.opsT);
	printf("fallback (fast path misses) p50 / socket p50: %.3f; "
	    "throughput %d threads: %.3f\n", fall.p50_us / sock.p50_us,
	    o.threads, fall.opsT / sock.opsT);
	printf("fallback p50 / echo p50: %.2f\n", fall.p50_us / echo.p50_us);
	if (o.unwrap)
		printf("host-cache unwrap: echo p50 / unwrap p50: %.1fx; "
		    "unwrap / echo throughput, %d threads: %.1fx\n",
		    echo.p50_us / unw.p50_us, o.threads,
		    unw.opsT / echo.opsT);
	return 0;
}
