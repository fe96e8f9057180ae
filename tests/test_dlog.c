/*
 * test_dlog.c - the decision log writer: lines are written whole, an
 * entry over DLOG_LINE_MAX is dropped and counted, and drops are warned
 * about in the agent log at most once a minute with the number dropped.
 * Entries handed over (an import) wait for a whole write's worth, or
 * dlog_kick(), or dlog_flush(), and are then all written.
 */
#include <fcntl.h>
#include <poll.h>
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

	/* Handed over: a few wait for the kick; a flush writes them too. */
	unlink(path);
	ASSERT_EQ(dlog_open(path, &l, &e), 0);
	{
		json_t *first = json_pack("{s:s}", "decision", "first");
		int i, k;

		/* After a flush the writer sleeps until woken. */
		dlog_append(l, first);
		json_decref(first);
		dlog_flush(l);
		for (k = 0; k < 2; k++) {
			/* Five: not enough to wake it. */
			for (i = 0; i < 5; i++)
				dlog_append_owned(l, json_pack("{s:s, s:i}",
				    "decision", "role", "n", k * 5 + i));
			if (k == 0) {
				dlog_kick(l);
				for (i = 0; i < 200 && strstr(slurp(path),
				    "\"n\":4") == NULL; i++)
					poll(NULL, 0, 10);
				ASSERT_CONTAINS(slurp(path), "\"n\":4");
				/* Let it go back to sleep. */
				poll(NULL, 0, 50);
			}
		}
		dlog_flush(l);
		dlog_stats(l, &w, &d, &torn);
		ASSERT_EQ(w, 11);
		ASSERT_CONTAINS(slurp(path), "\"n\":9");
		/* A whole write's worth wakes the writer by itself. */
		for (i = 0; i < 64; i++)
			dlog_append_owned(l, json_pack("{s:s, s:i}",
			    "decision", "role", "m", i));
		for (i = 0; i < 200 && strstr(slurp(path), "\"m\":63") ==
		    NULL; i++)
			poll(NULL, 0, 10);
		ASSERT_CONTAINS(slurp(path), "\"m\":63");
	}
	dlog_close(l);
	unlink(path);
	unlink(errpath);
	rmdir(dir);
	return t_done();
}
