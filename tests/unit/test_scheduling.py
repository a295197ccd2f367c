"""The schedule table: entries fire once, in due order, from their partition, and survive a
restart because all of it lives in the (changelogged) table."""

from streams.core.model import Due, Schedule
from streams.runtime.scheduling import BUCKET_MS, Scheduler

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


# --- chunked buckets: bounded records, bounded cost per add, however many entries share a minute ---

import json  # noqa: E402
import random  # noqa: E402
from collections.abc import MutableMapping  # noqa: E402

from streams.runtime.scheduling import CHUNK_BYTES, CHUNK_ENTRIES  # noqa: E402

RECORD_LIMIT = 1_000_000  # Kafka's default message.max.bytes


class Recording(MutableMapping):
    """A dict that counts writes (each a changelog record in a worker) and their JSON size, as a
    Faust table's json value serializer would write them. `fail_after`: raise on that write (a
    crash in the middle of an add)."""

    def __init__(self, data: dict | None = None, measure: bool = True):
        self.data = dict(data or {})
        self.measure = measure
        self.writes = self.deletes = self.bytes = self.biggest = 0
        self.fail_after: int | None = None

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise RuntimeError("crash")
        self.writes += 1
        if self.measure:
            size = len(json.dumps(key)) + len(json.dumps(value))
            self.bytes += size
            self.biggest = max(self.biggest, size)
        self.data[key] = json.loads(json.dumps(value))  # as restored from a changelog: no shared lists

    def __delitem__(self, key):
        self.deletes += 1
        del self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def _chunks(table) -> dict:
    return {k: v for k, v in table.items() if k.startswith("b:") and k.count(":") == 3}


def _headers(table) -> dict:
    return {k: v for k, v in table.items() if k.startswith("b:") and k.count(":") == 2}


def test_a_bucket_is_split_into_chunks_of_bounded_size():
    table: dict = {}
    s = Scheduler(table)
    s.add(0, [Schedule(f"O{i}", "stall", T0 + 30_000) for i in range(2 * CHUNK_ENTRIES + 7)], T0)
    for i in range(5):  # and one by one on top
        s.add(0, [Schedule(f"P{i}", "stall", T0 + 30_000)], T0)
    chunks = _chunks(table)
    assert len(chunks) == 3
    assert all(0 < len(rows) <= CHUNK_ENTRIES for rows in chunks.values())
    assert sum(map(len, chunks.values())) == 2 * CHUNK_ENTRIES + 12
    assert _headers(table) == {f"b:0:{T0 // BUCKET_MS}": {"chunks": 3}}


def test_long_keys_start_a_new_chunk_before_the_byte_bound():
    table = Recording()
    s = Scheduler(table)
    s.add(0, [Schedule("O" + "x" * 2000 + str(i), "stall", T0) for i in range(200)], T0)
    assert all(len(json.dumps(rows)) <= CHUNK_BYTES for rows in _chunks(table).values())
    assert len(_chunks(table)) > 1


def test_no_record_passes_the_size_limit_with_50k_entries_in_one_minute():
    table = Recording()
    s = Scheduler(table)
    rng = random.Random(5)
    midnight = T0 + 10 * BUCKET_MS
    added = 0
    while added < 50_000:  # batches of various sizes, as events and fire rounds add them
        n = rng.randint(1, 300)
        s.add(
            0,
            [
                Schedule(
                    f"ORD-{added + i:09d}",
                    f"stall_in_transit:SHP-{added + i:09d}-1",
                    midnight + rng.randrange(BUCKET_MS),
                )
                for i in range(n)
            ],
            T0,
        )
        added += n
    assert table.biggest < 100_000 < RECORD_LIMIT
    assert max(len(rows) for rows in _chunks(table).values()) <= CHUNK_ENTRIES
    fired = s.due(0, midnight + BUCKET_MS)
    assert len(fired) == added
    assert not _chunks(table) and not _headers(table)  # all deleted (tombstones)


def test_adding_k_entries_one_by_one_costs_linear_writes_of_bounded_size():
    """The old layout rewrote the whole bucket per add: k adds wrote O(k^2) bytes."""

    def cost(k: int) -> Recording:
        table = Recording()
        s = Scheduler(table)
        for i in range(k):
            s.add(0, [Schedule(f"ORD-{i:09d}", "stall_in_transit:SHP-1", T0 + BUCKET_MS + i % 1000)], T0)
        return table

    small, big = cost(1500), cost(3000)
    # one chunk per add, a header per new chunk, the cursor, the index of the bucket's hour
    assert big.writes <= 3000 + 3000 // CHUNK_ENTRIES + 3
    assert big.biggest <= CHUNK_ENTRIES * 70 < RECORD_LIMIT
    assert big.biggest == small.biggest  # the record size does not grow with the bucket
    assert big.bytes < 2.2 * small.bytes  # linear (quadratic would be 4x)


def test_entries_fire_exactly_once_in_due_order_across_chunks():
    table = Recording(measure=False)
    s = Scheduler(table)
    rng = random.Random(11)
    wanted = []
    now = T0
    fired: list[Due] = []
    for step in range(60):
        batch = [
            Schedule(f"K{step}-{i}", rng.choice("ab"), T0 + rng.randrange(3 * BUCKET_MS) + (step // 20) * BUCKET_MS)
            for i in range(rng.randint(0, 200))
        ]
        s.add(step % 2, batch, now)
        wanted += [(e.key, e.kind, e.due_at) for e in batch]
        now += rng.randrange(8_000)
        for p in (0, 1):
            got = s.due(p, now)
            assert got == sorted(got, key=lambda d: (d.due_at, d.key, d.kind))
            assert all(d.due_at <= now for d in got)
            fired += got
    for p in (0, 1):
        fired += s.due(p, now + 10 * BUCKET_MS)
    assert sorted((d.key, d.kind, d.due_at) for d in fired) == sorted(wanted)
    assert len({d.key for d in fired}) == len(wanted)  # each fired once
    assert not _chunks(table) and not _headers(table)


def test_entries_in_a_passed_bucket_join_the_current_chunks():
    table: dict = {}
    s = Scheduler(table)
    s.add(0, [Schedule("O0", "a", T0 + 5 * BUCKET_MS)], T0 + 3 * BUCKET_MS)  # the partition's time starts at now
    assert table["cursor:0"]["bucket"] == T0 // BUCKET_MS + 3
    s.add(0, [Schedule(f"L{i}", "late", T0) for i in range(CHUNK_ENTRIES + 1)], T0)  # before the cursor
    assert _headers(table)[f"b:0:{T0 // BUCKET_MS + 3}"] == {"chunks": 2}
    got = s.due(0, T0 + 3 * BUCKET_MS)
    assert len(got) == CHUNK_ENTRIES + 1 and {d.kind for d in got} == {"late"}
    assert [d.key for d in Scheduler(table).due(0, T0 + 5 * BUCKET_MS)] == ["O0"]  # a restarted worker


def test_a_partly_fired_bucket_keeps_its_later_entries_and_takes_new_ones():
    table: dict = {}
    s = Scheduler(table)
    s.add(0, [Schedule(f"E{i}", "early", T0 + 1_000) for i in range(CHUNK_ENTRIES)], T0)
    s.add(0, [Schedule(f"L{i}", "later", T0 + 50_000) for i in range(10)], T0)
    assert len(s.due(0, T0 + 2_000)) == CHUNK_ENTRIES  # the first chunk fires empty and is deleted
    assert len(_chunks(table)) == 1
    s.add(0, [Schedule("N", "new", T0 + 40_000)], T0 + 2_000)
    assert [d.key for d in Scheduler(table).due(0, T0 + 60_000)][:1] == ["N"]
    assert not _chunks(table) and not _headers(table)


def test_old_format_buckets_still_fire():
    """A changelog written before chunks holds a bucket as one list at b:{p}:{minute}."""
    m = T0 // BUCKET_MS
    table = {
        "cursor:2": {"bucket": m, "watermark": 0},
        f"b:2:{m + 1}": [["O2", "b", T0 + BUCKET_MS + 5], ["O1", "a", T0 + BUCKET_MS + 5]],
        f"b:2:{m + 3}": [["O3", "c", T0 + 3 * BUCKET_MS + 10], ["O4", "d", T0 + 3 * BUCKET_MS + 50_000]],
    }
    s = Scheduler(table)
    assert [d.key for d in s.due(2, T0 + 3 * BUCKET_MS + 20)] == ["O1", "O2", "O3"]
    assert table[f"b:2:{m + 3}"] == [["O4", "d", T0 + 3 * BUCKET_MS + 50_000]]  # the rest stays as it was
    s.add(2, [Schedule("O5", "e", T0 + 3 * BUCKET_MS + 30_000)], T0)  # moves the old bucket into chunks
    assert table[f"b:2:{m + 3}"] == {"chunks": 1}
    assert [d.key for d in s.due(2, T0 + 4 * BUCKET_MS)] == ["O5", "O4"]
    assert not [k for k in table if k.startswith("b:")]


def test_a_crash_in_the_middle_of_an_add_loses_no_entry_that_was_there():
    table = Recording(measure=False)
    s = Scheduler(table)
    s.add(0, [Schedule(f"O{i}", "a", T0 + 1_000) for i in range(CHUNK_ENTRIES - 1)], T0)
    for fail_after in range(1, 4):  # whichever write of the next add is the last that happens
        table.fail_after = table.writes + fail_after
        try:
            s.add(0, [Schedule(f"N{fail_after}-{i}", "b", T0 + 2_000) for i in range(2 * CHUNK_ENTRIES)], T0)
        except RuntimeError:
            pass
        table.fail_after = None
    got = {d.key for d in Scheduler(table).due(0, T0 + BUCKET_MS)}
    assert {f"O{i}" for i in range(CHUNK_ENTRIES - 1)} <= got


def test_a_fire_round_adds_what_it_schedules_once(monkeypatch):
    """A burst: 3000 checks due in one minute, each scheduling a follow-up in the same later minute.
    The round's follow-ups are added in one call, so each chunk is written about once, not 3000 times."""
    from streams import engine
    from streams.core.orders import OrderDecision
    from streams.core.state import OrderState

    def decide(state, due, now, lanes):
        d = OrderDecision(state)
        d.schedule.append(Schedule(due.key, "follow_up", T0 + 5 * BUCKET_MS))
        return d

    monkeypatch.setattr(engine, "decide_order", decide)
    orders = {f"O{i}": OrderState(order_id=f"O{i}") for i in range(3000)}
    table = Recording()
    stage = engine.OrderStage(orders, {}, table, objects=True)
    stage.schedule.add(0, [Schedule(k, "stall", T0 + 1_000) for k in orders], T0)
    before = table.writes
    stage.fire(0, T0 + BUCKET_MS)
    chunks = -(-3000 // CHUNK_ENTRIES)
    assert table.writes - before <= chunks + 3  # the new bucket's chunks, its header, its hour's index, the cursor
    assert table.deletes == chunks + 2  # the fired bucket's chunks, header and (emptied) hour index: tombstones
    assert len(stage.schedule.due(0, T0 + 6 * BUCKET_MS)) == 3000


def test_a_chunk_is_measured_as_the_sum_of_its_entries():
    from streams.runtime.scheduling import _entry_bytes, _rows_bytes

    rows = [["O1", "delay_check:S1", 1], ["customer-é", "release:abc", 2], ["", "", 3]]
    assert _rows_bytes(rows) == sum(map(_entry_bytes, rows)) and _rows_bytes([]) == 0


def test_a_limited_due_takes_a_backlog_in_slices_and_loses_nothing():
    """A worker back from downtime: thousands of entries over many minutes fall due at once. With a
    limit each call pops at least `limit` (whole chunks, so less than a chunk more) until the backlog
    is gone; entries added meanwhile (also overdue ones) are not lost; the table ends as empty as
    after one unlimited call."""
    rng = random.Random(5)
    limited_table, full_table = Recording(measure=False), {}
    limited, full = Scheduler(limited_table), Scheduler(full_table)
    entries = [Schedule(f"K{i}", rng.choice("ab"), T0 + rng.randrange(120 * BUCKET_MS)) for i in range(3000)]
    for s in (limited, full):
        s.add(0, entries, T0)
    now = T0 + 200 * BUCKET_MS
    want = {(d.key, d.kind, d.due_at) for d in full.due(0, now)}
    got, calls, limit = [], 0, 250
    while batch := limited.due(0, now, limit):
        calls += 1
        assert all(d.due_at <= now for d in batch)
        assert batch == sorted(batch, key=lambda d: (d.due_at, d.key, d.kind))
        got += batch
        if calls == 3:  # added mid-backlog: one overdue (lands in the cursor's bucket), one later
            late = [Schedule("NEW-overdue", "c", T0 + 5), Schedule("NEW-later", "c", now + 30 * BUCKET_MS)]
            limited.add(0, late, now)
            want.add(("NEW-overdue", "c", T0 + 5))
        left = len(want) - len(got)
        assert len(batch) >= limit or left == 0, (len(batch), left)
        assert len(batch) < limit + CHUNK_ENTRIES
    assert calls >= 3000 // (limit + CHUNK_ENTRIES)
    assert sorted((d.key, d.kind, d.due_at) for d in got) == sorted(want)
    assert len({d.key for d in got}) == len(got)  # each fired once
    assert limited_table["cursor:0"]["bucket"] == full_table["cursor:0"]["bucket"] == now // BUCKET_MS
    assert [d.key for d in limited.due(0, now + 31 * BUCKET_MS, limit)] == ["NEW-later"]
    assert not _chunks(limited_table) and not _headers(limited_table)


def test_a_limited_fire_reports_more_until_the_backlog_is_done(monkeypatch):
    """OrderStage.fire with a limit: the burst of 3000 checks is taken in slices, `more` says when to
    come back, and each check is decided exactly once."""
    from streams import engine
    from streams.core.orders import OrderDecision
    from streams.core.state import OrderState

    decided = []

    def decide(state, due, now, lanes):
        decided.append(due.key)
        return OrderDecision(state)

    monkeypatch.setattr(engine, "decide_order", decide)
    orders = {f"O{i}": OrderState(order_id=f"O{i}") for i in range(3000)}
    stage = engine.OrderStage(orders, {}, {}, objects=True)
    stage.schedule.add(0, [Schedule(k, "stall", T0 + 1_000 + i * 600) for i, k in enumerate(orders)], T0)
    slices = []
    while True:
        out = stage.fire(0, T0 + 60 * BUCKET_MS, limit=700)
        slices.append(out.fired)
        if not out.more:
            break
    assert len(slices) >= 5 and all(700 <= n < 700 + CHUNK_ENTRIES for n in slices[:-2])
    assert sorted(decided) == sorted(orders) and sum(slices) == 3000
    assert stage.fire(0, T0 + 60 * BUCKET_MS, limit=700).fired == 0  # nothing left
    assert stage.fire(0, T0 + 60 * BUCKET_MS, limit=0).more  # a spent budget defers without popping


def test_time_moves_over_empty_hours_at_one_read_per_hour():
    """A replay's clock or a worker back from downtime jumps hours: the hour index spares a read of
    every empty minute on the way."""

    class Reads(dict):
        gets = 0

        def get(self, key, default=None):
            Reads.gets += 1
            return super().get(key, default)

    table = Reads()
    s = Scheduler(table)
    day = 24 * 60 * BUCKET_MS
    s.add(0, [Schedule("O1", "a", T0 + 5 * BUCKET_MS), Schedule("O2", "b", T0 + day - BUCKET_MS)], T0)
    Reads.gets = 0
    fired = s.due(0, T0 + 2 * day)
    assert [d.key for d in fired] == ["O1", "O2"]
    assert Reads.gets < 24 * 2 + 20  # was one per minute: 2,880
    assert not [k for k in table if k.startswith(("h:", "b:"))]  # emptied buckets leave no index behind


def test_a_cursor_from_before_the_hour_index_still_fires_every_minute():
    m = T0 // BUCKET_MS
    table = {
        "cursor:0": {"bucket": m, "watermark": 0},
        f"b:0:{m + 3}": {"chunks": 1},
        f"b:0:{m + 3}:0": [["O1", "late", T0 + 3 * BUCKET_MS]],
    }
    s = Scheduler(table)
    s.add(0, [Schedule("O2", "late", T0 + 90 * BUCKET_MS)], T0)
    assert [d.key for d in s.due(0, T0 + 2 * 60 * BUCKET_MS)] == ["O1", "O2"]
