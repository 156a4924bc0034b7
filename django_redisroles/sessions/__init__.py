"""The sessions role: ``SESSION_ENGINE = "django_redisroles.sessions"``.

- :class:`SessionStore`: Django's session store API (sync and native async) on
  the sessions role's Redis; one round trip per load and per save.
- :func:`user_sessions` / :func:`logout_everywhere` (and ``a``-prefixed async
  twins): the per-user session index.
- :class:`SessionMiddleware`: Django's session middleware plus a 503 when the
  sessions Redis is unavailable, and a native async save.
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
