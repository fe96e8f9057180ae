/*
 * keys.c - the data plane: new data keys, unwrap, rewrap, key status,
 * revocation checks, per-version usage, stats and the life cycle.  The
 * `xtcmkctl key` commands and the customer check are in keys_admin.c.
 *
 * Per customer the agent keeps a key state: what the key-versioning
 * decision says (mode, pinned version, intervals), the version in force,
 * and whether the key is revoked.  Checker threads ask the provider for
 * the key's state every `revocation_check` seconds per active customer,
 * whatever the traffic: a disabled or deleted key marks the customer
 * revoked, wipes its cached DEKs and refuses every wrap and unwrap until a
 * later check finds the key enabled again.  A check that cannot reach the
 * key service does not revoke at once, but a customer whose key state has
 * not been confirmed for two intervals is refused too (fail closed).
 *
 * DEKs: generated into a per-thread mlock'ed scratch page, cached in the
 * locked keycache, copied into the reply buffer (which the server wipes
 * after sending) and wiped everywhere else.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "azure.h"
#include "blob.h"
#include "backend.h"
#include "keycache.h"
#include "keys.h"
#include "keys_int.h"
#include "keystore.h"
#include "log.h"
#include "metrics.h"
#include "provider.h"
#include "registry.h"
#include "service.h"
#include "strhash.h"
#include "validate.h"

#define KS_VERSIONS_MAX		256	/* usage rows kept per customer */
#define CHECK_TICK_MS		200
#define USAGE_FLUSH_S		5
#define SCRATCH_SIZE		4096
#define KEYS_CACHE_ENTRIES	65536

static long long
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* --- locked scratch for DEKs ---------------------------------------- */

static void
scratch_free(void *p)
{
	OPENSSL_cleanse(p, SCRATCH_SIZE);
	munlock(p, SCRATCH_SIZE);
	munmap(p, SCRATCH_SIZE);
}

static uint8_t *
scratch(struct keys *k)
{
	void *p = pthread_getspecific(k->scratch_key);

	if (p != NULL)
		return p;
	p = mmap(NULL, SCRATCH_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)mlock(p, SCRATCH_SIZE);
	(void)madvise(p, SCRATCH_SIZE, MADV_DONTDUMP);
	(void)madvise(p, SCRATCH_SIZE, MADV_WIPEONFORK);
	pthread_setspecific(k->scratch_key, p);
	return p;
}

/* --- key states ----------------------------------------------------- */

static struct kstate *
find_locked(struct keys *k, const char *customer)
{
	struct kstate *st;

	for (st = k->map[strhash(customer) % KS_BUCKETS]; st != NULL;
	    st = st->next)
		if (strcmp(st->customer, customer) == 0)
			return st;
	return NULL;
}

static unsigned
ver_u(json_t *ver, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(ver, key));

	return v > 0 ? (unsigned)v : 0;
}

/*
 * The grant the role decision asks of the customer, as an instruction to
 * quote when the vault refuses (403): "grant role R on key K to
 * application A (client id C) in tenant T" or the access-policy form.
 */
static void
role_hint(struct kstate *st, json_t *d)
{
	json_t *role = json_object_get(d, "role"), *perms, *v;
	const char *mech = json_string_value(json_object_get(role,
	    "mechanism"));
	const char *r = json_string_value(json_object_get(role, "role"));
	const char *scope = json_string_value(json_object_get(role, "scope"));
	char key[450], plist[128] = "";
	size_t i, n;

	if (mech == NULL)
		return;
	snprintf(st->vault_auth, sizeof(st->vault_auth), "%s", mech);
	snprintf(key, sizeof(key), "%s/keys/%s", st->uri.base, st->uri.name);
	if (strcmp(mech, "rbac") == 0) {
		snprintf(st->role_hint, sizeof(st->role_hint), "grant role "
		    "%.60s on %s %.200s to application %.64s (client id "
		    "%.40s) in tenant %.40s", r ? r : "Key Vault Crypto "
		    "Service Encryption User", scope && strcmp(scope,
		    "vault") == 0 ? "vault" : "key", scope && strcmp(scope,
		    "vault") == 0 ? st->uri.base : key, st->app,
		    st->app_client_id[0] ? st->app_client_id : "not set",
		    st->tenant);
		return;
	}
	perms = json_object_get(role, "permissions");
	json_array_foreach(perms, i, v) {
		n = strlen(plist);
		snprintf(plist + n, sizeof(plist) - n, "%s%s", n ? ", " : "",
		    json_string_value(v) ? json_string_value(v) : "?");
	}
	snprintf(st->role_hint, sizeof(st->role_hint), "add access-policy key "
	    "permissions %s for application %.64s (client id %.40s) on vault "
	    "%.200s", plist[0] ? plist : "get, wrapKey, unwrapKey", st->app,
	    st->app_client_id[0] ? st->app_client_id : "not set",
	    st->uri.base);
}

/*
 * Make sure `customer` has a key state built from the current decisions,
 * and copy it to *ret (a snapshot: no lock held afterwards).
 */
int
keys_state_get(struct keys *k, const char *customer, struct kstate *ret,
    struct xerr *e)
{
	unsigned long long gen = service_generation(k->svc);
	struct kstate *st, fresh;
	json_t *d, *ver;
	const char *s;
	int rc;

	pthread_mutex_lock(&k->mu);
	st = find_locked(k, customer);
	if (st != NULL && st->gen == gen) {
		*ret = *st;
		pthread_mutex_unlock(&k->mu);
		return 0;
	}
	pthread_mutex_unlock(&k->mu);

	if ((rc = service_decide_json(k->svc, customer, &d, e)) < 0)
		return rc;
	memset(&fresh, 0, sizeof(fresh));
	ver = json_object_get(d, "versioning");
	rc = key_uri_parse(json_string_value(json_object_get(d, "key_uri")),
	    &fresh.uri, e);
	if (rc < 0) {
		json_decref(d);
		return rc;
	}
	snprintf(fresh.customer, sizeof(fresh.customer), "%s", customer);
	fresh.gen = gen;
	s = json_string_value(json_object_get(ver, "mode"));
	fresh.pinned = s != NULL && strcmp(s, "pinned") == 0;
	if ((s = json_string_value(json_object_get(ver, "version"))) != NULL)
		snprintf(fresh.pin, sizeof(fresh.pin), "%s", s);
	fresh.refresh_s = ver_u(ver, "refresh");
	fresh.check_s = ver_u(ver, "revocation_check");
	fresh.grace_s = ver_u(ver, "grace");
	fresh.ttl_s = ver_u(ver, "cache_ttl");
	fresh.cache_max = ver_u(ver, "cache_max");
	fresh.host_ttl_s = ver_u(ver, "host_cache_ttl");
	if (fresh.check_s == 0)
		fresh.check_s = 300;
	fresh.served = json_is_true(json_object_get(d, "served"));
	snprintf(fresh.app, sizeof(fresh.app), "%s",
	    json_string_value(json_object_get(d, "app")));
	if ((s = json_string_value(json_object_get(d, "tenant"))) != NULL)
		snprintf(fresh.tenant, sizeof(fresh.tenant), "%s", s);
	if ((s = json_string_value(json_object_get(d, "app_client_id"))) !=
	    NULL)
		snprintf(fresh.app_client_id, sizeof(fresh.app_client_id), "%s",
		    s);
	role_hint(&fresh, d);
	json_decref(d);

	pthread_mutex_lock(&k->mu);
	st = find_locked(k, customer);
	if (st == NULL) {
		if ((st = calloc(1, sizeof(*st))) == NULL) {
			pthread_mutex_unlock(&k->mu);
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		}
		*st = fresh;
		st->next = k->map[strhash(customer) % KS_BUCKETS];
		k->map[strhash(customer) % KS_BUCKETS] = st;
		k->ncust++;
	} else {
		/* New decisions; the live state (revocation, usage, the
		 * version in force) carries over unless the key changed. */
		int same_key = strcmp(st->uri.base, fresh.uri.base) == 0 &&
		    strcmp(st->uri.name, fresh.uri.name) == 0 &&
		    st->pinned == fresh.pinned &&
		    strcmp(st->pin, fresh.pin) == 0;

		memcpy(&st->gen, &fresh.gen, offsetof(struct kstate, kid) -
		    offsetof(struct kstate, gen));
		if (!same_key)
			st->resolved_at = 0;
	}
	*ret = *st;
	pthread_mutex_unlock(&k->mu);
	return 0;
}

struct provider *
keys_provider_for(struct keys *k, const struct key_uri *u, struct xerr *e)
{
	if (u->service == KEY_SERVICE_LOCAL)
		return k->local;
	if (k->azure != NULL)
		return k->azure;
	xerr_set(e, XTCMK_E_PROVIDER, "the key %s/keys/%s is in Azure; this "
	    "agent has no azure provider configured ([keys] provider = "
	    "local serves only *.vault.local keys)", u->base, u->name);
	return NULL;
}

void
keys_req_of(const struct kstate *st, struct provider_req *r)
{
	r->customer = st->customer;
	r->tenant = st->tenant[0] ? st->tenant : NULL;
	r->app_client_id = st->app_client_id[0] ? st->app_client_id : NULL;
	r->app = st->app[0] ? st->app : NULL;
	r->role_hint = st->role_hint[0] ? st->role_hint : NULL;
	r->vault_auth = st->vault_auth[0] ? st->vault_auth : NULL;
}

static void
mark_revoked(struct keys *k, const char *customer, const char *why)
{
	struct kstate *st;
	int was = 1;
	size_t n;

	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, customer)) != NULL) {
		was = st->revoked;
		st->revoked = 1;
		snprintf(st->reason, sizeof(st->reason), "%s", why);
		if (!was)
			st->revoked_since = time(NULL);
	}
	pthread_mutex_unlock(&k->mu);
	service_key_state(k->svc, customer, 1, 1);	/* fast path */
	n = keycache_purge_customer(k->cache, customer);
	if (!was) {
		atomic_fetch_add(&k->n_revocations, 1);
		log_event(LOG_WARNING, LOG_MSGID_KEY_STATE, customer, NULL,
		    "customer %s: key revoked, failing closed (%zu cached "
		    "keys wiped): %s", customer, n, why);
	}
}

static int
provider_failure(int rc)
{
	return rc == -XTCMK_E_PROVIDER || rc == -XTCMK_E_TIMEOUT ||
	    rc == -XTCMK_E_UNAVAILABLE || rc == -XTCMK_E_DENIED ||
	    rc == -XTCMK_E_NOT_FOUND;
}

static const char *
provider_fix(int rc)
{
	switch (-rc) {
	case XTCMK_E_DENIED:
		return "the customer's vault refuses the application: the "
		    "grant of `xtcmkctl customer kit CUSTOMER` is missing "
		    "or was removed";
	case XTCMK_E_NOT_FOUND:
		return "the key URI no longer resolves: check the key and "
		    "vault named at onboarding";
	default:
		return "check that the key service and login endpoint are "
		    "reachable and [azure] in xtcmk.conf; `xtcmkctl customer "
		    "check CUSTOMER` probes each step";
	}
}

/*
 * A key-service call's outcome for `customer`: log a failure once per
 * change of cause (not per request: a customer's broken grant would
 * otherwise fill the journal), and the recovery once.
 */
static void
note_provider(struct keys *k, const char *customer, const char *op, int rc,
    const char *msg)
{
	struct kstate *st;
	char app[NAME_MAX_LEN + 1] = "";
	int prev = 0, log = 0;

	if (rc < 0 && !provider_failure(rc))
		return;
	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, customer)) != NULL) {
		prev = st->fail_code;
		log = prev != (rc < 0 ? rc : 0);
		st->fail_code = rc < 0 ? rc : 0;
		snprintf(app, sizeof(app), "%s", st->app);
	}
	pthread_mutex_unlock(&k->mu);
	if (!log)
		return;
	if (rc < 0)
		log_event(LOG_WARNING, LOG_MSGID_KEY_STATE, customer,
		    *app ? app : NULL, "customer %s: key service %s failed: "
		    "%s; fix: %s (logged once until the cause changes)",
		    customer, op, msg, provider_fix(rc));
	else
		log_event(LOG_NOTICE, LOG_MSGID_KEY_STATE, customer,
		    *app ? app : NULL, "customer %s: key service answers "
		    "again (%s)", customer, op);
}

/*
 * Ask the provider for the key's state now and record the result: the
 * version in force (auto mode, when a refresh is due or `force`), or a
 * revocation.  Returns the provider's result.
 */
int
keys_check_now(struct keys *k, const struct kstate *snap, int force,
    struct xerr *e)
{
	struct provider_req req;
	struct key_state ks;
	struct key_uri u = snap->uri;
	struct provider *p;
	struct kstate *st;
	long long now = mono_s(), t0;
	int rc, restored = 0, moved = 0;

	if ((p = keys_provider_for(k, &u, e)) == NULL)
		return -XTCMK_E_PROVIDER;
	if (snap->pinned)
		snprintf(u.version, sizeof(u.version), "%s", snap->pin);
	else
		u.version[0] = '\0';
	keys_req_of(snap, &req);
	atomic_fetch_add(&k->n_checks, 1);
	t0 = metrics_now_us();
	rc = provider_get_key(p, &req, &u, &ks, e);
	metrics_provider(p->kind, MP_GET, rc, metrics_now_us() - t0);
	note_provider(k, snap->customer, "key check", rc == -XTCMK_E_REVOKED ?
	    0 : rc, rc < 0 ? e->msg : "");
	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, snap->customer)) != NULL) {
		st->checked_at = now;
		if (rc == 0) {
			st->ok_at = now;
			if (st->revoked) {
				st->revoked = 0;
				st->reason[0] = '\0';
				restored = 1;
			}
			if (force || st->resolved_at == 0 ||
			    now - st->resolved_at >= (long long)st->refresh_s) {
				moved = strcmp(st->version, ks.version) != 0;
				if (st->resolved_at != 0 && moved)
					log_info("customer %s: key version %s "
					    "now in force (was %s)",
					    st->customer, ks.version,
					    st->version);
				snprintf(st->kid, sizeof(st->kid), "%s",
				    ks.kid);
				snprintf(st->version, sizeof(st->version),
				    "%s", ks.version);
				st->alg = ks.wrap_alg != 0 ? ks.wrap_alg :
				    PROVIDER_ALG_RSA_OAEP_256;
				st->resolved_at = now;
			}
		}
	}
	pthread_mutex_unlock(&k->mu);
	if (rc == 0)	/* fast path: active; a new generation if it changed */
		service_key_state(k->svc, snap->customer, 0, restored || moved);
	if (restored) {
		atomic_fetch_add(&k->n_restores, 1);
		log_event(LOG_NOTICE, LOG_MSGID_KEY_STATE, snap->customer,
		    NULL, "customer %s: key enabled again, service restored",
		    snap->customer);
	}
	if (rc == -XTCMK_E_REVOKED)
		mark_revoked(k, snap->customer, e->msg);
	return rc;
}

/* Seconds since the key was last confirmed enabled, when that is too long
 * ago to act on (twice the check interval); 0 otherwise. */
static long long
stale_for(const struct kstate *st, long long now)
{
	if (st->ok_at != 0 && now - st->ok_at > 2 * (long long)st->check_s + 1)
		return now - st->ok_at;
	return 0;
}

/* Refuse unless the customer may be served by this host right now. */
int
keys_gate(struct keys *k, const struct kstate *st, struct xerr *e)
{
	long long stale = stale_for(st, mono_s());

	if (!st->served)
		return xerr_set(e, XTCMK_E_NOT_SERVED, "this host's workload "
		    "'%s' holds no federated credential on application '%s', "
		    "which serves customer '%s': add one with `xtcmkctl app "
		    "fic add %s %s`", k->cfg->workload ? k->cfg->workload :
		    "(none: set [agent] workload)", st->app, st->customer,
		    st->app, k->cfg->workload ? k->cfg->workload : "WORKLOAD");
	if (st->revoked)
		return xerr_set(e, XTCMK_E_REVOKED, "customer '%s' is revoked: "
		    "%s", st->customer, st->reason);
	if (stale != 0)
		return xerr_set(e, XTCMK_E_UNCONFIRMED, "customer '%s': the "
		    "key's state could not be confirmed for %llds (over twice the "
		    "revocation check interval): failing closed until the "
		    "key service answers", st->customer, stale);
	return 0;
}

/* The version in force, resolving it with the provider when due. */
static int
in_force(struct keys *k, struct kstate *st, struct xerr *e)
{
	int rc;

	if (st->resolved_at != 0 && (st->pinned ||
	    mono_s() - st->resolved_at < (long long)st->refresh_s))
		return 0;
	if ((rc = keys_check_now(k, st, 0, e)) < 0)
		return rc;
	return keys_state_get(k, st->customer, st, e);
}

/* Called locked: the usage row of `version`, made if `create` and room. */
static struct vusage *
vusage_locked(struct kstate *st, const char *version, int create)
{
	struct vusage *u;
	size_t vlen = strnlen(version, KEY_VERSION_LEN);
	int i;

	for (i = 0; i < st->nusage; i++)
		if (strcmp(st->usage[i].version, version) == 0)
			return &st->usage[i];
	if (!create)
		return NULL;
	if (st->nusage == st->ausage && st->ausage < KS_VERSIONS_MAX) {
		int n = st->ausage == 0 ? 4 : 2 * st->ausage;
		struct vusage *nu;

		if (n > KS_VERSIONS_MAX)
			n = KS_VERSIONS_MAX;
		if ((nu = realloc(st->usage, n * sizeof(*nu))) != NULL) {
			st->usage = nu;
			st->ausage = n;
		}
	}
	if (st->nusage >= st->ausage)
		return NULL;
	u = &st->usage[st->nusage++];
	memset(u, 0, sizeof(*u));
	memcpy(u->version, version, vlen);
	u->version[vlen] = '\0';
	u->first = time(NULL);
	return u;
}

static void
usage_note(struct keys *k, const char *customer, const char *version,
    int wrap, size_t wrapped_len)
{
	struct kstate *st;
	struct vusage *u;

	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, customer)) != NULL && wrap &&
	    wrapped_len != 0 && strcmp(st->version, version) == 0) {
		st->wrapped_len = wrapped_len;
		snprintf(st->blob_version, sizeof(st->blob_version), "%s",
		    version);
	}
	if (st != NULL && (u = vusage_locked(st, version, 1)) != NULL) {
		if (wrap)
			u->wraps++;
		else
			u->unwraps++;
		u->last = time(NULL);
	}
	pthread_mutex_unlock(&k->mu);
}

static struct log_ratelimit usage_rl = LOG_RATELIMIT_INIT(60, 1);
/*
 * Ask for one version of the key, not the one in force, and record
 * whether it is refused (disabled, deleted, expired): a refused version's
 * cached DEKs are wiped and its blobs refused until a later check finds
 * it enabled again, while the customer's other versions keep serving.
 * An answer that is no answer (network, throttling) changes nothing.
 */
static int
check_version(struct keys *k, const struct kstate *snap, const char *version,
    struct xerr *e)
{
	struct provider_req req;
	struct key_state ks;
	struct key_uri u = snap->uri;
	struct provider *p;
	struct kstate *st;
	struct vusage *v;
	char kid[KID_MAX];
	size_t n;
	int rc, was = 0;

	if ((p = keys_provider_for(k, &u, e)) == NULL)
		return -XTCMK_E_PROVIDER;
	snprintf(u.version, sizeof(u.version), "%s", version);
	keys_req_of(snap, &req);
	atomic_fetch_add(&k->n_version_checks, 1);
	rc = provider_get_key(p, &req, &u, &ks, e);
	if (rc < 0 && rc != -XTCMK_E_REVOKED)
		return rc;
	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, snap->customer)) != NULL &&
	    (v = vusage_locked(st, version, 1)) != NULL) {
		was = v->disabled;
		v->disabled = rc < 0;
		if (rc < 0)
			snprintf(v->why, sizeof(v->why), "%.*s",
			    (int)sizeof(v->why) - 1, e->msg);
		else
			v->why[0] = '\0';
	}
	pthread_mutex_unlock(&k->mu);
	/* Host processes stop serving the customer's cached keys (a new
	 * revocation generation) only after the version is refused here,
	 * so a key fetched again under the new generation is refused. */
	if (rc < 0 && !was)
		service_customer_bump(k->svc, snap->customer);
	if (rc == 0) {
		if (was)
			log_info("customer %s: key version %s enabled again",
			    snap->customer, version);
		return 0;
	}
	if (key_uri_format(&u, 1, kid, sizeof(kid)) < 0)
		return rc;
	n = keycache_purge_version(k->cache, snap->customer, kid);
	if (!was) {
		atomic_fetch_add(&k->n_version_revocations, 1);
		log_warn("customer %s: key version %s refused, its blobs fail "
		    "closed (%zu cached keys wiped): %s", snap->customer,
		    version, n, e->msg);
	}
	return rc;
}

int
keys_check_versions(struct keys *k, const struct kstate *snap)
{
	char (*vers)[KEY_VERSION_LEN + 1];
	long long now = time(NULL), window;
	struct kstate *st;
	struct xerr e;
	int i, n = 0, disabled = 0;

	if (snap->revoked)
		return 0;
	if ((vers = malloc(KS_VERSIONS_MAX * sizeof(*vers))) == NULL)
		return 0;
	/* A DEK stays cached up to cache_ttl after its last use here, and
	 * up to host_cache_ttl in a host process (whose hits the agent
	 * never sees). */
	window = (long long)(snap->ttl_s > snap->host_ttl_s ? snap->ttl_s :
	    snap->host_ttl_s) + snap->check_s;
	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, snap->customer)) != NULL)
		for (i = 0; i < st->nusage && n < KS_VERSIONS_MAX; i++) {
			struct vusage *v = &st->usage[i];

			if (strcmp(v->version, st->version) == 0 ||
			    (!v->disabled && now - v->last > window))
				continue;
			memcpy(vers[n++], v->version, sizeof(vers[0]));
		}
	pthread_mutex_unlock(&k->mu);
	for (i = 0; i < n; i++)
		if (check_version(k, snap, vers[i], &e) == -XTCMK_E_REVOKED)
			disabled++;
	free(vers);
	return disabled;
}

json_t *
keys_disabled_versions(struct keys *k, const char *customer)
{
	json_t *r = json_object();
	struct kstate *st;
	int i;

	if (r == NULL)
		return NULL;
	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, customer)) != NULL)
		for (i = 0; i < st->nusage; i++)
			if (st->usage[i].disabled)
				json_object_set_new(r, st->usage[i].version,
				    json_string(st->usage[i].why));
	pthread_mutex_unlock(&k->mu);
	return r;
}

/* Refuse a blob of a version found disabled, cached or not. */
static int
version_gate(struct keys *k, const char *customer, const char *version,
    struct xerr *e)
{
	char why[KS_VERSION_WHY_MAX] = "";
	struct kstate *st;
	struct vusage *v;
	int refused = 0;

	pthread_mutex_lock(&k->mu);
	if ((st = find_locked(k, customer)) != NULL &&
	    (v = vusage_locked(st, version, 0)) != NULL && v->disabled) {
		refused = 1;
		snprintf(why, sizeof(why), "%s", v->why);
	}
	pthread_mutex_unlock(&k->mu);
	if (!refused)
		return 0;
	return xerr_set(e, XTCMK_E_REVOKED, "customer '%s': the blob's key "
	    "version %s is refused: %s", customer, version, why);
}

/* Move the usage counted so far into the registry. */
void
keys_usage_flush(struct keys *k)
{
	json_t *rows = json_array();
	struct kstate *st;
	struct xerr e;
	unsigned i;
	long skipped;
	int j;

	pthread_mutex_lock(&k->mu);
	for (i = 0; i < KS_BUCKETS; i++)
		for (st = k->map[i]; st != NULL; st = st->next)
			for (j = 0; j < st->nusage; j++) {
				struct vusage *u = &st->usage[j];

				if (u->wraps == 0 && u->unwraps == 0)
					continue;
				json_array_append_new(rows, json_pack(
				    "{s:s, s:s, s:I, s:I, s:I, s:I}",
				    "customer", st->customer,
				    "version", u->version,
				    "wraps", (json_int_t)u->wraps,
				    "unwraps", (json_int_t)u->unwraps,
				    "first", (json_int_t)u->first,
				    "last", (json_int_t)u->last));
				u->wraps = u->unwraps = 0;
			}
	pthread_mutex_unlock(&k->mu);
	if (json_array_size(rows) > 0 &&
	    reg_usage_add(service_registry(k->svc), rows, &e) < 0 &&
	    (skipped = log_ratelimit(&usage_rl)) >= 0)
		log_warn("key usage not recorded: %s (%ld more such "
		    "failures not logged)", e.msg, skipped);
	else	/* the fleet's view: xtcmk-fleet(7) */
		regb_usage_publish(service_backend(k->svc), rows);
	json_decref(rows);
}

/* --- requests ------------------------------------------------------- */

static int
req_str(const uint8_t *payload, uint32_t len, uint16_t tag, size_t max,
    char *buf, const char *what, struct xerr *e)
{
	struct xw_field f;

	if (xw_find(payload, len, tag, &f) != 1)
		return xerr_set(e, XTCMK_E_INVAL, "request has no %s", what);
	if (f.len == 0 || !xw_field_is_str(&f, max))
		return xerr_set(e, XTCMK_E_INVAL, "%s must be 1 to %zu bytes "
		    "of text", what, max);
	memcpy(buf, f.val, f.len);
	buf[f.len] = '\0';
	return 0;
}

static int
req_blob(const uint8_t *payload, uint32_t len, const char *customer,
    struct blob *ret, const uint8_t **ret_bytes, size_t *ret_len,
    struct xerr *e)
{
	struct xw_field f;
	int rc;

	if (xw_find(payload, len, XT_BLOB, &f) != 1)
		return xerr_set(e, XTCMK_E_INVAL, "request has no wrapped "
		    "blob");
	if ((rc = blob_parse(f.val, f.len, ret, e)) < 0)
		return rc;
	if ((rc = blob_check_customer(ret, customer, e)) < 0)
		return rc;
	*ret_bytes = f.val;
	*ret_len = f.len;
	return 0;
}

/* Wrap `dek` under the version in force; the blob goes to `out`. */
static int
wrap_current(struct keys *k, struct kstate *st, const uint8_t *dek,
    size_t dek_len, uint8_t *out, size_t *ret_len, struct xerr *e)
{
	struct provider_req req;
	struct provider *p;
	struct key_uri u;
	struct blob b;
	long long t0;
	int rc;

	if ((rc = in_force(k, st, e)) < 0)
		return rc;
	if ((rc = key_uri_parse(st->kid, &u, e)) < 0)
		return rc;
	if ((p = keys_provider_for(k, &u, e)) == NULL)
		return -XTCMK_E_PROVIDER;
	memset(&b, 0, sizeof(b));
	keys_req_of(st, &req);
	t0 = metrics_now_us();
	rc = provider_wrap(p, &req, &u, dek, dek_len, b.wrapped,
	    sizeof(b.wrapped), &b.wrapped_len, e);
	metrics_provider(p->kind, MP_WRAP, rc, metrics_now_us() - t0);
	note_provider(k, st->customer, "wrap", rc == -XTCMK_E_REVOKED ? 0 : rc,
	    rc < 0 ? e->msg : "");
	if (rc == -XTCMK_E_REVOKED) {
		struct xerr e2;

		/* The whole key, or only this version?  Ask. */
		(void)keys_check_now(k, st, 1, &e2);
		return rc;
	}
	if (rc < 0)
		return rc;
	if (strlen(st->kid) > BLOB_KID_MAX)
		return xerr_set(e, XTCMK_E_PROVIDER, "key id of %zu bytes is "
		    "longer than a blob holds (%d)", strlen(st->kid),
		    BLOB_KID_MAX);
	memcpy(b.kid, st->kid, strlen(st->kid) + 1);
	snprintf(b.customer, sizeof(b.customer), "%s", st->customer);
	b.alg = (uint8_t)(st->alg != 0 ? st->alg : BLOB_ALG_RSA_OAEP_256);
	b.provider = (uint8_t)p->kind;
	if ((rc = blob_encode(&b, dek, dek_len, out, BLOB_MAX, ret_len,
	    e)) < 0)
		return rc;
	usage_note(k, st->customer, st->version, 1, b.wrapped_len);
	return 0;
}

struct load_arg {
	struct keys		*k;
	const struct kstate	*st;
	const struct blob	*b;
};

static int
load_dek(void *arg, uint8_t dek[KEYCACHE_DEK_MAX], size_t *ret_len,
    struct xerr *e)
{
	struct load_arg *a = arg;
	struct provider_req req;
	struct provider *p;
	struct key_uri u;
	long long t0;
	size_t n;
	int rc;

	if ((rc = key_uri_parse(a->b->kid, &u, e)) < 0)
		return rc;
	if (u.version[0] == '\0')
		return xerr_set(e, XTCMK_E_BAD_BLOB, "blob key id %s has no "
		    "version", a->b->kid);
	if ((p = keys_provider_for(a->k, &u, e)) == NULL)
		return -XTCMK_E_PROVIDER;
	keys_req_of(a->st, &req);
	t0 = metrics_now_us();
	rc = provider_unwrap(p, &req, &u, a->b->wrapped, a->b->wrapped_len,
	    dek, KEYCACHE_DEK_MAX, &n, e);
	metrics_provider(p->kind, MP_UNWRAP, rc, metrics_now_us() - t0);
	if (rc < 0)
		return rc;
	if (n != a->b->dek_len) {
		OPENSSL_cleanse(dek, KEYCACHE_DEK_MAX);
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped key is %zu bytes, "
		    "the blob records %u: the blob is corrupted", n,
		    a->b->dek_len);
	}
	if ((rc = blob_verify_tag(a->b, dek, n, e)) < 0) {
		OPENSSL_cleanse(dek, KEYCACHE_DEK_MAX);
		return rc;
	}
	*ret_len = n;
	return 0;
}

static int
unwrap_blob(struct keys *k, struct kstate *st, const struct blob *b,
    const uint8_t *bytes, size_t len, uint8_t *dek, size_t *ret_dek_len,
    struct xerr *e)
{
	struct load_arg a = { k, st, b };
	struct key_uri u;
	int rc, have_u;

	have_u = key_uri_parse(b->kid, &u, NULL) == 0;
	if (have_u && (rc = version_gate(k, st->customer, u.version, e)) < 0)
		return rc;
	rc = keycache_get_or_load(k->cache, st->customer, b->kid, bytes, len,
	    st->cache_max == 0 ? 0 : st->ttl_s, load_dek, &a, dek, ret_dek_len,
	    e);
	/* Failures only: a success may be a cache hit. */
	if (rc < 0 && rc != -XTCMK_E_REVOKED)
		note_provider(k, st->customer, "unwrap", rc, e->msg);
	if (rc == -XTCMK_E_REVOKED) {
		struct xerr e2;

		/* The whole key, or only this blob's version?  Ask. */
		if (have_u && u.version[0] != '\0' &&
		    strcmp(u.version, st->version) != 0)
			(void)check_version(k, st, u.version, &e2);
		else
			(void)keys_check_now(k, st, 0, &e2);
		return rc;
	}
	if (rc == 0 && have_u)
		usage_note(k, st->customer, u.version, 0, 0);
	return rc;
}

/*
 * KEY_STATUS: the state as text ("active", "revoked", "unknown": a key
 * whose confirmation went stale reads "unknown") and as an enum
 * xtcmk_key_state, with the reason.
 */
static int
key_status_reply(struct keys *k, const struct kstate *st,
    struct xw_buf *reply, const struct xerr *e)
{
	char why[XERR_MSG_MAX];
	long long stale = stale_for(st, mono_s());
	int code;

	if (st->revoked) {
		code = XTCMK_KEY_REVOKED;
		snprintf(why, sizeof(why), "%s", st->reason);
	} else if (st->ok_at == 0) {
		code = XTCMK_KEY_UNKNOWN;
		snprintf(why, sizeof(why), "%s", e->msg[0] ? e->msg :
		    "the key's state was never confirmed");
	} else if (stale != 0) {
		code = XTCMK_KEY_UNCONFIRMED;
		snprintf(why, sizeof(why), "the key's state could not be "
		    "confirmed for %llds (over twice the revocation check "
		    "interval)", stale);
	} else {
		json_t *dis = keys_disabled_versions(k, st->customer), *v;
		const char *ver;

		code = XTCMK_KEY_ACTIVE;
		snprintf(why, sizeof(why), "key enabled at the last check");
		/* Old versions refused on their own are part of the state. */
		json_object_foreach(dis, ver, v) {
			size_t n = strlen(why);

			snprintf(why + n, sizeof(why) - n, "; version %s is "
			    "disabled (its blobs are refused)", ver);
		}
		json_decref(dis);
	}
	xw_put_str(reply, XT_KEY_STATE, code == XTCMK_KEY_ACTIVE ? "active" :
	    code == XTCMK_KEY_REVOKED ? "revoked" : "unknown");
	xw_put_u64(reply, XT_KEY_STATE_CODE, (uint64_t)code);
	xw_put_str(reply, XT_KEY_REASON, why);
	xw_put_str(reply, XT_KEY_ID, st->kid);
	return 0;
}

/*
 * The size of a blob of a `dek_len`-byte DEK under the version in force:
 * exact for AES key wrap (8 bytes more than the DEK) and, for RSA, once a
 * key was wrapped under that version (the ciphertext is the modulus
 * size); else the least it can be (the smallest RSA key).  Format v2
 * (any length but 32) takes one byte more.
 */
static size_t
blob_need(const struct kstate *st, size_t dek_len, int *ret_exact)
{
	size_t base = BLOB_OVERHEAD + (dek_len != BLOB_DEK_V1 ? 1 : 0) +
	    strlen(st->customer) + strlen(st->kid);

	*ret_exact = 1;
	if (st->alg == PROVIDER_ALG_A256KW)
		return base + BLOB_WRAPPED_KW(dek_len);
	if (st->wrapped_len != 0 &&
	    strcmp(st->blob_version, st->version) == 0)
		return base + st->wrapped_len;
	*ret_exact = 0;
	return base + BLOB_WRAPPED_RSA_MIN;
}

/* An optional u64 field of a request: 0 if absent, 1 if read. */
static int
req_u64(const uint8_t *payload, uint32_t len, uint16_t tag, const char *what,
    uint64_t *ret_v, struct xerr *e)
{
	struct xw_field f;

	if (xw_find(payload, len, tag, &f) != 1)
		return 0;
	if (xw_field_u64(&f, ret_v) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s is not a 64-bit integer",
		    what);
	return 1;
}

/*
 * DEK_NEW's length (XT_DEK_LEN; 32 when absent) into *ret_len: within
 * 16..64 bytes, and a multiple of 8 for AES key wrap (oct-HSM keys).
 */
static int
req_dek_len(const struct kstate *st, const uint8_t *payload, uint32_t len,
    size_t *ret_len, struct xerr *e)
{
	uint64_t v = BLOB_DEK_V1;
	int rc;

	if ((rc = req_u64(payload, len, XT_DEK_LEN, "data key length", &v,
	    e)) < 0)
		return rc;
	if (v < BLOB_DEK_MIN || v > BLOB_DEK_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "data key length %llu is not "
		    "within %d-%d bytes: ask for 16 (AES-128), 32 (AES-256) "
		    "or 64 (AES-256-XTS), for example",
		    (unsigned long long)v, BLOB_DEK_MIN, BLOB_DEK_MAX);
	if (st->alg == PROVIDER_ALG_A256KW && v % 8 != 0)
		return xerr_set(e, XTCMK_E_INVAL, "data key length %llu: the "
		    "key of customer '%s' wraps with AES key wrap (A256KW), "
		    "which takes a multiple of 8 bytes", (unsigned long long)v,
		    st->customer);
	*ret_len = (size_t)v;
	return 0;
}

/*
 * A client that says how much room it has for the DEK (XT_DEK_CAP) is
 * refused before anything is unwrapped when a `dek_len`-byte key cannot
 * fit; the reply carries the length (XT_DEK_NEED).
 */
static int
check_dek_room(const uint8_t *payload, uint32_t len, size_t dek_len,
    struct xerr *e)
{
	uint64_t cap;
	int rc;

	if ((rc = req_u64(payload, len, XT_DEK_CAP, "data key room", &cap,
	    e)) <= 0 || cap >= dek_len)
		return rc < 0 ? rc : 0;
	e->dek_need = dek_len;
	return xerr_set(e, XTCMK_E_TOOBIG, "data key buffer of %llu bytes is "
	    "too small for a %zu-byte data key; no key was generated or "
	    "unwrapped", (unsigned long long)cap, dek_len);
}

/*
 * A client that says how much room it has for the blob (XT_BLOB_CAP) is
 * refused before any key is generated, unwrapped or wrapped when the
 * blob of a `dek_len`-byte DEK cannot fit; the reply carries the size
 * (XT_BLOB_NEED).
 */
static int
check_room(const struct kstate *st, const uint8_t *payload, uint32_t len,
    size_t dek_len, struct xerr *e)
{
	uint64_t cap;
	size_t need;
	int exact, rc;

	if ((rc = req_u64(payload, len, XT_BLOB_CAP, "blob room", &cap,
	    e)) <= 0)
		return rc < 0 ? rc : 0;
	need = blob_need(st, dek_len, &exact);
	if (cap >= need)
		return 0;
	e->need = need;
	return xerr_set(e, XTCMK_E_TOOBIG, "blob buffer of %llu bytes is too "
	    "small: blobs of customer '%s' under %s take %s%zu bytes; no key "
	    "was generated", (unsigned long long)cap, st->customer, st->kid,
	    exact ? "" : "at least ", need);
}

int
keys_handle(struct keys *k, struct service *svc, uint16_t type,
    const uint8_t *payload, uint32_t len, struct xw_buf *reply,
    struct xerr *e)
{
	char customer[CUSTOMER_ID_MAX + 1];
	const uint8_t *bytes = NULL;
	struct kstate st;
	struct blob b;
	uint8_t *dek, *out;
	size_t n, blen = 0, dek_len = BLOB_DEK_V1;
	int rc;

	(void)svc;
	if ((rc = req_str(payload, len, XT_CUSTOMER, CUSTOMER_ID_MAX,
	    customer, "customer id", e)) < 0)
		return rc;
	if ((dek = scratch(k)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	out = dek + 64;
	if ((rc = keys_state_get(k, customer, &st, e)) < 0)
		return rc;
	if (type != XW_KEY_STATUS && !st.served)
		return keys_gate(k, &st, e);
	/* First use since start: learn the key's state before anything. */
	if (st.resolved_at == 0 && (rc = keys_check_now(k, &st, 1, e)) < 0 &&
	    type != XW_KEY_STATUS)
		return rc;
	if ((rc = keys_state_get(k, customer, &st, e)) < 0)
		return rc;

	if (type == XW_KEY_STATUS)
		return key_status_reply(k, &st, reply, e);
	if ((rc = keys_gate(k, &st, e)) < 0)
		return rc;
	/* Lengths and room are checked before any key is touched. */
	if (type == XW_DEK_NEW &&
	    ((rc = req_dek_len(&st, payload, len, &dek_len, e)) < 0 ||
	    (rc = check_dek_room(payload, len, dek_len, e)) < 0 ||
	    (rc = check_room(&st, payload, len, dek_len, e)) < 0))
		return rc;
	if (type != XW_DEK_NEW &&
	    ((rc = req_blob(payload, len, customer, &b, &bytes, &blen,
	    e)) < 0 ||
	    (rc = check_dek_room(payload, len, b.dek_len, e)) < 0 ||
	    (type == XW_DEK_REWRAP && (rc = check_room(&st, payload, len,
	    b.dek_len, e)) < 0)))
		return rc;

	switch (type) {
	case XW_DEK_NEW:
		if (RAND_bytes(dek, (int)dek_len) != 1)
			return xerr_set(e, XTCMK_E_INTERNAL, "no randomness");
		rc = wrap_current(k, &st, dek, dek_len, out, &n, e);
		if (rc == 0) {
			keycache_put(k->cache, customer, st.kid, out, n, dek,
			    dek_len, st.cache_max == 0 ? 0 : st.ttl_s);
			xw_put(reply, XT_DEK, dek, dek_len);
			xw_put(reply, XT_BLOB, out, n);
			xw_put_str(reply, XT_KEY_ID, st.kid);
		}
		break;
	case XW_DEK_UNWRAP:
	case XW_DEK_REWRAP:
		if ((rc = unwrap_blob(k, &st, &b, bytes, blen, dek, &dek_len,
		    e)) < 0)
			break;
		if (type == XW_DEK_UNWRAP) {
			xw_put(reply, XT_DEK, dek, dek_len);
			break;
		}
		if ((rc = wrap_current(k, &st, dek, dek_len, out, &n, e)) < 0)
			break;
		keycache_put(k->cache, customer, st.kid, out, n, dek, dek_len,
		    st.cache_max == 0 ? 0 : st.ttl_s);
		xw_put(reply, XT_BLOB, out, n);
		xw_put_str(reply, XT_KEY_ID, st.kid);
		break;
	default:
		rc = xerr_set(e, XTCMK_E_UNSUPPORTED, "unknown key request");
	}
	OPENSSL_cleanse(dek, SCRATCH_SIZE);
	return rc;
}

/* --- checker threads ------------------------------------------------ */

static void *
checker_main(void *arg)
{
	struct keys *k = ((void **)arg)[0];
	unsigned idx = (unsigned)(uintptr_t)((void **)arg)[1];
	struct kstate snap;
	struct xerr e;
	long long now, flushed = mono_s();
	unsigned i;
	int found;

	free(arg);
	while (!atomic_load(&k->stop)) {
		usleep(CHECK_TICK_MS * 1000);
		now = mono_s();
		if (idx == 0 && now - flushed >= USAGE_FLUSH_S) {
			keys_usage_flush(k);
			flushed = now;
		}
		for (i = idx; i < KS_BUCKETS; i += k->nchecker) {
			/* One due customer of this bucket at a time. */
			do {
				struct kstate *st;

				found = 0;
				pthread_mutex_lock(&k->mu);
				for (st = k->map[i]; st != NULL; st = st->next)
					if (!st->checking && now -
					    st->checked_at >=
					    (long long)st->check_s) {
						st->checking = 1;
						st->checked_at = now;
						snap = *st;
						found = 1;
						break;
					}
				pthread_mutex_unlock(&k->mu);
				if (!found)
					break;
				if (keys_check_now(k, &snap, 0, &e) == 0 &&
				    keys_state_get(k, snap.customer, &snap,
				    &e) == 0)
					(void)keys_check_versions(k, &snap);
				pthread_mutex_lock(&k->mu);
				if ((st = find_locked(k, snap.customer)) !=
				    NULL)
					st->checking = 0;
				pthread_mutex_unlock(&k->mu);
			} while (!atomic_load(&k->stop));
		}
	}
	return NULL;
}

void
keys_flush(struct keys *k)
{
	if (k != NULL && k->cache != NULL)
		keys_usage_flush(k);
}

void
keys_state_counts(struct keys *k, unsigned *ret_ok, unsigned *ret_revoked,
    unsigned *ret_failing)
{
	struct kstate *st;
	unsigned ok = 0, revoked = 0, failing = 0, i;

	if (k != NULL) {
		pthread_mutex_lock(&k->mu);
		for (i = 0; i < KS_BUCKETS; i++)
			for (st = k->map[i]; st != NULL; st = st->next) {
				if (st->revoked)
					revoked++;
				else if (st->fail_code != 0)
					failing++;
				else
					ok++;
			}
		pthread_mutex_unlock(&k->mu);
	}
	*ret_ok = ok;
	*ret_revoked = revoked;
	*ret_failing = failing;
}

json_t *
keys_stats(struct keys *k)
{
	struct keycache_stats cs;
	unsigned revoked = 0, i;
	struct kstate *st;
	json_t *r;

	keycache_stats(k->cache, &cs);
	pthread_mutex_lock(&k->mu);
	for (i = 0; i < KS_BUCKETS; i++)
		for (st = k->map[i]; st != NULL; st = st->next)
			revoked += st->revoked;
	pthread_mutex_unlock(&k->mu);
	r = json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:b}, s:i, s:i, s:I, s:I, s:I}",
	    "provider_calls",
	    "get", (json_int_t)k->local->calls_get,
	    "wrap", (json_int_t)k->local->calls_wrap,
	    "unwrap", (json_int_t)k->local->calls_unwrap,
	    "errors", (json_int_t)k->local->errors,
	    "dek_cache",
	    "entries", (json_int_t)cs.entries,
	    "capacity", (json_int_t)cs.capacity,
	    "hits", (json_int_t)cs.hits,
	    "misses", (json_int_t)cs.misses,
	    "loads", (json_int_t)cs.loads,
	    "evictions", (json_int_t)cs.evictions,
	    "expired", (json_int_t)cs.expired,
	    "locked_bytes", (json_int_t)cs.locked_bytes,
	    "locked", cs.locked,
	    "customers", (int)k->ncust, "revoked", (int)revoked,
	    "revocations", (json_int_t)k->n_revocations,
	    "restores", (json_int_t)k->n_restores,
	    "checks", (json_int_t)k->n_checks);
	if (r != NULL)
		json_object_set_new(r, "versions", json_pack("{s:I, s:I}",
		    "checks", (json_int_t)k->n_version_checks,
		    "revocations", (json_int_t)k->n_version_revocations));
	if (r != NULL && k->azure != NULL)
		json_object_set_new(r, "azure", provider_azure_stats(k->azure));
	return r;
}

/* --- life cycle ----------------------------------------------------- */

int
keys_open(struct config *cfg, struct service *svc, struct keys **ret_keys,
    struct xerr *e)
{
	struct keys *k;
	unsigned i;
	int rc;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	k->cfg = cfg;
	k->svc = svc;
	pthread_mutex_init(&k->mu, NULL);
	pthread_key_create(&k->scratch_key, scratch_free);
	if ((rc = keystore_open(cfg->state_dir, &k->ks, e)) < 0)
		goto fail;
	if (keystore_swept(k->ks) > 0)
		log_info("keystore: removed %zu files an interrupted write "
		    "left behind (temporary files, unacknowledged versions)",
		    keystore_swept(k->ks));
	if ((k->local = provider_local_new(k->ks)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	if ((k->azure = provider_azure_new(cfg, e)) == NULL) {
		rc = -(e->code ? e->code : XTCMK_E_NOMEM);
		goto fail;
	}
	if ((rc = keycache_new(cfg->dek_cache_entries, &k->cache, e)) < 0)
		goto fail;
	{
		struct keycache_stats cs;

		keycache_stats(k->cache, &cs);
		if (!cs.locked && cs.capacity > 0)
			log_warn("the DEK cache (%zu entries) could not be "
			    "locked in memory: raise RLIMIT_MEMLOCK "
			    "(LimitMEMLOCK= in the unit) or lower [keys] "
			    "dek_cache_entries", cs.capacity);
	}
	k->nchecker = cfg->status_workers;
	if ((k->checkers = calloc(k->nchecker, sizeof(pthread_t))) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < k->nchecker; i++) {
		void **arg = malloc(2 * sizeof(void *));

		if (arg == NULL) {
			k->nchecker = i;
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto fail;
		}
		arg[0] = k;
		arg[1] = (void *)(uintptr_t)i;
		if (pthread_create(&k->checkers[i], NULL, checker_main,
		    arg) != 0) {
			free(arg);
			k->nchecker = i;
			rc = xerr_set(e, XTCMK_E_INTERNAL, "cannot start key "
			    "checkers");
			goto fail;
		}
	}
	*ret_keys = k;
	return 0;
fail:
	keys_close(k);
	return rc;
}

void
keys_close(struct keys *k)
{
	struct kstate *st, *next;
	unsigned i;

	if (k == NULL)
		return;
	atomic_store(&k->stop, 1);
	for (i = 0; i < k->nchecker; i++)
		pthread_join(k->checkers[i], NULL);
	free(k->checkers);
	if (k->cache != NULL)
		keys_usage_flush(k);
	for (i = 0; i < KS_BUCKETS; i++)
		for (st = k->map[i]; st != NULL; st = next) {
			next = st->next;
			free(st->usage);
			free(st);
		}
	keycache_free(k->cache);
	provider_free(k->local);
	provider_free(k->azure);
	keystore_free(k->ks);
	free(k);
}
