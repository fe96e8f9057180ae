/*
 * onboard_int.h - helpers shared by the onboarding generators
 * (onboard.c, onboard_res.c); not used elsewhere.
 */
#ifndef XTCMK_ONBOARD_INT_H
#define XTCMK_ONBOARD_INT_H

#include <jansson.h>

#include "validate.h"
#include "xerr.h"

/* String member or NULL. */
const char *onb_str(json_t *o, const char *key);
/* status.azure.authority, or the public cloud's. */
const char *onb_authority(json_t *status);
/* customer.show's decision, or -XTCMK_E_POLICY with the policy's reason. */
int	onb_decision(json_t *show, const char *id, json_t **ret_d,
	    struct xerr *e);
/* The application's client id, or -XTCMK_E_CONFLICT saying how to set it. */
int	onb_client_id(json_t *d, const char **ret_id, struct xerr *e);
/* 1 when the array holds the string. */
int	onb_has(json_t *list, const char *s);
/* Check a Key Vault resource id against the key URI's vault. */
int	onb_vault_rid(const char *rid, const struct key_uri *ku,
	    struct xerr *e);
/* A user-given Azure name that is safe inside a generated command. */
int	onb_safe_arg(const char *v, const char *what, struct xerr *e);

#endif
