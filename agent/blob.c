/*
 * blob.c - encode and parse wrapped blobs (format in blob.h).
 *
 * The parser reads bytes an outsider controls: every length is checked
 * against what is left before it is used, and each failure says which
 * part is wrong.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "blob.h"

#define TAG_LABEL	"xtcmk blob v1"

_Static_assert(BLOB_MAX <= XTCMK_BLOB_MAX, "BLOB_MAX too large");
_Static_assert(BLOB_HDR_LEN + 1 + 6 + BLOB_CUSTOMER_MAX + BLOB_KID_MAX +
    BLOB_WRAPPED_MAX + BLOB_TAG_LEN + BLOB_CHECKSUM_LEN <= BLOB_MAX,
    "largest blob does not fit BLOB_MAX");

static void
put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t
get16(const uint8_t *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

/* 1..max bytes of printable ASCII without spaces. */
static int
text_ok(const uint8_t *s, size_t len, size_t max)
{
	size_t i;

	if (len < 1 || len > max)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

static int
kid_ok(const uint8_t *s, size_t len)
{
	return text_ok(s, len, BLOB_KID_MAX) && len > 8 &&
	    memcmp(s, "https://", 8) == 0;
}

static int
compute_tag(const uint8_t *dek, size_t dek_len, const uint8_t *msg,
    size_t msg_len, uint8_t tag[BLOB_TAG_LEN])
{
	uint8_t mk[EVP_MAX_MD_SIZE], t[EVP_MAX_MD_SIZE];
	unsigned int mk_len = 0, t_len = 0;
	int rc = -1;

	if (HMAC(EVP_sha256(), dek, (int)dek_len,
	    (const unsigned char *)TAG_LABEL, strlen(TAG_LABEL), mk,
	    &mk_len) == NULL || mk_len != 32)
		goto out;
	if (HMAC(EVP_sha256(), mk, (int)mk_len, msg, msg_len, t,
	    &t_len) == NULL || t_len != 32)
		goto out;
	memcpy(tag, t, BLOB_TAG_LEN);
	rc = 0;
out:
	OPENSSL_cleanse(mk, sizeof(mk));
	OPENSSL_cleanse(t, sizeof(t));
	return rc;
}

static void
checksum(const uint8_t *msg, size_t len, uint8_t out[BLOB_CHECKSUM_LEN])
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(msg, len, md);
	memcpy(out, md, BLOB_CHECKSUM_LEN);
}

/* Header length of format `version`: v2 adds the DEK length byte. */
static size_t
hdr_len(uint8_t version)
{
	return version >= 2 ? BLOB_HDR_LEN + 1 : BLOB_HDR_LEN;
}

/*
 * Header and fields (everything the tag covers) in format `version`, for
 * a DEK of `dek_len` bytes (v1: 32 only).  Returns its length.
 */
static int
body_encode(const struct blob *b, uint8_t version, size_t dek_len,
    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e)
{
	size_t clen, klen, need, p;

	clen = strnlen(b->customer, sizeof(b->customer));
	klen = strnlen(b->kid, sizeof(b->kid));
	if (!text_ok((const uint8_t *)b->customer, clen, BLOB_CUSTOMER_MAX))
		return xerr_set(e, XTCMK_E_INVAL, "blob: customer id must be "
		    "1-%d printable characters", BLOB_CUSTOMER_MAX);
	if (!kid_ok((const uint8_t *)b->kid, klen))
		return xerr_set(e, XTCMK_E_INVAL, "blob: key id must be an "
		    "https URL of at most %d characters", BLOB_KID_MAX);
	if (b->wrapped_len < 1 || b->wrapped_len > BLOB_WRAPPED_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "blob: wrapped key must have "
		    "1-%d bytes", BLOB_WRAPPED_MAX);
	if (b->alg != BLOB_ALG_RSA_OAEP_256 && b->alg != BLOB_ALG_A256KW)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "blob: algorithm %u "
		    "is not supported", b->alg);
	if (b->provider != BLOB_PROV_LOCAL && b->provider != BLOB_PROV_AZURE)
		return xerr_set(e, XTCMK_E_INVAL, "blob: provider %u is not "
		    "known", b->provider);
	if (dek_len < BLOB_DEK_MIN || dek_len > BLOB_DEK_MAX ||
	    (version == BLOB_VERSION_1 && dek_len != BLOB_DEK_V1))
		return xerr_set(e, XTCMK_E_INVAL, "blob: a data key of %zu "
		    "bytes does not fit format v%u", dek_len, version);
	need = hdr_len(version) + 6 + clen + klen + b->wrapped_len;
	if (need > out_size)
		return xerr_set(e, XTCMK_E_TOOBIG, "blob needs %zu bytes, the "
		    "buffer has %zu", need, out_size);
	memcpy(out, BLOB_MAGIC, 4);
	out[4] = version;
	out[5] = b->alg;
	out[6] = b->provider;
	out[7] = 0;
	if (version >= 2)
		out[BLOB_HDR_LEN] = (uint8_t)dek_len;
	p = hdr_len(version);
	put16(out + p, clen);
	memcpy(out + p + 2, b->customer, clen);
	p += 2 + clen;
	put16(out + p, klen);
	memcpy(out + p + 2, b->kid, klen);
	p += 2 + klen;
	put16(out + p, b->wrapped_len);
	memcpy(out + p + 2, b->wrapped, b->wrapped_len);
	p += 2 + b->wrapped_len;
	*ret_len = p;
	return 0;
}

int
blob_encode(const struct blob *b, const uint8_t *dek, size_t dek_len,
    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e)
{
	uint8_t buf[BLOB_MAX];
	size_t len;
	int rc;

	if (b == NULL || dek == NULL || dek_len == 0 || out == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "blob_encode: missing input");
	/* v1 where it suffices: agents that predate v2 read those. */
	if ((rc = body_encode(b, dek_len == BLOB_DEK_V1 ? BLOB_VERSION_1 :
	    BLOB_VERSION, dek_len, buf, sizeof(buf), &len, e)) < 0)
		return rc;
	if (len + BLOB_TAG_LEN + BLOB_CHECKSUM_LEN > out_size)
		return xerr_set(e, XTCMK_E_TOOBIG, "blob needs %zu bytes, the "
		    "buffer has %zu", len + BLOB_TAG_LEN + BLOB_CHECKSUM_LEN,
		    out_size);
	if (compute_tag(dek, dek_len, buf, len, buf + len) < 0)
		return xerr_set(e, XTCMK_E_INTERNAL, "blob: HMAC-SHA256 "
		    "failed");
	len += BLOB_TAG_LEN;
	checksum(buf, len, buf + len);
	len += BLOB_CHECKSUM_LEN;
	memcpy(out, buf, len);
	*ret_len = len;
	return 0;
}

static int
truncated(struct xerr *e, size_t len, const char *what)
{
	return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is truncated: "
	    "%zu bytes end inside the %s; pass the whole blob as stored",
	    len, what);
}

/*
 * Read a u16-length-prefixed field at *pos: the length must be within
 * 1..max and the bytes must be there.
 */
static int
field(const uint8_t *buf, size_t len, size_t *pos, size_t max,
    const char *what, const uint8_t **ret_p, size_t *ret_n, struct xerr *e)
{
	size_t n;

	if (len - *pos < 2)
		return truncated(e, len, what);
	n = get16(buf + *pos);
	if (n < 1 || n > max)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: %s length %zu is not within 1-%zu", what, n,
		    max);
	if (len - *pos - 2 < n)
		return truncated(e, len, what);
	*ret_p = buf + *pos + 2;
	*ret_n = n;
	*pos += 2 + n;
	return 0;
}

int
blob_parse(const uint8_t *buf, size_t len, struct blob *ret_blob,
    struct xerr *e)
{
	const uint8_t *cust, *kid, *wr;
	size_t clen, klen, wlen, pos, dek_len = BLOB_DEK_V1;
	uint8_t sum[BLOB_CHECKSUM_LEN];
	int rc;

	if (buf == NULL || len == 0)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is empty");
	if (len > BLOB_MAX)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob of %zu "
		    "bytes is longer than any xtcmk blob (%d)", len, BLOB_MAX);
	if (memcmp(buf, BLOB_MAGIC, len < 4 ? len : 4) != 0)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "not an xtcmk wrapped "
		    "blob (bad magic)");
	if (len < 5)
		return truncated(e, len, "header");
	if (buf[4] == 0)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: format version 0");
	if (buf[4] > BLOB_VERSION)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "blob format %u is "
		    "newer than this agent (%d): upgrade xtcmkd", buf[4],
		    BLOB_VERSION);
	if (len < hdr_len(buf[4]))
		return truncated(e, len, "header");
	pos = hdr_len(buf[4]);
	if (buf[4] >= 2)
		dek_len = buf[BLOB_HDR_LEN];
	if ((rc = field(buf, len, &pos, BLOB_CUSTOMER_MAX, "customer id",
	    &cust, &clen, e)) < 0 ||
	    (rc = field(buf, len, &pos, BLOB_KID_MAX, "key id", &kid, &klen,
	    e)) < 0 ||
	    (rc = field(buf, len, &pos, BLOB_WRAPPED_MAX, "wrapped key", &wr,
	    &wlen, e)) < 0)
		return rc;
	if (len - pos < BLOB_TAG_LEN)
		return truncated(e, len, "commitment tag");
	if (len - pos - BLOB_TAG_LEN < BLOB_CHECKSUM_LEN)
		return truncated(e, len, "checksum");
	checksum(buf, pos + BLOB_TAG_LEN, sum);
	if (CRYPTO_memcmp(sum, buf + pos + BLOB_TAG_LEN, sizeof(sum)) != 0)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: checksum mismatch");
	if (len != pos + BLOB_TAG_LEN + BLOB_CHECKSUM_LEN)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob has %zu "
		    "trailing bytes after its checksum; pass exactly the "
		    "stored blob",
		    len - pos - BLOB_TAG_LEN - BLOB_CHECKSUM_LEN);
	if (dek_len < BLOB_DEK_MIN || dek_len > BLOB_DEK_MAX)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: data key length %zu is not within %d-%d",
		    dek_len, BLOB_DEK_MIN, BLOB_DEK_MAX);
	/* One encoding per blob: 32-byte keys are format v1. */
	if (buf[4] >= 2 && dek_len == BLOB_DEK_V1)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: format v%u with a %d-byte data key (those are "
		    "format v1)", buf[4], BLOB_DEK_V1);
	if (buf[7] != 0)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "blob flags 0x%02x "
		    "are unknown to this agent: upgrade xtcmkd", buf[7]);
	if (buf[5] != BLOB_ALG_RSA_OAEP_256 && buf[5] != BLOB_ALG_A256KW)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "blob algorithm %u is "
		    "unknown to this agent: upgrade xtcmkd", buf[5]);
	if (buf[6] != BLOB_PROV_LOCAL && buf[6] != BLOB_PROV_AZURE)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "blob key provider %u "
		    "is unknown to this agent: upgrade xtcmkd", buf[6]);
	if (!text_ok(cust, clen, BLOB_CUSTOMER_MAX))
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: the customer id is not printable text");
	if (!kid_ok(kid, klen))
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob is "
		    "corrupted: the key id is not an https URL");

	memset(ret_blob, 0, sizeof(*ret_blob));
	ret_blob->version = buf[4];
	ret_blob->alg = buf[5];
	ret_blob->provider = buf[6];
	ret_blob->flags = buf[7];
	ret_blob->dek_len = (uint8_t)dek_len;
	memcpy(ret_blob->customer, cust, clen);
	memcpy(ret_blob->kid, kid, klen);
	memcpy(ret_blob->wrapped, wr, wlen);
	ret_blob->wrapped_len = wlen;
	memcpy(ret_blob->tag, buf + pos, BLOB_TAG_LEN);
	return 0;
}

int
blob_check_customer(const struct blob *b, const char *customer,
    struct xerr *e)
{
	if (b == NULL || customer == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "no blob or customer");
	if (strcmp(b->customer, customer) != 0)
		return xerr_set(e, XTCMK_E_WRONG_CUSTOMER, "blob belongs to "
		    "customer '%s', not '%.128s'", b->customer, customer);
	return 0;
}

int
blob_verify_tag(const struct blob *b, const uint8_t *dek, size_t dek_len,
    struct xerr *e)
{
	uint8_t buf[BLOB_MAX], tag[BLOB_TAG_LEN];
	size_t len;
	int rc;

	if (b == NULL || dek == NULL || dek_len == 0)
		return xerr_set(e, XTCMK_E_INVAL, "no blob or data key");
	if (dek_len != b->dek_len)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob records a "
		    "%u-byte data key but holds %zu bytes", b->dek_len,
		    dek_len);
	/* The parser accepts only the canonical encoding: re-encoding
	 * gives back the exact bytes the tag was computed over. */
	if ((rc = body_encode(b, b->version, dek_len, buf, sizeof(buf), &len,
	    e)) < 0)
		return rc;
	if (compute_tag(dek, dek_len, buf, len, tag) < 0)
		return xerr_set(e, XTCMK_E_INTERNAL, "blob: HMAC-SHA256 "
		    "failed");
	if (CRYPTO_memcmp(tag, b->tag, BLOB_TAG_LEN) != 0)
		return xerr_set(e, XTCMK_E_BAD_BLOB, "wrapped blob does not "
		    "match the data key it wraps (commitment tag mismatch): "
		    "its header, customer or key id was altered");
	return 0;
}
