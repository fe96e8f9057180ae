--[[
hostile.lua - a partition policy that attacks the sandbox on request.
test_policy.c installs it as partition.lua next to the default role and
versioning policies and picks the attack with input.attack.
]]

local P = { name = "hostile" }

local function probe()
	local function try(f)
		local ok, v = pcall(f)
		return ok and v ~= nil
	end
	return {
		os = os ~= nil,
		io = io ~= nil,
		load = load ~= nil,
		loadfile = loadfile ~= nil,
		dofile = dofile ~= nil,
		package = package ~= nil,
		debug = debug ~= nil,
		getmetatable = getmetatable ~= nil,
		setmetatable = setmetatable ~= nil,
		collectgarbage = collectgarbage ~= nil,
		print = print ~= nil,
		string_dump = string.dump ~= nil,
		method_dump = try(function() return ("").dump end),
		meta_dump = try(function() return getmetatable("").__index.dump end),
		os_execute = try(function() return os.execute("true") end),
		io_open = try(function() return io.open("/etc/passwd") end),
		require_os = try(function() return require("os") end),
		require_io = try(function() return require("io") end),
		require_dotdot = try(function() return require("../x") end),
		require_abs = try(function() return require("/etc/passwd") end),
		require_upper = try(function() return require("Xtcmk.place") end),
		require_ok = try(function() return require("xtcmk.place") end),
		rawset_G = try(function() return rawset end),
		-- changing the string library copy must not leak into methods
		string_patch = (function()
			string.upper = function() return "pwned" end
			return ("a"):upper() == "pwned"
		end)(),
	}
end

local function recurse(n)
	return recurse(n + 1) + 1
end

function P.decide(input, params)
	local a = input.attack
	if a == "loop" then
		while true do end
	elseif a == "spin" then
		-- bounded work: input.n iterations, then a result
		local x = 0
		for i = 1, input.n do x = x + i % 7 end
		return { app = "spun", federate = { "wl-1" }, x = x }
	elseif a == "pcall_loop" then
		while true do pcall(function() while true do end end) end
	elseif a == "pcall_once" then
		pcall(function() while true do end end)
		return { app = "survived", federate = { "wl-1" } }
	elseif a == "membomb" then
		local t = {}
		local i = 0
		while true do
			i = i + 1
			t[i] = string.rep("x", 4096) .. i
		end
	elseif a == "pcall_membomb" then
		local ok = pcall(function()
			local t = {}
			for i = 1, 1e9 do t[i] = string.rep("y", 4096) .. i end
		end)
		return { app = "survived", federate = { "wl-1" }, ok = ok }
	elseif a == "rep" then
		return { s = string.rep("x", 1e9) }
	elseif a == "pcall_rep" then
		local ok = pcall(string.rep, "x", 1e9)
		return { app = "survived", federate = { "wl-1" }, ok = ok }
	elseif a == "concat" then
		local s = "x"
		while true do s = s .. s end
	elseif a == "recurse" then
		return { n = recurse(1) }
	elseif a == "probe" then
		return { probe = probe() }
	elseif a == "ret_string" then
		return "wl-1"
	elseif a == "ret_nil" then
		return nil
	elseif a == "ret_function" then
		return { app = "a", federate = { "wl-1", "wl-2", function() end } }
	elseif a == "ret_mixed" then
		return { app = "a", federate = { "wl-1", x = 1 } }
	elseif a == "ret_holes" then
		return { app = "a", federate = { [1] = "wl-1", [3] = "wl-3" } }
	elseif a == "ret_nan" then
		return { app = "a", n = 0 / 0 }
	elseif a == "ret_cycle" then
		local t = {}
		t.self = t
		return t
	elseif a == "ret_longstring" then
		return { app = string.rep("a", 5000) }
	elseif a == "raise" then
		error("policy refuses on purpose")
	elseif a == "raise_table" then
		error({ code = 1 })
	elseif a == "pattern" then
		-- catastrophic backtracking: the hook cannot run inside C
		return { i = string.find(string.rep("a", 100000), ".-.-.-b") }
	elseif a == "pattern_method" then
		return { i = (string.rep("x", 5000)):find("x*x*y") }
	elseif a == "pattern_ok" then
		local k, v = ("region=eu"):match("^(%w+)=(%w+)$")
		local s = ("a-b-c"):gsub("%-", "_")
		local i = string.find(string.rep("a", 100000) .. "b", "b", 1, true)
		local n = 0
		for _ in ("a,b,c"):gmatch("[^,]+") do n = n + 1 end
		return { app = k .. v .. s, federate = { "wl-1" }, i = i, n = n }
	elseif a == "globals" then
		counter = (counter or 0) + 1
		return { app = "g", n = counter }
	end
	return { app = "good", federate = { "wl-1" }, echo = input,
	    params = params }
end

return P
