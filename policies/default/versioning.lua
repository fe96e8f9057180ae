--[[
versioning.lua - the default key versioning policy.

Input (input):
  customer = { id, tenant, key_uri, vault_auth, kinds = { ... },
               labels = { key_mode = "pinned"?, ... } }
  key      = { uri, service = "vault"|"mhsm"|"local", name,
               version (absent when the URI is versionless) }
Params (params), optional:
  revocation_check   seconds between key state checks (300)
  refresh            seconds between looks for a new key version (3600)
  grace              seconds an old version stays enabled (86400; at
                     least 86400 for Azure Storage customers)
  cache_ttl          lifetime of a cached DEK in seconds (300)
  cache_max          0 disables DEK caching for every customer (10000)
  host_cache_ttl     seconds libxtcmk may keep a DEK in the host process
                     (absent: 0, never)
Output:
  { mode = "auto"|"pinned", version = "<32 hex>" (pinned only),
    refresh = s, revocation_check = s, grace = s, cache_ttl = s,
    cache_max = n, reason = "text" }
  refresh           how often the agent looks for a new key version
  revocation_check  bound on how long a disabled key keeps working
  grace             how long an old version must stay enabled after
                    rotation (Azure Storage checks once a day: >= 86400)
  cache_ttl         lifetime of an unwrapped DEK in the agent's cache
  cache_max         entries in the DEK cache
The agent refuses pinned keys for Cosmos DB and a grace under a day for
Storage, and fills absent fields with the defaults above.

Rules: versionless (auto) unless the customer is labelled
key_mode=pinned and the key URI names a version.
]]

local P = { name = "default-versioning" }

function P.decide(input, params)
	params = params or {}
	local c = input.customer or error("input.customer is missing")
	local key = input.key or error("input.key is missing")
	local r = {
		mode = "auto",
		refresh = params.refresh or 3600,
		revocation_check = params.revocation_check or 300,
		grace = params.grace or 86400,
		cache_ttl = params.cache_ttl or 300,
		cache_max = params.cache_max or 10000,
		host_cache_ttl = params.host_cache_ttl,
		reason = "versionless key: follow rotations",
	}
	for _, kind in ipairs(c.kinds or {}) do
		if (kind == "storage" or kind == "storage-existing") and
		    r.grace < 86400 then
			-- Storage looks for new versions once a day.
			r.grace = 86400
		end
	end
	if c.labels and c.labels.key_mode == "pinned" then
		if key.version then
			r.mode = "pinned"
			r.version = key.version
			r.reason = "customer asked for a pinned key version"
		else
			r.reason = "key_mode=pinned but the key URI has no " ..
			    "version; following rotations"
		end
	end
	return r
end

function P.selftest(params)
	local r = P.decide({ customer = { labels = {} },
	    key = { name = "k", service = "vault" } }, params)
	if r.mode ~= "auto" then return false, "expected auto" end
	r = P.decide({ customer = { labels = { key_mode = "pinned" } },
	    key = { name = "k", version = string.rep("a", 32) } }, params)
	if r.mode ~= "pinned" then return false, "expected pinned" end
	return true
end

return P
