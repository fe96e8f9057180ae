/*
 * test_jsonw.c - jsonw_dumps makes the text of json_dumps(JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY) byte for byte: on random documents
 * (every byte value in strings and keys, embedded NULs, UTF-8 of every
 * length, invalid UTF-8, integers at the extremes, reals, nesting), on the
 * decision log's and policy frames' shapes, and it refuses what jansson
 * refuses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonw.h"
#include "t.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* Random bytes for a string: mostly ASCII, some control characters,
 * UTF-8 of 2 to 4 bytes, now and then a NUL or an invalid byte. */
static size_t
rnd_text(char *buf, size_t max, int invalid_ok)
{
	static const char *utf8[] = { "\xc3\xa9", "\xe2\x82\xac",
	    "\xf0\x9f\x94\x91", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\x7f" };
	size_t n = rnd(24), len = 0, k;
	const char *u;

	while (len < n && len + 4 < max) {
		switch (rnd(10)) {
		case 0:
			buf[len++] = (char)rnd(0x20);
			break;
		case 1:
			u = utf8[rnd(6)];
			k = strlen(u);
			memcpy(buf + len, u, k);
			len += k;
			break;
		case 2:
			buf[len++] = "\"\\/"[rnd(3)];
			break;
		case 3:
			if (invalid_ok && rnd(8) == 0)
				buf[len++] = (char)(0x80 + rnd(0x80));
			else
				buf[len++] = 'x';
			break;
		default:
			buf[len++] = (char)(0x20 + rnd(0x5f));
			break;
		}
	}
	return len;
}

static json_t *
rnd_value(int depth, int invalid_ok)
{
	char buf[128];
	json_t *v;
	size_t n, i, len;

	switch (depth > 5 ? 2 + rnd(6) : rnd(8)) {
	case 0:
		v = json_object();
		n = rnd(8);
		for (i = 0; i < n; i++) {
			len = rnd_text(buf, sizeof(buf), 0);
			json_object_setn_new(v, buf, len,
			    rnd_value(depth + 1, invalid_ok));
		}
		return v;
	case 1:
		v = json_array();
		n = rnd(8);
		for (i = 0; i < n; i++)
			json_array_append_new(v, rnd_value(depth + 1,
			    invalid_ok));
		return v;
	case 2:
	case 3:
		len = rnd_text(buf, sizeof(buf), invalid_ok);
		return invalid_ok ? json_stringn_nocheck(buf, len) :
		    json_stringn(buf, len);
	case 4:
		switch (rnd(4)) {
		case 0:
			return json_integer(INT64_MIN);
		case 1:
			return json_integer(INT64_MAX);
		default:
			return json_integer((json_int_t)rnd(2000000) -
			    1000000);
		}
	case 5:
		return json_real(rnd(3) == 0 ? 1.0 : (double)rnd(100000) /
		    (1 + rnd(1000)));
	case 6:
		return rnd(2) ? json_true() : json_false();
	default:
		return json_null();
	}
}

static int
same(json_t *v)
{
	char *a = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
	    JSON_ENCODE_ANY), *b;
	size_t len = 0;
	int ok;

	b = jsonw_dumps(v, &len);
	if (a == NULL || b == NULL)
		ok = a == NULL && b == NULL;
	else
		ok = strcmp(a, b) == 0 && len == strlen(a);
	if (!ok)
		T_FAIL("jansson \"%s\" vs jsonw \"%s\"", a ? a : "(null)",
		    b ? b : "(null)");
	free(a);
	free(b);
	return ok;
}

int
main(void)
{
	json_t *v, *deep, *o;
	int i, fails = 0;

	/* The shapes on the hot path. */
	v = json_loads("{\"decision\":\"role\",\"customer\":\"c-1\","
	    "\"input\":{\"customer\":{\"id\":\"c-1\",\"kinds\":[],"
	    "\"labels\":{\"region\":\"westeurope\"}},\"app\":{\"name\":"
	    "\"xtcmk-westeurope-1\"}},\"output\":{\"mechanism\":\"rbac\","
	    "\"role\":\"Key Vault Crypto Service Encryption User\"},"
	    "\"time\":1764470000,\"ok\":true,\"n\":null,\"r\":2.5}", 0, NULL);
	ASSERT_TRUE(v != NULL);
	ASSERT_TRUE(same(v));
	json_decref(v);
	/* Keys that are prefixes of each other, and with NULs. */
	v = json_object();
	json_object_setn_new(v, "ab", 2, json_integer(1));
	json_object_setn_new(v, "a", 1, json_integer(2));
	json_object_setn_new(v, "a\0b", 3, json_integer(3));
	json_object_setn_new(v, "", 0, json_integer(4));
	ASSERT_TRUE(same(v));
	json_decref(v);
	/* Every control character and the escapes. */
	{
		char s[40];

		for (i = 0; i < 32; i++)
			s[i] = (char)i;
		memcpy(s + 32, "\"\\/\x7f", 4);
		v = json_stringn(s, 36);
		ASSERT_TRUE(same(v));
		json_decref(v);
	}
	/* Invalid UTF-8 (overlong, surrogate, past U+10FFFF, cut short):
	 * refused by both. */
	{
		static const char *bad[] = { "\xc0\xaf", "\xed\xa0\x80",
		    "\xf4\x90\x80\x80", "\xe2\x82", "\x80", "\xf8\x88\x80\x80"
		    "\x80" };

		for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
			v = json_stringn_nocheck(bad[i], strlen(bad[i]));
			ASSERT_TRUE(jsonw_dumps(v, NULL) == NULL);
			ASSERT_TRUE(same(v));
			json_decref(v);
		}
	}
	/* Random documents, valid and with invalid strings. */
	for (i = 0; i < 20000; i++) {
		v = rnd_value(0, i % 4 == 0);
		t_checks++;
		if (!same(v) && ++fails > 5) {
			json_decref(v);
			break;
		}
		json_decref(v);
	}
	/* Nesting past JSONW_DEPTH_MAX is refused, not followed. */
	deep = json_array();
	for (i = 0, o = deep; i < JSONW_DEPTH_MAX + 10; i++) {
		json_t *in = json_array();

		json_array_append_new(o, in);
		o = in;
	}
	ASSERT_TRUE(jsonw_dumps(deep, NULL) == NULL);
	json_decref(deep);
	return t_done();
}
