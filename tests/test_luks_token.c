/*
 * test_luks_token.c - the "xtcmk" LUKS2 token codec (luks/token.c):
 * round trip with a blob from the agent's own encoder, strict base64,
 * every malformed field refused with its name, truncated blob headers,
 * the pinned passphrase derivation and the errno mapping.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "blob.h"
#include "t.h"
#include "token.h"

#define KID	"https://contoso-kv.vault.local/keys/cmk/" \
		"0123456789abcdef0123456789abcdef"

static const uint8_t dek[32] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

static struct token tok;
static char err[TOKEN_ERR_MAX];

/* A token holding a real blob of a `dek_len`-byte key, as the agent
 * makes them (format 1 for 32 bytes, else format 2). */
static void
make_token_len(size_t wrapped_len, size_t dek_len)
{
	uint8_t key[BLOB_DEK_MAX];
	struct blob b;
	struct xerr e = { 0 };

	memset(&b, 0, sizeof(b));
	memset(&tok, 0, sizeof(tok));
	snprintf(b.customer, sizeof(b.customer), "contoso");
	snprintf(b.kid, sizeof(b.kid), KID);
	b.alg = BLOB_ALG_RSA_OAEP_256;
	b.provider = BLOB_PROV_LOCAL;
	b.wrapped_len = wrapped_len;
	memset(b.wrapped, 0xa5, wrapped_len);
	memset(key, 0x5a, sizeof(key));
	memcpy(key, dek, sizeof(dek));
	ASSERT_EQ(blob_encode(&b, key, dek_len, tok.blob,
	    sizeof(tok.blob), &tok.blob_len, &e), 0);
	snprintf(tok.customer, sizeof(tok.customer), "contoso");
	snprintf(tok.key_id, sizeof(tok.key_id), KID);
	tok.keyslots[0] = 1;
	tok.keyslots[1] = 7;
	tok.nkeyslots = 2;
	tok.timeout_ms = TOKEN_TIMEOUT_DEFAULT;
}

static void
make_token(size_t wrapped_len)
{
	make_token_len(wrapped_len, sizeof(dek));
}

/* The token's JSON with member `name` set to `v` (NULL: removed). */
static char *
edit(const char *name, json_object *v)
{
	char *json = token_format(&tok), *out;
	json_object *o = json_tokener_parse(json);

	free(json);
	if (v == NULL)
		json_object_object_del(o, name);
	else
		json_object_object_add(o, name, v);
	out = strdup(json_object_to_json_string(o));
	json_object_put(o);
	return out;
}

static void
refused(const char *name, json_object *v, const char *msg)
{
	struct token t;
	char *json = edit(name, v);

	err[0] = '\0';
	ASSERT_EQ(token_parse(json, &t, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, msg);
	free(json);
}

static void
test_round_trip(void)
{
	struct token t;
	char *json;
	size_t w;

	/* Every base64 tail: blob lengths = 0, 1, 2 mod 3. */
	for (w = 200; w < 203; w++) {
		make_token(w);
		snprintf(tok.socket, sizeof(tok.socket), "/run/x/s.sock");
		tok.timeout_ms = 1500;
		json = token_format(&tok);
		ASSERT_TRUE(json != NULL);
		memset(&t, 0, sizeof(t));
		ASSERT_EQ(token_parse(json, &t, err, sizeof(err)), 0);
		ASSERT_STR(t.customer, "contoso");
		ASSERT_STR(t.key_id, KID);
		ASSERT_STR(t.socket, "/run/x/s.sock");
		ASSERT_EQ(t.timeout_ms, 1500);
		ASSERT_EQ(t.nkeyslots, 2);
		ASSERT_EQ(t.keyslots[1], 7);
		ASSERT_EQ(t.blob_len, tok.blob_len);
		ASSERT_TRUE(memcmp(t.blob, tok.blob, t.blob_len) == 0);
		free(json);
	}
	/* Optional fields left out: default socket and timeout. */
	make_token(256);
	json = token_format(&tok);
	ASSERT_TRUE(strstr(json, "xtcmk-socket") == NULL);
	ASSERT_TRUE(strstr(json, "xtcmk-timeout-ms") == NULL);
	ASSERT_EQ(token_parse(json, &t, err, sizeof(err)), 0);
	ASSERT_STR(t.socket, "");
	ASSERT_EQ(t.timeout_ms, TOKEN_TIMEOUT_DEFAULT);
	free(json);
}

static void
test_malformed(void)
{
	struct token t;

	make_token(256);
	refused("xtcmk-customer", NULL, "token lacks \"xtcmk-customer\"");
	refused("xtcmk-key-id", NULL, "token lacks \"xtcmk-key-id\"");
	refused("xtcmk-blob", NULL, "token lacks \"xtcmk-blob\"");
	refused("xtcmk-version", NULL, "\"xtcmk-version\" must be an integer");
	refused("keyslots", NULL, "lacks the \"keyslots\" array");
	refused("xtcmk-customer", json_object_new_int(3),
	    "\"xtcmk-customer\" must be a string");
	refused("xtcmk-customer", json_object_new_string(""),
	    "\"xtcmk-customer\" must be 1 to 128 bytes");
	refused("xtcmk-version", json_object_new_string("1"),
	    "\"xtcmk-version\" must be an integer");
	refused("xtcmk-version", json_object_new_int(2),
	    "token format 2 is not 1");
	refused("xtcmk-timeout-ms", json_object_new_int(0),
	    "\"xtcmk-timeout-ms\" must be 1 to 60000");
	refused("xtcmk-timeout-ms", json_object_new_int(60001),
	    "\"xtcmk-timeout-ms\" must be 1 to 60000");
	refused("xtcmk-socket", json_object_new_string("rel/s.sock"),
	    "must be an absolute path");
	refused("type", json_object_new_string("luks2-keyring"),
	    "token type is not \"xtcmk\"");
	refused("keyslots", json_object_new_string("1"),
	    "lacks the \"keyslots\" array");
	refused("xtcmk-customer", json_object_new_string("fabrikam"),
	    "is fabrikam but the blob belongs to contoso");
	refused("xtcmk-key-id", json_object_new_string("https://x/keys/k/1"),
	    "differs from the blob's key id");
	/* Base64: bad characters, whitespace, padding inside, length. */
	refused("xtcmk-blob", json_object_new_string("WFRD QgEB"),
	    "not valid base64");
	refused("xtcmk-blob", json_object_new_string("WFRDQg=="
	    "AAAA"), "not valid base64");
	refused("xtcmk-blob", json_object_new_string("WFRDQgE"),
	    "not valid base64");
	refused("xtcmk-blob", json_object_new_string("WFRDQgE=A"),
	    "not valid base64");
	/* Non-canonical: bits after the last byte must be zero. */
	refused("xtcmk-blob", json_object_new_string("WFRDQh=="),
	    "not valid base64");
	refused("xtcmk-blob", json_object_new_string("aGVsbG8="),
	    "is not a wrapped data key");
	ASSERT_EQ(token_parse("{\"type\":", &t, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, "not valid JSON");
	ASSERT_EQ(token_parse("[1]", &t, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, "not a JSON object");
}

static void
test_keyslots(void)
{
	json_object *a;

	make_token(256);
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_int(1));
	refused("keyslots", a, "entries must be strings");
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string("32"));
	refused("keyslots", a, "\"32\" is not a keyslot number");
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string("1x"));
	refused("keyslots", a, "\"1x\" is not a keyslot number");
}

/* Every prefix of a blob: refused with a sentence, never read past. */
static void
test_blob_ids(void)
{
	char c[TOKEN_CUSTOMER_MAX + 1], k[TOKEN_KID_MAX + 1];
	uint8_t *p;
	size_t n, ok = 0;

	/* Format 2 (a 48-byte key): one header byte more. */
	make_token_len(256, 48);
	for (n = 0; n <= tok.blob_len; n++) {
		p = malloc(n + 1);
		memcpy(p, tok.blob, n);
		if (token_blob_ids(p, n, c, sizeof(c), k, sizeof(k), err,
		    sizeof(err)) == 0) {
			ok++;
			ASSERT_STR(c, "contoso");
			ASSERT_STR(k, KID);
		}
		free(p);
	}
	ASSERT_EQ(ok, tok.blob_len - (13 + 7 + strlen(KID)) + 1);
	ok = 0;
	make_token(256);
	for (n = 0; n <= tok.blob_len; n++) {
		p = malloc(n + 1);	/* exact size: ASan catches overreads */
		memcpy(p, tok.blob, n);
		if (token_blob_ids(p, n, c, sizeof(c), k, sizeof(k), err,
		    sizeof(err)) == 0) {
			ok++;
			ASSERT_STR(c, "contoso");
			ASSERT_STR(k, KID);
		} else
			ASSERT_CONTAINS(err, "xtcmk-blob");
		free(p);
	}
	/* Accepted once customer and key id are complete: 12 + 7 + K. */
	ASSERT_EQ(ok, tok.blob_len - (12 + 7 + strlen(KID)) + 1);
	/* A customer id that does not fit the caller's buffer. */
	ASSERT_EQ(token_blob_ids(tok.blob, tok.blob_len, c, 4, k, sizeof(k),
	    err, sizeof(err)), -EINVAL);
}

static void
test_passphrase(void)
{
	char pass[TOKEN_PASS_LEN + 1] = { 0 };
	struct token_secret *s;

	/*
	 * Pinned: enrolled volumes depend on it.  HMAC-SHA256(key = 1..32,
	 * "xtcmk-luks keyslot passphrase v1"), from Python's hmac module.
	 */
	ASSERT_EQ(token_passphrase(dek, pass), 0);
	ASSERT_STR(pass, "f234e37a6799f8d21d611c2c2a744739"
	    "e6c7c858021707776875620b330968f4");
	s = token_secret_alloc(sizeof(*s));
	ASSERT_TRUE(s != NULL);
	memcpy(s->dek, dek, sizeof(dek));
	ASSERT_EQ(token_passphrase(s->dek, s->pass), 0);
	ASSERT_TRUE(memcmp(s->pass, pass, TOKEN_PASS_LEN) == 0);
	token_secret_free(s, sizeof(*s));
	token_secret_free(NULL, 0);
}

static void
test_errno(void)
{
	ASSERT_EQ(token_errno(XTCMK_OK), 0);
	ASSERT_EQ(token_errno(XTCMK_E_NOT_FOUND), -ENOENT);
	ASSERT_EQ(token_errno(XTCMK_E_REVOKED), -EPERM);
	ASSERT_EQ(token_errno(XTCMK_E_DENIED), -EPERM);
	ASSERT_EQ(token_errno(XTCMK_E_UNAVAILABLE), -EAGAIN);
	ASSERT_EQ(token_errno(XTCMK_E_BUSY), -EAGAIN);
	ASSERT_EQ(token_errno(XTCMK_E_UNCONFIRMED), -EAGAIN);
	ASSERT_EQ(token_errno(XTCMK_E_TIMEOUT), -ETIMEDOUT);
	ASSERT_EQ(token_errno(XTCMK_E_BAD_BLOB), -EINVAL);
	ASSERT_EQ(token_errno(XTCMK_E_INTERNAL), -EIO);
}

int
main(void)
{
	test_round_trip();
	test_malformed();
	test_keyslots();
	test_blob_ids();
	test_passphrase();
	test_errno();
	return t_done();
}
