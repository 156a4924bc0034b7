"""How long `redisroles doctor` takes on 1,000,000 keys, and whether Redis stays responsive.

    PYTHONPATH=. /work/main/.venv/bin/python -m benchmarks.doctor [--keys 1000000]

Starts its own redis-server, fills it with DEBUG POPULATE (1M keys: 70% in
the cache namespace, 20% sessions, 10% another app's; all but 10,000 cache
keys given a TTL, three 2 MB cache values), then runs, each while a separate
process PINGs the server every millisecond:

- idle: nothing else (the PING baseline of this machine);
- doctor (default bounds): ``doctor.run()`` with ``MAX_KEYS=100_000``, ``MAX_SECONDS=10``;
- doctor (full scan): every key examined (``MAX_KEYS`` above the key count);
- ``redis-cli --bigkeys``: the stock tool that walks the keyspace (SCAN-based);
- ``KEYS *``: what the doctor never does (one blocking call).

Reports wall time, keys examined, Redis commands sent (``INFO commandstats``
delta, PINGs excluded), PING latency (median / p99 / max) seen by the other
process during each phase, and the longest server-side stall (Redis's
``LATENCY`` monitor at a 1 ms threshold: a stall blocks every client).
There is no peer library that checks a role's server, so the comparison is
with the tools an operator would otherwise reach for.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

import django
import redis
from django.conf import settings

from django_redisroles.testing import RedisServer


def pinger(port: int, stop: Any, out: Any) -> None:
    """PING every millisecond until told to stop; send back the round trips (ms)."""
    client = redis.Redis(port=port, socket_timeout=10)
    client.ping()
    samples: list[float] = []
    while not stop.is_set():
        start = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - start) * 1000)
        time.sleep(0.001)
    out.send(samples)


class Phase:
    """Run one phase with a PING process watching the server."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.client = server.client()

    def commands(self) -> dict[str, int]:
        stats = self.client.info("commandstats")
        return {k: int(v["calls"]) for k, v in stats.items()}

    def run(self, name: str, fn: Any) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=pinger, args=(self.server.port, stop, send))
        proc.start()
        time.sleep(0.5)  # let the pinger connect and settle
        before = self.commands()
        self.client.execute_command("LATENCY", "RESET")
        started = time.perf_counter()
        examined = fn()
        wall = time.perf_counter() - started
        after = self.commands()
        # Server-side stalls (LATENCY monitor, threshold 1 ms): tells Redis blocking apart
        # from this shared machine's scheduling noise in the client-side PINGs.
        latest = self.client.execute_command("LATENCY", "LATEST")
        stalls = [int(row[3]) for row in latest]
        events = {(r[0].decode() if isinstance(r[0], bytes) else r[0]): int(r[3]) for r in latest}
        stop.set()
        samples = recv.recv()
        proc.join()
        sent = sum(
            after[k] - before.get(k, 0)
            for k in after
            if k not in ("cmdstat_ping", "cmdstat_info", "cmdstat_latency|reset")
        )
        samples.sort()
        return {
            "phase": name,
            "wall_s": wall,
            "examined": examined,
            "commands": sent,
            "ping_median": statistics.median(samples),
            "ping_p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "ping_max": samples[-1],
            "pings": len(samples),
            "stall_max": max(stalls, default=0),
            "stall_events": events,
        }


def fill(client: redis.Redis, total: int) -> None:
    cache, sessions = int(total * 0.7), int(total * 0.2)
    other = total - cache - sessions
    client.execute_command("DEBUG", "POPULATE", cache, "rr:cache:1:page", 100)
    client.execute_command("DEBUG", "POPULATE", sessions, "rr:sessions:s", 300)
    client.execute_command("DEBUG", "POPULATE", other, "otherapp:key", 50)
    # TTLs on everything of ours but 10,000 cache keys (the doctor should find those).
    pipe = client.pipeline(transaction=False)
    for prefix, count in (("rr:cache:1:page", cache - 10_000), ("rr:sessions:s", sessions)):
        for i in range(count):
            pipe.expire(f"{prefix}:{i}", 3600)
            if len(pipe) >= 20_000:
                pipe.execute()
    pipe.execute()
    for i in range(3):
        client.set(f"rr:cache:1:report{i}", b"x" * (2 * 1024 * 1024), ex=3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()

    server = RedisServer(
        config={
            "maxmemory": "2gb",
            "maxmemory-policy": "allkeys-lru",
            "enable-debug-command": "yes",
            "latency-monitor-threshold": "1",
        }
    ).start()
    try:
        settings.configure(
            INSTALLED_APPS=["django_redisroles"],
            REDISROLES={"URL": server.url(), "KEY_PREFIX": "rr"},
            CACHES={},
        )
        django.setup()
        from django_redisroles import doctor

        client = server.client()
        started = time.perf_counter()
        fill(client, args.keys)
        dbsize = client.dbsize()
        print(f"filled {dbsize:,} keys in {time.perf_counter() - started:.1f}s", file=sys.stderr)

        phase = Phase(server)
        results = []
        reports: dict[str, Any] = {}

        def idle() -> int:
            time.sleep(2)
            return 0

        def run_doctor(name: str, **limits: Any) -> Any:
            def go() -> int:
                report = doctor.run(limits=doctor.Limits.from_settings(**limits))
                reports[name] = report
                return sum(d.scanned for s in report.servers for d in s.databases)

            return go

        def bigkeys() -> int:
            subprocess.run(
                ["redis-cli", "-p", str(server.port), "--bigkeys"],
                check=True,
                capture_output=True,
            )
            return dbsize

        def keys_star() -> int:
            return len(client.keys("*"))

        results.append(phase.run("idle (baseline)", idle))
        results.append(phase.run("doctor, default bounds", run_doctor("default")))
        results.append(
            phase.run(
                "doctor, full scan",
                run_doctor("full", max_keys=dbsize + 1000, max_seconds=120.0),
            )
        )
        if shutil.which("redis-cli"):
            results.append(phase.run("redis-cli --bigkeys", bigkeys))
        results.append(phase.run("KEYS * (never used)", keys_star))

        print(f"\n{dbsize:,} keys, redis-server {client.info()['redis_version']}\n")
        print(
            "| phase | wall time | keys examined | Redis commands | PING median | PING p99 "
            "| PING max | longest server stall |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(
                f"| {r['phase']} | {r['wall_s']:.2f} s | {r['examined']:,} | {r['commands']:,} "
                f"| {r['ping_median']:.2f} ms | {r['ping_p99']:.2f} ms | {r['ping_max']:.2f} ms "
                f"| {'< 1 ms' if not r['stall_max'] else str(r['stall_max']) + ' ms'} |"
            )
        for r in results:
            if r["stall_events"]:
                print(f"\nstalls during {r['phase']}: {r['stall_events']}")
        for name, report in reports.items():
            found = ", ".join(
                f"{f.id}"
                + (f" ({f.details['count']:,} no-TTL keys)" if "count" in f.details else "")
                for f in report.findings
            )
            print(f"\ndoctor {name}: {found}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
