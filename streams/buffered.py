"""Table writes held back until the outputs they imply are acknowledged by the broker.

A stage decides, changes its state and emits outputs. If the state reached the changelog but the
outputs did not (a crash in between), the redelivered input would be recognised as a duplicate and
its messages lost. So the agent decides against a BufferedTable (reads see the pending writes), sends
the outputs, waits for their acknowledgements, and only then writes the state: a crash before that
means the input is decided again and the same outputs (same deterministic ids) go out twice, which
consumers drop by id.
"""
from __future__ import annotations

from typing import Any, Iterator, MutableMapping

_DELETED = object()
_MISSING = object()


class BufferedTable(MutableMapping):
    def __init__(self, base: MutableMapping):
        self.base = base
        self.pending: dict[Any, Any] = {}

    def __getitem__(self, key):
        value = self.pending.get(key, _MISSING)
        if value is _MISSING:
            return self.base[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key, default=None):
        value = self.pending.get(key, _MISSING)
        if value is _MISSING:
            return self.base.get(key, default)
        return default if value is _DELETED else value

    def __setitem__(self, key, value) -> None:
        self.pending[key] = value

    def __delitem__(self, key) -> None:
        self.pending[key] = _DELETED

    def __contains__(self, key) -> bool:
        value = self.pending.get(key, _MISSING)
        if value is _MISSING:
            return key in self.base
        return value is not _DELETED

    def __iter__(self) -> Iterator:
        # Only for inspection: the stages read by key.
        yield from (k for k in self.base if k not in self.pending)
        yield from (k for k, v in self.pending.items() if v is not _DELETED)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> None:
        """Apply the pending writes (a tombstone for each delete)."""
        for key, value in self.pending.items():
            if value is _DELETED:
                if key in self.base:
                    del self.base[key]
            else:
                self.base[key] = value
        self.pending.clear()

    def discard(self) -> None:
        self.pending.clear()
