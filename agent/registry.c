/*
 * registry.c - the durable registry (see registry.h): workload identities,
 * applications, their federated identity credentials, customers,
 * assignments and the log of moves and removals, in one SQLite file.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "registry.h"
#include "validate.h"

#define REG_BUSY_MS		5000		/* wait for another writer */
#define REG_DOC_MAX		(8 * 1024 * 1024) /* inputs/outputs JSON text */
#define REG_APPLICATION_ID	0x78746b72	/* "xtkr" in the file header */
#define FIC_NAME_MAX		120		/* Graph: 3-120 characters */

struct registry {
	pthread_mutex_t	 mu;
	sqlite3		*db;
	char		*path;
	atomic_ullong	 gen;
};

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
};

static const char *const customer_kinds[] = {
	"host", "storage", "storage-existing", "cosmosdb", "netapp",
};

/* SQLite failure: busy, a trigger's refusal, or an internal error. */
static int
dberr(struct registry *r, struct xerr *e, int rc)
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

/*
 * Prepare `sql` and bind one argument per character of `fmt`: 's' a
 * string (NULL binds NULL), 'i' a long long.
 */
static int
vprep(struct registry *r, sqlite3_stmt **ret_st, struct xerr *e,
    const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *st;
	const char *s;
	int i, rc;

	if ((rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL)) != SQLITE_OK)
		return dberr(r, e, rc);
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
			rc = dberr(r, e, rc);
			sqlite3_finalize(st);
			return rc;
		}
	}
	*ret_st = st;
	return 0;
}

static int
prep(struct registry *r, sqlite3_stmt **ret_st, struct xerr *e,
    const char *sql, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, ret_st, e, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* Run a statement that returns no rows. */
static int
run(struct registry *r, struct xerr *e, const char *sql, const char *fmt,
    ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, &st, e, sql, fmt, ap);
	va_end(ap);
	if (rc != 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	rc = rc == SQLITE_DONE ? 0 : dberr(r, e, rc);
	sqlite3_finalize(st);
	return rc;
}

/* First column of the first row as a number (0 without a row), or <0. */
static long long
num(struct registry *r, struct xerr *e, const char *sql, const char *fmt,
    ...)
{
	sqlite3_stmt *st;
	va_list ap;
	long long v = 0;
	int rc;

	va_start(ap, fmt);
	rc = vprep(r, &st, e, sql, fmt, ap);
	va_end(ap);
	if (rc != 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		v = dberr(r, e, rc);
	sqlite3_finalize(st);
	return v;
}

/* Lock and open a transaction: immediate for writes, deferred for reads. */
static int
tx_begin(struct registry *r, int write, struct xerr *e)
{
	int rc;

	pthread_mutex_lock(&r->mu);
	rc = run(r, e, write ? "BEGIN IMMEDIATE" : "BEGIN", "");
	if (rc != 0)
		pthread_mutex_unlock(&r->mu);
	return rc;
}

/* Commit if rc is 0, else roll back; unlock; return the outcome. */
static int
tx_end(struct registry *r, int rc, int changed, struct xerr *e)
{
	if (rc >= 0) {
		if ((rc = run(r, e, "COMMIT", "")) == 0 && changed)
			atomic_fetch_add(&r->gen, 1);
	}
	if (rc < 0 && !sqlite3_get_autocommit(r->db))
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&r->mu);
	return rc < 0 ? rc : 0;
}

/* A string member of `o`: absent or null gives NULL, other types fail. */
static int
get_str(json_t *o, const char *key, const char *what, const char **ret_s,
    struct xerr *e)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		*ret_s = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return xerr_set(e, XTCMK_E_INVAL, "%s: \"%s\" must be a "
		    "string", what, key);
	*ret_s = json_string_value(v);
	return 0;
}

/* Validate a GUID and copy it lowercased (the stored, canonical form). */
static int
guid_lower(const char *s, const char *what, char *buf, struct xerr *e)
{
	size_t i;

	if (valid_guid(s, what, e) != 0)
		return -XTCMK_E_INVAL;
	for (i = 0; i <= 36; i++)
		buf[i] = (s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i];
	return 0;
}

/* Validate a labels object (NULL/null = none); *ret_text is malloc'ed. */
static int
labels_text(json_t *labels, const char *what, char **ret_text,
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
	*ret_text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(labels);
	return *ret_text == NULL ? xerr_set(e, XTCMK_E_NOMEM, "out of memory")
	    : 0;
}

/* JSON text of a column, parsed; NULL or unparsable text gives `dflt`. */
static json_t *
col_json(sqlite3_stmt *st, int i, json_t *dflt)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;

	if (v == NULL)
		return dflt;
	json_decref(dflt);
	return v;
}

static json_t *
col_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? json_string(s) : json_null();
}

/* Collect the rows of a prepared statement, each made by `fn`. */
static int
collect(struct registry *r, sqlite3_stmt *st, json_t *(*fn)(sqlite3_stmt *),
    json_t **ret_array, struct xerr *e)
{
	json_t *a = json_array();
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(a, fn(st));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return dberr(r, e, rc);
	}
	*ret_array = a;
	return 0;
}

enum { OBJ_WORKLOAD, OBJ_APP, OBJ_CUSTOMER };
static const struct {
	const char	*kind, *sql, *cmd;
} objs[] = {
	{ "workload", "SELECT count(*) FROM workloads WHERE name = ?",
	    "workload" },
	{ "application", "SELECT count(*) FROM apps WHERE name = ?", "app" },
	{ "customer", "SELECT count(*) FROM customers WHERE id = ?",
	    "customer" },
};

static int
not_found(struct xerr *e, int obj, const char *name)
{
	return xerr_set(e, XTCMK_E_NOT_FOUND, "no %s '%s'; list them with "
	    "`xtcmkctl %s list`", objs[obj].kind, name ? name : "",
	    objs[obj].cmd);
}

/* 0 if the object exists, else NOT_FOUND (or a database error). */
static int
need(struct registry *r, int obj, const char *name, struct xerr *e)
{
	long long n = num(r, e, objs[obj].sql, "s", name);

	return n < 0 ? (int)n : n == 0 ? not_found(e, obj, name) : 0;
}

/* The single row `sql` (bound to `key`) returns, made by `fn`. */
static int
get_one(struct registry *r, const char *sql, const char *key,
    json_t *(*fn)(sqlite3_stmt *), int obj, json_t **ret, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *a = NULL;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = prep(r, &st, e, sql, "s", key)) == 0)
		rc = collect(r, st, fn, &a, e);
	pthread_mutex_unlock(&r->mu);
	if (rc == 0 && json_array_size(a) == 0)
		rc = not_found(e, obj, key);
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

	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	if ((v = num(r, e, "PRAGMA user_version", "")) < 0 ||
	    (appid = num(r, e, "PRAGMA application_id", "")) < 0 ||
	    (objects = num(r, e, "SELECT count(*) FROM sqlite_master", "")) < 0)
		return tx_end(r, -XTCMK_E_INTERNAL, 0, e);
	if ((appid != 0 && appid != REG_APPLICATION_ID) ||
	    (v == 0 && objects != 0))
		return tx_end(r, xerr_set(e, XTCMK_E_INVAL, "%s is an SQLite "
		    "file but not an xtcmk registry: point the agent at "
		    "another path", r->path), 0, e);
	if (v > (long long)n)
		return tx_end(r, xerr_set(e, XTCMK_E_UNSUPPORTED, "registry "
		    "%s has schema version %lld, newer than this build "
		    "understands (%zu): run the newer xtcmkd or restore a "
		    "backup", r->path, v, n), 0, e);
	for (i = (size_t)v; i < n; i++) {
		if ((rc = sqlite3_exec(r->db, migrations[i], NULL, NULL,
		    NULL)) != SQLITE_OK)
			return tx_end(r, dberr(r, e, rc), 0, e);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", i + 1);
		if ((rc = run(r, e, sql, "")) != 0)
			return tx_end(r, rc, 0, e);
	}
	if (appid == 0) {
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d",
		    REG_APPLICATION_ID);
		if ((rc = run(r, e, sql, "")) != 0)
			return tx_end(r, rc, 0, e);
	}
	return tx_end(r, 0, 0, e);
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
	pthread_mutex_init(&r->mu, NULL);
	atomic_init(&r->gen, 0);
	rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = r->db ? dberr(r, e, rc) : xerr_set(e, XTCMK_E_NOMEM,
		    "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(r->db, 1);
	sqlite3_busy_timeout(r->db, REG_BUSY_MS);
	if ((rc = prep(r, &st, e, "PRAGMA journal_mode = WAL", "")) != 0)
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
	if ((rc = run(r, e, "PRAGMA synchronous = FULL", "")) != 0 ||
	    (rc = run(r, e, "PRAGMA foreign_keys = ON", "")) != 0 ||
	    (rc = run(r, e, "PRAGMA trusted_schema = OFF", "")) != 0 ||
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
	if (r == NULL)
		return;
	sqlite3_close_v2(r->db);
	pthread_mutex_destroy(&r->mu);
	free(r->path);
	free(r);
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
	if (get_str(wl, "name", "workload", &name, e) != 0 ||
	    get_str(wl, "client_id", "workload", &cid, e) != 0 ||
	    get_str(wl, "principal_id", "workload", &pid, e) != 0 ||
	    get_str(wl, "resource_id", "workload", &rid, e) != 0 ||
	    valid_name(name, "workload name", e) != 0 ||
	    guid_lower(cid, "workload client_id", client, e) != 0 ||
	    guid_lower(pid, "workload principal_id", principal, e) != 0 ||
	    (rid != NULL && valid_uami_resource_id(rid, e) != 0) ||
	    labels_text(json_object_get(wl, "labels"), "workload", &labels,
	    e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = tx_begin(r, 1, e)) != 0)
		goto out;
	if ((n = num(r, e, "SELECT count(*) FROM workloads WHERE name = ?",
	    "s", name)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "workload "
		    "'%s' exists already; remove it first to change it", name);
	else if ((n = num(r, e, "SELECT count(*) FROM workloads WHERE "
	    "principal_id = ?", "s", principal)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "another "
		    "workload has principal id %s; each identity is registered "
		    "once", principal);
	else
		rc = run(r, e, "INSERT INTO workloads (name, client_id, "
		    "principal_id, resource_id, labels, created) VALUES "
		    "(?, ?, ?, ?, ?, ?)", "sssssi", name, client, principal,
		    rid, labels, (long long)time(NULL));
	rc = tx_end(r, rc, 1, e);
out:
	free(labels);
	return rc;
}

int
reg_workload_remove(struct registry *r, const char *name, struct xerr *e)
{
	long long n;
	int rc;

	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = need(r, OBJ_WORKLOAD, name, e)) != 0)
		;
	else if ((n = num(r, e, "SELECT count(*) FROM fics WHERE "
	    "workload = ?", "s", name)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_CONFLICT, "workload "
		    "'%s' holds federated credentials on %lld application(s): "
		    "remove those first", name, n);
	else
		rc = run(r, e, "DELETE FROM workloads WHERE name = ?", "s",
		    name);
	return tx_end(r, rc, 1, e);
}

static json_t *
workload_row(sqlite3_stmt *st)
{
	json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:I}",
	    "name", col_str(st, 0), "client_id", col_str(st, 1),
	    "principal_id", col_str(st, 2),
	    "labels", col_json(st, 4, json_object()),
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
	return get_one(r, WORKLOAD_COLS " WHERE name = ?", name, workload_row,
	    OBJ_WORKLOAD, ret_wl, e);
}

int
reg_workload_list(struct registry *r, json_t **ret_array, struct xerr *e)
{
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = prep(r, &st, e, WORKLOAD_COLS " ORDER BY name", "")) == 0)
		rc = collect(r, st, workload_row, ret_array, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* ---- applications and FICs ---- */

static int
app_insert(struct registry *r, const char *name, const char *client_id,
    const char *labels, struct xerr *e)
{
	long long n;

	if ((n = num(r, e, "SELECT count(*) FROM apps WHERE name = ?", "s",
	    name)) != 0)
		return n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS,
		    "application '%s' exists already", name);
	if (client_id != NULL && (n = num(r, e, "SELECT count(*) FROM apps "
	    "WHERE client_id = ?", "s", client_id)) != 0)
		return n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "another "
		    "application has client id %s", client_id);
	return run(r, e, "INSERT INTO apps (name, client_id, labels, created) "
	    "VALUES (?, ?, ?, ?)", "sssi", name, client_id, labels,
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
	if (get_str(app, "name", "application", &name, e) != 0 ||
	    get_str(app, "client_id", "application", &cid, e) != 0 ||
	    valid_name(name, "application name", e) != 0 ||
	    (cid != NULL && guid_lower(cid, "application client_id", client,
	    e) != 0) ||
	    labels_text(json_object_get(app, "labels"), "application",
	    &labels, e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = tx_begin(r, 1, e)) == 0)
		rc = tx_end(r, app_insert(r, name, cid ? client : NULL, labels,
		    e), 1, e);
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

	if (guid_lower(client_id, "application client_id", client, e) != 0)
		return -XTCMK_E_INVAL;
	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = prep(r, &st, e, "SELECT coalesce(client_id, '') FROM apps "
	    "WHERE name = ?", "s", name)) != 0)
		return tx_end(r, rc, 0, e);
	if (sqlite3_step(st) == SQLITE_ROW) {
		found = 1;
		snprintf(old, sizeof(old), "%s", sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (!found)
		rc = not_found(e, OBJ_APP, name);
	else if (strcmp(old, client) == 0)
		return tx_end(r, 0, 0, e);
	else if ((n = num(r, e, "SELECT count(*) FROM assignments WHERE "
	    "app = ?", "s", name)) < 0)
		rc = (int)n;
	else if (n > 0 && old[0] != '\0')
		rc = xerr_set(e, XTCMK_E_CONFLICT,
		    "application '%s' serves %lld customer(s) who consented to "
		    "client id %s; register a new application instead", name,
		    n, old);
	else if ((n = num(r, e, "SELECT count(*) FROM apps WHERE "
	    "client_id = ?", "s", client)) != 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_EXISTS, "another "
		    "application has client id %s", client);
	else
		rc = run(r, e, "UPDATE apps SET client_id = ? WHERE name = ?",
		    "ss", client, name);
	return tx_end(r, rc, 1, e);
}

static json_t *
text_row(sqlite3_stmt *st)
{
	return col_str(st, 0);
}

static json_t *
fic_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:I}", "workload", col_str(st, 0),
	    "name", col_str(st, 1),
	    "created", (json_int_t)sqlite3_column_int64(st, 2));
}

/* Read one application with its FICs and customer count (locked). */
static int
app_read(struct registry *r, const char *name, json_t **ret_app,
    struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *o = NULL, *fics = NULL, *creds = NULL;
	long long n;
	int rc;

	if ((rc = prep(r, &st, e, "SELECT name, client_id, labels, created "
	    "FROM apps WHERE name = ?", "s", name)) != 0)
		return rc;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		o = json_pack("{s:o, s:o, s:o, s:I}", "name", col_str(st, 0),
		    "client_id", col_str(st, 1),
		    "labels", col_json(st, 2, json_object()),
		    "created", (json_int_t)sqlite3_column_int64(st, 3));
	sqlite3_finalize(st);
	if (o == NULL)
		return rc == SQLITE_ROW || rc == SQLITE_DONE ?
		    not_found(e, OBJ_APP, name) : dberr(r, e, rc);
	if ((rc = prep(r, &st, e, "SELECT workload, name, created FROM fics "
	    "WHERE app = ? ORDER BY workload", "s", name)) != 0 ||
	    (rc = collect(r, st, fic_row, &creds, e)) != 0)
		goto fail;
	json_object_set_new(o, "federated_credentials", creds);
	if ((rc = prep(r, &st, e, "SELECT workload FROM fics WHERE app = ? "
	    "ORDER BY workload", "s", name)) != 0 ||
	    (rc = collect(r, st, text_row, &fics, e)) != 0)
		goto fail;
	json_object_set_new(o, "fic_count",
	    json_integer((json_int_t)json_array_size(fics)));
	json_object_set_new(o, "fics", fics);
	if ((n = num(r, e, "SELECT count(*) FROM assignments WHERE app = ?",
	    "s", name)) < 0) {
		rc = (int)n;
		goto fail;
	}
	json_object_set_new(o, "customers", json_integer(n));
	*ret_app = o;
	return 0;
fail:
	json_decref(o);
	return rc;
}

int
reg_app_get(struct registry *r, const char *name, json_t **ret_app,
    struct xerr *e)
{
	int rc;

	if ((rc = tx_begin(r, 0, e)) != 0)
		return rc;
	return tx_end(r, app_read(r, name, ret_app, e), 0, e);
}

int
reg_app_list(struct registry *r, json_t **ret_array, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *names = NULL, *a, *o;
	size_t i;
	int rc;

	if ((rc = tx_begin(r, 0, e)) != 0)
		return rc;
	if ((rc = prep(r, &st, e, "SELECT name FROM apps ORDER BY name",
	    "")) != 0 || (rc = collect(r, st, text_row, &names, e)) != 0)
		return tx_end(r, rc, 0, e);
	a = json_array();
	for (i = 0; rc == 0 && i < json_array_size(names); i++) {
		rc = app_read(r, json_string_value(json_array_get(names, i)),
		    &o, e);
		if (rc == 0)
			json_array_append_new(a, o);
	}
	json_decref(names);
	if ((rc = tx_end(r, rc, 0, e)) != 0) {
		json_decref(a);
		return rc;
	}
	*ret_array = a;
	return 0;
}

static int
fic_full(struct xerr *e, const char *app, long long would)
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
static int
fic_insert(struct registry *r, const char *app, const char *wl,
    struct xerr *e)
{
	char name[FIC_NAME_MAX + 1];
	long long n;
	size_t i;
	int k;

	if ((k = need(r, OBJ_APP, app, e)) != 0 ||
	    (k = need(r, OBJ_WORKLOAD, wl, e)) != 0)
		return k;
	if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ? AND "
	    "workload = ?", "ss", app, wl)) != 0)
		return n < 0 ? (int)n : 0;
	if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ?", "s",
	    app)) < 0)
		return (int)n;
	if (n >= REG_FIC_MAX)
		return fic_full(e, app, n + 1);
	for (k = 1; k <= REG_FIC_MAX + 1; k++) {
		snprintf(name, sizeof(name), k == 1 ? "xtcmk-%s" :
		    "xtcmk-%s-%d", wl, k);
		for (i = 0; name[i] != '\0'; i++)
			if (name[i] == '.')
				name[i] = '-';
		if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ? "
		    "AND name = ?", "ss", app, name)) <= 0)
			break;
	}
	if (n < 0)
		return (int)n;
	n = run(r, e, "INSERT INTO fics (app, workload, name, created) "
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
	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	rc = fic_insert(r, app, workload, e);
	return tx_end(r, rc, rc > 0, e);
}

int
reg_fic_remove(struct registry *r, const char *app, const char *workload,
    struct xerr *e)
{
	long long n, c;
	int rc;

	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ? AND "
	    "workload = ?", "ss", app, workload)) <= 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_NOT_FOUND,
		    "application '%s' holds no federated credential for "
		    "workload '%s'; see `xtcmkctl app show %s`", app, workload,
		    app);
	else if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ?",
	    "s", app)) < 0 || (c = num(r, e, "SELECT count(*) FROM "
	    "assignments WHERE app = ?", "s", app)) < 0)
		rc = -XTCMK_E_INTERNAL;
	else if (n == 1 && c > 0)
		rc = xerr_set(e, XTCMK_E_CONFLICT, "'%s' is the last federated "
		    "credential of application '%s', which serves %lld "
		    "customer(s): federate another workload first", workload,
		    app, c);
	else
		rc = run(r, e, "DELETE FROM fics WHERE app = ? AND "
		    "workload = ?", "ss", app, workload);
	return tx_end(r, rc, 1, e);
}

int
reg_fic_exists(struct registry *r, const char *app, const char *workload,
    struct xerr *e)
{
	long long n;

	pthread_mutex_lock(&r->mu);
	n = num(r, e, "SELECT count(*) FROM fics WHERE app = ? AND "
	    "workload = ?", "ss", app, workload);
	pthread_mutex_unlock(&r->mu);
	return n < 0 ? (int)n : n > 0;
}

/* ---- customers ---- */

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
	*ret_text = json_dumps(kinds, JSON_COMPACT);
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
	if (get_str(c, "id", "customer", &ci->id, e) != 0 ||
	    get_str(c, "tenant", "customer", &tenant, e) != 0 ||
	    get_str(c, "key_uri", "customer", &uri, e) != 0 ||
	    get_str(c, "vault_auth", "customer", &ci->vault_auth, e) != 0 ||
	    valid_customer_id(ci->id, e) != 0 ||
	    guid_lower(tenant, "customer tenant", ci->tenant, e) != 0 ||
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
	    labels_text(json_object_get(c, "labels"), "customer",
	    &ci->labels, e) != 0) {
		free(ci->kinds);
		ci->kinds = NULL;
		return -XTCMK_E_INVAL;
	}
	return 0;
}

/* JSON text of an optional document, bounded by REG_DOC_MAX. */
static int
doc_text(json_t *v, const char *what, char **ret_text, struct xerr *e)
{
	char *s = json_dumps(v != NULL ? v : json_null(),
	    JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (s == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (strlen(s) > REG_DOC_MAX) {
		free(s);
		return xerr_set(e, XTCMK_E_TOOBIG, "%s is over %d bytes of "
		    "JSON", what, REG_DOC_MAX);
	}
	*ret_text = s;
	return 0;
}

/* Check the decision and make the app and its FICs (in the transaction). */
static int
onboard_app(struct registry *r, const char *app, json_t *fed,
    const char *app_labels, struct xerr *e)
{
	json_t *v;
	const char *w;
	long long n, cur, add = 0;
	size_t i, j;
	int rc;

	if ((n = num(r, e, "SELECT count(*) FROM apps WHERE name = ?", "s",
	    app)) < 0)
		return (int)n;
	if (n == 0 && (rc = app_insert(r, app, NULL, app_labels, e)) != 0)
		return rc;
	if ((cur = num(r, e, "SELECT count(*) FROM fics WHERE app = ?", "s",
	    app)) < 0)
		return (int)cur;
	json_array_foreach(fed, i, v) {
		w = json_string_value(v);
		if ((rc = need(r, OBJ_WORKLOAD, w, e)) != 0)
			return rc;
		if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ? "
		    "AND workload = ?", "ss", app, w)) < 0)
			return (int)n;
		for (j = 0; j < i; j++)
			if (json_equal(v, json_array_get(fed, j)))
				break;
		if (n == 0 && j == i)
			add++;
	}
	if (cur + add > REG_FIC_MAX)
		return fic_full(e, app, cur + add);
	if (cur + add == 0)
		return xerr_set(e, XTCMK_E_CONFLICT, "application '%s' would "
		    "have no federated credential, so no host could serve the "
		    "customer: federate at least one workload", app);
	json_array_foreach(fed, i, v)
		if ((rc = fic_insert(r, app, json_string_value(v), e)) < 0)
			return rc;
	return 0;
}

int
reg_customer_onboard(struct registry *r, json_t *customer, json_t *decision,
    json_t *inputs, const char *policy_hash, struct xerr *e)
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
	if (!json_is_object(decision) || get_str(decision, "app", "decision",
	    &app, e) != 0 || valid_name(app, "decision: application name",
	    e) != 0 || labels_text(json_object_get(decision, "app_labels"),
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
	if (rc != 0 || (rc = doc_text(inputs, "decision inputs", &in, e)) != 0 ||
	    (rc = doc_text(decision, "decision", &out, e)) != 0)
		goto out_fed;

	if ((rc = tx_begin(r, 1, e)) != 0)
		goto out_fed;
	if ((rc = prep(r, &st, e, "SELECT coalesce(a.app, '') FROM customers "
	    "c LEFT JOIN assignments a ON a.customer = c.id WHERE c.id = ?",
	    "s", ci.id)) == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			cur = strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (cur != NULL)
			rc = xerr_set(e, XTCMK_E_EXISTS, "customer '%s' exists "
			    "already, on application '%s'; assignments are "
			    "sticky: use `xtcmkctl customer move` to change "
			    "it", ci.id, cur);
	}
	if (rc == 0)
		rc = onboard_app(r, app, fed, app_labels, e);
	if (rc == 0)
		rc = run(r, e, "INSERT INTO customers (id, tenant, key_uri, "
		    "vault_auth, kinds, labels, created) VALUES "
		    "(?, ?, ?, ?, ?, ?, ?)", "ssssssi", ci.id, ci.tenant,
		    ci.key_uri, ci.vault_auth, ci.kinds, ci.labels,
		    (long long)time(NULL));
	if (rc == 0)
		rc = run(r, e, "INSERT INTO assignments (customer, app, inputs, "
		    "outputs, policy_hash, time) VALUES (?, ?, ?, ?, ?, ?)",
		    "sssssi", ci.id, app, in, out, policy_hash,
		    (long long)time(NULL));
	rc = tx_end(r, rc, 1, e);
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

	if ((rc = prep(r, &st, e, "SELECT coalesce(a.app, '') FROM customers "
	    "c LEFT JOIN assignments a ON a.customer = c.id WHERE c.id = ?",
	    "s", id)) != 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s", sqlite3_column_text(st, 0));
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : dberr(r, e, rc);
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

	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = customer_app(r, id, from, sizeof(from), e)) <= 0)
		return tx_end(r, rc < 0 ? rc : not_found(e, OBJ_CUSTOMER,
		    id), 0, e);
	if ((rc = need(r, OBJ_APP, to_app, e)) != 0)
		;
	else if (strcmp(from, to_app) == 0)
		rc = xerr_set(e, XTCMK_E_CONFLICT, "customer '%s' is already on "
		    "application '%s'", id, to_app);
	else if ((n = num(r, e, "SELECT count(*) FROM fics WHERE app = ?",
	    "s", to_app)) <= 0)
		rc = n < 0 ? (int)n : xerr_set(e, XTCMK_E_CONFLICT,
		    "application '%s' has no federated credential, so no host "
		    "could serve customer '%s': federate a workload first",
		    to_app, id);
	else if ((rc = run(r, e, "UPDATE assignments SET app = ?, time = ? "
	    "WHERE customer = ?", "sis", to_app, (long long)time(NULL),
	    id)) == 0 && sqlite3_changes(r->db) == 0)
		rc = run(r, e, "INSERT INTO assignments (customer, app, inputs, "
		    "outputs, policy_hash, time) VALUES (?, ?, 'null', 'null', "
		    "NULL, ?)", "ssi", id, to_app, (long long)time(NULL));
	if (rc == 0)
		rc = run(r, e, "INSERT INTO moves (customer, op, from_app, "
		    "to_app, reason, actor, time) VALUES (?, 'move', ?, ?, ?, "
		    "?, ?)", "sssssi", id, from[0] ? from : NULL, to_app,
		    reason, actor, (long long)time(NULL));
	return tx_end(r, rc, 1, e);
}

int
reg_customer_remove(struct registry *r, const char *id, const char *actor,
    struct xerr *e)
{
	char from[NAME_MAX_LEN + 1];
	int rc;

	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	if ((rc = customer_app(r, id, from, sizeof(from), e)) <= 0)
		return tx_end(r, rc < 0 ? rc : not_found(e, OBJ_CUSTOMER,
		    id), 0, e);
	if ((rc = run(r, e, "DELETE FROM assignments WHERE customer = ?", "s",
	    id)) == 0 && (rc = run(r, e, "DELETE FROM customers WHERE id = ?",
	    "s", id)) == 0)
		rc = run(r, e, "INSERT INTO moves (customer, op, from_app, "
		    "actor, time) VALUES (?, 'remove', ?, ?, ?)", "sssi", id,
		    from[0] ? from : NULL, actor, (long long)time(NULL));
	return tx_end(r, rc, 1, e);
}

static json_t *
customer_row(sqlite3_stmt *st)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}",
	    "id", col_str(st, 0), "tenant", col_str(st, 1),
	    "key_uri", col_str(st, 2), "vault_auth", col_str(st, 3),
	    "kinds", col_json(st, 4, json_array()),
	    "labels", col_json(st, 5, json_object()),
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
	return get_one(r, CUSTOMER_COLS " WHERE c.id = ?", id, customer_row,
	    OBJ_CUSTOMER, ret_customer, e);
}

int
reg_customer_list(struct registry *r, json_t **ret_array, struct xerr *e)
{
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = prep(r, &st, e, CUSTOMER_COLS " ORDER BY c.id", "")) == 0)
		rc = collect(r, st, customer_row, ret_array, e);
	pthread_mutex_unlock(&r->mu);
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

int
reg_assignment_get(struct registry *r, const char *id,
    json_t **ret_assignment, struct xerr *e)
{
	sqlite3_stmt *st;
	json_t *o = NULL, *moves = NULL;
	int rc;

	if ((rc = tx_begin(r, 0, e)) != 0)
		return rc;
	if ((rc = prep(r, &st, e, "SELECT customer, app, inputs, outputs, "
	    "policy_hash, time FROM assignments WHERE customer = ?", "s",
	    id)) != 0)
		return tx_end(r, rc, 0, e);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I}",
		    "customer", col_str(st, 0), "app", col_str(st, 1),
		    "inputs", col_json(st, 2, json_null()),
		    "outputs", col_json(st, 3, json_null()),
		    "policy_hash", col_str(st, 4),
		    "time", (json_int_t)sqlite3_column_int64(st, 5));
	sqlite3_finalize(st);
	if (o == NULL)
		return tx_end(r, rc == SQLITE_ROW || rc == SQLITE_DONE ?
		    xerr_set(e, XTCMK_E_NOT_FOUND, "customer '%s' has no "
		    "assignment; list customers with `xtcmkctl customer "
		    "list`", id) : dberr(r, e, rc), 0, e);
	/* Moves since the customer was last (re)created under this id. */
	if ((rc = prep(r, &st, e, "SELECT from_app, to_app, reason, actor, "
	    "time FROM moves WHERE customer = ?1 AND op = 'move' AND id > "
	    "coalesce((SELECT max(id) FROM moves WHERE customer = ?1 AND "
	    "op = 'remove'), 0) ORDER BY id", "s", id)) == 0 &&
	    (rc = collect(r, st, move_row, &moves, e)) == 0)
		json_object_set_new(o, "moves", moves);
	if ((rc = tx_end(r, rc, 0, e)) != 0) {
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
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = prep(r, &st, e, "SELECT customer, op, from_app, to_app, "
	    "reason, actor, time FROM moves WHERE ?1 IS NULL OR "
	    "customer = ?1 ORDER BY id", "s", id)) == 0)
		rc = collect(r, st, log_row, ret_array, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
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

	if ((rc = prep(r, &st, e, sql, "")) != 0 ||
	    (rc = collect(r, st, text_row, &a, e)) != 0)
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
		{ "PRAGMA integrity_check", "integrity: " },
	};
	json_t *list, *counts;
	char sql[64];
	long long n;
	size_t i;
	int rc;

	if ((rc = tx_begin(r, 0, e)) != 0)
		return rc;
	list = json_array();
	counts = json_object();
	for (i = 0; rc == 0 && i < sizeof(checks) / sizeof(checks[0]); i++)
		rc = problems(r, list, checks[i].sql, checks[i].prefix, e);
	for (i = 0; rc == 0 && i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		    tables[i]);
		if ((n = num(r, e, sql, "")) < 0)
			rc = (int)n;
		else
			json_object_set_new(counts, tables[i],
			    json_integer(n));
	}
	if ((rc = tx_end(r, rc, 0, e)) != 0) {
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

	if ((rc = tx_begin(r, 1, e)) != 0)
		return rc;
	json_array_foreach(rows, i, row) {
		rc = run(r, e, "INSERT INTO key_usage (customer, version, "
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
	return tx_end(r, rc, 0, e);
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

	if ((rc = tx_begin(r, 0, e)) != 0)
		return rc;
	if ((rc = prep(r, &st, e, "SELECT version, wraps, unwraps, first, "
	    "last FROM key_usage WHERE customer = ? ORDER BY first, version",
	    "s", customer)) == 0)
		rc = collect(r, st, usage_row, ret_array, e);
	return tx_end(r, rc, 0, e);
}
