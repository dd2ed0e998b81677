-- bucketd's take, run atomically in Redis: the read-modify-write of every
-- limit of one bucket, in the fixed-point integer arithmetic of package
-- bucket. Lua numbers are doubles, exact to 2^53: instants are kept as
-- nanoseconds from the current second (exact within +-92 days), and each
-- rate is reduced by gcd(tokens, per) so that capacity*per stays within
-- 2^52 (the Go side refuses larger limits). See arith.go.
--
-- KEYS[1] the bucket's hash, KEYS[2] the key's namespace index (a set).
-- ARGV: mode ("take", "set", "peek"), now (Unix ns, or "" for Redis TIME),
-- cost (micro-tokens; negative gives back; the tokens for "set"), carry
-- ("t" tokens, "c" time), k (number of limits; 0 for a peek under the
-- stored limits), the policy field, the namespace id, then k limit specs.
local BIG = 4503599627370496 -- 2^52
local mode, nowArg = ARGV[1], ARGV[2]
local cost, carry, k = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local policy, nsid = ARGV[6], ARGV[7]

local osec, t
local function splitns(s)
  local l = #s
  if l <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, l - 9)), tonumber(string.sub(s, l - 8))
end
if nowArg == '' then
  local tm = redis.call('TIME')
  osec, t = tonumber(tm[1]), tonumber(tm[2]) * 1000
else
  osec, t = splitns(nowArg)
end
-- rel turns an absolute instant (decimal ns) into ns from osec, clamped.
local function rel(s)
  local sec, ns = splitns(s)
  local ds = sec - osec
  if ds > 8000000 then return 8000000000000000 end
  if ds < -8000000 then return -8000000000000000 end
  return ds * 1000000000 + ns
end
local function abs(off)
  local q = math.floor(off / 1000000000)
  local sec, ns = osec + q, off - q * 1000000000
  if sec <= 0 then return string.format('%d', sec * 1000000000 + ns) end
  return string.format('%d%09d', sec, ns)
end
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q, r = q - 1, r + b elseif r >= b then q, r = q + 1, r - b end
  return q, r
end
local function fmt(v) -- micro-tokens as a decimal, as bucket.Tokens.String
  local w, f = divmod(v, 1000000)
  if f == 0 then return string.format('%d', w) end
  local s = string.gsub(string.format('%06d', f), '0+$', '')
  return string.format('%d', w) .. '.' .. s
end

-- A limit's spec is "capacity:n:p:tokens:per:rate": the capacity in
-- micro-tokens, the rate reduced (n micro-tokens every p ns, coprime), the
-- rate as given (micro-tokens, ns) and as text.
local function parseSpec(spec)
  local c, n, p, rate = string.match(spec, '^(%d+):(%d+):(%d+):%d+:%d+:(.*)$')
  return {C = tonumber(c), n = tonumber(n), p = tonumber(p), spec = spec, rate = rate}
end

-- The maths of package bucket, in reduced units: a state is {T, A, R}.
local function refill(L, s)
  local T, A, R = s[1], s[2], s[3]
  if T >= L.C then return {L.C, math.max(A, t), 0} end
  if T < 0 then T, R = 0, 0 end
  if R >= L.p then R = 0 end
  if t <= A then return {T, A, R} end
  local el = t - A
  local need = (L.C - T) * L.p
  if el >= need then return {L.C, t, 0} end
  local earned = el * L.n + R
  if earned >= need then return {L.C, t, 0} end
  local q, r = divmod(earned, L.p)
  return {T + q, t, r}
end
local function dur(L, need, rem)
  if need <= 0 then return 0 end
  local q, r = divmod(need * L.p - math.min(rem, L.p - 1), L.n)
  if r ~= 0 then q = q + 1 end
  return q
end
local function behindOf(r)
  if t < r[2] then return r[2] - t end
  return 0
end
local function untilFull(L, r, behind)
  if r[1] >= L.C then return 0 end
  return behind + dur(L, L.C - r[1], r[3])
end
-- take1 returns the state after a take of c, and the decision
-- {allowed, limit, remaining, retry (-1 never), reset}.
local function take1(L, s, c)
  local r = refill(L, s)
  local behind = behindOf(r)
  local d = {0, L.C, r[1], 0, 0}
  if c > L.C then
    d[4], d[5] = -1, untilFull(L, r, behind)
    return s, d
  elseif c > r[1] then
    d[4], d[5] = behind + dur(L, c - r[1], r[3]), untilFull(L, r, behind)
    return s, d
  end
  d[1] = 1
  if c <= 0 then
    d[5] = untilFull(L, r, behind)
    return s, d
  end
  r[1] = r[1] - c
  d[3], d[5] = r[1], untilFull(L, r, behind)
  return r, d
end
local function give1(L, s, n)
  if n <= 0 then return s end
  local r = refill(L, s)
  if r[1] > L.C - n then return {L.C, r[2], 0} end
  r[1] = r[1] + n
  return r
end
local function untilFullState(L, d)
  if d <= 0 then return {L.C, t, 0} end
  local x = d * L.n
  if x <= BIG then
    local q, r = divmod(x, L.p)
    if r ~= 0 then q = q + 1 end
    if q <= L.C then
      local rem = 0
      if r ~= 0 then rem = L.p - r end
      return {L.C - q, t, rem}
    end
  end
  return {0, t + d - dur(L, L.C, 0), 0}
end
-- policyTake is bucket.Policy.Take: s is updated in place.
local function policyTake(ls, s, c)
  local each, allowed = {}, 1
  if #ls == 1 then
    local ns, d = take1(ls[1], s[1], c)
    s[1] = ns
    return d, {d}
  end
  for i, L in ipairs(ls) do
    local _, d = take1(L, s[i], c)
    if d[1] == 0 then allowed = 0 break end
  end
  local out = {allowed, 0, 0, 0, 0}
  for i, L in ipairs(ls) do
    local d, ns
    if allowed == 1 then
      ns, d = take1(L, s[i], c)
      s[i] = ns
    else
      ns, d = take1(L, s[i], c)
      if d[1] == 1 then ns, d = take1(L, s[i], 0) end
    end
    each[i] = d
    if i == 1 or d[3] < out[3] then out[2], out[3] = d[2], d[3] end
    if d[4] == -1 or out[4] == -1 then out[4] = -1 else out[4] = math.max(out[4], d[4]) end
    out[5] = math.max(out[5], d[5])
  end
  return out, each
end

local h = redis.call('HGETALL', KEYS[1])
local stored = {}
for i = 1, #h, 2 do stored[h[i]] = h[i + 1] end
local live = stored['full_at'] ~= nil and rel(stored['full_at']) > t

local ls = {}
if k == 0 then
  if not live then return {0} end
  for i = 1, tonumber(stored['limits']) do ls[i] = parseSpec(stored['limit.' .. i]) end
else
  for i = 1, k do ls[i] = parseSpec(ARGV[7 + i]) end
end

local s = {}
for i, L in ipairs(ls) do
  if mode == 'set' then
    s[i] = {math.min(math.max(cost, 0), L.C), t, 0}
  elseif not live or stored['limit.' .. i] == nil then
    s[i] = {L.C, t, 0}
  else
    local T, A, R = string.match(stored['state.' .. i], '^(%-?%d+) (%-?%d+) (%d+)$')
    local st = {tonumber(T), rel(A), tonumber(R)}
    local from = stored['limit.' .. i]
    if from ~= L.spec then
      local F = parseSpec(from)
      if carry == 'c' then
        local r = refill(F, st)
        st = untilFullState(L, untilFull(F, r, behindOf(r)))
      else
        st[3] = 0 -- a remainder in another rate's units is dropped
      end
    end
    s[i] = st
  end
end

local out, each
if mode == 'take' and cost < 0 then
  for i, L in ipairs(ls) do s[i] = give1(L, s[i], -cost) end
  out, each = policyTake(ls, s, 0)
elseif mode == 'take' then
  out, each = policyTake(ls, s, cost)
else
  out, each = policyTake(ls, s, 0)
end

local function reply()
  local r = {1, out[1], out[2], out[3], out[4], out[5], #ls}
  for i = 1, #ls do
    for j = 1, 5 do r[#r + 1] = each[i][j] end
  end
  r[#r + 1] = stored['updated_at'] or ''
  for i = 1, #ls do r[#r + 1] = ls[i].spec end
  return r
end

if mode == 'peek' then
  if not live or out[5] == 0 then return {0} end
  return reply()
end
if mode == 'take' and (cost == 0 or (cost > 0 and out[1] == 0) or (cost < 0 and not live)) then
  return reply()
end
if out[5] == 0 then -- full: no bucket
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], nsid)
  return reply()
end

local shown = 1
for i = 2, #ls do if each[i][3] < each[shown][3] then shown = i end end
local fields = {
  'tokens', fmt(each[shown][3]),
  'capacity', fmt(ls[shown].C),
  'rate', ls[shown].rate,
  'updated_at_ms', string.format('%d', osec * 1000 + math.floor(t / 1000000)),
  'full_in_ms', string.format('%d', math.ceil(each[shown][5] / 1000000)),
  'policy', policy,
  'limits', #ls,
  'updated_at', abs(t),
  'full_at', abs(t + out[5]),
}
for i = 1, #ls do
  fields[#fields + 1] = 'limit.' .. i
  fields[#fields + 1] = ls[i].spec
  fields[#fields + 1] = 'state.' .. i
  fields[#fields + 1] = string.format('%d %s %d', s[i][1], abs(s[i][2]), s[i][3])
end
local old = tonumber(stored['limits'] or '0')
for i = #ls + 1, old do
  redis.call('HDEL', KEYS[1], 'limit.' .. i, 'state.' .. i)
end
redis.call('HSET', KEYS[1], unpack(fields))
local ms = math.ceil(out[5] / 1000000)
-- Under a given instant (the test seam), Redis's own clock, which runs
-- the expiry, is not the buckets' clock: expire an hour late, so that reads
-- (which check full_at) decide. TIME needs no slack.
if nowArg ~= '' then ms = ms + 3600000 end
redis.call('PEXPIRE', KEYS[1], ms)
redis.call('SADD', KEYS[2], nsid)
if redis.call('PTTL', KEYS[2]) < ms then redis.call('PEXPIRE', KEYS[2], ms) end
stored['updated_at'] = abs(t)
return reply()
