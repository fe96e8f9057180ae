/*
 * azure_kv_int.h - private to azure_kv.c (the provider's operations) and
 * azure_kvreq.c (one authenticated Key Vault request, vault errors as
 * sentences): what both need.  Not part of azure.h.
 */
#ifndef XTCMK_AZURE_KV_INT_H
#define XTCMK_AZURE_KV_INT_H

#include <stdio.h>

#include "azure.h"
#include "provider.h"
#include "validate.h"
#include "xerr.h"

struct az_chal_entry {
	struct az_chal_entry *next;
	char		 host[256];
	struct az_challenge ch;
};

enum kv_op { OP_GET, OP_WRAP, OP_UNWRAP };

static inline const char *
az_kv_op_name(enum kv_op op)
{
	static const char *const op_names[] = { "get", "wrapKey",
	    "unwrapKey" };

	return op_names[op];
}

/* "BASE/keys/NAME": the key as messages name it. */
static inline void
az_kv_key_text(const struct key_uri *u, char *buf, size_t len)
{
	snprintf(buf, len, "%s/keys/%s", u->base, u->name);
}

/*
 * One Key Vault request as the customer's application: challenge first
 * when the host is new, then with a Bearer token; a 401 on a token makes
 * one more try with a fresh challenge and token.  Any HTTP status is a
 * success; the caller reads ret->status and clears *ret.
 */
int	az_kv_request(struct az_ctx *x, const struct provider_req *pr,
	    const struct key_uri *u, const char *method, const char *path,
	    const char *body, struct az_http_resp *ret, struct xerr *e);
/* The sentence for a vault refusal (status not 200), naming the fix. */
int	az_kv_error(struct az_ctx *x, const struct provider_req *pr,
	    const struct key_uri *u, enum kv_op op,
	    const struct az_http_resp *r, struct xerr *e);

#endif
