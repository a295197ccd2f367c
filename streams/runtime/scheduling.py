"""Scheduled decisions, fired from the partition that owns the key, once, across restarts.

Faust has no per-key timers, and a table may only be written inside stream iteration. So the
schedule is itself a table (changelogged like any other): entries sit in one-minute buckets per
partition, and a cursor per partition remembers how far time has been processed. The agent that owns
the partition advances the cursor while it handles a message of that partition, either an event
(on event time, for replays) or a tick that a timer sends to the partition (on wall-clock time, live).

Entries are hints: the core remembers the time it wants in its state (`timers`) and ignores a Due
that no longer matches, so rescheduling and cancelling never need to find and delete old entries.
Works on any MutableMapping (a Faust table in the worker, a dict in replays and tests).

Record layout (every table write is a changelog record, so each must stay small and bounded):

    cursor:{p}          {"bucket": minute, "watermark": ms, "index": 1}
    b:{p}:{minute}      bucket header {"chunks": n}
    b:{p}:{minute}:{i}  chunk i < n: [[key, kind, due_at], ...], at most CHUNK_ENTRIES entries and
                        about CHUNK_BYTES of JSON
    h:{p}:{hour}        the minutes of that hour that have a bucket, sorted

The hour index lets time move over empty minutes at one read per hour instead of one per minute (a
replay's clock, or a worker back after downtime, jumps hours at a time: a profile counted 226,099
reads of empty buckets). It is written when a bucket is created or emptied. A cursor written before
the index existed (no "index") goes on reading every minute.

Many entries may share a minute (stall checks fall due at local midnight): an add rewrites only the
last chunk of a bucket (and the header when it starts a new chunk), so its cost does not grow with
the bucket. A chunk that fires empty is deleted (a tombstone), and the header with the last one.
Before chunks, `b:{p}:{minute}` held the whole bucket as one list; such records (in changelogs
written by an older worker) are still read, fired, and moved into chunks by the first add to their
bucket.
"""

from __future__ import annotations

from typing import Iterable, MutableMapping

from ..core.model import Due, Schedule

BUCKET_MS = 60_000
# Entries per chunk record. An add rewrites the last chunk, so this sets the changelog bytes of an add
# into a busy minute: about 4 kB on average at 128 (17 kB at 500), against 391 records for a minute
# of 50k entries (100 at 500), each one RocksDB read when it fires.
CHUNK_ENTRIES = 128
CHUNK_BYTES = 64_000  # estimated JSON bytes per chunk record (ids are short; this bounds long ones)


def _cursor_key(partition: int) -> str:
    return f"cursor:{partition}"


def _bucket_key(partition: int, bucket: int) -> str:
    return f"b:{partition}:{bucket}"


def _chunk_key(partition: int, bucket: int, chunk: int) -> str:
    return f"b:{partition}:{bucket}:{chunk}"


def _hour_key(partition: int, hour: int) -> str:
    return f"h:{partition}:{hour}"


MINUTES_PER_HOUR = 60


_ENTRY_OVERHEAD = 26  # JSON bytes of an entry besides its key and kind: `["", "", 1767225600000], `


def _entry_bytes(row: list) -> int:
    """An upper estimate of the JSON size of one entry (`["key", "kind", 1767225600000], `)."""
    return len(row[0]) + len(row[1]) + _ENTRY_OVERHEAD


def _rows_bytes(rows: list) -> int:
    """_entry_bytes summed over rows (inlined: a chunk is re-measured on every add)."""
    return sum(len(key) + len(kind) for key, kind, _ in rows) + _ENTRY_OVERHEAD * len(rows)


class Scheduler:
    def __init__(self, table: MutableMapping):
        self.table = table
        self.pending = 0  # entries added minus entries fired by this process (a backlog gauge)

    def add(self, partition: int, entries: Iterable[Schedule], now: int) -> None:
        """Schedule entries decided at `now` (the time the deciding stage used). Adding many entries in
        one call is cheaper than one by one: each chunk touched is written once per call."""
        entries = list(entries)
        if not entries:
            return
        cursor = self.table.get(_cursor_key(partition))
        if cursor is None:
            # The partition's first entry: its time starts now, not at the entry's due time (a
            # later entry may well be due sooner).
            cursor = {"bucket": min(now, *(e.due_at for e in entries)) // BUCKET_MS, "watermark": 0, "index": 1}
            self.table[_cursor_key(partition)] = cursor
        by_bucket: dict[int, list] = {}
        for entry in entries:
            # An entry in a bucket already passed goes into the current one: it fires next advance.
            bucket = max(entry.due_at // BUCKET_MS, cursor["bucket"])
            by_bucket.setdefault(bucket, []).append([entry.key, entry.kind, entry.due_at])
        created = []
        for bucket, rows in by_bucket.items():
            if self._append(partition, bucket, rows):
                created.append(bucket)
        if created and cursor.get("index"):
            self._index(partition, created, [])
        self.pending += len(entries)

    def _index(self, partition: int, created: list[int], emptied: list[int]) -> None:
        """Add created and remove emptied buckets from their hours' index records, each written once."""
        hours: dict[int, tuple[list, list]] = {}
        for bucket in created:
            hours.setdefault(bucket // MINUTES_PER_HOUR, ([], []))[0].append(bucket)
        for bucket in emptied:
            hours.setdefault(bucket // MINUTES_PER_HOUR, ([], []))[1].append(bucket)
        for hour, (add, remove) in hours.items():
            key = _hour_key(partition, hour)
            minutes = (set(self.table.get(key) or ()) | set(add)) - set(remove)
            if minutes:
                self.table[key] = sorted(minutes)
            elif key in self.table:
                del self.table[key]

    def _append(self, partition: int, bucket: int, rows: list) -> bool:
        """Append rows to a bucket: the last chunk is rewritten (at most CHUNK_ENTRIES entries), full
        chunks are never touched again, new chunks are written once. Chunks are written before the
        header that counts them, so a crash in between loses no entry that was there before. Says
        whether the bucket is new."""
        table = self.table
        header_key = _bucket_key(partition, bucket)
        header = table.get(header_key)
        if isinstance(header, list):  # an old-format bucket: one record of entries; into chunks now
            rows, header = [*header, *rows], None
        chunks = header["chunks"] if header else 0
        last = max(chunks - 1, 0)
        chunk = list(table.get(_chunk_key(partition, bucket, last)) or ()) if chunks else []
        size, grown = _rows_bytes(chunk), False
        for row in rows:
            n = _entry_bytes(row)
            if chunk and (len(chunk) >= CHUNK_ENTRIES or size + n > CHUNK_BYTES):
                if grown:  # (a chunk that was full already is not written again)
                    table[_chunk_key(partition, bucket, last)] = chunk
                last, chunk, size = last + 1, [], 0
            chunk.append(row)
            size, grown = size + n, True
        table[_chunk_key(partition, bucket, last)] = chunk
        if last + 1 != chunks:
            table[header_key] = {"chunks": last + 1}
        return header is None

    def watermark(self, partition: int, event_time: int) -> int:
        """Event time seen so far on this partition (never goes back). Stored only when it enters a
        new bucket: finer progress does not change what is due, and every table write costs a
        changelog record."""
        cursor = self.table.get(_cursor_key(partition))
        if cursor is None:
            return event_time
        if event_time // BUCKET_MS > cursor["watermark"] // BUCKET_MS:
            cursor = {**cursor, "watermark": event_time}
            self.table[_cursor_key(partition)] = cursor
        return max(event_time, cursor["watermark"])

    def due(self, partition: int, now: int, limit: int | None = None) -> list[Due]:
        """Pop every entry due at or before `now`, in due order, and move the cursor up to `now`.

        With a `limit`, stop once at least that many entries are popped (whole chunks, so up to
        CHUNK_ENTRIES - 1 more): the cursor then stays on the bucket where popping stopped, and the
        next call goes on from there. That is how a worker bounds the work (and memory) of one batch
        when a backlog of timers falls due at once (after downtime, or an event-time jump)."""
        cursor = self.table.get(_cursor_key(partition))
        if cursor is None:
            return []
        last = now // BUCKET_MS
        if last < cursor["bucket"]:
            return []
        if last == cursor["bucket"] and not self.table.get(_bucket_key(partition, last)):
            return []  # the common case: nothing due in the current minute
        fired: list[Due] = []
        emptied: list[int] = []
        try:
            for bucket in self._buckets(partition, cursor, last):
                left = self._pop_bucket(partition, bucket, now, fired, limit)
                if not left:
                    emptied.append(bucket)
                if limit is not None and len(fired) >= limit:
                    # Entries left in a bucket before the last were cut off by the limit: stay on it.
                    return self._advance(partition, cursor, bucket if left or bucket == last else bucket + 1, fired)
            return self._advance(partition, cursor, last, fired)
        finally:
            if emptied and cursor.get("index"):
                self._index(partition, [], emptied)

    def _buckets(self, partition: int, cursor: dict, last: int):
        """The minutes from the cursor's to `last` that may hold entries: from the hour index, or every
        minute for a cursor older than the index."""
        first = cursor["bucket"]
        if not cursor.get("index"):
            yield from range(first, last + 1)
            return
        for hour in range(first // MINUTES_PER_HOUR, last // MINUTES_PER_HOUR + 1):
            for bucket in self.table.get(_hour_key(partition, hour)) or ():
                if first <= bucket <= last:
                    yield bucket

    def _advance(self, partition: int, cursor: dict, last: int, fired: list[Due]) -> list[Due]:
        if last != cursor["bucket"]:
            self.table[_cursor_key(partition)] = {**cursor, "bucket": last}
        self.pending = max(0, self.pending - len(fired))
        fired.sort(key=lambda d: (d.due_at, d.key, d.kind))
        return fired

    def _pop_bucket(self, partition: int, bucket: int, now: int, fired: list[Due], limit: int | None = None) -> bool:
        """Move the bucket's entries due by `now` into `fired` (chunk by chunk, until `fired` holds
        `limit` entries); delete what is left empty. Says whether entries remain (later in the
        bucket's minute, or in chunks the limit left alone)."""
        header_key = _bucket_key(partition, bucket)
        header = self.table.get(header_key)
        if not header:
            return False
        if isinstance(header, list):  # an old-format bucket
            return self._pop_rows(header_key, header, now, fired)
        left = False
        for i in range(header["chunks"]):
            if limit is not None and len(fired) >= limit:
                return True  # the header stays: the next call pops the remaining chunks
            key = _chunk_key(partition, bucket, i)
            rows = self.table.get(key)
            if rows:
                left = self._pop_rows(key, rows, now, fired) or left
        if not left:
            del self.table[header_key]
        return left

    def _pop_rows(self, key: str, rows: list, now: int, fired: list[Due]) -> bool:
        ready = [e for e in rows if e[2] <= now]
        if not ready:
            return True  # nothing to fire: no write
        later = [e for e in rows if e[2] > now]
        if later:
            self.table[key] = later
        else:
            del self.table[key]
        fired.extend(Due(key=k, kind=kind, due_at=at, now=now) for k, kind, at in ready)
        return bool(later)
