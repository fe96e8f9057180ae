/*
 * dlog.c - decision log writer (see dlog.h).
 *
 * Callers serialise their entry and push the line on a bounded queue; one
 * thread writes batches with O_APPEND.  A full queue drops the line and
 * counts it: the decision itself was already made and recorded in the
 * registry, the log is the audit trail and must not stall requests.
 *
 * Rotation: after the file is renamed, dlog_reopen() (SIGHUP, `xtcmkctl
 * reload`) opens the path again; lines already queued go to whichever
 * file is open when the writer takes them, none is lost or split.
 */
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlog.h"
#include "jsonw.h"
#include "log.h"

struct dlog {
	int		 fd;
	char		*path;
	pthread_mutex_t	 fd_mu;		/* held while writing and reopening */
	unsigned long long torn;	/* bytes of a torn last line cut */
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* work for the writer */
	pthread_cond_t	 idle;		/* queue drained */
	char		*queue[DLOG_QUEUE_MAX];
	json_t		*qent[DLOG_QUEUE_MAX];	/* or an entry to encode */
	time_t		 qtime[DLOG_QUEUE_MAX];
	unsigned	 head, count;
	int		 writing, stop;
	int		 waiting;	/* the writer sleeps on cv */
	unsigned long long written, dropped;
	unsigned long long dropped_warned;	/* count at the last warning */
	time_t		 warned_at;
};

#define DLOG_WARN_EVERY_S	60	/* at most one drop warning a minute */
#define DLOG_BATCH		64	/* lines in one write */

/*
 * Count a dropped line (locked) and warn in the agent log, at most once
 * per DLOG_WARN_EVERY_S, with the number dropped since the last warning.
 */
static void
dropped_locked(struct dlog *l, const char *why, size_t len)
{
	time_t now = time(NULL);

	l->dropped++;
	if (l->warned_at != 0 && now - l->warned_at < DLOG_WARN_EVERY_S)
		return;
	log_warn("decision log: dropped %llu entr%s since the last warning "
	    "(%llu in all; this one: %s, %zu bytes); see `xtcmkctl stats`",
	    l->dropped - l->dropped_warned,
	    l->dropped - l->dropped_warned == 1 ? "y" : "ies", l->dropped,
	    why, len);
	l->dropped_warned = l->dropped;
	l->warned_at = now;
}
/* A full disk fails every line: say so once a minute, with the count. */
static struct log_ratelimit write_rl = LOG_RATELIMIT_INIT(60, 1);

static void
write_all(int fd, const char *s, size_t len)
{
	ssize_t n;
	long skipped;

	while (len > 0) {
		n = write(fd, s, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if ((skipped = log_ratelimit(&write_rl)) >= 0)
				log_event(LOG_ERR, LOG_MSGID_DLOG, NULL, NULL,
				    "decision log: write failed: %s (%ld more "
				    "failed writes not logged)",
				    strerror(errno), skipped);
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

/*
 * Write the lines in one writev (O_APPEND keeps them whole and in
 * order); what a short write leaves goes out line by line.
 */
static void
write_lines(int fd, char **lines, size_t n)
{
	struct iovec iov[DLOG_BATCH];
	size_t i, len;
	ssize_t done;

	for (i = 0; i < n; i++) {
		iov[i].iov_base = lines[i];
		iov[i].iov_len = strlen(lines[i]);
	}
	do
		done = writev(fd, iov, (int)n);
	while (done == -1 && errno == EINTR);
	if (done < 0)
		done = 0;
	for (i = 0; i < n; i++) {
		len = iov[i].iov_len;
		if ((size_t)done >= len) {
			done -= (ssize_t)len;
			continue;
		}
		write_all(fd, lines[i] + done, len - (size_t)done);
		done = 0;
	}
}

/*
 * An entry's line: `entry` with "time", keys sorted, and a newline; NULL
 * (and *ret_len its length, 0 when out of memory) when over
 * DLOG_LINE_MAX.  `entry` itself is not changed.
 */
static char *
encode_line(json_t *entry, time_t t, size_t *ret_len)
{
	json_t *copy;
	char *s, *line;
	size_t len;

	*ret_len = 0;
	if ((copy = json_copy(entry)) == NULL)
		return NULL;
	json_object_set_new(copy, "time", json_integer(t));
	s = jsonw_dumps(copy, &len);
	json_decref(copy);
	if (s == NULL)
		return NULL;
	*ret_len = len;
	if (len > DLOG_LINE_MAX || (line = realloc(s, len + 2)) == NULL) {
		free(s);
		return NULL;
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	return line;
}

static void *
dlog_main(void *arg)
{
	struct dlog *l = arg;
	char *lines[DLOG_BATCH];
	json_t *ents[DLOG_BATCH];
	time_t times[DLOG_BATCH];
	size_t i, k, n, len;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (l->count == 0 && !l->stop) {
			pthread_cond_broadcast(&l->idle);
			l->waiting = 1;
			pthread_cond_wait(&l->cv, &l->mu);
			l->waiting = 0;
		}
		if (l->count == 0 && l->stop)
			break;
		/* Every line queued meanwhile, up to DLOG_BATCH, at once. */
		for (n = 0; n < DLOG_BATCH && l->count > 0; n++) {
			lines[n] = l->queue[l->head];
			ents[n] = l->qent[l->head];
			times[n] = l->qtime[l->head];
			l->qent[l->head] = NULL;
			l->head = (l->head + 1) % DLOG_QUEUE_MAX;
			l->count--;
		}
		l->writing = 1;
		pthread_mutex_unlock(&l->mu);
		/* Entries handed over whole are encoded here, off the
		 * callers' threads. */
		for (i = k = 0; i < n; i++) {
			if (ents[i] != NULL) {
				lines[i] = encode_line(ents[i], times[i], &len);
				json_decref(ents[i]);
				if (lines[i] == NULL) {
					pthread_mutex_lock(&l->mu);
					dropped_locked(l, len > DLOG_LINE_MAX ?
					    "over the line limit" :
					    "out of memory", len);
					pthread_mutex_unlock(&l->mu);
					continue;
				}
			}
			lines[k++] = lines[i];
		}
		pthread_mutex_lock(&l->fd_mu);
		if (k > 0)
			write_lines(l->fd, lines, k);
		pthread_mutex_unlock(&l->fd_mu);
		for (i = 0; i < k; i++)
			free(lines[i]);
		pthread_mutex_lock(&l->mu);
		l->writing = 0;
		l->written += k;
	}
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/*
 * A crash in the middle of a write leaves a partial last line.  Cut it
 * (it is not valid JSON, and the decision it described was recorded in
 * the registry before the reply): readers then see whole lines only.
 * Returns the bytes cut.
 */
static off_t
cut_torn_line(int fd)
{
	char buf[4096];
	off_t end, pos, keep = -1;
	ssize_t n, i;

	if ((end = lseek(fd, 0, SEEK_END)) <= 0)
		return 0;
	/* Look back at most one line's worth for the last '\n'. */
	for (pos = end; pos > 0 && keep < 0 && end - pos <= DLOG_LINE_MAX + 1;
	    pos -= n) {
		n = pos < (off_t)sizeof(buf) ? (ssize_t)pos :
		    (ssize_t)sizeof(buf);
		if (pread(fd, buf, (size_t)n, pos - n) != n)
			return 0;
		for (i = n - 1; i >= 0 && keep < 0; i--)
			if (buf[i] == '\n')
				keep = pos - n + i + 1;
	}
	if (keep < 0 && pos == 0)
		keep = 0;		/* the only line is torn */
	if (keep < 0 || keep == end)
		return 0;		/* not ours to judge, or intact */
	if (ftruncate(fd, keep) == -1)
		return 0;
	return end - keep;
}

static int
open_log(const char *path, struct xerr *e)
{
	int fd;

	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1)
		return xerr_set(e, XTCMK_E_INVAL, "cannot open decision log "
		    "%s: %s", path, strerror(errno));
	return fd;
}

int
dlog_open(const char *path, struct dlog **ret_log, struct xerr *e)
{
	struct dlog *l;
	off_t cut;
	int rc;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->path = strdup(path)) == NULL) {
		free(l);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	if ((l->fd = open_log(path, e)) < 0) {
		rc = l->fd;
		free(l->path);
		free(l);
		return rc;
	}
	if ((cut = cut_torn_line(l->fd)) > 0) {
		l->torn = (unsigned long long)cut;
		log_event(LOG_WARNING, LOG_MSGID_DLOG, NULL, NULL,
		    "decision log %s: cut a torn last line of %lld bytes "
		    "left by a crash", path, (long long)cut);
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->fd_mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	pthread_cond_init(&l->idle, NULL);
	if (pthread_create(&l->thread, NULL, dlog_main, l) != 0) {
		close(l->fd);
		free(l->path);
		free(l);
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot start the "
		    "decision log writer");
	}
	*ret_log = l;
	return 0;
}

int
dlog_reopen(struct dlog *l, struct xerr *e)
{
	int fd, old;

	if (l == NULL)
		return 0;
	if ((fd = open_log(l->path, e)) < 0)
		return fd;
	pthread_mutex_lock(&l->fd_mu);
	old = l->fd;
	l->fd = fd;
	pthread_mutex_unlock(&l->fd_mu);
	close(old);
	return 0;
}

void
dlog_close(struct dlog *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	close(l->fd);
	free(l->path);
	pthread_mutex_destroy(&l->fd_mu);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	pthread_cond_destroy(&l->idle);
	free(l);
}

void
dlog_append(struct dlog *l, json_t *entry)
{
	char *line;
	size_t len;

	if (l == NULL)
		return;
	if ((line = encode_line(entry, time(NULL), &len)) == NULL) {
		pthread_mutex_lock(&l->mu);
		dropped_locked(l, len > DLOG_LINE_MAX ? "over the line limit" :
		    "out of memory", len);
		pthread_mutex_unlock(&l->mu);
		return;
	}
	pthread_mutex_lock(&l->mu);
	if (l->count == DLOG_QUEUE_MAX) {
		dropped_locked(l, "queue full", len);
		free(line);
	} else {
		l->queue[(l->head + l->count) % DLOG_QUEUE_MAX] = line;
		l->count++;
		if (l->waiting)
			pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}

void
dlog_append_owned(struct dlog *l, json_t *entry)
{
	unsigned at;

	if (l == NULL) {
		json_decref(entry);
		return;
	}
	pthread_mutex_lock(&l->mu);
	if (l->count == DLOG_QUEUE_MAX) {
		dropped_locked(l, "queue full", 0);
		json_decref(entry);
	} else {
		at = (l->head + l->count) % DLOG_QUEUE_MAX;
		l->queue[at] = NULL;
		l->qent[at] = entry;
		l->qtime[at] = time(NULL);
		l->count++;
		/* A busy writer takes it with the others; a sleeping one is
		 * woken for a whole write's worth, or by dlog_kick(). */
		if (l->waiting && l->count >= DLOG_BATCH)
			pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}

/* Wake a sleeping writer for what is queued (l->mu held). */
static void
kick_locked(struct dlog *l)
{
	if (l->waiting && l->count > 0)
		pthread_cond_signal(&l->cv);
}

void
dlog_kick(struct dlog *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	kick_locked(l);
	pthread_mutex_unlock(&l->mu);
}

void
dlog_flush(struct dlog *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	/* What an import handed over may wait for its dlog_kick(). */
	kick_locked(l);
	while (l->count > 0 || l->writing)
		pthread_cond_wait(&l->idle, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

void
dlog_stats(struct dlog *l, unsigned long long *ret_written,
    unsigned long long *ret_dropped, unsigned long long *ret_torn)
{
	pthread_mutex_lock(&l->mu);
	*ret_written = l->written;
	*ret_dropped = l->dropped;
	*ret_torn = l->torn;
	pthread_mutex_unlock(&l->mu);
}
