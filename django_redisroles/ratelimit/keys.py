"""Who a request is counted as, and the Redis keys it is counted in.

Key kinds (``"ip"``, ``"user"``, ``"header:<name>"``, a callable, ...) become
an *identity* string per request; the identity is hashed into the key, so
nothing a client sends appears in Redis. Every key of the role is named here::

    <KEY_PREFIX>:ratelimit:{<group tag>}:<policy hash>:<client hash>

The part in braces is a Redis Cluster hash tag derived from the group (or the
policy's ``slot``): the keys one check touches live in one slot.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from .. import conf
from ..clientip import ClientAddresses, parse_ip
from .options import ALGORITHMS, OPTIONS
from .rates import Rate

#: A key function: (request, user, client addresses) -> identity string, or
#: None when the policy does not apply to this request (e.g. "user" for an
#: anonymous user).
KeyFunc = Callable[[HttpRequest, Any, ClientAddresses], "str | None"]

KEY_KINDS: tuple[str, ...] = (
    "ip",
    "user",
    "user_or_ip",
    "header:<name>",
    "get:<param>",
    "post:<param>",
    "a callable (request) -> str",
)


class UnknownKey(ImproperlyConfigured):
    """A rate-limit key that is neither a known kind nor a callable."""


def client_ip(request: HttpRequest) -> str:
    """The client's address as rate limiting counts it (grouped: an IPv6 /64 by default).

    ``REMOTE_ADDR``, or what the trusted proxies say (the role's
    ``TRUSTED_PROXIES`` / ``PROXY_HEADER``, else the top-level ones).
    """
    return OPTIONS.get().addresses.client_ip(request)


# --------------------------------------------------------------------------- key kinds


def _user_ident(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


def _ip_key(request: HttpRequest, user: Any, addresses: ClientAddresses) -> str:
    return "ip:" + addresses.client_ip(request)


def _user_key(request: HttpRequest, user: Any, addresses: ClientAddresses) -> str | None:
    return _user_ident(user)


def _user_or_ip_key(request: HttpRequest, user: Any, addresses: ClientAddresses) -> str:
    return _user_ident(user) or "ip:" + addresses.client_ip(request)


def compile_key(spec: str | Callable[[HttpRequest], Any]) -> tuple[str, KeyFunc, bool]:
    """``(label, function, needs_user)`` for a key spec; ``UnknownKey`` if unknown."""
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

        def _callable_key(
            request: HttpRequest, user: Any, addresses: ClientAddresses
        ) -> str | None:
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

            def _header_key(request: HttpRequest, user: Any, addresses: ClientAddresses) -> str:
                return f"header:{lname}:{request.META.get(meta, '')}"

            return f"header:{lname}", _header_key, False
        if kind == "get":

            def _get_key(request: HttpRequest, user: Any, addresses: ClientAddresses) -> str:
                return f"get:{name}:{request.GET.get(name, '')}"

            return spec, _get_key, False
        if kind == "post":

            def _post_key(request: HttpRequest, user: Any, addresses: ClientAddresses) -> str:
                return f"post:{name}:{request.POST.get(name, '')}"

            return spec, _post_key, False
    raise UnknownKey(f"Unknown rate-limit key {spec!r}; use one of: {', '.join(KEY_KINDS)}.")


def identity_of(*, ip: str | None = None, user: Any = None, ident: str | None = None) -> str:
    """The identity string the limiter hashes for an IP, a user (or pk), or a raw ident.

    Raw idents: ``"header:<name>:<value>"``, ``"get:<param>:<value>"``,
    ``"post:<param>:<value>"``, ``"key:<value>"`` (what a key callable returned).
    """
    given = [v is not None for v in (ip, user, ident)]
    if sum(given) != 1:
        raise ImproperlyConfigured("Pass exactly one of ip=, user= or ident=.")
    if ip is not None:
        if parse_ip(ip) is None:
            raise ImproperlyConfigured(f"{ip!r} is not an IP address.")
        return "ip:" + OPTIONS.get().addresses.group(ip)  # grouped like requests
    if user is not None:
        return f"user:{getattr(user, 'pk', user)}"
    assert ident is not None
    return ident


# --------------------------------------------------------------------------- key names


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


def counter_key(base: str, tail: str, ident: str) -> str:
    """The key one policy counts one client in: ``base + tail + hash(ident)``.

    ``base`` is ``RateLimitOptions.key_base``, ``tail`` one of the policy's
    :func:`policy_tails`. (The per-request path: ``ident_hash`` inlined.)
    """
    if len(ident) <= 128:
        return base + tail + _cached_hash(ident)
    return base + tail + _short_hash(ident, 12)


def group_tag(group: str) -> str:
    """Hash tag of a group: one request's keys share a cluster slot."""
    return _short_hash(group, 5)


def policy_tails(group: str, slot: str | None, rate: Rate, label: str) -> dict[str, str]:
    """Per algorithm, the ``"{tag}:<policy hash>:"`` a policy's keys carry.

    The algorithm is part of the hash: a policy whose algorithm comes from the
    ``ALGORITHM`` setting counts in other keys after that setting changes.
    """
    tag = group_tag(slot or group)
    return {
        algo: f"{{{tag}}}:{_short_hash(f'{group}|{algo}|{rate.limit}|{rate.period}|{label}', 6)}:"
        for algo in ALGORITHMS
    }


def group_keys(base: str, tails: Iterable[str], ident: str) -> list[str]:
    """Every key of one client under the given policy tails."""
    return [counter_key(base, tail, ident) for tail in dict.fromkeys(tails)]


def scan_pattern(base: str, ident: str) -> str:
    """A SCAN pattern matching every key of one client in the role."""
    return f"{conf.glob_escape(base)}*:{conf.glob_escape(ident_hash(ident))}"


def under(base: str, keys: Iterable[Any]) -> list[Any]:
    """The scanned ``keys`` that really start with ``base`` (anchored, as bytes or str)."""
    prefix = base.encode()
    return [k for k in keys if (k if isinstance(k, bytes) else k.encode()).startswith(prefix)]
