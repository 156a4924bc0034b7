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

from django.http import HttpResponse
from django.test import RequestFactory, SimpleTestCase

from django_redisroles.sessions import SessionMiddleware, SessionStore
from tests.sdist import fetch_sdist


def _load(*class_names: str) -> types.ModuleType:
    path = Path(fetch_sdist("Django")) / "tests" / "sessions_tests" / "tests.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    body = [
        node
        for node in tree.body
        if (isinstance(node, ast.Import))
        or (isinstance(node, ast.ImportFrom) and node.level == 0)
        or (isinstance(node, ast.ClassDef) and node.name in class_names)
    ]
    module = types.ModuleType("django_sessions_tests")
    module.__file__ = str(path)
    code = compile(ast.Module(body=body, type_ignores=[]), str(path), "exec")
    exec(code, module.__dict__)  # Django's own test code, from its sdist
    return module


_django_tests = _load("SessionTestsMixin")
SessionTestsMixin = _django_tests.SessionTestsMixin


class RedisRolesSessionTests(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,valid-type]
    """Every sync and async test of Django's session suite."""

    backend = SessionStore


def _middleware_tests() -> type:
    """Django's ``SessionMiddlewareTests``, run with our middleware in place of Django's."""
    module = _load("SessionMiddlewareTests")
    module.SessionMiddleware = SessionMiddleware  # the name the tests instantiate
    return module.SessionMiddlewareTests


class RedisRolesSessionMiddlewareTests(_middleware_tests()):  # type: ignore[misc]
    """Our SessionMiddleware is a drop-in: Django's middleware tests, our engine."""

    def test_empty_session_saved(self) -> None:
        """Django's scenario, checked in Redis: an emptied session is saved empty, cookie kept.

        Django's own version of this test reads its database ``Session`` model,
        which this engine never writes; this one replaces it (no skip).
        """

        def set_session(request):
            request.session["foo"] = "bar"
            return HttpResponse("Session test")

        request = RequestFactory().get("/")
        middleware = SessionMiddleware(set_session)
        middleware(request)
        key = request.session.session_key
        del request.session["foo"]
        response = middleware.process_response(request, HttpResponse("Session test"))
        self.assertEqual(SessionStore(key).load(), {})
        self.assertTrue(SessionStore().exists(key))
        self.assertIn(f"Set-Cookie: sessionid={key}", str(response.cookies))
        self.assertEqual(response.headers["Vary"], "Cookie")
