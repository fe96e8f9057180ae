/*
 * keystore.c - the embedded `local` keystore (see keystore.h): RSA keys
 * with versions under STATE_DIR/keys, Key Vault semantics.
 *
 * Every key's metadata is loaded at keystore_open() and kept in memory;
 * every change goes through this process (the agent), which writes
 * meta.json before the change becomes visible, so memory and disk agree
 * and a restart reads back exactly what was acknowledged.  Private keys
 * are parsed lazily, on first use of a version, and kept.
 *
 * This file owns names, metadata (meta.json), lookups and the lock; the
 * RSA keys, their .pem files and wrap/unwrap are in keystore_rsa.c, and
 * every file is written through atomicfile.c.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "atomicfile.h"
#include "keystore.h"
#include "keystore_int.h"

#define META_FILE	"meta.json"
#define META_FORMAT	1

/* Key Vault vault names: 3-24 of [a-z0-9-], letter first, no "--",
 * alphanumeric last.  Lowercased into `out`. */
static int
vault_norm(const char *s, char out[KEYSTORE_VAULT_MAX + 1], struct xerr *e)
{
	size_t i, n;

	if (s == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "vault name is missing");
	n = strlen(s);
	if (n < KEYSTORE_VAULT_MIN || n > KEYSTORE_VAULT_MAX)
		goto bad;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tolower((unsigned char)s[i]);

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			goto bad;
		if (c == '-' && i > 0 && out[i - 1] == '-')
			goto bad;
		out[i] = (char)c;
	}
	out[n] = '\0';
	if (!(out[0] >= 'a' && out[0] <= 'z') || out[n - 1] == '-')
		goto bad;
	return 0;
bad:
	return xerr_set(e, XTCMK_E_INVAL, "vault name '%.64s' is not valid: "
	    "use %d-%d letters, digits and single hyphens, starting with a "
	    "letter and not ending with a hyphen", s, KEYSTORE_VAULT_MIN,
	    KEYSTORE_VAULT_MAX);
}

/* Key Vault key names: 1-127 of [0-9A-Za-z-].  Lowercased into `dir`. */
static int
key_name_check(const char *s, char dir[KEY_NAME_MAX + 1], struct xerr *e)
{
	size_t i, n;

	if (s == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key name is missing");
	n = strlen(s);
	if (n < 1 || n > KEY_NAME_MAX)
		goto bad;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isascii(c) && (isalnum(c) || c == '-')))
			goto bad;
		dir[i] = (char)tolower(c);
	}
	dir[n] = '\0';
	return 0;
bad:
	return xerr_set(e, XTCMK_E_INVAL, "key name '%.128s' is not valid: "
	    "use 1-%d letters, digits and hyphens", s, KEY_NAME_MAX);
}

static int
version_check(const char *s)
{
	size_t i;

	if (strlen(s) != KEY_VERSION_LEN)
		return -1;
	for (i = 0; i < KEY_VERSION_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	return 0;
}

static void
key_base(const struct ks_key *k, char *buf, size_t len)
{
	snprintf(buf, len, "https://%s.vault.local/keys/%s", k->vault,
	    k->name);
}

static void
key_kid(const struct ks_key *k, const char *version, char *buf, size_t len)
{
	snprintf(buf, len, "https://%s.vault.local/keys/%s/%s", k->vault,
	    k->name, version);
}

static void
key_free(struct ks_key *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->nv; i++)
		EVP_PKEY_free(k->v[i].pkey);
	free(k->v);
	free(k);
}

static struct ks_version *
key_version(struct ks_key *k, const char *version)
{
	size_t i;

	for (i = 0; i < k->nv; i++)
		if (strcmp(k->v[i].version, version) == 0)
			return &k->v[i];
	return NULL;
}

static int
key_add_version(struct ks_key *k, const char *version, long long created,
    int enabled)
{
	struct ks_version *nv;
	size_t ncap;

	if (k->nv >= KEYSTORE_VERSIONS_MAX)
		return -XTCMK_E_TOOBIG;
	if (k->nv == k->cap) {
		ncap = k->cap ? k->cap * 2 : 4;
		nv = reallocarray(k->v, ncap, sizeof(*nv));
		if (nv == NULL)
			return -XTCMK_E_NOMEM;
		k->v = nv;
		k->cap = ncap;
	}
	memset(&k->v[k->nv], 0, sizeof(k->v[k->nv]));
	snprintf(k->v[k->nv].version, sizeof(k->v[k->nv].version), "%s",
	    version);
	k->v[k->nv].created = created;
	k->v[k->nv].enabled = enabled;
	k->nv++;
	return 0;
}

static struct ks_key *
ks_find(struct keystore *ks, const char *vault, const char *dir)
{
	size_t i;

	for (i = 0; i < ks->nkeys; i++)
		if (strcmp(ks->keys[i]->vault, vault) == 0 &&
		    strcmp(ks->keys[i]->dir, dir) == 0)
			return ks->keys[i];
	return NULL;
}

static int
ks_insert(struct keystore *ks, struct ks_key *k)
{
	struct ks_key **nk;
	size_t ncap;

	if (ks->nkeys == ks->cap) {
		ncap = ks->cap ? ks->cap * 2 : 16;
		nk = reallocarray(ks->keys, ncap, sizeof(*nk));
		if (nk == NULL)
			return -XTCMK_E_NOMEM;
		ks->keys = nk;
		ks->cap = ncap;
	}
	ks->keys[ks->nkeys++] = k;
	return 0;
}

/* ---- meta.json ---- */

static json_t *
meta_json(const struct ks_key *k)
{
	json_t *o, *vs, *v;
	size_t i;

	vs = json_array();
	if (vs == NULL)
		return NULL;
	for (i = 0; i < k->nv; i++) {
		v = json_pack("{s:s, s:I, s:b}", "version", k->v[i].version,
		    "created", (json_int_t)k->v[i].created,
		    "enabled", k->v[i].enabled);
		if (v == NULL || json_array_append_new(vs, v) == -1) {
			json_decref(vs);
			return NULL;
		}
	}
	o = json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:b, s:I, s:o}",
	    "format", META_FORMAT, "kty", "RSA", "vault", k->vault,
	    "name", k->name, "bits", k->bits, "current", k->current,
	    "deleted", k->deleted, "deleted_at", (json_int_t)k->deleted_at,
	    "versions", vs);
	return o;
}

static int
meta_write(struct keystore *ks, const struct ks_key *k, struct xerr *e)
{
	char where[KEYSTORE_VAULT_MAX + KEY_NAME_MAX + 16];
	json_t *o;
	char *text;
	int vfd, kfd, rc;

	snprintf(where, sizeof(where), "keys/%s/%s", k->vault, k->dir);
	if ((o = meta_json(k)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	vfd = atomicfile_opendir(ks->rootfd, KS_WHO, k->vault, 1, e);
	if (vfd < 0) {
		free(text);
		return vfd;
	}
	kfd = atomicfile_opendir(vfd, KS_WHO, k->dir, 1, e);
	close(vfd);
	if (kfd < 0) {
		free(text);
		return kfd;
	}
	rc = atomicfile_write(kfd, KS_WHO, where, META_FILE, text, strlen(text),
	    e);
	close(kfd);
	free(text);
	return rc;
}

static int
meta_bad(struct xerr *e, const char *vault, const char *dir, const char *why)
{
	return xerr_set(e, XTCMK_E_INTERNAL, "keystore: keys/%s/%s/%s is not "
	    "valid (%s); restore it from a backup or move that key directory "
	    "away", vault, dir, META_FILE, why);
}

/* Parse one meta.json into a new key; the directory names must match. */
static int
meta_load(int kfd, const char *vault, const char *dir,
    struct ks_key **ret_key, struct xerr *e)
{
	json_error_t jerr;
	json_t *o, *vs, *v;
	struct ks_key *k;
	const char *jvault, *jname, *jcur, *jkty, *ver;
	json_int_t created, deleted_at = 0;
	char *text;
	size_t len, i;
	int fmt, bits, deleted, enabled, rc;
	char ndir[KEY_NAME_MAX + 1], nvault[KEYSTORE_VAULT_MAX + 1];

	rc = atomicfile_read(kfd, META_FILE, KEYSTORE_META_MAX, &text, &len);
	if (rc == -ENOENT)
		return 0;	/* a create that crashed before its commit */
	if (rc < 0)
		return meta_bad(e, vault, dir, strerror(-rc));
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (o == NULL)
		return meta_bad(e, vault, dir, jerr.text);
	if (json_unpack_ex(o, &jerr, 0, "{s:i, s:s, s:s, s:s, s:i, s:s, "
	    "s:b, s?I, s:o}", "format", &fmt, "kty", &jkty, "vault", &jvault,
	    "name", &jname, "bits", &bits, "current", &jcur,
	    "deleted", &deleted, "deleted_at", &deleted_at,
	    "versions", &vs) == -1) {
		rc = meta_bad(e, vault, dir, jerr.text);
		goto out;
	}
	if (fmt != META_FORMAT || strcmp(jkty, "RSA") != 0 ||
	    (bits != 2048 && bits != 3072) || !json_is_array(vs) ||
	    json_array_size(vs) == 0 ||
	    json_array_size(vs) > KEYSTORE_VERSIONS_MAX ||
	    vault_norm(jvault, nvault, NULL) < 0 ||
	    strcmp(nvault, vault) != 0 ||
	    key_name_check(jname, ndir, NULL) < 0 ||
	    strcmp(ndir, dir) != 0 || version_check(jcur) < 0) {
		rc = meta_bad(e, vault, dir, "unexpected values");
		goto out;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(k->vault, sizeof(k->vault), "%s", vault);
	snprintf(k->dir, sizeof(k->dir), "%s", dir);
	snprintf(k->name, sizeof(k->name), "%s", jname);
	snprintf(k->current, sizeof(k->current), "%s", jcur);
	k->bits = bits;
	k->deleted = deleted;
	k->deleted_at = deleted_at;
	json_array_foreach(vs, i, v) {
		if (json_unpack(v, "{s:s, s:I, s:b}", "version", &ver,
		    "created", &created, "enabled", &enabled) == -1 ||
		    version_check(ver) < 0 || key_version(k, ver) != NULL) {
			key_free(k);
			rc = meta_bad(e, vault, dir, "bad version entry");
			goto out;
		}
		if (key_add_version(k, ver, created, enabled) < 0) {
			key_free(k);
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto out;
		}
	}
	if (key_version(k, k->current) == NULL) {
		key_free(k);
		rc = meta_bad(e, vault, dir, "current version is not listed");
		goto out;
	}
	*ret_key = k;
	rc = 1;
out:
	json_decref(o);
	return rc;
}

/*
 * Remove what a crash left in a key directory: temporary files of
 * atomicfile_write() (".NAME.<hex>.tmp") and the .pem of a version that
 * meta.json does not list (`k` NULL: none listed, a create that crashed
 * before its commit).  Such a version was never acknowledged, so no blob
 * names it.  Returns how many files went.
 */
static size_t
sweep_key_dir(int kfd, struct ks_key *k)
{
	char ver[KEY_VERSION_LEN + 1];
	struct dirent *de;
	size_t n = 0, len;
	DIR *d;
	int fd, drop;

	if ((fd = openat(kfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return 0;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		drop = 0;
		if (de->d_name[0] == '.' && len > 5 &&
		    strcmp(de->d_name + len - 4, ".tmp") == 0)
			drop = 1;
		else if (len == KEY_VERSION_LEN + 4 &&
		    strcmp(de->d_name + KEY_VERSION_LEN, ".pem") == 0) {
			memcpy(ver, de->d_name, KEY_VERSION_LEN);
			ver[KEY_VERSION_LEN] = '\0';
			drop = version_check(ver) == 0 && (k == NULL ||
			    key_version(k, ver) == NULL);
		}
		if (drop && unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int
load_vault(struct keystore *ks, const char *vault, struct xerr *e)
{
	struct dirent *de;
	struct ks_key *k;
	char dir[KEY_NAME_MAX + 1];
	DIR *d;
	int vfd, kfd, rc = 0;

	if ((vfd = atomicfile_opendir(ks->rootfd, KS_WHO, vault, 0, e)) < 0)
		return vfd;
	if ((d = fdopendir(vfd)) == NULL) {
		close(vfd);
		return xerr_set(e, XTCMK_E_INTERNAL, "keystore: cannot read "
		    "keys/%s: %s", vault, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* Only lowercase valid key names are key directories. */
		if (key_name_check(de->d_name, dir, NULL) < 0 ||
		    strcmp(dir, de->d_name) != 0)
			continue;
		kfd = atomicfile_opendir(dirfd(d), KS_WHO, dir, 0, e);
		if (kfd < 0) {
			rc = kfd;
			break;
		}
		k = NULL;
		rc = meta_load(kfd, vault, dir, &k, e);
		if (rc >= 0)
			ks->swept += sweep_key_dir(kfd, k);
		close(kfd);
		if (rc < 0)
			break;
		rc = 0;
		if (k == NULL)
			continue;
		if (ks->nkeys >= KEYSTORE_KEYS_MAX) {
			key_free(k);
			rc = xerr_set(e, XTCMK_E_TOOBIG, "keystore: more than "
			    "%d keys under %s", KEYSTORE_KEYS_MAX, ks->root);
			break;
		}
		if ((rc = ks_insert(ks, k)) < 0) {
			key_free(k);
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			break;
		}
	}
	closedir(d);
	return rc;
}

int
keystore_open(const char *state_dir, struct keystore **ret_ks,
    struct xerr *e)
{
	struct keystore *ks;
	struct dirent *de;
	char vault[KEYSTORE_VAULT_MAX + 1];
	DIR *d = NULL;
	int sfd, fd, rc;

	if (state_dir == NULL || *state_dir == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "keystore: no state "
		    "directory given");
	if ((ks = calloc(1, sizeof(*ks))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	ks->rootfd = -1;
	pthread_mutex_init(&ks->mu, NULL);
	if (asprintf(&ks->root, "%s/keys", state_dir) == -1) {
		ks->root = NULL;
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd == -1) {
		rc = xerr_set(e, XTCMK_E_INTERNAL, "keystore: cannot open "
		    "state directory %s: %s; create it (mode 0700, owned by "
		    "the agent's user)", state_dir, strerror(errno));
		goto fail;
	}
	ks->rootfd = atomicfile_opendir(sfd, KS_WHO, "keys", 1, e);
	close(sfd);
	if (ks->rootfd < 0) {
		rc = ks->rootfd;
		ks->rootfd = -1;
		goto fail;
	}
	if ((fd = dup(ks->rootfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		rc = xerr_set(e, XTCMK_E_INTERNAL, "keystore: cannot read "
		    "%s: %s", ks->root, strerror(errno));
		goto fail;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (vault_norm(de->d_name, vault, NULL) < 0 ||
		    strcmp(vault, de->d_name) != 0)
			continue;
		if ((rc = load_vault(ks, vault, e)) < 0)
			goto fail;
	}
	closedir(d);
	*ret_ks = ks;
	return 0;
fail:
	if (d != NULL)
		closedir(d);
	keystore_free(ks);
	return rc;
}

size_t
keystore_swept(const struct keystore *ks)
{
	return ks->swept;
}

void
keystore_free(struct keystore *ks)
{
	size_t i;

	if (ks == NULL)
		return;
	for (i = 0; i < ks->nkeys; i++)
		key_free(ks->keys[i]);
	free(ks->keys);
	if (ks->rootfd != -1)
		close(ks->rootfd);
	free(ks->root);
	pthread_mutex_destroy(&ks->mu);
	free(ks);
}

/* ---- operations ---- */

static int
new_version(struct ks_key *k, char out[KEY_VERSION_LEN + 1], struct xerr *e)
{
	unsigned char r[KEY_VERSION_LEN / 2];
	size_t i;

	do {
		if (RAND_bytes(r, sizeof(r)) != 1)
			return xerr_set(e, XTCMK_E_INTERNAL,
			    "keystore: no randomness for a key version");
		for (i = 0; i < sizeof(r); i++)
			snprintf(out + 2 * i, 3, "%02x", r[i]);
	} while (k != NULL && key_version(k, out) != NULL);
	return 0;
}

static void
state_fill(const struct ks_key *k, const struct ks_version *v,
    struct key_state *st)
{
	memset(st, 0, sizeof(*st));
	key_kid(k, v->version, st->kid, sizeof(st->kid));
	snprintf(st->version, sizeof(st->version), "%s", v->version);
	st->enabled = v->enabled;
	st->created = v->created;
	st->bits = k->bits;
	st->wrap_alg = PROVIDER_ALG_RSA_OAEP_256;
}

/* Find a key by (vault, name); validates both.  Called locked. */
static int
lookup(struct keystore *ks, const char *vault, const char *name,
    struct ks_key **ret_key, struct xerr *e)
{
	char nv[KEYSTORE_VAULT_MAX + 1], dir[KEY_NAME_MAX + 1];
	struct ks_key *k;
	int rc;

	if ((rc = vault_norm(vault, nv, e)) < 0 ||
	    (rc = key_name_check(name, dir, e)) < 0)
		return rc;
	if ((k = ks_find(ks, nv, dir)) == NULL)
		return xerr_set(e, XTCMK_E_NOT_FOUND, "key %s not found in "
		    "vault %s; list keys with `xtcmkctl key list`", name, nv);
	*ret_key = k;
	return 0;
}

/*
 * A usable version: the key exists and is not deleted, the version (""
 * for current) exists and is enabled.  Called locked.
 */
static int
usable(struct keystore *ks, const char *vault, const char *name,
    const char *version, struct ks_key **ret_key, struct ks_version **ret_v,
    struct xerr *e)
{
	char base[KID_MAX];
	struct ks_key *k;
	struct ks_version *v;
	int rc;

	if ((rc = lookup(ks, vault, name, &k, e)) < 0) {
		if (rc != -XTCMK_E_NOT_FOUND)
			return rc;
		snprintf(base, sizeof(base), "https://%s.vault.local/keys/%s",
		    vault, name);
		return provider_err_deleted(e, base);
	}
	key_base(k, base, sizeof(base));
	if (k->deleted)
		return provider_err_deleted(e, base);
	if (version == NULL || *version == '\0')
		version = k->current;
	if ((v = key_version(k, version)) == NULL)
		return provider_err_no_version(e, base, version);
	if (!v->enabled)
		return provider_err_disabled(e, base, version);
	*ret_key = k;
	*ret_v = v;
	return 0;
}

int
keystore_create(struct keystore *ks, const char *vault, const char *name,
    int bits, struct key_state *ret_state, struct xerr *e)
{
	struct ks_key *k = NULL;
	EVP_PKEY *pkey = NULL;
	char nv[KEYSTORE_VAULT_MAX + 1], dir[KEY_NAME_MAX + 1];
	int rc;

	if (bits == 0)
		bits = KEYSTORE_BITS_DEFAULT;
	if (bits != 2048 && bits != 3072)
		return xerr_set(e, XTCMK_E_INVAL, "RSA key size %d is not "
		    "supported: use 2048 or 3072", bits);
	if ((rc = vault_norm(vault, nv, e)) < 0 ||
	    (rc = key_name_check(name, dir, e)) < 0)
		return rc;
	/* Generate outside the lock: RSA-3072 takes a while. */
	if ((rc = ks_rsa_generate(bits, &pkey, e)) < 0)
		return rc;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		EVP_PKEY_free(pkey);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	snprintf(k->vault, sizeof(k->vault), "%s", nv);
	snprintf(k->dir, sizeof(k->dir), "%s", dir);
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->bits = bits;

	pthread_mutex_lock(&ks->mu);
	if (ks_find(ks, nv, dir) != NULL) {
		rc = xerr_set(e, XTCMK_E_EXISTS, "key %s already exists in "
		    "vault %s (perhaps deleted); use `key rotate` for a new "
		    "version or choose another name", name, nv);
		goto out;
	}
	if (ks->nkeys >= KEYSTORE_KEYS_MAX) {
		rc = xerr_set(e, XTCMK_E_TOOBIG, "keystore holds %d keys, its "
		    "limit", KEYSTORE_KEYS_MAX);
		goto out;
	}
	if ((rc = new_version(NULL, k->current, e)) < 0)
		goto out;
	if (key_add_version(k, k->current, (long long)time(NULL), 1) < 0) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = ks_pem_write(ks, k, k->current, pkey, e)) < 0 ||
	    (rc = meta_write(ks, k, e)) < 0)
		goto out;
	if ((rc = ks_insert(ks, k)) < 0) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	k->v[0].pkey = pkey;
	pkey = NULL;
	if (ret_state != NULL)
		state_fill(k, &k->v[0], ret_state);
	k = NULL;
	rc = 0;
out:
	pthread_mutex_unlock(&ks->mu);
	EVP_PKEY_free(pkey);
	key_free(k);
	return rc;
}

int
keystore_rotate(struct keystore *ks, const char *vault, const char *name,
    struct key_state *ret_state, struct xerr *e)
{
	struct ks_key *k;
	EVP_PKEY *pkey = NULL;
	char old[KEY_VERSION_LEN + 1], ver[KEY_VERSION_LEN + 1];
	int bits, rc;

	pthread_mutex_lock(&ks->mu);
	rc = lookup(ks, vault, name, &k, e);
	bits = rc == 0 ? k->bits : 0;
	if (rc == 0 && k->deleted)
		rc = xerr_set(e, XTCMK_E_CONFLICT, "key %s in vault %s is "
		    "deleted and cannot be rotated", k->name, k->vault);
	pthread_mutex_unlock(&ks->mu);
	if (rc < 0)
		return rc;
	if ((rc = ks_rsa_generate(bits, &pkey, e)) < 0)
		return rc;

	pthread_mutex_lock(&ks->mu);
	/* Keys are never removed from memory, so k is still valid. */
	if (k->deleted) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "key %s in vault %s is "
		    "deleted and cannot be rotated", k->name, k->vault);
		goto out;
	}
	if (k->nv >= KEYSTORE_VERSIONS_MAX) {
		rc = xerr_set(e, XTCMK_E_TOOBIG, "key %s has %d versions, the "
		    "limit; create a new key", k->name, KEYSTORE_VERSIONS_MAX);
		goto out;
	}
	if ((rc = new_version(k, ver, e)) < 0 ||
	    (rc = ks_pem_write(ks, k, ver, pkey, e)) < 0)
		goto out;
	if (key_add_version(k, ver, (long long)time(NULL), 1) < 0) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(old, sizeof(old), "%s", k->current);
	snprintf(k->current, sizeof(k->current), "%s", ver);
	if ((rc = meta_write(ks, k, e)) < 0) {
		k->nv--;
		snprintf(k->current, sizeof(k->current), "%s", old);
		goto out;
	}
	k->v[k->nv - 1].pkey = pkey;
	pkey = NULL;
	if (ret_state != NULL)
		state_fill(k, &k->v[k->nv - 1], ret_state);
	rc = 0;
out:
	pthread_mutex_unlock(&ks->mu);
	EVP_PKEY_free(pkey);
	return rc;
}

int
keystore_set_enabled(struct keystore *ks, const char *vault,
    const char *name, const char *version, int enabled, struct xerr *e)
{
	struct ks_key *k;
	struct ks_version *v = NULL;
	unsigned char *saved = NULL;
	size_t i;
	int rc;

	enabled = enabled != 0;
	pthread_mutex_lock(&ks->mu);
	if ((rc = lookup(ks, vault, name, &k, e)) < 0)
		goto out;
	if (k->deleted) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "key %s in vault %s is "
		    "deleted; its versions cannot be changed", k->name,
		    k->vault);
		goto out;
	}
	if (version != NULL) {
		if ((v = key_version(k, version)) == NULL) {
			rc = xerr_set(e, XTCMK_E_NOT_FOUND, "key %s has no "
			    "version '%.40s'; see `xtcmkctl key show`",
			    k->name, version);
			goto out;
		}
		if (v->enabled == enabled)
			goto out;	/* nothing to do */
		v->enabled = enabled;
		if ((rc = meta_write(ks, k, e)) < 0)
			v->enabled = !enabled;
		goto out;
	}
	if ((saved = malloc(k->nv)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < k->nv; i++) {
		saved[i] = (unsigned char)k->v[i].enabled;
		k->v[i].enabled = enabled;
	}
	if ((rc = meta_write(ks, k, e)) < 0)
		for (i = 0; i < k->nv; i++)
			k->v[i].enabled = saved[i];
out:
	pthread_mutex_unlock(&ks->mu);
	free(saved);
	return rc;
}

int
keystore_delete(struct keystore *ks, const char *vault, const char *name,
    struct xerr *e)
{
	struct ks_key *k;
	int rc;

	pthread_mutex_lock(&ks->mu);
	if ((rc = lookup(ks, vault, name, &k, e)) < 0)
		goto out;
	if (k->deleted)
		goto out;
	k->deleted = 1;
	k->deleted_at = (long long)time(NULL);
	if ((rc = meta_write(ks, k, e)) < 0) {
		k->deleted = 0;
		k->deleted_at = 0;
	}
out:
	pthread_mutex_unlock(&ks->mu);
	return rc;
}

static int
key_cmp(const void *a, const void *b)
{
	const struct ks_key *ka = *(struct ks_key *const *)a;
	const struct ks_key *kb = *(struct ks_key *const *)b;
	int c;

	if ((c = strcmp(ka->vault, kb->vault)) != 0)
		return c;
	return strcmp(ka->dir, kb->dir);
}

int
keystore_list(struct keystore *ks, const char *vault, json_t **ret_json,
    struct xerr *e)
{
	char nv[KEYSTORE_VAULT_MAX + 1], kid[KID_MAX];
	struct ks_key **sorted = NULL;
	struct ks_version *cur;
	json_t *arr, *o;
	size_t i, n = 0;
	int rc;

	if (vault != NULL && (rc = vault_norm(vault, nv, e)) < 0)
		return rc;
	if ((arr = json_array()) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	pthread_mutex_lock(&ks->mu);
	if (ks->nkeys > 0 &&
	    (sorted = calloc(ks->nkeys, sizeof(*sorted))) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < ks->nkeys; i++)
		if (vault == NULL || strcmp(ks->keys[i]->vault, nv) == 0)
			sorted[n++] = ks->keys[i];
	if (n > 0)
		qsort(sorted, n, sizeof(*sorted), key_cmp);
	for (i = 0; i < n; i++) {
		cur = key_version(sorted[i], sorted[i]->current);
		key_kid(sorted[i], sorted[i]->current, kid, sizeof(kid));
		o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:i, s:I}",
		    "kid", kid, "vault", sorted[i]->vault,
		    "name", sorted[i]->name, "current", sorted[i]->current,
		    "enabled", cur != NULL && cur->enabled,
		    "deleted", sorted[i]->deleted, "bits", sorted[i]->bits,
		    "versions", (json_int_t)sorted[i]->nv);
		if (o == NULL || json_array_append_new(arr, o) == -1) {
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	pthread_mutex_unlock(&ks->mu);
	free(sorted);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*ret_json = arr;
	return 0;
}

int
keystore_show(struct keystore *ks, const char *vault, const char *name,
    json_t **ret_json, struct xerr *e)
{
	char kid[KID_MAX];
	struct ks_key *k;
	json_t *o = NULL, *vs, *v;
	size_t i;
	int rc;

	pthread_mutex_lock(&ks->mu);
	if ((rc = lookup(ks, vault, name, &k, e)) < 0)
		goto out;
	if ((vs = json_array()) == NULL)
		goto nomem;
	for (i = 0; i < k->nv; i++) {
		key_kid(k, k->v[i].version, kid, sizeof(kid));
		v = json_pack("{s:s, s:s, s:I, s:b}", "version",
		    k->v[i].version, "kid", kid,
		    "created", (json_int_t)k->v[i].created,
		    "enabled", k->v[i].enabled);
		if (v == NULL || json_array_append_new(vs, v) == -1) {
			json_decref(vs);
			goto nomem;
		}
	}
	key_kid(k, k->current, kid, sizeof(kid));
	o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:I, s:i, s:s}",
	    "kid", kid, "vault", k->vault, "name", k->name,
	    "current", k->current, "versions", vs, "deleted", k->deleted,
	    "deleted_at", (json_int_t)k->deleted_at, "bits", k->bits,
	    "kty", "RSA");
	if (o == NULL)
		goto nomem;
	rc = 0;
	goto out;
nomem:
	rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
out:
	pthread_mutex_unlock(&ks->mu);
	if (rc == 0)
		*ret_json = o;
	return rc;
}

int
keystore_get(struct keystore *ks, const char *vault, const char *name,
    const char *version, struct key_state *ret_state, struct xerr *e)
{
	struct ks_key *k;
	struct ks_version *v;
	int rc;

	pthread_mutex_lock(&ks->mu);
	if ((rc = usable(ks, vault, name, version, &k, &v, e)) == 0)
		state_fill(k, v, ret_state);
	pthread_mutex_unlock(&ks->mu);
	return rc;
}

/*
 * Take a reference to the private key of a usable version, loading it if
 * needed, so that the RSA operation runs without the lock.
 */
int
ks_pkey_ref(struct keystore *ks, const char *vault, const char *name,
    const char *version, EVP_PKEY **ret_pkey, char *base, size_t base_len,
    struct xerr *e)
{
	struct ks_key *k;
	struct ks_version *v;
	int rc;

	if (version == NULL || version_check(version) < 0)
		return xerr_set(e, XTCMK_E_INVAL, "wrap and unwrap need a key "
		    "version of %d lowercase hex characters", KEY_VERSION_LEN);
	pthread_mutex_lock(&ks->mu);
	if ((rc = usable(ks, vault, name, version, &k, &v, e)) == 0 &&
	    (rc = ks_pem_load(ks, k, v, e)) == 0) {
		EVP_PKEY_up_ref(v->pkey);
		*ret_pkey = v->pkey;
		key_base(k, base, base_len);
	}
	pthread_mutex_unlock(&ks->mu);
	return rc;
}

