/*
 * conf_check.c - what start-up needs beyond a well-formed config (see
 * config_check_start in conf.h): the socket address fits, the
 * directories exist, and no one but root or the agent's user can change
 * what the agent trusts.  `xtcmkd --check-config` and every reload run
 * the same checks, so a config that passes them starts.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"

static int
dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return -1;
	snprintf(buf, len, "%.*s", slash == path ? 1 : (int)(slash - path),
	    path);
	return 0;
}

static int
need_dir(const struct config *c, const char *key, const char *path,
    const char *hint, struct xerr *e)
{
	char dir[PATH_MAX], w[CONFIG_WHERE_MAX];
	struct stat st;

	if (dir_of(path, dir, sizeof(dir)) < 0)
		return 0;
	if (stat(dir, &st) == -1)
		return xerr_set(e, XTCMK_E_INVAL, "%s: directory %s of %s: %s%s",
		    config_where(c, "agent", key, w, sizeof(w)), dir, path,
		    strerror(errno), hint);
	if (!S_ISDIR(st.st_mode))
		return xerr_set(e, XTCMK_E_INVAL, "%s: %s is not a directory",
		    config_where(c, "agent", key, w, sizeof(w)), dir);
	return 0;
}

/*
 * Who may change what the agent trusts: root and the agent's own user.
 * Anyone else able to write the config could grant themselves admin_uids,
 * anyone able to write a policy decides which application serves whom.
 */
static int
safe_mode(const struct stat *st)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return 0;
	if ((st->st_mode & S_IWOTH) != 0 && !(S_ISDIR(st->st_mode) &&
	    (st->st_mode & S_ISVTX) != 0 && st->st_uid == 0))
		return 0;
	if ((st->st_mode & S_IWGRP) != 0 && st->st_gid != 0 &&
	    st->st_gid != getegid())
		return 0;
	return 1;
}

static int
mode_error(const char *what, const char *path, const struct stat *st,
    struct xerr *e)
{
	return xerr_set(e, XTCMK_E_INVAL, "%s %s is owned by uid %u gid %u "
	    "with mode %04o: only root or the agent's user (uid %u) may be "
	    "able to write it (chown root and chmod go-w)", what, path,
	    (unsigned)st->st_uid, (unsigned)st->st_gid,
	    (unsigned)(st->st_mode & 07777), (unsigned)geteuid());
}

/* nftw(3) has no user pointer: the walk runs under config_check_start's
 * single caller at a time (start-up, --check-config, reload_mu). */
static pthread_mutex_t walk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	const char	*what;
	struct xerr	*e;
	unsigned	 n;
	int		 rc;
} walk;

static int
walk_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)f;
	if (flag == FTW_SL || flag == FTW_SLN)
		return 0;
	if (flag == FTW_DNR || flag == FTW_NS) {
		walk.rc = xerr_set(walk.e, XTCMK_E_INVAL, "%s: cannot read "
		    "%s", walk.what, path);
		return 1;
	}
	if (++walk.n > CONFIG_WALK_MAX) {
		walk.rc = xerr_set(walk.e, XTCMK_E_INVAL, "%s holds more than "
		    "%d files", walk.what, CONFIG_WALK_MAX);
		return 1;
	}
	if (!safe_mode(st)) {
		walk.rc = mode_error(walk.what, path, st, walk.e);
		return 1;
	}
	return 0;
}

static int
check_tree(const struct config *c, const char *key, const char *path,
    struct xerr *e)
{
	char what[CONFIG_WHERE_MAX];
	int rc;

	config_where(c, "agent", key, what, sizeof(what));
	pthread_mutex_lock(&walk_mu);
	walk.what = what;
	walk.e = e;
	walk.n = 0;
	walk.rc = 0;
	if (nftw(path, walk_one, 16, FTW_PHYS) == -1 && walk.rc == 0)
		walk.rc = xerr_set(e, XTCMK_E_INVAL, "%s: %s: %s", what, path,
		    strerror(errno));
	rc = walk.rc;
	pthread_mutex_unlock(&walk_mu);
	return rc;
}

/* "HOST:PORT" or "[V6]:PORT", numeric only. */
int
config_metrics_addr(const struct config *c, struct sockaddr_storage *ss,
    int *ret_v6, struct xerr *e)
{
	const char *v = c->metrics_listen;
	char w[CONFIG_WHERE_MAX];
	char host[64];
	const char *colon = strrchr(v, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	    .ai_socktype = SOCK_STREAM }, *ai;
	size_t hl;

	if (colon == NULL || colon == v || colon[1] == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s': use ADDRESS:PORT, "
		    "e.g. 127.0.0.1:9477", config_where(c, "metrics", "listen",
		    w, sizeof(w)), v);
	hl = (size_t)(colon - v);
	if (v[0] == '[' && hl > 2 && v[hl - 1] == ']') {
		v++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return xerr_set(e, XTCMK_E_INVAL, "%s: address too long",
		    config_where(c, "metrics", "listen", w, sizeof(w)));
	memcpy(host, v, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s': not a numeric "
		    "address and port", config_where(c, "metrics", "listen", w,
		    sizeof(w)), c->metrics_listen);
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*ret_v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
}

int
config_check_start(const struct config *c, int activated, struct xerr *e)
{
	struct sockaddr_storage ss;
	int v6;

	struct sockaddr_un sa;
	char w[CONFIG_WHERE_MAX];
	struct stat st;
	int rc;

	if (!activated) {
		if (strlen(c->socket_path) >= sizeof(sa.sun_path))
			return xerr_set(e, XTCMK_E_INVAL, "%s: %s is %zu bytes; "
			    "a Unix socket path holds at most %zu",
			    config_where(c, "agent", "socket", w, sizeof(w)),
			    c->socket_path, strlen(c->socket_path),
			    sizeof(sa.sun_path) - 1);
		if ((rc = need_dir(c, "socket", c->socket_path, " (systemd "
		    "makes /run/xtcmk through RuntimeDirectory=; otherwise "
		    "create it)", e)) < 0)
			return rc;
	}
	/* The agent makes state_dir itself, not its parent. */
	if ((rc = need_dir(c, "state_dir", c->state_dir, "", e)) < 0)
		return rc;
	if (strncmp(c->decision_log, c->state_dir, strlen(c->state_dir)) != 0 ||
	    strchr(c->decision_log + strlen(c->state_dir) + 1, '/') != NULL)
		if ((rc = need_dir(c, "decision_log", c->decision_log, "",
		    e)) < 0)
			return rc;
	if (c->path != NULL) {
		if (stat(c->path, &st) == -1)
			return xerr_set(e, XTCMK_E_INVAL, "%s: %s", c->path,
			    strerror(errno));
		if (!safe_mode(&st))
			return mode_error("config", c->path, &st, e);
	}
	if ((rc = check_tree(c, "policy_dir", c->policy_dir, e)) < 0 ||
	    (rc = check_tree(c, "lua_dir", c->lua_dir, e)) < 0)
		return rc;
	if (c->metrics_listen != NULL &&
	    (rc = config_metrics_addr(c, &ss, &v6, e)) < 0)
		return rc;
	return 0;
}
