--[[
by-tier/versioning.lua - worked example: "regulated" customers pin key
versions (when the URI names one) and are checked for revocation every
minute; premium customers every two minutes; everyone else every five.
Cosmos DB customers always stay versionless, as Cosmos DB requires.

Input, output: as in default/versioning.lua (see xtcmk-policy(7)).
]]

local P = { name = "example-by-tier-versioning" }

local CHECK = { regulated = 60, premium = 120 }

local function has(list, x)
	for _, v in ipairs(list or {}) do
		if v == x then return true end
	end
	return false
end

function P.decide(input, params)
	local c, key = input.customer, input.key
	local tier = c.labels and c.labels.tier or "free"
	local r = {
		mode = "auto",
		refresh = 3600,
		revocation_check = CHECK[tier] or 300,
		grace = 86400,
		cache_ttl = math.min(CHECK[tier] or 300, 300),
		cache_max = 10000,
		reason = "tier " .. tier,
	}
	if tier == "regulated" and key.version and
	    not has(c.kinds, "cosmosdb") then
		r.mode = "pinned"
		r.version = key.version
		r.reason = "regulated: pinned key version"
	end
	return r
end

function P.selftest(params)
	local v = string.rep("b", 32)
	local r = P.decide({ customer = { kinds = { "cosmosdb" },
	    labels = { tier = "regulated" } }, key = { version = v } }, params)
	if r.mode ~= "auto" then return false, "cosmosdb must stay auto" end
	r = P.decide({ customer = { labels = { tier = "regulated" } },
	    key = { version = v } }, params)
	return r.mode == "pinned" and r.revocation_check == 60
end

return P
