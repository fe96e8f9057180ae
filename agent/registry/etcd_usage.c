/*
 * etcd_usage.c - key usage for the whole fleet (see fleet.h).  Usage
 * counters stay per host (the SQLite usage table); each agent publishes
 * its cumulative rows of a customer under u/CUSTOMER/HOST with a lease it
 * keeps alive, from its own thread, so `key status` on any host can say
 * which versions are still used anywhere.  A host that stops publishing
 * drops out when its lease expires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fleet.h"
#include "fleet_int.h"
#include "log.h"
#include "registry.h"

#define USAGE_TTL_S		3600	/* a silent host's rows expire */
#define USAGE_PERIOD_MS		1000	/* publish what changed, at most */
#define USAGE_PENDING_MAX	100000	/* customers waiting to publish */

/* This host's name in u/ keys: host name and a hash of the state dir,
 * so two agents on one machine stay apart. */
void
fleet_usage_host(const char *state_dir, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char host[64] = "host";

	gethostname(host, sizeof(host) - 1);
	host[strcspn(host, "/")] = '\0';
	EVP_Digest(state_dir, strlen(state_dir), md, &n, EVP_sha256(), NULL);
	snprintf(buf, len, "%s-%02x%02x%02x%02x", host, md[0], md[1], md[2],
	    md[3]);
}

void
fleet_usage_publish(struct fleet *f, json_t *rows)
{
	json_t *row;
	size_t i;

	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	json_array_foreach(rows, i, row) {
		const char *c = json_string_value(json_object_get(row,
		    "customer"));

		if (c != NULL && json_object_size(f->usage_pending) <
		    USAGE_PENDING_MAX)
			json_object_set_new(f->usage_pending, c, json_true());
	}
	pthread_cond_broadcast(&f->usage_cv);
	pthread_mutex_unlock(&f->mu);
}

/* Put one customer's rows under this host's lease. */
static int
publish_one(struct fleet *f, const char *customer, struct xerr *e)
{
	json_t *rows = NULL, *txn;
	char k[ETCD_KEY_MAX], *t;
	long long rev;
	int ok, rc;

	if ((rc = reg_usage_get(f->reg, customer, &rows, e)) < 0)
		return rc;
	fleet_key(f, k, sizeof(k), "u/%s/%s", customer, f->host);
	t = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	if (t == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	txn = json_pack("{s:[], s:[o]}", "compare", "success", etcd_put(k, t,
	    f->lease));
	free(t);
	rc = etcd_txn(f->etcd, txn, &ok, &rev, e);
	json_decref(txn);
	return rc;
}

void *
fleet_usage_main(void *arg)
{
	struct fleet *f = arg;
	struct timespec ts;
	json_t *todo;
	const char *c;
	json_t *v;
	struct xerr e;
	long long renew = 0, now;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += USAGE_PERIOD_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&f->usage_cv, &f->mu, &ts);
		if (f->stop)
			break;
		todo = f->usage_pending;
		f->usage_pending = json_object();
		pthread_mutex_unlock(&f->mu);
		now = (long long)time(NULL);
		/* A lease of its own, renewed at a third of its life. */
		if (f->lease != 0 && now >= renew &&
		    etcd_lease_keepalive(f->etcd, f->lease, &e) < 0) {
			f->lease = 0;
			if (e.code != XTCMK_E_UNAVAILABLE)
				fleet_error(f, e.msg);
		} else if (f->lease != 0 && now >= renew)
			renew = now + USAGE_TTL_S / 3;
		if (f->lease == 0 && json_object_size(todo) > 0 &&
		    etcd_lease_grant(f->etcd, USAGE_TTL_S, &f->lease, &e) == 0)
			renew = now + USAGE_TTL_S / 3;
		json_object_foreach(todo, c, v) {
			if (f->lease == 0 || publish_one(f, c, &e) < 0) {
				/* Try again later (etcd down, lease lost). */
				fleet_usage_publish(f, json_pack("[{s:s}]",
				    "customer", c));
				break;
			}
		}
		json_decref(todo);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/*
 * Add the other hosts' published rows of `customer` to `usage` (this
 * host's rows, [{version, wraps, unwraps, first, last}]): counts summed
 * per version, "hosts" counting the hosts that used it.
 */
int
fleet_usage_merge(struct fleet *f, const char *customer, json_t *usage,
    struct xerr *e)
{
	char k[ETCD_KEY_MAX], end[ETCD_KEY_MAX], *key = NULL, *val = NULL;
	json_t *rep = NULL, *kv, *rows, *row, *mine;
	size_t i, j, m;
	int rc;

	if (f == NULL)
		return 0;
	json_array_foreach(usage, i, row)
		json_object_set_new(row, "hosts", json_integer(1));
	fleet_key(f, k, sizeof(k), "u/%s/", customer);
	etcd_prefix_end(k, end, sizeof(end));
	if ((rc = etcd_range(f->etcd, k, end, 0, 0, &rep, NULL, e)) < 0)
		return rc;
	json_array_foreach(json_object_get(rep, "kvs"), i, kv) {
		free(key);
		free(val);
		key = val = NULL;
		if (etcd_unb64(json_object_get(kv, "key"), &key, NULL) < 0 ||
		    etcd_unb64(json_object_get(kv, "value"), &val, NULL) < 0)
			continue;
		if (strcmp(key + strlen(k), f->host) == 0)
			continue;	/* ours: counted from SQLite */
		if ((rows = json_loads(val, 0, NULL)) == NULL)
			continue;
		json_array_foreach(rows, j, row) {
			const char *v = json_string_value(json_object_get(row,
			    "version"));

			mine = NULL;
			json_array_foreach(usage, m, mine)
				if (v != NULL && json_equal(json_object_get(
				    mine, "version"), json_object_get(row,
				    "version")))
					break;
			if (v == NULL)
				continue;
			if (m == json_array_size(usage)) {
				json_object_set_new(row, "hosts",
				    json_integer(1));
				json_array_append(usage, row);
				continue;
			}
#define ADD(f)	json_object_set_new(mine, f, json_integer(		\
	json_integer_value(json_object_get(mine, f)) +			\
	json_integer_value(json_object_get(row, f))))
			ADD("wraps");
			ADD("unwraps");
			ADD("hosts");
#undef ADD
			if (json_integer_value(json_object_get(row, "last")) >
			    json_integer_value(json_object_get(mine, "last")))
				json_object_set(mine, "last",
				    json_object_get(row, "last"));
		}
		json_decref(rows);
	}
	free(key);
	free(val);
	json_decref(rep);
	return 0;
}
