"""Fixtures of the operations tests: a Kafka broker that only lets SCRAM-authenticated clients in
(besides the plaintext listener its own readiness probe uses), shared by this directory's tests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

USER, PASSWORD = "aftersale", "s3cret"


@pytest.fixture(scope="session")
def scram_broker():
    from deploy.broker import LocalBroker

    data_dir = Path(tempfile.mkdtemp(prefix="aftersale-test-scram-"))
    broker = LocalBroker(data_dir=data_dir, scram_users=[(USER, PASSWORD)])
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def sasl_env(password: str = PASSWORD) -> dict[str, str]:
    """What an operator sets to reach the broker over SASL/SCRAM (streams/security.py)."""
    return {
        "AFTERSALE_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AFTERSALE_SASL_MECHANISM": "SCRAM-SHA-256",
        "AFTERSALE_SASL_USERNAME": USER,
        "AFTERSALE_SASL_PASSWORD": password,
    }
