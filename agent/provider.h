/*
 * provider.h - key providers: the one interface through which the agent
 * reads key state and wraps or unwraps data keys, whatever holds the key
 * (Azure Key Vault / Managed HSM, or the embedded `local` keystore).
 *
 * A provider is an ops table plus call counters.  Callers never call the
 * ops directly: provider_get_key(), provider_wrap() and provider_unwrap()
 * check arguments, count calls and leave every failure in `e` with one of
 * these codes, so the agent treats all providers alike:
 *
 *	XTCMK_E_REVOKED		key or version disabled, deleted or missing
 *				(the customer must act; fail closed)
 *	XTCMK_E_BAD_BLOB	the wrapped key does not decrypt (corrupted
 *				wrapped key: NOT a revocation)
 *	XTCMK_E_INVAL		bad argument (wrong URI kind, DEK size, ...)
 *	XTCMK_E_PROVIDER	the key service failed otherwise
 *
 * Wrapping is RSA-OAEP-256 (SHA-256 as OAEP digest and as MGF1 digest), as
 * Key Vault's "RSA-OAEP-256".
 */
#ifndef XTCMK_PROVIDER_H
#define XTCMK_PROVIDER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "validate.h"
#include "xerr.h"

#define KID_MAX			600	/* a kid URL with version, + NUL */
#define PROVIDER_WRAPPED_MAX	512	/* RSA-4096 ciphertext */
#define PROVIDER_DEK_MIN	16
#define PROVIDER_DEK_MAX	64

/* Provider kinds; the values are the blob format's provider byte. */
enum provider_kind {
	PROVIDER_LOCAL = 1,
	PROVIDER_AZURE = 2,
};

/* Who asks: the azure provider acts as `app_client_id` in `tenant`. */
struct provider_req {
	const char	*customer;
	const char	*tenant;		/* may be NULL for local */
	const char	*app_client_id;		/* may be NULL for local */
	const char	*app;			/* application name, or NULL */
	/* The grant the customer must make, from the role decision
	 * ("grant role ... on key K to application A ..."), or NULL. */
	const char	*role_hint;
	const char	*vault_auth;		/* "rbac", "access-policy", NULL */
};

struct key_state {
	char		kid[KID_MAX];	/* https://host/keys/name/version */
	char		version[KEY_VERSION_LEN + 1];
	int		enabled;	/* always 1 after a successful get */
	long long	created;	/* unix seconds */
	int		bits;		/* RSA modulus size, 0 if unknown */
	int		wrap_alg;	/* PROVIDER_ALG_*: how wrap works */
};

/* Wrap algorithms; the values are the blob format's algorithm byte. */
#define PROVIDER_ALG_RSA_OAEP_256	1	/* RSA keys */
#define PROVIDER_ALG_A256KW		2	/* oct-HSM keys (Managed HSM) */

struct provider {
	const char	*name;			/* "local", "azure" */
	enum provider_kind kind;
	void		*ctx;

	/*
	 * Current state of the key a URI names: a versionless URI resolves
	 * to the current version.  Fails with XTCMK_E_REVOKED when the key
	 * or the version is disabled, deleted or missing.
	 */
	int	(*get_key)(struct provider *, const struct provider_req *,
		    const struct key_uri *, struct key_state *ret_state,
		    struct xerr *e);
	/* Wrap `dek` with the version the URI names (URI with version). */
	int	(*wrap)(struct provider *, const struct provider_req *,
		    const struct key_uri *, const uint8_t *dek, size_t dek_len,
		    uint8_t *out, size_t out_size, size_t *ret_len,
		    struct xerr *e);
	/* Unwrap a wrapped DEK with the version the URI names. */
	int	(*unwrap)(struct provider *, const struct provider_req *,
		    const struct key_uri *, const uint8_t *wrapped,
		    size_t wrapped_len, uint8_t *dek, size_t dek_size,
		    size_t *ret_len, struct xerr *e);
	/* Release ctx; may be NULL. */
	void	(*destroy)(struct provider *);

	/* Updated by the provider_* wrappers below. */
	atomic_ullong	calls_get;
	atomic_ullong	calls_wrap;
	atomic_ullong	calls_unwrap;
	atomic_ullong	errors;
};

int	provider_get_key(struct provider *p, const struct provider_req *req,
	    const struct key_uri *uri, struct key_state *ret_state,
	    struct xerr *e);
int	provider_wrap(struct provider *p, const struct provider_req *req,
	    const struct key_uri *uri, const uint8_t *dek, size_t dek_len,
	    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e);
int	provider_unwrap(struct provider *p, const struct provider_req *req,
	    const struct key_uri *uri, const uint8_t *wrapped,
	    size_t wrapped_len, uint8_t *dek, size_t dek_size, size_t *ret_len,
	    struct xerr *e);
/* Calls destroy; accepts NULL. */
void	provider_free(struct provider *p);

/*
 * The error sentences every provider uses, so a customer reads the same
 * text whichever provider holds the key.  `key` is the key name or URL.
 * Each returns -XTCMK_E_REVOKED.
 */
int	provider_err_disabled(struct xerr *e, const char *key,
	    const char *version);
int	provider_err_deleted(struct xerr *e, const char *key);
int	provider_err_no_version(struct xerr *e, const char *key,
	    const char *version);

struct keystore;
/*
 * The embedded `local` provider over `ks` (which the caller keeps and
 * frees after the provider).  NULL on OOM.
 */
struct provider *provider_local_new(struct keystore *ks);

#endif
