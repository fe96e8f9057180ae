/*
 * onboard_int.h - helpers shared by the onboarding generators
 * (onboard.c, onboard_res.c, onboard_storage.c, onboard_steps.c); not
 * used elsewhere.
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
/* status.azure.token_audience (the agent's), or the public cloud's. */
const char *onb_audience(json_t *status);
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
/* v, or the placeholder when v is NULL. */
const char *onb_ph(const char *v, const char *placeholder);
/*
 * An ARM template (FACTS 8: `$schema`, `contentVersion`, `resources`) that
 * deploys `resource` (a reference is taken) with `params` (stolen; NULL
 * for none): what `az deployment group create --template-file` takes.
 */
json_t	*onb_arm_template(json_t *resource, json_t *params);

/* Phase 3 of one customer and one resource kind (onboard_res.c). */
struct res {
	const char	*id;		/* customer */
	const char	*kind;
	const char	*cid;		/* application (client) id */
	const char	*uami;		/* identity resource id */
	const char	*wl;		/* its workload name */
	const char	*wl_client_id;	/* the identity's client id */
	const char	*mode;		/* auto | pinned */
	const char	*version;
	const char	*account, *rg, *sub, *loc, *vault_rid;
	struct key_uri	 ku;
	char		 key_uri[600];	/* as the kind wants it */
	json_t		*d, *doc;
};

#define STORAGE_API		"2022-09-01"
#define ARM_SCHEMA		"https://schema.management.azure.com/schemas/" \
				"2019-04-01/deploymentTemplate.json#"

/* The user-assigned identity object of an ARM resource. */
json_t	*onb_uami_identity(const char *type, const char *uami);
/* Steps the Azure documents leave to other pages (onboard_steps.c). */
void	onb_step_app_create(json_t *body, const char *name);
void	onb_step_identities(json_t *body, const char *tenant);
/* `prev` plus New-AzADAppFederatedCredential for `fic` (a Graph body). */
char	*onb_step_fic_ps(const char *prev, json_t *fic);
void	onb_step_vault_create(json_t *body, const struct key_uri *ku,
	    int rbac, int cosmos);
void	onb_step_netapp_approve(json_t *body, const struct key_uri *ku,
	    const char *vault_rid);

/* Storage, new (`existing` 0) or existing account (onboard_storage.c). */
void	onb_res_storage(struct res *r, int existing);

#endif
