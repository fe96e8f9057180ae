--[[
xtcmk.roles - the built-in roles a role policy grants, and where each
exists.  A key vault uses Azure RBAC roles; a Managed HSM has its own
local RBAC, where the Key Vault roles do not exist (and the reverse).

  roles.CSE_USER       "Key Vault Crypto Service Encryption User"
  roles.CRYPTO_USER    "Key Vault Crypto User" (NetApp Files)
  roles.MHSM_CSE_USER  "Managed HSM Crypto Service Encryption User"
  roles.in_mhsm(key_uri) -> true when the key URI names a Managed HSM
                            (https://NAME.managedhsm.<cloud>/keys/...)
]]

local M = {}

M.CSE_USER = "Key Vault Crypto Service Encryption User"
M.CRYPTO_USER = "Key Vault Crypto User"
M.MHSM_CSE_USER = "Managed HSM Crypto Service Encryption User"

function M.in_mhsm(key_uri)
	return type(key_uri) == "string" and
	    key_uri:lower():find("^https://[^/]+%.managedhsm%.") ~= nil
end

return M
