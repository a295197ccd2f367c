"""The two stages over plain mappings: what an agent does with one input, minus Kafka.

The Faust agents (streams/runtime/app.py) give these classes their tables and send what comes back; the
in-process replay (streams/tools/replay/) gives them dicts. One code path, so a replay decides exactly
what a worker would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import MutableMapping

from aiokafka.partitioner import murmur2

from .core.customers import decide_customer
from .core.model import (
    CarrierScan,
    CustomerCommand,
    DecisionAudit,
    Due,
    ErasureRequest,
    MessageIntent,
    OrderCommand,
    OrderEvent,
    Schedule,
)
from .core.orders import decide_order
from .core.policy import DEFAULT_POLICY, PolicyConfig
from .core.state import CustomerState, OrderState
from .runtime.scheduling import Scheduler


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java client and aiokafka use it)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Outputs:
    commands: list[CustomerCommand] = field(default_factory=list)  # order stage -> customer stage
    intents: list[MessageIntent] = field(default_factory=list)
    audit: list[DecisionAudit] = field(default_factory=list)
    erase_orders: list[str] = field(default_factory=list)  # customer stage -> order stage, on erasure
    duplicate: bool = False
    fired: int = 0  # scheduled decisions taken (Dues popped)
    scores: list = field(default_factory=list)  # the order stage's delay assessments (replays keep them)
    outcomes: list = field(default_factory=list)  # (experiment, arm, outcome, value) (core/experiments.py)
    more: bool = False  # a fire stopped at its limit: more may be due (the worker fires again, see app.py)

    def extend(self, other: "Outputs") -> "Outputs":
        self.commands += other.commands
        self.intents += other.intents
        self.audit += other.audit
        self.erase_orders += other.erase_orders
        self.scores += other.scores
        self.outcomes += other.outcomes
        self.fired += other.fired
        self.more = self.more or other.more
        return self


def _next_dues(scheduler: Scheduler, partition: int, now: int, limit: int | None, out: Outputs) -> list[Due]:
    """The next round of a fire: every Due by `now`, or, with a limit, what is left of it (at least
    one chunk's worth past it). Marks `out.more` when the limit is spent, so whoever fires knows to
    come back (nothing is lost either way: what is not popped stays in the schedule)."""
    if limit is None:
        dues = scheduler.due(partition, now)
    elif out.fired >= limit:
        out.more = True
        return []
    else:
        dues = scheduler.due(partition, now, limit - out.fired)
    out.fired += len(dues)
    return dues


def _decision_time(due: Due, now: int, event_clock: bool) -> int:
    """When a scheduled decision is taken. Live, it is now: a check that fires late is late, and
    stale news is dropped. On event time the partition's clock only moves when its next event comes,
    which may be long after the due time; the decision is the one a live worker would have taken then."""
    return due.due_at if event_clock else now


def _schedule(scheduler: Scheduler, partition: int, entries: list[Schedule], now: int, later: list | None) -> None:
    """Add a decision's schedule entries now, or (in a fire round) collect them in `later`.

    A fire round (the Dues one `due()` call popped) adds what its decisions schedule in one call
    after the round, not once per decision: in a burst (thousands of checks due in the same minute)
    the chunk they land in is then written once per round instead of once per decision, and every
    write is a changelog record. That decides the same: the round's Dues are already popped, the
    cursor does not move during the round (so each entry lands in the same bucket), and the entries
    come due in the next round either way. They are added even when a decision of the round raises
    (`finally`), as they were when each was added at once: the decisions before it stored state that
    waits for them."""
    if later is None:
        scheduler.add(partition, entries, now)
    else:
        later += entries


def _repair(table: MutableMapping, scheduler: Scheduler, partition: int, key: str, stored, state, now: int) -> Outputs:
    """A redelivered input (seen before): nothing new to decide, but the state it found may have
    reached only the local store before a crash, not the changelog, nor the schedule entries that
    were to be written after it. Writing the state again and re-adding its timers makes it whole;
    a timer added twice fires once (the second Due no longer matches the state)."""
    table[key] = stored
    scheduler.add(partition, [Schedule(key, kind, due_at) for kind, due_at in state.timers.items()], now)
    return Outputs(duplicate=True)


def _at(due: Due, now: int) -> Due:
    """The Due as decided at `now` (a direct copy: dataclasses.replace is slow on this path)."""
    return due if due.now == now else Due(due.key, due.kind, due.due_at, now)


class _PartitionView:
    """The learned statistics of one partition, read on demand by the core: the order stage's lanes
    (with the warm start's under them), the customer stage's send-time habits and bandit counts."""

    __slots__ = ("table", "partition", "warm")

    def __init__(self, table: MutableMapping, partition: int, warm: dict | None = None):
        self.table, self.partition, self.warm = table, partition, warm

    def get(self, key: str, default=None):
        found = self.table.get(f"{self.partition}|{key}")
        if found is None and self.warm:
            found = self.warm.get(key)  # learned from past orders (streams/core/warm.py)
        return default if found is None else found


class OrderStage:
    """`objects=True` keeps the state records themselves in `orders` instead of their dicts (a
    stored dict, e.g. one read from RocksDB, is still loaded): for in-process replays, where the dict
    round trip was ~80% of the time, and for the worker, whose write-back view holds a batch's states
    until they are serialised once at its end. The core takes ownership of the state it is given, so
    this is the same computation."""

    def __init__(
        self,
        orders: MutableMapping,
        lanes: MutableMapping,
        schedule: MutableMapping,
        objects: bool = False,
        event_clock: bool = False,
        warm: dict | None = None,
    ):
        self.orders, self.lanes, self.schedule = orders, lanes, Scheduler(schedule)
        self.warm = warm  # statistics learned from past orders, under every partition's own
        self.objects = objects
        self.event_clock = event_clock

    def _load(self, stored) -> OrderState | None:
        if not stored:
            return None
        return OrderState.from_dict(stored) if type(stored) is dict else stored

    def handle(self, partition: int, event: OrderEvent | CarrierScan | OrderCommand, now: int) -> Outputs:
        if isinstance(event, OrderCommand):  # erase (ticks never get here)
            self.erase(event.order_id)
            return Outputs()
        stored = self.orders.get(event.order_id)
        decision = decide_order(self._load(stored), event, now, _PartitionView(self.lanes, partition, self.warm))
        if decision.duplicate and stored:
            return _repair(self.orders, self.schedule, partition, event.order_id, stored, decision.state, now)
        return self._apply(partition, event.order_id, decision, now)

    def erase(self, order_id: str) -> None:
        """Forget the order (a tombstone in the changelog). Its scheduled checks lapse: a Due for a
        key without state does nothing."""
        if order_id in self.orders:
            del self.orders[order_id]

    def fire(self, partition: int, now: int, limit: int | None = None) -> Outputs:
        """Scheduled decisions of this partition due by `now` (at most about `limit` of them, see
        _next_dues). A due decision may schedule another that is already due, so loop until nothing is."""
        out = Outputs()
        while dues := _next_dues(self.schedule, partition, now, limit, out):
            later: list[Schedule] = []  # what the round schedules, added once (see _schedule)
            try:
                for due in dues:
                    stored = self._load(self.orders.get(due.key))
                    if stored is None:
                        continue
                    when = _decision_time(due, now, self.event_clock)
                    # The Due carries the fire's time: follow-up checks are scheduled from it.
                    decision = decide_order(
                        stored, _at(due, now), when, _PartitionView(self.lanes, partition, self.warm)
                    )
                    out.extend(self._apply(partition, due.key, decision, when, later))
            finally:
                self.schedule.add(partition, later, now)
        return out

    def _apply(self, partition: int, key: str, decision, now: int, later: list | None = None) -> Outputs:
        if decision.duplicate:
            return Outputs(duplicate=True)
        self.orders[key] = decision.state if self.objects else decision.state.to_dict()
        for lane_key, stats in decision.lanes.items():
            self.lanes[f"{partition}|{lane_key}"] = stats
        _schedule(self.schedule, partition, decision.schedule, now, later)
        return Outputs(commands=decision.commands, audit=decision.audit, scores=decision.scores)


class CustomerStage:
    """`objects=True`: see OrderStage. `stats`: the partition statistics table (learned per
    partition, like lanes); `config`: the policy, with the experiments file's experiments."""

    def __init__(
        self,
        customers: MutableMapping,
        schedule: MutableMapping,
        stats: MutableMapping | None = None,
        objects: bool = False,
        event_clock: bool = False,
        config: PolicyConfig = DEFAULT_POLICY,
    ):
        self.event_clock = event_clock
        self.customers, self.schedule = customers, Scheduler(schedule)
        self.stats = {} if stats is None else stats
        self.objects = objects
        self.config = config

    def _load(self, stored) -> CustomerState | None:
        if not stored:
            return None
        return CustomerState.from_dict(stored) if type(stored) is dict else stored

    def erase(self, request: ErasureRequest) -> Outputs:
        """Forget the customer, and hand the orders we know of them to the order stage to forget."""
        stored = self.customers.get(request.customer_id) or {}
        if self.objects and not isinstance(stored, dict):
            stored = stored.to_dict()
        known = set(request.order_ids) | set(stored.get("orders") or ()) | set(stored.get("order_ids") or ())
        if request.customer_id in self.customers:
            del self.customers[request.customer_id]
        return Outputs(erase_orders=sorted(known))

    def handle(self, partition: int, item, now: int) -> Outputs:
        if isinstance(item, ErasureRequest):
            return self.erase(item)
        stored = self.customers.get(item.customer_id)
        decision = decide_customer(self._load(stored), item, now, self.config, _PartitionView(self.stats, partition))
        if decision.duplicate and stored and getattr(item, "kind", None) != "tick":
            return _repair(self.customers, self.schedule, partition, item.customer_id, stored, decision.state, now)
        return self._apply(partition, item.customer_id, decision, now)

    def fire(self, partition: int, now: int, limit: int | None = None) -> Outputs:
        out = Outputs()
        while dues := _next_dues(self.schedule, partition, now, limit, out):
            later: list[Schedule] = []
            try:
                for due in dues:
                    stored = self._load(self.customers.get(due.key))
                    if stored is None:
                        continue
                    when = _decision_time(due, now, self.event_clock)
                    decision = decide_customer(
                        stored, _at(due, when), when, self.config, _PartitionView(self.stats, partition)
                    )
                    out.extend(self._apply(partition, due.key, decision, when, later))
            finally:
                self.schedule.add(partition, later, now)
        return out

    def _apply(self, partition: int, key: str, decision, now: int, later: list | None = None) -> Outputs:
        if decision.duplicate:
            return Outputs(duplicate=True)
        self.customers[key] = decision.state if self.objects else decision.state.to_dict()
        for stat_key, value in decision.stats.items():
            self.stats[f"{partition}|{stat_key}"] = value
        _schedule(self.schedule, partition, decision.schedule, now, later)
        return Outputs(intents=decision.intents, audit=decision.audit, outcomes=decision.outcomes)
