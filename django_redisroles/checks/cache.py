"""System checks of the cache role (``redisroles.E01x``/``W01x``, see docs/checks.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .. import conf
from .config import validate_url

# The cache package is imported inside the check functions: registering these
# checks at ready() pulls in no cache dependencies (django-redis, redis).


#: OPTIONS that must name a subclass of ours: (our class, why).
_REQUIRED_BASES = {
    "CLIENT_CLASS": (
        "django_redisroles.cache.client.RedisRolesClient",
        "the TTL and clear() guarantees live there.",
    ),
    "CONNECTION_FACTORY": (
        "django_redisroles.cache.client.RoleConnectionFactory",
        "the cache role's connection pools come from there.",
    ),
}


def redisroles_caches() -> dict[str, Mapping[str, Any]]:
    """The ``CACHES`` entries that use RedisRolesCache, by alias."""
    from ..cache.options import BACKEND_PATH

    caches = getattr(settings, "CACHES", None) or {}
    if not isinstance(caches, Mapping):
        return {}
    return {
        str(alias): entry
        for alias, entry in caches.items()
        if isinstance(entry, Mapping) and entry.get("BACKEND") == BACKEND_PATH
    }


def cache_namespace(entry: Mapping[str, Any]) -> str:
    """The KEY_PREFIX a RedisRolesCache entry writes under (its namespace)."""
    from ..cache.keys import default_key_prefix

    if "KEY_PREFIX" in entry:
        return str(entry["KEY_PREFIX"])
    return default_key_prefix()


def cache_locations(entry: Mapping[str, Any]) -> list[str]:
    """The Redis URLs of a RedisRolesCache entry's LOCATION (empty: the cache role's)."""
    location = entry.get("LOCATION")
    if not location:
        return []
    urls = location if isinstance(location, list | tuple) else str(location).split(",")
    return [str(url).strip() for url in urls]


@register()
def check_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every RedisRolesCache entry keeps the TTL promise and has valid OPTIONS."""
    from ..cache import options as cache_options

    errors: list[CheckMessage] = []
    namespaces: dict[tuple[Any, ...], str] = {}
    enclosed: list[tuple[str, Any, Mapping[str, Any]]] = []
    for alias, entry in redisroles_caches().items():
        where = f"CACHES[{alias!r}]"
        options = entry.get("OPTIONS") or {}
        if not isinstance(options, Mapping):
            errors.append(
                Error(
                    f"{where}['OPTIONS'] must be a dict, got {options!r}.",
                    hint="See docs/cache.md for the OPTIONS RedisRolesCache accepts.",
                    id="redisroles.E011",
                )
            )
            continue
        if "TIMEOUT" in entry and entry["TIMEOUT"] is None and not options.get("ALLOW_NO_TIMEOUT"):
            errors.append(
                Error(
                    f"{where}['TIMEOUT'] is None: every key would be written without a TTL, "
                    "and RedisRolesCache requires one (keys without a TTL grow memory for ever).",
                    hint="Set a default TIMEOUT in seconds (e.g. 300), or, if this cache "
                    "really must hold keys that never expire, set "
                    "OPTIONS['ALLOW_NO_TIMEOUT'] = True.",
                    id="redisroles.E010",
                )
            )
        timeout = entry.get("TIMEOUT", 300)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            errors.append(
                Error(
                    f"{where}['TIMEOUT'] must be a number of seconds, got {timeout!r}.",
                    hint="For example 300.",
                    id="redisroles.E010",
                )
            )
        for message, hint in cache_options.problems(options):
            errors.append(
                Error(
                    f"{where}: {message}", hint=hint or "See docs/cache.md.", id="redisroles.E011"
                )
            )
        for name in ("SERIALIZER", "COMPRESSOR", "CLIENT_CLASS", "CONNECTION_FACTORY"):
            path = options.get(name)
            if path is None:
                continue
            try:
                cls = import_string(path)
            except ImportError as exc:
                errors.append(
                    Error(
                        f"{where}['OPTIONS'][{name!r}] = {path!r} cannot be imported ({exc}).",
                        hint="Use a dotted path, e.g. "
                        "'django_redis.serializers.json.JSONSerializer' or "
                        "'django_redis.compressors.zlib.ZlibCompressor'.",
                        id="redisroles.E012",
                    )
                )
                continue
            required = _REQUIRED_BASES.get(name)
            if required is not None:
                base = import_string(required[0])
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    errors.append(
                        Error(
                            f"{where}['OPTIONS'][{name!r}] = {path!r} is not a "
                            f"{base.__name__}: {required[1]}",
                            hint=f"Remove {name}, or subclass {required[0]}.",
                            id="redisroles.E012",
                        )
                    )
        location = entry.get("LOCATION")
        if location:
            urls = location if isinstance(location, list | tuple) else str(location).split(",")
            for url in urls:
                problem = validate_url(url)
                if problem:
                    errors.append(
                        Error(
                            f"{where}['LOCATION'] is not a usable Redis URL: {problem}.",
                            hint="Leave LOCATION out to use the cache role's URL "
                            "(REDISROLES['ROLES']['cache']['URL']).",
                            id="redisroles.E013",
                        )
                    )
        try:
            namespace = cache_namespace(entry)
            # Writes go to the first LOCATION (django-redis's primary), else the role's URL.
            primary = str(urls[0]) if location else conf.role_url("cache")
            server = conf.server_of(primary) or (primary,)
            key = (server, conf.url_db(primary), namespace)
        except (ImproperlyConfigured, ValueError, IndexError):
            continue  # a malformed REDISROLES or LOCATION is E001-E005 / E013's business
        if any(ch in conf.GLOB_SPECIAL for ch in namespace):
            errors.append(
                Error(
                    f"{where}'s KEY_PREFIX {namespace!r} contains a glob character "
                    "(*, ?, [, ] or \\): a delete-by-pattern built from it without escaping "
                    "(redis-cli --scan --pattern, django-redis's delete_pattern) matches "
                    "other prefixes' keys.",
                    hint="Use letters, digits and - _ . : in KEY_PREFIX.",
                    id="redisroles.E014",
                )
            )
        enclosed.append((where, key, entry))
        other = namespaces.get(key)
        if other is not None:
            errors.append(
                Warning(
                    f"{where} and CACHES[{other!r}] write to the same namespace "
                    f"{namespace!r} on the same Redis: they overwrite each other's keys and "
                    "each one's clear() empties both.",
                    hint=f"Give {where} its own KEY_PREFIX.",
                    id="redisroles.W010",
                )
            )
        else:
            namespaces[key] = alias
    return errors + _nested_namespaces(enclosed)


def _key_func(entry: Mapping[str, Any]) -> Any:
    from django.core.cache.backends.base import default_key_func

    path = entry.get("KEY_FUNCTION")
    if path is None:
        return default_key_func
    try:
        return import_string(path) if isinstance(path, str) else path
    except ImportError:
        return default_key_func


def _nested_namespaces(caches: list[tuple[str, Any, Mapping[str, Any]]]) -> list[CheckMessage]:
    """``redisroles.W011``: a cache's ``clear()`` would match another namespace's keys.

    A cache with KEY_PREFIX ``shop`` clears ``shop:<version>:*``; with a
    REDISROLES KEY_PREFIX ``shop:2`` (or another cache's ``shop:2``) on the same
    Redis database, ``shop:2:sessions:...`` looks like version 2 of that cache.
    """
    from ..cache.keys import namespace_regex

    try:
        others = [
            (f"the {role} role's keys", (conf.server_of(url) or (url,), conf.url_db(url)), ns)
            for role in conf.ROLES
            if role != "cache"
            for url in [conf.role_url(role)]
            for ns in [conf.make_key(role)]
        ]
    except (ImproperlyConfigured, ValueError):
        return []  # E001-E005
    others += [(f"{where}'s keys", key[:2], key[2]) for where, key, _ in caches]
    messages: list[CheckMessage] = []
    for where, key, entry in caches:
        regex = namespace_regex(_key_func(entry), key[2], skip_roles=False)
        for other_where, place, other_ns in others:
            if other_where == f"{where}'s keys" or place != key[:2]:
                continue
            if regex.fullmatch(f"{other_ns}:x".encode()):
                messages.append(
                    Warning(
                        f"{where}'s KEY_PREFIX {key[2]!r} encloses {other_where} "
                        f"({other_ns!r}:...) on the same Redis database: "
                        f"{other_ns!r}:... keys look like a version of this cache: a "
                        "delete-by-pattern of the cache's namespace takes them (clear() skips "
                        "keys shaped like a role's, another cache's are not).",
                        hint="Give the cache a KEY_PREFIX that is not followed by ':<number>' "
                        "in another namespace (leave it out: the default is "
                        "'<REDISROLES KEY_PREFIX>:cache').",
                        id="redisroles.W011",
                    )
                )
    return messages
