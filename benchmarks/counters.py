"""What the per-process counters cost: ``cache.stats()`` and ``ratelimit.stats()``.

Run from the repo root::

    PYTHONPATH=. python -m benchmarks.counters

Starts its own redis-server and times, in interleaved rounds, a cache ``get``
(hit) and a rate-limit ``check`` with the counters on, and with them swapped
for a no-op; reports the medians and the median of the per-round ratios, and
what one ``Counters.add`` costs alone. Prints a markdown table (pasted into
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from django_redisroles.testing import RedisServer


class NoCounters:
    def add(self, name: str, n: int = 1) -> None:
        pass


def per_call(fn: Callable[[], Any], n: int) -> float:
    """Microseconds per call of ``fn`` over ``n`` calls."""
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--n", type=int, default=2000, help="calls per case and round")
    args = parser.parse_args()

    server = RedisServer().start()
    os.environ["REDIS_URL"] = server.url()
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django_redisroles"],
        REDISROLES={"URL": server.url()},
        CACHES={"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}},
    )
    django.setup()
    from django.core.cache import cache
    from django.http import HttpRequest

    from django_redisroles.counters import Counters
    from django_redisroles.ratelimit import check, limiter, make_policy

    cache.set("k", {"id": 42, "username": "ada"}, 300)
    request = HttpRequest()
    request.method = "GET"
    request.META["REMOTE_ADDR"] = "203.0.113.7"
    policy = make_policy("1000000/m", key="ip", group="bench-counters")
    on = {"cache": cache._counters, "ratelimit": limiter._counters}
    cases = {
        "cache get (hit)": lambda: cache.get("k"),
        "rate-limit check": lambda: check(request, [policy]),
    }
    times: dict[tuple[str, str], list[float]] = {(c, m): [] for c in cases for m in ("on", "off")}
    try:
        for _ in range(args.rounds):
            for mode in ("on", "off"):
                cache._counters = on["cache"] if mode == "on" else NoCounters()
                limiter._counters = on["ratelimit"] if mode == "on" else NoCounters()
                for name, fn in cases.items():
                    times[(name, mode)].append(per_call(fn, args.n))
    finally:
        cache._counters, limiter._counters = on["cache"], on["ratelimit"]
        server.cleanup()
    counters = Counters(["a"])
    add = statistics.median(per_call(lambda: counters.add("a"), 100_000) for _ in range(5))

    print(
        f"counters benchmark: {args.rounds} interleaved rounds x {args.n} calls; "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n"
    )
    print(
        "| call | counters on, median (µs) | no-op, median (µs) "
        "| on / no-op (median of rounds) |\n|---|---|---|---|"
    )
    for name in cases:
        with_, without = times[(name, "on")], times[(name, "off")]
        ratio = statistics.median(a / b for a, b in zip(with_, without, strict=True))
        print(
            f"| {name} | {statistics.median(with_):.1f} | {statistics.median(without):.1f} "
            f"| {ratio:.3f} |"
        )
    print(f"\n`Counters.add` alone: {add:.2f} µs.")


if __name__ == "__main__":
    main()
