"""Operations: forget what the limiter counted for a client."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .. import conf
from ..connections import get_async_redis, get_redis
from . import identity
from .core import ROLE, ident_hash, policies_of, state


def identity_of(*, ip: str | None = None, user: Any = None, ident: str | None = None) -> str:
    """The identity string the limiter hashes for an IP, a user (or pk), or a raw ident.

    Raw idents: ``"header:<name>:<value>"``, ``"get:<param>:<value>"``,
    ``"post:<param>:<value>"``, ``"key:<value>"`` (what a key callable returned).
    """
    given = [v is not None for v in (ip, user, ident)]
    if sum(given) != 1:
        raise ImproperlyConfigured("Pass exactly one of ip=, user= or ident=.")
    if ip is not None:
        if identity.parse_ip(ip) is None:
            raise ImproperlyConfigured(f"{ip!r} is not an IP address.")
        state()  # the grouping prefixes come from settings
        return "ip:" + identity._group(ip)
    if user is not None:
        return f"user:{getattr(user, 'pk', user)}"
    assert ident is not None
    return ident


def _keys_and_pattern(group: str | None, ident: str) -> tuple[list[str], str | None]:
    st = state()
    digest = ident_hash(ident)
    if group is None:
        return [], f"{conf.glob_escape(st.base)}*:{conf.glob_escape(digest)}"
    keys = []
    for policy in policies_of(group):
        for tail in set(policy.tails.values()):
            keys.append(st.base + tail + digest)
    if not keys:
        raise ImproperlyConfigured(
            f"No rate limit in group {group!r} is loaded in this process "
            "(decorated views are loaded with the URLconf)."
        )
    return keys, None


def _ours(keys: list[Any]) -> list[Any]:
    """Anchored check of scanned keys: under this role's base (the glob is escaped too)."""
    base = state().base.encode()
    return [k for k in keys if (k if isinstance(k, bytes) else k.encode()).startswith(base)]


def reset(
    *, ip: str | None = None, user: Any = None, ident: str | None = None, group: str | None = None
) -> int:
    """Forget the counters of one client, in one group or everywhere; returns keys deleted.

    ``reset(ip="203.0.113.7")``, ``reset(user=request.user, group="myapp.views.search")``.
    Without ``group`` the keyspace is scanned (``SCAN``, never ``KEYS``).
    """
    keys, pattern = _keys_and_pattern(group, identity_of(ip=ip, user=user, ident=ident))
    client = get_redis(ROLE)
    if pattern is not None:
        keys = _ours([k for k in client.scan_iter(match=pattern, count=1000)])
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += int(client.delete(*keys[start : start + 500]))
    return deleted


async def areset(
    *, ip: str | None = None, user: Any = None, ident: str | None = None, group: str | None = None
) -> int:
    """``reset()`` on the asyncio client."""
    keys, pattern = _keys_and_pattern(group, identity_of(ip=ip, user=user, ident=ident))
    client = get_async_redis(ROLE)
    if pattern is not None:
        keys = _ours([k async for k in client.scan_iter(match=pattern, count=1000)])
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += int(await client.delete(*keys[start : start + 500]))
    return deleted
