"""Each cache operation's plan: the keys, the TTL, the encoded value, what to send
and what the reply means. Written once; run by ``runner.run`` (the client's
sync methods) and ``runner.arun`` (the backend's async ones).

Every write that changes what a read would return passes through one plan
here (``set_value``, ``set_many``, ``delete``, ``delete_many``, ``incr``,
``incr_version``, ``touch``, ``expire``, ``persist``, ``clear``), and so does
the multi-key read (``get_many``): the seam where an in-process near cache
will hook its invalidation and lookups. ``get`` itself is the backend's
inlined hot path (``RedisRolesCache.get``/``aget``).

A plan takes the cache's :class:`Codec` (its django-redis client: keys and
serialization) and :class:`~.policy.CachePolicy` (TTLs, sizes) and only
yields steps (``runner``); it never talks to Redis or reads settings itself.
A plan of one command is a :class:`~.runner.Call` (the command and what its
reply means): no generator on the hot path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import SynchronousOnlyOperation
from redis.exceptions import ResponseError

from .. import errors
from ..scripts import Script
from .policy import CachePolicy
from .runner import (
    NO_KWARGS,
    Call,
    Eval,
    PerSlot,
    Pipe,
    Plan,
    Prepare,
    Primaries,
    Sharded,
    Steps,
    by_slot,
    steps,
)

#: SCAN COUNT and UNLINK batch size of clear().
CLEAR_BATCH = 1000

T = TypeVar("T")

INCR_SCRIPT = Script((Path(__file__).parent / "lua" / "incr.lua").read_text())


class Codec(Protocol):
    """What a plan needs of the cache's client: keys and (de)serialization."""

    def make_key(self, key: Any, version: int | None = None, prefix: str | None = None) -> str: ...

    def encode(self, value: Any) -> Any: ...

    def decode(self, value: Any) -> Any: ...


def encode_checked(codec: Codec, policy: CachePolicy, nkey: str, value: Any) -> Any:
    """The encoded value, or None when it is too large and refused (ON_LARGE_VALUE).

    Encoded in the plan (no step: the hot path); only when Django refuses it on
    an event loop (pickling an unevaluated QuerySet runs its query) does the
    plan yield a :class:`~.runner.Prepare` that moves it to a thread.
    """
    nvalue = codec.encode(value)
    if (
        isinstance(nvalue, bytes)
        and len(nvalue) > policy.options.max_value_size  # cheap test first: the hot path
        and not policy.admit(nkey, len(nvalue))
    ):
        return None
    return nvalue


# -- writes ------------------------------------------------------------------------


def set_value(
    codec: Codec,
    policy: CachePolicy,
    key: Any,
    value: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    *,
    nx: bool = False,
    xx: bool = False,
    once: bool = False,
    defer: bool = True,
) -> Plan[bool]:
    """``set`` (``add``: ``nx``, sent ``once``: a re-sent SET NX would report "not
    added" for our own value). True when stored.

    ``defer``: when Django refuses the encoding here (on an event loop), the plan is
    built again in a thread (no ``defer`` there: a second refusal is raised)."""
    nkey = codec.make_key(key, version=version)
    px = policy.ttl_ms(key, timeout)
    try:
        nvalue = encode_checked(codec, policy, nkey, value)
    except SynchronousOnlyOperation:
        if not defer:
            raise
        build = functools.partial(set_value, codec, policy, key, value, timeout, version)
        return _in_thread(functools.partial(build, nx=nx, xx=xx, once=once, defer=False))
    if nvalue is None:
        # Refused (too large): drop the old value too, so readers do not keep
        # getting what the caller meant to replace (memcached does).
        if nx:
            return _done(False)
        return Call("delete", (nkey,), _false)
    if px is not None and px <= 0:
        # Django: a timeout <= 0 means "expire now".
        if nx:
            return Call("exists", (nkey,), _not)
        return Call("delete", (nkey,), bool)
    # then, kwargs, write, once: positional (see Call.__init__), the hot path.
    return Call("set", (nkey, nvalue), bool, {"nx": nx, "xx": xx, "px": px}, True, once)


def _in_thread(build: Callable[[], Plan[T]]) -> Steps[T]:
    """The plan ``build()`` makes, made by a :class:`~.runner.Prepare` step (in a
    thread on the async side: CPU work Django refuses on the event loop)."""
    plan: Plan[T] = yield Prepare(build)
    return (yield from steps(plan))


def _done(result: Any) -> Steps[Any]:
    """A plan that sends nothing."""
    return result
    yield  # (makes this a generator)


def _false(reply: Any) -> bool:
    return False


def _not(reply: Any) -> bool:
    return not reply


def set_many(
    codec: Codec,
    policy: CachePolicy,
    data: Mapping[Any, Any],
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
) -> Steps[list[Any]]:
    """One pipeline; like Django's, returns the keys that were not stored (too large)."""
    if not data:
        return []
    failed: list[Any] = []
    calls: list[Call] = []
    entries = [
        (key, codec.make_key(key, version=version), value, policy.ttl_ms(key, timeout))
        for key, value in data.items()  # a TTL per key: each gets its own jitter
    ]
    try:
        encoded = _encode_all(codec, policy, entries)
    except SynchronousOnlyOperation:
        encoded = yield Prepare(_encode_all, codec, policy, entries)
    for (key, nkey, _, px), nvalue in zip(entries, encoded, strict=True):
        if nvalue is None:
            failed.append(key)
            calls.append(Call("delete", (nkey,)))
        elif px is not None and px <= 0:
            calls.append(Call("delete", (nkey,)))
        else:
            calls.append(Call("set", (nkey, nvalue), kwargs={"px": px}))
    yield Pipe(*calls)
    return failed


def _encode_all(
    codec: Codec, policy: CachePolicy, entries: list[tuple[Any, str, Any, int | None]]
) -> list[Any]:
    return [encode_checked(codec, policy, nkey, value) for _, nkey, value, _ in entries]


def touch(
    codec: Codec, policy: CachePolicy, key: Any, timeout: Any, version: int | None
) -> Steps[bool]:
    """A new TTL for an existing key (``timeout=None``: none, if allowed). True if it exists."""
    px = policy.ttl_ms(key, timeout)
    nkey = codec.make_key(key, version=version)
    if px is None:
        return bool((yield Call("persist", (nkey,))) or (yield Call("exists", (nkey,))))
    if px <= 0:
        return bool((yield Call("delete", (nkey,))))
    return bool((yield Call("pexpire", (nkey, px))))


def expire(nkey: str, command: str, timeout: Any) -> Plan[bool]:
    """``EXPIRE``/``PEXPIRE`` (the caller refused ``timeout=None``)."""
    return Call(command, (nkey, timeout), bool)


def persist(nkey: str) -> Plan[bool]:
    """Drop a key's TTL (the caller checked ALLOW_NO_TIMEOUT)."""
    return Call("persist", (nkey,), bool)


def ensure_ttl(nkey: str, ms: int) -> Plan[Any]:
    """Give a key made by an extra (``sadd``, ``hset``...) a TTL if it has none."""
    return Call("execute_command", ("PEXPIRE", nkey, ms, "NX"))


def delete(codec: Codec, key: Any, version: int | None, prefix: str | None = None) -> Plan[int]:
    """The number of keys removed (0 or 1): DEL's reply as it is."""
    return Call("delete", (codec.make_key(key, version=version, prefix=prefix),))


def delete_many(codec: Codec, keys: Iterable[Any], version: int | None) -> Plan[int]:
    """One DEL (on a cluster: one per slot, one round trip per node)."""
    nkeys = [codec.make_key(k, version=version) for k in keys]
    if not nkeys:
        return _done(0)
    return PerSlot("delete", "DEL", tuple(nkeys))


def incr(
    codec: Codec,
    policy: CachePolicy,
    key: Any,
    delta: int,
    version: int | None,
    ignore_key_check: bool = False,
) -> Steps[int]:
    """INCRBY, atomic, with Django's semantics (ValueError for a missing key, unless
    ``ignore_key_check`` creates it); the key keeps or gets a TTL."""
    nkey = codec.make_key(key, version=version)
    ttl = policy.default_ttl_ms()  # also fixes a key found without a TTL
    try:
        value = yield Eval(INCR_SCRIPT, [nkey], [delta, int(ignore_key_check), ttl], once=True)
    except ResponseError as e:
        if errors.error_code(e) != "ERR":  # OOM, NOPERM, READONLY...: not "not an int"
            raise
        # Not an integer in Redis (a pickled value, or beyond 64 bits):
        # read-modify-write keeping the remaining TTL, like django-redis.
        pttl = yield Call("pttl", (nkey,))
        if pttl == -2:
            raise ValueError(f"Key {key!r} not found") from e
        raw = yield Call("get", (nkey,))
        old: Any = None if raw is None else codec.decode(raw)
        new = old + delta  # None (the key just expired): TypeError, as django-redis
        timeout = pttl / 1000 if pttl > 0 else DEFAULT_TIMEOUT
        yield from steps(set_value(codec, policy, nkey, new, timeout))
        return new  # type: ignore[no-any-return]
    if value is None:
        raise ValueError(f"Key {key!r} not found")
    return int(value)


def incr_version(
    codec: Codec, key: Any, delta: int, version: int | None, default_version: int
) -> Steps[int]:
    """Move the value to ``version + delta`` with RENAME: atomic, and the TTL moves with it."""
    if version is None:
        version = default_version
    old = codec.make_key(key, version=version)
    new = codec.make_key(key, version=version + delta)
    if (yield Sharded()) and len(by_slot((old, new))) > 1:
        yield from _move(key, old, new)
        return version + delta
    try:
        yield Call("rename", (old, new), once=True)  # a second RENAME would find no key
    except ResponseError as e:
        if errors.error_code(e) != "ERR":  # READONLY, NOPERM...: not a missing key
            raise
        raise ValueError(f"Key {key!r} not found") from e
    return version + delta


def _move(key: Any, old: str, new: str) -> Steps[None]:
    """incr_version on a Redis Cluster, where the two versions' keys live in different
    slots (RENAME cannot cross slots): DUMP + PTTL, RESTORE under the new name, DEL the
    old one. Not atomic: a write to the old version meanwhile is lost (documented)."""
    dumped, pttl = yield Pipe(Call("dump", (old,)), Call("pttl", (old,)))
    if dumped is None:
        raise ValueError(f"Key {key!r} not found")
    yield Call("restore", (new, max(int(pttl), 0), dumped), kwargs={"replace": True})
    yield Call("delete", (old,))


def clear(pattern: str, regex: re.Pattern[bytes]) -> Steps[int]:
    """UNLINK the keys of this cache's namespace (SCAN in batches); never FLUSHDB.

    On a Redis Cluster, every master is scanned (its own cursor) and each batch
    is unlinked one command per slot."""
    removed = 0
    for node in (yield Primaries()):
        removed += yield from _clear_node(pattern, regex, node)
    return removed


def _clear_node(pattern: str, regex: re.Pattern[bytes], node: Any) -> Steps[int]:
    removed = 0
    batch: list[bytes] = []
    cursor = 0
    scan: dict[str, Any] = {"match": pattern, "count": CLEAR_BATCH}
    if node is not None:
        scan["target_nodes"] = node
    while True:
        cursor, found = yield Call("scan", (cursor,), kwargs=scan)
        if node is not None:  # a cluster answers {node name: cursor}
            cursor = cursor[node.name]
        for key in found:
            if not regex.fullmatch(key):
                continue  # matched the glob, but is not one of ours
            batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                removed += yield PerSlot("unlink", "UNLINK", tuple(batch))
                batch = []
        if not cursor:
            break
    if batch:
        removed += yield PerSlot("unlink", "UNLINK", tuple(batch))
    return removed


# -- reads -------------------------------------------------------------------------


def get_many(codec: Codec, keys: Iterable[Any], version: int | None) -> Plan[dict[Any, Any]]:
    """One MGET (on a cluster: one per slot, in one pipeline): ``{key: value}`` of
    the keys found."""
    nkeys = {codec.make_key(k, version=version): k for k in keys}
    if not nkeys:
        return _done({})

    def found(raws: list[Any]) -> dict[Any, Any]:
        return {
            key: codec.decode(raw)
            for key, raw in zip(nkeys.values(), raws, strict=True)
            if raw is not None
        }

    return PerSlot("mget", "MGET", tuple(nkeys), found, False)  # a read


def has_key(codec: Codec, key: Any, version: int | None) -> Plan[bool]:
    return Call("exists", (codec.make_key(key, version=version),), bool, NO_KWARGS, False)


def ttl(codec: Codec, key: Any, version: int | None, command: str = "ttl") -> Plan[int | None]:
    """Seconds (``pttl``: ms) left; None without expiry; 0 when missing."""
    return Call(command, (codec.make_key(key, version=version),), _ttl, write=False)


def _ttl(t: Any) -> int | None:
    return None if t == -1 else max(int(t), 0)
