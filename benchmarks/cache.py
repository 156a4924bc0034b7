"""Cache role benchmark: RedisRolesCache vs django-redis vs Django's RedisCache.

Run from the repo root::

    PYTHONPATH=. python -m benchmarks.cache

Starts its own redis-server, configures Django itself, and runs the three
backends side by side on the same Redis in one process:

- ``get`` (hit), ``set`` and ``get_many`` (10 keys, all hits) latency, median
  and p99, plus Redis commands per operation (``INFO commandstats`` deltas);
- ``aget`` (hit) from a coroutine: native redis.asyncio for RedisRolesCache,
  Django's default ``sync_to_async`` thread hop for the two others;
- a 50-way stampede, 5 times: 50 threads call ``get_or_set`` on the same
  missing key with a 50 ms loader; how many times the loader runs, the wall
  time and the Redis commands (medians of the 5 runs).

Prints a markdown table (pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from django_redisroles.testing import RedisServer

BACKENDS = {
    "redisroles": "django_redisroles.cache.RedisRolesCache",
    "django-redis": "django_redis.cache.RedisCache",
    "django": "django.core.cache.backends.redis.RedisCache",
}
# BENCH_BACKENDS=redisroles,django-redis: a subset (django-redis is the reference row).
if os.environ.get("BENCH_BACKENDS"):
    BACKENDS = {n: BACKENDS[n] for n in os.environ["BENCH_BACKENDS"].split(",")}
N = int(os.environ.get("BENCH_N", "3000"))
MANY = [f"many:{i}" for i in range(10)]
STAMPEDE = 50
STAMPEDE_RUNS = 5
LOADER_DELAY = 0.05
VALUE = {"id": 42, "username": "ada", "email": "ada@example.com", "groups": [1, 2, 3]}


def configure(url: str) -> None:
    import django
    from django.conf import settings

    caches: dict[str, Any] = {}
    for name, backend in BACKENDS.items():
        entry: dict[str, Any] = {"BACKEND": backend, "TIMEOUT": 300, "KEY_PREFIX": name}
        if name != "redisroles":  # ours takes the cache role's URL from REDISROLES
            entry["LOCATION"] = url
        caches[name] = entry
    settings.configure(
        INSTALLED_APPS=["django_redisroles"],
        REDISROLES={"URL": url},
        CACHES=caches,
        USE_TZ=True,
    )
    django.setup()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def interleaved(
    ops: dict[str, Callable[[int], Any]], n: int = N, batch: int = 100
) -> dict[str, list[float]]:
    """Time each backend's op in alternating batches, so machine noise hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for op in ops.values():  # warm-up: connections, scripts
        for i in range(200):
            op(i)
    names = list(ops)
    for r in range(n // batch):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            op, out = ops[name], samples[name]
            for i in range(batch):
                start = time.perf_counter_ns()
                op(i)
                out.append((time.perf_counter_ns() - start) / 1000)
    return samples


def commands_per_op(stats: Any, op: Callable[[int], Any], n: int = 500) -> float:
    stats.config_resetstat()
    base = _total_calls(stats)  # the INFO call itself
    stats.config_resetstat()
    for i in range(n):
        op(i)
    return (_total_calls(stats) - base) / n


def _total_calls(client: Any) -> int:
    info = client.info("commandstats")
    return sum(v["calls"] for k, v in info.items() if k != "cmdstat_config")


def stampede(alias: str, key: str, stats: Any) -> tuple[int, float, int]:
    from django.core.cache import caches

    calls = 0
    lock = threading.Lock()

    def loader() -> dict[str, Any]:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(LOADER_DELAY)
        return VALUE

    ready = threading.Barrier(STAMPEDE + 1)
    go = threading.Barrier(STAMPEDE + 1)

    def worker() -> None:
        cache = caches[alias]
        cache.get("warm-up")  # connect before the race (not counted)
        ready.wait()
        go.wait()
        assert cache.get_or_set(key, loader, 300) == VALUE

    threads = [threading.Thread(target=worker) for _ in range(STAMPEDE)]
    for t in threads:
        t.start()
    ready.wait()
    stats.config_resetstat()
    base = _total_calls(stats)  # the INFO call itself
    stats.config_resetstat()
    start = time.perf_counter()
    go.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return calls, wall, _total_calls(stats) - base


async def atimed(caches: dict[str, Any], n: int, batch: int = 100) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in caches}
    for cache in caches.values():
        await cache.aset("ahit", VALUE)
        for _ in range(100):
            await cache.aget("ahit")
    names = list(caches)
    for r in range(n // batch):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            cache, out = caches[name], samples[name]
            for _ in range(batch):
                start = time.perf_counter_ns()
                await cache.aget("ahit")
                out.append((time.perf_counter_ns() - start) / 1000)
    return samples


def main() -> int:
    server = RedisServer().start()
    try:
        configure(server.url())
        from django.core.cache import caches

        stats = server.client()
        backends = {name: caches[name] for name in BACKENDS}
        for cache in backends.values():
            cache.set("hit", VALUE)
            cache.set_many(dict.fromkeys(MANY, VALUE))
        gets = interleaved({n: (lambda i, c=c: c.get("hit")) for n, c in backends.items()})
        sets = interleaved({n: (lambda i, c=c: c.set(f"k{i}", VALUE)) for n, c in backends.items()})
        manys = interleaved({n: (lambda i, c=c: c.get_many(MANY)) for n, c in backends.items()})
        agets = asyncio.run(atimed(backends, N // 2))
        rows: dict[str, dict[str, Any]] = {}
        for name, cache in backends.items():
            rows[name] = {
                "get": gets[name],
                "set": sets[name],
                "get_many": manys[name],
                "aget": agets[name],
                "get_cmds": commands_per_op(stats, lambda i, c=cache: c.get("hit")),
                "set_cmds": commands_per_op(stats, lambda i, c=cache: c.set(f"k{i}", VALUE)),
                "stampede": [
                    stampede(name, f"stampede-{run}", stats) for run in range(STAMPEDE_RUNS)
                ],
            }

        ref = rows["django-redis"]
        print(
            f"cache benchmark: N={N}, {STAMPEDE}-way stampede x{STAMPEDE_RUNS} (medians), "
            f"loader {LOADER_DELAY * 1000:.0f} ms; "
            f"Python {platform.python_version()}, redis-server {stats.info()['redis_version']}, "
            f"{time.strftime('%Y-%m-%d')}\n"
        )
        print(
            "| backend | get hit median / p99 (µs) | set median / p99 (µs) "
            "| get_many(10) median / p99 (µs) "
            "| aget hit median / p99 (µs) | cmds/get | cmds/set "
            "| stampede: loader calls | stampede: wall (ms) | stampede: Redis cmds |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            runs = r["stampede"]
            calls = "/".join(sorted({str(c) for c, _, _ in runs}))
            wall = statistics.median(w for _, w, _ in runs)
            cmds = statistics.median(n for _, _, n in runs)
            ratio = statistics.median(r["get"]) / statistics.median(ref["get"])
            print(
                f"| {name} "
                f"| {statistics.median(r['get']):.0f} / {percentile(r['get'], 0.99):.0f}"
                f" ({ratio:.2f}x) "
                f"| {statistics.median(r['set']):.0f} / {percentile(r['set'], 0.99):.0f} "
                f"| {statistics.median(r['get_many']):.0f} / {percentile(r['get_many'], 0.99):.0f} "
                f"| {statistics.median(r['aget']):.0f} / {percentile(r['aget'], 0.99):.0f} "
                f"| {r['get_cmds']:.1f} | {r['set_cmds']:.1f} "
                f"| {calls} | {wall * 1000:.0f} | {cmds:.0f} |"
            )
        print("\n(x: get-hit median relative to django-redis)")
        stats.close()
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
