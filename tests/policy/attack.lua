--[[
attack.lua - a partition policy that attacks the policy workers on
request.  test_isolation.c installs it as partition.lua next to the
default role and versioning policies; the customer's label `attack`
picks the attack.  Without one it answers app "atk-1", or "leaked" when
it can see anything an earlier call wrote.
]]

local labels = require("xtcmk.labels")

local P = { name = "attack" }
local state = {}

local function leaked()
	local ok, v = pcall(function() return ("").LEAK end)
	return LEAK ~= nil or state.leak ~= nil or labels.LEAK ~= nil or
	    string.LEAK ~= nil or table.LEAK ~= nil or (ok and v ~= nil)
end

local function benign()
	return { app = leaked() and "leaked" or "atk-1",
	    federate = { "wl-eu-1" }, reason = "benign" }
end

local attacks = {
	xpcall = function()
		xpcall(error, function() while true do end end)
	end,
	xpcall_nested = function()
		xpcall(function() while true do end end,
		    function() while true do end end)
	end,
	pattern_b = function()
		return string.rep("a", 131072):find("%bab")
	end,
	long_needle = function()
		local hay = string.rep("a", 8 << 20)
		return hay:find(string.rep("a", 65535) .. "b", 1, true)
	end,
	match_init = function()
		return string.match(string.rep("a", 5000), "a*a*a*b", 1, true)
	end,
	question = function()
		return string.rep("a", 40):find(string.rep("a?", 40) ..
		    string.rep("a", 40) .. "b")
	end,
	move = function()
		return table.move({}, 1, math.maxinteger, 2)
	end,
	sort_loop = function()
		local t = {}
		for i = 1, 100000 do t[i] = (i * 7919) % 100003 end
		while true do table.sort(t) end
	end,
	nul_app = function()
		return { app = "atk\0evil", federate = { "wl-eu-1" } }
	end,
	nul_label = function()
		return { app = "atk-2", app_labels = { k = "a\0b" },
		    federate = { "wl-eu-1" } }
	end,
	bad_utf8_key = function()
		return { app = "atk-2", app_labels = { ["\xff"] = "x" },
		    federate = { "wl-eu-1" } }
	end,
	-- A benign partition; the role policy (test_isolation.c's copy)
	-- refuses it, with the versioning call sent ahead in its batch.
	role_err = function()
		return { app = "atk-1", federate = { "wl-eu-1" },
		    reason = "benign" }
	end,
	-- Write everything a call can reach, then answer normally.
	write = function()
		LEAK = true
		state.leak = true
		labels.LEAK = true
		string.LEAK = true
		table.LEAK = true
		pcall(function() ("").LEAK = true end)
		pcall(function() getmetatable("").__index.LEAK = true end)
		return { app = "atk-1", federate = { "wl-eu-1" },
		    reason = "wrote" }
	end,
}

function P.decide(input, params)
	local a = (input.customer.labels or {}).attack
	if a ~= nil then
		local f = attacks[a] or error("unknown attack " .. a)
		local r = f()
		if type(r) == "table" then return r end
		error("attack " .. a .. " returned")
	end
	return benign()
end

return P
