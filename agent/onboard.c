/*
 * onboard.c - onboarding customers: one (customer.add) or a batch
 * (customer.import).  The partition policy's P.scope is resolved in the
 * registry, P.decide picks the application, the role and versioning
 * policies must accept the customer, and the registry records it with a
 * bounded record of why.  A repeat of an onboarded customer with the
 * same fields is answered from the registry ("already").  The policy
 * workers, the decision log and the counters are service.c's, reached
 * through service_int.h.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "scope.h"
#include "service.h"
#include "service_int.h"
#include "validate.h"
#include "wire.h"

/* An import's reply is one frame's JSON field. */
#define IMPORT_REPLY_MAX	(XW_PAYLOAD_MAX - XW_FIELD_HDR - 256)
#define IMPORT_ERROR_SHORT	96	/* an error, when the reply is tight */

/* Refuse bad input before any policy sees it; fill the defaults. */
static int
onboard_check(json_t *customer, const char **ret_id, struct xerr *e)
{
	const char *id, *t, *u;
	struct key_uri ku;
	int rc;

	if (!json_is_object(customer))
		return xerr_set(e, XTCMK_E_INVAL, "a customer is a JSON object "
		    "with id, tenant, key_uri and vault_auth");
	id = json_string_value(json_object_get(customer, "id"));
	if (id == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "customer needs an \"id\"");
	if ((rc = valid_customer_id(id, e)) < 0)
		return rc;
	t = json_string_value(json_object_get(customer, "tenant"));
	u = json_string_value(json_object_get(customer, "key_uri"));
	if (t == NULL || u == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "customer '%s' needs a "
		    "\"tenant\" (GUID) and a \"key_uri\"", id);
	if ((rc = valid_guid(t, "tenant", e)) < 0 ||
	    (rc = key_uri_parse(u, &ku, e)) < 0)
		return rc;
	if (json_object_get(customer, "kinds") == NULL)
		json_object_set_new(customer, "kinds", json_pack("[s]", "host"));
	if (json_object_get(customer, "labels") == NULL)
		json_object_set_new(customer, "labels", json_object());
	*ret_id = id;
	return 0;
}

/* Same members, in any order (kinds are a set). */
static int
same_set(json_t *a, json_t *b)
{
	size_t i, j;

	if (!json_is_array(a) || !json_is_array(b) ||
	    json_array_size(a) != json_array_size(b))
		return 0;
	for (i = 0; i < json_array_size(a); i++) {
		for (j = 0; j < json_array_size(b); j++)
			if (json_equal(json_array_get(a, i),
			    json_array_get(b, j)))
				break;
		if (j == json_array_size(b))
			return 0;
	}
	return 1;
}

static void
add_word(char *buf, size_t len, const char *w)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, " %s", w);
}

/*
 * Is the repeated `c` the customer `old` on record?  The names of the
 * fields that differ go to `diff` (empty when the same).
 */
static void
customer_diff(json_t *old, json_t *c, char *diff, size_t len)
{
	const char *t0 = json_string_value(json_object_get(old, "tenant"));
	const char *t1 = json_string_value(json_object_get(c, "tenant"));
	const char *va = json_string_value(json_object_get(c, "vault_auth"));
	char uri[KEY_URI_MAX + 1] = "";
	struct key_uri ku;
	struct xerr e;

	diff[0] = '\0';
	if (key_uri_parse(json_string_value(json_object_get(c, "key_uri")),
	    &ku, &e) == 0)
		key_uri_format(&ku, 1, uri, sizeof(uri));
	if (t0 == NULL || t1 == NULL || strcasecmp(t0, t1) != 0)
		add_word(diff, len, "tenant");
	if (strcmp(uri, json_string_value(json_object_get(old, "key_uri")) ?
	    json_string_value(json_object_get(old, "key_uri")) : "") != 0)
		add_word(diff, len, "key_uri");
	if (va == NULL || !json_equal(json_object_get(old, "vault_auth"),
	    json_object_get(c, "vault_auth")))
		add_word(diff, len, "vault_auth");
	if (!same_set(json_object_get(old, "kinds"),
	    json_object_get(c, "kinds")))
		add_word(diff, len, "kinds");
	if (!json_equal(json_object_get(old, "labels"),
	    json_object_get(c, "labels")))
		add_word(diff, len, "labels");
}

/*
 * What an import works out ahead for a customer, on a second thread and
 * a second policy worker while the customers before it are decided: the
 * parts that depend on the customer alone, P.scope and the versioning
 * decision.  The registry-dependent parts (the scope's resolution,
 * P.decide, the role decision, the writes) stay in order on the
 * importing thread.
 */
struct ahead {
	int		 ready;		/* worked out; else do it in line */
	struct svc_ahead w;		/* what was worked out */
};

/* Forget what was worked out ahead (a retry decides in line). */
static void
ahead_clear(struct ahead *a)
{
	if (a == NULL)
		return;
	if (a->w.has)
		scope_clear(&a->w.sc);
	a->w.has = 0;
	a->ready = 0;
}

/*
 * The input of the partition decision.  A policy with P.scope gets what
 * its selectors pick (bounded by their limits); one without gets every
 * application and workload, which is refused past SCOPE_FULL_MAX of
 * either.  *ret_set_hash: the set whose scope was used.
 */
static int
partition_input(struct service *s, json_t *cv, struct ahead *a,
    json_t **ret_input, char *ret_set_hash, struct xerr *e)
{
	struct registry *reg = service_registry(s);
	struct scope sc;
	json_t *base, *apps = NULL, *wls = NULL;
	long long na, nw;
	int rc, has;

	if ((base = json_pack("{s:O, s:i}", "customer", cv, "limit",
	    REG_FIC_MAX)) == NULL) {
		ahead_clear(a);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	if (a != NULL && a->ready) {
		/* Worked out ahead (the scope is the customer's alone). */
		rc = a->w.scope_rc;
		has = a->w.has;
		sc = a->w.sc;
		a->w.has = 0;
		snprintf(ret_set_hash, 65, "%s", a->w.hash);
		if (rc < 0)
			*e = a->w.scope_err;
		ahead_clear(a);
	} else
		rc = svc_scope(s, cv, &sc, &has, ret_set_hash, e);
	if (rc < 0)
		goto out;
	if (has) {
		rc = reg_scope_resolve(reg, &sc, base, ret_input, e);
		scope_clear(&sc);
		if (rc == 0)
			svc_count(s, SVC_SCOPED);
		goto out;
	}
	if ((rc = reg_scope_counts(reg, &na, &nw, e)) < 0)
		goto out;
	if (na > SCOPE_FULL_MAX || nw > SCOPE_FULL_MAX) {
		rc = xerr_set(e, XTCMK_E_POLICY, "policy '%s' (partition.lua) "
		    "has no P.scope, and the registry holds more than %d "
		    "applications or workloads: add P.scope(customer, params) "
		    "returning the applications and workloads the policy "
		    "chooses among (see xtcmk-policy(7), SCOPE)",
		    svc_partition_name(s), SCOPE_FULL_MAX);
		goto out;
	}
	if ((rc = reg_app_list(reg, &apps, e)) < 0 ||
	    (rc = reg_workload_list(reg, &wls, e)) < 0)
		goto out;
	json_object_set(base, "apps", apps);
	json_object_set(base, "workloads", wls);
	*ret_input = json_incref(base);
	svc_count(s, SVC_UNSCOPED);
out:
	json_decref(base);
	json_decref(apps);
	json_decref(wls);
	return rc;
}

/*
 * An import's pipeline (SQLite registry, policy workers): while the
 * importing thread checks and records customer i, a leased worker
 * already decides the customers after it (up to PIPE_DEPTH, so the
 * worker never waits for the next), when nothing recorded before them
 * can change what their decisions read.  A customer records at most the
 * application it was decided to (made or joined, with its FICs); a
 * decision's input holds the applications its P.scope selects (numbered
 * under a stem, or named) and workloads, which an onboarding never
 * changes.  So customer j goes ahead when its scope was worked out
 * ahead, i's application (decided, not recorded yet) is neither
 * numbered under j's stem nor one of j's names, and the scope of every
 * customer still out before j can only make applications j does not
 * read (a selector by labels alone could make or select any
 * application: never ahead).  When i's answer comes, the decisions
 * still out are checked against i's application again (a policy may
 * name an application outside its scope); on a clash they are dropped
 * and decided in line.  The results equal deciding one after the other
 * (test import_equiv).  While decisions are out the lease is held;
 * whatever else needs a worker releases it first (pipe_release), so
 * nothing waits for a worker the importing thread holds.
 */
/* Five out: a worker that loses its CPU for a while (to the work ahead,
 * the decision log's writer, the host) still has the next decisions
 * ready when it gets it back (two out: the importing thread waited for
 * the worker at every other customer). */
#define PIPE_DEPTH	5

struct pipe_out {
	size_t		 idx;		/* the customer */
	json_t		*input;		/* its partition input */
	char		 scope_hash[65];
	int		 ahead_ver;	/* its versioning decided ahead */
	struct scope	 sc;		/* its scope (a copy) */
	struct svc_sent	 x;
};

struct pipe {
	struct service	*s;
	struct lookahead *look;
	json_t		*customers;
	struct svc_lease lease;
	int		 on;		/* pipelining allowed */
	struct pipe_out	 out[PIPE_DEPTH];	/* in order from head */
	unsigned	 head, count;
};

static int lookahead_ready(struct lookahead *, size_t);
static struct ahead *lookahead_get(struct lookahead *, size_t);

static void
out_clear(struct pipe_out *o)
{
	json_decref(o->input);
	o->input = NULL;
	scope_clear(&o->sc);
}

/* Drop every decision out (received and discarded, unlogged). */
static void
pipe_drop(struct pipe *p)
{
	struct pipe_out *o;

	for (; p->count > 0; p->count--) {
		o = &p->out[p->head];
		p->head = (p->head + 1) % PIPE_DEPTH;
		svc_onboard_recv(p->s, &p->lease, &o->x);
		svc_onboard_drop(&o->x);
		out_clear(o);
	}
}

/* Drop what is out and give the worker back. */
static void
pipe_release(struct pipe *p)
{
	if (p == NULL)
		return;
	pipe_drop(p);
	svc_lease_put(p->s, &p->lease);
}

/* The decision out for customer i, first in line, or NULL. */
static struct pipe_out *
pipe_front(struct pipe *p, size_t i)
{
	if (p == NULL || p->count == 0 || p->out[p->head].idx != i)
		return NULL;
	return &p->out[p->head];
}

/* Whether recording application `app` leaves scope `sc`'s input as it
 * is (see struct pipe). */
static int
pipe_independent(const char *app, const struct scope *sc)
{
	int k;

	if (app == NULL)
		return 1;
	for (k = 0; k < sc->nnames; k++)
		if (strcmp(sc->names[k], app) == 0)
			return 0;
	if (!sc->apps.present)
		return 1;
	return sc->apps.stem != NULL && scope_number(app, sc->apps.stem) < 0;
}

/* Whether what a customer of scope `w` may record leaves scope `r`'s
 * input as it is: w names its applications or numbers them under a
 * stem that r's selector cannot take for its own. */
static int
pipe_disjoint(const struct scope *w, const struct scope *r)
{
	int k;

	for (k = 0; k < w->nnames; k++)
		if (!pipe_independent(w->names[k], r))
			return 0;
	if (!w->apps.present)
		return 1;
	if (w->apps.stem == NULL)
		return 0;
	for (k = 0; k < r->nnames; k++)
		if (scope_number(r->names[k], w->apps.stem) >= 0)
			return 0;
	if (!r->apps.present)
		return 1;
	return r->apps.stem != NULL &&
	    strncmp(w->apps.stem, r->apps.stem, strlen(w->apps.stem)) != 0 &&
	    strncmp(r->apps.stem, w->apps.stem, strlen(r->apps.stem)) != 0;
}

/* Send customer j's decisions ahead if they may go (see struct pipe);
 * `app`: customer i's application (decided, not recorded). */
static int
pipe_send(struct pipe *p, size_t j, const char *app)
{
	struct pipe_out *o;
	struct ahead *a;
	struct xerr e;
	const char *id;
	json_t *c, *cv;
	unsigned k;
	int rc;

	if (j >= json_array_size(p->customers) ||
	    !lookahead_ready(p->look, j))
		return -1;
	a = lookahead_get(p->look, j);
	c = json_array_get(p->customers, j);
	if (a == NULL || a->ready != 1 || a->w.scope_rc < 0 || !a->w.has ||
	    strcmp(a->w.hash, policy_set_hash(p->lease.set)) != 0 ||
	    !pipe_independent(app, &a->w.sc))
		return -1;
	for (k = 0; k < p->count; k++)
		if (!pipe_disjoint(&p->out[(p->head + k) % PIPE_DEPTH].sc,
		    &a->w.sc))
			return -1;
	if (onboard_check(c, &id, &e) < 0 ||
	    (cv = svc_customer_view(c)) == NULL)
		return -1;
	o = &p->out[(p->head + p->count) % PIPE_DEPTH];
	memset(o, 0, sizeof(*o));
	o->sc = a->w.sc;			/* partition_input clears a's */
	json_incref(o->sc.doc);
	rc = partition_input(p->s, cv, a, &o->input, o->scope_hash, &e);
	json_decref(cv);
	if (rc < 0) {
		out_clear(o);
		return -1;	/* decided in line, which says why */
	}
	o->ahead_ver = a->w.ver_ready;
	if (svc_onboard_send(p->s, &p->lease, c, o->input, !o->ahead_ver,
	    &o->x, &e) < 0) {
		out_clear(o);
		return -1;
	}
	o->idx = j;
	p->count++;
	return 0;
}

/*
 * Customer i was decided to `app` (NULL: nothing to record) and is not
 * recorded yet: check the decisions out against it (dropped on a
 * clash), then send more ahead while they may go.
 */
static void
pipe_next(struct pipe *p, size_t i, const char *app)
{
	size_t j;
	unsigned k;

	if (p == NULL || !p->on || !p->lease.held)
		return;
	/* A worker that died (killed past a limit, crashed) answers the
	 * calls out with errors; send no more to it.  The lease goes back
	 * at the next customer and the worker is replaced then. */
	if (!svc_lease_usable(p->s, &p->lease)) {
		pipe_drop(p);
		return;
	}
	for (k = 0; k < p->count; k++)
		if (!pipe_independent(app, &p->out[(p->head + k) %
		    PIPE_DEPTH].sc)) {
			pipe_drop(p);
			return;
		}
	j = p->count > 0 ? p->out[(p->head + p->count - 1) % PIPE_DEPTH].idx +
	    1 : i + 1;
	while (p->count < PIPE_DEPTH && pipe_send(p, j, app) == 0)
		j++;
}

/* The partition's app in a decision as it came (unchecked), or NULL. */
static const char *
sent_app(const struct svc_sent *x)
{
	if (x->req[0].rc < 0)
		return NULL;
	return json_string_value(json_object_get(x->req[0].output, "app"));
}

/*
 * Onboard one customer (the caller holds onboard_mu): an idempotent
 * repeat returns the existing assignment with "already": true; otherwise
 * scope, partition, role and versioning decisions, then the registry
 * transaction (a savepoint inside an import batch).
 */
static int
onboard_one(struct service *s, json_t *customer, struct ahead *a,
    struct pipe *p, size_t i, json_t **ret_result, struct xerr *e)
{
	long long view = regb_view(service_backend(s));
	json_t *existing = NULL, *input = NULL, *part = NULL;
	json_t *cv = NULL, *why = NULL;
	const char *id = NULL, *appname;
	char hash[65], scope_hash[65], diff[96];
	struct pipe_out *o;
	int rc, tries;

	if ((rc = onboard_check(customer, &id, e)) < 0) {
		ahead_clear(a);
		if (pipe_front(p, i) != NULL)
			pipe_release(p);
		return rc;
	}
	if (reg_customer_get(service_registry(s), id, &existing, NULL) == 0) {
		if (pipe_front(p, i) != NULL)
			pipe_release(p);
		customer_diff(existing, customer, diff, sizeof(diff));
		if (diff[0] != '\0') {
			rc = xerr_set(e, XTCMK_E_EXISTS, "customer '%s' is "
			    "already assigned to application '%s' with a "
			    "different%s; assignments are sticky: use "
			    "`xtcmkctl customer move` to change the "
			    "application, or remove and add the customer", id,
			    json_string_value(json_object_get(existing,
			    "app")), diff);
			goto out;
		}
		svc_count(s, SVC_ALREADY);
		*ret_result = json_pack("{s:s, s:O, s:b, s:O}", "customer", id,
		    "app", json_object_get(existing, "app"), "already", 1,
		    "policy_hash", json_object_get(existing, "policy_hash"));
		rc = 0;
		goto out;
	}
	cv = svc_customer_view(customer);
	/* A reload between scope and decide would pair one set's scope
	 * with another's decision: run both again (bounded).  The role and
	 * versioning policies must accept this customer before anything is
	 * recorded; versioning may have been decided ahead (an import). */
	for (tries = 0; tries < 3; tries++) {
		int ahead_ver = a != NULL && a->w.ver_ready && tries == 0;

		json_decref(input);
		input = NULL;
		if (tries == 0 && (o = pipe_front(p, i)) != NULL) {
			struct svc_sent x;

			/* Sent ahead while the customers before were
			 * recorded. */
			x = o->x;
			input = o->input;
			o->input = NULL;
			snprintf(scope_hash, sizeof(scope_hash), "%s",
			    o->scope_hash);
			ahead_ver = o->ahead_ver;
			out_clear(o);
			p->head = (p->head + 1) % PIPE_DEPTH;
			p->count--;
			svc_count(s, SVC_PIPELINED);
			svc_onboard_recv(s, &p->lease, &x);
			pipe_next(p, i, sent_app(&x));
			rc = svc_onboard_done(s, &p->lease, customer, input,
			    &x, scope_hash, &part, hash, e);
		} else {
			pipe_release(p);
			if ((rc = partition_input(s, cv, tries == 0 ? a : NULL,
			    &input, scope_hash, e)) < 0)
				goto out;
			if (p != NULL && p->on && svc_lease_get(s, &p->lease,
			    e) == 0) {
				struct svc_sent x;

				if ((rc = svc_onboard_send(s, &p->lease,
				    customer, input, !ahead_ver, &x, e)) < 0)
					goto out;
				svc_onboard_recv(s, &p->lease, &x);
				pipe_next(p, i, sent_app(&x));
				rc = svc_onboard_done(s, &p->lease, customer,
				    input, &x, scope_hash, &part, hash, e);
			} else
				rc = svc_decide_onboard(s, customer, input,
				    !ahead_ver, scope_hash, &part, hash, e);
		}
		if (rc < 0)
			goto out;
		if (rc == 0) {
			if (ahead_ver && (rc = a->w.ver_rc) < 0) {
				*e = a->w.ver_err;
				goto out;
			}
			break;
		}
	}
	if (rc != 0) {
		rc = xerr_set(e, XTCMK_E_BUSY, "the policy set was reloaded "
		    "three times while customer '%s' was decided; retry", id);
		goto out;
	}
	appname = json_string_value(json_object_get(part, "app"));
	why = scope_why(input, json_object_get(input, "scope") != NULL);
	if ((rc = regb_onboard(service_backend(s), view, customer, part, why,
	    hash, e)) < 0)
		goto out;
	svc_count(s, SVC_ASSIGNED);
	log_info("customer %s assigned to application %s (policy %.12s)", id,
	    appname, hash);
	*ret_result = json_pack("{s:s, s:s, s:O, s:O?, s:s}", "customer", id,
	    "app", appname, "federate", json_object_get(part, "federate"),
	    "reason", json_object_get(part, "reason"), "policy_hash", hash);
out:
	ahead_clear(a);
	if (rc < 0 && rc != -XTCMK_E_BUSY)
		svc_count(s, SVC_REFUSED);
	json_decref(existing);
	json_decref(cv);
	json_decref(input);
	json_decref(part);
	json_decref(why);
	return rc;
}

/*
 * With the fleet registry another agent may commit first what a decision
 * read: decide again on the fresher mirror (bounded, counted).
 */
static int
onboard_retry(struct service *s, json_t *customer, struct ahead *a,
    json_t **ret_result, struct xerr *e)
{
	int rc, tries;

	for (tries = 0; ; tries++) {
		rc = onboard_one(s, customer, a, NULL, 0, ret_result, e);
		if (rc != -XTCMK_E_BUSY || tries == REGB_RETRY_MAX ||
		    !regb_retry(service_backend(s)))
			break;
	}
	if (rc == -XTCMK_E_BUSY)
		svc_count(s, SVC_REFUSED);
	return rc;
}

int
service_onboard(struct service *s, json_t *customer, json_t **ret_result,
    struct xerr *e)
{
	int rc;

	svc_onboard_lock(s, 1);
	rc = onboard_retry(s, customer, NULL, ret_result, e);
	svc_onboard_lock(s, 0);
	return rc;
}

/*
 * customer.move: the partition policy's P.move must allow it (see
 * xtcmk-policy(7)); then the registry moves the customer in its own
 * transaction, which keeps the FIC and stickiness invariants.  Under the
 * onboarding lock, so no onboarding decides on a half-made move.
 */
int
service_move(struct service *s, const char *id, const char *to,
    const char *reason, const char *actor, struct xerr *e)
{
	struct registry *reg = service_registry(s);
	json_t *c = NULL, *from = NULL, *dest = NULL, *in = NULL, *req = NULL;
	json_t *r = NULL;
	const char *fromname;
	int rc;

	svc_onboard_lock(s, 1);
	if ((rc = reg_customer_get(reg, id, &c, e)) < 0)
		goto out;
	if ((fromname = json_string_value(json_object_get(c, "app"))) ==
	    NULL) {
		rc = xerr_set(e, XTCMK_E_NOT_FOUND, "customer '%s' has no "
		    "application assigned", id);
		goto out;
	}
	if ((rc = reg_app_get(reg, fromname, &from, e)) < 0 ||
	    (rc = reg_app_get(reg, to, &dest, e)) < 0)
		goto out;
	if ((in = json_pack("{s:o, s:O, s:O}", "customer",
	    svc_customer_view(c), "from", from, "to", dest)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	/* actor NULL: the check alone. */
	if ((rc = svc_move_check(s, in, e)) < 0 || actor == NULL)
		goto out;
	if ((req = json_pack("{s:s, s:s, s:s?}", "id", id, "to", to, "reason",
	    reason)) == NULL)
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	else
		rc = regb_write(service_backend(s), "customer.move", req, actor,
		    &r, e);
out:
	svc_onboard_lock(s, 0);
	json_decref(req);
	json_decref(r);
	json_decref(in);
	json_decref(dest);
	json_decref(from);
	json_decref(c);
	return rc;
}

/* Bytes of JSON an import's results take (with the counts, < 100). */
static size_t
reply_size(json_t *results)
{
	char *t = json_dumps(results, JSON_COMPACT);
	size_t n = t != NULL ? strlen(t) + 100 : SIZE_MAX;

	free(t);
	return n;
}

/* Cut the string member `key` of `o` to `max` bytes (with "..."). */
static void
shorten(json_t *o, const char *key, size_t max)
{
	const char *v = json_string_value(json_object_get(o, key));
	char buf[IMPORT_ERROR_SHORT + 4];

	if (v == NULL || strlen(v) <= max || max > IMPORT_ERROR_SHORT)
		return;
	snprintf(buf, sizeof(buf), "%.*s...", (int)max, v);
	json_object_set_new(o, key, json_string(buf));
}

/* An import's tally and its reply's rows, in order. */
struct import_state {
	struct service	*s;
	json_t		*customers;
	json_t		*results;
	int		 assigned, already, refused;
	struct lookahead *ahead;	/* work done ahead, by index */
	size_t		 next;		/* the index expected next */
	struct pipe	*pipe;
};

/* The reply's row of customer `i` (its outcome rc, res or ce). */
static int
import_row(void *arg, size_t i, int rc, json_t *res, const struct xerr *ce)
{
	struct import_state *st = arg;
	const char *id = json_string_value(json_object_get(
	    json_array_get(st->customers, i), "id"));
	json_t *row;

	if (rc == 0) {
		int dup = json_is_true(json_object_get(res, "already"));

		row = json_pack("{s:s, s:s, s:O}", "customer", id,
		    "status", dup ? "already" : "assigned",
		    "app", json_object_get(res, "app"));
		dup ? st->already++ : st->assigned++;
	} else {
		row = json_pack("{s:s?, s:s, s:i, s:s}", "customer", id,
		    "status", "refused", "code", ce->code != 0 ?
		    ce->code : XTCMK_E_INTERNAL, "error", ce->msg);
		st->refused++;
	}
	if (row == NULL || json_array_append_new(st->results, row) < 0)
		return -XTCMK_E_NOMEM;
	return 0;
}

/*
 * The reply must fit one frame, or what was committed could not be
 * reported: shorten the errors, else refuse the whole batch (SQLite
 * then rolls it back).
 */
static int
import_finish(void *arg, struct xerr *e)
{
	struct import_state *st = arg;
	json_t *row;
	size_t i;

	if (reply_size(st->results) <= IMPORT_REPLY_MAX)
		return 0;
	json_array_foreach(st->results, i, row)
		shorten(row, "error", IMPORT_ERROR_SHORT);
	if (reply_size(st->results) <= IMPORT_REPLY_MAX)
		return 0;
	return xerr_set(e, XTCMK_E_TOOBIG, "the results of %zu customers "
	    "would not fit one reply; nothing was imported: send fewer "
	    "customers per request", json_array_size(st->customers));
}


/*
 * The backend's batch (regb_onboard_batch) decides with these.  It
 * decides the customers in order; one decided again (after a lost etcd
 * race) is decided in line, without what was worked out ahead.
 */
static int
import_one(void *arg, json_t *customer, json_t **ret_res, struct xerr *e)
{
	struct import_state *st = arg;
	struct ahead *a = NULL;

	size_t i = st->next;

	if (i >= json_array_size(st->customers) ||
	    json_array_get(st->customers, i) != customer) {
		pipe_release(st->pipe);
		return onboard_one(st->s, customer, NULL, NULL, 0, ret_res, e);
	}
	/* No waiting for the work ahead with a worker held, unless this
	 * customer's decision is out (its work ahead was used then). */
	if (pipe_front(st->pipe, i) == NULL)
		pipe_release(st->pipe);
	a = lookahead_get(st->ahead, i);
	st->next++;
	return onboard_one(st->s, customer, a, st->pipe, i, ret_res, e);
}

static void
import_count(void *arg, int rc, json_t *res, int delta)
{
	struct import_state *st = arg;
	enum svc_counter c = rc < 0 ? SVC_REFUSED : json_is_true(
	    json_object_get(res, "already")) ? SVC_ALREADY : SVC_ASSIGNED;

	if (delta > 0)
		svc_count(st->s, c);
	else if (rc != -XTCMK_E_BUSY)	/* onboard_one counts no race */
		svc_uncount(st->s, c);
}

/*
 * The helper thread of an import: it works out ahead[i] for each
 * customer in turn (see struct ahead) and counts them in `done`; the
 * importing thread waits for customer i's before deciding it.
 */
struct lookahead {
	struct service	*s;
	json_t		*customers;
	struct ahead	*a;
	size_t		 n, done;
	int		 stop, running;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	pthread_t	 thread;
};

/* Customers worked out ahead per batch to a policy worker (their frames,
 * about 700 bytes each, fit POLICYD_PIPELINE_MAX); the first batches of
 * an import are 1, 4 and 16. */
#define AHEAD_CHUNK	32

/* Work out customers [from, to) ahead, in one batch. */
static void
ahead_chunk(struct lookahead *l, size_t from, size_t to)
{
	json_t *cust[AHEAD_CHUNK], *cv[AHEAD_CHUNK];
	struct svc_ahead res[AHEAD_CHUNK];
	size_t idx[AHEAD_CHUNK], i, k, n = 0;
	const char *id;
	struct xerr e;
	json_t *c;

	for (i = from; i < to; i++) {
		c = json_array_get(l->customers, i);
		if (l->a[i].ready == -1) {
			l->a[i].ready = 0;	/* nothing to work out */
			continue;
		}
		/* A customer the check refuses is left to the importing
		 * thread, which reports why. */
		if (onboard_check(c, &id, &e) < 0 ||
		    (cv[n] = svc_customer_view(c)) == NULL)
			continue;
		cust[n] = c;
		idx[n++] = i;
	}
	if (n == 0)
		return;
	svc_ahead_batch(l->s, cust, cv, n, res);
	for (k = 0; k < n; k++) {
		struct ahead *a = &l->a[idx[k]];

		json_decref(cv[k]);
		if (res[k].scope_rc < 0)
			continue;	/* decided in line, which says why */
		a->w = res[k];
		a->ready = 1;
	}
}

static void *
lookahead_main(void *arg)
{
	struct lookahead *l = arg;
	size_t i, to, chunk = 1;

	/* The first customer waits for its chunk: start small. */
	for (i = 0; i < l->n; i = to) {
		pthread_mutex_lock(&l->mu);
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		pthread_mutex_unlock(&l->mu);
		to = i + chunk < l->n ? i + chunk : l->n;
		if ((chunk *= 4) > AHEAD_CHUNK)
			chunk = AHEAD_CHUNK;
		ahead_chunk(l, i, to);
		pthread_mutex_lock(&l->mu);
		l->done = to;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
	}
	pthread_mutex_lock(&l->mu);
	l->done = l->n;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static int
id_cmp(const void *x, const void *y)
{
	const char *a = *(const char *const *)x, *b = *(const char *const *)y;

	return strcmp(a, b);
}

/*
 * Start the helper for `customers`.  Nothing is worked out for a
 * customer that is there already or repeats an id earlier in the batch
 * (its answer is "already" or a refusal, decided in line), nor when the
 * helper cannot start (everything is then decided in line).
 */
static void
lookahead_start(struct lookahead *l, struct service *s, json_t *customers)
{
	const char **ids;
	const char *id;
	size_t i, j, n = json_array_size(customers);
	json_t *c;

	memset(l, 0, sizeof(*l));
	l->s = s;
	l->customers = customers;
	l->n = n;
	if ((l->a = calloc(n, sizeof(*l->a))) == NULL)
		return;
	if ((ids = calloc(n, sizeof(*ids))) == NULL) {
		free(l->a);
		l->a = NULL;
		return;
	}
	json_array_foreach(customers, i, c) {
		id = json_string_value(json_object_get(c, "id"));
		ids[i] = id != NULL ? id : "";
		if (id == NULL || reg_customer_exists(service_registry(s), id,
		    NULL) != 0)
			l->a[i].ready = -1;
	}
	/* An id the batch holds twice: every occurrence in line. */
	qsort(ids, n, sizeof(*ids), id_cmp);
	for (i = 1; i < n; i++)
		if (ids[i][0] != '\0' && strcmp(ids[i], ids[i - 1]) == 0)
			json_array_foreach(customers, j, c) {
				id = json_string_value(json_object_get(c,
				    "id"));
				if (id != NULL && strcmp(id, ids[i]) == 0)
					l->a[j].ready = -1;
			}
	free(ids);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	if (pthread_create(&l->thread, NULL, lookahead_main, l) != 0) {
		pthread_mutex_destroy(&l->mu);
		pthread_cond_destroy(&l->cv);
		free(l->a);
		l->a = NULL;
		return;
	}
	l->running = 1;
}

/* What was worked out for customer i (waiting for it), or NULL. */
static struct ahead *
lookahead_get(struct lookahead *l, size_t i)
{
	if (!l->running)
		return NULL;
	pthread_mutex_lock(&l->mu);
	while (l->done <= i)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
	return &l->a[i];
}

/* Whether customer i's work ahead is done (never waits). */
static int
lookahead_ready(struct lookahead *l, size_t i)
{
	int r;

	if (!l->running)
		return 0;
	pthread_mutex_lock(&l->mu);
	r = l->done > i;
	pthread_mutex_unlock(&l->mu);
	return r;
}

static void
lookahead_stop(struct lookahead *l)
{
	size_t i;

	if (l->running) {
		pthread_mutex_lock(&l->mu);
		l->stop = 1;
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
		pthread_mutex_destroy(&l->mu);
		pthread_cond_destroy(&l->cv);
	}
	if (l->a != NULL)
		for (i = 0; i < l->n; i++)
			ahead_clear(&l->a[i]);
	free(l->a);
	l->a = NULL;
	l->running = 0;
}

/*
 * Bulk onboarding: every customer decided and checked as by
 * service_onboard, in order, inside one registry transaction (each
 * customer a savepoint, so a refusal undoes only its own part and later
 * customers see earlier assignments).  One commit, one fsync; the reply
 * is made only after it, so what it reports as assigned is durable.
 * On the fleet registry, as few etcd transactions as etcd takes
 * (fleet_onboard_batch()), under the same rules.
 */
int
service_import(struct service *s, json_t *customers, json_t **ret_reply,
    struct xerr *e)
{
	struct lookahead ahead;
	struct pipe pipe = { 0 };
	struct import_state st = { s, customers, NULL, 0, 0, 0, &ahead, 0,
	    &pipe };
	const struct regb_batch cb = { import_one, import_count, import_row,
	    import_finish, &st };
	int rc;

	if (!json_is_array(customers) || json_array_size(customers) == 0)
		return xerr_set(e, XTCMK_E_INVAL, "\"customers\" must be a "
		    "non-empty array of customer objects");
	if (json_array_size(customers) > IMPORT_BATCH_MAX)
		return xerr_set(e, XTCMK_E_TOOBIG, "%zu customers in one "
		    "import; at most %d per request: split the file into "
		    "batches", json_array_size(customers), IMPORT_BATCH_MAX);
	if ((st.results = json_array()) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	svc_onboard_lock(s, 1);
	lookahead_start(&ahead, s, customers);
	pipe.s = s;
	pipe.look = &ahead;
	pipe.customers = customers;
	pipe.on = !svc_inprocess(s) &&
	    strcmp(regb_name(service_backend(s)), "sqlite") == 0;
	rc = regb_onboard_batch(service_backend(s), customers, &cb, e);
	pipe_release(&pipe);
	lookahead_stop(&ahead);
	svc_onboard_lock(s, 0);
	svc_count(s, SVC_IMPORTS);
	if (rc < 0) {
		json_decref(st.results);
		return rc;
	}
	*ret_reply = json_pack("{s:o, s:i, s:i, s:i}", "results", st.results,
	    "assigned", st.assigned, "already", st.already, "refused",
	    st.refused);
	return *ret_reply == NULL ? xerr_set(e, XTCMK_E_NOMEM,
	    "out of memory") : 0;
}
