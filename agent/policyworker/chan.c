/*
 * chan.c - frames between the agent and a policy worker (see chan.h).
 * The worker reads and writes blocking; the agent does its own I/O with
 * deadlines (client.c) and uses the parsers here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
pbuf_reserve(struct pbuf *b, size_t more)
{
	size_t cap;
	uint8_t *d;

	if (b->failed)
		return;
	if (more > POLICYD_FRAME_MAX + POLICYD_HDR - b->len) {
		b->failed = 1;
		return;
	}
	if (b->len + more <= b->cap)
		return;
	cap = b->cap != 0 ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	if ((d = realloc(b->data, cap)) == NULL) {
		b->failed = 1;
		return;
	}
	b->data = d;
	b->cap = cap;
}

void
pbuf_start(struct pbuf *b, enum pchan_type type)
{
	b->len = 0;
	b->failed = 0;
	pbuf_reserve(b, POLICYD_HDR);
	if (b->failed)
		return;
	memset(b->data, 0, 4);
	b->data[4] = (uint8_t)type;
	b->len = POLICYD_HDR;
}

void
pbuf_add(struct pbuf *b, const void *p, size_t len)
{
	pbuf_reserve(b, 4 + len);
	if (b->failed)
		return;
	put_be32(b->data + b->len, (uint32_t)len);
	if (len > 0)
		memcpy(b->data + b->len + 4, p, len);
	b->len += 4 + len;
}

void
pbuf_append(struct pbuf *b, const void *p, size_t len)
{
	pbuf_reserve(b, len);
	if (b->failed)
		return;
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

void
pbuf_add_str(struct pbuf *b, const char *s)
{
	pbuf_add(b, s, s != NULL ? strlen(s) : 0);
}

int
pbuf_finish(struct pbuf *b)
{
	if (b->failed)
		return -1;
	put_be32(b->data, (uint32_t)(b->len - 4));
	return 0;
}

void
pbuf_free(struct pbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int
pmsg_next(struct pmsg *m, const uint8_t **ret_p, size_t *ret_len)
{
	uint32_t n;

	if (m->len - m->off < 4)
		return -1;
	n = get_be32(m->data + m->off);
	if (n > m->len - m->off - 4)
		return -1;
	*ret_p = m->data + m->off + 4;
	*ret_len = n;
	m->off += 4 + n;
	return 0;
}

int
pmsg_next_str(struct pmsg *m, char *buf, size_t size)
{
	const uint8_t *p;
	size_t len;

	if (pmsg_next(m, &p, &len) == -1 || len >= size ||
	    memchr(p, '\0', len) != NULL)
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return 0;
}

void
pmsg_free(struct pmsg *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}

long
pchan_hdr(const uint8_t hdr[POLICYD_HDR], uint8_t *ret_type)
{
	uint32_t n = get_be32(hdr);

	if (n < 1 || n - 1 > POLICYD_FRAME_MAX)
		return -1;
	*ret_type = hdr[4];
	return (long)(n - 1);
}

int
pchan_write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, b, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
read_all(int fd, void *p, size_t len)
{
	uint8_t *b = p;
	ssize_t n;

	while (len > 0) {
		if ((n = read(fd, b, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int
pchan_read_msg(int fd, struct pmsg *ret_m)
{
	uint8_t hdr[POLICYD_HDR], type;
	uint8_t *data;
	long len;

	if (read_all(fd, hdr, sizeof(hdr)) == -1 ||
	    (len = pchan_hdr(hdr, &type)) < 0)
		return -1;
	if ((data = malloc((size_t)len + 1)) == NULL)
		return -1;
	if (read_all(fd, data, (size_t)len) == -1) {
		free(data);
		return -1;
	}
	ret_m->type = type;
	ret_m->data = data;
	ret_m->len = (size_t)len;
	ret_m->off = 0;
	return 0;
}

int
pchan_take(struct pchan_in *in, struct pmsg *ret_m)
{
	uint8_t type, *d;
	long len;

	if (in->len < POLICYD_HDR)
		return 0;
	if ((len = pchan_hdr(in->data, &type)) < 0)
		return -1;
	if (in->len - POLICYD_HDR < (size_t)len)
		return 0;
	if ((d = malloc((size_t)len + 1)) == NULL)
		return -1;
	memcpy(d, in->data + POLICYD_HDR, (size_t)len);
	in->len -= POLICYD_HDR + (size_t)len;
	memmove(in->data, in->data + POLICYD_HDR + len, in->len);
	ret_m->type = type;
	ret_m->data = d;
	ret_m->len = (size_t)len;
	ret_m->off = 0;
	return 1;
}

int
pchan_fill(struct pchan_in *in, int fd)
{
	size_t cap = in->cap != 0 ? in->cap : PCHAN_IN_CHUNK, need;
	uint8_t *d, type;
	ssize_t n;
	long len;

	/* Room for the whole frame begun, and at least a chunk more. */
	need = in->len + PCHAN_IN_CHUNK;
	if (in->len >= POLICYD_HDR) {
		if ((len = pchan_hdr(in->data, &type)) < 0)
			return -1;
		if (need < POLICYD_HDR + (size_t)len)
			need = POLICYD_HDR + (size_t)len;
	}
	while (cap < need)
		cap *= 2;
	if (cap != in->cap) {
		if ((d = realloc(in->data, cap)) == NULL)
			return -1;
		in->data = d;
		in->cap = cap;
	}
	do
		n = read(fd, in->data + in->len, in->cap - in->len);
	while (n == -1 && errno == EINTR);
	if (n == 0)
		errno = ECONNRESET;	/* the other end is gone */
	if (n <= 0)
		return -1;
	in->len += (size_t)n;
	return 0;
}

void
pchan_in_free(struct pchan_in *in)
{
	free(in->data);
	memset(in, 0, sizeof(*in));
}
