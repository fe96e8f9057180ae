/*
 * azure_kvreq.c - one Key Vault / Managed HSM request as the customer's
 * application, and what the vault answers when it refuses: the Bearer
 * challenge (parsed, checked, remembered per vault host), the access token
 * for it, one more try on a 401, vault error bodies mapped to sentences
 * that name the fix, and the probe behind `xtcmkctl customer check`
 * (identity token, challenge, token exchange).
 *
 * The first request to a vault host goes without a token: its 401
 * challenge names the vault's tenant and resource.  The tenant must be the
 * tenant the customer declared (a token for another tenant would be
 * useless, and a mismatch means the onboarding data is wrong); the
 * resource must be the one the host's suffix implies, so a token is only
 * ever sent where it belongs.  The challenge is remembered per host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "azure.h"
#include "azure_kv_int.h"
#include "validate.h"

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

/* --- challenges, remembered per vault host -------------------------- */

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

/*
 * Whether a vault error says the caller lacks a grant, and of which kind:
 * 1 an Azure RBAC role (ForbiddenByRbac, and AccessDenied from a Managed
 * HSM, whose local RBAC is the only mode it has), 0 an access-policy
 * permission (ForbiddenByPolicy), -1 not a denial.  Vaults answer
 * AccessDenied in the newer form of either mode: the message tells which
 * ("does not have keys ... permission" is the access-policy wording),
 * otherwise what the customer declared.
 */
int
az_kv_denial(const struct key_uri *u, const struct az_kv_err *ke,
    const char *declared)
{
	if (strcmp(ke->code, "ForbiddenByRbac") == 0)
		return 1;
	if (strcmp(ke->code, "ForbiddenByPolicy") == 0)
		return 0;
	if (strcmp(ke->code, "AccessDenied") != 0)
		return -1;
	if (u->service == KEY_SERVICE_MHSM)
		return 1;
	if (strstr(ke->message, "does not have keys") != NULL)
		return 0;
	if (strstr(ke->message, "not authorized") != NULL)
		return 1;
	return declared == NULL || strcmp(declared, "access-policy") != 0;
}

/* The sentence for a vault refusal, naming the fix. */
int
az_kv_error(struct az_ctx *x, const struct provider_req *pr,
    const struct key_uri *u, enum kv_op op, const struct az_http_resp *r,
    struct xerr *e)
{
	struct az_kv_err ke;
	char key[450], hint[400];
	const char *app = pr->app ? pr->app : "(unnamed)";
	int rbac;
	const char *cid = pr->app_client_id ? pr->app_client_id : "?";

	(void)x;
	az_kv_key_text(u, key, sizeof(key));
	if (az_kv_err_parse(r->body, &ke) < 0)
		snprintf(ke.code, sizeof(ke.code), "HTTP %ld", r->status);
	if (r->status == 404 || strcmp(ke.code, "KeyNotFound") == 0)
		return u->version[0] ? provider_err_no_version(e, key,
		    u->version) : provider_err_deleted(e, key);
	if (strcmp(ke.code, "KeyDisabled") == 0)
		return provider_err_disabled(e, key, u->version[0] ?
		    u->version : "(current)");
	if ((rbac = az_kv_denial(u, &ke, pr->vault_auth)) >= 0) {
		const char *declared = pr->vault_auth;
		const char *role = u->service == KEY_SERVICE_MHSM ?
		    "Managed HSM Crypto Service Encryption User" :
		    "Key Vault Crypto Service Encryption User";

		/* The code names the vault's mode (RBAC or access policy)
		 * only in the older form; AccessDenied leaves it open. */
		if (declared != NULL && strcmp(ke.code, "AccessDenied") != 0 &&
		    strcmp(declared, rbac ? "rbac" : "access-policy") != 0)
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
			snprintf(hint, sizeof(hint), "grant role %s on key "
			    "%.150s to application %.64s (client id %.40s) in "
			    "tenant %.40s", role, key, app, cid,
			    pr->tenant ? pr->tenant : "?");
		else
			snprintf(hint, sizeof(hint), "add access-policy key "
			    "permissions get, wrapKey, unwrapKey for "
			    "application %.64s (client id %.40s)", app, cid);
		return xerr_set(e, XTCMK_E_REVOKED, "the vault refuses %s on "
		    "key %s to application %s (%s): the customer must %s",
		    az_kv_op_name(op), key, app, ke.code, hint);
	}
	if (strcmp(ke.code, "KeyOperationForbidden") == 0)
		return xerr_set(e, XTCMK_E_REVOKED, "key %s does not permit "
		    "%s: the customer must allow the operations wrapKey and "
		    "unwrapKey on the key (key_ops)", key, az_kv_op_name(op));
	if (strcmp(ke.code, "ForbiddenByFirewall") == 0)
		return xerr_set(e, XTCMK_E_PROVIDER, "the firewall of the vault "
		    "of key %s refuses this host: the customer must allow "
		    "its address or a private endpoint", key);
	/* Before the unwrap case below: not a corrupted blob. */
	if (r->status == 400 && strcmp(ke.code, "BadParameter") == 0 &&
	    strstr(ke.message, "version") != NULL)
		return xerr_set(e, XTCMK_E_PROVIDER, "the vault of key %s does "
		    "not accept api-version %s (%.200s): set [azure] api_version "
		    "to one it knows, such as 7.4, or remove it", key,
		    x != NULL ? x->conf.api_version : "?", ke.message);
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
	    "%s: %.200s%s%s", az_kv_op_name(op), key, r->status, ke.code,
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
int
az_kv_request(struct az_ctx *x, const struct provider_req *pr,
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
