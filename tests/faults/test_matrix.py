"""The fault matrix: every role against every fault, on real servers.

Each cell asserts what a user sees (through real Django requests for the
request-facing roles, sync and async), that no call hangs past the role's
timeouts, that no side effect happens twice, and that what the policy keeps
is still there when the fault ends. The outcomes are data (``matrix.py``),
shown as the table of docs/failures.md.

``topology`` is a parameter so that Redis Cluster and Sentinel can run the
same matrix: a topology builds the lab (servers and their faults); only
"single" exists today.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.test import AsyncClient, Client

from django_redisroles import connections, errors
from django_redisroles.locks import command_lock, lock_keys
from django_redisroles.pubsub import SubscribeRefused, broadcast, get_layer
from django_redisroles.testing import RedisServer, ServerFeatureMissing

from . import urls
from .lab import (
    ADMIN_PASSWORD,
    FAST,
    NOCHANNEL_USER,
    NOSCRIPT_USER,
    FakeService,
    add_acl_users,
    http_service,
    resume,
    ssh_service,
    stall,
    user_url,
    wait_for,
    worst_case,
)
from .matrix import (
    FAULTS,
    Fault,
    cache_sees,
    locks_sees,
    pubsub_sees,
    ratelimit_sees,
    sessions_sees,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct horse"
ROOT = Path(__file__).resolve().parents[2]
# The rate-limit role's own defaults: 0.25 s timeouts, no retries.
RATELIMIT_OPTIONS = {"socket_connect_timeout": 0.25, "socket_timeout": 0.25, "retry_attempts": 0}
# Slack over the computed worst case: a busy CI machine, Django's own work.
SLACK = 2.0

TOPOLOGIES = ["single"]


class Lab:
    """The servers of one topology and how to put each fault in place.

    ``healthy(fault)`` is where a test writes what must survive (None: nowhere,
    e.g. an HTTP server); ``faulty(fault, role)`` is the role's URL and options
    during the fault; ``armed(fault)`` breaks and repairs the server.
    """

    def __init__(self, topology: str) -> None:
        if topology != "single":
            raise NotImplementedError(topology)
        self.servers: list[RedisServer] = []
        self.primary = self._start(persistence=True)
        self.replica = self._start(config={"replicaof": f"127.0.0.1 {self.primary.port}"})
        self.secure = self._start()
        add_acl_users(self.secure)
        try:
            self.tls: RedisServer | None = self._start(tls=True)
        except ServerFeatureMissing:  # the "tls" cells are marked tls: not applicable
            self.tls = None
        self.http: FakeService = http_service()
        self.ssh: FakeService = ssh_service()
        self._admin: redis.Redis | None = None

    def _start(self, **kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs).start()
        self.servers.append(server)
        return server

    def admin(self) -> redis.Redis:
        """One connection to the primary, held (CLIENT UNPAUSE must not need a new one)."""
        if self._admin is None:
            self._admin = self.primary.client(socket_timeout=5, single_connection_client=True)
        return self._admin

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._admin is not None:
                self._admin.close()
        self.http.close()
        self.ssh.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                resume(server)
            server.cleanup()

    def flush(self) -> None:
        for server, password in ((self.primary, None), (self.secure, ADMIN_PASSWORD)):
            with server.client(password=password) as c:
                c.flushall()
        if self.tls is not None:
            with self.tls.client() as c:
                c.flushall()

    def healthy(self, fault: Fault) -> tuple[str, dict[str, Any]] | None:
        if fault.name in ("acl", "wrongpass"):
            return f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{self.secure.port}/0", {}
        if fault.name == "tls":
            assert self.tls is not None
            return self.tls.tls_url(), {"ssl_ca_certs": self.tls.ca_file}
        if fault.name in ("http", "ssh"):
            return None
        return self.primary.url(), {}

    def faulty(self, fault: Fault, role: str) -> tuple[str, dict[str, Any]]:
        name = fault.name
        if name == "acl":
            user = NOCHANNEL_USER if role == "pubsub" else NOSCRIPT_USER
            return user_url(self.secure, *user), {}
        if name == "wrongpass":
            return user_url(self.secure, "default", "not-the-password"), {}
        if name == "tls":
            assert self.tls is not None
            return f"redis://127.0.0.1:{self.tls.port}/0", {}
        if name == "http":
            return self.http.url(), {}
        if name == "ssh":
            return self.ssh.url(), {}
        if name == "replica":
            return self.replica.url(), {}
        return self.primary.url(), {}

    def replicated(self) -> None:
        """Wait until the replica has what was written to the primary."""
        with self.primary.client() as p, self.replica.client() as r:
            assert wait_for(lambda: p.dbsize() == r.dbsize() and _offsets_equal(p, r))

    @contextlib.contextmanager
    def armed(self, fault: Fault) -> Iterator[None]:
        name = fault.name
        server = self.primary
        if name == "killed":
            server.kill()
            self._admin = None
        elif name == "stalled":
            stall(server)
        elif name == "paused":
            # WRITE, as a failover pauses clients. (Under ALL, Redis 7.0 postpones
            # CLIENT UNPAUSE too; the stall covers "nothing answers" anyway.)
            self.admin().execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        elif name == "full":
            self.admin().config_set("maxmemory-policy", "noeviction")
            self.admin().config_set("maxmemory", 1)
        try:
            yield
        finally:
            if name == "killed":
                server.start()
            elif name == "stalled":
                resume(server)
            elif name == "paused":
                self.admin().execute_command("CLIENT", "UNPAUSE")
            elif name == "full":
                self.admin().config_set("maxmemory", 0)
            connections.reset()  # the pools of the faulty URL; the next use reconnects


def _offsets_equal(primary: redis.Redis, replica: redis.Redis) -> bool:
    p = primary.info("replication")
    r = replica.info("replication")
    return r.get("master_link_status") == "up" and p.get("master_repl_offset") == r.get(
        "slave_repl_offset"
    )


@pytest.fixture(scope="module", params=TOPOLOGIES)
def topology(request: Any) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def lab(topology: str) -> Iterator[Lab]:
    built = Lab(topology)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    lab.flush()
    return lab


@pytest.fixture
def site(settings: Any, point_roles: Callable[..., None], fresh_lab: Lab) -> Callable[..., None]:
    """``use(url, options)``: the roles on ``url``, requests routed to tests.faults.urls."""
    settings.ROOT_URLCONF = "tests.faults.urls"
    settings.CACHES = {
        "default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 300}
    }

    def use(url: str, options: dict[str, Any]) -> None:
        point_roles(
            url, roles={"ratelimit": {"OPTIONS": {**RATELIMIT_OPTIONS, **options}}}, **options
        )

    return use


def bound(options: dict[str, Any] | None = None, calls: int = 1) -> float:
    """The longest ``calls`` Redis calls may take under the matrix's options, with slack."""
    return calls * worst_case({**FAST, **(options or {})}) + SLACK


# The "tls" cells need a server built with TLS (a wheel's may not have it).
FAULT_PARAMS = [
    pytest.param(fault, id=fault.name, marks=[pytest.mark.tls] if fault.name == "tls" else [])
    for fault in FAULTS
]


# -- cache ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", FAULT_PARAMS)
def test_cache(
    fault: Fault,
    mode: str,
    fresh_lab: Lab,
    site: Callable[..., None],
    browsers: Callable[[str], Browser],
) -> None:
    from django.core.cache import cache

    browser = browsers(mode)
    prefix = "" if mode == "sync" else "a"
    healthy = fresh_lab.healthy(fault)
    if healthy is not None:
        site(*healthy)
        cache.set("kept", "kept", 300)
        cache.set("counter", 0, 300)
        assert cache.incr("counter") == 1  # as in a live process: script loaded
        if fault.name == "replica":
            fresh_lab.replicated()
    site(*fresh_lab.faulty(fault, "cache"))
    if fault.queued:
        assert browser.get(f"/{prefix}warm/").status_code == 200  # an open connection
    loads = urls.LOADS["n"]
    with fresh_lab.armed(fault):
        started = time.monotonic()
        response = browser.get(f"/{prefix}cache/?incr=1")
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content[:500]
    assert response.json() == cache_sees(fault)
    assert urls.LOADS["n"] == loads + 1  # get_or_set computed once
    # Every call tried Redis at most once past OUTAGE_BACKOFF: the first one's timeouts.
    assert elapsed < bound(calls=2), elapsed
    if healthy is not None and fault.name != "replica":
        with _raw(healthy) as check:
            counter = check.get(cache.make_key("counter"))
        # The increment is sent once: after a stall it ran once, never twice.
        assert counter == (b"2" if fault.queued else b"1"), counter


# -- sessions ---------------------------------------------------------------------


@pytest.fixture
def alice(transactional_db: Any) -> Any:
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", FAULT_PARAMS)
def test_sessions(
    fault: Fault,
    mode: str,
    fresh_lab: Lab,
    site: Callable[..., None],
    alice: Any,
    browsers: Callable[[str], Browser],
) -> None:
    prefix = "" if mode == "sync" else "a"
    browser = browsers(mode)
    credentials = {"username": "alice", "password": PASSWORD}
    healthy = fresh_lab.healthy(fault)
    cookie = None
    before: set[bytes] = set()
    if healthy is not None:
        site(*healthy)
        assert browser.post(f"/{prefix}login/", credentials).status_code == 200
        cookie = browser.cookies["sessionid"].value
        before = _session_keys(healthy)
        if fault.name == "replica":
            fresh_lab.replicated()
    else:
        browser.cookies["sessionid"] = "s" * 32  # a browser that had a session
    site(*fresh_lab.faulty(fault, "sessions"))
    if fault.queued or fault.name == "paused":
        assert browser.get(f"/{prefix}session/").status_code == 200  # an open connection
    newcomer = browsers(mode)
    with fresh_lab.armed(fault):
        started = time.monotonic()
        read = browser.get(f"/{prefix}session/")
        write = browser.get(f"/{prefix}session/write/")
        login = newcomer.post(f"/{prefix}login/", credentials)
        elapsed = time.monotonic() - started
    seen = {"read": read.status_code, "write": write.status_code, "login": login.status_code}
    assert seen == sessions_sees(fault), [r.content[:300] for r in (read, write, login)]
    for response in (read, write, login):
        if response.status_code == 503:
            assert response["Retry-After"] == "5"
            assert "sessionid" not in response.cookies  # never replaced, never deleted
    assert elapsed < bound(calls=6), elapsed
    if healthy is not None:
        site(*healthy)
        # Nothing lost: the same cookie is still signed in (also after a kill: AOF).
        page = browser.get(f"/{prefix}session/")
        assert page.status_code == 200 and browser.cookies["sessionid"].value == cookie
        assert browser.get("/session/").json()["user"] == "alice"
        # No session made twice: at most the one of the failed login (its cookie
        # never reached the browser; it expires with its TTL), never two.
        assert len(_session_keys(healthy) - before) <= 1


# -- ratelimit --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", FAULT_PARAMS)
def test_ratelimit(
    fault: Fault,
    mode: str,
    fresh_lab: Lab,
    site: Callable[..., None],
    browsers: Callable[[str], Browser],
) -> None:
    from django_redisroles.ratelimit import limiter

    prefix = "" if mode == "sync" else "a"
    browser = browsers(mode)
    healthy = fresh_lab.healthy(fault)
    site(*fresh_lab.faulty(fault, "ratelimit"))
    if fault.queued or fault.name in ("paused", "full"):
        # A process that has been serving: connection open, script loaded.
        assert browser.get(f"/{prefix}limited/open/").json() == {"failed": False}
        limiter.reset_backoff()
    with fresh_lab.armed(fault):
        started = time.monotonic()
        opened = browser.get(f"/{prefix}limited/open/")
        closed = browser.get(f"/{prefix}limited/closed/")
        elapsed = time.monotonic() - started
    seen = {"open": opened.status_code, "closed": closed.status_code}
    assert seen == ratelimit_sees(fault)
    assert opened.json() == {"failed": True}
    assert closed["Retry-After"] == "1"
    # One attempt, 0.25 s timeouts: an outage costs a request at most one timeout.
    assert elapsed < bound(RATELIMIT_OPTIONS, calls=2), elapsed
    if healthy is not None and fault.name != "replica":
        with _raw(healthy) as check:
            counts = [int(check.hget(k, "c") or 0) for k in check.scan_iter("demo:ratelimit:*")]
        # The warm-up, plus the check that ran when a stalled server woke up: never
        # a check counted twice.
        assert all(c <= (2 if fault.queued else 1) for c in counts), counts


# -- pubsub -----------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULT_PARAMS)
async def test_pubsub(fault: Fault, fresh_lab: Lab, site: Callable[..., None]) -> None:
    url, options = fresh_lab.faulty(fault, "pubsub")
    site(url, options)
    listening = fault.name in ("killed", "stalled", "paused", "full", "replica")
    layer = get_layer()
    received: list[Any] = []
    try:
        if listening:  # a consumer subscribed before the fault, on the same server
            channel = await layer.new_channel()
            await layer.group_add("news", channel)
            await asyncio.to_thread(broadcast, "news", {"type": "warm"})
            assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "warm"
        with fresh_lab.armed(fault):
            started = time.monotonic()
            try:
                await asyncio.to_thread(broadcast, "news", {"type": "during", "n": 1})
                outcome = "sent"
            except errors.REDIS_ERRORS as exc:
                failure = errors.classify(exc)
                assert failure is not None and failure.code == fault.code, repr(exc)
                outcome = "raises"
            assert time.monotonic() - started < bound(), "broadcast() hung"
            # A consumer joining during the fault: subscribed when Redis is back,
            # refused at once when the ACL forbids it; never a hang.
            joined = time.monotonic()
            if fault.name == "acl":
                with pytest.raises(SubscribeRefused):
                    await asyncio.wait_for(layer.new_channel(), bound())
            else:
                late = await asyncio.wait_for(layer.new_channel(), bound())
                await asyncio.wait_for(layer.group_add("late", late), bound())
            assert time.monotonic() - joined < bound()
        assert outcome == pubsub_sees(fault)
        if listening:
            with contextlib.suppress(TimeoutError):
                while True:
                    message = await asyncio.wait_for(layer.receive(channel), 1.5)
                    if message["type"] == "during":
                        received.append(message)
            # Delivered once when the server answered or woke up; never twice.
            expected = 1 if (fault.publish or fault.queued) else 0
            assert len(received) == expected, received
    finally:
        await asyncio.wait_for(layer.close(), 10)


# -- locks ------------------------------------------------------------------------


class MatrixJob(BaseCommand):
    runs = 0

    @command_lock(ttl=30, key="matrix-job")
    def handle(self, *args: Any, **options: Any) -> None:
        MatrixJob.runs += 1


@pytest.mark.parametrize("fault", FAULT_PARAMS)
def test_locks(fault: Fault, fresh_lab: Lab, site: Callable[..., None], capsys: Any) -> None:
    healthy = fresh_lab.healthy(fault)
    site(*fresh_lab.faulty(fault, "locks"))
    if fault.queued:
        with contextlib.suppress(SystemExit):  # warm: scripts loaded, connection open
            MatrixJob().run_from_argv(["manage.py", "matrixjob"])
        MatrixJob.runs = 0
    with fresh_lab.armed(fault):
        started = time.monotonic()
        with pytest.raises(SystemExit) as exit_info:
            MatrixJob().run_from_argv(["manage.py", "matrixjob"])
        elapsed = time.monotonic() - started
    assert exit_info.value.code == locks_sees(fault)
    assert MatrixJob.runs == 0  # fail closed: the body never ran
    err = capsys.readouterr().err
    assert "could not take lock 'matrix-job', not running" in err
    assert f"{fault.code} ({fault.kind})" in err
    assert elapsed < bound(), elapsed
    if healthy is not None:
        with _raw(healthy) as check:
            ttl = check.pttl(lock_keys("matrix-job").lock)
        # A lock taken by an acquire that timed out (it ran when the server woke
        # up) is never left without its lease.
        assert ttl == -2 or (fault.queued and 0 < ttl <= 30_000), ttl


# -- helpers ----------------------------------------------------------------------


class Browser:
    """One browser (cookies), talking to the WSGI or the ASGI handler.

    Async requests of one test share one event loop, so the role's async
    connections stay open between them, as in a server that has been serving.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.client = Client(raise_request_exception=False)
        self._loop = asyncio.new_event_loop() if mode == "async" else None

    @property
    def cookies(self) -> Any:
        return self.client.cookies

    def _async(self, method: str, path: str, data: dict[str, str] | None) -> Any:
        assert self._loop is not None
        async_client = AsyncClient(raise_request_exception=False)
        async_client.cookies = self.client.cookies
        call = async_client.get(path) if method == "get" else async_client.post(path, data)
        response = self._loop.run_until_complete(call)
        self.client.cookies = async_client.cookies
        return response

    def get(self, path: str) -> Any:
        if self.mode == "sync":
            return self.client.get(path)
        return self._async("get", path, None)

    def post(self, path: str, data: dict[str, str]) -> Any:
        if self.mode == "sync":
            return self.client.post(path, data)
        return self._async("post", path, data)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()


@pytest.fixture
def browsers() -> Iterator[Callable[[str], Browser]]:
    made: list[Browser] = []

    def make(mode: str) -> Browser:
        made.append(Browser(mode))
        return made[-1]

    yield make
    for browser in made:
        browser.close()


@contextlib.contextmanager
def _raw(target: tuple[str, dict[str, Any]]) -> Iterator[redis.Redis]:
    url, options = target
    client = redis.Redis.from_url(url, socket_timeout=5, **options)
    try:
        yield client
    finally:
        client.close()


def _session_keys(target: tuple[str, dict[str, Any]]) -> set[bytes]:
    with _raw(target) as check:
        return set(check.scan_iter("demo:sessions:s:*"))
