/*
 * pagescan.c - a list page's items located in its reply text (see
 * pagescan.h).  A strict reader of the compact and the spaced forms of
 * JSON the agent writes; whatever it does not take makes it give up, and
 * the caller's JSON parser has the last word.
 */
#include <string.h>

#include "pagescan.h"

struct scan {
	const char	*p, *end;
};

static void
ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
	    *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
eat(struct scan *s, char c)
{
	ws(s);
	if (s->p >= s->end || *s->p != c)
		return 0;
	s->p++;
	return 1;
}

/*
 * A string at s->p: its bytes between the quotes in *ret and *ret_len,
 * *ret_plain 0 when it holds an escape; -1 when not a string.
 */
static int
string(struct scan *s, const char **ret, int *ret_len, int *ret_plain)
{
	const char *start;

	if (!eat(s, '"'))
		return -1;
	start = s->p;
	*ret_plain = 1;
	for (; s->p < s->end && *s->p != '"'; s->p++) {
		if ((unsigned char)*s->p < 0x20)
			return -1;
		if (*s->p == '\\') {
			*ret_plain = 0;
			if (++s->p == s->end)
				return -1;
		}
	}
	if (s->p >= s->end)
		return -1;
	*ret = start;
	*ret_len = (int)(s->p - start);
	s->p++;
	return 0;
}

/* Skip one value (of nesting at most PSCAN_DEPTH_MAX - depth). */
static int
skip(struct scan *s, int depth)
{
	const char *v;
	int n, plain;
	char close;

	ws(s);
	if (s->p >= s->end || depth > PSCAN_DEPTH_MAX)
		return -1;
	if (*s->p == '"')
		return string(s, &v, &n, &plain);
	if (*s->p != '{' && *s->p != '[') {
		for (v = s->p; s->p < s->end && (strchr("+-.eE", *s->p) !=
		    NULL || (*s->p >= '0' && *s->p <= '9') ||
		    (*s->p >= 'a' && *s->p <= 'z')); s->p++)
			;
		return s->p > v ? 0 : -1;
	}
	close = *s->p == '{' ? '}' : ']';
	s->p++;
	if (eat(s, close))
		return 0;
	do {
		if (close == '}' && (string(s, &v, &n, &plain) < 0 ||
		    !eat(s, ':')))
			return -1;
		if (skip(s, depth + 1) < 0)
			return -1;
	} while (eat(s, ','));
	return eat(s, close) ? 0 : -1;
}

/* One item: an object whose members keys[] are noted in `row`. */
static int
item(struct scan *s, const char *const *keys, int nkeys,
    struct pscan_row *row)
{
	const char *k, *v;
	int klen, vlen, plain, i;

	memset(row, 0, sizeof(*row));
	if (!eat(s, '{'))
		return -1;
	if (eat(s, '}'))
		return 0;
	do {
		if (string(s, &k, &klen, &plain) < 0 || !plain ||
		    !eat(s, ':'))
			return -1;
		for (i = 0; i < nkeys; i++)
			if ((int)strlen(keys[i]) == klen &&
			    memcmp(keys[i], k, (size_t)klen) == 0)
				break;
		ws(s);
		if (i < nkeys && s->p < s->end && *s->p == '"') {
			if (string(s, &v, &vlen, &plain) < 0 || !plain)
				return -1;
			row->v[i] = v;
			row->len[i] = vlen;
		} else if (skip(s, 1) < 0)
			return -1;
	} while (eat(s, ','));
	return eat(s, '}') ? 0 : -1;
}

int
pscan_page(const char *text, size_t len, const char *const *keys,
    int nkeys, struct pscan_row *rows, size_t max, size_t *ret_n,
    const char **ret_next, size_t *ret_next_len)
{
	struct scan s = { text, text + len };
	const char *k, *start;
	size_t n = 0;
	int klen, plain, seen = 0;

	if (nkeys > PSCAN_KEYS_MAX || !eat(&s, '{'))
		return -1;
	*ret_next = NULL;
	do {
		if (string(&s, &k, &klen, &plain) < 0 || !plain ||
		    !eat(&s, ':'))
			return -1;
		if (klen == 5 && memcmp(k, "items", 5) == 0 && !(seen & 1)) {
			seen |= 1;
			if (!eat(&s, '['))
				return -1;
			if (eat(&s, ']'))
				continue;
			do {
				if (n == max || item(&s, keys, nkeys,
				    &rows[n]) < 0)
					return -1;
				n++;
			} while (eat(&s, ','));
			if (!eat(&s, ']'))
				return -1;
		} else if (klen == 4 && memcmp(k, "next", 4) == 0 &&
		    !(seen & 2)) {
			seen |= 2;
			ws(&s);
			start = s.p;
			if (skip(&s, 1) < 0)
				return -1;
			*ret_next = start;
			*ret_next_len = (size_t)(s.p - start);
		} else
			return -1;	/* e.g. an old agent's "total" */
	} while (eat(&s, ','));
	if (!eat(&s, '}') || seen != 3)
		return -1;
	ws(&s);
	if (s.p != s.end)
		return -1;
	*ret_n = n;
	return 0;
}
