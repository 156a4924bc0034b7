"""``status()``: who listens right now, read from Redis (all app instances).

What ``manage.py redisroles pubsub`` prints, for code: dashboards, health
checks, "is anyone listening before I broadcast this?". On a Redis Cluster the
channels are shard channels: counted with ``PUBSUB SHARDCHANNELS`` /
``SHARDNUMSUB`` on every master (each knows only the channels of its slots).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import redis

from .. import conf
from ..connections import primary_clients
from .names import channel_prefix, key_prefix, sharded


def status() -> dict[str, Any]:
    """The groups subscribed now, the consumer channels, and the replay streams.

    ``{"groups": [{"group": name, "processes": n}], "consumer_channels": n,
    "replay_streams": [{"group", "entries", "ttl", "last_seq"}]}``. A process
    (an event loop) subscribes once per group whatever its number of
    consumers, so ``processes`` counts app instances listening, and
    ``consumer_channels`` counts consumers (one per WebSocket connection)
    across all instances. Raises ``redis.RedisError`` when Redis is unreachable.
    """
    shard = sharded()
    group_prefix = channel_prefix("g")
    consumer_prefix = channel_prefix("c")
    stream_prefix = key_prefix("replay")
    counts: dict[bytes, int] = {}
    consumers = 0
    streams = []
    for client in primary_clients("pubsub"):
        names = _channels(client, group_prefix, shard)
        if names:
            sub = "SHARDNUMSUB" if shard else "NUMSUB"
            reply = client.execute_command("PUBSUB", sub, *names)  # type: ignore[no-untyped-call]
            # A flat [name, n, ...] list (RESP2), a map under RESP3.
            pairs = (
                reply.items()
                if isinstance(reply, dict)
                else zip(reply[::2], reply[1::2], strict=True)
            )
            for name, n in pairs:
                counts[name] = counts.get(name, 0) + int(n)
        consumers += len(_channels(client, consumer_prefix, shard))
        pattern = conf.glob_escape(stream_prefix) + "*"
        # The role's clients return bytes (no decode_responses); redis-py types say str | bytes.
        found = cast("Iterator[bytes]", client.scan_iter(match=pattern, count=500))
        for key in sorted(k for k in found if k.startswith(stream_prefix.encode())):
            last = cast("list[tuple[bytes, Any]]", client.xrevrange(key, count=1))
            group = key.decode()[len(stream_prefix) :]
            streams.append(
                {
                    "group": group[:-1] if shard else group,  # less the hash tag's "}"
                    "entries": client.xlen(key),
                    "ttl": client.ttl(key),
                    "last_seq": last[0][0].decode() if last else None,
                }
            )
    groups = [
        # One subscription per process (per event loop), whatever its consumer count.
        {"group": _bare(n[len(group_prefix) :], shard), "processes": counts[n]}
        for n in sorted(counts)
    ]
    streams.sort(key=lambda s: str(s["group"]))
    return {"groups": groups, "consumer_channels": consumers, "replay_streams": streams}


def _bare(name: bytes, shard: bool) -> str:
    return (name[:-1] if shard and name.endswith(b"}") else name).decode(errors="replace")


def _channels(client: redis.Redis, prefix: bytes, shard: bool) -> list[bytes]:
    """The subscribed (shard) channels under ``prefix`` (anchored, as every pattern of ours)."""
    pattern = conf.glob_escape(prefix.decode()) + "*"
    sub = "SHARDCHANNELS" if shard else "CHANNELS"
    found = cast("list[bytes]", client.execute_command("PUBSUB", sub, pattern))  # type: ignore[no-untyped-call]
    return [n for n in found if n.startswith(prefix)]
