/*
 * xtcmk.h - client API of libxtcmk, the module host services load to ask
 * xtcmkd for cross-tenant customer-managed-key decisions and data keys.
 *
 * Thread-safe: one handle may be shared by any number of threads.
 * Fork-safe at any moment: a child never waits on a lock or uses a
 * connection of its parent, and closes its copies of them.
 * Every call has a total deadline (xtcmk_open's timeout, or the call's own
 * with the 1.1 functions) and fails closed.
 * API 1.1 adds functions, never changes 1.0 ones.  See libxtcmk(3).
 */
#ifndef XTCMK_H
#define XTCMK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The function table's api_version (append-only table, see below). */
#define XTCMK_API_VERSION	1
/* API levels for xtcmk_get_functions_v(): major << 16 | minor. */
#define XTCMK_API_1_0		0x00010000u
#define XTCMK_API_1_1		0x00010001u
#define XTCMK_API_LEVEL		XTCMK_API_1_1	/* of this header */

/* Result codes.  Never renumbered; new codes are appended. */
enum xtcmk_result {
	XTCMK_OK		= 0,
	XTCMK_E_INVAL		= 1,	/* bad argument from the caller */
	XTCMK_E_UNAVAILABLE	= 2,	/* agent not running / not reachable */
	XTCMK_E_TIMEOUT		= 3,	/* deadline passed */
	XTCMK_E_DENIED		= 4,	/* peer credentials not allowed */
	XTCMK_E_NOT_FOUND	= 5,	/* unknown customer or object */
	XTCMK_E_PROTOCOL	= 6,	/* malformed or unexpected frame */
	XTCMK_E_NOMEM		= 7,
	XTCMK_E_TOOBIG		= 8,	/* request or reply over the limit */
	XTCMK_E_POLICY		= 9,	/* policy failed or returned a refused result */
	XTCMK_E_REVOKED		= 10,	/* customer key disabled/deleted/refused */
	XTCMK_E_NOT_SERVED	= 11,	/* this host's workload has no FIC on the app */
	XTCMK_E_INTERNAL	= 12,	/* agent-side failure (see message) */
	XTCMK_E_CONFLICT	= 13,	/* invariant would break (20 FICs, sticky) */
	XTCMK_E_EXISTS		= 14,
	XTCMK_E_BAD_BLOB	= 15,	/* wrapped blob truncated/corrupt/foreign */
	XTCMK_E_WRONG_CUSTOMER	= 16,	/* blob bound to another customer */
	XTCMK_E_UNSUPPORTED	= 17,	/* agent or blob too new/old */
	XTCMK_E_PROVIDER	= 18,	/* key service failed (see message) */
	XTCMK_E_BUSY		= 19,	/* agent over its limits, retry later */
	/* 1.1 */
	XTCMK_E_UNCONFIRMED	= 20,	/* key state could not be confirmed
					 * lately: failing closed, retry */
	XTCMK__RESULT_COUNT
};

/* Fields of a decision.  Values are stable. */
enum xtcmk_field {
	XTCMK_F_CUSTOMER		= 1,	/* str */
	XTCMK_F_TENANT			= 2,	/* str, customer tenant id */
	XTCMK_F_APP			= 3,	/* str, application name */
	XTCMK_F_APP_CLIENT_ID		= 4,	/* str, may be absent */
	XTCMK_F_WORKLOAD		= 5,	/* list of str */
	XTCMK_F_SERVED			= 6,	/* u64 0/1: this host may act */
	XTCMK_F_ROLE_MECHANISM		= 7,	/* "rbac" | "access-policy" */
	XTCMK_F_ROLE_NAME		= 8,
	XTCMK_F_ROLE_ID			= 9,
	XTCMK_F_ROLE_SCOPE		= 10,	/* "key" | "vault" */
	XTCMK_F_PERMISSION		= 11,	/* list of str */
	XTCMK_F_KEY_URI			= 12,
	XTCMK_F_KEY_MODE		= 13,	/* "auto" | "pinned" */
	XTCMK_F_KEY_VERSION		= 14,
	XTCMK_F_REFRESH_S		= 15,	/* u64 */
	XTCMK_F_REVOCATION_CHECK_S	= 16,	/* u64 */
	XTCMK_F_GRACE_S			= 17,	/* u64 */
	XTCMK_F_CACHE_TTL_S		= 18,	/* u64 */
	XTCMK_F_CACHE_MAX		= 19,	/* u64 */
	XTCMK_F_POLICY_HASH		= 20,
	XTCMK_F_ASSIGNED_AT		= 21,	/* u64 unix time */
	XTCMK_F_KIND			= 22,	/* list of str */
	XTCMK_F_THIS_WORKLOAD		= 23,
};

#define XTCMK_DEK_LEN		32	/* what xtcmk_dek_new() writes */
#define XTCMK_DEK_MIN		16	/* shortest DEK xtcmk_dek_new2 makes */
#define XTCMK_DEK_MAX		64	/* longest DEK the 1.1 calls accept */
#define XTCMK_BLOB_MAX		2048
#define XTCMK_KEY_ID_MAX	512	/* key id (URL with version), no NUL */
#define XTCMK_AGENT_MAX		63	/* agent name and version, no NUL */

/* Key states (1.1).  Values are stable; new ones are appended. */
enum xtcmk_key_state {
	XTCMK_KEY_UNKNOWN	= 0,	/* never confirmed since the agent
					 * started */
	XTCMK_KEY_ACTIVE	= 1,	/* enabled at the last check */
	XTCMK_KEY_REVOKED	= 2,	/* disabled, deleted or refused */
	XTCMK_KEY_UNCONFIRMED	= 3,	/* was active; not confirmed lately */
};

/*
 * Per-call options (1.1).  Set `size` to sizeof(struct xtcmk_opts); fields
 * are only appended, and a library ignores fields past the size it knows.
 * A NULL options pointer means all defaults.
 */
struct xtcmk_opts {
	uint32_t	size;
	uint32_t	timeout_ms;	/* this call's total deadline; 0: the
					 * handle's */
	uint32_t	dek_len;	/* xtcmk_dek_new2: length of the new
					 * DEK, XTCMK_DEK_MIN..XTCMK_DEK_MAX;
					 * 0: XTCMK_DEK_LEN */
};

struct xtcmk;
struct xtcmk_decision;

/*
 * Connect to the agent at `socket_path` (NULL: $XTCMK_SOCKET when not
 * setuid, else the built-in default).  `timeout_ms` is the total deadline of
 * each later call (0: 5000).  The handle connects lazily.
 */
int	 xtcmk_open(const char *socket_path, unsigned timeout_ms,
	    struct xtcmk **ret_handle);
void	 xtcmk_close(struct xtcmk *h);

/* Decisions for `customer`. */
int	 xtcmk_decide(struct xtcmk *h, const char *customer,
	    struct xtcmk_decision **ret_decision);
void	 xtcmk_decision_free(struct xtcmk_decision *d);
/* First value of a string field, or NULL when absent. */
const char *xtcmk_decision_str(const struct xtcmk_decision *d,
	    enum xtcmk_field f);
/* Integer field; `def` when absent. */
uint64_t xtcmk_decision_u64(const struct xtcmk_decision *d,
	    enum xtcmk_field f, uint64_t def);
/* Number of values of a (list) field, and the i-th. */
size_t	 xtcmk_decision_count(const struct xtcmk_decision *d,
	    enum xtcmk_field f);
const char *xtcmk_decision_item(const struct xtcmk_decision *d,
	    enum xtcmk_field f, size_t i);

/*
 * Data keys.  `dek` receives XTCMK_DEK_LEN bytes; `blob` receives up to
 * *blob_len bytes and *blob_len is set to the length written.
 */
int	 xtcmk_dek_new(struct xtcmk *h, const char *customer,
	    uint8_t dek[XTCMK_DEK_LEN], uint8_t *blob, size_t *blob_len);
int	 xtcmk_dek_unwrap(struct xtcmk *h, const char *customer,
	    const uint8_t *blob, size_t blob_len, uint8_t dek[XTCMK_DEK_LEN]);
int	 xtcmk_dek_rewrap(struct xtcmk *h, const char *customer,
	    const uint8_t *blob, size_t blob_len, uint8_t *new_blob,
	    size_t *new_blob_len);
/* Key state: `state` gets "active", "revoked" or "unknown"; `reason`
 * a sentence (either may be NULL; both NUL-terminated, truncated). */
int	 xtcmk_key_status(struct xtcmk *h, const char *customer,
	    char *state, size_t state_len, char *reason, size_t reason_len);

/* Static text for a result code. */
const char *xtcmk_strerror(int code);
/*
 * The message for the last call in this thread: set when it failed,
 * "" after a call that succeeded.
 */
const char *xtcmk_last_error(void);

/* --- API 1.1 -------------------------------------------------------- */

/*
 * 1 when the same call may succeed if retried later unchanged:
 * XTCMK_E_UNAVAILABLE, XTCMK_E_TIMEOUT, XTCMK_E_BUSY, XTCMK_E_UNCONFIRMED.
 * Every other failure needs something changed first.
 */
int	 xtcmk_is_retryable(int code);

/*
 * The result of the last failed call on `h` from any thread (0 if none,
 * or if a later call on `h` succeeded), and its message copied into buf
 * (truncated, NUL-terminated; buf may be NULL).
 */
int	 xtcmk_handle_error(struct xtcmk *h, char *buf, size_t buflen);

/* Round trip to the agent; `agent` (may be NULL) gets its name and
 * version, e.g. "xtcmkd 0.1.0". */
int	 xtcmk_ping(struct xtcmk *h, const struct xtcmk_opts *opts,
	    char *agent, size_t agent_len);

/* xtcmk_decide() with per-call options. */
int	 xtcmk_decide2(struct xtcmk *h, const char *customer,
	    const struct xtcmk_opts *opts, struct xtcmk_decision **ret_decision);

/*
 * Data keys with runtime lengths and the key id.  xtcmk_dek_new2 makes a
 * DEK of opts->dek_len bytes (16..64; 0 or no opts: 32); unwrap returns
 * the length the blob holds.  `*dek_len` is the room in `dek` and is set
 * to the length written; `*blob_len` likewise for `blob`.  `key_id` (may be
 * NULL; else key_id_len > XTCMK_KEY_ID_MAX) gets the key id, with
 * version, that wrapped the blob.
 *
 * XTCMK_E_TOOBIG: `*blob_len` (or `*dek_len`) is set to the size needed.
 * The room for the DEK is checked and the room for the blob sent with
 * the request, so nothing is generated, unwrapped or wrapped first; the size it reports is exact
 * once it has wrapped a key under the version in force, else the least a
 * blob can take (XTCMK_BLOB_MAX always suffices).
 */
int	 xtcmk_dek_new2(struct xtcmk *h, const char *customer,
	    const struct xtcmk_opts *opts, uint8_t *dek, size_t *dek_len,
	    uint8_t *blob, size_t *blob_len, char *key_id, size_t key_id_len);
int	 xtcmk_dek_unwrap2(struct xtcmk *h, const char *customer,
	    const struct xtcmk_opts *opts, const uint8_t *blob,
	    size_t blob_len, uint8_t *dek, size_t *dek_len);
int	 xtcmk_dek_rewrap2(struct xtcmk *h, const char *customer,
	    const struct xtcmk_opts *opts, const uint8_t *blob,
	    size_t blob_len, uint8_t *new_blob, size_t *new_blob_len,
	    char *key_id, size_t key_id_len);

/*
 * Key state as an enum; `reason` (may be NULL) gets the sentence behind
 * it (truncated, NUL-terminated), `key_id` (may be NULL; else key_id_len
 * > XTCMK_KEY_ID_MAX) the version in force.
 */
int	 xtcmk_key_state(struct xtcmk *h, const char *customer,
	    const struct xtcmk_opts *opts, enum xtcmk_key_state *ret_state,
	    char *reason, size_t reason_len, char *key_id, size_t key_id_len);

/*
 * Function table for hosts that dlopen() the module:
 *	fn = dlsym(lib, "xtcmk_get_functions_v");
 *	t = fn(XTCMK_API_1_1);		(NULL: the library is older)
 * or, for 1.0 hosts, dlsym(lib, "xtcmk_get_functions")().
 *
 * `api_version` is XTCMK_API_VERSION (1) for every 1.x table: fields are
 * only ever appended.  `size` is the number of valid bytes: a field may be
 * used only if offsetof(struct xtcmk_functions, field) + its size <=
 * size (XTCMK_HAS_FN).  xtcmk_get_functions_v(level) returns a table whose
 * size covers exactly the fields of `level` (0: the newest level), or
 * NULL for a level this library does not have; xtcmk_get_functions()
 * returns the newest.
 */
struct xtcmk_functions {
	uint32_t	api_version;
	uint32_t	size;
	int		(*open)(const char *, unsigned, struct xtcmk **);
	void		(*close)(struct xtcmk *);
	int		(*decide)(struct xtcmk *, const char *,
			    struct xtcmk_decision **);
	void		(*decision_free)(struct xtcmk_decision *);
	const char	*(*decision_str)(const struct xtcmk_decision *,
			    enum xtcmk_field);
	uint64_t	(*decision_u64)(const struct xtcmk_decision *,
			    enum xtcmk_field, uint64_t);
	size_t		(*decision_count)(const struct xtcmk_decision *,
			    enum xtcmk_field);
	const char	*(*decision_item)(const struct xtcmk_decision *,
			    enum xtcmk_field, size_t);
	const char	*(*strerror)(int);
	const char	*(*last_error)(void);
	int		(*dek_new)(struct xtcmk *, const char *, uint8_t *,
			    uint8_t *, size_t *);
	int		(*dek_unwrap)(struct xtcmk *, const char *,
			    const uint8_t *, size_t, uint8_t *);
	int		(*dek_rewrap)(struct xtcmk *, const char *,
			    const uint8_t *, size_t, uint8_t *, size_t *);
	int		(*key_status)(struct xtcmk *, const char *, char *,
			    size_t, char *, size_t);
	/* 1.1 */
	int		(*is_retryable)(int);
	int		(*handle_error)(struct xtcmk *, char *, size_t);
	int		(*ping)(struct xtcmk *, const struct xtcmk_opts *,
			    char *, size_t);
	int		(*decide2)(struct xtcmk *, const char *,
			    const struct xtcmk_opts *,
			    struct xtcmk_decision **);
	int		(*dek_new2)(struct xtcmk *, const char *,
			    const struct xtcmk_opts *, uint8_t *, size_t *,
			    uint8_t *, size_t *, char *, size_t);
	int		(*dek_unwrap2)(struct xtcmk *, const char *,
			    const struct xtcmk_opts *, const uint8_t *,
			    size_t, uint8_t *, size_t *);
	int		(*dek_rewrap2)(struct xtcmk *, const char *,
			    const struct xtcmk_opts *, const uint8_t *,
			    size_t, uint8_t *, size_t *, char *, size_t);
	int		(*key_state)(struct xtcmk *, const char *,
			    const struct xtcmk_opts *,
			    enum xtcmk_key_state *, char *, size_t, char *,
			    size_t);
};

#define XTCMK_HAS_FN(t, field) \
	(offsetof(struct xtcmk_functions, field) + \
	    sizeof(((struct xtcmk_functions *)0)->field) <= (t)->size)

const struct xtcmk_functions *xtcmk_get_functions(void);
const struct xtcmk_functions *xtcmk_get_functions_v(uint32_t level);
typedef const struct xtcmk_functions *(*xtcmk_get_functions_fn)(void);
typedef const struct xtcmk_functions *(*xtcmk_get_functions_v_fn)(uint32_t);

/*
 * --- Host-local fast path (version node XTCMK_FASTPATH_1.1) ------------
 * xtcmk_decide() first looks in the agent's memory-mapped decision file
 * and asks the socket only when that cannot answer (libxtcmk(3), FAST
 * PATH).  These counters say how often each happened on a handle.
 */
struct xtcmk_fastpath_stats {
	uint64_t	hits;		/* decisions read from the file */
	uint64_t	misses;		/* customer not published */
	uint64_t	disabled;	/* XTCMK_NO_MEMCACHE set */
	uint64_t	no_file;	/* no usable file (absent, foreign) */
	uint64_t	stale;		/* invalidated: reload, move, change */
	uint64_t	heartbeat;	/* agent's heartbeat too old */
	uint64_t	recycled;	/* file replaced by a new agent */
	uint64_t	busy;		/* record rewritten past the retries */
	uint64_t	bad;		/* record failed validation */
	uint64_t	maps;		/* files mapped */
	/* The DEK cache (versioning policy's host_cache_ttl). */
	uint64_t	dek_hits;	/* unwraps answered in process */
	uint64_t	dek_misses;
	uint64_t	dek_inserts;
	uint64_t	dek_evictions;	/* least recently used, wiped */
	uint64_t	dek_invalid;	/* revoked, expired, replaced: wiped */
	uint64_t	dek_entries;
};

/* Copy the handle's counters into *ret_stats (size: sizeof(*ret_stats),
 * fields past `size` are left alone). */
int	 xtcmk_fastpath_stats(struct xtcmk *h,
	    struct xtcmk_fastpath_stats *ret_stats, size_t size);

#ifdef __cplusplus
}
#endif
#endif
