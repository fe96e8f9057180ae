/*
 * Fidelity test: the official Azure SDK for JavaScript against the
 * xtcmk Azure emulator.  If the SDK works unmodified (401 challenge dance,
 * client-assertion token exchange, key CRUD, wrap/unwrap) and reports the
 * negative paths cleanly, the emulator speaks the wire protocol the SDK
 * was written for.
 *
 * Run (tests/emulator.sh does this):
 *   NODE_EXTRA_CA_CERTS=ca.pem EMU_HTTPS_PORT=.. EMU_HTTP_PORT=.. EMU_CONTROL_PORT=.. \
 *     node --require ./dns-preload.cjs fidelity.mjs
 * Prints one line per check and exits non-zero on any failure.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClientAssertionCredential, ManagedIdentityCredential } from '@azure/identity';
import { KeyClient, CryptographyClient } from '@azure/keyvault-keys';

const HTTPS = process.env.EMU_HTTPS_PORT;
const HTTP = process.env.EMU_HTTP_PORT;
const CONTROL = process.env.EMU_CONTROL_PORT;
if (!HTTPS || !HTTP || !CONTROL) {
	console.error('fidelity: set EMU_HTTPS_PORT, EMU_HTTP_PORT and EMU_CONTROL_PORT (tests/emulator/lib.sh emu_start does)');
	process.exit(2);
}

/*
 * Child mode: ManagedIdentityCredential with the App Service environment
 * (IDENTITY_ENDPOINT/IDENTITY_HEADER), in its own process because MSAL
 * picks the managed-identity source once per process.
 */
if (process.argv[2] === '--appservice-child') {
	const mi = new ManagedIdentityCredential({ clientId: process.argv[3] });
	const t = await mi.getToken('api://AzureADTokenExchange/.default');
	process.stdout.write(JSON.stringify({ token: t.token,
	    expiresOnTimestamp: t.expiresOnTimestamp }));
	process.exit(0);
}

let passed = 0, failed = 0;
function ok(cond, what, detail) {
	if (cond) {
		passed++;
		console.log(`ok   - ${what}`);
	} else {
		failed++;
		console.log(`FAIL - ${what}${detail ? ': ' + detail : ''}`);
	}
}
/* Runs fn; a throw counts as one failure and the test goes on. */
async function step(what, fn) {
	try {
		await fn();
	} catch (e) {
		failed++;
		console.log(`FAIL - ${what}: threw ${e && e.name}: ${e && e.message}`);
	}
}
/* Expects fn to throw; returns the error (or null after a failure). */
async function expectThrow(what, fn) {
	try {
		await fn();
	} catch (e) {
		return e;
	}
	failed++;
	console.log(`FAIL - ${what}: no error`);
	return null;
}

async function ctl(path, body) {
	const r = await fetch(`http://127.0.0.1:${CONTROL}${path}`, {
		method: 'POST', headers: { 'Content-Type': 'application/json' },
		body: JSON.stringify(body || {}),
	});
	const j = await r.json();
	if (!r.ok)
		throw new Error(`control ${path}: ${r.status} ${JSON.stringify(j)}`);
	return j;
}

/* ---- topology ---- */
const P = 'a0000000-0000-4000-8000-00000000000a';	/* ISV (provider) tenant */
const C = 'c0000000-0000-4000-8000-00000000000c';	/* customer tenant */
const C2 = 'c2000000-0000-4000-8000-0000000000c2';	/* tenant without the app */
const UAMI = 'b1000000-0000-4000-8000-0000000000b1';
const UAMI_OID = 'b2000000-0000-4000-8000-0000000000b2';
const APP = 'a1000000-0000-4000-8000-0000000000a1';
const APP_NOFIC = 'a2000000-0000-4000-8000-0000000000a2';
const VAULT = 'fidelity', NOROLE = 'fidelity-norole', POLICY = 'fidelity-policy';
const HSM = 'fidelityhsm';
const LOGIN = `https://login.microsoftonline.com:${HTTPS}`;
const vaultUrl = (n) => `https://${n}.vault.azure.net:${HTTPS}`;

await ctl('/tenant', { id: P });
await ctl('/tenant', { id: C });
await ctl('/tenant', { id: C2 });
await ctl('/identity', { tenant: P, client_id: UAMI, principal_id: UAMI_OID });
await ctl('/app', { tenant: P, app_id: APP, name: 'fidelity-app' });
await ctl('/fic', { app_id: APP, name: 'uami-fidelity',
    issuer: `https://login.microsoftonline.com/${P}/v2.0`, subject: UAMI_OID,
    audience: 'api://AzureADTokenExchange' });
await ctl('/sp', { tenant: C, app_id: APP });
await ctl('/app', { tenant: P, app_id: APP_NOFIC, name: 'no-fic-app' });
await ctl('/sp', { tenant: C, app_id: APP_NOFIC });
await ctl('/vault', { name: VAULT, kind: 'vault', tenant: C, auth: 'rbac' });
await ctl('/grant', { vault: VAULT, app_id: APP, role: 'Key Vault Crypto Officer' });
await ctl('/vault', { name: NOROLE, kind: 'vault', tenant: C, auth: 'rbac' });
await ctl('/key', { vault: NOROLE, name: 'k' });
await ctl('/vault', { name: POLICY, kind: 'vault', tenant: C, auth: 'access-policy' });
await ctl('/grant', { vault: POLICY, app_id: APP, permissions: ['get'] });
await ctl('/key', { vault: POLICY, name: 'k' });
await ctl('/vault', { name: HSM, kind: 'mhsm', tenant: C, auth: 'rbac' });
await ctl('/grant', { vault: HSM, app_id: APP, role: 'Managed HSM Crypto Officer' });

async function counters() {
	return ctl('/counters');
}

/* The MI token from IMDS (plain fetch) is the client assertion. */
let imdsShape = null;
async function getAssertion() {
	const u = `http://127.0.0.1:${HTTP}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent('api://AzureADTokenExchange')}&client_id=${UAMI}`;
	const r = await fetch(u, { headers: { Metadata: 'true' } });
	const j = await r.json();
	if (!r.ok)
		throw new Error(`IMDS ${r.status}: ${JSON.stringify(j)}`);
	imdsShape = j;
	return j.access_token;
}
const credOpts = { authorityHost: LOGIN, disableInstanceDiscovery: true };
const cred = new ClientAssertionCredential(C, APP, getAssertion, credOpts);

/* ---- identity ---- */
await step('token exchange', async () => {
	const t = await cred.getToken('https://vault.azure.net/.default');
	ok(typeof t.token === 'string' && t.token.split('.').length === 3,
	    'ClientAssertionCredential gets a KV token with an IMDS assertion');
	ok(typeof imdsShape.expires_in === 'string' &&
	    typeof imdsShape.expires_on === 'string',
	    'IMDS numbers are strings');
	const exp = t.expiresOnTimestamp - Date.now();
	ok(exp > 3000 * 1000 && exp < 3700 * 1000,
	    'SDK read expires_in (number) as about one hour', String(exp));
	const p = JSON.parse(Buffer.from(t.token.split('.')[1], 'base64url'));
	ok(p.tid === C && p.appid === APP && p.aud === 'https://vault.azure.net',
	    'KV token: tid customer tenant, appid, aud', JSON.stringify(p));
});

await step('ManagedIdentityCredential via IMDS', async () => {
	process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = `http://127.0.0.1:${HTTP}`;
	const mi = new ManagedIdentityCredential({ clientId: UAMI });
	const t = await mi.getToken('api://AzureADTokenExchange/.default');
	const p = JSON.parse(Buffer.from(t.token.split('.')[1], 'base64url'));
	ok(p.aud === 'api://AzureADTokenExchange' && p.sub === UAMI_OID &&
	    p.iss === `https://login.microsoftonline.com/${P}/v2.0`,
	    'ManagedIdentityCredential (IMDS) gets the assertion token', JSON.stringify(p));
	ok(t.expiresOnTimestamp > Date.now(), 'SDK parsed IMDS string expires_on');
});

await step('ManagedIdentityCredential via App Service', async () => {
	await ctl('/appservice', { identity_header: 'fidelity-header' });
	const out = execFileSync(process.execPath, ['--require',
	    fileURLToPath(new URL('./dns-preload.cjs', import.meta.url)),
	    fileURLToPath(import.meta.url), '--appservice-child', UAMI], {
		env: Object.assign({}, process.env, {
		    IDENTITY_ENDPOINT: `http://127.0.0.1:${HTTP}/msi/token`,
		    IDENTITY_HEADER: 'fidelity-header' }),
		timeout: 60000 });
	const t = JSON.parse(out.toString());
	const p = JSON.parse(Buffer.from(t.token.split('.')[1], 'base64url'));
	ok(p.aud === 'api://AzureADTokenExchange' && p.sub === UAMI_OID &&
	    t.expiresOnTimestamp > Date.now(),
	    'ManagedIdentityCredential (App Service 2019-08-01) gets the assertion token');
	const c = await counters();
	ok(c.appservice_token >= 1, 'the App Service endpoint served it');
});

/* ---- keys ---- */
const kc = new KeyClient(vaultUrl(VAULT), cred);
const dek = crypto.randomBytes(32);
let v1, v2;
await step('create/get/rotate', async () => {
	const k = await kc.createRsaKey('sdkkey', { keySize: 2048 });
	v1 = k;
	ok(k.id.startsWith(`${vaultUrl(VAULT)}/keys/sdkkey/`) &&
	    /\/[0-9a-f]{32}$/.test(k.id), 'createRsaKey (SDK did the 401 challenge dance)', k.id);
	ok(k.keyType === 'RSA' && k.key.n.length === 256 && k.properties.enabled === true,
	    'created key is RSA-2048, enabled');
	const g = await kc.getKey('sdkkey');
	ok(g.id === k.id, 'getKey returns the current version');
	const r = await kc.rotateKey('sdkkey');
	v2 = r;
	ok(r.properties.version !== k.properties.version, 'rotateKey makes a new version');
	const g2 = await kc.getKey('sdkkey');
	ok(g2.id === r.id, 'getKey follows the rotation');
	const g1 = await kc.getKey('sdkkey', { version: k.properties.version });
	ok(g1.id === k.id, 'getKey with a version returns that version');
	let n = 0;
	for await (const p of kc.listPropertiesOfKeyVersions('sdkkey')) {
		if (p.name === 'sdkkey')
			n++;
	}
	ok(n === 2, 'listPropertiesOfKeyVersions lists 2 versions', String(n));
});

await step('wrap/unwrap', async () => {
	const cc = new CryptographyClient(v2.id, cred);
	const before = (await counters()).unwrapkey || 0;
	const w = await cc.wrapKey('RSA-OAEP-256', dek);
	ok(w.keyID === v2.id && w.result.length === 256, 'wrapKey RSA-OAEP-256', w.keyID);
	const u = await cc.unwrapKey('RSA-OAEP-256', w.result);
	ok(Buffer.compare(Buffer.from(u.result), dek) === 0, 'unwrapKey RSA-OAEP-256 round trip');
	const after = (await counters()).unwrapkey || 0;
	ok(after === before + 1, 'unwrap ran remotely in the emulator');

	/* Wrapped outside the emulator with the public key, unwrapped remotely. */
	const pub = crypto.createPublicKey({ format: 'jwk', key: {
	    kty: 'RSA', n: Buffer.from(v2.key.n).toString('base64url'),
	    e: Buffer.from(v2.key.e).toString('base64url') } });
	for (const [alg, opt] of [
	    ['RSA-OAEP-256', { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }],
	    ['RSA-OAEP', { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }],
	    ['RSA1_5', { padding: crypto.constants.RSA_PKCS1_PADDING }]]) {
		const ct = crypto.publicEncrypt(Object.assign({ key: pub }, opt), dek);
		const uu = await cc.unwrapKey(alg, ct);
		ok(Buffer.compare(Buffer.from(uu.result), dek) === 0,
		    `remote-only unwrap ${alg} of a locally wrapped DEK`);
	}
	/* Old version still unwraps what it wrapped. */
	const c1 = new CryptographyClient(v1.id, cred);
	const w1 = await c1.wrapKey('RSA-OAEP-256', dek);
	const u1 = await c1.unwrapKey('RSA-OAEP-256', w1.result);
	ok(Buffer.compare(Buffer.from(u1.result), dek) === 0 && w1.keyID === v1.id,
	    'previous version still wraps and unwraps');
	/* The emulator's own wrap (raw REST), unwrapped by the SDK. */
	const tok = await cred.getToken('https://vault.azure.net/.default');
	const r = await fetch(`${v2.id}/wrapkey?api-version=7.4`, {
		method: 'POST', headers: { Authorization: `Bearer ${tok.token}`,
		    'Content-Type': 'application/json' },
		body: JSON.stringify({ alg: 'RSA-OAEP-256', value: dek.toString('base64url') }),
	});
	const j = await r.json();
	ok(r.status === 200 && j.kid === v2.id && /^[A-Za-z0-9_-]+$/.test(j.value),
	    'raw REST wrapkey answers {kid, value base64url}', JSON.stringify(j).slice(0, 120));
	const u2 = await cc.unwrapKey('RSA-OAEP-256', Buffer.from(j.value, 'base64url'));
	ok(Buffer.compare(Buffer.from(u2.result), dek) === 0, 'SDK unwraps an emulator-wrapped DEK');
});

await step('disable/enable', async () => {
	const cc = new CryptographyClient(v2.id, cred);
	const w = await cc.wrapKey('RSA-OAEP-256', dek);
	const p = await kc.updateKeyProperties('sdkkey', v2.properties.version, { enabled: false });
	ok(p.properties.enabled === false, 'updateKeyProperties enabled=false');
	const cc2 = new CryptographyClient(v2.id, cred);
	const e = await expectThrow('unwrap on a disabled key', () =>
	    cc2.unwrapKey('RSA-OAEP-256', w.result));
	if (e) {
		const inner = e.details && e.details.error && e.details.error.innerError;
		ok(e.statusCode === 403 && /disabled key/.test(e.message),
		    'unwrap on a disabled key fails 403 "...not allowed on a disabled key."',
		    `${e.statusCode} ${e.code} ${e.message}`);
		ok(inner && inner.code === 'KeyDisabled',
		    'SDK surfaces innerError.code KeyDisabled', JSON.stringify(e.details));
	}
	const e2 = await expectThrow('getKey on a disabled key', () => kc.getKey('sdkkey'));
	if (e2)
		ok(e2.statusCode === 403, 'getKey on a disabled key fails 403', e2.message);
	const p2 = await kc.updateKeyProperties('sdkkey', v2.properties.version, { enabled: true });
	ok(p2.properties.enabled === true, 'updateKeyProperties enabled=true');
	const u = await cc2.unwrapKey('RSA-OAEP-256', w.result);
	ok(Buffer.compare(Buffer.from(u.result), dek) === 0, 'unwrap works again after re-enable');
});

await step('managed HSM oct-HSM', async () => {
	const hc = new KeyClient(`https://${HSM}.managedhsm.azure.net:${HTTPS}`, cred);
	const k = await hc.createOctKey('hsmkey', { hsm: true, keySize: 256 });
	ok(k.keyType === 'oct-HSM' && k.properties.exportable === false,
	    'createOctKey on a Managed HSM (SDK got a managedhsm-scoped token)', k.id);
	const cc = new CryptographyClient(k.id, cred);
	const w = await cc.wrapKey('A256KW', dek);
	ok(w.result.length === 40, 'wrapKey A256KW (40 bytes for a 32-byte DEK)');
	const u = await cc.unwrapKey('A256KW', w.result);
	ok(Buffer.compare(Buffer.from(u.result), dek) === 0, 'unwrapKey A256KW round trip');
	const kw = crypto.createCipheriv('id-aes256-wrap', Buffer.alloc(32), Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
	const bogus = Buffer.concat([kw.update(dek), kw.final()]);
	const e = await expectThrow('unwrap with the wrong key', () => cc.unwrapKey('A256KW', bogus));
	if (e)
		ok(e.statusCode === 400, 'A256KW integrity failure is a 400', e.message);
});

/* ---- negative paths ---- */
await step('no FIC', async () => {
	const c = new ClientAssertionCredential(C, APP_NOFIC, getAssertion, credOpts);
	const e = await expectThrow('app without FIC', () => c.getToken('https://vault.azure.net/.default'));
	if (e)
		ok(/AADSTS70021/.test(e.message), 'no FIC -> AADSTS70021 in the credential error', e.message.slice(0, 200));
	const e2 = await expectThrow('KeyClient with a no-FIC app',
	    () => new KeyClient(vaultUrl(VAULT), c).getKey('sdkkey'));
	if (e2)
		ok(/AADSTS70021/.test(e2.message) && /^Authentication/.test(e2.name),
		    'KeyClient surfaces an Authentication*Error with AADSTS70021', `${e2.name} ${e2.message.slice(0, 120)}`);
});

await step('app not installed', async () => {
	const c = new ClientAssertionCredential(C2, APP, getAssertion, credOpts);
	const e = await expectThrow('app not installed', () => c.getToken('https://vault.azure.net/.default'));
	if (e)
		ok(/AADSTS700016/.test(e.message), 'no service principal -> AADSTS700016', e.message.slice(0, 200));
});

await step('RBAC without role', async () => {
	const e = await expectThrow('getKey without a role', () => new KeyClient(vaultUrl(NOROLE), cred).getKey('k'));
	if (e) {
		const inner = e.details && e.details.error && e.details.error.innerError;
		ok(e.statusCode === 403 && inner && inner.code === 'ForbiddenByRbac' &&
		    /Caller is not authorized/.test(e.message),
		    'no role -> 403 ForbiddenByRbac', `${e.statusCode} ${JSON.stringify(e.details)}`);
	}
});

await step('access policy without unwrapKey', async () => {
	const pk = await new KeyClient(vaultUrl(POLICY), cred).getKey('k');
	ok(pk.keyType === 'RSA', 'access policy "get" allows getKey');
	const cc = new CryptographyClient(pk.id, cred);
	const e = await expectThrow('unwrap without permission', () => cc.unwrapKey('RSA-OAEP-256', Buffer.alloc(256, 1)));
	if (e) {
		const inner = e.details && e.details.error && e.details.error.innerError;
		ok(e.statusCode === 403 && inner && inner.code === 'ForbiddenByPolicy',
		    'no unwrapKey permission -> 403 ForbiddenByPolicy', JSON.stringify(e.details));
	}
});

await step('not found', async () => {
	const e = await expectThrow('getKey of a missing key', () => kc.getKey('nope'));
	if (e)
		ok(e.statusCode === 404 && e.code === 'KeyNotFound', 'missing key -> 404 KeyNotFound', `${e.statusCode} ${e.code}`);
});

await step('faults', async () => {
	await ctl('/counters/reset');
	await ctl('/fault', { match: { host: `^${VAULT}\\.`, path: '/keys/sdkkey' }, kind: 'throttle', retry_after: 0, count: 1 });
	const k = await kc.getKey('sdkkey');
	const c1 = await counters();
	ok(k.name === 'sdkkey' && c1.throttled_429 === 1, 'SDK retries after 429 with Retry-After', JSON.stringify(c1));
	await ctl('/fault', { match: { host: `^${VAULT}\\.` }, kind: 'status', status: 503, count: 1 });
	const k2 = await kc.getKey('sdkkey');
	const c2 = await counters();
	ok(k2.name === 'sdkkey' && c2.fault_status === 1, 'SDK retries after an injected 503');
	await ctl('/fault', { match: { host: `^${VAULT}\\.` }, kind: 'reset', count: 1 });
	const k3 = await kc.getKey('sdkkey');
	const c3 = await counters();
	ok(k3.name === 'sdkkey' && c3.fault_reset === 1, 'SDK retries after a connection reset');
	await ctl('/fault/clear');
});

await step('key deletion', async () => {
	const poller = await kc.beginDeleteKey('sdkkey', { intervalInMs: 50 });
	const d = await poller.pollUntilDone();
	ok(d.name === 'sdkkey' && d.properties.recoveryId && d.properties.recoveryId.endsWith('/deletedkeys/sdkkey'),
	    'beginDeleteKey completes (soft delete)', JSON.stringify(d.properties));
	const e = await expectThrow('getKey of a deleted key', () => kc.getKey('sdkkey'));
	if (e)
		ok(e.statusCode === 404, 'deleted key -> 404');
	await kc.purgeDeletedKey('sdkkey');
	const e2 = await expectThrow('getDeletedKey after purge', () => kc.getDeletedKey('sdkkey'));
	if (e2)
		ok(e2.statusCode === 404 && /Deleted Key not found/.test(e2.message), 'purged key is gone');
});

console.log(`fidelity: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
