"""The limiter: rates, policies, keys and the one-round-trip Redis check.

A *policy* is one limit (rate + algorithm + what identifies a client); a
request may be subject to several (stacked decorators, several middleware
rules). All of them are checked by one ``EVALSHA`` of ``lua/limit.lua``,
which reads the clock from Redis ``TIME`` and counts the request against
every policy only when every policy has room.

Settings-derived state (key prefix, trusted proxies, compiled middleware
rules, ...) is built once and dropped on ``setting_changed`` for
``REDISROLES``, so the per-request path reads no settings.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis
import redis.exceptions
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest

from .. import conf, errors
from ..connections import get_async_redis, get_redis, send_once
from ..scripts import Script
from . import identity
from .stats import counters as _counters

logger = logging.getLogger("django_redisroles.ratelimit")

ROLE = "ratelimit"

#: Algorithm name -> code understood by the Lua script.
ALGORITHMS: dict[str, int] = {"fixed": 1, "sliding": 2, "gcra": 3}
FAIL_MODES: tuple[str, ...] = ("open", "closed")
HEADER_MODES: tuple[str, ...] = ("ietf", "legacy", "both", "none")

LIMIT_SCRIPT = Script((Path(__file__).parent / "lua" / "limit.lua").read_text())
SCRIPT: str = LIMIT_SCRIPT.source
SCRIPT_SHA: str = LIMIT_SCRIPT.sha
# The hot path sends a prebuilt EVALSHA argument list through execute_command
# (a few µs less than Script.__call__ per check) and reloads on NOSCRIPT itself.

# --------------------------------------------------------------------------- rates

_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-zA-Z]+)\s*$")


class InvalidRate(ImproperlyConfigured):
    """A rate string that cannot be parsed (``"60/m"``, ``"100/10m"`` are fine)."""


class UnknownKey(ImproperlyConfigured):
    """A rate-limit key that is neither a known kind nor a callable."""


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def parse_rate(value: str | Rate) -> Rate:
    """``"60/m"`` -> ``Rate(60, 60)``; ``"100/10m"`` -> ``Rate(100, 600)``.

    Units: ``s``, ``m``, ``h``, ``d`` (or ``sec``/``min``/``hour``/``day``,
    singular or plural), optionally preceded by a count. Raises
    ``InvalidRate`` (an ``ImproperlyConfigured``) for anything else.
    """
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise InvalidRate(f"A rate must be a string like '60/m', got {value!r}.")
    match = _RATE_RE.match(value)
    if not match:
        raise InvalidRate(
            f"Invalid rate {value!r}: use '<count>/<unit>' or '<count>/<n><unit>', "
            "for example '60/m', '5/s', '1000/h', '100/10m'."
        )
    count, multiplier, unit = match.groups()
    unit = unit.lower()
    # Plurals of the words only: "mins", "hours"; "ms" is not "minutes".
    if unit not in _UNITS and unit.endswith("s") and len(unit) > 2 and unit[:-1] in _UNITS:
        unit = unit[:-1]
    if unit not in _UNITS:
        raise InvalidRate(f"Invalid rate {value!r}: unknown unit {unit!r} (use s, m, h or d).")
    limit = int(count)
    period = (int(multiplier) if multiplier else 1) * _UNITS[unit]
    if limit < 1 or period < 1:
        raise InvalidRate(f"Invalid rate {value!r}: count and period must be at least 1.")
    return Rate(limit, period)


# --------------------------------------------------------------------------- keys

#: A key function: (request, user) -> identity string, or None when the
#: policy does not apply to this request (e.g. "user" for an anonymous user).
KeyFunc = Callable[[HttpRequest, Any], "str | None"]

KEY_KINDS: tuple[str, ...] = (
    "ip",
    "user",
    "user_or_ip",
    "header:<name>",
    "get:<param>",
    "post:<param>",
    "a callable (request) -> str",
)


def _user_ident(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def _ip_key(request: HttpRequest, user: Any) -> str:
    return "ip:" + identity.client_ip(request)


def _user_key(request: HttpRequest, user: Any) -> str | None:
    return _user_ident(user)


def _user_or_ip_key(request: HttpRequest, user: Any) -> str:
    return _user_ident(user) or "ip:" + identity.client_ip(request)


def compile_key(spec: str | Callable[[HttpRequest], Any]) -> tuple[str, KeyFunc, bool]:
    """``(label, function, needs_user)`` for a key spec; ``ImproperlyConfigured`` if unknown."""
    if callable(spec):
        call = type(spec).__call__  # an instance with an async __call__
        if inspect.iscoroutinefunction(spec) or inspect.iscoroutinefunction(call):
            # It would return a coroutine, never the key: a new bucket per request.
            raise UnknownKey(
                f"A rate-limit key callable must be a plain function (request) -> str, "
                f"not a coroutine function: {spec!r}."
            )
        fn = spec
        label = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"

        def _callable_key(request: HttpRequest, user: Any) -> str | None:
            value = fn(request)
            if value is None or value == "":
                return None
            return f"key:{value}"

        return label, _callable_key, False
    if not isinstance(spec, str):
        raise UnknownKey(f"A rate-limit key must be a string or a callable, got {spec!r}.")
    if spec == "ip":
        return spec, _ip_key, False
    if spec == "user":
        return spec, _user_key, True
    if spec == "user_or_ip":
        return spec, _user_or_ip_key, True
    kind, sep, name = spec.partition(":")
    if sep and name:
        if kind == "header":
            meta = name.upper().replace("-", "_")
            if meta not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                meta = "HTTP_" + meta
            lname = name.lower()

            def _header_key(request: HttpRequest, user: Any) -> str:
                return f"header:{lname}:{request.META.get(meta, '')}"

            return f"header:{lname}", _header_key, False
        if kind == "get":

            def _get_key(request: HttpRequest, user: Any) -> str:
                return f"get:{name}:{request.GET.get(name, '')}"

            return spec, _get_key, False
        if kind == "post":

            def _post_key(request: HttpRequest, user: Any) -> str:
                return f"post:{name}:{request.POST.get(name, '')}"

            return spec, _post_key, False
    raise UnknownKey(f"Unknown rate-limit key {spec!r}; use one of: {', '.join(KEY_KINDS)}.")


def _short_hash(value: str, size: int) -> str:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=size).hexdigest()


_cached_hash = lru_cache(maxsize=16384)(lambda ident: _short_hash(ident, 12))


def ident_hash(ident: str) -> str:
    """Hash of a client identity: a bounded, injection-free key part.

    Short identities (addresses, user ids) are cached: they are the hot path.
    Long ones (a header value a client chose) are not, so a client cannot fill
    the cache with large strings.
    """
    if len(ident) <= 128:
        return _cached_hash(ident)
    return _short_hash(ident, 12)


def group_tag(group: str) -> str:
    """Hash tag of a group: one request's keys share a cluster slot."""
    return _short_hash(group, 5)


# --------------------------------------------------------------------------- policies


def _normalize_methods(methods: Iterable[str] | str | None) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = [methods]
    try:
        return frozenset(m.upper() for m in methods)
    except AttributeError:
        raise ImproperlyConfigured(f"methods must be HTTP method names, got {methods!r}.")


#: Every live policy (decorated views, compiled rules), for ``reset(group=...)``.
_registry: weakref.WeakSet[Policy] = weakref.WeakSet()


def policies_of(group: str) -> list[Policy]:
    """The live policies of ``group``."""
    return [p for p in list(_registry) if p.group == group]


_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True, eq=False)
class Policy:
    """One limit: ``rate`` per client identity (``key``) within ``group``."""

    rate: Rate
    key: Any
    algorithm: str | None  # None: the ALGORITHM setting, resolved per check
    group: str
    methods: frozenset[str] | None = None
    block: bool = True
    shadow: bool | None = None  # None: the SHADOW setting
    fail: str | None = None  # None: the FAIL setting
    name: str = ""
    slot: str | None = None  # hash-tag source; default: the group
    # derived, per algorithm (the default algorithm is a setting)
    key_label: str = field(init=False)
    key_fn: KeyFunc = field(init=False)
    needs_user: bool = field(init=False)
    tails: dict[str, str] = field(init=False)  # "{tag}:<policy hash>:" around which prefix/ident go
    argsets: dict[str, tuple[str, str, str]] = field(init=False)

    def __post_init__(self) -> None:
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise ImproperlyConfigured(
                f"Unknown rate-limit algorithm {self.algorithm!r}; use one of: "
                f"{', '.join(ALGORITHMS)}."
            )
        if self.fail is not None and self.fail not in FAIL_MODES:
            raise ImproperlyConfigured(f"fail must be 'open' or 'closed', got {self.fail!r}.")
        label, fn, needs_user = compile_key(self.key)
        set_ = object.__setattr__
        set_(self, "key_label", label)
        set_(self, "key_fn", fn)
        set_(self, "needs_user", needs_user)
        tag = group_tag(self.slot or self.group)
        tails, argsets = {}, {}
        for algo, code in ALGORITHMS.items():
            spec = f"{self.group}|{algo}|{self.rate.limit}|{self.rate.period}|{label}"
            tails[algo] = f"{{{tag}}}:{_short_hash(spec, 6)}:"
            argsets[algo] = (str(code), str(self.rate.limit), str(self.rate.period * 1_000_000))
        set_(self, "tails", tails)
        set_(self, "argsets", argsets)
        _registry.add(self)
        if not self.name:
            set_(
                self,
                "name",
                _NAME_RE.sub("-", f"{label}-{self.rate.limit}-per-{self.rate.period}s"),
            )

    def applies_to(self, method: str | None) -> bool:
        return self.methods is None or method in self.methods


def make_policy(
    rate: str | Rate,
    key: Any = "ip",
    *,
    algorithm: str | None = None,
    group: str,
    methods: Iterable[str] | str | None = None,
    block: bool = True,
    shadow: bool | None = None,
    fail: str | None = None,
    name: str = "",
    slot: str | None = None,
) -> Policy:
    """Build and validate a policy (``ImproperlyConfigured`` on any bad value)."""
    if not isinstance(block, bool):
        raise ImproperlyConfigured(f"block must be True or False, got {block!r}.")
    if shadow is not None and not isinstance(shadow, bool):
        raise ImproperlyConfigured(f"shadow must be True, False or None, got {shadow!r}.")
    if not isinstance(name, str) or not all(" " <= ch <= "~" for ch in name):
        # it goes into the RateLimit headers
        raise ImproperlyConfigured(f"name must be printable ASCII, got {name!r}.")
    return Policy(
        rate=parse_rate(rate),
        key=key,
        algorithm=algorithm,
        group=str(group),
        methods=_normalize_methods(methods),
        block=block,
        shadow=shadow,
        fail=fail,
        name=str(name),
        slot=slot,
    )


# --------------------------------------------------------------------------- state


@dataclass
class State:
    """Everything the hot path needs from settings, resolved once."""

    enabled: bool
    base: str  # "<prefix>:ratelimit:"
    algorithm: str
    fail: str
    fail_status: int
    fail_log_interval: float
    outage_backoff: float
    shadow: bool
    headers: str
    headers_on_allowed: bool
    response: Callable[..., Any] | None
    problem_json_paths: tuple[str, ...]
    proxies: identity.ProxyConfig
    rules: list[Any]  # middleware.Rule, compiled lazily by the middleware module
    has_url_name_rules: bool = False
    # The role's pool would re-send a timed-out check (retry_attempts > 0): then
    # each check is sent inside send_once(). The default (0) needs no guard.
    retries: bool = False


_state: State | None = None
_state_lock = threading.Lock()


def state() -> State:
    """The resolved settings of the role (rebuilt after ``setting_changed``)."""
    current = _state
    if current is not None:
        return current
    return _build_state()


def _build_state() -> State:
    global _state
    from django.utils.module_loading import import_string

    from .middleware import compile_rules

    with _state_lock:
        s = conf.role_settings(ROLE)
        response = s["RESPONSE"]
        if isinstance(response, str):
            response = import_string(response)
        rules = compile_rules(s["RULES"])
        if s["ALGORITHM"] not in ALGORITHMS:
            raise ImproperlyConfigured(
                f"REDISROLES['ROLES']['ratelimit']['ALGORITHM'] is {s['ALGORITHM']!r}; "
                f"use one of {', '.join(ALGORITHMS)}."
            )
        if s["FAIL"] not in FAIL_MODES:
            raise ImproperlyConfigured(f"FAIL must be 'open' or 'closed', got {s['FAIL']!r}.")
        if s["HEADERS"] not in HEADER_MODES:
            raise ImproperlyConfigured(
                f"HEADERS must be one of {', '.join(HEADER_MODES)}, got {s['HEADERS']!r}."
            )
        built = State(
            enabled=bool(s["ENABLED"]),
            base=conf.make_key(ROLE, ""),
            algorithm=s["ALGORITHM"],
            fail=s["FAIL"],
            fail_status=int(s["FAIL_STATUS"]),
            fail_log_interval=float(s["FAIL_LOG_INTERVAL"]),
            outage_backoff=float(s["OUTAGE_BACKOFF"]),
            shadow=bool(s["SHADOW"]),
            headers=s["HEADERS"],
            headers_on_allowed=bool(s["HEADERS_ON_ALLOWED"]),
            response=response,
            problem_json_paths=tuple(s["PROBLEM_JSON_PATHS"] or ()),
            proxies=identity.ProxyConfig.from_settings(s),
            rules=rules,
            has_url_name_rules=any(r.url_name for r in rules),
            retries=int(conf.role_options(ROLE).get("retry_attempts") or 0) > 0,
        )
        identity.configure(built.proxies)
        _state = built
        return built


def clear_state() -> None:
    """Forget resolved settings and the outage back-off (next check re-reads them)."""
    global _state, _outage_until
    _state = None
    _outage_until = 0.0
    _last_logged.clear()
    identity.configure(None)


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REDISROLES", "MIDDLEWARE", "ROOT_URLCONF"):
        clear_state()


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


# --------------------------------------------------------------------------- checking

_outage_until = 0.0
_last_logged: dict[str, float] = {}


_LAZY_USER: Any = object()


def _prepare(
    st: State, policies: Sequence[Policy], request: HttpRequest, user: Any = _LAZY_USER
) -> tuple[list[Policy], list[str]]:
    """The policies that apply to ``request`` and the EVALSHA command for them.

    This is the per-request hot path: no settings reads, no allocations beyond
    the command itself.
    """
    applied: list[Policy] = []
    keys: list[str] = []
    argv: list[str] = []
    method = request.method
    base = st.base
    default = st.algorithm
    for policy in policies:
        if policy.methods is not None and method not in policy.methods:
            continue
        if policy.needs_user and user is _LAZY_USER:
            user = getattr(request, "user", None)
        ident = policy.key_fn(request, user)
        if ident is None:
            continue
        algo = policy.algorithm or default
        applied.append(policy)
        keys.append(base + policy.tails[algo] + ident_hash(ident))
        argv += policy.argsets[algo]
    return applied, ["EVALSHA", SCRIPT_SHA, str(len(keys)), *keys, *argv]


def _decide(st: State, applied: list[Policy], reply: list[int]) -> RateLimitResult:
    if 0 not in reply[::4]:  # every policy allowed it: the common case, kept cheap
        _counters.add("allowed")
        return RateLimitResult(None, applied=applied, reply=reply)
    blocked = shadowed = False
    for i, policy in enumerate(applied):
        if reply[4 * i] != 1:
            shadow = st.shadow if policy.shadow is None else policy.shadow
            if shadow:
                shadowed = True
            elif policy.block:
                blocked = True
    _counters.add("limited")
    if blocked:
        _counters.add("refused")
    return RateLimitResult(None, True, blocked, shadowed, applied=applied, reply=reply)


def _failed(st: State, applied: list[Policy], error: BaseException) -> RateLimitResult:
    global _outage_until
    backing_off = isinstance(error, _Outage)
    if st.outage_backoff > 0 and not backing_off:
        _outage_until = time.monotonic() + st.outage_backoff
    blocked = False
    for policy in applied:
        # As in _decide: a shadow or block=False policy never refuses (the view
        # reads request.ratelimit.failed and decides).
        if (policy.fail or st.fail) == "closed" and policy.block:
            shadow = st.shadow if policy.shadow is None else policy.shadow
            if not shadow:
                blocked = True
    if not backing_off:
        _log_failure(st, error, blocked)
    _counters.add("failed_closed" if blocked else "failed_open")
    return RateLimitResult([], limited=False, blocked=blocked, error=error)


def _log_failure(st: State, error: BaseException, blocked: bool) -> None:
    # Once per interval per kind of error: an outage must not flood the logs.
    failure = errors.classify(error)
    kind = failure.code if failure is not None else type(error).__name__
    now = time.monotonic()
    last = _last_logged.get(kind)
    if last is not None and now - last < st.fail_log_interval:
        return
    _last_logged[kind] = now
    # An outage may heal by itself; a refusal (ACL, noeviction, replica) or a
    # bug will not: louder, so it is not mistaken for a blip.
    log = logger.warning if failure is not None and failure.outage else logger.error
    log(
        "Rate limiting could not use Redis (%s); failing %s (logged at most once per %ss).",
        failure.describe() if failure is not None else f"{kind}: {error}",
        "closed for fail='closed' rules" if blocked else "open",
        st.fail_log_interval,
    )


class _Outage(redis.exceptions.ConnectionError):
    """Raised instead of calling Redis while the outage back-off lasts."""


def check(
    request: HttpRequest, policies: Sequence[Policy], st: State | None = None
) -> RateLimitResult:
    """Count ``request`` against ``policies`` in one Redis round trip (sync)."""
    if st is None:
        st = _state or _build_state()
    applied, args = _prepare(st, policies, request)
    if not applied:
        return RateLimitResult([])
    if _outage_until and time.monotonic() < _outage_until:
        return _failed(st, applied, _Outage("Redis unreachable recently; backing off"))
    try:
        client = get_redis(ROLE)
        if st.retries:  # sent once whatever retry_attempts says: a re-sent count counts twice
            with send_once():
                reply = _evalsha(client, args)
        else:
            reply = _evalsha(client, args)
    except errors.REDIS_ERRORS as exc:
        return _failed(st, applied, exc)
    return _decide(st, applied, reply)


def _evalsha(client: redis.Redis, args: list[str]) -> Any:
    try:
        return client.execute_command(*args)
    except redis.exceptions.NoScriptError:  # the script did not run: load it, run it once
        client.execute_command("SCRIPT", "LOAD", SCRIPT)
        return client.execute_command(*args)


async def _aevalsha(client: Any, args: list[str]) -> Any:
    try:
        return await client.execute_command(*args)
    except redis.exceptions.NoScriptError:
        await client.execute_command("SCRIPT", "LOAD", SCRIPT)
        return await client.execute_command(*args)


def _sync_user(request: HttpRequest) -> Any:
    user = getattr(request, "user", None)
    if user is not None:
        user.is_authenticated  # noqa: B018 - evaluates the lazy user here, off the loop
    return user


async def _auser(request: HttpRequest) -> Any:
    auser = getattr(request, "auser", None)
    if auser is not None:
        return await auser()
    # Django 4.2 has no request.auser(): evaluate the lazy user in a thread.
    from asgiref.sync import sync_to_async

    return await sync_to_async(_sync_user)(request)


async def acheck(
    request: HttpRequest, policies: Sequence[Policy], st: State | None = None
) -> RateLimitResult:
    """Count ``request`` against ``policies`` in one Redis round trip (native asyncio)."""
    if st is None:
        st = _state or _build_state()
    method = request.method
    needs_user = any(p.needs_user and p.applies_to(method) for p in policies)
    user = await _auser(request) if needs_user else None
    applied, args = _prepare(st, policies, request, user)
    if not applied:
        return RateLimitResult([])
    if _outage_until and time.monotonic() < _outage_until:
        return _failed(st, applied, _Outage("Redis unreachable recently; backing off"))
    try:
        client = get_async_redis(ROLE)
        if st.retries:
            with send_once():
                reply = await _aevalsha(client, args)
        else:
            reply = await _aevalsha(client, args)
    except errors.REDIS_ERRORS as exc:
        return _failed(st, applied, exc)
    return _decide(st, applied, reply)


def ceil_seconds(value: float) -> int:
    """Whole seconds for headers, rounded up (a client retrying early is refused again)."""
    return max(0, math.ceil(value - 1e-9))
