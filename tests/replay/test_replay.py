"""In-process replay: inputs, determinism, the fast state path against the worker's dict path."""

from __future__ import annotations

import orjson
import pytest

from streams import engine as engine_module
from streams.cli import main
from streams.tools.replay import InProcessEngine, load, load_simulated, replay, run_events, simulated
from streams.tools.replay.inprocess import ReplayResult
from streams.tools.replay.events import plan
from streams.tools.replay.output import audit_record, intent_record
from streams.tools.simulate import generate

DAY = 86_400_000
HOUR = 3_600_000
OUT_FILES = ("intents.jsonl", "audit.jsonl", "rejected.jsonl", "summary.json")


def records(result) -> tuple[list[dict], list[dict]]:
    return [intent_record(i) for i in result.intents], [audit_record(a) for a in result.audit]


@pytest.fixture(scope="module")
def sim_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    assert main(["simulate", "--orders", "300", "--seed", "5", "--out", str(path)]) == 0
    return path


def test_the_old_entry_points_still_work():
    result = replay(simulated(50, seed=2), partitions=4)
    assert isinstance(InProcessEngine(4).partitions, int)
    assert result.events > 400 and len(result.intents) > 100 and not result.rejected


def test_objects_state_decides_exactly_what_the_workers_dict_state_decides():
    """The replay keeps state records between events instead of the dicts a worker's tables hold:
    on 1000 simulated orders with a month of run-on, every output must be the same."""
    events, _ = load_simulated(1000, seed=7)
    fast = run_events(events, partitions=4, run_on_ms=30 * DAY, objects=True, tick_ms=HOUR)
    exact = run_events(events, partitions=4, run_on_ms=30 * DAY, objects=False, tick_ms=HOUR)
    assert records(fast) == records(exact)
    assert fast.events == exact.events == len(events)
    assert len(fast.intents) > 4000 and not fast.rejected


def test_partition_count_is_part_of_the_input():
    events, _ = load_simulated(300, seed=4)
    one = run_events(events, partitions=1, run_on_ms=30 * DAY)
    again = run_events(events, partitions=1, run_on_ms=30 * DAY)
    assert records(one) == records(again)


def test_the_simulators_jsonl_log_replays_like_its_events(sim_jsonl):
    from_file, report = load(sim_jsonl)
    from_gen, _ = load_simulated(300, seed=5)
    assert report.kind == "jsonl" and report.read == report.events == len(from_gen) and not report.rejected
    assert [(e.topic, e.key, e.record) for e in from_file] == [(e.topic, e.key, e.record) for e in from_gen]
    assert records(run_events(from_file, run_on_ms=DAY)) == records(run_events(from_gen, run_on_ms=DAY))


def test_events_are_fed_in_event_time_stably_unless_file_order_is_asked(sim_jsonl):
    sorted_events, _ = load(sim_jsonl)
    times = [e.event_time for e in sorted_events]
    assert times == sorted(times)
    file_order, _ = load(sim_jsonl, sort=False)
    assert [e.event_time for e in file_order] != times  # the simulator has late feeds
    # Stable: events with equal times keep their file order (redelivered duplicates included).
    expected = sorted(range(len(file_order)), key=lambda n: file_order[n].event_time)
    assert [e.record for e in sorted_events] == [file_order[n].record for n in expected]
    assert any(a.event_time == b.event_time for a, b in zip(sorted_events, sorted_events[1:]))


def test_bad_lines_are_counted_by_reason_and_never_fatal(tmp_path):
    good = generate(orders=3, seed=1)
    lines = [orjson.dumps({"topic": e.topic, "key": e.key, "value": e.record}) for e in good]
    placed = next(e for e in good if e.topic == "orders" and e.record["type"] == "placed")
    extra = dict(placed.record, event_id="extra-field", note="not in the schema")  # reshaped, accepted
    missing = {k: v for k, v in placed.record.items() if k not in ("currency", "contact")} | {"event_id": "sparse"}
    lines += [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({"topic": "refunds", "key": "O1", "value": placed.record}),
        orjson.dumps({"topic": "orders", "key": "wrong-key", "value": placed.record}),
        orjson.dumps({"topic": "orders", "key": None, "value": dict(placed.record, event_id="x", type="exchanged")}),
        orjson.dumps({"topic": "orders", "key": None, "value": dict(placed.record, event_id="")}),
        orjson.dumps({"topic": "orders", "key": placed.key, "value": extra}),
        orjson.dumps({"topic": "orders", "key": placed.key, "value": missing}),
        b"",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    events, report = load(path)
    assert dict(report.rejected) == {
        "undecodable": 1,
        "not_an_event": 1,
        "unknown_topic": 1,
        "wrong_key": 1,
        "unknown_type": 1,
        "invalid_field": 1,
    }
    assert report.events == len(good) + 2 == len(events)
    result = run_events(events)
    assert not result.rejected and result.events == len(events)


def test_an_exception_in_the_core_parks_that_event_and_the_replay_goes_on(monkeypatch):
    events, _ = load_simulated(20, seed=1)
    victim = next(e.event.order_id for e in events if e.topic == "orders")
    real = engine_module.decide_order

    def flaky(state, event, now, lanes=None):
        if getattr(event, "order_id", None) == victim and getattr(event, "type", None) == "paid":
            raise RuntimeError("boom")
        return real(state, event, now, lanes)

    monkeypatch.setattr(engine_module, "decide_order", flaky)
    result = run_events(events)
    assert [r for _, r in result.rejected if r.startswith("processing_error")] and len(result.rejected) == 1
    assert len({i.order_id for i in result.intents}) == 20


def test_replay_cli_output_is_byte_identical_between_runs(sim_jsonl, tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["replay", "--input", str(sim_jsonl), "--out", str(tmp_path / name)]) == 0
    err = capsys.readouterr().err
    assert "replay" in err and "ev/s" in err  # the progress bar, on stderr
    for f in OUT_FILES:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    intents = [orjson.loads(line) for line in (tmp_path / "a" / "intents.jsonl").read_bytes().splitlines()]
    assert intents and list(intents[0]) == sorted(intents[0])  # sorted keys
    assert [(i["decided_at"], i["intent_id"]) for i in intents] == sorted(
        (i["decided_at"], i["intent_id"]) for i in intents
    )
    summary = orjson.loads((tmp_path / "a" / "summary.json").read_bytes())
    assert summary["intents"] == len(intents) and summary["input"]["events"] > 2000


def test_replay_cli_without_progress_bar_prints_nothing_to_stderr_but_the_rate(tmp_path, capsys):
    assert main(["replay", "--simulate", "20", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "ev/s" not in captured.err and "events/s" in captured.err
    assert "intents" in captured.out


def test_time_ticks_between_events_and_runs_on_after_them():
    events, _ = load_simulated(5, seed=1)
    first, last = events[0].event_time, events[-1].event_time
    steps = list(plan(events, tick_ms=HOUR, run_on_ms=DAY))
    assert [item for kind, item in steps if kind == "event"] == events
    ticks = [item for kind, item in steps if kind == "tick"]
    assert ticks == list(range((first // HOUR + 1) * HOUR, last + DAY + 1, HOUR)) + (
        [] if (last + DAY) % HOUR == 0 else [last + DAY]
    )
    # Each tick comes before the first event after it.
    for n, (kind, item) in enumerate(steps):
        if kind == "tick" and n + 1 < len(steps) and steps[n + 1][0] == "event":
            assert steps[n + 1][1].event_time > item
    assert [t for k, t in plan(events, 0, DAY) if k == "tick"] == [last + DAY]
    assert [t for k, t in plan(events, 0, 0) if k == "tick"] == []
    # Ticking fires what falls due between sparse events on time, instead of at the next event.
    ticked = run_events(events, run_on_ms=30 * DAY, tick_ms=HOUR)
    jumped = run_events(events, run_on_ms=30 * DAY)
    assert len(ticked.intents) >= len(jumped.intents)


def test_a_timer_backlog_taken_in_slices_decides_what_one_pass_decides():
    """What a worker does after downtime (or an event-time jump), with its per-batch fire limit: the
    same decisions as firing the whole backlog at once, on real simulated orders."""
    events, _ = load_simulated(200, seed=9, id_prefix="S")
    cut = events[len(events) // 3].event.event_time
    until = cut + 40 * DAY  # every review request, care tip and stall check of the first third

    def run(limit: int | None):
        engine, result = InProcessEngine(partitions=4), ReplayResult()
        for e in events:
            if e.event.event_time > cut:
                break
            engine.feed_event(e.topic, e.event, result)
        before, rounds = len(result.intents), 0
        for p in range(4):
            while True:  # the order stage's ticks, then its commands to the customer stage
                out = engine.order_stage.fire(p, until, limit)
                rounds += 1
                result.intents += out.intents
                result.audit += out.audit
                for command in out.commands:
                    engine._customer(command, result)
                if not out.more:
                    break
        for p in range(4):
            while True:
                out = engine.customer_stage.fire(p, until, limit)
                rounds += 1
                result.intents += out.intents
                result.audit += out.audit
                if not out.more:
                    break
        return result, len(result.intents) - before, rounds

    whole, fired_whole, rounds_whole = run(None)
    sliced, fired_sliced, rounds_sliced = run(5)
    assert fired_whole > 80 and rounds_whole == 8  # a real backlog, one pass per partition and stage
    assert rounds_sliced > 3 * rounds_whole  # and it was cut
    assert sorted(i.intent_id for i in sliced.intents) == sorted(i.intent_id for i in whole.intents)
    for got, want in zip(records(sliced), records(whole)):  # intents, then audit: the same content
        assert sorted(map(orjson.dumps, got)) == sorted(map(orjson.dumps, want))


def test_replays_of_traffic_with_returns_are_identical():
    """Returns, exchanges and refunds (twice the usual share of returns): the same events replay to
    the same outputs, run after run, and the fast state path decides what the worker's dicts decide."""
    events, report = load_simulated(400, seed=13, return_rate_scale=2.0)
    kinds = {e.record.get("type") for e in events if e.topic == "orders"}
    assert kinds >= {"return_received", "refunded", "exchange_created", "return_declined"} and not report.rejected
    assert any(e.topic == "carrier-scans" and e.record["service_level"] == "return" for e in events)
    first = run_events(events, partitions=4, run_on_ms=30 * DAY, tick_ms=HOUR)
    again, _ = load_simulated(400, seed=13, return_rate_scale=2.0)
    assert records(run_events(again, partitions=4, run_on_ms=30 * DAY, tick_ms=HOUR)) == records(first)
    exact = run_events(events, partitions=4, run_on_ms=30 * DAY, tick_ms=HOUR, objects=False)
    assert records(exact) == records(first)
    assert not first.rejected and first.events == len(events)
