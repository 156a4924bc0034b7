"""Error reports (the DEBUG page, the e-mails to ``ADMINS``) without Redis credentials.

Django's ``SafeExceptionReporterFilter`` hides settings by *name*
(``PASSWORD``, ``SECRET``...): ``REDISROLES["URL"] = "redis://:pw@host"`` and a
``CACHES`` ``LOCATION`` with a password are shown as they are, and so are a
``$REDIS_URL`` in ``request.META`` (``runserver`` copies the environment there)
and frame variables: redis-py's hold the password itself (AUTH's arguments,
its connection keyword arguments) in a report of an error raised while
connecting, wherever the password was configured. This filter masks URLs in
settings, META and frame variables, and every configured Redis password in
frame variables::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "django_redisroles.reporting.ExceptionReporterFilter"

See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.template.defaultfilters import pprint
from django.views.debug import SafeExceptionReporterFilter

from . import conf

__all__ = ["ExceptionReporterFilter", "configured_passwords", "masked"]


def masked(value: Any) -> Any:
    """``value`` with the credentials of every URL in it masked (strings, dicts, lists)."""
    if isinstance(value, str):
        return conf.mask_text(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return _same_kind(value, [masked(v) for v in value])
    return value


def _same_kind(value: list[Any] | tuple[Any, ...], items: list[Any]) -> Any:
    """``items`` as a list or tuple like ``value``: a named tuple (``urlsplit()``'s) stays one."""
    if isinstance(value, list):
        return items
    if hasattr(value, "_make"):
        return value._make(items)
    return tuple(items)


def _url_passwords(url: Any) -> Iterator[str]:
    password = conf.url_password(str(url))  # every URL form, multi-host ones included
    if password:
        yield password
        yield unquote(password)  # as redis-py sends it


def configured_passwords() -> set[str]:
    """Every Redis password in the settings: each role's URL and OPTIONS, each LOCATION."""
    found: set[str] = set()
    for role in conf.ROLES:
        try:
            found.update(_url_passwords(conf.role_url(role)))
            options = conf.role_options(role)
        except Exception:  # noqa: BLE001 - a malformed setting: E001-E006 say so
            continue
        for name, value in options.items():
            if "password" in name.lower() and isinstance(value, str):
                found.add(value)
    for entry in (getattr(settings, "CACHES", None) or {}).values():
        location = entry.get("LOCATION") if isinstance(entry, Mapping) else None
        for url in location if isinstance(location, list | tuple) else [location]:
            if url:
                found.update(_url_passwords(url))
    found.discard("")
    return found


class _Shown:
    """A frame variable as the report prints it (Django pprint()s each), passwords starred."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus: Redis URLs in settings, META and frame variables masked,
    and configured Redis passwords never shown in frame variables."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        return masked(super().cleanse_setting(key, value))

    def get_safe_request_meta(self, request: Any) -> dict[str, Any]:
        return {k: masked(v) for k, v in super().get_safe_request_meta(request).items()}

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        passwords = configured_passwords()
        # As written, and as a repr() shows it inside quotes (a backslash doubled...).
        forms = sorted(passwords | {repr(p)[1:-1] for p in passwords}, key=len, reverse=True)
        shown = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            value = self._starred(masked(value), forms)
            text = pprint(value)  # what the report prints: objects' reprs too
            cleaned = conf.mask_text(text) if "://" in text else text
            for form in forms:
                cleaned = cleaned.replace(form, self.cleansed_substitute)
            shown.append((name, value if cleaned == text else _Shown(cleaned)))
        return shown

    def _starred(self, value: Any, forms: list[str]) -> Any:
        """``value`` with the passwords in its strings starred, before pprint may wrap them."""
        if isinstance(value, str):
            for form in forms:
                value = value.replace(form, self.cleansed_substitute)
            return value
        if isinstance(value, bytes):
            for form in forms:
                value = value.replace(form.encode(errors="replace"), b"*" * 20)
            return value
        if isinstance(value, Mapping):
            return {k: self._starred(v, forms) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return _same_kind(value, [self._starred(v, forms) for v in value])
        return value
