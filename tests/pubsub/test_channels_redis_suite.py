"""channels_redis's own pub/sub layer suite (tests/test_pubsub.py of its sdist), run on our layer.

The file is fetched at test time from the sdist of the installed channels-redis
(never copied here), loaded as a module, and its layer class swapped for ours:
every test in it then runs against ``RedisRolesChannelLayer`` on the test
redis-server. The only adaptations are names that are internal to
channels_redis: its ``hosts=`` argument (our layer takes the pubsub role's URL
from REDISROLES) and ``_shards[0]._redis`` (the connection its reconnect test
closes: for us, the pubsub role's pooled async client, whose pool also holds
the subscriber connection; on a Redis Cluster, every master's node client, whose
pools hold the sharded subscriber connections).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import types
from typing import Any

import pytest

from django_redisroles.connections import async_primary_clients
from django_redisroles.pubsub import RedisRolesChannelLayer
from tests.sdist import fetch_sdist


def _async_timeout() -> types.ModuleType:
    """The suite's ``async_timeout``: the package if installed, else a stand-in.

    The suite only uses ``async with async_timeout.timeout(seconds)`` and expects
    ``asyncio.TimeoutError``; Python 3.11's ``asyncio.timeout`` does exactly that
    (``asyncio.TimeoutError`` is ``TimeoutError`` there). The stand-in is given to
    the suite module alone, never registered in ``sys.modules``, so no other code
    can mistake it for the real package (which also has ``timeout_at``, ``Timeout``).
    """
    try:
        import async_timeout
    except ImportError:
        shim = types.ModuleType("async_timeout")
        shim.timeout = asyncio.timeout  # type: ignore[attr-defined]
        return shim
    return async_timeout


class _Masters:
    """What the suite closes to drop the layer's connections: every master's client."""

    async def aclose(self, close_connection_pool: bool = True) -> None:
        for client in await async_primary_clients("pubsub"):
            await client.aclose(close_connection_pool=close_connection_pool)


class PointedLayer(RedisRolesChannelLayer):
    """Our layer under the constructor and attribute names the suite uses."""

    def __init__(self, *args: Any, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @property
    def _shards(self) -> list[types.SimpleNamespace]:
        return [types.SimpleNamespace(_redis=_Masters())]


def _load_suite() -> types.ModuleType:
    path = fetch_sdist("channels-redis") / "tests" / "test_pubsub.py"
    spec = importlib.util.spec_from_file_location("channels_redis_sdist_test_pubsub", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    missing = object()
    saved = sys.modules.get("async_timeout", missing)
    sys.modules["async_timeout"] = _async_timeout()  # only while the suite imports it
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is missing:
            del sys.modules["async_timeout"]
        else:
            sys.modules["async_timeout"] = saved  # type: ignore[assignment]
    module.RedisPubSubChannelLayer = PointedLayer  # the fixtures build this name
    return module


_suite = _load_suite()
for _name, _value in vars(_suite).items():
    if _name.startswith("test_") or _name in ("channel_layer", "other_channel_layer"):
        globals()[_name] = _value


def test_suite_was_loaded() -> None:
    # Guard against silently collecting nothing if the sdist layout changes.
    names = [n for n in vars(_suite) if n.startswith("test_")]
    assert len(names) >= 15, names
    assert _suite.RedisPubSubChannelLayer is PointedLayer
    # The stand-in for async_timeout (when the package is missing) stays private to it.
    if getattr(_suite.async_timeout, "__file__", None) is None:  # the stand-in
        assert "async_timeout" not in sys.modules


async def test_async_timeout_stand_in_raises_what_the_suite_expects() -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with _suite.async_timeout.timeout(0.05):
            await asyncio.sleep(1)
