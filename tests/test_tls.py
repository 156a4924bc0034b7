"""TLS: the server's certificate must name the host, on every supported redis-py.

redis-py 5.x defaults to ``ssl_check_hostname=False``: a certificate for
``other.example`` signed by a trusted CA was accepted for ``rediss://127.0.0.1``
(redis-py 8 refuses it). ``.ci/run`` runs this module on the lowest supported
redis-py too.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_redisroles import connections
from django_redisroles.testing import RedisServer

# A server built with TLS; reported as not applicable on a machine without one.
pytestmark = pytest.mark.tls


def _sign(server: RedisServer, name: str, san: str) -> tuple[str, str]:
    """A key and certificate for ``san``, signed by the server's throwaway CA."""
    d = server.dir
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need the openssl command"

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
    )  # fmt: skip
    (Path(d) / f"{name}.cnf").write_text(f"subjectAltName={san}\n")
    run(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.pem",
    )  # fmt: skip
    return str(Path(d) / f"{name}.key"), str(Path(d) / f"{name}.pem")


class _MisnamedServer(RedisServer):
    """A TLS server whose certificate names another host (the probe must not check it)."""

    def client(self, db: int = 0, **kwargs):
        kwargs.setdefault("ssl_check_hostname", False)
        return super().client(db, **kwargs)


@pytest.fixture(scope="module")
def tls_servers():
    """Two TLS servers of one CA: one whose certificate names 127.0.0.1, one that does not."""
    right = RedisServer(tls=True).start()
    wrong = _MisnamedServer(tls=True, data_dir=right.dir)  # same CA files
    key, cert = _sign(right, "other.example", "DNS:other.example")
    wrong.config.update({"tls-cert-file": cert, "tls-key-file": key})
    wrong.start()
    yield right, wrong
    wrong.kill()
    right.cleanup()


def _settings(url: str, ca: str, **options) -> dict:
    return {"URL": url, "OPTIONS": {"ssl_ca_certs": ca, "socket_timeout": 2, **options}}


def test_a_certificate_for_another_name_is_refused(tls_servers) -> None:
    right, wrong = tls_servers
    with (
        override_settings(REDISROLES=_settings(wrong.tls_url(), right.ca_file)),
        pytest.raises(redis.ConnectionError) as excinfo,
    ):
        connections.get_redis("cache").ping()
    assert "certificate" in str(excinfo.value).lower() or "hostname" in str(excinfo.value)


async def test_a_certificate_for_another_name_is_refused_async(tls_servers) -> None:
    right, wrong = tls_servers
    with override_settings(REDISROLES=_settings(wrong.tls_url(), right.ca_file)):
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(connections.get_async_redis("cache").ping(), 10)
        await connections.aclose_async_clients()


def test_the_right_certificate_is_accepted(tls_servers) -> None:
    right, _ = tls_servers
    with override_settings(REDISROLES=_settings(right.tls_url(), right.ca_file)):
        assert connections.get_redis("cache").ping()
        pool = connections.get_redis("cache").connection_pool
        assert pool.connection_kwargs["ssl_check_hostname"] is True


@pytest.mark.parametrize(
    ("query", "options", "where"),
    [
        ("?ssl_check_hostname=false", {}, "URL"),
        ("?ssl_cert_reqs=none", {}, "URL"),
        ("", {"ssl_check_hostname": False}, "OPTIONS"),
        ("", {"ssl_cert_reqs": "none"}, "OPTIONS"),
        ("", {"ssl_cert_reqs": None}, "OPTIONS"),
    ],
)
def test_turning_verification_off_works_and_is_a_deploy_warning(
    tls_servers, query: str, options: dict, where: str
) -> None:
    right, wrong = tls_servers
    settings = _settings(wrong.tls_url() + query, right.ca_file, **options)
    with override_settings(REDISROLES=settings):
        assert connections.get_redis("cache").ping()  # the user asked for it
        out = StringIO()
        try:
            call_command("check", "--deploy", "--tag", "redisroles", stdout=out, stderr=out)
        except SystemCheckError as exc:
            out.write(str(exc))
    assert "redisroles.W002" in out.getvalue()
    assert where in out.getvalue()


def test_verification_on_is_no_warning(tls_servers) -> None:
    right, _ = tls_servers
    with override_settings(REDISROLES=_settings(right.tls_url(), right.ca_file)):
        out = StringIO()
        try:
            call_command("check", "--deploy", "--tag", "redisroles", stdout=out, stderr=out)
        except SystemCheckError as exc:
            out.write(str(exc))
    assert "redisroles.W002" not in out.getvalue()
