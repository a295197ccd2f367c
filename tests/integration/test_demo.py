"""`aftersale demo` run as a user runs it (a subprocess, on the session's broker): what it shows is
the truth. No post-delivery message of an order comes out before that order's delivery, the order's
story is in time order, library noise stays out of the view, and it leaves no temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.core.post_delivery import TYPES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
POST_DELIVERY = (*TYPES, "replenishment")
LINE = re.compile(
    r"^(?P<at>\d\d-\d\d \d\d:\d\d)  (?P<dir>>>|<<) (?P<kind>\S+)\s+(?P<what>\S+)\s+(?:(?P<order>O\d+(?:-X\d+)?)\s+)?"
    r"(?P<customer>C\d+)(?:\s+(?P<channel>[a-z-]+)\s+(?:send (?P<send>\d\d-\d\d \d\d:\d\d))?)?"
    r"(?:.*\(arrives (?P<late>\d+) h late\))?"
)


def parse(lines: list[str]) -> list[dict]:
    return [m.groupdict() for m in map(LINE.match, lines) if m]


@pytest.fixture(scope="module")
def demo(kafka_bootstrap, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    (tmp / "tmp").mkdir()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TMPDIR": str(tmp / "tmp"),
        "AFTERSALE_CACHE_DIR": str(tmp / "cache"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--orders", "150", "--rate", "100", "--bad", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    live_from = next(i for i, line in enumerate(lines) if line.startswith("event time"))
    summary = lines.index("summary")
    story_from = next(i for i, line in enumerate(lines) if line.startswith("the life of order"))
    return_from = next((i for i, line in enumerate(lines) if line.startswith("a return: order")), len(lines))
    return {
        "run": run,
        "tmp": tmp,
        "header": lines[:live_from],
        "live": lines[live_from + 1 : summary],
        "summary": lines[summary:story_from],
        "story": lines[story_from:return_from],
        "return_story": lines[return_from:],
    }


def test_no_post_delivery_message_before_its_delivery(demo):
    live = parse(demo["live"])
    delivered_at: dict[str, str] = {}  # the first: a returned order's parcel going back is delivered too
    for r in live:
        if r["dir"] == ">>" and r["kind"] == "scan" and r["what"] == "delivered":
            delivered_at[r["order"]] = min(r["at"], delivered_at.get(r["order"], r["at"]))
    # A delivery that reaches us a day late (a carrier feed catching up, marked "arrives N h late")
    # finds its post-delivery timers already due; those are checked in event time only.
    late = {r["order"] for r in live if r["dir"] == ">>" and r["what"] == "delivered" and r["late"]}
    delivery_decided: set[str] = set()
    checked = 0
    for r in live:
        if r["dir"] != "<<":
            continue
        if r["what"] == "delivered":
            delivery_decided.add(r["order"])
        elif r["what"] in POST_DELIVERY and r["kind"] == "intent":
            order = r["order"]
            assert order in delivery_decided or order in late, f"{r} came out before the delivered decision of {order}"
            assert r["at"] >= delivered_at[order] and r["send"] >= delivered_at[order], (r, delivered_at[order])
            checked += 1
    assert checked >= 20  # the demo's window was long enough for post-delivery messages to fire
    assert len(delivered_at) >= 30


def test_inputs_and_decisions_interleave_with_times_customer_and_channel(demo):
    live = parse(demo["live"])
    assert len(live) == sum(1 for line in demo["live"] if re.match(r"\d\d-\d\d \d\d:\d\d  ", line))
    kinds = "".join("i" if r["dir"] == ">>" else "o" for r in live)
    assert kinds.count("io") >= 10, "decisions should come out while events still go in"
    for r in live:
        if r["dir"] == "<<":
            assert r["customer"] and r["channel"], r
        if r["kind"] == "intent":
            assert r["send"], r


def test_the_header_says_what_is_hidden_and_where_the_ops_page_is(demo):
    header = "\n".join(demo["header"])
    assert re.search(r"http://127\.0\.0\.1:\d+/ops", header)
    hidden, total = map(
        lambda s: int(s.replace(",", "")), re.search(r"([\d,]+) of ([\d,]+) inputs hidden", header).groups()
    )
    shown = sum(1 for r in parse(demo["live"]) if r["dir"] == ">>")
    assert shown == total - hidden
    assert f"{shown} shown" in "\n".join(demo["summary"])


def test_the_order_story_is_in_time_order(demo):
    story = parse(demo["story"])
    assert len(story) >= 10
    assert len({r["order"] for r in story}) == 1
    assert [r["at"] for r in story] == sorted(r["at"] for r in story)
    assert any(r["kind"] == "scan" and r["what"] == "delivered" for r in story)


def test_the_demo_tells_one_return_in_time_order(demo):
    # The rough-ride story may be a returned order already; else a return of its own follows it.
    story = parse(demo["return_story"]) or parse(demo["story"])
    assert len({r["order"] for r in story}) == 1
    assert [r["at"] for r in story] == sorted(r["at"] for r in story)
    inputs = [r["what"] for r in story if r["dir"] == ">>"]
    said = [r["what"] for r in story if r["kind"] == "intent"]
    assert "return_requested" in inputs and "return_received" in said, story
    assert said.count("delivered") == 1  # the parcel going back is not a second delivery
    assert any(r["what"] in ("return_requested", "return_received") for r in parse(demo["live"]))


def test_no_library_noise_and_no_temporary_folder_left(demo):
    run = demo["run"]
    assert run.stderr == ""
    assert "%4|" not in run.stdout and "%3|" not in run.stdout and "Traceback" not in run.stdout
    assert list((demo["tmp"] / "tmp").iterdir()) == []
    logs = demo["tmp"] / "cache" / "demo-logs"
    assert (logs / "worker.log").stat().st_size > 0  # the dead letters' warnings went here
