/*
 * sd.c - systemd notifications and socket activation (see sd.h).
 *
 * Without libsystemd the protocol is simple enough to speak directly: a
 * datagram of "KEY=VALUE" lines to the AF_UNIX socket named in
 * $NOTIFY_SOCKET ('@' for the abstract namespace), and LISTEN_PID /
 * LISTEN_FDS naming fds from 3 on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "sd.h"
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#ifndef HAVE_LIBSYSTEMD
static int
notify_raw(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = secure_getenv("NOTIFY_SOCKET");
	socklen_t salen;
	size_t len;
	int fd, rc;

	if (path == NULL || *path == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (path[0] == '/'));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sa, salen) == -1 ? -errno : 1;
	close(fd);
	return rc;
}
#endif

int
sd_send(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	return sd_notify(0, state);
#else
	return notify_raw(state);
#endif
}

int
sd_send_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	return sd_send(msg);
}

int
sd_fds(void)
{
#ifdef HAVE_LIBSYSTEMD
	return sd_listen_fds(1);
#else
	const char *lp = secure_getenv("LISTEN_PID");
	const char *lf = secure_getenv("LISTEN_FDS");
	char *end;
	long pid, n, fd;

	if (lp == NULL || lf == NULL)
		return 0;
	errno = 0;
	pid = strtol(lp, &end, 10);
	if (errno != 0 || *end != '\0' || pid != (long)getpid())
		return 0;
	n = strtol(lf, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0 || n > 1024)
		return -EINVAL;
	for (fd = SD_FIRST_FD; fd < SD_FIRST_FD + n; fd++)
		if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) == -1)
			return -errno;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (int)n;
#endif
}

int
sd_fd_is_unix_stream(int fd)
{
#ifdef HAVE_LIBSYSTEMD
	return sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
#else
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t l = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == -1)
		return errno == ENOTSOCK ? 0 : -errno;
	l = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) == -1)
		return -errno;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
		return -errno;
	return type == SOCK_STREAM && listening && sa.sun_family == AF_UNIX;
#endif
}

void
sd_fd_path(int fd, char *buf, size_t len)
{
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	size_t n;

	buf[0] = '\0';
	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) == -1 ||
	    sa.sun_family != AF_UNIX ||
	    salen <= offsetof(struct sockaddr_un, sun_path) ||
	    sa.sun_path[0] == '\0')
		return;
	n = strnlen(sa.sun_path, salen - offsetof(struct sockaddr_un,
	    sun_path));
	snprintf(buf, len, "%.*s", (int)n, sa.sun_path);
}
