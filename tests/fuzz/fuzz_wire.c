/*
 * fuzz_wire.c - the frame header decoder and the field walker of
 * common/wire.c, on bytes as they would arrive from a socket.
 *
 * The input is a 16-byte header followed by a payload (shorter inputs are
 * a payload only).  Properties: a decoded header re-encodes to the same
 * bytes; the walker never leaves the payload and agrees with xw_validate
 * and xw_find; a valid payload re-encodes byte for byte with xw_put, and
 * does not fit a buffer one byte smaller.
 */
#include <errno.h>

#include "wire.h"
#include "fuzz.h"

static void
check_header(const uint8_t *data)
{
	struct xw_hdr h;
	uint8_t out[XW_HDR_LEN];
	uint32_t max;
	int rc;

	/* A small limit as the agent uses, taken from the input. */
	max = (uint32_t)data[0] << 8 | data[1];
	rc = xw_hdr_decode(data, max, &h);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT ||
	    rc == -EMSGSIZE);
	if (rc != 0)
		return;
	FUZZ_CHECK(h.len <= max && h.len <= XW_PAYLOAD_MAX);
	xw_hdr_encode(out, &h);
	FUZZ_CHECK(memcmp(out, data, XW_HDR_LEN) == 0);
}

static void
check_payload(const uint8_t *p, size_t len)
{
	struct xw_reader r;
	struct xw_field f, g;
	struct xw_buf b;
	uint8_t *copy;
	uint64_t v;
	size_t used = 0;
	int rc, vrc, frc;

	vrc = xw_validate(p, len);
	FUZZ_CHECK(vrc == 0 || vrc == -EBADMSG);

	xw_reader_init(&r, p, len);
	while ((rc = xw_next(&r, &f)) > 0) {
		FUZZ_CHECK(f.val == p + used + XW_FIELD_HDR);
		FUZZ_CHECK(f.len <= len - used - XW_FIELD_HDR);
		used += XW_FIELD_HDR + f.len;
		FUZZ_CHECK(r.left == len - used);
		if (xw_field_u64(&f, &v) == 0)
			FUZZ_CHECK(f.len == 8);
		else
			FUZZ_CHECK(f.len != 8);
		if (xw_field_is_str(&f, XW_STR_MAX))
			FUZZ_CHECK(f.len <= XW_STR_MAX &&
			    memchr(f.val, '\0', f.len) == NULL);
		/* xw_find returns the first field with a tag. */
		frc = xw_find(p, len, f.tag, &g);
		FUZZ_CHECK(frc == 1);
		FUZZ_CHECK(g.tag == f.tag && g.val <= f.val);
	}
	FUZZ_CHECK(rc == vrc);
	if (rc < 0)
		return;
	FUZZ_CHECK(used == len);

	/* Re-encode into a heap buffer of exactly the payload's size. */
	copy = fuzz_memdup(p, len);
	memset(copy, 0xa5, len);
	xw_buf_init(&b, copy, len);
	xw_reader_init(&r, p, len);
	while (xw_next(&r, &f) > 0)
		xw_put(&b, f.tag, f.val, f.len);
	FUZZ_CHECK(b.err == 0 && b.len == len);
	FUZZ_CHECK(len == 0 || memcmp(copy, p, len) == 0);
	if (len > 0) {
		xw_buf_init(&b, copy, len - 1);
		xw_reader_init(&r, p, len);
		while (xw_next(&r, &f) > 0)
			xw_put(&b, f.tag, f.val, f.len);
		FUZZ_CHECK(b.err == -EMSGSIZE && b.len < len);
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;

	buf = fuzz_memdup(data, size);
	if (size >= XW_HDR_LEN) {
		check_header(buf);
		free(buf);
		/* The payload in its own allocation: reads past it show. */
		buf = fuzz_memdup(data + XW_HDR_LEN, size - XW_HDR_LEN);
		check_payload(buf, size - XW_HDR_LEN);
	} else
		check_payload(buf, size);
	free(buf);
	return 0;
}
