/*
 * chan.h - the channel between the agent and a policy worker: frames of
 * a 4-byte big-endian length, a type byte, then items, each a 4-byte
 * big-endian length and its bytes.  Both ends check every length against
 * POLICYD_FRAME_MAX before allocating.
 */
#ifndef XTCMK_POLICYD_CHAN_H
#define XTCMK_POLICYD_CHAN_H

#include <stddef.h>
#include <stdint.h>

#define POLICYD_FRAME_MAX	(64u << 20)	/* bytes after the header */
#define POLICYD_HDR		5
#define PCHAN_IN_CHUNK		(64u << 10)	/* least read */

enum pchan_type {
	PCHAN_LOAD = 1,		/* agent: dir lua_dir params limits src*3 */
	PCHAN_READY,		/* worker: hash name*3 */
	PCHAN_CALL,		/* agent: op kind input params */
	PCHAN_RESULT,		/* worker: JSON text */
	PCHAN_ERROR		/* worker: code message */
};

struct pbuf {
	uint8_t	*data;
	size_t	 len, cap;
	int	 failed;	/* out of memory or over the frame limit */
};

struct pmsg {
	uint8_t	 type;
	uint8_t	*data;		/* the items */
	size_t	 len, off;
};

/* Start a frame of `type`; add items; finish (0, or -1 if it failed). */
void	pbuf_start(struct pbuf *b, enum pchan_type type);
void	pbuf_add(struct pbuf *b, const void *p, size_t len);
void	pbuf_add_str(struct pbuf *b, const char *s);
int	pbuf_finish(struct pbuf *b);
/* Raw bytes (a finished frame) after what b holds. */
void	pbuf_append(struct pbuf *b, const void *p, size_t len);
void	pbuf_free(struct pbuf *b);

/* The next item of a message: 0, or -1 when none or malformed. */
int	pmsg_next(struct pmsg *m, const uint8_t **ret_p, size_t *ret_len);
/* The next item as a NUL-terminated copy in `buf` (-1 if it does not fit
 * or holds a NUL). */
int	pmsg_next_str(struct pmsg *m, char *buf, size_t size);
void	pmsg_free(struct pmsg *m);

/* Parse a frame header: the length after it, or -1 if over the limit. */
long	pchan_hdr(const uint8_t hdr[POLICYD_HDR], uint8_t *ret_type);

/* Blocking I/O for the worker: 0, or -1 on EOF or error. */
int	pchan_write_all(int fd, const void *p, size_t len);
int	pchan_read_msg(int fd, struct pmsg *ret_m);

/*
 * Frames coming in, read in as large pieces as the socket holds (one
 * read brings every frame sent ahead).  pchan_take: 1 and the oldest
 * whole frame in *ret_m, 0 when none is whole yet, -1 if malformed or
 * out of memory.  pchan_fill: one read (blocking unless the descriptor
 * is not); -1 with errno on error, ECONNRESET at the end.
 */
struct pchan_in {
	uint8_t	*data;
	size_t	 len, cap;
};
int	pchan_take(struct pchan_in *in, struct pmsg *ret_m);
int	pchan_fill(struct pchan_in *in, int fd);
void	pchan_in_free(struct pchan_in *in);

#endif
