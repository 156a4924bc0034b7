"""Operations: forget what the limiter counted for a client."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..connections import get_async_redis, get_redis
from .keys import group_keys, identity_of, scan_pattern, under
from .options import OPTIONS, ROLE
from .policy import policies_of

__all__ = ["areset", "identity_of", "reset"]


def _plan(group: str | None, ident: str) -> tuple[str, list[str], str | None]:
    """``(key base, keys to delete, SCAN pattern)``: exact keys for a group, else a pattern."""
    base = OPTIONS.get().key_base
    if group is None:
        return base, [], scan_pattern(base, ident)
    keys = group_keys(base, (tail for p in policies_of(group) for tail in p.tails.values()), ident)
    if not keys:
        raise ImproperlyConfigured(
            f"No rate limit in group {group!r} is loaded in this process "
            "(decorated views are loaded with the URLconf)."
        )
    return base, keys, None


def reset(
    *, ip: str | None = None, user: Any = None, ident: str | None = None, group: str | None = None
) -> int:
    """Forget the counters of one client, in one group or everywhere; returns keys deleted.

    ``reset(ip="203.0.113.7")``, ``reset(user=request.user, group="myapp.views.search")``.
    Without ``group`` the keyspace is scanned (``SCAN``, never ``KEYS``).
    """
    base, keys, pattern = _plan(group, identity_of(ip=ip, user=user, ident=ident))
    client = get_redis(ROLE)
    if pattern is not None:
        keys = under(base, client.scan_iter(match=pattern, count=1000))
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += int(client.delete(*keys[start : start + 500]))
    return deleted


async def areset(
    *, ip: str | None = None, user: Any = None, ident: str | None = None, group: str | None = None
) -> int:
    """``reset()`` on the asyncio client."""
    base, keys, pattern = _plan(group, identity_of(ip=ip, user=user, ident=ident))
    client = get_async_redis(ROLE)
    if pattern is not None:
        keys = under(base, [k async for k in client.scan_iter(match=pattern, count=1000)])
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += int(await client.delete(*keys[start : start + 500]))
    return deleted
