/*
 * azure_token.c - Entra tokens: the client-assertion exchange (this
 * host's identity token → an access token in the customer's tenant as the
 * customer's application), the token cache, and the small parsers the
 * azure provider needs (base64url, JWT payload, token and error bodies).
 *
 * The cache holds one token per (tenant, application, scope).  A token is
 * refreshed AZ_TOKEN_MARGIN_S (or 10% of its lifetime, if less) before it
 * expires.  Only one refresh per key runs at a time: other callers of that
 * key use the still-valid token, or wait for the refresh when there is
 * none; callers of other keys never wait, because the cache's lock is
 * never held during I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "azure.h"

/* --- base64url ------------------------------------------------------ */

static const char b64u[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
az_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_size)
{
	size_t i, o = 0;
	uint32_t v;

	if ((len + 2) / 3 * 4 + 1 > out_size)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64u[v >> 18 & 63];
		out[o++] = b64u[v >> 12 & 63];
		out[o++] = b64u[v >> 6 & 63];
		out[o++] = b64u[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64u[v >> 18 & 63];
		out[o++] = b64u[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64u[v >> 18 & 63];
		out[o++] = b64u[v >> 12 & 63];
		out[o++] = b64u[v >> 6 & 63];
	}
	out[o] = '\0';
	return (int)o;
}

static int
b64u_val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

int
az_b64url_decode(const char *in, uint8_t *out, size_t out_size,
    size_t *ret_len)
{
	size_t n = strlen(in), i, o = 0;
	uint32_t acc = 0;
	int bits = 0, v;

	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((v = b64u_val((unsigned char)in[i])) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= out_size)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -1;
	*ret_len = o;
	return 0;
}

json_t *
az_jwt_payload(const char *jwt)
{
	const char *a, *b;
	char part[AZ_TOKEN_MAX];
	uint8_t *buf;
	size_t n, len;
	json_t *j;

	if (jwt == NULL || (a = strchr(jwt, '.')) == NULL ||
	    (b = strchr(a + 1, '.')) == NULL)
		return NULL;
	n = (size_t)(b - a - 1);
	if (n == 0 || n >= sizeof(part))
		return NULL;
	memcpy(part, a + 1, n);
	part[n] = '\0';
	if ((buf = malloc(n)) == NULL)
		return NULL;
	if (az_b64url_decode(part, buf, n, &len) < 0) {
		free(buf);
		return NULL;
	}
	j = json_loadb((const char *)buf, len, 0, NULL);
	free(buf);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* --- bodies --------------------------------------------------------- */

/* A number that may arrive as a JSON number or a string of digits. */
static int
num_field(json_t *o, const char *key, long long *ret)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	char *end;
	long long n;

	if (json_is_integer(v)) {
		*ret = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		/* Out of range (or NaN): not a time we can use. */
		if (!(d > -9.2e18 && d < 9.2e18))
			return -1;
		*ret = (long long)d;
		return 0;
	}
	if ((s = json_string_value(v)) == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*ret = n;
	return 0;
}

int
az_token_parse(const char *body, time_t now, struct az_token *ret,
    struct xerr *e)
{
	json_t *j;
	const char *tok, *type;
	long long exp = 0, in = 0;
	int rc = 0;

	if ((j = json_loads(body, 0, NULL)) == NULL || !json_is_object(j)) {
		json_decref(j);
		return xerr_set(e, XTCMK_E_PROVIDER, "token response is not a "
		    "JSON object");
	}
	tok = json_string_value(json_object_get(j, "access_token"));
	type = json_string_value(json_object_get(j, "token_type"));
	if (tok == NULL || *tok == '\0') {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "token response has no "
		    "access_token");
		goto out;
	}
	if (strlen(tok) >= sizeof(ret->access)) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "access token longer than "
		    "%d bytes", AZ_TOKEN_MAX - 1);
		goto out;
	}
	if (type != NULL && strcasecmp(type, "Bearer") != 0) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "token type '%.40s' is not "
		    "Bearer", type);
		goto out;
	}
	if (num_field(j, "expires_on", &exp) < 0) {
		if (num_field(j, "expires_in", &in) < 0 || in <= 0) {
			rc = xerr_set(e, XTCMK_E_PROVIDER, "token response has "
			    "neither expires_on nor expires_in");
			goto out;
		}
		exp = (long long)now + in;
	}
	if (exp <= (long long)now) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "token response carries a "
		    "token that already expired (clock skew?)");
		goto out;
	}
	memcpy(ret->access, tok, strlen(tok) + 1);
	ret->expires_on = exp;
	ret->obtained = now;
out:
	json_decref(j);
	return rc;
}

int
az_aad_err_parse(const char *body, struct az_aad_err *ret)
{
	json_t *j, *codes;
	const char *s, *p;
	size_t n;

	memset(ret, 0, sizeof(*ret));
	if ((j = json_loads(body, 0, NULL)) == NULL)
		return -1;
	if (!json_is_object(j) || !json_is_string(json_object_get(j,
	    "error"))) {
		json_decref(j);
		return -1;
	}
	snprintf(ret->error, sizeof(ret->error), "%s",
	    json_string_value(json_object_get(j, "error")));
	codes = json_object_get(j, "error_codes");
	if (json_is_array(codes) && json_is_integer(json_array_get(codes, 0)))
		ret->code = (long)json_integer_value(json_array_get(codes, 0));
	if ((s = json_string_value(json_object_get(j,
	    "error_description"))) != NULL) {
		n = strcspn(s, "\r\n");
		if (n >= sizeof(ret->desc))
			n = sizeof(ret->desc) - 1;
		memcpy(ret->desc, s, n);
		ret->desc[n] = '\0';
		if (ret->code == 0 && strncmp(s, "AADSTS", 6) == 0 &&
		    isdigit((unsigned char)s[6]))
			ret->code = strtol(s + 6, NULL, 10);
	}
	/* Some bodies put the code only in the text. */
	if (ret->code == 0 && (p = strstr(ret->desc, "AADSTS")) != NULL &&
	    isdigit((unsigned char)p[6]))
		ret->code = strtol(p + 6, NULL, 10);
	json_decref(j);
	return 0;
}

long long
az_token_refresh_at(long long obtained, long long exp)
{
	long long life = exp - obtained, margin = AZ_TOKEN_MARGIN_S;

	if (life < 0)
		life = 0;
	if (life / 10 < margin)
		margin = life / 10;
	return exp - margin;
}

enum az_token_age
az_token_age(const struct az_token *t, long long now)
{
	if (t->expires_on == 0 || now >= t->expires_on - AZ_TOKEN_SKEW_S)
		return AZ_EXPIRED;
	if (now >= az_token_refresh_at(t->obtained, t->expires_on))
		return AZ_STALE;
	return AZ_FRESH;
}

/* --- the cache ------------------------------------------------------ */

struct tentry {
	struct tentry	*next;
	char		*key;
	struct az_token	 tok;		/* expires_on 0: none */
	int		 refreshing;
	int		 waiters;	/* never evicted while > 0 */
	pthread_cond_t	 cv;
	unsigned long long gen;		/* refreshes finished */
	int		 last_rc;	/* of the last refresh */
	struct xerr	 last_err;
	long long	 used;		/* unix s, for eviction */
};

struct az_tcache {
	pthread_mutex_t	 mu;
	struct tentry	*list;
	unsigned	 n;
	unsigned long long hits, misses, refreshes, waits, failures,
	    stale_used;
};

int
az_tcache_new(struct az_tcache **ret, struct xerr *e)
{
	struct az_tcache *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	*ret = c;
	return 0;
}

static void
tentry_free(struct tentry *t)
{
	OPENSSL_cleanse(&t->tok, sizeof(t->tok));
	pthread_cond_destroy(&t->cv);
	free(t->key);
	free(t);
}

void
az_tcache_free(struct az_tcache *c)
{
	struct tentry *t, *next;

	if (c == NULL)
		return;
	for (t = c->list; t != NULL; t = next) {
		next = t->next;
		tentry_free(t);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static struct tentry *
find(struct az_tcache *c, const char *key)
{
	struct tentry *t;

	for (t = c->list; t != NULL; t = t->next)
		if (strcmp(t->key, key) == 0)
			return t;
	return NULL;
}

/* Drop the least recently used idle entry (cache full). */
static void
evict_one(struct az_tcache *c)
{
	struct tentry **pp, **victim = NULL, *t;

	for (pp = &c->list; *pp != NULL; pp = &(*pp)->next)
		if (!(*pp)->refreshing && (*pp)->waiters == 0 &&
		    (victim == NULL ||
		    (*pp)->used < (*victim)->used))
			victim = pp;
	if (victim == NULL)
		return;
	t = *victim;
	*victim = t->next;
	tentry_free(t);
	c->n--;
}

int
az_tcache_get(struct az_tcache *c, const char *key, az_fetch_fn *fetch,
    void *arg, struct az_token *ret, struct xerr *e)
{
	struct az_token *fresh;
	struct tentry *t;
	unsigned long long gen;
	long long now;
	int rc;

	pthread_mutex_lock(&c->mu);
	if ((t = find(c, key)) == NULL) {
		if (c->n >= AZ_TCACHE_MAX)
			evict_one(c);
		if ((t = calloc(1, sizeof(*t))) == NULL ||
		    (t->key = strdup(key)) == NULL) {
			free(t);
			pthread_mutex_unlock(&c->mu);
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		}
		pthread_cond_init(&t->cv, NULL);
		t->next = c->list;
		c->list = t;
		c->n++;
	}
	for (;;) {
		now = time(NULL);
		t->used = now;
		switch (az_token_age(&t->tok, now)) {
		case AZ_FRESH:
			c->hits++;
			*ret = t->tok;
			pthread_mutex_unlock(&c->mu);
			return 0;
		case AZ_STALE:
			if (t->refreshing) {
				/* Someone refreshes; this one still works. */
				c->stale_used++;
				*ret = t->tok;
				pthread_mutex_unlock(&c->mu);
				return 0;
			}
			break;
		case AZ_EXPIRED:
			if (t->refreshing) {
				c->waits++;
				gen = t->gen;
				t->waiters++;
				while (t->refreshing && t->gen == gen)
					pthread_cond_wait(&t->cv, &c->mu);
				t->waiters--;
				/* That refresh failed: share its verdict
				 * rather than asking again at once. */
				if (t->last_rc < 0 && az_token_age(&t->tok,
				    time(NULL)) == AZ_EXPIRED) {
					rc = t->last_rc;
					if (e != NULL)
						*e = t->last_err;
					pthread_mutex_unlock(&c->mu);
					return rc;
				}
				continue;
			}
			break;
		}
		break;
	}
	/* This caller refreshes; the lock is not held during I/O. */
	c->misses++;
	t->refreshing = 1;
	pthread_mutex_unlock(&c->mu);
	if ((fresh = calloc(1, sizeof(*fresh))) == NULL)
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	else
		rc = fetch(arg, fresh, e);
	pthread_mutex_lock(&c->mu);
	/* The entry may have been dropped meanwhile: look it up again. */
	if ((t = find(c, key)) != NULL) {
		t->refreshing = 0;
		t->gen++;
		t->last_rc = rc;
		xerr_clear(&t->last_err);
		if (rc < 0 && e != NULL)
			t->last_err = *e;
		pthread_cond_broadcast(&t->cv);
	}
	if (rc == 0) {
		c->refreshes++;
		if (t != NULL)
			t->tok = *fresh;
		*ret = *fresh;
	} else {
		c->failures++;
		/* A still-valid older token beats no token. */
		if (t != NULL && az_token_age(&t->tok, time(NULL)) ==
		    AZ_STALE) {
			c->stale_used++;
			*ret = t->tok;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (fresh != NULL) {
		OPENSSL_cleanse(fresh, sizeof(*fresh));
		free(fresh);
	}
	return rc;
}

void
az_tcache_drop(struct az_tcache *c, const char *key)
{
	struct tentry *t;

	pthread_mutex_lock(&c->mu);
	if ((t = find(c, key)) != NULL) {
		OPENSSL_cleanse(&t->tok, sizeof(t->tok));
		t->tok.expires_on = 0;
	}
	pthread_mutex_unlock(&c->mu);
}

void
az_tcache_stats(struct az_tcache *c, struct az_tcache_stats *ret)
{
	pthread_mutex_lock(&c->mu);
	ret->hits = c->hits;
	ret->misses = c->misses;
	ret->refreshes = c->refreshes;
	ret->waits = c->waits;
	ret->failures = c->failures;
	ret->stale_used = c->stale_used;
	ret->entries = c->n;
	pthread_mutex_unlock(&c->mu);
}

/* --- the exchange --------------------------------------------------- */

struct xarg {
	struct az_ctx		*x;
	const struct az_who	*who;
	const char		*scope;
};

static int
assertion_fetch(void *arg, struct az_token *ret, struct xerr *e)
{
	struct az_ctx *x = arg;

	return az_identity_token(&x->conf, x->http, ret, e);
}

static int
assertion(struct az_ctx *x, struct az_token *ret, struct xerr *e)
{
	return az_tcache_get(x->assertions, "assertion", assertion_fetch, x,
	    ret, e);
}

/* The sentence for an Entra refusal, naming the fix. */
static int
aad_error(struct az_ctx *x, const struct az_who *who, long status,
    const struct az_aad_err *ae, const char *assert_jwt, struct xerr *e)
{
	const char *app = who->app != NULL ? who->app : "(unnamed)";
	char iss[200] = "?", sub[80] = "?";
	json_t *p;

	switch (ae->code) {
	case 700016:
		return xerr_set(e, XTCMK_E_REVOKED, "application %s (client id "
		    "%s) is not installed in tenant %s: the customer's admin "
		    "must grant admin consent (%s/%s/adminconsent?client_id="
		    "%s)", app, who->app_client_id, who->tenant,
		    x->conf.authority, who->tenant, who->app_client_id);
	case 70021:
	case 700211:
	case 700212:
	case 700213:
		if ((p = az_jwt_payload(assert_jwt)) != NULL) {
			snprintf(iss, sizeof(iss), "%s", json_string_value(
			    json_object_get(p, "iss")) ? json_string_value(
			    json_object_get(p, "iss")) : "?");
			snprintf(sub, sizeof(sub), "%s", json_string_value(
			    json_object_get(p, "sub")) ? json_string_value(
			    json_object_get(p, "sub")) : "?");
			json_decref(p);
		}
		return xerr_set(e, XTCMK_E_REVOKED, "no federated credential "
		    "on application %s (client id %s) matches this host's "
		    "identity (issuer %s, subject %s, audience %s; AADSTS%ld): "
		    "run `xtcmkctl app plan` and create the credentials it "
		    "lists", app, who->app_client_id, iss, sub,
		    x->conf.audience, ae->code);
	case 7000112:
		return xerr_set(e, XTCMK_E_REVOKED, "application %s (client id "
		    "%s) is disabled: enable it in the provider tenant "
		    "(AADSTS7000112)", app, who->app_client_id);
	case 90002:
		return xerr_set(e, XTCMK_E_PROVIDER, "tenant %s of customer %s "
		    "does not exist in Entra ID (AADSTS90002): correct the "
		    "customer's tenant id", who->tenant, who->customer);
	case 700024:
		return xerr_set(e, XTCMK_E_PROVIDER, "this host's identity "
		    "token is outside its valid time (AADSTS700024): check the "
		    "host's clock");
	case 70011:
		return xerr_set(e, XTCMK_E_PROVIDER, "Entra refused the scope "
		    "(AADSTS70011): %s", ae->desc);
	default:
		return xerr_set(e, XTCMK_E_PROVIDER, "token request for "
		    "application %s in tenant %s failed (HTTP %ld, %s): %s",
		    app, who->tenant, status, ae->error[0] ? ae->error :
		    "no error code", ae->desc[0] ? ae->desc : "no description");
	}
}

static int
exchange_once(struct az_ctx *x, const struct az_who *who, const char *scope,
    struct az_token *ret, long *ret_code, struct xerr *e)
{
	static const char *const hdrs[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json",
		NULL
	};
	struct az_http_req req;
	struct az_http_resp r;
	struct az_aad_err ae;
	struct az_token *as;
	char url[512], escope[400], *form = NULL;
	size_t flen;
	int rc;

	*ret_code = 0;
	if ((as = calloc(1, sizeof(*as))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if ((rc = assertion(x, as, e)) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token",
	    x->conf.authority, who->tenant);
	if (az_urlencode(scope, escope, sizeof(escope)) < 0) {
		rc = xerr_set(e, XTCMK_E_INVAL, "scope too long");
		goto out;
	}
	/* The assertion is a JWT: base64url and dots, no escaping needed. */
	flen = strlen(as->access) + strlen(escope) +
	    strlen(who->app_client_id) + 256;
	if ((form = malloc(flen)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(form, flen, "grant_type=client_credentials&client_id=%s"
	    "&scope=%s&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth"
	    "%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=%s",
	    who->app_client_id, escope, as->access);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = hdrs;
	req.body = form;
	req.body_len = strlen(form);
	atomic_fetch_add(&x->n_exchanges, 1);
	if ((rc = az_http_do(x->http, &req, &r, e)) < 0) {
		xerr_set(e, XTCMK_E_PROVIDER, "token request to %s failed: "
		    "%.300s", x->conf.authority, e != NULL ? e->msg : "");
		goto out;
	}
	if (r.status == 200)
		rc = az_token_parse(r.body, time(NULL), ret, e);
	else if (az_aad_err_parse(r.body, &ae) == 0) {
		*ret_code = ae.code;
		rc = aad_error(x, who, r.status, &ae, as->access, e);
	} else
		rc = xerr_set(e, XTCMK_E_PROVIDER, "token request for tenant "
		    "%s answered HTTP %ld without an Entra error body",
		    who->tenant, r.status);
	az_http_resp_clear(&r);
out:
	if (form != NULL) {
		OPENSSL_cleanse(form, strlen(form));
		free(form);
	}
	OPENSSL_cleanse(as, sizeof(*as));
	free(as);
	return rc;
}

static int
exchange_fetch(void *arg, struct az_token *ret, struct xerr *e)
{
	struct xarg *a = arg;
	long code;
	int rc;

	rc = exchange_once(a->x, a->who, a->scope, ret, &code, e);
	if (rc < 0 && (code == 700024 || code == 700027)) {
		/* Our assertion expired or was rotated: get a new one. */
		az_tcache_drop(a->x->assertions, "assertion");
		rc = exchange_once(a->x, a->who, a->scope, ret, &code, e);
	}
	return rc;
}

static void
cache_key(const struct az_who *who, const char *scope, char *buf, size_t len)
{
	snprintf(buf, len, "%s|%s|%s", who->tenant, who->app_client_id, scope);
}

int
az_access_token(struct az_ctx *x, const struct az_who *who, const char *scope,
    struct az_token *ret, struct xerr *e)
{
	struct xarg a = { x, who, scope };
	char key[512];

	if (who->tenant == NULL || who->tenant[0] == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "customer %s has no tenant "
		    "id: set it with `xtcmkctl customer add`", who->customer);
	if (who->app_client_id == NULL || who->app_client_id[0] == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "application %s of customer "
		    "%s has no client id: set it with `xtcmkctl app set %s "
		    "--client-id CLIENT_ID`", who->app ? who->app : "?",
		    who->customer, who->app ? who->app : "APP");
	cache_key(who, scope, key, sizeof(key));
	return az_tcache_get(x->tokens, key, exchange_fetch, &a, ret, e);
}

void
az_access_token_drop(struct az_ctx *x, const struct az_who *who,
    const char *scope)
{
	char key[512];

	cache_key(who, scope, key, sizeof(key));
	az_tcache_drop(x->tokens, key);
}
