"""The `replay` benchmark: in-process replay throughput on simulated traffic, against reading the
same events without deciding them, measured in the same run (registered in streams/tools/bench.py)."""

from __future__ import annotations

import time


def _best(fn, n: int, repeat: int = 3) -> float:
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def run_benchmark(options: dict, Figure) -> list:
    import orjson

    from .events import InputReport, prepare, simulated_raw
    from .inprocess import run_events

    orders = options.get("orders", 5000)
    raw = simulated_raw(orders, seed=1)
    lines = [orjson.dumps({"topic": t, "key": k, "value": r}) for t, k, r in raw]  # the JSONL log, in memory
    n = len(lines)

    def read() -> list:
        # The baseline: what every replay does before deciding anything: parse each JSONL line,
        # check and convert it to the core's record, sort by event time.
        parsed = [orjson.loads(line) for line in lines]
        return prepare(((o["topic"], o["key"], o["value"]) for o in parsed), InputReport("bench", "jsonl"))

    events = read()
    base = _best(read, n)
    # Decide only (the events are already read): what `aftersale replay` adds on top of reading.
    decide = _best(lambda: run_events(events, partitions=4), n)
    # The worker's exact code path in process (state stored as dicts, stock scheduler): what the
    # replay did before its fast path, and what it falls back to if the core raises.
    exact = _best(lambda: run_events(events, partitions=4, objects=False), n, repeat=2)
    # End to end as `aftersale replay` runs: read, decide, time ticking hourly and running on 30 days.
    total = _best(lambda: run_events(read(), partitions=4, run_on_ms=30 * 86_400_000, tick_ms=3_600_000), n)
    note = f"{n} simulated events of {orders} orders, 4 partitions, one core"
    return [
        Figure(
            "replay.baseline_read_convert", base, "events/s", note="parse JSONL + check/convert + sort, no decisions"
        ),
        Figure(
            "replay.decide_events_per_s",
            decide,
            "events/s",
            baseline="replay.baseline_read_convert",
            ratio=decide / base,
            target=">= 100000 events/s",
            met=decide >= 100_000,
            note=f"both stages, schedules, partitions; {note}",
        ),
        Figure(
            "replay.exact_path_events_per_s",
            exact,
            "events/s",
            baseline="replay.baseline_read_convert",
            ratio=exact / base,
            note=f"state stored as dicts after every event + stock scheduler; fast path is "
            f"x{decide / exact:.2f} of it; {note}",
        ),
        Figure(
            "replay.end_to_end_events_per_s",
            total,
            "events/s",
            baseline="replay.baseline_read_convert",
            ratio=total / base,
            note=f"read + decide + hourly ticks + 30 days run-on; {note}",
        ),
    ]
