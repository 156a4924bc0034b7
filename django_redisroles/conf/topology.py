"""What a Redis URL names: one server, a Redis Cluster, or the master of a Sentinel service.

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py parses these);
- ``redis+cluster://[user:pass@]host:port[,host:port...]`` (``rediss+cluster://``):
  a Redis Cluster, discovered from these seed nodes; it has only database 0;
- ``redis+sentinel://[user:pass@]host:port[,host:port...]/SERVICE[/DB]``
  (``rediss+sentinel://``): the master the Sentinels at these addresses name
  for ``SERVICE``. The user and password are the data nodes'; the Sentinels'
  own are the ``sentinel_username`` / ``sentinel_password`` options.

No settings are read and nothing is masked here: :mod:`.urls` validates and
masks, and quotes a problem found here after the masked URL. A problem never
quotes the user info (only the part after the last ``@``, which
``mask_url`` shows too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "TLS_SCHEMES",
    "Topology",
    "TopologyURLError",
    "parse_topology",
]

CLUSTER_SCHEMES: frozenset[str] = frozenset({"redis+cluster", "rediss+cluster"})
SENTINEL_SCHEMES: frozenset[str] = frozenset({"redis+sentinel", "rediss+sentinel"})
TLS_SCHEMES: frozenset[str] = frozenset({"rediss", "rediss+cluster", "rediss+sentinel"})

#: Port of a host named without one.
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379, "single": 6379}

_TAIL = re.compile(r"(?P<hosts>[^/?#]*)(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?(?:#.*)?\Z", re.S)
_HOST = re.compile(r"[A-Za-z0-9._~%-]+\Z")


class TopologyURLError(ValueError):
    """A topology URL that cannot be used; the message names the bad part, never the password."""


@dataclass(frozen=True)
class Topology:
    """A Redis URL taken apart: which kind of deployment, where, and as whom."""

    #: ``redis``, ``rediss``, ``unix``, ``redis+cluster``, ``rediss+sentinel``...
    scheme: str
    #: ``single``, ``cluster`` or ``sentinel``.
    kind: str
    tls: bool
    #: The server (single), the seed nodes (cluster) or the Sentinels, as (host, port).
    hosts: tuple[tuple[str, int], ...]
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    #: The Sentinel service name (``sentinel`` only).
    service: str | None = None
    #: The database the URL names (path or ``?db=``), None when it names none.
    db: int | None = None
    #: The query parameters (first value of each).
    query: Mapping[str, str] = field(default_factory=dict)

    @property
    def addresses(self) -> tuple[str, ...]:
        """``host:port`` of each host, normalised (lower case, ``localhost`` is 127.0.0.1)."""
        return tuple(f"{_normal_host(h)}:{p}" for h, p in self.hosts)


def _normal_host(host: str) -> str:
    host = host.lower().strip("[]")
    return "127.0.0.1" if host in ("localhost", "::1") else host


def _parse_host(item: str, index: int, default_port: int) -> tuple[str, int]:
    where = f"host {index} ({item!r})" if index else f"host {item!r}"
    if not item:
        raise TopologyURLError(
            f"has an empty host in its host list (host {index})" if index else "names no host"
        )
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise TopologyURLError(f"has an invalid IPv6 address in {where}")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = item.partition(":")
        if ":" in port_text:
            raise TopologyURLError(f"has an IPv6 address without brackets in {where}: [addr]:port")
        if colon and not port_text:
            raise TopologyURLError(f"has no port after the ':' of {where}")
        if not host:
            raise TopologyURLError(f"names no host name in {where}")
        if not _HOST.match(host):
            raise TopologyURLError(f"has an invalid host name in {where}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TopologyURLError(f"has an invalid port in {where} (1-65535)")
    return host, int(port_text)


def _single(url: str) -> Topology:
    parts = urlsplit(url)
    port = parts.port  # ValueError for a bad one: url_problem reports it first
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if v}
    db: int | None = None
    path = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    if path.isdigit():
        db = int(path)
    if query.get("db", "").isdigit():
        db = int(query["db"])
    hosts = () if parts.scheme == "unix" else ((parts.hostname or "", port or 6379),)
    return Topology(
        scheme=parts.scheme,
        kind="single",
        tls=parts.scheme in TLS_SCHEMES,
        hosts=hosts,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        db=db,
        query=query,
    )


def parse_topology(url: str) -> Topology:
    """``url`` taken apart; ``TopologyURLError`` (a ``ValueError``) naming what is wrong.

    For ``redis://``/``rediss://``/``unix://`` URLs, parsing is redis-py's
    (``urlsplit``); query parameter names and values are checked by
    ``conf.url_problem``, not here.
    """
    scheme, _, after = url.partition("://")
    if scheme not in CLUSTER_SCHEMES | SENTINEL_SCHEMES:
        return _single(url)
    kind = "cluster" if scheme in CLUSTER_SCHEMES else "sentinel"
    at = after.rfind("@")
    userinfo, tail = (after[:at], after[at + 1 :]) if at >= 0 else ("", after)
    match = _TAIL.match(tail)
    if match is None:  # pragma: no cover - the pattern matches any text
        raise TopologyURLError("is not a URL")
    hosts = tuple(
        _parse_host(item, i + 1 if "," in match["hosts"] else 0, DEFAULT_PORTS[kind])
        for i, item in enumerate(match["hosts"].split(","))
    )
    user, _, password = userinfo.partition(":")
    query = {k: v[0] for k, v in parse_qs(match["query"] or "").items() if v}
    segments = [unquote(s) for s in (match["path"] or "").split("/")[1:]]
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    service: str | None = None
    db: int | None = None
    if kind == "cluster":
        if segments:
            if len(segments) > 1 or not segments[0].isdigit():
                raise TopologyURLError(
                    "has a path; a Redis Cluster URL names no database or service "
                    "(redis+cluster://host:port,host:port)"
                )
            db = int(segments[0])
    else:
        if not segments or not segments[0]:
            raise TopologyURLError(
                "names no Sentinel service: redis+sentinel://host:26379,host:26379/SERVICE[/DB]"
            )
        if len(segments) > 2:
            raise TopologyURLError(
                "has more than /SERVICE/DB in its path: "
                "redis+sentinel://host:26379,host:26379/SERVICE[/DB]"
            )
        service = segments[0]
        if len(segments) == 2:
            if not segments[1].isdigit():
                raise TopologyURLError(
                    f"has database {segments[1]!r} after the service; the database must be a number"
                )
            db = int(segments[1])
    if "db" in query:
        if not query["db"].isdigit():
            raise TopologyURLError(f"has database {query['db']!r}; the database must be a number")
        db = int(query["db"])  # ?db= wins, as in redis-py
    if kind == "cluster" and db:
        raise TopologyURLError(
            f"names database {db}; a Redis Cluster has only database 0 (leave the database out)"
        )
    return Topology(
        scheme=scheme,
        kind=kind,
        tls=scheme in TLS_SCHEMES,
        hosts=hosts,
        username=unquote(user) or None,
        password=unquote(password) or None,
        service=service,
        db=db,
        query=query,
    )
