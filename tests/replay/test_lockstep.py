"""The Kafka path (a real broker and `aftersale worker --clock event`, fed in lockstep) decides what
the in-process replay decides, for the same input and partition count."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from deploy.topics import apply
from streams.config import Settings, load_experiments
from streams.core.policy import DEFAULT_POLICY
from streams.tools.replay import load_simulated, run_events
from streams.tools.replay.lockstep import KafkaTarget, Worker, replay_kafka, steps_of, wait_assigned
from streams.tools.replay.output import intent_record, sorted_audit, sorted_intents, audit_record
from streams.tools.worker_process import REPO

pytestmark = pytest.mark.integration

DAY = 86_400_000
TICK = 8 * 3_600_000  # time ticks every 8 hours of event time (each tick is two lockstep steps)
EXPERIMENTS = REPO / "deploy" / "experiments.toml"


def _comparable(records: list[dict]) -> list[dict]:
    return sorted_intents([{**r, "decided_at": 0} for r in records])


@pytest.mark.parametrize("fire_limit", [None, 2], ids=["default", "fire-limit-2"])
def test_kafka_lockstep_replay_decides_what_the_in_process_replay_decides(kafka_bootstrap, tmp_path, fire_limit):
    """With a fire limit of 2, a worker takes every burst of due timers in slices, each made durable
    before the next: the decisions must still be the in-process replay's, which fires all at once.
    Both run deploy/experiments.toml: holdouts, send-time holds and the bandit's partition counts
    must decide the same through Kafka as in process."""
    started = time.monotonic()
    events, report = load_simulated(40, seed=3, id_prefix="L")
    assert report.events == len(events) and not report.rejected
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"rp{uuid.uuid4().hex[:10]}",
        partitions=4,
        clock="event",
        data_dir=tmp_path / "worker",
    )
    apply(settings)
    env = {"AFTERSALE_FIRE_LIMIT": str(fire_limit)} if fire_limit else {}
    env["AFTERSALE_EXPERIMENTS"] = str(EXPERIMENTS)
    worker = Worker(settings, log_path=tmp_path / "worker.log", env=env).start()
    try:
        wait_assigned(settings)
        got = replay_kafka(events, KafkaTarget(settings, timeout=30), run_on_ms=10 * DAY, tick_ms=TICK)
        metrics = worker.metrics()
    finally:
        worker.stop()
    elapsed = time.monotonic() - started

    config = replace(DEFAULT_POLICY, experiments=load_experiments(EXPERIMENTS))
    local = run_events(events, partitions=4, run_on_ms=10 * DAY, tick_ms=TICK, config=config)
    want_intents = [intent_record(i) for i in local.intents]
    assert not local.rejected and not got.dead_letters
    assert got.steps == len(steps_of(events, TICK, 10 * DAY))
    # The same intents (ids and content; decided_at is the event time on both paths, but a worker
    # is free to stamp it differently, so it is left out), the same decisions not to send.
    assert {i["intent_id"] for i in got.intents} == {i["intent_id"] for i in want_intents}
    assert _comparable(got.intents) == _comparable(want_intents)
    assert sorted_audit(got.audit) == sorted_audit([audit_record(a) for a in local.audit])
    assert len(want_intents) > 100  # a real run: ~40 orders' worth of messages
    assert sum(1 for i in want_intents if i["experiments"]) > 50  # and the experiments ran
    assert elapsed < 90, f"lockstep replay took {elapsed:.0f}s"
    slices = _metric(metrics, "aftersale_fire_slices_total")
    assert slices > 20 if fire_limit else slices == 0  # the limit was hit (often), or never


def _metric(page: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(name + "{"))
