/*
 * echo.c - the AF_UNIX echo baseline shared by the benchmarks.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "echo.h"

#define ECHO_BACKLOG	128

struct echo {
	char		 dir[64];
	char		 path[108];
	int		 lfd;
	pthread_t	 acceptor;
};

static int
io_full(int fd, void *buf, size_t n, int wr)
{
	size_t off = 0;
	ssize_t r;

	while (off < n) {
		r = wr ? send(fd, (char *)buf + off, n - off, MSG_NOSIGNAL) :
		    recv(fd, (char *)buf + off, n - off, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

static void *
echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t buf[ECHO_FRAME_MAX];
	uint32_t len;

	for (;;) {
		if (io_full(fd, buf, ECHO_HDR_LEN, 0) == -1)
			break;
		len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
		    (uint32_t)buf[2] << 8 | buf[3];
		if (len > ECHO_FRAME_MAX - ECHO_HDR_LEN ||
		    io_full(fd, buf + ECHO_HDR_LEN, len, 0) == -1 ||
		    io_full(fd, buf, ECHO_HDR_LEN + len, 1) == -1)
			break;
	}
	close(fd);
	return NULL;
}

static void *
echo_accept(void *arg)
{
	struct echo *e = arg;
	pthread_t t;
	int fd;

	for (;;) {
		if ((fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC)) == -1) {
			if (errno == EINTR)
				continue;
			break;		/* shut down by echo_stop */
		}
		if (pthread_create(&t, NULL, echo_conn,
		    (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

int
echo_start(struct echo **ret_echo)
{
	struct sockaddr_un sun;
	struct echo *e;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	e->lfd = -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/xtcmk-bench-XXXXXX");
	if (mkdtemp(e->dir) == NULL) {
		free(e);
		return -1;
	}
	snprintf(e->path, sizeof(e->path), "%s/echo.sock", e->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", e->path);
	if ((e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(e->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(e->lfd, ECHO_BACKLOG) == -1 ||
	    pthread_create(&e->acceptor, NULL, echo_accept, e) != 0) {
		if (e->lfd != -1)
			close(e->lfd);
		unlink(e->path);
		rmdir(e->dir);
		free(e);
		return -1;
	}
	*ret_echo = e;
	return 0;
}

void
echo_stop(struct echo *e)
{
	if (e == NULL)
		return;
	shutdown(e->lfd, SHUT_RDWR);
	pthread_join(e->acceptor, NULL);
	close(e->lfd);
	unlink(e->path);
	rmdir(e->dir);
	free(e);
}

int
echo_connect(const struct echo *e)
{
	struct sockaddr_un sun;
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", e->path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

void
echo_frame(uint8_t *frame, size_t frame_len)
{
	uint32_t len = (uint32_t)(frame_len - ECHO_HDR_LEN);

	memset(frame, 0, frame_len);
	frame[0] = (uint8_t)(len >> 24);
	frame[1] = (uint8_t)(len >> 16);
	frame[2] = (uint8_t)(len >> 8);
	frame[3] = (uint8_t)len;
}

int
echo_round_trip(int fd, uint8_t *frame, size_t frame_len)
{
	if (io_full(fd, frame, frame_len, 1) == -1 ||
	    io_full(fd, frame, frame_len, 0) == -1)
		return -1;
	return 0;
}

double
bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
