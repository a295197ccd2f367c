"""`aftersale demo`: a local broker, the topics, a worker and simulated shop traffic, shown live."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from .config import Settings

HOUR = 3_600_000
DIM, BOLD, GREEN, YELLOW, RED, RESET = "\033[2m", "\033[1m", "\033[32m", "\033[33m", "\033[31m", "\033[0m"


def _paint(text: str, color: str) -> str:
    return f"{color}{text}{RESET}" if sys.stdout.isatty() else text


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%m-%d %H:%M")


def _describe_input(topic: str, r: dict) -> str:
    what = r.get("type") or r.get("status")
    if topic == "carrier-scans" and r.get("sub_status"):
        what = f"{what}/{r['sub_status']}"
    subject = r.get("order_id") or r.get("customer_id")
    return f"{_ts(_ms(r['event_time']))}  {topic:<13} {what:<22} {subject}"


def _ms(value) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def _describe_output(topic: str, r: dict) -> str:
    if topic == "intents":
        return _paint(f"INTENT   {r['intent_type']:<20} {r['channel']:<5} {r['priority']:<6} to {r['customer_id']} "
                      f"order {r['order_id']}  why={','.join(r['reason_codes'])}", GREEN)
    if topic == "decision-audit":
        return _paint(f"NOT SENT {r['intent_type']:<20} {r['decision']:<8} order {r['order_id']}  why={','.join(r['reasons'])}",
                      YELLOW)
    return _paint(f"DEAD LETTER from {r['topic']}[{r['partition']}]@{r['offset']}: {r['reason']}: {r['error'][:80]}", RED)


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("worker did not answer on its web port in time")


def run_demo(orders: int = 150, rate: float = 40.0, bad: int = 5, seed: int = 7, verbose: bool = False) -> int:
    from deploy.broker import LocalBroker, external_bootstrap, free_port
    from deploy.topics import apply

    from .producer import EventProducer, make_codec, produce_events
    from .simulate import generate, malformed
    from .watch import OutputReader

    workdir = Path(tempfile.mkdtemp(prefix="aftersale-demo-"))
    broker = None
    bootstrap = external_bootstrap()
    if bootstrap is None:
        print(_paint("starting a local Apache Kafka broker (KRaft, 127.0.0.1)...", BOLD))
        broker = LocalBroker(data_dir=workdir / "broker").start()
        bootstrap = broker.bootstrap_servers
        print(f"  broker up at {bootstrap} in {broker.start_seconds:.1f}s (log: {broker.log_file})")
    app_id = "aftersale" if broker else f"aftersale-demo-{int(time.time())}"
    settings = Settings.from_env(bootstrap_servers=bootstrap, app_id=app_id, clock="event",
                                 data_dir=workdir / "worker", web_port=free_port())
    created = apply(settings)
    print(f"  topics ready ({len(created)} created, prefix {app_id}.)")

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "AFTERSALE_APP_ID": app_id,
           "AFTERSALE_PARTITIONS": str(settings.partitions)}
    worker_log = open(workdir / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--clock", "event", "--data-dir", str(settings.data_dir),
         "--web-port", str(settings.web_port)], env=env, stdout=worker_log, stderr=subprocess.STDOUT)
    stats = {"in": Counter(), "out": Counter(), "why": Counter()}
    timelines: dict[str, list[str]] = {}
    stop = threading.Event()
    reader = OutputReader(settings, make_codec(settings), ["intents", "decision-audit", "dead-letters"])

    def watch() -> None:
        while not stop.is_set():
            for topic, _key, record in reader.poll(0.3):
                line = _describe_output(topic, record)
                print("  << " + line, flush=True)
                key = record.get("intent_type") or record.get("reason")
                stats["out"][f"{topic}: {key}"] += 1
                if topic == "decision-audit":
                    stats["why"][record["reasons"][0]] += 1
                if record.get("order_id"):
                    timelines.setdefault(record["order_id"], []).append("   " + line)

    try:
        print(_paint(f"starting a worker (log: {workdir / 'worker.log'}, metrics: http://127.0.0.1:{settings.web_port}/metrics)", BOLD))
        _wait_http(settings.web_port, worker)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        events = generate(orders=orders, seed=seed)
        print(_paint(f"feeding {len(events)} simulated events of {orders} orders at {rate:.0f}/s "
                     f"(>> in, << out; event times in UTC)", BOLD))

        def on_event(e) -> None:
            stats["in"][e.topic] += 1
            line = _describe_input(e.topic, e.record)
            timelines.setdefault(e.record.get("order_id") or "", []).append(_paint("   >> " + line, DIM))
            if verbose or e.topic in ("orders",) and e.record["type"] == "placed" or e.record.get("status") in (
                    "exception", "attempt_failed", "returned_to_sender") or e.topic == "support":
                print(_paint("  >> " + line, DIM), flush=True)

        # Hourly event-time ticks fire what is planned for later (care tips, review requests,
        # reminders), as a live worker's timer would on the wall clock.
        produce_events(settings, events, rate=rate, on_event=on_event, tick_ms=HOUR)
        if bad:
            out = EventProducer(settings)
            for topic, key, value in malformed(random.Random(seed), bad):
                out.send(topic, key, value)
            out.flush()
            del out  # release its connections before the broker stops
            stats["in"]["malformed"] += bad
        _wait_until_quiet(stats)
        # Then two more weeks pass, a day at a time: the post-delivery window of the last orders.
        # (Only once the worker has caught up: a tick overtaking the events would let time jump.)
        print(_paint("two more weeks pass (event-time ticks)...", BOLD), flush=True)
        out = EventProducer(settings)
        last = max(e.record["event_time"] for e in events) // HOUR * HOUR
        for day in range(14):
            for hour in range(24):
                out.tick(last + (day * 24 + hour + 1) * HOUR)
            out.flush()
            time.sleep(0.3)
        del out
        _wait_until_quiet(stats)
        stop.set()
        watcher.join(timeout=5)
        _summary(stats, timelines)
        return 0
    finally:
        stop.set()
        reader.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
        if broker is not None:
            broker.stop()


def _wait_until_quiet(stats: dict, quiet: float = 5.0, limit: float = 120.0) -> None:
    """Until nothing new has come out of the worker for `quiet` seconds."""
    quiet_since, last = time.monotonic(), sum(stats["out"].values())
    deadline = time.monotonic() + limit
    while time.monotonic() - quiet_since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        total = sum(stats["out"].values())
        if total != last:
            last, quiet_since = total, time.monotonic()


def _summary(stats: dict, timelines: dict[str, list[str]]) -> None:
    print()
    print(_paint("summary", BOLD))
    print("  events in:       " + ", ".join(f"{k} {v}" for k, v in sorted(stats["in"].items())))
    for key, n in sorted(stats["out"].items()):
        print(f"  {n:6d}  {key}")
    if stats["why"]:
        print("  not sent, by first reason: " + ", ".join(f"{k} {v}" for k, v in stats["why"].most_common()))
    # One order that had a rough ride, to show the whole path of a single order.
    rough = [o for o, lines in timelines.items() if o and any("exception" in l or "attempt_failed" in l for l in lines)]
    if rough:
        order = sorted(rough)[0]
        print(_paint(f"\n  the life of order {order}:", BOLD))
        for line in timelines[order]:
            print(line)
