/*
 * token.h - the LUKS2 token of type "xtcmk": what xtcmk-luks(8) writes
 * into a volume's header and what the cryptsetup plugin reads back.
 *
 *	{ "type": "xtcmk", "keyslots": [ "1" ],
 *	  "xtcmk-version": 1,
 *	  "xtcmk-customer": "contoso",
 *	  "xtcmk-key-id": "https://contoso-kv.vault.local/keys/cmk/3f00...",
 *	  "xtcmk-blob": "WFRDQgEB...",		(base64 of the wrapped DEK)
 *	  "xtcmk-socket": "/run/xtcmk/xtcmkd.sock",	(optional)
 *	  "xtcmk-timeout-ms": 3000 }			(optional)
 *
 * The keyslot passphrase is derived from the DEK (token_passphrase()), so
 * the blob alone never unlocks anything: the agent must unwrap it, and it
 * refuses once the customer disables the key.
 *
 * Shared by the plugin (a guest inside cryptsetup) and the tool, so it
 * never prints: every failure comes back as a sentence in `err`.
 */
#ifndef XTCMK_LUKS_TOKEN_H
#define XTCMK_LUKS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "xtcmk.h"

#define TOKEN_TYPE		"xtcmk"
#define TOKEN_VERSION		1
#define TOKEN_CUSTOMER_MAX	128	/* as the agent's customer ids */
#define TOKEN_KID_MAX		512	/* as the blob's key id */
#define TOKEN_SOCKET_MAX	107	/* sun_path less its NUL */
#define TOKEN_TIMEOUT_DEFAULT	3000	/* ms, total per unlock */
#define TOKEN_TIMEOUT_MAX	60000
#define TOKEN_JSON_MAX		8192	/* what we accept from a header */
#define TOKEN_ERR_MAX		256
/* The keyslot passphrase: 64 hex digits of HMAC-SHA256. */
#define TOKEN_PASS_LEN		64

struct token {
	char		customer[TOKEN_CUSTOMER_MAX + 1];
	char		key_id[TOKEN_KID_MAX + 1];
	char		socket[TOKEN_SOCKET_MAX + 1];	/* "" if absent */
	unsigned	timeout_ms;
	uint8_t		blob[XTCMK_BLOB_MAX];
	size_t		blob_len;
	int		keyslots[32];
	size_t		nkeyslots;
};

/*
 * Parse and check a token's JSON: every field present with its type, the
 * blob valid base64 of a well-formed blob header whose customer and key
 * id are the token's.  On failure returns -EINVAL and a sentence in err.
 */
int	token_parse(const char *json, struct token *ret_token, char *err,
	    size_t err_len);
/* The JSON of `t` (keyslots included) in a malloc'd string, or NULL. */
char	*token_format(const struct token *t);
/*
 * Read the customer id and key id out of a wrapped blob's header
 * (xtcmk-blob(5)); -EINVAL with a sentence if the header is malformed.
 */
int	token_blob_ids(const uint8_t *blob, size_t len, char *customer,
	    size_t customer_len, char *key_id, size_t key_id_len, char *err,
	    size_t err_len);
/*
 * The keyslot passphrase of a DEK: hex(HMAC-SHA256(DEK, label)), not NUL
 * terminated.  0, or -EIO if the hash failed.
 */
int	token_passphrase(const uint8_t dek[XTCMK_DEK_LEN],
	    char pass[TOKEN_PASS_LEN]);
/*
 * Memory for secrets (DEK, passphrase, key file): whole anonymous pages,
 * locked when the limits allow, left out of core dumps and wiped in a
 * forked child.  token_secret_free() wipes and unmaps; NULL is fine.
 * Allocation returns NULL only when the pages cannot be mapped.
 */
void	*token_secret_alloc(size_t len);
/* What an unlock holds: the passphrase first (the plugin hands it out). */
struct token_secret {
	char	pass[TOKEN_PASS_LEN];
	uint8_t	dek[XTCMK_DEK_LEN];
};
void	 token_secret_free(void *p, size_t len);
/* The negative errno libcryptsetup expects for an xtcmk result. */
int	token_errno(int xtcmk_result);

#endif
