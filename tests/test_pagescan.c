/*
 * test_pagescan.c - ctl/pagescan.c against jansson on the same pages: the
 * members it finds are the strings jansson reads, in compact and spaced
 * text, with nested values skipped; pages it must leave to jansson (an
 * escaped string it would show, an old agent's "total", truncated or
 * malformed text, more items than room) return -1.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pagescan.h"
#include "t.h"

static const char *const keys[] = { "id", "app", "tenant" };

/* Scan `text` and compare every item with what jansson reads. */
static void
same_as_jansson(const char *text)
{
	struct pscan_row rows[8];
	const char *nt, *want;
	json_t *page, *item, *next;
	size_t n, nl, i;
	int k;

	page = json_loads(text, 0, NULL);
	ASSERT_TRUE(page != NULL);
	ASSERT_EQ(pscan_page(text, strlen(text), keys, 3, rows, 8, &n, &nt,
	    &nl), 0);
	ASSERT_EQ(n, json_array_size(json_object_get(page, "items")));
	json_array_foreach(json_object_get(page, "items"), i, item)
		for (k = 0; k < 3; k++) {
			want = json_string_value(json_object_get(item,
			    keys[k]));
			if (want == NULL)
				ASSERT_TRUE(rows[i].v[k] == NULL);
			else {
				ASSERT_TRUE(rows[i].v[k] != NULL);
				ASSERT_EQ(rows[i].len[k], strlen(want));
				ASSERT_TRUE(rows[i].v[k] != NULL &&
				    memcmp(rows[i].v[k], want,
				    strlen(want)) == 0);
			}
		}
	next = json_loadb(nt, nl, JSON_DECODE_ANY, NULL);
	ASSERT_TRUE(next != NULL && json_equal(next, json_object_get(page,
	    "next")));
	json_decref(next);
	json_decref(page);
}

static int
scan(const char *text, size_t max)
{
	struct pscan_row rows[8];
	const char *nt;
	size_t n, nl;

	return pscan_page(text, strlen(text), keys, 3, rows, max, &n, &nt,
	    &nl);
}

int
main(void)
{
	same_as_jansson("{\"items\":[{\"id\":\"c-1\",\"tenant\":\"t1\","
	    "\"kinds\":[\"host\",\"storage\"],\"labels\":{\"region\":\"eu\","
	    "\"note\":\"say \\\"hi\\\"\"},\"created\":17,\"app\":\"a-1\","
	    "\"assigned_at\":null,\"x\":{\"y\":[1,-2.5e3,true,false,{}]}},"
	    "{\"id\":\"c-2\",\"app\":null,\"tenant\":5}],\"next\":\"c-2\"}");
	same_as_jansson("{ \"items\" : [ { \"id\" : \"a\" , \"app\" : \"b\" } ,"
	    "\n {\"tenant\": \"\"} ] ,\n \"next\" : null }\n");
	same_as_jansson("{\"items\":[],\"next\":null}");
	same_as_jansson("{\"next\":42,\"items\":[{}]}");
	/* Left to jansson. */
	ASSERT_EQ(scan("{\"items\":[{\"id\":\"a\\\"b\"}],\"next\":null}", 8),
	    -1);
	ASSERT_EQ(scan("{\"items\":[],\"next\":null,\"total\":3}", 8), -1);
	ASSERT_EQ(scan("{\"items\":[{\"id\":\"a\"}],\"next\":", 8), -1);
	ASSERT_EQ(scan("{\"items\":[{\"id\":\"a\"}]}", 8), -1);
	ASSERT_EQ(scan("{\"items\":[{\"id\":\"a\"}],\"next\":null}x", 8), -1);
	ASSERT_EQ(scan("{\"items\":[{\"id\":\"a\"},{\"id\":\"b\"}],"
	    "\"next\":null}", 1), -1);
	ASSERT_EQ(scan("{\"items\":[{\"id\":\"a\tb\"}],\"next\":null}", 8),
	    -1);
	ASSERT_EQ(scan("{\"items\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]],"
	    "\"next\":null}", 8), -1);
	return t_done();
}
