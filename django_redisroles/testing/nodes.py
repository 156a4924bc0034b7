"""The server processes a topology is made of, beyond a plain :class:`~.servers.RedisServer`:
a cluster node (cluster mode on, a bus port of its own) and a Sentinel."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .ports import free_port
from .servers import RedisServer

__all__ = ["ClusterNode", "SentinelServer", "text"]


class ClusterNode(RedisServer):
    """One node of a :class:`RedisCluster`: a ``RedisServer`` with cluster mode on."""

    def __init__(self, *, node_timeout: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bus_port = free_port()
        self.config.update(
            {
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": str(node_timeout),
                "cluster-port": str(self.bus_port),
                # A replica takes over however long it was cut off (tests pause nodes).
                "cluster-replica-validity-factor": "0",
                # A replica's first sync starts at once, not after 5 s.
                "repl-diskless-sync-delay": "0",
            }
        )
        if self.tls:
            self.config.update({"tls-cluster": "yes", "tls-replication": "yes"})
        self.node_id = ""

    def _choose_ports(self) -> None:
        super()._choose_ports()
        self.bus_port = free_port()
        self.config["cluster-port"] = str(self.bus_port)

    def admin(self, **kwargs: Any) -> redis.Redis:
        """A plain client of this node alone (no redirections followed)."""
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return self.client(**kwargs)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ClusterNode 127.0.0.1:{self.port} {self.node_id[:8]} {state}>"


class SentinelServer(RedisServer):
    """One Sentinel process: the server binary with a ``sentinel.conf`` and ``--sentinel``."""

    def __init__(self, *, sentinel_config: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sentinel_config = sentinel_config

    def _leading_args(self) -> list[str]:
        path = self.dir / "sentinel.conf"
        if not path.exists():  # Sentinel rewrites it as it learns: written once
            path.write_text(self.sentinel_config)
        return [str(path), "--sentinel"]

    def _args(self) -> list[str]:
        # No keyspace in a Sentinel: drop the data options RedisServer adds.
        args = super()._args()
        for name in ("--databases", "--appendonly", "--appendfsync", "--save"):
            while name in args:
                at = args.index(name)
                del args[at : at + 2]
        return args

    def __repr__(self) -> str:
        return f"<SentinelServer 127.0.0.1:{self.port} {'running' if self.running else 'stopped'}>"


def text(value: Any) -> str:
    """A reply as ``str`` (the harness's admin clients do not decode)."""
    return value.decode() if isinstance(value, bytes) else str(value)
