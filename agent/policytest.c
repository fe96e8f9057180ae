/*
 * policytest.c - `xtcmkctl policy test`: replay fixture files against a
 * policy set offline, as `opa test` does for Rego.
 *
 * A fixture is a JSON object
 *	{ "decision": "partition"|"role"|"versioning",
 *	  "input": {...}, "params": {...}?,
 *	  "expect": {...} | "expect_error": "substring", "name": "..."? }
 * and a file holds one fixture, an array of them, or {"fixtures": [...]}.
 * Results pass through policy_verdict_check before they are compared, so
 * a result the agent would refuse fails its fixture.  `expect` is a
 * subset match: every key present must match (objects recursively,
 * arrays and scalars exactly).
 *
 * The set is compiled, self-tested and run in a confined policy worker
 * (xtcmk-policyd) under the agent's deadlines, as the agent runs it, so
 * a hostile set under test is killed at its budget with the agent's
 * error; a killed worker is replaced for the next fixture.  Without a
 * worker (isolation = inprocess, and the unit tests) Lua runs here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "scope.h"
#include "worker.h"

#define FIXTURES_PER_FILE_MAX	10000	/* fixtures in one file */
#define FIXTURE_SHOW_MAX	160	/* JSON shown in a FAIL line */

/* Does `got` contain everything in `want`? */
static int
subset(json_t *want, json_t *got)
{
	const char *key;
	json_t *v;

	if (json_is_object(want)) {
		if (!json_is_object(got))
			return 0;
		json_object_foreach(want, key, v)
			if (!subset(v, json_object_get(got, key)))
				return 0;
		return 1;
	}
	return got != NULL && json_equal(want, got);
}

/* First key of `want` that `got` does not match, for the message. */
static void
describe(json_t *want, json_t *got, char *buf, size_t len)
{
	char *ws, *gs;
	const char *key;
	json_t *v;

	json_object_foreach(want, key, v) {
		if (subset(v, json_object_get(got, key)))
			continue;
		ws = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		gs = json_object_get(got, key) != NULL ?
		    json_dumps(json_object_get(got, key),
		    JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		snprintf(buf, len, "%s: expected %.*s got %.*s", key,
		    FIXTURE_SHOW_MAX, ws != NULL ? ws : "?",
		    FIXTURE_SHOW_MAX, gs != NULL ? gs : "(absent)");
		free(ws);
		free(gs);
		return;
	}
	snprintf(buf, len, "result differs");
}

/* Where policies run: a policy worker `w`, or a Lua state `vm` here. */
struct runner {
	struct policy_set	*set;
	struct policy_vm	*vm;
	struct pworker		*w;
	const char		*exe;		/* the worker */
	const char		*hook;		/* XTCMK_TEST_POLICYD */
	struct pworker_counters	 cnt;
};

static int
runner_open(struct runner *r, const char *dir, const char *lua_dir,
    json_t *params, const struct policy_limits *lim, const char *worker,
    struct xerr *e)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->exe = worker;
	if (worker == NULL) {
		if ((rc = policy_set_load(dir, lua_dir, params, lim, &r->set,
		    e)) < 0)
			return rc;
		return policy_vm_new(r->set, &r->vm, e);
	}
	r->hook = secure_getenv("XTCMK_TEST_POLICYD");
	return pworker_load_set(worker, dir, lua_dir, params, lim, r->hook,
	    PWORKER_DIE_WITH_PARENT, &r->cnt, NULL, &r->set, &r->w, e);
}

static void
runner_close(struct runner *r)
{
	policy_vm_free(r->vm);
	pworker_free(r->w);
	policy_set_unref(r->set);
}

/* One call, op "decide" (kind k) or "scope"; params NULL: the set's. */
static int
runner_call(struct runner *r, const char *op, enum policy_kind k,
    json_t *input, json_t *params, json_t **ret_out, struct xerr *e)
{
	int rc;

	if (r->vm != NULL)
		return strcmp(op, "scope") == 0 ? policy_vm_scope(r->vm, input,
		    params, ret_out, e) : policy_vm_call_params(r->vm, k,
		    input, params, ret_out, e);
	if (!pworker_usable(r->w)) {	/* killed in an earlier fixture */
		pworker_free(r->w);
		r->w = NULL;
		if ((rc = pworker_spawn(r->exe, r->set, r->hook,
		    PWORKER_DIE_WITH_PARENT, &r->cnt, NULL, &r->w, e)) < 0)
			return rc;
	}
	return pworker_call(r->w, op, k, input, params, ret_out, e);
}

int
policy_check_offline(const char *dir, const char *lua_dir, json_t *params,
    const struct policy_limits *lim, const char *worker,
    struct policy_set **ret_set, struct xerr *e)
{
	struct pworker_counters cnt;

	if (worker == NULL)
		return policy_set_load(dir, lua_dir, params, lim, ret_set, e);
	memset(&cnt, 0, sizeof(cnt));
	return pworker_load_set(worker, dir, lua_dir, params, lim,
	    secure_getenv("XTCMK_TEST_POLICYD"), PWORKER_DIE_WITH_PARENT,
	    &cnt, NULL, ret_set, NULL, e);
}

static int
kind_from_name(const char *s)
{
	int k;

	for (k = 0; s != NULL && k < POLICY__COUNT; k++)
		if (strcmp(s, policy_kind_name(k)) == 0)
			return k;
	return -1;
}

/*
 * The partition input after the policy's P.scope: NULL in *ret (and 0)
 * when it has none; the selectors are applied to the fixture's apps and
 * workloads by the same code the agent uses (scope.c).
 */
static int
scoped_input(struct runner *rn, json_t *input, json_t *params,
    json_t **ret, struct xerr *e)
{
	struct scope sc;
	json_t *doc = NULL;
	int r;

	*ret = NULL;
	if (!json_is_object(json_object_get(input, "customer")))
		return 0;
	if ((r = runner_call(rn, "scope", POLICY_PARTITION,
	    json_object_get(input, "customer"), params, &doc, e)) < 0 ||
	    doc == NULL)
		return r;
	if ((r = scope_parse(doc, &sc, e)) == 0) {
		r = scope_apply(&sc, input, ret, e);
		scope_clear(&sc);
	}
	json_decref(doc);
	return r;
}

/*
 * Run one fixture; 1 pass, 0 fail.  `msg` explains a failure; `ret_out`
 * gets the result when there is one.
 */
static int
run_one(struct runner *rn, json_t *fx, char *msg, size_t len,
    json_t **ret_out, const char **ret_decision)
{
	struct policy_set *s = rn->set;
	json_t *input, *fparams, *params = NULL, *out = NULL, *expect;
	json_t *scoped = NULL;
	const char *experr, *dname;
	struct xerr e;
	int k, r, ok = 0;

	*ret_out = NULL;
	*ret_decision = "?";
	if (!json_is_object(fx)) {
		snprintf(msg, len, "a fixture must be a JSON object");
		return 0;
	}
	dname = json_string_value(json_object_get(fx, "decision"));
	if ((k = kind_from_name(dname)) < 0) {
		snprintf(msg, len, "\"decision\" must be \"partition\", "
		    "\"role\" or \"versioning\"");
		return 0;
	}
	*ret_decision = policy_kind_name(k);
	input = json_object_get(fx, "input");
	if (!json_is_object(input)) {
		snprintf(msg, len, "\"input\" must be an object");
		return 0;
	}
	expect = json_object_get(fx, "expect");
	experr = json_string_value(json_object_get(fx, "expect_error"));
	if ((expect == NULL) == (experr == NULL) ||
	    (expect != NULL && !json_is_object(expect))) {
		snprintf(msg, len, "give either \"expect\" (an object) or "
		    "\"expect_error\" (a string)");
		return 0;
	}
	fparams = json_object_get(fx, "params");
	if (fparams != NULL) {
		if (!json_is_object(fparams)) {
			snprintf(msg, len, "\"params\" must be an object");
			return 0;
		}
		if ((params = json_deep_copy(policy_set_params(s))) == NULL ||
		    json_object_update(params, fparams) == -1) {
			json_decref(params);
			snprintf(msg, len, "out of memory");
			return 0;
		}
	}
	xerr_clear(&e);
	/* A partition policy with P.scope sees what its selectors pick
	 * from the fixture's apps and workloads, as in the agent. */
	r = k == POLICY_PARTITION ? scoped_input(rn, input, params, &scoped,
	    &e) : 0;
	if (r == 0)
		r = runner_call(rn, "decide", k, scoped != NULL ? scoped :
		    input, params, &out, &e);
	if (r == 0)
		r = policy_verdict_check(s, k, scoped != NULL ? scoped : input,
		    out, &e);
	if (experr != NULL) {
		if (r == 0)
			snprintf(msg, len, "expected an error containing "
			    "\"%s\" got a result", experr);
		else if (strstr(e.msg, experr) == NULL)
			snprintf(msg, len, "expected an error containing "
			    "\"%s\" got \"%s\"", experr, e.msg);
		else
			ok = 1;
	} else if (r < 0)
		snprintf(msg, len, "expected a result got error \"%s\"", e.msg);
	else if (!subset(expect, out))
		describe(expect, out, msg, len);
	else
		ok = 1;
	json_decref(params);
	json_decref(scoped);
	*ret_out = out;
	return ok;
}

static json_t *
fixture_list(json_t *doc)
{
	json_t *a;

	if (json_is_array(doc))
		return json_incref(doc);
	if (json_is_object(doc) && (a = json_object_get(doc, "fixtures")) &&
	    json_is_array(a))
		return json_incref(a);
	if ((a = json_array()) != NULL)
		json_array_append(a, doc);
	return a;
}

int
policy_run_fixtures(const char *dir, const char *lua_dir, json_t *params,
    const struct policy_limits *lim, const char *worker,
    char *const *fixtures, int nfixtures, int json, void *out,
    struct xerr *e)
{
	FILE *fp = out;
	struct runner rn;
	struct policy_set *s;
	json_t *report = NULL, *results = NULL, *doc, *list, *fx, *res, *row;
	json_error_t jerr;
	char msg[XERR_MSG_MAX + 2 * FIXTURE_SHOW_MAX];
	const char *decision, *label;
	int i, r, pass = 0, fail = 0, ok;
	size_t j;

	if ((r = runner_open(&rn, dir, lua_dir, params, lim, worker,
	    e)) < 0)
		goto done;
	s = rn.set;
	if (json) {
		results = json_array();
		report = json_pack("{s:s, s:s, s:O}", "set", dir, "hash",
		    policy_set_hash(s), "results", results);
		if (report == NULL) {
			r = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
			goto done;
		}
	}
	for (i = 0; i < nfixtures; i++) {
		if ((doc = json_load_file(fixtures[i], 0, &jerr)) == NULL) {
			fail++;
			snprintf(msg, sizeof(msg), "%s:%d: %s", fixtures[i],
			    jerr.line, jerr.text);
			if (json)
				json_array_append_new(results, json_pack(
				    "{s:s, s:i, s:b, s:s}", "file", fixtures[i],
				    "index", 0, "ok", 0, "message", msg));
			else
				fprintf(fp, "FAIL %s: not valid JSON: %s\n",
				    fixtures[i], msg);
			continue;
		}
		list = fixture_list(doc);
		json_decref(doc);
		if (json_array_size(list) > FIXTURES_PER_FILE_MAX) {
			fail++;
			fprintf(json ? stderr : fp, "FAIL %s: more than %d "
			    "fixtures in one file\n", fixtures[i],
			    FIXTURES_PER_FILE_MAX);
			json_decref(list);
			continue;
		}
		json_array_foreach(list, j, fx) {
			msg[0] = '\0';
			ok = run_one(&rn, fx, msg, sizeof(msg), &res, &decision);
			ok ? pass++ : fail++;
			label = json_string_value(json_object_get(fx, "name"));
			if (json) {
				row = json_pack("{s:s, s:I, s:s, s:b}", "file",
				    fixtures[i], "index", (json_int_t)j,
				    "decision", decision, "ok", ok);
				if (row != NULL && label != NULL)
					json_object_set_new(row, "name",
					    json_string(label));
				if (row != NULL && !ok)
					json_object_set_new(row, "message",
					    json_string(msg));
				if (row != NULL && res != NULL)
					json_object_set(row, "output", res);
				json_array_append_new(results, row);
			} else if (ok)
				fprintf(fp, "ok   %s#%zu: %s%s%s\n", fixtures[i],
				    j, decision, label ? " " : "",
				    label ? label : "");
			else
				fprintf(fp, "FAIL %s#%zu: %s%s%s: %s\n",
				    fixtures[i], j, decision, label ? " " : "",
				    label ? label : "", msg);
			json_decref(res);
		}
		json_decref(list);
	}
	if (json) {
		json_object_set_new(report, "passed", json_integer(pass));
		json_object_set_new(report, "failed", json_integer(fail));
		json_dumpf(report, fp, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', fp);
	} else
		fprintf(fp, "%d passed, %d failed (policy set %s, hash %.12s)\n",
		    pass, fail, dir, policy_set_hash(s));
	r = fail;
done:
	json_decref(results);
	json_decref(report);
	runner_close(&rn);
	return r;
}
