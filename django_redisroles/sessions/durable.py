"""``WAIT`` after a login or a new session: "sessions must survive" across a failover.

Redis replicates asynchronously: a session the master acknowledged and then
lost in a crash, before any replica had it, is gone after the failover (the
user is logged out). With ``WAIT_REPLICAS`` > 0, a save that creates a session
(``create()``, ``cycle_key()``, the save of a ``login()``) is followed by
``WAIT <replicas> <WAIT_TIMEOUT ms>`` on the same connection (one pipeline: one
round trip, the write and the ``WAIT``), so the response leaves only once a
replica has the session, or the timeout passed (then a warning is logged and the
login still succeeds: a replica outage must not become a login outage). Plain
updates do not wait: losing one in a failover loses that request's change, not
the session.

Default (``WAIT_REPLICAS = None``): 1 under Sentinel and on a Redis Cluster,
where replicas exist to fail over to; 0 (off) on one server. On a cluster the
pipeline goes to the master of the session's slot
(``connections.shard_client``), asked again after a ``MOVED``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import AskError, MovedError, NoScriptError

from .. import conf, connections
from . import plan
from .options import OPTIONS, ROLE

__all__ = ["arun", "replicas", "run"]

logger = logging.getLogger("django_redisroles.sessions")

#: Tries of the pipeline: once, after a NOSCRIPT (script loaded), after a MOVED.
_TRIES = 3
_WARN_EVERY = 60.0
_last_warning = [0.0]
# The sessions role's topology kind, resolved once per REDISROLES (not per login).
_KIND = conf.Resolved(lambda: connections.topology(ROLE).kind, name="sessions topology kind")


def replicas() -> int:
    """How many replicas a new session waits for (``WAIT_REPLICAS``, resolved)."""
    wanted = OPTIONS.get().wait_replicas
    if wanted is not None:
        return wanted
    return 0 if _KIND.get() == "single" else 1


def _queue(pipe: Any, todo: plan.SavePlan, wanted: int) -> None:
    if todo.kind == "set":
        if todo.nx:
            pipe.set(todo.key, todo.value, ex=todo.ttl, nx=True, get=True)
        else:
            pipe.set(todo.key, todo.value, ex=todo.ttl, xx=True)
    elif todo.kind == "unlink":
        pipe.unlink(todo.key)
    else:
        # EVALSHA in a pipeline (scripts.Script refuses it): safe here, the one
        # other command is WAIT, which changes nothing when sent again.
        pipe.evalsha(plan.SAVE.sha, len(todo.keys), *todo.keys, *todo.args)
    pipe.wait(wanted, max(1, int(OPTIONS.get().wait_timeout * 1000)))


def _acked(acked: Any, wanted: int) -> None:
    if int(acked) >= wanted:
        return
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY:
        _last_warning[0] = now
        logger.warning(
            "WAIT: %s of %s replica(s) acknowledged a new session within WAIT_TIMEOUT; "
            "it is lost if the master fails before replicating it. (A deployment "
            "without replicas: set WAIT_REPLICAS to 0.)",
            acked,
            wanted,
        )


def run(todo: plan.SavePlan, wanted: int) -> Any:
    """Send ``todo`` and ``WAIT`` in one pipeline on the sync client; the save's reply."""
    key = todo.key or todo.keys[0]
    for attempt in range(_TRIES):
        client = connections.shard_client(ROLE, key, refresh=attempt > 0)
        try:
            with client.pipeline(transaction=False) as pipe:
                _queue(pipe, todo, wanted)
                reply, acked = pipe.execute()
        except (NoScriptError, MovedError, AskError) as exc:
            if attempt == _TRIES - 1:
                raise
            if isinstance(exc, NoScriptError):  # the script did not run: load it, again
                client.script_load(plan.SAVE.source)
        else:
            _acked(acked, wanted)
            return reply
    raise AssertionError("unreachable")  # pragma: no cover - the last try raises or returns


async def arun(todo: plan.SavePlan, wanted: int) -> Any:
    """:func:`run` on the ``redis.asyncio`` client."""
    key = todo.key or todo.keys[0]
    for attempt in range(_TRIES):
        client = await connections.async_shard_client(ROLE, key, refresh=attempt > 0)
        try:
            async with client.pipeline(transaction=False) as pipe:
                _queue(pipe, todo, wanted)
                reply, acked = await pipe.execute()
        except (NoScriptError, MovedError, AskError) as exc:
            if attempt == _TRIES - 1:
                raise
            if isinstance(exc, NoScriptError):
                await client.script_load(plan.SAVE.source)
        else:
            _acked(acked, wanted)
            return reply
    raise AssertionError("unreachable")  # pragma: no cover
