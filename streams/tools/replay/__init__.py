"""Replay: a historical dataset through the same decision core, in event time.

Two paths with the same results: in process through the pure core (`run_events`, no broker, as fast
as the machine allows), and through Kafka and a real Faust worker in lockstep (`lockstep.py`).

    events, report = load("events.jsonl")        # or an Olist folder; sorted by event time
    result = run_events(events, partitions=4, run_on_ms=30 * DAY, tick_ms=HOUR)  # DAY, HOUR in ms
    write_outputs("out/", result.intents, result.audit, report.to_dict())
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from .events import InputReport, ReplayEvent, assume_consent, load, load_simulated, prepare
from .inprocess import InProcessEngine, ReplayResult, replay, run_events, simulated
from .output import no_cyclic_gc, write_outputs

DAY_MS = 86_400_000

__all__ = [
    "InProcessEngine",
    "ReplayResult",
    "ReplayEvent",
    "InputReport",
    "replay",
    "run_events",
    "simulated",
    "load",
    "load_simulated",
    "prepare",
    "write_outputs",
    "run_replay",
    "progress_bar",
]


def progress_bar(total: int, enabled: bool = True, desc: str = "replay"):
    """A tqdm bar on stderr, fed with the count done so far; (update, close)."""
    if not enabled:
        return (lambda n: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ImportError:  # an optional extra (aftersale[tools]): no bar without it
        return (lambda n: None), (lambda: None)

    bar = tqdm(
        total=total,
        desc=desc,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        mininterval=0.25,
        dynamic_ncols=True,
        leave=True,
    )
    state = {"n": 0}

    def update(n: int) -> None:
        if n > state["n"]:
            bar.update(n - state["n"])
            state["n"] = n

    return update, bar.close


def run_replay(
    source: str | Path | None,
    out_dir: str | Path,
    partitions: int = 4,
    run_on_days: float = 30.0,
    sort: bool = True,
    progress: bool = True,
    simulate_orders: int | None = None,
    seed: int = 7,
    kafka=None,
    tick_hours: float = 1.0,
    what_if_consent: bool = False,
    warm_start: str | Path | None = None,
    experiments: str | Path | None = None,
    plant: tuple[str, ...] = (),
) -> dict:
    """Read, replay (in process, or through Kafka when `kafka` is a lockstep.KafkaTarget), write
    the outputs; returns the summary (also in out_dir/summary.json). Speed goes to stderr only, so
    the files stay byte-identical between runs. `experiments`: an experiments file (TOML) the
    customer stage runs, its per-arm outcomes go to outcomes.json; `plant`: effects of their arms
    the simulator plants (`EXPERIMENT:ARM:OUTCOME=LIFT`, simulated traffic only)."""
    from ...config import load_experiments
    from ...core.policy import DEFAULT_POLICY

    running = load_experiments(experiments)
    planted = _planted(plant, running, simulate_orders)
    config = replace(DEFAULT_POLICY, experiments=running)
    with no_cyclic_gc():  # reading keeps every event too (see output.no_cyclic_gc)
        if simulate_orders:
            events, report = load_simulated(simulate_orders, seed=seed, sort=sort, planted=planted)
        else:
            events, report = load(source, sort=sort)
    what_if = {}
    if what_if_consent:
        events, what_if = assume_consent(events, report)
    warm = None
    if warm_start:
        from ...core import warm as warm_mod

        warm = warm_mod.loads(Path(warm_start).read_bytes())
        report.notes.append(f"warm start: {len(warm)} learned statistics from {warm_start}")
    run_on_ms = int(run_on_days * DAY_MS)
    tick_ms = int(tick_hours * 3_600_000)
    started = time.perf_counter()
    update, close = progress_bar(len(events), progress, "replay" if kafka is None else "replay (kafka lockstep)")
    try:
        if kafka is None:
            result = run_events(
                events,
                partitions=partitions,
                run_on_ms=run_on_ms,
                tick_ms=tick_ms,
                progress=update,
                warm=warm,
                config=config,
            )
            outcomes = result.outcomes
            intents, audit, rejected = result.intents, result.audit, result.rejected
            scores, candidates, learned = result.scores, result.candidates, result.learned
            extra = {
                "path": "in-process",
                "partitions": partitions,
                "run_on_days": run_on_days,
                "tick_hours": tick_hours,
                "events_fed": result.events,
                "duplicates": result.duplicates,
                "exact_rerun": result.exact_rerun,
                "rejected_in_core": dict(sorted(result.rejected_by_reason().items())),
            }
        else:
            from .lockstep import replay_kafka

            got = replay_kafka(events, kafka, run_on_ms=run_on_ms, tick_ms=tick_ms, progress=update)
            intents, audit = got.intents, got.audit
            scores, candidates, learned = None, None, None  # not visible from outside a worker
            outcomes = None  # the worker's metrics have them (aftersale_experiment_outcomes_total)
            rejected = [
                (d.get("topic", "?"), f"{d.get('reason', '?')}: {d.get('error', '')}") for d in got.dead_letters
            ]
            extra = {
                "path": "kafka-lockstep",
                "partitions": kafka.settings.partitions,
                "run_on_days": run_on_days,
                "tick_hours": tick_hours,
                "events_fed": len(events),
                "steps": got.steps,
                "dead_letters": len(got.dead_letters),
            }
    finally:
        close()
    elapsed = time.perf_counter() - started
    extra["what_if"] = what_if
    extra["warm_start"] = str(warm_start) if warm_start else None
    extra["experiments"] = str(experiments) if experiments else None
    extra["planted"] = list(plant)
    extra["seed"] = seed if simulate_orders else None
    summary = write_outputs(
        out_dir,
        intents,
        audit,
        report.to_dict(),
        rejected,
        extra,
        scores=scores,
        candidates=candidates,
        learned=learned,
        source=report.source,
        outcomes=outcomes,
    )
    rate = len(events) / elapsed if elapsed > 0 else float("inf")
    print(
        f"replayed {len(events):,} events in {elapsed:.2f}s ({rate:,.0f} events/s): {summary['intents']:,} intents, "
        f"{summary['audit']:,} audit records -> {out_dir}",
        file=sys.stderr,
    )
    return summary


def _planted(plant: tuple[str, ...], running: tuple, simulate_orders: int | None) -> tuple:
    if not plant:
        return ()
    if not simulate_orders:
        raise SystemExit("--plant needs --simulate: effects are planted in simulated traffic")
    from ..simulate import planted_from

    try:
        return tuple(planted_from(spec, running) for spec in plant)
    except ValueError as e:
        raise SystemExit(str(e)) from None
