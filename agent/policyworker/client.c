/*
 * client.c - the agent's side of the policy workers (see worker.h).
 *
 * Every wait sleeps until the call's next deadline: the wall clock's,
 * or the earliest moment the worker can have used its CPU budget, when
 * its CPU clock (clock_getcpuclockid) is read and compared with the
 * budget: the agent, not the worker, decides when a call is over.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "jsonw.h"
#include "worker.h"

struct pworker {
	pid_t			 pid;
	int			 fd;
	clockid_t		 cpu;		/* the worker's CPU clock */
	int			 dead;
	struct policy_set	*set;
	struct pworker_counters	*cnt;
	const atomic_int	*stopping;
	long long		 cpu_seen;	/* its CPU clock, last read */
	struct pbuf		 out;
	struct pchan_in		 in;		/* frames coming in */
};

#define NS_PER_MS	1000000LL

/* A clock in nanoseconds; -1 if it cannot be read (a CPU clock of a
 * process that is gone). */
static long long
clock_ns(clockid_t clk)
{
	struct timespec t;

	if (clock_gettime(clk, &t) == -1)
		return -1;
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Kill, then reap within POLICYD_REAP_MS; describe how it ended. */
static void
kill_reap(struct pworker *w, char *how, size_t howsize)
{
	struct timespec d = { 0, 1000000 };
	int status = 0, i;
	pid_t r = 0;

	if (w->pid <= 0)
		return;
	kill(w->pid, SIGKILL);
	for (i = 0; i < POLICYD_REAP_MS; i++) {
		if ((r = waitpid(w->pid, &status, WNOHANG)) != 0)
			break;
		nanosleep(&d, NULL);
	}
	if (how != NULL && r == w->pid) {
		if (WIFSIGNALED(status))
			snprintf(how, howsize, "killed by signal %d%s",
			    WTERMSIG(status), WTERMSIG(status) == SIGSYS ?
			    " (SIGSYS: a system call its seccomp filter "
			    "forbids)" : WTERMSIG(status) == SIGXCPU ?
			    " (SIGXCPU: RLIMIT_CPU)" : "");
		else
			snprintf(how, howsize, "exited with status %d",
			    WEXITSTATUS(status));
	}
	w->pid = -1;
	w->dead = 1;
}

enum wait_end { END_OK = 0, END_CPU, END_WALL, END_DIED, END_STOP };

/*
 * The deadlines of one exchange, in nanoseconds of CLOCK_MONOTONIC
 * (wall, next_cpu) and of the worker's CPU clock (cpu0, cpu_budget).
 * The worker has one thread (its seccomp filter allows no clone), so its
 * CPU clock never runs faster than the wall clock: until `next_cpu` it
 * cannot have used its budget, and the clock need not be read.
 */
struct deadlines {
	long long	cpu0, cpu_budget, cpu_used;
	long long	wall0, wall_end, next_cpu, next_stop;
};

/*
 * Over a deadline, or asked to stop?  END_OK when neither; then
 * d->next_cpu is the earliest wall-clock time the worker can exhaust
 * its CPU budget (at least POLICYD_CPU_RECHECK_US away, so a worker
 * starved of CPU is not polled in ever smaller steps).
 */
static enum wait_end
limits(struct pworker *w, struct deadlines *d, long long now)
{
	sigset_t pend;
	long long cpu;

	if (now >= d->next_stop) {
		/* SIGTERM waits for sigwait in the agent: stop now. */
		if (sigpending(&pend) == 0 && (sigismember(&pend, SIGTERM) ||
		    sigismember(&pend, SIGINT)))
			w->dead = 1;
		if (w->dead || (w->stopping != NULL &&
		    atomic_load(w->stopping)))
			return END_STOP;
		d->next_stop = now + POLICYD_STOP_POLL_MS * NS_PER_MS;
	}
	if (now >= d->next_cpu) {
		if ((cpu = clock_ns(w->cpu)) == -1)
			return END_DIED;
		d->cpu_used = cpu - d->cpu0;
		if (d->cpu_used > d->cpu_budget)
			return END_CPU;
		d->next_cpu = now + d->cpu_budget - d->cpu_used;
		if (d->next_cpu < now + POLICYD_CPU_RECHECK_US * 1000LL)
			d->next_cpu = now + POLICYD_CPU_RECHECK_US * 1000LL;
	}
	if (now >= d->wall_end)
		return END_WALL;
	return END_OK;
}

/* How long to sleep for the next deadline check (nanoseconds). */
static long long
wait_ns(const struct deadlines *d, long long now)
{
	long long t = d->wall_end;

	if (d->next_cpu < t)
		t = d->next_cpu;
	if (d->next_stop < t)
		t = d->next_stop;
	return t > now ? t - now : 0;
}

/*
 * Write w->out, then read one frame (unless ret_m is NULL), within
 * `cpu_ms` of the worker's CPU and `wall_ms` of wall clock.  The common
 * case costs a send, a poll and a read; an answer that came in the same
 * read as an earlier one (the worker holds the answers of a batch, see
 * policyd.c) costs nothing.  A wait sleeps until the earliest deadline: the
 * wall-clock one, the moment the worker could have used its CPU budget
 * (then its CPU clock is read, and the wait goes on for what is left of
 * the budget), or the next check for a stop (POLICYD_STOP_POLL_MS), so
 * a kill lands within POLICYD_CPU_RECHECK_US and a wake-up of the
 * budget.  Progress without an end is checked against the deadlines
 * as well, so a worker that trickles bytes is stopped all the same.
 */
static enum wait_end
exchange(struct pworker *w, unsigned cpu_ms, unsigned wall_ms,
    struct pmsg *ret_m, long long *ret_cpu_used)
{
	struct deadlines dl;
	struct timespec to;
	size_t woff = 0;
	enum wait_end end;
	struct pollfd pfd;
	long long now, ns;
	ssize_t n;
	int polled = ret_m == NULL || w->out.len > 0, r;

	*ret_cpu_used = 0;
	/* An answer that came with earlier ones costs no system call. */
	if (ret_m != NULL && w->out.len == 0 &&
	    (r = pchan_take(&w->in, ret_m)) != 0)
		return r > 0 ? END_OK : END_DIED;
	/* An answer is awaited from now: the worker's CPU counts from
	 * here.  A send alone reads the clock only if it has to wait. */
	dl.cpu0 = -1;
	if (ret_m != NULL && (dl.cpu0 = w->cpu_seen = clock_ns(w->cpu)) == -1)
		return END_DIED;
	dl.cpu_budget = (long long)cpu_ms * NS_PER_MS;
	dl.cpu_used = 0;
	dl.wall0 = clock_ns(CLOCK_MONOTONIC);
	dl.wall_end = dl.wall0 + (long long)wall_ms * NS_PER_MS;
	dl.next_cpu = dl.wall0 + dl.cpu_budget;
	dl.next_stop = dl.wall0 + POLICYD_STOP_POLL_MS * NS_PER_MS;
	for (;;) {
		if (woff < w->out.len) {
			n = send(w->fd, w->out.data + woff, w->out.len - woff,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n == -1 && errno != EAGAIN && errno != EINTR)
				return END_DIED;
			if (n > 0)
				woff += (size_t)n;
			if (woff == w->out.len && ret_m == NULL)
				return END_OK;	/* sent, no answer wanted */
		} else if (!polled) {
			n = -1;		/* it cannot have answered yet: wait */
		} else {
			/* Non-blocking: the descriptor is O_NONBLOCK. */
			if (pchan_fill(&w->in, w->fd) == -1) {
				if (errno != EAGAIN)
					return END_DIED;
				n = -1;
			} else
				n = 1;
			if (n > 0 && (r = pchan_take(&w->in, ret_m)) != 0) {
				if (r < 0)
					return END_DIED;
				*ret_cpu_used = dl.cpu_used / NS_PER_MS;
				return END_OK;
			}
		}
		if (dl.cpu0 == -1 && (dl.cpu0 = clock_ns(w->cpu)) == -1)
			return END_DIED;
		now = clock_ns(CLOCK_MONOTONIC);
		polled = 1;
		if (n <= 0 && (ns = wait_ns(&dl, now)) > 0) {
			pfd.fd = w->fd;
			pfd.events = woff < w->out.len ? POLLOUT : POLLIN;
			pfd.revents = 0;
			to.tv_sec = (time_t)(ns / 1000000000LL);
			to.tv_nsec = (long)(ns % 1000000000LL);
			if (ppoll(&pfd, 1, &to, NULL) == -1 && errno != EINTR)
				return END_DIED;
			now = clock_ns(CLOCK_MONOTONIC);
		}
		if ((end = limits(w, &dl, now)) != END_OK) {
			*ret_cpu_used = dl.cpu_used / NS_PER_MS;
			return end;
		}
	}
}

/*
 * Turn a failed exchange into the caller's error; the worker is gone.
 * `restarts`: a call's worker is replaced (a set's load just fails).
 */
static int
ended(struct pworker *w, enum wait_end how, const char *what,
    unsigned limit_ms, long long used, int restarts, struct xerr *e)
{
	const char *then = restarts ? "; its policy worker was restarted" :
	    "";
	char died[128] = "";

	kill_reap(w, died, sizeof(died));
	switch (how) {
	case END_CPU:
		atomic_fetch_add(&w->cnt->killed_cpu, 1);
		return xerr_set(e, XTCMK_E_POLICY, "%s: killed after exceeding "
		    "the CPU time limit of %u ms (it ran %lld ms)%s", what,
		    limit_ms, used, then);
	case END_WALL:
		atomic_fetch_add(&w->cnt->killed_wall, 1);
		return xerr_set(e, XTCMK_E_POLICY, "%s: killed after exceeding "
		    "the wall-clock limit of %u ms%s", what,
		    limit_ms * POLICY_WALL_FACTOR, then);
	case END_STOP:
		return xerr_set(e, XTCMK_E_UNAVAILABLE, "%s: the agent is "
		    "shutting down", what);
	default:
		atomic_fetch_add(&w->cnt->died, 1);
		return xerr_set(e, XTCMK_E_POLICY, "%s: its policy worker %s%s",
		    what, died[0] != '\0' ? died : "stopped answering",
		    restarts ? "; it was restarted" : "");
	}
}

/* A worker's error frame as the caller's error. */
static int
worker_error(struct pmsg *m, struct xerr *e)
{
	char code[16], msg[XERR_MSG_MAX];
	int c;

	if (pmsg_next_str(m, code, sizeof(code)) == -1 ||
	    pmsg_next_str(m, msg, sizeof(msg)) == -1)
		return xerr_set(e, XTCMK_E_INTERNAL, "malformed error from a "
		    "policy worker");
	c = atoi(code);
	if (c <= 0 || c == XTCMK_OK)
		c = XTCMK_E_INTERNAL;
	return xerr_set(e, c, "%s", msg);
}

static int
send_load(struct pworker *w)
{
	const struct policy_limits *lim = policy_set_limits(w->set);
	char lims[96], *params;
	const char *src;
	size_t len;
	int k;

	if ((params = json_dumps(policy_set_params(w->set),
	    JSON_COMPACT)) == NULL)
		return -1;
	snprintf(lims, sizeof(lims), "%lu %zu %u", lim->instructions,
	    lim->memory, lim->time_ms);
	pbuf_start(&w->out, PCHAN_LOAD);
	pbuf_add_str(&w->out, policy_set_dir(w->set));
	pbuf_add_str(&w->out, policy_set_lua_dir(w->set));
	pbuf_add_str(&w->out, params);
	pbuf_add_str(&w->out, lims);
	free(params);
	for (k = 0; k < POLICY__COUNT; k++) {
		src = policy_set_source(w->set, k, &len);
		pbuf_add(&w->out, src, len);
	}
	return pbuf_finish(&w->out);
}

static int
start(struct pworker *w, const char *exe, const char *test_hook,
    unsigned flags, struct xerr *e)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char arg[64], parent[32], *argv[4], *envp[1] = { NULL };
	sigset_t none, all;
	int sv[2], r, n = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return xerr_set(e, XTCMK_E_INTERNAL, "socketpair: %s",
		    strerror(errno));
	argv[n++] = "xtcmk-policyd";
	if (test_hook != NULL) {
		snprintf(arg, sizeof(arg), "--test=%s", test_hook);
		argv[n++] = arg;
	}
	if (flags & PWORKER_DIE_WITH_PARENT) {
		snprintf(parent, sizeof(parent), "--parent=%ld",
		    (long)getpid());
		argv[n++] = parent;
	}
	argv[n] = NULL;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	r = posix_spawn(&w->pid, exe, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(sv[1]);
	if (r != 0) {
		close(sv[0]);
		w->pid = -1;
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot start the policy "
		    "worker %s: %s (set [policy] worker)", exe, strerror(r));
	}
	w->fd = sv[0];
	if (fcntl(w->fd, F_SETFL, O_NONBLOCK) == -1 ||
	    clock_getcpuclockid(w->pid, &w->cpu) != 0) {
		kill_reap(w, NULL, 0);
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot watch the policy "
		    "worker: %s", strerror(errno));
	}
	atomic_fetch_add(&w->cnt->spawned, 1);
	return 0;
}

int
pworker_spawn(const char *exe, struct policy_set *set,
    const char *test_hook, unsigned flags, struct pworker_counters *cnt,
    const atomic_int *stopping, struct pworker **ret_w, struct xerr *e)
{
	const struct policy_limits *lim = policy_set_limits(set);
	char what[PATH_MAX + 64], hash[72], name[POLICY_NAME_MAX + 1];
	struct pworker *w;
	struct pmsg m = { 0 };
	enum wait_end how;
	long long used;
	unsigned cpu_ms, wall_ms;
	int k, r;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	w->fd = -1;
	w->cnt = cnt;
	w->stopping = stopping;
	w->set = policy_set_ref(set);
	snprintf(what, sizeof(what), "policy set %s (compiling and "
	    "self-testing it)", policy_set_dir(set));
	if ((r = start(w, exe, test_hook, flags, e)) < 0)
		goto fail;
	if (send_load(w) == -1) {
		r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	/* Compiling and one budget per self-test, plus starting up. */
	cpu_ms = POLICYD_SPAWN_MS + (POLICY__COUNT + 1) *
	    (lim->time_ms + POLICYD_CPU_SLACK_MS);
	wall_ms = POLICYD_SPAWN_MS + (POLICY__COUNT + 1) * lim->time_ms *
	    POLICY_WALL_FACTOR;
	if ((how = exchange(w, cpu_ms, wall_ms, &m, &used)) != END_OK) {
		r = ended(w, how, what, how == END_CPU ? cpu_ms : wall_ms /
		    POLICY_WALL_FACTOR, used, 0, e);
		goto fail;
	}
	if (m.type == PCHAN_ERROR) {
		r = worker_error(&m, e);
		goto fail;
	}
	if (m.type != PCHAN_READY || pmsg_next_str(&m, hash,
	    sizeof(hash)) == -1 || strcmp(hash, policy_set_hash(set)) != 0) {
		r = xerr_set(e, XTCMK_E_INTERNAL, "%s: the policy worker "
		    "answered with a different set", what);
		goto fail;
	}
	for (k = 0; k < POLICY__COUNT; k++)
		if (pmsg_next_str(&m, name, sizeof(name)) == 0 &&
		    strcmp(name, policy_kind_name(k)) != 0 &&
		    policy_set_set_name(set, k, name) == -1) {
			r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto fail;
		}
	pmsg_free(&m);
	*ret_w = w;
	return 0;
fail:
	pmsg_free(&m);
	pworker_free(w);
	return r;
}

int
pworker_load_set(const char *exe, const char *dir, const char *lua_dir,
    json_t *params, const struct policy_limits *lim, const char *test_hook,
    unsigned flags, struct pworker_counters *cnt, const atomic_int *stopping,
    struct policy_set **ret_set, struct pworker **ret_w, struct xerr *e)
{
	struct policy_set *set;
	struct pworker *w = NULL;
	int r;

	if ((r = policy_set_read(dir, lua_dir, params, lim, &set, e)) < 0)
		return r;
	if ((r = pworker_spawn(exe, set, test_hook, flags, cnt, stopping,
	    &w, e)) < 0) {
		policy_set_unref(set);
		return r;
	}
	if (ret_w != NULL)
		*ret_w = w;
	else
		pworker_free(w);
	*ret_set = set;
	return 0;
}

/* Make one CALL frame in w->out (see struct pworker_req for splice). */
static int
frame_call(struct pworker *w, const char *op, enum policy_kind k,
    json_t *input, json_t *params, const char *splice_key, json_t *splice,
    int more, const char *what, struct xerr *e)
{
	char *in, *par, kind[8];
	json_t *rest = NULL;
	int r = 0;

	if (splice != NULL && json_is_object(input) &&
	    (rest = json_copy(input)) != NULL)
		json_object_del(rest, splice_key);
	else
		splice = NULL;
	/* No input: the worker makes it (POLICY_OP_ROLE_AFTER). */
	in = input != NULL ? jsonw_dumps(rest != NULL ? rest : input, NULL) :
	    strdup("");
	json_decref(rest);
	par = params != NULL ? jsonw_dumps(params, NULL) : NULL;
	/* "+": another call of this batch follows (see policyd.c). */
	snprintf(kind, sizeof(kind), "%d%s", (int)k, more ? "+" : "");
	if (in == NULL || (params != NULL && par == NULL))
		r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	else {
		pbuf_start(&w->out, PCHAN_CALL);
		pbuf_add_str(&w->out, op);
		pbuf_add_str(&w->out, kind);
		pbuf_add_str(&w->out, in);
		pbuf_add_str(&w->out, par);
		if (splice != NULL) {
			pbuf_add_str(&w->out, splice_key);
			pbuf_add(&w->out, json_string_value(splice),
			    json_string_length(splice));
		}
		if (pbuf_finish(&w->out) == -1)
			r = xerr_set(e, XTCMK_E_TOOBIG, "%s: the input is "
			    "larger than %u bytes", what, POLICYD_FRAME_MAX);
	}
	free(in);
	free(par);
	return r;
}

/* Send w->out within the call's deadlines. */
static int
send_call(struct pworker *w, const char *what, struct xerr *e)
{
	const struct policy_limits *lim = policy_set_limits(w->set);
	enum wait_end how;
	long long used;

	how = exchange(w, lim->time_ms + POLICYD_CPU_SLACK_MS,
	    lim->time_ms * POLICY_WALL_FACTOR, NULL, &used);
	if (how != END_OK)
		return ended(w, how, what, lim->time_ms, used, 1, e);
	return 0;
}

/*
 * Read the answer to the oldest CALL sent: the worker's CPU budget and
 * wall-clock deadline count from now (the worker runs calls one after
 * the other, so this one starts at the latest when the previous answer
 * arrived).
 */
static int
recv_result(struct pworker *w, const char *what, json_t **ret_out,
    struct xerr *e)
{
	const struct policy_limits *lim = policy_set_limits(w->set);
	struct pmsg m = { 0 };
	const uint8_t *p;
	enum wait_end how;
	json_error_t je;
	json_t *out;
	long long used;
	size_t len;
	int r;

	w->out.len = 0;			/* nothing more to send */
	how = exchange(w, lim->time_ms + POLICYD_CPU_SLACK_MS,
	    lim->time_ms * POLICY_WALL_FACTOR, &m, &used);
	if (how != END_OK)
		return ended(w, how, what, lim->time_ms, used, 1, e);
	if (m.type == PCHAN_ERROR) {
		r = worker_error(&m, e);
		goto out;
	}
	/* The worker checked the result; check again, it is not trusted. */
	if (m.type != PCHAN_RESULT || pmsg_next(&m, &p, &len) == -1 ||
	    (out = json_loadb((const char *)p, len, JSON_DECODE_ANY,
	    &je)) == NULL || !(json_is_object(out) || json_is_null(out))) {
		kill_reap(w, NULL, 0);
		r = xerr_set(e, XTCMK_E_POLICY, "%s: the policy worker sent a "
		    "malformed result; it was restarted", what);
		goto out;
	}
	if (json_is_null(out)) {
		json_decref(out);
		out = NULL;
	}
	*ret_out = out;
	r = 0;
out:
	pmsg_free(&m);
	return r;
}

static void
call_what(struct pworker *w, enum policy_kind k, char *buf, size_t len)
{
	snprintf(buf, len, "policy '%s' (%s.lua)", policy_set_name(w->set, k),
	    policy_kind_name(k));
}

int
pworker_call(struct pworker *w, const char *op, enum policy_kind k,
    json_t *input, json_t *params, json_t **ret_out, struct xerr *e)
{
	char what[POLICY_NAME_MAX + 64];
	int r;

	call_what(w, k, what, sizeof(what));
	if (w->dead)
		return xerr_set(e, XTCMK_E_INTERNAL, "%s: its worker is gone",
		    what);
	if ((r = frame_call(w, op, k, input, params, NULL, NULL, 0, what,
	    e)) < 0 ||
	    (r = send_call(w, what, e)) < 0)
		return r;
	return recv_result(w, what, ret_out, e);
}

size_t
pworker_send_batch(struct pworker *w, struct pworker_req *req, size_t n)
{
	char what[POLICY_NAME_MAX + 64];
	struct pbuf all = { 0 };
	size_t i, sent;
	int rc;

	for (i = 0; i < n; i++) {
		req[i].output = NULL;
		req[i].rc = 0;
		xerr_clear(&req[i].err);
	}
	/* The frames that fit POLICYD_PIPELINE_MAX in one send (so neither
	 * side can block the other's writes): the worker reads them in one
	 * read, runs them back to back and answers them together. */
	for (sent = 0; sent < n && !w->dead; sent++) {
		call_what(w, req[sent].kind, what, sizeof(what));
		if (frame_call(w, req[sent].op, req[sent].kind, req[sent].input,
		    NULL, req[sent].splice_key, req[sent].splice, sent + 1 < n,
		    what, &req[sent].err) < 0 ||
		    (sent > 0 && all.len + w->out.len > POLICYD_PIPELINE_MAX))
			break;			/* the rest one by one */
		if (all.len == 0) {
			/* The first frame as it is: swap buffers. */
			struct pbuf t = all;

			all = w->out;
			w->out = t;
		} else {
			pbuf_append(&all, w->out.data, w->out.len);
			if (all.failed) {
				all.failed = 0;
				break;		/* the rest one by one */
			}
			atomic_fetch_add(&w->cnt->sent_ahead, 1);
		}
	}
	if (all.len > 0) {
		struct pbuf t = w->out;

		w->out = all;
		all = t;
		call_what(w, req[0].kind, what, sizeof(what));
		if ((rc = send_call(w, what, &req[0].err)) < 0)
			req[0].rc = rc;	/* the worker is gone */
	}
	pbuf_free(&all);
	return sent;
}

void
pworker_recv_batch(struct pworker *w, struct pworker_req *req, size_t n,
    size_t sent)
{
	char what[POLICY_NAME_MAX + 64];
	size_t i;

	/* The answers in order, then the calls not sent ahead. */
	for (i = 0; i < n; i++) {
		if (req[i].rc < 0)
			continue;
		call_what(w, req[i].kind, what, sizeof(what));
		if (w->dead)
			req[i].rc = xerr_set(&req[i].err, XTCMK_E_INTERNAL,
			    "%s: not run, its worker is gone", what);
		else if (i < sent)
			req[i].rc = recv_result(w, what, &req[i].output,
			    &req[i].err);
		else
			req[i].rc = pworker_call(w, req[i].op, req[i].kind,
			    req[i].input, NULL, &req[i].output, &req[i].err);
	}
}

void
pworker_call_batch(struct pworker *w, struct pworker_req *req, size_t n)
{
	pworker_recv_batch(w, req, n, pworker_send_batch(w, req, n));
}

int
pworker_usable(struct pworker *w)
{
	if (w == NULL || w->dead)
		return 0;
	/*
	 * Replace a worker well before RLIMIT_CPU would kill it mid-call.
	 * Its CPU clock as last read (at each call's start: at most one
	 * call's budget behind) saves a system call per check.
	 */
	if (w->cpu_seen > (long long)POLICYD_CPU_LIFE_S / 2 * 1000000000LL) {
		atomic_fetch_add(&w->cnt->recycled, 1);
		return 0;
	}
	return 1;
}

pid_t
pworker_pid(const struct pworker *w)
{
	return w->pid;
}

struct policy_set *
pworker_set(const struct pworker *w)
{
	return w->set;
}

void
pworker_free(struct pworker *w)
{
	if (w == NULL)
		return;
	if (w->fd != -1)
		close(w->fd);
	kill_reap(w, NULL, 0);
	pbuf_free(&w->out);
	pchan_in_free(&w->in);
	policy_set_unref(w->set);
	free(w);
}
