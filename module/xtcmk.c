/*
 * xtcmk.c - libxtcmk, the client module host services load (a guest in
 * someone else's process).
 *
 * Owns: the public calls of xtcmk.h (the handle and its connection pool
 * are in pool.c), the decision index and the per-thread error text.  The
 * transport itself (connect, server check, framing, deadline) is in
 * common/client.c, shared with xtcmkctl.
 *
 * Rules for a guest: libc and pthread only; no constructors, no
 * pthread_atfork, no signal handlers, no printing, no exit/abort/assert;
 * every descriptor CLOEXEC and above 2; secrets wiped before release.
 */
#include <sys/mman.h>
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
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
#include "pool.h"

#define XTCMK_EXPORT	__attribute__((visibility("default")))

#define XTCMK_TIMEOUT_DEFAULT	5000	/* ms, per call, total */
#define XTCMK_DECISION_REPLY_MAX XW_PAYLOAD_MAX
#define XTCMK_DECISION_FIELDS_MAX 2048	/* fields kept from one decision */
#define XTCMK_DECISION_TAG_MAX	99	/* tags 1..99 are decision fields */
#define XTCMK_DEK_REPLY_MAX	(3 * XW_FIELD_HDR + XTCMK_DEK_MAX + \
				    XTCMK_BLOB_MAX + XW_STR_MAX + 256)
#define XTCMK_STATUS_REPLY_MAX	(3 * XW_STR_MAX + 256)
#define XTCMK_REQ_MAX		(3 * XW_FIELD_HDR + XW_CUSTOMER_MAX + \
				    XTCMK_BLOB_MAX + 8)
#define XTCMK_HOST_CACHE_TTL_MAX 86400	/* s, as the agent enforces */

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
	[XTCMK_E_UNCONFIRMED] = "customer key state could not be confirmed "
	    "lately, retry later",
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

/* The handle's per-process page (MADV_WIPEONFORK), so the fast path
 * notices a fork without a system call and a child never waits for its
 * parent's threads; NULL where the kernel lacks it (no fast path then). */
static struct xtcmk_fork *
fork_page(void)
{
	size_t n = (size_t)sysconf(_SC_PAGESIZE);
	struct xtcmk_fork *p;

	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (madvise(p, n, MADV_WIPEONFORK) == -1) {
		munmap(p, n);
		return NULL;
	}
	p->unforked = 1;
	p->opener = 1;
	return p;
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
	    (h->path = strdup(path)) == NULL ||
	    (h->pool = pool_new(NULL)) == NULL) {
		if (h != NULL)
			free(h->path);
		free(h);
		set_error("out of memory");
		return XTCMK_E_NOMEM;
	}
	h->timeout_ms = timeout_ms == 0 ? XTCMK_TIMEOUT_DEFAULT : timeout_ms;
	if ((h->fk = fork_page()) != NULL)
		h->fast = xm_client_new(path);	/* fast path: optional */
	h->dek_cache = hc_new();	/* optional too */
	*ret_handle = h;
	return XTCMK_OK;
}

/*
 * Fast-path users inside, summed over the shards.  Each user adds to its
 * shard, then reads `closed` (both sequentially consistent); xtcmk_close
 * stores `closed`, then reads every shard: a user it does not count sees
 * `closed` and leaves, and one counted holds its shard above 0 until it
 * leaves.
 */
static unsigned
fast_users(const struct xtcmk *h)
{
	unsigned i, n = 0;

	if (h->fk == NULL)
		return 0;
	for (i = 0; i < XTCMK_BUSY_SHARDS; i++)
		n += __atomic_load_n(&h->fk->busy[i].n, __ATOMIC_SEQ_CST);
	return n;
}

/*
 * Calls already running in other threads finish (each within its own
 * deadline) and the last one to end frees the handle; no call may start
 * once xtcmk_close has been called.  In a forked child this closes the
 * child's copies of the parent's connections without taking any lock.
 */
XTCMK_EXPORT void
xtcmk_close(struct xtcmk *h)
{
	struct xtcmk_pool *p;
	int last;

	if (h == NULL)
		return;
	p = __atomic_load_n(&h->pool, __ATOMIC_ACQUIRE);
	if (p->pid != getpid()) {
		handle_free(h);		/* no call can be inside in a child */
		return;
	}
	/* Fast-path lookups take no slot: wait for those inside, which
	 * never block (module/shm.c, module/dekcache.c: bounded retries,
	 * trylock only), then no new one starts. */
	__atomic_store_n(&h->closed, 1, __ATOMIC_SEQ_CST);
	while (fast_users(h) != 0)
		sched_yield();
	pthread_mutex_lock(&p->lock);
	p->closing = 1;
	pool_flush(p);
	last = p->busy == 0;
	pthread_mutex_unlock(&p->lock);
	if (last)
		handle_free(h);
}

/* One call in progress: its slot is held until call_end. */
struct xcall {
	struct xtcmk		*h;
	struct xtcmk_pool	*p;	/* NULL until a slot is taken */
	struct xtcmk_slot	*s;
	uint8_t			*reply;
	size_t			 rlen;
	int			 wipe;	/* the reply may hold a key */
	uint64_t		 need;	/* XT_BLOB_NEED of a TOOBIG reply */
	uint64_t		 dek_need; /* XT_DEK_NEED of one */
	size_t			 dek_len; /* request: DEK_NEW's length */
	size_t			 dek_cap; /* request: room for the DEK */
};

static void
call_init(struct xcall *x, struct xtcmk *h, int wipe)
{
	memset(x, 0, sizeof(*x));
	x->h = h;
	x->wipe = wipe;
}

/* The deadline of one call: the options', else the handle's. */
static int
call_timeout(const struct xtcmk *h, const struct xtcmk_opts *o,
    unsigned *ret_ms)
{
	if (o == NULL) {
		*ret_ms = h->timeout_ms;
		return 0;
	}
	if (o->size < sizeof(o->size))
		return inval("opts->size must be sizeof(struct xtcmk_opts)");
	*ret_ms = o->size >= offsetof(struct xtcmk_opts, timeout_ms) +
	    sizeof(o->timeout_ms) && o->timeout_ms != 0 ? o->timeout_ms :
	    h->timeout_ms;
	return 0;
}

/* The DEK length xtcmk_dek_new2 asks for: opts->dek_len, else 32. */
static size_t
opts_dek_len(const struct xtcmk_opts *o)
{
	if (o == NULL || o->size < offsetof(struct xtcmk_opts, dek_len) +
	    sizeof(o->dek_len) || o->dek_len == 0)
		return XTCMK_DEK_LEN;
	return o->dek_len;
}

/*
 * One request with one total deadline.  A pooled connection the agent has
 * dropped (idle timeout, restart) fails before any reply byte arrives; the
 * request is then sent once more on a fresh connection.  On success the
 * reply is in x->reply; a non-zero agent status is returned positive with
 * the agent's message in last_err.  Every call() is followed by
 * call_end(), which returns the slot.
 */
static int
call(struct xcall *x, uint16_t type, const uint8_t *req, size_t len,
    size_t reply_max, unsigned timeout_ms)
{
	char errbuf[XC_ERR_MAX];
	struct xtcmk_slot *s;
	struct xw_field f;
	uint16_t status = 0;
	int64_t deadline = xc_deadline(timeout_ms);
	int reused, rc;

	errbuf[0] = '\0';
	if ((rc = pool_take(x->h, &x->p, &x->s)) != 0) {
		set_error("out of memory");
		return rc;
	}
	s = x->s;
	reused = s->c.fd >= 0;
	for (;;) {
		if (!reused && (rc = xc_connect_into(x->h->path, deadline,
		    errbuf, sizeof(errbuf), &s->c)) < 0)
			break;
		rc = xc_request(&s->c, type, req, len, reply_max, deadline,
		    errbuf, sizeof(errbuf), &status, &x->reply, &x->rlen);
		if (rc == -XTCMK_E_UNAVAILABLE && reused) {
			pthread_mutex_lock(&x->p->lock);
			pool_flush(x->p);
			pthread_mutex_unlock(&x->p->lock);
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
	if (status != 0) {
		xc_reply_message(x->reply, x->rlen, last_err, sizeof(last_err));
		if (last_err[0] == '\0')
			set_error("%s", xtcmk_strerror(status));
		if (status == XTCMK_E_TOOBIG &&
		    xw_find(x->reply, x->rlen, XT_BLOB_NEED, &f) == 1)
			(void)xw_field_u64(&f, &x->need);
		if (status == XTCMK_E_TOOBIG &&
		    xw_find(x->reply, x->rlen, XT_DEK_NEED, &f) == 1)
			(void)xw_field_u64(&f, &x->dek_need);
		return status;
	}
	return XTCMK_OK;
}

/*
 * Finish a call that ends in `rc`: release the reply, return the slot
 * (after which the handle may be gone, if xtcmk_close ran meanwhile) and
 * note the result for xtcmk_handle_error and xtcmk_last_error.
 */
static int
call_end(struct xcall *x, int rc)
{
	struct xtcmk_pool *p;

	if (x->reply != NULL) {
		if (x->wipe)
			explicit_bzero(x->reply, x->rlen + 1);
		free(x->reply);
		x->reply = NULL;
	}
	if (rc == XTCMK_OK)
		last_err[0] = '\0';
	if (x->p != NULL)
		pool_put(x->h, x->p, x->s, rc, last_err);
	else if (x->h != NULL && rc != XTCMK_OK &&
	    (p = pool_get(x->h)) != NULL) {
		/* Refused before any request: still the handle's error. */
		pthread_mutex_lock(&p->lock);
		pool_note(p, rc, last_err);
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
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
		/* Known strings were checked in the first pass. */
		if (tag_is_known(f.tag) ? !tag_is_u64(f.tag) :
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
 * The fast path (module/shm.c, module/dekcache.c) takes no pool slot, so
 * xtcmk_close counts its users instead: it sets `closed`, then waits for
 * the per-thread counts of users inside to drain (fast_users).  Lookups
 * never block, so the wait is short.  A call that finds the handle
 * closing goes the socket way, which refuses it.
 */
static int
fast_enter(struct xtcmk *h)
{
	unsigned *busy;

	if (h->fast == NULL)
		return 0;
	/* A forked child takes its own pool (closing the parent's sockets)
	 * on its first call, whichever way that call is answered. */
	if (__atomic_load_n(&h->fk->unforked, __ATOMIC_ACQUIRE) == 0) {
		if (pool_get(h) == NULL)
			return 0;
		__atomic_store_n(&h->fk->unforked, 1, __ATOMIC_RELEASE);
	}
	busy = &h->fk->busy[xm_thread_shard() % XTCMK_BUSY_SHARDS].n;
	__atomic_add_fetch(busy, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&h->closed, __ATOMIC_SEQ_CST)) {
		__atomic_sub_fetch(busy, 1, __ATOMIC_SEQ_CST);
		return 0;
	}
	return 1;
}

static void
fast_leave(struct xtcmk *h)
{
	__atomic_sub_fetch(&h->fk->busy[xm_thread_shard() %
	    XTCMK_BUSY_SHARDS].n, 1, __ATOMIC_SEQ_CST);
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
	int hit;

	if (!fast_enter(h))
		return XTCMK_E_UNAVAILABLE;
	hit = xm_client_lookup(h->fast, customer, buf, sizeof(buf), &len);
	if (hit && decision_parse(buf, len, ret_decision) != XTCMK_OK) {
		xm_client_bad(h->fast);
		hit = 0;
	}
	fast_leave(h);
	return hit ? XTCMK_OK : XTCMK_E_UNAVAILABLE;
}

XTCMK_EXPORT int
xtcmk_decide2(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, struct xtcmk_decision **ret_decision)
{
	uint8_t req[XTCMK_REQ_MAX];
	struct xcall x;
	struct xw_buf b;
	unsigned ms;
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 0);
	if (ret_decision == NULL)
		return call_end(&x, inval("ret_decision is NULL"));
	if ((rc = call_timeout(h, opts, &ms)) != 0 ||
	    (rc = check_customer(customer)) != 0)
		return call_end(&x, rc);
	if (fastpath_decide(h, customer, ret_decision) == XTCMK_OK)
		return call_end(&x, XTCMK_OK);
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	if ((rc = call(&x, XW_DECIDE, b.data, b.len, XTCMK_DECISION_REPLY_MAX,
	    ms)) == 0)
		rc = decision_parse(x.reply, x.rlen, ret_decision);
	return call_end(&x, rc);
}

XTCMK_EXPORT int
xtcmk_decide(struct xtcmk *h, const char *customer,
    struct xtcmk_decision **ret_decision)
{
	return xtcmk_decide2(h, customer, NULL, ret_decision);
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

/*
 * The XT_DEK of a reply, to go into a buffer of *dek_len bytes.  1.0 calls
 * (`exact`) take exactly XTCMK_DEK_LEN bytes and leave *dek_len alone on
 * failure; 1.1 calls take 16..XTCMK_DEK_MAX and learn the size needed.
 */
static int
reply_dek(const struct xcall *x, int exact, size_t *dek_len,
    struct xw_field *ret_f)
{
	if (xw_find(x->reply, x->rlen, XT_DEK, ret_f) != 1 ||
	    (exact && ret_f->len != XTCMK_DEK_LEN) || ret_f->len < 16 ||
	    ret_f->len > XTCMK_DEK_MAX)
		return protocol_error(exact ? "no 32-byte data key" :
		    "no data key of 16..64 bytes");
	if (ret_f->len > *dek_len) {
		set_error("data key buffer of %zu bytes is too small for %u "
		    "bytes", *dek_len, ret_f->len);
		if (!exact)
			*dek_len = ret_f->len;
		return XTCMK_E_TOOBIG;
	}
	return 0;
}

/* The XT_BLOB of a reply, 1..XTCMK_BLOB_MAX bytes, to go into *blob_len
 * bytes; on TOOBIG a 1.1 call (`need`) learns the size needed. */
static int
reply_blob(const struct xcall *x, int need, size_t *blob_len,
    struct xw_field *ret_f)
{
	if (xw_find(x->reply, x->rlen, XT_BLOB, ret_f) != 1 ||
	    ret_f->len == 0 || ret_f->len > XTCMK_BLOB_MAX)
		return protocol_error("no wrapped key blob of 1..2048 bytes");
	if (ret_f->len > *blob_len) {
		set_error("blob buffer of %zu bytes is too small for %u "
		    "bytes; XTCMK_BLOB_MAX is always enough", *blob_len,
		    ret_f->len);
		if (need)
			*blob_len = ret_f->len;
		return XTCMK_E_TOOBIG;
	}
	return 0;
}

/* Copy a checked field out; its length into *ret_len. */
static void
copy_out(uint8_t *dst, size_t *ret_len, const struct xw_field *f)
{
	memcpy(dst, f->val, f->len);
	*ret_len = f->len;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Inside a fast section: may DEKs of `customer` be kept in this process,
 * and under which key record?  Its published decision must be current
 * and allow it (host_cache_ttl).  0: no; else the TTL in seconds.  Of a
 * decision invalidated since (reload, registry change), *ret_stale_ttl
 * is the TTL it had (dek_republish), else 0.
 */
static uint64_t
dek_record(struct xtcmk *h, const char *customer, struct xm_rec *ret_rec,
    uint64_t *ret_stale_ttl)
{
	uint64_t ttl = 0;
	enum xm_why why;

	why = xm_client_key(h->fast, customer, ret_rec, &ttl);
	*ret_stale_ttl = why == XM_STALE ? ttl : 0;
	if (why != XM_HIT || ret_rec->state != XM_STATE_ACTIVE)
		return 0;
	return ttl < XTCMK_HOST_CACHE_TTL_MAX ? ttl : XTCMK_HOST_CACHE_TTL_MAX;
}

/*
 * A decision invalidated since is published again with one DECIDE (only
 * for customers that used the cache); then dek_record's answer.
 */
static uint64_t
dek_republish(struct xtcmk *h, const char *customer, struct xm_rec *ret_rec)
{
	struct xtcmk_decision *d;
	uint64_t ttl, stale;

	if (xtcmk_decide(h, customer, &d) != XTCMK_OK)
		return 0;
	xtcmk_decision_free(d);
	if (!fast_enter(h))
		return 0;
	ttl = dek_record(h, customer, ret_rec, &stale);
	fast_leave(h);
	return ttl;
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

/* The XT_KEY_ID of a reply into key_id (if not NULL). */
static int
reply_key_id(const struct xcall *x, char *key_id, size_t key_id_len)
{
	struct xw_field f;

	if (key_id == NULL)
		return 0;
	if (xw_find(x->reply, x->rlen, XT_KEY_ID, &f) != 1 ||
	    !xw_field_is_str(&f, XTCMK_KEY_ID_MAX))
		return protocol_error("no key id");
	copy_text(key_id, key_id_len, &f);
	return 0;
}

/* Arguments every data-key call checks; 0 or a result (thread error set). */
static int
check_key_id(const char *key_id, size_t key_id_len)
{
	if (key_id != NULL && key_id_len <= XTCMK_KEY_ID_MAX) {
		set_error("key_id needs more than XTCMK_KEY_ID_MAX (%u) bytes",
		    (unsigned)XTCMK_KEY_ID_MAX);
		return XTCMK_E_INVAL;
	}
	return 0;
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

/*
 * DEK_NEW and DEK_REWRAP: the request carries the room for the blob so
 * that the agent refuses a blob that cannot fit before doing anything.
 */
static int
dek_call(struct xcall *x, uint16_t type, const char *customer,
    const struct xtcmk_opts *opts, const uint8_t *blob, size_t blob_len,
    int need, size_t *blob_room)
{
	uint8_t req[XTCMK_REQ_MAX];
	struct xw_buf b;
	unsigned ms;
	int rc;

	if ((rc = call_timeout(x->h, opts, &ms)) != 0 ||
	    (rc = check_customer(customer)) != 0)
		return rc;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	if (blob != NULL)
		xw_put(&b, XT_BLOB, blob, blob_len);
	if (blob_room != NULL)
		xw_put_u64(&b, XT_BLOB_CAP, *blob_room);
	/* Only what differs from 1.0, which every agent understands. */
	if (x->dek_len != 0 && x->dek_len != XTCMK_DEK_LEN)
		xw_put_u64(&b, XT_DEK_LEN, x->dek_len);
	if (x->dek_cap != 0 && x->dek_cap < XTCMK_DEK_MAX)
		xw_put_u64(&b, XT_DEK_CAP, x->dek_cap);
	rc = call(x, type, b.data, b.len, XTCMK_DEK_REPLY_MAX, ms);
	if (rc == XTCMK_E_TOOBIG && x->need != 0 && need)
		*blob_room = (size_t)x->need;
	return rc;
}

static int
dek_new(struct xtcmk *h, const char *customer, const struct xtcmk_opts *opts,
    int exact, uint8_t *dek, size_t *dek_len, uint8_t *blob, size_t *blob_len,
    char *key_id, size_t key_id_len)
{
	struct xw_field fb, fd;
	struct xcall x;
	size_t want = exact ? XTCMK_DEK_LEN : opts_dek_len(opts);
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 1);
	if (dek == NULL || dek_len == NULL || blob == NULL ||
	    blob_len == NULL)
		return call_end(&x, inval("dek, dek_len, blob and blob_len "
		    "must not be NULL"));
	if (want < XTCMK_DEK_MIN || want > XTCMK_DEK_MAX) {
		set_error("opts->dek_len %zu is not within %u..%u bytes (0: "
		    "%u)", want, (unsigned)XTCMK_DEK_MIN,
		    (unsigned)XTCMK_DEK_MAX, (unsigned)XTCMK_DEK_LEN);
		return call_end(&x, XTCMK_E_INVAL);
	}
	/* Too little room for the key: refused before the agent is asked. */
	if (*dek_len < want) {
		set_error("data key buffer of %zu bytes is too small for %zu "
		    "bytes; no key was generated", *dek_len, want);
		if (!exact)
			*dek_len = want;
		return call_end(&x, XTCMK_E_TOOBIG);
	}
	x.dek_len = want;
	if ((rc = check_key_id(key_id, key_id_len)) != 0 ||
	    (rc = dek_call(&x, XW_DEK_NEW, customer, opts, NULL, 0, !exact,
	    blob_len)) != 0)
		return call_end(&x, rc);
	/* All checked before anything is written.  An agent that predates
	 * XT_DEK_LEN makes 32 bytes whatever was asked. */
	if ((rc = reply_blob(&x, !exact, blob_len, &fb)) == 0 &&
	    (rc = reply_dek(&x, exact, dek_len, &fd)) == 0 &&
	    fd.len != want) {
		set_error("the agent made a %u-byte data key, not the %zu "
		    "bytes asked for: upgrade xtcmkd", fd.len, want);
		rc = XTCMK_E_UNSUPPORTED;
	}
	if (rc == 0 && (rc = reply_key_id(&x, key_id, key_id_len)) == 0) {
		copy_out(blob, blob_len, &fb);
		copy_out(dek, dek_len, &fd);
	}
	return call_end(&x, rc);
}

XTCMK_EXPORT int
xtcmk_dek_new(struct xtcmk *h, const char *customer,
    uint8_t dek[XTCMK_DEK_LEN], uint8_t *blob, size_t *blob_len)
{
	size_t dek_len = XTCMK_DEK_LEN;

	return dek_new(h, customer, NULL, 1, dek, &dek_len, blob, blob_len,
	    NULL, 0);
}

XTCMK_EXPORT int
xtcmk_dek_new2(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, uint8_t *dek, size_t *dek_len,
    uint8_t *blob, size_t *blob_len, char *key_id, size_t key_id_len)
{
	return dek_new(h, customer, opts, 0, dek, dek_len, blob, blob_len,
	    key_id, key_id_len);
}

static int
dek_unwrap(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, int exact, const uint8_t *blob,
    size_t blob_len, uint8_t *dek, size_t *dek_len)
{
	struct xw_field fd;
	struct xm_rec rec;
	struct xcall x;
	uint64_t ttl = 0, stale = 0;
	size_t room;
	int rc, hit = 0;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 1);
	if (dek == NULL || dek_len == NULL)
		return call_end(&x, inval("dek and dek_len must not be NULL"));
	if ((rc = check_blob(blob, blob_len)) != 0 ||
	    (rc = check_customer(customer)) != 0)
		return call_end(&x, rc);
	/* The key record is read before the agent is asked: a revocation
	 * after this point changes the generation the entry is kept under.
	 * A hit writes *dek_len only when the key fits. */
	if (h->dek_cache != NULL && fast_enter(h)) {
		/* One fast section for the record and the key; a forked
		 * child (not the opener) keeps no keys. */
		room = *dek_len;
		if (h->fk->opener &&
		    (ttl = dek_record(h, customer, &rec, &stale)) > 0)
			hit = hc_get(h->dek_cache, customer, blob, blob_len,
			    &rec, mono_ms(), dek, &room);
		fast_leave(h);
		/* Rare: the decision was invalidated since, and the key may
		 * still be good under the record published again. */
		if (!hit && stale > 0 &&
		    (ttl = dek_republish(h, customer, &rec)) > 0 &&
		    fast_enter(h)) {
			room = *dek_len;
			hit = hc_get(h->dek_cache, customer, blob, blob_len,
			    &rec, mono_ms(), dek, &room);
			fast_leave(h);
		}
		/* A 1.0 call takes 32-byte keys only: another length is
		 * left to the agent's answer (and its error). */
		if (hit && exact && room != XTCMK_DEK_LEN) {
			explicit_bzero(dek, room);
			hit = 0;
		}
		if (hit) {
			*dek_len = room;
			return call_end(&x, XTCMK_OK);
		}
	}
	/* The agent refuses a key longer than the room before unwrapping. */
	x.dek_cap = *dek_len > 0 ? *dek_len : 1;
	if ((rc = dek_call(&x, XW_DEK_UNWRAP, customer, opts, blob, blob_len,
	    0, NULL)) != 0) {
		if (rc == XTCMK_E_TOOBIG && !exact && x.dek_need != 0)
			*dek_len = (size_t)x.dek_need;
		return call_end(&x, rc);
	}
	if ((rc = reply_dek(&x, exact, dek_len, &fd)) == 0) {
		copy_out(dek, dek_len, &fd);
		if (ttl > 0 && fast_enter(h)) {
			hc_put(h->dek_cache, customer, blob, blob_len, &rec,
			    mono_ms() + ttl * 1000, dek, fd.len);
			fast_leave(h);
		}
	}
	return call_end(&x, rc);
}

XTCMK_EXPORT int
xtcmk_dek_unwrap(struct xtcmk *h, const char *customer,
    const uint8_t *blob, size_t blob_len, uint8_t dek[XTCMK_DEK_LEN])
{
	size_t dek_len = XTCMK_DEK_LEN;

	return dek_unwrap(h, customer, NULL, 1, blob, blob_len, dek,
	    &dek_len);
}

XTCMK_EXPORT int
xtcmk_dek_unwrap2(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, const uint8_t *blob, size_t blob_len,
    uint8_t *dek, size_t *dek_len)
{
	return dek_unwrap(h, customer, opts, 0, blob, blob_len, dek, dek_len);
}

static int
dek_rewrap(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, int v10, const uint8_t *blob,
    size_t blob_len, uint8_t *new_blob, size_t *new_blob_len, char *key_id,
    size_t key_id_len)
{
	struct xw_field fb;
	struct xcall x;
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 1);
	if (new_blob == NULL || new_blob_len == NULL)
		return call_end(&x, inval("new_blob and new_blob_len must not "
		    "be NULL"));
	if ((rc = check_blob(blob, blob_len)) != 0 ||
	    (rc = check_key_id(key_id, key_id_len)) != 0 ||
	    (rc = dek_call(&x, XW_DEK_REWRAP, customer, opts, blob, blob_len,
	    !v10, new_blob_len)) != 0)
		return call_end(&x, rc);
	if ((rc = reply_blob(&x, !v10, new_blob_len, &fb)) == 0 &&
	    (rc = reply_key_id(&x, key_id, key_id_len)) == 0)
		copy_out(new_blob, new_blob_len, &fb);
	return call_end(&x, rc);
}

XTCMK_EXPORT int
xtcmk_dek_rewrap2(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, const uint8_t *blob, size_t blob_len,
    uint8_t *new_blob, size_t *new_blob_len, char *key_id,
    size_t key_id_len)
{
	return dek_rewrap(h, customer, opts, 0, blob, blob_len, new_blob,
	    new_blob_len, key_id, key_id_len);
}

XTCMK_EXPORT int
xtcmk_dek_rewrap(struct xtcmk *h, const char *customer,
    const uint8_t *blob, size_t blob_len, uint8_t *new_blob,
    size_t *new_blob_len)
{
	return dek_rewrap(h, customer, NULL, 1, blob, blob_len, new_blob,
	    new_blob_len, NULL, 0);
}

/* KEY_STATUS: the reply's text state, enum state, reason and key id. */
static int
key_status(struct xcall *x, const char *customer,
    const struct xtcmk_opts *opts, struct xw_field *ret_state,
    enum xtcmk_key_state *ret_code, struct xw_field *ret_reason,
    struct xw_field *ret_kid)
{
	uint8_t req[XTCMK_REQ_MAX];
	struct xw_field f;
	struct xw_buf b;
	uint64_t code;
	unsigned ms;
	int rc;

	if ((rc = call_timeout(x->h, opts, &ms)) != 0 ||
	    (rc = check_customer(customer)) != 0)
		return rc;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, customer);
	if ((rc = call(x, XW_KEY_STATUS, b.data, b.len,
	    XTCMK_STATUS_REPLY_MAX, ms)) != 0)
		return rc;
	if (xw_find(x->reply, x->rlen, XT_KEY_STATE, ret_state) != 1 ||
	    !xw_field_is_str(ret_state, XW_STR_MAX))
		return protocol_error("no key state");
	ret_reason->len = 0;
	ret_reason->val = NULL;
	if (xw_find(x->reply, x->rlen, XT_KEY_REASON, ret_reason) == 1 &&
	    !xw_field_is_str(ret_reason, XW_STR_MAX))
		return protocol_error("key reason is not text");
	ret_kid->len = 0;
	ret_kid->val = NULL;
	if (xw_find(x->reply, x->rlen, XT_KEY_ID, ret_kid) == 1 &&
	    !xw_field_is_str(ret_kid, XTCMK_KEY_ID_MAX))
		return protocol_error("key id is not text");
	/* The enum; from the text when an older agent sends none. */
	if (xw_find(x->reply, x->rlen, XT_KEY_STATE_CODE, &f) == 1 &&
	    xw_field_u64(&f, &code) == 0 && code <= XTCMK_KEY_UNCONFIRMED)
		*ret_code = (enum xtcmk_key_state)code;
	else if (ret_state->len == 6 && memcmp(ret_state->val, "active",
	    6) == 0)
		*ret_code = XTCMK_KEY_ACTIVE;
	else if (ret_state->len == 7 && memcmp(ret_state->val, "revoked",
	    7) == 0)
		*ret_code = XTCMK_KEY_REVOKED;
	else
		*ret_code = XTCMK_KEY_UNKNOWN;
	return 0;
}

XTCMK_EXPORT int
xtcmk_key_status(struct xtcmk *h, const char *customer, char *state,
    size_t state_len, char *reason, size_t reason_len)
{
	struct xw_field fs, fr, fk;
	enum xtcmk_key_state code;
	struct xcall x;
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 0);
	if ((rc = key_status(&x, customer, NULL, &fs, &code, &fr, &fk)) ==
	    0) {
		copy_text(state, state_len, &fs);
		copy_text(reason, reason_len, fr.val != NULL ? &fr : NULL);
	}
	return call_end(&x, rc);
}

XTCMK_EXPORT int
xtcmk_key_state(struct xtcmk *h, const char *customer,
    const struct xtcmk_opts *opts, enum xtcmk_key_state *ret_state,
    char *reason, size_t reason_len, char *key_id, size_t key_id_len)
{
	struct xw_field fs, fr, fk;
	enum xtcmk_key_state code;
	struct xcall x;
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 0);
	if (ret_state == NULL)
		return call_end(&x, inval("ret_state is NULL"));
	if ((rc = check_key_id(key_id, key_id_len)) != 0 ||
	    (rc = key_status(&x, customer, opts, &fs, &code, &fr, &fk)) != 0)
		return call_end(&x, rc);
	copy_text(reason, reason_len, fr.val != NULL ? &fr : NULL);
	copy_text(key_id, key_id_len, fk.val != NULL ? &fk : NULL);
	*ret_state = code;
	return call_end(&x, 0);
}

XTCMK_EXPORT int
xtcmk_ping(struct xtcmk *h, const struct xtcmk_opts *opts, char *agent,
    size_t agent_len)
{
	struct xw_field f;
	struct xcall x;
	unsigned ms;
	int rc;

	if (h == NULL)
		return inval("handle is NULL");
	call_init(&x, h, 0);
	if ((rc = call_timeout(h, opts, &ms)) != 0 ||
	    (rc = call(&x, XW_PING, NULL, 0, XTCMK_STATUS_REPLY_MAX, ms)) != 0)
		return call_end(&x, rc);
	/* The PING reply names the agent; an older one only its HELLO. */
	if (xw_find(x.reply, x.rlen, XT_AGENT, &f) == 1 &&
	    xw_field_is_str(&f, XW_STR_MAX))
		copy_text(agent, agent_len, &f);
	else if (agent != NULL && agent_len > 0)
		(void)snprintf(agent, agent_len, "%s", x.s->c.agent);
	return call_end(&x, 0);
}

XTCMK_EXPORT int
xtcmk_is_retryable(int code)
{
	switch (code) {
	case XTCMK_E_UNAVAILABLE:
	case XTCMK_E_TIMEOUT:
	case XTCMK_E_BUSY:
	case XTCMK_E_UNCONFIRMED:
		return 1;
	default:
		return 0;
	}
}

XTCMK_EXPORT int
xtcmk_handle_error(struct xtcmk *h, char *buf, size_t buflen)
{
	struct xtcmk_pool *p;
	int code;

	if (h == NULL || (p = pool_get(h)) == NULL) {
		if (buf != NULL && buflen > 0)
			buf[0] = '\0';
		return h == NULL ? XTCMK_E_INVAL : XTCMK_E_NOMEM;
	}
	pthread_mutex_lock(&p->lock);
	code = p->err_code;
	if (buf != NULL && buflen > 0)
		(void)snprintf(buf, buflen, "%s", p->err);
	pthread_mutex_unlock(&p->lock);
	return code;
}

/*
 * The function table: fields only appended.  One table per API level,
 * differing only in `size`, so a host asking for 1.0 sees exactly the 1.0
 * fields.
 */
#define FUNCTIONS(sz) {							\
	.api_version = XTCMK_API_VERSION,				\
	.size = (sz),							\
	.open = xtcmk_open,						\
	.close = xtcmk_close,						\
	.decide = xtcmk_decide,						\
	.decision_free = xtcmk_decision_free,				\
	.decision_str = xtcmk_decision_str,				\
	.decision_u64 = xtcmk_decision_u64,				\
	.decision_count = xtcmk_decision_count,				\
	.decision_item = xtcmk_decision_item,				\
	.strerror = xtcmk_strerror,					\
	.last_error = xtcmk_last_error,					\
	.dek_new = xtcmk_dek_new,					\
	.dek_unwrap = xtcmk_dek_unwrap,					\
	.dek_rewrap = xtcmk_dek_rewrap,					\
	.key_status = xtcmk_key_status,					\
	.is_retryable = xtcmk_is_retryable,				\
	.handle_error = xtcmk_handle_error,				\
	.ping = xtcmk_ping,						\
	.decide2 = xtcmk_decide2,					\
	.dek_new2 = xtcmk_dek_new2,					\
	.dek_unwrap2 = xtcmk_dek_unwrap2,				\
	.dek_rewrap2 = xtcmk_dek_rewrap2,				\
	.key_state = xtcmk_key_state,					\
}

static const struct xtcmk_functions functions_1_0 =
    FUNCTIONS(offsetof(struct xtcmk_functions, is_retryable));
static const struct xtcmk_functions functions_1_1 =
    FUNCTIONS(sizeof(struct xtcmk_functions));

XTCMK_EXPORT const struct xtcmk_functions *
xtcmk_get_functions_v(uint32_t level)
{
	switch (level) {
	case 0:
	case XTCMK_API_1_1:
		return &functions_1_1;
	case XTCMK_API_1_0:
		return &functions_1_0;
	default:
		return NULL;
	}
}

XTCMK_EXPORT const struct xtcmk_functions *
xtcmk_get_functions(void)
{
	return &functions_1_1;
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
