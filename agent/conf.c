/*
* conf.c - xtcmk.conf parser (see conf.h and xtcmk.conf(5)).
 *
 * INI: "[section]" lines, "key = value" lines, '#' or ';' comments, blank
 * lines.  Strict: an unknown section or key is an error, so a typo never
 * silently leaves a default in force.  [params] is free-form and handed to
 * the policies.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"	/* installed paths */
#include "conf.h"
#include "log.h"
#include "memcache.h"
#include "validate.h"

enum ctype { C_STR, C_PATH, C_UINT, C_SIZE, C_LEVEL, C_UIDS, C_GIDS, C_BOOL };

struct ckey {
	const char	*section;
	const char	*key;
	enum ctype	 type;
	size_t		 off;
	unsigned long	 min, max;	/* C_UINT, C_SIZE */
};

#define OFF(f)	offsetof(struct config, f)

static const struct ckey ckeys[] = {
	{ "agent", "socket", C_PATH, OFF(socket_path), 0, 0 },
	{ "agent", "state_dir", C_PATH, OFF(state_dir), 0, 0 },
	{ "agent", "decision_log", C_PATH, OFF(decision_log), 0, 0 },
	{ "agent", "workload", C_STR, OFF(workload), 0, 0 },
	{ "agent", "policy_dir", C_PATH, OFF(policy_dir), 0, 0 },
	{ "agent", "lua_dir", C_PATH, OFF(lua_dir), 0, 0 },
	{ "agent", "memcache", C_STR, OFF(memcache), 0, 0 },
	{ "agent", "log_level", C_LEVEL, OFF(log_level), 0, 0 },
	{ "agent", "max_connections", C_UINT, OFF(max_connections), 1, CONN_MAX_LIMIT },
	{ "agent", "max_connections_per_uid", C_UINT, OFF(max_connections_per_uid), 1, CONN_MAX_LIMIT },
	{ "agent", "idle_timeout", C_UINT, OFF(idle_timeout_s), 1, 86400 },
	{ "agent", "request_timeout", C_UINT, OFF(request_timeout_s), 1, 300 },
	{ "agent", "max_frame", C_UINT, OFF(max_frame), FRAME_MIN, 65536 },
	{ "agent", "policy_workers", C_UINT, OFF(policy_workers), 1, POLICY_WORKERS_MAX },
	{ "access", "data_uids", C_UIDS, OFF(data_uids), 0, 0 },
	{ "access", "data_gids", C_GIDS, OFF(data_gids), 0, 0 },
	{ "access", "admin_uids", C_UIDS, OFF(admin_uids), 0, 0 },
	{ "access", "admin_gids", C_GIDS, OFF(admin_gids), 0, 0 },
	{ "access", "monitor_uids", C_UIDS, OFF(monitor_uids), 0, 0 },
	{ "access", "monitor_gids", C_GIDS, OFF(monitor_gids), 0, 0 },
	{ "policy", "instructions", C_UINT, OFF(limits.instructions), 1000, POLICY_INSTR_MAX },
	{ "policy", "memory", C_SIZE, OFF(limits.memory), 1u << 20, POLICY_MEM_MAX },
	{ "policy", "time_ms", C_UINT, OFF(limits.time_ms), 1, POLICY_TIME_MAX_MS },
	{ "policy", "isolation", C_STR, OFF(policy_isolation), 0, 0 },
	{ "policy", "worker", C_PATH, OFF(policy_worker), 0, 0 },
	{ "keys", "status_workers", C_UINT, OFF(status_workers), 1, 64 },
	{ "keys", "dek_cache_entries", C_UINT, OFF(dek_cache_entries), 0, 1048576 },
	{ "azure", "tenant", C_STR, OFF(azure_tenant), 0, 0 },
	{ "azure", "authority", C_STR, OFF(azure_authority), 0, 0 },
	{ "azure", "identity", C_STR, OFF(azure_identity), 0, 0 },
	{ "azure", "identity_client_id", C_STR, OFF(azure_identity_client_id), 0, 0 },
	{ "azure", "identity_object_id", C_STR, OFF(azure_identity_object_id), 0, 0 },
	{ "azure", "identity_resource_id", C_STR, OFF(azure_identity_resource_id), 0, 0 },
	{ "azure", "imds_endpoint", C_STR, OFF(azure_imds_endpoint), 0, 0 },
	{ "azure", "federated_token_file", C_PATH, OFF(azure_federated_token_file), 0, 0 },
	{ "azure", "identity_endpoint", C_STR, OFF(azure_identity_endpoint), 0, 0 },
	{ "azure", "identity_header", C_STR, OFF(azure_identity_header), 0, 0 },
	{ "azure", "token_audience", C_STR, OFF(azure_token_audience), 0, 0 },
	{ "azure", "ca_file", C_PATH, OFF(azure_ca_file), 0, 0 },
	{ "azure", "connect_to", C_STR, OFF(azure_connect_to), 0, 0 },
	{ "azure", "api_version", C_STR, OFF(azure_api_version), 0, 0 },
	{ "azure", "timeout_ms", C_UINT, OFF(azure_timeout_ms), 100, 120000 },
	{ "azure", "retries", C_UINT, OFF(azure_retries), 0, 10 },
	{ "azure", "rate_limit", C_UINT, OFF(azure_rate_limit), 0, 100000 },
	{ "azure", "local_wrap", C_BOOL, OFF(azure_local_wrap), 0, 0 },
	{ "metrics", "listen", C_STR, OFF(metrics_listen), 0, 0 },
	{ "registry", "backend", C_STR, OFF(registry_backend), 0, 0 },
	{ "registry", "endpoints", C_STR, OFF(registry_endpoints), 0, 0 },
	{ "registry", "prefix", C_STR, OFF(registry_prefix), 0, 0 },
	{ "registry", "ca_file", C_PATH, OFF(registry_ca_file), 0, 0 },
	{ "registry", "cert_file", C_PATH, OFF(registry_cert_file), 0, 0 },
	{ "registry", "key_file", C_PATH, OFF(registry_key_file), 0, 0 },
	{ "registry", "user", C_STR, OFF(registry_user), 0, 0 },
	{ "registry", "password_file", C_PATH, OFF(registry_password_file), 0, 0 },
	{ "registry", "timeout_ms", C_UINT, OFF(registry_timeout_ms), 100, 120000 },
	{ "registry", "sync_timeout_ms", C_UINT, OFF(registry_sync_timeout_ms), 10, 120000 },
};
/* Indexes into ckeys[] that code refers to (keep them in step). */
#define KEY_POLICY_DIR	4
#define KEY_LUA_DIR	5
#define NCKEYS	(sizeof(ckeys) / sizeof(ckeys[0]))
_Static_assert(NCKEYS <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX");

/* The KEY_ indexes above still name the keys they mean. */
static int
key_indexes_ok(void)
{
	return strcmp(ckeys[KEY_POLICY_DIR].key, "policy_dir") == 0 &&
	    strcmp(ckeys[KEY_LUA_DIR].key, "lua_dir") == 0;
}

/*
 * An uninstalled agent (BUILD/agent/xtcmkd) or xtcmkctl (BUILD/ctl/
 * xtcmkctl) finds the policy worker it was built with at BUILD/agent/
 * policyworker/xtcmk-policyd; the default stays when there is none.
 */
static void
policy_worker_beside_agent(struct config *c)
{
	static const char *const rel[] = { "policyworker/xtcmk-policyd",
	    "../agent/policyworker/xtcmk-policyd" };
	char exe[PATH_MAX], *slash, *p;
	ssize_t n;
	size_t i;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return;
	*slash = '\0';
	for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if (asprintf(&p, "%s/%s", exe, rel[i]) == -1)
			return;
		if (access(p, X_OK) == 0) {
			free(c->policy_worker);
			c->policy_worker = p;
			return;
		}
		free(p);
	}
}

unsigned
config_policy_workers_auto(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < POLICY_WORKERS_MIN)
		return POLICY_WORKERS_MIN;
	if (n > POLICY_WORKERS_AUTO_MAX)
		return POLICY_WORKERS_AUTO_MAX;
	return (unsigned)n;
}

const char *
config_where(const struct config *c, const char *section, const char *key,
    char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < NCKEYS; i++)
		if (strcmp(ckeys[i].section, section) == 0 &&
		    strcmp(ckeys[i].key, key) == 0 && c->key_line[i] != 0) {
			snprintf(buf, len, "%s:%u: [%s] %s", c->path,
			    c->key_line[i], section, key);
			return buf;
		}
	snprintf(buf, len, "%s%s[%s] %s (default)", c->path ? c->path : "",
	    c->path ? ": " : "", section, key);
	return buf;
}

static char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static char *
path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) == -1)
		return NULL;
	return p;
}

static void
config_defaults(struct config *c)
{
	c->socket_path = xstrdup(XTCMK_SOCKET);
	c->state_dir = xstrdup(XTCMK_STATEDIR);
	c->policy_dir = xstrdup(XTCMK_POLICYDIR);
	c->lua_dir = xstrdup(XTCMK_LUADIR);
	c->policy_isolation = xstrdup("process");
	c->policy_worker = xstrdup(XTCMK_POLICYD);
	c->log_level = LOG_INFO;
	c->max_connections = 4096;
	c->max_connections_per_uid = 0;	/* CONN_PER_UID_DIV of the total */
	c->idle_timeout_s = 300;
	c->request_timeout_s = 5;
	c->max_frame = 65536;
	c->policy_workers = config_policy_workers_auto();
	c->status_workers = 2;
	c->dek_cache_entries = 65536;
	c->azure_authority = xstrdup("https://login.microsoftonline.com");
	c->azure_timeout_ms = 5000;
	c->azure_retries = 4;
	c->azure_rate_limit = 200;
	c->registry_backend = xstrdup("sqlite");
	c->registry_prefix = xstrdup("/xtcmk/");
	c->registry_timeout_ms = 5000;
	c->registry_sync_timeout_ms = 2000;
	/* Root and the agent's own user; everyone else must be listed. */
	c->data_uids.n = 0;
	c->data_uids.ids[c->data_uids.n++] = 0;
	if (geteuid() != 0)
		c->data_uids.ids[c->data_uids.n++] = geteuid();
	c->admin_uids = c->data_uids;
	c->limits.instructions = POLICY_INSTR_DEFAULT;
	c->limits.memory = POLICY_MEM_DEFAULT;
	c->limits.time_ms = POLICY_TIME_DEFAULT_MS;
	c->params = json_object();
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->socket_path);
	free(c->state_dir);
	free(c->registry_path);
	free(c->decision_log);
	free(c->memcache);
	free(c->workload);
	free(c->policy_dir);
	free(c->lua_dir);
	free(c->policy_isolation);
	free(c->policy_worker);
	free(c->azure_tenant);
	free(c->azure_authority);
	free(c->azure_identity);
	free(c->azure_identity_client_id);
	free(c->azure_identity_object_id);
	free(c->azure_identity_resource_id);
	free(c->azure_imds_endpoint);
	free(c->azure_federated_token_file);
	free(c->azure_identity_endpoint);
	free(c->azure_identity_header);
	free(c->azure_token_audience);
	free(c->azure_ca_file);
	free(c->azure_connect_to);
	free(c->azure_api_version);
	free(c->metrics_listen);
	free(c->registry_backend);
	free(c->registry_endpoints);
	free(c->registry_prefix);
	free(c->registry_ca_file);
	free(c->registry_cert_file);
	free(c->registry_key_file);
	free(c->registry_user);
	free(c->registry_password_file);
	json_decref(c->params);
	free(c);
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int
parse_ulong(const char *v, unsigned long *ret)
{
	char *end;
	unsigned long n;

	*ret = 0;
	if (!isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0)
		return -1;
	*ret = n;
	return (int)(end - v);
}

static int
parse_ids(const char *v, int gids, struct id_list *ret, const char *where,
    const char *key, struct xerr *e)
{
	struct id_list l = { 0 };
	char buf[CONFIG_LINE_MAX], *tok, *save = NULL;
	unsigned long n;

	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(tok, "*") == 0) {
			l.any = 1;
			continue;
		}
		if (l.n == CONFIG_IDS_MAX)
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: %s lists more than %d ids", where, key,
			    CONFIG_IDS_MAX);
		if (parse_ulong(tok, &n) == (int)strlen(tok) && n < UINT_MAX)
			l.ids[l.n++] = (unsigned)n;
		else if (!gids && getpwnam(tok) != NULL)
			l.ids[l.n++] = getpwnam(tok)->pw_uid;
		else if (gids && getgrnam(tok) != NULL)
			l.ids[l.n++] = getgrnam(tok)->gr_gid;
		else
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: %s: no %s named '%s' (use a number, a name "
			    "known to this host, or *)", where, key,
			    gids ? "group" : "user", tok);
	}
	*ret = l;
	return 0;
}

static int
parse_size(const char *v, unsigned long *ret)
{
	unsigned long n;
	int used, shift;

	if ((used = parse_ulong(v, &n)) < 0)
		return -1;
	switch (v[used]) {
	case '\0':
		shift = 0;
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (shift != 0)
		used++;
	if (v[used] != '\0' || n > (ULONG_MAX >> shift))
		return -1;
	*ret = n << shift;
	return 0;
}

static int
set_key(struct config *c, const struct ckey *k, const char *v,
    const char *where, struct xerr *e)
{
	char *base = (char *)c + k->off;
	unsigned long n;
	int lvl;

	switch (k->type) {
	case C_STR:
	case C_PATH:
		if (*v == '\0')
			return xerr_set(e, XTCMK_E_INVAL, "%s: %s is empty",
			    where, k->key);
		if (k->type == C_PATH && *v != '/')
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: %s must be an absolute path, not '%s'",
			    where, k->key, v);
		free(*(char **)base);
		*(char **)base = strdup(v);
		return 0;
	case C_UINT:
	case C_SIZE:
		if ((k->type == C_UINT ? (parse_ulong(v, &n) ==
		    (int)strlen(v) ? 0 : -1) : parse_size(v, &n)) != 0 ||
		    n < k->min || n > k->max)
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: %s = '%s': expected a whole number%s from %lu "
			    "to %lu", where, k->key, v,
			    k->type == C_SIZE ? " of bytes (suffix K, M, G)" : "",
			    k->min, k->max);
		if (k->type == C_SIZE)
			*(size_t *)base = n;
		else if (k->off == OFF(limits.instructions))
			*(unsigned long *)base = n;
		else
			*(unsigned *)base = (unsigned)n;
		return 0;
	case C_LEVEL:
		if ((lvl = log_level_parse(v)) < 0)
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: log_level '%s': use error, warning, notice, "
			    "info or debug", where, v);
		*(int *)base = lvl;
		return 0;
	case C_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
		    strcmp(v, "1") == 0)
			*(int *)base = 1;
		else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
		    strcmp(v, "0") == 0)
			*(int *)base = 0;
		else
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: %s = '%s': use yes or no", where, k->key, v);
		return 0;
	case C_UIDS:
	case C_GIDS:
		return parse_ids(v, k->type == C_GIDS, (struct id_list *)base,
		    where, k->key, e);
	}
	return 0;
}

static json_t *
param_value(const char *v)
{
	unsigned long n;

	if (parse_ulong(v, &n) == (int)strlen(v) && n <= (1ul << 53))
		return json_integer((json_int_t)n);
	if (strcmp(v, "true") == 0)
		return json_true();
	if (strcmp(v, "false") == 0)
		return json_false();
	return json_string(v);
}

static int
parse_line(struct config *c, char *line, char *section, size_t seclen,
    unsigned lineno, const char *where, struct xerr *e)
{
	char *eq, *key, *val;
	size_t i;

	line = trim(line);
	if (*line == '\0' || *line == '#' || *line == ';')
		return 0;
	if (*line == '[') {
		if (line[strlen(line) - 1] != ']')
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: section header needs a closing ']'", where);
		line[strlen(line) - 1] = '\0';
		snprintf(section, seclen, "%s", trim(line + 1));
		if (strcmp(section, "agent") != 0 &&
		    strcmp(section, "access") != 0 &&
		    strcmp(section, "policy") != 0 &&
		    strcmp(section, "keys") != 0 &&
		    strcmp(section, "azure") != 0 &&
		    strcmp(section, "metrics") != 0 &&
		    strcmp(section, "registry") != 0 &&
		    strcmp(section, "params") != 0)
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: unknown section [%s]; sections are [agent], "
			    "[access], [policy], [keys], [azure], [metrics], "
			    "[registry] and [params]", where, section);
		return 0;
	}
	if ((eq = strchr(line, '=')) == NULL)
		return xerr_set(e, XTCMK_E_INVAL,
		    "%s: expected 'key = value', got '%.40s'", where, line);
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	if (*section == '\0')
		return xerr_set(e, XTCMK_E_INVAL,
		    "%s: '%s' comes before any [section]", where, key);
	if (strcmp(section, "params") == 0) {
		if (json_object_size(c->params) >= CONFIG_PARAMS_MAX)
			return xerr_set(e, XTCMK_E_INVAL,
			    "%s: more than %d keys in [params]", where,
			    CONFIG_PARAMS_MAX);
		for (i = 0; key[i] != '\0'; i++)
			if (!isalnum((unsigned char)key[i]) && key[i] != '_')
				return xerr_set(e, XTCMK_E_INVAL,
				    "%s: [params] key '%s' may hold only "
				    "letters, digits and '_'", where, key);
		if (json_object_set_new(c->params, key, param_value(val)) != 0)
			return xerr_set(e, XTCMK_E_INVAL, "%s: [params] %s: "
			    "the value is not valid UTF-8 text", where, key);
		return 0;
	}
	for (i = 0; i < NCKEYS; i++)
		if (strcmp(ckeys[i].section, section) == 0 &&
		    strcmp(ckeys[i].key, key) == 0) {
			c->key_line[i] = lineno;
			return set_key(c, &ckeys[i], val, where, e);
		}
	return xerr_set(e, XTCMK_E_INVAL,
	    "%s: unknown key '%s' in [%s] (see xtcmk.conf(5))", where, key,
	    section);
}

static int
config_parse_file(struct config *c, const char *path, struct xerr *e)
{
	FILE *f;
	char line[CONFIG_LINE_MAX + 2], section[64] = "", where[PATH_MAX + 32];
	unsigned lineno = 0;
	size_t total = 0;
	int rc = 0;

	if ((f = fopen(path, "re")) == NULL)
		return xerr_set(e, errno == ENOENT ? XTCMK_E_NOT_FOUND :
		    XTCMK_E_INVAL, "cannot read config %s: %s", path,
		    strerror(errno));
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		total += strlen(line);
		if (total > CONFIG_SIZE_MAX) {
			rc = xerr_set(e, XTCMK_E_INVAL, "%s: config larger "
			    "than %d bytes", where, CONFIG_SIZE_MAX);
			break;
		}
		if (strchr(line, '\n') == NULL && !feof(f)) {
			rc = xerr_set(e, XTCMK_E_INVAL, "%s: line longer than "
			    "%d bytes", where, CONFIG_LINE_MAX);
			break;
		}
		rc = parse_line(c, line, section, sizeof(section), lineno, where,
		    e);
	}
	fclose(f);
	return rc;
}

static int
http_url(const struct config *c, const char *v, const char *key,
    struct xerr *e)
{
	char w[CONFIG_WHERE_MAX];

	if (v != NULL && strncmp(v, "http://", 7) != 0 &&
	    strncmp(v, "https://", 8) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s must be an http:// or "
		    "https:// URL, not '%s'", config_where(c, "azure", key, w,
		    sizeof(w)), v);
	return 0;
}

/*
 * The identity token's audience of the authority's cloud (FACTS 4.1): a
 * federated credential names one, and a token for another never matches.
 */
static const char *
cloud_audience(const char *authority)
{
	const char *h = authority + strlen("https://");
	size_t n = strcspn(h, "/:");

	if (n >= 3 && strncmp(h + n - 3, ".us", 3) == 0)
		return "api://AzureADTokenExchangeUSGov";
	if (n >= 3 && strncmp(h + n - 3, ".cn", 3) == 0)
		return "api://AzureADTokenExchangeChina";
	return "api://AzureADTokenExchange";
}

#define WHERE(k)	config_where(c, "azure", (k), w, sizeof(w))

/* The [azure] keys that depend on each other. */
static int
azure_check(struct config *c, struct xerr *e)
{
	const char *id = c->azure_identity;
	const char *v;
	char w[CONFIG_WHERE_MAX];
	int rc;

	if (id != NULL && strcmp(id, "imds") != 0 &&
	    strcmp(id, "workload-identity") != 0 &&
	    strcmp(id, "app-service") != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s': use imds, "
		    "workload-identity or app-service", WHERE("identity"), id);
	if ((c->azure_identity_client_id != NULL) +
	    (c->azure_identity_object_id != NULL) +
	    (c->azure_identity_resource_id != NULL) > 1)
		return xerr_set(e, XTCMK_E_INVAL, "%s: [azure] sets more than "
		    "one of identity_client_id, identity_object_id and "
		    "identity_resource_id: keep the one that names the "
		    "identity", c->path ? c->path : "config");
	if (c->azure_identity_client_id != NULL && valid_guid(
	    c->azure_identity_client_id, WHERE("identity_client_id"), e) < 0)
		return -XTCMK_E_INVAL;
	if (c->azure_identity_object_id != NULL && valid_guid(
	    c->azure_identity_object_id, WHERE("identity_object_id"), e) < 0)
		return -XTCMK_E_INVAL;
	if (c->azure_identity_resource_id != NULL && valid_uami_resource_id(
	    c->azure_identity_resource_id, e) < 0) {
		char msg[sizeof(e->msg)];

		snprintf(msg, sizeof(msg), "%s", e->msg);
		return xerr_set(e, XTCMK_E_INVAL, "%s: %s",
		    WHERE("identity_resource_id"), msg);
	}
	if ((rc = http_url(c, c->azure_imds_endpoint, "imds_endpoint",
	    e)) < 0 || (rc = http_url(c, c->azure_identity_endpoint,
	    "identity_endpoint", e)) < 0)
		return rc;
	if (c->azure_ca_file != NULL && access(c->azure_ca_file, R_OK) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s: %s is not readable: %s",
		    WHERE("ca_file"), c->azure_ca_file, strerror(errno));
	if ((v = c->azure_connect_to) != NULL && (strchr(v, ':') == NULL ||
	    strchr(v, '/') != NULL))
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s': use HOST:PORT "
		    "(tests only; leave it unset in production)",
		    WHERE("connect_to"), v);
	if (strncmp(c->azure_authority, "https://", 8) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s must be an https:// "
		    "URL, e.g. https://login.microsoftonline.com",
		    WHERE("authority"));
	if ((v = c->azure_token_audience) != NULL &&
	    strncmp(v, "api://AzureADTokenExchange", 26) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s': use "
		    "api://AzureADTokenExchange (or its USGov or China form)",
		    WHERE("token_audience"), v);
	if (v != NULL && strcmp(v, cloud_audience(c->azure_authority)) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s' "
		    "is not the audience of the cloud of authority %s (%s): "
		    "set it to %s or remove it",
		    WHERE("token_audience"), v, c->azure_authority,
		    cloud_audience(c->azure_authority),
		    cloud_audience(c->azure_authority));
	if (v == NULL && (c->azure_token_audience = xstrdup(cloud_audience(
	    c->azure_authority))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if ((v = c->azure_api_version) != NULL && strspn(v,
	    "0123456789.-abcdefghijklmnopqrstuvwxyz") != strlen(v))
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s' is not an "
		    "api-version such as 7.4", WHERE("api_version"), v);
	if (c->azure_tenant != NULL &&
	    valid_guid(c->azure_tenant, WHERE("tenant"), e) < 0)
		return -XTCMK_E_INVAL;
	return 0;
}

#undef WHERE

/* [registry]: etcd needs endpoints; a prefix is a path ending in '/'. */
static int
registry_check(struct config *c, struct xerr *e)
{
	const char *p = c->registry_prefix;

	if (strcmp(c->registry_backend, "sqlite") != 0 &&
	    strcmp(c->registry_backend, "etcd") != 0)
		return xerr_set(e, XTCMK_E_INVAL, "[registry] backend '%s': use "
		    "sqlite (one host) or etcd (a fleet)", c->registry_backend);
	if (strcmp(c->registry_backend, "etcd") == 0 &&
	    (c->registry_endpoints == NULL || *c->registry_endpoints == '\0'))
		return xerr_set(e, XTCMK_E_INVAL, "[registry] backend = etcd "
		    "needs endpoints (e.g. https://10.0.0.1:2379, "
		    "https://10.0.0.2:2379, https://10.0.0.3:2379)");
	if (*p != '/' || p[strlen(p) - 1] != '/' || strlen(p) > 100 ||
	    strpbrk(p, " \t\"\\") != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "[registry] prefix '%s' must "
		    "start and end with '/', at most 100 characters without "
		    "blanks or quotes (e.g. /xtcmk/prod/)", p);
	if ((c->registry_cert_file == NULL) != (c->registry_key_file == NULL))
		return xerr_set(e, XTCMK_E_INVAL, "[registry] cert_file and "
		    "key_file go together");
	if ((c->registry_user == NULL) != (c->registry_password_file == NULL))
		return xerr_set(e, XTCMK_E_INVAL, "[registry] user and "
		    "password_file go together");
	return 0;
}

int
config_load(const char *path, struct config **ret_cfg, struct xerr *e)
{
	struct config *c;
	const char *tree;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	config_defaults(c);
	if (path != NULL) {
		c->path = strdup(path);
		if ((rc = config_parse_file(c, path, e)) < 0) {
			config_free(c);
			return rc;
		}
	}
	if (c->workload != NULL && strlen(c->workload) > 64) {
		char w[CONFIG_WHERE_MAX];

		rc = xerr_set(e, XTCMK_E_INVAL, "%s: longer than 64 "
		    "characters", config_where(c, "agent", "workload", w,
		    sizeof(w)));
		config_free(c);
		return rc;
	}
	if (strcmp(c->policy_isolation, "process") != 0 &&
	    strcmp(c->policy_isolation, "inprocess") != 0) {
		rc = xerr_set(e, XTCMK_E_INVAL, "[policy] isolation = '%s': "
		    "use process (policy worker processes, the default) or "
		    "inprocess (inside the agent, for comparison only)",
		    c->policy_isolation);
		config_free(c);
		return rc;
	}
	if ((rc = azure_check(c, e)) < 0 || (rc = registry_check(c, e)) < 0) {
		config_free(c);
		return rc;
	}
	/* An uninstalled build runs from its source tree, named by
	 * $XTCMK_SRCDIR (`meson devenv`, the tests): when the built-in
	 * library and policy directories are not installed, use the tree's
	 * (only for defaults; configured paths are never changed). */
	tree = secure_getenv("XTCMK_SRCDIR");
	if (!key_indexes_ok()) {
		config_free(c);
		return xerr_set(e, XTCMK_E_INTERNAL, "conf.c: KEY_POLICY_DIR "
		    "and KEY_LUA_DIR do not match ckeys[]");
	}
	if (tree != NULL && *tree == '/' && c->key_line[KEY_LUA_DIR] == 0 &&
	    access(XTCMK_LUADIR, F_OK) != 0) {
		free(c->lua_dir);
		c->lua_dir = path_join(tree, "lua");
	}
	if (strcmp(c->policy_worker, XTCMK_POLICYD) == 0 &&
	    access(XTCMK_POLICYD, X_OK) != 0)
		policy_worker_beside_agent(c);
	if (tree != NULL && *tree == '/' &&
	    c->key_line[KEY_POLICY_DIR] == 0 &&
	    access(XTCMK_POLICYDIR, F_OK) != 0) {
		free(c->policy_dir);
		c->policy_dir = path_join(tree, "policies/default");
	}
	c->registry_path = path_join(c->state_dir, "registry.db");
	if (c->decision_log == NULL)
		c->decision_log = path_join(c->state_dir, "decisions.jsonl");
	if (c->max_connections_per_uid == 0)
		c->max_connections_per_uid = config_default_per_uid(c);
	if (c->max_connections_per_uid > c->max_connections)
		c->max_connections_per_uid = c->max_connections;
	if (c->memcache == NULL) {
		char mc[PATH_MAX];

		if (xm_default_path(c->socket_path, mc, sizeof(mc)) == 0)
			c->memcache = strdup(mc);
	}
	*ret_cfg = c;
	return 0;
}

unsigned
config_default_per_uid(const struct config *c)
{
	unsigned n = c->max_connections / CONN_PER_UID_DIV;

	return n > 0 ? n : 1;
}

static int
in_list(const struct id_list *l, unsigned id)
{
	int i;

	if (l->any)
		return 1;
	for (i = 0; i < l->n; i++)
		if (l->ids[i] == id)
			return 1;
	return 0;
}

int
config_allows(const struct config *c, int role, uid_t uid, gid_t gid)
{
	int admin = in_list(&c->admin_uids, uid) ||
	    in_list(&c->admin_gids, gid);
	int monitor = in_list(&c->monitor_uids, uid) ||
	    in_list(&c->monitor_gids, gid);
	int data = in_list(&c->data_uids, uid) || in_list(&c->data_gids, gid);

	switch (role) {
	case ACCESS_ADMIN:
		return admin;
	case ACCESS_MONITOR:
		return admin || monitor;
	case ACCESS_CONNECT:
		return admin || monitor || data;
	default:
		/* Admins may always ask data-plane questions too. */
		return admin || data;
	}
}

static void
dump_ids(FILE *out, const char *key, const struct id_list *l)
{
	int i;

	fprintf(out, "%s =", key);
	if (l->any)
		fprintf(out, " *");
	for (i = 0; i < l->n; i++)
		fprintf(out, " %u", l->ids[i]);
	fputc('\n', out);
}

void
config_dump(const struct config *c, FILE *out)
{
	const char *k;
	json_t *v;
	char *s;

	fprintf(out, "# effective configuration%s%s\n[agent]\n",
	    c->path ? " from " : " (built-in defaults)", c->path ? c->path : "");
	fprintf(out, "socket = %s\nstate_dir = %s\ndecision_log = %s\n",
	    c->socket_path, c->state_dir, c->decision_log);
	if (c->memcache != NULL)
		fprintf(out, "memcache = %s\n", c->memcache);
	if (c->workload != NULL)
		fprintf(out, "workload = %s\n", c->workload);
	fprintf(out, "policy_dir = %s\nlua_dir = %s\nlog_level = %s\n",
	    c->policy_dir, c->lua_dir, log_level_name(c->log_level));
	fprintf(out, "max_connections = %u\nmax_connections_per_uid = %u\n"
	    "idle_timeout = %u\nrequest_timeout = %u\nmax_frame = %u\n"
	    "policy_workers = %u\n", c->max_connections,
	    c->max_connections_per_uid, c->idle_timeout_s,
	    c->request_timeout_s, c->max_frame, c->policy_workers);
	fprintf(out, "\n[access]\n");
	dump_ids(out, "data_uids", &c->data_uids);
	dump_ids(out, "data_gids", &c->data_gids);
	dump_ids(out, "admin_uids", &c->admin_uids);
	dump_ids(out, "admin_gids", &c->admin_gids);
	dump_ids(out, "monitor_uids", &c->monitor_uids);
	dump_ids(out, "monitor_gids", &c->monitor_gids);
	fprintf(out, "\n[policy]\ninstructions = %lu\nmemory = %zu\n"
	    "time_ms = %u\nisolation = %s\nworker = %s\n",
	    c->limits.instructions, c->limits.memory, c->limits.time_ms,
	    c->policy_isolation, c->policy_worker);
	fprintf(out, "\n[keys]\nstatus_workers = %u\n"
	    "dek_cache_entries = %u\n", c->status_workers,
	    c->dek_cache_entries);
	fprintf(out, "\n[azure]\n");
	if (c->azure_tenant != NULL)
		fprintf(out, "tenant = %s\n", c->azure_tenant);
	fprintf(out, "authority = %s\n", c->azure_authority);
	fprintf(out, "identity = %s\n", c->azure_identity ?
	    c->azure_identity : "imds");
#define DUMP_OPT(k, f)	if (c->f != NULL) fprintf(out, k " = %s\n", c->f)
	DUMP_OPT("identity_client_id", azure_identity_client_id);
	DUMP_OPT("identity_object_id", azure_identity_object_id);
	DUMP_OPT("identity_resource_id", azure_identity_resource_id);
	DUMP_OPT("imds_endpoint", azure_imds_endpoint);
	DUMP_OPT("federated_token_file", azure_federated_token_file);
	DUMP_OPT("identity_endpoint", azure_identity_endpoint);
	DUMP_OPT("token_audience", azure_token_audience);
	DUMP_OPT("ca_file", azure_ca_file);
	DUMP_OPT("connect_to", azure_connect_to);
	DUMP_OPT("api_version", azure_api_version);
#undef DUMP_OPT
	if (c->azure_identity_header != NULL)
		fprintf(out, "identity_header = (set)\n");
	fprintf(out, "timeout_ms = %u\nretries = %u\nrate_limit = %u\n"
	    "local_wrap = %s\n", c->azure_timeout_ms, c->azure_retries,
	    c->azure_rate_limit, c->azure_local_wrap ? "yes" : "no");
	if (c->metrics_listen != NULL)
		fprintf(out, "\n[metrics]\nlisten = %s\n", c->metrics_listen);
	fprintf(out, "\n[registry]\nbackend = %s\nprefix = %s\n"
	    "timeout_ms = %u\nsync_timeout_ms = %u\n", c->registry_backend,
	    c->registry_prefix, c->registry_timeout_ms,
	    c->registry_sync_timeout_ms);
#define DUMP_OPT(k, f)	if (c->f != NULL) fprintf(out, k " = %s\n", c->f)
	DUMP_OPT("endpoints", registry_endpoints);
	DUMP_OPT("ca_file", registry_ca_file);
	DUMP_OPT("cert_file", registry_cert_file);
	DUMP_OPT("key_file", registry_key_file);
	DUMP_OPT("user", registry_user);
	DUMP_OPT("password_file", registry_password_file);
#undef DUMP_OPT
	fprintf(out, "\n[params]\n");
	json_object_foreach(c->params, k, v) {
		if (json_is_string(v))
			fprintf(out, "%s = %s\n", k, json_string_value(v));
		else if ((s = json_dumps(v, JSON_ENCODE_ANY)) != NULL) {
			fprintf(out, "%s = %s\n", k, s);
			free(s);
		}
	}
}
