/*
 * test_guest.c - libxtcmk as a guest in someone else's process: dlopen
 * cycles (and the same under valgrind), no descriptor across exec, SIGPIPE
 * at its default disposition while the agent goes away, fork safety, an
 * agent that is down and one that is wedged, and a copy of a connection
 * the module cannot know of not keeping it open.
 *
 * The module is only ever reached through dlopen() of
 * $XTCMK_BUILDDIR/module/libxtcmk.so and its function table: this file
 * calls no xtcmk_* symbol directly, so with --as-needed the binary does
 * not link the module and every dlclose() really unloads it.
 *
 * Helper modes (argv[1]):
 *	--cycles SOCK CUSTOMER N	N dlopen/open/decide/close/dlclose
 *	--list-fds			print "fd target" per open descriptor
 *	--print-deks SOCK CUSTOMER N	print N fresh DEKs in hex (secrets.sh)
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "harness.h"
#include "t.h"
#include "wire.h"
#include "xtcmk.h"

#define CYCLES		1000
#define VG_CYCLES	250		/* a leak per cycle shows at any n */
#define WEDGE_MS	400		/* timeout of the wedged-agent handle */
#define WEDGE_SLACK_MS	100
#define DOWN_MAX_MS	100		/* agent down: answer this fast */
#define FD_LIST_MAX	256
#define OUT_MAX		16384
#define CUSTOMER	"guest-1"
#define KEY_URI		"https://demo.vault.local/keys/guest"
#define TENANT		"44444444-4444-4444-8444-444444444444"

static struct agent A;
static void *lib;
static const struct xtcmk_functions *X;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
module_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/module/libxtcmk.so", h_builddir());
}

/* dlopen the module and fetch its function table; NULL on failure. */
static const struct xtcmk_functions *
load(void **ret_lib)
{
	char path[PATH_MAX];
	xtcmk_get_functions_fn get;
	const struct xtcmk_functions *t;
	void *l;

	module_path(path, sizeof(path));
	if ((l = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return NULL;
	}
	*(void **)&get = dlsym(l, "xtcmk_get_functions");
	if (get == NULL || (t = get()) == NULL ||
	    t->api_version != XTCMK_API_VERSION ||
	    t->size < sizeof(struct xtcmk_functions)) {
		dlclose(l);
		return NULL;
	}
	*ret_lib = l;
	return t;
}

/* One decision on a fresh handle through table `t`: the result code. */
static int
decide_once(const struct xtcmk_functions *t, const char *sock,
    const char *customer, unsigned timeout_ms)
{
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	int rc;

	if ((rc = t->open(sock, timeout_ms, &h)) != XTCMK_OK)
		return rc;
	rc = t->decide(h, customer, &d);
	if (rc == XTCMK_OK && (t->decision_str(d, XTCMK_F_APP) == NULL ||
	    t->decision_u64(d, XTCMK_F_SERVED, 0) != 1))
		rc = -1;
	t->decision_free(d);
	t->close(h);
	return rc;
}

/* Descriptors open in this process. */
static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;		/* the directory's own */
}

/* --- helper modes ------------------------------------------------------ */

static int
mode_cycles(const char *sock, const char *customer, int n)
{
	const struct xtcmk_functions *t;
	void *l;
	int i, bad = 0, fd0 = count_fds();

	for (i = 0; i < n; i++) {
		if ((t = load(&l)) == NULL)
			return 2;
		if (decide_once(t, sock, customer, 10000) != XTCMK_OK)
			bad++;
		if (dlclose(l) != 0)
			bad++;
	}
	if (count_fds() != fd0)
		bad++;
	printf("cycles %d failed %d fds %d -> %d\n", n, bad, fd0, count_fds());
	return bad != 0;
}

static int
mode_list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char path[300], target[PATH_MAX];
	ssize_t n;

	if (d == NULL)
		return 2;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		printf("%d %s%s\n", atoi(de->d_name), target,
		    atoi(de->d_name) == dirfd(d) ? " (listing)" : "");
	}
	closedir(d);
	return 0;
}

static int
mode_print_deks(const char *sock, const char *customer, int n)
{
	const struct xtcmk_functions *t;
	struct xtcmk *h;
	uint8_t dek[XTCMK_DEK_LEN], blob[XTCMK_BLOB_MAX];
	size_t blen, j;
	void *l;
	int i, rc;

	if ((t = load(&l)) == NULL || t->open(sock, 10000, &h) != XTCMK_OK) {
		fprintf(stderr, "cannot load or open the module\n");
		return 2;
	}
	for (i = 0; i < n; i++) {
		blen = sizeof(blob);
		if ((rc = t->dek_new(h, customer, dek, blob, &blen)) !=
		    XTCMK_OK) {
			fprintf(stderr, "dek_new: %s\n", t->last_error());
			return 1;
		}
		/* And once through unwrap, so the cache path runs too. */
		if ((rc = t->dek_unwrap(h, customer, blob, blen, dek)) !=
		    XTCMK_OK) {
			fprintf(stderr, "dek_unwrap: %s\n", t->last_error());
			return 1;
		}
		for (j = 0; j < sizeof(dek); j++)
			printf("%02x", dek[j]);
		putchar('\n');
	}
	t->close(h);
	dlclose(l);
	return 0;
}

/* --- setup ------------------------------------------------------------ */

static int
ctl_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
ctl_ok(const char *fmt, ...)
{
	char args[2048], out[OUT_MAX];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if ((rc = ctl(&A, out, sizeof(out), "%s", args)) != 0)
		fprintf(stderr, "xtcmkctl %s: exit %d: %s\n", args, rc, out);
	return rc;
}

/*
 * A counter from the agent's stats, e.g. ("connections", "total"), asked
 * over one admin connection kept open, so that asking opens none.
 */
static struct xc_conn adm = { .fd = -1 };

static long long
stat_of(const char *group, const char *name)
{
	static const char req[] = "{\"cmd\":\"stats\"}";
	char err[XC_ERR_MAX];
	uint8_t payload[64], *reply = NULL;
	struct xw_buf b;
	struct xw_field f;
	uint16_t status = 1;
	size_t rlen = 0;
	json_t *j;
	long long v = -1;
	int64_t dl = xc_deadline(10000);

	if (adm.fd == -1 && xc_connect(A.sock, dl, err, sizeof(err),
	    &adm) < 0)
		return -1;
	xw_buf_init(&b, payload, sizeof(payload));
	xw_put_str(&b, XT_JSON, req);
	if (xc_request(&adm, XW_ADMIN, payload, b.len, XW_PAYLOAD_MAX, dl, err,
	    sizeof(err), &status, &reply, &rlen) < 0) {
		xc_close(&adm);
		return -1;
	}
	if (status == 0 && xw_find(reply, rlen, XT_JSON, &f) == 1 &&
	    (j = json_loadb((const char *)f.val, f.len, 0, NULL)) != NULL) {
		v = json_integer_value(json_object_get(json_object_get(j,
		    group), name));
		json_decref(j);
	}
	free(reply);
	return v;
}

/* Wait until every thread of `pid` is stopped (SIGSTOP is delivered
 * thread by thread: a request may still be served meanwhile). */
static int
wait_stopped(pid_t pid)
{
	char path[300], buf[512], *p;
	struct dirent *de;
	DIR *d;
	FILE *f;
	int i, running;

	for (i = 0; i < 2000; i++) {
		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
		if ((d = opendir(path)) == NULL)
			return -1;
		running = 0;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%s/stat",
			    (int)pid, de->d_name);
			if ((f = fopen(path, "r")) == NULL)
				continue;
			if (fgets(buf, sizeof(buf), f) != NULL &&
			    (p = strrchr(buf, ')')) != NULL && p[1] == ' ' &&
			    p[2] != 'T' && p[2] != 't')
				running++;
			fclose(f);
		}
		closedir(d);
		if (running == 0)
			return 0;
		usleep(1000);
	}
	return -1;
}

static int
setup(void)
{
	if (agent_init(&A, "wl-eu-1", NULL) == -1 || agent_start(&A) == -1)
		return -1;
	if (ctl_ok("workload add wl-eu-1 --client-id "
	    "11111111-1111-4111-8111-111111111111 --principal-id "
	    "22222222-2222-4222-8222-222222222222 --label region=eu") != 0 ||
	    ctl_ok("key create %s", KEY_URI) != 0 ||
	    ctl_ok("customer add %s --tenant %s --key-uri %s --label "
	    "region=eu", CUSTOMER, TENANT, KEY_URI) != 0)
		return -1;
	return 0;
}

/* Run this binary in a helper mode; stdout into out.  Exit code or -1. */
static int
run_self(const char *self, const char *prefix, char *out, size_t outlen,
    const char *args)
{
	char cmd[2048];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s %s", prefix, self, args);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --- 1. dlopen cycles -------------------------------------------------- */

static int
built_with_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return 1;
#else
	return 0;
#endif
#else
	return 0;
#endif
}

static void
test_cycles(const char *self)
{
	char args[600], out[4096];
	double t0 = now_ms();
	int rc;

	snprintf(args, sizeof(args), "--cycles %s %s %d", A.sock, CUSTOMER,
	    CYCLES);
	rc = run_self(self, "", out, sizeof(out), args);
	printf("dlopen cycles: %s  (%.0f ms)\n", out, now_ms() - t0);
	ASSERT_EQ(rc, 0);
	ASSERT_CONTAINS(out, "failed 0");

	if (built_with_asan()) {
		printf("valgrind: skipped (ASan build)\n");
		return;
	}
	if (system("valgrind --version >/dev/null 2>&1") != 0) {
		printf("valgrind: skipped (not installed)\n");
		return;
	}
	t0 = now_ms();
	snprintf(args, sizeof(args), "--cycles %s %s %d", A.sock, CUSTOMER,
	    VG_CYCLES);
	rc = run_self(self, "valgrind -q --leak-check=full "
	    "--error-exitcode=1 --trace-children=no", out, sizeof(out), args);
	printf("valgrind dlopen cycles: %s  exit %d (%.0f ms)\n", out, rc,
	    now_ms() - t0);
	ASSERT_EQ(rc, 0);
	ASSERT_CONTAINS(out, "failed 0");
}

/* --- 2. descriptors across exec ---------------------------------------- */

/* Descriptors this process inherited open (from meson, a shell): not ours. */
static char inherited_fds[FD_LIST_MAX];

static void
note_inherited(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int fd;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		fd = atoi(de->d_name);
		if (de->d_name[0] != '.' && fd != dirfd(d) && fd > 2 &&
		    fd < FD_LIST_MAX && !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
			inherited_fds[fd] = 1;
	}
	closedir(d);
}

static int
inherited(int fd)
{
	return fd >= 0 && fd < FD_LIST_MAX && inherited_fds[fd];
}

static void
test_exec_fds(const char *self)
{
	struct xtcmk *h[3];
	struct xtcmk_decision *d;
	char out[8192], *line, *save = NULL;
	int i, n = 0, sockets = 0, high = 0, rc, pooled = 0;

	/* Several handles, each with a pooled connection, held open. */
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(X->open(A.sock, 5000, &h[i]), XTCMK_OK);
		ASSERT_EQ(X->decide(h[i], CUSTOMER, &d), XTCMK_OK);
		X->decision_free(d);
	}
	rc = run_self(self, "", out, sizeof(out), "--list-fds");
	ASSERT_EQ(rc, 0);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		n++;
		if (strstr(line, "socket:") != NULL)
			sockets++;
		if (atoi(line) > 2 && strstr(line, "(listing)") == NULL &&
		    !inherited(atoi(line))) {
			high++;
			fprintf(stderr, "descriptor across exec: %s\n", line);
		}
	}
	pooled = count_fds();
	printf("exec: %d descriptors in the child (%d sockets); %d open "
	    "here\n", n, sockets, pooled);
	ASSERT_EQ(sockets, 0);
	ASSERT_EQ(high, 0);
	for (i = 0; i < 3; i++)
		X->close(h[i]);
}

/* --- 3. SIGPIPE at its default disposition ------------------------------ */

static void
test_sigpipe(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	pid_t pid;
	int st = 0, rc;

	pid = fork();
	ASSERT_TRUE(pid != -1);
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (X->open(A.sock, 2000, &h) != XTCMK_OK ||
		    X->decide(h, CUSTOMER, &d) != XTCMK_OK)
			_exit(10);
		X->decision_free(d);
		/* The agent goes away under a pooled connection. */
		kill(A.pid, SIGKILL);
		usleep(200000);
		rc = X->decide(h, CUSTOMER, &d);
		if (rc != XTCMK_E_UNAVAILABLE)
			_exit(20 + rc);
		rc = X->key_status(h, CUSTOMER, NULL, 0, NULL, 0);
		if (rc != XTCMK_E_UNAVAILABLE)
			_exit(40 + rc);
		X->close(h);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st))
		T_FAIL("the process died of signal %d (SIGPIPE is %d)",
		    WTERMSIG(st), SIGPIPE);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	/* Reap the agent the child killed, and bring it back. */
	waitpid(A.pid, &st, 0);
	A.pid = 0;
	ASSERT_EQ(agent_start(&A), 0);
	printf("SIGPIPE default: agent killed under a pooled connection, "
	    "call returned UNAVAILABLE, process alive\n");
}

/* A connection the agent closed while the handle kept it: restarts. */
static void
test_stale_pool(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	void (*old)(int) = signal(SIGPIPE, SIG_DFL);

	ASSERT_EQ(X->open(A.sock, 5000, &h), XTCMK_OK);
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	agent_stop(&A);
	ASSERT_EQ(agent_start(&A), 0);
	/* The pooled connection is dead; the call retries on a new one. */
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	X->close(h);
	signal(SIGPIPE, old);
}

/* --- 4. fork ---------------------------------------------------------- */

static void
test_fork(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	long long t0, t1, t2;
	pid_t pid;
	int st = 0;

	ASSERT_EQ(X->open(A.sock, 5000, &h), XTCMK_OK);
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	/* Connect the stats connection first: it counts once. */
	(void)stat_of("connections", "total");
	usleep(50000);
	t0 = stat_of("connections", "total");

	pid = fork();
	ASSERT_TRUE(pid != -1);
	if (pid == 0) {
		int rc = X->decide(h, CUSTOMER, &d);

		X->decision_free(d);
		if (rc == XTCMK_OK)
			rc = X->decide(h, CUSTOMER, &d);
		X->decision_free(d);
		X->close(h);
		_exit(rc);
	}
	waitpid(pid, &st, 0);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), XTCMK_OK);
	/* The agent counts a connection on its own thread, which may run
	 * after the child is gone: give it up to a second. */
	for (int i = 0; i < 100 &&
	    (t1 = stat_of("connections", "total")) == t0; i++)
		usleep(10000);
	/* The parent's connection is intact and still its own. */
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	t2 = stat_of("connections", "total");
	printf("fork: agent connections %lld -> %lld after the child's calls "
	    "-> %lld after the parent's call\n", t0, t1, t2);
	/* Child: one connection of its own, never the parent's. */
	ASSERT_EQ(t1 - t0, 1);
	/* Parent: reused its pooled connection, untouched by the child. */
	ASSERT_EQ(t2 - t1, 0);
	X->close(h);
}

/*
 * Highest-numbered socket descriptor of this process other than `skip`
 * and below `below`; -1 if none.
 */
static int
last_socket(int skip, int below)
{
	struct stat st;
	int fd;

	for (fd = below - 1; fd > STDERR_FILENO; fd--)
		if (fd != skip && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			return fd;
	return -1;
}

/*
 * A child forked between socket() and the slot recording the descriptor
 * holds a copy the module cannot prove is its own, so the child leaves
 * it.  Such a copy must not keep the agent's connection open once the
 * parent closes it: a dup() is the same kind of copy (one open socket,
 * two descriptors), made here without racing a fork.
 */
static void
test_unknown_copy(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	long long o0, o1 = -1;
	int fd, copy, i;
	char c;

	(void)stat_of("connections", "open");	/* the stats connection */
	ASSERT_EQ(X->open(A.sock, 5000, &h), XTCMK_OK);
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	/* The module's pooled connection: the newest socket. */
	fd = last_socket(adm.fd, 1024);
	ASSERT_TRUE(fd > STDERR_FILENO);
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
	ASSERT_TRUE(copy >= 1000);
	o0 = stat_of("connections", "open");
	X->close(h);
	for (i = 0; i < 100 && (o1 = stat_of("connections", "open")) != o0 - 1;
	    i++)
		usleep(10000);
	printf("unknown copy: agent connections open %lld -> %lld after "
	    "xtcmk_close, a copy of the descriptor still open\n", o0, o1);
	ASSERT_EQ(o1, o0 - 1);
	/* The copy reads end of stream: the socket is shut, not leaked. */
	ASSERT_EQ(recv(copy, &c, 1, MSG_DONTWAIT), 0);
	close(copy);
}

/* --- 5. agent down, agent wedged --------------------------------------- */

static void
test_down(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	double t0, el;
	int rc;

	agent_stop(&A);
	ASSERT_EQ(X->open(A.sock, 5000, &h), XTCMK_OK);
	t0 = now_ms();
	rc = X->decide(h, CUSTOMER, &d);
	el = now_ms() - t0;
	printf("agent down: %s in %.2f ms\n", X->strerror(rc), el);
	ASSERT_EQ(rc, XTCMK_E_UNAVAILABLE);
	ASSERT_TRUE(el < DOWN_MAX_MS);
	ASSERT_TRUE(X->last_error()[0] != '\0');
	X->close(h);
	ASSERT_EQ(agent_start(&A), 0);
}

static void
test_wedged(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h, *h2;
	double t0, el, el2;
	int rc, rc2;

	/* h holds a pooled connection; h2 will have to connect afresh. */
	ASSERT_EQ(X->open(A.sock, WEDGE_MS, &h), XTCMK_OK);
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	ASSERT_EQ(X->open(A.sock, WEDGE_MS, &h2), XTCMK_OK);

	kill(A.pid, SIGSTOP);
	ASSERT_EQ(wait_stopped(A.pid), 0);
	t0 = now_ms();
	rc = X->decide(h, CUSTOMER, &d);
	el = now_ms() - t0;
	t0 = now_ms();
	rc2 = X->decide(h2, CUSTOMER, &d);
	el2 = now_ms() - t0;
	kill(A.pid, SIGCONT);
	printf("agent wedged (SIGSTOP), timeout %d ms: pooled connection "
	    "%s in %.1f ms, fresh connection %s in %.1f ms\n", WEDGE_MS,
	    X->strerror(rc), el, X->strerror(rc2), el2);
	ASSERT_EQ(rc, XTCMK_E_TIMEOUT);
	ASSERT_EQ(rc2, XTCMK_E_TIMEOUT);
	ASSERT_TRUE(el >= WEDGE_MS - 5 && el <= WEDGE_MS + WEDGE_SLACK_MS);
	ASSERT_TRUE(el2 >= WEDGE_MS - 5 && el2 <= WEDGE_MS + WEDGE_SLACK_MS);
	/* Back to normal once the agent runs again. */
	ASSERT_EQ(X->decide(h, CUSTOMER, &d), XTCMK_OK);
	X->decision_free(d);
	X->close(h);
	X->close(h2);
}

int
main(int argc, char **argv)
{
	char self[PATH_MAX];
	ssize_t n;

	if (argc == 5 && strcmp(argv[1], "--cycles") == 0)
		return mode_cycles(argv[2], argv[3], atoi(argv[4]));
	if (argc == 2 && strcmp(argv[1], "--list-fds") == 0)
		return mode_list_fds();
	if (argc == 5 && strcmp(argv[1], "--print-deks") == 0)
		return mode_print_deks(argv[2], argv[3], atoi(argv[4]));

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		return 2;
	self[n] = '\0';
	note_inherited();
	if (setup() == -1) {
		fprintf(stderr, "cannot set up the agent (see %s)\n", A.log);
		ASSERT_TRUE(0);
		agent_cleanup(&A);
		return t_done();
	}
	test_cycles(self);
	if ((X = load(&lib)) == NULL) {
		ASSERT_TRUE(0);
		agent_cleanup(&A);
		return t_done();
	}
	test_exec_fds(self);
	test_sigpipe();
	test_stale_pool();
	test_fork();
	test_unknown_copy();
	test_down();
	test_wedged();
	dlclose(lib);
	xc_close(&adm);
	agent_cleanup(&A);
	return t_done();
}
