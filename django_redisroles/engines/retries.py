"""How often a role's client sends a command: ``retry_attempts`` retries, none inside
:class:`send_once` (a timeout does not mean the command did not run).

redis-py reads its retry count in three places: the connection's ``Retry``
(single server, Sentinel), the cluster client's ``retry`` (redis-py 6+) and its
``cluster_error_retry_attempts`` (5.x). Each is made to answer 0 inside
``send_once()``.
"""

from __future__ import annotations

import contextvars
from typing import Any

import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.exceptions
import redis.retry

__all__ = [
    "RETRY_ERRORS",
    "AsyncRoleRetry",
    "AsyncSendOnceCluster",
    "RoleRetry",
    "SendOnceCluster",
    "send_once",
]

RETRY_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# True inside send_once(): redis-py sends each command once, whatever retry_attempts says.
_once: contextvars.ContextVar[bool] = contextvars.ContextVar("redisroles_send_once", default=False)


class send_once:  # lower case: used like a function, ``with send_once():``
    """Commands sent inside this block are never re-sent by redis-py.

    The roles' clients retry a command after a connection error or a timeout
    (``retry_attempts``); a timeout does not mean the command did not run,
    so a command with a side effect that is not idempotent (INCR, a rate-limit
    count) is sent inside ``with send_once():`` and its failure goes to the
    role's failure policy instead. Per thread and per asyncio task (a context
    variable): ``with send_once(): await client.incr(key)`` works too.
    Reconnecting a pooled connection the server closed is still done before
    the command is sent (redis-py checks each connection it hands out).

    On a Redis Cluster, a ``MOVED`` or ``ASK`` redirect is still followed (the
    node that answered it did not run the command), and so is ``TRYAGAIN``;
    what is not done is the cluster client's own re-send after a timeout, a
    connection error or ``CLUSTERDOWN`` (the command then fails, and the
    cluster client refreshes its slot map for the next one). Under Sentinel,
    a command is not re-sent to the new master after the old one stopped
    answering.
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        # A class, not @contextmanager: the rate-limit check enters it per request.
        self._token = _once.set(True)

    def __exit__(self, *exc: object) -> None:
        _once.reset(self._token)


class RoleRetry(redis.retry.Retry):
    """redis-py's ``Retry``, except inside ``send_once()``: then no retry.

    Retry reads ``_retries`` only after a failure, so the number of retries
    is a property: the common, successful call costs nothing more. redis-py
    6+'s cluster clients read it too (``retry.get_retries()``) to decide how
    often to re-send a command after a timeout.
    """

    @property
    def _retries(self) -> int:
        return 0 if _once.get() else self._planned_retries

    @_retries.setter
    def _retries(self, value: int) -> None:
        self._planned_retries = value


class AsyncRoleRetry(redis.asyncio.retry.Retry):
    """``RoleRetry`` for ``redis.asyncio``."""

    @property
    def _retries(self) -> int:
        return 0 if _once.get() else self._planned_retries

    @_retries.setter
    def _retries(self, value: int) -> None:
        self._planned_retries = value


class SendOnceCluster(redis.cluster.RedisCluster):
    """redis-py's ``RedisCluster``: redis-py 5.x reads its re-send count from
    ``cluster_error_retry_attempts`` (6+ from the retry object): none inside
    ``send_once()``."""

    _rr_cluster_retries = 0

    @property
    def cluster_error_retry_attempts(self) -> int:
        return 0 if _once.get() else self._rr_cluster_retries

    @cluster_error_retry_attempts.setter
    def cluster_error_retry_attempts(self, value: int) -> None:
        self._rr_cluster_retries = value


class AsyncSendOnceCluster(redis.asyncio.cluster.RedisCluster):
    """``SendOnceCluster`` for ``redis.asyncio``, initialized before its first command.

    redis-py initializes a fresh async cluster client lazily, inside the first
    commands sent on it; when many tasks send their first commands at once, some
    of them find a node connection that another task's (re)initialization closed
    under them (``AttributeError: 'NoneType' object has no attribute 'writelines'``
    from redis-py, not a ``ConnectionError``): a burst of requests on a fresh
    worker failed, and the cache's single flight ran the loader once per failure.
    ``initialize()`` is locked and returns at once when done, so every command
    awaits it first: the slot map is built once, before any command uses a node.
    """

    _rr_cluster_retries = 0

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.initialize()
        return await super().execute_command(*args, **kwargs)

    @property
    def cluster_error_retry_attempts(self) -> int:
        return 0 if _once.get() else self._rr_cluster_retries

    @cluster_error_retry_attempts.setter
    def cluster_error_retry_attempts(self, value: int) -> None:
        self._rr_cluster_retries = value
