"""What Redis raised, classified once for every role.

Each role applies its documented failure policy (docs/failures.md) from one
answer: is this error an **outage** (the server cannot be used right now:
unreachable, stalled, loading, busy, not Redis at all), a **refusal** (the
server is up but its configuration refuses this command: ACL, password,
``maxmemory`` under ``noeviction``, a read-only replica, a Cluster node that
does not own the key), or a **programming error** (the command or its data is
wrong: ``WRONGTYPE``, a syntax error, keys in different Cluster slots)?

The answer comes from redis-py's exception class and the Redis error code (the
first word of the error reply, as Redis defines it), never from the free text
of a message. redis-py turns some codes into classes and strips them from the
message (``OOM``, ``NOPERM``, ``READONLY``, ``LOADING``, ``ERR``...; 6.x+ also
``MASTERDOWN``, ``MOVED``, ``CROSSSLOT``...) and leaves others in a plain
``ResponseError`` with the code still first (``BUSY``, ``MISCONF``,
``WRONGTYPE``; on 5.x also ``MASTERDOWN``, ``MOVED``, ``CROSSSLOT``...):
:func:`classify` gives the same answer on every supported redis-py.

Only exceptions raised by our own Redis calls are to be classified: an
exception a caller's code raised (a cache loader timing out, a redis-py error
from another client) is the caller's, whatever its class.
"""

from __future__ import annotations

import enum
import re
import ssl
from dataclasses import dataclass

import redis.exceptions as rex

__all__ = [
    "Failure",
    "Kind",
    "classify",
    "error_code",
]


class Kind(enum.Enum):
    """The three classes of failure every role has a policy for."""

    #: The server cannot be used right now; it may come back by itself.
    OUTAGE = "outage"
    #: The server answers but its configuration refuses the command; retrying
    #: the same command will not help until someone changes the setup.
    REFUSED = "refused"
    #: The command or its data is wrong (a bug, or a key of the wrong type).
    ERROR = "error"


# Redis error codes (first word of an error reply) and what they mean for us.
# NOAUTH and WRONGPASS are reported as AUTH: redis-py 5.x strips them from the
# message without keeping them anywhere, 6.x+ keeps them in ``status_code``.
_OUTAGE_CODES = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})
_REFUSED_CODES = frozenset(
    {"OOM", "READONLY", "MISCONF", "NOREPLICAS", "NOPERM", "AUTH", "MOVED", "ASK"}
)
_ERROR_CODES = frozenset(
    {
        "ERR",
        "WRONGTYPE",
        "CROSSSLOT",
        "EXECABORT",
        "NOSCRIPT",
        "NOGROUP",
        "BUSYGROUP",
        "BUSYKEY",
        "NOTBUSY",
        "UNKILLABLE",
        "NOPROTO",
        "UNBLOCKED",
    }
)
_ALIASES = {"NOAUTH": "AUTH", "WRONGPASS": "AUTH"}
_KNOWN_CODES = _OUTAGE_CODES | _REFUSED_CODES | _ERROR_CODES | frozenset(_ALIASES)

# Most specific class first (MasterDownError is a ClusterDownError, MovedError
# an AskError). Only the classes the installed redis-py has.
_CLASS_CODES: tuple[tuple[type[BaseException], str], ...] = tuple(
    (cls, code)
    for name, code in (
        ("NoScriptError", "NOSCRIPT"),
        ("OutOfMemoryError", "OOM"),
        ("ReadOnlyError", "READONLY"),
        ("NoPermissionError", "NOPERM"),
        ("ExecAbortError", "EXECABORT"),
        ("AuthenticationWrongNumberOfArgsError", "AUTH"),
        ("MasterDownError", "MASTERDOWN"),
        ("ClusterDownError", "CLUSTERDOWN"),
        ("MovedError", "MOVED"),
        ("AskError", "ASK"),
        ("TryAgainError", "TRYAGAIN"),
        ("ClusterCrossSlotError", "CROSSSLOT"),
    )
    if (cls := getattr(rex, name, None)) is not None
)

_CODE_RE = re.compile(r"[A-Z][A-Z_]*\Z")

#: What to look at, per code: shown in log lines and error messages.
HINTS: dict[str, str] = {
    "CONNECTION": "nothing answers at this address (refused or reset), or the network dropped",
    "TIMEOUT": "no reply within socket_timeout: the server is stalled, overloaded or unreachable",
    "TLS": (
        "the TLS handshake failed: rediss:// against a plain port, redis:// against a TLS "
        "port, or a certificate the client does not trust"
    ),
    "PROTOCOL": (
        "the service at this address does not speak the Redis protocol (an HTTP server? "
        "an SSH daemon?): check the host and port of the URL"
    ),
    "AUTH": "authentication failed: check the user name and password in the role's URL",
    "NOPERM": (
        "the server's ACL refuses a command, key or channel this role needs "
        "(see docs/failures.md, 'ACL users')"
    ),
    "OOM": "maxmemory is reached and maxmemory-policy is noeviction: writes are refused",
    "READONLY": "the URL points at a read-only replica (or at the old primary after a failover)",
    "MISCONF": "the server refuses writes after a failed save (stop-writes-on-bgsave-error)",
    "NOREPLICAS": "fewer replicas are connected than min-replicas-to-write",
    "MASTERDOWN": "this replica lost its primary and replica-serve-stale-data is no",
    "LOADING": "the server is loading its dataset into memory",
    "BUSY": "a script or function has run longer than busy-reply-threshold",
    "MOVED": "the URL points at one node of a Redis Cluster: use a redis+cluster:// URL",
    "ASK": "the URL points at one node of a Redis Cluster: use a redis+cluster:// URL",
    "TRYAGAIN": "the Redis Cluster is moving the slot of this key",
    "CLUSTERDOWN": "the Redis Cluster is down or does not serve this key's slot",
    "CROSSSLOT": "keys of one command are in different Cluster slots (a bug: please report it)",
}


@dataclass(frozen=True)
class Failure:
    """One classified error: its kind, its code, the exception."""

    kind: Kind
    #: The Redis error code (``OOM``, ``NOPERM``, ``WRONGTYPE``, ``ERR``...), or for
    #: errors without a reply: ``CONNECTION``, ``TIMEOUT``, ``TLS``, ``PROTOCOL``.
    code: str
    exc: BaseException

    @property
    def outage(self) -> bool:
        return self.kind is Kind.OUTAGE

    @property
    def refused(self) -> bool:
        return self.kind is Kind.REFUSED

    @property
    def bug(self) -> bool:
        """A programming error: raised by every role, never hidden by a failure policy."""
        return self.kind is Kind.ERROR

    @property
    def unavailable(self) -> bool:
        """An outage or a refusal: the role's failure policy applies."""
        return self.kind is not Kind.ERROR

    @property
    def server_down(self) -> bool:
        """Every command would fail the same way now (not only this one).

        Outages and failed authentication; an ``OOM`` or ``NOPERM`` refuses
        some commands only, so there is no point skipping the others.
        """
        return self.kind is Kind.OUTAGE or self.code == "AUTH"

    @property
    def hint(self) -> str:
        return HINTS.get(self.code, "")

    def describe(self) -> str:
        """``OOM (refused): <message>. <hint>`` for log lines and error messages."""
        text = f"{self.code} ({self.kind.value}): {type(self.exc).__name__}: {self.exc}"
        text = text.rstrip(". ")
        return f"{text}. {self.hint}." if self.hint else f"{text}."


def _tls(exc: BaseException) -> bool:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, ssl.SSLError):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def error_code(exc: BaseException) -> str | None:
    """The Redis error code of an error reply (``OOM``, ``NOPERM``...), else None.

    ``NOAUTH``/``WRONGPASS`` are ``AUTH``; an ``ERR`` reply (whose code redis-py
    5.x drops) is ``ERR``.
    """
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
        return "AUTH"
    if isinstance(exc, rex.BusyLoadingError):
        return "LOADING"
    if not isinstance(exc, rex.ResponseError):
        return None
    for cls, code in _CLASS_CODES:
        if isinstance(exc, cls):
            return code
    status = getattr(exc, "status_code", None)  # redis-py 6+: the code it stripped
    if isinstance(status, str) and status:
        return _ALIASES.get(status, status)
    # A code redis-py does not know stays first in the message.
    first = str(exc).split(" ", 1)[0]
    if _CODE_RE.match(first) and first in _KNOWN_CODES:
        return _ALIASES.get(first, first)
    return "ERR"


def classify(exc: BaseException) -> Failure | None:
    """Classify an exception raised by one of our own Redis calls (None: not a Redis error).

    OSError and the built-in TimeoutError count too: redis.asyncio lets some
    socket errors through unwrapped.
    """
    if isinstance(exc, rex.RedisError):
        code = error_code(exc)
        if code is not None:
            if code in _OUTAGE_CODES:
                return Failure(Kind.OUTAGE, code, exc)
            if code in _REFUSED_CODES:
                return Failure(Kind.REFUSED, code, exc)
            return Failure(Kind.ERROR, code, exc)
        if isinstance(exc, rex.TimeoutError):
            return Failure(Kind.OUTAGE, "TIMEOUT", exc)
        if isinstance(exc, rex.ConnectionError):
            return Failure(Kind.OUTAGE, "TLS" if _tls(exc) else "CONNECTION", exc)
        if isinstance(exc, rex.InvalidResponse):
            return Failure(Kind.OUTAGE, "PROTOCOL", exc)
        cluster_error = getattr(rex, "ClusterError", None)
        if cluster_error is not None and isinstance(exc, cluster_error):
            return Failure(Kind.OUTAGE, "CLUSTERDOWN", exc)
        # DataError (a bad argument redis-py refused to send), PubSubError, ...
        return Failure(Kind.ERROR, "CLIENT", exc)
    cluster_exc = getattr(rex, "RedisClusterException", None)
    if cluster_exc is not None and isinstance(exc, cluster_exc):
        # redis-py's cluster client raises it itself (not a RedisError). With a cause:
        # no seed node could be reached, and the cause says why (an outage).
        cause = classify(exc.__cause__) if exc.__cause__ is not None else None
        if cause is not None:
            return Failure(cause.kind, cause.code, exc)
        slot_error = getattr(rex, "SlotNotCoveredError", None)
        if slot_error is not None and isinstance(exc, slot_error):
            return Failure(Kind.OUTAGE, "CLUSTERDOWN", exc)
        # Without one, it refused to send the command: keys in different slots, a
        # command it cannot route. A programming error, not an outage to ride out.
        return Failure(Kind.ERROR, "CLIENT", exc)
    if isinstance(exc, TimeoutError):
        return Failure(Kind.OUTAGE, "TIMEOUT", exc)
    if isinstance(exc, OSError):
        return Failure(Kind.OUTAGE, "TLS" if _tls(exc) else "CONNECTION", exc)
    return None


#: What our own Redis calls may raise: catch these, then :func:`classify`.
REDIS_ERRORS: tuple[type[BaseException], ...] = (rex.RedisError, OSError)
if getattr(rex, "RedisClusterException", None) is not None:
    REDIS_ERRORS += (rex.RedisClusterException,)
