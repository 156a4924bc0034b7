"""Rules of the pub/sub role: replay streams capped and expiring, subscribers keeping up."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from ..model import Finding, Fix, human
from ..wiring import is_ours
from .base import Context, Rule, on, reachable


def stream_cap(default: int) -> tuple[int, bool]:
    """The replay streams' configured length cap, and whether one is configured.

    The pubsub role's ``REPLAY_MAXLEN``, or the largest ``replay_maxlen`` of a
    redisroles channel layer's CONFIG (a layer may raise it for its groups).
    """
    from ...pubsub import options as pubsub_options  # imports Channels: only when used

    # The layer's own merge (REDISROLES pubsub < the layer's CONFIG), not a copy of it.
    caps: list[int] = []
    values = [pubsub_options.role_values()["REPLAY_MAXLEN"]]
    for layer in (getattr(settings, "CHANNEL_LAYERS", None) or {}).values():
        if is_ours(layer.get("BACKEND"), "django_redisroles.pubsub"):
            values.append(pubsub_options.merged(layer.get("CONFIG"))[0]["replay_maxlen"])
    for value in values:
        if type(value) is int and value > 0:
            caps.append(value)
    return (max(caps), True) if caps else (default, False)


def pubsub_streams(ctx: Context) -> Iterable[Finding]:
    if "pubsub" not in ctx.roles:
        return
    cap, configured = stream_cap(ctx.limits.stream_max_len)
    # XADD MAXLEN ~ trims whole radix-tree nodes (100 entries by default): allow slack.
    threshold = cap + max(1000, cap // 10)
    for server in reachable(ctx):
        for database in server.databases:
            for ns in database.namespaces:
                if ns.role != "pubsub":
                    continue
                no_ttl = [s for s in ns.streams if s["ttl_ms"] == -1]
                if no_ttl:
                    yield Finding(
                        "W141",
                        "warning",
                        ["pubsub"],
                        f"{server.label}/{database.db}",
                        f"{len(no_ttl)} replay streams under '{ns.prefix}' have no TTL: a "
                        "group nobody publishes to any more keeps its stream forever. Examples: "
                        + ", ".join(s["key"] for s in no_ttl[: ctx.limits.examples]),
                        Fix(
                            "Replay streams are given a TTL on every publish; set one on these "
                            "(EXPIRE key seconds) or UNLINK them."
                        ),
                        {"streams": [s["key"] for s in no_ttl[: ctx.limits.examples]]},
                    )
                long = [s for s in ns.streams if s["length"] > threshold]
                if long:
                    longest = sorted(long, key=lambda s: -s["length"])[: ctx.limits.examples]
                    cap_text = (
                        f"the configured cap {cap:,}"
                        if configured
                        else f"{cap:,} (no cap configured: replay streams are uncapped?)"
                    )
                    yield Finding(
                        "W142",
                        "warning",
                        ["pubsub"],
                        f"{server.label}/{database.db}",
                        f"{len(long)} replay streams under '{ns.prefix}' are far longer than "
                        f"{cap_text}: "
                        + ", ".join(f"{s['key']} ({s['length']:,} entries)" for s in longest)
                        + ". Untrimmed streams grow memory without bound.",
                        Fix(
                            "Trim them (XTRIM key MAXLEN ~ N) and publish with XADD ... "
                            "MAXLEN ~ N (the pubsub role's replay cap)."
                        ),
                        {"streams": {s["key"]: s["length"] for s in longest}, "cap": cap},
                    )


def pubsub_clients(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        if not on(server, "pubsub", ctx) or server.config_error is not None:
            continue
        limit = server.pubsub_buffer_limit()
        if limit is not None and limit[0] == 0 and limit[1] == 0:
            yield Finding(
                "W143",
                "warning",
                ["pubsub"],
                server.label,
                "client-output-buffer-limit for pubsub clients is unlimited (pubsub 0 0 0): "
                "one slow subscriber can make Redis buffer messages until it runs out of memory.",
                Fix(
                    "Restore the default: a subscriber more than 32 MB (or 8 MB for 60 s) "
                    "behind is disconnected.",
                    "CONFIG SET client-output-buffer-limit 'pubsub 32mb 8mb 60'",
                    "client-output-buffer-limit pubsub 32mb 8mb 60",
                ),
            )
        soft = limit[1] if limit else 8 * 1024 * 1024
        slow = [c for c in server.subscribers() if soft and int(c.get("omem", 0) or 0) >= soft // 2]
        if slow:
            yield Finding(
                "W144",
                "warning",
                ["pubsub"],
                server.label,
                f"{len(slow)} subscribers have large pending output (a slow consumer): "
                + ", ".join(f"{c.get('addr')} ({human(int(c.get('omem', 0)))})" for c in slow[:5])
                + "; Redis disconnects them at the output-buffer limit and they miss messages.",
                Fix(
                    "Make the consumers faster (do the work outside the receive loop) or "
                    "publish less; Pub/Sub is fire-and-forget, not a queue."
                ),
            )


def pubsub_legacy_channels(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        if not on(server, "pubsub", ctx) or not server.legacy_channels:
            continue
        examples = server.legacy_channels[: ctx.limits.examples]
        yield Finding(
            "W145",
            "warning",
            ["pubsub"],
            server.label,
            f"{len(server.legacy_channels)} pub/sub channels with subscribers are named without "
            "a database (" + ", ".join(examples) + "): processes of an older django-redisroles. "
            "They and this version do not hear each other's broadcasts, and every project with "
            "this KEY_PREFIX on this server hears theirs, whatever its database.",
            Fix(
                "Finish the deploy (restart the old processes), or upgrade the other project; "
                "give each project its own KEY_PREFIX (see docs/security.md)."
            ),
            {"channels": examples, "count": len(server.legacy_channels)},
        )


#: This module's rules, in the order they run.
RULES: tuple[Rule, ...] = (
    pubsub_streams,
    pubsub_clients,
    pubsub_legacy_channels,
)
