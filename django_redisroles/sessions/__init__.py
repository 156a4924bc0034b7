"""The sessions role: ``SESSION_ENGINE = "django_redisroles.sessions"``.

- :class:`SessionStore`: Django's session store API (sync and native async) on
  the sessions role's Redis; one round trip per load and per save.
- :func:`user_sessions` / :func:`logout_everywhere` (and ``a``-prefixed async
  twins): the per-user session index.
- :class:`SessionMiddleware`: Django's session middleware plus a 503 when the
  sessions Redis is unavailable, and a native async save.

Modules (docs/architecture.md), imports flowing one way: ``middleware`` ->
``store`` (the Django API; ``_run``/``_arun`` send what ``plan`` builds) ->
``index`` (the per-user index, its signal receivers) and ``plan`` (a save as
one request) -> ``keys`` (key names, the stored value) -> ``options``; beside
them ``devices``, ``outage``, ``compat`` and ``lua/*.lua``.
"""

from __future__ import annotations

from .devices import UserSession
from .index import alogout_everywhere, auser_sessions, logout_everywhere, user_sessions
from .middleware import SessionMiddleware
from .outage import SessionUnavailable
from .store import SessionStore

__all__ = [
    "SessionMiddleware",
    "SessionStore",
    "SessionUnavailable",
    "UserSession",
    "alogout_everywhere",
    "auser_sessions",
    "logout_everywhere",
    "user_sessions",
]
