/*
 * test_validate.c - the input validators: GUIDs, names, customer ids,
 * labels, identity resource ids and key URIs.
 */
#include <string.h>

#include "t.h"
#include "validate.h"

#define V1 "0698c2156c1a4e1da5b6bab6f6422fd6"

static void
test_guid(void)
{
	struct xerr e;

	ASSERT_EQ(valid_guid("72f988bf-86f1-41af-91ab-2d7cd011db47", "tenant",
	    &e), 0);
	ASSERT_EQ(valid_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "tenant",
	    &e), 0);
	ASSERT_EQ(valid_guid("72f988bf86f141af91ab2d7cd011db47", "tenant", &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "tenant");
	ASSERT_EQ(e.code, XTCMK_E_INVAL);
	ASSERT_EQ(valid_guid("72f988bf-86f1-41af-91ab-2d7cd011db4", "t", &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(valid_guid("72f988bf-86f1-41af-91ab-2d7cd011db477", "t", &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(valid_guid("72f988bg-86f1-41af-91ab-2d7cd011db47", "t", &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(valid_guid("{72f988bf-86f1-41af-91ab-2d7cd011db47}", "t", &e),
	    -XTCMK_E_INVAL);
	ASSERT_EQ(valid_guid("", "client id", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "client id is missing");
	ASSERT_EQ(valid_guid(NULL, "t", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_guid("72f988bf-86f1-41af-91ab-2d7cd011db47", "t",
	    NULL), 0);
	ASSERT_EQ(valid_guid("nope", "t", NULL), -XTCMK_E_INVAL);
}

static void
test_names(void)
{
	struct xerr e;
	char big[200];

	ASSERT_EQ(valid_name("app-eu-1", "application", &e), 0);
	ASSERT_EQ(valid_name("wl.eu_west.1", "workload", &e), 0);
	ASSERT_EQ(valid_name("A", "workload", &e), 0);
	ASSERT_EQ(valid_name("-app", "application", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "application '-app' must start");
	ASSERT_EQ(valid_name(".app", "application", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_name("app eu", "application", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "' '");
	ASSERT_EQ(valid_name("app/eu", "application", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_name("app:eu", "application", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_name("", "application", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_name(NULL, "application", &e), -XTCMK_E_INVAL);
	memset(big, 'a', sizeof(big));
	big[NAME_MAX_LEN] = '\0';
	ASSERT_EQ(valid_name(big, "application", &e), 0);
	big[NAME_MAX_LEN] = 'a';
	big[NAME_MAX_LEN + 1] = '\0';
	ASSERT_EQ(valid_name(big, "application", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "longer than 64");

	ASSERT_EQ(valid_customer_id("contoso-42", &e), 0);
	ASSERT_EQ(valid_customer_id("tenant:contoso@eu.1_x", &e), 0);
	ASSERT_EQ(valid_customer_id("@contoso", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "customer id");
	ASSERT_EQ(valid_customer_id("con/toso", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_customer_id("con\ntoso", &e), -XTCMK_E_INVAL);
	ASSERT_TRUE(strchr(e.msg, '\n') == NULL);
	ASSERT_EQ(valid_customer_id("", &e), -XTCMK_E_INVAL);
	memset(big, 'c', sizeof(big));
	big[CUSTOMER_ID_MAX] = '\0';
	ASSERT_EQ(valid_customer_id(big, &e), 0);
	big[CUSTOMER_ID_MAX] = 'c';
	big[CUSTOMER_ID_MAX + 1] = '\0';
	ASSERT_EQ(valid_customer_id(big, &e), -XTCMK_E_INVAL);
}

static void
test_labels(void)
{
	struct xerr e;
	char big[300];

	ASSERT_EQ(valid_label("region", "westeurope", &e), 0);
	ASSERT_EQ(valid_label("example.com/tier", "gold plus", &e), 0);
	ASSERT_EQ(valid_label("empty", "", &e), 0);
	ASSERT_EQ(valid_label("Region", "x", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "label key 'Region'");
	ASSERT_EQ(valid_label("", "x", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_label(NULL, "x", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_label("re gion", "x", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_label("tier", "a=b", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "'='");
	ASSERT_EQ(valid_label("tier", "a\tb", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_label("tier", "caf\xc3\xa9", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_label("tier", NULL, &e), -XTCMK_E_INVAL);
	memset(big, 'k', sizeof(big));
	big[LABEL_KEY_MAX] = '\0';
	ASSERT_EQ(valid_label(big, "v", &e), 0);
	big[LABEL_KEY_MAX] = 'k';
	big[LABEL_KEY_MAX + 1] = '\0';
	ASSERT_EQ(valid_label(big, "v", &e), -XTCMK_E_INVAL);
	memset(big, 'v', sizeof(big));
	big[LABEL_VALUE_MAX] = '\0';
	ASSERT_EQ(valid_label("k", big, &e), 0);
	big[LABEL_VALUE_MAX] = 'v';
	big[LABEL_VALUE_MAX + 1] = '\0';
	ASSERT_EQ(valid_label("k", big, &e), -XTCMK_E_INVAL);
}

static void
test_uami(void)
{
	struct xerr e;

	ASSERT_EQ(valid_uami_resource_id("/subscriptions/"
	    "00000000-0000-0000-0000-000000000000/resourceGroups/rg-id/"
	    "providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	    "id-eu-1", &e), 0);
	ASSERT_EQ(valid_uami_resource_id("/SUBSCRIPTIONS/"
	    "00000000-0000-0000-0000-000000000000/resourcegroups/rg.(x)/"
	    "providers/microsoft.managedidentity/userassignedidentities/"
	    "id_eu_1", &e), 0);
	ASSERT_EQ(valid_uami_resource_id("/subscriptions/"
	    "00000000-0000-0000-0000-000000000000/resourceGroups/rg-id/"
	    "providers/Microsoft.Compute/virtualMachines/vm1", &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "Microsoft.ManagedIdentity");
	ASSERT_EQ(valid_uami_resource_id("/subscriptions/nope/resourceGroups/"
	    "rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	    "id1", &e), -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "subscription id");
	ASSERT_EQ(valid_uami_resource_id("/subscriptions/"
	    "00000000-0000-0000-0000-000000000000/resourceGroups/rg./"
	    "providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	    "id1", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_uami_resource_id("/subscriptions/"
	    "00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
	    "providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	    "id1/extra", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_uami_resource_id("/subscriptions/"
	    "00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
	    "providers/Microsoft.ManagedIdentity/userAssignedIdentities/",
	    &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_uami_resource_id("subscriptions/x", &e),
	    -XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, "user-assigned managed identity");
	ASSERT_EQ(valid_uami_resource_id("", &e), -XTCMK_E_INVAL);
	ASSERT_EQ(valid_uami_resource_id(NULL, &e), -XTCMK_E_INVAL);
}

/* Parse `s`, expect success, and compare the parts. */
static void
good_uri(const char *s, enum key_service svc, const char *host,
    const char *vault, const char *name, const char *version,
    const char *scope, const char *canon)
{
	struct key_uri u;
	struct xerr e;
	char buf[KEY_URI_MAX + 1], base[300];

	xerr_clear(&e);
	ASSERT_EQ(key_uri_parse(s, &u, &e), 0);
	if (e.msg[0] != '\0')
		fprintf(stderr, "  %s: %s\n", s, e.msg);
	ASSERT_EQ(u.service, svc);
	ASSERT_STR(u.host, host);
	ASSERT_STR(u.vault, vault);
	ASSERT_STR(u.name, name);
	ASSERT_STR(u.version, version);
	ASSERT_STR(u.scope, scope);
	snprintf(base, sizeof(base), "https://%s", host);
	ASSERT_STR(u.base, base);
	ASSERT_EQ(key_uri_format(&u, 1, buf, sizeof(buf)), 0);
	ASSERT_STR(buf, canon);
}

/* Parse `s`, expect refusal with a message holding `needle`. */
static void
bad_uri(const char *s, const char *needle)
{
	struct key_uri u;
	struct xerr e;

	memset(&u, 0x5a, sizeof(u));
	xerr_clear(&e);
	ASSERT_EQ(key_uri_parse(s, &u, &e), -XTCMK_E_INVAL);
	ASSERT_EQ(e.code, XTCMK_E_INVAL);
	ASSERT_CONTAINS(e.msg, needle);
	ASSERT_CONTAINS(e.msg, "https://contoso-keys.vault.azure.net/keys/");
	ASSERT_EQ((unsigned char)u.host[0], 0x5a);	/* untouched */
}

static void
test_key_uri(void)
{
	struct key_uri u;
	char buf[KEY_URI_MAX + 1];
	char big[KEY_URI_MAX + 32];

	good_uri("https://contoso.vault.azure.net/keys/cmk", KEY_SERVICE_VAULT,
	    "contoso.vault.azure.net", "contoso", "cmk", "",
	    "https://vault.azure.net/.default",
	    "https://contoso.vault.azure.net/keys/cmk");
	good_uri("https://Contoso-KV1.Vault.Azure.Net/keys/Cmk-1/" V1,
	    KEY_SERVICE_VAULT, "contoso-kv1.vault.azure.net", "contoso-kv1",
	    "Cmk-1", V1, "https://vault.azure.net/.default",
	    "https://contoso-kv1.vault.azure.net/keys/Cmk-1/" V1);
	good_uri("HTTPS://contoso.vault.azure.net/keys/cmk/", KEY_SERVICE_VAULT,
	    "contoso.vault.azure.net", "contoso", "cmk", "",
	    "https://vault.azure.net/.default",
	    "https://contoso.vault.azure.net/keys/cmk");
	good_uri("https://contoso.vault.azure.net/keys/cmk/" V1 "/",
	    KEY_SERVICE_VAULT, "contoso.vault.azure.net", "contoso", "cmk", V1,
	    "https://vault.azure.net/.default",
	    "https://contoso.vault.azure.net/keys/cmk/" V1);
	/* Uppercase versions are accepted and lowercased. */
	good_uri("https://contoso.vault.azure.net/keys/cmk/"
	    "0698C2156C1A4E1DA5B6BAB6F6422FD6", KEY_SERVICE_VAULT,
	    "contoso.vault.azure.net", "contoso", "cmk", V1,
	    "https://vault.azure.net/.default",
	    "https://contoso.vault.azure.net/keys/cmk/" V1);
	good_uri("https://kv-cn.vault.azure.cn/keys/k", KEY_SERVICE_VAULT,
	    "kv-cn.vault.azure.cn", "kv-cn", "k", "",
	    "https://vault.azure.cn/.default",
	    "https://kv-cn.vault.azure.cn/keys/k");
	good_uri("https://kvgov.vault.usgovcloudapi.net/keys/k",
	    KEY_SERVICE_VAULT, "kvgov.vault.usgovcloudapi.net", "kvgov", "k",
	    "", "https://vault.usgovcloudapi.net/.default",
	    "https://kvgov.vault.usgovcloudapi.net/keys/k");
	good_uri("https://kvde.vault.microsoftazure.de/keys/k",
	    KEY_SERVICE_VAULT, "kvde.vault.microsoftazure.de", "kvde", "k",
	    "", "https://vault.microsoftazure.de/.default",
	    "https://kvde.vault.microsoftazure.de/keys/k");
	good_uri("https://hsm1.managedhsm.azure.net/keys/k/" V1,
	    KEY_SERVICE_MHSM, "hsm1.managedhsm.azure.net", "hsm1", "k", V1,
	    "https://managedhsm.azure.net/.default",
	    "https://hsm1.managedhsm.azure.net/keys/k/" V1);
	good_uri("https://hsm1.managedhsm.azure.cn/keys/k", KEY_SERVICE_MHSM,
	    "hsm1.managedhsm.azure.cn", "hsm1", "k", "",
	    "https://managedhsm.azure.cn/.default",
	    "https://hsm1.managedhsm.azure.cn/keys/k");
	good_uri("https://hsm1.managedhsm.usgovcloudapi.net/keys/k",
	    KEY_SERVICE_MHSM, "hsm1.managedhsm.usgovcloudapi.net", "hsm1", "k",
	    "", "https://managedhsm.usgovcloudapi.net/.default",
	    "https://hsm1.managedhsm.usgovcloudapi.net/keys/k");
	good_uri("https://demo.vault.local/keys/cmk-1", KEY_SERVICE_LOCAL,
	    "demo.vault.local", "demo", "cmk-1", "", "",
	    "https://demo.vault.local/keys/cmk-1");

	/* Versionless format and a short buffer. */
	ASSERT_EQ(key_uri_parse("https://demo.vault.local/keys/k/" V1, &u,
	    NULL), 0);
	ASSERT_EQ(key_uri_format(&u, 0, buf, sizeof(buf)), 0);
	ASSERT_STR(buf, "https://demo.vault.local/keys/k");
	ASSERT_EQ(key_uri_format(&u, 1, buf, 10), -XTCMK_E_TOOBIG);

	bad_uri("http://contoso.vault.azure.net/keys/cmk", "https only");
	bad_uri("contoso.vault.azure.net/keys/cmk", "must start with https://");
	bad_uri("", "missing");
	bad_uri(NULL, "missing");
	bad_uri("https://user@contoso.vault.azure.net/keys/cmk",
	    "user information");
	bad_uri("https://contoso.vault.azure.net:443/keys/cmk", "port");
	bad_uri("https://contoso.vault.azure.net/keys/cmk?api-version=7.4",
	    "query");
	bad_uri("https://contoso.vault.azure.net/keys/cmk#x", "fragment");
	bad_uri("https://contoso.vault.azure.net//keys/cmk", "'//'");
	bad_uri("https://contoso.vault.azure.net/keys//cmk", "'//'");
	bad_uri("https://contoso.vault.azure.net/keys/cmk//", "'//'");
	bad_uri("https://contoso.vault.azure.net/secrets/cmk", "/keys/");
	bad_uri("https://contoso.vault.azure.net", "/keys/");
	bad_uri("https://contoso.vault.azure.net/keys/", "key name");
	bad_uri("https://contoso.vault.azure.net/keys/cmk_1", "key name 'cmk_1'");
	bad_uri("https://contoso.vault.azure.net/keys/cmk/" V1 "/wrapkey",
	    "extra path segments");
	bad_uri("https://contoso.vault.azure.net/keys/cmk/" V1 "/x/",
	    "extra path segments");
	bad_uri("https://contoso.vault.azure.net/keys/cmk/123",
	    "key version '123'");
	bad_uri("https://contoso.vault.azure.net/keys/cmk/"
	    "0698c2156c1a4e1da5b6bab6f6422fzz", "key version");
	bad_uri("https://contoso.vault.azure.net/keys/cmk/" V1 "0",
	    "key version");
	bad_uri("https://contoso.example.com/keys/cmk", "not a Key Vault");
	bad_uri("https://contoso.vault.azure.net.evil.com/keys/cmk",
	    "not a Key Vault");
	bad_uri("https://vault.azure.net/keys/cmk", "not a Key Vault");
	bad_uri("https://.vault.azure.net/keys/cmk", "not a Key Vault");
	bad_uri("https://a.b.vault.azure.net/keys/cmk", "without subdomains");
	bad_uri("https://kv.vault.azure.net./keys/cmk", "not a Key Vault");
	bad_uri("https://ab.vault.azure.net/keys/cmk", "vault name 'ab'");
	bad_uri("https://1contoso.vault.azure.net/keys/cmk", "vault name");
	bad_uri("https://contoso-.vault.azure.net/keys/cmk", "vault name");
	bad_uri("https://con--toso.vault.azure.net/keys/cmk", "vault name");
	bad_uri("https://con_toso.vault.azure.net/keys/cmk", "vault name");
	bad_uri("https://abcdefghijklmnopqrstuvwxy.vault.azure.net/keys/cmk",
	    "vault name");
	good_uri("https://abcdefghijklmnopqrstuvwx.vault.azure.net/keys/cmk",
	    KEY_SERVICE_VAULT, "abcdefghijklmnopqrstuvwx.vault.azure.net",
	    "abcdefghijklmnopqrstuvwx", "cmk", "",
	    "https://vault.azure.net/.default",
	    "https://abcdefghijklmnopqrstuvwx.vault.azure.net/keys/cmk");
	memset(big, 'k', sizeof(big));
	memcpy(big, "https://contoso.vault.azure.net/keys/", 37);
	big[KEY_URI_MAX + 1] = '\0';
	bad_uri(big, "longer than");
	memset(big, 'k', sizeof(big));
	memcpy(big, "https://contoso.vault.azure.net/keys/", 37);
	big[37 + KEY_NAME_MAX] = '\0';
	ASSERT_EQ(key_uri_parse(big, &u, NULL), 0);
	big[37 + KEY_NAME_MAX] = 'k';
	big[37 + KEY_NAME_MAX + 1] = '\0';
	bad_uri(big, "key name");
}

int
main(void)
{
	test_guid();
	test_names();
	test_labels();
	test_uami();
	test_key_uri();
	return t_done();
}
