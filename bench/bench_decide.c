/*
 * bench_decide.c - what a decision costs a host, against what the socket
 * itself costs.
 *
 *	bench_decide -s socket -c customer [-n calls] [-t threads] [-r reps]
 *	    [--json]
 *
 * (a) Baseline: an AF_UNIX echo server run in this process (a thread per
 *     connection) echoing frames of 16 + N bytes, N the size of a DECIDE
 *     request for `customer`.
 * (b) xtcmk_decide() through libxtcmk.so against the running agent.
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
};

struct result {
	double		 p50_us;
	double		 p99_us;
	double		 ops1;		/* calls/s, one thread */
	double		 opsT;		/* calls/s, `threads` threads */
};

static struct opts o = { NULL, NULL, 20000, 2, 3, 0 };
static struct echo *srv;
static size_t frame_len;


struct worker {
	int		 kind;		/* 0 echo, 1 decide */
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
	uint8_t frame[ECHO_FRAME_MAX];
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
	    "[-n calls] [-t threads] [-r reps] [--json]\n");
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
	struct result echo, dec;
	struct xtcmk *h;
	struct xtcmk_decision *d;
	long fails, i;
	int rc, a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--json") == 0)
			o.json = 1;
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

	/* (b) xtcmk_decide through the module, after a warm-up */
	if ((rc = xtcmk_open(o.socket, 5000, &h)) != XTCMK_OK) {
		fprintf(stderr, "bench_decide: %s\n", xtcmk_last_error());
		return 1;
	}
	for (i = 0; i < 100; i++) {
		if ((rc = xtcmk_decide(h, o.customer, &d)) != XTCMK_OK) {
			fprintf(stderr, "bench_decide: decide %s: %s: %s\n",
			    o.customer, xtcmk_strerror(rc),
			    xtcmk_last_error());
			return 1;
		}
		xtcmk_decision_free(d);
	}
	fails = measure(1, h, &dec);
	xtcmk_close(h);
	if (fails != 0) {
		fprintf(stderr, "bench_decide: %ld decide calls failed\n",
		    fails);
		return 1;
	}

	if (o.json) {
		printf("{\"calls\":%ld,\"threads\":%d,\"reps\":%d,"
		    "\"frame_bytes\":%zu,\n"
		    " \"echo\":{\"p50_us\":%.2f,\"p99_us\":%.2f,"
		    "\"ops_1\":%.0f,\"ops_t\":%.0f},\n"
		    " \"decide\":{\"p50_us\":%.2f,\"p99_us\":%.2f,"
		    "\"ops_1\":%.0f,\"ops_t\":%.0f},\n"
		    " \"ratio_p50\":%.2f,\"ratio_ops_t\":%.3f}\n",
		    o.n, o.threads, o.reps, frame_len,
		    echo.p50_us, echo.p99_us, echo.ops1, echo.opsT,
		    dec.p50_us, dec.p99_us, dec.ops1, dec.opsT,
		    dec.p50_us / echo.p50_us, dec.opsT / echo.opsT);
		return 0;
	}
	printf("%ld calls per run, median of %d runs, %zu-byte echo frames\n",
	    o.n, o.reps, frame_len);
	printf("%-8s %10s %10s %14s %14s\n", "", "p50 us", "p99 us",
	    "calls/s 1 thr", "calls/s");
	printf("%-8s %10.2f %10.2f %14.0f %14.0f  (%d threads)\n", "echo",
	    echo.p50_us, echo.p99_us, echo.ops1, echo.opsT, o.threads);
	printf("%-8s %10.2f %10.2f %14.0f %14.0f  (%d threads)\n", "decide",
	    dec.p50_us, dec.p99_us, dec.ops1, dec.opsT, o.threads);
	printf("decide p50 / echo p50: %.2f\n", dec.p50_us / echo.p50_us);
	printf("decide / echo throughput, %d threads: %.3f\n", o.threads,
	    dec.opsT / echo.opsT);
	return 0;
}
