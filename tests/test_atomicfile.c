/*
 * test_atomicfile.c - agent/atomicfile.c: replace, bounded reads,
 * directories, and that a failed write leaves neither a half file nor a
 * temporary one behind.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "atomicfile.h"
#include "t.h"

/* Entries of `dirfd` other than . and .. */
static int
count_entries(int dirfd)
{
	struct dirent *de;
	DIR *d;
	int fd, n = 0;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL)
		return -1;
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_write_read(int dfd)
{
	struct xerr e;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;

	ASSERT_EQ(atomicfile_write(dfd, "t", "tmp", "a.txt", "hello", 5, &e),
	    0);
	ASSERT_EQ(atomicfile_read(dfd, "a.txt", 64, &buf, &len), 0);
	ASSERT_EQ(len, 5);
	ASSERT_STR(buf, "hello");
	free(buf);
	ASSERT_EQ(fstatat(dfd, "a.txt", &st, 0), 0);
	ASSERT_EQ(st.st_mode & 07777, 0600);

	/* Replace: the new content, and no temporary file left over. */
	ASSERT_EQ(atomicfile_write(dfd, "t", "tmp", "a.txt", "bye", 3, &e), 0);
	buf = NULL;
	ASSERT_EQ(atomicfile_read(dfd, "a.txt", 3, &buf, &len), 0);
	ASSERT_EQ(len, 3);
	ASSERT_STR(buf, "bye");
	free(buf);
	ASSERT_EQ(count_entries(dfd), 1);

	/* Empty files are files too. */
	ASSERT_EQ(atomicfile_write(dfd, "t", "tmp", "empty", "", 0, &e), 0);
	buf = NULL;
	ASSERT_EQ(atomicfile_read(dfd, "empty", 0, &buf, &len), 0);
	ASSERT_EQ(len, 0);
	ASSERT_STR(buf, "");
	free(buf);
	ASSERT_EQ(unlinkat(dfd, "empty", 0), 0);
}

static void
test_read_refusals(int dfd)
{
	char *buf = NULL;
	size_t len = 0;

	ASSERT_EQ(atomicfile_read(dfd, "a.txt", 2, &buf, &len), -EFBIG);
	ASSERT_EQ(atomicfile_read(dfd, "missing", 64, &buf, &len), -ENOENT);
	ASSERT_EQ(symlinkat("a.txt", dfd, "link"), 0);
	ASSERT_EQ(atomicfile_read(dfd, "link", 64, &buf, &len), -ELOOP);
	ASSERT_EQ(unlinkat(dfd, "link", 0), 0);
	ASSERT_EQ(mkdirat(dfd, "d", 0700), 0);
	ASSERT_TRUE(atomicfile_read(dfd, "d", 64, &buf, &len) < 0);
	ASSERT_EQ(unlinkat(dfd, "d", AT_REMOVEDIR), 0);
	ASSERT_TRUE(buf == NULL);	/* written only on success */
}

static void
test_write_fails_cleanly(int dfd)
{
	struct xerr e;
	int before;

	/* The target is a directory: the rename fails, the temp goes. */
	ASSERT_EQ(mkdirat(dfd, "busy", 0700), 0);
	before = count_entries(dfd);
	ASSERT_EQ(atomicfile_write(dfd, "who", "tmp", "busy", "x", 1, &e),
	    -XTCMK_E_INTERNAL);
	ASSERT_CONTAINS(e.msg, "who: cannot write tmp/busy: ");
	ASSERT_EQ(count_entries(dfd), before);
	ASSERT_EQ(unlinkat(dfd, "busy", AT_REMOVEDIR), 0);

	/* A read-only directory (root ignores modes: skip then). */
	if (geteuid() != 0) {
		ASSERT_EQ(fchmod(dfd, 0500), 0);
		ASSERT_EQ(atomicfile_write(dfd, "who", "tmp", "b", "x", 1,
		    &e), -XTCMK_E_INTERNAL);
		ASSERT_CONTAINS(e.msg, "who: cannot create a file in tmp: ");
		ASSERT_EQ(fchmod(dfd, 0700), 0);
	}
}

static void
test_opendir(int dfd)
{
	struct xerr e;
	struct stat st;
	int fd, fd2;

	ASSERT_EQ(atomicfile_opendir(dfd, "who", "nope", 0, &e),
	    -XTCMK_E_INTERNAL);
	ASSERT_CONTAINS(e.msg, "who: cannot open directory nope: ");
	fd = atomicfile_opendir(dfd, "who", "sub", 1, &e);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(fstatat(dfd, "sub", &st, 0), 0);
	ASSERT_TRUE(S_ISDIR(st.st_mode));
	ASSERT_EQ(st.st_mode & 07777, 0700);
	ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* Again: it exists, which is fine. */
	fd2 = atomicfile_opendir(dfd, "who", "sub", 1, &e);
	ASSERT_TRUE(fd2 >= 0);
	if (fd >= 0) {
		ASSERT_EQ(atomicfile_write(fd, "who", "tmp/sub", "f", "1", 1,
		    &e), 0);
		ASSERT_EQ(unlinkat(fd, "f", 0), 0);
		close(fd);
	}
	if (fd2 >= 0)
		close(fd2);
	/* A symbolic link to a directory is refused. */
	ASSERT_EQ(symlinkat("sub", dfd, "sublink"), 0);
	ASSERT_EQ(atomicfile_opendir(dfd, "who", "sublink", 0, &e),
	    -XTCMK_E_INTERNAL);
	ASSERT_EQ(unlinkat(dfd, "sublink", 0), 0);
	ASSERT_EQ(unlinkat(dfd, "sub", AT_REMOVEDIR), 0);
}

int
main(void)
{
	char dir[PATH_MAX];
	const char *tmp;
	int dfd;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/xtcmk-atomicfile-XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_TRUE(dfd >= 0);
	if (dfd >= 0) {
		test_write_read(dfd);
		test_read_refusals(dfd);
		test_write_fails_cleanly(dfd);
		test_opendir(dfd);
		unlinkat(dfd, "a.txt", 0);
		close(dfd);
	}
	ASSERT_EQ(rmdir(dir), 0);
	return t_done();
}
