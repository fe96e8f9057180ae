/*
 * memcache.c - what both sides of the memory cache compute the same way:
 * the keyed hash that places a customer in the table and the default
 * file name.  libc only (linked into libxtcmk.so).
 */
#include <string.h>

#include "memcache.h"

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void
sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static inline uint64_t
load_le64(const uint8_t *p)
{
	uint64_t x = 0;
	int i;

	for (i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

/*
 * SipHash-2-4: a keyed hash, so whoever chooses customer ids cannot
 * build colliding ids without the file's random seed.
 */
uint64_t
xm_hash(const uint64_t seed[2], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v[4], m, b = (uint64_t)len << 56;
	uint8_t tail[8];
	size_t i, left = len & 7;

	v[0] = seed[0] ^ 0x736f6d6570736575ULL;
	v[1] = seed[1] ^ 0x646f72616e646f6dULL;
	v[2] = seed[0] ^ 0x6c7967656e657261ULL;
	v[3] = seed[1] ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= len; i += 8) {
		m = load_le64(p + i);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	memset(tail, 0, sizeof(tail));
	memcpy(tail, p + i, left);
	b |= load_le64(tail);
	v[3] ^= b;
	sip_round(v);
	sip_round(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}
