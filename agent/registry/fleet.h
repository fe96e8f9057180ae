/*
 * fleet.h - one registry for a fleet of agents, kept in etcd
 * ([registry] backend = etcd in xtcmk.conf(5); xtcmk-fleet(7)).
 *
 * The agent's SQLite registry stays its local mirror: every read
 * (decisions, unwraps, lists, policy scopes) reads SQLite and never waits
 * on etcd.  Writes become etcd transactions whose compares enforce the
 * invariants fleet-wide; a mirror thread watches the prefix from the
 * mirror's revision and applies each change to SQLite through the
 * registry's own functions.  A writer waits until its mirror has applied
 * its transaction (read-your-writes) before it answers.
 *
 * The agent reaches these through the registry backend interface
 * (backend.h, regb_etcd_open() in etcd.c); registry.import and
 * registry.export (io.c) serve both backends.
 */
#ifndef XTCMK_FLEET_H
#define XTCMK_FLEET_H

#include <jansson.h>

#include "backend.h"
#include "xerr.h"

#define FLEET_RETRY_MAX		REGB_RETRY_MAX
#define FLEET_PAGE		500	/* keys per range page in a resync */
#define FLEET_TXN_OPS_MAX	120	/* etcd's --max-txn-ops is 128 */
#define FLEET_IMPORT_BACKOFF_MS	25	/* after an import lost a race */
#define FLEET_TXN_BYTES_MAX	(1024 * 1024)	/* --max-request-bytes 1.5 MiB */
#define FLEET_IMPORT_MAX	1000	/* registry.import lines per request */

struct config;
struct registry;
struct fleet;

/*
 * Start the mirror when cfg says backend = etcd; *ret_fleet is NULL for
 * the SQLite backend.  The mirror calls `changed(arg, id)` after it
 * applied a change to customer `id`, and `changed(arg, NULL)` after each
 * batch of changes, so the agent can refresh what it derived from the
 * registry (the fast path's published decisions).
 */
int	fleet_open(const struct config *cfg, struct registry *reg,
	    void (*changed)(void *, const char *), void *arg,
	    struct fleet **ret_fleet, struct xerr *e);
void	fleet_close(struct fleet *f);

/* The mirror's applied revision: take it before reading the mirror for a
 * decision, hand it to the commit (0 without a fleet). */
long long fleet_view(struct fleet *f);

/*
 * Commit an onboarding decided from the mirror as seen at `view`:
 * -XTCMK_E_BUSY when another agent changed what the decision read (the
 * caller decides again, at most FLEET_RETRY_MAX times); other errors as
 * reg_customer_onboard().  Inside fleet_onboard_batch(), queued instead.
 */
int	fleet_onboard(struct fleet *f, struct registry *reg, long long view,
	    json_t *customer, json_t *decision, json_t *why,
	    const char *policy_hash, struct xerr *e);
/*
 * customer.import on the fleet registry (regb_onboard_batch() of the etcd
 * backend): decide the customers in order,
 * each seeing the earlier ones, and commit them in as few etcd
 * transactions as FLEET_TXN_OPS_MAX and FLEET_TXN_BYTES_MAX allow, with
 * the compares of fleet_onboard().  `one` decides a customer as
 * customer.add does and calls fleet_onboard(), which inside a batch
 * queues the change (and applies it to the mirror in a write
 * transaction rolled back before the commit, so the next customer's
 * policy sees it) instead of committing.  A transaction that loses a
 * race is decided again whole on the fresher mirror, with half as many
 * customers (bounded, counted); nothing it carried is reported before
 * it commits.  The callbacks are backend.h's; `finish` runs after the
 * last commit.
 */
int	fleet_onboard_batch(struct fleet *f, struct registry *reg,
	    json_t *customers, const struct regb_batch *cb, struct xerr *e);

/* Count a re-decision after a lost race (for status). */
void	fleet_count_retry(struct fleet *f);

/*
 * The registry writes of the admin protocol (workload.add|remove, app.add,
 * app.set, fic.add|remove, customer.move|remove) as etcd transactions.
 * Returns 1 when `cmd` is not one of them (the caller goes on), else 0
 * with *ret_reply or <0.
 */
int	fleet_admin(struct fleet *f, struct registry *reg, const char *cmd,
	    json_t *req, const char *actor, json_t **ret_reply, struct xerr *e);

/*
 * registry.export: one page of JSON lines (workloads, applications with
 * their FICs, customers with their assignment) from the local registry
 * or mirror; registry.import: lines into etcd (batched transactions) or
 * SQLite.  Both backends, same format.
 */
int	fleet_export(struct registry *reg, json_t *req, json_t **ret_reply,
	    struct xerr *e);
int	fleet_import(struct fleet *f, struct registry *reg, json_t *req,
	    json_t **ret_reply, struct xerr *e);

/*
 * Key usage across the fleet: queue the customers of freshly recorded
 * usage rows for publishing (never blocks on etcd), and add the other
 * hosts' published rows to this host's `usage` of `customer` (a "hosts"
 * count per version).  Both do nothing without a fleet.
 */
void	fleet_usage_publish(struct fleet *f, json_t *rows);
int	fleet_usage_merge(struct fleet *f, const char *customer,
	    json_t *usage, struct xerr *e);

/* {"backend", "endpoints", "prefix", "revision", "etcd_revision", "lag",
 * "last_error", counters...}: asks etcd for its revision (bounded). */
json_t	*fleet_status(struct fleet *f);

#endif
