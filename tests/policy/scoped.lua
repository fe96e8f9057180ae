-- scoped.lua - a partition policy whose P.scope returns, by customer id,
-- a good selector table or one of the mistakes the agent must refuse.
local P = { name = "scoped" }

function P.scope(c, params)
	if c.id == "noindex" then
		return { apps = { labels = { dedicated = false } } }
	elseif c.id == "toolong" then
		return { apps = { stem = "a-", limit = 999 } }
	elseif c.id == "string" then
		return "everything"
	elseif c.id == "raise" then
		error("scope failed on purpose")
	elseif c.id == "loop" then
		while true do end
	end
	return { apps = { stem = "a-", labels = { region = c.labels.region },
	    room = params.room or 2, limit = 2 },
	    workloads = { labels = { region = c.labels.region } } }
end

function P.decide(input, params)
	local a = input.apps[1]
	return { app = a and a.name or ("a-" .. (input.scope.max_number + 1)),
	    federate = { input.workloads[1].name } }
end

return P
