"""Never the same news twice (on any channel), one announcement for split orders, stale news dropped,
and the customer state: JSON round trip and bounded size."""

from __future__ import annotations

from dataclasses import replace

import orjson

from helpers import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    CustomerRun,
    advance,
    audits,
    candidate_command,
    contact,
    engagement,
    fact_command,
    intent,
    item,
    json_roundtrip,
    placed,
    run_orders,
    scan,
    send,
    support,
    fulfilled,
)
from streams.core import ids
from streams.core.state import CustomerState

DAYTIME = T0 + DAY + 10 * HOUR  # 11:00 in Berlin


def customer(**channels) -> CustomerRun:
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", T0, channels=contact(**channels), total=30.0))
    return run


def test_the_same_news_proposed_for_another_channel_is_not_sent_again():
    run = customer(sms=True)
    first = intent("shipped", "email", at=DAYTIME, source_event_id="ful-1")
    again = intent("shipped", "sms", at=DAYTIME + MINUTE, source_event_id="ful-1")  # same occasion, other channel
    assert first.intent_id != again.intent_id
    intents, _ = send(run, candidate_command(first))
    assert [i.channel for i in intents] == ["email"]
    intents, audit = send(run, candidate_command(again))
    assert intents == []
    assert audits(audit) == [("shipped", "skipped", ["duplicate:sent_on:email"])]


def test_a_second_parcel_shipped_within_hours_is_consolidated_into_the_first_announcement():
    run = customer()
    s1 = intent("shipped", "email", at=DAYTIME, source_event_id="ful-S1", tracking="TRK1")
    s2 = intent(
        "shipped", "email", at=DAYTIME + 2 * HOUR, occasion="shipped:S2", source_event_id="ful-S2", tracking="TRK2"
    )
    intents, _ = send(run, candidate_command(s1))
    assert [i.intent_id for i in intents] == [s1.intent_id]
    intents, audit = send(run, candidate_command(s2))
    assert intents == [] and audits(audit) == [("shipped", "skipped", ["consolidated"])]
    assert audit[0].intent_id == s2.intent_id


def test_a_second_parcel_days_later_is_news_again():
    run = customer()
    send(run, candidate_command(intent("shipped", "email", at=DAYTIME, source_event_id="ful-S1")))
    later = intent("shipped", "email", at=DAYTIME + 2 * DAY, occasion="shipped:S2", source_event_id="ful-S2")
    intents, audit = send(run, candidate_command(later))
    assert [i.intent_id for i in intents] == [later.intent_id] and audit == []


def test_split_order_consolidation_end_to_end():
    orders = run_orders(
        placed(T0 + 9 * HOUR),
        fulfilled(T0 + 10 * HOUR, shipment_id="S1", skus=("TEE",), tracking="TRK1"),
        fulfilled(T0 + 12 * HOUR, shipment_id="S2", skus=("LAMP",), tracking="TRK2"),
        scan("delivered", T0 + 2 * DAY + 9 * HOUR, shipment_id="S1", tracking="TRK1"),
        scan("delivered", T0 + 2 * DAY + 10 * HOUR, shipment_id="S2", tracking="TRK2"),
    )
    run = CustomerRun(fire_dues=True).feed(*orders.commands)
    assert [(i.intent_type, i.content.tracking_number) for i in run.intents] == [
        ("order_confirmation", None),
        ("shipped", "TRK1"),
        ("delivered", "TRK1"),
    ]
    assert audits(run.audit) == [("shipped", "skipped", ["consolidated"]), ("delivered", "skipped", ["consolidated"])]


def test_news_that_would_be_sent_after_it_expires_is_dropped():
    run = customer()
    stale = replace(intent("shipped", "email", at=DAYTIME), send_at=DAYTIME + 2 * DAY)
    intents, audit = send(run, candidate_command(stale))
    assert intents == [] and audits(audit) == [("shipped", "dropped", ["expired"])]
    assert audit[0].audit_id == ids.audit_id(stale.intent_id, "shipped", "dropped")


def test_news_already_expired_on_arrival_is_dropped():
    run = customer()
    message = intent("shipped", "email", at=DAYTIME)
    intents, audit = send(run, candidate_command(message), now=DAYTIME + DAY + MINUTE)
    assert intents == [] and audits(audit) == [("shipped", "dropped", ["expired"])]


def test_the_order_stage_and_the_customer_stage_together_on_a_full_life():
    """A timeline through both stages: the transactional path, then the post-delivery window."""
    orders = run_orders(
        placed(T0 + 9 * HOUR, channels=contact(sms=True, marketing_email=True)),
        fulfilled(T0 + 14 * HOUR, shipment_id="S1", skus=("TEE", "LAMP")),
        scan("in_transit", T0 + DAY + 9 * HOUR),
        scan("out_for_delivery", T0 + 2 * DAY + 7 * HOUR),
        scan("delivered", T0 + 2 * DAY + 12 * HOUR),
    )
    run = CustomerRun(fire_dues=True).feed(*orders.commands)
    advance(run, T0 + 30 * DAY)
    assert [(i.intent_type, i.channel) for i in run.intents] == [
        ("order_confirmation", "email"),
        ("shipped", "email"),
        ("out_for_delivery", "sms"),
        ("delivered", "email"),
        ("care_tips", "email"),
        ("cross_sell", "email"),
        ("review_request", "email"),
    ]
    assert run.intents[2].send_at == T0 + 2 * DAY + 7 * HOUR  # 08:00 in Berlin: not quiet any more
    assert run.intents[6].reason_codes == ["post_delivery", "time_to_value_days:14"]  # the lamp: home goods
    assert run.audit == []


# --- state -----------------------------------------------------------------------------------


def busy_customer() -> CustomerRun:
    run = CustomerRun(fire_dues=True)
    for n in range(40):
        at = T0 + n * 3 * DAY + 10 * HOUR
        oid = f"O{n}"
        run.feed(
            fact_command(
                "placed",
                at,
                order_id=oid,
                channels=contact(sms=True, marketing_email=True),
                total=80.0,
                items=[item(f"SKU{n}", "consumables", 2), item("TEE", "fashion")],
            ),
            candidate_command(intent("shipped", "sms", at=at + 13 * HOUR, order_id=oid, source_event_id=f"f{n}")),
            fact_command("delivery_problem", at + DAY, order_id=oid, detail="exception:weather_delay"),
            support("ticket_opened", f"T{n}", at=at + DAY + HOUR, text="Where is it? This is terrible."),
            fact_command(
                "delivered",
                at + 2 * DAY,
                order_id=oid,
                detail="late",
                had_problem=True,
                items=[item(f"SKU{n}", "consumables", 2), item("TEE", "fashion")],
            ),
            engagement("opened", "email", at=at + 2 * DAY + HOUR, order_id=oid),
            engagement("review_submitted", "web", at=at + 2 * DAY + 2 * HOUR, rating=4, order_id=oid),
        )
    return run


def test_a_busy_customer_state_round_trips_through_json():
    state = busy_customer().state
    assert state.timers and state.held and state.orders and state.replenish and state.recent_intents
    data = state.to_dict()
    assert CustomerState.from_dict(json_roundtrip(data)) == state
    assert CustomerState.from_dict(json_roundtrip(data)).to_dict() == data


def test_the_customer_state_stays_bounded():
    state = busy_customer().state
    assert len(state.orders) <= 20 and len(state.held) <= 20 and len(state.replenish) <= 20
    assert len(state.sku_purchases) <= 20 and len(state.open_tickets) <= 20 and len(state.seen) <= 64
    assert len(state.recent_intents) <= 50 and len(state.reviews) <= 20 and len(state.order_times) <= 12
    assert len(state.timers) <= 20 * 6 + 20 + 20 + 1
    assert len(orjson.dumps(state.to_dict())) < 64_000
