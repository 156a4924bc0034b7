"""Django's error reports and the deploy checks about credentials and pickles.

A password in ``REDISROLES["URL"]`` appeared in the DEBUG page and the admin
error e-mail (Django hides settings by key name, not value), while
``OPTIONS["password"]`` was starred out; a planted pickle runs code on
``cache.get()`` with django-redis's default serializer, and no check said so.
"""

from __future__ import annotations

import os
import signal
import sys
from html import escape
from io import StringIO
from urllib.parse import quote, urlsplit

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter

from django_redisroles import conf, connections

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


def _report_of_a_connect_error(redisroles: dict, server, **extra_settings) -> str:
    """The DEBUG page of a request whose Redis stopped answering during its AUTH."""
    request = RequestFactory().get("/")
    with override_settings(REDISROLES=redisroles, **extra_settings):
        get_default_exception_reporter_filter.cache_clear()
        connections.reset()
        os.kill(server.pid, signal.SIGSTOP)  # the kernel accepts the connection; no reply
        try:
            connections.get_redis("locks").ping()
        except redis.TimeoutError:
            exc_type, exc, tb = sys.exc_info()
            return ExceptionReporter(request, exc_type, exc, tb.tb_next).get_traceback_html()
        finally:
            os.kill(server.pid, signal.SIGCONT)
            get_default_exception_reporter_filter.cache_clear()
            connections.reset()
    raise AssertionError("the ping did not time out")


@pytest.mark.parametrize("in_url", [False, True], ids=["OPTIONS password", "URL password"])
def test_the_filter_hides_the_password_in_redis_pys_frames(redis_factory, in_url: bool) -> None:
    """redis-py's frames hold the password (AUTH's arguments) when connecting fails.

    Django's filter hides settings by name, not frame variables by value: the
    DEBUG page (and an HTML error e-mail) of a Redis that stopped answering
    during AUTH showed ``auth_args = ('app', '<password>')``, even with the
    password in OPTIONS and this filter installed.
    """
    server = redis_factory()
    secret = "".join(["Zq9", "/s3cr", "et"])
    with server.client() as client:
        client.acl_setuser("app", enabled=True, passwords=[f"+{secret}"], keys="*", channels="*",
                           commands=["+@all"])  # fmt: skip
    options = {"socket_timeout": 0.5, "retry_attempts": 0}
    if in_url:
        url = f"redis://app:{quote(secret, safe='')}@127.0.0.1:{server.port}/0"
        settings = {"URL": url, "OPTIONS": options}
    else:
        settings = {
            "URL": server.url(),
            "OPTIONS": {**options, "username": "app", "password": secret},
        }
    html = _report_of_a_connect_error(settings, server)
    assert "auth_args" in html and secret in html  # Django's own filter: why this one exists
    html = _report_of_a_connect_error(settings, server, DEFAULT_EXCEPTION_REPORTER_FILTER=FILTER)
    assert "auth_args" in html and "TimeoutError" in html
    assert secret not in html
    assert escape(secret) not in html and quote(secret, safe="") not in html


def _failing_view_with_parts() -> None:
    parts = urlsplit(conf.role_url("cache"))  # a named tuple: the netloc holds the password
    raise RuntimeError(f"boom near {parts.hostname}")


def test_the_filter_reports_named_tuples_and_objects_without_the_password() -> None:
    """A named tuple among the frame variables crashed the filter (TypeError): no report at all."""
    request = RequestFactory().get("/")
    with override_settings(REDISROLES={"URL": URL}, DEFAULT_EXCEPTION_REPORTER_FILTER=FILTER):
        get_default_exception_reporter_filter.cache_clear()
        try:
            _failing_view_with_parts()
        except RuntimeError:
            exc_type, exc, tb = sys.exc_info()
            reporter = ExceptionReporter(request, exc_type, exc, tb.tb_next)
            html = reporter.get_traceback_html()
        finally:
            get_default_exception_reporter_filter.cache_clear()
    assert "SplitResult" in html and "redis.internal" in html
    assert PASSWORD not in html


def test_w001_not_for_a_user_name_without_a_password_in_the_url() -> None:
    """A user name in the URL, the password in OPTIONS: nothing in the URL to show."""
    settings = {"URL": "rediss://app@redis.internal:6380/0", "OPTIONS": {"password": "pw9x"}}
    with override_settings(REDISROLES=settings):
        assert "redisroles.W001" not in _deploy_check()
    with override_settings(REDISROLES={"URL": "rediss://redis.internal/0?ssl_password=k3y"}):
        assert "redisroles.W001" in _deploy_check()


def test_w003_the_default_key_prefix_written_out() -> None:
    """``"KEY_PREFIX": "rr"`` is the default all the same: every project's."""
    with override_settings(REDISROLES={"URL": "redis://h:6379/0", "KEY_PREFIX": "rr"}):
        assert "redisroles.W003" in _deploy_check()
