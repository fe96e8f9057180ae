/*
 * metrics.c - Prometheus text exposition over HTTP (see metrics.h).
 *
 * Counters that exist elsewhere (xtcmkctl stats) are read from
 * service_stats() at scrape time; the histograms live here as atomics so
 * the request path pays two clock reads and three atomic adds.  Labels
 * are bounded by construction: op is a wire type, result ok or error,
 * provider local or azure; per-application FIC counts go into a
 * histogram, never one series per application.  The registry gauges come
 * from one query cached METRICS_REG_TTL_S seconds, so scraping often costs
 * nothing more.
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "provider.h"
#include "registry.h"
#include "service.h"
#include "wire.h"

#ifdef HAVE_MICROHTTPD
#include <microhttpd.h>
#endif

/* Seconds; the last bucket is +Inf. */
static const double bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define NB	(sizeof(bounds) / sizeof(bounds[0]))

struct histo {
	atomic_ullong	b[NB + 1];	/* per bucket, not cumulative */
	atomic_ullong	sum_us;
};

#define NTYPES	16
static struct histo req_h[NTYPES][2];			/* [type][error] */
static struct histo prov_h[3][MP_NOPS][2];		/* [kind][op][error] */

static const char *const type_names[NTYPES] = {
	[XW_HELLO] = "hello", [XW_PING] = "ping", [XW_DECIDE] = "decide",
	[XW_ADMIN] = "admin", [XW_DEK_NEW] = "dek_new",
	[XW_DEK_UNWRAP] = "dek_unwrap", [XW_DEK_REWRAP] = "dek_rewrap",
	[XW_KEY_STATUS] = "key_status",
};

long long
metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
observe(struct histo *h, long long usec)
{
	size_t i;

	if (usec < 0)
		usec = 0;
	for (i = 0; i < NB && (double)usec / 1e6 > bounds[i]; i++)
		;
	atomic_fetch_add(&h->b[i], 1);
	atomic_fetch_add(&h->sum_us, (unsigned long long)usec);
}

void
metrics_request(uint16_t type, int rc, long long usec)
{
	if (type < NTYPES && type_names[type] != NULL)
		observe(&req_h[type][rc < 0], usec);
}

void
metrics_provider(int provider_kind, enum metrics_pop op, int rc,
    long long usec)
{
	int k = provider_kind == PROVIDER_LOCAL ? 1 :
	    provider_kind == PROVIDER_AZURE ? 2 : 0;

	if (op >= 0 && op < MP_NOPS)
		observe(&prov_h[k][op][rc < 0], usec);
}

#ifdef HAVE_MICROHTTPD

static const char *const pop_names[MP_NOPS] = { "get", "wrap", "unwrap" };
static const char *const kind_names[3] = { "other", "local", "azure" };

struct metrics {
	struct MHD_Daemon	*d;
	struct service		*svc;
	pthread_mutex_t		 mu;		/* the registry cache */
	long long		 reg_at;	/* monotonic us, 0: never */
	int			 reg_up;
	unsigned long long	 fic_b[8];	/* apps per FIC bucket */
	unsigned long long	 apps, fics_sum, near_limit;
};

/* FICs per application: buckets up to the limit of 20. */
static const unsigned fic_bounds[] = { 0, 5, 10, 15, 18, 19, 20 };
#define NFB	(sizeof(fic_bounds) / sizeof(fic_bounds[0]))
#define FIC_NEAR_LIMIT	19

struct body {
	char	*buf;
	size_t	 len, cap;
	int	 full;
};

static void
put(struct body *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
put(struct body *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->full = 1;
		return;
	}
	b->len += (size_t)n;
}

static void
put_histo(struct body *b, const char *name, const char *labels,
    struct histo *h)
{
	unsigned long long cum = 0;
	size_t i;

	for (i = 0; i < NB; i++) {
		cum += atomic_load(&h->b[i]);
		put(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels,
		    bounds[i], cum);
	}
	cum += atomic_load(&h->b[NB]);
	put(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, cum);
	put(b, "%s_sum{%s} %.6f\n", name, labels,
	    (double)atomic_load(&h->sum_us) / 1e6);
	put(b, "%s_count{%s} %llu\n", name, labels, cum);
}

static unsigned long long
total(struct histo *h)
{
	unsigned long long n = 0;
	size_t i;

	for (i = 0; i <= NB; i++)
		n += atomic_load(&h->b[i]);
	return n;
}

static long long
jint(json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return (long long)json_integer_value(json_object_get(o, path));
}

/* The application gauges, from the registry at most every TTL. */
static void
registry_refresh(struct metrics *m)
{
	json_t *apps = NULL, *a;
	struct xerr e;
	size_t i, j;
	unsigned n;

	if (m->reg_at != 0 && metrics_now_us() - m->reg_at <
	    (long long)METRICS_REG_TTL_S * 1000000)
		return;
	m->reg_at = metrics_now_us();
	memset(m->fic_b, 0, sizeof(m->fic_b));
	m->apps = m->fics_sum = m->near_limit = 0;
	m->reg_up = reg_app_list(service_registry(m->svc), &apps, &e) == 0;
	if (!m->reg_up) {
		log_warn("metrics: registry query failed: %s", e.msg);
		return;
	}
	json_array_foreach(apps, i, a) {
		n = (unsigned)json_integer_value(json_object_get(a,
		    "fic_count"));
		for (j = 0; j < NFB && n > fic_bounds[j]; j++)
			;
		m->fic_b[j]++;
		m->apps++;
		m->fics_sum += n;
		if (n >= FIC_NEAR_LIMIT)
			m->near_limit++;
	}
	json_decref(apps);
}

static void
render(struct metrics *m, struct body *b)
{
	unsigned long long trips[3], cum;
	json_t *st = service_stats(m->svc);
	char labels[96];
	size_t t, k, o, r, i;
	unsigned ok = 0, revoked = 0, failing = 0;

	put(b, "# HELP xtcmk_up 1 while the agent serves.\n"
	    "# TYPE xtcmk_up gauge\nxtcmk_up 1\n");
	put(b, "# HELP xtcmk_build_info The agent's version.\n"
	    "# TYPE xtcmk_build_info gauge\n"
	    "xtcmk_build_info{version=\"%s\"} 1\n", XTCMK_VERSION);

	put(b, "# HELP xtcmk_requests_total Requests answered, by wire "
	    "message type and result.\n# TYPE xtcmk_requests_total counter\n");
	for (t = 0; t < NTYPES; t++)
		for (r = 0; r < 2 && type_names[t] != NULL; r++)
			put(b, "xtcmk_requests_total{op=\"%s\",result=\"%s\"} "
			    "%llu\n", type_names[t], r ? "error" : "ok",
			    total(&req_h[t][r]));
	put(b, "# HELP xtcmk_request_duration_seconds Time from a whole "
	    "request frame to its reply, by type and result.\n"
	    "# TYPE xtcmk_request_duration_seconds histogram\n");
	for (t = 0; t < NTYPES; t++)
		for (r = 0; r < 2 && type_names[t] != NULL; r++) {
			snprintf(labels, sizeof(labels), "op=\"%s\","
			    "result=\"%s\"", type_names[t], r ? "error" : "ok");
			put_histo(b, "xtcmk_request_duration_seconds", labels,
			    &req_h[t][r]);
		}

	put(b, "# HELP xtcmk_provider_calls_total Key-service calls, by "
	    "provider, operation and result.\n"
	    "# TYPE xtcmk_provider_calls_total counter\n");
	for (k = 1; k < 3; k++)
		for (o = 0; o < MP_NOPS; o++)
			for (r = 0; r < 2; r++)
				put(b, "xtcmk_provider_calls_total{provider="
				    "\"%s\",op=\"%s\",result=\"%s\"} %llu\n",
				    kind_names[k], pop_names[o], r ? "error" :
				    "ok", total(&prov_h[k][o][r]));
	put(b, "# HELP xtcmk_provider_call_duration_seconds Key-service "
	    "call latency, retries included.\n"
	    "# TYPE xtcmk_provider_call_duration_seconds histogram\n");
	for (k = 1; k < 3; k++)
		for (o = 0; o < MP_NOPS; o++)
			for (r = 0; r < 2; r++) {
				snprintf(labels, sizeof(labels), "provider="
				    "\"%s\",op=\"%s\",result=\"%s\"",
				    kind_names[k], pop_names[o], r ? "error" :
				    "ok");
				put_histo(b,
				    "xtcmk_provider_call_duration_seconds",
				    labels, &prov_h[k][o][r]);
			}

	put(b, "# HELP xtcmk_dek_cache_entries Data keys in the locked "
	    "cache.\n# TYPE xtcmk_dek_cache_entries gauge\n"
	    "xtcmk_dek_cache_entries %lld\n",
	    jint(st, "keys.dek_cache.entries"));
	put(b, "# HELP xtcmk_dek_cache_lookups_total Data-key cache "
	    "lookups by result.\n# TYPE xtcmk_dek_cache_lookups_total "
	    "counter\nxtcmk_dek_cache_lookups_total{result=\"hit\"} %lld\n"
	    "xtcmk_dek_cache_lookups_total{result=\"miss\"} %lld\n",
	    jint(st, "keys.dek_cache.hits"), jint(st, "keys.dek_cache.misses"));
	put(b, "# HELP xtcmk_decision_cache_lookups_total Decision cache "
	    "lookups by result.\n# TYPE xtcmk_decision_cache_lookups_total "
	    "counter\nxtcmk_decision_cache_lookups_total{result=\"hit\"} "
	    "%lld\nxtcmk_decision_cache_lookups_total{result=\"miss\"} "
	    "%lld\n", jint(st, "decision_cache.hits"),
	    jint(st, "decision_cache.misses"));

	keys_state_counts(service_keys(m->svc), &ok, &revoked, &failing);
	put(b, "# HELP xtcmk_customers Customers with a key state on this "
	    "agent (used since start), by state.\n"
	    "# TYPE xtcmk_customers gauge\n"
	    "xtcmk_customers{key_state=\"ok\"} %u\n"
	    "xtcmk_customers{key_state=\"revoked\"} %u\n"
	    "xtcmk_customers{key_state=\"failing\"} %u\n", ok, revoked,
	    failing);
	put(b, "# HELP xtcmk_key_revocations_total Customers that went "
	    "revoked.\n# TYPE xtcmk_key_revocations_total counter\n"
	    "xtcmk_key_revocations_total %lld\n", jint(st,
	    "keys.revocations"));

	pthread_mutex_lock(&m->mu);
	registry_refresh(m);
	put(b, "# HELP xtcmk_registry_up 1 when the last registry query "
	    "succeeded.\n# TYPE xtcmk_registry_up gauge\n"
	    "xtcmk_registry_up %d\n", m->reg_up);
	put(b, "# HELP xtcmk_app_fics Federated credentials per "
	    "application (limit 20).\n# TYPE xtcmk_app_fics histogram\n");
	for (i = 0, cum = 0; i < NFB; i++) {
		cum += m->fic_b[i];
		put(b, "xtcmk_app_fics_bucket{le=\"%u\"} %llu\n",
		    fic_bounds[i], cum);
	}
	put(b, "xtcmk_app_fics_bucket{le=\"+Inf\"} %llu\n"
	    "xtcmk_app_fics_sum %llu\nxtcmk_app_fics_count %llu\n",
	    m->apps, m->fics_sum, m->apps);
	put(b, "# HELP xtcmk_apps_near_fic_limit Applications with 19 or 20 "
	    "federated credentials.\n"
	    "# TYPE xtcmk_apps_near_fic_limit gauge\n"
	    "xtcmk_apps_near_fic_limit %llu\n", m->near_limit);
	pthread_mutex_unlock(&m->mu);

	policy_trip_counts(trips);
	put(b, "# HELP xtcmk_policy_calls_total Policy calls.\n"
	    "# TYPE xtcmk_policy_calls_total counter\n"
	    "xtcmk_policy_calls_total %lld\n"
	    "# HELP xtcmk_policy_refusals_total Policy calls that failed or "
	    "whose result the agent refused.\n"
	    "# TYPE xtcmk_policy_refusals_total counter\n"
	    "xtcmk_policy_refusals_total %lld\n",
	    jint(st, "policy.calls"), jint(st, "policy.refusals"));
	put(b, "# HELP xtcmk_policy_limit_kills_total Policy calls stopped "
	    "by a sandbox limit.\n"
	    "# TYPE xtcmk_policy_limit_kills_total counter\n"
	    "xtcmk_policy_limit_kills_total{limit=\"instructions\"} %llu\n"
	    "xtcmk_policy_limit_kills_total{limit=\"time\"} %llu\n"
	    "xtcmk_policy_limit_kills_total{limit=\"memory\"} %llu\n",
	    trips[0], trips[1], trips[2]);
	put(b, "# HELP xtcmk_reloads_total Reloads by result.\n"
	    "# TYPE xtcmk_reloads_total counter\n"
	    "xtcmk_reloads_total{result=\"ok\"} %lld\n"
	    "xtcmk_reloads_total{result=\"refused\"} %lld\n",
	    jint(st, "policy.reloads"), jint(st, "policy.reloads_refused"));
	put(b, "# HELP xtcmk_decision_log_lines_total Decision-log lines "
	    "by outcome.\n# TYPE xtcmk_decision_log_lines_total counter\n"
	    "xtcmk_decision_log_lines_total{outcome=\"written\"} %lld\n"
	    "xtcmk_decision_log_lines_total{outcome=\"dropped\"} %lld\n",
	    jint(st, "decision_log.written"), jint(st, "decision_log.dropped"));
	put(b, "# HELP xtcmk_connections_open Open client connections.\n"
	    "# TYPE xtcmk_connections_open gauge\n"
	    "xtcmk_connections_open %lld\n"
	    "# HELP xtcmk_connections_refused_total Connections refused by "
	    "[access] or a limit.\n"
	    "# TYPE xtcmk_connections_refused_total counter\n"
	    "xtcmk_connections_refused_total %lld\n",
	    jint(st, "connections.open"), jint(st, "connections.refused"));
	json_decref(st);
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type,
    char *buf, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	char *buf = strdup(text);

	if (buf == NULL)
		return MHD_NO;
	return reply(conn, status, "text/plain", buf, strlen(buf));
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **state)
{
	struct metrics *m = cls;
	struct body b = { 0 };

	(void)version;
	(void)upload;
	if (*state == NULL) {		/* headers only, first call */
		*state = m;
		return MHD_YES;
	}
	if (*upload_len != 0 || strcmp(method, "GET") != 0)
		return reply_text(conn, 405, "GET only\n");
	if (strcmp(url, "/healthz") == 0) {
		int up;

		pthread_mutex_lock(&m->mu);
		registry_refresh(m);
		up = m->reg_up;
		pthread_mutex_unlock(&m->mu);
		return reply_text(conn, up ? 200 : 503, up ? "ok\n" :
		    "registry unavailable\n");
	}
	if (strcmp(url, "/metrics") != 0)
		return reply_text(conn, 404, "see /metrics or /healthz\n");
	b.cap = METRICS_BODY_MAX;
	if ((b.buf = malloc(b.cap)) == NULL)
		return MHD_NO;
	render(m, &b);
	if (b.full)
		log_warn("metrics: the page is over %d bytes and was cut",
		    METRICS_BODY_MAX);
	return reply(conn, 200, "text/plain; version=0.0.4", b.buf, b.len);
}

int
metrics_open(const struct config *cfg, struct service *svc,
    struct metrics **ret_m, struct xerr *e)
{
	struct sockaddr_storage ss;
	struct metrics *m;
	int v6 = 0, rc;

	*ret_m = NULL;
	if (cfg->metrics_listen == NULL)
		return 0;
	if ((rc = config_metrics_addr(cfg, &ss, &v6, e)) < 0)
		return rc;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	m->svc = svc;
	pthread_mutex_init(&m->mu, NULL);
	m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, handle, m,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONN_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (m->d == NULL) {
		free(m);
		return xerr_set(e, XTCMK_E_INVAL, "[metrics] listen %s: cannot "
		    "listen there (in use, or not an address of this host)",
		    cfg->metrics_listen);
	}
	log_info("metrics on http://%s/metrics", cfg->metrics_listen);
	*ret_m = m;
	return 0;
}

void
metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->d);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

#else /* !HAVE_MICROHTTPD */

int
metrics_open(const struct config *cfg, struct service *svc,
    struct metrics **ret_m, struct xerr *e)
{
	(void)svc;
	*ret_m = NULL;
	if (cfg->metrics_listen != NULL)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "[metrics] listen is "
		    "set but this xtcmkd was built without libmicrohttpd");
	return 0;
}

void
metrics_close(struct metrics *m)
{
	(void)m;
}

#endif
