"""In-process replay: events through the same two stages as a worker, on event time, without Kafka.

Each event goes to the partition Kafka would give its key (murmur2, as the Java client), so the
per-partition schedules and lane statistics evolve as in a worker with the same partition count.
The order stage's commands are handed to the customer stage at once: the same as a worker that has
caught up on everything before the next event arrives (the Kafka "lockstep" replay, see
streams/tools/replay/lockstep.py), which is what makes the two paths comparable. A worker fed everything
at once may interleave its input topics differently, and so decide differently.

What a worker dead-letters is rejected here with the same reason code (an exception in the core is
`processing_error`, and that event's outputs are dropped, as in the worker).
"""

from __future__ import annotations

import heapq
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ...core import model
from ...core.model import Due, InvalidEvent
from ...core.policy import DEFAULT_POLICY, PolicyConfig
from ...engine import CustomerStage, OrderStage, partition_for
from ...runtime.scheduling import BUCKET_MS, Scheduler, _bucket_key, _chunk_key, _cursor_key
from .events import CONVERT, ORDER_TOPICS, ReplayEvent, convert, plan
from .output import no_cyclic_gc


@dataclass
class ReplayResult:
    intents: list[model.MessageIntent] = field(default_factory=list)
    audit: list[model.DecisionAudit] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (event id or '?', reason)
    events: int = 0  # events fed (accepted by the converter)
    duplicates: int = 0  # events the core recognised as already seen
    commands: int = 0  # order stage -> customer stage hand-overs
    exact_rerun: bool = False  # the core raised, so the run was repeated on the worker's exact path
    scores: list = field(default_factory=list)  # (order, phase, at, P(late), basis) of every delay assessment
    candidates: list = field(default_factory=list)  # every candidate intent the order stage proposed
    learned: dict = field(default_factory=dict)  # the lane/hand-off statistics at the end, per partition
    outcomes: Counter = field(default_factory=Counter)  # (experiment, arm, outcome) -> total
    shared: dict = field(default_factory=dict)  # the customer stage's partition statistics at the end

    def rejected_by_reason(self) -> Counter:
        return Counter(reason.split(":", 1)[0] for _, reason in self.rejected)


class _IndexedTable(dict):
    """A schedule table (a dict, as in any replay) that also remembers which minute buckets of each
    partition were written, so the scheduler can jump over empty minutes."""

    def __init__(self):
        super().__init__()
        self.heaps: dict[int, list[int]] = {}

    def __setitem__(self, key, value):
        dict.__setitem__(self, key, value)
        if key[:2] == "b:":  # a bucket's header or chunk (b:{p}:{minute}[:{chunk}])
            _, p, bucket = key.split(":")[:3]
            heapq.heappush(self.heaps.setdefault(int(p), []), int(bucket))


class SparseScheduler(Scheduler):
    """The worker's Scheduler (watermark is inherited unchanged) with a `due()` that visits only the
    minute buckets that hold entries, instead of every minute between two events of a partition: on
    sparse data (a few orders over months) that walk was most of the replay's time (`add` is the
    stock one: the chunked layout is indexed as it is written, see _IndexedTable).
    It must pop the same entries, in the same order, and leave the same table behind:
    tests/replay/test_schedule.py checks that against the stock Scheduler on random operations, and
    the replay tests compare whole runs with the stock path (InProcessEngine(objects=False))."""

    def due(self, partition: int, now: int, limit: int | None = None) -> list[Due]:
        if limit is not None:  # (replays fire without a limit; the stock walk keeps the index valid)
            return Scheduler.due(self, partition, now, limit)
        table = self.table
        ck = _cursor_key(partition)
        cursor = table.get(ck)
        if cursor is None:
            return []
        last, current = now // BUCKET_MS, cursor["bucket"]
        if last < current:
            return []
        heap = table.heaps.get(partition)
        if not heap or heap[0] > last:  # the common case: nothing written up to now
            if last != current:
                table[ck] = {**cursor, "bucket": last}
            return []
        buckets: list[int] = []
        while heap and heap[0] <= last:
            bucket = heapq.heappop(heap)
            if bucket >= current and (not buckets or buckets[-1] != bucket):
                buckets.append(bucket)
        fired: list[Due] = []
        emptied: list[int] = []
        for bucket in buckets:
            if self._pop_bucket(partition, bucket, now, fired):
                heapq.heappush(heap, bucket)  # entries later in that minute: visit it again
            else:
                emptied.append(bucket)
        if emptied and cursor.get("index"):
            self._index(partition, [], emptied)  # the table's own hour index, as the stock due() keeps it
        return self._advance(partition, cursor, last, fired)


def _sparse_ok() -> bool:
    # The key layout the index parses.
    return _bucket_key(3, 17) == "b:3:17" and _chunk_key(3, 17, 2) == "b:3:17:2" and BUCKET_MS > 0


class InProcessEngine:
    """Both stages over dicts. `objects=True` (the default, fast) keeps state records as they are
    between events and skips empty minutes in the schedules; `objects=False` runs the worker's code
    path with every state stored as its dict after each event (as the worker's tables hold them
    between batches) and the stock scheduler (slower, for checks)."""

    def __init__(
        self, partitions: int = 4, objects: bool = True, warm: dict | None = None, config: PolicyConfig = DEFAULT_POLICY
    ):
        self.partitions = partitions
        self.orders: dict = {}
        self.customers: dict = {}
        self.lanes: dict = {}
        self.stats: dict = {}
        self.order_stage = OrderStage(self.orders, self.lanes, {}, objects=objects, event_clock=True, warm=warm)
        self.customer_stage = CustomerStage(
            self.customers, {}, self.stats, objects=objects, event_clock=True, config=config
        )
        if objects and _sparse_ok():  # the fast path; objects=False stays exactly the worker's code
            self.order_stage.schedule = SparseScheduler(_IndexedTable())
            self.customer_stage.schedule = SparseScheduler(_IndexedTable())
        self._partition: dict[str, int] = {}  # key -> partition (murmur2 in pure Python is not free)

    def partition(self, key: str) -> int:
        p = self._partition.get(key)
        if p is None:
            p = self._partition[key] = partition_for(key, self.partitions)
        return p

    # --- feeding ---------------------------------------------------------------------------

    def feed(self, topic: str, record: dict | object, result: ReplayResult) -> None:
        """One input: a wire dict (converted here) or an already converted core record."""
        if isinstance(record, dict):
            if topic not in CONVERT:
                result.rejected.append((record.get("event_id", "?"), f"unknown_topic: {topic}"))
                return
            try:
                record = convert(topic, record)
            except InvalidEvent as exc:
                result.rejected.append((record.get("event_id", "?"), str(exc)))
                return
        self.feed_event(topic, record, result)

    def feed_event(self, topic: str, event, result: ReplayResult) -> None:
        result.events += 1
        if topic in ORDER_TOPICS:
            stage = self.order_stage
            p = self.partition(event.order_id)
            try:
                out = stage.handle(p, event, event.event_time)
                if out.duplicate:
                    result.duplicates += 1
                out.extend(stage.fire(p, stage.schedule.watermark(p, event.event_time)))
            except Exception:  # as the worker: park the event (its outputs are not sent), keep going
                result.rejected.append((event.event_id, "processing_error: " + traceback.format_exc(limit=3)))
                return
            self._order_outputs(out, result)
        else:
            self._customer(event, result, counted=True)

    def _customer(self, item, result: ReplayResult, counted: bool = False) -> None:
        stage = self.customer_stage
        if not counted:
            result.commands += 1
        p = self.partition(item.customer_id)
        try:
            out = stage.handle(p, item, item.event_time)
            if out.duplicate and counted:
                result.duplicates += 1
            out.extend(stage.fire(p, stage.schedule.watermark(p, item.event_time)))
        except Exception:
            ident = getattr(item, "event_id", None) or getattr(item, "command_id", "?")
            result.rejected.append((ident, "processing_error: " + traceback.format_exc(limit=3)))
            return
        self._customer_outputs(out, result)

    @staticmethod
    def _customer_outputs(out, result: ReplayResult) -> None:
        result.intents += out.intents
        result.audit += out.audit
        for experiment, arm, outcome, value in out.outcomes:
            result.outcomes[(experiment, arm, outcome)] += value

    def tick(self, now: int, result: ReplayResult) -> None:
        """Time passes to `now` on every partition, as a live worker's timer makes it: every order
        partition's due decisions fire first (their commands reach the customer stage as messages
        do), then every customer partition's. The Kafka path sends exactly these ticks."""
        for p in range(self.partitions):
            self.tick_orders(p, now, result)
        for p in range(self.partitions):
            self.tick_customers(p, now, result)

    finish = tick  # let time run on to `until` after the data, so later schedules still fire

    def tick_orders(self, p: int, until: int, result: ReplayResult) -> None:
        try:
            out = self.order_stage.fire(p, until)
        except Exception:
            result.rejected.append((f"tick:{p}:{until}", "processing_error: " + traceback.format_exc(limit=3)))
            return
        self._order_outputs(out, result)

    def _order_outputs(self, out, result: ReplayResult) -> None:
        result.audit += out.audit
        result.intents += out.intents
        result.scores += out.scores
        for command in out.commands:
            if command.kind == "candidate_intent":
                result.candidates.append(command.intent)
            self._customer(command, result)

    def tick_customers(self, p: int, until: int, result: ReplayResult) -> None:
        try:
            out = self.customer_stage.fire(p, until)
        except Exception:
            result.rejected.append((f"tick:{p}:{until}", "processing_error: " + traceback.format_exc(limit=3)))
            return
        self._customer_outputs(out, result)


def run_events(
    events: list[ReplayEvent],
    partitions: int = 4,
    run_on_ms: int = 0,
    objects: bool = True,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 2048,
    tick_ms: int = 0,
    warm: dict | None = None,
    config: PolicyConfig = DEFAULT_POLICY,
) -> ReplayResult:
    """Prepared events (streams/tools/replay/events.py) through the engine, in the given order, with time
    ticking every `tick_ms` and running on `run_on_ms` past the last event (see events.plan).
    `progress(n)` is called with the number of events done so far.

    If the core raised (a bug: the event is parked as `processing_error`, as a worker dead-letters
    it), the fast path cannot say what state the failed call left behind, while a worker keeps the
    state from before the event. So the whole replay is run again on the worker's exact path
    (objects=False), and that result is returned, with `exact_rerun` set."""
    with no_cyclic_gc():
        result = _run(events, partitions, run_on_ms, tick_ms, objects, progress, progress_every, warm, config)
        if objects and any(reason.startswith("processing_error") for _, reason in result.rejected):
            result = _run(events, partitions, run_on_ms, tick_ms, False, None, progress_every, warm, config)
            result.exact_rerun = True
    return result


def _run(
    events: list[ReplayEvent],
    partitions: int,
    run_on_ms: int,
    tick_ms: int,
    objects: bool,
    progress: Callable[[int], None] | None,
    progress_every: int,
    warm: dict | None = None,
    config: PolicyConfig = DEFAULT_POLICY,
) -> ReplayResult:
    engine = InProcessEngine(partitions, objects=objects, warm=warm, config=config)
    result = ReplayResult()
    feed = engine.feed_event
    n = 0
    for kind, item in plan(events, tick_ms, run_on_ms):
        if kind == "event":
            feed(item.topic, item.event, result)
            n += 1
            if progress is not None and n % progress_every == 0:
                progress(n)
        else:
            engine.tick(item, result)
    if progress is not None:
        progress(n)
    result.learned = dict(engine.lanes)
    result.shared = dict(engine.stats)
    return result


def replay(events: Iterable[tuple[str, dict]], partitions: int = 4, run_on_ms: int = 0) -> ReplayResult:
    """Replay (topic, record) pairs in the given order; then let time run on by `run_on_ms`."""
    engine = InProcessEngine(partitions)
    result = ReplayResult()
    last = 0
    for topic, record in events:
        engine.feed(topic, record, result)
        t = record.get("event_time") if isinstance(record, dict) else record.event_time
        if isinstance(t, int) and t > last:
            last = t
    if run_on_ms:
        engine.finish(last + run_on_ms, result)
    return result


def simulated(orders: int, seed: int = 7) -> Iterator[tuple[str, dict]]:
    from ..simulate import generate

    for e in generate(orders=orders, seed=seed):
        yield e.topic, e.record
