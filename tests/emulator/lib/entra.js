'use strict';
/*
 * Token services: IMDS (plain HTTP), the App Service identity endpoint
 * (plain HTTP) and the Entra v2.0 token endpoint with client-assertion
 * (federated identity credential) validation.  FACTS sections 4.1, 4.2
 * and 4.4 give the shapes.
 */
const { guid, now, jwtSign, jwtVerify, sendJson, readBody } =
    require('./util');

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const SCOPES = {
	'https://vault.azure.net/.default': 'https://vault.azure.net',
	'https://managedhsm.azure.net/.default': 'https://managedhsm.azure.net',
};

/* Token lifetimes in seconds; POST /lifetimes changes them. */
const lifetimes = { imds_s: 3599, appservice_s: 3599, entra_s: 3599 };

function
issuerV2(tenant)
{
	return `https://login.microsoftonline.com/${tenant}/v2.0`;
}

/* A managed-identity token for identity id and audience resource. */
function
miToken(st, id, resource, life)
{
	const t = now();
	const payload = {
		aud: resource, iss: issuerV2(id.tenant), iat: t, nbf: t,
		exp: t + life + 1, sub: id.principal_id, oid: id.principal_id,
		tid: id.tenant, appid: id.client_id, azp: id.client_id,
		idtyp: 'app', xms_mirid: id.resource_id, ver: '2.0',
		uti: guid(),
	};
	return { token: jwtSign(st.signer, payload), t, exp: t + life };
}

/* Finds the identity named by one selector; null if none/unknown. */
function
selectIdentity(st, sel)
{
	const given = Object.keys(sel).filter((k) => sel[k]);
	if (given.length > 1)
		return { err: `only one of ${given.join(', ')} may be given` };
	const ids = [...st.identities.values()];
	if (given.length === 0) {
		if (ids.length === 1)
			return { id: ids[0] };
		return { err: ids.length === 0 ? 'Identity not found' :
		    'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request' };
	}
	const k = given[0], want = sel[k];
	const id = ids.find((i) => (k === 'client_id' && i.client_id === want) ||
	    (k === 'object_id' && i.principal_id === want) ||
	    (k === 'res_id' && i.resource_id.toLowerCase() === want.toLowerCase()));
	return id ? { id } : { err: 'Identity not found' };
}

const IMDS_API_VERSIONS = new Set(['2018-02-01']);

/* GET /metadata/identity/oauth2/token (IMDS, FACTS 4.1). */
function
imds(st, req, res, url)
{
	const bad = (d) => {
		st.count('imds_error');
		sendJson(res, 400, { error: 'invalid_request',
		    error_description: d });
	};
	if (req.method !== 'GET')
		return sendJson(res, 405, { error: 'invalid_request',
		    error_description: 'The request method is not supported' });
	if (req.headers.metadata !== 'true')
		return bad('Required metadata header not specified');
	const q = url.searchParams;
	if (!q.get('api-version'))
		return bad("Required query variable 'api-version' is missing");
	/* FACTS 4.1: the identity endpoint's version (IMDS validates it). */
	if (!IMDS_API_VERSIONS.has(q.get('api-version')))
		return bad(`Invalid or unsupported api-version '${q.get('api-version')}'`);
	if (!q.get('resource'))
		return bad("Required query variable 'resource' is missing");
	const r = selectIdentity(st, { client_id: q.get('client_id'),
	    object_id: q.get('object_id'),
	    res_id: q.get('msi_res_id') || q.get('mi_res_id') });
	if (r.err)
		return bad(r.err);
	const resource = q.get('resource');
	const tok = miToken(st, r.id, resource, lifetimes.imds_s);
	st.count('imds_token');
	sendJson(res, 200, {
		access_token: tok.token, client_id: r.id.client_id,
		refresh_token: '', expires_in: String(lifetimes.imds_s),
		expires_on: String(tok.exp), not_before: String(tok.t),
		resource, token_type: 'Bearer',
	});
}

/* GET $IDENTITY_ENDPOINT (App Service 2019-08-01, FACTS 4.2). */
function
appService(st, req, res, url)
{
	const q = url.searchParams;
	const bad = (status, d) => {
		st.count('appservice_error');
		sendJson(res, status, { error: 'invalid_request',
		    error_description: d });
	};
	if (req.method !== 'GET')
		return bad(405, 'The request method is not supported');
	if (req.headers['x-identity-header'] !== st.identityHeader)
		return bad(401, 'X-IDENTITY-HEADER is missing or does not match IDENTITY_HEADER');
	if (q.get('api-version') !== '2019-08-01')
		return bad(400, "api-version must be '2019-08-01'");
	if (!q.get('resource'))
		return bad(400, "Required query variable 'resource' is missing");
	const sel = { client_id: q.get('client_id'),
	    object_id: q.get('principal_id') || q.get('object_id'),
	    res_id: q.get('mi_res_id') };
	if (!sel.client_id && !sel.object_id && !sel.res_id)
		return bad(400, 'no system-assigned identity in the emulator: pass client_id, principal_id, object_id or mi_res_id');
	const r = selectIdentity(st, sel);
	if (r.err)
		return bad(400, r.err);
	const resource = q.get('resource');
	const tok = miToken(st, r.id, resource, lifetimes.appservice_s);
	st.count('appservice_token');
	sendJson(res, 200, {
		access_token: tok.token, expires_on: String(tok.exp),
		not_before: String(tok.t), resource, token_type: 'Bearer',
		client_id: r.id.client_id,
	});
}

function
aadTime(t)
{
	return new Date(t * 1000).toISOString().replace('T', ' ')
	    .replace(/\.\d+Z$/, 'Z');
}

/* Entra error body, FACTS 4.4 shape; invalid_client answers 401. */
function
aadError(st, req, res, error, code, msg)
{
	const trace = guid();
	const corr = typeof req.headers['client-request-id'] === 'string' &&
	    /^[0-9a-f-]{36}$/i.test(req.headers['client-request-id']) ?
	    req.headers['client-request-id'] : guid();
	const ts = aadTime(now());
	st.count('entra_error');
	st.count(`entra_error_${code}`);
	sendJson(res, error === 'invalid_client' ? 401 : 400, {
		error,
		error_description: `AADSTS${code}: ${msg}\r\nTrace ID: ${trace}\r\nCorrelation ID: ${corr}\r\nTimestamp: ${ts}`,
		error_codes: [code], timestamp: ts, trace_id: trace,
		correlation_id: corr,
	});
}

/* POST /{tenant}/oauth2/v2.0/token with a client assertion. */
function
token(st, req, res, tenant, fault)
{
	if (req.method !== 'POST')
		return aadError(st, req, res, 'invalid_request', 900561,
		    'The endpoint only accepts POST requests. Received a ' +
		    req.method + ' request.');
	readBody(req, (err, buf) => {
		if (err)
			return aadError(st, req, res, 'invalid_request', 900144,
			    'The request body is too large or unreadable.');
		const ct = String(req.headers['content-type'] || '');
		if (!ct.toLowerCase().startsWith('application/x-www-form-urlencoded'))
			return aadError(st, req, res, 'invalid_request', 900144,
			    "The request body must contain the following parameter: 'grant_type'.");
		const f = new URLSearchParams(buf.toString('utf8'));
		tokenForm(st, req, res, tenant, f, fault);
	});
}

function
tokenForm(st, req, res, tenant, f, fault)
{
	const E = (e, c, m) => aadError(st, req, res, e, c, m);
	if (!st.tenants.has(tenant))
		return E('invalid_tenant', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`);
	for (const p of ['grant_type', 'client_id', 'scope']) {
		if (!f.get(p))
			return E('invalid_request', 900144, `The request body must contain the following parameter: '${p}'.`);
	}
	if (f.get('grant_type') !== 'client_credentials')
		return E('unsupported_grant_type', 70003, 'The app requested an unsupported grant type \'' + f.get('grant_type') + '\'.');
	const appId = f.get('client_id');
	const sp = st.sp(tenant, appId);
	if (!st.apps.has(appId) || sp === null)
		return E('unauthorized_client', 700016, `Application with identifier '${appId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`);
	if (f.get('client_secret'))
		return E('invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app \'' + appId + '\'.');
	const assertion = f.get('client_assertion');
	if (!assertion)
		return E('invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
	if (f.get('client_assertion_type') !== ASSERTION_TYPE)
		return E('invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion_type'.");
	const v = jwtVerify(st.signer, assertion,
	    { forceExpired: fault && fault.kind === 'expire-tokens' });
	if (v.reason === 'malformed')
		return E('invalid_client', 50027, 'JWT token is invalid or malformed.');
	if (v.reason === 'signature')
		return E('invalid_client', 700027, 'Client assertion failed signature validation.');
	if (v.reason === 'expired' || v.reason === 'notyet')
		return E('invalid_client', 700024, `Client assertion is not within its valid time range. Current time: ${new Date(now() * 1000).toISOString()}, assertion valid from ${new Date((v.payload.nbf || 0) * 1000).toISOString()}, expiry time of assertion ${new Date((v.payload.exp || 0) * 1000).toISOString()}.`);
	const a = v.payload;
	const auds = Array.isArray(a.aud) ? a.aud : [a.aud];
	const app = st.apps.get(appId);
	const fic = app.fics.find((x) => x.issuer === a.iss &&
	    x.subject === a.sub && auds.includes(x.audience));
	if (!fic)
		return E('invalid_request', 70021, `No matching federated identity record found for presented assertion. Assertion Issuer: '${a.iss}'. Assertion Subject: '${a.sub}'. Assertion Audience: '${auds.join(',')}'.`);
	const scope = f.get('scope');
	const aud = SCOPES[scope];
	if (!aud)
		return E('invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`);
	const t = now(), life = lifetimes.entra_s;
	const payload = {
		aud, iss: `https://sts.windows.net/${tenant}/`, iat: t, nbf: t,
		exp: t + life + 1, appid: appId, appidacr: '2', idp:
		    `https://sts.windows.net/${tenant}/`, idtyp: 'app',
		oid: sp.object_id, sub: sp.object_id, tid: tenant, ver: '1.0',
		uti: guid(),
	};
	st.count('entra_token');
	sendJson(res, 200, {
		token_type: 'Bearer', expires_in: life, ext_expires_in: life,
		access_token: jwtSign(st.signer, payload),
	});
}

/* OpenID metadata and JWKS so MSAL-style clients can resolve the authority. */
function
metadata(st, req, res, url)
{
	const host = req.headers.host;
	let m = url.pathname.match(/^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/);
	if (m) {
		const b = `https://${host}/${m[1]}`;
		return sendJson(res, 200, {
			token_endpoint: `${b}/oauth2/v2.0/token`,
			authorization_endpoint: `${b}/oauth2/v2.0/authorize`,
			end_session_endpoint: `${b}/oauth2/v2.0/logout`,
			jwks_uri: `https://${host}/${m[1]}/discovery/v2.0/keys`,
			issuer: `https://login.microsoftonline.com/${m[1]}/v2.0`,
			token_endpoint_auth_methods_supported: ['client_secret_post',
			    'private_key_jwt', 'client_secret_basic'],
			response_types_supported: ['code', 'id_token',
			    'code id_token', 'id_token token'],
			subject_types_supported: ['pairwise'],
			id_token_signing_alg_values_supported: ['RS256'],
		});
	}
	if (url.pathname === '/common/discovery/instance') {
		return sendJson(res, 200, {
			tenant_discovery_endpoint: `https://${host}/common/v2.0/.well-known/openid-configuration`,
			'api-version': '1.1',
			metadata: [],
		});
	}
	m = url.pathname.match(/^\/([^/]+)\/discovery(\/v2\.0)?\/keys$/);
	if (m) {
		const jwk = st.signer.publicKey.export({ format: 'jwk' });
		return sendJson(res, 200, { keys: [{ kty: 'RSA', use: 'sig',
		    kid: st.signer.kid, n: jwk.n, e: jwk.e }] });
	}
	return false;
}

module.exports = { imds, appService, token, metadata, lifetimes,
    issuerV2, SCOPES };
