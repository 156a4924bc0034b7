-- Our single-flight lock becomes the record of the loader's failure, for the
-- callers waiting on it in other processes.
-- KEYS[1]: the lock. ARGV: our token, the record, its TTL in ms. Returns 1 or 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
