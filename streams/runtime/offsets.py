"""Strict input offsets: which offset each partition wants next, and the re-reads that repair a
skip. Pure (no Faust, no Kafka), so it is unit-tested without a broker; the consumer in
streams/runtime/faust_ext.py puts it in front of the agents."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

log = logging.getLogger(__name__)


class OffsetGate:
    """Per partition, the next offset to deliver; a record past it is held back and the partition
    read again from there (tests/unit/test_offsets.py)."""

    def __init__(self) -> None:
        self.expected: dict[Any, int] = {}  # tp -> next offset to deliver
        self.rereads: dict[Any, int] = {}  # tp -> offset to seek to at the next fetch
        self.skipped: Counter = Counter()  # tp -> skips repaired
        self.stale = 0  # records dropped as older than the offset wanted

    def seeked(self, tp, offset: int | None) -> None:
        """The partition was sought to `offset` (None: unknown, the next record is taken as is)."""
        self.rereads.pop(tp, None)
        if offset is None:
            self.expected.pop(tp, None)
        else:
            self.expected[tp] = offset

    def admit(self, tp, offset: int) -> bool:
        """Whether a fetched record may be delivered now."""
        if tp in self.rereads:
            return False  # held back until its partition is read again
        want = self.expected.get(tp)
        if want is not None:
            if offset < want:
                self.stale += 1  # fetched before a seek back: it comes again in order
                return False
            if offset > want:
                self.skipped[tp] += 1
                self.rereads[tp] = want
                log.warning(
                    "input partition %s[%d]: fetched offset %d, wanted %d: re-reading from %d instead of "
                    "committing over the skipped offsets",
                    tp.topic,
                    tp.partition,
                    offset,
                    want,
                    want,
                )
                return False
        self.expected[tp] = offset + 1
        return True

    def request_reread(self, tp, offset: int) -> None:
        self.rereads[tp] = offset

    def take_rereads(self) -> dict:
        rereads, self.rereads = self.rereads, {}
        return rereads
