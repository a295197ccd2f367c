"""Replay through Kafka and a real Faust worker, in lockstep, so it decides what the in-process path does.

A Faust agent that consumes several topics interleaves them in no guaranteed order, and the order
stage hands its proposals to the customer stage through a topic. Dumping a whole dataset into the
input topics at once therefore does not fix the order in which a worker sees, say, a review and the
"delivered" command it races with, and two such runs (or such a run and the in-process replay) may
decide differently. So this path is paced: it produces one step (one event, or the events that share
an event time and a topic), flushes, and waits until the worker's consumer group (group id = the app
id) has committed everything on every input topic of the app, `customer-commands` included, before
producing the next step. Committed offsets are read before high watermarks: the worker flushes its
producer before it commits, so once a step's input is committed, the commands it caused are already
counted in the high watermark and must be committed too before the lag reads zero.

Slow by design (each step waits for a commit, see BROKER_COMMIT_INTERVAL below); it is for checking
that the deployed path decides what the fast in-process replay decides, not for bulk backtests.

The worker must run with `--clock event`, on topics that held nothing before (a fresh app id), and
should commit often: Faust reads BROKER_COMMIT_INTERVAL (seconds) from the environment, and every
step waits for about two commits. `start_worker()` starts such a worker.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...config import Settings
from .events import ReplayEvent, normalize, plan

COMMIT_INTERVAL = "0.05"  # seconds, for workers this module starts


@dataclass
class KafkaTarget:
    settings: Settings  # bootstrap servers, app id (= consumer group, topic prefix), partitions
    timeout: float = 60.0  # seconds one step may take before the replay gives up


@dataclass
class KafkaReplayResult:
    intents: list[dict] = field(default_factory=list)
    audit: list[dict] = field(default_factory=list)
    dead_letters: list[dict] = field(default_factory=list)
    steps: int = 0
    duplicates_read: int = 0  # intents read more than once (at least once delivery), dropped


class LagWatch:
    """Consumer-group lag of the worker on the app's input topics (AdminClient)."""

    def __init__(self, settings: Settings):
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import AdminClient

        from ...codec import INPUTS
        from ...security import librdkafka_config

        self.admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **librdkafka_config(settings)})
        existing = self.admin.list_topics(timeout=30).topics
        self.topics = sorted(settings.topic(t) for t in INPUTS if settings.topic(t) in existing)
        self.tps = [TopicPartition(t, p) for t in self.topics for p in range(settings.partitions)]
        self.group = settings.app_id

    def lag(self) -> dict[str, int]:
        """Per topic-partition messages not yet committed by the group (only those with lag)."""
        from confluent_kafka import ConsumerGroupTopicPartitions
        from confluent_kafka.admin import OffsetSpec

        # Committed offsets first, then the high watermarks (see the module doc for why).
        futures = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.group, self.tps)])
        committed = {(tp.topic, tp.partition): tp.offset for tp in futures[self.group].result().topic_partitions}
        ends = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in self.tps})
        out = {}
        for tp, fut in ends.items():
            high = fut.result().offset
            done = committed.get((tp.topic, tp.partition), -1)
            behind = high - max(done, 0)
            if behind > 0:
                out[f"{tp.topic}[{tp.partition}]"] = behind
        return out

    def wait_zero(self, timeout: float, poll: float = 0.01) -> None:
        deadline = time.monotonic() + timeout
        while True:
            lag = self.lag()
            if not lag:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker (group {self.group}) still behind after {timeout:.0f}s: {lag}")
            time.sleep(poll)


def steps_of(events: list[ReplayEvent], tick_ms: int = 0, run_on_ms: int = 0) -> list[tuple[str, object]]:
    """The lockstep steps: ("events", [events]) and ("tick", time), following events.plan.
    Consecutive events with the same event time and topic go together: one partition of one topic
    keeps their order, and the worker's watermark is the same for all of them."""
    steps: list[tuple[str, object]] = []
    for kind, item in plan(events, tick_ms, run_on_ms):
        if kind == "tick":
            steps.append(("tick", item))
            continue
        if steps and steps[-1][0] == "events":
            group = steps[-1][1]
            if group[0].event_time == item.event_time and group[0].topic == item.topic:
                group.append(item)
                continue
        steps.append(("events", [item]))
    return steps


def replay_kafka(
    events: list[ReplayEvent],
    target: KafkaTarget,
    run_on_ms: int = 0,
    tick_ms: int = 0,
    progress: Callable[[int], None] | None = None,
) -> KafkaReplayResult:
    """Produce `events` step by step (message timestamp = event time), waiting for the worker to
    catch up after each. A tick (see events.plan) is a tick command to every order-commands
    partition, a wait, then one to every customer-commands partition and a wait: what
    InProcessEngine.tick does. Then read back intents, audit and dead letters."""
    from ...producer import make_codec, make_producer

    settings = target.settings
    codec = make_codec(settings)
    producer = make_producer(settings, **{"linger.ms": 0})
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    def flush() -> None:
        if producer.flush(30) or errors:
            raise RuntimeError(f"produce failed: {errors[:3]}")

    watch = LagWatch(settings)
    watch.wait_zero(target.timeout)  # the worker is up to date before we start (a fresh app id)
    result = KafkaReplayResult()
    done = 0
    for kind, item in steps_of(events, tick_ms, run_on_ms):
        if kind == "events":
            for e in item:
                value = codec.encode(e.topic, normalize(e.topic, e.record))  # in the Avro shape, defaults filled
                producer.produce(
                    settings.topic(e.topic), value, e.key.encode(), timestamp=e.event_time, on_delivery=on_delivery
                )
            flush()
            watch.wait_zero(target.timeout)
            result.steps += 1
            done += len(item)
            if progress is not None:
                progress(done)
            continue
        now = item
        for suffix, extra in (
            ("order-commands", {"order_id": None}),
            ("customer-commands", {"customer_id": "", "order_id": ""}),
        ):
            for p in range(settings.partitions):
                value = codec.encode(
                    suffix,
                    {"command_id": f"tick:{p}:{now}", "event_time": now, "kind": "tick", "due": {"now": now}, **extra},
                )
                producer.produce(
                    settings.topic(suffix), value, None, partition=p, timestamp=now, on_delivery=on_delivery
                )
            flush()
            watch.wait_zero(target.timeout)
        result.steps += 1
    _read_back(settings, codec, result, target.timeout)
    return result


def _read_back(settings: Settings, codec, result: KafkaReplayResult, timeout: float) -> None:
    """Everything on the output topics (fresh for this app id), de-duplicated by id."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    from ..watch import OutputReader

    admin = LagWatch(settings).admin
    names = {
        "intents": settings.topic("intents"),
        "decision-audit": settings.topic("decision-audit"),
        "dead-letters": settings.topic("dead-letters"),
    }
    tps = [TopicPartition(t, p) for t in names.values() for p in range(settings.partitions)]
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps})
    starts = admin.list_offsets({tp: OffsetSpec.earliest() for tp in tps})
    expected = sum(ends[tp].result().offset - starts[tp].result().offset for tp in tps)
    reader = OutputReader(settings, codec, list(names))
    try:
        got = reader.collect(lambda seen: len(seen) >= expected, timeout=timeout)
    finally:
        reader.close()
    if len(got) < expected:
        raise TimeoutError(f"read {len(got)} of {expected} output records")
    from .output import audit_record, intent_record

    seen_intents: set[str] = set()
    for topic, _key, record in got:
        if topic == "intents":
            if record["intent_id"] in seen_intents:
                result.duplicates_read += 1
                continue
            seen_intents.add(record["intent_id"])
            result.intents.append(intent_record(record))
        elif topic == "decision-audit":
            result.audit.append(audit_record(record))
        else:
            result.dead_letters.append({k: v for k, v in record.items() if k in ("topic", "reason", "error")})


class Worker:
    """An `aftersale worker --clock event` subprocess for a replay (fresh app id, own data dir)."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path | None = None,
        commit_interval: str = COMMIT_INTERVAL,
        env: dict | None = None,
    ):
        self.settings = settings
        self.env = env or {}  # more worker settings (AFTERSALE_* variables)
        self.workdir = Path(tempfile.mkdtemp(prefix="aftersale-replay-"))
        self.log_path = log_path or self.workdir / "worker.log"
        self.commit_interval = commit_interval
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.token = settings.web_token or secrets.token_urlsafe(16)  # for its HTTP views (streams/webauth.py)

    def metrics(self) -> str:
        """The worker's Prometheus text (/metrics, with its token)."""
        from ..worker_process import http_get

        return http_get(f"http://127.0.0.1:{self.port}/metrics", timeout=5, token=self.token)[1].decode()

    def start(self, timeout: float = 90.0) -> "Worker":
        import urllib.request

        from deploy.broker import die_with_parent_preexec, free_port

        self.port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "AFTERSALE_APP_ID": self.settings.app_id,
            "AFTERSALE_PARTITIONS": str(self.settings.partitions),
            "BROKER_COMMIT_INTERVAL": self.commit_interval,
            "AFTERSALE_WEB_TOKEN": self.token,
            **self.env,
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "--clock",
                "event",
                "--data-dir",
                str(self.workdir / "data"),
                "--web-port",
                str(self.port),
                "--loglevel",
                "warning",
            ],
            cwd=Path(__file__).resolve().parents[3],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_preexec(os.getpid()),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"worker did not come up; log: {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_assigned(settings: Settings, timeout: float = 60.0) -> None:
    """Until the worker's consumer group is stable with partitions assigned (before the first step)."""
    from confluent_kafka.admin import AdminClient

    from ...security import librdkafka_config

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **librdkafka_config(settings)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            desc = admin.describe_consumer_groups([settings.app_id])[settings.app_id].result()
            state = str(getattr(desc.state, "name", desc.state)).upper()
            if state.endswith("STABLE") and any(m.assignment and m.assignment.topic_partitions for m in desc.members):
                return
        except Exception:  # the group does not exist yet
            pass
        time.sleep(0.3)
    raise TimeoutError(f"consumer group {settings.app_id} not stable after {timeout:.0f}s")
