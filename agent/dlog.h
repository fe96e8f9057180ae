/*
 * dlog.h - the decision log: one JSON object per line, appended by a
 * writer thread so the request path never waits for the disk.
 */
#ifndef XTCMK_DLOG_H
#define XTCMK_DLOG_H

#include <jansson.h>

#include "xerr.h"

#define DLOG_QUEUE_MAX	8192	/* lines waiting for the writer */
#define DLOG_LINE_MAX	(256 * 1024)

struct dlog;

/* Open (create 0600) `path` for appending; a torn last line left by a
 * crash is cut and counted (dlog_stats ret_torn, bytes). */
int	dlog_open(const char *path, struct dlog **ret_log, struct xerr *e);
/* Open the path again (after logrotate renamed the file); on failure the
 * old file stays in use. */
int	dlog_reopen(struct dlog *l, struct xerr *e);
/* Flush what is queued and stop the writer. */
void	dlog_close(struct dlog *l);
/* Queue `entry` (not consumed) with a "time" field added; drops and
 * counts when the queue is full.  Never blocks on I/O. */
void	dlog_append(struct dlog *l, json_t *entry);
/* The same with `entry` taken (a reference) and encoded by the writer
 * thread: neither it nor anything it holds may change any more.  The
 * writer is woken only once a whole write's worth is queued: the caller
 * calls dlog_kick() when it has handed over what it had. */
void	dlog_append_owned(struct dlog *l, json_t *entry);
/* Wake the writer for whatever dlog_append_owned() left queued. */
void	dlog_kick(struct dlog *l);
/* Wait until everything queued so far is written (tests, shutdown). */
void	dlog_flush(struct dlog *l);
void	dlog_stats(struct dlog *l, unsigned long long *ret_written,
	    unsigned long long *ret_dropped, unsigned long long *ret_torn);

#endif
