/*
 * azure_kv.c - the azure key provider: get key, wrap and unwrap on Key
 * Vault and Managed HSM keys, and (with [azure] local_wrap = yes) wraps
 * done locally with the key's public half, cached at most AZ_PUBKEY_TTL_S
 * so a disabled key is still noticed within a minute; the provider's
 * configuration, life cycle and stats.  Each REST call goes through
 * azure_kvreq.c (Bearer challenge, token, error sentences).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "azure.h"
#include "azure_kv_int.h"
#include "validate.h"

struct az_pubkey {
	struct az_pubkey *next;
	char		 kid[KID_MAX];
	char		 kty[16];
	EVP_PKEY	*pk;		/* RSA keys only */
	long long	 fetched_ms;
	int		 bits;
};

/* --- public keys ---------------------------------------------------- */

/* A cached key (kty, public key) younger than AZ_PUBKEY_TTL_S. */
static int
pub_get(struct az_ctx *x, const char *kid, char *kty, size_t kty_len,
    EVP_PKEY **ret_pk)
{
	struct az_pubkey *k;
	long long now = az_now_ms();
	int found = 0;

	pthread_mutex_lock(&x->mu);
	for (k = x->pubkeys; k != NULL; k = k->next)
		if (strcmp(k->kid, kid) == 0) {
			if (now - k->fetched_ms < AZ_PUBKEY_TTL_S * 1000) {
				snprintf(kty, kty_len, "%s", k->kty);
				if (ret_pk != NULL) {
					*ret_pk = k->pk;
					if (k->pk != NULL)
						EVP_PKEY_up_ref(k->pk);
				}
				found = 1;
			}
			break;
		}
	pthread_mutex_unlock(&x->mu);
	return found;
}

static void
pub_put(struct az_ctx *x, const char *kid, const char *kty, EVP_PKEY *pk)
{
	struct az_pubkey *k, **pp;

	pthread_mutex_lock(&x->mu);
	for (k = x->pubkeys; k != NULL; k = k->next)
		if (strcmp(k->kid, kid) == 0)
			break;
	if (k == NULL && x->npubkeys >= AZ_PUBKEYS_MAX) {
		/* Full: drop the oldest. */
		struct az_pubkey **old = NULL;

		for (pp = &x->pubkeys; *pp != NULL; pp = &(*pp)->next)
			if (old == NULL || (*pp)->fetched_ms <
			    (*old)->fetched_ms)
				old = pp;
		k = *old;
		*old = k->next;
		EVP_PKEY_free(k->pk);
		free(k);
		k = NULL;
		x->npubkeys--;
	}
	if (k == NULL && (k = calloc(1, sizeof(*k))) != NULL) {
		snprintf(k->kid, sizeof(k->kid), "%s", kid);
		k->next = x->pubkeys;
		x->pubkeys = k;
		x->npubkeys++;
	}
	if (k != NULL) {
		snprintf(k->kty, sizeof(k->kty), "%s", kty);
		EVP_PKEY_free(k->pk);
		k->pk = pk;
		pk = NULL;
		k->fetched_ms = az_now_ms();
	}
	pthread_mutex_unlock(&x->mu);
	EVP_PKEY_free(pk);
}

static void
pub_drop(struct az_ctx *x, const char *kid)
{
	struct az_pubkey *k;

	pthread_mutex_lock(&x->mu);
	for (k = x->pubkeys; k != NULL; k = k->next)
		if (strcmp(k->kid, kid) == 0)
			k->fetched_ms = 0;
	pthread_mutex_unlock(&x->mu);
}

/* RSA public key from the JWK's base64url n and e. */
static EVP_PKEY *
rsa_from_jwk(const char *n64, const char *e64, int *ret_bits)
{
	uint8_t n[1024], ev[16];
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;

	if (n64 == NULL || e64 == NULL ||
	    az_b64url_decode(n64, n, sizeof(n), &nlen) < 0 || nlen < 128 ||
	    az_b64url_decode(e64, ev, sizeof(ev), &elen) < 0 || elen == 0)
		return NULL;
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(ev, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pk = NULL;
	if (pk != NULL)
		*ret_bits = EVP_PKEY_get_bits(pk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pk;
}

/* --- provider operations -------------------------------------------- */

static int
kid_matches(const char *kid, const struct key_uri *u, struct key_uri *ret,
    struct xerr *e)
{
	struct key_uri k;

	if (kid == NULL || key_uri_parse(kid, &k, NULL) < 0 ||
	    k.version[0] == '\0')
		return xerr_set(e, XTCMK_E_PROVIDER, "the vault returned a key "
		    "id that is not a versioned key URI: %.200s",
		    kid ? kid : "(none)");
	if (strcmp(k.host, u->host) != 0 || strcasecmp(k.name, u->name) != 0 ||
	    (u->version[0] && strcmp(k.version, u->version) != 0))
		return xerr_set(e, XTCMK_E_PROVIDER, "the vault answered for "
		    "key %s, not for %s/keys/%s%s%s", kid, u->base, u->name,
		    u->version[0] ? "/" : "", u->version);
	if (ret != NULL)
		*ret = k;
	return 0;
}

static int
has_op(json_t *ops, const char *op)
{
	size_t i;
	json_t *v;

	if (!json_is_array(ops))
		return 1;	/* not stated: the service decides */
	json_array_foreach(ops, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), op) == 0)
			return 1;
	return 0;
}

static int
az_get_key(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, struct key_state *ret_state, struct xerr *e)
{
	struct az_ctx *x = p->ctx;
	struct az_http_resp r;
	struct key_state st;
	struct key_uri k;
	json_t *j = NULL, *key, *attr;
	const char *kty;
	char path[300], keytext[450];
	EVP_PKEY *pk = NULL;
	int rc, bits = 0;

	snprintf(path, sizeof(path), "/keys/%s%s%s", uri->name,
	    uri->version[0] ? "/" : "", uri->version);
	if ((rc = az_kv_request(x, req, uri, "GET", path, NULL, &r, e)) < 0)
		return rc;
	if (r.status != 200) {
		rc = az_kv_error(x, req, uri, OP_GET, &r, e);
		goto out;
	}
	az_kv_key_text(uri, keytext, sizeof(keytext));
	if ((j = json_loads(r.body, 0, NULL)) == NULL ||
	    !json_is_object(key = json_object_get(j, "key"))) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "the vault's answer for %s "
		    "is not a key bundle", keytext);
		goto out;
	}
	attr = json_object_get(j, "attributes");
	if ((rc = kid_matches(json_string_value(json_object_get(key, "kid")),
	    uri, &k, e)) < 0)
		goto out;
	if (json_is_false(json_object_get(attr, "enabled"))) {
		rc = provider_err_disabled(e, keytext, k.version);
		goto out;
	}
	if (json_is_integer(json_object_get(attr, "exp")) &&
	    json_integer_value(json_object_get(attr, "exp")) <= time(NULL)) {
		rc = xerr_set(e, XTCMK_E_REVOKED, "key %s version %s expired; "
		    "the customer must rotate it or extend its expiry",
		    keytext, k.version);
		goto out;
	}
	if (!has_op(json_object_get(key, "key_ops"), "wrapKey") ||
	    !has_op(json_object_get(key, "key_ops"), "unwrapKey")) {
		rc = xerr_set(e, XTCMK_E_REVOKED, "key %s does not permit "
		    "wrapKey and unwrapKey: the customer must allow both "
		    "operations on the key (key_ops)", keytext);
		goto out;
	}
	kty = json_string_value(json_object_get(key, "kty"));
	if (kty == NULL)
		kty = "?";
	if (strcmp(kty, "RSA") == 0 || strcmp(kty, "RSA-HSM") == 0) {
		pk = rsa_from_jwk(json_string_value(json_object_get(key, "n")),
		    json_string_value(json_object_get(key, "e")), &bits);
		if (pk == NULL) {
			rc = xerr_set(e, XTCMK_E_PROVIDER, "key %s: the vault's "
			    "RSA public key (n, e) does not decode", keytext);
			goto out;
		}
	} else if (!(strcmp(kty, "oct-HSM") == 0 &&
	    uri->service == KEY_SERVICE_MHSM)) {
		rc = xerr_set(e, XTCMK_E_REVOKED, "key %s is of type %s: "
		    "envelope encryption needs an RSA key (or oct-HSM on a "
		    "Managed HSM); the customer must configure one", keytext,
		    kty);
		goto out;
	} else
		bits = 256;
	memset(&st, 0, sizeof(st));
	snprintf(st.kid, sizeof(st.kid), "https://%s/keys/%s/%s", k.host,
	    k.name, k.version);
	snprintf(st.version, sizeof(st.version), "%s", k.version);
	st.enabled = 1;
	st.created = json_integer_value(json_object_get(attr, "created"));
	st.bits = bits;
	st.wrap_alg = strcmp(kty, "oct-HSM") == 0 ? PROVIDER_ALG_A256KW :
	    PROVIDER_ALG_RSA_OAEP_256;
	pub_put(x, st.kid, kty, pk);
	pk = NULL;
	*ret_state = st;
	rc = 0;
out:
	EVP_PKEY_free(pk);
	json_decref(j);
	az_http_resp_clear(&r);
	return rc;
}

/* The key's type (and RSA public key), from the cache or the vault. */
static int
key_info(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, char *kty, size_t kty_len, EVP_PKEY **ret_pk,
    struct xerr *e)
{
	struct az_ctx *x = p->ctx;
	struct key_state st;
	char kid[KID_MAX];
	int rc;

	snprintf(kid, sizeof(kid), "%s/keys/%s/%s", uri->base, uri->name,
	    uri->version);
	if (pub_get(x, kid, kty, kty_len, ret_pk))
		return 0;
	if ((rc = az_get_key(p, req, uri, &st, e)) < 0)
		return rc;
	if (!pub_get(x, kid, kty, kty_len, ret_pk))
		return xerr_set(e, XTCMK_E_PROVIDER, "key %s: no key type",
		    kid);
	return 0;
}

static int
local_wrap(EVP_PKEY *pk, const uint8_t *dek, size_t dek_len, uint8_t *out,
    size_t out_size, size_t *ret_len, struct xerr *e)
{
	EVP_PKEY_CTX *ctx;
	size_t n = out_size;
	int ok;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	ok = EVP_PKEY_encrypt_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0 &&
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) > 0 &&
	    EVP_PKEY_encrypt(ctx, out, &n, dek, dek_len) > 0;
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		return xerr_set(e, XTCMK_E_PROVIDER, "local RSA-OAEP-256 wrap "
		    "failed (wrapped key buffer of %zu bytes)", out_size);
	*ret_len = n;
	return 0;
}

/* POST wrapkey / unwrapkey; the answer's value decoded into out. */
static int
key_op(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, enum kv_op op, const char *alg,
    const uint8_t *in, size_t in_len, uint8_t *out, size_t out_size,
    size_t *ret_len, struct xerr *e)
{
	struct az_ctx *x = p->ctx;
	struct az_http_resp r;
	char path[300], *b64 = NULL, *body = NULL;
	const char *v;
	json_t *j = NULL;
	size_t n, blen;
	int rc;

	snprintf(path, sizeof(path), "/keys/%s/%s/%s", uri->name,
	    uri->version, op == OP_WRAP ? "wrapkey" : "unwrapkey");
	blen = (in_len + 2) / 3 * 4 + 1;
	if ((b64 = malloc(blen)) == NULL ||
	    az_b64url_encode(in, in_len, b64, blen) < 0 ||
	    asprintf(&body, "{\"alg\":\"%s\",\"value\":\"%s\"}", alg, b64) ==
	    -1) {
		body = NULL;
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = az_kv_request(x, req, uri, "POST", path, body, &r, e)) < 0)
		goto done;
	if (r.status != 200) {
		rc = az_kv_error(x, req, uri, op, &r, e);
		goto out;
	}
	if ((j = json_loads(r.body, 0, NULL)) == NULL ||
	    (v = json_string_value(json_object_get(j, "value"))) == NULL) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "the vault's %s answer has "
		    "no value", az_kv_op_name(op));
		goto out;
	}
	if ((rc = kid_matches(json_string_value(json_object_get(j, "kid")),
	    uri, NULL, e)) < 0)
		goto out;
	if (az_b64url_decode(v, out, out_size, &n) < 0) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "the vault's %s answer is "
		    "not base64url of at most %zu bytes", az_kv_op_name(op),
		    out_size);
		goto out;
	}
	*ret_len = n;
	rc = 0;
out:
	if (r.body != NULL)
		OPENSSL_cleanse(r.body, r.len);
	az_http_resp_clear(&r);
done:
	json_decref(j);
	if (body != NULL) {
		OPENSSL_cleanse(body, strlen(body));
		free(body);
	}
	if (b64 != NULL) {
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
	}
	return rc;
}

static const char *
alg_for(const char *kty)
{
	return strcmp(kty, "oct-HSM") == 0 ? "A256KW" : "RSA-OAEP-256";
}

static int
az_wrap(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, const uint8_t *dek, size_t dek_len,
    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e)
{
	struct az_ctx *x = p->ctx;
	EVP_PKEY *pk = NULL;
	char kty[16] = "RSA";
	int rc;

	if (x->conf.local_wrap || uri->service == KEY_SERVICE_MHSM) {
		if ((rc = key_info(p, req, uri, kty, sizeof(kty),
		    x->conf.local_wrap ? &pk : NULL, e)) < 0)
			return rc;
		if (pk != NULL) {
			atomic_fetch_add(&x->n_local_wraps, 1);
			rc = local_wrap(pk, dek, dek_len, out, out_size,
			    ret_len, e);
			EVP_PKEY_free(pk);
			return rc;
		}
	}
	return key_op(p, req, uri, OP_WRAP, alg_for(kty), dek, dek_len, out,
	    out_size, ret_len, e);
}

static int
az_unwrap(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, const uint8_t *wrapped, size_t wrapped_len,
    uint8_t *dek, size_t dek_size, size_t *ret_len, struct xerr *e)
{
	char kty[16] = "RSA";
	int rc;

	if (uri->service == KEY_SERVICE_MHSM &&
	    (rc = key_info(p, req, uri, kty, sizeof(kty), NULL, e)) < 0)
		return rc;
	rc = key_op(p, req, uri, OP_UNWRAP, alg_for(kty), wrapped,
	    wrapped_len, dek, dek_size, ret_len, e);
	if (rc == -XTCMK_E_REVOKED) {
		char kid[KID_MAX];

		snprintf(kid, sizeof(kid), "%s/keys/%s/%s", uri->base,
		    uri->name, uri->version);
		pub_drop(p->ctx, kid);
	}
	return rc;
}

/* --- life cycle ----------------------------------------------------- */

void
az_conf_clear(struct az_conf *c)
{
	free(c->client_id);
	free(c->object_id);
	free(c->resource_id);
	free(c->imds_endpoint);
	free(c->token_file);
	free(c->identity_endpoint);
	if (c->identity_header != NULL) {
		OPENSSL_cleanse(c->identity_header, strlen(c->identity_header));
		free(c->identity_header);
	}
	free(c->audience);
	free(c->authority);
	free(c->provider_tenant);
	free(c->ca_file);
	free(c->connect_to);
	free(c->api_version);
	memset(c, 0, sizeof(*c));
}

static char *
pick(const char *v, const char *env, const char *dflt)
{
	const char *s = v;

	if (s == NULL && env != NULL)
		s = secure_getenv(env);
	if (s == NULL || *s == '\0')
		s = dflt;
	return s != NULL ? strdup(s) : NULL;
}

static int
conf_from(const struct config *cfg, struct az_conf *c, struct xerr *e)
{
	const char *id = cfg->azure_identity;
	size_t n;

	memset(c, 0, sizeof(*c));
	if (id == NULL || strcmp(id, "imds") == 0)
		c->identity = AZ_ID_IMDS;
	else if (strcmp(id, "workload-identity") == 0)
		c->identity = AZ_ID_WORKLOAD;
	else if (strcmp(id, "app-service") == 0)
		c->identity = AZ_ID_APPSERVICE;
	else
		return xerr_set(e, XTCMK_E_INVAL, "[azure] identity '%s': use "
		    "imds, workload-identity or app-service", id);
	c->client_id = pick(cfg->azure_identity_client_id, NULL, NULL);
	c->object_id = pick(cfg->azure_identity_object_id, NULL, NULL);
	c->resource_id = pick(cfg->azure_identity_resource_id, NULL, NULL);
	c->imds_endpoint = pick(cfg->azure_imds_endpoint, NULL,
	    "http://169.254.169.254/metadata/identity/oauth2/token");
	c->token_file = pick(cfg->azure_federated_token_file,
	    "AZURE_FEDERATED_TOKEN_FILE", NULL);
	c->identity_endpoint = pick(cfg->azure_identity_endpoint,
	    "IDENTITY_ENDPOINT", NULL);
	c->identity_header = pick(cfg->azure_identity_header,
	    "IDENTITY_HEADER", NULL);
	c->audience = pick(cfg->azure_token_audience, NULL,
	    "api://AzureADTokenExchange");
	c->authority = pick(cfg->azure_authority, NULL,
	    "https://login.microsoftonline.com");
	c->provider_tenant = pick(cfg->azure_tenant, NULL, NULL);
	c->ca_file = pick(cfg->azure_ca_file, NULL, NULL);
	c->connect_to = pick(cfg->azure_connect_to, NULL, NULL);
	c->api_version = pick(cfg->azure_api_version, NULL, "7.4");
	c->timeout_ms = cfg->azure_timeout_ms ? cfg->azure_timeout_ms : 5000;
	c->retries = cfg->azure_retries;
	c->rate_limit = cfg->azure_rate_limit;
	c->local_wrap = cfg->azure_local_wrap;
	if (c->imds_endpoint == NULL || c->audience == NULL ||
	    c->authority == NULL || c->api_version == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	n = strlen(c->authority);
	while (n > 8 && c->authority[n - 1] == '/')
		c->authority[--n] = '\0';
	if ((c->client_id != NULL) + (c->object_id != NULL) +
	    (c->resource_id != NULL) > 1)
		return xerr_set(e, XTCMK_E_INVAL, "[azure] names more than one "
		    "of identity_client_id, identity_object_id and "
		    "identity_resource_id: keep one");
	return 0;
}

static void
az_destroy(struct provider *p)
{
	struct az_ctx *x = p->ctx;
	struct az_chal_entry *c, *cn;
	struct az_pubkey *k, *kn;

	if (x == NULL)
		return;
	az_http_free(x->http);
	az_tcache_free(x->tokens);
	az_tcache_free(x->assertions);
	for (c = x->challenges; c != NULL; c = cn) {
		cn = c->next;
		free(c);
	}
	for (k = x->pubkeys; k != NULL; k = kn) {
		kn = k->next;
		EVP_PKEY_free(k->pk);
		free(k);
	}
	az_conf_clear(&x->conf);
	pthread_mutex_destroy(&x->mu);
	free(x);
	p->ctx = NULL;
}

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct provider *
provider_azure_new(const struct config *cfg, struct xerr *e)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct provider *p;
	struct az_ctx *x;

	pthread_once(&once, curl_init_once);
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (x = calloc(1, sizeof(*x))) == NULL) {
		free(p);
		xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&x->mu, NULL);
	p->name = "azure";
	p->kind = PROVIDER_AZURE;
	p->ctx = x;
	p->get_key = az_get_key;
	p->wrap = az_wrap;
	p->unwrap = az_unwrap;
	p->destroy = az_destroy;
	if (conf_from(cfg, &x->conf, e) < 0 ||
	    az_http_new(&x->conf, &x->http, e) < 0 ||
	    az_tcache_new(&x->tokens, e) < 0 ||
	    az_tcache_new(&x->assertions, e) < 0) {
		provider_free(p);
		return NULL;
	}
	return p;
}

json_t *
provider_azure_stats(struct provider *p)
{
	struct az_ctx *x = p->ctx;
	struct az_http_stats hs;
	struct az_tcache_stats ts, as;

	az_http_stats(x->http, &hs);
	az_tcache_stats(x->tokens, &ts);
	az_tcache_stats(x->assertions, &as);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, "
	    "s:I}}",
	    "get", (json_int_t)p->calls_get,
	    "wrap", (json_int_t)p->calls_wrap,
	    "unwrap", (json_int_t)p->calls_unwrap,
	    "errors", (json_int_t)p->errors,
	    "local_wraps", (json_int_t)x->n_local_wraps,
	    "http",
	    "requests", (json_int_t)hs.requests,
	    "attempts", (json_int_t)hs.attempts,
	    "retries", (json_int_t)hs.retries,
	    "throttled", (json_int_t)hs.throttled,
	    "failures", (json_int_t)hs.failures,
	    "rate_waits", (json_int_t)hs.rate_waits,
	    "retry_after_waits", (json_int_t)hs.retry_after_waits,
	    "retry_after_ms", (json_int_t)hs.retry_after_ms,
	    "token_cache",
	    "entries", (json_int_t)ts.entries,
	    "hits", (json_int_t)ts.hits,
	    "misses", (json_int_t)ts.misses,
	    "refreshes", (json_int_t)ts.refreshes,
	    "waits", (json_int_t)ts.waits,
	    "failures", (json_int_t)ts.failures,
	    "stale_used", (json_int_t)ts.stale_used,
	    "identity",
	    "fetches", (json_int_t)as.refreshes,
	    "failures", (json_int_t)as.failures,
	    "exchanges", (json_int_t)x->n_exchanges);
}
