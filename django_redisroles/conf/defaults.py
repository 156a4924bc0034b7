"""Names and default values of the ``REDISROLES`` setting (no settings are read here).

Role-specific defaults (``ROLE_DEFAULTS``) are moving into each role's
``options.py``; connection-option defaults stay here because ``connections``
needs them and must not import the roles.
"""

from __future__ import annotations

from typing import Any

ROLES: tuple[str, ...] = ("cache", "sessions", "ratelimit", "pubsub", "locks")

FALLBACK_URL = "redis://127.0.0.1:6379/0"
URL_SCHEMES: tuple[str, ...] = (
    "redis",
    "rediss",
    "unix",
    # A Redis Cluster (seed nodes) and the master of a Sentinel service: conf.topology.
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)

#: Keys accepted at the top level of ``REDISROLES`` (``TRUSTED_PROXIES`` and
#: ``PROXY_HEADER``: see ``django_redisroles.clientip``).
TOP_LEVEL_KEYS: frozenset[str] = frozenset(
    {"URL", "OPTIONS", "KEY_PREFIX", "ROLES", "DOCTOR", "TRUSTED_PROXIES", "PROXY_HEADER"}
)

#: Keys every role accepts.
COMMON_ROLE_KEYS: frozenset[str] = frozenset({"URL", "OPTIONS"})

#: Connection options, as redis-py keyword arguments plus ``retry_attempts``
#: (our own: how many times a command is retried on a connection error or
#: timeout, with exponential backoff). Explicit timeouts matter: redis-py's
#: default is to wait forever, which turns a Redis outage into stuck workers.
DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 2.0,
    "socket_keepalive": True,
    "retry_attempts": 2,
    "health_check_interval": 30,
    "max_connections": 100,
    # Named connections let `CLIENT LIST` and `redisroles doctor` tell ours apart.
    "client_name": "redisroles",
}

#: Connection options passed through to redis-py (plus our ``retry_attempts``);
#: any other name in ``OPTIONS`` is check ``redisroles.E006``.
CONNECTION_OPTIONS: frozenset[str] = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "retry_attempts",
        "retry_on_timeout",
        "health_check_interval",
        "max_connections",
        "client_name",
        "username",
        "password",
        "db",
        "protocol",
        "encoding",
        "encoding_errors",
        "lib_name",
        "lib_version",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_check_hostname",
        "ssl_password",
        "ssl_min_version",
        "ssl_ciphers",
        # redis+sentinel:// only: the Sentinels' own credentials (the URL's are the
        # data nodes'); ignored for other URLs.
        "sentinel_username",
        "sentinel_password",
    }
)

#: Connection options that only a ``redis+sentinel://`` URL uses.
SENTINEL_OPTIONS: frozenset[str] = frozenset({"sentinel_username", "sentinel_password"})

#: Per-role connection option defaults, layered over ``DEFAULT_OPTIONS``.
ROLE_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "cache": {},
    "sessions": {},
    # A rate-limit check sits in front of every request: an outage must cost
    # milliseconds, not seconds, before the failure policy kicks in.
    "ratelimit": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25, "retry_attempts": 0},
    "pubsub": {},
    "locks": {},
}

#: Role-specific settings and their defaults. A key not listed here (nor in
#: ``COMMON_ROLE_KEYS``) is reported by the ``redisroles.E004`` check.
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cache": {},
}


#: ``REDISROLES["KEY_PREFIX"]`` when it is not set: every project's (deploy check W003).
DEFAULT_KEY_PREFIX = "rr"


#: ``REDISROLES["DOCTOR"]``: how ``redisroles doctor`` and the deploy checks
#: (``redisroles.E1xx``/``W1xx``) look at the servers. See docs/operations.md.
DOCTOR_DEFAULTS: dict[str, Any] = {
    # "deploy": the Redis checks run with `check --deploy` only; "always": with
    # every `check` (runserver too); "never": only `redisroles doctor` runs them.
    "CHECKS": "deploy",
    "TIMEOUT": 1.0,  # connect and per-command timeout, seconds
    "PINGS": 10,  # round trips measured per server (the median is reported)
    "MAX_KEYS": 100_000,  # keys sampled per database, at most
    "MAX_SECONDS": 10.0,  # time budget of the whole key sampling
    "SCAN_COUNT": 1000,  # SCAN ... COUNT per call (never KEYS)
    "EXAMPLES": 5,  # example keys shown per finding
    "LATENCY_WARN_MS": 10.0,  # median PING above this is a warning
    "NEW_CONNECTIONS_WARN": 10.0,  # new connections per second: connect-per-request
    "CLIENT_WINDOW": 0.5,  # seconds over which the new-connection rate is measured
    "STREAM_MAX_LEN": 10_000,  # replay stream cap assumed when the pubsub role sets none
}
