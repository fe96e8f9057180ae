/*
 * sqlite_scope.c - the registry's side of partition scopes (scope.h):
 * find the applications and workloads a scope selects through the label
 * index tables and the (stem, num) and (stem, customers) indexes, read
 * each with prepared statements kept in the statement cache, and keep
 * those scope_match() accepts.  The work is bounded by the selectors'
 * limits and SCOPE_SCAN_MAX, never by the size of the registry.
 */
#include <string.h>

#include <sqlite3.h>

#include "registry.h"
#include "registry_int.h"
#include "scope.h"

/* One application as a partition policy sees it (locked). */
static int
scope_app_read(struct registry *r, const char *name, json_t **ret_app,
    struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *o = NULL, *fics;
	int rc;

	if ((rc = regi_prepc(r, &st, e, "SELECT name, client_id, labels, "
	    "created, customers, fic_count FROM apps WHERE name = ?", "s",
	    name)) != 0)
		return rc;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		o = json_pack("{s:o, s:o, s:o, s:I, s:I, s:I}",
		    "name", col_str(st, 0), "client_id", col_str(st, 1),
		    "labels", regi_col_json(st, 2, json_object()),
		    "created", (json_int_t)sqlite3_column_int64(st, 3),
		    "customers", (json_int_t)sqlite3_column_int64(st, 4),
		    "fic_count", (json_int_t)sqlite3_column_int64(st, 5));
	regi_finish(r, st);
	if (o == NULL)
		return rc == SQLITE_DONE ? 0 : regi_dberr(r, e, rc);
	if ((rc = regi_prepc(r, &st, e, "SELECT workload FROM fics WHERE "
	    "app = ? ORDER BY workload", "s", name)) != 0) {
		json_decref(o);
		return rc;
	}
	fics = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(fics, col_str(st, 0));
	regi_finish(r, st);
	json_object_set_new(o, "fics", fics);
	if (rc != SQLITE_DONE) {
		json_decref(o);
		return regi_dberr(r, e, rc);
	}
	*ret_app = o;
	return 1;
}

static json_t *
scope_workload_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o}", "name", col_str(st, 0),
	    "client_id", col_str(st, 1), "principal_id", col_str(st, 2),
	    "labels", regi_col_json(st, 3, json_object()));
}

/* The first label condition an index can answer, or NULL. */
static const struct scope_label *
indexed_label(const struct scope_sel *sel)
{
	int i;

	for (i = 0; i < sel->nlabels; i++)
		if (sel->label[i].op == SCOPE_EQ)
			return &sel->label[i];
	return NULL;
}

/* Append the apps `sel` matches to `out` in fill order, first `limit`. */
static int
scope_apps(struct registry *r, const struct scope_sel *sel, json_t *out,
    int *ret_more, struct xerr *e)
{
	const struct scope_label *l = indexed_label(sel);
	sqlite3_stmt *st;
	json_t *app;
	int rc, step, taken = 0, scanned = 0;

	*ret_more = 0;
	if (sel->stem != NULL)
		rc = sel->room >= 0 ? regi_prepc(r, &st, e, "SELECT name FROM "
		    "apps WHERE stem = ? AND customers < ? ORDER BY num, name",
		    "si", sel->stem, sel->room) : regi_prepc(r, &st, e,
		    "SELECT name FROM apps WHERE stem = ? ORDER BY num, name",
		    "s", sel->stem);
	else
		rc = regi_prepc(r, &st, e, "SELECT a.name FROM app_labels l "
		    "JOIN apps a ON a.name = l.app WHERE l.key = ? AND "
		    "l.value = ? AND (?3 < 0 OR a.customers < ?3) "
		    "ORDER BY a.name", "ssi", l->key, l->value, sel->room);
	if (rc != 0)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (++scanned > SCOPE_SCAN_MAX) {
			*ret_more = 1;
			break;
		}
		rc = scope_app_read(r, (const char *)sqlite3_column_text(st,
		    0), &app, e);
		if (rc < 0)
			break;
		if (rc == 0 || !scope_match(sel, app)) {
			json_decref(rc == 1 ? app : NULL);
			continue;
		}
		/* One match past the limit only says there are more. */
		if (taken++ == sel->limit) {
			*ret_more = 1;
			json_decref(app);
			break;
		}
		if (!scope_has_name(out, json_string_value(json_object_get(app,
		    "name"))))
			json_array_append(out, app);
		json_decref(app);
	}
	regi_finish(r, st);
	if (rc < 0)
		return rc;
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 :
	    regi_dberr(r, e, step);
}

static int
scope_workloads(struct registry *r, const struct scope_sel *sel, json_t *out,
    int *ret_more, struct xerr *e)
{
	const struct scope_label *l = indexed_label(sel);
	sqlite3_stmt *st;
	json_t *w;
	int rc, taken = 0, scanned = 0;

	*ret_more = 0;
	if (!sel->present)
		return 0;
	if (l != NULL)
		rc = regi_prepc(r, &st, e, "SELECT w.name, w.client_id, "
		    "w.principal_id, w.labels FROM workload_labels l JOIN "
		    "workloads w ON w.name = l.workload WHERE l.key = ? AND "
		    "l.value = ? ORDER BY w.name", "ss", l->key, l->value);
	else
		rc = regi_prepc(r, &st, e, "SELECT name, client_id, "
		    "principal_id, labels FROM workloads ORDER BY name", "");
	if (rc != 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (++scanned > SCOPE_SCAN_MAX) {
			*ret_more = 1;
			break;
		}
		if ((w = scope_workload_row(st)) == NULL)
			continue;
		if (!scope_match(sel, w)) {
			json_decref(w);
			continue;
		}
		if (taken++ == sel->limit) {
			*ret_more = 1;
			json_decref(w);
			break;
		}
		json_array_append_new(out, w);
	}
	regi_finish(r, st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : regi_dberr(r, e,
	    rc);
}

void
regi_update_hook(void *arg, int op, const char *db, const char *table,
    sqlite3_int64 rowid)
{
	struct registry *r = arg;

	(void)op;
	(void)db;
	(void)rowid;
	if (strcmp(table, "workloads") == 0)
		r->wl_gen++;		/* under r->mu, as every write is */
}

void
regi_wlsel_clear(struct registry *r)
{
	unsigned i;

	for (i = 0; i < REGI_WLSEL_MAX; i++) {
		free(r->wlsel[i].key);
		json_decref(r->wlsel[i].arr);
		json_decref(r->wlsel[i].text);
		memset(&r->wlsel[i], 0, sizeof(r->wlsel[i]));
	}
}

/*
 * The workloads `sel` selects, as a kept selection while the workloads
 * table has not changed since (an onboarding reads the same few over and
 * over: nothing is read or built again, and its text is made once, see
 * reg_scope_text).  *ret_arr gets a reference; the caller holds r->mu.
 */
static int
scope_workloads_kept(struct registry *r, const struct scope *sc,
    json_t **ret_arr, int *ret_more, struct xerr *e)
{
	struct regi_wlsel *k, *stale = NULL;
	json_t *arr;
	char *key;
	unsigned i;
	int rc, more = 0;

	*ret_more = 0;
	if ((*ret_arr = json_array()) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (!sc->workloads.present)
		return 0;
	json_decref(*ret_arr);
	*ret_arr = NULL;
	key = json_dumps(json_object_get(sc->doc, "workloads"),
	    JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (key == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	for (i = 0; i < REGI_WLSEL_MAX; i++) {
		k = &r->wlsel[i];
		if (k->key == NULL || strcmp(k->key, key) != 0)
			continue;
		if (k->gen != r->wl_gen) {
			stale = k;	/* made again in its place */
			continue;
		}
		free(key);
		*ret_arr = json_incref(k->arr);
		*ret_more = k->more;
		return 0;
	}
	if ((arr = json_array()) == NULL) {
		free(key);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	if ((rc = scope_workloads(r, &sc->workloads, arr, &more, e)) < 0) {
		free(key);
		json_decref(arr);
		return rc;
	}
	k = stale != NULL ? stale :
	    &r->wlsel[r->wlsel_next++ % REGI_WLSEL_MAX];
	free(k->key);
	json_decref(k->arr);
	json_decref(k->text);
	k->key = key;
	k->gen = r->wl_gen;
	k->arr = json_incref(arr);
	k->text = NULL;
	k->more = more;
	*ret_arr = arr;
	*ret_more = more;
	return 0;
}

json_t *
reg_scope_text(struct registry *r, json_t *arr)
{
	struct regi_wlsel *k;
	json_t *t = NULL;
	char *s;
	unsigned i;

	if (arr == NULL)
		return NULL;
	pthread_mutex_lock(&r->mu);
	for (i = 0; i < REGI_WLSEL_MAX && t == NULL; i++) {
		k = &r->wlsel[i];
		if (k->arr != arr)
			continue;
		if (k->text == NULL && (s = json_dumps(arr, JSON_COMPACT)) !=
		    NULL) {
			k->text = json_string_nocheck(s);
			free(s);
		}
		t = json_incref(k->text);
	}
	pthread_mutex_unlock(&r->mu);
	return t;
}

int
reg_scope_resolve(struct registry *r, const struct scope *sc, json_t *input,
    json_t **ret_input, struct xerr *e)
{
	json_t *apps = json_array(), *wls = NULL, *info = NULL;
	json_t *in = NULL, *app;
	long long max = 0;
	int rc, i, amore = 0, wmore = 0;

	if ((rc = regi_tx_begin(r, 0, e)) != 0)
		goto out;
	for (i = 0; rc == 0 && i < sc->nnames; i++) {
		if ((rc = scope_app_read(r, sc->names[i], &app, e)) == 1) {
			if (!scope_has_name(apps, sc->names[i]))
				json_array_append(apps, app);
			json_decref(app);
		}
		rc = rc < 0 ? rc : 0;
	}
	if (rc == 0 && sc->apps.present)
		rc = scope_apps(r, &sc->apps, apps, &amore, e);
	if (rc == 0)
		rc = scope_workloads_kept(r, sc, &wls, &wmore, e);
	if (rc == 0 && sc->apps.stem != NULL && (max = regi_num(r, e,
	    "SELECT coalesce(max(num), 0) FROM apps WHERE stem = ?", "s",
	    sc->apps.stem)) < 0)
		rc = (int)max;
	if ((rc = regi_tx_end(r, rc, 0, e)) != 0)
		goto out;
	info = json_pack("{s:b, s:b}", "apps_more", amore, "workloads_more",
	    wmore);
	if (info != NULL && sc->apps.stem != NULL)
		json_object_set_new(info, "max_number", json_integer(max));
	if (info == NULL || (in = json_copy(input)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	json_object_set(in, "apps", apps);
	json_object_set(in, "workloads", wls);
	json_object_set(in, "scope", info);
	*ret_input = in;
out:
	json_decref(apps);
	json_decref(wls);
	json_decref(info);
	return rc;
}

int
reg_scope_counts(struct registry *r, long long *ret_apps,
    long long *ret_workloads, struct xerr *e)
{
	long long a, w;

	pthread_mutex_lock(&r->mu);
	/* Counted only up to one past the cap: the answer needed is
	 * "at most SCOPE_FULL_MAX or not". */
	a = regi_num(r, e, "SELECT count(*) FROM (SELECT 1 FROM apps "
	    "LIMIT ?)", "i", (long long)SCOPE_FULL_MAX + 1);
	w = a < 0 ? a : regi_num(r, e, "SELECT count(*) FROM (SELECT 1 FROM "
	    "workloads LIMIT ?)", "i", (long long)SCOPE_FULL_MAX + 1);
	pthread_mutex_unlock(&r->mu);
	if (a < 0 || w < 0)
		return (int)(a < 0 ? a : w);
	*ret_apps = a;
	*ret_workloads = w;
	return 0;
}
