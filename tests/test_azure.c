/*
 * test_azure.c - the azure provider's parsers and arithmetic: base64url,
 * JWT payloads, token / Entra error / Key Vault error bodies, Bearer
 * challenges, backoff, Retry-After, the rate bucket, token expiry and the
 * single-flight token cache, the [azure] configuration.  Bodies come from
 * shared/azure/fixtures/responses.json when the tree has it, and from
 * copies of FACTS.md embedded here so the test runs without it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "azure.h"
#include "azure_kv_int.h"
#include "conf.h"
#include "t.h"

#define T_TENANT "12345678-1234-1234-1234-123456789012"

/* --- embedded bodies (FACTS.md sections 2 and 4) -------------------- */

static const char body_rbac[] = "{\"error\":{\"code\":\"Forbidden\","
    "\"message\":\"Caller is not authorized to perform action on "
    "resource.\\r\\nIf role assignments, deny assignments or role "
    "definitions were changed recently, please observe propagation "
    "time.\\r\\nCaller: appid=11111111-1111-1111-1111-111111111111;"
    "oid=22222222-2222-2222-2222-222222222222;iss=https://sts.windows.net/"
    T_TENANT "/\\r\\nAction: 'Microsoft.KeyVault/vaults/keys/unwrap/"
    "action'\\r\\nAssignment: (not found)\\r\\n\",\"innererror\":{\"code\":"
    "\"ForbiddenByRbac\"}}}";
/* The newer denial form (FACTS 2): a vault in access-policy mode says
 * AccessDenied inside, a Managed HSM (local RBAC) says it outside. */
static const char body_access_denied[] = "{\"error\":{\"code\":"
    "\"Forbidden\",\"message\":\"The user, group or application "
    "'appid=1;oid=2;iss=https://sts.windows.net/" T_TENANT "/' does not "
    "have keys unwrapKey permission on key vault 'contoso;location=eastus'."
    "\",\"innererror\":{\"code\":\"AccessDenied\"}}}";
static const char body_mhsm_denied[] = "{\"error\":{\"code\":"
    "\"AccessDenied\",\"message\":\"Not authorized to access "
    "Microsoft.KeyVault/managedHsm/keys/unwrap/action on '/keys/cmk'\"}}";
static const char body_disabled[] = "{\"error\":{\"code\":\"Forbidden\","
    "\"message\":\"Operation unwrapKey is not allowed on a disabled key.\","
    "\"innererror\":{\"code\":\"KeyDisabled\"}}}";
static const char body_not_found[] = "{\"error\":{\"code\":\"KeyNotFound\","
    "\"message\":\"A key with (name/id) CRUDKeyName-deletenonexistingkey- "
    "was not found in this key vault.\"}}";
static const char body_throttled[] = "{\"error\":{\"code\":\"Throttled\","
    "\"message\":\"Request was not processed because too many requests "
    "were received. Reason: VaultRequestTypeLimitReached\"}}";
static const char body_opforbidden[] = "{\"error\":{\"code\":\"Forbidden\","
    "\"message\":\"Operation decrypt is not permitted on this key.\","
    "\"innererror\":{\"code\":\"KeyOperationForbidden\"}}}";
static const char body_700016[] = "{\"error\":\"unauthorized_client\","
    "\"error_description\":\"AADSTS700016: Application with identifier "
    "'11111111-1111-1111-1111-111111111111' was not found in the directory "
    "'" T_TENANT "'. This can happen if the application has not been "
    "installed by the administrator of the tenant.\\r\\nTrace ID: 4444\\r\\n"
    "Correlation ID: 5555\",\"error_codes\":[700016],\"timestamp\":"
    "\"2026-01-01 00:00:00Z\",\"trace_id\":\"4444\",\"correlation_id\":"
    "\"5555\"}";
/* A 70021 body as community sources show it: no error_codes. */
static const char body_70021_text[] = "{\"error\":\"invalid_request\","
    "\"error_description\":\"AADSTS70021: No matching federated identity "
    "record found for presented assertion.\\r\\nTrace ID: 1\"}";
static const char body_imds[] = "{\"access_token\":\"eyJ0eXAi.x.y\","
    "\"refresh_token\":\"\",\"expires_in\":\"3599\",\"expires_on\":"
    "\"1506484173\",\"not_before\":\"1506480273\",\"resource\":"
    "\"api://AzureADTokenExchange\",\"token_type\":\"Bearer\"}";
static const char body_entra[] = "{\"token_type\":\"Bearer\",\"expires_in\":"
    "3599,\"ext_expires_in\":3599,\"access_token\":\"access_token\"}";
static const char chal_vault[] = "Bearer authorization=\"https://login."
    "windows.net/" T_TENANT "\", resource=\"https://vault.azure.net\"";
static const char chal_mhsm[] = "Bearer authorization=\"https://login."
    "microsoftonline.com/" T_TENANT "\", resource=\"https://managedhsm."
    "azure.net\"";

static void
test_b64url(void)
{
	static const struct { const char *plain, *enc; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	uint8_t bin[64], back[64];
	char enc[128];
	size_t i, n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ASSERT_INT(az_b64url_encode((const uint8_t *)v[i].plain,
		    strlen(v[i].plain), enc, sizeof(enc)), ==,
		    strlen(v[i].enc));
		ASSERT_STR(enc, v[i].enc);
		ASSERT_EQ(az_b64url_decode(v[i].enc, bin, sizeof(bin), &n), 0);
		ASSERT_EQ(n, strlen(v[i].plain));
		ASSERT_TRUE(memcmp(bin, v[i].plain, n) == 0);
	}
	/* The URL-safe alphabet: 0xfb 0xff -> "-_8". */
	bin[0] = 0xfb;
	bin[1] = 0xff;
	az_b64url_encode(bin, 2, enc, sizeof(enc));
	ASSERT_STR(enc, "-_8");
	/* Standard base64 and broken input are refused. */
	ASSERT_EQ(az_b64url_decode("+/8", bin, sizeof(bin), &n), -1);
	ASSERT_EQ(az_b64url_decode("Zm9vY", bin, sizeof(bin), &n), -1);
	ASSERT_EQ(az_b64url_decode("Zh", bin, sizeof(bin), &n), -1);
	ASSERT_EQ(az_b64url_decode("Zm9v", bin, 2, &n), -1);
	/* Padding is tolerated. */
	ASSERT_EQ(az_b64url_decode("Zm8=", bin, sizeof(bin), &n), 0);
	ASSERT_EQ(n, 2);
	/* The spec example's unwrap value: 32 bytes that re-encode alike. */
	ASSERT_EQ(az_b64url_decode("ovQIlbB0DgWhZA7sgkPxbg9H-Ly-VlNGPSgGrrZvlIo",
	    bin, sizeof(bin), &n), 0);
	ASSERT_EQ(n, 32);
	az_b64url_encode(bin, n, enc, sizeof(enc));
	ASSERT_STR(enc, "ovQIlbB0DgWhZA7sgkPxbg9H-Ly-VlNGPSgGrrZvlIo");
	/* The 7.6 example's bad value (FACTS 1.3) is refused. */
	ASSERT_EQ(az_b64url_decode("a+b/c.d", bin, sizeof(bin), &n), -1);
	/* Random round trips. */
	for (i = 0; i < 40; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			bin[j] = (uint8_t)(j * 37 + i);
		az_b64url_encode(bin, i, enc, sizeof(enc));
		ASSERT_EQ(az_b64url_decode(enc, back, sizeof(back), &n), 0);
		ASSERT_TRUE(n == i && memcmp(bin, back, i) == 0);
	}
}

static void
test_jwt(void)
{
	const char *payload = "{\"iss\":\"https://login.microsoftonline.com/"
	    T_TENANT "/v2.0\",\"sub\":\"44444444-dddd\",\"exp\":2000000000}";
	char p64[512], jwt[700];
	json_t *j;

	az_b64url_encode((const uint8_t *)payload, strlen(payload), p64,
	    sizeof(p64));
	snprintf(jwt, sizeof(jwt), "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p64);
	ASSERT_TRUE((j = az_jwt_payload(jwt)) != NULL);
	ASSERT_STR(json_string_value(json_object_get(j, "sub")),
	    "44444444-dddd");
	ASSERT_CONTAINS(json_string_value(json_object_get(j, "iss")), "/v2.0");
	json_decref(j);
	ASSERT_TRUE(az_jwt_payload("not-a-jwt") == NULL);
	ASSERT_TRUE(az_jwt_payload("a.!!!.c") == NULL);
	ASSERT_TRUE(az_jwt_payload("a..c") == NULL);
}

static void
test_token_parse(void)
{
	struct az_token t;
	struct xerr e;

	/* IMDS: numbers as strings, expires_on absolute. */
	ASSERT_EQ(az_token_parse(body_imds, 1506480273, &t, &e), 0);
	ASSERT_STR(t.access, "eyJ0eXAi.x.y");
	ASSERT_EQ(t.expires_on, 1506484173);
	/* Entra: numbers, expires_in relative. */
	ASSERT_EQ(az_token_parse(body_entra, 1000, &t, &e), 0);
	ASSERT_EQ(t.expires_on, 1000 + 3599);
	ASSERT_EQ(t.obtained, 1000);
	/* Already expired, no token, wrong type, not JSON. */
	ASSERT_EQ(az_token_parse(body_imds, 1506484174, &t, &e),
	    -XTCMK_E_PROVIDER);
	ASSERT_CONTAINS(e.msg, "expired");
	ASSERT_EQ(az_token_parse("{\"expires_in\":5}", 0, &t, &e),
	    -XTCMK_E_PROVIDER);
	ASSERT_CONTAINS(e.msg, "access_token");
	ASSERT_EQ(az_token_parse("{\"access_token\":\"a\",\"token_type\":"
	    "\"pop\",\"expires_in\":5}", 0, &t, &e), -XTCMK_E_PROVIDER);
	ASSERT_EQ(az_token_parse("{\"access_token\":\"a\",\"expires_in\":"
	    "\"x5\"}", 0, &t, &e), -XTCMK_E_PROVIDER);
	ASSERT_EQ(az_token_parse("<html>", 0, &t, &e), -XTCMK_E_PROVIDER);
}

static void
test_aad_err(void)
{
	struct az_aad_err ae;

	ASSERT_EQ(az_aad_err_parse(body_700016, &ae), 0);
	ASSERT_EQ(ae.code, 700016);
	ASSERT_STR(ae.error, "unauthorized_client");
	ASSERT_TRUE(strchr(ae.desc, '\r') == NULL);
	ASSERT_CONTAINS(ae.desc, "was not found in the directory");
	ASSERT_EQ(az_aad_err_parse(body_70021_text, &ae), 0);
	ASSERT_EQ(ae.code, 70021);
	ASSERT_EQ(az_aad_err_parse("{\"error\":{\"code\":\"x\"}}", &ae), -1);
	ASSERT_EQ(az_aad_err_parse("nope", &ae), -1);
}

static void
test_kv_err(void)
{
	struct az_kv_err k;

	ASSERT_EQ(az_kv_err_parse(body_rbac, &k), 0);
	ASSERT_STR(k.code, "ForbiddenByRbac");
	ASSERT_STR(k.outer, "Forbidden");
	ASSERT_TRUE(strchr(k.message, '\r') == NULL);
	ASSERT_EQ(az_kv_err_parse(body_disabled, &k), 0);
	ASSERT_STR(k.code, "KeyDisabled");
	ASSERT_EQ(az_kv_err_parse(body_not_found, &k), 0);
	ASSERT_STR(k.code, "KeyNotFound");
	ASSERT_EQ(az_kv_err_parse(body_throttled, &k), 0);
	ASSERT_STR(k.code, "Throttled");
	ASSERT_EQ(az_kv_err_parse(body_opforbidden, &k), 0);
	ASSERT_STR(k.code, "KeyOperationForbidden");
	ASSERT_EQ(az_kv_err_parse("", &k), -1);
	ASSERT_EQ(az_kv_err_parse(NULL, &k), -1);
	ASSERT_EQ(az_kv_err_parse("{\"error\":\"x\"}", &k), -1);
}

/* Every denial form reads as a missing grant (REVOKED, naming it). */
static void
test_kv_denial(void)
{
	static const struct {
		const char *uri, *body, *auth, *want;
	} c[] = {
		{ "https://contoso.vault.azure.net/keys/cmk", body_rbac, NULL,
		    "grant role Key Vault Crypto Service Encryption User on "
		    "key https://contoso.vault.azure.net/keys/cmk" },
		{ "https://contoso.vault.azure.net/keys/cmk",
		    body_access_denied, NULL, "add access-policy key "
		    "permissions get, wrapKey, unwrapKey" },
		{ "https://contoso.vault.azure.net/keys/cmk",
		    body_access_denied, "access-policy", "(AccessDenied)" },
		{ "https://north.managedhsm.azure.net/keys/cmk",
		    body_mhsm_denied, NULL, "grant role Managed HSM Crypto "
		    "Service Encryption User on key "
		    "https://north.managedhsm.azure.net/keys/cmk" },
		{ "https://north.managedhsm.azure.net/keys/cmk",
		    body_mhsm_denied, "rbac", "(AccessDenied)" },
	};
	struct provider_req pr = { "contoso", T_TENANT, "1111", "app-1",
	    NULL, NULL };
	struct az_http_resp r;
	struct key_uri u;
	struct az_kv_err ke;
	struct xerr e;
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		memset(&r, 0, sizeof(r));
		r.status = 403;
		r.body = (char *)c[i].body;
		pr.vault_auth = c[i].auth;
		ASSERT_EQ(key_uri_parse(c[i].uri, &u, &e), 0);
		xerr_clear(&e);
		ASSERT_EQ(az_kv_error(NULL, &pr, &u, OP_UNWRAP, &r, &e),
		    -XTCMK_E_REVOKED);
		ASSERT_EQ(e.code, XTCMK_E_REVOKED);
		ASSERT_CONTAINS(e.msg, c[i].want);
	}
	ASSERT_EQ(az_kv_err_parse(body_mhsm_denied, &ke), 0);
	ASSERT_STR(ke.code, "AccessDenied");
	ASSERT_EQ(key_uri_parse("https://contoso.vault.azure.net/keys/cmk", &u,
	    &e), 0);
	ASSERT_EQ(az_kv_denial(&u, &ke, NULL), 1);
	ASSERT_EQ(az_kv_err_parse(body_disabled, &ke), 0);
	ASSERT_EQ(az_kv_denial(&u, &ke, NULL), -1);
}

static void
test_challenge(void)
{
	struct az_challenge c;

	ASSERT_EQ(az_challenge_parse(chal_vault, &c), 0);
	ASSERT_STR(c.tenant, T_TENANT);
	ASSERT_STR(c.resource, "https://vault.azure.net");
	ASSERT_STR(c.scope, "https://vault.azure.net/.default");
	ASSERT_STR(c.authority, "https://login.windows.net/" T_TENANT);
	ASSERT_EQ(az_challenge_parse(chal_mhsm, &c), 0);
	ASSERT_STR(c.scope, "https://managedhsm.azure.net/.default");
	ASSERT_STR(c.tenant, T_TENANT);
	/* authorization_uri and scope= forms; trailing slash. */
	ASSERT_EQ(az_challenge_parse("Bearer authorization_uri=\"https://"
	    "login.microsoftonline.com/" T_TENANT "/\", scope=\"https://vault."
	    "azure.net/.default\"", &c), 0);
	ASSERT_STR(c.tenant, T_TENANT);
	ASSERT_STR(c.resource, "https://vault.azure.net");
	ASSERT_STR(c.scope, "https://vault.azure.net/.default");
	/* Unquoted values. */
	ASSERT_EQ(az_challenge_parse("Bearer authorization=https://login."
	    "windows.net/abc,resource=https://vault.azure.net", &c), 0);
	ASSERT_STR(c.tenant, "abc");
	/* Not usable. */
	ASSERT_EQ(az_challenge_parse("Basic realm=\"x\"", &c), -1);
	ASSERT_EQ(az_challenge_parse("Bearer resource=\"https://vault.azure."
	    "net\"", &c), -1);
	ASSERT_EQ(az_challenge_parse("Bearer authorization=\"http://evil/t\", "
	    "resource=\"https://vault.azure.net\"", &c), -1);
	ASSERT_EQ(az_challenge_parse("Bearer authorization=\"https://login."
	    "windows.net/t\"", &c), -1);
	ASSERT_EQ(az_challenge_parse("", &c), -1);
	/* "xauthorization" is not "authorization". */
	ASSERT_EQ(az_challenge_parse("Bearer xauthorization=\"https://a/t\", "
	    "resource=\"https://vault.azure.net\"", &c), -1);
}

static void
test_backoff(void)
{
	ASSERT_EQ(az_backoff_ms(0, 200, 4000, 0.5), 100);
	ASSERT_EQ(az_backoff_ms(1, 200, 4000, 0.5), 200);
	ASSERT_EQ(az_backoff_ms(3, 200, 4000, 0.5), 800);
	ASSERT_EQ(az_backoff_ms(10, 200, 4000, 0.5), 2000);	/* capped */
	ASSERT_EQ(az_backoff_ms(60, 200, 4000, 0.5), 2000);	/* no overflow */
	ASSERT_EQ(az_backoff_ms(2, 200, 4000, 0.0), 0);		/* full jitter */
	ASSERT_INT(az_backoff_ms(2, 200, 4000, 1.0), <, 800);
	ASSERT_INT(az_backoff_ms(2, 200, 4000, 0.99), >=, 790);
}

static void
test_retry_after(void)
{
	time_t now = 1700000000;
	char date[64];
	struct tm tm;
	time_t t = now + 10;

	ASSERT_EQ(az_retry_after_parse("5", now), 5);
	ASSERT_EQ(az_retry_after_parse(" 0", now), 0);
	ASSERT_EQ(az_retry_after_parse("120", now), AZ_RETRY_AFTER_MAX_S);
	ASSERT_EQ(az_retry_after_parse("abc", now), -1);
	ASSERT_EQ(az_retry_after_parse("5s", now), -1);
	ASSERT_EQ(az_retry_after_parse(NULL, now), -1);
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	ASSERT_EQ(az_retry_after_parse(date, now), 10);
	ASSERT_EQ(az_retry_after_parse(date, now + 100), 0);
}

static void
test_bucket(void)
{
	struct az_bucket b = { 0, 0 };
	long w;

	/* Burst of `rate`, then one every 1/rate s. */
	ASSERT_EQ(az_bucket_take(&b, 2, 1000), 0);
	ASSERT_EQ(az_bucket_take(&b, 2, 1000), 0);
	w = az_bucket_take(&b, 2, 1000);
	ASSERT_INT(w, >=, 490);
	ASSERT_INT(w, <=, 510);
	/* A second waiter queues behind the first. */
	w = az_bucket_take(&b, 2, 1000);
	ASSERT_INT(w, >=, 990);
	/* Refill after a quiet second and a half... */
	b.tokens = 0;
	b.last_ms = 1000;
	ASSERT_EQ(az_bucket_take(&b, 2, 2500), 0);
	/* ...capped at the burst. */
	b.tokens = 0;
	b.last_ms = 1000;
	ASSERT_EQ(az_bucket_take(&b, 2, 100000), 0);
	ASSERT_EQ(az_bucket_take(&b, 2, 100000), 0);
	ASSERT_INT(az_bucket_take(&b, 2, 100000), >, 0);
	/* 0 means unlimited. */
	ASSERT_EQ(az_bucket_take(&b, 0, 1), 0);
}

static void
test_expiry(void)
{
	struct az_token t;

	/* One hour: refresh 5 minutes before. */
	ASSERT_EQ(az_token_refresh_at(0, 3600), 3300);
	/* A day: still 5 minutes. */
	ASSERT_EQ(az_token_refresh_at(0, 86400), 86100);
	/* A minute: 10% of it. */
	ASSERT_EQ(az_token_refresh_at(0, 60), 54);
	memset(&t, 0, sizeof(t));
	ASSERT_EQ(az_token_age(&t, 0), AZ_EXPIRED);	/* none */
	t.obtained = 1000;
	t.expires_on = 1000 + 3599;
	ASSERT_EQ(az_token_age(&t, 1000), AZ_FRESH);
	ASSERT_EQ(az_token_age(&t, 1000 + 3298), AZ_FRESH);
	ASSERT_EQ(az_token_age(&t, 1000 + 3300), AZ_STALE);
	ASSERT_EQ(az_token_age(&t, 1000 + 3599 - AZ_TOKEN_SKEW_S), AZ_EXPIRED);
}

/* --- the cache ------------------------------------------------------ */

struct fetcher {
	atomic_int	calls;
	int		sleep_ms;
	int		fail;
	long		life;
};

static int
fetch(void *arg, struct az_token *ret, struct xerr *e)
{
	struct fetcher *f = arg;
	int n = atomic_fetch_add(&f->calls, 1);

	if (f->sleep_ms)
		usleep(f->sleep_ms * 1000);
	if (f->fail)
		return xerr_set(e, XTCMK_E_PROVIDER, "fetch failed %d", n);
	snprintf(ret->access, sizeof(ret->access), "tok-%d", n);
	ret->obtained = time(NULL);
	ret->expires_on = ret->obtained + f->life;
	return 0;
}

struct getter {
	struct az_tcache *c;
	const char	*key;
	struct fetcher	*f;
	int		 rc;
	long long	 ms;
	struct az_token	 tok;
};

static void *
getter_main(void *arg)
{
	struct getter *g = arg;
	long long t0 = az_now_ms();
	struct xerr e;

	g->rc = az_tcache_get(g->c, g->key, fetch, g->f, &g->tok, &e);
	g->ms = az_now_ms() - t0;
	return NULL;
}

static void
test_tcache(void)
{
	struct fetcher f = { 0, 0, 0, 3600 }, slow = { 0, 400, 0, 3600 },
	    fast = { 0, 0, 0, 3600 };
	struct getter g[8], gb;
	pthread_t th[8], tb;
	struct az_tcache *c;
	struct az_token t;
	struct az_tcache_stats st;
	struct xerr e;
	int i;

	ASSERT_EQ(az_tcache_new(&c, &e), 0);
	ASSERT_EQ(az_tcache_get(c, "k", fetch, &f, &t, &e), 0);
	ASSERT_STR(t.access, "tok-0");
	ASSERT_EQ(az_tcache_get(c, "k", fetch, &f, &t, &e), 0);
	ASSERT_STR(t.access, "tok-0");
	ASSERT_EQ(atomic_load(&f.calls), 1);
	az_tcache_drop(c, "k");
	ASSERT_EQ(az_tcache_get(c, "k", fetch, &f, &t, &e), 0);
	ASSERT_STR(t.access, "tok-1");
	/* A short-lived token is stale at once: refreshed on next use. */
	f.life = 5;
	az_tcache_drop(c, "k");
	ASSERT_EQ(az_tcache_get(c, "k", fetch, &f, &t, &e), 0);
	f.life = 3600;
	ASSERT_EQ(az_tcache_get(c, "k", fetch, &f, &t, &e), 0);
	ASSERT_EQ(atomic_load(&f.calls), 4);
	/* A failed refresh with a still valid token keeps using it. */
	f.fail = 1;
	az_tcache_drop(c, "k");
	ASSERT_EQ(az_tcache_get(c, "k", fetch, &f, &t, &e), -XTCMK_E_PROVIDER);
	ASSERT_CONTAINS(e.msg, "fetch failed");
	f.fail = 0;

	/* Eight concurrent cold callers of one key: one fetch. */
	for (i = 0; i < 8; i++) {
		g[i].c = c;
		g[i].key = "same";
		g[i].f = &slow;
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(atomic_load(&slow.calls), 1);
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(g[i].rc, 0);
		ASSERT_STR(g[i].tok.access, "tok-0");
	}
	/* A slow refresh of one key never holds up another key. */
	az_tcache_drop(c, "same");
	g[0].key = "same";
	pthread_create(&th[0], NULL, getter_main, &g[0]);
	usleep(50 * 1000);
	gb.c = c;
	gb.key = "other";
	gb.f = &fast;
	pthread_create(&tb, NULL, getter_main, &gb);
	pthread_join(tb, NULL);
	pthread_join(th[0], NULL);
	ASSERT_EQ(gb.rc, 0);
	ASSERT_INT(gb.ms, <, 200);
	ASSERT_INT(g[0].ms, >=, 300);
	/* Waiters of a failing refresh share its verdict: one fetch. */
	slow.fail = 1;
	atomic_store(&slow.calls, 0);
	az_tcache_drop(c, "same");
	for (i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(g[i].rc, -XTCMK_E_PROVIDER);
	ASSERT_INT(atomic_load(&slow.calls), <=, 2);
	az_tcache_stats(c, &st);
	ASSERT_EQ(st.entries, 3);
	ASSERT_INT(st.waits, >=, 1);
	ASSERT_INT(st.hits, >=, 1);
	az_tcache_free(c);
	az_tcache_free(NULL);
}

/* --- fixtures from shared/ ----------------------------------------- */

static void
test_fixture_file(void)
{
	const char *src = getenv("XTCMK_SRCDIR");
	char path[4096];
	json_t *all, *f;
	size_t i;
	int seen = 0;

	snprintf(path, sizeof(path), "%s/../shared/azure/fixtures/"
	    "responses.json", src ? src : ".");
	if (access(path, R_OK) != 0) {
		printf("note: %s not found; embedded bodies only\n", path);
		return;
	}
	ASSERT_TRUE((all = json_load_file(path, 0, NULL)) != NULL);
	json_array_foreach(all, i, f) {
		const char *name = json_string_value(json_object_get(f,
		    "name"));
		json_t *body = json_object_get(f, "body"), *hdrs;
		long status = json_integer_value(json_object_get(f, "status"));
		char *text = json_dumps(body, JSON_ENCODE_ANY);
		const char *k, *wa = NULL;
		json_t *v;

		hdrs = json_object_get(f, "headers");
		json_object_foreach(hdrs, k, v)
			if (strcasecmp(k, "WWW-Authenticate") == 0)
				wa = json_string_value(v);
		if (wa != NULL) {
			struct az_challenge c;

			ASSERT_EQ(az_challenge_parse(wa, &c), 0);
			ASSERT_STR(c.tenant, T_TENANT);
			ASSERT_CONTAINS(c.scope, "azure.net/.default");
			seen++;
		}
		if (strncmp(name, "vault-", 6) == 0 && status >= 400 &&
		    json_is_object(json_object_get(body, "error"))) {
			struct az_kv_err ke;
			json_t *err = json_object_get(body, "error");
			json_t *inner = json_object_get(err, "innererror");
			const char *want = json_string_value(json_object_get(
			    inner ? inner : err, "code"));

			ASSERT_EQ(az_kv_err_parse(text, &ke), 0);
			ASSERT_STR(ke.code, want);
			seen++;
		}
		if (strncmp(name, "entra-400", 9) == 0) {
			struct az_aad_err ae;

			ASSERT_EQ(az_aad_err_parse(text, &ae), 0);
			ASSERT_EQ(ae.code, json_integer_value(json_array_get(
			    json_object_get(body, "error_codes"), 0)));
			ASSERT_TRUE(ae.code == 700016 || ae.code == 70021);
			seen++;
		}
		if (status == 200 && json_is_string(json_object_get(body,
		    "access_token"))) {
			struct az_token t;
			struct xerr e;

			/* IMDS's expires_on is absolute (2017). */
			ASSERT_EQ(az_token_parse(text, 1506480273, &t, &e), 0);
			ASSERT_INT(t.expires_on, >, 1506480273);
			seen++;
		}
		if (strcmp(name, "vault-unwrapkey-200") == 0) {
			uint8_t out[64];
			size_t n;

			ASSERT_EQ(az_b64url_decode(json_string_value(
			    json_object_get(body, "value")), out, sizeof(out),
			    &n), 0);
			seen++;
		}
		free(text);
	}
	ASSERT_INT(seen, >=, 14);
	json_decref(all);
}

/* --- configuration and provider ------------------------------------- */

static int
load_conf(const char *dir, const char *text, struct config **ret,
    struct xerr *e)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/xtcmk.conf", dir);
	f = fopen(path, "w");
	fprintf(f, "[agent]\nstate_dir = %s\n%s", dir, text);
	fclose(f);
	return config_load(path, ret, e);
}

static void
test_config(void)
{
	char dir[] = "/tmp/xtcmk-azure-XXXXXX", ca[4200], text[8192];
	struct config *c = NULL;
	struct provider *p;
	struct xerr e;
	json_t *st;
	FILE *f;

	ASSERT_TRUE(mkdtemp(dir) != NULL);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	f = fopen(ca, "w");
	fputs("not really a CA\n", f);
	fclose(f);
	snprintf(text, sizeof(text), "[azure]\nidentity = imds\n"
	    "identity_client_id = 33333333-cccc-4ccc-8ccc-333333333333\n"
	    "imds_endpoint = http://127.0.0.1:9/metadata/identity/oauth2/"
	    "token\nca_file = %s\nconnect_to = 127.0.0.1:9\n"
	    "timeout_ms = 300\nretries = 1\nrate_limit = 50\n"
	    "local_wrap = yes\n", ca);
	ASSERT_EQ(load_conf(dir, text, &c, &e), 0);
	if (c != NULL) {
		ASSERT_STR(c->azure_identity, "imds");
		ASSERT_EQ(c->azure_timeout_ms, 300);
		ASSERT_EQ(c->azure_retries, 1);
		ASSERT_EQ(c->azure_rate_limit, 50);
		ASSERT_EQ(c->azure_local_wrap, 1);
		p = provider_azure_new(c, &e);
		ASSERT_TRUE(p != NULL);
		if (p != NULL) {
			ASSERT_STR(p->name, "azure");
			ASSERT_EQ(p->kind, PROVIDER_AZURE);
			st = provider_azure_stats(p);
			ASSERT_TRUE(json_object_get(st, "token_cache") != NULL);
			ASSERT_TRUE(json_object_get(st, "http") != NULL);
			json_decref(st);
		}
		provider_free(p);
		config_free(c);
	}
	/* Defaults. */
	ASSERT_EQ(load_conf(dir, "", &c, &e), 0);
	if (c != NULL) {
		ASSERT_EQ(c->azure_timeout_ms, 5000);
		ASSERT_EQ(c->azure_retries, 4);
		ASSERT_EQ(c->azure_rate_limit, 200);
		ASSERT_EQ(c->azure_local_wrap, 0);
		config_free(c);
	}
	/* Refusals, each naming the key. */
	ASSERT_EQ(load_conf(dir, "[azure]\nidentity = msi\n", &c, &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "identity");
	ASSERT_EQ(load_conf(dir, "[azure]\nidentity_client_id = "
	    "33333333-cccc-4ccc-8ccc-333333333333\nidentity_object_id = "
	    "44444444-dddd-4ddd-8ddd-444444444444\n", &c, &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "more than one");
	ASSERT_EQ(load_conf(dir, "[azure]\nimds_endpoint = ftp://x/\n", &c, &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "imds_endpoint");
	ASSERT_EQ(load_conf(dir, "[azure]\nca_file = /nonexistent/ca.pem\n",
	    &c, &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "ca_file");
	ASSERT_EQ(load_conf(dir, "[azure]\nlocal_wrap = maybe\n", &c, &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "yes or no");
	ASSERT_EQ(load_conf(dir, "[azure]\ntimeout_ms = 5\n", &c, &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(load_conf(dir, "[azure]\nidentity_client_id = nope\n", &c,
	    &e), -XTCMK_E_INVAL);
	ASSERT_EQ(load_conf(dir, "[azure]\ntoken_audience = api://other\n", &c,
	    &e), -XTCMK_E_INVAL);
	unlink(ca);
	snprintf(text, sizeof(text), "%s/xtcmk.conf", dir);
	unlink(text);
	rmdir(dir);
}

/* Nothing listens on port 9: the client fails fast with a sentence. */
static void
test_http_unreachable(void)
{
	struct az_conf c;
	struct az_http *h;
	struct az_http_req req;
	struct az_http_resp r;
	struct az_http_stats st;
	struct xerr e;
	long long t0;

	memset(&c, 0, sizeof(c));
	c.timeout_ms = 500;
	c.retries = 2;
	c.rate_limit = 0;
	ASSERT_EQ(az_http_new(&c, &h, &e), 0);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = "http://127.0.0.1:9/x";
	t0 = az_now_ms();
	ASSERT_EQ(az_http_do(h, &req, &r, &e), -XTCMK_E_PROVIDER);
	ASSERT_CONTAINS(e.msg, "127.0.0.1:9");
	ASSERT_INT(az_now_ms() - t0, <, 5000);
	az_http_stats(h, &st);
	ASSERT_EQ(st.attempts, 3);	/* 1 + 2 retries */
	ASSERT_EQ(st.retries, 2);
	ASSERT_EQ(st.failures, 1);
	az_http_free(h);
	az_http_free(NULL);
}

int
main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_b64url();
	test_jwt();
	test_token_parse();
	test_aad_err();
	test_kv_err();
	test_kv_denial();
	test_challenge();
	test_backoff();
	test_retry_after();
	test_bucket();
	test_expiry();
	test_tcache();
	test_fixture_file();
	test_config();
	test_http_unreachable();
	curl_global_cleanup();
	return t_done();
}
