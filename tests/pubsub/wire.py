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
    """A plain client of every master of the topology (one unless a cluster)."""
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


def commandstats(server: Any) -> dict[str, int]:
    """Calls per command, summed over every master (``INFO commandstats``)."""
    total: dict[str, int] = {}
    for client in masters(server):
        with client:
            for name, value in client.info("commandstats").items():
                key = name.removeprefix("cmdstat_")
                total[key] = total.get(key, 0) + int(value["calls"])
    return total


def resetstat(server: Any) -> None:
    for client in masters(server):
        with client:
            client.config_resetstat()


class Spy:
    """A raw subscriber of one layer channel: the frames published on it."""

    def __init__(self, server: Any, channel: str | bytes) -> None:
        self.sharded = isinstance(server, RedisCluster)
        client = server.node_for(channel).admin() if self.sharded else server.client()
        self.pubsub = client.pubsub()
        if self.sharded:
            self.pubsub.ssubscribe(channel)
        else:
            self.pubsub.subscribe(channel)
        self.pubsub.get_message(timeout=1)  # the confirmation

    def next(self, timeout: float = 2.0) -> bytes | None:
        """The data of the next frame, or None."""
        for _ in range(int(timeout / 0.1) + 1):
            got = self.pubsub.get_message(timeout=0.1)
            if got and got["type"] in ("message", "smessage"):
                data: bytes = got["data"]
                return data
        return None

    def close(self) -> None:
        self.pubsub.close()
