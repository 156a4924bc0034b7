"""Pub/sub role vs channels_redis, side by side on one redis-server.

    PYTHONPATH=. python -m benchmarks.pubsub [--quick]
    PYTHONPATH=. python -m benchmarks.pubsub --topology cluster   # ours on 3 masters


1. Cost of one broadcast from sync code: ``broadcast()`` vs a bare redis-py
   ``PUBLISH`` vs ``async_to_sync(layer.group_send)`` on channels_redis's
   ``RedisChannelLayer`` and ``RedisPubSubChannelLayer`` (median, p99, new
   connections per call).
2. Redis round trips (client writes) and commands of one ``group_send`` to
   groups of 1 / 100 / 1000 members.
   ``--topology cluster``: ours only, on a 3-master Redis Cluster (peers have no
   cluster support), with group names on each master; commands summed over
   every master, plain and replay groups.
3. Fan-out latency: 100 consumers of one process (the layer alone), then 100
   WebSocket clients on 2 ASGI instances (uvicorn) of the testproject, messages
   published from this process, p50/p99 over every delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import django
from django.conf import settings

from django_redisroles.testing import RedisServer

OURS = "django_redisroles.pubsub.RedisRolesChannelLayer"
CORE = "channels_redis.core.RedisChannelLayer"
PEER_PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
LAYERS = {"redisroles": OURS, "channels_redis core": CORE, "channels_redis pubsub": PEER_PUBSUB}


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["channels", "django_redisroles"],
        REDISROLES={"URL": url, "KEY_PREFIX": "bench"},
        CHANNEL_LAYERS={
            "redisroles": {"BACKEND": OURS},
            "channels_redis core": {"BACKEND": CORE, "CONFIG": {"hosts": [url]}},
            "channels_redis pubsub": {"BACKEND": PEER_PUBSUB, "CONFIG": {"hosts": [url]}},
        },
    )
    django.setup()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def stats(client: Any) -> tuple[int, int]:
    info = client.info("stats")
    return int(info["total_commands_processed"]), int(info["total_connections_received"])


# -- round-trip counting (client side: every write of a request to Redis) ----
class RoundTrips:
    """Counts request writes by redis.asyncio connections (a pipeline is one)."""

    count = 0

    @classmethod
    @contextmanager
    def installed(cls) -> Iterator[None]:
        import redis.asyncio.connection as conn_mod

        original = conn_mod.AbstractConnection.send_packed_command

        async def counting(self: Any, command: Any, check_health: bool = True) -> None:
            cls.count += 1
            await original(self, command, check_health)

        conn_mod.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        try:
            yield
        finally:
            conn_mod.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


# -- 1. one broadcast from sync code -------------------------------------------
def bench_sync(url: str, quick: bool) -> list[dict[str, Any]]:
    import msgpack
    import redis
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from django_redisroles.pubsub import broadcast

    n_fast, n_slow = (500, 60) if quick else (3000, 300)
    message = {"type": "notify", "message": {"text": "Deploy finished", "n": 1}}
    probe = redis.Redis.from_url(url)
    bare_client = redis.Redis.from_url(url)
    rows = []

    def run(name: str, fn: Callable[[], Any], n: int) -> None:
        before = stats(probe)
        samples = timed(fn, n, warmup=max(20, n // 10))
        after = stats(probe)
        calls = n + max(20, n // 10)
        rows.append(
            {
                "case": name,
                "median_us": statistics.median(samples),
                "p99_us": pct(samples, 99),
                "cmds": (after[0] - before[0] - 1) / calls,
                "conns": (after[1] - before[1]) / calls,
            }
        )

    # Bare PUBLISH and broadcast() interleaved call by call, so machine noise hits
    # both alike; the bare call publishes the same message, serialized each time.
    a: list[float] = []
    b: list[float] = []
    before = stats(probe)
    for i in range(n_fast * 2 + 200):
        t0 = time.perf_counter_ns()
        bare_client.publish(b"bench:bare", msgpack.packb(message))
        t1 = time.perf_counter_ns()
        broadcast("bench", message, using="redisroles")
        t2 = time.perf_counter_ns()
        if i >= 200:
            a.append((t1 - t0) / 1000)
            b.append((t2 - t1) / 1000)
    after = stats(probe)
    calls = n_fast * 2 + 200
    for name, samples in (("bare redis-py PUBLISH", a), ("redisroles broadcast()", b)):
        rows.append(
            {
                "case": name,
                "median_us": statistics.median(samples),
                "p99_us": pct(samples, 99),
                "cmds": (after[0] - before[0] - 1) / calls / 2,
                "conns": (after[1] - before[1]) / calls / 2,
            }
        )
    for alias in ("redisroles", "channels_redis pubsub", "channels_redis core"):
        layer = get_channel_layer(alias)
        send = async_to_sync(layer.group_send)
        run(f"async_to_sync(group_send) {alias}", lambda s=send: s("bench", message), n_slow)
    bare_client.close()
    probe.close()
    return rows


# -- 2. round trips per group_send ---------------------------------------------
async def group_send_cost(
    alias: str, size: int, url: str, *, spread: bool = False
) -> tuple[int, int]:
    import redis.asyncio
    from channels.layers import get_channel_layer

    layer = get_channel_layer(alias)
    group = f"size{size}"
    if spread:
        # As if each member were a consumer of a different process: channels_redis
        # core keeps one list per process, so its work grows with processes.
        channels = [f"specific.proc{i}!c" for i in range(size)]
    else:
        channels = [await layer.new_channel() for _ in range(size)]
    for channel in channels:
        await layer.group_add(group, channel)
    await layer.group_send("warm-up", {"type": "x"})
    probe = redis.asyncio.Redis.from_url(url)
    before = int((await probe.info("stats"))["total_commands_processed"])
    RoundTrips.count = 0
    with RoundTrips.installed():
        await layer.group_send(group, {"type": "notify", "n": 1})
        trips = RoundTrips.count
    after = int((await probe.info("stats"))["total_commands_processed"])
    await probe.aclose()
    await layer.flush()
    return trips, after - before - 1


async def cluster_group_send_cost(group: str, size: int, cluster: Any) -> tuple[int, int]:
    """Client writes and Redis commands (every master) of one group_send on a cluster."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer("redisroles")
    channels = [await layer.new_channel() for _ in range(size)]
    for channel in channels:
        await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "warm-up"})  # this master's connection is open
    probes = [node.admin() for node in cluster.masters()]

    def processed() -> int:
        return sum(int(p.info("stats")["total_commands_processed"]) for p in probes)

    before = processed()
    RoundTrips.count = 0
    with RoundTrips.installed():
        await layer.group_send(group, {"type": "notify", "n": 1})
        trips = RoundTrips.count
    after = processed()
    for probe in probes:
        probe.close()
    await layer.flush()
    return trips, after - before - len(probes)  # less the first INFO of each probe


def bench_cluster_round_trips(cluster: Any) -> list[dict[str, Any]]:
    from django_redisroles.pubsub.names import redis_channel

    rows = []
    for kind in ("plain", "replay"):
        for master in cluster.masters():
            group = next(
                f"{kind}-{n}"
                for n in range(10_000)
                if cluster.node_for(redis_channel("g", f"{kind}-{n}")) is master
            )
            row: dict[str, Any] = {"layer": f"redisroles, {kind} group on :{master.port}"}
            for size in (1, 100, 1000):
                row[size] = asyncio.run(cluster_group_send_cost(group, size, cluster))
            rows.append(row)
    return rows


def bench_round_trips(url: str) -> list[dict[str, Any]]:
    rows = []
    for alias in LAYERS:
        row: dict[str, Any] = {"layer": f"{alias} (members in this process)"}
        for size in (1, 100, 1000):
            row[size] = asyncio.run(group_send_cost(alias, size, url))
        rows.append(row)
    row = {"layer": "channels_redis core (each member in another process)"}
    for size in (1, 100, 1000):
        row[size] = asyncio.run(group_send_cost("channels_redis core", size, url, spread=True))
    rows.append(row)
    return rows


# -- 3a. fan-out to 100 consumers of one process (no ASGI server, no WebSocket) ---
async def fan_out_in_process(alias: str, consumers: int, messages: int) -> list[float]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer(alias)
    channels = [await layer.new_channel() for _ in range(consumers)]
    for channel in channels:
        await layer.group_add("inproc", channel)
    latencies: list[float] = []

    async def reader(channel: str) -> None:
        for _ in range(messages):
            message = await asyncio.wait_for(layer.receive(channel), 20)
            latencies.append((time.perf_counter_ns() - message["t"]) / 1000)

    tasks = [asyncio.create_task(reader(c)) for c in channels]
    for _ in range(messages):
        await layer.group_send("inproc", {"type": "x", "t": time.perf_counter_ns()})
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    await layer.flush()
    return latencies


def bench_in_process(quick: bool) -> list[dict[str, Any]]:
    messages = 20 if quick else 50
    collected: dict[str, list[float]] = {alias: [] for alias in LAYERS}
    for alias in list(LAYERS) + list(LAYERS)[::-1]:
        collected[alias] += asyncio.run(fan_out_in_process(alias, 100, messages))
    return [
        {
            "layer": alias,
            "deliveries": len(samples),
            "p50_ms": statistics.median(samples) / 1000,
            "p99_ms": pct(samples, 99) / 1000,
        }
        for alias, samples in collected.items()
    ]


# -- 3b. fan-out to WebSocket clients on 2 instances -----------------------------
async def fan_out(alias: str, url: str, clients: int, messages: int) -> list[float]:
    from channels.layers import get_channel_layer
    from websockets.asyncio.client import connect

    from tests.pubsub.servers import AsgiServer

    env = {} if LAYERS[alias] == OURS else {"REDISROLES_DEMO_CHANNEL_LAYER": LAYERS[alias]}
    # The testproject's KEY_PREFIX is "demo": publish with the same layer config it runs.
    servers = [AsgiServer(url, env=env), AsgiServer(url, env=env)]
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    sockets = []
    try:
        for i in range(clients):
            server = servers[i % 2]
            sockets.append(await connect(server.ws_url(), origin=server.origin))
        layer = get_channel_layer(f"fanout {alias}")
        latencies: list[float] = []
        sent: dict[int, int] = {}

        async def reader(ws: Any) -> None:
            for _ in range(messages):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                latencies.append((time.perf_counter_ns() - sent[frame["n"]]) / 1000)

        tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
        for n in range(messages):
            sent[n] = time.perf_counter_ns()
            await layer.group_send("notifications", {"type": "notify", "message": {"n": n}})
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
        return latencies
    finally:
        for ws in sockets:
            await ws.close()
        for server in servers:
            server.stop()


def bench_fan_out(url: str, quick: bool) -> list[dict[str, Any]]:
    # Layers configured like the testproject (KEY_PREFIX "demo") so our
    # group_send reaches the instances' subscriptions.
    settings.CHANNEL_LAYERS.update(
        {f"fanout {alias}": settings.CHANNEL_LAYERS[alias] for alias in LAYERS}
    )
    settings.REDISROLES = {**settings.REDISROLES, "KEY_PREFIX": "demo"}
    from django_redisroles import connections

    connections.reset()
    clients, messages = (100, 10) if quick else (100, 20)
    # Two rounds, the second in reverse order, so no layer always runs first
    # (or last) on a busy machine.
    order = list(LAYERS)
    collected: dict[str, list[float]] = {alias: [] for alias in order}
    for alias in order + order[::-1]:
        collected[alias] += asyncio.run(fan_out(alias, url, clients, messages))
    rows = []
    for alias, samples in collected.items():
        rows.append(
            {
                "layer": alias,
                "deliveries": len(samples),
                "p50_ms": statistics.median(samples) / 1000,
                "p99_ms": pct(samples, 99) / 1000,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument(
        "--only", choices=("sync", "trips", "fanout"), help="run one part of the benchmark"
    )
    parser.add_argument(
        "--topology",
        choices=("single", "cluster"),
        default="single",
        help="cluster: the round trips of ours on a 3-master Redis Cluster",
    )
    args = parser.parse_args()
    os.environ.pop("REDISROLES_DEMO_CHANNEL_LAYER", None)
    started = time.monotonic()
    if args.topology == "cluster":
        from django_redisroles.testing import RedisCluster

        with RedisCluster(masters=3) as cluster:
            configure(cluster.url())
            settings.REDISROLES["ROLES"] = {"pubsub": {"REPLAY_GROUPS": ["replay-*"]}}
            rows = bench_cluster_round_trips(cluster)
        print("\n### One group_send on a 3-master cluster: client round trips / Redis commands\n")
        print("| group | 1 member | 100 members | 1000 members |")
        print("|---|---:|---:|---:|")
        for r in rows:
            cells = " | ".join(f"{r[s][0]} / {r[s][1]}" for s in (1, 100, 1000))
            print(f"| {r['layer']} | {cells} |")
        print(f"\n(run took {time.monotonic() - started:.0f} s; python {sys.version.split()[0]})")
        return
    with RedisServer() as server:
        url = server.url()
        configure(url)
        part = args.only
        sync_rows = bench_sync(url, args.quick) if part in (None, "sync") else []
        trip_rows = bench_round_trips(url) if part in (None, "trips") else []
        local_rows = bench_in_process(args.quick) if part in (None, "fanout") else []
        fan_rows = bench_fan_out(url, args.quick) if part in (None, "fanout") else []
    if sync_rows:
        print_sync(sync_rows)
    if trip_rows:
        print("\n### One group_send: client round trips / Redis commands (incl. inside Lua)\n")
        print("| layer | 1 member | 100 members | 1000 members |")
        print("|---|---:|---:|---:|")
        for r in trip_rows:
            cells = " | ".join(f"{r[s][0]} / {r[s][1]}" for s in (1, 100, 1000))
            print(f"| {r['layer']} | {cells} |")
    if local_rows:
        print("\n### Fan-out: 100 consumers of one process, no WebSocket\n")
        print("| layer | deliveries | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for r in local_rows:
            print(f"| {r['layer']} | {r['deliveries']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    if fan_rows:
        print("\n### Fan-out: 100 WebSocket clients on 2 uvicorn instances\n")
        print("| layer | deliveries | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for r in fan_rows:
            print(f"| {r['layer']} | {r['deliveries']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    print(f"\n(run took {time.monotonic() - started:.0f} s; python {sys.version.split()[0]})")


def print_sync(sync_rows: list[dict[str, Any]]) -> None:
    bare = sync_rows[0]["median_us"]
    ours = sync_rows[1]["median_us"]
    print("\n### One broadcast from sync code\n")
    print(
        "| case | median µs | p99 µs | x bare PUBLISH | Redis commands / call "
        "| new connections / call |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in sync_rows:
        print(
            f"| {r['case']} | {r['median_us']:.0f} | {r['p99_us']:.0f} | "
            f"{r['median_us'] / bare:.2f} | {r['cmds']:.1f} | {r['conns']:.2f} |"
        )
    slowest_peer = {r["case"]: r["median_us"] for r in sync_rows}
    core = slowest_peer["async_to_sync(group_send) channels_redis core"]
    peer_ps = slowest_peer["async_to_sync(group_send) channels_redis pubsub"]
    print(
        f"\nbroadcast() is {core / ours:.1f}x faster than async_to_sync(group_send) on "
        f"RedisChannelLayer, {peer_ps / ours:.1f}x on RedisPubSubChannelLayer, and "
        f"{(ours / bare - 1) * 100:+.1f} % vs one bare PUBLISH (median)."
    )


if __name__ == "__main__":
    main()
