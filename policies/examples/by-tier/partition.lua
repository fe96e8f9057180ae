--[[
by-tier/partition.lua - worked example: one group of applications per
customer tier, whatever the region.

Use it when tiers, not regions, decide isolation: e.g. "free" customers
share big applications, "premium" ones share small applications, and
"regulated" customers each get their own.  Every application trusts the
workloads labelled with the tier's pool (labels.pool), so you can run a
separate pool of hosts for premium customers.

Scope: the tier's numbered applications with room (first 8 in fill
order) and the workloads of the tier's pool.
Input, output: as in default/partition.lua (see xtcmk-policy(7)).
Params:
  tiers = { free = { per_app = 200, pool = "shared" },
            premium = { per_app = 20, pool = "premium" },
            regulated = { per_app = 1, pool = "premium" } }
    (these are the defaults; a tier not listed is treated as "free")
  app_prefix = "xtcmk"
Application names: "<prefix>-<tier>-<n>".
]]

local labels = require("xtcmk.labels")
local capacity = require("xtcmk.capacity")
local place = require("xtcmk.place")

local P = { name = "example-by-tier-partition" }

local DEFAULT_TIERS = {
	free = { per_app = 200, pool = "shared" },
	premium = { per_app = 20, pool = "premium" },
	regulated = { per_app = 1, pool = "premium" },
}

-- The customer's tier, its rule and the stem of its applications.
local function tier_of(c, params)
	local tiers = params.tiers or DEFAULT_TIERS
	local tier = labels.get(c.labels, "tier", "free")
	if tiers[tier] == nil then
		tier = "free"
	end
	local rule = tiers[tier] or error("params.tiers has no entry free")
	return tier, rule, (params.app_prefix or "xtcmk") .. "-" .. tier .. "-"
end

function P.scope(c, params)
	local tier, rule, stem = tier_of(c, params or {})
	return {
		apps = { stem = stem, labels = { tier = tier },
		    room = rule.per_app, limit = 8 },
		workloads = { labels = { pool = rule.pool } },
	}
end

function P.decide(input, params)
	params = params or {}
	local c = input.customer
	local tier, rule, stem = tier_of(c, params)
	local limit = math.min(input.limit or 20, capacity.FIC_MAX)

	-- The workloads of the tier's pool; at most 20, chosen stably.
	local pool = labels.names(labels.select(input.workloads,
	    { pool = rule.pool }))
	if #pool == 0 then
		error("tier " .. tier .. " uses pool " .. rule.pool ..
		    " but no workload is labelled pool=" .. rule.pool)
	end
	local function wanted(app)
		if #pool <= limit then return pool end
		local w = place.pick(app, pool, limit)
		table.sort(w)
		return w
	end

	local mine = labels.select(input.apps, { tier = tier })
	for _, a in ipairs(capacity.fill_order(mine, stem)) do
		if capacity.has_room(a, rule.per_app) then
			local fed = capacity.plan(a, wanted(a.name), limit)
			if fed then
				return { app = a.name, federate = fed,
				    reason = "tier " .. tier .. ": " .. a.name ..
				    " has room" }
			end
		end
	end
	local name = capacity.next_name(mine, stem,
	    input.scope and input.scope.max_number)
	return {
		app = name,
		app_labels = { tier = tier, pool = rule.pool },
		federate = wanted(name),
		reason = "tier " .. tier .. ": opening " .. name,
	}
end

function P.selftest(params)
	local wl = { { name = "h1", labels = { pool = "shared" } },
	    { name = "p1", labels = { pool = "premium" } } }
	local r = P.decide({ customer = { id = "x", labels = { tier = "premium" } },
	    apps = {}, workloads = wl }, {})
	assert(r.app == "xtcmk-premium-1" and r.federate[1] == "p1", r.app)
	r = P.decide({ customer = { id = "y", labels = { tier = "regulated" } },
	    apps = { { name = "xtcmk-regulated-1", labels = { tier = "regulated" },
	    fics = { "p1" }, customers = 1 } }, workloads = wl }, {})
	assert(r.app == "xtcmk-regulated-2", r.app)
	return true
end

return P
