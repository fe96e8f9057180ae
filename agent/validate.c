/*
 * validate.c - input validation for everything an admin or a client names
 * (see validate.h).
 *
 * Every refusal says which field is wrong and what a valid value looks
 * like.  Values are echoed back only after making them printable and
 * short (show()), so a hostile value cannot forge log lines.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "validate.h"

#define SHOW_MAX	80	/* characters of a bad value echoed back */

#define KEY_URI_EXAMPLE	"https://contoso-keys.vault.azure.net/keys/cmk-1 " \
	"or https://contoso-keys.vault.azure.net/keys/cmk-1/" \
	"0698c2156c1a4e1da5b6bab6f6422fd6"

/* The key services we talk to, by host suffix (including the dot). */
static const struct key_host {
	const char		*suffix;
	enum key_service	 service;
	const char		*scope;
} key_hosts[] = {
	{ ".vault.azure.net", KEY_SERVICE_VAULT,
	    "https://vault.azure.net/.default" },
	{ ".vault.azure.cn", KEY_SERVICE_VAULT,
	    "https://vault.azure.cn/.default" },
	{ ".vault.usgovcloudapi.net", KEY_SERVICE_VAULT,
	    "https://vault.usgovcloudapi.net/.default" },
	{ ".vault.microsoftazure.de", KEY_SERVICE_VAULT,
	    "https://vault.microsoftazure.de/.default" },
	{ ".managedhsm.azure.net", KEY_SERVICE_MHSM,
	    "https://managedhsm.azure.net/.default" },
	{ ".managedhsm.azure.cn", KEY_SERVICE_MHSM,
	    "https://managedhsm.azure.cn/.default" },
	{ ".managedhsm.usgovcloudapi.net", KEY_SERVICE_MHSM,
	    "https://managedhsm.usgovcloudapi.net/.default" },
	{ ".vault.local", KEY_SERVICE_LOCAL, "" },
};

/*
 * Copy at most `n` bytes of `s` into `buf` for a message: non-printable
 * bytes become '?', long values are cut with "...".
 */
static const char *
show(const char *s, size_t n, char *buf, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < n && s[i] != '\0' && o + 4 < len; i++) {
		if (i == SHOW_MAX) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = isprint((unsigned char)s[i]) ? s[i] : '?';
	}
	buf[o] = '\0';
	return buf;
}

#define SHOW(s)		show((s), (size_t)-1, shown, sizeof(shown))
#define SHOWN(s, n)	show((s), (n), shown, sizeof(shown))

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

int
valid_guid(const char *s, const char *what, struct xerr *e)
{
	char shown[SHOW_MAX + 8];
	size_t i;

	if (what == NULL)
		what = "GUID";
	if (s == NULL || *s == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "%s is missing: give a GUID "
		    "such as 72f988bf-86f1-41af-91ab-2d7cd011db47", what);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				break;
		} else if (!is_hex((unsigned char)s[i]))
			break;
	}
	if (i != 36 || s[36] != '\0')
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s' is not a GUID: "
		    "give 8-4-4-4-12 hexadecimal digits such as "
		    "72f988bf-86f1-41af-91ab-2d7cd011db47", what, SHOW(s));
	return 0;
}

/* 1..max characters, first alphanumeric, the rest alphanumeric or `extra`. */
static int
valid_word(const char *s, size_t max, const char *extra, const char *what,
    const char *example, struct xerr *e)
{
	char shown[SHOW_MAX + 8];
	size_t i;

	if (s == NULL || *s == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "%s is missing: give 1 to "
		    "%zu characters such as '%s'", what, max, example);
	if (!is_alnum((unsigned char)s[0]))
		return xerr_set(e, XTCMK_E_INVAL, "%s '%s' must start with "
		    "a letter or digit, e.g. '%s'", what, SHOW(s), example);
	for (i = 0; s[i] != '\0'; i++) {
		if (i == max)
			return xerr_set(e, XTCMK_E_INVAL, "%s '%s' is longer "
			    "than %zu characters: shorten it", what, SHOW(s),
			    max);
		if (!is_alnum((unsigned char)s[i]) &&
		    strchr(extra, s[i]) == NULL)
			return xerr_set(e, XTCMK_E_INVAL, "%s '%s' contains "
			    "'%c': use only letters, digits and '%s', e.g. "
			    "'%s'", what, SHOW(s),
			    isprint((unsigned char)s[i]) ? s[i] : '?', extra,
			    example);
	}
	return 0;
}

int
valid_name(const char *s, const char *what, struct xerr *e)
{
	return valid_word(s, NAME_MAX_LEN, "._-", what ? what : "name",
	    "app-eu-1", e);
}

int
valid_customer_id(const char *s, struct xerr *e)
{
	return valid_word(s, CUSTOMER_ID_MAX, "._:@-", "customer id",
	    "contoso-42", e);
}

int
valid_label(const char *key, const char *value, struct xerr *e)
{
	char shown[SHOW_MAX + 8];
	size_t i;

	if (key == NULL || *key == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "label key is empty: give "
		    "a key such as 'region'");
	for (i = 0; key[i] != '\0'; i++) {
		if (i == LABEL_KEY_MAX)
			return xerr_set(e, XTCMK_E_INVAL, "label key '%s' is "
			    "longer than %d characters: shorten it",
			    SHOW(key), LABEL_KEY_MAX);
		if (!(key[i] >= 'a' && key[i] <= 'z') &&
		    !(key[i] >= '0' && key[i] <= '9') &&
		    strchr("._/-", key[i]) == NULL)
			return xerr_set(e, XTCMK_E_INVAL, "label key '%s' may "
			    "hold only lowercase letters, digits and '._/-', "
			    "e.g. 'region' or 'example.com/tier'", SHOW(key));
	}
	if (value == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "label '%s' has no value: "
		    "give a string (it may be empty)", key);
	for (i = 0; value[i] != '\0'; i++) {
		if (i == LABEL_VALUE_MAX)
			return xerr_set(e, XTCMK_E_INVAL, "value of label '%s' "
			    "is longer than %d characters: shorten it", key,
			    LABEL_VALUE_MAX);
		if (value[i] < 0x20 || value[i] > 0x7e || value[i] == '=')
			return xerr_set(e, XTCMK_E_INVAL, "value of label '%s' "
			    "('%s') may hold only printable ASCII without "
			    "'='", key, SHOW(value));
	}
	return 0;
}

/*
 * ARM id of a user-assigned identity, segment by segment.  Resource group
 * names: 1-90 of [A-Za-z0-9._()-], not ending in '.'; identity names:
 * 3-128 of [A-Za-z0-9_-], first alphanumeric.
 */
int
valid_uami_resource_id(const char *s, struct xerr *e)
{
	static const char *fixed[] = { "subscriptions", NULL,
	    "resourceGroups", NULL, "providers", "Microsoft.ManagedIdentity",
	    "userAssignedIdentities", NULL };
	static const char example[] = "/subscriptions/"
	    "00000000-0000-0000-0000-000000000000/resourceGroups/rg-id/"
	    "providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	    "id-eu-1";
	char shown[SHOW_MAX + 8], seg[RESOURCE_ID_MAX + 1];
	const char *p, *q;
	size_t i, n;

	if (s == NULL || *s == '\0' || strlen(s) > RESOURCE_ID_MAX ||
	    s[0] != '/')
		goto bad;
	p = s + 1;
	for (i = 0; i < 8; i++, p = q + 1) {
		q = strchr(p, '/');
		if (q == NULL)
			q = p + strlen(p);
		if ((i < 7) != (*q == '/'))
			goto bad;
		n = (size_t)(q - p);
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (fixed[i] != NULL) {
			if (strcasecmp(seg, fixed[i]) != 0)
				return xerr_set(e, XTCMK_E_INVAL, "resource id "
				    "'%s': expected '%s' where it says '%s'; "
				    "a valid id looks like %s", SHOW(s),
				    fixed[i], seg, example);
		} else if (i == 1) {
			if (valid_guid(seg, "subscription id", e) != 0)
				return -XTCMK_E_INVAL;
		} else if (i == 3) {
			if (n == 0 || n > 90 || seg[n - 1] == '.' ||
			    strspn(seg, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._()-") != n)
				return xerr_set(e, XTCMK_E_INVAL, "resource "
				    "group '%s' is not valid: 1-90 letters, "
				    "digits and '._()-', not ending in '.'",
				    seg);
		} else {
			if (n < 3 || valid_word(seg, 128, "_-",
			    "identity name", "id-eu-1", e) != 0)
				return xerr_set(e, XTCMK_E_INVAL, "identity "
				    "name '%s' is not valid: 3-128 letters, "
				    "digits, '-' and '_', e.g. 'id-eu-1'", seg);
		}
		if (*q == '\0')
			break;
	}
	if (i == 7)
		return 0;
bad:
	return xerr_set(e, XTCMK_E_INVAL, "'%s' is not the resource id of a "
	    "user-assigned managed identity: it looks like %s",
	    s ? SHOW(s) : "", example);
}

/* Key Vault and Managed HSM names: 3-24 of [a-z0-9-], first a letter,
 * last a letter or digit, no "--". */
static int
valid_vault_name(const char *v, size_t n, struct xerr *e)
{
	char shown[SHOW_MAX + 8];
	size_t i;
	int ok = n >= 3 && n <= 24 && v[0] >= 'a' && v[0] <= 'z' &&
	    v[n - 1] != '-';

	for (i = 0; ok && i < n; i++) {
		if (!(v[i] >= 'a' && v[i] <= 'z') &&
		    !(v[i] >= '0' && v[i] <= '9') && v[i] != '-')
			ok = 0;
		if (v[i] == '-' && i + 1 < n && v[i + 1] == '-')
			ok = 0;
	}
	if (!ok)
		return xerr_set(e, XTCMK_E_INVAL, "key URI: vault name '%s' "
		    "is not valid: 3-24 letters, digits and single hyphens, "
		    "starting with a letter and ending with a letter or "
		    "digit; e.g. %s", SHOWN(v, n), KEY_URI_EXAMPLE);
	return 0;
}

int
key_uri_parse(const char *s, struct key_uri *ret_uri, struct xerr *e)
{
	char shown[SHOW_MAX + 8];
	struct key_uri u;
	const struct key_host *kh = NULL;
	const char *host, *path, *name, *ver, *end;
	size_t hlen, slen, i, n;

	memset(&u, 0, sizeof(u));
	if (s == NULL || *s == '\0')
		return xerr_set(e, XTCMK_E_INVAL, "key URI is missing: give "
		    "one such as %s", KEY_URI_EXAMPLE);
	if (strlen(s) > KEY_URI_MAX)
		return xerr_set(e, XTCMK_E_INVAL, "key URI is longer than %d "
		    "characters; a valid one looks like %s", KEY_URI_MAX,
		    KEY_URI_EXAMPLE);
	if (strncasecmp(s, "http://", 7) == 0)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' uses http: "
		    "key services are reached over https only, e.g. %s",
		    SHOW(s), KEY_URI_EXAMPLE);
	if (strncasecmp(s, "https://", 8) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' must start "
		    "with https://, e.g. %s", SHOW(s), KEY_URI_EXAMPLE);
	if (strpbrk(s, "?#") != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' has a query "
		    "or fragment ('?' or '#'): remove it, e.g. %s", SHOW(s),
		    KEY_URI_EXAMPLE);

	host = s + 8;
	hlen = strcspn(host, "/");
	path = host + hlen;
	if (memchr(host, '@', hlen) != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' contains "
		    "user information ('@'): remove it, e.g. %s", SHOW(s),
		    KEY_URI_EXAMPLE);
	if (memchr(host, ':', hlen) != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' names a port: "
		    "remove it, key services listen on 443, e.g. %s",
		    SHOW(s), KEY_URI_EXAMPLE);
	if (hlen >= sizeof(u.host))
		return xerr_set(e, XTCMK_E_INVAL, "key URI: host name is too "
		    "long; e.g. %s", KEY_URI_EXAMPLE);
	for (i = 0; i < hlen; i++)
		u.host[i] = (char)tolower((unsigned char)host[i]);
	u.host[hlen] = '\0';
	for (i = 0; i < sizeof(key_hosts) / sizeof(key_hosts[0]); i++) {
		slen = strlen(key_hosts[i].suffix);
		if (hlen > slen && strcmp(u.host + hlen - slen,
		    key_hosts[i].suffix) == 0) {
			kh = &key_hosts[i];
			break;
		}
	}
	if (kh == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key URI: host '%s' is not a "
		    "Key Vault or Managed HSM host (*.vault.azure.net, "
		    "*.managedhsm.azure.net, their sovereign-cloud forms, or "
		    "*.vault.local for the local keystore); e.g. %s",
		    u.host[0] ? SHOW(u.host) : "(empty)", KEY_URI_EXAMPLE);
	n = hlen - strlen(kh->suffix);
	if (memchr(u.host, '.', n) != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key URI: host '%s' must be "
		    "the vault name followed by '%s', without subdomains; "
		    "e.g. %s", SHOW(u.host), kh->suffix, KEY_URI_EXAMPLE);
	if (valid_vault_name(u.host, n, e) != 0)
		return -XTCMK_E_INVAL;
	memcpy(u.vault, u.host, n);
	u.vault[n] = '\0';
	u.service = kh->service;

	if (strstr(path, "//") != NULL)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' has an empty "
		    "path segment ('//'): remove the extra slash, e.g. %s",
		    SHOW(s), KEY_URI_EXAMPLE);
	if (strncmp(path, "/keys/", 6) != 0)
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s': the path must "
		    "start with /keys/ followed by the key name, e.g. %s",
		    SHOW(s), KEY_URI_EXAMPLE);
	name = path + 6;
	n = strcspn(name, "/");
	if (n == 0 || n > KEY_NAME_MAX || strspn(name, "abcdefghijklmnopqrs"
	    "tuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n)
		return xerr_set(e, XTCMK_E_INVAL, "key URI: key name '%s' is "
		    "not valid: 1-%d letters, digits and '-', e.g. %s",
		    SHOWN(name, n), KEY_NAME_MAX, KEY_URI_EXAMPLE);
	memcpy(u.name, name, n);
	u.name[n] = '\0';
	ver = name + n;
	if (*ver == '/')
		ver++;
	n = strcspn(ver, "/");
	end = ver + n;
	if (*end == '/')
		end++;
	if (*end != '\0')
		return xerr_set(e, XTCMK_E_INVAL, "key URI '%s' has extra path "
		    "segments after the key version: it ends with "
		    "/keys/NAME or /keys/NAME/VERSION, e.g. %s", SHOW(s),
		    KEY_URI_EXAMPLE);
	if (n != 0) {
		/*
		 * Key Vault prints versions in lowercase hex.  Uppercase is
		 * accepted and lowercased here, since hex digits mean the
		 * same in either case and the service compares them that way.
		 */
		for (i = 0; i < n && i < KEY_VERSION_LEN; i++) {
			if (!is_hex((unsigned char)ver[i]))
				break;
			u.version[i] = (char)tolower((unsigned char)ver[i]);
		}
		if (n != KEY_VERSION_LEN || i != n)
			return xerr_set(e, XTCMK_E_INVAL, "key URI: key version "
			    "'%s' is not valid: exactly %d hexadecimal digits, "
			    "or leave it out to follow rotations; e.g. %s",
			    SHOWN(ver, n), KEY_VERSION_LEN, KEY_URI_EXAMPLE);
		u.version[n] = '\0';
	}
	snprintf(u.base, sizeof(u.base), "https://%s", u.host);
	snprintf(u.scope, sizeof(u.scope), "%s", kh->scope);
	*ret_uri = u;
	return 0;
}

int
key_uri_format(const struct key_uri *u, int with_version, char *buf,
    size_t len)
{
	int n;

	if (u == NULL || buf == NULL || len == 0)
		return -XTCMK_E_INVAL;
	if (with_version && u->version[0] != '\0')
		n = snprintf(buf, len, "https://%s/keys/%s/%s", u->host,
		    u->name, u->version);
	else
		n = snprintf(buf, len, "https://%s/keys/%s", u->host,
		    u->name);
	if (n < 0 || (size_t)n >= len)
		return -XTCMK_E_TOOBIG;
	return 0;
}
