"""Commands against a broker that is not there, `aftersale broker start`'s address, and `--rate`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from deploy.broker import free_port

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _aftersale(*argv: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


NO_BROKER = [
    ["topics"],
    ["simulate", "--orders", "3"],
    ["worker", "--data-dir", "{tmp}"],
    ["ingest"],
    ["sender"],
    ["erase", "C-1"],
    ["demo"],
    ["replay", "--simulate", "3", "--kafka", "--out", "{tmp}/r"],
    ["bench", "--only", "e2e"],
]


def test_every_command_without_a_broker_fails_fast_with_one_line(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": address}
    started = time.monotonic()
    runs = [
        (
            argv,
            subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *[a.format(tmp=tmp_path) for a in argv]],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for argv in NO_BROKER
    ]
    for argv, proc in runs:
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
        assert proc.returncode == 1, (argv, out, err)
        assert elapsed < 10 + 3 * len(NO_BROKER), (argv, elapsed)  # all at once on 2 shared cores
        lines = (out + err).strip().splitlines()
        assert len(lines) == 1, (argv, out + err)
        assert address in lines[0] and "aftersale broker start" in lines[0], lines[0]


def test_one_command_without_a_broker_takes_about_the_connect_timeout():
    started = time.monotonic()
    run = _aftersale(
        "topics", env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}", "AFTERSALE_CONNECT_TIMEOUT": "2"}
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    assert "within 2 s" in run.stderr
    assert elapsed < 6, elapsed


@pytest.mark.integration
def test_broker_start_says_how_to_reach_it_and_topics_then_does(tmp_path):
    port = free_port()
    data = tmp_path / "kafka"
    start = _aftersale("broker", "start", "--data-dir", str(data), "--port", str(port), env={}, timeout=120)
    try:
        assert start.returncode == 0, start.stderr
        assert start.stdout.strip() == f"127.0.0.1:{port}"
        assert f"export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}" in start.stderr
        assert f"aftersale broker stop --data-dir {data}" in start.stderr
        topics = _aftersale(
            "topics",
            env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "AFTERSALE_APP_ID": f"cli-{uuid.uuid4().hex[:6]}"},
        )
        assert topics.returncode == 0, topics.stderr
        assert topics.stdout.count("created") >= 12
    finally:
        stop = _aftersale("broker", "stop", "--data-dir", str(data), env={}, timeout=60)
    assert stop.returncode == 0, stop.stderr


@pytest.mark.integration
def test_simulate_rate_paces_the_feed(kafka_bootstrap):
    """`--rate` holds for real: the producer's poll() returns after the first delivery report."""
    from deploy.topics import apply
    from streams.config import Settings
    from streams.producer import produce_events
    from streams.tools.simulate import generate

    settings = Settings(bootstrap_servers=kafka_bootstrap, app_id=f"rate-{uuid.uuid4().hex[:8]}")
    apply(settings)
    events = generate(orders=4, seed=3)
    rate = 25.0
    started = time.monotonic()
    assert produce_events(settings, events, rate=rate) == len(events)
    elapsed = time.monotonic() - started
    expected = (len(events) - 1) / rate
    assert expected > 1
    assert expected * 0.95 <= elapsed <= expected + 5, (len(events), elapsed)
