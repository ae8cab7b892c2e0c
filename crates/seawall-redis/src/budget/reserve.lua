-- Adds each line's amount to its budget's use, all or none, within the lines' limits; and
-- for a line that asks, a lease beyond its amount: at most half the room left after it, in
-- whole multiples of the amount.
-- KEYS[i]  the hash of line i's budget and window (field: the scope's value)
-- ARGV     per line: value, amount, limit, lease wanted beyond the amount, an earlier
--          lease's units given back first; then per line the key's lifetime in ms (0: none)
-- Returns {1, 0, 0, then per line its use after and the units leased}, or
-- {0, index of the line refused, its use}.
local n = #KEYS
local used = {}
for i = 1, n do
  local b = 5 * (i - 1)
  local u = tonumber(redis.call('HGET', KEYS[i], ARGV[b + 1]) or '0')
  local back = tonumber(ARGV[b + 5])
  if back > 0 then
    u = math.max(0, u - back)
    redis.call('HSET', KEYS[i], ARGV[b + 1], string.format('%d', u))
  end
  used[i] = u
end
for i = 1, n do
  local b = 5 * (i - 1)
  if used[i] + tonumber(ARGV[b + 2]) > tonumber(ARGV[b + 3]) then
    return {0, i - 1, used[i]}
  end
end
local reply = {1, 0, 0}
for i = 1, n do
  local b = 5 * (i - 1)
  local amount, limit = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  -- Whole calls' amounts, so that a lease leaves no remainder no call can use.
  local leased = math.min(tonumber(ARGV[b + 4]), math.floor((limit - used[i] - amount) / 2))
  if amount > 0 then leased = math.floor(leased / amount) * amount end
  leased = math.max(0, leased)
  reply[#reply + 1] = redis.call('HINCRBY', KEYS[i], ARGV[b + 1],
    string.format('%d', amount + leased))
  reply[#reply + 1] = leased
  local ttl = tonumber(ARGV[5 * n + i])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return reply
