-- A partition policy whose selftest reports a failure.
local P = { name = "selftest-fails" }

function P.decide(input, params)
	return { app = "a", federate = { "wl-1" } }
end

function P.selftest(params)
	return false, "expected app b"
end

return P
