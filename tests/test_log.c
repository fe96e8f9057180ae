/*
 * test_log.c - the agent's log: "<N>" prefixes only when JOURNAL_STREAM
 * names the file stderr really is, events with their customer and app,
 * and the rate limit that keeps outsiders from flooding the journal.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "t.h"

static char path[] = "/tmp/xtcmk-test-log.XXXXXX";

/* Everything logged since the last call. */
static const char *
logged(void)
{
	static char buf[8192];
	static off_t seen;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return "";
	n = pread(fd, buf, sizeof(buf) - 1, seen);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	seen += n;
	return buf;
}

int
main(void)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1, 2);
	struct stat st;
	char js[64], all[8192];
	ssize_t n;
	int fd, orig;

	/* stderr becomes the file under test; failures show at the end. */
	if ((orig = dup(STDERR_FILENO)) == -1 || (fd = mkstemp(path)) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1)
		return 1;
	close(fd);
	fstat(STDERR_FILENO, &st);

	/* JOURNAL_STREAM naming stderr: "<3>message", no timestamp. */
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init(LOG_INFO);
	ASSERT_EQ(log_to_journal(), 1);
	log_err("config broken");
	log_debug("not at info");
	ASSERT_STR(logged(), "<3>config broken\n");

	/* Inherited but stale (another inode): plain timestamped lines. */
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	log_init(LOG_INFO);
	ASSERT_EQ(log_to_journal(), 0);
	log_warn("plain");
	ASSERT_CONTAINS(logged(), "Z xtcmkd[");
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_init(LOG_INFO);
	ASSERT_EQ(log_to_journal(), 0);
	unsetenv("JOURNAL_STREAM");

	/* Events carry customer and app. */
	log_init(LOG_INFO);
	log_event(LOG_WARNING, LOG_MSGID_KEY_STATE, "contoso", "app-1",
	    "key service failed");
	ASSERT_CONTAINS(logged(), "warning: key service failed [customer "
	    "contoso app app-1]\n");
	log_event(LOG_NOTICE, LOG_MSGID_ADMIN, NULL, NULL, "no fields");
	ASSERT_CONTAINS(logged(), "notice: no fields\n");

	/* Two per second; the next allowed one says how many were not. */
	ASSERT_EQ(log_ratelimit(&rl), 0);
	ASSERT_EQ(log_ratelimit(&rl), 0);
	ASSERT_EQ(log_ratelimit(&rl), -1);
	ASSERT_EQ(log_ratelimit(&rl), -1);
	ASSERT_EQ(log_ratelimit(&rl), -1);
	sleep(2);
	ASSERT_EQ(log_ratelimit(&rl), 3);
	ASSERT_EQ(log_ratelimit(&rl), 0);

	dup2(orig, STDERR_FILENO);
	if (t_failures > 0 && (fd = open(path, O_RDONLY)) != -1) {
		n = read(fd, all, sizeof(all) - 1);
		all[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "log under test, with the failures:\n%s", all);
		close(fd);
	}
	unlink(path);
	return t_done();
}
