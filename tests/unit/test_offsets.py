"""Strict input offsets (streams/runtime/offsets.py): a partition's records reach the agents in
offset order with none skipped; a skip is counted and the partition read again from the offset it
wants, never committed over."""

from __future__ import annotations

from collections import namedtuple

from streams.runtime.offsets import OffsetGate

TP = namedtuple("TP", "topic partition")
A, B = TP("orders", 0), TP("orders", 1)


def deliver(gate: OffsetGate, tp, offsets) -> list[int]:
    return [o for o in offsets if gate.admit(tp, o)]


def test_after_a_seek_records_are_delivered_from_the_offset_wanted_in_order():
    gate = OffsetGate()
    gate.seeked(A, 10)
    assert deliver(gate, A, [10, 11, 12]) == [10, 11, 12]
    assert gate.expected[A] == 13 and not gate.rereads and not gate.skipped


def test_a_fetch_that_jumps_is_held_back_and_read_again_from_the_offset_wanted():
    # After a restart: committed 1042, the first record fetched 8103 (a full-size SIGKILL run).
    gate = OffsetGate()
    gate.seeked(A, 1042)
    assert deliver(gate, A, [8103, 8104]) == []
    assert gate.take_rereads() == {A: 1042} and gate.skipped[A] == 1
    gate.seeked(A, 1042)  # the consumer seeks at the next fetch
    assert deliver(gate, A, [1042, 1043]) == [1042, 1043]


def test_a_hole_of_one_right_after_a_seek_is_not_committed_over():
    # Faust reads its offset as "next wanted" after a seek and "last delivered" after a record, so a
    # first record at committed + 1 looked like no gap at all.
    gate = OffsetGate()
    gate.seeked(A, 7)
    assert deliver(gate, A, [8]) == [] and gate.rereads == {A: 7}


def test_a_hole_later_in_a_partition_holds_back_the_rest_of_it_until_re_read():
    gate = OffsetGate()
    gate.seeked(A, 0)
    assert deliver(gate, A, [0, 1, 3, 4, 5]) == [0, 1]
    assert deliver(gate, B, [50, 51]) == [50, 51]  # other partitions go on
    assert gate.take_rereads() == {A: 2}
    gate.seeked(A, 2)
    assert deliver(gate, A, [2, 3, 4, 5]) == [2, 3, 4, 5]


def test_records_fetched_before_a_seek_back_are_dropped_as_stale():
    gate = OffsetGate()
    gate.seeked(A, 100)
    assert deliver(gate, A, [100, 101, 102]) == [100, 101, 102]
    gate.request_reread(A, 50)  # the stall guard
    assert deliver(gate, A, [103]) == []  # still the batch in hand: held back, not delivered
    gate.take_rereads()
    gate.seeked(A, 50)
    assert deliver(gate, A, [49, 50, 51]) == [50, 51] and gate.stale == 1


def test_a_partition_sought_to_an_unknown_offset_takes_its_first_record():
    gate = OffsetGate()
    gate.seeked(A, None)
    assert deliver(gate, A, [5, 6]) == [5, 6]
    assert deliver(gate, A, [8]) == [] and gate.rereads == {A: 7}
