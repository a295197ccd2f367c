"""The benchmarks' registry: a figure, a benchmark, and the decorator that registers one. The
benchmarks (streams/tools/bench.py, benchmarks.py, connectors/bench.py) import this, not each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: str | None = None  # name of the figure this one is compared with
    ratio: float | None = None  # value / baseline value (or the inverse for "lower is better")
    target: str | None = None  # e.g. ">= 100000 events/s"
    met: bool | None = None
    note: str = ""


@dataclass
class Benchmark:
    name: str
    doc: str
    run: Callable[[dict], list[Figure]]  # gets options (e.g. bootstrap servers, sizes)
    needs_broker: bool = False
    tags: set = field(default_factory=set)


BENCHMARKS: dict[str, Benchmark] = {}


def register(name: str, doc: str, needs_broker: bool = False):
    def wrap(fn: Callable[[dict], list[Figure]]):
        BENCHMARKS[name] = Benchmark(name, doc, fn, needs_broker)
        return fn

    return wrap
