/*
 * etcd.c - the local mirror of the fleet's etcd registry (see fleet.h):
 * a thread that resyncs the whole prefix when it has no usable revision,
 * then watches from the mirror's revision and applies every change to
 * the SQLite registry through its own functions, so the data plane reads
 * SQLite as on a single host.  Applying is idempotent (a put of what is
 * there already, a delete of what is gone, change nothing), so the
 * revision file may lag the registry after a crash: the watch replays.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "atomicfile.h"
#include "conf.h"
#include "fleet.h"
#include "fleet_int.h"
#include "log.h"
#include "registry.h"

#define FLEET_STATE_FILE	"fleet.state"
#define FLEET_STATE_MAX		4096
#define FLEET_REV_WRITE_MS	200	/* at most one state write per */
#define FLEET_BACKOFF_MS	500
#define FLEET_PASSWORD_MAX	1024

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
fleet_key(struct fleet *f, char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(f->prefix);
	int r;

	if (n >= len)
		return -1;
	memcpy(buf, f->prefix, n);
	va_start(ap, fmt);
	r = vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
	return r < 0 || (size_t)r >= len - n ? -1 : 0;
}

void
fleet_error(struct fleet *f, const char *msg)
{
	pthread_mutex_lock(&f->mu);
	if (strcmp(f->last_error, msg) != 0)
		log_warn("fleet: %s", msg);
	/* A longer message is cut to the buffer, on purpose. */
	snprintf(f->last_error, sizeof(f->last_error), "%.*s",
	    (int)sizeof(f->last_error) - 1, msg);
	f->last_error_at = (long long)time(NULL);
	pthread_mutex_unlock(&f->mu);
}

int
fleet_wait(struct fleet *f, long long rev)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += f->sync_ms / 1000;
	ts.tv_nsec += (long)(f->sync_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	while (f->applied < rev && !f->stop && rc == 0)
		rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	rc = f->applied >= rev ? 0 : -XTCMK_E_TIMEOUT;
	pthread_mutex_unlock(&f->mu);
	if (rc < 0)
		atomic_fetch_add(&f->n_sync_timeout, 1);
	return rc;
}

long long
fleet_view(struct fleet *f)
{
	long long v;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->mu);
	v = f->applied;
	pthread_mutex_unlock(&f->mu);
	return v;
}

void
fleet_count_retry(struct fleet *f)
{
	if (f != NULL)
		atomic_fetch_add(&f->n_retry, 1);
}

/* --- the mirror's revision, kept beside the registry ------------------ */

static void
state_write(struct fleet *f, int force)
{
	char buf[FLEET_STATE_MAX];
	struct xerr e;
	long long now = mono_ms(), rev;
	int dfd, n;

	pthread_mutex_lock(&f->mu);
	rev = f->applied;
	if (!force && now - f->last_rev_write < FLEET_REV_WRITE_MS) {
		pthread_mutex_unlock(&f->mu);
		return;
	}
	f->last_rev_write = now;
	pthread_mutex_unlock(&f->mu);
	if (rev == 0)
		return;
	n = snprintf(buf, sizeof(buf), "{\"prefix\": \"%s\", \"revision\": "
	    "%lld}\n", f->prefix, rev);
	if ((dfd = open(f->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return;
	if (atomicfile_write(dfd, "fleet", ".", FLEET_STATE_FILE, buf,
	    (size_t)n, &e) < 0)
		fleet_error(f, e.msg);
	close(dfd);
}

static void
state_read(struct fleet *f)
{
	char *buf = NULL;
	size_t len;
	json_t *j;
	int dfd;

	if ((dfd = open(f->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return;
	if (atomicfile_read(dfd, FLEET_STATE_FILE, FLEET_STATE_MAX, &buf,
	    &len) == 0 && (j = json_loads(buf, 0, NULL)) != NULL) {
		/* Another prefix's revision means nothing here. */
		if (json_is_string(json_object_get(j, "prefix")) &&
		    strcmp(json_string_value(json_object_get(j, "prefix")),
		    f->prefix) == 0 &&
		    json_integer_value(json_object_get(j, "revision")) > 0) {
			f->applied = json_integer_value(json_object_get(j,
			    "revision"));
			f->have_state = 1;
		}
		json_decref(j);
	}
	free(buf);
	close(dfd);
}

/* --- applying changes to the mirror ------------------------------------ */

/* Benign outcomes of an idempotent apply. */
static int
benign(int rc, const struct xerr *e)
{
	return rc == 0 || e->code == XTCMK_E_EXISTS ||
	    e->code == XTCMK_E_NOT_FOUND;
}

static int
apply_customer(struct fleet *f, const char *id, json_t *v)
{
	json_t *cur = NULL, *dec, *mv;
	const char *app = json_string_value(json_object_get(v, "app"));
	const char *have;
	struct xerr e;
	int rc;

	xerr_clear(&e);
	if (app == NULL)
		return xerr_set(&e, XTCMK_E_PROTOCOL, "c/%s: no app", id);
	if (reg_customer_get(f->reg, id, &cur, &e) == 0) {
		have = json_string_value(json_object_get(cur, "app"));
		if (have != NULL && strcmp(have, app) == 0)
			rc = 0;
		else {
			mv = json_object_get(v, "move");
			rc = reg_customer_move(f->reg, id, app,
			    json_string_value(json_object_get(mv, "reason")),
			    json_string_value(json_object_get(mv, "actor")),
			    &e);
		}
		json_decref(cur);
	} else if (e.code != XTCMK_E_NOT_FOUND)
		rc = -e.code;
	else {
		/* The FICs come from their own keys, applied first. */
		dec = json_deep_copy(json_object_get(v, "decision"));
		if (!json_is_object(dec)) {
			json_decref(dec);
			dec = json_object();
		}
		json_object_set_new(dec, "app", json_string(app));
		json_object_set_new(dec, "federate", json_array());
		rc = reg_customer_onboard(f->reg, json_object_get(v,
		    "customer"), dec, json_object_get(v, "why"),
		    json_string_value(json_object_get(v, "policy_hash")), &e);
		json_decref(dec);
	}
	if (!benign(rc, &e)) {
		char msg[XERR_MSG_MAX + 64];

		snprintf(msg, sizeof(msg), "mirror: customer %s: %s", id,
		    e.msg);
		fleet_error(f, msg);
		return -1;
	}
	return 0;
}

static int
apply_app(struct fleet *f, const char *name, json_t *v)
{
	json_t *cur = NULL;
	const char *cid = json_string_value(json_object_get(v, "client_id"));
	const char *have;
	struct xerr e;
	int rc;

	xerr_clear(&e);
	if ((rc = reg_app_get(f->reg, name, &cur, &e)) == 0) {
		have = json_string_value(json_object_get(cur, "client_id"));
		if (cid != NULL && (have == NULL || strcasecmp(have, cid) != 0))
			rc = reg_app_set_client_id(f->reg, name, cid, &e);
		json_decref(cur);
	} else if (e.code == XTCMK_E_NOT_FOUND)
		rc = reg_app_add(f->reg, v, &e);
	if (!benign(rc, &e)) {
		char msg[XERR_MSG_MAX + 64];

		snprintf(msg, sizeof(msg), "mirror: application %s: %s", name,
		    e.msg);
		fleet_error(f, msg);
		return -1;
	}
	return 0;
}

int
fleet_apply_kv(struct fleet *f, const char *key, json_t *value,
    const char *actor)
{
	char msg[XERR_MSG_MAX + 64], buf[ETCD_KEY_MAX], *slash;
	struct xerr e;
	int rc = 0;

	xerr_clear(&e);
	if (strncmp(key, "w/", 2) == 0)
		rc = value != NULL ? reg_workload_add(f->reg, value, &e) :
		    reg_workload_remove(f->reg, key + 2, &e);
	else if (strncmp(key, "a/", 2) == 0)
		return value != NULL ? apply_app(f, key + 2, value) : 0;
	else if (strncmp(key, "f/", 2) == 0) {
		snprintf(buf, sizeof(buf), "%s", key + 2);
		if ((slash = strchr(buf, '/')) == NULL)
			return 0;
		*slash = '\0';
		rc = value != NULL ? reg_fic_add(f->reg, buf, slash + 1, &e) :
		    reg_fic_remove(f->reg, buf, slash + 1, &e);
	} else if (strncmp(key, "c/", 2) == 0) {
		if (value != NULL)
			rc = apply_customer(f, key + 2, value);
		else if ((rc = reg_customer_remove(f->reg, key + 2,
		    actor != NULL ? actor : "fleet", &e)) < 0 &&
		    !benign(rc, &e)) {
			fleet_error(f, e.msg);
			rc = -1;
		} else
			rc = 0;
		/* Whatever a host cached under its old record goes. */
		if (f->changed != NULL)
			f->changed(f->changed_arg, key + 2);
		return rc;
	}
	if (!benign(rc, &e)) {
		snprintf(msg, sizeof(msg), "mirror: %s: %s", key, e.msg);
		fleet_error(f, msg);
		return -1;
	}
	return 0;
}

/* Order of the changes of one revision: what a change needs goes first. */
static int
phase(const char *key, int put)
{
	static const char *const order[] = { "w/", "a/", "f/", "c/" };
	int i;

	for (i = 0; i < 4; i++)
		if (strncmp(key, order[i], 2) == 0)
			return put ? i : 7 - i;
	return -1;
}

/*
 * Apply the events of one revision ([{"k", "v"|null}], keys below the
 * prefix) in dependency order; a delete of c/ID takes its actor from the
 * r/ID written with it.
 */
static void
apply_group(struct fleet *f, json_t *items)
{
	json_t *it, *note;
	const char *k, *actor;
	size_t i;
	int p, ph;

	for (ph = 0; ph < 8; ph++)
		json_array_foreach(items, i, it) {
			k = json_string_value(json_object_get(it, "k"));
			note = json_object_get(it, "v");
			if ((p = phase(k, !json_is_null(note))) != ph)
				continue;
			actor = NULL;
			if (json_is_null(note) && strncmp(k, "c/", 2) == 0) {
				size_t j;
				json_t *o;
				char rk[ETCD_KEY_MAX];

				snprintf(rk, sizeof(rk), "r/%s", k + 2);
				json_array_foreach(items, j, o)
					if (strcmp(json_string_value(
					    json_object_get(o, "k")), rk) == 0)
						actor = json_string_value(
						    json_object_get(json_object_get(o,
						    "v"), "actor"));
			}
			if (fleet_apply_kv(f, k, json_is_null(note) ? NULL :
			    note, actor) < 0)
				atomic_fetch_add(&f->n_apply_err, 1);
		}
}

/* {"k", "v"} of one etcd kv (v null for a delete); NULL if not ours. */
static json_t *
item(struct fleet *f, json_t *kv, int put)
{
	char *key = NULL, *val = NULL;
	size_t plen = strlen(f->prefix);
	json_t *v = json_null(), *it = NULL;

	if (etcd_unb64(json_object_get(kv, "key"), &key, NULL) < 0 ||
	    strncmp(key, f->prefix, plen) != 0)
		goto out;
	if (put) {
		if (etcd_unb64(json_object_get(kv, "value"), &val, NULL) < 0)
			goto out;
		if ((v = json_loads(val, JSON_DECODE_ANY, NULL)) == NULL)
			v = json_string(val);
	}
	it = json_pack("{s:s, s:O}", "k", key + plen, "v", v);
out:
	json_decref(v);
	free(key);
	free(val);
	return it;
}

/* The watch's messages: apply events revision by revision. */
static int
on_watch(void *arg, json_t *msg)
{
	struct fleet *f = arg;
	json_t *res = json_object_get(msg, "result"), *ev, *group = NULL, *it;
	long long hrev, rev, cur = 0, last = 0;
	struct xerr e;
	size_t i;
	int batch = 0;

	if (res == NULL) {
		char *t = json_dumps(msg, JSON_COMPACT);

		fleet_error(f, t != NULL ? t : "watch error");
		free(t);
		return -1;
	}
	hrev = etcd_int(json_object_get(res, "header"), "revision");
	pthread_mutex_lock(&f->mu);
	if (hrev > f->seen)
		f->seen = hrev;
	pthread_mutex_unlock(&f->mu);
	if (etcd_int(res, "compact_revision") > 0)
		return 2;
	/* etcd restored from an older snapshot: the mirror is ahead. */
	if (json_is_true(json_object_get(res, "created")) && hrev > 0 &&
	    hrev < fleet_view(f)) {
		log_warn("fleet: etcd is at revision %lld, behind this "
		    "mirror's %lld (restored from a snapshot?); resyncing",
		    hrev, fleet_view(f));
		return 2;
	}
	if (json_is_true(json_object_get(res, "canceled")))
		return 3;
	/* One SQLite commit for the whole message: etcd is the durable
	 * copy and replaying is harmless, so the mirror need not fsync
	 * every revision. */
	if (json_array_size(json_object_get(res, "events")) > 0 &&
	    reg_batch_begin(f->reg, &e) == 0)
		batch = 1;
	json_array_foreach(json_object_get(res, "events"), i, ev) {
		json_t *kv = json_object_get(ev, "kv");
		int put = json_object_get(ev, "type") == NULL ||
		    strcmp(json_string_value(json_object_get(ev, "type")),
		    "PUT") == 0;

		rev = etcd_int(kv, "mod_revision");
		if (group != NULL && rev != cur) {
			apply_group(f, group);
			json_decref(group);
			group = NULL;
		}
		if (group == NULL)
			group = json_array();
		cur = rev;
		if ((it = item(f, kv, put)) != NULL)
			json_array_append_new(group, it);
		last = rev;
		atomic_fetch_add(&f->n_events, 1);
	}
	if (group != NULL) {
		apply_group(f, group);
		json_decref(group);
	}
	if (batch && reg_batch_end(f->reg, 1, &e) < 0) {
		fleet_error(f, e.msg);
		return -1;	/* nothing applied: watch again from before */
	}
	if (batch && f->changed != NULL)
		f->changed(f->changed_arg, NULL);
	/* A progress notification: everything up to its header is here. */
	if (last == 0 && !json_is_true(json_object_get(res, "created")))
		last = hrev;
	if (last > 0) {
		pthread_mutex_lock(&f->mu);
		if (last > f->applied)
			f->applied = last;
		f->last_apply_at = (long long)time(NULL);
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		state_write(f, 0);
	}
	return f->stop ? 1 : 0;
}

/* --- full resync -------------------------------------------------------- */

/* Range one kind ("w/") at `*rev` (0: now, then fixed) page by page,
 * applying puts and noting keys in `seen`. */
static int
resync_kind(struct fleet *f, const char *kind, long long *rev, json_t *seen,
    struct xerr *e)
{
	char from[ETCD_KEY_MAX], end[ETCD_KEY_MAX], *last = NULL;
	json_t *rep = NULL, *kv, *it, *group;
	long long hrev;
	size_t i;
	int rc, more;

	fleet_key(f, from, sizeof(from), "%s", kind);
	etcd_prefix_end(from, end, sizeof(end));
	do {
		if ((rc = etcd_range(f->etcd, from, end, *rev, FLEET_PAGE,
		    &rep, &hrev, e)) < 0)
			break;
		if (*rev == 0)
			*rev = hrev;
		group = json_array();
		json_array_foreach(json_object_get(rep, "kvs"), i, kv) {
			if ((it = item(f, kv, 1)) == NULL)
				continue;
			free(last);
			last = NULL;
			etcd_unb64(json_object_get(kv, "key"), &last, NULL);
			if (json_object_get(seen, json_string_value(
			    json_object_get(it, "k"))) != NULL) {
				json_decref(it);
				continue;	/* the page's first: done */
			}
			json_object_set_new(seen, json_string_value(
			    json_object_get(it, "k")), json_true());
			json_array_append_new(group, it);
		}
		apply_group(f, group);
		json_decref(group);
		more = json_is_true(json_object_get(rep, "more"));
		json_decref(rep);
		rep = NULL;
		if (more && last != NULL)
			snprintf(from, sizeof(from), "%s", last);
	} while (more && last != NULL && !f->stop);
	free(last);
	return rc;
}

/* Delete from the mirror what etcd no longer has (or report it). */
static int
resync_prune(struct fleet *f, json_t *seen, int first)
{
	json_t *list = NULL, *o, *fic;
	char k[ETCD_KEY_MAX];
	const char *name;
	size_t i, j;
	struct xerr e;
	int extra = 0;

	if (reg_customer_list(f->reg, &list, &e) == 0) {
		json_array_foreach(list, i, o) {
			name = json_string_value(json_object_get(o, "id"));
			snprintf(k, sizeof(k), "c/%s", name);
			if (name == NULL || json_object_get(seen, k) != NULL)
				continue;
			extra++;
			if (!first)
				fleet_apply_kv(f, k, NULL, "fleet resync");
		}
		json_decref(list);
	}
	if (reg_app_list(f->reg, &list, &e) == 0) {
		json_array_foreach(list, i, o) {
			snprintf(k, sizeof(k), "a/%s", json_string_value(
			    json_object_get(o, "name")));
			if (json_object_get(seen, k) == NULL)
				extra++;	/* applications stay */
			json_array_foreach(json_object_get(o, "fics"), j, fic) {
				snprintf(k, sizeof(k), "f/%s/%s",
				    json_string_value(json_object_get(o,
				    "name")), json_string_value(fic));
				if (json_object_get(seen, k) != NULL)
					continue;
				extra++;
				if (!first)
					fleet_apply_kv(f, k, NULL, NULL);
			}
		}
		json_decref(list);
	}
	if (reg_workload_list(f->reg, &list, &e) == 0) {
		json_array_foreach(list, i, o) {
			snprintf(k, sizeof(k), "w/%s", json_string_value(
			    json_object_get(o, "name")));
			if (json_object_get(seen, k) != NULL)
				continue;
			extra++;
			if (!first)
				fleet_apply_kv(f, k, NULL, NULL);
		}
		json_decref(list);
	}
	return extra;
}

/*
 * Make the mirror equal to etcd at one revision.  A first sync (no
 * revision kept) never deletes: a registry with objects etcd lacks was
 * used alone and must be imported first (xtcmk-fleet(7)).
 */
static int
resync(struct fleet *f, struct xerr *e)
{
	static const char *const kinds[] = { "w/", "a/", "f/", "c/" };
	json_t *seen = json_object();
	long long rev = 0;
	int i, rc = 0, extra, first = !f->have_state;

	atomic_fetch_add(&f->n_resync, 1);
	for (i = 0; i < 4 && rc == 0; i++)
		rc = resync_kind(f, kinds[i], &rev, seen, e);
	if (rc == 0) {
		extra = resync_prune(f, seen, first);
		if (first && extra > 0) {
			char msg[512];

			snprintf(msg, sizeof(msg), "the local registry holds %d "
			    "object(s) that etcd under %s does not; they are "
			    "kept, not shared: import them with `xtcmkctl "
			    "registry export` and `registry import` "
			    "(xtcmk-fleet(7))", extra, f->prefix);
			fleet_error(f, msg);
			f->diverged = 1;
		}
		if (f->changed != NULL)
			f->changed(f->changed_arg, NULL);
		pthread_mutex_lock(&f->mu);
		f->applied = rev;
		f->have_state = 1;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		state_write(f, 1);
		log_info("fleet: mirror resynced at etcd revision %lld", rev);
	}
	json_decref(seen);
	return rc;
}

static void
pause_ms(struct fleet *f, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&f->mu);
	if (!f->stop)
		pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	pthread_mutex_unlock(&f->mu);
}

static void *
mirror_main(void *arg)
{
	struct fleet *f = arg;
	struct xerr e;
	int rc, need_resync = !f->have_state;
	long long from;

	while (!f->stop) {
		if (need_resync) {
			if (resync(f, &e) < 0) {
				fleet_error(f, e.msg);
				pause_ms(f, FLEET_BACKOFF_MS);
				continue;
			}
			need_resync = 0;
		}
		from = fleet_view(f) + 1;
		atomic_fetch_add(&f->n_watch, 1);
		rc = etcd_watch(f->etcd, f->prefix, f->end, from, on_watch, f,
		    &f->stop, &e);
		state_write(f, 1);
		if (rc == 2) {
			log_info("fleet: revision %lld was compacted away; "
			    "resyncing the mirror", from);
			need_resync = 1;
		} else if (rc < 0) {
			fleet_error(f, e.msg);
			pause_ms(f, FLEET_BACKOFF_MS);
		}
	}
	return NULL;
}

/* --- life cycle ----------------------------------------------------------- */

static int
read_password(const char *path, char **ret, struct xerr *e)
{
	char *buf = NULL;
	size_t n;

	if (atomicfile_read(AT_FDCWD, path, FLEET_PASSWORD_MAX, &buf, &n) < 0)
		return xerr_set(e, XTCMK_E_INVAL, "[registry] password_file %s "
		    "cannot be read (a regular file of at most %d bytes)",
		    path, FLEET_PASSWORD_MAX);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	*ret = buf;
	return 0;
}

int
fleet_open(const struct config *cfg, struct registry *reg,
    void (*changed)(void *, const char *), void *arg,
    struct fleet **ret_fleet, struct xerr *e)
{
	struct etcd_opts o;
	struct fleet *f;
	char *eps = NULL, *tok, *save = NULL, *pw = NULL;
	int rc;

	*ret_fleet = NULL;
	if (cfg->registry_backend == NULL ||
	    strcmp(cfg->registry_backend, "sqlite") == 0)
		return 0;
	memset(&o, 0, sizeof(o));
	if ((eps = strdup(cfg->registry_endpoints)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	for (tok = strtok_r(eps, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save)) {
		if (o.n_endpoints == ETCD_ENDPOINTS_MAX) {
			free(eps);
			return xerr_set(e, XTCMK_E_INVAL, "[registry] "
			    "endpoints: at most %d", ETCD_ENDPOINTS_MAX);
		}
		o.endpoints[o.n_endpoints++] = tok;
	}
	o.ca_file = cfg->registry_ca_file;
	o.cert_file = cfg->registry_cert_file;
	o.key_file = cfg->registry_key_file;
	o.user = cfg->registry_user;
	o.timeout_ms = cfg->registry_timeout_ms;
	if (cfg->registry_password_file != NULL &&
	    (rc = read_password(cfg->registry_password_file, &pw, e)) < 0) {
		free(eps);
		return rc;
	}
	o.password = pw;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		free(eps);
		free(pw);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	pthread_cond_init(&f->usage_cv, NULL);
	f->reg = reg;
	f->changed = changed;
	f->changed_arg = arg;
	f->sync_ms = cfg->registry_sync_timeout_ms;
	snprintf(f->prefix, sizeof(f->prefix), "%s", cfg->registry_prefix);
	etcd_prefix_end(f->prefix, f->end, sizeof(f->end));
	f->state_dir = strdup(cfg->state_dir);
	f->endpoints = strdup(cfg->registry_endpoints);
	rc = etcd_open(&o, &f->etcd, e);
	if (pw != NULL)
		OPENSSL_clear_free(pw, strlen(pw));
	free(eps);
	if (rc < 0 || f->state_dir == NULL || f->endpoints == NULL) {
		fleet_close(f);
		return rc < 0 ? rc : xerr_set(e, XTCMK_E_NOMEM,
		    "out of memory");
	}
	state_read(f);
	fleet_usage_host(f->state_dir, f->host, sizeof(f->host));
	if ((f->usage_pending = json_object()) == NULL) {
		fleet_close(f);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	if (pthread_create(&f->usage_thread, NULL, fleet_usage_main, f) != 0) {
		fleet_close(f);
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot start the fleet "
		    "usage thread");
	}
	f->usage_started = 1;
	if (pthread_create(&f->thread, NULL, mirror_main, f) != 0) {
		fleet_close(f);
		return xerr_set(e, XTCMK_E_INTERNAL, "cannot start the fleet "
		    "mirror thread");
	}
	f->started = 1;
	log_info("fleet: registry in etcd at %s under %s; mirror from "
	    "revision %lld", f->endpoints, f->prefix, f->applied);
	*ret_fleet = f;
	return 0;
}

void
fleet_close(struct fleet *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_cond_broadcast(&f->usage_cv);
	pthread_mutex_unlock(&f->mu);
	if (f->started) {
		pthread_join(f->thread, NULL);
		state_write(f, 1);
	}
	if (f->usage_started)
		pthread_join(f->usage_thread, NULL);
	json_decref(f->usage_pending);
	etcd_free(f->etcd);
	free(f->state_dir);
	free(f->endpoints);
	pthread_cond_destroy(&f->cv);
	pthread_cond_destroy(&f->usage_cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

json_t *
fleet_status(struct fleet *f)
{
	json_t *st, *rep = NULL;
	long long maxmod = 0, hrev = 0;
	struct xerr e;
	json_t *req;

	if (f == NULL)
		return json_pack("{s:s}", "backend", "sqlite");
	/* The newest change under the prefix, for the lag. */
	req = json_pack("{s:o, s:o, s:s, s:s, s:s, s:b}", "key",
	    etcd_b64s(f->prefix), "range_end", etcd_b64s(f->end), "limit", "1",
	    "sort_order", "DESCEND", "sort_target", "MOD", "keys_only", 1);
	if (req != NULL && etcd_call(f->etcd, "/v3/kv/range", req, &rep,
	    &e) == 0) {
		hrev = etcd_int(json_object_get(rep, "header"), "revision");
		maxmod = etcd_int(json_array_get(json_object_get(rep, "kvs"),
		    0), "mod_revision");
	} else
		fleet_error(f, e.msg);
	json_decref(req);
	json_decref(rep);
	pthread_mutex_lock(&f->mu);
	st = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:s?, s:I, "
	    "s:I, s:b}",
	    "backend", "etcd", "endpoints", f->endpoints, "prefix", f->prefix,
	    "revision", (json_int_t)f->applied,
	    "etcd_revision", (json_int_t)(hrev > f->seen ? hrev : f->seen),
	    "lag", (json_int_t)(maxmod > f->applied ? maxmod - f->applied : 0),
	    "etcd_reachable", hrev > 0,
	    "last_error", f->last_error[0] ? f->last_error : NULL,
	    "last_error_at", (json_int_t)f->last_error_at,
	    "last_apply_at", (json_int_t)f->last_apply_at,
	    "diverged", f->diverged);
	pthread_mutex_unlock(&f->mu);
	if (st != NULL)
		json_object_set_new(st, "counters", json_pack("{s:I, s:I, s:I, "
		    "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		    "txns", (json_int_t)f->n_txn,
		    "conflicts", (json_int_t)f->n_conflict,
		    "retries", (json_int_t)f->n_retry,
		    "refused", (json_int_t)f->n_refused,
		    "events", (json_int_t)f->n_events,
		    "apply_errors", (json_int_t)f->n_apply_err,
		    "resyncs", (json_int_t)f->n_resync,
		    "sync_timeouts", (json_int_t)f->n_sync_timeout,
		    "watches", (json_int_t)f->n_watch,
		    "import_txns", (json_int_t)f->n_import_txn,
		    "import_customers", (json_int_t)f->n_import_customers,
		    "import_redecided", (json_int_t)f->n_import_redecided));
	return st;
}

/* --- the etcd registry backend (backend.h) ------------------------------ */

#define F(rb)	((struct fleet *)(rb)->impl)

static long long
et_view(struct regb *rb)
{
	return fleet_view(F(rb));
}

static int
et_onboard(struct regb *rb, long long view, json_t *customer,
    json_t *decision, json_t *why, const char *policy_hash, struct xerr *e)
{
	return fleet_onboard(F(rb), rb->reg, view, customer, decision, why,
	    policy_hash, e);
}

static int
et_onboard_batch(struct regb *rb, json_t *customers,
    const struct regb_batch *cb, struct xerr *e)
{
	return fleet_onboard_batch(F(rb), rb->reg, customers, cb, e);
}

static int
et_write(struct regb *rb, const char *cmd, json_t *req, const char *actor,
    json_t **ret_reply, struct xerr *e)
{
	return fleet_admin(F(rb), rb->reg, cmd, req, actor, ret_reply, e);
}

static int
et_import(struct regb *rb, json_t *req, json_t **ret_reply, struct xerr *e)
{
	return fleet_import(F(rb), rb->reg, req, ret_reply, e);
}

static void
et_usage_publish(struct regb *rb, json_t *rows)
{
	fleet_usage_publish(F(rb), rows);
}

static int
et_usage_merge(struct regb *rb, const char *customer, json_t *usage,
    struct xerr *e)
{
	return fleet_usage_merge(F(rb), customer, usage, e);
}

static int
et_retry(struct regb *rb)
{
	fleet_count_retry(F(rb));
	return 1;
}

static json_t *
et_status(struct regb *rb)
{
	return fleet_status(F(rb));
}

static void
et_close(struct regb *rb)
{
	fleet_close(F(rb));
	free(rb);
}

static const struct regb_ops etcd_ops = {
	"etcd", et_view, et_onboard, et_onboard_batch, et_write, et_import,
	et_usage_publish, et_usage_merge, et_retry, et_status, et_close
};

int
regb_etcd_open(const struct config *cfg, struct registry *reg,
    void (*changed)(void *, const char *), void *arg, struct regb **ret_rb,
    struct xerr *e)
{
	struct regb *rb;
	struct fleet *f = NULL;
	int rc;

	if ((rb = calloc(1, sizeof(*rb))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if ((rc = fleet_open(cfg, reg, changed, arg, &f, e)) < 0) {
		free(rb);
		return rc;
	}
	rb->impl = f;
	rb->ops = &etcd_ops;
	rb->reg = reg;
	*ret_rb = rb;
	return 0;
}
