/*
 * pagescan.h - reading a list page's reply text ({"items": [...], "next":
 * KEY}, see xtcmk-protocol(7)) without building a JSON object per item,
 * for the human output of long lists: each item's plain string members
 * of interest are located in the text.  Anything the scanner does not
 * take (an escaped string among them, another shape, too many items) is
 * left to a JSON parser: the caller reads that page with jansson.
 */
#ifndef XTCMK_PAGESCAN_H
#define XTCMK_PAGESCAN_H

#include <stddef.h>

#define PSCAN_KEYS_MAX	6	/* members looked for in an item */
#define PSCAN_DEPTH_MAX	16	/* nesting skipped inside an item */

struct pscan_row {
	const char	*v[PSCAN_KEYS_MAX];	/* in the text; NULL: absent */
	int		 len[PSCAN_KEYS_MAX];
};

/*
 * Scan the page `text` (len bytes): for item i, rows[i].v[k] points at
 * the value of its member keys[k] when that is a string without escapes
 * (NULL when absent, null or not a string).  *ret_n: the items; *ret_next
 * and *ret_next_len: the JSON text of "next".  0, or -1 when the page is
 * not for the scanner (more than `max` items included).
 */
int	pscan_page(const char *text, size_t len, const char *const *keys,
	    int nkeys, struct pscan_row *rows, size_t max, size_t *ret_n,
	    const char **ret_next, size_t *ret_next_len);

#endif
