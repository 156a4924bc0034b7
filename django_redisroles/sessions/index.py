"""Per-user session index: list a user's live sessions, end them, without a database.

The index is written by the session store itself, in the same Lua script as
the session (see ``store.SAVE``); the ``user_logged_in`` receiver below only
attaches the login metadata (IP, user agent, time) to the session, and the
``user_logged_out`` receiver makes sure the ending session leaves the index.
Stale entries (expired or ended elsewhere) are trimmed lazily: on each save,
on each listing, and by ``manage.py clearsessions``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver
from django.http import HttpRequest

from .. import conf, connections, errors
from ..scripts import Script
from . import store as _store

__all__ = [
    "UserSession",
    "alogout_everywhere",
    "atrim_indexes",
    "auser_sessions",
    "logout_everywhere",
    "trim_indexes",
    "user_sessions",
]

_MAX_UA = 512


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, as listed by :func:`user_sessions`."""

    session_key: str
    ip: str | None
    user_agent: str
    created: datetime | None
    last_seen: datetime | None
    expires: datetime

    @property
    def device(self) -> str:
        """A short, human description of the user agent ("Firefox on Linux")."""
        return describe_user_agent(self.user_agent)


_BROWSERS = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
    ("Python", re.compile(r"python-requests|python-httpx|aiohttp|Python-urllib")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def describe_user_agent(user_agent: str) -> str:
    """A short label such as ``Firefox on Linux`` or ``Safari on iOS``."""
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), None)
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or ("Unknown device" if not user_agent else user_agent[:40])


def _pk(user: Any) -> str:
    return str(getattr(user, "pk", user))


def _dt(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_owned_by = _store.owned_by


def _build(
    pk: str, entries: list[tuple[bytes, float]], meta: dict[bytes, bytes], replies: list[Any]
) -> tuple[list[UserSession], list[str]]:
    """Sessions from index entries and their GET/PTTL replies; also the dead entries."""
    live: list[UserSession] = []
    dead: list[str] = []
    now = time.time()
    for i, (member, _score) in enumerate(entries):
        raw, pttl = replies[2 * i], replies[2 * i + 1]
        key = _text(member)
        if not _owned_by(raw, pk):
            dead.append(key)
            continue
        info: dict[str, Any] = {}
        blob = meta.get(member)
        if blob:
            try:
                info = json.loads(blob)
            except ValueError:
                info = {}
        live.append(
            UserSession(
                session_key=key,
                ip=info.get("ip"),
                user_agent=str(info.get("ua") or ""),
                created=_dt(info.get("created")),
                last_seen=_dt(meta.get(member + b"|seen")),
                expires=_dt(now + max(int(pttl), 0) / 1000) or datetime.now(UTC),
            )
        )
    live.sort(key=lambda s: s.last_seen or s.created or s.expires, reverse=True)
    return live, dead


def _cutoff() -> float:
    """Index scores below this belong to sessions that have surely expired."""
    return time.time() - _store.index_refresh()


def _require_index() -> None:
    # Without the index there is no way to find a user's sessions: saying
    # "none" (or "ended 0") would be a silent lie about a security action.
    if not _store.index_enabled():
        raise ImproperlyConfigured(
            'The per-user session index is off (REDISROLES["ROLES"]["sessions"]["USER_INDEX"] '
            "= False): user_sessions() and logout_everywhere() cannot find a user's sessions."
        )


def _forget(pipe: Any, pk: str, dead: Iterable[str]) -> None:
    dead = list(dead)
    if dead:
        pipe.zrem(_store.index_key_name(pk), *dead)
        pipe.hdel(_store.meta_key_name(pk), *dead, *(f"{d}|seen" for d in dead))


def user_sessions(user: Any) -> list[UserSession]:
    """The live sessions of ``user`` (a user or a primary key), most recent first.

    Two round trips: the index, then the sessions themselves (an entry whose
    session expired, was deleted or now belongs to nobody is dropped and
    trimmed from the index).
    """
    _require_index()
    pk = _pk(user)
    client = connections.get_redis(_store.ROLE)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(_store.index_key_name(pk), _cutoff(), "+inf", withscores=True)
            pipe.hgetall(_store.meta_key_name(pk))
            entries, meta = pipe.execute()
        if not entries:
            return []
        with client.pipeline(transaction=False) as pipe:
            for member, _score in entries:
                pipe.get(_store.session_key_name(_text(member)))
                pipe.pttl(_store.session_key_name(_text(member)))
            replies = pipe.execute()
        live, dead = _build(pk, entries, meta, replies)
        if dead:
            with client.pipeline(transaction=False) as pipe:
                _forget(pipe, pk, dead)
                pipe.execute()
    except errors.REDIS_ERRORS as exc:
        raise (_store._unavailable(exc) or exc) from exc
    return live


async def auser_sessions(user: Any) -> list[UserSession]:
    """Async :func:`user_sessions` (native ``redis.asyncio``)."""
    _require_index()
    pk = _pk(user)
    client = connections.get_async_redis(_store.ROLE)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(_store.index_key_name(pk), _cutoff(), "+inf", withscores=True)
            pipe.hgetall(_store.meta_key_name(pk))
            entries, meta = await pipe.execute()
        if not entries:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for member, _score in entries:
                pipe.get(_store.session_key_name(_text(member)))
                pipe.pttl(_store.session_key_name(_text(member)))
            replies = await pipe.execute()
        live, dead = _build(pk, entries, meta, replies)
        if dead:
            async with client.pipeline(transaction=False) as pipe:
                _forget(pipe, pk, dead)
                await pipe.execute()
    except errors.REDIS_ERRORS as exc:
        raise (_store._unavailable(exc) or exc) from exc
    return live


def _keep_key(keep: Any) -> str | None:
    if isinstance(keep, SessionBase):
        return keep.session_key
    return keep


# Ends the sessions given in KEYS[3..] and forgets the index entries given in
# ARGV[2..], then answers the index's other members (but ARGV[1], the session
# to keep): sessions that appeared since the caller read the index. cycle_key()
# moves an entry to its new key in the same script as the rename, so a session
# is always either among those given or among those answered. Idempotent: a
# re-sent call ends nothing more. Returns {ended, others}.
LOGOUT = Script(
    """
local ended = 0
for i = 3, #KEYS do
  ended = ended + redis.call('UNLINK', KEYS[i])
end
local given = {}
for i = 2, #ARGV do
  local m = ARGV[i]
  given[m] = true
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m, m .. '|seen')
end
local others = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= ARGV[1] and not given[m] then others[#others + 1] = m end
end
return {ended, others}
"""
)

# Rounds of logout_everywhere: each one ends what the one before found new.
_LOGOUT_ROUNDS = 20


def _logout_plan(
    pk: str, keep_key: str | None, members: list[str], raws: list[Any]
) -> tuple[list[str], list[str]]:
    owned = [m for m, raw in zip(members, raws, strict=True) if _owned_by(raw, pk)]
    keys = [_store.index_key_name(pk), _store.meta_key_name(pk)]
    keys += [_store.session_key_name(m) for m in owned]
    return keys, [keep_key or "", *members]


def logout_everywhere(user: Any, keep: Any = None) -> int:
    """End every session of ``user`` except ``keep`` (a session key or store); returns how many.

    Only sessions that still belong to the user are deleted; the index
    entries of all of them go. A session whose key changes meanwhile
    (``cycle_key()`` in a concurrent login or password change) is ended under
    its new key: the last step is a script that also reports what is new.
    """
    _require_index()
    pk = _pk(user)
    keep_key = _keep_key(keep)
    client = connections.get_redis(_store.ROLE)
    ended = 0
    seen: set[str] = set()
    try:
        members = [_text(m) for m in client.zrange(_store.index_key_name(pk), 0, -1)]
        members = [m for m in members if m != keep_key]
        for _ in range(_LOGOUT_ROUNDS):
            if not members:
                break
            with client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.get(_store.session_key_name(member))
                raws = pipe.execute()
            keys, args = _logout_plan(pk, keep_key, members, raws)
            count, others = LOGOUT(client, keys, args)
            ended += int(count)
            seen.update(members)
            members = [m for m in map(_text, others) if m not in seen]
    except errors.REDIS_ERRORS as exc:
        raise (_store._unavailable(exc) or exc) from exc
    return ended


async def alogout_everywhere(user: Any, keep: Any = None) -> int:
    """Async :func:`logout_everywhere` (native ``redis.asyncio``)."""
    _require_index()
    pk = _pk(user)
    keep_key = _keep_key(keep)
    client = connections.get_async_redis(_store.ROLE)
    ended = 0
    seen: set[str] = set()
    try:
        members = [_text(m) for m in await client.zrange(_store.index_key_name(pk), 0, -1)]
        members = [m for m in members if m != keep_key]
        for _ in range(_LOGOUT_ROUNDS):
            if not members:
                break
            async with client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.get(_store.session_key_name(member))
                raws = await pipe.execute()
            keys, args = _logout_plan(pk, keep_key, members, raws)
            count, others = await LOGOUT.acall(client, keys, args)
            ended += int(count)
            seen.update(members)
            members = [m for m in map(_text, others) if m not in seen]
    except errors.REDIS_ERRORS as exc:
        raise (_store._unavailable(exc) or exc) from exc
    return ended


def _index_prefix() -> str:
    return conf.make_key(_store.ROLE, "u", "")


def _index_pattern() -> str:
    # Escaped: a KEY_PREFIX "tenant[1]" must not match (and trim) "tenant1:...".
    return conf.glob_escape(_index_prefix()) + "*"


def trim_indexes() -> int:
    """Drop expired entries from every user index (``clearsessions``); returns how many."""
    client = connections.get_redis(_store.ROLE)
    now = f"{_cutoff():.3f}"
    prefix = _index_prefix()
    trimmed = 0
    for key in client.scan_iter(match=_index_pattern(), count=500, _type="zset"):
        if not _text(key).startswith(prefix):
            continue  # anchored: only our own indexes
        pk = _text(key)[len(prefix) :]
        keys = [_text(key), _store.meta_key_name(pk)]
        trimmed += int(_store.TRIM(client, keys, [now]))
    return trimmed


async def atrim_indexes() -> int:
    """Async :func:`trim_indexes`."""
    client = connections.get_async_redis(_store.ROLE)
    now = f"{_cutoff():.3f}"
    prefix = _index_prefix()
    trimmed = 0
    async for key in client.scan_iter(match=_index_pattern(), count=500, _type="zset"):
        if not _text(key).startswith(prefix):
            continue
        pk = _text(key)[len(prefix) :]
        keys = [_text(key), _store.meta_key_name(pk)]
        trimmed += int(await _store.TRIM.acall(client, keys, [now]))
    return trimmed


# -- signals -------------------------------------------------------------------
def client_ip(request: HttpRequest) -> str | None:
    """The client address Django saw (REMOTE_ADDR; put a trusted proxy fixer in front)."""
    return request.META.get("REMOTE_ADDR") or None


@receiver(user_logged_in, dispatch_uid="django_redisroles.sessions.login")
def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if not isinstance(session, _store.SessionStore) or request is None:
        return
    session._rr_login_meta = {
        "ip": client_ip(request),
        "ua": str(request.META.get("HTTP_USER_AGENT", ""))[:_MAX_UA],
        "created": round(time.time(), 3),
    }
    # login() changed the session, so it is saved at the end of the request
    # (one round trip, the index update included). Make sure, in case a
    # custom login flow left it unmodified.
    session.modified = True


@receiver(user_logged_out, dispatch_uid="django_redisroles.sessions.logout")
def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if not isinstance(session, _store.SessionStore) or user is None:
        return
    # logout() flushes the session next; the flush removes the index entry
    # of the user recorded here (even if the session was never loaded).
    session._rr_uid = _pk(user)
