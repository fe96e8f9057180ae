/*
 * fuzz_keyuri.c - the validators of agent/validate.c: key URIs (parse,
 * format, parse again), GUIDs, names, customer ids, labels and managed
 * identity resource ids.
 *
 * The input up to its first NUL byte is the string under test; what
 * follows that NUL (up to the next) is a label value.  Properties: a
 * parsed key URI formats to text that parses to the same struct (and
 * without its version to the same struct minus the version); formatting
 * never overruns a short buffer; every accepted string has the shape its
 * validator promises; every refusal carries a message.
 */
#include "validate.h"
#include "fuzz.h"

static int
all_of(const char *s, size_t n, const char *set)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(set, s[i]) == NULL)
			return 0;
	return 1;
}

#define LOWER	"abcdefghijklmnopqrstuvwxyz"
#define UPPER	"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGIT	"0123456789"
#define HEXL	"0123456789abcdef"

static int
same_uri(const struct key_uri *a, const struct key_uri *b, int version)
{
	return a->service == b->service && strcmp(a->host, b->host) == 0 &&
	    strcmp(a->vault, b->vault) == 0 && strcmp(a->name, b->name) == 0 &&
	    strcmp(a->base, b->base) == 0 && strcmp(a->scope, b->scope) == 0 &&
	    (!version || strcmp(a->version, b->version) == 0);
}

static void
check_refusal(int rc, const struct xerr *e)
{
	FUZZ_CHECK(rc == -XTCMK_E_INVAL && e->code == XTCMK_E_INVAL);
	FUZZ_CHECK(e->msg[0] != '\0');
}

static void
check_key_uri(const char *s)
{
	struct key_uri u, u2;
	struct xerr e;
	char text[KEY_URI_MAX + 64], *tight;
	size_t n, vlen;
	int rc, with;

	memset(&e, 0, sizeof(e));
	rc = key_uri_parse(s, &u, &e);
	if (rc != 0) {
		check_refusal(rc, &e);
		return;
	}
	FUZZ_CHECK(strlen(s) <= KEY_URI_MAX);
	FUZZ_CHECK(u.service == KEY_SERVICE_VAULT ||
	    u.service == KEY_SERVICE_MHSM || u.service == KEY_SERVICE_LOCAL);
	FUZZ_CHECK(strlen(u.vault) >= 3 && strlen(u.vault) <= 24 &&
	    all_of(u.vault, strlen(u.vault), LOWER DIGIT "-"));
	FUZZ_CHECK(strncmp(u.host, u.vault, strlen(u.vault)) == 0 &&
	    u.host[strlen(u.vault)] == '.');
	FUZZ_CHECK(all_of(u.host, strlen(u.host), LOWER DIGIT "-."));
	n = strlen(u.name);
	FUZZ_CHECK(n >= 1 && n <= KEY_NAME_MAX &&
	    all_of(u.name, n, LOWER UPPER DIGIT "-"));
	vlen = strlen(u.version);
	FUZZ_CHECK(vlen == 0 || (vlen == KEY_VERSION_LEN &&
	    all_of(u.version, vlen, HEXL)));
	FUZZ_CHECK(strncmp(u.base, "https://", 8) == 0 &&
	    strcmp(u.base + 8, u.host) == 0);

	for (with = 0; with <= 1; with++) {
		FUZZ_CHECK(key_uri_format(&u, with, text, sizeof(text)) == 0);
		rc = key_uri_parse(text, &u2, &e);
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(same_uri(&u, &u2, with));
		if (!with)
			FUZZ_CHECK(u2.version[0] == '\0');
		/* Exactly the text fits; one byte less does not. */
		n = strlen(text);
		tight = malloc(n + 1);
		FUZZ_CHECK(tight != NULL);
		FUZZ_CHECK(key_uri_format(&u, with, tight, n + 1) == 0);
		FUZZ_CHECK(strcmp(tight, text) == 0);
		FUZZ_CHECK(key_uri_format(&u, with, tight, n) ==
		    -XTCMK_E_TOOBIG);
		free(tight);
	}
	FUZZ_CHECK(key_uri_format(&u, 1, text, 0) == -XTCMK_E_INVAL);
}

static void
check_words(const char *s, const char *value)
{
	struct xerr e;
	size_t n = strlen(s);
	int rc;

	memset(&e, 0, sizeof(e));
	if ((rc = valid_guid(s, NULL, &e)) == 0)
		FUZZ_CHECK(n == 36 && s[8] == '-' && s[13] == '-' &&
		    s[18] == '-' && s[23] == '-');
	else
		check_refusal(rc, &e);
	if ((rc = valid_name(s, "name", &e)) == 0)
		FUZZ_CHECK(n >= 1 && n <= NAME_MAX_LEN &&
		    all_of(s, 1, LOWER UPPER DIGIT) &&
		    all_of(s, n, LOWER UPPER DIGIT "._-"));
	else
		check_refusal(rc, &e);
	if ((rc = valid_customer_id(s, &e)) == 0)
		FUZZ_CHECK(n >= 1 && n <= CUSTOMER_ID_MAX &&
		    all_of(s, 1, LOWER UPPER DIGIT) &&
		    all_of(s, n, LOWER UPPER DIGIT "._:@-"));
	else
		check_refusal(rc, &e);
	if ((rc = valid_label(s, value, &e)) == 0) {
		FUZZ_CHECK(n >= 1 && n <= LABEL_KEY_MAX &&
		    all_of(s, n, LOWER DIGIT "._/-"));
		FUZZ_CHECK(strlen(value) <= LABEL_VALUE_MAX &&
		    strchr(value, '=') == NULL);
	} else
		check_refusal(rc, &e);
	if ((rc = valid_uami_resource_id(s, &e)) == 0)
		FUZZ_CHECK(s[0] == '/' && n <= RESOURCE_ID_MAX);
	else
		check_refusal(rc, &e);
	/* NULL is refused, never dereferenced. */
	check_refusal(valid_label(s, NULL, &e), &e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	const char *value;
	size_t n;

	s = fuzz_strdup(data, size);
	n = strlen(s);
	value = n < size ? s + n + 1 : s + n;
	check_key_uri(s);
	check_words(s, value);
	free(s);
	return 0;
}
