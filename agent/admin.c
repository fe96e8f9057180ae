/*
 * admin.c - the admin commands xtcmkctl sends as JSON over the socket.
 *
 * A request is {"cmd": NAME, ...arguments}; the reply is a JSON object.
 * Lists are paged by key ({"limit", "after"} in, {"items", "next"} out):
 * each page is one indexed range query in key order, so it costs what it
 * holds whatever the registry holds, and it stops early when the next
 * item would take the reply past one frame.  Only peers in [access]
 * admin or monitor lists get here (service_handle checks); admin_rules below
 * says which commands monitors may run and which changes are audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "fleet.h"
#include "keys.h"
#include "log.h"
#include "registry.h"
#include "service.h"
#include "validate.h"
#include "wire.h"

#define ADMIN_PAGE_DEFAULT	200		/* rows when "limit" is absent */
#define ADMIN_APP_PAGE_DEFAULT	20		/* an application is ~3 KiB */
#define ADMIN_PAGE_MAX		REG_PAGE_MAX
#define ADMIN_PROBLEMS_SHOWN	100	/* of `check`, the rest counted */
/* The items of a page: one frame less the field header and room for
 * {"items":[],"next":KEY} with a key of a few hundred bytes. */
#define ADMIN_PAGE_BYTES	(XW_PAYLOAD_MAX - XW_FIELD_HDR - 1024)

/*
 * Authorization by command.  READ: admins and monitors ([access]
 * monitor_uids/monitor_gids); CHANGE: admins only, and logged at notice
 * when it succeeds (the audit trail of who moved, removed or added what).
 * A command missing here is an admin-only change.
 */
enum { ADMIN_READ, ADMIN_CHANGE, ADMIN_PROBE };
static const struct admin_rule {
	const char	*cmd;
	int		 kind;
} admin_rules[] = {
	{ "status", ADMIN_READ },
	{ "stats", ADMIN_READ },
	{ "decide", ADMIN_READ },
	{ "workload.list", ADMIN_READ },
	{ "workload.show", ADMIN_READ },
	{ "app.list", ADMIN_READ },
	{ "app.show", ADMIN_READ },
	{ "customer.list", ADMIN_READ },
	{ "customer.show", ADMIN_READ },
	{ "customer.moves", ADMIN_READ },
	{ "key.list", ADMIN_READ },
	{ "key.show", ADMIN_READ },
	{ "key.status", ADMIN_READ },
	/* Admin-only, but they change nothing: not audited. */
	{ "check", ADMIN_PROBE },
	{ "customer.check", ADMIN_PROBE },
	{ "registry.export", ADMIN_PROBE },
};

static int
admin_rule(const char *cmd)
{
	size_t i;

	for (i = 0; i < sizeof(admin_rules) / sizeof(admin_rules[0]); i++)
		if (strcmp(admin_rules[i].cmd, cmd) == 0)
			return admin_rules[i].kind;
	return ADMIN_CHANGE;
}

/* What a change was about, for the audit line: names, never key
 * material or arguments at large. */
static void
audit_subject(json_t *req, char *buf, size_t len)
{
	static const char *const keys[] = { "id", "name", "app", "workload",
	    "to", "uri", "reason" };
	static const char *const objs[] = { "customer", "workload", "app" };
	const char *v;
	size_t i, n = 0;
	json_t *o;

	buf[0] = '\0';
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && n < len; i++)
		if ((v = json_string_value(json_object_get(req, keys[i]))) !=
		    NULL)
			n += (size_t)snprintf(buf + n, len - n, " %s=%.80s",
			    keys[i], v);
	for (i = 0; i < sizeof(objs) / sizeof(objs[0]) && n < len; i++) {
		o = json_object_get(req, objs[i]);
		if (json_is_object(o) && ((v = json_string_value(
		    json_object_get(o, "id"))) != NULL || (v =
		    json_string_value(json_object_get(o, "name"))) != NULL))
			n += (size_t)snprintf(buf + n, len - n, " %s=%.80s",
			    objs[i], v);
	}
}

static const char *
arg_str(json_t *req, const char *key, struct xerr *e, int *rc)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_string(v)) {
		*rc = xerr_set(e, XTCMK_E_INVAL, "missing string argument "
		    "\"%s\"", key);
		return NULL;
	}
	return json_string_value(v);
}

static json_t *
arg_obj(json_t *req, const char *key, struct xerr *e, int *rc)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_object(v)) {
		*rc = xerr_set(e, XTCMK_E_INVAL, "missing object argument "
		    "\"%s\"", key);
		return NULL;
	}
	return v;
}

/*
 * The paging arguments: "limit" (1..ADMIN_PAGE_MAX, `dflt` when absent)
 * and "after" (the "next" of the previous page; absent or null: the
 * first page), a string, or an integer when `numeric`.
 */
static int
page_args(json_t *req, int dflt, int numeric, const char **ret_after,
    long long *ret_after_num, int *ret_limit, struct xerr *e)
{
	json_t *lim = json_object_get(req, "limit");
	json_t *after = json_object_get(req, "after");

	*ret_limit = dflt;
	if (json_object_get(req, "offset") != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "\"offset\" is not accepted: "
		    "lists are paged by key; pass \"after\" with the \"next\" "
		    "of the previous reply (see xtcmk-protocol(7))");
	if (lim == NULL || json_is_null(lim))
		*ret_limit = dflt;
	else if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
	    json_integer_value(lim) > ADMIN_PAGE_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "\"limit\" must be an "
		    "integer from 1 to %d", ADMIN_PAGE_MAX);
	else
		*ret_limit = (int)json_integer_value(lim);
	*ret_after = NULL;
	*ret_after_num = 0;
	if (after == NULL || json_is_null(after))
		return 0;
	if (numeric && json_is_integer(after) && json_integer_value(after) >= 0)
		*ret_after_num = json_integer_value(after);
	else if (!numeric && json_is_string(after))
		*ret_after = json_string_value(after);
	else
		return xerr_set(e, XTCMK_E_INVAL, "\"after\" must be %s: the "
		    "\"next\" of the previous reply", numeric ?
		    "a non-negative integer" : "a string");
	return 0;
}

static const char page_head[] = "{\"items\":[";

/*
 * End the reply text `buf` (XW_PAYLOAD_MAX bytes, `used` of them the
 * head and items) with "next" (`next`, borrowed) and hand it to *ret; buf
 * is freed on failure.
 */
static int
page_close(char *buf, size_t used, json_t *next, char **ret, struct xerr *e)
{
	static const char mid[] = "],\"next\":";
	size_t n;

	memcpy(buf + used, mid, sizeof(mid) - 1);
	used += sizeof(mid) - 1;
	n = next == NULL ? 0 : json_dumpb(next, buf + used,
	    XW_PAYLOAD_MAX - used - 2, JSON_COMPACT | JSON_ENCODE_ANY);
	if (n == 0 || used + n + 2 > XW_PAYLOAD_MAX) {
		free(buf);
		return xerr_set(e, XTCMK_E_TOOBIG, "a list key is over the "
		    "frame limit of %d bytes", XW_PAYLOAD_MAX);
	}
	used += n;
	buf[used++] = '}';
	buf[used] = '\0';
	*ret = buf;
	return 0;
}

/*
 * Make the reply {"items", "next"} from a page (consumed) as JSON text:
 * each item is encoded once, straight into the reply, and the items that
 * fit ADMIN_PAGE_BYTES are kept; "next" is the key (member `key`) of the
 * last one kept when more follow, else null.  An item too large for a
 * frame alone cannot occur (the validators' limits bound every row far
 * below it) and is reported, not looped on.
 */
static int
page_reply(json_t *items, int more, const char *key, char **ret,
    struct xerr *e)
{
	json_t *v, *last = NULL;
	size_t i, n, used;
	char *buf;
	int sep, rc;

	if ((buf = malloc(XW_PAYLOAD_MAX)) == NULL) {
		json_decref(items);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	memcpy(buf, page_head, sizeof(page_head) - 1);
	used = sizeof(page_head) - 1;
	json_array_foreach(items, i, v) {
		sep = i > 0;
		if (used + sep >= ADMIN_PAGE_BYTES) {
			more = 1;
			break;
		}
		n = json_dumpb(v, buf + used + sep, ADMIN_PAGE_BYTES - used -
		    sep, JSON_COMPACT);
		if (n == 0) {
			free(buf);
			json_decref(items);
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		}
		if (used + sep + n > ADMIN_PAGE_BYTES) {
			more = 1;
			break;
		}
		if (sep)
			buf[used] = ',';
		used += sep + n;
		last = v;
	}
	if (last == NULL && more) {
		free(buf);
		json_decref(items);
		return xerr_set(e, XTCMK_E_TOOBIG, "one item of the list is "
		    "over the frame limit of %d bytes", XW_PAYLOAD_MAX);
	}
	rc = page_close(buf, used, more ? json_object_get(last, key) :
	    json_null(), ret, e);
	json_decref(items);
	return rc;
}

/* A page of a list keyed by a string: `fn` is a reg_*_page(). */
static int
list_page(struct registry *reg, json_t *req, int dflt,
    int (*fn)(struct registry *, const char *, int, json_t **, int *,
    struct xerr *), const char *key, char **ret, struct xerr *e)
{
	const char *after;
	long long unused;
	json_t *items;
	int rc, limit, more;

	if ((rc = page_args(req, dflt, 0, &after, &unused, &limit, e)) < 0 ||
	    (rc = fn(reg, after, limit, &items, &more, e)) < 0)
		return rc;
	return page_reply(items, more, key, ret, e);
}

/*
 * customer.list: the page written straight from the rows as text (see
 * reg_customer_page_text), the same reply page_reply() would make.
 */
static int
customer_page(struct registry *reg, json_t *req, char **ret, struct xerr *e)
{
	char last[CUSTOMER_ID_MAX + 1], *buf;
	const char *after;
	long long unused;
	json_t *next;
	size_t used = sizeof(page_head) - 1;
	int rc, limit, more;

	if ((rc = page_args(req, ADMIN_PAGE_DEFAULT, 0, &after, &unused,
	    &limit, e)) < 0)
		return rc;
	if ((buf = malloc(XW_PAYLOAD_MAX)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	memcpy(buf, page_head, used);
	if ((rc = reg_customer_page_text(reg, after, limit, buf,
	    ADMIN_PAGE_BYTES, &used, last, sizeof(last), &more, e)) < 0) {
		free(buf);
		return rc;
	}
	if (more && last[0] == '\0') {
		free(buf);
		return xerr_set(e, XTCMK_E_TOOBIG, "one item of the list is "
		    "over the frame limit of %d bytes", XW_PAYLOAD_MAX);
	}
	next = more ? json_string(last) : json_null();
	rc = page_close(buf, used, next, ret, e);
	json_decref(next);
	return rc;
}

/* The moves log, of one customer ("id") or all, keyed by its "id". */
static int
moves_page(struct registry *reg, json_t *req, char **ret, struct xerr *e)
{
	const char *unused, *id = NULL;
	long long after;
	json_t *items, *v = json_object_get(req, "customer");
	int rc, limit, more;

	if (v != NULL && !json_is_null(v) && (id = json_string_value(v)) ==
	    NULL)
		return xerr_set(e, XTCMK_E_INVAL, "\"customer\" must be a "
		    "customer id");
	if ((rc = page_args(req, ADMIN_PAGE_DEFAULT, 1, &unused, &after,
	    &limit, e)) < 0 || (rc = reg_moves_page(reg, id, after, limit,
	    &items, &more, e)) < 0)
		return rc;
	return page_reply(items, more, "id", ret, e);
}

static int
key_sort(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a,
	    "key")), json_string_value(json_object_get(*(json_t *const *)b,
	    "key")));
}

/*
 * The local keystore's keys, keyed by "key" (VAULT/NAME).  The keystore
 * is held in memory by the agent (it serves only *.vault.local, a
 * development and test provider), so a page sorts its index rather than
 * running a query; the reply is paged like every other list.
 */
static int
keys_page(struct service *s, json_t *req, char **ret, struct xerr *e)
{
	const char *after;
	long long unused;
	json_t *r = NULL, *all, *v, **sorted = NULL, *items;
	size_t i, n;
	int rc, limit, more = 0;

	if ((rc = page_args(req, ADMIN_PAGE_DEFAULT, 0, &after, &unused,
	    &limit, e)) < 0 ||
	    (rc = keys_admin(service_keys(s), "list", req, &r, e)) < 0)
		return rc;
	all = json_object_get(r, "keys");
	n = json_array_size(all);
	if (n > 0 && (sorted = calloc(n, sizeof(*sorted))) == NULL) {
		json_decref(r);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	json_array_foreach(all, i, v) {
		json_object_set_new(v, "key", json_sprintf("%s/%s",
		    json_string_value(json_object_get(v, "vault")),
		    json_string_value(json_object_get(v, "name"))));
		sorted[i] = v;
	}
	if (n > 0)
		qsort(sorted, n, sizeof(*sorted), key_sort);
	items = json_array();
	for (i = 0; i < n; i++) {
		if (after != NULL && strcmp(json_string_value(
		    json_object_get(sorted[i], "key")), after) <= 0)
			continue;
		if (json_array_size(items) == (size_t)limit) {
			more = 1;
			break;
		}
		json_array_append(items, sorted[i]);
	}
	free(sorted);
	json_decref(r);
	return page_reply(items, more, "key", ret, e);
}

/* A broken registry can list a problem per row: show the first
 * ADMIN_PROBLEMS_SHOWN and how many there are, so the reply fits. */
static void
cap_problems(json_t *report)
{
	json_t *p = json_object_get(report, "problems");
	size_t n = json_array_size(p);

	json_object_set_new(report, "problems_total", json_integer(
	    (json_int_t)n));
	while (json_array_size(p) > ADMIN_PROBLEMS_SHOWN)
		json_array_remove(p, json_array_size(p) - 1);
}

static json_t *
ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

static int
customer_show(struct service *s, const char *id, json_t **ret, struct xerr *e)
{
	struct registry *reg = service_registry(s);
	json_t *c = NULL, *a = NULL, *d = NULL;
	struct xerr derr;
	int rc;

	if ((rc = reg_customer_get(reg, id, &c, e)) < 0)
		return rc;
	if ((rc = reg_assignment_get(reg, id, &a, e)) < 0) {
		json_decref(c);
		return rc;
	}
	*ret = json_pack("{s:o, s:o}", "customer", c, "assignment", a);
	/* A policy that refuses this customer now must not hide the record. */
	if (service_decide_json(s, id, &d, &derr) == 0)
		json_object_set_new(*ret, "decision", d);
	else
		json_object_set_new(*ret, "decision_error",
		    json_string(derr.msg));
	return 0;
}

int
admin_handle(struct service *s, const struct peer *p, json_t *req,
    json_t **ret_reply, char **ret_text, struct xerr *e)
{
	struct registry *reg = service_registry(s);
	const char *cmd, *a1, *a2;
	json_t *obj, *r = NULL;
	char *text = NULL;
	char actor[64], subject[512];
	int rc = 0, kind;

	if ((cmd = arg_str(req, "cmd", e, &rc)) == NULL)
		return rc;
	snprintf(actor, sizeof(actor), "uid %u pid %d", (unsigned)p->uid,
	    (int)p->pid);
	log_debug("admin command %s from %s", cmd, actor);
	kind = admin_rule(cmd);
	if (kind != ADMIN_READ && !config_allows(service_config(s),
	    ACCESS_ADMIN, p->uid, p->gid))
		return xerr_set(e, XTCMK_E_DENIED, "uid %u may run only "
		    "read-only commands (status, stats, lists, shows, decide: "
		    "[access] monitor_uids); '%s' needs admin_uids",
		    (unsigned)p->uid, cmd);
	/* Registry writes go to the registry backend (SQLite or etcd);
	 * moves after the policy's check (service_move). */
	if (strcmp(cmd, "customer.move") != 0 &&
	    (rc = regb_write(service_backend(s), cmd, req, actor, &r, e)) <= 0)
		goto reply;
	rc = 0;

	if (strcmp(cmd, "status") == 0)
		r = service_status(s);
	else if (strcmp(cmd, "stats") == 0)
		r = service_stats(s);
	else if (strcmp(cmd, "reload") == 0) {
		if ((rc = service_reload(s, e)) == 0)
			r = service_status(s);
	} else if (strcmp(cmd, "check") == 0) {
		if ((rc = reg_check(reg, &r, e)) == 0)
			cap_problems(r);
	} else if (strcmp(cmd, "registry.export") == 0)
		rc = fleet_export(reg, req, &r, e);
	else if (strcmp(cmd, "registry.import") == 0)
		rc = regb_import(service_backend(s), req, &r, e);
	else if (strcmp(cmd, "workload.list") == 0) {
		rc = list_page(reg, req, ADMIN_PAGE_DEFAULT,
		    reg_workload_page, "name", &text, e);
	} else if (strcmp(cmd, "workload.show") == 0) {
		if ((a1 = arg_str(req, "name", e, &rc)) != NULL)
			rc = reg_workload_get(reg, a1, &r, e);
	} else if (strcmp(cmd, "app.list") == 0) {
		rc = list_page(reg, req, ADMIN_APP_PAGE_DEFAULT,
		    reg_app_page, "name", &text, e);
	} else if (strcmp(cmd, "app.show") == 0) {
		if ((a1 = arg_str(req, "name", e, &rc)) != NULL)
			rc = reg_app_get(reg, a1, &r, e);
	} else if (strcmp(cmd, "customer.add") == 0) {
		if ((obj = arg_obj(req, "customer", e, &rc)) != NULL)
			rc = service_onboard(s, obj, &r, e);
	} else if (strcmp(cmd, "customer.import") == 0) {
		rc = service_import(s, json_object_get(req, "customers"), &r,
		    e);
	} else if (strcmp(cmd, "customer.list") == 0) {
		rc = customer_page(reg, req, &text, e);
	} else if (strcmp(cmd, "customer.moves") == 0) {
		rc = moves_page(reg, req, &text, e);
	} else if (strcmp(cmd, "customer.show") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL)
			rc = customer_show(s, a1, &r, e);
	} else if (strcmp(cmd, "customer.move") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL &&
		    (a2 = arg_str(req, "to", e, &rc)) != NULL &&
		    (rc = service_move(s, a1, a2,
		    json_string_value(json_object_get(req, "reason")), actor,
		    e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "customer.check") == 0) {
		if (arg_str(req, "id", e, &rc) != NULL)
			rc = keys_admin(service_keys(s), "check", req, &r, e);
	} else if (strcmp(cmd, "decide") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL)
			rc = service_decide_json(s, a1, &r, e);
	} else if (strcmp(cmd, "key.list") == 0)
		rc = keys_page(s, req, &text, e);
	else if (strncmp(cmd, "key.", 4) == 0)
		rc = keys_admin(service_keys(s), cmd + 4, req, &r, e);
	else
		return xerr_set(e, XTCMK_E_INVAL, "unknown admin command "
		    "'%s'", cmd);
reply:
	if (rc < 0)
		return rc;
	if (text != NULL) {
		/* A list page, encoded already. */
		*ret_reply = NULL;
		*ret_text = text;
		return 0;
	}
	if (r == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (kind == ADMIN_CHANGE) {
		audit_subject(req, subject, sizeof(subject));
		log_event(LOG_NOTICE, LOG_MSGID_ADMIN, json_string_value(
		    json_object_get(req, "id")), json_string_value(
		    json_object_get(req, "app")), "admin %s by %s:%s", cmd,
		    actor, subject);
	}
	*ret_reply = r;
	*ret_text = NULL;
	return 0;
}
