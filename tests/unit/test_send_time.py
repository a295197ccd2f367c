"""Send-time optimisation: messages that can wait go out in the customer's engaged hour (their own,
or the shop's when they have little history), within quiet hours, caps and expiry; urgent news never
waits for it; the fixed-time arm of an experiment keeps the planned hour."""

from __future__ import annotations

from functools import partial
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from helpers import (
    CUSTOMER,
    DAY,
    CustomerRun,
    advance,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    promotion,
    send,
)
from streams.core import send_time
from streams.core.decisions import CustomerDecision
from streams.core.experiments import loads
from streams.core.policy import DEFAULT_POLICY, HOUR
from streams.core.state import CustomerState

TZ = "Europe/Berlin"


def at(day, hour, minute=0) -> int:
    return int(datetime(2026, 1, day, hour, minute, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def local_hour(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).hour


def customer(config=DEFAULT_POLICY, opens_at_hour: int | None = 19, opens: int = 3, customer_id=CUSTOMER):
    run = CustomerRun(fire_dues=True, config=config)
    run.feed(
        fact_command(
            "placed", at(1, 9), customer_id=customer_id, channels=contact(marketing_email=True, sms=True), total=20.0
        )
    )
    for n in range(opens if opens_at_hour is not None else 0):
        run.feed(engagement("opened", at=at(2 + n, opens_at_hour, 10), customer_id=customer_id, order_id=None))
    return run


promo = partial(promotion, ttl=3 * DAY)


def test_marketing_waits_for_the_hour_the_customer_opens_in():
    run = customer(opens_at_hour=19)
    intents, audit = send(run, promo(at(10, 10)))
    assert intents == []
    assert [(a.decision, a.reasons) for a in audit] == [("held", ["send_time:customer:h19"])]
    intents, _ = advance(run, at(10, 19, 30))
    assert len(intents) == 1
    assert local_hour(intents[0].send_at) == 19
    assert "send_time:customer:h19" in intents[0].reason_codes


def test_already_in_the_best_hour_goes_at_once():
    run = customer(opens_at_hour=10)
    intents, audit = send(run, promo(at(10, 10, 5)))
    assert audit == [] and len(intents) == 1
    assert intents[0].send_at == at(10, 10, 5)
    assert "send_time:customer:h10" in intents[0].reason_codes


def test_the_best_hour_respects_quiet_hours_and_expiry():
    late = customer(opens_at_hour=23)  # marketing e-mail is quiet from 21:00: the best allowed hour is 20:00
    send(late, promo(at(10, 10)))
    intents, _ = advance(late, at(11, 12))
    assert [local_hour(i.send_at) for i in intents] == [20]
    short = customer(opens_at_hour=19)  # expires at 15:00: it waits until 14:00, an hour before, not 19:00
    send(short, promo(at(10, 10), ttl=5 * HOUR))
    intents, _ = advance(short, at(11, 12))
    assert [i.send_at for i in intents] == [at(10, 14)]


def test_urgent_and_transactional_news_never_waits_for_the_best_hour():
    run = customer(opens_at_hour=19)
    for n, (kind, intent_type, priority) in enumerate(
        [
            ("transactional", "out_for_delivery", "high"),
            ("transactional", "shipped", "normal"),
            ("service", "delay_warning", "high"),
            ("service", "address_problem", "urgent"),
        ]
    ):
        news = candidate_command(
            intent(
                intent_type, "email", kind=kind, at=at(10, 10), occasion=f"o{n}", priority=priority, order_id=f"O{n}"
            )
        )
        intents, audit = send(run, news)
        assert audit == [] and [i.send_at for i in intents] == [at(10, 10)], intent_type
        assert not any(code.startswith("send_time") for code in intents[0].reason_codes)


def test_no_history_anywhere_keeps_the_planned_hour():
    run = customer(opens_at_hour=None)
    intents, audit = send(run, promo(at(10, 10)))
    assert audit == [] and intents[0].send_at == at(10, 10)
    assert "send_time:no_history" in intents[0].reason_codes


def test_a_customer_with_little_history_follows_the_shop():
    shared: dict = {}
    for n in range(12):  # the shop's customers open at 20:00
        other = CustomerRun(fire_dues=True, shared=shared, config=DEFAULT_POLICY)
        cid = f"C-other-{n}"
        other.feed(fact_command("placed", at(1, 9), customer_id=cid, channels=contact(marketing_email=True)))
        for d in range(3):
            other.feed(engagement("opened", at=at(2 + d, 20, 5), customer_id=cid, order_id=None))
    run = CustomerRun(fire_dues=True, shared=shared, config=DEFAULT_POLICY)
    run.feed(fact_command("placed", at(1, 9), channels=contact(marketing_email=True), total=20.0))
    _, audit = send(run, promo(at(10, 10)))
    assert [a.reasons for a in audit] == [["send_time:segment:first_time:h20"]]


def test_the_fixed_time_arm_keeps_the_planned_hour():
    experiments = loads(
        """
        [[experiment]]
        id = "send-time"
        arms = [{name = "fixed", weight = 1, send_time = "fixed"}, {name = "learned", weight = 1, send_time = "learned"}]
        """
    )
    config = replace(DEFAULT_POLICY, experiments=experiments)
    arms = {}
    for n in range(40):
        cid = f"C{n}"
        run = customer(config, opens_at_hour=19, customer_id=cid)
        send(run, promo(at(10, 10), customer_id=cid))
        advance(run, at(11, 12))
        (out,) = run.intents
        arms.setdefault(out.arm, set()).add(local_hour(out.send_at))
        assert out.experiment == "send-time" and [(e.experiment, e.arm) for e in out.experiments] == [
            ("send-time", out.arm)
        ]
    assert arms == {"fixed": {10}, "learned": {19}}


def test_habits_decay_and_stay_bounded():
    state = CustomerState(customer_id="C", time_zone=TZ)
    decision = CustomerDecision(state)
    for d in range(200):
        send_time.observe(decision, at(1, 8) + d * DAY, "repeat", DEFAULT_POLICY)
    profile = state.send_time
    assert len(profile["hours"]) == 24 and len(profile["days"]) == 7
    # 200 daily opens with a 90-day half-life weigh (1 - r ** 200) / (1 - r) = 102, r = 0.5 ** (1 / 90).
    assert 101 < sum(profile["hours"]) < 104
    later = send_time.add(profile, at(1, 8) + 400 * DAY, TZ, DEFAULT_POLICY, weight=0.0)
    assert sum(later["hours"]) < sum(profile["hours"]) / 3
