"""Per-role pooled clients against real redis-server processes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from django.test import override_settings

from django_redisroles import connections
from django_redisroles.connections import get_async_redis, get_redis


def our_connections(client: redis.Redis, name: str = "redisroles") -> int:
    """Connections the server sees from redisroles pools (named by client_name)."""
    return sum(1 for c in client.client_list() if c.get("name") == name)


def connections_received(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_roles_on_one_url_share_one_client() -> None:
    clients = {role: get_redis(role) for role in ("cache", "sessions", "pubsub", "locks")}
    assert len({id(c) for c in clients.values()}) == 1


def test_roles_on_different_urls_get_separate_pools(redis_factory, redis_server, settings) -> None:
    sessions_server = redis_factory()
    settings.REDISROLES = {"ROLES": {"sessions": {"URL": sessions_server.url()}}}
    get_redis("sessions").set("where", "sessions")
    get_redis("cache").set("where", "cache")
    assert get_redis("sessions") is not get_redis("cache")
    assert sessions_server.client().get("where") == b"sessions"
    assert redis_server.client().get("where") == b"cache"


def test_different_options_on_same_url_get_separate_pools(settings) -> None:
    settings.REDISROLES = {"ROLES": {"cache": {"OPTIONS": {"socket_timeout": 9.0}}}}
    assert get_redis("cache") is not get_redis("sessions")
    assert get_redis("sessions") is get_redis("locks")


def test_no_new_tcp_connection_per_call(redis_client: redis.Redis) -> None:
    get_redis("cache").ping()  # the first call may open the pool's connection
    before = connections_received(redis_client)
    for i in range(200):
        get_redis("cache").set(f"k{i}", i, ex=60)
        get_redis("sessions").get(f"k{i}")
    assert connections_received(redis_client) - before == 0


def test_threads_reuse_the_pool(redis_client: redis.Redis, settings) -> None:
    settings.REDISROLES = {"OPTIONS": {"client_name": "threads-test"}}
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for i in range(100):
                get_redis("cache").incr("counter")
                assert get_redis("cache").exists("counter") == 1, i
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert redis_client.get("counter") == b"800"
    # At most one connection per concurrent thread, not one per call.
    assert 1 <= our_connections(redis_client, "threads-test") <= 8


def test_setting_changed_drops_the_pools(redis_factory, redis_client, settings) -> None:
    settings.REDISROLES = {"OPTIONS": {"client_name": "dropped-test"}}
    other = redis_factory()
    first = get_redis("cache")
    first.ping()
    assert our_connections(redis_client, "dropped-test") == 1
    with override_settings(REDISROLES={"URL": other.url()}):
        assert get_redis("cache") is not first
        get_redis("cache").set("moved", 1)
    assert other.client().get("moved") == b"1"
    assert redis_client.get("moved") is None
    # The old pool was disconnected, not leaked.
    assert our_connections(redis_client, "dropped-test") == 0


def test_recovers_after_redis_restart(redis_factory, settings) -> None:
    server = redis_factory(persistence=True)
    settings.REDISROLES = {"URL": server.url()}
    client = get_redis("locks")
    client.set("survives", "yes")
    server.restart()  # pooled connection is now dead
    assert client.get("survives") == b"yes"  # reconnects by itself


def test_recovers_after_redis_killed_and_restarted(redis_factory, settings) -> None:
    server = redis_factory()
    settings.REDISROLES = {"URL": server.url()}
    client = get_redis("cache")
    client.ping()
    server.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    server.start()
    assert client.ping() is True


def test_outage_fails_fast_with_explicit_timeouts(redis_factory, settings) -> None:
    server = redis_factory()
    settings.REDISROLES = {"URL": server.url()}
    server.kill()
    import time

    start = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        get_redis("ratelimit").ping()
    # Refused connections fail at once; the retry backoff is bounded.
    assert time.monotonic() - start < 2.0


def test_async_client_is_per_loop_and_closed_with_it(redis_client: redis.Redis, settings) -> None:
    # A name of its own, so connections other tests left behind are not counted.
    settings.REDISROLES = {"OPTIONS": {"client_name": "per-loop-test"}}
    seen: list[object] = []

    def ours() -> int:
        return sum(1 for c in redis_client.client_list() if c.get("name") == "per-loop-test")

    async def use() -> None:
        client = get_async_redis("cache")
        assert get_async_redis("sessions") is client  # same URL: shared in this loop
        await client.set("a", 1)
        assert await client.get("a") == b"1"
        seen.append(client)
        assert ours() >= 1

    asyncio.run(use())
    asyncio.run(use())
    assert seen[0] is not seen[1]  # a client never crosses event loops
    # Closed when each loop closed (the server may list a socket for a moment
    # after its close: a busy machine, seen once in a full run).
    deadline = time.monotonic() + 5
    while ours() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ours() == 0


def test_async_recovers_after_restart(redis_factory, settings) -> None:
    server = redis_factory()
    settings.REDISROLES = {"URL": server.url()}

    async def scenario() -> bytes | None:
        client = get_async_redis("cache")
        await client.set("x", "1")
        server.restart()
        return await client.ping() and await client.get("x")

    assert asyncio.run(scenario()) is None  # no persistence: the key is gone, the client works


def test_get_async_redis_outside_a_loop_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="use get_redis"):
        get_async_redis("cache")


def test_unix_socket_url(redis_factory, settings) -> None:
    server = redis_factory(unix_socket=True)
    settings.REDISROLES = {"URL": server.unix_url(db=2)}
    get_redis("cache").set("via", "unix")
    assert server.client(db=2).get("via") == b"unix"


def test_acl_user_and_password_in_url(redis_factory, settings) -> None:
    server = redis_factory()
    admin = server.client()
    admin.acl_setuser(
        "app", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    settings.REDISROLES = {"URL": f"redis://app:s3cret@127.0.0.1:{server.port}/0"}
    client = get_redis("sessions")
    assert client.acl_whoami() == "app"
    settings.REDISROLES = {"URL": f"redis://app:wrong@127.0.0.1:{server.port}/0"}
    with pytest.raises(redis.AuthenticationError):
        get_redis("sessions").ping()


@pytest.mark.tls
def test_tls_url(redis_factory, settings) -> None:
    server = redis_factory(tls=True)
    settings.REDISROLES = {
        "URL": server.tls_url(),
        "OPTIONS": {"ssl_ca_certs": server.ca_file},
    }
    get_redis("cache").set("over", "tls")
    assert server.client().get("over") == b"tls"
    # Plain redis:// against a TLS port does not silently work. (redis-py 5
    # recurses in its health check on the reset connection; fixed in 6.)
    settings.REDISROLES = {"URL": f"redis://127.0.0.1:{server.port}/0"}
    redis_py_major = int(redis.__version__.split(".")[0])
    expected = (
        (redis.ConnectionError,) if redis_py_major >= 6 else (redis.ConnectionError, RecursionError)
    )
    with pytest.raises(expected):
        get_redis("cache").ping()


def test_reset_is_public_for_env_changes(monkeypatch, redis_factory, settings) -> None:
    del settings.REDISROLES
    other = redis_factory()
    get_redis("cache").ping()
    monkeypatch.setenv("REDIS_URL", other.url())
    connections.reset()
    get_redis("cache").set("env", "moved")
    assert other.client().get("env") == b"moved"


def test_get_redis_at_pools_another_url_with_the_roles_options(redis_factory, settings) -> None:
    # A CACHES LOCATION that is not the cache role's URL goes through here.
    other = redis_factory()
    settings.REDISROLES = {"ROLES": {"cache": {"OPTIONS": {"client_name": "at-test"}}}}
    client = connections.get_redis_at(other.url(), "cache")
    assert connections.get_redis_at(other.url(), "cache") is client
    client.set("where", "other")
    assert other.client().get("where") == b"other"
    assert our_connections(other.client(), "at-test") == 1  # the role's options apply
    # The role's own URL is the role's own pool.
    assert connections.get_redis_at(connections.conf.role_url("cache"), "cache") is get_redis(
        "cache"
    )
    connections.reset()
    assert our_connections(other.client(), "at-test") == 0  # dropped with the others
    assert connections.get_redis_at(other.url(), "cache") is not client


def test_get_async_redis_at_is_closed_with_its_loop(redis_factory, settings) -> None:
    other = redis_factory()
    settings.REDISROLES = {"OPTIONS": {"client_name": "at-async-test"}}

    async def use() -> None:
        client = connections.get_async_redis_at(other.url(), "cache")
        assert connections.get_async_redis_at(other.url(), "cache") is client
        await client.set("a", 1)
        assert our_connections(other.client(), "at-async-test") == 1

    asyncio.run(use())
    assert our_connections(other.client(), "at-async-test") == 0
