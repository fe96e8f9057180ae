/*
 * wire.h - the xtcmk socket protocol: frame header and field codec.
 *
 * Shared by libxtcmk.so, xtcmkd and xtcmkctl; libc only.  Documented in
 * xtcmk-protocol(7).
 *
 * A frame is a 16-byte header followed by `len` bytes of payload:
 *
 *	offset	size	field
 *	0	4	len	payload length, big-endian, <= XW_PAYLOAD_MAX
 *	4	2	type	message type (enum xw_type)
 *	6	2	status	0 in requests; result code in replies
 *	8	4	reqid	chosen by the client, echoed in the reply
 *	12	2	magic	0x5854 ("XT")
 *	14	1	version	protocol version (XW_VERSION)
 *	15	1	flags	0
 *
 * The payload is a sequence of fields: tag (u16 BE), length (u32 BE), value.
 * Tags may repeat (lists).  Unknown tags are skipped by readers, so fields can
 * be added without a version bump.
 */
#ifndef XTCMK_WIRE_H
#define XTCMK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define XW_HDR_LEN		16
#define XW_MAGIC		0x5854
#define XW_VERSION		1
#define XW_PAYLOAD_MAX		(64 * 1024)	/* hard cap, both directions */
#define XW_FIELD_HDR		6
#define XW_STR_MAX		4096		/* longest string field */
#define XW_CUSTOMER_MAX		128		/* customer id length */

enum xw_type {
	XW_HELLO	= 1,	/* version handshake, first frame */
	XW_DECIDE	= 2,	/* decisions for one customer */
	XW_ADMIN	= 3,	/* JSON admin command (xtcmkctl) */
	XW_PING		= 4,
	XW_DEK_NEW	= 10,	/* fresh DEK + wrapped blob */
	XW_DEK_UNWRAP	= 11,
	XW_DEK_REWRAP	= 12,
	XW_KEY_STATUS	= 13,
};

/* Field tags.  Values 1..99 double as enum xtcmk_field in xtcmk.h. */
enum xw_tag {
	XT_CUSTOMER		= 1,
	XT_TENANT		= 2,
	XT_APP			= 3,
	XT_APP_CLIENT_ID	= 4,
	XT_WORKLOAD		= 5,	/* repeated */
	XT_SERVED		= 6,	/* u64 0/1 */
	XT_ROLE_MECHANISM	= 7,	/* "rbac" | "access-policy" */
	XT_ROLE_NAME		= 8,
	XT_ROLE_ID		= 9,
	XT_ROLE_SCOPE		= 10,
	XT_PERMISSION		= 11,	/* repeated */
	XT_KEY_URI		= 12,
	XT_KEY_MODE		= 13,	/* "auto" | "pinned" */
	XT_KEY_VERSION		= 14,
	XT_REFRESH_S		= 15,
	XT_REVOCATION_CHECK_S	= 16,
	XT_GRACE_S		= 17,
	XT_CACHE_TTL_S		= 18,
	XT_CACHE_MAX		= 19,
	XT_POLICY_HASH		= 20,
	XT_ASSIGNED_AT		= 21,	/* u64 unix seconds */
	XT_KIND			= 22,	/* repeated resource kind */
	XT_THIS_WORKLOAD	= 23,
	XT_KEY_ID		= 24,	/* key id with version */
	XT_KEY_STATE		= 25,	/* "active" | "revoked" | "unknown" */
	XT_KEY_REASON		= 26,
	XT_HOST_CACHE_TTL_S	= 27,	/* u64, libxtcmk's DEK cache; 0 off */

	XT_DEK			= 100,	/* 16..64 bytes (32 by default) */
	XT_BLOB			= 101,
	XT_MESSAGE		= 102,	/* error text */
	XT_JSON			= 103,	/* admin request / reply */
	XT_VERSION_MIN		= 104,
	XT_VERSION_MAX		= 105,
	XT_VERSION		= 106,
	XT_AGENT		= 107,
	XT_BLOB_CAP		= 108,	/* u64: room for the blob (request) */
	XT_BLOB_NEED		= 109,	/* u64: blob size, TOOBIG replies */
	XT_KEY_STATE_CODE	= 110,	/* u64: enum xtcmk_key_state */
	XT_DEK_LEN		= 111,	/* u64: DEK_NEW's length (request) */
	XT_DEK_CAP		= 112,	/* u64: room for the DEK (request) */
	XT_DEK_NEED		= 113,	/* u64: DEK length, TOOBIG replies */
};

struct xw_hdr {
	uint32_t	len;
	uint16_t	type;
	uint16_t	status;
	uint32_t	reqid;
};

void	xw_hdr_encode(uint8_t out[XW_HDR_LEN], const struct xw_hdr *h);
/* 0, or -EPROTO (bad magic/flags), -EPROTONOSUPPORT (version), -EMSGSIZE. */
int	xw_hdr_decode(const uint8_t in[XW_HDR_LEN], uint32_t max_len,
	    struct xw_hdr *ret_hdr);

/* Writer over caller storage; the first overflow sticks in `err`. */
struct xw_buf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
	int	 err;		/* 0 or -EMSGSIZE */
};

void	xw_buf_init(struct xw_buf *b, uint8_t *storage, size_t cap);
void	xw_put(struct xw_buf *b, uint16_t tag, const void *val, size_t len);
void	xw_put_str(struct xw_buf *b, uint16_t tag, const char *s);
void	xw_put_u64(struct xw_buf *b, uint16_t tag, uint64_t v);

struct xw_reader {
	const uint8_t	*p;
	size_t		 left;
};

struct xw_field {
	uint16_t	 tag;
	uint32_t	 len;
	const uint8_t	*val;
};

void	xw_reader_init(struct xw_reader *r, const void *payload, size_t len);
/* 1: a field in *ret_f; 0: end of payload; -EBADMSG: truncated field. */
int	xw_next(struct xw_reader *r, struct xw_field *ret_f);
/* Value checks for a field just read. */
int	xw_field_u64(const struct xw_field *f, uint64_t *ret_v);
/* Text without NUL bytes and at most `max` bytes. */
int	xw_field_is_str(const struct xw_field *f, size_t max);
/* First field with `tag`, 1 if found, 0 if not, <0 if malformed. */
int	xw_find(const void *payload, size_t len, uint16_t tag,
	    struct xw_field *ret_f);
/* Whole-payload structural check: every field complete. */
int	xw_validate(const void *payload, size_t len);

#endif
