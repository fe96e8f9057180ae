/*
 * memcache.h - the host-local fast path: the format of the memory-mapped
 * decision file xtcmkd publishes and libxtcmk reads (xtcmk-protocol(7),
 * "MEMORY CACHE").  Owns the layout, its limits and the keyed hash; the
 * writer is agent/shmcache.c, the reader module/shm.c.
 *
 * The file never leaves the host: integers are in host byte order.  A
 * header of XM_HDR_SIZE bytes, then nslots slots of slot_size bytes.
 * Every slot is guarded by its own sequence number (odd while the agent
 * writes it); readers copy a slot and keep the copy only if the sequence
 * was even and unchanged around the copy.  A record counts only while
 * its generation equals the header's, so one store to the header
 * invalidates every record at once.
 */
#ifndef XTCMK_MEMCACHE_H
#define XTCMK_MEMCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define XM_MAGIC		0x434d5458u	/* "XTMC" */
#define XM_VERSION		1
#define XM_HDR_SIZE		4096u
#define XM_SLOTS		131072u		/* 100,000 customers at 76% */
#define XM_SLOTS_MAX		(1u << 20)	/* a reader refuses more */
#define XM_SLOT_SIZE		1536u
#define XM_SLOT_SIZE_MAX	4096u		/* a reader refuses more */
#define XM_PROBE_MAX		64u		/* probes, writer and reader */
#define XM_ID_MAX		XW_CUSTOMER_MAX
#define XM_RETRY_MAX		16u		/* seqlock retries per slot */
#define XM_HEARTBEAT_PERIOD_MS	100u
#define XM_HEARTBEAT_BOUND_MS	1000u		/* older beats: no fast path */
#define XM_HEARTBEAT_BOUND_MAX	5000u		/* a reader caps the header's */
#define XM_SUFFIX		".mc"

/* Key state of a customer, as the agent last knew it. */
enum xm_state {
	XM_STATE_UNKNOWN = 0,
	XM_STATE_ACTIVE = 1,
	XM_STATE_REVOKED = 2,
};

struct xm_header {
	uint32_t		magic;		/* XM_MAGIC */
	uint32_t		version;	/* XM_VERSION */
	uint32_t		hdr_size;	/* XM_HDR_SIZE */
	uint32_t		slot_size;
	uint32_t		nslots;		/* a power of two */
	uint32_t		probe_max;
	uint32_t		heartbeat_period_ms;
	uint32_t		heartbeat_bound_ms;
	uint64_t		seed[2];	/* hash key, random per file */
	uint64_t		file_id;	/* random per file */
	uint64_t		pid;		/* the writing agent */
	_Atomic uint64_t	generation;	/* 0: nothing valid */
	_Atomic uint64_t	heartbeat_ms;	/* CLOCK_MONOTONIC */
	_Atomic uint32_t	retired;	/* 1: replaced; re-open */
	uint32_t		pad;
};

struct xm_slot {
	_Atomic uint32_t	seq;		/* 0 never used, odd writing */
	uint32_t		len;		/* payload bytes; 0 none */
	uint64_t		gen;		/* header generation at write */
	uint64_t		hash;		/* xm_hash of id */
	uint64_t		rev_gen;	/* revocation generation */
	uint32_t		state;		/* enum xm_state */
	uint16_t		id_len;
	uint16_t		pad;
	char			id[XM_ID_MAX];
	uint8_t			payload[];	/* a DECIDE reply payload */
};

#define XM_PAYLOAD_MAX(slot_size) ((slot_size) - offsetof(struct xm_slot, \
				    payload))

_Static_assert(sizeof(struct xm_header) <= XM_HDR_SIZE, "header size");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
    "readers need plain-load atomics on a read-only mapping");
/* The offsets xtcmk-protocol(7) documents. */
_Static_assert(offsetof(struct xm_header, seed) == 32 &&
    offsetof(struct xm_header, generation) == 64 &&
    offsetof(struct xm_header, heartbeat_ms) == 72 &&
    offsetof(struct xm_header, retired) == 80, "header layout");
_Static_assert(offsetof(struct xm_slot, rev_gen) == 24 &&
    offsetof(struct xm_slot, id) == 40 &&
    offsetof(struct xm_slot, payload) == 168, "slot layout");
_Static_assert(XM_SLOT_SIZE % 8 == 0, "slot size");

/* The keyed hash of a customer id (SipHash-2-4 with the file's seed). */
uint64_t	xm_hash(const uint64_t seed[2], const void *data, size_t len);

/* The default file for a socket path: a trailing ".sock" becomes ".mc",
 * otherwise ".mc" is appended.  0, or -1 if it does not fit. */
static inline int
xm_default_path(const char *socket_path, char *buf, size_t buflen)
{
	size_t n = strlen(socket_path);
	int w;

	if (n >= 5 && strcmp(socket_path + n - 5, ".sock") == 0)
		n -= 5;
	w = snprintf(buf, buflen, "%.*s%s", (int)n, socket_path, XM_SUFFIX);
	return w < 0 || (size_t)w >= buflen ? -1 : 0;
}

/*
 * The i-th slot of a customer's probe sequence: triangular steps, which
 * visit every slot of a power-of-two table and, unlike linear steps, do
 * not pile chains into long runs (slots are far apart anyway).
 */
static inline uint32_t
xm_probe(uint64_t hash, uint32_t i, uint32_t mask)
{
	return (uint32_t)(hash + (uint64_t)i * (i + 1) / 2) & mask;
}

/* Total file size for the geometry. */
static inline uint64_t
xm_file_size(uint32_t nslots, uint32_t slot_size)
{
	return (uint64_t)XM_HDR_SIZE + (uint64_t)nslots * slot_size;
}

#endif
