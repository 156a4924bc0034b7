"""Build redis-py's own client for a Redis URL and connection options, on each topology.

- ``redis://``, ``rediss://``, ``unix://``: ``redis.Redis`` / ``redis.asyncio.Redis``
  on a connection pool;
- ``redis+cluster://``: ``redis.cluster.RedisCluster`` /
  ``redis.asyncio.cluster.RedisCluster``, discovering the cluster from the seeds
  and following ``MOVED``/``ASK`` itself;
- ``redis+sentinel://``: ``Sentinel(...).master_for(SERVICE)`` (sync and
  ``redis.asyncio.sentinel``): each new connection asks the Sentinels where the
  master is, so the client follows a failover without a restart.

Every client gets the role's timeouts, TLS verification (the host name is
checked, on every supported redis-py) and retry policy: ``retry_attempts``
retries after a connection error or a timeout, and none inside
:class:`send_once`. Pooling (one client per process, topology and options)
is :mod:`.connections`'s business; this module only builds and closes.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.cluster
import redis.connection
import redis.exceptions
import redis.retry
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured

from . import conf

__all__ = [
    "AsyncEngine",
    "Engine",
    "build_async_engine",
    "build_engine",
    "checked_url",
    "pool_from_url",
    "pool_kwargs",
    "send_once",
]

_RETRY_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

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


class _RoleRetry(redis.retry.Retry):
    """redis-py's ``Retry``, except inside ``send_once()``: then no retry.

    Retry reads ``_retries`` only after a failure, so the number of retries
    is a property: the common, successful call costs nothing more. redis-py
    6+'s cluster clients read it too (``retry.get_retries()``) to decide how
    often to re-send a command after a timeout.
    """

    @property  # type: ignore[override]
    def _retries(self) -> int:
        return 0 if _once.get() else self._planned_retries

    @_retries.setter
    def _retries(self, value: int) -> None:
        self._planned_retries = value


class _AsyncRoleRetry(redis.asyncio.retry.Retry):
    """``_RoleRetry`` for ``redis.asyncio``."""

    @property  # type: ignore[override]
    def _retries(self) -> int:
        return 0 if _once.get() else self._planned_retries

    @_retries.setter
    def _retries(self, value: int) -> None:
        self._planned_retries = value


class _SendOnceCluster(redis.cluster.RedisCluster):  # type: ignore[misc]
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


class _AsyncSendOnceCluster(redis.asyncio.cluster.RedisCluster):  # type: ignore[misc]
    """``_SendOnceCluster`` for ``redis.asyncio``."""

    _rr_cluster_retries = 0

    @property
    def cluster_error_retry_attempts(self) -> int:
        return 0 if _once.get() else self._rr_cluster_retries

    @cluster_error_retry_attempts.setter
    def cluster_error_retry_attempts(self, value: int) -> None:
        self._rr_cluster_retries = value


def pool_kwargs(options: dict[str, Any], url: str, *, asyncio_: bool = False) -> dict[str, Any]:
    """Turn role OPTIONS into keyword arguments for ``ConnectionPool.from_url``."""
    kwargs = dict(options)
    for name in conf.SENTINEL_OPTIONS:  # the Sentinels', not the data nodes'
        kwargs.pop(name, None)
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
    if conf.topology_of(url).kind != "single":
        raise ImproperlyConfigured(
            f"The Redis URL of {where}, {conf.mask_url(url)!r}, names a Redis Cluster or "
            "a Sentinel service, which has no single connection pool: use "
            "connections.get_redis() / build_engine()."
        )
    try:
        return cls.from_url(url, **kwargs)
    except ValueError:
        # redis-py's message may quote the URL: say which one, masked, and why not.
        raise ImproperlyConfigured(
            f"redis-py refused the Redis URL of {where}, {conf.mask_url(url)!r} "
            "(its message is not shown: it may quote the password); check the query "
            "parameters and options against docs/settings.md."
        ) from None


# -- what a topology URL adds to the options ------------------------------------------------


def _url_kwargs(topology: conf.Topology) -> dict[str, Any]:
    """Credentials, database and query parameters of a topology URL, as keyword arguments
    (the URL wins over OPTIONS, as with redis-py's ``from_url``)."""
    kwargs: dict[str, Any] = {}
    parsers = _query_parsers()
    for name, value in topology.query.items():
        if name == "db":
            continue
        parser = parsers.get(name)
        kwargs[name] = parser(value) if parser is not None else value
    if topology.username:
        kwargs["username"] = topology.username
    if topology.password:
        kwargs["password"] = topology.password
    if topology.db is not None:
        kwargs["db"] = topology.db
    return kwargs


def _query_parsers() -> Mapping[str, Callable[[str], Any]]:
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS
    except ImportError:  # pragma: no cover - every supported redis-py has it
        return {}
    return URL_QUERY_ARGUMENT_PARSERS  # type: ignore[no-any-return]


def _kwargs(
    url: str, options: Mapping[str, Any], topology: conf.Topology, *, asyncio_: bool
) -> dict[str, Any]:
    kwargs = pool_kwargs(dict(options), url, asyncio_=asyncio_)
    kwargs.update(_url_kwargs(topology))
    for name in conf.SENTINEL_OPTIONS:
        kwargs.pop(name, None)
    if topology.tls:
        kwargs["ssl"] = True
    return kwargs


def _options_checked(url: str, options: Mapping[str, Any], where: str) -> None:
    problem = conf.options_problem(url, options)
    if problem is not None:
        raise ImproperlyConfigured(f"The connection options of {where} are not usable: {problem}.")


_SSL_NAMES = frozenset(
    {
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_check_hostname",
        "ssl_password",
        "ssl_min_version",
        "ssl_ciphers",
    }
)


def _tls_connection_class(ssl_kwargs: Mapping[str, Any]) -> type[redis.connection.SSLConnection]:
    """An ``SSLConnection`` with these TLS settings built in.

    redis-py's sync cluster client passes only some keyword arguments on to
    its nodes' connections (5.x drops ``ssl_check_hostname``: any certificate
    of the CA, for any name, would pass): the TLS settings travel in the
    connection class instead, the same on every redis-py.
    """
    settings = dict(ssl_kwargs)

    class _VerifiedSSLConnection(redis.connection.SSLConnection):
        def __init__(self, **kwargs: Any) -> None:
            for name in _SSL_NAMES:
                kwargs.pop(name, None)
            super().__init__(**kwargs, **settings)

    return _VerifiedSSLConnection


def _accepted(cls: Any) -> frozenset[str]:
    return frozenset(inspect.signature(cls.__init__).parameters)


def _drop_unaccepted(
    kwargs: dict[str, Any], accepted: frozenset[str], what: str, where: str
) -> None:
    """Remove what ``what`` does not take; an option the user set is ``ImproperlyConfigured``."""
    refused = []
    for name in list(kwargs):
        if name not in accepted:
            value = kwargs.pop(name)
            # Our defaults (health_check_interval...) may not apply to every client.
            if name not in conf.DEFAULT_OPTIONS or value != conf.DEFAULT_OPTIONS[name]:
                refused.append(name)
    if refused:
        raise ImproperlyConfigured(
            f"The connection options {', '.join(sorted(refused))} of {where} are not "
            f"supported by {what} in redis-py {redis.__version__}: remove them from OPTIONS."
        )


# -- the engines ----------------------------------------------------------------------------


class Engine:
    """A sync client built for one URL and options, and what it holds open.

    ``client`` is redis-py's own: ``redis.Redis``, ``redis.cluster.RedisCluster``
    or the ``redis.Redis`` of ``Sentinel.master_for``.
    """

    def __init__(
        self,
        client: Any,
        topology: conf.Topology,
        options: Mapping[str, Any],
        where: str,
        sentinel: Any = None,
    ) -> None:
        self.client = client
        self.topology = topology
        self.options = dict(options)
        self.where = where
        self.sentinel = sentinel
        self._nodes: dict[tuple[str, int], redis.Redis] = {}

    def node_client(self, host: str, port: int) -> redis.Redis:
        """A plain client of one node of this deployment, with the same options (pooled here)."""
        client = self._nodes.get((host, port))
        if client is None:
            url, kwargs = _node_url_and_kwargs(self.topology, self.options, host, port, False)
            pool = pool_from_url(redis.ConnectionPool, url, kwargs, self.where)
            client = self._nodes[(host, port)] = redis.Redis(connection_pool=pool)
        return client

    def close(self) -> None:
        """Disconnect every connection this engine holds."""
        for node in self._nodes.values():
            node.connection_pool.disconnect()
        self._nodes.clear()
        if self.topology.kind == "cluster":
            # Built with url= (see _sync_cluster), the nodes' clients do not own their
            # pools: close() alone would leave the connections open.
            for node in self.client.get_nodes():
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.disconnect()
            self.client.close()
            return
        self.client.connection_pool.disconnect()
        for sentinel in getattr(self.sentinel, "sentinels", ()):
            sentinel.connection_pool.disconnect()


class AsyncEngine:
    """An asyncio client built for one URL and options, and what it holds open."""

    def __init__(
        self,
        client: Any,
        topology: conf.Topology,
        options: Mapping[str, Any],
        where: str,
        sentinel: Any = None,
    ) -> None:
        self.client = client
        self.topology = topology
        self.options = dict(options)
        self.where = where
        self.sentinel = sentinel
        self._nodes: dict[tuple[str, int], redis.asyncio.Redis] = {}

    def node_client(self, host: str, port: int) -> redis.asyncio.Redis:
        """A plain asyncio client of one node, with the same options (pooled here)."""
        client = self._nodes.get((host, port))
        if client is None:
            url, kwargs = _node_url_and_kwargs(self.topology, self.options, host, port, True)
            pool = pool_from_url(redis.asyncio.ConnectionPool, url, kwargs, self.where)
            client = self._nodes[(host, port)] = redis.asyncio.Redis.from_pool(pool)
        return client

    async def aclose(self) -> None:
        """Close every connection this engine holds."""
        nodes = list(self._nodes.values())
        self._nodes.clear()
        for node in nodes:
            await node.aclose()
        await self.client.aclose()
        if self.topology.kind == "sentinel":
            await self.client.connection_pool.disconnect()
            for sentinel in getattr(self.sentinel, "sentinels", ()):
                await sentinel.aclose()


def _node_url_and_kwargs(
    topology: conf.Topology, options: Mapping[str, Any], host: str, port: int, asyncio_: bool
) -> tuple[str, dict[str, Any]]:
    """A single-server URL for one node of ``topology``, and its keyword arguments."""
    scheme = "rediss" if topology.tls else "redis"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}/0"
    kwargs = pool_kwargs(dict(options), url, asyncio_=asyncio_)
    kwargs.update(_url_kwargs(topology))
    kwargs.pop("db", None)  # a node client serves a cluster node (database 0)
    for name in conf.SENTINEL_OPTIONS:
        kwargs.pop(name, None)
    return url, kwargs


def build_engine(url: str, options: Mapping[str, Any], where: str) -> Engine:
    """The sync client of ``url`` with ``options``; ``ImproperlyConfigured`` if unusable."""
    checked_url(url, where)
    _options_checked(url, options, where)
    topology = conf.topology_of(url)
    if topology.kind == "cluster":
        return Engine(_sync_cluster(url, options, topology), topology, options, where)
    if topology.kind == "sentinel":
        sentinel, client = _sync_sentinel(url, options, topology)
        return Engine(client, topology, options, where, sentinel)
    kwargs = pool_kwargs(dict(options), url)
    pool = pool_from_url(redis.ConnectionPool, url, kwargs, where)
    return Engine(redis.Redis(connection_pool=pool), topology, options, where)


def build_async_engine(url: str, options: Mapping[str, Any], where: str) -> AsyncEngine:
    """The asyncio client of ``url`` with ``options`` (bound to the running loop when used)."""
    checked_url(url, where)
    _options_checked(url, options, where)
    topology = conf.topology_of(url)
    if topology.kind == "cluster":
        client = _async_cluster(url, options, topology, where)
        return AsyncEngine(client, topology, options, where)
    if topology.kind == "sentinel":
        sentinel, client = _async_sentinel(url, options, topology)
        return AsyncEngine(client, topology, options, where, sentinel)
    kwargs = pool_kwargs(dict(options), url, asyncio_=True)
    pool = pool_from_url(redis.asyncio.ConnectionPool, url, kwargs, where)
    # from_pool: the client owns the pool, so aclose() disconnects it too.
    return AsyncEngine(redis.asyncio.Redis.from_pool(pool), topology, options, where)


def _sync_cluster(url: str, options: Mapping[str, Any], topology: conf.Topology) -> Any:
    kwargs = _kwargs(url, options, topology, asyncio_=False)
    retry = kwargs.pop("retry")
    # The cluster client re-sends after a timeout itself (retry / cluster_error_retry_attempts);
    # its nodes' connections must not retry on their own.
    for name in ("retry_on_error", "retry_on_timeout", "db", "health_check_interval"):
        kwargs.pop(name, None)
    if kwargs.pop("ssl", False):
        ssl_kwargs = {name: kwargs.pop(name) for name in list(kwargs) if name in _SSL_NAMES}
        kwargs["connection_class"] = _tls_connection_class(ssl_kwargs)
    (first_host, first_port), *others = topology.hosts
    shown = f"[{first_host}]" if ":" in first_host else first_host
    # url= (a plain redis:// one, for the first seed): redis-py then hands the keyword
    # arguments, connection_class included, to each node's pool as they are.
    client = _SendOnceCluster(
        url=f"redis://{shown}:{first_port}",
        startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in others],
        retry=retry,
        **kwargs,
    )
    # Set, not passed: redis-py 6+ warns that the argument is deprecated (it reads retry).
    client.cluster_error_retry_attempts = retry._planned_retries
    return client


def _async_cluster(
    url: str, options: Mapping[str, Any], topology: conf.Topology, where: str
) -> Any:
    kwargs = _kwargs(url, options, topology, asyncio_=True)
    retry = kwargs.pop("retry")
    for name in ("retry_on_error", "retry_on_timeout", "db"):
        kwargs.pop(name, None)
    _drop_unaccepted(kwargs, _accepted(redis.asyncio.cluster.RedisCluster), "RedisCluster", where)
    client = _AsyncSendOnceCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in topology.hosts],
        retry=retry,
        **kwargs,
    )
    client.cluster_error_retry_attempts = retry._planned_retries  # see _sync_cluster
    return client


def _sentinel_kwargs(kwargs: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """How to talk to the Sentinels: the role's timeouts and TLS, the Sentinels' own
    credentials (``sentinel_username`` / ``sentinel_password``), never the data nodes'."""
    picked = {
        name: value
        for name, value in kwargs.items()
        if name.startswith("socket_") or name.startswith("ssl") or name == "client_name"
    }
    if options.get("sentinel_username"):
        picked["username"] = options["sentinel_username"]
    if options.get("sentinel_password"):
        picked["password"] = options["sentinel_password"]
    return picked


def _sentinel_options(options: Mapping[str, Any], topology: conf.Topology) -> dict[str, Any]:
    merged = dict(options)
    for name in conf.SENTINEL_OPTIONS:  # ?sentinel_password= in the URL wins
        if name in topology.query:
            merged[name] = topology.query[name]
    return merged


def _sync_sentinel(
    url: str, options: Mapping[str, Any], topology: conf.Topology
) -> tuple[Any, Any]:
    kwargs = _kwargs(url, options, topology, asyncio_=False)
    sentinel = redis.sentinel.Sentinel(
        list(topology.hosts),
        sentinel_kwargs=_sentinel_kwargs(kwargs, _sentinel_options(options, topology)),
        **kwargs,
    )
    return sentinel, sentinel.master_for(topology.service)


def _async_sentinel(
    url: str, options: Mapping[str, Any], topology: conf.Topology
) -> tuple[Any, Any]:
    kwargs = _kwargs(url, options, topology, asyncio_=True)
    sentinel = redis.asyncio.sentinel.Sentinel(
        list(topology.hosts),
        sentinel_kwargs=_sentinel_kwargs(kwargs, _sentinel_options(options, topology)),
        **kwargs,
    )
    return sentinel, sentinel.master_for(topology.service)
