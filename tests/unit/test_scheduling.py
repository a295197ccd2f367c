"""The schedule table: entries fire once, in due order, from their partition, and survive a
restart because all of it lives in the (changelogged) table."""
from streams.core.model import Due, Schedule
from streams.scheduling import BUCKET_MS, Scheduler

T0 = 1_767_225_600_000


def test_entries_fire_once_in_due_order_when_time_passes():
    table: dict = {}
    s = Scheduler(table)
    s.add(0, [Schedule("O2", "b", T0 + 5 * BUCKET_MS), Schedule("O1", "a", T0 + 2 * BUCKET_MS + 10)], T0)
    assert s.due(0, T0 + BUCKET_MS) == []
    assert s.due(0, T0 + 10 * BUCKET_MS) == [
        Due("O1", "a", T0 + 2 * BUCKET_MS + 10, T0 + 10 * BUCKET_MS),
        Due("O2", "b", T0 + 5 * BUCKET_MS, T0 + 10 * BUCKET_MS),
    ]
    assert s.due(0, T0 + 20 * BUCKET_MS) == []
    assert not [k for k in table if k.startswith("b:")]  # fired buckets are deleted


def test_an_entry_later_in_the_current_bucket_waits():
    s = Scheduler({})
    s.add(0, [Schedule("O1", "a", T0 + 30_000)], T0)
    assert s.due(0, T0 + 10_000) == []
    assert [d.key for d in s.due(0, T0 + 30_000)] == ["O1"]


def test_partitions_are_independent():
    table: dict = {}
    s = Scheduler(table)
    s.add(0, [Schedule("O1", "a", T0)], T0)
    s.add(1, [Schedule("O2", "a", T0)], T0)
    assert [d.key for d in s.due(1, T0 + BUCKET_MS)] == ["O2"]
    assert [d.key for d in s.due(0, T0 + BUCKET_MS)] == ["O1"]


def test_entries_scheduled_in_the_past_fire_at_the_next_advance():
    s = Scheduler({})
    s.add(0, [Schedule("O1", "a", T0 + 10 * BUCKET_MS)], T0)
    s.due(0, T0 + 10 * BUCKET_MS)
    s.add(0, [Schedule("O2", "late", T0)], T0)  # before the cursor
    assert [d.kind for d in s.due(0, T0 + 10 * BUCKET_MS)] == ["late"]


def test_a_restarted_worker_fires_what_the_crashed_one_left():
    table: dict = {}
    Scheduler(table).add(3, [Schedule("O1", "stall", T0 + 3 * BUCKET_MS)], T0)
    # The table is what the changelog restores; a new Scheduler over it picks up where it was.
    assert [d.key for d in Scheduler(table).due(3, T0 + 4 * BUCKET_MS)] == ["O1"]


def test_an_entry_due_sooner_than_the_first_one_still_fires_on_time():
    """The cursor starts at the time of the first decision, not at its entry's due time."""
    s = Scheduler({})
    s.add(0, [Schedule("C1", "winback", T0 + 90 * 24 * 60 * BUCKET_MS)], T0)
    s.add(0, [Schedule("C2", "review", T0 + 5 * BUCKET_MS)], T0 + BUCKET_MS)
    assert [d.key for d in s.due(0, T0 + 6 * BUCKET_MS)] == ["C2"]


def test_watermark_only_moves_forward():
    s = Scheduler({})
    s.add(0, [Schedule("O1", "a", T0)], T0)
    assert s.watermark(0, T0 + 100) == T0 + 100
    assert s.watermark(0, T0 + 50) == T0 + 100
