/*
 * strhash.h - FNV-1a (32 bits): over a C string for the agent's
 * in-memory hash tables (decision cache, key states, statement cache),
 * and over bytes for the policy sandbox's xtcmk.fnv1a32 and xtcmk.rank.
 * Not for anything an attacker could use to pick buckets: keys are
 * admin-registered names.
 */
#ifndef XTCMK_STRHASH_H
#define XTCMK_STRHASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A32_INIT	2166136261u

/* FNV-1a over p[0..len), continuing from h (FNV1A32_INIT to start). */
static inline uint32_t
fnv1a32_more(uint32_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static inline unsigned
strhash(const char *s)
{
	unsigned h = FNV1A32_INIT;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

#endif
