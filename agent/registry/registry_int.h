/*
 * registry_int.h - private to sqlite.c and sqlite_customer.c: the
 * registry handle and the statement, transaction, JSON and lookup
 * helpers both halves of the registry use.  Nothing else includes it;
 * the public interface is registry.h.
 *
 * Locking: every helper that takes `r` expects the caller to hold r->mu
 * (regi_tx_begin() takes it, regi_tx_end() releases it), except
 * regi_get_one(), which locks for itself.
 */
#ifndef XTCMK_REGISTRY_INT_H
#define XTCMK_REGISTRY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <jansson.h>
#include <sqlite3.h>

#include "xerr.h"

#define REGI_STMT_CACHE		64	/* prepared statements kept */

/* A statement kept prepared between calls (regi_run, regi_num,
 * regi_prepc), keyed by its SQL text; `busy` while a caller steps it. */
struct regi_stmt {
	sqlite3_stmt	*st;
	int		 busy;
};

/*
 * The mutex is recursive: a batch (reg_batch_begin) holds it and its
 * transaction across many calls, and each call's own transaction nests
 * as a savepoint, so one customer's failure rolls back only its part.
 */
#define REGI_WLSEL_MAX	8	/* workload selections kept */
/* SQLite's page cache (negative: KiB): an import batch's writes fit it
 * without spilling to the WAL before the commit. */
#define REGI_CACHE_KIB	"-16384"

struct registry {
	pthread_mutex_t	 mu;
	sqlite3		*db;
	char		*path;
	atomic_ullong	 gen;
	int		 depth;		/* open transactions (nested) */
	int		 changed;	/* a nested write awaits the commit */
	struct regi_stmt cache[REGI_STMT_CACHE];
	unsigned long long n_prepared, n_reused;	/* statements */
	/* Workloads a scope selected (sqlite_scope.c), kept until the
	 * workloads table changes (wl_gen, from the update hook). */
	struct regi_wlsel {
		char		*key;	/* the selector, as JSON */
		unsigned long long gen;
		json_t		*arr;	/* the selection */
		json_t		*text;	/* its JSON text (a string) */
		int		 more;
	} wlsel[REGI_WLSEL_MAX];
	unsigned	 wlsel_next;
	unsigned long long wl_gen;
};

/* sqlite3_update_hook: a change to the workloads table drops the kept
 * selections (regi_wlsel_clear frees them). */
void	regi_update_hook(void *arg, int op, const char *db, const char *table,
	    sqlite3_int64 rowid);
void	regi_wlsel_clear(struct registry *r);

/* Objects regi_need() and regi_not_found() know by kind. */
enum { OBJ_WORKLOAD, OBJ_APP, OBJ_CUSTOMER };

/* SQLite failure: busy, a trigger's refusal, or an internal error. */
int	regi_dberr(struct registry *r, struct xerr *e, int rc);

/*
 * Prepare `sql` and bind one argument per character of `fmt`: 's' a
 * string (NULL binds NULL), 'i' a long long.
 */
int	regi_prep(struct registry *r, sqlite3_stmt **ret_st, struct xerr *e,
	    const char *sql, const char *fmt, ...);
/*
 * The same from the statement cache: the statement stays prepared after
 * regi_finish() (which resets it); a statement already being stepped is
 * prepared afresh and finalized by regi_finish().
 */
int	regi_prepc(struct registry *r, sqlite3_stmt **ret_st, struct xerr *e,
	    const char *sql, const char *fmt, ...);
void	regi_finish(struct registry *r, sqlite3_stmt *st);
/* Run a statement that returns no rows. */
int	regi_run(struct registry *r, struct xerr *e, const char *sql,
	    const char *fmt, ...);
/* First column of the first row as a number (0 without a row), or <0. */
long long regi_num(struct registry *r, struct xerr *e, const char *sql,
	    const char *fmt, ...);

/* Lock and open a transaction: immediate for writes, deferred for reads. */
int	regi_tx_begin(struct registry *r, int write, struct xerr *e);
/* Commit if rc is 0, else roll back; unlock; return the outcome. */
int	regi_tx_end(struct registry *r, int rc, int changed, struct xerr *e);

/* A string member of `o`: absent or null gives NULL, other types fail. */
int	regi_get_str(json_t *o, const char *key, const char *what,
	    const char **ret_s, struct xerr *e);
/* Validate a GUID and copy it lowercased into buf[37]. */
int	regi_guid_lower(const char *s, const char *what, char *buf,
	    struct xerr *e);
/* Validate a labels object (NULL/null = none); *ret_text is malloc'ed. */
int	regi_labels_text(json_t *labels, const char *what, char **ret_text,
	    struct xerr *e);

/* JSON text of a column, parsed; NULL or unparsable text gives `dflt`. */
json_t	*regi_col_json(sqlite3_stmt *st, int i, json_t *dflt);
/* Collect the rows of a prepared statement, each made by `fn`. */
int	regi_collect(struct registry *r, sqlite3_stmt *st,
	    json_t *(*fn)(sqlite3_stmt *), json_t **ret_array, struct xerr *e);
/* Lock, run `sql` (binding `arg` to its parameters when `nargs` is 1),
 * collect the rows with `fn`, unlock. */
int	regi_list(struct registry *r, const char *sql, int nargs,
	    const char *arg, json_t *(*fn)(sqlite3_stmt *), json_t **ret_array,
	    struct xerr *e);

/*
 * One page of a keyed list, locked: `sql` selects in key order and its
 * parameters are, as `fmt` says ("s", "i" or "si"), the string `s`
 * and/or the number `n`, then the LIMIT, which regi_page() binds to
 * limit + 1.  Up to `limit` rows (clamped to 1..REG_PAGE_MAX) made by
 * `fn` go to *ret_items, and *ret_more says whether another row followed.
 */
int	regi_page(struct registry *r, const char *sql, const char *fmt,
	    const char *s, long long n, int limit,
	    json_t *(*fn)(sqlite3_stmt *), json_t **ret_items, int *ret_more,
	    struct xerr *e);
/* Clamp a requested page size to 1..REG_PAGE_MAX. */
int	regi_page_limit(int limit);

/* A text column as a JSON string, SQL NULL as JSON null. */
static inline json_t *
col_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? json_string(s) : json_null();
}

/* A row of one text column (for regi_collect()). */
static inline json_t *
text_row(sqlite3_stmt *st)
{
	return col_str(st, 0);
}

/* NOT_FOUND for object kind `obj`, telling how to list them. */
int	regi_not_found(struct xerr *e, int obj, const char *name);
/* 0 if the object exists, else NOT_FOUND (or a database error). */
int	regi_need(struct registry *r, int obj, const char *name,
	    struct xerr *e);
/* The single row `sql` (bound to `key`) returns, made by `fn` (locks). */
int	regi_get_one(struct registry *r, const char *sql, const char *key,
	    json_t *(*fn)(sqlite3_stmt *), int obj, json_t **ret,
	    struct xerr *e);

/* Insert an application after checking name and client id are free. */
int	regi_app_insert(struct registry *r, const char *name,
	    const char *client_id, const char *labels, struct xerr *e);
/* CONFLICT: `app` would hold `would` FICs, over REG_FIC_MAX. */
int	regi_fic_full(struct xerr *e, const char *app, long long would);
/* Add the FIC app -> workload: 1 added, 0 already there, <0 error.
 * `checked`: the caller made sure both exist, the FIC does not and the
 * application has room (onboarding), so only its name is worked out. */
int	regi_fic_insert(struct registry *r, const char *app, const char *wl,
	    int checked, struct xerr *e);

#endif
