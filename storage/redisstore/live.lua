-- The namespaces of one key whose bucket is not full, for Namespaces,
-- Scan and Len, and Reset: KEYS[1] the key's namespace index (a set);
-- ARGV: now (Unix ns, or "" for Redis TIME), the buckets' key prefix, and
-- for a reset the namespace id to remove ("*" for all) or "" for none.
-- Members whose bucket is gone (expired) are dropped from the index. It
-- returns the ids of the buckets that were not full (before a reset).
local BIG = 4503599627370496
local function splitns(s)
  local l = #s
  if l <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, l - 9)), tonumber(string.sub(s, l - 8))
end
local osec, t
if ARGV[1] == '' then
  local tm = redis.call('TIME')
  osec, t = tonumber(tm[1]), tonumber(tm[2]) * 1000
else
  osec, t = splitns(ARGV[1])
end
local function rel(s)
  local sec, ns = splitns(s)
  local ds = sec - osec
  if ds > 8000000 then return 8000000000000000 end
  if ds < -8000000 then return -8000000000000000 end
  return ds * 1000000000 + ns
end
local reset = ARGV[3]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. id
  local at = redis.call('HGET', key, 'full_at')
  if not at then
    redis.call('SREM', KEYS[1], id)
  else
    if rel(at) > t and (reset == '' or reset == '*' or reset == id) then out[#out + 1] = id end
    if reset == '*' or reset == id then
      redis.call('DEL', key)
      redis.call('SREM', KEYS[1], id)
    end
  end
end
return out
