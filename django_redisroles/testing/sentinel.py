"""A throwaway Sentinel setup on loopback ports: a master, its replicas, three Sentinels.

``SentinelGroup().start()`` starts the master, the replicas (``replicaof``) and
the Sentinels (``<server> sentinel.conf --sentinel``, the same binary), and waits
until every Sentinel knows the others and the replicas. :meth:`SentinelGroup.failover`
kills the master and waits for the Sentinels to promote a replica;
:meth:`SentinelGroup.start` later brings the killed node back (the Sentinels
turn it into a replica of the new master). Runs on Redis 7.0+ and Valkey 8+.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from .binaries import ServerBinary
from .nodes import SentinelServer
from .nodes import text as _text
from .servers import RedisServer

__all__ = ["SentinelGroup", "SentinelServer"]  # SentinelServer: from .nodes


class SentinelGroup:
    """A master, ``replicas`` replicas and ``sentinels`` Sentinels watching ``service``.

    The topology of a test: ``url()`` is its ``redis+sentinel://`` URL,
    ``client()`` a fresh client of the master Sentinel names, ``flushall()``
    empties the master. ``password`` protects the data nodes,
    ``sentinel_password`` the Sentinels (``OPTIONS["sentinel_password"]``).
    """

    kind = "sentinel"

    def __init__(
        self,
        replicas: int = 1,
        sentinels: int = 3,
        *,
        service: str = "mymaster",
        binary: ServerBinary | str | None = None,
        tls: bool = False,
        password: str | None = None,
        sentinel_password: str | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 4000,
    ) -> None:
        self.service = service
        self.tls = tls
        self.password = password
        self.sentinel_password = sentinel_password
        self.dir = Path(tempfile.mkdtemp(prefix="redisroles-sentinel-"))
        tls_config = {"tls-replication": "yes"} if tls else {}
        # A replica's (re)sync starts at once, not after 5 s.
        data_config = {**tls_config, "repl-diskless-sync-delay": "0"}
        self.data: list[RedisServer] = []
        for i in range(1 + replicas):
            (self.dir / f"data{i}").mkdir()
            self.data.append(
                RedisServer(
                    binary=binary,
                    tls=tls,
                    password=password,
                    config=dict(data_config),
                    data_dir=self.dir / f"data{i}",
                )
            )
        master = self.data[0]
        quorum = sentinels // 2 + 1
        lines = [
            f"sentinel monitor {service} 127.0.0.1 {master.port} {quorum}",
            f"sentinel down-after-milliseconds {service} {down_after_ms}",
            f"sentinel failover-timeout {service} {failover_timeout_ms}",
            f"sentinel parallel-syncs {service} 1",
        ]
        if password:
            lines.append(f"sentinel auth-pass {service} {password}")
        if sentinel_password:
            lines.append(f"sentinel sentinel-pass {sentinel_password}")
        self.sentinels: list[SentinelServer] = []
        for i in range(sentinels):
            (self.dir / f"sentinel{i}").mkdir()
            self.sentinels.append(
                SentinelServer(
                    sentinel_config="\n".join(lines) + "\n",
                    binary=binary,
                    tls=tls,
                    password=sentinel_password,
                    config=dict(tls_config),
                    data_dir=self.dir / f"sentinel{i}",
                )
            )
        if tls:  # one CA and certificate for all: one ssl_ca_certs verifies them all
            first = self.data[0]
            first._make_certs()
            for server in [*self.data[1:], *self.sentinels]:
                for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
                    shutil.copy(first.dir / name, server.dir / name)
        # Sentinel's password is requirepass on a Sentinel, not masterauth.
        for sentinel in self.sentinels:
            sentinel.config.pop("masterauth", None)
        self._started = False

    # -- the topology interface ------------------------------------------------
    @property
    def servers(self) -> list[RedisServer]:
        return [*self.data, *self.sentinels]

    @property
    def ca_file(self) -> str:
        return self.data[0].ca_file

    def url(self, db: int = 0) -> str:
        """``redis+sentinel://[:password@]127.0.0.1:s1,.../SERVICE/DB``."""
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{scheme}://{auth}{hosts}/{self.service}/{db}"

    def tls_url(self, db: int = 0) -> str:
        if not self.tls:
            raise RuntimeError("start the group with tls=True")
        return self.url(db)

    def sentinel(self, **kwargs: Any) -> redis.sentinel.Sentinel:
        """A ``redis.sentinel.Sentinel`` of our own over the running Sentinels."""
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": self.ca_file} if self.tls else {}
        sentinel_kwargs = {"socket_timeout": 5, "password": self.sentinel_password, **tls}
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("password", self.password)
        return redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            [("127.0.0.1", s.port) for s in self.sentinels if s.running],
            sentinel_kwargs=sentinel_kwargs,
            **tls,
            **kwargs,
        )

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        """A fresh client of the master (for assertions, not the code under test)."""
        return self.sentinel().master_for(self.service, db=db, **kwargs)  # type: ignore[no-untyped-call, no-any-return]

    def flushall(self) -> None:
        """``FLUSHALL`` on the master (the replicas follow)."""
        with self.master().client() as client:
            client.flushall()

    @property
    def running(self) -> bool:
        """Every process runs and none is paused (``start()`` heals the rest)."""
        return self._started and all(s.running and not s.paused for s in self.servers)

    # -- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> SentinelGroup:
        """Start everything and wait until it is settled; later calls heal what a test broke.

        A data node that was down comes back as a replica of the master the
        Sentinels name now (never as a second master).
        """
        deadline = time.monotonic() + timeout
        if not self._started:
            master = self.data[0]
            master.start()
            for replica in self.data[1:]:
                replica.config["replicaof"] = f"127.0.0.1 {master.port}"
                replica.start()
        else:
            for server in self.servers:
                if server.paused:
                    server.resume()
            current = self._named_master() or self._running_master()
            for node in self.data:
                if node.running:
                    continue
                if current is None:  # everything was down: the first one leads again
                    current = node
                    node.config.pop("replicaof", None)
                elif node is current:
                    node.config.pop("replicaof", None)
                else:
                    node.config["replicaof"] = f"127.0.0.1 {current.port}"
                node.start()
            # An old master still acting as one (the Sentinels would convert it
            # after their next INFO, up to 10 s later): what they would tell it.
            for node in self.data:
                if current is not None and node is not current and node.running:
                    with contextlib.suppress(redis.RedisError, OSError):
                        if self._role(node)[0] == "master":
                            with self._admin(node) as client:
                                client.execute_command("REPLICAOF", "127.0.0.1", current.port)
        for sentinel in self.sentinels:
            sentinel.start()
        self._started = True
        self._wait(self._settled, deadline, "a settled master, replicas and Sentinels")
        return self

    def _named_master(self) -> RedisServer | None:
        """The data node the Sentinels name as master (None: none answers or names one)."""
        for sentinel in self.sentinels:
            if not sentinel.running or sentinel.paused:
                continue
            try:
                with self._admin(sentinel) as client:
                    addr = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                    )
            except (redis.RedisError, OSError):
                continue
            if addr:
                port = int(_text(addr[1]))
                return next((n for n in self.data if n.port == port), None)
        return None

    def _running_master(self) -> RedisServer | None:
        for node in self.data:
            if node.running and not node.paused:
                with contextlib.suppress(redis.RedisError, OSError):
                    if self._role(node)[0] == "master":
                        return node
        return None

    def _admin(self, server: RedisServer) -> redis.Redis:
        return server.client(socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def _role(self, node: RedisServer) -> tuple[str, int | None, str]:
        """(``master``/``slave``, master port, link state) as ``ROLE`` reports."""
        with self._admin(node) as client:
            reply = client.execute_command("ROLE")
        role = _text(reply[0])
        if role == "slave":
            return role, int(reply[2]), _text(reply[3])
        return role, None, ""

    def _settled(self) -> bool:
        names = set()
        for sentinel in self.sentinels:
            with self._admin(sentinel) as client:
                addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                state = client.execute_command("SENTINEL", "MASTER", self.service)
            fields = _pairs(state)
            if "s_down" in fields.get("flags", "") or "o_down" in fields.get("flags", ""):
                return False
            if fields.get("failover-state", "none") not in ("none", ""):
                return False
            if int(fields.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                return False
            names.add(int(_text(addr[1])))
        if len(names) != 1:
            return False
        master = next((n for n in self.data if n.port in names), None)
        if master is None or not master.running or self._role(master)[0] != "master":
            return False
        for node in self.data:
            if node is not master and self._role(node) != ("slave", master.port, "connected"):
                return False
        # Every Sentinel sees every replica up and linked (else SENTINEL FAILOVER
        # says NOGOODSLAVE, and a crash of the master would have nobody to promote).
        replica_ports = {n.port for n in self.data if n is not master}
        for sentinel in self.sentinels:
            with self._admin(sentinel) as client:
                replies = client.execute_command("SENTINEL", "REPLICAS", self.service)
            good = set()
            for reply in replies:
                fields = _pairs(reply)
                flags = fields.get("flags", "")
                if "s_down" in flags or "disconnected" in flags:
                    continue
                if fields.get("master-link-status") == "ok":
                    good.add(int(fields.get("port", 0)))
            if not replica_ports <= good:
                return False
        return True

    def _wait(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"the test Sentinel group did not reach {what} in time: {self.describe()}"
        )

    # -- who is who ------------------------------------------------------------
    def master(self) -> RedisServer:
        """The data node the Sentinels name as master now."""
        found = self._named_master()
        if found is None:
            raise RuntimeError(f"no Sentinel names a master: {self.describe()}")
        return found

    def replicas(self) -> list[RedisServer]:
        master = self.master()
        return [n for n in self.data if n is not master]

    def describe(self) -> str:
        parts = []
        for node in self.data:
            try:
                role = self._role(node)[0]
            except (redis.RedisError, OSError):
                role = "down" if not node.running else "no answer"
            parts.append(f"127.0.0.1:{node.port}={role}")
        named = self._named_master()
        parts.append(f"Sentinels name {named.port if named else None}")
        return ", ".join(parts)

    # -- faults ----------------------------------------------------------------
    def failover(self, *, kill: bool = True, timeout: float = 30.0) -> RedisServer:
        """Replace the master; returns the promoted replica.

        ``kill=True`` kills the master (a crash: the Sentinels notice it is down
        after ``down_after_ms`` and elect a replica); ``kill=False`` asks them
        (``SENTINEL FAILOVER``: a switch that loses no acknowledged write).
        The killed node stays down until :meth:`start`.
        """
        old = self.master()
        if kill:
            old.kill()
        else:
            with self._admin(self.sentinels[0]) as client:
                client.execute_command("SENTINEL", "FAILOVER", self.service)
        deadline = time.monotonic() + timeout

        def switched() -> bool:
            new = self._named_master()
            return new is not None and new is not old and self._role(new)[0] == "master"

        self._wait(switched, deadline, f"a new master in place of 127.0.0.1:{old.port}")
        return self.master()

    # -- cleanup ----------------------------------------------------------------
    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<SentinelGroup {self.url()} {len(self.data)} data nodes>"


def _pairs(reply: Any) -> dict[str, str]:
    """``SENTINEL MASTER``'s reply as a dict, whether redis-py parsed it or not."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=False))
