"""A session write as one Redis request: what to send, and what the reply means.

Pure (no I/O): :class:`~.store.SessionStore` builds a :class:`SavePlan` with
:func:`plan_save` and runs it with ``_run`` (sync) or ``_arun`` (async). A save
is ``SET NX`` (create) or ``SET XX`` (update) with ``EX``, or, when the user
index must be written too (login, ``cycle_key``, an entry that would lag by more
than INDEX_REFRESH seconds), the ``lua/save.lua`` script doing the same SET and
the index update atomically. Either way a save never recreates a session a
concurrent logout deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scripts import Script
from . import keys
from .options import SessionOptions

__all__ = [
    "CAP_ATTEMPTS",
    "DELETE",
    "SAVE",
    "Known",
    "SavePlan",
    "cap_candidates",
    "cap_retry",
    "cutoff",
    "declare",
    "plan_delete",
    "plan_save",
    "result",
]

logger = logging.getLogger("django_redisroles.sessions")

_LUA = Path(__file__).parent / "lua"
SAVE = Script((_LUA / "save.lua").read_text())
DELETE = Script((_LUA / "delete.lua").read_text())

#: Tries of a capped save whose candidates changed under it (concurrent logins).
#: Logins of one account racing in 8 processes on 2 cores lost 3 tries in a row
#: now and then (each try is 2 round trips, only when they race); 7 they do not.
CAP_ATTEMPTS = 8


@dataclass(slots=True)
class Known:
    """What the stored session says about its user, as this store last loaded or saved it.

    The user index needs the user of a session we delete, and a changed auth
    hash for the same user means "password changed".
    """

    uid: str | None = None
    auth_hash: str | None = None
    #: The user-index score stored with the session (0 = none/unknown).
    score: int = 0
    #: Login metadata (IP, user agent, time) to write with the next save.
    login_meta: dict[str, Any] | None = None

    def forget(self) -> None:
        """No stored session (not found, flushed)."""
        self.uid = self.auth_hash = None
        self.score = 0


class SavePlan:
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


def plan_save(
    *,
    session_key: str,
    payload: bytes,
    uid: str | None,
    ttl: int,
    now: float,
    known: Known,
    options: SessionOptions,
    must_create: bool,
    old_key: str | None = None,
) -> SavePlan:
    """The request storing ``payload`` (user ``uid``'s serialized session) for ``ttl`` s."""
    skey = keys.session_key_name(session_key)
    indexed = uid is not None and options.user_index
    grace = options.index_refresh
    expiry = math.ceil(now + ttl)
    # The index needs writing on login (metadata), on create/cycle_key, for
    # a new user, or when the entry would lag the session by more than
    # INDEX_REFRESH seconds; other saves are a plain SET XX.
    index_write = indexed and (
        must_create
        or old_key is not None
        or ttl <= 0
        or known.login_meta is not None
        or uid != known.uid
        or not known.score
        or expiry - known.score >= grace
    )
    score = expiry if index_write else (known.score if indexed else 0)
    value = keys.pack(score, secrets.token_hex(4) if must_create else None, payload)
    if not index_write and old_key is None:
        if ttl <= 0:
            plan = SavePlan("unlink", uid, 0)  # expired already: the session ends now
            plan.key = skey
            return plan
        plan = SavePlan("set", uid, score)
        plan.key, plan.value, plan.ttl, plan.nx = skey, value, ttl, must_create
        return plan
    plan = SavePlan("script", uid, score)
    plan.keys = [
        skey,
        keys.session_key_name(old_key) if old_key else skey,
        keys.index_key_name(uid) if indexed else skey,
        keys.meta_key_name(uid) if indexed else skey,
    ]
    meta = ""
    if indexed and known.login_meta is not None:
        meta = json.dumps(known.login_meta, separators=(",", ":"))
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
    new_entry = must_create or old_key is not None or uid != known.uid
    if indexed and options.max_sessions and ttl > 0 and new_entry:
        plan.cap = options.max_sessions  # a new entry in the user's index: the cap applies
        plan.args[10] = str(plan.cap)
    return plan


def cutoff(plan: SavePlan) -> float:
    """Index scores below this belong to sessions that have surely expired."""
    return float(plan.args[3]) - float(plan.args[9])


def cap_candidates(plan: SavePlan, members: list[Any]) -> list[str]:
    """The index entries that may have to end for ``plan`` (oldest first, with slack).

    ``members``: the user index read from :func:`cutoff` up (ZRANGEBYSCORE).
    """
    plan.keys, plan.args = plan.keys[:4], plan.args[:11]
    mine = {plan.args[4], plan.args[5]}
    others = [m.decode() for m in members if m.decode() not in mine]
    excess = len(others) + 1 - plan.cap
    # A little slack: a concurrent login may add one more meanwhile.
    return others[: excess + 2] if excess > 0 else []


def declare(
    plan: SavePlan, candidates: list[str], raws: list[bytes | None], codec: keys.Codec
) -> None:
    """Add the candidates, as read (``raws``), to the SAVE script's call."""
    for member, raw in zip(candidates, raws, strict=True):
        plan.keys.append(keys.session_key_name(member))
        sha = hashlib.sha1(raw).hexdigest() if raw is not None else ""
        owned = plan.uid is not None and keys.owned_by(raw, plan.uid, codec)
        plan.args += [member, sha, "1" if owned else "0"]


def cap_retry(plan: SavePlan, attempt: int) -> None:
    """After a -3 (stale candidates): read again; the last try saves without the cap."""
    if attempt == CAP_ATTEMPTS - 2:
        # Never fail a login over the cap: save; the next login trims the excess.
        logger.warning("MAX_SESSIONS: the user's sessions kept changing; saved without the cap")
        plan.cap = 0
        plan.keys, plan.args = plan.keys[:4], plan.args[:11]
        plan.args[10] = "0"


def stale(plan: SavePlan, reply: Any) -> bool:
    """Whether the SAVE script refused ``plan`` because its cap candidates changed (-3)."""
    return plan.kind == "script" and int(reply) == -3


def result(plan: SavePlan, reply: Any) -> int:
    """The reply as the SAVE script's codes: 1 saved, 0 key taken, -1 gone, -2 cycled away."""
    if plan.kind == "set":
        if plan.nx:
            # SET NX GET: no old value, or our own value (a re-sent SET whose
            # first send did run), is a create; anything else a collision.
            return 1 if reply is None or reply == plan.value else 0
        return 1 if reply else -1
    if plan.kind == "unlink":
        return 1
    return int(reply)


def plan_delete(session_key: str, uid: str | None, options: SessionOptions) -> list[str] | None:
    """KEYS of the DELETE script for an indexed session; None: a plain UNLINK does."""
    # On a cluster, a session outside its user's slot is in no index (slots.py).
    if uid is not None and options.user_index and keys.in_user_slot(session_key, uid):
        return [
            keys.session_key_name(session_key),
            keys.index_key_name(uid),
            keys.meta_key_name(uid),
        ]
    return None
