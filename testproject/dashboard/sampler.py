"""One sampler per app process: every second, what each role did and how its Redis is.

Each source is read in its own worker thread, so a Redis that does not answer
(paused, stopped) delays only the panels that need it: the others keep
updating, and the stuck one says for how long it has been waiting. Sources:

- cache: ``cache.stats()`` (hits, misses, loads, outages of this process);
- sessions: ``user_sessions(user)`` for the demo's users;
- ratelimit: ``ratelimit.stats()`` and the ``ratelimited`` signal;
- pubsub: the layer's ``stats`` and ``pubsub.status()``;
- locks: ``held_locks()``;
- instances: ``INFO`` of every Redis server the roles use, node by node on a
  Redis Cluster or under Sentinel (memory and ops/s over the last five
  minutes; ``nodes.py``), and ``redisroles doctor``'s rules every 30 s.

Server-sent-events views (``views.stream``) read the latest snapshot; nothing
here runs for a process nobody watches.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis
from django.core.cache import cache
from django.db import close_old_connections

from django_redisroles import conf, doctor, ratelimit
from django_redisroles.locks import held_locks
from django_redisroles.pubsub import get_layer, status
from django_redisroles.sessions import user_sessions

from . import nodes
from .nodes import deployment_label, deployments

INTERVAL = 1.0  # seconds between two snapshots
HISTORY = 300  # points kept per chart: five minutes
DOCTOR_EVERY = 30.0  # seconds between two doctor runs
RECENT_429 = 12  # refusals listed in the rate-limit panel

#: The ``ratelimited`` signal's latest refusals (see apps.py), newest last.
refusals: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_429)


def server_label(url: str) -> str:
    """``host:port`` of a role's Redis (what the panels and the fault buttons name); a
    Redis Cluster's or a Sentinel service's URL, masked (``nodes.py``: each of its
    nodes is a ``host:port`` of its own)."""
    return deployment_label(url)


def servers() -> dict[str, dict[str, Any]]:
    """Each Redis deployment the roles use: its label -> a URL to reach it, and its roles."""
    return {label: {"url": d["url"], "roles": d["roles"]} for label, d in deployments().items()}


class Rate:
    """Per-second rates of growing counters, over the last few seconds of readings."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.readings: collections.deque[tuple[float, dict[str, int]]] = collections.deque()

    def __call__(self, counts: dict[str, int]) -> dict[str, float]:
        now = self.clock()
        self.readings.append((now, dict(counts)))
        while len(self.readings) > 2 and now - self.readings[1][0] >= self.window:
            self.readings.popleft()
        then, old = self.readings[0]
        if now <= then:
            return dict.fromkeys(counts, 0.0)
        return {k: round(max(0, v - old.get(k, 0)) / (now - then), 2) for k, v in counts.items()}


class Source:
    """One panel's data: the latest reading, or why there is none right now."""

    def __init__(self, name: str, read: Callable[[], dict[str, Any]]) -> None:
        self.name = name
        self.read = read
        self.data: dict[str, Any] | None = None
        self.error: str | None = None
        self.at: float | None = None  # wall-clock time of the latest good reading
        self.seq = 0  # the sampler's seq when it was read
        self.future: Future[dict[str, Any]] | None = None
        self.started = 0.0

    def as_dict(self) -> dict[str, Any]:
        waiting = None
        if self.future is not None and not self.future.done():
            waiting = round(time.monotonic() - self.started, 1)
        return {
            "data": self.data,
            "error": self.error,
            "at": self.at,
            "seq": self.seq,
            "waiting": waiting,
        }


class Sampler:
    """Collects every ``interval`` seconds in a background thread; see the module docstring."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard-sampler")
        self._cache_rate, self._ratelimit_rate, self._pubsub_rate = Rate(), Rate(), Rate()
        self._info_clients: dict[str, redis.Redis] = {}
        self._ops: dict[str, tuple[float, int]] = {}
        self._doctor_due = 0.0
        #: Chart points: "cache", "ratelimit", "pubsub" and "server:<label>" -> [t, ...values].
        self.history: dict[str, collections.deque[list[float]]] = collections.defaultdict(
            lambda: collections.deque(maxlen=HISTORY)
        )
        self.sources = {
            name: Source(name, read)
            for name, read in (
                ("cache", self.read_cache),
                ("sessions", self.read_sessions),
                ("ratelimit", self.read_ratelimit),
                ("pubsub", self.read_pubsub),
                ("locks", self.read_locks),
                ("instances", self.read_instances),
                ("doctor", self.read_doctor),
            )
        }

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Sampler:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="dashboard-sampler", daemon=True
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._info_clients.values():
            client.connection_pool.disconnect()

    def run_doctor_now(self) -> None:
        self._doctor_due = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.tick(deadline=started + self.interval * 0.9)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def tick(self, deadline: float) -> None:
        """Start reading every source that is not still busy; keep what is in by ``deadline``."""
        now = time.monotonic()
        for source in self.sources.values():
            if source.name == "doctor" and now < self._doctor_due:
                continue
            if source.future is None or source.future.done():
                source.started = now
                source.future = self._pool.submit(self._read, source)
        for source in self.sources.values():
            if source.future is not None:
                try:
                    source.future.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - still running (or reported in _read)
                    pass
        with self._lock:
            self.seq += 1

    def _read(self, source: Source) -> dict[str, Any]:
        close_old_connections()  # this worker thread's database connection, as a request would
        try:
            data = source.read()
        except Exception as exc:  # noqa: BLE001 - shown on the panel, the others go on
            source.error = f"{type(exc).__name__}: {exc}"
            return {}
        source.data, source.error, source.at = data, None, time.time()
        source.seq = self.seq + 1
        return data

    def snapshot(self) -> dict[str, Any]:
        """The latest reading of every source, and the sampler's seq."""
        return {
            "seq": self.seq,
            "time": time.time(),
            "sources": {name: s.as_dict() for name, s in self.sources.items()},
        }

    def charts(self, last: int | None = None) -> dict[str, list[list[float]]]:
        """Chart points: all of them, or the ``last`` N of each series."""
        return {k: list(v)[-last:] if last else list(v) for k, v in list(self.history.items())}

    def _point(self, series: str, *values: float) -> None:
        self.history[series].append([round(time.time(), 3), *values])

    # -- sources -------------------------------------------------------------
    def read_cache(self) -> dict[str, Any]:
        stats = cache.stats()
        rates = self._cache_rate({"hits": stats.hits, "misses": stats.misses})
        self._point("cache", rates["hits"], rates["misses"])
        layers = [stats.as_dict()]
        near = cache.near_stats() if hasattr(cache, "near_stats") else None
        if near is not None:
            # The near cache (OPTIONS["NEAR_CACHE"]): its own row, with its tracking and lag.
            state = f"lag {near.lag_ms} ms" if near.tracking else "bypassed: no tracking"
            row = {**near.as_dict(), "layer": f"near ({near.entries} entries, {state})"}
            layers.insert(0, {**row, "loads": near.fills})
        return {"layers": layers, "rates": rates}

    def read_sessions(self) -> dict[str, Any]:
        from django.contrib.auth import get_user_model

        users = list(get_user_model().objects.order_by("pk")[:50])
        per_user = {}
        for user in users:
            live = user_sessions(user)
            if live:
                per_user[user.pk] = {"username": user.get_username(), "sessions": live}
        total = sum(len(u["sessions"]) for u in per_user.values())
        return {"total": total, "users": len(per_user), "per_user": per_user}

    def read_ratelimit(self) -> dict[str, Any]:
        stats = ratelimit.stats()
        counts = stats.as_dict()
        rates = self._ratelimit_rate(counts)
        failed = rates["failed_open"] + rates["failed_closed"]
        self._point("ratelimit", rates["allowed"], rates["limited"], failed)
        return {"totals": counts, "rates": rates, "refusals": list(refusals)}

    def read_pubsub(self) -> dict[str, Any]:
        counts = dict(get_layer().stats)
        rates = self._pubsub_rate(
            {"published": counts.get("published", 0), "delivered": counts.get("delivered", 0)}
        )
        self._point("pubsub", rates["published"], rates["delivered"])
        data: dict[str, Any] = {"process": counts, "rates": rates}
        data["redis"] = status()  # raises when Redis is down: the panel says so
        return data

    def read_locks(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        data["locks"] = [
            {
                "name": o.name,
                "fence": o.fence,
                "ttl": o.ttl,
                "expires_in": o.expires_in,
                "acquired_at": o.acquired_at.timestamp() if o.acquired_at else None,
                "renewed_at": o.renewed_at.timestamp() if o.renewed_at else None,
                "host": o.host,
                "pid": o.pid,
                "cmd": o.cmd,
            }
            for o in held_locks()
        ]
        return data

    def _info_client(self, node: nodes.Node) -> redis.Redis:
        key = f"{node.label}@{node.url}"
        client = self._info_clients.get(key)
        if client is None:
            # A short timeout and no retry: a paused server must not stall the chart.
            client = self._info_clients[key] = node.client(timeout=0.5)
        return client

    def read_instances(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        found, unreachable = nodes.servers()
        for label, why in unreachable.items():
            roles = deployments().get(label, {}).get("roles", [])
            out[label] = {"roles": roles, "url": label, "up": False, "error": why}
        for label, node in found.items():
            entry: dict[str, Any] = {
                "roles": node.roles,
                "url": conf.mask_url(node.url),
                "node": node.node,
                "deployment": node.deployment,
                "master": node.master,
            }
            try:
                info = self._info_client(node).info()
            except redis.RedisError as exc:
                entry.update(up=False, error=f"{type(exc).__name__}: {exc}")
                self._ops.pop(label, None)
                out[label] = entry
                if node.kind != "single":
                    nodes.forget()  # a failover moves the master: ask again
                continue
            now, total = time.monotonic(), int(info.get("total_commands_processed", 0))
            last = self._ops.get(label)
            self._ops[label] = (now, total)
            ops = (total - last[1]) / (now - last[0]) if last and now > last[0] else 0.0
            memory = int(info.get("used_memory", 0))
            self._point(f"server:{label}", memory, round(max(ops, 0.0), 1))
            entry.update(
                up=True,
                server="valkey" if "valkey_version" in info else "redis",
                version=info.get("valkey_version") or info.get("redis_version"),
                used_memory=memory,
                used_memory_human=info.get("used_memory_human"),
                maxmemory=int(info.get("maxmemory", 0)),
                policy=info.get("maxmemory_policy"),
                aof=bool(info.get("aof_enabled")),
                rdb_last_save=info.get("rdb_last_save_time"),
                clients=info.get("connected_clients"),
                ops_per_sec=round(max(ops, 0.0), 1),
                uptime=info.get("uptime_in_seconds"),
                keys={
                    name: v.get("keys", 0)
                    for name, v in info.items()
                    if name.startswith("db") and isinstance(v, dict)
                },
            )
            out[label] = entry
        return out

    def read_doctor(self) -> dict[str, Any]:
        """``redisroles doctor``'s facts and findings, per server (every DOCTOR_EVERY s)."""
        self._doctor_due = time.monotonic() + DOCTOR_EVERY
        limits = doctor.Limits.from_settings(
            timeout=0.5, pings=3, max_seconds=2.0, client_window=0.3
        )
        report = doctor.run(limits=limits)
        by_server: dict[str, dict[str, Any]] = {}
        for server in report.servers:
            facts = server.as_dict()
            no_ttl = sum(ns["no_ttl"] for d in facts["databases"] for ns in d["namespaces"])
            by_server[server.label] = {
                "reachable": facts["reachable"],
                "error": facts["error"],
                "persistence": facts["persistence"],
                "memory": facts["memory"],
                "ping_ms": facts["ping_ms"],
                "keys_without_ttl": no_ttl,
                "findings": [],
            }
        for finding in report.findings:
            label = finding.instance.split("/", 1)[0]
            target = by_server.setdefault(label, {"findings": []})
            target["findings"].append(
                {
                    "id": finding.check_id,
                    "severity": finding.severity,
                    "roles": finding.roles,
                    "message": finding.message,
                    "fix": finding.fix.text,
                    "config_set": finding.fix.config_set,
                    "redis_conf": finding.fix.redis_conf,
                }
            )
        return {"servers": by_server, "ran_at": time.time(), "seconds": round(report.seconds, 2)}


_sampler: Sampler | None = None
_sampler_lock = threading.Lock()


def get_sampler() -> Sampler:
    """This process's sampler, started on first use."""
    global _sampler
    with _sampler_lock:
        if _sampler is None:
            _sampler = Sampler()
        return _sampler.start()


def stop_sampler() -> None:
    """Stop this process's sampler (tests: its reads must not leak into the next test)."""
    global _sampler
    with _sampler_lock:
        sampler, _sampler = _sampler, None
    if sampler is not None:
        sampler.stop()
