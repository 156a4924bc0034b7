"""No password is ever printed: checks, commands, errors, logs; no ValueError on a bad URL.

Passwords with an unencoded ``/``, ``#`` or ``?`` (base64-style keys of managed
services) used to leak: ``check`` printed the whole URL, ``doctor --json`` and
``info`` crashed with the URL parser's ``ValueError`` quoting the password up to
that character, and so did the first connection.
"""

from __future__ import annotations

import json
import string
from io import StringIO
from urllib.parse import unquote

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from django_redisroles import conf, connections
from django_redisroles.checks.config import check_settings

HEAD, TAIL = "PWx9", "Q7zk"  # every generated password starts and ends with these

# Passwords as people paste them: base64 keys ('/', '+', '='), and the
# characters that end a URL's authority early ('/', '?', '#') or confuse it ('@', ':').
_ALPHABET = string.ascii_letters + string.digits + "/+=#?@:%&;!$*~-_. "
passwords = st.text(alphabet=_ALPHABET, min_size=0, max_size=24).map(
    lambda middle: HEAD + middle + TAIL
)
users = st.sampled_from(["", "app", "default", "user.name"])
hosts = st.sampled_from(["127.0.0.1", "redis.internal", "[::1]", "h"])
tails = st.sampled_from(["", ":6379", ":6379/0", ":6380/2", "/1?db=3", ":6379/0?socket_timeout=1"])


def _leaks(text: str, password: str) -> bool:
    """Whether ``text`` shows the password, or its start or end (any cut-off piece)."""
    return HEAD in text or TAIL in text or password in text


def _url(user: str, password: str, host: str, tail: str, scheme: str = "redis") -> str:
    return f"{scheme}://{user}:{password}@{host}{tail}"


@given(user=users, password=passwords, host=hosts, tail=tails)
@hsettings(max_examples=300, deadline=None)
def test_mask_url_never_shows_the_userinfo(user: str, password: str, host: str, tail: str) -> None:
    url = _url(user, password, host, tail)
    shown = conf.mask_url(url)
    assert not _leaks(shown, password), shown
    assert shown.startswith("redis://***@")
    assert shown.endswith(host + tail)  # the host is kept as written


@given(
    name=st.sampled_from(["password", "ssl_password", "PASSWORD", "pass%77ord", "x_password"]),
    password=passwords,
)
@hsettings(max_examples=200, deadline=None)
def test_password_query_values_are_masked(name: str, password: str) -> None:
    for url in (
        f"redis://h:6379/0?{name}={password}",
        f"rediss://h:6379/0?db=1&{name}={password}&socket_timeout=1",
    ):
        assert not _leaks(conf.mask_url(url), password), conf.mask_url(url)


@given(user=users, password=passwords, host=hosts, tail=tails)
@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_url_problem_never_quotes_the_password(
    user: str, password: str, host: str, tail: str
) -> None:
    problem = conf.url_problem(_url(user, password, host, tail))
    if problem is not None:
        assert not _leaks(problem, password), problem


@given(user=users, password=passwords, tail=tails)
@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_system_check_never_quotes_the_password(user: str, password: str, tail: str) -> None:
    with override_settings(REDISROLES={"URL": _url(user, password, "h", tail)}):
        messages = check_settings()
    for message in messages:
        assert not _leaks(f"{message.msg} {message.hint}", password), message.msg


@given(user=users, password=passwords, tail=tails)
@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_first_connect_is_a_clear_error_not_a_value_error(
    user: str, password: str, tail: str
) -> None:
    """A URL nobody can parse: ImproperlyConfigured naming it (masked), never ValueError."""
    url = _url(user, password, "127.0.0.1", tail)
    with override_settings(REDISROLES={"URL": url, "OPTIONS": FAST}):
        try:
            client = connections.get_redis("cache")
        except ImproperlyConfigured as exc:
            assert not _leaks(str(exc), password), str(exc)
            assert "redis://***@127.0.0.1" in str(exc)
            # No chained ValueError whose text would quote the password.
            assert exc.__cause__ is None
            assert exc.__context__ is None or exc.__suppress_context__
        else:
            # Parsed: then redis-py read the password whole (percent-decoded), not cut short.
            assert client.connection_pool.connection_kwargs.get("password") == unquote(password)


HOSTILE = [  # three unusable URLs, then usable ones with secrets in the query, then one more
    "redis://:S3cr/et+Pw@127.0.0.1:{port}/0",  # base64-style key
    "redis://app:hunter#2@127.0.0.1:{port}/0",
    "redis://app:what?ever@127.0.0.1:{port}/0",
    "redis://127.0.0.1:{port}/0?password=hunter2&db=0",
    "redis://127.0.0.1:{port}/0?pass%77ord=hunter2",
    "rediss://127.0.0.1:{port}/0?ssl_password=S3cr3tKey",  # a TLS client key's passphrase
    "redis://127.0.0.1:{port}/0?ssl_password=S3cr3tKey",  # not a TLS URL: E005
]
#: rediss:// against a plain-text server waits for a TLS answer: do not wait long.
FAST = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry_attempts": 0}
SECRETS = ("S3cr", "et+Pw", "hunter", "S3cr3tKey", "what?ever")


@pytest.mark.parametrize("template", HOSTILE)
def test_check_command_shows_no_password(template: str, single_server) -> None:
    url = template.format(port=single_server.port)
    with override_settings(REDISROLES={"URL": url, "OPTIONS": FAST}):
        try:
            call_command("check", stdout=StringIO(), stderr=StringIO())
            output = ""
        except SystemCheckError as exc:
            output = str(exc)
    assert not any(s in output for s in SECRETS), output


@pytest.mark.parametrize("template", HOSTILE)
def test_doctor_json_reports_a_bad_url_without_crashing_or_leaking(
    template: str, single_server
) -> None:
    url = template.format(port=single_server.port)
    out, err = StringIO(), StringIO()
    with override_settings(REDISROLES={"URL": url, "OPTIONS": FAST}):
        try:
            call_command("redisroles", "doctor", "--json", "--quiet", stdout=out, stderr=err)
        except SystemExit:
            pass  # exit status 1: an error finding (the unusable URL)
    data = json.loads(out.getvalue())
    text = out.getvalue() + err.getvalue()
    assert not any(s in text for s in SECRETS), text
    if template in HOSTILE[3:6]:  # a parseable URL with query secrets
        assert data["roles"]["cache"]["url"].startswith(("redis://127.0.0.1", "rediss://127"))
    else:
        assert data["ok"] is False
        assert any(f["id"] == "E100" and "not usable" in f["message"] for f in data["findings"])


@pytest.mark.parametrize("template", HOSTILE)
def test_info_reports_a_bad_url_without_crashing_or_leaking(template: str, single_server) -> None:
    url = template.format(port=single_server.port)
    out = StringIO()
    with override_settings(REDISROLES={"URL": url, "OPTIONS": FAST}):
        try:
            call_command("redisroles", "info", "--json", stdout=out)
        except SystemExit:
            pass
    rows = json.loads(out.getvalue())
    assert not any(s in out.getvalue() for s in SECRETS), out.getvalue()
    if template in HOSTILE[:3] + HOSTILE[6:]:  # unusable: each row says so
        assert all("not usable" in row["error"] for row in rows)


def test_other_subcommands_say_it_in_one_line(single_server) -> None:
    url = HOSTILE[0].format(port=single_server.port)
    with override_settings(REDISROLES={"URL": url}), pytest.raises(CommandError) as excinfo:
        call_command("redisroles", "locks", stdout=StringIO())
    assert "redis://***@127.0.0.1" in str(excinfo.value)
    assert "S3cr" not in str(excinfo.value)


def test_a_url_setting_that_is_not_a_dict_is_masked_in_errors() -> None:
    with override_settings(REDISROLES="redis://app:hunter2@host:6379/0"):
        with pytest.raises(ImproperlyConfigured) as excinfo:
            conf.role_url("cache")
        messages = check_settings()
    assert "hunter2" not in str(excinfo.value)
    assert "hunter2" not in messages[0].msg and "redis://***@host" in messages[0].msg


def test_role_config_repr_hides_credentials() -> None:
    """Frame variables in tracebacks and error reports show reprs."""
    with override_settings(
        REDISROLES={"URL": "redis://app:hunter2@h:6379/0", "OPTIONS": {"password": "s3cret"}}
    ):
        text = repr(conf.role_config("cache"))
    assert "hunter2" not in text and "s3cret" not in text
    assert "redis://***@h:6379/0" in text


def test_mask_text_masks_every_url_in_a_message() -> None:
    text = conf.mask_text("tried redis://:a/b@h1:1/0 then rediss://h2/0?password=x&db=1, gave up")
    assert text == "tried redis://***@h1:1/0 then rediss://h2/0?password=***&db=1, gave up"
