/*
 * t.h - the few assertions our C tests need.  A failed check prints where
 * and why and counts; main() returns t_done().
 */
#ifndef XTCMK_T_H
#define XTCMK_T_H

#include <stdio.h>
#include <string.h>

static int t_failures;
static int t_checks;

#define T_FAIL(...) do { \
	fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); t_failures++; \
} while (0)
#define ASSERT_TRUE(c) do { t_checks++; if (!(c)) T_FAIL("%s", #c); } while (0)
#define ASSERT_INT(a, op, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	t_checks++; if (!(_a op _b)) T_FAIL("%s %s %s (%lld vs %lld)", #a, #op, #b, _a, _b); } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT(a, ==, b)
#define ASSERT_STR(a, b) do { const char *_a = (a), *_b = (b); t_checks++; \
	if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) \
		T_FAIL("%s == %s (\"%s\" vs \"%s\")", #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)
#define ASSERT_CONTAINS(hay, needle) do { const char *_h = (hay), *_n = (needle); t_checks++; \
	if (_h == NULL || strstr(_h, _n) == NULL) \
		T_FAIL("\"%s\" does not contain \"%s\"", _h ? _h : "(null)", _n); } while (0)

static inline int
t_done(void)
{
	printf("%d checks, %d failed\n", t_checks, t_failures);
	return t_failures != 0 || t_checks == 0;
}

#endif
