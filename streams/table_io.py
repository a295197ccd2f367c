"""The worker's own path to a Faust table's RocksDB store and changelog, one partition at a time.

Faust reads and writes a table key by key through several layers (managed dict, sensors, the
serializer registry, a `key in store` check before every read, a FutureMessage and a channel per
changelog record, a RocksDB put of the persisted offset per record). The worker writes each changed
key once per batch (streams/writeback.py), so it can do the same work directly:

- read: one `get` on the partition's RocksDB, one JSON decode;
- write: the partition's writes in one RocksDB WriteBatch, each changelog record straight to the
  producer, and the persisted offset stored once per changelog partition when the broker has
  acknowledged the batch.

The bytes are Faust's own (its json codec is orjson with these options; a test checks they are
identical), so Faust's recovery, standbys and the HTTP views read this state as if Faust had written
it. The partition is that of Faust's current event, as for a Faust table (the worker sets it).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterator, MutableMapping

import orjson
from faust.streams import current_event
from faust.types import TP

from rocksdict import WriteBatch  # Faust's rocksdb:// store runs on rocksdict (a dependency of ours)

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z  # faust.utils.json.dumps with orjson

Send = Callable[[str, bytes, bytes | None, int], Awaitable[asyncio.Future]]


def encode_key(key: str) -> bytes:
    return orjson.dumps(key, option=JSON_OPTIONS)


def encode_value(value: Any) -> bytes:
    return orjson.dumps(value, option=JSON_OPTIONS)


class DirectTable(MutableMapping):
    """A Faust table's store and changelog for the worker's reads and flushes.

    Writes are collected in a RocksDB write batch per partition, with their changelog records;
    `send_changelog()` writes the batches to the store, sends the records and returns the futures of
    the broker's acks, and `on_acked()` stores the persisted offsets once they are all in. Use it
    through a WriteBack, which writes each key once per batch."""

    def __init__(self, table, send: Send):
        self.table = table
        self._send = send
        self._queued: list[tuple[int, bytes, bytes | None]] = []  # (partition, key, value or tombstone)
        self._batches: dict[int, Any] = {}  # partition -> rocksdict WriteBatch of this flush

    @property
    def store(self):
        return self.table.data

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    @staticmethod
    def _partition() -> int:
        event = current_event()
        if event is None:
            raise RuntimeError("DirectTable used outside of an event (the worker must enter one)")
        return event.message.partition

    def _db(self, partition: int):
        return self.store._db_for_partition(partition)

    # Reads.
    def _raw(self, key) -> bytes | None:
        return self._db(self._partition()).get(encode_key(key))

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

    # Writes.
    def __setitem__(self, key, value) -> None:
        self._write(self._partition(), encode_key(key), encode_value(value))

    def __delitem__(self, key) -> None:
        self._write(self._partition(), encode_key(key), None)

    def _write(self, partition: int, key: bytes, value: bytes | None) -> None:
        batch = self._batches.get(partition)
        if batch is None:
            batch = self._batches[partition] = WriteBatch(raw_mode=True)  # as Faust opens its DBs
        batch.put(key, value) if value is not None else batch.delete(key)
        self._queued.append((partition, key, value))

    async def send_changelog(self) -> list[asyncio.Future]:
        """Write this flush to RocksDB (one batch per partition) and send its changelog records;
        returns the futures of their acks."""
        for partition, batch in self._batches.items():
            self._db(partition).write(batch)
        self._batches = {}
        queued, self._queued = self._queued, []
        topic = self.changelog_topic
        return [await self._send(topic, key, value, partition) for partition, key, value in queued]

    def on_acked(self, results) -> None:
        """Remember, per changelog partition, the newest offset the store holds (Faust's recovery
        reads the changelog from there on)."""
        newest: dict[int, int] = {}
        for meta in results:
            if meta.offset > newest.get(meta.partition, -1):
                newest[meta.partition] = meta.offset
        topic = self.changelog_topic
        for partition, offset in newest.items():
            self.store.set_persisted_offset(TP(topic, partition), offset)
