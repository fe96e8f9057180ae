--[[
by-tier/role.lua - worked example: like the default, but "regulated"
customers grant the role on the key only and everyone else on the vault
(so one grant covers the customer's later keys).

Input, output: as in default/role.lua (see xtcmk-policy(7)).
]]

local roles = require("xtcmk.roles")

local P = { name = "example-by-tier-role" }

local function has(list, x)
	for _, v in ipairs(list or {}) do
		if v == x then return true end
	end
	return false
end

function P.decide(input, params)
	local c = input.customer
	if c.vault_auth == "access-policy" then
		return { mechanism = "access-policy",
		    permissions = { "get", "wrapKey", "unwrapKey" },
		    reason = "the vault uses access policies" }
	end
	local tier = c.labels and c.labels.tier or "free"
	local role = roles.CSE_USER
	if roles.in_mhsm(c.key_uri) then
		role = roles.MHSM_CSE_USER	-- the HSM's local RBAC
	elseif has(c.kinds, "netapp") then
		role = roles.CRYPTO_USER
	end
	local scope = tier == "regulated" and "key" or "vault"
	return { mechanism = "rbac", role = role, scope = scope,
	    reason = "tier " .. tier .. ": grant at " .. scope .. " scope" }
end

function P.selftest(params)
	local r = P.decide({ customer = { vault_auth = "rbac",
	    labels = { tier = "regulated" } } }, params)
	local h = P.decide({ customer = { vault_auth = "rbac",
	    key_uri = "https://contosohsm.managedhsm.azure.net/keys/k" } },
	    params)
	if h.role ~= roles.MHSM_CSE_USER then
		return false, "a Managed HSM key gets the HSM's role"
	end
	return r.scope == "key", "regulated customers grant on the key"
end

return P
