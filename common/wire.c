/*
 * wire.c - frame header and field codec of the xtcmk protocol.
 *
 * Pure functions over caller buffers: no allocation, no I/O, so the same
 * code runs inside the module (a guest in the host's process), the agent and
 * the fuzzers.
 */
#include <errno.h>
#include <string.h>

#include "wire.h"

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void
xw_hdr_encode(uint8_t out[XW_HDR_LEN], const struct xw_hdr *h)
{
	put32(out, h->len);
	put16(out + 4, h->type);
	put16(out + 6, h->status);
	put32(out + 8, h->reqid);
	put16(out + 12, XW_MAGIC);
	out[14] = XW_VERSION;
	out[15] = 0;
}

int
xw_hdr_decode(const uint8_t in[XW_HDR_LEN], uint32_t max_len,
    struct xw_hdr *ret_hdr)
{
	uint32_t len;

	if (get16(in + 12) != XW_MAGIC || in[15] != 0)
		return -EPROTO;
	if (in[14] != XW_VERSION)
		return -EPROTONOSUPPORT;
	len = get32(in);
	if (len > max_len || len > XW_PAYLOAD_MAX)
		return -EMSGSIZE;
	ret_hdr->len = len;
	ret_hdr->type = get16(in + 4);
	ret_hdr->status = get16(in + 6);
	ret_hdr->reqid = get32(in + 8);
	return 0;
}

void
xw_buf_init(struct xw_buf *b, uint8_t *storage, size_t cap)
{
	b->data = storage;
	b->len = 0;
	b->cap = cap;
	b->err = 0;
}

void
xw_put(struct xw_buf *b, uint16_t tag, const void *val, size_t len)
{
	if (b->err != 0)
		return;
	if (len > XW_PAYLOAD_MAX || b->cap - b->len < XW_FIELD_HDR ||
	    b->cap - b->len - XW_FIELD_HDR < len) {
		b->err = -EMSGSIZE;
		return;
	}
	put16(b->data + b->len, tag);
	put32(b->data + b->len + 2, (uint32_t)len);
	if (len > 0)
		memcpy(b->data + b->len + XW_FIELD_HDR, val, len);
	b->len += XW_FIELD_HDR + len;
}

void
xw_put_str(struct xw_buf *b, uint16_t tag, const char *s)
{
	if (s == NULL)
		return;
	xw_put(b, tag, s, strlen(s));
}

void
xw_put_u64(struct xw_buf *b, uint16_t tag, uint64_t v)
{
	uint8_t be[8];
	int i;

	for (i = 7; i >= 0; i--) {
		be[i] = v & 0xff;
		v >>= 8;
	}
	xw_put(b, tag, be, sizeof(be));
}

void
xw_reader_init(struct xw_reader *r, const void *payload, size_t len)
{
	r->p = payload;
	r->left = len;
}

int
xw_next(struct xw_reader *r, struct xw_field *ret_f)
{
	uint32_t len;

	if (r->left == 0)
		return 0;
	if (r->left < XW_FIELD_HDR)
		return -EBADMSG;
	len = get32(r->p + 2);
	if (len > r->left - XW_FIELD_HDR)
		return -EBADMSG;
	ret_f->tag = get16(r->p);
	ret_f->len = len;
	ret_f->val = r->p + XW_FIELD_HDR;
	r->p += XW_FIELD_HDR + len;
	r->left -= XW_FIELD_HDR + len;
	return 1;
}

int
xw_field_u64(const struct xw_field *f, uint64_t *ret_v)
{
	uint64_t v = 0;
	uint32_t i;

	if (f->len != 8)
		return -EBADMSG;
	for (i = 0; i < 8; i++)
		v = v << 8 | f->val[i];
	*ret_v = v;
	return 0;
}

int
xw_field_is_str(const struct xw_field *f, size_t max)
{
	return f->len <= max && memchr(f->val, '\0', f->len) == NULL;
}

int
xw_find(const void *payload, size_t len, uint16_t tag, struct xw_field *ret_f)
{
	struct xw_reader r;
	struct xw_field f;
	int rc;

	xw_reader_init(&r, payload, len);
	while ((rc = xw_next(&r, &f)) > 0) {
		if (f.tag == tag) {
			*ret_f = f;
			return 1;
		}
	}
	return rc;
}

int
xw_validate(const void *payload, size_t len)
{
	struct xw_reader r;
	struct xw_field f;
	int rc;

	xw_reader_init(&r, payload, len);
	while ((rc = xw_next(&r, &f)) > 0)
		;
	return rc;
}
