"""`kill -USR1 <worker>` appends a state dump to AFTERSALE_DEBUG_DUMP_DIR/dump-<pid>.txt: Faust's and
aiokafka's view of every partition (assigned, active, paused, read, committed, acknowledged, fetch
position), the agents' queues, pending changelog writes, live Python objects by type (and tracemalloc's
top sites under PYTHONTRACEMALLOC=1), and every asyncio task with its await chain.
It reads private attributes of Faust and aiokafka, so it is a debugging aid (it found the stalls
described in tests/faults/README.md), not an API."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
import tracemalloc
import traceback
from collections import Counter

from .runtime.faust_ext import stream_buffers


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
        c = app.consumer
        lines.append(
            f"in_recovery={app.in_recovery} rebalancing={getattr(app, 'rebalancing', None)} "
            f"flow_active={app.flow_control.is_active()} gen={app.consumer_generation_id} "
            f"consumer.flow_active={getattr(c, 'flow_active', None)}"
        )
        lines.append(f"assignment={sorted(map(tuple, c.assignment()))}")
        lines.append(f"active={sorted(map(tuple, c._active_partitions or []))}")
        lines.append(f"buffered={sorted(map(tuple, c._buffered_partitions))}")
        lines.append(f"paused={sorted(map(tuple, c._paused_partitions))}")
        lines.append(f"read_offset={ {tuple(k): v for k, v in c._read_offset.items()} }")
        lines.append(f"committed={ {tuple(k): v for k, v in c._committed_offset.items()} }")
        lines.append(f"acked={ {tuple(k): (len(v), v[:3], v[-3:]) for k, v in c._acked.items() if v} }")
        lines.append(f"acked_index={ {tuple(k): len(v) for k, v in c._acked_index.items() if v} }")
        lines.append(
            f"unacked={len(c.unacked)} " + repr(sorted((m.topic, m.partition, m.offset) for m in list(c.unacked))[:20])
        )
        lines.append(f"gap={ {tuple(k): list(v)[:5] for k, v in getattr(c, '_gap', {}).items() if v} }")
        try:
            ak = c._thread._ensure_consumer() if hasattr(c, "_thread") else None
            sub = ak._subscription.subscription if ak else None
            if sub:
                lines.append(
                    f"reset strategy={ak._fetcher._default_reset_strategy} conf={app.conf.consumer_auto_offset_reset}"
                )
                for tp in sorted(sub.assignment.tps):
                    s = sub.assignment.state_value(tp)
                    lines.append(
                        f"  aiokafka {tp.topic}[{tp.partition}] pos={s.position if s.has_valid_position else None} paused={s.paused} reset={s.reset_strategy} awaiting_reset={s.awaiting_reset}"
                    )
        except Exception:
            lines.append("aiokafka: " + traceback.format_exc(limit=2))
        for agent in app.agents.values():
            for q in stream_buffers(agent):
                lines.append(
                    f"agent {agent.name}: queue={q.qsize()} max={q.maxsize} "
                    f"pending_drop={len(q._pending_pressure_drop_callbacks)} "
                    f"getters={len(q._getters)} putters={len(q._putters)}"
                )
        gate = getattr(c, "gate", None)  # streams/runtime/faust_ext.py StrictConsumer
        if gate is not None:
            lines.append(
                f"offset gate: skips repaired={ {tuple(k): v for k, v in gate.skipped.items()} } "
                f"stale dropped={gate.stale} re-reads pending={ {tuple(k): v for k, v in gate.rereads.items()} }"
            )
        for t in app.tables.values():
            futs = getattr(t, "_changelog_futures", [])
            lines.append(
                f"table {t.name}: pending changelog futures={len(futs)} undone={sum(1 for f in futs if not f.done())}"
            )
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
