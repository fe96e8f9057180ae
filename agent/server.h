/*
 * server.h - the agent's Unix-socket listener.
 */
#ifndef XTCMK_SERVER_H
#define XTCMK_SERVER_H

#include "conf.h"
#include "xerr.h"

struct server;
struct service;

int	server_open(struct config *cfg, struct service *svc,
	    struct server **ret_srv, struct xerr *e);
/* Accept until server_stop(); async-signal-safe stop. */
int	server_run(struct server *srv);
void	server_stop(struct server *srv);
/* The path of the listening socket ("" for an unnamed one). */
const char *server_path(const struct server *srv);
void	server_close(struct server *srv);

#endif
