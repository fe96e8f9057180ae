#!/usr/bin/env node
'use strict';
/*
 * xtcmk Azure emulator: Key Vault / Managed HSM keys data plane, Entra
 * v2.0 token endpoint with federated identity credentials, IMDS and the
 * App Service identity endpoint, plus a control API for tests.
 *
 *   node emulator.js --tls-cert C --tls-key K --https-port 0 \
 *       --http-port 0 --control-port 0 [--state-file F] \
 *       [--identity-header SECRET]
 *
 * Prints {"https":P,"http":P,"control":P} on one stdout line when ready.
 * Listens on 127.0.0.1 only.  See README.md for the control API.
 */
const fs = require('fs');
const http = require('http');
const https = require('https');
const { State } = require('./lib/state');
const entra = require('./lib/entra');
const vault = require('./lib/vault');
const { clock, now, redact, sendJson, readBody } = require('./lib/util');

const LISTEN = '127.0.0.1';

function
usage(msg)
{
	process.stderr.write(`emulator: ${msg}\nusage: node emulator.js --tls-cert FILE --tls-key FILE [--https-port N] [--http-port N] [--control-port N] [--state-file FILE] [--identity-header SECRET]\n`);
	process.exit(2);
}

function
parseArgs(argv)
{
	const o = { httpsPort: 0, httpPort: 0, controlPort: 0 };
	const num = (s, name) => {
		const n = Number(s);
		if (!Number.isInteger(n) || n < 0 || n > 65535)
			usage(`${name} must be a port number 0..65535`);
		return n;
	};
	for (let i = 2; i < argv.length; i += 2) {
		const k = argv[i], val = argv[i + 1];
		if (val === undefined)
			usage(`${k} needs a value`);
		switch (k) {
		case '--tls-cert': o.cert = val; break;
		case '--tls-key': o.key = val; break;
		case '--https-port': o.httpsPort = num(val, k); break;
		case '--http-port': o.httpPort = num(val, k); break;
		case '--control-port': o.controlPort = num(val, k); break;
		case '--state-file': o.stateFile = val; break;
		case '--identity-header': o.identityHeader = val; break;
		default: usage(`unknown option ${k}`);
		}
	}
	if (!o.cert || !o.key)
		usage('--tls-cert and --tls-key are required');
	return o;
}

const opts = parseArgs(process.argv);
const st = new State(opts.stateFile);
if (opts.identityHeader)
	st.identityHeader = opts.identityHeader;

/* One stderr line per request; tokens shortened to 8 characters. */
function
logRequest(kind, req, res, t0)
{
	const auth = req.headers.authorization;
	const tok = typeof auth === 'string' ?
	    ` auth=${redact(auth.replace(/^Bearer\s+/i, ''))}` : '';
	const xid = req.headers['x-identity-header'] ? ' x-identity-header=set' : '';
	const path = String(req.url).slice(0, 300);
	process.stderr.write(`emu ${new Date().toISOString()} ${kind} ${req.method} ${req.headers.host || '-'}${path} -> ${res.statusCode} ${Date.now() - t0}ms${tok}${xid}\n`);
}

function
hostOf(req)
{
	const h = String(req.headers.host || '').toLowerCase();
	return h.replace(/:\d+$/, '');
}

/* Applies a fault; returns true when the request was answered. */
function
applyFault(f, req, res, host, next)
{
	st.count(`fault_${f.kind}`);
	if (f.kind === 'latency') {
		setTimeout(next, f.ms);
		return true;
	}
	if (f.kind === 'reset') {
		const s = req.socket;
		if (typeof s.resetAndDestroy === 'function') {
			try {
				s.resetAndDestroy();
				return true;
			} catch (e) {
				/* fall through */
			}
		}
		s.destroy();
		return true;
	}
	if (f.kind === 'throttle') {
		const m = host.match(/^([a-z0-9-]+)\.(vault|managedhsm)\.azure\.net$/);
		const v = m ? st.vaults.get(m[1]) : null;
		if (v)
			return vault.throttled(st, res, v, f.retry_after), true;
		const h = {};
		if (f.retry_after !== undefined)
			h['Retry-After'] = String(f.retry_after);
		st.count('throttled_429');
		sendJson(res, 429, { error: 'too_many_requests',
		    error_description: 'Too many requests (emulator fault)' }, h);
		return true;
	}
	if (f.kind === 'status') {
		const h = {};
		if (f.retry_after !== undefined)
			h['Retry-After'] = String(f.retry_after);
		if (typeof f.body === 'string') {
			h['Content-Type'] = 'text/plain';
			res.writeHead(f.status, h);
			res.end(f.body);
		} else {
			sendJson(res, f.status, f.body !== undefined ? f.body :
			    { error: { code: 'InternalServerError',
			    message: `emulator fault: status ${f.status}` } }, h);
		}
		return true;
	}
	return false;	/* expire-tokens: handled by the token checks */
}

/* HTTPS: Entra and the vault hosts, dispatched on the Host header. */
function
serveHttps(req, res)
{
	const t0 = Date.now();
	res.on('finish', () => logRequest('https', req, res, t0));
	const host = hostOf(req);
	let url;
	try {
		url = new URL(req.url, 'https://x');
	} catch (e) {
		return sendJson(res, 400, { error: 'bad request url' });
	}
	const f = st.takeFault(host, url.pathname, req.method);
	const go = () => {
		if (host === 'login.microsoftonline.com' ||
		    host === 'login.windows.net') {
			const m = url.pathname.match(/^\/([^/]+)\/oauth2\/v2\.0\/token$/);
			if (m)
				return entra.token(st, req, res, m[1], f);
			if (req.method === 'GET' && entra.metadata(st, req, res,
			    url) !== false)
				return;
			return sendJson(res, 404, { error: 'not_found',
			    error_description: `emulator: no Entra endpoint ${url.pathname}` });
		}
		if (/\.(vault|managedhsm)\.azure\.net$/.test(host))
			return vault.handle(st, req, res, url, host, f);
		sendJson(res, 421, { error: `emulator: unknown host "${host}"` });
	};
	if (f && applyFault(f, req, res, host, go))
		return;
	go();
}

/* Plain HTTP: IMDS and the App Service identity endpoint. */
function
serveHttp(req, res)
{
	const t0 = Date.now();
	res.on('finish', () => logRequest('http', req, res, t0));
	let url;
	try {
		url = new URL(req.url, 'http://x');
	} catch (e) {
		return sendJson(res, 400, { error: 'bad request url' });
	}
	const host = hostOf(req);
	const f = st.takeFault(host, url.pathname, req.method);
	const go = () => {
		/* MSAL's IMDS source adds a trailing slash. */
		const p = url.pathname.replace(/\/$/, '');
		if (p === '/metadata/identity/oauth2/token')
			return entra.imds(st, req, res, url);
		if (p === '/msi/token')
			return entra.appService(st, req, res, url);
		sendJson(res, 404, { error: 'not_found',
		    error_description: `emulator: no endpoint ${url.pathname} (IMDS is /metadata/identity/oauth2/token, App Service is /msi/token)` });
	};
	if (f && applyFault(f, req, res, host, go))
		return;
	go();
}

/* ---- control API ---- */

const CONTROL = {
	'/tenant': (b) => st.addTenant(b),
	'/identity': (b) => st.addIdentity(b),
	'/app': (b) => st.addApp(b),
	'/fic': (b) => st.addFic(b),
	'/fic/remove': (b) => st.removeFic(b),
	'/sp': (b) => st.addSp(b),
	'/sp/remove': (b) => st.removeSp(b),
	'/vault': (b) => st.addVault(b),
	'/grant': (b) => st.addGrant(b),
	'/grant/remove': (b) => st.removeGrant(b),
	'/key': (b) => st.ctlKey(b),
	'/key/rotate': (b) => st.ctlRotate(b),
	'/key/enable': (b) => st.ctlEnable(b),
	'/key/delete': (b) => st.ctlDelete(b),
	'/key/versions': (b) => {
		const v = st.needVault(String(b.vault));
		const key = st.needKey(v, String(b.name));
		return { versions: key.versions.map((x) => ({ version: x.version,
		    kid: `https://${vault.vaultHost(v)}/keys/${key.name}/${x.version}`,
		    enabled: x.enabled, kty: x.kty })) };
	},
	'/fault': (b) => st.addFault(b),
	'/fault/clear': () => {
		const n = st.faults.length;
		st.faults = [];
		return { cleared: n };
	},
	'/counters': () => Object.assign({}, st.counters),
	'/counters/reset': () => {
		st.counters = {};
		return {};
	},
	'/clock': (b) => {
		if (!Number.isInteger(b.offset_s))
			throw Object.assign(new Error('"offset_s" must be an integer (seconds)'), { status: 400 });
		clock.offset_s = b.offset_s;
		return { offset_s: clock.offset_s, now: now() };
	},
	'/lifetimes': (b) => {
		for (const k of ['imds_s', 'appservice_s', 'entra_s']) {
			if (b[k] === undefined)
				continue;
			if (!Number.isInteger(b[k]) || b[k] < 1 || b[k] > 86400 * 7)
				throw Object.assign(new Error(`"${k}" must be an integer 1..604800`), { status: 400 });
			entra.lifetimes[k] = b[k];
		}
		return Object.assign({}, entra.lifetimes);
	},
	'/appservice': (b) => {
		if (typeof b.identity_header !== 'string' || !b.identity_header)
			throw Object.assign(new Error('"identity_header" must be a non-empty string'), { status: 400 });
		st.identityHeader = b.identity_header;
		return { identity_header: st.identityHeader };
	},
	'/state': () => {
		const j = st.toJSON();
		delete j.signer;
		for (const v of j.vaults) {
			for (const k of v.keys.concat(v.deleted)) {
				for (const x of k.versions) {
					delete x.pem;
					delete x.secret;
				}
			}
		}
		j.faults = st.faults.length;
		return j;
	},
};
const READ_ONLY = ['/counters', '/state', '/key/versions'];

function
serveControl(req, res)
{
	const t0 = Date.now();
	res.on('finish', () => logRequest('control', req, res, t0));
	const path = String(req.url).replace(/\?.*$/, '');
	const fn = CONTROL[path];
	if (!fn)
		return sendJson(res, 404, { error: `unknown control endpoint ${path}; see tests/emulator/README.md` });
	if (req.method !== 'POST' && !(req.method === 'GET' &&
	    READ_ONLY.includes(path)))
		return sendJson(res, 405, { error: `use POST ${path} with a JSON body` });
	readBody(req, (err, buf) => {
		if (err)
			return sendJson(res, 413, { error: 'body too large' });
		let b = {};
		if (buf.length > 0) {
			try {
				b = JSON.parse(buf.toString('utf8'));
			} catch (e) {
				return sendJson(res, 400, { error: `body is not JSON: ${e.message}` });
			}
		}
		if (typeof b !== 'object' || b === null || Array.isArray(b))
			return sendJson(res, 400, { error: 'body must be a JSON object' });
		try {
			const out = fn(b);
			if (!READ_ONLY.includes(path))
				st.save();
			sendJson(res, 200, out);
		} catch (e) {
			if (e.graph)
				return sendJson(res, e.status, e.graph);
			sendJson(res, e.status || 500, { error: e.message });
		}
	});
}

/* ---- start ---- */

let tlsOpts;
try {
	tlsOpts = { cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) };
} catch (e) {
	usage(`cannot read TLS cert/key: ${e.message}`);
}
const servers = {
	https: https.createServer(tlsOpts, serveHttps),
	http: http.createServer(serveHttp),
	control: http.createServer(serveControl),
};
const ports = { https: opts.httpsPort, http: opts.httpPort,
    control: opts.controlPort };
const bound = {};
for (const [name, srv] of Object.entries(servers)) {
	srv.requestTimeout = 60000;
	srv.on('error', (e) => {
		process.stderr.write(`emulator: ${name} server: ${e.message}\n`);
		process.exit(1);
	});
	srv.listen(ports[name], LISTEN, () => {
		bound[name] = srv.address().port;
		if (Object.keys(bound).length === 3) {
			process.stdout.write(JSON.stringify({ https: bound.https,
			    http: bound.http, control: bound.control }) + '\n');
		}
	});
}

function
shutdown()
{
	for (const srv of Object.values(servers)) {
		srv.close();
		if (typeof srv.closeAllConnections === 'function')
			srv.closeAllConnections();
	}
	try {
		st.save();
	} catch (e) {
		/* the state file directory may be gone at exit */
	}
	process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
