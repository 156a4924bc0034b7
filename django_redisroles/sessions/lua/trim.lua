-- TRIM: drop a user index's entries whose session has surely expired (clearsessions).
-- KEYS: user index, meta; ARGV: cutoff (now - INDEX_REFRESH). Returns how many were trimmed;
-- an index left empty is removed.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  for _, d in ipairs(dead) do
    redis.call('HDEL', KEYS[2], d, d .. '|seen')
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('UNLINK', KEYS[1], KEYS[2])
end
return #dead
