'use strict';
/*
 * Key Vault and Managed HSM keys data plane (FACTS 1 and 2): 401
 * challenge, token checks, RBAC / access-policy authorization, keys CRUD
 * as the JS SDK calls it, and wrapkey/unwrapkey/encrypt/decrypt with real
 * RSA and AES key wrap.
 */
const crypto = require('crypto');
const { b64u, unb64u, guid, now, jwtVerify, sendJson, kvError, readBody } =
    require('./util');
const { ROLES, kidOf, vaultHost } = require('./state');

const REGION = 'westeurope';
/*
 * The api-versions whose wire shapes the emulator implements (FACTS 1.1:
 * the TypeSpec versions 7.5 and 7.6, 7.4 and its preview as recorded,
 * the date-based 2025-06-01 and 2025-07-01, which @azure/keyvault-keys
 * 4.10 sends).  Key Vault answers any other with 400 BadParameter.
 */
const API_VERSIONS = new Set(['7.4', '7.4-preview.1', '7.5', '7.6',
    '2025-06-01', '2025-07-01']);
const SUBSCRIPTION = '33333333-3333-3333-3333-333333333333';

/*
 * Operation table: RBAC data action (suffix after .../keys/), access
 * policy permission, counter name.
 */
const OPS = {
	get: { act: 'read', perm: 'get' },
	list: { act: 'read', perm: 'list' },
	versions: { act: 'read', perm: 'list' },
	create: { act: 'create', perm: 'create' },
	rotate: { act: 'rotate', perm: 'rotate' },
	update: { act: 'update', perm: 'update' },
	delete: { act: 'delete', perm: 'delete' },
	getdeleted: { act: 'read', perm: 'list' },
	purge: { act: 'purge', perm: 'purge' },
	recover: { act: 'recover', perm: 'recover' },
	wrapkey: { act: 'wrap', perm: 'wrapKey' },
	unwrapkey: { act: 'unwrap', perm: 'unwrapKey' },
	encrypt: { act: 'encrypt', perm: 'encrypt' },
	decrypt: { act: 'decrypt', perm: 'decrypt' },
};
/* The key_ops entry each crypto op needs. */
const KEY_OP = { wrapkey: 'wrapKey', unwrapkey: 'unwrapKey',
    encrypt: 'encrypt', decrypt: 'decrypt' };
/* Ops refused on a disabled key (FACTS 2: wrap/encrypt are allowed). */
const DISABLED_REFUSED = { get: 'get', unwrapkey: 'unwrapKey',
    decrypt: 'decrypt' };

function
resourceOf(v)
{
	return v.kind === 'mhsm' ? 'https://managedhsm.azure.net' :
	    'https://vault.azure.net';
}

function
stdHeaders(v)
{
	const h = { 'x-ms-request-id': guid() };
	if (v.kind === 'mhsm') {
		h['x-ms-server-latency'] = '1';
	} else {
		h['x-ms-keyvault-region'] = REGION;
		h['x-ms-keyvault-service-version'] = '1.9.1.0';
	}
	return h;
}

/* 401 with the exact WWW-Authenticate header of FACTS 2. */
function
challenge(st, res, v, message)
{
	const h = stdHeaders(v);
	if (v.kind === 'mhsm')
		h['WWW-Authenticate'] = `Bearer authorization="https://login.microsoftonline.com/${v.tenant}", resource="https://managedhsm.azure.net"`;
	else
		h['WWW-Authenticate'] = `Bearer authorization="https://login.windows.net/${v.tenant}", resource="https://vault.azure.net"`;
	st.count(message ? 'unauthorized_401' : 'challenge_401', v.name);
	/* The MHSM recording answers the bare challenge with no body. */
	if (v.kind === 'mhsm' && !message)
		return sendJson(res, 401, null, h);
	sendJson(res, 401, kvError('Unauthorized', message ||
	    'AKV10000: Request is missing a Bearer or PoP token.'), h);
}

function
fail(st, res, v, status, body, counter)
{
	st.count(counter || `error_${status}`, v.name);
	sendJson(res, status, body, stdHeaders(v));
}

/* Is the token's app allowed to do op on key (null for vault-wide ops)? */
function
allowed(v, tok, op, keyName)
{
	const o = OPS[op];
	for (const g of v.grants) {
		if (g.app_id !== tok.appid || g.tenant !== tok.tid)
			continue;
		if (v.auth === 'rbac') {
			if (g.scope !== 'vault' && (keyName === null ||
			    g.scope !== `key:${keyName}`))
				continue;
			const acts = ROLES[g.role] || [];
			if (acts.includes('*') || acts.includes(o.act))
				return true;
		} else {
			if (g.permissions.includes('all') ||
			    g.permissions.includes(o.perm.toLowerCase()))
				return true;
		}
	}
	return false;
}

function
forbidden(st, res, v, tok, op, keyName)
{
	const o = OPS[op];
	const caller = `appid=${tok.appid};oid=${tok.oid};iss=${tok.iss}`;
	const prov = v.kind === 'mhsm' ? 'managedHsm' : 'vaults';
	const suffix = ['read', 'delete'].includes(o.act) &&
	    v.kind !== 'mhsm' ? o.act : `${o.act}/action`;
	const action = `Microsoft.KeyVault/${prov}/keys/${suffix}`;
	const denied = v.deny_form === 'access-denied';
	if (v.kind === 'mhsm' && denied) {
		/* Managed HSM local RBAC: AccessDenied is error.code itself. */
		const scope = keyName ? `/keys/${keyName}` : '/';
		return fail(st, res, v, 403, kvError('AccessDenied',
		    `Not authorized to access ${action} on '${scope}'. Caller: ${caller}`),
		    'forbidden_403');
	}
	if (v.auth === 'rbac') {
		const resource = `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg/providers/microsoft.keyvault/${prov.toLowerCase()}/${v.name}` +
		    (keyName ? `/keys/${keyName}` : '');
		const msg = 'Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n' +
		    `Caller: ${caller}\r\nAction: '${action}'\r\nResource: '${resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: ${v.name};location=${REGION}\r\n`;
		return fail(st, res, v, 403, kvError('Forbidden', msg,
		    denied ? 'AccessDenied' : 'ForbiddenByRbac'), 'forbidden_403');
	}
	const msg = `The user, group or application '${caller}' does not have keys ${o.perm} permission on key vault '${v.name};location=${REGION}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`;
	fail(st, res, v, 403, kvError('Forbidden', msg,
	    denied ? 'AccessDenied' : 'ForbiddenByPolicy'), 'forbidden_403');
}

function
notFound(st, res, v, what)
{
	fail(st, res, v, 404, kvError('KeyNotFound', `A key with (name/id) ${what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`),
	    'not_found_404');
}

function
badParam(st, res, v, msg)
{
	fail(st, res, v, 400, kvError('BadParameter', msg), 'bad_request_400');
}

function
keyJson(v, host, key, ver)
{
	const k = { kid: kidOf(v, host, key.name, ver.version), kty: ver.kty,
	    key_ops: ver.key_ops.slice() };
	if (ver.privateKey) {
		const jwk = crypto.createPublicKey(ver.privateKey)
		    .export({ format: 'jwk' });
		k.n = jwk.n;
		k.e = jwk.e;
	}
	return k;
}

function
attrsJson(v, ver)
{
	const a = { enabled: ver.enabled, created: ver.created,
	    updated: ver.updated, recoveryLevel: 'Recoverable+Purgeable',
	    recoverableDays: 90 };
	if (ver.nbf !== undefined)
		a.nbf = ver.nbf;
	if (ver.exp !== undefined)
		a.exp = ver.exp;
	if (v.kind === 'mhsm')
		a.exportable = false;
	return a;
}

function
bundle(v, host, key, ver)
{
	const b = { key: keyJson(v, host, key, ver), attributes: attrsJson(v,
	    ver) };
	if (ver.tags)
		b.tags = ver.tags;
	return b;
}

function
deletedBundle(v, host, key)
{
	const cur = key.versions[key.versions.length - 1];
	return Object.assign({
		recoveryId: `https://${host.toLowerCase()}/deletedkeys/${key.name}`,
		deletedDate: key.deletedDate,
		scheduledPurgeDate: key.deletedDate + 90 * 86400,
	}, bundle(v, host, key, cur));
}

/* PKCS#1 v1.5 type 2 unpadding after a raw RSA decryption. */
function
pkcs1Unpad(em)
{
	if (em.length < 11 || em[0] !== 0 || em[1] !== 2)
		return null;
	let i = 2;
	while (i < em.length && em[i] !== 0)
		i++;
	if (i >= em.length || i < 10)
		return null;
	return em.subarray(i + 1);
}

const RSA_ALGS = {
	'RSA-OAEP': { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
	    oaepHash: 'sha1' },
	'RSA-OAEP-256': { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
	    oaepHash: 'sha256' },
	'RSA1_5': { padding: crypto.constants.RSA_PKCS1_PADDING },
};
const KW_ALGS = { A128KW: 128, A192KW: 192, A256KW: 256 };
const KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

/*
 * Runs a crypto op; returns {value} or {err}.  RSA1_5 decryption is done
 * as a raw RSA operation plus unpadding because Node refuses PKCS#1 v1.5
 * private decryption by default (CVE-2023-46809).
 */
function
cryptoOp(ver, op, alg, input)
{
	const enc = op === 'wrapkey' || op === 'encrypt';
	if (ver.privateKey) {
		const a = RSA_ALGS[alg];
		if (!a)
			return { err: `Algorithm ${alg} is not supported for key type ${ver.kty}.` };
		try {
			if (enc) {
				return { value: crypto.publicEncrypt(Object.assign(
				    { key: crypto.createPublicKey(ver.privateKey) },
				    a), input) };
			}
			if (alg === 'RSA1_5') {
				const em = crypto.privateDecrypt({ key: ver.privateKey,
				    padding: crypto.constants.RSA_NO_PADDING }, input);
				const m = pkcs1Unpad(em);
				return m ? { value: m } :
				    { err: 'The value could not be decrypted with this key and algorithm.' };
			}
			return { value: crypto.privateDecrypt(Object.assign(
			    { key: ver.privateKey }, a), input) };
		} catch (e) {
			return { err: enc ? 'The value is too long for this key and algorithm.' :
			    'The value could not be decrypted with this key and algorithm.' };
		}
	}
	const bits = KW_ALGS[alg];
	if (!bits || (op !== 'wrapkey' && op !== 'unwrapkey'))
		return { err: `Algorithm ${alg} is not supported for key type ${ver.kty} and operation ${op}.` };
	if (bits !== ver.secret.length * 8)
		return { err: `Algorithm ${alg} needs a ${bits}-bit key; this key has ${ver.secret.length * 8} bits.` };
	if (input.length < 16 || input.length % 8 !== 0)
		return { err: 'AES key wrap input must be a multiple of 8 bytes, at least 16.' };
	try {
		const c = (enc ? crypto.createCipheriv : crypto.createDecipheriv)(
		    `id-aes${bits}-wrap`, ver.secret, KW_IV);
		return { value: Buffer.concat([c.update(input), c.final()]) };
	} catch (e) {
		return { err: 'The value could not be unwrapped with this key (integrity check failed).' };
	}
}

/* Sliding 10 s window of requests for vaults with limit_per_10s. */
function
overLimit(v)
{
	if (!v.limit_per_10s)
		return false;
	const t = Date.now();
	while (v.window.length > 0 && t - v.window[0] >= 10000)
		v.window.shift();
	if (v.window.length >= v.limit_per_10s)
		return true;
	v.window.push(t);
	return false;
}

function
throttled(st, res, v, retryAfter)
{
	const h = stdHeaders(v);
	if (retryAfter !== undefined)
		h['Retry-After'] = String(retryAfter);
	st.count('throttled_429', v.name);
	sendJson(res, 429, kvError('Throttled',
	    'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached'), h);
}

/* Parses the path into {op, name, version, sub}; null if unknown. */
function
route(method, path)
{
	const s = path.split('/');
	if (s.length > 6 || s[0] !== '')
		return null;
	if (s[1] === 'keys') {
		if (s.length === 2 || (s.length === 3 && s[2] === ''))
			return method === 'GET' ? { op: 'list' } : null;
		const name = s[2];
		if (s.length === 3 || (s.length === 4 && s[3] === '')) {
			if (method === 'GET')
				return { op: 'get', name, version: '' };
			if (method === 'PATCH')
				return { op: 'update', name, version: '' };
			if (method === 'DELETE')
				return { op: 'delete', name };
			return null;
		}
		if (s.length === 4) {
			if (method === 'POST' && s[3] === 'create')
				return { op: 'create', name };
			if (method === 'POST' && s[3] === 'rotate')
				return { op: 'rotate', name };
			if (method === 'GET' && s[3] === 'versions')
				return { op: 'versions', name };
			if (method === 'GET')
				return { op: 'get', name, version: s[3] };
			if (method === 'PATCH')
				return { op: 'update', name, version: s[3] };
			return null;
		}
		if (s.length === 5 && method === 'POST' && KEY_OP[s[4]])
			return { op: s[4], name, version: s[3] };
		return null;
	}
	if (s[1] === 'deletedkeys' && s.length >= 3) {
		if (s.length === 3 && method === 'GET')
			return { op: 'getdeleted', name: s[2] };
		if (s.length === 3 && method === 'DELETE')
			return { op: 'purge', name: s[2] };
		if (s.length === 4 && method === 'POST' && s[3] === 'recover')
			return { op: 'recover', name: s[2] };
	}
	return null;
}

/* Entry point for requests whose host is a vault or MHSM. */
function
handle(st, req, res, url, hostname, fault)
{
	const m = hostname.match(/^([a-z0-9-]+)\.(vault|managedhsm)\.azure\.net$/);
	const v = m ? st.vaults.get(m[1]) : null;
	if (!v || (m[2] === 'vault') !== (v.kind === 'vault')) {
		st.count('unknown_vault');
		return sendJson(res, 404, kvError('VaultNotFound',
		    `emulator: no ${m && m[2] === 'managedhsm' ? 'Managed HSM' : 'vault'} is configured for host ${hostname} (real Azure would fail DNS resolution)`));
	}
	if (overLimit(v))
		return throttled(st, res, v, undefined);
	const host = req.headers.host;
	const auth = req.headers.authorization;
	if (typeof auth !== 'string' || !/^Bearer\s+\S+$/i.test(auth))
		return challenge(st, res, v, null);
	const vt = jwtVerify(st.signer, auth.replace(/^Bearer\s+/i, ''),
	    { forceExpired: fault && fault.kind === 'expire-tokens' });
	if (!vt.ok) {
		const msgs = {
			malformed: 'AKV10001: The token could not be parsed.',
			signature: 'AKV10031: The token signature is not valid.',
			expired: 'AKV10013: The token is expired.',
			notyet: 'AKV10014: The token is not yet valid.',
		};
		return challenge(st, res, v, msgs[vt.reason]);
	}
	const tok = vt.payload;
	const want = resourceOf(v);
	if (tok.aud !== want && tok.aud !== want + '/')
		return challenge(st, res, v, `AKV10022: Invalid audience. Expected ${want}, found: ${tok.aud}.`);
	if (tok.tid !== v.tenant)
		return challenge(st, res, v, `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${v.tenant}/, found ${tok.iss}.`);
	const apiv = url.searchParams.get('api-version');
	if (!apiv || !API_VERSIONS.has(apiv))
		return badParam(st, res, v, apiv ? `The specified version (${apiv}) is not recognized. Consider using the latest supported version.` :
		    'Missing api-version');
	const r = route(req.method, url.pathname);
	if (!r)
		return fail(st, res, v, 404, kvError('NotFound',
		    `emulator: no operation ${req.method} ${url.pathname}`));
	if (!allowed(v, tok, r.op, r.name === undefined ? null : r.name))
		return forbidden(st, res, v, tok, r.op, r.name || null);
	if (['create', 'update', 'wrapkey', 'unwrapkey', 'encrypt',
	    'decrypt', 'recover', 'rotate'].includes(r.op)) {
		readBody(req, (err, buf) => {
			if (err)
				return badParam(st, res, v, 'The request body is too large or unreadable.');
			let body = {};
			if (buf.length > 0) {
				try {
					body = JSON.parse(buf.toString('utf8'));
				} catch (e) {
					return badParam(st, res, v, 'The request body is not valid JSON.');
				}
			}
			if (typeof body !== 'object' || body === null)
				return badParam(st, res, v, 'The request body must be a JSON object.');
			dispatch(st, req, res, v, host, r, body);
		});
		return;
	}
	dispatch(st, req, res, v, host, r, null);
}

function
findVersion(key, version)
{
	if (!version)
		return key.versions[key.versions.length - 1];
	return key.versions.find((x) => x.version === version) || null;
}

function
dispatch(st, req, res, v, host, r, body)
{
	const ok = (obj, status) => {
		st.count(counterName(r.op), v.name);
		sendJson(res, status || 200, obj, stdHeaders(v));
	};
	if (r.op === 'list') {
		return ok({ value: [...v.keys.values()].map((k) => {
			const cur = k.versions[k.versions.length - 1];
			return { kid: kidOf(v, host, k.name, null),
			    attributes: attrsJson(v, cur) };
		}), nextLink: null });
	}
	if (r.op === 'create')
		return createOp(st, res, v, host, r, body, ok);
	if (r.op === 'getdeleted' || r.op === 'purge' || r.op === 'recover') {
		const dk = v.deleted.get(r.name);
		if (!dk)
			return fail(st, res, v, 404, kvError('KeyNotFound',
			    `Deleted Key not found: ${r.name}`), 'not_found_404');
		if (r.op === 'getdeleted')
			return ok(deletedBundle(v, host, dk));
		v.deleted.delete(r.name);
		if (r.op === 'purge') {
			st.save();
			return ok(null, 204);
		}
		delete dk.deletedDate;
		v.keys.set(dk.name, dk);
		st.save();
		return ok(bundle(v, host, dk, dk.versions[dk.versions.length - 1]));
	}
	const key = v.keys.get(r.name);
	if (!key)
		return notFound(st, res, v, r.name);
	if (r.op === 'delete') {
		st.deleteKey(v, key);
		st.save();
		return ok(deletedBundle(v, host, key));
	}
	if (r.op === 'versions') {
		return ok({ value: key.versions.map((x) => ({
			kid: kidOf(v, host, key.name, x.version),
			attributes: attrsJson(v, x) })), nextLink: null });
	}
	if (r.op === 'rotate') {
		const cur = key.versions[key.versions.length - 1];
		let ver;
		try {
			ver = st.createKey(v, key.name, cur.kty, cur.size,
			    cur.key_ops.slice());
		} catch (e) {
			return badParam(st, res, v, e.message);
		}
		st.save();
		return ok(bundle(v, host, key, ver));
	}
	const ver = findVersion(key, r.version);
	if (!ver)
		return notFound(st, res, v, `${r.name}/${r.version}`);
	if (r.op === 'update')
		return updateOp(st, res, v, host, key, ver, body, ok);
	if (DISABLED_REFUSED[r.op] && !ver.enabled)
		return fail(st, res, v, 403, kvError('Forbidden',
		    `Operation ${DISABLED_REFUSED[r.op]} is not allowed on a disabled key.`,
		    'KeyDisabled'), 'key_disabled_403');
	if (r.op === 'get')
		return ok(bundle(v, host, key, ver));
	/* crypto ops */
	if (!ver.key_ops.includes(KEY_OP[r.op]))
		return fail(st, res, v, 403, kvError('Forbidden',
		    `Operation ${KEY_OP[r.op]} is not permitted on this key.`,
		    'KeyOperationForbidden'), 'key_op_forbidden_403');
	if (typeof body.alg !== 'string')
		return badParam(st, res, v, 'Property alg is required.');
	const input = unb64u(body.value);
	if (input === null || input.length === 0)
		return badParam(st, res, v, 'Property value must be non-empty base64url.');
	const out = cryptoOp(ver, r.op, body.alg, input);
	if (out.err)
		return badParam(st, res, v, out.err);
	ok({ kid: kidOf(v, host, key.name, ver.version), value: b64u(out.value) });
}

function
counterName(op)
{
	const map = { get: 'get_key', list: 'list_keys', versions:
	    'list_versions', create: 'create_key', rotate: 'rotate_key',
	    update: 'update_key', delete: 'delete_key', getdeleted:
	    'get_deleted_key', purge: 'purge_key', recover: 'recover_key' };
	return map[op] || op;
}

function
createOp(st, res, v, host, r, body, ok)
{
	if (typeof body.kty !== 'string')
		return badParam(st, res, v, 'Property kty is required.');
	const size = body.key_size;
	if (size !== undefined && !Number.isInteger(size))
		return badParam(st, res, v, 'Property key_size must be an integer.');
	if (body.key_ops !== undefined && (!Array.isArray(body.key_ops) ||
	    body.key_ops.some((x) => typeof x !== 'string')))
		return badParam(st, res, v, 'Property key_ops must be an array of strings.');
	const attrs = body.attributes || {};
	let ver;
	try {
		ver = st.createKey(v, r.name, body.kty, size, body.key_ops,
		    attrs.enabled);
	} catch (e) {
		return badParam(st, res, v, e.message);
	}
	if (Number.isInteger(attrs.nbf))
		ver.nbf = attrs.nbf;
	if (Number.isInteger(attrs.exp))
		ver.exp = attrs.exp;
	if (body.tags && typeof body.tags === 'object')
		ver.tags = body.tags;
	st.save();
	ok(bundle(v, host, v.keys.get(r.name), ver));
}

function
updateOp(st, res, v, host, key, ver, body, ok)
{
	const a = body.attributes;
	if (a !== undefined && (typeof a !== 'object' || a === null))
		return badParam(st, res, v, 'Property attributes must be an object.');
	if (a && a.enabled !== undefined) {
		if (typeof a.enabled !== 'boolean')
			return badParam(st, res, v, 'Property attributes.enabled must be a boolean.');
		ver.enabled = a.enabled;
	}
	if (a && Number.isInteger(a.nbf))
		ver.nbf = a.nbf;
	if (a && Number.isInteger(a.exp))
		ver.exp = a.exp;
	if (Array.isArray(body.key_ops))
		ver.key_ops = body.key_ops.filter((x) => typeof x === 'string');
	if (body.tags && typeof body.tags === 'object')
		ver.tags = body.tags;
	ver.updated = now();
	st.save();
	ok(bundle(v, host, key, ver));
}

module.exports = { handle, throttled, stdHeaders, resourceOf, vaultHost };
