/*
 * import.h - the file formats of `xtcmkctl customer import`: JSON lines
 * (one customer object a line) or CSV with a header, told apart by the
 * first non-blank character ('{' for JSON lines).  See xtcmkctl(8).
 *
 * The reader checks each record locally, as `customer add` would send it
 * and as far as the agent's validators allow without the registry (id,
 * tenant GUID, key URI, vault_auth, kinds, labels), and says which line
 * is wrong and how.
 */
#ifndef XTCMK_IMPORT_H
#define XTCMK_IMPORT_H

#include <stdio.h>

#include <jansson.h>

#include "xerr.h"

#define IMP_LINE_MAX	(32 * 1024)	/* bytes in one line of the file */
#define IMP_KINDS_MAX	8		/* = REG_KINDS_MAX */

enum imp_format {
	IMP_JSONL = 1,
	IMP_CSV,
};

struct imp_reader;

/* Start reading `f` (borrowed): detect the format and, for CSV, read the
 * header.  An empty file is a reader that returns no record. */
int	imp_open(FILE *f, struct imp_reader **ret_r, struct xerr *e);
void	imp_free(struct imp_reader *r);
enum imp_format imp_format(const struct imp_reader *r);

/*
 * The next record: 1 and *ret_customer (new reference, the object
 * `customer add` sends: id, tenant, key_uri, vault_auth, kinds, labels)
 * with *ret_line its line number; 0 at the end; <0 with a sentence
 * naming the line when a line is malformed (reading may go on with the
 * next line).  Blank lines are skipped.
 */
int	imp_next(struct imp_reader *r, json_t **ret_customer, long *ret_line,
	    struct xerr *e);

/* Check a customer object as the agent will (no registry needed). */
int	imp_check(json_t *c, struct xerr *e);

#endif
