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

/* policy.c: the library directory of the set the state `L` runs. */
const char *policy_lua_dir(lua_State *L);

/*
 * policy_sandbox.c: open the allowed libraries into a fresh state and
 * strip the rest (a lua_CFunction, run protected); push a new _ENV for a
 * policy or a module.
 */
int	policy_sandbox_open(lua_State *L);
void	policy_sandbox_push_env(lua_State *L);

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
