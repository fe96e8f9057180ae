/*
 * sqlite.c - the durable registry (see registry.h), part one: opening
 * the SQLite file and bringing its schema up to date, the statement and
 * transaction helpers both halves use (registry_int.h), the generation
 * counter, workload identities, applications and their federated identity
 * credentials.  Customers, assignments, the moves log, key usage and the
 * consistency check are in sqlite_customer.c.
 *
 * Durability: WAL with synchronous=FULL, so a commit that returned has
 * reached the disk.  Every write is one BEGIN IMMEDIATE transaction that
 * checks the invariants on the data it is about to change; a trigger
 * refuses a 21st FIC even if the C checks were bypassed.  One connection
 * behind a mutex serves all threads.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "jsonw.h"
#include "registry.h"
#include "registry_int.h"
#include "strhash.h"
#include "validate.h"

#define REG_BUSY_MS		5000		/* wait for another writer */
#define REG_APPLICATION_ID	0x78746b72	/* "xtkr" in the file header */
#define FIC_NAME_MAX		120		/* Graph: 3-120 characters */
#define REG_VACUUM_BEFORE	3	/* migrating from below: VACUUM once */

/* Migration N (1-based) brings user_version from N-1 to N. */
static const char *const migrations[] = {
	"CREATE TABLE workloads ("
	" name TEXT PRIMARY KEY, client_id TEXT NOT NULL,"
	" principal_id TEXT NOT NULL UNIQUE, resource_id TEXT,"
	" labels TEXT NOT NULL DEFAULT '{}', created INTEGER NOT NULL);"
	"CREATE TABLE apps ("
	" name TEXT PRIMARY KEY, client_id TEXT UNIQUE,"
	" labels TEXT NOT NULL DEFAULT '{}', created INTEGER NOT NULL);"
	"CREATE TABLE fics ("
	" app TEXT NOT NULL REFERENCES apps(name),"
	" workload TEXT NOT NULL REFERENCES workloads(name),"
	" name TEXT NOT NULL, created INTEGER NOT NULL,"
	" PRIMARY KEY (app, workload), UNIQUE (app, name));"
	"CREATE INDEX fics_workload ON fics(workload);"
	"CREATE TRIGGER fics_max_insert BEFORE INSERT ON fics"
	" WHEN (SELECT count(*) FROM fics WHERE app = NEW.app) >= 20"
	" BEGIN SELECT RAISE(ABORT, 'an application holds at most 20"
	" federated credentials'); END;"
	"CREATE TRIGGER fics_max_update BEFORE UPDATE OF app ON fics"
	" WHEN NEW.app <> OLD.app AND"
	" (SELECT count(*) FROM fics WHERE app = NEW.app) >= 20"
	" BEGIN SELECT RAISE(ABORT, 'an application holds at most 20"
	" federated credentials'); END;"
	"CREATE TABLE customers ("
	" id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_uri TEXT NOT NULL,"
	" vault_auth TEXT NOT NULL"
	"  CHECK (vault_auth IN ('rbac', 'access-policy')),"
	" kinds TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}',"
	" created INTEGER NOT NULL);"
	"CREATE TABLE assignments ("
	" customer TEXT PRIMARY KEY REFERENCES customers(id),"
	" app TEXT NOT NULL REFERENCES apps(name),"
	" inputs TEXT NOT NULL, outputs TEXT NOT NULL, policy_hash TEXT,"
	" time INTEGER NOT NULL);"
	"CREATE INDEX assignments_app ON assignments(app);"
	"CREATE TABLE moves ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL,"
	" op TEXT NOT NULL CHECK (op IN ('move', 'remove')),"
	" from_app TEXT, to_app TEXT, reason TEXT, actor TEXT,"
	" time INTEGER NOT NULL);"
	"CREATE INDEX moves_customer ON moves(customer);",
	/* 2: per-version key usage (wraps, unwraps, first and last use). */
	"CREATE TABLE key_usage ("
	" customer TEXT NOT NULL, version TEXT NOT NULL,"
	" wraps INTEGER NOT NULL DEFAULT 0, unwraps INTEGER NOT NULL DEFAULT 0,"
	" first INTEGER NOT NULL, last INTEGER NOT NULL,"
	" PRIMARY KEY (customer, version));",
	/* 3: scale.  Label indexes and per-application counts kept by
	 * triggers in the writing transaction, the numbered-name columns
	 * fill order needs, and the stored decision inputs replaced by a
	 * compact record (the full input is no longer stored). */
	"CREATE TABLE app_labels ("
	" key TEXT NOT NULL, value TEXT NOT NULL, app TEXT NOT NULL,"
	" PRIMARY KEY (key, value, app)) WITHOUT ROWID;"
	"CREATE TABLE workload_labels ("
	" key TEXT NOT NULL, value TEXT NOT NULL, workload TEXT NOT NULL,"
	" PRIMARY KEY (key, value, workload)) WITHOUT ROWID;"
	"INSERT INTO app_labels SELECT j.key, j.value, a.name"
	" FROM apps a, json_each(a.labels) j;"
	"INSERT INTO workload_labels SELECT j.key, j.value, w.name"
	" FROM workloads w, json_each(w.labels) j;"
	"CREATE TRIGGER apps_labels_insert AFTER INSERT ON apps BEGIN"
	" INSERT INTO app_labels SELECT j.key, j.value, NEW.name"
	"  FROM json_each(NEW.labels) j; END;"
	"CREATE TRIGGER apps_labels_delete AFTER DELETE ON apps BEGIN"
	" DELETE FROM app_labels WHERE (key, value, app) IN"
	"  (SELECT j.key, j.value, OLD.name FROM json_each(OLD.labels) j);"
	" END;"
	"CREATE TRIGGER apps_labels_update AFTER UPDATE OF name, labels ON apps"
	" BEGIN"
	" DELETE FROM app_labels WHERE (key, value, app) IN"
	"  (SELECT j.key, j.value, OLD.name FROM json_each(OLD.labels) j);"
	" INSERT INTO app_labels SELECT j.key, j.value, NEW.name"
	"  FROM json_each(NEW.labels) j; END;"
	"CREATE TRIGGER workloads_labels_insert AFTER INSERT ON workloads BEGIN"
	" INSERT INTO workload_labels SELECT j.key, j.value, NEW.name"
	"  FROM json_each(NEW.labels) j; END;"
	"CREATE TRIGGER workloads_labels_delete AFTER DELETE ON workloads BEGIN"
	" DELETE FROM workload_labels WHERE (key, value, workload) IN"
	"  (SELECT j.key, j.value, OLD.name FROM json_each(OLD.labels) j);"
	" END;"
	"CREATE TRIGGER workloads_labels_update AFTER UPDATE OF name, labels"
	" ON workloads BEGIN"
	" DELETE FROM workload_labels WHERE (key, value, workload) IN"
	"  (SELECT j.key, j.value, OLD.name FROM json_each(OLD.labels) j);"
	" INSERT INTO workload_labels SELECT j.key, j.value, NEW.name"
	"  FROM json_each(NEW.labels) j; END;"
	"ALTER TABLE apps ADD COLUMN customers INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE apps ADD COLUMN fic_count INTEGER NOT NULL DEFAULT 0;"
	"UPDATE apps SET"
	" customers = (SELECT count(*) FROM assignments WHERE app = apps.name),"
	" fic_count = (SELECT count(*) FROM fics WHERE app = apps.name);"
	"CREATE TRIGGER assignments_count_insert AFTER INSERT ON assignments"
	" BEGIN UPDATE apps SET customers = customers + 1"
	"  WHERE name = NEW.app; END;"
	"CREATE TRIGGER assignments_count_delete AFTER DELETE ON assignments"
	" BEGIN UPDATE apps SET customers = customers - 1"
	"  WHERE name = OLD.app; END;"
	"CREATE TRIGGER assignments_count_update AFTER UPDATE OF app"
	" ON assignments WHEN NEW.app <> OLD.app BEGIN"
	" UPDATE apps SET customers = customers - 1 WHERE name = OLD.app;"
	" UPDATE apps SET customers = customers + 1 WHERE name = NEW.app;"
	" END;"
	"CREATE TRIGGER fics_count_insert AFTER INSERT ON fics"
	" BEGIN UPDATE apps SET fic_count = fic_count + 1"
	"  WHERE name = NEW.app; END;"
	"CREATE TRIGGER fics_count_delete AFTER DELETE ON fics"
	" BEGIN UPDATE apps SET fic_count = fic_count - 1"
	"  WHERE name = OLD.app; END;"
	"CREATE TRIGGER fics_count_update AFTER UPDATE OF app ON fics"
	" WHEN NEW.app <> OLD.app BEGIN"
	" UPDATE apps SET fic_count = fic_count - 1 WHERE name = OLD.app;"
	" UPDATE apps SET fic_count = fic_count + 1 WHERE name = NEW.app;"
	" END;"
	/* "<stem><n>": the name without its trailing digits (1 to 18 of
	 * them), and n; NULL for names that do not end in digits. */
	"ALTER TABLE apps ADD COLUMN stem TEXT GENERATED ALWAYS AS (CASE"
	" WHEN length(rtrim(name, '0123456789')) BETWEEN"
	"  max(length(name) - 18, 1) AND length(name) - 1"
	" THEN rtrim(name, '0123456789') END) VIRTUAL;"
	"ALTER TABLE apps ADD COLUMN num INTEGER GENERATED ALWAYS AS (CASE"
	" WHEN length(rtrim(name, '0123456789')) BETWEEN"
	"  max(length(name) - 18, 1) AND length(name) - 1"
	" THEN CAST(substr(name, length(rtrim(name, '0123456789')) + 1)"
	"  AS INTEGER) END) VIRTUAL;"
	"CREATE INDEX apps_stem_num ON apps(stem, num);"
	"CREATE INDEX apps_stem_customers ON apps(stem, customers);"
	"UPDATE assignments SET inputs = json_object('migrated',"
	" 'schema 3 keeps a compact record instead of the whole input',"
	" 'apps', CASE WHEN json_valid(inputs)"
	"  THEN json_array_length(inputs, '$.apps') END,"
	" 'workloads', CASE WHEN json_valid(inputs)"
	"  THEN json_array_length(inputs, '$.workloads') END)"
	" WHERE inputs <> 'null';",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
    REG_SCHEMA_VERSION, "one migration per schema version");

const char *
reg_migration_sql(int n)
{
	if (n < 1 || n > REG_SCHEMA_VERSION)
		return NULL;
	return migrations[n - 1];
}

/* SQLite failure: busy, a trigger's refusal, or an internal error. */
int
regi_dberr(struct registry *r, struct xerr *e, int rc)
{
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return xerr_set(e, XTCMK_E_BUSY, "registry %s is locked by "
		    "another writer: retry later", r->path);
	if (rc == SQLITE_CONSTRAINT_TRIGGER)
		return xerr_set(e, XTCMK_E_CONFLICT, "registry refused the "
		    "change: %s", sqlite3_errmsg(r->db));
	return xerr_set(e, XTCMK_E_INTERNAL, "registry %s: SQLite error: %s",
	    r->path, sqlite3_errmsg(r->db));
}

/* The cache slot of `sql`: its hash, probing linearly. */
static struct regi_stmt *
cache_slot(struct registry *r, const char *sql, int *ret_free)
{
	unsigned h = strhash(sql), i, k;
	struct regi_stmt *c;

	for (k = 0; k < REGI_STMT_CACHE; k++) {
		i = (h + k) % REGI_STMT_CACHE;
		c = &r->cache[i];
		if (c->st == NULL) {
			*ret_free = 1;
			return c;
		}
		if (strcmp(sqlite3_sql(c->st), sql) == 0) {
			*ret_free = 0;
			return c;
		}
	}
	return NULL;
}

/*
 * Prepare `sql` (from the cache when `cached`) and bind one argument per
 * character of `fmt`: 's' a string (NULL binds NULL), 'i' a long long.
 */
static int
vprep(struct registry *r, int cached, sqlite3_stmt **ret_st, struct xerr *e,
    const char *sql, const char *fmt, va_list ap)
{
	struct regi_stmt *c = NULL;
	sqlite3_stmt *st = NULL;
	const char *s;
	int i, rc, fresh = 1;

	if (cached && (c = cache_slot(r, sql, &fresh)) != NULL && !fresh) {
		if (c->busy)
			c = NULL;
		else
			st = c->st;
	}
	if (st != NULL)
		r->n_reused++;
	else if ((rc = sqlite3_prepare_v3(r->db, sql, -1,
	    c != NULL ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL)) !=
	    SQLITE_OK)
		return regi_dberr(r, e, rc);
	else
		r->n_prepared++;
	if (c != NULL) {
		c->st = st;
		c->busy = 1;
	}
	for (i = 0; fmt[i] != '\0'; i++) {
		if (fmt[i] == 's') {
			s = va_arg(ap, const char *);
			rc = s == NULL ? sqlite3_bind_null(st, i + 1) :
			    sqlite3_bind_text(st, i + 1, s, -1,
			    SQLITE_TRANSIENT);
		} else
			rc = sqlite3_bind_int64(st, i + 1,
			    va_arg(ap, long long));
		if (rc != SQLITE_OK) {
			rc = regi_dberr(r, e, rc);
			regi_finish(r, st);
			return rc;
		}
	}
	*ret_st = st;
	return 0;
}

int
regi_prep(struct registry *r, sqlite3_stmt **ret_st, struct xerr *e,
    const char *sql, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, 0, ret_st, e, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int
regi_prepc(struct registry *r, sqlite3_stmt **ret_st, struct xerr *e,
    const char *sql, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, 1, ret_st, e, sql, fmt, ap);
	va_end(ap);
	return rc;
}

void
regi_finish(struct registry *r, sqlite3_stmt *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < REGI_STMT_CACHE; i++)
		if (r->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			r->cache[i].busy = 0;
			return;
		}
	sqlite3_finalize(st);
}

/* Run a statement that returns no rows. */
int
regi_run(struct registry *r, struct xerr *e, const char *sql, const char *fmt,
    ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, 1, &st, e, sql, fmt, ap);
	va_end(ap);
	if (rc != 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	rc = rc == SQLITE_DONE ? 0 : regi_dberr(r, e, rc);
	regi_finish(r, st);
	return rc;
}

/* First column of the first row as a number (0 without a row), or <0. */
long long
regi_num(struct registry *r, struct xerr *e, const char *sql, const char *fmt,
    ...)
{
	sqlite3_stmt *st;
	va_list ap;
	long long v = 0;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, 1, &st, e, sql, fmt, ap);
	va_end(ap);
	if (rc != 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		v = regi_dberr(r, e, rc);
	regi_finish(r, st);
	return v;
}

/*
 * Lock and open a transaction: immediate for writes, deferred for reads;
 * inside an open one (a batch) a savepoint instead.
 */
int
regi_tx_begin(struct registry *r, int write, struct xerr *e)
{
	int rc;

	pthread_mutex_lock(&r->mu);
	rc = regi_run(r, e, r->depth > 0 ? "SAVEPOINT regi" : write ?
	    "BEGIN IMMEDIATE" : "BEGIN", "");
	if (rc != 0)
		pthread_mutex_unlock(&r->mu);
	else
		r->depth++;
	return rc;
}

/*
 * Commit if rc is 0, else roll back; unlock; return the outcome.  A
 * nested transaction releases or rolls back its savepoint; the
 * generation moves when the outermost one commits.
 */
int
regi_tx_end(struct registry *r, int rc, int changed, struct xerr *e)
{
	if (r->depth > 1) {
		if (rc >= 0)
			rc = regi_run(r, e, "RELEASE regi", "");
		if (rc < 0) {
			sqlite3_exec(r->db, "ROLLBACK TO regi; RELEASE regi",
			    NULL, NULL, NULL);
		} else if (changed)
			r->changed = 1;
		r->depth--;
		pthread_mutex_unlock(&r->mu);
		return rc < 0 ? rc : 0;
	}
	if (rc >= 0) {
		if ((rc = regi_run(r, e, "COMMIT", "")) == 0 &&
		    (changed || r->changed))
			atomic_fetch_add(&r->gen, 1);
	}
	if (rc < 0 && !sqlite3_get_autocommit(r->db))
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	r->depth = 0;
	r->changed = 0;
	pthread_mutex_unlock(&r->mu);
	return rc < 0 ? rc : 0;
}

int
reg_batch_begin(struct registry *r, struct xerr *e)
{
	return regi_tx_begin(r, 1, e);
}

int
reg_batch_end(struct registry *r, int commit, struct xerr *e)
{
	return regi_tx_end(r, commit ? 0 : -XTCMK_E_INTERNAL, 1, e);
}

/* A string member of `o`: absent or null gives NULL, other types fail. */
int
regi_get_str(json_t *o, const char *key, const char *what, const char **ret_s,
    struct xerr *e)
{
	json_t *v = json_object_get(o, key);

	*ret_s = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return xerr_set(e, XTCMK_E_INVAL, "%s: \"%s\" must be a "
		    "string", what, key);
	*ret_s = json_string_value(v);
	return 0;
}

/* Validate a GUID and copy it lowercased (the stored, canonical form). */
int
regi_guid_lower(const char *s, const char *what, char *buf, struct xerr *e)
{
	size_t i;

	if (valid_guid(s, what, e) != 0)
		return -XTCMK_E_INVAL;
	for (i = 0; i <= 36; i++)
		buf[i] = (s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i];
	return 0;
}

/* Validate a labels object (NULL/null = none); *ret_text is malloc'ed. */
int
regi_labels_text(json_t *labels, const char *what, char **ret_text,
    struct xerr *e)
{
	const char *k;
	json_t *v;

	if (labels == NULL || json_is_null(labels))
		labels = json_object();
	else if (!json_is_object(labels))
		return xerr_set(e, XTCMK_E_INVAL, "%s: labels must be an "
		    "object of strings, e.g. {\"region\": \"eu\"}", what);
	else
		json_incref(labels);
	if (json_object_size(labels) > LABELS_MAX) {
		json_decref(labels);
		return xerr_set(e, XTCMK_E_INVAL, "%s has %zu labels; at most "
		    "%d are allowed", what, json_object_size(labels),
		    LABELS_MAX);
	}
	json_object_foreach(labels, k, v) {
		if (!json_is_string(v) || valid_label(k,
		    json_string_value(v), e) != 0) {
			json_decref(labels);
			if (!json_is_string(v))
				return xerr_set(e, XTCMK_E_INVAL, "%s: label "
				    "'%s' must have a string value", what, k);
			return -XTCMK_E_INVAL;
		}
	}
	*ret_text = jsonw_dumps(labels, NULL);
	json_decref(labels);
	return *ret_text == NULL ? xerr_set(e, XTCMK_E_NOMEM, "out of memory")
	    : 0;
}

/* JSON text of a column, parsed; NULL or unparsable text gives `dflt`. */
json_t *
regi_col_json(sqlite3_stmt *st, int i, json_t *dflt)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;

	if (v == NULL)
		return dflt;
	json_decref(dflt);
	return v;
}

/* Collect the rows of a prepared statement (cached or not), each made
 * by `fn`; the statement is finished. */
int
regi_collect(struct registry *r, sqlite3_stmt *st,
    json_t *(*fn)(sqlite3_stmt *), json_t **ret_array, struct xerr *e)
{
	json_t *a = json_array();
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, fn(st));
	regi_finish(r, st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return regi_dberr(r, e, rc);
	}
	*ret_array = a;
	return 0;
}

int
regi_list(struct registry *r, const char *sql, int nargs, const char *arg,
    json_t *(*fn)(sqlite3_stmt *), json_t **ret_array, struct xerr *e)
{
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = regi_prep(r, &st, e, sql, nargs ? "s" : "", arg)) == 0)
		rc = regi_collect(r, st, fn, ret_array, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
regi_page_limit(int limit)
{
	return limit < 1 ? 1 : limit > REG_PAGE_MAX ? REG_PAGE_MAX : limit;
}

int
regi_page(struct registry *r, const char *sql, const char *fmt,
    const char *s, long long n, int limit, json_t *(*fn)(sqlite3_stmt *),
    json_t **ret_items, int *ret_more, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a = NULL;
	long long rows;
	int rc;

	limit = regi_page_limit(limit);
	rows = (long long)limit + 1;
	pthread_mutex_lock(&r->mu);
	if (strcmp(fmt, "s") == 0)
		rc = regi_prep(r, &st, e, sql, "si", s, rows);
	else if (strcmp(fmt, "i") == 0)
		rc = regi_prep(r, &st, e, sql, "ii", n, rows);
	else
		rc = regi_prep(r, &st, e, sql, "sii", s, n, rows);
	if (rc == 0)
		rc = regi_collect(r, st, fn, &a, e);
	pthread_mutex_unlock(&r->mu);
	if (rc != 0)
		return rc;
	*ret_more = json_array_size(a) > (size_t)limit;
	if (*ret_more)
		json_array_remove(a, (size_t)limit);
	*ret_items = a;
	return 0;
}

/* Indexed by OBJ_* (registry_int.h). */
static const struct {
	const char	*kind, *sql, *cmd;
} objs[] = {
	{ "workload", "SELECT count(*) FROM workloads WHERE name = ?",
	    "workload" },
	{ "application", "SELECT count(*) FROM apps WHERE name = ?", "app" },
	{ "customer", "SELECT count(*) FROM customers WHERE id = ?",
	    "customer" },
};

int
regi_not_found(struct xerr *e, int obj, const char *name)
{
	return xerr_set(e, XTCMK_E_NOT_FOUND, "no %s '%s'; list them with "
	    "`xtcmkctl %s list`", objs[obj].kind, name ? name : "",
	    objs[obj].cmd);
}

/* 0 if the object exists, else NOT_FOUND (or a database error). */
int
regi_need(struct registry *r, int obj, const char *name, struct xerr *e)
{
	long long n = regi_num(r, e, objs[obj].sql, "s", name);

	return n < 0 ? (int)n : n == 0 ? regi_not_found(e, obj, name) : 0;
}

/* The single row `sql` (bound to `key`) returns, made by `fn`. */
int
regi_get_one(struct registry *r, const char *sql, const char *key,
    json_t *(*fn)(sqlite3_stmt *), int obj, json_t **ret, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a = NULL;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = regi_prepc(r, &st, e, sql, "s", key)) == 0)
		rc = regi_collect(r, st, fn, &a, e);
	pthread_mutex_unlock(&r->mu);
	if (rc == 0 && json_array_size(a) == 0)
		rc = regi_not_found(e, obj, key);
	if (rc == 0)
		*ret = json_incref(json_array_get(a, 0));
	json_decref(a);
	return rc;
}

/*
 * Open or create the file, with mode 0600 before SQLite touches it (the
 * -wal and -shm files inherit the main file's mode), then bring the
 * schema up to date in one transaction.
 */
static int
migrate(struct registry *r, struct xerr *e)
{
	long long v, appid, objects;
	size_t i, n = sizeof(migrations) / sizeof(migrations[0]);
	char sql[64];
	int rc;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	if ((v = regi_num(r, e, "PRAGMA user_version", "")) < 0 ||
	    (appid = regi_num(r, e, "PRAGMA application_id", "")) < 0 ||
	    (objects = regi_num(r, e, "SELECT count(*) FROM sqlite_master",
	    "")) < 0)
		return regi_tx_end(r, -XTCMK_E_INTERNAL, 0, e);
	if ((appid != 0 && appid != REG_APPLICATION_ID) ||
	    (v == 0 && objects != 0))
		return regi_tx_end(r, xerr_set(e, XTCMK_E_INVAL, "%s is an "
		    "SQLite file but not an xtcmk registry: point the agent "
		    "at another path", r->path), 0, e);
	if (v > (long long)n)
		return regi_tx_end(r, xerr_set(e, XTCMK_E_UNSUPPORTED,
		    "registry %s has schema version %lld, newer than this "
		    "build understands (%zu): run the newer xtcmkd or restore "
		    "a backup", r->path, v, n), 0, e);
	for (i = (size_t)v; i < n; i++) {
		if ((rc = sqlite3_exec(r->db, migrations[i], NULL, NULL,
		    NULL)) != SQLITE_OK)
			return regi_tx_end(r, regi_dberr(r, e, rc), 0, e);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", i + 1);
		if ((rc = regi_run(r, e, sql, "")) != 0)
			return regi_tx_end(r, rc, 0, e);
	}
	if (appid == 0) {
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d",
		    REG_APPLICATION_ID);
		if ((rc = regi_run(r, e, sql, "")) != 0)
			return regi_tx_end(r, rc, 0, e);
	}
	if ((rc = regi_tx_end(r, 0, 0, e)) != 0)
		return rc;
	/*
	 * Schema 3 dropped the stored decision inputs, most of an old
	 * file: give the space back once.  VACUUM copies only the live
	 * pages, now small; if it fails the registry is still whole.
	 */
	if (v > 0 && v < REG_VACUUM_BEFORE &&
	    sqlite3_exec(r->db, "VACUUM", NULL, NULL, NULL) == SQLITE_OK)
		sqlite3_exec(r->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL,
		    NULL, NULL);
	return 0;
}

int
reg_open(const char *path, struct registry **ret_reg, struct xerr *e)
{
	struct registry *r;
	struct stat sb;
	sqlite3_stmt *st;
	int fd, rc;

	if (path == NULL || *path == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "registry path is empty: "
		    "set the state directory in xtcmk.conf");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot open registry "
		    "%s: %s; check that its directory exists and belongs to "
		    "the agent's user", path, strerror(errno));
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    ((sb.st_mode & 077) != 0 && fchmod(fd, 0600) == -1)) {
		rc = errno;
		close(fd);
		return xerr_set(e, XTCMK_E_INTERNAL, "registry %s: not a "
		    "regular file, or its mode cannot be set to 0600 (%s)",
		    path, strerror(rc));
	}
	close(fd);

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->path = strdup(path)) == NULL) {
		free(r);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	{
		pthread_mutexattr_t ma;

		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&r->mu, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	atomic_init(&r->gen, 0);
	rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = r->db ? regi_dberr(r, e, rc) : xerr_set(e, XTCMK_E_NOMEM,
		    "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(r->db, 1);
	sqlite3_busy_timeout(r->db, REG_BUSY_MS);
	sqlite3_update_hook(r->db, regi_update_hook, r);
	if ((rc = regi_prep(r, &st, e, "PRAGMA journal_mode = WAL", "")) != 0)
		goto fail;
	rc = sqlite3_step(st) == SQLITE_ROW && sqlite3_stricmp((const char *)
	    sqlite3_column_text(st, 0), "wal") == 0;
	sqlite3_finalize(st);
	if (!rc) {
		rc = xerr_set(e, XTCMK_E_INTERNAL, "registry %s: cannot use "
		    "write-ahead logging (%s); put the state directory on a "
		    "local file system", path, sqlite3_errmsg(r->db));
		goto fail;
	}
	if ((rc = regi_run(r, e, "PRAGMA synchronous = FULL", "")) != 0 ||
	    (rc = regi_run(r, e, "PRAGMA foreign_keys = ON", "")) != 0 ||
	    (rc = regi_run(r, e, "PRAGMA trusted_schema = OFF", "")) != 0 ||
	    (rc = regi_run(r, e, "PRAGMA cache_size = " REGI_CACHE_KIB,
	    "")) != 0 ||
	    (rc = regi_run(r, e, "PRAGMA temp_store = MEMORY", "")) != 0 ||
	    (rc = migrate(r, e)) != 0)
		goto fail;
	*ret_reg = r;
	return 0;
fail:
	reg_close(r);
	return rc;
}

void
reg_close(struct registry *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < REGI_STMT_CACHE; i++)
		sqlite3_finalize(r->cache[i].st);
	regi_wlsel_clear(r);
	sqlite3_close_v2(r->db);
	pthread_mutex_destroy(&r->mu);
	free(r->path);
	free(r);
}

void
reg_stmt_counts(struct registry *r, unsigned long long *ret_prepared,
    unsigned long long *ret_reused)
{
	pthread_mutex_lock(&r->mu);
	*ret_prepared = r->n_prepared;
	*ret_reused = r->n_reused;
	pthread_mutex_unlock(&r->mu);
}

unsigned long long
reg_generation(struct registry *r)
{
	return atomic_load(&r->gen);
}

/* ---- workloads ---- */

int
reg_workload_add(struct registry *r, json_t *wl, struct xerr *e)
{
	const char *name, *cid, *pid, *rid;
	char client[37], principal[37], *labels = NULL;
	long long n;
	int rc;

	if (!json_is_object(wl))
		return xerr_set(e, XTCMK_E_INVAL, "workload must be a JSON "
		    "object with name, client_id and principal_id");
	if (regi_get_str(wl, "name", "workload", &name, e) != 0 ||
	    regi_get_str(wl, "client_id", "workload", &cid, e) != 0 ||
	    regi_get_str(wl, "principal_id", "workload", &pid, e) != 0 ||
	    regi_get_str(wl, "resource_id", "workload", &rid, e) != 0 ||
	    valid_name(name, "workload name", e) != 0 ||
	    regi_guid_lower(cid, "workload client_id", client, e) != 0 ||
	    regi_guid_lower(pid, "workload principal_id", principal, e) != 0 ||
	    (rid != NULL && valid_uami_resource_id(rid, e) != 0) ||
	    regi_labels_text(json_object_get(wl, "labels"), "workload", &labels,
	    e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		goto out;
	if ((n = regi_num(r, e, "SELECT count(*) FROM workloads WHERE name = ?",
	    "s", name)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "workload "
		    "'%s' exists already; remove it first to change it", name);
	else if ((n = regi_num(r, e, "SELECT count(*) FROM workloads WHERE "
	    "principal_id = ?", "s", principal)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "another "
		    "workload has principal id %s; each identity is registered "
		    "once", principal);
	else
		rc = regi_run(r, e, "INSERT INTO workloads (name, client_id, "
		    "principal_id, resource_id, labels, created) VALUES "
		    "(?, ?, ?, ?, ?, ?)", "sssssi", name, client, principal,
		    rid, labels, (long long)time(NULL));
	rc = regi_tx_end(r, rc, 1, e);
out:
	free(labels);
	return rc;
}

/* FICs of workload `name` (the fics_workload index); r->mu held. */
static long long
workload_fics(struct registry *r, const char *name, struct xerr *e)
{
	return regi_num(r, e, "SELECT count(*) FROM fics WHERE workload = ?",
	    "s", name);
}

int
reg_workload_fic_count(struct registry *r, const char *name, struct xerr *e)
{
	long long n;

	pthread_mutex_lock(&r->mu);
	n = workload_fics(r, name, e);
	pthread_mutex_unlock(&r->mu);
	return n < 0 ? (int)n : n > INT_MAX ? INT_MAX : (int)n;
}

int
reg_workload_remove(struct registry *r, const char *name, struct xerr *e)
{
	long long n;
	int rc;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = regi_need(r, OBJ_WORKLOAD, name, e)) != 0)
		;
	else if ((n = workload_fics(r, name, e)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_CONFLICT, "workload "
		    "'%s' holds federated credentials on %lld application(s): "
		    "remove those first", name, n);
	else
		rc = regi_run(r, e, "DELETE FROM workloads WHERE name = ?", "s",
		    name);
	return regi_tx_end(r, rc, 1, e);
}

static json_t *
workload_row(sqlite3_stmt *st)
{
	json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:I}",
	    "name", col_str(st, 0), "client_id", col_str(st, 1),
	    "principal_id", col_str(st, 2),
	    "labels", regi_col_json(st, 4, json_object()),
	    "created", (json_int_t)sqlite3_column_int64(st, 5));

	if (o != NULL && sqlite3_column_type(st, 3) != SQLITE_NULL)
		json_object_set_new(o, "resource_id", col_str(st, 3));
	return o;
}

#define WORKLOAD_COLS	"SELECT name, client_id, principal_id, resource_id, " \
	"labels, created FROM workloads"

int
reg_workload_get(struct registry *r, const char *name, json_t **ret_wl,
    struct xerr *e)
{
	return regi_get_one(r, WORKLOAD_COLS " WHERE name = ?", name,
	    workload_row, OBJ_WORKLOAD, ret_wl, e);
}

int
reg_workload_list(struct registry *r, json_t **ret_array, struct xerr *e)
{
	return regi_list(r, WORKLOAD_COLS " ORDER BY name", 0, NULL,
	    workload_row, ret_array, e);
}

int
reg_workload_page(struct registry *r, const char *after, int limit,
    json_t **ret_items, int *ret_more, struct xerr *e)
{
	return regi_page(r, WORKLOAD_COLS " WHERE name > ? ORDER BY name "
	    "LIMIT ?", "s", after != NULL ? after : "", 0, limit, workload_row,
	    ret_items, ret_more, e);
}

/* ---- applications and FICs ---- */

int
regi_app_insert(struct registry *r, const char *name, const char *client_id,
    const char *labels, struct xerr *e)
{
	long long n;

	if ((n = regi_num(r, e, "SELECT count(*) FROM apps WHERE name = ?", "s",
	    name)) != 0)
		return n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS,
		    "application '%s' exists already", name);
	if (client_id != NULL && (n = regi_num(r, e, "SELECT count(*) FROM "
	    "apps WHERE client_id = ?", "s", client_id)) != 0)
		return n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "another "
		    "application has client id %s", client_id);
	return regi_run(r, e, "INSERT INTO apps (name, client_id, labels, "
	    "created) VALUES (?, ?, ?, ?)", "sssi", name, client_id, labels,
	    (long long)time(NULL));
}

int
reg_app_add(struct registry *r, json_t *app, struct xerr *e)
{
	const char *name, *cid;
	char client[37], *labels = NULL;
	int rc;

	if (!json_is_object(app))
		return xerr_set(e, XTCMK_E_INVAL, "application must be a JSON "
		    "object with at least a name");
	if (regi_get_str(app, "name", "application", &name, e) != 0 ||
	    regi_get_str(app, "client_id", "application", &cid, e) != 0 ||
	    valid_name(name, "application name", e) != 0 ||
	    (cid != NULL && regi_guid_lower(cid, "application client_id",
	    client, e) != 0) ||
	    regi_labels_text(json_object_get(app, "labels"), "application",
	    &labels, e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = regi_tx_begin(r, 1, e)) == 0)
		rc = regi_tx_end(r, regi_app_insert(r, name,
		    cid ? client : NULL, labels, e), 1, e);
	free(labels);
	return rc;
}

/*
 * The client id is what customers consent to: once customers are on an
 * application, changing it would strand them, so that is refused.
 */
int
reg_app_set_client_id(struct registry *r, const char *name,
    const char *client_id, struct xerr *e)
{
	sqlite3_stmt *st;
	char client[37], old[37] = "";
	long long n;
	int rc, found = 0;

	if (regi_guid_lower(client_id, "application client_id", client, e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = regi_prep(r, &st, e, "SELECT coalesce(client_id, '') FROM "
	    "apps WHERE name = ?", "s", name)) != 0)
		return regi_tx_end(r, rc, 0, e);
	if (sqlite3_step(st) == SQLITE_ROW) {
		found = 1;
		snprintf(old, sizeof(old), "%s", sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (!found)
		rc = regi_not_found(e, OBJ_APP, name);
	else if (strcmp(old, client) == 0)
		return regi_tx_end(r, 0, 0, e);
	else if ((n = regi_num(r, e, "SELECT count(*) FROM assignments WHERE "
	    "app = ?", "s", name)) < 0)
		rc = (int)n;
	else if (n > 0 && old[0] != '\0')
		rc = xerr_set(e, XTCMK_E_CONFLICT,
		    "application '%s' serves %lld customer(s) who consented to "
		    "client id %s; register a new application instead", name,
		    n, old);
	else if ((n = regi_num(r, e, "SELECT count(*) FROM apps WHERE "
	    "client_id = ?", "s", client)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "another "
		    "application has client id %s", client);
	else
		rc = regi_run(r, e, "UPDATE apps SET client_id = ? WHERE "
		    "name = ?", "ss", client, name);
	return regi_tx_end(r, rc, 1, e);
}

static json_t *
app_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:I, s:[], s:[], s:i, s:i}",
	    "name", col_str(st, 0), "client_id", col_str(st, 1),
	    "labels", regi_col_json(st, 2, json_object()),
	    "created", (json_int_t)sqlite3_column_int64(st, 3),
	    "federated_credentials", "fics", "fic_count", 0, "customers", 0);
}

#define APP_COLS	"SELECT name, client_id, labels, created FROM apps"

/*
 * Give the applications in `apps` (objects from app_row(), in name order)
 * their FICs and customer counts, with two range queries over the names
 * from the first to the last (on the fics primary key and the
 * assignments_app index), not one per application.  Locked.
 */
static int
app_fill(struct registry *r, json_t *apps, struct xerr *e)
{
	const char *lo, *hi, *name;
	sqlite3_stmt *st;
	json_t *by = json_object(), *a, *f;
	size_t i, n = json_array_size(apps);
	int rc = 0;

	if (n == 0) {
		json_decref(by);
		return 0;
	}
	json_array_foreach(apps, i, a)
		json_object_set(by, json_string_value(json_object_get(a,
		    "name")), a);
	lo = json_string_value(json_object_get(json_array_get(apps, 0),
	    "name"));
	hi = json_string_value(json_object_get(json_array_get(apps, n - 1),
	    "name"));
	if ((rc = regi_prep(r, &st, e, "SELECT app, workload, name, created "
	    "FROM fics WHERE app >= ? AND app <= ? ORDER BY app, workload",
	    "ss", lo, hi)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		if (name == NULL || (a = json_object_get(by, name)) == NULL)
			continue;
		f = json_pack("{s:o, s:o, s:I}", "workload", col_str(st, 1),
		    "name", col_str(st, 2),
		    "created", (json_int_t)sqlite3_column_int64(st, 3));
		json_array_append_new(json_object_get(a,
		    "federated_credentials"), f);
		json_array_append_new(json_object_get(a, "fics"),
		    col_str(st, 1));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rc = regi_dberr(r, e, rc);
		goto out;
	}
	if ((rc = regi_prep(r, &st, e, "SELECT app, count(*) FROM assignments "
	    "WHERE app >= ? AND app <= ? GROUP BY app", "ss", lo, hi)) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		if (name != NULL && (a = json_object_get(by, name)) != NULL)
			json_object_set_new(a, "customers", json_integer(
			    sqlite3_column_int64(st, 1)));
	}
	sqlite3_finalize(st);
	rc = rc == SQLITE_DONE ? 0 : regi_dberr(r, e, rc);
	json_array_foreach(apps, i, a)
		json_object_set_new(a, "fic_count", json_integer((json_int_t)
		    json_array_size(json_object_get(a, "fics"))));
out:
	json_decref(by);
	return rc;
}

int
reg_app_get(struct registry *r, const char *name, json_t **ret_app,
    struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a = NULL;
	int rc;

	if ((rc = regi_tx_begin(r, 0, e)) != 0)
		return rc;
	if ((rc = regi_prep(r, &st, e, APP_COLS " WHERE name = ?", "s",
	    name)) == 0 && (rc = regi_collect(r, st, app_row, &a, e)) == 0) {
		if (json_array_size(a) == 0)
			rc = regi_not_found(e, OBJ_APP, name);
		else
			rc = app_fill(r, a, e);
	}
	if ((rc = regi_tx_end(r, rc, 0, e)) == 0)
		*ret_app = json_incref(json_array_get(a, 0));
	json_decref(a);
	return rc;
}

/* Apps after `after` in name order, at most `limit` (<0: all), filled. */
static int
app_page(struct registry *r, const char *after, int limit, json_t **ret_items,
    int *ret_more, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a = NULL;
	int rc, more = 0;

	if ((rc = regi_tx_begin(r, 0, e)) != 0)
		return rc;
	if (limit >= 0)
		limit = regi_page_limit(limit);
	if ((rc = regi_prep(r, &st, e, APP_COLS " WHERE name > ? ORDER BY "
	    "name LIMIT ?", "si", after != NULL ? after : "",
	    limit < 0 ? -1LL : (long long)limit + 1)) == 0 &&
	    (rc = regi_collect(r, st, app_row, &a, e)) == 0) {
		if (limit >= 0 && json_array_size(a) > (size_t)limit) {
			json_array_remove(a, (size_t)limit);
			more = 1;
		}
		rc = app_fill(r, a, e);
	}
	if ((rc = regi_tx_end(r, rc, 0, e)) != 0) {
		json_decref(a);
		return rc;
	}
	*ret_items = a;
	if (ret_more != NULL)
		*ret_more = more;
	return 0;
}

int
reg_app_page(struct registry *r, const char *after, int limit,
    json_t **ret_items, int *ret_more, struct xerr *e)
{
	return app_page(r, after, limit, ret_items, ret_more, e);
}

int
reg_app_list(struct registry *r, json_t **ret_array, struct xerr *e)
{
	return app_page(r, NULL, -1, ret_array, NULL, e);
}

int
regi_fic_full(struct xerr *e, const char *app, long long would)
{
	return xerr_set(e, XTCMK_E_CONFLICT, "application '%s' would hold "
	    "%lld federated credentials; Entra allows %d per application: "
	    "federate fewer workloads or open a new application", app, would,
	    REG_FIC_MAX);
}

/*
 * Add the FIC app -> workload inside the caller's transaction: 1 added,
 * 0 already there, <0 error.  Its name follows Graph's rule (3-120 of
 * [A-Za-z0-9_-], first alphanumeric) and is unique on the application.
 */
int
regi_fic_insert(struct registry *r, const char *app, const char *wl,
    int checked, struct xerr *e)
{
	char name[FIC_NAME_MAX + 1];
	long long n;
	size_t i;
	int k;

	if (checked)
		goto named;
	if ((k = regi_need(r, OBJ_APP, app, e)) != 0 ||
	    (k = regi_need(r, OBJ_WORKLOAD, wl, e)) != 0)
		return k;
	if ((n = regi_num(r, e, "SELECT count(*) FROM fics WHERE app = ? AND "
	    "workload = ?", "ss", app, wl)) != 0)
		return n < 0 ? (int)n : 0;
	if ((n = regi_num(r, e, "SELECT count(*) FROM fics WHERE app = ?", "s",
	    app)) < 0)
		return (int)n;
	if (n >= REG_FIC_MAX)
		return regi_fic_full(e, app, n + 1);
named:
	for (k = 1; k <= REG_FIC_MAX + 1; k++) {
		snprintf(name, sizeof(name), k == 1 ? "xtcmk-%s" :
		    "xtcmk-%s-%d", wl, k);
		for (i = 0; name[i] != '\0'; i++)
			if (name[i] == '.')
				name[i] = '-';
		if ((n = regi_num(r, e, "SELECT count(*) FROM fics WHERE "
		    "app = ? AND name = ?", "ss", app, name)) <= 0)
			break;
	}
	if (n < 0)
		return (int)n;
	n = regi_run(r, e, "INSERT INTO fics (app, workload, name, created) "
	    "VALUES (?, ?, ?, ?)", "sssi", app, wl, name,
	    (long long)time(NULL));
	return n < 0 ? (int)n : 1;
}

int
reg_fic_add(struct registry *r, const char *app, const char *workload,
    struct xerr *e)
{
	int rc;

	if (valid_name(app, "application name", e) != 0 ||
	    valid_name(workload, "workload name", e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	rc = regi_fic_insert(r, app, workload, 0, e);
	return regi_tx_end(r, rc, rc > 0, e);
}

int
reg_fic_remove(struct registry *r, const char *app, const char *workload,
    struct xerr *e)
{
	long long n, c;
	int rc;

	if ((rc = regi_tx_begin(r, 1, e)) != 0)
		return rc;
	if ((n = regi_num(r, e, "SELECT count(*) FROM fics WHERE app = ? AND "
	    "workload = ?", "ss", app, workload)) <= 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_NOT_FOUND,
		    "application '%s' holds no federated credential for "
		    "workload '%s'; see `xtcmkctl app show %s`", app, workload,
		    app);
	else if ((n = regi_num(r, e, "SELECT count(*) FROM fics WHERE app = ?",
	    "s", app)) < 0 || (c = regi_num(r, e, "SELECT count(*) FROM "
	    "assignments WHERE app = ?", "s", app)) < 0)
		rc = -XTCMK_E_INTERNAL;
	else if (n == 1 && c > 0)
		rc = xerr_set(e, XTCMK_E_CONFLICT, "'%s' is the last federated "
		    "credential of application '%s', which serves %lld "
		    "customer(s): federate another workload first", workload,
		    app, c);
	else
		rc = regi_run(r, e, "DELETE FROM fics WHERE app = ? AND "
		    "workload = ?", "ss", app, workload);
	return regi_tx_end(r, rc, 1, e);
}

int
reg_fic_exists(struct registry *r, const char *app, const char *workload,
    struct xerr *e)
{
	long long n;

	pthread_mutex_lock(&r->mu);
	n = regi_num(r, e, "SELECT count(*) FROM fics WHERE app = ? AND "
	    "workload = ?", "ss", app, workload);
	pthread_mutex_unlock(&r->mu);
	return n < 0 ? (int)n : n > 0;
}
