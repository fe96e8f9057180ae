/*
 * policy.c - the policy engine: loads a policy set, builds Lua 5.4 states
 * from it and runs decisions.  What a policy sees is decided in
 * policy_sandbox.c alone; values cross between JSON and Lua in
 * policy_json.c.
 *
 * Limits: our allocator counts every byte and refuses past the memory
 * limit; a count hook checks the instruction budget and the wall-clock
 * deadline.  Once a limit trips, the hook re-arms on every instruction
 * and raises again, so pcall cannot swallow it, and the state is rebuilt
 * before the next call.
 *
 * Pristine calls: a state keeps the three chunks compiled, never their
 * results.  Every call runs its policy's chunk again with a fresh _ENV
 * and a fresh module table (modules are re-run from their compiled
 * chunks), so globals, chunk upvalues and module tables written by one
 * call are garbage by the next.  Nothing else a policy can reach
 * outlives a call (see policy_sandbox.c).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <openssl/evp.h>

#include "policy.h"
#include "policy_int.h"

#define POLICY_HOOK_EVERY	1000		/* instructions between checks */
#define POLICY_MEM_SLACK	(256u << 10)	/* room to unwind after a trip */

static const char *const kind_names[POLICY__COUNT] = {
	"partition", "role", "versioning"
};

/* A module of the lua/ library read into memory (policy_set_preload). */
struct policy_module {
	char		*name;		/* "xtcmk.place" */
	char		*path;
	char		*src;
	size_t		 len;
};

struct policy_set {
	atomic_int	 refs;
	char		*dir;
	char		*lua_dir;
	json_t		*params;
	struct policy_limits lim;
	char		*src[POLICY__COUNT];
	size_t		 srclen[POLICY__COUNT];
	char		*name[POLICY__COUNT];
	char		 hash[2 * 32 + 1];
	struct policy_module *lib;	/* NULL: require reads lua_dir */
	size_t		 nlib, libbytes;
	int		 preloaded;
};

enum trip {
	TRIP_NONE = 0,
	TRIP_BUDGET,
	TRIP_TIME,
	TRIP_WALL,
	TRIP_MEMORY
};

/* Calls stopped by each limit (enum trip less TRIP_NONE), process-wide. */
static atomic_ullong trips[TRIP_MEMORY];

/* For metrics: instructions, time (CPU budget or wall backstop), memory. */
void
policy_trip_counts(unsigned long long ret_counts[3])
{
	ret_counts[0] = atomic_load(&trips[TRIP_BUDGET - 1]);
	ret_counts[1] = atomic_load(&trips[TRIP_TIME - 1]) +
	    atomic_load(&trips[TRIP_WALL - 1]);
	ret_counts[2] = atomic_load(&trips[TRIP_MEMORY - 1]);
}

struct policy_vm {
	struct policy_set *set;
	lua_State	*L;
	size_t		 mem_used;
	size_t		 mem_limit;
	unsigned long	 count;
	struct timespec	 cpu_deadline;	/* this thread's CPU time */
	struct timespec	 deadline;	/* wall clock backstop */
	struct timespec	 cpu_check;	/* CLOCK_MONOTONIC: the earliest the
					 * CPU deadline can be reached */
	enum trip	 tripped;
	int		 broken;	/* rebuild before the next call */
	int		 chunk[POLICY__COUNT];	/* compiled, never run twice */
};

/* What a protected C function gets and leaves behind. */
struct call {
	struct policy_vm *vm;
	enum policy_kind kind;
	json_t		*input;
	json_t		*params;
	json_t		*output;
	int		 ref;
	char		 name[POLICY_NAME_MAX + 1];
	char		 err[XERR_MSG_MAX];
};

const char *
policy_kind_name(enum policy_kind k)
{
	if ((unsigned)k >= POLICY__COUNT)
		return "unknown";
	return kind_names[k];
}

static void vm_hook(lua_State *L, lua_Debug *ar);

/*
 * Allocator: counts bytes exactly (osize is the block's size only when
 * ptr is not NULL) and refuses to grow past the limit.  A refusal also
 * arms the hook so the policy stops at its next instruction even if it
 * catches the memory error.
 */
static void *
vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct policy_vm *vm = ud;
	size_t old = ptr != NULL ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		vm->mem_used -= old;
		return NULL;
	}
	if (nsize > old && nsize - old > vm->mem_limit - vm->mem_used) {
		if (vm->tripped == TRIP_NONE && vm->L != NULL) {
			vm->tripped = TRIP_MEMORY;
			vm->mem_limit += POLICY_MEM_SLACK;
			lua_sethook(vm->L, vm_hook, LUA_MASKLINE |
			    LUA_MASKCOUNT, 1);
		}
		return NULL;
	}
	if ((p = realloc(ptr, nsize)) == NULL)
		return NULL;
	vm->mem_used = vm->mem_used - old + nsize;
	return p;
}

static struct policy_vm *
vm_of(lua_State *L)
{
	return *(struct policy_vm **)lua_getextraspace(L);
}

const char *
policy_lua_dir(lua_State *L)
{
	return vm_of(L)->set->lua_dir;
}

/* Raise the trip's error, positioned at the running line (level 0). */
static int
vm_trip_raise(lua_State *L, struct policy_vm *vm)
{
	const struct policy_limits *lim = &vm->set->lim;

	luaL_where(L, 0);				/* where */
	switch (vm->tripped) {
	case TRIP_BUDGET:
		lua_pushfstring(L, "instruction budget of %I exceeded",
		    (lua_Integer)lim->instructions);	/* where msg */
		break;
	case TRIP_TIME:
		lua_pushfstring(L, "CPU time limit of %d ms exceeded",
		    (int)lim->time_ms);			/* where msg */
		break;
	case TRIP_WALL:
		lua_pushfstring(L, "wall-clock limit of %d ms exceeded",
		    (int)lim->time_ms * POLICY_WALL_FACTOR);	/* where msg */
		break;
	default:
		lua_pushfstring(L, "memory limit of %I bytes exceeded",
		    (lua_Integer)lim->memory);		/* where msg */
		break;
	}
	lua_concat(L, 2);				/* msg */
	return lua_error(L);
}

static int
ts_after(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec > b->tv_sec;
	return a->tv_nsec > b->tv_nsec;
}

/*
 * Past the CPU or the wall-clock deadline?  The thread's CPU clock costs
 * a system call; it is read only once the wall clock says the budget
 * could be spent (a thread's CPU time never runs faster than the wall
 * clock), so a check before that costs a vDSO clock read.
 */
static enum trip
vm_over(struct policy_vm *vm)
{
	struct timespec now, cpu;
	long long left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ts_after(&now, &vm->deadline))
		return TRIP_WALL;
	if (!ts_after(&now, &vm->cpu_check))
		return TRIP_NONE;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
	if (ts_after(&cpu, &vm->cpu_deadline))
		return TRIP_TIME;
	left = (long long)(vm->cpu_deadline.tv_sec - cpu.tv_sec) *
	    1000000000LL + (vm->cpu_deadline.tv_nsec - cpu.tv_nsec);
	left += (long long)now.tv_nsec;
	vm->cpu_check.tv_sec = now.tv_sec + (time_t)(left / 1000000000LL);
	vm->cpu_check.tv_nsec = (long)(left % 1000000000LL);
	return TRIP_NONE;
}

static void
vm_hook(lua_State *L, lua_Debug *ar)
{
	struct policy_vm *vm = vm_of(L);

	if (vm->tripped == TRIP_NONE) {
		if (ar->event == LUA_HOOKCOUNT)
			vm->count += POLICY_HOOK_EVERY;
		if (vm->count >= vm->set->lim.instructions)
			vm->tripped = TRIP_BUDGET;
		else if ((vm->tripped = vm_over(vm)) == TRIP_NONE)
			return;
	}
	/* From now on, raise before every instruction. */
	lua_sethook(L, vm_hook, LUA_MASKLINE | LUA_MASKCOUNT, 1);
	vm_trip_raise(L, vm);
}

int
policy_tripped(lua_State *L)
{
	return vm_of(L)->tripped != TRIP_NONE;
}

/*
 * After a costly C function (sort, move, patterns): charge the time it
 * took against the deadlines now rather than at the next count hook,
 * which a loop of such calls would reach only after 1000 of them.
 */
void
policy_charge(lua_State *L)
{
	struct policy_vm *vm = vm_of(L);

	if (vm->tripped == TRIP_NONE &&
	    (vm->tripped = vm_over(vm)) == TRIP_NONE)
		return;
	lua_sethook(L, vm_hook, LUA_MASKLINE | LUA_MASKCOUNT, 1);
	vm_trip_raise(L, vm);
}

static void
ts_add_ms(struct timespec *t, unsigned long ms)
{
	t->tv_sec += (time_t)(ms / 1000);
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/*
 * Start a call's budget: count, deadlines, hook.  The limit is CPU time
 * of the calling thread, so a loaded host (other processes on the core)
 * does not refuse a policy that did its work in time; the wall clock
 * only backs it up, POLICY_WALL_FACTOR times larger, for a policy that
 * is descheduled for good.
 */
static void
vm_arm(struct policy_vm *vm)
{
	unsigned ms = vm->set->lim.time_ms;

	vm->count = 0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &vm->cpu_deadline);
	ts_add_ms(&vm->cpu_deadline, ms);
	clock_gettime(CLOCK_MONOTONIC, &vm->deadline);
	vm->cpu_check = vm->deadline;
	ts_add_ms(&vm->cpu_check, ms);
	ts_add_ms(&vm->deadline, (unsigned long)ms * POLICY_WALL_FACTOR);
	lua_sethook(vm->L, vm_hook, LUA_MASKCOUNT, POLICY_HOOK_EVERY);
}

/* Message handler: the error plus a traceback (lua.c msghandler). */
static int
vm_msgh(lua_State *L)
{
	const char *msg;

	if (lua_type(L, 1) == LUA_TSTRING)
		msg = lua_tostring(L, 1);
	else
		msg = lua_pushfstring(L, "(error object is a %s value)",
		    luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/*
 * Run `fn(c)` protected, with the budget armed and the traceback handler.
 * Errors become XTCMK_E_POLICY naming the policy of `c->kind`.
 */
static int
vm_run(struct policy_vm *vm, lua_CFunction fn, struct call *c,
    struct xerr *e)
{
	lua_State *L = vm->L;
	const char *who, *msg;
	int base, rc, r = 0;

	base = lua_gettop(L);
	c->vm = vm;
	c->err[0] = '\0';
	who = vm->set->name[c->kind] != NULL ? vm->set->name[c->kind] :
	    kind_names[c->kind];
	vm->tripped = TRIP_NONE;
	vm_arm(vm);
	lua_pushcfunction(L, vm_msgh);		/* msgh */
	lua_pushcfunction(L, fn);		/* msgh fn */
	lua_pushlightuserdata(L, c);		/* msgh fn c */
	rc = lua_pcall(L, 1, 0, base + 1);	/* msgh [err] */
	lua_sethook(L, NULL, 0, 0);
	if (rc == LUA_ERRMEM && vm->tripped == TRIP_NONE)
		vm->tripped = TRIP_MEMORY;
	if (vm->tripped != TRIP_NONE)
		vm->broken = 1;
	if (rc != LUA_OK) {
		msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) :
		    "error without a message";
		if (rc == LUA_ERRMEM)
			atomic_fetch_add(&trips[TRIP_MEMORY - 1], 1);
		if (rc == LUA_ERRMEM)
			r = xerr_set(e, XTCMK_E_POLICY, "policy '%s' (%s.lua): "
			    "memory limit of %zu bytes exceeded", who,
			    kind_names[c->kind], vm->set->lim.memory);
		else
			r = xerr_set(e, XTCMK_E_POLICY, "policy '%s' (%s.lua): "
			    "%s", who, kind_names[c->kind], msg);
	} else if (vm->tripped != TRIP_NONE) {
		atomic_fetch_add(&trips[vm->tripped - 1], 1);
		r = xerr_set(e, XTCMK_E_POLICY, "policy '%s' (%s.lua): %s "
		    "exceeded", who, kind_names[c->kind],
		    vm->tripped == TRIP_BUDGET ? "instruction budget" :
		    vm->tripped == TRIP_TIME ? "CPU time limit" :
		    vm->tripped == TRIP_WALL ? "wall-clock limit" :
		    "memory limit");
	} else if (c->err[0] != '\0') {
		r = xerr_set(e, XTCMK_E_POLICY, "policy '%s' (%s.lua): %s",
		    who, kind_names[c->kind], c->err);
	}
	lua_settop(L, base);
	return r;
}

/* ---- policies in a state -------------------------------------------- */

/*
 * Run the compiled chunk of c->kind afresh: a new _ENV, a new module
 * table, and check what it returns.  Leaves the policy table on the
 * stack and returns 1, or sets c->err and returns 0.
 */
static int
vm_instance(lua_State *L, struct call *c)
{
	const char *nm;
	size_t len;

	policy_sandbox_reset(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->vm->chunk[c->kind]); /* fn */
	policy_sandbox_push_env(L);			/* fn env */
	lua_setupvalue(L, -2, 1);			/* fn */
	lua_call(L, 0, 1);				/* pol */
	if (!lua_istable(L, -1)) {
		snprintf(c->err, sizeof(c->err), "the file must return a "
		    "table { name = \"...\", decide = function(input, params) "
		    "... end }, not a %s", luaL_typename(L, -1));
		return 0;
	}
	lua_pushliteral(L, "decide");			/* pol "decide" */
	if (lua_rawget(L, -2) != LUA_TFUNCTION) {	/* pol decide */
		snprintf(c->err, sizeof(c->err), "the returned table has no "
		    "function `decide` (found a %s)", luaL_typename(L, -1));
		return 0;
	}
	lua_pop(L, 1);					/* pol */
	lua_pushliteral(L, "selftest");			/* pol "selftest" */
	if (lua_rawget(L, -2) > LUA_TNIL && !lua_isfunction(L, -1)) {
		snprintf(c->err, sizeof(c->err), "`selftest` must be a "
		    "function (found a %s)", luaL_typename(L, -1));
		return 0;
	}
	lua_pop(L, 1);					/* pol */
	lua_pushliteral(L, "scope");			/* pol "scope" */
	if (lua_rawget(L, -2) > LUA_TNIL && (c->kind != POLICY_PARTITION ||
	    !lua_isfunction(L, -1))) {			/* pol scope */
		snprintf(c->err, sizeof(c->err), "`scope` must be a function "
		    "and only a partition policy has one (found a %s)",
		    luaL_typename(L, -1));
		return 0;
	}
	lua_pop(L, 1);					/* pol */
	lua_pushliteral(L, "move");			/* pol "move" */
	if (lua_rawget(L, -2) > LUA_TNIL && (c->kind != POLICY_PARTITION ||
	    !lua_isfunction(L, -1))) {			/* pol move */
		snprintf(c->err, sizeof(c->err), "`move` must be a function "
		    "and only a partition policy has one (found a %s)",
		    luaL_typename(L, -1));
		return 0;
	}
	lua_pop(L, 1);					/* pol */
	lua_pushliteral(L, "name");			/* pol "name" */
	c->name[0] = '\0';
	if (lua_rawget(L, -2) == LUA_TSTRING) {		/* pol name */
		nm = lua_tolstring(L, -1, &len);
		if (len > POLICY_NAME_MAX || len == 0 ||
		    memchr(nm, '\0', len) != NULL) {
			snprintf(c->err, sizeof(c->err), "`name` must be 1 "
			    "to %d characters", POLICY_NAME_MAX);
			return 0;
		}
		memcpy(c->name, nm, len + 1);
	}
	lua_pop(L, 1);					/* pol */
	return 1;
}

/* Get field `f` of a fresh instance of the policy of c->kind, raw. */
static int
push_policy_field(lua_State *L, struct call *c, const char *f)
{
	if (!vm_instance(L, c))
		return LUA_TNONE;			/* ... */
	lua_pushstring(L, f);				/* pol f */
	return lua_rawget(L, -2);			/* pol v */
}

/* Compile c->kind's file once per state, and check one instance of it. */
static int
vm_load_policy(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	struct policy_set *s = c->vm->set;
	char chunk[PATH_MAX + 32];

	snprintf(chunk, sizeof(chunk), "@%s/%s.lua", s->dir,
	    kind_names[c->kind]);
	if (luaL_loadbufferx(L, s->src[c->kind], s->srclen[c->kind], chunk,
	    "t") != LUA_OK) {				/* err */
		snprintf(c->err, sizeof(c->err), "%s", lua_tostring(L, -1));
		return 0;
	}
	c->ref = luaL_ref(L, LUA_REGISTRYINDEX);	/* */
	c->vm->chunk[c->kind] = c->ref;
	vm_instance(L, c);
	return 0;
}

static void
vm_teardown(struct policy_vm *vm)
{
	if (vm->L != NULL)
		lua_close(vm->L);
	vm->L = NULL;
}

/* Build a fresh state and compile the three policies into it. */
static int
vm_build(struct policy_vm *vm, struct xerr *e)
{
	struct policy_set *s = vm->set;
	struct call c;
	int k, r;

	vm_teardown(vm);
	vm->mem_used = 0;
	vm->mem_limit = s->lim.memory;
	vm->tripped = TRIP_NONE;
	vm->broken = 0;
	if ((vm->L = lua_newstate(vm_alloc, vm)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "cannot create a Lua state "
		    "within the memory limit of %zu bytes", s->lim.memory);
	*(struct policy_vm **)lua_getextraspace(vm->L) = vm;
	memset(&c, 0, sizeof(c));
	c.kind = POLICY_PARTITION;
	if ((r = vm_run(vm, policy_sandbox_open, &c, e)) < 0)
		goto fail;
	for (k = 0; k < POLICY__COUNT; k++) {
		memset(&c, 0, sizeof(c));
		c.kind = k;
		c.ref = LUA_NOREF;
		if ((r = vm_run(vm, vm_load_policy, &c, e)) < 0)
			goto fail;
		if (s->name[k] == NULL && c.name[0] != '\0' &&
		    (s->name[k] = strdup(c.name)) == NULL) {
			r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto fail;
		}
	}
	vm->broken = 0;
	return 0;
fail:
	vm_teardown(vm);
	return r;
}

static int
vm_decide(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	char path[POLICY_PATH_MAX] = "result";

	if (push_policy_field(L, c, "decide") != LUA_TFUNCTION)
		return 0;				/* c->err says why */
	policy_json_push(L, c->input, 0);		/* pol decide in */
	policy_json_push(L, c->params, 0);	/* pol decide in par */
	lua_call(L, 2, 1);				/* pol res */
	if (lua_type(L, -1) != LUA_TTABLE) {
		snprintf(c->err, sizeof(c->err), "decide returned %s; it "
		    "must return a table with named fields",
		    lua_isnil(L, -1) ? "nothing" : luaL_typename(L, -1));
		return 0;
	}
	c->output = policy_json_from_lua(L, lua_gettop(L), path, 1, c->err,
	    sizeof(c->err));
	if (c->output != NULL && !json_is_object(c->output)) {
		snprintf(c->err, sizeof(c->err), "decide returned an array or "
		    "an empty table; it must return a table with named fields");
		json_decref(c->output);
		c->output = NULL;
	}
	return 0;
}

/*
 * Call P.NAME(input, params) of the partition policy if it has one, and
 * convert a table result into c->output; anything else sets c->err with
 * `shape`, what the result must be.  1 with c->output set, else 0.
 */
static int
partition_step(lua_State *L, struct call *c, const char *name,
    const char *shape)
{
	char path[POLICY_PATH_MAX];

	snprintf(path, sizeof(path), "%s", name);
	if (push_policy_field(L, c, name) != LUA_TFUNCTION)
		return 0;				/* pol nil, or c->err */
	policy_json_push(L, c->input, 0);		/* pol fn in */
	policy_json_push(L, c->params, 0);		/* pol fn in par */
	lua_call(L, 2, 1);				/* pol res */
	if (lua_type(L, -1) != LUA_TTABLE) {
		snprintf(c->err, sizeof(c->err), "%s returned %s; it must "
		    "return %s", name, lua_isnil(L, -1) ? "nothing" :
		    luaL_typename(L, -1), shape);
		return 0;
	}
	c->output = policy_json_from_lua(L, lua_gettop(L), path, 1, c->err,
	    sizeof(c->err));
	return c->output != NULL;
}

/* P.scope(customer, params) of the partition policy, if it has one. */
static int
vm_scope(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);

	if (!partition_step(L, c, "scope", "a table of selectors (apps, "
	    "app_names, workloads)"))
		return 0;
	/* {} comes back as an empty array: no selectors at all. */
	if (json_is_array(c->output) && json_array_size(c->output) == 0) {
		json_decref(c->output);
		c->output = json_object();
	}
	if (c->output != NULL && !json_is_object(c->output)) {
		snprintf(c->err, sizeof(c->err), "scope returned a list; it "
		    "must return a table with named fields");
		json_decref(c->output);
		c->output = NULL;
	}
	return 0;
}

/* P.move(input, params) of the partition policy, if it has one. */
static int
vm_move(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	static const char shape[] = "{ allow = true|false, reason = \"...\" }";

	if (!partition_step(L, c, "move", shape))
		return 0;
	if (!json_is_object(c->output) ||
	    !json_is_boolean(json_object_get(c->output, "allow"))) {
		snprintf(c->err, sizeof(c->err), "move must return %s", shape);
		json_decref(c->output);
		c->output = NULL;
	}
	return 0;
}

static int
vm_selftest(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	lua_Debug ar;

	if (push_policy_field(L, c, "selftest") != LUA_TFUNCTION)
		return 0;				/* pol nil, or c->err */
	lua_pushvalue(L, -1);				/* pol st st */
	lua_getinfo(L, ">S", &ar);			/* pol st */
	policy_json_push(L, c->params, 0);		/* pol st par */
	lua_call(L, 1, 2);				/* pol ok msg */
	if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2))
		snprintf(c->err, sizeof(c->err), "%s:%d: selftest failed: %s",
		    ar.short_src, ar.linedefined,
		    lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) :
		    "it returned false");
	return 0;
}

/* ---- sets ------------------------------------------------------------ */

static int
read_source(const char *path, char **ret_buf, size_t *ret_len,
    struct xerr *e)
{
	struct stat st;
	size_t off = 0;
	ssize_t n;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return xerr_set(e, XTCMK_E_NOT_FOUND, "cannot open %s: %s; a "
		    "policy set needs partition.lua, role.lua and "
		    "versioning.lua", path, strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return xerr_set(e, XTCMK_E_INVAL, "%s is not a regular file",
		    path);
	}
	if (st.st_size > POLICY_SOURCE_MAX) {
		close(fd);
		return xerr_set(e, XTCMK_E_TOOBIG, "%s is %lld bytes; a policy "
		    "file may hold at most %d", path, (long long)st.st_size,
		    POLICY_SOURCE_MAX);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	if (off != (size_t)st.st_size) {
		free(buf);
		return xerr_set(e, XTCMK_E_INTERNAL, "short read on %s", path);
	}
	buf[off] = '\0';
	*ret_buf = buf;
	*ret_len = off;
	return 0;
}

static int
set_hash(struct policy_set *s)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char fname[32];
	EVP_MD_CTX *ctx;
	int k, ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (k = 0; ok && k < POLICY__COUNT; k++) {
		snprintf(fname, sizeof(fname), "%s.lua", kind_names[k]);
		ok = EVP_DigestUpdate(ctx, fname, strlen(fname) + 1) &&
		    EVP_DigestUpdate(ctx, s->src[k], s->srclen[k]) &&
		    EVP_DigestUpdate(ctx, "", 1);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	for (i = 0; i < mdlen; i++) {
		s->hash[2 * i] = hex[md[i] >> 4];
		s->hash[2 * i + 1] = hex[md[i] & 15];
	}
	s->hash[2 * mdlen] = '\0';
	return 0;
}

static int
check_limits(const struct policy_limits *in, struct policy_limits *out,
    struct xerr *e)
{
	out->instructions = POLICY_INSTR_DEFAULT;
	out->memory = POLICY_MEM_DEFAULT;
	out->time_ms = POLICY_TIME_DEFAULT_MS;
	if (in == NULL)
		return 0;
	if (in->instructions > POLICY_INSTR_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "policy instruction budget "
		    "%lu is over the maximum %d", in->instructions,
		    POLICY_INSTR_MAX);
	if (in->memory > POLICY_MEM_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "policy memory limit %zu is "
		    "over the maximum %u", in->memory, POLICY_MEM_MAX);
	if (in->time_ms > POLICY_TIME_MAX_MS)
		return xerr_set(e, XTCMK_E_INVAL, "policy time limit %u ms is "
		    "over the maximum %d", in->time_ms, POLICY_TIME_MAX_MS);
	if (in->instructions != 0)
		out->instructions = in->instructions;
	if (in->memory != 0)
		out->memory = in->memory;
	if (in->time_ms != 0)
		out->time_ms = in->time_ms;
	return 0;
}

static void
set_free(struct policy_set *s)
{
	size_t i;
	int k;

	if (s == NULL)
		return;
	for (k = 0; k < POLICY__COUNT; k++) {
		free(s->src[k]);
		free(s->name[k]);
	}
	for (i = 0; i < s->nlib; i++) {
		free(s->lib[i].name);
		free(s->lib[i].path);
		free(s->lib[i].src);
	}
	free(s->lib);
	json_decref(s->params);
	free(s->dir);
	free(s->lua_dir);
	free(s);
}

/*
 * A set from sources in memory (a worker gets them from the agent, the
 * agent from the files): no Lua runs here.
 */
int
policy_set_new(const char *dir, const char *lua_dir, json_t *params,
    const struct policy_limits *lim, const char *const src[POLICY__COUNT],
    const size_t srclen[POLICY__COUNT], struct policy_set **ret_set,
    struct xerr *e)
{
	struct policy_set *s;
	int k, r;

	if (params != NULL && !json_is_object(params))
		return xerr_set(e, XTCMK_E_INVAL, "policy params must be a "
		    "JSON object");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	atomic_init(&s->refs, 1);
	if ((r = check_limits(lim, &s->lim, e)) < 0)
		goto fail;
	s->dir = strdup(dir);
	s->lua_dir = strdup(lua_dir);
	s->params = params != NULL ? json_incref(params) : json_object();
	if (s->dir == NULL || s->lua_dir == NULL || s->params == NULL) {
		r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	for (k = 0; k < POLICY__COUNT; k++) {
		if (srclen[k] > POLICY_SOURCE_MAX) {
			r = xerr_set(e, XTCMK_E_TOOBIG, "%s.lua is %zu bytes; "
			    "a policy file may hold at most %d", kind_names[k],
			    srclen[k], POLICY_SOURCE_MAX);
			goto fail;
		}
		if ((s->src[k] = malloc(srclen[k] + 1)) == NULL) {
			r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto fail;
		}
		memcpy(s->src[k], src[k], srclen[k]);
		s->src[k][srclen[k]] = '\0';
		s->srclen[k] = srclen[k];
	}
	if (set_hash(s) == -1) {
		r = xerr_set(e, XTCMK_E_INTERNAL, "SHA-256 failed");
		goto fail;
	}
	*ret_set = s;
	return 0;
fail:
	set_free(s);
	return r;
}

/* Read the three files of `dir` into a set; no Lua runs. */
int
policy_set_read(const char *dir, const char *lua_dir, json_t *params,
    const struct policy_limits *lim, struct policy_set **ret_set,
    struct xerr *e)
{
	char path[PATH_MAX], *src[POLICY__COUNT] = { NULL };
	size_t len[POLICY__COUNT] = { 0 };
	int k, r = 0;

	for (k = 0; k < POLICY__COUNT; k++) {
		r = snprintf(path, sizeof(path), "%s/%s.lua", dir,
		    kind_names[k]);
		if (r < 0 || (size_t)r >= sizeof(path)) {
			r = xerr_set(e, XTCMK_E_INVAL, "policy directory path "
			    "too long");
			goto out;
		}
		if ((r = read_source(path, &src[k], &len[k], e)) < 0)
			goto out;
	}
	r = policy_set_new(dir, lua_dir, params, lim,
	    (const char *const *)src, len, ret_set, e);
out:
	for (k = 0; k < POLICY__COUNT; k++)
		free(src[k]);
	return r;
}

/*
 * Compile the three policies in a scratch state (filling their names)
 * and run every selftest, each within the per-call budget.
 */
int
policy_set_check(struct policy_set *s, struct xerr *e)
{
	struct policy_vm *vm = NULL;
	struct call c;
	int k, r;

	if ((r = policy_vm_new(s, &vm, e)) < 0)
		return r;
	for (k = 0; k < POLICY__COUNT; k++) {
		memset(&c, 0, sizeof(c));
		c.kind = k;
		c.params = s->params;
		if ((r = vm_run(vm, vm_selftest, &c, e)) < 0)
			break;
	}
	policy_set_ref(s);		/* policy_vm_free drops the vm's */
	policy_vm_free(vm);
	atomic_fetch_sub(&s->refs, 1);
	return r < 0 ? r : 0;
}

int
policy_set_load(const char *dir, const char *lua_dir, json_t *params,
    const struct policy_limits *lim, struct policy_set **ret_set,
    struct xerr *e)
{
	struct policy_set *s;
	int r;

	if ((r = policy_set_read(dir, lua_dir, params, lim, &s, e)) < 0)
		return r;
	if ((r = policy_set_check(s, e)) < 0) {
		policy_set_unref(s);
		return r;
	}
	*ret_set = s;
	return 0;
}

/* ---- the library, read ahead of confinement -------------------------- */

static int
lib_add(struct policy_set *s, const char *name, const char *path,
    struct xerr *e)
{
	struct policy_module *m;
	char *src;
	size_t len;
	int r;

	if (s->nlib >= POLICY_LIBRARY_FILES_MAX)
		return xerr_set(e, XTCMK_E_TOOBIG, "%s holds more than %d "
		    "modules", s->lua_dir, POLICY_LIBRARY_FILES_MAX);
	if ((r = read_source(path, &src, &len, e)) < 0)
		return r;
	if (len > POLICY_LIBRARY_BYTES_MAX - s->libbytes) {
		free(src);
		return xerr_set(e, XTCMK_E_TOOBIG, "the modules in %s hold "
		    "more than %d bytes", s->lua_dir,
		    POLICY_LIBRARY_BYTES_MAX);
	}
	if ((m = reallocarray(s->lib, s->nlib + 1, sizeof(*m))) == NULL) {
		free(src);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	s->lib = m;
	m += s->nlib;
	m->name = strdup(name);
	m->path = strdup(path);
	m->src = src;
	m->len = len;
	if (m->name == NULL || m->path == NULL) {
		free(m->name);
		free(m->path);
		free(src);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	s->nlib++;
	s->libbytes += len;
	return 0;
}

/* Add every NAME.lua under `path` as module `prefix`NAME. */
static int
lib_walk(struct policy_set *s, const char *path, const char *prefix,
    int depth, struct xerr *e)
{
	char sub[PATH_MAX], name[POLICY_MODULE_NAME_MAX + 8];
	struct dirent *d;
	struct stat st;
	size_t n;
	DIR *dp;
	int r = 0;

	if (depth > POLICY_LIBRARY_DEPTH_MAX)
		return 0;
	if ((dp = opendir(path)) == NULL)
		return xerr_set(e, XTCMK_E_NOT_FOUND, "cannot read the Lua "
		    "library %s: %s", path, strerror(errno));
	while (r == 0 && (d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, d->d_name) >=
		    (int)sizeof(sub) || stat(sub, &st) == -1)
			continue;
		n = strlen(d->d_name);
		if (S_ISDIR(st.st_mode)) {
			if (snprintf(name, sizeof(name), "%s%s.", prefix,
			    d->d_name) < (int)sizeof(name))
				r = lib_walk(s, sub, name, depth + 1, e);
		} else if (S_ISREG(st.st_mode) && n > 4 &&
		    strcmp(d->d_name + n - 4, ".lua") == 0 &&
		    snprintf(name, sizeof(name), "%s%.*s", prefix,
		    (int)(n - 4), d->d_name) < (int)sizeof(name) &&
		    policy_module_name_ok(name, strlen(name)))
			r = lib_add(s, name, sub, e);
	}
	closedir(dp);
	return r;
}

/*
 * Read every module of lua_dir into the set, so `require` needs no file
 * system afterwards (a policy worker does this before it confines
 * itself).
 */
int
policy_set_preload(struct policy_set *s, struct xerr *e)
{
	if (s->preloaded)
		return 0;
	if (lib_walk(s, s->lua_dir, "", 0, e) < 0)
		return -1;
	s->preloaded = 1;
	return 0;
}

/*
 * The source of module `name` when the library was read ahead: 1 and
 * the source, 0 when it was not, -1 when no such module exists.
 */
int
policy_module_source(lua_State *L, const char *name, const char **ret_src,
    size_t *ret_len, const char **ret_path)
{
	const struct policy_set *s = vm_of(L)->set;
	size_t i;

	if (!s->preloaded)
		return 0;
	for (i = 0; i < s->nlib; i++)
		if (strcmp(s->lib[i].name, name) == 0) {
			*ret_src = s->lib[i].src;
			*ret_len = s->lib[i].len;
			*ret_path = s->lib[i].path;
			return 1;
		}
	return -1;
}

struct policy_set *
policy_set_ref(struct policy_set *s)
{
	if (s != NULL)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void
policy_set_unref(struct policy_set *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
		set_free(s);
}

const char *
policy_set_hash(const struct policy_set *s)
{
	return s->hash;
}

const char *
policy_set_dir(const struct policy_set *s)
{
	return s->dir;
}

const char *
policy_set_name(const struct policy_set *s, enum policy_kind k)
{
	if ((unsigned)k >= POLICY__COUNT)
		return "unknown";
	if (s == NULL || s->name[k] == NULL)
		return kind_names[k];
	return s->name[k];
}

json_t *
policy_set_params(const struct policy_set *s)
{
	return s->params;
}

const struct policy_limits *
policy_set_limits(const struct policy_set *s)
{
	return &s->lim;
}

const char *
policy_set_lua_dir(const struct policy_set *s)
{
	return s->lua_dir;
}

const char *
policy_set_source(const struct policy_set *s, enum policy_kind k,
    size_t *ret_len)
{
	*ret_len = s->srclen[k];
	return s->src[k];
}

/* The names a worker reported, before the set is published. */
int
policy_set_set_name(struct policy_set *s, enum policy_kind k,
    const char *name)
{
	char *n;

	if ((unsigned)k >= POLICY__COUNT || s->name[k] != NULL ||
	    name == NULL || name[0] == '\0' || strlen(name) > POLICY_NAME_MAX)
		return 0;
	if ((n = strdup(name)) == NULL)
		return -1;
	s->name[k] = n;
	return 0;
}

/* ---- vms ------------------------------------------------------------- */

int
policy_vm_new(struct policy_set *s, struct policy_vm **ret_vm,
    struct xerr *e)
{
	struct policy_vm *vm;
	int r;

	if ((vm = calloc(1, sizeof(*vm))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	atomic_fetch_add(&s->refs, 1);
	vm->set = s;
	if ((r = vm_build(vm, e)) < 0) {
		atomic_fetch_sub(&s->refs, 1);	/* the caller still holds s */
		free(vm);
		return r;
	}
	*ret_vm = vm;
	return 0;
}

void
policy_vm_free(struct policy_vm *vm)
{
	struct policy_set *s;

	if (vm == NULL)
		return;
	vm_teardown(vm);
	s = vm->set;
	free(vm);
	/* During policy_set_load the loader holds the last reference. */
	if (atomic_fetch_sub(&s->refs, 1) == 1)
		set_free(s);
}

struct policy_set *
policy_vm_set(const struct policy_vm *vm)
{
	return vm->set;
}

size_t
policy_vm_memory(const struct policy_vm *vm)
{
	return vm->mem_used;
}

int
policy_vm_call_params(struct policy_vm *vm, enum policy_kind k,
    json_t *input, json_t *params, json_t **ret_output, struct xerr *e)
{
	struct call c;
	int r;

	if ((unsigned)k >= POLICY__COUNT)
		return xerr_set(e, XTCMK_E_INVAL, "unknown decision %d", k);
	if (!json_is_object(input))
		return xerr_set(e, XTCMK_E_INVAL, "the input of decision %s "
		    "must be a JSON object", kind_names[k]);
	if (params == NULL)
		params = vm->set->params;
	if (!json_is_object(params))
		return xerr_set(e, XTCMK_E_INVAL, "policy params must be a "
		    "JSON object");
	if ((vm->broken || vm->L == NULL) && (r = vm_build(vm, e)) < 0)
		return r;
	memset(&c, 0, sizeof(c));
	c.kind = k;
	c.input = input;
	c.params = params;
	if ((r = vm_run(vm, vm_decide, &c, e)) < 0) {
		json_decref(c.output);
		return r;
	}
	*ret_output = c.output;
	return 0;
}

/* Run one of the partition policy's extra entry points (scope, move). */
static int
vm_partition_step(struct policy_vm *vm, int (*fn)(lua_State *),
    const char *what, json_t *input, json_t *params, json_t **ret,
    struct xerr *e)
{
	struct call c;
	int r;

	if (params == NULL)
		params = vm->set->params;
	if (!json_is_object(input) || !json_is_object(params))
		return xerr_set(e, XTCMK_E_INVAL, "%s needs an input object "
		    "and params", what);
	if ((vm->broken || vm->L == NULL) && (r = vm_build(vm, e)) < 0)
		return r;
	memset(&c, 0, sizeof(c));
	c.kind = POLICY_PARTITION;
	c.input = input;
	c.params = params;
	if ((r = vm_run(vm, fn, &c, e)) < 0) {
		json_decref(c.output);
		return r;
	}
	*ret = c.output;
	return 0;
}

int
policy_vm_scope(struct policy_vm *vm, json_t *customer, json_t *params,
    json_t **ret_scope, struct xerr *e)
{
	return vm_partition_step(vm, vm_scope, "scope", customer, params,
	    ret_scope, e);
}

int
policy_vm_move(struct policy_vm *vm, json_t *input, json_t *params,
    json_t **ret_verdict, struct xerr *e)
{
	return vm_partition_step(vm, vm_move, "move", input, params,
	    ret_verdict, e);
}

int
policy_vm_call(struct policy_vm *vm, enum policy_kind k, json_t *input,
    json_t **ret_output, struct xerr *e)
{
	return policy_vm_call_params(vm, k, input, NULL, ret_output, e);
}
