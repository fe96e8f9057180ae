/*
 * policy_sandbox.c - what a policy sees.  Like Lua's linit.c, this file
 * alone decides it:
 *	- base functions from an allow-list (no load, loadfile, dofile,
 *	  print, collectgarbage, getmetatable, setmetatable, rawset);
 *	- copies of string (without dump), table, math and utf8, with
 *	  find, match, gmatch and gsub refusing patterns too costly to run;
 *	- `require` of our own that reads modules by name from the lua/
 *	  library directory, text chunks only;
 *	- `xtcmk` with now() and version.
 * Strings keep their metatable, but its __index is a private copy of the
 * string table that no policy can reach or change.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "config.h"
#include "policy.h"
#include "policy_int.h"

#define POLICY_MODULE_NAME_MAX	128		/* longest name for require */
#define MODULES_KEY		"xtcmk.modules"

static const char *const base_allow[] = {
	"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
	"rawget", "rawlen", "select", "tonumber", "tostring", "type",
	"xpcall", "_VERSION", NULL
};
static const char *const base_deny[] = {
	"load", "loadfile", "dofile", "print", "collectgarbage",
	"getmetatable", "setmetatable", "rawset", "require", NULL
};
static const char *const lib_allow[] = {
	"string", "table", "math", "utf8", NULL
};

/* Push a shallow copy of the table at `idx`. */
static void
copy_table(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L);			/* copy */
	lua_pushnil(L);				/* copy k */
	while (lua_next(L, idx) != 0) {		/* copy k v */
		lua_pushvalue(L, -2);		/* copy k v k */
		lua_insert(L, -2);		/* copy k k v */
		lua_rawset(L, -4);		/* copy k */
	}
}

static int
l_now(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)time(NULL));
	return 1;
}

static int l_require(lua_State *L);

/* Push a fresh _ENV for a policy or a module. */
void
policy_sandbox_push_env(lua_State *L)
{
	int i;

	lua_createtable(L, 0, 24);			/* env */
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* env G */
	for (i = 0; base_allow[i] != NULL; i++) {
		lua_getfield(L, -1, base_allow[i]);	/* env G f */
		lua_setfield(L, -3, base_allow[i]);	/* env G */
	}
	for (i = 0; lib_allow[i] != NULL; i++) {
		lua_getfield(L, -1, lib_allow[i]);	/* env G lib */
		copy_table(L, -1);			/* env G lib copy */
		lua_setfield(L, -4, lib_allow[i]);	/* env G lib */
		lua_pop(L, 1);				/* env G */
	}
	lua_pop(L, 1);					/* env */
	lua_pushcfunction(L, l_require);		/* env require */
	lua_setfield(L, -2, "require");			/* env */
	lua_createtable(L, 0, 2);			/* env xtcmk */
	lua_pushcfunction(L, l_now);			/* env xtcmk now */
	lua_setfield(L, -2, "now");			/* env xtcmk */
	lua_pushliteral(L, XTCMK_VERSION);		/* env xtcmk v */
	lua_setfield(L, -2, "version");			/* env xtcmk */
	lua_setfield(L, -2, "xtcmk");			/* env */
	lua_pushvalue(L, -1);				/* env env */
	lua_setfield(L, -2, "_G");			/* env */
}

/*
 * Lua's pattern matcher backtracks inside C, where the count hook never
 * runs: a pattern with k backtracking quantifiers costs up to n^(k+1)
 * steps on a subject of n bytes.  The sandbox's find, match, gmatch and
 * gsub refuse a pattern whose worst case exceeds about 2^PATTERN_WORK_LOG2
 * steps; plain finds (4th argument true) are linear and always allowed.
 */
#define PATTERN_WORK_LOG2	26

static int
pattern_quantifiers(const char *p, size_t len)
{
	size_t i;
	int q = 0;

	for (i = 0; i < len; i++) {
		if (p[i] == '%' && i + 1 < len) {
			i++;
			continue;
		}
		if (p[i] == '*' || p[i] == '+' || p[i] == '-')
			q++;
	}
	return q;
}

static int
l_guarded_match(lua_State *L)
{
	size_t n = 0, plen = 0, bits = 0;
	const char *pat;
	int q;

	if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING &&
	    !lua_toboolean(L, 4)) {
		lua_tolstring(L, 1, &n);
		pat = lua_tolstring(L, 2, &plen);
		q = pattern_quantifiers(pat, plen);
		while ((n >> bits) > 0)
			bits++;
		if ((size_t)(q + 1) * bits > PATTERN_WORK_LOG2)
			return luaL_error(L, "pattern with %d quantifiers is "
			    "too costly on a subject of %d bytes (the sandbox "
			    "cannot interrupt pattern matching): use fewer "
			    "'*', '+', '-' or a plain find", q, (int)n);
	}
	lua_pushvalue(L, lua_upvalueindex(1));		/* args f */
	lua_insert(L, 1);				/* f args */
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);	/* results */
	return lua_gettop(L);
}

static void
guard_patterns(lua_State *L)
{
	static const char *const fns[] = { "find", "match", "gmatch", "gsub",
	    NULL };
	int i;

	for (i = 0; fns[i] != NULL; i++) {		/* string */
		lua_getfield(L, -1, fns[i]);		/* string f */
		lua_pushcclosure(L, l_guarded_match, 1); /* string g */
		lua_setfield(L, -2, fns[i]);		/* string */
	}
}

/*
 * Open the allowed libraries and strip what no policy may reach; a
 * lua_CFunction, run protected once per fresh state.
 */
int
policy_sandbox_open(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base },
		{ LUA_TABLIBNAME, luaopen_table },
		{ LUA_STRLIBNAME, luaopen_string },
		{ LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },
		{ NULL, NULL }
	};
	const luaL_Reg *l;
	int i;

	for (l = libs; l->name != NULL; l++) {
		luaL_requiref(L, l->name, l->func, 1);	/* lib */
		lua_pop(L, 1);				/* */
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* G */
	for (i = 0; base_deny[i] != NULL; i++) {
		lua_pushnil(L);				/* G nil */
		lua_setfield(L, -2, base_deny[i]);	/* G */
	}
	lua_getfield(L, -1, LUA_STRLIBNAME);		/* G string */
	lua_pushnil(L);					/* G string nil */
	lua_setfield(L, -2, "dump");			/* G string */
	guard_patterns(L);				/* G string */
	lua_pushliteral(L, "");				/* G string "" */
	if (!lua_getmetatable(L, -1))			/* G string "" mt */
		return luaL_error(L, "strings have no metatable");
	copy_table(L, -3);				/* G string "" mt idx */
	lua_setfield(L, -2, "__index");			/* G string "" mt */
	lua_pop(L, 4);					/* */
	lua_newtable(L);				/* mods */
	lua_setfield(L, LUA_REGISTRYINDEX, MODULES_KEY);	/* */
	return 0;
}

static int
module_name_ok(const char *s, size_t len)
{
	size_t i;
	int start = 1;

	if (len == 0 || len > POLICY_MODULE_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (start) {
			if (s[i] < 'a' || s[i] > 'z')
				return 0;
			start = 0;
		} else if (s[i] == '.')
			start = 1;
		else if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	}
	return !start;
}

/*
 * require(name): load LUA_DIR/name-with-slashes.lua as text in a fresh
 * sandboxed env, once per state.  The file is read into a userdata
 * first, so no error can strike while the descriptor is open.
 */
static int
l_require(lua_State *L)
{
	const char *lua_dir = policy_lua_dir(L);
	char path[PATH_MAX], chunk[PATH_MAX + 1];
	struct stat st;
	const char *name;
	size_t len, i, off;
	ssize_t n;
	char *buf;
	int fd, rc;

	name = luaL_checklstring(L, 1, &len);
	if (!module_name_ok(name, len))
		return luaL_error(L, "require: bad module name; use lowercase "
		    "names such as \"xtcmk.place\" (the library is %s)",
		    lua_dir);
	lua_settop(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, MODULES_KEY);	/* name mods */
	lua_pushvalue(L, 1);				/* name mods name */
	if (lua_rawget(L, 2) != LUA_TNIL) {		/* name mods v */
		if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
			return luaL_error(L, "require: module '%s' requires "
			    "itself while loading", name);
		return 1;
	}
	lua_pop(L, 1);					/* name mods */
	rc = snprintf(path, sizeof(path), "%s/%s.lua", lua_dir,
	    name);
	if (rc < 0 || (size_t)rc >= sizeof(path))
		return luaL_error(L, "require: path of '%s' too long", name);
	for (i = strlen(lua_dir) + 1; path[i] != '\0'; i++)
		if (path[i] == '.' && strcmp(path + i, ".lua") != 0)
			path[i] = '/';
	if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
		return luaL_error(L, "require: module '%s' not found "
		    "(looked for %s)", name, path);
	if (st.st_size > POLICY_SOURCE_MAX)
		return luaL_error(L, "require: %s is larger than %d bytes",
		    path, POLICY_SOURCE_MAX);
	buf = lua_newuserdatauv(L, (size_t)st.st_size + 1, 0);
	/* name mods buf */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return luaL_error(L, "require: cannot open %s: %s", path,
		    strerror(errno));
	for (off = 0; off < (size_t)st.st_size; off += (size_t)n) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0)
			break;
	}
	close(fd);
	if (off != (size_t)st.st_size)
		return luaL_error(L, "require: short read on %s", path);
	snprintf(chunk, sizeof(chunk), "@%s", path);
	if (luaL_loadbufferx(L, buf, off, chunk, "t") != LUA_OK)
		return lua_error(L);			/* name mods buf err */
	/* name mods buf fn */
	policy_sandbox_push_env(L);		/* name mods buf fn env */
	lua_setupvalue(L, -2, 1);			/* name mods buf fn */
	lua_pushvalue(L, 1);				/* ... fn name */
	lua_pushboolean(L, 0);				/* ... fn name false */
	lua_rawset(L, 2);				/* name mods buf fn */
	lua_pushvalue(L, 1);				/* name mods buf fn name */
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {		/* name mods buf err */
		lua_pushvalue(L, 1);			/* ... err name */
		lua_pushnil(L);				/* ... err name nil */
		lua_rawset(L, 2);			/* name mods buf err */
		return lua_error(L);
	}
	/* name mods buf mod */
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);				/* name mods buf */
		lua_pushboolean(L, 1);			/* name mods buf true */
	}
	lua_pushvalue(L, 1);				/* name mods buf mod name */
	lua_pushvalue(L, -2);				/* ... mod name mod */
	lua_rawset(L, 2);				/* name mods buf mod */
	return 1;
}
