"""The post-delivery window: care tips or onboarding, the review request timed by time to value
(sooner after a positive signal, never after a problem, once per product a year), and cross-sell."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    ORDER,
    CustomerRun,
    advance,
    audits,
    contact,
    engagement,
    fact_command,
    item,
    send,
)
from streams.core import ids
from streams.core.model import ContentHints, ItemHint, MessageIntent


def berlin(month, day, hour, minute=0) -> int:
    return int(datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Berlin")).timestamp() * 1000)


PLACED = berlin(1, 1, 11)
DELIVERED = berlin(1, 3, 15)
TEE = item("TEE", "fashion", 2, "Tee")
HEADPHONES = item("HDP", "electronics", 1, "Headphones")
CAP = item("CAP", "fashion", 1, "Cap")


def delivered_order(
    *items,
    order_id=ORDER,
    placed=PLACED,
    delivered=DELIVERED,
    marketing=True,
    total=60.0,
    run: CustomerRun | None = None,
    **delivered_args,
) -> CustomerRun:
    run = run or CustomerRun(fire_dues=True)
    run.feed(
        fact_command(
            "placed", placed, order_id=order_id, channels=contact(marketing_email=marketing), total=total, items=items
        ),
        fact_command(
            "delivered",
            delivered,
            order_id=order_id,
            detail=delivered_args.pop("detail", "on_time"),
            items=items,
            **delivered_args,
        ),
    )
    return run


def review_id(order_id=ORDER) -> str:
    return ids.intent_id(CUSTOMER, order_id, "review_request", f"review_request:{order_id}", "email")


def post(intents):
    return [(i.intent_type, i.kind, i.send_at) for i in intents if i.intent_type not in ("winback",)]


def test_a_fashion_order_gets_care_tips_a_review_request_and_cross_sell():
    run = delivered_order(TEE)
    assert {k: v for k, v in run.state.timers.items() if k != "winback"} == {
        f"care_tips:{ORDER}": berlin(1, 4, 10),  # the next day at 10:00 local
        f"review_request:{ORDER}": berlin(1, 7, 10),  # fashion: 4 days to value
        f"cross_sell:{ORDER}": berlin(1, 13, 10),
    }
    intents, audit = advance(run, berlin(1, 20, 0))
    assert audit == []
    assert post(intents) == [
        ("care_tips", "service", berlin(1, 4, 10)),
        ("review_request", "marketing", berlin(1, 7, 10)),
        ("cross_sell", "marketing", berlin(1, 13, 10)),
    ]
    care, review, cross = intents
    assert (care.content.category, care.reason_codes) == ("fashion", ["post_delivery", "care_topic:garment_care"])
    assert (cross.content.category, cross.reason_codes) == ("accessories", ["post_delivery", "complements:fashion"])
    delivered_command = fact_command("delivered", DELIVERED, detail="on_time", items=[TEE])
    assert review == MessageIntent(
        intent_id=review_id(),
        decided_at=berlin(1, 7, 10),
        order_id=ORDER,
        customer_id=CUSTOMER,
        intent_type="review_request",
        kind="marketing",
        channel="email",
        send_at=berlin(1, 7, 10),
        expires_at=berlin(1, 14, 10),
        priority="low",
        content=ContentHints(
            items=[ItemHint("TEE", "Tee", "fashion", 2)], category="fashion", segment="first_time", tone="welcoming"
        ),
        reason_codes=["post_delivery", "time_to_value_days:4"],
        source_event_id=delivered_command.command_id,
        locale="de-DE",
        time_zone="Europe/Berlin",
    )


def test_intent_ids_are_stable():
    """Golden values: changing how ids are derived would make senders send everything again."""
    assert review_id() == "e30f2a2d-82db-5c09-8dd1-a298b0a858e9"
    run = delivered_order(TEE)
    intents, _ = advance(run, berlin(1, 20, 0))
    assert [i.intent_id for i in intents][:2] == [
        "cbb22736-427e-5696-8be7-9513ea360dd9",
        "e30f2a2d-82db-5c09-8dd1-a298b0a858e9",
    ]


def test_complex_products_get_an_onboarding_sequence_and_a_later_review_request():
    run = delivered_order(HEADPHONES, total=249.0)
    intents, _ = advance(run, berlin(2, 1, 0))
    assert post(intents) == [
        ("onboarding_1", "service", berlin(1, 4, 10)),
        ("onboarding_2", "service", berlin(1, 7, 10)),
        ("cross_sell", "marketing", berlin(1, 13, 10)),  # same time: by timer kind
        ("onboarding_3", "service", berlin(1, 13, 10)),
        ("review_request", "marketing", berlin(1, 17, 10)),  # durable goods: 14 days
    ]
    assert [i.reason_codes[-1] for i in intents if i.intent_type.startswith("onboarding")] == [
        "onboarding:1/3",
        "onboarding:2/3",
        "onboarding:3/3",
    ]
    assert {i.content.segment for i in intents} == {"first_time"}


@pytest.mark.parametrize(
    "category, days",
    [("fashion", 4), ("beauty", 5), ("consumables", 8), ("home", 14), ("appliances", 14), ("books", 7)],
)
def test_review_timing_follows_the_time_to_value(category, days):
    run = delivered_order(item("X", category))
    assert run.state.timers[f"review_request:{ORDER}"] == berlin(1, 3 + days, 10)


def test_an_open_soon_after_delivery_brings_the_review_request_forward():
    run = delivered_order(HEADPHONES)
    send(run, engagement("opened", "email", at=DELIVERED + 20 * HOUR, order_id=ORDER))
    assert run.state.timers[f"review_request:{ORDER}"] == berlin(1, 10, 10)  # 14 -> 7 days
    intents, _ = advance(run, berlin(1, 11, 0))
    (review,) = [i for i in intents if i.intent_type == "review_request"]
    assert review.reason_codes == ["post_delivery", "time_to_value_days:14", "positive_signal"]


def test_a_late_open_changes_nothing():
    run = delivered_order(HEADPHONES)
    send(run, engagement("clicked", "email", at=DELIVERED + 3 * DAY, order_id=ORDER))
    assert run.state.timers[f"review_request:{ORDER}"] == berlin(1, 17, 10)


def test_split_delivery_plans_once_and_asks_about_everything_when_the_slowest_has_proven_itself():
    run = CustomerRun(fire_dues=True)
    run.feed(
        fact_command("placed", PLACED, channels=contact(marketing_email=True), total=300.0, items=[TEE, HEADPHONES]),
        fact_command("delivered", DELIVERED, detail="on_time", items=[TEE]),
        fact_command("delivered", DELIVERED + DAY, detail="on_time", items=[HEADPHONES]),
    )
    assert run.state.timers[f"review_request:{ORDER}"] == berlin(1, 17, 10)  # from the first delivery, 14 days
    assert run.state.timers[f"onboarding_1:{ORDER}"] == berlin(1, 5, 10)  # from the second parcel's arrival
    advance(run, berlin(2, 1, 0))
    (review,) = [i for i in run.intents if i.intent_type == "review_request"]
    assert [i.sku for i in review.content.items] == ["TEE", "HDP"]
    assert sorted(i.intent_type for i in run.intents) == [
        "care_tips",
        "cross_sell",
        "onboarding_1",
        "onboarding_2",
        "onboarding_3",
        "review_request",
    ]
    assert [i.sku for i in run.intents[0].content.items] == ["TEE"]  # care tips: the fashion parcel
    assert review.content.segment == "high_value"


def test_one_review_request_per_product_per_year():
    run = delivered_order(TEE)
    advance(run, berlin(1, 20, 0))
    delivered_order(TEE, CAP, order_id="O2", placed=berlin(2, 1, 11), delivered=berlin(2, 3, 15), run=run)
    intents, _ = advance(run, berlin(2, 10, 0))
    (review,) = [i for i in intents if i.intent_type == "review_request"]
    assert [i.sku for i in review.content.items] == ["CAP"]
    assert review.reason_codes[-1] == "some_products_asked_recently"
    delivered_order(TEE, order_id="O3", placed=berlin(3, 1, 11), delivered=berlin(3, 3, 15), run=run)
    intents, audit = advance(run, berlin(3, 10, 0))
    assert "review_request" not in [i.intent_type for i in intents]
    assert [(a.decision, a.reasons) for a in audit if a.intent_type == "review_request"] == [
        ("skipped", ["review_once_per_product"])
    ]


def test_a_customer_who_already_reviewed_the_order_is_not_asked():
    run = delivered_order(TEE)
    send(run, engagement("review_submitted", "web", at=DELIVERED + DAY, rating=5, order_id=ORDER))
    intents, audit = advance(run, berlin(1, 20, 0))
    assert "review_request" not in [i.intent_type for i in intents]
    assert [(a.decision, a.reasons) for a in audit] == [("skipped", ["already_reviewed"])]


def test_without_marketing_consent_only_the_service_message_goes():
    run = delivered_order(TEE, marketing=False)
    intents, audit = advance(run, berlin(1, 20, 0))
    assert [i.intent_type for i in intents] == ["care_tips"]
    assert audits(audit) == [
        (
            "review_request",
            "skipped",
            ["no_allowed_channel", "no_marketing_consent:email", "unreachable:sms", "unreachable:push"],
        ),
        (
            "cross_sell",
            "skipped",
            ["no_allowed_channel", "no_marketing_consent:email", "unreachable:sms", "unreachable:push"],
        ),
    ]


def test_a_refunded_order_gets_no_care_tips_or_cross_sell():
    run = delivered_order(TEE)
    _, audit = send(run, fact_command("refunded", DELIVERED + 2 * HOUR, detail="return"))
    assert audits(audit) == [
        ("review_request", "suppressed", ["guard:order_had_problem", "order_refunded", "order_returned"])
    ]
    intents, audit = advance(run, berlin(1, 20, 0))
    assert post(intents) == []
    assert audits(audit) == [
        ("care_tips", "skipped", ["order_refunded"]),
        ("cross_sell", "skipped", ["order_refunded"]),
    ]


def test_a_late_order_still_gets_its_care_tips_and_later_cross_sell_but_no_review_request():
    run = delivered_order(TEE, detail="late", had_problem=True)
    # Known at delivery: suppressed at once, nothing planned.
    assert audits(run.audit) == [("review_request", "suppressed", ["guard:order_had_problem", "delivered_late"])]
    assert f"review_request:{ORDER}" not in run.state.timers
    intents, audit = advance(run, berlin(1, 20, 0))
    assert [i.intent_type for i in intents] == ["care_tips", "cross_sell"]
    assert intents[0].content.tone == "apologetic"
    assert audit == []


def test_the_delivered_fact_redelivered_plans_nothing_new():
    run = delivered_order(TEE)
    timers = dict(run.state.timers)
    n = len(run.schedule)
    send(run, fact_command("delivered", DELIVERED, detail="on_time", items=[TEE]))
    assert run.duplicates == 1 and run.state.timers == timers and len(run.schedule) == n
