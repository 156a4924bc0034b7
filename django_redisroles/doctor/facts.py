"""Facts about each role's server, gathered with short, bounded commands.

1. :func:`connect`: every role's URL is resolved from ``REDISROLES``; one
   connection is opened per distinct URL (roles sharing a URL share it), with a
   short timeout, no retries, and the client name ``redisroles-doctor`` (so it
   is not counted as the app's). A ``redis+cluster://`` or ``redis+sentinel://``
   URL is one connection per node (:mod:`.nodes`: every master and replica).
   Servers are told apart by ``INFO``'s ``run_id``: two URLs naming the same
   server (another database, ``localhost`` vs ``127.0.0.1``) are one
   :class:`~.model.Server`.
2. :func:`gather_server`: a few ``CONFIG GET`` (optional: managed services
   often disable ``CONFIG``), N ``PING`` round trips, ``CLIENT LIST``, and the
   subscribed pub/sub channels with database-blind (old) names.
3. :func:`probe_acl` (:mod:`.acl`): harmless probes of what each role's ACL user may run.
4. :func:`sample_db`: a bounded key sample per database: ``SCAN`` with
   ``COUNT`` (never ``KEYS``), at most ``max_keys`` keys per database and a
   share of ``max_seconds``, with ``PTTL`` / ``MEMORY USAGE`` / ``TYPE``
   pipelined per batch on the keys in a role's namespace. Each command is
   short, so Redis keeps answering other clients between them.
5. :func:`open_connection_window` / :func:`connection_rate`: new connections
   per second over the run (a sign of connect-per-request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from django.core.exceptions import ImproperlyConfigured

from .. import conf
from . import nodes
from .acl import probe_acl
from .model import Database, Deployment, Limits, Namespace, Server
from .nodes import DOCTOR_CLIENT_NAME
from .wiring import role_namespaces

__all__ = [
    "DOCTOR_CLIENT_NAME",
    "Progress",
    "connect",
    "connection_rate",
    "gather_server",
    "open_connection_window",
    "probe_acl",
    "sample_db",
    "url_label",
]


def url_label(url: str) -> str:
    """``host:port`` (or ``unix:path``) of a URL; the masked URL when it is malformed or
    names a Redis Cluster or a Sentinel service (its nodes get their own labels)."""
    if conf.url_problem(url) is not None or conf.topology_of(url).kind != "single":
        return conf.mask_url(url)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname or '?'}:{parts.port or 6379}"


Progress = Callable[[str], None]


def connect(roles: Iterable[str], limits: Limits) -> tuple[list[Server], list[Deployment]]:
    """One connection per distinct URL (per node of a Redis Cluster or a Sentinel service),
    merged into one ``Server`` per run_id; and each topology URL's :class:`Deployment`."""
    by_url: dict[str, list[str]] = {}
    for role in roles:
        by_url.setdefault(conf.role_url(role), []).append(role)
    servers: dict[str, Server] = {}
    deployments: list[Deployment] = []
    for url, url_roles in by_url.items():
        options = conf.role_options(url_roles[0])
        try:
            kind = conf.topology_of(url).kind if conf.url_problem(url) is None else "single"
            if kind == "single":
                _add_server(servers, url, url_roles, url_label(url), limits.timeout, None, None)
                continue
            deployment, found = nodes.discover(url, options, limits.timeout)
        except (ImproperlyConfigured, ValueError) as exc:  # a URL or options redis-py refuses
            _unreachable(servers, url, url_roles, url_label(url), exc)
            continue
        deployment.roles = list(url_roles)
        deployments.append(deployment)
        if deployment.error is not None:
            _unreachable(servers, url, url_roles, deployment.label, deployment.error)
        topology = conf.topology_of(url)
        for node in found:
            try:
                client = nodes.node_client(topology, options, limits.timeout, node)
            except (ImproperlyConfigured, ValueError) as exc:
                _unreachable(servers, url, url_roles, node.label, exc)
                continue
            _add_server(
                servers, url, url_roles, node.label, limits.timeout, client, node, deployment.kind
            )
    return list(servers.values()), deployments


def _unreachable(
    servers: dict[str, Server], url: str, roles: list[str], label: str, why: Any
) -> Server:
    down = servers.setdefault(f"unreachable:{label}", Server(label, [], []))
    down.urls.append(conf.mask_url(url))
    down.roles += [r for r in roles if r not in down.roles]
    down.error = why if isinstance(why, str) else f"{type(why).__name__}: {conf.mask_text(why)}"
    return down


def _add_server(
    servers: dict[str, Server],
    url: str,
    roles: list[str],
    label: str,
    timeout: float,
    client: redis.Redis | None,
    node: nodes.Node | None,
    topology: str | None = None,
) -> None:
    """Connect (``client``, or one of ``url``), and add or merge the server it reaches.

    A replica gets no :class:`Database`: its keys are its master's, sampled there.
    """
    try:
        if client is None:
            client = nodes.plain_client(url, conf.role_options(roles[0]), timeout)
        info = client.info()
    except (redis.RedisError, ImproperlyConfigured, OSError) as exc:  # a bad URL too
        if client is not None:
            client.connection_pool.disconnect()
        down = _unreachable(servers, url, roles, label, exc)
        if node is not None:
            down.topology, down.node, down.master = topology, node.node, node.master
        return
    run_id = str(info.get("run_id"))
    server = servers.get(run_id)
    if server is None:
        server = servers[run_id] = Server(
            label, [], [], client=client, reachable=True, run_id=run_id, info=info
        )
        if node is not None:
            server.topology, server.node, server.master = topology, node.node, node.master
    server.urls.append(conf.mask_url(url))
    server.roles += [r for r in roles if r not in server.roles]
    if node is not None and node.node != "master":
        if client is not server.client:
            client.connection_pool.disconnect()
        return
    db = Database(node.db if node is not None else conf.url_db(url), list(roles), [], client=client)
    for role in roles:
        db.namespaces += role_namespaces(role)
    same_db = next((d for d in server.databases if d.db == db.db), None)
    if same_db is None:
        server.databases.append(db)  # keeps its client: it is SELECTed on that db
    else:  # another URL for the same database: one connection is enough
        same_db.roles += db.roles
        same_db.namespaces += db.namespaces
        if client is not server.client:
            client.connection_pool.disconnect()


def gather_server(server: Server, limits: Limits) -> None:
    client = server.client
    assert client is not None
    try:
        server.config = {
            k: v
            for name in ("save", "appendonly", "client-output-buffer-limit", "maxclients")
            for k, v in _str_dict(client.config_get(name)).items()
        }
    except redis.ResponseError as exc:  # CONFIG renamed/disabled (managed services)
        server.config_error = str(exc)
    for _ in range(max(1, limits.pings)):
        start = time.perf_counter()
        client.ping()
        server.pings_ms.append((time.perf_counter() - start) * 1000)
    try:
        server.clients = [{k: str(v) for k, v in c.items()} for c in client.client_list()]
    except redis.ResponseError:
        server.clients = []
    if "pubsub" in server.roles:
        server.legacy_channels = _legacy_channels(client)


def _legacy_channels(client: redis.Redis) -> list[str]:
    """Subscribed channels named without a database (processes of an older version)."""
    from ..pubsub.names import legacy_redis_channel  # imports Channels: only when used

    legacy: list[str] = []
    for kind in ("g", "c"):
        prefix = legacy_redis_channel(kind, "")
        found = client.pubsub_channels(conf.glob_escape(prefix.decode()) + "*")
        for name in cast("list[bytes]", found):  # bytes: the doctor's client does not decode
            if name.startswith(prefix):
                legacy.append(name.decode(errors="backslashreplace"))
    return sorted(legacy)


def _str_dict(value: Mapping[Any, Any]) -> dict[str, str]:
    def s(x: Any) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    return {s(k): s(v) for k, v in value.items()}


def sample_db(
    server: Server, database: Database, limits: Limits, deadline: float, progress: Progress | None
) -> None:
    """SCAN one database (bounded), checking TTL/size/type of our namespaces' keys."""
    client = database.client
    assert client is not None
    started = time.monotonic()
    # Longest prefix first, so a nested namespace wins over an enclosing one.
    namespaces = sorted(database.namespaces, key=lambda ns: len(ns.prefix), reverse=True)
    prefixes = [(ns.prefix.encode(), ns) for ns in namespaces]
    database.keys = int(client.dbsize())
    cursor = 0
    last_progress = started  # first progress line after a second: small databases stay quiet
    streams: list[tuple[bytes, Namespace]] = []
    where = f"{server.label}/{database.db}"
    while True:
        cursor, found = client.scan(cursor=cursor, count=limits.scan_count)
        keys = cast("list[bytes]", found)  # bytes: the doctor's client does not decode
        database.scanned += len(keys)
        ours: list[tuple[bytes, Namespace]] = []
        for key in keys:
            for prefix, ns in prefixes:
                if key.startswith(prefix):
                    ours.append((key, ns))
                    break
        if ours:
            pipe = client.pipeline(transaction=False)
            for key, ns in ours:
                pipe.pttl(key)
                if ns.max_value_size is not None:
                    pipe.memory_usage(key)
                if ns.role == "pubsub":
                    pipe.type(key)
            results = iter(pipe.execute(raise_on_error=False))
            for key, ns in ours:
                ttl = next(results)
                usage = next(results) if ns.max_value_size is not None else None
                kind = next(results) if ns.role == "pubsub" else None
                if ttl == -2:  # expired between SCAN and PTTL
                    continue
                ns.sampled += 1
                name = key.decode(errors="backslashreplace")
                if kind in (b"stream", "stream"):
                    streams.append((key, ns))
                    continue  # replay streams have their own rule
                if ttl == -1:
                    ns.no_ttl += 1
                    if len(ns.no_ttl_examples) < limits.examples:
                        ns.no_ttl_examples.append(name)
                if (
                    ns.max_value_size
                    and isinstance(usage, int)
                    and usage > ns.max_value_size
                    and len(ns.large) < 1000
                ):
                    ns.large.append((name, usage))
        now = time.monotonic()
        if progress and now - last_progress >= 1.0:
            last_progress = now
            pct = f" ({100 * database.scanned / database.keys:.0f}%)" if database.keys else ""
            progress(f"sampling {where}: {database.scanned:,} keys{pct}")
        if cursor == 0:
            database.complete = True
            break
        if database.scanned >= limits.max_keys:
            database.stopped_by = "max_keys"
            break
        if now >= deadline:
            database.stopped_by = "max_seconds"
            break
    # Large values: MEMORY USAGE rounds up to the allocator's size class, so a
    # string is confirmed with STRLEN (the payload size the cache limit is about).
    for ns in database.namespaces:
        if ns.large:
            pipe = client.pipeline(transaction=False)
            for name, _ in ns.large:
                pipe.strlen(name.encode())
            confirmed = []
            for (name, usage), strlen in zip(
                ns.large, pipe.execute(raise_on_error=False), strict=True
            ):
                size = strlen if isinstance(strlen, int) and strlen > 0 else usage
                if ns.max_value_size and size > ns.max_value_size:
                    confirmed.append((name, size))
            ns.large = confirmed
    if streams:
        pipe = client.pipeline(transaction=False)
        for key, _ in streams[:1000]:
            pipe.pttl(key)
            pipe.xlen(key)
        results = iter(pipe.execute(raise_on_error=False))
        for key, ns in streams[:1000]:
            ttl, length = next(results), next(results)
            if isinstance(ttl, int) and isinstance(length, int):
                ns.streams.append(
                    {"key": key.decode(errors="backslashreplace"), "ttl_ms": ttl, "length": length}
                )
    database.seconds = time.monotonic() - started
    if progress:
        state = "all" if database.complete else f"stopped by {database.stopped_by}"
        progress(
            f"sampled {where}: {database.scanned:,} of {database.keys:,} keys "
            f"({state}) in {database.seconds:.2f}s"
        )


def open_connection_window(servers: list[Server]) -> float:
    """Note each server's connection count now; the window's start (monotonic)."""
    started = time.monotonic()
    for server in servers:
        if server.reachable and server.client is not None:
            try:
                stats = server.client.info("stats")
                server.connections_base = int(stats.get("total_connections_received", 0))
            except redis.RedisError:
                pass
    return started


def connection_rate(servers: list[Server], limits: Limits, since: float) -> None:
    """New connections per second over at least ``client_window`` seconds."""
    remaining = limits.client_window - (time.monotonic() - since)
    if remaining > 0:
        time.sleep(remaining)
    for server in servers:
        if not server.reachable or server.client is None:
            continue
        before = server.connections_base
        try:
            stats = server.client.info("stats")
        except redis.RedisError:
            continue
        elapsed = max(time.monotonic() - since, 1e-3)
        new = int(stats.get("total_connections_received", before)) - before
        server.new_connections_per_s = max(new, 0) / elapsed
