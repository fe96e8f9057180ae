/*
 * harness_admin.h - one admin request (JSON) to a running agent over the
 * shared client code (common/client.c), for the integration tests that
 * talk to the agent directly instead of through xtcmkctl.
 */
#ifndef XTCMK_HARNESS_ADMIN_H
#define XTCMK_HARNESS_ADMIN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "client.h"
#include "wire.h"

/*
 * Send `req` (consumed) on `conn` (connected to `sock` on first use, and
 * again once after a dead connection); the reply object on success
 * (status 0), else NULL with the status and the agent's message.
 */
static inline json_t *
h_admin(const char *sock, struct xc_conn *conn, int call_ms, json_t *req,
    int *ret_status, char *msg, size_t msglen)
{
	char err[XC_ERR_MAX] = "";
	struct xw_buf b;
	struct xw_field f;
	uint8_t *payload, *reply = NULL;
	uint16_t status = 0;
	size_t rlen = 0;
	json_t *r = NULL;
	char *text;
	int rc = -1, tries;

	if (ret_status != NULL)
		*ret_status = 0;
	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL || (payload = malloc(XW_PAYLOAD_MAX)) == NULL) {
		free(text);
		return NULL;
	}
	xw_buf_init(&b, payload, XW_PAYLOAD_MAX);
	xw_put_str(&b, XT_JSON, text);
	free(text);
	/* A restarted agent leaves a dead connection behind: retry once. */
	for (tries = 0; tries < 2; tries++) {
		int64_t dl = xc_deadline(call_ms);

		rc = 0;
		if (conn->fd == -1)
			rc = xc_connect(sock, dl, err, sizeof(err), conn);
		if (rc == 0)
			rc = xc_request(conn, XW_ADMIN, payload, b.len,
			    XW_PAYLOAD_MAX, dl, err, sizeof(err), &status,
			    &reply, &rlen);
		if (rc == 0)
			break;
		xc_close(conn);
	}
	free(payload);
	if (rc < 0) {
		if (ret_status != NULL)
			*ret_status = -rc;
		if (msg != NULL)
			snprintf(msg, msglen, "%s", err);
		return NULL;
	}
	if (ret_status != NULL)
		*ret_status = status;
	if (status != 0) {
		if (msg != NULL)
			xc_reply_message(reply, rlen, msg, msglen);
	} else if (xw_find(reply, rlen, XT_JSON, &f) == 1)
		r = json_loadb((const char *)f.val, f.len, 0, NULL);
	free(reply);
	return r;
}

#endif
