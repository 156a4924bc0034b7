-- RELEASE: delete our lock and wake one waiter (locks/plan.py; also force_release).
--
-- KEYS: lock, waiting, wake, released ; ARGV: token ("" = force), wake_ttl_ms, released_ttl_ms
-- -> 1 released | 0 not ours (nothing touched)
-- A waiter is woken only when one announced itself (the "waiting" marker is
-- set by its failed acquire, atomically, so no wake-up is lost). The token is
-- kept in "released" for a while: redis-py re-sends a release that timed out,
-- and the server may have run the first one (a stall past the socket
-- timeout); the second finds the lock gone (or taken by the next holder) and
-- must still answer "released", not "lost".
local value = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' and (not value or string.sub(value, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n') then
  if redis.call('GET', KEYS[4]) == ARGV[1] then return 1 end
  return 0
end
if not value then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[3])
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], -1, -1)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
