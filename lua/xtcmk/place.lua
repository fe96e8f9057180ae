--[[
xtcmk.place - stable placement by rendezvous (highest random weight)
hashing.

Every (key, node) pair gets a pseudo-random weight from a hash that is
defined in pure Lua (the sandbox computes it in C, xtcmk.fnv1a32) and is
the same on every host and every Lua build;
a key goes to the nodes with the highest weights.  Adding or removing a
node moves only the keys that node wins or held, so placements stay put
as the fleet changes.

  place.fnv1a32(s)          -> FNV-1a 32-bit hash of string s (0..2^32-1)
  place.weight(key, node)   -> weight of node for key (0..2^32-1)
  place.rank(key, nodes)    -> a new list of nodes, highest weight first
  place.pick(key, nodes, n) -> the first n of rank(key, nodes)
  place.one(key, nodes)     -> the single best node, or nil if none

`nodes` holds strings, or tables with a string field `name`.  Ties are
broken by name, so the order is total and reproducible.
]]

local M = {}

local MASK = 0xffffffff

-- The agent's sandbox computes the same hash in C (xtcmk.fnv1a32); the
-- loop below is its definition, used where that is absent.
local native = type(xtcmk) == "table" and xtcmk.fnv1a32 or nil

function M.fnv1a32(s)
	if native ~= nil then
		return native(s)
	end
	local h = 2166136261
	for i = 1, #s do
		h = h ~ string.byte(s, i)
		h = (h * 16777619) & MASK
	end
	return h
end

-- murmur3's finaliser: spreads FNV's low-entropy high bits.  Integer
-- multiplication wraps in Lua 5.4, and the mask keeps the low 32 bits.
local function mix(h)
	h = h ~ (h >> 16)
	h = (h * 0x85ebca6b) & MASK
	h = h ~ (h >> 13)
	h = (h * 0xc2b2ae35) & MASK
	h = h ~ (h >> 16)
	return h
end

local function name_of(node)
	if type(node) == "table" then
		return node.name
	end
	return node
end

function M.weight(key, node)
	return mix(M.fnv1a32(tostring(key) .. "\0" .. name_of(node)))
end

-- The agent's sandbox orders the names in C (xtcmk.rank, the same
-- order); elsewhere they are sorted by one string per node (the weight
-- inverted as 8 hex digits, then the name, then the position), so
-- table.sort compares in C: highest weight first, ties by name.
local native_rank = type(xtcmk) == "table" and xtcmk.rank or nil

function M.rank(key, nodes)
	if native_rank ~= nil then
		local names, list = {}, {}
		for i, node in ipairs(nodes) do
			local name = name_of(node)
			if type(name) == "number" then name = tostring(name) end
			if type(name) ~= "string" then
				error("place.rank: node " .. i .. " is neither a " ..
				    "string nor a table with a string field name", 2)
			end
			names[i] = name
		end
		for i, pos in ipairs(native_rank(tostring(key), names)) do
			list[i] = nodes[pos]
		end
		return list
	end
	local prefix = tostring(key) .. "\0"
	local keys, by = {}, {}
	for i, node in ipairs(nodes) do
		local name = name_of(node)
		local k = string.format("%08x", MASK -
		    mix(M.fnv1a32(prefix .. name))) .. "\0" .. name .. "\0" .. i
		keys[i] = k
		by[k] = node
	end
	table.sort(keys)
	local list = {}
	for i, k in ipairs(keys) do
		list[i] = by[k]
	end
	return list
end

function M.pick(key, nodes, n)
	local ranked, out = M.rank(key, nodes), {}
	for i = 1, math.min(n, #ranked) do
		out[i] = ranked[i]
	end
	return out
end

function M.one(key, nodes)
	return M.rank(key, nodes)[1]
end

return M
