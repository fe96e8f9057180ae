/*
 * keys.h - the data plane: new data keys, unwrap, rewrap, key status,
 * revocation checks, and the local keystore admin commands.
 */
#ifndef XTCMK_KEYS_H
#define XTCMK_KEYS_H

#include <stdint.h>
#include <jansson.h>

#include "conf.h"
#include "wire.h"
#include "xerr.h"

struct keys;
struct service;
struct peer;

int	keys_open(struct config *cfg, struct service *svc,
	    struct keys **ret_keys, struct xerr *e);
void	keys_close(struct keys *k);
int	keys_handle(struct keys *k, struct service *svc, uint16_t type,
	    const uint8_t *payload, uint32_t len, struct xw_buf *reply,
	    struct xerr *e);
/* `xtcmkctl key ...` commands; `cmd` is the part after "key.". */
int	keys_admin(struct keys *k, const char *cmd, json_t *req,
	    json_t **ret_reply, struct xerr *e);
json_t	*keys_stats(struct keys *k);
/* Customers with a key state here: served, revoked, and failing (the
 * key service fails for them, see note_provider in keys.c). */
void	keys_state_counts(struct keys *k, unsigned *ret_ok,
	    unsigned *ret_revoked, unsigned *ret_failing);
/* Record the usage counted so far in the registry (clean shutdown). */
void	keys_flush(struct keys *k);

#endif
