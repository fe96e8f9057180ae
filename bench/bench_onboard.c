/*
 * bench_onboard.c - what onboarding one customer costs the agent as the
 * registry grows, and what a customer costs the registry on disk.
 *
 *	bench_onboard -s SOCKET -p AGENT_PID -r REGISTRY [-n N1,N2,...]
 *	    [-m SAMPLE]
 *
 * Registers 150 workloads in 6 regions, then for each size N (default
 * 1000,10000): grows the registry to N - SAMPLE customers with
 * customer.import (batches of 200), onboards SAMPLE more one at a time
 * with customer.add and reports the agent's CPU time per customer (from
 * /proc/PID/stat: user + system, so it includes the policies, SQLite
 * and the fsync's CPU) and the wall time per add; at the end the
 * registry's bytes per customer (the file plus its WAL after a
 * checkpoint by the agent's next open, i.e. an upper bound).
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "harness_admin.h"

#define NREGION		6
#define WL_PER_REGION	25
#define IMPORT_CHUNK	200
#define CALL_MS		60000

static const char *const regions[NREGION] = { "eu", "us", "asia", "au",
    "br", "ca" };
static const char *sock;
static struct xc_conn conn = { .fd = -1 };

static json_t *
req(json_t *r)
{
	char msg[1024];
	int st = 0;
	json_t *rep = h_admin(sock, &conn, CALL_MS, r, &st, msg, sizeof(msg));

	if (rep == NULL) {
		fprintf(stderr, "bench_onboard: request failed (%d): %s\n", st,
		    msg);
		exit(1);
	}
	return rep;
}

static json_t *
customer(int i)
{
	char id[32], tenant[40], uri[96];

	snprintf(id, sizeof(id), "c%07d", i);
	snprintf(tenant, sizeof(tenant), "00000000-0000-4000-8000-%012d", i);
	snprintf(uri, sizeof(uri), "https://kv%07d.vault.local/keys/cmk", i);
	return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:{s:s}}", "id", id,
	    "tenant", tenant, "key_uri", uri, "vault_auth", "rbac", "kinds",
	    "host", "labels", "region", regions[i % NREGION]);
}

static double
cpu_ms(pid_t pid)
{
	char path[64], buf[4096], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL || fgets(buf, sizeof(buf), f) ==
	    NULL) {
		fprintf(stderr, "bench_onboard: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	/* After "(comm)": fields 3.. ; utime is 14, stime 15. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2) {
		fprintf(stderr, "bench_onboard: cannot parse %s\n", path);
		exit(1);
	}
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static double
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int have;	/* customers onboarded so far */

static void
grow_to(int n)
{
	json_t *batch, *r;

	while (have < n) {
		batch = json_array();
		while (have < n && json_array_size(batch) < IMPORT_CHUNK)
			json_array_append_new(batch, customer(have++));
		r = req(json_pack("{s:s, s:o}", "cmd", "customer.import",
		    "customers", batch));
		if (json_integer_value(json_object_get(r, "refused")) != 0) {
			fprintf(stderr, "bench_onboard: import refused some: "
			    "%s\n", json_dumps(json_array_get(json_object_get(r,
			    "results"), 0), 0));
			exit(1);
		}
		json_decref(r);
	}
}

int
main(int argc, char **argv)
{
	const char *sizes = "1000,10000", *regpath = NULL;
	char wl[64], cid[40], pid_s[40], *list, *tok, *save = NULL;
	double c0, w0, cpu, wall, first = 0;
	struct stat sb;
	off_t bytes = 0;
	pid_t pid = 0;
	int i, j, n, m = 200, opt;

	while ((opt = getopt(argc, argv, "s:p:r:n:m:")) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'p': pid = (pid_t)atoi(optarg); break;
		case 'r': regpath = optarg; break;
		case 'n': sizes = optarg; break;
		case 'm': m = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_onboard -s SOCKET -p PID "
			    "-r REGISTRY [-n N1,N2,...] [-m SAMPLE]\n");
			return 2;
		}
	}
	if (sock == NULL || pid <= 0 || regpath == NULL || m < 1) {
		fprintf(stderr, "usage: bench_onboard -s SOCKET -p PID "
		    "-r REGISTRY [-n N1,N2,...] [-m SAMPLE]\n");
		return 2;
	}
	for (i = 0; i < NREGION; i++)
		for (j = 0; j < WL_PER_REGION; j++) {
			snprintf(wl, sizeof(wl), "wl-%s-%02d", regions[i], j);
			snprintf(cid, sizeof(cid), "10000000-0000-4000-8000-"
			    "%012d", i * 100 + j);
			snprintf(pid_s, sizeof(pid_s), "20000000-0000-4000-"
			    "8000-%012d", i * 100 + j);
			json_decref(req(json_pack("{s:s, s:{s:s, s:s, s:s, "
			    "s:{s:s}}}", "cmd", "workload.add", "workload",
			    "name", wl, "client_id", cid, "principal_id",
			    pid_s, "labels", "region", regions[i])));
		}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%-10s %14s %14s\n", "customers", "cpu_ms/add", "wall_ms/add");
	list = strdup(sizes);
	for (tok = strtok_r(list, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		n = atoi(tok);
		grow_to(n - m > have ? n - m : have);
		c0 = cpu_ms(pid);
		w0 = now_ms();
		for (i = 0; i < m; i++)
			json_decref(req(json_pack("{s:s, s:o}", "cmd",
			    "customer.add", "customer", customer(have++))));
		cpu = (cpu_ms(pid) - c0) / m;
		wall = (now_ms() - w0) / m;
		printf("%-10d %14.3f %14.3f\n", have, cpu, wall);
		if (first == 0)
			first = cpu;
		else
			printf("ratio to the first size: %.2f\n", cpu / first);
	}
	free(list);
	if (stat(regpath, &sb) == 0)
		bytes += sb.st_size;
	{
		char walp[4096];

		snprintf(walp, sizeof(walp), "%s-wal", regpath);
		if (stat(walp, &sb) == 0)
			bytes += sb.st_size;
	}
	printf("registry: %lld bytes for %d customers: %.0f bytes/customer "
	    "(file + WAL)\n", (long long)bytes, have, (double)bytes / have);
	xc_close(&conn);
	return 0;
}
