/*
 * blob.h - the wrapped-blob format: what xtcmk_dek_new() hands a host
 * service to store next to its data, and what unwrap takes back.
 *
 * Format v1, all integers big-endian:
 *
 *	offset	size	field
 *	0	4	magic		"XTCB"
 *	4	1	version		1 (BLOB_VERSION_1)
 *	5	1	algorithm	1 RSA-OAEP-256; 2 A256KW (oct-HSM)
 *	6	1	provider	1 local; 2 azure (enum provider_kind)
 *	7	1	flags		0 (any other value: unsupported)
 *	8	2	customer length	C, 1..BLOB_CUSTOMER_MAX
 *	10	C	customer id	printable ASCII
 *	10+C	2	kid length	K, 1..BLOB_KID_MAX
 *	12+C	K	key id		full kid URL WITH version, printable
 *					ASCII, "https://..."
 *	12+C+K	2	wrapped length	W, 1..BLOB_WRAPPED_MAX
 *	14+C+K	W	wrapped DEK	provider's ciphertext of the DEK
 *	14+C+K+W 16	tag		commitment, see below
 *	30+C+K+W 8	checksum	SHA-256(bytes 0 .. 30+C+K+W-1)[0..8]
 *
 * Total length 38+C+K+W <= BLOB_MAX; nothing may follow the checksum.
 *
 * The checksum catches accidental corruption before a key service is asked
 * to decrypt garbage.  The tag commits the blob to its DEK:
 *
 *	mk  = HMAC-SHA256(key = DEK, msg = "xtcmk blob v1")
 *	tag = HMAC-SHA256(key = mk, msg = bytes 0 .. 14+C+K+W-1)[0..16]
 *
 * so header, customer id and key id cannot be changed (and the checksum
 * recomputed) without unwrap failing blob_verify_tag(): the customer
 * binding is cryptographic, not only a field check.
 *
 * Format v2 (BLOB_VERSION) records the DEK's length: byte 4 is 2, one
 * more header byte follows the flags, and every later offset moves by one
 * (total 39+C+K+W):
 *
 *	8	1	DEK length	BLOB_DEK_MIN..BLOB_DEK_MAX
 *	9	2	customer length	... as v1 from offset 8 on
 *
 * A v1 blob holds a 32-byte DEK.  The agent writes v1 for 32-byte DEKs
 * (readable by agents that predate v2) and v2 for every other length; the
 * tag covers the length byte like the rest of the header.
 */
#ifndef XTCMK_BLOB_H
#define XTCMK_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "xerr.h"

#define BLOB_MAGIC		"XTCB"
#define BLOB_VERSION_1		1	/* 32-byte DEKs, no length byte */
#define BLOB_VERSION		2	/* newest: DEK length at offset 8 */
#define BLOB_DEK_V1		32	/* the DEK length of a v1 blob */
#define BLOB_DEK_MIN		16	/* = PROVIDER_DEK_MIN */
#define BLOB_DEK_MAX		64	/* = PROVIDER_DEK_MAX, XTCMK_DEK_MAX */
#define BLOB_ALG_RSA_OAEP_256	1
#define BLOB_ALG_A256KW		2	/* oct-HSM keys on Managed HSM */
#define BLOB_PROV_LOCAL		1
#define BLOB_PROV_AZURE		2
#define BLOB_TAG_LEN		16
#define BLOB_CHECKSUM_LEN	8
#define BLOB_HDR_LEN		8	/* v1; v2 adds the length byte */
#define BLOB_CUSTOMER_MAX	128	/* = CUSTOMER_ID_MAX */
#define BLOB_KID_MAX		512	/* = KEY_URI_MAX */
#define BLOB_WRAPPED_MAX	512	/* = PROVIDER_WRAPPED_MAX (RSA-4096) */
#define BLOB_MIN_LEN		(BLOB_HDR_LEN + 6 + 3 + BLOB_TAG_LEN + \
				    BLOB_CHECKSUM_LEN)
#define BLOB_MAX		2048	/* <= XTCMK_BLOB_MAX */
#define BLOB_OVERHEAD		38	/* total length is 38+C+K+W (v2: 39) */
#define BLOB_WRAPPED_KW(n)	((n) + 8)	/* n-byte DEK, AES key wrap */
#define BLOB_WRAPPED_RSA_MIN	256	/* RSA-2048, the smallest key */

struct blob {
	uint8_t		version;
	uint8_t		alg;
	uint8_t		provider;
	uint8_t		flags;
	uint8_t		dek_len;	/* set by blob_parse (v1: 32) */
	char		customer[BLOB_CUSTOMER_MAX + 1];
	char		kid[BLOB_KID_MAX + 1];
	uint8_t		wrapped[BLOB_WRAPPED_MAX];
	size_t		wrapped_len;
	uint8_t		tag[BLOB_TAG_LEN];	/* set by blob_parse */
};

/*
 * Encode `b` (customer, kid, alg, provider, wrapped; version, flags and
 * dek_len are ignored) with the tag computed from `dek`: format v1 for a
 * 32-byte DEK, else v2 recording dek_len (BLOB_DEK_MIN..BLOB_DEK_MAX).
 */
int	blob_encode(const struct blob *b, const uint8_t *dek, size_t dek_len,
	    uint8_t *out, size_t out_size, size_t *ret_len, struct xerr *e);
/*
 * Parse and check structure and checksum.  XTCMK_E_BAD_BLOB for anything
 * malformed; XTCMK_E_UNSUPPORTED for a newer format version, an unknown
 * algorithm, provider or flags.  Does not check the tag (needs the DEK).
 */
int	blob_parse(const uint8_t *buf, size_t len, struct blob *ret_blob,
	    struct xerr *e);
/* XTCMK_E_WRONG_CUSTOMER unless the blob belongs to `customer`. */
int	blob_check_customer(const struct blob *b, const char *customer,
	    struct xerr *e);
/* After unwrap: XTCMK_E_BAD_BLOB unless the tag commits to `dek` (whose
 * length must be the one the blob records). */
int	blob_verify_tag(const struct blob *b, const uint8_t *dek,
	    size_t dek_len, struct xerr *e);

#endif
