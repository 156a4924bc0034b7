"""Real servers in a bad state, for the fault tests.

Every fault is a real process in a real condition: a redis-server killed,
SIGSTOPped, paused, full, read-only, refusing a user or a password, speaking
TLS; or something that is not Redis at all on the port (a tiny HTTP server,
an SSH banner). Nothing is mocked: the roles talk to these over TCP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from django_redisroles.testing import RedisServer

#: Connection options of every role under test: short, so a fault costs
#: fractions of a second, with retries on (so a re-sent command would show).
FAST: dict[str, Any] = {
    "socket_connect_timeout": 0.5,
    "socket_timeout": 0.5,
    "retry_attempts": 2,
    "health_check_interval": 0,
}

#: An ACL user that may do anything but run scripts (EVAL/EVALSHA/SCRIPT/FUNCTION).
NOSCRIPT_USER = ("noscript", "noscript-pw")
#: An ACL user that may do anything but use Pub/Sub channels.
NOCHANNEL_USER = ("nochannel", "nochannel-pw")
ADMIN_PASSWORD = "admin-pw"


def worst_case(options: dict[str, Any]) -> float:
    """Longest one command may take under ``options`` when the server never answers.

    Each attempt may spend a connect timeout and a read timeout (a stalled
    server accepts connections: the kernel completes the handshake), plus
    redis-py's backoff between attempts (capped at 0.5 s).
    """
    attempts = 1 + int(options.get("retry_attempts", 0))
    per_try = float(options["socket_connect_timeout"]) + float(options["socket_timeout"])
    return attempts * (per_try + 0.5)


class FakeService:
    """A TCP service on 127.0.0.1 that is not Redis: an HTTP server or an SSH daemon.

    ``banner`` is sent as soon as a client connects (SSH speaks first);
    ``reply`` after the client's first bytes (HTTP answers a bad request).
    """

    def __init__(self, *, banner: bytes = b"", reply: bytes = b"") -> None:
        self.banner = banner
        self.reply = reply
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2.0)
            try:
                if self.banner:
                    conn.sendall(self.banner)
                if conn.recv(4096) and self.reply:
                    conn.sendall(self.reply)
                time.sleep(0.05)
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()


def http_service() -> FakeService:
    return FakeService(
        reply=b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 11\r\n"
        b"Connection: close\r\n\r\nBad Request"
    )


def ssh_service() -> FakeService:
    return FakeService(banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")


def add_acl_users(server: RedisServer) -> None:
    """A password on ``server``'s default user (``ADMIN_PASSWORD``), and the users
    ``noscript`` (no scripting) and ``nochannel`` (no Pub/Sub channels)."""
    with server.client() as admin:
        admin.config_set("requirepass", ADMIN_PASSWORD)
    with server.client(password=ADMIN_PASSWORD) as admin:
        admin.execute_command(
            "ACL", "SETUSER", NOSCRIPT_USER[0], "on", f">{NOSCRIPT_USER[1]}",
            "~*", "&*", "+@all", "-@scripting",
        )  # fmt: skip
        admin.execute_command(
            "ACL", "SETUSER", NOCHANNEL_USER[0], "on", f">{NOCHANNEL_USER[1]}",
            "~*", "resetchannels", "+@all",
        )  # fmt: skip


def user_url(server: RedisServer, user: str, password: str, db: int = 0) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/{db}"


def stall(server: RedisServer) -> None:
    """SIGSTOP: the process stops answering; the kernel still accepts connections."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)


def resume(server: RedisServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGCONT)


@contextlib.contextmanager
def stalled(server: RedisServer, seconds: float) -> Iterator[threading.Thread]:
    """Stop ``server`` now and resume it after ``seconds`` (in a thread), whatever happens."""
    stall(server)
    timer = threading.Timer(seconds, resume, args=(server,))
    timer.start()
    try:
        yield timer
    finally:
        timer.join()
        resume(server)


class Monitor:
    """``MONITOR`` on a server: the commands it really ran (to count re-sends)."""

    def __init__(self, server: RedisServer, **kwargs: Any) -> None:
        self._client = server.client(**kwargs)
        self._monitor = self._client.monitor()
        self._conn = self._monitor.__enter__()
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._conn.listen():
                self.commands.append(str(event.get("command", "")))
                if self._stop.is_set():
                    return
        except (redis.RedisError, OSError, ValueError):
            return

    def count(self, prefix: str) -> int:
        return sum(1 for c in self.commands if c.upper().startswith(prefix.upper()))

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._client.ping()  # wakes listen() up
        with contextlib.suppress(Exception):
            self._monitor.__exit__(None, None, None)
        self._client.close()


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
