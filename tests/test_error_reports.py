"""Django's error reports and the deploy checks about credentials and pickles.

A password in ``REDISROLES["URL"]`` appeared in the DEBUG page and the admin
error e-mail (Django hides settings by key name, not value), while
``OPTIONS["password"]`` was starred out; a planted pickle runs code on
``cache.get()`` with django-redis's default serializer, and no check said so.
"""

from __future__ import annotations

import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter

from django_redisroles import conf

# Built at run time: the HTML report quotes source lines around each frame.
PASSWORD = "".join(["hun", "ter2"])
URL = f"redis://app:{PASSWORD}@redis.internal:6379/0"
FILTER = "django_redisroles.reporting.ExceptionReporterFilter"


def _failing_view() -> None:
    url = conf.role_url("cache")  # a frame variable holding the URL
    raise RuntimeError(f"boom near {len(url)}")


def _report(**extra_settings) -> str:
    """The text and HTML error reports of an exception raised with these settings."""
    request = RequestFactory().get("/", REDIS_URL=f"rediss://:k3y/{'s3c' + 'ret'}@other:6380/0")
    with override_settings(**extra_settings):
        get_default_exception_reporter_filter.cache_clear()  # Django caches the class
        try:
            _failing_view()
        except RuntimeError:
            # Reported from the view's frame on: this frame's arguments hold the settings.
            exc_type, exc, tb = sys.exc_info()
            reporter = ExceptionReporter(request, exc_type, exc, tb.tb_next)
            return reporter.get_traceback_text() + reporter.get_traceback_html()
        finally:
            get_default_exception_reporter_filter.cache_clear()


def test_djangos_own_filter_shows_the_url_password() -> None:
    """Why the filter exists (and W001): Django alone prints it."""
    assert PASSWORD in _report(REDISROLES={"URL": URL})


def test_the_filter_masks_settings_meta_and_frame_variables() -> None:
    text = _report(REDISROLES={"URL": URL}, DEFAULT_EXCEPTION_REPORTER_FILTER=FILTER)
    assert PASSWORD not in text and "s3cret" not in text
    assert "redis://***@redis.internal:6379/0" in text


def test_options_password_is_hidden_by_django_already() -> None:
    text = _report(REDISROLES={"URL": "redis://redis.internal/0", "OPTIONS": {"password": "pw9x"}})
    assert "pw9x" not in text


def _deploy_check() -> str:
    out = StringIO()
    try:
        call_command("check", "--deploy", "--tag", "redisroles", stdout=out, stderr=out)
    except SystemCheckError as exc:
        out.write(str(exc))
    return out.getvalue()


def test_w001_a_password_in_a_url_without_the_filter() -> None:
    with override_settings(REDISROLES={"URL": URL}):
        output = _deploy_check()
    assert "redisroles.W001" in output and PASSWORD not in output
    with override_settings(REDISROLES={"URL": URL}, DEFAULT_EXCEPTION_REPORTER_FILTER=FILTER):
        assert "redisroles.W001" not in _deploy_check()
    with override_settings(
        REDISROLES={"URL": "redis://redis.internal/0", "OPTIONS": {"password": "pw"}}
    ):
        assert "redisroles.W001" not in _deploy_check()


CACHE = {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}
JSON = "django_redis.serializers.json.JSONSerializer"


@pytest.mark.parametrize(
    ("caches", "roles", "warned"),
    [
        ({"default": CACHE}, {}, True),  # one server for every role, pickle by default
        ({"default": {**CACHE, "OPTIONS": {"SERIALIZER": JSON}}}, {}, False),
        (
            {"default": {**CACHE, "LOCATION": "redis://cache-host:6379/0"}},
            {},
            False,  # its own server
        ),
        (
            {"default": CACHE},
            {role: {"URL": f"redis://{role}-host/0"} for role in conf.ROLES if role != "cache"},
            False,
        ),
    ],
)
def test_w012_pickle_on_a_shared_server(caches, roles, warned: bool) -> None:
    with override_settings(CACHES=caches, REDISROLES={"URL": "redis://h:6379/0", "ROLES": roles}):
        assert ("redisroles.W012" in _deploy_check()) is warned


def test_a_planted_pickle_runs_on_get_with_the_default_serializer(redis_client, tmp_path) -> None:
    """What W012 is about, shown on a real server (the payload only touches a file)."""
    import pickle

    from django.core.cache import caches

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with override_settings(CACHES={"default": CACHE}):
        cache = caches["default"]
        redis_client.set(cache.make_key("page"), pickle.dumps(Planted()), ex=60)
        cache.get("page")
    assert marker.exists()


def test_w003_the_default_key_prefix() -> None:
    with override_settings(REDISROLES={"URL": "redis://h:6379/0"}):
        assert "redisroles.W003" in _deploy_check()
    with override_settings(REDISROLES={"URL": "redis://h:6379/0", "KEY_PREFIX": "shop-prod"}):
        assert "redisroles.W003" not in _deploy_check()
