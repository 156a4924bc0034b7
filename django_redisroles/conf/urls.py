"""Redis URLs: validate, parse and mask them (no settings are read here).

Every message, log line, check and command output that shows a Redis URL
goes through :func:`mask_url`; every first connection and check goes
through :func:`url_problem`, which never quotes a parser's error text.
Topology URLs (``redis+cluster://``, ``redis+sentinel://``) are taken apart
by :mod:`.topology`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote_plus, urlsplit

from .defaults import CONNECTION_OPTIONS, SENTINEL_OPTIONS, URL_SCHEMES
from .topology import (
    CLUSTER_SCHEMES,
    SENTINEL_SCHEMES,
    TLS_SCHEMES,
    Topology,
    TopologyURLError,
    parse_topology,
)

MASK = "***"


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and "password" in k.lower() else _masked(v)
            for k, v in value.items()
        }
    return value


def safe_repr(value: Any) -> str:
    """``repr(value)`` for a message: URL credentials and ``*password*`` keys masked."""
    return mask_url(repr(_masked(value)))


def _unquoted(text: str) -> str:
    """``text`` percent-decoded until it stops changing (``pass%2577ord`` -> ``password``)."""
    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


_QUERY_PARAMETERS = CONNECTION_OPTIONS | {"timeout", "socket_read_size", "retry_on_error"}
_QUERY_NAME = re.compile(r"[?&]([^=&?#/@\s]*)=")
_NEXT_PARAM = re.compile(r"&([A-Za-z_][A-Za-z0-9_]*)=")


def mask_url(url: Any) -> str:
    """``url`` fit to print: no credentials, no password-like query values.

    For every message, log line and output that shows a Redis URL (checks,
    errors, CLI). Everything between ``://`` and the *last* ``@`` of the raw
    string is replaced by ``***`` (user name included: with an unencoded
    ``/``, ``?`` or ``#`` in a password no parser finds where it ends), and so
    is the value of every query parameter whose name, percent-decoded,
    contains "password" (``?password=``, ``?ssl_password=``), up to the next
    ``&name=``. Works on any string, malformed or not; keeps the host as
    written unless a masked value runs into it.
    """
    text = str(url)
    hidden = [False] * len(text)
    scheme_end = text.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    at = text.rfind("@")
    if at >= start:
        hidden[start:at] = [True] * (at - start)
    for match in _QUERY_NAME.finditer(text):
        if "password" not in _unquoted(match.group(1)).lower():
            continue
        # The value runs to the next "&name=" naming a connection parameter
        # (an unencoded "&x=" inside a password is masked with it).
        end = len(text)
        for following in _NEXT_PARAM.finditer(text, match.end()):
            if following.group(1) in _QUERY_PARAMETERS:
                end = following.start()
                break
        hidden[match.end() : end] = [True] * (end - match.end())
    out: list[str] = []
    for i, ch in enumerate(text):
        if not hidden[i]:
            out.append(ch)
        elif i == 0 or not hidden[i - 1]:
            out.append(MASK)
    return "".join(out)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def mask_text(text: Any) -> str:
    """Free text (an exception message) with every URL in it masked like ``mask_url``."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), str(text))


#: Option names whose values are secrets (Django's rule for settings, and "credential").
_SECRET_OPTION = re.compile(r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL", re.I)


def mask_argv(argv: list[str]) -> str:
    """A command line fit to store and print: secret options' values and URL credentials masked.

    ``--password=x``, ``--api-token x``, ``redis://:pw@h`` arguments become
    ``--password=***``, ``--api-token ***``, ``redis://***@h``.
    """
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            shown.append(MASK)
            hide_next = False
            continue
        hide_next = False
        name, eq, _ = arg.partition("=")
        if arg.startswith("-") and _SECRET_OPTION.search(name):
            if eq:
                arg = f"{name}={MASK}"
            else:
                hide_next = True  # "--password VALUE"
        shown.append(mask_text(arg) if "://" in arg else arg)
    return " ".join(shown)


def url_problem(url: Any) -> str | None:
    """Why ``url`` is not a usable Redis URL, or None when it is.

    Shared by the system checks (``redisroles.E005``/``E013``) and the first
    connection of a role (``ImproperlyConfigured``). The URL in the answer is
    masked, and no parser's error text is quoted (it can hold a piece of the
    password).
    """
    if not isinstance(url, str) or not url:
        return f"must be a non-empty string, got {type(url).__name__}"
    shown = repr(mask_url(url))
    scheme, sep, after = url.partition("://")
    if not sep:
        return f"{shown} is not a URL (expected scheme://host...)"
    if scheme not in URL_SCHEMES:
        return f"{shown} has scheme {scheme!r}; use one of " + ", ".join(
            s + "://" for s in URL_SCHEMES
        )
    userinfo = after.rpartition("@")[0]
    if any(ch in userinfo for ch in "/?#"):
        return (
            f"{shown} has a '/', '?' or '#' before its last '@': in a user name or password "
            "they must be percent-encoded (%2F, %3F, %23), or the password moved to "
            'OPTIONS["password"]'
        )
    if scheme in CLUSTER_SCHEMES | SENTINEL_SCHEMES:
        try:
            parse_topology(url)
        except TopologyURLError as exc:  # names the bad part after the '@', never before
            return f"{shown} {exc}"
        return _query_problem(shown, scheme, dict(parse_qs(raw_query(url))))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its message would quote the bad port: maybe half a password
        return f"{shown} has an invalid host or port"
    if parts.scheme == "unix":
        if not parts.path:
            return f"{shown} names no socket path (unix:///path/to/redis.sock?db=0)"
    elif not parts.hostname:
        return f"{shown} names no host"
    elif port == 0:
        return f"{shown} has port 0"
    db: str | None = None
    path = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    if path:
        db = path
    query = parse_qs(parts.query)
    if query.get("db"):
        db = query["db"][0]
    if db is not None and not db.isdigit():
        return f"{shown} has database {db!r}; the database must be a number"
    return _query_problem(shown, parts.scheme, query)


def _query_problem(shown: str, scheme: str, query: Mapping[str, list[str]]) -> str | None:
    parsers = _redis_query_parsers()
    for name, values in query.items():
        if name not in _QUERY_PARAMETERS:
            # redis-py would pass it on as a keyword argument: a TypeError at connect.
            return f"{shown} has an unknown query parameter {name!r}"
        if name.startswith("ssl_") and scheme not in TLS_SCHEMES:
            return f"{shown} has {name!r}, which only a TLS URL (rediss://...) takes"
        if name in SENTINEL_OPTIONS and scheme not in SENTINEL_SCHEMES:
            return f"{shown} has {name!r}, which only a redis+sentinel:// URL takes"
        parser = parsers.get(name)
        if parser is None or not values:
            continue
        try:
            parser(values[0])
        except (TypeError, ValueError):
            return f"{shown} has an invalid value for the query parameter {name!r}"
    return None


def options_problem(url: str, options: Mapping[str, Any]) -> str | None:
    """Why connection ``options`` cannot go with ``url``'s topology, or None.

    A Redis Cluster has only database 0: ``OPTIONS["db"]`` other than 0 with
    a ``redis+cluster://`` URL is refused (redis-py would raise at connect).
    """
    if urlsplit_scheme(url) in CLUSTER_SCHEMES and options.get("db") not in (None, 0, "0"):
        return (
            f'OPTIONS["db"] = {options["db"]!r} with the Redis Cluster URL {mask_url(url)!r}: '
            "a Redis Cluster has only database 0"
        )
    return None


def urlsplit_scheme(url: str) -> str:
    """The scheme of ``url`` as written before ``://`` (lower case), '' when it has none."""
    scheme, sep, _ = str(url).partition("://")
    return scheme.lower() if sep else ""


def topology_of(url: str) -> Topology:
    """``url`` taken apart (:class:`.topology.Topology`); ``ValueError`` when unusable.

    Call :func:`url_problem` first for a message fit to show: this one's
    ``ValueError`` may come from the URL parser.
    """
    return parse_topology(url)


def _redis_query_parsers() -> Mapping[str, Any]:
    """The query parameters redis-py converts (and raises ValueError on), by name."""
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS
    except ImportError:  # pragma: no cover - every supported redis-py has it
        return {}
    return URL_QUERY_ARGUMENT_PARSERS


def raw_query(url: str) -> str:
    """The query string of ``url`` (what ``urlsplit(url).query`` gives for a one-host URL).

    Not ``urlsplit``: on the Pythons that validate bracketed hosts (3.12.x, 3.13, and
    Debian's 3.11.2 with the fix backported), a multi-host topology URL naming an IPv6
    host (``redis+cluster://10.0.0.1:6379,[::1]:6380``) raises "Invalid IPv6 URL".
    """
    return url.partition("#")[0].partition("?")[2]


def url_password(url: str) -> str | None:
    """The password in ``url``'s user info, as written (percent-encoded), or None.

    What ``urlsplit(url).password`` gives, on every URL form (see :func:`raw_query`).
    """
    _, sep, rest = str(url).partition("://")
    if not sep:
        return None
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    _, colon, password = userinfo.partition(":")
    return password if at and colon and password else None


def url_query(url: str) -> dict[str, str]:
    """The query parameters of a URL as redis-py reads them (first value of each)."""
    return {name: values[0] for name, values in parse_qs(raw_query(url)).items() if values}


@dataclass(frozen=True)
class TLSVerification:
    """What a ``rediss://`` connection verifies, from its URL and options (redis-py's rules)."""

    tls: bool  # a rediss:// URL
    cert_reqs: str  # "required" | "optional" | "none"
    #: Whether the certificate must name the host (None: not set, we set True).
    check_hostname: bool | None
    #: Where verification was turned off: "URL", "OPTIONS" or None.
    turned_off_by: str | None

    @property
    def verified(self) -> bool:
        return self.tls and self.cert_reqs != "none" and self.check_hostname is not False


def _cert_reqs(value: Any) -> str:
    import ssl

    if value is None or value == ssl.CERT_NONE or str(value).lower() == "none":
        return "none"
    if value == ssl.CERT_OPTIONAL or str(value).lower() == "optional":
        return "optional"
    return "required"


def tls_verification(url: str, options: Mapping[str, Any]) -> TLSVerification:
    """How a connection to ``url`` with ``options`` verifies the server (URL query wins)."""
    from redis.connection import to_bool as untyped_to_bool

    # redis-py's own parsing of the URL's boolean (the same answer its pool gives); untyped.
    to_bool = cast("Callable[[object], bool | None]", untyped_to_bool)

    tls = urlsplit_scheme(url) in TLS_SCHEMES
    query = url_query(url)
    where: str | None = None
    if "ssl_cert_reqs" in query:
        cert_reqs = _cert_reqs(query["ssl_cert_reqs"])
        where = "URL" if cert_reqs == "none" else None
    else:
        cert_reqs = _cert_reqs(options.get("ssl_cert_reqs", "required"))
        where = "OPTIONS" if cert_reqs == "none" else None
    check_hostname: bool | None = None
    if "ssl_check_hostname" in query:
        check_hostname = to_bool(query["ssl_check_hostname"])
        if check_hostname is False:
            where = where or "URL"
    elif options.get("ssl_check_hostname") is not None:
        check_hostname = bool(options["ssl_check_hostname"])
        if not check_hostname:
            where = where or "OPTIONS"
    return TLSVerification(tls, cert_reqs, check_hostname, where if tls else None)


def server_of(url: str) -> tuple[str, ...] | None:
    """The Redis server a URL points at, ignoring database and credentials (None: unusable).

    ``localhost`` and ``::1`` count as ``127.0.0.1``; for telling, without
    connecting, whether two settings name the same server. A Redis Cluster is
    ``("cluster", seed, ...)`` (the seeds sorted: the same seeds in any order
    are the same cluster), the master of a Sentinel service ``("sentinel",
    SERVICE, sentinel, ...)``: two URLs with different seed lists (or
    Sentinels) are taken for different deployments.
    """
    scheme = urlsplit_scheme(url)
    if scheme in CLUSTER_SCHEMES | SENTINEL_SCHEMES:
        try:
            topology = parse_topology(url)
        except ValueError:
            return None
        addresses = tuple(sorted(set(topology.addresses)))
        if topology.kind == "cluster":
            return ("cluster", *addresses)
        return ("sentinel", str(topology.service), *addresses)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme == "unix":
        return ("unix", parts.path)
    if parts.scheme not in ("redis", "rediss"):
        return None
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1", "[::1]"):
        host = "127.0.0.1"
    return ("tcp", host, str(port or 6379))


def url_db(url: str) -> int:
    """The database a Redis URL selects: ``?db=N``, else ``/N``, else 0 (as redis-py reads it).

    A ``redis+cluster://`` URL selects 0 (a cluster has no other); a
    ``redis+sentinel://`` one its ``/SERVICE/DB``. Raises ``ValueError`` for
    a non-numeric ``?db=`` (check ``redisroles.E005``).
    """
    db = url_db_or_none(url)
    return 0 if db is None else db


def url_db_or_none(url: str) -> int | None:
    """The database a URL names (``?db=`` or the path), None when it names none."""
    if urlsplit_scheme(url) in CLUSTER_SCHEMES | SENTINEL_SCHEMES:
        return parse_topology(url).db
    parts = urlsplit(url)
    query_db = parse_qs(parts.query).get("db")
    if query_db:
        return int(query_db[0] or 0)
    path = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    return int(path) if path.isdigit() else None
