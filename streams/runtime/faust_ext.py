"""Where aftersale changes Faust's behaviour, through Faust's extension points, and its access to the
private parts of Faust's consumer, recovery and agents (faust-streaming 0.15.3, pinned in
pyproject.toml), each marked `private:`: the only module that reads them (also for the RocksDB
store's per-partition handles and the debug dump's diagnostics); nothing of Faust's or aiokafka's
is assigned over.

1. A transport (`Transport`, the URL scheme `aftersale://`, registered through Faust's
   `faust.transports` entry point in pyproject.toml) whose consumer has strict offsets on the topics
   whose messages Faust acknowledges (the agents' inputs; not the changelogs, which are compacted).
   The committed offset is the last processed + 1, and a partition's records reach the agents in
   offset order with none skipped. Faust 0.15 takes a jump in the fetched offsets for compacted
   offsets and commits over it (faust-streaming #606, fix PR #707 still open), and after a seek it
   commits over a hole of one; after restarts, fetches that jumped thousands of offsets past the
   committed one lost decisions in SIGKILL fault runs. Our inputs are not compacted, so a skipped
   offset is an error: it is counted, the partition's later records are held back, and it is sought
   back to the offset it wants (`OffsetGate`, streams/runtime/offsets.py).
2. Seeks run in the consumer's thread (`seek_wait`). Faust's `Consumer.seek` calls aiokafka from the
   app's thread while aiokafka runs in its own; a worker crashed on that in a fault test (KeyError in
   the fetcher; robinhood/aiokafka#19). A re-read asked for while the fetcher delivers a batch waits
   until that batch is delivered (it runs at the next fetch), so records held for a busy agent are
   never taken for a gap.
3. Recovery seeks before it resumes (`SeekFirstTableManager`, Faust's `TableManager` setting;
   faust-streaming #596, open). Faust resumes the input partitions when table recovery completes and
   only then seeks them to their committed offsets; records fetched in between reach the agents and
   leave offsets behind. A partition never committed is sought to its earliest offset.
4. `StallGuard`: an input partition whose fetched records never reached its agent (seen rarely after
   restarts; cause not found) is re-read from its committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from .offsets import OffsetGate

log = logging.getLogger(__name__)


class StrictConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with strict offsets on acknowledged topics (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = OffsetGate()

    def _strict(self, topic: str) -> bool:
        return self.app.topics.acks_enabled_for(topic)

    async def getmany(self, timeout: float) -> AsyncIterator:
        """Faust's getmany, with the gate in front of the agents: re-reads asked for by the previous
        batch run first, then each record is delivered only if it is the one its partition wants."""
        rereads = self.gate.take_rereads()
        if rereads:
            assigned = self.assignment()
            await self.seek_wait({tp: offset for tp, offset in rereads.items() if tp in assigned})
            for tp, offset in rereads.items():
                self.gate.seeked(tp, offset)
        admit = self.gate.admit
        async for tp, message in super().getmany(timeout):
            if not self._strict(tp.topic) or admit(tp, message.offset):
                yield tp, message

    async def seek(self, partition: TP, offset: int) -> None:
        """Seek in the consumer's thread (Faust's own calls aiokafka from the app's thread)."""
        await self.seek_wait({partition: offset})
        self.gate.seeked(partition, offset)

    def request_reread(self, tp: TP, offset: int) -> None:
        """Read tp again from `offset`, as soon as the batch being delivered is."""
        self.gate.request_reread(tp, offset)

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets (at every assignment), and the gate told of them."""
        await super().perform_seek()
        committed = self.committed_offsets()
        for tp in self.assignment():
            if self._strict(tp.topic):
                self.gate.seeked(tp, committed.get(tp))

    def committed_offsets(self) -> Mapping:
        # private: Faust's record of the offsets it committed (next offset to read), read only.
        return {tp: offset for tp, offset in self._committed_offset.items() if offset is not None}

    def _new_offset(self, tp: TP) -> int | None:  # private: overrides Faust's commit offset
        """Never past an offset not processed: the first acknowledged offset must be the committed
        one (Faust commits over a hole of one, and over any gap it inferred; PR #707)."""
        acked = self._acked[tp]  # private: Faust's acknowledged offsets of tp, read only
        committed = self._committed_offset[tp]  # private: read only
        if acked and committed is not None and self._strict(tp.topic) and min(acked) > committed:
            return None
        return super()._new_offset(tp)


class Transport(faust_aiokafka.Transport):
    """`aftersale://host:port`: Faust's aiokafka transport with StrictConsumer."""

    Consumer = StrictConsumer


def partition_db(table, partition: int):
    """The RocksDB (rocksdict) of one partition of a table's store, opened if need be: the worker
    reads and writes it directly (streams/runtime/table_io.py). Faust has no public handle."""
    return table.data._db_for_partition(partition)  # private: Faust's RocksDB store, read only


def active_dbs(table) -> list:
    """The RocksDBs of the partitions of a table this worker holds as active (streams/ops.py)."""
    return list(table.data._dbs_for_actives())  # private: Faust's RocksDB store, read only


def consumer_state(app) -> list[str]:
    """Faust's and aiokafka's view of every partition and the agents' queues, as lines of text for
    the debug dump (streams/debugdump.py). Diagnostics only."""
    c = app.consumer
    lines = [
        f"in_recovery={app.in_recovery} rebalancing={getattr(app, 'rebalancing', None)} "
        f"flow_active={app.flow_control.is_active()} gen={app.consumer_generation_id} "
        f"consumer.flow_active={getattr(c, 'flow_active', None)}",
        f"assignment={sorted(map(tuple, c.assignment()))}",
        f"active={sorted(map(tuple, c._active_partitions or []))}",  # private: read only
        f"buffered={sorted(map(tuple, c._buffered_partitions))}",  # private: read only
        f"paused={sorted(map(tuple, c._paused_partitions))}",  # private: read only
        f"read_offset={ {tuple(k): v for k, v in c._read_offset.items()} }",  # private: read only
        f"committed={ {tuple(k): v for k, v in c._committed_offset.items()} }",  # private: read only
        f"acked={ {tuple(k): (len(v), v[:3], v[-3:]) for k, v in c._acked.items() if v} }",  # private: read only
        f"acked_index={ {tuple(k): len(v) for k, v in c._acked_index.items() if v} }",  # private: read only
        f"unacked={len(c.unacked)} " + repr(sorted((m.topic, m.partition, m.offset) for m in list(c.unacked))[:20]),
    ]
    gate = getattr(c, "gate", None)
    if gate is not None:
        lines.append(
            f"offset gate: skips repaired={ {tuple(k): v for k, v in gate.skipped.items()} } "
            f"stale dropped={gate.stale} re-reads pending={ {tuple(k): v for k, v in gate.rereads.items()} }"
        )
    try:
        ak = c._thread._ensure_consumer() if hasattr(c, "_thread") else None  # private: aiokafka's consumer
        sub = ak._subscription.subscription if ak else None  # private: aiokafka's assignment, read only
        if sub:
            strategy = ak._fetcher._default_reset_strategy  # private: read only
            lines.append(f"reset strategy={strategy} conf={app.conf.consumer_auto_offset_reset}")
            for tp in sorted(sub.assignment.tps):
                s = sub.assignment.state_value(tp)
                lines.append(
                    f"  aiokafka {tp.topic}[{tp.partition}] pos={s.position if s.has_valid_position else None} "
                    f"paused={s.paused} reset={s.reset_strategy} awaiting_reset={s.awaiting_reset}"
                )
    except Exception:
        lines.append("aiokafka: " + traceback.format_exc(limit=2))
    for agent in app.agents.values():
        for q in stream_buffers(agent):
            lines.append(
                f"agent {agent.name}: queue={q.qsize()} max={q.maxsize} "
                f"pending_drop={len(q._pending_pressure_drop_callbacks)} "  # private: mode's queue, read only
                f"getters={len(q._getters)} putters={len(q._putters)}"  # private: asyncio.Queue's, read only
            )
    return lines


def stream_buffers(agent) -> list:
    """The buffers an agent's records wait in: each actor's stream has its own (a clone of the
    topic channel); `agent.channel`'s queue is never used."""
    return [actor.stream.channel.queue for actor in agent._actors]  # private: the agent's actors, read only


class SeekFirstRecovery(Recovery):
    async def _seek_streams(self, stream_tps: set) -> None:
        """Seek the input partitions to their committed offsets, and those never committed to their
        beginning (auto_offset_reset "earliest"): aiokafka leaves a partition without a committed offset
        wherever its fetcher already got to, which would skip that partition's backlog."""
        consumer = self.app.consumer
        self.log.info("Seek stream partitions to committed offsets (before resuming them).")
        await consumer.perform_seek()
        never = [tp for tp in stream_tps if consumer._committed_offset[tp] is None]  # private: read only
        if never and self.app.conf.consumer_auto_offset_reset == "earliest":
            for tp, offset in (await consumer.earliest_offsets(*never)).items():
                self.log.info("Seek %r (never committed) to its earliest offset %r", tp, offset)
                await consumer.seek(tp, offset)  # StrictConsumer's: in the consumer's thread

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's own, with the seek moved ahead of `resume_partitions`."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %r param %r", self.app.consumer_generation_id, generation_id
            )
            return
        stream_tps = {tp for tp in assignment if not self._is_changelog_tp(tp)}
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
    """A partition whose fetched records never reach its agent gets re-read. Rarely, after a restart
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
        whether a re-read of it is already asked for). Returns the partitions to re-read. Pure, so it
        is unit-tested without a broker."""
        out = []
        for tp, (delivered, committed, highwater, held) in positions.items():
            # Faust's read offset is the last offset delivered, except right after a seek, when it is
            # the committed offset (the next one wanted).
            next_wanted = committed or 0 if delivered is None or delivered == committed else delivered + 1
            # A re-read already asked for is on its way (after the batch the fetcher delivers).
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
        if app.in_recovery or app.rebalancing or not app.tables.recovery.completed.is_set():
            self._last.clear()
            return []
        positions = {}
        for tp in input_tps:
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # not fetched yet, or not assigned any more
                highwater = None
            # private: Faust's read and committed offsets, read only
            positions[tp] = (
                consumer._read_offset[tp],
                consumer._committed_offset[tp],
                highwater,
                tp in consumer.gate.rereads,
            )
        stalled = []
        for tp in self.stalled(positions, idle):
            delivered, committed, highwater, _ = positions[tp]
            target = committed
            if target is None:
                target = (await consumer.earliest_offsets(tp)).get(tp) or 0
            app.log.warning(
                "input partition %s[%d] stalled: delivered up to %r of %r; re-reading from %r",
                tp.topic,
                tp.partition,
                delivered,
                highwater,
                target,
            )
            consumer.request_reread(tp, target)  # at the next fetch, once the batch in hand is delivered
            stalled.append(tp)
        return stalled
