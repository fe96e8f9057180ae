/*
 * provider.c - the provider call wrappers (argument checks, call counters,
 * uniform errors) and the embedded `local` provider over the keystore.
 */
#include <stdlib.h>
#include <string.h>

#include "keystore.h"
#include "provider.h"

/* Make sure a failed op left a code and a sentence behind. */
static int
finish(struct provider *p, int rc, struct xerr *local, struct xerr *e)
{
	if (rc >= 0)
		return rc;
	atomic_fetch_add(&p->errors, 1);
	if (local->code == 0)
		xerr_set(local, -rc > 0 && -rc < XTCMK__RESULT_COUNT ? -rc :
		    XTCMK_E_PROVIDER, "key provider %s failed without saying "
		    "why", p->name);
	if (e != NULL)
		*e = *local;
	return -local->code;
}

static int
check_uri(struct provider *p, const struct key_uri *uri, int need_version,
    struct xerr *e)
{
	if (p == NULL || uri == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "no key provider or key URI");
	if (need_version && uri->version[0] == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "wrap and unwrap need a key "
		    "URI with a version, not %s/keys/%s", uri->base, uri->name);
	return 0;
}

int
provider_get_key(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, struct key_state *ret_state, struct xerr *e)
{
	struct key_state st;
	struct xerr local;
	int rc;

	if ((rc = check_uri(p, uri, 0, e)) < 0)
		return rc;
	if (ret_state == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "get_key: no output");
	xerr_clear(&local);
	atomic_fetch_add(&p->calls_get, 1);
	rc = p->get_key(p, req, uri, &st, &local);
	if (rc < 0)
		return finish(p, rc, &local, e);
	*ret_state = st;
	return 0;
}

int
provider_wrap(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, const uint8_t *dek, size_t dek_len,
    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e)
{
	struct xerr local;
	size_t len = 0;
	int rc;

	if ((rc = check_uri(p, uri, 1, e)) < 0)
		return rc;
	if (dek == NULL || dek_len < PROVIDER_DEK_MIN ||
	    dek_len > PROVIDER_DEK_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "a data key must have %d-%d "
		    "bytes", PROVIDER_DEK_MIN, PROVIDER_DEK_MAX);
	if (out == NULL || ret_len == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "wrap: no output buffer");
	xerr_clear(&local);
	atomic_fetch_add(&p->calls_wrap, 1);
	rc = p->wrap(p, req, uri, dek, dek_len, out, out_size, &len, &local);
	if (rc < 0)
		return finish(p, rc, &local, e);
	if (len == 0 || len > out_size)
		return finish(p, xerr_set(&local, XTCMK_E_PROVIDER, "key "
		    "provider %s returned a wrapped key of %zu bytes", p->name,
		    len), &local, e);
	*ret_len = len;
	return 0;
}

int
provider_unwrap(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, const uint8_t *wrapped, size_t wrapped_len,
    uint8_t *dek, size_t dek_size, size_t *ret_len, struct xerr *e)
{
	struct xerr local;
	size_t len = 0;
	int rc;

	if ((rc = check_uri(p, uri, 1, e)) < 0)
		return rc;
	if (wrapped == NULL || wrapped_len == 0 ||
	    wrapped_len > PROVIDER_WRAPPED_MAX)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped key of %zu bytes "
		    "is not valid (1-%d)", wrapped_len, PROVIDER_WRAPPED_MAX);
	if (dek == NULL || ret_len == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "unwrap: no output buffer");
	xerr_clear(&local);
	atomic_fetch_add(&p->calls_unwrap, 1);
	rc = p->unwrap(p, req, uri, wrapped, wrapped_len, dek, dek_size, &len,
	    &local);
	if (rc < 0)
		return finish(p, rc, &local, e);
	if (len < PROVIDER_DEK_MIN || len > dek_size)
		return finish(p, xerr_set(&local, XTCMK_E_BAD_BLOB, "unwrapped "
		    "key has %zu bytes, not a data key: the wrapped blob is "
		    "corrupted", len), &local, e);
	*ret_len = len;
	return 0;
}

void
provider_free(struct provider *p)
{
	if (p == NULL)
		return;
	if (p->destroy != NULL)
		p->destroy(p);
	free(p);
}

int
provider_err_disabled(struct xerr *e, const char *key, const char *version)
{
	return xerr_set(e, XTCMK_E_REVOKED, "key %s version %s is disabled in "
	    "its vault; the customer must re-enable it", key, version);
}

int
provider_err_deleted(struct xerr *e, const char *key)
{
	return xerr_set(e, XTCMK_E_REVOKED, "key %s was deleted from its vault "
	    "or does not exist; the customer must recover it or configure a "
	    "new key", key);
}

int
provider_err_no_version(struct xerr *e, const char *key, const char *version)
{
	return xerr_set(e, XTCMK_E_REVOKED, "key %s version %s was deleted "
	    "from its vault or never existed; the customer must restore it",
	    key, version);
}

/* ---- local ---- */

static int
local_uri(const struct key_uri *uri, struct xerr *e)
{
	if (uri->service != KEY_SERVICE_LOCAL)
		return xerr_set(e, XTCMK_E_INVAL, "key %s/keys/%s is not a "
		    "local key (https://VAULT.vault.local/keys/NAME); "
		    "configure "
		    "the azure provider for it", uri->base, uri->name);
	return 0;
}

static int
local_get_key(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, struct key_state *ret_state, struct xerr *e)
{
	int rc;

	(void)req;
	if ((rc = local_uri(uri, e)) < 0)
		return rc;
	return keystore_get(p->ctx, uri->vault, uri->name, uri->version,
	    ret_state, e);
}

static int
local_wrap(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, const uint8_t *dek, size_t dek_len,
    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e)
{
	int rc;

	(void)req;
	if ((rc = local_uri(uri, e)) < 0)
		return rc;
	return keystore_wrap(p->ctx, uri->vault, uri->name, uri->version, dek,
	    dek_len, out, out_size, ret_len, e);
}

static int
local_unwrap(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, const uint8_t *wrapped, size_t wrapped_len,
    uint8_t *dek, size_t dek_size, size_t *ret_len, struct xerr *e)
{
	int rc;

	(void)req;
	if ((rc = local_uri(uri, e)) < 0)
		return rc;
	return keystore_unwrap(p->ctx, uri->vault, uri->name, uri->version,
	    wrapped, wrapped_len, dek, dek_size, ret_len, e);
}

struct provider *
provider_local_new(struct keystore *ks)
{
	struct provider *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->name = "local";
	p->kind = PROVIDER_LOCAL;
	p->ctx = ks;
	p->get_key = local_get_key;
	p->wrap = local_wrap;
	p->unwrap = local_unwrap;
	p->destroy = NULL;
	atomic_init(&p->calls_get, 0);
	atomic_init(&p->calls_wrap, 0);
	atomic_init(&p->calls_unwrap, 0);
	atomic_init(&p->errors, 0);
	return p;
}
