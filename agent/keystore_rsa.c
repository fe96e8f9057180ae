/*
 * keystore_rsa.c - the local keystore's RSA half: generating keys, their
 * PKCS#8 .pem files (written crash-safe, parsed lazily and checked to be
 * RSA of the key's size), and RSA-OAEP-256 wrap and unwrap with SHA-256
 * for both the digest and MGF1, as Key Vault does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "atomicfile.h"
#include "keystore.h"
#include "keystore_int.h"

int
ks_rsa_generate(int bits, EVP_PKEY **ret_pkey, struct xerr *e)
{
	EVP_PKEY *pkey;

	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (pkey == NULL)
		return xerr_set(e, XTCMK_E_INTERNAL, "keystore: RSA-%d key "
		    "generation failed", bits);
	*ret_pkey = pkey;
	return 0;
}

/* Write <version>.pem (PKCS#8, unencrypted, 0600) into the key's dir. */
int
ks_pem_write(struct keystore *ks, const struct ks_key *k, const char *version,
    EVP_PKEY *pkey, struct xerr *e)
{
	char where[KEYSTORE_VAULT_MAX + KEY_NAME_MAX + 16];
	char file[KEY_VERSION_LEN + 8];
	BIO *bio;
	char *data;
	long len;
	int vfd, kfd, rc;

	snprintf(where, sizeof(where), "keys/%s/%s", k->vault, k->dir);
	snprintf(file, sizeof(file), "%s.pem", version);
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || (len = BIO_get_mem_data(bio, &data)) <= 0) {
		BIO_free(bio);
		return xerr_set(e, XTCMK_E_INTERNAL, "keystore: cannot encode "
		    "the private key");
	}
	vfd = atomicfile_opendir(ks->rootfd, KS_WHO, k->vault, 1, e);
	if (vfd < 0) {
		BIO_free(bio);
		return vfd;
	}
	kfd = atomicfile_opendir(vfd, KS_WHO, k->dir, 1, e);
	close(vfd);
	if (kfd < 0) {
		BIO_free(bio);
		return kfd;
	}
	rc = atomicfile_write(kfd, KS_WHO, where, file, data, (size_t)len, e);
	close(kfd);
	BIO_free(bio);		/* secure heap: cleansed on free */
	return rc;
}

int
ks_pem_load(struct keystore *ks, const struct ks_key *k, struct ks_version *v,
    struct xerr *e)
{
	char file[KEY_VERSION_LEN + 8];
	EVP_PKEY *pkey;
	BIO *bio;
	char *text;
	size_t len;
	int vfd, kfd, rc;

	if (v->pkey != NULL)
		return 0;
	snprintf(file, sizeof(file), "%s.pem", v->version);
	if ((vfd = atomicfile_opendir(ks->rootfd, KS_WHO, k->vault, 0, e)) < 0)
		return vfd;
	kfd = atomicfile_opendir(vfd, KS_WHO, k->dir, 0, e);
	close(vfd);
	if (kfd < 0)
		return kfd;
	rc = atomicfile_read(kfd, file, KEYSTORE_PEM_MAX, &text, &len);
	close(kfd);
	if (rc < 0)
		return xerr_set(e, XTCMK_E_PROVIDER, "keystore: cannot read "
		    "keys/%s/%s/%s: %s; restore it from a backup", k->vault,
		    k->dir, file, strerror(-rc));
	bio = BIO_new_mem_buf(text, (int)len);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_clear_free(text, len + 1);
	if (pkey == NULL || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(pkey) != k->bits) {
		EVP_PKEY_free(pkey);
		return xerr_set(e, XTCMK_E_PROVIDER, "keystore: keys/%s/%s/%s "
		    "is not an RSA-%d private key; restore it from a backup",
		    k->vault, k->dir, file, k->bits);
	}
	v->pkey = pkey;
	return 0;
}

static EVP_PKEY_CTX *
oaep_ctx(EVP_PKEY *pkey, int decrypt)
{
	EVP_PKEY_CTX *ctx;

	if ((ctx = EVP_PKEY_CTX_new(pkey, NULL)) == NULL)
		return NULL;
	if ((decrypt ? EVP_PKEY_decrypt_init(ctx) :
	    EVP_PKEY_encrypt_init(ctx)) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
keystore_wrap(struct keystore *ks, const char *vault, const char *name,
    const char *version, const uint8_t *dek, size_t dek_len, uint8_t *out,
    size_t out_size, size_t *ret_len, struct xerr *e)
{
	char base[KID_MAX];
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx;
	size_t len;
	int rc;

	if (dek == NULL || dek_len < PROVIDER_DEK_MIN ||
	    dek_len > PROVIDER_DEK_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "a data key must have %d-%d "
		    "bytes", PROVIDER_DEK_MIN, PROVIDER_DEK_MAX);
	if ((rc = ks_pkey_ref(ks, vault, name, version, &pkey, base,
	    sizeof(base), e)) < 0)
		return rc;
	len = (size_t)EVP_PKEY_get_size(pkey);
	if (out_size < len) {
		EVP_PKEY_free(pkey);
		return xerr_set(e, XTCMK_E_TOOBIG, "wrapped key needs %zu "
		    "bytes, the buffer has %zu", len, out_size);
	}
	if ((ctx = oaep_ctx(pkey, 0)) == NULL ||
	    EVP_PKEY_encrypt(ctx, out, &len, dek, dek_len) <= 0)
		rc = xerr_set(e, XTCMK_E_PROVIDER, "keystore: RSA-OAEP-256 "
		    "wrap with %s/%s failed", base, version);
	else
		*ret_len = len;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return rc;
}

int
keystore_unwrap(struct keystore *ks, const char *vault, const char *name,
    const char *version, const uint8_t *wrapped, size_t wrapped_len,
    uint8_t *dek, size_t dek_size, size_t *ret_len, struct xerr *e)
{
	char base[KID_MAX];
	uint8_t buf[PROVIDER_WRAPPED_MAX];
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx;
	size_t len, mod;
	int rc;

	if (wrapped == NULL || dek == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "unwrap: no input");
	if ((rc = ks_pkey_ref(ks, vault, name, version, &pkey, base,
	    sizeof(base), e)) < 0)
		return rc;
	mod = (size_t)EVP_PKEY_get_size(pkey);
	if (wrapped_len != mod || mod > sizeof(buf)) {
		EVP_PKEY_free(pkey);
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped key is %zu "
		    "bytes but %s/%s wraps to %zu: the wrapped blob is "
		    "corrupted", wrapped_len, base, version, mod);
	}
	len = sizeof(buf);
	ctx = oaep_ctx(pkey, 1);
	if (ctx == NULL) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "keystore: cannot set up "
		    "RSA-OAEP-256");
	} else if (EVP_PKEY_decrypt(ctx, buf, &len, wrapped,
	    wrapped_len) <= 0) {
		rc = xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped key does not "
		    "decrypt with %s/%s: the wrapped blob is corrupted or was "
		    "made with another key", base, version);
	} else if (len > dek_size) {
		rc = xerr_set(e, XTCMK_E_TOOBIG, "unwrapped key has %zu "
		    "bytes, the buffer %zu", len, dek_size);
	} else {
		memcpy(dek, buf, len);
		*ret_len = len;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return rc;
}

