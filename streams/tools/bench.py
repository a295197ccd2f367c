"""`aftersale bench`: throughput and latency figures, each against a baseline measured in the same
run on the same machine (these machines are noisy; only ratios travel). Benchmarks register here."""

from __future__ import annotations

import json
import platform
import os
import time
from pathlib import Path

from .figures import BENCHMARKS, Benchmark, Figure, register  # noqa: F401 (the registry, for callers)

RESULTS_FILE = Path(__file__).resolve().parents[2] / "bench" / "results.json"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def core_events(orders: int = 2000, seed: int = 1):
    """Simulated events as the core sees them (decoded), in arrival order."""
    from ..core import model
    from .simulate import generate

    convert = {
        "orders": model.order_event_from,
        "carrier-scans": model.carrier_scan_from,
        "engagement": model.engagement_event_from,
        "support": model.support_event_from,
    }
    return [convert[e.topic](e.record) for e in generate(orders=orders, seed=seed)]


@register("core", "the pure decision core, in process, no broker (target >= 100k events/s on one core)")
def bench_core(options: dict) -> list[Figure]:
    from ..core.customers import decide_customer
    from ..core.orders import decide_order
    from ..core.model import OrderEvent, CarrierScan

    events = core_events(options.get("orders", 5000))

    def baseline() -> None:
        # The floor: a dict lookup and store per event, what any keyed processor must do.
        table: dict = {}
        for e in events:
            key = getattr(e, "order_id", None) or e.customer_id
            table[key] = table.get(key, 0) + 1

    from dataclasses import replace

    from ..config import load_experiments
    from ..core.policy import DEFAULT_POLICY
    from .worker_process import REPO

    with_experiments = replace(DEFAULT_POLICY, experiments=load_experiments(REPO / "deploy" / "experiments.toml"))

    def core(config=DEFAULT_POLICY) -> None:
        orders: dict = {}
        customers: dict = {}
        shared: dict = {}  # the customer stage's partition statistics (one partition here)
        for e in events:
            if isinstance(e, (OrderEvent, CarrierScan)):
                d = decide_order(orders.get(e.order_id), e, e.event_time)
                orders[e.order_id] = d.state
                items = d.commands
            else:
                items = [e]
            for item in items:
                c = decide_customer(customers.get(item.customer_id), item, item.event_time, config, shared)
                customers[item.customer_id] = c.state
                shared.update(c.stats)

    def rate(fn) -> float:
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            fn()
            best = max(best, len(events) / (time.perf_counter() - t))
        return best

    base, got = rate(baseline), rate(core)
    experiments = rate(lambda: core(with_experiments))
    return [
        Figure("core.baseline_dict_update", base, "events/s", note="dict get+set per event"),
        Figure(
            "core.events_per_s",
            got,
            "events/s",
            baseline="core.baseline_dict_update",
            ratio=got / base,
            target=">= 100000 events/s",
            met=got >= 100_000,
            note=f"{len(events)} simulated events, both stages",
        ),
        Figure(
            "core.events_per_s_with_experiments",
            experiments,
            "events/s",
            baseline="core.events_per_s",
            ratio=experiments / got,
            note="the same, running deploy/experiments.toml (holdouts, send-time arms, Thompson sampling)",
        ),
    ]


def run(names: list[str] | None, options: dict, save: bool = True) -> list[Figure]:
    selected = [BENCHMARKS[n] for n in (names or BENCHMARKS)]
    figures: list[Figure] = []
    for bench in selected:
        print(f"== {bench.name}: {bench.doc}", flush=True)
        for fig in bench.run(options):
            figures.append(fig)
            ratio = f"  x{fig.ratio:.2f} vs {fig.baseline}" if fig.ratio is not None else ""
            verdict = "" if fig.met is None else ("  [target met]" if fig.met else f"  [target MISSED: {fig.target}]")
            print(f"   {fig.name:<40} {fig.value:>14,.1f} {fig.unit:<10}{ratio}{verdict}", flush=True)
    if save:
        RESULTS_FILE.parent.mkdir(exist_ok=True)
        previous = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
        previous.update(
            {
                f.name: {
                    **f.__dict__,
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": machine(),
                }
                for f in figures
            }
        )
        RESULTS_FILE.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    return figures


@register("replay", "in-process replay of simulated traffic vs reading the same events (target >= 100k events/s)")
def bench_replay(options: dict) -> list[Figure]:
    from .replay.benchmark import run_benchmark

    return run_benchmark(options, Figure)


# The other benchmarks register themselves in the same registry when imported.
from . import benchmarks  # noqa: E402,F401  (e2e, latency, restart)

try:
    from connectors import bench as _connectors_bench  # noqa: E402,F401  (ingest)
except ModuleNotFoundError as exc:  # a checkout without connectors/ still benches the core
    if exc.name != "connectors":
        raise
