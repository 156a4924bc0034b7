"""Locks: django-redisroles ``Lock`` vs redis-py ``Lock`` vs python-redis-lock.

Run from the repository root::

    PYTHONPATH=. python -m benchmarks.locks [--quick]

One redis-server (started here), one process, the same pooled connection for
every library. Two measurements:

1. acquire+release of a free lock, one thread: latency median / p99 and the
   Redis round trips per acquire+release (counted on the client connection:
   one request written = one round trip; a Lua script is one).
2. hand-over under contention: several threads pass one lock around (hold
   it 1 ms, release it while the others wait, step aside until one of them
   has it); the hand-over latency is the time from the release to the next
   holder's acquire.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

from django_redisroles.testing import RedisServer

ROUND_TRIPS = 0


def _counting_connection_class(base: type) -> type:
    class CountingConnection(base):  # type: ignore[misc, valid-type]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            global ROUND_TRIPS
            ROUND_TRIPS += 1
            super().send_packed_command(command, check_health)

    return CountingConnection


def _counting_async_connection_class(base: type) -> type:
    class CountingAsyncConnection(base):  # type: ignore[misc, valid-type]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            global ROUND_TRIPS
            ROUND_TRIPS += 1
            await super().send_packed_command(command, check_health)

    return CountingAsyncConnection


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def bench_acquire_release(
    cases: list[tuple[str, Callable[[], None]]], rounds: int, batch: int
) -> list[dict[str, Any]]:
    """Each case ``batch`` times per round, the cases interleaved round by round.

    The machine is shared and its speed drifts: every round runs every case,
    and throughput ratios are taken per round (paired) before the median.
    """
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    rates: dict[str, list[float]] = {label: [] for label, _ in cases}
    trips: dict[str, int] = dict.fromkeys(times, 0)
    for _label, once in cases:  # warm up: connections made, scripts loaded
        for _ in range(100):
            once()
    perf_counter = time.perf_counter
    for _ in range(rounds):
        for label, once in cases:
            samples = times[label]
            before = ROUND_TRIPS
            begin = perf_counter()
            for _ in range(batch):
                start = perf_counter()
                once()
                samples.append(perf_counter() - start)
            rates[label].append(batch / (perf_counter() - begin))
            trips[label] += ROUND_TRIPS - before
    return _summary(times, trips, rates)


def _summary(
    times: dict[str, list[float]], trips: dict[str, int], rates: dict[str, list[float]]
) -> list[dict[str, Any]]:
    return [
        {
            "label": label,
            "median": statistics.median(samples),
            "p99": percentile(samples, 99),
            "round_trips": trips[label] / len(samples),
            "rates": rates[label],
        }
        for label, samples in times.items()
    ]


def paired(rates: list[float], base: list[float]) -> str:
    """Median of the per-round throughput ratios, with their range."""
    ratios = [x / y for x, y in zip(rates, base, strict=True)]
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def bench_handover(
    label: str,
    make: Callable[[], Any],
    acquire: Callable[[Any], Any],
    release: Callable[[Any], Any],
    threads: int,
    handovers: int,
    hold: float = 0.001,
) -> dict[str, Any]:
    """``threads`` workers pass one lock around until ``handovers`` hand-overs happened.

    A worker holds the lock ``hold`` s and releases it while the others are
    blocked waiting; it then steps aside until another worker holds it, and
    queues again. The hand-over latency is the time from the release to the
    next holder's acquire: how fast a waiter learns that the lock is free.
    """
    cond = threading.Condition()
    state: dict[str, Any] = {"released": 0.0, "holder": None}
    latencies: list[float] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        me = threading.get_ident()
        try:
            while not done.is_set():
                lock = make()
                acquire(lock)
                got = time.perf_counter()
                with cond:
                    if state["released"]:
                        latencies.append(got - state["released"])
                    state["holder"] = me
                    if len(latencies) >= handovers:
                        done.set()
                    cond.notify_all()
                time.sleep(hold)
                with cond:
                    state["released"] = time.perf_counter()
                release(lock)
                with cond:  # step aside: the next holder must be one of the waiters
                    cond.wait_for(lambda: state["holder"] != me or done.is_set(), timeout=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            done.set()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    done.wait(120)
    elapsed = time.perf_counter() - started
    with cond:
        cond.notify_all()
    for thread in workers:
        thread.join(10)
    if errors:
        raise errors[0]
    return {
        "label": label,
        "median": statistics.median(latencies),
        "p99": percentile(latencies, 99),
        "throughput": len(latencies) / elapsed,
    }


async def bench_async(
    cases: list[tuple[str, Callable[[], Any]]], rounds: int, batch: int
) -> list[dict[str, Any]]:
    """``bench_acquire_release`` for coroutine functions."""
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    rates: dict[str, list[float]] = {label: [] for label, _ in cases}
    trips: dict[str, int] = dict.fromkeys(times, 0)
    for _label, once in cases:
        for _ in range(100):
            await once()
    perf_counter = time.perf_counter
    for _ in range(rounds):
        for label, once in cases:
            samples = times[label]
            before = ROUND_TRIPS
            begin = perf_counter()
            for _ in range(batch):
                start = perf_counter()
                await once()
                samples.append(perf_counter() - start)
            rates[label].append(batch / (perf_counter() - begin))
            trips[label] += ROUND_TRIPS - before
    return _summary(times, trips, rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=100, help="acquire+release per case per round")
    parser.add_argument(
        "--speed-only", action="store_true", help="acquire + release only (no hand-over)"
    )
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    handovers = 0 if args.speed_only else 30 if args.quick else 200

    server = RedisServer().start()
    try:
        settings.configure(
            INSTALLED_APPS=["django_redisroles"],
            REDISROLES={"URL": server.url(), "KEY_PREFIX": "bench"},
            USE_TZ=True,
        )
        django.setup()
        run(server, rounds, args.batch, handovers)
    finally:
        server.cleanup()


def run(server: RedisServer, rounds: int, batch: int, handovers: int) -> None:
    import redis
    import redis.asyncio
    import redis.asyncio.lock
    import redis_lock

    from django_redisroles.connections import get_async_redis, get_redis
    from django_redisroles.locks import Lock

    client = get_redis("locks")
    pool = client.connection_pool
    pool.connection_class = _counting_connection_class(pool.connection_class)

    def ours() -> None:
        with Lock("bench-ours", ttl=30):  # renewal and fencing on (the defaults)
            pass

    def redis_py() -> None:
        with client.lock("bench-redispy", timeout=30):
            pass

    def prl(auto_renewal: bool) -> Callable[[], None]:
        def once() -> None:
            with redis_lock.Lock(client, "bench-prl", expire=30, auto_renewal=auto_renewal):
                pass

        return once

    rows = bench_acquire_release(
        [
            ("django-redisroles `Lock` (renewal + fence on)", ours),
            ("redis-py `Lock` (no renewal, no fence)", redis_py),
            ("python-redis-lock (auto_renewal=False)", prl(False)),
            ("python-redis-lock (auto_renewal=True: a thread per acquire)", prl(True)),
        ],
        rounds,
        batch,
    )

    async def async_rows() -> list[dict[str, Any]]:
        aclient = get_async_redis("locks")
        apool = aclient.connection_pool
        apool.connection_class = _counting_async_connection_class(apool.connection_class)

        async def ours_async() -> None:
            async with Lock("bench-ours-async", ttl=30):
                pass

        async def redis_py_async() -> None:
            async with redis.asyncio.lock.Lock(aclient, "bench-redispy-async", timeout=30):
                pass

        return await bench_async(
            [
                ("django-redisroles `async with Lock`", ours_async),
                ("redis-py `redis.asyncio` `Lock`", redis_py_async),
            ],
            rounds,
            batch,
        )

    rows += asyncio.run(async_rows())

    print(
        f"\n### Acquire + release, uncontended ({rounds} interleaved rounds of {batch} per "
        "library; a new lock object every time)\n"
    )
    print(
        "| library | acquire+release/s | median ms | p99 ms | median time vs redis-py "
        "| throughput vs redis-py* | round trips |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, row in enumerate(rows):
        base = rows[1] if i < 4 else rows[5]  # the async rows against redis-py's async Lock
        print(
            f"| {row['label']} | {statistics.median(row['rates']):,.0f} | {ms(row['median'])} | "
            f"{ms(row['p99'])} | {row['median'] / base['median']:.2f}x | "
            f"{paired(row['rates'], base['rates'])} | {row['round_trips']:.2f} |"
        )
    print(
        "\n\\* median of the per-round ratios of acquire+release per second [their range]; "
        "async rows against redis-py's `redis.asyncio` `Lock`."
    )
    if not handovers:
        return

    threads = 4
    hand = [
        bench_handover(
            "django-redisroles `Lock(wait=None)` (wake-up list)",
            lambda: Lock("bench-h-ours", ttl=30, wait=None),
            lambda lock: lock.acquire(),
            lambda lock: lock.release(),
            threads,
            handovers,
        ),
        bench_handover(
            "python-redis-lock (BLPOP signal)",
            lambda: redis_lock.Lock(client, "bench-h-prl", expire=30),
            lambda lock: lock.acquire(blocking=True),
            lambda lock: lock.release(),
            threads,
            handovers,
        ),
        bench_handover(
            "redis-py `Lock` (polls every 0.1 s)",
            lambda: client.lock("bench-h-redispy", timeout=30),
            lambda lock: lock.acquire(blocking=True),
            lambda lock: lock.release(),
            threads,
            max(20, handovers // 10),
        ),
    ]
    print(
        f"\n### Hand-over from one holder to the next waiter ({threads} threads pass one lock "
        "around, each holding it 1 ms)\n"
    )
    print("| library | median ms | p99 ms | hand-overs/s |")
    print("|---|---:|---:|---:|")
    for row in hand:
        print(
            f"| {row['label']} | {ms(row['median'])} | {ms(row['p99'])} | {row['throughput']:.0f} |"
        )
    info = server.client().info("server")
    print(
        f"\nredis-server {info['redis_version']} on 127.0.0.1 (TCP), redis-py {redis.__version__}, "
        f"python-redis-lock {redis_lock.__version__}."
    )


if __name__ == "__main__":
    main()
