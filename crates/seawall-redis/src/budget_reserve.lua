-- Adds each line's amount to its budget's use, all or none, within the lines' limits.
-- KEYS[i]  the hash of line i's budget and window (field: the scope's value)
-- ARGV     per line: value, amount, limit; then per line the key's lifetime in ms (0: none)
-- Returns {1, 0, 0, used after per line}, or {0, index of the line refused, its use}.
local n = #KEYS
for i = 1, n do
  local b = 3 * (i - 1)
  local used = tonumber(redis.call('HGET', KEYS[i], ARGV[b + 1]) or '0')
  if used + tonumber(ARGV[b + 2]) > tonumber(ARGV[b + 3]) then
    return {0, i - 1, used}
  end
end
local reply = {1, 0, 0}
for i = 1, n do
  local b = 3 * (i - 1)
  reply[#reply + 1] = redis.call('HINCRBY', KEYS[i], ARGV[b + 1], ARGV[b + 2])
  local ttl = tonumber(ARGV[3 * n + i])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return reply
