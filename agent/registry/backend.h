/*
 * backend.h - the registry backend interface: every change the agent
 * makes to its registry goes through one of these, chosen by
 * [registry] backend in xtcmk.conf(5):
 *
 *	sqlite	sqlite_backend.c: the agent's own SQLite file (registry.h)
 *		is the registry; each change is one SQLite transaction.
 *	etcd	etcd.c, etcd_write.c, etcd_usage.c (fleet.h): the registry
 *		of a fleet of agents lives in etcd; the SQLite file is this
 *		agent's mirror of it, and each change is an etcd
 *		transaction the mirror applies.
 *
 * Reads never come here: decisions, lists, scopes and checks read the
 * local SQLite registry (registry.h), which is the registry itself or
 * the mirror, so the data plane never waits on a backend.
 */
#ifndef XTCMK_BACKEND_H
#define XTCMK_BACKEND_H

#include <jansson.h>

#include "xerr.h"

#define REGB_RETRY_MAX		16	/* re-decisions after a lost race */

struct config;
struct registry;
struct regb;

/*
 * A bulk onboarding (customer.import), driven by the backend: `one`
 * decides and onboards a customer (through regb_onboard()); `count`
 * un-counts (-1) a decision the backend takes again or replaces by a
 * commit error and counts (+1) the replacement; `done` gets each
 * customer's final outcome in order (res NULL when rc < 0, ce the
 * error; fails only out of memory); `finish` runs once every customer
 * is decided, before SQLite commits (<0 rolls the batch back; with etcd,
 * what committed stays).
 */
struct regb_batch {
	int	(*one)(void *arg, json_t *customer, json_t **ret_res,
		    struct xerr *e);
	void	(*count)(void *arg, int rc, json_t *res, int delta);
	int	(*done)(void *arg, size_t i, int rc, json_t *res,
		    const struct xerr *ce);
	int	(*finish)(void *arg, struct xerr *e);
	void	*arg;
};

/* What a backend implements (see the regb_* functions below). */
struct regb_ops {
	const char	*name;
	long long	(*view)(struct regb *);
	int		(*onboard)(struct regb *, long long view,
			    json_t *customer, json_t *decision, json_t *why,
			    const char *policy_hash, struct xerr *);
	int		(*onboard_batch)(struct regb *, json_t *customers,
			    const struct regb_batch *cb, struct xerr *);
	int		(*write)(struct regb *, const char *cmd, json_t *req,
			    const char *actor, json_t **ret_reply,
			    struct xerr *);
	int		(*import)(struct regb *, json_t *req,
			    json_t **ret_reply, struct xerr *);
	void		(*usage_publish)(struct regb *, json_t *rows);
	int		(*usage_merge)(struct regb *, const char *customer,
			    json_t *usage, struct xerr *);
	int		(*retry)(struct regb *);
	json_t		*(*status)(struct regb *);
	void		(*close)(struct regb *);
};

struct regb {
	const struct regb_ops	*ops;
	struct registry		*reg;	/* the local SQLite registry */
	void			*impl;	/* the backend's own state */
};

/* The implementations' constructors (sqlite_backend.c, etcd.c). */
int	regb_sqlite_open(const struct config *cfg, struct registry *reg,
	    struct regb **ret_rb, struct xerr *e);
int	regb_etcd_open(const struct config *cfg, struct registry *reg,
	    void (*changed)(void *, const char *), void *arg,
	    struct regb **ret_rb, struct xerr *e);

/*
 * Open the backend cfg names over the local registry `reg` (the agent
 * keeps owning it).  `changed(arg, id)` is called after the backend
 * changed customer `id` behind the agent's back (the etcd mirror), and
 * `changed(arg, NULL)` after each batch of such changes.
 */
int	regb_open(const struct config *cfg, struct registry *reg,
	    void (*changed)(void *, const char *), void *arg,
	    struct regb **ret_rb, struct xerr *e);
void	regb_close(struct regb *rb);
const char *regb_name(struct regb *rb);

/* The revision of the local registry a decision reads (0 for SQLite). */
long long regb_view(struct regb *rb);
/*
 * Record an onboarding decided from the local registry as seen at
 * `view` (see reg_customer_onboard() for the arguments):
 * -XTCMK_E_BUSY when another writer changed what the decision read: the
 * caller asks regb_retry() and decides again, at most REGB_RETRY_MAX
 * times.
 */
int	regb_onboard(struct regb *rb, long long view, json_t *customer,
	    json_t *decision, json_t *why, const char *policy_hash,
	    struct xerr *e);
/* After -XTCMK_E_BUSY: 1 (counted) when deciding again can help, 0 when
 * this backend has no races to lose (SQLite's busy is a locked file). */
int	regb_retry(struct regb *rb);
int	regb_onboard_batch(struct regb *rb, json_t *customers,
	    const struct regb_batch *cb, struct xerr *e);
/*
 * The registry writes of the admin protocol: workload.add|remove,
 * app.add, app.set, fic.add|remove, customer.move|remove, with the
 * request's arguments: 0 with the reply ({"ok": true, ...}), <0, or 1
 * when `cmd` is none of them.
 */
int	regb_write(struct regb *rb, const char *cmd, json_t *req,
	    const char *actor, json_t **ret_reply, struct xerr *e);
/* registry.import: JSON lines of registry.export into this backend. */
int	regb_import(struct regb *rb, json_t *req, json_t **ret_reply,
	    struct xerr *e);
/* Key usage across hosts (etcd; nothing to do for SQLite). */
void	regb_usage_publish(struct regb *rb, json_t *rows);
int	regb_usage_merge(struct regb *rb, const char *customer, json_t *usage,
	    struct xerr *e);
/* {"backend", ...} for `xtcmkctl status`. */
json_t	*regb_status(struct regb *rb);

#endif
