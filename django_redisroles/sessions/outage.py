"""``SessionUnavailable``: the sessions role's failure policy for what Redis raised."""

from __future__ import annotations

from .. import conf, errors
from .options import ROLE

__all__ = ["SessionUnavailable", "unavailable"]


class SessionUnavailable(RuntimeError):
    """The sessions role's Redis cannot be reached (or cannot write right now).

    Distinct from "session not found": the session is neither replaced by an
    empty one nor deleted, and the user's cookie is kept. With
    ``django_redisroles.sessions.SessionMiddleware`` the request gets a 503.
    ``failure`` is the classified Redis error (``errors.Failure``).
    """

    failure: errors.Failure | None = None


def unavailable(exc: BaseException) -> SessionUnavailable | None:
    """The ``SessionUnavailable`` for an outage or a refusal; None for a bug (raised as is)."""
    failure = errors.classify(exc)
    if failure is None or failure.bug:
        return None
    url = conf.mask_url(conf.role_url(ROLE))
    error = SessionUnavailable(
        f"The Redis of the sessions role ({url}) is unavailable: {failure.describe()} "
        "The session was left untouched."
    )
    error.failure = failure
    return error
