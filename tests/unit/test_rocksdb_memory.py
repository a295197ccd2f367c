"""All of a worker's RocksDB stores share one memory budget (streams/runtime/rocksdb_memory.py): memtables
of many stores together stay under it, where Faust's own options let each store fill its own."""

from __future__ import annotations

import os
import time

import faust.stores
import pytest
from faust.stores.rocksdb import RocksDBOptions

from streams.runtime import rocksdb_memory
from streams.runtime.rocksdb_memory import STORE_URL, SharedMemoryOptions

MiB = 2**20


def fill(options: RocksDBOptions, tmp_path, stores: int = 3, mib_each: int = 12) -> tuple[int, list]:
    """Write `mib_each` MiB into each of `stores` stores; return their memtables' total bytes."""
    dbs = [options.open(tmp_path / f"store-{i}") for i in range(stores)]
    value = os.urandom(1000)
    for i, db in enumerate(dbs):
        for n in range(mib_each * MiB // 1000):
            db[f"{i}:{n:08d}".encode()] = value
    return sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs), dbs


@pytest.fixture
def budget(monkeypatch):
    monkeypatch.setattr(rocksdb_memory, "_shared", {})
    rocksdb_memory.configure(16 * MiB)  # memtables: at most about 8 MiB for all stores
    return 16 * MiB


def settled(measure, limit: float, timeout: float = 30.0) -> float:
    """`measure()` once RocksDB's background flushes bring it under `limit` (at most `timeout` s): the
    budget is kept by flushes that run in RocksDB's own threads, later on a busy machine."""
    deadline = time.monotonic() + timeout
    value = measure()
    while value > limit and time.monotonic() < deadline:
        time.sleep(0.1)
        value = measure()
    return value


def test_memtables_of_all_stores_stay_under_the_shared_budget(budget, tmp_path):
    # Memtables large enough that no store would flush on its own before 64 MiB.
    _, dbs = fill(SharedMemoryOptions(write_buffer_size=64 * MiB, use_rocksdict=True), tmp_path / "shared")
    limit = budget // 2 * 1.25
    shared = settled(lambda: sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs), limit)
    assert shared <= limit, shared / MiB
    assert settled(lambda: rocksdb_memory.shared_write_buffers().get_usage(), limit) <= limit
    assert rocksdb_memory.shared_cache().get_usage() <= budget * 1.25
    assert dbs[0][b"0:00000007"] and dbs[2][f"2:{12 * MiB // 1000 - 1:08d}".encode()]  # flushed, still there
    plain, _ = fill(RocksDBOptions(write_buffer_size=64 * MiB, use_rocksdict=True), tmp_path / "plain")
    assert plain > 3 * shared and plain > 30 * MiB  # each Faust store keeps its own 12 MiB


def test_every_store_opened_reads_through_the_same_cache(budget, tmp_path):
    stores = {
        name: options.open(tmp_path / name)
        for name, options in [
            ("first", SharedMemoryOptions(use_rocksdict=True)),
            ("second", SharedMemoryOptions(use_rocksdict=True, write_buffer_size=4 * MiB)),
            ("faust", RocksDBOptions(use_rocksdict=True)),
        ]
    }
    for db in stores.values():
        for n in range(2000):
            db[f"{n:06d}".encode()] = os.urandom(500)
        db.flush()  # to an SST file, so reads go through the block cache
    grew = {}
    for name, db in stores.items():  # 1 MB of blocks read back per store: into whose cache?
        before = rocksdb_memory.shared_cache().get_usage()
        assert all(db[f"{n:06d}".encode()] for n in range(2000))
        grew[name] = rocksdb_memory.shared_cache().get_usage() - before
    assert grew["first"] > 500_000 and grew["second"] > 500_000, grew
    assert abs(grew["faust"]) < 100_000, grew  # Faust's options: a cache of its own
    assert rocksdb_memory.shared_write_buffers().get_buffer_size() == budget // 2
    rocksdb_memory.configure(2 * budget)  # a second app in the same process: one budget, resized
    assert rocksdb_memory.shared_write_buffers().get_buffer_size() == budget


def test_the_worker_store_url_selects_the_shared_store():
    assert faust.stores.by_url(STORE_URL) is rocksdb_memory.Store
    assert issubclass(rocksdb_memory.Store, faust.stores.by_url("rocksdb://"))
