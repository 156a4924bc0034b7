-- ACQUIRE: take a free lock, with its owner, and bump its fence (locks/plan.py).
--
-- KEYS: lock, fence, waiting
-- ARGV: token, ttl_ms, fence_ttl_ms, "host\npid\ncmd", waiting_ms ("0": not waiting)
-- -> {1, fence} | {0, pttl, lock value}
--
-- The lock's value is the owner token, then the owner, one field a line:
-- token, fence, acquired (server TIME: "seconds microseconds"), ttl ms, host, pid, cmd
-- (parsed by locks/keys.py). One key holds token and owner so the hot path
-- writes one key and a reader sees both at once.
--
-- Idempotent per token: redis-py retries a command that timed out
-- (retry_attempts), which the server may have run; the retry finds our own
-- token and reports the same hold and fence instead of "held by ourselves".
--
-- The fence is max(previous + 1, server time in microseconds): strictly
-- increasing while the counter lives, and a counter that expired (FENCE_TTL
-- without any acquire) or lost its last increments in a failover restarts
-- above every number handed out before, unless more than a million acquires a
-- second were made (or the server clock jumped back). Microseconds since 1970
-- stay below 2^53 (exact in Lua's doubles) until the year 2255.
local t = redis.call('TIME')
local fence = (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) + 1
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now_us > fence then fence = now_us end
fence = string.format('%d', fence)
local value = ARGV[1] .. '\n' .. fence .. '\n' .. t[1] .. ' ' .. t[2] .. '\n' .. ARGV[2]
  .. '\n' .. ARGV[4]
if redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], fence, 'PX', ARGV[3])
  return {1, fence}
end
local held = redis.call('GET', KEYS[1])
if string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
  -- Our own token: a retry (after a timeout) of an attempt the server did run.
  return {1, string.match(held, '^[^\n]*\n([^\n]*)')}
end
if ARGV[5] ~= '0' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
end
return {0, redis.call('PTTL', KEYS[1]), held}
