/*
 * test_fdlimit.c - xtcmkd under descriptor pressure, with real processes
 * of other uids.
 *
 * The agent starts with RLIMIT_NOFILE 200 (soft and hard) and a config
 * asking for far more connections than fit.  Three unprivileged uids open
 * connections until refused: the first is stopped at its per-uid share,
 * the second fills max_connections, the third is answered BUSY at once.
 * Meanwhile root gets decisions within its deadline and
 * `xtcmkctl status` works.  Then the agent's limit is lowered under its
 * feet (prlimit) so accept() fails with EMFILE: a new connection is
 * answered BUSY at once through the reserve descriptor, the warning is
 * logged once, and the agent uses no CPU spinning.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "t.h"
#include "xtcmk.h"

#define NOFILE		200	/* the agent's descriptor limit */
#define EXPECT_ADMIN	4	/* kept for admins beyond max_connections */
#define EXPECT_MAX	132	/* NOFILE less 64 of the agent's, less those */
#define EXPECT_PER_UID	128	/* EXPECT_MAX less 4 kept for other uids */
#define UID_A		65534
#define UID_B		65533
#define UID_C		65532
#define CALL_MS		2000
#define CONNS_MAX	512
#define EMFILE_TRIES	50
#define EMFILE_ROOM	3	/* descriptors left to the agent */
#define OUT_MAX		16384
#define CUSTOMER	"fdlimit-1"
#define KEY_URI		"https://demo.vault.local/keys/fdlimit"
#define TENANT		"66666666-6666-4666-8666-666666666666"

static struct agent A;
static int held[8];		/* release ends of the holders so far */
static int nheld;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A process of `uid` holding connections until told to let go. */
struct holder {
	pid_t	pid;
	int	go;		/* write end: close to release */
	int	opened;		/* connections the agent accepted */
	int	refusal;	/* result of the first refused one */
};

/*
 * Child: become `uid`, connect until the agent refuses, report "opened
 * refusal" on `report`, then hold everything until `release` closes.
 */
static void
holder_main(uid_t uid, int report, int release)
{
	static struct xc_conn c[CONNS_MAX];
	char err[XC_ERR_MAX], line[64];
	int n = 0, rc = 0;
	char b;

	if (setgroups(0, NULL) == -1 || setgid(uid) == -1 ||
	    setuid(uid) == -1)
		_exit(3);
	while (n < CONNS_MAX) {
		rc = xc_connect(A.sock, xc_deadline(CALL_MS), err, sizeof(err),
		    &c[n]);
		if (rc < 0)
			break;
		n++;
	}
	snprintf(line, sizeof(line), "%d %d\n", n, -rc);
	(void)!write(report, line, strlen(line));
	(void)!read(release, &b, 1);
	_exit(0);
}

static int
holder_start(struct holder *h, uid_t uid)
{
	int rep[2], rel[2];
	char line[64];
	ssize_t n;

	if (pipe(rep) == -1 || pipe(rel) == -1)
		return -1;
	if ((h->pid = fork()) == -1)
		return -1;
	if (h->pid == 0) {
		close(rep[0]);
		close(rel[1]);
		while (nheld > 0)	/* the others' release is not ours */
			close(held[--nheld]);
		holder_main(uid, rep[1], rel[0]);
	}
	close(rep[1]);
	close(rel[0]);
	h->go = rel[1];
	held[nheld++] = h->go;
	n = read(rep[0], line, sizeof(line) - 1);
	close(rep[0]);
	if (n <= 0)
		return -1;
	line[n] = '\0';
	if (sscanf(line, "%d %d", &h->opened, &h->refusal) != 2)
		return -1;
	return 0;
}

static void
holder_stop(struct holder *h)
{
	int st;

	close(h->go);
	waitpid(h->pid, &st, 0);
}

/* A stats counter of the agent, read through xtcmkctl. */
static long long
stat_of(const char *key)
{
	char out[OUT_MAX], *p;

	if (ctl(&A, out, sizeof(out), "--json stats") != 0 ||
	    (p = strstr(out, key)) == NULL)
		return -1;
	p += strlen(key);
	while (*p == '"' || *p == ':' || *p == ' ')
		p++;
	return atoll(p);
}

/* CPU time of the agent, in clock ticks. */
static long long
agent_cpu(void)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)A.pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* Fields after the name: state is 3rd; utime 14th, stime 15th. */
	for (i = 3; i < 14 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static int
agent_fds(void)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)A.pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
count_lines(const char *path, const char *needle)
{
	char line[1024];
	FILE *f;
	int n = 0;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

static int
setup(void)
{
	struct rlimit low = { NOFILE, NOFILE };
	char out[OUT_MAX];

	if (agent_init(&A, "wl-eu-1", "[agent]\nmax_connections = 60000\n"
	    "max_connections_per_uid = 60000\n[access]\ndata_uids = 0 65534 "
	    "65533 65532\n") == -1)
		return -1;
	A.die_with_test = 1;
	/* Other uids must reach the socket. */
	if (chmod(A.dir, 0755) == -1)
		return -1;
	/*
	 * The agent inherits the limit.  Raising a hard limit again takes
	 * CAP_SYS_RESOURCE, which a container may lack: the test keeps the
	 * low limit too (it needs few descriptors).
	 */
	if (setrlimit(RLIMIT_NOFILE, &low) == -1 || agent_start(&A) == -1)
		return -1;
	if (ctl(&A, out, sizeof(out), "workload add wl-eu-1 --client-id "
	    "11111111-1111-4111-8111-111111111111 --principal-id "
	    "22222222-2222-4222-8222-222222222222 --label region=eu") != 0 ||
	    ctl(&A, out, sizeof(out), "key create %s", KEY_URI) != 0 ||
	    ctl(&A, out, sizeof(out), "customer add %s --tenant %s --key-uri "
	    "%s --label region=eu", CUSTOMER, TENANT, KEY_URI) != 0) {
		fprintf(stderr, "xtcmkctl: %s\n", out);
		return -1;
	}
	return 0;
}

/* One decision as root on a fresh handle: result and time taken. */
static int
root_decide(long long *ret_ms)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	long long t0 = now_ms();
	int rc;

	if ((rc = xtcmk_open(A.sock, CALL_MS, &h)) != XTCMK_OK)
		return rc;
	rc = xtcmk_decide(h, CUSTOMER, &d);
	xtcmk_decision_free(d);
	xtcmk_close(h);
	*ret_ms = now_ms() - t0;
	return rc;
}

static void
test_limits(void)
{
	struct holder a, b, c;
	char out[OUT_MAX];
	long long ms = -1;
	int rc;

	/* The clamps, as the agent logged them. */
	snprintf(out, sizeof(out), "connections: at most %d, %d per uid, %d "
	    "more for admins; descriptor limit %d", EXPECT_MAX,
	    EXPECT_PER_UID, EXPECT_ADMIN, NOFILE);
	ASSERT_EQ(count_lines(A.log, out), 1);
	ASSERT_EQ(count_lines(A.log, "does not fit the descriptor limit"), 1);
	ASSERT_EQ(count_lines(A.log, "would let one uid lock out"), 1);

	ASSERT_EQ(holder_start(&a, UID_A), 0);
	ASSERT_EQ(holder_start(&b, UID_B), 0);
	ASSERT_EQ(holder_start(&c, UID_C), 0);
	printf("uid %d: %d connections then %s; uid %d: %d then %s; uid %d: "
	    "%d then %s\n", UID_A, a.opened, xtcmk_strerror(a.refusal),
	    UID_B, b.opened, xtcmk_strerror(b.refusal), UID_C, c.opened,
	    xtcmk_strerror(c.refusal));
	/* The first uid stops at its share, the second gets the rest, the
	 * third finds no room: each is answered BUSY. */
	ASSERT_EQ(a.opened, EXPECT_PER_UID);
	ASSERT_EQ(a.refusal, XTCMK_E_BUSY);
	ASSERT_EQ(b.opened, EXPECT_MAX - EXPECT_PER_UID);
	ASSERT_EQ(b.refusal, XTCMK_E_BUSY);
	ASSERT_EQ(c.opened, 0);
	ASSERT_EQ(c.refusal, XTCMK_E_BUSY);

	/* Root (an admin) is still answered, within its deadline. */
	rc = root_decide(&ms);
	printf("root decide with %d non-admin connections held: %s in %lld "
	    "ms\n", a.opened + b.opened, xtcmk_strerror(rc), ms);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_TRUE(ms >= 0 && ms < CALL_MS);
	rc = ctl(&A, out, sizeof(out), "status");
	ASSERT_EQ(rc, 0);
	ASSERT_CONTAINS(out, "xtcmkd");
	ASSERT_TRUE(stat_of("\"refused\"") >= 3);

	holder_stop(&a);
	holder_stop(&b);
	holder_stop(&c);
}

/* Connect as root: 0, or -(result) with the agent's text in err. */
static int
try_connect(struct xc_conn *c, char *err, size_t errlen)
{
	return xc_connect(A.sock, xc_deadline(CALL_MS), err, errlen, c);
}

static void
test_emfile(void)
{
	struct rlimit low, back = { NOFILE, NOFILE };
	struct xc_conn hold[EMFILE_ROOM + 8], c;
	char err[XC_ERR_MAX];
	long long cpu0, cpu1, t0, ms = -1, before, after;
	int i, n, nhold = 0, busy = 0, rc;

	before = stat_of("\"out_of_fds\"");
	ASSERT_EQ(before, 0);
	/* Let the connections of the last test wind down. */
	usleep(300000);
	n = agent_fds();
	ASSERT_TRUE(n > 0);
	/* Room for EMFILE_ROOM more descriptors; only the soft limit, which
	 * can be raised again without privilege. */
	low.rlim_cur = (rlim_t)(n + EMFILE_ROOM);
	low.rlim_max = NOFILE;
	ASSERT_EQ(prlimit(A.pid, RLIMIT_NOFILE, &low, NULL), 0);

	/* Fill the room with connections held open (a descriptor of the
	 * last test may still have been closing: one more may fit). */
	rc = 0;
	while (nhold < EMFILE_ROOM + 8 &&
	    (rc = try_connect(&hold[nhold], err, sizeof(err))) == 0)
		nhold++;
	printf("agent at %d descriptors, limit %d: %d connections held, then "
	    "%s (%s)\n", n, n + EMFILE_ROOM, nhold, xtcmk_strerror(-rc), err);
	ASSERT_TRUE(nhold >= EMFILE_ROOM && nhold <= EMFILE_ROOM + 2);
	ASSERT_EQ(rc, -XTCMK_E_BUSY);
	ASSERT_CONTAINS(err, "out of file descriptors");

	cpu0 = agent_cpu();
	t0 = now_ms();
	for (i = 0; i < EMFILE_TRIES; i++) {
		rc = try_connect(&c, err, sizeof(err));
		if (rc == -XTCMK_E_BUSY &&
		    strstr(err, "out of file descriptors") != NULL)
			busy++;
		else if (rc == 0)
			xc_close(&c);
	}
	ms = now_ms() - t0;
	/* Nothing is left waiting: the agent must idle now. */
	usleep(1000000);
	cpu1 = agent_cpu();
	printf("%d of %d more connections answered BUSY in %lld ms; agent CPU "
	    "%lld ticks over the next second\n", busy, EMFILE_TRIES, ms,
	    cpu1 - cpu0);
	ASSERT_EQ(busy, EMFILE_TRIES);
	ASSERT_TRUE(ms < CALL_MS);
	ASSERT_TRUE(cpu1 - cpu0 < 50);	/* no busy loop (100 ticks = 1 s) */
	/* One warning for all of them (rate-limited). */
	ASSERT_EQ(count_lines(A.log, "answering new connections BUSY"), 1);

	for (i = 0; i < nhold; i++)
		xc_close(&hold[i]);
	ASSERT_EQ(prlimit(A.pid, RLIMIT_NOFILE, &back, NULL), 0);
	after = stat_of("\"out_of_fds\"");
	ASSERT_EQ(after - before, EMFILE_TRIES + 1);
	rc = root_decide(&ms);
	ASSERT_EQ(rc, XTCMK_OK);
}

int
main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (geteuid() != 0) {
		printf("fdlimit: skipped (needs root to run other uids)\n");
		return 77;
	}
	if (setup() == -1) {
		fprintf(stderr, "cannot set up the agent (see %s)\n", A.log);
		ASSERT_TRUE(0);
		agent_cleanup(&A);
		return t_done();
	}
	test_limits();
	test_emfile();
	agent_cleanup(&A);
	return t_done();
}
