/*
 * keys_admin.c - the `xtcmkctl key ...` commands: the local keystore's
 * keys (create, rotate, disable, enable, delete, list, show), the key
 * status report per customer (state, version in force, usage per version
 * and when an old version may be disabled, with its text rendering), and
 * `xtcmkctl customer check`, which walks a wrap's path step by step.
 *
 * The key states themselves belong to the data plane (keys.c); this file
 * reads them through keys_int.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "azure.h"
#include "backend.h"
#include "keycache.h"
#include "keys.h"
#include "keys_int.h"
#include "keystore.h"
#include "provider.h"
#include "registry.h"
#include "service.h"
#include "validate.h"

static int
local_uri_arg(json_t *req, struct key_uri *u, struct xerr *e)
{
	const char *s = json_string_value(json_object_get(req, "uri"));
	int rc;

	if (s == NULL)
		return xerr_set(e, XTCMK_E_INVAL, "missing key URI, e.g. "
		    "https://demo.vault.local/keys/contoso");
	if ((rc = key_uri_parse(s, u, e)) < 0)
		return rc;
	if (u->service != KEY_SERVICE_LOCAL)
		return xerr_set(e, XTCMK_E_INVAL, "%s is not a key of the "
		    "local keystore (*.vault.local): manage Azure keys in "
		    "Azure", s);
	return 0;
}

static json_t *
text_reply(json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *
text_reply(json_t *data, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (data == NULL)
		data = json_object();
	json_object_set_new(data, "text", json_string(buf));
	return data;
}

static int
key_status(struct keys *k, const char *customer, json_t **ret, struct xerr *e)
{
	struct kstate st;
	json_t *usage = NULL, *r, *row, *show = NULL, *versions, *disabled;
	char line[512], *text = NULL;
	const char *fleet_note = NULL;
	struct xerr fe;
	const char *dv;
	size_t i, tlen = 0;
	FILE *f;
	int rc;

	if ((rc = keys_state_get(k, customer, &st, e)) < 0)
		return rc;
	if ((rc = keys_check_now(k, &st, 0, e)) < 0 && rc != -XTCMK_E_REVOKED)
		return rc;
	(void)keys_state_get(k, customer, &st, e);
	(void)keys_check_versions(k, &st);
	if ((disabled = keys_disabled_versions(k, customer)) == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	keys_usage_flush(k);
	if ((rc = reg_usage_get(service_registry(k->svc), customer, &usage,
	    e)) < 0) {
		json_decref(disabled);
		return rc;
	}
	/* With the fleet registry: every host's usage (xtcmk-fleet(7)). */
	if (regb_usage_merge(service_backend(k->svc), customer, usage,
	    &fe) < 0)
		fleet_note = fe.msg;
	if (st.uri.service == KEY_SERVICE_LOCAL)
		(void)keystore_show(k->ks, st.uri.vault, st.uri.name, &show,
		    NULL);
	versions = show != NULL ? json_object_get(show, "versions") : NULL;
	/* When may an old version be disabled?  Not before the grace
	 * period after the next version became current, and not while
	 * blobs still unwrap with it. */
	json_array_foreach(usage, i, row) {
		const char *v = json_string_value(json_object_get(row,
		    "version"));
		long long superseded = 0;
		size_t j;
		json_t *vv;

		json_array_foreach(versions, j, vv) {
			long long c = json_integer_value(json_object_get(vv,
			    "created"));
			const char *name = json_string_value(
			    json_object_get(vv, "version"));

			if (name != NULL && strcmp(name, v) == 0 &&
			    j + 1 < json_array_size(versions))
				superseded = json_integer_value(json_object_get(
				    json_array_get(versions, j + 1),
				    "created"));
			(void)c;
		}
		json_object_set_new(row, "current",
		    json_boolean(strcmp(v, st.version) == 0));
		json_object_set_new(row, "disabled", json_boolean(
		    json_object_get(disabled, v) != NULL));
		if (strcmp(v, st.version) != 0 && superseded > 0)
			json_object_set_new(row, "disable_after", json_integer(
			    superseded + st.grace_s));
	}
	r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:O}",
	    "customer", customer, "state", st.revoked ? "revoked" : "active",
	    "reason", st.revoked ? st.reason : "key enabled at the last check",
	    "key_uri", json_string_value(json_object_get(json_null(), "x")) ?
	    "" : "", "mode", st.pinned ? "pinned" : "auto",
	    "current", st.version, "grace", (json_int_t)st.grace_s,
	    "versions", usage);
	/* Versions refused on their own while the key serves: their
	 * cached DEKs were wiped and their blobs fail closed. */
	json_object_set_new(r, "disabled_versions", disabled);
	if (fleet_note != NULL)
		json_object_set_new(r, "fleet_usage_error",
		    json_string(fleet_note));
	{
		char base[600];

		key_uri_format(&st.uri, 0, base, sizeof(base));
		json_object_set_new(r, "key_uri", json_string(base));
	}
	if ((f = open_memstream(&text, &tlen)) != NULL) {
		fprintf(f, "customer %s: key %s (%s)\n", customer,
		    st.revoked ? "REVOKED" : "active", st.revoked ? st.reason :
		    "enabled at the last check");
		fprintf(f, "version in force: %s (%s mode; grace after "
		    "rotation %us)\n", st.version, st.pinned ? "pinned" :
		    "auto", st.grace_s);
		json_array_foreach(usage, i, row) {
			time_t last = json_integer_value(json_object_get(row,
			    "last")), after = json_integer_value(
			    json_object_get(row, "disable_after"));
			struct tm tm;

			gmtime_r(&last, &tm);
			strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
			fprintf(f, "  %s %s: %lld wraps, %lld unwraps, last used "
			    "%s", json_string_value(json_object_get(row,
			    "version")), json_is_true(json_object_get(row,
			    "current")) ? "(current)" : "(old)    ",
			    (long long)json_integer_value(json_object_get(row,
			    "wraps")), (long long)json_integer_value(
			    json_object_get(row, "unwraps")), line);
			if (json_object_get(row, "hosts") != NULL)
				fprintf(f, " (%lld host%s)", (long long)
				    json_integer_value(json_object_get(row,
				    "hosts")), json_integer_value(
				    json_object_get(row, "hosts")) == 1 ? "" :
				    "s");
			if (after > 0) {
				gmtime_r(&after, &tm);
				strftime(line, sizeof(line),
				    "%Y-%m-%dT%H:%M:%SZ", &tm);
				fprintf(f, "; may be disabled after %s once "
				    "its blobs are rewrapped", line);
			}
			fputc('\n', f);
		}
		if (json_array_size(usage) == 0)
			fprintf(f, "  no wraps or unwraps recorded yet\n");
		if (fleet_note != NULL)
			fprintf(f, "  other hosts' usage unknown: %s\n",
			    fleet_note);
		json_object_foreach(disabled, dv, row)
			fprintf(f, "  version %s DISABLED: its blobs are refused "
			    "and its cached keys wiped: %s\n", dv,
			    json_string_value(row));
		fclose(f);
		json_object_set_new(r, "text", json_string(text));
		free(text);
	}
	json_decref(show);
	*ret = r;
	return 0;
}

static void
check_step(json_t *steps, const char *name, int ok, const char *detail)
{
	json_array_append_new(steps, json_pack("{s:s, s:b, s:s}", "step", name,
	    "ok", ok, "detail", detail));
}

/*
 * `xtcmkctl customer check ID`: walk the path a wrap takes, step by step,
 * and report each step: the decisions, whether this host serves the
 * customer, (azure) this host's identity token, the vault's challenge and
 * the token exchange, then get key and a wrap + unwrap of a test key.
 */
static int
customer_check(struct keys *k, const char *customer, json_t **ret,
    struct xerr *e)
{
	struct provider_req req;
	struct key_state ks;
	struct kstate st;
	struct key_uri u;
	struct provider *p;
	struct xerr se;
	uint8_t dek[XTCMK_DEK_LEN], back[KEYCACHE_DEK_MAX];
	uint8_t wrapped[PROVIDER_WRAPPED_MAX];
	json_t *steps = json_array(), *row, *r;
	char detail[700], *text = NULL;
	size_t wlen, n, i, tlen = 0;
	int ok = 0;
	FILE *f;

	(void)e;
	xerr_clear(&se);
	if (keys_state_get(k, customer, &st, &se) < 0) {
		check_step(steps, "decision", 0, se.msg);
		goto done;
	}
	snprintf(detail, sizeof(detail), "application %s (client id %s), "
	    "tenant %s, key %s/keys/%s (%s%s%s), vault_auth %s", st.app,
	    st.app_client_id[0] ? st.app_client_id : "NOT SET",
	    st.tenant[0] ? st.tenant : "?", st.uri.base, st.uri.name,
	    st.pinned ? "pinned " : "auto", st.pinned ? st.pin : "",
	    "", st.vault_auth[0] ? st.vault_auth : "?");
	check_step(steps, "decision", 1, detail);
	if (!st.served) {
		(void)keys_gate(k, &st, &se);
		check_step(steps, "served", 0, se.msg);
		goto done;
	}
	snprintf(detail, sizeof(detail), "workload %s holds a federated "
	    "credential on application %s", k->cfg->workload, st.app);
	check_step(steps, "served", 1, detail);
	if ((p = keys_provider_for(k, &st.uri, &se)) == NULL) {
		check_step(steps, "provider", 0, se.msg);
		goto done;
	}
	keys_req_of(&st, &req);
	if (p == k->azure && provider_azure_probe(p, &req, &st.uri,
	    steps) < 0)
		goto done;
	u = st.uri;
	if (st.pinned)
		snprintf(u.version, sizeof(u.version), "%s", st.pin);
	else
		u.version[0] = '\0';
	xerr_clear(&se);
	if (provider_get_key(p, &req, &u, &ks, &se) < 0) {
		check_step(steps, "get key", 0, se.msg);
		goto done;
	}
	snprintf(detail, sizeof(detail), "%s enabled (%d bits)", ks.kid,
	    ks.bits);
	check_step(steps, "get key", 1, detail);
	snprintf(u.version, sizeof(u.version), "%s", ks.version);
	if (RAND_bytes(dek, sizeof(dek)) != 1) {
		check_step(steps, "wrap", 0, "no randomness");
		goto done;
	}
	if (provider_wrap(p, &req, &u, dek, sizeof(dek), wrapped,
	    sizeof(wrapped), &wlen, &se) < 0) {
		check_step(steps, "wrap", 0, se.msg);
		goto done;
	}
	snprintf(detail, sizeof(detail), "a test data key wrapped with "
	    "RSA-OAEP-256 into %zu bytes", wlen);
	check_step(steps, "wrap", 1, detail);
	if (provider_unwrap(p, &req, &u, wrapped, wlen, back, sizeof(back),
	    &n, &se) < 0) {
		check_step(steps, "unwrap", 0, se.msg);
		goto done;
	}
	if (n != sizeof(dek) || CRYPTO_memcmp(back, dek, n) != 0) {
		check_step(steps, "unwrap", 0, "the unwrapped key differs from "
		    "the one wrapped: the key service is broken");
		goto done;
	}
	check_step(steps, "unwrap", 1, "the test data key came back intact");
	ok = 1;
done:
	OPENSSL_cleanse(dek, sizeof(dek));
	OPENSSL_cleanse(back, sizeof(back));
	r = json_pack("{s:s, s:b, s:o}", "customer", customer, "ok", ok,
	    "steps", steps);
	if (r != NULL && (f = open_memstream(&text, &tlen)) != NULL) {
		json_array_foreach(steps, i, row)
			fprintf(f, "%-4s %-15s %s\n", json_is_true(
			    json_object_get(row, "ok")) ? "ok" : "FAIL",
			    json_string_value(json_object_get(row, "step")),
			    json_string_value(json_object_get(row, "detail")));
		fprintf(f, "customer %s: %s\n", customer, ok ? "all checks "
		    "passed" : "check FAILED (see the step above)");
		fclose(f);
		json_object_set_new(r, "text", json_string(text));
		free(text);
	}
	if (r == NULL)
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	*ret = r;
	return 0;
}

int
keys_admin(struct keys *k, const char *cmd, json_t *req, json_t **ret_reply,
    struct xerr *e)
{
	struct key_state ks;
	struct key_uri u;
	const char *s;
	json_t *j;
	int rc, bits;

	if (strcmp(cmd, "status") == 0) {
		if ((s = json_string_value(json_object_get(req, "customer"))) ==
		    NULL)
			return xerr_set(e, XTCMK_E_INVAL, "key status needs a "
			    "customer id");
		return key_status(k, s, ret_reply, e);
	}
	if (strcmp(cmd, "check") == 0) {
		if ((s = json_string_value(json_object_get(req, "id"))) ==
		    NULL)
			return xerr_set(e, XTCMK_E_INVAL, "customer check needs "
			    "a customer id");
		return customer_check(k, s, ret_reply, e);
	}
	if (strcmp(cmd, "list") == 0) {
		if ((rc = keystore_list(k->ks, NULL, &j, e)) < 0)
			return rc;
		*ret_reply = json_pack("{s:o}", "keys", j);
		return 0;
	}
	if ((rc = local_uri_arg(req, &u, e)) < 0)
		return rc;
	if (strcmp(cmd, "create") == 0) {
		bits = (int)json_integer_value(json_object_get(req, "bits"));
		if ((rc = keystore_create(k->ks, u.vault, u.name, bits, &ks,
		    e)) < 0)
			return rc;
		*ret_reply = text_reply(json_pack("{s:s, s:i}", "kid", ks.kid,
		    "bits", ks.bits), "created %s (RSA %d)\n", ks.kid, ks.bits);
		return 0;
	}
	if (strcmp(cmd, "rotate") == 0) {
		if ((rc = keystore_rotate(k->ks, u.vault, u.name, &ks, e)) < 0)
			return rc;
		*ret_reply = text_reply(json_pack("{s:s}", "kid", ks.kid),
		    "rotated: %s is the current version; customers on auto "
		    "versioning use it from their next refresh\n", ks.kid);
		return 0;
	}
	if (strcmp(cmd, "disable") == 0 || strcmp(cmd, "enable") == 0) {
		int en = cmd[0] == 'e';

		if ((rc = keystore_set_enabled(k->ks, u.vault, u.name,
		    u.version[0] ? u.version : NULL, en, e)) < 0)
			return rc;
		*ret_reply = text_reply(NULL, "%s %s%s%s\n", en ? "enabled" :
		    "disabled", u.version[0] ? "version " : "every version of ",
		    u.version[0] ? u.version : u.name, en ? "" :
		    " (agents fail closed within each customer's revocation "
		    "check interval)");
		return 0;
	}
	if (strcmp(cmd, "delete") == 0) {
		if ((rc = keystore_delete(k->ks, u.vault, u.name, e)) < 0)
			return rc;
		*ret_reply = text_reply(NULL, "deleted %s\n", u.name);
		return 0;
	}
	if (strcmp(cmd, "show") == 0)
		return keystore_show(k->ks, u.vault, u.name, ret_reply, e);
	return xerr_set(e, XTCMK_E_INVAL, "unknown key command '%s': use "
	    "create, rotate, disable, enable, delete, list, show or status",
	    cmd);
}
