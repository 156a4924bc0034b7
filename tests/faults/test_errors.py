"""``errors.classify`` on what redis-py really raises, from real servers in real states.

The same answers on every supported redis-py: 5.x keeps ``MASTERDOWN``,
``MOVED``, ``CROSSSLOT``... as a plain ``ResponseError`` with the code first
in the message, 6.x+ turns them into classes and strips the code (run this
module under both: CI installs redis-py 5 in a second environment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis._parsers.base import BaseParser
from redis.backoff import NoBackoff
from redis.retry import Retry

from django_redisroles.errors import Kind, classify, error_code
from django_redisroles.testing import RedisServer, ServerFeatureMissing, free_port

from .lab import (
    ADMIN_PASSWORD,
    NOSCRIPT_USER,
    add_acl_users,
    http_service,
    resume,
    ssh_service,
    stall,
    wait_for,
)

pytestmark = pytest.mark.slow


def _raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the exception is what we test
        return exc
    raise AssertionError("no exception raised")


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    """One of each: plain, ACL-protected, full, replica, TLS, cluster nodes, fake services."""
    made: list[RedisServer] = []

    def start(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs).start()
        made.append(server)
        return server

    plain = start()
    secure = start()
    add_acl_users(secure)
    replica = start(config={"replicaof": f"127.0.0.1 {plain.port}"})
    orphan = start()
    with orphan.client() as c:  # after start(): its PING would answer MASTERDOWN
        c.config_set("replica-serve-stale-data", "no")
        c.replicaof("127.0.0.1", free_port())
    try:
        tls = start(tls=True)
    except ServerFeatureMissing:  # the cases that need it are marked tls: not applicable
        tls = None
    node_a, node_b, empty_node = (start(config=_cluster_node()) for _ in range(3))
    with node_a.client() as a, node_b.client() as b:
        a.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 8191)
        b.execute_command("CLUSTER", "ADDSLOTSRANGE", 8192, 16383)
        bus_b = node_b.config["cluster-port"]
        a.execute_command("CLUSTER", "MEET", "127.0.0.1", node_b.port, bus_b)
        assert wait_for(
            lambda: (
                b"cluster_state:ok" in a.execute_command("CLUSTER", "INFO")
                and b"cluster_state:ok" in b.execute_command("CLUSTER", "INFO")
            ),
            timeout=20,
        )
    http, ssh = http_service(), ssh_service()
    try:
        yield {
            "plain": plain,
            "secure": secure,
            "replica": replica,
            "orphan": orphan,
            "tls": tls,
            "node_a": node_a,
            "empty_node": empty_node,
            "http": http,
            "ssh": ssh,
        }
    finally:
        http.close()
        ssh.close()
        for server in made:
            server.cleanup()


def _cluster_node() -> dict[str, str]:
    # The bus port is given explicitly: port + 10000 may be above 65535.
    return {"cluster-enabled": "yes", "cluster-port": str(free_port())}


def client(port: int, **kwargs: Any) -> redis.Redis:
    kwargs.setdefault("socket_timeout", 0.5)
    kwargs.setdefault("socket_connect_timeout", 0.5)
    # One attempt (redis-py 6+ retries 3 times with backoff by default).
    kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    return redis.Redis(port=port, **kwargs)


# name -> (how to get the error from the servers, expected code, expected kind)
CASES: dict[str, tuple[Callable[[dict[str, Any]], BaseException], str, Kind]] = {
    "connection refused": (
        lambda s: _raised(client(free_port()).ping),
        "CONNECTION",
        Kind.OUTAGE,
    ),
    "HTTP server on the port": (
        lambda s: _raised(client(s["http"].port).ping),
        "PROTOCOL",
        Kind.OUTAGE,
    ),
    "SSH daemon on the port": (
        lambda s: _raised(client(s["ssh"].port).ping),
        "PROTOCOL",
        Kind.OUTAGE,
    ),
    "redis:// to a TLS port": (
        lambda s: _raised(client(s["tls"].port).ping),
        "CONNECTION",
        Kind.OUTAGE,
    ),
    "rediss:// with an untrusted certificate": (
        lambda s: _raised(client(s["tls"].port, ssl=True).ping),
        "TLS",
        Kind.OUTAGE,
    ),
    "rediss:// to a plain port": (
        lambda s: _raised(client(s["plain"].port, ssl=True, ssl_cert_reqs="none").ping),
        "TIMEOUT",
        Kind.OUTAGE,
    ),
    "wrong password": (
        lambda s: _raised(client(s["secure"].port, password="wrong").ping),
        "AUTH",
        Kind.REFUSED,
    ),
    "no password (NOAUTH)": (
        lambda s: _raised(client(s["secure"].port).ping),
        "AUTH",
        Kind.REFUSED,
    ),
    "ACL user without EVALSHA (NOPERM)": (
        lambda s: _raised(
            lambda: client(
                s["secure"].port, username=NOSCRIPT_USER[0], password=NOSCRIPT_USER[1]
            ).evalsha("0" * 40, 0)
        ),
        "NOPERM",
        Kind.REFUSED,
    ),
    "read-only replica (READONLY)": (
        lambda s: _raised(lambda: client(s["replica"].port).set("k", "v")),
        "READONLY",
        Kind.REFUSED,
    ),
    "replica without its primary (MASTERDOWN)": (
        lambda s: _raised(lambda: client(s["orphan"].port).get("k")),
        "MASTERDOWN",
        Kind.OUTAGE,
    ),
    "a key in another node's slot (MOVED)": (
        lambda s: _raised(lambda: client(s["node_a"].port).get(_in_upper_half())),
        "MOVED",
        Kind.REFUSED,
    ),
    "keys in two slots (CROSSSLOT)": (
        lambda s: _raised(lambda: client(s["node_a"].port).mget("a", "b", "c")),
        "CROSSSLOT",
        Kind.ERROR,
    ),
    "a slot nobody serves (CLUSTERDOWN)": (
        lambda s: _raised(lambda: client(s["empty_node"].port).get("k")),
        "CLUSTERDOWN",
        Kind.OUTAGE,
    ),
    "a string read as a hash (WRONGTYPE)": (
        lambda s: _raised(lambda: _wrongtype(client(s["plain"].port))),
        "WRONGTYPE",
        Kind.ERROR,
    ),
    "an unknown command (ERR)": (
        lambda s: _raised(lambda: client(s["plain"].port).execute_command("NOSUCHCOMMAND")),
        "ERR",
        Kind.ERROR,
    ),
    "a syntax error (ERR)": (
        lambda s: _raised(
            lambda: client(s["plain"].port).execute_command("SET", "k", "v", "XX", "NX")
        ),
        "ERR",
        Kind.ERROR,
    ),
    "an error inside a script (WRONGTYPE)": (
        lambda s: _raised(lambda: _wrongtype_in_script(client(s["plain"].port))),
        "WRONGTYPE",
        Kind.ERROR,
    ),
    "a bad argument refused by redis-py (DataError)": (
        lambda s: _raised(lambda: client(s["plain"].port).set("k", {"not": "bytes"})),
        "CLIENT",
        Kind.ERROR,
    ),
}


def _in_upper_half() -> str:
    return next(f"key{i}" for i in range(1000) if _slot(f"key{i}") >= 8192)


def _wrongtype(c: redis.Redis) -> None:
    c.set("wrongtype", "x")
    c.hget("wrongtype", "field")


def _wrongtype_in_script(c: redis.Redis) -> None:
    c.set("wrongtype", "x")
    c.eval("return redis.call('HGET', KEYS[1], 'f')", 1, "wrongtype")


NEEDS_TLS = {"redis:// to a TLS port", "rediss:// with an untrusted certificate"}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c, marks=[pytest.mark.tls] if c in NEEDS_TLS else []) for c in CASES],
)
def test_real_errors_are_classified_by_class_and_code(servers: dict[str, Any], case: str) -> None:
    make, code, kind = CASES[case]
    exc = make(servers)
    failure = classify(exc)
    assert failure is not None, repr(exc)
    assert (failure.code, failure.kind) == (code, kind), repr(exc)
    assert failure.exc is exc
    assert code in failure.describe()


def test_a_stalled_server_is_a_timeout(servers: dict[str, Any]) -> None:
    server = servers["plain"]
    c = client(server.port)
    c.ping()
    stall(server)
    try:
        exc = _raised(c.ping)
    finally:
        resume(server)
    failure = classify(exc)
    assert failure is not None and (failure.code, failure.kind) == ("TIMEOUT", Kind.OUTAGE)
    assert failure.server_down


def test_maxmemory_with_noeviction_is_oom_and_reads_still_work(servers: dict[str, Any]) -> None:
    server = servers["plain"]
    with server.client() as c:
        c.set("kept", "v")
        c.config_set("maxmemory-policy", "noeviction")
        c.config_set("maxmemory", 1)
        try:
            exc = _raised(lambda: c.set("k", "v"))
            script = _raised(lambda: c.eval("return redis.call('INCR', KEYS[1])", 1, "n"))
            assert c.get("kept") == b"v"
        finally:
            c.config_set("maxmemory", 0)
    for error in (exc, script):
        failure = classify(error)
        assert failure is not None and (failure.code, failure.kind) == ("OOM", Kind.REFUSED)
        assert not failure.server_down  # reads still work: no reason to skip them


def test_min_replicas_to_write_is_noreplicas(servers: dict[str, Any]) -> None:
    with servers["plain"].client() as c:
        c.config_set("min-replicas-to-write", 3)
        try:
            exc = _raised(lambda: c.set("k", "v"))
        finally:
            c.config_set("min-replicas-to-write", 0)
    failure = classify(exc)
    assert failure is not None and (failure.code, failure.kind) == ("NOREPLICAS", Kind.REFUSED)


def test_a_long_script_makes_others_busy(servers: dict[str, Any]) -> None:
    import threading

    server = servers["plain"]
    with server.client() as admin:
        admin.config_set("busy-reply-threshold", 50)
        runner = threading.Thread(
            target=lambda: _raised(
                lambda: client(server.port, socket_timeout=10).eval(
                    "local i = 0 while true do i = i + 1 end", 0
                )
            )
        )
        runner.start()
        try:
            time.sleep(0.3)
            exc = _raised(lambda: client(server.port).get("k"))
        finally:
            assert wait_for(lambda: _kill_script(server), timeout=5)
            runner.join(10)
            admin.config_set("busy-reply-threshold", 5000)
    failure = classify(exc)
    assert failure is not None and (failure.code, failure.kind) == ("BUSY", Kind.OUTAGE)


def _kill_script(server: RedisServer) -> bool:
    try:
        with server.client(socket_timeout=1) as c:
            c.script_kill()
    except redis.ResponseError:
        pass  # NOTBUSY: it is over
    with server.client(socket_timeout=1) as c:
        try:
            c.ping()
            return True
        except redis.ResponseError:
            return False


# Replies that take more set-up than they are worth here, parsed by redis-py's own parser
# (the code path of every reply): the codes it knows become classes, the others not.
PARSED = {
    "LOADING Redis is loading the dataset in memory": ("LOADING", Kind.OUTAGE),
    "MISCONF Redis is configured to save RDB snapshots, but it's not able to persist": (
        "MISCONF",
        Kind.REFUSED,
    ),
    "TRYAGAIN Multiple keys request during rehashing of slot": ("TRYAGAIN", Kind.OUTAGE),
    "ASK 3999 127.0.0.1:6381": ("ASK", Kind.REFUSED),
    "NOGROUP No such key 'k' or consumer group 'g'": ("NOGROUP", Kind.ERROR),
    "EXECABORT Transaction discarded because of previous errors.": ("EXECABORT", Kind.ERROR),
    "WRONGPASS invalid username-password pair or user is disabled.": ("AUTH", Kind.REFUSED),
    "ERR EXEC without MULTI": ("ERR", Kind.ERROR),
    "Some reply without a code": ("ERR", Kind.ERROR),
}


@pytest.mark.parametrize("reply", list(PARSED))
def test_parsed_replies_are_classified_the_same(reply: str) -> None:
    exc = BaseParser.parse_error(reply)
    failure = classify(exc)
    assert failure is not None
    assert (failure.code, failure.kind) == PARSED[reply]
    assert error_code(exc) == PARSED[reply][0]


def test_what_is_not_from_redis_is_not_classified() -> None:
    assert classify(ValueError("x")) is None
    assert classify(KeyError("x")) is None
    # The built-in socket errors are (redis.asyncio lets some through unwrapped):
    # classify them only when they come out of our own Redis calls.
    timeout = classify(TimeoutError("x"))
    assert timeout is not None and timeout.code == "TIMEOUT"
    reset = classify(ConnectionResetError("x"))
    assert reset is not None and reset.code == "CONNECTION"


def test_the_admin_password_works(servers: dict[str, Any]) -> None:
    # The set-up itself: the ACL server answers its admin (the cases above are not
    # failures of the fixture).
    with servers["secure"].client(password=ADMIN_PASSWORD) as c:
        assert c.ping()


def test_cluster_client_refusals_are_programming_errors_not_outages() -> None:
    """redis-py's cluster client refuses a multi-key command across slots before sending
    it (a RedisClusterException, not a RedisError): a bug to fix, not an outage to ride
    out (a role would otherwise apply its outage policy and hide it)."""
    from tests.conftest import session_topology

    cluster = session_topology("cluster")
    with cluster.client() as client:
        exc = _raised(lambda: client.eval("return 1", 2, "a", "b"))
    assert type(exc).__name__ == "RedisClusterException", repr(exc)
    failure = classify(exc)
    assert failure is not None
    assert (failure.kind, failure.code) == (Kind.ERROR, "CLIENT")


@pytest.mark.parametrize("asyncio_", [False, True], ids=["sync", "async"])
def test_a_cluster_with_no_reachable_seed_is_an_outage(asyncio_: bool) -> None:
    import asyncio

    import redis.asyncio.cluster
    import redis.cluster

    port = free_port()  # nothing listens there
    if asyncio_:

        async def connect() -> None:
            client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port)
            try:
                await client.initialize()
            finally:
                await client.aclose()

        exc = _raised(lambda: asyncio.run(connect()))
    else:
        exc = _raised(lambda: redis.cluster.RedisCluster(host="127.0.0.1", port=port))
    assert type(exc).__name__ == "RedisClusterException", repr(exc)
    failure = classify(exc)
    assert failure is not None
    assert (failure.kind, failure.code) == (Kind.OUTAGE, "CONNECTION")
    assert failure.exc is exc
