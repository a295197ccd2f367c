"""Table writes held back until the outputs they imply are acknowledged, one batch at a time.

A stage decides, changes its state and emits outputs. If the state reached the table (and so its
changelog) but the outputs did not, a crash in between would make the redelivered input look like a
duplicate and its messages would be lost. So the worker decides a batch of inputs against a
WriteBack view of each table (reads see the batch's own writes), sends the outputs, waits for the
broker to acknowledge them, and only then writes the state, each changed key once, and acknowledges
the inputs. A crash before that means the inputs are decided again and the same outputs (same
deterministic ids) go out twice, which consumers drop by id.

Writes are remembered with the partition of the input that made them: a Faust table writes a key
to the store and changelog partition of the current event, and a batch holds several partitions.

Values may be mutable records that the reader changes in place (the core takes ownership of the
state it is given). For those, give `snapshot` and `restore`: the first read of a pending value by an
input keeps a snapshot of it, so a rollback restores the value as it was before that input.

`encode_touched(limit)` serialises what the current input changed (with `snapshot`) and raises
`TooLarge` when a value would not fit a Kafka record: the worker dead-letters that input instead of
failing the whole batch at its checkpoint. The bytes are kept: they are the next input's rollback
snapshot and what the checkpoint writes (`take()`), so each state is serialised once per input that
touched it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, MutableMapping

_DELETED = object()
_MISSING = object()


class TooLarge(Exception):
    """A value the current input produced is larger than one Kafka record may be."""

    def __init__(self, key, size: int, limit: int):
        super().__init__(f"the state of {key!r} would be {size:,} bytes, over the {limit:,} a record may carry")
        self.key, self.size, self.limit = key, size, limit


class _Snapshot:
    __slots__ = ("partition", "data")

    def __init__(self, partition, data):
        self.partition, self.data = partition, data


class WriteBack(MutableMapping):
    def __init__(
        self,
        base: MutableMapping,
        snapshot: Callable[[Any], Any] | None = None,
        restore: Callable[[Any], Any] | None = None,
    ):
        self.base = base
        self.partition: int | None = None  # of the input being decided; set by the worker
        self.pending: dict[Any, tuple[int | None, Any]] = {}  # key -> (partition, value or _DELETED)
        self._undo: dict[Any, Any] = {}  # key -> its pending entry (or a _Snapshot) before the current input
        self._snapshot, self._restore = snapshot, restore
        self._encoded: dict[Any, bytes] = {}  # key -> snapshot bytes of its pending value, while unchanged

    # Reads: the batch's writes first, then the table.
    def _pending_value(self, key, entry):
        value = entry[1]
        if self._snapshot is not None and value is not _DELETED and key not in self._undo:
            data = self._encoded.pop(key, None)  # handed out: it may change in place
            self._undo[key] = _Snapshot(entry[0], data if data is not None else self._snapshot(value))
        return value

    def __getitem__(self, key):
        entry = self.pending.get(key, _MISSING)
        if entry is _MISSING:
            return self.base[key]
        if entry[1] is _DELETED:
            raise KeyError(key)
        return self._pending_value(key, entry)

    def get(self, key, default=None):
        entry = self.pending.get(key, _MISSING)
        if entry is _MISSING:
            return self.base.get(key, default)
        return default if entry[1] is _DELETED else self._pending_value(key, entry)

    def __contains__(self, key) -> bool:
        entry = self.pending.get(key, _MISSING)
        if entry is _MISSING:
            return key in self.base
        return entry[1] is not _DELETED

    def __iter__(self) -> Iterator:  # inspection only: the stages read by key
        yield from (k for k in self.base if k not in self.pending)
        yield from (k for k, (_p, v) in self.pending.items() if v is not _DELETED)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    # Writes: kept until the batch is flushed.
    def __setitem__(self, key, value) -> None:
        self._remember(key)
        self._encoded.pop(key, None)
        self.pending[key] = (self.partition, value)

    def __delitem__(self, key) -> None:
        self._remember(key)
        self._encoded.pop(key, None)
        self.pending[key] = (self.partition, _DELETED)

    def _remember(self, key) -> None:
        if key not in self._undo:
            self._undo[key] = self.pending.get(key, _MISSING)

    # One input at a time: a failed decision leaves no trace in the batch.
    def begin(self, partition: int) -> None:
        self.partition = partition
        self._undo.clear()

    def rollback(self) -> None:
        for key, entry in self._undo.items():
            self._encoded.pop(key, None)
            if entry is _MISSING:
                self.pending.pop(key, None)
            elif isinstance(entry, _Snapshot):
                self.pending[key] = (entry.partition, self._restore(entry.data))
                self._encoded[key] = entry.data
            else:
                self.pending[key] = entry
        self._undo.clear()

    def encode_touched(self, limit: int | None = None) -> None:
        """Serialise the values the current input changed (a view with `snapshot` only) and check
        each against `limit` bytes; raises TooLarge (the caller rolls the input back)."""
        if self._snapshot is None:
            return
        for key in self._undo:
            entry = self.pending.get(key)
            if entry is None or entry[1] is _DELETED:
                continue
            data = self._encoded.get(key)
            if data is None:
                data = self._encoded[key] = self._snapshot(entry[1])
            if limit is not None and len(data) > limit:
                raise TooLarge(key, len(data), limit)

    def take(self, encode: Callable[[Any], bytes]) -> list[tuple[Any, Any, bytes | None]]:
        """The batch's writes as (partition, key, value bytes or None for a delete), each changed key
        once, and forget them: for a checkpoint that writes them itself. Values already serialised
        by `encode_touched` are not serialised again."""
        out = []
        for key, (partition, value) in self.pending.items():
            if value is _DELETED:
                out.append((partition, key, None))
            else:
                data = self._encoded.get(key)
                out.append((partition, key, data if data is not None else encode(value)))
        self.discard()
        return out

    def flush(self, enter_partition=None) -> int:
        """Write the pending writes to the table, partition by partition (`enter_partition(p)` makes
        p the current one, for a Faust table), a tombstone for each delete; returns keys written."""
        by_partition: dict[int | None, list] = {}
        for key, (partition, value) in self.pending.items():
            by_partition.setdefault(partition, []).append((key, value))
        for partition, writes in by_partition.items():
            if enter_partition is not None:
                enter_partition(partition)
            for key, value in writes:
                if value is _DELETED:
                    if key in self.base:
                        del self.base[key]
                else:
                    self.base[key] = value
        written = len(self.pending)
        self.discard()
        return written

    def discard(self) -> None:
        self.pending.clear()
        self._undo.clear()
        self._encoded.clear()
