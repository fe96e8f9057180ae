/*
 * xtcmk-luks - enrol a LUKS2 volume with a customer-managed key through
 * xtcmkd, and keep its token current after key rotations.
 *
 * enrol asks the agent for a fresh data key (DEK) of the customer, adds a
 * keyslot whose passphrase is derived from the DEK and stores the wrapped
 * DEK in an "xtcmk" token bound to that keyslot; the cryptsetup plugin
 * (plugin.c) unlocks with it while the customer's key is enabled.
 * rewrap moves the blob to the key version in force: the DEK, hence the
 * passphrase and the keyslot, stay the same.  See xtcmk-luks(8).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcryptsetup.h>

#include "config.h"
#include "token.h"
#include "xtcmk.h"

/* cryptsetup's own limit on a key file (--keyfile-size default). */
#define KEYFILE_MAX	(8192 * 1024)
/*
 * The keyslot's PBKDF: PBKDF2-SHA256 at the smallest count LUKS2 takes.
 * Stretching protects low-entropy passphrases; this one is 256 bits from
 * HMAC-SHA256 of a random DEK, so no count makes guessing it feasible or
 * infeasible, and a memory-hard argon2id would only cost every unlock
 * up to a second and a gigabyte for nothing.
 */
#define PBKDF_ITER	1000

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: xtcmk-luks enrol DEVICE --customer ID --key-file FILE "
	    "[--socket PATH] [--timeout MS]\n"
	    "       xtcmk-luks rewrap DEVICE --token N [--socket PATH]\n"
	    "       xtcmk-luks show DEVICE\n");
}

static void
log_cb(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level == CRYPT_LOG_ERROR)
		fprintf(stderr, "xtcmk-luks: %s", msg);
}

static int
load(const char *device, struct crypt_device **ret_cd)
{
	struct crypt_device *cd;
	int r;

	if ((r = crypt_init(&cd, device)) < 0) {
		fprintf(stderr, "xtcmk-luks: %s: %s\n", device, strerror(-r));
		return -1;
	}
	crypt_set_log_callback(cd, log_cb, NULL);
	if ((r = crypt_load(cd, CRYPT_LUKS2, NULL)) < 0) {
		fprintf(stderr, "xtcmk-luks: %s is not a LUKS2 volume (%s)\n",
		    device, strerror(-r));
		crypt_free(cd);
		return -1;
	}
	*ret_cd = cd;
	return 0;
}

/* The whole key file, as cryptsetup reads it, in a malloc'd buffer. */
static int
read_keyfile(const char *path, char **ret_key, size_t *ret_len)
{
	struct stat st;
	char *key = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		fprintf(stderr, "xtcmk-luks: key file %s: %s\n", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 1 ||
	    st.st_size > KEYFILE_MAX) {
		fprintf(stderr, "xtcmk-luks: key file %s: must be a regular "
		    "file of 1 to %d bytes\n", path, KEYFILE_MAX);
		goto fail;
	}
	if ((key = token_secret_alloc((size_t)st.st_size)) == NULL)
		goto fail;
	while (len < (size_t)st.st_size) {
		n = read(fd, key + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "xtcmk-luks: key file %s: short "
			    "read\n", path);
			goto fail;
		}
		len += (size_t)n;
	}
	close(fd);
	*ret_key = key;
	*ret_len = len;
	return 0;
 fail:
	if (key != NULL)
		token_secret_free(key, (size_t)st.st_size);
	if (fd != -1)
		close(fd);
	return -1;
}

static void
agent_error(const char *what, const char *customer, int rc)
{
	const char *m = xtcmk_last_error();

	fprintf(stderr, "xtcmk-luks: %s for customer %s: %s%s%s\n", what,
	    customer, xtcmk_strerror(rc), m[0] != '\0' ? ": " : "", m);
}

static int
enrol(const char *device, const char *customer, const char *keyfile,
    const char *sock, unsigned timeout_ms)
{
	struct crypt_pbkdf_type pbkdf = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = "sha256",
		.iterations = PBKDF_ITER,
		.flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	struct crypt_device *cd = NULL;
	struct xtcmk *h = NULL;
	struct token *t = NULL;
	struct token_secret *sec = NULL;
	char cust[TOKEN_CUSTOMER_MAX + 1];
	char err[TOKEN_ERR_MAX], *key = NULL, *json = NULL;
	size_t key_len = 0;
	int ret = 1, rc, slot = -1, tok;

	if (strlen(customer) > TOKEN_CUSTOMER_MAX ||
	    (sock != NULL && strlen(sock) > TOKEN_SOCKET_MAX)) {
		fprintf(stderr, "xtcmk-luks: customer id or socket path too "
		    "long\n");
		return 2;
	}
	if (load(device, &cd) == -1 ||
	    read_keyfile(keyfile, &key, &key_len) == -1 ||
	    (t = calloc(1, sizeof(*t))) == NULL ||
	    (sec = token_secret_alloc(sizeof(*sec))) == NULL)
		goto out;
	t->blob_len = sizeof(t->blob);
	if ((rc = xtcmk_open(sock, timeout_ms, &h)) != XTCMK_OK ||
	    (rc = xtcmk_dek_new(h, customer, sec->dek, t->blob,
	    &t->blob_len)) != XTCMK_OK) {
		agent_error("cannot create a data key", customer, rc);
		goto out;
	}
	if (token_blob_ids(t->blob, t->blob_len, cust, sizeof(cust),
	    t->key_id, sizeof(t->key_id), err, sizeof(err)) < 0) {
		fprintf(stderr, "xtcmk-luks: the agent returned a bad blob: "
		    "%s\n", err);
		goto out;
	}
	if (token_passphrase(sec->dek, sec->pass) < 0) {
		fprintf(stderr, "xtcmk-luks: cannot derive the passphrase\n");
		goto out;
	}
	if ((rc = crypt_set_pbkdf_type(cd, &pbkdf)) < 0 ||
	    (slot = crypt_keyslot_add_by_passphrase(cd, CRYPT_ANY_SLOT, key,
	    key_len, sec->pass, sizeof(sec->pass))) < 0) {
		fprintf(stderr, "xtcmk-luks: cannot add a keyslot to %s: %s\n",
		    device, slot == -EPERM ? "the key file does not unlock "
		    "any keyslot" : strerror(-(slot < 0 ? slot : rc)));
		slot = -1;
		goto out;
	}
	snprintf(t->customer, sizeof(t->customer), "%s", customer);
	if (sock != NULL)
		snprintf(t->socket, sizeof(t->socket), "%s", sock);
	t->timeout_ms = timeout_ms;
	t->keyslots[0] = slot;
	t->nkeyslots = 1;
	if ((json = token_format(t)) == NULL ||
	    (tok = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json)) < 0) {
		fprintf(stderr, "xtcmk-luks: cannot store the token in %s\n",
		    device);
		crypt_keyslot_destroy(cd, slot);
		goto out;
	}
	printf("token %d: customer %s, key %s, keyslot %d\n", tok, customer,
	    t->key_id, slot);
	ret = 0;
 out:
	token_secret_free(sec, sizeof(*sec));
	token_secret_free(key, key_len);
	free(json);
	free(t);
	xtcmk_close(h);
	crypt_free(cd);
	return ret;
}

/* 0 if `pass` opens one of the token's keyslots. */
static int
opens_keyslot(struct crypt_device *cd, const struct token *t,
    const char *pass)
{
	size_t i;

	for (i = 0; i < t->nkeyslots; i++)
		if (crypt_activate_by_passphrase(cd, NULL, t->keyslots[i],
		    pass, TOKEN_PASS_LEN, 0) >= 0)
			return 0;
	return -1;
}

static int
rewrap(const char *device, int token, const char *sock)
{
	struct crypt_device *cd = NULL;
	struct xtcmk *h = NULL;
	struct token *t = NULL;
	struct token_secret *sec = NULL;
	uint8_t blob[XTCMK_BLOB_MAX];
	char cust[TOKEN_CUSTOMER_MAX + 1];
	char kid[TOKEN_KID_MAX + 1], err[TOKEN_ERR_MAX];
	const char *json;
	char *njson = NULL;
	size_t blob_len = sizeof(blob);
	int ret = 1, rc;

	if (load(device, &cd) == -1 || (t = calloc(1, sizeof(*t))) == NULL ||
	    (sec = token_secret_alloc(sizeof(*sec))) == NULL)
		goto out;
	if (crypt_token_json_get(cd, token, &json) < 0) {
		fprintf(stderr, "xtcmk-luks: %s has no token %d\n", device,
		    token);
		goto out;
	}
	if (token_parse(json, t, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtcmk-luks: token %d: %s\n", token, err);
		goto out;
	}
	if (sock == NULL && t->socket[0] != '\0')
		sock = t->socket;
	if ((rc = xtcmk_open(sock, t->timeout_ms, &h)) != XTCMK_OK ||
	    (rc = xtcmk_dek_rewrap(h, t->customer, t->blob, t->blob_len,
	    blob, &blob_len)) != XTCMK_OK) {
		agent_error("cannot rewrap", t->customer, rc);
		goto out;
	}
	/* Same DEK, or the keyslot would be stranded: prove it first. */
	if ((rc = xtcmk_dek_unwrap(h, t->customer, blob, blob_len,
	    sec->dek)) != XTCMK_OK) {
		agent_error("cannot unwrap the rewrapped blob", t->customer,
		    rc);
		goto out;
	}
	if (token_passphrase(sec->dek, sec->pass) < 0 ||
	    opens_keyslot(cd, t, sec->pass) == -1) {
		fprintf(stderr, "xtcmk-luks: the rewrapped data key does not "
		    "open the token's keyslots; token %d left unchanged\n",
		    token);
		goto out;
	}
	if (token_blob_ids(blob, blob_len, cust, sizeof(cust), kid,
	    sizeof(kid), err, sizeof(err)) < 0) {
		fprintf(stderr, "xtcmk-luks: the agent returned a bad blob: "
		    "%s\n", err);
		goto out;
	}
	if (strcmp(kid, t->key_id) == 0) {
		printf("token %d: already at the current key version %s\n",
		    token, kid);
		ret = 0;
		goto out;
	}
	printf("token %d: key %s -> %s\n", token, t->key_id, kid);
	memcpy(t->blob, blob, blob_len);
	t->blob_len = blob_len;
	memcpy(t->key_id, kid, sizeof(t->key_id));
	if ((njson = token_format(t)) == NULL ||
	    crypt_token_json_set(cd, token, njson) < 0) {
		fprintf(stderr, "xtcmk-luks: cannot update token %d in %s\n",
		    token, device);
		goto out;
	}
	ret = 0;
 out:
	token_secret_free(sec, sizeof(*sec));
	free(njson);
	free(t);
	xtcmk_close(h);
	crypt_free(cd);
	return ret;
}

static int
show(const char *device)
{
	struct crypt_device *cd;
	struct token *t;
	const char *type, *json;
	char err[TOKEN_ERR_MAX];
	size_t j;
	int i, max, n = 0, ret = 0;

	if (load(device, &cd) == -1)
		return 1;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		crypt_free(cd);
		return 1;
	}
	max = crypt_token_max(CRYPT_LUKS2);
	for (i = 0; i < max; i++) {
		if (crypt_token_status(cd, i, &type) == CRYPT_TOKEN_INACTIVE ||
		    type == NULL || strcmp(type, TOKEN_TYPE) != 0 ||
		    crypt_token_json_get(cd, i, &json) < 0)
			continue;
		n++;
		if (token_parse(json, t, err, sizeof(err)) < 0) {
			printf("token %d: invalid: %s\n", i, err);
			ret = 1;
			continue;
		}
		printf("token %d: customer %s, key %s, keyslots", i,
		    t->customer, t->key_id);
		for (j = 0; j < t->nkeyslots; j++)
			printf(" %d", t->keyslots[j]);
		printf(", socket %s, timeout %u ms\n", t->socket[0] != '\0' ?
		    t->socket : "(default)", t->timeout_ms);
	}
	if (n == 0) {
		fprintf(stderr, "xtcmk-luks: %s has no xtcmk token\n", device);
		ret = 1;
	}
	free(t);
	crypt_free(cd);
	return ret;
}

static int
number(const char *s, long min, long max, const char *what, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		fprintf(stderr, "xtcmk-luks: %s must be %ld to %ld, not %s\n",
		    what, min, max, s);
		return -1;
	}
	*ret = v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "customer",	required_argument, NULL, 'c' },
		{ "key-file",	required_argument, NULL, 'k' },
		{ "socket",	required_argument, NULL, 's' },
		{ "timeout",	required_argument, NULL, 't' },
		{ "token",	required_argument, NULL, 'n' },
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cmd, *customer = NULL, *keyfile = NULL, *sock = NULL;
	long timeout = TOKEN_TIMEOUT_DEFAULT, token = -1;
	int c;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	argv++;
	argc--;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			customer = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 't':
			if (number(optarg, 1, TOKEN_TIMEOUT_MAX, "--timeout",
			    &timeout) == -1)
				return 2;
			break;
		case 'n':
			if (number(optarg, 0, INT_MAX, "--token", &token) == -1)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "enrol") == 0 && customer != NULL && keyfile != NULL)
		return enrol(argv[optind], customer, keyfile, sock,
		    (unsigned)timeout);
	if (strcmp(cmd, "rewrap") == 0 && token >= 0)
		return rewrap(argv[optind], (int)token, sock);
	if (strcmp(cmd, "show") == 0)
		return show(argv[optind]);
	usage(stderr);
	return 2;
}
