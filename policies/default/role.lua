--[[
role.lua - the default role policy: how the customer grants the
application's service principal access to the key.

Input (input):
  customer = { id, tenant, key_uri, vault_auth = "rbac"|"access-policy",
               kinds = { "host"|"storage"|"storage-existing"|"cosmosdb"|
               "netapp", ... }, labels = { ... } }
  app      = { name, client_id, labels = { ... } }
Output, one of:
  { mechanism = "rbac", role = "<role name>", scope = "key"|"vault",
    reason = "text" }
  { mechanism = "access-policy", permissions = { "get", "wrapKey",
    "unwrapKey" }, reason = "text" }
The agent adds role_id and checks that the mechanism is the one the
vault declares and that the grant suffices for every resource kind.

Rules: a vault with access policies gets get, wrapKey, unwrapKey.  An
RBAC vault gets "Key Vault Crypto Service Encryption User" on the key,
or "Key Vault Crypto User" when the customer uses NetApp Files (the ANF
cross-tenant setup assigns that role).  A Managed HSM has its own local
RBAC, where the Key Vault roles do not exist: it gets "Managed HSM
Crypto Service Encryption User" on the key.
]]

local P = { name = "default-role" }

local function has(list, x)
	for _, v in ipairs(list or {}) do
		if v == x then return true end
	end
	return false
end

function P.decide(input, params)
	local c = input.customer or error("input.customer is missing")
	if c.vault_auth == "access-policy" then
		return {
			mechanism = "access-policy",
			permissions = { "get", "wrapKey", "unwrapKey" },
			reason = "the vault uses access policies",
		}
	end
	if c.vault_auth ~= "rbac" then
		error("customer " .. tostring(c.id) .. " declares vault_auth " ..
		    tostring(c.vault_auth) .. "; expected rbac or access-policy")
	end
	-- Self-contained (no require), as xtcmk.roles.in_mhsm does it.
	if type(c.key_uri) == "string" and
	    c.key_uri:lower():find("^https://[^/]+%.managedhsm%.") then
		return {
			mechanism = "rbac",
			role = "Managed HSM Crypto Service Encryption User",
			scope = "key",
			reason = "a Managed HSM: its local RBAC role for wrap " ..
			    "and unwrap on the key",
		}
	end
	if has(c.kinds, "netapp") then
		return {
			mechanism = "rbac",
			role = "Key Vault Crypto User",
			scope = "key",
			reason = "NetApp Files needs Key Vault Crypto User",
		}
	end
	return {
		mechanism = "rbac",
		role = "Key Vault Crypto Service Encryption User",
		scope = "key",
		reason = "wrap and unwrap on the key only",
	}
end

function P.selftest(params)
	local app = { name = "a" }
	local r = P.decide({ customer = { vault_auth = "rbac",
	    kinds = { "storage" } }, app = app }, params)
	assert(r.role == "Key Vault Crypto Service Encryption User")
	r = P.decide({ customer = { vault_auth = "rbac",
	    kinds = { "netapp" } }, app = app }, params)
	assert(r.role == "Key Vault Crypto User")
	r = P.decide({ customer = { vault_auth = "rbac", kinds = { "host" },
	    key_uri = "https://h.managedhsm.azure.net/keys/k" }, app = app },
	    params)
	assert(r.role == "Managed HSM Crypto Service Encryption User")
	r = P.decide({ customer = { vault_auth = "access-policy" },
	    app = app }, params)
	assert(r.mechanism == "access-policy" and #r.permissions == 3)
	return true
end

return P
