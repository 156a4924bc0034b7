"""One command on a role's pooled connection, without redis-py's per-command plumbing.

The hot paths (a rate-limit check in front of every request, a lock's acquire
and release, every ``Script``) are one round trip each; on loopback the
round trip is ~50 µs, and redis-py 6+'s ``execute_command`` adds another
~10-15 µs of Python around it (deprecation and observability hooks, event
dispatch, HIMPORT argument sniffing, closures for its retry loop). :func:`execute`
keeps what matters of it and skips the rest:

* the connection comes from the pool and goes back to it (``finally``);
* it is sent and read under the connection's own ``Retry`` (the roles'
  ``retry_attempts``, none inside ``send_once()``), disconnecting before each
  retry, as redis-py does: a command that timed out is never read by the next
  one (redis-py's ``read_response`` disconnects on any error too);
* a maintenance notification asking to reconnect is honoured (redis-py 7+).

Only for a plain ``redis.ConnectionPool`` (what ``connections`` builds), on a
client that is not a single-connection client; anything
else (a Sentinel or blocking pool, a cluster client) goes through
``execute_command``. No response callback runs: for the commands sent here
(``EVALSHA``) redis-py registers none.
"""

from __future__ import annotations

import inspect
from typing import Any

import redis
import redis.utils

__all__ = ["execute"]

# With hiredis (which redis-py then uses to pack every command), the arguments
# go to its packer as they are: str and int, which it encodes as redis-py's own
# hiredis packer would (UTF-8), skipping that packer's per-argument Python loop.
_pack: Any = None
if redis.utils.HIREDIS_AVAILABLE:
    import hiredis

    _pack = hiredis.pack_command

# redis-py < 5.3 needs a command name for get_connection(); 5.3+ deprecates passing one.
_GET_ARGS: tuple[str, ...] = (
    ("EVALSHA",)
    if inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default
    is inspect.Parameter.empty
    else ()
)
# redis-py 7+: a server's maintenance notification may ask for a reconnect.
_MAINTENANCE = hasattr(redis.Connection, "should_reconnect")
# Pool class -> may the fast path use it (exactly redis-py's ConnectionPool).
_POOL = redis.ConnectionPool


def execute(client: redis.Redis, *args: Any) -> Any:
    """``client.execute_command(*args)``, sent on a pooled connection directly."""
    pool = getattr(client, "connection_pool", None)  # a cluster client has none
    if type(pool) is not _POOL or client.connection is not None:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    conn: Any = pool.get_connection(*_GET_ARGS)  # redis-py types it loosely across versions
    try:
        return conn.retry.call_with_retry(
            lambda: _round_trip(conn, args), lambda _error: conn.disconnect()
        )
    finally:
        if _MAINTENANCE and conn.should_reconnect():
            conn.disconnect()
        pool.release(conn)


def _round_trip(conn: Any, args: tuple[Any, ...]) -> Any:
    if _pack is None:
        packed = conn.pack_command(*args)
    else:
        try:
            packed = [_pack(args)]
        except TypeError:
            # A memoryview or bytearray (redis-py converts them first), or an argument
            # nobody can send: redis-py's own packer converts it, or raises its DataError.
            packed = conn.pack_command(*args)
    conn.send_packed_command(packed)
    return conn.read_response()
