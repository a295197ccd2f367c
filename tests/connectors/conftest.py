"""Fixtures of the connector tests: a fresh app id (own topics) on the session's real broker."""

from __future__ import annotations

import uuid

import pytest

from deploy.topics import apply
from streams.config import Settings
from streams.producer import make_codec
from streams.tools.watch import OutputReader

from connector_helpers import IngestHarness

INPUT_TOPICS = ["orders", "carrier-scans", "engagement", "support", "connector-unknown"]


@pytest.fixture
def kafka_settings(kafka_bootstrap):
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"c{uuid.uuid4().hex[:10]}",
        partitions=2,
        web_token="ingest-test-token",
    )
    apply(settings)
    return settings


@pytest.fixture
def ingest(kafka_settings):
    harness = IngestHarness(kafka_settings)
    yield harness
    harness.close()


@pytest.fixture
def read_topics(kafka_settings):
    """read_topics(until, topics=...) -> [(topic, key, record)] read back from the broker."""
    readers = []

    def read(until, topics=INPUT_TOPICS, timeout=30.0, quiet=0.0):
        reader = OutputReader(kafka_settings, make_codec(kafka_settings), topics)
        readers.append(reader)
        return reader.collect(until, timeout=timeout, quiet=quiet)

    yield read
    for reader in readers:
        reader.close()
