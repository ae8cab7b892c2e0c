-- Claims an idempotency key, or says who has it.
-- KEYS[1]  the key's hash: s = 'p' (in flight) or 'd' (done), f = the request's
--          fingerprint, o = the owner's token (in flight), a = the answer (done)
-- ARGV     fingerprint, owner token, lease in ms
-- Returns {0} claimed (for the lease), {1} in flight elsewhere, {2, answer} done,
-- {3} the key was used with another request.
local state = redis.call('HGET', KEYS[1], 's')
if not state then
  redis.call('HSET', KEYS[1], 's', 'p', 'f', ARGV[1], 'o', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {0}
end
if redis.call('HGET', KEYS[1], 'f') ~= ARGV[1] then
  return {3}
end
if state == 'd' then
  return {2, redis.call('HGET', KEYS[1], 'a')}
end
return {1}
