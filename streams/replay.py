"""In-process replay: events through the same stages as a worker, on event time, without Kafka.

Each event goes to the partition Kafka would give its key (murmur2, as the Java client), so the
per-partition schedules and lane statistics evolve as in a worker with the same partition count.
The order stage's commands are handed to the customer stage at once (a worker hands them over
through a topic, so there engagement events may interleave differently).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .core import model
from .core.model import InvalidEvent
from .engine import CustomerStage, OrderStage, Outputs, partition_for

CONVERT = {
    "orders": model.order_event_from,
    "carrier-scans": model.carrier_scan_from,
    "engagement": model.engagement_event_from,
    "support": model.support_event_from,
}


@dataclass
class ReplayResult:
    intents: list[model.MessageIntent] = field(default_factory=list)
    audit: list[model.DecisionAudit] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (event id or '?', reason)
    events: int = 0


class InProcessEngine:
    def __init__(self, partitions: int = 4):
        self.partitions = partitions
        self.orders: dict = {}
        self.customers: dict = {}
        self.order_stage = OrderStage(self.orders, {}, {})
        self.customer_stage = CustomerStage(self.customers, {})

    def feed(self, topic: str, record: dict | object, result: ReplayResult) -> None:
        try:
            event = CONVERT[topic](record) if isinstance(record, dict) else record
        except (InvalidEvent, KeyError, TypeError, ValueError) as exc:
            result.rejected.append((getattr(record, "get", lambda *_: "?")("event_id", "?"), str(exc)))
            return
        result.events += 1
        if topic in ("orders", "carrier-scans"):
            p = partition_for(event.order_id, self.partitions)
            out = self.order_stage.handle(p, event, event.event_time)
            out.extend(self.order_stage.fire(p, self.order_stage.schedule.watermark(p, event.event_time)))
            self._to_customers(out.commands, result)
            result.audit += out.audit
        else:
            self._customer(event, result)

    def _customer(self, item, result: ReplayResult) -> None:
        p = partition_for(item.customer_id, self.partitions)
        out = self.customer_stage.handle(p, item, item.event_time)
        out.extend(self.customer_stage.fire(p, self.customer_stage.schedule.watermark(p, item.event_time)))
        result.intents += out.intents
        result.audit += out.audit

    def _to_customers(self, commands: list[model.CustomerCommand], result: ReplayResult) -> None:
        for command in commands:
            self._customer(command, result)

    def finish(self, until: int, result: ReplayResult) -> None:
        """Let time run on to `until` (e.g. the end of the data plus the post-delivery window),
        so decisions scheduled after the last event still fire."""
        for p in range(self.partitions):
            out = self.order_stage.fire(p, until)
            self._to_customers(out.commands, result)
            result.audit += out.audit
            out = self.customer_stage.fire(p, until)
            result.intents += out.intents
            result.audit += out.audit


def replay(events: Iterable[tuple[str, dict]], partitions: int = 4, run_on_ms: int = 0) -> ReplayResult:
    """Replay (topic, record) pairs in the given order; then let time run on by `run_on_ms`."""
    engine = InProcessEngine(partitions)
    result = ReplayResult()
    last = 0
    for topic, record in events:
        engine.feed(topic, record, result)
        last = max(last, record["event_time"] if isinstance(record, dict) else record.event_time)
    if run_on_ms:
        engine.finish(last + run_on_ms, result)
    return result


def simulated(orders: int, seed: int = 7) -> Iterator[tuple[str, dict]]:
    from .simulate import generate

    for e in generate(orders=orders, seed=seed):
        yield e.topic, e.record
