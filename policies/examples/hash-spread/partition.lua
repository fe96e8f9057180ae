--[[
hash-spread/partition.lua - worked example: a fixed number of shared
applications ("shards") and customers spread over them by rendezvous
hashing of the customer id.

Use it when all workloads serve all customers and you want load spread
evenly without any bookkeeping: the shard of a customer depends only on
its id and the number of shards, so any agent computes the same answer
offline.  Raising params.shards moves no existing customer (assignments
are sticky); new customers spread over the larger set.

A shard trusts up to 20 workloads: with more workloads than that, each
shard gets its own stable 20 by rendezvous hashing on the shard name, so
the fleet as a whole is covered.

Scope: the customer's CANDIDATES best-ranked shards by name, and the
workloads params.selector picks.
Input, output: as in default/partition.lua (see xtcmk-policy(7)).
Params:
  shards      number of applications (4)
  app_prefix  prefix of application names ("xtcmk")
  selector    labels a workload needs to serve, e.g. { env = "prod" }
              (string values, or true/false for present/absent;
              default: every workload)
Application names: "<prefix>-shard-<n>", n = 1..shards.
]]

local place = require("xtcmk.place")
local labels = require("xtcmk.labels")
local capacity = require("xtcmk.capacity")

local P = { name = "example-hash-spread-partition" }

-- Shards tried per customer, best first: a shard out of FICs passes
-- the customer to the next.
local CANDIDATES = 8

-- The customer's best-ranked shard names, at most CANDIDATES.
local function candidates(id, params)
	local shards = params.shards or 4
	local prefix = params.app_prefix or "xtcmk"
	if math.type(shards) ~= "integer" or shards < 1 or shards > 1000 then
		error("params.shards must be an integer from 1 to 1000")
	end
	local names = {}
	for i = 1, shards do
		names[i] = prefix .. "-shard-" .. i
	end
	return place.pick(id, names, CANDIDATES), shards
end

function P.scope(c, params)
	params = params or {}
	return {
		app_names = (candidates(c.id, params)),
		workloads = { labels = params.selector },
	}
end

function P.decide(input, params)
	params = params or {}
	local limit = math.min(input.limit or 20, capacity.FIC_MAX)
	local best, shards = candidates(input.customer.id, params)
	local pool = labels.names(labels.select(input.workloads,
	    params.selector))
	if #pool == 0 then
		error("no workload matches params.selector")
	end

	local existing = {}
	for _, a in ipairs(input.apps or {}) do
		existing[a.name] = a
	end
	-- Best shard first; skip shards whose FICs are all taken by others.
	for _, name in ipairs(best) do
		local wanted = pool
		if #pool > limit then
			wanted = place.pick(name, pool, limit)
			table.sort(wanted)
		end
		local fed = capacity.plan(existing[name], wanted, limit)
		if fed then
			return {
				app = name,
				app_labels = { shard = name:match("%d+$") },
				federate = fed,
				reason = "rendezvous hash of " .. input.customer.id ..
				    " over " .. shards .. " shards",
			}
		end
	end
	error("the customer's " .. #best .. " best shards are out of FICs; " ..
	    "raise params.shards")
end

function P.selftest(params)
	local wl = { { name = "w1" }, { name = "w2" } }
	local a = P.decide({ customer = { id = "acme" }, workloads = wl }, {})
	local b = P.decide({ customer = { id = "acme" }, workloads = wl }, {})
	if a.app ~= b.app then return false, "not deterministic" end
	-- Spread: 200 customers over 4 shards, none empty.
	local seen = {}
	for i = 1, 200 do
		local r = P.decide({ customer = { id = "c" .. i },
		    workloads = wl }, { shards = 4 })
		seen[r.app] = (seen[r.app] or 0) + 1
	end
	for i = 1, 4 do
		if (seen["xtcmk-shard-" .. i] or 0) < 20 then
			return false, "shard " .. i .. " got too few customers"
		end
	end
	return true
end

return P
