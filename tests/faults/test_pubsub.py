"""The pub/sub role where it broke: a SUBSCRIBE refused by the ACL, names the docs refuse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis

from django_redisroles.pubsub import SubscribeRefused, broadcast, get_layer
from django_redisroles.pubsub.layer import redis_channel
from django_redisroles.testing import RedisServer

from .lab import ADMIN_PASSWORD, NOCHANNEL_USER, NOSCRIPT_USER, add_acl_users, user_url

pytestmark = pytest.mark.slow


@pytest.fixture
def acl_server(
    redis_factory: Callable[..., RedisServer], point_roles: Callable[..., None]
) -> RedisServer:
    server = redis_factory()
    add_acl_users(server)
    point_roles(server.url())  # the faults' settings (their KEY_PREFIX) name the channels below
    with server.client(password=ADMIN_PASSWORD) as admin:
        # May use its consumer channels, not the groups' channels.
        consumers = redis_channel("c", "*").decode()
        admin.execute_command(
            "ACL", "SETUSER", "consumers", "on", ">consumers-pw",
            "~*", "resetchannels", f"&{consumers}", "+@all",
        )  # fmt: skip
    return server


async def test_a_group_the_acl_refuses_raises_from_group_add(
    acl_server: RedisServer, point_roles: Callable[..., None], caplog: Any
) -> None:
    point_roles(user_url(acl_server, "consumers", "consumers-pw"))
    layer = get_layer()
    try:
        channel = await layer.new_channel()  # allowed
        with pytest.raises(SubscribeRefused, match=r"NOPERM \(refused\).*ACL"):
            await asyncio.wait_for(layer.group_add("news", channel), 5)
        # Nothing half-done: the group is not joined, and the consumer keeps working.
        loop_layer = layer._get_layer()
        assert "news" not in loop_layer.groups
        await layer.send(channel, {"type": "still.works"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "still.works"
        # No reader looping on the error (it logged a traceback every second).
        await asyncio.sleep(2.5)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert not any(r.exc_info for r in errors)
        assert "reconnecting" not in caplog.text
        # Publishing to it is refused too: broadcast() raises (the caller knows).
        with pytest.raises(redis.exceptions.NoPermissionError):
            await asyncio.to_thread(broadcast, "news", {"type": "x"})
    finally:
        await layer.close()


async def test_a_user_without_channels_cannot_open_a_consumer_channel(
    acl_server: RedisServer, point_roles: Callable[..., None]
) -> None:
    point_roles(user_url(acl_server, *NOCHANNEL_USER))
    layer = get_layer()
    try:
        with pytest.raises(SubscribeRefused):
            await asyncio.wait_for(layer.new_channel(), 5)
        with pytest.raises(SubscribeRefused):
            await asyncio.wait_for(layer.receive("specific.abc"), 5)
        assert layer._get_layer().channels == {}
    finally:
        await layer.close()


BAD_NAMES = ["abc\n", "\u0663\u0663", "caf\u00e9", "", "a" * 100, "spa ce"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_names_outside_the_documented_alphabet_are_refused(
    name: str, point_roles: Callable[..., None], redis_server: RedisServer
) -> None:
    point_roles(redis_server.url())
    with pytest.raises(TypeError, match="Group name must be"):
        broadcast(name, {"type": "x"})
    layer = get_layer()
    try:
        channel = await layer.new_channel()
        with pytest.raises(TypeError, match="Group name must be"):
            await layer.group_add(name, channel)
        with pytest.raises(TypeError, match="Channel name must be"):
            await layer.send(name or "\n", {"type": "x"})
    finally:
        await layer.close()


def test_the_doctor_finds_what_the_acl_refuses_before_it_happens(
    acl_server: RedisServer, point_roles: Callable[..., None]
) -> None:
    from django_redisroles import doctor

    point_roles(user_url(acl_server, "consumers", "consumers-pw"))
    report = doctor.run(roles=["pubsub", "locks"])
    refused = [f for f in report.findings if f.id == "E107"]
    assert [f.roles for f in refused] == [["pubsub"]]  # scripts allowed, group channels not
    assert "subscribe to its group channels" in refused[0].message
    assert "ACL SETUSER" in refused[0].fix.text

    point_roles(user_url(acl_server, *NOSCRIPT_USER))
    report = doctor.run(roles=["cache", "sessions", "ratelimit", "pubsub", "locks"])
    refused = [f for f in report.findings if f.id == "E107"]
    assert sorted(r for f in refused for r in f.roles) == sorted(
        ["cache", "sessions", "ratelimit", "pubsub", "locks"]
    )
    assert all("run its Lua scripts" in f.message for f in refused)

    point_roles(f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{acl_server.port}/0")
    report = doctor.run(roles=["cache", "sessions", "ratelimit", "pubsub", "locks"])
    assert [f for f in report.findings if f.id == "E107"] == []
