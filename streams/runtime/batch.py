"""One stage's batch: each input decided against the write-back views, then one Checkpoint.

The Faust agents (streams/runtime/app.py) give it Faust's events and the codec; the unit tests give it plain
records and a fake broker, and crash its checkpoint between steps (tests/unit/test_checkpoint.py).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Awaitable, Callable

from ..core.model import InvalidEvent
from ..serde import DecodeError
from .writeback import TooLarge
from .checkpoint import MAX_OUTPUT_BYTES, MAX_RECORD_BYTES, Checkpoint, Output

log = logging.getLogger(__name__)


class OutputTooLarge(Exception):
    """An output record would not fit the broker's record size limit."""


class BatchRunner:
    """`decide(stage, message, record) -> (Outputs, until)` decides one input and fires what became
    due (at most about `fire_limit` scheduled decisions; `Outputs.more` says more are due);
    `fire(stage, partition, until)` fires the next slice. `encode(outputs) -> [Output]` raises
    OutputTooLarge, `dead_letter(message, reason, error) -> Output`."""

    def __init__(
        self,
        stage,
        views: list,
        checkpoint: Checkpoint,
        *,
        decode: Callable,
        decide: Callable,
        encode: Callable,
        dead_letter: Callable,
        fire_limit: int,
        enter: Callable[[Any], None] = lambda event: None,
        on_outputs: Callable[[Any], None] = lambda out: None,
        on_slice: Callable[[int], None] = lambda pending: None,
    ):
        self.stage, self.views, self.checkpoint = stage, views, checkpoint
        self.decode, self.decide, self.encode, self.dead_letter = decode, decide, encode, dead_letter
        self.fire_limit = fire_limit
        self.enter, self.on_outputs, self.on_slice = enter, on_outputs, on_slice

    def _begin(self, event) -> None:
        self.enter(event)  # Faust tables read the store of the current event's partition
        for view in self.views:
            view.begin(event.message.partition)

    async def run(self, events: list, commit_inputs: Callable[[], Awaitable[None]]) -> list[int]:
        """Decide the batch and commit it; returns the event times of the inputs decided. An input
        that cannot be decoded, whose decision raises, or whose state or outputs would not fit a
        record is rolled back and dead-lettered with the reason; the batch goes on."""
        checkpoint = self.checkpoint
        event_times = []
        fired_pending = 0  # scheduled decisions decided since the batch was last made durable
        for event in events:
            message = event.message
            self._begin(event)
            checkpoint.input_seen(message.topic, message.partition, message.offset)
            try:
                record = self.decode(message)
            except (DecodeError, InvalidEvent) as exc:
                checkpoint.add(message.partition, [self.dead_letter(message, exc.reason, exc.detail)])
                continue
            try:
                out, until = self.decide(self.stage, message, record)
                # A burst of due timers (after downtime, or an event-time jump) is taken a slice at a
                # time, and what was decided is made durable whenever about `fire_limit` scheduled
                # decisions are pending: a batch's memory stays bounded whatever the backlog. The
                # inputs are acknowledged at the batch's end, as always.
                while True:
                    outputs = self.encode(out)
                    for view in self.views:
                        view.encode_touched(MAX_RECORD_BYTES)
                    checkpoint.add(message.partition, outputs)
                    self.on_outputs(out)
                    fired_pending += out.fired
                    if not out.more and fired_pending < self.fire_limit:
                        break
                    self.on_slice(fired_pending)
                    await checkpoint.commit(self.views)
                    fired_pending = 0
                    if not out.more:
                        break
                    self._begin(event)
                    out = self.stage.fire(message.partition, until, self.fire_limit)
            except (TooLarge, OutputTooLarge) as exc:
                # Bounded states keep this rare; a record Kafka cannot carry must not stop the partition.
                self._rollback(
                    message, "state_too_large" if isinstance(exc, TooLarge) else "output_too_large", str(exc)
                )
                continue
            except Exception:  # a bug must not stop the partition: park the input, keep going
                # (what was made durable stays: the input's own decision and earlier slices; the failed
                # slice is rolled back, its timers back in the schedule)
                self._rollback(message, "processing_error", traceback.format_exc(limit=5))
                continue
            if getattr(record, "kind", None) != "tick":
                event_times.append(record.event_time)
        await checkpoint.commit(self.views, commit_inputs)
        return event_times

    def _rollback(self, message, reason: str, error: str) -> None:
        for view in self.views:
            view.rollback()
        self.checkpoint.add(message.partition, [self.dead_letter(message, reason, error)])


def check_size(records: list[Output]) -> list[Output]:
    """Raise OutputTooLarge for an output over MAX_OUTPUT_BYTES (it must fit the outbox too)."""
    for r in records:
        if len(r.value) + len(r.key or b"") > MAX_OUTPUT_BYTES:
            raise OutputTooLarge(
                f"a record for {r.topic} would be {len(r.value):,} bytes, over the "
                f"{MAX_OUTPUT_BYTES:,} an output may carry"
            )
    return records
