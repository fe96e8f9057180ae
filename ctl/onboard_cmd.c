/*
 * onboard_cmd.c - the command line of the onboarding documents: parse the
 * words after `app plan`, `customer kit`, `resource config` and `key
 * plan-rotation`, fetch what the generators need from the agent, print.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onboard.h"
#include "onboard_int.h"

#define CURRENT_FILE_MAX	(4L * 1024 * 1024)

struct args {
	const char	*pos[ONB_OPTS_MAX];
	int		 npos;
	json_t		*opts;		/* "--name" -> value */
	json_t		*add;		/* --add, repeatable */
	enum onb_format	 fmt;
};

static int
parse(const struct onb_io *io, int argc, char **argv,
    const char *const *allowed, struct args *a)
{
	const char *v;
	int i, j, ok;

	memset(a, 0, sizeof(*a));
	a->opts = json_object();
	a->add = json_array();
	a->fmt = io->json ? ONB_JSON : ONB_TEXT;
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (a->npos == ONB_OPTS_MAX)
				return -1;
			a->pos[a->npos++] = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--json") == 0) {
			a->fmt = ONB_JSON;
			continue;
		}
		for (ok = strcmp(argv[i], "--format") == 0, j = 0;
		    allowed[j] != NULL; j++)
			if (strcmp(allowed[j], argv[i]) == 0)
				ok = 1;
		if (!ok) {
			fprintf(stderr, "xtcmkctl: unknown option %s\n",
			    argv[i]);
			return -1;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "xtcmkctl: %s needs a value\n",
			    argv[i]);
			return -1;
		}
		v = argv[++i];
		if (strcmp(argv[i - 1], "--format") == 0) {
			if (strcmp(v, "text") == 0)
				a->fmt = ONB_TEXT;
			else if (strcmp(v, "md") == 0)
				a->fmt = ONB_MD;
			else if (strcmp(v, "json") == 0)
				a->fmt = ONB_JSON;
			else {
				fprintf(stderr, "xtcmkctl: --format takes text, "
				    "md or json, not '%s'\n", v);
				return -1;
			}
		} else if (strcmp(argv[i - 1], "--add") == 0)
			json_array_append_new(a->add, json_string(v));
		else
			json_object_set_new(a->opts, argv[i - 1] + 2,
			    json_string(v));
	}
	return 0;
}

static void
args_free(struct args *a)
{
	json_decref(a->opts);
	json_decref(a->add);
}

static const char *
aopt(struct args *a, const char *name)
{
	return json_string_value(json_object_get(a->opts, name));
}

static int
fetch(const struct onb_io *io, json_t *req, json_t **ret)
{
	int rc = io->call(req, ret);

	json_decref(req);
	return rc;
}

static int
fetch_quiet(const struct onb_io *io, json_t *req, json_t **ret)
{
	int rc = io->call_quiet(req, ret);

	json_decref(req);
	return rc;
}

static int
finish(const struct onb_io *io, int rc, json_t *doc, struct xerr *e,
    enum onb_format fmt)
{
	if (rc < 0) {
		fprintf(stderr, "xtcmkctl: %s\n", e->msg);
		return io->exit_for(e->code);
	}
	rc = onb_render(doc, fmt, stdout);
	json_decref(doc);
	return rc < 0 ? 1 : 0;
}

static int
load_current(const char *path, json_t **ret, struct xerr *e)
{
	json_error_t jerr;
	struct stat st;
	json_t *v;

	if (stat(path, &st) == -1)
		return xerr_set(e, XTCMK_E_INVAL, "--current %s: cannot read "
		    "it; save it with `az ad app federated-credential list "
		    "--id APP_OBJECT_ID > %s`", path, path);
	if (st.st_size > CURRENT_FILE_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "--current %s is larger than "
		    "%ld bytes", path, CURRENT_FILE_MAX);
	if ((v = json_load_file(path, 0, &jerr)) == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "--current %s:%d: %s", path,
		    jerr.line, jerr.text);
	if (!json_is_array(v) && !json_is_object(v)) {
		json_decref(v);
		return xerr_set(e, XTCMK_E_INVAL, "--current %s must hold the "
		    "array `az ad app federated-credential list` prints (with "
		    "APP), or an object mapping application names to such "
		    "arrays", path);
	}
	*ret = v;
	return 0;
}

/* `app plan APP`: the one application, read with app.show. */
static int
plan_one(const struct onb_io *io, struct args *a, json_t *status,
    json_t *wls, json_t *cur)
{
	json_t *app = NULL, *apps, *doc = NULL;
	struct xerr e;
	int rc;

	rc = fetch_quiet(io, json_pack("{s:s, s:s}", "cmd", "app.show", "name",
	    a->pos[0]), &app);
	if (rc == io->exit_for(XTCMK_E_NOT_FOUND))
		rc = xerr_set(&e, XTCMK_E_NOT_FOUND, "unknown application '%s'; "
		    "`xtcmkctl app list` shows the registered ones", a->pos[0]);
	else if (rc != 0)
		return rc;
	else {
		apps = json_pack("[o]", app);
		rc = onb_app_plan(status, apps, wls, a->pos[0], cur, a->add,
		    &doc, &e);
		json_decref(apps);
	}
	return finish(io, rc, doc, &e, a->fmt);
}

/*
 * `app plan` over every application, streamed: a page of app.list at a
 * time is planned, printed and dropped, so it works with any number of
 * applications in the memory of one page.  An error stops the output
 * where it is.
 */
static int
plan_all(const struct onb_io *io, struct args *a, json_t *status,
    json_t *wls, json_t *cur)
{
	struct onb_stream st;
	struct onb_plan *p = NULL;
	json_t *page = NULL, *next, *app;
	struct xerr e;
	size_t i;
	int rc, started = 0;

	if ((rc = onb_plan_begin(status, wls, NULL, cur, NULL, &p, &e)) < 0)
		return finish(io, rc, NULL, &e, a->fmt);
	next = json_null();
	for (;;) {
		if ((rc = fetch(io, json_pack("{s:s, s:o}", "cmd", "app.list",
		    "after", next), &page)) != 0)
			break;
		if (!started) {
			if (json_array_size(json_object_get(page, "items")) ==
			    0)
				onb_plan_none(p);
			if (onb_stream_begin(&st, onb_plan_doc(p), "apps",
			    a->fmt, stdout) < 0) {
				rc = 1;
				break;
			}
			started = 1;
		}
		json_array_foreach(json_object_get(page, "items"), i, app)
			if ((rc = onb_plan_app(p, app, &e)) < 0)
				break;
		if (rc < 0) {
			fflush(stdout);
			fprintf(stderr, "xtcmkctl: %s\n", e.msg);
			rc = io->exit_for(e.code);
			break;
		}
		if (onb_stream_flush(&st, onb_plan_doc(p)) < 0) {
			rc = 1;
			break;
		}
		next = json_object_get(page, "next");
		if (!json_is_string(next)) {
			rc = onb_stream_end(&st, onb_plan_doc(p)) < 0 ? 1 : 0;
			break;
		}
		json_incref(next);
		json_decref(page);
		page = NULL;
	}
	json_decref(page);
	onb_plan_free(p);
	return rc;
}

static int
cmd_plan(const struct onb_io *io, int argc, char **argv)
{
	static const char *const allowed[] = { "--current", "--add", NULL };
	json_t *status = NULL, *wls = NULL, *cur = NULL;
	struct args a;
	struct xerr e;
	int rc;

	if (parse(io, argc, argv, allowed, &a) < 0 || a.npos > 1 ||
	    (json_array_size(a.add) > 0 && a.npos == 0)) {
		if (a.npos == 0 && json_array_size(a.add) > 0)
			fprintf(stderr, "xtcmkctl: --add needs the "
			    "application: app plan APP --add WORKLOAD\n");
		args_free(&a);
		return 2;
	}
	if (aopt(&a, "current") != NULL &&
	    load_current(aopt(&a, "current"), &cur, &e) < 0) {
		args_free(&a);
		fprintf(stderr, "xtcmkctl: %s\n", e.msg);
		return io->exit_for(e.code);
	}
	if ((rc = fetch(io, json_pack("{s:s}", "cmd", "status"), &status)) ||
	    (rc = io->call_list("workload.list", &wls)))
		goto out;
	rc = a.npos == 1 ? plan_one(io, &a, status, wls, cur) :
	    plan_all(io, &a, status, wls, cur);
out:
	json_decref(status);
	json_decref(wls);
	json_decref(cur);
	args_free(&a);
	return rc;
}

static int
cmd_customer(const struct onb_io *io, const char *what, int argc,
    char **argv)
{
	static const char *const kit[] = { "--grant", "--vault-resource-id",
	    NULL };
	static const char *const res[] = { "--kind", "--identity", "--account",
	    "--resource-group", "--subscription", "--location",
	    "--vault-resource-id", NULL };
	static const char *const kinds[] = { "storage", "storage-existing",
	    "cosmosdb", "netapp", "host", NULL };
	static const char *const none[] = { NULL };
	json_t *status = NULL, *show = NULL, *wls = NULL, *doc = NULL, *o;
	const char *kind, *g;
	struct args a;
	struct xerr e;
	int rc, i;

	if (parse(io, argc, argv, strcmp(what, "kit") == 0 ? kit :
	    strcmp(what, "config") == 0 ? res : none, &a) < 0 ||
	    a.npos != 1) {
		args_free(&a);
		return 2;
	}
	kind = aopt(&a, "kind");
	g = aopt(&a, "grant");
	if (strcmp(what, "config") == 0) {
		for (i = 0; kind != NULL && kinds[i] != NULL; i++)
			if (strcmp(kinds[i], kind) == 0)
				break;
		if (kind == NULL || kinds[i] == NULL) {
			fprintf(stderr, "xtcmkctl: resource config needs --kind "
			    "storage, storage-existing, cosmosdb, netapp or "
			    "host\n");
			args_free(&a);
			return 2;
		}
	}
	if (g != NULL && strcmp(g, "rbac") != 0 &&
	    strcmp(g, "access-policy") != 0) {
		fprintf(stderr, "xtcmkctl: --grant takes rbac or access-policy, "
		    "not '%s'\n", g);
		args_free(&a);
		return 2;
	}
	if ((rc = fetch(io, json_pack("{s:s}", "cmd", "status"), &status)) ||
	    (rc = fetch(io, json_pack("{s:s, s:s}", "cmd", "customer.show",
	    "id", a.pos[0]), &show)))
		goto out;
	if (strcmp(what, "kit") == 0)
		rc = onb_customer_kit(status, show, g,
		    aopt(&a, "vault-resource-id"), &doc, &e);
	else if (strcmp(what, "config") == 0) {
		if ((rc = io->call_list("workload.list", &wls)) != 0)
			goto out;
		o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}",
		    "identity", aopt(&a, "identity"),
		    "account", aopt(&a, "account"),
		    "resource_group", aopt(&a, "resource-group"),
		    "subscription", aopt(&a, "subscription"),
		    "location", aopt(&a, "location"),
		    "vault_resource_id", aopt(&a, "vault-resource-id"));
		rc = onb_resource_config(status, show, wls, kind, o, &doc, &e);
		json_decref(o);
	} else
		rc = onb_plan_rotation(show, &doc, &e);
	rc = finish(io, rc, doc, &e, a.fmt);
out:
	json_decref(status);
	json_decref(show);
	json_decref(wls);
	args_free(&a);
	return rc;
}

int
onb_main(const struct onb_io *io, const char *cmd, int argc, char **argv)
{
	if (argc < 1)
		return -1;
	if (strcmp(cmd, "app") == 0 && strcmp(argv[0], "plan") == 0)
		return cmd_plan(io, argc - 1, argv + 1);
	if (strcmp(cmd, "customer") == 0 && strcmp(argv[0], "kit") == 0)
		return cmd_customer(io, "kit", argc - 1, argv + 1);
	if (strcmp(cmd, "resource") == 0 && strcmp(argv[0], "config") == 0)
		return cmd_customer(io, "config", argc - 1, argv + 1);
	if (strcmp(cmd, "key") == 0 && strcmp(argv[0], "plan-rotation") == 0)
		return cmd_customer(io, "rotation", argc - 1, argv + 1);
	return -1;
}
