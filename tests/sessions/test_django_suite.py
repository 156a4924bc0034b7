"""Django's own session test suite (``SessionTestsMixin``) against our SessionStore.

The mixin is read from ``tests/sessions_tests/tests.py`` of the installed
Django's sdist (downloaded at test time, never copied here). That module also
imports its own test app's models, which need an app we do not install, so
only the module's absolute imports and the ``SessionTestsMixin`` class are
compiled from it.
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

from django.test import SimpleTestCase

from django_redisroles.sessions import SessionStore
from tests.sdist import fetch_sdist


def _load_mixin() -> type:
    path = Path(fetch_sdist("Django")) / "tests" / "sessions_tests" / "tests.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    body = [
        node
        for node in tree.body
        if (isinstance(node, ast.Import))
        or (isinstance(node, ast.ImportFrom) and node.level == 0)
        or (isinstance(node, ast.ClassDef) and node.name == "SessionTestsMixin")
    ]
    module = types.ModuleType("django_sessions_tests")
    module.__file__ = str(path)
    code = compile(ast.Module(body=body, type_ignores=[]), str(path), "exec")
    exec(code, module.__dict__)  # Django's own test code, from its sdist
    return module.SessionTestsMixin


SessionTestsMixin = _load_mixin()


class RedisRolesSessionTests(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,valid-type]
    """Every sync and async test of Django's session suite."""

    backend = SessionStore
