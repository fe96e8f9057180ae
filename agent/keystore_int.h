/*
 * keystore_int.h - private to the local keystore: the in-memory form of
 * its keys, shared by keystore.c (metadata, lookups, locking) and
 * keystore_rsa.c (RSA keys, their PEM files, RSA-OAEP-256).  Other
 * subsystems use keystore.h.
 */
#ifndef XTCMK_KEYSTORE_INT_H
#define XTCMK_KEYSTORE_INT_H

#include <pthread.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "keystore.h"

#define KS_WHO		"keystore"	/* first word of file errors */

struct ks_version {
	char		 version[KEY_VERSION_LEN + 1];
	long long	 created;
	int		 enabled;
	EVP_PKEY	*pkey;		/* NULL until first used */
};

struct ks_key {
	char		 vault[KEYSTORE_VAULT_MAX + 1];	/* lowercase */
	char		 name[KEY_NAME_MAX + 1];	/* as created */
	char		 dir[KEY_NAME_MAX + 1];		/* lowercase name */
	int		 bits;
	int		 deleted;
	long long	 deleted_at;
	char		 current[KEY_VERSION_LEN + 1];
	struct ks_version *v;
	size_t		 nv;
	size_t		 cap;
};

struct keystore {
	pthread_mutex_t	 mu;
	int		 rootfd;	/* STATE_DIR/keys */
	char		*root;
	struct ks_key	**keys;
	size_t		 nkeys;
	size_t		 cap;
	size_t		 swept;		/* crash leftovers removed at open */
};

/*
 * keystore.c: take a reference to the private key of a usable version
 * (validated, enabled, key not deleted), loading it if needed, so that
 * the RSA operation runs without the lock; `base` gets the key's URI.
 */
int	ks_pkey_ref(struct keystore *ks, const char *vault, const char *name,
	    const char *version, EVP_PKEY **ret_pkey, char *base,
	    size_t base_len, struct xerr *e);

/* keystore_rsa.c: a new RSA key of `bits` bits. */
int	ks_rsa_generate(int bits, EVP_PKEY **ret_pkey, struct xerr *e);
/* Write <version>.pem (PKCS#8, unencrypted, 0600) into the key's dir. */
int	ks_pem_write(struct keystore *ks, const struct ks_key *k,
	    const char *version, EVP_PKEY *pkey, struct xerr *e);
/* Parse <version>.pem into v->pkey unless already loaded.  Called locked. */
int	ks_pem_load(struct keystore *ks, const struct ks_key *k,
	    struct ks_version *v, struct xerr *e);

#endif
