"""The limiter: every policy of one request in one ``EVALSHA``, and what the reply means.

(One per cluster slot when a check's policies span several: :mod:`.slots`.)

``check`` (sync) and ``acheck`` (asyncio) are thin runners around a shared
pure plan: :func:`plan` (which policies apply, the command to send),
:func:`decide` (the reply -> a :class:`RateLimitResult`) and :func:`failed`
(Redis could not be asked: the failure policy, the outage back-off). The
script, ``lua/limit.lua``, reads the clock from Redis ``TIME`` and counts the
request against every policy only when every policy has room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
import redis.exceptions
from django.http import HttpRequest

from .. import conf, errors
from ..connections import get_async_redis, get_redis, send_once
from ..direct import execute
from ..scripts import Script
from .keys import counter_key
from .options import OPTIONS, ROLE, RateLimitOptions
from .policy import Policy
from .slots import PartFailed, arun, is_cluster, run, split
from .stats import counters as _counters

logger = logging.getLogger("django_redisroles.ratelimit")

#: ``lua/limit.lua``. The per-request path sends a prebuilt ``EVALSHA``
#: argument list (a few µs less than ``LIMIT(client, keys, args)``); on
#: ``NOSCRIPT`` it hands the call to the script helper, which reloads it.
LIMIT = Script((Path(__file__).parent / "lua" / "limit.lua").read_text())


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class PolicyResult:
    """Where one policy stands after a request."""

    policy: Policy
    allowed: bool
    remaining: int
    #: Seconds until more quota is available (``remaining`` grows by one; for
    #: the sliding window at most until its window ends; 0 when the quota is
    #: full): the ``t`` of the ``RateLimit`` header. Equal to ``retry_after`` for
    #: a policy that refused the request. See docs/ratelimit.md.
    reset_after: float
    retry_after: float  # seconds until a request would be allowed (0 when allowed)

    @property
    def limit(self) -> int:
        return self.policy.rate.limit


class RateLimitResult:
    """What ``request.ratelimit`` holds: the outcome of every policy of one check.

    ``limited``: some policy is over its limit. ``blocked``: the request is
    answered with 429 (or the fail-closed status) instead of the view.
    ``shadowed``: a shadow-mode policy would have refused it. ``error``: Redis
    could not be asked; the failure policy decided. ``results``: one
    ``PolicyResult`` per policy that applied (built on first access: the hot
    path of an allowed request never needs them).
    """

    __slots__ = ("_applied", "_reply", "_results", "blocked", "error", "limited", "shadowed")

    def __init__(
        self,
        results: list[PolicyResult] | None = None,
        limited: bool = False,
        blocked: bool = False,
        shadowed: bool = False,
        error: BaseException | None = None,
        *,
        applied: Sequence[Policy] = (),
        reply: Sequence[int] = (),
    ) -> None:
        self._results = results
        self._applied = applied
        self._reply = reply
        self.limited = limited
        self.blocked = blocked
        self.shadowed = shadowed
        self.error = error

    @property
    def results(self) -> list[PolicyResult]:
        if self._results is None:
            # The script's reply: 4 integers per policy (allowed, remaining,
            # ms until more quota, ms until a request would be allowed).
            reply = self._reply
            self._results = [
                PolicyResult(
                    policy,
                    reply[4 * i] == 1,
                    reply[4 * i + 1],
                    reply[4 * i + 2] / 1000,
                    reply[4 * i + 3] / 1000,
                )
                for i, policy in enumerate(self._applied)
            ]
        return self._results

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def retry_after(self) -> float:
        """Seconds until every policy would allow a request (0 when not limited)."""
        denied = [r.retry_after for r in self.results if not r.allowed]
        return max(denied) if denied else 0.0

    @property
    def remaining(self) -> int | None:
        """Requests left under the tightest policy (None when no policy applied)."""
        return min((r.remaining for r in self.results), default=None)

    def __bool__(self) -> bool:
        return self.limited

    def __repr__(self) -> str:
        return (
            f"<RateLimitResult limited={self.limited} blocked={self.blocked} "
            f"failed={self.failed} results={self.results!r}>"
        )

    def merge(self, other: RateLimitResult) -> RateLimitResult:
        """Combine two checks of one request (middleware + decorator)."""
        return RateLimitResult(
            self.results + other.results,
            self.limited or other.limited,
            self.blocked or other.blocked,
            self.shadowed or other.shadowed,
            self.error or other.error,
        )


# --------------------------------------------------------------------------- the plan

_LAZY_USER: Any = object()


def plan(
    opts: RateLimitOptions,
    policies: Sequence[Policy],
    request: HttpRequest,
    user: Any = _LAZY_USER,
) -> tuple[list[Policy], list[str]]:
    """The policies that apply to ``request`` and the ``EVALSHA`` command for them.

    The per-request hot path: no settings reads, no allocations beyond the
    command itself. ``user``: already loaded (async), else read from
    ``request.user`` when a policy needs it.
    """
    applied: list[Policy] = []
    keys: list[str] = []
    argv: list[str] = []
    method = request.method
    base = opts.key_base
    default = opts.algorithm
    addresses = opts.addresses
    for policy in policies:
        if policy.methods is not None and method not in policy.methods:
            continue
        if policy.needs_user and user is _LAZY_USER:
            user = getattr(request, "user", None)
        ident = policy.key_fn(request, user, addresses)
        if ident is None:
            continue
        algo = policy.algorithm or default
        applied.append(policy)
        keys.append(counter_key(base, policy.tails[algo], ident))
        argv += policy.argsets[algo]
    return applied, ["EVALSHA", LIMIT.sha, str(len(keys)), *keys, *argv]


def decide(opts: RateLimitOptions, applied: list[Policy], reply: list[int]) -> RateLimitResult:
    """What the script's reply means for this request."""
    if 0 not in reply[::4]:  # every policy allowed it: the common case, kept cheap
        _counters.add("allowed")
        return RateLimitResult(None, applied=applied, reply=reply)
    blocked = shadowed = False
    for i, policy in enumerate(applied):
        if reply[4 * i] != 1:
            shadow = opts.shadow if policy.shadow is None else policy.shadow
            if shadow:
                shadowed = True
            elif policy.block:
                blocked = True
    _counters.add("limited")
    if blocked:
        _counters.add("refused")
    return RateLimitResult(None, True, blocked, shadowed, applied=applied, reply=reply)


# --------------------------------------------------------------------------- failures

# Until when (monotonic) Redis is not asked after an error, and when each kind
# of error was last logged. Process-wide; forgotten when REDISROLES changes.
_outage_until = 0.0
_last_logged: dict[str, float] = {}


def reset_backoff() -> None:
    """Forget the outage back-off and the log throttle (conf calls it on settings change)."""
    global _outage_until
    _outage_until = 0.0
    _last_logged.clear()


conf.on_settings_change(reset_backoff, settings=("REDISROLES",))


class _Outage(redis.exceptions.ConnectionError):
    """Stands for Redis while the outage back-off lasts: it is not asked."""


def failed(opts: RateLimitOptions, applied: list[Policy], error: BaseException) -> RateLimitResult:
    """Redis could not be asked: apply each policy's failure policy; start the back-off."""
    global _outage_until
    backing_off = isinstance(error, _Outage)
    if opts.outage_backoff > 0 and not backing_off:
        _outage_until = time.monotonic() + opts.outage_backoff
    blocked = False
    for policy in applied:
        # As in decide(): a shadow or block=False policy never refuses (the view
        # reads request.ratelimit.failed and decides).
        if (policy.fail or opts.fail) == "closed" and policy.block:
            shadow = opts.shadow if policy.shadow is None else policy.shadow
            if not shadow:
                blocked = True
    if not backing_off:
        _log_failure(opts, error, blocked)
    _counters.add("failed_closed" if blocked else "failed_open")
    return RateLimitResult([], limited=False, blocked=blocked, error=error)


def _backing_off(opts: RateLimitOptions, applied: list[Policy]) -> RateLimitResult:
    return failed(opts, applied, _Outage("Redis unreachable recently; backing off"))


def _log_failure(opts: RateLimitOptions, error: BaseException, blocked: bool) -> None:
    # Once per interval per kind of error: an outage must not flood the logs.
    failure = errors.classify(error)
    kind = failure.code if failure is not None else type(error).__name__
    now = time.monotonic()
    last = _last_logged.get(kind)
    if last is not None and now - last < opts.fail_log_interval:
        return
    _last_logged[kind] = now
    # An outage may heal by itself; a refusal (ACL, noeviction, replica) or a
    # bug will not: louder, so it is not mistaken for a blip.
    log = logger.warning if failure is not None and failure.outage else logger.error
    log(
        "Rate limiting could not use Redis (%s); failing %s (logged at most once per %ss).",
        failure.describe() if failure is not None else f"{kind}: {error}",
        "closed for fail='closed' rules" if blocked else "open",
        opts.fail_log_interval,
    )


# --------------------------------------------------------------------------- runners


def _split(command: list[str]) -> tuple[list[str], list[str]]:
    n = int(command[2])
    return command[3 : 3 + n], command[3 + n :]


def _send(client: redis.Redis, command: list[str]) -> Any:
    try:
        return execute(client, *command)
    except redis.exceptions.NoScriptError:  # it did not run: the helper loads it and runs it
        return LIMIT(client, *_split(command))


async def _asend(client: redis.asyncio.Redis, command: list[str]) -> Any:
    try:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]
    except redis.exceptions.NoScriptError:
        return await LIMIT.acall(client, *_split(command))


def check(
    request: HttpRequest, policies: Sequence[Policy], opts: RateLimitOptions | None = None
) -> RateLimitResult:
    """Count ``request`` against ``policies`` in one Redis round trip (sync)."""
    if opts is None:
        opts = OPTIONS.get()
    applied, command = plan(opts, policies, request)
    if not applied:
        return RateLimitResult([])
    if _outage_until and time.monotonic() < _outage_until:
        return _backing_off(opts, applied)
    try:
        client = get_redis(ROLE)
        if len(applied) > 1 and is_cluster(client):
            parts = split(applied, command)
            if parts is not None:  # policies in several cluster slots: one call per slot
                with send_once():
                    reply = run(applied, parts, lambda cmd: _send(client, cmd))
                return decide(opts, applied, reply)
        if opts.retries:  # sent once whatever retry_attempts says: a re-sent count counts twice
            with send_once():
                reply = _send(client, command)
        else:
            reply = _send(client, command)
    except PartFailed as exc:
        return failed(opts, exc.pending, exc.error)
    except errors.REDIS_ERRORS as exc:
        return failed(opts, applied, exc)
    return decide(opts, applied, reply)


async def acheck(
    request: HttpRequest, policies: Sequence[Policy], opts: RateLimitOptions | None = None
) -> RateLimitResult:
    """Count ``request`` against ``policies`` in one Redis round trip (native asyncio)."""
    if opts is None:
        opts = OPTIONS.get()
    method = request.method
    needs_user = any(p.needs_user and p.applies_to(method) for p in policies)
    applied, command = plan(opts, policies, request, await _auser(request) if needs_user else None)
    if not applied:
        return RateLimitResult([])
    if _outage_until and time.monotonic() < _outage_until:
        return _backing_off(opts, applied)
    try:
        client = get_async_redis(ROLE)
        if len(applied) > 1 and is_cluster(client):
            parts = split(applied, command)
            if parts is not None:
                with send_once():
                    reply = await arun(applied, parts, lambda cmd: _asend(client, cmd))
                return decide(opts, applied, reply)
        if opts.retries:
            with send_once():
                reply = await _asend(client, command)
        else:
            reply = await _asend(client, command)
    except PartFailed as exc:
        return failed(opts, exc.pending, exc.error)
    except errors.REDIS_ERRORS as exc:
        return failed(opts, applied, exc)
    return decide(opts, applied, reply)


def _sync_user(request: HttpRequest) -> Any:
    user = getattr(request, "user", None)
    if user is not None:
        user.is_authenticated  # noqa: B018 - evaluates the lazy user here, off the loop
    return user


async def _auser(request: HttpRequest) -> Any:
    """The request's user without blocking the loop (``auser()``, else one thread hop)."""
    auser = getattr(request, "auser", None)
    if auser is not None:
        return await auser()
    # Django 4.2 has no request.auser(): evaluate the lazy user in a thread.
    from asgiref.sync import sync_to_async

    return await sync_to_async(_sync_user)(request)
