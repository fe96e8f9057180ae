/*
 * sqlite_backend.c - the SQLite registry backend (see backend.h): the
 * agent's own SQLite file is the registry, and every change is one of
 * its transactions (registry.h), an import one transaction with a
 * savepoint per customer.  The single-host default.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "fleet.h"
#include "registry.h"

static long long
sq_view(struct regb *rb)
{
	(void)rb;
	return 0;
}

static int
sq_onboard(struct regb *rb, long long view, json_t *customer,
    json_t *decision, json_t *why, const char *policy_hash, struct xerr *e)
{
	(void)view;
	return reg_customer_onboard(rb->reg, customer, decision, why,
	    policy_hash, e);
}

/*
 * Every customer in order inside one write transaction (each a
 * savepoint: a refusal undoes only its own part and later customers
 * see earlier ones); one commit, one fsync, after `finish` accepted.
 */
static int
sq_onboard_batch(struct regb *rb, json_t *customers,
    const struct regb_batch *cb, struct xerr *e)
{
	json_t *res, *c;
	struct xerr ce;
	size_t i;
	int rc, brc;

	if ((rc = reg_batch_begin(rb->reg, e)) < 0)
		return rc;
	json_array_foreach(customers, i, c) {
		res = NULL;
		xerr_clear(&ce);
		rc = cb->one(cb->arg, c, &res, &ce);
		rc = cb->done(cb->arg, i, rc, rc == 0 ? res : NULL, &ce);
		json_decref(res);
		if (rc < 0) {
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			break;
		}
	}
	if (rc == 0)
		rc = cb->finish(cb->arg, e);
	brc = reg_batch_end(rb->reg, rc == 0, rc == 0 ? e : NULL);
	return rc < 0 ? rc : brc;
}

static const char *
arg(json_t *req, const char *key, int obj, json_t **ret_v, struct xerr *e)
{
	json_t *v = json_object_get(req, key);

	if (obj ? !json_is_object(v) : !json_is_string(v)) {
		xerr_set(e, XTCMK_E_INVAL, "missing %s argument \"%s\"",
		    obj ? "object" : "string", key);
		return NULL;
	}
	if (ret_v != NULL)
		*ret_v = v;
	return obj ? key : json_string_value(v);
}

static int
sq_write(struct regb *rb, const char *cmd, json_t *req, const char *actor,
    json_t **ret_reply, struct xerr *e)
{
	struct registry *reg = rb->reg;
	const char *a1 = NULL, *a2 = NULL;
	json_t *o = NULL;
	int rc = -XTCMK_E_INVAL, had = 0;

	if (strcmp(cmd, "workload.add") == 0) {
		if (arg(req, "workload", 1, &o, e) != NULL)
			rc = reg_workload_add(reg, o, e);
	} else if (strcmp(cmd, "workload.remove") == 0) {
		if ((a1 = arg(req, "name", 0, NULL, e)) != NULL)
			rc = reg_workload_remove(reg, a1, e);
	} else if (strcmp(cmd, "app.add") == 0) {
		if (arg(req, "app", 1, &o, e) != NULL)
			rc = reg_app_add(reg, o, e);
	} else if (strcmp(cmd, "app.set") == 0) {
		if ((a1 = arg(req, "name", 0, NULL, e)) != NULL &&
		    (a2 = arg(req, "client_id", 0, NULL, e)) != NULL)
			rc = reg_app_set_client_id(reg, a1, a2, e);
	} else if (strcmp(cmd, "fic.add") == 0 ||
	    strcmp(cmd, "fic.remove") == 0) {
		/* An add of an existing FIC changes nothing: say so. */
		if ((a1 = arg(req, "app", 0, NULL, e)) != NULL &&
		    (a2 = arg(req, "workload", 0, NULL, e)) != NULL &&
		    (cmd[4] != 'a' || (rc = had = reg_fic_exists(reg, a1, a2,
		    e)) >= 0))
			rc = cmd[4] == 'a' ? reg_fic_add(reg, a1, a2, e) :
			    reg_fic_remove(reg, a1, a2, e);
		if (rc == 0)
			*ret_reply = json_pack("{s:b, s:b}", "ok", 1,
			    "changed", cmd[4] != 'a' || had == 0);
		return rc;
	} else if (strcmp(cmd, "customer.move") == 0) {
		if ((a1 = arg(req, "id", 0, NULL, e)) != NULL &&
		    (a2 = arg(req, "to", 0, NULL, e)) != NULL)
			rc = reg_customer_move(reg, a1, a2, json_string_value(
			    json_object_get(req, "reason")), actor, e);
	} else if (strcmp(cmd, "customer.remove") == 0) {
		if ((a1 = arg(req, "id", 0, NULL, e)) != NULL)
			rc = reg_customer_remove(reg, a1, actor, e);
	} else
		return 1;
	if (rc == 0)
		*ret_reply = json_pack("{s:b}", "ok", 1);
	return rc;
}

static int
sq_import(struct regb *rb, json_t *req, json_t **ret_reply, struct xerr *e)
{
	return fleet_import(NULL, rb->reg, req, ret_reply, e);
}

static void
sq_usage_publish(struct regb *rb, json_t *rows)
{
	(void)rb, (void)rows;	/* one host: its own usage rows say it */
}

static int
sq_usage_merge(struct regb *rb, const char *customer, json_t *usage,
    struct xerr *e)
{
	(void)rb, (void)customer, (void)usage, (void)e;
	return 0;
}

static int
sq_retry(struct regb *rb)
{
	(void)rb;	/* SQLite serialises writers: no race to lose */
	return 0;
}

static json_t *
sq_status(struct regb *rb)
{
	(void)rb;
	return json_pack("{s:s}", "backend", "sqlite");
}

static void
sq_close(struct regb *rb)
{
	free(rb);
}

static const struct regb_ops sqlite_ops = {
	"sqlite", sq_view, sq_onboard, sq_onboard_batch, sq_write, sq_import,
	sq_usage_publish, sq_usage_merge, sq_retry, sq_status, sq_close
};

int
regb_sqlite_open(const struct config *cfg, struct registry *reg,
    struct regb **ret_rb, struct xerr *e)
{
	struct regb *rb;

	(void)cfg;
	if ((rb = calloc(1, sizeof(*rb))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	rb->ops = &sqlite_ops;
	rb->reg = reg;
	*ret_rb = rb;
	return 0;
}
