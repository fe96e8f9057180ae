'use strict';
/*
 * In-memory state of the emulated Azure: tenants, managed identities,
 * applications with FICs, service principals, vaults with keys and
 * grants, faults, counters.  Optionally persisted to a JSON state file
 * after every change (keys as PKCS#8 PEM, oct keys as hex).
 */
const crypto = require('crypto');
const fs = require('fs');
const { guid, hex32, now, clock } = require('./util');

const FIC_MAX = 20;		/* per application (FACTS 5) */
const FIC_FIELD_MAX = 600;	/* issuer/subject/audience length (FACTS 5) */
const KEY_VERSIONS_MAX = 500;	/* versions kept per key */
const FAULTS_MAX = 100;		/* active fault rules */
const OBJECTS_MAX = 10000;	/* tenants/identities/apps/vaults/keys each */

/*
 * Role name -> data actions (FACTS 6).  "*" means every key action.
 * Managed HSM role names map to the same actions (their GUIDs and
 * data-action names are UNVERIFIED).
 */
const ROLES = {
	'Key Vault Crypto Service Encryption User': ['read', 'wrap', 'unwrap'],
	'Key Vault Crypto User': ['read', 'update', 'backup', 'encrypt',
	    'decrypt', 'wrap', 'unwrap', 'sign', 'verify'],
	'Key Vault Crypto Officer': ['*'],
	'Key Vault Administrator': ['*'],
	'Key Vault Reader': ['read'],
	'Key Vault Contributor': [],
	'Managed HSM Crypto Service Encryption User': ['read', 'wrap', 'unwrap'],
	'Managed HSM Crypto User': ['read', 'update', 'backup', 'encrypt',
	    'decrypt', 'wrap', 'unwrap', 'sign', 'verify'],
	'Managed HSM Crypto Officer': ['*'],
	'Managed HSM Administrator': ['*'],
};

function
ctlErr(msg, status)
{
	const e = new Error(msg);
	e.status = status || 400;
	return e;
}

function
need(body, field, type)
{
	const v = body[field];
	if (type === 'string' && (typeof v !== 'string' || v.length === 0))
		throw ctlErr(`"${field}" must be a non-empty string`);
	if (type === 'boolean' && typeof v !== 'boolean')
		throw ctlErr(`"${field}" must be true or false`);
	return v;
}

class State {
	constructor(file) {
		this.file = file || null;
		this.tenants = new Map();	/* id -> {id} */
		this.identities = new Map();	/* client_id -> {...} */
		this.apps = new Map();		/* app_id -> {tenant, app_id, name, fics: []} */
		this.sps = new Map();		/* tenant|app_id -> {tenant, app_id, object_id} */
		this.vaults = new Map();	/* name -> vault */
		this.faults = [];
		this.counters = {};
		this.identityHeader = 'emulator-identity-header';
		this.signer = null;
		if (this.file && fs.existsSync(this.file))
			this.load();
		if (this.signer === null)
			this.signer = State.newSigner();
	}

	static newSigner() {
		const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa',
		    { modulusLength: 2048 });
		return { kid: hex32().slice(0, 16), privateKey, publicKey };
	}

	count(op, vault) {
		this.counters[op] = (this.counters[op] || 0) + 1;
		if (vault) {
			const k = `${vault}/${op}`;
			this.counters[k] = (this.counters[k] || 0) + 1;
			this.counters[vault] = (this.counters[vault] || 0) + 1;
		}
	}

	checkRoom(map, what) {
		if (map.size >= OBJECTS_MAX)
			throw ctlErr(`too many ${what} (max ${OBJECTS_MAX})`);
	}

	needTenant(id) {
		if (!this.tenants.has(id))
			throw ctlErr(`unknown tenant "${id}": POST /tenant {"id":"${id}"} first`);
	}

	/* ---- control operations; each returns the JSON reply ---- */

	addTenant(b) {
		const id = need(b, 'id', 'string');
		this.checkRoom(this.tenants, 'tenants');
		this.tenants.set(id, { id });
		return { id };
	}

	addIdentity(b) {
		const tenant = need(b, 'tenant', 'string');
		const client_id = need(b, 'client_id', 'string');
		this.needTenant(tenant);
		this.checkRoom(this.identities, 'identities');
		const principal_id = typeof b.principal_id === 'string' &&
		    b.principal_id ? b.principal_id : guid();
		const resource_id = typeof b.resource_id === 'string' &&
		    b.resource_id ? b.resource_id :
		    `/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${client_id}`;
		const id = { tenant, client_id, principal_id, resource_id };
		this.identities.set(client_id, id);
		return id;
	}

	addApp(b) {
		const tenant = need(b, 'tenant', 'string');
		const app_id = need(b, 'app_id', 'string');
		this.needTenant(tenant);
		this.checkRoom(this.apps, 'apps');
		const old = this.apps.get(app_id);
		const app = { tenant, app_id, name: typeof b.name === 'string' ?
		    b.name : app_id, fics: old ? old.fics : [] };
		this.apps.set(app_id, app);
		return { tenant, app_id, name: app.name };
	}

	needApp(app_id) {
		const app = this.apps.get(app_id);
		if (!app)
			throw ctlErr(`unknown app "${app_id}": POST /app first`);
		return app;
	}

	/* Graph-like validation (FACTS 5). */
	addFic(b) {
		const app = this.needApp(need(b, 'app_id', 'string'));
		const name = need(b, 'name', 'string');
		const issuer = need(b, 'issuer', 'string');
		const subject = need(b, 'subject', 'string');
		let audience = b.audience;
		if (audience === undefined && Array.isArray(b.audiences)) {
			if (b.audiences.length !== 1)
				throw graphErr('audiences must have exactly one value');
			audience = b.audiences[0];
		}
		if (audience === undefined)
			audience = 'api://AzureADTokenExchange';
		if (typeof audience !== 'string' || audience.length === 0)
			throw graphErr('audience must be a non-empty string');
		if (!/^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/.test(name))
			throw graphErr(`FIC name "${name}" must be 3-120 characters, alphanumeric, dash or underscore, starting alphanumeric`);
		for (const [k, v] of [['issuer', issuer], ['subject', subject],
		    ['audience', audience]]) {
			if (v.length > FIC_FIELD_MAX)
				throw graphErr(`${k} longer than ${FIC_FIELD_MAX} characters`);
			if (v !== v.trim())
				throw graphErr(`${k} has leading or trailing whitespace`);
			if (v.includes('*'))
				throw graphErr(`${k} must not contain wildcards`);
		}
		const same = app.fics.findIndex((f) => f.name === name);
		if (same < 0 && app.fics.length >= FIC_MAX)
			throw graphErr(`FederatedIdentityCredential limit reached: an application has at most ${FIC_MAX}`);
		if (app.fics.some((f) => f.name !== name && f.issuer === issuer &&
		    f.subject === subject))
			throw graphErr('the issuer and subject combination already exists on this application');
		const fic = { name, issuer, subject, audience };
		if (same >= 0)
			app.fics[same] = fic;
		else
			app.fics.push(fic);
		return Object.assign({ app_id: app.app_id, count: app.fics.length }, fic);
	}

	removeFic(b) {
		const app = this.needApp(need(b, 'app_id', 'string'));
		const name = need(b, 'name', 'string');
		const i = app.fics.findIndex((f) => f.name === name);
		if (i < 0)
			throw ctlErr(`app "${app.app_id}" has no FIC named "${name}"`, 404);
		app.fics.splice(i, 1);
		return { removed: name, count: app.fics.length };
	}

	addSp(b) {
		const tenant = need(b, 'tenant', 'string');
		const app_id = need(b, 'app_id', 'string');
		this.needTenant(tenant);
		this.needApp(app_id);
		this.checkRoom(this.sps, 'service principals');
		const k = `${tenant}|${app_id}`;
		const old = this.sps.get(k);
		const object_id = typeof b.object_id === 'string' && b.object_id ?
		    b.object_id : (old ? old.object_id : guid());
		this.sps.set(k, { tenant, app_id, object_id });
		return { tenant, app_id, object_id };
	}

	removeSp(b) {
		const tenant = need(b, 'tenant', 'string');
		const app_id = need(b, 'app_id', 'string');
		if (!this.sps.delete(`${tenant}|${app_id}`))
			throw ctlErr(`app "${app_id}" has no service principal in tenant "${tenant}"`, 404);
		return { removed: true };
	}

	sp(tenant, app_id) {
		return this.sps.get(`${tenant}|${app_id}`) || null;
	}

	addVault(b) {
		const name = need(b, 'name', 'string');
		const tenant = need(b, 'tenant', 'string');
		const kind = b.kind === undefined ? 'vault' : b.kind;
		const auth = b.auth === undefined ? 'rbac' : b.auth;
		this.needTenant(tenant);
		if (!/^[a-z0-9][a-z0-9-]{1,48}$/i.test(name))
			throw ctlErr(`vault name "${name}" must be 2-49 letters, digits or dashes`);
		if (kind !== 'vault' && kind !== 'mhsm')
			throw ctlErr('"kind" must be "vault" or "mhsm"');
		if (auth !== 'rbac' && auth !== 'access-policy')
			throw ctlErr('"auth" must be "rbac" or "access-policy"');
		if (kind === 'mhsm' && auth !== 'rbac')
			throw ctlErr('a Managed HSM uses local RBAC only: "auth" must be "rbac"');
		/* How a missing grant reads (FACTS 2): "legacy" puts
		 * ForbiddenByRbac / ForbiddenByPolicy in innererror, "access-denied"
		 * is the newer AccessDenied (a vault: innererror; a Managed HSM:
		 * error.code, its local RBAC's form and its default). */
		const deny_form = b.deny_form === undefined ?
		    (kind === 'mhsm' ? 'access-denied' : 'legacy') : b.deny_form;
		if (deny_form !== 'legacy' && deny_form !== 'access-denied')
			throw ctlErr('"deny_form" must be "legacy" or "access-denied"');
		let limit = 0;
		if (b.limit_per_10s !== undefined) {
			if (!Number.isInteger(b.limit_per_10s) || b.limit_per_10s < 0)
				throw ctlErr('"limit_per_10s" must be a non-negative integer');
			limit = b.limit_per_10s;
		}
		const old = this.vaults.get(name);
		this.checkRoom(this.vaults, 'vaults');
		const v = {
			name, kind, tenant, auth, deny_form, limit_per_10s: limit,
			grants: old ? old.grants : [],
			keys: old ? old.keys : new Map(),
			deleted: old ? old.deleted : new Map(),
			window: [],
		};
		this.vaults.set(name, v);
		return { name, kind, tenant, auth, deny_form,
		    host: vaultHost(v), limit_per_10s: limit };
	}

	needVault(name) {
		const v = this.vaults.get(name);
		if (!v)
			throw ctlErr(`unknown vault "${name}": POST /vault first`);
		return v;
	}

	grantFrom(b) {
		const v = this.needVault(need(b, 'vault', 'string'));
		const app_id = need(b, 'app_id', 'string');
		const tenant = typeof b.tenant === 'string' && b.tenant ? b.tenant :
		    v.tenant;
		const scope = b.scope === undefined ? 'vault' : b.scope;
		if (typeof scope !== 'string' || !(scope === 'vault' ||
		    /^key:.+/.test(scope)))
			throw ctlErr('"scope" must be "vault" or "key:<name>"');
		const g = { tenant, app_id, scope };
		if (v.auth === 'rbac') {
			const role = b.role === undefined ?
			    (v.kind === 'mhsm' ? 'Managed HSM Crypto Service Encryption User' :
			    'Key Vault Crypto Service Encryption User') : b.role;
			if (!Object.prototype.hasOwnProperty.call(ROLES, role))
				throw ctlErr(`unknown role "${role}"; known: ${Object.keys(ROLES).join(', ')}`);
			g.role = role;
		} else {
			const p = b.permissions === undefined ?
			    ['get', 'wrapKey', 'unwrapKey'] : b.permissions;
			if (!Array.isArray(p) || p.some((x) => typeof x !== 'string'))
				throw ctlErr('"permissions" must be an array of strings, e.g. ["get","wrapKey","unwrapKey"]');
			if (scope !== 'vault')
				throw ctlErr('access policies apply to the whole vault: omit "scope"');
			g.permissions = p.map((x) => x.toLowerCase());
		}
		return { v, g };
	}

	addGrant(b) {
		const { v, g } = this.grantFrom(b);
		if (g.tenant !== v.tenant)
			throw ctlErr(`grant tenant "${g.tenant}" is not the vault's tenant "${v.tenant}": role assignments and access policies live in the vault's tenant`);
		if (!v.grants.some((x) => JSON.stringify(x) === JSON.stringify(g)))
			v.grants.push(g);
		return Object.assign({ vault: v.name }, g);
	}

	removeGrant(b) {
		const { v, g } = this.grantFrom(b);
		const before = v.grants.length;
		v.grants = v.grants.filter((x) => !(x.app_id === g.app_id &&
		    x.tenant === g.tenant && x.scope === g.scope &&
		    (b.role === undefined || x.role === g.role)));
		return { removed: before - v.grants.length };
	}

	/* ---- keys ---- */

	static makeVersion(kty, size, key_ops) {
		const ver = { version: hex32(), kty, enabled: true,
		    created: now(), updated: now(), size };
		if (kty === 'RSA' || kty === 'RSA-HSM') {
			const { privateKey } = crypto.generateKeyPairSync('rsa',
			    { modulusLength: size });
			ver.privateKey = privateKey;
			ver.key_ops = key_ops || ['encrypt', 'decrypt', 'sign',
			    'verify', 'wrapKey', 'unwrapKey'];
		} else {
			ver.secret = crypto.randomBytes(size / 8);
			ver.key_ops = key_ops || ['wrapKey', 'unwrapKey',
			    'decrypt', 'encrypt'];
		}
		return ver;
	}

	/* Validates kty/size for the vault kind; returns {kty, size}. */
	static keySpec(v, kty, size) {
		if (v.kind === 'vault' && kty !== 'RSA' && kty !== 'RSA-HSM')
			throw ctlErr(`a vault key here is "RSA" or "RSA-HSM", not "${kty}" (EC is not emulated; oct-HSM needs a Managed HSM)`);
		if (v.kind === 'mhsm' && kty !== 'RSA-HSM' && kty !== 'oct-HSM')
			throw ctlErr(`a Managed HSM key here is "RSA-HSM" or "oct-HSM", not "${kty}"`);
		if (kty === 'oct-HSM') {
			if (size === undefined)
				size = 256;
			if (![128, 192, 256].includes(size))
				throw ctlErr('oct-HSM size must be 128, 192 or 256');
		} else {
			if (size === undefined)
				size = 2048;
			if (![2048, 3072, 4096].includes(size))
				throw ctlErr('RSA size must be 2048, 3072 or 4096');
		}
		return { kty, size };
	}

	createKey(v, name, kty, size, key_ops, enabled) {
		if (!/^[0-9A-Za-z-]{1,127}$/.test(name))
			throw ctlErr(`key name "${name}" must be 1-127 letters, digits or dashes`);
		const spec = State.keySpec(v, kty, size);
		let key = v.keys.get(name);
		if (!key) {
			if (v.keys.size >= OBJECTS_MAX)
				throw ctlErr('too many keys in this vault');
			key = { name, versions: [] };
			v.keys.set(name, key);
		}
		if (key.versions.length >= KEY_VERSIONS_MAX)
			throw ctlErr(`key "${name}" has ${KEY_VERSIONS_MAX} versions already`);
		v.deleted.delete(name);
		const ver = State.makeVersion(spec.kty, spec.size, key_ops);
		if (enabled === false)
			ver.enabled = false;
		key.versions.push(ver);
		return ver;
	}

	ctlKey(b) {
		const v = this.needVault(need(b, 'vault', 'string'));
		const name = need(b, 'name', 'string');
		const kty = b.kty === undefined ? (v.kind === 'mhsm' ? 'RSA-HSM' :
		    'RSA') : b.kty;
		if (b.key_ops !== undefined && (!Array.isArray(b.key_ops) ||
		    b.key_ops.some((x) => typeof x !== 'string')))
			throw ctlErr('"key_ops" must be an array of strings');
		const ver = this.createKey(v, name, kty, b.size, b.key_ops,
		    b.enabled);
		return { kid: kidOf(v, null, name, ver.version),
		    version: ver.version };
	}

	needKey(v, name) {
		const key = v.keys.get(name);
		if (!key)
			throw ctlErr(`vault "${v.name}" has no key "${name}"`, 404);
		return key;
	}

	ctlRotate(b) {
		const v = this.needVault(need(b, 'vault', 'string'));
		const key = this.needKey(v, need(b, 'name', 'string'));
		const cur = key.versions[key.versions.length - 1];
		const ver = this.createKey(v, key.name, cur.kty, cur.size,
		    cur.key_ops.slice());
		return { kid: kidOf(v, null, key.name, ver.version),
		    version: ver.version };
	}

	ctlEnable(b) {
		const v = this.needVault(need(b, 'vault', 'string'));
		const key = this.needKey(v, need(b, 'name', 'string'));
		const enabled = need(b, 'enabled', 'boolean');
		let list = key.versions;
		if (b.version !== undefined) {
			list = key.versions.filter((x) => x.version === b.version);
			if (list.length === 0)
				throw ctlErr(`key "${key.name}" has no version "${b.version}"`, 404);
		}
		for (const ver of list) {
			ver.enabled = enabled;
			ver.updated = now();
		}
		return { changed: list.length, enabled };
	}

	ctlDelete(b) {
		const v = this.needVault(need(b, 'vault', 'string'));
		const key = this.needKey(v, need(b, 'name', 'string'));
		this.deleteKey(v, key);
		return { deleted: key.name };
	}

	deleteKey(v, key) {
		v.keys.delete(key.name);
		key.deletedDate = now();
		v.deleted.set(key.name, key);
	}

	/* ---- faults ---- */

	addFault(b) {
		const kinds = ['latency', 'status', 'reset', 'throttle',
		    'expire-tokens'];
		if (!kinds.includes(b.kind))
			throw ctlErr(`"kind" must be one of ${kinds.join(', ')}`);
		const m = b.match === undefined ? {} : b.match;
		if (typeof m !== 'object' || m === null)
			throw ctlErr('"match" must be an object {host?, path?, method?}');
		const f = { kind: b.kind, match: {} };
		for (const k of ['host', 'path']) {
			if (m[k] !== undefined) {
				try {
					f.match[k] = new RegExp(m[k], 'i');
				} catch (e) {
					throw ctlErr(`match.${k} is not a valid regex: ${e.message}`);
				}
			}
		}
		if (m.method !== undefined)
			f.match.method = String(m.method).toUpperCase();
		if (b.kind === 'latency' && !(Number.isInteger(b.ms) && b.ms >= 0 &&
		    b.ms <= 600000))
			throw ctlErr('latency needs "ms" (0..600000)');
		f.ms = b.ms || 0;
		if (b.kind === 'status') {
			if (!Number.isInteger(b.status) || b.status < 100 ||
			    b.status > 599)
				throw ctlErr('status needs "status" (100..599)');
			f.status = b.status;
			f.body = b.body;
		}
		if (b.retry_after !== undefined) {
			if (!Number.isInteger(b.retry_after) || b.retry_after < 0)
				throw ctlErr('"retry_after" must be a non-negative integer (seconds)');
			f.retry_after = b.retry_after;
		}
		if (b.count !== undefined) {
			if (!Number.isInteger(b.count) || b.count < 1)
				throw ctlErr('"count" must be a positive integer');
			f.count = b.count;
		}
		if (this.faults.length >= FAULTS_MAX)
			throw ctlErr(`too many faults (max ${FAULTS_MAX}): POST /fault/clear`);
		this.faults.push(f);
		return { faults: this.faults.length };
	}

	/* First active fault matching the request, consuming one use. */
	takeFault(host, path, method) {
		for (let i = 0; i < this.faults.length; i++) {
			const f = this.faults[i];
			if (f.match.host && !f.match.host.test(host))
				continue;
			if (f.match.path && !f.match.path.test(path))
				continue;
			if (f.match.method && f.match.method !== method)
				continue;
			if (f.count !== undefined) {
				f.count--;
				if (f.count <= 0)
					this.faults.splice(i, 1);
			}
			return f;
		}
		return null;
	}

	/* ---- persistence ---- */

	toJSON() {
		const vaults = [];
		for (const v of this.vaults.values()) {
			const ser = (key) => ({ name: key.name,
			    deletedDate: key.deletedDate,
			    versions: key.versions.map((x) => ({
				version: x.version, kty: x.kty, size: x.size,
				enabled: x.enabled, created: x.created,
				updated: x.updated, key_ops: x.key_ops,
				pem: x.privateKey ? x.privateKey.export({
				    type: 'pkcs8', format: 'pem' }) : undefined,
				secret: x.secret ? x.secret.toString('hex') :
				    undefined,
			    })) });
			vaults.push({ name: v.name, kind: v.kind, tenant: v.tenant,
			    auth: v.auth, deny_form: v.deny_form,
			    limit_per_10s: v.limit_per_10s,
			    grants: v.grants,
			    keys: [...v.keys.values()].map(ser),
			    deleted: [...v.deleted.values()].map(ser) });
		}
		return {
			tenants: [...this.tenants.keys()],
			identities: [...this.identities.values()],
			apps: [...this.apps.values()],
			sps: [...this.sps.values()],
			vaults,
			identityHeader: this.identityHeader,
			clock_offset_s: clock.offset_s,
			signer: { kid: this.signer.kid,
			    pem: this.signer.privateKey.export({ type: 'pkcs8',
			    format: 'pem' }) },
		};
	}

	save() {
		if (!this.file)
			return;
		const tmp = this.file + '.tmp';
		fs.writeFileSync(tmp, JSON.stringify(this.toJSON()), { mode: 0o600 });
		fs.renameSync(tmp, this.file);
	}

	load() {
		const s = JSON.parse(fs.readFileSync(this.file, 'utf8'));
		for (const t of s.tenants || [])
			this.tenants.set(t, { id: t });
		for (const i of s.identities || [])
			this.identities.set(i.client_id, i);
		for (const a of s.apps || [])
			this.apps.set(a.app_id, a);
		for (const p of s.sps || [])
			this.sps.set(`${p.tenant}|${p.app_id}`, p);
		const de = (k) => ({ name: k.name, deletedDate: k.deletedDate,
		    versions: k.versions.map((x) => Object.assign({}, x, {
			pem: undefined,
			privateKey: x.pem ? crypto.createPrivateKey(x.pem) :
			    undefined,
			secret: x.secret ? Buffer.from(x.secret, 'hex') :
			    undefined,
		    })) });
		for (const v of s.vaults || []) {
			this.vaults.set(v.name, Object.assign({}, v, {
				deny_form: v.deny_form || (v.kind === 'mhsm' ?
				    'access-denied' : 'legacy'),
				keys: new Map(v.keys.map((k) => [k.name, de(k)])),
				deleted: new Map(v.deleted.map((k) => [k.name,
				    de(k)])),
				window: [],
			}));
		}
		if (typeof s.identityHeader === 'string')
			this.identityHeader = s.identityHeader;
		if (Number.isInteger(s.clock_offset_s))
			clock.offset_s = s.clock_offset_s;
		if (s.signer) {
			const privateKey = crypto.createPrivateKey(s.signer.pem);
			this.signer = { kid: s.signer.kid, privateKey,
			    publicKey: crypto.createPublicKey(privateKey) };
		}
	}
}

function
graphErr(msg)
{
	const e = ctlErr(msg, 400);
	e.graph = { error: { code: 'Request_BadRequest', message: msg } };
	return e;
}

function
vaultHost(v)
{
	return v.kind === 'mhsm' ? `${v.name}.managedhsm.azure.net` :
	    `${v.name}.vault.azure.net`;
}

/*
 * Key identifier.  The authority is the Host header the client sent
 * (so an SDK that called x.vault.azure.net:PORT gets ids it can call
 * back), or the canonical host name when there is no request.
 */
function
kidOf(v, hostHeader, name, version)
{
	const auth = hostHeader ? hostHeader.toLowerCase() : vaultHost(v);
	return `https://${auth}/keys/${name}` + (version ? `/${version}` : '');
}

module.exports = { State, ROLES, ctlErr, vaultHost, kidOf, FIC_MAX };
