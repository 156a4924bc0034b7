"""The Lua scripts behind the lock, and how they are called.

Every state change of a lock is one script, so each is atomic: acquiring sets
the lock, bumps the fence and writes the owner in one step; releasing and
extending compare the owner token first, so a holder whose lease ran out can
never delete or extend the lock of the next holder.

Keys of one lock share a ``{name}`` hash tag (same Redis Cluster slot):

- ``<prefix>:locks:{name}:lock``   the owner token, ``SET NX PX`` (the lease)
- ``<prefix>:locks:{name}:owner``  hash: host, pid, cmd, acquired, renewed, fence, ttl (same TTL)
- ``<prefix>:locks:{name}:fence``  the fencing counter (long TTL, refreshed on every acquire)
- ``<prefix>:locks:{name}:waiting`` marker: someone is blocked waiting (short TTL)
- ``<prefix>:locks:{name}:wake``   list a waiter BLPOPs; a release pushes one element (short TTL)

Scripts are sent with EVALSHA; on NOSCRIPT (a restarted or flushed server)
the script is loaded again and the call retried.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

# KEYS: lock, owner, fence, waiting
# ARGV: token, ttl_ms, fence_ttl_ms, host, pid, cmd, waiting_ms ("0": not waiting)
# -> {1, fence} | {0, pttl, owner hash as a flat list}
#
# The fence is max(previous + 1, server time in microseconds): strictly
# increasing while the counter lives, and a counter that expired (FENCE_TTL
# without any acquire) or lost its last increments in a failover restarts
# above every number handed out before, unless more than a million acquires a
# second were made (or the server clock jumped back). Microseconds since 1970
# stay below 2^53 (exact in Lua's doubles) until the year 2255.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local prev = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  local fence = prev + 1
  if now_us > fence then fence = now_us end
  redis.call('SET', KEYS[3], string.format('%d', fence), 'PX', ARGV[3])
  local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'host', ARGV[4], 'pid', ARGV[5], 'cmd', ARGV[6],
             'acquired', now, 'renewed', now, 'fence', string.format('%d', fence), 'ttl', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {1, fence}
end
if ARGV[7] ~= '0' then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[7])
end
return {0, redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""

# KEYS: lock, owner ; ARGV: token, ttl_ms -> 1 extended | 0 not ours any more
EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'renewed', t[1] .. '.' .. string.format('%06d', tonumber(t[2])),
           'ttl', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: lock, owner, waiting, wake ; ARGV: token ("" = force), wake_ttl_ms
# -> 1 released | 0 not ours (nothing touched)
# A waiter is woken only when one announced itself (the "waiting" marker is
# set by its failed acquire, atomically, so no wake-up is lost); uncontended
# releases write nothing else.
RELEASE = """
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], -1, -1)
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
return 1
"""


class Script:
    """One Lua script: EVALSHA, loading it again on NOSCRIPT."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    async def acall(
        self, client: redis.asyncio.Redis, keys: tuple[str, ...], args: tuple[Any, ...]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


acquire_script = Script(ACQUIRE)
extend_script = Script(EXTEND)
release_script = Script(RELEASE)
