"""The django-redis client under RedisRolesCache: role connections, TTL always.

django-redis's ``DefaultClient`` does the (de)serializing, compression, key
making and its extras (``ttl``, ``lock``, ``iter_keys``, ...). This subclass
changes what RedisRolesCache promises differently:

- connections come from ``django_redisroles.connections`` (the cache role's
  shared pool), not from a pool of django-redis's own;
- every write path gives the key a TTL (``set``, ``add``, ``set_many``,
  ``incr`` creating a key, ``touch``, ``persist``, ``incr_version``);
- ``clear()`` SCANs and UNLINKs this cache's namespace instead of FLUSHDB;
- keys are validated like Django's own backends do (CacheKeyWarning).
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from django.core.cache.backends.base import DEFAULT_TIMEOUT, InvalidCacheKey
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.util import CacheKey

from .. import conf, connections, errors
from ..errors import REDIS_ERRORS
from ..scripts import Script

if TYPE_CHECKING:
    from .backend import RedisRolesCache

logger = logging.getLogger("django_redisroles.cache")

#: SCAN COUNT and UNLINK batch size of clear().
CLEAR_BATCH = 1000

# INCRBY that keeps Django's semantics (missing key -> error, unless asked to
# create it) and never leaves the key without a TTL.
INCR_LUA = b"""
if redis.call('EXISTS', KEYS[1]) == 0 and ARGV[2] == '0' then return false end
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return value
"""
INCR_SCRIPT = Script(INCR_LUA)

_MAX_KEY = 250

#: Redis glob of the version part of a key: a digit or "-" first.
VERSION_GLOB = "[0-9\\-]*"


def seconds(timeout: Any) -> float:
    """``timeout`` as a finite number of seconds; TypeError otherwise.

    ``"300" * 1000`` is a string, not 300000: without this a str timeout
    reached Redis as a PX it refused, with a message naming neither.
    """
    if type(timeout) is int:  # the common case, fast
        return timeout
    try:
        if isinstance(timeout, str | bytes):
            raise TypeError
        value = float(timeout)
        if not math.isfinite(value):
            raise ValueError
    except (TypeError, ValueError):
        raise TypeError(
            f"A cache timeout must be a finite number of seconds, got {timeout!r}."
        ) from None
    return timeout if isinstance(timeout, int | float) else value


#: What a cache call may raise because of Redis: django-redis's wrapper, and
#: the errors of our own calls (classified by ``errors.classify``).
CACHE_ERRORS: tuple[type[BaseException], ...] = (ConnectionInterrupted, *REDIS_ERRORS)


def unwrap(exc: BaseException) -> BaseException:
    """The Redis error behind django-redis's ``ConnectionInterrupted``."""
    if isinstance(exc, ConnectionInterrupted) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def failure_of(exc: BaseException) -> errors.Failure | None:
    """The classified Redis failure behind ``exc`` (None: not a Redis error)."""
    return errors.classify(unwrap(exc))


def namespace_regex(key_func: Any, prefix: str, *, skip_roles: bool = True) -> re.Pattern[bytes]:
    """The keys ``key_func`` makes under ``prefix``, any version (a whole number, or the
    ``<version>.lock`` of a single-flight lock), any key.

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


class TimeoutRequired(ValueError):
    """A write asked for a key without a TTL and the cache does not allow it."""


class CacheValueTooLarge(ValueError):
    """A value above ``MAX_VALUE_SIZE`` with ``ON_LARGE_VALUE = "raise"``."""


class RedisRolesClient(DefaultClient):
    """django-redis client on the cache role's pool, with mandatory TTLs."""

    _backend: RedisRolesCache

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        super().__init__(server, params, backend)
        # Servers equal to the role's URL use the role's pool, looked up on each
        # call so a connections.reset() (settings change) is picked up.
        if getattr(backend, "_location", None) is None:
            # No LOCATION: the role's pool, whatever REDISROLES says at each call
            # (the URL the backend was built with may be stale by now).
            self._role_index = {0}
        else:
            role_url = conf.role_url("cache")
            self._role_index = {i for i, url in enumerate(self._server) if url == role_url}
        self._single_role = len(self._server) == 1 and 0 in self._role_index
        if not params.get("REVERSE_KEY_FUNCTION"):
            # django-redis's default assumes a prefix without ":"; ours has one.
            self.reverse_key = self._reverse_key
        self._namespace_regex: tuple[str, re.Pattern[bytes]] | None = None
        threshold = backend._rr["COMPRESS_MIN_SIZE"]
        if threshold is not None and hasattr(self._compressor, "min_length"):
            self._compressor.min_length = threshold

    # -- connections -------------------------------------------------------

    def _client_at(self, index: int) -> redis.Redis:
        if index in self._role_index:
            return connections.get_redis("cache")
        return connections.get_redis_at(self._server[index], "cache")

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> redis.Redis:
        if self._single_role:
            return connections.get_redis("cache")
        return self._client_at(self.get_next_client_index(write=write, tried=tried))

    def get_client_with_index(
        self, write: bool = True, tried: list[int] | None = None
    ) -> tuple[redis.Redis, int]:
        if self._single_role:
            return connections.get_redis("cache"), 0
        index = self.get_next_client_index(write=write, tried=tried)
        return self._client_at(index), index

    def connect(self, index: int = 0) -> redis.Redis:
        return self._client_at(index)

    def do_close_clients(self) -> None:
        # The pools are shared (role pool, per-URL pools): closing one cache
        # (Django does at the end of each request) must not disconnect others.
        return None

    # -- keys --------------------------------------------------------------

    def make_key(self, key: str, version: int | None = None, prefix: str | None = None) -> CacheKey:
        if isinstance(key, CacheKey):
            return key
        backend = self._backend
        if prefix is None:
            prefix = backend._explicit_prefix
            if prefix is None:
                prefix = backend.key_prefix
        made = backend.key_func(key, prefix, backend.version if version is None else version)
        # Django's backends warn about keys memcached would refuse (CacheKeyWarning);
        # so do we. A cheap conservative test first: Django's check is slow.
        if len(made) > _MAX_KEY or " " in made or not made.isprintable():
            backend.validate_key(made)
            try:
                made.encode()
            except UnicodeEncodeError:
                # A lone surrogate (e.g. from a mis-decoded path): no Redis key
                # can hold it. Django's own error, not redis-py's encode failure.
                raise InvalidCacheKey(
                    f"Cache key {key!r} cannot be encoded as UTF-8 (it contains a lone "
                    "surrogate); clean or hash the value before using it in a key."
                ) from None
        return CacheKey(made)

    def _reverse_key(self, key: str) -> str:
        prefix = self._backend.key_prefix + ":"
        if key.startswith(prefix):
            return key[len(prefix) :].split(":", 1)[-1]
        return key.split(":", 2)[-1]

    def namespace_pattern(self) -> str:
        """SCAN pattern matching every key of this cache (all versions)."""
        backend = self._backend
        # The version part starts with a digit or "-" (a Django version is an
        # int; our single-flight locks use "<version>.lock"): with a KEY_PREFIX
        # equal to the REDISROLES one, "<prefix>:*:*" would also match every
        # other role's "<prefix>:<role>:..." keys, and clear() log everyone out.
        return backend.key_func("*", conf.glob_escape(backend.key_prefix), VERSION_GLOB)

    def namespace_regex(self) -> re.Pattern[bytes]:
        """What a key of this cache looks like, anchored: ``clear()`` checks each scanned key.

        The SCAN glob cannot say "a whole number, then ':'" (``[0-9-]*`` runs
        on past a ':'); this can: ``shop:2x:...`` or ``shop:-:...`` is not ours.
        """
        backend = self._backend
        prefix = backend.key_prefix
        cached = self._namespace_regex
        if cached is not None and cached[0] == prefix:
            return cached[1]
        regex = namespace_regex(backend.key_func, prefix)
        self._namespace_regex = (prefix, regex)
        return regex

    # -- TTL policy ----------------------------------------------------------

    def ttl_ms(self, key: Any, timeout: Any) -> int | None:
        """Milliseconds to give ``key``: jittered, or None when "forever" is allowed.

        Raises TimeoutRequired for ``timeout=None`` unless ALLOW_NO_TIMEOUT.
        """
        if timeout is DEFAULT_TIMEOUT:
            timeout = self._backend.default_timeout
        if timeout is None:
            self._backend.refuse_no_timeout(key)
            return None
        ms = int(seconds(timeout) * 1000)
        jitter = self._backend._rr["TIMEOUT_JITTER"]
        if jitter and ms > 0:
            ms = max(1, round(ms * random.uniform(1 - jitter, 1 + jitter)))
        return ms

    def default_ttl_ms(self) -> int:
        """TTL for a key created without one (incr); 0 when "forever" is allowed."""
        ms = self.ttl_ms("(a key created by incr/sadd/hset/...)", DEFAULT_TIMEOUT)
        if ms is None:
            return 0
        return max(ms, 1)

    def encode_checked(self, nkey: str, value: Any) -> bytes | int | None:
        """Encoded value, or None when it is too large and refused."""
        nvalue = self.encode(value)
        if (
            isinstance(nvalue, bytes)
            and len(nvalue) > self._backend._rr["MAX_VALUE_SIZE"]
            and not self._backend.large_value(nkey, len(nvalue))
        ):
            return None
        return nvalue

    # -- writes ----------------------------------------------------------------

    def set(
        self,
        key: str,
        value: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        nkey = self.make_key(key, version=version)
        px = self.ttl_ms(key, timeout)
        nvalue = self.encode_checked(nkey, value)
        write = client if client is not None else self.get_client(write=True)
        try:
            if nvalue is None:
                # Refused: drop the old value too, so readers do not keep
                # getting what the caller meant to replace (memcached does).
                if not nx:
                    write.delete(nkey)
                return False
            if px is not None and px <= 0:
                # Django: a timeout <= 0 means "expire now".
                if nx:
                    return not bool(write.exists(nkey))
                return bool(write.delete(nkey))
            return bool(write.set(nkey, nvalue, nx=nx, xx=xx, px=px))
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=write) from e

    def set_many(  # type: ignore[override]
        self,
        data: Mapping[str, Any],
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> list[str]:
        """Like Django's: returns the keys that were not stored (refused as too large)."""
        if not data:
            return []
        write = client if client is not None else self.get_client(write=True)
        failed: list[str] = []
        try:
            pipe = write.pipeline(transaction=False)
            for key, value in data.items():
                nkey = self.make_key(key, version=version)
                px = self.ttl_ms(key, timeout)  # per key: each gets its own jitter
                nvalue = self.encode_checked(nkey, value)
                if nvalue is None:
                    failed.append(key)
                    pipe.delete(nkey)
                elif px is not None and px <= 0:
                    pipe.delete(nkey)
                else:
                    pipe.set(nkey, nvalue, px=px)
            pipe.execute()
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=write) from e
        return failed

    def touch(
        self,
        key: str,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        px = self.ttl_ms(key, timeout)
        write = client if client is not None else self.get_client(write=True)
        nkey = self.make_key(key, version=version)
        try:
            if px is None:
                return bool(write.persist(nkey) or write.exists(nkey))
            return bool(write.pexpire(nkey, max(px, 0)) if px > 0 else write.delete(nkey))
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=write) from e

    def persist(self, key: str, version: int | None = None, client: Any = None) -> bool:
        self._backend.refuse_no_timeout(key, what="persist()")
        return super().persist(key, version=version, client=client)

    def expire(
        self, key: str, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        if timeout is None:
            self._backend.refuse_no_timeout(key, what="expire(timeout=None)")
            return self.persist(key, version=version, client=client)
        return bool(super().expire(key, timeout, version=version, client=client))

    def pexpire(
        self, key: str, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        if timeout is None:
            self._backend.refuse_no_timeout(key, what="pexpire(timeout=None)")
            return self.persist(key, version=version, client=client)
        return super().pexpire(key, timeout, version=version, client=client)

    def _incr(
        self,
        key: str,
        delta: int = 1,
        version: int | None = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        write = client if client is not None else self.get_client(write=True)
        nkey = self.make_key(key, version=version)
        # Also fixes a key found without a TTL (written by another client).
        ttl = self.default_ttl_ms()
        try:
            try:
                # Sent once: a timeout does not mean the increment did not happen.
                with connections.send_once():
                    value = INCR_SCRIPT(write, [nkey], [delta, int(ignore_key_check), ttl])
            except redis.exceptions.ResponseError as e:
                if errors.error_code(e) != "ERR":  # OOM, NOPERM, READONLY...: not "not an int"
                    raise
                # Not an integer in Redis (pickled value, or beyond 64 bits):
                # read-modify-write keeping the remaining TTL, like django-redis.
                pttl = write.pttl(nkey)
                if pttl == -2:
                    raise ValueError(f"Key {key!r} not found") from e
                value = self.get(nkey, client=write) + delta
                self.set(nkey, value, timeout=pttl / 1000 if pttl > 0 else DEFAULT_TIMEOUT)
                return value
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=write) from e
        if value is None:
            raise ValueError(f"Key {key!r} not found")
        return int(value)

    def incr_version(
        self, key: str, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        """Move the value to ``version + delta`` with RENAME: atomic, and the TTL moves with it."""
        if version is None:
            version = self._backend.version
        write = client if client is not None else self.get_client(write=True)
        old = self.make_key(key, version=version)
        new = self.make_key(key, version=version + delta)
        try:
            with connections.send_once():  # a second RENAME would find no key
                write.rename(old, new)
        except redis.exceptions.ResponseError as e:
            if errors.error_code(e) != "ERR":  # READONLY, NOPERM...: not a missing key
                raise ConnectionInterrupted(connection=write) from e
            raise ValueError(f"Key {key!r} not found") from e
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=write) from e
        return version + delta

    def clear(self, client: Any = None) -> int:  # type: ignore[override]
        """UNLINK this cache's keys (SCAN in batches); never FLUSHDB. Returns the count."""
        write = client if client is not None else self.get_client(write=True)
        removed = 0
        try:
            batch: list[bytes] = []
            regex = self.namespace_regex()
            for key in write.scan_iter(match=self.namespace_pattern(), count=CLEAR_BATCH):
                if not regex.fullmatch(key):
                    continue  # matched the glob, but is not one of ours
                batch.append(key)
                if len(batch) >= CLEAR_BATCH:
                    removed += write.unlink(*batch)
                    batch = []
            if batch:
                removed += write.unlink(*batch)
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=write) from e
        return removed

    def delete_many(
        self, keys: Iterable[str], version: int | None = None, client: Any = None
    ) -> int:
        return super().delete_many(list(keys), version=version, client=client)
