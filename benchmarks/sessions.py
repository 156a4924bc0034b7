"""Session engines side by side: load and save latency, rate, Redis round trips.

    PYTHONPATH=. python -m benchmarks.sessions [--requests 200] [--rounds 60] [--async-rounds 25]

One process, one throwaway redis-server (started here), three engines on it:

- django-redisroles (``django_redisroles.sessions``), user index on (the
  default: the index entry is rewritten when it would lag by INDEX_REFRESH=60 s,
  so within this short run the saves are plain ``SET XX``); for reference also
  with the index written on every save (INDEX_REFRESH=0) and with it off;
- Django's ``cache`` session engine on django-redis (``django_redis.cache.RedisCache``);
- django-redis-sessions (``redis_sessions.session``).

A "request" is what ``SessionMiddleware`` does for a logged-in user whose
session changes: build the store from the cookie's key, read the session
(load), change one value, save. Each engine serves the same number of
requests over the same pre-created sessions, in many short interleaved
rounds (so machine noise hits all of them alike). Round trips are counted client-side
(each command or pipeline written to a redis-py connection); Redis commands
come from ``INFO commandstats`` deltas (they include the commands a Lua
script runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import django
import redis
import redis.asyncio.connection
import redis.connection
from django.conf import settings

from django_redisroles.testing import RedisServer

SESSIONS = 200  # distinct sessions, spread over 50 users

ENGINES: list[tuple[str, str, dict[str, Any]]] = [
    ("django-redisroles (user index on)", "django_redisroles.sessions", {"USER_INDEX": True}),
    (
        "django-redisroles (user index written on every save)",
        "django_redisroles.sessions",
        {"USER_INDEX": True, "INDEX_REFRESH": 0},
    ),
    ("django-redisroles (user index off)", "django_redisroles.sessions", {"USER_INDEX": False}),
    ("Django cache engine + django-redis", "django.contrib.sessions.backends.cache", {}),
    ("django-redis-sessions", "redis_sessions.session", {}),
]
BASELINE = "Django cache engine + django-redis"
ASYNC_ENGINES = ("django-redisroles (user index on)", BASELINE, "django-redis-sessions")


class RoundTrips:
    count = 0


def count_round_trips() -> None:
    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        RoundTrips.count += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    aoriginal = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def asend_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        RoundTrips.count += 1
        return await aoriginal(self, command, check_health)

    redis.asyncio.connection.AbstractConnection.send_packed_command = asend_packed_command  # type: ignore[method-assign]


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-not-secret",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_redisroles",
        ],
        DATABASES={},
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            }
        },
        SESSION_REDIS={"url": url, "prefix": "drs"},
        REDISROLES={"URL": url, "ROLES": {"sessions": {"USER_INDEX": True}}},
        USE_TZ=True,
    )
    django.setup()


def set_role_settings(extra: dict[str, Any]) -> None:
    # The store reads its settings once (sessions.options.OPTIONS) and drops
    # them on setting_changed, which a plain assignment does not send: drop
    # them here, or every engine runs with the first one's USER_INDEX and
    # INDEX_REFRESH. The connection pool stays (same URL and options): no
    # reconnect is measured.
    from django_redisroles.sessions.options import OPTIONS

    settings.REDISROLES = {"URL": settings.REDISROLES["URL"], "ROLES": {"sessions": extra}}
    OPTIONS.reset()


def session_data(i: int) -> dict[str, Any]:
    """What a logged-in user's session holds (auth keys, a few app values)."""
    return {
        "_auth_user_id": str(i % 50 + 1),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": "0123456789abcdef" * 4,
        "cart": [101, 205, 333],
        "theme": "dark",
        "visits": 0,
    }


def seed(store_cls: type, n: int) -> list[str]:
    keys = []
    for i in range(n):
        store = store_cls()
        for k, v in session_data(i).items():
            store[k] = v
        store.save(must_create=True) if store.session_key else store.create()
        for k, v in session_data(i).items():
            store[k] = v
        store.save()
        keys.append(store.session_key)
    return keys


def run(store_cls: type, keys: list[str], n: int) -> tuple[list[int], list[int], int]:
    loads: list[int] = []
    saves: list[int] = []
    before = RoundTrips.count
    clock = time.perf_counter_ns
    for i in range(n):
        key = keys[i % len(keys)]
        t0 = clock()
        store = store_cls(key)
        visits = store["visits"]  # load
        t1 = clock()
        store["visits"] = visits + 1
        store.save()
        t2 = clock()
        loads.append(t1 - t0)
        saves.append(t2 - t1)
    return loads, saves, RoundTrips.count - before


async def arun(store_cls: type, keys: list[str], n: int) -> tuple[list[int], list[int], int]:
    """``run`` through the async session API, as an async view under ASGI would."""
    loads: list[int] = []
    saves: list[int] = []
    before = RoundTrips.count
    clock = time.perf_counter_ns
    for i in range(n):
        key = keys[i % len(keys)]
        t0 = clock()
        store = store_cls(key)
        visits = await store.aget("visits")  # load
        t1 = clock()
        await store.aset("visits", visits + 1)
        await store.asave()
        t2 = clock()
        loads.append(t1 - t0)
        saves.append(t2 - t1)
    return loads, saves, RoundTrips.count - before


def redis_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per engine per round")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--async-rounds", type=int, default=25)
    args = parser.parse_args(argv)

    server = RedisServer().start()
    try:
        configure(server.url())
        count_round_trips()
        from django.utils.module_loading import import_string

        admin = server.client()
        engines: list[tuple[str, type, dict[str, Any], list[str]]] = []
        for name, module, extra in ENGINES:
            set_role_settings(extra)
            store_cls = import_string(f"{module}.SessionStore")
            engines.append((name, store_cls, extra, seed(store_cls, SESSIONS)))

        print_header(args)
        results = measure(engines, admin, run, args.rounds, args.requests)
        print("### WSGI / sync API (`load()`, `save()`)\n")
        print_table(results)
        loop = asyncio.new_event_loop()
        async_engines = [e for e in engines if e[0] in ASYNC_ENGINES]
        results = measure(
            async_engines,
            admin,
            lambda *a: loop.run_until_complete(arun(*a)),
            args.async_rounds,
            args.requests,
        )
        loop.close()
        print("\n### ASGI / async API (`aget()`, `asave()`)\n")
        print_table(results)
    finally:
        server.cleanup()
    return 0


def measure(
    engines: list[tuple[str, type, dict[str, Any], list[str]]],
    admin: redis.Redis,
    runner: Callable[[type, list[str], int], tuple[list[int], list[int], int]],
    rounds: int,
    requests: int,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {
        name: {"load": [], "save": [], "rt": 0, "cmds": 0, "n": 0, "wall": 0.0}
        for name, *_ in engines
    }
    for round_no in range(rounds):
        order = engines if round_no % 2 == 0 else list(reversed(engines))
        for name, store_cls, extra, keys in order:
            set_role_settings(extra)
            if round_no == 0:
                runner(store_cls, keys, 100)  # warm: connections, scripts, threads
            gc.collect()
            gc.disable()
            calls0 = redis_calls(admin)
            t0 = time.perf_counter()
            loads, saves, rts = runner(store_cls, keys, requests)
            wall = time.perf_counter() - t0
            calls = redis_calls(admin) - calls0 - 1  # minus the INFO itself
            gc.enable()
            r = results[name]
            r["load"] += loads
            r["save"] += saves
            r["rt"] += rts
            r["cmds"] += calls
            r["n"] += requests
            r["wall"] += wall
    return results


def print_header(args: argparse.Namespace) -> None:
    server_version = redis.Redis.from_url(settings.REDISROLES["URL"]).info("server")
    print(
        f"\nsync: {args.rounds} rounds, async: {args.async_rounds} rounds, x {args.requests} "
        f"requests per engine per round, {SESSIONS} sessions; Python {sys.version.split()[0]}, "
        f"Django {django.get_version()}, redis-py {redis.__version__}, "
        f"Redis {server_version['redis_version']}\n"
    )


def print_table(results: dict[str, dict[str, Any]]) -> None:
    def rate(r: dict[str, Any]) -> float:
        return r["n"] / r["wall"]

    base = rate(results[BASELINE])
    print(
        "| engine | load median µs | load p99 µs | save median µs | save p99 µs "
        "| load+save /s | vs Django cache engine | round trips / request "
        "| Redis commands / request |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    row: Callable[[str, dict[str, Any]], str] = lambda name, r: (  # noqa: E731
        f"| {name} | {statistics.median(r['load']) / 1000:.0f} | {pct(r['load'], 0.99):.0f} "
        f"| {statistics.median(r['save']) / 1000:.0f} | {pct(r['save'], 0.99):.0f} "
        f"| {rate(r):,.0f} | {rate(r) / base:.2f}x | {r['rt'] / r['n']:.2f} "
        f"| {r['cmds'] / r['n']:.2f} |"
    )
    for name, r in results.items():
        print(row(name, r))


if __name__ == "__main__":
    sys.exit(main())
