/*
 * keys.c - the data plane (see keys.h).  Not wired yet: every data-key
 * request is refused as unsupported until the key manager lands.
 */
#include <stdlib.h>

#include "keys.h"

struct keys {
	int	unused;
};

int
keys_open(struct config *cfg, struct service *svc, struct keys **ret_keys,
    struct xerr *e)
{
	(void)cfg;
	(void)svc;
	(void)e;
	*ret_keys = NULL;
	return 0;
}

void
keys_close(struct keys *k)
{
	free(k);
}

int
keys_handle(struct keys *k, struct service *svc, uint16_t type,
    const uint8_t *payload, uint32_t len, struct xw_buf *reply,
    struct xerr *e)
{
	(void)k;
	(void)svc;
	(void)type;
	(void)payload;
	(void)len;
	(void)reply;
	return xerr_set(e, XTCMK_E_UNSUPPORTED, "data keys are not "
	    "available in this agent yet");
}

int
keys_admin(struct keys *k, const char *cmd, json_t *req, json_t **ret_reply,
    struct xerr *e)
{
	(void)k;
	(void)req;
	(void)ret_reply;
	return xerr_set(e, XTCMK_E_UNSUPPORTED, "key %s: not available in "
	    "this agent yet", cmd);
}

json_t *
keys_stats(struct keys *k)
{
	(void)k;
	return json_object();
}
