"""Kafka security settings: from the environment to Faust credentials and librdkafka config."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import faust
import pytest
from faust.types.auth import AuthProtocol

from streams.config import Settings
from streams.security import faust_credentials, librdkafka_config, problems, ssl_context

from .conftest import sasl_env


def test_plaintext_is_the_default_and_adds_nothing():
    settings = Settings()
    assert problems(settings) == []
    assert faust_credentials(settings) is None
    assert librdkafka_config(settings) == {"security.protocol": "PLAINTEXT"}


def test_sasl_scram_from_the_environment(monkeypatch):
    for name, value in sasl_env().items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert librdkafka_config(settings) == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "aftersale",
        "sasl.password": "s3cret",
    }
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol, creds.mechanism.value, creds.username) == (
        AuthProtocol.SASL_PLAINTEXT,
        "SCRAM-SHA-256",
        "aftersale",
    )
    assert "s3cret" not in repr(settings)  # passwords stay out of logs and tracebacks


@pytest.mark.parametrize(
    "env, message",
    [
        ({"AFTERSALE_SECURITY_PROTOCOL": "SASL"}, "AFTERSALE_SECURITY_PROTOCOL must be one of"),
        (
            {"AFTERSALE_SECURITY_PROTOCOL": "SASL_SSL", "AFTERSALE_SASL_USERNAME": "u"},
            "needs AFTERSALE_SASL_USERNAME and",
        ),
        ({**sasl_env(), "AFTERSALE_SASL_MECHANISM": "PLAIN"}, "AFTERSALE_SASL_MECHANISM must be one of"),
    ],
)
def test_unusable_settings_stop_at_start_up(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        Settings.from_env()


@pytest.fixture
def tls_files(tmp_path):
    """A CA and a client certificate signed by it, made with openssl like an operator would."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=aftersale")
    run(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.crt",
        "-days",
        "2",
    )
    return tmp_path


def test_sasl_ssl_with_a_private_ca_and_client_certificate(tls_files):
    settings = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="p",
        ssl_cafile=str(tls_files / "ca.crt"),
        ssl_certfile=str(tls_files / "client.crt"),
        ssl_keyfile=str(tls_files / "client.key"),
    )
    assert problems(settings) == []
    context = ssl_context(settings)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    creds = faust_credentials(settings)
    assert creds.protocol == AuthProtocol.SASL_SSL and creds.ssl_context is not None
    assert librdkafka_config(settings) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "ssl.ca.location": str(tls_files / "ca.crt"),
        "ssl.certificate.location": str(tls_files / "client.crt"),
        "ssl.key.location": str(tls_files / "client.key"),
    }


def test_tls_only(tls_files):
    settings = Settings(security_protocol="SSL", ssl_cafile=str(tls_files / "ca.crt"))
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol == AuthProtocol.SSL
    assert librdkafka_config(settings) == {"security.protocol": "SSL", "ssl.ca.location": str(tls_files / "ca.crt")}
