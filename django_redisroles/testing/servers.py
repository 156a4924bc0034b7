"""A real Redis-compatible server process on a free loopback port, for tests and the demo.

``RedisServer`` starts it in a temporary directory (no persistence unless
asked), and can stop, kill, pause (SIGSTOP) and restart it on the same port and
data directory, for fault tests. The binary is :func:`.binaries.find_server`'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .binaries import ServerBinary, find_server, find_tls_server, inspect_binary
from .certs import make_certs
from .ports import free_port

__all__ = ["RedisServer", "redis_servers"]


class _PortTaken(Exception):
    """The server could not bind its port: another process took it first."""


class RedisServer:
    """A real Redis-compatible server process on 127.0.0.1.

    ``config`` entries are passed as ``--name value`` arguments (for example
    ``{"maxmemory-policy": "allkeys-lru"}``). Persistence is off unless
    ``persistence=True`` (then AOF with ``appendfsync always``, so a SIGKILL
    loses nothing). ``binary`` is a path or a :class:`ServerBinary`; by default
    :func:`find_server` (:func:`find_tls_server` with ``tls=True``) picks it.
    ``password`` sets ``requirepass`` (and ``masterauth``, for replicas), and
    :meth:`client` sends it.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        config: Mapping[str, str] | None = None,
        persistence: bool = False,
        unix_socket: bool = False,
        tls: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
        binary: ServerBinary | str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port or free_port()
        #: Whether start() may choose another port (ours, and never used yet).
        self._may_move = port is None
        self.config = dict(config or {})
        self.password = password
        if password:
            self.config.update({"requirepass": password, "masterauth": password})
        self.persistence = persistence
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="redisroles-"))
        self.unix_socket = str(self.dir / "redis.sock") if unix_socket else None
        self.tls = tls
        self._binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        #: SIGSTOPped by :meth:`pause` (and not resumed yet).
        self.paused = False

    @property
    def binary(self) -> ServerBinary:
        """The server binary this instance runs (chosen on first use)."""
        if isinstance(self._binary, str):
            self._binary = inspect_binary(self._binary, "given")
        if self._binary is None:
            self._binary = find_tls_server() if self.tls else find_server()
        return self._binary

    #: The topology a test runs on (``RedisCluster`` and ``SentinelGroup`` have the same
    #: ``kind``, ``servers``, ``url()``, ``client()``, ``flushall()``, ``start()``,
    #: ``running`` and ``cleanup()``).
    kind = "single"

    @property
    def servers(self) -> list[RedisServer]:
        """Every process of this topology: this one."""
        return [self]

    def flushall(self) -> None:
        """Empty every database (for a test's clean start)."""
        with self.client() as client:
            client.flushall()

    # -- addresses -------------------------------------------------------
    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def tls_url(self, db: int = 0) -> str:
        if not self.tls:
            raise RuntimeError("start the server with tls=True")
        return f"rediss://127.0.0.1:{self.port}/{db}"

    @property
    def ca_file(self) -> str:
        return str(self.dir / "ca.pem")

    def unix_url(self, db: int = 0) -> str:
        if not self.unix_socket:
            raise RuntimeError("start the server with unix_socket=True")
        return f"unix://{self.unix_socket}?db={db}"

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        """A fresh client of our own (for assertions, not the code under test)."""
        if self.tls:
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("ssl_ca_certs", self.ca_file)
        if self.password:
            kwargs.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **kwargs)

    def _make_certs(self) -> None:
        """A throwaway CA and a certificate for 127.0.0.1 in the server's directory."""
        make_certs(self.dir)

    # -- lifecycle -------------------------------------------------------
    def _leading_args(self) -> list[str]:
        """Arguments right after the binary (a config file, ``--sentinel``): none here."""
        return []

    def _args(self) -> list[str]:
        if self.tls:
            self._make_certs()
            port_args = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.dir / "server.pem"),
                "--tls-key-file",
                str(self.dir / "server.key"),
                "--tls-ca-cert-file",
                self.ca_file,
                "--tls-auth-clients",
                "no",
            ]
        else:
            port_args = ["--port", str(self.port)]
        args = [
            self.binary.path,
            *self._leading_args(),
            *port_args,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            "--databases",
            "16",
        ]
        if self.persistence:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "60 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        for name, value in self.config.items():
            args += [f"--{name}", *str(value).split()] if value != "" else [f"--{name}", ""]
        return args

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.process is not None and self.process.poll() is None:
            return self
        deadline = time.monotonic() + timeout
        for attempt in range(5):
            try:
                return self._start_once(deadline)
            except _PortTaken:
                # Another process took a port we chose between our check and our bind
                # (other test suites run beside this one): choose again, once it is ours
                # to choose (never for a server that already ran on its port).
                if not self._may_move or attempt == 4:
                    raise RuntimeError(
                        f"{self.binary.describe()} could not listen on port {self.port}: "
                        "the address is in use"
                    ) from None
                self._choose_ports()
        raise AssertionError("unreachable")  # pragma: no cover

    def _choose_ports(self) -> None:
        """New free ports, after a bind failure (subclasses with more ports choose them too)."""
        self.port = free_port()

    def _start_once(self, deadline: float) -> RedisServer:
        self.process = subprocess.Popen(
            self._args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
        )
        self.paused = False
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log()
                if "Address already in use" in err + log:
                    raise _PortTaken
                raise RuntimeError(
                    f"{self.binary.describe()} exited with {self.process.returncode} on "
                    f"port {self.port}: {err or log}"
                )
            try:
                # No retries of its own (redis-py 6+ backs off for seconds on a refused
                # connection): this loop retries every 20 ms and watches the process.
                # The server that answers must be ours (not another suite's on a port
                # we lost the race for).
                with self.client(socket_timeout=0.5, retry=Retry(NoBackoff(), 0)) as probe:
                    if int(probe.info("server").get("process_id", -1)) == self.process.pid:
                        self._may_move = False  # it ran on this port: clients know it
                        return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                pass
            except redis.exceptions.TimeoutError:
                pass  # started but not answering yet (a busy machine): ask again
            except redis.exceptions.ResponseError:
                pass  # another suite's server, behind a password: ours will exit
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.binary.describe()} did not answer on port {self.port} in time")

    def log(self) -> str:
        try:
            return (self.dir / "redis.log").read_text()
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM; saves if persistence is on)."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), as a crash would."""
        self._signal(signal.SIGKILL, 10.0)

    def pause(self) -> None:
        """SIGSTOP: the process stops answering; the kernel still accepts connections."""
        if self.running and self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.running and self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def _signal(self, sig: int, timeout: float) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
            if self.paused:  # a stopped process handles SIGTERM once it runs again
                proc.send_signal(signal.SIGCONT)
                self.paused = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()

    def restart(self, *, kill: bool = False) -> RedisServer:
        """Stop (or kill) and start again on the same port and data dir."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url()} {'running' if self.running else 'stopped'}>"


@contextlib.contextmanager
def redis_servers(count: int, **kwargs: Any) -> Iterator[list[RedisServer]]:
    """Start ``count`` servers at once; all are cleaned up on exit."""
    servers: list[RedisServer] = []
    try:
        for _ in range(count):
            servers.append(RedisServer(**kwargs).start())
        yield servers
    finally:
        for server in servers:
            server.cleanup()
