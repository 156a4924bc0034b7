"""Build (and close) redis-py's own client of one URL and options, on each topology.

:class:`Engine` / :class:`AsyncEngine` hold the client and what it keeps
open: a cluster's per-node clients (:meth:`Engine.node_client`, for sharded
pub/sub and per-master scans), the Sentinels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.cluster
import redis.retry
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured

from .. import conf
from .options import (
    SSL_NAMES,
    accepted,
    checked_url,
    client_kwargs,
    drop_unaccepted,
    node_url_and_kwargs,
    options_checked,
    pool_from_url,
    pool_kwargs,
    tls_connection_class,
)
from .retries import AsyncSendOnceCluster, SendOnceCluster

__all__ = ["AsyncEngine", "Engine", "build_async_engine", "build_engine"]


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
            url, kwargs = node_url_and_kwargs(self.topology, self.options, host, port, False)
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
            url, kwargs = node_url_and_kwargs(self.topology, self.options, host, port, True)
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


def build_engine(url: str, options: Mapping[str, Any], where: str) -> Engine:
    """The sync client of ``url`` with ``options``; ``ImproperlyConfigured`` if unusable."""
    checked_url(url, where)
    options_checked(url, options, where)
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
    options_checked(url, options, where)
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
    kwargs = client_kwargs(url, options, topology, asyncio_=False)
    retry = kwargs.pop("retry")
    # The cluster client re-sends after a timeout itself (retry / cluster_error_retry_attempts);
    # its nodes' connections must not retry on their own.
    for name in ("retry_on_error", "retry_on_timeout", "db", "health_check_interval"):
        kwargs.pop(name, None)
    if kwargs.pop("ssl", False):
        ssl_kwargs = {name: kwargs.pop(name) for name in list(kwargs) if name in SSL_NAMES}
        kwargs["connection_class"] = tls_connection_class(ssl_kwargs)
    (first_host, first_port), *others = topology.hosts
    shown = f"[{first_host}]" if ":" in first_host else first_host
    # url= (a plain redis:// one, for the first seed): redis-py then hands the keyword
    # arguments, connection_class included, to each node's pool as they are.
    client = SendOnceCluster(
        url=f"redis://{shown}:{first_port}",
        startup_nodes=[
            redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in others
        ],
        retry=retry,
        **kwargs,
    )
    # Set, not passed: redis-py 6+ warns that the argument is deprecated (it reads retry).
    client.cluster_error_retry_attempts = retry._planned_retries
    return client


def _async_cluster(
    url: str, options: Mapping[str, Any], topology: conf.Topology, where: str
) -> Any:
    kwargs = client_kwargs(url, options, topology, asyncio_=True)
    retry = kwargs.pop("retry")
    for name in ("retry_on_error", "retry_on_timeout", "db"):
        kwargs.pop(name, None)
    drop_unaccepted(kwargs, accepted(redis.asyncio.cluster.RedisCluster), "RedisCluster", where)
    client = AsyncSendOnceCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in topology.hosts],
        retry=retry,
        **kwargs,
    )
    client.cluster_error_retry_attempts = retry._planned_retries  # see _sync_cluster
    return client


def _sentinel_kwargs(
    kwargs: Mapping[str, Any], options: Mapping[str, Any], *, asyncio_: bool
) -> dict[str, Any]:
    """How to talk to the Sentinels: the role's timeouts and TLS, the Sentinels' own
    credentials (``sentinel_username`` / ``sentinel_password``), never the data nodes'.

    And no retry of their own: redis-py's default (10 retries, backoff up to 10 s) per
    Sentinel would hold a request for many seconds on a Sentinel outage. Asking the
    Sentinels is part of connecting to the master, which the role's ``retry_attempts``
    retries as a whole.
    """
    picked = {
        name: value
        for name, value in kwargs.items()
        if name.startswith("socket_") or name.startswith("ssl") or name == "client_name"
    }
    no_retry = redis.asyncio.retry.Retry if asyncio_ else redis.retry.Retry
    picked["retry"] = no_retry(redis.backoff.NoBackoff(), 0)
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


def _service(topology: conf.Topology) -> str:
    if not topology.service:  # pragma: no cover - conf.topology_of refuses such a URL
        raise ImproperlyConfigured("A redis+sentinel:// URL must name its service.")
    return topology.service


def _sync_sentinel(
    url: str, options: Mapping[str, Any], topology: conf.Topology
) -> tuple[Any, Any]:
    kwargs = client_kwargs(url, options, topology, asyncio_=False)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(topology.hosts),
        sentinel_kwargs=_sentinel_kwargs(
            kwargs, _sentinel_options(options, topology), asyncio_=False
        ),
        **kwargs,
    )
    return sentinel, sentinel.master_for(_service(topology))  # type: ignore[no-untyped-call]


def _async_sentinel(
    url: str, options: Mapping[str, Any], topology: conf.Topology
) -> tuple[Any, Any]:
    kwargs = client_kwargs(url, options, topology, asyncio_=True)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(topology.hosts),
        sentinel_kwargs=_sentinel_kwargs(
            kwargs, _sentinel_options(options, topology), asyncio_=True
        ),
        **kwargs,
    )
    return sentinel, sentinel.master_for(_service(topology))
