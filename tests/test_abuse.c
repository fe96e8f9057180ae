/*
 * test_abuse.c - the agent's socket against clients that misbehave, with
 * small limits (max_connections 300, max_connections_per_uid 250,
 * idle_timeout 2 s, request_timeout 1 s, max_frame 4096): oversized
 * frames, random bytes, slowloris partial headers, idle connections,
 * connections past both limits, a client that never reads its replies and
 * a uid that is not allowed.  All the while a well-behaved client keeps
 * asking for decisions through libxtcmk; its latency is measured, and the
 * agent's memory must stay bounded.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "t.h"
#include "wire.h"
#include "xtcmk.h"

#define MAX_CONN	300
#define MAX_PER_UID	250
#define IDLE_S		2
#define REQ_S		1
#define MAX_FRAME	4096
#define SLOW_CONNS	50
#define IDLE_CONNS	200
#define OTHER_UID	65534		/* allowed in [access] data_uids */
#define DENIED_UID	65533		/* not allowed */
#define SLACK_MS	1500		/* scheduling slack on timeouts */
#define P99_MAX_MS	200.0
#define RSS_GROWTH_MAX	(64LL * 1024)	/* KiB */
#define LAT_MAX		200000
#define CUSTOMER	"abuse-1"
#define TENANT		"55555555-5555-4555-8555-555555555555"
#define KEY_URI		"https://demo.vault.local/keys/abuse"
#define OUT_MAX		16384

static struct agent A;

/* The well-behaved client. */
static atomic_int lat_stop, lat_on;
static double lat_ms[LAT_MAX];
static int lat_n, lat_fail, lat_last_err;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *
latency_main(void *arg)
{
	struct xtcmk_decision *d;
	struct xtcmk *h;
	double t0;
	int rc;

	(void)arg;
	if (xtcmk_open(A.sock, 5000, &h) != XTCMK_OK) {
		lat_fail++;
		return NULL;
	}
	while (!atomic_load(&lat_stop)) {
		t0 = now_ms();
		d = NULL;
		rc = xtcmk_decide(h, CUSTOMER, &d);
		if (rc == XTCMK_OK && xtcmk_decision_u64(d, XTCMK_F_SERVED,
		    0) == 1) {
			if (atomic_load(&lat_on) && lat_n < LAT_MAX)
				lat_ms[lat_n++] = now_ms() - t0;
		} else {
			lat_fail++;
			lat_last_err = rc;
			fprintf(stderr, "well-behaved client: %s (%s)\n",
			    xtcmk_strerror(rc), xtcmk_last_error());
		}
		xtcmk_decision_free(d);
		usleep(2000);
	}
	xtcmk_close(h);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Resident set of the agent, KiB (-1 if unknown). */
static long long
proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = atoll(line + n + 1);
	fclose(f);
	return v;
}

/* --- raw sockets -------------------------------------------------------- */

static int
raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(A.sock) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, A.sock, strlen(A.sock));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Wait up to `ms` for the agent to close `fd`, reading (and keeping the
 * first header of) whatever it sends first.  Returns the time it took, or
 * -1 if the connection is still open at the end.
 */
static double
wait_closed(int fd, int ms, struct xw_hdr *ret_first)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t buf[8192], hdr[XW_HDR_LEN];
	double t0 = now_ms(), left;
	size_t got = 0;
	ssize_t n;

	if (ret_first != NULL)
		memset(ret_first, 0, sizeof(*ret_first));
	for (;;) {
		if ((left = t0 + ms - now_ms()) <= 0)
			return -1;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n == -1 && errno == ECONNRESET))
			return now_ms() - t0;
		if (n < 0)
			continue;
		if (got < XW_HDR_LEN) {
			size_t k = (size_t)n < XW_HDR_LEN - got ? (size_t)n :
			    XW_HDR_LEN - got;

			memcpy(hdr + got, buf, k);
			got += k;
			if (got == XW_HDR_LEN && ret_first != NULL)
				(void)xw_hdr_decode(hdr, XW_PAYLOAD_MAX,
				    ret_first);
		}
	}
}

/* Is fd still open from the agent's side (no EOF pending)? */
static int
still_open(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 0;
}

static void
put_hdr(uint8_t *buf, uint32_t len, uint16_t type, uint32_t reqid)
{
	struct xw_hdr h = { .len = len, .type = type, .reqid = reqid };

	xw_hdr_encode(buf, &h);
}

/* --- setup ------------------------------------------------------------- */

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

static int
setup(void)
{
	char extra[512];

	snprintf(extra, sizeof(extra), "max_connections = %d\n"
	    "max_connections_per_uid = %d\nidle_timeout = %d\n"
	    "request_timeout = %d\nmax_frame = %d\n[access]\n"
	    "data_uids = 0, %d\n", MAX_CONN, MAX_PER_UID, IDLE_S, REQ_S,
	    MAX_FRAME, OTHER_UID);
	if (agent_init(&A, "wl-eu-1", extra) == -1)
		return -1;
	/* Let other uids reach the socket (it is 0666; the dir is 0700). */
	if (chmod(A.dir, 0711) == -1 || agent_start(&A) == -1)
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

/* --- the abuses -------------------------------------------------------- */

static void
test_oversized(void)
{
	uint8_t buf[XW_HDR_LEN];
	struct xw_hdr h;
	double t;
	int fd = raw_connect();

	ASSERT_TRUE(fd != -1);
	put_hdr(buf, MAX_FRAME + 1, XW_HELLO, 7);
	ASSERT_EQ(send(fd, buf, sizeof(buf), MSG_NOSIGNAL), sizeof(buf));
	t = wait_closed(fd, 2000, &h);
	printf("oversized frame: status %u, closed after %.1f ms\n",
	    h.status, t);
	ASSERT_EQ(h.status, XTCMK_E_TOOBIG);
	ASSERT_TRUE(t >= 0);
	close(fd);
}

static void
test_random(void)
{
	uint8_t buf[512];
	struct xw_hdr h;
	unsigned seed = 12345;
	int i, j, fd, closed = 0, protocol = 0;
	size_t len;

	for (i = 0; i < 40; i++) {
		if ((fd = raw_connect()) == -1)
			continue;
		len = 16 + (size_t)(rand_r(&seed) % (sizeof(buf) - 16));
		for (j = 0; j < (int)len; j++)
			buf[j] = (uint8_t)rand_r(&seed);
		if (i % 2 == 1) {
			/* A good header with garbage after it. */
			put_hdr(buf, (uint32_t)(len - XW_HDR_LEN), XW_HELLO,
			    (uint32_t)i);
		}
		(void)send(fd, buf, len, MSG_NOSIGNAL);
		if (wait_closed(fd, REQ_S * 1000 + SLACK_MS, &h) >= 0)
			closed++;
		protocol += h.status == XTCMK_E_PROTOCOL ||
		    h.status == XTCMK_E_UNSUPPORTED ||
		    h.status == XTCMK_E_TOOBIG;
		close(fd);
	}
	printf("random bytes: %d/40 connections closed, %d with an error "
	    "reply\n", closed, protocol);
	ASSERT_EQ(closed, 40);
	ASSERT_INT(protocol, >=, 20);
}

static void
test_slowloris(void)
{
	int fds[SLOW_CONNS], i, opened = 0, dropped = 0;
	uint8_t hdr[XW_HDR_LEN];
	double t0, t, tmax = 0;

	put_hdr(hdr, 10, XW_HELLO, 1);
	for (i = 0; i < SLOW_CONNS; i++) {
		if ((fds[i] = raw_connect()) == -1)
			continue;
		opened++;
		(void)send(fds[i], hdr, 10, MSG_NOSIGNAL);
	}
	t0 = now_ms();
	usleep(REQ_S * 1000 / 2 * 1000);
	for (i = 0; i < SLOW_CONNS; i++)
		if (fds[i] != -1 && !still_open(fds[i]))
			T_FAIL("slowloris %d dropped before request_timeout",
			    i);
	for (i = 0; i < SLOW_CONNS; i++) {
		if (fds[i] == -1)
			continue;
		t = wait_closed(fds[i], REQ_S * 1000 + SLACK_MS, NULL);
		if (t >= 0) {
			dropped++;
			if (now_ms() - t0 > tmax)
				tmax = now_ms() - t0;
		}
		close(fds[i]);
	}
	printf("slowloris: %d connections with 10 header bytes, %d dropped, "
	    "the last %.0f ms after (request_timeout %d s)\n", opened,
	    dropped, tmax, REQ_S);
	ASSERT_EQ(opened, SLOW_CONNS);
	ASSERT_EQ(dropped, SLOW_CONNS);
	ASSERT_TRUE(tmax <= REQ_S * 1000 + SLACK_MS);
}

static void
test_idle(void)
{
	int fds[IDLE_CONNS], i, opened = 0, held = 0, dropped = 0;
	double t0, tmax = 0, t;

	for (i = 0; i < IDLE_CONNS; i++)
		if ((fds[i] = raw_connect()) != -1)
			opened++;
	t0 = now_ms();
	usleep(IDLE_S * 1000 / 2 * 1000);
	for (i = 0; i < IDLE_CONNS; i++)
		held += fds[i] != -1 && still_open(fds[i]);
	for (i = 0; i < IDLE_CONNS; i++) {
		if (fds[i] == -1)
			continue;
		t = wait_closed(fds[i], IDLE_S * 1000 + SLACK_MS, NULL);
		if (t >= 0) {
			dropped++;
			if (now_ms() - t0 > tmax)
				tmax = now_ms() - t0;
		}
		close(fds[i]);
	}
	printf("idle: %d connections, %d held at %d ms, %d dropped, the last "
	    "%.0f ms after (idle_timeout %d s)\n", opened, held,
	    IDLE_S * 1000 / 2, dropped, tmax, IDLE_S);
	ASSERT_EQ(opened, IDLE_CONNS);
	ASSERT_EQ(held, IDLE_CONNS);
	ASSERT_EQ(dropped, IDLE_CONNS);
	ASSERT_TRUE(tmax <= IDLE_S * 1000 + SLACK_MS);
}

/*
 * Open connections (with the handshake) until the agent refuses one; the
 * number opened, and the refusal's code in *ret_refused.
 */
static int
open_until_refused(struct xc_conn *cs, int max, int *ret_refused,
    char *msg, size_t msglen)
{
	int i, rc = 0;

	for (i = 0; i < max; i++) {
		rc = xc_connect(A.sock, xc_deadline(5000), msg, msglen,
		    &cs[i]);
		if (rc < 0)
			break;
	}
	*ret_refused = -rc;
	return i;
}

/* In a child running as OTHER_UID: fill the rest up to max_connections. */
static int
other_uid_child(void)
{
	static struct xc_conn cs[MAX_CONN];
	struct xtcmk_decision *d = NULL;
	uint8_t buf[XW_HDR_LEN];
	char msg[XC_ERR_MAX];
	struct xtcmk *h;
	struct xw_hdr hd;
	int n, refused, fd, rc;

	if (setgid(OTHER_UID) == -1 || setuid(OTHER_UID) == -1)
		return 90;
	n = open_until_refused(cs, MAX_CONN, &refused, msg, sizeof(msg));
	printf("uid %d: %d connections, then %s (%s)\n", OTHER_UID, n,
	    xtcmk_strerror(refused), msg);
	if (refused != XTCMK_E_BUSY || strstr(msg, "max_connections") == NULL)
		return 91;
	/* Through libxtcmk. */
	if (xtcmk_open(A.sock, 3000, &h) != XTCMK_OK)
		return 92;
	rc = xtcmk_decide(h, CUSTOMER, &d);
	xtcmk_close(h);
	if (rc != XTCMK_E_BUSY)
		return 93;
	/* And the raw reply: a frame with status BUSY, then EOF. */
	if ((fd = raw_connect()) == -1 ||
	    recv(fd, buf, sizeof(buf), MSG_WAITALL) != (ssize_t)sizeof(buf) ||
	    xw_hdr_decode(buf, XW_PAYLOAD_MAX, &hd) != 0 ||
	    hd.status != XTCMK_E_BUSY)
		return 94;
	close(fd);
	fflush(stdout);
	return n;
}

static void
test_limits(void)
{
	static struct xc_conn cs[MAX_CONN];
	struct xtcmk_decision *d = NULL;
	char msg[XC_ERR_MAX];
	struct xtcmk *h;
	int n, refused, i, st = 0, rc;
	pid_t pid;

	n = open_until_refused(cs, MAX_CONN, &refused, msg, sizeof(msg));
	printf("uid %d: %d connections (+1 of the well-behaved client), then "
	    "%s (%s)\n", (int)getuid(), n, xtcmk_strerror(refused), msg);
	ASSERT_EQ(refused, XTCMK_E_BUSY);
	ASSERT_CONTAINS(msg, "max_connections_per_uid");
	ASSERT_INT(n, >=, MAX_PER_UID - 2);
	ASSERT_INT(n, <=, MAX_PER_UID);
	ASSERT_EQ(xtcmk_open(A.sock, 3000, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, CUSTOMER, &d), XTCMK_E_BUSY);
	xtcmk_close(h);

	if (getuid() != 0) {
		printf("max_connections across uids: skipped (not root)\n");
	} else {
		fflush(stdout);
		pid = fork();
		ASSERT_TRUE(pid != -1);
		if (pid == 0)
			_exit(other_uid_child());
		waitpid(pid, &st, 0);
		rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		printf("max_connections: the other uid opened %d (child exit "
		    "%d), total %d\n", rc, rc, rc + n + 1);
		ASSERT_TRUE(rc >= 0 && rc < 90);
		/* Everything together stopped at max_connections. */
		ASSERT_INT(rc + n + 1, >=, MAX_CONN - 2);
		ASSERT_INT(rc + n + 1, <=, MAX_CONN);
	}
	for (i = 0; i < n; i++)
		xc_close(&cs[i]);
}

/*
 * A client that pipelines requests and never reads: the agent's reply
 * send blocks, and after request_timeout it drops the connection.
 */
static void
test_nonreader(void)
{
	uint8_t frame[256];
	struct xc_conn c;
	struct xw_buf b;
	struct pollfd p;
	char msg[XC_ERR_MAX];
	double t_stall = 0, t_closed = -1, t0;
	long sent = 0;
	ssize_t n;
	int fd, rc, sz = 4096;

	rc = xc_connect(A.sock, xc_deadline(5000), msg, sizeof(msg), &c);
	ASSERT_EQ(rc, 0);
	if (rc != 0)
		return;
	fd = c.fd;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	xw_buf_init(&b, frame + XW_HDR_LEN, sizeof(frame) - XW_HDR_LEN);
	xw_put_str(&b, XT_CUSTOMER, CUSTOMER);
	t0 = now_ms();
	for (;;) {
		put_hdr(frame, (uint32_t)b.len, XW_DECIDE, (uint32_t)sent + 2);
		n = send(fd, frame, XW_HDR_LEN + b.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == (ssize_t)(XW_HDR_LEN + b.len)) {
			sent++;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (t_stall == 0)
				t_stall = now_ms();
			p.fd = fd;
			p.events = POLLOUT | POLLRDHUP;
			p.revents = 0;
			(void)poll(&p, 1, 100);
			if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) {
				t_closed = now_ms();
				break;
			}
			if (now_ms() - t0 > 10000 + REQ_S * 1000)
				break;
			continue;
		}
		/* EPIPE/ECONNRESET: the agent dropped us. */
		t_closed = now_ms();
		break;
	}
	printf("non-reader: %ld requests sent unread, stalled after %.0f ms, "
	    "dropped %.0f ms after the stall (request_timeout %d s)\n", sent,
	    t_stall > 0 ? t_stall - t0 : -1.0, t_closed > 0 && t_stall > 0 ?
	    t_closed - t_stall : -1.0, REQ_S);
	ASSERT_TRUE(t_stall > 0);
	ASSERT_TRUE(t_closed > 0);
	ASSERT_TRUE(t_closed - t_stall <= REQ_S * 1000 + SLACK_MS);
	xc_close(&c);
}

static void
test_wrong_uid(void)
{
	struct xtcmk_decision *d = NULL;
	struct xtcmk *h;
	pid_t pid;
	int st = 0, rc;

	if (getuid() != 0) {
		printf("wrong uid: skipped (not root)\n");
		return;
	}
	pid = fork();
	ASSERT_TRUE(pid != -1);
	if (pid == 0) {
		if (setgid(DENIED_UID) == -1 || setuid(DENIED_UID) == -1)
			_exit(90);
		if (xtcmk_open(A.sock, 3000, &h) != XTCMK_OK)
			_exit(91);
		rc = xtcmk_decide(h, CUSTOMER, &d);
		xtcmk_close(h);
		_exit(rc);
	}
	waitpid(pid, &st, 0);
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	printf("wrong uid %d: %s\n", DENIED_UID, xtcmk_strerror(rc));
	ASSERT_EQ(rc, XTCMK_E_DENIED);
}

int
main(void)
{
	pthread_t lat;
	long long rss0, rss1, rss_peak = 0;
	double p50, p99, pmax;
	int started, fd;

	if (setup() == -1) {
		fprintf(stderr, "cannot set up the agent (see %s)\n", A.log);
		ASSERT_TRUE(0);
		agent_cleanup(&A);
		return t_done();
	}
	started = pthread_create(&lat, NULL, latency_main, NULL) == 0;
	ASSERT_TRUE(started);
	usleep(300000);
	rss0 = proc_kib(A.pid, "VmRSS");
	atomic_store(&lat_on, 1);	/* measure during the abuse only */

	test_oversized();
	test_random();
	test_slowloris();
	test_idle();
	test_limits();
	if (proc_kib(A.pid, "VmRSS") > rss_peak)
		rss_peak = proc_kib(A.pid, "VmRSS");
	test_nonreader();
	test_wrong_uid();

	atomic_store(&lat_stop, 1);
	if (started)
		pthread_join(lat, NULL);
	/* Let the dropped connections' threads finish. */
	usleep(500000);
	rss1 = proc_kib(A.pid, "VmRSS");
	qsort(lat_ms, (size_t)lat_n, sizeof(lat_ms[0]), cmp_double);
	p50 = lat_n > 0 ? lat_ms[lat_n / 2] : -1;
	p99 = lat_n > 0 ? lat_ms[lat_n * 99 / 100] : -1;
	pmax = lat_n > 0 ? lat_ms[lat_n - 1] : -1;
	printf("well-behaved client during the abuse: %d decisions, %d "
	    "failed, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", lat_n,
	    lat_fail, p50, p99, pmax);
	printf("agent VmRSS: %lld KiB before, %lld KiB at the peak, %lld KiB "
	    "after\n", rss0, rss_peak, rss1);
	ASSERT_INT(lat_n, >=, 100);
	ASSERT_EQ(lat_fail, 0);
	ASSERT_TRUE(p99 >= 0 && p99 < P99_MAX_MS);
	ASSERT_TRUE(rss0 > 0 && rss1 > 0);
	ASSERT_INT(rss1 - rss0, <, RSS_GROWTH_MAX);
	/* The agent is still there and still answers. */
	ASSERT_TRUE((fd = raw_connect()) != -1);
	if (fd != -1)
		close(fd);
	ASSERT_EQ(ctl_ok("check"), 0);
	ASSERT_EQ(agent_stop(&A), 0);
	agent_cleanup(&A);
	return t_done();
}
