"""`aftersale demo`: a local broker, the topics, a worker and simulated shop traffic, shown live.

Inputs (>>) are printed as they are produced, decisions (<<) as the worker's outputs are read back,
so the two interleave as they happen; each line starts with its event time (UTC), decisions also
show the customer, the channel and when the message may be sent. The feed is paced at `--rate`,
with hourly event-time ticks (what a live worker's timer does on the wall clock). Everything the
libraries log goes to the log folder, not to the screen; the working folder (broker and worker
data) is removed at the end.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..core.model import RETURN_TYPES
from ..metrics import reason_label
from .worker_process import REPO
from ..config import Settings

HOUR = 3_600_000
SYNC_MS = 6 * HOUR  # the feed waits for the worker every 6 hours of event time (post-delivery: >= 10 h)
DIM, BOLD, GREEN, YELLOW, RED, RESET = "\033[2m", "\033[1m", "\033[32m", "\033[33m", "\033[31m", "\033[0m"
SHORT = {"orders": "order", "carrier-scans": "scan", "engagement": "engagement", "support": "support"}
SCAN_NEWS = ("delivered", "exception", "attempt_failed", "returned_to_sender")


EXPERIMENTS_FILE = REPO / "deploy" / "experiments.toml"


def log_dir() -> Path:
    """Where the demo's logs go (the last run's only): next to the broker jars' cache."""
    from deploy.broker import default_cache_dir

    return default_cache_dir() / "demo-logs"


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%m-%d %H:%M")


def _ms(value) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def shown_by_default(topic: str, record: dict) -> bool:
    """Inputs worth a line without --verbose: orders placed, deliveries, carrier problems, support,
    and the steps of returns."""
    return (
        topic == "orders"
        and (record["type"] in ("placed", "cancelled", "refunded") or record["type"] in RETURN_TYPES)
        or topic == "carrier-scans"
        and record["status"] in SCAN_NEWS
        or topic == "support"
        and record["type"] == "ticket_opened"
    )


@dataclass(order=True)
class Line:
    at: int  # event time (inputs) or decision time (outputs), epoch ms
    seq: int  # order of arrival, for lines of the same minute
    text: str = field(compare=False)
    color: str = field(compare=False, default="")


def input_line(topic: str, r: dict, seq: int, arrives_at: int | None = None) -> Line:
    what = r.get("type") or r.get("status")
    if topic == "carrier-scans" and r.get("sub_status"):
        what = f"{what}/{r['sub_status']}"
    at = _ms(r["event_time"])
    text = f"{_ts(at)}  >> {SHORT.get(topic, topic):<10} {what:<27} {r.get('order_id') or '':<8} {r['customer_id']}"
    if arrives_at is not None and arrives_at - at >= HOUR:  # a feed catching up: out of order on purpose
        text += f"  (arrives {(arrives_at - at) / HOUR:.0f} h late)"
    return Line(at, seq, text, DIM)


def output_line(topic: str, r: dict, seq: int) -> Line:
    if topic == "intents":
        at = _ms(r["decided_at"])
        text = (
            f"{_ts(at)}  << intent     {r['intent_type']:<27} {r['order_id'] or '':<8} {r['customer_id']:<7} "
            f"{r['channel']:<5} send {_ts(_ms(r['send_at']))}  {r['priority']:<6} why={','.join(r['reason_codes'])}"
        )
        arms = [f"{e['experiment']}:{e['arm']}" for e in r.get("experiments") or ()]
        if arms:
            text += f" arms={','.join(arms)}"
        return Line(at, seq, text, GREEN)
    if topic == "decision-audit":
        at = _ms(r["decided_at"])
        text = (
            f"{_ts(at)}  << {r['decision']:<10} {r['intent_type']:<27} {r['order_id'] or '':<8} {r['customer_id']:<7} "
            f"{r['channel'] or '-':<5} not sent         why={','.join(r['reasons'])}"
        )
        return Line(at, seq, text, YELLOW)
    text = (
        f"{'':11}  << dead letter from {r['topic']}[{r['partition']}]@{r['offset']}: {r['reason']}: {r['error'][:70]}"
    )
    return Line(0, seq, text, RED)


class Screen:
    """Prints lines from two threads, one line at a time, in colour on a terminal."""

    def __init__(self, out: TextIO):
        self.out = out
        self.lock = threading.Lock()
        self.color = out.isatty()

    def say(self, text: str = "", color: str = "") -> None:
        with self.lock:
            print(f"{color}{text}{RESET}" if color and self.color else text, file=self.out, flush=True)

    def line(self, line: Line) -> None:
        self.say(line.text, line.color)


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the worker was not ready within {timeout:.0f} s")


class _StderrToLog:
    """Points file descriptor 2 at the log file: librdkafka, Python warnings and logging write there."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.log = open(self.path, "ab")
        os.dup2(self.log.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.log.close()


def run_demo(
    orders: int = 150, rate: float = 40.0, bad: int = 5, seed: int = 7, verbose: bool = False, out: TextIO | None = None
) -> int:
    from deploy.broker import BrokerStartError, external_bootstrap

    screen = Screen(out or sys.stdout)
    logs = log_dir()
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    workdir = Path(tempfile.mkdtemp(prefix="aftersale-demo-"))
    try:
        with _StderrToLog(logs / "demo.log"):
            return _run(screen, logs, workdir, external_bootstrap(), orders, rate, bad, seed, verbose)
    except (BrokerStartError, RuntimeError, TimeoutError) as exc:
        first = str(exc).splitlines()[0]
        screen.say(f"demo failed: {first} (logs: {logs})", RED)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    screen: Screen,
    logs: Path,
    workdir: Path,
    bootstrap: str | None,
    orders: int,
    rate: float,
    bad: int,
    seed: int,
    verbose: bool,
) -> int:
    from deploy.broker import LocalBroker, die_with_parent_preexec, free_port
    from deploy.topics import apply

    from ..producer import EventProducer, make_codec, produce_events
    from .replay.lockstep import LagWatch
    from .simulate import generate, malformed
    from .watch import OutputReader

    events = generate(orders=orders, seed=seed)
    hidden = 0 if verbose else sum(not shown_by_default(e.topic, e.record) for e in events)
    screen.say(
        f"aftersale demo: {orders} simulated orders, {len(events):,} events fed at {rate:g}/s "
        f"(about {len(events) / rate:.0f} s), then two weeks of event time pass",
        BOLD,
    )
    broker = None
    if bootstrap is None:
        broker = LocalBroker(data_dir=workdir / "broker", log_file=logs / "broker.log").start()
        bootstrap = broker.bootstrap_servers
        screen.say(f"  broker    local Apache Kafka (KRaft) at {bootstrap}, up in {broker.start_seconds:.1f} s")
    else:
        screen.say(f"  broker    {bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
    app_id = "aftersale" if broker else f"aftersale-demo-{time.time_ns() % 10**10}"
    settings = Settings.from_env(
        bootstrap_servers=bootstrap, app_id=app_id, clock="event", data_dir=workdir / "worker", web_port=free_port()
    )
    created = apply(settings)
    screen.say(f"  topics    {len(created)} created, prefix {app_id}.")

    # The worker commits often, so the demo can see when it has caught up (committed offsets).
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AFTERSALE_APP_ID": app_id,
        "AFTERSALE_PARTITIONS": str(settings.partitions),
        "BROKER_COMMIT_INTERVAL": "0.05",
        "AFTERSALE_WEB_TOKEN": settings.web_token or secrets.token_urlsafe(12),  # streams/webauth.py
        "AFTERSALE_EXPERIMENTS": str(EXPERIMENTS_FILE),  # docs/experiments.md
    }
    worker_log = open(logs / "worker.log", "wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "worker",
            "--clock",
            "event",
            "--data-dir",
            str(settings.data_dir),
            "--web-port",
            str(settings.web_port),
        ],
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent_preexec(os.getpid()),
    )
    stats = {"in": Counter(), "out": Counter(), "why": Counter(), "arms": Counter(), "shown": 0}
    story: dict[str, list[Line]] = {}
    seq = iter(range(10**9))
    stop = threading.Event()
    reader = OutputReader(settings, make_codec(settings), ["intents", "decision-audit", "dead-letters"])

    def watch() -> None:
        while not stop.is_set():
            for topic, _key, record in reader.poll(0.2):
                line = output_line(topic, record, next(seq))
                screen.line(line)
                stats["out"][f"{topic}: {record.get('intent_type') or record.get('reason')}"] += 1
                if topic == "decision-audit":
                    stats["why"][reason_label(record["reasons"][0])] += 1
                    if record.get("experiment"):
                        stats["arms"][(record["experiment"], record["arm"], "held out")] += 1
                for e in record.get("experiments") or () if topic == "intents" else ():
                    stats["arms"][(e["experiment"], e["arm"], "sent")] += 1
                if record.get("order_id") and topic != "dead-letters":
                    story.setdefault(record["order_id"], []).append(line)

    try:
        _wait_http(settings.web_port, worker)
        screen.say(
            f"  worker    ready; ops page (live while the demo runs): http://127.0.0.1:{settings.web_port}/ops "
            f"(any user name, password {env['AFTERSALE_WEB_TOKEN']})"
        )
        screen.say(f"  logs      {logs} (broker.log, worker.log, demo.log)")
        screen.say(
            "  showing   every decision, and "
            + (
                "every input"
                if verbose
                else f"orders placed, deliveries, carrier problems and support "
                f"tickets: {hidden:,} of {len(events):,} inputs hidden (--verbose shows them)"
            )
        )
        screen.say()
        screen.say("event time   >> input      what                        order    customer channel  send at", BOLD)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def on_event(e) -> None:
            stats["in"][e.topic] += 1
            line = input_line(e.topic, e.record, next(seq), e.arrives_at)
            if e.record.get("order_id"):
                story.setdefault(e.record["order_id"], []).append(line)
            if verbose or shown_by_default(e.topic, e.record):
                stats["shown"] += 1
                screen.line(line)

        # In event time, each stage's clock is its own partitions' latest event or tick. A worker
        # a second behind the feed is hours behind in event time (the demo runs weeks in a minute),
        # so the customer stage's clock, moved on by engagement events and ticks, could pass a
        # delivery the order stage has not handed over yet, and fire its post-delivery messages
        # first. Every SYNC of event time the feed waits until the worker has taken in everything.
        lag = LagWatch(settings)

        def sync(at: int) -> None:
            if at % SYNC_MS == 0:
                lag.wait_zero(timeout=120)

        produce_events(settings, events, rate=rate, on_event=on_event, tick_ms=HOUR, before_tick=sync)
        if bad:
            feed = EventProducer(settings)
            for topic, key, value in malformed(random.Random(seed), bad):
                feed.send(topic, key, value)
            feed.flush()
            del feed  # release its connections before the broker stops
            stats["in"]["malformed"] += bad
        _wait_until_quiet(stats)
        # Then two more weeks pass, a day at a time: the post-delivery window of the last orders.
        # (Only once the worker has caught up: a tick overtaking the events would let time jump.)
        screen.say("-- two more weeks pass (hourly event-time ticks, a day at a time) --", BOLD)
        ticks = EventProducer(settings)
        last = max(e.record["event_time"] for e in events) // HOUR * HOUR
        for day in range(14):
            for hour in range(24):
                ticks.tick(last + (day * 24 + hour + 1) * HOUR)
            ticks.flush()
            lag.wait_zero(timeout=120)
        del ticks
        _wait_until_quiet(stats)
        stop.set()
        watcher.join(timeout=5)
        _summary(screen, stats, story, len(events), verbose)
        return 0
    finally:
        stop.set()
        reader.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        if broker is not None:
            broker.stop()


def _wait_until_quiet(stats: dict, quiet: float = 4.0, limit: float = 120.0) -> None:
    """Until nothing new has come out of the worker for `quiet` seconds."""
    quiet_since, last = time.monotonic(), sum(stats["out"].values())
    deadline = time.monotonic() + limit
    while time.monotonic() - quiet_since < quiet and time.monotonic() < deadline:
        time.sleep(0.25)
        total = sum(stats["out"].values())
        if total != last:
            last, quiet_since = total, time.monotonic()


def pick_story(story: dict[str, list[Line]]) -> str | None:
    """An order that had a rough ride and still arrived: the most to show in one order's life."""

    def score(lines: list[Line]) -> tuple:
        text = " ".join(line.text for line in lines)
        return (
            "exception" in text or "attempt_failed" in text,
            "scan       delivered" in text,
            "<< held" in text,
            len(lines),
        )

    return max(sorted(story), key=lambda order: score(story[order]), default=None)


def pick_return(story: dict[str, list[Line]]) -> str | None:
    """A returned order whose return went furthest: request, label, the parcel back, the refund."""

    def score(lines: list[Line]) -> tuple:
        text = " ".join(line.text for line in lines)
        return ("refund_issued" in text, "refund_delayed" in text, "return_received" in text, len(lines))

    returned = [o for o, lines in story.items() if any("return_requested" in line.text for line in lines)]
    return max(sorted(returned), key=lambda order: score(story[order]), default=None)


def _summary(screen: Screen, stats: dict, story: dict[str, list[Line]], fed: int, verbose: bool) -> None:
    screen.say()
    screen.say("summary", BOLD)
    screen.say(
        f"  inputs fed ({fed:,}, {stats['shown']:,} shown{'' if verbose else '; --verbose shows all'}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats["in"].items()))
    )
    for key, n in sorted(stats["out"].items()):
        screen.say(f"  {n:6d}  {key}")
    if stats["why"]:
        screen.say("  not sent, by first reason: " + ", ".join(f"{k} {v}" for k, v in stats["why"].most_common()))
    if stats["arms"]:
        screen.say(f"  experiments ({EXPERIMENTS_FILE.relative_to(REPO)}; outcomes per arm on the ops page):")
        for experiment in sorted({e for e, _, _ in stats["arms"]}):
            arms = sorted((a, what, n) for (e, a, what), n in stats["arms"].items() if e == experiment)
            screen.say(f"    {experiment}: " + ", ".join(f"{a} {n} {what}" for a, what, n in arms))
    order = pick_story(story)
    if order:
        screen.say()
        screen.say(f"the life of order {order}, in event time (every input, every decision):", BOLD)
        for line in sorted(story[order]):
            screen.line(line)
    returned = pick_return(story)
    if returned and returned != order:
        screen.say()
        screen.say(f"a return: order {returned}, in event time (every input, every decision):", BOLD)
        for line in sorted(story[returned]):
            screen.line(line)
