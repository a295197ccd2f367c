"""Erasure on request: a customer's state and their orders' state leave the tables, as tombstones
in the changelogs, so a worker rebuilt from the changelogs does not bring them back."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.producer import EventProducer

from .test_engine import T0, one_order, only, reader, settings, workers  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def last_values(settings, topic: str, keys: set[bytes], timeout: float = 30.0) -> dict[bytes, bytes | None]:
    """The newest value per key in a (changelog) topic, read from the beginning."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"check-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    parts = [TopicPartition(topic, p, 0) for p in range(settings.partitions)]
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
    consumer.assign(parts)
    latest: dict[bytes, bytes | None] = {}
    done = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + timeout
    while len(done) < len(parts) and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error():
                continue
            if msg.key() in keys:
                latest[msg.key()] = msg.value()
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
    consumer.close()
    return latest


def test_erasure_tombstones_customer_and_order_state(settings, workers, reader):  # noqa: F811
    workers()
    producer = EventProducer(settings)
    for topic, key, record in one_order("O-E", "C-E")[:3]:
        producer.send(topic, key, record)
    producer.flush()
    reader.collect(lambda s: len(only(s, "intents")) >= 2, timeout=60)
    changelogs = {
        "customers": f"{settings.app_id}-customers-changelog",
        "orders": f"{settings.app_id}-orders-changelog",
    }
    before = {name: last_values(settings, t, {b'"C-E"', b'"O-E"'}) for name, t in changelogs.items()}
    assert before["customers"].get(b'"C-E"') and before["orders"].get(b'"O-E"')  # state was there

    producer.send(
        "erasure-requests",
        "C-E",
        {
            "event_id": "erase-1",
            "event_time": T0 + 100_000_000,
            "source": "test",
            "customer_id": "C-E",
            "order_ids": [],
        },
    )
    producer.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = {name: last_values(settings, t, {b'"C-E"', b'"O-E"'}) for name, t in changelogs.items()}
        if after["customers"].get(b'"C-E"', b"x") is None and after["orders"].get(b'"O-E"', b"x") is None:
            break
        time.sleep(1)
    assert after["customers"][b'"C-E"'] is None, "no tombstone for the customer"
    assert after["orders"][b'"O-E"'] is None, "no tombstone for the customer's order"
    # A later scan for the erased order decides nothing: no customer, no order, no message.
    producer.send(*one_order("O-E", "C-E")[3][:2], {**one_order("O-E", "C-E")[3][2], "event_id": "late-scan"})
    producer.flush()
    late = reader.collect(lambda s: False, timeout=5)
    assert not [r for r in only(late, "intents") if r["order_id"] == "O-E"]
