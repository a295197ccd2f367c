"""Five changes to Faust that at-least-once processing here depends on. Each works around Faust 0.15.3
behaviour found while SIGKILLing workers; see tests/faults/README.md.

1. Recovery seeks before it resumes (faust-streaming issue #596, open). When table recovery completes,
   Faust resumes the input partitions and only then seeks them to their committed offsets. Records
   fetched in between reach the agents; the fetcher then moves its read offset past the records the
   seek asks for again, drops those as already read, and the partition is left with a gap of offsets
   that are never acknowledged. A gap of more than one stops its commits for good (the partition
   stalls); a gap of exactly one is committed over (the input is lost). Seeking while the partitions
   are still paused closes the window. A partition never committed is seeked to its earliest offset.

2. Changelog writes that can be awaited. A Faust table sends its changelog records through the
   producer buffer and does not wait for them; Faust's commit flushes that buffer but gives up after
   0.1 s, so an offset can be committed ahead of the changelog of the state it produced. The worker
   writes its tables through streams/table_io.py instead, which returns the futures of the changelog
   records, and awaits them before it acknowledges the inputs that wrote the state.

3. `StallGuard`: an input partition whose fetched records never reached its agent is re-read, but
   never while Faust's fetcher still holds records of it (`FetchTracker`). Faust's fetcher hands a
   fetched batch to the agents record by record, round-robin over topics, and waits whenever an
   agent's buffer is full; so one slow agent holds back the other agent's partitions (head-of-line),
   which then look stalled. A re-read of such a partition while the fetcher still held records of it
   lost inputs: the held records came after the seek, Faust took the jump from the seek offset to
   them for a gap of compacted offsets and committed over it, and dropped the re-read records as
   already read. Probably what lost most order confirmations in a SIGKILL fault run whose order
   stage, slowed down by a fire limit of 20, starved the customer stage for minutes.

4. Seeks run in the consumer's thread (`seek`). Faust's `Consumer.seek` calls aiokafka's seek from
   the app's thread while aiokafka runs in its own (AIOKafkaConsumerThread): the fetcher's `seek_to`
   deletes the partition's fetched records while `fetched_records`, in the consumer thread, may be
   between reading and deleting them. A worker crashed on that KeyError in a SIGKILL fault test, right
   after a restart (robinhood/aiokafka#19 reports the same crash). Faust's own seeks go through its
   thread already; the two above, of this module, now do too.

5. A fetch that jumps is re-read, not committed over (`FetchTracker`). After some restarts the first
   records fetched on most input partitions started thousands of offsets past the committed offset
   Faust had just sought to (why was not found). Faust takes any jump for a gap of compacted offsets,
   marks it acknowledged and commits over it: a full-size SIGKILL run lost 35,475 decisions so. Our
   input topics are not compacted, so the tracker gives such records back and re-reads the partition
   from the offset Faust has.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery

log = logging.getLogger(__name__)


class FetchTracker:
    """What Faust's fetcher holds and has not delivered, and a re-read that cannot leave a gap.

    Faust's fetcher (`Consumer._drain_messages`) takes a batch from `_wait_next_records` and delivers
    it record by record; it asks for the next batch only once this one is delivered or given up (a
    rebalance), so what it holds is the part of the current batch past each partition's read offset.
    A fetch that was out while a partition was re-read may still bring records fetched before the
    seek, past the offset the re-read starts at: those are dropped (the re-read fetches them again).
    A fetch begun after the seek completed is taken whatever it starts at (retention may have
    removed the offset the re-read asked for).
    Installed over the consumer's `_wait_next_records` (an instance attribute: Faust looks it up for
    every batch)."""

    def __init__(self, consumer):
        self.consumer = consumer
        self._inner = consumer._wait_next_records
        self.batches = 0  # fetches begun since installed
        self.last_fetched: dict = {}  # tp -> last offset of the batch being delivered
        self.expect: dict = {}  # tp -> [offset its re-read starts at, batch count when its seek completed]
        self.dropped = 0  # records dropped as fetched before a re-read
        self.jumped = 0  # fetches that jumped past the next offset wanted, re-read
        consumer._wait_next_records = self._wait_next_records

    async def _wait_next_records(self, timeout: float):
        self.batches += 1
        begun = self.batches
        self.last_fetched = {}  # the previous batch is delivered, or given up for good
        records, active = await self._inner(timeout)
        if records:
            accepted: set = set()
            if self.expect:
                records = self._drop_stale(records, begun, accepted)
            jumps = self._jumps(records, accepted)
            if jumps:
                records = {tp: rs for tp, rs in records.items() if tp not in jumps}
                for tp, (read, first) in jumps.items():
                    self.jumped += 1
                    log.warning("input partition %s[%d]: fetched records start at offset %d, after %d: re-reading "
                                "from %d instead of committing over the gap", tp.topic, tp.partition, first, read, read)
                    await self.reread(tp, read)
            self.last_fetched = {tp: rs[-1].offset for tp, rs in records.items() if rs}
        return records, active

    def _drop_stale(self, records: dict, begun: int, accepted: set) -> dict:
        kept = {}
        for tp, rs in records.items():
            expected = self.expect.get(tp)
            if expected is not None and rs:
                start, seeked = expected
                if rs[0].offset > start and (seeked is None or begun <= seeked):
                    self.dropped += len(rs)  # fetched before the seek: it would leave a gap
                    continue
                del self.expect[tp]
                accepted.add(tp)
            kept[tp] = rs
        return kept

    def _jumps(self, records: dict, accepted: set) -> dict:
        """Partitions whose records jump past the next offset Faust wants: tp -> (read offset, first
        fetched). Faust would take the jump for a gap of compacted offsets (it tracks gaps on the
        topics it acknowledges, our inputs) and commit over it; on our input topics nothing is
        compacted, so the records in between were fetched and lost on the way (a batch given up in a
        rebalance, a fetch position that moved during recovery). What a re-read brought is taken
        whatever it starts at (retention may have removed the offset it asked for)."""
        jumps = {}
        acking = self.consumer.app.topics.acks_enabled_for
        read_offset = self.consumer._read_offset
        for tp, rs in records.items():
            if not rs or tp in accepted or not acking(tp.topic):
                continue
            read = read_offset[tp]
            if read is not None and rs[0].offset > read + 1:
                jumps[tp] = (read, rs[0].offset)
        return jumps

    @property
    def ready(self) -> bool:
        """What the fetcher holds is known once a batch has begun under the tracker (the batch being
        delivered when it was installed is then over)."""
        return self.batches > 0

    def holds(self, tp) -> bool:
        """Whether records of tp fetched in the current batch are not delivered yet. Faust's read
        offset is the last offset delivered, except right after a seek, when it is the next one wanted
        (Faust's own seeks come with a rebalance, which gives the batch up)."""
        last = self.last_fetched.get(tp)
        read = self.consumer._read_offset[tp]
        return last is not None and (read is None or last > read or (tp in self.expect and last == read))

    async def reread(self, tp, offset: int) -> None:
        """Seek tp back to `offset`. Call only when `holds(tp)` is false, with no await in between."""
        self.expect[tp] = [offset, None]
        await seek(self.consumer, tp, offset)
        if tp in self.expect:
            self.expect[tp][1] = self.batches


def stream_buffers(agent) -> list:
    """The buffers an agent's records wait in: each actor's stream has its own (a clone of the
    topic channel); `agent.channel`'s queue is never used."""
    return [actor.stream.channel.queue for actor in agent._actors]


def fetch_tracker(consumer) -> FetchTracker:
    """The consumer's FetchTracker, installed on first use (recovery installs it before it resumes
    the input partitions, so it sees their first fetch)."""
    tracker = getattr(consumer, "_aftersale_fetch_tracker", None)
    if tracker is None:
        tracker = consumer._aftersale_fetch_tracker = FetchTracker(consumer)
    return tracker


async def seek(consumer, tp, offset: int) -> None:
    """Faust's `Consumer.seek` (the same bookkeeping), with aiokafka's seek run in the consumer's thread
    (see 4. above)."""
    await consumer._thread.call_thread(consumer._thread._ensure_consumer().seek, tp, offset)
    consumer._read_offset[tp] = offset if offset else None


class SeekFirstRecovery(Recovery):
    async def _seek_streams(self, stream_tps: set) -> None:
        """Seek the input partitions to their committed offsets, and those never committed to their
        beginning (auto_offset_reset "earliest"): aiokafka leaves a partition without a committed offset
        wherever its fetcher already got to, which would skip that partition's backlog."""
        consumer = self.app.consumer
        self.log.info("Seek stream partitions to committed offsets (before resuming them).")
        await consumer.perform_seek()
        never = [tp for tp in stream_tps if consumer._committed_offset[tp] is None]
        if never and self.app.conf.consumer_auto_offset_reset == "earliest":
            for tp, offset in (await consumer.earliest_offsets(*never)).items():
                self.log.info("Seek %r (never committed) to its earliest offset %r", tp, offset)
                await seek(consumer, tp, offset)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's own, with the seek moved ahead of `resume_partitions`."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                                       self.standbys_for_table[table]))
                     for table in self.tables.values()]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %r param %r", self.app.consumer_generation_id,
                             generation_id)
            return
        stream_tps = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        fetch_tracker(consumer)
        if assignment:
            await self._wait(self._seek_streams(stream_tps), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions(stream_tps)
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        await self.app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self, generation_id: int = 0) -> None:
        """Faust's own (used when an assignment has no table partitions), seek first as well."""
        app, consumer = self.app, self.app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            stream_tps = {tp for tp in assignment if not self._is_changelog_tp(tp)}
            fetch_tracker(consumer)
            await self._wait(self._seek_streams(stream_tps), timeout=app.conf.broker_request_timeout)
            consumer.resume_partitions(stream_tps)
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class SeekFirstTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


@dataclass
class StallGuard:
    """3. A partition whose fetched records never reach its agent gets re-read. Rarely, after a restart
    Faust lost the records fetched for some input partitions (aiokafka's position went to the end of
    the partition, nothing was delivered, no error was logged): the partition then sat idle forever.
    Each `check` compares, per input partition, the last offset delivered to the agents with the
    broker's high-water mark; a partition that is behind while nothing of it moves for `patience`
    checks in a row, with the agents idle, is seeked back to its committed offset. Re-reading is
    safe: inputs are acknowledged only after their outputs and state are in Kafka, and a redelivered
    input decides the same outputs with the same ids."""

    patience: int = 2
    _last: dict = field(default_factory=dict)  # tp -> (delivered offset, checks it has not moved)

    def stalled(self, positions: dict, idle: bool) -> list:
        """positions: tp -> (last delivered offset or None, committed offset or None, high-water or None,
        whether the fetcher holds undelivered records of it). Returns the partitions to re-read. Pure,
        so it is unit-tested without a broker."""
        out = []
        for tp, (delivered, committed, highwater, held) in positions.items():
            # Faust's read offset is the last offset delivered, except right after a seek, when it is
            # the committed offset (the next one wanted).
            next_wanted = committed or 0 if delivered is None or delivered == committed else delivered + 1
            # Held records are on their way (behind another agent's full buffer): not a stall.
            behind = highwater is not None and highwater > next_wanted and not held
            seen = self._last.get(tp)
            still = seen[1] + 1 if seen and behind and idle and delivered == seen[0] else 0
            self._last[tp] = (delivered, still)
            if still >= self.patience:
                out.append(tp)
                del self._last[tp]  # after a re-read, watch it afresh
        return out

    async def check(self, app, input_tps: set, idle: bool) -> list:
        consumer = app.consumer
        tracker = fetch_tracker(consumer)
        if (app.in_recovery or app.rebalancing or not app.tables.recovery.completed.is_set()
                or not tracker.ready):
            self._last.clear()
            return []
        positions = {}
        for tp in input_tps:
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # not fetched yet, or not assigned any more
                highwater = None
            positions[tp] = (consumer._read_offset[tp], consumer._committed_offset[tp], highwater,
                             tracker.holds(tp))
        stalled = []
        for tp in self.stalled(positions, idle):
            delivered, committed, highwater, _ = positions[tp]
            target = committed
            if target is None:
                target = (await consumer.earliest_offsets(tp)).get(tp) or 0
            if tracker.holds(tp):  # a batch came while we waited for the broker
                continue
            app.log.warning("input partition %s[%d] stalled: delivered up to %r of %r; re-reading from %r",
                            tp.topic, tp.partition, delivered, highwater, target)
            await tracker.reread(tp, target)
            stalled.append(tp)
        return stalled
