/*
 * server.c - the listener: the Unix socket, connections, framing, limits.
 *
 * One thread per connection, blocking I/O with poll() deadlines: a slow
 * client or a slow request only ever holds its own thread, and a cached
 * answer costs one recv() and one send().  Peer credentials are read once
 * at accept() and kept; the ACL is checked per message type by the
 * service.  Limits (see xtcmk.conf(5)): max_connections,
 * max_connections_per_uid, idle_timeout (no frame started), request_timeout
 * (a started frame must complete, a reply must drain), max_frame.
 *
 * Descriptors: at start the soft RLIMIT_NOFILE is raised to the hard
 * limit, and the connection limits are clamped to what fits in it, with
 * FDS_RESERVED descriptors left for the registry, logs and key-service
 * sockets and a few more kept for admins (root, [access] admin_uids and
 * admin_gids): when max_connections is reached, an admin still gets one
 * of those, so xtcmkctl works whatever data clients hold.  One uid gets
 * at most max_connections less a share kept for the other uids.  Should accept() still
 * hit EMFILE/ENFILE, a reserve descriptor is given up to accept the
 * connection, answer it BUSY and close it, so nothing waits in the backlog
 * and the accept loop never spins; the warning is rate-limited.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"
#include "server.h"
#include "service.h"
#include "wire.h"

#define CONN_STACK_SIZE		(256 * 1024)
#define UID_SLOTS		1024	/* open-addressed per-uid counters */
#define RBUF_SIZE		(XW_HDR_LEN + XW_PAYLOAD_MAX)
#define FDS_RESERVED		64	/* registry, logs, key services, ... */
#define CONN_MIN		8	/* connections even at a tiny fd limit */
#define ADMIN_SLOTS_MIN		4	/* connections kept for admins */
#define ADMIN_SLOTS_DIV		32	/* ... or 1/32 of max_connections */
#define NOFILE_WARN_S		10	/* one EMFILE warning per this */

struct uid_slot {
	uid_t		uid;
	unsigned	count;
};

struct server {
	struct config	*cfg;
	struct service	*svc;
	int		 lfd;
	int		 owned_path;	/* we bound it: unlink at exit */
	char		 path[108];	/* what lfd is bound to */
	atomic_int	 stop;
	atomic_uint	 conns;
	unsigned	 max_conns;	/* effective limits (see above) */
	unsigned	 max_per_uid;
	unsigned	 admin_slots;	/* admins beyond max_conns */
	atomic_uint	 admin_extra;	/* admin connections beyond it */
	int		 reserve_fd;	/* given up to answer at EMFILE */
	long long	 nofile_warned;	/* last EMFILE warning (ms) */
	unsigned	 nofile_refused; /* since then */
	pthread_mutex_t	 uid_mu;
	struct uid_slot	 uids[UID_SLOTS];
	unsigned	 nuids;
};

struct conn {
	struct server	*srv;
	int		 fd;
	struct peer	 peer;
	int		 hello;
	int		 extra;		/* an admin slot beyond max_conns */
	uint8_t		 rbuf[RBUF_SIZE];
	size_t		 rlen;
	uint8_t		 wbuf[XW_HDR_LEN + XW_PAYLOAD_MAX];
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Per-uid connection accounting; returns 0 if over the limit. */
static int
uid_acquire(struct server *srv, uid_t uid)
{
	unsigned i, h = (unsigned)uid * 2654435761u % UID_SLOTS;
	int ok = 0;

	pthread_mutex_lock(&srv->uid_mu);
	for (i = 0; i < UID_SLOTS; i++, h = (h + 1) % UID_SLOTS) {
		struct uid_slot *s = &srv->uids[h];

		if (s->count > 0 && s->uid != uid)
			continue;
		if (s->count >= srv->max_per_uid)
			break;
		s->uid = uid;
		s->count++;
		ok = 1;
		break;
	}
	pthread_mutex_unlock(&srv->uid_mu);
	return ok;
}

static void
uid_release(struct server *srv, uid_t uid)
{
	unsigned i, h = (unsigned)uid * 2654435761u % UID_SLOTS;

	pthread_mutex_lock(&srv->uid_mu);
	for (i = 0; i < UID_SLOTS; i++, h = (h + 1) % UID_SLOTS) {
		struct uid_slot *s = &srv->uids[h];

		if (s->count > 0 && s->uid == uid) {
			s->count--;
			break;
		}
	}
	pthread_mutex_unlock(&srv->uid_mu);
}

/*
 * Read until at least `want` bytes are buffered.  `deadline` is absolute
 * (ms, monotonic).  0 on success, -1 on EOF, timeout or error.
 */
static int
conn_fill(struct conn *c, size_t want, long long deadline)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	long long left;

	while (c->rlen < want) {
		n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen,
		    MSG_DONTWAIT);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if ((left = deadline - now_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			return -1;
		if (atomic_load(&c->srv->stop))
			return -1;
	}
	return 0;
}

static int
conn_send(struct conn *c, const uint8_t *buf, size_t len, long long deadline)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
	ssize_t n;
	long long left;

	while (len > 0) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if ((left = deadline - now_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* Send a reply: header + payload already in wbuf[XW_HDR_LEN..]. */
static int
conn_reply(struct conn *c, uint16_t type, uint16_t status, uint32_t reqid,
    size_t len)
{
	struct xw_hdr h = { .len = (uint32_t)len, .type = type,
	    .status = status, .reqid = reqid };

	int rc;

	xw_hdr_encode(c->wbuf, &h);
	rc = conn_send(c, c->wbuf, XW_HDR_LEN + len,
	    now_ms() + (long long)c->srv->cfg->request_timeout_s * 1000);
	/* A reply may carry a DEK: leave none behind. */
	if (type == XW_DEK_NEW || type == XW_DEK_UNWRAP)
		explicit_bzero(c->wbuf, XW_HDR_LEN + len);
	return rc;
}

static int
conn_error(struct conn *c, uint16_t type, uint32_t reqid, int code,
    const char *msg)
{
	struct xw_buf b;

	xw_buf_init(&b, c->wbuf + XW_HDR_LEN, XW_PAYLOAD_MAX);
	xw_put_str(&b, XT_MESSAGE, msg);
	return conn_reply(c, type, (uint16_t)code, reqid, b.len);
}

/* An error reply from a request's xerr: the message and, for TOOBIG, the
 * size that would fit. */
static int
conn_error_e(struct conn *c, uint16_t type, uint32_t reqid,
    const struct xerr *e)
{
	struct xw_buf b;

	xw_buf_init(&b, c->wbuf + XW_HDR_LEN, XW_PAYLOAD_MAX);
	xw_put_str(&b, XT_MESSAGE, e->msg);
	if (e->code == XTCMK_E_TOOBIG && e->need != 0)
		xw_put_u64(&b, XT_BLOB_NEED, e->need);
	if (e->code == XTCMK_E_TOOBIG && e->dek_need != 0)
		xw_put_u64(&b, XT_DEK_NEED, e->dek_need);
	return conn_reply(c, type, (uint16_t)e->code, reqid, b.len);
}

/*
 * Serve one frame from the buffer.  Returns 0 to go on, -1 to close the
 * connection (after telling the client why where possible).
 */
static int
conn_frame(struct conn *c)
{
	struct server *srv = c->srv;
	struct xw_hdr h;
	struct xw_buf b;
	struct xerr e;
	char msg[160];
	size_t total;
	int rc;

	rc = xw_hdr_decode(c->rbuf, srv->cfg->max_frame, &h);
	if (rc == -EMSGSIZE) {
		snprintf(msg, sizeof(msg), "frame larger than max_frame (%u "
		    "bytes)", srv->cfg->max_frame);
		conn_error(c, 0, 0, XTCMK_E_TOOBIG, msg);
		return -1;
	}
	if (rc < 0) {
		conn_error(c, 0, 0, rc == -EPROTONOSUPPORT ?
		    XTCMK_E_UNSUPPORTED : XTCMK_E_PROTOCOL,
		    rc == -EPROTONOSUPPORT ? "unsupported frame version" :
		    "not an xtcmk frame (bad magic)");
		return -1;
	}
	total = XW_HDR_LEN + h.len;
	if (conn_fill(c, total, now_ms() +
	    (long long)srv->cfg->request_timeout_s * 1000) < 0)
		return -1;
	if (h.status != 0 || xw_validate(c->rbuf + XW_HDR_LEN, h.len) < 0) {
		conn_error(c, h.type, h.reqid, XTCMK_E_PROTOCOL,
		    "malformed request: truncated field or nonzero status");
		return -1;
	}
	if (!c->hello && h.type != XW_HELLO) {
		conn_error(c, h.type, h.reqid, XTCMK_E_PROTOCOL,
		    "the first frame must be HELLO");
		return -1;
	}
	xerr_clear(&e);
	xw_buf_init(&b, c->wbuf + XW_HDR_LEN, XW_PAYLOAD_MAX);
	rc = service_handle(srv->svc, &c->peer, h.type, c->rbuf + XW_HDR_LEN,
	    h.len, &b, &e);
	if (rc == 0 && b.err != 0)
		rc = xerr_set(&e, XTCMK_E_TOOBIG, "reply larger than %d "
		    "bytes", XW_PAYLOAD_MAX);
	if (h.type == XW_HELLO && rc == 0)
		c->hello = 1;
	/* Consume the frame before replying. */
	memmove(c->rbuf, c->rbuf + total, c->rlen - total);
	c->rlen -= total;
	if (rc < 0) {
		e.code = -rc;
		if (conn_error_e(c, h.type, h.reqid, &e) < 0)
			return -1;
		return e.code == XTCMK_E_PROTOCOL ||
		    (h.type == XW_HELLO) ? -1 : 0;
	}
	return conn_reply(c, h.type, 0, h.reqid, b.len);
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	struct server *srv = c->srv;
	long long deadline;

	for (;;) {
		if (c->rlen < XW_HDR_LEN) {
			/* Idle until a frame starts, then it must finish. */
			deadline = now_ms() + (c->rlen == 0 ?
			    (long long)srv->cfg->idle_timeout_s * 1000 :
			    (long long)srv->cfg->request_timeout_s * 1000);
			if (conn_fill(c, c->rlen == 0 ? 1 : XW_HDR_LEN,
			    deadline) < 0)
				break;
			if (c->rlen < XW_HDR_LEN && conn_fill(c, XW_HDR_LEN,
			    now_ms() + (long long)srv->cfg->request_timeout_s *
			    1000) < 0)
				break;
		}
		if (conn_frame(c) < 0)
			break;
	}
	close(c->fd);
	uid_release(srv, c->peer.uid);
	atomic_fetch_sub(c->extra ? &srv->admin_extra : &srv->conns, 1);
	service_count_conn(srv->svc, -1, 0);
	free(c);
	return NULL;
}

static void
refuse(struct server *srv, int fd, int code, const char *msg)
{
	struct conn *tmp;

	/* A short error frame on a fresh socket never blocks for long. */
	if ((tmp = malloc(sizeof(*tmp))) != NULL) {
		tmp->srv = srv;
		tmp->fd = fd;
		conn_error(tmp, XW_HELLO, 0, code, msg);
		free(tmp);
	}
	close(fd);
	service_count_conn(srv->svc, 0, 1);
}

#define REFUSED_LOG_INTERVAL	60	/* seconds between refusal lines */
static struct log_ratelimit refused_rl =
    LOG_RATELIMIT_INIT(REFUSED_LOG_INTERVAL, 1);
static struct log_ratelimit accept_rl = LOG_RATELIMIT_INIT(60, 1);

static void
accept_one(struct server *srv, int fd)
{
	long skipped;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	pthread_attr_t attr;
	pthread_t tid;
	struct conn *c;
	int admin, extra;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == -1) {
		close(fd);
		return;
	}
	if (!config_allows(srv->cfg, ACCESS_CONNECT, cred.uid, cred.gid)) {
		/* Any local user can connect: count every refusal (stats),
		 * log one line per REFUSED_LOG_INTERVAL at most. */
		if ((skipped = log_ratelimit(&refused_rl)) >= 0)
			log_event(LOG_WARNING, LOG_MSGID_REFUSED, NULL, NULL,
			    "refused connection from uid %u gid %u pid %d: "
			    "not in [access] data, admin or monitor lists (%ld more "
			    "refused since the last such line; see xtcmkctl "
			    "stats)", (unsigned)cred.uid, (unsigned)cred.gid,
			    (int)cred.pid, skipped);
		refuse(srv, fd, XTCMK_E_DENIED, "this user may not use "
		    "xtcmkd: ask the admin to add it to [access] in "
		    "xtcmk.conf");
		return;
	}
	if (!uid_acquire(srv, cred.uid)) {
		refuse(srv, fd, XTCMK_E_BUSY, "too many connections from "
		    "this uid (max_connections_per_uid)");
		return;
	}
	extra = 0;
	if (atomic_fetch_add(&srv->conns, 1) >= srv->max_conns) {
		atomic_fetch_sub(&srv->conns, 1);
		admin = cred.uid == 0 ||
		    config_allows(srv->cfg, 1, cred.uid, cred.gid);
		if (admin && atomic_fetch_add(&srv->admin_extra, 1) <
		    srv->admin_slots)
			extra = 1;
		else {
			if (admin)
				atomic_fetch_sub(&srv->admin_extra, 1);
			uid_release(srv, cred.uid);
			refuse(srv, fd, XTCMK_E_BUSY,
			    "agent at max_connections");
			return;
		}
	}
	if ((c = malloc(sizeof(*c))) == NULL)
		goto fail;
	c->srv = srv;
	c->fd = fd;
	c->peer.uid = cred.uid;
	c->peer.gid = cred.gid;
	c->peer.pid = cred.pid;
	c->hello = 0;
	c->extra = extra;
	c->rlen = 0;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, CONN_STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, conn_main, c) != 0) {
		pthread_attr_destroy(&attr);
		free(c);
		goto fail;
	}
	pthread_attr_destroy(&attr);
	service_count_conn(srv->svc, 1, 0);
	return;
fail:
	uid_release(srv, cred.uid);
	atomic_fetch_sub(extra ? &srv->admin_extra : &srv->conns, 1);
	refuse(srv, fd, XTCMK_E_BUSY, "agent out of resources");
}

/* Is someone answering on `path`?  Then it is not ours to replace. */
static int
socket_live(const struct sockaddr_un *sa)
{
	int fd, live;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return 0;
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return live;
}

/* Slots kept for others out of n: 1/ADMIN_SLOTS_DIV, >= ADMIN_SLOTS_MIN,
 * <= n/2. */
static unsigned
slots_share(unsigned n)
{
	unsigned k = n / ADMIN_SLOTS_DIV;

	if (k < ADMIN_SLOTS_MIN)
		k = ADMIN_SLOTS_MIN;
	return k > n / 2 ? n / 2 : k;
}

/*
 * Raise the soft descriptor limit to the hard one and clamp the
 * connection limits to what fits (see the top of this file).
 */
static void
server_limits(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	struct rlimit rl;
	unsigned long long nofile = 1024, fit;
	unsigned others;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
				(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
		nofile = rl.rlim_cur == RLIM_INFINITY ? CONN_MAX_LIMIT * 2ULL :
		    (unsigned long long)rl.rlim_cur;
	}
	fit = nofile > FDS_RESERVED + CONN_MIN ? nofile - FDS_RESERVED :
	    CONN_MIN;
	srv->admin_slots = slots_share((unsigned)(fit > CONN_MAX_LIMIT ?
	    CONN_MAX_LIMIT : fit));
	fit -= srv->admin_slots;
	srv->max_conns = cfg->max_connections;
	if (srv->max_conns > fit) {
		log_warn("max_connections %u does not fit the descriptor "
		    "limit %llu (RLIMIT_NOFILE, LimitNOFILE= in the unit): "
		    "using %llu", cfg->max_connections, nofile, fit);
		srv->max_conns = (unsigned)fit;
	}
	others = slots_share(srv->max_conns);
	srv->max_per_uid = cfg->max_connections_per_uid;
	if (srv->max_per_uid > srv->max_conns - others) {
		if (srv->max_per_uid != config_default_per_uid(cfg))
			log_warn("max_connections_per_uid %u would let one uid "
			    "lock out the others: using %u",
			    cfg->max_connections_per_uid,
			    srv->max_conns - others);
		srv->max_per_uid = srv->max_conns - others;
	}
	if (srv->max_per_uid == 0)
		srv->max_per_uid = 1;
	log_info("connections: at most %u, %u per uid, %u more for admins; "
	    "descriptor limit %llu", srv->max_conns, srv->max_per_uid,
	    srv->admin_slots, nofile);
}

static void
reserve_open(struct server *srv)
{
	if (srv->reserve_fd == -1)
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int
server_open(struct config *cfg, struct service *svc, struct server **ret_srv,
    struct xerr *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct server *srv;
	struct stat st;
	mode_t old;
	int fd, rc, n;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	srv->cfg = cfg;
	srv->svc = svc;
	srv->reserve_fd = -1;
	pthread_mutex_init(&srv->uid_mu, NULL);
	server_limits(srv);
	reserve_open(srv);

	/* systemd socket activation: one listening Unix stream socket on
	 * fd 3; anything else is a unit file mistake, refused at start
	 * rather than served badly. */
	if ((n = sd_fds()) < 0) {
		free(srv);
		return xerr_set(e, XTCMK_E_INVAL, "socket activation: bad "
		    "LISTEN_FDS: %s", strerror(-n));
	}
	if (n > 1) {
		free(srv);
		return xerr_set(e, XTCMK_E_INVAL, "socket activation passed "
		    "%d sockets; xtcmkd takes one (a single ListenStream= in "
		    "xtcmkd.socket)", n);
	}
	if (n == 1) {
		if ((rc = sd_fd_is_unix_stream(SD_FIRST_FD)) <= 0) {
			free(srv);
			return xerr_set(e, XTCMK_E_INVAL, "socket activation: "
			    "fd %d is not a listening Unix stream socket%s%s "
			    "(xtcmkd.socket needs ListenStream=/path and no "
			    "Accept=yes)", SD_FIRST_FD, rc < 0 ? ": " : "",
			    rc < 0 ? strerror(-rc) : "");
		}
		srv->lfd = SD_FIRST_FD;
		fcntl(SD_FIRST_FD, F_SETFD, FD_CLOEXEC);
		sd_fd_path(SD_FIRST_FD, srv->path, sizeof(srv->path));
		log_info("listening on %s (from systemd)", *srv->path ?
		    srv->path : "an unnamed socket");
		*ret_srv = srv;
		return 0;
	}
	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
		free(srv);
		return xerr_set(e, XTCMK_E_INVAL, "socket path %s is longer "
		    "than %zu bytes", cfg->socket_path,
		    sizeof(sa.sun_path) - 1);
	}
	memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path));
	snprintf(srv->path, sizeof(srv->path), "%s", cfg->socket_path);
	if (lstat(cfg->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			free(srv);
			return xerr_set(e, XTCMK_E_INVAL, "%s exists and is "
			    "not a socket: remove it or change [agent] socket",
			    cfg->socket_path);
		}
		if (socket_live(&sa)) {
			free(srv);
			return xerr_set(e, XTCMK_E_EXISTS, "another xtcmkd is "
			    "already listening on %s", cfg->socket_path);
		}
		unlink(cfg->socket_path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		free(srv);
		return xerr_set(e, XTCMK_E_INTERNAL, "socket: %s",
		    strerror(errno));
	}
	/* Access is decided by SO_PEERCRED, so everyone may connect. */
	old = umask(0111);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc == -1 || listen(fd, 1024) == -1) {
		rc = xerr_set(e, XTCMK_E_INVAL, "cannot listen on %s: %s (does "
		    "its directory exist and is it writable?)",
		    cfg->socket_path, strerror(errno));
		close(fd);
		free(srv);
		return rc;
	}
	srv->lfd = fd;
	srv->owned_path = 1;
	log_info("listening on %s", cfg->socket_path);
	*ret_srv = srv;
	return 0;
}

/*
 * Out of descriptors: give up the reserve to accept one waiting
 * connection, answer it BUSY and close it.  Without a reserve (another
 * thread took the descriptor), back off on poll instead of spinning.
 * Warns at most once per NOFILE_WARN_S.
 */
static void
accept_nofile(struct server *srv, int err)
{
	long long now = now_ms();
	int fd;

	srv->nofile_refused++;
	if (srv->nofile_warned == 0 ||
	    now - srv->nofile_warned >= NOFILE_WARN_S * 1000LL) {
		log_warn("accept: %s: answering new connections BUSY (%u "
		    "since the last warning); raise LimitNOFILE= or lower "
		    "max_connections", strerror(err), srv->nofile_refused);
		srv->nofile_warned = now;
		srv->nofile_refused = 0;
	}
	service_count_nofile(srv->svc);
	if (srv->reserve_fd == -1) {
		reserve_open(srv);
		(void)poll(NULL, 0, 100);
		return;
	}
	close(srv->reserve_fd);
	srv->reserve_fd = -1;
	fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd != -1)
		refuse(srv, fd, XTCMK_E_BUSY, "agent out of file descriptors, "
		    "retry later");
	reserve_open(srv);
}

int
server_run(struct server *srv)
{
	struct pollfd pfd = { .fd = srv->lfd, .events = POLLIN };
	int fd;

	while (!atomic_load(&srv->stop)) {
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				accept_nofile(srv, errno);
				continue;
			}
			/* Anything else will not go away by retrying at
			 * once: never spin. */
			if (log_ratelimit(&accept_rl) >= 0)
				log_warn("accept: %s; retrying every 100 ms",
				    strerror(errno));
			usleep(100000);
			continue;
		}
		accept_one(srv, fd);
	}
	return 0;
}

const char *
server_path(const struct server *srv)
{
	return srv->path;
}

void
server_stop(struct server *srv)
{
	atomic_store(&srv->stop, 1);
}

void
server_close(struct server *srv)
{
	if (srv == NULL)
		return;
	close(srv->lfd);
	if (srv->reserve_fd != -1)
		close(srv->reserve_fd);
	if (srv->owned_path)
		unlink(srv->cfg->socket_path);
	free(srv);
}
