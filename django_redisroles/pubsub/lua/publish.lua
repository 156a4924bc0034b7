-- A broadcast to a replay group, in one round trip: append to the group's
-- capped stream, keep it alive, and PUBLISH a frame carrying the entry id.
--
-- KEYS[1] the stream, KEYS[2] the group's recent message ids (a list)
-- ARGV[1] payload, ARGV[2] stream MAXLEN (~), ARGV[3] TTL in ms,
-- ARGV[4] the group's pub/sub channel, ARGV[5] message id,
-- ARGV[6] how many recent message ids to remember,
-- ARGV[7] 'PUBLISH', or 'SPUBLISH' on a Redis Cluster (the channel is hash-tagged
-- into KEYS[1]'s slot: the script runs on the master that serves both)
--
-- Each entry keeps the id of the entry before it ('p'), so a reader can tell
-- whether the chain it resumes from is unbroken. A re-sent publish (redis-py
-- retried after a timeout, and the first send did run) is answered with the
-- entry of its first send: the stream never holds a message twice.
local m = ARGV[5]
local keep = tonumber(ARGV[6])
for _, r in ipairs(redis.call('LRANGE', KEYS[2], 0, keep - 1)) do
  if string.sub(r, 1, #m) == m then
    -- A re-sent publish whose first send did run: its entry, not a second one.
    return string.sub(r, #m + 1)
  end
end
local prev = ''
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'p', prev, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('LPUSH', KEYS[2], m .. id)
redis.call('LTRIM', KEYS[2], 0, keep - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
-- The frame: MSG_MARK, message id, FRAME_MARK, entry id, FRAME_MARK, payload (envelope.py).
redis.call(ARGV[7], ARGV[4], '\1' .. m .. '\0' .. id .. '\0' .. ARGV[1])
return id
