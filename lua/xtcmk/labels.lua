--[[
xtcmk.labels - matching objects by their labels.

Labels are a table of string keys and string values, e.g.
{ region = "westeurope", tier = "dedicated" }.  A selector is a table
whose values say what each label must be:

  "value"          the label equals "value"
  { "a", "b" }     the label is one of the listed values
  true             the label is present (any value)
  false            the label is absent

  labels.match(labels, selector) -> true if every selector entry holds
                                    (a nil or empty selector matches all)
  labels.select(list, selector)  -> the items of list (tables with a
                                    `labels` field) that match, in order
  labels.get(labels, key, def)   -> labels[key], or def when absent
  labels.names(list)             -> the `name` fields of list, sorted
]]

local M = {}

local function one_of(value, choices)
	for _, c in ipairs(choices) do
		if value == c then
			return true
		end
	end
	return false
end

function M.match(labels, selector)
	labels = labels or {}
	for key, want in pairs(selector or {}) do
		local have = labels[key]
		if want == true then
			if have == nil then return false end
		elseif want == false then
			if have ~= nil then return false end
		elseif type(want) == "table" then
			if have == nil or not one_of(have, want) then
				return false
			end
		elseif have ~= want then
			return false
		end
	end
	return true
end

function M.select(list, selector)
	local out = {}
	for _, item in ipairs(list or {}) do
		if M.match(item.labels, selector) then
			out[#out + 1] = item
		end
	end
	return out
end

function M.get(labels, key, def)
	if labels == nil or labels[key] == nil then
		return def
	end
	return labels[key]
end

function M.names(list)
	local out = {}
	for i, item in ipairs(list or {}) do
		out[i] = item.name
	end
	table.sort(out)
	return out
end

return M
