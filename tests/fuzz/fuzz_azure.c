/*
 * fuzz_azure.c - the parsers of the azure provider (agent/azure_*.c) for
 * what Entra ID, IMDS and Key Vault send back: token responses, Entra and
 * Key Vault error bodies, WWW-Authenticate challenges, Retry-After values,
 * JWT payloads, base64url; and the URL encoder.
 *
 * The input, up to its first NUL byte, goes to every parser.  Properties:
 * accepted values have the promised shape (https authority, a tenant, a
 * scope ending in /.default; a live token; single-line messages);
 * base64url decodes only canonical text, which re-encodes to itself, and
 * any bytes survive encode + decode; a JWT built around the input yields
 * its payload exactly when the input is a JSON object; URL encoding is
 * reversible and never overruns.
 */
#include <time.h>

#include "azure.h"
#include "fuzz.h"

#define NOW	1700000000

static int
one_line(const char *s)
{
	return strchr(s, '\r') == NULL && strchr(s, '\n') == NULL;
}

static void
check_bodies(const char *s)
{
	struct az_token *t;
	struct az_aad_err ae;
	struct az_kv_err ke;
	struct xerr e;
	int rc;

	if ((t = malloc(sizeof(*t))) == NULL)
		abort();
	memset(&e, 0, sizeof(e));
	rc = az_token_parse(s, NOW, t, &e);
	if (rc == 0) {
		FUZZ_CHECK(t->access[0] != '\0' &&
		    memchr(t->access, '\0', sizeof(t->access)) != NULL);
		FUZZ_CHECK(t->expires_on > NOW && t->obtained == NOW);
	} else
		FUZZ_CHECK(rc == -XTCMK_E_PROVIDER && e.msg[0] != '\0');
	free(t);

	if (az_aad_err_parse(s, &ae) == 0) {
		FUZZ_CHECK(memchr(ae.error, '\0', sizeof(ae.error)) != NULL);
		FUZZ_CHECK(memchr(ae.desc, '\0', sizeof(ae.desc)) != NULL);
		FUZZ_CHECK(one_line(ae.desc));
	}
	if (az_kv_err_parse(s, &ke) == 0) {
		FUZZ_CHECK(ke.code[0] != '\0');
		FUZZ_CHECK(memchr(ke.code, '\0', sizeof(ke.code)) != NULL);
		FUZZ_CHECK(memchr(ke.outer, '\0', sizeof(ke.outer)) != NULL);
		FUZZ_CHECK(memchr(ke.message, '\0', sizeof(ke.message)) !=
		    NULL && one_line(ke.message));
	}
}

static void
check_headers(const char *s)
{
	struct az_challenge c;
	size_t n;
	long ra;

	if (az_challenge_parse(s, &c) == 0) {
		FUZZ_CHECK(strncmp(c.authority, "https://", 8) == 0);
		FUZZ_CHECK(c.tenant[0] != '\0' && strchr(c.tenant, '/') ==
		    NULL);
		n = strlen(c.scope);
		FUZZ_CHECK(n >= 9 && strcmp(c.scope + n - 9, "/.default") == 0);
		FUZZ_CHECK(memchr(c.resource, '\0', sizeof(c.resource)) !=
		    NULL);
	}
	ra = az_retry_after_parse(s, NOW);
	FUZZ_CHECK(ra >= -1 && ra <= AZ_RETRY_AFTER_MAX_S);
}

static void
check_b64(const uint8_t *data, size_t size, const char *s)
{
	uint8_t *out, *back;
	char *enc;
	size_t n = strlen(s), len = 0, stripped;

	/* Decoding: canonical text only, which re-encodes to itself. */
	out = malloc(n + 1);
	enc = malloc(n + 8);
	FUZZ_CHECK(out != NULL && enc != NULL);
	if (az_b64url_decode(s, out, n + 1, &len) == 0) {
		stripped = n;
		while (stripped > 0 && s[stripped - 1] == '=')
			stripped--;
		FUZZ_CHECK(len <= n);
		FUZZ_CHECK(az_b64url_encode(out, len, enc, n + 8) ==
		    (int)stripped);
		FUZZ_CHECK(strncmp(enc, s, stripped) == 0);
		/* One byte too little room is refused, not overrun. */
		if (len > 0)
			FUZZ_CHECK(az_b64url_decode(s, out, len - 1, &len) ==
			    -1);
	}
	free(out);
	free(enc);

	/* Encoding any bytes: exactly sized output, decodes back. */
	n = (size + 2) / 3 * 4 + 1;
	enc = malloc(n);
	back = malloc(size + 1);
	FUZZ_CHECK(enc != NULL && back != NULL);
	FUZZ_CHECK(az_b64url_encode(data, size, enc, n) >= 0);
	FUZZ_CHECK(az_b64url_decode(enc, back, size + 1, &len) == 0);
	FUZZ_CHECK(len == size && (size == 0 || memcmp(back, data, size) == 0));
	FUZZ_CHECK(az_b64url_encode(data, size, enc, n - 1) == -1 ||
	    size == 0);
	free(enc);
	free(back);
}

static void
check_jwt(const uint8_t *data, size_t size, const char *s)
{
	json_t *j, *want;
	char *jwt;
	size_t n = (size + 2) / 3 * 4 + 1;
	int elen;

	json_decref(az_jwt_payload(s));
	if ((jwt = malloc(n + 8)) == NULL)
		abort();
	memcpy(jwt, "e30.", 4);
	FUZZ_CHECK((elen = az_b64url_encode(data, size, jwt + 4, n)) >= 0);
	strcat(jwt, ".sig");
	j = az_jwt_payload(jwt);
	want = json_loadb((const char *)data, size, 0, NULL);
	if (elen == 0 || elen >= AZ_TOKEN_MAX)
		FUZZ_CHECK(j == NULL);	/* empty or too long a segment */
	else if (json_is_object(want))
		FUZZ_CHECK(j != NULL && json_equal(j, want));
	else
		FUZZ_CHECK(j == NULL);
	json_decref(j);
	json_decref(want);
	free(jwt);
}

static void
check_urlencode(const char *s)
{
	size_t n = strlen(s), i, o;
	char *buf;
	int rc;

	if ((buf = malloc(3 * n + 1)) == NULL)
		abort();
	rc = az_urlencode(s, buf, 3 * n + 1);
	FUZZ_CHECK(rc >= (int)n && (size_t)rc <= 3 * n &&
	    strlen(buf) == (size_t)rc);
	/* Decode and compare. */
	for (i = 0, o = 0; buf[i] != '\0'; o++) {
		if (buf[i] == '%') {
			FUZZ_CHECK(strspn(buf + i + 1, "0123456789ABCDEF") >=
			    2);
			FUZZ_CHECK((unsigned char)s[o] ==
			    strtoul((char[]){ buf[i + 1], buf[i + 2], 0 },
			    NULL, 16));
			i += 3;
		} else {
			FUZZ_CHECK(strchr("-_.~", buf[i]) != NULL ||
			    (buf[i] >= 'A' && buf[i] <= 'Z') ||
			    (buf[i] >= 'a' && buf[i] <= 'z') ||
			    (buf[i] >= '0' && buf[i] <= '9'));
			FUZZ_CHECK(s[o] == buf[i]);
			i++;
		}
	}
	FUZZ_CHECK(o == n);
	/* Exactly the text and its NUL fit; one byte less does not. */
	FUZZ_CHECK(az_urlencode(s, buf, (size_t)rc + 1) == rc);
	FUZZ_CHECK(az_urlencode(s, buf, (size_t)rc) == -1);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	s = fuzz_strdup(data, size);
	check_bodies(s);
	check_headers(s);
	check_b64(data, size, s);
	check_jwt(data, size, s);
	check_urlencode(s);
	free(s);
	return 0;
}
