/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz share: the entry point
 * prototypes and a check that turns a broken property into a crash, so the
 * fuzzer keeps the input that broke it.
 */
#ifndef XTCMK_FUZZ_H
#define XTCMK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, \
		    __LINE__, #c); \
		abort(); \
	} \
} while (0)

/*
 * A heap copy of the input, NUL-terminated one byte past its end (a C
 * string up to the first NUL byte), so that ASan sees any read past it.
 */
static inline char *
fuzz_strdup(const uint8_t *data, size_t size)
{
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* A heap copy of exactly `size` bytes (at least one byte allocated). */
static inline uint8_t *
fuzz_memdup(const uint8_t *data, size_t size)
{
	uint8_t *p;

	if ((p = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(p, data, size);
	return p;
}

#endif
