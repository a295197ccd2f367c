"""The worker's own path to a Faust table's RocksDB store and changelog, one partition at a time.

Faust reads and writes a table key by key through several layers (managed dict, sensors, the
serializer registry, a `key in store` check before every read, a FutureMessage and a channel per
changelog record, a RocksDB put of the persisted offset per record). The worker writes each changed
key once per batch (streams/runtime/writeback.py), so it can do the same work directly:

- read: one `get` on the partition's RocksDB, one JSON decode (`DirectTable`);
- write: a checkpoint's writes of a partition and the changelog offset they reach in one RocksDB
  WriteBatch, after the broker has acknowledged their changelog records (`RocksStore`, used by
  streams/runtime/checkpoint.py).

The bytes are Faust's own (its json codec is orjson with these options; a test checks they are
identical), so Faust's recovery, standbys and the HTTP views read this state as if Faust had written
it. The partition is that of Faust's current event, as for a Faust table (the worker sets it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson
from faust.streams import current_event

from rocksdict import WriteBatch  # Faust's rocksdb:// store runs on rocksdict (a dependency of ours)

from .faust_ext import partition_db

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z  # faust.utils.json.dumps with orjson


def encode_key(key: str) -> bytes:
    return orjson.dumps(key, option=JSON_OPTIONS)


def encode_value(value) -> bytes:
    return orjson.dumps(value, option=JSON_OPTIONS)


class DirectTable(Mapping):
    """A Faust table's store as the worker reads it: the partition of the current event, one RocksDB
    `get` and one JSON decode per read. Writes go through a checkpoint (`RocksStore`)."""

    def __init__(self, table):
        self.table = table

    @staticmethod
    def _partition() -> int:
        event = current_event()
        if event is None:
            raise RuntimeError("DirectTable used outside of an event (the worker must enter one)")
        return event.message.partition

    def _raw(self, key) -> bytes | None:
        return partition_db(self.table, self._partition()).get(encode_key(key))

    def get(self, key, default=None):
        raw = self._raw(key)
        return default if raw is None else orjson.loads(raw)

    def __getitem__(self, key):
        raw = self._raw(key)
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __contains__(self, key) -> bool:
        return self._raw(key) is not None

    def __iter__(self) -> Iterator:  # inspection only, as Faust's table would
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


class RocksStore:
    """A Faust table's RocksDB partitions and changelog topic, for streams/runtime/checkpoint.py:
    a partition's values and the changelog offset they reach are written in one RocksDB write batch
    (Faust's recovery reads the changelog from that offset on)."""

    def __init__(self, table):
        self.table = table

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    encode_key = staticmethod(encode_key)
    encode_value = staticmethod(encode_value)

    def _db(self, partition: int):
        return partition_db(self.table, partition)

    def read(self, partition: int, key) -> bytes | None:
        return self._db(partition).get(encode_key(key))

    def write(self, partition: int, items: list[tuple[bytes, bytes | None]], offset: int) -> None:
        batch = WriteBatch(raw_mode=True)  # as Faust opens its DBs
        for key, value in items:
            batch.put(key, value) if value is not None else batch.delete(key)
        batch.put(self.table.data.offset_key, str(offset).encode())  # Store.set_persisted_offset's record
        self._db(partition).write(batch)
