/*
 * keystore.h - the embedded `local` keystore: RSA keys with versions that
 * behave like Azure Key Vault keys (rotate, disable/enable per version,
 * delete), for development, demos and CI.
 *
 * On disk, under STATE_DIR/keys/ (directories 0700, files 0600):
 *
 *	<vault>/<key>/meta.json		versions, current, deleted, bits
 *	<vault>/<key>/<version>.pem	PKCS#8 private key of one version
 *
 * Every file is written to a temporary file in the same directory,
 * fsync'ed, renamed into place, and the directory fsync'ed; meta.json is
 * written last and is the commit point (a crash leaves at worst an unused
 * .pem).  Key names are case-insensitive as in Key Vault (the directory is
 * the lowercased name).  Versions are 32 lowercase hex characters.
 *
 * All functions are thread-safe.  Key URIs of this keystore are
 * https://<vault>.vault.local/keys/<name>[/<version>].
 */
#ifndef XTCMK_KEYSTORE_H
#define XTCMK_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "provider.h"
#include "xerr.h"

#define KEYSTORE_BITS_DEFAULT	2048	/* bits 0 means this */
#define KEYSTORE_VAULT_MIN	3	/* Key Vault name rules */
#define KEYSTORE_VAULT_MAX	24
#define KEYSTORE_VERSIONS_MAX	4096	/* versions per key */
#define KEYSTORE_KEYS_MAX	65536	/* keys per keystore */
#define KEYSTORE_META_MAX	(1024 * 1024)	/* bytes of one meta.json */
#define KEYSTORE_PEM_MAX	(64 * 1024)	/* bytes of one .pem */

struct keystore;

/* Open (creating STATE_DIR/keys if needed) and load every meta.json. */
int	keystore_open(const char *state_dir, struct keystore **ret_ks,
	    struct xerr *e);
void	keystore_free(struct keystore *ks);
/*
 * How many files a crash had left that keystore_open() removed: temporary
 * files of interrupted writes, and the .pem of versions meta.json never
 * listed (a create or rotate that crashed before its commit, so never
 * acknowledged).  keystore_open() assumes it is the only writer.
 */
size_t	keystore_swept(const struct keystore *ks);

/*
 * Create key `name` in `vault` with one enabled version; bits 2048 or 3072
 * (0: 2048).  XTCMK_E_EXISTS if the name is taken (also by a deleted key).
 */
int	keystore_create(struct keystore *ks, const char *vault,
	    const char *name, int bits, struct key_state *ret_state,
	    struct xerr *e);
/* New enabled version, made current; older versions keep their state. */
int	keystore_rotate(struct keystore *ks, const char *vault,
	    const char *name, struct key_state *ret_state, struct xerr *e);
/* Enable or disable one version, or every version when `version` is NULL. */
int	keystore_set_enabled(struct keystore *ks, const char *vault,
	    const char *name, const char *version, int enabled,
	    struct xerr *e);
/* Mark deleted: get, wrap and unwrap then fail with XTCMK_E_REVOKED. */
int	keystore_delete(struct keystore *ks, const char *vault,
	    const char *name, struct xerr *e);
/*
 * JSON array of {kid, vault, name, current, enabled, deleted, bits,
 * versions} (versions: a count), sorted by vault and name; `vault` NULL
 * lists every vault.  The caller owns *ret_json (json_decref).
 */
int	keystore_list(struct keystore *ks, const char *vault,
	    json_t **ret_json, struct xerr *e);
/*
 * JSON {kid, vault, name, current, versions: [{version, kid, created,
 * enabled}], deleted, bits, kty: "RSA"}.
 */
int	keystore_show(struct keystore *ks, const char *vault,
	    const char *name, json_t **ret_json, struct xerr *e);

/*
 * State of `version` ("" or NULL: the current one).  XTCMK_E_REVOKED when
 * the key is deleted or missing, or the version disabled or missing.
 */
int	keystore_get(struct keystore *ks, const char *vault, const char *name,
	    const char *version, struct key_state *ret_state, struct xerr *e);
/* RSA-OAEP-256 with an enabled version (required, not ""). */
int	keystore_wrap(struct keystore *ks, const char *vault, const char *name,
	    const char *version, const uint8_t *dek, size_t dek_len,
	    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e);
int	keystore_unwrap(struct keystore *ks, const char *vault,
	    const char *name, const char *version, const uint8_t *wrapped,
	    size_t wrapped_len, uint8_t *dek, size_t dek_size,
	    size_t *ret_len, struct xerr *e);

#endif
