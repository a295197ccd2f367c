"""The `aftersale` command: demo, worker, topics, simulate, schemas, broker."""
from __future__ import annotations

import argparse
import json
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

    p = sub.add_parser("broker", help="the local Kafka broker (python -m deploy.broker)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: __import__("deploy.broker", fromlist=["main"]).main(a.rest))

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("AFTERSALE_LOGLEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
