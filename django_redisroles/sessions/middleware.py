"""``SessionMiddleware``: Django's, plus a 503 on a Redis outage and a native async path.

Use it in place of ``django.contrib.sessions.middleware.SessionMiddleware``.
With Django's own middleware the store behaves the same (the session is never
emptied, the cookie never deleted on an outage) but the request ends as a 500
from the ``SessionUnavailable`` exception; this one answers
``503 Service Unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any, cast

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from .options import OPTIONS
from .outage import SessionUnavailable
from .store import SessionStore

logger = logging.getLogger("django_redisroles.sessions")

_OUTAGE_ATTR = "_rr_session_outage"


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 a request gets when the sessions role's Redis is unavailable."""
    setattr(request, _OUTAGE_ATTR, exc)
    logger.error(
        "Session store unavailable for %s %s: %s",
        request.method,
        request.path,
        exc,
        extra={"request": request, "status_code": 503},
    )
    response = HttpResponse(
        "Service temporarily unavailable: the session store cannot be reached. "
        "Your session is safe; please retry in a moment.\n",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(OPTIONS.get().retry_after)
    response["Cache-Control"] = "no-store"
    return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Drop-in for Django's ``SessionMiddleware`` (any session engine).

    A ``SessionUnavailable`` raised while the session is read or written, in
    a view, another middleware or the final save, becomes a 503; the session
    cookie is neither set nor deleted on that response. Under ASGI the session
    is saved with ``asave()`` (native ``redis.asyncio``), not in a thread.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, SessionUnavailable):
            return unavailable_response(request, exception)
        return None

    def _outage(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase | None:
        """The response to send when the session store failed during this request, else None.

        The session is then never saved and the cookie never touched: a 5xx
        (a ``SessionUnavailable`` that ended the request deeper in the stack)
        becomes our 503; a response the view produced anyway passes as is.
        """
        if getattr(request, _OUTAGE_ATTR, None) is not None:
            return response  # process_exception already answered 503
        session = getattr(request, "session", None)
        error = session.outage if isinstance(session, SessionStore) else None
        if error is None:
            return None
        if response.status_code >= 500:
            return unavailable_response(request, error)
        return response

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        outage = self._outage(request, response)
        if outage is not None:
            return outage
        try:
            # (django-stubs says HttpResponse; Django's method takes any response.)
            return super().process_response(request, cast(HttpResponse, response))
        except SessionUnavailable as exc:
            return unavailable_response(request, exc)

    async def __acall__(self, request: HttpRequest) -> Any:
        self.process_request(request)  # builds the store: no I/O
        # Called only under ASGI, where the handler below us is async.
        response = await cast(Awaitable[HttpResponseBase], self.get_response(request))
        return await self.aprocess_response(request, response)

    async def aprocess_response(self, request: HttpRequest, response: HttpResponseBase) -> Any:
        """``process_response`` with a native async save."""
        outage = self._outage(request, response)
        if outage is not None:
            return outage
        session = request.session
        if not isinstance(session, SessionStore):
            from asgiref.sync import sync_to_async

            return await sync_to_async(super().process_response, thread_sensitive=True)(
                request, cast(HttpResponse, response)
            )
        try:
            return await self._aprocess_response(request, response, session)
        except SessionUnavailable as exc:
            return unavailable_response(request, exc)

    async def _aprocess_response(
        self, request: HttpRequest, response: HttpResponseBase, session: SessionStore
    ) -> HttpResponseBase:
        # Same decisions as Django's SessionMiddleware.process_response.
        accessed = session.accessed
        modified = session.modified
        empty = session.is_empty()
        if settings.SESSION_COOKIE_NAME in request.COOKIES and empty:
            response.delete_cookie(
                settings.SESSION_COOKIE_NAME,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
            need_vary_cookie = True
        else:
            need_vary_cookie = accessed
            if (modified or settings.SESSION_SAVE_EVERY_REQUEST) and not empty:
                await session._aget_session()  # loaded now: what follows does no I/O
                if session.get_expire_at_browser_close():
                    max_age = None
                    expires = None
                else:
                    max_age = session.get_expiry_age()
                    expires = http_date(time.time() + max_age)
                if response.status_code < 500:
                    try:
                        await session.asave()
                    except UpdateError:
                        raise SessionInterrupted(
                            "The request's session was deleted before the "
                            "request completed. The user may have logged "
                            "out in a concurrent request, for example."
                        )
                    response.set_cookie(
                        settings.SESSION_COOKIE_NAME,
                        cast(str, session.session_key),  # saved: it has one
                        max_age=max_age,
                        expires=expires,
                        domain=settings.SESSION_COOKIE_DOMAIN,
                        path=settings.SESSION_COOKIE_PATH,
                        secure=bool(settings.SESSION_COOKIE_SECURE),
                        httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
                        samesite=settings.SESSION_COOKIE_SAMESITE,
                    )
                    need_vary_cookie = True
        if need_vary_cookie:
            patch_vary_headers(response, ("Cookie",))
        return response
