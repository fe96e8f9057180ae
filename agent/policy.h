/*
 * policy.h - the policy engine: admin-written Lua 5.4 policies evaluated in
 * a sandbox.  See xtcmk-policy(7) for what a policy sees and returns.
 *
 * A policy set is a directory holding partition.lua, role.lua and
 * versioning.lua.  Each file is a text chunk that returns a table
 *	{ name = "...", decide = function(input, params) ... end,
 *	  selftest = function(params) ... end  -- optional }
 * run with its own _ENV holding only the allow-listed functions and a
 * `require` that loads modules by name from the installed lua/ library.
 *
 * struct policy_set is the immutable, loaded form (sources, hash, params,
 * limits), shared by reference.  struct policy_vm is one lua_State built
 * from a set; it belongs to one thread at a time and is never shared.
 */
#ifndef XTCMK_POLICY_H
#define XTCMK_POLICY_H

#include <stddef.h>
#include <jansson.h>

#include "xerr.h"

#define POLICY_SOURCE_MAX	(256 * 1024)	/* bytes per policy file */
#define POLICY_INSTR_DEFAULT	2000000		/* VM instructions per call */
#define POLICY_INSTR_MAX	100000000
#define POLICY_MEM_DEFAULT	(32u << 20)	/* bytes per lua_State */
#define POLICY_MEM_MAX		(1024u << 20)
#define POLICY_TIME_DEFAULT_MS	200		/* thread CPU time per call */
#define POLICY_WALL_FACTOR	5		/* wall-clock backstop: 5x */
#define POLICY_TIME_MAX_MS	10000
#define POLICY_RESULT_DEPTH_MAX	16		/* nesting of a returned table */
#define POLICY_STRING_MAX	4096		/* longest string in a result */
#define POLICY_NAME_MAX		64		/* longest policy `name` */

enum policy_kind {
	POLICY_PARTITION = 0,
	POLICY_ROLE,
	POLICY_VERSIONING,
	POLICY__COUNT
};

struct policy_limits {
	unsigned long	instructions;	/* per call */
	size_t		memory;		/* bytes per state */
	unsigned	time_ms;	/* per call */
};

struct policy_set;
struct policy_vm;

/* "partition", "role", "versioning". */
const char *policy_kind_name(enum policy_kind k);

/*
 * Load the set in `dir`: read the three files, compile them in a scratch
 * state with `lua_dir` as the library, run every selftest.  Any failure
 * refuses the whole set with a message naming the file and line.
 * `params` (object, may be NULL) is handed to every decide/selftest as
 * the second argument; the set keeps a reference.
 */
int	policy_set_load(const char *dir, const char *lua_dir, json_t *params,
	    const struct policy_limits *lim, struct policy_set **ret_set,
	    struct xerr *e);
/*
 * The two halves of policy_set_load: read the files (no Lua runs), and
 * compile and self-test in a scratch state.  policy_set_new makes a set
 * from sources in memory.
 */
int	policy_set_read(const char *dir, const char *lua_dir, json_t *params,
	    const struct policy_limits *lim, struct policy_set **ret_set,
	    struct xerr *e);
int	policy_set_new(const char *dir, const char *lua_dir, json_t *params,
	    const struct policy_limits *lim, const char *const src[POLICY__COUNT],
	    const size_t srclen[POLICY__COUNT], struct policy_set **ret_set,
	    struct xerr *e);
int	policy_set_check(struct policy_set *s, struct xerr *e);
/* Read the whole lua/ library now; `require` then opens no file. */
int	policy_set_preload(struct policy_set *s, struct xerr *e);
const struct policy_limits *policy_set_limits(const struct policy_set *s);
const char *policy_set_lua_dir(const struct policy_set *s);
const char *policy_set_source(const struct policy_set *s, enum policy_kind k,
	    size_t *ret_len);
/* Record a policy's `name` reported by a worker (before publication). */
int	policy_set_set_name(struct policy_set *s, enum policy_kind k,
	    const char *name);
struct policy_set *policy_set_ref(struct policy_set *s);
void	policy_set_unref(struct policy_set *s);
/* Hex SHA-256 over the three files' names and contents. */
const char *policy_set_hash(const struct policy_set *s);
/* Policy calls stopped by the instruction budget, the time limit and the
 * memory limit since start, in that order. */
void	policy_trip_counts(unsigned long long ret_counts[3]);
const char *policy_set_dir(const struct policy_set *s);
/* The `name` each policy gave itself (or its file name). */
const char *policy_set_name(const struct policy_set *s, enum policy_kind k);

int	policy_vm_new(struct policy_set *s, struct policy_vm **ret_vm,
	    struct xerr *e);
void	policy_vm_free(struct policy_vm *vm);
struct policy_set *policy_vm_set(const struct policy_vm *vm);

/*
 * Run decision `k` on `input` (a JSON object, copied into fresh Lua
 * tables).  The result is converted strictly (no coercion; arrays must be
 * sequences; only strings, integers, floats, booleans, tables) into
 * *ret_output.  Errors, budget and memory overruns give XTCMK_E_POLICY with
 * the policy name and a traceback; after an overrun the VM rebuilds its
 * state before the next call.
 */
int	policy_vm_call(struct policy_vm *vm, enum policy_kind k, json_t *input,
	    json_t **ret_output, struct xerr *e);
/*
 * The partition policy's P.scope(customer, params) (params NULL: the
 * set's): *ret_scope gets its table as JSON, or NULL when the policy has
 * no scope function (it then sees the whole registry, see scope.h).
 */
int	policy_vm_scope(struct policy_vm *vm, json_t *customer, json_t *params,
	    json_t **ret_scope, struct xerr *e);
/*
 * The partition policy's P.move(input, params): *ret_verdict gets
 * { allow = bool, reason = "..." }, or NULL when the policy has no move
 * function.  input = { customer, from = app, to = app }.
 */
int	policy_vm_move(struct policy_vm *vm, json_t *input, json_t *params,
	    json_t **ret_verdict, struct xerr *e);
/* The same with `params` (object) instead of the set's (fixtures). */
int	policy_vm_call_params(struct policy_vm *vm, enum policy_kind k,
	    json_t *input, json_t *params, json_t **ret_output,
	    struct xerr *e);
/* Bytes the VM's state holds now (for tests and stats). */
size_t	policy_vm_memory(const struct policy_vm *vm);
/* The params object the set hands to every policy (borrowed). */
json_t	*policy_set_params(const struct policy_set *s);

/*
 * The role policy's input: the customer's view `cv` and the app (name,
 * client_id, labels).  policy_role_input_after makes it after partition
 * decision `part` on input `pinput`: input.customer and the app `part`
 * chose (from input.apps, else a new one with the labels the policy
 * gave).  Made the same way by the agent and by a policy worker that runs
 * the role decision right after the partition (op "role-after"), so both
 * sides agree on it.  NULL when out of memory.
 */
json_t	*policy_role_input(json_t *cv, json_t *app);
json_t	*policy_role_input_after(json_t *pinput, json_t *part);
/* The op of a role decision whose input the worker makes from the
 * partition decision it ran just before (policy_role_input). */
#define POLICY_OP_ROLE_AFTER	"role-after"

/*
 * Check a result against the agent's invariants and the resource-kind
 * rules, and normalise it (e.g. fill role ids from role names).  Refusals
 * are XTCMK_E_POLICY naming the policy and the rule.  `input` is what the
 * policy saw.  Partition results are also checked by the registry inside
 * its transaction.
 */
int	policy_verdict_check(const struct policy_set *s, enum policy_kind k,
	    json_t *input, json_t *output, struct xerr *e);

/*
 * `xtcmkctl policy test`: run fixture files (JSON, see xtcmk-policy(7))
 * against the set in `dir` offline, in a confined policy worker
 * process, `worker` (the xtcmk-policyd executable; NULL: in this
 * process).  Writes a line per fixture to `out` (or a JSON report with
 * `json`); returns the number of failures, or <0 if the set did not
 * load.
 */
int	policy_run_fixtures(const char *dir, const char *lua_dir,
	    json_t *params, const struct policy_limits *lim,
	    const char *worker, char *const *fixtures, int nfixtures,
	    int json, void *out, struct xerr *e);
/*
 * `xtcmkd --check-config`, `xtcmkctl policy check`: load the set in
 * `dir` as the agent does, compiled and self-tested in a confined
 * policy worker, `worker` (NULL: in this process).
 */
int	policy_check_offline(const char *dir, const char *lua_dir,
	    json_t *params, const struct policy_limits *lim,
	    const char *worker, struct policy_set **ret_set,
	    struct xerr *e);

#endif
