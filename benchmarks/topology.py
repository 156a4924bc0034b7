"""Cache and sessions per request: one server vs a 3-master Redis Cluster.

    PYTHONPATH=. python -m benchmarks.topology [--ops 200] [--blocks 10]

Starts a redis-server and a 3-master cluster (a replica each) here. For each
topology in turn (alternating, ``--blocks`` times; each block after a warm-up
that opens every connection, so handshakes are not counted): a session load, a
load + save (what a request changing its session costs), a new session (on the
cluster: with its ``WAIT`` for a replica, the default there), a cache ``get``,
a ``get_many`` of 20 keys, a ``set_many`` of 20 keys. Reported: median and p99
latency, round trips per operation (each command or pipeline written to a
redis-py connection).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import django
import redis.connection
from django.conf import settings

from django_redisroles.testing import RedisCluster, RedisServer

COUNT = [0]


def count_round_trips() -> None:
    original = redis.connection.AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        COUNT[0] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-not-secret",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_redisroles"],
        DATABASES={},
        CACHES={"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}},
        REDISROLES={"URL": url},
        USE_TZ=True,
    )
    django.setup()


def use(url: str) -> None:
    from django.core.cache import caches

    from django_redisroles import conf

    settings.REDISROLES = {"URL": url}
    conf.reset_all()
    caches["default"].get("warm-up")


def operations() -> dict[str, Callable[[int], None]]:
    from django.core.cache import caches

    from django_redisroles.sessions import SessionStore

    cache = caches["default"]
    keys = [f"item:{i}" for i in range(20)]
    data = {k: {"id": i, "name": "x" * 40} for i, k in enumerate(keys)}
    store = SessionStore()
    store.update({"_auth_user_id": "7", "cart": [1, 2, 3]})
    store.create()
    session_key = store.session_key

    def load(i: int) -> None:
        SessionStore(session_key).load()

    def save(i: int) -> None:
        s = SessionStore(session_key)
        s["n"] = i
        s.save()

    def create(i: int) -> None:
        s = SessionStore()
        s.update({"_auth_user_id": str(i % 50), "cart": [1]})
        s.create()

    return {
        "session load": load,
        "session load + save": save,
        "new session (WAIT where on)": create,
        "cache get": lambda i: cache.get("item:1"),
        "cache get_many (20 keys)": lambda i: cache.get_many(keys),
        "cache set_many (20 keys)": lambda i: cache.set_many(data),
    }


def block(ops: dict[str, Callable[[int], None]], n: int, out: dict[str, Any]) -> None:
    for name, op in ops.items():
        for i in range(5):
            op(i)  # warm-up: every node's connection open
        before = COUNT[0]
        for i in range(n):
            t0 = time.perf_counter_ns()
            op(i)
            out.setdefault(name, {"times": [], "trips": 0, "ops": 0})["times"].append(
                time.perf_counter_ns() - t0
            )
        out[name]["trips"] += COUNT[0] - before
        out[name]["ops"] += n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200, help="per operation per block")
    parser.add_argument("--blocks", type=int, default=10)
    args = parser.parse_args(argv)
    with RedisServer() as single, RedisCluster(masters=3, replicas=1) as cluster:
        configure(single.url())
        count_round_trips()
        results: dict[str, dict[str, Any]] = {"single": {}, "cluster": {}}
        urls = {"single": single.url(), "cluster": cluster.url()}
        for _ in range(args.blocks):
            for kind, url in urls.items():
                use(url)
                block(operations(), args.ops, results[kind])
    print(f"ops per block {args.ops}, blocks {args.blocks}, alternating topologies\n")
    print(
        "| operation | one server: median ms | p99 ms | round trips | cluster: median ms "
        "| p99 ms | round trips | cluster / one server |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in results["single"]:
        row = []
        for kind in ("single", "cluster"):
            r = results[kind][name]
            times = sorted(r["times"])
            row.append(
                (
                    statistics.median(times) / 1e6,
                    times[int(0.99 * (len(times) - 1))] / 1e6,
                    r["trips"] / r["ops"],
                )
            )
        (sm, sp, st), (cm, cp, ct) = row
        print(
            f"| {name} | {sm:.3f} | {sp:.3f} | {st:.2f} | {cm:.3f} | {cp:.3f} | {ct:.2f} "
            f"| {cm / sm:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
