/*
 * fuzz_client_reply.c - how libxtcmk reads the agent's replies: the
 * DECIDE reply index (decision_parse and the xtcmk_decision_* accessors),
 * the DEK and blob fields of key replies, and the error text
 * (xc_reply_message in common/client.c).
 *
 * The module's parsers are static, so this file includes module/xtcmk.c
 * whole instead of linking libxtcmk.so.  The input is a reply payload.
 * Properties: a malformed field list is refused; an accepted decision
 * answers every accessor exactly as a reference walk over the payload
 * does, with NUL-terminated strings of at most XW_STR_MAX bytes; the key
 * reply helpers accept exactly the documented shapes; error text is
 * truncated, never overrun.
 */
#include "../../module/xtcmk.c"

#include "fuzz.h"

/* The n-th string value (as the module defines one) of `tag`, or NULL. */
static const struct xw_field *
ref_str(const uint8_t *p, size_t len, uint16_t tag, size_t nth,
    struct xw_field *f)
{
	struct xw_reader r;

	xw_reader_init(&r, p, len);
	while (xw_next(&r, f) > 0) {
		if (f->tag != tag || !xw_field_is_str(f, XW_STR_MAX))
			continue;
		if (tag_is_known(tag) && tag_is_u64(tag))
			continue;
		if (nth-- == 0)
			return f;
	}
	return NULL;
}

/* The first integer value of `tag`, or `def`. */
static uint64_t
ref_u64(const uint8_t *p, size_t len, uint16_t tag, uint64_t def)
{
	struct xw_reader r;
	struct xw_field f;
	uint64_t v;

	xw_reader_init(&r, p, len);
	while (xw_next(&r, &f) > 0) {
		if (f.tag != tag || (tag_is_known(tag) && !tag_is_u64(tag)))
			continue;
		if (xw_field_u64(&f, &v) == 0)
			return v;
	}
	return def;
}

static void
check_decision(const uint8_t *p, size_t len, const struct xtcmk_decision *d)
{
	const struct xw_field *rf;
	struct xw_field f;
	const char *s;
	size_t n, i;
	unsigned t;

	for (t = 0; t <= XTCMK_DECISION_TAG_MAX + 2; t++) {
		n = xtcmk_decision_count(d, t);
		for (i = 0; i <= n; i++) {
			s = xtcmk_decision_item(d, t, i);
			rf = (t >= 1 && t <= XTCMK_DECISION_TAG_MAX) ?
			    ref_str(p, len, t, i, &f) : NULL;
			if (i == n) {
				FUZZ_CHECK(s == NULL && rf == NULL);
				break;
			}
			FUZZ_CHECK(s != NULL && rf != NULL);
			FUZZ_CHECK(strlen(s) == rf->len &&
			    memcmp(s, rf->val, rf->len) == 0);
		}
		s = xtcmk_decision_str(d, t);
		FUZZ_CHECK(s == xtcmk_decision_item(d, t, 0));
		FUZZ_CHECK(xtcmk_decision_u64(d, t, 0x5a5a) ==
		    ((t >= 1 && t <= XTCMK_DECISION_TAG_MAX) ?
		    ref_u64(p, len, t, 0x5a5a) : 0x5a5a));
	}
}

static void
check_known_shapes(const uint8_t *p, size_t len)
{
	struct xw_reader r;
	struct xw_field f;

	xw_reader_init(&r, p, len);
	while (xw_next(&r, &f) > 0) {
		if (!tag_is_known(f.tag))
			continue;
		if (tag_is_u64(f.tag))
			FUZZ_CHECK(f.len == 8);
		else
			FUZZ_CHECK(xw_field_is_str(&f, XW_STR_MAX));
	}
}

static void
check_key_replies(const uint8_t *p, size_t len, size_t cap)
{
	struct xcall x;
	struct xw_field f, g;
	size_t room;
	int found, rc, exact;

	memset(&x, 0, sizeof(x));
	x.reply = (uint8_t *)(uintptr_t)p;
	x.rlen = len;
	found = xw_find(p, len, XT_DEK, &g) == 1;
	for (exact = 0; exact <= 1; exact++) {
		room = cap;
		rc = reply_dek(&x, exact, &room, &f);
		if (rc == 0)
			FUZZ_CHECK(found && f.len <= cap && f.len >= 16 &&
			    f.len <= XTCMK_DEK_MAX &&
			    (!exact || f.len == XTCMK_DEK_LEN) && room == cap);
		else if (rc == XTCMK_E_TOOBIG)
			FUZZ_CHECK(found && g.len > cap &&
			    room == (exact ? cap : g.len));
		else
			FUZZ_CHECK(rc == XTCMK_E_PROTOCOL && (!found ||
			    g.len < 16 || g.len > XTCMK_DEK_MAX ||
			    (exact && g.len != XTCMK_DEK_LEN)));
	}

	found = xw_find(p, len, XT_BLOB, &g) == 1;
	room = cap;
	rc = reply_blob(&x, 1, &room, &f);
	if (rc == 0)
		FUZZ_CHECK(found && f.len >= 1 && f.len <= XTCMK_BLOB_MAX &&
		    f.len <= cap && f.val == g.val && room == cap);
	else if (rc == XTCMK_E_TOOBIG)
		FUZZ_CHECK(found && g.len > cap && g.len <= XTCMK_BLOB_MAX &&
		    room == g.len);
	else
		FUZZ_CHECK(rc == XTCMK_E_PROTOCOL && (!found || g.len == 0 ||
		    g.len > XTCMK_BLOB_MAX));
}

static void
check_message(const uint8_t *p, size_t len)
{
	static const size_t sizes[] = { 1, 2, 17, XC_ERR_MAX };
	struct xw_field f;
	char *buf;
	size_t i, want;
	int has;

	has = xw_find(p, len, XT_MESSAGE, &f) == 1 &&
	    xw_field_is_str(&f, XW_STR_MAX);
	xc_reply_message(p, len, NULL, 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		buf = malloc(sizes[i]);
		FUZZ_CHECK(buf != NULL);
		memset(buf, 'x', sizes[i]);
		xc_reply_message(p, len, buf, sizes[i]);
		want = has ? (f.len < sizes[i] - 1 ? f.len : sizes[i] - 1) : 0;
		FUZZ_CHECK(strlen(buf) == want);
		FUZZ_CHECK(want == 0 || memcmp(buf, f.val, want) == 0);
		free(buf);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xtcmk_decision *d = NULL;
	uint8_t *p;
	size_t cap;
	int rc;

	p = fuzz_memdup(data, size);
	rc = decision_parse(p, size, &d);
	if (rc == 0) {
		FUZZ_CHECK(d != NULL);
		FUZZ_CHECK(xw_validate(p, size) == 0);
		check_known_shapes(p, size);
		check_decision(p, size, d);
		xtcmk_decision_free(d);
	} else {
		FUZZ_CHECK(rc == XTCMK_E_PROTOCOL || rc == XTCMK_E_NOMEM);
		FUZZ_CHECK(xtcmk_last_error()[0] != '\0');
	}
	cap = size > 0 ? (size_t)data[0] << 4 : XTCMK_BLOB_MAX;
	check_key_replies(p, size, cap);
	check_message(p, size);
	free(p);
	return 0;
}
