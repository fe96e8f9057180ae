/*
 * etcd.h - a client of etcd's v3 JSON gateway (/v3/kv/range, /v3/kv/txn,
 * /v3/watch, /v3/lease/grant and keepalive, /v3/auth/authenticate) over
 * libcurl, with jansson for the bodies.  Keys and values travel base64-encoded; int64
 * fields (revisions, lease ids) travel as JSON strings.
 *
 * Several endpoints: a call that cannot reach one (connect failure,
 * timeout, 5xx) tries the next, all within one deadline.  TLS is verified
 * always (CA file, optional client certificate); user/password auth gets
 * a token from /v3/auth/authenticate and renews it when etcd refuses it.
 * Thread-safe: unary calls share one handle behind a mutex; a watch runs
 * on its own handle in the caller's thread.
 */
#ifndef XTCMK_ETCD_H
#define XTCMK_ETCD_H

#include <jansson.h>

#include "xerr.h"

#define ETCD_ENDPOINTS_MAX	16
#define ETCD_REPLY_MAX		(64u << 20)	/* one unary reply */
#define ETCD_EVENT_MAX		(16u << 20)	/* one watch message */
#define ETCD_KEY_MAX		1024
#define ETCD_WATCH_IDLE_MS	5000	/* silence before a watch checks */

struct etcd_opts {
	const char	*endpoints[ETCD_ENDPOINTS_MAX];	/* http(s)://host:port */
	int		 n_endpoints;
	const char	*ca_file;	/* NULL: the system's CAs */
	const char	*cert_file;	/* client certificate, or NULL */
	const char	*key_file;
	const char	*user;		/* NULL: no auth */
	const char	*password;
	unsigned	 timeout_ms;	/* one call, all endpoints tried */
};

struct etcd;

int	etcd_open(const struct etcd_opts *o, struct etcd **ret_etcd,
	    struct xerr *e);
void	etcd_free(struct etcd *c);

/* POST `body` to `path` ("/v3/kv/range"...), parse the reply. */
int	etcd_call(struct etcd *c, const char *path, json_t *body,
	    json_t **ret_reply, struct xerr *e);

/* base64 of `n` bytes (a JSON string), and the bytes of one (malloc'ed,
 * NUL-terminated). */
json_t	*etcd_b64(const void *p, size_t n);
json_t	*etcd_b64s(const char *s);
int	etcd_unb64(json_t *v, char **ret_s, size_t *ret_len);
/* An int64 field (string or number) of `o`; 0 when absent. */
long long etcd_int(json_t *o, const char *key);

/*
 * Range [key, end) at `rev` (0: latest), `limit` keys (0: all).  The
 * reply as etcd sends it; *ret_rev is its header revision.
 */
int	etcd_range(struct etcd *c, const char *key, const char *end,
	    long long rev, long long limit, json_t **ret_reply,
	    long long *ret_rev, struct xerr *e);

/*
 * A transaction {"compare": [...], "success": [...], "failure": [...]}
 * built with the helpers below.  *ret_ok is 1 when the compares held,
 * *ret_rev the header revision (the commit's revision on success).
 */
int	etcd_txn(struct etcd *c, json_t *txn, int *ret_ok, long long *ret_rev,
	    struct xerr *e);
/* Compare: target "CREATE" | "MOD" | "VERSION", result "EQUAL" | "LESS" |
 * "GREATER" | "NOT_EQUAL", against `n`. */
json_t	*etcd_cmp(const char *key, const char *target, const char *result,
	    long long n);
/* Put `value` (NULL with ignore_value: only bump the key's revision). */
json_t	*etcd_put(const char *key, const char *value, long long lease);
json_t	*etcd_touch(const char *key);
json_t	*etcd_del(const char *key);

/* Leases: grant one of `ttl` seconds, keep it alive once. */
int	etcd_lease_grant(struct etcd *c, long long ttl, long long *ret_id,
	    struct xerr *e);
int	etcd_lease_keepalive(struct etcd *c, long long id, struct xerr *e);

/*
 * Watch [key, end) from `start_rev`, calling `fn` for every message
 * ({"result": {...}}) until it returns non-zero (returned as is), `*stop`
 * becomes set, or the stream fails (<0).  Blocks the calling thread.
 */
int	etcd_watch(struct etcd *c, const char *key, const char *end,
	    long long start_rev, int (*fn)(void *, json_t *), void *arg,
	    const volatile int *stop, struct xerr *e);

/* The prefix's range end: `prefix` with its last byte incremented. */
void	etcd_prefix_end(const char *prefix, char *buf, size_t len);

#endif
