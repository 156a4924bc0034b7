"""System checks of the pubsub role (see docs/checks.md).

``redisroles.E040``: a REDISROLES pubsub setting has an unusable value.
``redisroles.E041``: a ``CHANNEL_LAYERS`` entry using our layer has a bad CONFIG.
``redisroles.W040``: replay is on but a consumer's queue cannot hold a full catch-up.
``redisroles.W041``: pubsub settings are set but no channel layer uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf

BACKEND = "django_redisroles.pubsub.RedisRolesChannelLayer"


def _our_layers() -> list[tuple[str, Mapping[str, Any]]]:
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, Mapping):
        return []
    out = []
    for alias, entry in layers.items():
        if isinstance(entry, Mapping) and entry.get("BACKEND") == BACKEND:
            config = entry.get("CONFIG") or {}
            out.append((str(alias), config if isinstance(config, Mapping) else {"?": config}))
    return out


@register()
def check_pubsub(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # Imported here, not at start-up: ready() imports every checks module.
    from ..pubsub import options as layer_options

    try:
        values, _ = layer_options.merged({})
    except ImproperlyConfigured:
        return []  # the configuration checks (E00x) report a malformed REDISROLES
    errors: list[CheckMessage] = [
        Error(
            f"{problem}.",
            hint="See docs/pubsub.md#settings; for example "
            'REDISROLES["ROLES"]["pubsub"] = {"CAPACITY": 100, '
            '"REPLAY_GROUPS": ["notifications"]}.',
            id="redisroles.E040",
        )
        for problem in layer_options.problems(values, where='REDISROLES["ROLES"]["pubsub"]')
    ]
    if errors:
        return errors
    ours = _our_layers()
    written = (conf.raw().get("ROLES") or {}).get("pubsub") or {}
    customised = sorted(set(layer_options.DEFAULTS) & set(written))
    if customised and not ours:
        errors.append(
            Warning(
                f'REDISROLES["ROLES"]["pubsub"] sets {", ".join(customised)}, but no '
                "CHANNEL_LAYERS entry uses django_redisroles.pubsub.RedisRolesChannelLayer: "
                "these settings do nothing, and broadcast() raises ImproperlyConfigured.",
                hint='CHANNEL_LAYERS = {"default": {"BACKEND": '
                '"django_redisroles.pubsub.RedisRolesChannelLayer"}}',
                id="redisroles.W041",
            )
        )
    for alias, config in ours:
        values, key_errors = layer_options.merged(config)
        where = f"CHANNEL_LAYERS[{alias!r}]['CONFIG']"
        problems = [f"{where}: {e}" for e in key_errors]
        problems += layer_options.problems(values, where=where)  # these name `where` already
        for problem in problems:
            errors.append(
                Error(
                    f"{problem}.",
                    hint="The layer takes its Redis from REDISROLES; CONFIG keys are the "
                    "lower-case pubsub settings (capacity, expiry, group_expiry, "
                    "symmetric_encryption_keys, replay_groups, ...).",
                    id="redisroles.E041",
                )
            )
        if key_errors or errors:
            continue
        # channel_capacity may give the replay consumers' channels the room (the hint).
        largest = max([values["capacity"], *values["channel_capacity"].values()])
        if values["replay_groups"] and largest < values["replay_maxlen"]:
            errors.append(
                Warning(
                    f"{where}: capacity {values['capacity']} is below replay_maxlen "
                    f"{values['replay_maxlen']}: a consumer catching up on a full replay "
                    "stream gets a redisroles.lost event instead of every message.",
                    hint="Raise capacity (or channel_capacity for the replay consumers' "
                    "channels) to at least replay_maxlen, or lower replay_maxlen.",
                    id="redisroles.W040",
                )
            )
    return errors
