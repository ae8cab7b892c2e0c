-- A breaker changed in one process: store it for the others and tell them.
-- KEYS[1]  the breaker's hash
-- ARGV     kind (open | closed | cooldown), wait in µs (-1: until reset), half-open
--          probes, channel, the sender's id, the target
-- Fields: state (open | closed), until (µs on the server's clock, -1: until reset), probes
-- (half-open probe slots left), cooldown (µs).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local key, kind, wait = KEYS[1], ARGV[1], tonumber(ARGV[2])
if kind == 'open' then
  local till = -1
  if wait >= 0 then till = now + wait end
  redis.call('HSET', key, 'state', 'open', 'until', till, 'probes', ARGV[3])
  if wait >= 0 then
    -- A process that dies while probing leaves no close behind: after twice the break,
    -- the state expires and the others take the target back.
    redis.call('PEXPIRE', key, math.floor(2 * wait / 1000) + 60000)
  else
    redis.call('PERSIST', key)
  end
elseif kind == 'closed' then
  redis.call('HSET', key, 'state', 'closed')
  redis.call('HDEL', key, 'until', 'probes')
  redis.call('PEXPIRE', key, 3600000)
else
  local till = now + wait
  if till <= tonumber(redis.call('HGET', key, 'cooldown') or '0') then
    return 0
  end
  redis.call('HSET', key, 'cooldown', till)
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < wait / 1000 + 60000 then
    redis.call('PEXPIRE', key, math.floor(wait / 1000) + 60000)
  end
end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\t' .. kind .. '\t' .. ARGV[2] .. '\t' .. ARGV[6])
return 1
