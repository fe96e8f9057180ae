/*
 * strhash.h - FNV-1a over a C string, for the agent's in-memory hash
 * tables (decision cache, key states).  Not for anything an attacker
 * could use to pick buckets: keys are admin-registered customer ids.
 */
#ifndef XTCMK_STRHASH_H
#define XTCMK_STRHASH_H

static inline unsigned
strhash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

#endif
