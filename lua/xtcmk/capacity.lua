--[[
xtcmk.capacity - arithmetic for the 20-FIC limit and for filling
applications with customers.

An application (as the partition decision sees it) has `fics` (the names
of the workloads it trusts), `fic_count` and `customers` (how many
customers it serves).

  capacity.FIC_MAX                    20, Entra's limit per application
  capacity.remaining(app, limit)      FICs still free on app
  capacity.union(a, b)                sorted list of the names in a or b
  capacity.plan(app, wanted, limit)   the workloads of `wanted` (in its
                                      order) to federate with app without
                                      passing the limit: those app trusts
                                      already first, then new ones while
                                      room lasts; nil if none fits
  capacity.has_room(app, per_app)     app serves fewer than per_app
                                      customers
  capacity.number(name, stem)         n when name is stem .. n, else nil
  capacity.fill_order(apps, stem)     apps sorted so the lowest-numbered
                                      (oldest) is filled first
  capacity.next_name(apps, stem, max) stem .. n for the smallest n > every
                                      number in use among apps and > max
                                      (pass input.scope.max_number: with
                                      P.scope, apps holds only the
                                      candidates, not every numbered app)
]]

local M = { FIC_MAX = 20 }

function M.remaining(app, limit)
	limit = math.min(limit or M.FIC_MAX, M.FIC_MAX)
	local used = app.fic_count or #(app.fics or {})
	return math.max(limit - used, 0)
end

function M.union(a, b)
	local seen, out = {}, {}
	for _, list in ipairs({ a or {}, b or {} }) do
		for _, n in ipairs(list) do
			if not seen[n] then
				seen[n] = true
				out[#out + 1] = n
			end
		end
	end
	table.sort(out)
	return out
end

function M.plan(app, wanted, limit)
	local have, keep, new = {}, {}, {}
	for _, n in ipairs((app and app.fics) or {}) do
		have[n] = true
	end
	for _, n in ipairs(wanted) do
		if have[n] then keep[#keep + 1] = n else new[#new + 1] = n end
	end
	local room = app and M.remaining(app, limit) or
	    math.min(limit or M.FIC_MAX, M.FIC_MAX)
	for i = 1, math.min(room, #new) do
		keep[#keep + 1] = new[i]
	end
	if #keep == 0 then
		return nil
	end
	return keep
end

function M.has_room(app, per_app)
	return (app.customers or 0) < per_app
end

function M.number(name, stem)
	if name:sub(1, #stem) ~= stem then
		return nil
	end
	local digits = name:sub(#stem + 1)
	if not digits:match("^%d+$") then
		return nil
	end
	return math.tointeger(tonumber(digits))
end

function M.fill_order(apps, stem)
	local list, num = {}, {}
	for i, a in ipairs(apps) do
		list[i] = a
		num[a] = M.number(a.name, stem) or false	-- each name once
	end
	table.sort(list, function(a, b)
		local na, nb = num[a], num[b]
		if na and nb and na ~= nb then return na < nb end
		if (not na) ~= (not nb) then return na ~= false end
		return a.name < b.name
	end)
	return list
end

function M.next_name(apps, stem, known_max)
	local max = 0
	if math.type(known_max) == "integer" and known_max > 0 then
		max = known_max
	end
	for _, a in ipairs(apps) do
		local n = M.number(a.name, stem)
		if n and n > max then max = n end
	end
	return stem .. tostring(max + 1)
end

return M
