"""One pooled Redis client per role and process (and per event loop for asyncio).

Roles whose URL and options are equal share one pool, so the single-instance
MVP holds one set of connections; moving a role to its own instance is a
settings change. Clients are built lazily, reused across threads (redis-py
pools are thread-safe and fork-aware), and dropped when ``REDISROLES`` changes
(the ``setting_changed`` signal, which ``override_settings`` sends).

Async clients are bound to the event loop they were created on: a
``redis.asyncio`` connection cannot be used from another loop. Each loop gets
its own clients, and they are closed when the loop is closed.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import threading
import types
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.exceptions
import redis.retry
from django.core.exceptions import ImproperlyConfigured

from . import conf

__all__ = [
    "aclose_async_clients",
    "checked_url",
    "close_with_loop",
    "dedicated_connection",
    "get_async_redis",
    "get_async_redis_at",
    "get_redis",
    "get_redis_at",
    "pool_from_url",
    "pool_kwargs",
    "reset",
    "send_once",
]

ConnectionKey = tuple[str, tuple[tuple[str, str], ...]]

_lock = threading.Lock()
# connection key -> client; role (or "role@url", get_redis_at) -> client: a
# shortcut so the hot path does not re-resolve settings on every call; both
# dropped on setting_changed.
_sync_by_key: dict[ConnectionKey, redis.Redis] = {}
_sync_by_role: dict[str, redis.Redis] = {}
# loop -> {connection key -> client}; loop -> {role or "role@url" -> client}
_async_by_key: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[ConnectionKey, redis.asyncio.Redis]
] = weakref.WeakKeyDictionary()
_async_by_role: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, redis.asyncio.Redis]
] = weakref.WeakKeyDictionary()
# Async clients dropped by reset() while their loop still runs: closed with the loop.
_async_retired: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[redis.asyncio.Redis]] = (
    weakref.WeakKeyDictionary()
)

# Loops whose close() we already wrapped.
_wrapped_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

_RETRY_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# True inside send_once(): redis-py sends each command once, whatever retry_attempts says.
_once: contextvars.ContextVar[bool] = contextvars.ContextVar("redisroles_send_once", default=False)


class send_once:  # lower case: used like a function, ``with send_once():``
    """Commands sent inside this block are never re-sent by redis-py.

    The roles' pools retry a command after a connection error or a timeout
    (``retry_attempts``); a timeout does not mean the command did not run,
    so a command with a side effect that is not idempotent (INCR, a rate-limit
    count) is sent inside ``with send_once():`` and its failure goes to the
    role's failure policy instead. Per thread and per asyncio task (a context
    variable): ``with send_once(): await client.incr(key)`` works too.
    Reconnecting a pooled connection the server closed is still done before
    the command is sent (redis-py checks each connection it hands out).
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        # A class, not @contextmanager: the rate-limit check enters it per request.
        self._token = _once.set(True)

    def __exit__(self, *exc: object) -> None:
        _once.reset(self._token)


class _RoleRetry(redis.retry.Retry):
    """redis-py's ``Retry``, except inside ``send_once()``: then no retry.

    Retry reads ``_retries`` only after a failure, so the number of retries
    is a property: the common, successful call costs nothing more.
    """

    @property
    def _retries(self) -> int:
        return 0 if _once.get() else self._planned_retries

    @_retries.setter
    def _retries(self, value: int) -> None:
        self._planned_retries = value


class _AsyncRoleRetry(redis.asyncio.retry.Retry):
    """``_RoleRetry`` for ``redis.asyncio``."""

    @property
    def _retries(self) -> int:
        return 0 if _once.get() else self._planned_retries

    @_retries.setter
    def _retries(self, value: int) -> None:
        self._planned_retries = value


def pool_kwargs(options: dict[str, Any], url: str, *, asyncio_: bool = False) -> dict[str, Any]:
    """Turn role OPTIONS into keyword arguments for ``ConnectionPool.from_url``."""
    kwargs = dict(options)
    attempts = int(kwargs.pop("retry_attempts", 0) or 0)
    backoff = redis.backoff.ExponentialBackoff(cap=0.5, base=0.02)
    if asyncio_:
        kwargs["retry"] = _AsyncRoleRetry(backoff, attempts, _RETRY_ERRORS)
    else:
        kwargs["retry"] = _RoleRetry(backoff, attempts, _RETRY_ERRORS)
    if attempts:
        kwargs["retry_on_error"] = list(_RETRY_ERRORS)
    if url.startswith("unix://"):
        # Unix-socket connections take no TCP keepalive options.
        kwargs.pop("socket_keepalive", None)
        kwargs.pop("socket_keepalive_options", None)
    tls = conf.tls_verification(url, options)
    if tls.tls and tls.check_hostname is None and tls.cert_reqs != "none":
        # redis-py < 6 does not check that the certificate names the host
        # (ssl_check_hostname=False): any certificate the CA signed, for any
        # name, was accepted. Verified on every supported redis-py.
        kwargs["ssl_check_hostname"] = True
    return kwargs


def checked_url(url: str, where: str) -> str:
    """``url`` if it is a usable Redis URL, else ``ImproperlyConfigured`` naming it masked.

    Never a bare ``ValueError`` from the URL parser, whose text may quote a
    piece of the password.
    """
    problem = conf.url_problem(url)
    if problem is not None:
        raise ImproperlyConfigured(f"The Redis URL of {where} is not usable: {problem}.")
    return url


def pool_from_url(cls: Any, url: str, kwargs: dict[str, Any], where: str) -> Any:
    """``cls.from_url(url, **kwargs)``; a URL redis-py refuses is ``ImproperlyConfigured``.

    ``where`` names the URL's owner in the message ("the cache role").
    """
    checked_url(url, where)
    try:
        return cls.from_url(url, **kwargs)
    except ValueError:
        # redis-py's message may quote the URL: say which one, masked, and why not.
        raise ImproperlyConfigured(
            f"redis-py refused the Redis URL of {where}, {conf.mask_url(url)!r} "
            "(its message is not shown: it may quote the password); check the query "
            "parameters and options against docs/settings.md."
        ) from None


def _build_sync(cfg: conf.RoleConfig) -> redis.Redis:
    kwargs = pool_kwargs(dict(cfg.options), cfg.url)
    pool = pool_from_url(redis.ConnectionPool, cfg.url, kwargs, f"the {cfg.role} role")
    return redis.Redis(connection_pool=pool)  # pool lifetime is ours (reset())


def _build_async(cfg: conf.RoleConfig) -> redis.asyncio.Redis:
    kwargs = pool_kwargs(dict(cfg.options), cfg.url, asyncio_=True)
    pool = pool_from_url(redis.asyncio.ConnectionPool, cfg.url, kwargs, f"the {cfg.role} role")
    # from_pool: the client owns the pool, so aclose() disconnects it too.
    return redis.asyncio.Redis.from_pool(pool)


def get_redis(role: str) -> redis.Redis:
    """The pooled sync client of ``role`` in this process.

    Roles that resolve to the same URL and options return the same client.
    """
    client = _sync_by_role.get(role)
    if client is not None:
        return client
    cfg = conf.role_config(role)
    with _lock:
        client = _sync_client(cfg)
        _sync_by_role[role] = client
    return client


def get_redis_at(url: str, role: str) -> redis.Redis:
    """The pooled sync client of another ``url``, with ``role``'s connection options.

    For a Redis a role is told about elsewhere (a ``CACHES`` ``LOCATION`` that
    is not the cache role's URL): same pools, same reset, as ``get_redis``.
    """
    shortcut = f"{role}@{url}"  # like get_redis: resolve settings once, not per call
    client = _sync_by_role.get(shortcut)
    if client is not None:
        return client
    cfg = dataclasses.replace(conf.role_config(role), url=url)
    with _lock:
        client = _sync_by_role[shortcut] = _sync_client(cfg)
    return client


def _sync_client(cfg: conf.RoleConfig) -> redis.Redis:
    """The client of ``cfg``'s URL and options (call with ``_lock`` held)."""
    client = _sync_by_key.get(cfg.connection_key)
    if client is None:
        client = _sync_by_key[cfg.connection_key] = _build_sync(cfg)
    return client


def dedicated_connection(role: str, url: str | None = None) -> redis.Connection:
    """A new connection of ``role`` (or to ``url`` with the role's options), not pooled.

    For a connection that changes state for good (``CLIENT TRACKING``, ``SUBSCRIBE``)
    and lives as long as its owner: the cache's near-cache invalidation listener.
    Same URL, password and TLS options as the role's pool; RESP2 (its replies are
    plain arrays on every supported redis-py) and never retried (its owner reconnects).
    Not connected yet: ``connect()`` it. The caller closes it (``disconnect()``).
    """
    cfg = conf.role_config(role)
    if url is not None:
        cfg = dataclasses.replace(cfg, url=url)
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


def get_async_redis(role: str) -> redis.asyncio.Redis:
    """The pooled ``redis.asyncio`` client of ``role`` for the running event loop.

    Must be called from a coroutine. Each event loop gets its own client
    (connections cannot cross loops); it is closed when the loop closes.
    """
    loop = _running_loop(f"get_async_redis({role!r})", f"get_redis({role!r})")
    by_role = _async_by_role.get(loop)
    if by_role is not None:
        client = by_role.get(role)
        if client is not None:
            return client
    cfg = conf.role_config(role)
    with _lock:
        client = _async_client(loop, cfg)
        _async_by_role[loop][role] = client
    return client


def get_async_redis_at(url: str, role: str) -> redis.asyncio.Redis:
    """``get_redis_at`` for the running event loop (closed with the loop)."""
    loop = _running_loop("get_async_redis_at()", "get_redis_at()")
    shortcut = f"{role}@{url}"
    by_role = _async_by_role.get(loop)
    if by_role is not None and (client := by_role.get(shortcut)) is not None:
        return client
    cfg = dataclasses.replace(conf.role_config(role), url=url)
    with _lock:
        client = _async_client(loop, cfg)
        _async_by_role[loop][shortcut] = client
    return client


def _async_client(loop: asyncio.AbstractEventLoop, cfg: conf.RoleConfig) -> redis.asyncio.Redis:
    """The client of ``cfg`` on ``loop`` (call with ``_lock`` held)."""
    by_key = _async_by_key.get(loop)
    if by_key is None:
        by_key = _async_by_key[loop] = {}
        _async_by_role[loop] = {}
        if loop not in _wrapped_loops:
            _wrapped_loops.add(loop)
            close_with_loop(loop, _closing_clients)
    client = by_key.get(cfg.connection_key)
    if client is None:
        client = by_key[cfg.connection_key] = _build_async(cfg)
    return client


async def aclose_async_clients(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the async clients of ``loop`` (default: the running one)."""
    loop = loop or asyncio.get_running_loop()
    with _lock:
        clients = list((_async_by_key.pop(loop, None) or {}).values())
        clients += _async_retired.pop(loop, [])
        _async_by_role.pop(loop, None)
    for client in clients:
        try:
            await client.aclose()
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
    """Drop every cached client (sync pools are disconnected now).

    Called when ``REDISROLES`` changes; call it yourself (or
    ``conf.reset_all()``) after changing ``$REDIS_URL`` at run time.
    """
    with _lock:
        sync_clients = list(_sync_by_key.values())
        _sync_by_key.clear()
        _sync_by_role.clear()
        for loop, by_key in list(_async_by_key.items()):
            _async_retired.setdefault(loop, []).extend(by_key.values())
        _async_by_key.clear()
        _async_by_role.clear()
    for client in sync_clients:
        client.connection_pool.disconnect()


# Dropped with REDISROLES (conf's one setting_changed receiver calls us).
conf.on_settings_change(reset, settings=("REDISROLES",))
