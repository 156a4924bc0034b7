"""The nodes behind a topology URL, and what the deployment says about itself.

- ``redis+cluster://``: ``CLUSTER NODES`` and ``CLUSTER INFO``, asked of the first
  seed that answers, name every master and replica;
- ``redis+sentinel://``: every Sentinel of the URL is asked ``SENTINEL MASTER``,
  ``SENTINEL REPLICAS``, ``SENTINEL SENTINELS`` and ``SENTINEL CKQUORUM`` for the
  service; the master and the replicas they name are the nodes.

Each node then gets a client of its own (the role's credentials and TLS, the
doctor's short timeout and client name): the per-server facts and rules run on
each node and are reported per node (:mod:`.facts`). Replies are read raw (no
redis-py response callback), the same on every redis-py, RESP2 or RESP3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from .. import conf
from ..engines import node_url_and_kwargs, pool_from_url, pool_kwargs
from .model import Deployment, SentinelView

__all__ = ["DOCTOR_CLIENT_NAME", "Node", "discover", "doctor_options", "plain_client"]

DOCTOR_CLIENT_NAME = "redisroles-doctor"


@dataclass
class Node:
    """One data node of a deployment, to be checked as a server of its own."""

    host: str
    port: int
    node: str  # "master" | "replica"
    master: str | None = None  # a replica's master, "host:port"
    db: int = 0  # the database the roles use there (a cluster: 0)

    @property
    def label(self) -> str:
        return address(self.host, self.port)


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def doctor_options(options: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """The role's connection options, made the doctor's: a short timeout, never retried,
    a small pool and its own client name (not counted among the app's connections)."""
    opts = dict(options)
    opts.update(
        socket_connect_timeout=timeout,
        socket_timeout=max(timeout, 1.0),
        retry_attempts=0,
        max_connections=2,
        client_name=DOCTOR_CLIENT_NAME,
    )
    opts.pop("health_check_interval", None)
    return opts


def plain_client(url: str, options: Mapping[str, Any], timeout: float) -> redis.Redis:
    """A private client of the one server ``url`` names (``redis://``, ``rediss://``, ``unix://``)."""
    opts = doctor_options(options, timeout)
    for name in conf.SENTINEL_OPTIONS:
        opts.pop(name, None)
    pool = pool_from_url(redis.ConnectionPool, url, pool_kwargs(opts, url), "this role")
    return redis.Redis(connection_pool=pool)


def node_client(
    topology: conf.Topology, options: Mapping[str, Any], timeout: float, node: Node
) -> redis.Redis:
    """A private client of one node of ``topology`` (its database: ``node.db``)."""
    opts = doctor_options(options, timeout)
    url, kwargs = node_url_and_kwargs(topology, opts, node.host, node.port, False)
    kwargs["db"] = node.db
    pool = pool_from_url(redis.ConnectionPool, url, kwargs, "this role")
    return redis.Redis(connection_pool=pool)


def _sentinel_client(
    topology: conf.Topology, options: Mapping[str, Any], timeout: float, host: str, port: int
) -> redis.Redis:
    """A client of one Sentinel: the Sentinels' own credentials, never the data nodes'."""
    opts = doctor_options(options, timeout)
    url, kwargs = node_url_and_kwargs(topology, opts, host, port, False)
    for name in ("username", "password", "db"):
        kwargs.pop(name, None)
    for option, kwarg in (("sentinel_username", "username"), ("sentinel_password", "password")):
        value = topology.query.get(option) or options.get(option)
        if value:
            kwargs[kwarg] = value
    pool = pool_from_url(redis.ConnectionPool, url, kwargs, "this role's Sentinels")
    return redis.Redis(connection_pool=pool)


def _text(value: Any) -> str:
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    """A Sentinel state reply (a flat list of pairs in RESP2, a map in RESP3) as text."""
    if isinstance(reply, Mapping):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=False))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {conf.mask_text(exc)}"


def discover(url: str, options: Mapping[str, Any], timeout: float) -> tuple[Deployment, list[Node]]:
    """The deployment ``url`` names and its data nodes (none when it could not be asked)."""
    topology = conf.topology_of(url)
    deployment = Deployment(topology.kind, conf.mask_url(url), service=topology.service)
    if topology.kind == "cluster":
        return deployment, _cluster(topology, options, timeout, deployment)
    return deployment, _sentinel(topology, options, timeout, deployment)


def _cluster(
    topology: conf.Topology, options: Mapping[str, Any], timeout: float, deployment: Deployment
) -> list[Node]:
    errors = []
    for host, port in topology.hosts:
        client = node_client(topology, options, timeout, Node(host, port, "master"))
        try:
            return _ask_cluster(client, host, port, deployment)
        except (redis.RedisError, OSError) as exc:
            errors.append(f"{address(host, port)}: {_error(exc)}")
        finally:
            client.connection_pool.disconnect()
    deployment.error = "no seed node answered: " + "; ".join(errors)
    return []


def _ask_cluster(client: redis.Redis, host: str, port: int, deployment: Deployment) -> list[Node]:
    """The nodes one seed knows: ``CLUSTER NODES``, else (refused or renamed, as some
    managed services do) ``CLUSTER SLOTS``, which every cluster client needs."""
    try:
        text = _text(client.execute_command("CLUSTER", "NODES"))  # type: ignore[no-untyped-call]
    except redis.ResponseError as exc:
        slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        deployment.notes.append(f"CLUSTER NODES refused ({_error(exc)}): nodes from CLUSTER SLOTS")
        nodes = _slots_nodes(slots, host, deployment)
    else:
        nodes = _cluster_nodes(text, host, deployment)
    deployment.asked = address(host, port)
    try:
        info = _text(client.execute_command("CLUSTER", "INFO"))  # type: ignore[no-untyped-call]
    except redis.ResponseError as exc:
        deployment.notes.append(f"CLUSTER INFO refused ({_error(exc)}): slot coverage unknown")
    else:
        deployment.cluster = {
            k: v.strip() for k, _, v in (line.partition(":") for line in info.splitlines()) if v
        }
    return nodes


def _slots_nodes(reply: Any, seed_host: str, deployment: Deployment) -> list[Node]:
    """``CLUSTER SLOTS`` taken apart: each range's master, then its replicas (Redis 7 lists
    a replica once it has received data)."""
    nodes: dict[str, Node] = {}
    for entry in reply:
        master: str | None = None
        for item in entry[2:]:
            node = Node(
                _text(item[0]) or seed_host,
                int(item[1]),
                "master" if master is None else "replica",
                master,
            )
            if node.label not in nodes:
                nodes[node.label] = node
                if master is None:
                    deployment.masters.append(node.label)
                else:
                    deployment.replicas.setdefault(master, []).append(node.label)
            master = master or node.label
    return list(nodes.values())


def _cluster_nodes(text: str, seed_host: str, deployment: Deployment) -> list[Node]:
    """``CLUSTER NODES`` taken apart: every node, its role, a replica's master."""
    by_id: dict[str, tuple[str, int, list[str], str, bool]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, addr, flag_text = fields[0], fields[1].split("@")[0].split(",")[0], fields[2]
        host, _, port_text = addr.rpartition(":")
        # A node that announces no address (``:0``) is asked where we asked the seed.
        host = host.strip("[]") or seed_host
        has_slots = len(fields) > 8 and any(not f.startswith("[") for f in fields[8:])
        by_id[node_id] = (host, int(port_text or 0), flag_text.split(","), fields[3], has_slots)
    nodes: list[Node] = []
    for host, port, node_flags, master_id, has_slots in by_id.values():
        flags = set(node_flags)
        if "noaddr" in flags or "handshake" in flags or not port:
            continue
        if "master" in flags:
            nodes.append(Node(host, port, "master"))
            if "fail" not in flags and has_slots:
                deployment.masters.append(address(host, port))
        else:
            master = by_id.get(master_id)
            label = address(master[0], master[1]) if master else None
            nodes.append(Node(host, port, "replica", label))
            if label and "fail" not in flags and "fail?" not in flags:
                deployment.replicas.setdefault(label, []).append(address(host, port))
    return nodes


def _sentinel(
    topology: conf.Topology, options: Mapping[str, Any], timeout: float, deployment: Deployment
) -> list[Node]:
    service = str(topology.service)
    master: tuple[str, int] | None = None
    replicas: list[tuple[str, int, str]] = []
    for host, port in topology.hosts:
        view = SentinelView(address(host, port))
        deployment.sentinels.append(view)
        client = _sentinel_client(topology, options, timeout, host, port)
        try:
            state = _pairs(client.execute_command("SENTINEL", "MASTER", service))  # type: ignore[no-untyped-call]
            view.reachable = True
            view.master = address(state.get("ip", "?"), int(state.get("port") or 0))
            view.quorum = int(state.get("quorum") or 0)
            view.sentinels = int(state.get("num-other-sentinels") or 0) + 1
            view.flags = state.get("flags", "")
            try:
                client.execute_command("SENTINEL", "CKQUORUM", service)  # type: ignore[no-untyped-call]
                view.quorum_ok = True
            except redis.ResponseError as exc:
                view.quorum_ok, view.quorum_error = False, conf.mask_text(exc)
            if master is None:
                master = (state.get("ip", ""), int(state.get("port") or 0))
                found = client.execute_command("SENTINEL", "REPLICAS", service)  # type: ignore[no-untyped-call]
                for item in found:
                    replica = _pairs(item)
                    replicas.append(
                        (replica.get("ip", ""), int(replica.get("port") or 0), replica["flags"])
                    )
        except (redis.RedisError, OSError) as exc:
            view.reachable, view.error = False, _error(exc)
        finally:
            client.connection_pool.disconnect()
    if master is None:
        deployment.error = f"no Sentinel answered SENTINEL MASTER {service}"
        return []
    db = topology.db if topology.db is not None else int(options.get("db") or 0)
    master_label = address(*master)
    deployment.masters.append(master_label)
    nodes = [Node(master[0], master[1], "master", db=db)]
    for host, port, flags in replicas:
        nodes.append(Node(host, port, "replica", master_label, db=db))
        if not {"s_down", "o_down", "disconnected"} & set(flags.split(",")):
            deployment.replicas.setdefault(master_label, []).append(address(host, port))
    return nodes
