/*
 * atomicfile.h - crash-safe small files under a directory descriptor.
 *
 * A file is replaced by writing a temporary file in the same directory,
 * fsync'ing it, renaming it into place and fsync'ing the directory, so a
 * crash leaves either the old or the new content, never a mix.  A
 * directory created here is fsync'ed into its parent.  Reads refuse
 * anything but a regular file of at most a given size, and follow no
 * symbolic links.
 *
 * `who` starts every message ("keystore"); `where` names the directory
 * in messages, relative to the state directory ("keys/vault/key").
 */
#ifndef XTCMK_ATOMICFILE_H
#define XTCMK_ATOMICFILE_H

#include <stddef.h>

#include "xerr.h"

/* Replace `name` in `dirfd` with `len` bytes of `buf`, mode 0600. */
int	atomicfile_write(int dirfd, const char *who, const char *where,
	    const char *name, const void *buf, size_t len, struct xerr *e);
/*
 * Read the whole regular file `name` in `dirfd`, at most `max` bytes, into
 * a malloc'ed, NUL-terminated buffer.  Returns -errno: -ENOENT if it does
 * not exist, -EFBIG if it is larger than `max` or not a regular file.
 */
int	atomicfile_read(int dirfd, const char *name, size_t max,
	    char **ret_buf, size_t *ret_len);
/*
 * Open directory `name` under `dirfd` (O_DIRECTORY, O_CLOEXEC, no
 * symbolic links); with `create`, make it first (mode 0700) if missing.
 * Returns the descriptor.
 */
int	atomicfile_opendir(int dirfd, const char *who, const char *name,
	    int create, struct xerr *e);

#endif
