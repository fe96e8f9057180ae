/*
 * metrics.h - the agent's Prometheus endpoint ([metrics] listen in
 * xtcmk.conf(5), off by default) and the counters only it shows:
 * request and key-provider latency histograms.  Every metric is listed
 * in xtcmkd(8).
 */
#ifndef XTCMK_METRICS_H
#define XTCMK_METRICS_H

#include <stdint.h>

#include "conf.h"
#include "xerr.h"

struct service;
struct metrics;

#define METRICS_CONN_MAX	16	/* concurrent scrapes */
#define METRICS_BODY_MAX	(256 * 1024)
#define METRICS_REG_TTL_S	15	/* registry gauges are this old at most */

enum metrics_pop { MP_GET, MP_WRAP, MP_UNWRAP, MP_NOPS };

/* One request of wire type `type` answered with `rc` (0 or -code). */
void	metrics_request(uint16_t type, int rc, long long usec);
/* One key-service call; `provider_kind` as enum provider_kind. */
void	metrics_provider(int provider_kind, enum metrics_pop op, int rc,
	    long long usec);
long long metrics_now_us(void);

/* Serve [metrics] listen until metrics_close(); NULL when it is unset or
 * the agent was built without libmicrohttpd (an error if listen is set). */
int	metrics_open(const struct config *cfg, struct service *svc,
	    struct metrics **ret_m, struct xerr *e);
void	metrics_close(struct metrics *m);

#endif
