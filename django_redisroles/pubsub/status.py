"""``status()``: who listens right now, read from Redis (all app instances).

What ``manage.py redisroles pubsub`` prints, for code: dashboards, health
checks, "is anyone listening before I broadcast this?".
"""

from __future__ import annotations

from typing import Any

from .. import conf
from ..connections import get_redis
from .layer import redis_channel, replay_stream


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
    names = sorted(
        n
        for n in client.pubsub_channels(conf.glob_escape(group_prefix.decode()) + "*")
        if n.startswith(group_prefix)  # anchored, as every pattern of ours
    )
    counts = dict(client.pubsub_numsub(*names)) if names else {}
    groups = [
        # One subscription per process (per event loop), whatever its consumer count.
        {"group": n[len(group_prefix) :].decode(errors="replace"), "processes": int(counts[n])}
        for n in names
    ]
    consumer_prefix = redis_channel("c", "")
    consumers = sum(
        1
        for n in client.pubsub_channels(conf.glob_escape(consumer_prefix.decode()) + "*")
        if n.startswith(consumer_prefix)
    )
    stream_prefix = replay_stream("")
    pattern = conf.glob_escape(stream_prefix) + "*"
    keys = [
        k
        for k in client.scan_iter(match=pattern, count=500)
        if k.startswith(stream_prefix.encode())
    ]
    streams = []
    for key in sorted(keys):
        last = client.xrevrange(key, count=1)
        streams.append(
            {
                "group": key.decode()[len(stream_prefix) :],
                "entries": client.xlen(key),
                "ttl": client.ttl(key),
                "last_seq": last[0][0].decode() if last else None,
            }
        )
    return {"groups": groups, "consumer_channels": consumers, "replay_streams": streams}
