/*
 * worker.h - policy worker processes, as the agent sees them.
 *
 * A struct pworker is one xtcmk-policyd process (policyd.c) serving one
 * policy set, spawned with posix_spawn (never a fork of the threaded
 * agent), talking over a socketpair.  Every exchange has deadlines: a
 * call may use the set's CPU time limit plus POLICYD_CPU_SLACK_MS of
 * the worker's CPU and POLICY_WALL_FACTOR times the limit of wall
 * clock; past either the worker is SIGKILLed and the call fails with an
 * error naming the policy and the limit.  A dead worker is never used
 * again: the owner frees it and spawns another.  Nothing here waits
 * without a deadline.
 */
#ifndef XTCMK_POLICYD_WORKER_H
#define XTCMK_POLICYD_WORKER_H

#include <stdatomic.h>
#include <sys/types.h>

#include <jansson.h>

#include "policy.h"
#include "xerr.h"

#define POLICYD_AS_SLACK	(256ul << 20)	/* RLIMIT_AS over 2x memory */
#define POLICYD_CPU_LIFE_S	3600		/* RLIMIT_CPU of a worker */
#define POLICYD_CPU_SLACK_MS	50		/* kill past limit + this */
#define POLICYD_SPAWN_MS	5000		/* exec, library, compile */
#define POLICYD_REAP_MS		1000		/* after SIGKILL */
#define POLICYD_STOP_POLL_MS	50		/* checks for a stop request */
#define POLICYD_PIPELINE_MAX	(32u << 10)	/* bytes of calls sent ahead */
#define POLICYD_CPU_RECHECK_US	1000		/* least wait between CPU reads */

struct pworker_counters {
	atomic_ullong	spawned;	/* workers started */
	atomic_ullong	killed_cpu;	/* past the CPU budget */
	atomic_ullong	killed_wall;	/* past the wall-clock deadline */
	atomic_ullong	died;		/* exited or killed otherwise */
	atomic_ullong	recycled;	/* replaced near RLIMIT_CPU */
	atomic_ullong	sent_ahead;	/* calls sent before the previous
					 * answer came (batches) */
};

struct pworker;

/* pworker_spawn flags */
#define PWORKER_DIE_WITH_PARENT	0x1	/* SIGKILL when the spawner exits:
					 * for a single-threaded spawner
					 * (xtcmkctl), not the agent */

/*
 * Spawn `exe` for `set`: it loads the set, confines itself, compiles
 * and self-tests the set (each test within the call budget) and says
 * READY, all within POLICYD_SPAWN_MS plus the self-tests' deadlines.
 * Fills the set's policy names from the worker's report.  `test_hook`
 * (tests only, NULL otherwise: open, socket, execve or spin, at each
 * call; load-open ... load-spin, before compiling) makes the worker
 * misbehave in C, see policyd.c.  `stopping` (may be NULL) cuts every
 * wait short.
 */
int	pworker_spawn(const char *exe, struct policy_set *set,
	    const char *test_hook, unsigned flags,
	    struct pworker_counters *cnt, const atomic_int *stopping,
	    struct pworker **ret_w, struct xerr *e);
/*
 * What the offline commands (xtcmkd --check-config, xtcmkctl policy
 * check|test) and a reload do to load a set: read the files in `dir`
 * (no Lua runs here), then compile and self-test them in a confined
 * worker, `exe`, under the same deadlines.  *ret_set gets the set;
 * *ret_w the worker, ready for calls (or, with ret_w NULL, it is
 * stopped).  `test_hook`, `flags`, `cnt` and `stopping` as for
 * pworker_spawn.
 */
int	pworker_load_set(const char *exe, const char *dir,
	    const char *lua_dir, json_t *params,
	    const struct policy_limits *lim, const char *test_hook,
	    unsigned flags, struct pworker_counters *cnt,
	    const atomic_int *stopping, struct policy_set **ret_set,
	    struct pworker **ret_w, struct xerr *e);
/*
 * One call: `op` "decide" (kind k), "scope" or "move"; params NULL for
 * the set's.  *ret_out is the result (NULL for a scope or move the
 * policy does not have).
 */
int	pworker_call(struct pworker *w, const char *op, enum policy_kind k,
	    json_t *input, json_t *params, json_t **ret_out, struct xerr *e);
/* One call of a batch: op, kind and input in; output, rc, err out. */
struct pworker_req {
	const char		*op;
	enum policy_kind	 kind;
	json_t			*input;
	/* Optional: member splice_key of input is the JSON text splice
	 * (a string): it goes as that text, which a worker parses only when
	 * it differs from the last it got under that key. */
	const char		*splice_key;
	json_t			*splice;
	json_t			*output;
	int			 rc;
	struct xerr		 err;
};
/*
 * Several calls in one round trip: each CALL frame is sent before the
 * first answer is read (while they fit POLICYD_PIPELINE_MAX; the rest
 * one after the other), and the worker runs them in order, each from a
 * pristine state and within its own budget and deadline, which count
 * from when the previous answer arrived.  Each request gets its own
 * result or error; after a kill the rest fail, not run.
 */
void	pworker_call_batch(struct pworker *w, struct pworker_req *req,
	    size_t n);
/*
 * pworker_call_batch in two halves, so the caller can work while the
 * worker runs the calls: send (returns how many went ahead), then,
 * before any other call on w, receive (the budgets count from there).
 */
size_t	pworker_send_batch(struct pworker *w, struct pworker_req *req,
	    size_t n);
void	pworker_recv_batch(struct pworker *w, struct pworker_req *req,
	    size_t n, size_t sent);
/* Whether the worker can take another call (not dead, not worn out). */
int	pworker_usable(struct pworker *w);
pid_t	pworker_pid(const struct pworker *w);
struct policy_set *pworker_set(const struct pworker *w);
/* SIGKILL, reap (bounded) and free; accepts NULL. */
void	pworker_free(struct pworker *w);

#endif
