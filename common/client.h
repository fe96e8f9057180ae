/*
 * client.h - one client connection to xtcmkd: connect, check the server,
 * handshake, and request/reply with a total deadline.
 *
 * Shared by libxtcmk.so and xtcmkctl.  libc only, never prints.  Functions
 * return 0 or a negative enum xtcmk_result (-XTCMK_E_*); a sentence saying
 * what went wrong goes into the caller's `errbuf` when one is given.
 *
 * Deadlines are absolute CLOCK_MONOTONIC times in nanoseconds (xc_deadline).
 * Any transport or protocol error closes the connection ("poisons" it): the
 * caller must not reuse it and reconnects with xc_connect.
 */
#ifndef XTCMK_CLIENT_H
#define XTCMK_CLIENT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#define XC_AGENT_MAX	64	/* agent name kept from the HELLO reply */
#define XC_ERR_MAX	256	/* suggested size of an errbuf */
#define XC_UNIX_PATH_MAX 108	/* sizeof(sun_path) on Linux */

struct xc_conn {
	int		fd;		/* -1 when closed */
	pid_t		pid;		/* process that opened fd */
	dev_t		dev;		/* fstat of fd at open time */
	ino_t		ino;
	uint32_t	reqid;		/* last request id used */
	uint64_t	version;	/* negotiated protocol version */
	char		agent[XC_AGENT_MAX];
};

/* Absolute deadline `timeout_ms` from now, and the current time. */
int64_t	xc_now(void);
int64_t	xc_deadline(unsigned timeout_ms);

/*
 * Connect to the agent's socket at `path`, check that the server runs as
 * root or as the owner of the socket file, and do the HELLO handshake.
 * An agent refusing the handshake yields -(its status).
 */
int	xc_connect(const char *path, int64_t deadline, char *errbuf,
	    size_t errlen, struct xc_conn *ret_conn);

/*
 * The same, building the connection in place in `c`, which the caller owns
 * (e.g. a slot a forked child can see): c->fd, c->pid, c->dev and c->ino
 * are set as soon as the socket exists, so a child forked during the
 * connect finds the descriptor and can close its copy.  On failure c->fd
 * is -1.
 */
int	xc_connect_into(const char *path, int64_t deadline, char *errbuf,
	    size_t errlen, struct xc_conn *c);

/*
 * Send one request and read its reply.  The reply payload (at most
 * `reply_max` bytes, <= XW_PAYLOAD_MAX) is allocated, validated as a field
 * list, NUL-terminated one byte past its end, and handed to the caller, who
 * frees it (wiping it first if it may hold a key).  The agent's status is
 * in *ret_status; a non-zero status is not a transport error.
 *
 * -XTCMK_E_UNAVAILABLE means the agent closed the connection before any
 * byte of the reply arrived (e.g. an idle connection it had dropped): the
 * request may be retried once on a fresh connection.
 */
int	xc_request(struct xc_conn *c, uint16_t type, const void *payload,
	    size_t len, size_t reply_max, int64_t deadline, char *errbuf,
	    size_t errlen, uint16_t *ret_status, uint8_t **ret_reply,
	    size_t *ret_reply_len);
/*
 * xc_request in two halves, for requests sent ahead on one connection
 * (the agent answers a connection's requests in order): xc_send sends
 * and gives the request's id; xc_reply reads the reply to it, oldest
 * first.  Either closes the connection on a transport failure.
 */
int	xc_send(struct xc_conn *c, uint16_t type, const void *payload,
	    size_t len, int64_t deadline, char *errbuf, size_t errlen,
	    uint32_t *ret_reqid);
int	xc_reply(struct xc_conn *c, uint16_t type, uint32_t reqid,
	    size_t reply_max, int64_t deadline, char *errbuf, size_t errlen,
	    uint16_t *ret_status, uint8_t **ret_reply, size_t *ret_reply_len);

/* Close the connection (its opener also shuts the socket down, so copies
 * of the descriptor elsewhere do not keep it open); in a process other
 * than its opener, only forget it (closing the descriptor only if it is
 * still the same socket). */
void	xc_close(struct xc_conn *c);

/* Copy the XT_MESSAGE text of an error reply into buf ("" if none). */
void	xc_reply_message(const uint8_t *reply, size_t len, char *buf,
	    size_t buflen);

#endif
