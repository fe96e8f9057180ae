/*
 * import.c - reading the customer files of `xtcmkctl customer import`
 * (see import.h): JSON lines or CSV, each record checked locally so a
 * typo is reported with its line number before anything is sent.
 */
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "validate.h"

static const char *const fields[] = {
	"id", "tenant", "key_uri", "vault_auth", "kinds", "labels",
};
#define NFIELDS	(sizeof(fields) / sizeof(fields[0]))

static const char *const kinds[] = {
	"host", "storage", "storage-existing", "cosmosdb", "netapp",
};

struct imp_reader {
	FILE		*f;
	enum imp_format	 fmt;
	long		 line;		/* of the last line read */
	char		*buf;
	size_t		 cap;
	char		*pending;	/* first record line, read to detect */
	int		 col[NFIELDS];	/* CSV: column of each field, or -1 */
	int		 ncols;
};

/* Read one line without its newline; 1, 0 at EOF, <0 when too long. */
static int
read_line(struct imp_reader *r, char **ret, struct xerr *e)
{
	ssize_t n;

	if ((n = getline(&r->buf, &r->cap, r->f)) == -1)
		return 0;
	r->line++;
	if (n > IMP_LINE_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "line %ld: longer than %d "
		    "bytes", r->line, IMP_LINE_MAX);
	while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
		r->buf[--n] = '\0';
	if (memchr(r->buf, '\0', (size_t)n) != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "line %ld: holds a NUL byte; "
		    "is this a text file?", r->line);
	*ret = r->buf;
	return 1;
}

static int
blank(const char *s)
{
	return s[strspn(s, " \t")] == '\0';
}

/*
 * Split a CSV line into at most `max` fields (in place): commas separate,
 * a field in double quotes may hold commas and "" for a quote.  Returns
 * the number of fields, or -1 on an unterminated quote.
 */
static int
csv_split(char *s, char **out, int max)
{
	char *w;
	int n = 0;

	for (;;) {
		if (n == max)
			return max + 1;
		while (*s == ' ' || *s == '\t')
			s++;
		out[n++] = w = s;
		if (*s == '"') {
			out[n - 1] = w = ++s;
			for (;;) {
				if (*s == '\0')
					return -1;
				if (*s == '"' && s[1] == '"') {
					*w++ = '"';
					s += 2;
				} else if (*s == '"') {
					s++;
					break;
				} else
					*w++ = *s++;
			}
			while (*s == ' ' || *s == '\t')
				s++;
			if (*s != ',' && *s != '\0')
				return -1;
		} else {
			while (*s != ',' && *s != '\0')
				w = ++s;
			/* trailing blanks of an unquoted field */
			while (w > out[n - 1] && (w[-1] == ' ' ||
			    w[-1] == '\t'))
				w--;
		}
		if (*s == '\0') {
			*w = '\0';
			return n;
		}
		*w = '\0';
		s++;
	}
}

static int
csv_header(struct imp_reader *r, char *line, struct xerr *e)
{
	char *cols[NFIELDS + 2];
	size_t i;
	int n, j;

	for (i = 0; i < NFIELDS; i++)
		r->col[i] = -1;
	if ((n = csv_split(line, cols, (int)NFIELDS + 1)) < 0 ||
	    n > (int)NFIELDS)
		return xerr_set(e, XTCMK_E_INVAL, "line %ld: the CSV header "
		    "must name the columns id,tenant,key_uri,vault_auth,kinds,"
		    "labels (each at most once)", r->line);
	for (j = 0; j < n; j++) {
		for (i = 0; i < NFIELDS; i++)
			if (strcmp(cols[j], fields[i]) == 0)
				break;
		if (i == NFIELDS || r->col[i] != -1)
			return xerr_set(e, XTCMK_E_INVAL, "line %ld: CSV header "
			    "column '%s' is %s; the columns are id,tenant,"
			    "key_uri,vault_auth,kinds,labels", r->line,
			    cols[j], i == NFIELDS ? "unknown" : "repeated");
		r->col[i] = j;
	}
	for (i = 0; i < 3; i++)
		if (r->col[i] == -1)
			return xerr_set(e, XTCMK_E_INVAL, "line %ld: the CSV "
			    "header has no '%s' column (id, tenant and key_uri "
			    "are required)", r->line, fields[i]);
	r->ncols = n;
	return 0;
}

int
imp_open(FILE *f, struct imp_reader **ret_r, struct xerr *e)
{
	struct imp_reader *r;
	char *line = NULL;
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	r->f = f;
	r->fmt = IMP_JSONL;
	while ((rc = read_line(r, &line, e)) == 1 && blank(line))
		;
	if (rc < 0)
		goto fail;
	if (rc == 1) {
		line += strspn(line, " \t");
		if (*line == '{') {
			if ((r->pending = strdup(line)) == NULL) {
				rc = xerr_set(e, XTCMK_E_NOMEM, "out of "
				    "memory");
				goto fail;
			}
		} else {
			r->fmt = IMP_CSV;
			if ((rc = csv_header(r, line, e)) < 0)
				goto fail;
		}
	}
	*ret_r = r;
	return 0;
fail:
	imp_free(r);
	return rc;
}

void
imp_free(struct imp_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->pending);
	free(r);
}

enum imp_format
imp_format(const struct imp_reader *r)
{
	return r->fmt;
}

int
imp_check(json_t *c, struct xerr *e)
{
	struct key_uri u;
	const char *k, *id;
	json_t *v, *w;
	size_t i, j, n;

	if (!json_is_object(c))
		return xerr_set(e, XTCMK_E_INVAL, "a customer is a JSON object "
		    "with id, tenant, key_uri, and optionally vault_auth, "
		    "kinds and labels");
	json_object_foreach(c, k, v) {
		for (i = 0; i < NFIELDS; i++)
			if (strcmp(k, fields[i]) == 0)
				break;
		if (i == NFIELDS)
			return xerr_set(e, XTCMK_E_INVAL, "unknown field \"%s\"; "
			    "the fields are id, tenant, key_uri, vault_auth, "
			    "kinds, labels", k);
	}
	if ((id = json_string_value(json_object_get(c, "id"))) == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "\"id\" (a string) is "
		    "missing");
	if (valid_customer_id(id, e) < 0)
		return -XTCMK_E_INVAL;
	if (!json_is_string(v = json_object_get(c, "tenant")) ||
	    valid_guid(json_string_value(v), "tenant", e) < 0)
		return v == NULL || !json_is_string(v) ? xerr_set(e,
		    XTCMK_E_INVAL, "customer %s: \"tenant\" (the customer's "
		    "tenant GUID) is missing", id) : -XTCMK_E_INVAL;
	if (!json_is_string(v = json_object_get(c, "key_uri")))
		return xerr_set(e, XTCMK_E_INVAL, "customer %s: \"key_uri\" "
		    "(https://VAULT.vault.azure.net/keys/NAME) is missing", id);
	if (key_uri_parse(json_string_value(v), &u, e) < 0)
		return -XTCMK_E_INVAL;
	if ((v = json_object_get(c, "vault_auth")) == NULL || json_is_null(v))
		json_object_set_new(c, "vault_auth", json_string("rbac"));
	else if (!json_is_string(v) || (strcmp(json_string_value(v),
	    "rbac") != 0 && strcmp(json_string_value(v), "access-policy") != 0))
		return xerr_set(e, XTCMK_E_INVAL, "customer %s: \"vault_auth\" "
		    "must be rbac or access-policy", id);
	if ((v = json_object_get(c, "kinds")) == NULL || json_is_null(v))
		json_object_set_new(c, "kinds", json_pack("[s]", "host"));
	else if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > IMP_KINDS_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "customer %s: \"kinds\" must "
		    "be a list of 1 to %d of host, storage, storage-existing, "
		    "cosmosdb, netapp", id, IMP_KINDS_MAX);
	else
		json_array_foreach(v, i, w) {
			for (n = 0; n < sizeof(kinds) / sizeof(kinds[0]); n++)
				if (json_is_string(w) && strcmp(kinds[n],
				    json_string_value(w)) == 0)
					break;
			if (n == sizeof(kinds) / sizeof(kinds[0]))
				return xerr_set(e, XTCMK_E_INVAL, "customer "
				    "%s: kind #%zu is not one of host, storage, "
				    "storage-existing, cosmosdb, netapp", id,
				    i + 1);
			for (j = 0; j < i; j++)
				if (json_equal(w, json_array_get(v, j)))
					return xerr_set(e, XTCMK_E_INVAL,
					    "customer %s: kind '%s' is listed "
					    "twice", id, json_string_value(w));
		}
	if ((v = json_object_get(c, "labels")) == NULL || json_is_null(v))
		json_object_set_new(c, "labels", json_object());
	else if (!json_is_object(v) || json_object_size(v) > LABELS_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "customer %s: \"labels\" must "
		    "be an object of at most %d string labels", id, LABELS_MAX);
	else
		json_object_foreach(v, k, w)
			if (!json_is_string(w))
				return xerr_set(e, XTCMK_E_INVAL, "customer %s: "
				    "label '%s' must have a string value", id, k);
			else if (valid_label(k, json_string_value(w), e) < 0)
				return -XTCMK_E_INVAL;
	return 0;
}

/* kinds "host;storage" and labels "k=v;k=v" of a CSV line. */
static int
csv_lists(json_t *c, const char *kinds_s, const char *labels_s,
    struct xerr *e)
{
	json_t *a, *o;
	char *copy, *tok, *save = NULL, *eq;

	if (kinds_s != NULL && !blank(kinds_s)) {
		if ((copy = strdup(kinds_s)) == NULL)
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		a = json_array();
		for (tok = strtok_r(copy, ";", &save); tok != NULL;
		    tok = strtok_r(NULL, ";", &save))
			json_array_append_new(a, json_string(tok));
		free(copy);
		json_object_set_new(c, "kinds", a);
	}
	if (labels_s != NULL && !blank(labels_s)) {
		if ((copy = strdup(labels_s)) == NULL)
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		o = json_object();
		json_object_set_new(c, "labels", o);
		save = NULL;
		for (tok = strtok_r(copy, ";", &save); tok != NULL;
		    tok = strtok_r(NULL, ";", &save)) {
			if ((eq = strchr(tok, '=')) == NULL) {
				xerr_set(e, XTCMK_E_INVAL, "labels are "
				    "k=v;k=v, and '%.64s' has no '='", tok);
				free(copy);
				return -XTCMK_E_INVAL;
			}
			*eq = '\0';
			if (json_object_get(o, tok) != NULL) {
				xerr_set(e, XTCMK_E_INVAL, "label '%.64s' is "
				    "given twice", tok);
				free(copy);
				return -XTCMK_E_INVAL;
			}
			json_object_set_new(o, tok, json_string(eq + 1));
		}
		free(copy);
	}
	return 0;
}

static int
csv_record(struct imp_reader *r, char *line, json_t **ret, struct xerr *e)
{
	char *cols[NFIELDS + 2];
	const char *v[NFIELDS];
	json_t *c;
	size_t i;
	int n;

	if ((n = csv_split(line, cols, r->ncols)) < 0)
		return xerr_set(e, XTCMK_E_INVAL, "unterminated quote");
	if (n != r->ncols)
		return xerr_set(e, XTCMK_E_INVAL, "%d field(s) where the header "
		    "has %d", n, r->ncols);
	for (i = 0; i < NFIELDS; i++)
		v[i] = r->col[i] >= 0 ? cols[r->col[i]] : NULL;
	c = json_object();
	for (i = 0; i < 4; i++)
		if (v[i] != NULL && !blank(v[i]))
			json_object_set_new(c, fields[i], json_string(v[i]));
	if (csv_lists(c, v[4], v[5], e) < 0) {
		json_decref(c);
		return -XTCMK_E_INVAL;
	}
	*ret = c;
	return 0;
}

int
imp_next(struct imp_reader *r, json_t **ret_customer, long *ret_line,
    struct xerr *e)
{
	json_error_t jerr;
	struct xerr le;
	json_t *c = NULL;
	char *line;
	long at;
	int rc;

	if (r->pending != NULL) {
		/* The JSON line read to detect the format. */
		line = r->pending;
		r->pending = NULL;
		at = r->line;
		c = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
		free(line);
	} else {
		do {
			if ((rc = read_line(r, &line, e)) <= 0)
				return rc;
		} while (blank(line));
		at = r->line;
		if (r->fmt == IMP_CSV) {
			if (csv_record(r, line, &c, &le) < 0)
				return xerr_set(e, XTCMK_E_INVAL, "line %ld: %s",
				    at, le.msg);
		} else
			c = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
	}
	if (c == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "line %ld: not a JSON object "
		    "(column %d: %s); each line holds one customer object",
		    at, jerr.column, jerr.text);
	if (imp_check(c, &le) < 0) {
		json_decref(c);
		return xerr_set(e, XTCMK_E_INVAL, "line %ld: %s", at, le.msg);
	}
	*ret_customer = c;
	*ret_line = at;
	return 1;
}
