"""Shape of the ``REDISROLES`` setting (``redisroles.E001``-``E009``, ``W004``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf
from ..conf.topology import CLUSTER_SCHEMES, SENTINEL_SCHEMES

#: Connection options we pass through to redis-py (plus our ``retry_attempts``).
KNOWN_OPTIONS: frozenset[str] = conf.CONNECTION_OPTIONS

#: Options that would change what the roles get back from Redis.
FORBIDDEN_OPTIONS: dict[str, str] = {
    "decode_responses": "each role decodes its own values; a global decode breaks binary data",
    "connection_class": "the connection class follows the URL scheme (redis, rediss, unix)",
}


#: Roles whose options are not keys of ``REDISROLES["ROLES"][role]``: the cache's are
#: per ``CACHES`` alias (``cache/options.py``); its role dict takes ``URL``/``OPTIONS`` only.
NO_ROLE_KEYS: frozenset[str] = frozenset({"cache"})


def role_defaults(role: str) -> Mapping[str, Any]:
    """The keys ``REDISROLES["ROLES"][role]`` may hold besides URL/OPTIONS, with their defaults.

    ``conf.ROLE_DEFAULTS[role]`` while the role's entry is there; else the ``DEFAULTS`` of
    the role's ``options`` module (issue 13 moves each entry there), imported here, when a
    check runs, never at start-up. ``E004`` and tests/test_docs_consistency.py read this.
    """
    if role in NO_ROLE_KEYS:
        return {}
    if role in conf.ROLE_DEFAULTS:
        return conf.ROLE_DEFAULTS[role]
    options = importlib.import_module(f"{__package__.rpartition('.')[0]}.{role}.options")
    defaults: Mapping[str, Any] = options.DEFAULTS
    return defaults


def validate_url(url: Any) -> str | None:
    """Why ``url`` is not a usable Redis URL, or None when it is (``conf.url_problem``)."""
    return conf.url_problem(url)


def _check_options(where: str, options: Any) -> list[CheckMessage]:
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [
            Error(
                f"{where} must be a dict of connection options, got {conf.safe_repr(options)}.",
                hint='For example {"socket_timeout": 1.0, "max_connections": 50}.',
                id="redisroles.E006",
            )
        ]
    errors: list[CheckMessage] = []
    for name in options:
        if name in FORBIDDEN_OPTIONS:
            errors.append(
                Error(
                    f"{where} sets {name!r}, which redisroles does not allow: "
                    f"{FORBIDDEN_OPTIONS[name]}.",
                    hint=f"Remove {name!r} from {where}.",
                    id="redisroles.E006",
                )
            )
        elif name not in KNOWN_OPTIONS:
            errors.append(
                Error(
                    f"{where} has an unknown connection option {name!r}.",
                    hint="Known options: " + ", ".join(sorted(KNOWN_OPTIONS)) + ".",
                    id="redisroles.E006",
                )
            )
    return errors


#: A topology URL's form, for the hint of ``redisroles.E008``.
TOPOLOGY_FORMS = {
    "cluster": "redis+cluster://[user:pass@]host:port[,host:port...] (rediss+cluster:// for "
    "TLS); a Redis Cluster has only database 0",
    "sentinel": "redis+sentinel://[user:pass@]host:port[,host:port...]/SERVICE[/DB] "
    "(rediss+sentinel:// for TLS); the Sentinels' own credentials go in "
    'OPTIONS["sentinel_username"] / ["sentinel_password"]',
}


def _check_url(where: str, url: Any) -> list[CheckMessage]:
    problem = validate_url(url)
    if problem is None:
        return []
    scheme = str(url).partition("://")[0].lower() if isinstance(url, str) else ""
    if scheme in CLUSTER_SCHEMES | SENTINEL_SCHEMES:
        kind = "cluster" if scheme in CLUSTER_SCHEMES else "sentinel"
        return [
            Error(
                f"{where} is not a usable Redis {kind.capitalize()} URL: {problem}.",
                hint=f"The form is {TOPOLOGY_FORMS[kind]}.",
                id="redisroles.E008",
            )
        ]
    return [
        Error(
            f"{where} is not a usable Redis URL: {problem}.",
            hint="Examples: redis://127.0.0.1:6379/0, rediss://user:pass@host:6380/0, "
            "unix:///run/redis/redis.sock?db=0; a Redis Cluster: redis+cluster://host:port,"
            "host:port; a Sentinel service: redis+sentinel://host:26379,host:26379/SERVICE/0.",
            id="redisroles.E005",
        )
    ]


def _check_topology_options() -> list[CheckMessage]:
    """Each role's resolved options against its URL's topology (E009, W004).

    Run once the shape of ``REDISROLES`` is right: the URL and the options may
    come from different levels (a role's URL, the top-level OPTIONS). Roles
    with the same problem get one message naming them all.
    """
    unfit: dict[str, list[str]] = {}  # problem -> roles
    ignored: dict[tuple[str, str], list[str]] = {}  # (masked URL, options) -> roles
    for role in conf.ROLES:
        try:
            cfg = conf.role_config(role)
        except (ImproperlyConfigured, ValueError):
            continue  # the URL's own error is E005/E008
        problem = conf.options_problem(cfg.url, cfg.options)
        if problem is not None:
            unfit.setdefault(problem, []).append(role)
        given = sorted(name for name in conf.SENTINEL_OPTIONS if cfg.options.get(name))
        if given and cfg.url.partition("://")[0].lower() not in SENTINEL_SCHEMES:
            ignored.setdefault((conf.mask_url(cfg.url), ", ".join(given)), []).append(role)
    messages: list[CheckMessage] = [
        Error(
            f"The connection options of the {_roles(roles)} do not fit its URL: {problem}.",
            hint='Leave OPTIONS["db"] out (or 0) for a Redis Cluster.',
            id="redisroles.E009",
        )
        for problem, roles in unfit.items()
    ]
    messages += [
        Warning(
            f"The OPTIONS of the {_roles(roles)} set {names}, which only a redis+sentinel:// "
            f"URL uses; its URL {url!r} is not one, so they are ignored.",
            hint="Use a redis+sentinel://host:26379,.../SERVICE URL, or remove them from OPTIONS.",
            id="redisroles.W004",
        )
        for (url, names), roles in ignored.items()
    ]
    return messages


def _roles(roles: list[str]) -> str:
    return f"{roles[0]} role" if len(roles) == 1 else f"{', '.join(roles)} roles"


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``REDISROLES`` is a dict with known keys, known roles and valid URLs."""
    value = getattr(settings, "REDISROLES", None)
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return [
            Error(
                f"REDISROLES must be a dict, got {type(value).__name__}: {conf.safe_repr(value)}.",
                hint='REDISROLES = {"URL": "redis://127.0.0.1:6379/0"}',
                id="redisroles.E001",
            )
        ]
    errors: list[CheckMessage] = []
    for key in value:
        if key not in conf.TOP_LEVEL_KEYS:
            errors.append(
                Error(
                    f"REDISROLES has an unknown key {key!r}.",
                    hint="Known keys: " + ", ".join(sorted(conf.TOP_LEVEL_KEYS)) + ".",
                    id="redisroles.E002",
                )
            )
    if "URL" in value:
        errors += _check_url('REDISROLES["URL"]', value["URL"])
    else:
        errors += _check_url("REDISROLES URL (from $REDIS_URL)", conf.default_url())
    errors += _check_options('REDISROLES["OPTIONS"]', value.get("OPTIONS"))
    if "KEY_PREFIX" in value and (
        not isinstance(value["KEY_PREFIX"], str) or not value["KEY_PREFIX"]
    ):
        errors.append(
            Error(
                "REDISROLES['KEY_PREFIX'] must be a non-empty string, "
                f"got {value['KEY_PREFIX']!r}.",
                hint='For example "KEY_PREFIX": "myproject".',
                id="redisroles.E002",
            )
        )

    prefix = value.get("KEY_PREFIX")
    if isinstance(prefix, str) and any(ch in conf.GLOB_SPECIAL for ch in prefix):
        errors.append(
            Error(
                f"REDISROLES['KEY_PREFIX'] {prefix!r} contains a glob character "
                "(*, ?, [, ] or \\): a pattern built from it without escaping, such as "
                "redis-cli --scan --pattern or another app's delete-by-pattern, matches other "
                "prefixes' keys.",
                hint="Use letters, digits and - _ . : in KEY_PREFIX.",
                id="redisroles.E007",
            )
        )

    roles = value.get("ROLES") or {}
    if not isinstance(roles, Mapping):
        return [
            *errors,
            Error(
                'REDISROLES["ROLES"] must be a dict of role name to settings, got '
                f"{conf.safe_repr(roles)}.",
                hint='REDISROLES = {"ROLES": {"cache": {"URL": "redis://cache-host:6379/0"}}}',
                id="redisroles.E003",
            ),
        ]
    for role, role_value in roles.items():
        where = f'REDISROLES["ROLES"][{role!r}]'
        if role not in conf.ROLES:
            errors.append(
                Error(
                    f"REDISROLES names an unknown role {role!r}.",
                    hint="The roles are: " + ", ".join(conf.ROLES) + ".",
                    id="redisroles.E003",
                )
            )
            continue
        if role_value is None:
            continue
        if not isinstance(role_value, Mapping):
            errors.append(
                Error(
                    f"{where} must be a dict, got {conf.safe_repr(role_value)}.",
                    hint=f'{where} = {{"URL": "redis://host:6379/0"}}',
                    id="redisroles.E004",
                )
            )
            continue
        allowed = conf.COMMON_ROLE_KEYS | set(role_defaults(role))
        for key in role_value:
            if key not in allowed:
                errors.append(
                    Error(
                        f"{where} has an unknown key {key!r}.",
                        hint=f"Keys the {role} role accepts: " + ", ".join(sorted(allowed)) + ".",
                        id="redisroles.E004",
                    )
                )
        if "URL" in role_value:
            errors += _check_url(f"{where}['URL']", role_value["URL"])
        errors += _check_options(f"{where}['OPTIONS']", role_value.get("OPTIONS"))
    if not errors:
        errors += _check_topology_options()
    return errors
