/*
 * test_api11.c - libxtcmk API 1.1 against a real xtcmkd: the versioned
 * function table and symbol node, ping, the data-key calls with runtime
 * lengths and key ids, TOOBIG refused before any agent-side work (the
 * agent's provider and cache counters do not move) with the size needed,
 * the key-state enum, the retryable set, per-handle and per-thread
 * errors, a per-call deadline, and xtcmk_close while other threads are
 * inside calls.
 */
#include <sys/types.h>

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "harness.h"
#include "t.h"
#include "wire.h"
#include "xtcmk.h"

#define OUT_MAX		65536
#define CUSTOMER	"api11-1"
#define CUSTOMER2	"api11-2"
#define KEY_URI		"https://demo.vault.local/keys/api11"
#define KEY_URI2	"https://demo.vault.local/keys/api11b"
#define TENANT		"77777777-7777-4777-8777-777777777777"
#define DEADLINE_MS	200
#define SLACK_MS	150
#define BUSY_THREADS	4

static struct agent A;
static struct xtcmk *h;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
ctl_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
ctl_ok(const char *fmt, ...)
{
	char args[1024], out[OUT_MAX];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if ((rc = ctl(&A, out, sizeof(out), "%s", args)) != 0)
		fprintf(stderr, "xtcmkctl %s: exit %d: %s\n", args, rc, out);
	return rc;
}

/* A counter from `xtcmkctl --json stats`: path like "keys.provider_calls.wrap". */
static long long
stat_of(const char *path)
{
	char out[OUT_MAX], key[64];
	const char *p = path, *dot;
	json_t *j, *v;
	long long r = -1;

	if (ctl(&A, out, sizeof(out), "--json stats") != 0 ||
	    (j = json_loads(out, 0, NULL)) == NULL)
		return -1;
	v = j;
	while (v != NULL && *p != '\0') {
		dot = strchr(p, '.');
		snprintf(key, sizeof(key), "%.*s", dot != NULL ?
		    (int)(dot - p) : (int)strlen(p), p);
		v = json_object_get(v, key);
		p = dot != NULL ? dot + 1 : p + strlen(p);
	}
	if (json_is_integer(v))
		r = json_integer_value(v);
	json_decref(j);
	return r;
}

static int
setup(void)
{
	if (agent_init(&A, "wl-eu-1", "[params]\nrevocation_check = 1\n"
	    "refresh = 1\n") == -1)
		return -1;
	A.die_with_test = 1;
	if (agent_start(&A) == -1)
		return -1;
	if (ctl_ok("workload add wl-eu-1 --client-id "
	    "11111111-1111-4111-8111-111111111111 --principal-id "
	    "22222222-2222-4222-8222-222222222222 --label region=eu") != 0 ||
	    ctl_ok("key create %s", KEY_URI) != 0 ||
	    ctl_ok("key create %s", KEY_URI2) != 0 ||
	    ctl_ok("customer add %s --tenant %s --key-uri %s --label "
	    "region=eu", CUSTOMER, TENANT, KEY_URI) != 0 ||
	    ctl_ok("customer add %s --tenant %s --key-uri %s --label "
	    "region=eu", CUSTOMER2, TENANT, KEY_URI2) != 0)
		return -1;
	return xtcmk_open(A.sock, 5000, &h) == XTCMK_OK ? 0 : -1;
}

/* --- the function table and the symbol node ------------------------- */

static void
test_table(void)
{
	const struct xtcmk_functions *t10, *t11, *t0;
	char path[512];
	void *lib;

	t10 = xtcmk_get_functions_v(XTCMK_API_1_0);
	t11 = xtcmk_get_functions_v(XTCMK_API_1_1);
	t0 = xtcmk_get_functions_v(0);
	ASSERT_TRUE(t10 != NULL && t11 != NULL && t0 == t11);
	ASSERT_TRUE(xtcmk_get_functions() == t11);
	ASSERT_TRUE(xtcmk_get_functions_v(0x00010002u) == NULL);
	ASSERT_TRUE(xtcmk_get_functions_v(0x00020000u) == NULL);
	ASSERT_EQ(t10->api_version, XTCMK_API_VERSION);
	ASSERT_EQ(t11->api_version, XTCMK_API_VERSION);
	/* 1.0: exactly the 1.0 fields; 1.1: the whole table. */
	ASSERT_EQ(t10->size, offsetof(struct xtcmk_functions, is_retryable));
	ASSERT_EQ(t11->size, sizeof(struct xtcmk_functions));
	ASSERT_TRUE(XTCMK_HAS_FN(t10, key_status));
	ASSERT_TRUE(!XTCMK_HAS_FN(t10, is_retryable));
	ASSERT_TRUE(XTCMK_HAS_FN(t11, key_state));
	ASSERT_TRUE(t11->dek_new2 == xtcmk_dek_new2);
	ASSERT_TRUE(t11->key_state == xtcmk_key_state);
	ASSERT_TRUE(t10->dek_new == xtcmk_dek_new);

	/* 1.0 symbols keep their node; 1.1 ones are in XTCMK_1.1. */
	snprintf(path, sizeof(path), "%s/module/libxtcmk.so", h_builddir());
	ASSERT_TRUE((lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)) != NULL);
	if (lib == NULL)
		return;
	ASSERT_TRUE(dlvsym(lib, "xtcmk_dek_new", "XTCMK_1") != NULL);
	ASSERT_TRUE(dlvsym(lib, "xtcmk_get_functions", "XTCMK_1") != NULL);
	ASSERT_TRUE(dlvsym(lib, "xtcmk_dek_new2", "XTCMK_1.1") != NULL);
	ASSERT_TRUE(dlvsym(lib, "xtcmk_get_functions_v", "XTCMK_1.1") !=
	    NULL);
	ASSERT_TRUE(dlvsym(lib, "xtcmk_ping", "XTCMK_1.1") != NULL);
	ASSERT_TRUE(dlvsym(lib, "xtcmk_dek_new2", "XTCMK_1") == NULL);
	dlclose(lib);
}

/* --- ping, retryable ------------------------------------------------ */

static void
test_ping(void)
{
	char agent[XTCMK_AGENT_MAX + 1], tiny[4];
	long long p0, p1;

	p0 = stat_of("requests.ping");
	ASSERT_EQ(xtcmk_ping(h, NULL, agent, sizeof(agent)), XTCMK_OK);
	ASSERT_TRUE(strncmp(agent, "xtcmkd ", 7) == 0);
	ASSERT_EQ(xtcmk_ping(h, NULL, tiny, sizeof(tiny)), XTCMK_OK);
	ASSERT_STR(tiny, "xtc");
	ASSERT_EQ(xtcmk_ping(h, NULL, NULL, 0), XTCMK_OK);
	p1 = stat_of("requests.ping");
	printf("ping: %s; agent counted %lld pings\n", agent, p1 - p0);
	ASSERT_EQ(p1 - p0, 3);
}

static void
test_retryable(void)
{
	int c, n = 0;

	for (c = 0; c < XTCMK__RESULT_COUNT; c++)
		n += xtcmk_is_retryable(c);
	ASSERT_EQ(n, 4);
	ASSERT_EQ(xtcmk_is_retryable(XTCMK_E_UNAVAILABLE), 1);
	ASSERT_EQ(xtcmk_is_retryable(XTCMK_E_TIMEOUT), 1);
	ASSERT_EQ(xtcmk_is_retryable(XTCMK_E_BUSY), 1);
	ASSERT_EQ(xtcmk_is_retryable(XTCMK_E_UNCONFIRMED), 1);
	ASSERT_EQ(xtcmk_is_retryable(XTCMK_E_REVOKED), 0);
	ASSERT_EQ(xtcmk_is_retryable(XTCMK_OK), 0);
	ASSERT_EQ(xtcmk_is_retryable(-1), 0);
	ASSERT_TRUE(strcmp(xtcmk_strerror(XTCMK_E_UNCONFIRMED),
	    "unknown error") != 0);
}

/* --- data keys ------------------------------------------------------- */

static void
test_dek(void)
{
	uint8_t dek[XTCMK_DEK_MAX], dek2[XTCMK_DEK_MAX];
	uint8_t blob[XTCMK_BLOB_MAX], blob2[XTCMK_BLOB_MAX];
	char kid[XTCMK_KEY_ID_MAX + 1], kid2[XTCMK_KEY_ID_MAX + 1];
	size_t dlen = sizeof(dek), blen = sizeof(blob), dlen2, blen2;

	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER, NULL, dek, &dlen, blob, &blen,
	    kid, sizeof(kid)), XTCMK_OK);
	ASSERT_EQ(dlen, XTCMK_DEK_LEN);
	ASSERT_TRUE(blen > 0 && blen <= XTCMK_BLOB_MAX);
	ASSERT_TRUE(strncmp(kid, KEY_URI "/", strlen(KEY_URI) + 1) == 0);
	printf("dek_new2: %zu-byte key, %zu-byte blob, key id %s\n", dlen,
	    blen, kid);

	dlen2 = sizeof(dek2);
	ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, blob, blen, dek2,
	    &dlen2), XTCMK_OK);
	ASSERT_EQ(dlen2, dlen);
	ASSERT_TRUE(memcmp(dek, dek2, dlen) == 0);
	/* Too small a key buffer: the length needed. */
	dlen2 = 16;
	ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, blob, blen, dek2,
	    &dlen2), XTCMK_E_TOOBIG);
	ASSERT_EQ(dlen2, XTCMK_DEK_LEN);

	blen2 = sizeof(blob2);
	ASSERT_EQ(xtcmk_dek_rewrap2(h, CUSTOMER, NULL, blob, blen, blob2,
	    &blen2, kid2, sizeof(kid2)), XTCMK_OK);
	ASSERT_STR(kid2, kid);
	dlen2 = sizeof(dek2);
	ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, blob2, blen2, dek2,
	    &dlen2), XTCMK_OK);
	ASSERT_TRUE(memcmp(dek, dek2, dlen) == 0);

	/* key_id too short to hold any key id: refused up front. */
	dlen = sizeof(dek);
	blen = sizeof(blob);
	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER, NULL, dek, &dlen, blob, &blen,
	    kid, 16), XTCMK_E_INVAL);
	explicit_bzero(dek, sizeof(dek));
	explicit_bzero(dek2, sizeof(dek2));
}

/* Agent-side work counters that a refused request must not move. */
struct work {
	long long wrap, unwrap, loads, entries;
};

static void
work_now(struct work *w)
{
	w->wrap = stat_of("keys.provider_calls.wrap");
	w->unwrap = stat_of("keys.provider_calls.unwrap");
	w->loads = stat_of("keys.dek_cache.loads");
	w->entries = stat_of("keys.dek_cache.entries");
}

static void
test_toobig(void)
{
	uint8_t dek[XTCMK_DEK_MAX], blob[XTCMK_BLOB_MAX], nb[XTCMK_BLOB_MAX];
	size_t dlen, blen, need, full, nlen;
	struct work w0, w1;
	int rc, tries;

	/* A customer no blob was made for yet: the least size. */
	work_now(&w0);
	dlen = sizeof(dek);
	blen = 10;
	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER2, NULL, dek, &dlen, blob, &blen,
	    NULL, 0), XTCMK_E_TOOBIG);
	need = blen;
	ASSERT_CONTAINS(xtcmk_last_error(), "no key was generated");
	work_now(&w1);
	printf("dek_new2 with a 10-byte blob buffer: TOOBIG, needs %s%zu "
	    "bytes (%s); provider wraps %lld -> %lld, cache entries %lld -> "
	    "%lld\n", "at least ", need, xtcmk_last_error(), w0.wrap, w1.wrap,
	    w0.entries, w1.entries);
	ASSERT_TRUE(need > 10 && need <= XTCMK_BLOB_MAX);
	ASSERT_EQ(w1.wrap, w0.wrap);
	ASSERT_EQ(w1.entries, w0.entries);
	ASSERT_TRUE(w0.wrap >= 0);

	/* Retrying with the size reported works (at most once more). */
	for (tries = 0, rc = -1; tries < 2 && rc != XTCMK_OK; tries++) {
		dlen = sizeof(dek);
		blen = need;
		rc = xtcmk_dek_new2(h, CUSTOMER2, NULL, dek, &dlen, blob,
		    &blen, NULL, 0);
		if (rc == XTCMK_E_TOOBIG)
			need = blen;
	}
	ASSERT_EQ(rc, XTCMK_OK);
	full = blen;
	work_now(&w1);
	ASSERT_EQ(w1.wrap, w0.wrap + 1);

	/* Now the size is exact, and the 1.0 call is refused the same way
	 * (before any work) but leaves *blob_len alone. */
	work_now(&w0);
	dlen = sizeof(dek);
	blen = full - 1;
	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER2, NULL, dek, &dlen, blob, &blen,
	    NULL, 0), XTCMK_E_TOOBIG);
	ASSERT_EQ(blen, full);
	blen = 10;
	ASSERT_EQ(xtcmk_dek_new(h, CUSTOMER2, dek, blob, &blen),
	    XTCMK_E_TOOBIG);
	ASSERT_EQ(blen, 10);
	/* Rewrap: refused before the blob is unwrapped. */
	nlen = 10;
	ASSERT_EQ(xtcmk_dek_rewrap2(h, CUSTOMER2, NULL, blob, full, nb, &nlen,
	    NULL, 0), XTCMK_E_TOOBIG);
	ASSERT_EQ(nlen, full);
	work_now(&w1);
	printf("exact size %zu; three refusals: provider wraps %lld -> %lld, "
	    "unwraps %lld -> %lld, cache loads %lld -> %lld\n", full,
	    w0.wrap, w1.wrap, w0.unwrap, w1.unwrap, w0.loads, w1.loads);
	ASSERT_EQ(w1.wrap, w0.wrap);
	ASSERT_EQ(w1.unwrap, w0.unwrap);
	ASSERT_EQ(w1.loads, w0.loads);
	ASSERT_EQ(w1.entries, w0.entries);
	explicit_bzero(dek, sizeof(dek));
}

/* --- data keys of 16..64 bytes ---------------------------------------- */

/*
 * DEK_NEW straight on the wire with XT_DEK_LEN = `len`: the agent's own
 * check, whatever a client library lets through.  The status; the
 * agent's message in msg.
 */
static int
raw_dek_new(uint64_t len, char *msg, size_t msglen)
{
	struct xc_conn c;
	struct xw_buf b;
	uint8_t req[256], *reply = NULL;
	char err[256];
	size_t rlen = 0;
	uint16_t status = 0;
	int rc;

	msg[0] = '\0';
	if (xc_connect(A.sock, xc_deadline(5000), err, sizeof(err), &c) < 0)
		return -1;
	xw_buf_init(&b, req, sizeof(req));
	xw_put_str(&b, XT_CUSTOMER, CUSTOMER);
	xw_put_u64(&b, XT_DEK_LEN, len);
	rc = xc_request(&c, XW_DEK_NEW, b.data, b.len, XW_PAYLOAD_MAX,
	    xc_deadline(5000), err, sizeof(err), &status, &reply, &rlen);
	if (rc == 0)
		xc_reply_message(reply, rlen, msg, msglen);
	if (reply != NULL) {
		explicit_bzero(reply, rlen);
		free(reply);
	}
	xc_close(&c);
	return rc < 0 ? -1 : status;
}

/*
 * New DEKs of 16, 24, 48 and 64 bytes through new, unwrap and rewrap on
 * the real agent: format v2 blobs recording the length; the new key and
 * the rewrap go through the provider's wrap; unwraps are agent cache hits
 * until a restart empties the cache, then the provider's unwrap (a load
 * each) gives back the same bytes.  15 and 65 are refused with a message
 * by the library and by the agent, before any work; the 1.0 calls still
 * make 32-byte keys in v1 blobs; a blob's key too long for the room is
 * refused before it is unwrapped, with the length needed.
 */
static void
test_dek_lengths(void)
{
	static const size_t lens[] = { 16, 24, 48, 64 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	struct xtcmk_opts o = { .size = sizeof(o) };
	uint8_t dek[N][XTCMK_DEK_MAX], got[XTCMK_DEK_MAX];
	uint8_t blob[N][XTCMK_BLOB_MAX], nb[N][XTCMK_BLOB_MAX];
	uint8_t b32[XTCMK_BLOB_MAX], d32[XTCMK_DEK_LEN];
	size_t blen[N], nblen[N], dlen, l32, i;
	long long hits0;
	struct work w0, w1;
	char msg[512];

	for (i = 0; i < N; i++) {
		work_now(&w0);
		o.dek_len = (uint32_t)lens[i];
		dlen = sizeof(dek[i]);
		blen[i] = sizeof(blob[i]);
		ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER, &o, dek[i], &dlen,
		    blob[i], &blen[i], NULL, 0), XTCMK_OK);
		ASSERT_EQ(dlen, lens[i]);
		ASSERT_EQ(blob[i][4], 2);
		ASSERT_EQ(blob[i][8], lens[i]);
		hits0 = stat_of("keys.dek_cache.hits");
		dlen = sizeof(got);
		ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, blob[i],
		    blen[i], got, &dlen), XTCMK_OK);
		ASSERT_EQ(dlen, lens[i]);
		ASSERT_TRUE(memcmp(got, dek[i], lens[i]) == 0);
		nblen[i] = sizeof(nb[i]);
		ASSERT_EQ(xtcmk_dek_rewrap2(h, CUSTOMER, NULL, blob[i],
		    blen[i], nb[i], &nblen[i], NULL, 0), XTCMK_OK);
		ASSERT_EQ(nb[i][4], 2);
		ASSERT_EQ(nb[i][8], lens[i]);
		work_now(&w1);
		ASSERT_EQ(w1.wrap, w0.wrap + 2);	/* new, rewrap */
		ASSERT_EQ(w1.unwrap, w0.unwrap);	/* cache hits */
		ASSERT_INT(stat_of("keys.dek_cache.hits"), >=, hits0 + 2);
		printf("dek_new2 of %zu bytes: %zu-byte v2 blob; wraps %lld -> "
		    "%lld, provider unwraps %lld -> %lld\n", lens[i], blen[i],
		    w0.wrap, w1.wrap, w0.unwrap, w1.unwrap);
	}

	/* The agent restarted: no cache, every unwrap a provider unwrap. */
	ASSERT_EQ(agent_stop(&A), 0);
	ASSERT_EQ(agent_start(&A), 0);
	work_now(&w0);
	for (i = 0; i < N; i++) {
		dlen = sizeof(got);
		memset(got, 0, sizeof(got));
		ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, blob[i],
		    blen[i], got, &dlen), XTCMK_OK);
		ASSERT_EQ(dlen, lens[i]);
		ASSERT_TRUE(memcmp(got, dek[i], lens[i]) == 0);
		dlen = sizeof(got);
		memset(got, 0, sizeof(got));
		ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, nb[i],
		    nblen[i], got, &dlen), XTCMK_OK);
		ASSERT_EQ(dlen, lens[i]);
		ASSERT_TRUE(memcmp(got, dek[i], lens[i]) == 0);
	}
	work_now(&w1);
	printf("after a restart: %d unwraps of 16..64-byte blobs: provider "
	    "unwraps %lld -> %lld, cache loads %lld -> %lld\n", 2 * N,
	    w0.unwrap, w1.unwrap, w0.loads, w1.loads);
	ASSERT_EQ(w1.unwrap, w0.unwrap + 2 * N);
	ASSERT_EQ(w1.loads, w0.loads + 2 * N);

	/* Too little room for the blob's key: refused before unwrapping,
	 * with the length needed; the 1.0 call is refused the same way. */
	work_now(&w0);
	dlen = 32;
	ASSERT_EQ(xtcmk_dek_unwrap2(h, CUSTOMER, NULL, blob[3], blen[3],
	    got, &dlen), XTCMK_E_TOOBIG);
	ASSERT_EQ(dlen, 64);
	ASSERT_CONTAINS(xtcmk_last_error(), "64-byte");
	ASSERT_EQ(xtcmk_dek_unwrap(h, CUSTOMER, blob[2], blen[2], d32),
	    XTCMK_E_TOOBIG);
	/* ... and for a new key, before the agent is asked. */
	o.dek_len = 48;
	dlen = 47;
	l32 = sizeof(b32);
	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER, &o, got, &dlen, b32, &l32,
	    NULL, 0), XTCMK_E_TOOBIG);
	ASSERT_EQ(dlen, 48);
	/* Out of range: the library refuses ... */
	o.dek_len = 15;
	dlen = sizeof(got);
	l32 = sizeof(b32);
	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER, &o, got, &dlen, b32, &l32,
	    NULL, 0), XTCMK_E_INVAL);
	ASSERT_CONTAINS(xtcmk_last_error(), "16..64");
	o.dek_len = 65;
	ASSERT_EQ(xtcmk_dek_new2(h, CUSTOMER, &o, got, &dlen, b32, &l32,
	    NULL, 0), XTCMK_E_INVAL);
	/* ... and so does the agent, asked directly. */
	ASSERT_EQ(raw_dek_new(15, msg, sizeof(msg)), XTCMK_E_INVAL);
	ASSERT_CONTAINS(msg, "data key length 15 is not within 16-64");
	printf("agent, DEK_NEW of 15 bytes: %s\n", msg);
	ASSERT_EQ(raw_dek_new(65, msg, sizeof(msg)), XTCMK_E_INVAL);
	ASSERT_CONTAINS(msg, "data key length 65");
	work_now(&w1);
	ASSERT_EQ(w1.wrap, w0.wrap);
	ASSERT_EQ(w1.unwrap, w0.unwrap);
	ASSERT_EQ(w1.loads, w0.loads);
	ASSERT_EQ(w1.entries, w0.entries);

	/* The 1.0 call: 32 bytes in a v1 blob, as before. */
	l32 = sizeof(b32);
	ASSERT_EQ(xtcmk_dek_new(h, CUSTOMER, d32, b32, &l32), XTCMK_OK);
	ASSERT_TRUE(memcmp(b32, "XTCB\x01", 5) == 0);
	ASSERT_EQ(xtcmk_dek_unwrap(h, CUSTOMER, b32, l32, got), XTCMK_OK);
	ASSERT_TRUE(memcmp(got, d32, sizeof(d32)) == 0);
	explicit_bzero(dek, sizeof(dek));
	explicit_bzero(got, sizeof(got));
	explicit_bzero(d32, sizeof(d32));
}

/* --- key state, errors ----------------------------------------------- */

static void
test_key_state(void)
{
	enum xtcmk_key_state st = XTCMK_KEY_UNKNOWN;
	char reason[512], kid[XTCMK_KEY_ID_MAX + 1], state[16];
	uint8_t dek[XTCMK_DEK_MAX], blob[XTCMK_BLOB_MAX];
	size_t dlen = sizeof(dek), blen = sizeof(blob);
	double t0;
	int rc;

	ASSERT_EQ(xtcmk_key_state(h, CUSTOMER2, NULL, &st, reason,
	    sizeof(reason), kid, sizeof(kid)), XTCMK_OK);
	ASSERT_EQ(st, XTCMK_KEY_ACTIVE);
	ASSERT_TRUE(strncmp(kid, KEY_URI2 "/", strlen(KEY_URI2) + 1) == 0);
	ASSERT_TRUE(reason[0] != '\0');

	ASSERT_EQ(ctl_ok("key disable %s", KEY_URI2), 0);
	t0 = now_ms();
	do {
		usleep(100000);
		rc = xtcmk_key_state(h, CUSTOMER2, NULL, &st, reason,
		    sizeof(reason), NULL, 0);
	} while (rc == XTCMK_OK && st == XTCMK_KEY_ACTIVE &&
	    now_ms() - t0 < 5000);
	printf("key_state after disable: %d (%s) in %.0f ms\n", (int)st,
	    reason, now_ms() - t0);
	ASSERT_EQ(rc, XTCMK_OK);
	ASSERT_EQ(st, XTCMK_KEY_REVOKED);
	ASSERT_EQ(xtcmk_key_status(h, CUSTOMER2, state, sizeof(state), NULL,
	    0), XTCMK_OK);
	ASSERT_STR(state, "revoked");
	rc = xtcmk_dek_new2(h, CUSTOMER2, NULL, dek, &dlen, blob, &blen, NULL,
	    0);
	ASSERT_EQ(rc, XTCMK_E_REVOKED);
	ASSERT_EQ(xtcmk_is_retryable(rc), 0);
	ASSERT_EQ(ctl_ok("key enable %s", KEY_URI2), 0);

	/* Arguments. */
	ASSERT_EQ(xtcmk_key_state(h, CUSTOMER2, NULL, NULL, NULL, 0, NULL, 0),
	    XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_key_state(h, CUSTOMER2, NULL, &st, NULL, 0, kid, 8),
	    XTCMK_E_INVAL);
}

struct err_arg {
	int	code;
	char	msg[512];
};

static void *
other_thread(void *arg)
{
	struct err_arg *a = arg;

	/* The thread error is per thread; the handle's is shared. */
	a->code = xtcmk_handle_error(h, a->msg, sizeof(a->msg));
	if (xtcmk_last_error()[0] != '\0')
		a->code = -1;
	return NULL;
}

static void
test_errors(void)
{
	struct xtcmk_decision *d = NULL;
	struct err_arg a;
	pthread_t t;
	char msg[512];

	ASSERT_EQ(xtcmk_decide(h, "no-such-customer", &d), XTCMK_E_NOT_FOUND);
	ASSERT_TRUE(xtcmk_last_error()[0] != '\0');
	ASSERT_EQ(xtcmk_handle_error(h, msg, sizeof(msg)), XTCMK_E_NOT_FOUND);
	ASSERT_STR(msg, xtcmk_last_error());
	memset(&a, 0, sizeof(a));
	pthread_create(&t, NULL, other_thread, &a);
	pthread_join(t, NULL);
	ASSERT_EQ(a.code, XTCMK_E_NOT_FOUND);
	ASSERT_STR(a.msg, msg);

	/* A success clears both. */
	ASSERT_EQ(xtcmk_decide(h, CUSTOMER, &d), XTCMK_OK);
	xtcmk_decision_free(d);
	ASSERT_STR(xtcmk_last_error(), "");
	ASSERT_EQ(xtcmk_handle_error(h, msg, sizeof(msg)), 0);
	ASSERT_STR(msg, "");

	/* Refused before any request: still the handle's error. */
	ASSERT_EQ(xtcmk_decide(h, "", &d), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_handle_error(h, NULL, 0), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_ping(h, NULL, NULL, 0), XTCMK_OK);
	ASSERT_EQ(xtcmk_handle_error(h, NULL, 0), 0);
	ASSERT_EQ(xtcmk_handle_error(NULL, msg, sizeof(msg)), XTCMK_E_INVAL);
}

/* --- deadlines, close while busy -------------------------------------- */

static void
test_deadline(void)
{
	struct xtcmk_opts o = { .size = sizeof(o), .timeout_ms = DEADLINE_MS };
	struct xtcmk_opts bad = { .size = 0 };
	struct xtcmk_decision *d = NULL;
	double t0, el;
	int rc;

	ASSERT_EQ(xtcmk_decide2(h, CUSTOMER, &bad, &d), XTCMK_E_INVAL);
	ASSERT_EQ(xtcmk_decide2(h, CUSTOMER, &o, &d), XTCMK_OK);
	xtcmk_decision_free(d);
	d = NULL;

	kill(A.pid, SIGSTOP);
	usleep(50000);
	t0 = now_ms();
	rc = xtcmk_decide2(h, CUSTOMER, &o, &d);
	el = now_ms() - t0;
	kill(A.pid, SIGCONT);
	printf("agent stopped: decide2 with a %d ms deadline on a 5000 ms "
	    "handle: %s in %.0f ms\n", DEADLINE_MS, xtcmk_strerror(rc), el);
	ASSERT_EQ(rc, XTCMK_E_TIMEOUT);
	ASSERT_TRUE(el >= DEADLINE_MS - 5 && el < DEADLINE_MS + SLACK_MS);
	ASSERT_EQ(xtcmk_is_retryable(rc), 1);
	ASSERT_EQ(xtcmk_ping(h, &o, NULL, 0), XTCMK_OK);
}

struct busy_arg {
	struct xtcmk	*h;
	int		 rc;
	double		 ms;
};

static void *
busy_call(void *arg)
{
	struct xtcmk_opts o = { .size = sizeof(o), .timeout_ms = 1000 };
	struct busy_arg *b = arg;
	struct xtcmk_decision *d = NULL;
	double t0 = now_ms();

	b->rc = xtcmk_decide2(b->h, CUSTOMER, &o, &d);
	xtcmk_decision_free(d);
	b->ms = now_ms() - t0;
	return NULL;
}

static void
test_close_busy(void)
{
	struct busy_arg b[BUSY_THREADS];
	pthread_t t[BUSY_THREADS];
	struct xtcmk *h2;
	double t0, el;
	int i, timeouts = 0;

	ASSERT_EQ(xtcmk_open(A.sock, 5000, &h2), XTCMK_OK);
	ASSERT_EQ(xtcmk_ping(h2, NULL, NULL, 0), XTCMK_OK);
	kill(A.pid, SIGSTOP);
	usleep(50000);
	for (i = 0; i < BUSY_THREADS; i++) {
		b[i].h = h2;
		pthread_create(&t[i], NULL, busy_call, &b[i]);
	}
	usleep(200000);		/* every thread inside its call */
	t0 = now_ms();
	xtcmk_close(h2);	/* returns at once; the last call frees */
	el = now_ms() - t0;
	for (i = 0; i < BUSY_THREADS; i++) {
		pthread_join(t[i], NULL);
		timeouts += b[i].rc == XTCMK_E_TIMEOUT;
	}
	kill(A.pid, SIGCONT);
	printf("xtcmk_close with %d calls inside: returned in %.1f ms; the "
	    "calls ended %s after %.0f ms\n", BUSY_THREADS, el,
	    xtcmk_strerror(b[0].rc), b[0].ms);
	ASSERT_TRUE(el < 50);
	ASSERT_EQ(timeouts, BUSY_THREADS);
}

int
main(void)
{
	if (setup() == -1) {
		fprintf(stderr, "cannot set up the agent (see %s)\n", A.log);
		ASSERT_TRUE(0);
		agent_cleanup(&A);
		return t_done();
	}
	test_table();
	test_ping();
	test_retryable();
	test_dek();
	test_toobig();
	test_dek_lengths();
	test_key_state();
	test_errors();
	test_deadline();
	test_close_busy();
	xtcmk_close(h);
	agent_cleanup(&A);
	return t_done();
}
