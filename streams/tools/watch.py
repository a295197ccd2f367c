"""Reading our output topics back: for the demo's live view, tests and tools."""

from __future__ import annotations

import time
from typing import Callable, Iterable

from confluent_kafka import Consumer, KafkaError

from ..codec import OUTPUTS, Codec
from ..config import Settings
from ..security import librdkafka_config


class OutputReader:
    """A consumer of some of our topics from the beginning, decoding values as Avro dicts."""

    def __init__(self, settings: Settings, codec: Codec, topics: Iterable[str], group: str | None = None):
        self.codec = codec
        self.settings = settings
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": group or f"{settings.app_id}-reader-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                **librdkafka_config(settings),
            }
        )
        self.consumer.subscribe([settings.topic(t) for t in topics])

    def poll(self, timeout: float = 0.5) -> list[tuple[str, bytes | None, dict]]:
        out = []
        for msg in self.consumer.consume(num_messages=500, timeout=timeout):
            if msg.error():
                if msg.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                raise RuntimeError(str(msg.error()))
            suffix = self.codec.suffix(msg.topic())
            out.append((suffix, msg.key(), self.codec.serde.decode(msg.value(), OUTPUTS[suffix])))
        return out

    def collect(self, until: Callable[[list], bool], timeout: float = 60.0, quiet: float = 0.0) -> list:
        """Poll until `until(all_so_far)` holds (and nothing new came for `quiet` s), or time out."""
        seen: list = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = self.poll(0.3)
            if batch:
                seen.extend(batch)
                last_new = time.monotonic()
            if until(seen) and time.monotonic() - last_new >= quiet:
                return seen
        return seen

    def close(self) -> None:
        self.consumer.close()
