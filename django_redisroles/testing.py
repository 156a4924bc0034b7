"""Throwaway ``redis-server`` processes for tests and the demo.

``RedisServer`` starts a real ``redis-server`` on a free loopback port in a
temporary directory (no persistence unless asked), and can stop, kill and
restart it on the same port and data directory, for fault tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import redis

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it: on Debian/Ubuntu "
    "`sudo apt-get install redis-server` (scripts/test does this for you); "
    "on macOS `brew install redis`. Or set REDIS_SERVER_BIN to its path."
)


class RedisServerNotFound(RuntimeError):
    """``redis-server`` is not installed."""


def redis_server_bin() -> str:
    """Path of the ``redis-server`` binary, or ``RedisServerNotFound``."""
    path = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if not path:
        # Debian installs it in /usr/bin, but a minimal PATH may miss /usr/sbin-style dirs.
        for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
            if os.access(candidate, os.X_OK):
                return candidate
        raise RedisServerNotFound(INSTALL_HINT)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real ``redis-server`` process on 127.0.0.1.

    ``config`` entries are passed as ``--name value`` arguments (for example
    ``{"maxmemory-policy": "allkeys-lru"}``). Persistence is off unless
    ``persistence=True`` (then AOF with ``appendfsync always``, so a SIGKILL
    loses nothing).
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
    ) -> None:
        self.port = port or free_port()
        self.config = dict(config or {})
        self.persistence = persistence
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="redisroles-"))
        self.unix_socket = str(self.dir / "redis.sock") if unix_socket else None
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

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
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, **kwargs)

    def _make_certs(self) -> None:
        """A throwaway CA and a server certificate for 127.0.0.1 (needs `openssl`)."""
        if (self.dir / "server.pem").exists():
            return
        openssl = shutil.which("openssl")
        if not openssl:
            raise RuntimeError("tls=True needs the openssl command (apt-get install openssl)")
        d = str(self.dir)

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=redisroles-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        )
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        )
        (self.dir / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        )

    # -- lifecycle -------------------------------------------------------
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
            redis_server_bin(),
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
        self.process = subprocess.Popen(
            self._args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log()
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode} on port "
                    f"{self.port}: {err or log}"
                )
            try:
                with self.client(socket_timeout=0.5) as probe:
                    if probe.ping():
                        return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

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

    def _signal(self, sig: int, timeout: float) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
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
