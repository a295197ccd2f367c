"""State reaches the table only when flushed (after the outputs are acknowledged)."""
from streams.buffered import BufferedTable


def test_reads_see_pending_writes_and_the_table_only_after_flush():
    base = {"a": 1, "b": 2}
    t = BufferedTable(base)
    t["a"] = 10
    del t["b"]
    t["c"] = 3
    assert (t.get("a"), t.get("b"), "b" in t, t["c"]) == (10, None, False, 3)
    assert base == {"a": 1, "b": 2}  # nothing written yet: a crash here loses no output
    t.flush()
    assert base == {"a": 10, "c": 3}


def test_discard_forgets_a_failed_decision():
    base = {"a": 1}
    t = BufferedTable(base)
    t["a"] = 2
    t.discard()
    assert t["a"] == 1 and base == {"a": 1}
