"""The two stages over plain mappings: what an agent does with one input, minus Kafka.

The Faust agents (streams/app.py) give these classes their tables and send what comes back; the
in-process replay (streams/replay.py) gives them dicts. One code path, so a replay decides exactly
what a worker would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import MutableMapping

from aiokafka.partitioner import murmur2

from .core.customers import decide_customer
from .core.model import CarrierScan, CustomerCommand, DecisionAudit, MessageIntent, OrderEvent
from .core.orders import decide_order
from .core.state import CustomerState, OrderState
from .scheduling import Scheduler


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java client and aiokafka use it)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Outputs:
    commands: list[CustomerCommand] = field(default_factory=list)  # order stage -> customer stage
    intents: list[MessageIntent] = field(default_factory=list)
    audit: list[DecisionAudit] = field(default_factory=list)
    duplicate: bool = False

    def extend(self, other: "Outputs") -> "Outputs":
        self.commands += other.commands
        self.intents += other.intents
        self.audit += other.audit
        return self


class _LaneView:
    """The lane statistics of one partition, read on demand by the core."""

    __slots__ = ("table", "partition")

    def __init__(self, table: MutableMapping, partition: int):
        self.table, self.partition = table, partition

    def get(self, key: str, default=None):
        return self.table.get(f"{self.partition}|{key}", default)


class OrderStage:
    def __init__(self, orders: MutableMapping, lanes: MutableMapping, schedule: MutableMapping):
        self.orders, self.lanes, self.schedule = orders, lanes, Scheduler(schedule)

    def handle(self, partition: int, event: OrderEvent | CarrierScan, now: int) -> Outputs:
        stored = self.orders.get(event.order_id)
        decision = decide_order(OrderState.from_dict(stored) if stored else None, event, now,
                                _LaneView(self.lanes, partition))
        return self._apply(partition, event.order_id, decision)

    def fire(self, partition: int, now: int) -> Outputs:
        """Scheduled decisions of this partition due by `now`. A due decision may schedule another
        that is already due, so loop until nothing is."""
        out = Outputs()
        while dues := self.schedule.due(partition, now):
            for due in dues:
                stored = self.orders.get(due.key)
                if stored is None:
                    continue
                decision = decide_order(OrderState.from_dict(stored), due, now, _LaneView(self.lanes, partition))
                out.extend(self._apply(partition, due.key, decision))
        return out

    def _apply(self, partition: int, key: str, decision) -> Outputs:
        if decision.duplicate:
            return Outputs(duplicate=True)
        self.orders[key] = decision.state.to_dict()
        for lane_key, stats in decision.lanes.items():
            self.lanes[f"{partition}|{lane_key}"] = stats
        self.schedule.add(partition, decision.schedule)
        return Outputs(commands=decision.commands, audit=decision.audit)


class CustomerStage:
    def __init__(self, customers: MutableMapping, schedule: MutableMapping):
        self.customers, self.schedule = customers, Scheduler(schedule)

    def handle(self, partition: int, item, now: int) -> Outputs:
        stored = self.customers.get(item.customer_id)
        decision = decide_customer(CustomerState.from_dict(stored) if stored else None, item, now)
        return self._apply(partition, item.customer_id, decision)

    def fire(self, partition: int, now: int) -> Outputs:
        out = Outputs()
        while dues := self.schedule.due(partition, now):
            for due in dues:
                stored = self.customers.get(due.key)
                if stored is None:
                    continue
                decision = decide_customer(CustomerState.from_dict(stored), due, now)
                out.extend(self._apply(partition, due.key, decision))
        return out

    def _apply(self, partition: int, key: str, decision) -> Outputs:
        if decision.duplicate:
            return Outputs(duplicate=True)
        self.customers[key] = decision.state.to_dict()
        self.schedule.add(partition, decision.schedule)
        return Outputs(intents=decision.intents, audit=decision.audit)
