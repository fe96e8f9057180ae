/*
 * admin.c - the admin commands xtcmkctl sends as JSON over the socket.
 *
 * A request is {"cmd": NAME, ...arguments}; the reply is a JSON object.
 * Lists are paged ({"offset", "limit"} in, {"items", "total", "next"} out)
 * because a reply must fit one frame.  Only peers in [access] admin_uids or
 * admin_gids get here (service_handle checks).
 */
#include <stdio.h>
#include <string.h>

#include "fleet.h"
#include "keys.h"
#include "log.h"
#include "registry.h"
#include "service.h"

#define ADMIN_PAGE_DEFAULT	100
#define ADMIN_PAGE_MAX		500

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

/* Slice `all` (consumed) into a page. */
static json_t *
page(json_t *all, json_t *req)
{
	json_int_t off = json_integer_value(json_object_get(req, "offset"));
	json_int_t lim = json_integer_value(json_object_get(req, "limit"));
	json_int_t total = (json_int_t)json_array_size(all), i;
	json_t *items = json_array(), *r;

	if (off < 0)
		off = 0;
	if (lim <= 0)
		lim = ADMIN_PAGE_DEFAULT;
	if (lim > ADMIN_PAGE_MAX)
		lim = ADMIN_PAGE_MAX;
	for (i = off; i < total && i < off + lim; i++)
		json_array_append(items, json_array_get(all, (size_t)i));
	r = json_pack("{s:o, s:I}", "items", items, "total", total);
	if (r != NULL)
		json_object_set_new(r, "next", i < total ?
		    json_integer(i) : json_null());
	json_decref(all);
	return r;
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
    json_t **ret_reply, struct xerr *e)
{
	struct registry *reg = service_registry(s);
	const char *cmd, *a1, *a2;
	json_t *obj, *r = NULL;
	char actor[64];
	int rc = 0;

	if ((cmd = arg_str(req, "cmd", e, &rc)) == NULL)
		return rc;
	snprintf(actor, sizeof(actor), "uid %u pid %d", (unsigned)p->uid,
	    (int)p->pid);
	log_debug("admin command %s from %s", cmd, actor);
	/* With the fleet registry, registry writes go to etcd. */
	if ((rc = fleet_admin(service_fleet(s), reg, cmd, req, actor, &r,
	    e)) <= 0)
		return rc < 0 ? rc : (*ret_reply = r, 0);
	rc = 0;

	if (strcmp(cmd, "status") == 0)
		r = service_status(s);
	else if (strcmp(cmd, "stats") == 0)
		r = service_stats(s);
	else if (strcmp(cmd, "reload") == 0) {
		if ((rc = service_reload(s, e)) == 0)
			r = service_status(s);
	} else if (strcmp(cmd, "check") == 0)
		rc = reg_check(reg, &r, e);
	else if (strcmp(cmd, "registry.export") == 0)
		rc = fleet_export(reg, req, &r, e);
	else if (strcmp(cmd, "registry.import") == 0)
		rc = fleet_import(service_fleet(s), reg, req, &r, e);
	else if (strcmp(cmd, "workload.add") == 0) {
		if ((obj = arg_obj(req, "workload", e, &rc)) != NULL &&
		    (rc = reg_workload_add(reg, obj, e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "workload.list") == 0) {
		if ((rc = reg_workload_list(reg, &obj, e)) == 0)
			r = page(obj, req);
	} else if (strcmp(cmd, "workload.show") == 0) {
		if ((a1 = arg_str(req, "name", e, &rc)) != NULL)
			rc = reg_workload_get(reg, a1, &r, e);
	} else if (strcmp(cmd, "workload.remove") == 0) {
		if ((a1 = arg_str(req, "name", e, &rc)) != NULL &&
		    (rc = reg_workload_remove(reg, a1, e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "app.add") == 0) {
		if ((obj = arg_obj(req, "app", e, &rc)) != NULL &&
		    (rc = reg_app_add(reg, obj, e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "app.set") == 0) {
		if ((a1 = arg_str(req, "name", e, &rc)) != NULL &&
		    (a2 = arg_str(req, "client_id", e, &rc)) != NULL &&
		    (rc = reg_app_set_client_id(reg, a1, a2, e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "app.list") == 0) {
		if ((rc = reg_app_list(reg, &obj, e)) == 0)
			r = page(obj, req);
	} else if (strcmp(cmd, "app.show") == 0) {
		if ((a1 = arg_str(req, "name", e, &rc)) != NULL)
			rc = reg_app_get(reg, a1, &r, e);
	} else if (strcmp(cmd, "fic.add") == 0 ||
	    strcmp(cmd, "fic.remove") == 0) {
		if ((a1 = arg_str(req, "app", e, &rc)) != NULL &&
		    (a2 = arg_str(req, "workload", e, &rc)) != NULL &&
		    (rc = cmd[4] == 'a' ? reg_fic_add(reg, a1, a2, e) :
		    reg_fic_remove(reg, a1, a2, e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "customer.add") == 0) {
		if ((obj = arg_obj(req, "customer", e, &rc)) != NULL)
			rc = service_onboard(s, obj, &r, e);
	} else if (strcmp(cmd, "customer.list") == 0) {
		if ((rc = reg_customer_list(reg, &obj, e)) == 0)
			r = page(obj, req);
	} else if (strcmp(cmd, "customer.show") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL)
			rc = customer_show(s, a1, &r, e);
	} else if (strcmp(cmd, "customer.move") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL &&
		    (a2 = arg_str(req, "to", e, &rc)) != NULL &&
		    (rc = reg_customer_move(reg, a1, a2,
		    json_string_value(json_object_get(req, "reason")), actor,
		    e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "customer.remove") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL &&
		    (rc = reg_customer_remove(reg, a1, actor, e)) == 0)
			r = ok();
	} else if (strcmp(cmd, "customer.check") == 0) {
		if (arg_str(req, "id", e, &rc) != NULL)
			rc = keys_admin(service_keys(s), "check", req, &r, e);
	} else if (strcmp(cmd, "decide") == 0) {
		if ((a1 = arg_str(req, "id", e, &rc)) != NULL)
			rc = service_decide_json(s, a1, &r, e);
	} else if (strncmp(cmd, "key.", 4) == 0)
		rc = keys_admin(service_keys(s), cmd + 4, req, &r, e);
	else
		return xerr_set(e, XTCMK_E_INVAL, "unknown admin command "
		    "'%s'", cmd);
	if (rc < 0)
		return rc;
	if (r == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	*ret_reply = r;
	return 0;
}
