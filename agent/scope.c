/*
 * scope.c - partition scope selectors (see scope.h): parsing the table a
 * policy's P.scope returns, matching an application or workload against
 * a selector, the fill order, and the offline resolution `xtcmkctl
 * policy test` uses.  The registry's resolution (registry_scope.c) finds
 * candidates through its indexes and keeps only those scope_match()
 * accepts, so both sides share one definition.
 */
#include <stdlib.h>
#include <string.h>

#include "scope.h"
#include "validate.h"

#define SCOPE_DIGITS_MAX	18	/* digits of a numbered name */

static int
parse_labels(json_t *labels, struct scope_sel *sel, const char *what,
    struct xerr *e)
{
	const char *k;
	json_t *v;

	/* Lua's {} arrives as an empty list. */
	if (labels == NULL || (json_is_array(labels) &&
	    json_array_size(labels) == 0))
		return 0;
	if (!json_is_object(labels))
		return xerr_set(e, XTCMK_E_POLICY, "scope: %s.labels must be "
		    "a table of label = \"value\" | true | false", what);
	if (json_object_size(labels) > SCOPE_LABELS_MAX)
		return xerr_set(e, XTCMK_E_POLICY, "scope: %s.labels has "
		    "%zu conditions; at most %d", what,
		    json_object_size(labels), SCOPE_LABELS_MAX);
	json_object_foreach(labels, k, v) {
		struct scope_label *l = &sel->label[sel->nlabels];

		if (valid_label(k, json_is_string(v) ? json_string_value(v) :
		    "x", e) != 0)
			return xerr_set(e, XTCMK_E_POLICY, "scope: %s.labels: "
			    "%s", what, e->msg);
		l->key = k;
		if (json_is_string(v)) {
			l->op = SCOPE_EQ;
			l->value = json_string_value(v);
		} else if (json_is_boolean(v))
			l->op = json_is_true(v) ? SCOPE_PRESENT : SCOPE_ABSENT;
		else
			return xerr_set(e, XTCMK_E_POLICY, "scope: %s.labels.%s "
			    "must be a string, true (present) or false "
			    "(absent)", what, k);
		sel->nlabels++;
	}
	return 0;
}

static int
parse_int(json_t *o, const char *key, const char *what, long long lo,
    long long hi, long long dflt, long long *ret, struct xerr *e)
{
	json_t *v = json_object_get(o, key);

	*ret = dflt;
	if (v == NULL) {
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return xerr_set(e, XTCMK_E_POLICY, "scope: %s.%s must be an "
		    "integer from %lld to %lld", what, key, lo, hi);
	*ret = json_integer_value(v);
	return 0;
}

static int
parse_sel(json_t *o, int apps, struct scope_sel *sel, struct xerr *e)
{
	const char *what = apps ? "apps" : "workloads", *k;
	long long n;
	json_t *v;
	size_t len;

	sel->room = -1;
	sel->limit = apps ? SCOPE_APPS_DEFAULT : SCOPE_WORKLOADS_MAX;
	if (o == NULL)
		return 0;
	if (json_is_array(o) && json_array_size(o) == 0) {
		sel->present = 1;
		return apps ? xerr_set(e, XTCMK_E_POLICY, "scope: apps needs "
		    "a stem or a label equal to a value") : 0;
	}
	if (!json_is_object(o))
		return xerr_set(e, XTCMK_E_POLICY, "scope: %s must be a table "
		    "of selector fields", what);
	json_object_foreach(o, k, v) {
		if (strcmp(k, "labels") != 0 && strcmp(k, "limit") != 0 &&
		    (!apps || (strcmp(k, "stem") != 0 &&
		    strcmp(k, "room") != 0)))
			return xerr_set(e, XTCMK_E_POLICY, "scope: %s has an "
			    "unknown field '%s' (%s)", what, k, apps ?
			    "labels, stem, room, limit" : "labels, limit");
	}
	sel->present = 1;
	if (parse_labels(json_object_get(o, "labels"), sel, what, e) != 0)
		return -XTCMK_E_POLICY;
	if (parse_int(o, "limit", what, 1, apps ? SCOPE_APPS_MAX :
	    SCOPE_WORKLOADS_MAX, apps ? SCOPE_APPS_DEFAULT :
	    SCOPE_WORKLOADS_MAX, &n, e) != 0)
		return -XTCMK_E_POLICY;
	sel->limit = (int)n;
	if (!apps)
		return 0;
	if (parse_int(o, "room", what, 1, 1LL << 40, -1, &sel->room, e) != 0)
		return -XTCMK_E_POLICY;
	if ((v = json_object_get(o, "stem")) != NULL) {
		if (!json_is_string(v) ||
		    (len = strlen(json_string_value(v))) == 0 ||
		    len > NAME_MAX_LEN || (json_string_value(v)[len - 1] >= '0'
		    && json_string_value(v)[len - 1] <= '9'))
			return xerr_set(e, XTCMK_E_POLICY, "scope: apps.stem "
			    "must be 1 to %d characters not ending in a digit, "
			    "e.g. \"xtcmk-eu-\"", NAME_MAX_LEN);
		sel->stem = json_string_value(v);
	}
	/* Each selector must be answerable from an index. */
	for (n = 0; n < sel->nlabels; n++)
		if (sel->label[n].op == SCOPE_EQ)
			break;
	if (sel->stem == NULL && n == sel->nlabels)
		return xerr_set(e, XTCMK_E_POLICY, "scope: apps needs a stem "
		    "or a label equal to a value (e.g. labels = { region = "
		    "\"eu\" }), so it can be looked up by index");
	return 0;
}

int
scope_parse(json_t *doc, struct scope *sc, struct xerr *e)
{
	const char *k;
	json_t *v, *names;
	size_t i;

	memset(sc, 0, sizeof(*sc));
	sc->apps.room = sc->workloads.room = -1;
	if (!json_is_object(doc))
		return xerr_set(e, XTCMK_E_POLICY, "scope must return a table "
		    "with apps, app_names and/or workloads");
	json_object_foreach(doc, k, v)
		if (strcmp(k, "apps") != 0 && strcmp(k, "app_names") != 0 &&
		    strcmp(k, "workloads") != 0)
			return xerr_set(e, XTCMK_E_POLICY, "scope: unknown field "
			    "'%s' (apps, app_names, workloads)", k);
	if (parse_sel(json_object_get(doc, "apps"), 1, &sc->apps, e) != 0 ||
	    parse_sel(json_object_get(doc, "workloads"), 0, &sc->workloads,
	    e) != 0)
		return -XTCMK_E_POLICY;
	names = json_object_get(doc, "app_names");
	if (names != NULL && !json_is_array(names))
		return xerr_set(e, XTCMK_E_POLICY, "scope: app_names must be a "
		    "list of application names");
	if (json_array_size(names) > SCOPE_NAMES_MAX)
		return xerr_set(e, XTCMK_E_POLICY, "scope: app_names has %zu "
		    "names; at most %d", json_array_size(names),
		    SCOPE_NAMES_MAX);
	json_array_foreach(names, i, v) {
		if (!json_is_string(v) || valid_name(json_string_value(v),
		    "scope: app_names entry", e) != 0)
			return xerr_set(e, XTCMK_E_POLICY, "scope: app_names "
			    "entry %zu is not an application name", i + 1);
		sc->names[sc->nnames++] = json_string_value(v);
	}
	sc->doc = json_incref(doc);
	return 0;
}

void
scope_clear(struct scope *sc)
{
	json_decref(sc->doc);
	memset(sc, 0, sizeof(*sc));
}

long long
scope_number(const char *name, const char *stem)
{
	size_t sl = strlen(stem), i, nd;
	long long n = 0;

	if (strncmp(name, stem, sl) != 0)
		return -1;
	nd = strlen(name + sl);
	if (nd == 0 || nd > SCOPE_DIGITS_MAX)
		return -1;
	for (i = sl; name[i] != '\0'; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		n = n * 10 + (name[i] - '0');
	}
	return n;
}

int
scope_match(const struct scope_sel *sel, json_t *obj)
{
	json_t *labels = json_object_get(obj, "labels");
	const char *have;
	int i;

	for (i = 0; i < sel->nlabels; i++) {
		have = json_string_value(json_object_get(labels,
		    sel->label[i].key));
		if ((sel->label[i].op == SCOPE_ABSENT) != (have == NULL))
			return 0;
		if (sel->label[i].op == SCOPE_EQ &&
		    strcmp(have, sel->label[i].value) != 0)
			return 0;
	}
	if (sel->room >= 0 && json_integer_value(json_object_get(obj,
	    "customers")) >= sel->room)
		return 0;
	if (sel->stem != NULL && scope_number(json_string_value(
	    json_object_get(obj, "name")), sel->stem) < 0)
		return 0;
	return 1;
}

int
scope_order(json_t *a, json_t *b, const char *stem)
{
	const char *na = json_string_value(json_object_get(a, "name"));
	const char *nb = json_string_value(json_object_get(b, "name"));
	long long xa, xb;

	if (na == NULL || nb == NULL)
		return (na == NULL) - (nb == NULL);
	if (stem != NULL) {
		xa = scope_number(na, stem);
		xb = scope_number(nb, stem);
		if (xa != xb)
			return xa < xb ? -1 : 1;
	}
	return strcmp(na, nb);
}

/* Insertion into `out` keeping fill order (offline lists are small). */
static void
insert_sorted(json_t *out, json_t *item, const char *stem)
{
	size_t i = json_array_size(out);

	while (i > 0 && scope_order(json_array_get(out, i - 1), item,
	    stem) > 0)
		i--;
	json_array_insert(out, i, item);
}

int
scope_has_name(json_t *list, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")),
		    name) == 0)
			return 1;
	return 0;
}

/* The items of `all` that `sel` matches, in fill order, first `limit`. */
static json_t *
select_items(const struct scope_sel *sel, json_t *all, int *ret_more)
{
	json_t *out = json_array(), *v;
	size_t i;

	*ret_more = 0;
	if (!sel->present)
		return out;
	json_array_foreach(all, i, v)
		if (json_is_string(json_object_get(v, "name")) &&
		    scope_match(sel, v))
			insert_sorted(out, v, sel->stem);
	while (json_array_size(out) > (size_t)sel->limit) {
		json_array_remove(out, json_array_size(out) - 1);
		*ret_more = 1;
	}
	return out;
}

int
scope_apply(const struct scope *sc, json_t *input, json_t **ret_input,
    struct xerr *e)
{
	json_t *all = json_object_get(input, "apps"), *apps, *wls, *info, *v;
	json_t *named, *in;
	long long max = 0, n;
	int amore, wmore, i;
	size_t j;

	apps = select_items(&sc->apps, all, &amore);
	wls = select_items(&sc->workloads, json_object_get(input, "workloads"),
	    &wmore);
	named = json_array();
	for (i = 0; i < sc->nnames; i++)
		json_array_foreach(all, j, v)
			if (json_is_string(json_object_get(v, "name")) &&
			    strcmp(json_string_value(json_object_get(v,
			    "name")), sc->names[i]) == 0 &&
			    !scope_has_name(named, sc->names[i]))
				json_array_append(named, v);
	json_array_foreach(apps, j, v)
		if (!scope_has_name(named, json_string_value(json_object_get(v,
		    "name"))))
			json_array_append(named, v);
	json_decref(apps);
	info = json_pack("{s:b, s:b}", "apps_more", amore, "workloads_more",
	    wmore);
	if (sc->apps.stem != NULL) {
		json_array_foreach(all, j, v)
			if (json_is_string(json_object_get(v, "name")) &&
			    (n = scope_number(json_string_value(
			    json_object_get(v, "name")), sc->apps.stem)) > max)
				max = n;
		json_object_set_new(info, "max_number", json_integer(max));
	}
	if ((in = json_copy(input)) == NULL || info == NULL) {
		json_decref(in);
		json_decref(info);
		json_decref(named);
		json_decref(wls);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	json_object_set_new(in, "apps", named);
	json_object_set_new(in, "workloads", wls);
	json_object_set_new(in, "scope", info);
	*ret_input = in;
	return 0;
}

json_t *
scope_why(json_t *input, int scoped)
{
	json_t *apps = json_object_get(input, "apps"), *names, *why, *v;
	size_t i;

	names = json_array();
	json_array_foreach(apps, i, v) {
		if (i == SCOPE_WHY_NAMES_MAX)
			break;
		json_array_append(names, json_object_get(v, "name"));
	}
	why = json_pack("{s:o, s:I, s:I, s:b}", "candidates", names,
	    "apps", (json_int_t)json_array_size(apps),
	    "workloads", (json_int_t)json_array_size(json_object_get(input,
	    "workloads")), "scoped", scoped);
	if (why != NULL && json_object_get(input, "scope") != NULL)
		json_object_set(why, "scope", json_object_get(input, "scope"));
	return why;
}
