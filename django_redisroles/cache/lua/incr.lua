-- INCRBY with Django's semantics: a missing key is an error (false), unless
-- asked to create it; and the key never stays without a TTL (one found
-- without any, written by another client, gets the default too).
-- KEYS[1]: the key. ARGV: delta, create ("1"/"0"), default TTL in ms (0: none).
if redis.call('EXISTS', KEYS[1]) == 0 and ARGV[2] == '0' then return false end
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return value
