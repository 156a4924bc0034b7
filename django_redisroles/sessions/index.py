"""Per-user session index: list a user's live sessions, end them, without a database.

The index is written by the session store itself, in the same Lua script as
the session (``lua/save.lua``); the ``user_logged_in`` receiver below only
hands the login metadata (IP, user agent, time) to the session, and the
``user_logged_out`` receiver makes sure the ending session leaves the index.
Both talk to the store through :class:`IndexedSession`, which the store
implements. Stale entries (expired or ended elsewhere) are trimmed lazily: on
each save, on each listing, and by ``manage.py clearsessions``.

Each operation is written once, as a *flow*: a generator that yields the
requests to send (a command, a pipeline, a script call) and gets their replies
back. :func:`_run` sends them on the sync client, :func:`_arun` on the asyncio
one: the sync and async functions are one line each, and no rule is written twice.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from .. import clientip, connections, errors
from ..scripts import Script
from . import keys
from .devices import UserSession, session_of
from .options import OPTIONS, ROLE
from .outage import unavailable

__all__ = [
    "IndexedSession",
    "LoginMeta",
    "UserSession",
    "alogout_everywhere",
    "apassword_changed",
    "atrim_indexes",
    "auser_sessions",
    "logout_everywhere",
    "password_changed",
    "trim_indexes",
    "user_sessions",
]

T = TypeVar("T")

_LUA = Path(__file__).parent / "lua"
LOGOUT = Script((_LUA / "logout.lua").read_text())
TRIM = Script((_LUA / "trim.lua").read_text())

# Rounds of logout_everywhere: each one ends what the one before found new.
_LOGOUT_ROUNDS = 20
_MAX_UA = 512


# -- what the receivers need from a session store ------------------------------------
class LoginMeta(TypedDict):
    """Shown by :func:`user_sessions`: where and when the session logged in."""

    ip: str | None
    ua: str
    created: float


class IndexedSession:
    """The index's side of a session store: what the login/logout receivers tell it.

    ``SessionStore`` implements it; the receivers ignore any other session.
    """

    def record_login(self, meta: LoginMeta) -> None:
        """``login()`` happened: write ``meta`` with the next save (which must happen)."""
        raise NotImplementedError

    def record_logout(self, user_pk: str) -> None:
        """``logout()`` is about to flush the session of user ``user_pk``: leave the index too."""
        raise NotImplementedError


# -- flows and their runners ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command: a client method and its arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    """One script call."""

    script: Script
    keys: list[str]
    args: list[Any]


class Masters:
    """What to scan: ``[None]`` (the client) on one server, each master of a cluster."""


#: A command, commands sent as one pipeline (not a transaction), a script call, the masters.
Request = Command | list[Command] | Call | Masters
Flow = Generator[Request, Any, T]


def _cmd(name: str, *args: Any, **kwargs: Any) -> Command:
    return Command(name, args, tuple(kwargs.items()))


def _send(client: Any, request: Request) -> Any:
    if isinstance(request, Masters):
        return client.get_primaries() if keys.sharded() else [None]
    if isinstance(request, Call):
        return request.script(client, request.keys, request.args)
    if isinstance(request, Command):
        return getattr(client, request.name)(*request.args, **dict(request.kwargs))
    with client.pipeline(transaction=False) as pipe:
        for c in request:
            getattr(pipe, c.name)(*c.args, **dict(c.kwargs))
        return pipe.execute()


async def _asend(client: Any, request: Request) -> Any:
    if isinstance(request, Masters):
        if keys.sharded():
            await client.initialize()  # a no-op once the slot map is known
        return client.get_primaries() if keys.sharded() else [None]
    if isinstance(request, Call):
        return await request.script.acall(client, request.keys, request.args)
    if isinstance(request, Command):
        return await getattr(client, request.name)(*request.args, **dict(request.kwargs))
    async with client.pipeline(transaction=False) as pipe:
        for c in request:
            getattr(pipe, c.name)(*c.args, **dict(c.kwargs))
        return await pipe.execute()


def _run(flow: Flow[T]) -> T:
    """Run ``flow`` on the sessions role's sync client."""
    try:
        request = next(flow)
        client = connections.get_redis(ROLE)
        while True:
            request = flow.send(_send(client, request))
    except StopIteration as done:
        value: T = done.value
        return value
    except errors.REDIS_ERRORS as exc:
        raise (unavailable(exc) or exc) from exc


async def _arun(flow: Flow[T]) -> T:
    """Run ``flow`` on the sessions role's ``redis.asyncio`` client."""
    try:
        request = next(flow)
        client = connections.get_async_redis(ROLE)
        while True:
            request = flow.send(await _asend(client, request))
    except StopIteration as done:
        value: T = done.value
        return value
    except errors.REDIS_ERRORS as exc:
        raise (unavailable(exc) or exc) from exc


# -- listing -------------------------------------------------------------------------
def _pk(user: object) -> str:
    return str(getattr(user, "pk", user))


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _cutoff() -> float:
    """Index scores below this belong to sessions that have surely expired."""
    return time.time() - OPTIONS.get().index_refresh


def _require_index() -> None:
    # Without the index there is no way to find a user's sessions: saying
    # "none" (or "ended 0") would be a silent lie about a security action.
    if not OPTIONS.get().user_index:
        raise ImproperlyConfigured(
            'The per-user session index is off (REDISROLES["ROLES"]["sessions"]["USER_INDEX"] '
            "= False): user_sessions() and logout_everywhere() cannot find a user's sessions."
        )


def _forget(pk: str, dead: Iterable[str]) -> list[Command]:
    dead = list(dead)
    return [
        _cmd("zrem", keys.index_key_name(pk), *dead),
        _cmd("hdel", keys.meta_key_name(pk), *dead, *(f"{d}|seen" for d in dead)),
    ]


def _listing(user: object) -> Flow[list[UserSession]]:
    """Two round trips: the index, then the sessions themselves (and a third to trim)."""
    _require_index()
    pk = _pk(user)
    entries, meta = yield [
        _cmd("zrangebyscore", keys.index_key_name(pk), _cutoff(), "+inf", withscores=True),
        _cmd("hgetall", keys.meta_key_name(pk)),
    ]
    if not entries:
        return []
    requests = []
    for member, _score in entries:
        requests += [
            _cmd("get", keys.session_key_name(_text(member))),
            _cmd("pttl", keys.session_key_name(_text(member))),
        ]
    replies = yield requests
    codec = keys.serializer()
    live: list[UserSession] = []
    dead: list[str] = []
    now = time.time()
    for i, (member, _score) in enumerate(entries):
        raw, pttl = replies[2 * i], replies[2 * i + 1]
        if keys.owned_by(raw, pk, codec):
            live.append(session_of(_text(member), meta, member, pttl, now))
        else:
            dead.append(_text(member))
    if dead:
        yield _forget(pk, dead)
    live.sort(key=lambda s: s.last_seen or s.created or s.expires, reverse=True)
    return live


def user_sessions(user: object) -> list[UserSession]:
    """The live sessions of ``user`` (a user or a primary key), most recent first.

    An entry whose session expired, was deleted or now belongs to nobody is
    dropped and trimmed from the index.
    """
    return _run(_listing(user))


async def auser_sessions(user: object) -> list[UserSession]:
    """Async :func:`user_sessions` (native ``redis.asyncio``)."""
    return await _arun(_listing(user))


# -- ending sessions -----------------------------------------------------------------
def _logout(user: object, keep: SessionBase | str | None) -> Flow[int]:
    _require_index()
    pk = _pk(user)
    keep_key = keep.session_key if isinstance(keep, SessionBase) else keep
    members = [_text(m) for m in (yield _cmd("zrange", keys.index_key_name(pk), 0, -1))]
    members = [m for m in members if m != keep_key]
    ended = 0
    seen: set[str] = set()
    codec: keys.Codec | None = None
    for _ in range(_LOGOUT_ROUNDS):
        if not members:
            break
        raws = yield [_cmd("get", keys.session_key_name(m)) for m in members]
        codec = codec or keys.serializer()
        owned = [m for m, raw in zip(members, raws, strict=True) if keys.owned_by(raw, pk, codec)]
        script_keys = [keys.index_key_name(pk), keys.meta_key_name(pk)]
        script_keys += [keys.session_key_name(m) for m in owned]
        count, others = yield Call(LOGOUT, script_keys, [keep_key or "", *members])
        ended += int(count)
        seen.update(members)
        members = [m for m in map(_text, others) if m not in seen]
    return ended


def logout_everywhere(user: object, keep: SessionBase | str | None = None) -> int:
    """End every session of ``user`` except ``keep`` (a session key or store); returns how many.

    Only sessions that still belong to the user are deleted; the index
    entries of all of them go. A session whose key changes meanwhile
    (``cycle_key()`` in a concurrent login or password change) is ended under
    its new key: the last step is a script that also reports what is new.
    """
    return _run(_logout(user, keep))


async def alogout_everywhere(user: object, keep: SessionBase | str | None = None) -> int:
    """Async :func:`logout_everywhere` (native ``redis.asyncio``)."""
    return await _arun(_logout(user, keep))


def _fallback_hash_of(user: Any, old_hash: str) -> bool:
    hashes = getattr(user, "get_session_auth_fallback_hash", None)
    if user is None or hashes is None:
        return False
    return any(constant_time_compare(old_hash, h) for h in hashes())


def _user_query(uid: str) -> Any:
    model = get_user_model()
    try:
        pk = model._meta.pk.to_python(uid)
    except ValidationError:
        return None
    return model._default_manager.filter(pk=pk)


def password_changed(uid: str, old_hash: str, keep: str | None) -> None:
    """User ``uid``'s auth hash changed in session ``keep``: end the user's other sessions.

    Unless it is a ``SECRET_KEY`` rotation, not a password change: Django
    re-hashes a session verified with a ``SECRET_KEY_FALLBACKS`` key
    (``cycle_key()`` and a new hash: the same calls as
    ``update_session_auth_hash()``), and ending the user's other sessions then
    would log every user out of all but one device. Only with fallbacks
    configured does this cost a query.
    """
    if getattr(settings, "SECRET_KEY_FALLBACKS", None):
        query = _user_query(uid)
        if query is not None and _fallback_hash_of(query.first(), old_hash):
            return
    logout_everywhere(uid, keep=keep)


async def apassword_changed(uid: str, old_hash: str, keep: str | None) -> None:
    """Async :func:`password_changed`."""
    if getattr(settings, "SECRET_KEY_FALLBACKS", None):
        query = _user_query(uid)
        if query is not None and _fallback_hash_of(await query.afirst(), old_hash):
            return
    await alogout_everywhere(uid, keep=keep)


# -- trimming ------------------------------------------------------------------------
def _trim() -> Flow[int]:
    cutoff = f"{_cutoff():.3f}"
    prefix = keys.index_prefix()
    trimmed = 0
    for node in (yield Masters()):  # a cluster: every master, each with its cursor
        target = {} if node is None else {"target_nodes": node}
        cursor: Any = 0
        while True:
            cursor, found = yield _cmd(
                "scan", cursor, match=keys.index_pattern(), count=500, _type="zset", **target
            )
            if node is not None:
                cursor = cursor[node.name]
            for key in map(_text, found):
                if key.startswith(prefix):  # anchored: only our own indexes
                    script_keys = [key, keys.meta_of_index(key)]
                    trimmed += int((yield Call(TRIM, script_keys, [cutoff])))
            if not int(cursor):
                break
    return trimmed


def trim_indexes() -> int:
    """Drop expired entries from every user index (``clearsessions``); returns how many."""
    return _run(_trim())


async def atrim_indexes() -> int:
    """Async :func:`trim_indexes`."""
    return await _arun(_trim())


# -- signals -------------------------------------------------------------------------
def _login_ip(request: HttpRequest) -> str | None:
    """The client's address as the proxy-aware ``clientip.client_ip`` sees it (behind a
    ``TRUSTED_PROXIES`` proxy, the address it forwarded); None when there is none."""
    ip = clientip.client_ip(request)
    return None if ip == "unknown" else ip


@receiver(user_logged_in, dispatch_uid="django_redisroles.sessions.login")
def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if not isinstance(session, IndexedSession) or request is None:
        return
    # login() changed the session, so it is saved at the end of the request
    # (one round trip, the index update included).
    ua = str(request.META.get("HTTP_USER_AGENT", ""))[:_MAX_UA]
    session.record_login({"ip": _login_ip(request), "ua": ua, "created": round(time.time(), 3)})


@receiver(user_logged_out, dispatch_uid="django_redisroles.sessions.logout")
def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if not isinstance(session, IndexedSession) or user is None:
        return
    # logout() flushes the session next; the flush removes the index entry
    # of the user recorded here (even if the session was never loaded).
    session.record_logout(_pk(user))
