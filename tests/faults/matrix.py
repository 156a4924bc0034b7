"""The fault matrix: what each role does under each fault, as data.

``test_matrix.py`` drives every role against every fault on real servers and
asserts these outcomes; ``docs/failures.md`` shows them as a table, and
``test_matrix.py::test_the_docs_table_is_this_matrix`` keeps the two equal.

A fault is described by what the server still serves. The roles' documented
policies turn that into what a user sees.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("cache", "sessions", "ratelimit", "pubsub", "locks")


@dataclass(frozen=True)
class Fault:
    """One way a role's Redis can fail, and what it still serves then."""

    name: str
    title: str  # as the docs table shows it
    kind: str  # "outage" or "refused" (errors.Kind)
    code: str  # errors.Failure.code the roles report
    reads: bool = False  # GET and friends
    writes: bool = False  # SET, DEL...
    scripts: bool = False  # EVALSHA of a script that writes
    publish: bool = False  # PUBLISH
    # Commands sent during the fault run when it ends (the server was only
    # stopped, their bytes waited in its socket): each must run once, never twice.
    queued: bool = False


FAULTS: tuple[Fault, ...] = (
    Fault("killed", "server killed (then restarted)", "outage", "CONNECTION"),
    Fault(
        "stalled",
        "stalled past the socket timeout (SIGSTOP/SIGCONT)",
        "outage",
        "TIMEOUT",
        queued=True,
    ),
    # A write blocked by the pause is dropped when the client times out and
    # closes its connection: nothing runs when the pause ends.
    Fault("paused", "`CLIENT PAUSE ... WRITE` (as in a failover)", "outage", "TIMEOUT", reads=True),
    Fault(
        "full",
        "`maxmemory` reached, `noeviction`",
        "refused",
        "OOM",
        reads=True,
        publish=True,
    ),
    Fault(
        "acl",
        "ACL user missing a needed command (scripts; channels for pub/sub)",
        "refused",
        "NOPERM",
        reads=True,
        writes=True,
    ),
    Fault("wrongpass", "wrong password", "refused", "AUTH"),
    Fault("tls", "TLS mismatch (`redis://` to a TLS port)", "outage", "CONNECTION"),
    Fault("http", "an HTTP server on the port", "outage", "PROTOCOL"),
    Fault("ssh", "an SSH daemon on the port", "outage", "PROTOCOL"),
    Fault(
        "replica",
        "a read-only replica as the URL",
        "refused",
        "READONLY",
        reads=True,
        publish=True,
    ),
)

BY_NAME = {fault.name: fault for fault in FAULTS}


def cache_sees(fault: Fault) -> dict[str, object]:
    """The cache view's answer: incr, get of a key set before, set, get_or_set of a missing key.

    The view increments first: an outage (a timeout included) starts
    OUTAGE_BACKOFF, and the calls after it answer at once without Redis.
    """
    return {
        "get": "kept" if fault.reads and fault.kind == "refused" else "miss",
        "set": fault.writes,
        "incr": 1 if fault.scripts else None,
        "get_or_set": "computed",
    }


def sessions_sees(fault: Fault) -> dict[str, int]:
    """Status codes: reading a signed-in session, saving a change to it, logging in."""
    return {
        "read": 200 if fault.reads else 503,
        "write": 200 if fault.writes else 503,
        "login": 200 if fault.scripts else 503,
    }


def ratelimit_sees(fault: Fault) -> dict[str, int]:
    """Status codes of a fail="open" view and a fail="closed" one (every fault fails the check)."""
    return {"open": 200, "closed": 503}


def pubsub_sees(fault: Fault) -> str:
    """``broadcast()``: returns (delivered to the server's subscribers) or raises."""
    return "sent" if fault.publish else "raises"


def locks_sees(fault: Fault) -> int:
    """Exit status of a ``@command_lock`` command (its body does not run on 1)."""
    return 0 if fault.scripts else 1


# What the docs table says, per role: derived from the same data.
def describe(role: str, fault: Fault) -> str:
    if role == "cache":
        seen = cache_sees(fault)
        parts = ["reads hit" if seen["get"] == "kept" else "reads miss"]
        parts.append("writes stored" if seen["set"] else "writes dropped")
        parts.append("`incr()` None")
        return ", ".join(parts) + "; `get_or_set()` computes"
    if role == "sessions":
        codes = sessions_sees(fault)
        if set(codes.values()) == {503}:
            return "503 + `Retry-After`, cookie kept"
        ok = [name for name, code in codes.items() if code == 200]
        bad = [name for name, code in codes.items() if code == 503]
        return f"{' and '.join(ok)} 200; {' and '.join(bad)} 503"
    if role == "ratelimit":
        return 'fail="open": let through; fail="closed": 503'
    if role == "pubsub":
        if fault.name == "acl":
            return "`broadcast()` raises; subscribing raises `SubscribeRefused`"
        if fault.publish:
            return "`broadcast()` sent" + (
                " (to this replica's subscribers only)" if fault.name == "replica" else ""
            )
        extra = "; received once when it resumes" if fault.queued else ""
        return f"`broadcast()` raises{extra}"
    if role == "locks":
        return "exit 1, body not run" if locks_sees(fault) else "exit 0"
    raise ValueError(role)
