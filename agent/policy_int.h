/*
 * policy_int.h - private to the policy engine: how policy.c (sets, states,
 * limits), policy_sandbox.c (what a policy sees) and policy_json.c (values
 * between JSON and Lua) call each other.  Other subsystems use policy.h.
 */
#ifndef XTCMK_POLICY_INT_H
#define XTCMK_POLICY_INT_H

#include <stddef.h>

#include <jansson.h>
#include <lua.h>

#define POLICY_PATH_MAX		256		/* a result path in messages */
#define POLICY_MODULE_NAME_MAX	128		/* longest name for require */
#define POLICY_LIBRARY_FILES_MAX 256		/* modules read ahead */
#define POLICY_LIBRARY_BYTES_MAX (8 << 20)	/* their total size */
#define POLICY_LIBRARY_DEPTH_MAX 8		/* folder nesting */

/* policy.c: the library directory of the set the state `L` runs. */
const char *policy_lua_dir(lua_State *L);
/* policy.c: a module's source when the library was read ahead. */
int	policy_module_source(lua_State *L, const char *name,
	    const char **ret_src, size_t *ret_len, const char **ret_path);
/*
 * policy.c: whether the running call tripped a limit; charge the time a
 * costly C function took (raises when a deadline passed).
 */
int	policy_tripped(lua_State *L);
void	policy_charge(lua_State *L);

/*
 * policy_sandbox.c: open the allowed libraries into a fresh state and
 * strip the rest (a lua_CFunction, run protected); push a new _ENV for a
 * policy or a module.
 */
int	policy_sandbox_open(lua_State *L);
void	policy_sandbox_push_env(lua_State *L);
/* Start a call with no module instantiated (compiled chunks are kept). */
void	policy_sandbox_reset(lua_State *L);
int	policy_module_name_ok(const char *s, size_t len);

/*
 * policy_json.c: push `j` as fresh Lua values (raises past the input
 * depth limit); convert the value at `idx` strictly into JSON.  `path`
 * (POLICY_PATH_MAX bytes, e.g. "result") names the value and is extended
 * while descending; on refusal NULL, with the reason in `err`.
 */
void	policy_json_push(lua_State *L, json_t *j, int depth);
json_t	*policy_json_from_lua(lua_State *L, int idx, char *path, int depth,
	    char *err, size_t errsize);

#endif
