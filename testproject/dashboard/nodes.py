"""The Redis servers behind the roles' URLs, one by one: what the instance panel and
the fault buttons act on.

A ``redis://`` (``rediss://``, ``unix://``) URL is one server. A ``redis+cluster://``
URL is every node of the cluster and a ``redis+sentinel://`` one the master and the
replicas of the service, as ``redisroles doctor`` finds them (``CLUSTER NODES``,
``SENTINEL MASTER`` / ``REPLICAS``): each gets a row, a chart and its own short-timeout
client, so a paused or dead node shows as that node, the others keep answering.
Discovery is cached for a few seconds (a failover shows within that).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from django_redisroles import conf
from django_redisroles.doctor import nodes as doctor_nodes
from django_redisroles.engines import node_url_and_kwargs, pool_from_url, pool_kwargs

REDISCOVER = 5.0  # seconds a deployment's node list is kept
TIMEOUT = 0.5  # seconds: a paused node must not stall a panel


def deployment_label(url: str) -> str:
    """``host:port`` of one server (``unix:path``); a cluster's or a Sentinel service's
    URL, masked (its nodes get labels of their own)."""
    where = conf.server_of(url)
    if where is None or where[0] in ("cluster", "sentinel"):
        return conf.mask_url(url)
    return f"unix:{where[1]}" if where[0] == "unix" else f"{where[1]}:{where[2]}"


@dataclass
class Node:
    """One Redis server the roles use."""

    label: str  # host:port: what the panels and the fault buttons name
    deployment: str  # deployment_label() of its URL (the label itself for one server)
    kind: str  # "single", "cluster" or "sentinel"
    node: str  # "server", "master" or "replica"
    roles: list[str]
    url: str  # the role's URL: one server's, or the deployment's
    options: dict[str, Any] = field(repr=False, default_factory=dict)  # the role's
    host: str = ""
    port: int = 0
    db: int = 0
    master: str | None = None  # a replica's master

    def client(self, timeout: float = TIMEOUT, name: str = "redisroles-dashboard") -> redis.Redis:
        """A private client of this node: short timeouts, never retried, a small pool
        (the roles' pools must not be the ones a pause blocks)."""
        options = {
            **self.options,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry_attempts": 0,
            "max_connections": 2,
            "client_name": name,
        }
        for option in conf.SENTINEL_OPTIONS:
            options.pop(option, None)
        if self.kind == "single":
            url, kwargs = self.url, pool_kwargs(options, self.url)
        else:
            topology = conf.topology_of(self.url)
            url, kwargs = node_url_and_kwargs(topology, options, self.host, self.port, False)
            kwargs["db"] = self.db
        pool = pool_from_url(redis.ConnectionPool, url, kwargs, "the dashboard")
        return redis.Redis(connection_pool=pool)


def deployments() -> dict[str, dict[str, Any]]:
    """Each deployment the roles use: its label -> a URL (with credentials), its roles."""
    found: dict[str, dict[str, Any]] = {}
    for role in conf.ROLES:
        url = conf.role_url(role)
        entry = found.setdefault(deployment_label(url), {"url": url, "role": role, "roles": []})
        entry["roles"].append(role)
    return found


_lock = threading.Lock()
#: deployment URL -> (discovered at, nodes, error)
_discovered: dict[str, tuple[float, list[doctor_nodes.Node], str | None]] = {}


def _discover(url: str, options: dict[str, Any]) -> tuple[list[doctor_nodes.Node], str | None]:
    now = time.monotonic()
    with _lock:
        cached = _discovered.get(url)
    if cached is not None and now - cached[0] < REDISCOVER and cached[1]:
        return cached[1], cached[2]
    deployment, found = doctor_nodes.discover(url, options, TIMEOUT)
    with _lock:
        _discovered[url] = (now, found, deployment.error)
    return found, deployment.error


def forget() -> None:
    """Rediscover every deployment on next use (after a failover the demo caused)."""
    with _lock:
        _discovered.clear()


def servers() -> tuple[dict[str, Node], dict[str, str]]:
    """Every Redis server of every role, by label; and the deployments whose nodes
    could not be found (label -> why)."""
    out: dict[str, Node] = {}
    errors: dict[str, str] = {}
    for label, entry in deployments().items():
        url, options = entry["url"], dict(conf.role_options(entry["role"]))
        topology = conf.topology_of(url) if conf.url_problem(url) is None else None
        if topology is None or topology.kind == "single":
            out[label] = Node(label, label, "single", "server", entry["roles"], url, options)
            continue
        found, error = _discover(url, options)
        if not found:
            errors[label] = error or "no node found"
        for node in found:
            out[node.label] = Node(
                node.label,
                label,
                topology.kind,
                node.node,
                entry["roles"],
                url,
                options,
                node.host,
                node.port,
                node.db,
                node.master,
            )
    return out, errors


def targets(label: str) -> list[Node]:
    """The node named ``label``, or every node of the deployment named ``label``;
    ``KeyError`` when there is none."""
    found, _ = servers()
    if label in found:
        return [found[label]]
    nodes = [n for n in found.values() if n.deployment == label]
    if not nodes:
        raise KeyError(label)
    return nodes
