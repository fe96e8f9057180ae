/*
 * fuzz_blob.c - the wrapped-blob parser (agent/blob.c), which reads bytes
 * a host service hands back to the agent.
 *
 * The first input byte is a mode, the rest is the blob.  Random bytes
 * rarely pass the SHA-256 checksum, so mode bit 0 recomputes the checksum
 * over the blob before parsing and bit 1 also recomputes the commitment
 * tag with the fixed test DEK: that lets the fuzzer reach every check
 * behind them.  Properties: a parsed blob holds in-range fields; it
 * re-encodes to the same bytes (tag and checksum aside when the tag does
 * not match); the re-encoding parses and verifies; the customer check
 * accepts exactly the blob's own customer.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "blob.h"
#include "fuzz.h"

#define MODE_FIX_SUM	0x1
#define MODE_FIX_TAG	0x2
#define TRAILER		(BLOB_TAG_LEN + BLOB_CHECKSUM_LEN)

/* The test DEK: a blob's first dek_len bytes (32 for format v1). */
static const uint8_t dek[BLOB_DEK_MAX] = {
	0x78, 0x74, 0x63, 0x6d, 0x6b, 0x20, 0x66, 0x75,
	0x7a, 0x7a, 0x20, 0x64, 0x65, 0x6b, 0x00, 0x01,
	0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
	0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
	0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
	0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21,
	0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
	0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31,
};

/* The tag as blob.h defines it, computed independently of blob.c. */
static void
fix_tag(uint8_t *buf, size_t len)
{
	uint8_t mk[32], t[32];
	unsigned int n = 0;
	size_t kl = 32;

	/* Format v2 records the DEK length at offset 8. */
	if (len > 8 && buf[4] >= 2 && buf[8] >= BLOB_DEK_MIN &&
	    buf[8] <= BLOB_DEK_MAX)
		kl = buf[8];
	HMAC(EVP_sha256(), dek, (int)kl,
	    (const unsigned char *)"xtcmk blob v1", 13, mk, &n);
	FUZZ_CHECK(n == 32);
	HMAC(EVP_sha256(), mk, sizeof(mk), buf, len - TRAILER, t, &n);
	FUZZ_CHECK(n == 32);
	memcpy(buf + len - TRAILER, t, BLOB_TAG_LEN);
}

static void
fix_sum(uint8_t *buf, size_t len)
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(buf, len - BLOB_CHECKSUM_LEN, md);
	memcpy(buf + len - BLOB_CHECKSUM_LEN, md, BLOB_CHECKSUM_LEN);
}

static int
printable(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

static void
check_parsed(const uint8_t *buf, size_t len, uint8_t mode,
    const struct blob *b)
{
	struct blob b2;
	struct xerr e;
	uint8_t *out;
	char other[BLOB_CUSTOMER_MAX + 2];
	size_t olen = 0, small;
	int vrc, rc;

	FUZZ_CHECK(b->flags == 0);
	FUZZ_CHECK((b->version == BLOB_VERSION_1 && b->dek_len == 32) ||
	    (b->version == BLOB_VERSION && b->dek_len != 32 &&
	    b->dek_len >= BLOB_DEK_MIN && b->dek_len <= BLOB_DEK_MAX));
	FUZZ_CHECK(b->alg == BLOB_ALG_RSA_OAEP_256 || b->alg == BLOB_ALG_A256KW);
	FUZZ_CHECK(b->provider == BLOB_PROV_LOCAL ||
	    b->provider == BLOB_PROV_AZURE);
	FUZZ_CHECK(printable(b->customer, BLOB_CUSTOMER_MAX));
	FUZZ_CHECK(printable(b->kid, BLOB_KID_MAX));
	FUZZ_CHECK(strncmp(b->kid, "https://", 8) == 0);
	FUZZ_CHECK(b->wrapped_len >= 1 && b->wrapped_len <= BLOB_WRAPPED_MAX);
	FUZZ_CHECK(len == BLOB_HDR_LEN + (b->version >= 2) + 6 +
	    strlen(b->customer) +
	    strlen(b->kid) + b->wrapped_len + TRAILER);

	FUZZ_CHECK(blob_check_customer(b, b->customer, &e) == 0);
	snprintf(other, sizeof(other), "%sx", b->customer);
	rc = blob_check_customer(b, other, &e);
	FUZZ_CHECK(rc == -XTCMK_E_WRONG_CUSTOMER && e.msg[0] != '\0');

	vrc = blob_verify_tag(b, dek, b->dek_len, &e);
	FUZZ_CHECK(vrc == 0 || (vrc == -XTCMK_E_BAD_BLOB && e.code ==
	    XTCMK_E_BAD_BLOB));
	/* The tag of a mode-2 input matches by construction. */
	FUZZ_CHECK(vrc == 0 || !(mode & MODE_FIX_TAG));

	/* Re-encode into a heap buffer of exactly the blob's size. */
	out = fuzz_memdup(buf, len);
	memset(out, 0, len);
	rc = blob_encode(b, dek, b->dek_len, out, len, &olen, &e);
	FUZZ_CHECK(rc == 0 && olen == len);
	if (vrc == 0)
		FUZZ_CHECK(memcmp(out, buf, len) == 0);
	else
		FUZZ_CHECK(memcmp(out, buf, len - TRAILER) == 0);
	FUZZ_CHECK(blob_parse(out, olen, &b2, &e) == 0);
	FUZZ_CHECK(b2.dek_len == b->dek_len);
	FUZZ_CHECK(blob_verify_tag(&b2, dek, b2.dek_len, &e) == 0);
	FUZZ_CHECK(strcmp(b2.customer, b->customer) == 0 &&
	    strcmp(b2.kid, b->kid) == 0 && b2.wrapped_len == b->wrapped_len &&
	    memcmp(b2.wrapped, b->wrapped, b->wrapped_len) == 0);
	/* The wrong DEK never verifies. */
	FUZZ_CHECK(blob_verify_tag(&b2, dek, b2.dek_len - 1u, &e) ==
	    -XTCMK_E_BAD_BLOB);

	/* One byte too small a buffer is refused, not overrun. */
	small = len - 1 - (len > 1 ? buf[len - 1] % (len - 1) : 0);
	rc = blob_encode(b, dek, b->dek_len, out, small, &olen, &e);
	FUZZ_CHECK(rc == -XTCMK_E_TOOBIG);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blob b;
	struct xerr e;
	uint8_t *buf, mode;
	size_t len;
	int rc;

	if (size < 1)
		return 0;
	mode = data[0];
	len = size - 1;
	buf = fuzz_memdup(data + 1, len);
	if (len >= TRAILER) {
		if (mode & MODE_FIX_TAG)
			fix_tag(buf, len);
		if (mode & (MODE_FIX_SUM | MODE_FIX_TAG))
			fix_sum(buf, len);
	}
	memset(&e, 0, sizeof(e));
	rc = blob_parse(buf, len, &b, &e);
	if (rc == 0)
		check_parsed(buf, len, mode, &b);
	else {
		FUZZ_CHECK(rc == -XTCMK_E_BAD_BLOB ||
		    rc == -XTCMK_E_UNSUPPORTED);
		FUZZ_CHECK(e.code == -rc && e.msg[0] != '\0');
		FUZZ_CHECK(memchr(e.msg, '\0', sizeof(e.msg)) != NULL);
	}
	free(buf);
	return 0;
}
