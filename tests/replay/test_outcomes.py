"""Learning from outcomes on a replay of simulated traffic: messages sent at the learned hour are
opened more often than at the fixed hour in the same replay, urgent news never waits for it, arms
are the same on every replay, and an effect planted in the simulator is found inside its interval."""

from __future__ import annotations

import pytest

from streams.core.experiments import assign, loads
from streams.tools.backtest import run_backtest
from streams.tools.replay import run_replay
from streams.tools.replay.output import read_jsonl

EXPERIMENTS = """
[[experiment]]
id = "send-time"
arms = [{name = "fixed", weight = 1, send_time = "fixed"}, {name = "learned", weight = 1, send_time = "learned"}]

[[experiment]]
id = "warning-holdout"
unit = "order"
messages = ["delay_warning", "delay_update"]
arms = [{name = "held_out", weight = 1, hold = true}, {name = "warned", weight = 1}]

[[experiment]]
id = "promo-control"
messages = ["marketing"]
arms = [{name = "control", weight = 1, hold = true}, {name = "treated", weight = 3}]
"""
PLANT = "warning-holdout:held_out:wismo=0.4"


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    out = tmp_path_factory.mktemp("outcomes")
    path = out / "experiments.toml"
    path.write_text(EXPERIMENTS)
    fig = run_backtest(
        None, out / "report", simulate_orders=2000, seed=11, progress=False, experiments=str(path), plant=(PLANT,)
    )
    return fig, out


def test_the_learned_hour_is_opened_more_often_than_the_fixed_hour(backtest):
    fig, out = backtest
    st = fig["send_time"]
    learned, fixed = st["arms"]["learned"], st["arms"]["fixed"]
    assert learned["messages"] > 500 and fixed["messages"] > 500
    low, high = st["learned_minus_fixed"][1:]
    assert low > 0.05, st  # opened more often, and not by chance
    assert learned["expected_open_rate"] > 1.5 * learned["expected_open_rate_at_planned_time"]
    report = (out / "report" / "report.md").read_text()
    assert "## Send time" in report and "Learned - fixed" in report


def test_urgent_news_never_waits_for_the_best_hour(backtest):
    fig, out = backtest
    assert fig["send_time"]["urgent_moved"] == 0
    intents = read_jsonl(out / "report" / "replay" / "intents.jsonl")
    audit = read_jsonl(out / "report" / "replay" / "audit.jsonl")
    waits = {a["intent_id"] for a in audit if any(r.startswith("send_time:") for r in a["reasons"])}
    can_wait = {
        i["intent_id"]
        for i in intents
        if i["kind"] == "marketing" or i["intent_type"].startswith(("care_tips", "onboarding_"))
    }
    others = [i for i in intents if i["intent_id"] not in can_wait]
    assert len(others) > 5000
    assert not waits & {i["intent_id"] for i in others}
    assert not any(c.startswith("send_time:") for i in others for c in i["reason_codes"])


def test_a_planted_effect_is_found_inside_its_interval(backtest):
    fig, _ = backtest
    (check,) = fig["experiments"]["planted"]
    assert check["inside"], check
    low, high = check["measured_diff"][1:]
    assert high < 0, check  # fewer WISMO orders when warned: the effect is found, not just not excluded
    rows = {(r["experiment"], r["arm"]): r for r in fig["experiments"]["rows"]}
    for arm in ("held_out", "warned"):
        value, lo, hi = rows[("warning-holdout", arm)]["rates"]["wismo_per_100_orders"]["value"]
        assert lo <= value <= hi
    held = rows[("promo-control", "control")]["counts"]
    assert held["held_out"] > 0 and held["sent"] == 0


def test_arms_are_the_same_on_every_replay(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(EXPERIMENTS)
    experiments = {e.id: e for e in loads(EXPERIMENTS)}
    seen = []
    for partitions in (2, 4):
        out = tmp_path / f"p{partitions}"
        run_replay(None, out, partitions=partitions, simulate_orders=400, progress=False, experiments=str(path))
        arms = {}
        for i in read_jsonl(out / "intents.jsonl"):
            for e in i["experiments"]:
                exp = experiments[e["experiment"]]
                unit = i["order_id"] if exp.unit == "order" and i["order_id"] else i["customer_id"]
                arms[(e["experiment"], unit)] = e["arm"]
        for a in read_jsonl(out / "audit.jsonl"):
            if a["decision"] == "held_out":
                exp = experiments[a["experiment"]]
                arms[(a["experiment"], a["order_id"] if exp.unit == "order" else a["customer_id"])] = a["arm"]
        assert len(arms) > 300
        assert all(assign(experiments[e], unit).name == arm for (e, unit), arm in arms.items())
        seen.append(arms)
    shared = seen[0].keys() & seen[1].keys()
    assert len(shared) > 300 and all(seen[0][k] == seen[1][k] for k in shared)
