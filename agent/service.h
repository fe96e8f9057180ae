/*
 * service.h - what the agent does for a request, independent of the
 * socket: decisions (with their cache), admin commands, data keys.
 */
#ifndef XTCMK_SERVICE_H
#define XTCMK_SERVICE_H

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "conf.h"
#include "wire.h"
#include "xerr.h"

struct registry;
struct regb;
struct dlog;

struct peer {
	uid_t	uid;
	gid_t	gid;
	pid_t	pid;
};

struct service;

int	service_open(struct config *cfg, struct service **ret_svc,
	    struct xerr *e);
void	service_close(struct service *s);

/*
 * Answer one request.  Fills `reply` with the reply payload and returns
 * 0, or -code with `e` set (the caller sends the message).  Checks the
 * peer against the ACL for the message type.
 */
int	service_handle(struct service *s, const struct peer *p, uint16_t type,
	    const uint8_t *payload, uint32_t len, struct xw_buf *reply,
	    struct xerr *e);

/* The socket actually listened on (systemd's may differ from the
 * config's), for `status`. */
void	service_set_socket(struct service *s, const char *path);

/* Reopen the decision log, read the config's [params] and [policy] again
 * and load the policy set; the old set keeps serving on failure. */
int	service_reload(struct service *s, struct xerr *e);

/* Write what is still only in memory (key usage, queued decision-log
 * lines); for a clean shutdown. */
void	service_flush(struct service *s);

/* Counters, for `xtcmkctl stats`. */
void	service_count_conn(struct service *s, int delta, int refused);
/* A connection answered BUSY because the agent ran out of descriptors. */
void	service_count_nofile(struct service *s);

/* Internals shared by service.c, admin.c, keys.c and keys_admin.c. */
struct config	*service_config(struct service *s);
struct registry	*service_registry(struct service *s);
struct regb	*service_backend(struct service *s);	/* backend.h */
struct dlog	*service_dlog(struct service *s);
struct keys	*service_keys(struct service *s);
/* Changes whenever the registry or the policy set changes. */
unsigned long long service_generation(struct service *s);
/* Run decision `kind` (enum policy_kind) on `input` through a policy
 * worker, verdict-checked and logged with `customer`. */
int	service_policy(struct service *s, int kind, const char *customer,
	    json_t *input, json_t **ret_output, char *ret_hash,
	    struct xerr *e);
/* Decisions of an onboarded customer as JSON (the same content as a
 * DECIDE reply). */
int	service_decide_json(struct service *s, const char *customer,
	    json_t **ret_decision, struct xerr *e);
/*
 * Onboard: partition decision + registry transaction + other decisions.
 * Repeating an add with the same tenant, key URI, vault_auth, kinds and
 * labels returns the existing assignment with "already": true; a repeat
 * that differs is XTCMK_E_EXISTS naming the fields.
 */
int	service_onboard(struct service *s, json_t *customer,
	    json_t **ret_result, struct xerr *e);
/* customer.move, checked by the partition policy's P.move first (actor
 * NULL: only the check). */
int	service_move(struct service *s, const char *id, const char *to,
	    const char *reason, const char *actor, struct xerr *e);

#define IMPORT_BATCH_MAX	1000	/* customers per customer.import */

/*
 * customer.import: onboard `customers` (an array of customer.add
 * objects) in order in one registry transaction; *ret_reply is
 * {"results": [{"customer", "status": "assigned"|"already"|"refused",
 * "app", "code", "error"}...], "assigned", "already", "refused"}, made
 * after the commit.
 */
int	service_import(struct service *s, json_t *customers,
	    json_t **ret_reply, struct xerr *e);
json_t	*service_stats(struct service *s);
/* The key state of `customer` was found revoked or active: tell host
 * processes' fast path before the change is acknowledged; `changed`
 * (revoked, enabled again, new version) gives it a new revocation
 * generation even if the state reads the same. */
void	service_key_state(struct service *s, const char *customer,
	    int revoked, int changed);
/* One version of `customer`'s key was found refused: host processes'
 * cached keys of the customer are not served again (a new revocation
 * generation), after the agent refuses the version. */
void	service_customer_bump(struct service *s, const char *customer);
json_t	*service_status(struct service *s);

/* admin.c: one JSON command; its reply as JSON (*ret_reply) or, for a
 * list page, as the JSON text to send (*ret_text, malloc'd). */
int	admin_handle(struct service *s, const struct peer *p, json_t *req,
	    json_t **ret_reply, char **ret_text, struct xerr *e);

#endif
