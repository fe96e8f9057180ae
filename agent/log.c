/*
 * log.c - the agent's log (see log.h).  One write(2) per line so lines
 * from several threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

#define LOG_LINE_MAX	2048

static int log_max = LOG_INFO;
static int log_journal;

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
};

/*
 * systemd sets JOURNAL_STREAM=DEV:INO for the stream it connects to
 * stdout/stderr.  A child that inherits the variable but not the stream
 * (stderr redirected to a file) must not write "<N>" prefixes, so compare
 * with what fd 2 is now.
 */
static int
journal_stream(void)
{
	const char *v = secure_getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(int level)
{
	log_max = level;
	log_journal = journal_stream();
}

int
log_to_journal(void)
{
	return log_journal;
}

int
log_level_parse(const char *s)
{
	int i;

	for (i = 0; i < 8; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

const char *
log_level_name(int level)
{
	return level >= 0 && level < 8 ? level_names[level] : "?";
}

static void
log_line(int level, const char *text, const char *customer, const char *app)
{
	char line[LOG_LINE_MAX + 256];
	struct timespec ts;
	struct tm tm;
	int n;
	size_t len;

	if (log_journal)
		n = snprintf(line, sizeof(line), "<%d>", level);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ xtcmkd[%d] %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(),
		    log_level_name(level));
	}
	snprintf(line + n, sizeof(line) - n - 1, "%s%s%s%s%s%s", text,
	    customer != NULL || app != NULL ? " [" : "",
	    customer != NULL ? "customer " : "",
	    customer != NULL ? customer : "",
	    app != NULL ? (customer != NULL ? " app " : "app ") : "",
	    app != NULL ? app : "");
	len = strlen(line);
	if (customer != NULL || app != NULL)
		line[len++] = ']';
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

void
log_msg(int level, const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_line(level, text, NULL, NULL);
}

void
log_event(int level, const char *msgid, const char *customer,
    const char *app, const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
#ifdef HAVE_LIBSYSTEMD
	if (log_journal) {
		if (sd_journal_send("MESSAGE=%s", text, "PRIORITY=%d", level,
		    "MESSAGE_ID=%s", msgid, "SYSLOG_IDENTIFIER=xtcmkd",
		    "CUSTOMER=%s", customer != NULL ? customer : "",
		    "APP=%s", app != NULL ? app : "", NULL) >= 0)
			return;
	}
#else
	(void)msgid;
#endif
	log_line(level, text, customer, app);
}

long
log_ratelimit(struct log_ratelimit *rl)
{
	struct timespec ts;
	long long now;
	long ret = -1;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec;
	pthread_mutex_lock(&rl->mu);
	if (rl->begin == 0 || now - rl->begin >= rl->interval_s) {
		rl->begin = now;
		rl->n = 0;
	}
	if (rl->n < rl->burst) {
		rl->n++;
		ret = (long)rl->suppressed;
		rl->suppressed = 0;
	} else
		rl->suppressed++;
	pthread_mutex_unlock(&rl->mu);
	return ret;
}
