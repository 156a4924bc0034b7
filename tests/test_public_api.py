"""The public import paths (docs/architecture.md#public-import-paths): each works, is what it says.

Other code, the README and the docs rely on these paths; a refactor that moves
one (a module growing into a package, a rename) must fail here first.
"""

from __future__ import annotations

import inspect
import json
from importlib import import_module
from io import StringIO

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from asgiref.sync import iscoroutinefunction
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.management import BaseCommand, call_command
from django.http import HttpRequest, HttpResponse

from django_redisroles.cache import RedisRolesCache, cached
from django_redisroles.connections import get_async_redis, get_redis
from django_redisroles.locks import Lock, LockHeld, LockLost, command_lock
from django_redisroles.pubsub import RedisRolesChannelLayer, abroadcast, broadcast
from django_redisroles.ratelimit import RateLimitMiddleware, rate_limit
from django_redisroles.sessions import SessionStore, logout_everywhere, user_sessions

#: The client get_redis() returns on each topology: redis-py's own (docs/scaling.md).
SYNC_CLIENT = {
    "single": redis.Redis,
    "sentinel": redis.Redis,
    "cluster": redis.cluster.RedisCluster,
}
ASYNC_CLIENT = {
    "single": redis.asyncio.Redis,
    "sentinel": redis.asyncio.Redis,
    "cluster": redis.asyncio.cluster.RedisCluster,
}


def test_connections_are_the_pooled_role_clients(redis_server) -> None:
    client = get_redis("cache")
    assert isinstance(client, SYNC_CLIENT[redis_server.kind])
    assert get_redis("cache") is client  # one pooled client per role and process
    assert client.ping() is True


async def test_async_connection_is_a_redis_asyncio_client(redis_server) -> None:
    client = get_async_redis("pubsub")
    assert isinstance(client, ASYNC_CLIENT[redis_server.kind])
    assert get_async_redis("pubsub") is client
    assert await client.ping() is True


def test_cache_backend_keeps_django_redis_extras(redis_server) -> None:
    assert issubclass(RedisRolesCache, BaseCache)
    assert settings.CACHES["default"]["BACKEND"] == "django_redisroles.cache.RedisRolesCache"
    cache = caches["default"]
    assert isinstance(cache, RedisRolesCache)
    cache.set("public-api", 1, 30)
    assert 27 <= cache.ttl("public-api") <= 33  # the testproject sets TIMEOUT_JITTER 0.1
    with cache.lock("public-api-lock", timeout=5):
        pass


async def test_cached_keeps_sync_functions_sync_and_async_async(redis_server) -> None:
    calls: list[int] = []

    @cached(300)
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    @cached(300)
    async def acube(n: int) -> int:
        calls.append(n)
        return n**3

    assert not iscoroutinefunction(square)
    assert iscoroutinefunction(acube)
    assert square(3) == 9 and await acube(2) == 8
    assert calls == [3, 2]


def test_sessions_engine_module_exposes_the_store_and_index_functions() -> None:
    engine = import_module("django_redisroles.sessions")
    assert settings.SESSION_ENGINE == "django_redisroles.sessions"
    assert engine.SessionStore is SessionStore
    assert issubclass(SessionStore, SessionBase)
    assert list(inspect.signature(user_sessions).parameters) == ["user"]
    params = inspect.signature(logout_everywhere).parameters
    assert list(params) == ["user", "keep"] and params["keep"].default is None


def test_rate_limit_decorator_and_middleware() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    async def aview(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    decorator = rate_limit("60/m", key="ip")
    assert callable(decorator)
    assert not iscoroutinefunction(decorator(view))
    assert iscoroutinefunction(decorator(aview))
    assert RateLimitMiddleware.sync_capable and RateLimitMiddleware.async_capable
    assert "django_redisroles.ratelimit.RateLimitMiddleware" in settings.MIDDLEWARE


def test_channel_layer_and_broadcast() -> None:
    assert issubclass(RedisRolesChannelLayer, BaseChannelLayer)
    assert isinstance(get_channel_layer(), RedisRolesChannelLayer)
    assert not iscoroutinefunction(broadcast)
    assert iscoroutinefunction(abroadcast)
    assert list(inspect.signature(broadcast).parameters)[:2] == ["group", "message"]
    assert list(inspect.signature(abroadcast).parameters)[:2] == ["group", "message"]


async def test_lock_is_a_sync_and_async_context_manager(redis_server) -> None:
    assert issubclass(LockHeld, Exception) and issubclass(LockLost, Exception)
    assert "ttl" in inspect.signature(Lock).parameters
    with Lock("public-api", ttl=5):
        pass
    async with Lock("public-api", ttl=5):
        pass


def test_command_lock_decorates_a_command_class_and_its_handle() -> None:
    @command_lock(ttl=300)
    class Job(BaseCommand):
        def handle(self, *args: object, **options: object) -> None:
            pass

    class Other(BaseCommand):
        @command_lock(ttl=300)
        def handle(self, *args: object, **options: object) -> None:
            pass

    assert issubclass(Job, BaseCommand) and issubclass(Other, BaseCommand)


def test_manage_py_redisroles_doctor_json_role_and_locks(redis_server) -> None:
    out = StringIO()
    try:
        call_command("redisroles", "doctor", "--json", "--role", "locks", "--quiet", stdout=out)
    except SystemExit as exc:  # exit status 1 on an error finding: still a JSON report
        assert exc.code in (0, 1)
    report = json.loads(out.getvalue())
    assert set(report["roles"]) == {"locks"}

    out = StringIO()
    call_command("redisroles", "locks", "--json", stdout=out)
    assert json.loads(out.getvalue()) == []


def test_names_stay_importable_from_where_they_were_before_the_recut() -> None:
    # Issue 13 moved these into modules of their own; projects that imported them
    # from the old module keep working.
    from django_redisroles.cache import CacheValueTooLarge, TimeoutRequired
    from django_redisroles.cache import client as cache_client
    from django_redisroles.locks import LockLost, core, exceptions, operations

    assert cache_client.TimeoutRequired is TimeoutRequired
    assert cache_client.CacheValueTooLarge is CacheValueTooLarge
    assert core.LockLost is LockLost and core.LockError is exceptions.LockError
    assert core.owner is operations.owner and core.held_locks is operations.held_locks
    assert core.force_release is operations.force_release
