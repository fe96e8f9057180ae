/*
 * backend.c - the registry backend interface (see backend.h): the
 * choice of the backend by configuration and the calls through its
 * operations.  No backend's code is here.
 */
#include <string.h>

#include "backend.h"
#include "conf.h"

int
regb_open(const struct config *cfg, struct registry *reg,
    void (*changed)(void *, const char *), void *arg, struct regb **ret_rb,
    struct xerr *e)
{
	const char *b = cfg->registry_backend;

	if (b == NULL || strcmp(b, "sqlite") == 0)
		return regb_sqlite_open(cfg, reg, ret_rb, e);
	if (strcmp(b, "etcd") == 0)
		return regb_etcd_open(cfg, reg, changed, arg, ret_rb, e);
	return xerr_set(e, XTCMK_E_INVAL, "[registry] backend = %s: use "
	    "sqlite or etcd", b);
}

void
regb_close(struct regb *rb)
{
	if (rb != NULL)
		rb->ops->close(rb);
}

const char *
regb_name(struct regb *rb)
{
	return rb->ops->name;
}

long long
regb_view(struct regb *rb)
{
	return rb->ops->view(rb);
}

int
regb_onboard(struct regb *rb, long long view, json_t *customer,
    json_t *decision, json_t *why, const char *policy_hash, struct xerr *e)
{
	return rb->ops->onboard(rb, view, customer, decision, why, policy_hash,
	    e);
}

int
regb_retry(struct regb *rb)
{
	return rb->ops->retry(rb);
}

int
regb_onboard_batch(struct regb *rb, json_t *customers,
    const struct regb_batch *cb, struct xerr *e)
{
	return rb->ops->onboard_batch(rb, customers, cb, e);
}

int
regb_write(struct regb *rb, const char *cmd, json_t *req, const char *actor,
    json_t **ret_reply, struct xerr *e)
{
	return rb->ops->write(rb, cmd, req, actor, ret_reply, e);
}

int
regb_import(struct regb *rb, json_t *req, json_t **ret_reply, struct xerr *e)
{
	return rb->ops->import(rb, req, ret_reply, e);
}

void
regb_usage_publish(struct regb *rb, json_t *rows)
{
	rb->ops->usage_publish(rb, rows);
}

int
regb_usage_merge(struct regb *rb, const char *customer, json_t *usage,
    struct xerr *e)
{
	return rb->ops->usage_merge(rb, customer, usage, e);
}

json_t *
regb_status(struct regb *rb)
{
	return rb->ops->status(rb);
}
