"""Throwaway TLS material for test servers: a CA and a certificate for 127.0.0.1.

With the ``cryptography`` package (the test extra has it), else the ``openssl``
command. Every server of a test topology started with ``tls=True`` shares one
CA, so one ``ssl_ca_certs`` verifies them all.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["make_certs"]


def make_certs(directory: Path) -> None:
    """A throwaway CA (``ca.pem``, ``ca.key``) and a server certificate for 127.0.0.1 and
    localhost (``server.pem``, ``server.key``) in ``directory``, unless already there."""
    if (directory / "server.pem").exists():
        return
    try:
        _write_certs_with_cryptography(directory)
    except ImportError:  # the test extra has cryptography; elsewhere, the openssl command
        _write_certs_with_openssl(directory)


def _write_certs_with_cryptography(directory: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=2)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redisroles-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(later)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.key").write_bytes(pem_key(ca_key))  # to sign more certificates with it
    (directory / "server.key").write_bytes(pem_key(key))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_certs_with_openssl(directory: Path) -> None:
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError(
            "tls=True needs the cryptography package (pip install cryptography) "
            "or the openssl command"
        )
    d = str(directory)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    subject = ["-nodes", "-newkey", "rsa:2048"]
    run(
        "req",
        "-x509",
        *subject,
        "-days",
        "2",
        "-subj",
        "/CN=redisroles-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run("req", *subject, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    )
