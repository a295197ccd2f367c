"""Experiments: the file is checked, arms are assigned by hash (same everywhere, in proportion),
held-out messages are audited with their experiment and arm, intents name theirs, outcomes are
counted per arm with intervals, and Thompson sampling learns the better variant, reproducibly."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from helpers import (
    DAY,
    HOUR,
    T0,
    CustomerRun,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    send,
    support,
)
from streams.core import experiments as ex
from streams.core.policy import DEFAULT_POLICY

FILE = """
[[experiment]]
id = "global-control"
messages = ["marketing"]
arms = [{name = "control", weight = 10, hold = true}, {name = "treated", weight = 90}]

[[experiment]]
id = "delay-warning-holdout"
unit = "order"
messages = ["delay_warning"]
arms = [{name = "held_out", weight = 50, hold = true}, {name = "warned", weight = 50}]

[[experiment]]
id = "review-incentive"
messages = ["review_request"]
arms = [{name = "none", weight = 1}, {name = "incentive", weight = 1}]
"""
EXPERIMENTS = ex.loads(FILE)
CONFIG = replace(DEFAULT_POLICY, experiments=EXPERIMENTS, send_time_optimisation=False)
GLOBAL, HOLDOUT, VARIANT = EXPERIMENTS


def customer(cid: str, config=CONFIG) -> CustomerRun:
    run = CustomerRun(fire_dues=True, config=config)
    run.feed(fact_command("placed", T0, customer_id=cid, order_id=f"O-{cid}", channels=contact(marketing_email=True)))
    return run


def message(cid: str, intent_type: str, kind: str, order_id: str | None = None, n: int = 1):
    return candidate_command(
        intent(
            intent_type,
            "email",
            kind=kind,
            at=T0 + HOUR * (n + 10),  # in the day, after quiet hours
            customer_id=cid,
            order_id=order_id,
            occasion=f"{intent_type}-{n}",
            source_event_id=f"src-{cid}-{n}",
            priority="low" if kind == "marketing" else "high",
            ttl=2 * DAY,
        )
    )


# --- the file ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, says",
    [
        ('[[experiment]]\nid = "a"\nmessages = ["x"]\narms = [{name = "a", weight = 1}]', "at least two arms"),
        ('[[experiment]]\nid = "a"\narms = [{name = "a", weight = 1}, {name = "b", weight = 1}]', "which messages"),
        (
            '[[experiment]]\nid = "a"\nmessages = ["x"]\narms = [{name = "a", weight = 0}, {name = "b", weight = 1}]',
            "weight > 0",
        ),
        (
            '[[experiment]]\nid = "a"\nmessages = ["x"]\npolicy = "thompson"\n'
            'arms = [{name = "a", weight = 1, hold = true}, {name = "b", weight = 1}]',
            "not holdouts",
        ),
        ('[[experiment]]\nid = "a"\nmessages = ["x"]\ncolour = 1\narms = []', "unknown keys"),
        ("[[experiment]\n", "not valid TOML"),
    ],
)
def test_a_bad_file_says_what_is_wrong(text, says):
    with pytest.raises(ex.ExperimentConfigError, match=says):
        ex.loads(text)


def test_the_example_file_in_deploy_is_valid():
    from pathlib import Path

    found = ex.loads((Path(__file__).parents[2] / "deploy" / "experiments.toml").read_text())
    assert {e.kind for e in found} >= {"holdout", "send_time", "bandit"}


# --- assignment ----------------------------------------------------------------------------------


def test_arms_are_stable_and_in_proportion():
    arms = [ex.assign(GLOBAL, f"C{n}").name for n in range(20_000)]
    assert arms == [ex.assign(GLOBAL, f"C{n}").name for n in range(20_000)]
    assert abs(arms.count("control") / len(arms) - 0.10) < 0.01
    # Another experiment splits independently of this one.
    both = [(a, ex.assign(VARIANT, f"C{n}").name) for n, a in enumerate(arms)]
    share = sum(1 for a, v in both if a == "control" and v == "incentive") / arms.count("control")
    assert abs(share - 0.5) < 0.05


def test_a_new_salt_reshuffles():
    salted = replace(VARIANT, salt="round-2")
    moved = sum(ex.assign(VARIANT, f"C{n}").name != ex.assign(salted, f"C{n}").name for n in range(2000))
    assert 800 < moved < 1200


# --- in the gate ---------------------------------------------------------------------------------


def test_the_global_control_group_gets_no_marketing_but_all_its_news():
    control = next(f"C{n}" for n in range(1000) if ex.assign(GLOBAL, f"C{n}").name == "control")
    run = customer(control)
    intents, audit = send(run, message(control, "promotion", "marketing"))
    assert intents == []
    (held,) = audit
    assert (held.decision, held.experiment, held.arm) == ("held_out", "global-control", "control")
    assert held.reasons == ["experiment:global-control", "arm:control"]
    intents, audit = send(run, message(control, "shipped", "transactional", order_id=f"O-{control}", n=2))
    assert len(intents) == 1 and audit == [] and intents[0].experiments == []


def test_a_message_holdout_splits_orders_and_names_the_arm_on_what_goes_out():
    seen = {}
    for n in range(60):
        cid, order = f"C{n}", f"O-C{n}"
        run = customer(cid)
        intents, audit = send(run, message(cid, "delay_warning", "service", order_id=order))
        arm = ex.assign(HOLDOUT, order).name
        if arm == "held_out":
            assert intents == [] and [(a.decision, a.arm) for a in audit] == [("held_out", "held_out")]
        else:
            (out,) = intents
            assert (out.experiment, out.arm) == ("delay-warning-holdout", "warned")
        seen[arm] = seen.get(arm, 0) + 1
    assert set(seen) == {"held_out", "warned"}


def test_transactional_news_is_never_held_out():
    exps = ex.loads(
        '[[experiment]]\nid = "x"\nmessages = ["shipped"]\n'
        'arms = [{name = "held", weight = 1, hold = true}, {name = "other", weight = 0.0001}]'
    )
    config = replace(CONFIG, experiments=exps)
    run = customer("C1", config)
    intents, audit = send(run, message("C1", "shipped", "transactional", order_id="O-C1"))
    assert len(intents) == 1 and audit == []
    assert [(e.experiment, e.arm) for e in intents[0].experiments] == [("x", "held")]


def test_a_variant_message_carries_every_experiment_it_is_in():
    cid = next(f"C{n}" for n in range(1000) if ex.assign(GLOBAL, f"C{n}").name == "treated")
    run = customer(cid)
    intents, _ = send(run, message(cid, "review_request", "marketing", order_id=f"O-{cid}"))
    (out,) = intents
    assert out.experiment == "review-incentive"
    assert out.arm == ex.assign(VARIANT, cid).name
    assert [(e.experiment, e.arm) for e in out.experiments] == [
        ("global-control", "treated"),
        ("review-incentive", out.arm),
    ]


def test_an_experiment_outside_its_dates_does_nothing():
    exps = ex.loads(
        '[[experiment]]\nid = "x"\nmessages = ["marketing"]\nend = 2020-01-01\n'
        'arms = [{name = "held", weight = 1, hold = true}, {name = "other", weight = 0.0001}]'
    )
    run = customer("C1", replace(CONFIG, experiments=exps))
    intents, audit = send(run, message("C1", "promotion", "marketing"))
    assert len(intents) == 1 and intents[0].experiments == []


# --- outcomes ------------------------------------------------------------------------------------


def test_outcomes_are_counted_once_per_arm():
    cid = "C7"
    run = customer(cid)
    outcomes = []

    def fed(*items):
        for item in items:
            from streams.core.customers import decide_customer

            d = decide_customer(run.state, item, item.event_time, run.config, run.shared)
            run._take(d)
            outcomes.extend(d.outcomes)

    ticket = support("ticket_opened", at=T0 + DAY, customer_id=cid, order_id=f"O-{cid}")
    ticket.topic = "wismo"
    fed(
        ticket,
        ticket,  # redelivered: not counted again
        fact_command("delivered", T0 + 2 * DAY, customer_id=cid, order_id=f"O-{cid}", detail="on_time"),
        engagement("review_submitted", "web", at=T0 + 5 * DAY, customer_id=cid, rating=4, order_id=f"O-{cid}"),
        engagement("unsubscribed", at=T0 + 6 * DAY, customer_id=cid, scope="marketing", order_id=None),
        fact_command("placed", T0 + 30 * DAY, customer_id=cid, order_id=f"O2-{cid}", channels=contact()),
    )
    global_arm = ex.assign(GLOBAL, cid).name
    mine = sorted((o, v) for e, a, o, v in outcomes if e == "global-control" and a == global_arm)
    assert mine == [
        ("delivered", 1),
        ("orders", 1),
        ("rating_sq", 16),
        ("rating_sum", 4),
        ("ratings", 1),
        ("repeat", 1),
        ("reviewed", 1),
        ("tickets", 1),
        ("unsubscribed", 1),
        ("wismo_orders", 1),
    ]
    order_arm = ex.assign(HOLDOUT, f"O-{cid}").name
    by_order = sorted(o for e, a, o, v in outcomes if e == "delay-warning-holdout" and a == order_arm)
    assert "unsubscribed" not in by_order and "wismo_orders" in by_order


def test_intervals_cover_a_planted_difference():
    rng = random.Random(3)
    counts = {}
    for arm, p in (("held_out", 0.20), ("warned", 0.12)):
        n = 4000
        k = sum(rng.random() < p for _ in range(n))
        counts.update({("delay-warning-holdout", arm, "orders"): n, ("delay-warning-holdout", arm, "wismo_orders"): k})
    rows = {r["arm"]: r for r in ex.summarise(counts, (HOLDOUT,))}
    assert rows["held_out"]["control"]
    diff = rows["warned"]["rates"]["wismo_per_100_orders"]["diff_vs_control"]
    assert diff[1] < -8.0 < diff[2]  # planted: 8 fewer per 100 orders when warned
    value, low, high = rows["warned"]["rates"]["wismo_per_100_orders"]["value"]
    assert low < 12.0 < high


def test_wilson_behaves_at_the_edges():
    assert ex.wilson(0, 10)[1] == 0.0 and ex.wilson(0, 10)[2] > 0.2
    assert ex.wilson(10, 10)[2] == pytest.approx(1.0)
    p, low, high = ex.wilson(50, 100)
    assert low < 0.5 < high and abs((high - low) - 0.19) < 0.01


# --- Thompson sampling ---------------------------------------------------------------------------

BANDIT = ex.loads(
    """
[[experiment]]
id = "review-timing"
messages = ["review_request"]
policy = "thompson"
reward = "review"
reward_days = 10
seed = 11
arms = [{name = "early", weight = 1}, {name = "late", weight = 1}]
"""
)


def run_bandit(customers: int, rates: dict[str, float]) -> tuple[list[str], list[str], dict]:
    """A closed loop: each review request is answered with a review at the arm's rate."""
    config = replace(DEFAULT_POLICY, experiments=BANDIT, send_time_optimisation=False)
    shared: dict = {}
    picks, codes = [], []
    world = random.Random(5)
    for n in range(customers):
        cid = f"C{n}"
        run = CustomerRun(fire_dues=True, config=config, shared=shared)
        start = T0 + 10 * HOUR + n * DAY
        run.feed(
            fact_command("placed", start, customer_id=cid, order_id=f"O{n}", channels=contact(marketing_email=True))
        )
        request = candidate_command(
            intent(
                "review_request",
                "email",
                kind="marketing",
                at=start + HOUR,
                customer_id=cid,
                order_id=f"O{n}",
                occasion="r",
                source_event_id=f"r-{n}",
                priority="low",
                ttl=2 * DAY,
            )
        )
        (out,), _ = send(run, request)
        picks.append(out.arm)
        codes += [c for c in out.reason_codes if c.startswith("bandit:")]
        if world.random() < rates[out.arm]:
            send(
                run,
                engagement("review_submitted", "web", at=start + 3 * DAY, customer_id=cid, rating=5, order_id=f"O{n}"),
            )
    return picks, codes, shared


def test_thompson_sampling_moves_traffic_to_the_better_arm_and_replays_the_same():
    picks, codes, shared = run_bandit(600, {"early": 0.10, "late": 0.35})
    assert picks[-200:].count("late") > 170
    assert picks[:50].count("early") > 10  # it explored first
    assert any(c.endswith(":explore") for c in codes) and any(c.endswith(":exploit") for c in codes)
    counts = shared["bandit:review-timing"]
    assert sum(t for t, _ in counts.values()) == 600
    again, _, _ = run_bandit(600, {"early": 0.10, "late": 0.35})
    assert again == picks
