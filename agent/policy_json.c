/*
 * policy_json.c - values crossing between JSON and a policy's Lua state.
 * Inputs and params go in as fresh tables (null is absent, integers stay
 * integers); results come out strictly: no coercion, arrays must be
 * sequences 1..n, only strings, numbers, booleans and tables, and every
 * refusal names the path of the offending value.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "policy.h"
#include "policy_int.h"

#define POLICY_INPUT_DEPTH_MAX	32		/* nesting of an input object */

/* Push `j` as fresh Lua values: null is absent, integers stay integers. */
void
policy_json_push(lua_State *L, json_t *j, int depth)
{
	const char *key;
	json_t *v;
	size_t i;
	lua_Integer n;

	if (depth > POLICY_INPUT_DEPTH_MAX)
		luaL_error(L, "input nested deeper than %d levels",
		    POLICY_INPUT_DEPTH_MAX);
	luaL_checkstack(L, 4, "input too deep");
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(j)); /* t */
		json_object_foreach(j, key, v) {
			if (json_is_null(v))
				continue;
			lua_pushstring(L, key);		/* t k */
			policy_json_push(L, v, depth + 1);	/* t k v */
			lua_rawset(L, -3);		/* t */
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(j), 0);	/* t */
		n = 0;
		json_array_foreach(j, i, v) {
			if (json_is_null(v))
				continue;
			policy_json_push(L, v, depth + 1);	/* t v */
			lua_rawseti(L, -2, ++n);	/* t */
		}
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j),
		    json_string_length(j));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(j));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	default:
		lua_pushnil(L);
		break;
	}
}

/* Append ".key" or "[i]" to the path; return the old length to restore. */
static size_t
path_key(char *path, const char *key)
{
	size_t len = strlen(path);

	snprintf(path + len, POLICY_PATH_MAX - len, ".%s", key);
	return len;
}

static size_t
path_index(char *path, long long i)
{
	size_t len = strlen(path);

	snprintf(path + len, POLICY_PATH_MAX - len, "[%lld]", i);
	return len;
}

/* A result key: at most POLICY_STRING_MAX bytes of UTF-8 without NUL. */
static int
key_ok(const char *key, size_t len)
{
	json_t *j;

	if (len > POLICY_STRING_MAX || memchr(key, '\0', len) != NULL ||
	    (j = json_stringn(key, len)) == NULL)
		return 0;
	json_decref(j);
	return 1;
}

static json_t *
table_to_json(lua_State *L, int idx, char *path, int depth, char *err,
    size_t errsize)
{
	lua_Integer nint = 0, k;
	size_t nstr = 0, len, old;
	json_t *out, *v;
	const char *key;

	if (depth > POLICY_RESULT_DEPTH_MAX) {
		snprintf(err, errsize, "%s is nested deeper than "
		    "%d levels (or refers to itself)", path,
		    POLICY_RESULT_DEPTH_MAX);
		return NULL;
	}
	if (!lua_checkstack(L, 4)) {
		snprintf(err, errsize, "%s: out of stack", path);
		return NULL;
	}
	lua_pushnil(L);					/* k */
	while (lua_next(L, idx) != 0) {			/* k v */
		if (lua_type(L, -2) == LUA_TSTRING)
			nstr++;
		else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1)
			nint++;
		else {
			snprintf(err, errsize, "%s has a key of "
			    "type %s; use string keys or a sequence 1..n",
			    path, lua_isnumber(L, -2) ? "non-positive or "
			    "fractional number" : luaL_typename(L, -2));
			lua_pop(L, 2);
			return NULL;
		}
		lua_pop(L, 1);				/* k */
	}
	if (nstr > 0 && nint > 0) {
		snprintf(err, errsize, "%s mixes array items and "
		    "named fields", path);
		return NULL;
	}
	if (nstr == 0) {
		if ((out = json_array()) == NULL)
			goto nomem;
		for (k = 1; k <= nint; k++) {
			if (lua_rawgeti(L, idx, k) == LUA_TNIL) { /* v */
				lua_pop(L, 1);
				snprintf(err, errsize, "%s is not a "
				    "sequence (item %lld is missing)", path,
				    (long long)k);
				json_decref(out);
				return NULL;
			}
			old = path_index(path, (long long)k);
			v = policy_json_from_lua(L, lua_gettop(L), path,
			    depth + 1, err, errsize);
			path[old] = '\0';
			lua_pop(L, 1);			/* */
			if (v == NULL || json_array_append_new(out, v) == -1) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	if ((out = json_object()) == NULL)
		goto nomem;
	lua_pushnil(L);					/* k */
	while (lua_next(L, idx) != 0) {			/* k v */
		key = lua_tolstring(L, -2, &len);
		old = path_key(path, key);
		if (!key_ok(key, len)) {
			path[old] = '\0';
			snprintf(err, errsize, "%s has a key that is not valid "
			    "UTF-8, holds a NUL byte or is over %d bytes",
			    path, POLICY_STRING_MAX);
			v = NULL;
		} else
			v = policy_json_from_lua(L, lua_gettop(L), path,
			    depth + 1, err, errsize);
		path[old] = '\0';
		if (v == NULL || json_object_set_new(out, key, v) == -1) {
			lua_pop(L, 2);
			json_decref(out);
			if (err[0] == '\0')
				goto nomem;
			return NULL;
		}
		lua_pop(L, 1);				/* k */
	}
	return out;
nomem:
	if (err[0] == '\0')
		snprintf(err, errsize, "%s: out of memory", path);
	return NULL;
}

/* Strict conversion: no coercion, errors name the path. */
json_t *
policy_json_from_lua(lua_State *L, int idx, char *path, int depth,
    char *err, size_t errsize)
{
	const char *s;
	lua_Number d;
	size_t len;
	json_t *j;

	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return json_integer((json_int_t)lua_tointeger(L, idx));
		d = lua_tonumber(L, idx);
		if (!isfinite(d)) {
			snprintf(err, errsize, "%s is not a finite "
			    "number", path);
			return NULL;
		}
		return json_real(d);
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if (len > POLICY_STRING_MAX) {
			snprintf(err, errsize, "%s is a string of "
			    "%zu bytes; the limit is %d", path, len,
			    POLICY_STRING_MAX);
			return NULL;
		}
		if (memchr(s, '\0', len) != NULL) {
			snprintf(err, errsize, "%s holds a NUL byte (at byte "
			    "%zu)", path, (size_t)((const char *)memchr(s, '\0',
			    len) - s));
			return NULL;
		}
		if ((j = json_stringn(s, len)) == NULL)
			snprintf(err, errsize, "%s is not valid "
			    "UTF-8", path);
		return j;
	case LUA_TTABLE:
		return table_to_json(L, lua_absindex(L, idx), path, depth, err,
		    errsize);
	default:
		snprintf(err, errsize, "%s is a %s", path,
		    luaL_typename(L, idx));
		return NULL;
	}
}

/* The app `part` chose: from the partition's input if there (name,
 * client_id, labels), else a new one with the labels the policy gave. */
static json_t *
decided_app(json_t *pinput, json_t *part)
{
	const char *name = json_string_value(json_object_get(part, "app"));
	const char *n;
	json_t *a;
	size_t i;

	if (name == NULL)
		return NULL;
	json_array_foreach(json_object_get(pinput, "apps"), i, a)
		if ((n = json_string_value(json_object_get(a, "name"))) !=
		    NULL && strcmp(n, name) == 0)
			return json_incref(a);
	return json_pack("{s:s, s:n, s:O?}", "name", name, "client_id",
	    "labels", json_object_get(part, "app_labels"));
}

json_t *
policy_role_input(json_t *cv, json_t *app)
{
	if (cv == NULL || app == NULL)
		return NULL;
	return json_pack("{s:O, s:{s:O, s:O?, s:O?}}", "customer", cv, "app",
	    "name", json_object_get(app, "name"), "client_id",
	    json_object_get(app, "client_id"), "labels",
	    json_object_get(app, "labels"));
}

json_t *
policy_role_input_after(json_t *pinput, json_t *part)
{
	json_t *app = decided_app(pinput, part), *in;

	in = policy_role_input(json_object_get(pinput, "customer"), app);
	json_decref(app);
	return in;
}
