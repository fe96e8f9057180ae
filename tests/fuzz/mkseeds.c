/*
 * mkseeds.c - writes the binary seed inputs of the fuzz corpora: wrapped
 * blobs (with valid checksums and commitment tags), wire frames and reply
 * payloads.  Usage: fuzz_mkseeds CORPUSDIR (tests/fuzz/corpus).  Text
 * seeds (config files, key URIs, JSON) are written by hand.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "wire.h"

/* The fixed DEK of fuzz_blob.c (a blob's first dek_len bytes). */
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

static const char *top;

static void
put_file(const char *dir, const char *name, const void *a, size_t alen,
    const void *b, size_t blen)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", top, dir, name);
	if ((f = fopen(path, "we")) == NULL) {
		fprintf(stderr, "fuzz_mkseeds: %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
	if ((alen > 0 && fwrite(a, 1, alen, f) != alen) ||
	    (blen > 0 && fwrite(b, 1, blen, f) != blen) || fclose(f) != 0) {
		fprintf(stderr, "fuzz_mkseeds: cannot write %s\n", path);
		exit(1);
	}
}

static void
blob_seed_len(const char *name, const char *customer, const char *kid,
    uint8_t provider, size_t wrapped_len, uint8_t mode, size_t dek_len)
{
	struct blob b;
	struct xerr e;
	uint8_t out[BLOB_MAX];
	size_t len, i;

	memset(&b, 0, sizeof(b));
	snprintf(b.customer, sizeof(b.customer), "%s", customer);
	snprintf(b.kid, sizeof(b.kid), "%s", kid);
	b.alg = BLOB_ALG_RSA_OAEP_256;
	b.provider = provider;
	b.wrapped_len = wrapped_len;
	for (i = 0; i < wrapped_len; i++)
		b.wrapped[i] = (uint8_t)(i * 7 + 3);
	if (blob_encode(&b, dek, dek_len, out, sizeof(out), &len, &e) < 0) {
		fprintf(stderr, "fuzz_mkseeds: %s: %s\n", name, e.msg);
		exit(1);
	}
	put_file("blob", name, &mode, 1, out, len);
}

/* A format v1 blob: a 32-byte DEK. */
static void
blob_seed(const char *name, const char *customer, const char *kid,
    uint8_t provider, size_t wrapped_len, uint8_t mode)
{
	blob_seed_len(name, customer, kid, provider, wrapped_len, mode, 32);
}

static void
blob_seeds(void)
{
	char longc[BLOB_CUSTOMER_MAX + 1], longk[BLOB_KID_MAX + 1];
	const char *kid = "https://contoso-keys.vault.azure.net/keys/cmk-1/"
	    "0698c2156c1a4e1da5b6bab6f6422fd6";

	blob_seed("local-256", "contoso-42",
	    "https://dev.vault.local/keys/k1/0123456789abcdef0123456789abcdef",
	    BLOB_PROV_LOCAL, 256, 0);
	blob_seed("azure-512", "fabrikam", kid, BLOB_PROV_AZURE, 512, 0);
	blob_seed("minimal", "c", "https://x", BLOB_PROV_LOCAL, 1, 0);
	/* Mode 3: the harness recomputes tag and checksum. */
	blob_seed("fixed-up", "tenant:a@b.c", kid, BLOB_PROV_AZURE, 384, 3);
	memset(longc, 'c', BLOB_CUSTOMER_MAX);
	longc[BLOB_CUSTOMER_MAX] = '\0';
	memcpy(longk, "https://", 8);
	memset(longk + 8, 'k', BLOB_KID_MAX - 8);
	longk[BLOB_KID_MAX] = '\0';
	blob_seed("longest", longc, longk, BLOB_PROV_LOCAL, BLOB_WRAPPED_MAX,
	    0);
	/* Format v2: DEK lengths other than 32 recorded at offset 8. */
	blob_seed_len("v2-dek16", "contoso-42", kid, BLOB_PROV_AZURE, 24, 0,
	    16);
	blob_seed_len("v2-dek64", "fabrikam", kid, BLOB_PROV_LOCAL, 256, 0,
	    64);
}

/* A frame: header, then the payload built in `b`. */
static void
frame_seed(const char *name, uint16_t type, uint16_t status,
    const struct xw_buf *b)
{
	struct xw_hdr h = { (uint32_t)b->len, type, status, 7 };
	uint8_t hdr[XW_HDR_LEN];

	xw_hdr_encode(hdr, &h);
	put_file("wire", name, hdr, sizeof(hdr), b->data, b->len);
}

static void
decision(struct xw_buf *b)
{
	xw_put_str(b, XT_CUSTOMER, "contoso-42");
	xw_put_str(b, XT_TENANT, "00000000-0000-0000-0000-000000000001");
	xw_put_str(b, XT_APP, "xtcmk-westeurope-1");
	xw_put_str(b, XT_APP_CLIENT_ID, "11111111-2222-3333-4444-555555555555");
	xw_put_str(b, XT_WORKLOAD, "wl-we-a");
	xw_put_str(b, XT_WORKLOAD, "wl-we-b");
	xw_put_u64(b, XT_SERVED, 1);
	xw_put_str(b, XT_ROLE_MECHANISM, "rbac");
	xw_put_str(b, XT_ROLE_NAME, "Key Vault Crypto Service Encryption User");
	xw_put_str(b, XT_ROLE_ID, "e147488a-f6f5-4113-8e2d-b22465e65bf6");
	xw_put_str(b, XT_ROLE_SCOPE, "key");
	xw_put_str(b, XT_KEY_URI, "https://contoso.vault.azure.net/keys/k1");
	xw_put_str(b, XT_KEY_MODE, "auto");
	xw_put_u64(b, XT_REFRESH_S, 3600);
	xw_put_u64(b, XT_REVOCATION_CHECK_S, 300);
	xw_put_u64(b, XT_GRACE_S, 86400);
	xw_put_u64(b, XT_CACHE_TTL_S, 300);
	xw_put_u64(b, XT_CACHE_MAX, 10000);
	xw_put_str(b, XT_POLICY_HASH, "9f86d081884c7d659a2feaa0c55ad015");
	xw_put_u64(b, XT_ASSIGNED_AT, 1700000000);
	xw_put_str(b, XT_KIND, "storage");
	xw_put_str(b, XT_KIND, "host");
	xw_put_str(b, XT_THIS_WORKLOAD, "wl-we-a");
	xw_put_str(b, 77, "a field from a newer agent");
	xw_put_u64(b, 78, 42);
}

static void
wire_and_reply_seeds(void)
{
	uint8_t st[XW_PAYLOAD_MAX], dk[XTCMK_DEK_LEN] = { 1, 2, 3 };
	uint8_t blob[300];
	struct xw_buf b;

	memset(blob, 0x42, sizeof(blob));
	xw_buf_init(&b, st, sizeof(st));
	xw_put_u64(&b, XT_VERSION_MIN, 1);
	xw_put_u64(&b, XT_VERSION_MAX, 1);
	xw_put_str(&b, XT_AGENT, "libxtcmk 0.1.0");
	frame_seed("hello", XW_HELLO, 0, &b);

	xw_buf_init(&b, st, sizeof(st));
	frame_seed("ping-empty", XW_PING, 0, &b);

	xw_buf_init(&b, st, sizeof(st));
	decision(&b);
	frame_seed("decide-reply", XW_DECIDE, 0, &b);
	put_file("client_reply", "decision", b.data, b.len, NULL, 0);

	xw_buf_init(&b, st, sizeof(st));
	xw_put(&b, XT_DEK, dk, sizeof(dk));
	xw_put(&b, XT_BLOB, blob, sizeof(blob));
	frame_seed("dek-new-reply", XW_DEK_NEW, 0, &b);
	put_file("client_reply", "dek-new", b.data, b.len, NULL, 0);

	xw_buf_init(&b, st, sizeof(st));
	xw_put_str(&b, XT_MESSAGE, "customer 'x' is not registered: add it "
	    "with xtcmkctl customer add");
	frame_seed("error-reply", XW_DECIDE, 6, &b);
	put_file("client_reply", "error", b.data, b.len, NULL, 0);

	xw_buf_init(&b, st, sizeof(st));
	xw_put_str(&b, XT_KEY_STATE, "revoked");
	xw_put_str(&b, XT_KEY_REASON, "key disabled in the customer's vault");
	xw_put_str(&b, XT_KEY_ID, "https://contoso.vault.azure.net/keys/k1/"
	    "0123456789abcdef0123456789abcdef");
	frame_seed("key-status-reply", XW_KEY_STATUS, 0, &b);
	put_file("client_reply", "key-status", b.data, b.len, NULL, 0);

	xw_buf_init(&b, st, sizeof(st));
	xw_put_str(&b, XT_JSON, "{\"cmd\": \"status\"}");
	frame_seed("admin", XW_ADMIN, 0, &b);

	/* Edges: a truncated field, a wrong-size integer, a NUL in text. */
	xw_buf_init(&b, st, sizeof(st));
	xw_put_str(&b, XT_CUSTOMER, "contoso");
	b.len -= 3;
	frame_seed("truncated-field", XW_DECIDE, 0, &b);
	put_file("client_reply", "truncated", b.data, b.len, NULL, 0);
	xw_buf_init(&b, st, sizeof(st));
	xw_put(&b, XT_SERVED, "\x01", 1);
	xw_put(&b, XT_APP, "a\0b", 3);
	put_file("client_reply", "bad-shapes", b.data, b.len, NULL, 0);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_mkseeds CORPUSDIR\n");
		return 2;
	}
	top = argv[1];
	blob_seeds();
	wire_and_reply_seeds();
	return 0;
}
