/*
 * scope.h - what a partition decision chooses among.  A partition policy
 * may export P.scope(customer, params), returning selectors:
 *
 *	{ apps = { stem = "xtcmk-eu-", labels = { region = "eu",
 *	           dedicated = false }, room = 50, limit = 4 },
 *	  app_names = { "xtcmk-eu-contoso" },
 *	  workloads = { labels = { region = "eu" }, limit = 100 } }
 *
 * The agent resolves them with indexed lookups in the registry
 * (registry/sqlite_scope.c); `xtcmkctl policy test` applies them to a fixture's
 * apps and workloads (scope_apply).  Both use the parser and the matcher
 * here, so a selector means the same thing online and offline.  See
 * xtcmk-policy(7) for the contract.
 */
#ifndef XTCMK_SCOPE_H
#define XTCMK_SCOPE_H

#include <jansson.h>

#include "xerr.h"

#define SCOPE_APPS_DEFAULT	16	/* apps a selector returns by default */
#define SCOPE_APPS_MAX		256	/* ... and at most */
#define SCOPE_NAMES_MAX		32	/* entries of app_names */
#define SCOPE_WORKLOADS_MAX	1000	/* workloads a selector returns */
#define SCOPE_LABELS_MAX	8	/* label conditions per selector */
#define SCOPE_SCAN_MAX		4096	/* candidate rows one selector reads */
#define SCOPE_FULL_MAX		1000	/* apps or workloads a policy without
					   P.scope may be handed */
#define SCOPE_WHY_NAMES_MAX	16	/* candidate names kept in the record */

enum scope_op {
	SCOPE_EQ = 0,		/* label = value */
	SCOPE_PRESENT,		/* label present (true) */
	SCOPE_ABSENT		/* label absent (false) */
};

struct scope_label {
	const char	*key;
	const char	*value;		/* SCOPE_EQ only */
	enum scope_op	 op;
};

struct scope_sel {
	int		 present;	/* the policy gave this selector */
	struct scope_label label[SCOPE_LABELS_MAX];
	int		 nlabels;
	const char	*stem;		/* apps: numbered "<stem><n>" only */
	long long	 room;		/* apps: customers < room; -1 any */
	int		 limit;
};

struct scope {
	json_t		*doc;		/* the policy's table (a reference) */
	struct scope_sel apps;
	struct scope_sel workloads;
	const char	*names[SCOPE_NAMES_MAX];
	int		 nnames;
};

/* Check and compile the policy's scope table; scope_clear() releases. */
int	scope_parse(json_t *doc, struct scope *ret_scope, struct xerr *e);
void	scope_clear(struct scope *sc);
/* Does `obj` ({name, labels, customers?}) satisfy `sel`? 1 or 0. */
int	scope_match(const struct scope_sel *sel, json_t *obj);
/* n when name is stem followed by 1 to 18 digits, else -1. */
long long scope_number(const char *name, const char *stem);
/* Fill order of two apps: by number under `stem`, then by name. */
int	scope_order(json_t *a, json_t *b, const char *stem);
/* Does the array of objects `list` hold one whose "name" is `name`? */
int	scope_has_name(json_t *list, const char *name);

/*
 * Offline: resolve `sc` against a fixture's `apps` and `workloads`
 * (arrays) into *ret_input (a copy of `input` with apps, workloads and
 * scope replaced), exactly as the agent resolves it in the registry.
 */
int	scope_apply(const struct scope *sc, json_t *input, json_t **ret_input,
	    struct xerr *e);

/*
 * The bounded record stored with an assignment: the candidate app names
 * the policy saw (at most SCOPE_WHY_NAMES_MAX), how many apps and
 * workloads it saw, and the scope facts.
 */
json_t	*scope_why(json_t *input, int scoped);

#endif
