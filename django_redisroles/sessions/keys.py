"""What the sessions role stores in Redis: its key names and the stored session value.

Layout (all under ``conf.make_key("sessions", ...)``, every key with a TTL):

- ``<prefix>:sessions:s:<session key>``: ``rr1 <index score>[ <nonce>]\\n`` + the
  session serialized with ``SESSION_SERIALIZER`` (JSON by default; never pickle).
  TTL = the session's expiry age.
- ``<prefix>:sessions:u:<user pk>``: sorted set of that user's session keys,
  scored by expiry time (Unix seconds). TTL = the latest expiry + INDEX_REFRESH.
- ``<prefix>:sessions:m:<user pk>``: hash of metadata per session key (``<key>``:
  JSON ``{ip, ua, created}``, ``<key>|seen``: last index write). Same TTL.

On a Redis Cluster the three carry a hash tag so a user's index, metadata and
sessions share one slot (one script touches them all): ``s:{<key[:4]>}<key>``,
``u:{<tag>}<pk>``, ``m:{<tag>}<pk>``, the tag 4 hex digits of the pk's SHA-256,
and a user's session keys start with it (:func:`user_tag`). One server and
Sentinel keep the names above, so sessions stored before the upgrade load.

The index score in the stored value is the session's expiry as last written to
the user index (0: not indexed): a save skips the index update while the index
is still accurate to INDEX_REFRESH seconds, without an extra read. A create
writes a random nonce too, so a re-sent create (after a timeout) tells its own
value from another one that happens to hold the same data.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .. import conf, connections
from .options import ROLE, pickle_based

__all__ = [
    "HEADER",
    "Codec",
    "decode",
    "encode",
    "in_user_slot",
    "index_key_name",
    "index_pattern",
    "index_prefix",
    "meta_key_name",
    "meta_of_index",
    "owned_by",
    "pack",
    "serializer",
    "session_key_name",
    "sharded",
    "split_stored",
    "user_tag",
    "valid_session_key",
]

# Session keys we generate are 32 chars of [a-z0-9]; accept any 8-128 chars of
# [A-Za-z0-9_-] (custom key generators, Django's own tests). Anything else
# (a forged or mangled cookie) is treated as "no session": a new session
# starts and Redis is never asked about it.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,128}")


def valid_session_key(key: object) -> bool:
    """Whether ``key`` can name a stored session (else: no session, no round trip)."""
    return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None


# -- key names -------------------------------------------------------------------
# "<prefix>:sessions:", read from settings once (a key is named on every load and save).
_BASE = conf.Resolved(lambda: conf.make_key(ROLE, ""), name="sessions key prefix")
# Whether the sessions role is on a Redis Cluster: its key names carry hash tags.
_SHARDED = conf.Resolved(
    lambda: connections.topology(ROLE).kind == "cluster", name="sessions topology"
)

#: Length of the slot tag a session key starts with on a Redis Cluster.
TAG_LEN = 4


def sharded() -> bool:
    """Whether the sessions role runs on a Redis Cluster (hash-tagged key names)."""
    return _SHARDED.get()


def user_tag(user_pk: object) -> str:
    """The slot tag of a user on a Redis Cluster: 4 hex digits of SHA-256 of the pk.

    The user's index, metadata and sessions all hash to ``{<tag>}``; a session
    key of the user starts with the tag, so the cookie alone names the key (a
    load stays one GET). Not a secret: whoever holds the cookie holds the session.
    """
    return hashlib.sha256(str(user_pk).encode()).hexdigest()[:TAG_LEN]


def key_tag(session_key: str) -> str:
    """The slot tag of a session key on a cluster: its first characters."""
    return session_key[:TAG_LEN]


def in_user_slot(session_key: str, user_pk: object) -> bool:
    """Whether a session key shares its user's slot (always true off a cluster).

    On a cluster a session is in its user's index only if it does: the scripts
    that write both (save, delete, logout) touch one slot.
    """
    return not _SHARDED.get() or key_tag(session_key) == user_tag(user_pk)


def session_key_name(session_key: str) -> str:
    """The Redis key holding a session.

    One server / Sentinel: ``<base>s:<key>`` (as in every release). Redis Cluster:
    ``<base>s:{<first 4 chars>}<key>``, in the slot of the user whose tag the key
    starts with (see :func:`user_tag`).
    """
    if _SHARDED.get():
        return f"{_BASE.get()}s:{{{session_key[:TAG_LEN]}}}{session_key}"
    return f"{_BASE.get()}s:{session_key}"


def _user_part(user_pk: object) -> str:
    if _SHARDED.get():
        return f"{{{user_tag(user_pk)}}}{user_pk}"
    return str(user_pk)


def index_key_name(user_pk: object) -> str:
    """The Redis sorted set indexing a user's sessions (``u:{<tag>}<pk>`` on a cluster)."""
    return f"{_BASE.get()}u:{_user_part(user_pk)}"


def meta_key_name(user_pk: object) -> str:
    """The Redis hash holding metadata of a user's sessions (``m:{<tag>}<pk>`` on a cluster)."""
    return f"{_BASE.get()}m:{_user_part(user_pk)}"


def meta_of_index(index_key: str) -> str:
    """The metadata hash beside a user index found by SCAN (same user, same slot)."""
    return f"{_BASE.get()}m:{index_key[len(index_prefix()) :]}"


def index_prefix() -> str:
    """What every user index's key starts with (the user's pk follows)."""
    return f"{_BASE.get()}u:"


def index_pattern() -> str:
    """SCAN pattern of the user indexes (escaped: a KEY_PREFIX ``tenant[1]`` is literal)."""
    return conf.glob_escape(index_prefix()) + "*"


# -- stored value ----------------------------------------------------------------
HEADER = b"rr1 "


def pack(score: int, nonce: str | None, payload: bytes) -> bytes:
    """A stored value: header (index score, optional nonce), newline, serialized session."""
    head = HEADER + str(score).encode()
    if nonce is not None:
        head += b" " + nonce.encode()
    return head + b"\n" + payload


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


class Codec(Protocol):
    """A ``SESSION_SERIALIZER`` instance: Django's serializers have these two methods."""

    def dumps(self, obj: Any) -> bytes | str: ...

    def loads(self, data: bytes) -> Any: ...


def serializer(cls: type | None = None) -> Codec:
    """An instance of ``cls`` (default: ``SESSION_SERIALIZER``); never a pickle-based one.

    Check ``redisroles.E020`` reports it at start-up, but checks can be
    silenced and do not run under a WSGI/ASGI server: refuse here too,
    rather than unpickle what anyone able to write to Redis put there.
    """
    if cls is None:
        cls = import_string(settings.SESSION_SERIALIZER)
    path = f"{cls.__module__}.{cls.__qualname__}"
    if pickle_based(path):
        raise ImproperlyConfigured(
            f"SESSION_SERIALIZER is {path!r}: the Redis session engine never unpickles. "
            'Use "django.contrib.sessions.serializers.JSONSerializer" (see redisroles.E020).'
        )
    codec: Codec = cls()
    return codec


def encode(data: dict[str, Any], codec: Codec) -> bytes:
    """``data`` serialized with ``codec`` (a serializer instance)."""
    encoded = codec.dumps(data)
    return encoded.encode() if isinstance(encoded, str) else bytes(encoded)


def decode(payload: bytes, codec: Codec) -> dict[str, Any]:
    """The session in ``payload``; corrupt data is an empty session, as in Django."""
    try:
        data = codec.loads(payload)
    except Exception:  # noqa: BLE001 - corrupted data: an empty session, like Django's
        logging.getLogger("django.security.SuspiciousSession").warning("Session data corrupted")
        return {}
    return data if isinstance(data, dict) else {}


def owned_by(raw: bytes | None, pk: str, codec: Codec | None = None) -> bool:
    """Whether a stored session value still belongs to user ``pk``."""
    if raw is None:
        return False
    codec = serializer() if codec is None else codec  # a pickle-based one raises
    try:
        data = codec.loads(split_stored(raw)[1])
    except Exception:  # noqa: BLE001 - corrupt data belongs to nobody
        return False
    return isinstance(data, dict) and str(data.get(SESSION_KEY)) == pk
