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
#define REG_SCHEMA_VERSION	3
#define REG_KINDS_MAX		8
#define REG_PAGE_MAX		1000	/* rows per page of a paged list */
#define REG_MOVES_SHOWN		50	/* newest moves in an assignment */

/*
 * Paged lists (reg_*_page): up to `limit` objects (1..REG_PAGE_MAX) whose
 * key sorts after `after` (NULL: from the first), in key order, read with
 * one indexed range query, so a page costs what the page holds whatever
 * the registry holds.  *ret_more is 1 when at least one more object
 * follows the last one returned; the next page starts after that
 * object's key.
 */

struct registry;

/* Open or create `path` (mode 0600), run migrations up to
 * REG_SCHEMA_VERSION.  Refuses a file from a newer schema. */
int	reg_open(const char *path, struct registry **ret_reg, struct xerr *e);
/* The SQL of migration n (1..REG_SCHEMA_VERSION), for tests. */
const char *reg_migration_sql(int n);
void	reg_close(struct registry *r);

/*
 * Workload: {"name", "client_id", "principal_id", "resource_id"?,
 *            "labels": {k: v}}
 */
int	reg_workload_add(struct registry *r, json_t *wl, struct xerr *e);
int	reg_workload_remove(struct registry *r, const char *name,
	    struct xerr *e);	/* refused while it holds FICs */
/* How many applications hold a FIC of workload `name` (one indexed
 * count), or <0. */
int	reg_workload_fic_count(struct registry *r, const char *name,
	    struct xerr *e);
int	reg_workload_get(struct registry *r, const char *name,
	    json_t **ret_wl, struct xerr *e);
int	reg_workload_list(struct registry *r, json_t **ret_array,
	    struct xerr *e);
/* Keyed by "name". */
int	reg_workload_page(struct registry *r, const char *after, int limit,
	    json_t **ret_items, int *ret_more, struct xerr *e);

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
/* Keyed by "name"; three queries per page (apps, their FICs, their
 * customer counts), none per application. */
int	reg_app_page(struct registry *r, const char *after, int limit,
	    json_t **ret_items, int *ret_more, struct xerr *e);

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
/* 1 if customer `id` is in the registry, 0 if not, or an error. */
int	reg_customer_exists(struct registry *r, const char *id,
	    struct xerr *e);
/*
 * A page of customers as JSON text, for customer.list: the rows after
 * `after` (NULL: from the first) in id order, at most `limit`, each as
 * reg_customer_page() would give it in compact JSON, comma-separated,
 * appended to `buf` from *used while they fit `max` bytes (*used moves
 * on).  ret_last (lastlen bytes) gets the id of the last row written,
 * *ret_more whether rows follow it.
 */
int	reg_customer_page_text(struct registry *r, const char *after,
	    int limit, char *buf, size_t max, size_t *used, char *ret_last,
	    size_t lastlen, int *ret_more, struct xerr *e);
int	reg_customer_list(struct registry *r, json_t **ret_array,
	    struct xerr *e);
/* Keyed by "id". */
int	reg_customer_page(struct registry *r, const char *after, int limit,
	    json_t **ret_items, int *ret_more, struct xerr *e);

/*
 * Onboard a new customer in one transaction: insert the customer, create
 * the application if `decision.app` does not exist yet (with
 * `decision.app_labels`), add a FIC for each workload in
 * `decision.federate` that does not have one, check the 20 limit, and
 * record the assignment with `why` (the bounded record of why, at most
 * 4 KiB of JSON, see scope_why()), `decision` and `policy_hash`.
 * Nothing is written if any step fails.  A customer that exists already is
 * XTCMK_E_EXISTS (assignments are sticky).
 * decision: {"app": name, "app_labels": {}?, "federate": [workload...]}
 */
int	reg_customer_onboard(struct registry *r, json_t *customer,
	    json_t *decision, json_t *why, const char *policy_hash,
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
/*
 * The assignment, bounded whatever the policy stored: {"customer", "app",
 * "outputs": {"app", "federate", "reason", "app_labels"?, "why"?},
 * "policy_hash", "time", "moves": [{"from", "to", "reason", "actor",
 * "time"}] (the newest REG_MOVES_SHOWN, oldest first), "moves_total"}.
 * The policy's input document is never returned.
 */
int	reg_assignment_get(struct registry *r, const char *id,
	    json_t **ret_assignment, struct xerr *e);
/* The audit log of moves and removals, oldest first, for one customer
 * (also removed ones) or all when `id` is NULL: [{"customer", "op":
 * "move"|"remove", "from", "to", "reason", "actor", "time"}]. */
int	reg_moves_list(struct registry *r, const char *id, json_t **ret_array,
	    struct xerr *e);
/* The same log paged, keyed by "id" (an integer, the log's order);
 * `after` 0 starts at the oldest entry. */
int	reg_moves_page(struct registry *r, const char *customer,
	    long long after, int limit, json_t **ret_items, int *ret_more,
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

/*
 * A batch: one write transaction held across many calls from this thread
 * (other threads wait), each call's own transaction nesting as a
 * savepoint, so a failed call undoes only its own changes and later
 * calls see earlier ones.  reg_batch_end() commits (one fsync) or, with
 * commit 0, rolls everything back.
 */
int	reg_batch_begin(struct registry *r, struct xerr *e);
int	reg_batch_end(struct registry *r, int commit, struct xerr *e);

/*
 * Partition scopes (scope.h): resolve `sc` into a copy of `input` whose
 * "apps", "workloads" and "scope" are what the selectors pick, through
 * indexed lookups.  reg_scope_counts() counts apps and workloads up to
 * SCOPE_FULL_MAX + 1 (for policies without a scope).
 */
struct scope;
/*
 * The JSON text (a string, a reference) of the "workloads" array of an
 * input reg_scope_resolve made, when that array is a selection it keeps
 * (NULL otherwise): the same text every time the selection is reused.
 */
json_t	*reg_scope_text(struct registry *r, json_t *arr);
int	reg_scope_resolve(struct registry *r, const struct scope *sc,
	    json_t *input, json_t **ret_input, struct xerr *e);
int	reg_scope_counts(struct registry *r, long long *ret_apps,
	    long long *ret_workloads, struct xerr *e);

/* Statements prepared, and reused from the statement cache, so far. */
void	reg_stmt_counts(struct registry *r, unsigned long long *ret_prepared,
	    unsigned long long *ret_reused);

/* Monotonic counter bumped by every committed change (for caches). */
unsigned long long reg_generation(struct registry *r);

#endif
