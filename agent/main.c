/*
 * main.c - xtcmkd: options, signals, start and stop.
 *
 * Runs in the foreground (systemd or a supervisor owns daemonising).
 * Signals are blocked in every thread and taken by one thread with
 * sigwait(): SIGHUP reopens the decision log, re-reads [params] and
 * [policy] and reloads the policies (as `xtcmkctl reload` does); SIGTERM
 * and SIGINT stop.  Under systemd (Type=notify) the agent says READY=1
 * once it serves, RELOADING=1 ... READY=1 around each reload and
 * STOPPING=1 when it stops; see xtcmkd(8).
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
#include "metrics.h"
#include "sd.h"
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

static void
notify(const char *state)
{
	static int warned;
	int rc;

	if ((rc = sd_send(state)) < 0 && !warned) {
		warned = 1;
		log_warn("cannot notify systemd (NOTIFY_SOCKET): %s",
		    strerror(-rc));
	}
}

/* A reload as systemd sees it: RELOADING=1 with the monotonic time, then
 * READY=1 with the outcome in STATUS= (and ERRNO= when refused). */
static void
reload(struct service *svc)
{
	char msg[sizeof(((struct xerr *)0)->msg) + 96];
	struct xerr e;
	int rc;

	if ((rc = sd_send_reloading()) < 0)
		notify("RELOADING=1");
	xerr_clear(&e);
	if (service_reload(svc, &e) == 0)
		notify("READY=1\nSTATUS=serving; last reload ok\nERRNO=0");
	else {
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=reload refused, "
		    "the previous configuration keeps serving: %s\nERRNO=%d",
		    e.msg, EINVAL);
		notify(msg);
	}
}

static void *
signal_main(void *arg)
{
	struct sigctx *sc = arg;
	int sig;

	for (;;) {
		if (sigwait(&sc->set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: reopening the decision log, reloading "
			    "the configuration's [params], [policy] and the "
			    "policies");
			reload(sc->svc);
			continue;
		}
		log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		notify("STOPPING=1");
		server_stop(sc->srv);
		return NULL;
	}
}

/* Start-up failed: say why on stderr (priority err) and to systemd. */
static int
fail_start(const char *what, const char *msg)
{
	char state[1024];

	log_err("cannot start: %s%s", what, msg);
	snprintf(state, sizeof(state), "STATUS=cannot start: %s%s\nERRNO=%d",
	    what, msg, EINVAL);
	notify(state);
	return 1;
}

/* Did systemd pass us sockets?  (Read, not consumed: server_open takes
 * them.) */
static int
socket_activated(void)
{
	const char *lp = secure_getenv("LISTEN_PID");

	return lp != NULL && secure_getenv("LISTEN_FDS") != NULL &&
	    strtol(lp, NULL, 10) == (long)getpid();
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
	struct metrics *met;
	struct sigctx sc;
	struct xerr e;
	pthread_t sigthr;
	int ch, check = 0;

	/* Priorities from the first line: "<3>" when stderr is the journal. */
	log_init(LOG_INFO);

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
		if (check) {
			fprintf(stderr, "xtcmkd: %s\n", e.msg);
			return 1;
		}
		return fail_start("", e.msg);
	}
	log_init(cfg->log_level);
	if (config_check_start(cfg, !check && socket_activated(), &e) < 0) {
		config_free(cfg);
		if (check) {
			fprintf(stderr, "xtcmkd: %s\n", e.msg);
			return 1;
		}
		return fail_start("", e.msg);
	}
	if (check) {
		struct policy_set *set;

		/* Compiled and self-tested in a confined policy worker,
		 * as a reload does. */
		if (policy_check_offline(cfg->policy_dir, cfg->lua_dir,
		    cfg->params, &cfg->limits, strcmp(cfg->policy_isolation,
		    "inprocess") == 0 ? NULL : cfg->policy_worker, &set,
		    &e) < 0) {
			fprintf(stderr, "xtcmkd: %s: policies: %s\n",
			    cfg->policy_dir, e.msg);
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
		config_free(cfg);
		return fail_start("", e.msg);
	}
	if (server_open(cfg, svc, &srv, &e) < 0) {
		service_close(svc);
		config_free(cfg);
		return fail_start("", e.msg);
	}
	service_set_socket(svc, server_path(srv));
	if (metrics_open(cfg, svc, &met, &e) < 0) {
		server_close(srv);
		service_close(svc);
		config_free(cfg);
		return fail_start("", e.msg);
	}
	sc.svc = svc;
	sc.srv = srv;
	if (pthread_create(&sigthr, NULL, signal_main, &sc) != 0)
		return fail_start("the signal thread", "");
	log_event(LOG_NOTICE, LOG_MSGID_STARTED, NULL, NULL, "xtcmkd %s ready "
	    "(workload %s, state %s, socket %s)", XTCMK_VERSION,
	    cfg->workload ? cfg->workload : "(none)", cfg->state_dir,
	    server_path(srv));
	{
		char state[256];

		snprintf(state, sizeof(state), "READY=1\nSTATUS=serving on "
		    "%s", server_path(srv));
		notify(state);
	}
	server_run(srv);
	pthread_join(sigthr, NULL);
	metrics_close(met);
	server_close(srv);
	service_flush(svc);
	/* Connection threads may still be inside a request; the registry
	 * commits before any reply, so leaving now loses nothing. */
	log_info("stopped");
	_exit(0);
}
