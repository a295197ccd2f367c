"""Shared fixtures. Integration tests use one real Kafka broker for the whole session: the one
KAFKA_BOOTSTRAP_SERVERS points at, or a local KRaft broker started here from the Maven jars."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


_LOCAL_BROKER: dict = {}


@pytest.fixture
def kafka_log_dirs(kafka_bootstrap) -> Path:
    """The log directory of the broker the test set-up started (skips on an external broker): for
    tests that check what the broker stores, byte for byte."""
    if "log_dirs" not in _LOCAL_BROKER:
        pytest.skip("the broker is external (KAFKA_BOOTSTRAP_SERVERS): its log directory is not here")
    return _LOCAL_BROKER["log_dirs"]


@pytest.fixture(scope="session")
def kafka_bootstrap():
    from deploy.broker import LocalBroker, external_bootstrap

    external = external_bootstrap()
    if external:
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="aftersale-test-kafka-"))
    broker = LocalBroker(data_dir=data_dir)
    broker.start(timeout=120)
    _LOCAL_BROKER["log_dirs"] = Path(broker.log_dirs)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        if os.environ.get("AFTERSALE_KEEP_TEST_BROKER") is None:
            shutil.rmtree(data_dir, ignore_errors=True)
