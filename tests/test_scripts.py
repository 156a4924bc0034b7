"""Lua scripts: one EVALSHA per call, reloaded by themselves after NOSCRIPT."""

from __future__ import annotations

import asyncio

import pytest
import redis

from django_redisroles.connections import get_async_redis, get_redis
from django_redisroles.scripts import Script

INCR_WITH_TTL = Script(
    "local v = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], ARGV[1]) return v"
)


def calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_first_call_loads_then_every_call_is_one_evalsha(redis_client: redis.Redis) -> None:
    client = get_redis("locks")
    assert INCR_WITH_TTL(client, ["n"], [60_000]) == 1  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA
    redis_client.config_resetstat()
    for expected in range(2, 12):
        assert INCR_WITH_TTL(client, ["n"], [60_000]) == expected
    assert calls(redis_client, "evalsha") == 10
    assert calls(redis_client, "eval") == 0
    assert calls(redis_client, "script|load") == 0
    assert 0 < redis_client.pttl("n") <= 60_000


def test_script_flush_is_survived_sync_and_async(redis_client: redis.Redis) -> None:
    client = get_redis("locks")
    assert INCR_WITH_TTL(client, ["n"], [60_000]) == 1
    redis_client.script_flush()
    assert INCR_WITH_TTL(client, ["n"], [60_000]) == 2

    async def run() -> int:
        redis_client.script_flush()
        return int(await INCR_WITH_TTL.acall(get_async_redis("locks"), ["n"], [60_000]))

    assert asyncio.run(run()) == 3


def test_a_pipeline_is_refused_and_nothing_is_sent(redis_client: redis.Redis) -> None:
    # A NOSCRIPT inside a pipeline cannot be retried safely (docs/architecture.md, "Lua"):
    # the call says so at once instead of queueing a call that may fail after the rest ran.
    redis_client.script_flush()
    redis_client.config_resetstat()
    with get_redis("locks").pipeline(transaction=True) as pipe:
        with pytest.raises(TypeError, match="not in a pipeline"):
            INCR_WITH_TTL(pipe, ["n"], [60_000])
        assert len(pipe) == 0  # nothing queued
    assert calls(redis_client, "evalsha") == 0
    assert redis_client.get("n") is None

    async def run() -> None:
        async with get_async_redis("locks").pipeline(transaction=False) as apipe:
            with pytest.raises(TypeError, match="not in a pipeline"):
                await INCR_WITH_TTL.acall(apipe, ["n"], [60_000])
            assert len(apipe) == 0

    asyncio.run(run())
    assert calls(redis_client, "evalsha") == 0
