"""An acquire that replicas acknowledged (``REPLICA_ACKS``): the hold survives a failover.

Replication is asynchronous: a lock taken on a master that dies before its
replica got the write is gone on the promoted replica, and a second holder
can take it (its fence is higher: ``lua/acquire.lua``). With ``REPLICA_ACKS``
the acquire is followed by ``WAIT <acks> <REPLICA_TIMEOUT>`` **on the same
connection** (``WAIT`` counts the writes of its own connection; on another
pooled connection it would answer at once, for nothing): the two go in one
pipeline to the master of the lock's slot. A hold fewer replicas acknowledged
in time is released again and the acquire raises ``LockNotReplicated``:
an opt-in to "a lock that survives a failover, or none".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import AskError, ConnectionError, MovedError, NoScriptError

from ..connections import async_shard_client, shard_client
from . import plan
from .exceptions import LockNotReplicated
from .options import ROLE

__all__ = ["LockNotReplicated", "aacquire", "acquire", "wait_ms"]


def wait_ms(client: Any, timeout_ms: int) -> int:
    """``REPLICA_TIMEOUT``, kept under the socket timeout (a WAIT must answer before it)."""
    sock = client.connection_pool.connection_kwargs.get("socket_timeout")
    if sock:
        return max(1, min(timeout_ms, int(float(sock) * 750)))
    return timeout_ms


def _reply(results: Sequence[Any]) -> tuple[list[Any], int] | None:
    reply, acked = results
    if isinstance(reply, NoScriptError):
        return None  # the script did not run: load it and send both again
    for value in (reply, acked):
        if isinstance(value, Exception):
            raise value
    return reply, int(acked)


#: The node we asked is not (or no longer) the slot's master: a cluster's slot map
#: is stale after a failover or a move. Asked again once, after a refresh (the
#: acquire is idempotent per token: a second run finds its own hold).
_MOVED = (ConnectionError, MovedError, AskError)


def acquire(keys: Sequence[str], args: Sequence[Any], acks: int, timeout_ms: int) -> Any:
    """ACQUIRE then WAIT on one connection: ``(reply, replicas that acknowledged)``."""
    try:
        return _acquire(shard_client(ROLE, keys[0]), keys, args, acks, timeout_ms)
    except _MOVED:
        client = shard_client(ROLE, keys[0], refresh=True)
        return _acquire(client, keys, args, acks, timeout_ms)


def _acquire(
    client: Any, keys: Sequence[str], args: Sequence[Any], acks: int, timeout_ms: int
) -> Any:
    ms = wait_ms(client, timeout_ms)
    for _ in range(2):
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(plan.ACQUIRE.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", acks, ms)
        done = _reply(pipe.execute(raise_on_error=False))
        if done is not None:
            return done
        client.script_load(plan.ACQUIRE.source)
    raise NoScriptError("the acquire script could not be loaded")


async def aacquire(keys: Sequence[str], args: Sequence[Any], acks: int, timeout_ms: int) -> Any:
    """Async ``acquire()``."""
    try:
        return await _aacquire(
            await async_shard_client(ROLE, keys[0]), keys, args, acks, timeout_ms
        )
    except _MOVED:
        client = await async_shard_client(ROLE, keys[0], refresh=True)
        return await _aacquire(client, keys, args, acks, timeout_ms)


async def _aacquire(
    client: Any, keys: Sequence[str], args: Sequence[Any], acks: int, timeout_ms: int
) -> Any:
    ms = wait_ms(client, timeout_ms)
    for _ in range(2):
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(plan.ACQUIRE.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", acks, ms)
        done = _reply(await pipe.execute(raise_on_error=False))
        if done is not None:
            return done
        await client.script_load(plan.ACQUIRE.source)
    raise NoScriptError("the acquire script could not be loaded")
