--[[
hash-spread/versioning.lua - worked example: always versionless, with
the DEK cache and refresh tuned by params so a large fleet does not poll
every vault at once: each customer's refresh interval is spread by up to
params.refresh_jitter seconds (stable per customer, from the hash).

Input, output: as in default/versioning.lua (see xtcmk-policy(7)).
Params: refresh (3600), refresh_jitter (600), cache_ttl (300),
revocation_check (300).
]]

local place = require("xtcmk.place")

local P = { name = "example-hash-spread-versioning" }

function P.decide(input, params)
	params = params or {}
	local jitter = params.refresh_jitter or 600
	local spread = 0
	if jitter > 0 then
		spread = place.fnv1a32(input.customer.id or "") % (jitter + 1)
	end
	return {
		mode = "auto",
		refresh = (params.refresh or 3600) + spread,
		revocation_check = params.revocation_check or 300,
		grace = 86400,
		cache_ttl = params.cache_ttl or 300,
		cache_max = 10000,
		reason = "versionless; refresh spread by " .. spread .. " s",
	}
end

function P.selftest(params)
	local r = P.decide({ customer = { id = "x" }, key = {} }, {})
	return r.refresh >= 3600 and r.refresh <= 4200, "refresh out of range"
end

return P
