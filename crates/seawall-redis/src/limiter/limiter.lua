-- One target's limiter, shared by every replica: per dimension (requests, tokens, input
-- tokens, output tokens) a GCRA cell for the configured limit and the provider's tightest
-- report with the units admitted since then that no report has counted yet ("in flight",
-- summed over every replica). Times are microseconds on the Redis server's clock, the only
-- clock the replicas share.
--
-- KEYS[1]  the limiter's hash
-- ARGV[1]  op: reserve | lease | settle | sync | flush
-- ARGV[2]  1 when the provider's capacity comes back continuously, 0 at its reset
-- ARGV[3]  how long a provider window lasts after its reset with no new report (µs)
-- ARGV[4 + 2(i-1)], ARGV[5 + 2(i-1)]  dimension i's configured limit and period (µs); 0 = none
-- reserve: ARGV[12..15] units
-- lease:   ARGV[12..15] units, ARGV[16] at most this many more calls of these units to
--          reserve with it, for the replica to admit without a round trip
-- settle:  ARGV[12..15] debit, ARGV[16..19] refund, ARGV[20..23] release
-- sync:    ARGV[12..15] counted; then per dimension ARGV[16 + 4(i-1)..]: has report (0/1),
--          remaining, limit (-1 unknown), reset after (µs, -1 unknown)
-- flush:   a settle's twelve arguments, then a sync's report from ARGV[24 + 4(i-1)]: the
--          writes one replica gathered over a few milliseconds, in one call
-- Returns {admitted (1/0), wait µs, now µs, then per dimension tat, left, limit, reset,
-- from, in flight}; a lease adds the number of calls' units reserved beyond the first.

local key = KEYS[1]
local op = ARGV[1]
local continuous = ARGV[2] == '1'
local period = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local INF = 4503599627370496
-- Reset times in the headers are rounded; count the window over a little later.
local ROUNDING = 1000
-- Each dimension is one field, "tat,left,limit,reset,from,flight" (integers), so that a
-- call reads and writes 4 fields, not 24.
local NAMES = {'tat', 'left', 'limit', 'reset', 'from', 'flight'}
local PATTERN = '^(-?%d+),(-?%d+),(-?%d+),(-?%d+),(-?%d+),(-?%d+)$'

local stored = redis.call('HMGET', key, 'd1', 'd2', 'd3', 'd4')
local dims = {}
for i = 1, 4 do
  local d = {tat = 0, left = 0, limit = -1, reset = 0, from = 0, flight = 0,
             rate = tonumber(ARGV[2 + 2 * i]), per = tonumber(ARGV[3 + 2 * i])}
  if stored[i] then
    local v = {string.match(stored[i], PATTERN)}
    for j, name in ipairs(NAMES) do d[name] = tonumber(v[j]) or d[name] end
  end
  dims[i] = d
end

local function cost(d, units)
  if units == 0 then return 0 end
  if d.rate == 0 then return INF end
  return math.ceil(units * d.per / d.rate)
end

-- A window whose reset passed with no new report: the whole limit again, for another
-- period; with no known limit, no ceiling until the next report.
local function roll(d)
  if d.reset > 0 and now >= d.reset then
    if d.limit >= 0 then
      d.left = d.limit
      d.from = d.reset
      d.reset = d.reset + period * (math.floor((now - d.reset) / period) + 1)
    else
      d.reset = 0
    end
  end
end

local function available(d)
  if d.reset == 0 then return INF end
  if continuous and d.limit > d.left and d.reset > d.from then
    local grown = math.floor((d.limit - d.left) * (now - d.from) / (d.reset - d.from))
    return math.min(d.limit, d.left + grown)
  end
  return d.left
end

local function provider_wait(d, need)
  if continuous and d.limit > d.left and need <= d.limit and d.reset > d.from then
    local at = d.from + math.ceil((need - d.left) * (d.reset - d.from) / (d.limit - d.left))
    return math.max(1, at - now)
  end
  return math.max(1, d.reset - now + ROUNDING)
end

for i = 1, 4 do roll(dims[i]) end

-- The wait before `units` more (per dimension) fit, 0 when they fit now.
local function wait_for(units)
  local wait = 0
  for i = 1, 4 do
    local d, u = dims[i], units[i]
    if u > 0 then
      if d.per > 0 then
        local earliest = math.max(d.tat, now) + cost(d, u) - d.per
        if earliest > now then wait = math.max(wait, earliest - now) end
      end
      local need = d.flight + u
      if need > available(d) then wait = math.max(wait, provider_wait(d, need)) end
    end
  end
  return wait
end

local function take(units)
  for i = 1, 4 do
    local d, u = dims[i], units[i]
    if u > 0 then
      if d.per > 0 then d.tat = math.max(d.tat, now) + cost(d, u) end
      d.flight = d.flight + u
    end
  end
end

local function settle(at)
  for i = 1, 4 do
    local d = dims[i]
    local debit, refund, release =
      tonumber(ARGV[at + i]), tonumber(ARGV[at + 4 + i]), tonumber(ARGV[at + 8 + i])
    if d.per > 0 then
      if debit > 0 then d.tat = math.max(d.tat, now) + cost(d, debit) end
      if refund > 0 then d.tat = math.max(0, d.tat - cost(d, refund)) end
    end
    d.flight = math.max(0, d.flight - release)
  end
end

-- Takes the reports from ARGV[at + 4(i-1)..] per dimension.
local function reports(at)
  for i = 1, 4 do
    local d = dims[i]
    local b = at + 4 * (i - 1)
    if ARGV[b] == '1' then
      local remaining, limit, after =
        tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
      if after < 0 then after = period end
      local reset = now + after + ROUNDING
      -- Reports can come back in another order than the provider wrote them: one replaces
      -- the current report if it leaves less room now, or belongs to a later window.
      if d.reset == 0 or reset > d.reset + 1000000 or remaining <= available(d) then
        d.left = remaining
        if limit >= 0 then d.limit = limit end
        d.reset = reset
        d.from = now
      end
    elseif tonumber(ARGV[b + 2]) >= 0 then
      d.limit = tonumber(ARGV[b + 2])
    end
  end
end

local admitted, wait, leased = 1, 0, nil
if op == 'reserve' or op == 'lease' then
  local units = {}
  for i = 1, 4 do units[i] = tonumber(ARGV[11 + i]) end
  wait = wait_for(units)
  if wait > 0 then
    admitted = 0
  else
    take(units)
    if op == 'lease' then
      -- At most half the room left in any dimension, so that the other replicas find
      -- some too.
      local calls = tonumber(ARGV[16])
      for i = 1, 4 do
        local d, u = dims[i], units[i]
        if u > 0 then
          if d.per > 0 and d.rate > 0 then
            local room = now + d.per - math.max(d.tat, now)
            calls = math.min(calls, math.floor(math.floor(room * d.rate / d.per) / u / 2))
          elseif d.per > 0 then
            calls = 0
          end
          if d.reset > 0 then
            calls = math.min(calls, math.floor((available(d) - d.flight) / u / 2))
          end
        end
      end
      calls = math.max(0, calls)
      -- The rounding of the division above must not let a lease past the limit.
      while calls > 0 do
        local more = {}
        for i = 1, 4 do more[i] = units[i] * calls end
        if wait_for(more) == 0 then break end
        calls = calls - 1
      end
      if calls > 0 then
        local more = {}
        for i = 1, 4 do more[i] = units[i] * calls end
        take(more)
      end
      leased = calls
    end
  end
elseif op == 'settle' then
  settle(11)
elseif op == 'sync' then
  for i = 1, 4 do
    local d = dims[i]
    d.flight = math.max(0, d.flight - tonumber(ARGV[11 + i]))
  end
  reports(16)
elseif op == 'flush' then
  settle(11)
  reports(24)
end

local values, reply = {}, {admitted, wait, now}
local longest = period
for i = 1, 4 do
  local d = dims[i]
  local packed = string.format('%d,%d,%d,%d,%d,%d', d.tat, d.left, d.limit, d.reset, d.from,
    d.flight)
  -- Untouched dimensions (never limited, never reported) are not written.
  if stored[i] or packed ~= '0,0,-1,0,0,0' then
    values[#values + 1] = 'd' .. i
    values[#values + 1] = packed
  end
  for _, name in ipairs(NAMES) do reply[#reply + 1] = d[name] end
  longest = math.max(longest, d.per, d.reset - now)
end
if #values > 0 then redis.call('HSET', key, unpack(values)) end
if leased then reply[#reply + 1] = leased end
-- Nothing outlives its windows: an idle limiter's key expires, and full is what it was.
redis.call('PEXPIRE', key, math.floor(2 * longest / 1000) + 60000)
return reply
