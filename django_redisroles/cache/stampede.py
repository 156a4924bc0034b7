"""Stampede-safe cache-aside: ``get_or_set`` and its async twin, one plan for both.

When many callers miss the same key at once, one of them computes the value
(it holds a short single-flight lock, ``SET NX PX``) while the others poll for
the value with a bounded wait. Callers in one process share one trip to Redis
(they wait on the first one, an in-process "flight"). When a ``stale`` window
is set, keys live that much longer than their timeout; a caller finding a
value in that window gets it at once while one caller (the lock holder)
refreshes it (stale-while-revalidate). ``early`` turns on probabilistic early
refresh (XFetch, Vattani et al. 2015): the closer a value is to expiry,
relative to how long it took to compute, the likelier a reader refreshes it
before it expires, so popular keys rarely expire at all.

The lock key lives in the cache's namespace (``keys.lock_key``) so
``clear()`` removes it; it always has a TTL (``LOCK_TIMEOUT``), so a crashed
loader only delays the others by that much.

A loader's exception is its caller's, never a cache outage. When the loader
fails, the callers waiting for its value get the failure at once instead of
each running the loader in turn: in this process the same exception, in other
processes a :class:`LoaderError` read from the lock key, which holds the
failure for ``ERROR_TTL`` seconds (``flights``).

The algorithm is one plan (:func:`_plan`, steps of ``runner``): ``get_or_set``
runs it on the sync clients, ``aget_or_set`` on the async ones.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .. import errors
from ..scripts import Script
from . import keys, ops
from .client import RedisRolesClient
from .flights import (
    ERROR_TTL,
    FAILED,
    Flight,
    Flights,
    Loader,
    LoaderError,
    failure_record,
    loader_error,
    loop_flights,
    thread_flights,
)
from .policy import CACHE_ERRORS, CachePolicy, check_options, logger
from .runner import Call, Eval, Load, Pipe, Sharded, Sleep, Steps, Wait, arun, run, steps

__all__ = ["ERROR_TTL", "LoaderError", "aget_or_set", "check_options", "get_or_set"]

_LUA = Path(__file__).parent / "lua"
RELEASE_SCRIPT = Script((_LUA / "release.lua").read_text())
FAIL_SCRIPT = Script((_LUA / "fail.lua").read_text())

# First and longest pause between two polls of a waiting caller.
POLL_MIN = 0.005
POLL_MAX = 0.05

# Seconds each key's loader took last time, for early refresh (bounded).
_DELTAS_MAX = 10_000
_deltas: dict[str, float] = {}


@dataclass(frozen=True)
class Params:
    """One call's stampede options, resolved against the cache's OPTIONS."""

    timeout: float | None
    stale_ms: int
    early: float
    lock_ms: int
    wait: float


def params(
    policy: CachePolicy,
    key: Any,
    timeout: Any,
    stale: float | None,
    early: float | None,
    lock_timeout: float | None,
    wait: float | None,
) -> Params:
    check_options(stale, early, lock_timeout, wait)
    o = policy.options
    seconds = policy.timeout_seconds(key, timeout)  # TimeoutRequired unless ALLOW_NO_TIMEOUT
    lock = o.lock_timeout if lock_timeout is None else lock_timeout
    if wait is None:
        wait = o.lock_wait if lock == o.lock_timeout else lock
    return Params(
        timeout=seconds,
        stale_ms=int(1000 * (o.stale_timeout if stale is None else stale)),
        early=float(o.early_refresh if early is None else early),
        lock_ms=max(1, int(lock * 1000)),
        wait=float(wait),
    )


def _watch_ttl(p: Params) -> bool:
    return p.timeout is not None and p.timeout > 0 and (p.stale_ms > 0 or p.early > 0)


def _needs_refresh(nkey: str, pttl: int, p: Params) -> bool:
    if pttl < 0:  # no TTL (allowed forever) or just expired
        return False
    fresh_ms = pttl - p.stale_ms
    if fresh_ms <= 0:
        return True
    if p.early > 0:
        delta = _deltas.get(nkey)
        if delta:
            # XFetch: refresh when -delta * beta * ln(U) reaches the time left.
            return -delta * p.early * math.log(1.0 - random.random()) * 1000 >= fresh_ms
    return False


def _remember_delta(nkey: str, elapsed: float) -> None:
    if len(_deltas) >= _DELTAS_MAX:
        try:
            _deltas.pop(next(iter(_deltas)), None)
        except (StopIteration, RuntimeError):  # another thread changed it meanwhile
            pass
    _deltas[nkey] = elapsed


def _store_timeout(p: Params) -> float | None:
    if p.timeout is None or p.timeout <= 0:
        return p.timeout
    return p.timeout + p.stale_ms / 1000


def _is_outage(exc: BaseException, policy: CachePolicy, loader: Loader) -> bool:
    """Whether ``exc``, raised by get_or_set's own Redis calls, is handled by the policy.

    A loader's exception never is, whatever its class (a ``TimeoutError`` of
    its own, a ``ConnectionError`` of another Redis).
    """
    if loader.error is not None and exc is loader.error:
        return False
    return policy.handle(exc) is None


# -- the entry points: the same plan, run on each side --------------------------------


def get_or_set(
    client: RedisRolesClient,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    *,
    stale: float | None = None,
    early: float | None = None,
    lock_timeout: float | None = None,
    wait: float | None = None,
    record: list[tuple[Any, int]] | None = None,
) -> Any:
    """See ``RedisRolesCache.get_or_set``; ``record``: see :func:`_plan`."""
    policy = client.policy
    p = params(policy, key, timeout, stale, early, lock_timeout, wait)
    loader = Loader(default, policy.counters)
    if policy.skipping():  # OUTAGE_BACKOFF: compute, do not ask Redis
        policy.skipped()
        loader.found(False)
        return loader()
    try:
        plan = _plan(client, key, version, loader, p, thread_flights, record)
        return run(plan, client.get_client)
    except CACHE_ERRORS as exc:
        if not _is_outage(exc, policy, loader):
            raise
        loader.found(False)
        return loader()


async def aget_or_set(
    client: RedisRolesClient,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    version: int | None = None,
    *,
    stale: float | None = None,
    early: float | None = None,
    lock_timeout: float | None = None,
    wait: float | None = None,
    record: list[tuple[Any, int]] | None = None,
) -> Any:
    """See ``RedisRolesCache.aget_or_set``."""
    policy = client.policy
    p = params(policy, key, timeout, stale, early, lock_timeout, wait)
    loader = Loader(default, policy.counters)
    if policy.skipping():  # OUTAGE_BACKOFF: compute, do not ask Redis
        policy.skipped()
        loader.found(False)
        return await loader.acall()
    try:
        plan = _plan(client, key, version, loader, p, loop_flights(), record)
        return await arun(plan, client.get_async_client)
    except CACHE_ERRORS as exc:
        if not _is_outage(exc, policy, loader):
            raise
        loader.found(False)
        return await loader.acall()


# -- the plan ----------------------------------------------------------------------


def _plan(
    client: RedisRolesClient,
    key: Any,
    version: int | None,
    loader: Loader,
    p: Params,
    flights: Flights,
    record: list[tuple[Any, int]] | None = None,
) -> Steps[Any]:
    """``record``: a near-cache fill; the first read is then GET+PTTL on the primary
    and, when it finds the value, appends (the encoded value, its fresh PTTL)."""
    nkey = client.make_key(key, version=version)
    watch = _watch_ttl(p)
    if watch or record is not None:
        read = Pipe(Call("get", (nkey,)), Call("pttl", (nkey,)), write=record is not None)
        raw, pttl = yield read
        if record is not None and raw is not None:
            record.append((raw, max(pttl - p.stale_ms, 0) if pttl > 0 else pttl))
    else:
        raw, pttl = (yield Call("get", (nkey,), write=False)), -1
    # On a cluster, the lock in the value's slot: one node per pipeline.
    lkey = keys.lock_key(client.cache, key, version, nkey if (yield Sharded()) else None)
    token = uuid.uuid4().hex
    loader.found(raw is not None)

    if raw is not None:
        value = client.decode(raw)
        if not watch or not _needs_refresh(nkey, pttl, p):
            return value
        # Stale (or picked for early refresh): one caller refreshes, nobody waits.
        if not _took((yield _lock(lkey, token, p)), token):
            return value
        try:
            return (yield from _compute(client, key, nkey, version, loader, p))
        except Exception:
            if pttl > 0:  # still there: serve it rather than fail (stale-if-error)
                logger.exception("Refreshing cache key %r failed; serving the stale value", nkey)
                return value
            raise
        finally:
            yield from _release(lkey, token)

    # Miss. Callers in this process share one trip to Redis (they wait on the
    # first one, then read the value it stored); that one takes the lock or
    # waits for whoever holds it in another process.
    flight_key = (client.servers, nkey)
    flight, leader = flights.join(flight_key)
    if not leader:
        started = time.monotonic()
        if (yield Wait(flight.event, p.wait)):
            if flight.error is not None:
                raise flight.error  # the leader's loader failed: ours would queue behind it
            if flight.ok:
                raw = yield Call("get", (nkey,), write=False)
                if raw is not None:
                    return client.decode(raw)
                if flight.stored is False:  # refused (too large): share the leader's value
                    return flight.value
        # The leader hit a Redis error or took too long: go to Redis ourselves,
        # within what is left of the bounded wait.
        p = replace(p, wait=max(0.0, p.wait - (time.monotonic() - started)))
        return (yield from _miss(client, key, nkey, lkey, token, version, loader, p))
    try:
        value = yield from _miss(client, key, nkey, lkey, token, version, loader, p, flight)
        flight.ok = True
        return value
    except BaseException as exc:
        if exc is loader.error or isinstance(exc, LoaderError):
            flight.error = exc
        raise
    finally:
        flights.leave(flight_key, flight)


def _miss(
    client: RedisRolesClient,
    key: Any,
    nkey: str,
    lkey: str,
    token: str,
    version: int | None,
    loader: Loader,
    p: Params,
    flight: Flight | None = None,
) -> Steps[Any]:
    """Take the single-flight lock and compute, or wait for the holder's value."""
    deadline = time.monotonic() + p.wait
    pause = POLL_MIN
    while True:
        raw, held = yield Pipe(Call("get", (nkey,)), _lock(lkey, token, p))
        got = _took(held, token)
        if raw is not None:  # filled while we looked (double check under the lock)
            if got:
                yield from _release(lkey, token)
            return client.decode(raw)
        if got:
            try:
                value = yield from _compute(client, key, nkey, version, loader, p, flight)
            except BaseException as exc:
                if exc is loader.error:
                    yield from _fail(lkey, token, exc, p)
                else:
                    yield from _release(lkey, token)
                raise
            yield from _release(lkey, token)
            return value
        if held.startswith(FAILED):
            raise loader_error(nkey, held)
        if time.monotonic() >= deadline:
            logger.warning(
                "Waited %.1fs for another caller to compute cache key %r; computing it here.",
                p.wait,
                nkey,
            )
            return (yield from _compute(client, key, nkey, version, loader, p, flight))
        yield Sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 1.5, POLL_MAX)


def _compute(
    client: RedisRolesClient,
    key: Any,
    nkey: str,
    version: int | None,
    loader: Loader,
    p: Params,
    flight: Flight | None = None,
) -> Steps[Any]:
    """Run the loader (once per call), store its value through the ``set`` plan."""
    value = yield Load(loader, loader.acall)
    _remember_delta(nkey, loader.elapsed)
    stored = yield from steps(
        ops.set_value(client, client.policy, key, value, _store_timeout(p), version)
    )
    if flight is not None:
        flight.value, flight.stored = value, stored
    return value


def _lock(lkey: str, token: str, p: Params) -> Call:
    return Call("set", (lkey, token), kwargs={"nx": True, "px": p.lock_ms, "get": True})


def _took(reply: Any, token: str) -> bool:
    """Whether ``SET lock token NX GET`` gave us the lock.

    No old value: taken now; our own token: a re-sent SET (after a timeout)
    whose first send did take it.
    """
    return reply is None or reply == token.encode()


def _release(lkey: str, token: str) -> Steps[None]:
    try:
        yield Eval(RELEASE_SCRIPT, [lkey], [token])
    except errors.REDIS_ERRORS:
        pass  # the lock expires by itself


def _fail(lkey: str, token: str, exc: BaseException, p: Params) -> Steps[None]:
    """Our lock becomes the loader's failure, for the callers waiting in other processes."""
    ttl_ms = max(1, min(int(ERROR_TTL * 1000), p.lock_ms))
    try:
        yield Eval(FAIL_SCRIPT, [lkey], [token, failure_record(exc), ttl_ms])
    except errors.REDIS_ERRORS:
        pass  # they find no value and no lock: one of them loads again
