-- Where a breaker stands, for a process that asks for a probe or (re)joins.
-- KEYS[1]  the breaker's hash
-- ARGV[1]  1 to take a half-open probe slot if the break is over
-- Returns {verdict, µs}: 0 a probe slot taken; 1 open for µs more (-1: until reset);
-- 2 closed; 3 the break is over and other processes hold every probe slot. Then the
-- cooldown left, in µs.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local s = redis.call('HMGET', KEYS[1], 'state', 'until', 'probes', 'cooldown')
local cooldown = math.max(0, tonumber(s[4] or '0') - now)
if s[1] ~= 'open' then return {2, 0, cooldown} end
local till = tonumber(s[2])
if till < 0 then return {1, -1, cooldown} end
if till > now then return {1, till - now, cooldown} end
if ARGV[1] == '1' and tonumber(s[3] or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'probes', -1)
  return {0, 0, cooldown}
end
return {3, 0, cooldown}
