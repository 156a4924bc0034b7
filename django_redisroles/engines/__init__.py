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
is :mod:`..connections`'s business; this package only builds and closes:
:mod:`.retries` (``send_once``), :mod:`.options` (OPTIONS and URL to keyword
arguments), :mod:`.build` (the clients).
"""

from __future__ import annotations

from .build import AsyncEngine, Engine, build_async_engine, build_engine
from .options import checked_url, node_url_and_kwargs, pool_from_url, pool_kwargs
from .retries import send_once

__all__ = [
    "AsyncEngine",
    "Engine",
    "build_async_engine",
    "build_engine",
    "checked_url",
    "node_url_and_kwargs",
    "pool_from_url",
    "pool_kwargs",
    "send_once",
]
