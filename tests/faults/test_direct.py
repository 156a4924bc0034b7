"""The hot paths' direct send (``django_redisroles.direct``) keeps redis-py's guarantees.

Scripts and the rate-limit check are sent on a pooled connection without
``execute_command``; what that call did for them must still hold: a reply
that arrived late never answers the next command, the connection goes back
to the pool whatever happened, the role's retries (and ``send_once()``) are
honoured, a bad argument is redis-py's ``DataError``, and a pool it does not
know goes through ``execute_command``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.cluster

from django_redisroles import connections
from django_redisroles.direct import execute
from django_redisroles.scripts import Script
from django_redisroles.testing import RedisServer

from .lab import stalled

pytestmark = pytest.mark.slow

ECHO = Script("return ARGV[1]")
COUNT = Script("return redis.call('INCR', KEYS[1])")
STALL = 0.8  # longer than FAST's 0.5 s socket timeout, shorter than three attempts


def in_use(client: Any) -> int:
    """Connections taken from the client's pool(s) and not given back (every node's, on
    a cluster client)."""
    if isinstance(client, redis.cluster.RedisCluster):
        pools = [
            n.redis_connection.connection_pool for n in client.get_nodes() if n.redis_connection
        ]
    else:
        pools = [client.connection_pool]
    return sum(len(pool._in_use_connections) for pool in pools)


def test_a_reply_that_came_late_never_answers_the_next_call(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url(), retry_attempts=0)
    client = connections.get_redis("locks")
    assert ECHO(client, [], ["warm"]) == b"warm"  # loaded, one pooled connection
    with stalled(victim, STALL), pytest.raises(redis.exceptions.TimeoutError):
        ECHO(client, [], ["first"])
    # "first" ran when the server woke up; its reply went to a closed connection.
    for word in ("second", "third"):
        assert ECHO(client, [], [word]) == word.encode()
    assert in_use(client) == 0


def test_the_role_retries_and_send_once_are_honoured(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url())  # retry_attempts 2
    client = connections.get_redis("locks")
    assert COUNT(client, ["n"], []) == 1
    with stalled(victim, STALL):
        assert COUNT(client, ["n"], []) == 3  # timed out, re-sent: the server ran both
    once = pytest.raises(redis.exceptions.TimeoutError)
    with stalled(victim, STALL), connections.send_once(), once:
        COUNT(client, ["n"], [])
    with victim.client() as check:
        assert check.get("n") == b"4"  # sent once
    assert in_use(client) == 0


def outcome(call: Callable[[], object]) -> object:
    try:
        return call()
    except redis.exceptions.RedisError as exc:
        return type(exc)


def test_arguments_are_taken_as_redis_py_takes_them(redis_server: RedisServer) -> None:
    client = connections.get_redis("locks")
    ECHO(client, [], ["loaded"])
    for value in (b"raw", bytearray(b"raw"), memoryview(b"raw"), "raw", 1.5, 7, None):
        ours = outcome(lambda v=value: ECHO(client, [], [v]))
        theirs = outcome(lambda v=value: client.evalsha(ECHO.sha, 0, v))
        assert ours == theirs, value
    assert outcome(lambda: ECHO(client, [], [None])) is redis.exceptions.DataError
    assert ECHO(client, [], ["after"]) == b"after"  # nothing half-sent
    assert in_use(client) == 0


def test_other_pools_go_through_execute_command(single_server: RedisServer) -> None:
    # Pools of one server's client (a cluster client has none: test_arguments_... above
    # sends through one on a cluster run).
    blocking = redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(single_server.url())
    )
    single = redis.Redis.from_url(single_server.url(), single_connection_client=True)
    try:
        for client in (blocking, single):
            assert ECHO(client, [], ["x"]) == b"x"
            assert execute(client, "PING") is True  # execute_command's callback ran
    finally:
        blocking.close()
        single.close()
