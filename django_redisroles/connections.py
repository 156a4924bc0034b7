"""One pooled Redis client per role and process (and per event loop for asyncio).

Roles whose URL and options are equal share one client, so the single-instance
MVP holds one set of connections; moving a role to its own instance, to a
Redis Cluster (``redis+cluster://``) or behind Sentinel (``redis+sentinel://``)
is a settings change. Clients are redis-py's own (:mod:`.engines` builds them),
built lazily, reused across threads (redis-py pools are thread-safe and
fork-aware), and dropped when ``REDISROLES`` changes (the ``setting_changed``
signal, which ``override_settings`` sends).

Async clients are bound to the event loop they were created on: a
``redis.asyncio`` connection cannot be used from another loop. Each loop gets
its own clients, and they are closed when the loop is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import types
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import redis
import redis.asyncio

from . import conf
from .engines import (
    AsyncEngine,
    Engine,
    build_async_engine,
    build_engine,
    checked_url,
    node_url_and_kwargs,
    pool_from_url,
    pool_kwargs,
    send_once,
)

__all__ = [
    "aclose_async_clients",
    "async_primary_clients",
    "async_shard_client",
    "checked_url",
    "close_with_loop",
    "dedicated_connection",
    "get_async_redis",
    "get_async_redis_at",
    "get_redis",
    "get_redis_at",
    "pool_from_url",
    "pool_kwargs",
    "primary_clients",
    "reset",
    "send_once",
    "shard_client",
    "topology",
]

ConnectionKey = tuple[str, tuple[tuple[str, str], ...]]

_lock = threading.Lock()
# connection key -> engine; role (or "role@url", get_redis_at) -> engine: a
# shortcut so the hot path does not re-resolve settings on every call; both
# dropped on setting_changed.
_sync_by_key: dict[ConnectionKey, Engine] = {}
_sync_by_role: dict[str, Engine] = {}
# loop -> {connection key -> engine}; loop -> {role or "role@url" -> engine}
_Loop = asyncio.AbstractEventLoop
_async_by_key: weakref.WeakKeyDictionary[_Loop, dict[ConnectionKey, AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)
_async_by_role: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)
# Async engines dropped by reset() while their loop still runs: closed with the loop.
_async_retired: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)

# Loops whose close() we already wrapped.
_wrapped_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _where(cfg: conf.RoleConfig) -> str:
    return f"the {cfg.role} role"


# -- sync ---------------------------------------------------------------------------------------


def _sync_engine(role: str) -> Engine:
    engine = _sync_by_role.get(role)
    if engine is not None:
        return engine
    cfg = conf.role_config(role)
    with _lock:
        engine = _sync_by_role[role] = _sync_engine_of(cfg)
    return engine


def _sync_engine_of(cfg: conf.RoleConfig) -> Engine:
    """The engine of ``cfg``'s URL and options (call with ``_lock`` held)."""
    engine = _sync_by_key.get(cfg.connection_key)
    if engine is None:
        engine = _sync_by_key[cfg.connection_key] = build_engine(cfg.url, cfg.options, _where(cfg))
    return engine


def get_redis(role: str) -> Any:
    """The pooled sync client of ``role`` in this process.

    Roles that resolve to the same URL and options return the same client:
    a ``redis.Redis``, a ``redis.cluster.RedisCluster`` for a
    ``redis+cluster://`` URL, or the ``redis.Redis`` of
    ``Sentinel.master_for(SERVICE)`` for a ``redis+sentinel://`` one.
    """
    return _sync_engine(role).client


def get_redis_at(url: str, role: str) -> Any:
    """The pooled sync client of another ``url``, with ``role``'s connection options.

    For a Redis a role is told about elsewhere (a ``CACHES`` ``LOCATION`` that
    is not the cache role's URL): same pools, same reset, as ``get_redis``.
    """
    shortcut = f"{role}@{url}"  # like get_redis: resolve settings once, not per call
    engine = _sync_by_role.get(shortcut)
    if engine is not None:
        return engine.client
    cfg = dataclasses.replace(conf.role_config(role), url=url)
    with _lock:
        engine = _sync_by_role[shortcut] = _sync_engine_of(cfg)
    return engine.client


def topology(role: str) -> conf.Topology:
    """What ``role``'s URL names (``.kind``: ``single``, ``cluster`` or ``sentinel``)."""
    engine = _sync_by_role.get(role)
    if engine is not None:
        return engine.topology
    # Not built yet: parse only (building a cluster client connects to it).
    return conf.topology_of(checked_url(conf.role_url(role), f"the {role} role"))


def shard_client(role: str, key: str | bytes, *, refresh: bool = False) -> redis.Redis:
    """A plain ``redis.Redis`` of the master that serves ``key``'s slot, for ``role``.

    On a Redis Cluster: for what the cluster client cannot route (``SSUBSCRIBE``
    on a connection of its own, a command that must reach one node). One pool
    per node, with the role's options, dropped with the role's client. On one
    server or under Sentinel: ``get_redis(role)`` (one shard holds everything).
    The slot map is the cluster client's; ``refresh=True`` reloads it first
    (after a ``MOVED``, a ``sunsubscribe`` the server pushed because the slot
    moved, or a node failure).
    """
    engine = _sync_engine(role)
    if engine.topology.kind != "cluster":
        return engine.client  # type: ignore[no-any-return]
    if refresh:
        engine.client.nodes_manager.initialize()
    node = engine.client.get_node_from_key(key)
    return engine.node_client(node.host, int(node.port))


def primary_clients(role: str) -> list[redis.Redis]:
    """A plain client of each master of ``role``'s deployment (``get_redis(role)`` alone
    unless it is a Redis Cluster): for what must reach every master (``SCAN``,
    ``FLUSHDB``, ``INFO``)."""
    engine = _sync_engine(role)
    if engine.topology.kind != "cluster":
        return [engine.client]
    return [engine.node_client(n.host, int(n.port)) for n in engine.client.get_primaries()]


# -- asyncio ------------------------------------------------------------------------------------


def dedicated_connection(
    role: str, url: str | None = None, node: tuple[str, int] | None = None
) -> redis.Connection:
    """A new connection of ``role`` (or to ``url`` with the role's options), not pooled.

    For a connection that changes state for good (``CLIENT TRACKING``, ``SUBSCRIBE``)
    and lives as long as its owner: the cache's near-cache invalidation listener.
    Same URL, password and TLS options as the role's pool; RESP2 (its replies are
    plain arrays on every supported redis-py) and never retried (its owner reconnects).
    Not connected yet: ``connect()`` it. The caller closes it (``disconnect()``).
    ``node``: (host, port) of one node of a Redis Cluster or of the master a
    Sentinel named (a ``redis+cluster://`` or ``redis+sentinel://`` URL has no
    single server); the URL's credentials and TLS options, database 0.
    """
    cfg = conf.role_config(role)
    if url is not None:
        cfg = dataclasses.replace(cfg, url=url)
    if node is not None:
        topo = conf.topology_of(checked_url(cfg.url, _where(cfg)))
        node_url, kwargs = node_url_and_kwargs(topo, cfg.options, node[0], node[1], False)
        cfg = dataclasses.replace(cfg, url=node_url)
    else:
        kwargs = pool_kwargs(dict(cfg.options), cfg.url)
    kwargs.pop("retry_on_error", None)
    kwargs["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    kwargs["protocol"] = 2
    # redis-py's health check would send its own PING on a subscribed connection and
    # read whatever comes next as its reply: the owner runs its own heartbeat.
    kwargs["health_check_interval"] = 0
    pool = pool_from_url(redis.ConnectionPool, cfg.url, kwargs, f"the {cfg.role} role")
    connection: redis.Connection = pool.make_connection()
    return connection


def _running_loop(what: str, instead: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"{what} needs a running event loop; use {instead} from synchronous code."
        ) from None


def _async_engine(role: str, what: str, instead: str) -> AsyncEngine:
    loop = _running_loop(what, instead)
    by_role = _async_by_role.get(loop)
    if by_role is not None:
        engine = by_role.get(role)
        if engine is not None:
            return engine
    cfg = conf.role_config(role)
    with _lock:
        engine = _async_engine_of(loop, cfg)
        _async_by_role[loop][role] = engine
    return engine


def get_async_redis(role: str) -> Any:
    """The pooled asyncio client of ``role`` for the running event loop.

    Must be called from a coroutine. Each event loop gets its own client
    (connections cannot cross loops); it is closed when the loop closes. A
    ``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``, or the
    client of ``redis.asyncio.sentinel.Sentinel.master_for(SERVICE)``.
    """
    return _async_engine(role, f"get_async_redis({role!r})", f"get_redis({role!r})").client


def get_async_redis_at(url: str, role: str) -> Any:
    """``get_redis_at`` for the running event loop (closed with the loop)."""
    loop = _running_loop("get_async_redis_at()", "get_redis_at()")
    shortcut = f"{role}@{url}"
    by_role = _async_by_role.get(loop)
    if by_role is not None and (engine := by_role.get(shortcut)) is not None:
        return engine.client
    cfg = dataclasses.replace(conf.role_config(role), url=url)
    with _lock:
        engine = _async_engine_of(loop, cfg)
        _async_by_role[loop][shortcut] = engine
    return engine.client


def _async_engine_of(loop: asyncio.AbstractEventLoop, cfg: conf.RoleConfig) -> AsyncEngine:
    """The engine of ``cfg`` on ``loop`` (call with ``_lock`` held)."""
    by_key = _async_by_key.get(loop)
    if by_key is None:
        by_key = _async_by_key[loop] = {}
        _async_by_role[loop] = {}
        if loop not in _wrapped_loops:
            _wrapped_loops.add(loop)
            close_with_loop(loop, _closing_clients)
    engine = by_key.get(cfg.connection_key)
    if engine is None:
        engine = by_key[cfg.connection_key] = build_async_engine(cfg.url, cfg.options, _where(cfg))
    return engine


async def async_shard_client(
    role: str, key: str | bytes, *, refresh: bool = False
) -> redis.asyncio.Redis:
    """``shard_client`` for the running event loop: a plain ``redis.asyncio.Redis``.

    redis-py before 8.0 has no ``pubsub()`` on ``redis.asyncio.cluster.RedisCluster``
    (redis-py #2219) and no ``ssubscribe()`` on ``redis.asyncio``'s ``PubSub``: a
    sharded subscriber sends ``SSUBSCRIBE`` on this client's ``pubsub()``
    (``execute_command``) and reads the replies with ``parse_response()``,
    which works on every supported redis-py (see docs/scaling.md).
    """
    engine = _async_engine(role, "async_shard_client()", "shard_client()")
    if engine.topology.kind != "cluster":
        return engine.client  # type: ignore[no-any-return]
    cluster = engine.client
    await cluster.initialize()  # a no-op once the slot map is known
    if refresh:
        await cluster.nodes_manager.initialize()
    node = cluster.get_node_from_key(key)
    return engine.node_client(node.host, int(node.port))


async def async_primary_clients(role: str) -> list[redis.asyncio.Redis]:
    """``primary_clients`` for the running event loop."""
    engine = _async_engine(role, "async_primary_clients()", "primary_clients()")
    if engine.topology.kind != "cluster":
        return [engine.client]
    cluster = engine.client
    await cluster.initialize()
    return [engine.node_client(n.host, int(n.port)) for n in cluster.get_primaries()]


async def aclose_async_clients(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the async clients of ``loop`` (default: the running one)."""
    loop = loop or asyncio.get_running_loop()
    with _lock:
        engines = list((_async_by_key.pop(loop, None) or {}).values())
        engines += _async_retired.pop(loop, [])
        _async_by_role.pop(loop, None)
    for engine in engines:
        try:
            await engine.aclose()
        except Exception:  # noqa: BLE001 - closing on shutdown must not raise
            pass


def close_with_loop(
    loop: asyncio.AbstractEventLoop,
    closing: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None] | None],
) -> None:
    """Wrap ``loop.close`` so that the coroutine ``closing(loop)`` returns runs on it first.

    asyncio has no "on close" hook; channels_redis does the same. ``closing``
    is called once, when the loop closes, and may return None (nothing to
    close); a hook wrapped later runs earlier. Errors are not raised from close().
    """
    original = loop.close

    def close(self: asyncio.AbstractEventLoop) -> None:
        self.close = original  # type: ignore[method-assign]
        pending = closing(self)
        if pending is not None:
            if self.is_running() or self.is_closed():
                pending.close()
            else:
                try:
                    self.run_until_complete(pending)
                except Exception:  # noqa: BLE001 - closing on shutdown must not raise
                    pass
        original()

    loop.close = types.MethodType(close, loop)  # type: ignore[method-assign]


def _closing_clients(loop: asyncio.AbstractEventLoop) -> Coroutine[Any, Any, None] | None:
    if loop in _async_by_key or loop in _async_retired:
        return aclose_async_clients(loop)
    return None


def reset() -> None:
    """Drop every cached client (sync ones are disconnected now).

    Called when ``REDISROLES`` changes; call it yourself (or
    ``conf.reset_all()``) after changing ``$REDIS_URL`` at run time.
    """
    with _lock:
        sync_engines = list(_sync_by_key.values())
        _sync_by_key.clear()
        _sync_by_role.clear()
        for loop, by_key in list(_async_by_key.items()):
            _async_retired.setdefault(loop, []).extend(by_key.values())
        _async_by_key.clear()
        _async_by_role.clear()
    for engine in sync_engines:
        try:
            engine.close()
        except Exception:  # noqa: BLE001 - a node already gone must not stop the reset
            pass


# Dropped with REDISROLES (conf's one setting_changed receiver calls us).
conf.on_settings_change(reset, settings=("REDISROLES",))
