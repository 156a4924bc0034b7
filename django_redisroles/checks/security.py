"""Security checks that need no connection (see docs/checks.md#security-check---deploy).

Registered with ``deploy=True`` (``check --deploy``): what matters on a
production host, and would be noise on a laptop with a self-signed
certificate or a one-instance demo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
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


REPORTER_FILTER = "django_redisroles.reporting.ExceptionReporterFilter"


def _has_password(url: str) -> bool:
    """Whether ``url`` carries a password: in its user info, or a ``*password*`` query value."""
    if conf.url_problem(url) is not None:
        return conf.mask_url(url) != url  # malformed (E005): assume the worst
    if conf.url_password(url):
        return True
    return any("password" in name.lower() for name in conf.url_query(url))


def _filter_is_ours() -> bool:
    from django.utils.module_loading import import_string

    from ..reporting import ExceptionReporterFilter

    path = getattr(settings, "DEFAULT_EXCEPTION_REPORTER_FILTER", "")
    try:
        cls = import_string(path) if isinstance(path, str) else path
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, ExceptionReporterFilter)


@register(TAG, deploy=True)
def check_error_reports(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``redisroles.W001``: a password in a Redis URL would show in Django's error reports."""
    try:
        targets = list(connection_targets())
    except ImproperlyConfigured:
        return []
    leaky = sorted({who for who, url, _ in targets if _has_password(url)})
    if not leaky or _filter_is_ours():
        return []
    return [
        Warning(
            f"The Redis URL of {', '.join(leaky)} carries a password: Django's error reports "
            "(the DEBUG page, the e-mails to ADMINS) hide settings by name, not by value, so "
            "they would show it, and so would a $REDIS_URL in request.META under runserver.",
            hint="Move the password to OPTIONS, read from the environment "
            '({"OPTIONS": {"password": os.environ["REDIS_PASSWORD"]}}), or set '
            f'DEFAULT_EXCEPTION_REPORTER_FILTER = "{REPORTER_FILTER}" (see docs/security.md).',
            id="redisroles.W001",
        )
    ]


def _pickled(entry: Mapping[str, Any]) -> bool:
    options = entry.get("OPTIONS") or {}
    path = options.get("SERIALIZER") if isinstance(options, Mapping) else None
    # django-redis's default serializer is pickle.
    return path is None or "pickle" in str(path).lower()


@register(TAG, deploy=True)
def check_pickle_on_shared_server(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``redisroles.W012``: a pickling cache on a server other roles use too."""
    messages: list[CheckMessage] = []
    try:
        role_servers = {
            role: conf.server_of(conf.role_url(role)) for role in conf.ROLES if role != "cache"
        }
        default_url = conf.role_url("cache")
    except ImproperlyConfigured:
        return []
    for alias, entry in redisroles_caches().items():
        if not _pickled(entry):
            continue
        locations = cache_locations(entry) or [default_url]
        server = conf.server_of(locations[0])
        shared = sorted(role for role, other in role_servers.items() if server and other == server)
        if not shared:
            continue
        messages.append(
            Warning(
                f"CACHES[{alias!r}] uses a pickle serializer (django-redis's default) on the "
                f"Redis server of the {', '.join(shared)} role(s): whoever can write one key "
                "there (another app, a leaked password of a role's user) can plant a pickle "
                "that runs code in this process on the next cache.get().",
                hint='Use OPTIONS["SERIALIZER"] = "django_redis.serializers.json.JSONSerializer" '
                '(or "django_redis.serializers.msgpack.MSGPackSerializer"), or give the cache '
                "its own server (see docs/cache.md and docs/security.md).",
                id="redisroles.W012",
            )
        )
    return messages


@register(TAG, deploy=True)
def check_default_prefix(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``redisroles.W003``: the default KEY_PREFIX, shared by every project that keeps it."""
    try:
        written = conf.raw().get("KEY_PREFIX")
    except ImproperlyConfigured:
        return []
    if written is not None and str(written) != conf.DEFAULT_KEY_PREFIX:
        return []
    what = "has no KEY_PREFIX: the default" if written is None else "sets KEY_PREFIX to the default"
    return [
        Warning(
            f"REDISROLES {what} {conf.DEFAULT_KEY_PREFIX!r}, which is every "
            "project's. Two projects (or a staging and a production) that keep it and use the "
            "same Redis server and database share every key, session and pub/sub group: "
            "one's clear() empties the other's cache, and their broadcasts reach each other.",
            hint='Set a KEY_PREFIX of this project and environment, e.g. "KEY_PREFIX": '
            '"shop-prod" (existing keys under the old prefix are left to expire).',
            id="redisroles.W003",
        )
    ]
