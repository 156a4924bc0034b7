"""``redisroles sessions USER``: list a user's live sessions, or end them (``--logout``)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

HELP = "List a user's live sessions (device, IP, last seen), or end them with --logout."


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("user", help="username (or primary key with --pk)")
    parser.add_argument("--pk", action="store_true", help="USER is a primary key")
    parser.add_argument("--logout", action="store_true", help="end the user's sessions")
    parser.add_argument("--keep", metavar="SESSION_KEY", help="with --logout: spare this session")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--show-keys",
        action="store_true",
        help="print whole session keys (they are login cookies: anyone holding one is "
        "logged in as the user); by default only their first 8 characters",
    )


def shown_key(session_key: str, options: dict[str, Any]) -> str:
    """A session key as printed: its first 8 characters unless ``--show-keys``."""
    return session_key if options.get("show_keys") else f"{session_key[:8]}…"


def _user(options: dict[str, Any]) -> Any:
    model = get_user_model()
    try:
        if options["pk"]:
            return model._default_manager.get(pk=options["user"])
        return model._default_manager.get_by_natural_key(options["user"])
    except (model.DoesNotExist, ValueError):
        raise CommandError(f"No user {options['user']!r}.") from None


def handle(command: Any, options: dict[str, Any]) -> int:
    if options["keep"] and not options["logout"]:
        raise CommandError("--keep only makes sense with --logout.")
    from ..sessions import SessionUnavailable

    user = _user(options)
    try:
        return _handle(command, options, user)
    except (SessionUnavailable, ImproperlyConfigured) as exc:
        # An outage or USER_INDEX off: one clear line, not a traceback.
        raise CommandError(str(exc)) from exc


def _handle(command: Any, options: dict[str, Any], user: Any) -> int:
    from ..sessions import logout_everywhere, user_sessions

    if options["logout"]:
        ended = logout_everywhere(user, keep=options["keep"])
        if options["json"]:
            command.stdout.write(json.dumps({"ended": ended}))
        else:
            command.stdout.write(f"Ended {ended} session(s) of {user}.")
        return 0
    sessions = user_sessions(user)
    if options["json"]:
        rows = [
            {
                "session_key": shown_key(s.session_key, options),
                "device": s.device,
                "ip": s.ip,
                "user_agent": s.user_agent,
                "created": s.created.isoformat() if s.created else None,
                "last_seen": s.last_seen.isoformat() if s.last_seen else None,
                "expires": s.expires.isoformat(),
            }
            for s in sessions
        ]
        command.stdout.write(json.dumps(rows, indent=2))
        return 0
    if not sessions:
        command.stdout.write(f"No live sessions for {user}.")
    for s in sessions:
        seen = s.last_seen.strftime("%Y-%m-%d %H:%M:%S") if s.last_seen else "-"
        command.stdout.write(
            f"{shown_key(s.session_key, options)}  {s.device:<24} {s.ip or '-':<16} "
            f"last seen {seen} UTC"
        )
    return 0
