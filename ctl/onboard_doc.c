/*
 * onboard_doc.c - the document model of the onboarding commands and its
 * text and Markdown renderers.
 *
 * A document is {"document", "title", "sections": [{"title", "body":
 * [{"p"} | {"li"} | {"code", "lang"}]}], "notes": [...]} plus whatever
 * structured fields the generator adds; --json prints it whole.
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

int
onb_render(json_t *doc, enum onb_format f, FILE *out)
{
	const char *title = json_string_value(json_object_get(doc, "title"));
	json_t *sec, *notes = json_object_get(doc, "notes"), *n;
	size_t i;

	if (f == ONB_JSON) {
		if (json_dumpf(doc, out, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
			return -1;
		fputc('\n', out);
		return ferror(out) ? -1 : 0;
	}
	if (f == ONB_MD)
		fprintf(out, "# %s\n", title);
	else
		underline(out, title, '=');
	json_array_foreach(json_object_get(doc, "sections"), i, sec) {
		fputc('\n', out);
		title = json_string_value(json_object_get(sec, "title"));
		if (f == ONB_MD)
			fprintf(out, "## %s\n\n", title);
		else {
			underline(out, title, '-');
			fputc('\n', out);
		}
		render_body(json_object_get(sec, "body"), f, out);
	}
	if (json_array_size(notes) > 0) {
		fputc('\n', out);
		if (f == ONB_MD)
			fprintf(out, "## Notes\n\n");
		else
			underline(out, "Notes", '-');
		if (f != ONB_MD)
			fputc('\n', out);
		json_array_foreach(notes, i, n)
			wrap(out, json_string_value(n), f == ONB_MD ? "- " :
			    "  - ", f == ONB_MD ? "  " : "    ");
	}
	return ferror(out) ? -1 : 0;
}
