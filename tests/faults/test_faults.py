"""Fault tests on a real broker (reduced size by default; `--full-faults` / AFTERSALE_FULL_FAULTS=1):

- a worker SIGKILLed at random points while a stream is processed, restarted each time with the same
  instance id and web port (and once on a wiped data dir: tables from the changelogs only), against an
  uninterrupted run of the same events under another app id;
- the broker stopped hard and restarted on the same data dir and ports in the middle of a stream;
- malformed messages mixed into good traffic.

A Faust agent that consumes several topics interleaves them in no guaranteed order, and a decision
can depend on that order (a scan handled before its order, a review before the delivery command), so
two runs of the same events need not produce the same set of intent ids. The tests assert what must
hold regardless (helpers.check_run: nothing missing, nothing decided twice, duplicates identical, no
dead letters, all input consumed) and report the symmetric difference of the two runs' intent ids.
"""
from __future__ import annotations

import random
import shutil
import time
import uuid
from pathlib import Path

import pytest

from deploy.topics import apply
from streams.benchmarks import GroupLag, WorkerRun, encode_events, simulated
from streams.config import Settings

from .helpers import Feeder, check_run, collect, report

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def new_app(bootstrap: str, tmp_path: Path, name: str) -> Settings:
    settings = Settings(bootstrap_servers=bootstrap, app_id=f"f{name}{uuid.uuid4().hex[:8]}", partitions=4,
                        clock="event", data_dir=tmp_path / name)
    apply(settings)
    return settings


@pytest.fixture
def started(tmp_path):
    """Workers started by a test, all stopped at its end whatever happens."""
    workers: list[WorkerRun] = []

    def start(settings: Settings, name: str) -> WorkerRun:
        w = WorkerRun(settings, settings.data_dir, tmp_path / f"{name}.log", clock="event", loglevel="info",
                      instance_id=name)
        workers.append(w)
        return w.start(wait="health")

    yield start
    for w in workers:
        w.stop()


def drain(settings: Settings, worker: WorkerRun, timeout: float) -> None:
    try:
        GroupLag(settings, settings.app_id).wait_zero(timeout, alive=worker.alive)
    except (TimeoutError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{worker.log_tail(80)}") from None


def test_sigkilled_worker_loses_nothing(kafka_bootstrap, tmp_path, started, fault_size):
    size = fault_size
    events = simulated(size.kill_orders, seed=17, id_prefix="K")
    killed_app = new_app(kafka_bootstrap, tmp_path, "killed")
    steady_app = new_app(kafka_bootstrap, tmp_path, "steady")
    feeder = Feeder(killed_app, [encode_events(killed_app, events), encode_events(steady_app, events)],
                    rate=size.feed_rate)
    steady = started(steady_app, "steady")  # the uninterrupted run, alongside (same events, own app id)
    worker = started(killed_app, "killed")
    feeder.start()
    rng = random.Random(4)
    lag = GroupLag(killed_app, killed_app.app_id)
    kills = []
    for k in range(size.kills):
        # A random point while it works: once it has committed progress since it (re)started, that is
        # after start-up, rebalance and recovery, wait a random 0.5-4 s more.
        base = lag.committed_total()
        deadline = time.monotonic() + 180
        while lag.committed_total() <= base and lag.lag():
            assert time.monotonic() < deadline, f"no progress after restart:\n{worker.log_tail(60)}"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.5, 4.0))
        behind = sum(lag.lag().values())
        worker.kill()
        wiped = k in size.wipe_on
        if wiped:  # a new disk: the tables can only come back from the changelog topics
            shutil.rmtree(killed_app.data_dir, ignore_errors=True)
        kills.append({"after_s": round(time.monotonic() - worker.started_at, 1), "lag": behind, "wiped": wiped,
                      "fed": feeder.sent})
        worker.start(wait="health")
    feeder.wait(size.timeout)
    drain(killed_app, worker, size.timeout)
    drain(steady_app, steady, size.timeout)

    killed, uninterrupted = collect(killed_app), collect(steady_app)
    verdict = check_run(events, killed)
    reference = check_run(events, uninterrupted)
    a, b = killed.intent_ids, uninterrupted.intent_ids
    report("SIGKILL test", {
        "events": len(events), "kills": kills, "killed run": dict(verdict.stats),
        "uninterrupted run": dict(reference.stats),
        "intent ids only in the killed run": len(a - b), "only in the uninterrupted run": len(b - a),
        "symmetric difference": f"{len(a ^ b)} of {len(a | b)} distinct intent ids ({'zero' if not a ^ b else 'NOT zero'})",
        "examples": sorted(a ^ b)[:5],
    })
    assert sum(1 for k in kills if k["lag"] > 0) >= size.kills - 1, f"kills mostly hit an idle worker: {kills}"
    assert not reference.problems and not reference.missing, "uninterrupted run:\n" + "\n".join(
        reference.problems + reference.missing)
    assert not verdict.problems, "killed run:\n" + "\n".join(verdict.problems)
    assert verdict.stats["placed_orders"] == size.kill_orders
    # At least once, with state written only after the outputs it implies are acknowledged
    # (streams/writeback.py): a kill anywhere may duplicate a decision, never lose one.
    assert not verdict.missing, f"{len(verdict.missing)} decisions lost after SIGKILL, e.g. {verdict.missing[:5]}"
