/*
 * test_wire.c - the frame header and field codec shared by the module,
 * the agent and xtcmkctl: round trips, and every malformed input refused.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "t.h"
#include "wire.h"

static void
test_header(void)
{
	struct xw_hdr h = { .len = 300, .type = XW_DECIDE, .status = 5,
	    .reqid = 0xdeadbeef }, g;
	uint8_t b[XW_HDR_LEN];

	xw_hdr_encode(b, &h);
	ASSERT_EQ(b[12], 0x58);
	ASSERT_EQ(b[13], 0x54);
	ASSERT_EQ(b[14], XW_VERSION);
	ASSERT_EQ(xw_hdr_decode(b, XW_PAYLOAD_MAX, &g), 0);
	ASSERT_EQ(g.len, 300);
	ASSERT_EQ(g.type, XW_DECIDE);
	ASSERT_EQ(g.status, 5);
	ASSERT_EQ(g.reqid, 0xdeadbeef);

	/* The caller's limit and the hard cap both apply. */
	ASSERT_EQ(xw_hdr_decode(b, 299, &g), -EMSGSIZE);
	h.len = XW_PAYLOAD_MAX + 1;
	xw_hdr_encode(b, &h);
	ASSERT_EQ(xw_hdr_decode(b, UINT32_MAX, &g), -EMSGSIZE);
	h.len = 0;
	xw_hdr_encode(b, &h);
	b[12] = 'Y';
	ASSERT_EQ(xw_hdr_decode(b, XW_PAYLOAD_MAX, &g), -EPROTO);
	xw_hdr_encode(b, &h);
	b[15] = 1;
	ASSERT_EQ(xw_hdr_decode(b, XW_PAYLOAD_MAX, &g), -EPROTO);
	xw_hdr_encode(b, &h);
	b[14] = XW_VERSION + 1;
	ASSERT_EQ(xw_hdr_decode(b, XW_PAYLOAD_MAX, &g), -EPROTONOSUPPORT);
}

static void
test_fields(void)
{
	uint8_t store[64], big[XW_PAYLOAD_MAX + 16];
	struct xw_buf b;
	struct xw_reader r;
	struct xw_field f;
	uint64_t v;
	int n = 0;

	xw_buf_init(&b, store, sizeof(store));
	xw_put_str(&b, XT_CUSTOMER, "contoso");
	xw_put_u64(&b, XT_SERVED, 1);
	xw_put_str(&b, XT_WORKLOAD, "wl-1");
	xw_put_str(&b, XT_WORKLOAD, "wl-2");
	xw_put_str(&b, XT_APP, NULL);		/* absent: nothing written */
	ASSERT_EQ(b.err, 0);
	ASSERT_EQ(b.len, 4 * XW_FIELD_HDR + 7 + 8 + 4 + 4);
	ASSERT_EQ(xw_validate(store, b.len), 0);

	xw_reader_init(&r, store, b.len);
	while (xw_next(&r, &f) == 1) {
		if (f.tag == XT_WORKLOAD)
			n++;
	}
	ASSERT_EQ(n, 2);
	ASSERT_EQ(xw_find(store, b.len, XT_SERVED, &f), 1);
	ASSERT_EQ(xw_field_u64(&f, &v), 0);
	ASSERT_EQ(v, 1);
	ASSERT_EQ(xw_find(store, b.len, XT_CUSTOMER, &f), 1);
	ASSERT_TRUE(xw_field_is_str(&f, 7));
	ASSERT_TRUE(!xw_field_is_str(&f, 6));
	ASSERT_EQ(xw_field_u64(&f, &v), -EBADMSG);
	ASSERT_EQ(xw_find(store, b.len, XT_APP, &f), 0);

	/* Every truncation of a valid payload is refused. */
	{
		size_t cut;
		int bad = 0;

		for (cut = 1; cut < b.len; cut++)
			if (xw_validate(store, cut) == 0) {
				/* Only cuts at field boundaries are valid. */
				struct xw_reader rr;
				struct xw_field ff;
				size_t at = 0;

				xw_reader_init(&rr, store, b.len);
				while (at < cut && xw_next(&rr, &ff) == 1)
					at += XW_FIELD_HDR + ff.len;
				if (at != cut)
					bad++;
			}
		ASSERT_EQ(bad, 0);
	}
	/* A field announcing more than is there. */
	store[5] = 200;
	ASSERT_EQ(xw_validate(store, b.len), -EBADMSG);

	/* NUL inside a string field. */
	xw_buf_init(&b, store, sizeof(store));
	xw_put(&b, XT_CUSTOMER, "a\0b", 3);
	ASSERT_EQ(xw_find(store, b.len, XT_CUSTOMER, &f), 1);
	ASSERT_TRUE(!xw_field_is_str(&f, 100));

	/* Overflow sticks; nothing is written past the buffer. */
	xw_buf_init(&b, store, 10);
	xw_put_str(&b, XT_CUSTOMER, "0123");
	ASSERT_EQ(b.err, 0);
	xw_put_str(&b, XT_TENANT, "x");
	ASSERT_EQ(b.err, -EMSGSIZE);
	ASSERT_EQ(b.len, 10);
	xw_put_str(&b, XT_APP, "");
	ASSERT_EQ(b.err, -EMSGSIZE);
	xw_buf_init(&b, big, sizeof(big));
	xw_put(&b, XT_JSON, big, XW_PAYLOAD_MAX + 1);
	ASSERT_EQ(b.err, -EMSGSIZE);

	/* Empty payload is valid and has no fields. */
	ASSERT_EQ(xw_validate(store, 0), 0);
	ASSERT_EQ(xw_find(store, 0, XT_CUSTOMER, &f), 0);
}

int
main(void)
{
	test_header();
	test_fields();
	return t_done();
}
