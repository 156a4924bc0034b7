"""``redisroles ratelimit``: reset a client's counters, list the middleware rules."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

HELP = "Rate limiting: reset a client's counters (by IP, user or raw identity); list rules."


def add_arguments(parser: ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ratelimit_action", metavar="action")
    sub.required = True
    reset = sub.add_parser("reset", help="forget what was counted for one client")
    who = reset.add_mutually_exclusive_group(required=True)
    who.add_argument("--ip", help="client address (grouped like requests: IPv6 by /64)")
    who.add_argument("--user", help="user primary key")
    who.add_argument("--username", help="username (looked up in the user model)")
    who.add_argument(
        "--ident",
        help="raw identity: header:<name>:<value>, get:<param>:<value>, post:<param>:<value>, "
        "key:<value returned by a key callable>",
    )
    reset.add_argument(
        "--group",
        help="only this group (a view's dotted name, a decorator's group=, or a rule's "
        "'middleware:<path>'); default: every group (SCAN)",
    )
    sub.add_parser("rules", help="list the RULES the middleware applies")


def _user_pk(username: str) -> Any:
    from django.contrib.auth import get_user_model

    model = get_user_model()
    try:
        return model._default_manager.get_by_natural_key(username).pk
    except model.DoesNotExist:
        raise CommandError(f"no user with username {username!r}")


def handle(command: Any, options: dict[str, Any]) -> int:
    from ..ratelimit.ops import reset
    from ..ratelimit.rules import RULES

    if options["ratelimit_action"] == "rules":
        compiled = RULES.get()
        st = compiled.options
        if not compiled.rules:
            command.stdout.write("No RULES configured.")
        for rule in compiled.rules:
            p = rule.policy
            where = ", ".join([*rule.paths, *(f"url_name={n}" for n in sorted(rule.url_names))])
            command.stdout.write(
                f"{p.name:<24} {where:<32} {p.rate.limit}/{p.rate.period}s key={p.key_label} "
                f"algorithm={p.algorithm or st.algorithm} methods="
                f"{','.join(sorted(p.methods)) if p.methods else 'all'} "
                f"fail={p.fail or st.fail} group={p.group}"
            )
        return 0

    user = options["user"]
    if options["username"]:
        user = _user_pk(options["username"])
    if options["group"]:
        # Decorated views register their limits when the URLconf is imported.
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018
    try:
        deleted = reset(ip=options["ip"], user=user, ident=options["ident"], group=options["group"])
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc))
    except redis.RedisError as exc:
        command.stderr.write(f"Redis error: {exc}")
        return 1
    command.stdout.write(f"Deleted {deleted} rate-limit key(s).")
    return 0
