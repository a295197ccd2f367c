"""Our records to Kafka with an idempotent aiokafka producer, awaited until the broker has them.

The ingest service answers a webhook with 2xx only after `send_all` returned: every record is then
acknowledged by all in-sync replicas (acks=all), and producer retries cannot duplicate or reorder
records within a partition (enable_idempotence).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from streams import security
from streams.codec import INPUTS, Codec
from streams.config import Settings
from streams.producer import make_codec

from .records import OutRecord


def client_options(settings: Settings) -> dict:
    """aiokafka connection options from the same settings the engine's clients use (streams/security.py)."""
    return security.aiokafka_options(settings)


@dataclass(frozen=True)
class Message:
    topic: str  # full topic name
    key: bytes | None
    value: bytes


class EventSink:
    def __init__(self, settings: Settings, codec: Codec | None = None, **producer_options):
        self.settings = settings
        self.codec = codec or make_codec(settings)
        self._options = {"linger_ms": 2, "request_timeout_ms": 15_000, **producer_options}
        self.producer: AIOKafkaProducer | None = None
        self.acknowledged = 0  # records the broker confirmed, for tests and /health

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            **client_options(self.settings), enable_idempotence=True, acks="all", **self._options
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    @property
    def started(self) -> bool:
        return self.producer is not None

    def prepare(self, record: OutRecord) -> Message:
        """Validate as the engine will (so it is never dead-lettered there) and encode.
        Raises InvalidEvent or ValueError for a record that does not fit."""
        _schema, convert = INPUTS[record.topic]
        convert(dict(record.value))
        return Message(
            self.settings.topic(record.topic), record.key.encode(), self.codec.encode(record.topic, record.value)
        )

    def prepare_raw(self, topic_suffix: str, key: str | None, value: dict) -> Message:
        return Message(
            self.settings.topic(topic_suffix), key.encode() if key else None, self.codec.encode(topic_suffix, value)
        )

    async def send_all(self, messages: list[Message], timeout: float) -> None:
        """Returns once the broker acknowledged every message; raises KafkaError or TimeoutError."""
        if not messages:
            return
        assert self.producer is not None, "EventSink.start() first"
        futures = [await self.producer.send(m.topic, m.value, key=m.key) for m in messages]
        await asyncio.wait_for(asyncio.gather(*futures), timeout)
        self.acknowledged += len(messages)
