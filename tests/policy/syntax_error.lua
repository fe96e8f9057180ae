-- A partition policy with a syntax error on line 5.
local P = { name = "broken" }

function P.decide(input, params)
	return { app = "a" federate = { "wl-1" } }
end

return P
