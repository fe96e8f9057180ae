/*
 * test_keys.c - the data plane against a real xtcmkd through libxtcmk:
 * round trips, rotation and rewrap, pinned versions, revocation and
 * restore, the DEK cache and its lifetime, single-flight cold unwraps, bad
 * blobs, restarts (SIGTERM and SIGKILL) and customers this host may not
 * serve.
 *
 * The agent runs with a small versioning policy of our own (refresh and
 * revocation checks every second, a cache lifetime taken from the
 * customer's `cache_ttl` label, pinned when labelled key_mode=pinned) so
 * every interval is short.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "t.h"
#include "harness.h"
#include "xtcmk.h"
#include "client.h"
#include "wire.h"

#define VAULT		"https://demo.vault.local/keys/"
#define TENANT		"33333333-3333-3333-3333-333333333333"
#define ROUND_TRIPS	100
#define FLIGHT_THREADS	64
#define OUT_MAX		16384
#define SLACK_S		3.0	/* bound on revocation and restore */

static struct agent ag;
static struct xtcmk *h;

static const char versioning_lua[] =
    "-- test versioning policy: short intervals\n"
    "local P = { name = \"test-versioning\" }\n"
    "function P.decide(input, params)\n"
    "\tparams = params or {}\n"
    "\tlocal c = input.customer or error(\"input.customer is missing\")\n"
    "\tlocal key = input.key or error(\"input.key is missing\")\n"
    "\tlocal labels = c.labels or {}\n"
    "\tlocal r = { mode = \"auto\", refresh = params.refresh or 1,\n"
    "\t    revocation_check = params.revocation_check or 1, grace = 0,\n"
    "\t    cache_ttl = tonumber(labels.cache_ttl) or\n"
    "\t    params.cache_ttl or 300,\n"
    "\t    cache_max = 10000, reason = \"test\" }\n"
    "\tif labels.key_mode == \"pinned\" and key.version then\n"
    "\t\tr.mode = \"pinned\"\n"
    "\t\tr.version = key.version\n"
    "\tend\n"
    "\treturn r\n"
    "end\n"
    "return P\n";

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in, *out;
	size_t n;
	int rc = 0;

	if ((in = fopen(from, "r")) == NULL)
		return -1;
	if ((out = fopen(to, "w")) == NULL) {
		fclose(in);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	fclose(in);
	if (fclose(out) != 0)
		rc = -1;
	return rc;
}

/*
 * The harness writes a config pointing at the default policies; point it
 * at a copy whose versioning policy has short intervals instead.
 */
static int
setup_agent(void)
{
	char path[600], from[600];
	FILE *f;

	if (agent_init(&ag, "wl-eu-1", NULL) == -1)
		return -1;
	snprintf(ag.policy_dir, sizeof(ag.policy_dir), "%s/policies",
	    ag.dir);
	if (mkdir(ag.policy_dir, 0700) == -1)
		return -1;
	snprintf(from, sizeof(from), "%s/policies/default/partition.lua",
	    h_srcdir());
	snprintf(path, sizeof(path), "%s/partition.lua", ag.policy_dir);
	if (copy_file(from, path) == -1)
		return -1;
	snprintf(from, sizeof(from), "%s/policies/default/role.lua",
	    h_srcdir());
	snprintf(path, sizeof(path), "%s/role.lua", ag.policy_dir);
	if (copy_file(from, path) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/versioning.lua", ag.policy_dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(versioning_lua, f);
	fclose(f);
	if ((f = fopen(ag.conf, "w")) == NULL)
		return -1;
	fprintf(f, "[agent]\nsocket = %s\nstate_dir = %s\npolicy_dir = %s\n"
	    "lua_dir = %s/lua\nrequest_timeout = 5\nworkload = wl-eu-1\n"
	    "[params]\nrefresh = 1\nrevocation_check = 1\n", ag.sock,
	    ag.state, ag.policy_dir, h_srcdir());
	return fclose(f) == 0 ? 0 : -1;
}

/* xtcmkctl --json ARGS, parsed; NULL (and the output shown) on failure. */
static json_t *
ctl_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
ctl_json(const char *fmt, ...)
{
	char args[2048], *out;
	json_error_t jerr;
	json_t *j = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if ((out = malloc(OUT_MAX)) == NULL)
		return NULL;
	rc = ctl(&ag, out, OUT_MAX, "--json %s", args);
	if (rc == 0)
		j = json_loads(out, 0, &jerr);
	if (j == NULL)
		fprintf(stderr, "xtcmkctl --json %s: exit %d: %s\n", args, rc,
		    out);
	free(out);
	return j;
}

/* xtcmkctl ARGS must succeed. */
static int
ctl_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
ctl_ok(const char *fmt, ...)
{
	char args[2048], out[OUT_MAX];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if ((rc = ctl(&ag, out, sizeof(out), "%s", args)) != 0)
		fprintf(stderr, "xtcmkctl %s: exit %d: %s\n", args, rc, out);
	return rc;
}

/* The agent's stats, through an XW_ADMIN request as xtcmkctl sends it. */
static json_t *
stats(void)
{
	char err[XC_ERR_MAX];
	static const char req[] = "{\"cmd\":\"stats\"}";
	uint8_t payload[64], *reply = NULL;
	struct xc_conn c;
	struct xw_buf b;
	struct xw_field f;
	uint16_t status;
	size_t rlen;
	int64_t dl = xc_deadline(5000);
	json_t *j = NULL;

	if (xc_connect(ag.sock, dl, err, sizeof(err), &c) < 0) {
		fprintf(stderr, "stats: %s\n", err);
		return NULL;
	}
	xw_buf_init(&b, payload, sizeof(payload));
	xw_put_str(&b, XT_JSON, req);
	if (xc_request(&c, XW_ADMIN, payload, b.len, XW_PAYLOAD_MAX, dl, err,
	    sizeof(err), &status, &reply, &rlen) == 0 && status == 0 &&
	    xw_find(reply, rlen, XT_JSON, &f) == 1)
		j = json_loadb((const char *)f.val, f.len, 0, NULL);
	free(reply);
	xc_close(&c);
	return j;
}

/* An integer at a dotted path ("keys.dek_cache.hits"), or -1. */
static long long
jint(json_t *j, const char *path)
{
	char buf[128], *p, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strtok_r(buf, ".", &save); p != NULL && j != NULL;
	    p = strtok_r(NULL, ".", &save))
		j = json_object_get(j, p);
	return json_is_integer(j) ? (long long)json_integer_value(j) : -1;
}

static long long
stat_of(const char *path)
{
	json_t *j = stats();
	long long v = jint(j, path);

	json_decref(j);
	return v;
}

/*
 * The version part of the key id written in a blob (see agent/blob.h:
 * customer length and id at 8, then key id length and id).
 */
static int
blob_version(const uint8_t *b, size_t len, char *buf, size_t size)
{
	size_t clen, klen, pos, i;

	if (len < 12)
		return -1;
	clen = (size_t)b[8] << 8 | b[9];
	pos = 10 + clen;
	if (pos + 2 > len)
		return -1;
	klen = (size_t)b[pos] << 8 | b[pos + 1];
	pos += 2;
	if (pos + klen > len || klen == 0)
		return -1;
	for (i = klen; i > 0 && b[pos + i - 1] != '/'; i--)
		;
	if (klen - i + 1 > size)
		return -1;
	memcpy(buf, b + pos + i, klen - i);
	buf[klen - i] = '\0';
	return 0;
}

/* The version of a kid URL (after the last '/'). */
static const char *
kid_version(const char *kid)
{
	const char *s = kid != NULL ? strrchr(kid, '/') : NULL;

	return s != NULL ? s + 1 : "";
}

struct blobk {
	uint8_t	dek[XTCMK_DEK_LEN];
	uint8_t	b[XTCMK_BLOB_MAX];
	size_t	len;
};

static int
dek_new(const char *customer, struct blobk *k)
{
	k->len = sizeof(k->b);
	return xtcmk_dek_new(h, customer, k->dek, k->b, &k->len);
}

/* Unwrap must give back k's DEK. */
static int
unwrap_same(const char *customer, const struct blobk *k)
{
	uint8_t dek[XTCMK_DEK_LEN];
	int rc;

	if ((rc = xtcmk_dek_unwrap(h, customer, k->b, k->len, dek)) != 0)
		return rc;
	return memcmp(dek, k->dek, sizeof(dek)) == 0 ? 0 : -1;
}

/* Create a local key; its kid (with version) into kid. */
static int
key_create(const char *name, char *kid, size_t size)
{
	json_t *j = ctl_json("key create %s%s", VAULT, name);
	const char *s = json_string_value(json_object_get(j, "kid"));
	int rc = -1;

	if (s != NULL && strlen(s) < size) {
		snprintf(kid, size, "%s", s);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static int
customer_add(const char *id, const char *uri, const char *labels)
{
	return ctl_ok("customer add %s --tenant %s --key-uri %s %s", id,
	    TENANT, uri, labels);
}

/* --- 1. round trips ------------------------------------------------- */

static struct blobk rt[ROUND_TRIPS];

static void
test_round_trips(void)
{
	static const uint8_t zero[XTCMK_DEK_LEN];
	int i, j, fails = 0, same = 0, wrong = 0;

	for (i = 0; i < ROUND_TRIPS; i++) {
		if (dek_new("c1", &rt[i]) != 0) {
			fprintf(stderr, "dek_new: %s\n", xtcmk_last_error());
			fails++;
			continue;
		}
		if (rt[i].len < 38 || rt[i].len > XTCMK_BLOB_MAX ||
		    memcmp(rt[i].b, "XTCB", 4) != 0 ||
		    memcmp(rt[i].dek, zero, sizeof(zero)) == 0)
			wrong++;
		if (unwrap_same("c1", &rt[i]) != 0)
			fails++;
	}
	ASSERT_EQ(fails, 0);
	ASSERT_EQ(wrong, 0);
	for (i = 0; i < ROUND_TRIPS; i++)
		for (j = i + 1; j < ROUND_TRIPS; j++)
			same += memcmp(rt[i].dek, rt[j].dek,
			    XTCMK_DEK_LEN) == 0;
	ASSERT_EQ(same, 0);
}

/* --- 2. rotation and rewrap ----------------------------------------- */

static void
test_rotation(void)
{
	char v0[64], v1[64], vb[64];
	struct blobk nb, again;
	uint8_t dek[XTCMK_DEK_LEN];
	json_t *j, *row;
	double t0, took;
	size_t i;
	int rc, seen0 = 0, seen1 = 0;

	ASSERT_EQ(blob_version(rt[0].b, rt[0].len, v0, sizeof(v0)), 0);
	ASSERT_EQ((int)strlen(v0), 32);
	j = ctl_json("key rotate %sk1", VAULT);
	ASSERT_TRUE(j != NULL);
	snprintf(v1, sizeof(v1), "%s", kid_version(json_string_value(
	    json_object_get(j, "kid"))));
	json_decref(j);
	ASSERT_EQ((int)strlen(v1), 32);
	ASSERT_TRUE(strcmp(v0, v1) != 0);

	/* New blobs carry the new version within the refresh interval. */
	t0 = now_s();
	vb[0] = '\0';
	while (now_s() - t0 < 5.0) {
		if ((rc = dek_new("c1", &nb)) != 0)
			break;
		blob_version(nb.b, nb.len, vb, sizeof(vb));
		if (strcmp(vb, v1) == 0)
			break;
		sleep_ms(50);
	}
	took = now_s() - t0;
	printf("rotation: new version in new blobs after %.2fs\n", took);
	ASSERT_STR(vb, v1);
	ASSERT_TRUE(took < 2.5);
	ASSERT_EQ(unwrap_same("c1", &nb), 0);

	/* Old blobs still unwrap. */
	ASSERT_EQ(unwrap_same("c1", &rt[0]), 0);
	ASSERT_EQ(unwrap_same("c1", &rt[ROUND_TRIPS - 1]), 0);

	/* Rewrap moves an old blob to the version in force. */
	again.len = sizeof(again.b);
	rc = xtcmk_dek_rewrap(h, "c1", rt[1].b, rt[1].len, again.b,
	    &again.len);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_EQ(blob_version(again.b, again.len, vb, sizeof(vb)), 0);
	ASSERT_STR(vb, v1);
	ASSERT_EQ(xtcmk_dek_unwrap(h, "c1", again.b, again.len, dek),
	    XTCMK_OK);
	ASSERT_TRUE(memcmp(dek, rt[1].dek, sizeof(dek)) == 0);

	/* key status lists both versions with their counts. */
	j = ctl_json("key status c1");
	ASSERT_TRUE(j != NULL);
	ASSERT_STR(json_string_value(json_object_get(j, "current")), v1);
	ASSERT_STR(json_string_value(json_object_get(j, "mode")), "auto");
	json_array_foreach(json_object_get(j, "versions"), i, row) {
		const char *v = json_string_value(json_object_get(row,
		    "version"));
		long long w = jint(row, "wraps"), u = jint(row, "unwraps");

		if (v != NULL && strcmp(v, v0) == 0) {
			seen0 = 1;
			ASSERT_INT(w, >=, ROUND_TRIPS);
			ASSERT_INT(u, >=, ROUND_TRIPS + 3);
		} else if (v != NULL && strcmp(v, v1) == 0) {
			seen1 = 1;
			ASSERT_INT(w, >=, 2);
			ASSERT_INT(u, >=, 2);
		}
	}
	ASSERT_TRUE(seen0);
	ASSERT_TRUE(seen1);
	json_decref(j);
}

/* --- 3. pinned versions --------------------------------------------- */

static void
test_pinned(void)
{
	char kid[600], vb[64];
	struct blobk k;
	json_t *j;

	ASSERT_EQ(key_create("k2", kid, sizeof(kid)), 0);
	ASSERT_EQ(customer_add("c2", kid,
	    "--label region=eu --label key_mode=pinned"), 0);
	ASSERT_EQ(dek_new("c2", &k), XTCMK_OK);
	ASSERT_EQ(blob_version(k.b, k.len, vb, sizeof(vb)), 0);
	ASSERT_STR(vb, kid_version(kid));
	ASSERT_EQ(ctl_ok("key rotate %sk2", VAULT), 0);
	sleep_ms(1600);		/* past refresh and a revocation check */
	ASSERT_EQ(dek_new("c2", &k), XTCMK_OK);
	ASSERT_EQ(blob_version(k.b, k.len, vb, sizeof(vb)), 0);
	ASSERT_STR(vb, kid_version(kid));
	ASSERT_EQ(unwrap_same("c2", &k), 0);
	j = ctl_json("key status c2");
	ASSERT_STR(json_string_value(json_object_get(j, "mode")), "pinned");
	ASSERT_STR(json_string_value(json_object_get(j, "current")),
	    kid_version(kid));
	json_decref(j);
}

/* --- 4. revocation and restore -------------------------------------- */

static void
test_revocation(void)
{
	char kid[600], state[32], reason[512];
	struct blobk k[3], n;
	long long before, after;
	double t0, took;
	json_t *j;
	int i, rc;

	ASSERT_EQ(key_create("k3", kid, sizeof(kid)), 0);
	ASSERT_EQ(customer_add("c3", VAULT "k3", "--label region=eu"), 0);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(dek_new("c3", &k[i]), XTCMK_OK);
	ASSERT_EQ(unwrap_same("c3", &k[0]), 0);
	ASSERT_EQ(xtcmk_key_status(h, "c3", state, sizeof(state), reason,
	    sizeof(reason)), XTCMK_OK);
	ASSERT_STR(state, "active");
	before = stat_of("keys.dek_cache.entries");
	ASSERT_INT(before, >=, 3);

	ASSERT_EQ(ctl_ok("key disable %sk3", VAULT), 0);
	t0 = now_s();
	while ((rc = unwrap_same("c3", &k[0])) == 0 && now_s() - t0 < 6.0)
		sleep_ms(20);
	took = now_s() - t0;
	printf("revocation: cached unwrap refused after %.2fs (%s)\n", took,
	    xtcmk_last_error());
	ASSERT_EQ(rc, XTCMK_E_REVOKED);
	ASSERT_TRUE(took < SLACK_S);
	ASSERT_CONTAINS(xtcmk_last_error(), "c3");
	ASSERT_EQ(unwrap_same("c3", &k[1]), XTCMK_E_REVOKED);
	ASSERT_EQ(dek_new("c3", &n), XTCMK_E_REVOKED);
	ASSERT_EQ(xtcmk_key_status(h, "c3", state, sizeof(state), reason,
	    sizeof(reason)), XTCMK_OK);
	ASSERT_STR(state, "revoked");
	ASSERT_INT(strlen(reason), >, 10);
	printf("revocation: reason: %s\n", reason);

	/* The customer's cached DEKs were wiped (xtcmkctl's view). */
	j = ctl_json("stats");
	after = jint(j, "keys.dek_cache.entries");
	json_decref(j);
	ASSERT_INT(after, >=, 0);
	ASSERT_INT(after, <=, before - 3);
	ASSERT_INT(stat_of("keys.revoked"), >=, 1);
	/* Other customers are unaffected. */
	ASSERT_EQ(unwrap_same("c1", &rt[2]), 0);

	ASSERT_EQ(ctl_ok("key enable %sk3", VAULT), 0);
	t0 = now_s();
	while ((rc = unwrap_same("c3", &k[0])) != 0 && now_s() - t0 < 6.0)
		sleep_ms(20);
	took = now_s() - t0;
	printf("revocation: service restored after %.2fs\n", took);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_TRUE(took < SLACK_S);
	ASSERT_EQ(unwrap_same("c3", &k[2]), 0);
	ASSERT_EQ(dek_new("c3", &n), XTCMK_OK);
	ASSERT_EQ(xtcmk_key_status(h, "c3", state, sizeof(state), reason,
	    sizeof(reason)), XTCMK_OK);
	ASSERT_STR(state, "active");
	ASSERT_EQ(stat_of("keys.revoked"), 0);
}

/* --- 5. the DEK cache ----------------------------------------------- */

static void
test_cache(void)
{
	char kid[600];
	struct blobk k;
	long long hits, unw, hits2, unw2;

	ASSERT_EQ(key_create("k4", kid, sizeof(kid)), 0);
	ASSERT_EQ(customer_add("c4", VAULT "k4",
	    "--label region=eu --label cache_ttl=1"), 0);
	ASSERT_EQ(dek_new("c4", &k), XTCMK_OK);
	hits = stat_of("keys.dek_cache.hits");
	unw = stat_of("keys.provider_calls.unwrap");
	ASSERT_EQ(unwrap_same("c4", &k), 0);
	ASSERT_EQ(unwrap_same("c4", &k), 0);
	hits2 = stat_of("keys.dek_cache.hits");
	unw2 = stat_of("keys.provider_calls.unwrap");
	ASSERT_INT(hits2, >=, hits + 2);
	ASSERT_EQ(unw2, unw);

	/* Lifetime 1 s: after 2 s the key service is asked again. */
	sleep_ms(2100);
	ASSERT_EQ(unwrap_same("c4", &k), 0);
	ASSERT_EQ(stat_of("keys.provider_calls.unwrap"), unw2 + 1);
	ASSERT_INT(stat_of("keys.dek_cache.expired") +
	    stat_of("keys.dek_cache.misses"), >=, 1);
	/* ... and it is cached again. */
	ASSERT_EQ(unwrap_same("c4", &k), 0);
	ASSERT_EQ(stat_of("keys.provider_calls.unwrap"), unw2 + 1);
}

/* --- 7. bad blobs --------------------------------------------------- */

static int
unwrap_code(const char *customer, const uint8_t *b, size_t len)
{
	uint8_t dek[XTCMK_DEK_LEN];

	return xtcmk_dek_unwrap(h, customer, b, len, dek);
}

static void
test_bad_blobs(void)
{
	const struct blobk *k = &rt[3];
	uint8_t b[XTCMK_BLOB_MAX];
	static const size_t flips[] = { 0, 3, 4, 5, 7, 8, 9, 12, 40, 100 };
	size_t i, n;
	int rc, bad = 0, nomsg = 0;

	/* Every truncation. */
	for (n = 1; n < k->len; n++) {
		rc = unwrap_code("c1", k->b, n);
		if (rc != XTCMK_E_BAD_BLOB) {
			if (bad++ < 5)
				fprintf(stderr, "truncated to %zu: %s: %s\n",
				    n, xtcmk_strerror(rc), xtcmk_last_error());
		} else if (xtcmk_last_error()[0] == '\0')
			nomsg++;
	}
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(nomsg, 0);
	ASSERT_EQ(unwrap_code("c1", k->b, 0), XTCMK_E_INVAL);
	ASSERT_EQ(unwrap_code("c1", k->b, k->len - 1), XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(xtcmk_last_error(), "truncated");
	/* One byte more than the blob. */
	memcpy(b, k->b, k->len);
	b[k->len] = 0;
	ASSERT_EQ(unwrap_code("c1", b, k->len + 1), XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(xtcmk_last_error(), "trailing");

	/* One bit flipped anywhere: header, lengths, ids, key, checksum. */
	for (i = 0; i < sizeof(flips) / sizeof(flips[0]) + 3; i++) {
		size_t pos = i < sizeof(flips) / sizeof(flips[0]) ? flips[i] :
		    k->len - 1 - (i - sizeof(flips) / sizeof(flips[0])) * 10;

		if (pos >= k->len)
			continue;
		memcpy(b, k->b, k->len);
		b[pos] ^= 0x01;
		rc = unwrap_code("c1", b, k->len);
		if (rc != XTCMK_E_BAD_BLOB)
			fprintf(stderr, "flip at %zu: %s: %s\n", pos,
			    xtcmk_strerror(rc), xtcmk_last_error());
		ASSERT_EQ(rc, XTCMK_E_BAD_BLOB);
		ASSERT_INT(strlen(xtcmk_last_error()), >, 0);
	}
	memcpy(b, k->b, k->len);
	b[k->len - 3] ^= 0x80;
	ASSERT_EQ(unwrap_code("c1", b, k->len), XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(xtcmk_last_error(), "checksum");

	/* A blob of c1 handed in for c2. */
	ASSERT_EQ(unwrap_code("c2", k->b, k->len), XTCMK_E_WRONG_CUSTOMER);
	ASSERT_CONTAINS(xtcmk_last_error(), "c1");
	n = XTCMK_BLOB_MAX;
	ASSERT_EQ(xtcmk_dek_rewrap(h, "c2", k->b, k->len, b, &n),
	    XTCMK_E_WRONG_CUSTOMER);

	/* A format from the future. */
	memcpy(b, k->b, k->len);
	b[4] = 3;
	ASSERT_EQ(unwrap_code("c1", b, k->len), XTCMK_E_UNSUPPORTED);
	ASSERT_CONTAINS(xtcmk_last_error(), "upgrade");
	b[4] = 0xff;
	ASSERT_EQ(unwrap_code("c1", b, k->len), XTCMK_E_UNSUPPORTED);

	/* Garbage. */
	for (i = 0; i < 300; i++)
		b[i] = (uint8_t)(i * 131 + 7);
	ASSERT_EQ(unwrap_code("c1", b, 300), XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(xtcmk_last_error(), "magic");
	memset(b, 0, 64);
	ASSERT_EQ(unwrap_code("c1", b, 64), XTCMK_E_BAD_BLOB);
	ASSERT_EQ(unwrap_code("c1", b, XTCMK_BLOB_MAX + 1), XTCMK_E_INVAL);

	/* The agent is still up and serving. */
	ASSERT_EQ(unwrap_same("c1", k), 0);
	ASSERT_TRUE(ag.pid > 0 && kill(ag.pid, 0) == 0);
}

/* --- 9. customers this host does not serve -------------------------- */

static void
test_not_served(void)
{
	char kid[600];
	struct blobk k;

	ASSERT_EQ(ctl_ok("workload add wl-us-1 --client-id "
	    "44444444-4444-4444-4444-444444444444 --principal-id "
	    "55555555-5555-5555-5555-555555555555 --label region=us"), 0);
	ASSERT_EQ(key_create("k9", kid, sizeof(kid)), 0);
	ASSERT_EQ(customer_add("c9", VAULT "k9", "--label region=us"), 0);
	ASSERT_EQ(dek_new("c9", &k), XTCMK_E_NOT_SERVED);
	ASSERT_CONTAINS(xtcmk_last_error(), "wl-eu-1");
	ASSERT_CONTAINS(xtcmk_last_error(), "xtcmkctl app fic add");
	/* Refused before the blob is even looked at. */
	ASSERT_EQ(unwrap_code("c9", rt[4].b, rt[4].len), XTCMK_E_NOT_SERVED);
	ASSERT_CONTAINS(xtcmk_last_error(), "xtcmk-us-1");
}

/* --- 8. restarts ---------------------------------------------------- */

static long long
unwraps_of(const char *customer, const char *version)
{
	json_t *j = ctl_json("key status %s", customer), *row;
	long long n = -1;
	size_t i;

	json_array_foreach(json_object_get(j, "versions"), i, row)
		if (strcmp(json_string_value(json_object_get(row, "version")),
		    version) == 0)
			n = jint(row, "unwraps");
	json_decref(j);
	return n;
}

static double restarted_at;

static int
restart(int sig)
{
	int st;

	xtcmk_close(h);
	h = NULL;
	st = agent_stop_sig(&ag, sig);
	if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		fprintf(stderr, "agent exit status %#x after SIGTERM\n", st);
	if (agent_start(&ag) == -1)
		return -1;
	restarted_at = now_s();
	return xtcmk_open(ag.sock, 5000, &h) == XTCMK_OK ? 0 : -1;
}

/*
 * Keys and versions live in the state dir; usage counts reach the registry
 * every USAGE_FLUSH_S (5 s, counted from the agent's start) and at a clean
 * shutdown.
 */
static void
test_restart(void)
{
	char v0[64];
	long long u0, u1;
	double since;
	int i;

	ASSERT_EQ(blob_version(rt[5].b, rt[5].len, v0, sizeof(v0)), 0);
	u0 = unwraps_of("c1", v0);	/* flushes what was counted */
	ASSERT_INT(u0, >=, ROUND_TRIPS);

	/* A crash loses at most what was not flushed yet. */
	for (i = 0; i < 5; i++)
		ASSERT_EQ(unwrap_same("c1", &rt[5]), 0);
	sleep_ms(6000);
	ASSERT_EQ(restart(SIGKILL), 0);
	ASSERT_EQ(unwrap_same("c1", &rt[6]), 0);	/* old version */
	ASSERT_EQ(unwrap_same("c2", &rt[6]), XTCMK_E_WRONG_CUSTOMER);
	u1 = unwraps_of("c1", v0);
	ASSERT_EQ(u1, u0 + 6);

	/*
	 * A clean shutdown flushes.  The agent started under 4 s ago, so no
	 * periodic flush can have counted these unwraps before SIGTERM.
	 */
	for (i = 0; i < 5; i++)
		ASSERT_EQ(unwrap_same("c1", &rt[7]), 0);
	since = now_s() - restarted_at;
	ASSERT_EQ(restart(SIGTERM), 0);
	if (since > 3.5)
		printf("restart: SIGTERM %.1fs after start: a periodic flush "
		    "may have counted the unwraps\n", since);
	ASSERT_EQ(unwrap_same("c1", &rt[8]), 0);
	/* Fails while agent/main.c ends with _exit(0) after SIGTERM
	 * without service_close(): keys_close() never flushes. */
	ASSERT_EQ(unwraps_of("c1", v0), u1 + 6);
	ASSERT_EQ(unwrap_same("c1", &rt[9]), 0);
}

/*
 * One old version disabled while the key serves: its blobs fail closed
 * within revocation_check, cached or not, and key status says so.  The
 * cache_ttl (600 s) is far longer than the test, so only a check of that
 * very version can wipe its cached DEK.
 */
static void
test_version_revocation(void)
{
	char kid[600], v1[64], v2[64], vb[64], state[32], reason[512];
	struct blobk a, b, n;
	double t0, took;
	json_t *j;
	int rc;

	ASSERT_EQ(key_create("k7", kid, sizeof(kid)), 0);
	snprintf(v1, sizeof(v1), "%s", kid_version(kid));
	ASSERT_EQ(customer_add("c7", VAULT "k7",
	    "--label region=eu --label cache_ttl=600"), 0);
	ASSERT_EQ(dek_new("c7", &a), XTCMK_OK);
	ASSERT_EQ(dek_new("c7", &b), XTCMK_OK);
	/* A fresh cache: then only a's DEK is cached again. */
	ASSERT_EQ(restart(SIGTERM), 0);
	ASSERT_EQ(unwrap_same("c7", &a), 0);
	j = ctl_json("key rotate %sk7", VAULT);
	snprintf(v2, sizeof(v2), "%s", kid_version(json_string_value(
	    json_object_get(j, "kid"))));
	json_decref(j);
	t0 = now_s();
	vb[0] = '\0';
	while (now_s() - t0 < 5.0 && dek_new("c7", &n) == XTCMK_OK &&
	    blob_version(n.b, n.len, vb, sizeof(vb)) == 0 &&
	    strcmp(vb, v2) != 0)
		sleep_ms(50);
	ASSERT_STR(vb, v2);
	ASSERT_EQ(unwrap_same("c7", &a), 0);	/* still from the cache */

	ASSERT_EQ(ctl_ok("key disable %sk7/%s", VAULT, v1), 0);
	t0 = now_s();
	while ((rc = unwrap_same("c7", &a)) == 0 && now_s() - t0 < 8.0)
		sleep_ms(20);
	took = now_s() - t0;
	printf("version revocation: cached blob of the disabled version "
	    "refused after %.2fs (%s)\n", took, xtcmk_last_error());
	ASSERT_EQ(rc, XTCMK_E_REVOKED);
	ASSERT_TRUE(took < SLACK_S);
	ASSERT_CONTAINS(xtcmk_last_error(), v1);
	ASSERT_EQ(unwrap_same("c7", &b), XTCMK_E_REVOKED);	/* uncached */
	ASSERT_INT(stat_of("keys.versions.revocations"), >=, 1);
	/* The version in force keeps serving. */
	ASSERT_EQ(dek_new("c7", &n), XTCMK_OK);
	ASSERT_EQ(unwrap_same("c7", &n), 0);
	ASSERT_EQ(xtcmk_key_status(h, "c7", state, sizeof(state), reason,
	    sizeof(reason)), XTCMK_OK);
	ASSERT_STR(state, "active");
	ASSERT_CONTAINS(reason, v1);
	j = ctl_json("key status c7");
	ASSERT_TRUE(json_object_get(json_object_get(j, "disabled_versions"),
	    v1) != NULL);
	ASSERT_TRUE(json_object_get(json_object_get(j, "disabled_versions"),
	    v2) == NULL);
	json_decref(j);

	/* Enabled again: its blobs unwrap again, no restart. */
	ASSERT_EQ(ctl_ok("key enable %sk7/%s", VAULT, v1), 0);
	t0 = now_s();
	while ((rc = unwrap_same("c7", &a)) != 0 && now_s() - t0 < 6.0)
		sleep_ms(20);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_TRUE(now_s() - t0 < SLACK_S);
	ASSERT_EQ(unwrap_same("c7", &b), 0);
}

/* --- 6. single flight ----------------------------------------------- */

struct flight {
	pthread_barrier_t	*bar;
	const struct blobk	*k;
	struct xtcmk		*h;
	int			 rc;
	int			 same;
	pthread_t		 t;
};

static void *
flight_main(void *arg)
{
	struct flight *f = arg;
	uint8_t dek[XTCMK_DEK_LEN];

	pthread_barrier_wait(f->bar);
	f->rc = xtcmk_dek_unwrap(f->h, "c5", f->k->b, f->k->len, dek);
	f->same = f->rc == 0 && memcmp(dek, f->k->dek, sizeof(dek)) == 0;
	return NULL;
}

static struct blobk cold;

static void
test_single_flight_prepare(void)
{
	char kid[600];

	ASSERT_EQ(key_create("k5", kid, sizeof(kid)), 0);
	ASSERT_EQ(customer_add("c5", VAULT "k5", "--label region=eu"), 0);
	ASSERT_EQ(dek_new("c5", &cold), XTCMK_OK);
}

/* Run after a restart: `cold` is in no cache. */
static void
test_single_flight(void)
{
	struct flight f[FLIGHT_THREADS];
	pthread_barrier_t bar;
	char state[32];
	long long u0, u1, loads0;
	int i, ok = 0, same = 0, started = 0;

	pthread_barrier_init(&bar, NULL, FLIGHT_THREADS);
	for (i = 0; i < FLIGHT_THREADS; i++) {
		f[i] = (struct flight){ .bar = &bar, .k = &cold };
		/* Connected beforehand, so the unwraps arrive together. */
		if (xtcmk_open(ag.sock, 10000, &f[i].h) != XTCMK_OK ||
		    xtcmk_key_status(f[i].h, "c5", state, sizeof(state), NULL,
		    0) != XTCMK_OK) {
			T_FAIL("handle %d: %s", i, xtcmk_last_error());
			return;
		}
	}
	u0 = stat_of("keys.provider_calls.unwrap");
	loads0 = stat_of("keys.dek_cache.loads");
	ASSERT_INT(u0, >=, 0);
	for (i = 0; i < FLIGHT_THREADS; i++)
		if (pthread_create(&f[i].t, NULL, flight_main, &f[i]) == 0)
			started++;
	ASSERT_EQ(started, FLIGHT_THREADS);
	for (i = 0; i < started; i++) {
		pthread_join(f[i].t, NULL);
		ok += f[i].rc == XTCMK_OK;
		same += f[i].same;
	}
	for (i = 0; i < FLIGHT_THREADS; i++)
		xtcmk_close(f[i].h);
	pthread_barrier_destroy(&bar);
	u1 = stat_of("keys.provider_calls.unwrap");
	printf("single flight: %d cold unwraps, %lld key service calls\n",
	    ok, u1 - u0);
	ASSERT_EQ(ok, FLIGHT_THREADS);
	ASSERT_EQ(same, FLIGHT_THREADS);
	ASSERT_EQ(u1 - u0, 1);
	ASSERT_EQ(stat_of("keys.dek_cache.loads") - loads0, 1);
}

/*
 * After each part: the agent must still be running.  If it died, say how
 * and show the end of its log: the remaining parts cannot run.
 */
static int
alive(const char *after)
{
	char cmd[700];
	int st = 0;

	if (ag.pid > 0 && waitpid(ag.pid, &st, WNOHANG) == 0)
		return 1;
	T_FAIL("the agent died during %s (status %#x); its log:", after, st);
	ag.pid = 0;
	snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", ag.log);
	(void)!system(cmd);
	return 0;
}

int
main(void)
{
	char kid[600];
	double t0 = now_s();

	if (setup_agent() == -1 || agent_start(&ag) == -1) {
		fprintf(stderr, "cannot start the agent (see %s)\n", ag.log);
		ASSERT_TRUE(0);
		agent_cleanup(&ag);
		return t_done();
	}
	ASSERT_EQ(xtcmk_open(ag.sock, 5000, &h), XTCMK_OK);
	ASSERT_EQ(ctl_ok("workload add wl-eu-1 --client-id "
	    "11111111-1111-1111-1111-111111111111 --principal-id "
	    "22222222-2222-2222-2222-222222222222 --label region=eu"), 0);
	ASSERT_EQ(key_create("k1", kid, sizeof(kid)), 0);
	ASSERT_EQ(customer_add("c1", VAULT "k1", "--label region=eu"), 0);

	if (t_failures == 0) {
		test_round_trips();
		if (alive("round trips"))
			test_rotation();
		if (alive("rotation"))
			test_pinned();
		if (alive("pinned versions"))
			test_revocation();
		if (alive("revocation"))
			test_cache();
		if (alive("the cache test"))
			test_bad_blobs();
		if (alive("bad blobs"))
			test_not_served();
		if (alive("not served"))
			test_single_flight_prepare();
		if (alive("single flight setup"))
			test_restart();
		if (alive("restarts"))
			test_version_revocation();
		if (alive("version revocation"))
			test_single_flight();
		(void)alive("single flight");
	}
	xtcmk_close(h);
	printf("keys: %.1fs\n", now_s() - t0);
	if (t_failures != 0)
		fprintf(stderr, "agent log: %s (set XTCMK_KEEP=1 to keep it)\n",
		    ag.log);
	agent_cleanup(&ag);
	return t_done();
}
