"""Per-role pooled clients against real redis-server processes."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from contextlib import closing

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_redisroles import conf, connections
from django_redisroles.connections import get_async_redis, get_redis
from django_redisroles.testing import RedisCluster, SentinelGroup, SentinelServer, slot_of
from tests.conftest import session_topology


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
    def calls() -> None:
        for i in range(200):
            get_redis("cache").set(f"k{i}", i, ex=60)
            get_redis("sessions").get(f"k{i}")

    # The first round may open the pool's connections (on a cluster, one per master, as
    # each is first reached); the second opens none.
    calls()
    before = connections_received(redis_client)
    calls()
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


# --- topologies: one server, a Redis Cluster, a Sentinel group --------------------------------
#
# The ``topology`` fixture (tests/conftest.py) runs a test on each of the three,
# with REDISROLES["URL"] pointing at it.

ENGINES = {
    "single": (redis.Redis, redis.asyncio.Redis),
    "cluster": (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster),
    "sentinel": (redis.Redis, redis.asyncio.Redis),
}


def named_connections(topology, name: str) -> int:
    """Connections named ``name`` on every data node of ``topology`` (not the Sentinels)."""
    total = 0
    for server in topology.servers:
        if isinstance(server, SentinelServer) or not server.running:
            continue
        with server.client() as client:
            total += sum(1 for c in client.client_list() if c.get("name") == name)
    return total


def test_get_redis_is_redis_py_s_own_engine_of_the_topology(topology) -> None:
    client = get_redis("cache")
    assert isinstance(client, ENGINES[topology.kind][0])
    if topology.kind == "sentinel":
        assert isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
    # One client per process and topology: roles on the same URL and options share it.
    assert all(get_redis(role) is client for role in ("sessions", "pubsub", "locks"))
    for i in range(20):  # keys in every slot range of a cluster
        client.set(f"k{i}", i)
    with closing(topology.client()) as mine:
        assert [mine.get(f"k{i}") for i in range(20)] == [str(i).encode() for i in range(20)]


def test_different_options_are_another_client_on_every_topology(topology, settings) -> None:
    settings.REDISROLES = {
        "URL": topology.url(),
        "ROLES": {"cache": {"OPTIONS": {"client_name": "other-options"}}},
    }
    assert get_redis("cache") is not get_redis("sessions")
    assert get_redis("sessions") is get_redis("locks")
    get_redis("cache").set("a", 1)
    assert named_connections(topology, "other-options") >= 1


def test_get_async_redis_per_loop_and_closed_with_it(topology, settings) -> None:
    name = f"loop-{topology.kind}"
    settings.REDISROLES = {"URL": topology.url(), "OPTIONS": {"client_name": name}}
    seen: list[object] = []

    async def use() -> None:
        client = get_async_redis("cache")
        assert isinstance(client, ENGINES[topology.kind][1])
        assert get_async_redis("sessions") is client
        for i in range(10):
            await client.set(f"a{i}", i)
        assert await client.get("a9") == b"9"
        seen.append(client)
        assert named_connections(topology, name) >= 1

    asyncio.run(use())
    asyncio.run(use())
    assert seen[0] is not seen[1]
    deadline = time.monotonic() + 5
    while named_connections(topology, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert named_connections(topology, name) == 0


def test_reset_drops_and_disconnects_the_topology_client(topology, settings) -> None:
    settings.REDISROLES = {"URL": topology.url(), "OPTIONS": {"client_name": "reset-topo"}}
    first = get_redis("cache")
    for i in range(10):
        first.set(f"r{i}", i)
    assert named_connections(topology, "reset-topo") >= 1
    connections.reset()
    assert named_connections(topology, "reset-topo") == 0
    assert get_redis("cache") is not first
    assert get_redis("cache").get("r3") == b"3"


@pytest.mark.parametrize(
    ("url", "bad_part"),
    [
        ("redis+cluster://app:Pw5ecret@", "names no host"),
        ("redis+cluster://app:Pw5ecret@h1:7000,,h2:7001", "empty host"),
        ("redis+cluster://app:Pw5ecret@h1:7000,h2:notaport", "invalid port in host 2"),
        ("redis+cluster://app:Pw5ecret@h1:7000/2", "only database 0"),
        ("rediss+cluster://app:Pw5ecret@h1:7000?db=1", "only database 0"),
        ("redis+cluster://app:Pw5ecret@h1:7000?ssl_ca_certs=/ca.pem", "TLS URL"),
        ("redis+cluster://app:Pw5ecret@h1:7000?sentinel_password=x", "redis+sentinel://"),
        ("redis+sentinel://app:Pw5ecret@s1:26379,s2:26379", "no Sentinel service"),
        ("redis+sentinel://app:Pw5ecret@s1:26379/mymaster/zero", "must be a number"),
        ("redis+sentinel://app:Pw5ecret@s1:26379/mymaster/0/x", "more than /SERVICE/DB"),
        ("redis+sentinel://app:Pw/5ecret@s1:26379/mymaster", "percent-encoded"),
        ("redis+sentinel://app:Pw5ecret@s1:26379/mymaster?nope=1", "unknown query parameter"),
        ("redis+sentinel://app:Pw5ecret@::1:26379/mymaster", "without brackets"),
    ],
)
def test_malformed_topology_urls_are_a_check_and_a_clear_error(url: str, bad_part: str) -> None:
    from django_redisroles.checks.config import check_settings

    with override_settings(REDISROLES={"URL": url}):
        messages = [m for m in check_settings() if m.id == "redisroles.E008"]
        assert messages, url
        text = " ".join(f"{m.msg} {m.hint}" for m in messages)
        assert bad_part in text
        assert "5ecret" not in text and "***@" in text
        with pytest.raises(ImproperlyConfigured) as excinfo:
            get_redis("cache")
    assert bad_part in str(excinfo.value) and "5ecret" not in str(excinfo.value)


def test_mask_url_hides_the_credentials_of_a_multi_host_url() -> None:
    assert (
        conf.mask_url("redis+cluster://app:Pw5ecret@h1:7000,h2:7001,[::1]:7002")
        == "redis+cluster://***@h1:7000,h2:7001,[::1]:7002"
    )
    # A password with an unencoded '@' and ',' (looks like a second host's user info).
    assert (
        conf.mask_url("redis+sentinel://a:Pw@h1:1,b:5ecret@s1:26379,s2/mymaster/0?db=1")
        == "redis+sentinel://***@s1:26379,s2/mymaster/0?db=1"
    )
    assert (
        conf.mask_url("rediss+sentinel://s1,s2/m?sentinel_password=5ecret&socket_timeout=1")
        == "rediss+sentinel://s1,s2/m?sentinel_password=***&socket_timeout=1"
    )
    config = conf.RoleConfig(
        "cache", "redis+cluster://:Pw5ecret@h1:1", {"sentinel_password": "5ecret"}
    )
    assert "5ecret" not in repr(config)


def test_a_database_in_a_cluster_s_options_is_refused(settings) -> None:
    settings.REDISROLES = {"URL": "redis+cluster://127.0.0.1:1", "OPTIONS": {"db": 2}}
    with pytest.raises(ImproperlyConfigured, match="only database 0"):
        get_redis("cache")


def test_follows_a_sentinel_failover_without_a_restart(settings) -> None:
    group = session_topology("sentinel")
    settings.REDISROLES = {"URL": group.url(), "OPTIONS": {"socket_timeout": 1.0}}
    client = get_redis("sessions")
    old = group.master()
    client.set("before", "failover")
    assert client.wait(1, 5000) == 1  # replicated before the crash: it must survive it
    new = group.failover()  # SIGKILL the master; the Sentinels promote the replica
    assert new is not old
    deadline = time.monotonic() + 30
    while True:  # commands fail during the switch (the role's failure policy applies)...
        try:
            client.set("after", "failover")
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            assert time.monotonic() < deadline, "the client never reached the new master"
            time.sleep(0.1)
    # ...then the same client, never rebuilt, talks to the new master.
    assert get_redis("sessions") is client
    assert client.connection_pool.get_master_address()[1] == new.port
    with new.client() as direct:
        assert direct.get("before") == b"failover" and direct.get("after") == b"failover"


def test_async_follows_a_sentinel_failover_without_a_restart(settings) -> None:
    group = session_topology("sentinel")
    settings.REDISROLES = {"URL": group.url(), "OPTIONS": {"socket_timeout": 1.0}}

    async def scenario() -> None:
        client = get_async_redis("sessions")
        await client.set("before", "failover")
        assert await client.wait(1, 5000) == 1
        new = await asyncio.to_thread(group.failover)
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.set("after", "failover")
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                assert time.monotonic() < deadline, "the client never reached the new master"
                await asyncio.sleep(0.1)
        assert get_async_redis("sessions") is client
        with new.client() as direct:
            assert direct.get("before") == b"failover" and direct.get("after") == b"failover"

    asyncio.run(scenario())


def _other_master(cluster, key: str):
    owner = cluster.node_for(key)
    return owner, next(m for m in cluster.masters() if m is not owner)


def test_a_moved_slot_is_followed_and_is_not_a_resend(settings) -> None:
    cluster = session_topology("cluster")
    settings.REDISROLES = {"URL": cluster.url()}
    client = get_redis("ratelimit")
    client.set("hits", 0)
    owner, target = _other_master(cluster, "hits")
    assert client.get_node_from_key("hits").port == owner.port  # its slot map, cached
    cluster.move_slot(slot_of("hits"), target)
    # The cached map is stale: the old owner answers MOVED, the client follows it...
    with connections.send_once():
        assert client.incr("hits") == 1  # ...inside send_once too: MOVED ran nothing
    assert client.get_node_from_key("hits").port == target.port
    with target.client() as direct:
        assert direct.get("hits") == b"1"  # counted once
    with owner.client() as direct:
        # The old owner holds no key of the slot any more (a GET there answers MOVED).
        assert direct.cluster("countkeysinslot", slot_of("hits")) == 0


def test_async_a_moved_slot_is_followed(settings) -> None:
    cluster = session_topology("cluster")
    settings.REDISROLES = {"URL": cluster.url()}

    async def scenario() -> None:
        client = get_async_redis("ratelimit")
        await client.set("hits", 0)
        _, target = _other_master(cluster, "hits")
        await asyncio.to_thread(cluster.move_slot, slot_of("hits"), target)
        with connections.send_once():
            assert await client.incr("hits") == 1
        with target.client() as direct:
            assert direct.get("hits") == b"1"

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def slow_cluster():
    """A cluster of its own that does not fail over while a test stalls a master."""
    with RedisCluster(masters=3, replicas=0, node_timeout=15000) as cluster:
        yield cluster


@pytest.mark.parametrize("once", [True, False], ids=["send_once", "retried"])
def test_cluster_timeout_inside_send_once_is_not_resent(slow_cluster, settings, once) -> None:
    """A timeout does not mean the command did not run: inside send_once the cluster
    client does not send it again (outside, it does: the documented retry, which
    counts a request twice when the stall ends while the client is still retrying)."""
    slow_cluster.flushall()
    settings.REDISROLES = {
        "URL": slow_cluster.url(),
        "OPTIONS": {"socket_timeout": 0.3, "retry_attempts": 20},
    }
    client = get_redis("ratelimit")
    client.set("n", 0)
    victim = slow_cluster.node_for("n")
    victim.pause()  # the kernel still takes the command; the server runs it on SIGCONT
    try:
        if once:
            with (
                pytest.raises((redis.TimeoutError, redis.ConnectionError)),
                connections.send_once(),
            ):
                client.incr("n")
        else:
            # A stall of 1.5 s, shorter than the 20 retries: a retry gets through. (A
            # retry while the server is still stopped dies in the new connection's
            # handshake, before the command is sent.)
            threading.Timer(1.5, victim.resume).start()
            client.incr("n")
    finally:
        victim.resume()
    with victim.client() as direct:
        deadline = time.monotonic() + 5
        while direct.get("n") == b"0" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # anything else queued has run by now too
        count = int(direct.get("n"))
    if once:
        assert count == 1
    else:
        assert count > 1  # what send_once prevents


def test_async_cluster_timeout_inside_send_once_is_not_resent(slow_cluster, settings) -> None:
    slow_cluster.flushall()
    settings.REDISROLES = {
        "URL": slow_cluster.url(),
        "OPTIONS": {"socket_timeout": 0.3, "retry_attempts": 2},
    }
    victim = slow_cluster.node_for("n")

    async def scenario() -> None:
        client = get_async_redis("ratelimit")
        await client.set("n", 0)
        victim.pause()
        try:
            with (
                pytest.raises((redis.TimeoutError, redis.ConnectionError, TimeoutError)),
                connections.send_once(),
            ):
                await client.incr("n")
        finally:
            victim.resume()

    asyncio.run(scenario())
    with victim.client() as direct:
        deadline = time.monotonic() + 5
        while direct.get("n") == b"0" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert direct.get("n") == b"1"


def test_shard_client_is_the_owner_of_the_slot(topology) -> None:
    if topology.kind != "cluster":
        assert connections.shard_client("pubsub", "chan") is get_redis("pubsub")
        assert connections.primary_clients("pubsub") == [get_redis("pubsub")]
        return
    shard = connections.shard_client("pubsub", "chan")
    assert isinstance(shard, redis.Redis)
    assert shard.connection_pool.connection_kwargs["port"] == topology.node_for("chan").port
    assert connections.shard_client("pubsub", "chan") is shard  # pooled
    subscriber = shard.pubsub()
    subscriber.ssubscribe("chan")
    assert subscriber.get_sharded_message(timeout=5)["type"] == "ssubscribe"
    assert get_redis("pubsub").spublish("chan", "hello") == 1
    message = subscriber.get_sharded_message(timeout=5)
    assert message["type"] == "smessage" and message["data"] == b"hello"
    subscriber.close()
    ports = {
        c.connection_pool.connection_kwargs["port"] for c in connections.primary_clients("pubsub")
    }
    assert ports == {m.port for m in topology.masters()}


def test_async_shard_client_subscribes_and_follows_a_moved_slot(settings) -> None:
    """What the sharded pub/sub subscriber does on every redis-py (5.x-7.x have no async
    ssubscribe(), nor an async cluster pubsub()): SSUBSCRIBE on the owner's connection,
    a server push when the slot moves, then the new owner."""
    cluster = session_topology("cluster")
    settings.REDISROLES = {"URL": cluster.url()}
    owner, target = _other_master(cluster, "chan")

    async def scenario() -> None:
        shard = await connections.async_shard_client("pubsub", "chan")
        assert isinstance(shard, redis.asyncio.Redis)
        assert shard.connection_pool.connection_kwargs["port"] == owner.port
        subscriber = shard.pubsub()
        await subscriber.execute_command("SSUBSCRIBE", "chan")
        assert (await subscriber.parse_response(block=False, timeout=5))[0] == b"ssubscribe"
        assert await get_async_redis("pubsub").execute_command("SPUBLISH", "chan", "hi") == 1
        assert await subscriber.parse_response(block=False, timeout=5) == [
            b"smessage",
            b"chan",
            b"hi",
        ]
        await asyncio.to_thread(cluster.move_slot, slot_of("chan"), target)
        pushed = await subscriber.parse_response(block=False, timeout=5)
        assert pushed[:2] == [b"sunsubscribe", b"chan"]  # the slot moved: subscribe again
        moved = await connections.async_shard_client("pubsub", "chan", refresh=True)
        assert moved.connection_pool.connection_kwargs["port"] == target.port
        ports = {
            c.connection_pool.connection_kwargs["port"]
            for c in await connections.async_primary_clients("pubsub")
        }
        assert ports == {m.port for m in cluster.masters()}

    asyncio.run(scenario())


def test_sentinel_credentials_are_the_sentinels_own(settings) -> None:
    """The URL's password is the data nodes'; the Sentinels' is OPTIONS['sentinel_password']."""
    with SentinelGroup(replicas=0, password="d4ta-pw", sentinel_password="s3ntinel-pw") as group:
        settings.REDISROLES = {
            "URL": group.url(),  # redis+sentinel://:d4ta-pw@.../mymaster/0
            "OPTIONS": {"sentinel_password": "s3ntinel-pw", "client_name": "creds"},
        }
        get_redis("cache").set("k", "v")
        with group.master().client() as direct:
            assert direct.get("k") == b"v"
        settings.REDISROLES = {"URL": group.url(), "OPTIONS": {"socket_timeout": 1.0}}
        with pytest.raises((redis.AuthenticationError, redis.sentinel.MasterNotFoundError)):
            get_redis("cache").set("k", "v")  # the Sentinels refuse us: no master found
        query = group.url() + "?sentinel_password=s3ntinel-pw"
        settings.REDISROLES = {"URL": query}
        assert get_redis("cache").get("k") == b"v"


@pytest.mark.tls
@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_tls_topologies_verify_the_host_name(kind: str, settings) -> None:
    """rediss+cluster:// and rediss+sentinel://: verified, host name included, on every
    supported redis-py (5.x's cluster client dropped ssl_check_hostname)."""
    topology = (
        RedisCluster(masters=1, tls=True)
        if kind == "cluster"
        else SentinelGroup(replicas=0, tls=True)
    )
    with topology:
        settings.REDISROLES = {"URL": topology.url(), "OPTIONS": {"ssl_ca_certs": topology.ca_file}}
        client = get_redis("cache")
        client.set("over", "tls")
        assert client.get("over") == b"tls"
        if kind == "cluster":
            pool = client.get_node_from_key("over").redis_connection.connection_pool
        else:
            pool = client.connection_pool
        connection = pool.make_connection()
        assert getattr(connection, "check_hostname", None) is True
        assert connection.cert_reqs == ssl.CERT_REQUIRED

        async def use() -> None:
            aclient = get_async_redis("cache")
            assert await aclient.get("over") == b"tls"

        asyncio.run(use())


class _HangUp:
    """A TCP port that accepts each connection and closes it at once, counting them:
    what a client sees of a Sentinel that is going down (or a load balancer in front
    of none)."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("asyncio_", [False, True], ids=["sync", "async"])
def test_a_failing_sentinel_is_asked_once_per_attempt(settings, asyncio_) -> None:
    """The Sentinels' own clients do not retry on redis-py's default policy (10 retries,
    backoff up to 10 s, per Sentinel): a request would hang for many seconds on a Sentinel
    outage. The role's retry_attempts is the one retry policy."""
    sentinel = _HangUp()
    try:
        settings.REDISROLES = {
            "URL": f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0",
            "OPTIONS": {"retry_attempts": 1, "socket_timeout": 0.5},
        }
        if asyncio_:

            async def ping() -> None:
                await get_async_redis("locks").ping()

            with pytest.raises(redis.ConnectionError):
                asyncio.run(ping())
        else:
            with pytest.raises(redis.ConnectionError):
                get_redis("locks").ping()
        assert sentinel.accepted == 2  # the attempt and its one retry
    finally:
        sentinel.close()
