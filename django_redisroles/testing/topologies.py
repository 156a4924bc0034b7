"""The three topologies a test can run on, by name: ``single``, ``cluster``, ``sentinel``."""

from __future__ import annotations

from typing import Any, Protocol

from .binaries import ServerBinary
from .cluster import RedisCluster
from .sentinel import SentinelGroup
from .servers import RedisServer

__all__ = ["TOPOLOGIES", "Topology", "start_topology"]

#: Names accepted by :func:`start_topology` (and the test suite's ``--topology``).
TOPOLOGIES: tuple[str, ...] = ("single", "cluster", "sentinel")


class Topology(Protocol):
    """What ``RedisServer``, ``RedisCluster`` and ``SentinelGroup`` have in common."""

    kind: str

    @property
    def servers(self) -> list[Any]: ...

    @property
    def running(self) -> bool: ...

    def url(self, db: int = 0) -> str: ...

    def client(self, db: int = 0, **kwargs: Any) -> Any: ...

    def flushall(self) -> None: ...

    def start(self) -> Any: ...

    def cleanup(self) -> None: ...


def start_topology(kind: str, *, binary: ServerBinary | str | None = None) -> Topology:
    """A running topology of ``kind``: a server; 3 masters with a replica each; a master,
    a replica and 3 Sentinels."""
    if kind == "single":
        return RedisServer(binary=binary).start()
    if kind == "cluster":
        return RedisCluster(masters=3, replicas=1, binary=binary).start()
    if kind == "sentinel":
        return SentinelGroup(replicas=1, sentinels=3, binary=binary).start()
    raise ValueError(f"unknown topology {kind!r}; one of: {', '.join(TOPOLOGIES)}")
