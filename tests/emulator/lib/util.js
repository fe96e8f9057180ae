'use strict';
/*
 * Small helpers shared by the emulator modules: base64url, JWT (RS256),
 * ids, clock, error bodies.  Node built-ins only.
 */
const crypto = require('crypto');

const BODY_MAX = 1024 * 1024;		/* request body limit (bytes) */
const JWT_MAX = 16 * 1024;		/* longest token we parse */

function
b64u(buf)
{
	return Buffer.from(buf).toString('base64url');
}

function
unb64u(s)
{
	if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s))
		return null;
	return Buffer.from(s, 'base64url');
}

function
guid()
{
	return crypto.randomUUID();
}

function
hex32()
{
	return crypto.randomBytes(16).toString('hex');
}

/* The emulator clock: real time plus an offset set by POST /clock. */
const clock = { offset_s: 0 };

function
now()
{
	return Math.floor(Date.now() / 1000) + clock.offset_s;
}

/* RS256 JWT signed with the emulator's signing key. */
function
jwtSign(signer, payload)
{
	const header = { alg: 'RS256', typ: 'JWT', kid: signer.kid };
	const input = b64u(JSON.stringify(header)) + '.' +
	    b64u(JSON.stringify(payload));
	const sig = crypto.sign('sha256', Buffer.from(input), signer.privateKey);
	return input + '.' + b64u(sig);
}

/*
 * Parses and verifies a JWT issued by the emulator.  Returns
 * {ok, header, payload, reason}; reason is one of "malformed",
 * "signature", "expired", "notyet" when ok is false.  Time checks use
 * the emulator clock and no skew.
 */
function
jwtVerify(signer, token, opts)
{
	if (typeof token !== 'string' || token.length > JWT_MAX)
		return { ok: false, reason: 'malformed' };
	const parts = token.split('.');
	if (parts.length !== 3)
		return { ok: false, reason: 'malformed' };
	let header, payload;
	try {
		header = JSON.parse(unb64u(parts[0]).toString('utf8'));
		payload = JSON.parse(unb64u(parts[1]).toString('utf8'));
	} catch (e) {
		return { ok: false, reason: 'malformed' };
	}
	if (!header || !payload || typeof payload !== 'object')
		return { ok: false, reason: 'malformed' };
	const sig = unb64u(parts[2]);
	if (header.alg !== 'RS256' || sig === null || header.kid !== signer.kid ||
	    !crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]),
	    signer.publicKey, sig))
		return { ok: false, header, payload, reason: 'signature' };
	const t = now();
	if ((opts && opts.forceExpired) || typeof payload.exp !== 'number' ||
	    t >= payload.exp)
		return { ok: false, header, payload, reason: 'expired' };
	if (typeof payload.nbf === 'number' && t < payload.nbf)
		return { ok: false, header, payload, reason: 'notyet' };
	return { ok: true, header, payload };
}

/* Shortens a token for logs: first 8 characters only. */
function
redact(tok)
{
	if (typeof tok !== 'string')
		return '';
	return tok.slice(0, 8) + '…';
}

function
sendJson(res, status, obj, headers)
{
	const body = obj === null || obj === undefined ? '' :
	    JSON.stringify(obj);
	const h = Object.assign({}, headers || {});
	if (body.length > 0)
		h['Content-Type'] = 'application/json; charset=utf-8';
	h['Content-Length'] = Buffer.byteLength(body);
	res.writeHead(status, h);
	res.end(body);
}

/* Key Vault / Managed HSM error envelope (FACTS 1.1): {error:{code,message,innererror?}} */
function
kvError(code, message, inner)
{
	const e = { code, message };
	if (inner)
		e.innererror = { code: inner };
	return { error: e };
}

/* Reads a request body up to BODY_MAX; calls back with (err, Buffer). */
function
readBody(req, cb)
{
	const chunks = [];
	let len = 0, done = false;
	req.on('data', (c) => {
		if (done)
			return;
		len += c.length;
		if (len > BODY_MAX) {
			done = true;
			cb(new Error('body too large'));
			return;
		}
		chunks.push(c);
	});
	req.on('end', () => {
		if (!done) {
			done = true;
			cb(null, Buffer.concat(chunks));
		}
	});
	req.on('error', (e) => {
		if (!done) {
			done = true;
			cb(e);
		}
	});
}

module.exports = {
	BODY_MAX, b64u, unb64u, guid, hex32, clock, now, jwtSign, jwtVerify,
	redact, sendJson, kvError, readBody,
};
