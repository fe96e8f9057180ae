/*
 * registry.h - the durable registry: workload identities, applications,
 * federated identity credentials (FICs), customers and assignments.
 *
 * SQLite in WAL mode with synchronous=FULL, so every acknowledged change
 * survives a crash.  The invariants are enforced inside the write
 * transaction whatever a policy or an admin asks:
 *	- at most REG_FIC_MAX FICs per application;
 *	- a customer has at most one application (its assignment);
 *	- assignments are sticky: only reg_customer_move() changes one, and it
 *	  leaves a row in the moves log.
 *
 * Objects cross this interface as jansson values (see the field lists
 * below); callers own what they get back (json_decref).  All functions are
 * safe to call from several threads: one connection behind a mutex.
 */
#ifndef XTCMK_REGISTRY_H
#define XTCMK_REGISTRY_H

#include <jansson.h>

#include "xerr.h"

#define REG_FIC_MAX		20	/* Entra: federated credentials per app */
#define REG_SCHEMA_VERSION	2
#define REG_KINDS_MAX		8

struct registry;

/* Open or create `path` (mode 0600), run migrations up to
 * REG_SCHEMA_VERSION.  Refuses a file from a newer schema. */
int	reg_open(const char *path, struct registry **ret_reg, struct xerr *e);
void	reg_close(struct registry *r);

/*
 * Workload: {"name", "client_id", "principal_id", "resource_id"?,
 *            "labels": {k: v}}
 */
int	reg_workload_add(struct registry *r, json_t *wl, struct xerr *e);
int	reg_workload_remove(struct registry *r, const char *name,
	    struct xerr *e);	/* refused while it holds FICs */
int	reg_workload_get(struct registry *r, const char *name,
	    json_t **ret_wl, struct xerr *e);
int	reg_workload_list(struct registry *r, json_t **ret_array,
	    struct xerr *e);

/*
 * Application: {"name", "client_id"? (GUID, null until registered),
 *   "labels": {}, "created": unix}
 * Read back with "fics": [workload names, sorted], "fic_count",
 *   "customers": count.
 */
int	reg_app_add(struct registry *r, json_t *app, struct xerr *e);
int	reg_app_set_client_id(struct registry *r, const char *name,
	    const char *client_id, struct xerr *e);
int	reg_app_get(struct registry *r, const char *name, json_t **ret_app,
	    struct xerr *e);
int	reg_app_list(struct registry *r, json_t **ret_array, struct xerr *e);

/* FIC: application `app` trusts workload `workload`.  Adding an existing
 * FIC is a no-op returning 0; the 21st is refused with XTCMK_E_CONFLICT. */
int	reg_fic_add(struct registry *r, const char *app, const char *workload,
	    struct xerr *e);
/* Refused (XTCMK_E_CONFLICT) if it would leave the app serving customers
 * with no FIC at all. */
int	reg_fic_remove(struct registry *r, const char *app,
	    const char *workload, struct xerr *e);

/*
 * Customer: {"id", "tenant", "key_uri", "vault_auth": "rbac"|"access-policy",
 *   "kinds": ["host"|"storage"|"cosmosdb"|"netapp", ...], "labels": {}}
 * Read back with "app" (null if unassigned), "assigned_at", "policy_hash",
 * "created".
 */
int	reg_customer_get(struct registry *r, const char *id,
	    json_t **ret_customer, struct xerr *e);
int	reg_customer_list(struct registry *r, json_t **ret_array,
	    struct xerr *e);

/*
 * Onboard a new customer in one transaction: insert the customer, create
 * the application if `decision.app` does not exist yet (with
 * `decision.app_labels`), add a FIC for each workload in
 * `decision.federate` that does not have one, check the 20 limit, and
 * record the assignment with `inputs`, `decision` and `policy_hash`.
 * Nothing is written if any step fails.  A customer that exists already is
 * XTCMK_E_EXISTS (assignments are sticky).
 * decision: {"app": name, "app_labels": {}?, "federate": [workload...]}
 */
int	reg_customer_onboard(struct registry *r, json_t *customer,
	    json_t *decision, json_t *inputs, const char *policy_hash,
	    struct xerr *e);
/* Check a customer object as reg_customer_onboard() would, writing
 * nothing (for writers that commit elsewhere, see fleet.h). */
int	reg_customer_validate(json_t *customer, struct xerr *e);
/* Explicit move to an existing application; logged with reason and actor. */
int	reg_customer_move(struct registry *r, const char *id,
	    const char *to_app, const char *reason, const char *actor,
	    struct xerr *e);
/* Remove a customer and its assignment (logged). */
int	reg_customer_remove(struct registry *r, const char *id,
	    const char *actor, struct xerr *e);
/* The stored assignment record: {"customer", "app", "inputs",
 * "outputs", "policy_hash", "time"}; moves: [{"from","to","reason",
 * "actor","time"}]. */
int	reg_assignment_get(struct registry *r, const char *id,
	    json_t **ret_assignment, struct xerr *e);
/* The audit log of moves and removals, oldest first, for one customer
 * (also removed ones) or all when `id` is NULL: [{"customer", "op":
 * "move"|"remove", "from", "to", "reason", "actor", "time"}]. */
int	reg_moves_list(struct registry *r, const char *id, json_t **ret_array,
	    struct xerr *e);

/* Does `workload` hold a FIC on `app`? 1 yes, 0 no, <0 error. */
int	reg_fic_exists(struct registry *r, const char *app,
	    const char *workload, struct xerr *e);

/*
 * Consistency check of the invariants and of SQLite's integrity:
 * {"ok": bool, "problems": [text...], "counts": {...}}.
 */
int	reg_check(struct registry *r, json_t **ret_report, struct xerr *e);

/*
 * Key usage per (customer, version): add counted wraps/unwraps from `rows`
 * ([{customer, version, wraps, unwraps, first, last}]), and read a
 * customer's rows [{version, wraps, unwraps, first, last}] oldest first.
 * Usage does not bump the generation.
 */
int	reg_usage_add(struct registry *r, json_t *rows, struct xerr *e);
int	reg_usage_get(struct registry *r, const char *customer,
	    json_t **ret_array, struct xerr *e);

/* Monotonic counter bumped by every committed change (for caches). */
unsigned long long reg_generation(struct registry *r);

#endif
