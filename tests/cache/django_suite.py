"""Run Django's cache tests on RedisRolesCache: ``python -m tests.cache.django_suite DIR``.

DIR is the ``tests/`` directory of the Django sdist (``tests.sdist.fetch_sdist``).
Runs in its own process because the suite needs Django's ``cache`` test app
installed. Exits non-zero on any failure.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    sys.path.insert(0, argv[0])
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.cache.suite_settings"
    import django
    from django.test.runner import DiscoverRunner

    django.setup()
    runner = DiscoverRunner(verbosity=2, interactive=False)
    failures = runner.run_tests(["tests.cache.suite_cases"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
