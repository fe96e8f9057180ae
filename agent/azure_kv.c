/*
 * azure_kv.c - the azure key provider: Key Vault and Managed HSM keys
 * REST (get key, wrapkey, unwrapkey) as the customer's application in the
 * customer's tenant, with the Bearer challenge honoured, errors mapped to
 * sentences that name the fix, and (with [azure] local_wrap = yes) wraps
 * done locally with the key's public half, cached at most AZ_PUBKEY_TTL_S
 * so a disabled key is still noticed within a minute.
 *
 * The first request to a vault host goes without a token: its 401
 * challenge names the vault's tenant and resource.  The tenant must be the
 * tenant the customer declared (a token for another tenant would be
 * useless, and a mismatch means the onboarding data is wrong); the
 * resource must be the one the host's suffix implies, so a token is only
 * ever sent where it belongs.  The challenge is remembered per host.
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
#include "validate.h"

struct az_chal_entry {
	struct az_chal_entry *next;
	char		 host[256];
	struct az_challenge ch;
};

struct az_pubkey {
	struct az_pubkey *next;
	char		 kid[KID_MAX];
	char		 kty[16];
	EVP_PKEY	*pk;		/* RSA keys only */
	long long	 fetched_ms;
	int		 bits;
};

enum kv_op { OP_GET, OP_WRAP, OP_UNWRAP };

static const char *const op_names[] = { "get", "wrapKey", "unwrapKey" };

/* --- parsers -------------------------------------------------------- */

int
az_kv_err_parse(const char *body, struct az_kv_err *ret)
{
	json_t *j, *err, *inner;
	const char *s;

	memset(ret, 0, sizeof(*ret));
	if (body == NULL || (j = json_loads(body, 0, NULL)) == NULL)
		return -1;
	err = json_object_get(j, "error");
	if (!json_is_object(err)) {
		json_decref(j);
		return -1;
	}
	if ((s = json_string_value(json_object_get(err, "code"))) != NULL) {
		snprintf(ret->outer, sizeof(ret->outer), "%s", s);
		snprintf(ret->code, sizeof(ret->code), "%s", s);
	}
	if ((s = json_string_value(json_object_get(err, "message"))) != NULL) {
		size_t i;

		snprintf(ret->message, sizeof(ret->message), "%s", s);
		/* One line: the service uses \r\n inside messages. */
		for (i = 0; ret->message[i] != '\0'; i++)
			if (ret->message[i] == '\r' || ret->message[i] == '\n')
				ret->message[i] = ' ';
	}
	/* The innermost code says why (KeyDisabled, ForbiddenByRbac...). */
	inner = json_object_get(err, "innererror");
	while (json_is_object(inner)) {
		if ((s = json_string_value(json_object_get(inner, "code"))) !=
		    NULL)
			snprintf(ret->code, sizeof(ret->code), "%s", s);
		inner = json_object_get(inner, "innererror");
	}
	json_decref(j);
	return ret->code[0] != '\0' ? 0 : -1;
}

/* Read `name="value"` or `name=value` pairs of a Bearer challenge. */
static int
chal_param(const char *hdr, const char *name, char *out, size_t out_size)
{
	const char *p = hdr;
	size_t nlen = strlen(name), n;

	while ((p = strcasestr(p, name)) != NULL) {
		int boundary = p == hdr || p[-1] == ' ' || p[-1] == ',' ||
		    p[-1] == '\t';
		const char *v = p + nlen, *end;

		p += nlen;
		if (!boundary)
			continue;
		while (*v == ' ')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ')
			v++;
		if (*v == '"') {
			v++;
			if ((end = strchr(v, '"')) == NULL)
				return -1;
		} else
			end = v + strcspn(v, ", \t");
		n = (size_t)(end - v);
		if (n == 0 || n >= out_size)
			return -1;
		memcpy(out, v, n);
		out[n] = '\0';
		return 0;
	}
	return -1;
}

int
az_challenge_parse(const char *hdr, struct az_challenge *ret)
{
	struct az_challenge c;
	const char *p;
	size_t n;

	memset(&c, 0, sizeof(c));
	while (*hdr == ' ')
		hdr++;
	if (strncasecmp(hdr, "Bearer", 6) != 0 || (hdr[6] != ' ' &&
	    hdr[6] != '\0'))
		return -1;
	hdr += 6;
	if (chal_param(hdr, "authorization", c.authority,
	    sizeof(c.authority)) < 0 && chal_param(hdr, "authorization_uri",
	    c.authority, sizeof(c.authority)) < 0)
		return -1;
	if (strncmp(c.authority, "https://", 8) != 0)
		return -1;
	/* The tenant is the authority's last path segment. */
	n = strlen(c.authority);
	while (n > 8 && c.authority[n - 1] == '/')
		c.authority[--n] = '\0';
	if ((p = strrchr(c.authority + 8, '/')) == NULL || p[1] == '\0' ||
	    strlen(p + 1) >= sizeof(c.tenant))
		return -1;
	snprintf(c.tenant, sizeof(c.tenant), "%s", p + 1);
	if (chal_param(hdr, "resource", c.resource, sizeof(c.resource)) == 0) {
		n = strlen(c.resource);
		while (n > 0 && c.resource[n - 1] == '/')
			c.resource[--n] = '\0';
		snprintf(c.scope, sizeof(c.scope), "%s/.default", c.resource);
	} else if (chal_param(hdr, "scope", c.scope, sizeof(c.scope)) == 0) {
		n = strlen(c.scope);
		if (n > 9 && strcmp(c.scope + n - 9, "/.default") == 0) {
			snprintf(c.resource, sizeof(c.resource), "%.*s",
			    (int)(n - 9), c.scope);
		} else {
			snprintf(c.resource, sizeof(c.resource), "%.299s", c.scope);
			snprintf(c.scope, sizeof(c.scope), "%s/.default",
			    c.resource);
		}
	} else
		return -1;
	*ret = c;
	return 0;
}

/* --- caches --------------------------------------------------------- */

static int
chal_get(struct az_ctx *x, const char *host, struct az_challenge *ret)
{
	struct az_chal_entry *c;
	int found = 0;

	pthread_mutex_lock(&x->mu);
	for (c = x->challenges; c != NULL; c = c->next)
		if (strcmp(c->host, host) == 0) {
			*ret = c->ch;
			found = 1;
			break;
		}
	pthread_mutex_unlock(&x->mu);
	return found;
}

static void
chal_put(struct az_ctx *x, const char *host, const struct az_challenge *ch)
{
	struct az_chal_entry *c;

	pthread_mutex_lock(&x->mu);
	for (c = x->challenges; c != NULL; c = c->next)
		if (strcmp(c->host, host) == 0)
			break;
	if (c == NULL && x->nchallenges < AZ_CHALLENGES_MAX &&
	    (c = calloc(1, sizeof(*c))) != NULL) {
		snprintf(c->host, sizeof(c->host), "%s", host);
		c->next = x->challenges;
		x->challenges = c;
		x->nchallenges++;
	}
	if (c != NULL)
		c->ch = *ch;
	pthread_mutex_unlock(&x->mu);
}

static void
chal_drop(struct az_ctx *x, const char *host)
{
	struct az_chal_entry **pp, *c;

	pthread_mutex_lock(&x->mu);
	for (pp = &x->challenges; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->host, host) == 0) {
			c = *pp;
			*pp = c->next;
			free(c);
			x->nchallenges--;
			break;
		}
	pthread_mutex_unlock(&x->mu);
}

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

/* --- requests ------------------------------------------------------- */

static void
who_of(const struct provider_req *r, struct az_who *w)
{
	memset(w, 0, sizeof(*w));
	if (r == NULL)
		return;
	w->customer = r->customer != NULL ? r->customer : "?";
	w->tenant = r->tenant;
	w->app = r->app;
	w->app_client_id = r->app_client_id;
	w->role_hint = r->role_hint;
}

static void
key_text(const struct key_uri *u, char *buf, size_t len)
{
	snprintf(buf, len, "%s/keys/%s", u->base, u->name);
}

/* The sentence for a vault refusal, naming the fix. */
static int
kv_error(struct az_ctx *x, const struct provider_req *pr,
    const struct key_uri *u, enum kv_op op, const struct az_http_resp *r,
    struct xerr *e)
{
	struct az_kv_err ke;
	char key[450], hint[400];
	const char *app = pr->app ? pr->app : "(unnamed)";
	const char *cid = pr->app_client_id ? pr->app_client_id : "?";

	(void)x;
	key_text(u, key, sizeof(key));
	if (az_kv_err_parse(r->body, &ke) < 0)
		snprintf(ke.code, sizeof(ke.code), "HTTP %ld", r->status);
	if (r->status == 404 || strcmp(ke.code, "KeyNotFound") == 0)
		return u->version[0] ? provider_err_no_version(e, key,
		    u->version) : provider_err_deleted(e, key);
	if (strcmp(ke.code, "KeyDisabled") == 0)
		return provider_err_disabled(e, key, u->version[0] ?
		    u->version : "(current)");
	if (strcmp(ke.code, "ForbiddenByRbac") == 0 ||
	    strcmp(ke.code, "ForbiddenByPolicy") == 0) {
		int rbac = ke.code[11] == 'R';
		const char *declared = pr->vault_auth;

		if (declared != NULL && strcmp(declared, rbac ? "rbac" :
		    "access-policy") != 0)
			return xerr_set(e, XTCMK_E_REVOKED, "the vault of key "
			    "%s authorizes with %s, but customer %s declares "
			    "vault_auth = %s: correct the customer's vault_auth "
			    "and have the customer %s", key, rbac ?
			    "Azure RBAC" : "access policies", pr->customer,
			    declared, rbac ? "grant role Key Vault Crypto "
			    "Service Encryption User on the key" :
			    "add access-policy key permissions get, wrapKey, "
			    "unwrapKey");
		if (pr->role_hint != NULL)
			snprintf(hint, sizeof(hint), "%.399s", pr->role_hint);
		else if (rbac)
			snprintf(hint, sizeof(hint), "grant role Key Vault "
			    "Crypto Service Encryption User on key %.150s to "
			    "application %.64s (client id %.40s) in tenant %.40s", key,
			    app, cid, pr->tenant ? pr->tenant : "?");
		else
			snprintf(hint, sizeof(hint), "add access-policy key "
			    "permissions get, wrapKey, unwrapKey for "
			    "application %.64s (client id %.40s)", app, cid);
		return xerr_set(e, XTCMK_E_REVOKED, "the vault refuses %s on "
		    "key %s to application %s (%s): the customer must %s",
		    op_names[op], key, app, ke.code, hint);
	}
	if (strcmp(ke.code, "KeyOperationForbidden") == 0)
		return xerr_set(e, XTCMK_E_REVOKED, "key %s does not permit "
		    "%s: the customer must allow the operations wrapKey and "
		    "unwrapKey on the key (key_ops)", key, op_names[op]);
	if (strcmp(ke.code, "ForbiddenByFirewall") == 0)
		return xerr_set(e, XTCMK_E_PROVIDER, "the firewall of the vault "
		    "of key %s refuses this host: the customer must allow "
		    "its address or a private endpoint", key);
	if (r->status == 401)
		return xerr_set(e, XTCMK_E_PROVIDER, "the vault of key %s "
		    "refused the token for application %s in tenant %s (%s): "
		    "%.200s", key, app, pr->tenant ? pr->tenant : "?",
		    ke.code, ke.message);
	if (r->status == 429)
		return xerr_set(e, XTCMK_E_PROVIDER, "the vault of key %s "
		    "throttles requests (HTTP 429 after %u attempts): lower "
		    "[azure] rate_limit or spread the load", key, r->attempts);
	if (r->status == 400 && op == OP_UNWRAP)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "the vault cannot unwrap "
		    "this wrapped key with %s (%s: %.200s): the blob is "
		    "corrupted or was wrapped by another key", key, ke.code,
		    ke.message);
	return xerr_set(e, XTCMK_E_PROVIDER, "%s on key %s failed: HTTP %ld "
	    "%s: %.200s%s%s", op_names[op], key, r->status, ke.code,
	    ke.message, r->request_id[0] ? " (x-ms-request-id " : "",
	    r->request_id[0] ? r->request_id : "");
}

/* Check and remember a vault's challenge. */
static int
learn_challenge(struct az_ctx *x, const struct provider_req *pr,
    const struct key_uri *u, const struct az_http_resp *r,
    struct az_challenge *ret, struct xerr *e)
{
	struct az_challenge ch;

	if (az_challenge_parse(r->www_auth, &ch) < 0)
		return xerr_set(e, XTCMK_E_PROVIDER, "%s answered 401 without "
		    "a usable Bearer challenge (WWW-Authenticate: %.200s)",
		    u->host, r->www_auth[0] ? r->www_auth : "none");
	if (strcasecmp(ch.scope, u->scope) != 0)
		return xerr_set(e, XTCMK_E_PROVIDER, "%s asks for a token for "
		    "%s, but a %s host takes tokens for %s: refusing to send "
		    "one", u->host, ch.resource, u->service == KEY_SERVICE_MHSM ?
		    "Managed HSM" : "Key Vault", u->scope);
	if (pr->tenant != NULL && strcasecmp(ch.tenant, pr->tenant) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "the vault %s belongs to "
		    "tenant %s, but customer %s declares tenant %s: correct "
		    "the customer's tenant or key URI", u->host, ch.tenant,
		    pr->customer, pr->tenant);
	atomic_fetch_add(&x->n_challenges, 1);
	chal_put(x, u->host, &ch);
	*ret = ch;
	return 0;
}

/*
 * One Key Vault request as the customer's application: challenge first
 * when the host is new, then with a Bearer token; a 401 on a token makes
 * one more try with a fresh challenge and token.
 */
static int
kv_request(struct az_ctx *x, const struct provider_req *pr,
    const struct key_uri *u, const char *method, const char *path,
    const char *body, struct az_http_resp *ret, struct xerr *e)
{
	static const char *const anon[] = {
		"Accept: application/json",
		"Content-Type: application/json",
		NULL
	};
	const char *hdrs[4];
	struct az_challenge ch;
	struct az_http_req req;
	struct az_http_resp r;
	struct az_who who;
	struct az_token *tok;
	char url[1200], *auth = NULL;
	int rc, tries;

	who_of(pr, &who);
	if (pr->tenant == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "customer %s has no tenant "
		    "id: the azure provider needs it", pr->customer);
	if (pr->app_client_id == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "application %s of customer "
		    "%s has no client id: set it with `xtcmkctl app set %s "
		    "--client-id CLIENT_ID`", pr->app ? pr->app : "?",
		    pr->customer, pr->app ? pr->app : "APP");
	snprintf(url, sizeof(url), "%s%s?api-version=%s", u->base, path,
	    x->conf.api_version);
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.body = body;
	req.body_len = body != NULL ? strlen(body) : 0;
	req.rate_key = u->host;
	req.deadline_ms = az_now_ms() + AZ_BUDGET_MS;
	if ((tok = calloc(1, sizeof(*tok))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	for (tries = 0;; tries++) {
		if (!chal_get(x, u->host, &ch)) {
			/* Learn the challenge with a bodiless GET: a data
			 * key never travels in an unauthenticated request. */
			struct az_http_req probe = req;
			char purl[1200];

			snprintf(purl, sizeof(purl), "%s/keys/%s?api-version=%s",
			    u->base, u->name, x->conf.api_version);
			probe.method = "GET";
			probe.url = purl;
			probe.body = NULL;
			probe.body_len = 0;
			probe.headers = anon;
			if ((rc = az_http_do(x->http, &probe, &r, e)) < 0)
				goto out;
			if (r.status != 401) {
				rc = xerr_set(e, XTCMK_E_PROVIDER, "%s answered "
				    "an unauthenticated request with HTTP %ld "
				    "instead of a Bearer challenge: is it a Key "
				    "Vault?", u->host, r.status);
				az_http_resp_clear(&r);
				goto out;
			}
			rc = learn_challenge(x, pr, u, &r, &ch, e);
			az_http_resp_clear(&r);
			if (rc < 0)
				goto out;
		}
		/* A cached challenge may come from another customer of
		 * this vault: check this customer's declaration too. */
		if (strcasecmp(ch.tenant, pr->tenant) != 0) {
			rc = xerr_set(e, XTCMK_E_INVAL, "the vault %s belongs "
			    "to tenant %s, but customer %s declares tenant %s: "
			    "correct the customer's tenant or key URI",
			    u->host, ch.tenant, pr->customer, pr->tenant);
			goto out;
		}
		who.tenant = ch.tenant;
		if ((rc = az_access_token(x, &who, ch.scope, tok, e)) < 0)
			goto out;
		free(auth);
		if (asprintf(&auth, "Authorization: Bearer %s", tok->access) ==
		    -1) {
			auth = NULL;
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto out;
		}
		hdrs[0] = auth;
		hdrs[1] = anon[0];
		hdrs[2] = anon[1];
		hdrs[3] = NULL;
		req.headers = hdrs;
		if ((rc = az_http_do(x->http, &req, &r, e)) < 0)
			goto out;
		if (r.status != 401 || tries > 0) {
			*ret = r;
			rc = 0;
			goto out;
		}
		/* Token refused (expired, revoked, vault moved): once more
		 * with a fresh challenge and token. */
		az_http_resp_clear(&r);
		az_access_token_drop(x, &who, ch.scope);
		chal_drop(x, u->host);
	}
out:
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	OPENSSL_cleanse(tok, sizeof(*tok));
	free(tok);
	return rc;
}

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
	if ((rc = kv_request(x, req, uri, "GET", path, NULL, &r, e)) < 0)
		return rc;
	if (r.status != 200) {
		rc = kv_error(x, req, uri, OP_GET, &r, e);
		goto out;
	}
	key_text(uri, keytext, sizeof(keytext));
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
	if ((rc = kv_request(x, req, uri, "POST", path, body, &r, e)) < 0)
		goto done;
	if (r.status != 200) {
		rc = kv_error(x, req, uri, op, &r, e);
		goto out;
	}
	if ((j = json_loads(r.body, 0, NULL)) == NULL ||
	    (v = json_string_value(json_object_get(j, "value"))) == NULL) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "the vault's %s answer has "
		    "no value", op_names[op]);
		goto out;
	}
	if ((rc = kid_matches(json_string_value(json_object_get(j, "kid")),
	    uri, NULL, e)) < 0)
		goto out;
	if (az_b64url_decode(v, out, out_size, &n) < 0) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "the vault's %s answer is "
		    "not base64url of at most %zu bytes", op_names[op],
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

/* --- probe ---------------------------------------------------------- */

static void
step(json_t *steps, const char *name, int ok, const char *detail)
{
	json_array_append_new(steps, json_pack("{s:s, s:b, s:s}", "step", name,
	    "ok", ok, "detail", detail));
}

int
provider_azure_probe(struct provider *p, const struct provider_req *req,
    const struct key_uri *uri, json_t *steps)
{
	struct az_ctx *x = p->ctx;
	struct az_token *tok;
	struct az_challenge ch;
	struct az_http_resp r;
	struct az_http_req hr;
	struct az_who who;
	struct xerr e;
	char url[1200], detail[700];
	json_t *pl;
	int rc;

	if ((tok = calloc(1, sizeof(*tok))) == NULL)
		return -XTCMK_E_NOMEM;
	/* 1. This host's identity. */
	xerr_clear(&e);
	az_tcache_drop(x->assertions, "assertion");
	if ((rc = az_identity_token(&x->conf, x->http, tok, &e)) < 0) {
		step(steps, "identity token", 0, e.msg);
		goto out;
	}
	pl = az_jwt_payload(tok->access);
	snprintf(detail, sizeof(detail), "%s token for %s (issuer %s, "
	    "subject %s), valid %llds", az_identity_name(x->conf.identity),
	    x->conf.audience, json_string_value(json_object_get(pl, "iss")) ?
	    json_string_value(json_object_get(pl, "iss")) : "?",
	    json_string_value(json_object_get(pl, "sub")) ?
	    json_string_value(json_object_get(pl, "sub")) : "?",
	    tok->expires_on - (long long)time(NULL));
	json_decref(pl);
	step(steps, "identity token", 1, detail);
	/* 2. The vault's challenge. */
	snprintf(url, sizeof(url), "%s/keys/%s?api-version=%s", uri->base,
	    uri->name, x->conf.api_version);
	memset(&hr, 0, sizeof(hr));
	hr.method = "GET";
	hr.url = url;
	hr.rate_key = uri->host;
	if ((rc = az_http_do(x->http, &hr, &r, &e)) < 0) {
		step(steps, "vault challenge", 0, e.msg);
		goto out;
	}
	if (r.status != 401) {
		snprintf(detail, sizeof(detail), "%s answered HTTP %ld to an "
		    "unauthenticated request instead of a 401 challenge",
		    uri->host, r.status);
		az_http_resp_clear(&r);
		step(steps, "vault challenge", 0, detail);
		rc = -XTCMK_E_PROVIDER;
		goto out;
	}
	rc = learn_challenge(x, req, uri, &r, &ch, &e);
	az_http_resp_clear(&r);
	if (rc < 0) {
		step(steps, "vault challenge", 0, e.msg);
		goto out;
	}
	snprintf(detail, sizeof(detail), "vault tenant %s, resource %s",
	    ch.tenant, ch.resource);
	step(steps, "vault challenge", 1, detail);
	/* 3. The exchange. */
	who_of(req, &who);
	who.tenant = ch.tenant;
	az_access_token_drop(x, &who, ch.scope);
	if ((rc = az_access_token(x, &who, ch.scope, tok, &e)) < 0) {
		step(steps, "token exchange", 0, e.msg);
		goto out;
	}
	snprintf(detail, sizeof(detail), "access token for %s in tenant %s as "
	    "client id %s, valid %llds", ch.scope, ch.tenant,
	    req->app_client_id, tok->expires_on - (long long)time(NULL));
	step(steps, "token exchange", 1, detail);
	rc = 0;
out:
	OPENSSL_cleanse(tok, sizeof(*tok));
	free(tok);
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
	    "s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, "
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
