/*
 * token.c - parse, check and write the "xtcmk" LUKS2 token (token.h), and
 * derive the keyslot passphrase from a DEK.
 *
 * The JSON comes from a volume header, which anyone with write access to
 * the device controls: every field is checked by type and length before
 * use, and each failure names the field and what is wrong with it.
 * json-c is the JSON library libcryptsetup itself uses, so the plugin
 * brings no second one into cryptsetup.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token.h"

#define PASS_LABEL	"xtcmk-luks keyslot passphrase v1"
#define BLOB_MAGIC	"XTCB"
#define KEYSLOT_MAX	31	/* LUKS2 has 32 keyslots */

static int
fail(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64val(int c)
{
	const char *p;

	if (c == '\0' || (p = strchr(b64, c)) == NULL)
		return -1;
	return (int)(p - b64);
}

/*
 * Strict standard base64 with padding: no whitespace, no stray padding,
 * no non-zero bits after the last byte.  -1 if malformed or too long.
 */
static int
b64_decode(const char *s, uint8_t *out, size_t out_size, size_t *ret_len)
{
	size_t len = strlen(s), i, n = 0, pad;
	int v[4], k;

	if (len == 0 || len % 4 != 0)
		return -1;
	pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
	if (len / 4 * 3 - pad > out_size)
		return -1;
	for (i = 0; i < len; i += 4) {
		for (k = 0; k < 4; k++)
			v[k] = b64val(s[i + k]);
		/* Padding only at the very end: "xxx=" or "xx==". */
		if (v[0] < 0 || v[1] < 0 ||
		    (v[2] < 0 && (i + 4 != len || pad != 2)) ||
		    (v[3] < 0 && (i + 4 != len || pad == 0)))
			return -1;
		/* The bits padding drops must be zero (canonical form). */
		if ((pad == 2 && v[2] < 0 && (v[1] & 0x0f) != 0) ||
		    (pad == 1 && v[3] < 0 && (v[2] & 0x03) != 0))
			return -1;
		out[n++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (v[2] >= 0)
			out[n++] = (uint8_t)((v[1] & 0x0f) << 4 | v[2] >> 2);
		if (v[3] >= 0)
			out[n++] = (uint8_t)((v[2] & 0x03) << 6 | v[3]);
	}
	*ret_len = n;
	return 0;
}

static char *
b64_encode(const uint8_t *in, size_t len)
{
	char *out, *p;
	size_t i;
	uint32_t w;

	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	for (i = 0, p = out; i < len; i += 3) {
		w = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		*p++ = b64[w >> 18 & 0x3f];
		*p++ = b64[w >> 12 & 0x3f];
		*p++ = i + 1 < len ? b64[w >> 6 & 0x3f] : '=';
		*p++ = i + 2 < len ? b64[w & 0x3f] : '=';
	}
	*p = '\0';
	return out;
}

static size_t
get16(const uint8_t *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

/* `len` bytes of printable ASCII without spaces, copied with a NUL. */
static int
take_text(const uint8_t *p, size_t len, char *out, size_t out_len)
{
	size_t i;

	if (len < 1 || len >= out_len)
		return -1;
	for (i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return -1;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

int
token_blob_ids(const uint8_t *blob, size_t len, char *customer,
    size_t customer_len, char *key_id, size_t key_id_len, char *err,
    size_t err_len)
{
	char c_id[TOKEN_CUSTOMER_MAX + 1], k_id[TOKEN_KID_MAX + 1];
	size_t c, k, h;

	if (len < 11 || memcmp(blob, BLOB_MAGIC, 4) != 0)
		return fail(err, err_len, "\"xtcmk-blob\" is not a wrapped "
		    "data key (no \"XTCB\" header)");
	/* Format 2 has a DEK length byte after the 8-byte header. */
	h = blob[4] >= 2 ? 9 : 8;
	c = get16(blob + h);
	if (h + 2 + c + 2 > len || take_text(blob + h + 2, c, c_id,
	    sizeof(c_id)) == -1)
		return fail(err, err_len, "\"xtcmk-blob\": customer id field "
		    "is truncated or not printable");
	k = get16(blob + h + 2 + c);
	if (h + 4 + c + k > len || take_text(blob + h + 4 + c, k, k_id,
	    sizeof(k_id)) == -1)
		return fail(err, err_len, "\"xtcmk-blob\": key id field is "
		    "truncated or not printable");
	if (c >= customer_len || k >= key_id_len)
		return fail(err, err_len, "\"xtcmk-blob\": customer or key "
		    "id too long");
	memcpy(customer, c_id, c + 1);
	memcpy(key_id, k_id, k + 1);
	return 0;
}

/* A string member of at most `max` bytes, or absent when optional. */
static int
get_str(json_object *o, const char *name, int optional, char *out,
    size_t max, char *err, size_t err_len)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, name, &v)) {
		if (optional) {
			out[0] = '\0';
			return 0;
		}
		return fail(err, err_len, "token lacks \"%s\"", name);
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(err, err_len, "\"%s\" must be a string", name);
	s = json_object_get_string(v);
	if (s[0] == '\0' || strlen(s) > max)
		return fail(err, err_len, "\"%s\" must be 1 to %zu bytes",
		    name, max);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int
get_keyslots(json_object *o, struct token *t, char *err, size_t err_len)
{
	json_object *a, *v;
	const char *s;
	char *end;
	size_t i, n;
	long slot;

	if (!json_object_object_get_ex(o, "keyslots", &a) ||
	    !json_object_is_type(a, json_type_array))
		return fail(err, err_len, "token lacks the \"keyslots\" array");
	n = json_object_array_length(a);
	if (n > sizeof(t->keyslots) / sizeof(t->keyslots[0]))
		return fail(err, err_len, "\"keyslots\" has %zu entries", n);
	for (i = 0; i < n; i++) {
		v = json_object_array_get_idx(a, i);
		if (!json_object_is_type(v, json_type_string))
			return fail(err, err_len, "\"keyslots\" entries must "
			    "be strings");
		s = json_object_get_string(v);
		errno = 0;
		slot = strtol(s, &end, 10);
		if (s[0] == '\0' || *end != '\0' || errno != 0 || slot < 0 ||
		    slot > KEYSLOT_MAX)
			return fail(err, err_len, "\"keyslots\" entry \"%s\" "
			    "is not a keyslot number", s);
		t->keyslots[i] = (int)slot;
	}
	t->nkeyslots = n;
	return 0;
}

static int
check(json_object *o, struct token *t, char *err, size_t err_len)
{
	json_object *v;
	char b64s[(XTCMK_BLOB_MAX + 2) / 3 * 4 + 1];
	char customer[TOKEN_CUSTOMER_MAX + 1], kid[TOKEN_KID_MAX + 1];
	int64_t n;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return fail(err, err_len, "token is not a JSON object");
	if (!json_object_object_get_ex(o, "type", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), TOKEN_TYPE) != 0)
		return fail(err, err_len, "token type is not \"%s\"",
		    TOKEN_TYPE);
	if ((r = get_keyslots(o, t, err, err_len)) < 0)
		return r;
	if (!json_object_object_get_ex(o, "xtcmk-version", &v) ||
	    !json_object_is_type(v, json_type_int))
		return fail(err, err_len, "\"xtcmk-version\" must be an "
		    "integer");
	if ((n = json_object_get_int64(v)) != TOKEN_VERSION)
		return fail(err, err_len, "token format %lld is not %d: "
		    "upgrade the xtcmk plugin", (long long)n, TOKEN_VERSION);
	if ((r = get_str(o, "xtcmk-customer", 0, t->customer,
	    TOKEN_CUSTOMER_MAX, err, err_len)) < 0 ||
	    (r = get_str(o, "xtcmk-key-id", 0, t->key_id, TOKEN_KID_MAX,
	    err, err_len)) < 0 ||
	    (r = get_str(o, "xtcmk-socket", 1, t->socket, TOKEN_SOCKET_MAX,
	    err, err_len)) < 0 ||
	    (r = get_str(o, "xtcmk-blob", 0, b64s, sizeof(b64s) - 1,
	    err, err_len)) < 0)
		return r;
	if (t->socket[0] != '\0' && t->socket[0] != '/')
		return fail(err, err_len, "\"xtcmk-socket\" must be an "
		    "absolute path");
	t->timeout_ms = TOKEN_TIMEOUT_DEFAULT;
	if (json_object_object_get_ex(o, "xtcmk-timeout-ms", &v)) {
		if (!json_object_is_type(v, json_type_int))
			return fail(err, err_len, "\"xtcmk-timeout-ms\" must "
			    "be an integer");
		n = json_object_get_int64(v);
		if (n < 1 || n > TOKEN_TIMEOUT_MAX)
			return fail(err, err_len, "\"xtcmk-timeout-ms\" must "
			    "be 1 to %d", TOKEN_TIMEOUT_MAX);
		t->timeout_ms = (unsigned)n;
	}
	if (b64_decode(b64s, t->blob, sizeof(t->blob), &t->blob_len) == -1)
		return fail(err, err_len, "\"xtcmk-blob\" is not valid base64");
	if ((r = token_blob_ids(t->blob, t->blob_len, customer,
	    sizeof(customer), kid, sizeof(kid), err, err_len)) < 0)
		return r;
	if (strcmp(customer, t->customer) != 0)
		return fail(err, err_len, "\"xtcmk-customer\" is %s but the "
		    "blob belongs to %s", t->customer, customer);
	if (strcmp(kid, t->key_id) != 0)
		return fail(err, err_len, "\"xtcmk-key-id\" differs from the "
		    "blob's key id %s", kid);
	return 0;
}

int
token_parse(const char *json, struct token *ret_token, char *err,
    size_t err_len)
{
	struct token *t;
	json_object *o;
	int r;

	if (json == NULL || strlen(json) > TOKEN_JSON_MAX)
		return fail(err, err_len, "token JSON missing or over %d "
		    "bytes", TOKEN_JSON_MAX);
	if ((o = json_tokener_parse(json)) == NULL)
		return fail(err, err_len, "token is not valid JSON");
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		json_object_put(o);
		return -ENOMEM;
	}
	r = check(o, t, err, err_len);
	json_object_put(o);
	if (r == 0)
		memcpy(ret_token, t, sizeof(*t));
	free(t);
	return r;
}

char *
token_format(const struct token *t)
{
	json_object *o, *a;
	char *b, *out = NULL, num[16];
	size_t i;

	if ((b = b64_encode(t->blob, t->blob_len)) == NULL)
		return NULL;
	if ((o = json_object_new_object()) == NULL ||
	    (a = json_object_new_array()) == NULL)
		goto out;
	json_object_object_add(o, "type", json_object_new_string(TOKEN_TYPE));
	for (i = 0; i < t->nkeyslots; i++) {
		snprintf(num, sizeof(num), "%d", t->keyslots[i]);
		json_object_array_add(a, json_object_new_string(num));
	}
	json_object_object_add(o, "keyslots", a);
	json_object_object_add(o, "xtcmk-version",
	    json_object_new_int(TOKEN_VERSION));
	json_object_object_add(o, "xtcmk-customer",
	    json_object_new_string(t->customer));
	json_object_object_add(o, "xtcmk-key-id",
	    json_object_new_string(t->key_id));
	json_object_object_add(o, "xtcmk-blob", json_object_new_string(b));
	if (t->socket[0] != '\0')
		json_object_object_add(o, "xtcmk-socket",
		    json_object_new_string(t->socket));
	if (t->timeout_ms != TOKEN_TIMEOUT_DEFAULT)
		json_object_object_add(o, "xtcmk-timeout-ms",
		    json_object_new_int((int32_t)t->timeout_ms));
	out = strdup(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
 out:
	json_object_put(o);
	free(b);
	return out;
}

int
token_passphrase(const uint8_t dek[XTCMK_DEK_LEN], char pass[TOKEN_PASS_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mac[32];
	unsigned int mac_len = sizeof(mac);
	size_t i;

	if (HMAC(EVP_sha256(), dek, XTCMK_DEK_LEN,
	    (const uint8_t *)PASS_LABEL, strlen(PASS_LABEL), mac,
	    &mac_len) == NULL || mac_len != sizeof(mac)) {
		explicit_bzero(mac, sizeof(mac));
		return -EIO;
	}
	for (i = 0; i < sizeof(mac); i++) {
		pass[2 * i] = hex[mac[i] >> 4];
		pass[2 * i + 1] = hex[mac[i] & 0x0f];
	}
	explicit_bzero(mac, sizeof(mac));
	return 0;
}

static size_t
pages(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (len + page - 1) / page * page;
}

void *
token_secret_alloc(size_t len)
{
	void *p;

	if (len == 0)
		return NULL;
	p = mmap(NULL, pages(len), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Unlocked only when RLIMIT_MEMLOCK forbids: still wiped. */
	(void)mlock(p, pages(len));
#ifdef MADV_DONTDUMP
	(void)madvise(p, pages(len), MADV_DONTDUMP);
#endif
#ifdef MADV_WIPEONFORK
	(void)madvise(p, pages(len), MADV_WIPEONFORK);
#endif
	return p;
}

void
token_secret_free(void *p, size_t len)
{
	if (p == NULL || len == 0)
		return;
	explicit_bzero(p, len);
	(void)munlock(p, pages(len));
	(void)munmap(p, pages(len));
}

int
token_errno(int rc)
{
	switch (rc) {
	case XTCMK_OK:
		return 0;
	case XTCMK_E_NOT_FOUND:
		return -ENOENT;
	case XTCMK_E_REVOKED:
	case XTCMK_E_DENIED:
	case XTCMK_E_NOT_SERVED:
	case XTCMK_E_POLICY:
		return -EPERM;
	case XTCMK_E_UNAVAILABLE:
	case XTCMK_E_BUSY:
	case XTCMK_E_PROVIDER:
	case XTCMK_E_UNCONFIRMED:
		return -EAGAIN;
	case XTCMK_E_TIMEOUT:
		return -ETIMEDOUT;
	case XTCMK_E_INVAL:
	case XTCMK_E_BAD_BLOB:
	case XTCMK_E_WRONG_CUSTOMER:
	case XTCMK_E_UNSUPPORTED:
	case XTCMK_E_TOOBIG:
		return -EINVAL;
	case XTCMK_E_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}
