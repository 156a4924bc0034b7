"""From a role's URL and OPTIONS to the keyword arguments of redis-py's clients.

The same options on every topology: timeouts, TLS verification (the host
name is checked on every supported redis-py), the retry policy of
:mod:`.retries`; a topology URL's credentials, database and query
parameters win over OPTIONS (as with redis-py's ``from_url``). A URL or
option redis-py would refuse is ``ImproperlyConfigured``, masked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis
import redis.backoff
import redis.connection
from django.core.exceptions import ImproperlyConfigured

from .. import conf
from .retries import RETRY_ERRORS, AsyncRoleRetry, RoleRetry

__all__ = [
    "SSL_NAMES",
    "accepted",
    "checked_url",
    "client_kwargs",
    "drop_unaccepted",
    "node_url_and_kwargs",
    "options_checked",
    "pool_from_url",
    "pool_kwargs",
    "tls_connection_class",
    "url_kwargs",
]


def pool_kwargs(options: dict[str, Any], url: str, *, asyncio_: bool = False) -> dict[str, Any]:
    """Turn role OPTIONS into keyword arguments for ``ConnectionPool.from_url``."""
    kwargs = dict(options)
    for name in conf.SENTINEL_OPTIONS:  # the Sentinels', not the data nodes'
        kwargs.pop(name, None)
    attempts = int(kwargs.pop("retry_attempts", 0) or 0)
    backoff = redis.backoff.ExponentialBackoff(cap=0.5, base=0.02)
    if asyncio_:
        kwargs["retry"] = AsyncRoleRetry(backoff, attempts, RETRY_ERRORS)
    else:
        kwargs["retry"] = RoleRetry(backoff, attempts, RETRY_ERRORS)
    if attempts:
        kwargs["retry_on_error"] = list(RETRY_ERRORS)
    if url.startswith("unix://"):
        # Unix-socket connections take no TCP keepalive options.
        kwargs.pop("socket_keepalive", None)
        kwargs.pop("socket_keepalive_options", None)
    tls = conf.tls_verification(url, options)
    if tls.tls and tls.check_hostname is None and tls.cert_reqs != "none":
        # redis-py < 6 does not check that the certificate names the host
        # (ssl_check_hostname=False): any certificate the CA signed, for any
        # name, was accepted. Verified on every supported redis-py.
        kwargs["ssl_check_hostname"] = True
    return kwargs


def checked_url(url: str, where: str) -> str:
    """``url`` if it is a usable Redis URL, else ``ImproperlyConfigured`` naming it masked.

    Never a bare ``ValueError`` from the URL parser, whose text may quote a
    piece of the password.
    """
    problem = conf.url_problem(url)
    if problem is not None:
        raise ImproperlyConfigured(f"The Redis URL of {where} is not usable: {problem}.")
    return url


def pool_from_url(cls: Any, url: str, kwargs: dict[str, Any], where: str) -> Any:
    """``cls.from_url(url, **kwargs)``; a URL redis-py refuses is ``ImproperlyConfigured``.

    ``where`` names the URL's owner in the message ("the cache role").
    """
    checked_url(url, where)
    if conf.topology_of(url).kind != "single":
        raise ImproperlyConfigured(
            f"The Redis URL of {where}, {conf.mask_url(url)!r}, names a Redis Cluster or "
            "a Sentinel service, which has no single connection pool: use "
            "connections.get_redis() / build_engine()."
        )
    try:
        return cls.from_url(url, **kwargs)
    except ValueError:
        # redis-py's message may quote the URL: say which one, masked, and why not.
        raise ImproperlyConfigured(
            f"redis-py refused the Redis URL of {where}, {conf.mask_url(url)!r} "
            "(its message is not shown: it may quote the password); check the query "
            "parameters and options against docs/settings.md."
        ) from None


# -- what a topology URL adds to the options ------------------------------------------------


def url_kwargs(topology: conf.Topology) -> dict[str, Any]:
    """Credentials, database and query parameters of a topology URL, as keyword arguments
    (the URL wins over OPTIONS, as with redis-py's ``from_url``)."""
    kwargs: dict[str, Any] = {}
    parsers = query_parsers()
    for name, value in topology.query.items():
        if name == "db":
            continue
        parser = parsers.get(name)
        kwargs[name] = parser(value) if parser is not None else value
    if topology.username:
        kwargs["username"] = topology.username
    if topology.password:
        kwargs["password"] = topology.password
    if topology.db is not None:
        kwargs["db"] = topology.db
    return kwargs


def query_parsers() -> Mapping[str, Callable[[str], Any]]:
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS
    except ImportError:  # pragma: no cover - every supported redis-py has it
        return {}
    return cast("Mapping[str, Callable[[str], Any]]", URL_QUERY_ARGUMENT_PARSERS)


def client_kwargs(
    url: str, options: Mapping[str, Any], topology: conf.Topology, *, asyncio_: bool
) -> dict[str, Any]:
    kwargs = pool_kwargs(dict(options), url, asyncio_=asyncio_)
    kwargs.update(url_kwargs(topology))
    for name in conf.SENTINEL_OPTIONS:
        kwargs.pop(name, None)
    if topology.tls:
        kwargs["ssl"] = True
    return kwargs


def options_checked(url: str, options: Mapping[str, Any], where: str) -> None:
    problem = conf.options_problem(url, options)
    if problem is not None:
        raise ImproperlyConfigured(f"The connection options of {where} are not usable: {problem}.")


# The TLS connection options: conf.CONNECTION_OPTIONS is the one list of them.
SSL_NAMES = frozenset(name for name in conf.CONNECTION_OPTIONS if name.startswith("ssl_"))


def tls_connection_class(ssl_kwargs: Mapping[str, Any]) -> type[redis.connection.SSLConnection]:
    """An ``SSLConnection`` with these TLS settings built in.

    redis-py's sync cluster client passes only some keyword arguments on to
    its nodes' connections (5.x drops ``ssl_check_hostname``: any certificate
    of the CA, for any name, would pass): the TLS settings travel in the
    connection class instead, the same on every redis-py.
    """
    settings = dict(ssl_kwargs)

    class _VerifiedSSLConnection(redis.connection.SSLConnection):
        def __init__(self, **kwargs: Any) -> None:
            for name in SSL_NAMES:
                kwargs.pop(name, None)
            super().__init__(**kwargs, **settings)

    return _VerifiedSSLConnection


def accepted(cls: Any) -> frozenset[str]:
    return frozenset(inspect.signature(cls.__init__).parameters)


def drop_unaccepted(
    kwargs: dict[str, Any], accepted: frozenset[str], what: str, where: str
) -> None:
    """Remove what ``what`` does not take; an option the user set is ``ImproperlyConfigured``."""
    refused = []
    for name in list(kwargs):
        if name not in accepted:
            value = kwargs.pop(name)
            # Our defaults (health_check_interval...) may not apply to every client.
            if name not in conf.DEFAULT_OPTIONS or value != conf.DEFAULT_OPTIONS[name]:
                refused.append(name)
    if refused:
        raise ImproperlyConfigured(
            f"The connection options {', '.join(sorted(refused))} of {where} are not "
            f"supported by {what} in redis-py {redis.__version__}: remove them from OPTIONS."
        )


def node_url_and_kwargs(
    topology: conf.Topology, options: Mapping[str, Any], host: str, port: int, asyncio_: bool
) -> tuple[str, dict[str, Any]]:
    """A single-server URL for one node of ``topology``, and its keyword arguments."""
    scheme = "rediss" if topology.tls else "redis"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}/0"
    kwargs = pool_kwargs(dict(options), url, asyncio_=asyncio_)
    kwargs.update(url_kwargs(topology))
    kwargs.pop("db", None)  # a node client serves a cluster node (database 0)
    for name in conf.SENTINEL_OPTIONS:
        kwargs.pop(name, None)
    return url, kwargs
