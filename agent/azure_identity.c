/*
 * azure_identity.c - this host's identity token, the client assertion of
 * the token exchange: from IMDS (VMs, VMSS, AKS nodes), from the AKS
 * workload-identity token file, or from the App Service / Container Apps
 * identity endpoint, for [azure] token_audience (api://AzureADTokenExchange).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "azure.h"

const char *
az_identity_name(enum az_identity_kind k)
{
	switch (k) {
	case AZ_ID_IMDS:
		return "imds";
	case AZ_ID_WORKLOAD:
		return "workload-identity";
	case AZ_ID_APPSERVICE:
		return "app-service";
	}
	return "?";
}

/* Append "&name=urlencoded(value)" when value is set. */
static int
add_param(char *url, size_t len, const char *name, const char *value)
{
	char enc[1200];
	size_t n = strlen(url);

	if (value == NULL || *value == '\0')
		return 0;
	if (az_urlencode(value, enc, sizeof(enc)) < 0 ||
	    (size_t)snprintf(url + n, len - n, "%s%s=%s",
	    strchr(url, '?') ? "&" : "?", name, enc) >= len - n)
		return -1;
	return 0;
}

/* The resource for the audience: a scope's "/.default" goes. */
static void
resource_of(const char *aud, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", aud);
	n = strlen(buf);
	if (n > 9 && strcmp(buf + n - 9, "/.default") == 0)
		buf[n - 9] = '\0';
}

static int
endpoint_token(const struct az_conf *c, struct az_http *h, int imds,
    struct az_token *ret, struct xerr *e)
{
	struct az_http_req req;
	struct az_http_resp r;
	char url[4096], res[600], hdr[600];
	const char *hdrs[3] = { NULL, "Accept: application/json", NULL };
	const char *what = imds ? "IMDS" : "the App Service identity endpoint";
	json_t *j;
	const char *msg;
	int rc;

	resource_of(c->audience, res, sizeof(res));
	if (imds) {
		snprintf(url, sizeof(url), "%s?api-version=2018-02-01",
		    c->imds_endpoint);
		hdrs[0] = "Metadata: true";
	} else {
		if (c->identity_endpoint == NULL || c->identity_header == NULL)
			return xerr_set(e, XTCMK_E_PROVIDER, "[azure] identity "
			    "= app-service needs identity_endpoint and "
			    "identity_header (or $IDENTITY_ENDPOINT and "
			    "$IDENTITY_HEADER from the platform)");
		snprintf(url, sizeof(url), "%s?api-version=2019-08-01",
		    c->identity_endpoint);
		snprintf(hdr, sizeof(hdr), "X-IDENTITY-HEADER: %s",
		    c->identity_header);
		hdrs[0] = hdr;
	}
	if (add_param(url, sizeof(url), "resource", res) < 0 ||
	    add_param(url, sizeof(url), "client_id", c->client_id) < 0 ||
	    add_param(url, sizeof(url), imds ? "object_id" : "principal_id",
	    c->object_id) < 0 ||
	    add_param(url, sizeof(url), imds ? "msi_res_id" : "mi_res_id",
	    c->resource_id) < 0)
		return xerr_set(e, XTCMK_E_INVAL, "identity endpoint URL too "
		    "long");
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.headers = hdrs;
	req.retry_404 = imds;
	rc = az_http_do(h, &req, &r, e);
	OPENSSL_cleanse(hdr, sizeof(hdr));
	if (rc < 0)
		return xerr_set(e, XTCMK_E_PROVIDER, "%s did not answer: %.300s",
		    what, e != NULL ? e->msg : "");
	if (r.status == 200) {
		rc = az_token_parse(r.body, time(NULL), ret, e);
		az_http_resp_clear(&r);
		return rc;
	}
	j = json_loads(r.body, 0, NULL);
	msg = json_string_value(json_object_get(j, "error_description"));
	if (msg == NULL)
		msg = json_string_value(json_object_get(j, "message"));
	if (msg == NULL)
		msg = json_string_value(json_object_get(j, "error"));
	if (r.status == 400 && imds)
		rc = xerr_set(e, XTCMK_E_PROVIDER, "IMDS has no identity %s%s "
		    "for this host (%.200s): assign the user-assigned managed "
		    "identity to this VM, or fix [azure] identity_client_id / "
		    "identity_object_id / identity_resource_id",
		    c->client_id ? c->client_id : c->object_id ? c->object_id :
		    c->resource_id ? c->resource_id : "(default)", "",
		    msg ? msg : "no detail");
	else if ((r.status == 401 || r.status == 403) && !imds)
		rc = xerr_set(e, XTCMK_E_PROVIDER, "the App Service identity "
		    "endpoint refused the identity header (HTTP %ld): "
		    "$IDENTITY_HEADER rotates with the platform; restart "
		    "xtcmkd with the current one", r.status);
	else
		rc = xerr_set(e, XTCMK_E_PROVIDER, "%s answered HTTP %ld: "
		    "%.200s", what, r.status, msg ? msg : "no detail");
	json_decref(j);
	az_http_resp_clear(&r);
	return rc;
}

/*
 * The projected service-account token: the file's contents are the
 * assertion.  Kubelet rotates it; we re-read it every AZ_WI_REREAD_S (as
 * the Azure SDKs do) or sooner if its own exp says so.
 */
static int
file_token(const struct az_conf *c, struct az_token *ret, struct xerr *e)
{
	char *buf;
	struct stat sb;
	ssize_t n;
	size_t len;
	json_t *p;
	long long now = time(NULL), exp = now + AZ_WI_REREAD_S + 60;
	int fd, rc = 0;

	if (c->token_file == NULL)
		return xerr_set(e, XTCMK_E_PROVIDER, "[azure] identity = "
		    "workload-identity needs federated_token_file (or "
		    "$AZURE_FEDERATED_TOKEN_FILE from the workload identity "
		    "webhook)");
	if ((fd = open(c->token_file, O_RDONLY | O_CLOEXEC)) == -1)
		return xerr_set(e, XTCMK_E_PROVIDER, "cannot read the federated "
		    "token file %s: %s", c->token_file, strerror(errno));
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size <= 0 || sb.st_size >= AZ_TOKEN_FILE_MAX) {
		close(fd);
		return xerr_set(e, XTCMK_E_PROVIDER, "federated token file %s "
		    "is not a regular file of 1 to %d bytes", c->token_file,
		    AZ_TOKEN_FILE_MAX - 1);
	}
	if ((buf = calloc(1, AZ_TOKEN_FILE_MAX)) == NULL) {
		close(fd);
		return xerr_set(e, XTCMK_E_NOMEM, "out of memory");
	}
	len = 0;
	while (len < AZ_TOKEN_FILE_MAX - 1 && (n = read(fd, buf + len,
	    AZ_TOKEN_FILE_MAX - 1 - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			rc = xerr_set(e, XTCMK_E_PROVIDER, "reading %s: %s",
			    c->token_file, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
	    buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (len == 0 || len >= sizeof(ret->access) ||
	    (p = az_jwt_payload(buf)) == NULL) {
		rc = xerr_set(e, XTCMK_E_PROVIDER, "federated token file %s "
		    "does not hold a JWT", c->token_file);
		goto out;
	}
	if (json_is_integer(json_object_get(p, "exp"))) {
		long long je = json_integer_value(json_object_get(p, "exp"));

		if (je <= now + AZ_TOKEN_SKEW_S) {
			json_decref(p);
			rc = xerr_set(e, XTCMK_E_PROVIDER, "the token in %s has "
			    "expired: is the workload identity webhook "
			    "projecting it?", c->token_file);
			goto out;
		}
		/* Re-read at whichever comes first. */
		if (je < exp)
			exp = je;
	}
	json_decref(p);
	memcpy(ret->access, buf, len + 1);
	ret->obtained = now;
	ret->expires_on = exp;
out:
	OPENSSL_cleanse(buf, AZ_TOKEN_FILE_MAX);
	free(buf);
	close(fd);
	return rc;
}

int
az_identity_token(const struct az_conf *c, struct az_http *h,
    struct az_token *ret, struct xerr *e)
{
	switch (c->identity) {
	case AZ_ID_IMDS:
		return endpoint_token(c, h, 1, ret, e);
	case AZ_ID_APPSERVICE:
		return endpoint_token(c, h, 0, ret, e);
	case AZ_ID_WORKLOAD:
		return file_token(c, ret, e);
	}
	return xerr_set(e, XTCMK_E_INVAL, "unknown [azure] identity");
}
