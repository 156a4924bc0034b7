"""Security checks that need no connection (see docs/checks.md#security-check---deploy).

Registered with ``deploy=True`` (``check --deploy``): what matters on a
production host, and would be noise on a laptop with a self-signed
certificate or a one-instance demo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.core.checks import CheckMessage, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf
from .cache import cache_locations, redisroles_caches

TAG = "redisroles"


def connection_targets() -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(who, url, options) of every connection the app makes: each role, each LOCATION."""
    for role in conf.ROLES:
        yield f"the {role} role", conf.role_url(role), conf.role_options(role)
    cache_options = conf.role_options("cache")
    for alias, entry in redisroles_caches().items():
        for url in cache_locations(entry):
            yield f"CACHES[{alias!r}]['LOCATION']", url, cache_options


@register(TAG, deploy=True)
def check_tls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``redisroles.W002``: a ``rediss://`` connection that does not verify the server."""
    messages: list[CheckMessage] = []
    try:
        targets = list(connection_targets())
    except ImproperlyConfigured:
        return []  # E001-E004
    for who, url, options in targets:
        if conf.url_problem(url) is not None:
            continue  # E005/E013
        tls = conf.tls_verification(url, options)
        if not tls.tls or tls.verified:
            continue
        what = (
            "the certificate is not verified at all (ssl_cert_reqs none)"
            if tls.cert_reqs == "none"
            else "the certificate is not checked against the host name (ssl_check_hostname off)"
        )
        messages.append(
            Warning(
                f"TLS verification is turned off for {who} ({conf.mask_url(url)}) by its "
                f"{tls.turned_off_by}: {what}, so anyone on the network path can pose as "
                "the server and read the password and the data.",
                hint="Remove ssl_cert_reqs/ssl_check_hostname from the URL and OPTIONS, and "
                'give the server\'s CA: OPTIONS["ssl_ca_certs"] = "/path/to/ca.pem" '
                "(see docs/security.md#tls).",
                id="redisroles.W002",
            )
        )
    return messages
