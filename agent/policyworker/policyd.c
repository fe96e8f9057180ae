/*
 * policyd.c - xtcmk-policyd, the policy worker.  The agent spawns it with
 * its end of a socketpair as descriptor 3, an empty environment and no
 * other descriptors worth keeping; it never runs on its own.
 *
 * Life of a worker: read the LOAD frame (the policy set's sources,
 * params and limits), read the whole lua/ library into memory, close
 * every descriptor but the channel, confine itself (resource limits,
 * no_new_privs, a seccomp allow-list that kills the process on any other
 * system call), then compile the set and run its self-tests and answer
 * READY.  From then on it answers CALL frames in order, each from a
 * pristine state (see policy.c), until the channel closes; the answers
 * to calls that came together go back together.  The agent
 * enforces the deadlines: it SIGKILLs a worker whose call runs past its
 * CPU budget or wall-clock deadline and spawns another.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "chan.h"
#include "jsonw.h"
#include "policy.h"
#include "worker.h"

#define CHAN_FD			3

static const int allowed_syscalls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(brk), SCMP_SYS(mmap),
	SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(futex),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall), SCMP_SYS(exit),
	SCMP_SYS(exit_group),
};

#if defined(__SANITIZE_ADDRESS__)
/*
 * AddressSanitizer builds (the test suite's second pass) only: its shadow
 * memory is terabytes of address space, so RLIMIT_AS would stop every
 * allocation, and the sanitizer runtime makes system calls the filter
 * forbids.  Such a worker is not confined by RLIMIT_AS or seccomp (the
 * Lua allocator's limit and the agent's deadlines still hold); release
 * builds keep both, and test_isolation checks them there.
 */
#define POLICYD_SANITIZED 1
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

/* An ERROR frame in b: 0, or -1 if it cannot be made. */
static int
frame_error(struct pbuf *b, int code, const char *msg)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", code);
	pbuf_start(b, PCHAN_ERROR);
	pbuf_add_str(b, num);
	pbuf_add_str(b, msg);
	return pbuf_finish(b);
}

static int
send_error(struct pbuf *b, int code, const char *msg)
{
	if (frame_error(b, code, msg) == -1)
		return -1;
	return pchan_write_all(CHAN_FD, b->data, b->len);
}

/*
 * Only the calls the loaded engine needs: memory, clocks, the channel.
 * read and write are allowed on the channel alone; anything else kills
 * the whole process (SIGSYS).
 */
static int
confine(const struct policy_limits *lim)
{
	struct rlimit rl;
	scmp_filter_ctx ctx;
	size_t i;
	int ok;

	rl.rlim_cur = rl.rlim_max = (rlim_t)lim->memory * 2 +
	    POLICYD_AS_SLACK;
#ifndef POLICYD_SANITIZED
	if (setrlimit(RLIMIT_AS, &rl) == -1)
		return -1;
#endif
	rl.rlim_cur = rl.rlim_max = POLICYD_CPU_LIFE_S;
	if (setrlimit(RLIMIT_CPU, &rl) == -1)
		return -1;
	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1 ||
	    setrlimit(RLIMIT_FSIZE, &rl) == -1 ||
	    setrlimit(RLIMIT_NPROC, &rl) == -1)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return -1;
#ifdef POLICYD_SANITIZED
	return 0;
#endif
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return -1;
	ok = 1;
	for (i = 0; ok && i < sizeof(allowed_syscalls) /
	    sizeof(allowed_syscalls[0]); i++) {
		if (allowed_syscalls[i] == SCMP_SYS(read) ||
		    allowed_syscalls[i] == SCMP_SYS(write))
			ok = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
			    allowed_syscalls[i], 1,
			    SCMP_A0(SCMP_CMP_EQ, CHAN_FD)) == 0;
		else
			ok = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
			    allowed_syscalls[i], 0) == 0;
	}
	ok = ok && seccomp_load(ctx) == 0;
	seccomp_release(ctx);
	return ok ? 0 : -1;
}

/*
 * The test-only hook (--test=NAME, passed by an agent or xtcmkctl
 * started with XTCMK_TEST_POLICYD=NAME), run at each call after
 * confinement (or, for load-NAME, once before compiling the set): try
 * a forbidden system call, or spin in C where no Lua hook can stop it.
 */
static void
test_hook(const char *name)
{
	char *argv[] = { "true", NULL };
	volatile unsigned long n = 0;

	if (strcmp(name, "spin") == 0)
		for (;;)
			n++;
	if (strcmp(name, "open") == 0)
		(void)syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
	else if (strcmp(name, "socket") == 0)
		(void)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	else if (strcmp(name, "execve") == 0)
		(void)syscall(SYS_execve, "/bin/true", argv, argv + 1);
}

/* LOAD: make the set (no Lua yet) and read the library. */
static int
load(struct pmsg *m, struct policy_set **ret_set, struct xerr *e)
{
	char dir[PATH_MAX], lua_dir[PATH_MAX], lims[96];
	const char *src[POLICY__COUNT];
	size_t srclen[POLICY__COUNT], plen;
	const uint8_t *p, *item;
	struct policy_limits lim;
	json_t *params;
	json_error_t je;
	int k, r;

	if (m->type != PCHAN_LOAD || pmsg_next_str(m, dir, sizeof(dir)) ||
	    pmsg_next_str(m, lua_dir, sizeof(lua_dir)) ||
	    pmsg_next(m, &p, &plen) ||
	    pmsg_next_str(m, lims, sizeof(lims)) ||
	    sscanf(lims, "%lu %zu %u", &lim.instructions, &lim.memory,
	    &lim.time_ms) != 3)
		return xerr_set(e, XTCMK_E_INTERNAL, "malformed LOAD frame");
	for (k = 0; k < POLICY__COUNT; k++) {
		if (pmsg_next(m, &item, &srclen[k]) == -1)
			return xerr_set(e, XTCMK_E_INTERNAL, "malformed LOAD "
			    "frame");
		src[k] = (const char *)item;
	}
	if ((params = json_loadb((const char *)p, plen, 0, &je)) == NULL)
		return xerr_set(e, XTCMK_E_INTERNAL, "params: %s", je.text);
	r = policy_set_new(dir, lua_dir, params, &lim, src, srclen, ret_set,
	    e);
	json_decref(params);
	if (r == 0 && (r = policy_set_preload(*ret_set, e)) < 0)
		policy_set_unref(*ret_set);
	return r;
}

/* READY with the set's hash and the policies' names. */
static int
send_ready(struct pbuf *b, struct policy_set *set)
{
	int k;

	pbuf_start(b, PCHAN_READY);
	pbuf_add_str(b, policy_set_hash(set));
	for (k = 0; k < POLICY__COUNT; k++)
		pbuf_add_str(b, policy_set_name(set, k));
	if (pbuf_finish(b) == -1)
		return -1;
	return pchan_write_all(CHAN_FD, b->data, b->len);
}

/*
 * The last partition decision that succeeded, for a role decision sent
 * right after it with op POLICY_OP_ROLE_AFTER (its input made here, as
 * the agent makes it: policy_role_input); any other call forgets it.
 */
struct last_partition {
	json_t	*input, *output;
};

/*
 * Spliced members (see struct pworker_req) kept parsed: key, text and
 * value of the last SPLICED_MAX texts; a call that sends one of them
 * again reuses its parse (an import's inputs share a few workload lists).
 */
#define SPLICED_MAX	8

struct spliced {
	struct spliced_one {
		char	*key;
		uint8_t	*text;
		size_t	 len;
		json_t	*value;
	} one[SPLICED_MAX];
	unsigned next;
};

/* Set member `key` of `input` to the value of `text`, parsed once. */
static int
splice_member(struct spliced *sp, json_t *input, const uint8_t *key,
    size_t klen, const uint8_t *text, size_t len)
{
	struct spliced_one *c;
	json_error_t je;
	json_t *v = NULL;
	unsigned i;

	for (i = 0; i < SPLICED_MAX && v == NULL; i++) {
		c = &sp->one[i];
		if (c->key != NULL && strlen(c->key) == klen &&
		    memcmp(c->key, key, klen) == 0 && c->len == len &&
		    memcmp(c->text, text, len) == 0)
			v = c->value;
	}
	if (v == NULL) {
		if ((v = json_loadb((const char *)text, len, 0, &je)) == NULL)
			return -1;
		c = &sp->one[sp->next++ % SPLICED_MAX];
		free(c->key);
		free(c->text);
		json_decref(c->value);
		c->value = v;
		c->key = strndup((const char *)key, klen);
		c->text = malloc(len + 1);
		c->len = len;
		if (c->key == NULL || c->text == NULL) {
			free(c->key);
			free(c->text);
			c->key = NULL;
			c->text = NULL;
		} else
			memcpy(c->text, text, len);
	}
	return json_object_setn(input, (const char *)key, klen, v);
}

static void
last_clear(struct last_partition *l)
{
	json_decref(l->input);
	json_decref(l->output);
	l->input = l->output = NULL;
}

/* CALL: op, kind, input, params ("" for the set's).  The answer, a
 * RESULT or an ERROR frame, is left in b (-1: none could be made). */
static int
call(struct policy_vm *vm, struct pmsg *m, struct pbuf *b,
    struct last_partition *last, struct spliced *sp, int *ret_more)
{
	char op[16], kind[8];
	const uint8_t *in, *par, *sk, *sv;
	size_t inlen, parlen, sklen, svlen;
	json_t *input = NULL, *params = NULL, *out = NULL;
	json_error_t je;
	struct xerr e;
	char *text;
	int k, r, after;

	xerr_clear(&e);
	*ret_more = 0;
	if (m->type != PCHAN_CALL || pmsg_next_str(m, op, sizeof(op)) ||
	    pmsg_next_str(m, kind, sizeof(kind)) ||
	    pmsg_next(m, &in, &inlen) || pmsg_next(m, &par, &parlen) ||
	    (k = atoi(kind)) < 0 || k >= POLICY__COUNT) {
		last_clear(last);
		return frame_error(b, XTCMK_E_INTERNAL, "malformed CALL frame");
	}
	/* "<kind>+": another call of the same batch follows. */
	*ret_more = strchr(kind, '+') != NULL;
	after = strcmp(op, POLICY_OP_ROLE_AFTER) == 0;
	if (after) {
		if (last->output == NULL) {
			r = frame_error(b, XTCMK_E_POLICY, "not run: no "
			    "partition decision succeeded just before");
			return r;
		}
		input = policy_role_input_after(last->input, last->output);
		last_clear(last);
		if (input == NULL)
			return frame_error(b, XTCMK_E_NOMEM, "out of memory");
		k = POLICY_ROLE;
	} else {
		last_clear(last);
		if ((input = json_loadb((const char *)in, inlen, 0,
		    &je)) == NULL)
			return frame_error(b, XTCMK_E_INTERNAL, "malformed "
			    "CALL input");
		/* A spliced member: its key and its text follow. */
		if (pmsg_next(m, &sk, &sklen) == 0 && (pmsg_next(m, &sv,
		    &svlen) == -1 || !json_is_object(input) ||
		    splice_member(sp, input, sk, sklen, sv, svlen) == -1)) {
			json_decref(input);
			return frame_error(b, XTCMK_E_INTERNAL, "malformed "
			    "CALL input (spliced member)");
		}
	}
	if (parlen > 0 && (params = json_loadb((const char *)par, parlen, 0,
	    &je)) == NULL) {
		json_decref(input);
		return frame_error(b, XTCMK_E_INTERNAL, "malformed CALL "
		    "params");
	}
	if (strcmp(op, "scope") == 0)
		r = policy_vm_scope(vm, input, params, &out, &e);
	else if (strcmp(op, "move") == 0)
		r = policy_vm_move(vm, input, params, &out, &e);
	else
		r = policy_vm_call_params(vm, k, input, params, &out, &e);
	json_decref(params);
	if (r == 0 && !after && strcmp(op, "decide") == 0 &&
	    k == POLICY_PARTITION && out != NULL) {
		last->input = json_incref(input);
		last->output = json_incref(out);
	}
	json_decref(input);
	if (r < 0)
		return frame_error(b, -r, e.msg);
	text = out != NULL ? jsonw_dumps(out, NULL) : strdup("null");
	json_decref(out);
	if (text == NULL)
		return frame_error(b, XTCMK_E_NOMEM, "out of memory");
	pbuf_start(b, PCHAN_RESULT);
	pbuf_add_str(b, text);
	free(text);
	if (pbuf_finish(b) == -1)
		return frame_error(b, XTCMK_E_TOOBIG, "result too large");
	return 0;
}

/*
 * Answers wait in `out` while more calls of the same batch are already
 * here (the agent marks every call of a batch but its last), so the
 * agent wakes once for them all; the answer to a batch's last call goes
 * at once (the agent may be waiting for it while its next batch is
 * here already); never longer than ANSWER_HOLD_NS after the oldest, nor
 * past ANSWER_HOLD_BYTES:
 * the agent counts each call's budget from the previous answer, and a
 * hold shorter than POLICYD_CPU_SLACK_MS cannot make a call look late.
 */
#define ANSWER_HOLD_NS		1000000LL
#define ANSWER_HOLD_BYTES	(16u << 10)

struct answers {
	uint8_t		*data;
	size_t		 len, cap;
	long long	 since;		/* CLOCK_MONOTONIC of the oldest */
};

static long long
mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int
answers_flush(struct answers *a)
{
	int r = a->len > 0 ? pchan_write_all(CHAN_FD, a->data, a->len) : 0;

	a->len = 0;
	return r;
}

/* Keep frame b; send what is held if it is due. */
static int
answers_add(struct answers *a, const struct pbuf *b)
{
	size_t cap;
	uint8_t *d;

	if (a->len == 0)
		a->since = mono_ns();
	if (a->len + b->len > a->cap) {
		cap = a->cap != 0 ? a->cap : 4096;
		while (cap < a->len + b->len)
			cap *= 2;
		if ((d = realloc(a->data, cap)) == NULL) {
			/* Send what is held, then this one alone. */
			if (answers_flush(a) == -1)
				return -1;
			return pchan_write_all(CHAN_FD, b->data, b->len);
		}
		a->data = d;
		a->cap = cap;
	}
	memcpy(a->data + a->len, b->data, b->len);
	a->len += b->len;
	if (a->len >= ANSWER_HOLD_BYTES ||
	    mono_ns() - a->since >= ANSWER_HOLD_NS)
		return answers_flush(a);
	return 0;
}

int
main(int argc, char *argv[])
{
	const char *test = NULL, *load_test = NULL;
	struct policy_set *set = NULL;
	struct policy_vm *vm = NULL;
	struct last_partition last = { NULL, NULL };
	struct spliced sp;
	struct answers ans = { 0 };
	struct pchan_in in = { 0 };
	struct pbuf b;
	struct pmsg m;
	struct xerr e;
	long parent = 0;
	int i, r, more;

	for (i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--test=load-", 12) == 0)
			load_test = argv[i] + 12;
		else if (strncmp(argv[i], "--test=", 7) == 0)
			test = argv[i] + 7;
		else if (strncmp(argv[i], "--parent=", 9) == 0)
			parent = atol(argv[i] + 9);
	}
	if (fcntl(CHAN_FD, F_GETFD) == -1) {
		fprintf(stderr, "xtcmk-policyd is started by xtcmkd and "
		    "xtcmkctl only\n");
		return 2;
	}
	/*
	 * PR_SET_PDEATHSIG follows the thread that spawned us, not its
	 * process: the agent (many threads) does not ask for it, and when
	 * it goes the channel reads EOF after the call in progress, which
	 * its limits bound.  xtcmkctl (one thread) asks with --parent, so
	 * a policy spinning in C dies with an interrupted command.
	 */
	if (parent > 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == -1 ||
	    getppid() != (pid_t)parent))
		return 1;
	memset(&b, 0, sizeof(b));
	memset(&sp, 0, sizeof(sp));
	xerr_clear(&e);
	if (pchan_read_msg(CHAN_FD, &m) == -1)
		return 1;
	if (load(&m, &set, &e) < 0) {
		send_error(&b, e.code != 0 ? e.code : XTCMK_E_INTERNAL,
		    e.msg);
		return 1;
	}
	pmsg_free(&m);
	/* Nothing but the channel from here on. */
	close_range(0, CHAN_FD - 1, 0);
	close_range(CHAN_FD + 1, ~0U, 0);
	if (confine(policy_set_limits(set)) == -1) {
		send_error(&b, XTCMK_E_INTERNAL, "cannot confine the policy "
		    "worker (seccomp, rlimits or no_new_privs)");
		return 1;
	}
	if (load_test != NULL)
		test_hook(load_test);
	if (policy_set_check(set, &e) < 0 ||
	    policy_vm_new(set, &vm, &e) < 0) {
		send_error(&b, e.code, e.msg);
		return 1;
	}
	if (send_ready(&b, set) == -1)
		return 1;
	for (;;) {
		while ((r = pchan_take(&in, &m)) == 0)
			if (answers_flush(&ans) == -1 ||
			    pchan_fill(&in, CHAN_FD) == -1)
				return 0;	/* the agent is gone */
		if (r < 0)
			return 1;
		if (test != NULL)
			test_hook(test);
		r = call(vm, &m, &b, &last, &sp, &more);
		pmsg_free(&m);
		if (r == -1 || answers_add(&ans, &b) == -1 ||
		    (!more && answers_flush(&ans) == -1))
			return 1;
	}
}
