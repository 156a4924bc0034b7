"""A throwaway Redis Cluster on loopback ports, made with redis-py (no ``redis-cli``).

``RedisCluster(masters=3, replicas=1).start()`` starts the nodes with
``--cluster-enabled yes`` (each with its bus on a free port of its own:
``cluster-port``), assigns the 16384 slots with ``CLUSTER ADDSLOTSRANGE``,
joins them with ``CLUSTER MEET``, attaches replicas with ``CLUSTER REPLICATE``
and waits for ``cluster_state:ok`` on every node. Runs on Redis 7.0+ and Valkey
8+ (``ADDSLOTSRANGE`` and ``cluster-port`` are 7.0's).

Fault helpers: each node is a :class:`~.servers.RedisServer` (``kill()``,
``restart()``, ``pause()``/``resume()``); :meth:`RedisCluster.failover` kills a
master and waits for its replica to take over; :meth:`RedisCluster.move_slot`
migrates a slot and its keys to another master (clients then get ``MOVED``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from redis.crc import key_slot

from .binaries import ServerBinary
from .clients import ClusterClient
from .nodes import ClusterNode
from .nodes import text as _text

__all__ = ["ClusterNode", "RedisCluster", "slot_of"]  # ClusterNode: from .nodes

SLOTS = 16384


def slot_of(key: str | bytes) -> int:
    """The cluster slot of ``key`` (hash tags honoured), as Redis computes it."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


class RedisCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on 127.0.0.1.

    The topology of a test: ``url()`` is its ``redis+cluster://`` URL (every
    master as a seed), ``client()`` a fresh ``redis.cluster.RedisCluster`` for
    assertions, ``flushall()`` empties every master.
    """

    kind = "cluster"

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 0,
        *,
        binary: ServerBinary | str | None = None,
        tls: bool = False,
        password: str | None = None,
        config: Mapping[str, str] | None = None,
        node_timeout: int = 2000,
    ) -> None:
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.password = password
        self.tls = tls
        self.dir = Path(tempfile.mkdtemp(prefix="redisroles-cluster-"))
        node_config = dict(config or {})
        self.nodes: list[ClusterNode] = []
        for i in range(masters * (1 + replicas)):
            node_dir = self.dir / f"node{i}"
            node_dir.mkdir()
            self.nodes.append(
                ClusterNode(
                    config=node_config,
                    password=password,
                    tls=tls,
                    binary=binary,
                    data_dir=node_dir,
                    node_timeout=node_timeout,
                )
            )
        if tls:  # one CA and certificate for every node: one ssl_ca_certs verifies them all
            self.nodes[0]._make_certs()
            for node in self.nodes[1:]:
                for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
                    shutil.copy(self.nodes[0].dir / name, node.dir / name)
        self.seeds = self.nodes[:masters]
        self._replicas_of = {
            i: self.nodes[masters + i * replicas : masters + (i + 1) * replicas]
            for i in range(masters)
        }
        self._created = False

    # -- the topology interface ------------------------------------------------
    @property
    def servers(self) -> list[ClusterNode]:
        return list(self.nodes)

    @property
    def ca_file(self) -> str:
        return self.nodes[0].ca_file

    def url(self, db: int = 0) -> str:
        """``redis+cluster://[:password@]127.0.0.1:p1,127.0.0.1:p2,...`` (db must be 0)."""
        if db:
            raise ValueError("a Redis Cluster has only database 0")
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}" + ",".join(f"127.0.0.1:{n.port}" for n in self.seeds)

    def tls_url(self, db: int = 0) -> str:
        if not self.tls:
            raise RuntimeError("start the cluster with tls=True")
        return self.url(db)

    def client(self, db: int = 0, **kwargs: Any) -> ClusterClient:
        """A fresh cluster client of our own (for assertions, not the code under test):
        ``keys()``, ``dbsize()``, ``info()``... answer for the whole cluster."""
        if db:
            raise ValueError("a Redis Cluster has only database 0")
        if self.password:
            kwargs.setdefault("password", self.password)
        if self.tls:
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("ssl_ca_certs", self.ca_file)
        kwargs.setdefault("socket_timeout", 5)
        nodes = [
            redis.cluster.ClusterNode("127.0.0.1", n.port)  # type: ignore[no-untyped-call]
            for n in self.nodes
            if n.running
        ]
        return ClusterClient(startup_nodes=nodes, **kwargs)

    def flushall(self) -> None:
        """``FLUSHALL`` on every master (replicas follow)."""
        for node in self.masters():
            with node.admin() as client:
                client.flushall()

    @property
    def running(self) -> bool:
        """Every node's process runs and none is paused (``start()`` heals the rest)."""
        return self._created and all(n.running and not n.paused for n in self.nodes)

    # -- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> RedisCluster:
        """Start the nodes and create the cluster; later calls restart dead nodes."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.start(timeout=max(1.0, deadline - time.monotonic()))
        if not self._created:
            self._create(deadline)
            self._created = True
        for node in self.nodes:
            if node.paused:
                node.resume()
        self.wait_ok(max(1.0, deadline - time.monotonic()))
        return self

    def _admin(self, node: ClusterNode) -> redis.Redis:
        return node.admin()

    def _create(self, deadline: float) -> None:
        for i, node in enumerate(self.nodes):
            with self._admin(node) as client:
                node.node_id = _text(client.execute_command("CLUSTER", "MYID"))
                # Distinct epochs, as redis-cli --cluster create sets them.
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        step = SLOTS // len(self.seeds)
        for i, master in enumerate(self.seeds):
            first = i * step
            last = SLOTS - 1 if i == len(self.seeds) - 1 else first + step - 1
            with self._admin(master) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with self._admin(self.nodes[0]) as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        self._wait(
            lambda: all(self._known(node) == len(self.nodes) for node in self.nodes),
            deadline,
            "every node to know every other one",
        )
        for i, master in enumerate(self.seeds):
            for replica in self._replicas_of[i]:
                with self._admin(replica) as client:
                    client.execute_command("CLUSTER", "REPLICATE", master.node_id)

    def _known(self, node: ClusterNode) -> int:
        """Nodes ``node`` knows and is done shaking hands with."""
        with self._admin(node) as client:
            text = _text(client.execute_command("CLUSTER", "NODES"))
        return sum(
            1 for line in text.splitlines() if line.strip() and "handshake" not in line.split()[2]
        )

    def _all_ok(self) -> bool:
        try:
            masters = self.masters()
            for node in self.nodes:
                info = self._info(node)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                    return False
            if not all(self._replica_linked(n) for n in self.nodes if n not in masters):
                return False
            # Every node sees every replica as one (gossip takes a moment after REPLICATE
            # or a failover): what CLUSTER NODES tells a client, or the doctor, is settled.
            replicas = len(self.nodes) - len(self.seeds)
            return all(self._replicas_seen(node) == replicas for node in self.nodes)
        except (redis.RedisError, OSError):
            return False

    def _info(self, node: ClusterNode) -> dict[str, str]:
        with self._admin(node) as client:
            text = _text(client.execute_command("CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _replicas_seen(self, node: ClusterNode) -> int:
        with self._admin(node) as client:
            text = _text(client.execute_command("CLUSTER", "NODES"))
        return sum(
            1 for line in text.splitlines() if line.strip() and line.split()[2].endswith("slave")
        )

    def _replica_linked(self, node: ClusterNode) -> bool:
        with self._admin(node) as client:
            info = client.info("replication")
        return bool(info.get("role") != "slave" or info.get("master_link_status") == "up")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says ``cluster_state:ok``, all slots served, replicas linked."""
        self._wait(self._all_ok, time.monotonic() + timeout, "cluster_state:ok on every node")

    def _wait(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the test cluster did not reach {what} in time: {self.describe()}")

    # -- who is who ------------------------------------------------------------
    def masters(self) -> list[ClusterNode]:
        """The running nodes that are masters now (after failovers, not the seeds)."""
        found = []
        for node in self.nodes:
            if node.running and not node.paused:
                with contextlib.suppress(redis.RedisError, OSError):
                    if self._role(node) == "master":
                        found.append(node)
        return found

    def replicas(self) -> list[ClusterNode]:
        masters = self.masters()
        return [n for n in self.nodes if n.running and not n.paused and n not in masters]

    def _role(self, node: ClusterNode) -> str:
        with self._admin(node) as client:
            return _text(client.execute_command("ROLE")[0])

    def node_for(self, key: str | bytes) -> ClusterNode:
        """The master that serves ``key``'s slot now."""
        return self.owner(slot_of(key))

    def owner(self, slot: int) -> ClusterNode:
        """The master that serves ``slot`` now."""
        for node in self.masters():
            with self._admin(node) as client:
                if any(first <= slot <= last for first, last in self._slots_of(node, client)):
                    return node
        raise RuntimeError(f"no master serves slot {slot}: {self.describe()}")

    def _slots_of(self, node: ClusterNode, client: redis.Redis) -> list[tuple[int, int]]:
        text = _text(client.execute_command("CLUSTER", "NODES"))  # type: ignore[no-untyped-call]
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 8 and "myself" in fields[2]:
                ranges = []
                for part in fields[8:]:
                    if part.startswith("["):
                        continue  # a slot being migrated
                    first, _, last = part.partition("-")
                    ranges.append((int(first), int(last or first)))
                return ranges
        return []

    def describe(self) -> str:
        parts = []
        for node in self.nodes:
            try:
                state = self._info(node).get("cluster_state", "?") + "/" + self._role(node)
            except (redis.RedisError, OSError):
                state = "down" if not node.running else "no answer"
            parts.append(f"127.0.0.1:{node.port}={state}")
        return ", ".join(parts)

    # -- faults ----------------------------------------------------------------
    def failover(self, master: ClusterNode | None = None, *, timeout: float = 30.0) -> ClusterNode:
        """Kill ``master`` (default: the first master) and wait for a replica to replace it.

        Returns the promoted replica. Needs ``replicas >= 1``. The killed node
        stays down until :meth:`start` (it then rejoins as a replica).
        """
        master = master or self.masters()[0]
        candidates = [r for r in self.replicas() if self._master_id_of(r) == master.node_id]
        if not candidates:
            raise RuntimeError(f"{master!r} has no replica to fail over to")
        master.kill()
        deadline = time.monotonic() + timeout

        def promoted() -> bool:
            return any(self._role(r) == "master" for r in candidates) and all(
                self._info(n).get("cluster_state") == "ok"
                for n in self.nodes
                if n.running and not n.paused
            )

        self._wait(promoted, deadline, f"a replica of 127.0.0.1:{master.port} promoted")
        return next(r for r in candidates if self._role(r) == "master")

    def _master_id_of(self, replica: ClusterNode) -> str:
        with self._admin(replica) as client:
            text = _text(client.execute_command("CLUSTER", "NODES"))
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 3 and "myself" in fields[2]:
                return fields[3]
        return "-"

    def move_slot(self, slot: int, target: ClusterNode) -> ClusterNode:
        """Migrate ``slot`` with its keys to the master ``target``; returns the old owner.

        The steps of ``redis-cli --cluster reshard``: ``SETSLOT IMPORTING`` /
        ``MIGRATING``, ``MIGRATE`` the keys, ``SETSLOT NODE`` everywhere.
        Clients that cached the old owner then get ``MOVED``.
        """
        source = self.owner(slot)
        if source is target:
            return source
        with self._admin(source) as src, self._admin(target) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                auth = ["AUTH", self.password] if self.password else []
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, *auth, "KEYS", *keys
                )
            for node in (target, source):
                with self._admin(node) as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        for node in self.masters():
            if node not in (source, target):
                with self._admin(node) as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        self.wait_ok()
        return source

    # -- cleanup ----------------------------------------------------------------
    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<RedisCluster {self.url()} {len(self.nodes)} nodes>"
