-- Replaces a reservation by what the call used; in the current window if the
-- reservation's is over.
-- KEYS[1]  the reservation's budget and window; KEYS[2] the budget's current window
-- ARGV     value, reserved, used, 1 if the windows are the same, the key's lifetime in ms
-- Returns the use after.
local value, reserved, used = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local key, after = KEYS[2], 0
if ARGV[4] == '1' then
  key = KEYS[1]
  local current = tonumber(redis.call('HGET', key, value) or '0')
  after = math.max(0, current - reserved) + used
  redis.call('HSET', key, value, after)
else
  after = redis.call('HINCRBY', key, value, used)
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return after
