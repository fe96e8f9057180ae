/*
 * xtcmk.c - libxtcmk, the client module host services load (a guest in
 * someone else's process).
 *
 * Owns: the handle and its connection pool, fork detection, the public
 * calls of xtcmk.h, the decision index and the per-thread error text.  The
 * transport itself (connect, server check, framing, deadline) is in
 * common/client.c, shared with xtcmkctl.
 *
 * Rules for a guest: libc and pthread only; no constructors, no
 * pthread_atfork, no signal handlers, no printing, no exit/abort/assert;
 * every descriptor CLOEXEC and above 2; secrets wiped before release.
 */
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "wire.h"
#include "client.h"
#include "dekcache.h"
#include "shm.h"
#include "xtcmk.h"

#define XTCMK_EXPORT	__attribute__((visibility("default")))

#define XTCMK_POOL_MAX		8	/* idle connections kept per handle */
#define XTCMK_TIMEOUT_DEFAULT	5000	/* ms, per call, total */
#define XTCMK_ERR_MAX		512	/* xtcmk_last_error() text */
#define XTCMK_DECISION_REPLY_MAX XW_PAYLOAD_MAX
#define XTCMK_DECISION_FIELDS_MAX 2048	/* fields kept from one decision */
#define XTCMK_DECISION_TAG_MAX	99	/* tags 1..99 are decision fields */
#define XTCMK_DEK_REPLY_MAX	(3 * XW_FIELD_HDR + XTCMK_DEK_LEN + \
				    XTCMK_BLOB_MAX + XW_STR_MAX + 256)
#define XTCMK_STATUS_REPLY_MAX	(2 * XW_STR_MAX + 256)
#define XTCMK_REQ_MAX		(2 * XW_FIELD_HDR + XW_CUSTOMER_MAX + \
				    XTCMK_BLOB_MAX)
#define XTCMK_HOST_CACHE_TTL_MAX 86400	/* s, as the agent enforces */

struct xtcmk {
	char		*path;
	unsigned	 timeout_ms;
	pthread_mutex_t	 lock;		/* guards pid, nidle, idle */
	pid_t		 pid;		/* process the pool belongs to */
	size_t		 nidle;
	struct xc_conn	 idle[XTCMK_POOL_MAX];
	struct xm_client *fast;		/* module/shm.c; NULL: socket only */
	struct hc	*dek_cache;	/* module/dekcache.c; NULL: none */
};

#define DF_STR	0x1
#define DF_U64	0x2

struct xtcmk_dfield {
	uint16_t	 tag;
	uint16_t	 flags;		/* DF_* */
	uint64_t	 u64;
	const char	*str;		/* NUL-terminated copy, if DF_STR */
};

/* One allocation: this header, then the index, then the strings. */
struct xtcmk_decision {
	size_t			 n;
	struct xtcmk_dfield	*f;
};

static __thread char last_err[XTCMK_ERR_MAX];

static void set_error(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(last_err, sizeof(last_err), fmt, ap);
	va_end(ap);
}

static int
inval(const char *what)
{
	set_error("%s", what);
	return XTCMK_E_INVAL;
}

static int
check_customer(const char *customer)
{
	size_t n;

	if (customer == NULL)
		return inval("customer is NULL");
	n = strnlen(customer, XW_CUSTOMER_MAX + 1);
	if (n == 0 || n > XW_CUSTOMER_MAX) {
		set_error("customer id must be 1..%u bytes",
		    (unsigned)XW_CUSTOMER_MAX);
		return XTCMK_E_INVAL;
	}
	return 0;
}

static const char *const result_text[XTCMK__RESULT_COUNT] = {
	[XTCMK_OK] = "success",
	[XTCMK_E_INVAL] = "invalid argument",
	[XTCMK_E_UNAVAILABLE] = "xtcmkd is not reachable",
	[XTCMK_E_TIMEOUT] = "deadline passed",
	[XTCMK_E_DENIED] = "permission denied",
	[XTCMK_E_NOT_FOUND] = "not found",
	[XTCMK_E_PROTOCOL] = "protocol error",
	[XTCMK_E_NOMEM] = "out of memory",
	[XTCMK_E_TOOBIG] = "request or reply too big",
	[XTCMK_E_POLICY] = "policy failed or refused",
	[XTCMK_E_REVOKED] = "customer key revoked or unusable",
	[XTCMK_E_NOT_SERVED] = "this host's workload does not serve the "
	    "customer",
	[XTCMK_E_INTERNAL] = "internal error in xtcmkd",
	[XTCMK_E_CONFLICT] = "conflict with an invariant",
	[XTCMK_E_EXISTS] = "already exists",
	[XTCMK_E_BAD_BLOB] = "wrapped key blob is corrupt or foreign",
	[XTCMK_E_WRONG_CUSTOMER] = "wrapped key blob belongs to another "
	    "customer",
	[XTCMK_E_UNSUPPORTED] = "unsupported version",
	[XTCMK_E_PROVIDER] = "key service failed",
	[XTCMK_E_BUSY] = "xtcmkd is busy, retry later",
};

XTCMK_EXPORT const char *
xtcmk_strerror(int code)
{
	if (code < 0 || code >= XTCMK__RESULT_COUNT ||
	    result_text[code] == NULL)
		return "unknown error";
	return result_text[code];
}

XTCMK_EXPORT const char *
xtcmk_last_error(void)
{
	return last_err;
}

XTCMK_EXPORT int
xtcmk_open(const char *socket_path, unsigned timeout_ms,
    struct xtcmk **ret_handle)
{
	struct xtcmk *h;
	const char *path = socket_path;
	size_t n;

	if (ret_handle == NULL)
		return inval("ret_handle is NULL");
	if (path == NULL) {
		path = secure_getenv("XTCMK_SOCKET");
		if (path == NULL || *path == '\0')
			path = XTCMK_SOCKET;
	}
	n = strlen(path);
	if (n == 0 || n >= XC_UNIX_PATH_MAX) {
		set_error("socket path must be 1..%u bytes",
		    (unsigned)XC_UNIX_PATH_MAX - 1);
		return XTCMK_E_INVAL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->path = strdup(path)) == NULL) {
		free(h);
		set_error("out of memory");
		return XTCMK_E_NOMEM;
	}
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h->path);
		free(h);
		set_error("cannot initialise a mutex");
		return XTCMK_E_NOMEM;
	}
	h->timeout_ms = timeout_ms == 0 ? XTCMK_TIMEOUT_DEFAULT : timeout_ms;
	h->pid = getpid();
	h->fast = xm_client_new(path);	/* fast path: optional */
	h->dek_cache = hc_new();	/* optional too */
	*ret_handle = h;
	return XTCMK_OK;
}

/*
 * Called with h->lock held.  In a forked child, the pool's connections are
 * the parent's: forget them (xc_close only closes a descriptor that is
 * still the same socket, and never talks on it).
 */
static void
pool_check_fork(struct xtcmk *h)
{
	pid_t me = getpid();
	size_t i;

	if (h->pid == me)
		return;
	for (i = 0; i < h->nidle; i++)
		xc_close(&h->idle[i]);
	h->nidle = 0;
	h->pid = me;
}

static int
pool_take(struct xtcmk *h, struct xc_conn *ret_conn)
{
	int found = 0;

	pthread_mutex_lock(&h->lock);
	pool_check_fork(h);
	if (h->nidle > 0) {
		*ret_conn = h->idle[--h->nidle];
		found = 1;
	}
	pthread_mutex_unlock(&h->lock);
	return found;
}

static void
pool_put(struct xtcmk *h, struct xc_conn *c)
{
	/*
	 * No fork check needed: a call only ends in the process that began
	 * it, and a parent's h->pid never changes.
	 */
	pthread_mutex_lock(&h->lock);
	if (c->pid == h->pid && h->nidle < XTCMK_POOL_MAX) {
		h->idle[h->nidle++] = *c;
		c->fd = -1;
	}
	pthread_mutex_unlock(&h->lock);
	xc_close(c);
}

/* Drop every idle connection: after one went stale, the rest likely did. */
static void
pool_flush(struct xtcmk *h)
{
	pthread_mutex_lock(&h->lock);
	pool_check_fork(h);
	while (h->nidle > 0)
		xc_close(&h->idle[--h->nidle]);
	pthread_mutex_unlock(&h->lock);
}

XTCMK_EXPORT void
xtcmk_close(struct xtcmk *h)
{
	if (h == NULL)
		return;
	pool_flush(h);
	xm_client_free(h->fast);
	hc_free(h->dek_cache);
	pthread_mutex_destroy(&h->lock);
	free(h->path);
	free(h);
}

/*
 * One request with one total deadline.  A pooled connection the agent has
 * dropped (idle timeout, restart) fails before any reply byte arrives; the
 * request is then sent once more on a fresh connection.  On success the
 * reply is the caller's; a non-zero agent status is returned positive with
 * the agent's message in last_err, and the reply already released.
 */
static int
call(struct xtcmk *h, uint16_t type, const uint8_t *req, size_t len,
    size_t reply_max, int wipe, uint8_t **ret_reply, size_t *ret_len)
{
	char errbuf[XC_ERR_MAX];
	struct xc_conn c;
	uint8_t *reply = NULL;
	size_t rlen = 0;
	uint16_t status = 0;
	int64_t deadline = xc_deadline(h->timeout_ms);
	int reused, rc;

	errbuf[0] = '\0';
	reused = pool_take(h, &c);
	for (;;) {
		if (!reused && (rc = xc_connect(h->path, deadline, errbuf,
		    sizeof(errbuf), &c)) < 0)
			break;
		rc = xc_request(&c, type, req, len, reply_max, deadline,
		    errbuf, sizeof(errbuf), &status, &reply, &rlen);
		if (rc == -XTCMK_E_UNAVAILABLE && reused) {
			pool_flush(h);
			reused = 0;
			continue;
		}
		break;
	}
	if (rc < 0) {
		set_error("%s", errbuf[0] != '\0' ? errbuf :
		    xtcmk_strerror(-rc));
		return -rc;
	}
	pool_put(h, &c);
	if (status != 0) {
		xc_reply_message(reply, rlen, last_err, sizeof(last_err));
		if (last_err[0] == '\0')
			set_error("%s", xtcmk_strerror(status));
		if (wipe)
			explicit_bzero(reply, rlen + 1);
		free(reply);
		return status;
	}
	*ret_reply = reply;
	*ret_len = rlen;
	return XTCMK_OK;
}

static void
release(uint8_t *reply, size_t len, int wipe)
{
	if (reply == NULL)
		return;
	if (wipe)
		explicit_bzero(reply, len + 1);
	free(reply);
}

static int
protocol_error(const char *what)
{
	set_error("malformed reply from xtcmkd: %s", what);
	return XTCMK_E_PROTOCOL;
}

/* Decision field types, for checking replies. */
static int
tag_is_u64(uint16_t tag)
{
	switch (tag) {
	case XT_SERVED:
	case XT_REFRESH_S:
	case XT_REVOCATION_CHECK_S:
	case XT_GRACE_S:
	case XT_CACHE_TTL_S:
	case XT_CACHE_MAX:
	case XT_ASSIGNED_AT:
		return 1;
	default:
		return 0;
	}
}

static int
tag_is_known(uint16_t tag)
{
	return tag >= XT_CUSTOMER && tag <= XT_KEY_REASON;
}

/*
 * Index a DECIDE reply: every field with a decision tag, each string
 * copied out NUL-terminated.  Known fields of the wrong shape reject the
 * whole reply; unknown tags (newer agents) are kept by shape.
 */
static int
decision_parse(const uint8_t *p, size_t len,
    struct xtcmk_decision **ret_decision)
{
	struct xtcmk_decision *d;
	struct xw_reader r;
	struct xw_field f;
	struct xtcmk_dfield *df;
	size_t n = 0, strbytes = 0, i = 0;
	char *s;
	int rc;

	xw_reader_init(&r, p, len);
	while ((rc = xw_next(&r, &f)) > 0) {
		if (f.tag == 0 || f.tag > XTCMK_DECISION_TAG_MAX)
			continue;
		if (tag_is_known(f.tag)) {
			if (tag_is_u64(f.tag) && f.len != 8)
				return protocol_error("integer field is not "
				    "8 bytes");
			if (!tag_is_u64(f.tag) &&
			    !xw_field_is_str(&f, XW_STR_MAX))
				return protocol_error("string field has a NUL "
				    "byte or is too long");
		}
		if (++n > XTCMK_DECISION_FIELDS_MAX)
			return protocol_error("too many fields");
		strbytes += f.len + 1;
	}
	if (rc < 0)
		return protocol_error("truncated field");

	d = malloc(sizeof(*d) + n * sizeof(*df) + strbytes);
	if (d == NULL) {
		set_error("out of memory");
		return XTCMK_E_NOMEM;
	}
	d->n = n;
	d->f = (struct xtcmk_dfield *)(d + 1);
	s = (char *)(d->f + n);
	xw_reader_init(&r, p, len);
	while (xw_next(&r, &f) > 0) {
		if (f.tag == 0 || f.tag > XTCMK_DECISION_TAG_MAX)
			continue;
		df = &d->f[i++];
		df->tag = f.tag;
		df->flags = 0;
		df->u64 = 0;
		df->str = NULL;
		if ((!tag_is_known(f.tag) || tag_is_u64(f.tag)) &&
		    xw_field_u64(&f, &df->u64) == 0)
			df->flags |= DF_U64;
		if ((!tag_is_known(f.tag) || !tag_is_u64(f.tag)) &&
		    xw_field_is_str(&f, XW_STR_MAX)) {
			memcpy(s, f.val, f.len);
			s[f.len] = '\0';
			df->str = s;
			df->flags |= DF_STR;
			s += f.len + 1;
		}
	}
	*ret_decision = d;
	return XTCMK_OK;
}

/*
 * The decision from the agent's memory-mapped file (module/shm.c), parsed
 * as a socket reply is; anything but XTCMK_OK: ask the socket.
 */
static int
fastpath_decide(struct xtcmk *h, const char *customer,
    struct xtcmk_decision **ret_decision)
{
	uint8_t buf[XM_SLOT_SIZE_MAX];
	size_t len;

	if (!xm_client_lookup(h->fast, customer, buf, sizeof(buf), &len))
		return XTCMK_E_UNAVAILABLE;
	if (decision_parse(buf, len, ret_decision) != XTCMK_OK) {
		xm_client_bad(h->fast);
		return XTCMK_E_PROTOCOL;
	}
	return XTCMK_OK;
}

XTCMK_EXPORT int
xtcmk_decide(struct xtcmk *h, const char *customer,
    struct xtcmk_decision **ret_decision)
{
	uint8_t req[XTCMK_REQ_MAX], *reply = NULL;
	struct xw_buf b;
	size_t rlen;
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	if (ret_decision == NULL)
		return inval("ret_decision is NULL");
	if ((rc = check_customer(customer)) != 0)
		return rc;
	if ((rc = fastpath_decide(h, customer, ret_decision)) == XTCMK_OK)
		return rc;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	if ((rc = call(h, XW_DECIDE, b.data, b.len, XTCMK_DECISION_REPLY_MAX,
	    0, &reply, &rlen)) != 0)
		return rc;
	rc = decision_parse(reply, rlen, ret_decision);
	release(reply, rlen, 0);
	return rc;
}

XTCMK_EXPORT void
xtcmk_decision_free(struct xtcmk_decision *d)
{
	free(d);
}

static const struct xtcmk_dfield *
decision_nth(const struct xtcmk_decision *d, enum xtcmk_field f,
    unsigned flag, size_t nth)
{
	size_t i;

	if (d == NULL)
		return NULL;
	for (i = 0; i < d->n; i++) {
		if (d->f[i].tag != (uint16_t)f || !(d->f[i].flags & flag))
			continue;
		if (nth-- == 0)
			return &d->f[i];
	}
	return NULL;
}

XTCMK_EXPORT const char *
xtcmk_decision_str(const struct xtcmk_decision *d, enum xtcmk_field f)
{
	const struct xtcmk_dfield *df = decision_nth(d, f, DF_STR, 0);

	return df != NULL ? df->str : NULL;
}

XTCMK_EXPORT uint64_t
xtcmk_decision_u64(const struct xtcmk_decision *d, enum xtcmk_field f,
    uint64_t def)
{
	const struct xtcmk_dfield *df = decision_nth(d, f, DF_U64, 0);

	return df != NULL ? df->u64 : def;
}

XTCMK_EXPORT size_t
xtcmk_decision_count(const struct xtcmk_decision *d, enum xtcmk_field f)
{
	size_t i, n = 0;

	if (d == NULL)
		return 0;
	for (i = 0; i < d->n; i++)
		if (d->f[i].tag == (uint16_t)f && (d->f[i].flags & DF_STR))
			n++;
	return n;
}

XTCMK_EXPORT const char *
xtcmk_decision_item(const struct xtcmk_decision *d, enum xtcmk_field f,
    size_t i)
{
	const struct xtcmk_dfield *df = decision_nth(d, f, DF_STR, i);

	return df != NULL ? df->str : NULL;
}

/* The XT_DEK of a reply, exactly XTCMK_DEK_LEN bytes. */
static int
reply_dek(const uint8_t *reply, size_t rlen, struct xw_field *ret_f)
{
	if (xw_find(reply, rlen, XT_DEK, ret_f) != 1 ||
	    ret_f->len != XTCMK_DEK_LEN)
		return protocol_error("no 32-byte data key");
	return 0;
}

/* The XT_BLOB of a reply, 1..XTCMK_BLOB_MAX bytes, fitting in `cap`. */
static int
reply_blob(const uint8_t *reply, size_t rlen, size_t cap,
    struct xw_field *ret_f)
{
	if (xw_find(reply, rlen, XT_BLOB, ret_f) != 1 || ret_f->len == 0 ||
	    ret_f->len > XTCMK_BLOB_MAX)
		return protocol_error("no wrapped key blob of 1..2048 bytes");
	if (ret_f->len > cap) {
		set_error("blob buffer of %zu bytes is too small for %u "
		    "bytes; XTCMK_BLOB_MAX is always enough", cap,
		    ret_f->len);
		return XTCMK_E_TOOBIG;
	}
	return 0;
}

XTCMK_EXPORT int
xtcmk_dek_new(struct xtcmk *h, const char *customer,
    uint8_t dek[XTCMK_DEK_LEN], uint8_t *blob, size_t *blob_len)
{
	uint8_t req[XTCMK_REQ_MAX], *reply = NULL;
	struct xw_field fd, fb;
	struct xw_buf b;
	size_t rlen;
	int rc;

	if (h == NULL || dek == NULL || blob == NULL || blob_len == NULL)
		return inval("handle, dek, blob and blob_len must not be "
		    "NULL");
	if ((rc = check_customer(customer)) != 0)
		return rc;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	if ((rc = call(h, XW_DEK_NEW, b.data, b.len, XTCMK_DEK_REPLY_MAX, 1,
	    &reply, &rlen)) != 0)
		return rc;
	if ((rc = reply_dek(reply, rlen, &fd)) != 0 ||
	    (rc = reply_blob(reply, rlen, *blob_len, &fb)) != 0)
		goto out;
	memcpy(dek, fd.val, XTCMK_DEK_LEN);
	memcpy(blob, fb.val, fb.len);
	*blob_len = fb.len;
out:
	release(reply, rlen, 1);
	return rc;
}

static int
check_blob(const uint8_t *blob, size_t blob_len)
{
	if (blob == NULL)
		return inval("blob is NULL");
	if (blob_len == 0 || blob_len > XTCMK_BLOB_MAX) {
		set_error("blob must be 1..%u bytes", (unsigned)XTCMK_BLOB_MAX);
		return XTCMK_E_INVAL;
	}
	return 0;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * May DEKs of `customer` be kept in this process, and under which key
 * record?  Its published decision must be current and allow it
 * (host_cache_ttl).  A decision invalidated since (reload, registry
 * change) is published again with one DECIDE.  0: no; else the TTL in
 * seconds.
 */
static uint64_t
dek_cacheable(struct xtcmk *h, const char *customer, struct xm_rec *ret_rec)
{
	struct xtcmk_decision *d;
	uint64_t ttl = 0;
	enum xm_why why;

	if (h->dek_cache == NULL)
		return 0;
	why = xm_client_key(h->fast, customer, ret_rec, &ttl);
	/* Republish only for customers that used the cache. */
	if (why == XM_STALE && ttl > 0 &&
	    xtcmk_decide(h, customer, &d) == XTCMK_OK) {
		xtcmk_decision_free(d);
		why = xm_client_key(h->fast, customer, ret_rec, &ttl);
	}
	if (why != XM_HIT || ret_rec->state != XM_STATE_ACTIVE)
		return 0;
	return ttl < XTCMK_HOST_CACHE_TTL_MAX ? ttl : XTCMK_HOST_CACHE_TTL_MAX;
}

XTCMK_EXPORT int
xtcmk_dek_unwrap(struct xtcmk *h, const char *customer,
    const uint8_t *blob, size_t blob_len, uint8_t dek[XTCMK_DEK_LEN])
{
	uint8_t req[XTCMK_REQ_MAX], *reply = NULL;
	struct xw_field fd;
	struct xm_rec rec;
	struct xw_buf b;
	uint64_t ttl;
	size_t rlen;
	int rc;

	if (h == NULL || dek == NULL)
		return inval("handle and dek must not be NULL");
	if ((rc = check_customer(customer)) != 0 ||
	    (rc = check_blob(blob, blob_len)) != 0)
		return rc;
	/* The key record is read before the agent is asked: a revocation
	 * after this point changes the generation the entry is kept under. */
	if ((ttl = dek_cacheable(h, customer, &rec)) > 0 &&
	    hc_get(h->dek_cache, customer, blob, blob_len, &rec, mono_ms(),
	    dek))
		return XTCMK_OK;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	xw_put(&b, XT_BLOB, blob, blob_len);
	if ((rc = call(h, XW_DEK_UNWRAP, b.data, b.len, XTCMK_DEK_REPLY_MAX,
	    1, &reply, &rlen)) != 0)
		return rc;
	if ((rc = reply_dek(reply, rlen, &fd)) == 0) {
		memcpy(dek, fd.val, XTCMK_DEK_LEN);
		if (ttl > 0)
			hc_put(h->dek_cache, customer, blob, blob_len, &rec,
			    mono_ms() + ttl * 1000, dek);
	}
	release(reply, rlen, 1);
	return rc;
}

XTCMK_EXPORT int
xtcmk_dek_rewrap(struct xtcmk *h, const char *customer,
    const uint8_t *blob, size_t blob_len, uint8_t *new_blob,
    size_t *new_blob_len)
{
	uint8_t req[XTCMK_REQ_MAX], *reply = NULL;
	struct xw_field fb;
	struct xw_buf b;
	size_t rlen;
	int rc;

	if (h == NULL || new_blob == NULL || new_blob_len == NULL)
		return inval("handle, new_blob and new_blob_len must not be "
		    "NULL");
	if ((rc = check_customer(customer)) != 0 ||
	    (rc = check_blob(blob, blob_len)) != 0)
		return rc;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	xw_put(&b, XT_BLOB, blob, blob_len);
	if ((rc = call(h, XW_DEK_REWRAP, b.data, b.len, XTCMK_DEK_REPLY_MAX,
	    1, &reply, &rlen)) != 0)
		return rc;
	if ((rc = reply_blob(reply, rlen, *new_blob_len, &fb)) == 0) {
		memcpy(new_blob, fb.val, fb.len);
		*new_blob_len = fb.len;
	}
	release(reply, rlen, 1);
	return rc;
}

/* Copy a text field into dst (truncated, NUL-terminated), "" if absent. */
static void
copy_text(char *dst, size_t dstlen, const struct xw_field *f)
{
	size_t n = 0;

	if (dst == NULL || dstlen == 0)
		return;
	if (f != NULL) {
		n = f->len < dstlen - 1 ? f->len : dstlen - 1;
		memcpy(dst, f->val, n);
	}
	dst[n] = '\0';
}

XTCMK_EXPORT int
xtcmk_key_status(struct xtcmk *h, const char *customer, char *state,
    size_t state_len, char *reason, size_t reason_len)
{
	uint8_t req[XTCMK_REQ_MAX], *reply = NULL;
	struct xw_field fs, fr;
	struct xw_buf b;
	size_t rlen;
	int rc, have_reason;

	if (h == NULL)
		return inval("handle is NULL");
	if ((rc = check_customer(customer)) != 0)
		return rc;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	if ((rc = call(h, XW_KEY_STATUS, b.data, b.len,
	    XTCMK_STATUS_REPLY_MAX, 0, &reply, &rlen)) != 0)
		return rc;
	if (xw_find(reply, rlen, XT_KEY_STATE, &fs) != 1 ||
	    !xw_field_is_str(&fs, XW_STR_MAX)) {
		rc = protocol_error("no key state");
		goto out;
	}
	have_reason = xw_find(reply, rlen, XT_KEY_REASON, &fr) == 1;
	if (have_reason && !xw_field_is_str(&fr, XW_STR_MAX)) {
		rc = protocol_error("key reason is not text");
		goto out;
	}
	copy_text(state, state_len, &fs);
	copy_text(reason, reason_len, have_reason ? &fr : NULL);
out:
	release(reply, rlen, 0);
	return rc;
}

static const struct xtcmk_functions functions = {
	.api_version = XTCMK_API_VERSION,
	.size = sizeof(struct xtcmk_functions),
	.open = xtcmk_open,
	.close = xtcmk_close,
	.decide = xtcmk_decide,
	.decision_free = xtcmk_decision_free,
	.decision_str = xtcmk_decision_str,
	.decision_u64 = xtcmk_decision_u64,
	.decision_count = xtcmk_decision_count,
	.decision_item = xtcmk_decision_item,
	.strerror = xtcmk_strerror,
	.last_error = xtcmk_last_error,
	.dek_new = xtcmk_dek_new,
	.dek_unwrap = xtcmk_dek_unwrap,
	.dek_rewrap = xtcmk_dek_rewrap,
	.key_status = xtcmk_key_status,
};

XTCMK_EXPORT const struct xtcmk_functions *
xtcmk_get_functions(void)
{
	return &functions;
}

/* --- fast path (XTCMK_FASTPATH_1.1) ---------------------------------- */

XTCMK_EXPORT int
xtcmk_fastpath_stats(struct xtcmk *h, struct xtcmk_fastpath_stats *ret_stats,
    size_t size)
{
	struct xtcmk_fastpath_stats st;

	if (h == NULL || ret_stats == NULL)
		return inval("handle and ret_stats must not be NULL");
	xm_client_stats(h->fast, &st);
	{
		struct hc_stats hs;

		hc_get_stats(h->dek_cache, &hs);
		st.dek_hits = hs.hits;
		st.dek_misses = hs.misses;
		st.dek_inserts = hs.inserts;
		st.dek_evictions = hs.evictions;
		st.dek_invalid = hs.invalid;
		st.dek_entries = hs.entries;
	}
	memcpy(ret_stats, &st, size < sizeof(st) ? size : sizeof(st));
	return XTCMK_OK;
}
