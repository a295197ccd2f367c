"""The stall guard's decision: which input partitions to re-read, and the fetch tracker that says what
Faust's fetcher still holds and keeps a re-read from leaving a gap (streams/faust_ext.py)."""
import asyncio
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

from faust.types import TP

from streams import faust_ext
from streams.faust_ext import FetchTracker, StallGuard


def checks(guard, positions, idle=True, n=3):
    return [guard.stalled(positions, idle) for _ in range(n)]


def test_a_partition_behind_and_not_moving_is_re_read_after_patience_checks():
    # Seeked to committed 18 (Faust's read offset is then 18 too), the broker has up to 87: stuck.
    assert checks(StallGuard(patience=2), {"tp": (18, 18, 88, False)}) == [[], [], ["tp"]]


def test_never_delivered_and_never_committed_counts_from_zero():
    assert checks(StallGuard(patience=2), {"tp": (None, None, 5, False)}) == [[], [], ["tp"]]


def test_caught_up_partitions_are_left_alone():
    guard = StallGuard(patience=1)
    # Last delivered 87, committed 88, high-water 88: nothing left to read.
    assert checks(guard, {"a": (87, 88, 88, False), "b": (None, None, 0, False), "c": (None, None, None, False)}, n=5) == [[]] * 5
    # Delivered 87 and not committed yet (in flight): nothing left to read either.
    assert checks(guard, {"a": (87, 80, 88, False)}, n=5) == [[]] * 5


def test_a_moving_partition_is_not_stalled():
    guard = StallGuard(patience=2)
    assert [guard.stalled({"tp": (offset, 0, 1000, False)}, True) for offset in (10, 20, 30, 40)] == [[]] * 4


def test_a_busy_worker_is_not_stalled():
    # Records wait while an agent works through a batch: not a stall, however long it takes.
    assert checks(StallGuard(patience=1), {"tp": (18, 18, 88, False)}, idle=False, n=5) == [[]] * 5


def test_being_busy_resets_the_count():
    guard = StallGuard(patience=2)
    seq = [guard.stalled({"tp": (18, 18, 88, False)}, idle) for idle in (True, True, False, True)]
    assert seq == [[], [], [], []]
    assert guard.stalled({"tp": (18, 18, 88, False)}, True) == ["tp"]


def test_after_a_re_read_the_count_starts_again():
    guard = StallGuard(patience=1)
    assert checks(guard, {"tp": (18, 18, 88, False)}, n=4) == [[], ["tp"], [], ["tp"]]
    # and a partition that moved on after its re-read is not re-read again
    assert [guard.stalled({"tp": (o, 18, 88, False)}, True) for o in (30, 50, 87, 87, 87)] == [[]] * 5


def test_a_partition_whose_records_the_fetcher_holds_is_not_re_read():
    # Behind and not moving, but its records are in the batch the fetcher is delivering: it waits
    # behind another agent's full buffer (head-of-line). Re-reading it then lost inputs.
    guard = StallGuard(patience=1)
    assert checks(guard, {"tp": (18, 18, 88, True)}, n=5) == [[]] * 5
    # and holding resets the count, as being busy does
    guard = StallGuard(patience=2)
    assert [guard.stalled({"tp": (18, 18, 88, held)}, True) for held in (False, False, True, False, False)] == [
        [], [], [], [], ["tp"]]


# --- FetchTracker, over a stand-in for Faust's `_wait_next_records` -------------------------------------

@dataclass
class Record:
    offset: int


class Consumer:
    """What FetchTracker uses of Faust's consumer: `_wait_next_records`, `_read_offset`, and which
    topics Faust acknowledges (and so tracks gaps on): not the changelogs."""

    def __init__(self):
        self.batches: list[dict] = []
        self._read_offset = defaultdict(lambda: None)
        self.seeks: list = []
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: topic != "changelog"))

    async def _wait_next_records(self, timeout):
        return (self.batches.pop(0) if self.batches else {}), None


A, B, C, LOG = TP("orders", 0), TP("orders", 1), TP("orders", 2), TP("changelog", 0)


def batch(tp, first, last):
    return {tp: [Record(o) for o in range(first, last + 1)]}


async def recorded_seek(consumer, tp, offset):
    consumer.seeks.append((tp, offset))
    consumer._read_offset[tp] = offset


def fetch(tracker):
    return asyncio.run(tracker.consumer._wait_next_records(1.0))[0]


def test_the_tracker_knows_what_the_batch_being_delivered_still_holds():
    consumer = Consumer()
    tracker = FetchTracker(consumer)
    assert not tracker.ready and not tracker.holds(A)
    consumer.batches = [{**batch(A, 10, 19), **batch(B, 5, 6)}, {}]
    fetch(tracker)
    assert tracker.ready
    consumer._read_offset[A], consumer._read_offset[B] = 14, 6  # delivered up to 14 of a, all of b
    assert tracker.holds(A) and not tracker.holds(B) and not tracker.holds(C)
    consumer._read_offset[A] = 19
    assert not tracker.holds(A)
    consumer._read_offset[A] = 12
    fetch(tracker)  # a new batch: the rest of the old one was given up (a rebalance), not held
    assert not tracker.holds(A)


def test_a_fetch_out_during_a_re_read_cannot_bring_records_from_before_it(monkeypatch):
    monkeypatch.setattr(faust_ext, "seek", recorded_seek)
    consumer = Consumer()
    tracker = FetchTracker(consumer)
    fetch(tracker)
    gate = asyncio.Event()
    inner = tracker._inner  # the stand-in's own

    async def slow_fetch(timeout):
        await gate.wait()  # fetched before the seek, returned after it
        return {**batch(A, 40, 45), **batch(B, 7, 8)}, None

    async def scenario():
        tracker._inner = slow_fetch
        out = asyncio.ensure_future(tracker._wait_next_records(1.0))
        await asyncio.sleep(0)
        await tracker.reread(A, 18)
        gate.set()
        stale, _ = await out
        tracker._inner = inner
        consumer.batches = [batch(A, 18, 25)]
        fresh, _ = await tracker._wait_next_records(1.0)
        return stale, fresh

    stale, fresh = asyncio.run(scenario())
    assert consumer.seeks == [(A, 18)]
    # a's records from before the seek would have left a gap (18 -> 40): dropped; b's are untouched
    assert list(stale) == [B] and tracker.dropped == 6
    assert [r.offset for r in fresh[A]] == list(range(18, 26)) and A not in tracker.expect


def test_a_fetch_begun_after_the_re_read_is_taken_whatever_it_starts_at(monkeypatch):
    monkeypatch.setattr(faust_ext, "seek", recorded_seek)
    consumer = Consumer()
    tracker = FetchTracker(consumer)
    fetch(tracker)
    asyncio.run(tracker.reread(A, 18))
    consumer.batches = [batch(A, 30, 31)]  # 18-29 gone (retention): the broker starts at 30
    assert [r.offset for r in fetch(tracker)[A]] == [30, 31] and tracker.dropped == 0


def test_a_fetch_that_jumps_past_the_next_offset_is_re_read_not_committed_over(monkeypatch):
    # Delivered up to 1042, then the fetch brings 8103 on: Faust would take 1043-8102 for a gap of
    # compacted offsets and commit over it. A full-size SIGKILL run lost thousands of inputs that way
    # right after restarts. The records are given back to the broker and re-read from 1042.
    monkeypatch.setattr(faust_ext, "seek", recorded_seek)
    consumer = Consumer()
    tracker = FetchTracker(consumer)
    consumer._read_offset[A], consumer._read_offset[B], consumer._read_offset[LOG] = 1042, 500, 10
    consumer.batches = [{**batch(A, 8103, 8110), **batch(B, 501, 502), **batch(LOG, 90, 91)},
                        batch(A, 1042, 1050), batch(A, 9000, 9001)]
    first = fetch(tracker)
    # B follows on; the changelog (compacted, not acknowledged) may skip offsets
    assert set(first) == {B, LOG} and consumer.seeks == [(A, 1042)] and tracker.jumped == 1
    assert [r.offset for r in fetch(tracker)[A]] == list(range(1042, 1051))
    consumer._read_offset[A] = 1050
    assert A not in fetch(tracker) and tracker.jumped == 2  # and it watches on after the re-read


def test_a_re_read_that_the_broker_answers_further_on_is_taken(monkeypatch):
    # Retention removed 1042-1999: the re-read starts at 2000. Taken, not re-read again and again.
    monkeypatch.setattr(faust_ext, "seek", recorded_seek)
    consumer = Consumer()
    tracker = FetchTracker(consumer)
    consumer._read_offset[A] = 1042
    consumer.batches = [batch(A, 8103, 8110), batch(A, 2000, 2005)]
    fetch(tracker)
    assert [r.offset for r in fetch(tracker)[A]] == list(range(2000, 2006)) and consumer.seeks == [(A, 1042)]


def test_a_never_read_partition_is_not_a_jump(monkeypatch):
    monkeypatch.setattr(faust_ext, "seek", recorded_seek)
    consumer = Consumer()
    tracker = FetchTracker(consumer)
    consumer.batches = [batch(A, 500, 501)]  # read offset None: starting where the broker says
    assert A in fetch(tracker) and not consumer.seeks
