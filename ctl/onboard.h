/*
 * onboard.h - the onboarding and resource-configuration documents of
 * xtcmkctl: `app plan`, `customer kit`, `resource config` and
 * `key plan-rotation` (see xtcmk-onboarding(7)).
 *
 * The documents are generated on the client side from the agent's
 * replies (status, app.list, workload.list, customer.show).  Each one is
 * a JSON object: structured fields a script can use, plus sections of
 * paragraphs, list items and code blocks that onb_render() prints as text
 * or Markdown.
 */
#ifndef XTCMK_ONBOARD_H
#define XTCMK_ONBOARD_H

#include <stdio.h>

#include <jansson.h>

#include "xerr.h"

#define ONB_FIC_MAX		20	/* Entra: FICs per application */
#define ONB_FIC_NAME_MIN	3
#define ONB_FIC_NAME_MAX	120
#define ONB_WRAP		76	/* text output line width */
#define ONB_ARG_MAX		128	/* length of a name given as option */
#define ONB_OPTS_MAX		32

enum onb_format {
	ONB_TEXT = 0,
	ONB_MD,
	ONB_JSON,
};

/* What xtcmkctl lends the generators: its transport and error mapping. */
struct onb_io {
	int	(*call)(json_t *req, json_t **ret_reply);	/* exit code */
	/* the same, silent when the agent answers NOT_FOUND */
	int	(*call_quiet)(json_t *req, json_t **ret_reply);
	int	(*call_list)(const char *cmd, json_t **ret_items);
	int	(*exit_for)(int code);		/* enum xtcmk_result -> exit */
	int	json;				/* -j was given */
};

/*
 * Run `app plan`, `customer kit`, `resource config` or `key plan-rotation`
 * (cmd is the first word, argv the rest).  Returns an exit code of
 * xtcmkctl(8), or -1 when the words are not one of these commands.
 */
int	onb_main(const struct onb_io *io, const char *cmd, int argc,
	    char **argv);

/* Generators: replies in, document out (0) or -code with a sentence. */
int	onb_app_plan(json_t *status, json_t *apps, json_t *workloads,
	    const char *only, json_t *current, json_t *extra,
	    json_t **ret_doc, struct xerr *e);
/*
 * `app plan` an application at a time (onb_app_plan() is begin, app for
 * each, none when there was none, then the document): the document so
 * far is onb_plan_doc(p), for onb_stream_flush() to print and empty.
 */
struct onb_plan;
int	onb_plan_begin(json_t *status, json_t *workloads, const char *only,
	    json_t *current, json_t *extra, struct onb_plan **ret_plan,
	    struct xerr *e);
int	onb_plan_app(struct onb_plan *p, json_t *app, struct xerr *e);
void	onb_plan_none(struct onb_plan *p);
json_t	*onb_plan_doc(struct onb_plan *p);
void	onb_plan_free(struct onb_plan *p);
int	onb_customer_kit(json_t *status, json_t *show, const char *grant,
	    const char *vault_rid, json_t **ret_doc, struct xerr *e);
int	onb_resource_config(json_t *status, json_t *show, json_t *workloads,
	    const char *kind, json_t *opts, json_t **ret_doc, struct xerr *e);
int	onb_plan_rotation(json_t *show, json_t **ret_doc, struct xerr *e);

/* Documents (onboard_doc.c). */
json_t	*onb_doc_new(const char *document, const char *title);
json_t	*onb_section(json_t *doc, const char *title);
void	 onb_p(json_t *body, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 onb_li(json_t *body, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 onb_code(json_t *body, const char *lang, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	 onb_code_json(json_t *body, json_t *v);
void	 onb_note(json_t *doc, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
char	*onb_printf(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
int	 onb_render(json_t *doc, enum onb_format f, FILE *out);

/*
 * Print a document while it grows (same text as onb_render() of the
 * whole): begin prints the title (JSON: opens the object and the array
 * member `items`, which must sort first among the members); each flush
 * prints the sections and `items` added since and removes them from
 * `doc`; end prints the notes (JSON: the other members, in key order).
 */
struct onb_stream {
	enum onb_format	 f;
	FILE		*out;
	const char	*items;
	FILE		*spool;		/* JSON: the sections until the end */
	size_t		 nitems, nsecs;
};
int	 onb_stream_begin(struct onb_stream *st, json_t *doc,
	    const char *items, enum onb_format f, FILE *out);
int	 onb_stream_flush(struct onb_stream *st, json_t *doc);
int	 onb_stream_end(struct onb_stream *st, json_t *doc);

#endif
