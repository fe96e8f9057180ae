/*
 * fuzz_policy_json.c - the JSON -> Lua -> JSON converters of
 * agent/policy_json.c, through policy_vm_call() on a policy set whose three
 * policies return their input unchanged.
 *
 * The input is JSON (NUL bytes in strings allowed); anything but an object
 * is wrapped as {"v": ...}.  The expected result is computed here from the
 * documented rules: nulls vanish, an empty table comes back as an array,
 * tables nest at most POLICY_RESULT_DEPTH_MAX deep, strings and keys are
 * at most POLICY_STRING_MAX bytes, input nests at most 32 levels, and a
 * result must be a non-empty table.  Property: the call succeeds exactly
 * when those rules allow, and then returns exactly the expected JSON.
 */
#include <sys/stat.h>

#include <errno.h>
#include <unistd.h>

#include "config.h"
#include "policy.h"
#include "fuzz.h"

#define INPUT_DEPTH_MAX		32	/* POLICY_INPUT_DEPTH_MAX in policy_json.c */

static struct policy_set *set;

static const char *const kinds[] = { "partition", "role", "versioning" };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/xtcmk-fuzz-policy-XXXXXX", path[256], lua[4096];
	const struct policy_limits lim = { 0, 0, POLICY_TIME_MAX_MS };
	const char *src;
	struct xerr e;
	FILE *f;
	int k;

	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	for (k = 0; k < 3; k++) {
		snprintf(path, sizeof(path), "%s/%s.lua", dir, kinds[k]);
		if ((f = fopen(path, "we")) == NULL) {
			perror(path);
			abort();
		}
		fprintf(f, "return { name = \"echo-%s\", "
		    "decide = function(i) return i end }\n", kinds[k]);
		fclose(f);
	}
	if ((src = getenv("XTCMK_SRCDIR")) == NULL)
		src = XTCMK_SRCDIR;
	snprintf(lua, sizeof(lua), "%s/lua", src);
	if (policy_set_load(dir, lua, NULL, &lim, &set, &e) < 0) {
		fprintf(stderr, "fuzz_policy_json: %s\n", e.msg);
		abort();
	}
	/* The set holds the sources in memory: the files can go. */
	for (k = 0; k < 3; k++) {
		snprintf(path, sizeof(path), "%s/%s.lua", dir, kinds[k]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

/*
 * What the echo policy must return for `j` at input depth `depth` (the
 * top-level object is 0), or NULL with *ret_fail set if the call must
 * fail.  Nulls are never passed here.
 */
static json_t *
expect(json_t *j, int depth, int *ret_fail)
{
	const char *key;
	json_t *out, *v, *x;
	size_t i;

	if (depth > INPUT_DEPTH_MAX)
		goto fail;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		/* Output tables: the top one is level 1. */
		if (depth + 1 > POLICY_RESULT_DEPTH_MAX)
			goto fail;
		break;
	case JSON_STRING:
		/* Results are checked byte-exact: no NUL inside a string. */
		if (json_string_length(j) > POLICY_STRING_MAX ||
		    memchr(json_string_value(j), '\0',
		    json_string_length(j)) != NULL)
			goto fail;
		return json_deep_copy(j);
	default:
		return json_deep_copy(j);
	}
	if (json_is_array(j)) {
		out = json_array();
		json_array_foreach(j, i, v) {
			if (json_is_null(v))
				continue;
			if ((x = expect(v, depth + 1, ret_fail)) == NULL)
				goto fail_out;
			json_array_append_new(out, x);
		}
		return out;
	}
	out = json_object();
	json_object_foreach(j, key, v) {
		if (json_is_null(v))
			continue;
		if (strlen(key) > POLICY_STRING_MAX)
			goto fail_out;
		if ((x = expect(v, depth + 1, ret_fail)) == NULL)
			goto fail_out;
		json_object_set_new(out, key, x);
	}
	if (json_object_size(out) == 0) {
		json_decref(out);
		return json_array();
	}
	return out;
fail_out:
	json_decref(out);
fail:
	*ret_fail = 1;
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *j, *in, *want, *got = NULL;
	struct policy_vm *vm;
	struct xerr e;
	int rc, fail = 0;

	if (size < 1)
		return 0;
	j = json_loadb((const char *)data + 1, size - 1,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (j == NULL)
		return 0;
	if (json_is_object(j))
		in = j;
	else {
		in = json_pack("{so}", "v", j);
		FUZZ_CHECK(in != NULL);
	}
	want = expect(in, 0, &fail);
	if (want != NULL && !json_is_object(want)) {
		/* An empty top-level table is not a result. */
		json_decref(want);
		want = NULL;
		fail = 1;
	}
	/*
	 * A fresh VM per input: Lua frees garbage lazily, and memory held
	 * across inputs would make libFuzzer scan the heap for leaks after
	 * every run.  Closing the state frees everything it allocated.
	 */
	FUZZ_CHECK(policy_vm_new(set, &vm, &e) == 0);
	memset(&e, 0, sizeof(e));
	rc = policy_vm_call(vm, (enum policy_kind)(data[0] % POLICY__COUNT),
	    in, &got, &e);
	if (rc == 0 && !fail && !json_equal(got, want)) {
		char *a = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
		char *b = json_dumps(want, JSON_ENCODE_ANY | JSON_SORT_KEYS);

		fprintf(stderr, "got  %s\nwant %s\n", a, b);
		free(a);
		free(b);
	}
	if (rc != 0 && !fail)
		fprintf(stderr, "refused: %s\n", e.msg);
	if (rc == 0 && fail)
		fprintf(stderr, "accepted what must be refused\n");
	FUZZ_CHECK((rc == 0) == !fail);
	if (rc == 0)
		FUZZ_CHECK(json_equal(got, want));
	else
		FUZZ_CHECK(rc == -XTCMK_E_POLICY && e.msg[0] != '\0');
	policy_vm_free(vm);
	json_decref(got);
	json_decref(want);
	json_decref(in);
	return 0;
}
