/*
 * harness.h - start a real xtcmkd for integration tests: a temporary state
 * dir and config, the agent as a child process, xtcmkctl runs, restarts
 * and kills.  Paths come from $XTCMK_BUILDDIR and $XTCMK_SRCDIR (set by
 * tests/meson.build).
 */
#ifndef XTCMK_HARNESS_H
#define XTCMK_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct agent {
	char	dir[256];		/* temporary root */
	char	conf[320];		/* dir/xtcmk.conf */
	char	sock[320];		/* dir/xtcmkd.sock */
	char	state[320];		/* dir/state */
	char	log[320];		/* dir/agent.log (stderr of the agent) */
	char	policy_dir[512];
	char	extra[2048];		/* more config lines, appended */
	pid_t	pid;
	/* Set after agent_init: SIGKILL the agent when the thread that
	 * started it exits (PR_SET_PDEATHSIG). */
	int	die_with_test;
};

static inline const char *
h_builddir(void)
{
	const char *b = getenv("XTCMK_BUILDDIR");

	return b != NULL ? b : "build";
}

static inline const char *
h_srcdir(void)
{
	const char *s = getenv("XTCMK_SRCDIR");

	return s != NULL ? s : ".";
}

/*
 * (Re)write the config of an initialised agent: workload may be NULL;
 * extra lines (e.g. "[params]\ncustomers_per_app = 5\n") may be NULL and
 * come last, so they override the defaults written before them.  Takes
 * effect at the next agent_start().
 */
static inline int
agent_config(struct agent *a, const char *workload, const char *extra)
{
	FILE *f;

	if (extra != NULL)
		snprintf(a->extra, sizeof(a->extra), "%s", extra);
	else
		a->extra[0] = '\0';
	if ((f = fopen(a->conf, "w")) == NULL)
		return -1;
	fprintf(f, "[agent]\nsocket = %s\nstate_dir = %s\npolicy_dir = %s\n"
	    "lua_dir = %s/lua\nrequest_timeout = 5\n", a->sock, a->state,
	    a->policy_dir, h_srcdir());
	if (workload != NULL)
		fprintf(f, "workload = %s\n", workload);
	if (extra != NULL)
		fputs(extra, f);
	return fclose(f) == 0 ? 0 : -1;
}

/* Write the config: workload may be NULL; extra lines (e.g. "[params]\n
 * customers_per_app = 5\n") may be NULL. */
static inline int
agent_init(struct agent *a, const char *workload, const char *extra)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->dir, sizeof(a->dir), "/tmp/xtcmk-test-XXXXXX");
	if (mkdtemp(a->dir) == NULL)
		return -1;
	snprintf(a->conf, sizeof(a->conf), "%s/xtcmk.conf", a->dir);
	snprintf(a->sock, sizeof(a->sock), "%s/xtcmkd.sock", a->dir);
	snprintf(a->state, sizeof(a->state), "%s/state", a->dir);
	snprintf(a->log, sizeof(a->log), "%s/agent.log", a->dir);
	snprintf(a->policy_dir, sizeof(a->policy_dir), "%s/policies/default",
	    h_srcdir());
	return agent_config(a, workload, extra);
}

static inline int
agent_connectable(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Start the agent and wait (up to 10 s) until its socket answers. */
static inline int
agent_start(struct agent *a)
{
	char bin[512];
	int i, fd;

	snprintf(bin, sizeof(bin), "%s/agent/xtcmkd", h_builddir());
	if ((a->pid = fork()) == -1)
		return -1;
	if (a->pid == 0) {
		/* A test that dies (sanitizer abort) must not leave an agent
		 * behind holding the test runner's output pipe. */
		if (a->die_with_test)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(bin, "xtcmkd", "-c", a->conf, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {
		int st;

		if (agent_connectable(a->sock))
			return 0;
		if (waitpid(a->pid, &st, WNOHANG) == a->pid) {
			a->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

/* SIGTERM (or `sig`) and wait; returns the exit status or -1. */
static inline int
agent_stop_sig(struct agent *a, int sig)
{
	int st = 0;

	if (a->pid <= 0)
		return -1;
	kill(a->pid, sig);
	waitpid(a->pid, &st, 0);
	a->pid = 0;
	return st;
}

static inline int
agent_stop(struct agent *a)
{
	return agent_stop_sig(a, SIGTERM);
}

/* Remove the temporary tree (agent stopped first). */
static inline void
agent_cleanup(struct agent *a)
{
	char cmd[300];

	if (a->pid > 0)
		agent_stop_sig(a, SIGKILL);
	if (getenv("XTCMK_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", a->dir);
		(void)!system(cmd);
	}
}

/*
 * Run xtcmkctl against the agent with printf-style arguments (a shell
 * command line after "xtcmkctl -s SOCK").  Captures stdout+stderr into
 * `out` (may be NULL); returns the exit code.
 */
static inline int
ctl(struct agent *a, char *out, size_t outlen, const char *fmt, ...)
{
	char args[4096], cmd[5120];
	va_list ap;
	FILE *p;
	size_t n = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s/ctl/xtcmkctl -s %s -c %s %s 2>&1",
	    h_builddir(), a->sock, a->conf, args);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	if (out != NULL && outlen > 0) {
		n = fread(out, 1, outlen - 1, p);
		out[n] = '\0';
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
