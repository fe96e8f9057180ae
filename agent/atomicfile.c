/*
 * atomicfile.c - crash-safe small files (see atomicfile.h): replace by
 * temporary file, fsync, rename and directory fsync; bounded reads of
 * regular files; directories created durably.  Nothing here knows what
 * the files hold.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "atomicfile.h"

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Replace `name` in `dirfd` with `buf` so that a crash leaves either the
 * old or the new content: temporary file, fsync, rename, fsync the dir.
 */
int
atomicfile_write(int dirfd, const char *who, const char *where,
    const char *name, const void *buf, size_t len, struct xerr *e)
{
	char tmp[NAME_MAX + 1];
	unsigned char r[8];
	int fd, saved;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return xerr_set(e, XTCMK_E_INTERNAL,
		    "%s: no randomness for a temporary file name", who);
	snprintf(tmp, sizeof(tmp), ".%s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp",
	    name, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1)
		return xerr_set(e, XTCMK_E_INTERNAL, "%s: cannot create a "
		    "file in %s: %s; check that the state directory is "
		    "writable by the agent", who, where, strerror(errno));
	if (fchmod(fd, 0600) == -1 || write_all(fd, buf, len) == -1 ||
	    fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return xerr_set(e, XTCMK_E_INTERNAL, "%s: cannot write %s/%s: "
		    "%s; check free space in the state directory", who,
		    where, name, strerror(saved));
	}
	if (close(fd) == -1 || renameat(dirfd, tmp, dirfd, name) == -1) {
		saved = errno;
		unlinkat(dirfd, tmp, 0);
		return xerr_set(e, XTCMK_E_INTERNAL, "%s: cannot write %s/%s: "
		    "%s", who, where, name, strerror(saved));
	}
	if (fsync(dirfd) == -1)
		return xerr_set(e, XTCMK_E_INTERNAL, "%s: cannot sync %s: %s",
		    who, where, strerror(errno));
	return 0;
}

/* Read a whole regular file of at most `max` bytes; NUL-terminated. */
int
atomicfile_read(int dirfd, const char *name, size_t max, char **ret_buf,
    size_t *ret_len)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -errno;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*ret_buf = buf;
	*ret_len = off;
	return 0;
}

/* Open (creating, mode 0700) directory `name` under `dirfd`. */
int
atomicfile_opendir(int dirfd, const char *who, const char *name, int create,
    struct xerr *e)
{
	int fd;

	if (create) {
		if (mkdirat(dirfd, name, 0700) == 0) {
			if (fsync(dirfd) == -1)
				return xerr_set(e, XTCMK_E_INTERNAL,
				    "%s: cannot sync the directory of %s: %s",
				    who, name, strerror(errno));
		} else if (errno != EEXIST)
			return xerr_set(e, XTCMK_E_INTERNAL, "%s: cannot "
			    "create directory %s: %s", who, name,
			    strerror(errno));
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW);
	if (fd == -1)
		return xerr_set(e, XTCMK_E_INTERNAL, "%s: cannot open "
		    "directory %s: %s", who, name, strerror(errno));
	return fd;
}
