"""``status()``: who listens right now, read from Redis (all app instances).

What ``manage.py redisroles pubsub`` prints, for code: dashboards, health
checks, "is anyone listening before I broadcast this?".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import redis

from .. import conf
from ..connections import get_redis
from .names import redis_channel, replay_stream


def status() -> dict[str, Any]:
    """The groups subscribed now, the consumer channels, and the replay streams.

    ``{"groups": [{"group": name, "processes": n}], "consumer_channels": n,
    "replay_streams": [{"group", "entries", "ttl", "last_seq"}]}``. A process
    (an event loop) subscribes once per group whatever its number of
    consumers, so ``processes`` counts app instances listening, and
    ``consumer_channels`` counts consumers (one per WebSocket connection)
    across all instances. Raises ``redis.RedisError`` when Redis is unreachable.
    """
    client = get_redis("pubsub")
    group_prefix = redis_channel("g", "")
    names = sorted(_channels(client, group_prefix))
    counts = dict(client.pubsub_numsub(*names)) if names else {}
    groups = [
        # One subscription per process (per event loop), whatever its consumer count.
        {"group": n[len(group_prefix) :].decode(errors="replace"), "processes": int(counts[n])}
        for n in names
    ]
    consumers = len(_channels(client, redis_channel("c", "")))
    stream_prefix = replay_stream("")
    pattern = conf.glob_escape(stream_prefix) + "*"
    # The role's clients return bytes (no decode_responses); redis-py types say str | bytes.
    found = cast("Iterator[bytes]", client.scan_iter(match=pattern, count=500))
    keys = [k for k in found if k.startswith(stream_prefix.encode())]
    streams = []
    for key in sorted(keys):
        last = cast("list[tuple[bytes, Any]]", client.xrevrange(key, count=1))
        streams.append(
            {
                "group": key.decode()[len(stream_prefix) :],
                "entries": client.xlen(key),
                "ttl": client.ttl(key),
                "last_seq": last[0][0].decode() if last else None,
            }
        )
    return {"groups": groups, "consumer_channels": consumers, "replay_streams": streams}


def _channels(client: redis.Redis, prefix: bytes) -> list[bytes]:
    """The subscribed channels under ``prefix`` (anchored, as every pattern of ours)."""
    pattern = conf.glob_escape(prefix.decode()) + "*"
    found = cast("list[bytes]", client.pubsub_channels(pattern))
    return [n for n in found if n.startswith(prefix)]
