"""Producing our events to Kafka: an idempotent confluent-kafka producer, Avro-encoded values."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Iterable

from confluent_kafka import Producer

from .codec import Codec
from .config import Settings
from .registry import make_registry
from .security import librdkafka_config
from .serde import AvroSerde

if TYPE_CHECKING:  # the simulator's events, produced by the demo and `simulate` (a tool)
    from .tools.simulate import SimEvent


def make_codec(settings: Settings) -> Codec:
    return Codec(AvroSerde(make_registry(settings.schema_registry_url, settings.schema_registry_auth)), settings.app_id)


def make_producer(settings: Settings, **extra) -> Producer:
    return Producer(
        {
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
        }
    )


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
                self.producer.produce(
                    self.settings.topic(topic_suffix), payload, key_bytes, on_delivery=self._on_delivery
                )
                break
            except BufferError:  # local queue full: let it drain
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining or self.errors:
            raise RuntimeError(f"{remaining} messages not delivered; errors: {self.errors[:5]}")

    def tick(self, at: int) -> None:
        """Event-time ticks: tell every partition of both stages that time is now `at`, so their
        scheduled decisions fire (a live worker's timer does this on the wall clock)."""
        tick = {"command_id": f"tick:{at}", "event_time": at, "kind": "tick", "due": {"now": at}}
        order_tick = self.codec.encode("order-commands", {**tick, "order_id": None})
        customer_tick = self.codec.encode("customer-commands", {**tick, "customer_id": "", "order_id": ""})
        for p in range(self.settings.partitions):
            self._produce(self.settings.topic("order-commands"), order_tick, partition=p)
            self._produce(self.settings.topic("customer-commands"), customer_tick, partition=p)

    def _produce(self, topic: str, value: bytes, **kw) -> None:
        while True:
            try:
                self.producer.produce(topic, value, on_delivery=self._on_delivery, **kw)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)


def produce_events(
    settings: Settings,
    events: Iterable[SimEvent],
    rate: float | None = None,
    on_event: Callable[[SimEvent], None] | None = None,
    tick_ms: int | None = None,
    run_on_ms: int = 0,
    before_tick: Callable[[int], None] | None = None,
) -> int:
    """Send events in arrival order, paced at `rate` per second (None: as fast as possible). With
    `tick_ms`, event-time ticks go out as event time passes, and for `run_on_ms` after the last
    event, so decisions planned for later (reviews, reminders) fire as they would live.
    `before_tick(at)` is called before each tick, with everything sent so far acknowledged (the
    demo waits there for the worker to catch up); the time it takes does not count against `rate`."""
    out = EventProducer(settings)
    started = time.monotonic()
    n = 0
    next_tick = None
    for n, event in enumerate(events, 1):
        if rate:  # poll() returns after the first delivery report it serves, so wait in a loop
            due = started + (n - 1) / rate
            while (ahead := due - time.monotonic()) > 0:
                out.producer.poll(ahead)
        at = event.record["event_time"]
        if tick_ms:
            next_tick = next_tick or (at // tick_ms + 1) * tick_ms
            while at >= next_tick:
                if before_tick:
                    paused = time.monotonic()
                    out.flush()
                    before_tick(next_tick)
                    started += time.monotonic() - paused
                out.tick(next_tick)
                next_tick += tick_ms
        out.send(event.topic, event.key, event.record)
        if on_event:
            on_event(event)
    if tick_ms and next_tick is not None:
        for at in range(next_tick, next_tick + run_on_ms, tick_ms):
            out.tick(at)
    out.flush()
    return n
