/*
 * jsonw.h - compact JSON text with sorted keys, fast.
 */
#ifndef XTCMK_JSONW_H
#define XTCMK_JSONW_H

#include <stddef.h>

#include <jansson.h>

/*
 * The text json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
 * makes, byte for byte, in about a third of its time (the decision log,
 * policy worker frames and registry documents are written on the hot
 * path of an import).  Returns a malloc'd, NUL-terminated string and
 * its length in *ret_len (if not NULL), or NULL when out of memory or
 * nested deeper than JSONW_DEPTH_MAX.
 */
#define JSONW_DEPTH_MAX	2048

char	*jsonw_dumps(const json_t *v, size_t *ret_len);

#endif
