/*
 * io.c - moving a registry between backends (see fleet.h): export
 * as JSON lines from the registry this agent reads (the SQLite file, or
 * the fleet's mirror), import into etcd in batched transactions or into
 * SQLite.  Lines, in dependency order:
 *	{"kind": "workload", "name", "client_id", "principal_id",
 *	 "resource_id"?, "labels"}
 *	{"kind": "app", "name", "client_id"?, "labels", "fics": [...]}
 *	{"kind": "customer", "customer": {...}, "app", "policy_hash"}
 * Nothing volatile (times, counts) is exported, so two exports of the
 * same registry are byte-identical whatever the backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet.h"
#include "fleet_int.h"
#include "registry.h"
#include "validate.h"

#define EXPORT_PAGE_MAX		100	/* lines per reply */

static json_t *
wl_line(json_t *w)
{
	return json_pack("{s:s, s:O, s:O, s:O, s:O?, s:O}", "kind", "workload",
	    "name", json_object_get(w, "name"),
	    "client_id", json_object_get(w, "client_id"),
	    "principal_id", json_object_get(w, "principal_id"),
	    "resource_id", json_object_get(w, "resource_id"),
	    "labels", json_object_get(w, "labels"));
}

static json_t *
app_line(json_t *a)
{
	return json_pack("{s:s, s:O, s:O, s:O, s:O}", "kind", "app",
	    "name", json_object_get(a, "name"),
	    "client_id", json_object_get(a, "client_id"),
	    "labels", json_object_get(a, "labels"),
	    "fics", json_object_get(a, "fics"));
}

static json_t *
customer_line(json_t *c)
{
	json_t *cust = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}",
	    "id", json_object_get(c, "id"),
	    "tenant", json_object_get(c, "tenant"),
	    "key_uri", json_object_get(c, "key_uri"),
	    "vault_auth", json_object_get(c, "vault_auth"),
	    "kinds", json_object_get(c, "kinds"),
	    "labels", json_object_get(c, "labels"));

	return json_pack("{s:s, s:o, s:O, s:O}", "kind", "customer",
	    "customer", cust, "app", json_object_get(c, "app"),
	    "policy_hash", json_object_get(c, "policy_hash"));
}

/*
 * One page: {"kind", "after"} in (absent: from the first workload), up
 * to EXPORT_PAGE_MAX lines of that kind out, with "next": {"kind",
 * "after"} or null.  Each page is one keyed range query (reg_*_page).
 */
int
fleet_export(struct registry *reg, json_t *req, json_t **ret_reply,
    struct xerr *e)
{
	static const char *const kinds[] = { "workload", "app", "customer" };
	static const char *const keys[] = { "name", "name", "id" };
	json_t *(*fn[3])(json_t *) = { wl_line, app_line, customer_line };
	const char *kind = json_string_value(json_object_get(req, "kind"));
	const char *after = json_string_value(json_object_get(req, "after"));
	json_t *items = NULL, *lines, *o, *next = json_null();
	size_t i;
	int k, more = 0, rc;

	for (k = 0; kind != NULL && k < 3; k++)
		if (strcmp(kinds[k], kind) == 0)
			break;
	if (kind == NULL)
		k = 0;
	else if (k == 3)
		return xerr_set(e, XTCMK_E_INVAL, "\"kind\" must be workload, "
		    "app or customer");
	rc = k == 0 ? reg_workload_page(reg, after, EXPORT_PAGE_MAX, &items,
	    &more, e) : k == 1 ? reg_app_page(reg, after, EXPORT_PAGE_MAX,
	    &items, &more, e) : reg_customer_page(reg, after,
	    EXPORT_PAGE_MAX, &items, &more, e);
	if (rc < 0)
		return rc;
	lines = json_array();
	json_array_foreach(items, i, o)
		json_array_append_new(lines, fn[k](o));
	if (more)
		next = json_pack("{s:s, s:O}", "kind", kinds[k], "after",
		    json_object_get(json_array_get(items,
		    json_array_size(items) - 1), keys[k]));
	else if (k < 2)
		next = json_pack("{s:s}", "kind", kinds[k + 1]);
	json_decref(items);
	*ret_reply = json_pack("{s:o, s:o}", "lines", lines, "next", next);
	return *ret_reply != NULL ? 0 : xerr_set(e, XTCMK_E_NOMEM,
	    "out of memory");
}

/* --- import ----------------------------------------------------------- */

static const char *
kind_of(json_t *line)
{
	const char *k = json_string_value(json_object_get(line, "kind"));

	return k != NULL ? k : "";
}

/* One line into SQLite: 1 added, 0 there already, <0 refused. */
static int
import_sqlite(struct registry *reg, json_t *line, struct xerr *e)
{
	const char *k = kind_of(line);
	json_t *fic, *dec;
	size_t i;
	int rc;

	if (strcmp(k, "workload") == 0)
		rc = reg_workload_add(reg, line, e);
	else if (strcmp(k, "app") == 0) {
		rc = reg_app_add(reg, line, e);
		if (rc < 0 && e->code != XTCMK_E_EXISTS)
			return rc;
		json_array_foreach(json_object_get(line, "fics"), i, fic)
			if (reg_fic_add(reg, json_string_value(json_object_get(
			    line, "name")), json_string_value(fic), e) < 0)
				return -e->code;
	} else if (strcmp(k, "customer") == 0) {
		dec = json_pack("{s:O, s:[]}", "app", json_object_get(line,
		    "app"), "federate");
		rc = reg_customer_onboard(reg, json_object_get(line,
		    "customer"), dec, json_pack("{s:b}", "imported", 1),
		    json_string_value(json_object_get(line, "policy_hash")),
		    e);
		json_decref(dec);
	} else
		return xerr_set(e, XTCMK_E_INVAL, "\"kind\" must be workload, "
		    "app or customer");
	if (rc < 0 && e->code == XTCMK_E_EXISTS)
		return 0;
	return rc < 0 ? rc : 1;
}

/*
 * The compares and operations that create one line's keys in etcd
 * (create_revision == 0 for each: an import never overwrites).
 */
static int
import_ops(struct fleet *f, json_t *line, json_t *cmp, json_t *ops,
    struct xerr *e)
{
	const char *k = kind_of(line), *name;
	char key[ETCD_KEY_MAX], *t;
	json_t *v, *fic;
	size_t i;
	int rc;

	if (strcmp(k, "workload") == 0) {
		name = json_string_value(json_object_get(line, "name"));
		if (name == NULL || (rc = valid_name(name, "workload name",
		    e)) < 0 || (rc = valid_guid(json_string_value(
		    json_object_get(line, "principal_id")),
		    "workload principal_id", e)) < 0 ||
		    (rc = valid_guid(json_string_value(json_object_get(line,
		    "client_id")), "workload client_id", e)) < 0)
			return name == NULL ? xerr_set(e, XTCMK_E_INVAL,
			    "workload needs a name") : rc;
		v = json_deep_copy(line);
		json_object_del(v, "kind");
		fleet_key(f, key, sizeof(key), "w/%s", name);
		json_array_append_new(cmp, etcd_cmp(key, "CREATE", "EQUAL", 0));
		t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		json_array_append_new(ops, etcd_put(key, t, 0));
		free(t);
		json_decref(v);
		fleet_key(f, key, sizeof(key), "wp/%s", json_string_value(
		    json_object_get(line, "principal_id")));
		json_array_append_new(cmp, etcd_cmp(key, "CREATE", "EQUAL", 0));
		json_array_append_new(ops, etcd_put(key, name, 0));
	} else if (strcmp(k, "app") == 0) {
		name = json_string_value(json_object_get(line, "name"));
		if (name == NULL || (rc = valid_name(name, "application name",
		    e)) < 0)
			return name == NULL ? xerr_set(e, XTCMK_E_INVAL,
			    "app needs a name") : rc;
		if (json_array_size(json_object_get(line, "fics")) >
		    REG_FIC_MAX)
			return xerr_set(e, XTCMK_E_CONFLICT, "application '%s' "
			    "lists more than %d FICs", name, REG_FIC_MAX);
		v = json_pack("{s:s, s:O?, s:O?}", "name", name, "client_id",
		    json_object_get(line, "client_id"), "labels",
		    json_object_get(line, "labels"));
		fleet_key(f, key, sizeof(key), "a/%s", name);
		json_array_append_new(cmp, etcd_cmp(key, "CREATE", "EQUAL", 0));
		t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		json_array_append_new(ops, etcd_put(key, t, 0));
		free(t);
		json_decref(v);
		if (json_is_string(json_object_get(line, "client_id"))) {
			fleet_key(f, key, sizeof(key), "ac/%s",
			    json_string_value(json_object_get(line,
			    "client_id")));
			json_array_append_new(cmp, etcd_cmp(key, "CREATE",
			    "EQUAL", 0));
			json_array_append_new(ops, etcd_put(key, name, 0));
		}
		json_array_foreach(json_object_get(line, "fics"), i, fic) {
			fleet_key(f, key, sizeof(key), "f/%s/%s", name,
			    json_string_value(fic));
			json_array_append_new(ops, etcd_put(key, "1", 0));
		}
	} else if (strcmp(k, "customer") == 0) {
		json_t *c = json_object_get(line, "customer");

		if ((rc = reg_customer_validate(c, e)) < 0)
			return rc;
		if (!json_is_string(json_object_get(line, "app")))
			return xerr_set(e, XTCMK_E_INVAL, "customer line needs "
			    "\"app\"");
		v = json_pack("{s:O, s:O, s:{s:O}, s:{s:b}, s:O, s:I}",
		    "customer", c, "app", json_object_get(line, "app"),
		    "decision", "app", json_object_get(line, "app"), "why",
		    "imported", 1, "policy_hash", json_object_get(line,
		    "policy_hash"), "time", (json_int_t)time(NULL));
		fleet_key(f, key, sizeof(key), "c/%s", json_string_value(
		    json_object_get(c, "id")));
		json_array_append_new(cmp, etcd_cmp(key, "CREATE", "EQUAL", 0));
		t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		json_array_append_new(ops, etcd_put(key, t, 0));
		free(t);
		json_decref(v);
	} else
		return xerr_set(e, XTCMK_E_INVAL, "\"kind\" must be workload, "
		    "app or customer");
	return 0;
}

/* Lines [from, to) in one transaction: 1 committed, 0 some existed. */
static int
import_txn(struct fleet *f, json_t *lines, size_t from, size_t to,
    long long *ret_rev, struct xerr *e)
{
	json_t *cmp = json_array(), *ops = json_array(), *txn;
	size_t i;
	int rc = 0, ok = 0;

	for (i = from; i < to && rc == 0; i++)
		rc = import_ops(f, json_array_get(lines, i), cmp, ops, e);
	if (rc < 0) {
		json_decref(cmp);
		json_decref(ops);
		return rc;
	}
	txn = json_pack("{s:o, s:o}", "compare", cmp, "success", ops);
	rc = etcd_txn(f->etcd, txn, &ok, ret_rev, e);
	json_decref(txn);
	if (rc < 0)
		return rc;
	atomic_fetch_add(&f->n_txn, ok);
	return ok;
}

/* How many etcd operations line `l` takes. */
static size_t
line_ops(json_t *l)
{
	return 2 + json_array_size(json_object_get(l, "fics"));
}

int
fleet_import(struct fleet *f, struct registry *reg, json_t *req,
    json_t **ret_reply, struct xerr *e)
{
	json_t *lines = json_object_get(req, "lines"), *errs;
	size_t i, j, m, n, ops;
	long long rev = 0, r;
	int added = 0, already = 0, rc;
	struct xerr le;

	if (!json_is_array(lines) || json_array_size(lines) >
	    FLEET_IMPORT_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "\"lines\" must be an array "
		    "of at most %d registry lines", FLEET_IMPORT_MAX);
	errs = json_array();
	n = json_array_size(lines);
	for (i = 0; i < n; i = j) {
		/* A batch: as many lines as fit one transaction. */
		for (j = i, ops = 0; j < n && (j == i || ops + line_ops(
		    json_array_get(lines, j)) <= FLEET_TXN_OPS_MAX); j++)
			ops += line_ops(json_array_get(lines, j));
		if (f != NULL) {
			xerr_clear(&le);
			rc = import_txn(f, lines, i, j, &r, &le);
			if (rc == 1) {
				added += (int)(j - i);
				rev = r;
				continue;
			}
			if (rc < 0 && le.code == XTCMK_E_UNAVAILABLE) {
				json_decref(errs);
				return xerr_set(e, le.code, "%s", le.msg);
			}
			if (rc < 0 && j - i == 1) {
				json_array_append_new(errs, json_pack("{s:I, "
				    "s:s}", "line", (json_int_t)i, "error",
				    le.msg));
				continue;
			}
			if (j - i == 1) {
				already++;
				continue;
			}
			/* Some existed or one is bad: line by line. */
			for (m = i; m < j; m++) {
				xerr_clear(&le);
				rc = import_txn(f, lines, m, m + 1, &r, &le);
				if (rc == 1) {
					added++;
					rev = r;
				} else if (rc == 0)
					already++;
				else
					json_array_append_new(errs, json_pack(
					    "{s:I, s:s}", "line", (json_int_t)m,
					    "error", le.msg));
			}
			continue;
		}
		for (; i < j; i++) {
			xerr_clear(&le);
			rc = import_sqlite(reg, json_array_get(lines, i), &le);
			if (rc > 0)
				added++;
			else if (rc == 0)
				already++;
			else
				json_array_append_new(errs, json_pack("{s:I, "
				    "s:s}", "line", (json_int_t)i, "error",
				    le.msg));
		}
	}
	if (f != NULL && rev > 0)
		fleet_wait(f, rev);
	*ret_reply = json_pack("{s:i, s:i, s:o}", "added", added, "already",
	    already, "errors", errs);
	return *ret_reply != NULL ? 0 : xerr_set(e, XTCMK_E_NOMEM,
	    "out of memory");
}
