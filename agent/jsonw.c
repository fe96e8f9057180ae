/*
 * jsonw.c - compact JSON text with sorted keys (see jsonw.h).
 *
 * What jansson's dumper does, without a callback per piece and a UTF-8
 * decode per character: runs of plain bytes are copied at once, and only
 * bytes past 0x7f are checked as UTF-8 (jansson refuses a string that is
 * not, so this does too).  Keys sort as jansson sorts them (memcmp, then
 * length); control characters are escaped as jansson escapes them.
 * Reals, rare in our documents, are left to jansson.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

struct wbuf {
	char	*p;
	size_t	 len, cap;
	int	 bad;
};

static int
grow(struct wbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->bad)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	cap = b->cap > 0 ? b->cap : 1024;
	while (cap < b->len + more + 1) {
		if (cap > SIZE_MAX / 2) {
			b->bad = 1;
			return -1;
		}
		cap *= 2;
	}
	if ((p = realloc(b->p, cap)) == NULL) {
		b->bad = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

static void
put(struct wbuf *b, const void *s, size_t n)
{
	if (grow(b, n) == 0) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void
putc1(struct wbuf *b, char c)
{
	if (grow(b, 1) == 0)
		b->p[b->len++] = c;
}

/* The length of the UTF-8 sequence at s (n bytes left) if it is one
 * jansson accepts (shortest form, no surrogates, at most U+10FFFF), or
 * 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t k, i;

	if (s[0] < 0xc2)
		return 0;		/* a continuation, or overlong */
	if (s[0] < 0xe0) {
		k = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		k = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] < 0xf5) {
		k = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < k)
		return 0;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

static void
put_string(struct wbuf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, k;
	char esc[8];

	putc1(b, '"');
	while (i < len && !b->bad) {
		for (run = i; run < len && s[run] >= 0x20 && s[run] < 0x80 &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		put(b, s + i, run - i);
		if ((i = run) == len)
			break;
		if (s[i] >= 0x80) {
			if ((k = utf8_len(s + i, len - i)) == 0) {
				b->bad = 1;
				return;
			}
			put(b, s + i, k);
			i += k;
			continue;
		}
		switch (s[i]) {
		case '"':
			put(b, "\\\"", 2);
			break;
		case '\\':
			put(b, "\\\\", 2);
			break;
		case '\b':
			put(b, "\\b", 2);
			break;
		case '\f':
			put(b, "\\f", 2);
			break;
		case '\n':
			put(b, "\\n", 2);
			break;
		case '\r':
			put(b, "\\r", 2);
			break;
		case '\t':
			put(b, "\\t", 2);
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", s[i]);
			put(b, esc, 6);
			break;
		}
		i++;
	}
	putc1(b, '"');
}

struct keylen {
	const char	*key;
	size_t		 len;
	json_t		*v;
};

static int
key_cmp(const void *x, const void *y)
{
	const struct keylen *a = x, *b = y;
	int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);

	if (c != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

static void	put_value(struct wbuf *, const json_t *, int);

static void
put_object(struct wbuf *b, const json_t *o, int depth)
{
	struct keylen small[16], *keys = small;
	size_t n = json_object_size(o), i = 0;
	void *it;

	if (n == 0) {
		put(b, "{}", 2);
		return;
	}
	if (n > sizeof(small) / sizeof(small[0]) &&
	    (keys = calloc(n, sizeof(*keys))) == NULL) {
		b->bad = 1;
		return;
	}
	for (it = json_object_iter((json_t *)o); it != NULL && i < n;
	    it = json_object_iter_next((json_t *)o, it), i++) {
		keys[i].key = json_object_iter_key(it);
		keys[i].len = json_object_iter_key_len(it);
		keys[i].v = json_object_iter_value(it);
	}
	n = i;
	qsort(keys, n, sizeof(*keys), key_cmp);
	putc1(b, '{');
	for (i = 0; i < n && !b->bad; i++) {
		if (i > 0)
			putc1(b, ',');
		put_string(b, keys[i].key, keys[i].len);
		putc1(b, ':');
		put_value(b, keys[i].v, depth + 1);
	}
	putc1(b, '}');
	if (keys != small)
		free(keys);
}

static void
put_value(struct wbuf *b, const json_t *v, int depth)
{
	char num[32];
	size_t i;
	char *t;
	int n;

	if (depth > JSONW_DEPTH_MAX || v == NULL) {
		b->bad = 1;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		put_object(b, v, depth);
		break;
	case JSON_ARRAY:
		putc1(b, '[');
		for (i = 0; i < json_array_size(v) && !b->bad; i++) {
			if (i > 0)
				putc1(b, ',');
			put_value(b, json_array_get(v, i), depth + 1);
		}
		putc1(b, ']');
		break;
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		put(b, num, (size_t)n);
		break;
	case JSON_REAL:
		/* jansson's own format (precision, "1.0" for integers). */
		if ((t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) ==
		    NULL) {
			b->bad = 1;
			return;
		}
		put(b, t, strlen(t));
		free(t);
		break;
	case JSON_TRUE:
		put(b, "true", 4);
		break;
	case JSON_FALSE:
		put(b, "false", 5);
		break;
	case JSON_NULL:
		put(b, "null", 4);
		break;
	}
}

char *
jsonw_dumps(const json_t *v, size_t *ret_len)
{
	struct wbuf b = { NULL, 0, 0, 0 };

	put_value(&b, v, 0);
	if (b.bad || grow(&b, 0) < 0) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';
	if (ret_len != NULL)
		*ret_len = b.len;
	return b.p;
}
