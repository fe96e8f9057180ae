/*
 * test_keystore.c - the local keystore and the local provider: create,
 * wrap/unwrap, rotate, disable/enable, delete, restart, files and modes.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "keystore.h"
#include "provider.h"
#include "validate.h"
#include "t.h"

static char tmpdir[256];

static int
is_kid(const char *kid, const char *prefix)
{
	size_t n = strlen(prefix), i;

	if (strncmp(kid, prefix, n) != 0 || strlen(kid) != n + 32)
		return 0;
	for (i = n; i < n + 32; i++)
		if (!((kid[i] >= '0' && kid[i] <= '9') ||
		    (kid[i] >= 'a' && kid[i] <= 'f')))
			return 0;
	return 1;
}

static mode_t
mode_of(const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	if (stat(path, &st) == -1)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static void
rm_rf(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rm_rf(sub);
		}
		closedir(d);
		rmdir(path);
	} else
		unlink(path);
}

static int
uri(const char *s, struct key_uri *u)
{
	struct xerr e;
	int rc;

	rc = key_uri_parse(s, u, &e);
	if (rc < 0)
		fprintf(stderr, "key_uri_parse(%s): %s\n", s, e.msg);
	return rc;
}

static const struct provider_req req = { .customer = "acme" };

/* Threads wrap and unwrap with the current version while rotations run. */
struct conc {
	struct provider	*p;
	int		 ok;
};

static void *
conc_worker(void *arg)
{
	struct conc *c = arg;
	struct key_uri u, uv;
	struct key_state st;
	struct xerr e;
	uint8_t dek[32], out[PROVIDER_WRAPPED_MAX], back[64];
	size_t len, blen;
	int i;

	memset(dek, 0x3c, sizeof(dek));
	if (key_uri_parse("https://vlt.vault.local/keys/conc", &u, &e) < 0)
		return NULL;
	for (i = 0; i < 20; i++) {
		if (provider_get_key(c->p, &req, &u, &st, &e) < 0 ||
		    key_uri_parse(st.kid, &uv, &e) < 0 ||
		    provider_wrap(c->p, &req, &uv, dek, 32, out, sizeof(out),
		    &len, &e) < 0 ||
		    provider_unwrap(c->p, &req, &uv, out, len, back,
		    sizeof(back), &blen, &e) < 0 ||
		    blen != 32 || memcmp(back, dek, 32) != 0)
			continue;
		c->ok++;
	}
	return NULL;
}

static void
test_concurrent(struct keystore *ks, struct provider *p)
{
	struct conc c[8];
	pthread_t th[8];
	struct xerr e;
	int i, ok = 0;

	ASSERT_EQ(keystore_create(ks, "vlt", "conc", 0, NULL, &e), 0);
	for (i = 0; i < 8; i++) {
		c[i].p = p;
		c[i].ok = 0;
		pthread_create(&th[i], NULL, conc_worker, &c[i]);
	}
	for (i = 0; i < 2; i++)
		ASSERT_EQ(keystore_rotate(ks, "vlt", "conc", NULL, &e), 0);
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok += c[i].ok;
	}
	ASSERT_EQ(ok, 8 * 20);
}

static void
test_all(void)
{
	struct keystore *ks = NULL, *ks2 = NULL;
	struct provider *p;
	struct key_state st, st3, st2, g;
	struct key_uri u, uv, uold;
	struct xerr e;
	uint8_t dek[32], out[PROVIDER_WRAPPED_MAX], back[64], w_old[512];
	size_t len, blen, wold_len;
	char path[PATH_MAX], base[256], old_version[33];
	json_t *j, *v;
	size_t i;

	for (i = 0; i < sizeof(dek); i++)
		dek[i] = (uint8_t)(0xa0 + i);

	ASSERT_EQ(keystore_open(tmpdir, &ks, &e), 0);
	ASSERT_EQ(mode_of("keys"), 0700);

	/* create: default (2048) and 3072; refuse 1024 and duplicates. */
	ASSERT_EQ(keystore_create(ks, "v", "k", 0, &st, &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "vault name");
	ASSERT_EQ(keystore_create(ks, "vlt", "k", 1024, &st, &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "2048 or 3072");
	ASSERT_EQ(keystore_create(ks, "vlt", "bad/name", 0, &st, &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(keystore_create(ks, "vlt", "k", 0, &st, &e), 0);
	ASSERT_TRUE(is_kid(st.kid, "https://vlt.vault.local/keys/k/"));
	ASSERT_EQ(st.bits, 2048);
	ASSERT_EQ(st.enabled, 1);
	ASSERT_STR(st.kid + strlen(st.kid) - 32, st.version);
	ASSERT_EQ(keystore_create(ks, "vlt", "K", 0, &st2, &e),
	    -XTCMK_E_EXISTS);
	ASSERT_EQ(keystore_create(ks, "vlt", "big", 3072, &st3, &e), 0);
	ASSERT_EQ(st3.bits, 3072);
	ASSERT_TRUE(is_kid(st3.kid, "https://vlt.vault.local/keys/big/"));

	/* Files and modes. */
	ASSERT_EQ(mode_of("keys/vlt"), 0700);
	ASSERT_EQ(mode_of("keys/vlt/k"), 0700);
	ASSERT_EQ(mode_of("keys/vlt/k/meta.json"), 0600);
	snprintf(path, sizeof(path), "keys/vlt/k/%s.pem", st.version);
	ASSERT_EQ(mode_of(path), 0600);

	p = provider_local_new(ks);
	ASSERT_TRUE(p != NULL);
	if (p == NULL)
		return;

	/* get_key on a versionless URI gives the current version. */
	ASSERT_EQ(uri("https://vlt.vault.local/keys/k", &u), 0);
	ASSERT_EQ(provider_get_key(p, &req, &u, &g, &e), 0);
	ASSERT_STR(g.kid, st.kid);
	ASSERT_STR(g.version, st.version);
	ASSERT_EQ(g.enabled, 1);
	ASSERT_TRUE(g.created > 0);
	ASSERT_EQ(p->calls_get, 1);

	/* wrap / unwrap with the version. */
	ASSERT_EQ(uri(st.kid, &uv), 0);
	ASSERT_EQ(provider_wrap(p, &req, &u, dek, 32, out, sizeof(out), &len,
	    &e), -XTCMK_E_INVAL);	/* versionless: refused */
	ASSERT_EQ(provider_wrap(p, &req, &uv, dek, 32, out, sizeof(out), &len,
	    &e), 0);
	ASSERT_EQ(len, 256);
	ASSERT_EQ(provider_unwrap(p, &req, &uv, out, len, back, sizeof(back),
	    &blen, &e), 0);
	ASSERT_EQ(blen, 32);
	ASSERT_TRUE(memcmp(back, dek, 32) == 0);
	ASSERT_EQ(p->calls_wrap, 1);	/* the refused call never reached it */
	ASSERT_EQ(p->calls_unwrap, 1);
	memcpy(w_old, out, len);
	wold_len = len;

	/* 3072-bit round trip. */
	{
		struct key_uri u3;

		ASSERT_EQ(uri(st3.kid, &u3), 0);
		ASSERT_EQ(provider_wrap(p, &req, &u3, dek, 32, out,
		    sizeof(out), &len, &e), 0);
		ASSERT_EQ(len, 384);
		ASSERT_EQ(provider_unwrap(p, &req, &u3, out, len, back,
		    sizeof(back), &blen, &e), 0);
		ASSERT_TRUE(blen == 32 && memcmp(back, dek, 32) == 0);
		/* A 3072 ciphertext against the 2048 key: bad blob. */
		ASSERT_EQ(provider_unwrap(p, &req, &uv, out, len, back,
		    sizeof(back), &blen, &e), -XTCMK_E_BAD_BLOB);
	}

	/* Corrupted wrapped key: BAD_BLOB, not REVOKED. */
	memcpy(out, w_old, wold_len);
	out[17] ^= 0x40;
	ASSERT_EQ(provider_unwrap(p, &req, &uv, out, wold_len, back,
	    sizeof(back), &blen, &e), -XTCMK_E_BAD_BLOB);
	ASSERT_EQ(e.code, XTCMK_E_BAD_BLOB);

	/* Not a local URI. */
	{
		struct key_uri az;

		ASSERT_EQ(uri("https://contoso.vault.azure.net/keys/k", &az),
		    0);
		ASSERT_EQ(provider_get_key(p, &req, &az, &g, &e),
		    -XTCMK_E_INVAL);
	}

	/* rotate: the current changes, the old version still unwraps. */
	snprintf(old_version, sizeof(old_version), "%s", st.version);
	uold = uv;
	ASSERT_EQ(keystore_rotate(ks, "vlt", "k", &st2, &e), 0);
	ASSERT_TRUE(strcmp(st2.version, old_version) != 0);
	ASSERT_TRUE(is_kid(st2.kid, "https://vlt.vault.local/keys/k/"));
	ASSERT_EQ(provider_get_key(p, &req, &u, &g, &e), 0);
	ASSERT_STR(g.version, st2.version);
	ASSERT_EQ(provider_unwrap(p, &req, &uold, w_old, wold_len, back,
	    sizeof(back), &blen, &e), 0);
	ASSERT_TRUE(blen == 32 && memcmp(back, dek, 32) == 0);

	/* disable the old version: REVOKED with the promised sentence. */
	ASSERT_EQ(keystore_set_enabled(ks, "vlt", "k", old_version, 0, &e), 0);
	ASSERT_EQ(provider_unwrap(p, &req, &uold, w_old, wold_len, back,
	    sizeof(back), &blen, &e), -XTCMK_E_REVOKED);
	snprintf(base, sizeof(base), "key https://vlt.vault.local/keys/k "
	    "version %s is disabled in its vault; the customer must "
	    "re-enable it", old_version);
	ASSERT_STR(e.msg, base);
	ASSERT_EQ(provider_get_key(p, &req, &uold, &g, &e), -XTCMK_E_REVOKED);
	/* The current version is unaffected. */
	ASSERT_EQ(provider_get_key(p, &req, &u, &g, &e), 0);
	/* enable again: works. */
	ASSERT_EQ(keystore_set_enabled(ks, "vlt", "k", old_version, 1, &e), 0);
	ASSERT_EQ(provider_unwrap(p, &req, &uold, w_old, wold_len, back,
	    sizeof(back), &blen, &e), 0);
	ASSERT_EQ(keystore_set_enabled(ks, "vlt", "k", "0123", 0, &e),
	    -XTCMK_E_NOT_FOUND);

	/* disable every version; get_key of the versionless URI fails. */
	ASSERT_EQ(keystore_set_enabled(ks, "vlt", "k", NULL, 0, &e), 0);
	ASSERT_EQ(provider_get_key(p, &req, &u, &g, &e), -XTCMK_E_REVOKED);
	ASSERT_CONTAINS(e.msg, "is disabled in its vault");
	ASSERT_EQ(keystore_set_enabled(ks, "vlt", "k", NULL, 1, &e), 0);
	ASSERT_EQ(provider_get_key(p, &req, &u, &g, &e), 0);

	/* Unknown key and version: REVOKED (deleted or never existed). */
	{
		struct key_uri nk, nv;
		char s[128];

		ASSERT_EQ(uri("https://vlt.vault.local/keys/nokey", &nk), 0);
		ASSERT_EQ(provider_get_key(p, &req, &nk, &g, &e),
		    -XTCMK_E_REVOKED);
		ASSERT_CONTAINS(e.msg, "was deleted");
		snprintf(s, sizeof(s), "https://vlt.vault.local/keys/k/%s",
		    "0123456789abcdef0123456789abcdef");
		ASSERT_EQ(uri(s, &nv), 0);
		ASSERT_EQ(provider_unwrap(p, &req, &nv, w_old, wold_len, back,
		    sizeof(back), &blen, &e), -XTCMK_E_REVOKED);
	}

	/* show and list. */
	ASSERT_EQ(keystore_show(ks, "vlt", "k", &j, &e), 0);
	ASSERT_STR(json_string_value(json_object_get(j, "kty")), "RSA");
	ASSERT_STR(json_string_value(json_object_get(j, "current")),
	    st2.version);
	ASSERT_EQ(json_integer_value(json_object_get(j, "bits")), 2048);
	ASSERT_EQ(json_array_size(json_object_get(j, "versions")), 2);
	v = json_array_get(json_object_get(j, "versions"), 0);
	ASSERT_STR(json_string_value(json_object_get(v, "version")),
	    old_version);
	ASSERT_TRUE(json_is_true(json_object_get(v, "enabled")));
	ASSERT_TRUE(json_is_false(json_object_get(j, "deleted")));
	json_decref(j);
	ASSERT_EQ(keystore_show(ks, "vlt", "nope", &j, &e),
	    -XTCMK_E_NOT_FOUND);
	ASSERT_EQ(keystore_create(ks, "other", "z", 0, NULL, &e), 0);
	ASSERT_EQ(keystore_list(ks, NULL, &j, &e), 0);
	ASSERT_EQ(json_array_size(j), 3);
	ASSERT_STR(json_string_value(json_object_get(json_array_get(j, 0),
	    "vault")), "other");
	ASSERT_STR(json_string_value(json_object_get(json_array_get(j, 1),
	    "name")), "big");
	json_decref(j);
	ASSERT_EQ(keystore_list(ks, "vlt", &j, &e), 0);
	ASSERT_EQ(json_array_size(j), 2);
	json_decref(j);

	/* Disable old version before the restart to check flags persist. */
	ASSERT_EQ(keystore_set_enabled(ks, "vlt", "k", old_version, 0, &e), 0);
	/* delete big. */
	ASSERT_EQ(keystore_delete(ks, "vlt", "big", &e), 0);
	{
		struct key_uri u3;

		ASSERT_EQ(uri(st3.kid, &u3), 0);
		ASSERT_EQ(provider_wrap(p, &req, &u3, dek, 32, out,
		    sizeof(out), &len, &e), -XTCMK_E_REVOKED);
		ASSERT_CONTAINS(e.msg, "was deleted");
	}
	ASSERT_EQ(keystore_create(ks, "vlt", "big", 0, NULL, &e),
	    -XTCMK_E_EXISTS);
	ASSERT_EQ(keystore_rotate(ks, "vlt", "big", NULL, &e),
	    -XTCMK_E_CONFLICT);
	ASSERT_TRUE(p->errors > 0);

	/* "Restart": a second keystore over the same directory. */
	ASSERT_EQ(keystore_open(tmpdir, &ks2, &e), 0);
	if (ks2 != NULL) {
		ASSERT_EQ(keystore_get(ks2, "vlt", "k", NULL, &g, &e), 0);
		ASSERT_STR(g.version, st2.version);
		ASSERT_STR(g.kid, st2.kid);
		ASSERT_EQ(keystore_get(ks2, "vlt", "k", old_version, &g, &e),
		    -XTCMK_E_REVOKED);
		ASSERT_EQ(keystore_get(ks2, "vlt", "big", NULL, &g, &e),
		    -XTCMK_E_REVOKED);
		ASSERT_EQ(keystore_set_enabled(ks2, "vlt", "k", old_version, 1,
		    &e), 0);
		ASSERT_EQ(keystore_unwrap(ks2, "vlt", "k", old_version, w_old,
		    wold_len, back, sizeof(back), &blen, &e), 0);
		ASSERT_TRUE(blen == 32 && memcmp(back, dek, 32) == 0);
		ASSERT_EQ(keystore_show(ks2, "vlt", "big", &j, &e), 0);
		ASSERT_TRUE(json_is_true(json_object_get(j, "deleted")));
		ASSERT_EQ(json_integer_value(json_object_get(j, "bits")),
		    3072);
		json_decref(j);
		ASSERT_EQ(keystore_list(ks2, NULL, &j, &e), 0);
		ASSERT_EQ(json_array_size(j), 3);
		json_decref(j);
	}
	keystore_free(ks2);

	/* A leftover temporary file or a crashed create does not matter. */
	snprintf(path, sizeof(path), "%s/keys/vlt/half", tmpdir);
	ASSERT_EQ(mkdir(path, 0700), 0);
	ks2 = NULL;
	ASSERT_EQ(keystore_open(tmpdir, &ks2, &e), 0);
	ASSERT_EQ(keystore_create(ks2, "vlt", "half", 0, NULL, &e), 0);
	keystore_free(ks2);

	/*
	 * What a crash leaves is removed at the next open: temporary files
	 * of interrupted writes, and .pem files of versions meta.json does
	 * not list (never acknowledged); listed versions stay.
	 */
	{
		static const char *const junk[] = {
		    "k/.meta.json.0011223344556677.tmp",
		    "k/.0123456789abcdef0123456789abcdef.pem.8899aabbccddeeff.tmp",
		    "k/0123456789abcdef0123456789abcdef.pem",
		    "crashed/fedcba9876543210fedcba9876543210.pem" };
		struct stat sb;
		size_t i;
		FILE *f;

		snprintf(path, sizeof(path), "%s/keys/vlt/crashed", tmpdir);
		ASSERT_EQ(mkdir(path, 0700), 0);
		for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
			snprintf(path, sizeof(path), "%s/keys/vlt/%s", tmpdir,
			    junk[i]);
			if ((f = fopen(path, "w")) != NULL) {
				fputs("leftover", f);
				fclose(f);
			}
			ASSERT_EQ(stat(path, &sb), 0);
		}
		ks2 = NULL;
		ASSERT_EQ(keystore_open(tmpdir, &ks2, &e), 0);
		if (ks2 != NULL)
			ASSERT_EQ(keystore_swept(ks2), 4);
		for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
			snprintf(path, sizeof(path), "%s/keys/vlt/%s", tmpdir,
			    junk[i]);
			ASSERT_EQ(stat(path, &sb), -1);
		}
		snprintf(path, sizeof(path), "%s/keys/vlt/k/%s.pem", tmpdir,
		    st2.version);
		ASSERT_EQ(stat(path, &sb), 0);
		ASSERT_EQ(keystore_get(ks2, "vlt", "k", NULL, &g, &e), 0);
		ASSERT_STR(g.version, st2.version);
		keystore_free(ks2);
		ks2 = NULL;
		ASSERT_EQ(keystore_open(tmpdir, &ks2, &e), 0);
		if (ks2 != NULL)
			ASSERT_EQ(keystore_swept(ks2), 0);
		keystore_free(ks2);
	}

	/* A corrupt meta.json is reported with its path. */
	snprintf(path, sizeof(path), "%s/keys/other/z/meta.json", tmpdir);
	{
		FILE *f = fopen(path, "w");

		ASSERT_TRUE(f != NULL);
		if (f != NULL) {
			fputs("{\"format\": 1", f);
			fclose(f);
		}
	}
	ks2 = NULL;
	ASSERT_EQ(keystore_open(tmpdir, &ks2, &e), -XTCMK_E_INTERNAL);
	ASSERT_CONTAINS(e.msg, "keys/other/z/meta.json");
	ASSERT_TRUE(ks2 == NULL);

	test_concurrent(ks, p);
	provider_free(p);
	keystore_free(ks);
	provider_free(NULL);
	keystore_free(NULL);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/xtcmk-ks-XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_all();
	rm_rf(tmpdir);
	return t_done();
}
