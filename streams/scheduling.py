"""Scheduled decisions, fired from the partition that owns the key, once, across restarts.

Faust has no per-key timers, and a table may only be written inside stream iteration. So the
schedule is itself a table (changelogged like any other): entries sit in one-minute buckets per
partition, and a cursor per partition remembers how far time has been processed. The agent that owns
the partition advances the cursor while it handles a message of that partition, either an event
(on event time, for replays) or a tick that a timer sends to the partition (on wall-clock time, live).

Entries are hints: the core remembers the time it wants in its state (`timers`) and ignores a Due
that no longer matches, so rescheduling and cancelling never need to find and delete old entries.
Works on any MutableMapping (a Faust table in the worker, a dict in replays and tests).
"""
from __future__ import annotations

from typing import MutableMapping

from .core.model import Due, Schedule

BUCKET_MS = 60_000


def _cursor_key(partition: int) -> str:
    return f"cursor:{partition}"


def _bucket_key(partition: int, bucket: int) -> str:
    return f"b:{partition}:{bucket}"


class Scheduler:
    def __init__(self, table: MutableMapping):
        self.table = table
        self.pending = 0  # entries added minus entries fired by this process (a backlog gauge)

    def add(self, partition: int, entries: list[Schedule], now: int) -> None:
        """Schedule entries decided at `now` (the time the deciding stage used)."""
        if not entries:
            return
        cursor = self.table.get(_cursor_key(partition))
        if cursor is None:
            # The partition's first entry: its time starts now, not at the entry's due time (a
            # later entry may well be due sooner).
            cursor = {"bucket": min(now, *(e.due_at for e in entries)) // BUCKET_MS, "watermark": 0}
            self.table[_cursor_key(partition)] = cursor
        by_bucket: dict[str, list] = {}
        for entry in entries:
            # An entry in a bucket already passed goes into the current one: it fires next advance.
            key = _bucket_key(partition, max(entry.due_at // BUCKET_MS, cursor["bucket"]))
            by_bucket.setdefault(key, []).append([entry.key, entry.kind, entry.due_at])
        for key, new in by_bucket.items():  # one write per bucket: each write is a changelog record
            self.table[key] = [*(self.table.get(key) or []), *new]
        self.pending += len(entries)

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

    def due(self, partition: int, now: int) -> list[Due]:
        """Pop every entry due at or before `now`, in due order, and move the cursor up to `now`."""
        cursor = self.table.get(_cursor_key(partition))
        if cursor is None:
            return []
        last = now // BUCKET_MS
        if last < cursor["bucket"]:
            return []
        if last == cursor["bucket"] and not self.table.get(_bucket_key(partition, last)):
            return []  # the common case: nothing due in the current minute
        fired: list[Due] = []
        for bucket in range(cursor["bucket"], last + 1):
            key = _bucket_key(partition, bucket)
            entries = self.table.get(key)
            if not entries:
                continue
            ready = [e for e in entries if e[2] <= now]
            later = [e for e in entries if e[2] > now]
            if later:
                self.table[key] = later
            else:
                del self.table[key]
            fired.extend(Due(key=k, kind=kind, due_at=at, now=now) for k, kind, at in ready)
        if last != cursor["bucket"]:
            self.table[_cursor_key(partition)] = {**cursor, "bucket": last}
        self.pending = max(0, self.pending - len(fired))
        fired.sort(key=lambda d: (d.due_at, d.key, d.kind))
        return fired
