"""The `aftersale` command: demo, worker, topics, simulate, schemas, bench, ingest, sender, erase,
replay, backtest, broker."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import Settings


def _worker(args) -> int:
    from faust.worker import Worker

    from .runtime.app import build_app

    settings = Settings.from_env(
        data_dir=Path(args.data_dir) if args.data_dir else None, web_port=args.web_port, clock=args.clock
    )
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
        print(
            f"{mark}  {name:<34} {settings.partitions}p  {config['cleanup.policy']:<8} {docs.get(name, 'table changelog')}"
        )
    return 0


def _erase(args) -> int:
    import asyncio
    import json

    from .privacy import erase

    done = asyncio.run(erase(Settings.from_env(), args.customer_id, args.order, source=args.source))
    print(json.dumps(done))
    return 0


def _simulate(args) -> int:
    import random

    from .tools.simulate import generate, malformed

    events = generate(
        orders=args.orders,
        seed=args.seed,
        start_ms=args.start_ms,
        id_prefix=args.id_prefix,
        return_rate_scale=args.return_rate_scale,
    )
    if args.out:
        import orjson

        with open(args.out, "wb") as fh:
            for e in events:
                line = {"topic": e.topic, "key": e.key, "value": e.record}
                if e.truth is not None:  # the simulator's ground truth, for the backtest; not an input
                    line["truth"] = e.truth
                fh.write(orjson.dumps(line) + b"\n")
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
    from .tools.demo import run_demo

    return run_demo(orders=args.orders, rate=args.rate, bad=args.bad, seed=args.seed, verbose=args.verbose)


def _bench(args) -> int:
    from .tools import bench

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
    from .tools.replay.cli import replay_command

    return replay_command(args)


def _backtest(args) -> int:
    from .tools.replay.cli import backtest_command

    return backtest_command(args)


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except for flags (False) and options whose help says what None means."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage first) and defaults in help."""

    def __init__(self, *args, epilog_fn=None, **kwargs):
        kwargs.setdefault("formatter_class", _Defaults)
        super().__init__(*args, **kwargs)
        self.epilog_fn = epilog_fn  # an epilog worth computing only when help is shown

    def format_help(self) -> str:
        if self.epilog_fn is not None:
            self.epilog = self.epilog_fn()
        return super().format_help()

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(kind, low, inclusive: bool = True):
    """An argparse type: a number of `kind` at least (or, not inclusive, above) `low`."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'above'} {low:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


POSITIVE, NON_NEGATIVE, POSITIVE_RATE = _number(int, 1), _number(int, 0), _number(float, 0, inclusive=False)
NON_NEGATIVE_FLOAT = _number(float, 0)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _existing(text: str) -> str:
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


COMMANDS_DOC = """\
Real-time decisions on post-purchase messages, on Kafka. Every command but demo, replay (in process),
backtest and schemas needs a Kafka broker: KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092 (see
`aftersale broker start`). Documentation: README.md and docs/ in the repository."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aftersale", description=COMMANDS_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="local broker + worker + simulated shop traffic, shown live (about a minute)",
        description="Starts a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), the topics and a "
        "worker, feeds simulated shop traffic and shows what goes in and what comes out.",
    )
    p.add_argument("--orders", type=POSITIVE, default=150, help="simulated orders (about 11 events each)")
    p.add_argument("--rate", type=POSITIVE_RATE, default=40.0, help="events per second fed to Kafka")
    p.add_argument("--bad", type=NON_NEGATIVE, default=5, help="malformed messages mixed in (dead-lettered)")
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated traffic")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show every input event (by default: orders placed, deliveries, carrier problems, support tickets)",
    )
    p.set_defaults(func=_demo)

    p = sub.add_parser("worker", help="run a Faust worker (the engine)")
    p.add_argument(
        "--data-dir",
        default=None,
        help="RocksDB tables live here, one per worker (None: AFTERSALE_DATA_DIR, else var/worker)",
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=None,
        help="HTTP port: /metrics, /health, /ops (None: AFTERSALE_WEB_PORT, else 6066)",
    )
    p.add_argument(
        "--clock",
        choices=["wall", "event"],
        default=None,
        help="decide on the wall clock (live) or on event time (None: AFTERSALE_CLOCK, else wall)",
    )
    p.add_argument("--loglevel", default="warning", help="Faust's log level")
    p.set_defaults(func=_worker, needs_broker=True)

    p = sub.add_parser("topics", help="create the topics (idempotent) and list them")
    p.set_defaults(func=_topics, needs_broker=True)

    p = sub.add_parser(
        "erase",
        help="erase a customer: shred their keys, delete their state (GDPR art. 17)",
        description="Tombstones the customer's keys in <app>.customer-keys (every sealed copy of what they "
        "wrote and of raw webhook bodies becomes unreadable), then produces an ErasureRequest: the worker "
        "that owns the customer deletes their state and their orders'. Safe to repeat. Same as POST "
        "/api/erasure on a worker.",
    )
    p.add_argument("customer_id", type=_non_empty, help="the shop's customer id")
    p.add_argument("--order", action="append", default=[], help="an order id to erase as well (repeatable)")
    p.add_argument("--source", default="cli", help="who asked, kept in the request")
    p.set_defaults(func=_erase, needs_broker=True)

    from .tools.simulate import RETURN_RATES

    p = sub.add_parser("simulate", help="produce simulated shop traffic to the input topics (or to a file)")
    p.add_argument("--orders", type=POSITIVE, default=200, help="simulated orders")
    p.add_argument("--rate", type=POSITIVE_RATE, default=None, help="events per second (None: as fast as possible)")
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated traffic")
    p.add_argument("--bad", type=NON_NEGATIVE, default=0, help="malformed messages to add")
    p.add_argument("--start-ms", type=int, default=1_767_225_600_000, help="event time of the first order (epoch ms)")
    p.add_argument("--id-prefix", default="", help="prefix of every order and customer id")
    p.add_argument(
        "--return-rate-scale",
        type=NON_NEGATIVE_FLOAT,
        default=1.0,
        help="multiplies every category's return rate ("
        + ", ".join(f"{c} {100 * r:g}%%" for c, r in sorted(RETURN_RATES.items(), key=lambda kv: -kv[1]))
        + " of delivered items; 0: no returns). A returned order gets a return journey: label, return "
        "parcel scans, receipt, then a refund (10%% late), store credit or an exchange order (on top of --orders)",
    )
    p.add_argument("--out", default=None, help="write JSON Lines to this file instead of producing to Kafka")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("schemas", help="check or register schema versions in the local registry")
    p.add_argument("action", choices=["check", "register"], help="check: fail if a schema changed unregistered")
    p.set_defaults(func=_schemas)

    p = sub.add_parser(
        "bench",
        help="throughput/latency figures as ratios against same-run baselines",
        epilog_fn=_benchmark_list,
        formatter_class=_DefaultsRawEpilog,
    )
    p.add_argument("--only", nargs="*", metavar="NAME", default=None, help="benchmark names (None: all)")
    p.add_argument("--orders", type=POSITIVE, default=5000, help="simulated orders (core and replay benchmarks)")
    p.add_argument("--no-save", action="store_true", help="do not update bench/results.json")
    p.set_defaults(func=_bench)

    p = sub.add_parser("ingest", help="webhook ingest service: provider webhooks -> our input topics")
    p.add_argument("--host", default=None, help="bind address (None: AFTERSALE_INGEST_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (None: AFTERSALE_INGEST_PORT, else 8085)")
    p.set_defaults(func=_ingest, needs_broker=True)

    p = sub.add_parser("sender", help="reference sender: intents -> HTTP endpoint / SMTP, failures dead-lettered")
    p.add_argument(
        "--web-port",
        type=int,
        default=None,
        help="serve /metrics and /health here (None: AFTERSALE_SENDER_WEB_PORT, else none)",
    )
    p.set_defaults(func=_sender, needs_broker=True)

    for name, func, text in (
        ("replay", _replay, "a historical dataset (JSONL event log or Olist folder) through the decision core"),
        ("backtest", _backtest, "replay, then a report of what would have been sent against what happened"),
    ):
        p = sub.add_parser(name, help=text)
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--input",
            type=_existing,
            default=None,
            help="events.jsonl (as `simulate --out` writes) or a folder of Olist CSVs",
        )
        source.add_argument(
            "--simulate",
            type=POSITIVE,
            metavar="ORDERS",
            default=None,
            help="replay simulated traffic of this many orders instead",
        )
        p.add_argument("--seed", type=int, default=7, help="seed of --simulate")
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--partitions", type=POSITIVE, default=4, help="as the worker's topics (decisions depend on it)")
        p.add_argument(
            "--run-on-days", type=NON_NEGATIVE_FLOAT, default=30.0, help="let time run on past the last event"
        )
        p.add_argument(
            "--tick-hours",
            type=NON_NEGATIVE_FLOAT,
            default=1.0,
            help="time ticks for every partition this often, as a live worker's timer (0: only at the end)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        p.add_argument(
            "--assume-consent",
            action="store_true",
            help="what-if: every order consents to marketing e-mail; history's review answers are "
            "outcomes only (reported in the output)",
        )
        p.add_argument(
            "--warm-start",
            metavar="LEARNED_JSON",
            help="start from the statistics an earlier replay learned (its learned.json)",
        )
        p.add_argument(
            "--experiments",
            type=_existing,
            metavar="TOML",
            default=None,
            help="run these experiments (as AFTERSALE_EXPERIMENTS for a worker; docs/experiments.md); per-arm "
            "outcomes go to outcomes.json (in process)",
        )
        p.add_argument(
            "--plant",
            action="append",
            default=[],
            metavar="EXPERIMENT:ARM:OUTCOME=LIFT",
            help="with --simulate: plant an effect of an arm (outcome wismo or review; e.g. "
            "delay-warning-holdout:held_out:wismo=0.2) for the report to find again; repeatable",
        )
        if name == "replay":
            p.add_argument("--file-order", action="store_true", help="feed a JSONL log in file order, not event time")
            p.add_argument("--kafka", action="store_true", help="through Kafka and a Faust worker, in lockstep (slow)")
            p.add_argument(
                "--app-id",
                default=None,
                help="with --kafka: use this app's running worker (--clock event, "
                "empty topics) instead of starting one",
            )
        else:
            p.add_argument(
                "--baseline-days", type=NON_NEGATIVE, default=7, help="review request baseline: N days after delivery"
            )
            p.add_argument(
                "--refund-late-days",
                type=NON_NEGATIVE_FLOAT,
                default=7.0,
                help="a return's refund is late when it comes more than this long after receipt (data without "
                "the simulator's record of each refund)",
            )
            p.add_argument(
                "--from-replay",
                type=_existing,
                default=None,
                help="use the outputs of an earlier `aftersale replay --out DIR`",
            )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "broker", help="start | stop | resolve the local Kafka broker (`aftersale broker start --help`)", add_help=False
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help="start, stop or resolve, and their options")
    p.set_defaults(func=lambda a: __import__("deploy.broker", fromlist=["main"]).main(a.rest, prog="aftersale broker"))
    return parser


class _DefaultsRawEpilog(_Defaults, argparse.RawDescriptionHelpFormatter):
    """Defaults in the options' help, the epilog's lines kept as written."""


def _benchmark_list() -> str:
    from .tools import bench

    return "benchmarks:\n" + "\n".join(f"  {b.name:<10} {b.doc}" for b in bench.BENCHMARKS.values())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("AFTERSALE_LOGLEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if getattr(args, "needs_broker", False) or _needs_external_broker(args):
            from .tools.reach import require_broker

            require_broker(Settings.from_env())
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _needs_external_broker(args) -> bool:
    """Commands that start their own broker unless KAFKA_BOOTSTRAP_SERVERS names one: check that one."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return args.command == "simulate" and not args.out  # produces to the default address
    if args.command in ("demo", "simulate"):
        return not getattr(args, "out", None)
    if args.command == "replay":
        return args.kafka
    if args.command == "bench":
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
