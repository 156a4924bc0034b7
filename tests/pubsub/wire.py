"""What Redis sees of the layer, on any topology: subscribers, channels, commands, a spy.

On one server or under Sentinel: ``PUBSUB CHANNELS``/``NUMSUB`` and ``SUBSCRIBE``
on the master. On a Redis Cluster the layer's channels are shard channels, so
these ask every master (``PUBSUB SHARDCHANNELS``), the owner of a channel's slot
(``PUBSUB SHARDNUMSUB``), and the spy ``SSUBSCRIBE``s on that owner.
"""

from __future__ import annotations

from typing import Any

import redis

from django_redisroles.testing import RedisCluster


def masters(server: Any) -> list[redis.Redis]:
    """A plain client of every master of the topology (one unless a cluster); close them."""
    if isinstance(server, RedisCluster):
        return [node.admin() for node in server.masters()]
    return [server.client()]


def channels(server: Any, pattern: str | bytes = "*") -> set[bytes]:
    """The channels (shard channels on a cluster) with subscribers, matching ``pattern``."""
    sub = "SHARDCHANNELS" if isinstance(server, RedisCluster) else "CHANNELS"
    found: set[bytes] = set()
    for client in masters(server):
        with client:
            found.update(client.execute_command("PUBSUB", sub, pattern))
    return found


def numsub(server: Any, channel: str | bytes) -> int:
    """How many connections listen on ``channel`` (one per process and event loop)."""
    if isinstance(server, RedisCluster):
        with server.node_for(channel).admin() as client:
            reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
    else:
        with server.client() as client:
            reply = client.execute_command("PUBSUB", "NUMSUB", channel)
    return int(reply[1])


class Stats:
    """``INFO`` of every master, on connections opened once (so they count nothing later)."""

    def __init__(self, server: Any) -> None:
        self.clients = masters(server)
        for client in self.clients:
            client.ping()

    def reset(self) -> None:
        for client in self.clients:
            client.config_resetstat()

    def commands(self) -> dict[str, int]:
        """Calls per command since :meth:`reset`, summed over every master."""
        total: dict[str, int] = {}
        for client in self.clients:
            for name, value in client.info("commandstats").items():
                key = name.removeprefix("cmdstat_")
                total[key] = total.get(key, 0) + int(value["calls"])
        return total

    def connections(self) -> int:
        """Connections the masters accepted so far."""
        return sum(int(c.info("stats")["total_connections_received"]) for c in self.clients)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class Spy:
    """A raw subscriber of one layer channel: the frames published on it."""

    def __init__(self, server: Any, channel: str | bytes) -> None:
        self.sharded = isinstance(server, RedisCluster)
        # Kept: a redis.Redis garbage-collected closes its pool, the spy's connection too.
        self.client = server.node_for(channel).admin() if self.sharded else server.client()
        self.pubsub = self.client.pubsub()
        if self.sharded:
            self.pubsub.ssubscribe(channel)
            self.pubsub.get_sharded_message(timeout=1)  # the confirmation
        else:
            self.pubsub.subscribe(channel)
            self.pubsub.get_message(timeout=1)

    def next(self, timeout: float = 2.0) -> bytes | None:
        """The data of the next frame, or None."""
        for _ in range(int(timeout / 0.1) + 1):
            if self.sharded:
                got = self.pubsub.get_sharded_message(timeout=0.1)
            else:
                got = self.pubsub.get_message(timeout=0.1)
            if got and got["type"] in ("message", "smessage"):
                data: bytes = got["data"]
                return data
        return None

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()
