"""Segments and tone in every intent, and the win-back incentive when a customer stays away."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from helpers import (
    CUSTOMER,
    DAY,
    CustomerRun,
    advance,
    audits,
    candidate_command,
    contact,
    fact_command,
    intent,
    item,
    send,
)
from streams.core import ids
from streams.core.policy import DEFAULT_POLICY
from streams.core.segments import segment, tone
from streams.core.state import CustomerOrder, CustomerState


def berlin(month, day, hour, minute=0, year=2026) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Berlin")).timestamp() * 1000)


NOW = berlin(6, 1, 12)


def customer(order_days_ago: list[int], spent: float = 100.0, biggest: float = 50.0) -> CustomerState:
    times = sorted(NOW - d * DAY for d in order_days_ago)
    return CustomerState(
        customer_id=CUSTOMER,
        orders_count=len(times),
        order_times=times,
        last_order_at=times[-1] if times else None,
        total_spent=spent,
        max_order_total=biggest,
    )


@pytest.mark.parametrize(
    "days_ago, spent, biggest, expected",
    [
        ([3], 40.0, 40.0, "first_time"),
        ([], 0.0, 0.0, "first_time"),
        ([60, 30, 3], 150.0, 60.0, "repeat"),
        ([3], 300.0, 300.0, "high_value"),  # one big order
        ([200, 100, 3], 520.0, 200.0, "high_value"),  # lifetime spend
        ([400, 250, 100], 150.0, 60.0, "occasional"),  # usual gap 150 days
        ([400, 200], 150.0, 60.0, "lapsed"),  # nothing for 200 days
        ([300, 200], 900.0, 600.0, "lapsed"),  # lapsed wins over high value: the message must say so
    ],
)
def test_segments(days_ago, spent, biggest, expected):
    assert segment(customer(days_ago, spent, biggest), NOW, DEFAULT_POLICY) == expected


def test_tone_follows_the_segment_but_is_apologetic_about_an_order_that_went_wrong():
    state = customer([3])
    state.orders["O1"] = CustomerOrder("O1", late=True)
    state.orders["O2"] = CustomerOrder("O2")
    assert tone(state, "first_time", "transactional", "O2") == "welcoming"
    assert tone(state, "first_time", "transactional", "O1") == "apologetic"
    assert tone(state, "high_value", "marketing", "O1") == "appreciative"


def test_every_intent_carries_segment_and_tone():
    run = CustomerRun()
    run.feed(fact_command("placed", berlin(1, 1, 11), total=30.0))
    intents, _ = send(run, candidate_command(intent("shipped", at=berlin(1, 1, 12))))
    assert (intents[0].content.segment, intents[0].content.tone) == ("first_time", "welcoming")
    run.feed(fact_command("placed", berlin(1, 20, 11), order_id="O2", total=30.0))
    intents, _ = send(
        run, candidate_command(intent("shipped", at=berlin(1, 20, 12), order_id="O2", source_event_id="e2"))
    )
    assert (intents[0].content.segment, intents[0].content.tone) == ("repeat", "familiar")


# --- win-back --------------------------------------------------------------------------------


def shop(run: CustomerRun, order_id: str, at: int, marketing: bool = True) -> CustomerRun:
    run.advance(at)
    return run.feed(
        fact_command(
            "placed",
            at,
            order_id=order_id,
            channels=contact(marketing_email=marketing),
            total=30.0,
            items=[item("TEE", "fashion")],
        )
    )


def winback_id(last_order_at: int) -> str:
    return ids.intent_id(CUSTOMER, None, "winback", f"winback:{last_order_at}", "email")


def test_a_one_time_customer_is_won_back_after_90_days():
    first = berlin(1, 1, 11)
    run = shop(CustomerRun(fire_dues=True), "O1", first)
    assert run.state.timers["winback"] == berlin(4, 2, 10)  # 90 days later (1 April 11:00), next 10:00
    intents, audit = advance(run, berlin(4, 10, 0))
    assert audit == []
    (winback,) = intents
    assert winback.intent_id == winback_id(first)
    assert (winback.kind, winback.order_id, winback.send_at, winback.content.category) == (
        "marketing",
        None,
        berlin(4, 2, 10),
        "fashion",
    )
    assert winback.reason_codes == ["winback", "incentive", "days_since_order:90", "one_time_customer"]


def test_a_regular_is_won_back_after_twice_their_usual_gap():
    run = CustomerRun(fire_dues=True)
    for n, at in enumerate([berlin(1, 1, 11), berlin(1, 31, 11), berlin(3, 2, 11)], 1):
        shop(run, f"O{n}", at)
    assert run.state.timers["winback"] == berlin(5, 2, 10)  # 30-day rhythm -> 60 days after 2 March
    intents, _ = advance(run, berlin(5, 10, 0))
    assert [i.reason_codes for i in intents if i.intent_type == "winback"] == [
        ["winback", "incentive", "days_since_order:60", "usual_gap_days:30"]
    ]


def test_a_frequent_buyer_waits_at_least_45_days():
    run = CustomerRun(fire_dues=True)
    for n, at in enumerate([berlin(1, 1, 11), berlin(1, 8, 11), berlin(1, 15, 11)], 1):
        shop(run, f"O{n}", at)
    assert run.state.timers["winback"] == berlin(3, 2, 10)  # 15 January + 45 days


def test_ordering_again_moves_the_win_back():
    run = shop(CustomerRun(fire_dues=True), "O1", berlin(1, 1, 11))
    shop(run, "O2", berlin(3, 1, 11))
    intents, audit = advance(run, berlin(4, 10, 0))  # the first plan's Due comes and finds nothing
    assert [i for i in intents if i.intent_type == "winback"] == [] and audit == []
    assert run.state.timers["winback"] == berlin(6, 28, 10)  # gap 59 days -> 118 days after 1 March, next 10:00


def test_win_back_needs_marketing_consent():
    run = shop(CustomerRun(fire_dues=True), "O1", berlin(1, 1, 11), marketing=False)
    intents, audit = advance(run, berlin(4, 10, 0))
    assert intents == []
    assert audits(audit) == [
        (
            "winback",
            "skipped",
            ["no_allowed_channel", "no_marketing_consent:email", "unreachable:sms", "unreachable:push"],
        )
    ]
