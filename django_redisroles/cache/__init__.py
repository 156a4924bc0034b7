"""The cache role: a ``CACHES`` backend where every key has a TTL.

``CACHES = {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 300}}``

- :class:`RedisRolesCache`: django-redis's API on the cache role's pool; TTL
  mandatory, namespace-only ``clear()``, stampede-safe ``get_or_set()``,
  large-value guard, native async ``a*`` methods.
- :func:`cached`: ``@cached(300, key="user:{user_id}")`` on sync or async functions.
- ``cache.stats()`` -> :class:`CacheStats`: hits, misses, loads, outages in this process.

Modules (docs/architecture.md): ``backend`` (the Django API) -> ``client``
(django-redis's extension points) and ``stampede`` (``get_or_set``) -> ``ops``
(each operation's plan) -> ``runner`` (sync and async runners) and ``policy``
(TTLs, sizes, failures) -> ``keys``, ``options``.
"""

from __future__ import annotations

from django_redis import get_redis_connection

from .backend import RedisRolesCache
from .client import RedisRolesClient
from .decorators import cached
from .flights import LoaderError
from .keys import default_key_prefix
from .policy import CacheValueTooLarge, TimeoutRequired
from .stats import CacheStats

__all__ = [
    "CacheStats",
    "CacheValueTooLarge",
    "LoaderError",
    "RedisRolesCache",
    "RedisRolesClient",
    "TimeoutRequired",
    "cached",
    "default_key_prefix",
    "get_redis_connection",
]
