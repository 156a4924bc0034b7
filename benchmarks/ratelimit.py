"""Rate limiting, side by side on one Redis: django-redisroles vs django-ratelimit vs limits.

    PYTHONPATH=. python -m benchmarks.ratelimit [--seconds 1.5] [--json out.json]

Starts its own redis-server, configures Django itself, and for every limiter
measures, from one client thread:

* checks per second, median and p99 latency of one check;
* Redis round trips per check (MONITOR, the server's own view: commands sent
  by clients, not those run inside Lua scripts);
* under concurrency, 2 processes x 20 threads firing at a 10/minute limit:
  how many requests passed (exactly 10 is right);
* at a window boundary, 10/second: 10 requests just before a whole second and
  10 just after: how many passed (10 is the limit; a fixed window lets 20 by).

The ceiling is one bare redis-py ``EVALSHA`` of the same script with
precomputed arguments: the cost of the round trip itself on this machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import django
import redis
import redis.utils
from django.conf import settings

from django_redisroles.testing import RedisServer

BARE = "bare redis-py EVALSHA (ceiling)"
BARE_ROLE = "bare EVALSHA on the role's client (0.25 s timeouts)"
BARE_VIEW = "bare redis-py EVALSHA + the view's HttpResponse (view ceiling)"


def configure(url: str) -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_redisroles"],
        DATABASES={},
        REDISROLES={"URL": url, "KEY_PREFIX": "bench"},
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            }
        },
        RATELIMIT_USE_CACHE="default",
        SILENCED_SYSTEM_CHECKS=["django_ratelimit.W001"],
    )
    django.setup()


# --------------------------------------------------------------------------- limiters


def make_limiters(
    url: str, rate: str, ident: str = "203.0.113.9", views: bool = False
) -> dict[str, Callable[[], bool]]:
    """name -> a function doing one check (True = allowed), all for the same client."""
    from django.test import RequestFactory
    from django_ratelimit.core import is_ratelimited
    from limits import parse, storage, strategies

    from django_redisroles.ratelimit import check, make_policy

    request = RequestFactory().get("/api/", REMOTE_ADDR=ident)
    limiters: dict[str, Callable[[], bool]] = {}
    for algorithm in ("gcra", "fixed", "sliding"):
        policy = make_policy(rate, "ip", algorithm=algorithm, group=f"bench-{algorithm}")

        def ours(policy: Any = policy) -> bool:
            return not check(request, [policy]).limited

        limiters[f"redisroles {algorithm}"] = ours

    def django_ratelimit() -> bool:
        return not is_ratelimited(request, group="bench", key="ip", rate=rate, increment=True)

    limiters["django-ratelimit (django-redis)"] = django_ratelimit
    if views:
        # The whole decorator path, as a view sees it (both refuse with an exception/429).
        from django.http import HttpResponse
        from django_ratelimit.decorators import ratelimit

        from django_redisroles.ratelimit import rate_limit

        def view(request: Any) -> HttpResponse:
            return HttpResponse("ok")

        ours_view = rate_limit(rate, key="ip", group="bench-view")(view)
        peer_view = ratelimit(key="ip", rate=rate, block=False, group="bench-view")(view)
        # Both annotate the request (and would merge with an earlier annotation):
        # a fresh request per call would cost more than the check, so clear it.
        ours_request = RequestFactory().get("/api/", REMOTE_ADDR=ident)
        peer_request = RequestFactory().get("/api/", REMOTE_ADDR=ident)

        def ours_decorated() -> bool:
            ours_request.__dict__.pop("ratelimit", None)
            return ours_view(ours_request).status_code == 200

        def peer_decorated() -> bool:
            peer_request.__dict__.pop("limited", None)
            peer_view(peer_request)
            return not peer_request.limited

        limiters["redisroles @rate_limit view"] = ours_decorated
        limiters["django-ratelimit @ratelimit view"] = peer_decorated

    store = storage.RedisStorage(url)
    item = parse(
        rate.replace("/", " per ").replace(" per m", " per minute").replace(" per s", " per second")
    )
    for name, cls in (
        ("fixed-window", strategies.FixedWindowRateLimiter),
        ("moving-window", strategies.MovingWindowRateLimiter),
        ("sliding-window-counter", strategies.SlidingWindowCounterRateLimiter),
    ):
        strategy = cls(store)

        def peer(strategy: Any = strategy, ns: str = name) -> bool:
            return strategy.hit(item, "bench", ns, ident)  # own keys per strategy

        limiters[f"limits {name}"] = peer
    return limiters


def bare_view(url: str) -> Callable[[], bool]:
    """The ceiling of a decorated view: a bare ``EVALSHA`` plus building the view's response."""
    from django.http import HttpResponse

    evalsha = bare_evalsha(url)

    def call() -> bool:
        evalsha()
        return HttpResponse("ok").status_code == 200

    return call


def bare_evalsha(url: str, role_client: bool = False) -> Callable[[], bool]:
    """One EVALSHA of our script with precomputed arguments on a plain redis-py client.

    ``role_client=True``: on the ratelimit role's pooled client instead (its
    0.25 s socket timeouts make every read poll first: a cost of the safety
    defaults, not of the limiter).
    """
    from django_redisroles.connections import get_redis
    from django_redisroles.ratelimit.limiter import LIMIT

    client = get_redis("ratelimit") if role_client else redis.Redis.from_url(url)
    client.script_load(LIMIT.source)
    args = ("EVALSHA", LIMIT.sha, "1", "bench:bare:{x}:k", "3", "1000000000", "60000000")

    def call() -> bool:
        return client.execute_command(*args)[0] == 1

    return call


# --------------------------------------------------------------------------- measuring


def _slice(fn: Callable[[], bool], seconds: float, samples: list[int], cpu: list[float]) -> float:
    clock = time.perf_counter_ns
    cpu_start = time.thread_time()
    start = clock()
    deadline = start + int(seconds * 1e9)
    n = 0
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        n += 1
        if t1 > deadline:
            # This thread's CPU time per check: our Python and the socket calls,
            # not the wait for Redis, and not the time another process had the core.
            cpu.append((time.thread_time() - cpu_start) / n * 1e6)
            return n / ((t1 - start) / 1e9)


def throughput(
    cases: dict[str, Callable[[], bool]], seconds: float, rounds: int
) -> dict[str, dict[str, Any]]:
    """Interleaved: every round runs every case for seconds/rounds.

    The machine is shared, so its speed drifts; interleaving exposes every case
    to the same drift, and ratios are taken per round (paired) before the median.
    """
    for fn in cases.values():
        for _ in range(300):  # warm: connections, script cache, code paths
            fn()
    samples: dict[str, list[int]] = {name: [] for name in cases}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            rates[name].append(_slice(fn, seconds / rounds, samples[name], cpu[name]))
    rows: dict[str, dict[str, Any]] = {}
    for name in cases:
        ordered = sorted(samples[name])
        rows[name] = {
            "checks_per_s": statistics.median(rates[name]),
            "median_us": statistics.median(ordered) / 1000,
            "p99_us": ordered[int(len(ordered) * 0.99) - 1] / 1000,
            "rates": rates[name],
            "cpu_us": statistics.median(cpu[name]),
        }
    return rows


def paired_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def spread(a: list[float], b: list[float]) -> str:
    """The paired ratio with the range of the per-round ratios."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def round_trips(
    server: RedisServer, fn: Callable[[], bool], n: int = 50
) -> tuple[float, list[str]]:
    """Commands the server received per check, counted with MONITOR (scripts' own excluded)."""
    fn()
    commands: list[str] = []
    ready = threading.Event()
    stopper = server.client()
    stopper.ping()

    def listen() -> None:
        with server.client() as c, c.monitor() as m:
            ready.set()
            for event in m.listen():
                if "bench-monitor-stop" in event["command"]:
                    return
                if event.get("client_type") != "lua":
                    commands.append(event["command"].split()[0].upper())

    thread = threading.Thread(target=listen)
    thread.start()
    ready.wait(5)
    time.sleep(0.1)
    for _ in range(n):
        fn()
    stopper.echo("bench-monitor-stop")
    thread.join(10)
    stopper.close()
    return len(commands) / n, sorted(set(commands))


def _concurrent_worker(args: tuple[str, str, float, int]) -> int:
    url, name, start_at, threads = args
    limiters = make_limiters(url, "10/m", ident="198.51.100.77")
    fn = limiters[name]
    passed: list[bool] = []
    barrier = threading.Barrier(threads)

    def run() -> None:
        barrier.wait()
        time.sleep(max(0.0, start_at - time.time()))
        passed.append(fn())

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(passed)


def concurrency(server: RedisServer, url: str, name: str, procs: int = 2, threads: int = 20) -> int:
    with server.client() as c:
        c.flushall()
        sec, _ = c.time()
        if sec % 60 > 55:  # keep the burst inside one minute window
            time.sleep(61 - sec % 60)
    ctx = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5
    with ctx.Pool(procs) as pool:
        return sum(pool.map(_concurrent_worker, [(url, name, start_at, threads)] * procs))


def boundary(server: RedisServer, url: str, name: str) -> int:
    """10/second: 10 checks 50 ms before a whole second of Redis time, 10 just after."""
    with server.client() as c:
        c.flushall()
        _, usec = c.time()
    fn = make_limiters(url, "10/s", ident="198.51.100.88")[name]
    frac = usec / 1e6
    time.sleep((1 - frac) - 0.05 if frac < 0.9 else (2 - frac) - 0.05)
    t0 = time.monotonic()
    passed = sum(fn() for _ in range(10))
    time.sleep(max(0.0, 0.06 - (time.monotonic() - t0)))
    passed += sum(fn() for _ in range(10))
    return passed


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per throughput case")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--only",
        help="comma-separated substrings: run only the cases whose name contains one "
        "(the ceilings are always run); implies --speed-only",
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="skip the concurrency and window-boundary counts (throughput rows only)",
    )
    opts = parser.parse_args(argv)

    server = RedisServer().start()
    try:
        url = server.url()
        configure(url)
        redis_version = server.client().info("server")["redis_version"]
        limiters = make_limiters(url, "1000000000/m", views=True)
        cases: dict[str, Callable[[], bool]] = {
            BARE: bare_evalsha(url),
            BARE_ROLE: bare_evalsha(url, role_client=True),
            BARE_VIEW: bare_view(url),
        }
        wanted = opts.only.split(",") if opts.only else None
        cases.update(
            (name, fn)
            for name, fn in limiters.items()
            if wanted is None or any(w in name for w in wanted)
        )
        rows = throughput(cases, opts.seconds, opts.rounds)
        for name, fn in cases.items():
            rows[name]["round_trips"], rows[name]["commands"] = round_trips(server, fn)
        for name in [] if opts.speed_only or wanted else make_limiters(url, "1/s"):
            rows[name]["concurrent_passed"] = concurrency(server, url, name)
            rows[name]["boundary_passed"] = boundary(server, url, name)

        bare = rows[BARE]["rates"]
        bare_role = rows[BARE_ROLE]["rates"]
        bare_view_rates = rows[BARE_VIEW]["rates"]
        none = [math.nan] * opts.rounds
        djrl = rows.get("django-ratelimit (django-redis)", {"rates": none})["rates"]
        djrl_view = rows.get("django-ratelimit @ratelimit view", {"rates": none})["rates"]
        print(
            f"\nrate limiting, one client thread, Python {sys.version.split()[0]}, "
            f"Django {django.get_version()}, redis-py {redis.__version__}, Redis {redis_version}, "
            f"{opts.seconds:g} s per case in {opts.rounds} interleaved rounds; checks/s: median "
            f"of rounds; ratios: median of per-round ratios [min-max]; hiredis "
            f"{'on' if redis.utils.HIREDIS_AVAILABLE else 'off'}\n"
        )
        print(
            "| limiter | checks/s | median µs | p99 µs | client CPU µs | vs bare EVALSHA "
            "| vs bare on role client | vs bare + HttpResponse | vs django-ratelimit* "
            "| round trips/check (commands) | 40 concurrent at 10/m: passed "
            "| boundary 10/s: passed |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        footer = (
            "\n\\* view rows are compared with django-ratelimit's view row, the others with "
            "`is_ratelimited()`. Client CPU: this thread's CPU time per check (median of "
            "rounds), the wait for Redis excluded."
        )
        for name, row in rows.items():
            print(
                f"| {name} | {row['checks_per_s']:,.0f} | {row['median_us']:.1f} | "
                f"{row['p99_us']:.1f} | {row['cpu_us']:.1f} | "
                f"{paired_ratio(row['rates'], bare):.2f}x | "
                f"{paired_ratio(row['rates'], bare_role):.2f}x | "
                f"{spread(row['rates'], bare_view_rates)} | "
                f"{paired_ratio(row['rates'], djrl_view if 'view' in name else djrl):.2f}x | "
                f"{row['round_trips']:g} "
                f"({', '.join(row['commands'])}) | {row.get('concurrent_passed', '-')} | "
                f"{row.get('boundary_passed', '-')} |"
            )
        print(footer)
        if opts.json:
            with open(opts.json, "w") as fh:
                json.dump(rows, fh, indent=2)
        return rows
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
