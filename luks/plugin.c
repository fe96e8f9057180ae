/*
 * plugin.c - libcryptsetup-token-xtcmk.so, the LUKS2 external token
 * handler cryptsetup loads for tokens of type "xtcmk" (token.h).
 *
 * At unlock it asks xtcmkd, through libxtcmk, to unwrap the token's blob
 * and hands cryptsetup the keyslot passphrase derived from the DEK.  When
 * the customer disables the key, the agent refuses within the policy's
 * revocation check interval and so does the unlock: there is no copy of
 * the DEK or the passphrase anywhere but in the agent's locked cache.
 *
 * A guest in cryptsetup's process: it speaks only through libcryptsetup's
 * log (crypt_logf), wipes every secret it held, exports only the token
 * ABI (plugin.map), and bounds every call by the token's timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libcryptsetup.h>

#include "config.h"
#include "token.h"
#include "xtcmk.h"

#define EXPORT	__attribute__((visibility("default")))

EXPORT int cryptsetup_token_open(struct crypt_device *, int, char **,
    size_t *, void *);
EXPORT void cryptsetup_token_buffer_free(void *, size_t);
EXPORT int cryptsetup_token_validate(struct crypt_device *, const char *);
EXPORT void cryptsetup_token_dump(struct crypt_device *, const char *);
EXPORT const char *cryptsetup_token_version(void);

static int
read_token(struct crypt_device *cd, int token, struct token *t)
{
	const char *json;
	char err[TOKEN_ERR_MAX];
	int r;

	if ((r = crypt_token_json_get(cd, token, &json)) < 0) {
		crypt_logf(cd, CRYPT_LOG_ERROR, "xtcmk token %d: cannot read "
		    "the token (%s).\n", token, strerror(-r));
		return r;
	}
	if ((r = token_parse(json, t, err, sizeof(err))) < 0) {
		crypt_logf(cd, CRYPT_LOG_ERROR, "xtcmk token %d: %s.\n",
		    token, err);
		return r;
	}
	return 0;
}

/*
 * Unwrap the token's blob and return the derived passphrase in locked
 * memory (the start of a struct token_secret; cryptsetup_token_buffer_free
 * wipes and unmaps it).
 */
EXPORT int
cryptsetup_token_open(struct crypt_device *cd, int token, char **buffer,
    size_t *buffer_len, void *usrptr)
{
	struct token *t;
	struct token_secret *sec = NULL;
	struct xtcmk *h = NULL;
	int r, rc;

	(void)usrptr;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	if ((r = read_token(cd, token, t)) < 0)
		goto out;
	if ((sec = token_secret_alloc(sizeof(*sec))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((rc = xtcmk_open(t->socket[0] != '\0' ? t->socket : NULL,
	    t->timeout_ms, &h)) == XTCMK_OK)
		rc = xtcmk_dek_unwrap(h, t->customer, t->blob, t->blob_len,
		    sec->dek);
	if (rc != XTCMK_OK) {
		crypt_logf(cd, CRYPT_LOG_ERROR, "xtcmk token %d: customer %s, "
		    "key %s: %s%s%s\n", token, t->customer, t->key_id,
		    xtcmk_strerror(rc), xtcmk_last_error()[0] != '\0' ?
		    ": " : "", xtcmk_last_error());
		r = token_errno(rc);
		goto out;
	}
	r = token_passphrase(sec->dek, sec->pass);
	explicit_bzero(sec->dek, sizeof(sec->dek));
	if (r < 0) {
		crypt_logf(cd, CRYPT_LOG_ERROR, "xtcmk token %d: cannot "
		    "derive the keyslot passphrase.\n", token);
		goto out;
	}
	crypt_logf(cd, CRYPT_LOG_DEBUG, "xtcmk token %d: data key of %s "
	    "unwrapped by the agent.", token, t->customer);
	*buffer = sec->pass;
	*buffer_len = TOKEN_PASS_LEN;
	sec = NULL;
 out:
	token_secret_free(sec, sizeof(*sec));
	xtcmk_close(h);
	free(t);
	return r;
}

EXPORT void
cryptsetup_token_buffer_free(void *buffer, size_t buffer_len)
{
	/* buffer is the start of the struct token_secret open returned. */
	(void)buffer_len;
	token_secret_free(buffer, sizeof(struct token_secret));
}

/* Refuse a malformed token (at import and before every open). */
EXPORT int
cryptsetup_token_validate(struct crypt_device *cd, const char *json)
{
	struct token *t;
	char err[TOKEN_ERR_MAX];
	int r;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	if ((r = token_parse(json, t, err, sizeof(err))) < 0)
		crypt_logf(cd, CRYPT_LOG_ERROR, "xtcmk token refused: %s.\n",
		    err);
	free(t);
	return r;
}

EXPORT void
cryptsetup_token_dump(struct crypt_device *cd, const char *json)
{
	struct token *t;
	char err[TOKEN_ERR_MAX];

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return;
	if (token_parse(json, t, err, sizeof(err)) < 0) {
		crypt_logf(cd, CRYPT_LOG_NORMAL, "\txtcmk:      invalid "
		    "(%s)\n", err);
	} else {
		crypt_logf(cd, CRYPT_LOG_NORMAL, "\tcustomer:   %s\n",
		    t->customer);
		crypt_logf(cd, CRYPT_LOG_NORMAL, "\tkey id:     %s\n",
		    t->key_id);
		crypt_logf(cd, CRYPT_LOG_NORMAL, "\tblob:       %zu bytes\n",
		    t->blob_len);
		crypt_logf(cd, CRYPT_LOG_NORMAL, "\tsocket:     %s\n",
		    t->socket[0] != '\0' ? t->socket : "(default)");
		crypt_logf(cd, CRYPT_LOG_NORMAL, "\ttimeout:    %u ms\n",
		    t->timeout_ms);
	}
	free(t);
}

EXPORT const char *
cryptsetup_token_version(void)
{
	return XTCMK_VERSION;
}
