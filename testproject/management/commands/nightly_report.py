"""A nightly job that must not run twice at once: the locks role's demo.

``python manage.py nightly_report`` holds the lock ``nightly_report`` while it
runs (renewed every ttl/3); a second copy exits with "already running on host
X, pid N, since T". Try ``--lock-wait 30`` and ``--no-lock``, and look at
``python manage.py redisroles locks`` while it runs.

``--duration``, ``--stop-file`` and ``--out`` make it a stand-in for a real
job in the demo and in the process-level tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_redisroles.locks import command_lock


def _record(path: str | None, event: str, **data: Any) -> None:
    if path:
        line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), **data})
        with open(path, "a") as out:
            out.write(line + "\n")


# ttl=None: the lease is REDISROLES["ROLES"]["locks"]["TTL"] (see testproject settings).
@command_lock()
class Command(BaseCommand):
    help = "Build the nightly report (one copy at a time across all hosts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--duration", type=float, default=2.0, help="seconds of work")
        parser.add_argument("--stop-file", help="finish early once this file exists")
        parser.add_argument("--out", help="append JSON lines (start/end, pid, fence) here")

    def handle(self, *args: Any, **options: Any) -> None:
        lock = getattr(self, "lock", None)
        fence = lock.fence if lock is not None else None
        _record(options["out"], "start", fence=fence)
        self.stdout.write(f"nightly_report: started (fence {fence})")
        end = time.monotonic() + options["duration"]
        stop = Path(options["stop_file"]) if options["stop_file"] else None
        while time.monotonic() < end and not (stop and stop.exists()):
            time.sleep(0.05)
            if lock is not None:
                # The fence goes with every write the lock protects; check()
                # is free (no round trip) and raises LockLost once the lease is gone.
                lock.check()
        _record(options["out"], "end", fence=fence)
        self.stdout.write("nightly_report: done")
