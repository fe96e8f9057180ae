/*
 * test_module.c - libxtcmk's transport, tested without the agent.
 *
 * The servers here are transport test peers living in this process: one
 * speaks the protocol correctly (fixed answers), the others misbehave on
 * purpose (silence, garbage, wrong magic, oversized length, wrong request
 * id, hang-ups mid-frame).  Decisions of the real agent are tested by the
 * integration tests.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "xtcmk.h"
/* The codec for the test peers; libxtcmk.so keeps its own copy hidden. */
#include "wire.h"

#define SRV_CONN_MAX	64

enum mode {
	M_GOOD,
	M_SILENT,		/* never answers, not even HELLO */
	M_SILENT_AFTER_HELLO,
	M_BAD_MAGIC,
	M_OVERSIZE,
	M_WRONG_REQID,
	M_WRONG_TYPE,
	M_GARBAGE,
	M_CLOSE_MID,		/* half a header, then hang up */
	M_CLOSE_NO_REPLY,	/* read the request, hang up */
	M_BAD_FIELD,		/* truncated field in the payload */
	M_BAD_STRING,		/* decision string with a NUL byte */
	M_BAD_U64,		/* XT_SERVED of 4 bytes */
	M_ONE_THEN_CLOSE,	/* answer one request per connection */
};

struct srv {
	char		 path[108];
	int		 lfd;
	pthread_t	 thr;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	enum mode	 mode;
	int		 stop;
	int		 active;		/* handler threads running */
	int		 nconn;
	int		 closed;		/* connections we hung up */
	int		 fds[SRV_CONN_MAX];
	pid_t		 peer_pid[SRV_CONN_MAX];
	int		 reqs[SRV_CONN_MAX];	/* requests after HELLO */
};

struct hctx {
	struct srv	*s;
	int		 idx;
	int		 fd;
};

static char tmpdir[64];

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int
read_n(int fd, void *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = recv(fd, (char *)buf + got, n - got, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
write_n(int fd, const void *buf, size_t n)
{
	size_t off = 0;
	ssize_t r;

	while (off < n) {
		r = send(fd, (const char *)buf + off, n - off, MSG_NOSIGNAL);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

static int
reply(int fd, uint16_t type, uint16_t status, uint32_t reqid,
    const void *p, size_t len)
{
	uint8_t hb[XW_HDR_LEN];
	struct xw_hdr h = { (uint32_t)len, type, status, reqid };

	xw_hdr_encode(hb, &h);
	if (write_n(fd, hb, sizeof(hb)) == -1)
		return -1;
	return len > 0 ? write_n(fd, p, len) : 0;
}

/* The well-behaved answers. */
static int
answer_good(int fd, const struct xw_hdr *h, const uint8_t *p, enum mode m)
{
	uint8_t out[4096], dek[XTCMK_DEK_LEN];
	char cust[XW_CUSTOMER_MAX + 1] = "", msg[200];
	struct xw_buf b;
	struct xw_field f;

	if (xw_find(p, h->len, XT_CUSTOMER, &f) == 1 &&
	    f.len <= XW_CUSTOMER_MAX) {
		memcpy(cust, f.val, f.len);
		cust[f.len] = '\0';
	}
	xw_buf_init(&b, out, sizeof(out));
	memset(dek, 0x42, sizeof(dek));
	switch (h->type) {
	case XW_DECIDE:
		if (strcmp(cust, "missing") == 0) {
			snprintf(msg, sizeof(msg), "no customer \"%s\": add "
			    "it with xtcmkctl customer add", cust);
			xw_put_str(&b, XT_MESSAGE, msg);
			return reply(fd, h->type, XTCMK_E_NOT_FOUND,
			    h->reqid, b.data, b.len);
		}
		xw_put_str(&b, XT_CUSTOMER, cust);
		xw_put_str(&b, XT_TENANT, "tenant-1");
		if (m == M_BAD_STRING)
			xw_put(&b, XT_APP, "app\0x", 5);
		else
			xw_put_str(&b, XT_APP, "app-eu-1");
		xw_put_str(&b, XT_WORKLOAD, "wl-a");
		xw_put_str(&b, XT_WORKLOAD, "wl-b");
		if (m == M_BAD_U64)
			xw_put(&b, XT_SERVED, "\0\0\0\1", 4);
		else
			xw_put_u64(&b, XT_SERVED, 1);
		xw_put_str(&b, XT_ROLE_MECHANISM, "rbac");
		xw_put_str(&b, XT_KEY_MODE, "auto");
		xw_put_u64(&b, XT_REFRESH_S, 3600);
		xw_put_str(&b, 50, "future field");
		xw_put_str(&b, XT_MESSAGE, "ignored");
		break;
	case XW_DEK_NEW:
		xw_put(&b, XT_DEK, dek, sizeof(dek));
		xw_put_str(&b, XT_BLOB, "blob-v1");
		xw_put_str(&b, XT_KEY_ID, "https://kv/keys/k/v1");
		break;
	case XW_DEK_UNWRAP:
		if (xw_find(p, h->len, XT_BLOB, &f) == 1 && f.len == 3 &&
		    memcmp(f.val, "bad", 3) == 0) {
			xw_put_str(&b, XT_MESSAGE, "blob is corrupt");
			return reply(fd, h->type, XTCMK_E_BAD_BLOB, h->reqid,
			    b.data, b.len);
		}
		xw_put(&b, XT_DEK, dek, sizeof(dek));
		break;
	case XW_DEK_REWRAP:
		xw_put_str(&b, XT_BLOB, "blob-v2");
		break;
	case XW_KEY_STATUS:
		xw_put_str(&b, XT_KEY_STATE, "active");
		xw_put_str(&b, XT_KEY_REASON, "key enabled in the vault");
		break;
	default:
		break;
	}
	return reply(fd, h->type, 0, h->reqid, b.data, b.len);
}

/* Serve one connection until EOF.  Returns when the peer or we hang up. */
static void
serve_conn(struct srv *s, int idx, int fd)
{
	uint8_t hb[XW_HDR_LEN], *p = NULL, out[256], junk[32];
	struct xw_hdr h;
	struct xw_buf b;
	enum mode m;

	for (;;) {
		free(p);
		p = NULL;
		if (read_n(fd, hb, sizeof(hb)) == -1 ||
		    xw_hdr_decode(hb, XW_PAYLOAD_MAX, &h) != 0)
			break;
		if ((p = malloc(h.len + 1)) == NULL ||
		    read_n(fd, p, h.len) == -1)
			break;
		pthread_mutex_lock(&s->lock);
		m = s->mode;
		pthread_mutex_unlock(&s->lock);
		if (h.type == XW_HELLO) {
			if (m == M_SILENT)
				continue;
			xw_buf_init(&b, out, sizeof(out));
			xw_put_u64(&b, XT_VERSION, 1);
			xw_put_str(&b, XT_AGENT, "test-peer");
			if (reply(fd, h.type, 0, h.reqid, b.data, b.len) == -1)
				break;
			continue;
		}
		pthread_mutex_lock(&s->lock);
		s->reqs[idx]++;
		pthread_mutex_unlock(&s->lock);
		switch (m) {
		case M_SILENT:
		case M_SILENT_AFTER_HELLO:
			continue;
		case M_BAD_MAGIC:
			xw_hdr_encode(hb, &(struct xw_hdr){ 0, h.type, 0,
			    h.reqid });
			hb[12] = 'Z';
			(void)write_n(fd, hb, sizeof(hb));
			continue;
		case M_OVERSIZE:
			xw_hdr_encode(hb, &(struct xw_hdr){ 0, h.type, 0,
			    h.reqid });
			hb[0] = 0x7f;	/* len ~2 GB */
			(void)write_n(fd, hb, sizeof(hb));
			continue;
		case M_WRONG_REQID:
			(void)reply(fd, h.type, 0, h.reqid + 1, NULL, 0);
			continue;
		case M_WRONG_TYPE:
			(void)reply(fd, XW_PING, 0, h.reqid, NULL, 0);
			continue;
		case M_GARBAGE:
			memcpy(junk, "HTTP/1.1 400 Bad Request\r\n\r\n....", 32);
			(void)write_n(fd, junk, sizeof(junk));
			continue;
		case M_CLOSE_MID:
			xw_hdr_encode(hb, &(struct xw_hdr){ 100, h.type, 0,
			    h.reqid });
			(void)write_n(fd, hb, 8);
			goto hangup;
		case M_CLOSE_NO_REPLY:
			goto hangup;
		case M_BAD_FIELD:
			memcpy(junk, "\0\1\0\0\0\x20" "abc", 9);
			(void)reply(fd, h.type, 0, h.reqid, junk, 9);
			continue;
		case M_ONE_THEN_CLOSE:
			(void)answer_good(fd, &h, p, m);
			goto hangup;
		default:
			if (answer_good(fd, &h, p, m) == -1)
				goto out;
			continue;
		}
	}
	goto out;
hangup:
	(void)shutdown(fd, SHUT_RDWR);
	pthread_mutex_lock(&s->lock);
	s->closed++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
out:
	free(p);
}

static void *
handler(void *arg)
{
	struct hctx *c = arg;
	struct srv *s = c->s;

	serve_conn(s, c->idx, c->fd);
	pthread_mutex_lock(&s->lock);
	s->active--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	free(c);
	return NULL;
}

static void *
acceptor(void *arg)
{
	struct srv *s = arg;
	struct ucred cred;
	socklen_t cl;
	struct hctx *c;
	pthread_t t;
	int fd, nfd;

	for (;;) {
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fd <= 2) {	/* keep 0-2 free for the low-fd test */
			nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
			close(fd);
			fd = nfd;
		}
		pthread_mutex_lock(&s->lock);
		if (s->stop || s->nconn == SRV_CONN_MAX) {
			pthread_mutex_unlock(&s->lock);
			close(fd);
			if (s->stop)
				break;
			continue;
		}
		cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
			s->peer_pid[s->nconn] = cred.pid;
		s->fds[s->nconn] = fd;
		c = malloc(sizeof(*c));
		c->s = s;
		c->idx = s->nconn++;
		c->fd = fd;
		s->active++;
		pthread_mutex_unlock(&s->lock);
		if (pthread_create(&t, NULL, handler, c) != 0) {
			pthread_mutex_lock(&s->lock);
			s->active--;
			pthread_mutex_unlock(&s->lock);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int
listen_on(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		return -1;
	return fd;
}

static struct srv *
srv_start(const char *name, enum mode m)
{
	struct srv *s = calloc(1, sizeof(*s));

	snprintf(s->path, sizeof(s->path), "%s/%s", tmpdir, name);
	s->mode = m;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->lfd = listen_on(s->path);
	if (s->lfd == -1 || listen(s->lfd, 64) == -1) {
		perror("test server");
		exit(2);
	}
	pthread_create(&s->thr, NULL, acceptor, s);
	return s;
}

static void
srv_stop(struct srv *s)
{
	int i;

	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_mutex_unlock(&s->lock);
	shutdown(s->lfd, SHUT_RDWR);	/* wakes accept() */
	pthread_join(s->thr, NULL);
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nconn; i++)
		shutdown(s->fds[i], SHUT_RDWR);
	while (s->active > 0)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->nconn; i++)
		close(s->fds[i]);
	close(s->lfd);
	unlink(s->path);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

static void
srv_mode(struct srv *s, enum mode m)
{
	pthread_mutex_lock(&s->lock);
	s->mode = m;
	pthread_mutex_unlock(&s->lock);
}

/* Read a counter the server threads write. */
static int
srv_get(struct srv *s, const int *field)
{
	int v;

	pthread_mutex_lock(&s->lock);
	v = *field;
	pthread_mutex_unlock(&s->lock);
	return v;
}

static int
srv_nconn(struct srv *s)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = s->nconn;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Our client-side sockets: unix sockets without a name. */
static int
client_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	struct sockaddr_un sun;
	socklen_t sl;
	struct stat st;
	int n = 0, fd;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstat(fd, &st) == -1 ||
		    !S_ISSOCK(st.st_mode))
			continue;
		sl = sizeof(sun);
		memset(&sun, 0, sizeof(sun));
		if (getsockname(fd, (struct sockaddr *)&sun, &sl) == -1 ||
		    sun.sun_family != AF_UNIX || sun.sun_path[0] != '\0')
			continue;
		if (n < max)
			out[n++] = fd;
	}
	closedir(d);
	return n;
}

static void
test_static_api(void)
{
	const struct xtcmk_functions *t = xtcmk_get_functions();
	xtcmk_get_functions_fn fn;
	const char *s;
	void *lib;
	char path[512];
	ssize_t n;
	int i, j, distinct = 1;

	for (i = 0; i < XTCMK__RESULT_COUNT; i++) {
		s = xtcmk_strerror(i);
		ASSERT_TRUE(s != NULL && *s != '\0');
		ASSERT_TRUE(strcmp(s, "unknown error") != 0);
		for (j = 0; j < i; j++)
			if (strcmp(s, xtcmk_strerror(j)) == 0)
				distinct = 0;
	}
	ASSERT_TRUE(distinct);
	ASSERT_STR(xtcmk_strerror(-1), "unknown error");
	ASSERT_STR(xtcmk_strerror(XTCMK__RESULT_COUNT), "unknown error");
	ASSERT_STR(xtcmk_strerror(4242), "unknown error");

	ASSERT_TRUE(t != NULL);
	ASSERT_EQ(t->api_version, XTCMK_API_VERSION);
	ASSERT_EQ(t->size, sizeof(struct xtcmk_functions));
	ASSERT_TRUE(t->open == xtcmk_open && t->close == xtcmk_close);
	ASSERT_TRUE(t->decide == xtcmk_decide &&
	    t->decision_free == xtcmk_decision_free);
	ASSERT_TRUE(t->decision_str == xtcmk_decision_str &&
	    t->decision_u64 == xtcmk_decision_u64 &&
	    t->decision_count == xtcmk_decision_count &&
	    t->decision_item == xtcmk_decision_item);
	ASSERT_TRUE(t->strerror == xtcmk_strerror &&
	    t->last_error == xtcmk_last_error);
	ASSERT_TRUE(t->dek_new == xtcmk_dek_new &&
	    t->dek_unwrap == xtcmk_dek_unwrap &&
	    t->dek_rewrap == xtcmk_dek_rewrap &&
	    t->key_status == xtcmk_key_status);

	/* dlopen path, as hosts use it; internals stay hidden. */
	/* The library built next to this test: ../module/libxtcmk.so. */
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	for (i = 0; i < 2 && strrchr(path, '/') != NULL; i++)
		*strrchr(path, '/') = '\0';
	strncat(path, "/module/libxtcmk.so", sizeof(path) - strlen(path) - 1);
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ASSERT_TRUE(lib != NULL);
	if (lib != NULL) {
		*(void **)&fn = dlsym(lib, "xtcmk_get_functions");
		ASSERT_TRUE(fn != NULL);
		if (fn != NULL)
			ASSERT_EQ(fn()->api_version, XTCMK_API_VERSION);
		ASSERT_TRUE(dlsym(lib, "xc_connect") == NULL);
		ASSERT_TRUE(dlsym(lib, "xw_hdr_decode") == NULL);
		dlclose(lib);
	}
}

static void
test_invalid_args(void)
{
	struct xtcmk *h = NULL;
	struct xtcmk_decision *d = NULL;
	uint8_t dek[XTCMK_DEK_LEN], blob[XTCMK_BLOB_MAX + 1];
	size_t blen = sizeof(blob);
	char longc[XW_CUSTOMER_MAX + 2], longp[200], state[16];

	memset(longc, 'c', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = '\0';
	memset(longp, 'p', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';

	ASSERT_EQ(xtcmk_open("/x", 0, NULL), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_open(longp, 0, &h), XTCMK_E_INVAL);
	ASSERT_TRUE(h == NULL);
	ASSERT_EQ(xtcmk_open("", 0, &h), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_open("/nonexistent/x.sock", 100, &h), XTCMK_OK);

	ASSERT_EQ(xtcmk_decide(NULL, "c", &d), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_decide(h, NULL, &d), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_decide(h, "", &d), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_decide(h, longc, &d), XTCMK_E_INVAL);
	ASSERT_CONTAINS(xtcmk_last_error(), "1..128");
	ASSERT_EQ(xtcmk_decide(h, "c", NULL), XTCMK_E_INVAL);
	ASSERT_TRUE(d == NULL);

	ASSERT_EQ(xtcmk_dek_new(NULL, "c", dek, blob, &blen), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_new(h, "c", NULL, blob, &blen), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_new(h, "c", dek, NULL, &blen), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_new(h, "c", dek, blob, NULL), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_new(h, "", dek, blob, &blen), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "c", blob, 0, dek), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "c", blob, XTCMK_BLOB_MAX + 1, dek),
	    XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "c", NULL, 10, dek), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "c", blob, 10, NULL), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_rewrap(h, "c", blob, 10, NULL, &blen),
	    XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_rewrap(h, "c", blob, 10, blob, NULL),
	    XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_dek_rewrap(h, longc, blob, 10, blob, &blen),
	    XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_key_status(NULL, "c", state, sizeof(state), NULL, 0),
	    XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_key_status(h, NULL, state, sizeof(state), NULL, 0),
	    XTCMK_E_INVAL);

	ASSERT_TRUE(xtcmk_decision_str(NULL, XTCMK_F_APP) == NULL);
	ASSERT_EQ(xtcmk_decision_u64(NULL, XTCMK_F_SERVED, 7), 7);
	ASSERT_EQ(xtcmk_decision_count(NULL, XTCMK_F_WORKLOAD), 0);
	ASSERT_TRUE(xtcmk_decision_item(NULL, XTCMK_F_WORKLOAD, 0) == NULL);
	xtcmk_decision_free(NULL);
	xtcmk_close(h);
	xtcmk_close(NULL);
}

static void
test_unavailable(void)
{
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	char path[128];
	long t0;
	int fd;

	/* No socket at all: fast UNAVAILABLE, message names the path. */
	snprintf(path, sizeof(path), "%s/none.sock", tmpdir);
	ASSERT_EQ(xtcmk_open(path, 2000, &h), XTCMK_OK);
	t0 = now_ms();
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_UNAVAILABLE);
	ASSERT_INT(now_ms() - t0, <, 100);
	ASSERT_CONTAINS(xtcmk_last_error(), "none.sock");
	ASSERT_TRUE(d == NULL);
	xtcmk_close(h);

	/* $XTCMK_SOCKET picks the default path. */
	setenv("XTCMK_SOCKET", path, 1);
	ASSERT_EQ(xtcmk_open(NULL, 0, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_UNAVAILABLE);
	ASSERT_CONTAINS(xtcmk_last_error(), path);
	xtcmk_close(h);
	unsetenv("XTCMK_SOCKET");

	/* Bound but not listening: ECONNREFUSED. */
	snprintf(path, sizeof(path), "%s/refuse.sock", tmpdir);
	fd = listen_on(path);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(xtcmk_open(path, 2000, &h), XTCMK_OK);
	t0 = now_ms();
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_UNAVAILABLE);
	ASSERT_INT(now_ms() - t0, <, 100);
	xtcmk_close(h);
	close(fd);
	unlink(path);

	/* A regular file where the socket should be. */
	snprintf(path, sizeof(path), "%s/file.sock", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	ASSERT_EQ(xtcmk_open(path, 2000, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_DENIED);
	ASSERT_CONTAINS(xtcmk_last_error(), "not a socket");
	xtcmk_close(h);
	unlink(path);
}

static void
test_good(void)
{
	struct srv *s = srv_start("good.sock", M_GOOD);
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	uint8_t dek[XTCMK_DEK_LEN], blob[XTCMK_BLOB_MAX], nb[XTCMK_BLOB_MAX];
	uint8_t want[XTCMK_DEK_LEN];
	size_t blen, nlen;
	char state[3], reason[64], c128[XW_CUSTOMER_MAX + 1];

	ASSERT_EQ(xtcmk_open(s->path, 2000, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, "acme", &d), XTCMK_OK);
	ASSERT_TRUE(d != NULL);
	if (d != NULL) {
		ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_CUSTOMER), "acme");
		ASSERT_STR(xtcmk_decision_str(d, XTCMK_F_APP), "app-eu-1");
		ASSERT_EQ(xtcmk_decision_count(d, XTCMK_F_WORKLOAD), 2);
		ASSERT_STR(xtcmk_decision_item(d, XTCMK_F_WORKLOAD, 0), "wl-a");
		ASSERT_STR(xtcmk_decision_item(d, XTCMK_F_WORKLOAD, 1), "wl-b");
		ASSERT_TRUE(xtcmk_decision_item(d, XTCMK_F_WORKLOAD, 2) ==
		    NULL);
		ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_SERVED, 9), 1);
		ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_REFRESH_S, 0), 3600);
		ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_GRACE_S, 77), 77);
		ASSERT_TRUE(xtcmk_decision_str(d, XTCMK_F_SERVED) == NULL);
		ASSERT_EQ(xtcmk_decision_u64(d, XTCMK_F_APP, 5), 5);
		ASSERT_TRUE(xtcmk_decision_str(d, XTCMK_F_ROLE_NAME) == NULL);
		ASSERT_STR(xtcmk_decision_str(d, (enum xtcmk_field)50),
		    "future field");
		xtcmk_decision_free(d);
	}
	memset(c128, 'x', XW_CUSTOMER_MAX);
	c128[XW_CUSTOMER_MAX] = '\0';
	ASSERT_EQ(xtcmk_decide(h, c128, &d), XTCMK_OK);
	xtcmk_decision_free(d);

	/* An agent error: status and message come through. */
	d = NULL;
	ASSERT_EQ(xtcmk_decide(h, "missing", &d), XTCMK_E_NOT_FOUND);
	ASSERT_TRUE(d == NULL);
	ASSERT_CONTAINS(xtcmk_last_error(), "xtcmkctl customer add");

	memset(want, 0x42, sizeof(want));
	blen = sizeof(blob);
	ASSERT_EQ(xtcmk_dek_new(h, "acme", dek, blob, &blen), XTCMK_OK);
	ASSERT_EQ(blen, 7);
	ASSERT_TRUE(memcmp(blob, "blob-v1", 7) == 0);
	ASSERT_TRUE(memcmp(dek, want, sizeof(dek)) == 0);
	blen = 3;
	memset(dek, 0, sizeof(dek));
	ASSERT_EQ(xtcmk_dek_new(h, "acme", dek, blob, &blen), XTCMK_E_TOOBIG);
	ASSERT_EQ(blen, 3);
	ASSERT_EQ(dek[0], 0);	/* outputs untouched on failure */

	memset(dek, 0, sizeof(dek));
	ASSERT_EQ(xtcmk_dek_unwrap(h, "acme", (const uint8_t *)"blob-v1", 7,
	    dek), XTCMK_OK);
	ASSERT_TRUE(memcmp(dek, want, sizeof(dek)) == 0);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "acme", (const uint8_t *)"bad", 3, dek),
	    XTCMK_E_BAD_BLOB);
	ASSERT_STR(xtcmk_last_error(), "blob is corrupt");

	nlen = sizeof(nb);
	ASSERT_EQ(xtcmk_dek_rewrap(h, "acme", (const uint8_t *)"blob-v1", 7,
	    nb, &nlen), XTCMK_OK);
	ASSERT_EQ(nlen, 7);
	ASSERT_TRUE(memcmp(nb, "blob-v2", 7) == 0);

	ASSERT_EQ(xtcmk_key_status(h, "acme", state, sizeof(state), reason,
	    sizeof(reason)), XTCMK_OK);
	ASSERT_STR(state, "ac");	/* truncated, terminated */
	ASSERT_STR(reason, "key enabled in the vault");
	ASSERT_EQ(xtcmk_key_status(h, "acme", NULL, 0, NULL, 0), XTCMK_OK);

	/* All of the above ran on one pooled connection. */
	ASSERT_EQ(srv_nconn(s), 1);
	xtcmk_close(h);
	srv_stop(s);
}

static void
test_timeouts(void)
{
	struct srv *s;
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	long t0, el;

	/* Accepts, never answers: the whole call takes timeout, no more. */
	s = srv_start("silent.sock", M_SILENT);
	ASSERT_EQ(xtcmk_open(s->path, 300, &h), XTCMK_OK);
	t0 = now_ms();
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_TIMEOUT);
	el = now_ms() - t0;
	ASSERT_INT(el, >=, 290);
	ASSERT_INT(el, <, 300 + 200);
	xtcmk_close(h);
	srv_stop(s);

	/* HELLO answered, request not: the deadline covers both. */
	s = srv_start("silent2.sock", M_SILENT_AFTER_HELLO);
	ASSERT_EQ(xtcmk_open(s->path, 300, &h), XTCMK_OK);
	t0 = now_ms();
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_TIMEOUT);
	el = now_ms() - t0;
	ASSERT_INT(el, >=, 290);
	ASSERT_INT(el, <, 300 + 200);
	ASSERT_CONTAINS(xtcmk_last_error(), "deadline");
	/* The timed-out connection was dropped: the next call reconnects. */
	t0 = now_ms();
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_E_TIMEOUT);
	ASSERT_INT(now_ms() - t0, <, 300 + 200);
	ASSERT_EQ(srv_nconn(s), 2);
	xtcmk_close(h);
	srv_stop(s);
}

static void
test_bad_peers(void)
{
	static const struct {
		enum mode	 m;
		int		 want;
		const char	*name;
	} cases[] = {
		{ M_BAD_MAGIC, XTCMK_E_PROTOCOL, "bad magic" },
		{ M_OVERSIZE, XTCMK_E_PROTOCOL, "oversized length" },
		{ M_WRONG_REQID, XTCMK_E_PROTOCOL, "wrong reqid" },
		{ M_WRONG_TYPE, XTCMK_E_PROTOCOL, "wrong type" },
		{ M_GARBAGE, XTCMK_E_PROTOCOL, "garbage" },
		{ M_CLOSE_MID, XTCMK_E_PROTOCOL, "close mid-frame" },
		{ M_CLOSE_NO_REPLY, XTCMK_E_UNAVAILABLE, "close, no reply" },
		{ M_BAD_FIELD, XTCMK_E_PROTOCOL, "truncated field" },
		{ M_BAD_STRING, XTCMK_E_PROTOCOL, "NUL in string" },
		{ M_BAD_U64, XTCMK_E_PROTOCOL, "short integer" },
	};
	struct srv *s = srv_start("bad.sock", M_GOOD);
	struct xtcmk *h;
	struct xtcmk_decision *d;
	size_t i;
	long t0;
	int rc, before;

	ASSERT_EQ(xtcmk_open(s->path, 1000, &h), XTCMK_OK);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Warm a pooled connection, then turn the peer bad. */
		srv_mode(s, M_GOOD);
		d = NULL;
		ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
		xtcmk_decision_free(d);
		before = srv_nconn(s);
		srv_mode(s, cases[i].m);
		d = NULL;
		t0 = now_ms();
		rc = xtcmk_decide(h, "c", &d);
		if (rc != cases[i].want)
			fprintf(stderr, "case %s: got %d (%s)\n",
			    cases[i].name, rc, xtcmk_last_error());
		ASSERT_EQ(rc, cases[i].want);
		ASSERT_TRUE(d == NULL);
		ASSERT_TRUE(xtcmk_last_error()[0] != '\0');
		ASSERT_INT(now_ms() - t0, <, 900);	/* no waiting */
		/* The bad connection is gone; a good peer works again. */
		srv_mode(s, M_GOOD);
		ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
		xtcmk_decision_free(d);
		/*
		 * A broken frame leaves the stream out of step: that
		 * connection must be gone.  A well-framed reply with bad
		 * field values keeps the stream in step and may be reused.
		 */
		if (cases[i].m != M_BAD_STRING && cases[i].m != M_BAD_U64) {
			if (srv_nconn(s) <= before)
				fprintf(stderr, "case %s: no reconnect\n",
				    cases[i].name);
			ASSERT_INT(srv_nconn(s), >, before);
		}
	}
	xtcmk_close(h);
	srv_stop(s);
}

static void
test_sigpipe(void)
{
	struct srv *s = srv_start("pipe.sock", M_ONE_THEN_CLOSE);
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	struct timespec ts;

	signal(SIGPIPE, SIG_DFL);
	ASSERT_EQ(xtcmk_open(s->path, 2000, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	/* Wait until the peer has hung up on the pooled connection. */
	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	while (s->closed < 1 &&
	    pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&s->lock);
	ASSERT_EQ(srv_get(s, &s->closed), 1);
	/* Sending on it gets EPIPE (no SIGPIPE), then a fresh connection. */
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	ASSERT_EQ(srv_nconn(s), 2);
	xtcmk_close(h);
	srv_stop(s);
}

static void
test_fork(void)
{
	struct srv *s = srv_start("fork.sock", M_GOOD);
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	struct stat st;
	int fds[8], n, status, nullfd, bad = 0;
	pid_t pid;

	ASSERT_EQ(xtcmk_open(s->path, 2000, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	n = client_fds(fds, 8);
	ASSERT_EQ(n, 1);
	ASSERT_EQ(srv_nconn(s), 1);

	pid = fork();
	if (pid == 0) {
		/*
		 * The child reuses the inherited fd number for something else:
		 * the module must neither talk on it nor close it.
		 */
		nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (n != 1 || dup2(nullfd, fds[0]) == -1)
			_exit(10);
		if (xtcmk_decide(h, "c", &d) != XTCMK_OK)
			bad |= 1;
		xtcmk_decision_free(d);
		if (fstat(fds[0], &st) == -1 || !S_ISCHR(st.st_mode))
			bad |= 2;
		xtcmk_close(h);
		if (fstat(fds[0], &st) == -1 || !S_ISCHR(st.st_mode))
			bad |= 4;
		_exit(bad);
	}
	ASSERT_TRUE(pid > 0);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* The child's request came on a new connection, from the child. */
	ASSERT_EQ(srv_nconn(s), 2);
	ASSERT_EQ(srv_get(s, (const int *)&s->peer_pid[0]), getpid());
	ASSERT_EQ(srv_get(s, (const int *)&s->peer_pid[1]), pid);
	ASSERT_EQ(srv_get(s, (const int *)&s->reqs[0]), 1);
	ASSERT_EQ(srv_get(s, (const int *)&s->reqs[1]), 1);

	/* A second child that simply calls: new connection again. */
	pid = fork();
	if (pid == 0) {
		bad = xtcmk_decide(h, "c", &d) != XTCMK_OK;
		xtcmk_decision_free(d);
		xtcmk_close(h);
		_exit(bad);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(srv_get(s, (const int *)&s->peer_pid[2]), pid);
	ASSERT_EQ(srv_get(s, (const int *)&s->reqs[0]), 1);

	/* The parent's own connection is intact and still used. */
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	ASSERT_EQ(srv_nconn(s), 3);
	ASSERT_EQ(srv_get(s, (const int *)&s->reqs[0]), 2);
	xtcmk_close(h);
	srv_stop(s);
}

#define NTHREADS	8
#define NCALLS		200

struct tctx {
	struct xtcmk	*h;
	int		 fails;
};

static void *
worker(void *arg)
{
	struct tctx *c = arg;
	struct xtcmk_decision *d;
	const char *app;
	int i;

	for (i = 0; i < NCALLS; i++) {
		d = NULL;
		if (xtcmk_decide(c->h, "acme", &d) != XTCMK_OK) {
			c->fails++;
			continue;
		}
		app = xtcmk_decision_str(d, XTCMK_F_APP);
		if (app == NULL || strcmp(app, "app-eu-1") != 0)
			c->fails++;
		xtcmk_decision_free(d);
	}
	return NULL;
}

static void
test_threads_cloexec(void)
{
	struct srv *s = srv_start("mt.sock", M_GOOD);
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	struct tctx ctx[NTHREADS];
	pthread_t t[NTHREADS];
	int fds[64], n, i, fails = 0, saved;

	ASSERT_EQ(xtcmk_open(s->path, 5000, &h), XTCMK_OK);
	for (i = 0; i < NTHREADS; i++) {
		ctx[i].h = h;
		ctx[i].fails = 0;
		pthread_create(&t[i], NULL, worker, &ctx[i]);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		fails += ctx[i].fails;
	}
	ASSERT_EQ(fails, 0);
	ASSERT_INT(srv_nconn(s), >=, 1);
	ASSERT_INT(srv_nconn(s), <=, NTHREADS);

	/* Every descriptor the module holds is CLOEXEC and above 2. */
	n = client_fds(fds, 64);
	ASSERT_INT(n, >=, 1);
	ASSERT_EQ(n, srv_nconn(s));
	for (i = 0; i < n; i++) {
		ASSERT_INT(fds[i], >, 2);
		ASSERT_TRUE(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	}
	xtcmk_close(h);
	ASSERT_EQ(client_fds(fds, 64), 0);

	/* With fd 0 free, the module's socket still lands above 2. */
	saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
	close(0);
	ASSERT_EQ(xtcmk_open(s->path, 2000, &h), XTCMK_OK);
	ASSERT_EQ(xtcmk_decide(h, "c", &d), XTCMK_OK);
	xtcmk_decision_free(d);
	n = client_fds(fds, 64);
	ASSERT_EQ(n, 1);
	ASSERT_INT(fds[0], >, 2);
	ASSERT_TRUE(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(fcntl(0, F_GETFD), -1);	/* 0 left free */
	xtcmk_close(h);
	if (saved != -1) {
		dup2(saved, 0);
		close(saved);
	}
	srv_stop(s);
}

/*
 * A peer running as another user than root and the socket's owner must be
 * refused.  Needs root to make the uids differ.
 */
static pid_t
uid_server(const char *path, uid_t sock_owner, uid_t run_as)
{
	struct srv s;
	pid_t pid;
	int fd, c;

	pid = fork();
	if (pid != 0)
		return pid;
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	s.mode = M_GOOD;
	if ((fd = listen_on(path)) == -1 ||
	    chown(path, sock_owner, sock_owner) == -1 ||
	    setresgid(run_as, run_as, run_as) == -1 ||
	    setresuid(run_as, run_as, run_as) == -1 ||
	    listen(fd, 8) == -1)	/* SO_PEERCRED is taken here */
		_exit(3);
	for (;;) {
		if ((c = accept(fd, NULL, NULL)) == -1)
			_exit(4);
		serve_conn(&s, 0, c);
		close(c);
	}
}

static void
test_peer_uid(void)
{
	struct xtcmk *h;
	struct xtcmk_decision *d = NULL;
	char path[128];
	pid_t pid;
	int i, rc;

	if (getuid() != 0) {
		printf("skip peer-uid test: needs root to run a peer as "
		    "another user\n");
		return;
	}
	/* Socket owned by root, server as nobody: refused. */
	snprintf(path, sizeof(path), "%s/uid1.sock", tmpdir);
	pid = uid_server(path, 0, 65534);
	ASSERT_EQ(xtcmk_open(path, 2000, &h), XTCMK_OK);
	for (i = 0, rc = -1; i < 100; i++) {	/* until it listens */
		if ((rc = xtcmk_decide(h, "c", &d)) != XTCMK_E_UNAVAILABLE)
			break;
		usleep(10000);
	}
	ASSERT_EQ(rc, XTCMK_E_DENIED);
	ASSERT_CONTAINS(xtcmk_last_error(), "uid 65534");
	xtcmk_close(h);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(path);

	/* Socket owned by the server's user: accepted. */
	snprintf(path, sizeof(path), "%s/uid2.sock", tmpdir);
	pid = uid_server(path, 65534, 65534);
	ASSERT_EQ(xtcmk_open(path, 2000, &h), XTCMK_OK);
	for (i = 0, rc = -1; i < 100; i++) {
		if ((rc = xtcmk_decide(h, "c", &d)) != XTCMK_E_UNAVAILABLE &&
		    rc != XTCMK_E_DENIED)
			break;
		usleep(10000);
	}
	ASSERT_EQ(rc, XTCMK_OK);
	xtcmk_decision_free(d);
	xtcmk_close(h);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(path);
}

int
main(void)
{
	const char *td = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/xtcmk-mod-XXXXXX",
	    td != NULL && strlen(td) < 32 ? td : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_static_api();
	test_invalid_args();
	test_unavailable();
	test_good();
	test_timeouts();
	test_bad_peers();
	test_sigpipe();
	test_fork();
	test_threads_cloexec();
	test_peer_uid();
	rmdir(tmpdir);
	return t_done();
}
