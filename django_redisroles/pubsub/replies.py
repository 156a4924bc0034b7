"""What a subscriber connection is told besides messages: refusals, redirects, outages.

``SubscribeRefused`` (an ACL refuses a channel), ``MovedTo`` (a cluster master
that does not serve a shard channel's slot answers ``MOVED``), the errors that
mean "Redis is away", and redis-py's connect callbacks across its versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import redis.exceptions

from .. import errors

__all__ = [
    "CONNECTION_ERRORS",
    "MovedTo",
    "Route",
    "SubscribeRefused",
    "connect_callbacks",
    "moved_to",
]

#: Errors that mean "Redis is away" (not a refusal, not a bug).
CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

#: What a Redis channel is subscribed for: ("g", group) or ("c", consumer channel).
Route = tuple[str, str]


class SubscribeRefused(RuntimeError):
    """Redis refused to subscribe this process to a group's or channel's Pub/Sub channel.

    Raised by ``group_add()``/``receive()``/``new_channel()`` (an ACL user
    without that channel: ``NOPERM``), instead of a consumer that silently
    never receives. ``failure`` is the classified error.
    """

    def __init__(self, name: str, failure: errors.Failure) -> None:
        self.failure = failure
        super().__init__(f"Redis refused to subscribe to {name}: {failure.describe()}")


class MovedTo(NamedTuple):
    """The master a ``MOVED`` reply named for a shard channel."""

    host: str
    port: int


def moved_to(exc: BaseException) -> MovedTo | None:
    """The node of a ``MOVED`` error reply (redis-py's ``MovedError`` or a plain one), or None."""
    host, port = getattr(exc, "host", None), getattr(exc, "port", None)
    if isinstance(exc, redis.exceptions.MovedError) and host and port:
        return MovedTo(str(host), int(port))
    parts = str(exc).split()
    if len(parts) == 3 and parts[0] == "MOVED" and ":" in parts[2]:
        h, _, p = parts[2].rpartition(":")
        return MovedTo(h, int(p))
    return None


def connect_callbacks(conn: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(register, deregister) of a redis.asyncio connection's connect callbacks.

    Public since redis-py 5.0.2; 5.0.0/5.0.1 (allowed by ``redis>=5``) have
    them with a leading underscore only.
    """
    register = getattr(conn, "register_connect_callback", None)
    if register is not None:
        return register, conn.deregister_connect_callback
    return conn._register_connect_callback, conn._deregister_connect_callback
