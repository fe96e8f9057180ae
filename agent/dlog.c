/*
 * dlog.c - decision log writer (see dlog.h).
 *
 * Callers serialise their entry and push the line on a bounded queue; one
 * thread writes batches with O_APPEND.  A full queue drops the line and
 * counts it: the decision itself was already made and recorded in the
 * registry, the log is the audit trail and must not stall requests.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlog.h"
#include "log.h"

struct dlog {
	int		 fd;
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* work for the writer */
	pthread_cond_t	 idle;		/* queue drained */
	char		*queue[DLOG_QUEUE_MAX];
	unsigned	 head, count;
	int		 writing, stop;
	unsigned long long written, dropped;
	unsigned long long dropped_warned;	/* count at the last warning */
	time_t		 warned_at;
};

#define DLOG_WARN_EVERY_S	60	/* at most one drop warning a minute */

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

static void
write_all(int fd, const char *s, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, s, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_err("decision log: write failed: %s",
			    strerror(errno));
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

static void *
dlog_main(void *arg)
{
	struct dlog *l = arg;
	char *line;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (l->count == 0 && !l->stop) {
			pthread_cond_broadcast(&l->idle);
			pthread_cond_wait(&l->cv, &l->mu);
		}
		if (l->count == 0 && l->stop)
			break;
		line = l->queue[l->head];
		l->head = (l->head + 1) % DLOG_QUEUE_MAX;
		l->count--;
		l->writing = 1;
		pthread_mutex_unlock(&l->mu);
		write_all(l->fd, line, strlen(line));
		free(line);
		pthread_mutex_lock(&l->mu);
		l->writing = 0;
		l->written++;
	}
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int
dlog_open(const char *path, struct dlog **ret_log, struct xerr *e)
{
	struct dlog *l;
	int rc;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	l->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd == -1) {
		rc = xerr_set(e, XTCMK_E_INVAL, "cannot open decision log "
		    "%s: %s", path, strerror(errno));
		free(l);
		return rc;
	}
	/* A crash in the middle of a write leaves a partial last line:
	 * end it, so the next entry starts a line of its own. */
	{
		off_t end = lseek(l->fd, 0, SEEK_END);
		char last;

		if (end > 0 && pread(l->fd, &last, 1, end - 1) == 1 &&
		    last != '\n')
			write_all(l->fd, "\n", 1);
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	pthread_cond_init(&l->idle, NULL);
	if (pthread_create(&l->thread, NULL, dlog_main, l) != 0) {
		close(l->fd);
		free(l);
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot start the "
		    "decision log writer");
	}
	*ret_log = l;
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
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	pthread_cond_destroy(&l->idle);
	free(l);
}

void
dlog_append(struct dlog *l, json_t *entry)
{
	json_t *copy;
	char *s, *line;
	size_t len;

	if (l == NULL)
		return;
	copy = json_copy(entry);
	json_object_set_new(copy, "time", json_integer(time(NULL)));
	s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	if (s == NULL)
		return;
	len = strlen(s);
	if (len > DLOG_LINE_MAX || (line = malloc(len + 2)) == NULL) {
		free(s);
		pthread_mutex_lock(&l->mu);
		dropped_locked(l, len > DLOG_LINE_MAX ? "over the line limit" :
		    "out of memory", len);
		pthread_mutex_unlock(&l->mu);
		return;
	}
	memcpy(line, s, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	free(s);
	pthread_mutex_lock(&l->mu);
	if (l->count == DLOG_QUEUE_MAX) {
		dropped_locked(l, "queue full", len);
		free(line);
	} else {
		l->queue[(l->head + l->count) % DLOG_QUEUE_MAX] = line;
		l->count++;
		pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}

void
dlog_flush(struct dlog *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	while (l->count > 0 || l->writing)
		pthread_cond_wait(&l->idle, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

void
dlog_stats(struct dlog *l, unsigned long long *ret_written,
    unsigned long long *ret_dropped)
{
	pthread_mutex_lock(&l->mu);
	*ret_written = l->written;
	*ret_dropped = l->dropped;
	pthread_mutex_unlock(&l->mu);
}
