/*
 * azure_http.c - the azure provider's HTTP client (libcurl).
 *
 * A pool of easy handles shares one CURLSH (connection cache, DNS, TLS
 * sessions), so connections to a vault are reused whichever thread asks.
 * TLS is always verified (against [azure] ca_file when set); [azure]
 * connect_to sends every https connection to one address (tests only).
 * Each attempt has a timeout; 429, 5xx, timeouts and connection resets
 * are retried with exponential backoff and full jitter, honouring
 * Retry-After, within one budget per call.  A token bucket per vault host
 * keeps us under the vault's limit; its lock is never held during I/O, so
 * a slow or throttled vault never holds up requests to another.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "azure.h"

#define AZ_POOL_MAX	64	/* idle easy handles kept */

struct rate_entry {
	struct rate_entry *next;
	char		 host[256];
	struct az_bucket b;
};

struct az_http {
	const struct az_conf *c;
	CURLSH		*share;
	pthread_mutex_t	 share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t	 mu;		/* pool, rate table */
	CURL		*pool[AZ_POOL_MAX];
	unsigned	 npool;
	struct rate_entry *rates[256];
	unsigned	 nrates;
	char		 connect_to[300];
	struct curl_slist *connect_list;
	atomic_ullong	 requests, attempts, retries, throttled, failures,
			 rate_waits, retry_after_waits, retry_after_ms;
};

long long
az_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long
az_backoff_ms(unsigned attempt, long base_ms, long cap_ms, double r)
{
	long ceil = base_ms;
	unsigned i;

	for (i = 0; i < attempt && ceil < cap_ms; i++)
		ceil *= 2;
	if (ceil > cap_ms)
		ceil = cap_ms;
	if (r < 0)
		r = 0;
	if (r >= 1)
		r = 0.999999;
	return (long)(r * (double)ceil);
}

long
az_retry_after_parse(const char *v, time_t now)
{
	char *end;
	long n;
	time_t t;

	if (v == NULL)
		return -1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		errno = 0;
		n = strtol(v, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' ||
		    *end == '\n')
			end++;
		if (errno != 0 || *end != '\0')
			return -1;
		return n > AZ_RETRY_AFTER_MAX_S ? AZ_RETRY_AFTER_MAX_S : n;
	}
	/* An HTTP-date. */
	if ((t = curl_getdate(v, NULL)) == -1)
		return -1;
	if (t <= now)
		return 0;
	return t - now > AZ_RETRY_AFTER_MAX_S ? AZ_RETRY_AFTER_MAX_S :
	    (long)(t - now);
}

long
az_bucket_take(struct az_bucket *b, unsigned rate, long long now_ms)
{
	double wait;

	if (rate == 0)
		return 0;
	if (b->last_ms == 0) {
		b->tokens = rate;
		b->last_ms = now_ms;
	}
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
		if (b->tokens > rate)
			b->tokens = rate;
		b->last_ms = now_ms;
	}
	/* Reserve a token even when none is left: callers queue in order. */
	b->tokens -= 1.0;
	if (b->tokens >= 0)
		return 0;
	wait = -b->tokens * 1000.0 / rate;
	return (long)wait + 1;
}

int
az_urlencode(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~') {
			if (o + 1 >= len)
				return -1;
			buf[o++] = (char)ch;
		} else {
			if (o + 3 >= len)
				return -1;
			buf[o++] = '%';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	if (o >= len)
		return -1;
	buf[o] = '\0';
	return (int)o;
}

static void
share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *arg)
{
	struct az_http *x = arg;

	(void)h;
	(void)a;
	pthread_mutex_lock(&x->share_mu[d]);
}

static void
share_unlock(CURL *h, curl_lock_data d, void *arg)
{
	struct az_http *x = arg;

	(void)h;
	pthread_mutex_unlock(&x->share_mu[d]);
}

int
az_http_new(const struct az_conf *c, struct az_http **ret, struct xerr *e)
{
	struct az_http *h;
	int i;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	h->c = c;
	pthread_mutex_init(&h->mu, NULL);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_mu[i], NULL);
	if ((h->share = curl_share_init()) == NULL) {
		az_http_free(h);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory (curl share)");
	}
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	if (c->connect_to != NULL && c->connect_to[0] != '\0') {
		/* "::HOST:PORT": every host and port goes there. */
		snprintf(h->connect_to, sizeof(h->connect_to), "::%s",
		    c->connect_to);
		if ((h->connect_list = curl_slist_append(NULL,
		    h->connect_to)) == NULL) {
			az_http_free(h);
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		}
	}
	*ret = h;
	return 0;
}

void
az_http_free(struct az_http *h)
{
	struct rate_entry *r, *next;
	unsigned i;

	if (h == NULL)
		return;
	for (i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share != NULL)
		curl_share_cleanup(h->share);
	curl_slist_free_all(h->connect_list);
	for (i = 0; i < 256; i++)
		for (r = h->rates[i]; r != NULL; r = next) {
			next = r->next;
			free(r);
		}
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_mu[i]);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void
az_http_resp_clear(struct az_http_resp *r)
{
	if (r == NULL)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
	r->retry_after_s = -1;
}

void
az_http_stats(struct az_http *h, struct az_http_stats *ret)
{
	ret->requests = atomic_load(&h->requests);
	ret->attempts = atomic_load(&h->attempts);
	ret->retries = atomic_load(&h->retries);
	ret->throttled = atomic_load(&h->throttled);
	ret->failures = atomic_load(&h->failures);
	ret->rate_waits = atomic_load(&h->rate_waits);
	ret->retry_after_waits = atomic_load(&h->retry_after_waits);
	ret->retry_after_ms = atomic_load(&h->retry_after_ms);
}

static CURL *
pool_take(struct az_http *h)
{
	CURL *c = NULL;

	pthread_mutex_lock(&h->mu);
	if (h->npool > 0)
		c = h->pool[--h->npool];
	pthread_mutex_unlock(&h->mu);
	if (c == NULL)
		c = curl_easy_init();
	return c;
}

static void
pool_put(struct az_http *h, CURL *c)
{
	pthread_mutex_lock(&h->mu);
	if (h->npool < AZ_POOL_MAX) {
		h->pool[h->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->mu);
	if (c != NULL)
		curl_easy_cleanup(c);
}

/* Milliseconds to wait before a request to `host` may go. */
static long
rate_wait(struct az_http *h, const char *host)
{
	struct rate_entry *r;
	unsigned idx = 0;
	const char *p;
	long w = 0;

	if (host == NULL || h->c->rate_limit == 0)
		return 0;
	for (p = host; *p != '\0'; p++)
		idx = idx * 31 + (unsigned char)*p;
	idx %= 256;
	pthread_mutex_lock(&h->mu);
	for (r = h->rates[idx]; r != NULL; r = r->next)
		if (strcmp(r->host, host) == 0)
			break;
	if (r == NULL && h->nrates < AZ_RATE_HOSTS_MAX &&
	    (r = calloc(1, sizeof(*r))) != NULL) {
		snprintf(r->host, sizeof(r->host), "%s", host);
		r->next = h->rates[idx];
		h->rates[idx] = r;
		h->nrates++;
	}
	if (r != NULL)
		w = az_bucket_take(&r->b, h->c->rate_limit, az_now_ms());
	pthread_mutex_unlock(&h->mu);
	return w;
}

struct sink {
	struct az_http_resp *r;
	size_t		 cap;
	int		 too_big;
};

static size_t
on_body(char *ptr, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	char *nb;

	if (s->r->len + len > AZ_BODY_MAX) {
		s->too_big = 1;
		return 0;
	}
	if (s->r->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;

		while (cap < s->r->len + len + 1)
			cap *= 2;
		if ((nb = realloc(s->r->body, cap)) == NULL)
			return 0;
		s->r->body = nb;
		s->cap = cap;
	}
	memcpy(s->r->body + s->r->len, ptr, len);
	s->r->len += len;
	s->r->body[s->r->len] = '\0';
	return len;
}

static void
header_value(const char *line, size_t len, const char *name, char *out,
    size_t out_size)
{
	size_t nlen = strlen(name), vlen;
	const char *v;

	if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 ||
	    line[nlen] != ':')
		return;
	v = line + nlen + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
	    v[vlen - 1] == ' '))
		vlen--;
	if (vlen >= out_size)
		vlen = out_size - 1;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
}

static size_t
on_header(char *ptr, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	char ra[64] = "";

	/* A new status line (after 100-continue etc.): start over. */
	if (len > 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		s->r->www_auth[0] = '\0';
		s->r->request_id[0] = '\0';
		s->r->retry_after_s = -1;
		return len;
	}
	header_value(ptr, len, "WWW-Authenticate", s->r->www_auth,
	    sizeof(s->r->www_auth));
	header_value(ptr, len, "x-ms-request-id", s->r->request_id,
	    sizeof(s->r->request_id));
	header_value(ptr, len, "Retry-After", ra, sizeof(ra));
	if (ra[0] != '\0')
		s->r->retry_after_s = az_retry_after_parse(ra, time(NULL));
	return len;
}

static int
transient(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static double
rand01(void)
{
	uint32_t v;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		return 0.5;
	return (double)v / 4294967296.0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* One attempt.  Returns the curl result; fills r on CURLE_OK. */
static CURLcode
attempt(struct az_http *h, CURL *c, const struct az_http_req *req,
    struct curl_slist *hdrs, long timeout_ms, struct az_http_resp *r,
    int *too_big, char *errbuf)
{
	struct sink s = { r, 0, 0 };
	CURLcode cc;
	int https = strncmp(req->url, "https://", 8) == 0;

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_SHARE, h->share);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "xtcmkd");
	if (h->c->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->c->ca_file);
	if (https && h->connect_list != NULL)
		curl_easy_setopt(c, CURLOPT_CONNECT_TO, h->connect_list);
	if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body :
		    "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, req->body ?
		    (long)req->body_len : 0L);
	} else if (strcmp(req->method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	errbuf[0] = '\0';
	cc = curl_easy_perform(c);
	*too_big = s.too_big;
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	return cc;
}

int
az_http_do(struct az_http *h, const struct az_http_req *req,
    struct az_http_resp *ret_resp, struct xerr *e)
{
	struct az_http_resp r;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE];
	long long deadline, now;
	long wait, tmo;
	unsigned n;
	CURLcode cc = CURLE_OK;
	CURL *c;
	int rc, too_big = 0, i;

	atomic_fetch_add(&h->requests, 1);
	deadline = req->deadline_ms ? req->deadline_ms : az_now_ms() +
	    AZ_BUDGET_MS;
	for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
		struct curl_slist *t = curl_slist_append(hdrs, req->headers[i]);

		if (t == NULL) {
			curl_slist_free_all(hdrs);
			return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		}
		hdrs = t;
	}
	/* No "Expect: 100-continue" round trip on POSTs. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if ((c = pool_take(h)) == NULL) {
		curl_slist_free_all(hdrs);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory (curl)");
	}
	memset(&r, 0, sizeof(r));
	r.retry_after_s = -1;
	for (n = 0;; n++) {
		/* The vault's rate limit, on our side. */
		if ((wait = rate_wait(h, req->rate_key)) > 0) {
			atomic_fetch_add(&h->rate_waits, 1);
			if (az_now_ms() + wait >= deadline) {
				rc = xerr_set(e, XTCMK_E_PROVIDER, "too many "
				    "requests to %s: over [azure] rate_limit "
				    "= %u/s for longer than the request may "
				    "wait; raise rate_limit (the vault allows "
				    "4000 per 10 s) or spread the load",
				    req->rate_key, h->c->rate_limit);
				goto out;
			}
			sleep_ms(wait);
		}
		now = az_now_ms();
		tmo = h->c->timeout_ms;
		if (deadline - now < tmo)
			tmo = deadline - now;
		if (tmo < 1) {
			rc = xerr_set(e, XTCMK_E_PROVIDER, "%s %s: no answer "
			    "within the request budget of %d ms after %u "
			    "attempts", req->method, req->url, AZ_BUDGET_MS,
			    n);
			goto out;
		}
		az_http_resp_clear(&r);
		atomic_fetch_add(&h->attempts, 1);
		cc = attempt(h, c, req, hdrs, tmo, &r, &too_big, errbuf);
		r.attempts = n + 1;
		if (too_big) {
			rc = xerr_set(e, XTCMK_E_PROVIDER, "%s %s: response "
			    "larger than %d bytes", req->method, req->url,
			    AZ_BODY_MAX);
			goto out;
		}
		if (cc == CURLE_OK) {
			int again = r.status == 429 || (r.status >= 500 &&
			    r.status != 501 && r.status != 505) ||
			    (req->retry_404 && (r.status == 404 ||
			    r.status == 410));

			if (r.status == 429)
				atomic_fetch_add(&h->throttled, 1);
			if (!again)
				break;
		} else if (!transient(cc)) {
			rc = xerr_set(e, XTCMK_E_PROVIDER, "%s %s: %s%s%s",
			    req->method, req->url, curl_easy_strerror(cc),
			    errbuf[0] ? ": " : "", errbuf);
			goto out;
		}
		if (n >= h->c->retries)
			break;
		/* Retry: Retry-After when given, else jittered backoff. */
		wait = az_backoff_ms(n, AZ_BACKOFF_BASE_MS, AZ_BACKOFF_CAP_MS,
		    rand01());
		if (cc == CURLE_OK && r.retry_after_s >= 0)
			wait = r.retry_after_s * 1000;
		if (az_now_ms() + wait >= deadline) {
			if (cc == CURLE_OK)
				break;	/* report the last answer */
			rc = xerr_set(e, XTCMK_E_PROVIDER, "%s %s: %s%s%s "
			    "(no time left to retry)", req->method, req->url,
			    curl_easy_strerror(cc), errbuf[0] ? ": " : "",
			    errbuf);
			goto out;
		}
		atomic_fetch_add(&h->retries, 1);
		if (cc == CURLE_OK && r.retry_after_s >= 0) {
			atomic_fetch_add(&h->retry_after_waits, 1);
			atomic_fetch_add(&h->retry_after_ms,
			    (unsigned long long)wait);
		}
		sleep_ms(wait);
	}
	if (cc != CURLE_OK) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "%s %s failed after %u "
		    "attempts: %s%s%s", req->method, req->url, n + 1,
		    curl_easy_strerror(cc), errbuf[0] ? ": " : "", errbuf);
		goto out;
	}
	if (r.body == NULL && (r.body = strdup("")) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	*ret_resp = r;
	memset(&r, 0, sizeof(r));
	rc = 0;
out:
	if (rc < 0)
		atomic_fetch_add(&h->failures, 1);
	az_http_resp_clear(&r);
	curl_slist_free_all(hdrs);
	pool_put(h, c);
	return rc;
}
