--[[
hash-spread/role.lua - worked example: the default role rules, written
as a table from resource kind to the least role that serves it.  Add a
kind here when you onboard a new resource type.

Input, output: as in default/role.lua (see xtcmk-policy(7)).
]]

local roles = require("xtcmk.roles")

local P = { name = "example-hash-spread-role" }

-- Roles in order of power; each kind names the least it needs.
local ORDER = { roles.CSE_USER, roles.CRYPTO_USER }
local NEEDS = { host = 1, storage = 1, ["storage-existing"] = 1,
    cosmosdb = 1, netapp = 2 }

function P.decide(input, params)
	local c = input.customer
	if c.vault_auth == "access-policy" then
		return { mechanism = "access-policy",
		    permissions = { "get", "wrapKey", "unwrapKey" },
		    reason = "the vault uses access policies" }
	end
	if roles.in_mhsm(c.key_uri) then
		return { mechanism = "rbac", role = roles.MHSM_CSE_USER,
		    scope = "key", reason = "a Managed HSM: its local RBAC role" }
	end
	local need, why = 1, "default"
	for _, k in ipairs(c.kinds or {}) do
		local n = NEEDS[k] or error("unknown resource kind " .. k)
		if n > need then need, why = n, k end
	end
	return { mechanism = "rbac", role = ORDER[need], scope = "key",
	    reason = "least role for " .. why }
end

function P.selftest(params)
	local r = P.decide({ customer = { vault_auth = "rbac",
	    kinds = { "storage", "netapp" } } }, params)
	return r.role == "Key Vault Crypto User", "netapp needs Crypto User"
end

return P
