"""Async throughput under concurrency: django-redisroles vs raw ``redis.asyncio``.

    PYTHONPATH=. python -m benchmarks.asyncload [--seconds 0.4] [--rounds 10] [--tasks 1,16,64]

One process, one event loop, one redis-server (started here). For each
concurrency level, N tasks loop over one operation for ``--seconds``; the
rate is operations per second of all N tasks together. The same N tasks then
do the equivalent raw commands on a plain ``redis.asyncio.Redis`` (its own
pool, hiredis when installed, as ours):

* cache ``aget`` (a hit) vs ``GET``;
* rate limit: ``acheck()`` (what the middleware and ``@rate_limit`` call) and an
  async view decorated with ``@rate_limit``, vs ``EVALSHA`` of the same script
  (and ``EVALSHA`` + building the view's ``HttpResponse``);
* session load + change + save (``aget``/``aset``/``asave``, the async API an
  ASGI view uses) vs ``GET`` + ``SET ... XX EX``.

Every (operation, concurrency) pair runs ours and raw back to back, in
``--rounds`` interleaved rounds; the ratio is the median of the per-round
ratios (ours ÷ raw), with their range.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import django
import redis
import redis.asyncio
import redis.utils
from django.conf import settings

from django_redisroles.testing import RedisServer

Op = Callable[[int], Awaitable[Any]]
RAW_OPTIONS: dict[str, Any] = {}
SESSIONS = 256


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django_redisroles",
        ],
        DATABASES={},
        CACHES={"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}},
        SESSION_ENGINE="django_redisroles.sessions",
        REDISROLES={"URL": url, "KEY_PREFIX": "bench"},
        USE_TZ=True,
    )
    django.setup()


def cases(url: str) -> dict[str, tuple[Op, Op]]:
    """operation -> (ours, raw), each ``op(i)`` doing one operation (``i``: a task's counter)."""
    from django.core.cache import cache
    from django.http import HttpResponse
    from django.test import RequestFactory

    from django_redisroles.ratelimit import acheck, make_policy, rate_limit
    from django_redisroles.ratelimit.limiter import LIMIT
    from django_redisroles.sessions import SessionStore

    raw = redis.asyncio.Redis.from_url(url, **RAW_OPTIONS)
    sync = redis.Redis.from_url(url)

    value = {"user": 42, "items": list(range(20)), "name": "x" * 100}
    cache.set("hot", value, 3600)
    sync.set("raw:hot", pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

    rate = "1000000000/m"
    policy = make_policy(rate, "ip", group="bench-async")
    requests = [RequestFactory().get("/api/", REMOTE_ADDR=f"203.0.113.{n}") for n in range(64)]
    sync.script_load(LIMIT.source)
    limit_args = ("1", "3", "1000000000", "60000000")

    async def view(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    limited_view = rate_limit(rate, key="ip", group="bench-async-view")(view)

    session_keys = []
    for n in range(SESSIONS):
        store = SessionStore()
        store.update({"_auth_user_id": str(n % 50 + 1), "cart": [1, 2, 3], "visits": 0})
        store.create()
        session_keys.append(store.session_key)
    raw_keys = [f"raw:session:{n}" for n in range(SESSIONS)]
    for key in raw_keys:
        sync.set(key, b"x" * 120, ex=1209600)

    async def ours_aget(i: int) -> Any:
        return await cache.aget("hot")

    async def raw_get(i: int) -> Any:
        return await raw.get("raw:hot")

    async def ours_acheck(i: int) -> Any:
        request = requests[i & 63]
        request.__dict__.pop("ratelimit", None)
        return await acheck(request, [policy])

    async def raw_evalsha(i: int) -> Any:
        key = f"bench:raw:{{x}}:{i & 63}"
        return await raw.execute_command("EVALSHA", LIMIT.sha, "1", key, *limit_args[1:])

    async def ours_view(i: int) -> Any:
        request = requests[i & 63]
        request.__dict__.pop("ratelimit", None)
        return await limited_view(request)

    async def raw_view(i: int) -> Any:
        await raw_evalsha(i)
        return HttpResponse("ok")

    async def ours_session(i: int) -> None:
        store = SessionStore(session_keys[i % SESSIONS])
        visits = await store.aget("visits", 0)
        await store.aset("visits", visits + 1)
        await store.asave()

    async def raw_session(i: int) -> None:
        key = raw_keys[i % SESSIONS]
        data = await raw.get(key)
        await raw.set(key, data, xx=True, ex=1209600)

    # Raw's connections are made on the loop they are used on: one loop for the run.
    return {
        "cache aget (hit) / GET": (ours_aget, raw_get),
        "rate limit acheck() / EVALSHA": (ours_acheck, raw_evalsha),
        "async @rate_limit view / EVALSHA + HttpResponse": (ours_view, raw_view),
        "session load + save / GET + SET XX EX": (ours_session, raw_session),
    }


async def rate(op: Op, tasks: int, seconds: float) -> tuple[float, float]:
    """(operations per second, CPU µs per operation) of ``tasks`` tasks looping over ``op``.

    The CPU time is the event loop thread's: the Python (ours, redis-py's,
    asyncio's) and the socket calls, not the wait for Redis, and not the time
    another process had the core: steadier than the rate on a shared machine.
    """
    done = [0]
    stop = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        i = offset * 7919
        n = 0
        while time.perf_counter() < stop:
            await op(i + n)
            n += 1
        done[0] += n

    cpu = time.thread_time()
    begin = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    elapsed = time.perf_counter() - begin
    return done[0] / elapsed, (time.thread_time() - cpu) / done[0] * 1e6


async def measure(
    ops: dict[str, tuple[Op, Op]], levels: list[int], seconds: float, rounds: int
) -> dict[tuple[str, int], dict[str, list[float]]]:
    results: dict[tuple[str, int], dict[str, list[float]]] = {
        (name, n): {"ours": [], "raw": [], "ours cpu": [], "raw cpu": []}
        for name in ops
        for n in levels
    }
    for ours, raw in ops.values():  # warm: connections for 64 tasks, scripts loaded
        await rate(ours, max(levels), 0.2)
        await rate(raw, max(levels), 0.2)
    for r in range(rounds):
        for n in levels:
            for name, (ours, raw) in ops.items():
                # Alternate who goes first: a drift inside the round hits both alike.
                pair = [("ours", ours), ("raw", raw)]
                for side, op in pair if r % 2 == 0 else pair[::-1]:
                    ops_per_s, cpu_us = await rate(op, n, seconds)
                    results[name, n][side].append(ops_per_s)
                    results[name, n][side + " cpu"].append(cpu_us)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="per case per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tasks", default="1,16,64", help="concurrency levels")
    parser.add_argument(
        "--raw-timeouts",
        action="store_true",
        help="give the raw client the roles' default socket timeouts (2 s) too",
    )
    opts = parser.parse_args(argv)
    if opts.raw_timeouts:
        RAW_OPTIONS.update(socket_timeout=2.0, socket_connect_timeout=2.0)
    levels = [int(n) for n in opts.tasks.split(",")]

    server = RedisServer().start()
    try:
        configure(server.url())
        version = server.client().info("server")["redis_version"]

        async def run() -> dict[tuple[str, int], dict[str, list[float]]]:
            return await measure(cases(server.url()), levels, opts.seconds, opts.rounds)

        results = asyncio.run(run())
        print(
            f"\nasync throughput, one event loop, Python {sys.version.split()[0]}, "
            f"Django {django.get_version()}, redis-py {redis.__version__} (hiredis "
            f"{'on' if redis.utils.HIREDIS_AVAILABLE else 'off'}), Redis {version}; "
            f"{opts.seconds:g} s per case in {opts.rounds} interleaved rounds\n"
        )
        print(
            "| operation (ours / raw redis.asyncio) | tasks | ours ops/s | raw ops/s "
            "| ours ÷ raw | CPU µs/op ours / raw |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for (name, n), sides in results.items():
            ratios = [a / b for a, b in zip(sides["ours"], sides["raw"], strict=True)]
            print(
                f"| {name} | {n} | {statistics.median(sides['ours']):,.0f} | "
                f"{statistics.median(sides['raw']):,.0f} | {statistics.median(ratios):.2f}x "
                f"[{min(ratios):.2f}-{max(ratios):.2f}] | "
                f"{statistics.median(sides['ours cpu']):.0f} / "
                f"{statistics.median(sides['raw cpu']):.0f} |"
            )
        if RAW_OPTIONS:
            print("\nraw client with the roles' default socket timeouts (2 s)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
