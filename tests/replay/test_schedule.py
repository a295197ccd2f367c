"""The replay's SparseScheduler behaves exactly as the worker's Scheduler."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from streams.core.model import Schedule
from streams.tools.replay.inprocess import SparseScheduler, _IndexedTable
from streams.runtime.scheduling import BUCKET_MS, Scheduler

T0 = 1_767_225_600_000

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 2),
            st.lists(
                st.tuples(st.sampled_from(["k1", "k2", "k3"]), st.sampled_from(["a", "b"]), st.integers(-30, 3000)),
                max_size=4,
            ),
            st.integers(-30, 3000),
        ),
        st.tuples(st.just("due"), st.integers(0, 2), st.integers(-10, 3000)),
        st.tuples(st.just("watermark"), st.integers(0, 2), st.integers(-10, 3000)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 90_000))
def test_sparse_scheduler_pops_what_the_stock_one_pops(operations, step_ms):
    stock, sparse = Scheduler({}), SparseScheduler(_IndexedTable())
    for op in operations:
        if op[0] == "add":
            entries = [Schedule(k, kind, T0 + at * step_ms) for k, kind, at in op[2]]
            stock.add(op[1], entries, T0 + op[3] * step_ms)
            sparse.add(op[1], entries, T0 + op[3] * step_ms)
        elif op[0] == "due":
            now = T0 + op[2] * step_ms
            assert sparse.due(op[1], now) == stock.due(op[1], now)
        else:
            now = T0 + op[2] * step_ms
            assert sparse.watermark(op[1], now) == stock.watermark(op[1], now)
        assert dict(sparse.table) == stock.table
        assert sparse.pending == stock.pending
    for p in range(3):  # and at the end of time
        assert sparse.due(p, T0 + 4000 * step_ms + 10 * BUCKET_MS) == stock.due(p, T0 + 4000 * step_ms + 10 * BUCKET_MS)
    assert dict(sparse.table) == stock.table
