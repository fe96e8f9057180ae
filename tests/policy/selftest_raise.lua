-- A partition policy whose selftest raises.
local P = { name = "selftest-raises" }

function P.decide(input, params)
	return { app = "a", federate = { "wl-1" } }
end

function P.selftest(params)
	assert(P.decide({}, params).app == "b", "decide should return b")
end

return P
