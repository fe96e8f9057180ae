/*
 * host.c - xtcmk-example-host, a small host service using libxtcmk the way
 * a real one would: dlopen() the module, take its function table, ask for
 * decisions, and encrypt files under a per-file data key (envelope
 * encryption).  The host may link OpenSSL (its own program); the module
 * never does.
 *
 * Encrypted file format (all integers big-endian):
 *
 *	"XTCF1"		5 bytes magic
 *	blob_len	u16, 1..XTCMK_BLOB_MAX
 *	blob		the wrapped DEK, as xtcmkd returned it
 *	nonce		12 bytes
 *	ciphertext	AES-GCM, the magic as additional data; the key
 *			size is the DEK's (16, 24 or 32 bytes: -k)
 *	tag		16 bytes
 *
 * The blob is not authenticated by the tag: a swapped blob unwraps to
 * another key (or fails), and the tag then fails.  That keeps `rewrap`
 * cheap: it replaces the blob and copies the rest of the file.
 *
 * With a 1.1 module (xtcmk_get_functions_v) it uses the key id the agent
 * returns, the key-state enum, ping, and says which failures are worth a
 * retry; with a 1.0 module it does what it did before.
 */
#include <sys/stat.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "xtcmk.h"

#define MAGIC		"XTCF1"
#define MAGIC_LEN	5
#define NONCE_LEN	12
#define TAG_LEN		16
#define CHUNK		65536

static const struct xtcmk_functions *x;
static struct xtcmk *h;
static int v11;			/* the module has API 1.1 */
static unsigned key_len;	/* -k: DEK length for encrypt; 0: 32 */

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: xtcmk-example-host [-l library] [-s socket] "
	    "[-t timeout_ms] [-k 16|24|32] command [arg ...]\n"
	    "       decide customer ...\n"
	    "       encrypt customer in out\n"
	    "       decrypt customer in out\n"
	    "       rewrap customer file\n"
	    "       inspect file ...\n"
	    "       status customer\n"
	    "       ping\n");
	exit(1);
}

/* Report a failed module call and return 1. */
static int
fail(const char *what, const char *customer, int rc)
{
	const char *msg = x->last_error();

	fprintf(stderr, "xtcmk-example-host: %s %s: %s%s%s%s\n", what,
	    customer, x->strerror(rc), *msg != '\0' ? ": " : "", msg,
	    v11 && x->is_retryable(rc) ? " (temporary: retry later)" : "");
	return 1;
}

static int
syserr(const char *what, const char *path)
{
	fprintf(stderr, "xtcmk-example-host: %s %s: %s\n", what, path,
	    strerror(errno));
	return 1;
}

static void
print_list(const struct xtcmk_decision *d, enum xtcmk_field f)
{
	size_t i, n = x->decision_count(d, f);

	if (n == 0)
		printf("-");
	for (i = 0; i < n; i++)
		printf("%s%s", i > 0 ? ", " : "", x->decision_item(d, f, i));
	printf("\n");
}

static const char *
opt(const struct xtcmk_decision *d, enum xtcmk_field f)
{
	const char *s = x->decision_str(d, f);

	return s != NULL ? s : "-";
}

static int
cmd_decide(int argc, char **argv)
{
	struct xtcmk_decision *d;
	const char *mech;
	int i, rc, ret = 0;

	if (argc < 1)
		usage();
	for (i = 0; i < argc; i++) {
		if ((rc = x->decide(h, argv[i], &d)) != XTCMK_OK) {
			ret = fail("decide", argv[i], rc);
			continue;
		}
		printf("customer %s (tenant %s)\n", argv[i],
		    opt(d, XTCMK_F_TENANT));
		printf("  application  %s (client id %s)\n",
		    opt(d, XTCMK_F_APP), opt(d, XTCMK_F_APP_CLIENT_ID));
		printf("  workloads    ");
		print_list(d, XTCMK_F_WORKLOAD);
		printf("  this host    %s: %s\n", opt(d, XTCMK_F_THIS_WORKLOAD),
		    x->decision_u64(d, XTCMK_F_SERVED, 0) ? "serves this "
		    "customer" : "NOT served (no FIC on the application)");
		mech = opt(d, XTCMK_F_ROLE_MECHANISM);
		if (strcmp(mech, "access-policy") == 0) {
			printf("  grant        access policy, key "
			    "permissions: ");
			print_list(d, XTCMK_F_PERMISSION);
		} else
			printf("  grant        %s role \"%s\" (%s) on the %s\n",
			    mech, opt(d, XTCMK_F_ROLE_NAME),
			    opt(d, XTCMK_F_ROLE_ID),
			    opt(d, XTCMK_F_ROLE_SCOPE));
		printf("  key          %s\n", opt(d, XTCMK_F_KEY_URI));
		printf("  versioning   %s (version %s), refresh %" PRIu64
		    " s, revocation check %" PRIu64 " s, keep old version %"
		    PRIu64 " s\n", opt(d, XTCMK_F_KEY_MODE),
		    opt(d, XTCMK_F_KEY_VERSION),
		    x->decision_u64(d, XTCMK_F_REFRESH_S, 0),
		    x->decision_u64(d, XTCMK_F_REVOCATION_CHECK_S, 0),
		    x->decision_u64(d, XTCMK_F_GRACE_S, 0));
		printf("  DEK cache    %" PRIu64 " s, at most %" PRIu64
		    " keys\n", x->decision_u64(d, XTCMK_F_CACHE_TTL_S, 0),
		    x->decision_u64(d, XTCMK_F_CACHE_MAX, 0));
		printf("  resources    ");
		print_list(d, XTCMK_F_KIND);
		printf("  policy       %s\n", opt(d, XTCMK_F_POLICY_HASH));
		x->decision_free(d);
	}
	return ret;
}

/* Temporary file next to `path`, renamed over it only on success. */
static FILE *
tmp_open(const char *path, char *tmp, size_t tmplen)
{
	int fd;
	FILE *f;

	if ((size_t)snprintf(tmp, tmplen, "%s.XXXXXX", path) >= tmplen) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return NULL;
	if ((f = fdopen(fd, "wb")) == NULL) {
		close(fd);
		unlink(tmp);
	}
	return f;
}

static int
tmp_commit(FILE *f, const char *tmp, const char *path, int ok)
{
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (ok && rename(tmp, path) == 0)
		return 0;
	unlink(tmp);
	return -1;
}

static int
write_header(FILE *out, const uint8_t *blob, size_t blob_len)
{
	uint8_t bl[2] = { (uint8_t)(blob_len >> 8), (uint8_t)blob_len };

	return fwrite(MAGIC, 1, MAGIC_LEN, out) == MAGIC_LEN &&
	    fwrite(bl, 1, 2, out) == 2 &&
	    fwrite(blob, 1, blob_len, out) == blob_len ? 0 : -1;
}

/* Read the header; leaves `in` at the nonce. */
static int
read_header(FILE *in, uint8_t *blob, size_t *ret_blob_len)
{
	uint8_t m[MAGIC_LEN], bl[2];
	size_t n;

	if (fread(m, 1, MAGIC_LEN, in) != MAGIC_LEN ||
	    memcmp(m, MAGIC, MAGIC_LEN) != 0 || fread(bl, 1, 2, in) != 2)
		return -1;
	n = (size_t)bl[0] << 8 | bl[1];
	if (n == 0 || n > XTCMK_BLOB_MAX || fread(blob, 1, n, in) != n)
		return -1;
	*ret_blob_len = n;
	return 0;
}

/*
 * The key id (with version) a wrapped blob names, from the documented
 * blob format v1 (xtcmk-blob(5)): customer and key id are plain text
 * after the 8-byte header.  For display only; the agent checks blobs.
 */
static void
blob_kid(const uint8_t *b, size_t len, char *kid, size_t kidlen)
{
	size_t c, k, h;

	snprintf(kid, kidlen, "?");
	if (len < 13 || memcmp(b, "XTCB", 4) != 0)
		return;
	h = b[4] >= 2 ? 9 : 8;	/* format 2: a DEK length byte */
	c = (size_t)b[h] << 8 | b[h + 1];
	if (h + 2 + c + 2 > len)
		return;
	k = (size_t)b[h + 2 + c] << 8 | b[h + 3 + c];
	if (h + 4 + c + k > len || k >= kidlen)
		return;
	memcpy(kid, b + h + 4 + c, k);
	kid[k] = '\0';
}

static int
cmd_inspect(int argc, char **argv)
{
	uint8_t blob[XTCMK_BLOB_MAX];
	char kid[600];
	size_t blob_len;
	FILE *in;
	int i, rc = 0;

	if (argc < 1)
		usage();
	for (i = 0; i < argc; i++) {
		if ((in = fopen(argv[i], "rbe")) == NULL) {
			rc = syserr("cannot open", argv[i]);
			continue;
		}
		if (read_header(in, blob, &blob_len) != 0) {
			fprintf(stderr, "xtcmk-example-host: %s is not an "
			    "xtcmk-encrypted file\n", argv[i]);
			rc = 1;
		} else {
			blob_kid(blob, blob_len, kid, sizeof(kid));
			printf("%s: data key wrapped by %s\n", argv[i], kid);
		}
		fclose(in);
	}
	return rc;
}

/* AES-GCM with a key of the DEK's length; NULL for other lengths. */
static const EVP_CIPHER *
gcm_for(size_t dek_len)
{
	switch (dek_len) {
	case 16:
		return EVP_aes_128_gcm();
	case 24:
		return EVP_aes_192_gcm();
	case 32:
		return EVP_aes_256_gcm();
	}
	return NULL;
}

static int
cmd_encrypt(int argc, char **argv)
{
	uint8_t dek[XTCMK_DEK_LEN], blob[XTCMK_BLOB_MAX], nonce[NONCE_LEN];
	uint8_t tag[TAG_LEN], *ibuf = NULL, *obuf = NULL;
	char tmp[PATH_MAX], kid[XTCMK_KEY_ID_MAX + 1];
	EVP_CIPHER_CTX *ctx = NULL;
	FILE *in = NULL, *out = NULL;
	size_t blob_len = sizeof(blob), dek_len = XTCMK_DEK_LEN, n;
	const EVP_CIPHER *cipher;
	int rc, outl, ok = 0;

	if (argc != 3)
		usage();
	if (key_len != 0 && key_len != XTCMK_DEK_LEN && !v11) {
		fprintf(stderr, "xtcmk-example-host: -k %u needs a libxtcmk "
		    "with API 1.1\n", key_len);
		return 1;
	}
	if ((in = fopen(argv[1], "rbe")) == NULL)
		return syserr("cannot open", argv[1]);
	if (v11) {
		struct xtcmk_opts o = { .size = sizeof(o),
		    .dek_len = key_len };

		rc = x->dek_new2(h, argv[0], &o, dek, &dek_len, blob,
		    &blob_len, kid, sizeof(kid));
		if (rc == XTCMK_OK && gcm_for(dek_len) == NULL) {
			fprintf(stderr, "xtcmk-example-host: the agent made a "
			    "%zu-byte data key; AES-GCM takes 16, 24 or 32\n",
			    dek_len);
			OPENSSL_cleanse(dek, sizeof(dek));
			fclose(in);
			return 1;
		}
	} else {
		rc = x->dek_new(h, argv[0], dek, blob, &blob_len);
		blob_kid(blob, blob_len, kid, sizeof(kid));
	}
	if (rc != XTCMK_OK) {
		fclose(in);
		return fail("dek_new", argv[0], rc);
	}
	if ((out = tmp_open(argv[2], tmp, sizeof(tmp))) == NULL) {
		syserr("cannot create", argv[2]);
		goto done;
	}
	ibuf = malloc(CHUNK);
	obuf = malloc(CHUNK + 32);
	ctx = EVP_CIPHER_CTX_new();
	if (ibuf == NULL || obuf == NULL || ctx == NULL ||
	    RAND_bytes(nonce, sizeof(nonce)) != 1 ||
	    (cipher = gcm_for(dek_len)) == NULL ||
	    EVP_EncryptInit_ex(ctx, cipher, NULL, dek, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &outl, (const uint8_t *)MAGIC,
	    MAGIC_LEN) != 1 || write_header(out, blob, blob_len) != 0 ||
	    fwrite(nonce, 1, NONCE_LEN, out) != NONCE_LEN)
		goto done;
	while ((n = fread(ibuf, 1, CHUNK, in)) > 0) {
		if (EVP_EncryptUpdate(ctx, obuf, &outl, ibuf, (int)n) != 1 ||
		    fwrite(obuf, 1, (size_t)outl, out) != (size_t)outl)
			goto done;
	}
	if (ferror(in) || EVP_EncryptFinal_ex(ctx, obuf, &outl) != 1 ||
	    fwrite(obuf, 1, (size_t)outl, out) != (size_t)outl ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1 ||
	    fwrite(tag, 1, TAG_LEN, out) != TAG_LEN)
		goto done;
	ok = 1;
	printf("%s -> %s: encrypted with a new %zu-byte data key wrapped by "
	    "%s\n", argv[1], argv[2], dek_len, kid);
done:
	OPENSSL_cleanse(dek, sizeof(dek));
	if (ibuf != NULL)
		OPENSSL_cleanse(ibuf, CHUNK);
	free(ibuf);
	free(obuf);
	EVP_CIPHER_CTX_free(ctx);
	fclose(in);
	if (out != NULL && tmp_commit(out, tmp, argv[2], ok) == 0)
		return 0;
	fprintf(stderr, "xtcmk-example-host: cannot encrypt %s to %s\n",
	    argv[1], argv[2]);
	return 1;
}

static int
cmd_decrypt(int argc, char **argv)
{
	uint8_t dek[XTCMK_DEK_LEN], blob[XTCMK_BLOB_MAX], nonce[NONCE_LEN];
	uint8_t tag[TAG_LEN], *ibuf = NULL, *obuf = NULL;
	char tmp[PATH_MAX];
	EVP_CIPHER_CTX *ctx = NULL;
	FILE *in, *out = NULL;
	struct stat st;
	size_t blob_len, n, dek_len = sizeof(dek);
	const EVP_CIPHER *cipher = NULL;
	off_t left;
	int rc, outl, ok = 0, keyed = 0;

	if (argc != 3)
		usage();
	if ((in = fopen(argv[1], "rbe")) == NULL)
		return syserr("cannot open", argv[1]);
	if (fstat(fileno(in), &st) == -1 || read_header(in, blob,
	    &blob_len) != 0 || fread(nonce, 1, NONCE_LEN, in) != NONCE_LEN ||
	    (left = st.st_size - ftello(in) - TAG_LEN) < 0) {
		fprintf(stderr, "xtcmk-example-host: %s is not an "
		    "xtcmk-encrypted file\n", argv[1]);
		fclose(in);
		return 1;
	}
	/* The blob says how long its key is, hence which AES. */
	if ((rc = v11 ? x->dek_unwrap2(h, argv[0], NULL, blob, blob_len, dek,
	    &dek_len) : x->dek_unwrap(h, argv[0], blob, blob_len, dek)) !=
	    XTCMK_OK) {
		fclose(in);
		return fail("dek_unwrap", argv[0], rc);
	}
	keyed = 1;
	if ((cipher = gcm_for(dek_len)) == NULL)
		fprintf(stderr, "xtcmk-example-host: %s: a %zu-byte data key "
		    "is not an AES-GCM key\n", argv[1], dek_len);
	if ((out = tmp_open(argv[2], tmp, sizeof(tmp))) == NULL) {
		syserr("cannot create", argv[2]);
		goto done;
	}
	ibuf = malloc(CHUNK);
	obuf = malloc(CHUNK + 32);
	ctx = EVP_CIPHER_CTX_new();
	if (ibuf == NULL || obuf == NULL || ctx == NULL || cipher == NULL ||
	    EVP_DecryptInit_ex(ctx, cipher, NULL, dek, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &outl, (const uint8_t *)MAGIC,
	    MAGIC_LEN) != 1)
		goto done;
	while (left > 0) {
		n = left > CHUNK ? CHUNK : (size_t)left;
		if (fread(ibuf, 1, n, in) != n ||
		    EVP_DecryptUpdate(ctx, obuf, &outl, ibuf, (int)n) != 1 ||
		    fwrite(obuf, 1, (size_t)outl, out) != (size_t)outl)
			goto done;
		left -= (off_t)n;
	}
	if (fread(tag, 1, TAG_LEN, in) != TAG_LEN ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto done;
	if (EVP_DecryptFinal_ex(ctx, obuf, &outl) != 1) {
		fprintf(stderr, "xtcmk-example-host: %s: authentication "
		    "failed (tampered file or wrong key)\n", argv[1]);
		goto done;
	}
	ok = 1;
done:
	if (keyed)
		OPENSSL_cleanse(dek, sizeof(dek));
	if (obuf != NULL)
		OPENSSL_cleanse(obuf, CHUNK + 32);
	free(ibuf);
	free(obuf);
	EVP_CIPHER_CTX_free(ctx);
	fclose(in);
	if (out != NULL && tmp_commit(out, tmp, argv[2], ok) == 0)
		return 0;
	fprintf(stderr, "xtcmk-example-host: cannot decrypt %s\n", argv[1]);
	return 1;
}

static int
cmd_rewrap(int argc, char **argv)
{
	uint8_t blob[XTCMK_BLOB_MAX], nb[XTCMK_BLOB_MAX], *buf;
	char tmp[PATH_MAX], kid[XTCMK_KEY_ID_MAX + 1];
	FILE *in, *out;
	size_t blob_len, nb_len = sizeof(nb), n;
	int rc, ok = 0;

	if (argc != 2)
		usage();
	if ((in = fopen(argv[1], "rbe")) == NULL)
		return syserr("cannot open", argv[1]);
	if (read_header(in, blob, &blob_len) != 0) {
		fprintf(stderr, "xtcmk-example-host: %s is not an "
		    "xtcmk-encrypted file\n", argv[1]);
		fclose(in);
		return 1;
	}
	if ((rc = v11 ? x->dek_rewrap2(h, argv[0], NULL, blob, blob_len, nb,
	    &nb_len, kid, sizeof(kid)) : x->dek_rewrap(h, argv[0], blob,
	    blob_len, nb, &nb_len)) != XTCMK_OK) {
		fclose(in);
		return fail("dek_rewrap", argv[0], rc);
	}
	if ((out = tmp_open(argv[1], tmp, sizeof(tmp))) == NULL) {
		fclose(in);
		return syserr("cannot create a file next to", argv[1]);
	}
	if ((buf = malloc(CHUNK)) != NULL &&
	    write_header(out, nb, nb_len) == 0) {
		ok = 1;
		while ((n = fread(buf, 1, CHUNK, in)) > 0)
			if (fwrite(buf, 1, n, out) != n)
				ok = 0;
		if (ferror(in))
			ok = 0;
	}
	free(buf);
	fclose(in);
	if (tmp_commit(out, tmp, argv[1], ok) != 0) {
		fprintf(stderr, "xtcmk-example-host: cannot rewrite %s\n",
		    argv[1]);
		return 1;
	}
	printf("%s: data key rewrapped to the current key version%s%s\n",
	    argv[1], v11 ? ", " : "", v11 ? kid : "");
	return 0;
}

static const char *const state_text[] = {
	[XTCMK_KEY_UNKNOWN] = "unknown",
	[XTCMK_KEY_ACTIVE] = "active",
	[XTCMK_KEY_REVOKED] = "revoked",
	[XTCMK_KEY_UNCONFIRMED] = "unconfirmed",
};

static int
cmd_status(int argc, char **argv)
{
	char state[32], reason[512], kid[XTCMK_KEY_ID_MAX + 1];
	enum xtcmk_key_state st;
	int rc;

	if (argc != 1)
		usage();
	if (v11) {
		if ((rc = x->key_state(h, argv[0], NULL, &st, reason,
		    sizeof(reason), kid, sizeof(kid))) != XTCMK_OK)
			return fail("status", argv[0], rc);
		printf("%s: key %s%s%s\n", argv[0], (size_t)st <
		    sizeof(state_text) / sizeof(state_text[0]) ?
		    state_text[st] : "(newer state)", *reason != '\0' ?
		    ": " : "", reason);
		if (*kid != '\0')
			printf("%s: version in force %s\n", argv[0], kid);
		return st == XTCMK_KEY_ACTIVE ? 0 : 1;
	}
	if ((rc = x->key_status(h, argv[0], state, sizeof(state), reason,
	    sizeof(reason))) != XTCMK_OK)
		return fail("status", argv[0], rc);
	printf("%s: key %s%s%s\n", argv[0], state, *reason != '\0' ? ": " :
	    "", reason);
	return strcmp(state, "active") == 0 ? 0 : 1;
}

static int
cmd_ping(int argc, char **argv)
{
	char agent[XTCMK_AGENT_MAX + 1];
	int rc;

	(void)argv;
	if (argc != 0)
		usage();
	if (!v11) {
		fprintf(stderr, "xtcmk-example-host: ping needs libxtcmk API "
		    "1.1\n");
		return 1;
	}
	if ((rc = x->ping(h, NULL, agent, sizeof(agent))) != XTCMK_OK)
		return fail("ping", "", rc);
	printf("%s\n", agent);
	return 0;
}

/* The newest function table the module has: 1.1, else 1.0. */
static const struct xtcmk_functions *
load_functions(void *dl)
{
	xtcmk_get_functions_v_fn get_v;
	xtcmk_get_functions_fn get;
	const struct xtcmk_functions *t;

	*(void **)&get_v = dlsym(dl, "xtcmk_get_functions_v");
	if (get_v != NULL && (t = get_v(XTCMK_API_1_1)) != NULL &&
	    t->api_version == XTCMK_API_VERSION && XTCMK_HAS_FN(t, key_state)) {
		v11 = 1;
		return t;
	}
	*(void **)&get = dlsym(dl, "xtcmk_get_functions");
	if (get != NULL && (t = get()) != NULL &&
	    t->api_version == XTCMK_API_VERSION &&
	    XTCMK_HAS_FN(t, key_status))
		return t;
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *lib = "libxtcmk.so.1", *sock = NULL, *cmd;
	unsigned long timeout = 0;
	void *dl;
	char *end;
	int ch, rc;

	while ((ch = getopt(argc, argv, "k:l:s:t:")) != -1) {
		switch (ch) {
		case 'k':
			errno = 0;
			key_len = (unsigned)strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || gcm_for(key_len) ==
			    NULL) {
				fprintf(stderr, "xtcmk-example-host: -k takes "
				    "16, 24 or 32 (AES-128, -192, -256)\n");
				return 1;
			}
			break;
		case 'l':
			lib = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 't':
			errno = 0;
			timeout = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || timeout > UINT_MAX)
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	cmd = argv[0];

	if ((dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "xtcmk-example-host: %s\n", dlerror());
		return 1;
	}
	if ((x = load_functions(dl)) == NULL) {
		fprintf(stderr, "xtcmk-example-host: %s is not a usable "
		    "libxtcmk (API version %d needed)\n", lib,
		    XTCMK_API_VERSION);
		return 1;
	}
	if ((rc = x->open(sock, (unsigned)timeout, &h)) != XTCMK_OK) {
		fprintf(stderr, "xtcmk-example-host: %s: %s\n",
		    x->strerror(rc), x->last_error());
		return 1;
	}
	if (strcmp(cmd, "decide") == 0)
		rc = cmd_decide(argc - 1, argv + 1);
	else if (strcmp(cmd, "encrypt") == 0)
		rc = cmd_encrypt(argc - 1, argv + 1);
	else if (strcmp(cmd, "decrypt") == 0)
		rc = cmd_decrypt(argc - 1, argv + 1);
	else if (strcmp(cmd, "inspect") == 0)
		rc = cmd_inspect(argc - 1, argv + 1);
	else if (strcmp(cmd, "rewrap") == 0)
		rc = cmd_rewrap(argc - 1, argv + 1);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(argc - 1, argv + 1);
	else if (strcmp(cmd, "ping") == 0)
		rc = cmd_ping(argc - 1, argv + 1);
	else
		usage();
	x->close(h);
	dlclose(dl);
	return rc;
}
