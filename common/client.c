/*
 * client.c - the client side of one xtcmkd connection.
 *
 * Owns: socket creation (CLOEXEC, non-blocking, above fd 2), the connect
 * with a deadline, the server check (SO_PEERCRED against the socket file's
 * owner), the HELLO handshake, and the framed request/reply exchange with
 * one total deadline per call.  Used inside libxtcmk.so, a guest in the
 * host's process, so: libc only, no printing, no signals (MSG_NOSIGNAL).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"
#include "xtcmk.h"
#include "client.h"

_Static_assert(XC_UNIX_PATH_MAX == sizeof(((struct sockaddr_un *)0)->sun_path),
    "XC_UNIX_PATH_MAX");

#define XC_HELLO_REPLY_MAX	4096	/* a HELLO reply is a few fields */
#define XC_BACKLOG_WAIT_MS	5	/* retry step while the backlog is full */

static void seterr(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int64_t
xc_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
xc_deadline(unsigned timeout_ms)
{
	return xc_now() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds left before `deadline`, rounded up; 0 once it has passed. */
static int
remaining_ms(int64_t deadline)
{
	int64_t left = deadline - xc_now();

	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Wait for `events` on fd, the timeout recomputed before every poll. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int ms, r;

	for (;;) {
		if ((ms = remaining_ms(deadline)) == 0)
			return -XTCMK_E_TIMEOUT;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -XTCMK_E_UNAVAILABLE;
		}
		if (r > 0)
			return 0;	/* errors show in the next recv/send */
	}
}

void
xc_close(struct xc_conn *c)
{
	struct stat st;

	if (c == NULL || c->fd < 0)
		return;
	/*
	 * The opener ends the connection itself, not only its descriptor:
	 * a copy it cannot know of (a child forked between socket() and
	 * the record of the descriptor keeps one until it exits or execs)
	 * must not keep the agent's end open.
	 */
	if (c->pid == getpid()) {
		(void)shutdown(c->fd, SHUT_RDWR);
		(void)close(c->fd);
	} else if (fstat(c->fd, &st) == 0 && st.st_dev == c->dev &&
	    st.st_ino == c->ino)
		(void)close(c->fd);	/* inherited copy; never used */
	c->fd = -1;
}

/*
 * Read exactly n bytes.  `poll_first` saves a recv that would only say
 * EAGAIN when the peer has yet to answer.  End of stream with nothing read
 * and `nothing_yet` set means the peer hung up before replying.
 */
static int
read_full(int fd, uint8_t *buf, size_t n, int64_t deadline, int poll_first,
    int nothing_yet, char *errbuf, size_t errlen)
{
	size_t got = 0;
	ssize_t r;
	int rc;

	if (poll_first && (rc = wait_fd(fd, POLLIN, deadline)) < 0)
		goto timeout;
	while (got < n) {
		r = recv(fd, buf + got, n - got, 0);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0 || errno == ECONNRESET) {
			if (got == 0 && nothing_yet) {
				seterr(errbuf, errlen, "xtcmkd closed the "
				    "connection before replying");
				return -XTCMK_E_UNAVAILABLE;
			}
			seterr(errbuf, errlen, "xtcmkd closed the connection "
			    "in the middle of a reply frame");
			return -XTCMK_E_PROTOCOL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			seterr(errbuf, errlen, "cannot read from xtcmkd: %s",
			    strerror(errno));
			return -XTCMK_E_UNAVAILABLE;
		}
		if ((rc = wait_fd(fd, POLLIN, deadline)) < 0)
			goto timeout;
	}
	return 0;
timeout:
	seterr(errbuf, errlen, "no reply from xtcmkd within the deadline");
	return rc;
}

static int
send_frame(int fd, const uint8_t *hdr, const uint8_t *payload, size_t len,
    int64_t deadline, char *errbuf, size_t errlen)
{
	struct msghdr msg;
	struct iovec iov[2];
	size_t sent = 0, total = XW_HDR_LEN + len;
	ssize_t r;
	int rc;

	while (sent < total) {
		memset(&msg, 0, sizeof(msg));
		if (sent < XW_HDR_LEN) {
			iov[0].iov_base = (void *)(hdr + sent);
			iov[0].iov_len = XW_HDR_LEN - sent;
			iov[1].iov_base = (void *)payload;
			iov[1].iov_len = len;
			msg.msg_iovlen = len > 0 ? 2 : 1;
		} else {
			iov[0].iov_base = (void *)(payload + sent - XW_HDR_LEN);
			iov[0].iov_len = total - sent;
			msg.msg_iovlen = 1;
		}
		msg.msg_iov = iov;
		r = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (r >= 0) {
			sent += (size_t)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0) {
				seterr(errbuf, errlen, "xtcmkd did not accept "
				    "the request within the deadline");
				return rc;
			}
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET) {
			seterr(errbuf, errlen, "xtcmkd closed the connection");
			return -XTCMK_E_UNAVAILABLE;
		}
		seterr(errbuf, errlen, "cannot send to xtcmkd: %s",
		    strerror(errno));
		return -XTCMK_E_UNAVAILABLE;
	}
	return 0;
}

/*
 * Read the reply to request `reqid` of `type` (its header already in hb
 * when have_hdr).  On any failure the connection is closed.
 */
static int
read_reply(struct xc_conn *c, uint16_t type, uint32_t reqid, size_t reply_max,
    int64_t deadline, uint8_t hb[XW_HDR_LEN], int have_hdr, char *errbuf,
    size_t errlen, uint16_t *ret_status, uint8_t **ret_reply,
    size_t *ret_reply_len)
{
	struct xw_hdr rh;
	uint8_t *reply = NULL;
	int rc;

	rh.len = 0;
	if (reply_max > XW_PAYLOAD_MAX)
		reply_max = XW_PAYLOAD_MAX;
	if (!have_hdr && (rc = read_full(c->fd, hb, XW_HDR_LEN, deadline, 1,
	    1, errbuf, errlen)) < 0)
		goto poison;
	/* Check the header before allocating anything for the payload. */
	switch (xw_hdr_decode(hb, XW_PAYLOAD_MAX, &rh)) {
	case 0:
		break;
	case -EMSGSIZE:
		seterr(errbuf, errlen, "reply from xtcmkd announces more than "
		    "the %u byte frame limit", (unsigned)XW_PAYLOAD_MAX);
		rc = -XTCMK_E_PROTOCOL;
		goto poison;
	case -EPROTONOSUPPORT:
		seterr(errbuf, errlen, "reply frame has an unknown protocol "
		    "version %u", hb[14]);
		rc = -XTCMK_E_PROTOCOL;
		goto poison;
	default:
		seterr(errbuf, errlen, "reply is not an xtcmk frame (bad "
		    "magic or flags): is the socket really xtcmkd's?");
		rc = -XTCMK_E_PROTOCOL;
		goto poison;
	}
	/* Request id 0 with an error: the agent refused the connection
	 * before reading anything (see xtcmk-protocol(7)). */
	if (rh.reqid == 0 && rh.status != 0)
		rh.reqid = reqid, rh.type = type;
	if (rh.type != type || rh.reqid != reqid) {
		seterr(errbuf, errlen, "reply does not match the request "
		    "(type %u/%u, id %u/%u)", rh.type, type, rh.reqid, reqid);
		rc = -XTCMK_E_PROTOCOL;
		goto poison;
	}
	if (rh.len > reply_max) {
		seterr(errbuf, errlen, "reply of %u bytes is over the %zu "
		    "byte limit for this request", rh.len, reply_max);
		rc = -XTCMK_E_TOOBIG;
		goto poison;
	}
	if ((reply = malloc((size_t)rh.len + 1)) == NULL) {
		seterr(errbuf, errlen, "out of memory");
		rc = -XTCMK_E_NOMEM;
		goto poison;
	}
	if (rh.len > 0 && (rc = read_full(c->fd, reply, rh.len, deadline, 0,
	    0, errbuf, errlen)) < 0)
		goto poison;
	reply[rh.len] = '\0';
	if (xw_validate(reply, rh.len) != 0) {
		seterr(errbuf, errlen, "reply payload from xtcmkd has a "
		    "truncated field");
		rc = -XTCMK_E_PROTOCOL;
		goto poison;
	}
	*ret_status = rh.status;
	*ret_reply = reply;
	*ret_reply_len = rh.len;
	return 0;

poison:
	if (reply != NULL) {
		explicit_bzero(reply, (size_t)rh.len + 1);
		free(reply);
	}
	xc_close(c);
	return rc;
}

/*
 * Check a request and make its header in hb, with the connection's next
 * request id in *ret_reqid; nothing is sent.
 */
static int
request_hdr(struct xc_conn *c, uint16_t type, const void *payload,
    size_t len, char *errbuf, size_t errlen, uint8_t *hb,
    uint32_t *ret_reqid)
{
	struct xw_hdr h;

	if (c == NULL || c->fd < 0) {
		seterr(errbuf, errlen, "not connected to xtcmkd");
		return -XTCMK_E_UNAVAILABLE;
	}
	if (len > XW_PAYLOAD_MAX || (len > 0 && payload == NULL)) {
		seterr(errbuf, errlen, "request of %zu bytes is over the "
		    "%u byte frame limit", len, (unsigned)XW_PAYLOAD_MAX);
		return -XTCMK_E_TOOBIG;
	}
	*ret_reqid = c->reqid + 1;
	if (*ret_reqid == 0)
		*ret_reqid = 1;
	h.len = (uint32_t)len;
	h.type = type;
	h.status = 0;
	h.reqid = *ret_reqid;
	xw_hdr_encode(hb, &h);
	return 0;
}

int
xc_send(struct xc_conn *c, uint16_t type, const void *payload, size_t len,
    int64_t deadline, char *errbuf, size_t errlen, uint32_t *ret_reqid)
{
	uint8_t hb[XW_HDR_LEN];
	uint32_t reqid;
	int rc;

	if ((rc = request_hdr(c, type, payload, len, errbuf, errlen, hb,
	    &reqid)) < 0)
		return rc;
	if ((rc = send_frame(c->fd, hb, payload, len, deadline, errbuf,
	    errlen)) < 0) {
		xc_close(c);
		return rc;
	}
	c->reqid = reqid;
	*ret_reqid = reqid;
	return 0;
}

int
xc_reply(struct xc_conn *c, uint16_t type, uint32_t reqid, size_t reply_max,
    int64_t deadline, char *errbuf, size_t errlen, uint16_t *ret_status,
    uint8_t **ret_reply, size_t *ret_reply_len)
{
	uint8_t hb[XW_HDR_LEN];

	if (c == NULL || c->fd < 0) {
		seterr(errbuf, errlen, "not connected to xtcmkd");
		return -XTCMK_E_UNAVAILABLE;
	}
	return read_reply(c, type, reqid, reply_max, deadline, hb, 0, errbuf,
	    errlen, ret_status, ret_reply, ret_reply_len);
}

int
xc_request(struct xc_conn *c, uint16_t type, const void *payload,
    size_t len, size_t reply_max, int64_t deadline, char *errbuf,
    size_t errlen, uint16_t *ret_status, uint8_t **ret_reply,
    size_t *ret_reply_len)
{
	uint8_t hb[XW_HDR_LEN];
	struct xw_hdr rh;
	uint32_t reqid;
	int rc;

	if ((rc = request_hdr(c, type, payload, len, errbuf, errlen, hb,
	    &reqid)) < 0)
		return rc;
	if ((rc = send_frame(c->fd, hb, payload, len, deadline, errbuf,
	    errlen)) < 0) {
		/*
		 * An agent that refuses a connection (ACL, limits) answers
		 * at once and closes; the refusal may already be waiting
		 * even though our request could not be sent.
		 */
		if (read_full(c->fd, hb, sizeof(hb), deadline, 1, 1, NULL,
		    0) < 0 || xw_hdr_decode(hb, XW_PAYLOAD_MAX, &rh) != 0 ||
		    rh.reqid != 0 || rh.status == 0) {
			xc_close(c);
			return rc;
		}
		rc = read_reply(c, type, reqid, reply_max, deadline, hb, 1,
		    errbuf, errlen, ret_status, ret_reply, ret_reply_len);
	} else
		rc = read_reply(c, type, reqid, reply_max, deadline, hb, 0,
		    errbuf, errlen, ret_status, ret_reply, ret_reply_len);
	if (rc == 0)
		c->reqid = reqid;
	return rc;
}

void
xc_reply_message(const uint8_t *reply, size_t len, char *buf, size_t buflen)
{
	struct xw_field f;
	size_t n;

	if (buf == NULL || buflen == 0)
		return;
	buf[0] = '\0';
	if (reply == NULL || xw_find(reply, len, XT_MESSAGE, &f) != 1 ||
	    !xw_field_is_str(&f, XW_STR_MAX))
		return;
	n = f.len < buflen - 1 ? f.len : buflen - 1;
	memcpy(buf, f.val, n);
	buf[n] = '\0';
}

/* Map a failed connect(2)/lstat(2) errno to a result. */
static int
connect_error(int err, const char *path, char *errbuf, size_t errlen)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
		seterr(errbuf, errlen, "%s does not exist: is xtcmkd "
		    "running?", path);
		return -XTCMK_E_UNAVAILABLE;
	case ECONNREFUSED:
		seterr(errbuf, errlen, "nothing listens on %s: is xtcmkd "
		    "running?", path);
		return -XTCMK_E_UNAVAILABLE;
	case EACCES:
	case EPERM:
		seterr(errbuf, errlen, "no permission to connect to %s: add "
		    "this service's user to the xtcmk group", path);
		return -XTCMK_E_DENIED;
	default:
		seterr(errbuf, errlen, "cannot connect to %s: %s", path,
		    strerror(err));
		return -XTCMK_E_UNAVAILABLE;
	}
}

static int
do_connect(int fd, const struct sockaddr_un *sun, const char *path,
    int64_t deadline, char *errbuf, size_t errlen)
{
	socklen_t sl;
	int err, ms, rc;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)sun,
		    sizeof(*sun)) == 0)
			return 0;
		err = errno;
		if (err == EAGAIN) {
			/* AF_UNIX: the listen backlog is full; retry. */
			if ((ms = remaining_ms(deadline)) == 0)
				goto timeout;
			(void)poll(NULL, 0, ms < XC_BACKLOG_WAIT_MS ? ms :
			    XC_BACKLOG_WAIT_MS);
			continue;
		}
		if (err != EINPROGRESS && err != EINTR)
			return connect_error(err, path, errbuf, errlen);
		if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
			goto timeout;
		sl = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
			err = errno;
		if (err == 0)
			return 0;
		return connect_error(err, path, errbuf, errlen);
	}
timeout:
	seterr(errbuf, errlen, "xtcmkd did not accept the connection on %s "
	    "within the deadline", path);
	return -XTCMK_E_TIMEOUT;
}

static int
hello(struct xc_conn *c, int64_t deadline, char *errbuf, size_t errlen)
{
	uint8_t req[2 * (XW_FIELD_HDR + 8)], *reply = NULL;
	struct xw_buf b;
	struct xw_field f;
	uint16_t status;
	uint64_t v;
	size_t rlen, n;
	int rc;

	xw_buf_init(&b, req, sizeof(req));
	xw_put_u64(&b, XT_VERSION_MIN, XW_VERSION);
	xw_put_u64(&b, XT_VERSION_MAX, XW_VERSION);
	if ((rc = xc_request(c, XW_HELLO, b.data, b.len, XC_HELLO_REPLY_MAX,
	    deadline, errbuf, errlen, &status, &reply, &rlen)) < 0)
		return rc;
	if (status != 0) {
		xc_reply_message(reply, rlen, errbuf, errlen);
		if (errbuf != NULL && errlen > 0 && errbuf[0] == '\0')
			seterr(errbuf, errlen, "xtcmkd refused the handshake "
			    "(status %u)", (unsigned)status);
		rc = -(int)status;
		goto out;
	}
	if (xw_find(reply, rlen, XT_VERSION, &f) != 1 ||
	    xw_field_u64(&f, &v) != 0) {
		seterr(errbuf, errlen, "HELLO reply from xtcmkd has no "
		    "protocol version");
		rc = -XTCMK_E_PROTOCOL;
		goto out;
	}
	if (v != XW_VERSION) {
		seterr(errbuf, errlen, "xtcmkd chose protocol version %llu; "
		    "this client speaks only %u: upgrade libxtcmk",
		    (unsigned long long)v, (unsigned)XW_VERSION);
		rc = -XTCMK_E_UNSUPPORTED;
		goto out;
	}
	c->version = v;
	c->agent[0] = '\0';
	if (xw_find(reply, rlen, XT_AGENT, &f) == 1 &&
	    xw_field_is_str(&f, XW_STR_MAX)) {
		n = f.len < sizeof(c->agent) - 1 ? f.len :
		    sizeof(c->agent) - 1;
		memcpy(c->agent, f.val, n);
		c->agent[n] = '\0';
	}
	rc = 0;
out:
	free(reply);
	if (rc < 0)
		xc_close(c);
	return rc;
}

int
xc_connect(const char *path, int64_t deadline, char *errbuf, size_t errlen,
    struct xc_conn *ret_conn)
{
	struct xc_conn c;
	int rc;

	if ((rc = xc_connect_into(path, deadline, errbuf, errlen, &c)) < 0)
		return rc;
	*ret_conn = c;
	return 0;
}

int
xc_connect_into(const char *path, int64_t deadline, char *errbuf,
    size_t errlen, struct xc_conn *c)
{
	struct sockaddr_un sun;
	struct stat st, fst;
	struct ucred cred;
	socklen_t cl;
	size_t plen;
	int fd, nfd, rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (path == NULL || (plen = strlen(path)) == 0 ||
	    plen >= sizeof(sun.sun_path)) {
		seterr(errbuf, errlen, "socket path must be 1..%zu bytes",
		    sizeof(sun.sun_path) - 1);
		return -XTCMK_E_INVAL;
	}
	if (lstat(path, &st) == -1)
		return connect_error(errno, path, errbuf, errlen);
	if (!S_ISSOCK(st.st_mode)) {
		seterr(errbuf, errlen, "%s is not a socket: point "
		    "XTCMK_SOCKET at xtcmkd's socket", path);
		return -XTCMK_E_DENIED;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		seterr(errbuf, errlen, "cannot create a socket: %s",
		    strerror(errno));
		return errno == ENOMEM || errno == ENOBUFS ?
		    -XTCMK_E_NOMEM : -XTCMK_E_UNAVAILABLE;
	}
	if (fd <= STDERR_FILENO) {
		/* Never sit on 0-2: a stray write(2) would reach the agent. */
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		(void)close(fd);
		if (nfd == -1) {
			seterr(errbuf, errlen, "cannot move the socket above "
			    "fd 2: %s", strerror(errno));
			return -XTCMK_E_UNAVAILABLE;
		}
		fd = nfd;
	}
	if (fstat(fd, &fst) == -1) {
		seterr(errbuf, errlen, "cannot stat the socket: %s",
		    strerror(errno));
		(void)close(fd);
		return -XTCMK_E_UNAVAILABLE;
	}
	c->pid = getpid();
	c->dev = fst.st_dev;
	c->ino = fst.st_ino;
	/* Published last: a child forked from now on can tell it is ours. */
	__atomic_store_n(&c->fd, fd, __ATOMIC_RELEASE);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if ((rc = do_connect(fd, &sun, path, deadline, errbuf, errlen)) < 0)
		goto fail;

	cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == -1 ||
	    cl != sizeof(cred)) {
		seterr(errbuf, errlen, "cannot read the credentials of the "
		    "server on %s", path);
		rc = -XTCMK_E_DENIED;
		goto fail;
	}
	if (cred.uid != 0 && cred.uid != st.st_uid) {
		seterr(errbuf, errlen, "the server on %s runs as uid %u, "
		    "neither root nor the socket's owner (uid %u): refusing "
		    "to talk to it", path, (unsigned)cred.uid,
		    (unsigned)st.st_uid);
		rc = -XTCMK_E_DENIED;
		goto fail;
	}
	if ((rc = hello(c, deadline, errbuf, errlen)) < 0)
		return rc;	/* hello() closed it */
	return 0;
fail:
	xc_close(c);
	return rc;
}
