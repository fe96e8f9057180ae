/*
 * echo.h - the baseline the benchmarks compare the agent with: an AF_UNIX
 * echo server in the benchmark's own process (a thread per connection)
 * that sends back every frame of 16 + len bytes it reads, len being the
 * big-endian u32 in the frame's first four bytes, as in the xtcmk wire
 * header.  A round trip through it is what any request to a local agent
 * costs at the least.  Also the timing helpers every benchmark uses.
 */
#ifndef XTCMK_BENCH_ECHO_H
#define XTCMK_BENCH_ECHO_H

#include <stddef.h>
#include <stdint.h>

#define ECHO_HDR_LEN	16
#define ECHO_FRAME_MAX	(ECHO_HDR_LEN + 4096)

struct echo;

/* Start the server on a socket in a new temporary directory. */
int	echo_start(struct echo **ret_echo);
/* Stop it and remove the socket and directory; accepts NULL. */
void	echo_stop(struct echo *e);
/* A connected client socket, or -1. */
int	echo_connect(const struct echo *e);
/* Fill `frame` (frame_len bytes, ECHO_HDR_LEN..ECHO_FRAME_MAX) with a
 * header that announces frame_len - ECHO_HDR_LEN payload bytes. */
void	echo_frame(uint8_t *frame, size_t frame_len);
/* Send the frame and read the echo back: 0, or -1 on any error. */
int	echo_round_trip(int fd, uint8_t *frame, size_t frame_len);

/* Monotonic time in microseconds. */
double	bench_now_us(void);
/* qsort comparator for doubles, and the median of n values (sorts v). */
int	bench_cmp_double(const void *a, const void *b);
double	bench_median(double *v, int n);

#endif
