/*
 * sdk_unwrap.mjs - the baseline of bench/azure.sh: the official Azure SDK
 * for JavaScript (@azure/keyvault-keys CryptographyClient, credentials
 * from @azure/identity, both from tests/emulator/node_modules) unwrapping
 * a DEK with RSA-OAEP-256 by calling Key Vault for every request, as a
 * host service without xtcmk would.
 *
 *   NODE_EXTRA_CA_CERTS=ca.pem EMU_HTTPS_PORT=.. EMU_HTTP_PORT=.. \
 *     node --require tests/emulator/dns-preload.cjs bench/sdk_unwrap.mjs \
 *     --tenant T --app APP_ID --identity UAMI_CLIENT_ID --kid KEY_ID \
 *     [--calls 200] [--concurrency 8] [--reps 3]
 *
 * The credential is the cross-tenant one xtcmkd uses: the managed
 * identity's token from IMDS as the client assertion for the customer's
 * application in the customer's tenant.  One CryptographyClient; one
 * warm-up unwrap (token exchange, challenge); then `reps` runs of `calls`
 * unwraps with `concurrency` in flight.  Prints one JSON line:
 * {calls, concurrency, reps, per_s: [..], per_s_median, p50_ms, p99_ms}.
 * Every loop is bounded; exits non-zero on any failed or wrong unwrap.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const CALLS_MAX = 100000, CONCURRENCY_MAX = 256, REPS_MAX = 99;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'emulator',
    'package.json'));
const { ClientAssertionCredential } = require('@azure/identity');
const { CryptographyClient } = require('@azure/keyvault-keys');

function usage(why) {
	console.error(`sdk_unwrap: ${why}`);
	console.error('usage: sdk_unwrap.mjs --tenant T --app APP_ID ' +
	    '--identity UAMI_CLIENT_ID --kid KEY_ID [--calls N] ' +
	    '[--concurrency N] [--reps N]');
	process.exit(2);
}

const a = { calls: '200', concurrency: '8', reps: '3' };
for (let i = 2; i < process.argv.length; i += 2) {
	const k = process.argv[i];
	if (!k.startsWith('--') || i + 1 >= process.argv.length)
		usage(`bad argument ${k}`);
	a[k.slice(2)] = process.argv[i + 1];
}
for (const k of ['tenant', 'app', 'identity', 'kid'])
	if (!a[k])
		usage(`--${k} is required`);
function num(k, max) {
	const v = Number(a[k]);
	if (!Number.isInteger(v) || v < 1 || v > max)
		usage(`--${k} must be an integer from 1 to ${max}`);
	return v;
}
const calls = num('calls', CALLS_MAX);
const concurrency = num('concurrency', CONCURRENCY_MAX);
const reps = num('reps', REPS_MAX);
const HTTPS = process.env.EMU_HTTPS_PORT, HTTP = process.env.EMU_HTTP_PORT;
if (!HTTPS || !HTTP)
	usage('set EMU_HTTPS_PORT and EMU_HTTP_PORT (tests/emulator/lib.sh emu_start does)');

/* Real host names (dns-preload.cjs), the emulator's port. */
const kid = new URL(a.kid);
kid.port = HTTPS;

async function getAssertion() {
	const u = `http://127.0.0.1:${HTTP}/metadata/identity/oauth2/token` +
	    '?api-version=2018-02-01&resource=' +
	    encodeURIComponent('api://AzureADTokenExchange') +
	    `&client_id=${a.identity}`;
	const r = await fetch(u, { headers: { Metadata: 'true' },
	    signal: AbortSignal.timeout(10000) });
	const j = await r.json();
	if (!r.ok)
		throw new Error(`IMDS ${r.status}: ${JSON.stringify(j)}`);
	return j.access_token;
}
const cred = new ClientAssertionCredential(a.tenant, a.app, getAssertion, {
	authorityHost: `https://login.microsoftonline.com:${HTTPS}`,
	disableInstanceDiscovery: true,
});
const cc = new CryptographyClient(kid.toString(), cred);

const dek = crypto.randomBytes(32);
const wrapped = (await cc.wrapKey('RSA-OAEP-256', dek)).result;
async function unwrapOnce() {
	const u = await cc.unwrapKey('RSA-OAEP-256', wrapped);
	if (Buffer.compare(Buffer.from(u.result), dek) !== 0)
		throw new Error('unwrapKey returned a different DEK');
}
await unwrapOnce();

function median(v) {
	const s = [...v].sort((x, y) => x - y);
	const n = s.length;
	return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

const rates = [], lat = [];
for (let r = 0; r < reps; r++) {
	let next = 0;
	const worker = async () => {
		while (next < calls) {
			next++;
			const t = performance.now();
			await unwrapOnce();
			lat.push(performance.now() - t);
		}
	};
	const t0 = performance.now();
	await Promise.all(Array.from({ length: Math.min(concurrency, calls) },
	    worker));
	rates.push(calls / ((performance.now() - t0) / 1000));
}
lat.sort((x, y) => x - y);
console.log(JSON.stringify({
	calls, concurrency, reps,
	per_s: rates.map((x) => Math.round(x * 10) / 10),
	per_s_median: Math.round(median(rates) * 10) / 10,
	p50_ms: Math.round(lat[Math.floor(lat.length / 2)] * 10) / 10,
	p99_ms: Math.round(lat[Math.floor(lat.length * 99 / 100)] * 10) / 10,
}));
