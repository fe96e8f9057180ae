/*
 * service.c - decisions: the policy workers, the decision cache and the
 * request dispatch.
 *
 * With [policy] isolation = process (the default) policies run in
 * policy_workers worker processes (policyworker/worker.h), one per slot:
 * a request checks a slot out and talks to its worker itself.  Lua
 * never runs in the agent, and every wait on a worker has a deadline,
 * past which the worker is killed and the call fails naming the policy
 * and the limit; the slot gets a fresh worker before it is given back.
 * With inprocess, kept for comparison, policy threads each own a
 * lua_State (struct policy_vm) and other threads hand them jobs.  A
 * reload reads a new set and has a worker compile and self-test it (in
 * process mode a throw-away one, under the same deadlines), then swaps
 * the pointer; slots and threads replace their worker or state before
 * their next call.  Failing sets never replace a working one.
 *
 * The decision for an onboarded customer is computed once (role and
 * key-versioning policies on the registry's data), encoded in the wire
 * format and cached; a DECIDE for a cached customer is a hash lookup and a
 * memcpy.  Any committed registry change or policy swap invalidates the
 * cache (generation numbers), so a decision is never staler than the data.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dlog.h"
#include "backend.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "memcache.h"
#include "policy.h"
#include "registry.h"
#include "scope.h"
#include "service.h"
#include "service_int.h"
#include "shmcache.h"
#include "strhash.h"
#include "validate.h"
#include "worker.h"

#define JOB_QUEUE_MAX		1024
#define DCACHE_BUCKETS		4096
#define DCACHE_MAX		(1u << 20)	/* entries before a flush */

struct job {
	enum policy_kind	 kind;
	const char		*op;		/* decide, scope, move */
	json_t			*input;
	json_t			*output;
	struct policy_set	*set;		/* the set that answered */
	int			 rc;
	struct xerr		 err;
	int			 done;
	struct job		*next;
};

struct dentry {
	struct dentry	*next;
	char		*customer;
	unsigned long long reg_gen, pol_gen;
	size_t		 len;
	uint8_t		 payload[];
};

struct service {
	struct config		*cfg;
	struct registry		*reg;
	struct regb		*rb;		/* the registry backend */
	struct dlog		*dlog;
	struct keys		*keys;
	time_t			 started;
	int			 lockfd;	/* flock on state_dir/xtcmkd.lock */
	char			 listen_path[108];	/* socket in use */

	pthread_mutex_t		 pol_mu;	/* set, pol_gen */
	struct policy_set	*set;
	atomic_ullong		 pol_gen;

	pthread_mutex_t		 job_mu;
	pthread_cond_t		 job_cv;	/* work for a worker */
	pthread_cond_t		 done_cv;	/* a job finished */
	struct job		*jhead, *jtail;
	unsigned		 jcount;
	int			 stopping;
	pthread_t		*workers;	/* inprocess: policy threads */
	unsigned		 nthreads;
	unsigned		 nworkers;	/* policy_workers */
	int			 inprocess;	/* [policy] isolation */
	const char		*test_hook;	/* tests only, see policyd.c */
	atomic_int		 astop;		/* cuts worker waits short */
	struct pworker_counters	 pw;
	atomic_int		*pw_pid;	/* per slot, 0: none */
	/* isolation = process: worker slots a request checks out. */
	pthread_mutex_t		 pw_mu;
	pthread_cond_t		 pw_cv;		/* a slot came free */
	struct pworker		**pw_slot;
	unsigned char		*pw_busy;
	unsigned		 pw_waiting;

	pthread_mutex_t		 onboard_mu;	/* one onboarding at a time */
	pthread_mutex_t		 reload_mu;	/* one reload at a time */

	pthread_rwlock_t	 dc_lock;
	struct dentry		*dc[DCACHE_BUCKETS];
	unsigned		 dc_count;

	struct shmcache		*mc;		/* fast path, or NULL */

	atomic_ullong		 n_req[16], n_err, n_hit, n_miss, n_policy,
				 n_policy_err, n_conn_total, n_conn_refused,
				 n_conn_nofile,
				 n_reload, n_reload_fail,
				 n_onboard[SVC__COUNT];
	atomic_int		 n_conn;
};

struct config *
service_config(struct service *s)
{
	return s->cfg;
}

struct registry *
service_registry(struct service *s)
{
	return s->reg;
}

struct regb *
service_backend(struct service *s)
{
	return s->rb;
}

struct dlog *
service_dlog(struct service *s)
{
	return s->dlog;
}

struct keys *
service_keys(struct service *s)
{
	return s->keys;
}

unsigned long long
service_generation(struct service *s)
{
	return reg_generation(s->reg) + (atomic_load(&s->pol_gen) << 40);
}

/* --- policy workers -------------------------------------------------- */

static struct policy_set *
current_set(struct service *s)
{
	struct policy_set *set;

	pthread_mutex_lock(&s->pol_mu);
	set = policy_set_ref(s->set);
	pthread_mutex_unlock(&s->pol_mu);
	return set;
}

/* In-process: run the job on this thread's lua_State. */
static void
job_inprocess(struct policy_vm **vmp, struct policy_set *set, struct job *j)
{
	if (*vmp != NULL && policy_vm_set(*vmp) != set) {
		policy_vm_free(*vmp);
		*vmp = NULL;
	}
	j->rc = 0;
	if (*vmp == NULL)
		j->rc = policy_vm_new(set, vmp, &j->err);
	if (j->rc < 0)
		return;
	if (strcmp(j->op, "scope") == 0)
		j->rc = policy_vm_scope(*vmp, j->input, NULL, &j->output,
		    &j->err);
	else if (strcmp(j->op, "move") == 0)
		j->rc = policy_vm_move(*vmp, j->input, NULL, &j->output,
		    &j->err);
	else
		j->rc = policy_vm_call(*vmp, j->kind, j->input, &j->output,
		    &j->err);
}

/*
 * Make sure slot `idx` has a usable worker process for `set`: replace
 * one that serves another set, died or wore out.
 */
static int
worker_ready(struct service *s, unsigned idx, struct pworker **pwp,
    struct policy_set *set, struct xerr *e)
{
	int rc;

	if (*pwp != NULL && (pworker_set(*pwp) != set ||
	    !pworker_usable(*pwp))) {
		pworker_free(*pwp);
		*pwp = NULL;
		atomic_store(&s->pw_pid[idx], 0);
	}
	if (*pwp != NULL)
		return 0;
	rc = pworker_spawn(s->cfg->policy_worker, set, s->test_hook, 0,
	    &s->pw, &s->astop, pwp, e);
	if (rc == 0)
		atomic_store(&s->pw_pid[idx], (int)pworker_pid(*pwp));
	return rc;
}

/* isolation = inprocess: a policy thread with its own lua_State. */
static void *
worker_main(void *arg)
{
	struct service *s = arg;
	struct policy_vm *vm = NULL;
	struct policy_set *set;
	struct job *j;

	pthread_mutex_lock(&s->job_mu);
	for (;;) {
		while (s->jhead == NULL && !s->stopping)
			pthread_cond_wait(&s->job_cv, &s->job_mu);
		if (s->jhead == NULL)
			break;
		j = s->jhead;
		s->jhead = j->next;
		if (s->jhead == NULL)
			s->jtail = NULL;
		s->jcount--;
		pthread_mutex_unlock(&s->job_mu);

		set = current_set(s);
		job_inprocess(&vm, set, j);
		j->set = set;

		pthread_mutex_lock(&s->job_mu);
		j->done = 1;
		pthread_cond_broadcast(&s->done_cv);
	}
	pthread_mutex_unlock(&s->job_mu);
	policy_vm_free(vm);
	return NULL;
}

/*
 * isolation = process: the requesting thread checks a worker slot out
 * and talks to the worker itself, so a call costs the worker's round
 * trip and no hand-over to another thread; calls that belong together
 * (role and versioning) go as one batch, one round trip.  Waiting for
 * a free slot is bounded by the request timeout; the calls by the
 * worker deadlines.  A worker killed or worn out is replaced before the
 * slot is given back.  Returns <0 when no call ran (req[].rc unset).
 */
/* Wait, within the request timeout, for a free policy worker slot. */
static int
slot_get(struct service *s, unsigned *ret_i, struct xerr *e)
{
	struct timespec dl;
	unsigned i;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += s->cfg->request_timeout_s;
	pthread_mutex_lock(&s->pw_mu);
	if (s->pw_waiting >= JOB_QUEUE_MAX) {
		pthread_mutex_unlock(&s->pw_mu);
		return xerr_set(e, XTCMK_E_BUSY, "policy queue full (%d "
		    "jobs); retry later", JOB_QUEUE_MAX);
	}
	s->pw_waiting++;
	for (;;) {
		for (i = 0; i < s->nworkers && s->pw_busy[i]; i++)
			;
		if (i < s->nworkers || atomic_load(&s->astop) ||
		    pthread_cond_timedwait(&s->pw_cv, &s->pw_mu, &dl) ==
		    ETIMEDOUT)
			break;
	}
	s->pw_waiting--;
	if (i >= s->nworkers || atomic_load(&s->astop)) {
		pthread_mutex_unlock(&s->pw_mu);
		return xerr_set(e, XTCMK_E_BUSY, "every policy worker stayed "
		    "busy for %u s (or the agent is stopping); retry later",
		    s->cfg->request_timeout_s);
	}
	s->pw_busy[i] = 1;
	pthread_mutex_unlock(&s->pw_mu);
	*ret_i = i;
	return 0;
}

/* Give slot i back; a worker killed or worn out is replaced first. */
static void
slot_put(struct service *s, unsigned i, struct policy_set *set)
{
	struct xerr err;

	if (s->pw_slot[i] != NULL && !pworker_usable(s->pw_slot[i]) &&
	    !atomic_load(&s->astop) &&
	    worker_ready(s, i, &s->pw_slot[i], set, &err) < 0)
		log_err("policy worker: %s", err.msg);
	pthread_mutex_lock(&s->pw_mu);
	s->pw_busy[i] = 0;
	pthread_cond_signal(&s->pw_cv);
	pthread_mutex_unlock(&s->pw_mu);
}

static int
run_direct_batch(struct service *s, struct pworker_req *req, size_t n,
    struct policy_set **ret_set, struct xerr *e)
{
	struct policy_set *set;
	unsigned i;
	int rc;

	*ret_set = NULL;
	if ((rc = slot_get(s, &i, e)) < 0)
		return rc;
	set = current_set(s);
	if ((rc = worker_ready(s, i, &s->pw_slot[i], set, e)) == 0)
		pworker_call_batch(s->pw_slot[i], req, n);
	slot_put(s, i, set);
	atomic_fetch_add(&s->n_policy, rc == 0 ? n : 1);
	*ret_set = set;
	return rc;
}

int
svc_lease_get(struct service *s, struct svc_lease *l, struct xerr *e)
{
	int rc;

	memset(l, 0, sizeof(*l));
	if (s->inprocess)
		return xerr_set(e, XTCMK_E_INTERNAL, "no policy worker to "
		    "lease: policies run in the agent");
	if ((rc = slot_get(s, &l->idx, e)) < 0)
		return rc;
	l->set = current_set(s);
	if ((rc = worker_ready(s, l->idx, &s->pw_slot[l->idx], l->set,
	    e)) < 0) {
		slot_put(s, l->idx, l->set);
		policy_set_unref(l->set);
		l->set = NULL;
		return rc;
	}
	l->held = 1;
	return 0;
}

int
svc_lease_usable(struct service *s, const struct svc_lease *l)
{
	return l->held && pworker_usable(s->pw_slot[l->idx]);
}

void
svc_lease_put(struct service *s, struct svc_lease *l)
{
	if (!l->held)
		return;
	slot_put(s, l->idx, l->set);
	policy_set_unref(l->set);
	l->set = NULL;
	l->held = 0;
}

static int
run_direct(struct service *s, enum policy_kind kind, const char *op,
    json_t *input, json_t **ret_output, struct policy_set **ret_set,
    struct xerr *e)
{
	struct pworker_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = op;
	req.kind = kind;
	req.input = input;
	if ((rc = run_direct_batch(s, &req, 1, ret_set, e)) < 0)
		return rc;
	if (req.rc < 0) {
		*e = req.err;
		return req.rc;
	}
	*ret_output = req.output;
	return 0;
}

/*
 * Load the set in the configured directory: read it, then compile and
 * self-test it in a throw-away policy worker (process isolation, every
 * wait bounded) or in this thread (inprocess).
 */
static int
load_set(struct service *s, json_t *params, const struct policy_limits *lim,
    struct policy_set **ret_set, struct xerr *e)
{
	if (s->inprocess)
		return policy_set_load(s->cfg->policy_dir, s->cfg->lua_dir,
		    params, lim, ret_set, e);
	return pworker_load_set(s->cfg->policy_worker, s->cfg->policy_dir,
	    s->cfg->lua_dir, params, lim, NULL, 0, &s->pw, &s->astop,
	    ret_set, NULL, e);
}

/*
 * Log a decision.  A partition entry carries the bounded record of why
 * (scope_why), never the input: the input of a decision is as large as
 * its scope, the log line must stay small.  With `handover` (an import,
 * whose inputs and outputs nothing changes once decided) the entry is
 * encoded by the decision log's writer thread, not this one; a single
 * onboarding encodes its entries before it answers, as every other
 * decision does.
 */
static void
log_decision(struct service *s, enum policy_kind kind, const char *customer,
    json_t *input, json_t *output, const struct policy_set *set,
    const struct xerr *err, int handover)
{
	json_t *entry;

	entry = json_pack("{s:s, s:s?, s:s, s:s}",
	    "decision", policy_kind_name(kind), "customer", customer,
	    "policy", policy_set_name(set, kind),
	    "policy_hash", policy_set_hash(set));
	if (entry == NULL)
		return;
	if (kind == POLICY_PARTITION)
		json_object_set_new(entry, "why", scope_why(input,
		    json_object_get(input, "scope") != NULL));
	else
		json_object_set(entry, "input", input);
	if (output != NULL)
		json_object_set(entry, "output", output);
	if (err != NULL)
		json_object_set_new(entry, "error", json_string(err->msg));
	if (handover)
		dlog_append_owned(s->dlog, entry);	/* encoded off this thread */
	else {
		dlog_append(s->dlog, entry);
		json_decref(entry);
	}
}

/*
 * Queue a job for a policy worker and wait for it.  *ret_set gets a
 * reference to the set that answered (also on failure).
 */
static int
run_job(struct service *s, enum policy_kind kind, const char *op,
    json_t *input, json_t **ret_output, struct policy_set **ret_set,
    struct xerr *e)
{
	struct job j;

	if (!s->inprocess)
		return run_direct(s, kind, op, input, ret_output, ret_set, e);
	memset(&j, 0, sizeof(j));
	j.kind = kind;
	j.op = op;
	j.input = input;
	pthread_mutex_lock(&s->job_mu);
	if (s->jcount >= JOB_QUEUE_MAX) {
		pthread_mutex_unlock(&s->job_mu);
		*ret_set = NULL;
		return xerr_set(e, XTCMK_E_BUSY, "policy queue full (%d "
		    "jobs); retry later", JOB_QUEUE_MAX);
	}
	if (s->jtail != NULL)
		s->jtail->next = &j;
	else
		s->jhead = &j;
	s->jtail = &j;
	s->jcount++;
	pthread_cond_signal(&s->job_cv);
	while (!j.done)
		pthread_cond_wait(&s->done_cv, &s->job_mu);
	pthread_mutex_unlock(&s->job_mu);
	atomic_fetch_add(&s->n_policy, 1);
	*ret_set = j.set;
	if (j.rc < 0) {
		json_decref(j.output);
		if (e != NULL)
			*e = j.err;
		return j.rc;
	}
	*ret_output = j.output;
	return 0;
}

/*
 * What every decision goes through after its policy ran (rc, out, err
 * and a reference to the set that answered, consumed): the result
 * check, the decision log, the counters.
 */
static int
policy_done_log(struct service *s, enum policy_kind kind, const char *customer,
    json_t *input, int rc, json_t *out, struct xerr *perr,
    struct policy_set *set, json_t **ret_output, char *ret_hash,
    struct xerr *e, int handover)
{
	struct xerr err = *perr;

	if (rc == 0)
		rc = policy_verdict_check(set, kind, input, out, &err);
	if (set != NULL)
		log_decision(s, kind, customer, input,
		    rc == 0 ? out : NULL, set, rc == 0 ? NULL : &err,
		    handover);
	if (rc < 0) {
		atomic_fetch_add(&s->n_policy_err, 1);
		json_decref(out);
		if (e != NULL)
			*e = err;
		policy_set_unref(set);
		return rc;
	}
	if (ret_hash != NULL)
		snprintf(ret_hash, 65, "%s", policy_set_hash(set));
	policy_set_unref(set);
	*ret_output = out;
	return 0;
}

static int
policy_done(struct service *s, enum policy_kind kind, const char *customer,
    json_t *input, int rc, json_t *out, struct xerr *perr,
    struct policy_set *set, json_t **ret_output, char *ret_hash,
    struct xerr *e)
{
	return policy_done_log(s, kind, customer, input, rc, out, perr, set,
	    ret_output, ret_hash, e, 0);
}

int
service_policy(struct service *s, int kind, const char *customer,
    json_t *input, json_t **ret_output, char *ret_hash, struct xerr *e)
{
	struct policy_set *set = NULL;
	json_t *out = NULL;
	struct xerr err;
	int rc;

	xerr_clear(&err);
	rc = run_job(s, (enum policy_kind)kind, "decide", input, &out, &set,
	    &err);
	return policy_done(s, (enum policy_kind)kind, customer, input, rc,
	    out, &err, set, ret_output, ret_hash, e);
}

/*
 * The role and the versioning decisions of one customer.  In worker
 * processes both go to one worker as a batch, one round trip; each is
 * checked and logged as service_policy does, and a failed role
 * decision fails the pair (the versioning result is dropped).
 */
static int
policy_pair(struct service *s, const char *customer, json_t *in_role,
    json_t *in_ver, json_t **ret_role, json_t **ret_ver, struct xerr *e)
{
	struct pworker_req req[2];
	struct policy_set *set;
	int rc;

	if (s->inprocess) {
		if ((rc = service_policy(s, POLICY_ROLE, customer, in_role,
		    ret_role, NULL, e)) < 0)
			return rc;
		return service_policy(s, POLICY_VERSIONING, customer, in_ver,
		    ret_ver, NULL, e);
	}
	memset(req, 0, sizeof(req));
	req[0].op = req[1].op = "decide";
	req[0].kind = POLICY_ROLE;
	req[0].input = in_role;
	req[1].kind = POLICY_VERSIONING;
	req[1].input = in_ver;
	if ((rc = run_direct_batch(s, req, 2, &set, e)) < 0)
		return policy_done(s, POLICY_ROLE, customer, in_role, rc, NULL,
		    e, set, ret_role, NULL, e);
	policy_set_ref(set);		/* one for each policy_done */
	rc = policy_done(s, POLICY_ROLE, customer, in_role, req[0].rc,
	    req[0].output, &req[0].err, set, ret_role, NULL, e);
	if (rc < 0) {
		json_decref(req[1].output);
		policy_set_unref(set);
		return rc;
	}
	return policy_done(s, POLICY_VERSIONING, customer, in_ver, req[1].rc,
	    req[1].output, &req[1].err, set, ret_ver, NULL, e);
}

/*
 * The effective configuration as text, without the sections a reload
 * applies ([policy], [params]) and without the header line naming the
 * file: equal texts mean no restart is needed.
 */
static char *
restart_settings(const struct config *c)
{
	char *text = NULL, *line, *save = NULL, *out;
	size_t len = 0;
	FILE *f;
	int skip = 0;

	if ((f = open_memstream(&text, &len)) == NULL)
		return NULL;
	config_dump(c, f);
	fclose(f);
	if ((out = calloc(1, len + 1)) == NULL) {
		free(text);
		return NULL;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '[')
			skip = strcmp(line, "[policy]") == 0 ||
			    strcmp(line, "[params]") == 0;
		if (!skip && line[0] != '#') {
			strcat(out, line);
			strcat(out, "\n");
		}
	}
	free(text);
	return out;
}

static int
needs_restart(const struct config *a, const struct config *b)
{
	char *ta = restart_settings(a), *tb = restart_settings(b);
	int differ = ta == NULL || tb == NULL || strcmp(ta, tb) != 0;

	free(ta);
	free(tb);
	return differ;
}

/* --- fast path (agent/shmcache.c) ------------------------------------ */

/*
 * Published records reflect the registry and policy generations they
 * were computed from; invalidate them all when either moved.  Called
 * before a change is acknowledged (admin replies, reloads).
 */
static void
memcache_sync(struct service *s)
{
	shmcache_sync(s->mc, reg_generation(s->reg), atomic_load(&s->pol_gen));
}

/*
 * A customer moved or removed: keys cached in host processes under its
 * old record must not outlive it, so it gets a new revocation generation
 * (before the reply acknowledges).
 */
static void
memcache_customer_changed(struct service *s, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const char *id = json_string_value(json_object_get(req, "id"));

	if (cmd != NULL && id != NULL && (strcmp(cmd, "customer.move") == 0 ||
	    strcmp(cmd, "customer.remove") == 0))
		shmcache_customer_bump(s->mc, id);
}

/*
 * The fleet's mirror applied a change another agent made: the same as
 * an admin reply here (a moved or removed customer gets a new revocation
 * generation; then the published decisions follow the registry).
 */
static void
fleet_changed(void *arg, const char *customer)
{
	struct service *s = arg;

	if (customer != NULL)
		shmcache_customer_bump(s->mc, customer);
	else
		memcache_sync(s);
}

void
service_customer_bump(struct service *s, const char *customer)
{
	shmcache_customer_bump(s->mc, customer);
}

void
service_key_state(struct service *s, const char *customer, int revoked,
    int changed)
{
	shmcache_key_state(s->mc, customer, revoked ? XM_STATE_REVOKED :
	    XM_STATE_ACTIVE, changed);
}

/*
 * Who may read the file is who the data-plane ACL names, as far as a
 * file mode can say it: everyone for "*", one group, or else only this
 * user (other allowed peers use the socket).
 */
static int
memcache_open(struct service *s, struct xerr *e)
{
	const struct config *c = s->cfg;
	struct xerr me;
	mode_t mode = 0600;
	gid_t gid = (gid_t)-1;

	if (c->memcache == NULL || strcmp(c->memcache, "none") == 0)
		return 0;
	if (c->memcache[0] != '/')
		return xerr_set(e, XTCMK_E_INVAL, "[agent] memcache must be an "
		    "absolute path or none, not '%s'", c->memcache);
	if (c->data_uids.any || c->data_gids.any)
		mode = 0644;
	else if (c->data_gids.n == 1) {
		mode = 0640;
		gid = (gid_t)c->data_gids.ids[0];
	}
	/* An optimisation only: without it every call uses the socket. */
	(void)e;
	if (shmcache_open(c->memcache, mode, gid, 0, &s->mc, &me) < 0)
		log_warn("fast path off, host processes will use the socket: "
		    "%s", me.msg);
	return 0;
}

/*
 * Reload: read the config file again for [params] and [policy] (the
 * policies' inputs and limits), then load and self-test the policy set.
 * Anything that fails leaves the running set, params and limits alone.
 */
int
service_reload(struct service *s, struct xerr *e)
{
	struct policy_set *set, *old;
	struct config *fresh = NULL;
	json_t *params;
	struct policy_limits lim;
	struct xerr de;
	int rc;

	pthread_mutex_lock(&s->reload_mu);
	/* Rotation first: a broken config must not keep the log on a
	 * renamed file. */
	if (dlog_reopen(s->dlog, &de) < 0)
		log_event(LOG_ERR, LOG_MSGID_DLOG, NULL, NULL, "decision log "
		    "stays on the old file: %s", de.msg);
	params = s->cfg->params;
	lim = s->cfg->limits;
	if (s->cfg->path != NULL) {
		if ((rc = config_load(s->cfg->path, &fresh, e)) < 0 ||
		    (rc = config_check_start(fresh, 1, e)) < 0) {
			config_free(fresh);
			atomic_fetch_add(&s->n_reload_fail, 1);
			log_err("reload refused, the previous policies and "
			    "params keep serving: %s", e->msg);
			pthread_mutex_unlock(&s->reload_mu);
			return rc;
		}
		params = fresh->params;
		lim = fresh->limits;
		if (needs_restart(s->cfg, fresh))
			log_warn("%s: settings other than [params] and "
			    "[policy] changed; they take effect at the next "
			    "restart", s->cfg->path);
	}
	rc = load_set(s, params, &lim, &set, e);
	if (rc < 0) {
		atomic_fetch_add(&s->n_reload_fail, 1);
		log_err("policy reload refused, the previous set keeps "
		    "serving: %s", e->msg);
		config_free(fresh);
		pthread_mutex_unlock(&s->reload_mu);
		return rc;
	}
	if (fresh != NULL) {
		/* Only reloads read these two after start-up. */
		json_decref(s->cfg->params);
		s->cfg->params = json_incref(fresh->params);
		s->cfg->limits = lim;
		config_free(fresh);
	}
	pthread_mutex_unlock(&s->reload_mu);
	pthread_mutex_lock(&s->pol_mu);
	old = s->set;
	s->set = set;
	atomic_fetch_add(&s->pol_gen, 1);
	pthread_mutex_unlock(&s->pol_mu);
	memcache_sync(s);
	policy_set_unref(old);
	atomic_fetch_add(&s->n_reload, 1);
	log_event(LOG_NOTICE, LOG_MSGID_RELOAD, NULL, NULL, "policy set %s "
	    "loaded from %s", policy_set_hash(set), s->cfg->policy_dir);
	return 0;
}

/* --- decisions ------------------------------------------------------- */

/* The parts of a customer record every policy sees. */
json_t *
svc_customer_view(json_t *c)
{
	return json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}",
	    "id", json_object_get(c, "id"),
	    "tenant", json_object_get(c, "tenant"),
	    "key_uri", json_object_get(c, "key_uri"),
	    "vault_auth", json_object_get(c, "vault_auth"),
	    "kinds", json_object_get(c, "kinds"),
	    "labels", json_object_get(c, "labels"));
}

static json_t *
key_view(const char *uri_text, struct xerr *e)
{
	static const char *const services[] = { "", "vault", "mhsm", "local" };
	struct key_uri u;
	json_t *k;

	if (key_uri_parse(uri_text, &u, e) < 0)
		return NULL;
	k = json_pack("{s:s, s:s, s:s}", "uri", uri_text,
	    "service", services[u.service], "name", u.name);
	if (k != NULL && u.version[0] != '\0')
		json_object_set_new(k, "version", json_string(u.version));
	return k;
}

/* The role policy's input: the customer and the app serving it. */
static json_t *
role_input(json_t *customer, json_t *app)
{
	json_t *cv = svc_customer_view(customer), *in;

	in = policy_role_input(cv, app);
	json_decref(cv);
	return in;
}

/* The versioning policy's input: the customer and its key. */
static int
versioning_input(json_t *customer, json_t **ret_in, struct xerr *e)
{
	json_t *key;

	*ret_in = NULL;
	if ((key = key_view(json_string_value(json_object_get(customer,
	    "key_uri")), e)) == NULL)
		return -XTCMK_E_INVAL;
	if ((*ret_in = json_pack("{s:o, s:o}", "customer",
	    svc_customer_view(customer), "key", key)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	return 0;
}

/* One decision of `kind` on `in` (consumed); *ret may be NULL. */
static int
decide_one(struct service *s, enum policy_kind kind, const char *id,
    json_t *in, json_t **ret, struct xerr *e)
{
	json_t *out = NULL;
	int rc;

	if (in == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	rc = service_policy(s, kind, id, in, &out, NULL, e);
	json_decref(in);
	if (rc == 0 && ret != NULL)
		*ret = out;
	else
		json_decref(out);
	return rc;
}

/* The calls of an onboarding's decisions (see svc_decide_onboard). */
static int
onboard_reqs(struct service *s, json_t *customer, json_t *pin, int want_ver,
    struct svc_sent *x, struct xerr *e)
{
	int rc;

	memset(x, 0, sizeof(*x));
	if (want_ver && (rc = versioning_input(customer, &x->in_ver, e)) < 0)
		return rc;
	x->n = want_ver ? 3 : 2;
	x->req[0].op = "decide";
	x->req[0].kind = POLICY_PARTITION;
	x->req[0].input = pin;
	/* The workloads as the registry keeps their text (most inputs
	 * share it, and so a worker parses it once). */
	x->req[0].splice_key = "workloads";
	x->req[0].splice = reg_scope_text(s->reg, json_object_get(pin,
	    "workloads"));
	x->req[1].op = POLICY_OP_ROLE_AFTER;
	x->req[1].kind = POLICY_ROLE;
	x->req[1].input = NULL;
	x->req[2].op = "decide";
	x->req[2].kind = POLICY_VERSIONING;
	x->req[2].input = x->in_ver;
	return 0;
}

void
svc_onboard_drop(struct svc_sent *x)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		json_decref(x->req[i].output);
		x->req[i].output = NULL;
	}
	json_decref(x->in_ver);
	x->in_ver = NULL;
	json_decref(x->req[0].splice);
	x->req[0].splice = NULL;
	x->n = 0;
}

/*
 * Check and log what the worker answered, in order (the set's reference
 * and the answers consumed): see svc_decide_onboard.
 */
static int
onboard_finish(struct service *s, json_t *customer, json_t *pin,
    struct svc_sent *x, struct policy_set *set, const char *scope_hash,
    json_t **ret_part, char *ret_hash, struct xerr *e, int handover)
{
	const char *id = json_string_value(json_object_get(customer, "id"));
	json_t *part = NULL, *in_role = NULL, *out;
	size_t i, done;
	int rc;

	for (i = 1; i < x->n; i++)
		policy_set_ref(set);	/* one for each policy_done */
	done = 1;
	if ((rc = policy_done_log(s, POLICY_PARTITION, id, pin,
	    x->req[0].rc, x->req[0].output, &x->req[0].err, set, &part,
	    ret_hash, e, handover)) < 0)
		goto out;
	if (strcmp(ret_hash, scope_hash) != 0) {
		rc = 1;
		goto out;
	}
	if ((in_role = policy_role_input_after(pin, part)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	done = 2;
	if ((rc = policy_done_log(s, POLICY_ROLE, id, in_role,
	    x->req[1].rc, x->req[1].output, &x->req[1].err, set, &out, NULL,
	    e, handover)) < 0)
		goto out;
	json_decref(out);
	if (x->n == 3) {
		done = 3;
		if ((rc = policy_done_log(s, POLICY_VERSIONING, id,
		    x->in_ver, x->req[2].rc, x->req[2].output, &x->req[2].err,
		    set, &out, NULL, e, handover)) < 0)
			goto out;
		json_decref(out);
	}
out:
	/* What no policy_done took. */
	for (i = done; i < x->n; i++) {
		json_decref(x->req[i].output);
		policy_set_unref(set);
	}
	for (i = 0; i < x->n; i++)
		x->req[i].output = NULL;
	json_decref(x->in_ver);
	x->in_ver = NULL;
	json_decref(x->req[0].splice);
	x->req[0].splice = NULL;
	x->n = 0;
	if (rc == 0)
		*ret_part = part;
	else
		json_decref(part);
	json_decref(in_role);
	return rc;
}

/*
 * The decisions of one onboarding: the partition on `pin` (made with
 * the scope of the set whose hash is `scope_hash`), then the role for
 * the app it chose and, with `want_ver`, the key versioning.  In worker
 * processes all go to one worker in one round trip: the worker makes
 * the role input from the partition it has just run, as the agent does
 * (policy_role_input).  Each decision is checked and logged as by
 * service_policy, in that order; a refusal ends the onboarding and what
 * came after it is dropped unlogged.  Returns 1 (only the partition
 * logged, nothing kept) when the set that decided is not the one whose
 * scope was used (a reload in between): the caller decides again.
 */
int
svc_decide_onboard(struct service *s, json_t *customer, json_t *pin,
    int want_ver, const char *scope_hash, json_t **ret_part, char *ret_hash,
    struct xerr *e)
{
	const char *id = json_string_value(json_object_get(customer, "id"));
	struct policy_set *set = NULL;
	struct svc_sent x;
	json_t *part = NULL, *in_role, *out;
	int rc;

	if ((rc = onboard_reqs(s, customer, pin, want_ver, &x, e)) < 0)
		return rc;
	if (!s->inprocess) {
		if ((rc = run_direct_batch(s, x.req, x.n, &set, e)) < 0) {
			svc_onboard_drop(&x);
			return policy_done(s, POLICY_PARTITION, id, pin, rc,
			    NULL, e, set, &part, NULL, e);
		}
		return onboard_finish(s, customer, pin, &x, set, scope_hash,
		    ret_part, ret_hash, e, 0);
	}
	/* In the agent: one after the other, each only if the one before
	 * passed. */
	if ((rc = service_policy(s, POLICY_PARTITION, id, pin, &part,
	    ret_hash, e)) < 0)
		goto out;
	if (strcmp(ret_hash, scope_hash) != 0) {
		rc = 1;
		goto out;
	}
	if ((in_role = policy_role_input_after(pin, part)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	rc = service_policy(s, POLICY_ROLE, id, in_role, &out, NULL, e);
	json_decref(in_role);
	if (rc < 0)
		goto out;
	json_decref(out);
	if (x.in_ver != NULL && (rc = service_policy(s, POLICY_VERSIONING, id,
	    x.in_ver, &out, NULL, e)) == 0)
		json_decref(out);
out:
	json_decref(x.in_ver);
	json_decref(x.req[0].splice);
	if (rc == 0)
		*ret_part = part;
	else
		json_decref(part);
	return rc;
}

int
svc_onboard_send(struct service *s, struct svc_lease *l, json_t *customer,
    json_t *pin, int want_ver, struct svc_sent *x, struct xerr *e)
{
	int rc;

	if ((rc = onboard_reqs(s, customer, pin, want_ver, x, e)) < 0)
		return rc;
	x->sent = pworker_send_batch(s->pw_slot[l->idx], x->req, x->n);
	atomic_fetch_add(&s->n_policy, x->n);
	return 0;
}

void
svc_onboard_recv(struct service *s, struct svc_lease *l, struct svc_sent *x)
{
	pworker_recv_batch(s->pw_slot[l->idx], x->req, x->n, x->sent);
}

int
svc_onboard_done(struct service *s, struct svc_lease *l, json_t *customer,
    json_t *pin, struct svc_sent *x, const char *scope_hash,
    json_t **ret_part, char *ret_hash, struct xerr *e)
{
	/* An import: its reply waits for the whole batch's commit, the
	 * decision log's writer encodes its entries meanwhile. */
	return onboard_finish(s, customer, pin, x, policy_set_ref(l->set),
	    scope_hash, ret_part, ret_hash, e, 1);
}

/* The key-versioning decision for `customer` (*ret may be NULL): it
 * depends on the customer alone. */
int
svc_decide_versioning(struct service *s, json_t *customer, json_t **ret,
    struct xerr *e)
{
	json_t *in;
	int rc;

	if ((rc = versioning_input(customer, &in, e)) < 0)
		return rc;
	return decide_one(s, POLICY_VERSIONING, json_string_value(
	    json_object_get(customer, "id")), in, ret, e);
}

/*
 * Role and key-versioning decisions for `customer` served by `app`, in
 * one round trip to a policy worker; *ret gets {"role": ...,
 * "versioning": ...}.
 */
int
svc_decide_rest(struct service *s, json_t *customer, json_t *app, json_t **ret,
    struct xerr *e)
{
	const char *id = json_string_value(json_object_get(customer, "id"));
	json_t *in_role, *in_ver = NULL, *role = NULL, *ver = NULL;
	int rc;

	if ((in_role = role_input(customer, app)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = versioning_input(customer, &in_ver, e)) < 0)
		goto out;
	if ((rc = policy_pair(s, id, in_role, in_ver, &role, &ver, e)) < 0)
		goto out;
	if ((*ret = json_pack("{s:o, s:o}", "role", role, "versioning",
	    ver)) == NULL)
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	role = ver = NULL;
out:
	json_decref(in_role);
	json_decref(in_ver);
	json_decref(role);
	json_decref(ver);
	return rc;
}

int
service_decide_json(struct service *s, const char *id, json_t **ret,
    struct xerr *e)
{
	json_t *c = NULL, *app = NULL, *rest = NULL, *d;
	const char *appname, *wl = s->cfg->workload;
	char hash[65] = "";
	int rc, served = 0;

	if ((rc = reg_customer_get(s->reg, id, &c, e)) < 0)
		return rc;
	appname = json_string_value(json_object_get(c, "app"));
	if (appname == NULL) {
		rc = xerr_set(e, XTCMK_E_NOT_FOUND, "customer '%s' has no "
		    "application assigned", id);
		goto out;
	}
	if ((rc = reg_app_get(s->reg, appname, &app, e)) < 0)
		goto out;
	if ((rc = svc_decide_rest(s, c, app, &rest, e)) < 0)
		goto out;
	if (wl != NULL && (rc = reg_fic_exists(s->reg, appname, wl, e)) < 0)
		goto out;
	served = wl != NULL && rc == 1;
	{
		struct policy_set *set = current_set(s);

		snprintf(hash, sizeof(hash), "%s", policy_set_hash(set));
		policy_set_unref(set);
	}
	d = json_pack("{s:s, s:O, s:O, s:O, s:s, s:O, s:O, s:b, s:s?, "
	    "s:O, s:O, s:s, s:O?, s:O?}",
	    "customer", id,
	    "tenant", json_object_get(c, "tenant"),
	    "kinds", json_object_get(c, "kinds"),
	    "key_uri", json_object_get(c, "key_uri"),
	    "app", appname,
	    "app_client_id", json_object_get(app, "client_id"),
	    "workloads", json_object_get(app, "fics"),
	    "served", served,
	    "this_workload", wl,
	    "role", json_object_get(rest, "role"),
	    "versioning", json_object_get(rest, "versioning"),
	    "policy_hash", hash,
	    "assigned_at", json_object_get(c, "assigned_at"),
	    "labels", json_object_get(c, "labels"));
	if (d == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto out;
	}
	*ret = d;
	rc = 0;
out:
	json_decref(c);
	json_decref(app);
	json_decref(rest);
	return rc;
}

static void
put_json_str(struct xw_buf *b, uint16_t tag, json_t *v)
{
	if (json_is_string(v))
		xw_put_str(b, tag, json_string_value(v));
}

static void
put_json_u64(struct xw_buf *b, uint16_t tag, json_t *v)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		xw_put_u64(b, tag, (uint64_t)json_integer_value(v));
}

static void
put_json_list(struct xw_buf *b, uint16_t tag, json_t *a)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		put_json_str(b, tag, v);
}

static void
decision_encode(json_t *d, struct xw_buf *b)
{
	json_t *role = json_object_get(d, "role");
	json_t *ver = json_object_get(d, "versioning");

	put_json_str(b, XT_CUSTOMER, json_object_get(d, "customer"));
	put_json_str(b, XT_TENANT, json_object_get(d, "tenant"));
	put_json_str(b, XT_APP, json_object_get(d, "app"));
	put_json_str(b, XT_APP_CLIENT_ID, json_object_get(d, "app_client_id"));
	put_json_list(b, XT_WORKLOAD, json_object_get(d, "workloads"));
	xw_put_u64(b, XT_SERVED, json_is_true(json_object_get(d, "served")));
	put_json_str(b, XT_THIS_WORKLOAD, json_object_get(d, "this_workload"));
	put_json_list(b, XT_KIND, json_object_get(d, "kinds"));
	put_json_str(b, XT_ROLE_MECHANISM, json_object_get(role, "mechanism"));
	put_json_str(b, XT_ROLE_NAME, json_object_get(role, "role"));
	put_json_str(b, XT_ROLE_ID, json_object_get(role, "role_id"));
	put_json_str(b, XT_ROLE_SCOPE, json_object_get(role, "scope"));
	put_json_list(b, XT_PERMISSION, json_object_get(role, "permissions"));
	put_json_str(b, XT_KEY_URI, json_object_get(d, "key_uri"));
	put_json_str(b, XT_KEY_MODE, json_object_get(ver, "mode"));
	put_json_str(b, XT_KEY_VERSION, json_object_get(ver, "version"));
	put_json_u64(b, XT_REFRESH_S, json_object_get(ver, "refresh"));
	put_json_u64(b, XT_REVOCATION_CHECK_S,
	    json_object_get(ver, "revocation_check"));
	put_json_u64(b, XT_GRACE_S, json_object_get(ver, "grace"));
	put_json_u64(b, XT_CACHE_TTL_S, json_object_get(ver, "cache_ttl"));
	put_json_u64(b, XT_CACHE_MAX, json_object_get(ver, "cache_max"));
	put_json_u64(b, XT_HOST_CACHE_TTL_S,
	    json_object_get(ver, "host_cache_ttl"));
	put_json_str(b, XT_POLICY_HASH, json_object_get(d, "policy_hash"));
	put_json_u64(b, XT_ASSIGNED_AT, json_object_get(d, "assigned_at"));
}

static void
dcache_flush_locked(struct service *s)
{
	struct dentry *d, *next;
	unsigned i;

	for (i = 0; i < DCACHE_BUCKETS; i++) {
		for (d = s->dc[i]; d != NULL; d = next) {
			next = d->next;
			free(d->customer);
			free(d);
		}
		s->dc[i] = NULL;
	}
	s->dc_count = 0;
}

/* Copy a current cached decision into `b`; 1 if found. */
static int
dcache_get(struct service *s, const char *id, struct xw_buf *b)
{
	unsigned long long rg = reg_generation(s->reg);
	unsigned long long pg = atomic_load(&s->pol_gen);
	struct dentry *d;
	int found = 0;

	pthread_rwlock_rdlock(&s->dc_lock);
	for (d = s->dc[strhash(id) % DCACHE_BUCKETS]; d != NULL; d = d->next) {
		if (strcmp(d->customer, id) != 0)
			continue;
		if (d->reg_gen == rg && d->pol_gen == pg &&
		    d->len <= b->cap - b->len) {
			memcpy(b->data + b->len, d->payload, d->len);
			b->len += d->len;
			found = 1;
		}
		break;
	}
	pthread_rwlock_unlock(&s->dc_lock);
	return found;
}

static void
dcache_put(struct service *s, const char *id, const uint8_t *payload,
    size_t len, unsigned long long rg, unsigned long long pg)
{
	struct dentry *d, **pp;
	unsigned h = strhash(id) % DCACHE_BUCKETS;

	if ((d = malloc(sizeof(*d) + len)) == NULL)
		return;
	if ((d->customer = strdup(id)) == NULL) {
		free(d);
		return;
	}
	d->reg_gen = rg;
	d->pol_gen = pg;
	d->len = len;
	memcpy(d->payload, payload, len);
	pthread_rwlock_wrlock(&s->dc_lock);
	if (s->dc_count >= DCACHE_MAX)
		dcache_flush_locked(s);
	for (pp = &s->dc[h]; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->customer, id) == 0) {
			struct dentry *old = *pp;

			d->next = old->next;
			*pp = d;
			free(old->customer);
			free(old);
			pthread_rwlock_unlock(&s->dc_lock);
			return;
		}
	}
	d->next = s->dc[h];
	s->dc[h] = d;
	s->dc_count++;
	pthread_rwlock_unlock(&s->dc_lock);
}

/* Read the customer id field of a request. */
static int
req_customer(const uint8_t *payload, uint32_t len, char *buf, struct xerr *e)
{
	struct xw_field f;

	if (xw_find(payload, len, XT_CUSTOMER, &f) != 1)
		return xerr_set(e, XTCMK_E_INVAL, "request names no customer");
	if (f.len == 0 || !xw_field_is_str(&f, XW_CUSTOMER_MAX))
		return xerr_set(e, XTCMK_E_INVAL, "customer id must be 1 to "
		    "%d bytes of text", XW_CUSTOMER_MAX);
	memcpy(buf, f.val, f.len);
	buf[f.len] = '\0';
	return valid_customer_id(buf, e);
}

static int
handle_decide(struct service *s, const uint8_t *payload, uint32_t len,
    struct xw_buf *b, struct xerr *e)
{
	char id[XW_CUSTOMER_MAX + 1];
	unsigned long long rg, pg;
	json_t *d;
	size_t start = b->len;
	int rc;

	if ((rc = req_customer(payload, len, id, e)) < 0)
		return rc;
	/* Read the generations first: a change during the computation
	 * leaves an entry that is already stale, never a wrong one. */
	rg = reg_generation(s->reg);
	pg = atomic_load(&s->pol_gen);
	if (dcache_get(s, id, b)) {
		atomic_fetch_add(&s->n_hit, 1);
		goto publish;
	}
	atomic_fetch_add(&s->n_miss, 1);
	if ((rc = service_decide_json(s, id, &d, e)) < 0)
		return rc;
	decision_encode(d, b);
	json_decref(d);
	if (b->err != 0)
		return 0;
	dcache_put(s, id, b->data + start, b->len - start, rg, pg);
publish:
	/* What the cache above would serve, host processes may read. */
	if (s->mc != NULL)
		shmcache_publish(s->mc, id, b->data + start, b->len - start,
		    rg, pg, reg_generation(s->reg), atomic_load(&s->pol_gen));
	return 0;
}

static int
handle_hello(struct service *s, const uint8_t *payload, uint32_t len,
    struct xw_buf *b, struct xerr *e)
{
	struct xw_field f;
	uint64_t lo = 0, hi = 0;

	(void)s;
	if (xw_find(payload, len, XT_VERSION_MIN, &f) != 1 ||
	    xw_field_u64(&f, &lo) < 0 ||
	    xw_find(payload, len, XT_VERSION_MAX, &f) != 1 ||
	    xw_field_u64(&f, &hi) < 0)
		return xerr_set(e, XTCMK_E_PROTOCOL, "HELLO needs version "
		    "min and max");
	if (lo > XW_VERSION || hi < XW_VERSION)
		return xerr_set(e, XTCMK_E_UNSUPPORTED, "client speaks "
		    "protocol %llu..%llu, agent speaks %d: upgrade the older "
		    "side", (unsigned long long)lo, (unsigned long long)hi,
		    XW_VERSION);
	xw_put_u64(b, XT_VERSION, XW_VERSION);
	xw_put_str(b, XT_AGENT, "xtcmkd " XTCMK_VERSION);
	return 0;
}

static int
handle_admin(struct service *s, const struct peer *p, const uint8_t *payload,
    uint32_t len, struct xw_buf *b, struct xerr *e)
{
	struct xw_field f;
	json_error_t jerr;
	json_t *req, *reply = NULL;
	char *text = NULL;
	int rc;

	if (xw_find(payload, len, XT_JSON, &f) != 1)
		return xerr_set(e, XTCMK_E_INVAL, "admin request without JSON");
	req = json_loadb((const char *)f.val, f.len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (req == NULL || !json_is_object(req)) {
		json_decref(req);
		return xerr_set(e, XTCMK_E_INVAL, "admin request is not a "
		    "JSON object: %s", jerr.text);
	}
	rc = admin_handle(s, p, req, &reply, &text, e);
	if (rc >= 0)
		memcache_customer_changed(s, req);
	json_decref(req);
	if (rc < 0)
		return rc;
	if (text == NULL) {
		text = json_dumps(reply, JSON_COMPACT);
		json_decref(reply);
	}
	if (text == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	if (strlen(text) > b->cap - b->len - XW_FIELD_HDR)
		rc = xerr_set(e, XTCMK_E_TOOBIG, "the reply of %zu bytes is "
		    "over the %d-byte frame limit; lists are paged and every "
		    "other reply is bounded, so please report this command",
		    strlen(text), XW_PAYLOAD_MAX);
	else
		xw_put_str(b, XT_JSON, text);
	free(text);
	return rc;
}

int
service_handle(struct service *s, const struct peer *p, uint16_t type,
    const uint8_t *payload, uint32_t len, struct xw_buf *reply,
    struct xerr *e)
{
	long long t0 = metrics_now_us();
	int rc;

	atomic_fetch_add(&s->n_req[type < 16 ? type : 0], 1);
	/* Admin commands: admins and monitors here, admin.c decides per
	 * command.  Everything else but HELLO and PING is the data plane,
	 * which monitors may not use. */
	if (type == XW_ADMIN && !config_allows(s->cfg, ACCESS_MONITOR, p->uid,
	    p->gid)) {
		rc = xerr_set(e, XTCMK_E_DENIED, "uid %u may not run admin "
		    "commands: add it to [access] admin_uids (or monitor_uids "
		    "to read only)", p->uid);
		goto out;
	}
	if (type != XW_ADMIN && type != XW_HELLO && type != XW_PING &&
	    !config_allows(s->cfg, ACCESS_DATA, p->uid, p->gid)) {
		rc = xerr_set(e, XTCMK_E_DENIED, "uid %u may only run "
		    "read-only admin commands ([access] monitor_uids): add it "
		    "to data_uids for decisions and data keys", p->uid);
		goto out;
	}
	switch (type) {
	case XW_HELLO:
		rc = handle_hello(s, payload, len, reply, e);
		break;
	case XW_PING:
		xw_put_str(reply, XT_AGENT, "xtcmkd " XTCMK_VERSION);
		rc = 0;
		break;
	case XW_DECIDE:
		rc = handle_decide(s, payload, len, reply, e);
		break;
	case XW_ADMIN:
		rc = handle_admin(s, p, payload, len, reply, e);
		memcache_sync(s);	/* before the reply acknowledges */
		break;
	case XW_DEK_NEW:
	case XW_DEK_UNWRAP:
	case XW_DEK_REWRAP:
	case XW_KEY_STATUS:
		rc = keys_handle(s->keys, s, type, payload, len, reply, e);
		break;
	default:
		rc = xerr_set(e, XTCMK_E_UNSUPPORTED, "unknown message type "
		    "%u", type);
	}
out:
	if (rc < 0)
		atomic_fetch_add(&s->n_err, 1);
	metrics_request(type, rc, metrics_now_us() - t0);
	return rc;
}

/* --- what onboard.c uses (service_int.h) ----------------------------- */

void
svc_count(struct service *s, enum svc_counter c)
{
	atomic_fetch_add(&s->n_onboard[c], 1);
}

int
svc_inprocess(struct service *s)
{
	return s->inprocess;
}

void
svc_uncount(struct service *s, enum svc_counter c)
{
	atomic_fetch_sub(&s->n_onboard[c], 1);
}

void
svc_onboard_lock(struct service *s, int lock)
{
	if (lock)
		pthread_mutex_lock(&s->onboard_mu);
	else {
		pthread_mutex_unlock(&s->onboard_mu);
		/* An import hands its log entries over without waking
		 * the writer each time: wake it for the rest. */
		dlog_kick(s->dlog);
	}
}

/* What svc_scope does with P.scope's answer (rc, doc, set consumed). */
static int
scope_done(struct service *s, json_t *cv, int rc, json_t *doc,
    struct policy_set *set, struct scope *ret_scope, int *ret_has,
    char *ret_hash, struct xerr *e, int quiet)
{
	json_t *in;

	*ret_has = 0;
	ret_hash[0] = '\0';
	if (set != NULL)
		snprintf(ret_hash, 65, "%s", policy_set_hash(set));
	if (rc == 0 && doc != NULL && (rc = scope_parse(doc, ret_scope,
	    e)) < 0) {
		char why[XERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", e->msg);
		xerr_set(e, XTCMK_E_POLICY, "policy '%s' (partition.lua): %s",
		    policy_set_name(set, POLICY_PARTITION), why);
	}
	if (rc < 0 && !quiet) {
		/* A scope that fails is a refused partition decision. */
		atomic_fetch_add(&s->n_policy_err, 1);
		if (set != NULL && (in = json_pack("{s:O}", "customer",
		    cv)) != NULL) {
			log_decision(s, POLICY_PARTITION, json_string_value(
			    json_object_get(cv, "id")), in, NULL, set, e, 0);
			json_decref(in);
		}
	} else if (rc == 0)
		*ret_has = doc != NULL;
	json_decref(doc);
	policy_set_unref(set);
	return rc;
}

int
svc_scope(struct service *s, json_t *cv, struct scope *ret_scope,
    int *ret_has, char *ret_hash, struct xerr *e)
{
	struct policy_set *set = NULL;
	json_t *doc = NULL;
	int rc;

	rc = run_job(s, POLICY_PARTITION, "scope", cv, &doc, &set, e);
	return scope_done(s, cv, rc, doc, set, ret_scope, ret_has, ret_hash,
	    e, 0);
}

void
svc_ahead_batch(struct service *s, json_t *const *customer,
    json_t *const *cv, size_t n, struct svc_ahead *ret)
{
	struct pworker_req *req;
	struct policy_set *set = NULL;
	json_t **vin, *out;
	size_t i, m = 0, *iver;
	struct xerr e;
	const char *id;
	int rc;

	for (i = 0; i < n; i++) {
		memset(&ret[i], 0, sizeof(ret[i]));
		xerr_clear(&ret[i].scope_err);
		xerr_clear(&ret[i].ver_err);
	}
	req = calloc(2 * n + 1, sizeof(*req));
	vin = calloc(n + 1, sizeof(*vin));
	iver = calloc(n + 1, sizeof(*iver));
	if (s->inprocess || req == NULL || vin == NULL || iver == NULL) {
		/* One customer after the other. */
		for (i = 0; i < n; i++) {
			json_t *doc = NULL;

			set = NULL;
			ret[i].scope_rc = run_job(s, POLICY_PARTITION, "scope",
			    cv[i], &doc, &set, &ret[i].scope_err);
			ret[i].scope_rc = scope_done(s, cv[i],
			    ret[i].scope_rc, doc, set, &ret[i].sc, &ret[i].has,
			    ret[i].hash, &ret[i].scope_err, 1);
			if (ret[i].scope_rc < 0)
				continue;
			ret[i].ver_rc = svc_decide_versioning(s, customer[i],
			    NULL, &ret[i].ver_err);
			ret[i].ver_ready = 1;
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		req[m].op = "scope";
		req[m].kind = POLICY_PARTITION;
		req[m++].input = cv[i];
		iver[i] = SIZE_MAX;
		if ((ret[i].ver_rc = versioning_input(customer[i], &vin[i],
		    &ret[i].ver_err)) < 0)
			continue;	/* refused after the scope, if it passes */
		iver[i] = m;
		req[m].op = "decide";
		req[m].kind = POLICY_VERSIONING;
		req[m++].input = vin[i];
	}
	xerr_clear(&e);
	if ((rc = run_direct_batch(s, req, m, &set, &e)) < 0) {
		for (i = 0; i < n; i++) {
			ret[i].scope_err = e;
			ret[i].scope_rc = scope_done(s, cv[i], rc, NULL,
			    set != NULL ? policy_set_ref(set) : NULL,
			    &ret[i].sc, &ret[i].has, ret[i].hash,
			    &ret[i].scope_err, 1);
		}
		policy_set_unref(set);
		goto out;
	}
	for (i = 0, m = 0; i < n; i++, m++) {
		/* One reference for each *_done. */
		policy_set_ref(set);
		ret[i].scope_err = req[m].err;
		ret[i].scope_rc = scope_done(s, cv[i], req[m].rc, req[m].output,
		    set, &ret[i].sc, &ret[i].has, ret[i].hash,
		    &ret[i].scope_err, 1);
		if (iver[i] == SIZE_MAX)
			continue;
		m = iver[i];
		/* Failed calls (the scope's, or this one: a worker that died
		 * fails the rest of its batch) are left to the importing
		 * thread, which decides and logs them in line. */
		if (ret[i].scope_rc < 0 || req[m].rc < 0) {
			json_decref(req[m].output);
			continue;
		}
		id = json_string_value(json_object_get(customer[i], "id"));
		policy_set_ref(set);
		out = NULL;
		ret[i].ver_rc = policy_done_log(s, POLICY_VERSIONING, id,
		    vin[i], req[m].rc, req[m].output, &req[m].err, set, &out,
		    NULL, &ret[i].ver_err, 1);
		json_decref(out);
		ret[i].ver_ready = 1;
	}
	policy_set_unref(set);
out:
	for (i = 0; vin != NULL && i < n; i++)
		json_decref(vin[i]);
	free(vin);
	free(iver);
	free(req);
}

int
svc_move_check(struct service *s, json_t *input, struct xerr *e)
{
	struct policy_set *set = NULL;
	json_t *v = NULL, *entry;
	const char *why;
	int rc;

	rc = run_job(s, POLICY_PARTITION, "move", input, &v, &set, e);
	if (rc == 0 && v != NULL &&
	    !json_is_true(json_object_get(v, "allow"))) {
		why = json_string_value(json_object_get(v, "reason"));
		rc = xerr_set(e, XTCMK_E_POLICY, "policy '%s' (partition.lua) "
		    "refuses the move: %s", policy_set_name(set,
		    POLICY_PARTITION), why != NULL ? why : "no reason given");
	}
	if (rc < 0)
		atomic_fetch_add(&s->n_policy_err, 1);
	if (set != NULL && (entry = json_pack("{s:s, s:O?, s:{s:O?, s:O?}, "
	    "s:s, s:s}", "decision", "move", "customer", json_object_get(
	    json_object_get(input, "customer"), "id"), "input", "from",
	    json_object_get(json_object_get(input, "from"), "name"), "to",
	    json_object_get(json_object_get(input, "to"), "name"), "policy",
	    policy_set_name(set, POLICY_PARTITION), "policy_hash",
	    policy_set_hash(set))) != NULL) {
		if (v != NULL)
			json_object_set(entry, "output", v);
		if (rc < 0)
			json_object_set_new(entry, "error",
			    json_string(e->msg));
		dlog_append(s->dlog, entry);
		json_decref(entry);
	}
	json_decref(v);
	policy_set_unref(set);
	return rc;
}

const char *
svc_partition_name(struct service *s)
{
	struct policy_set *set = current_set(s);
	static __thread char name[80];

	snprintf(name, sizeof(name), "%s", policy_set_name(set,
	    POLICY_PARTITION));
	policy_set_unref(set);
	return name;
}

/* --- life cycle ------------------------------------------------------ */

void
service_flush(struct service *s)
{
	keys_flush(s->keys);
	dlog_flush(s->dlog);
}

void
service_count_conn(struct service *s, int delta, int refused)
{
	if (refused)
		atomic_fetch_add(&s->n_conn_refused, 1);
	if (delta > 0)
		atomic_fetch_add(&s->n_conn_total, 1);
	atomic_fetch_add(&s->n_conn, delta);
}

void
service_count_nofile(struct service *s)
{
	atomic_fetch_add(&s->n_conn_nofile, 1);
}

/* The policy workers: how many there are ([agent] policy_workers), how
 * many processes ran, how they ended, pids. */
static json_t *
workers_stats(struct service *s)
{
	json_t *w, *pids;
	unsigned i;
	int pid;

	w = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "isolation", s->inprocess ? "inprocess" : "process",
	    "workers", (json_int_t)s->nworkers,
	    "spawned", (json_int_t)s->pw.spawned,
	    "killed_cpu", (json_int_t)s->pw.killed_cpu,
	    "killed_wall", (json_int_t)s->pw.killed_wall,
	    "died", (json_int_t)s->pw.died,
	    "recycled", (json_int_t)s->pw.recycled,
	    "sent_ahead", (json_int_t)s->pw.sent_ahead);
	if (w == NULL || (pids = json_array()) == NULL)
		return w;
	for (i = 0; i < s->nworkers; i++)
		if ((pid = atomic_load(&s->pw_pid[i])) > 0)
			json_array_append_new(pids, json_integer(pid));
	json_object_set_new(w, "pids", pids);
	return w;
}

json_t *
service_stats(struct service *s)
{
	unsigned long long w = 0, d = 0, torn = 0;
	json_t *st;

	dlog_stats(s->dlog, &w, &d, &torn);
	st = json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:I, "
	    "s:{s:I, s:I, s:i}, s:{s:I, s:I, s:I, s:I}, "
	    "s:{s:i, s:I, s:I, s:I}, s:{s:I, s:I, s:I}}",
	    "requests",
	    "hello", (json_int_t)s->n_req[XW_HELLO],
	    "decide", (json_int_t)s->n_req[XW_DECIDE],
	    "admin", (json_int_t)s->n_req[XW_ADMIN],
	    "ping", (json_int_t)s->n_req[XW_PING],
	    "dek_new", (json_int_t)s->n_req[XW_DEK_NEW],
	    "dek_unwrap", (json_int_t)s->n_req[XW_DEK_UNWRAP],
	    "errors", (json_int_t)s->n_err,
	    "decision_cache", "hits", (json_int_t)s->n_hit,
	    "misses", (json_int_t)s->n_miss, "entries", (int)s->dc_count,
	    "policy", "calls", (json_int_t)s->n_policy,
	    "refusals", (json_int_t)s->n_policy_err,
	    "reloads", (json_int_t)s->n_reload,
	    "reloads_refused", (json_int_t)s->n_reload_fail,
	    "connections", "open", (int)s->n_conn,
	    "total", (json_int_t)s->n_conn_total,
	    "refused", (json_int_t)s->n_conn_refused,
	    "out_of_fds", (json_int_t)s->n_conn_nofile,
	    "decision_log", "written", (json_int_t)w,
	    "dropped", (json_int_t)d, "torn_bytes_cut", (json_int_t)torn);
	if (st != NULL) {
		unsigned long long prep = 0, reuse = 0;

		reg_stmt_counts(s->reg, &prep, &reuse);
		json_object_set_new(st, "registry", json_pack("{s:I, s:I}",
		    "statements_prepared", (json_int_t)prep,
		    "statements_reused", (json_int_t)reuse));
	}
	if (st != NULL)
		json_object_set_new(st, "onboarding", json_pack("{s:I, s:I, "
		    "s:I, s:I, s:I, s:I, s:I}",
		    "assigned", (json_int_t)s->n_onboard[SVC_ASSIGNED],
		    "already", (json_int_t)s->n_onboard[SVC_ALREADY],
		    "refused", (json_int_t)s->n_onboard[SVC_REFUSED],
		    "scoped", (json_int_t)s->n_onboard[SVC_SCOPED],
		    "unscoped", (json_int_t)s->n_onboard[SVC_UNSCOPED],
		    "import_batches", (json_int_t)s->n_onboard[SVC_IMPORTS],
		    "decided_ahead", (json_int_t)s->n_onboard[SVC_PIPELINED]));
	if (st != NULL)
		json_object_set_new(st, "memcache", shmcache_stats(s->mc));
	if (st != NULL)
		json_object_set_new(st, "policy_workers", workers_stats(s));
	if (st != NULL && s->keys != NULL)
		json_object_set_new(st, "keys", keys_stats(s->keys));
	return st;
}

json_t *
service_status(struct service *s)
{
	struct policy_set *set = current_set(s);
	struct timespec cpu;
	json_t *st;

	st = json_pack("{s:s, s:i, s:I, s:s?, s:s, s:s, s:s, s:{s:s, s:s, "
	    "s:s, s:s, s:s}, s:s}",
	    "agent", "xtcmkd " XTCMK_VERSION, "pid", (int)getpid(),
	    "uptime", (json_int_t)(time(NULL) - s->started),
	    "workload", s->cfg->workload,
	    "socket", s->listen_path[0] != '\0' ? s->listen_path :
	    s->cfg->socket_path,
	    "state_dir", s->cfg->state_dir,
	    "registry", s->cfg->registry_path,
	    "policy", "dir", policy_set_dir(set), "hash", policy_set_hash(set),
	    "partition", policy_set_name(set, POLICY_PARTITION),
	    "role", policy_set_name(set, POLICY_ROLE),
	    "versioning", policy_set_name(set, POLICY_VERSIONING),
	    "providers", "local (*.vault.local), azure (Key Vault, Managed HSM)");
	if (st != NULL && clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0)
		json_object_set_new(st, "cpu_seconds", json_real((double)
		    cpu.tv_sec + (double)cpu.tv_nsec / 1e9));
	if (st != NULL)
		json_object_set_new(st, "registry_backend",
		    regb_status(s->rb));
	if (st != NULL)
		json_object_set_new(st, "azure", json_pack("{s:s?, s:s, "
		    "s:s?}", "tenant", s->cfg->azure_tenant,
		    "authority", s->cfg->azure_authority,
		    "token_audience", s->cfg->azure_token_audience));
	policy_set_unref(set);
	return st;
}

static int
make_state_dir(const char *dir, struct xerr *e)
{
	struct stat st;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return xerr_set(e, XTCMK_E_INVAL, "cannot create state "
		    "directory %s: %s", dir, strerror(errno));
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return xerr_set(e, XTCMK_E_INVAL, "state directory %s is not "
		    "a directory", dir);
	if ((st.st_mode & 0077) != 0 && chmod(dir, 0700) == -1)
		return xerr_set(e, XTCMK_E_INVAL, "state directory %s is "
		    "readable by others and cannot be fixed: %s", dir,
		    strerror(errno));
	return 0;
}

/*
 * One agent per state directory: two would each cache the registry's
 * decisions and race on the keystore.  The lock is released by the
 * kernel when the process ends, however it ends.
 */
static int
lock_state_dir(const char *dir, int *ret_fd, struct xerr *e)
{
	char path[4096], pid[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/xtcmkd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return xerr_set(e, XTCMK_E_INVAL, "cannot open %s: %s", path,
		    strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		return xerr_set(e, XTCMK_E_EXISTS, "state directory %s is in "
		    "use by another xtcmkd (pid %s): give each agent its own "
		    "[agent] state_dir", dir, *pid ? pid : "?");
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("%s: cannot record the pid: %s", path,
		    strerror(errno));
	*ret_fd = fd;
	return 0;
}

void
service_set_socket(struct service *s, const char *path)
{
	snprintf(s->listen_path, sizeof(s->listen_path), "%s", path);
}

int
service_open(struct config *cfg, struct service **ret_svc, struct xerr *e)
{
	struct service *s;
	unsigned i;
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	s->cfg = cfg;
	s->started = time(NULL);
	s->lockfd = -1;
	pthread_mutex_init(&s->pol_mu, NULL);
	pthread_mutex_init(&s->job_mu, NULL);
	pthread_cond_init(&s->job_cv, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	pthread_mutex_init(&s->onboard_mu, NULL);
	pthread_mutex_init(&s->reload_mu, NULL);
	pthread_mutex_init(&s->pw_mu, NULL);
	pthread_cond_init(&s->pw_cv, NULL);
	pthread_rwlock_init(&s->dc_lock, NULL);
	if ((rc = make_state_dir(cfg->state_dir, e)) < 0 ||
	    (rc = lock_state_dir(cfg->state_dir, &s->lockfd, e)) < 0)
		goto fail;
	s->inprocess = strcmp(cfg->policy_isolation, "inprocess") == 0;
	s->test_hook = secure_getenv("XTCMK_TEST_POLICYD");
	if ((rc = load_set(s, cfg->params, &cfg->limits, &s->set, e)) < 0)
		goto fail;
	if ((rc = reg_open(cfg->registry_path, &s->reg, e)) < 0)
		goto fail;
	/* The mirror refreshes the fast path's file: open that first. */
	if ((rc = memcache_open(s, e)) < 0 ||
	    (rc = regb_open(cfg, s->reg, fleet_changed, s, &s->rb,
	    e)) < 0)
		goto fail;
	if ((rc = dlog_open(cfg->decision_log, &s->dlog, e)) < 0)
		goto fail;
	s->nworkers = cfg->policy_workers;
	if ((s->workers = calloc(s->nworkers, sizeof(pthread_t))) == NULL ||
	    (s->pw_pid = calloc(s->nworkers, sizeof(*s->pw_pid))) == NULL ||
	    (s->pw_slot = calloc(s->nworkers, sizeof(*s->pw_slot))) == NULL ||
	    (s->pw_busy = calloc(s->nworkers, 1)) == NULL) {
		rc = xerr_set(e, XTCMK_E_NOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; !s->inprocess && i < s->nworkers; i++)
		if ((rc = worker_ready(s, i, &s->pw_slot[i], s->set, e)) < 0)
			goto fail;
	for (i = 0; s->inprocess && i < s->nworkers; i++)
		if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) {
			s->nthreads = i;
			rc = xerr_set(e, XTCMK_E_INTERNAL, "cannot start "
			    "policy workers");
			goto fail;
		}
	s->nthreads = s->inprocess ? s->nworkers : 0;
	if ((rc = keys_open(cfg, s, &s->keys, e)) < 0)
		goto fail;
	*ret_svc = s;
	return 0;
fail:
	service_close(s);
	return rc;
}

void
service_close(struct service *s)
{
	unsigned i;

	if (s == NULL)
		return;
	keys_close(s->keys);
	atomic_store(&s->astop, 1);
	pthread_mutex_lock(&s->job_mu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->job_cv);
	pthread_mutex_unlock(&s->job_mu);
	for (i = 0; i < s->nthreads; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	/* A slot still in use belongs to a request that is ending. */
	pthread_mutex_lock(&s->pw_mu);
	pthread_cond_broadcast(&s->pw_cv);
	for (i = 0; s->pw_slot != NULL && i < s->nworkers; i++)
		if (!s->pw_busy[i])
			pworker_free(s->pw_slot[i]);
	pthread_mutex_unlock(&s->pw_mu);
	free(s->pw_slot);
	free(s->pw_busy);
	free(s->pw_pid);
	dlog_close(s->dlog);
	regb_close(s->rb);
	reg_close(s->reg);
	policy_set_unref(s->set);
	pthread_rwlock_wrlock(&s->dc_lock);
	dcache_flush_locked(s);
	pthread_rwlock_unlock(&s->dc_lock);
	shmcache_close(s->mc);	/* readers fall back to the socket */
	if (s->lockfd != -1)
		close(s->lockfd);
	free(s);
}
