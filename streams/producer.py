"""Producing our events to Kafka: an idempotent confluent-kafka producer, Avro-encoded values."""
from __future__ import annotations

import time
from typing import Callable, Iterable

from confluent_kafka import Producer

from .codec import Codec
from .config import Settings
from .registry import make_registry
from .security import librdkafka_config
from .serde import AvroSerde
from .simulate import SimEvent


def make_codec(settings: Settings) -> Codec:
    return Codec(AvroSerde(make_registry(settings.schema_registry_url, settings.schema_registry_auth)), settings.app_id)


def make_producer(settings: Settings, **extra) -> Producer:
    return Producer({
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,  # retries never duplicate or reorder within a partition
        # The Java client's partitioner, as aiokafka (and so Faust) uses: co-partitioning only holds
        # if every producer of a key picks the same partition (librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "log.connection.close": False,  # idle disconnects are normal, not worth a log line
        **librdkafka_config(settings),
        **extra,
    })


class EventProducer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.codec = make_codec(settings)
        self.producer = make_producer(settings)
        self.errors: list[str] = []

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")

    def send(self, topic_suffix: str, key: bytes | str | None, value: dict | bytes) -> None:
        payload = value if isinstance(value, bytes) else self.codec.encode(topic_suffix, value)
        key_bytes = key.encode() if isinstance(key, str) else key
        while True:
            try:
                self.producer.produce(self.settings.topic(topic_suffix), payload, key_bytes, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let it drain
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining or self.errors:
            raise RuntimeError(f"{remaining} messages not delivered; errors: {self.errors[:5]}")


def produce_events(settings: Settings, events: Iterable[SimEvent], rate: float | None = None,
                   on_event: Callable[[SimEvent], None] | None = None) -> int:
    """Send events in arrival order, paced at `rate` per second (None: as fast as possible)."""
    out = EventProducer(settings)
    started = time.monotonic()
    n = 0
    for n, event in enumerate(events, 1):
        if rate:
            ahead = started + n / rate - time.monotonic()
            if ahead > 0:
                out.producer.poll(ahead)
        out.send(event.topic, event.key, event.record)
        if on_event:
            on_event(event)
    out.flush()
    return n
