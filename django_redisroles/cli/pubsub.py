"""``redisroles pubsub``: who listens to which group, and what the replay streams hold."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

import redis

from .. import conf
from ..connections import get_redis
from ..pubsub.layer import redis_channel, replay_stream

HELP = "Show pub/sub groups with their subscribed processes, and the replay streams."


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def describe() -> dict[str, Any]:
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


def handle(command: Any, options: dict[str, Any]) -> int:
    try:
        data = describe()
    except redis.RedisError as exc:
        command.stderr.write(f"cannot reach the pubsub role's Redis: {type(exc).__name__}: {exc}")
        return 1
    if options["json"]:
        command.stdout.write(json.dumps(data, indent=2))
        return 0
    out = command.stdout
    out.write(f"consumer channels subscribed: {data['consumer_channels']}")
    out.write("groups (processes subscribed):")
    for row in data["groups"] or [{"group": "(none)", "processes": ""}]:
        out.write(f"  {row['group']:<40} {row['processes']}")
    out.write("replay streams (entries, ttl s, last seq):")
    for row in data["replay_streams"] or [
        {"group": "(none)", "entries": "", "ttl": "", "last_seq": ""}
    ]:
        out.write(f"  {row['group']:<40} {row['entries']:>6} {row['ttl']:>7} {row['last_seq']}")
    return 0
