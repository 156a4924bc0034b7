"""Every Redis key name of the cache role, made in one place.

- a cache key: ``key_func(key, prefix, version)`` (Django's ``KEY_FUNCTION``,
  default ``<prefix>:<version>:<key>``), checked like Django's own backends do;
- the namespace (``KEY_PREFIX``): the ``CACHES`` entry's, else
  ``<REDISROLES KEY_PREFIX>:cache``, followed as ``REDISROLES`` changes;
- the single-flight lock of ``get_or_set``: ``key_func(key, prefix, "<version>.lock")``
  (on a Redis Cluster: tagged into its value's slot, see :func:`lock_key`);
- what ``clear()`` scans for (a glob) and keeps (an anchored regex).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import BaseCache, InvalidCacheKey
from redis.crc import key_slot

from .. import conf

KeyFunc = Callable[[str, str, Any], str]

#: Longest key memcached accepts: Django's backends warn above it, so do we.
MAX_KEY = 250

#: Redis glob of the version part of a key: a digit or "-" first.
VERSION_GLOB = "[0-9\\-]*"


def default_key_prefix() -> str:
    """KEY_PREFIX of a RedisRolesCache whose CACHES entry sets none: ``<prefix>:cache``."""
    return conf.make_key("cache")


# Built from REDISROLES once, dropped by conf's receiver when it changes.
_DEFAULT_PREFIX = conf.Resolved(default_key_prefix, settings=("REDISROLES",))


class Namespace:
    """The KEY_PREFIX of one cache: ``explicit`` (its CACHES entry's), else the role's default."""

    __slots__ = ("explicit",)

    def __init__(self, explicit: str | None) -> None:
        self.explicit = explicit

    @staticmethod
    def default() -> str:
        return _DEFAULT_PREFIX.get()

    @property
    def prefix(self) -> str:
        explicit = self.explicit
        return _DEFAULT_PREFIX.get() if explicit is None else explicit


def validate(cache: BaseCache, key: Any, made: str) -> None:
    """Django's CacheKeyWarning for keys memcached would refuse; InvalidCacheKey for
    a key no Redis key can hold (not UTF-8 encodable)."""
    cache.validate_key(made)
    try:
        made.encode()
    except UnicodeEncodeError:
        # A lone surrogate (e.g. from a mis-decoded path). Django's own error,
        # not redis-py's encode failure.
        raise InvalidCacheKey(
            f"Cache key {key!r} cannot be encoded as UTF-8 (it contains a lone "
            "surrogate); clean or hash the value before using it in a key."
        ) from None


def lock_key(cache: BaseCache, key: str, version: int | None, beside: str | None = None) -> str:
    """The single-flight lock of ``key``: in the cache's namespace, not in iter_keys().

    ``beside`` (on a Redis Cluster: the value's key): the lock is named to hash to
    the value's slot, ``key_func("{<value key>}", prefix, "<version>.lock")``, so
    the pipeline reading the value and taking the lock goes to one node. Only on a
    cluster: the names on one server stay those earlier releases use (a rolling
    deploy shares them). A ``key_func`` or key that defeats the tag (braces of its
    own) keeps the untagged name: another slot, still correct, one more round trip.
    """
    v = cache.version if version is None else version
    if beside is not None:
        tagged: str = cache.key_func("{" + hash_tag(beside) + "}", cache.key_prefix, f"{v}.lock")
        if key_slot(tagged.encode()) == key_slot(beside.encode()):
            return tagged
    made: str = cache.key_func(key, cache.key_prefix, f"{v}.lock")
    return made


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes of ``key``: its ``{tag}`` if it has one, else all of it."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def reverse_key(prefix: str, nkey: str) -> str:
    """The key a cache key was made from (``iter_keys``/``keys``).

    django-redis's default assumes a prefix without ":"; ours has one.
    """
    if nkey.startswith(prefix + ":"):
        return nkey[len(prefix) + 1 :].split(":", 1)[-1]
    return nkey.split(":", 2)[-1]


def namespace_pattern(key_func: KeyFunc, prefix: str) -> str:
    """SCAN glob matching every key of the cache with this prefix (all versions).

    The version part starts with a digit or "-" (a Django version is an int;
    the single-flight locks use "<version>.lock"): with a KEY_PREFIX equal to
    the REDISROLES one, "<prefix>:*:*" would also match every other role's
    "<prefix>:<role>:..." keys, and clear() log everyone out.
    """
    return key_func("*", conf.glob_escape(prefix), VERSION_GLOB)


@functools.lru_cache(maxsize=64)
def namespace_regex(
    key_func: KeyFunc, prefix: str, *, skip_roles: bool = True
) -> re.Pattern[bytes]:
    """The keys ``key_func`` makes under ``prefix``, any version (a whole number, or the
    ``<version>.lock`` of a single-flight lock), any key; anchored.

    The SCAN glob cannot say "a whole number, then ':'" (``[0-9-]*`` runs on
    past a ':'); this can: ``shop:2x:...`` or ``shop:-:...`` is not ours.
    Keys that look like another redisroles project's (``<prefix>:<n>:<role>:...``:
    a project whose KEY_PREFIX is ``<prefix>:<n>``) are not matched: ``clear()``
    leaves such a key to its TTL rather than end another project's sessions.
    """
    made = key_func("\x00key", prefix, "\x00version")
    pattern = re.escape(made)
    version = r"-?[0-9]+(?:\.lock)?"
    if skip_roles and made.endswith(":\x00version:\x00key"):  # the default layout
        roles = "|".join(conf.ROLES)
        version += rf"(?!:(?:{roles}):)"
    pattern = pattern.replace(re.escape("\x00version"), version, 1)
    pattern = pattern.replace(re.escape("\x00key"), ".*", 1)
    return re.compile(pattern.encode(), re.S)
