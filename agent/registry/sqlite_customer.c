/*
 * sqlite_customer.c - the durable registry (see registry.h), part two:
 * customers, onboarding (a customer, its application and FICs and its
 * assignment in one transaction), sticky assignments with the log of
 * moves and removals, per-version key usage, and the consistency check
 * over the whole file.  Opening the file, the statement and transaction
 * helpers, workloads, applications and FICs are in sqlite.c.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "jsonw.h"
#include "registry.h"
#include "registry_int.h"
#include "validate.h"

#define REG_WHY_MAX		4096	/* the stored record of why, JSON */
#define REG_OUTPUTS_MAX		(64 * 1024) /* the stored decision, JSON */
#define REG_REASON_SHOWN	1024	/* bytes of a decision's reason shown */
#define REG_WHY_SHOWN		4096	/* bytes of a stored "why" shown */

static const char *const customer_kinds[] = {
	"host", "storage", "storage-existing", "cosmosdb", "netapp",
};

struct customer_in {
	const char	*id;
	char		 tenant[37];
	char		 key_uri[KEY_URI_MAX + 1];
	const char	*vault_auth;
	char		*kinds;		/* JSON text, malloc'ed */
	char		*labels;	/* JSON text, malloc'ed */
};

static int
kinds_text(json_t *kinds, char **ret_text, struct xerr *e)
{
	json_t *v;
	size_t i, j, k, nk = sizeof(customer_kinds) / sizeof(customer_kinds[0]);

	if (kinds == NULL || json_is_null(kinds)) {
		*ret_text = strdup("[\"host\"]");
		goto done;
	}
	if (!json_is_array(kinds) || json_array_size(kinds) == 0 ||
	    json_array_size(kinds) > REG_KINDS_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "customer: \"kinds\" must be "
		    "an array of 1 to %d of host, storage, storage-existing, "
		    "cosmosdb, netapp", REG_KINDS_MAX);
	json_array_foreach(kinds, i, v) {
		for (k = 0; k < nk; k++)
			if (json_is_string(v) && strcmp(json_string_value(v),
			    customer_kinds[k]) == 0)
				break;
		if (k == nk)
			return xerr_set(e, XTCMK_E_INVAL, "customer: kind "
			    "#%zu is not one of host, storage, "
			    "storage-existing, cosmosdb, netapp", i + 1);
		for (j = 0; j < i; j++)
			if (json_equal(v, json_array_get(kinds, j)))
				return xerr_set(e, XTCMK_E_INVAL, "customer: "
				    "kind '%s' is listed twice",
				    json_string_value(v));
	}
	*ret_text = jsonw_dumps(kinds, NULL);
done:
	return *ret_text == NULL ? xerr_set(e, XTCMK_E_NOMEM, "out of memory")
	    : 0;
}

static int
customer_parse(json_t *c, struct customer_in *ci, struct xerr *e)
{
	struct key_uri u;
	const char *tenant, *uri;

	memset(ci, 0, sizeof(*ci));
	if (!json_is_object(c))
		return xerr_set(e, XTCMK_E_INVAL, "customer must be a JSON "
		    "object with id, tenant, key_uri and vault_auth");
	if (regi_get_str(c, "id", "customer", &ci->id, e) != 0 ||
	    regi_get_str(c, "tenant", "customer", &tenant, e) != 0 ||
	    regi_get_str(c, "key_uri", "customer", &uri, e) != 0 ||
	    regi_get_str(c, "vault_auth", "customer", &ci->vault_auth,
	    e) != 0 ||
	    valid_customer_id(ci->id, e) != 0 ||
	    regi_guid_lower(tenant, "customer tenant", ci->tenant, e) != 0 ||
	    key_uri_parse(uri, &u, e) != 0)
		return -XTCMK_E_INVAL;
	if (ci->vault_auth == NULL || (strcmp(ci->vault_auth, "rbac") != 0 &&
	    strcmp(ci->vault_auth, "access-policy") != 0))
		return xerr_set(e, XTCMK_E_INVAL, "customer '%s': vault_auth "
		    "must be \"rbac\" or \"access-policy\", as the customer's "
		    "vault is configured", ci->id);
	if (key_uri_format(&u, 1, ci->key_uri, sizeof(ci->key_uri)) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "customer '%s': key URI is "
		    "too long", ci->id);
	if (kinds_text(json_object_get(c, "kinds"), &ci->kinds, e) != 0 ||
	    regi_labels_text(json_object_get(c, "labels"), "customer",
	    &ci->labels, e) != 0) {
		free(ci->kinds);
		ci->kinds = NULL;
		return -XTCMK_E_INVAL;
	}
	return 0;
}

/* JSON text of an optional document, bounded by `max`. */
static int
doc_text(json_t *v, const char *what, size_t max, char **ret_text,
    struct xerr *e)
{
	size_t len;
	char *s = jsonw_dumps(v != NULL ? v : json_null(), &len);

	if (s == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (len > max) {
		free(s);
		return xerr_set(e, XTCMK_E_TOOBIG, "%s is over %zu bytes of "
		    "JSON", what, max);
	}
	*ret_text = s;
	return 0;
}

/* Whether workload name `w` is among the first `n` strings of `a`. */
static int
in_names(json_t *a, size_t n, const char *w)
{
	size_t i;

	for (i = 0; i < n && i < json_array_size(a); i++)
		if (strcmp(json_string_value(json_array_get(a, i)), w) == 0)
			return 1;
	return 0;
}

/*
 * Check the decision and make the app and its FICs (in the transaction).
 * One read of the app's FICs: a customer joining an app that already
 * federates what it needs (most do) costs no more queries.
 */
static int
onboard_app(struct registry *r, const char *app, json_t *fed,
    const char *app_labels, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *have = NULL, *v;
	const char *w;
	long long n, add = 0;
	size_t i;
	int rc;

	if ((n = regi_num(r, e, "SELECT count(*) FROM apps WHERE name = ?", "s",
	    app)) < 0)
		return (int)n;
	if (n == 0 && (rc = regi_app_insert(r, app, NULL, app_labels, e)) != 0)
		return rc;
	if ((rc = regi_prepc(r, &st, e, "SELECT workload FROM fics WHERE "
	    "app = ?", "s", app)) != 0)
		return rc;
	if ((have = json_array()) == NULL) {
		regi_finish(r, st);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (json_array_append_new(have, json_string((const char *)
		    sqlite3_column_text(st, 0))) == -1)
			break;
	regi_finish(r, st);
	if (rc != SQLITE_DONE) {
		json_decref(have);
		return rc == SQLITE_ROW ? xerr_set(e, XTCMK_E_NOMEM, "out of "
		    "memory") : regi_dberr(r, e, rc);
	}
	/* New FICs: named workloads that exist, not there, not repeated. */
	json_array_foreach(fed, i, v) {
		w = json_string_value(v);
		if (in_names(have, SIZE_MAX, w) || in_names(fed, i, w))
			continue;
		if ((rc = regi_need(r, OBJ_WORKLOAD, w, e)) != 0) {
			json_decref(have);
			return rc;
		}
		add++;
	}
	n = (long long)json_array_size(have);
	if (n + add > REG_FIC_MAX)
		rc = regi_fic_full(e, app, n + add);
	else if (n + add == 0)
		rc = xerr_set(e, XTCMK_E_CONFLICT, "application '%s' would "
		    "have no federated credential, so no host could serve the "
		    "customer: federate at least one workload", app);
	else
		rc = 0;
	/* The new ones, checked above: the application exists, each
	 * workload does, the FIC does not, and there is room. */
	json_array_foreach(fed, i, v) {
		if (rc < 0 || add == 0)
			break;
		w = json_string_value(v);
		if (in_names(have, SIZE_MAX, w) || in_names(fed, i, w))
			continue;
		rc = regi_fic_insert(r, app, w, 1, e);
	}
	json_decref(have);
	return rc < 0 ? rc : 0;
}

int
reg_customer_onboard(struct registry *r, json_t *customer, json_t *decision,
    json_t *why, const char *policy_hash, struct xerr *e)
{
	struct customer_in ci;
	const char *app;
	char *app_labels = NULL, *in = NULL, *out = NULL, *cur = NULL;
	sqlite3_stmt *st;
	json_t *fed, *v;
	size_t i;
	int rc;

	if ((rc = customer_parse(customer, &ci, e)) != 0)
		return rc;
	fed = json_object_get(decision, "federate");
	if (!json_is_object(decision) || regi_get_str(decision, "app",
	    "decision", &app, e) != 0 || valid_name(app,
	    "decision: application name", e) != 0 ||
	    regi_labels_text(json_object_get(decision, "app_labels"),
	    "decision: application", &app_labels, e) != 0) {
		rc = json_is_object(decision) ? -XTCMK_E_INVAL : xerr_set(e,
		    XTCMK_E_INVAL, "decision must be an object with \"app\" "
		    "and \"federate\"");
		goto out;
	}
	if (fed == NULL)
		fed = json_array();
	else if (json_is_array(fed))
		json_incref(fed);
	else {
		rc = xerr_set(e, XTCMK_E_INVAL, "decision: \"federate\" must be "
		    "an array of workload names");
		goto out;
	}
	json_array_foreach(fed, i, v)
		if (!json_is_string(v) || valid_name(json_string_value(v),
		    "decision: workload name", e) != 0) {
			rc = -XTCMK_E_INVAL;
			if (!json_is_string(v))
				xerr_set(e, XTCMK_E_INVAL, "decision: "
				    "\"federate\" must hold workload names");
			break;
		}
	if (rc != 0 || (rc = doc_text(why, "the record of why",
	    REG_WHY_MAX, &in, e)) != 0 || (rc = doc_text(decision,
	    "the decision", REG_OUTPUTS_MAX, &out, e)) != 0)
		goto out_fed;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		goto out_fed;
	if ((rc = regi_prepc(r, &st, e, "SELECT coalesce(a.app, '') FROM "
	    "customers c LEFT JOIN assignments a ON a.customer = c.id WHERE "
	    "c.id = ?", "s", ci.id)) == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			cur = strdup((const char *)sqlite3_column_text(st, 0));
		regi_finish(r, st);
		if (cur != NULL)
			rc = xerr_set(e, XTCMK_E_EXISTS, "customer '%s' exists "
			    "already, on application '%s'; assignments are "
			    "sticky: use `xtcmkctl customer move` to change "
			    "it", ci.id, cur);
	}
	if (rc == 0)
		rc = onboard_app(r, app, fed, app_labels, e);
	if (rc == 0)
		rc = regi_run(r, e, "INSERT INTO customers (id, tenant, "
		    "key_uri, vault_auth, kinds, labels, created) VALUES "
		    "(?, ?, ?, ?, ?, ?, ?)", "ssssssi", ci.id, ci.tenant,
		    ci.key_uri, ci.vault_auth, ci.kinds, ci.labels,
		    (long long)time(NULL));
	if (rc == 0)
		rc = regi_run(r, e, "INSERT INTO assignments (customer, app, "
		    "inputs, outputs, policy_hash, time) VALUES "
		    "(?, ?, ?, ?, ?, ?)",
		    "sssssi", ci.id, app, in, out, policy_hash,
		    (long long)time(NULL));
	rc = regi_tx_end(r, rc, 1, e);
out_fed:
	json_decref(fed);
out:
	free(cur);
	free(in);
	free(out);
	free(app_labels);
	free(ci.kinds);
	free(ci.labels);
	return rc;
}

/* The customer's application ("" if unassigned) into buf; 0 if absent. */
static int
customer_app(struct registry *r, const char *id, char *buf, size_t len,
    struct xerr *e)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = regi_prep(r, &st, e, "SELECT coalesce(a.app, '') FROM "
	    "customers c LEFT JOIN assignments a ON a.customer = c.id WHERE "
	    "c.id = ?", "s", id)) != 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s", sqlite3_column_text(st, 0));
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 :
	    regi_dberr(r, e, rc);
	sqlite3_finalize(st);
	return rc;
}

int
reg_customer_move(struct registry *r, const char *id, const char *to_app,
    const char *reason, const char *actor, struct xerr *e)
{
	char from[NAME_MAX_LEN + 1];
	long long n;
	int rc;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = customer_app(r, id, from, sizeof(from), e)) <= 0)
		return regi_tx_end(r, rc < 0 ? rc : regi_not_found(e,
		    OBJ_CUSTOMER, id), 0, e);
	if ((rc = regi_need(r, OBJ_APP, to_app, e)) != 0)
		;
	else if (strcmp(from, to_app) == 0)
		rc = xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' is already on "
		    "application '%s'", id, to_app);
	else if ((n = regi_num(r, e, "SELECT count(*) FROM fics WHERE app = ?",
	    "s", to_app)) <= 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_CONFLICT,
		    "application '%s' has no federated credential, so no host "
		    "could serve customer '%s': federate a workload first",
		    to_app, id);
	else if ((rc = regi_run(r, e, "UPDATE assignments SET app = ?, "
	    "time = ? WHERE customer = ?", "sis", to_app,
	    (long long)time(NULL), id)) == 0 && sqlite3_changes(r->db) == 0)
		rc = regi_run(r, e, "INSERT INTO assignments (customer, app, "
		    "inputs, outputs, policy_hash, time) VALUES (?, ?, 'null', "
		    "'null', NULL, ?)", "ssi", id, to_app,
		    (long long)time(NULL));
	if (rc == 0)
		rc = regi_run(r, e, "INSERT INTO moves (customer, op, "
		    "from_app, to_app, reason, actor, time) VALUES (?, 'move', "
		    "?, ?, ?, "
		    "?, ?)", "sssssi", id, from[0] ? from : NULL, to_app,
		    reason, actor, (long long)time(NULL));
	return regi_tx_end(r, rc, 1, e);
}

int
reg_customer_remove(struct registry *r, const char *id, const char *actor,
    struct xerr *e)
{
	char from[NAME_MAX_LEN + 1];
	int rc;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = customer_app(r, id, from, sizeof(from), e)) <= 0)
		return regi_tx_end(r, rc < 0 ? rc : regi_not_found(e,
		    OBJ_CUSTOMER, id), 0, e);
	if ((rc = regi_run(r, e, "DELETE FROM assignments WHERE customer = ?",
	    "s", id)) == 0 && (rc = regi_run(r, e, "DELETE FROM customers "
	    "WHERE id = ?", "s", id)) == 0)
		rc = regi_run(r, e, "INSERT INTO moves (customer, op, "
		    "from_app, actor, time) VALUES (?, 'remove', ?, ?, ?)",
		    "sssi", id, from[0] ? from : NULL, actor,
		    (long long)time(NULL));
	return regi_tx_end(r, rc, 1, e);
}

static json_t *
customer_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}",
	    "id", col_str(st, 0), "tenant", col_str(st, 1),
	    "key_uri", col_str(st, 2), "vault_auth", col_str(st, 3),
	    "kinds", regi_col_json(st, 4, json_array()),
	    "labels", regi_col_json(st, 5, json_object()),
	    "created", (json_int_t)sqlite3_column_int64(st, 6),
	    "app", col_str(st, 7),
	    "assigned_at", sqlite3_column_type(st, 8) == SQLITE_NULL ?
	    json_null() : json_integer(sqlite3_column_int64(st, 8)),
	    "policy_hash", col_str(st, 9));
}

#define CUSTOMER_COLS	"SELECT c.id, c.tenant, c.key_uri, c.vault_auth, " \
	"c.kinds, c.labels, c.created, a.app, a.time, a.policy_hash " \
	"FROM customers c LEFT JOIN assignments a ON a.customer = c.id"

int
reg_customer_get(struct registry *r, const char *id, json_t **ret_customer,
    struct xerr *e)
{
	return regi_get_one(r, CUSTOMER_COLS " WHERE c.id = ?", id,
	    customer_row, OBJ_CUSTOMER, ret_customer, e);
}

int
reg_customer_exists(struct registry *r, const char *id, struct xerr *e)
{
	long long n;

	pthread_mutex_lock(&r->mu);
	n = regi_num(r, e, "SELECT count(*) FROM customers WHERE id = ?", "s",
	    id);
	pthread_mutex_unlock(&r->mu);
	return n < 0 ? (int)n : n > 0;
}

int
reg_customer_list(struct registry *r, json_t **ret_array, struct xerr *e)
{
	return regi_list(r, CUSTOMER_COLS " ORDER BY c.id", 0, NULL,
	    customer_row, ret_array, e);
}

int
reg_customer_page(struct registry *r, const char *after, int limit,
    json_t **ret_items, int *ret_more, struct xerr *e)
{
	return regi_page(r, CUSTOMER_COLS " WHERE c.id > ? ORDER BY c.id "
	    "LIMIT ?", "s", after != NULL ? after : "", 0, limit, customer_row,
	    ret_items, ret_more, e);
}

/*
 * customer.list pages as JSON text, without a JSON object per row: a
 * row whose text is plain (printable ASCII, and kinds and labels flat
 * lists of such strings, as the agent stores them) is written straight
 * from its columns, byte for byte what customer_row() and a compact dump
 * make; any other row goes through customer_row().
 */
struct tbuf {
	char	*p;
	size_t	 len, max;
	int	 over;
};

static void
t_raw(struct tbuf *b, const char *s, size_t n)
{
	if (b->over || b->len + n > b->max) {
		b->over = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Printable ASCII: written as is but for '"' and '\\'. */
static int
plain(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

static void
t_str(struct tbuf *b, const char *key, const char *s)
{
	size_t i, run;

	t_raw(b, key, strlen(key));
	if (s == NULL) {
		t_raw(b, "null", 4);
		return;
	}
	t_raw(b, "\"", 1);
	for (i = 0; s[i] != '\0'; i += run) {
		run = strcspn(s + i, "\"\\");
		t_raw(b, s + i, run);
		if (s[i + run] != '\0') {
			t_raw(b, s[i + run] == '"' ? "\\\"" : "\\\\", 2);
			run++;
		}
	}
	t_raw(b, "\"", 1);
}

/*
 * Stored kinds or labels that are a flat array or object of plain
 * strings without '"' or '\\' escapes, in compact form: their text is
 * their dump.
 */
static int
flat_json(const char *s, int object)
{
	int n = 0;

	if (s == NULL || *s++ != (object ? '{' : '['))
		return 0;
	if (*s == (object ? '}' : ']'))
		return s[1] == '\0';
	for (;;) {
		if (*s++ != '"')
			return 0;
		for (; *s != '"'; s++)
			if ((unsigned char)*s < 0x20 || (unsigned char)*s >
			    0x7e || *s == '\\')
				return 0;
		s++;
		n++;
		if (*s == (object && n % 2 == 1 ? ':' : ','))
			s++;
		else if (*s == (object ? '}' : ']') && (!object || n % 2 == 0))
			return s[1] == '\0';
		else
			return 0;
	}
}

static int
customer_text(sqlite3_stmt *st, struct tbuf *b)
{
	const char *t[10];
	char num[64];
	json_t *row;
	size_t n;
	int i;

	for (i = 0; i < 10; i++)	/* 6 and 8 are integers */
		t[i] = i == 6 || i == 8 ? NULL :
		    (const char *)sqlite3_column_text(st, i);
	for (i = 0; i < 10; i++)
		if (i != 6 && i != 8 && t[i] != NULL && !plain(t[i]))
			break;
	if (i < 10 || t[4] == NULL || t[5] == NULL ||
	    !flat_json(t[4], 0) || !flat_json(t[5], 1)) {
		if ((row = customer_row(st)) == NULL)
			return -1;
		n = b->over ? 0 : json_dumpb(row, b->p + b->len,
		    b->max - b->len, JSON_COMPACT);
		json_decref(row);
		if (n == 0 || b->len + n > b->max)
			b->over = 1;
		else
			b->len += n;
		return 0;
	}
	t_str(b, "{\"id\":", t[0]);
	t_str(b, ",\"tenant\":", t[1]);
	t_str(b, ",\"key_uri\":", t[2]);
	t_str(b, ",\"vault_auth\":", t[3]);
	t_raw(b, ",\"kinds\":", 9);
	t_raw(b, t[4], strlen(t[4]));
	t_raw(b, ",\"labels\":", 10);
	t_raw(b, t[5], strlen(t[5]));
	n = (size_t)snprintf(num, sizeof(num), ",\"created\":%lld",
	    (long long)sqlite3_column_int64(st, 6));
	t_raw(b, num, n);
	t_str(b, ",\"app\":", t[7]);
	if (sqlite3_column_type(st, 8) == SQLITE_NULL)
		t_raw(b, ",\"assigned_at\":null", 19);
	else {
		n = (size_t)snprintf(num, sizeof(num), ",\"assigned_at\":%lld",
		    (long long)sqlite3_column_int64(st, 8));
		t_raw(b, num, n);
	}
	t_str(b, ",\"policy_hash\":", t[9]);
	t_raw(b, "}", 1);
	return 0;
}

int
reg_customer_page_text(struct registry *r, const char *after, int limit,
    char *buf, size_t max, size_t *used, char *ret_last, size_t lastlen,
    int *ret_more, struct xerr *e)
{
	struct tbuf b = { buf, *used, max, 0 };
	sqlite3_stmt *st;
	size_t mark;
	int rc, n = 0;

	limit = regi_page_limit(limit);
	*ret_more = 0;
	ret_last[0] = '\0';
	pthread_mutex_lock(&r->mu);
	if ((rc = regi_prep(r, &st, e, CUSTOMER_COLS " WHERE c.id > ? "
	    "ORDER BY c.id LIMIT ?", "si", after != NULL ? after : "",
	    (long long)limit + 1)) != 0) {
		pthread_mutex_unlock(&r->mu);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			*ret_more = 1;
			break;
		}
		mark = b.len;
		if (n > 0)
			t_raw(&b, ",", 1);
		if (customer_text(st, &b) < 0) {
			rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			break;
		}
		if (b.over) {
			b.len = mark;
			*ret_more = 1;
			break;
		}
		snprintf(ret_last, lastlen, "%s",
		    (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = regi_dberr(r, e, rc);
	regi_finish(r, st);
	pthread_mutex_unlock(&r->mu);
	*used = b.len;
	return rc;
}

static json_t *
move_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:I}", "from", col_str(st, 0),
	    "to", col_str(st, 1), "reason", col_str(st, 2),
	    "actor", col_str(st, 3),
	    "time", (json_int_t)sqlite3_column_int64(st, 4));
}

/*
 * What customer.show says about the decision, bounded: the stored
 * outputs' application, federated workloads (at most REG_FIC_MAX by the
 * onboarding checks), reason (cut at REG_REASON_SHOWN bytes) and a
 * compact "why" when the policy gave one that fits REG_WHY_SHOWN.
 */
static json_t *
outputs_shown(json_t *out)
{
	json_t *o = json_object(), *v;
	const char *reason;
	char *why;

	if (!json_is_object(out))
		return o;
	if (json_is_string(v = json_object_get(out, "app")))
		json_object_set(o, "app", v);
	if (json_is_array(v = json_object_get(out, "federate")) &&
	    json_array_size(v) <= REG_FIC_MAX)
		json_object_set(o, "federate", v);
	if (json_is_object(v = json_object_get(out, "app_labels")) &&
	    json_object_size(v) <= LABELS_MAX)
		json_object_set(o, "app_labels", v);
	if ((reason = json_string_value(json_object_get(out, "reason"))) !=
	    NULL) {
		if (strlen(reason) <= REG_REASON_SHOWN)
			json_object_set_new(o, "reason", json_string(reason));
		else
			json_object_set_new(o, "reason", json_sprintf("%.*s "
			    "(cut at %d bytes)", REG_REASON_SHOWN, reason,
			    REG_REASON_SHOWN));
	}
	if ((v = json_object_get(out, "why")) != NULL &&
	    (why = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL) {
		if (strlen(why) <= REG_WHY_SHOWN)
			json_object_set(o, "why", v);
		free(why);
	}
	return o;
}

static json_t *
assignment_row(sqlite3_stmt *st)
{
	json_t *out = regi_col_json(st, 2, json_null());
	json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:I, s:o}",
	    "customer", col_str(st, 0), "app", col_str(st, 1),
	    "outputs", outputs_shown(out), "policy_hash", col_str(st, 3),
	    "time", (json_int_t)sqlite3_column_int64(st, 4),
	    "why", regi_col_json(st, 5, json_null()));

	json_decref(out);
	return o;
}

int
reg_assignment_get(struct registry *r, const char *id,
    json_t **ret_assignment, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a = NULL, *o = NULL, *moves = NULL;
	long long n;
	int rc;

	if ((rc = regi_tx_begin(r, 0, e)) != 0)
		return rc;
	/* The "why" record (column inputs) is bounded by REG_WHY_MAX since
	 * schema 3; older whole inputs were replaced by the migration. */
	if ((rc = regi_prep(r, &st, e, "SELECT customer, app, outputs, "
	    "policy_hash, time, inputs FROM assignments WHERE customer = ?",
	    "s",
	    id)) != 0 || (rc = regi_collect(r, st, assignment_row, &a,
	    e)) != 0)
		return regi_tx_end(r, rc, 0, e);
	if ((o = json_incref(json_array_get(a, 0))) == NULL) {
		json_decref(a);
		return regi_tx_end(r, xerr_set(e, XTCMK_E_NOT_FOUND, "customer "
		    "'%s' has no assignment; list customers with `xtcmkctl "
		    "customer list`", id), 0, e);
	}
	json_decref(a);
	/* Moves since the customer was last (re)created under this id: the
	 * newest REG_MOVES_SHOWN, oldest first, and how many there are. */
#define SINCE	"customer = ?1 AND op = 'move' AND id > coalesce((SELECT " \
	"max(id) FROM moves WHERE customer = ?1 AND op = 'remove'), 0)"
	if ((rc = regi_prep(r, &st, e, "SELECT * FROM (SELECT from_app, "
	    "to_app, reason, actor, time, id FROM moves WHERE " SINCE
	    " ORDER BY id DESC LIMIT ?2) ORDER BY id", "si", id,
	    (long long)REG_MOVES_SHOWN)) == 0 &&
	    (rc = regi_collect(r, st, move_row, &moves, e)) == 0) {
		json_object_set_new(o, "moves", moves);
		if ((n = regi_num(r, e, "SELECT count(*) FROM moves WHERE "
		    SINCE, "s", id)) < 0)
			rc = (int)n;
		else
			json_object_set_new(o, "moves_total", json_integer(n));
	}
#undef SINCE
	if ((rc = regi_tx_end(r, rc, 0, e)) != 0) {
		json_decref(o);
		return rc;
	}
	*ret_assignment = o;
	return 0;
}

static json_t *
log_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I}",
	    "customer", col_str(st, 0), "op", col_str(st, 1),
	    "from", col_str(st, 2), "to", col_str(st, 3),
	    "reason", col_str(st, 4), "actor", col_str(st, 5),
	    "time", (json_int_t)sqlite3_column_int64(st, 6));
}

int
reg_moves_list(struct registry *r, const char *id, json_t **ret_array,
    struct xerr *e)
{
	return regi_list(r, "SELECT customer, op, from_app, to_app, reason, "
	    "actor, time FROM moves WHERE ?1 IS NULL OR customer = ?1 "
	    "ORDER BY id", 1, id, log_row, ret_array, e);
}

static json_t *
log_page_row(sqlite3_stmt *st)
{
	json_t *o = log_row(st);

	if (o != NULL)
		json_object_set_new(o, "id", json_integer(
		    sqlite3_column_int64(st, 7)));
	return o;
}

int
reg_moves_page(struct registry *r, const char *customer, long long after,
    int limit, json_t **ret_items, int *ret_more, struct xerr *e)
{
#define LOG_COLS	"SELECT customer, op, from_app, to_app, reason, " \
	"actor, time, id FROM moves WHERE "
	/* One customer's entries come from the moves_customer index. */
	if (customer != NULL)
		return regi_page(r, LOG_COLS "customer = ? AND id > ? ORDER BY "
		    "id LIMIT ?", "si", customer, after, limit, log_page_row,
		    ret_items, ret_more, e);
	return regi_page(r, LOG_COLS "id > ? ORDER BY id LIMIT ?", "i", NULL,
	    after, limit, log_page_row, ret_items, ret_more, e);
#undef LOG_COLS
}

/* ---- consistency ---- */

/* Each row of `sql` (one text column) becomes a problem: prefix + text. */
static int
problems(struct registry *r, json_t *list, const char *sql,
    const char *prefix, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a, *v;
	size_t i;
	int rc;

	if ((rc = regi_prep(r, &st, e, sql, "")) != 0 ||
	    (rc = regi_collect(r, st, text_row, &a, e)) != 0)
		return rc;
	json_array_foreach(a, i, v)
		json_array_append_new(list, json_sprintf("%s%s", prefix,
		    json_string_value(v) ? json_string_value(v) : "(null)"));
	json_decref(a);
	return 0;
}

int
reg_check(struct registry *r, json_t **ret_report, struct xerr *e)
{
	static const char *const tables[] = { "workloads", "apps", "fics",
	    "customers", "assignments", "moves" };
	static const struct {
		const char *sql, *prefix;
	} checks[] = {
		{ "SELECT app || ' holds ' || count(*) || ' federated "
		  "credentials (at most 20)' FROM fics GROUP BY app "
		  "HAVING count(*) > 20", "application " },
		{ "SELECT a.customer || ' is assigned to missing application "
		  "' || a.app FROM assignments a LEFT JOIN apps p ON "
		  "p.name = a.app WHERE p.name IS NULL", "customer " },
		{ "SELECT a.customer || ' has an assignment but no customer "
		  "record' FROM assignments a LEFT JOIN customers c ON "
		  "c.id = a.customer WHERE c.id IS NULL", "customer " },
		{ "SELECT DISTINCT a.app || ' serves customers but holds no "
		  "federated credential' FROM assignments a WHERE NOT EXISTS "
		  "(SELECT 1 FROM fics f WHERE f.app = a.app)",
		  "application " },
		{ "SELECT f.app || ' -> ' || f.workload || ' names a missing "
		  "workload' FROM fics f LEFT JOIN workloads w ON "
		  "w.name = f.workload WHERE w.name IS NULL", "FIC " },
		{ "SELECT f.app || ' -> ' || f.workload || ' names a missing "
		  "application' FROM fics f LEFT JOIN apps p ON "
		  "p.name = f.app WHERE p.name IS NULL", "FIC " },
		{ "SELECT 'trigger ' || t.n || ' is missing: the 20-FIC limit "
		  "is not enforced by the database' FROM (SELECT "
		  "'fics_max_insert' AS n UNION SELECT 'fics_max_update') t "
		  "WHERE NOT EXISTS (SELECT 1 FROM sqlite_master WHERE "
		  "type = 'trigger' AND name = t.n)", "" },
		{ "SELECT p.name || ' counts ' || p.customers || ' customers "
		  "but serves ' || (SELECT count(*) FROM assignments a WHERE "
		  "a.app = p.name) FROM apps p WHERE p.customers <> (SELECT "
		  "count(*) FROM assignments a WHERE a.app = p.name)",
		  "application " },
		{ "SELECT p.name || ' counts ' || p.fic_count || ' FICs but "
		  "holds ' || (SELECT count(*) FROM fics f WHERE f.app = "
		  "p.name) FROM apps p WHERE p.fic_count <> (SELECT count(*) "
		  "FROM fics f WHERE f.app = p.name)", "application " },
		{ "SELECT p.name || ' label ' || j.key || ' is missing from "
		  "the label index' FROM apps p, json_each(p.labels) j WHERE "
		  "NOT EXISTS (SELECT 1 FROM app_labels l WHERE l.key = j.key "
		  "AND l.value = j.value AND l.app = p.name)", "application " },
		{ "SELECT w.name || ' label ' || j.key || ' is missing from "
		  "the label index' FROM workloads w, json_each(w.labels) j "
		  "WHERE NOT EXISTS (SELECT 1 FROM workload_labels l WHERE "
		  "l.key = j.key AND l.value = j.value AND l.workload = "
		  "w.name)", "workload " },
		{ "PRAGMA integrity_check", "integrity: " },
	};
	json_t *list, *counts;
	char sql[64];
	long long n;
	size_t i;
	int rc;

	if ((rc = regi_tx_begin(r, 0, e)) != 0)
		return rc;
	list = json_array();
	counts = json_object();
	for (i = 0; rc == 0 && i < sizeof(checks) / sizeof(checks[0]); i++)
		rc = problems(r, list, checks[i].sql, checks[i].prefix, e);
	for (i = 0; rc == 0 && i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		    tables[i]);
		if ((n = regi_num(r, e, sql, "")) < 0)
			rc = (int)n;
		else
			json_object_set_new(counts, tables[i],
			    json_integer(n));
	}
	if ((rc = regi_tx_end(r, rc, 0, e)) != 0) {
		json_decref(list);
		json_decref(counts);
		return rc;
	}
	/* integrity_check says "ok" when all is well. */
	for (i = 0; i < json_array_size(list); i++)
		if (strcmp(json_string_value(json_array_get(list, i)),
		    "integrity: ok") == 0)
			json_array_remove(list, i--);
	*ret_report = json_pack("{s:b, s:o, s:o}", "ok",
	    json_array_size(list) == 0, "problems", list, "counts", counts);
	return 0;
}

/* ---- key usage ---- */

int
reg_usage_add(struct registry *r, json_t *rows, struct xerr *e)
{
	json_t *row;
	size_t i;
	int rc;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	json_array_foreach(rows, i, row) {
		rc = regi_run(r, e, "INSERT INTO key_usage (customer, version, "
		    "wraps, unwraps, first, last) VALUES (?, ?, ?, ?, ?, ?) "
		    "ON CONFLICT (customer, version) DO UPDATE SET "
		    "wraps = wraps + excluded.wraps, "
		    "unwraps = unwraps + excluded.unwraps, "
		    "first = min(first, excluded.first), "
		    "last = max(last, excluded.last)", "ssiiii",
		    json_string_value(json_object_get(row, "customer")),
		    json_string_value(json_object_get(row, "version")),
		    (long long)json_integer_value(json_object_get(row, "wraps")),
		    (long long)json_integer_value(json_object_get(row,
		    "unwraps")),
		    (long long)json_integer_value(json_object_get(row, "first")),
		    (long long)json_integer_value(json_object_get(row, "last")));
		if (rc != 0)
			break;
	}
	/* Usage is bookkeeping: it does not change any decision. */
	return regi_tx_end(r, rc, 0, e);
}

static json_t *
usage_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:I, s:I, s:I, s:I}",
	    "version", col_str(st, 0),
	    "wraps", (json_int_t)sqlite3_column_int64(st, 1),
	    "unwraps", (json_int_t)sqlite3_column_int64(st, 2),
	    "first", (json_int_t)sqlite3_column_int64(st, 3),
	    "last", (json_int_t)sqlite3_column_int64(st, 4));
}

int
reg_usage_get(struct registry *r, const char *customer, json_t **ret_array,
    struct xerr *e)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = regi_tx_begin(r, 0, e)) != 0)
		return rc;
	if ((rc = regi_prep(r, &st, e, "SELECT version, wraps, unwraps, first, "
	    "last FROM key_usage WHERE customer = ? ORDER BY first, version",
	    "s", customer)) == 0)
		rc = regi_collect(r, st, usage_row, ret_array, e);
	return regi_tx_end(r, rc, 0, e);
}

int
reg_customer_validate(json_t *customer, struct xerr *e)
{
	struct customer_in ci;
	int rc;

	rc = customer_parse(customer, &ci, e);
	free(ci.kinds);
	free(ci.labels);
	return rc;
}
