from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from django_redisroles.pubsub import RedisRolesChannelLayer


@pytest.fixture
def pubsub_settings(settings: Any) -> Callable[..., None]:
    """Set REDISROLES["ROLES"]["pubsub"] keys for one test (pools/layers reset).

    CHANNEL_LAYERS["default"] loses the testproject's CONFIG, so these apply.
    """

    def apply(**values: Any) -> None:
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}
        }
        current = dict(settings.REDISROLES)
        roles = dict(current.get("ROLES") or {})
        roles["pubsub"] = {**(roles.get("pubsub") or {}), **values}
        current["ROLES"] = roles
        settings.REDISROLES = current

    return apply


@pytest.fixture
async def make_layer() -> AsyncIterator[Callable[..., RedisRolesChannelLayer]]:
    """Build layers with a CONFIG; each is closed after the test."""
    layers: list[RedisRolesChannelLayer] = []

    def make(**config: Any) -> RedisRolesChannelLayer:
        layer = RedisRolesChannelLayer(**config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        try:
            await asyncio.wait_for(layer.close(), 5)
        except Exception:  # noqa: BLE001 - a test may have killed its Redis
            pass


async def receive(layer: RedisRolesChannelLayer, channel: str, within: float = 3.0) -> Any:
    return await asyncio.wait_for(layer.receive(channel), within)


async def nothing(layer: RedisRolesChannelLayer, channel: str, within: float = 0.3) -> bool:
    """True when no message arrives within ``within``."""
    try:
        await asyncio.wait_for(layer.receive(channel), within)
    except TimeoutError:
        return True
    return False


async def wait_for(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
