-- DELETE: end one indexed session (sessions/store.py, delete()).
-- KEYS: session, user index, meta; ARGV: session key. Returns the number of sessions removed.
local n = redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1], ARGV[1] .. '|seen')
return n
