/*
 * etcd_gw.c - the etcd v3 JSON gateway client (see etcd.h): unary calls with
 * endpoint failover under one deadline, token auth, verified TLS, and a
 * streaming watch read line by line from libcurl's write callback.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "etcd.h"

struct etcd {
	pthread_mutex_t	 mu;		/* h, cur, token */
	CURL		*h;
	char		*ep[ETCD_ENDPOINTS_MAX];
	int		 n;
	int		 cur;		/* endpoint that answered last */
	char		*ca_file, *cert_file, *key_file;
	char		*user, *password;
	char		*token;
	unsigned	 timeout_ms;
};

struct buf {
	char	*p;
	size_t	 len, cap, max;
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static int
buf_add(struct buf *b, const char *p, size_t n)
{
	char *np;
	size_t cap;

	if (b->len + n + 1 > b->max)
		return -1;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static size_t
write_buf(char *p, size_t sz, size_t n, void *arg)
{
	return buf_add(arg, p, sz * n) == 0 ? sz * n : 0;
}

int
etcd_open(const struct etcd_opts *o, struct etcd **ret_etcd, struct xerr *e)
{
	struct etcd *c;
	int i;

	if (o->n_endpoints < 1 || o->n_endpoints > ETCD_ENDPOINTS_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "etcd needs 1 to %d "
		    "endpoints, got %d", ETCD_ENDPOINTS_MAX, o->n_endpoints);
	for (i = 0; i < o->n_endpoints; i++)
		if (strncmp(o->endpoints[i], "http://", 7) != 0 &&
		    strncmp(o->endpoints[i], "https://", 8) != 0)
			return xerr_set(e, XTCMK_E_INVAL, "etcd endpoint '%s' "
			    "must start with http:// or https://",
			    o->endpoints[i]);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	for (i = 0; i < o->n_endpoints; i++) {
		size_t l;

		c->ep[i] = strdup(o->endpoints[i]);
		if (c->ep[i] != NULL && (l = strlen(c->ep[i])) > 0 &&
		    c->ep[i][l - 1] == '/')
			c->ep[i][l - 1] = '\0';
	}
	c->n = o->n_endpoints;
	c->ca_file = xstrdup(o->ca_file);
	c->cert_file = xstrdup(o->cert_file);
	c->key_file = xstrdup(o->key_file);
	c->user = xstrdup(o->user);
	c->password = xstrdup(o->password);
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
	c->h = curl_easy_init();
	for (i = 0; i < c->n; i++)
		if (c->ep[i] == NULL)
			break;
	if (c->h == NULL || i < c->n || (o->user != NULL && c->user == NULL) ||
	    (o->password != NULL && c->password == NULL)) {
		etcd_free(c);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	*ret_etcd = c;
	return 0;
}

void
etcd_free(struct etcd *c)
{
	int i;

	if (c == NULL)
		return;
	if (c->h != NULL)
		curl_easy_cleanup(c->h);
	for (i = 0; i < c->n; i++)
		free(c->ep[i]);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->user);
	if (c->password != NULL)
		OPENSSL_clear_free(c->password, strlen(c->password));
	if (c->token != NULL)
		OPENSSL_clear_free(c->token, strlen(c->token));
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Options every request shares: TLS always verified, HTTP(S) only. */
static void
setup(struct etcd *c, CURL *h, const char *url, struct curl_slist *hdr,
    long long timeout_ms)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file != NULL)
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file != NULL)
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms > 0 &&
	    timeout_ms < c->timeout_ms ? timeout_ms : c->timeout_ms));
	if (timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
}

static struct curl_slist *
headers(struct etcd *c)
{
	struct curl_slist *h = NULL, *n;
	char *auth = NULL;

	if ((h = curl_slist_append(NULL, "Content-Type: application/json")) ==
	    NULL)
		return NULL;
	if (c->token != NULL) {
		if (asprintf(&auth, "Authorization: %s", c->token) == -1 ||
		    (n = curl_slist_append(h, auth)) == NULL) {
			curl_slist_free_all(h);
			h = NULL;
		} else
			h = n;
		if (auth != NULL)
			OPENSSL_clear_free(auth, strlen(auth));
	}
	return h;
}

/*
 * One POST to endpoint `ep`: 0 with the HTTP status in *ret_status, or -1
 * with the transport's error in `e` (the caller fails over).
 */
static int
post(struct etcd *c, int ep, const char *path, const char *body,
    long long timeout_ms, struct buf *out, long *ret_status, struct xerr *e)
{
	struct curl_slist *hdr;
	char url[512];
	CURLcode cc;

	snprintf(url, sizeof(url), "%s%s", c->ep[ep], path);
	if ((hdr = headers(c)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	setup(c, c->h, url, hdr, timeout_ms);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, write_buf);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, out);
	cc = curl_easy_perform(c->h);
	curl_slist_free_all(hdr);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return xerr_set(e, XTCMK_E_UNAVAILABLE, "etcd %s: no answer "
		    "within %lld ms", c->ep[ep], timeout_ms);
	if (cc != CURLE_OK)
		return xerr_set(e, XTCMK_E_UNAVAILABLE, "etcd %s: %s",
		    c->ep[ep], curl_easy_strerror(cc));
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, ret_status);
	return 0;
}

/* The gateway's error text from a non-2xx body. */
static void
gw_error(struct xerr *e, int code, const char *ep, long status, const char *body)
{
	json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
	const char *m = json_string_value(json_object_get(j, "message"));

	if (m == NULL)
		m = json_string_value(json_object_get(j, "error"));
	/* Some refusals come as plain text (one line). */
	if (m == NULL && body != NULL && *body != '\0')
		xerr_set(e, code, "etcd %s: HTTP %ld: %.*s", ep, status,
		    (int)strcspn(body, "\r\n"), body);
	else
		xerr_set(e, code, "etcd %s: HTTP %ld: %s", ep, status,
		    m != NULL ? m : "no reason given");
	json_decref(j);
}

/* Get a token for c->user (c->mu held). */
static int
authenticate(struct etcd *c, int ep, long long timeout_ms, struct xerr *e)
{
	json_t *req, *rep = NULL;
	struct buf out = { NULL, 0, 0, 65536 };
	char *body;
	long status = 0;
	const char *tok;
	int rc;

	if ((req = json_pack("{s:s, s:s}", "name", c->user, "password",
	    c->password)) == NULL ||
	    (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		json_decref(req);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	json_decref(req);
	if (c->token != NULL) {
		OPENSSL_clear_free(c->token, strlen(c->token));
		c->token = NULL;
	}
	rc = post(c, ep, "/v3/auth/authenticate", body, timeout_ms, &out,
	    &status, e);
	OPENSSL_clear_free(body, strlen(body));
	if (rc < 0)
		goto out;
	if (status != 200) {
		gw_error(e, status >= 500 ? XTCMK_E_UNAVAILABLE :
		    XTCMK_E_DENIED, c->ep[ep], status, out.p);
		rc = status >= 500 ? -1 : -2;
		goto out;
	}
	rep = json_loads(out.p, 0, NULL);
	if ((tok = json_string_value(json_object_get(rep, "token"))) == NULL) {
		rc = xerr_set(e, XTCMK_E_PROTOCOL, "etcd %s: authenticate "
		    "returned no token", c->ep[ep]);
		goto out;
	}
	c->token = strdup(tok);
	rc = c->token != NULL ? 0 : xerr_set(e, XTCMK_E_NOMEM, "out of memory");
out:
	json_decref(rep);
	if (out.p != NULL)
		OPENSSL_clear_free(out.p, out.cap);
	return rc;
}

int
etcd_call(struct etcd *c, const char *path, json_t *body, json_t **ret_reply,
    struct xerr *e)
{
	struct buf out = { NULL, 0, 0, ETCD_REPLY_MAX };
	long long deadline = now_ms() + c->timeout_ms, left;
	char *text;
	long status;
	int tries, ep, reauth = 0, rc = -1;
	json_t *rep;

	if ((text = json_dumps(body, JSON_COMPACT)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	xerr_set(e, XTCMK_E_UNAVAILABLE, "etcd: no endpoint answered within "
	    "%u ms", c->timeout_ms);
	pthread_mutex_lock(&c->mu);
	for (tries = 0; tries < c->n + 1; tries++) {
		ep = c->cur;
		if ((left = deadline - now_ms()) <= 0)
			break;
		/* Leave time for the next endpoint unless this is the last. */
		if (tries < c->n - 1 && left > 200)
			left = left / 2;
		if (c->user != NULL && c->token == NULL &&
		    (rc = authenticate(c, ep, left, e)) < 0) {
			if (rc == -2)
				break;
			c->cur = (c->cur + 1) % c->n;
			continue;
		}
		out.len = 0;
		status = 0;
		if (post(c, ep, path, text, left, &out, &status, e) < 0 ||
		    status >= 500) {
			if (status >= 500)
				gw_error(e, XTCMK_E_UNAVAILABLE, c->ep[ep],
				    status, out.p);
			c->cur = (c->cur + 1) % c->n;
			rc = -1;
			continue;
		}
		if (status == 401 && c->user != NULL && !reauth) {
			/* Tokens expire: get a new one once. */
			reauth = 1;
			OPENSSL_clear_free(c->token, strlen(c->token));
			c->token = NULL;
			tries--;
			continue;
		}
		if (status != 200) {
			gw_error(e, status == 401 || status == 403 ?
			    XTCMK_E_DENIED : XTCMK_E_INVAL, c->ep[ep], status,
			    out.p);
			rc = -2;
			break;
		}
		if ((rep = json_loads(out.p != NULL ? out.p : "", 0, NULL)) ==
		    NULL) {
			xerr_set(e, XTCMK_E_PROTOCOL, "etcd %s: reply to %s is "
			    "not JSON", c->ep[ep], path);
			rc = -2;
			break;
		}
		*ret_reply = rep;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&c->mu);
	free(text);
	free(out.p);
	if (rc == 0)
		xerr_clear(e);
	return rc == 0 ? 0 : -(e != NULL && e->code ? e->code :
	    XTCMK_E_UNAVAILABLE);
}

json_t *
etcd_b64(const void *p, size_t n)
{
	char *t;
	json_t *v;

	if ((t = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)t, p, (int)n);
	v = json_string(t);
	free(t);
	return v;
}

json_t *
etcd_b64s(const char *s)
{
	return etcd_b64(s, strlen(s));
}

int
etcd_unb64(json_t *v, char **ret_s, size_t *ret_len)
{
	const char *in = json_string_value(v);
	size_t n, pad = 0;
	char *out;
	int len;

	if (in == NULL)
		in = "";	/* an empty value is omitted */
	n = strlen(in);
	if (n % 4 != 0)
		return -1;
	if ((out = malloc(n / 4 * 3 + 1)) == NULL)
		return -1;
	if (n > 0 && in[n - 1] == '=')
		pad++;
	if (n > 1 && in[n - 2] == '=')
		pad++;
	if ((len = EVP_DecodeBlock((unsigned char *)out,
	    (const unsigned char *)in, (int)n)) < 0) {
		free(out);
		return -1;
	}
	len -= (int)pad;
	out[len] = '\0';
	*ret_s = out;
	if (ret_len != NULL)
		*ret_len = (size_t)len;
	return 0;
}

long long
etcd_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static json_t *
i64(long long n)
{
	char t[24];

	snprintf(t, sizeof(t), "%lld", n);
	return json_string(t);
}

int
etcd_range(struct etcd *c, const char *key, const char *end, long long rev,
    long long limit, json_t **ret_reply, long long *ret_rev, struct xerr *e)
{
	json_t *req, *rep = NULL;
	int rc;

	if ((req = json_pack("{s:o}", "key", etcd_b64s(key))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (end != NULL)
		json_object_set_new(req, "range_end", etcd_b64s(end));
	if (rev > 0)
		json_object_set_new(req, "revision", i64(rev));
	if (limit > 0)
		json_object_set_new(req, "limit", i64(limit));
	rc = etcd_call(c, "/v3/kv/range", req, &rep, e);
	json_decref(req);
	if (rc < 0)
		return rc;
	if (ret_rev != NULL)
		*ret_rev = etcd_int(json_object_get(rep, "header"), "revision");
	*ret_reply = rep;
	return 0;
}

int
etcd_txn(struct etcd *c, json_t *txn, int *ret_ok, long long *ret_rev,
    struct xerr *e)
{
	json_t *rep = NULL;
	int rc;

	if ((rc = etcd_call(c, "/v3/kv/txn", txn, &rep, e)) < 0)
		return rc;
	*ret_ok = json_is_true(json_object_get(rep, "succeeded"));
	*ret_rev = etcd_int(json_object_get(rep, "header"), "revision");
	json_decref(rep);
	return 0;
}

json_t *
etcd_cmp(const char *key, const char *target, const char *result, long long n)
{
	const char *field = strcmp(target, "CREATE") == 0 ? "create_revision" :
	    strcmp(target, "MOD") == 0 ? "mod_revision" : "version";

	return json_pack("{s:o, s:s, s:s, s:o}", "key", etcd_b64s(key),
	    "target", target, "result", result, field, i64(n));
}

json_t *
etcd_put(const char *key, const char *value, long long lease)
{
	json_t *p = json_pack("{s:o}", "key", etcd_b64s(key));

	if (p == NULL)
		return NULL;
	if (value != NULL)
		json_object_set_new(p, "value", etcd_b64s(value));
	else
		json_object_set_new(p, "ignore_value", json_true());
	if (lease != 0)
		json_object_set_new(p, "lease", i64(lease));
	return json_pack("{s:o}", "request_put", p);
}

json_t *
etcd_touch(const char *key)
{
	return etcd_put(key, NULL, 0);
}

json_t *
etcd_del(const char *key)
{
	return json_pack("{s:{s:o}}", "request_delete_range", "key",
	    etcd_b64s(key));
}

int
etcd_lease_grant(struct etcd *c, long long ttl, long long *ret_id,
    struct xerr *e)
{
	json_t *req = json_pack("{s:o}", "TTL", i64(ttl)), *rep = NULL;
	long long id;
	int rc;

	if (req == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	rc = etcd_call(c, "/v3/lease/grant", req, &rep, e);
	json_decref(req);
	if (rc < 0)
		return rc;
	id = etcd_int(rep, "ID");
	json_decref(rep);
	if (id == 0)
		return xerr_set(e, XTCMK_E_PROTOCOL, "etcd granted no lease");
	*ret_id = id;
	return 0;
}

int
etcd_lease_keepalive(struct etcd *c, long long id, struct xerr *e)
{
	json_t *req = json_pack("{s:o}", "ID", i64(id)), *rep = NULL;
	int rc;

	if (req == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	rc = etcd_call(c, "/v3/lease/keepalive", req, &rep, e);
	json_decref(req);
	if (rc < 0)
		return rc;
	/* An expired lease answers with TTL 0 (or none). */
	rc = etcd_int(json_object_get(rep, "result"), "TTL") > 0 ? 0 :
	    xerr_set(e, XTCMK_E_NOT_FOUND, "etcd lease %llx expired",
	    (unsigned long long)id);
	json_decref(rep);
	return rc;
}

/* --- watch ----------------------------------------------------------- */

struct wstate {
	struct buf	 line;
	int		(*fn)(void *, json_t *);
	void		*arg;
	const volatile int *stop;
	int		 rc;		/* what fn returned, or -1 bad message */
	struct etcd	*c;
	int		 ep;		/* the member watched */
	long long	 heard;		/* ms, when it last sent anything */
	int		 hung;		/* it stopped answering: dropped */
};

/*
 * Is member `ep` alive and part of a quorum?  A status call bounded by
 * the call timeout, answered with a leader.  A member whose process is
 * stopped keeps its TCP connections (the kernel answers keepalives), so
 * only a request tells.
 */
static int
member_alive(struct etcd *c, int ep)
{
	struct buf out = { NULL, 0, 0, 1u << 16 };
	struct curl_slist *hdr;
	char url[512];
	long status = 0;
	json_t *rep;
	CURL *h;
	int ok = 0;

	if ((h = curl_easy_init()) == NULL)
		return 1;	/* cannot tell: keep the watch */
	snprintf(url, sizeof(url), "%s/v3/maintenance/status", c->ep[ep]);
	pthread_mutex_lock(&c->mu);
	hdr = headers(c);
	pthread_mutex_unlock(&c->mu);
	if (hdr == NULL) {
		curl_easy_cleanup(h);
		return 1;
	}
	setup(c, h, url, hdr, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_buf);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status == 200 && (rep = json_loads(out.p != NULL ? out.p : "", 0,
	    NULL)) != NULL) {
		ok = etcd_int(rep, "leader") != 0;
		json_decref(rep);
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	free(out.p);
	return ok;
}

/* Split the stream into newline-terminated JSON messages. */
static size_t
watch_write(char *p, size_t sz, size_t n, void *arg)
{
	struct wstate *w = arg;
	size_t len = sz * n, i, start = 0;
	json_t *msg;

	w->heard = now_ms();
	for (i = 0; i < len; i++) {
		if (p[i] != '\n')
			continue;
		if (buf_add(&w->line, p + start, i - start) < 0)
			goto fail;
		start = i + 1;
		if (w->line.len == 0)
			continue;
		if ((msg = json_loads(w->line.p, 0, NULL)) == NULL)
			goto fail;
		w->line.len = 0;
		w->rc = w->fn(w->arg, msg);
		json_decref(msg);
		if (w->rc != 0)
			return 0;
	}
	if (buf_add(&w->line, p + start, len - start) < 0)
		goto fail;
	return len;
fail:
	w->rc = -1;
	return 0;
}

static int
watch_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	struct wstate *w = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	if (*w->stop)
		return 1;
	/* etcd sends progress notifications every 10 minutes only: after
	 * ETCD_WATCH_IDLE_MS of silence, ask the member whether it lives. */
	if (now_ms() - w->heard < ETCD_WATCH_IDLE_MS)
		return 0;
	if (!member_alive(w->c, w->ep)) {
		w->hung = 1;
		return 1;
	}
	w->heard = now_ms();
	return 0;
}

int
etcd_watch(struct etcd *c, const char *key, const char *end,
    long long start_rev, int (*fn)(void *, json_t *), void *arg,
    const volatile int *stop, struct xerr *e)
{
	struct wstate w = { { NULL, 0, 0, ETCD_EVENT_MAX }, fn, arg, stop, 0,
	    c, 0, 0, 0 };
	struct curl_slist *hdr = NULL;
	json_t *req;
	char url[512], *body = NULL;
	CURL *h = NULL;
	CURLcode cc;
	int ep, rc;

	req = json_pack("{s:{s:o, s:o, s:o, s:b}}", "create_request", "key",
	    etcd_b64s(key), "range_end", etcd_b64s(end), "start_revision",
	    i64(start_rev), "progress_notify", 1);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL ||
	    (h = curl_easy_init()) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&c->mu);
	if (c->user != NULL && c->token == NULL &&
	    authenticate(c, c->cur, c->timeout_ms, e) < 0) {
		c->cur = (c->cur + 1) % c->n;
		pthread_mutex_unlock(&c->mu);
		rc = -XTCMK_E_UNAVAILABLE;
		goto out;
	}
	ep = c->cur;
	snprintf(url, sizeof(url), "%s/v3/watch", c->ep[ep]);
	hdr = headers(c);
	pthread_mutex_unlock(&c->mu);
	if (hdr == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	w.ep = ep;
	w.heard = now_ms();
	setup(c, h, url, hdr, 0);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	cc = curl_easy_perform(h);
	if (w.rc > 0 || (w.rc == 0 && *stop))
		rc = w.rc;
	else if (w.rc < 0)
		rc = xerr_set(e, XTCMK_E_PROTOCOL, "etcd %s: bad watch message",
		    c->ep[ep]);
	else {
		long status = 0;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (w.hung)
			rc = xerr_set(e, XTCMK_E_UNAVAILABLE, "etcd %s: the "
			    "watch heard nothing for %d ms and the member did "
			    "not answer a status call with a leader within %u "
			    "ms (hung, or cut off from its quorum); watching "
			    "another member", c->ep[ep], ETCD_WATCH_IDLE_MS,
			    c->timeout_ms);
		else
			rc = xerr_set(e, XTCMK_E_UNAVAILABLE, "etcd %s: watch "
			    "ended: %s (HTTP %ld)", c->ep[ep], cc != CURLE_OK ?
			    curl_easy_strerror(cc) : "stream closed", status);
		if (status == 401 && !w.hung) {
			pthread_mutex_lock(&c->mu);
			if (c->token != NULL) {
				OPENSSL_clear_free(c->token, strlen(c->token));
				c->token = NULL;
			}
			pthread_mutex_unlock(&c->mu);
		} else {
			/* Try the next endpoint on the next watch. */
			pthread_mutex_lock(&c->mu);
			if (c->cur == ep)
				c->cur = (c->cur + 1) % c->n;
			pthread_mutex_unlock(&c->mu);
		}
	}
out:
	if (h != NULL)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	json_decref(req);
	free(body);
	free(w.line.p);
	return rc;
}

void
etcd_prefix_end(const char *prefix, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", prefix);
	n = strlen(buf);
	if (n > 0)
		buf[n - 1]++;
}
