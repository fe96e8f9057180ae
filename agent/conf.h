/*
 * conf.h - xtcmk.conf: the agent's configuration (INI style).
 * Every key, default and limit is listed in xtcmk.conf(5).
 */
#ifndef XTCMK_CONF_H
#define XTCMK_CONF_H

#include <stdio.h>
#include <sys/types.h>
#include <jansson.h>

#include "policy.h"
#include "xerr.h"

#define CONFIG_LINE_MAX		4096
#define CONFIG_SIZE_MAX		(1024 * 1024)
#define CONFIG_IDS_MAX		64	/* uids or gids per ACL list */
#define CONFIG_PARAMS_MAX	128	/* keys in [params] */
#define CONN_MAX_LIMIT		65536
#define CONN_PER_UID_DIV	4	/* default per-uid share of the total */
#define FRAME_MIN		1024
#define CONFIG_KEYS_MAX		64	/* entries in conf.c's key table */
#define CONFIG_WHERE_MAX	(4096 + 96)	/* "FILE:LINE: [section] key" */
#define CONFIG_WALK_MAX		4096	/* files checked under a policy dir */
#define POLICY_WORKERS_MIN	2	/* default: online CPUs, at least */
#define POLICY_WORKERS_AUTO_MAX	16	/* default: online CPUs, at most */
#define POLICY_WORKERS_MAX	64	/* configured */

struct id_list {
	int	any;			/* "*": everybody */
	int	n;
	unsigned ids[CONFIG_IDS_MAX];
};

struct config {
	char	*path;			/* file it came from, or NULL */
	char	*socket_path;
	char	*state_dir;
	char	*registry_path;		/* state_dir/registry.db */
	char	*decision_log;		/* state_dir/decisions.jsonl */
	char	*memcache;		/* fast-path file, "none": off */
	char	*workload;		/* this host's workload identity, or NULL */
	char	*policy_dir;
	char	*lua_dir;
	int	 log_level;		/* LOG_ERR .. LOG_DEBUG */
	unsigned max_connections;
	unsigned max_connections_per_uid;
	unsigned idle_timeout_s;
	unsigned request_timeout_s;
	unsigned max_frame;
	unsigned policy_workers;	/* default: config_policy_workers_auto */
	unsigned status_workers;
	unsigned dek_cache_entries;
	char	*azure_tenant;		/* the provider's own tenant (FIC issuer) */
	char	*azure_authority;	/* https://login.microsoftonline.com */
	/* The azure provider (see xtcmk.conf(5)); NULL: default. */
	char	*azure_identity;	/* imds | workload-identity | app-service */
	char	*azure_identity_client_id;
	char	*azure_identity_object_id;
	char	*azure_identity_resource_id;
	char	*azure_imds_endpoint;
	char	*azure_federated_token_file;
	char	*azure_identity_endpoint;
	char	*azure_identity_header;
	char	*azure_token_audience;
	char	*azure_ca_file;
	char	*azure_connect_to;	/* HOST:PORT for every https host */
	char	*azure_api_version;
	unsigned azure_timeout_ms;	/* per HTTP attempt */
	unsigned azure_retries;
	unsigned azure_rate_limit;	/* requests/s per vault, 0: none */
	int	 azure_local_wrap;
	char	*metrics_listen;	/* [metrics] listen, NULL: off */
	/* [registry]: the fleet registry (fleet.h, xtcmk-fleet(7)). */
	char	*registry_backend;	/* sqlite | etcd */
	char	*registry_endpoints;	/* URLs, comma or space separated */
	char	*registry_prefix;	/* "/xtcmk/" */
	char	*registry_ca_file;
	char	*registry_cert_file;
	char	*registry_key_file;
	char	*registry_user;
	char	*registry_password_file;
	unsigned registry_timeout_ms;	/* one etcd call, all endpoints */
	unsigned registry_sync_timeout_ms; /* read-your-writes wait */
	struct id_list data_uids, data_gids, admin_uids, admin_gids;
	struct id_list monitor_uids, monitor_gids;	/* read-only admin */
	struct policy_limits limits;
	char	*policy_isolation;	/* "process" (default) or "inprocess" */
	char	*policy_worker;		/* the xtcmk-policyd executable */
	json_t	*params;		/* [params] as an object */
	unsigned key_line[CONFIG_KEYS_MAX];	/* line that set each key */
};

/* Load `path` (NULL: defaults only).  Unknown sections or keys, bad
 * values and missing files are errors naming file:line and the key. */
int	config_load(const char *path, struct config **ret_cfg, struct xerr *e);
void	config_free(struct config *c);
/*
 * What start-up needs beyond a well-formed file: the socket path fits
 * sun_path, the directories of the socket, the state and the decision log
 * exist, and no one but root or the agent's user can write the config,
 * the policies or the Lua library.  `activated`: the socket comes from
 * systemd, so [agent] socket is not used.  Errors name file:line and key.
 */
int	config_check_start(const struct config *c, int activated,
	    struct xerr *e);
struct sockaddr_storage;
/* [metrics] listen as a socket address ("ADDRESS:PORT", "[V6]:PORT"). */
int	config_metrics_addr(const struct config *c, struct sockaddr_storage *ss,
	    int *ret_v6, struct xerr *e);
/* [agent] policy_workers by default: the online CPUs, at least
 * POLICY_WORKERS_MIN, at most POLICY_WORKERS_AUTO_MAX. */
unsigned config_policy_workers_auto(void);
/* "FILE:LINE: [section] key", or "[section] key (default)". */
const char *config_where(const struct config *c, const char *section,
	    const char *key, char *buf, size_t len);
/* What a peer may do. */
enum access_role {
	ACCESS_DATA = 0,	/* data plane: decisions, data keys */
	ACCESS_ADMIN = 1,	/* every admin command */
	ACCESS_MONITOR = 2,	/* admin commands that only read */
	ACCESS_CONNECT = 3,	/* any of the above: may connect */
};
/* May the peer act in `role` (enum access_role)?  Admins hold every role;
 * monitors only ACCESS_MONITOR (and so ACCESS_CONNECT). */
int	config_allows(const struct config *c, int role, uid_t uid, gid_t gid);
/* The default max_connections_per_uid: a CONN_PER_UID_DIV-th of the total. */
unsigned config_default_per_uid(const struct config *c);
/* Print the effective configuration as INI (for --check-config). */
void	config_dump(const struct config *c, FILE *out);

#endif
