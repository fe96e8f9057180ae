/*
 * validate.h - input validation for everything an admin or a client names:
 * GUIDs, tenant ids, names, customer ids, labels and key URIs.
 *
 * Each validator returns 0 or -XTCMK_E_INVAL with a sentence in `e` that
 * names the field (`what`) and says what a valid value looks like.
 */
#ifndef XTCMK_VALIDATE_H
#define XTCMK_VALIDATE_H

#include <stddef.h>

#include "xerr.h"

#define NAME_MAX_LEN		64	/* workload / application names */
#define CUSTOMER_ID_MAX		128	/* = XW_CUSTOMER_MAX */
#define LABEL_KEY_MAX		63
#define LABEL_VALUE_MAX		255
#define LABELS_MAX		32	/* labels per object */
#define KEY_URI_MAX		512
#define KEY_NAME_MAX		127	/* Key Vault: 1-127, [0-9A-Za-z-] */
#define KEY_VERSION_LEN		32	/* lowercase hex */
#define RESOURCE_ID_MAX		1024

/* 8-4-4-4-12 hex, any case.  Tenant ids are GUIDs too. */
int	valid_guid(const char *s, const char *what, struct xerr *e);
/* 1..NAME_MAX_LEN of [A-Za-z0-9._-], first alphanumeric. */
int	valid_name(const char *s, const char *what, struct xerr *e);
/* 1..CUSTOMER_ID_MAX of [A-Za-z0-9._:@-], first alphanumeric. */
int	valid_customer_id(const char *s, struct xerr *e);
/* Label key [a-z0-9._/-] 1..63, value printable ASCII without '=' 0..255. */
int	valid_label(const char *key, const char *value, struct xerr *e);
/* ARM id of a user-assigned identity:
 * /subscriptions/G/resourceGroups/RG/providers/
 *   Microsoft.ManagedIdentity/userAssignedIdentities/NAME (case-insensitive). */
int	valid_uami_resource_id(const char *s, struct xerr *e);

enum key_service {
	KEY_SERVICE_VAULT = 1,	/* Key Vault: {vault}.vault.azure.net etc. */
	KEY_SERVICE_MHSM,	/* Managed HSM: {hsm}.managedhsm.azure.net */
	KEY_SERVICE_LOCAL,	/* embedded keystore: {vault}.vault.local */
};

struct key_uri {
	enum key_service service;
	char	host[256];		/* lowercased, e.g. contoso.vault.azure.net */
	char	vault[64];		/* first DNS label: vault or HSM name */
	char	name[KEY_NAME_MAX + 1];
	char	version[KEY_VERSION_LEN + 1];	/* "" when versionless */
	char	base[300];		/* https://host (no trailing slash) */
	char	scope[128];		/* https://vault.azure.net/.default ... */
};

/*
 * Parse a key URI: https://HOST/keys/NAME[/VERSION], one optional trailing
 * slash, no query or fragment, HOST one of the Key Vault / Managed HSM
 * suffixes of the public and sovereign clouds or `.vault.local`.
 * Refuses http:, user info, ports, stray or doubled slashes, bad names and
 * versions with a message saying which part is wrong.
 */
int	key_uri_parse(const char *s, struct key_uri *ret_uri, struct xerr *e);
/* Canonical text: https://host/keys/name[/version], no trailing slash. */
int	key_uri_format(const struct key_uri *u, int with_version, char *buf,
	    size_t len);

#endif
