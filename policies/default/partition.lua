--[[
partition.lua - the default partition policy: which application a new
customer goes to, and which workload identities federate with it.

Scope (P.scope(customer, params)): what the decision chooses among, so
its cost does not grow with the registry:
  shared customers: the region's shared applications with room, in fill
    order, first 8 (stem "<prefix>-<region>-", labels region = region,
    dedicated absent, room = customers_per_app), and the region's
    workloads;
  dedicated customers: their own application by name, and the region's
    workloads.
Input (input):
  customer  = { id, tenant, key_uri, vault_auth, kinds = { ... },
                labels = { region = "...", tier = "...", ... } }
  apps      = { { name, client_id, labels = { ... }, fics = { workload
                names }, fic_count, customers }, ... } (what scope picked)
  workloads = { { name, client_id, principal_id, labels = { ... } }, ... }
  scope     = { max_number = highest n of "<stem><n>" in use, apps_more,
                workloads_more }
  limit     = 20 (FICs per application)
Params (params), all optional:
  default_region     region of customers without a region label ("global")
  customers_per_app  customers per shared application (50)
  app_prefix         prefix of application names ("xtcmk")
  dedicated_tier     labels.tier value that gets its own app ("dedicated")
Output:
  { app = "name", app_labels = { ... } (used only for a new app),
    federate = { "workload", ... }, reason = "text" }

Rules: the customer's region is customer.labels.region.  Shared apps of
a region (labels.region == region, no labels.dedicated) are filled in
order to customers_per_app customers; when all are full the next one,
"<prefix>-<region>-<n>", is opened.  A customer whose labels.tier is the
dedicated tier gets "<prefix>-d-<region>-<id>-<tag>", <id> the customer
id lowercased (other characters as "-") and <tag> 12 hex digits hashed
from the exact id: a namespace of its own ("-d-", and never only digits
after the stem) that no shared name and no other customer's dedicated
name can take.  An existing application of that name that is not
labelled dedicated = <tag> is refused, with the reason.

Moves (P.move(input, params), input = { customer, from, to }): a
dedicated customer may move only to its own application; a shared one
only to a shared application of its region ("<stem><n>", labelled with
the region and not dedicated).  The workloads
labelled with the region federate with the app (sorted by name; with
more than 20, rendezvous hashing on the app name picks a stable 20).
]]

local place = require("xtcmk.place")
local labels = require("xtcmk.labels")
local capacity = require("xtcmk.capacity")

local P = { name = "default-partition" }

local function sanitize(s, max)
	s = string.lower(s):gsub("[^a-z0-9-]", "-"):gsub("^-+", "")
	if s == "" then s = "x" end
	return s:sub(1, max)
end

-- What both scope and decide derive from the customer and the params.
local function settings(c, params)
	local t = {}
	t.region = labels.get(c.labels, "region",
	    params.default_region or "global")
	t.per_app = params.customers_per_app or 50
	t.dedicated = params.dedicated_tier or "dedicated"
	t.stem = (params.app_prefix or "xtcmk") .. "-" ..
	    sanitize(t.region, 24) .. "-"
	t.is_dedicated = labels.get(c.labels, "tier") == t.dedicated
	if t.is_dedicated then	-- the name of its own application
		t.tag = string.format("%08x%04x", place.fnv1a32(c.id),
		    place.fnv1a32("\1" .. c.id) & 0xffff)
		local dstem = (params.app_prefix or "xtcmk") .. "-d-" ..
		    sanitize(t.region, 24) .. "-"
		t.own = dstem .. sanitize(c.id, 63 - #dstem - 13) .. "-" ..
		    t.tag
	end
	return t
end

function P.scope(c, params)
	local t = settings(c, params or {})
	local wl = { labels = { region = t.region } }
	if t.is_dedicated then
		return { app_names = { t.own }, workloads = wl }
	end
	return {
		apps = { stem = t.stem, labels = { region = t.region,
		    dedicated = false }, room = t.per_app, limit = 8 },
		workloads = wl,
	}
end

function P.decide(input, params)
	params = params or {}
	local c = input.customer or error("input.customer is missing")
	local t = settings(c, params)
	local region, per_app, dedicated = t.region, t.per_app, t.dedicated
	local limit = math.min(input.limit or capacity.FIC_MAX,
	    capacity.FIC_MAX)
	local stem = t.stem

	local wls = labels.names(labels.select(input.workloads,
	    { region = region }))
	if #wls == 0 then
		error("no workload identity is labelled region=" .. region ..
		    "; label one (xtcmkctl workload add --label region=" ..
		    region .. ") or set the customer's region label")
	end

	local function wanted(app)
		if #wls <= limit then return wls end
		local chosen = place.pick(app, wls, limit)
		table.sort(chosen)
		return chosen
	end

	local apps = input.apps or {}
	if t.is_dedicated then
		local name = t.own
		local app
		for _, a in ipairs(apps) do
			if a.name == name then app = a end
		end
		if app ~= nil and labels.get(app.labels, "dedicated") ~= t.tag then
			error("application " .. name .. " exists but is not " ..
			    "customer " .. c.id .. "'s dedicated application " ..
			    "(its label dedicated is not " .. t.tag .. "); " ..
			    "refusing to share it")
		end
		local fed = capacity.plan(app, wanted(name), limit) or
		    error("dedicated application " .. name .. " has no FIC " ..
		    "left for the region's workloads")
		return {
			app = name,
			app_labels = { region = region, dedicated = t.tag },
			federate = fed,
			reason = "tier " .. dedicated .. ": own application in " ..
			    region,
		}
	end

	local shared = labels.select(apps, { region = region,
	    dedicated = false })
	for _, a in ipairs(capacity.fill_order(shared, stem)) do
		if capacity.has_room(a, per_app) then
			local fed = capacity.plan(a, wanted(a.name), limit)
			if fed then
				return {
					app = a.name,
					federate = fed,
					reason = string.format("region %s: %s serves " ..
					    "%d of %d customers", region, a.name,
					    a.customers or 0, per_app),
				}
			end
		end
	end
	local name = capacity.next_name(shared, stem,
	    input.scope and input.scope.max_number)
	return {
		app = name,
		app_labels = { region = region },
		federate = wanted(name),
		reason = "region " .. region .. ": every application is full; " ..
		    "opening " .. name,
	}
end

function P.move(input, params)
	local t = settings(input.customer, params or {})
	local to = input.to or {}
	if t.is_dedicated then
		if to.name == t.own then
			return { allow = true, reason = "its own application" }
		end
		return { allow = false, reason = "customer " ..
		    input.customer.id .. " is tier " .. t.dedicated ..
		    " and may only be served by its own application " .. t.own }
	end
	if labels.match(to.labels, { region = t.region, dedicated = false })
	    and capacity.number(to.name or "", t.stem) ~= nil then
		return { allow = true, reason = "a shared application of " ..
		    "region " .. t.region }
	end
	return { allow = false, reason = "customer " .. input.customer.id ..
	    " is a shared customer of region " .. t.region .. "; it may " ..
	    "only move to a shared application " .. t.stem .. "<n> " ..
	    "labelled region=" .. t.region .. " and not dedicated" }
end

function P.selftest(params)
	local wl = {
		{ name = "wl-eu-1", labels = { region = "eu" } },
		{ name = "wl-eu-2", labels = { region = "eu" } },
		{ name = "wl-us-1", labels = { region = "us" } },
	}
	local p = { app_prefix = "t", customers_per_app = 2 }
	local r = P.decide({ customer = { id = "c1", labels = { region = "eu" } },
	    apps = {}, workloads = wl, limit = 20 }, p)
	if r.app ~= "t-eu-1" or #r.federate ~= 2 then
		return false, "first customer of a region should open t-eu-1"
	end
	r = P.decide({ customer = { id = "c2", labels = { region = "eu" } },
	    apps = { { name = "t-eu-1", labels = { region = "eu" },
	    fics = { "wl-eu-1", "wl-eu-2" }, fic_count = 2, customers = 2 } },
	    workloads = wl, limit = 20 }, p)
	if r.app ~= "t-eu-2" then
		return false, "a full application should open the next one"
	end
	r = P.decide({ customer = { id = "Big.Co", labels = { region = "us",
	    tier = "dedicated" } }, apps = {}, workloads = wl, limit = 20 }, p)
	if r.app:match("^t%-d%-us%-big%-co%-%x+$") == nil or
	    r.federate[1] ~= "wl-us-1" then
		return false, "a dedicated customer should get its own app"
	end
	local r2 = P.decide({ customer = { id = "big-co", labels = {
	    region = "us", tier = "dedicated" } }, apps = {}, workloads = wl,
	    limit = 20 }, p)
	if r2.app == r.app then
		return false, "ids differing in case or punctuation must not " ..
		    "share a dedicated app"
	end
	-- With a scope, apps holds only candidates: the next number comes
	-- from input.scope.max_number.
	local sc = P.scope({ id = "c4", labels = { region = "eu" } }, p)
	if sc.apps.stem ~= "t-eu-" or sc.apps.room ~= 2 then
		return false, "scope should select t-eu-* apps with room"
	end
	r = P.decide({ customer = { id = "c4", labels = { region = "eu" } },
	    apps = {}, workloads = wl, scope = { max_number = 7 } }, p)
	if r.app ~= "t-eu-8" then
		return false, "a new app should follow scope.max_number"
	end
	local ok = pcall(P.decide, { customer = { id = "c3",
	    labels = { region = "mars" } }, apps = {}, workloads = wl }, p)
	if ok then
		return false, "a region without workloads must be an error"
	end
	return true
end

return P
