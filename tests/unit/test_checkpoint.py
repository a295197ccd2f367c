"""The worker's commit protocol (streams/runtime/checkpoint.py) crashed between every two steps.

A small world stands in for Kafka and RocksDB: append-only logs per topic partition (a record is
durable once sent), committed input offsets, a local store per table partition with the changelog
offset it reached, and Faust's recovery (the changelog replayed from that offset on; from the start
on a wiped disk). The worker is the real batch loop (streams/runtime/batch.py) over the real customer
stage, so the decisions are the worker's own. After each crash a new worker takes over and reads the
uncommitted inputs in another interleaving of its input topics, as Faust may.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
import pytest

from streams.core.model import to_record
from streams.engine import CustomerStage
from streams.runtime.batch import BatchRunner, check_size
from streams.runtime.checkpoint import MAX_RECORD_BYTES, Checkpoint, Output, outbox_key
from streams.runtime.table_io import encode_key, encode_value
from streams.runtime.writeback import WriteBack
from streams.core.state import CustomerState

from helpers import CUSTOMER, HOUR, ORDER, T0, candidate_command, contact, engagement, fact_command, item

COMMANDS, ENGAGEMENT = "customer-commands", "engagement"


class Crash(BaseException):
    """The worker process dies here (a BaseException: nothing in the worker catches it)."""


@dataclass
class Meta:
    partition: int
    offset: int


@dataclass
class Broker:
    logs: dict = field(default_factory=lambda: defaultdict(list))  # (topic, partition) -> [(key, value)]
    committed: dict = field(default_factory=dict)  # input (topic, partition) -> next offset to read
    sends_left: int | None = None  # the process dies at the send after these many

    async def send(self, topic, key, value, partition):
        if self.sends_left is not None:
            if self.sends_left == 0:
                raise Crash("SIGKILL while producing")
            self.sends_left -= 1
        log = self.logs[(topic, partition or 0)]
        log.append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(Meta(partition or 0, len(log) - 1))
        return future


class Store:
    """A table's local RocksDB partitions, as streams.runtime.table_io.RocksStore writes them."""

    def __init__(self, name: str):
        self.changelog_topic = f"{name}-changelog"
        self.dbs: dict[int, dict] = defaultdict(dict)
        self.offsets: dict[int, int] = {}

    encode_key = staticmethod(encode_key)
    encode_value = staticmethod(encode_value)

    def read(self, partition, key):
        return self.dbs[partition].get(encode_key(key))

    def write(self, partition, items, offset):
        db = self.dbs[partition]
        for k, v in items:
            if v is None:
                db.pop(k, None)
            else:
                db[k] = v
        self.offsets[partition] = offset

    def recover(self, broker: Broker, wiped: bool) -> None:
        """Faust's recovery: the changelog from the persisted offset on."""
        if wiped:
            self.dbs.clear()
            self.offsets.clear()
        for (topic, partition), log in broker.logs.items():
            if topic == self.changelog_topic:
                start = self.offsets.get(partition, -1) + 1
                for offset in range(start, len(log)):
                    self.write(partition, [log[offset]], offset)


class Reader:
    """A table as the stage reads it: the current partition's store."""

    def __init__(self, store: Store, current: dict):
        self.store, self.current = store, current

    def get(self, key, default=None):
        raw = self.store.read(self.current["p"], key)
        return default if raw is None else orjson.loads(raw)

    def __getitem__(self, key):
        raw = self.store.read(self.current["p"], key)
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __contains__(self, key):
        return self.store.read(self.current["p"], key) is not None


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: object


@dataclass
class Event:
    message: Message


class CrashingCheckpoint(Checkpoint):
    """Dies right after the named step (of its `crash_at`-th commit)."""

    crash_after: str | None = None
    crash_at: int = 1

    def _maybe(self, step):
        if step == self.crash_after and self.checkpoints + 1 == self.crash_at:
            raise Crash(f"SIGKILL after {step}")

    def prepare(self, views):
        out = super().prepare(views)
        self._maybe("1 prepare")
        return out

    async def send_changelog(self, writes):
        out = await super().send_changelog(writes)
        self._maybe("2 send_changelog")
        return out

    def write_stores(self, writes, offsets):
        super().write_stores(writes, offsets)
        self._maybe("3 write_stores")

    async def send_outputs(self, outputs):
        await super().send_outputs(outputs)
        self._maybe("4 send_outputs")


def encode(out) -> list[Output]:
    records = [
        Output("intents", i.customer_id.encode(), orjson.dumps(to_record(i)), i.customer_id) for i in out.intents
    ]
    records += [
        Output("decision-audit", a.customer_id.encode(), orjson.dumps(to_record(a)), a.customer_id) for a in out.audit
    ]
    return check_size(records)


def decide(stage, message, record):
    out = stage.handle(message.partition, record, record.event_time)
    until = stage.schedule.watermark(message.partition, record.event_time)
    return out.extend(stage.fire(message.partition, until)), until


class Worker:
    """One worker process: the customer stage over its stores, batches of `batch` inputs."""

    def __init__(
        self, broker: Broker, stores: list[Store], batch: int = 3, crash_after: str | None = None, crash_at: int = 1
    ):
        self.broker = broker
        current = {"p": 0}
        views = [
            WriteBack(
                Reader(stores[0], current),
                snapshot=encode_value,
                restore=lambda data: CustomerState.from_dict(orjson.loads(data)),
            ),
            WriteBack(Reader(stores[1], current)),
        ]
        self.checkpoint = CrashingCheckpoint(broker.send, stores, "customer")
        self.checkpoint.crash_after, self.checkpoint.crash_at = crash_after, crash_at
        self.runner = BatchRunner(
            CustomerStage(*views, objects=True, event_clock=True),
            views,
            self.checkpoint,
            decode=lambda m: m.value,
            decide=decide,
            encode=encode,
            dead_letter=lambda m, reason, error: Output("dead-letters", m.key, reason.encode()),
            fire_limit=1000,
            enter=lambda event: current.update(p=event.message.partition),
        )
        self.batch = batch

    def pending(self, inputs: dict, order: list[str]) -> list[Event]:
        """The uncommitted inputs, a topic's after another's in `order`."""
        return [
            Event(Message(t, 0, o, CUSTOMER.encode(), v))
            for t in order
            for o, v in enumerate(inputs[t])
            if o >= self.broker.committed.get((t, 0), 0)
        ]

    async def run(self, inputs: dict, order: list[str]) -> None:
        events = self.pending(inputs, order)
        for i in range(0, len(events), self.batch):
            batch = events[i : i + self.batch]

            async def commit_inputs(batch=batch):
                for e in batch:
                    key = (e.message.topic, e.message.partition)
                    self.broker.committed[key] = max(self.broker.committed.get(key, 0), e.message.offset + 1)

            await self.runner.run(batch, commit_inputs)


def inputs_of_a_repeat_customer() -> dict:
    """A customer reachable by e-mail and SMS whose e-mail bounces (a notice about an earlier order)
    while the confirmation of a new order is being decided: read before the bounce, the confirmation
    goes by e-mail; after it, by SMS. Either is right; both is the defect."""
    channels, noon = contact(email=True, sms=True), T0 + 12 * HOUR  # SMS outside quiet hours
    return {
        COMMANDS: [
            fact_command("placed", at=noon, channels=channels),
            candidate_command(at=noon + 1000, channel="email"),
        ],
        ENGAGEMENT: [engagement("bounced", channel="email", at=noon + 500, order_id="O0")],
    }


def new_world(batch: int = 3) -> tuple[Broker, list[Store], dict]:
    """The order's placement already decided and committed; the confirmation and the bounce not yet."""
    broker, stores, inputs = Broker(), [Store("customers"), Store("schedule")], inputs_of_a_repeat_customer()
    asyncio.run(
        Worker(broker, stores, batch).run({COMMANDS: inputs[COMMANDS][:1], ENGAGEMENT: []}, [COMMANDS, ENGAGEMENT])
    )
    return broker, stores, inputs


def confirmations(broker: Broker) -> set:
    ids = set()
    for _, value in broker.logs[("intents", 0)]:
        record = orjson.loads(value)
        if record["order_id"] == ORDER and record["intent_type"] == "order_confirmation":
            ids.add(record["intent_id"])
    return ids


def test_the_interleaving_decides_the_channel():
    """What made two ids possible: the same inputs in two interleavings give two different decisions."""

    def once(order):
        broker, stores, inputs = new_world()
        asyncio.run(Worker(broker, stores).run(inputs, order))
        return confirmations(broker)

    by_commands_first = once([COMMANDS, ENGAGEMENT])
    by_bounce_first = once([ENGAGEMENT, COMMANDS])
    assert len(by_commands_first) == len(by_bounce_first) == 1
    assert by_commands_first != by_bounce_first


def test_outputs_sent_before_their_state_was_durable_gave_two_ids():
    """The defect, reproduced: the earlier protocol acknowledged outputs, then wrote the state. A
    SIGKILL in between had the inputs redelivered; read in the other interleaving they decided the
    confirmation again, on the other channel, under another id. (Steps in that order, by hand.)"""
    broker, stores, inputs = new_world()

    async def scenario():
        first = Worker(broker, stores, batch=10)
        events = first.pending(inputs, [COMMANDS, ENGAGEMENT])
        runner, ckpt = first.runner, first.checkpoint
        for event in events:  # the batch decided, as the runner does, without committing
            runner._begin(event)
            ckpt.input_seen(event.message.topic, 0, event.message.offset)
            out, _ = decide(runner.stage, event.message, event.message.value)
            ckpt.add(0, encode(out))
        writes, outputs = ckpt.prepare(runner.views)
        await ckpt.send_outputs([o for o in outputs])  # outputs first ... then SIGKILL: no state, no commit
        for s in stores:
            s.recover(broker, wiped=False)
        await Worker(broker, stores, batch=10).run(inputs, [ENGAGEMENT, COMMANDS])
        return confirmations(broker)

    assert len(asyncio.run(scenario())) == 2


STEPS = ["1 prepare", "2 send_changelog", "3 write_stores", "4 send_outputs"]


@pytest.mark.parametrize("wiped", [False, True], ids=["same-disk", "wiped-disk"])
@pytest.mark.parametrize("crash_at", [1, 2])
@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_loses_nothing_and_never_gives_two_ids(step, crash_at, wiped):
    world = new_world()

    async def scenario():
        broker, stores, inputs = world
        with pytest.raises(Crash):
            await Worker(broker, stores, batch=1, crash_after=step, crash_at=crash_at).run(
                inputs, [COMMANDS, ENGAGEMENT]
            )
        for s in stores:
            s.recover(broker, wiped)
        await Worker(broker, stores, batch=2).run(inputs, [ENGAGEMENT, COMMANDS])
        return broker

    broker = asyncio.run(scenario())
    assert len(confirmations(broker)) == 1  # decided once: one id, never none
    by_id = defaultdict(set)
    for _, value in broker.logs[("intents", 0)]:
        record = orjson.loads(value)
        by_id[record["intent_id"]].add(value)
    assert all(len(copies) == 1 for copies in by_id.values())  # a copy sent again is the same bytes
    assert all(broker.committed[(t, 0)] == len(inputs_of_a_repeat_customer()[t]) for t in (COMMANDS, ENGAGEMENT))


@pytest.mark.parametrize("sends", range(0, 9))
def test_a_crash_in_the_middle_of_producing_loses_nothing(sends):
    """SIGKILL after `sends` records of the first batch's checkpoint reached the broker (changelog
    records, the outbox, outputs): whatever part of it survived, each decision is made once."""
    world = new_world()

    async def scenario():
        broker, stores, inputs = world
        broker.sends_left = sends
        try:
            await Worker(broker, stores, batch=3).run(inputs, [COMMANDS, ENGAGEMENT])
        except Crash:
            pass
        broker.sends_left = None
        for s in stores:
            s.recover(broker, wiped=False)
        await Worker(broker, stores, batch=3).run(inputs, [ENGAGEMENT, COMMANDS])
        return broker

    assert len(confirmations(asyncio.run(scenario()))) == 1


def test_an_outbox_whose_inputs_were_committed_is_not_sent_again():
    world = new_world()

    async def scenario():
        broker, stores, inputs = world
        await Worker(broker, stores, batch=3).run(inputs, [COMMANDS, ENGAGEMENT])
        assert stores[0].read(0, outbox_key(0)) is not None  # the last checkpoint's outbox stays
        sent = len(broker.logs[("intents", 0)])
        inputs[ENGAGEMENT].append(engagement("opened", channel="sms", at=T0 + HOUR))
        worker = Worker(broker, stores, batch=3)  # a restart: new assignment, then a new input
        await worker.run(inputs, [COMMANDS, ENGAGEMENT])
        return broker, sent, worker

    broker, sent, worker = asyncio.run(scenario())
    assert worker.checkpoint.resent == 0 and len(broker.logs[("intents", 0)]) == sent


def test_a_state_too_large_for_a_record_dead_letters_its_input_and_the_batch_goes_on():
    """An input whose state would not fit one Kafka record is rolled back and dead-lettered; the
    inputs after it in the batch are decided and committed."""

    async def scenario():
        broker = Broker()
        stores = [Store("customers"), Store("schedule")]
        huge = fact_command(
            "placed",
            at=T0,
            order_id="O-huge",
            command_id="huge",
            items=[item("BIG", "home", title="x" * (MAX_RECORD_BYTES + 10))],
        )
        inputs = {
            COMMANDS: [huge, fact_command("placed", at=T0 + 1, channels=contact()), candidate_command(at=T0 + 1000)],
            ENGAGEMENT: [],
        }
        await Worker(broker, stores, batch=3).run(inputs, [COMMANDS, ENGAGEMENT])
        return broker, stores

    broker, stores = asyncio.run(scenario())
    assert [v for _, v in broker.logs[("dead-letters", 0)]] == [b"state_too_large"]
    assert len(confirmations(broker)) == 1
    state = orjson.loads(stores[0].read(0, CUSTOMER))
    assert "O-huge" not in state["orders"] and ORDER in state["orders"]
    assert broker.committed[(COMMANDS, 0)] == 3


def test_the_largest_output_allowed_still_fits_one_outbox_record_and_comes_back_the_same():
    """Outputs up to MAX_OUTPUT_BYTES that do not compress at all (random bytes) fit one chunk under
    the record limit; the usual ones shrink to about a third."""
    import os

    from streams.runtime.checkpoint import MAX_OUTPUT_BYTES, _pack, _unpack

    big = Output("intents", b"C1", os.urandom(MAX_OUTPUT_BYTES - 10), "C1")
    chunks = _pack([big, Output("intents", b"C1", b"small", "C1")])
    assert all(len(c) < MAX_RECORD_BYTES for c in chunks)
    assert [o for c in chunks for o in _unpack(c)] == [big, Output("intents", b"C1", b"small", "C1")]
    usual = [
        Output("intents", b"C-1", b"\x00\x02" + f"order confirmation O-{i} by email".encode() * 8, "C-1")
        for i in range(300)
    ]
    assert sum(map(len, _pack(usual))) < 0.5 * sum(len(o.value) for o in usual)


def test_an_output_too_large_for_the_outbox_dead_letters_its_input():
    from streams.runtime.batch import OutputTooLarge
    from streams.runtime.checkpoint import MAX_OUTPUT_BYTES

    with pytest.raises(OutputTooLarge):
        check_size([Output("intents", b"C1", b"x" * (MAX_OUTPUT_BYTES + 1))])
