"""``redisroles info``: where each role connects, which roles share a pool, PING time."""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .. import conf
from ..connections import get_redis
from ..errors import REDIS_ERRORS

# What starting a near cache's listener may raise: reported in its row.
_NEAR_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, ImproperlyConfigured)

#: What a role's client may raise here: a Redis error (redis-py's RedisClusterException
#: too: no reachable seed node), or a malformed URL.
_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, ImproperlyConfigured)

HELP = "Show each role's Redis URL (passwords hidden), shared pools and round-trip time."


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def describe() -> list[dict[str, Any]]:
    rows = []
    for role in conf.ROLES:
        cfg = conf.role_config(role)
        shared = [
            other
            for other in conf.ROLES
            if other != role and conf.role_config(other).connection_key == cfg.connection_key
        ]
        row: dict[str, Any] = {
            "role": role,
            "url": conf.mask_url(cfg.url),
            "shares_pool_with": shared,
        }
        try:
            client = get_redis(role)
            start = time.perf_counter()
            client.ping()
            row["ping_ms"] = round((time.perf_counter() - start) * 1000, 3)
            row["error"] = None
        except _ERRORS as exc:
            row["ping_ms"] = None
            row["error"] = f"{type(exc).__name__}: {conf.mask_text(exc)}"
        rows.append(row)
    return rows


def near_caches(wait: float = 2.0) -> list[dict[str, Any]]:
    """Each near cache (``OPTIONS["NEAR_CACHE"]``): started here, its tracking and counters."""
    from django.core.cache import caches

    from ..checks.cache import redisroles_caches

    rows: list[dict[str, Any]] = []
    for alias, entry in redisroles_caches().items():
        if not (entry.get("OPTIONS") or {}).get("NEAR_CACHE"):
            continue
        cache: Any = caches[alias]
        deadline = time.monotonic() + wait
        try:
            while not cache.near.tracking() and time.monotonic() < deadline:
                cache.get("-", near=True)  # starts the listener
                time.sleep(0.02)
        except _NEAR_ERRORS as exc:
            rows.append({"alias": alias, "error": f"{type(exc).__name__}: {exc}"})
            continue
        stats = cache.near_stats().as_dict()
        rows.append(
            {"alias": alias, **stats, "error": None if stats["tracking"] else "no tracking"}
        )
    return rows


def handle(command: Any, options: dict[str, Any]) -> int:
    rows = describe()
    near = near_caches()
    if options["json"]:
        for row in rows:
            if row["role"] == "cache":
                row["near_caches"] = near  # one entry per CACHES alias with NEAR_CACHE on
        command.stdout.write(json.dumps(rows, indent=2))
    else:
        for row in rows:
            status = f"{row['ping_ms']} ms" if row["error"] is None else row["error"]
            shared = ", ".join(row["shares_pool_with"]) or "-"
            command.stdout.write(
                f"{row['role']:<10} {row['url']:<40} {status:<24} shares: {shared}"
            )
        for n in near:
            state = n["error"] or (
                f"tracking, heartbeat {n['lag_ms']} ms, {n['entries']} entries, "
                f"{n['hits']} hits / {n['misses']} misses in this process"
            )
            command.stdout.write(f"near cache {n['alias']!r}: {state}")
    return 1 if any(row["error"] for row in rows + near) else 0
