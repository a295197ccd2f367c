"""Fault tests on a real broker: SIGKILLed workers, a restarted broker, floods of malformed input.

Reduced size by default (the whole directory in a few minutes on a 2-core machine); full size with
`pytest tests/faults --full-faults` (the option is known when tests/faults is named on the command
line) or AFTERSALE_FULL_FAULTS=1 (works from anywhere, e.g. plain `make test`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--full-faults",
        action="store_true",
        default=False,
        help="run tests/faults at full size (200k events and 10 SIGKILLs, 100k malformed messages)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: fault-injection tests on a real Kafka broker (tests/faults)")


@dataclass(frozen=True)
class FaultSize:
    full: bool
    kill_orders: int  # orders of the stream the SIGKILL test feeds (~9.4 events per order)
    kills: int
    wipe_on: tuple[int, ...]  # kills after which the data dir is wiped (recovery from the changelog)
    broker_orders: int
    bad: int  # malformed messages
    good_orders: int  # good traffic they are mixed into
    feed_rate: float  # events/s the stream is produced at
    timeout: float  # seconds a worker may take to drain everything at the end


REDUCED = FaultSize(
    full=False,
    kill_orders=1070,
    kills=3,
    wipe_on=(1,),
    broker_orders=350,
    bad=5000,
    good_orders=220,
    feed_rate=1500.0,
    timeout=300.0,
)
FULL = FaultSize(
    full=True,
    kill_orders=21400,
    kills=10,
    wipe_on=(2, 6),
    broker_orders=5000,
    bad=100_000,
    good_orders=2000,
    feed_rate=2000.0,
    timeout=3600.0,
)


@pytest.fixture(scope="session")
def fault_size(request) -> FaultSize:
    try:
        full = bool(request.config.getoption("--full-faults"))
    except ValueError:  # the option is only registered when this directory is named on the command line
        full = False
    full = full or os.environ.get("AFTERSALE_FULL_FAULTS", "") not in ("", "0")
    return FULL if full else REDUCED
