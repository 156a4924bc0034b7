"""``python manage.py redisroles <subcommand>``: operations on the roles' Redis.

Each subcommand is a module in ``django_redisroles.cli`` with ``HELP``,
``add_arguments(parser)`` and ``handle(command, options) -> int | None``
(the exit status; non-zero raises ``SystemExit``).
"""

from __future__ import annotations

import importlib
import pkgutil
from argparse import ArgumentParser
from types import ModuleType
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_redisroles import cli


def subcommands() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli.__name__}.{info.name}")
        found[getattr(module, "NAME", info.name)] = module
    return dict(sorted(found.items()))


class Command(BaseCommand):
    help = "Operate the Redis instances behind the roles (see `redisroles <subcommand> -h`)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="subcommand")
        sub.required = True
        for name, module in subcommands().items():
            # parser_class keeps Django's CommandParser (no sys.exit on errors in tests).
            subparser = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(subparser)

    def handle(self, *args: Any, **options: Any) -> None:
        module = subcommands().get(options["subcommand"])
        if module is None:  # argparse already refused it; keep mypy happy
            raise CommandError(f"unknown subcommand {options['subcommand']!r}")
        try:
            status = module.handle(self, options)
        except ImproperlyConfigured as exc:
            # A malformed REDISROLES (a bad URL...): one line, masked, not a traceback.
            raise CommandError(str(exc)) from None
        if status:
            raise SystemExit(status)
