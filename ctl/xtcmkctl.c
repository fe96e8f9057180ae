/*
 * xtcmkctl - the admin CLI of xtcmk.
 *
 * Every command but `policy check|test` is a JSON admin request to xtcmkd
 * over its socket (see xtcmk-protocol(7)); those two run the policy engine
 * offline, without an agent.  Human output by default, --json for
 * scripts.  Exit codes are listed in xtcmkctl(8).
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "conf.h"
#include "config.h"
#include "import.h"
#include "keys.h"
#include "onboard.h"
#include "pagescan.h"
#include "policy.h"
#include "wire.h"
#include "xtcmk.h"

#define CTL_TIMEOUT_MS	30000	/* onboarding may wait for the policy queue */
#define CTL_PAGE_MAX	1000	/* the agent's largest page */
#define CTL_ARGS_MAX	64

enum {
	EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNAVAILABLE = 3,
	EXIT_NOT_FOUND = 4, EXIT_CONFLICT = 5, EXIT_POLICY = 6,
	EXIT_DENIED = 7, EXIT_REVOKED = 8, EXIT_INVALID = 9,
	EXIT_REFUSED = 10,	/* customer import: some were refused */
};

static int opt_json;
static const char *opt_socket;
static const char *opt_config;
static struct xc_conn conn = { .fd = -1 };
static char last_err[1024];	/* the agent's last error sentence */
static int quiet_not_found;	/* NOT_FOUND is the caller's to report */

static void
usage(FILE *out)
{
	fprintf(out,
"usage: xtcmkctl [-j] [-c config] [-s socket] command [args]\n"
"commands:\n"
"  status | stats | reload | check\n"
"  workload add NAME --client-id GUID --principal-id GUID\n"
"               [--resource-id ID] [--label k=v ...]\n"
"  workload list | show NAME | remove NAME\n"
"  app add NAME [--client-id GUID] [--label k=v ...]\n"
"  app set NAME --client-id GUID\n"
"  app list | show NAME\n"
"  app fic add|remove APP WORKLOAD\n"
"  customer add ID --tenant GUID --key-uri URI [--auth rbac|access-policy]\n"
"               [--kind KIND[,KIND...]] [--label k=v ...]\n"
"  customer list | show ID | remove ID | check ID\n"
"  customer move ID --to APP --reason TEXT\n"
"  customer moves [ID]\n"
"  customer import FILE|- [--batch N]\n"
"  (each list command takes [--limit N] [--after KEY] for one page)\n"
"  decide ID\n"
"  key create URI [--bits 2048|3072] | rotate URI | disable URI |\n"
"      enable URI | delete URI | list | show URI | status CUSTOMER\n"
"  registry export | import [FILE]\n"
"  policy check [DIR]\n"
"  policy test [--dir DIR] [--host-params] FIXTURE...\n"
"onboarding documents (--format text|md|json; see xtcmk-onboarding(7)):\n"
"  app plan [APP] [--current FILE] [--add WORKLOAD ...]\n"
"  customer kit ID [--grant rbac|access-policy] [--vault-resource-id ID]\n"
"  resource config ID --kind KIND [--identity WORKLOAD] [--account NAME]\n"
"      (KIND: storage, storage-existing, cosmosdb, netapp or host)\n"
"      [--resource-group RG] [--subscription GUID] [--location LOC]\n"
"      [--vault-resource-id ID]\n"
"  key plan-rotation ID\n");
}

/*
 * `xtcmkctl COMMAND --help`: the usage lines of COMMAND (a line naming it
 * and the indented lines continuing it).  0 if COMMAND is unknown.
 */
static int
usage_cmd(FILE *out, const char *cmd)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0, n = strlen(cmd);
	int on = 0, found = 0;
	FILE *f;

	if ((f = open_memstream(&text, &len)) == NULL)
		return 0;
	usage(f);
	fclose(f);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "  ", 2) != 0) {
			on = 0;
			continue;
		}
		if (line[2] != ' ') {
			/* "  CMD ..." or "  a | b | CMD | c" */
			on = (strncmp(line + 2, cmd, n) == 0 &&
			    (line[2 + n] == ' ' || line[2 + n] == '\0')) ||
			    (strchr(line, '|') != NULL && line[2] >= 'a' &&
			    strstr(line, cmd) != NULL &&
			    strncmp(line + 2, "status", 6) == 0);
			if (on && !found++)
				fprintf(out, "usage: xtcmkctl [-j] [-c config] "
				    "[-s socket]\n");
		}
		if (on)
			fprintf(out, "%s\n", line);
	}
	free(text);
	if (found)
		fprintf(out, "see xtcmkctl(8)\n");
	return found;
}

static int err_printed;

/*
 * Report an error: "xtcmkctl: MESSAGE" on standard error, or with -j a
 * JSON object on standard output, {"error": MESSAGE, "code": N, "status":
 * TEXT} where N is the xtcmk result code (xtcmk_strerror(3)), so scripts
 * read one format.
 */
static void
ctl_err(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
ctl_err(int code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_printed = 1;
	if (!opt_json) {
		fprintf(stderr, "xtcmkctl: %s\n", msg);
		return;
	}
	j = json_pack("{s:s, s:i, s:s}", "error", msg, "code", code,
	    "status", xtcmk_strerror(code));
	if (j != NULL)
		json_dumpf(j, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(j);
}

static int
exit_for(int code)
{
	switch (code) {
	case XTCMK_OK:
		return EXIT_OK;
	case XTCMK_E_UNAVAILABLE:
	case XTCMK_E_TIMEOUT:
	case XTCMK_E_BUSY:
		return EXIT_UNAVAILABLE;
	case XTCMK_E_NOT_FOUND:
		return EXIT_NOT_FOUND;
	case XTCMK_E_CONFLICT:
	case XTCMK_E_EXISTS:
		return EXIT_CONFLICT;
	case XTCMK_E_POLICY:
		return EXIT_POLICY;
	case XTCMK_E_DENIED:
		return EXIT_DENIED;
	case XTCMK_E_REVOKED:
		return EXIT_REVOKED;
	case XTCMK_E_INVAL:
		return EXIT_INVALID;
	default:
		return EXIT_FAIL;
	}
}

static const char *
socket_path(void)
{
	static char path[XC_UNIX_PATH_MAX];
	struct config *cfg;
	struct xerr e;
	const char *env;

	if (opt_socket != NULL)
		return opt_socket;
	if ((env = secure_getenv("XTCMK_SOCKET")) != NULL)
		return env;
	if (opt_config != NULL && config_load(opt_config, &cfg, &e) == 0) {
		snprintf(path, sizeof(path), "%s", cfg->socket_path);
		config_free(cfg);
		return path;
	}
	return XTCMK_SOCKET;
}

/* A request's frame payload (XT_JSON); NULL and an error if too big. */
static uint8_t *
request_payload(json_t *req, size_t *ret_len)
{
	struct xw_buf b;
	uint8_t *payload;
	char *text;

	if ((text = json_dumps(req, JSON_COMPACT)) == NULL)
		return NULL;
	if ((payload = malloc(XW_PAYLOAD_MAX)) == NULL) {
		free(text);
		return NULL;
	}
	xw_buf_init(&b, payload, XW_PAYLOAD_MAX);
	xw_put_str(&b, XT_JSON, text);
	free(text);
	if (b.err != 0) {
		free(payload);
		ctl_err(XTCMK_E_TOOBIG, "request too large");
		return NULL;
	}
	*ret_len = b.len;
	return payload;
}

/* A transport failure (rc < 0 from the client library) as an exit code. */
static int
transport_failed(int rc, const char *err)
{
	ctl_err(-rc, "%s: %s%s", socket_path(),
	    err[0] ? err : xtcmk_strerror(-rc),
	    -rc == XTCMK_E_UNAVAILABLE ? " (start xtcmkd, or point "
	    "-s/-c/$XTCMK_SOCKET at its socket)" : "");
	return exit_for(-rc);
}

/* An agent's reply frame: the JSON text, or an exit code (the agent's
 * error reported). */
static int
reply_text(uint8_t *reply, size_t rlen, uint16_t status, uint8_t **ret_frame,
    const char **ret_text, size_t *ret_len)
{
	char msg[1024];
	struct xw_field f;

	if (status != 0) {
		xc_reply_message(reply, rlen, msg, sizeof(msg));
		snprintf(last_err, sizeof(last_err), "%s", msg);
		if (!(quiet_not_found && status == XTCMK_E_NOT_FOUND))
			ctl_err(status, "%s", msg[0] ? msg :
			    xtcmk_strerror(status));
		free(reply);
		return exit_for(status);
	}
	if (xw_find(reply, rlen, XT_JSON, &f) != 1) {
		ctl_err(XTCMK_E_PROTOCOL, "the agent's reply is not JSON");
		free(reply);
		return EXIT_FAIL;
	}
	*ret_frame = reply;
	*ret_text = (const char *)f.val;
	*ret_len = f.len;
	return EXIT_OK;
}

/*
 * Send one admin request; on success *ret_frame (malloc'd) holds the
 * reply and *ret_text (*ret_len bytes) its JSON text; an exit code on
 * failure.
 */
static int
call_raw(json_t *req, uint8_t **ret_frame, const char **ret_text,
    size_t *ret_len)
{
	char err[XC_ERR_MAX] = "";
	int64_t deadline = xc_deadline(CTL_TIMEOUT_MS);
	uint8_t *payload, *reply = NULL;
	uint16_t status;
	size_t len, rlen;
	int rc;

	if ((payload = request_payload(req, &len)) == NULL)
		return EXIT_USAGE;
	rc = 0;
	if (conn.fd == -1)
		rc = xc_connect(socket_path(), deadline, err, sizeof(err),
		    &conn);
	if (rc == 0)
		rc = xc_request(&conn, XW_ADMIN, payload, len,
		    XW_PAYLOAD_MAX, deadline, err, sizeof(err), &status,
		    &reply, &rlen);
	free(payload);
	if (rc < 0)
		return transport_failed(rc, err);
	return reply_text(reply, rlen, status, ret_frame, ret_text, ret_len);
}

/* call_raw's halves, for requests sent ahead (customer import). */
static int
send_ahead(json_t *req, uint32_t *ret_reqid)
{
	char err[XC_ERR_MAX] = "";
	int64_t deadline = xc_deadline(CTL_TIMEOUT_MS);
	uint8_t *payload;
	size_t len;
	int rc = 0;

	if ((payload = request_payload(req, &len)) == NULL)
		return EXIT_USAGE;
	if (conn.fd == -1)
		rc = xc_connect(socket_path(), deadline, err, sizeof(err),
		    &conn);
	if (rc == 0)
		rc = xc_send(&conn, XW_ADMIN, payload, len, deadline, err,
		    sizeof(err), ret_reqid);
	free(payload);
	return rc < 0 ? transport_failed(rc, err) : EXIT_OK;
}

/* The reply's JSON text (frame freed) in *ret_reply; an exit code. */
static int
reply_json(uint8_t *frame, const char *text, size_t len, json_t **ret_reply)
{
	json_error_t jerr;

	*ret_reply = json_loadb(text, len, 0, &jerr);
	free(frame);
	if (*ret_reply == NULL) {
		ctl_err(XTCMK_E_PROTOCOL, "the agent's reply is not JSON");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int
reply_ahead(uint32_t reqid, json_t **ret_reply)
{
	char err[XC_ERR_MAX] = "";
	const char *text = NULL;
	uint8_t *reply = NULL, *frame = NULL;
	uint16_t status;
	size_t rlen, len = 0;
	int rc;

	if ((rc = xc_reply(&conn, XW_ADMIN, reqid, XW_PAYLOAD_MAX,
	    xc_deadline(CTL_TIMEOUT_MS), err, sizeof(err), &status, &reply,
	    &rlen)) < 0)
		return transport_failed(rc, err);
	if ((rc = reply_text(reply, rlen, status, &frame, &text, &len)) !=
	    EXIT_OK)
		return rc;
	return reply_json(frame, text, len, ret_reply);
}

/* Send one admin request; *ret_reply on success, exit code on failure. */
static int
call(json_t *req, json_t **ret_reply)
{
	const char *text;
	uint8_t *frame;
	size_t len;
	int rc;

	if ((rc = call_raw(req, &frame, &text, &len)) != EXIT_OK)
		return rc;
	return reply_json(frame, text, len, ret_reply);
}

static void
print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

static const char *
jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

static void
print_list(json_t *a, const char *sep)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		printf("%s%s", i ? sep : "", json_string_value(v));
	if (json_array_size(a) == 0)
		printf("-");
}

static void
print_labels(json_t *o)
{
	const char *k;
	json_t *v;
	int first = 1;

	json_object_foreach(o, k, v) {
		printf("%s%s=%s", first ? "" : ",", k, json_string_value(v));
		first = 0;
	}
	if (first)
		printf("-");
}

/* --- lists ------------------------------------------------------------ */

/* --limit N and --after KEY: one page instead of the whole list. */
struct page_opt {
	long		 limit;		/* 0: the agent's default */
	const char	*after;
	int		 one;		/* either was given */
	int		 numeric;	/* the list's key is an integer */
};

typedef void	row_fn(json_t *item, void *arg);

/* A list's human lines read by pagescan: the members a line shows. */
struct fast_rows {
	const char *const *keys;
	int		 nkeys;
	void		(*line)(const struct pscan_row *);
};

#define LIST_OLD_AGENT	(-1)	/* list_page: the agent pages by offset */

/*
 * One page of `cmd` for the request `req`: its items to `row` (or, when
 * `fast` is given and pagescan takes the page, to fast->line) and its
 * "next" in *ret_next (new reference).
 */
static int
list_page(json_t *req, row_fn *row, void *arg, const struct fast_rows *fast,
    json_t **ret_next)
{
	static struct pscan_row rows[CTL_PAGE_MAX];
	const char *text, *nt;
	json_t *r = NULL, *v, *next;
	uint8_t *frame;
	size_t len, n, nl, i;
	int rc;

	if ((rc = call_raw(req, &frame, &text, &len)) != EXIT_OK)
		return rc;
	if (fast != NULL && pscan_page(text, len, fast->keys, fast->nkeys,
	    rows, CTL_PAGE_MAX, &n, &nt, &nl) == 0 &&
	    (next = json_loadb(nt, nl, JSON_DECODE_ANY, NULL)) != NULL) {
		if (!json_is_null(next) && json_equal(json_object_get(req,
		    "after"), next)) {
			json_decref(next);
			free(frame);
			return LIST_OLD_AGENT;
		}
		for (i = 0; i < n; i++)
			fast->line(&rows[i]);
		free(frame);
		*ret_next = next;
		return EXIT_OK;
	}
	r = json_loadb(text, len, 0, NULL);
	free(frame);
	if (r == NULL) {
		ctl_err(XTCMK_E_PROTOCOL, "the agent's reply is not JSON");
		return EXIT_FAIL;
	}
	if (json_object_get(r, "total") != NULL ||
	    (!json_is_null(json_object_get(req, "after")) &&
	    json_equal(json_object_get(req, "after"),
	    json_object_get(r, "next")))) {
		json_decref(r);
		return LIST_OLD_AGENT;
	}
	json_array_foreach(json_object_get(r, "items"), i, v)
		row(v, arg);
	next = json_object_get(r, "next");
	*ret_next = next != NULL ? json_incref(next) : json_null();
	json_decref(r);
	return EXIT_OK;
}

/*
 * Run the list command `cmd` (extra arguments in `args`, borrowed) page
 * by page, following "next" until it is null, and hand each item to
 * `row` as it arrives (or its line to fast->line, see list_page), so
 * memory holds one page whatever the list holds.  With --limit/--after,
 * one page only; its "next" is returned in *ret_next (new reference,
 * JSON null at the end) when asked.
 */
static int
list_each(const char *cmd, json_t *args, const struct page_opt *po,
    row_fn *row, void *arg, const struct fast_rows *fast, json_t **ret_next)
{
	json_t *req, *after, *next = NULL;
	int rc;

	after = po == NULL || po->after == NULL ? json_null() : po->numeric ?
	    json_integer(strtoll(po->after, NULL, 10)) :
	    json_string(po->after);
	for (;;) {
		req = args != NULL ? json_deep_copy(args) : json_object();
		json_object_set_new(req, "cmd", json_string(cmd));
		json_object_set_new(req, "after", after);
		if (po != NULL && po->limit > 0)
			json_object_set_new(req, "limit",
			    json_integer(po->limit));
		rc = list_page(req, row, arg, fast, &next);
		json_decref(req);
		if (rc == LIST_OLD_AGENT) {
			/* An agent paging by offset ignores "after". */
			fprintf(stderr, "xtcmkctl: the agent does not page %s "
			    "by key: it is older than this xtcmkctl\n", cmd);
			return EXIT_FAIL;
		}
		if (rc != EXIT_OK)
			return rc;
		if ((po != NULL && po->one) || json_is_null(next)) {
			if (ret_next != NULL)
				*ret_next = next;
			else
				json_decref(next);
			return EXIT_OK;
		}
		after = next;
	}
}

static void
collect_row(json_t *item, void *arg)
{
	json_array_append((json_t *)arg, item);
}

/* call(), leaving a NOT_FOUND answer for the caller to explain. */
static int
call_quiet(json_t *req, json_t **ret_reply)
{
	int rc;

	quiet_not_found = 1;
	rc = call(req, ret_reply);
	quiet_not_found = 0;
	return rc;
}

/* Every item of a list command in one array (for the documents). */
static int
call_list(const char *cmd, json_t **ret_items)
{
	json_t *all = json_array();
	int rc;

	if ((rc = list_each(cmd, NULL, NULL, collect_row, all, NULL, NULL)) !=
	    EXIT_OK) {
		json_decref(all);
		return rc;
	}
	*ret_items = all;
	return EXIT_OK;
}

/* How a list prints: --json streams one JSON array, an item a line. */
struct lister {
	void		(*human)(json_t *item);
	const char	*open;		/* what comes before the first item */
	size_t		 n;
};

static void
list_row(json_t *item, void *arg)
{
	struct lister *l = arg;

	if (opt_json) {
		fputs(l->n == 0 ? l->open : ",\n", stdout);
		json_dumpf(item, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	} else
		l->human(item);
	l->n++;
}

/*
 * Print the list `cmd` with the header `head` (human output) and one
 * line per item from `human`; see "LISTS" in xtcmkctl(8).
 */
static int
print_list_cmd(const char *cmd, json_t *args, const struct page_opt *po,
    const char *head, void (*human)(json_t *), const struct fast_rows *fast)
{
	struct lister l = { human, po->one ? "{\"items\": [\n" : "[\n", 0 };
	json_t *next = NULL;
	int rc;

	if (!opt_json)
		fputs(head, stdout);
	rc = list_each(cmd, args, po, list_row, &l, opt_json ? NULL : fast,
	    &next);
	if (rc != EXIT_OK) {
		/* A stream cut short is left unterminated on purpose. */
		fflush(stdout);
		return rc;
	}
	if (opt_json) {
		fputs(l.n == 0 ? l.open : "\n", stdout);
		fputs("]", stdout);
		if (po->one) {
			/* One page: and the key the next page starts at. */
			printf(", \"next\": ");
			json_dumpf(next, stdout, JSON_ENCODE_ANY);
			printf("}");
		}
		printf("\n");
	} else if (po->one && !json_is_null(next)) {
		fprintf(stderr, "xtcmkctl: more follow: --after ");
		if (json_is_string(next))
			fputs(json_string_value(next), stderr);
		else
			json_dumpf(next, stderr, JSON_ENCODE_ANY);
		fprintf(stderr, "\n");
	}
	json_decref(next);
	return EXIT_OK;
}

static void
print_decision(json_t *d)
{
	json_t *role = json_object_get(d, "role");
	json_t *ver = json_object_get(d, "versioning");

	printf("customer      %s (tenant %s)\n", jstr(d, "customer"),
	    jstr(d, "tenant"));
	printf("kinds         ");
	print_list(json_object_get(d, "kinds"), ", ");
	printf("\napplication   %s (client id %s)\n", jstr(d, "app"),
	    jstr(d, "app_client_id"));
	printf("workloads     ");
	print_list(json_object_get(d, "workloads"), ", ");
	printf("\nthis host     %s: %s\n", jstr(d, "this_workload"),
	    json_is_true(json_object_get(d, "served")) ?
	    "served (its workload holds a FIC on the application)" :
	    "NOT served (no FIC for this host's workload)");
	if (strcmp(jstr(role, "mechanism"), "rbac") == 0)
		printf("grant         Azure RBAC role '%s' (%s) at %s scope\n",
		    jstr(role, "role"), jstr(role, "role_id"),
		    jstr(role, "scope"));
	else {
		printf("grant         access policy, key permissions: ");
		print_list(json_object_get(role, "permissions"), ", ");
		printf("\n");
	}
	printf("key           %s\n", jstr(d, "key_uri"));
	printf("versioning    %s%s%s; refresh %llds, revocation check %llds, "
	    "grace %llds\n", jstr(ver, "mode"),
	    json_object_get(ver, "version") ? " at version " : "",
	    json_object_get(ver, "version") ? jstr(ver, "version") : "",
	    (long long)json_integer_value(json_object_get(ver, "refresh")),
	    (long long)json_integer_value(json_object_get(ver,
	    "revocation_check")),
	    (long long)json_integer_value(json_object_get(ver, "grace")));
	printf("DEK cache     %llds, at most %lld entries\n",
	    (long long)json_integer_value(json_object_get(ver, "cache_ttl")),
	    (long long)json_integer_value(json_object_get(ver, "cache_max")));
	printf("policy        %.12s\n", jstr(d, "policy_hash"));
}

/* --- argument parsing ------------------------------------------------ */

struct kv {
	const char	*name;		/* "--client-id" */
	const char	*value;
};

/*
 * Split argv into positional arguments and --name value options; labels
 * (--label k=v, repeatable) go into `labels`.
 */
static int
parse_opts(int argc, char **argv, const char *const *allowed, char **pos,
    int *npos, struct kv *opts, int *nopts, json_t *labels)
{
	int i, j, ok;
	char *eq;

	*npos = *nopts = 0;
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (*npos == CTL_ARGS_MAX)
				return -1;
			pos[(*npos)++] = argv[i];
			continue;
		}
		for (ok = 0, j = 0; allowed[j] != NULL; j++)
			if (strcmp(allowed[j], argv[i]) == 0)
				ok = 1;
		if (!ok) {
			ctl_err(XTCMK_E_INVAL, "unknown option %s", argv[i]);
			return -1;
		}
		if (i + 1 >= argc) {
			ctl_err(XTCMK_E_INVAL, "%s needs a value", argv[i]);
			return -1;
		}
		if (strcmp(argv[i], "--label") == 0) {
			if ((eq = strchr(argv[i + 1], '=')) == NULL) {
				ctl_err(XTCMK_E_INVAL, "--label takes "
				    "key=value, not '%s'", argv[i + 1]);
				return -1;
			}
			*eq = '\0';
			json_object_set_new(labels, argv[i + 1],
			    json_string(eq + 1));
			i++;
			continue;
		}
		if (*nopts == CTL_ARGS_MAX)
			return -1;
		opts[*nopts].name = argv[i];
		opts[*nopts].value = argv[++i];
		(*nopts)++;
	}
	return 0;
}

static const char *
opt(const struct kv *opts, int n, const char *name)
{
	int i;

	for (i = n - 1; i >= 0; i--)
		if (strcmp(opts[i].name, name) == 0)
			return opts[i].value;
	return NULL;
}

static int
need(const char *v, const char *what)
{
	if (v == NULL) {
		ctl_err(XTCMK_E_INVAL, "missing %s (see xtcmkctl(8))", what);
		return -1;
	}
	return 0;
}

/* --limit N and --after KEY of a list command. */
static int
page_opts(const struct kv *opts, int n, int numeric, struct page_opt *po)
{
	const char *l = opt(opts, n, "--limit");
	char *end;

	memset(po, 0, sizeof(*po));
	po->numeric = numeric;
	po->after = opt(opts, n, "--after");
	if (l != NULL) {
		errno = 0;
		po->limit = strtol(l, &end, 10);
		if (errno != 0 || *end != '\0' || po->limit < 1 ||
		    po->limit > CTL_PAGE_MAX) {
			fprintf(stderr, "xtcmkctl: --limit takes a number from "
			    "1 to %d, not '%s'\n", CTL_PAGE_MAX, l);
			return -1;
		}
	}
	if (numeric && po->after != NULL && (strtoll(po->after, &end, 10) <
	    0 || *end != '\0' || *po->after == '\0')) {
		fprintf(stderr, "xtcmkctl: --after takes the number printed "
		    "as the next key, not '%s'\n", po->after);
		return -1;
	}
	po->one = l != NULL || po->after != NULL;
	return 0;
}

/* Run a simple command whose reply is printed as JSON or as `human`. */
static int
simple(json_t *req, const char *human)
{
	json_t *r;
	int rc;

	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	if (opt_json || human == NULL)
		print_json(r);
	else
		printf("%s\n", human);
	json_decref(r);
	return EXIT_OK;
}

/* --- commands -------------------------------------------------------- */

static void
workload_line(json_t *w)
{
	printf("%-24s %-36s %-36s ", jstr(w, "name"), jstr(w, "client_id"),
	    jstr(w, "principal_id"));
	print_labels(json_object_get(w, "labels"));
	printf("\n");
}

static int
cmd_workload(int argc, char **argv)
{
	static const char *const allowed[] = { "--client-id",
	    "--principal-id", "--resource-id", "--label", "--limit", "--after",
	    NULL };
	char *pos[CTL_ARGS_MAX];
	struct kv opts[CTL_ARGS_MAX];
	struct page_opt po;
	json_t *labels = json_object(), *req;
	int npos, nopts;

	if (parse_opts(argc, argv, allowed, pos, &npos, opts, &nopts,
	    labels) < 0 || npos < 1) {
		json_decref(labels);
		return EXIT_USAGE;
	}
	if (strcmp(pos[0], "add") == 0 && npos == 2) {
		if (need(opt(opts, nopts, "--client-id"), "--client-id") < 0 ||
		    need(opt(opts, nopts, "--principal-id"),
		    "--principal-id") < 0) {
			json_decref(labels);
			return EXIT_USAGE;
		}
		req = json_pack("{s:s, s:{s:s, s:s, s:s, s:s?, s:o}}", "cmd",
		    "workload.add", "workload", "name", pos[1], "client_id",
		    opt(opts, nopts, "--client-id"), "principal_id",
		    opt(opts, nopts, "--principal-id"), "resource_id",
		    opt(opts, nopts, "--resource-id"), "labels", labels);
		return simple(req, "workload added");
	}
	json_decref(labels);
	if (strcmp(pos[0], "list") == 0 && npos == 1)
		return page_opts(opts, nopts, 0, &po) < 0 ? EXIT_USAGE :
		    print_list_cmd("workload.list", NULL, &po,
		    "NAME                     CLIENT ID                            "
		    "PRINCIPAL ID                         LABELS\n", workload_line,
		    NULL);
	if (strcmp(pos[0], "show") == 0 && npos == 2)
		return simple(json_pack("{s:s, s:s}", "cmd", "workload.show",
		    "name", pos[1]), NULL);
	if (strcmp(pos[0], "remove") == 0 && npos == 2)
		return simple(json_pack("{s:s, s:s}", "cmd",
		    "workload.remove", "name", pos[1]), "workload removed");
	return EXIT_USAGE;
}

static void
app_line(json_t *a)
{
	printf("%-28s %-36s %2lld/20 %9lld  ", jstr(a, "name"),
	    jstr(a, "client_id"),
	    (long long)json_integer_value(json_object_get(a, "fic_count")),
	    (long long)json_integer_value(json_object_get(a, "customers")));
	print_labels(json_object_get(a, "labels"));
	printf("\n");
}

static int
cmd_app(int argc, char **argv)
{
	static const char *const allowed[] = { "--client-id", "--label",
	    "--limit", "--after", NULL };
	char *pos[CTL_ARGS_MAX];
	struct kv opts[CTL_ARGS_MAX];
	struct page_opt po;
	json_t *labels = json_object(), *req, *r;
	int npos, nopts, rc;

	if (parse_opts(argc, argv, allowed, pos, &npos, opts, &nopts,
	    labels) < 0 || npos < 1) {
		json_decref(labels);
		return EXIT_USAGE;
	}
	if (strcmp(pos[0], "add") == 0 && npos == 2) {
		req = json_pack("{s:s, s:{s:s, s:s?, s:o}}", "cmd", "app.add",
		    "app", "name", pos[1], "client_id",
		    opt(opts, nopts, "--client-id"), "labels", labels);
		return simple(req, "application added");
	}
	json_decref(labels);
	if (strcmp(pos[0], "set") == 0 && npos == 2) {
		if (need(opt(opts, nopts, "--client-id"), "--client-id") < 0)
			return EXIT_USAGE;
		return simple(json_pack("{s:s, s:s, s:s}", "cmd", "app.set",
		    "name", pos[1], "client_id",
		    opt(opts, nopts, "--client-id")), "application updated");
	}
	if (strcmp(pos[0], "list") == 0 && npos == 1)
		return page_opts(opts, nopts, 0, &po) < 0 ? EXIT_USAGE :
		    print_list_cmd("app.list", NULL, &po,
		    "NAME                         CLIENT ID                             "
		    "FICS CUSTOMERS  LABELS\n", app_line, NULL);
	if (strcmp(pos[0], "show") == 0 && npos == 2)
		return simple(json_pack("{s:s, s:s}", "cmd", "app.show",
		    "name", pos[1]), NULL);
	if (strcmp(pos[0], "fic") == 0 && npos == 4 &&
	    strcmp(pos[1], "remove") == 0)
		return simple(json_pack("{s:s, s:s, s:s}", "cmd", "fic.remove",
		    "app", pos[2], "workload", pos[3]),
		    "federated credential removed");
	if (strcmp(pos[0], "fic") == 0 && npos == 4 &&
	    strcmp(pos[1], "add") == 0) {
		req = json_pack("{s:s, s:s, s:s}", "cmd", "fic.add", "app",
		    pos[2], "workload", pos[3]);
		rc = call(req, &r);
		json_decref(req);
		if (rc != EXIT_OK)
			return rc;
		if (opt_json)
			print_json(r);
		else if (json_is_false(json_object_get(r, "changed")))
			printf("application %s already holds a federated "
			    "credential for workload %s: nothing changed\n",
			    pos[2], pos[3]);
		else
			printf("federated credential added\n");
		json_decref(r);
		return EXIT_OK;
	}
	return EXIT_USAGE;
}

static json_t *
split_kinds(const char *s)
{
	json_t *a = json_array();
	char *copy = strdup(s), *tok, *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save))
		json_array_append_new(a, json_string(tok));
	free(copy);
	return a;
}

static void
customer_line(json_t *c)
{
	printf("%-24s %-36s %-24s %s\n", jstr(c, "id"), jstr(c, "tenant"),
	    jstr(c, "app"), jstr(c, "key_uri"));
}

/* customer_line() from a page read by pagescan. */
static const char *const customer_keys[] = { "id", "tenant", "app",
	"key_uri" };

static void
customer_fast_line(const struct pscan_row *r)
{
#define F(i)	r->v[i] != NULL ? r->len[i] : 1, r->v[i] != NULL ? r->v[i] : "-"
	printf("%-24.*s %-36.*s %-24.*s %.*s\n", F(0), F(1), F(2), F(3));
#undef F
}

static const struct fast_rows customer_fast = { customer_keys, 4,
	customer_fast_line };

static void
move_line(json_t *m)
{
	char when[32] = "-";
	time_t t = (time_t)json_integer_value(json_object_get(m, "time"));
	struct tm tm;

	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-8lld %-20s %-24s %-6s %s -> %s (%s: %s)\n",
	    (long long)json_integer_value(json_object_get(m, "id")), when,
	    jstr(m, "customer"), jstr(m, "op"), jstr(m, "from"), jstr(m, "to"),
	    jstr(m, "actor"), jstr(m, "reason"));
}

/* --- customer import ------------------------------------------------ */

#define IMPORT_BATCH		250	/* customers per request by default */
#define IMPORT_BATCH_MAX	1000	/* the agent's limit per request */
/* A request's customers: one frame less its header and the envelope. */
#define IMPORT_REQ_BYTES	(XW_PAYLOAD_MAX - XW_FIELD_HDR - 256)
#define IMPORT_ERRORS_SHOWN	20
/* A customer's result in the reply, past its id, at most: the agent
 * cuts a long refusal to ~100 bytes when the reply is tight. */
#define IMPORT_RESULT_BYTES	200

struct import {
	const char	*file;
	json_t		*batch;		/* customers of the request */
	long		*lines;		/* their line numbers */
	size_t		 bytes;		/* of the batch's JSON */
	size_t		 rbytes;	/* of its results at most */
	long		 total, done, n[3];	/* assigned, already, refused */
	int		 tty;
	/* The request sent before, its reply not read yet: the agent
	 * starts on the next while this side reads the file. */
	json_t		*sent;
	long		*sent_lines;
	uint32_t	 sent_id;
};

static const char *const import_status[] = { "assigned", "already",
	"refused" };

static void
import_progress(struct import *im, int last)
{
	if (!im->tty)
		return;
	fprintf(stderr, "\r%ld/%ld customers: %ld assigned, %ld already, "
	    "%ld refused%s", im->done, im->total, im->n[0], im->n[1], im->n[2],
	    last ? "\n" : "");
}

/* Read the reply to the request sent ahead and report each result;
 * an exit code. */
static int
import_collect(struct import *im)
{
	json_t *r, *res, *v, *batch = im->sent;
	const char *st, *id;
	long *lines = im->sent_lines;
	size_t i, n = json_array_size(batch);
	int rc, k;

	if (batch == NULL)
		return EXIT_OK;
	im->sent = NULL;
	last_err[0] = '\0';
	if ((rc = reply_ahead(im->sent_id, &r)) != EXIT_OK) {
		if (strstr(last_err, "unknown admin command") != NULL) {
			fprintf(stderr, "xtcmkctl: this xtcmkd does not have "
			    "customer.import: run a newer agent\n");
			goto out;
		}
		if (strstr(last_err, "would not fit") != NULL)
			fprintf(stderr, "xtcmkctl: the agent's answer to %zu "
			    "customers would not fit one reply: use a smaller "
			    "--batch\n", n);
		fprintf(stderr, "xtcmkctl: %s: stopped at line %ld; the "
		    "customers before it are done: run the same import again "
		    "to go on (customers already there answer \"already\")\n",
		    im->file, lines[0]);
		goto out;
	}
	res = json_object_get(r, "results");
	if (json_array_size(res) != n) {
		fprintf(stderr, "xtcmkctl: the agent answered %zu results for "
		    "%zu customers (lines %ld-%ld); run the same import again\n",
		    json_array_size(res), n, lines[0], lines[n - 1]);
		json_decref(r);
		rc = EXIT_FAIL;
		goto out;
	}
	json_array_foreach(res, i, v) {
		id = json_string_value(json_object_get(json_array_get(
		    batch, i), "id"));
		st = json_string_value(json_object_get(v, "status"));
		for (k = 0; k < 3 && st != NULL; k++)
			if (strcmp(st, import_status[k]) == 0)
				break;
		if (st == NULL || k == 3 || strcmp(id, jstr(v, "customer")) !=
		    0) {
			fprintf(stderr, "xtcmkctl: line %ld: the agent's result "
			    "is not about customer %s or has no known status\n",
			    lines[i], id);
			json_decref(r);
			rc = EXIT_FAIL;
			goto out;
		}
		im->n[k]++;
		im->done++;
		if (opt_json) {
			json_object_set_new(v, "line",
			    json_integer(lines[i]));
			fputs(im->done == 1 ? "{\"results\": [\n" : ",\n",
			    stdout);
			json_dumpf(v, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		} else if (k < 2)
			printf("%ld %s %s %s\n", lines[i], id, st,
			    jstr(v, "app"));
		else
			printf("%ld %s refused: %s\n", lines[i], id,
			    jstr(v, "error"));
	}
	json_decref(r);
	import_progress(im, 0);
out:
	json_decref(batch);
	return rc;
}

/*
 * Send the batch ahead, then read the reply to the one sent before (so
 * the agent always has the next batch waiting); an exit code.  After a
 * failed reply the batch sent meanwhile is still read and reported by
 * import_collect, so whatever the agent imported is reported.
 */
static int
import_send(struct import *im)
{
	json_t *req;
	uint32_t id = 0;
	long *t;
	int rc = EXIT_OK, rc2;

	if (json_array_size(im->batch) > 0) {
		req = json_pack("{s:s, s:O}", "cmd", "customer.import",
		    "customers", im->batch);
		rc = req != NULL ? send_ahead(req, &id) : EXIT_FAIL;
		json_decref(req);
	}
	/* The reply to the batch before this one. */
	if (im->sent != NULL && (rc2 = import_collect(im)) != EXIT_OK &&
	    rc == EXIT_OK)
		rc = rc2;
	if (json_array_size(im->batch) == 0)
		return rc;
	if (rc != EXIT_OK && conn.fd == -1)
		return rc;		/* not sent */
	im->sent = im->batch;
	im->sent_id = id;
	t = im->sent_lines;
	im->sent_lines = im->lines;
	im->lines = t;
	im->batch = json_array();
	im->bytes = 0;
	im->rbytes = 0;
	return rc;
}

/*
 * Read the whole file once to check every line (nothing is sent if one
 * is wrong; each error names its line), spooling standard input to a
 * temporary file so it can be read again; *ret_f is the file to send
 * from, rewound.
 */
static int
import_check(const char *path, FILE **ret_f, long *ret_n)
{
	struct imp_reader *rd;
	struct xerr e;
	struct stat sb;
	json_t *c;
	FILE *f, *tmp;
	char buf[8192];
	size_t got;
	long line, bad = 0, n = 0;
	int rc;

	if (strcmp(path, "-") == 0)
		f = stdin;
	else if ((f = fopen(path, "re")) == NULL) {
		fprintf(stderr, "xtcmkctl: %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	if (fstat(fileno(f), &sb) == -1 || !S_ISREG(sb.st_mode)) {
		if ((tmp = tmpfile()) == NULL) {
			fprintf(stderr, "xtcmkctl: temporary file: %s\n",
			    strerror(errno));
			if (f != stdin)
				fclose(f);
			return EXIT_FAIL;
		}
		while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, got, tmp);
		if (f != stdin)
			fclose(f);
		f = tmp;
		rewind(f);
	}
	if ((rc = imp_open(f, &rd, &e)) < 0) {
		fprintf(stderr, "xtcmkctl: %s: %s\n", path, e.msg);
		fclose(f);
		return EXIT_INVALID;
	}
	while ((rc = imp_next(rd, &c, &line, &e)) != 0) {
		if (rc > 0) {
			json_decref(c);
			n++;
			continue;
		}
		if (++bad <= IMPORT_ERRORS_SHOWN)
			fprintf(stderr, "xtcmkctl: %s: %s\n", path, e.msg);
		if (strstr(e.msg, "longer than") != NULL)
			break;
	}
	imp_free(rd);
	if (bad > 0) {
		if (bad > IMPORT_ERRORS_SHOWN)
			fprintf(stderr, "xtcmkctl: %s: %ld more line(s) with "
			    "errors\n", path, bad - IMPORT_ERRORS_SHOWN);
		fprintf(stderr, "xtcmkctl: %s: %ld line(s) to fix; nothing was "
		    "sent\n", path, bad);
		fclose(f);
		return EXIT_INVALID;
	}
	rewind(f);
	*ret_f = f;
	*ret_n = n;
	return EXIT_OK;
}

static int
cmd_import(const char *path, const char *batch_opt)
{
	struct imp_reader *rd = NULL;
	struct import im;
	struct xerr e;
	json_t *c;
	FILE *f;
	char *end, *t;
	long line, batch = IMPORT_BATCH;
	size_t len, rlen;
	int rc, rc2;

	if (batch_opt != NULL) {
		errno = 0;
		batch = strtol(batch_opt, &end, 10);
		if (errno != 0 || *end != '\0' || batch < 1 ||
		    batch > IMPORT_BATCH_MAX) {
			fprintf(stderr, "xtcmkctl: --batch takes 1 to %d, not "
			    "'%s'\n", IMPORT_BATCH_MAX, batch_opt);
			return EXIT_USAGE;
		}
	}
	memset(&im, 0, sizeof(im));
	im.file = path;
	im.tty = isatty(STDERR_FILENO);
	if ((rc = import_check(path, &f, &im.total)) != EXIT_OK)
		return rc;
	if ((im.lines = calloc((size_t)batch, sizeof(*im.lines))) == NULL ||
	    (im.sent_lines = calloc((size_t)batch,
	    sizeof(*im.sent_lines))) == NULL || imp_open(f, &rd, &e) < 0) {
		free(im.lines);
		free(im.sent_lines);
		fclose(f);
		return EXIT_FAIL;
	}
	im.batch = json_array();
	while ((rc = imp_next(rd, &c, &line, &e)) > 0) {
		t = json_dumps(c, JSON_COMPACT);
		len = t != NULL ? strlen(t) + 1 : IMPORT_REQ_BYTES;
		free(t);
		rlen = strlen(json_string_value(json_object_get(c, "id"))) +
		    IMPORT_RESULT_BYTES;
		/* Both the request and its reply must fit a frame. */
		if ((json_array_size(im.batch) == (size_t)batch ||
		    im.bytes + len > IMPORT_REQ_BYTES ||
		    im.rbytes + rlen > IMPORT_REQ_BYTES) &&
		    (rc = import_send(&im)) != EXIT_OK) {
			json_decref(c);
			break;
		}
		im.lines[json_array_size(im.batch)] = line;
		json_array_append_new(im.batch, c);
		im.bytes += len;
		im.rbytes += rlen;
	}
	if (rc < 0) {
		/* The file changed between the two readings. */
		fprintf(stderr, "xtcmkctl: %s: %s\n", path, e.msg);
		rc = EXIT_INVALID;
	} else if (rc == 0)
		rc = import_send(&im);
	/* The last reply (after a failure too: what was sent is reported). */
	if (im.sent != NULL && (rc2 = import_collect(&im)) != EXIT_OK &&
	    rc == EXIT_OK)
		rc = rc2;
	imp_free(rd);
	fclose(f);
	json_decref(im.batch);
	free(im.lines);
	free(im.sent_lines);
	import_progress(&im, 1);
	if (rc != EXIT_OK)
		return rc;
	if (opt_json)
		printf("%s\n], \"assigned\": %ld, \"already\": %ld, "
		    "\"refused\": %ld}\n", im.done == 0 ?
		    "{\"results\": [" : "", im.n[0], im.n[1], im.n[2]);
	else
		printf("%s: %ld customer(s): %ld assigned, %ld already there, "
		    "%ld refused\n", path, im.done, im.n[0], im.n[1], im.n[2]);
	return im.n[2] > 0 ? EXIT_REFUSED : EXIT_OK;
}

static int
cmd_customer(int argc, char **argv)
{
	static const char *const allowed[] = { "--tenant", "--key-uri",
	    "--auth", "--kind", "--label", "--to", "--reason", "--limit",
	    "--after", "--batch", NULL };
	char *pos[CTL_ARGS_MAX];
	struct kv opts[CTL_ARGS_MAX];
	struct page_opt po;
	json_t *labels = json_object(), *req, *r;
	const char *kinds;
	int npos, nopts, rc;

	if (parse_opts(argc, argv, allowed, pos, &npos, opts, &nopts,
	    labels) < 0 || npos < 1) {
		json_decref(labels);
		return EXIT_USAGE;
	}
	if (strcmp(pos[0], "add") == 0 && npos == 2) {
		if (need(opt(opts, nopts, "--tenant"), "--tenant") < 0 ||
		    need(opt(opts, nopts, "--key-uri"), "--key-uri") < 0) {
			json_decref(labels);
			return EXIT_USAGE;
		}
		kinds = opt(opts, nopts, "--kind");
		req = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:o, s:o}}",
		    "cmd", "customer.add", "customer", "id", pos[1],
		    "tenant", opt(opts, nopts, "--tenant"),
		    "key_uri", opt(opts, nopts, "--key-uri"),
		    "vault_auth", opt(opts, nopts, "--auth") ?
		    opt(opts, nopts, "--auth") : "rbac",
		    "kinds", split_kinds(kinds ? kinds : "host"),
		    "labels", labels);
		rc = call(req, &r);
		json_decref(req);
		if (rc != EXIT_OK)
			return rc;
		if (opt_json)
			print_json(r);
		else if (json_is_true(json_object_get(r, "already")))
			printf("customer %s already assigned to application "
			    "%s (same tenant, key, vault auth, kinds and "
			    "labels)\n", jstr(r, "customer"), jstr(r, "app"));
		else {
			printf("customer %s assigned to application %s\n",
			    jstr(r, "customer"), jstr(r, "app"));
			printf("  federated workloads: ");
			print_list(json_object_get(r, "federate"), ", ");
			printf("\n  reason: %s\n  policy: %.12s\n",
			    jstr(r, "reason"), jstr(r, "policy_hash"));
		}
		json_decref(r);
		return EXIT_OK;
	}
	json_decref(labels);
	if (strcmp(pos[0], "import") == 0 && npos == 2)
		return cmd_import(pos[1], opt(opts, nopts, "--batch"));
	if (strcmp(pos[0], "list") == 0 && npos == 1)
		return page_opts(opts, nopts, 0, &po) < 0 ? EXIT_USAGE :
		    print_list_cmd("customer.list", NULL, &po,
		    "CUSTOMER                 TENANT                               "
		    "APPLICATION              KEY\n", customer_line,
		    &customer_fast);
	if (strcmp(pos[0], "moves") == 0 && npos <= 2) {
		if (page_opts(opts, nopts, 1, &po) < 0)
			return EXIT_USAGE;
		req = npos == 2 ? json_pack("{s:s}", "customer", pos[1]) :
		    NULL;
		rc = print_list_cmd("customer.moves", req, &po,
		    "ID       TIME                 CUSTOMER                 OP     "
		    "FROM -> TO (ACTOR: REASON)\n", move_line, NULL);
		json_decref(req);
		return rc;
	}
	if (strcmp(pos[0], "show") == 0 && npos == 2) {
		req = json_pack("{s:s, s:s}", "cmd", "customer.show", "id",
		    pos[1]);
		rc = call(req, &r);
		json_decref(req);
		if (rc != EXIT_OK)
			return rc;
		if (opt_json)
			print_json(r);
		else if (json_object_get(r, "decision") != NULL)
			print_decision(json_object_get(r, "decision"));
		else
			printf("customer %s: decisions refused: %s\n", pos[1],
			    jstr(r, "decision_error"));
		json_decref(r);
		return EXIT_OK;
	}
	if (strcmp(pos[0], "move") == 0 && npos == 2) {
		if (need(opt(opts, nopts, "--to"), "--to APP") < 0 ||
		    need(opt(opts, nopts, "--reason"), "--reason TEXT") < 0)
			return EXIT_USAGE;
		return simple(json_pack("{s:s, s:s, s:s, s:s}", "cmd",
		    "customer.move", "id", pos[1], "to",
		    opt(opts, nopts, "--to"), "reason",
		    opt(opts, nopts, "--reason")), "customer moved: the "
		    "customer must consent to the new application and grant "
		    "it access to the key (see `xtcmkctl customer kit`)");
	}
	if (strcmp(pos[0], "check") == 0 && npos == 2) {
		/* Each step of the path a wrap takes, printed as it went. */
		req = json_pack("{s:s, s:s}", "cmd", "customer.check", "id",
		    pos[1]);
		rc = call(req, &r);
		json_decref(req);
		if (rc != EXIT_OK)
			return rc;
		if (opt_json)
			print_json(r);
		else
			printf("%s", jstr(r, "text"));
		rc = json_is_true(json_object_get(r, "ok")) ? EXIT_OK :
		    EXIT_FAIL;
		json_decref(r);
		return rc;
	}
	if (strcmp(pos[0], "remove") == 0 && npos == 2)
		return simple(json_pack("{s:s, s:s}", "cmd", "customer.remove",
		    "id", pos[1]), "customer removed");
	return EXIT_USAGE;
}

static int
cmd_decide(int argc, char **argv)
{
	json_t *req, *r;
	int rc;

	if (argc != 1)
		return EXIT_USAGE;
	req = json_pack("{s:s, s:s}", "cmd", "decide", "id", argv[0]);
	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	if (opt_json)
		print_json(r);
	else
		print_decision(r);
	json_decref(r);
	return EXIT_OK;
}

/* The registry backend's part of `status` (xtcmk-fleet(7)). */
static void
print_backend(json_t *b)
{
	json_t *c = json_object_get(b, "counters");

	if (strcmp(jstr(b, "backend"), "etcd") != 0) {
		printf("registry   %s\n", jstr(b, "backend"));
		return;
	}
	printf("registry   etcd %s under %s\n"
	    "           revision %lld of %lld, lag %lld, etcd %s\n"
	    "           %lld txns, %lld lost races, %lld re-decisions, "
	    "%lld refused, %lld resyncs\n",
	    jstr(b, "endpoints"), jstr(b, "prefix"),
	    (long long)json_integer_value(json_object_get(b, "revision")),
	    (long long)json_integer_value(json_object_get(b, "etcd_revision")),
	    (long long)json_integer_value(json_object_get(b, "lag")),
	    json_is_true(json_object_get(b, "etcd_reachable")) ? "reachable" :
	    "UNREACHABLE",
	    (long long)json_integer_value(json_object_get(c, "txns")),
	    (long long)json_integer_value(json_object_get(c, "conflicts")),
	    (long long)json_integer_value(json_object_get(c, "retries")),
	    (long long)json_integer_value(json_object_get(c, "refused")),
	    (long long)json_integer_value(json_object_get(c, "resyncs")));
	if (json_is_string(json_object_get(b, "last_error")))
		printf("           last error: %s\n", jstr(b, "last_error"));
}

static int
cmd_status(void)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *r, *p;
	int rc;

	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	if (opt_json)
		print_json(r);
	else {
		p = json_object_get(r, "policy");
		printf("%s, pid %lld, up %llds, CPU %.2fs\n", jstr(r, "agent"),
		    (long long)json_integer_value(json_object_get(r, "pid")),
		    (long long)json_integer_value(json_object_get(r,
		    "uptime")), json_real_value(json_object_get(r,
		    "cpu_seconds")));
		printf("workload   %s\nsocket     %s\nstate      %s\n"
		    "providers  %s\n", jstr(r, "workload"), jstr(r, "socket"),
		    jstr(r, "state_dir"), jstr(r, "providers"));
		printf("policies   %s (%.12s): %s, %s, %s\n", jstr(p, "dir"),
		    jstr(p, "hash"), jstr(p, "partition"), jstr(p, "role"),
		    jstr(p, "versioning"));
		print_backend(json_object_get(r, "registry_backend"));
	}
	json_decref(r);
	return EXIT_OK;
}

static int
cmd_check(void)
{
	json_t *req = json_pack("{s:s}", "cmd", "check"), *r, *v;
	size_t i;
	int rc, good;

	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	good = json_is_true(json_object_get(r, "ok"));
	if (opt_json)
		print_json(r);
	else {
		printf("registry: %s\n", good ? "consistent" : "PROBLEMS");
		json_array_foreach(json_object_get(r, "problems"), i, v)
			printf("  %s\n", json_string_value(v));
		if (json_integer_value(json_object_get(r, "problems_total")) >
		    (json_int_t)json_array_size(json_object_get(r, "problems")))
			printf("  ... %lld problems in all\n", (long long)
			    json_integer_value(json_object_get(r,
			    "problems_total")));
	}
	json_decref(r);
	return good ? EXIT_OK : EXIT_CONFLICT;
}

static long long
jint(json_t *o, const char *path)
{
	char buf[128], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok != NULL && o != NULL;
	    tok = strtok_r(NULL, ".", &save))
		o = json_object_get(o, tok);
	return (long long)json_integer_value(o);
}

static int
cmd_stats(void)
{
	json_t *req = json_pack("{s:s}", "cmd", "stats"), *r;
	int rc;

	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	if (opt_json) {
		print_json(r);
		json_decref(r);
		return EXIT_OK;
	}
	printf("requests      hello %lld, decide %lld, dek_new %lld, "
	    "dek_unwrap %lld, admin %lld; errors %lld\n",
	    jint(r, "requests.hello"), jint(r, "requests.decide"),
	    jint(r, "requests.dek_new"), jint(r, "requests.dek_unwrap"),
	    jint(r, "requests.admin"), jint(r, "errors"));
	printf("decisions     cache hits %lld, misses %lld, entries %lld; "
	    "policy calls %lld, refusals %lld, reloads %lld (%lld refused)\n",
	    jint(r, "decision_cache.hits"), jint(r, "decision_cache.misses"),
	    jint(r, "decision_cache.entries"), jint(r, "policy.calls"),
	    jint(r, "policy.refusals"), jint(r, "policy.reloads"),
	    jint(r, "policy.reloads_refused"));
	if (json_is_true(json_object_get(json_object_get(r, "memcache"),
	    "enabled")))
		printf("fast path     %s: generation %lld, published %lld, "
		    "unchanged %lld, too large %lld, chain full %lld, "
		    "invalidations %lld, key events %lld\n",
		    json_string_value(json_object_get(json_object_get(r,
		    "memcache"), "path")), jint(r, "memcache.generation"),
		    jint(r, "memcache.published"), jint(r, "memcache.unchanged"),
		    jint(r, "memcache.oversize"), jint(r, "memcache.full"),
		    jint(r, "memcache.invalidations"),
		    jint(r, "memcache.key_events"));
	else
		printf("fast path     off (memcache = none)\n");
	printf("connections   open %lld, total %lld, refused %lld\n",
	    jint(r, "connections.open"), jint(r, "connections.total"),
	    jint(r, "connections.refused"));
	printf("key provider  get %lld, wrap %lld, unwrap %lld; errors %lld\n",
	    jint(r, "keys.provider_calls.get"),
	    jint(r, "keys.provider_calls.wrap"),
	    jint(r, "keys.provider_calls.unwrap"),
	    jint(r, "keys.provider_calls.errors"));
	printf("DEK cache     %lld of %lld entries, hits %lld, misses %lld, "
	    "loads %lld, evictions %lld, expired %lld, %s (%lld bytes)\n",
	    jint(r, "keys.dek_cache.entries"),
	    jint(r, "keys.dek_cache.capacity"), jint(r, "keys.dek_cache.hits"),
	    jint(r, "keys.dek_cache.misses"), jint(r, "keys.dek_cache.loads"),
	    jint(r, "keys.dek_cache.evictions"),
	    jint(r, "keys.dek_cache.expired"),
	    json_is_true(json_object_get(json_object_get(json_object_get(r,
	    "keys"), "dek_cache"), "locked")) ? "locked in memory" :
	    "NOT locked (raise RLIMIT_MEMLOCK)",
	    jint(r, "keys.dek_cache.locked_bytes"));
	printf("revocation    %lld customers active, %lld revoked now; "
	    "%lld revocations, %lld restores, %lld key checks\n",
	    jint(r, "keys.customers"), jint(r, "keys.revoked"),
	    jint(r, "keys.revocations"), jint(r, "keys.restores"),
	    jint(r, "keys.checks"));
	printf("decision log  %lld written, %lld dropped\n",
	    jint(r, "decision_log.written"), jint(r, "decision_log.dropped"));
	json_decref(r);
	return EXIT_OK;
}

/* --- offline policy commands ---------------------------------------- */

static int
offline_config(struct config **ret_cfg)
{
	struct xerr e;
	const char *path = opt_config;

	if (path == NULL && access(XTCMK_SYSCONFDIR "/xtcmk.conf", F_OK) == 0)
		path = XTCMK_SYSCONFDIR "/xtcmk.conf";
	if (config_load(path, ret_cfg, &e) < 0) {
		ctl_err(e.code, "%s", e.msg);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int
cmd_policy(int argc, char **argv)
{
	struct config *cfg;
	struct policy_set *set;
	struct xerr e;
	const char *dir, *worker;
	int rc, i;

	if (argc < 1)
		return EXIT_USAGE;
	if ((rc = offline_config(&cfg)) != EXIT_OK)
		return rc;
	dir = cfg->policy_dir;
	/* Policies run in a confined policy worker, as in the agent. */
	worker = strcmp(cfg->policy_isolation, "inprocess") == 0 ? NULL :
	    cfg->policy_worker;
	if (strcmp(argv[0], "check") == 0 && argc <= 2) {
		if (argc == 2)
			dir = argv[1];
		rc = policy_check_offline(dir, cfg->lua_dir, cfg->params,
		    &cfg->limits, worker, &set, &e);
		if (rc < 0)
			ctl_err(XTCMK_E_POLICY, "policy set %s refused: %s",
			    dir, e.msg);
		else {
			if (opt_json)
				printf("{\"ok\": true, \"dir\": \"%s\", "
				    "\"hash\": \"%s\"}\n", dir,
				    policy_set_hash(set));
			else
				printf("policy set %s: ok (hash %.12s; "
				    "partition %s, role %s, versioning %s)\n",
				    dir, policy_set_hash(set),
				    policy_set_name(set, POLICY_PARTITION),
				    policy_set_name(set, POLICY_ROLE),
				    policy_set_name(set, POLICY_VERSIONING));
			policy_set_unref(set);
		}
		config_free(cfg);
		return rc < 0 ? EXIT_POLICY : EXIT_OK;
	}
	if (strcmp(argv[0], "test") == 0) {
		int host_params = 0;

		/* Fixtures are self-contained: the host's [params] only
		 * when asked (--host-params). */
		for (i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--host-params") == 0)
				host_params = 1;
			else if (strcmp(argv[i], "--dir") == 0 &&
			    i + 1 < argc)
				dir = argv[++i];
			else
				break;
		}
		if (i >= argc) {
			config_free(cfg);
			ctl_err(XTCMK_E_INVAL, "policy test needs fixture "
			    "files");
			return EXIT_USAGE;
		}
		rc = policy_run_fixtures(dir, cfg->lua_dir, host_params ?
		    cfg->params : NULL, &cfg->limits, worker, argv + i,
		    argc - i, opt_json, stdout, &e);
		if (rc < 0)
			ctl_err(XTCMK_E_POLICY, "policy set %s refused: %s",
			    dir, e.msg);
		config_free(cfg);
		return rc == 0 ? EXIT_OK : EXIT_POLICY;
	}
	config_free(cfg);
	return EXIT_USAGE;
}

static void
key_line(json_t *k)
{
	printf("%-48s %-34s %-8s %8lld%s\n", jstr(k, "key"),
	    jstr(k, "current"), json_is_true(json_object_get(k, "enabled")) ?
	    "enabled" : "disabled",
	    (long long)json_integer_value(json_object_get(k, "versions")),
	    json_is_true(json_object_get(k, "deleted")) ? " (deleted)" : "");
}

static int
cmd_key(int argc, char **argv)
{
	static const char *const allowed[] = { "--bits", "--limit", "--after",
	    NULL };
	char *pos[CTL_ARGS_MAX];
	struct kv opts[CTL_ARGS_MAX];
	struct page_opt po;
	json_t *labels = json_object(), *req, *r;
	char cmd[32];
	int npos, nopts, rc;

	rc = parse_opts(argc, argv, allowed, pos, &npos, opts, &nopts, labels);
	json_decref(labels);
	if (rc < 0 || npos < 1 || npos > 2)
		return EXIT_USAGE;
	if (strcmp(pos[0], "list") == 0 && npos == 1)
		return page_opts(opts, nopts, 0, &po) < 0 ? EXIT_USAGE :
		    print_list_cmd("key.list", NULL, &po,
		    "KEY (VAULT/NAME)                                 CURRENT "
		    "VERSION                  STATE    VERSIONS\n", key_line,
		    NULL);
	snprintf(cmd, sizeof(cmd), "key.%s", pos[0]);
	req = json_pack("{s:s}", "cmd", cmd);
	if (npos == 2)
		json_object_set_new(req, strcmp(pos[0], "status") == 0 ?
		    "customer" : "uri", json_string(pos[1]));
	if (opt(opts, nopts, "--bits") != NULL)
		json_object_set_new(req, "bits",
		    json_integer(atoi(opt(opts, nopts, "--bits"))));
	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	if (opt_json || json_object_get(r, "text") == NULL)
		print_json(r);
	else
		printf("%s", json_string_value(json_object_get(r, "text")));
	json_decref(r);
	return EXIT_OK;
}

/*
 * registry export: every line of the agent's registry (its SQLite file or
 * its fleet mirror) as JSON, one per line; registry import [FILE]: such
 * lines (FILE or stdin) into the agent's registry backend, in requests
 * of at most REGISTRY_IMPORT_BATCH lines.
 */
#define REGISTRY_IMPORT_BATCH	100
#define REGISTRY_LINE_MAX	(64 * 1024)

static int
registry_send(json_t *lines, long *added, long *already, long *bad,
    long first)
{
	json_t *req = json_pack("{s:s, s:O}", "cmd", "registry.import",
	    "lines", lines), *r, *er;
	size_t i;
	int rc;

	rc = call(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return rc;
	*added += (long)json_integer_value(json_object_get(r, "added"));
	*already += (long)json_integer_value(json_object_get(r, "already"));
	json_array_foreach(json_object_get(r, "errors"), i, er) {
		fprintf(stderr, "xtcmkctl: line %lld: %s\n", (long long)first +
		    json_integer_value(json_object_get(er, "line")) + 1,
		    jstr(er, "error"));
		(*bad)++;
	}
	json_decref(r);
	json_array_clear(lines);
	return EXIT_OK;
}

static int
cmd_registry(int argc, char **argv)
{
	json_t *req, *r, *l, *lines, *next = NULL;
	long added = 0, already = 0, bad = 0, lineno = 0, first = 0;
	char *buf = NULL;
	size_t cap = 0, i;
	ssize_t n;
	FILE *in;
	int rc = EXIT_OK;

	if (argc == 1 && strcmp(argv[0], "export") == 0) {
		for (;;) {
			req = json_pack("{s:s}", "cmd", "registry.export");
			if (req != NULL && next != NULL)
				json_object_update(req, next);
			if ((rc = call(req, &r)) != EXIT_OK) {
				json_decref(req);
				json_decref(next);
				return rc;
			}
			json_decref(req);
			json_array_foreach(json_object_get(r, "lines"), i, l) {
				json_dumpf(l, stdout, JSON_COMPACT |
				    JSON_SORT_KEYS);
				fputc('\n', stdout);
			}
			json_decref(next);
			next = json_incref(json_object_get(r, "next"));
			json_decref(r);
			if (!json_is_object(next))
				break;
		}
		json_decref(next);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}
	if ((argc != 1 && argc != 2) || strcmp(argv[0], "import") != 0)
		return EXIT_USAGE;
	if (argc == 2 && (in = fopen(argv[1], "re")) == NULL) {
		fprintf(stderr, "xtcmkctl: %s: %s\n", argv[1], strerror(errno));
		return EXIT_FAIL;
	}
	if (argc == 1)
		in = stdin;
	lines = json_array();
	while ((n = getline(&buf, &cap, in)) != -1) {
		lineno++;
		if (n > REGISTRY_LINE_MAX || (l = json_loads(buf, 0,
		    NULL)) == NULL || !json_is_object(l)) {
			fprintf(stderr, "xtcmkctl: line %ld: not a JSON object "
			    "of at most %d bytes (see `xtcmkctl registry "
			    "export`)\n", lineno, REGISTRY_LINE_MAX);
			rc = EXIT_FAIL;
			break;
		}
		if (json_array_size(lines) == 0)
			first = lineno - 1;
		json_array_append_new(lines, l);
		if (json_array_size(lines) == REGISTRY_IMPORT_BATCH &&
		    (rc = registry_send(lines, &added, &already, &bad,
		    first)) != EXIT_OK)
			break;
	}
	if (rc == EXIT_OK && json_array_size(lines) > 0)
		rc = registry_send(lines, &added, &already, &bad, first);
	free(buf);
	json_decref(lines);
	if (in != stdin)
		fclose(in);
	if (rc == EXIT_OK)
		printf("%ld added, %ld already there, %ld refused\n", added,
		    already, bad);
	return rc != EXIT_OK ? rc : bad > 0 ? EXIT_FAIL : EXIT_OK;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct onb_io io = { call, call_quiet, call_list, exit_for, 0 };
	const char *cmd;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "+jc:s:hV", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'j':
			opt_json = 1;
			break;
		case 's':
			opt_socket = optarg;
			break;
		case 'c':
			opt_config = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("xtcmkctl %s\n", XTCMK_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[0];
	argc--;
	argv++;
	io.json = opt_json;
	/* `xtcmkctl COMMAND [...] --help`: that command's usage. */
	for (ch = 0; ch < argc; ch++)
		if (strcmp(argv[ch], "--help") == 0 ||
		    strcmp(argv[ch], "-h") == 0) {
			if (usage_cmd(stdout, cmd))
				return EXIT_OK;
			ctl_err(XTCMK_E_INVAL, "unknown command '%s'", cmd);
			usage(stderr);
			return EXIT_USAGE;
		}
	if ((rc = onb_main(&io, cmd, argc, argv)) >= 0)
		;
	else if (strcmp(cmd, "status") == 0 && argc == 0)
		rc = cmd_status();
	else if (strcmp(cmd, "stats") == 0 && argc == 0)
		rc = cmd_stats();
	else if (strcmp(cmd, "reload") == 0 && argc == 0)
		rc = simple(json_pack("{s:s}", "cmd", "reload"),
		    "policies reloaded");
	else if (strcmp(cmd, "check") == 0 && argc == 0)
		rc = cmd_check();
	else if (strcmp(cmd, "workload") == 0)
		rc = cmd_workload(argc, argv);
	else if (strcmp(cmd, "app") == 0)
		rc = cmd_app(argc, argv);
	else if (strcmp(cmd, "customer") == 0)
		rc = cmd_customer(argc, argv);
	else if (strcmp(cmd, "decide") == 0)
		rc = cmd_decide(argc, argv);
	else if (strcmp(cmd, "policy") == 0)
		rc = cmd_policy(argc, argv);
	else if (strcmp(cmd, "registry") == 0)
		rc = cmd_registry(argc, argv);
	else if (strcmp(cmd, "key") == 0)
		rc = cmd_key(argc, argv);
	else
		rc = EXIT_USAGE;
	if (rc == EXIT_USAGE) {
		if (opt_json && !err_printed)
			ctl_err(XTCMK_E_INVAL, "usage: '%s' with these "
			    "arguments is not a command (xtcmkctl %s --help)",
			    cmd, cmd);
		usage(stderr);
	}
	xc_close(&conn);
	return rc;
}
