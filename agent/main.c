/*
 * main.c - xtcmkd: options, signals, start and stop.
 *
 * Runs in the foreground (systemd or a supervisor owns daemonising).
 * Signals are blocked in every thread and taken by one thread with
 * sigwait(): SIGHUP reloads the policies, SIGTERM and SIGINT stop.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "conf.h"
#include "log.h"
#include "server.h"
#include "service.h"

static void
usage(FILE *out)
{
	fprintf(out, "usage: xtcmkd [-hV] [--check-config] [-c file]\n");
}

struct sigctx {
	sigset_t	 set;
	struct service	*svc;
	struct server	*srv;
};

static void *
signal_main(void *arg)
{
	struct sigctx *sc = arg;
	struct xerr e;
	int sig;

	for (;;) {
		if (sigwait(&sc->set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: reloading policies");
			(void)service_reload(sc->svc, &e);
			continue;
		}
		log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		server_stop(sc->srv);
		return NULL;
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = NULL;
	struct config *cfg;
	struct service *svc;
	struct server *srv;
	struct sigctx sc;
	struct xerr e;
	pthread_t sigthr;
	int ch, check = 0;

	while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("xtcmkd %s\n", XTCMK_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (path == NULL && access(XTCMK_SYSCONFDIR "/xtcmk.conf", F_OK) == 0)
		path = XTCMK_SYSCONFDIR "/xtcmk.conf";
	if (config_load(path, &cfg, &e) < 0) {
		fprintf(stderr, "xtcmkd: %s\n", e.msg);
		return 1;
	}
	log_init(cfg->log_level);
	if (check) {
		struct policy_set *set;

		if (policy_set_load(cfg->policy_dir, cfg->lua_dir,
		    cfg->params, &cfg->limits, &set, &e) < 0) {
			fprintf(stderr, "xtcmkd: policies: %s\n", e.msg);
			config_free(cfg);
			return 1;
		}
		config_dump(cfg, stdout);
		printf("\n# policy set %s: ok\n", policy_set_hash(set));
		policy_set_unref(set);
		config_free(cfg);
		return 0;
	}

	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGHUP);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (service_open(cfg, &svc, &e) < 0) {
		log_err("cannot start: %s", e.msg);
		config_free(cfg);
		return 1;
	}
	if (server_open(cfg, svc, &srv, &e) < 0) {
		log_err("cannot start: %s", e.msg);
		service_close(svc);
		config_free(cfg);
		return 1;
	}
	sc.svc = svc;
	sc.srv = srv;
	if (pthread_create(&sigthr, NULL, signal_main, &sc) != 0) {
		log_err("cannot start the signal thread");
		return 1;
	}
	log_info("xtcmkd %s ready (workload %s, state %s)", XTCMK_VERSION,
	    cfg->workload ? cfg->workload : "(none)", cfg->state_dir);
	server_run(srv);
	pthread_join(sigthr, NULL);
	server_close(srv);
	service_flush(svc);
	/* Connection threads may still be inside a request; the registry
	 * commits before any reply, so leaving now loses nothing. */
	log_info("stopped");
	_exit(0);
}
