/*
 * test_config.c - xtcmk.conf parsing: defaults, every value type, and the
 * errors an admin sees for broken files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf.h"
#include "t.h"

static char dir[] = "/tmp/xtcmk-conf-XXXXXX";

static int
load_text(const char *text, struct config **ret, struct xerr *e)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/xtcmk.conf", dir);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return config_load(path, ret, e);
}

static void
expect_error(const char *text, const char *needle)
{
	struct config *c = NULL;
	struct xerr e = { 0 };

	ASSERT_INT(load_text(text, &c, &e), <, 0);
	ASSERT_CONTAINS(e.msg, needle);
	config_free(c);
}

int
main(void)
{
	struct config *c;
	struct xerr e;

	if (mkdtemp(dir) == NULL)
		return 1;

	ASSERT_EQ(config_load(NULL, &c, &e), 0);
	ASSERT_STR(c->socket_path, "/run/xtcmk/xtcmkd.sock");
	ASSERT_STR(c->registry_path, "/var/lib/xtcmk/registry.db");
	ASSERT_EQ(c->max_frame, 65536);
	/* One policy worker per online CPU, at least 2, at most 16. */
	{
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		ASSERT_EQ(c->policy_workers, n < 2 ? 2u : n > 16 ? 16u :
		    (unsigned)n);
		ASSERT_TRUE(c->policy_workers >= 2);
	}
	ASSERT_TRUE(config_allows(c, 0, 0, 0));
	ASSERT_TRUE(config_allows(c, 1, 0, 0));
	ASSERT_TRUE(!config_allows(c, 1, 54321, 54321));
	config_free(c);

	ASSERT_EQ(load_text(
	    "# comment\n"
	    "[agent]\n"
	    "socket = /tmp/x.sock\n"
	    "state_dir = /tmp/state\n"
	    "workload = wl-eu-1  \n"
	    "; another comment\n"
	    "max_frame = 4096\n"
	    "log_level = debug\n"
	    "[access]\n"
	    "data_uids = 1000, 1001\n"
	    "admin_uids = 0\n"
	    "data_gids = *\n"
	    "[policy]\n"
	    "memory = 8M\n"
	    "instructions = 50000\n"
	    "[params]\n"
	    "customers_per_app = 25\n"
	    "dedicated_tier = gold\n"
	    "strict = true\n", &c, &e), 0);
	ASSERT_STR(c->socket_path, "/tmp/x.sock");
	ASSERT_STR(c->registry_path, "/tmp/state/registry.db");
	ASSERT_STR(c->decision_log, "/tmp/state/decisions.jsonl");
	ASSERT_STR(c->workload, "wl-eu-1");
	ASSERT_EQ(c->max_frame, 4096);
	ASSERT_EQ(c->limits.memory, 8u << 20);
	ASSERT_EQ(c->limits.instructions, 50000);
	ASSERT_EQ(json_integer_value(json_object_get(c->params,
	    "customers_per_app")), 25);
	ASSERT_STR(json_string_value(json_object_get(c->params,
	    "dedicated_tier")), "gold");
	ASSERT_TRUE(json_is_true(json_object_get(c->params, "strict")));
	ASSERT_TRUE(config_allows(c, 0, 1001, 5));
	ASSERT_TRUE(config_allows(c, 0, 4242, 4242));	/* gids = * */
	ASSERT_TRUE(!config_allows(c, 1, 1001, 5));
	config_free(c);

	expect_error("[agent]\nsokcet = /x\n", "unknown key 'sokcet'");
	expect_error("[agnet]\n", "unknown section [agnet]");
	expect_error("socket = /x\n", "before any [section]");
	expect_error("[agent]\nmax_frame = 12\n", "from 1024 to 65536");
	expect_error("[agent]\nmax_frame = lots\n", "whole number");
	expect_error("[agent]\npolicy_workers = 65\n", "from 1 to 64");
	expect_error("[agent]\nsocket = relative.sock\n", "absolute path");
	expect_error("[agent]\nlog_level = loud\n", "log_level 'loud'");
	expect_error("[access]\ndata_uids = no-such-user-xyz\n",
	    "no user named 'no-such-user-xyz'");
	expect_error("[agent]\nworkload\n", "expected 'key = value'");
	expect_error("[policy]\nmemory = 12Q\n", "suffix K, M, G");
	expect_error("[keys]\nprovider = local\n", "unknown key 'provider'");
	expect_error("[params]\nbad-key = 1\n", "letters, digits and '_'");
	expect_error("[agent\n", "closing ']'");
	expect_error("[policy]\nmemory = 17179869185G\n", "suffix K, M, G");
	expect_error("[params]\nname = \xff\xfe\n", "not valid UTF-8");
	expect_error("[azure]\ntenant = not-a-guid\n", "[azure] tenant");
	expect_error("[azure]\nauthority = http://login\n", "https:// URL");
	ASSERT_EQ(load_text("[azure]\ntenant = 72f988bf-86f1-41af-91ab-"
	    "2d7cd011db47\nauthority = https://login.microsoftonline.us\n",
	    &c, &e), 0);
	ASSERT_STR(c->azure_tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
	ASSERT_STR(c->azure_authority, "https://login.microsoftonline.us");
	/* The identity token's audience follows the authority's cloud. */
	ASSERT_STR(c->azure_token_audience, "api://AzureADTokenExchangeUSGov");
	config_free(c);
	ASSERT_EQ(load_text("[azure]\nauthority = https://login.chinacloudapi"
	    ".cn/\n", &c, &e), 0);
	ASSERT_STR(c->azure_token_audience, "api://AzureADTokenExchangeChina");
	config_free(c);
	ASSERT_EQ(load_text("[azure]\ntenant = 72f988bf-86f1-41af-91ab-"
	    "2d7cd011db47\n", &c, &e), 0);
	ASSERT_STR(c->azure_token_audience, "api://AzureADTokenExchange");
	config_free(c);
	expect_error("[azure]\nauthority = https://login.microsoftonline.us\n"
	    "token_audience = api://AzureADTokenExchange\n",
	    "set it to api://AzureADTokenExchangeUSGov");
	ASSERT_INT(config_load("/nonexistent/xtcmk.conf", &c, &e), <, 0);
	ASSERT_CONTAINS(e.msg, "cannot read config /nonexistent/xtcmk.conf");

	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		(void)!system(cmd);
	}
	return t_done();
}
