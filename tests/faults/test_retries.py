"""A stall past the socket timeout: redis-py re-sends, and the server runs both sends.

SIGSTOP for longer than ``socket_timeout``, then SIGCONT: the first send is
still in the server's socket buffer and runs when it wakes up, and so does
redis-py's retry on a new connection (the kernel accepts connections for a
stopped process). Every side effect must happen once: a command that is not
idempotent is sent once (and its failure goes to the role's policy), or it
recognises its own earlier run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.management.base import BaseCommand
from django.test import RequestFactory

from django_redisroles import connections
from django_redisroles.locks import Lock, command_lock, lock_keys
from django_redisroles.pubsub import abroadcast, broadcast, get_layer
from django_redisroles.ratelimit import rate_limit
from django_redisroles.testing import RedisServer

from .lab import resume, stall, stalled

pytestmark = pytest.mark.slow

# Longer than socket_timeout (0.5 s), shorter than three attempts.
STALL = 0.8


def test_get_redis_keeps_retrying_reads_but_send_once_sends_once(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url())
    client = connections.get_redis("cache")
    client.set("n", 0)
    with stalled(victim, STALL):
        assert client.get("n") == b"0"  # the documented retry_attempts, for reads
    once = pytest.raises(redis.exceptions.TimeoutError)
    with stalled(victim, STALL), once, connections.send_once():
        client.incr("n")
    with victim.client() as check:
        assert check.get("n") == b"1"  # ran once, after the stall: never re-sent
    client.ping()  # a connection open before the stall (as in a busy process)
    with stalled(victim, STALL):
        client.incr("n")  # outside send_once: the documented retry, hence the danger
    with victim.client() as check:
        assert check.get("n") == b"3"


async def test_send_once_holds_per_task(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url())
    client = connections.get_async_redis("cache")
    await client.set("n", 0)
    # Two connections open before the stall (redis-py 5 does not retry a connect
    # whose handshake times out when the pool hands a connection out).
    await asyncio.gather(client.ping(), client.ping())
    stall(victim)
    timer = threading.Timer(STALL, resume, args=(victim,))
    timer.start()

    async def once() -> None:
        with connections.send_once():
            await client.incr("n")

    try:
        results = await asyncio.gather(once(), client.get("n"), return_exceptions=True)
    finally:
        await asyncio.to_thread(timer.join)
    assert isinstance(results[0], redis.exceptions.TimeoutError)
    assert results[1] in (b"0", b"1")  # the other task kept its retries: no error
    await asyncio.sleep(0.2)
    assert int(await client.get("n")) == 1


def test_cache_incr_counts_once(victim: RedisServer, point_roles: Callable[..., None]) -> None:
    point_roles(victim.url())
    cache = caches["default"]
    cache.set("hits", 0)
    assert cache.incr("hits") == 1  # the script is loaded, the connection open
    with stalled(victim, STALL):
        assert cache.incr("hits") is None  # outage policy: the write may or may not be done
    with victim.client() as check:  # (the cache itself skips Redis for OUTAGE_BACKOFF)
        assert check.get(cache.make_key("hits")) == b"2"  # once, when the server woke up


async def test_cache_aincr_counts_once(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url())
    cache = caches["default"]
    await cache.aset("hits", 0)
    assert await cache.aincr("hits") == 1
    timer = _stall_from_now(victim)
    try:
        assert await cache.aincr("hits") is None
    finally:
        await asyncio.to_thread(timer.join)
    with victim.client() as check:
        assert check.get(cache.make_key("hits")) == b"2"


def test_a_rate_limit_check_counts_once(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url(), roles={"ratelimit": {"OPTIONS": {"retry_attempts": 2}}})
    seen: list[Any] = []

    @rate_limit("100/m", key="ip", algorithm="fixed")
    def view(request: Any) -> Any:
        seen.append(request.ratelimit)
        from django.http import HttpResponse

        return HttpResponse("ok")

    factory = RequestFactory()
    assert view(factory.get("/", REMOTE_ADDR="203.0.113.1")).status_code == 200  # connects
    with stalled(victim, STALL):
        assert view(factory.get("/", REMOTE_ADDR="203.0.113.9")).status_code == 200  # open
    assert not seen[0].failed and seen[1].failed
    with victim.client() as check:
        counters = list(check.scan_iter("demo:ratelimit:*"))
        # Each client counted at most once: the stalled check was not re-sent. It ran
        # when the server woke up (the usual case: [1, 1]), or it never reached the
        # server's command loop ([1]: seen once in CI's new-user lane, on a loaded
        # machine; a timeout says nothing either way). Never 2.
        assert sorted(int(check.hget(k, "c")) for k in counters) in ([1], [1, 1])


def _stall_from_now(server: RedisServer) -> threading.Timer:
    """Stall ``server`` now, resume it in STALL seconds (join the timer afterwards)."""
    stall(server)
    timer = threading.Timer(STALL, resume, args=(server,))
    timer.start()
    return timer


@pytest.mark.parametrize("how", ["with", "release"])
def test_leaving_a_lock_during_a_stall_is_not_lost(
    victim: RedisServer, point_roles: Callable[..., None], how: str
) -> None:
    point_roles(victim.url())
    with Lock("warm-up", ttl=30):  # scripts loaded and a connection open, as in a live process
        pass
    for attempt in range(3):
        lock = Lock("stalled", ttl=30)
        assert lock.acquire()
        timer = _stall_from_now(victim)
        try:
            if how == "release":
                lock.release()  # no LockLost: the re-sent release finds its own token
            else:
                lock.__exit__(None, None, None)
        finally:
            timer.join()
        with victim.client() as check:
            assert not check.exists(lock_keys("stalled").lock), attempt


async def test_leaving_an_async_lock_during_a_stall_is_not_lost(
    victim: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(victim.url())
    async with Lock("warm-up", ttl=30):
        pass
    for attempt in range(2):
        timer = None
        try:
            async with Lock("astalled", ttl=30):
                timer = _stall_from_now(victim)
        finally:
            if timer is not None:
                await asyncio.to_thread(timer.join)
        with victim.client() as check:
            assert not check.exists(lock_keys("astalled").lock), attempt


class FaultJob(BaseCommand):
    """A locked command whose Redis stalls for 3 s while it releases the lock."""

    server: RedisServer | None = None
    stall_release: threading.Timer | None = None
    runs = 0

    @command_lock(ttl=30, key="fault-job")
    def handle(self, *args: Any, **options: Any) -> None:
        FaultJob.runs += 1
        if self.server is not None:
            stall(self.server)  # the release comes next
            FaultJob.stall_release = threading.Timer(3.0, resume, args=(self.server,))
            FaultJob.stall_release.start()


def test_a_command_whose_release_stalls_3s_exits_0(
    victim: RedisServer, point_roles: Callable[..., None], capsys: Any
) -> None:
    # The role's default connection options: 2 s socket timeout, 2 retries.
    point_roles(victim.url(), socket_timeout=2.0, socket_connect_timeout=2.0)
    FaultJob.server = None
    FaultJob().run_from_argv(["manage.py", "faultjob"])  # a first run: scripts loaded
    FaultJob.server = victim
    try:
        FaultJob().run_from_argv(["manage.py", "faultjob"])  # SystemExit(1) on LockLost
    finally:
        if FaultJob.stall_release is not None:
            FaultJob.stall_release.join()
        resume(victim)
    assert FaultJob.runs == 2
    assert "lease expired" not in capsys.readouterr().err
    with victim.client() as check:
        assert not check.exists(lock_keys("fault-job").lock)


@pytest.mark.parametrize("how", ["broadcast", "abroadcast"])
@pytest.mark.parametrize("group", ["plain", "replayed"])
async def test_a_broadcast_during_a_stall_is_received_once(
    victim: RedisServer, point_roles: Callable[..., None], group: str, how: str
) -> None:
    point_roles(victim.url())
    layer = get_layer()
    timer = None

    async def send(message: dict[str, Any]) -> str | None:
        if how == "abroadcast":
            return await abroadcast(group, message)
        return await asyncio.to_thread(broadcast, group, message)

    try:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        await send({"type": "note", "n": 0})  # warm: connection open, script loaded
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 0
        started = time.monotonic()  # before the stall begins: it lasts STALL from there
        timer = _stall_from_now(victim)
        # The caller gets success: its retry got through once the server woke up.
        seq = await send({"type": "note", "n": 1})
        assert time.monotonic() - started >= STALL
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message["n"] == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 1.0)
        if group == "replayed":
            assert message["seq"] == seq
            with victim.client() as check:
                assert check.xlen("demo:pubsub:replay:replayed") == 2  # n=0 and n=1
    finally:
        if timer is not None:
            await asyncio.to_thread(timer.join)
        await layer.close()


def test_the_stall_helper_resumes_even_when_the_block_fails(victim: RedisServer) -> None:
    with pytest.raises(RuntimeError), stalled(victim, 0.1):
        raise RuntimeError
    with victim.client(socket_timeout=2) as check:
        assert check.ping()
