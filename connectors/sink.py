"""Our records to Kafka with an idempotent aiokafka producer, awaited until the broker has them.

The ingest service answers a webhook with 2xx only after `send_all` returned: every record is then
acknowledged by all in-sync replicas (acks=all), and producer retries cannot duplicate or reorder
records within a partition (enable_idempotence).

A record over the producer's max_request_size can never be produced, however often it is retried:
`oversized` finds those before anything is sent (the producer's own size estimate, so the same
decision), and `send_all` raises RecordTooLarge for them, also when it is the broker that refuses
a record (a topic's max.message.bytes below the producer's limit).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams import security
from streams.codec import INPUTS, Codec
from streams.config import Settings
from streams.producer import make_codec

from .records import OutRecord


MAX_REQUEST_SIZE = 1_048_576  # aiokafka's default, within the broker's default message.max.bytes


@dataclass(frozen=True)
class Message:
    topic: str  # full topic name
    key: bytes | None
    value: bytes
    event_id: str | None = None  # our event id, for logs


class RecordTooLarge(MessageSizeTooLargeError):
    """Records that can never be produced: (message, size in bytes) each."""

    def __init__(self, oversized: list[tuple[Message, int]]):
        super().__init__(f"{len(oversized)} record(s) too large: {[size for _m, size in oversized]} bytes")
        self.oversized = oversized


class EventSink:
    def __init__(self, settings: Settings, codec: Codec | None = None, **producer_options):
        self.settings = settings
        self.codec = codec or make_codec(settings)
        self._options = {
            "linger_ms": 2,
            "request_timeout_ms": 15_000,
            "max_request_size": MAX_REQUEST_SIZE,
            **producer_options,
        }
        self.producer: AIOKafkaProducer | None = None
        self.acknowledged = 0  # records the broker confirmed, for tests and /health

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            **security.aiokafka_options(self.settings), enable_idempotence=True, acks="all", **self._options
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    @property
    def started(self) -> bool:
        return self.producer is not None

    @property
    def max_request_size(self) -> int:
        return self._options["max_request_size"]

    @staticmethod
    def size(message: Message) -> int:
        """Bytes the producer counts against max_request_size for this record alone."""
        return DefaultRecordBatchBuilder.estimate_size_in_bytes(message.key, message.value, [])

    def oversized(self, messages: list[Message]) -> list[tuple[Message, int]]:
        sized = [(m, self.size(m)) for m in messages]
        return [(m, size) for m, size in sized if size > self.max_request_size]

    @staticmethod
    def check(record: OutRecord) -> None:
        """Validate as the engine will, so it is never dead-lettered there. Raises InvalidEvent or
        ValueError for a record that does not fit."""
        INPUTS[record.topic][1](dict(record.value))

    def prepare(self, record: OutRecord) -> Message:
        """Validate (`check`) and encode."""
        self.check(record)
        return Message(
            self.settings.topic(record.topic),
            record.key.encode(),
            self.codec.encode(record.topic, record.value),
            record.event_id,
        )

    def prepare_raw(self, topic_suffix: str, key: str | None, value: dict) -> Message:
        return Message(
            self.settings.topic(topic_suffix), key.encode() if key else None, self.codec.encode(topic_suffix, value)
        )

    async def send_all(self, messages: list[Message], timeout: float) -> None:
        """Returns once the broker acknowledged every message; raises KafkaError or TimeoutError,
        RecordTooLarge (a KafkaError too) when the only failures are records too large to produce."""
        if not messages:
            return
        assert self.producer is not None, "EventSink.start() first"
        oversized = self.oversized(messages)
        if oversized:
            raise RecordTooLarge(oversized)
        futures = [await self.producer.send(m.topic, m.value, key=m.key) for m in messages]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)
        failed = [(m, r) for m, r in zip(messages, results) if isinstance(r, BaseException)]
        self.acknowledged += len(messages) - len(failed)
        retryable = [r for _m, r in failed if not isinstance(r, MessageSizeTooLargeError)]
        if retryable:
            raise retryable[0]
        if failed:  # the broker's limit is below the producer's
            raise RecordTooLarge([(m, self.size(m)) for m, _r in failed])
