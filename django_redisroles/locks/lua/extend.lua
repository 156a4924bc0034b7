-- EXTEND: renew our lease (locks/plan.py).
--
-- KEYS: lock ; ARGV: token, ttl_ms -> 1 extended | 0 not ours any more
-- A new lease length is written into the value (readers derive the last
-- renewal from it: every renewal resets the lease to its full ttl, so it was
-- ttl - PTTL ago). Idempotent: a re-sent extend extends again.
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n' then return 0 end
local head, ttl, rest = string.match(value, '^([^\n]*\n[^\n]*\n[^\n]*\n)([^\n]*)(\n.*)$')
if ttl and ttl ~= ARGV[2] then
  redis.call('SET', KEYS[1], head .. ARGV[2] .. rest, 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
