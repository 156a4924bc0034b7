"""Each role's per-request cost on one server vs a 3-master Redis Cluster, side by side.

Run from the repository root::

    PYTHONPATH=. python -m benchmarks.topologies [--rounds 5] [--ops 400] [--json out.json]

Starts a ``RedisServer`` and a ``RedisCluster`` (3 masters, 1 replica each)
with the testing package, then, per round, for each topology in turn (the
order alternates between rounds, so a drift of the machine's load hits both
alike) and each operation, runs ``--ops`` operations from one thread through
the role's public API:

* rate limit: ``check()`` of one request against one policy;
* session load: ``SessionStore(key).load()`` of an existing session;
* group send: ``broadcast(group, message)`` (no subscriber);
* cache get: ``cache.get()`` of a present key;
* lock: ``Lock.acquire()`` + ``release()`` of a free lock.

Round trips and commands are counted on the client's connections (one
request written = one round trip; a pipeline of N commands is one round trip
and N commands; a Lua script is one command), so they are the client's view,
not the commands a script runs inside Redis. The table gives the median
latency per operation over the rounds (each round's median), the ratio
cluster/single, and round trips / commands per operation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import django
import redis.connection
from django.conf import settings

from django_redisroles.testing import RedisCluster, RedisServer

COUNTS = {"round_trips": 0, "commands": 0}


def _commands_in(packed: Any) -> int:
    """How many commands a written request holds (RESP arrays, one per command)."""
    data = b"".join(packed) if isinstance(packed, list | tuple) else bytes(packed)
    count = at = 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        if data[at : at + 1] != b"*":
            raise ValueError("not a RESP command")
        items = int(data[at + 1 : end])
        at = end + 2
        for _ in range(items):  # $len\r\n<bytes>\r\n
            end = data.index(b"\r\n", at)
            at = end + 2 + int(data[at + 1 : end]) + 2
        count += 1
    return count


def _count_connections() -> None:
    """Count what every redis-py connection writes (cluster nodes' connections too)."""
    cls: Any = redis.connection.AbstractConnection
    send = cls.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        COUNTS["round_trips"] += 1
        COUNTS["commands"] += _commands_in(command)
        return send(self, command, check_health)

    cls.send_packed_command = send_packed_command


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
        CACHES={"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}},
        CHANNEL_LAYERS={"default": {"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}},
        SESSION_ENGINE="django_redisroles.sessions",
        REDISROLES={"URL": url, "KEY_PREFIX": "bench"},
        USE_TZ=True,
    )
    django.setup()


def use(url: str) -> None:
    """Point every role at ``url`` (a settings change: clients and options rebuilt)."""
    from django.core.signals import setting_changed

    from django_redisroles import connections

    value = {"URL": url, "KEY_PREFIX": "bench"}
    settings.REDISROLES = value
    setting_changed.send(sender=None, setting="REDISROLES", value=value, enter=True)
    connections.reset()


def operations() -> dict[str, Callable[[], Callable[[], Any]]]:
    """name -> a setup returning the operation (run after ``use()``)."""
    from django.core.cache import caches
    from django.test import RequestFactory

    from django_redisroles.locks import Lock
    from django_redisroles.pubsub import broadcast
    from django_redisroles.ratelimit import check, make_policy
    from django_redisroles.sessions import SessionStore

    def ratelimit() -> Callable[[], Any]:
        policy = make_policy("1000000/h", "ip", group="bench")
        request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9")
        return lambda: check(request, [policy])

    def session_load() -> Callable[[], Any]:
        store = SessionStore()
        store["cart"] = list(range(20))
        store.save()
        key = store.session_key
        return lambda: SessionStore(key).load()

    def group_send() -> Callable[[], Any]:
        return lambda: broadcast("bench", {"type": "notify", "message": "x" * 100})

    def cache_get() -> Callable[[], Any]:
        cache = caches["default"]
        cache.set("bench-key", "v" * 200, 300)
        return lambda: cache.get("bench-key")

    def lock() -> Callable[[], Any]:
        def run() -> None:
            held = Lock("bench", ttl=10, renew=False)
            held.acquire()
            held.release()

        return run

    return {
        "rate-limit check": ratelimit,
        "session load": session_load,
        "group send (broadcast)": group_send,
        "cache get (hit)": cache_get,
        "lock acquire + release": lock,
    }


def measure(op: Callable[[], Any], ops: int) -> tuple[float, float, float]:
    """(median µs, round trips per op, commands per op) of ``ops`` calls after a warm-up."""
    for _ in range(20):
        op()
    times = []
    before = dict(COUNTS)
    for _ in range(ops):
        start = time.perf_counter()
        op()
        times.append(time.perf_counter() - start)
    trips = (COUNTS["round_trips"] - before["round_trips"]) / ops
    commands = (COUNTS["commands"] - before["commands"]) / ops
    return statistics.median(times) * 1e6, trips, commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=400)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    _count_connections()
    with RedisServer() as single, RedisCluster() as cluster:
        urls = {"single": single.url(), "cluster": cluster.url()}
        configure(urls["single"])
        setups = operations()
        results: dict[str, dict[str, list[tuple[float, float, float]]]] = {
            name: {"single": [], "cluster": []} for name in setups
        }
        for round_no in range(args.rounds):
            order = ["single", "cluster"] if round_no % 2 == 0 else ["cluster", "single"]
            for kind in order:
                use(urls[kind])
                for name, setup in setups.items():
                    results[name][kind].append(measure(setup(), args.ops))
    print(
        f"\n{args.rounds} rounds x {args.ops} ops per operation and topology, "
        "topologies alternating; median of the rounds' medians\n"
    )
    print(
        "| operation | single median (µs) (rounds' range) | cluster median (µs) (rounds' range) "
        "| cluster/single "
        "| round trips single / cluster | commands single / cluster |"
    )
    print("|---|---|---|---|---|---|")
    summary: dict[str, Any] = {}
    for name, by_kind in results.items():
        row = {}
        for kind, runs in by_kind.items():
            row[kind] = {
                "median_us": statistics.median(r[0] for r in runs),
                "min_us": min(r[0] for r in runs),
                "max_us": max(r[0] for r in runs),
                "round_trips": statistics.median(r[1] for r in runs),
                "commands": statistics.median(r[2] for r in runs),
            }
        summary[name] = row
        s, c = row["single"], row["cluster"]
        print(
            f"| {name} | {s['median_us']:.0f} ({s['min_us']:.0f}-{s['max_us']:.0f}) "
            f"| {c['median_us']:.0f} ({c['min_us']:.0f}-{c['max_us']:.0f}) "
            f"| {c['median_us'] / s['median_us']:.2f}x "
            f"| {s['round_trips']:g} / {c['round_trips']:g} "
            f"| {s['commands']:g} / {c['commands']:g} |"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=2)


if __name__ == "__main__":
    main()
