"""Error reports (the DEBUG page, the e-mails to ``ADMINS``) without Redis credentials.

Django's ``SafeExceptionReporterFilter`` hides settings by *name*
(``PASSWORD``, ``SECRET``...): ``REDISROLES["URL"] = "redis://:pw@host"`` and a
``CACHES`` ``LOCATION`` with a password are shown as they are, and so are a
``$REDIS_URL`` in ``request.META`` (``runserver`` copies the environment there)
and URLs held by frame variables. This filter masks them too::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "django_redisroles.reporting.ExceptionReporterFilter"

Or keep the password out of the URL: ``OPTIONS["password"]``, read from the
environment, is hidden by Django's own filter (see docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from . import conf

__all__ = ["ExceptionReporterFilter", "masked"]


def masked(value: Any) -> Any:
    """``value`` with the credentials of every URL in it masked (strings, dicts, lists)."""
    if isinstance(value, str):
        return conf.mask_text(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(masked(v) for v in value)
    return value


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus: Redis URLs in settings, META and frame variables masked."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        return masked(super().cleanse_setting(key, value))

    def get_safe_request_meta(self, request: Any) -> dict[str, Any]:
        return {k: masked(v) for k, v in super().get_safe_request_meta(request).items()}

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [
            (name, masked(value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
