/*
 * test_blob.c - wrapped-blob format: round trip, truncation, bit flips,
 * versions, algorithms, customer binding and the commitment tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "blob.h"
#include "t.h"

static const uint8_t dek[32] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

static void
sample(struct blob *b, const char *customer)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	snprintf(b->customer, sizeof(b->customer), "%s", customer);
	snprintf(b->kid, sizeof(b->kid), "https://v.vault.local/keys/k/"
	    "0123456789abcdef0123456789abcdef");
	b->alg = BLOB_ALG_RSA_OAEP_256;
	b->provider = BLOB_PROV_LOCAL;
	b->wrapped_len = 256;
	for (i = 0; i < b->wrapped_len; i++)
		b->wrapped[i] = (uint8_t)(i * 7 + 3);
}

/* Recompute the trailing checksum after tampering with the body. */
static void
fix_checksum(uint8_t *buf, size_t len)
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256(buf, len - BLOB_CHECKSUM_LEN, md);
	memcpy(buf + len - BLOB_CHECKSUM_LEN, md, BLOB_CHECKSUM_LEN);
}

static void
test_round_trip(void)
{
	struct blob b, p;
	struct xerr e;
	uint8_t buf[BLOB_MAX];
	size_t len = 0;

	sample(&b, "acme");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	ASSERT_EQ(len, 38 + 4 + strlen(b.kid) + 256);
	ASSERT_TRUE(memcmp(buf, "XTCB\x01\x01\x01\x00", 8) == 0);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
	ASSERT_STR(p.customer, "acme");
	ASSERT_STR(p.kid, b.kid);
	ASSERT_EQ(p.version, 1);
	ASSERT_EQ(p.alg, BLOB_ALG_RSA_OAEP_256);
	ASSERT_EQ(p.provider, BLOB_PROV_LOCAL);
	ASSERT_EQ(p.wrapped_len, 256);
	ASSERT_TRUE(memcmp(p.wrapped, b.wrapped, 256) == 0);
	ASSERT_EQ(blob_check_customer(&p, "acme", &e), 0);
	ASSERT_EQ(blob_verify_tag(&p, dek, sizeof(dek), &e), 0);

	/* Wrong DEK: tag mismatch. */
	{
		uint8_t other[32];

		memcpy(other, dek, sizeof(other));
		other[31] ^= 1;
		ASSERT_EQ(blob_verify_tag(&p, other, sizeof(other), &e),
		    -XTCMK_E_BAD_BLOB);
		ASSERT_CONTAINS(e.msg, "commitment");
	}

	/* Too small an output buffer. */
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, 100, &len, &e),
	    -XTCMK_E_TOOBIG);
	/* A256KW (oct-HSM keys) round trips; other algorithms are refused. */
	b.alg = BLOB_ALG_A256KW;
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
	ASSERT_EQ(p.alg, BLOB_ALG_A256KW);
	b.alg = 7;
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), -XTCMK_E_UNSUPPORTED);
	b.alg = BLOB_ALG_RSA_OAEP_256;
	sample(&b, "");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), -XTCMK_E_INVAL);
	sample(&b, "acme");
	snprintf(b.kid, sizeof(b.kid), "http://x/keys/k/1");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), -XTCMK_E_INVAL);

	/* Largest blob fits BLOB_MAX. */
	sample(&b, "acme");
	memset(b.customer, 'c', BLOB_CUSTOMER_MAX);
	b.customer[BLOB_CUSTOMER_MAX] = '\0';
	memcpy(b.kid, "https://", 8);
	memset(b.kid + 8, 'k', BLOB_KID_MAX - 8);
	b.kid[BLOB_KID_MAX] = '\0';
	b.wrapped_len = BLOB_WRAPPED_MAX;
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	ASSERT_TRUE(len <= BLOB_MAX);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
	ASSERT_EQ(blob_verify_tag(&p, dek, sizeof(dek), &e), 0);
}

static void
test_truncated(void)
{
	struct blob b, p;
	struct xerr e;
	uint8_t buf[BLOB_MAX], *copy;
	size_t len, i;
	int refused = 0, truncmsg = 0;

	sample(&b, "acme");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	for (i = 0; i < len; i++) {
		/* Exact-size heap copy so ASan sees any overread. */
		copy = malloc(i ? i : 1);
		memcpy(copy, buf, i);
		xerr_clear(&e);
		if (blob_parse(copy, i, &p, &e) == -XTCMK_E_BAD_BLOB)
			refused++;
		if (strstr(e.msg, "truncated") != NULL ||
		    strstr(e.msg, "empty") != NULL)
			truncmsg++;
		free(copy);
	}
	ASSERT_EQ(refused, len);
	ASSERT_EQ(truncmsg, len);

	/* Trailing bytes, and a length over BLOB_MAX (checked before any
	 * byte is read). */
	memcpy(buf + len, "zz", 2);
	ASSERT_EQ(blob_parse(buf, len + 2, &p, &e), -XTCMK_E_BAD_BLOB);
	ASSERT_EQ(blob_parse(buf, BLOB_MAX + 1, &p, &e), -XTCMK_E_BAD_BLOB);
}

static void
test_trailing(void)
{
	struct blob b, p;
	struct xerr e;
	uint8_t buf[BLOB_MAX];
	size_t len, body;

	/* A valid blob followed by bytes, with the checksum at its place. */
	sample(&b, "acme");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	body = len;
	buf[body] = 'x';
	ASSERT_EQ(blob_parse(buf, body + 1, &p, &e), -XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(e.msg, "trailing");
}

static void
test_flips(void)
{
	struct blob b, p;
	struct xerr e;
	uint8_t buf[BLOB_MAX];
	size_t len, i;
	int bit, refused = 0, total = 0, rc;

	sample(&b, "acme");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	for (i = 0; i < len; i++)
		for (bit = 0; bit < 8; bit++) {
			total++;
			buf[i] ^= (uint8_t)(1 << bit);
			rc = blob_parse(buf, len, &p, &e);
			if (rc == 0)
				rc = blob_verify_tag(&p, dek, sizeof(dek), &e);
			if (rc < 0)
				refused++;
			buf[i] ^= (uint8_t)(1 << bit);
		}
	ASSERT_EQ(refused, total);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);

	/* Flip a byte of the wrapped key and fix the checksum: the parser
	 * accepts it, the tag (after a would-be unwrap) does not. */
	buf[len - 40] ^= 0x55;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
	ASSERT_EQ(blob_verify_tag(&p, dek, sizeof(dek), &e),
	    -XTCMK_E_BAD_BLOB);

	/* Bad magic. */
	sample(&b, "acme");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	buf[0] = 'Y';
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(e.msg, "not an xtcmk wrapped blob");
	buf[0] = 'X';
	buf[len - 1] ^= 1;
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_BAD_BLOB);
	ASSERT_CONTAINS(e.msg, "corrupted: checksum mismatch");
}

static void
test_versions(void)
{
	struct blob b, p;
	struct xerr e;
	uint8_t buf[BLOB_MAX];
	size_t len;

	sample(&b, "acme");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	buf[4] = 7;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_UNSUPPORTED);
	ASSERT_STR(e.msg, "blob format 7 is newer than this agent (2): "
	    "upgrade xtcmkd");
	/* Even a blob of a future format cut short says "upgrade". */
	ASSERT_EQ(blob_parse(buf, 9, &p, &e), -XTCMK_E_UNSUPPORTED);

	buf[4] = 1;
	buf[5] = 9;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_UNSUPPORTED);
	ASSERT_CONTAINS(e.msg, "algorithm 9");
	buf[5] = 3;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_UNSUPPORTED);
	ASSERT_CONTAINS(e.msg, "algorithm 3");
	buf[5] = 1;
	buf[6] = 3;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_UNSUPPORTED);
	buf[6] = 1;
	buf[7] = 0x80;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_UNSUPPORTED);
	buf[7] = 0;
	buf[4] = 0;
	fix_checksum(buf, len);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), -XTCMK_E_BAD_BLOB);
}

/*
 * DEKs other than 32 bytes: format v2 records the length (offset 8) under
 * the tag; 32-byte DEKs stay format v1, as older agents wrote them.
 */
static void
test_lengths(void)
{
	static const size_t lens[] = { 16, 24, 48, 64 };
	uint8_t key[BLOB_DEK_MAX], buf[BLOB_MAX], t[BLOB_MAX];
	struct blob b, p;
	struct xerr e;
	size_t i, len;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 5 + 1);
	sample(&b, "acme");
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ASSERT_EQ(blob_encode(&b, key, lens[i], buf, sizeof(buf), &len,
		    &e), 0);
		ASSERT_EQ(len, 39 + 4 + strlen(b.kid) + 256);
		ASSERT_TRUE(memcmp(buf, "XTCB\x02\x01\x01\x00", 8) == 0);
		ASSERT_EQ(buf[8], lens[i]);
		ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
		ASSERT_EQ(p.version, 2);
		ASSERT_EQ(p.dek_len, lens[i]);
		ASSERT_STR(p.customer, "acme");
		ASSERT_EQ(blob_verify_tag(&p, key, lens[i], &e), 0);
		/* The key cut to another length does not verify. */
		ASSERT_EQ(blob_verify_tag(&p, key, 32, &e), -XTCMK_E_BAD_BLOB);
		ASSERT_CONTAINS(e.msg, "records");
		/* The length byte is under the tag. */
		memcpy(t, buf, len);
		t[8] = (uint8_t)(lens[i] == 16 ? 24 : 16);
		fix_checksum(t, len);
		ASSERT_EQ(blob_parse(t, len, &p, &e), 0);
		ASSERT_EQ(blob_verify_tag(&p, key, p.dek_len, &e),
		    -XTCMK_E_BAD_BLOB);
		ASSERT_CONTAINS(e.msg, "commitment");
		/* Out of range: refused at parse. */
		t[8] = lens[i] == 16 ? 15 : 65;
		fix_checksum(t, len);
		ASSERT_EQ(blob_parse(t, len, &p, &e), -XTCMK_E_BAD_BLOB);
		ASSERT_CONTAINS(e.msg, "data key length");
	}
	/* 32 bytes: v1, no length byte, and the parser says 32. */
	ASSERT_EQ(blob_encode(&b, key, 32, buf, sizeof(buf), &len, &e), 0);
	ASSERT_EQ(buf[4], 1);
	ASSERT_EQ(len, 38 + 4 + strlen(b.kid) + 256);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
	ASSERT_EQ(p.dek_len, 32);
	ASSERT_EQ(blob_verify_tag(&p, key, 32, &e), 0);
	/* No format holds 15 or 65 bytes. */
	ASSERT_EQ(blob_encode(&b, key, 15, buf, sizeof(buf), &len, &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(blob_encode(&b, key, 65, buf, sizeof(buf), &len, &e),
	    -XTCMK_E_INVAL);
}

static void
test_customer(void)
{
	struct blob b, p, other;
	struct xerr e;
	uint8_t buf[BLOB_MAX], buf2[BLOB_MAX];
	size_t len, len2;

	sample(&b, "a");
	ASSERT_EQ(blob_encode(&b, dek, sizeof(dek), buf, sizeof(buf), &len,
	    &e), 0);
	ASSERT_EQ(blob_parse(buf, len, &p, &e), 0);
	ASSERT_EQ(blob_check_customer(&p, "b", &e), -XTCMK_E_WRONG_CUSTOMER);
	ASSERT_STR(e.msg, "blob belongs to customer 'a', not 'b'");
	ASSERT_EQ(e.code, XTCMK_E_WRONG_CUSTOMER);

	/*
	 * Re-encode the header with customer "b", keeping the wrapped key and
	 * the original tag, with a valid checksum: parses, passes the customer
	 * check for "b", fails the commitment once the DEK is known.
	 */
	sample(&other, "b");
	ASSERT_EQ(blob_encode(&other, dek, sizeof(dek), buf2, sizeof(buf2),
	    &len2, &e), 0);
	ASSERT_EQ(len2, len);
	memcpy(buf2 + len2 - BLOB_CHECKSUM_LEN - BLOB_TAG_LEN,
	    buf + len - BLOB_CHECKSUM_LEN - BLOB_TAG_LEN, BLOB_TAG_LEN);
	fix_checksum(buf2, len2);
	ASSERT_EQ(blob_parse(buf2, len2, &p, &e), 0);
	ASSERT_EQ(blob_check_customer(&p, "b", &e), 0);
	ASSERT_EQ(blob_verify_tag(&p, dek, sizeof(dek), &e),
	    -XTCMK_E_BAD_BLOB);
	ASSERT_EQ(e.code, XTCMK_E_BAD_BLOB);
}

int
main(void)
{
	test_round_trip();
	test_truncated();
	test_trailing();
	test_flips();
	test_versions();
	test_lengths();
	test_customer();
	return t_done();
}
