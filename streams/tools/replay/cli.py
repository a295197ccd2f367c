"""`aftersale replay` and `aftersale backtest` (the arguments are defined in streams/cli.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _source(args) -> tuple[str | None, int | None]:
    if bool(args.input) == bool(args.simulate):
        raise SystemExit("give one of --input FILE|FOLDER or --simulate ORDERS")
    return args.input, args.simulate


def replay_command(args) -> int:
    from . import run_replay

    source, orders = _source(args)
    if not args.kafka:
        summary = run_replay(
            source,
            args.out,
            partitions=args.partitions,
            run_on_days=args.run_on_days,
            sort=not args.file_order,
            progress=not args.no_progress,
            simulate_orders=orders,
            seed=args.seed,
            tick_hours=args.tick_hours,
            what_if_consent=args.assume_consent,
            warm_start=args.warm_start,
            experiments=args.experiments,
            plant=tuple(args.plant),
        )
        _print(summary)
        return 0
    from deploy.topics import apply

    from ...config import Settings
    from .lockstep import KafkaTarget, Worker, wait_assigned

    broker = None
    worker = None
    app_id = args.app_id or f"replay-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 100000}"
    try:
        from deploy.broker import LocalBroker, external_bootstrap

        import os

        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or external_bootstrap()
        if not bootstrap:
            print("starting a local Kafka broker...", file=sys.stderr)
            import tempfile

            broker = LocalBroker(data_dir=Path(tempfile.mkdtemp(prefix="aftersale-replay-broker-"))).start()
            bootstrap = broker.bootstrap_servers
        settings = Settings.from_env(
            bootstrap_servers=bootstrap, app_id=app_id, partitions=args.partitions, clock="event"
        )
        apply(settings)
        if not args.app_id:
            print(f"starting a worker (app id {app_id}, --clock event)...", file=sys.stderr)
            env = {"AFTERSALE_EXPERIMENTS": str(Path(args.experiments).resolve())} if args.experiments else {}
            worker = Worker(settings, env=env).start()
            wait_assigned(settings)
        summary = run_replay(
            source,
            args.out,
            partitions=args.partitions,
            run_on_days=args.run_on_days,
            sort=not args.file_order,
            progress=not args.no_progress,
            simulate_orders=orders,
            seed=args.seed,
            kafka=KafkaTarget(settings),
            tick_hours=args.tick_hours,
            experiments=args.experiments,
            plant=tuple(args.plant),
        )
        _print(summary)
        return 0
    finally:
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.stop()


def backtest_command(args) -> int:
    from ..backtest import run_backtest

    source, orders = _source(args)
    fig = run_backtest(
        source,
        args.out,
        partitions=args.partitions,
        run_on_days=args.run_on_days,
        baseline_days=args.baseline_days,
        progress=not args.no_progress,
        simulate_orders=orders,
        seed=args.seed,
        from_replay=args.from_replay,
        tick_hours=args.tick_hours,
        assume_consent=args.assume_consent,
        warm_start=args.warm_start,
        refund_late_days=args.refund_late_days,
        experiments=args.experiments,
        plant=tuple(args.plant),
    )
    d, r, m = fig["delay"], fig["reviews"], fig["messages"]
    print(
        f"delay alerts: precision {d['precision']}, recall {d['recall']} ({d['late']} late of "
        f"{d['orders_evaluated']} delivered orders; {d['never_delivered']} never delivered, apart), median lead "
        f"of true alerts {d['lead_days_median_tp']} days before the promised date"
    )
    for n, rule in sorted(d["rules"].items()):
        bt = d["beats"][n]
        print(
            f"  rule not delivered {n} d before: precision {rule['precision']}, recall {rule['recall']}; "
            f"model curve at lead >= {n} d, recall >= 0.9: precision {bt['curve_precision']} "
            f"({'beats' if bt['curve_beats'] else 'does not beat'} it); shipped "
            f"{'beats' if bt['shipped_beats'] else 'does not beat'} it"
        )
    if d["calibration"]:
        print(f"calibration: Brier {d['calibration']['brier']} (base rate {d['calibration']['brier_base_rate']})")
    for t, v in fig["followed"].items():
        print(f"  {t}: {v['followed_by_late_delivery']} of {v['delivered']} delivered orders then late ({v['share']})")
    rf = fig["refunds"]
    print(
        f"late refunds: precision {rf['precision']}, recall {rf['recall']} ({rf['late']} late of {rf['evaluated']} "
        f"returns to refund; {rf['returns']} returns), median lead to the refund {rf['lead_days_to_refund_median']} d"
        if rf["returns"]
        else "late refunds: no returns in this data"
    )
    reach = r["reach"]
    print(
        f"review requests reach: 3-5 stars {reach['3_5']['share']}, 1-2 stars {reach['1_2']['share']}"
        + (" (consent assumed)" if args.assume_consent else "")
    )
    sd = fig["silent"]
    print(
        f"candidates without an intent or audit record: {sd['candidates_without_decision']} of {sd['candidates']}; "
        f"delivered orders without a review decision: {sd['delivered_without_review_decision']}"
    )
    print(
        f"review requests: {r['engine']['requests']} (to 1-2 star orders: {r['engine']['to_1_2_stars']}) vs "
        f"baseline {r['baseline']['requests']} ({r['baseline']['to_1_2_stars']})"
    )
    print(f"intents {m['intents']}, not sent {m['audit']}, messages per order max {m['per_order_max']}")
    print(f"report: {args.out}/report.md")
    return 0


def _print(summary: dict) -> None:
    inp = summary["input"]
    print(
        f"input {inp['source']} ({inp['kind']}): {inp['events']:,} events"
        + (f", rejected {inp['rejected']}" if inp["rejected"] else "")
        + (f", missing files {inp['missing_files']}" if inp["missing_files"] else "")
        + (f", not joined {inp['unjoined']}" if inp["unjoined"] else "")
    )
    print(f"intents {summary['intents']:,} {summary['intents_by_type']}")
    print(f"not sent {summary['audit']:,} {summary['audit_by_decision']}")
