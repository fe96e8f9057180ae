/*
 * test_dlog.c - the decision log writer: lines are written whole, an
 * entry over DLOG_LINE_MAX is dropped and counted, and drops are warned
 * about in the agent log at most once a minute with the number dropped.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dlog.h"
#include "log.h"
#include "t.h"

static char *
slurp(const char *path)
{
	static char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd == -1)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

int
main(void)
{
	char dir[] = "/tmp/xtcmk-dlog-XXXXXX", path[64], errpath[64];
	unsigned long long w = 0, d = 0, torn = 0;
	struct dlog *l = NULL;
	struct xerr e;
	json_t *small, *big;
	char *text, *huge;
	int saved, fd;

	ASSERT_TRUE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/decisions.log", dir);
	snprintf(errpath, sizeof(errpath), "%s/agent.log", dir);
	/* The agent log is stderr: catch it. */
	saved = dup(STDERR_FILENO);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_TRUE(fd != -1 && saved != -1);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init(LOG_INFO);

	ASSERT_EQ(dlog_open(path, &l, &e), 0);
	small = json_pack("{s:s, s:s}", "decision", "partition", "customer",
	    "c1");
	huge = malloc(DLOG_LINE_MAX + 16);
	memset(huge, 'x', DLOG_LINE_MAX + 15);
	huge[DLOG_LINE_MAX + 15] = '\0';
	big = json_pack("{s:s, s:s}", "decision", "partition", "input", huge);
	dlog_append(l, small);
	dlog_append(l, big);
	dlog_append(l, big);
	dlog_append(l, small);
	dlog_flush(l);
	dlog_stats(l, &w, &d, &torn);
	ASSERT_EQ(w, 2);
	ASSERT_EQ(d, 2);
	ASSERT_EQ(torn, 0);
	dlog_close(l);

	dup2(saved, STDERR_FILENO);
	close(saved);
	text = slurp(errpath);
	/* One warning for the first drop, the second within the minute is
	 * only counted. */
	ASSERT_CONTAINS(text, "decision log: dropped 1 entry since the last "
	    "warning (1 in all; this one: over the line limit");
	ASSERT_TRUE(strstr(strstr(text, "dropped 1 entry") + 1,
	    "decision log: dropped") == NULL);
	text = slurp(path);
	ASSERT_CONTAINS(text, "\"customer\":\"c1\"");
	ASSERT_TRUE(strstr(text, "xxxx") == NULL);
	json_decref(small);
	json_decref(big);
	free(huge);
	unlink(path);
	unlink(errpath);
	rmdir(dir);
	return t_done();
}
