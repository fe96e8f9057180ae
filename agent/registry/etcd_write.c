/*
 * etcd_write.c - the fleet registry's write path (see fleet.h): every
 * registry change as one etcd transaction whose compares make it valid
 * fleet-wide, then a bounded wait until this agent's mirror shows it.
 *
 * A change is computed from the mirror as it was at revision `view`; the
 * transaction compares every key the change read: mod_revision <= view
 * (nobody changed it since) and version > 0 (it still exists), or
 * create_revision == 0 for a key it creates.  Each FIC change and each
 * assignment touches its application's key (and a FIC its workload's),
 * so two agents can never both add the 20th FIC, assign one customer
 * twice, or remove a workload that just got a FIC.  When the compares
 * fail, the caller decides again on a fresher mirror.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fleet.h"
#include "fleet_int.h"
#include "log.h"
#include "registry.h"
#include "validate.h"

static int
nomem(struct xerr *e)
{
	return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
}

/* Compares that `key`, read at `view`, is unchanged and still there. */
static void
cmp_unchanged(json_t *cmp, const char *key, long long view)
{
	json_array_append_new(cmp, etcd_cmp(key, "MOD", "LESS", view + 1));
	json_array_append_new(cmp, etcd_cmp(key, "VERSION", "GREATER", 0));
}

static void
cmp_absent(json_t *cmp, const char *key)
{
	json_array_append_new(cmp, etcd_cmp(key, "CREATE", "EQUAL", 0));
}

static char *
dump(json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

static void
put_json(json_t *ops, const char *key, json_t *v)
{
	char *t = dump(v);

	if (t != NULL)
		json_array_append_new(ops, etcd_put(key, t, 0));
	free(t);
}

/*
 * Commit compares `cmp` and operations `ops` (both consumed).  0 once the
 * mirror shows the change; -XTCMK_E_BUSY when a compare failed (after
 * waiting for the mirror to see what changed); -XTCMK_E_UNAVAILABLE
 * when etcd did not answer.
 */
static int
commit(struct fleet *f, json_t *cmp, json_t *ops, struct xerr *e)
{
	json_t *txn, *fail, *c, *rep = NULL, *r;
	long long rev, maxmod = 0;
	size_t i;
	int rc;

	if ((fail = json_array()) == NULL) {
		json_decref(cmp);
		json_decref(ops);
		return nomem(e);
	}
	json_array_foreach(cmp, i, c)
		json_array_append_new(fail, json_pack("{s:{s:O, s:b}}",
		    "request_range", "key", json_object_get(c, "key"),
		    "keys_only", 1));
	txn = json_pack("{s:o, s:o, s:o}", "compare", cmp, "success", ops,
	    "failure", fail);
	if (txn == NULL)
		return nomem(e);
	rc = etcd_call(f->etcd, "/v3/kv/txn", txn, &rep, e);
	json_decref(txn);
	if (rc < 0) {
		char msg[XERR_MSG_MAX];

		atomic_fetch_add(&f->n_refused, 1);
		fleet_error(f, e->msg);
		snprintf(msg, sizeof(msg), "%s", e->msg);
		if (e->code != XTCMK_E_UNAVAILABLE)
			return xerr_set(e, e->code, "the fleet registry (etcd) "
			    "refused the change: %s", msg);
		return xerr_set(e, XTCMK_E_UNAVAILABLE, "the fleet registry "
		    "(etcd) did not take the change: %s; registry changes need "
		    "a reachable etcd quorum, while decisions and data keys "
		    "go on from this agent's mirror", msg);
	}
	rev = etcd_int(json_object_get(rep, "header"), "revision");
	if (json_is_true(json_object_get(rep, "succeeded"))) {
		json_decref(rep);
		atomic_fetch_add(&f->n_txn, 1);
		if (fleet_wait(f, rev) < 0)
			log_warn("fleet: revision %lld committed; this agent's "
			    "mirror has not applied it within %u ms", rev,
			    f->sync_ms);
		return 0;
	}
	/* Lost a race: wait until the mirror holds what won it. */
	atomic_fetch_add(&f->n_conflict, 1);
	json_array_foreach(json_object_get(rep, "responses"), i, r) {
		json_t *kv;
		size_t j;

		json_array_foreach(json_object_get(json_object_get(r,
		    "response_range"), "kvs"), j, kv)
			if (etcd_int(kv, "mod_revision") > maxmod)
				maxmod = etcd_int(kv, "mod_revision");
	}
	json_decref(rep);
	if (maxmod > 0)
		fleet_wait(f, maxmod);
	return xerr_set(e, XTCMK_E_BUSY, "another agent changed the registry "
	    "at the same time (etcd revision %lld); decide again", rev);
}

/* Run `fn` until it does not lose a race (bounded). */
static int
retry(struct fleet *f, int (*fn)(struct fleet *, long long, void *,
    struct xerr *), void *arg, struct xerr *e)
{
	int i, rc = 0;

	for (i = 0; i <= FLEET_RETRY_MAX; i++) {
		if ((rc = fn(f, fleet_view(f), arg, e)) != -XTCMK_E_BUSY)
			break;
		atomic_fetch_add(&f->n_retry, 1);
	}
	return rc;
}

/* --- onboarding ----------------------------------------------------------- */

/* The key (base64, as etcd wants it) a put or delete operation writes. */
static const char *
op_key(json_t *op)
{
	json_t *p = json_object_get(op, "request_put");

	if (p == NULL)
		p = json_object_get(op, "request_delete_range");
	return json_string_value(json_object_get(p, "key"));
}

static size_t
op_bytes(json_t *op)
{
	json_t *p = json_object_get(op, "request_put");

	return strlen(op_key(op)) + json_string_length(json_object_get(p,
	    "value"));
}

static int
op_touch(json_t *op)
{
	return json_is_true(json_object_get(json_object_get(op,
	    "request_put"), "ignore_value"));
}

/*
 * Queue one onboarding (its compares `cmp` and operations `ops`, both
 * consumed) into the import's pending transaction.  A key an earlier
 * customer of the batch compared keeps that compare: it states the key
 * as it was at the batch's view, which is what this customer read too
 * (plus the batch's own changes, committed in the same transaction).
 * A key written already keeps its write, unless that was a touch and
 * this one is the value.  The change also goes to the mirror inside
 * the batch's rolled-back transaction, so the next decision sees it
 * and SQLite checks the invariants on it.  -XTCMK_E_BUSY with
 * bt->full set when the transaction cannot take it.
 */
static int
txn_queue(struct fleet_txn *bt, struct registry *reg, json_t *cmp,
    json_t *ops, json_t *customer, json_t *decision, json_t *why,
    const char *policy_hash, struct xerr *e)
{
	json_t *c, *op, *mark = NULL;
	size_t i, ncmp = 0, nops = 0, bytes = 0;
	const char *k;
	int rc;

	bt->queued = 0;
	json_array_foreach(cmp, i, c)
		ncmp += json_object_get(bt->cmpkeys, json_string_value(
		    json_object_get(c, "key"))) == NULL;
	json_array_foreach(ops, i, op) {
		nops += json_object_get(bt->opkeys, op_key(op)) == NULL;
		bytes += op_bytes(op);
	}
	if (json_array_size(bt->cmp) + ncmp > FLEET_TXN_OPS_MAX ||
	    json_array_size(bt->ops) + nops > FLEET_TXN_OPS_MAX ||
	    bt->bytes + bytes > FLEET_TXN_BYTES_MAX) {
		bt->full = 1;
		rc = xerr_set(e, XTCMK_E_BUSY, "the import's etcd "
		    "transaction is full");
		goto out;
	}
	if ((rc = reg_customer_onboard(reg, customer, decision, why,
	    policy_hash, e)) < 0)
		goto out;
	if ((mark = json_integer(bt->members)) == NULL) {
		rc = nomem(e);
		goto out;
	}
	json_array_foreach(cmp, i, c) {
		json_t *by;

		k = json_string_value(json_object_get(c, "key"));
		by = json_object_get(bt->cmpkeys, k);
		if (by != NULL && !json_equal(by, mark))
			continue;	/* an earlier customer's compare */
		json_object_set(bt->cmpkeys, k, mark);
		json_array_append(bt->cmp, c);
	}
	json_array_foreach(ops, i, op) {
		json_t *at;

		k = op_key(op);
		if ((at = json_object_get(bt->opkeys, k)) == NULL) {
			json_object_set_new(bt->opkeys, k,
			    json_integer((json_int_t)json_array_size(bt->ops)));
			json_array_append(bt->ops, op);
		} else if (!op_touch(op) && op_touch(json_array_get(bt->ops,
		    (size_t)json_integer_value(at))))
			json_array_set(bt->ops, (size_t)json_integer_value(at),
			    op);
	}
	bt->bytes += bytes;
	bt->members++;
	bt->queued = 1;
out:
	json_decref(mark);
	json_decref(cmp);
	json_decref(ops);
	return rc;
}

/* A random number of milliseconds below `max` (not for secrets). */
static unsigned
random_ms(unsigned max)
{
	static _Thread_local unsigned long long x;
	struct timespec ts;

	if (x == 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = (unsigned long long)ts.tv_nsec * 2654435761u + 1;
	}
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return max > 0 ? (unsigned)(x % max) : 0;
}

/* One customer's outcome while its transaction is pending. */
struct outcome {
	int		 rc;
	int		 queued;	/* its change rides the transaction */
	json_t		*res;
	struct xerr	 e;
};

static void
outcomes_drop(struct outcome *o, size_t from, size_t to)
{
	for (; from < to; from++) {
		json_decref(o[from].res);
		o[from].res = NULL;
	}
}

/*
 * Decide customers [pos, ..) into one transaction, at most `cap` of
 * them, on the mirror inside a SQLite transaction rolled back at the
 * end: *ret_end is where the next transaction starts.
 */
static int
batch_decide(struct fleet *f, struct registry *reg, json_t *customers,
    size_t pos, int cap, const struct regb_batch *cb, struct outcome *o,
    struct fleet_txn *bt, size_t *ret_end, struct xerr *e)
{
	size_t i, n = json_array_size(customers);
	int rc;

	memset(bt, 0, sizeof(*bt));
	bt->cmp = json_array();
	bt->ops = json_array();
	bt->cmpkeys = json_object();
	bt->opkeys = json_object();
	if (bt->cmp == NULL || bt->ops == NULL || bt->cmpkeys == NULL ||
	    bt->opkeys == NULL)
		return nomem(e);
	if ((rc = reg_batch_begin(reg, e)) < 0)
		return rc;
	/* The mirror cannot apply while the batch holds the registry:
	 * this view is at most what the decisions read. */
	bt->view = fleet_view(f);
	f->batch = bt;
	for (i = pos; i < n && bt->members < cap; i++) {
		xerr_clear(&o[i].e);
		o[i].res = NULL;
		o[i].rc = cb->one(cb->arg, json_array_get(customers, i),
		    &o[i].res, &o[i].e);
		o[i].queued = bt->queued;
		bt->queued = 0;
		if (o[i].rc == -XTCMK_E_BUSY && bt->full)
			break;
	}
	f->batch = NULL;
	reg_batch_end(reg, 0, NULL);
	if (i == pos)
		return xerr_set(e, XTCMK_E_INTERNAL, "customer %zu does not fit "
		    "one etcd transaction", pos + 1);
	*ret_end = i;
	return 0;
}

static void
txn_clear(struct fleet_txn *bt)
{
	json_decref(bt->cmp);
	json_decref(bt->ops);
	json_decref(bt->cmpkeys);
	json_decref(bt->opkeys);
	memset(bt, 0, sizeof(*bt));
}

/*
 * After a lost race, let the winner go on for a random while (up to
 * FLEET_IMPORT_BACKOFF_MS << lost, at most 8x): agents that all decide
 * again at once only lose again.
 */
static void
backoff(int lost)
{
	struct timespec ts;
	unsigned ms;

	ms = (unsigned)random_ms((unsigned)FLEET_IMPORT_BACKOFF_MS <<
	    (lost < 3 ? lost : 3));
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
}

int
fleet_onboard_batch(struct fleet *f, struct registry *reg, json_t *customers,
    const struct regb_batch *cb, struct xerr *e)
{
	size_t i, n = json_array_size(customers), pos = 0, end = 0, q;
	struct outcome *o;
	struct fleet_txn bt;
	struct xerr ce;
	int rc = 0, cap = FLEET_TXN_OPS_MAX, lost = 0;

	if ((o = calloc(n ? n : 1, sizeof(*o))) == NULL)
		return nomem(e);
	while (pos < n) {
		if ((rc = batch_decide(f, reg, customers, pos, cap, cb, o, &bt,
		    &end, e)) < 0) {
			txn_clear(&bt);
			break;
		}
		for (q = 0, i = pos; i < end; i++)
			q += o[i].queued;
		xerr_clear(&ce);
		rc = 0;
		if (q > 0) {
			rc = commit(f, bt.cmp, bt.ops, &ce);
			bt.cmp = bt.ops = NULL;
		}
		txn_clear(&bt);
		if (rc == -XTCMK_E_BUSY && lost < FLEET_RETRY_MAX) {
			/* Lost a race: decide them all again, fewer at once
			 * while the registry is contended. */
			for (i = pos; i < end; i++)
				cb->count(cb->arg, o[i].rc, o[i].res, -1);
			outcomes_drop(o, pos, end);
			atomic_fetch_add(&f->n_import_redecided, end - pos);
			atomic_fetch_add(&f->n_retry, end - pos);
			cap = (int)(end - pos) / 2 > 1 ? (int)(end - pos) / 2 : 1;
			lost++;
			backoff(lost);
			continue;
		}
		/* Committed, or etcd refused: then each customer the
		 * transaction carried is refused with its error, and so
		 * is an "already" there, which may be a repeat of one of
		 * those. */
		for (i = pos; i < end && rc < 0; i++) {
			if (o[i].rc < 0)
				continue;
			cb->count(cb->arg, o[i].rc, o[i].res, -1);
			json_decref(o[i].res);
			o[i].res = NULL;
			o[i].rc = rc;
			o[i].e = ce;
			cb->count(cb->arg, o[i].rc, NULL, 1);
		}
		if (rc == 0 && q > 0) {
			atomic_fetch_add(&f->n_import_txn, 1);
			atomic_fetch_add(&f->n_import_customers, q);
		}
		rc = 0;
		for (i = pos; i < end && rc == 0; i++)
			rc = cb->done(cb->arg, i, o[i].rc, o[i].rc == 0 ?
			    o[i].res : NULL, &o[i].e);
		outcomes_drop(o, pos, end);
		if (rc < 0) {
			rc = nomem(e);
			break;
		}
		pos = end;
		lost = 0;
		cap = cap * 2 < FLEET_TXN_OPS_MAX ? cap * 2 : FLEET_TXN_OPS_MAX;
	}
	outcomes_drop(o, 0, n);
	free(o);
	if (rc == 0)
		rc = cb->finish(cb->arg, e);
	return rc;
}

int
fleet_onboard(struct fleet *f, struct registry *reg, long long view,
    json_t *customer, json_t *decision, json_t *why,
    const char *policy_hash, struct xerr *e)
{
	json_t *app = NULL, *fics, *fed, *v, *cmp = NULL, *ops = NULL;
	json_t *newf = NULL, *rec = NULL, *wl = NULL;
	const char *id, *appname;
	char k[ETCD_KEY_MAX];
	size_t i, j;
	int rc, exists;

	if ((rc = reg_customer_validate(customer, e)) < 0)
		return rc;
	if (f->batch != NULL)
		view = f->batch->view;
	id = json_string_value(json_object_get(customer, "id"));
	appname = json_string_value(json_object_get(decision, "app"));
	fed = json_object_get(decision, "federate");
	if (appname == NULL || valid_name(appname, "decision: application "
	    "name", e) < 0 || (fed != NULL && !json_is_array(fed)))
		return xerr_set(e, XTCMK_E_INVAL, "decision must be an object "
		    "with \"app\" (a name) and \"federate\" (workload names)");
	if ((rc = reg_app_get(reg, appname, &app, e)) < 0 &&
	    e->code != XTCMK_E_NOT_FOUND)
		return rc;
	exists = rc == 0;
	fics = json_object_get(app, "fics");
	cmp = json_array();
	ops = json_array();
	newf = json_array();
	json_array_foreach(fed, i, v) {
		int have = 0;

		if (!json_is_string(v) || valid_name(json_string_value(v),
		    "decision: workload name", e) < 0) {
			rc = -XTCMK_E_INVAL;
			goto out;
		}
		json_array_foreach(fics, j, wl)
			have |= json_equal(wl, v);
		json_array_foreach(newf, j, wl)
			have |= json_equal(wl, v);
		if (have)
			continue;
		json_decref(wl = NULL);
		if ((rc = reg_workload_get(reg, json_string_value(v), &wl,
		    e)) < 0)
			goto out;
		json_decref(wl);
		json_array_append(newf, v);
	}
	if (json_array_size(fics) + json_array_size(newf) > REG_FIC_MAX) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "application '%s' would hold "
		    "%zu federated credentials; Entra allows at most %d per "
		    "application", appname, json_array_size(fics) +
		    json_array_size(newf), REG_FIC_MAX);
		goto out;
	}
	if (json_array_size(fics) + json_array_size(newf) == 0) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "application '%s' would "
		    "have no federated credential, so no host could serve the "
		    "customer: federate at least one workload", appname);
		goto out;
	}
	fleet_key(f, k, sizeof(k), "c/%s", id);
	cmp_absent(cmp, k);
	rec = json_pack("{s:O, s:s, s:O, s:O?, s:s, s:I}", "customer",
	    customer, "app", appname, "decision", decision, "why", why,
	    "policy_hash", policy_hash, "time", (json_int_t)time(NULL));
	if (rec == NULL) {
		rc = nomem(e);
		goto out;
	}
	put_json(ops, k, rec);
	fleet_key(f, k, sizeof(k), "a/%s", appname);
	if (exists) {
		cmp_unchanged(cmp, k, view);
		json_array_append_new(ops, etcd_touch(k));
	} else {
		json_t *a = json_pack("{s:s, s:O?}", "name", appname, "labels",
		    json_object_get(decision, "app_labels"));

		cmp_absent(cmp, k);
		put_json(ops, k, a);
		json_decref(a);
	}
	json_array_foreach(newf, i, v) {
		fleet_key(f, k, sizeof(k), "w/%s", json_string_value(v));
		cmp_unchanged(cmp, k, view);
		json_array_append_new(ops, etcd_touch(k));
		fleet_key(f, k, sizeof(k), "f/%s/%s", appname,
		    json_string_value(v));
		json_array_append_new(ops, etcd_put(k, "1", 0));
	}
	if (f->batch != NULL)
		rc = txn_queue(f->batch, reg, cmp, ops, customer, decision,
		    why, policy_hash, e);
	else
		rc = commit(f, cmp, ops, e);
	cmp = ops = NULL;
out:
	json_decref(cmp);
	json_decref(ops);
	json_decref(newf);
	json_decref(rec);
	json_decref(app);
	return rc;
}

/* --- admin writes ------------------------------------------------------------ */

struct op {
	const char	*cmd;
	json_t		*req;
	const char	*actor;
	struct registry	*reg;
};

static int
labels_ok(json_t *labels, struct xerr *e)
{
	const char *k;
	json_t *v;

	if (labels == NULL || json_is_null(labels))
		return 0;
	if (!json_is_object(labels) || json_object_size(labels) > LABELS_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "labels must be an object of "
		    "at most %d string values", LABELS_MAX);
	json_object_foreach(labels, k, v)
		if (!json_is_string(v) || valid_label(k, json_string_value(v),
		    e) < 0)
			return json_is_string(v) ? -XTCMK_E_INVAL : xerr_set(e,
			    XTCMK_E_INVAL, "label '%s' must be a string", k);
	return 0;
}

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int
need(const char *v, const char *what, struct xerr *e)
{
	return v != NULL ? 0 : xerr_set(e, XTCMK_E_INVAL, "missing string "
	    "argument \"%s\"", what);
}

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 'a' - 'A';
}

static int
workload_add(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	json_t *wl = json_object_get(op->req, "workload"), *v, *cmp, *ops;
	const char *name = str(wl, "name"), *rid = str(wl, "resource_id");
	char k[ETCD_KEY_MAX], cid[37], pid[37];
	int rc;

	(void)view;
	if (!json_is_object(wl))
		return xerr_set(e, XTCMK_E_INVAL, "workload must be a JSON "
		    "object with name, client_id and principal_id");
	if ((rc = need(name, "workload name", e)) < 0 ||
	    (rc = valid_name(name, "workload name", e)) < 0 ||
	    (rc = valid_guid(str(wl, "client_id"), "workload client_id",
	    e)) < 0 || (rc = valid_guid(str(wl, "principal_id"),
	    "workload principal_id", e)) < 0 ||
	    (rid != NULL && (rc = valid_uami_resource_id(rid, e)) < 0) ||
	    (rc = labels_ok(json_object_get(wl, "labels"), e)) < 0)
		return rc;
	snprintf(cid, sizeof(cid), "%s", str(wl, "client_id"));
	snprintf(pid, sizeof(pid), "%s", str(wl, "principal_id"));
	lower(cid);
	lower(pid);
	v = json_pack("{s:s, s:s, s:s, s:s?, s:O?}", "name", name,
	    "client_id", cid, "principal_id", pid, "resource_id", rid,
	    "labels", json_object_get(wl, "labels"));
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "w/%s", name);
	cmp_absent(cmp, k);
	put_json(ops, k, v);
	fleet_key(f, k, sizeof(k), "wp/%s", pid);
	cmp_absent(cmp, k);
	json_array_append_new(ops, etcd_put(k, name, 0));
	json_decref(v);
	if ((rc = commit(f, cmp, ops, e)) == -XTCMK_E_BUSY) {
		/* Both keys are created only together: which one exists? */
		if (reg_workload_get(op->reg, name, &v, NULL) == 0) {
			json_decref(v);
			return xerr_set(e, XTCMK_E_EXISTS, "workload '%s' "
			    "exists already; remove it first to change it",
			    name);
		}
		return xerr_set(e, XTCMK_E_EXISTS, "another workload has "
		    "principal id %s; each identity is registered once", pid);
	}
	return rc;
}

static int
workload_remove(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	const char *name = str(op->req, "name");
	json_t *wl = NULL, *cmp, *ops;
	char k[ETCD_KEY_MAX];
	int rc, n;

	if ((rc = need(name, "name", e)) < 0 ||
	    (rc = reg_workload_get(op->reg, name, &wl, e)) < 0)
		return rc;
	if ((n = reg_workload_fic_count(op->reg, name, e)) != 0) {
		json_decref(wl);
		return n < 0 ? n : xerr_set(e, XTCMK_E_CONFLICT, "workload "
		    "'%s' holds federated credentials on %d application(s): "
		    "remove those first", name, n);
	}
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "w/%s", name);
	cmp_unchanged(cmp, k, view);
	json_array_append_new(ops, etcd_del(k));
	fleet_key(f, k, sizeof(k), "wp/%s", str(wl, "principal_id"));
	json_array_append_new(ops, etcd_del(k));
	json_decref(wl);
	return commit(f, cmp, ops, e);
}

static int
app_add(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	json_t *app = json_object_get(op->req, "app"), *v, *cmp, *ops;
	const char *name = str(app, "name"), *cid = str(app, "client_id");
	char k[ETCD_KEY_MAX], lc[37] = "";
	int rc;

	(void)view;
	if (!json_is_object(app))
		return xerr_set(e, XTCMK_E_INVAL, "application must be a JSON "
		    "object with a name");
	if ((rc = need(name, "application name", e)) < 0 ||
	    (rc = valid_name(name, "application name", e)) < 0 ||
	    (cid != NULL && (rc = valid_guid(cid, "application client_id",
	    e)) < 0) || (rc = labels_ok(json_object_get(app, "labels"),
	    e)) < 0)
		return rc;
	if (cid != NULL) {
		snprintf(lc, sizeof(lc), "%s", cid);
		lower(lc);
	}
	v = json_pack("{s:s, s:s?, s:O?}", "name", name, "client_id",
	    cid != NULL ? lc : NULL, "labels", json_object_get(app, "labels"));
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "a/%s", name);
	cmp_absent(cmp, k);
	put_json(ops, k, v);
	json_decref(v);
	if (cid != NULL) {
		fleet_key(f, k, sizeof(k), "ac/%s", lc);
		cmp_absent(cmp, k);
		json_array_append_new(ops, etcd_put(k, name, 0));
	}
	if ((rc = commit(f, cmp, ops, e)) == -XTCMK_E_BUSY)
		return xerr_set(e, XTCMK_E_EXISTS, "application '%s' or "
		    "client id %s exists already", name, cid ? lc : "(none)");
	return rc;
}

static int
app_set(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	const char *name = str(op->req, "name"), *cid = str(op->req,
	    "client_id"), *old;
	json_t *app = NULL, *v, *cmp, *ops;
	char k[ETCD_KEY_MAX], lc[37];
	int rc;

	if ((rc = need(name, "name", e)) < 0 ||
	    (rc = need(cid, "client_id", e)) < 0 ||
	    (rc = valid_guid(cid, "application client_id", e)) < 0 ||
	    (rc = reg_app_get(op->reg, name, &app, e)) < 0)
		return rc;
	snprintf(lc, sizeof(lc), "%s", cid);
	lower(lc);
	old = str(app, "client_id");
	if (old != NULL && strcasecmp(old, lc) == 0) {
		json_decref(app);
		return 0;
	}
	v = json_pack("{s:s, s:s, s:O?}", "name", name, "client_id", lc,
	    "labels", json_object_get(app, "labels"));
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "a/%s", name);
	cmp_unchanged(cmp, k, view);
	put_json(ops, k, v);
	json_decref(v);
	fleet_key(f, k, sizeof(k), "ac/%s", lc);
	cmp_absent(cmp, k);
	json_array_append_new(ops, etcd_put(k, name, 0));
	if (old != NULL) {
		fleet_key(f, k, sizeof(k), "ac/%s", old);
		json_array_append_new(ops, etcd_del(k));
	}
	json_decref(app);
	return commit(f, cmp, ops, e);
}

static int
fic_change(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	const char *app = str(op->req, "app"), *wl = str(op->req, "workload");
	int add = strcmp(op->cmd, "fic.add") == 0, rc, n;
	json_t *a = NULL, *w = NULL, *cmp, *ops;
	char k[ETCD_KEY_MAX];

	if ((rc = need(app, "app", e)) < 0 || (rc = need(wl, "workload",
	    e)) < 0 || (rc = reg_app_get(op->reg, app, &a, e)) < 0)
		return rc;
	if ((rc = reg_workload_get(op->reg, wl, &w, e)) < 0)
		goto out;
	json_decref(w);
	if ((rc = reg_fic_exists(op->reg, app, wl, e)) < 0)
		goto out;
	n = (int)json_integer_value(json_object_get(a, "fic_count"));
	if (add && rc == 1) {
		rc = 0;		/* there already */
		goto out;
	}
	if (!add && rc == 0) {
		rc = xerr_set(e, XTCMK_E_NOT_FOUND, "application '%s' has no "
		    "federated credential for workload '%s'", app, wl);
		goto out;
	}
	if (add && n + 1 > REG_FIC_MAX) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "application '%s' holds %d "
		    "federated credentials; Entra allows at most %d", app, n,
		    REG_FIC_MAX);
		goto out;
	}
	if (!add && n == 1 && json_integer_value(json_object_get(a,
	    "customers")) > 0) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "application '%s' serves "
		    "customers and this is its last federated credential: "
		    "no host could serve them", app);
		goto out;
	}
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "a/%s", app);
	cmp_unchanged(cmp, k, view);
	json_array_append_new(ops, etcd_touch(k));
	fleet_key(f, k, sizeof(k), "w/%s", wl);
	cmp_unchanged(cmp, k, view);
	json_array_append_new(ops, etcd_touch(k));
	fleet_key(f, k, sizeof(k), "f/%s/%s", app, wl);
	json_array_append_new(ops, add ? etcd_put(k, "1", 0) : etcd_del(k));
	rc = commit(f, cmp, ops, e);
out:
	json_decref(a);
	return rc;
}

/* The customer's record in etcd and its mod_revision. */
static int
customer_record(struct fleet *f, const char *id, json_t **ret_rec,
    long long *ret_mod, struct xerr *e)
{
	json_t *rep = NULL, *kv;
	char k[ETCD_KEY_MAX], *val = NULL;
	int rc;

	fleet_key(f, k, sizeof(k), "c/%s", id);
	if ((rc = etcd_range(f->etcd, k, NULL, 0, 1, &rep, NULL, e)) < 0)
		return rc;
	kv = json_array_get(json_object_get(rep, "kvs"), 0);
	if (kv == NULL) {
		json_decref(rep);
		return xerr_set(e, XTCMK_E_NOT_FOUND, "no customer '%s' (see "
		    "`xtcmkctl customer list`)", id);
	}
	*ret_mod = etcd_int(kv, "mod_revision");
	rc = etcd_unb64(json_object_get(kv, "value"), &val, NULL);
	json_decref(rep);
	if (rc < 0 || (*ret_rec = json_loads(val, 0, NULL)) == NULL)
		rc = xerr_set(e, XTCMK_E_PROTOCOL, "etcd: customer record %s "
		    "is not JSON", k);
	free(val);
	return rc;
}

static int
customer_move(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	const char *id = str(op->req, "id"), *to = str(op->req, "to"), *from;
	json_t *rec = NULL, *a = NULL, *cmp, *ops;
	char k[ETCD_KEY_MAX];
	long long mod;
	int rc;

	if ((rc = need(id, "id", e)) < 0 || (rc = need(to, "to", e)) < 0 ||
	    (rc = reg_app_get(op->reg, to, &a, e)) < 0)
		return rc;
	if (json_integer_value(json_object_get(a, "fic_count")) == 0) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "application '%s' has no "
		    "federated credential, so no host could serve customer "
		    "'%s': federate a workload first", to, id);
		goto out;
	}
	if ((rc = customer_record(f, id, &rec, &mod, e)) < 0)
		goto out;
	from = str(rec, "app");
	if (from != NULL && strcmp(from, to) == 0) {
		rc = xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' is already on "
		    "application '%s'", id, to);
		goto out;
	}
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "c/%s", id);
	json_array_append_new(cmp, etcd_cmp(k, "MOD", "EQUAL", mod));
	json_object_set_new(rec, "move", json_pack("{s:s?, s:s, s:s?, s:s, "
	    "s:I}", "from", from, "to", to, "reason", str(op->req, "reason"),
	    "actor", op->actor, "time", (json_int_t)time(NULL)));
	json_object_set_new(rec, "app", json_string(to));
	put_json(ops, k, rec);
	fleet_key(f, k, sizeof(k), "a/%s", to);
	cmp_unchanged(cmp, k, view);
	json_array_append_new(ops, etcd_touch(k));
	if (from != NULL) {
		fleet_key(f, k, sizeof(k), "a/%s", from);
		json_array_append_new(ops, etcd_touch(k));
	}
	rc = commit(f, cmp, ops, e);
out:
	json_decref(rec);
	json_decref(a);
	return rc;
}

static int
customer_remove(struct fleet *f, long long view, void *arg, struct xerr *e)
{
	struct op *op = arg;
	const char *id = str(op->req, "id"), *app;
	json_t *rec = NULL, *cmp, *ops, *note;
	char k[ETCD_KEY_MAX];
	long long mod;
	int rc;

	(void)view;
	if ((rc = need(id, "id", e)) < 0 ||
	    (rc = customer_record(f, id, &rec, &mod, e)) < 0)
		return rc;
	app = str(rec, "app");
	cmp = json_array();
	ops = json_array();
	fleet_key(f, k, sizeof(k), "c/%s", id);
	json_array_append_new(cmp, etcd_cmp(k, "MOD", "EQUAL", mod));
	json_array_append_new(ops, etcd_del(k));
	if (app != NULL) {
		fleet_key(f, k, sizeof(k), "a/%s", app);
		json_array_append_new(ops, etcd_touch(k));
	}
	note = json_pack("{s:s, s:I}", "actor", op->actor, "time",
	    (json_int_t)time(NULL));
	fleet_key(f, k, sizeof(k), "r/%s", id);
	put_json(ops, k, note);
	json_decref(note);
	json_decref(rec);
	return commit(f, cmp, ops, e);
}

static const struct {
	const char	*cmd;
	int		(*fn)(struct fleet *, long long, void *, struct xerr *);
} writes[] = {
	{ "workload.add", workload_add },
	{ "workload.remove", workload_remove },
	{ "app.add", app_add },
	{ "app.set", app_set },
	{ "fic.add", fic_change },
	{ "fic.remove", fic_change },
	{ "customer.move", customer_move },
	{ "customer.remove", customer_remove },
};

int
fleet_admin(struct fleet *f, struct registry *reg, const char *cmd,
    json_t *req, const char *actor, json_t **ret_reply, struct xerr *e)
{
	struct op op = { cmd, req, actor, reg };
	size_t i;
	int rc;

	for (i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		if (strcmp(writes[i].cmd, cmd) == 0)
			break;
	if (i == sizeof(writes) / sizeof(writes[0]))
		return 1;
	if ((rc = retry(f, writes[i].fn, &op, e)) < 0)
		return rc;
	if ((*ret_reply = json_pack("{s:b}", "ok", 1)) == NULL)
		return nomem(e);
	return 0;
}
