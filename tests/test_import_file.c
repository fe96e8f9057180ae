/*
 * test_import_file.c - the file formats of `xtcmkctl customer import`
 * (ctl/import.c): JSON lines and CSV told apart by the first non-blank
 * character, defaults filled in as `customer add` sends them, quoted CSV
 * fields, and a clear error naming the line for every kind of mistake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "t.h"

#define TENANT	"72f988bf-86f1-41af-91ab-2d7cd011db47"
#define URI	"https://contoso-kv.vault.azure.net/keys/cmk"

/* Read `text` to the end: the customers in an array, errors in `errs`
 * (one line each); the format through *ret_fmt.  -1 if imp_open fails. */
static int
read_all(const char *text, json_t **ret, char *errs, size_t len,
    enum imp_format *ret_fmt)
{
	struct imp_reader *r;
	struct xerr e;
	json_t *a, *c;
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	long line;
	int rc;

	errs[0] = '\0';
	if (imp_open(f, &r, &e) < 0) {
		snprintf(errs, len, "%s", e.msg);
		fclose(f);
		return -1;
	}
	*ret_fmt = imp_format(r);
	a = json_array();
	while ((rc = imp_next(r, &c, &line, &e)) != 0) {
		if (rc < 0) {
			strncat(errs, e.msg, len - strlen(errs) - 2);
			strcat(errs, "\n");
			continue;
		}
		json_object_set_new(c, "_line", json_integer(line));
		json_array_append_new(a, c);
	}
	imp_free(r);
	fclose(f);
	*ret = a;
	return 0;
}

static const char *
str(json_t *a, size_t i, const char *k)
{
	return json_string_value(json_object_get(json_array_get(a, i), k));
}

static void
test_jsonl(void)
{
	enum imp_format fmt;
	json_t *a;
	char errs[4096];

	ASSERT_EQ(read_all("\n  \n{\"id\": \"contoso\", \"tenant\": \"" TENANT
	    "\", \"key_uri\": \"" URI "\"}\n"
	    "{\"id\": \"fabrikam\", \"tenant\": \"" TENANT "\", \"key_uri\": \""
	    URI "\", \"vault_auth\": \"access-policy\", \"kinds\": [\"host\", "
	    "\"storage\"], \"labels\": {\"region\": \"eu\"}}\n"
	    "\n"
	    "{\"id\": \"bad id!\", \"tenant\": \"" TENANT "\", \"key_uri\": \""
	    URI "\"}\n"
	    "{\"id\": \"x1\", \"tenant\": \"nope\", \"key_uri\": \"" URI "\"}\n"
	    "{\"id\": \"x2\", \"tenant\": \"" TENANT "\", \"key_uri\": "
	    "\"http://x.vault.azure.net/keys/k\"}\n"
	    "{\"id\": \"x3\", \"tenant\": \"" TENANT "\", \"key_uri\": \"" URI
	    "\", \"kinds\": [\"host\", \"host\"]}\n"
	    "{\"id\": \"x4\", \"tenant\": \"" TENANT "\", \"key_uri\": \"" URI
	    "\", \"colour\": \"red\"}\n"
	    "{\"id\": \"x5\", \"tenant\": \"" TENANT "\", \"key_uri\": \"" URI
	    "\", \"labels\": {\"Region\": \"eu\"}}\n"
	    "{\"id\": \"x6\", \"tenant\": \"" TENANT "\"\n"
	    "[1, 2]\n"
	    "{\"id\": \"x7\", \"id\": \"x8\", \"tenant\": \"" TENANT "\", "
	    "\"key_uri\": \"" URI "\"}\n"
	    "{\"id\": \"x9\", \"tenant\": \"" TENANT "\", \"key_uri\": \"" URI
	    "\", \"vault_auth\": \"keys\"}\n"
	    "{\"id\": \"last\", \"tenant\": \"" TENANT "\", \"key_uri\": \""
	    URI "\", \"kinds\": [\"cosmosdb\"]}",
	    &a, errs, sizeof(errs), &fmt), 0);
	ASSERT_EQ(fmt, IMP_JSONL);
	ASSERT_EQ(json_array_size(a), 3);
	/* Defaults as `customer add` sends them; line numbers count blanks. */
	ASSERT_STR(str(a, 0, "id"), "contoso");
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(a, 0),
	    "_line")), 3);
	ASSERT_STR(str(a, 0, "vault_auth"), "rbac");
	ASSERT_STR(json_string_value(json_array_get(json_object_get(
	    json_array_get(a, 0), "kinds"), 0)), "host");
	ASSERT_TRUE(json_is_object(json_object_get(json_array_get(a, 0),
	    "labels")));
	ASSERT_STR(str(a, 1, "vault_auth"), "access-policy");
	ASSERT_EQ(json_array_size(json_object_get(json_array_get(a, 1),
	    "kinds")), 2);
	ASSERT_STR(json_string_value(json_object_get(json_object_get(
	    json_array_get(a, 1), "labels"), "region")), "eu");
	ASSERT_STR(str(a, 2, "id"), "last");
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(a, 2),
	    "_line")), 16);
	/* Each mistake is reported with its line and what is wrong. */
	ASSERT_CONTAINS(errs, "line 6: ");
	ASSERT_CONTAINS(errs, "customer id");
	ASSERT_CONTAINS(errs, "line 7: ");
	ASSERT_CONTAINS(errs, "tenant");
	ASSERT_CONTAINS(errs, "line 8: ");
	ASSERT_CONTAINS(errs, "line 9: customer x3: kind 'host' is listed "
	    "twice");
	ASSERT_CONTAINS(errs, "line 10: unknown field \"colour\"");
	ASSERT_CONTAINS(errs, "line 11: ");
	ASSERT_CONTAINS(errs, "Region");
	ASSERT_CONTAINS(errs, "line 12: not a JSON object");
	ASSERT_CONTAINS(errs, "line 13: a customer is a JSON object");
	ASSERT_CONTAINS(errs, "line 14: not a JSON object");
	ASSERT_CONTAINS(errs, "duplicate");
	ASSERT_CONTAINS(errs, "line 15: customer x9: \"vault_auth\" must be");
	json_decref(a);
}

static void
test_csv(void)
{
	enum imp_format fmt;
	json_t *a;
	char errs[4096];

	ASSERT_EQ(read_all("id,tenant,key_uri,vault_auth,kinds,labels\n"
	    "contoso," TENANT "," URI ",,,\n"
	    "fabrikam, " TENANT " ," URI ",access-policy,host;storage,"
	    "region=eu;tier=gold\n"
	    "\n"
	    "\"quoted\"," TENANT ",\"" URI "\",rbac,host,\"note=a, \"\"b\"\"\"\n"
	    "short," TENANT "\n"
	    "nolabel," TENANT "," URI ",rbac,host,region\n"
	    "badkind," TENANT "," URI ",rbac,host;sql,\n"
	    "open," TENANT ",\"" URI ",rbac,host,\n",
	    &a, errs, sizeof(errs), &fmt), 0);
	ASSERT_EQ(fmt, IMP_CSV);
	ASSERT_EQ(json_array_size(a), 3);
	ASSERT_STR(str(a, 0, "id"), "contoso");
	ASSERT_STR(str(a, 0, "vault_auth"), "rbac");
	ASSERT_STR(str(a, 1, "tenant"), TENANT);
	ASSERT_STR(str(a, 1, "vault_auth"), "access-policy");
	ASSERT_STR(json_string_value(json_array_get(json_object_get(
	    json_array_get(a, 1), "kinds"), 1)), "storage");
	ASSERT_STR(json_string_value(json_object_get(json_object_get(
	    json_array_get(a, 1), "labels"), "tier")), "gold");
	ASSERT_STR(str(a, 2, "id"), "quoted");
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(a, 2),
	    "_line")), 5);
	ASSERT_STR(json_string_value(json_object_get(json_object_get(
	    json_array_get(a, 2), "labels"), "note")), "a, \"b\"");
	ASSERT_CONTAINS(errs, "line 6: 2 field(s) where the header has 6");
	ASSERT_CONTAINS(errs, "line 7: labels are k=v;k=v");
	ASSERT_CONTAINS(errs, "line 8: customer badkind: kind #2");
	ASSERT_CONTAINS(errs, "line 9: unterminated quote");
	json_decref(a);

	/* Columns in any order; the optional ones may be left out. */
	ASSERT_EQ(read_all("key_uri,id,tenant\n" URI ",c1," TENANT "\n",
	    &a, errs, sizeof(errs), &fmt), 0);
	ASSERT_EQ(json_array_size(a), 1);
	ASSERT_STR(str(a, 0, "id"), "c1");
	ASSERT_STR(errs, "");
	json_decref(a);

	/* Headers that cannot be read refuse the whole file. */
	ASSERT_EQ(read_all("id,tenant\nc1," TENANT "\n", &a, errs,
	    sizeof(errs), &fmt), -1);
	ASSERT_CONTAINS(errs, "line 1: the CSV header has no 'key_uri'");
	ASSERT_EQ(read_all("\nid,tenant,key_uri,colour\n", &a, errs,
	    sizeof(errs), &fmt), -1);
	ASSERT_CONTAINS(errs, "line 2: CSV header column 'colour' is unknown");
	ASSERT_EQ(read_all("id,id,tenant,key_uri\n", &a, errs, sizeof(errs),
	    &fmt), -1);
	ASSERT_CONTAINS(errs, "repeated");

	/* An empty file has no record. */
	ASSERT_EQ(read_all("\n\n", &a, errs, sizeof(errs), &fmt), 0);
	ASSERT_EQ(json_array_size(a), 0);
	json_decref(a);
}

static void
test_long_line(void)
{
	enum imp_format fmt;
	json_t *a;
	char errs[4096], *big;
	size_t n = IMP_LINE_MAX + 100;

	const char *first = "{\"id\": \"c0\", \"tenant\": \"" TENANT
	    "\", \"key_uri\": \"" URI "\"}\n";
	size_t k;

	big = malloc(strlen(first) + n + 256);
	strcpy(big, first);
	k = strlen(big);
	memset(big + k, 'x', n);
	strcpy(big + k + n, "\n{\"id\": \"c3\", \"tenant\": \"" TENANT
	    "\", \"key_uri\": \"" URI "\"}\n");
	ASSERT_EQ(read_all(big, &a, errs, sizeof(errs), &fmt), 0);
	ASSERT_EQ(json_array_size(a), 2);
	ASSERT_STR(str(a, 1, "id"), "c3");
	ASSERT_CONTAINS(errs, "line 2: longer than");
	json_decref(a);
	free(big);
}

int
main(void)
{
	test_jsonl();
	test_csv();
	test_long_line();
	return t_done();
}
