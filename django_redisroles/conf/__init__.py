"""The ``REDISROLES`` setting, resolved per role.

Everything here is read from ``django.conf.settings`` on every access, so
``override_settings`` just works. Values *derived* from settings and kept
(connection pools, a role's resolved options, compiled rules) are
:class:`Resolved` objects or registered with :func:`on_settings_change`, and
the one ``setting_changed`` receiver of the app, in :mod:`.resolved`, drops
them when their settings change.

Shape of the setting::

    REDISROLES = {
        "URL": "redis://127.0.0.1:6379/0",   # default: $REDIS_URL, else this
        "OPTIONS": {...},                     # connection options for every role
        "KEY_PREFIX": "rr",                   # namespace of every key this app writes
        "ROLES": {
            "cache":    {"URL": "...", "OPTIONS": {...}, ...role settings},
            "sessions": {...},
            ...
        },
    }

Submodules: :mod:`.defaults` (names and defaults), :mod:`.urls` (validate,
parse and mask Redis URLs), :mod:`.resolved` (settings-derived values and
their reset). Their public names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .defaults import (
    COMMON_ROLE_KEYS,
    CONNECTION_OPTIONS,
    DEFAULT_KEY_PREFIX,
    DEFAULT_OPTIONS,
    DOCTOR_DEFAULTS,
    FALLBACK_URL,
    ROLE_DEFAULT_OPTIONS,
    ROLE_DEFAULTS,
    ROLES,
    SENTINEL_OPTIONS,
    TOP_LEVEL_KEYS,
    URL_SCHEMES,
)
from .resolved import Resolved, on_settings_change, reset_all
from .topology import Topology, TopologyURLError
from .urls import (
    MASK,
    TLSVerification,
    mask_argv,
    mask_text,
    mask_url,
    options_problem,
    safe_repr,
    server_of,
    tls_verification,
    topology_of,
    url_db,
    url_db_or_none,
    url_password,
    url_problem,
    url_query,
)

__all__ = [
    "COMMON_ROLE_KEYS",
    "CONNECTION_OPTIONS",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_OPTIONS",
    "DOCTOR_DEFAULTS",
    "FALLBACK_URL",
    "GLOB_SPECIAL",
    "MASK",
    "ROLES",
    "ROLE_DEFAULTS",
    "ROLE_DEFAULT_OPTIONS",
    "SENTINEL_OPTIONS",
    "TOP_LEVEL_KEYS",
    "URL_SCHEMES",
    "Resolved",
    "RoleConfig",
    "TLSVerification",
    "Topology",
    "TopologyURLError",
    "default_url",
    "doctor_settings",
    "get",
    "glob_escape",
    "key_prefix",
    "make_key",
    "mask_argv",
    "mask_text",
    "mask_url",
    "on_settings_change",
    "options_problem",
    "raw",
    "reset_all",
    "role_config",
    "role_db",
    "role_options",
    "role_raw",
    "role_settings",
    "role_url",
    "safe_repr",
    "server_of",
    "tls_verification",
    "topology_of",
    "url_db",
    "url_db_or_none",
    "url_password",
    "url_problem",
    "url_query",
]


@dataclass(frozen=True)
class RoleConfig:
    """The resolved configuration of one role."""

    role: str
    url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.settings[name]

    def __repr__(self) -> str:
        # Shown in tracebacks and error reports (frame variables): no credentials.
        options = {k: MASK if "password" in k else v for k, v in self.options.items()}
        return f"RoleConfig(role={self.role!r}, url={mask_url(self.url)!r}, options={options!r})"

    @property
    def connection_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Identity of the pool this role uses: same URL + options, same pool."""
        return (self.url, tuple(sorted((k, repr(v)) for k, v in self.options.items())))


def raw() -> dict[str, Any]:
    """The ``REDISROLES`` setting as written (empty dict when absent)."""
    value = getattr(settings, "REDISROLES", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"REDISROLES must be a dict, got {type(value).__name__}: {safe_repr(value)}"
        )
    return dict(value)


def default_url() -> str:
    """``REDISROLES["URL"]``, else ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``."""
    url = raw().get("URL")
    if url:
        return str(url)
    return os.environ.get("REDIS_URL") or FALLBACK_URL


#: Characters special in a Redis glob pattern (SCAN MATCH, PUBSUB CHANNELS, PSUBSCRIBE).
GLOB_SPECIAL = "*?[]\\"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``SCAN MATCH``, ``PUBSUB CHANNELS``).

    Every SCAN of this app builds its pattern with it: a prefix such as
    ``tenant[1]`` must match itself, not ``tenant1``. (django-redis's own
    ``glob_escape`` leaves ``\\`` alone, so ``a\\b`` matched ``ab``.)
    """
    return "".join("\\" + ch if ch in GLOB_SPECIAL else ch for ch in text)


def role_db(role: str) -> int:
    """The database a role's connections select: the URL's, else ``OPTIONS["db"]``, else 0.

    (redis-py lets the URL win over keyword arguments.) A Redis Cluster's is 0
    (it has no other). Raises ``ValueError`` for a malformed URL (check
    ``redisroles.E005``).
    """
    url = role_url(role)
    if topology_of(url).kind == "cluster":
        return 0
    db = url_db_or_none(url)
    if db is None:
        db = int(role_options(role).get("db") or 0)
    return db


def key_prefix() -> str:
    """Namespace prepended to every key the roles write (``rr`` by default)."""
    return str(raw().get("KEY_PREFIX", DEFAULT_KEY_PREFIX))


def doctor_settings() -> dict[str, Any]:
    """``REDISROLES["DOCTOR"]`` over ``DOCTOR_DEFAULTS`` (validated by check E190)."""
    merged = dict(DOCTOR_DEFAULTS)
    value = raw().get("DOCTOR") or {}
    if isinstance(value, Mapping):
        merged.update(value)
    return merged


def role_raw(role: str) -> dict[str, Any]:
    if role not in ROLES:
        raise ImproperlyConfigured(
            f"Unknown redisroles role {role!r}; the roles are: {', '.join(ROLES)}."
        )
    roles = raw().get("ROLES") or {}
    if not isinstance(roles, Mapping):
        raise ImproperlyConfigured(f"REDISROLES['ROLES'] must be a dict, got {safe_repr(roles)}")
    value = roles.get(role) or {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"REDISROLES['ROLES'][{role!r}] must be a dict, got {safe_repr(value)}"
        )
    return dict(value)


def role_url(role: str) -> str:
    """The Redis URL a role connects to: its own ``URL`` or the default one."""
    return str(role_raw(role).get("URL") or default_url())


def role_options(role: str) -> dict[str, Any]:
    """Connection options of a role: defaults < top-level OPTIONS < role OPTIONS."""
    options = dict(DEFAULT_OPTIONS)
    options.update(ROLE_DEFAULT_OPTIONS.get(role, {}))
    options.update(raw().get("OPTIONS") or {})
    options.update(role_raw(role).get("OPTIONS") or {})
    return options


def role_settings(role: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Role-specific settings as written over ``defaults`` (no URL/OPTIONS).

    ``defaults``: the role's own (its ``options.DEFAULTS``); else ``ROLE_DEFAULTS``.
    """
    merged = dict(ROLE_DEFAULTS.get(role, {}) if defaults is None else defaults)
    merged.update({k: v for k, v in role_raw(role).items() if k not in COMMON_ROLE_KEYS})
    return merged


def role_config(role: str) -> RoleConfig:
    """Everything about one role, resolved now from settings."""
    return RoleConfig(
        role=role,
        url=role_url(role),
        options=role_options(role),
        settings=role_settings(role),
    )


def get(role: str, name: str) -> Any:
    """One role-specific setting, with its default."""
    return role_settings(role)[name]


def make_key(role: str, *parts: str) -> str:
    """A namespaced key: ``<KEY_PREFIX>:<role>:<parts...>``."""
    return ":".join((key_prefix(), role, *parts))
