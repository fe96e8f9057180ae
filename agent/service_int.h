/*
 * service_int.h - private to service.c and onboard.c: what onboarding
 * needs from the request dispatch (policy workers, decision log,
 * counters, the onboarding lock).  Other subsystems use service.h.
 */
#ifndef XTCMK_SERVICE_INT_H
#define XTCMK_SERVICE_INT_H

#include <jansson.h>

#include "policy.h"
#include "scope.h"
#include "worker.h"
#include "xerr.h"

struct service;

/* Onboarding counters shown by `stats` under "onboarding". */
enum svc_counter {
	SVC_ASSIGNED = 0,
	SVC_ALREADY,
	SVC_REFUSED,
	SVC_SCOPED,
	SVC_UNSCOPED,
	SVC_IMPORTS,
	SVC_PIPELINED,		/* decided while the one before was recorded */
	SVC__COUNT
};

void	svc_count(struct service *s, enum svc_counter c);
/* Whether policies run in the agent (isolation = inprocess). */
int	svc_inprocess(struct service *s);
/* Take back a count of a decision made again (a batch lost a race). */
void	svc_uncount(struct service *s, enum svc_counter c);
/* Take (1) or release (0) the lock that orders onboardings. */
void	svc_onboard_lock(struct service *s, int lock);
/*
 * Run the partition policy's P.scope on a worker with the customer view
 * `cv` and parse it into *ret_scope (*ret_has 1), or *ret_has 0 if the
 * policy has none.  ret_hash (65 bytes) gets the answering set's hash.
 * A failure is logged and counted as a refused partition decision.
 */
int	svc_scope(struct service *s, json_t *cv, struct scope *ret_scope,
	    int *ret_has, char *ret_hash, struct xerr *e);
/*
 * What an import works out ahead for n customers (records customer[i],
 * views cv[i]): P.scope as svc_scope gives it, but a failure is neither
 * logged nor counted (the importing thread runs a failed scope again in
 * line: a worker that dies fails a whole batch), and, when the scope
 * passed and its call did, the versioning decision as
 * svc_decide_versioning does (ver_ready 1).  All go to one policy worker
 * as one batch, so n should be such that their frames fit
 * POLICYD_PIPELINE_MAX.
 */
struct svc_ahead {
	int		 scope_rc, has;
	struct scope	 sc;		/* when has */
	char		 hash[65];	/* the set that answered P.scope */
	struct xerr	 scope_err;
	int		 ver_ready, ver_rc;
	struct xerr	 ver_err;
};
void	svc_ahead_batch(struct service *s, json_t *const *customer,
	    json_t *const *cv, size_t n, struct svc_ahead *ret);
/*
 * Run the partition policy's P.move on a worker with `input` ({customer,
 * from, to}): 0 when the move may go ahead (allowed, or the policy has
 * no move function), XTCMK_E_POLICY naming the policy and its reason
 * when it refuses.  Logged in the decision log as decision "move".
 */
int	svc_move_check(struct service *s, json_t *input, struct xerr *e);
/* The current partition policy's name (thread-local copy). */
const char *svc_partition_name(struct service *s);
/* The parts of a customer record every policy sees. */
json_t	*svc_customer_view(json_t *c);
/* Role and key-versioning decisions for `customer` served by `app`. */
int	svc_decide_rest(struct service *s, json_t *customer, json_t *app,
	    json_t **ret, struct xerr *e);
/* The key-versioning decision alone (*ret may be NULL): it depends on
 * the customer alone, so an import works it out ahead (onboard.c). */
int	svc_decide_versioning(struct service *s, json_t *customer,
	    json_t **ret, struct xerr *e);
/*
 * An onboarding's partition (on `pin`), role and (want_ver) versioning
 * decisions, in one round trip to a policy worker: 0 and *ret_part, <0
 * refused, 1 when the set changed since `scope_hash`'s scope (decide
 * again).  See service.c.
 */
int	svc_decide_onboard(struct service *s, json_t *customer, json_t *pin,
	    int want_ver, const char *scope_hash, json_t **ret_part,
	    char *ret_hash, struct xerr *e);

/*
 * A policy worker held by one thread for a run of calls (an import's
 * pipeline; not with isolation = inprocess): svc_lease_get waits for a
 * free one as every call does, svc_lease_put gives it back.  Nothing
 * that needs another worker may be waited for while one is held.
 */
struct svc_lease {
	unsigned		 idx;
	struct policy_set	*set;
	int			 held;
};
int	svc_lease_get(struct service *s, struct svc_lease *l, struct xerr *e);
void	svc_lease_put(struct service *s, struct svc_lease *l);
/* Whether the leased worker can take more calls (not dead, not worn). */
int	svc_lease_usable(struct service *s, const struct svc_lease *l);
/*
 * svc_decide_onboard in three steps on a leased worker, so the caller
 * works while the worker decides: send; receive (before any other call
 * on the lease); then check and log (svc_onboard_done, as
 * svc_decide_onboard returns) or drop what came (svc_onboard_drop,
 * nothing logged).
 */
struct svc_sent {
	struct pworker_req	 req[3];
	size_t			 n, sent;
	json_t			*in_ver;
};
int	svc_onboard_send(struct service *s, struct svc_lease *l,
	    json_t *customer, json_t *pin, int want_ver, struct svc_sent *x,
	    struct xerr *e);
void	svc_onboard_recv(struct service *s, struct svc_lease *l,
	    struct svc_sent *x);
int	svc_onboard_done(struct service *s, struct svc_lease *l,
	    json_t *customer, json_t *pin, struct svc_sent *x,
	    const char *scope_hash, json_t **ret_part, char *ret_hash,
	    struct xerr *e);
void	svc_onboard_drop(struct svc_sent *x);

#endif
