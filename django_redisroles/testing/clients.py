"""A Redis Cluster client for assertions: what a test asks of "the server" asks every node.

redis-py's ``RedisCluster`` sends ``KEYS``, ``DBSIZE``, ``INFO``, ``PUBSUB
CHANNELS``, ``CLIENT LIST``, ``CONFIG SET`` and ``CONFIG RESETSTAT`` to one node
(its default node), so ``keys("*")`` on a 3-master cluster shows about a third of the keys
and ``info("commandstats")`` one node's counts. :class:`ClusterClient` asks
every master (every node where replicas count too) and merges the answers: the
keys of the whole cluster, the sum of the counters. Everything else is
redis-py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis
import redis.cluster

__all__ = ["ClusterClient", "merge_info"]

#: INFO fields that are one server's setting or identity, not a count to add up.
_NOT_SUMMED = ("max", "port", "pid", "process", "uptime", "version", "_id", "time", "hz", "epoch")


def merge_info(replies: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """INFO replies of several servers as one: counts added up, anything else the first's."""
    merged: dict[str, Any] = {}
    for reply in replies:
        for name, value in reply.items():
            if name not in merged:
                merged[name] = dict(value) if isinstance(value, dict) else value
            elif isinstance(value, dict) and isinstance(merged[name], dict):
                merged[name] = merge_info([merged[name], value])
            elif (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and isinstance(merged[name], int | float)
                and not any(part in name for part in _NOT_SUMMED)
            ):
                merged[name] += value
    return merged


class ClusterClient(redis.cluster.RedisCluster):
    """``redis.cluster.RedisCluster`` whose whole-keyspace commands see the whole cluster.

    ``target_nodes=`` still picks the nodes, as in redis-py.
    """

    _others: list[tuple[str, int]] | None = None

    def _nodes(self) -> list[redis.Redis]:
        primaries = self.get_primaries()  # type: ignore[no-untyped-call]
        return [self.get_redis_connection(node) for node in primaries]

    def _each(self, command: Callable[[redis.Redis], Any], replicas: bool = False) -> list[Any]:
        """``command(client)`` on every master (and every replica): a list of the answers."""
        primaries = self._nodes()
        others = self._other_nodes(primaries) if replicas else []  # asked before: see there
        answers = [command(node) for node in primaries]
        kwargs = dict(self.nodes_manager.connection_kwargs)
        for host, port in others:
            client = redis.Redis(host=host, port=port, **kwargs)
            try:
                answers.append(command(client))
            finally:
                client.close()
        return answers

    def _other_nodes(self, primaries: list[redis.Redis]) -> list[tuple[str, int]]:
        """Every node but the masters, from ``CLUSTER NODES`` (redis-py's slot map leaves out a
        replica that has not received a write yet, as Redis 7's ``CLUSTER SLOTS`` does).

        Asked once per client, before the command it serves: a test counting commands
        after ``config_resetstat()`` must not find this one among them. A failover swaps
        roles, not addresses, so the answer stays right.
        """
        if self._others is None:
            done = {
                (
                    str(p.connection_pool.connection_kwargs.get("host")),
                    p.connection_pool.connection_kwargs.get("port"),
                )
                for p in primaries
            }
            text = primaries[0].execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
            others: list[tuple[str, int]] = []
            for line in (text.decode() if isinstance(text, bytes) else str(text)).splitlines():
                fields = line.split()
                # A replica just attached may still show as a master without slots.
                if len(fields) < 3 or {"fail", "noaddr", "handshake"} & set(fields[2].split(",")):
                    continue
                host, _, port = fields[1].split("@")[0].split(",")[0].rpartition(":")
                if (host, int(port)) not in done:
                    others.append((host, int(port)))
            self._others = others
        return self._others

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().keys(pattern, **kwargs)
        return [key for keys in self._each(lambda n: n.keys(pattern)) for key in keys]

    def dbsize(self, **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().dbsize(**kwargs)
        return sum(int(size) for size in self._each(lambda n: n.dbsize()))

    def info(self, section: Any = None, *args: Any, **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().info(section, *args, **kwargs)
        return merge_info(self._each(lambda n: n.info(section, *args)))

    def pubsub_channels(self, pattern: Any = "*", **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().pubsub_channels(pattern, **kwargs)
        return sorted(
            {c for cs in self._each(lambda n: n.pubsub_channels(pattern), True) for c in cs}
        )

    def client_list(self, *args: Any, **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().client_list(*args, **kwargs)
        return [c for cs in self._each(lambda n: n.client_list(*args), True) for c in cs]

    def config_resetstat(self, **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().config_resetstat(**kwargs)
        return all(self._each(lambda n: n.config_resetstat(), True))

    def config_set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if "target_nodes" in kwargs:
            return super().config_set(name, value, *args, **kwargs)
        return all(self._each(lambda n: n.config_set(name, value, *args), True))
