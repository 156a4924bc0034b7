"""The Lua scripts behind the lock, and how they are called.

Every state change of a lock is one script, so each is atomic: acquiring sets
the lock with its owner and bumps the fence in one step; releasing and
extending compare the owner token first, so a holder whose lease ran out can
never delete or extend the lock of the next holder.

Keys of one lock share a ``{name}`` hash tag (same Redis Cluster slot):

- ``<prefix>:locks:{name}:lock``    the lease (``SET NX PX``); its value is the
  owner token, then the owner, one field a line:
  ``token, fence, acquired (server TIME: "seconds microseconds"), ttl ms, host, pid, cmd``
- ``<prefix>:locks:{name}:fence``   the fencing counter (long TTL, refreshed on every acquire)
- ``<prefix>:locks:{name}:waiting`` marker: someone is blocked waiting (short TTL)
- ``<prefix>:locks:{name}:wake``    list a waiter BLPOPs; a release pushes one element (short TTL)
- ``<prefix>:locks:{name}:released`` the token of the last release (``RELEASED_TTL``): a
  release re-sent after a timeout, whose first send did run, finds its own token there

One key holds token and owner so the hot path writes one key and a reader
sees both at once. The last renewal is not stored: every renewal resets the
lease to its full ttl, so it was ``ttl - PTTL`` ago.

Scripts are sent with EVALSHA; on NOSCRIPT (a restarted or flushed server)
the script is loaded again and the call retried.
"""

from __future__ import annotations

from ..scripts import Script

# KEYS: lock, fence, waiting
# ARGV: token, ttl_ms, fence_ttl_ms, "host\npid\ncmd", waiting_ms ("0": not waiting)
# -> {1, fence} | {0, pttl, lock value}
#
# Idempotent per token: redis-py retries a command that timed out
# (retry_attempts), which the server may have run; the retry finds our own
# token and reports the same hold and fence instead of "held by ourselves".
#
# The fence is max(previous + 1, server time in microseconds): strictly
# increasing while the counter lives, and a counter that expired (FENCE_TTL
# without any acquire) or lost its last increments in a failover restarts
# above every number handed out before, unless more than a million acquires a
# second were made (or the server clock jumped back). Microseconds since 1970
# stay below 2^53 (exact in Lua's doubles) until the year 2255.
ACQUIRE = r"""
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
"""

# KEYS: lock ; ARGV: token, ttl_ms -> 1 extended | 0 not ours any more
# A new lease length is written into the value (readers derive the last
# renewal from it). Idempotent: a re-sent extend extends again.
EXTEND = r"""
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n' then return 0 end
local head, ttl, rest = string.match(value, '^([^\n]*\n[^\n]*\n[^\n]*\n)([^\n]*)(\n.*)$')
if ttl and ttl ~= ARGV[2] then
  redis.call('SET', KEYS[1], head .. ARGV[2] .. rest, 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

# KEYS: lock, waiting, wake, released ; ARGV: token ("" = force), wake_ttl_ms, released_ttl_ms
# -> 1 released | 0 not ours (nothing touched)
# A waiter is woken only when one announced itself (the "waiting" marker is
# set by its failed acquire, atomically, so no wake-up is lost). The token is
# kept in "released" for a while: redis-py re-sends a release that timed out,
# and the server may have run the first one (a stall past the socket
# timeout); the second finds the lock gone (or taken by the next holder) and
# must still answer "released", not "lost".
RELEASE = r"""
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
"""


#: Seconds a release's token is kept: longer than redis-py's retries of it take.
RELEASED_TTL = 30

acquire_script = Script(ACQUIRE)
extend_script = Script(EXTEND)
release_script = Script(RELEASE)
