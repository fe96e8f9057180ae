/*
 * fleet_int.h - private to etcd.c (the mirror) and etcd_write.c (the
 * write path): the fleet handle and the key layout under the prefix.
 *
 *	w/NAME		workload {"name","client_id","principal_id",
 *			"resource_id"?,"labels"}
 *	wp/PRINCIPAL	the workload holding that principal id (unique)
 *	a/NAME		application {"name","client_id"?,"labels"}; touched by
 *			every change to its FICs or customers
 *	ac/CLIENT_ID	the application holding that client id (unique)
 *	f/APP/WL	a FIC: APP trusts workload WL
 *	c/ID		customer and assignment {"customer","app","decision",
 *			"why","policy_hash","time","move"?}
 *	r/ID		who removed customer ID, written with the delete
 *	u/HOST/CUSTOMER	key usage of one host (with a lease)
 */
#ifndef XTCMK_FLEET_INT_H
#define XTCMK_FLEET_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <jansson.h>

#include "etcd.h"
#include "xerr.h"

#define FLEET_PREFIX_MAX	128

/* An import's pending etcd transaction (etcd_write.c), while the
 * onboarding thread decides the customers it will carry. */
struct fleet_txn {
	long long	 view;		/* mirror revision the batch read */
	json_t		*cmp;		/* compares, one set per key */
	json_t		*ops;		/* operations, one per key */
	json_t		*cmpkeys;	/* key -> 1 (compared already) */
	json_t		*opkeys;	/* key -> index in ops */
	size_t		 bytes;		/* keys and values in ops */
	int		 full;		/* the last customer did not fit */
	int		 queued;	/* the last customer is in ops */
	int		 members;	/* customers in ops */
};

struct fleet {
	struct etcd	*etcd;
	struct registry	*reg;
	char		 prefix[FLEET_PREFIX_MAX];
	char		 end[FLEET_PREFIX_MAX];
	char		*state_dir;
	char		*endpoints;	/* as configured, for status */
	unsigned	 sync_ms;	/* read-your-writes bound */
	void		(*changed)(void *, const char *);
	void		*changed_arg;

	pthread_t	 thread;
	int		 started;
	volatile int	 stop;

	pthread_mutex_t	 mu;		/* below; cv: applied moved, stop */
	pthread_cond_t	 cv;
	long long	 applied;	/* mirror revision */
	long long	 seen;		/* newest etcd revision heard of */
	int		 have_state;	/* the mirror resumed from a revision */
	int		 diverged;	/* local objects etcd lacks */
	char		 last_error[XERR_MSG_MAX];
	long long	 last_error_at;
	long long	 last_apply_at;
	long long	 last_rev_write;	/* ms, monotonic */

	/* Key usage (fleet_usage.c): customers to publish, under mu. */
	char		 host[96];
	json_t		*usage_pending;
	pthread_cond_t	 usage_cv;
	pthread_t	 usage_thread;
	int		 usage_started;
	long long	 lease;		/* usage thread only */

	/* The import being decided (under the agent's onboarding lock):
	 * fleet_onboard() queues into it instead of committing. */
	struct fleet_txn *batch;

	atomic_ullong	 n_txn, n_conflict, n_retry, n_refused, n_events,
			 n_apply_err, n_resync, n_sync_timeout, n_watch,
			 n_import_txn, n_import_customers, n_import_redecided;
};

/* Key under the prefix: fleet_key(f, buf, "c/%s", id). */
int	fleet_key(struct fleet *f, char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
/* Record an error for status (and log it once). */
void	fleet_error(struct fleet *f, const char *msg);
/* Wait until the mirror has applied `rev` (bounded by sync_ms): 0 or
 * -XTCMK_E_TIMEOUT. */
int	fleet_wait(struct fleet *f, long long rev);
/* Apply one put (value != NULL) or delete of `key` (below the prefix). */
int	fleet_apply_kv(struct fleet *f, const char *key, json_t *value,
	    const char *actor);

/* The usage publisher thread, and this host's name in u/ keys. */
void	*fleet_usage_main(void *arg);
void	fleet_usage_host(const char *state_dir, char *buf, size_t len);

#endif
