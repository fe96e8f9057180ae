/*
 * keys_int.h - private to keys.c and keys_admin.c: the key state kept per
 * customer, the data plane's state, and the few data-plane functions the
 * admin commands call.  Not part of the agent's interface (see keys.h).
 */
#ifndef XTCMK_KEYS_INT_H
#define XTCMK_KEYS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <jansson.h>

#include "keys.h"
#include "provider.h"
#include "validate.h"
#include "xerr.h"

#define KS_BUCKETS		1024

#define KS_VERSION_WHY_MAX	256	/* why a version is refused */

struct vusage {
	char		version[KEY_VERSION_LEN + 1];
	unsigned long long wraps, unwraps;	/* not yet flushed */
	long long	first, last;		/* unix seconds */
	int		disabled;		/* refused at its last check */
	char		why[KS_VERSION_WHY_MAX];
};

struct kstate {
	struct kstate	*next;
	char		 customer[CUSTOMER_ID_MAX + 1];
	unsigned long long gen;			/* decision generation */
	/* From the decisions. */
	struct key_uri	 uri;			/* as onboarded */
	int		 pinned;
	char		 pin[KEY_VERSION_LEN + 1];
	unsigned	 refresh_s, check_s, grace_s, ttl_s, cache_max;
	unsigned	 host_ttl_s;	/* DEKs kept in host processes */
	int		 served;
	char		 app[NAME_MAX_LEN + 1];
	char		 tenant[40], app_client_id[40];
	char		 vault_auth[16];	/* the role decision's mechanism */
	char		 role_hint[640];	/* the grant, as an instruction */
	/* Live state. */
	char		 kid[KID_MAX];		/* version in force */
	char		 version[KEY_VERSION_LEN + 1];
	int		 alg;			/* PROVIDER_ALG_* of that key */
	long long	 resolved_at;		/* monotonic s, 0 = never */
	long long	 checked_at;		/* last check attempt */
	long long	 ok_at;			/* last confirmed enabled */
	int		 checking;
	int		 revoked;
	char		 reason[XERR_MSG_MAX];
	size_t		 wrapped_len;		/* last wrapped DEK for... */
	char		 blob_version[KEY_VERSION_LEN + 1]; /* ...this */
	long long	 revoked_since;		/* unix s */
	int		 fail_code;		/* last logged provider
						 * failure, 0: healthy */
	/* Usage per version, only ever used under the lock: a snapshot
	 * copy of the state (the request path) must stay small. */
	struct vusage	*usage;
	int		 nusage, ausage;
};

struct keys {
	struct config	*cfg;
	struct service	*svc;
	struct keystore	*ks;
	struct provider	*local;
	struct provider	*azure;			/* Key Vault / Managed HSM */
	struct keycache	*cache;
	pthread_mutex_t	 mu;
	struct kstate	*map[KS_BUCKETS];
	unsigned	 ncust;
	pthread_t	*checkers;
	unsigned	 nchecker;
	atomic_int	 stop;
	pthread_key_t	 scratch_key;
	atomic_ullong	 n_revocations, n_restores, n_checks;
	atomic_ullong	 n_version_checks, n_version_revocations;
};

/*
 * Make sure `customer` has a key state built from the current decisions,
 * and copy it to *ret (a snapshot: no lock held afterwards).
 */
int	keys_state_get(struct keys *k, const char *customer,
	    struct kstate *ret, struct xerr *e);
/* Ask the provider for the key's state now and record the result. */
int	keys_check_now(struct keys *k, const struct kstate *snap, int force,
	    struct xerr *e);
/*
 * Check every old version of the customer's key that may have DEKs in the
 * cache (used within cache_ttl) or was found disabled: a disabled version's
 * cached DEKs are wiped and its blobs refused.  Returns how many versions
 * are disabled now.
 */
int	keys_check_versions(struct keys *k, const struct kstate *snap);
/* The versions found disabled, as {version: why}; NULL on OOM. */
json_t	*keys_disabled_versions(struct keys *k, const char *customer);
/* Refuse unless the customer may be served by this host right now. */
int	keys_gate(struct keys *k, const struct kstate *st, struct xerr *e);
/* The provider holding key `u`, or NULL with `e` set. */
struct provider *keys_provider_for(struct keys *k, const struct key_uri *u,
	    struct xerr *e);
/* The provider request's identity fields from a key state. */
void	keys_req_of(const struct kstate *st, struct provider_req *r);
/* Move the usage counted so far into the registry. */
void	keys_usage_flush(struct keys *k);

#endif
