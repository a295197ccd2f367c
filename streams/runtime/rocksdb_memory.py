"""One memory budget for all of a worker's RocksDB stores.

Faust opens a RocksDB instance per table partition (5 tables x the partitions a worker holds) and
gives each its own block cache and memtables, so RocksDB's memory grows with the assignment: 20
stores with a 64 MiB cache and two 16 MiB memtables each may hold 1.9 GiB, 60 stores (12 partitions
after a rebalance) three times that. Here every store of the process shares one LRU block cache,
and one write buffer manager caps the memtables of all of them together (past the cap, the store
being written is flushed early), their memory charged to that same cache. So RocksDB's memory is
one figure, AFTERSALE_ROCKSDB_MEMORY_MB, whatever the worker holds.

`store=STORE_URL` in faust.App selects it: Faust finds store classes by the URL's scheme, this one
through the `faust.stores` entry point in pyproject.toml.
"""

from __future__ import annotations

import rocksdict
from faust.stores import rocksdb as faust_rocksdb

DEFAULT_MEMORY = 128 * 2**20
STORE_URL = "aftersale-rocksdb://"

_shared: dict[str, object] = {"memory": DEFAULT_MEMORY}


def configure(memory_bytes: int) -> None:
    """Set the process-wide budget (a worker does in build_app, before its stores open; stores
    already open follow a new budget too: the cache and the memtable cap are resized)."""
    _shared["memory"] = memory_bytes
    if "cache" in _shared:
        _shared["cache"].set_capacity(memory_bytes)
    if "write_buffers" in _shared:
        _shared["write_buffers"].set_buffer_size(memory_bytes // 2)


def shared_cache() -> rocksdict.Cache:
    if "cache" not in _shared:
        _shared["cache"] = rocksdict.Cache(_shared["memory"])
    return _shared["cache"]


def shared_write_buffers() -> rocksdict.WriteBufferManager:
    if "write_buffers" not in _shared:
        # Memtables may take half of the budget (they live in the cache's accounting, so reads and
        # writes share it rather than each having a fixed slice). No stall: flushing early is enough.
        _shared["write_buffers"] = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            _shared["memory"] // 2, False, shared_cache()
        )
    return _shared["write_buffers"]


class SharedMemoryOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options, with the shared cache and write buffer manager in place of a per-store cache."""

    def as_options(self):
        options = super().as_options()
        if not self.use_rocksdict:
            return options
        table = rocksdict.BlockBasedOptions()  # as Faust builds it (faust/stores/rocksdb.py), shared cache
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(shared_cache())
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(shared_write_buffers())
        return options


class Store(faust_rocksdb.Store):
    """Faust's RocksDB store, opening its partitions with SharedMemoryOptions."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rocksdb_options = SharedMemoryOptions(**self.options, use_rocksdict=self.use_rocksdict)
