"""Near cache benchmark: a hot-key ``get`` and cross-process staleness.

Run from the repo root::

    PYTHONPATH=. python -m benchmarks.near

Starts its own redis-server and, in one process run:

1. **hot-key get**: RedisRolesCache with ``NEAR_CACHE`` on, RedisRolesCache
   without it, and django-redis, side by side on the same Redis: interleaved
   rounds (each round times a batch of ``get`` of one hot key per backend, in
   a rotating order), the median of the per-round ratios to django-redis.
2. **staleness**: process A (this one) writes the values 1..N to one key,
   each write after B saw the previous one; process B reads the key in a tight
   loop through its near cache. For each write: the time from A's ``set``
   returning to B's first read of the new value (p50/p99/max, clocks:
   ``CLOCK_MONOTONIC``, shared by the two processes); and B's stale reads
   *after* the invalidation of that write had arrived (its listener had counted
   it before the read began): the goal is 0.

``BENCH_ROUNDS`` (default 200), ``BENCH_BATCH`` (200), ``BENCH_WRITES`` (10000).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import sys
import time
from typing import Any

from django_redisroles.testing import RedisServer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
BATCH = int(os.environ.get("BENCH_BATCH", "200"))
WRITES = int(os.environ.get("BENCH_WRITES", "10000"))
VALUE = {"id": 42, "username": "ada", "email": "ada@example.com", "groups": [1, 2, 3]}


def configure(url: str) -> None:
    import django
    from django.conf import settings

    rr = "django_redisroles.cache.RedisRolesCache"
    settings.configure(
        INSTALLED_APPS=["django_redisroles"],
        REDISROLES={"URL": url},
        CACHES={
            "near": {"BACKEND": rr, "TIMEOUT": 300, "KEY_PREFIX": "near",
                     "OPTIONS": {"NEAR_CACHE": True}},
            "redisroles": {"BACKEND": rr, "TIMEOUT": 300, "KEY_PREFIX": "rr"},
            "django-redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url,
                             "TIMEOUT": 300, "KEY_PREFIX": "dr"},
        },
        USE_TZ=True,
    )  # fmt: skip
    django.setup()


def wait_tracking(cache: Any) -> None:
    deadline = time.monotonic() + 10
    while not cache.near.tracking():
        if time.monotonic() > deadline:
            raise SystemExit("near cache: no tracking after 10 s")
        cache.get("-")
        time.sleep(0.01)


def hot_get() -> dict[str, Any]:
    from django.core.cache import caches

    names = ["near", "redisroles", "django-redis"]
    backends = {n: caches[n] for n in names}
    for c in backends.values():
        c.set("hot", VALUE)
    wait_tracking(backends["near"])
    for c in backends.values():  # warm-up (and the near cache's fill)
        for _ in range(500):
            c.get("hot")
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(ROUNDS):
        for name in names[r % 3 :] + names[: r % 3]:
            get = backends[name].get
            start = time.perf_counter_ns()
            for _ in range(BATCH):
                get("hot")
            per_round[name].append((time.perf_counter_ns() - start) / BATCH / 1000)
    ratios = {
        n: statistics.median(
            d / x for d, x in zip(per_round["django-redis"], per_round[n], strict=True)
        )
        for n in names
    }
    stats = backends["near"].near_stats()
    return {
        "us": {n: statistics.median(v) for n, v in per_round.items()},
        "ratio": ratios,
        "near_hit_ratio": stats.hit_ratio,
    }


def reader(url: str, seen: Any, t_seen: Any, stale: Any, stop: Any, ready: Any) -> None:
    """Process B: reads the key in a tight loop through its near cache."""
    configure(url)
    from django.core.cache import caches

    cache = caches["near"]
    near = cache.near
    wait_tracking(cache)
    counters = near.counters._values  # read without the lock: B is the only writer
    base = counters["invalidations"]
    ready.set()
    last = 0
    while not stop.is_set():
        arrived = counters["invalidations"] - base  # writes whose invalidation B has
        value = cache.get("stale", 0)
        if value < arrived:
            stale.value += 1
        if value > last:
            now = time.monotonic()
            for n in range(last + 1, value + 1):
                t_seen[n] = now
            last = value
            seen.value = value


def staleness(url: str) -> dict[str, Any]:
    from django.core.cache import caches

    writer = caches["redisroles"]
    # A writes the key B reads: same KEY_PREFIX as B's "near" alias.
    writer.namespace.explicit = "near"
    writer.set("stale", 0)
    ctx = multiprocessing.get_context("spawn")
    seen = ctx.Value("q", 0, lock=False)
    stale = ctx.Value("q", 0, lock=False)
    t_seen = ctx.RawArray("d", WRITES + 1)
    stop, ready = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=reader, args=(url, seen, t_seen, stale, stop, ready))
    proc.start()
    if not ready.wait(30):
        raise SystemExit("reader did not start")
    t_write = [0.0] * (WRITES + 1)
    timeouts = 0
    for n in range(1, WRITES + 1):
        writer.set("stale", n)
        t_write[n] = time.monotonic()
        deadline = t_write[n] + 1.0
        while seen.value < n:  # B timestamps what it sees: A need not spin (CPU for B)
            if time.monotonic() > deadline:
                timeouts += 1
                break
            time.sleep(0.0002)
    stop.set()
    proc.join(30)
    delays = sorted(max(0.0, t_seen[n] - t_write[n]) * 1000 for n in range(1, WRITES + 1))
    return {
        "writes": WRITES,
        "p50_ms": delays[len(delays) // 2],
        "p99_ms": delays[int(len(delays) * 0.99)],
        "max_ms": delays[-1],
        "stale_after_invalidation": stale.value,
        "not_seen_within_1s": timeouts,
    }


def main() -> int:
    server = RedisServer().start()
    try:
        configure(server.url())
        import django
        import django_redis
        import redis

        hot = hot_get()
        stale = staleness(server.url())
        print(
            f"Python {platform.python_version()}, Django {django.__version__}, "
            f"redis-py {redis.__version__}, django-redis {django_redis.__version__}, "
            f"{server.describe() if hasattr(server, 'describe') else 'redis-server'}; "
            f"{ROUNDS} rounds x {BATCH} gets"
        )
        print("\n| hot-key `get` | median us | x django-redis (median of per-round ratios) |")
        print("|---|---|---|")
        for name in ("near", "redisroles", "django-redis"):
            label = {"near": "RedisRolesCache, NEAR_CACHE on", "redisroles": "RedisRolesCache"}
            print(
                f"| {label.get(name, name)} | {hot['us'][name]:.2f} | {hot['ratio'][name]:.1f}x |"
            )
        print(f"\nnear-cache hit ratio during the run: {hot['near_hit_ratio']:.4f}")
        print("\n| staleness (A writes, B reads) | value |")
        print("|---|---|")
        for k, v in stale.items():
            print(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")
        return 0
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
