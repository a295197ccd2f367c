"""`kill -USR1 <worker>` appends a state dump to AFTERSALE_DEBUG_DUMP_DIR/dump-<pid>.txt: Faust's and
aiokafka's view of every partition (assigned, active, paused, read, committed, acknowledged, fetch
position), the agents' queues, live Python objects by type (and tracemalloc's
top sites under PYTHONTRACEMALLOC=1), and every asyncio task with its await chain.
What it reads of Faust's and aiokafka's private attributes is read in streams/runtime/faust_ext.py
(`consumer_state`). A debugging aid (it found the stalls described in tests/faults/README.md), not an API."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
import tracemalloc
import traceback
from collections import Counter

from .runtime.faust_ext import consumer_state


def _chain(coro, depth=0):
    out = []
    while coro is not None and depth < 60:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        name = getattr(coro, "__qualname__", type(coro).__name__)
        if frame is not None:
            out.append(f"  {name} {frame.f_code.co_filename}:{frame.f_lineno}")
        else:
            out.append(f"  {name} (no frame) {coro!r}"[:300])
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
        if nxt is None and type(coro).__name__ in (
            "coroutine_wrapper",
            "async_generator_asend",
            "async_generator_athrow",
        ):
            refs = [r for r in gc.get_referents(coro) if hasattr(r, "cr_frame") or hasattr(r, "ag_frame")]
            nxt = refs[0] if refs else None
        coro = nxt
        depth += 1
    return out


def _memory(top: int = 15) -> list[str]:
    """Where Python memory is: live objects by type (gc-tracked ones), and, when the worker runs with
    PYTHONTRACEMALLOC=1, the traced total and the biggest allocation sites. Tells the Python heap
    from native memory (RocksDB, librdkafka, allocator) when RSS grows."""
    counts = Counter(type(obj).__name__ for obj in gc.get_objects())
    lines = ["objects (gc-tracked) by type: " + ", ".join(f"{name} {n:,}" for name, n in counts.most_common(top))]
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        lines.append(f"tracemalloc: current {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
        for stat in tracemalloc.take_snapshot().statistics("lineno")[:top]:
            lines.append(f"  {stat.size / 2**20:8.1f} MiB {stat.count:>9,}  {stat.traceback[0]}")
    return lines


def dump(app, path):
    lines = [f"dump at {time.time()}"]
    try:
        lines += consumer_state(app)
        pb = app.producer.buffer
        lines.append(
            f"producer buffer queue={pb.pending.qsize() if hasattr(pb, 'pending') else '?'} max={getattr(pb, 'max_messages', None)}"
        )
    except Exception:
        lines.append(traceback.format_exc())
    lines.extend(_memory())
    for task in asyncio.all_tasks():
        lines.append(f"TASK {task.get_name()} done={task.done()}")
        lines.extend(_chain(task.get_coro()))
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n\n")


def install(app, directory):
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: dump(app, os.path.join(directory, f"dump-{os.getpid()}.txt")))
