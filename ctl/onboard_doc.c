/*
 * onboard_doc.c - the document model of the onboarding commands and its
 * text and Markdown renderers.
 *
 * A document is {"document", "title", "sections": [{"title", "body":
 * [{"p"} | {"li"} | {"code", "lang"}]}], "notes": [...]} plus whatever
 * structured fields the generator adds; --json prints it whole.  A long
 * document (`app plan` over every application) is streamed: its sections
 * and one array member are printed and dropped as they are made, and
 * the output is the same text the whole document would give.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onboard.h"

static char *
vprintf_alloc(const char *fmt, va_list ap)
{
	va_list aq;
	char *s;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

char *
onb_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vprintf_alloc(fmt, ap);
	va_end(ap);
	return s;
}

json_t *
onb_doc_new(const char *document, const char *title)
{
	return json_pack("{s:s, s:s, s:[], s:[]}", "document", document,
	    "title", title, "sections", "notes");
}

json_t *
onb_section(json_t *doc, const char *title)
{
	json_t *body = json_array();

	json_array_append_new(json_object_get(doc, "sections"),
	    json_pack("{s:s, s:o}", "title", title, "body", body));
	return body;
}

static void
add_item(json_t *body, const char *key, const char *lang, const char *fmt,
    va_list ap)
{
	char *s = vprintf_alloc(fmt, ap);

	if (s == NULL)
		return;
	json_array_append_new(body, lang != NULL ?
	    json_pack("{s:s, s:s}", key, s, "lang", lang) :
	    json_pack("{s:s}", key, s));
	free(s);
}

void
onb_p(json_t *body, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_item(body, "p", NULL, fmt, ap);
	va_end(ap);
}

void
onb_li(json_t *body, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_item(body, "li", NULL, fmt, ap);
	va_end(ap);
}

void
onb_code(json_t *body, const char *lang, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_item(body, "code", lang, fmt, ap);
	va_end(ap);
}

void
onb_code_json(json_t *body, json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s != NULL)
		onb_code(body, "json", "%s", s);
	free(s);
}

void
onb_note(json_t *doc, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vprintf_alloc(fmt, ap);
	va_end(ap);
	if (s != NULL)
		json_array_append_new(json_object_get(doc, "notes"),
		    json_string(s));
	free(s);
}

/* Print `s` wrapped at ONB_WRAP: first line after `first`, the rest
 * after `indent`. */
static void
wrap(FILE *out, const char *s, const char *first, const char *indent)
{
	size_t col, w, pre = strlen(first);
	const char *p = s, *q;

	fputs(first, out);
	col = pre;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (q = p; *q != '\0' && *q != ' '; q++)
			;
		w = (size_t)(q - p);
		if (col > pre && col + 1 + w > ONB_WRAP) {
			fprintf(out, "\n%s", indent);
			col = pre = strlen(indent);
		} else if (col > pre) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, w, out);
		col += w;
		p = q;
	}
	fputc('\n', out);
}

static void
underline(FILE *out, const char *s, int c)
{
	size_t i, n = strlen(s);

	fprintf(out, "%s\n", s);
	for (i = 0; i < n; i++)
		fputc(c, out);
	fputc('\n', out);
}

static void
code_text(FILE *out, const char *s)
{
	const char *p = s, *nl;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if (nl == p)
			fputc('\n', out);
		else
			fprintf(out, "    %.*s\n", (int)(nl - p), p);
		p = *nl == '\n' ? nl + 1 : nl;
	}
}

static void
render_body(json_t *body, enum onb_format f, FILE *out)
{
	const char *s, *lang;
	json_t *it;
	size_t i;
	int prev_li = 0, li;

	json_array_foreach(body, i, it) {
		li = json_object_get(it, "li") != NULL;
		if (i > 0 && !(li && prev_li))
			fputc('\n', out);
		if ((s = json_string_value(json_object_get(it, "p"))) != NULL)
			wrap(out, s, "", "");
		else if (li)
			wrap(out, json_string_value(json_object_get(it, "li")),
			    f == ONB_MD ? "- " : "  - ", f == ONB_MD ? "  " :
			    "    ");
		else if ((s = json_string_value(json_object_get(it,
		    "code"))) != NULL) {
			lang = json_string_value(json_object_get(it, "lang"));
			if (f == ONB_MD)
				fprintf(out, "```%s\n%s\n```\n", lang ? lang :
				    "", s);
			else
				code_text(out, s);
		}
		prev_li = li;
	}
}

/* `v` as json_dumpf(JSON_INDENT(2) | JSON_SORT_KEYS) prints it, nested
 * `ind` spaces deep. */
static int
dump_at(FILE *out, json_t *v, int ind)
{
	char *t = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS |
	    JSON_ENCODE_ANY), *p;

	if (t == NULL)
		return -1;
	for (p = t; *p != '\0'; p++) {
		fputc(*p, out);
		if (*p == '\n')
			fprintf(out, "%*s", ind, "");
	}
	free(t);
	return 0;
}

int
onb_stream_begin(struct onb_stream *st, json_t *doc, const char *items,
    enum onb_format f, FILE *out)
{
	const char *k, *title = json_string_value(json_object_get(doc,
	    "title"));
	json_t *v;

	memset(st, 0, sizeof(*st));
	st->f = f;
	st->out = out;
	st->items = items;
	if (f == ONB_JSON) {
		/* The streamed array must be the first member in key order. */
		json_object_foreach(doc, k, v)
			if (strcmp(k, items) < 0)
				return -1;
		if ((st->spool = tmpfile()) == NULL)
			return -1;
		fprintf(out, "{\n  ");
		v = json_string(items);
		dump_at(out, v, 2);
		json_decref(v);
		fprintf(out, ": [");
	} else if (f == ONB_MD)
		fprintf(out, "# %s\n", title);
	else
		underline(out, title, '=');
	return onb_stream_flush(st, doc);
}

int
onb_stream_flush(struct onb_stream *st, json_t *doc)
{
	json_t *secs = json_object_get(doc, "sections"), *sec, *v;
	json_t *items = json_object_get(doc, st->items);
	const char *title;
	size_t i;

	if (st->f == ONB_JSON) {
		json_array_foreach(items, i, v) {
			fputs(st->nitems++ ? ",\n    " : "\n    ", st->out);
			dump_at(st->out, v, 4);
		}
		json_array_foreach(secs, i, v) {
			fputs(st->nsecs++ ? ",\n    " : "\n    ", st->spool);
			dump_at(st->spool, v, 4);
		}
	} else
		json_array_foreach(secs, i, sec) {
			fputc('\n', st->out);
			title = json_string_value(json_object_get(sec,
			    "title"));
			if (st->f == ONB_MD)
				fprintf(st->out, "## %s\n\n", title);
			else {
				underline(st->out, title, '-');
				fputc('\n', st->out);
			}
			render_body(json_object_get(sec, "body"), st->f,
			    st->out);
		}
	json_array_clear(secs);
	json_array_clear(items);
	fflush(st->out);
	return ferror(st->out) ? -1 : 0;
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
onb_stream_end(struct onb_stream *st, json_t *doc)
{
	json_t *notes = json_object_get(doc, "notes"), *n, *v;
	const char **keys = NULL, *k;
	char buf[8192];
	size_t i, nk = 0, got;
	int rc = 0;

	if (onb_stream_flush(st, doc) < 0)
		rc = -1;
	if (st->f != ONB_JSON) {
		if (json_array_size(notes) > 0) {
			fputc('\n', st->out);
			if (st->f == ONB_MD)
				fprintf(st->out, "## Notes\n\n");
			else {
				underline(st->out, "Notes", '-');
				fputc('\n', st->out);
			}
			json_array_foreach(notes, i, n)
				wrap(st->out, json_string_value(n), st->f ==
				    ONB_MD ? "- " : "  - ", st->f == ONB_MD ?
				    "  " : "    ");
		}
		return ferror(st->out) || rc < 0 ? -1 : 0;
	}
	/* The array streamed so far, then the other members in key order,
	 * the sections from the spool. */
	fputs(st->nitems ? "\n  ]" : "]", st->out);
	if ((keys = calloc(json_object_size(doc) + 1, sizeof(*keys))) == NULL)
		rc = -1;
	else {
		json_object_foreach(doc, k, v)
			if (strcmp(k, st->items) != 0)
				keys[nk++] = k;
		qsort(keys, nk, sizeof(*keys), key_cmp);
	}
	for (i = 0; i < nk; i++) {
		fputs(",\n  ", st->out);
		v = json_string(keys[i]);
		dump_at(st->out, v, 2);
		json_decref(v);
		fputs(": ", st->out);
		if (strcmp(keys[i], "sections") != 0) {
			dump_at(st->out, json_object_get(doc, keys[i]), 2);
			continue;
		}
		fputc('[', st->out);
		rewind(st->spool);
		while ((got = fread(buf, 1, sizeof(buf), st->spool)) > 0)
			fwrite(buf, 1, got, st->out);
		fputs(st->nsecs ? "\n  ]" : "]", st->out);
	}
	fputs("\n}\n", st->out);
	free(keys);
	fclose(st->spool);
	st->spool = NULL;
	return ferror(st->out) || rc < 0 ? -1 : 0;
}

/* The whole document at once: the stream machinery, or for JSON one
 * dump (the same text). */
int
onb_render(json_t *doc, enum onb_format f, FILE *out)
{
	struct onb_stream st;

	if (f == ONB_JSON) {
		if (json_dumpf(doc, out, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
			return -1;
		fputc('\n', out);
		return ferror(out) ? -1 : 0;
	}
	if (onb_stream_begin(&st, doc, "sections", f, out) < 0)
		return -1;
	return onb_stream_end(&st, doc);
}
