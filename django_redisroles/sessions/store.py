"""The Redis session store: one String per session, one round trip per load and save.

Layout (all under ``conf.make_key("sessions", ...)``, every key with a TTL):

- ``<prefix>:sessions:s:<session key>``: ``rr1 <index score>\n`` + the session
  serialized with ``SESSION_SERIALIZER`` (JSON by default; never pickle).
  TTL = the session's expiry age.
- ``<prefix>:sessions:u:<user pk>``: sorted set of that user's session keys,
  scored by expiry time (Unix seconds). TTL = the latest expiry + INDEX_REFRESH.
- ``<prefix>:sessions:m:<user pk>``: hash of metadata per session key (``<key>``:
  JSON ``{ip, ua, created}``, ``<key>|seen``: last index write). Same TTL.

A save is one request: ``SET NX`` (create) or ``SET XX`` (update) with ``EX``,
or, when the user index must be written too (login, ``cycle_key``, an entry
that would lag by more than INDEX_REFRESH seconds), the ``SAVE`` Lua script
doing the same SET and the index update atomically. Either way a save never
recreates a session a concurrent logout deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import time
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.crypto import constant_time_compare, get_random_string

from .. import conf, connections, errors
from ..scripts import Script

logger = logging.getLogger("django_redisroles.sessions")

ROLE = "sessions"

# Session keys we generate are 32 chars of [a-z0-9]; accept any 8-128 chars of
# [A-Za-z0-9_-] (custom key generators, Django's own tests). Anything else
# (a forged or mangled cookie) is treated as "no session": a new session
# starts and Redis is never asked about it.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,128}")


class SessionUnavailable(RuntimeError):
    """The sessions role's Redis cannot be reached (or cannot write right now).

    Distinct from "session not found": the session is neither replaced by an
    empty one nor deleted, and the user's cookie is kept. With
    ``django_redisroles.sessions.SessionMiddleware`` the request gets a 503.
    ``failure`` is the classified Redis error (``errors.Failure``).
    """

    failure: errors.Failure | None = None


def _unavailable(exc: BaseException) -> SessionUnavailable | None:
    """The ``SessionUnavailable`` for an outage or a refusal; None for a bug (raised as is)."""
    failure = errors.classify(exc)
    if failure is None or failure.bug:
        return None
    url = conf.mask_url(conf.role_url(ROLE))
    error = SessionUnavailable(
        f"The Redis of the sessions role ({url}) is unavailable: {failure.describe()} "
        "The session was left untouched."
    )
    error.failure = failure
    return error


# KEYS: session, old session (cycle_key) or session, user index or session, meta or session,
#       then the session keys of the MAX_SESSIONS candidates (oldest first)
# ARGV: mode ("c" create | "u" update), data, ttl, now, key, old key ("" = none),
#       index ("1" | "0"), login metadata JSON ("" = keep), index score (the
#       session's expiry time), grace (INDEX_REFRESH seconds), MAX_SESSIONS ("0" = no cap),
#       then per candidate: index member, SHA1 of its session as read ("" = missing),
#       "1" if it belonged to this user
# Returns 1 saved, 0 create failed (key taken), -1 update failed (session gone),
# -2 cycle_key failed (the old session is gone), -3 too few of the candidates are
# still there unchanged (read again and retry: nothing was written).
SAVE = Script(
    """
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local sk, old, indexed = ARGV[5], ARGV[6], ARGV[7] == '1'
if ttl <= 0 then
  -- Already expired (an expiry date in the past): the session ends now,
  -- under its old key too (cycle_key).
  redis.call('UNLINK', KEYS[1])
  if old ~= '' then
    redis.call('UNLINK', KEYS[2])
  end
  if indexed then
    redis.call('ZREM', KEYS[3], sk)
    redis.call('HDEL', KEYS[4], sk, sk .. '|seen')
    if old ~= '' then
      redis.call('ZREM', KEYS[3], old)
      redis.call('HDEL', KEYS[4], old, old .. '|seen')
    end
  end
  return 1
end
if old ~= '' and redis.call('EXISTS', KEYS[2]) == 0 then
  -- A retry of this very call (the reply to the first one was lost): done.
  if redis.call('GET', KEYS[1]) == ARGV[2] then return 1 end
  -- cycle_key() of a session deleted meanwhile (a logout elsewhere): do not
  -- bring it back under a new key.
  return -2
end
-- MAX_SESSIONS: the user's oldest sessions beyond the cap end with this save,
-- atomically. They were read (and their owner checked) before; they must not
-- have changed since, or nothing is written and the caller reads again.
local cap = tonumber(ARGV[11] or '0')
local victims = {}
if indexed and cap > 0 then
  local grace = tonumber(ARGV[10])
  local others = {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], now - grace, '+inf')) do
    if m ~= sk and m ~= old then others[#others + 1] = m end
  end
  local excess = #others + 1 - cap
  if excess > 0 then
    local declared = {}
    for i = 12, #ARGV, 3 do
      declared[ARGV[i]] = {4 + (i - 9) / 3, ARGV[i + 1], ARGV[i + 2]}
    end
    -- Oldest first, among the entries read and unchanged since: one added by a
    -- concurrent login, or saved since, is passed over (the cap is what must
    -- hold; "oldest" among entries of the same second is arbitrary anyway).
    for _, m in ipairs(others) do
      if #victims == excess then break end
      local d = declared[m]
      if d then
        local value = redis.call('GET', KEYS[d[1]])
        local sha = ''
        if value then sha = redis.sha1hex(value) end
        if sha == d[2] then
          victims[#victims + 1] = {m, d[1], d[3] == '1' and value}
        end
      end
    end
    if #victims < excess then return -3 end
  end
end
local ok
if ARGV[1] == 'c' then
  ok = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ttl)
else
  ok = redis.call('SET', KEYS[1], ARGV[2], 'XX', 'EX', ttl)
end
if not ok then
  if ARGV[1] == 'c' then
    -- A re-sent create whose first send did run: ours, not a collision.
    if redis.call('GET', KEYS[1]) == ARGV[2] then return 1 end
    return 0
  end
  return -1
end
local moved = false
if old ~= '' then
  redis.call('UNLINK', KEYS[2])
end
if indexed then
  if old ~= '' then
    redis.call('ZREM', KEYS[3], old)
    local m = redis.call('HGET', KEYS[4], old)
    if m and ARGV[8] == '' then
      redis.call('HSET', KEYS[4], sk, m)
      moved = true
    end
    redis.call('HDEL', KEYS[4], old, old .. '|seen')
  end
  local grace = tonumber(ARGV[10])
  for _, v in ipairs(victims) do
    if v[3] then redis.call('UNLINK', KEYS[v[2]]) end
    redis.call('ZREM', KEYS[3], v[1])
    redis.call('HDEL', KEYS[4], v[1], v[1] .. '|seen')
  end
  redis.call('ZADD', KEYS[3], ARGV[9], sk)
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[4], sk, ARGV[8], sk .. '|seen', ARGV[4])
  else
    redis.call('HSET', KEYS[4], sk .. '|seen', ARGV[4])
  end
  -- Lazy trimming: entries whose session has surely expired (a score may
  -- lag the real expiry by up to `grace` seconds, see INDEX_REFRESH).
  local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - grace)
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - grace)
    for _, d in ipairs(dead) do
      redis.call('HDEL', KEYS[4], d, d .. '|seen')
    end
  end
  -- The index lives as long as its longest-lived session.
  local top = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local at = math.ceil(tonumber(top[2])) + grace
  redis.call('EXPIREAT', KEYS[3], at)
  redis.call('EXPIREAT', KEYS[4], at)
end
return 1
"""
)

# KEYS: session, user index, meta; ARGV: key. Returns the number of sessions removed.
DELETE_INDEXED = Script(
    """
local n = redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1], ARGV[1] .. '|seen')
return n
"""
)

# KEYS: user index, meta; ARGV: cutoff (now - grace). Trims expired entries; returns how many.
TRIM = Script(
    """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  for _, d in ipairs(dead) do
    redis.call('HDEL', KEYS[2], d, d .. '|seen')
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('UNLINK', KEYS[1], KEYS[2])
end
return #dead
"""
)


# Stored value: b"rr1 <index score>[ <nonce>]\n" + the serialized session. The
# score is the session's expiry as last written to the user index (0: not
# indexed); it lets a save skip the index update while the index is still
# accurate to INDEX_REFRESH seconds, without an extra read. A create writes a
# random nonce too, so a re-sent create (after a timeout) tells its own value
# from another one that happens to hold the same data.
HEADER = b"rr1 "


def split_stored(raw: bytes) -> tuple[int, bytes]:
    """(index score, serialized session) of a stored value."""
    if raw.startswith(HEADER):
        end = raw.find(b"\n")
        if end > 0:
            try:
                return int(raw[len(HEADER) : end].split(b" ", 1)[0]), raw[end + 1 :]
            except ValueError:
                pass
    return 0, raw


def owned_by(raw: bytes | None, pk: str) -> bool:
    """Whether stored session data still belongs to user ``pk``."""
    if raw is None:
        return False
    serializer = SessionStore()._serializer()  # a pickle-based one raises
    try:
        data = serializer.loads(split_stored(raw)[1])
    except Exception:  # noqa: BLE001 - corrupt data belongs to nobody
        return False
    return isinstance(data, dict) and str(data.get(SESSION_KEY)) == pk


def pickle_based(serializer_path: str) -> bool:
    """Whether a ``SESSION_SERIALIZER`` path names a pickle-based serializer."""
    return "pickle" in serializer_path.lower()


def session_key_name(session_key: str) -> str:
    """The Redis key holding a session."""
    return conf.make_key(ROLE, "s", session_key)


def index_key_name(user_pk: Any) -> str:
    """The Redis sorted set indexing a user's sessions."""
    return conf.make_key(ROLE, "u", str(user_pk))


def meta_key_name(user_pk: Any) -> str:
    """The Redis hash holding metadata of a user's sessions."""
    return conf.make_key(ROLE, "m", str(user_pk))


def index_enabled() -> bool:
    return bool(conf.get(ROLE, "USER_INDEX"))


def index_refresh() -> int:
    """Seconds a user-index entry may lag behind its session (``INDEX_REFRESH``)."""
    return max(0, int(conf.get(ROLE, "INDEX_REFRESH")))


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


def _rotated(uid: str, old_hash: str) -> bool:
    """Whether a changed auth hash is a ``SECRET_KEY`` rotation, not a password change.

    Django re-hashes a session verified with a ``SECRET_KEY_FALLBACKS`` key
    (``cycle_key()`` and a new hash: the same calls as
    ``update_session_auth_hash()``). Ending the user's other sessions then
    would log every user out of all but one device on a key rotation. Only
    with fallbacks configured does this cost a query, and only on a hash change.
    """
    if not getattr(settings, "SECRET_KEY_FALLBACKS", None):
        return False
    query = _user_query(uid)
    return query is not None and _fallback_hash_of(query.first(), old_hash)


async def _arotated(uid: str, old_hash: str) -> bool:
    """Async :func:`_rotated`."""
    if not getattr(settings, "SECRET_KEY_FALLBACKS", None):
        return False
    query = _user_query(uid)
    return query is not None and _fallback_hash_of(await query.afirst(), old_hash)


class _Plan:
    """One save, as a single Redis request: a plain SET, an UNLINK, or the SAVE script."""

    __slots__ = ("args", "cap", "key", "keys", "kind", "nx", "score", "ttl", "uid", "value")

    def __init__(self, kind: str, uid: str | None, score: int) -> None:
        self.cap = 0  # MAX_SESSIONS to enforce with this save (a new index entry), 0: none
        self.kind = kind
        self.uid = uid
        self.score = score
        self.key = ""
        self.value = b""
        self.ttl = 0
        self.nx = False
        self.keys: list[str] = []
        self.args: list[Any] = []


#: Tries of a capped save whose candidates changed under it (concurrent logins).
#: Logins of one account racing in 8 processes on 2 cores lost 3 tries in a row
#: now and then (each try is 2 round trips, only when they race); 7 they do not.
_CAP_ATTEMPTS = 8


def _cap_retry(plan: _Plan, attempt: int) -> None:
    """After a -3 (stale candidates): read again; the last try saves without the cap."""
    if attempt == _CAP_ATTEMPTS - 2:
        # Never fail a login over the cap: save; the next login trims the excess.
        logger.warning("MAX_SESSIONS: the user's sessions kept changing; saved without the cap")
        plan.cap = 0
        plan.keys, plan.args = plan.keys[:4], plan.args[:11]
        plan.args[10] = "0"


class _AsyncAccessors:
    """Django 5.0's async session accessors, for Django 4.2 (which has none).

    Only mixed in when ``SessionBase`` lacks them, so Django 5+ keeps its own.
    """

    _rr_aget_session: Any
    modified: bool

    async def aget(self, key: str, default: Any = None) -> Any:
        return (await self._rr_aget_session()).get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        (await self._rr_aget_session())[key] = value
        self.modified = True

    async def apop(self, key: str, *default: Any) -> Any:
        session = await self._rr_aget_session()
        self.modified = self.modified or key in session
        return session.pop(key, *default)

    async def asetdefault(self, key: str, value: Any) -> Any:
        session = await self._rr_aget_session()
        if key in session:
            return session[key]
        await self.aset(key, value)
        return value

    async def aupdate(self, dict_: dict[str, Any]) -> None:
        (await self._rr_aget_session()).update(dict_)
        self.modified = True

    async def ahas_key(self, key: str) -> bool:
        return key in (await self._rr_aget_session())

    async def akeys(self) -> Any:
        return (await self._rr_aget_session()).keys()

    async def avalues(self) -> Any:
        return (await self._rr_aget_session()).values()

    async def aitems(self) -> Any:
        return (await self._rr_aget_session()).items()

    async def aset_expiry(self, value: Any) -> None:
        await self._rr_aget_session()
        self.set_expiry(value)  # type: ignore[attr-defined]  # loaded: no I/O

    async def aget_expiry_date(self, **kwargs: Any) -> Any:
        await self._rr_aget_session()
        return self.get_expiry_date(**kwargs)  # type: ignore[attr-defined]

    async def aset_test_cookie(self) -> None:
        await self.aset(SessionBase.TEST_COOKIE_NAME, SessionBase.TEST_COOKIE_VALUE)

    async def atest_cookie_worked(self) -> bool:
        return (await self.aget(SessionBase.TEST_COOKIE_NAME)) == SessionBase.TEST_COOKIE_VALUE

    async def adelete_test_cookie(self) -> None:
        del (await self._rr_aget_session())[SessionBase.TEST_COOKIE_NAME]
        self.modified = True


_COMPAT: tuple[type, ...] = () if hasattr(SessionBase, "aget") else (_AsyncAccessors,)


class SessionStore(*_COMPAT, SessionBase):  # type: ignore[misc]
    """Django session store on the sessions role's Redis (sync and async)."""

    def __init__(self, session_key: str | None = None) -> None:
        # What the stored session says about its user, as last loaded/saved:
        # the user index needs the user of a session we delete, and a changed
        # auth hash for the same user means "password changed".
        self._rr_uid: str | None = None
        self._rr_hash: str | None = None
        # Login metadata (IP, user agent, time) set by the user_logged_in
        # receiver, written with the next save.
        self._rr_login_meta: dict[str, Any] | None = None
        # The user-index score stored with the session (0 = none/unknown).
        self._rr_score = 0
        # The SessionUnavailable this store raised, if any (read by our middleware).
        self._rr_outage: SessionUnavailable | None = None
        super().__init__(session_key)

    # -- keys ----------------------------------------------------------------
    def _validate_session_key(self, key: Any) -> bool:
        return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None

    @staticmethod
    def _new_key() -> str:
        # No EXISTS round trip: SET NX refuses a (practically impossible) collision.
        return get_random_string(32, VALID_KEY_CHARS)

    def _get_new_session_key(self) -> str:
        return self._new_key()

    async def _aget_new_session_key(self) -> str:
        return self._new_key()

    # -- data ----------------------------------------------------------------
    def _serializer(self) -> Any:
        """A ``SESSION_SERIALIZER`` instance; never a pickle-based one.

        Check ``redisroles.E020`` reports it at start-up, but checks can be
        silenced and do not run under a WSGI/ASGI server: refuse here too,
        rather than unpickle what anyone able to write to Redis put there.
        """
        cls = self.serializer
        path = f"{cls.__module__}.{cls.__qualname__}"
        if pickle_based(path):
            raise ImproperlyConfigured(
                f"SESSION_SERIALIZER is {path!r}: the Redis session engine never unpickles. "
                'Use "django.contrib.sessions.serializers.JSONSerializer" (see redisroles.E020).'
            )
        return cls()

    def _encode(self, data: dict[str, Any]) -> bytes:
        encoded = self._serializer().dumps(data)
        return encoded.encode() if isinstance(encoded, str) else encoded

    def _decode(self, raw: bytes) -> dict[str, Any]:
        serializer = self._serializer()
        try:
            data = serializer.loads(raw)
        except Exception:  # noqa: BLE001 - corrupted data: an empty session, like Django's
            logging.getLogger("django.security.SuspiciousSession").warning("Session data corrupted")
            return {}
        return data if isinstance(data, dict) else {}

    def _loaded(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            # Not found (expired, deleted, never existed): a new session,
            # never a record created on load.
            self._session_key = None
            self._rr_uid = self._rr_hash = None
            self._rr_score = 0
            return {}
        self._rr_score, payload = split_stored(raw)
        data = self._decode(payload)
        uid = data.get(SESSION_KEY)
        self._rr_uid = None if uid is None else str(uid)
        self._rr_hash = data.get(HASH_SESSION_KEY)
        return data

    def _plan_save(
        self, data: dict[str, Any], must_create: bool, old_key: str | None = None
    ) -> _Plan:
        session_key = self.session_key or ""  # callers create a key first
        now = time.time()
        ttl = int(self.get_expiry_age(expiry=data.get("_session_expiry")))
        uid = data.get(SESSION_KEY)
        uid = None if uid is None else str(uid)
        skey = session_key_name(session_key)
        role = conf.role_settings(ROLE)  # read once per save
        indexed = uid is not None and bool(role["USER_INDEX"])
        grace = max(0, int(role["INDEX_REFRESH"]))
        expiry = math.ceil(now + ttl)
        # The index needs writing on login (metadata), on create/cycle_key, for
        # a new user, or when the entry would lag the session by more than
        # INDEX_REFRESH seconds; other saves are a plain SET XX.
        index_write = indexed and (
            must_create
            or old_key is not None
            or ttl <= 0
            or self._rr_login_meta is not None
            or uid != self._rr_uid
            or not self._rr_score
            or expiry - self._rr_score >= grace
        )
        score = expiry if index_write else (self._rr_score if indexed else 0)
        head = HEADER + str(score).encode()
        if must_create:
            head += b" " + secrets.token_hex(4).encode()
        value = head + b"\n" + self._encode(data)
        if not index_write and old_key is None:
            if ttl <= 0:
                plan = _Plan("unlink", uid, 0)  # expired already: the session ends now
                plan.key = skey
                return plan
            plan = _Plan("set", uid, score)
            plan.key, plan.value, plan.ttl, plan.nx = skey, value, ttl, must_create
            return plan
        plan = _Plan("script", uid, score)
        plan.keys = [
            skey,
            session_key_name(old_key) if old_key else skey,
            index_key_name(uid) if indexed else skey,
            meta_key_name(uid) if indexed else skey,
        ]
        meta = ""
        if indexed and self._rr_login_meta is not None:
            meta = json.dumps(self._rr_login_meta, separators=(",", ":"))
        plan.args = [
            "c" if must_create else "u",
            value,
            ttl,
            f"{now:.3f}",
            session_key,
            old_key or "",
            "1" if indexed else "0",
            meta,
            score,
            grace,
            "0",
        ]
        cap = role.get("MAX_SESSIONS")
        new_entry = must_create or old_key is not None or uid != self._rr_uid
        if indexed and cap and ttl > 0 and new_entry:
            plan.cap = int(cap)  # a new entry in the user's index: the cap applies
            plan.args[10] = str(plan.cap)
        return plan

    @staticmethod
    def _cap_candidates(plan: _Plan, members: list[bytes]) -> list[str]:
        """The index entries that may have to end for ``plan`` (oldest first, with slack)."""
        plan.keys, plan.args = plan.keys[:4], plan.args[:11]
        mine = {plan.args[4], plan.args[5]}
        others = [m.decode() for m in members if m.decode() not in mine]
        excess = len(others) + 1 - plan.cap
        # A little slack: a concurrent login may add one more meanwhile.
        return others[: excess + 2] if excess > 0 else []

    @staticmethod
    def _declare(plan: _Plan, candidates: list[str], raws: list[bytes | None]) -> None:
        for member, raw in zip(candidates, raws, strict=True):
            plan.keys.append(session_key_name(member))
            sha = hashlib.sha1(raw).hexdigest() if raw is not None else ""
            owned = plan.uid is not None and owned_by(raw, plan.uid)
            plan.args += [member, sha, "1" if owned else "0"]

    def _cutoff_of(self, plan: _Plan) -> float:
        return float(plan.args[3]) - float(plan.args[9])

    @staticmethod
    def _result(plan: _Plan, reply: Any) -> int:
        if plan.kind == "set":
            if plan.nx:
                # SET NX GET: no old value, or our own value (a re-sent SET whose
                # first send did run), is a create; anything else a collision.
                return 1 if reply is None or reply == plan.value else 0
            return 1 if reply else -1
        if plan.kind == "unlink":
            return 1
        return int(reply)

    def _saved(self, result: int, data: dict[str, Any], plan: _Plan) -> tuple[str, str] | None:
        """Bookkeeping after a save; returns (user, old auth hash) when the auth hash changed.

        A changed hash means a password change (the user's other sessions must
        end) unless it is a ``SECRET_KEY`` rotation: see :func:`_rotated`.
        """
        if result == 0:
            raise CreateError
        if result == -1:
            raise UpdateError
        if result == -2:
            # Raised from cycle_key() (login(), update_session_auth_hash(), ...)
            # inside a view: a 400, as Django's middleware answers an UpdateError.
            raise SessionInterrupted(
                "The request's session was deleted before the request completed "
                "(the user may have been logged out in a concurrent request)."
            )
        uid = plan.uid
        new_hash = data.get(HASH_SESSION_KEY)
        password_changed = (
            uid is not None
            and uid == self._rr_uid
            and self._rr_hash is not None
            and new_hash is not None
            and new_hash != self._rr_hash
        )
        old_hash = self._rr_hash
        self._rr_uid, self._rr_hash = uid, new_hash
        self._rr_score = plan.score
        self._rr_login_meta = None
        # update_session_auth_hash() after a password change: this session
        # stays, the user's other sessions end now (Django would reject them
        # lazily on their next request anyway).
        if password_changed and index_enabled() and uid is not None and old_hash is not None:
            return uid, old_hash
        return None

    # -- sync API --------------------------------------------------------------
    def _redis(self) -> redis.Redis:
        return connections.get_redis(ROLE)

    def _call(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except errors.REDIS_ERRORS as exc:
            error = _unavailable(exc)
            if error is None:
                raise
            self._rr_outage = error
            raise error from exc

    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        raw = self._call(self._redis().get, session_key_name(self.session_key))
        return self._loaded(raw)

    def exists(self, session_key: str | None) -> bool:
        if session_key is None or not self._validate_session_key(session_key):
            return False
        return bool(self._call(self._redis().exists, session_key_name(session_key)))

    def create(self) -> None:
        for _ in range(100):
            self._session_key = self._new_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        self._write(data, must_create)

    def _run(self, plan: _Plan) -> Any:
        client = self._redis()
        if plan.kind == "set":
            if plan.nx:
                return client.set(plan.key, plan.value, ex=plan.ttl, nx=True, get=True)
            return client.set(plan.key, plan.value, ex=plan.ttl, xx=True)
        if plan.kind == "unlink":
            return client.unlink(plan.key)
        return SAVE(client, plan.keys, plan.args)

    def _read_candidates(self, plan: _Plan) -> None:
        client = self._redis()
        index = plan.keys[2]
        members = client.zrangebyscore(index, self._cutoff_of(plan), "+inf")
        candidates = self._cap_candidates(plan, members)
        if candidates:
            with client.pipeline(transaction=False) as pipe:
                for member in candidates:
                    pipe.get(session_key_name(member))
                raws = pipe.execute()
            self._declare(plan, candidates, raws)

    def _write(self, data: dict[str, Any], must_create: bool, old_key: str | None = None) -> None:
        plan = self._plan_save(data, must_create, old_key)
        for attempt in range(_CAP_ATTEMPTS):
            if plan.cap:
                self._call(self._read_candidates, plan)
            reply = self._call(self._run, plan)
            if plan.kind != "script" or int(reply) != -3:
                break
            _cap_retry(plan, attempt)
        changed = self._saved(self._result(plan, reply), data, plan)
        if changed is not None and not _rotated(*changed):
            from .index import logout_everywhere

            logout_everywhere(changed[0], keep=self.session_key)

    def _plan_delete(self, session_key: str) -> tuple[Any, list[str], list[Any]] | None:
        if self._rr_uid is not None and index_enabled():
            return (
                DELETE_INDEXED,
                [
                    session_key_name(session_key),
                    index_key_name(self._rr_uid),
                    meta_key_name(self._rr_uid),
                ],
                [session_key],
            )
        return None

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return  # never stored: nothing to delete
        plan = self._plan_delete(session_key)
        if plan is None:
            self._call(self._redis().unlink, session_key_name(session_key))
        else:
            script, keys, args = plan
            self._call(script, self._redis(), keys, args)

    def flush(self) -> None:
        super().flush()
        self._rr_uid = self._rr_hash = None
        self._rr_score = 0

    def cycle_key(self) -> None:
        """New session key, same data: one round trip (the old key is removed atomically)."""
        data = self._session
        old_key = self.session_key
        if old_key is None:
            self.create()
            self._session_cache = data
            return
        for _ in range(100):
            self._session_key = self._new_key()
            try:
                self._write(data, must_create=True, old_key=old_key)
            except CreateError:
                continue
            self._session_cache = data
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    @classmethod
    def clear_expired(cls) -> None:
        """Trim expired entries from the user indexes (Redis expires the sessions)."""
        from .index import trim_indexes

        trim_indexes()

    # -- async API (native: redis.asyncio, no thread hop) ----------------------
    # Written against SessionBase of Django 4.2 too, which has no async API:
    # only our own helpers are used here.
    def _aredis(self) -> Any:
        return connections.get_async_redis(ROLE)

    async def _acall(self, func: Any, *args: Any) -> Any:
        try:
            return await func(*args)
        except errors.REDIS_ERRORS as exc:
            error = _unavailable(exc)
            if error is None:
                raise
            self._rr_outage = error
            raise error from exc

    async def _rr_aget_session(self, no_load: bool = False) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            if self.session_key is None or no_load:
                self._session_cache = {}
            else:
                self._session_cache = await self.aload()
        return self._session_cache

    # Django 5.x's async accessors (aget, aset, ...) call this one.
    _aget_session = _rr_aget_session

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        raw = await self._acall(self._aredis().get, session_key_name(self.session_key))
        return self._loaded(raw)

    async def aexists(self, session_key: str | None) -> bool:
        if session_key is None or not self._validate_session_key(session_key):
            return False
        return bool(await self._acall(self._aredis().exists, session_key_name(session_key)))

    async def acreate(self) -> None:
        for _ in range(100):
            self._session_key = self._new_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._rr_aget_session(no_load=must_create)
        await self._awrite(data, must_create)

    async def _arun(self, plan: _Plan) -> Any:
        client = self._aredis()
        if plan.kind == "set":
            if plan.nx:
                return await client.set(plan.key, plan.value, ex=plan.ttl, nx=True, get=True)
            return await client.set(plan.key, plan.value, ex=plan.ttl, xx=True)
        if plan.kind == "unlink":
            return await client.unlink(plan.key)
        return await SAVE.acall(client, plan.keys, plan.args)

    async def _aread_candidates(self, plan: _Plan) -> None:
        client = self._aredis()
        members = await client.zrangebyscore(plan.keys[2], self._cutoff_of(plan), "+inf")
        candidates = self._cap_candidates(plan, members)
        if candidates:
            async with client.pipeline(transaction=False) as pipe:
                for member in candidates:
                    pipe.get(session_key_name(member))
                raws = await pipe.execute()
            self._declare(plan, candidates, raws)

    async def _awrite(
        self, data: dict[str, Any], must_create: bool, old_key: str | None = None
    ) -> None:
        plan = self._plan_save(data, must_create, old_key)
        for attempt in range(_CAP_ATTEMPTS):
            if plan.cap:
                await self._acall(self._aread_candidates, plan)
            reply = await self._acall(self._arun, plan)
            if plan.kind != "script" or int(reply) != -3:
                break
            _cap_retry(plan, attempt)
        changed = self._saved(self._result(plan, reply), data, plan)
        if changed is not None and not await _arotated(*changed):
            from .index import alogout_everywhere

            await alogout_everywhere(changed[0], keep=self.session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return
        plan = self._plan_delete(session_key)
        if plan is None:
            await self._acall(self._aredis().unlink, session_key_name(session_key))
        else:
            script, keys, args = plan
            await self._acall(script.acall, self._aredis(), keys, args)

    async def aflush(self) -> None:
        self.clear()
        await self.adelete()
        self._session_key = None
        self._rr_uid = self._rr_hash = None
        self._rr_score = 0

    async def acycle_key(self) -> None:
        data = await self._rr_aget_session()
        old_key = self.session_key
        if old_key is None:
            await self.acreate()
            self._session_cache = data
            return
        for _ in range(100):
            self._session_key = self._new_key()
            try:
                await self._awrite(data, must_create=True, old_key=old_key)
            except CreateError:
                continue
            self._session_cache = data
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key after 100 attempts.")

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        if "expiry" not in kwargs:
            kwargs["expiry"] = (await self._rr_aget_session()).get("_session_expiry")
        return self.get_expiry_age(**kwargs)

    async def aget_expire_at_browser_close(self) -> bool:
        await self._rr_aget_session()
        return self.get_expire_at_browser_close()

    @classmethod
    async def aclear_expired(cls) -> None:
        from .index import atrim_indexes

        await atrim_indexes()
