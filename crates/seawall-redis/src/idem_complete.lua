-- Stores the answer of a call whose owner still holds its key; kept for the TTL.
-- KEYS[1]  the key's hash (see idem_claim.lua)
-- ARGV     owner token, answer, TTL in ms
-- Returns 1 if stored, 0 if the claim was lost (its lease ran out and another took it).
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 's', 'd', 'a', ARGV[2])
redis.call('HDEL', KEYS[1], 'o')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
