"""The `aftersale` command: demo, worker, topics, simulate, schemas, broker."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import Settings


def _worker(args) -> int:
    from faust.worker import Worker

    from .app import build_app

    settings = Settings.from_env(data_dir=Path(args.data_dir) if args.data_dir else None, web_port=args.web_port,
                                 clock=args.clock)
    app = build_app(settings)
    worker = Worker(app, loglevel=args.loglevel, quiet=True, override_logging=True)
    # Faust's terminal spinner turns on DEBUG logging of every send (~9% of the worker's time).
    worker.spinner = None
    worker.execute_from_commandline()  # returns only on shutdown; exits the process itself
    return 0


def _topics(args) -> int:
    from deploy.topics import TOPICS, all_topics, apply

    settings = Settings.from_env()
    created = apply(settings)
    docs = {settings.topic(t.name): f"{t.schema.split('.')[-1]:<16} key={t.key:<12} {t.doc}" for t in TOPICS}
    for name, config in all_topics(settings):
        mark = "created" if name in created else "exists "
        print(f"{mark}  {name:<34} {settings.partitions}p  {config['cleanup.policy']:<8} {docs.get(name, 'table changelog')}")
    return 0


def _simulate(args) -> int:
    import random

    from .simulate import generate, malformed

    events = generate(orders=args.orders, seed=args.seed, start_ms=args.start_ms, id_prefix=args.id_prefix)
    if args.out:
        import orjson

        with open(args.out, "wb") as fh:
            for e in events:
                fh.write(orjson.dumps({"topic": e.topic, "key": e.key, "value": e.record}) + b"\n")
        print(f"wrote {len(events)} events to {args.out}")
        return 0
    from .producer import EventProducer, produce_events

    settings = Settings.from_env()
    n = produce_events(settings, events, rate=args.rate)
    if args.bad:
        out = EventProducer(settings)
        for topic, key, value in malformed(random.Random(args.seed), args.bad):
            out.send(topic, key, value)
        out.flush()
    print(f"produced {n} events and {args.bad} malformed messages to {settings.bootstrap_servers}")
    return 0


def _schemas(args) -> int:
    from .registry import LocalRegistry

    registry = LocalRegistry()
    if args.action == "register":
        for schema_id, schema in registry.register_current():
            print(f"registered {schema.name} ({schema.file}) as id {schema_id}")
        return 0
    missing = registry.unregistered()
    for schema in missing:
        print(f"not registered: {schema.name} ({schema.file}); run `aftersale schemas register`")
    return 1 if missing else 0


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(orders=args.orders, rate=args.rate, bad=args.bad, seed=args.seed, verbose=args.verbose)


def _bench(args) -> int:
    from . import bench

    unknown = [n for n in args.only or [] if n not in bench.BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {sorted(bench.BENCHMARKS)}")
    bench.run(args.only, {"orders": args.orders}, save=not args.no_save)
    return 0


def _ingest(args) -> int:
    from connectors.ingest import run
    from connectors.settings import IngestSettings

    run(Settings.from_env(), IngestSettings.from_env(host=args.host, port=args.port))
    return 0


def _sender(args) -> int:
    import asyncio

    from connectors.sender import serve
    from connectors.settings import SenderSettings

    try:
        asyncio.run(serve(Settings.from_env(), SenderSettings.from_env(web_port=args.web_port)))
    except KeyboardInterrupt:
        pass
    return 0


def _replay(args) -> int:
    from .replay.cli import replay_command

    return replay_command(args)


def _backtest(args) -> int:
    from .replay.cli import backtest_command

    return backtest_command(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aftersale", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="local broker + worker + simulated shop traffic, shown live")
    p.add_argument("--orders", type=int, default=150)
    p.add_argument("--rate", type=float, default=40.0, help="events per second fed to Kafka")
    p.add_argument("--bad", type=int, default=5, help="malformed messages mixed in (dead-lettered)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--verbose", action="store_true", help="print every input event too")
    p.set_defaults(func=_demo)

    p = sub.add_parser("worker", help="run a Faust worker (needs KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--data-dir", help="RocksDB tables live here (one per worker); env AFTERSALE_DATA_DIR")
    p.add_argument("--web-port", type=int, help="HTTP port of the worker (metrics, health); env AFTERSALE_WEB_PORT")
    p.add_argument("--clock", choices=["wall", "event"], help="decide with wall clock (live) or event time")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(func=_worker)

    p = sub.add_parser("topics", help="create the topics (idempotent) and list them")
    p.set_defaults(func=_topics)

    p = sub.add_parser("simulate", help="produce simulated shop traffic to the input topics")
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--bad", type=int, default=0, help="malformed messages to add")
    p.add_argument("--start-ms", type=int, default=1_767_225_600_000, help="event time of the first order")
    p.add_argument("--id-prefix", default="")
    p.add_argument("--out", help="write JSON Lines here instead of producing to Kafka")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("schemas", help="check or register schema versions in the local registry")
    p.add_argument("action", choices=["check", "register"])
    p.set_defaults(func=_schemas)

    p = sub.add_parser("bench", help="throughput/latency figures as ratios against same-run baselines")
    p.add_argument("--only", nargs="*", help="benchmark names (default: all)")
    p.add_argument("--orders", type=int, default=5000)
    p.add_argument("--no-save", action="store_true", help="do not update bench/results.json")
    p.set_defaults(func=_bench)

    p = sub.add_parser("ingest", help="webhook ingest service: provider webhooks -> our input topics")
    p.add_argument("--host", help="bind address; env AFTERSALE_INGEST_HOST (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="env AFTERSALE_INGEST_PORT (default 8085)")
    p.set_defaults(func=_ingest)

    p = sub.add_parser("sender", help="reference sender: intents -> HTTP endpoint / SMTP, failures dead-lettered")
    p.add_argument("--web-port", type=int, help="serve /metrics and /health here; env AFTERSALE_SENDER_WEB_PORT")
    p.set_defaults(func=_sender)

    for name, func, text in (("replay", _replay, "a historical dataset (JSONL event log or Olist folder) through the decision core"),
                             ("backtest", _backtest, "replay, then a report of what would have been sent against what happened")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--input", help="events.jsonl (as `simulate --out` writes) or a folder of Olist CSVs")
        p.add_argument("--simulate", type=int, metavar="ORDERS", help="replay simulated traffic of this many orders instead")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--partitions", type=int, default=4, help="as the worker's topics (decisions depend on it)")
        p.add_argument("--run-on-days", type=float, default=30.0, help="let time run on past the last event")
        p.add_argument("--tick-hours", type=float, default=1.0,
                       help="time ticks for every partition this often, as a live worker's timer (0: only at the end)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        p.add_argument("--assume-consent", action="store_true",
                       help="what-if: every order consents to marketing e-mail; history's review answers are "
                            "outcomes only (reported in the output)")
        p.add_argument("--warm-start", metavar="LEARNED_JSON",
                       help="start from the statistics an earlier replay learned (its learned.json)")
        if name == "replay":
            p.add_argument("--file-order", action="store_true", help="feed a JSONL log in file order, not event time")
            p.add_argument("--kafka", action="store_true", help="through Kafka and a Faust worker, in lockstep (slow)")
            p.add_argument("--app-id", help="with --kafka: use this app's running worker (--clock event, empty topics) "
                                            "instead of starting one")
        else:
            p.add_argument("--baseline-days", type=int, default=7, help="review request baseline: N days after delivery")
            p.add_argument("--from-replay", help="use the outputs of an earlier `aftersale replay --out DIR`")
        p.set_defaults(func=func)

    p = sub.add_parser("broker", help="the local Kafka broker (python -m deploy.broker)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: __import__("deploy.broker", fromlist=["main"]).main(a.rest))

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("AFTERSALE_LOGLEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
