"""The write-back view the worker decides a batch against (streams/runtime/writeback.py)."""

from __future__ import annotations

from streams.runtime.writeback import WriteBack


class RecordingTable(dict):
    """A dict that records every write and delete, with the partition current at the time."""

    def __init__(self, *args):
        super().__init__(*args)
        self.current = None
        self.log: list[tuple] = []

    def __setitem__(self, key, value):
        self.log.append(("set", self.current, key))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.log.append(("del", self.current, key))
        super().__delitem__(key)


def test_reads_see_the_batch_writes_and_the_table_sees_nothing_until_flush():
    table = RecordingTable({"a": 1, "gone": 2})
    view = WriteBack(table)
    view.begin(0)
    view["a"] = 10
    view["b"] = 20
    del view["gone"]
    assert (view["a"], view.get("b"), view.get("gone"), view.get("gone", "dflt")) == (10, 20, None, "dflt")
    assert "gone" not in view and "b" in view
    assert sorted(view) == ["a", "b"] and len(view) == 2
    assert table == {"a": 1, "gone": 2} and table.log == []


def test_flush_writes_each_key_once_in_the_partition_that_wrote_it():
    table = RecordingTable({"x": 0})
    view = WriteBack(table)
    for partition, key, value in [(0, "a", 1), (1, "b", 1), (0, "a", 2), (0, "a", 3), (1, "x", 5)]:
        view.begin(partition)
        view[key] = value
    view.begin(1)
    del view["x"]
    view.begin(0)
    del view["never-stored"]

    def enter(partition):
        table.current = partition

    written = view.flush(enter)
    assert table == {"a": 3, "b": 1}
    # One write per key; the delete of a key the table never had writes nothing (no useless tombstone).
    assert sorted(table.log) == [("del", 1, "x"), ("set", 0, "a"), ("set", 1, "b")]
    assert written == 4 and view.pending == {}


def test_rollback_undoes_only_the_current_input():
    table = RecordingTable({"a": 1})
    view = WriteBack(table)
    view.begin(0)
    view["a"] = 2  # input 1: kept
    view.begin(0)
    view["a"] = 3  # input 2 fails half-way
    view["c"] = 4
    del view["a"]
    view.rollback()
    assert view["a"] == 2 and "c" not in view
    view.flush()
    assert table == {"a": 2}


def test_discard_forgets_the_batch():
    table = RecordingTable({"a": 1})
    view = WriteBack(table)
    view.begin(3)
    view["a"] = 9
    view.discard()
    assert view["a"] == 1 and view.flush() == 0 and table.log == []


def test_rollback_restores_a_pending_record_changed_in_place_by_the_failed_input():
    # The core changes the state it is given in place; the view snapshots a pending value on its
    # first read by an input, so a failed input leaves the value as the previous input wrote it.
    import orjson

    from streams.core.state import OrderState

    table = RecordingTable()
    view = WriteBack(table, snapshot=orjson.dumps, restore=lambda data: OrderState.from_dict(orjson.loads(data)))
    view.begin(0)
    view["o"] = OrderState(order_id="o", notified=["a"])  # input 1: kept
    view.begin(0)
    state = view.get("o")  # input 2 changes it in place, then fails
    state.notified.append("b")
    state.status = "cancelled"
    view["o"] = state
    view.rollback()
    assert view["o"] == OrderState(order_id="o", notified=["a"])
    view.begin(0)
    kept = view["o"]  # input 3 succeeds: its change stays
    kept.notified.append("c")
    view["o"] = kept
    view.flush()
    assert table["o"].notified == ["a", "c"]
