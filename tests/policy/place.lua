--[[
place.lua - a partition policy that checks xtcmk.place against the
pure-Lua definitions it documents: fnv1a32 (computed by the sandbox in
C) must equal the byte loop, and rank (which the sandbox orders in C,
xtcmk.rank) must give the order of highest weight first, ties by name,
keeping every node (duplicates too).  Any difference raises; test_policy
runs it.
]]
local place = require("xtcmk.place")

local P = { name = "place-check" }

local MASK = 0xffffffff

local function fnv_ref(s)
	local h = 2166136261
	for i = 1, #s do
		h = h ~ string.byte(s, i)
		h = (h * 16777619) & MASK
	end
	return h
end

local function mix(h)
	h = h ~ (h >> 16)
	h = (h * 0x85ebca6b) & MASK
	h = h ~ (h >> 13)
	h = (h * 0xc2b2ae35) & MASK
	h = h ~ (h >> 16)
	return h
end

local function name_of(n)
	if type(n) == "table" then return n.name end
	return n
end

local function rank_ref(key, nodes)
	local list, w = {}, {}
	for i, node in ipairs(nodes) do
		list[i] = node
		w[name_of(node)] = mix(fnv_ref(tostring(key) .. "\0" ..
		    name_of(node)))
	end
	table.sort(list, function(a, b)
		local na, nb = name_of(a), name_of(b)
		if w[na] ~= w[nb] then return w[na] > w[nb] end
		return na < nb
	end)
	return list
end

local function check(cond, what)
	if not cond then error("place: " .. what, 2) end
end

function P.decide(input, params)
	check(place.fnv1a32("") == 2166136261, "fnv1a32 of \"\"")
	check(place.fnv1a32("a") == 0xe40c292c, "fnv1a32 of \"a\"")
	local samples = { "", "a", "wl-westeurope-01", "x\0y", "\255\128\1",
	    string.rep("long-", 200) }
	for i = 1, 300 do
		samples[#samples + 1] = "n" .. i .. string.rep("z", i % 37)
	end
	for _, s in ipairs(samples) do
		check(place.fnv1a32(s) == fnv_ref(s), "fnv1a32 of " .. s)
		check(place.weight("k", s) == mix(fnv_ref("k\0" .. s)),
		    "weight of " .. s)
	end
	check(not pcall(place.fnv1a32, 12), "fnv1a32 takes strings only")
	for k = 1, 40 do
		local nodes = {}
		for i = 1, (k % 30) + 1 do
			nodes[i] = (i % 3 == 0) and { name = "wl-" .. i } or
			    "wl-" .. i
		end
		nodes[#nodes + 1] = "wl-1"		-- a duplicate name
		local got, want = place.rank("app-" .. k, nodes),
		    rank_ref("app-" .. k, nodes)
		check(#got == #want, "rank keeps every node")
		for i = 1, #want do
			check(name_of(got[i]) == name_of(want[i]),
			    "rank order at " .. i .. " for key app-" .. k)
		end
		local top = place.pick("app-" .. k, nodes, 5)
		for i = 1, #top do
			check(top[i] == got[i], "pick is the head of rank")
		end
	end
	-- xtcmk.rank (C) gives positions in rank order; bad names raise.
	local order = xtcmk.rank("k", { "b", "a", "b" })
	check(#order == 3, "xtcmk.rank keeps every name")
	local ref = rank_ref("k", { "b", "a", "b" })
	for i = 1, 3 do
		check(({ "b", "a", "b" })[order[i]] == ref[i], "xtcmk.rank order")
	end
	check(not pcall(xtcmk.rank, "k", { "a", 7 }), "xtcmk.rank takes strings")
	check(not pcall(place.rank, "k", { { nope = 1 } }),
	    "rank refuses a node without a name")
	local nums = place.rank("k", { 10, 2.5, "x" })
	local want = rank_ref("k", { "10", "2.5", "x" })
	for i = 1, 3 do
		check(tostring(nums[i]) == want[i], "rank of number names")
	end
	return { app = "ok", federate = { "wl-1" }, reason = "place checked" }
end

return P
