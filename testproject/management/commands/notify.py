"""``manage.py notify "text"``: broadcast a notification to every connected client."""

from __future__ import annotations

from typing import Any

import redis.exceptions
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_redisroles import conf
from django_redisroles.pubsub import broadcast
from testproject.consumers_pubsub import GROUP


class Command(BaseCommand):
    help = "Broadcast a notification to the WebSocket clients of every app instance."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="the notification text")
        parser.add_argument("--group", default=GROUP, help=f"group (default {GROUP!r})")
        parser.add_argument(
            "--count", type=int, default=1, help="send N numbered copies (for load tests)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = max(1, options["count"])
        for n in range(count):
            message = {"text": options["text"], "n": n}
            try:
                broadcast(options["group"], {"type": "notify", "message": message})
            except redis.exceptions.ConnectionError as exc:
                raise CommandError(
                    f"cannot reach the pubsub role's Redis ({conf.role_url('pubsub')}): {exc}"
                ) from exc
        self.stdout.write(f"broadcast {count} message(s) to group {options['group']!r}")
