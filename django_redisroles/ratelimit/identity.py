"""Who is the client? ``REMOTE_ADDR`` unless a trusted proxy says otherwise.

``X-Forwarded-For`` / ``Forwarded`` are trusted only when the request comes
from one of ``TRUSTED_PROXIES``; the header is then walked right to left,
skipping our own proxies, and the first address not among them is the
client. Anything a client can prepend is never read. IPv6 addresses are
grouped by prefix (/64 by default: one subscriber usually owns a /64, so
per-address limits would be trivial to dodge).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

logger = logging.getLogger("django_redisroles.ratelimit")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROXY_HEADERS: dict[str, str] = {
    "x-forwarded-for": "HTTP_X_FORWARDED_FOR",
    "forwarded": "HTTP_FORWARDED",
}


@dataclass(frozen=True)
class ProxyConfig:
    """Trusted proxy networks, the header they set, and the address grouping."""

    trusted: tuple[IPNetwork, ...] = ()
    header: str = "x-forwarded-for"
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    meta_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta_key", PROXY_HEADERS[self.header])

    @classmethod
    def from_settings(cls, s: Mapping[str, Any]) -> ProxyConfig:
        """Build from role settings; ``ImproperlyConfigured`` on bad values."""
        return cls(
            trusted=parse_networks(s.get("TRUSTED_PROXIES") or ()),
            header=parse_header(s.get("PROXY_HEADER", "X-Forwarded-For")),
            ipv4_prefix=_prefix(s.get("IPV4_PREFIX", 32), 32, "IPV4_PREFIX"),
            ipv6_prefix=_prefix(s.get("IPV6_PREFIX", 64), 128, "IPV6_PREFIX"),
        )


def parse_networks(values: Any) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        values = [values]
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {value!r} is not an IP address or network "
                "(use e.g. '10.0.0.0/8', '127.0.0.1', 'fd00::/8')."
            )
    return tuple(networks)


def parse_header(value: Any) -> str:
    name = str(value).lower()
    if name not in PROXY_HEADERS:
        raise ImproperlyConfigured(
            f"PROXY_HEADER must be 'X-Forwarded-For' or 'Forwarded', got {value!r}."
        )
    return name


def _prefix(value: Any, maximum: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be an integer from 1 to {maximum}, got {value!r}.")
    return value


_config: ProxyConfig | None = None
_warned_untrusted_header = False


def configure(config: ProxyConfig | None) -> None:
    """Install the proxy configuration (``None``: re-read settings on next use)."""
    global _config, _warned_untrusted_header
    _config = config
    _warned_untrusted_header = False
    _group.cache_clear()
    _walk.cache_clear()


def _current() -> ProxyConfig:
    if _config is None:
        from .core import state

        return state().proxies
    return _config


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


@lru_cache(maxsize=8192)
def _group(addr: str) -> str:
    ip = parse_ip(addr)
    if ip is None:
        # Not an IP (a unix socket peer, an empty REMOTE_ADDR): keep it as its
        # own bucket; it is hashed before it reaches a key.
        return addr or "unknown"
    return _group_ip(ip)


def _group_ip(ip: IPAddress) -> str:
    cfg = _current()
    prefix = cfg.ipv4_prefix if ip.version == 4 else cfg.ipv6_prefix
    if prefix == ip.max_prefixlen:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _trusted(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(ip in net for net in networks)


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


@lru_cache(maxsize=8192)
def _walk(remote: str, header_value: str) -> str:
    cfg = _current()
    ip = parse_ip(remote)
    if ip is None or not _trusted(ip, cfg.trusted):
        return _group(remote)
    last = ip
    for hop in reversed(forwarded_hops(cfg.header, header_value)):
        hop_ip = parse_ip(hop)
        if hop_ip is None:
            # "unknown", "_obfuscated" or garbage: the proxy that wrote it is
            # the last address we can vouch for.
            break
        if not _trusted(hop_ip, cfg.trusted):
            return _group_ip(hop_ip)
        last = hop_ip
    return _group_ip(last)


def client_ip(request: HttpRequest) -> str:
    """The client's address (grouped: an IPv6 /64 by default) for rate limiting."""
    cfg = _config
    if cfg is None:
        cfg = _current()
    meta = request.META
    remote = meta.get("REMOTE_ADDR") or ""
    if cfg.trusted:
        value = meta.get(cfg.meta_key)
        if value:
            if len(value) <= 256:  # a long chain is walked uncached: no cache filling
                return _walk(remote, value)
            return _walk.__wrapped__(remote, value)
    elif not _warned_untrusted_header and cfg.meta_key in meta:
        _warn_untrusted_header(remote)
    return _group(remote)


def _warn_untrusted_header(remote: str) -> None:
    global _warned_untrusted_header
    _warned_untrusted_header = True
    ip = parse_ip(remote)
    if ip is not None and (ip.is_private or ip.is_loopback):
        logger.warning(
            "A request from %s carries a proxy header but REDISROLES['ROLES']['ratelimit']"
            "['TRUSTED_PROXIES'] is empty: every client behind that proxy shares one "
            "rate-limit bucket. Set TRUSTED_PROXIES to your proxies' networks.",
            remote,
        )
