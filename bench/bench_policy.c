/*
 * bench_policy.c - what a policy call costs through the agent: the
 * uncached decision (the admin `decide`, which runs the role and the
 * key-versioning policies every time), the cached DECIDE a host asks
 * through libxtcmk, and onboarding throughput (customer.add, partition,
 * role and versioning policies plus the registry transaction).
 *
 *	bench_policy -s SOCKET -c CUSTOMER [-n CALLS] [-a ADDS] [-p PREFIX]
 *	    [-r REPS] [-i IMPORTS -b BATCH -P AGENT_PID]
 *
 * Prints one line of JSON: uncached and cached p50/p99 in microseconds
 * and adds per second, each the median of REPS (default 3) repetitions.
 * With -i, also onboarding through customer.import, IMPORTS customers in
 * batches of BATCH (one registry commit, one fsync, per batch, so the
 * figure is the policy calls and the registry work, not the disk):
 * customers per second, and the CPU time the agent (every thread) and
 * its policy worker processes spent per customer, from
 * /proc/PID/task/TID/schedstat (nanoseconds).  bench/policy.sh runs it
 * against agents with [policy] isolation = process and inprocess in the
 * same run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "harness_admin.h"
#include "xtcmk.h"

#define CALL_MS		20000
#define CALLS_MAX	1000000
#define REPS_MAX	15

#define BATCH_MAX	1000		/* customers per import request */

static const char *sock, *customer, *prefix = "bench";
static struct xc_conn conn = { .fd = -1 };
static long ncalls = 2000, nadds = 200, nimports, batch = 100;
static long agent_pid;
static int reps = 3;
static long add_seq;

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, long n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[(long)((double)(n - 1) * p)];
}

/* Latencies of `ncalls` uncached (admin decide) or cached decisions. */
static int
measure(int cached, double *lat)
{
	struct xtcmk_decision *d;
	struct xtcmk *h = NULL;
	char msg[512];
	double t0;
	json_t *r;
	long i;
	int st;

	if (cached && xtcmk_open(sock, 5000, &h) != XTCMK_OK)
		return -1;
	for (i = 0; i < ncalls; i++) {
		t0 = now_us();
		if (cached) {
			d = NULL;
			st = xtcmk_decide(h, customer, &d);
			xtcmk_decision_free(d);
		} else {
			r = h_admin(sock, &conn, CALL_MS, json_pack("{s:s, "
			    "s:s}", "cmd", "decide", "id", customer), &st,
			    msg, sizeof(msg));
			json_decref(r);
		}
		lat[i] = now_us() - t0;
		if (st != 0) {
			fprintf(stderr, "bench_policy: decide %s: status %d "
			    "%s\n", customer, st, cached ? "" : msg);
			xtcmk_close(h);
			return -1;
		}
	}
	xtcmk_close(h);
	return 0;
}

/* Onboard `nadds` new customers one at a time: adds per second. */
static double
onboard_rate(void)
{
	char id[64], tenant[48], uri[128], msg[512];
	double t0;
	json_t *r;
	long i, n;
	int st;

	t0 = now_us();
	for (i = 0; i < nadds; i++) {
		n = ++add_seq;
		snprintf(id, sizeof(id), "%s-%ld", prefix, n);
		snprintf(tenant, sizeof(tenant),
		    "00000000-0000-4000-9000-%012ld", n);
		snprintf(uri, sizeof(uri),
		    "https://kv-%ld.vault.local/keys/cmk", n);
		r = h_admin(sock, &conn, CALL_MS, json_pack("{s:s, s:{s:s, "
		    "s:s, s:s, s:s, s:[s], s:{s:s}}}", "cmd", "customer.add",
		    "customer", "id", id, "tenant", tenant, "key_uri", uri,
		    "vault_auth", "rbac", "kinds", "host", "labels", "region",
		    "eu"), &st, msg, sizeof(msg));
		json_decref(r);
		if (st != 0) {
			fprintf(stderr, "bench_policy: add %s: %s\n", id, msg);
			return -1;
		}
	}
	return (double)nadds / ((now_us() - t0) / 1e6);
}

/* CPU nanoseconds every thread of `pid` has run (schedstat); -1 if gone. */
static long long
proc_cpu_ns(long pid)
{
	char path[320];
	struct dirent *d;
	long long sum = 0, ns;
	DIR *dp;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	if ((dp = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%s/schedstat",
		    pid, d->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fscanf(f, "%lld", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(dp);
	return sum;
}

/*
 * CPU of the agent and of its policy workers (their pids from stats);
 * *ret_spawned: workers started so far (a respawn in between would
 * lose a worker's CPU: the caller checks it did not change).
 */
static long long
agent_cpu_ns(long long *ret_spawned)
{
	json_t *st, *pw, *pid;
	long long sum, ns;
	size_t i;
	int status;

	st = h_admin(sock, &conn, CALL_MS, json_pack("{s:s}", "cmd", "stats"),
	    &status, NULL, 0);
	if (st == NULL)
		return -1;
	pw = json_object_get(st, "policy_workers");
	*ret_spawned = json_integer_value(json_object_get(pw, "spawned"));
	sum = proc_cpu_ns(agent_pid);
	json_array_foreach(json_object_get(pw, "pids"), i, pid)
		if ((ns = proc_cpu_ns((long)json_integer_value(pid))) > 0)
			sum += ns;
	json_decref(st);
	return sum;
}

/*
 * Onboard `nimports` new customers through customer.import in batches
 * of `batch`: customers per second, and CPU microseconds per customer
 * in *ret_cpu_us.
 */
static double
import_rate(double *ret_cpu_us)
{
	char id[64], tenant[48], uri[128], msg[512];
	long long cpu0, cpu1, sp0, sp1;
	json_t *list, *r;
	double t0, dt;
	long i, j, n;
	int st;

	if ((cpu0 = agent_cpu_ns(&sp0)) < 0)
		return -1;
	t0 = now_us();
	for (i = 0; i < nimports; i += batch) {
		list = json_array();
		for (j = i; j < nimports && j < i + batch; j++) {
			n = ++add_seq;
			snprintf(id, sizeof(id), "%s-%ld", prefix, n);
			snprintf(tenant, sizeof(tenant),
			    "00000000-0000-4000-9000-%012ld", n);
			snprintf(uri, sizeof(uri),
			    "https://kv-%ld.vault.local/keys/cmk", n);
			json_array_append_new(list, json_pack("{s:s, s:s, "
			    "s:s, s:s, s:[s], s:{s:s}}", "id", id, "tenant",
			    tenant, "key_uri", uri, "vault_auth", "rbac",
			    "kinds", "host", "labels", "region", "eu"));
		}
		r = h_admin(sock, &conn, CALL_MS, json_pack("{s:s, s:o}",
		    "cmd", "customer.import", "customers", list), &st, msg,
		    sizeof(msg));
		if (r == NULL || json_integer_value(json_object_get(r,
		    "assigned")) != j - i) {
			fprintf(stderr, "bench_policy: import: %s\n", r == NULL ?
			    msg : "not every customer was assigned");
			json_decref(r);
			return -1;
		}
		json_decref(r);
	}
	dt = now_us() - t0;
	if ((cpu1 = agent_cpu_ns(&sp1)) < 0 || sp1 != sp0) {
		fprintf(stderr, "bench_policy: a policy worker was replaced "
		    "during the imports\n");
		return -1;
	}
	*ret_cpu_us = (double)(cpu1 - cpu0) / 1e3 / (double)nimports;
	return (double)nimports / (dt / 1e6);
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_policy -s socket -c customer "
	    "[-n calls] [-a adds] [-p prefix] [-r reps] [-i imports "
	    "-b batch -P agent-pid]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	double *lat, u50[REPS_MAX], u99[REPS_MAX], c50[REPS_MAX],
	    c99[REPS_MAX], add[REPS_MAX], imp[REPS_MAX], cpu[REPS_MAX];
	int ch, i;

	while ((ch = getopt(argc, argv, "s:c:n:a:p:r:i:b:P:")) != -1) {
		switch (ch) {
		case 's': sock = optarg; break;
		case 'c': customer = optarg; break;
		case 'n': ncalls = atol(optarg); break;
		case 'a': nadds = atol(optarg); break;
		case 'p': prefix = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'i': nimports = atol(optarg); break;
		case 'b': batch = atol(optarg); break;
		case 'P': agent_pid = atol(optarg); break;
		default: usage();
		}
	}
	if (sock == NULL || customer == NULL || ncalls < 1 ||
	    ncalls > CALLS_MAX || nadds < 1 || nadds > CALLS_MAX ||
	    reps < 1 || reps > REPS_MAX || nimports < 0 ||
	    nimports > CALLS_MAX || batch < 1 || batch > BATCH_MAX ||
	    (nimports > 0 && agent_pid <= 0))
		usage();
	if ((lat = calloc((size_t)ncalls, sizeof(*lat))) == NULL)
		return 1;
	for (i = 0; i < reps; i++) {
		if (measure(0, lat) == -1)
			return 1;
		u50[i] = pct(lat, ncalls, 0.50);
		u99[i] = pct(lat, ncalls, 0.99);
		if (measure(1, lat) == -1)
			return 1;
		c50[i] = pct(lat, ncalls, 0.50);
		c99[i] = pct(lat, ncalls, 0.99);
		if ((add[i] = onboard_rate()) < 0)
			return 1;
		imp[i] = cpu[i] = 0;
		if (nimports > 0 && (imp[i] = import_rate(&cpu[i])) < 0)
			return 1;
	}
	printf("{\"uncached_p50_us\": %.1f, \"uncached_p99_us\": %.1f, "
	    "\"cached_p50_us\": %.1f, \"cached_p99_us\": %.1f, "
	    "\"adds_per_s\": %.1f, \"imports_per_s\": %.1f, "
	    "\"cpu_us_per_onboard\": %.1f}\n", pct(u50, reps, 0.5),
	    pct(u99, reps, 0.5), pct(c50, reps, 0.5), pct(c99, reps, 0.5),
	    pct(add, reps, 0.5), pct(imp, reps, 0.5), pct(cpu, reps, 0.5));
	free(lat);
	xc_close(&conn);
	return 0;
}
