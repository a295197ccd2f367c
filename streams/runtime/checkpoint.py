"""How a batch of decisions becomes durable: the worker's commit protocol, in one class.

A stage decides a batch of inputs against write-back views of its tables (streams/runtime/writeback.py),
then `Checkpoint.commit` makes it durable in five numbered steps:

  1. prepare         serialise each changed key once; the batch's outputs, per input partition, go
                     into that partition's outbox (records of the stage's own state table)
  2. send_changelog  produce the changelog records, each partition's outbox first, and wait for every
                     acknowledgement: from here on the decisions are durable
  3. write_stores    per table partition, one RocksDB write batch: the values and the changelog
                     offset they reach (what Faust's recovery starts from)
  4. send_outputs    produce the outputs and wait for their acknowledgements
  5. commit_inputs   acknowledge the inputs, so the consumer may commit them

Why in this order. If outputs went out before the state that decided them was durable, a crash in
between would have the redelivered inputs decided again, possibly in another interleaving of the
input topics (an unsubscribe read before the order confirmation instead of after it), and the same
message would go out a second time under another id (on another channel). Here nothing goes out that
is not recorded: a redelivered input finds its effects in the state and is a duplicate, and what it
had decided is sent again from the outbox, byte for byte the same.

Atomicity without transactions. A SIGKILL in step 2 may leave some changelog records written and not
others. Each output belongs to the state key whose decision made it (its owner), and the outbox
header records a checksum of each owner's state as the checkpoint wrote it. A partition's outbox is
produced before its state records, on the same changelog partition, and Kafka keeps a partition's
records in order: a state that survived implies the outbox holding its outputs survived too. An
output is sent again only if its owner's state is the one recorded: a state that did not survive is
decided again from its redelivered inputs, and its outputs, never sent, are not sent from the outbox
either (else the new decision, in another interleaving, could add a second id). State in the other
tables (schedule, lanes) is repaired from the state record when its input is redelivered
(streams/engine.py `_repair`).

Resending the outbox. The outbox of partition p names the last input offset of each input topic
partition it covers. The first input of p a worker sees after an assignment tells whether those
inputs were committed: Faust starts a partition at its committed offset, and inputs are committed only
after step 4, so an input at or below a covered offset means the outputs may not have gone out, and
they are sent again ahead of the batch's own; past it, they did. An outbox is rewritten by every
checkpoint with outputs for its partition; old chunks are deleted. A later checkpoint that rewrites
an owner's state (so the checksum no longer matches) began after this one's step 4.

The class does no Kafka and no RocksDB itself: it is given a `send` (producer), the tables' stores and
a way to acknowledge inputs, so its unit tests crash it between any two steps
(tests/unit/test_checkpoint.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Protocol

import orjson

log = logging.getLogger(__name__)

# A record must fit the producer's max_request_size and the broker's message.max.bytes (1 MB by
# default) with its key and headers: a state larger than this dead-letters its input.
MAX_RECORD_BYTES = 900_000
# An output is also carried by the outbox (base64 in JSON, compressed, base64 again: at most about
# 1.38x its size when it does not compress at all), so outputs are held to less.
MAX_OUTPUT_BYTES = 650_000
# Outputs per outbox chunk: about this much JSON before compression (one output at least).
OUTBOX_CHUNK_BYTES = 600_000
OUTBOX_PREFIX = "\x00outbox|"  # keys no order or customer id starts with (the views refuse it)


class Store(Protocol):
    """A table's local store and changelog topic, as the checkpoint needs them."""

    changelog_topic: str

    def encode_key(self, key: Any) -> bytes: ...

    def encode_value(self, value: Any) -> bytes: ...

    def write(self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int) -> None:
        """Write the values (None deletes) and the changelog offset they reach, in one batch."""

    def read(self, partition: int, key: Any) -> bytes | None: ...


Send = Callable[[str, bytes | None, bytes | None, int | None], Awaitable[asyncio.Future]]


class CheckpointFailed(Exception):
    """The broker did not acknowledge a step's records: nothing after that step happened."""

    def __init__(self, step: str, cause: BaseException):
        super().__init__(f"checkpoint step {step}: {cause!r}")
        self.step, self.cause = step, cause


@dataclass(slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    owner: str | None = None  # the state key whose decision made it (None: none, e.g. a dead letter)


def outbox_key(partition: int, chunk: int | None = None) -> str:
    return f"{OUTBOX_PREFIX}{partition}" if chunk is None else f"{OUTBOX_PREFIX}{partition}|{chunk}"


def _pack(outputs: list[Output]) -> list[bytes]:
    """Outputs as outbox chunk values: about OUTBOX_CHUNK_BYTES of JSON each (one output at least),
    compressed (zlib, fastest level: a third of the size for typical outputs). A chunk value stays
    JSON, as every value of the table is."""
    chunks, current, size = [], [], 0
    for o in outputs:
        row = [
            o.topic,
            None if o.key is None else base64.b64encode(o.key).decode(),
            base64.b64encode(o.value).decode(),
            o.owner,
        ]
        n = len(o.topic) + len(row[2]) + (len(row[1]) if row[1] else 0) + 16
        if current and size + n > OUTBOX_CHUNK_BYTES:
            chunks.append(_compress(current))
            current, size = [], 0
        current.append(row)
        size += n
    if current:
        chunks.append(_compress(current))
    return chunks


def _compress(rows: list) -> bytes:
    return orjson.dumps({"z": base64.b64encode(zlib.compress(orjson.dumps(rows), 1)).decode()})


def _unpack(chunk: bytes) -> list[Output]:
    data = orjson.loads(chunk)
    rows = orjson.loads(zlib.decompress(base64.b64decode(data["z"]))) if isinstance(data, dict) else data
    return [
        Output(t, None if k is None else base64.b64decode(k), base64.b64decode(v), owner) for t, k, v, owner in rows
    ]


def checksum(value: bytes | None) -> int:
    return -1 if value is None else zlib.crc32(value)


@dataclass
class Outbox:
    """What one partition's outbox holds: `covered` is topic -> last input offset of the checkpoint
    that wrote it, `chunks` how many chunk records there are, `owners` the checksum of each owner's
    state as that checkpoint wrote it (-1: deleted)."""

    covered: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    owners: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes | None) -> "Outbox | None":
        if raw is None:
            return None
        data = orjson.loads(raw)
        return cls(
            covered=data.get("covered") or {}, chunks=int(data.get("chunks") or 0), owners=data.get("owners") or {}
        )

    def encode(self) -> bytes:
        return orjson.dumps({"covered": self.covered, "chunks": self.chunks, "owners": self.owners})


@dataclass
class _Pending:
    """A partition's share of the checkpoint being built."""

    outputs: list[Output] = field(default_factory=list)
    covered: dict[str, int] = field(default_factory=dict)


class Checkpoint:
    """One stage's checkpoints, one at a time (`commit`), and the outboxes they leave.

    `stores` are the stage's tables (the first is its primary state table, which holds the outbox),
    in the order of the `views` passed to `commit`."""

    def __init__(self, send: Send, stores: list[Store], stage: str = ""):
        self.send = send
        self.stores = stores
        self.primary = stores[0]
        self.stage = stage
        self._pending: dict[int, _Pending] = {}
        self._chunks: dict[int, int] = {}  # partition -> chunks its outbox holds now (0: none)
        self._checked: set[int] = set()  # partitions whose outbox was looked at since the assignment
        self.resent = 0  # outputs sent again from an outbox (duplicates of ones that may have gone out)
        self.checkpoints = 0

    # --- while deciding ---------------------------------------------------------------------------

    def new_assignment(self) -> None:
        """The worker's partitions changed: outboxes are looked at again at their next input."""
        self._checked.clear()
        self._chunks.clear()

    def input_seen(self, topic: str, partition: int, offset: int) -> None:
        """Call before deciding each input. The first input of a partition after an assignment may
        find outputs of an unfinished checkpoint in its outbox: they are sent again with this one."""
        p = self._pending.setdefault(partition, _Pending())
        p.covered[topic] = max(offset, p.covered.get(topic, -1))
        if partition in self._checked:
            return
        self._checked.add(partition)
        box = Outbox.parse(self.primary.read(partition, outbox_key(partition)))
        if box is None:
            self._chunks[partition] = 0
            return
        self._chunks[partition] = box.chunks
        last = box.covered.get(topic)
        if last is not None and offset > last:
            return  # its inputs were committed, so its outputs had been acknowledged
        durable = {owner for owner, crc in box.owners.items() if checksum(self.primary.read(partition, owner)) == crc}
        resend = []
        for i in range(box.chunks):
            raw = self.primary.read(partition, outbox_key(partition, i))
            if raw is not None:
                resend += [o for o in _unpack(raw) if o.owner in durable or o.owner not in box.owners]
        if resend:
            log.info(
                "%s stage: partition %d: %d outputs of an unfinished checkpoint sent again",
                self.stage,
                partition,
                len(resend),
            )
            self.resent += len(resend)
            p.outputs[:0] = resend

    def add(self, partition: int, outputs: Iterable[Output]) -> None:
        """Outputs of the input just decided (after it was decided without error)."""
        self._pending.setdefault(partition, _Pending()).outputs.extend(outputs)

    # --- the five steps --------------------------------------------------------------------------

    async def commit(self, views: list, commit_inputs: Callable[[], Awaitable[None]] | None = None) -> None:
        """Steps 1 to 5. Without `commit_inputs` (a slice of a batch made durable early) step 5 is
        left to a later commit. Raises CheckpointFailed if the broker does not acknowledge."""
        writes, outputs = self.prepare(views)
        offsets = await self.send_changelog(writes)
        self.write_stores(writes, offsets)
        await self.send_outputs(outputs)
        if commit_inputs is not None:
            await commit_inputs()
        self.checkpoints += 1

    def prepare(self, views: list) -> tuple[dict, list[Output]]:
        """Step 1: {(store index, partition): [(key bytes, value bytes or None)]} with each
        partition's outbox first in its primary store's list, and the outputs in decision order."""
        states: dict[tuple[int, int], list] = {}
        owners: dict[int, dict[str, int]] = {}  # partition -> owner -> checksum of its state as written
        for index, (view, store) in enumerate(zip(views, self.stores)):
            for partition, key, value in view.take(store.encode_value):
                states.setdefault((index, partition), []).append((store.encode_key(key), value))
                if index == 0:
                    owners.setdefault(partition, {})[key] = checksum(value)
        writes: dict[tuple[int, int], list] = {}
        outputs: list[Output] = []
        for partition, pending in sorted(self._pending.items()):
            if not pending.outputs:
                continue
            chunks = _pack(pending.outputs)
            rows = writes.setdefault((0, partition), [])  # the outbox before the states it goes with
            key = self.primary.encode_key
            rows += [(key(outbox_key(partition, i)), chunk) for i, chunk in enumerate(chunks)]
            rows += [(key(outbox_key(partition, i)), None) for i in range(len(chunks), self._chunks.get(partition, 0))]
            mine = owners.get(partition, {})
            box = Outbox(
                pending.covered,
                len(chunks),
                {o.owner: mine[o.owner] for o in pending.outputs if o.owner is not None and o.owner in mine},
            )
            rows.append((key(outbox_key(partition)), box.encode()))
            self._chunks[partition] = len(chunks)
            outputs += pending.outputs
        self._pending = {}
        for where, rows in states.items():
            writes.setdefault(where, []).extend(rows)
        return writes, outputs

    async def send_changelog(self, writes: dict) -> dict[tuple[int, int], int]:
        """Step 2: every changelog record acknowledged; returns the newest offset per (store,
        partition)."""
        futures = []
        for (index, partition), rows in writes.items():
            topic = self.stores[index].changelog_topic
            for key, value in rows:
                futures.append(((index, partition), await self.send(topic, key, value, partition)))
        try:
            metas = await asyncio.gather(*(f for _, f in futures))
        except Exception as exc:
            raise CheckpointFailed("2 send_changelog", exc) from exc
        newest: dict[tuple[int, int], int] = {}
        for (where, _), meta in zip(futures, metas):
            newest[where] = max(newest.get(where, -1), meta.offset)
        return newest

    def write_stores(self, writes: dict, offsets: dict) -> None:
        """Step 3: one write batch per table partition, values and changelog offset together."""
        for (index, partition), rows in writes.items():
            self.stores[index].write(partition, rows, offsets[(index, partition)])

    async def send_outputs(self, outputs: list[Output]) -> None:
        """Step 4: every output acknowledged."""
        futures = [await self.send(o.topic, o.key, o.value, None) for o in outputs]
        try:
            await asyncio.gather(*futures)
        except Exception as exc:
            raise CheckpointFailed("4 send_outputs", exc) from exc
