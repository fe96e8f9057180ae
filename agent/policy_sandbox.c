/*
 * policy_sandbox.c - what a policy sees.  Like Lua's linit.c, this file
 * alone decides it:
 *	- base functions from an allow-list (no load, loadfile, dofile,
 *	  print, collectgarbage, getmetatable, setmetatable, rawset);
 *	- string (without dump), table, math and utf8, with
 *	  find, match, gmatch and gsub refusing patterns too costly to run,
 *	  table.move refusing huge ranges, and the costly C functions
 *	  charging their time at once;
 *	- xpcall whose message handler does not run once a limit tripped
 *	  (the handler would run with hooks off and could loop for ever);
 *	- `require` of our own that loads modules by name from the lua/
 *	  library (read ahead in a policy worker), text chunks only, run
 *	  afresh in every call;
 *	- `xtcmk` with now(), fnv1a32(), rank() and version.
 * Strings keep their metatable, but its __index is a private copy of the
 * string table that no policy can reach or change.  Every policy and
 * module gets fresh library tables that read through to the state's
 * (policy_sandbox_push_env), so nothing a policy can change is shared
 * with another call.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
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
#include "strhash.h"

#define MODULES_KEY		"xtcmk.modules"		/* this call's */
#define CHUNKS_KEY		"xtcmk.chunks"		/* compiled, kept */
#define ENVMETA_KEY		"xtcmk.envmeta"		/* env -> base */
#define LIBMETA_KEY		"xtcmk.libmeta"		/* lib -> library */
#define TABLE_MOVE_MAX		(1 << 20)	/* elements per table.move */

static const char *const base_allow[] = {
	"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
	"rawget", "rawlen", "select", "tonumber", "tostring", "type",
	"xpcall", "_VERSION", NULL
};
static const char *const base_deny[] = {
	"load", "loadfile", "dofile", "print", "collectgarbage",
	"getmetatable", "setmetatable", "rawset", "require", NULL
};
/* C functions whose own work can be large: charged when they return. */
static const char *const table_charged[] = { "sort", "concat", "unpack",
	NULL };
static const char *const string_charged[] = { "rep", "format", NULL };
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

/* murmur3's finaliser, as xtcmk.place's mix(). */
static uint32_t
mix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/*
 * xtcmk.fnv1a32(s): the FNV-1a 32-bit hash of string s, as the pure-Lua
 * definition in xtcmk.place computes it (that module uses this one; the
 * loop in Lua cost a partition decision most of its time).  Charged like
 * the costly string functions.
 */
static int
l_fnv1a32(lua_State *L)
{
	const char *p;
	size_t len;

	luaL_checktype(L, 1, LUA_TSTRING);
	p = lua_tolstring(L, 1, &len);
	lua_pushinteger(L, (lua_Integer)fnv1a32_more(FNV1A32_INIT, p, len));
	policy_charge(L);
	return 1;
}

struct rank_ent {
	const char	*name;
	size_t		 len;
	uint32_t	 w;
	lua_Integer	 pos;
};

/* Highest weight first, then by name as Lua compares strings in the C
 * locale (bytes, a prefix first), then by position. */
static int
rank_cmp(const void *va, const void *vb)
{
	const struct rank_ent *a = va, *b = vb;
	int c;

	if (a->w != b->w)
		return a->w > b->w ? -1 : 1;
	c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
	if (c != 0)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

#define RANK_MAX	(1 << 20)	/* names in one xtcmk.rank() */

/*
 * xtcmk.rank(key, names): the positions 1..#names ordered by the weight
 * mix(fnv1a32(key .. "\0" .. name)) highest first, ties by name, then
 * by position: what xtcmk.place's rank() defines in Lua, computed in C
 * (it was a third of a partition decision's time).  Names are strings.
 * Charged like the costly string functions; its scratch memory counts
 * against the memory limit.
 */
static int
l_rank(lua_State *L)
{
	struct rank_ent *ent;
	const char *key;
	uint32_t h0;
	size_t klen, n, i;

	key = luaL_checklstring(L, 1, &klen);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	n = lua_rawlen(L, 2);
	if (n > RANK_MAX)
		return luaL_error(L, "xtcmk.rank: %zu names, at most %d", n,
		    RANK_MAX);
	ent = lua_newuserdatauv(L, n > 0 ? n * sizeof(*ent) : 1, 0);
	h0 = fnv1a32_more(FNV1A32_INIT, key, klen);
	h0 = fnv1a32_more(h0, "", 1);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, 2, (lua_Integer)i + 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			return luaL_error(L, "xtcmk.rank: names[%zu] is a %s, "
			    "not a string", i + 1, luaL_typename(L, -1));
		/* The table keeps the string alive while we sort. */
		ent[i].name = lua_tolstring(L, -1, &ent[i].len);
		lua_pop(L, 1);
		ent[i].w = mix32(fnv1a32_more(h0, ent[i].name, ent[i].len));
		ent[i].pos = (lua_Integer)i + 1;
	}
	qsort(ent, n, sizeof(*ent), rank_cmp);
	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		lua_pushinteger(L, ent[i].pos);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	policy_charge(L);
	return 1;
}

static int l_require(lua_State *L);

/*
 * Push a fresh _ENV for a policy or a module.  The library tables in it
 * are fresh, empty tables that read through to the state's (private)
 * libraries: what a policy stores in one stays in this env, and nothing
 * it can reach leads to the shared tables (no getmetatable, rawset or
 * debug in the sandbox; their metatables are locked).  The base
 * functions read through the same way.  Making an env so costs a few
 * small tables, not a copy of every library.
 */
void
policy_sandbox_push_env(lua_State *L)
{
	int i;

	lua_createtable(L, 0, 8);			/* env */
	for (i = 0; lib_allow[i] != NULL; i++) {
		lua_createtable(L, 0, 0);		/* env lib */
		lua_getfield(L, LUA_REGISTRYINDEX, LIBMETA_KEY); /* env lib m */
		lua_getfield(L, -1, lib_allow[i]);	/* env lib m mt */
		lua_setmetatable(L, -3);		/* env lib m */
		lua_pop(L, 1);				/* env lib */
		lua_setfield(L, -2, lib_allow[i]);	/* env */
	}
	lua_pushcfunction(L, l_require);		/* env require */
	lua_setfield(L, -2, "require");			/* env */
	lua_createtable(L, 0, 4);			/* env xtcmk */
	lua_pushcfunction(L, l_now);			/* env xtcmk now */
	lua_setfield(L, -2, "now");			/* env xtcmk */
	lua_pushcfunction(L, l_fnv1a32);		/* env xtcmk f */
	lua_setfield(L, -2, "fnv1a32");			/* env xtcmk */
	lua_pushcfunction(L, l_rank);			/* env xtcmk f */
	lua_setfield(L, -2, "rank");			/* env xtcmk */
	lua_pushliteral(L, XTCMK_VERSION);		/* env xtcmk v */
	lua_setfield(L, -2, "version");			/* env xtcmk */
	lua_setfield(L, -2, "xtcmk");			/* env */
	lua_pushvalue(L, -1);				/* env env */
	lua_setfield(L, -2, "_G");			/* env */
	lua_getfield(L, LUA_REGISTRYINDEX, ENVMETA_KEY); /* env mt */
	lua_setmetatable(L, -2);			/* env */
}

/* Push a locked metatable whose __index is the table at `idx`. */
static void
push_readthrough(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_createtable(L, 0, 2);			/* mt */
	lua_pushvalue(L, idx);				/* mt t */
	lua_setfield(L, -2, "__index");			/* mt */
	lua_pushboolean(L, 0);				/* mt false */
	lua_setfield(L, -2, "__metatable");		/* mt */
}

/* The metatables push_env uses, made once per state from G (at -1). */
static void
make_env_meta(lua_State *L)
{
	int i;

	lua_createtable(L, 0, 16);			/* G base */
	for (i = 0; base_allow[i] != NULL; i++) {
		lua_getfield(L, -2, base_allow[i]);	/* G base f */
		lua_setfield(L, -2, base_allow[i]);	/* G base */
	}
	push_readthrough(L, -1);			/* G base mt */
	lua_setfield(L, LUA_REGISTRYINDEX, ENVMETA_KEY); /* G base */
	lua_pop(L, 1);					/* G */
	lua_createtable(L, 0, 4);			/* G metas */
	for (i = 0; lib_allow[i] != NULL; i++) {
		lua_getfield(L, -2, lib_allow[i]);	/* G metas lib */
		push_readthrough(L, -1);		/* G metas lib mt */
		lua_setfield(L, -3, lib_allow[i]);	/* G metas lib */
		lua_pop(L, 1);				/* G metas */
	}
	lua_setfield(L, LUA_REGISTRYINDEX, LIBMETA_KEY); /* G */
}

/*
 * Lua's pattern matcher backtracks inside C, where the count hook never
 * runs: a pattern with k backtracking items ('*', '+', '-', '?', %b)
 * costs up to n^(k+1) steps times the pattern's length on a subject of
 * n bytes, and a plain find of a needle of m bytes costs n * m.  The
 * sandbox's find, match, gmatch and gsub refuse a call whose worst case
 * exceeds about 2^PATTERN_WORK_LOG2 steps; the time a call did take is
 * charged at once.  Only find has a `plain` argument (its 4th).
 */
#define PATTERN_WORK_LOG2	26

static int
pattern_quantifiers(const char *p, size_t len)
{
	size_t i;
	int q = 0;

	for (i = 0; i < len; i++) {
		if (p[i] == '%' && i + 1 < len) {
			if (p[++i] == 'b')
				q++;
			continue;
		}
		if (p[i] == '*' || p[i] == '+' || p[i] == '-' || p[i] == '?')
			q++;
	}
	return q;
}

static int
log2_ceil(size_t n)
{
	int bits = 0;

	while ((n >> bits) > 0)
		bits++;
	return bits;
}

static int
l_guarded_match(lua_State *L)
{
	size_t n = 0, plen = 0;
	const char *pat;
	int q, plain;

	plain = lua_toboolean(L, lua_upvalueindex(2)) && lua_toboolean(L, 4);
	if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING) {
		lua_tolstring(L, 1, &n);
		pat = lua_tolstring(L, 2, &plen);
		q = plain ? 0 : pattern_quantifiers(pat, plen);
		if ((q + 1) * log2_ceil(n) + log2_ceil(plen) >
		    PATTERN_WORK_LOG2)
			return luaL_error(L, "%s of %d bytes with %d "
			    "backtracking items is too costly on a subject "
			    "of %d bytes (the sandbox cannot interrupt "
			    "pattern matching): use fewer '*', '+', '-', "
			    "'?', %%b, a shorter needle or a shorter subject",
			    plain ? "plain needle" : "pattern", (int)plen, q,
			    (int)n);
	}
	lua_pushvalue(L, lua_upvalueindex(1));		/* args f */
	lua_insert(L, 1);				/* f args */
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);	/* results */
	policy_charge(L);
	return lua_gettop(L);
}

/* A costly C function (upvalue 1), its time charged when it returns. */
static int
l_charged(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));		/* args f */
	lua_insert(L, 1);				/* f args */
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);	/* results */
	policy_charge(L);
	return lua_gettop(L);
}

/* table.move(a1, f, e, t [,a2]) over at most TABLE_MOVE_MAX elements. */
static int
l_table_move(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);

	if (e >= f && (f <= 0 ? e >= TABLE_MOVE_MAX + f :
	    e - f >= TABLE_MOVE_MAX))
		return luaL_error(L, "table.move of more than %d elements "
		    "(the sandbox cannot interrupt it)", TABLE_MOVE_MAX);
	return l_charged(L);
}

/* Run the message handler (upvalue 1) unless a limit tripped. */
static int
l_msgh_guard(lua_State *L)
{
	if (policy_tripped(L)) {
		lua_settop(L, 1);			/* err */
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));		/* args h */
	lua_insert(L, 1);				/* h args */
	lua_call(L, lua_gettop(L) - 1, 1);		/* res */
	return 1;
}

/* xpcall(f, msgh, ...) with msgh behind l_msgh_guard. */
static int
l_xpcall(lua_State *L)
{
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);				/* f h ... h */
	lua_pushcclosure(L, l_msgh_guard, 1);		/* f h ... g */
	lua_replace(L, 2);				/* f g ... */
	lua_pushvalue(L, lua_upvalueindex(1));		/* f g ... xp */
	lua_insert(L, 1);				/* xp f g ... */
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);	/* results */
	return lua_gettop(L);
}

/* Replace the functions named in `fns` of the table on top by `wrap`. */
static void
wrap_fns(lua_State *L, const char *const *fns, lua_CFunction wrap)
{
	int i;

	for (i = 0; fns[i] != NULL; i++) {		/* t */
		lua_getfield(L, -1, fns[i]);		/* t f */
		lua_pushcclosure(L, wrap, 1);		/* t w */
		lua_setfield(L, -2, fns[i]);		/* t */
	}
}

static void
guard_patterns(lua_State *L)
{
	static const char *const fns[] = { "find", "match", "gmatch", "gsub",
	    NULL };
	int i;

	for (i = 0; fns[i] != NULL; i++) {		/* string */
		lua_getfield(L, -1, fns[i]);		/* string f */
		lua_pushboolean(L, i == 0);		/* string f isfind */
		lua_pushcclosure(L, l_guarded_match, 2); /* string g */
		lua_setfield(L, -2, fns[i]);		/* string */
	}
	wrap_fns(L, string_charged, l_charged);
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
	lua_getfield(L, -1, "xpcall");			/* G xp */
	lua_pushcclosure(L, l_xpcall, 1);		/* G xp' */
	lua_setfield(L, -2, "xpcall");			/* G */
	lua_getfield(L, -1, LUA_TABLIBNAME);		/* G table */
	wrap_fns(L, table_charged, l_charged);		/* G table */
	lua_getfield(L, -1, "move");			/* G table move */
	lua_pushcclosure(L, l_table_move, 1);		/* G table move' */
	lua_setfield(L, -2, "move");			/* G table */
	lua_pop(L, 1);					/* G */
	lua_getfield(L, -1, LUA_STRLIBNAME);		/* G string */
	lua_pushnil(L);					/* G string nil */
	lua_setfield(L, -2, "dump");			/* G string */
	guard_patterns(L);				/* G string */
	lua_pushliteral(L, "");				/* G string "" */
	if (!lua_getmetatable(L, -1))			/* G string "" mt */
		return luaL_error(L, "strings have no metatable");
	copy_table(L, -3);				/* G string "" mt idx */
	lua_setfield(L, -2, "__index");			/* G string "" mt */
	lua_pop(L, 3);					/* G */
	make_env_meta(L);				/* G */
	lua_pop(L, 1);					/* */
	lua_newtable(L);				/* chunks */
	lua_setfield(L, LUA_REGISTRYINDEX, CHUNKS_KEY);	/* */
	policy_sandbox_reset(L);
	return 0;
}

void
policy_sandbox_reset(lua_State *L)
{
	lua_newtable(L);				/* mods */
	lua_setfield(L, LUA_REGISTRYINDEX, MODULES_KEY);	/* */
}

int
policy_module_name_ok(const char *s, size_t len)
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
 * Compile module `name` (its source read ahead, or read from lua_dir
 * into a userdata first, so no error can strike while the descriptor is
 * open) and push the compiled chunk.
 */
static void
compile_module(lua_State *L, const char *name, size_t len)
{
	const char *lua_dir = policy_lua_dir(L), *src, *where;
	char path[PATH_MAX], chunk[PATH_MAX + 1];
	struct stat st;
	size_t i, off, srclen;
	ssize_t n;
	char *buf;
	int fd, rc;

	switch (policy_module_source(L, name, &src, &srclen, &where)) {
	case 1:
		snprintf(chunk, sizeof(chunk), "@%s", where);
		if (luaL_loadbufferx(L, src, srclen, chunk, "t") != LUA_OK)
			lua_error(L);			/* err */
		return;					/* fn */
	case -1:
		luaL_error(L, "require: module '%s' not found in %s", name,
		    lua_dir);
		return;
	}
	rc = snprintf(path, sizeof(path), "%s/%.*s.lua", lua_dir, (int)len,
	    name);
	if (rc < 0 || (size_t)rc >= sizeof(path))
		luaL_error(L, "require: path of '%s' too long", name);
	for (i = strlen(lua_dir) + 1; path[i] != '\0'; i++)
		if (path[i] == '.' && strcmp(path + i, ".lua") != 0)
			path[i] = '/';
	if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
		luaL_error(L, "require: module '%s' not found "
		    "(looked for %s)", name, path);
	if (st.st_size > POLICY_SOURCE_MAX)
		luaL_error(L, "require: %s is larger than %d bytes",
		    path, POLICY_SOURCE_MAX);
	buf = lua_newuserdatauv(L, (size_t)st.st_size + 1, 0);	/* buf */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		luaL_error(L, "require: cannot open %s: %s", path,
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
		luaL_error(L, "require: short read on %s", path);
	snprintf(chunk, sizeof(chunk), "@%s", path);
	if (luaL_loadbufferx(L, buf, off, chunk, "t") != LUA_OK)
		lua_error(L);				/* buf err */
	lua_remove(L, -2);				/* fn */
}

/*
 * require(name): the module's value in this call, made by running its
 * compiled chunk (compiled once per state) with a fresh sandboxed env.
 */
static int
l_require(lua_State *L)
{
	const char *name;
	size_t len;

	name = luaL_checklstring(L, 1, &len);
	if (!policy_module_name_ok(name, len))
		return luaL_error(L, "require: bad module name; use lowercase "
		    "names such as \"xtcmk.place\" (the library is %s)",
		    policy_lua_dir(L));
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
	lua_getfield(L, LUA_REGISTRYINDEX, CHUNKS_KEY);	/* name mods ch */
	lua_pushvalue(L, 1);				/* name mods ch name */
	if (lua_rawget(L, 3) != LUA_TFUNCTION) {	/* name mods ch fn */
		lua_pop(L, 1);				/* name mods ch */
		compile_module(L, name, len);		/* name mods ch fn */
		lua_pushvalue(L, 1);			/* ... fn name */
		lua_pushvalue(L, -2);			/* ... fn name fn */
		lua_rawset(L, 3);			/* name mods ch fn */
	}
	policy_sandbox_push_env(L);		/* name mods ch fn env */
	lua_setupvalue(L, -2, 1);			/* name mods ch fn */
	lua_pushvalue(L, 1);				/* ... fn name */
	lua_pushboolean(L, 0);				/* ... fn name false */
	lua_rawset(L, 2);				/* name mods ch fn */
	lua_pushvalue(L, 1);			/* name mods ch fn name */
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {		/* name mods ch err */
		lua_pushvalue(L, 1);			/* ... err name */
		lua_pushnil(L);				/* ... err name nil */
		lua_rawset(L, 2);			/* name mods ch err */
		return lua_error(L);
	}
	/* name mods ch mod */
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);				/* name mods ch */
		lua_pushboolean(L, 1);			/* name mods ch true */
	}
	lua_pushvalue(L, 1);				/* name mods ch mod name */
	lua_pushvalue(L, -2);				/* ... mod name mod */
	lua_rawset(L, 2);				/* name mods ch mod */
	return 1;
}
