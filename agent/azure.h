/*
 * azure.h - the azure key provider's parts, shared by azure_http.c (HTTP
 * client: retries, rate limits), azure_identity.c (this host's identity
 * token), azure_token.c (token exchange and cache), azure_kv.c (the
 * provider ops, public-key cache and local wrap) and azure_kvreq.c (one
 * Key Vault / Managed HSM request: Bearer challenge, errors).
 *
 * Everything here returns 0 / negative enum xtcmk_result with a sentence
 * in `struct xerr`, like the rest of the agent.  Nothing logs.
 */
#ifndef XTCMK_AZURE_H
#define XTCMK_AZURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "conf.h"
#include "provider.h"
#include "xerr.h"

#define AZ_BODY_MAX		(64 * 1024)	/* response body cap */
#define AZ_HEADER_MAX		2048		/* one kept header value */
#define AZ_TOKEN_MAX		16384		/* access token / assertion */
#define AZ_TOKEN_FILE_MAX	16384		/* federated token file */
#define AZ_RETRY_AFTER_MAX_S	30		/* Retry-After honoured up to */
#define AZ_BACKOFF_BASE_MS	200
#define AZ_BACKOFF_CAP_MS	4000
#define AZ_RATE_HOSTS_MAX	4096		/* hosts with a rate bucket */
#define AZ_TCACHE_MAX		16384		/* cached tokens */
#define AZ_CHALLENGES_MAX	4096		/* vault hosts remembered */
#define AZ_PUBKEYS_MAX		4096		/* cached public keys */
#define AZ_PUBKEY_TTL_S		60		/* local_wrap key lifetime */
#define AZ_TOKEN_MARGIN_S	300		/* refresh before expiry */
#define AZ_TOKEN_SKEW_S		10		/* never use a token this close */
#define AZ_WI_REREAD_S		600		/* workload identity file */
#define AZ_BUDGET_MS		20000		/* one provider call, all retries */

/* --- configuration (from [azure], environment defaults applied) ------ */

enum az_identity_kind {
	AZ_ID_IMDS = 1,
	AZ_ID_WORKLOAD,		/* AKS projected token file */
	AZ_ID_APPSERVICE,	/* App Service / Container Apps endpoint */
};

struct az_conf {
	enum az_identity_kind identity;
	char	*client_id, *object_id, *resource_id;	/* at most one */
	char	*imds_endpoint;
	char	*token_file;
	char	*identity_endpoint, *identity_header;
	char	*audience;		/* api://AzureADTokenExchange */
	char	*authority;		/* https://login.microsoftonline.com */
	char	*provider_tenant;	/* [azure] tenant, may be NULL */
	char	*ca_file, *connect_to;
	char	*api_version;
	unsigned timeout_ms, retries, rate_limit;
	int	 local_wrap;
};

/* --- HTTP (azure_http.c) --------------------------------------------- */

struct az_http;

struct az_http_req {
	const char	*method;	/* "GET", "POST" */
	const char	*url;
	const char	*const *headers;	/* NULL-terminated, may be NULL */
	const char	*body;		/* may be NULL */
	size_t		 body_len;
	const char	*rate_key;	/* host for the rate limit, or NULL */
	long long	 deadline_ms;	/* monotonic; 0: now + AZ_BUDGET_MS */
	int		 retry_404;	/* IMDS: 404/410 mean "not yet" */
};

struct az_http_resp {
	long	 status;
	char	*body;			/* NUL-terminated, malloc'ed */
	size_t	 len;
	char	 www_auth[AZ_HEADER_MAX];
	char	 request_id[128];
	long	 retry_after_s;		/* -1: none */
	unsigned attempts;
};

struct az_http_stats {
	unsigned long long requests, attempts, retries, throttled, failures,
	    rate_waits;
	unsigned long long retry_after_waits;	/* waits a Retry-After set */
	unsigned long long retry_after_ms;	/* their total */
};

int	az_http_new(const struct az_conf *c, struct az_http **ret,
	    struct xerr *e);
void	az_http_free(struct az_http *h);
/*
 * One request with retries (429, 5xx, timeouts, resets) and the per-host
 * rate limit.  A response with any status is a success (0); the caller
 * reads resp->status.  Network failure after all retries, an oversized
 * body or the budget running out are errors (XTCMK_E_PROVIDER).
 */
int	az_http_do(struct az_http *h, const struct az_http_req *req,
	    struct az_http_resp *ret_resp, struct xerr *e);
void	az_http_resp_clear(struct az_http_resp *r);
void	az_http_stats(struct az_http *h, struct az_http_stats *ret);

/* Pure helpers (tested directly). */
/* Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)). */
long	az_backoff_ms(unsigned attempt, long base_ms, long cap_ms, double r);
/* Retry-After: delta-seconds or an HTTP-date; -1 if unusable.  The result
 * is capped at AZ_RETRY_AFTER_MAX_S. */
long	az_retry_after_parse(const char *v, time_t now);
/* Token bucket: take one token at `now_ms`; returns the ms to wait
 * before the request may go (0: at once).  `rate` tokens/s, burst rate. */
struct az_bucket {
	double		tokens;
	long long	last_ms;
};
long	az_bucket_take(struct az_bucket *b, unsigned rate, long long now_ms);
long long az_now_ms(void);
/* URL-encode `s` into buf (form/query component). */
int	az_urlencode(const char *s, char *buf, size_t len);

/* --- base64url, JWT, JSON helpers (azure_token.c) -------------------- */

int	az_b64url_encode(const uint8_t *in, size_t len, char *out,
	    size_t out_size);
/* Decodes base64url (no padding, or padding tolerated); -1 if bad. */
int	az_b64url_decode(const char *in, uint8_t *out, size_t out_size,
	    size_t *ret_len);
/* The payload of a JWT as JSON (not verified), or NULL. */
json_t	*az_jwt_payload(const char *jwt);

/* Parsed Entra / IMDS token response. */
struct az_token {
	char		 access[AZ_TOKEN_MAX];
	long long	 expires_on;	/* unix seconds */
	long long	 obtained;	/* unix seconds */
};
/*
 * Parse a token response: access_token plus expires_on (number or string)
 * or expires_in (number or string) relative to `now`.
 */
int	az_token_parse(const char *body, time_t now, struct az_token *ret,
	    struct xerr *e);

/* An Entra error body: {"error","error_description","error_codes"}. */
struct az_aad_err {
	char	error[64];
	long	code;			/* AADSTS number, 0 if none */
	char	desc[384];		/* first line of error_description */
};
int	az_aad_err_parse(const char *body, struct az_aad_err *ret);

/* When to refresh a token obtained at `obtained` expiring at `exp`:
 * exp minus min(AZ_TOKEN_MARGIN_S, 10% of the lifetime). */
long long az_token_refresh_at(long long obtained, long long exp);
enum az_token_age { AZ_FRESH, AZ_STALE, AZ_EXPIRED };
enum az_token_age az_token_age(const struct az_token *t, long long now);

/* --- token cache with single flight per key (azure_token.c) ---------- */

struct az_tcache;
struct az_tcache_stats {
	unsigned long long hits, misses, refreshes, waits, failures,
	    stale_used;
	unsigned entries;
};
typedef int az_fetch_fn(void *arg, struct az_token *ret, struct xerr *e);
int	az_tcache_new(struct az_tcache **ret, struct xerr *e);
void	az_tcache_free(struct az_tcache *c);
/*
 * The token for `key`: a fresh cached one, else one fetched with `fetch`.
 * Only one fetch per key runs at a time; callers of the same key wait for
 * it (or use a still-valid older token); other keys never wait.
 */
int	az_tcache_get(struct az_tcache *c, const char *key, az_fetch_fn *fetch,
	    void *arg, struct az_token *ret, struct xerr *e);
/* Forget the token of `key` (the service rejected it). */
void	az_tcache_drop(struct az_tcache *c, const char *key);
void	az_tcache_stats(struct az_tcache *c, struct az_tcache_stats *ret);

/* --- identity (azure_identity.c) ------------------------------------- */

/* This host's assertion token for c->audience. */
int	az_identity_token(const struct az_conf *c, struct az_http *h,
	    struct az_token *ret, struct xerr *e);
/* Human text naming the identity source, for messages. */
const char *az_identity_name(enum az_identity_kind k);

/* --- exchange (azure_token.c) ---------------------------------------- */

struct az_ctx;	/* the provider's state, azure_kv.c */

struct az_who {
	const char	*customer;
	const char	*tenant;
	const char	*app;		/* application name, may be NULL */
	const char	*app_client_id;
	const char	*role_hint;	/* the grant the customer must make */
};
/* An access token for `scope` in who->tenant as who->app_client_id. */
int	az_access_token(struct az_ctx *x, const struct az_who *who,
	    const char *scope, struct az_token *ret, struct xerr *e);
void	az_access_token_drop(struct az_ctx *x, const struct az_who *who,
	    const char *scope);

/* --- Key Vault (azure_kv.c, azure_kvreq.c) --------------------------- */

struct az_kv_err {
	char	code[64];		/* innermost code */
	char	outer[64];		/* error.code */
	char	message[384];
};
int	az_kv_err_parse(const char *body, struct az_kv_err *ret);
/*
 * A missing grant?  1: an RBAC role, 0: an access-policy permission,
 * -1: not a denial.  `declared` is the customer's vault_auth or NULL.
 */
int	az_kv_denial(const struct key_uri *u, const struct az_kv_err *ke,
	    const char *declared);

struct az_challenge {
	char	authority[512];		/* authorization / authorization_uri */
	char	tenant[64];		/* last path segment of authority */
	char	resource[300];		/* resource, or scope minus /.default */
	char	scope[320];		/* resource + /.default */
};
/* Parse a WWW-Authenticate Bearer challenge; -1 if not a usable one. */
int	az_challenge_parse(const char *hdr, struct az_challenge *ret);

/* The provider's shared state. */
struct az_ctx {
	struct az_conf		 conf;
	struct az_http		*http;
	struct az_tcache	*tokens;	/* (tenant, app, scope) */
	struct az_tcache	*assertions;	/* this host's identity */
	pthread_mutex_t		 mu;		/* challenges, pubkeys */
	struct az_chal_entry	*challenges;
	unsigned		 nchallenges;
	struct az_pubkey	*pubkeys;
	unsigned		 npubkeys;
	atomic_ullong		 n_challenges, n_local_wraps, n_exchanges;
};

/*
 * The azure provider: identity from [azure] (with the environment's
 * defaults), one HTTP client, token caches.  NULL with `e` set when the
 * configuration cannot work (or on OOM).
 */
struct provider *provider_azure_new(const struct config *cfg, struct xerr *e);
/* The probe behind `xtcmkctl customer check`: each step's result goes
 * into `steps` (array of {step, ok, detail}).  Returns 0 if all passed. */
int	provider_azure_probe(struct provider *p, const struct provider_req *req,
	    const struct key_uri *uri, json_t *steps);
/* JSON stats of the azure provider (http, token caches). */
json_t	*provider_azure_stats(struct provider *p);
void	 az_conf_clear(struct az_conf *c);

#endif
