"""The stall guard's decision: which input partitions to re-read (streams/runtime/faust_ext.py)."""

from streams.runtime.faust_ext import StallGuard


def checks(guard, positions, idle=True, n=3):
    return [guard.stalled(positions, idle) for _ in range(n)]


def test_a_partition_behind_and_not_moving_is_re_read_after_patience_checks():
    # Seeked to committed 18 (Faust's read offset is then 18 too), the broker has up to 87: stuck.
    assert checks(StallGuard(patience=2), {"tp": (18, 18, 88, False)}) == [[], [], ["tp"]]


def test_never_delivered_and_never_committed_counts_from_zero():
    assert checks(StallGuard(patience=2), {"tp": (None, None, 5, False)}) == [[], [], ["tp"]]


def test_caught_up_partitions_are_left_alone():
    guard = StallGuard(patience=1)
    # Last delivered 87, committed 88, high-water 88: nothing left to read.
    assert (
        checks(guard, {"a": (87, 88, 88, False), "b": (None, None, 0, False), "c": (None, None, None, False)}, n=5)
        == [[]] * 5
    )
    # Delivered 87 and not committed yet (in flight): nothing left to read either.
    assert checks(guard, {"a": (87, 80, 88, False)}, n=5) == [[]] * 5


def test_a_moving_partition_is_not_stalled():
    guard = StallGuard(patience=2)
    assert [guard.stalled({"tp": (offset, 0, 1000, False)}, True) for offset in (10, 20, 30, 40)] == [[]] * 4


def test_a_busy_worker_is_not_stalled():
    # Records wait while an agent works through a batch: not a stall, however long it takes.
    assert checks(StallGuard(patience=1), {"tp": (18, 18, 88, False)}, idle=False, n=5) == [[]] * 5


def test_being_busy_resets_the_count():
    guard = StallGuard(patience=2)
    seq = [guard.stalled({"tp": (18, 18, 88, False)}, idle) for idle in (True, True, False, True)]
    assert seq == [[], [], [], []]
    assert guard.stalled({"tp": (18, 18, 88, False)}, True) == ["tp"]


def test_after_a_re_read_the_count_starts_again():
    guard = StallGuard(patience=1)
    assert checks(guard, {"tp": (18, 18, 88, False)}, n=4) == [[], ["tp"], [], ["tp"]]
    # and a partition that moved on after its re-read is not re-read again
    assert [guard.stalled({"tp": (o, 18, 88, False)}, True) for o in (30, 50, 87, 87, 87)] == [[]] * 5


def test_a_partition_whose_re_read_is_on_its_way_is_not_re_read_again():
    # Behind and not moving, but a re-read is asked for: it runs once the fetcher has delivered the
    # batch in hand (which may wait behind another agent's full buffer).
    guard = StallGuard(patience=1)
    assert checks(guard, {"tp": (18, 18, 88, True)}, n=5) == [[]] * 5
    # and a pending re-read resets the count, as being busy does
    guard = StallGuard(patience=2)
    assert [guard.stalled({"tp": (18, 18, 88, held)}, True) for held in (False, False, True, False, False)] == [
        [],
        [],
        [],
        [],
        ["tp"],
    ]
