"""Options of the pub/sub channel layer: DEFAULTS < REDISROLES pubsub < CHANNEL_LAYERS CONFIG.

One function validates them, used both by the layer's constructor
(``ImproperlyConfigured``) and by the system checks (``redisroles.E040``/``E041``).
Light imports only (no redis, no channels): the checks and the doctor read it.

The resolved options of a layer are held by the layer object, which Channels
caches per alias; ``layer.py`` drops our layers when ``REDISROLES`` changes
(``conf.on_settings_change``), Channels drops them when ``CHANNEL_LAYERS`` does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .. import conf

#: ``REDISROLES["ROLES"]["pubsub"]`` keys and their defaults. Each is a channel
#: layer option, overridable per layer in ``CHANNEL_LAYERS[alias]["CONFIG"]``
#: (lower-cased); see docs/pubsub.md.
DEFAULTS: dict[str, Any] = {
    "CAPACITY": 100,
    "CHANNEL_CAPACITY": {},
    "EXPIRY": 60,
    "GROUP_EXPIRY": 86400,
    "SERIALIZER_FORMAT": "msgpack",
    "SYMMETRIC_ENCRYPTION_KEYS": None,
    "REPLAY_GROUPS": [],
    "REPLAY_MAXLEN": 1000,
    "REPLAY_TTL": 86400,
    # Rolling upgrade from database-blind channel names: "publish", then
    # "subscribe", then False (docs/pubsub.md#upgrading-channel-names).
    "LEGACY_CHANNELS": False,
}

#: Layer CONFIG keys (lower case) and the REDISROLES pubsub keys they override.
LAYER_KEYS: dict[str, str] = {
    "capacity": "CAPACITY",
    "channel_capacity": "CHANNEL_CAPACITY",
    "expiry": "EXPIRY",
    "group_expiry": "GROUP_EXPIRY",
    "serializer_format": "SERIALIZER_FORMAT",
    "symmetric_encryption_keys": "SYMMETRIC_ENCRYPTION_KEYS",
    "replay_groups": "REPLAY_GROUPS",
    "replay_maxlen": "REPLAY_MAXLEN",
    "replay_ttl": "REPLAY_TTL",
    "legacy_channels": "LEGACY_CHANNELS",
}

#: Values of ``legacy_channels``: the steps of a rolling upgrade from database-blind
#: channel names (see docs/pubsub.md#upgrading-channel-names).
LEGACY_STEPS = (False, "publish", "subscribe")

#: channels_redis options that have no meaning here, with the reason.
FOREIGN_KEYS: dict[str, str] = {
    "hosts": "the layer uses the pubsub role's Redis: set REDISROLES['ROLES']['pubsub']['URL']",
    "prefix": "keys and channels are named by REDISROLES['KEY_PREFIX']",
    "on_disconnect": "reconnects are handled by the layer (see the redisroles.lost event)",
    "on_reconnect": "reconnects are handled by the layer (see the redisroles.lost event)",
}


@dataclass(frozen=True)
class LayerOptions:
    """Resolved, validated options of one layer."""

    capacity: int
    channel_capacity: tuple[tuple[re.Pattern[str], int], ...]
    expiry: float | None
    group_expiry: float | None
    serializer_format: str
    symmetric_encryption_keys: tuple[str | bytes, ...] | None
    replay_groups: tuple[re.Pattern[str], ...]
    replay_maxlen: int
    replay_ttl: float
    legacy_channels: str | bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)


def _positive_int(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{name} must be a positive integer, got {value!r}"
    return None


def _positive_seconds(name: str, value: Any, *, allow_none: bool) -> str | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        extra = " or None (never)" if allow_none else ""
        return f"{name} must be a positive number of seconds{extra}, got {value!r}"
    return None


def problems(values: Mapping[str, Any], *, where: str) -> list[str]:
    """Why ``values`` (layer option name -> value) are unusable; empty when fine."""
    out: list[str] = []
    for name in ("capacity", "replay_maxlen"):
        if (p := _positive_int(f"{where} {name}", values[name])) is not None:
            out.append(p)
    for name, allow_none in (("expiry", True), ("group_expiry", True), ("replay_ttl", False)):
        p = _positive_seconds(f"{where} {name}", values[name], allow_none=allow_none)
        if p is not None:
            out.append(p)
    cc = values["channel_capacity"]
    if not isinstance(cc, Mapping):
        out.append(f"{where} channel_capacity must be a dict of glob -> capacity, got {cc!r}")
    else:
        for pattern, cap in cc.items():
            if (p := _positive_int(f"{where} channel_capacity[{pattern!r}]", cap)) is not None:
                out.append(p)
    fmt = values["serializer_format"]
    if fmt not in ("msgpack", "json"):
        out.append(f"{where} serializer_format must be 'msgpack' or 'json', got {fmt!r}")
    keys = values["symmetric_encryption_keys"]
    if keys is not None:
        if isinstance(keys, str | bytes) or not isinstance(keys, list | tuple) or not keys:
            out.append(
                f"{where} symmetric_encryption_keys must be a non-empty list of keys "
                f"(the first encrypts, all decrypt), got {type(keys).__name__}"
            )
        else:
            try:
                import cryptography  # noqa: F401
            except ImportError:
                out.append(
                    f"{where} symmetric_encryption_keys needs the 'cryptography' package "
                    "(pip install django-redisroles[crypto])"
                )
    legacy = values["legacy_channels"]
    if legacy not in LEGACY_STEPS and legacy is not None:
        out.append(
            f"{where} legacy_channels must be False, 'publish' or 'subscribe' (the steps of "
            f"an upgrade), got {legacy!r}"
        )
    groups = values["replay_groups"]
    if isinstance(groups, str) or not isinstance(groups, list | tuple | set | frozenset):
        out.append(f"{where} replay_groups must be a list of group names or globs, got {groups!r}")
    elif not all(isinstance(g, str) and g for g in groups):
        out.append(f"{where} replay_groups must hold non-empty strings, got {groups!r}")
    return out


def role_values() -> dict[str, Any]:
    """``DEFAULTS`` overridden by ``REDISROLES["ROLES"]["pubsub"]`` (its URL/OPTIONS left out).

    ``ImproperlyConfigured`` when ``REDISROLES`` is malformed (check ``redisroles.E00x``).
    """
    values = dict(DEFAULTS)
    values.update({k: v for k, v in conf.role_raw("pubsub").items() if k in DEFAULTS})
    return values


def merged(config: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Role defaults (REDISROLES) overridden by a layer's CONFIG; plus key errors."""
    role = role_values()
    values = {name: role[key] for name, key in LAYER_KEYS.items()}
    errors: list[str] = []
    for key, value in (config or {}).items():
        if key in LAYER_KEYS:
            values[key] = value
        elif key in FOREIGN_KEYS:
            errors.append(f"CHANNEL_LAYERS CONFIG key {key!r} is not used: {FOREIGN_KEYS[key]}")
        else:
            errors.append(
                f"CHANNEL_LAYERS CONFIG has an unknown key {key!r}; known keys: "
                + ", ".join(sorted(LAYER_KEYS))
            )
    return values, errors


def resolve(config: Mapping[str, Any] | None) -> LayerOptions:
    """Validated options, or ``ImproperlyConfigured`` naming every problem."""
    values, errors = merged(config)
    errors += problems(values, where="pubsub layer option")
    if errors:
        raise ImproperlyConfigured("; ".join(errors) + ".")
    keys = values["symmetric_encryption_keys"]
    return LayerOptions(
        capacity=values["capacity"],
        channel_capacity=tuple(
            (p if hasattr(p, "match") else re.compile(fnmatch.translate(p)), int(c))
            for p, c in values["channel_capacity"].items()
        ),
        expiry=values["expiry"],
        group_expiry=values["group_expiry"],
        serializer_format=values["serializer_format"],
        symmetric_encryption_keys=tuple(keys) if keys else None,
        replay_groups=tuple(re.compile(fnmatch.translate(g)) for g in values["replay_groups"]),
        replay_maxlen=values["replay_maxlen"],
        replay_ttl=float(values["replay_ttl"]),
        legacy_channels=values["legacy_channels"] or False,
        raw=values,
    )
