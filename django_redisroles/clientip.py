"""Who is the client? ``REMOTE_ADDR`` unless a trusted proxy says otherwise.

One proxy-aware client address for every role that needs it (rate limiting
keys on it; the sessions index records it). ``X-Forwarded-For`` /
``Forwarded`` are read only when the request comes from one of
``TRUSTED_PROXIES``; the header is then walked right to left, skipping our
own proxies, and the first address not among them is the client. Anything a
client can prepend is never read.

Settings: ``REDISROLES["TRUSTED_PROXIES"]`` and ``REDISROLES["PROXY_HEADER"]``
(top level; the ratelimit role may set its own, which win for rate limiting).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from . import conf

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = [
    "DEFAULTS",
    "ClientAddresses",
    "Proxies",
    "client_ip",
    "forwarded_hops",
    "parse_ip",
    "problems",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Top-level ``REDISROLES`` keys of this module and their defaults.
DEFAULTS: dict[str, Any] = {
    "TRUSTED_PROXIES": [],  # networks whose proxy header is believed
    "PROXY_HEADER": "X-Forwarded-For",  # or "Forwarded" (RFC 7239)
}

#: Accepted ``PROXY_HEADER`` values (lower case) -> their ``request.META`` key.
PROXY_HEADERS: dict[str, str] = {
    "x-forwarded-for": "HTTP_X_FORWARDED_FOR",
    "forwarded": "HTTP_FORWARDED",
}


def _networks(values: Any) -> tuple[tuple[IPNetwork, ...], list[str]]:
    if values is None:
        return (), []
    if isinstance(values, str):
        values = [values]
    networks: list[IPNetwork] = []
    bad: list[str] = []
    try:
        items = list(values)
    except TypeError:
        return (), [f"TRUSTED_PROXIES must be a list of addresses or networks, got {values!r}."]
    for value in items:
        try:
            networks.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            bad.append(
                f"TRUSTED_PROXIES: {value!r} is not an IP address or network "
                "(use e.g. '10.0.0.0/8', '127.0.0.1', 'fd00::/8')."
            )
    return tuple(networks), bad


def _header(value: Any) -> tuple[str, list[str]]:
    name = str(value).lower()
    if name not in PROXY_HEADERS:
        return "", [f"PROXY_HEADER must be 'X-Forwarded-For' or 'Forwarded', got {value!r}."]
    return name, []


def problems(values: Mapping[str, Any]) -> list[str]:
    """Why ``TRUSTED_PROXIES`` / ``PROXY_HEADER`` in ``values`` are unusable (empty: fine).

    Missing keys take their defaults. Used by the runtime (first problem ->
    ``ImproperlyConfigured``) and by the system checks alike.
    """
    found = _networks(values.get("TRUSTED_PROXIES"))[1]
    found += _header(values.get("PROXY_HEADER", DEFAULTS["PROXY_HEADER"]))[1]
    return found


@dataclass(frozen=True)
class Proxies:
    """Trusted proxy networks and the header they set."""

    trusted: tuple[IPNetwork, ...] = ()
    header: str = "x-forwarded-for"
    meta_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta_key", PROXY_HEADERS[self.header])

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> Proxies:
        """From ``TRUSTED_PROXIES`` / ``PROXY_HEADER``; ``ImproperlyConfigured`` on bad values."""
        found = problems(values)
        if found:
            raise ImproperlyConfigured(found[0])
        return cls(
            trusted=_networks(values.get("TRUSTED_PROXIES"))[0],
            header=_header(values.get("PROXY_HEADER", DEFAULTS["PROXY_HEADER"]))[0],
        )


def top_level() -> dict[str, Any]:
    """The top-level ``TRUSTED_PROXIES`` / ``PROXY_HEADER``, defaults filled in."""
    written = conf.raw()
    return {name: written.get(name, default) for name, default in DEFAULTS.items()}


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header hop or ``REMOTE_ADDR`` (port, brackets, quotes dropped)."""
    value = value.strip().strip('"')
    if not value:
        return None
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def forwarded_hops(header: str, value: str) -> list[str]:
    """The client addresses listed in a proxy header, leftmost first."""
    if header == "x-forwarded-for":
        return [hop.strip() for hop in value.split(",")]
    hops = []
    for element in value.split(","):
        found = ""
        for pair in element.split(";"):
            name, _, val = pair.strip().partition("=")
            if name.lower() == "for":
                found = val.strip()
        hops.append(found)
    return hops


class ClientAddresses:
    """Client addresses of requests under one proxy configuration, cached.

    ``ipv4_prefix`` / ``ipv6_prefix`` group addresses into networks (rate
    limiting counts an IPv6 /64 as one client); the defaults keep whole
    addresses. ``on_untrusted_header(remote)`` is called once (per instance)
    when a request carries the proxy header but no proxy is trusted. Build a
    new instance when the settings change: the caches belong to it.
    """

    __slots__ = ("_on_untrusted", "_walk", "group", "ipv4_prefix", "ipv6_prefix", "proxies")

    def __init__(
        self,
        proxies: Proxies,
        *,
        ipv4_prefix: int = 32,
        ipv6_prefix: int = 128,
        on_untrusted_header: Callable[[str], None] | None = None,
    ) -> None:
        self.proxies = proxies
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self._on_untrusted = on_untrusted_header
        #: ``group(address) -> str``: one address as this instance groups it (cached).
        self.group: Callable[[str], str] = lru_cache(maxsize=8192)(self._group)
        self._walk: Callable[[str, str], str] = lru_cache(maxsize=8192)(self._walk_uncached)

    def client_ip(self, request: HttpRequest) -> str:
        """The client's address (or network, when grouped) as a string."""
        meta = request.META
        remote = meta.get("REMOTE_ADDR") or ""
        proxies = self.proxies
        if proxies.trusted:
            value = meta.get(proxies.meta_key)
            if value:
                if len(value) <= 256:  # a long chain is walked uncached: no cache filling
                    return self._walk(remote, value)
                return self._walk_uncached(remote, value)
        elif self._on_untrusted is not None and proxies.meta_key in meta:
            warn, self._on_untrusted = self._on_untrusted, None  # once
            warn(remote)
        return self.group(remote)

    def _group(self, addr: str) -> str:
        ip = parse_ip(addr)
        if ip is None:
            # Not an IP (a unix socket peer, an empty REMOTE_ADDR): keep it as
            # its own client.
            return addr or "unknown"
        return self._group_ip(ip)

    def _group_ip(self, ip: IPAddress) -> str:
        prefix = self.ipv4_prefix if ip.version == 4 else self.ipv6_prefix
        if prefix == ip.max_prefixlen:
            return str(ip)
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def _walk_uncached(self, remote: str, header_value: str) -> str:
        trusted = self.proxies.trusted
        ip = parse_ip(remote)
        if ip is None or not any(ip in net for net in trusted):
            return self.group(remote)
        last = ip
        for hop in reversed(forwarded_hops(self.proxies.header, header_value)):
            hop_ip = parse_ip(hop)
            if hop_ip is None:
                # "unknown", "_obfuscated" or garbage: the proxy that wrote it
                # is the last address we can vouch for.
                break
            if not any(hop_ip in net for net in trusted):
                return self._group_ip(hop_ip)
            last = hop_ip
        return self._group_ip(last)


def _resolve() -> ClientAddresses:
    return ClientAddresses(Proxies.from_settings(top_level()))


#: Whole client addresses under the top-level proxy settings.
ADDRESSES: conf.Resolved[ClientAddresses] = conf.Resolved(_resolve, name="clientip.ADDRESSES")


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or what the trusted proxies say it is.

    Uses the top-level ``REDISROLES["TRUSTED_PROXIES"]`` / ``["PROXY_HEADER"]``;
    ``ImproperlyConfigured`` when they are malformed (system check
    ``redisroles.E035``). Not grouped: an IPv6 client is its whole address.
    """
    return ADDRESSES.get().client_ip(request)
