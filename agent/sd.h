/*
 * sd.h - the agent's side of the systemd service protocol: readiness and
 * reload notifications (sd_notify(3)) and socket activation
 * (sd_listen_fds(3)).  libsystemd when built with it, otherwise a small
 * implementation of the same wire protocol.
 */
#ifndef XTCMK_SD_H
#define XTCMK_SD_H

#include <stddef.h>

#define SD_FIRST_FD	3

/* Send `state` ("READY=1", ...) to $NOTIFY_SOCKET; 0 when there is none,
 * 1 when sent, -errno on failure. */
int	sd_send(const char *state);
/* "RELOADING=1" with MONOTONIC_USEC= as systemd asks for it. */
int	sd_send_reloading(void);
/* How many fds systemd passed (0: not socket-activated), -errno. */
int	sd_fds(void);
/* Is `fd` a listening Unix stream socket?  1 yes, 0 no, -errno. */
int	sd_fd_is_unix_stream(int fd);
/* The path `fd` is bound to, "" for an unnamed or abstract socket. */
void	sd_fd_path(int fd, char *buf, size_t len);

#endif
