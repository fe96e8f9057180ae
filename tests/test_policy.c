/*
 * test_policy.c - the policy engine: the default set, its fixtures, the
 * sandbox against hostile policies (tests/policy/), and the verdict
 * checks.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"
#include "scope.h"
#include "t.h"

static char srcdir[1024];
static char luadir[1200];
static char tmpdir[512];

static int
copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in, *out;
	size_t n;

	if ((in = fopen(from, "rb")) == NULL)
		return -1;
	if ((out = fopen(to, "wb")) == NULL) {
		fclose(in);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	return fclose(out) == 0 ? 0 : -1;
}

static int
write_file(const char *path, const char *text)
{
	FILE *f;

	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

/*
 * Make tmpdir/<name>/ with partition.lua from tests/policy/<file> (or the
 * default) and the default role and versioning.  Returns the dir.
 */
static const char *
make_set(const char *name, const char *partition)
{
	static char dir[1024];
	char from[2048], to[2048];
	const char *files[] = { "partition", "role", "versioning" };
	int i;

	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
	mkdir(dir, 0700);
	for (i = 0; i < 3; i++) {
		if (i == 0 && partition != NULL)
			snprintf(from, sizeof(from), "%s/tests/policy/%s",
			    srcdir, partition);
		else
			snprintf(from, sizeof(from),
			    "%s/policies/default/%s.lua", srcdir, files[i]);
		snprintf(to, sizeof(to), "%s/%s.lua", dir, files[i]);
		if (copy_file(from, to) == -1)
			fprintf(stderr, "cannot copy %s\n", from);
	}
	return dir;
}

static void
rm_tree(const char *path)
{
	char sub[2048];
	struct dirent *d;
	struct stat st;
	DIR *dp;

	if (lstat(path, &st) == -1)
		return;
	if (S_ISDIR(st.st_mode) && (dp = opendir(path)) != NULL) {
		while ((d = readdir(dp)) != NULL) {
			if (strcmp(d->d_name, ".") == 0 ||
			    strcmp(d->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, d->d_name);
			rm_tree(sub);
		}
		closedir(dp);
		rmdir(path);
	} else
		unlink(path);
}

static json_t *
J(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (j == NULL)
		fprintf(stderr, "bad test JSON: %s: %s\n", err.text, text);
	return j;
}

static const char *WORKLOADS =
    "[{\"name\":\"wl-eu-1\",\"labels\":{\"region\":\"eu\"}},"
    "{\"name\":\"wl-eu-2\",\"labels\":{\"region\":\"eu\"}},"
    "{\"name\":\"wl-us-1\",\"labels\":{\"region\":\"us\"}}]";

static json_t *
partition_input(const char *customer, const char *apps)
{
	json_t *in = json_object();

	json_object_set_new(in, "customer", J(customer));
	json_object_set_new(in, "apps", J(apps));
	json_object_set_new(in, "workloads", J(WORKLOADS));
	json_object_set_new(in, "limit", json_integer(20));
	return in;
}

static void
test_default_set(void)
{
	struct policy_set *s = NULL;
	struct policy_vm *vm = NULL;
	json_t *in, *out = NULL;
	char dir[1200];
	struct xerr e;
	int r;

	snprintf(dir, sizeof(dir), "%s/policies/default", srcdir);
	r = policy_set_load(dir, luadir, NULL, NULL, &s, &e);
	ASSERT_EQ(r, 0);
	if (r < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return;
	}
	ASSERT_EQ(strlen(policy_set_hash(s)), 64);
	ASSERT_STR(policy_set_name(s, POLICY_PARTITION), "default-partition");
	ASSERT_STR(policy_set_name(s, POLICY_ROLE), "default-role");
	ASSERT_STR(policy_set_dir(s), dir);
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);

	/* First customer of a region opens xtcmk-eu-1 with both eu wls. */
	in = partition_input("{\"id\":\"c1\",\"labels\":{\"region\":\"eu\"}}",
	    "[]");
	ASSERT_EQ(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(out, "app")),
	    "xtcmk-eu-1");
	ASSERT_EQ(json_array_size(json_object_get(out, "federate")), 2);
	ASSERT_EQ(policy_verdict_check(s, POLICY_PARTITION, in, out, &e), 0);
	json_decref(out);
	out = NULL;
	json_decref(in);

	/* A region without workloads is a clear error. */
	in = partition_input("{\"id\":\"c1\",\"labels\":{\"region\":\"ap\"}}",
	    "[]");
	ASSERT_TRUE(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e) < 0);
	ASSERT_CONTAINS(e.msg, "no workload identity is labelled region=ap");
	ASSERT_CONTAINS(e.msg, "default-partition");
	json_decref(in);

	/* Role: netapp on RBAC gets Crypto User plus its id. */
	in = J("{\"customer\":{\"id\":\"c\",\"vault_auth\":\"rbac\","
	    "\"kinds\":[\"netapp\"]},\"app\":{\"name\":\"a\"}}");
	ASSERT_EQ(policy_vm_call(vm, POLICY_ROLE, in, &out, &e), 0);
	ASSERT_EQ(policy_verdict_check(s, POLICY_ROLE, in, out, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(out, "role_id")),
	    "12338af0-0e69-4776-bea7-57ae8d297424");
	json_decref(out);
	out = NULL;
	json_decref(in);

	/* Versioning: pinned on request, defaults filled. */
	in = J("{\"customer\":{\"id\":\"c\",\"kinds\":[\"host\"],"
	    "\"labels\":{\"key_mode\":\"pinned\"}},\"key\":{\"name\":\"k\","
	    "\"service\":\"vault\","
	    "\"version\":\"0123456789abcdef0123456789abcdef\"}}");
	ASSERT_EQ(policy_vm_call(vm, POLICY_VERSIONING, in, &out, &e), 0);
	ASSERT_EQ(policy_verdict_check(s, POLICY_VERSIONING, in, out, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(out, "mode")), "pinned");
	ASSERT_EQ(json_integer_value(json_object_get(out, "grace")), 86400);
	json_decref(out);
	out = NULL;
	json_decref(in);

	policy_vm_free(vm);
	policy_set_unref(s);
}

static void
test_fixtures(void)
{
	char dir[1200], path[2048], *files[64];
	struct dirent *d;
	struct xerr e;
	const char *sets[] = { "default", "examples/by-tier",
	    "examples/hash-spread" };
	FILE *out;
	DIR *dp;
	int n, i, r;
	size_t k;

	for (k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		snprintf(dir, sizeof(dir), "%s/policies/%s", srcdir, sets[k]);
		snprintf(path, sizeof(path), "%s/tests", dir);
		n = 0;
		if ((dp = opendir(path)) != NULL) {
			while ((d = readdir(dp)) != NULL && n < 64) {
				if (strstr(d->d_name, ".json") == NULL)
					continue;
				if (asprintf(&files[n], "%s/%s", path,
				    d->d_name) != -1)
					n++;
			}
			closedir(dp);
		}
		ASSERT_TRUE(n >= (k == 0 ? 3 : 1));
		r = policy_run_fixtures(dir, luadir, NULL, NULL, NULL, files, n, 0,
		    stdout, &e);
		ASSERT_EQ(r, 0);
		if (r < 0)
			fprintf(stderr, "%s: %s\n", sets[k], e.msg);
		for (i = 0; i < n; i++)
			free(files[i]);
	}

	/* A failing fixture is counted and reported; JSON report works. */
	snprintf(dir, sizeof(dir), "%s/policies/default", srcdir);
	snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
	write_file(path, "{\"fixtures\":["
	    "{\"decision\":\"role\",\"input\":{\"customer\":{\"vault_auth\":"
	    "\"rbac\"}},\"expect\":{\"role\":\"Key Vault Reader\"}},"
	    "{\"decision\":\"role\",\"input\":{\"customer\":{\"vault_auth\":"
	    "\"rbac\"}},\"expect\":{\"scope\":\"key\"}},"
	    "{\"decision\":\"role\",\"input\":{\"customer\":{\"vault_auth\":"
	    "\"x\"}},\"expect_error\":\"expected rbac\"}]}");
	files[0] = path;
	out = tmpfile();
	r = policy_run_fixtures(dir, luadir, NULL, NULL, NULL, files, 1, 1, out, &e);
	ASSERT_EQ(r, 1);
	if (out != NULL) {
		json_t *rep;
		json_error_t jerr;

		rewind(out);
		rep = json_loadf(out, 0, &jerr);
		ASSERT_TRUE(rep != NULL);
		ASSERT_EQ(json_integer_value(json_object_get(rep, "passed")), 2);
		ASSERT_EQ(json_integer_value(json_object_get(rep, "failed")), 1);
		ASSERT_CONTAINS(json_string_value(json_object_get(
		    json_array_get(json_object_get(rep, "results"), 0),
		    "message")), "Key Vault Reader");
		json_decref(rep);
		fclose(out);
	}
	/* A set that does not load: <0. */
	snprintf(dir, sizeof(dir), "%s/nonexistent", tmpdir);
	ASSERT_TRUE(policy_run_fixtures(dir, luadir, NULL, NULL, NULL, files, 1, 0,
	    stdout, &e) < 0);
}

static void expect_refused(struct policy_vm *, const char *, const char *);

static double
ms_since(const struct timespec *t0, clockid_t clk)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Run the hostile policy's "spin" for n iterations; 0 or the error. */
static int
spin(struct policy_vm *vm, long long n, double *ret_wall, double *ret_cpu,
    struct xerr *e)
{
	struct timespec w0, c0;
	json_t *in = json_pack("{s:s, s:I}", "attack", "spin", "n",
	    (json_int_t)n), *out = NULL;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &w0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	r = policy_vm_call(vm, POLICY_PARTITION, in, &out, e);
	*ret_wall = ms_since(&w0, CLOCK_MONOTONIC);
	*ret_cpu = ms_since(&c0, CLOCK_THREAD_CPUTIME_ID);
	json_decref(in);
	json_decref(out);
	return r;
}

/*
 * The time limit counts the policy's CPU time, not the wall clock: pin
 * this thread and three spinning children to one CPU, so the policy
 * gets at most a quarter of it; work worth 30-40% of the budget then takes
 * longer than the budget in wall-clock time (and, unless the host's own
 * load leaves it under 6%, less than the 5x backstop), and must still
 * be accepted.  A busy loop is still stopped.
 */
static void
test_cpu_budget_under_load(void)
{
	struct policy_limits lim = { POLICY_INSTR_MAX, 0, 100 };
	struct policy_set *s = NULL;
	struct policy_vm *vm = NULL;
	cpu_set_t one, saved;
	double wall = 0, cpu = 0, best = 0;
	long long n = 200000;
	struct xerr e;
	pid_t kid, kid2, kid3;
	int i, ok = 0;

	ASSERT_EQ(policy_set_load(make_set("hostile", "hostile.lua"), luadir,
	    NULL, &lim, &s, &e), 0);
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);
	/* Calibrate unloaded: n iterations worth ~60 ms of CPU. */
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(spin(vm, n, &wall, &cpu, &e), 0);
		if (cpu >= 20)
			break;
		n *= 2;
	}
	n = (long long)(n * (30.0 / (cpu > 1 ? cpu : 1)));
	ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
	CPU_ZERO(&one);
	for (i = 0; i < CPU_SETSIZE && !CPU_ISSET(i, &saved); i++)
		;
	CPU_SET(i, &one);
	ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
	if ((kid = fork()) == 0) {
		for (;;)
			;
	}
	ASSERT_TRUE(kid > 0);
	if ((kid2 = fork()) == 0) {
		for (;;)
			;
	}
	ASSERT_TRUE(kid2 > 0);
	if ((kid3 = fork()) == 0) {
		for (;;)
			;
	}
	ASSERT_TRUE(kid3 > 0);
	/* The children inherited the pinning; give them time to run. */
	usleep(20000);
	/* The host is shared: a try slowed past the backstop too (over 5x)
	 * is retried; one accepted try slower than the limit is the proof. */
	for (i = 0; i < 8 && !ok; i++) {
		xerr_clear(&e);
		if (spin(vm, n, &wall, &cpu, &e) == 0 && wall > lim.time_ms)
			ok = 1;
		if (wall > best)
			best = wall;
		/* The calibration can run slower per iteration than the
		 * tries (a cold cache, other tests on the host): bring a
		 * try that used under 25% of the budget back to 40%. */
		if (!ok && cpu > 1 && cpu < lim.time_ms / 4.0)
			n = (long long)(n * (lim.time_ms * 0.4 / cpu));
	}
	/* The path was taken: wall clock over the limit, CPU under it. */
	if (!ok)
		T_FAIL("load did not slow the policy past %u ms (best %.1f "
		    "ms wall, %.1f ms CPU): %s", lim.time_ms, best, cpu, e.msg);
	ASSERT_TRUE(cpu < lim.time_ms);
	/* A busy loop under the same load is still stopped (by CPU time
	 * unless the host is so loaded that the backstop comes first). */
	expect_refused(vm, "loop", "limit of ");
	kill(kid2, SIGKILL);
	waitpid(kid2, NULL, 0);
	kill(kid3, SIGKILL);
	waitpid(kid3, NULL, 0);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
	policy_vm_free(vm);
	policy_set_unref(s);
}

/* Call the hostile policy with input.attack = `attack`. */
static int
attack(struct policy_vm *vm, const char *what, json_t **ret, struct xerr *e)
{
	json_t *in = json_pack("{s:s}", "attack", what);
	int r;

	*ret = NULL;
	r = policy_vm_call(vm, POLICY_PARTITION, in, ret, e);
	json_decref(in);
	return r;
}

static void
expect_refused(struct policy_vm *vm, const char *what, const char *needle)
{
	json_t *out = NULL;
	struct xerr e;

	xerr_clear(&e);
	ASSERT_TRUE(attack(vm, what, &out, &e) < 0);
	ASSERT_EQ(e.code, XTCMK_E_POLICY);
	ASSERT_CONTAINS(e.msg, needle);
	ASSERT_CONTAINS(e.msg, "policy 'hostile' (partition.lua)");
	if (getenv("T_VERBOSE") != NULL || out != NULL ||
	    strstr(e.msg, needle) == NULL)
		fprintf(stderr, "  attack %s: %s\n", what, e.msg);
	json_decref(out);
	/* The same vm serves a good call right after. */
	ASSERT_EQ(attack(vm, "none", &out, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(out, "app")), "good");
	json_decref(out);
}

static void
test_sandbox(void)
{
	struct policy_limits lim = { 2000000, 8u << 20, 5000 };
	struct policy_set *s = NULL;
	struct policy_vm *vm = NULL;
	json_t *out = NULL, *probe, *v;
	const char *key;
	struct xerr e;
	int r;

	r = policy_set_load(make_set("hostile", "hostile.lua"), luadir,
	    NULL, &lim, &s, &e);
	ASSERT_EQ(r, 0);
	if (r < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return;
	}
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);

	expect_refused(vm, "loop", "partition.lua:53: instruction budget of 2000000 exceeded");
	expect_refused(vm, "pcall_loop", "instruction budget");
	expect_refused(vm, "pcall_once", "instruction budget");
	expect_refused(vm, "membomb", "memory");
	expect_refused(vm, "pcall_membomb", "memory");
	expect_refused(vm, "rep", "memory");
	expect_refused(vm, "pcall_rep", "memory");
	expect_refused(vm, "concat", "memory");
	expect_refused(vm, "recurse", "memory");
	expect_refused(vm, "ret_string", "decide returned string");
	expect_refused(vm, "ret_nil", "decide returned nothing");
	expect_refused(vm, "ret_function", "result.federate[3] is a function");
	expect_refused(vm, "ret_mixed", "result.federate mixes");
	expect_refused(vm, "ret_holes", "result.federate is not a sequence");
	expect_refused(vm, "ret_nan", "result.n is not a finite number");
	expect_refused(vm, "ret_cycle", "nested deeper");
	expect_refused(vm, "ret_longstring", "result.app is a string of 5000");
	expect_refused(vm, "pattern", "too costly on a subject of 100000 bytes");
	expect_refused(vm, "pattern_method", "pattern of 5 bytes with 2 backtracking items");
	{
		json_t *out = NULL;
		struct xerr pe;

		ASSERT_EQ(attack(vm, "pattern_ok", &out, &pe), 0);
		ASSERT_STR(json_string_value(json_object_get(out, "app")),
		    "regioneua_b_c");
		ASSERT_EQ(json_integer_value(json_object_get(out, "i")), 100001);
		ASSERT_EQ(json_integer_value(json_object_get(out, "n")), 3);
		json_decref(out);
	}
	expect_refused(vm, "raise", "policy refuses on purpose");
	expect_refused(vm, "raise", "stack traceback");
	expect_refused(vm, "raise", "partition.lua:");
	expect_refused(vm, "raise_table", "error object is a table");

	/* Nothing dangerous is reachable. */
	ASSERT_EQ(attack(vm, "probe", &out, &e), 0);
	probe = json_object_get(out, "probe");
	ASSERT_TRUE(json_object_size(probe) > 20);
	json_object_foreach(probe, key, v) {
		if (strcmp(key, "require_ok") == 0)
			ASSERT_TRUE(json_is_true(v));
		else if (!json_is_false(v)) {
			T_FAIL("sandbox leaks %s", key);
		} else
			ASSERT_TRUE(json_is_false(v));
	}
	json_decref(out);

	/* Input is copied: echo comes back equal, integers stay integers. */
	{
		json_t *in = J("{\"attack\":\"none\",\"n\":7,\"f\":1.5,"
		    "\"a\":[1,null,\"x\"],\"o\":{\"z\":null,\"t\":true}}");
		ASSERT_EQ(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e), 0);
		v = json_object_get(out, "echo");
		ASSERT_TRUE(json_is_integer(json_object_get(v, "n")));
		ASSERT_TRUE(json_is_real(json_object_get(v, "f")));
		ASSERT_EQ(json_array_size(json_object_get(v, "a")), 2);
		ASSERT_TRUE(json_object_get(json_object_get(v, "o"), "z") ==
		    NULL);
		/* empty params {} come back as an empty array */
		ASSERT_TRUE(json_is_array(json_object_get(out, "params")));
		json_decref(out);
		json_decref(in);
	}

	/* Every call starts pristine: globals never carry over. */
	ASSERT_EQ(attack(vm, "globals", &out, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(out, "n")), 1);
	json_decref(out);
	ASSERT_EQ(attack(vm, "globals", &out, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(out, "n")), 1);
	json_decref(out);
	ASSERT_TRUE(attack(vm, "loop", &out, &e) < 0);
	ASSERT_EQ(attack(vm, "globals", &out, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(out, "n")), 1);
	json_decref(out);
	ASSERT_TRUE(policy_vm_memory(vm) < (8u << 20));

	policy_vm_free(vm);
	policy_set_unref(s);

	/* Time limit: a tiny CPU budget with a large instruction budget.
	 * On a host so loaded that this thread gets under a fifth of a
	 * CPU the wall-clock backstop trips first: try again. */
	lim.instructions = POLICY_INSTR_MAX;
	lim.time_ms = 50;
	ASSERT_EQ(policy_set_load(make_set("hostile", "hostile.lua"), luadir,
	    NULL, &lim, &s, &e), 0);
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);
	{
		json_t *o = NULL;
		int i;

		for (i = 0; i < 10; i++) {
			xerr_clear(&e);
			if (attack(vm, "loop", &o, &e) < 0 && strstr(e.msg,
			    "wall-clock") == NULL)
				break;
		}
		ASSERT_CONTAINS(e.msg, "CPU time limit of 50 ms exceeded");
	}
	policy_vm_free(vm);
	policy_set_unref(s);
	test_cpu_budget_under_load();

	/* Limits over the maxima are refused. */
	lim.time_ms = POLICY_TIME_MAX_MS + 1;
	ASSERT_TRUE(policy_set_load(make_set("hostile", "hostile.lua"),
	    luadir, NULL, &lim, &s, &e) < 0);
}

static void
test_refused_sets(void)
{
	struct policy_set *s = NULL;
	char path[2048];
	const char *dir;
	struct xerr e;

	ASSERT_TRUE(policy_set_load(make_set("stf", "selftest_fail.lua"),
	    luadir, NULL, NULL, &s, &e) < 0);
	ASSERT_CONTAINS(e.msg, "partition.lua:8: selftest failed: expected "
	    "app b");
	ASSERT_CONTAINS(e.msg, "selftest-fails");

	ASSERT_TRUE(policy_set_load(make_set("str", "selftest_raise.lua"),
	    luadir, NULL, NULL, &s, &e) < 0);
	ASSERT_CONTAINS(e.msg, "partition.lua:9: decide should return b");

	ASSERT_TRUE(policy_set_load(make_set("syn", "syntax_error.lua"),
	    luadir, NULL, NULL, &s, &e) < 0);
	ASSERT_CONTAINS(e.msg, "partition.lua:5:");
	ASSERT_CONTAINS(e.msg, "'}' expected");

	ASSERT_TRUE(policy_set_load(make_set("nod", "no_decide.lua"),
	    luadir, NULL, NULL, &s, &e) < 0);
	ASSERT_CONTAINS(e.msg, "no function `decide`");

	/* Binary chunks are refused. */
	dir = make_set("bin", NULL);
	snprintf(path, sizeof(path), "%s/role.lua", dir);
	write_file(path, "\x1bLua garbage");
	ASSERT_TRUE(policy_set_load(dir, luadir, NULL, NULL, &s, &e) < 0);
	ASSERT_CONTAINS(e.msg, "binary chunk");
	ASSERT_CONTAINS(e.msg, "(role.lua)");

	/* A missing file. */
	unlink(path);
	ASSERT_TRUE(policy_set_load(dir, luadir, NULL, NULL, &s, &e) < 0);
	ASSERT_CONTAINS(e.msg, "role.lua");

	/* Oversized file. */
	{
		char *big = malloc(POLICY_SOURCE_MAX + 10);

		memset(big, ' ', POLICY_SOURCE_MAX + 9);
		big[POLICY_SOURCE_MAX + 9] = '\0';
		write_file(path, big);
		free(big);
		ASSERT_TRUE(policy_set_load(dir, luadir, NULL, NULL, &s,
		    &e) < 0);
		ASSERT_EQ(e.code, XTCMK_E_TOOBIG);
	}

	/* The hash changes with the contents. */
	{
		struct policy_set *a = NULL, *b = NULL;
		char h[65];

		dir = make_set("hash", NULL);
		ASSERT_EQ(policy_set_load(dir, luadir, NULL, NULL, &a, &e), 0);
		snprintf(path, sizeof(path), "%s/role.lua", dir);
		{
			FILE *f = fopen(path, "a");
			fputs("\n-- edited\n", f);
			fclose(f);
		}
		ASSERT_EQ(policy_set_load(dir, luadir, NULL, NULL, &b, &e), 0);
		if (a != NULL && b != NULL) {
			snprintf(h, sizeof(h), "%s", policy_set_hash(a));
			ASSERT_TRUE(strcmp(h, policy_set_hash(b)) != 0);
		}
		policy_set_unref(policy_set_ref(a));
		policy_set_unref(a);
		policy_set_unref(b);
	}
}

/* require: per-state cache, nested modules, loops, missing modules. */
static void
test_require(void)
{
	struct policy_set *s = NULL;
	struct policy_vm *vm = NULL;
	char lib[1024], path[2048];
	const char *dir;
	json_t *in, *out = NULL, *params;
	struct xerr e;
	int r;

	snprintf(lib, sizeof(lib), "%s/lib", tmpdir);
	mkdir(lib, 0700);
	snprintf(path, sizeof(path), "%s/m", lib);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/m/count.lua", lib);
	write_file(path, "local M = { n = 0 }\n"
	    "function M.bump() M.n = M.n + 1; return M.n end\nreturn M\n");
	snprintf(path, sizeof(path), "%s/loop.lua", lib);
	write_file(path, "return require(\"loop\")\n");
	snprintf(path, sizeof(path), "%s/syntax.lua", lib);
	write_file(path, "return {\n");
	dir = make_set("req", NULL);
	snprintf(path, sizeof(path), "%s/partition.lua", dir);
	write_file(path,
	    "local P = { name = \"req\" }\n"
	    "function P.decide(input, params)\n"
	    "  if input.mod then return { r = require(input.mod) } end\n"
	    "  local a, b = require(\"m.count\"), require(\"m.count\")\n"
	    "  return { same = rawequal(a, b), n = a.bump(),\n"
	    "    p = params.x, io = io == nil }\n"
	    "end\n"
	    "return P\n");
	params = json_pack("{s:i}", "x", 42);
	r = policy_set_load(dir, lib, params, NULL, &s, &e);
	json_decref(params);
	ASSERT_EQ(r, 0);
	if (r < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return;
	}
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);
	in = json_object();
	ASSERT_EQ(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e), 0);
	ASSERT_TRUE(json_is_true(json_object_get(out, "same")));
	ASSERT_EQ(json_integer_value(json_object_get(out, "n")), 1);
	ASSERT_EQ(json_integer_value(json_object_get(out, "p")), 42);
	json_decref(out);
	/* Modules run afresh in every call: their counts never carry over. */
	ASSERT_EQ(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e), 0);
	ASSERT_EQ(json_integer_value(json_object_get(out, "n")), 1);
	json_decref(out);
	json_decref(in);

	in = json_pack("{s:s}", "mod", "loop");
	ASSERT_TRUE(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e) < 0);
	ASSERT_CONTAINS(e.msg, "requires itself");
	json_decref(in);
	in = json_pack("{s:s}", "mod", "syntax");
	ASSERT_TRUE(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e) < 0);
	ASSERT_CONTAINS(e.msg, "syntax.lua:2:");
	json_decref(in);
	in = json_pack("{s:s}", "mod", "m.nothere");
	ASSERT_TRUE(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e) < 0);
	ASSERT_CONTAINS(e.msg, "module 'm.nothere' not found");
	json_decref(in);
	in = json_pack("{s:s}", "mod", "m..count");
	ASSERT_TRUE(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e) < 0);
	ASSERT_CONTAINS(e.msg, "bad module name");
	json_decref(in);

	/* Input nested too deep is refused, not a crash. */
	{
		char deep[512];
		int i, n = 0;

		for (i = 0; i < 40; i++)
			n += snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
		n += snprintf(deep + n, sizeof(deep) - n, "1");
		for (i = 0; i < 40; i++)
			n += snprintf(deep + n, sizeof(deep) - n, "}");
		in = J(deep);
		ASSERT_TRUE(policy_vm_call(vm, POLICY_PARTITION, in, &out,
		    &e) < 0);
		ASSERT_CONTAINS(e.msg, "nested deeper");
		json_decref(in);
	}
	/* Not an object. */
	in = json_array();
	ASSERT_EQ(policy_vm_call(vm, POLICY_PARTITION, in, &out, &e),
	    -XTCMK_E_INVAL);
	json_decref(in);
	policy_vm_free(vm);
	policy_set_unref(s);
}

static void
verdict(struct policy_set *s, enum policy_kind k, const char *in,
    const char *out, const char *needle)
{
	json_t *i = J(in), *o = J(out);
	struct xerr e;
	int r;

	xerr_clear(&e);
	r = policy_verdict_check(s, k, i, o, &e);
	if (needle == NULL) {
		ASSERT_EQ(r, 0);
		if (r < 0)
			fprintf(stderr, "  unexpected refusal: %s\n", e.msg);
	} else {
		ASSERT_TRUE(r < 0);
		ASSERT_EQ(e.code, XTCMK_E_POLICY);
		ASSERT_CONTAINS(e.msg, needle);
	}
	json_decref(i);
	json_decref(o);
}

static void
test_verdicts(void)
{
	struct policy_set *s = NULL;
	char dir[1200], wls[4096], fics[4096], in[8192];
	size_t off, off2;
	json_t *o, *i;
	struct xerr e;
	int n;

	snprintf(dir, sizeof(dir), "%s/policies/default", srcdir);
	if (policy_set_load(dir, luadir, NULL, NULL, &s, &e) < 0) {
		T_FAIL("default set: %s", e.msg);
		return;
	}
	/* 21 workloads for a new app. */
	off = snprintf(wls, sizeof(wls), "[");
	off2 = snprintf(fics, sizeof(fics), "[");
	for (n = 1; n <= 21; n++) {
		off += snprintf(wls + off, sizeof(wls) - off,
		    "%s{\"name\":\"w%d\"}", n > 1 ? "," : "", n);
		off2 += snprintf(fics + off2, sizeof(fics) - off2, "%s\"w%d\"",
		    n > 1 ? "," : "", n);
	}
	snprintf(wls + off, sizeof(wls) - off, "]");
	snprintf(fics + off2, sizeof(fics) - off2, "]");
	snprintf(in, sizeof(in), "{\"customer\":{\"id\":\"c\"},\"apps\":[],"
	    "\"workloads\":%s,\"limit\":20}", wls);
	{
		char out[4200];

		snprintf(out, sizeof(out), "{\"app\":\"a1\",\"federate\":%s}",
		    fics);
		verdict(s, POLICY_PARTITION, in, out,
		    "policy 'default-partition' (partition.lua): 20 FICs per "
		    "application");
	}
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"w1\",\"w2\"]}", NULL);
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":[]}",
	    "federate");
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"w1\",\"w1\"]}", "listed twice");
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"nope\"]}", "'nope' is not registered");
	/* The first wrong place, in federate's order. */
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"w3\",\"w1\",\"w3\",\"nope\"]}", "'w3' is listed twice");
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"w1\",\"nope\",\"w1\"]}", "'nope' is not registered");
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"-bad name\",\"federate\":"
	    "[\"w1\"]}", "app name");
	/* Existing app with 19 FICs: 2 new ones are one too many. */
	snprintf(in, sizeof(in), "{\"customer\":{\"id\":\"c\"},\"apps\":"
	    "[{\"name\":\"a1\",\"fics\":[\"w1\",\"w2\",\"w3\",\"w4\",\"w5\","
	    "\"w6\",\"w7\",\"w8\",\"w9\",\"w10\",\"w11\",\"w12\",\"w13\","
	    "\"w14\",\"w15\",\"w16\",\"w17\",\"w18\",\"w19\"]}],"
	    "\"workloads\":%s}", wls);
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"w1\",\"w20\"]}", NULL);
	verdict(s, POLICY_PARTITION, in, "{\"app\":\"a1\",\"federate\":"
	    "[\"w20\",\"w21\"]}", "holds 19 FICs");

	/* Role. */
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":"
	    "\"access-policy\"}}", "{\"mechanism\":\"rbac\",\"role\":"
	    "\"Key Vault Crypto Service Encryption User\"}",
	    "declares access policies");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\"}}",
	    "{\"mechanism\":\"access-policy\",\"permissions\":[\"get\","
	    "\"wrapKey\",\"unwrapKey\"]}", "declares Azure RBAC");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\","
	    "\"kinds\":[\"netapp\"]}}", "{\"mechanism\":\"rbac\",\"role\":"
	    "\"Key Vault Crypto Service Encryption User\"}",
	    "NetApp Files needs");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\","
	    "\"kinds\":[\"netapp\"]}}", "{\"mechanism\":\"rbac\",\"role\":"
	    "\"Key Vault Crypto Officer\"}", NULL);
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\"}}",
	    "{\"mechanism\":\"rbac\",\"role\":\"Key Vault Reader\"}",
	    "does not grant");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\"}}",
	    "{\"mechanism\":\"rbac\",\"role\":\"Owner\"}", "not a known");
	/* A Managed HSM has only its local RBAC roles, and a vault never
	 * has them. */
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\","
	    "\"key_uri\":\"https://contosohsm.managedhsm.azure.net/keys/k\"}}",
	    "{\"mechanism\":\"rbac\",\"role\":"
	    "\"Key Vault Crypto Service Encryption User\"}",
	    "does not exist on a Managed HSM");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\","
	    "\"key_uri\":\"https://contosohsm.managedhsm.azure.net/keys/k\"}}",
	    "{\"mechanism\":\"rbac\",\"role\":"
	    "\"33413926-3206-4cdd-b39a-83574fe37a17\"}", NULL);
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\","
	    "\"key_uri\":\"https://contoso.vault.azure.net/keys/k\"}}",
	    "{\"mechanism\":\"rbac\",\"role\":"
	    "\"Managed HSM Crypto Service Encryption User\"}",
	    "does not exist in Key Vault");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":\"rbac\"}}",
	    "{\"mechanism\":\"rbac\",\"role\":\"Key Vault Crypto User\","
	    "\"scope\":\"subscription\"}", "scope");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":"
	    "\"access-policy\"}}", "{\"mechanism\":\"access-policy\","
	    "\"permissions\":[\"get\",\"wrapKey\"]}", "lacks 'unwrapKey'");
	verdict(s, POLICY_ROLE, "{\"customer\":{\"vault_auth\":"
	    "\"access-policy\"}}", "{\"mechanism\":\"access-policy\","
	    "\"permissions\":[\"get\",\"wrapKey\",\"unwrapKey\",\"fly\"]}",
	    "'fly' is not");
	/* Normalisation: casing and role ids. */
	i = J("{\"customer\":{\"vault_auth\":\"access-policy\"}}");
	o = J("{\"mechanism\":\"access-policy\",\"permissions\":[\"GET\","
	    "\"wrapkey\",\"UNWRAPKEY\"]}");
	ASSERT_EQ(policy_verdict_check(s, POLICY_ROLE, i, o, &e), 0);
	ASSERT_STR(json_string_value(json_array_get(json_object_get(o,
	    "permissions"), 2)), "unwrapKey");
	json_decref(i);
	json_decref(o);
	i = J("{\"customer\":{\"vault_auth\":\"rbac\"}}");
	o = J("{\"mechanism\":\"rbac\",\"role\":"
	    "\"key vault crypto service encryption user\"}");
	ASSERT_EQ(policy_verdict_check(s, POLICY_ROLE, i, o, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(o, "role_id")),
	    "e147488a-f6f5-4113-8e2d-b22465e65bf6");
	ASSERT_STR(json_string_value(json_object_get(o, "scope")), "key");
	json_decref(i);
	json_decref(o);

	/* Versioning. */
	verdict(s, POLICY_VERSIONING, "{\"customer\":{\"kinds\":"
	    "[\"cosmosdb\"]},\"key\":{\"version\":"
	    "\"0123456789abcdef0123456789abcdef\"}}", "{\"mode\":\"pinned\"}",
	    "Cosmos DB accepts only versionless key URIs");
	verdict(s, POLICY_VERSIONING, "{\"customer\":{\"kinds\":"
	    "[\"storage\"]},\"key\":{}}", "{\"mode\":\"auto\",\"grace\":3600}",
	    "Azure Storage checks for new versions once a day");
	verdict(s, POLICY_VERSIONING, "{\"customer\":{\"kinds\":"
	    "[\"storage-existing\"]},\"key\":{}}",
	    "{\"mode\":\"auto\",\"grace\":86400}", NULL);
	verdict(s, POLICY_VERSIONING, "{\"customer\":{},\"key\":{}}",
	    "{\"mode\":\"pinned\"}", "32-hex-digit");
	verdict(s, POLICY_VERSIONING, "{\"customer\":{},\"key\":{}}",
	    "{\"mode\":\"auto\",\"refresh\":0}", "refresh = 0 is outside");
	verdict(s, POLICY_VERSIONING, "{\"customer\":{},\"key\":{}}",
	    "{\"mode\":\"auto\",\"cache_ttl\":1.5}", "must be an integer");
	verdict(s, POLICY_VERSIONING, "{\"customer\":{},\"key\":{}}",
	    "{\"mode\":\"sometimes\"}", "mode");
	i = J("{\"customer\":{},\"key\":{\"version\":"
	    "\"0123456789abcdef0123456789abcdef\"}}");
	o = J("{\"mode\":\"pinned\"}");
	ASSERT_EQ(policy_verdict_check(s, POLICY_VERSIONING, i, o, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(o, "version")),
	    "0123456789abcdef0123456789abcdef");
	ASSERT_EQ(json_integer_value(json_object_get(o, "refresh")), 3600);
	ASSERT_EQ(json_integer_value(json_object_get(o, "revocation_check")),
	    300);
	ASSERT_EQ(json_integer_value(json_object_get(o, "cache_max")), 10000);
	json_decref(i);
	json_decref(o);
	policy_set_unref(s);
}

/*
 * P.scope: the table comes back as JSON; mistakes are refused by the
 * shared parser with the field named; a fixture applies the selectors
 * to its apps and workloads (room, fill order, limit, max_number).
 */
static void
test_scope(void)
{
	struct policy_set *s = NULL;
	struct policy_vm *vm = NULL;
	struct scope sc;
	struct xerr e;
	json_t *c, *doc = NULL;
	char path[2048];
	const char *dir;
	char *files[1];
	int r;

	dir = make_set("scoped", "scoped.lua");
	ASSERT_EQ(policy_set_load(dir, luadir, NULL, NULL, &s, &e), 0);
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);
	c = J("{\"id\": \"ok\", \"labels\": {\"region\": \"eu\"}}");
	ASSERT_EQ(policy_vm_scope(vm, c, NULL, &doc, &e), 0);
	ASSERT_EQ(scope_parse(doc, &sc, &e), 0);
	ASSERT_STR(sc.apps.stem, "a-");
	ASSERT_EQ(sc.apps.room, 2);
	ASSERT_EQ(sc.apps.limit, 2);
	ASSERT_EQ(sc.workloads.limit, SCOPE_WORKLOADS_MAX);
	scope_clear(&sc);
	json_decref(doc);
	json_decref(c);

	c = J("{\"id\": \"noindex\"}");
	ASSERT_EQ(policy_vm_scope(vm, c, NULL, &doc, &e), 0);
	ASSERT_TRUE(scope_parse(doc, &sc, &e) < 0);
	ASSERT_CONTAINS(e.msg, "apps needs a stem or a label equal");
	json_decref(doc);
	json_decref(c);
	c = J("{\"id\": \"toolong\"}");
	ASSERT_EQ(policy_vm_scope(vm, c, NULL, &doc, &e), 0);
	ASSERT_TRUE(scope_parse(doc, &sc, &e) < 0);
	ASSERT_CONTAINS(e.msg, "apps.limit must be an integer from 1 to 256");
	json_decref(doc);
	json_decref(c);
	c = J("{\"id\": \"string\"}");
	ASSERT_TRUE(policy_vm_scope(vm, c, NULL, &doc, &e) < 0);
	ASSERT_CONTAINS(e.msg, "scope returned string");
	json_decref(c);
	c = J("{\"id\": \"raise\"}");
	ASSERT_TRUE(policy_vm_scope(vm, c, NULL, &doc, &e) < 0);
	ASSERT_CONTAINS(e.msg, "scope failed on purpose");
	json_decref(c);
	c = J("{\"id\": \"loop\"}");
	ASSERT_TRUE(policy_vm_scope(vm, c, NULL, &doc, &e) < 0);
	ASSERT_CONTAINS(e.msg, "exceeded");
	json_decref(c);

	/* Offline: a-1 is full, a-3 and a-2 have room (fill order 2, 3),
	 * b-1 is another region, a-9 names the highest number. */
	snprintf(path, sizeof(path), "%s/scoped.json", tmpdir);
	write_file(path, "{\"fixtures\": [{\"decision\": \"partition\", "
	    "\"input\": {\"customer\": {\"id\": \"c\", \"labels\": "
	    "{\"region\": \"eu\"}}, \"apps\": ["
	    "{\"name\": \"a-1\", \"labels\": {\"region\": \"eu\"}, "
	    "\"customers\": 2},"
	    "{\"name\": \"a-3\", \"labels\": {\"region\": \"eu\"}, "
	    "\"customers\": 1},"
	    "{\"name\": \"a-2\", \"labels\": {\"region\": \"eu\"}, "
	    "\"customers\": 0},"
	    "{\"name\": \"b-1\", \"labels\": {\"region\": \"us\"}, "
	    "\"customers\": 0}], "
	    "\"workloads\": [{\"name\": \"w-us\", \"labels\": "
	    "{\"region\": \"us\"}}, {\"name\": \"w-eu\", \"labels\": "
	    "{\"region\": \"eu\"}}]}, "
	    "\"expect\": {\"app\": \"a-2\", \"federate\": [\"w-eu\"]}}, "
	    "{\"decision\": \"partition\", \"params\": {\"room\": 1}, "
	    "\"input\": {\"customer\": {\"id\": \"c\", \"labels\": "
	    "{\"region\": \"eu\"}}, \"apps\": ["
	    "{\"name\": \"a-9\", \"labels\": {\"region\": \"eu\"}, "
	    "\"customers\": 5}], \"workloads\": [{\"name\": \"w-eu\", "
	    "\"labels\": {\"region\": \"eu\"}}]}, "
	    "\"expect\": {\"app\": \"a-10\"}}, "
	    "{\"decision\": \"partition\", \"input\": {\"customer\": "
	    "{\"id\": \"noindex\"}, \"apps\": [], \"workloads\": []}, "
	    "\"expect_error\": \"scope: apps needs a stem\"}]}");
	files[0] = path;
	r = policy_run_fixtures(dir, luadir, NULL, NULL, NULL, files, 1, 0, stdout,
	    &e);
	ASSERT_EQ(r, 0);
	policy_vm_free(vm);
	policy_set_unref(s);
}

/*
 * xtcmk.place: the sandbox's C fnv1a32 and rank's sort in C must give
 * exactly what the pure-Lua definitions give (tests/policy/place.lua
 * raises on any difference), or placements would change.
 */
static void
test_place(void)
{
	struct policy_set *s = NULL;
	struct policy_vm *vm = NULL;
	struct xerr e;
	json_t *in, *out = NULL;

	ASSERT_EQ(policy_set_load(make_set("place", "place.lua"), luadir,
	    NULL, NULL, &s, &e), 0);
	ASSERT_EQ(policy_vm_new(s, &vm, &e), 0);
	in = partition_input("{\"id\": \"c\"}", "[]");
	if (policy_vm_call(vm, POLICY_PARTITION, in, &out, &e) < 0)
		fprintf(stderr, "place: %s\n", e.msg);
	ASSERT_TRUE(out != NULL);
	ASSERT_STR(json_string_value(json_object_get(out, "app")), "ok");
	json_decref(out);
	json_decref(in);
	policy_vm_free(vm);
	policy_set_unref(s);
}

int
main(void)
{
	const char *src = getenv("XTCMK_SRCDIR");
	const char *t = getenv("TMPDIR");

	snprintf(srcdir, sizeof(srcdir), "%s", src != NULL ? src : ".");
	snprintf(luadir, sizeof(luadir), "%s/lua", srcdir);
	snprintf(tmpdir, sizeof(tmpdir), "%s/xtcmk-policy-XXXXXX",
	    t != NULL ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_default_set();
	test_fixtures();
	test_sandbox();
	test_refused_sets();
	test_require();
	test_verdicts();
	test_scope();
	test_place();
	rm_tree(tmpdir);
	return t_done();
}
