"""Order stage scenarios: a timeline of order events and carrier scans in, candidates/facts/audit out."""

from __future__ import annotations

import orjson
import pytest

from helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    MINUTE,
    ORDER,
    SHIPMENT,
    T0,
    OrderRun,
    cancelled,
    contact,
    fulfilled,
    json_roundtrip,
    order_event,
    placed,
    run_orders,
    scan,
    types,
)
from streams.core import ids
from streams.core.model import ContactChannels, ItemHint
from streams.core.orders import decide_order
from streams.core.state import OrderState


def audits(run: OrderRun) -> list[tuple[str, str, list[str]]]:
    return [(a.intent_type, a.decision, a.reasons) for a in run.audit]


def full_lifecycle(channels: ContactChannels | None = None) -> list:
    return [
        placed(T0, channels=channels),
        order_event("paid", T0 + 5 * MINUTE),
        fulfilled(T0 + 5 * HOUR, skus=("TEE",)),
        scan("info_received", T0 + 7 * HOUR),
        scan("in_transit", T0 + 20 * HOUR, eta=T0 + 2 * DAY),
        scan("out_for_delivery", T0 + 40 * HOUR),
        scan("attempt_failed", T0 + 44 * HOUR, sub_status="recipient_unavailable"),
        scan("out_for_delivery", T0 + 64 * HOUR),
        scan("delivered", T0 + 80 * HOUR),  # promised T0 + 72h: late
    ]


# --- placed ----------------------------------------------------------------------------------


def test_placed_gives_placed_fact_then_order_confirmation():
    event = placed(T0)
    now = T0 + 5 * MINUTE
    run = run_orders(event, now=now)

    assert [c.kind for c in run.commands] == ["order_fact", "candidate_intent"]
    fact_cmd, cand_cmd = run.commands
    assert fact_cmd.command_id == ids.stable_id("fact", event.event_id, "placed", None)
    assert (fact_cmd.customer_id, fact_cmd.order_id, fact_cmd.event_time) == (CUSTOMER, ORDER, T0)
    assert fact_cmd.fact.type == "placed"
    assert fact_cmd.fact.total == 147.0
    assert fact_cmd.fact.categories == ["fashion", "home"]
    assert fact_cmd.fact.time_zone == "Europe/Berlin"
    assert fact_cmd.fact.contact == contact()

    intent = cand_cmd.intent
    assert cand_cmd.command_id == ids.stable_id("candidate", intent.intent_id)
    assert (cand_cmd.customer_id, cand_cmd.order_id, cand_cmd.event_time) == (CUSTOMER, ORDER, T0)
    assert intent.intent_type == "order_confirmation"
    assert intent.kind == "transactional"
    assert intent.channel == "email"
    assert intent.priority == "high"
    assert intent.reason_codes == ["order_placed"]
    assert intent.expires_at == T0 + 24 * HOUR
    assert intent.send_at == now
    assert intent.decided_at == now
    assert intent.source_event_id == event.event_id
    assert intent.intent_id == ids.intent_id(CUSTOMER, ORDER, "order_confirmation", "order_confirmation", "email")
    assert (intent.locale, intent.time_zone) == ("de-DE", "Europe/Berlin")
    assert intent.content.items == [ItemHint("TEE", "Tee", "fashion", 2), ItemHint("LAMP", "Lamp", "home", 1)]
    assert intent.content.category == "fashion"  # the line with the largest quantity
    assert intent.content.window_end == T0 + 3 * DAY  # the promise, before any shipment exists
    assert run.audit == []
    assert run.duplicates == 0


def test_send_at_is_never_before_the_event():
    # A wall clock behind the shop's clock: do not schedule the message before the order existed.
    run = run_orders(placed(T0), now=T0 - 10 * MINUTE)
    (intent,) = run.intents
    assert intent.send_at == T0
    assert intent.decided_at == T0 - 10 * MINUTE


def test_confirmation_goes_by_email_even_when_sms_is_reachable():
    run = run_orders(placed(T0, channels=contact(sms=True, push=True)))
    assert [i.channel for i in run.intents] == ["email"]


def test_confirmation_without_email_uses_sms():
    run = run_orders(placed(T0, channels=contact(email=False, sms=True)))
    assert [i.channel for i in run.intents] == ["sms"]


# --- fulfilled -------------------------------------------------------------------------------


def test_fulfilled_proposes_shipped_with_the_shipments_items_carrier_and_tracking():
    event = fulfilled(T0 + 5 * HOUR, skus=("LAMP",), carrier="ups", tracking="1Z999")
    run = run_orders(placed(T0), event)

    assert types(run.intents) == ["order_confirmation", "shipped"]
    shipped = run.intents[1]
    assert shipped.content.items == [ItemHint("LAMP", "Lamp", "home", 1)]
    assert shipped.content.category == "home"
    assert shipped.content.carrier == "ups"
    assert shipped.content.tracking_number == "1Z999"
    assert shipped.reason_codes == ["order_fulfilled"]
    assert shipped.channel == "email"
    assert shipped.priority == "normal"
    assert shipped.expires_at == T0 + 5 * HOUR + 48 * HOUR
    assert shipped.source_event_id == event.event_id
    assert shipped.intent_id == ids.intent_id(CUSTOMER, ORDER, "shipped", f"shipped:{SHIPMENT}", "email")
    assert run.audit == []


def test_fulfilled_without_skus_lists_every_item():
    run = run_orders(placed(T0), fulfilled(skus=()))
    assert [i.sku for i in run.intents[1].content.items] == ["TEE", "LAMP"]


def test_each_shipment_gets_its_own_shipped_message():
    run = run_orders(
        placed(T0),
        fulfilled(T0 + 5 * HOUR, shipment_id="S1", skus=("TEE",), tracking="TRK-A"),
        fulfilled(T0 + 6 * HOUR, shipment_id="S2", skus=("LAMP",), tracking="TRK-B"),
    )
    shipped = [i for i in run.intents if i.intent_type == "shipped"]
    assert [(i.content.tracking_number, [x.sku for x in i.content.items]) for i in shipped] == [
        ("TRK-A", ["TEE"]),
        ("TRK-B", ["LAMP"]),
    ]
    assert len({i.intent_id for i in shipped}) == 2


def test_in_transit_scan_announces_the_shipment_when_the_shop_did_not():
    event = scan("in_transit", T0 + 20 * HOUR, eta=T0 + 2 * DAY)
    run = run_orders(placed(T0), event)
    assert types(run.intents) == ["order_confirmation", "shipped"]
    shipped = run.intents[1]
    assert shipped.reason_codes == ["scan:in_transit"]
    assert shipped.content.window_end == T0 + 2 * DAY  # the carrier's estimate
    assert shipped.source_event_id == event.event_id


def test_in_transit_scan_after_fulfilled_is_not_a_second_shipped():
    run = run_orders(placed(T0), fulfilled(), scan("in_transit", T0 + 20 * HOUR))
    assert types(run.intents) == ["order_confirmation", "shipped"]
    assert run.intents[1].reason_codes == ["order_fulfilled"]


# --- out for delivery ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "channels, expected",
    [
        (contact(email=True, sms=True, push=True), "sms"),
        (contact(email=True, sms=False, push=True), "push"),
        (contact(email=True, sms=False, push=False), "email"),
    ],
)
def test_out_for_delivery_prefers_sms_then_push_then_email(channels, expected):
    event = scan("out_for_delivery", T0 + 40 * HOUR)
    run = run_orders(placed(T0, channels=channels), fulfilled(), event)
    ofd = [i for i in run.intents if i.intent_type == "out_for_delivery"]
    assert len(ofd) == 1
    assert ofd[0].channel == expected
    assert ofd[0].priority == "high"
    assert ofd[0].reason_codes == ["scan:out_for_delivery"]
    assert ofd[0].expires_at == T0 + 40 * HOUR + 12 * HOUR
    assert ofd[0].intent_id == ids.intent_id(
        CUSTOMER, ORDER, "out_for_delivery", f"out_for_delivery:{SHIPMENT}:0", expected
    )


def test_a_new_delivery_round_after_a_failed_attempt_gets_a_new_out_for_delivery():
    run = run_orders(
        placed(T0),
        fulfilled(),
        scan("out_for_delivery", T0 + 40 * HOUR),
        scan("attempt_failed", T0 + 44 * HOUR, sub_status="recipient_unavailable"),
        scan("out_for_delivery", T0 + 64 * HOUR),
    )
    ofd = [i for i in run.intents if i.intent_type == "out_for_delivery"]
    assert len(ofd) == 2
    assert ofd[0].intent_id != ofd[1].intent_id
    assert ofd[1].intent_id == ids.intent_id(
        CUSTOMER, ORDER, "out_for_delivery", f"out_for_delivery:{SHIPMENT}:1", "email"
    )
    problem = [f for f in run.facts if f.type == "delivery_problem"]
    assert [f.detail for f in problem] == ["attempt_failed:recipient_unavailable"]
    assert run.state.shipments[SHIPMENT].failed_attempts == 1
    assert run.state.problems == [f"{SHIPMENT}:attempt_failed:recipient_unavailable"]


def test_two_out_for_delivery_scans_without_a_failed_attempt_give_one_message():
    run = run_orders(
        placed(T0),
        fulfilled(),
        scan("out_for_delivery", T0 + 40 * HOUR),
        scan("out_for_delivery", T0 + 41 * HOUR),  # a second scan of the same round
    )
    assert types(run.intents).count("out_for_delivery") == 1
    assert run.audit == []


# --- delivered -------------------------------------------------------------------------------


def test_delivered_on_time():
    event = scan("delivered", T0 + 2 * DAY)
    run = run_orders(placed(T0), fulfilled())
    before = len(run.commands)
    run.feed(event)
    new = run.commands[before:]
    assert [c.kind for c in new] == ["order_fact", "candidate_intent"]
    assert new[0].fact.type == "delivered"
    assert new[0].fact.detail == "on_time"
    assert new[0].command_id == ids.stable_id("fact", event.event_id, "delivered", "on_time")
    delivered = new[1].intent
    assert delivered.intent_type == "delivered"
    assert delivered.reason_codes == ["scan:delivered"]
    assert delivered.priority == "normal"
    assert delivered.channel == "email"
    assert delivered.expires_at == T0 + 2 * DAY + 72 * HOUR
    assert run.state.shipments[SHIPMENT].delivered_at == T0 + 2 * DAY


def test_delivered_exactly_at_the_promise_is_on_time():
    run = run_orders(placed(T0, promised=T0 + 3 * DAY), fulfilled(), scan("delivered", T0 + 3 * DAY))
    assert [f.detail for f in run.facts if f.type == "delivered"] == ["on_time"]
    assert run.intents[-1].reason_codes == ["scan:delivered"]


def test_delivered_after_the_promise_is_late():
    run = run_orders(placed(T0, promised=T0 + 3 * DAY), fulfilled(), scan("delivered", T0 + 3 * DAY + 1))
    assert [f.detail for f in run.facts if f.type == "delivered"] == ["late"]
    assert run.intents[-1].intent_type == "delivered"
    assert run.intents[-1].reason_codes == ["scan:delivered", "delivered_late"]


def test_delivered_without_a_promise_is_on_time():
    run = run_orders(placed(T0, promised=None), fulfilled(), scan("delivered", T0 + 30 * DAY))
    assert [f.detail for f in run.facts if f.type == "delivered"] == ["on_time"]


# --- duplicates ------------------------------------------------------------------------------


def test_a_redelivered_event_is_a_duplicate_with_no_output():
    state = decide_order(None, placed(T0), T0).state
    snapshot = state.to_dict()
    decision = decide_order(state, placed(T0), T0 + MINUTE)
    assert decision.duplicate is True
    assert decision.commands == [] and decision.audit == []
    assert decision.state.to_dict() == snapshot


def test_a_redelivered_scan_is_a_duplicate_with_no_output():
    ofd = scan("out_for_delivery", T0 + 40 * HOUR)
    run = run_orders(placed(T0), fulfilled(), ofd)
    decision = decide_order(run.state, ofd, T0 + 41 * HOUR)
    assert decision.duplicate is True
    assert decision.commands == [] and decision.audit == []


def test_the_same_occasion_under_a_new_event_id_is_not_proposed_twice():
    run = run_orders(placed(T0))
    run.feed(placed(T0, event_id="placed-again"), fulfilled(), fulfilled(event_id="fulfilled-again"))
    assert types(run.intents) == ["order_confirmation", "shipped"]
    assert run.duplicates == 0


# --- forward-only tracking -------------------------------------------------------------------


@pytest.mark.parametrize("late_at", [T0 + 3 * DAY + HOUR, T0 + 40 * HOUR], ids=["newer", "older"])
def test_out_for_delivery_after_delivered_changes_nothing(late_at):
    run = run_orders(
        placed(T0),
        fulfilled(),
        scan("in_transit", T0 + 20 * HOUR),
        scan("out_for_delivery", T0 + 2 * DAY),
        scan("delivered", T0 + 2 * DAY + 3 * HOUR),
    )
    shipment_before = run.state.to_dict()["shipments"]
    n_commands = len(run.commands)
    late = scan("out_for_delivery", late_at, event_id="late-ofd")
    run.feed(late)

    assert run.commands[n_commands:] == []
    assert run.state.shipments[SHIPMENT].status == "delivered"
    assert run.state.to_dict()["shipments"] == shipment_before
    (audit,) = run.audit
    assert (audit.intent_type, audit.decision, audit.reasons) == (
        "out_for_delivery",
        "dropped",
        ["stale:after_delivered"],
    )
    assert audit.source_event_id == "late-ofd"
    assert (audit.customer_id, audit.order_id) == (CUSTOMER, ORDER)
    assert audit.audit_id == ids.audit_id("late-ofd", "out_for_delivery", "dropped", f"out_for_delivery:{SHIPMENT}:0")


def test_a_second_delivered_scan_is_dropped():
    run = run_orders(placed(T0), fulfilled(), scan("delivered", T0 + 2 * DAY))
    n_commands = len(run.commands)
    run.feed(scan("delivered", T0 + 2 * DAY + HOUR, event_id="delivered-again"))
    assert run.commands[n_commands:] == []
    assert audits(run) == [("delivered", "dropped", ["stale:after_delivered"])]


def test_a_scan_older_than_the_last_applied_scan_does_not_change_the_status():
    run = run_orders(
        placed(T0), fulfilled(), scan("in_transit", T0 + 20 * HOUR), scan("out_for_delivery", T0 + 40 * HOUR)
    )
    n_commands = len(run.commands)
    run.feed(
        scan("in_transit", T0 + 30 * HOUR, event_id="late-transit"),
        scan("exception", T0 + 35 * HOUR, sub_status="customs_delay", event_id="late-exception"),
    )
    shipment = run.state.shipments[SHIPMENT]
    assert shipment.status == "out_for_delivery"
    assert shipment.last_scan_at == T0 + 40 * HOUR
    assert shipment.sub_status is None
    assert run.state.problems == []
    assert run.commands[n_commands:] == []  # no shipped again, no delivery_problem for old news
    assert run.audit == []  # stale "shipped"-type and problem scans are not audited


def test_an_out_for_delivery_older_than_the_last_scan_is_dropped_with_a_reason():
    run = run_orders(placed(T0), fulfilled(), scan("in_transit", T0 + 40 * HOUR))
    run.feed(scan("out_for_delivery", T0 + 30 * HOUR))
    assert "out_for_delivery" not in types(run.intents)
    assert audits(run) == [("out_for_delivery", "dropped", ["stale:older_than_last_scan"])]
    assert run.state.shipments[SHIPMENT].status == "in_transit"


def test_a_newer_live_scan_wins():
    run = run_orders(
        placed(T0),
        fulfilled(),
        scan("out_for_delivery", T0 + 40 * HOUR),
        scan("exception", T0 + 41 * HOUR, sub_status="address_issue"),
    )
    shipment = run.state.shipments[SHIPMENT]
    assert (shipment.status, shipment.sub_status) == ("exception", "address_issue")
    assert [f.detail for f in run.facts if f.type == "delivery_problem"] == ["exception:address_issue"]


# --- scans before the order ------------------------------------------------------------------


@pytest.mark.parametrize("scan_customer", [None, CUSTOMER])
def test_scans_before_placed_produce_no_candidate(scan_customer):
    run = run_orders(
        fulfilled(T0 + 5 * HOUR),
        scan("in_transit", T0 + 20 * HOUR, customer_id=scan_customer),
        scan("out_for_delivery", T0 + 40 * HOUR, customer_id=scan_customer),
        scan("delivered", T0 + 44 * HOUR, customer_id=scan_customer),
    )
    assert run.intents == []
    assert run.audit == []
    assert run.state.notified == []


def test_placed_after_delivery_proposes_only_the_latest_news():
    delivered = scan("delivered", T0 + 44 * HOUR)
    event = placed(T0)
    run = run_orders(
        scan("in_transit", T0 + 20 * HOUR),
        scan("out_for_delivery", T0 + 40 * HOUR),
        delivered,
    )
    assert run.commands == [] and run.audit == []
    now = T0 + 45 * HOUR
    run.feed(event, now=now)

    assert [(c.kind, c.fact.type if c.fact else c.intent.intent_type) for c in run.commands] == [
        ("order_fact", "placed"),
        ("order_fact", "delivered"),
        ("candidate_intent", "delivered"),
    ]
    assert run.facts[1].detail == "on_time"
    assert audits(run) == [("order_confirmation", "dropped", ["stale:superseded_by_delivery"])]
    assert run.audit[0].source_event_id == event.event_id
    (intent,) = run.intents
    assert "catch_up" in intent.reason_codes
    assert intent.reason_codes == ["scan:delivered", "catch_up"]
    assert intent.source_event_id == delivered.event_id
    assert intent.expires_at == T0 + 44 * HOUR + 72 * HOUR
    assert intent.send_at == now
    assert intent.customer_id == CUSTOMER

    # Nothing of the backlog comes later either.
    run.feed(fulfilled(T0 + 5 * HOUR), placed(T0, event_id="placed-again"))
    assert types(run.intents) == ["delivered"]


def test_placed_after_out_for_delivery_proposes_out_for_delivery_only():
    run = run_orders(scan("in_transit", T0 + 2 * HOUR), scan("out_for_delivery", T0 + 5 * HOUR))
    run.feed(placed(T0), now=T0 + 6 * HOUR)
    assert types(run.intents) == ["order_confirmation", "out_for_delivery"]
    assert run.intents[1].reason_codes == ["scan:out_for_delivery", "catch_up"]
    # The shop's late fulfilment is old news now.
    run.feed(fulfilled(T0 + HOUR), now=T0 + 6 * HOUR)
    assert types(run.intents) == ["order_confirmation", "out_for_delivery"]
    assert audits(run) == [("shipped", "dropped", ["stale:superseded_by_out_for_delivery"])]


def test_placed_after_a_failed_attempt_and_new_round_proposes_that_round():
    run = run_orders(
        scan("out_for_delivery", T0 + 40 * HOUR),
        scan("attempt_failed", T0 + 44 * HOUR),
        scan("out_for_delivery", T0 + 64 * HOUR),
    )
    run.feed(placed(T0), now=T0 + 65 * HOUR)
    ofd = [i for i in run.intents if i.intent_type == "out_for_delivery"]
    assert len(ofd) == 1
    assert ofd[0].intent_id == ids.intent_id(
        CUSTOMER, ORDER, "out_for_delivery", f"out_for_delivery:{SHIPMENT}:1", "email"
    )


def test_placed_after_in_transit_proposes_shipped():
    run = run_orders(scan("in_transit", T0 + 20 * HOUR))
    run.feed(placed(T0), now=T0 + 21 * HOUR)
    assert types(run.intents) == ["order_confirmation", "shipped"]
    assert run.intents[1].reason_codes == ["scan:in_transit", "catch_up"]


def test_placed_after_fulfilled_proposes_shipped():
    event = fulfilled(T0 + 5 * HOUR)
    run = run_orders(event)
    assert run.intents == []
    run.feed(placed(T0), now=T0 + 6 * HOUR)
    assert types(run.intents) == ["order_confirmation", "shipped"]
    assert run.intents[1].reason_codes == ["order_fulfilled", "catch_up"]
    assert run.intents[1].source_event_id == event.event_id


def test_placed_resent_after_delivery_does_not_report_the_sent_confirmation_as_dropped():
    """The confirmation already went out: a re-sent "placed" (new event id) must not add an audit
    saying it was dropped, nor record the occasion twice (the fulfilled branch guards this)."""
    run = run_orders(placed(T0), fulfilled(), scan("delivered", T0 + 40 * HOUR))
    assert types(run.intents) == ["order_confirmation", "shipped", "delivered"]
    run.feed(placed(T0, event_id="placed-resent"), now=T0 + 41 * HOUR)
    assert types(run.intents) == ["order_confirmation", "shipped", "delivered"]
    assert run.audit == []
    assert run.state.notified.count("order_confirmation") == 1


# --- fulfilled after the carrier's news ------------------------------------------------------


def test_fulfilled_after_out_for_delivery_is_superseded():
    run = run_orders(placed(T0), scan("out_for_delivery", T0 + 40 * HOUR))
    n = len(run.commands)
    event = fulfilled(T0 + 5 * HOUR)
    run.feed(event, now=T0 + 41 * HOUR)
    assert run.commands[n:] == []
    assert audits(run) == [("shipped", "dropped", ["stale:superseded_by_out_for_delivery"])]
    assert run.audit[0].source_event_id == event.event_id
    # A redelivered fulfilment under a new id is not audited twice.
    run.feed(fulfilled(T0 + 5 * HOUR, event_id="fulfilled-again"), now=T0 + 41 * HOUR)
    assert len(run.audit) == 1
    assert "shipped" not in types(run.intents)


def test_fulfilled_after_delivered_is_superseded_by_delivered():
    run = run_orders(placed(T0), scan("delivered", T0 + 44 * HOUR), fulfilled(T0 + 5 * HOUR))
    assert "shipped" not in types(run.intents)
    assert ("shipped", "dropped", ["stale:superseded_by_delivered"]) in audits(run)


# --- cancelled -------------------------------------------------------------------------------


def test_cancelled_order_skips_later_shipping_news():
    run = run_orders(
        placed(T0),
        cancelled(T0 + HOUR, reason="customer"),
        fulfilled(T0 + 5 * HOUR),
        scan("in_transit", T0 + 20 * HOUR),
        scan("out_for_delivery", T0 + 40 * HOUR),
        scan("delivered", T0 + 44 * HOUR),
    )
    assert types(run.intents) == ["order_confirmation"]
    assert audits(run) == [
        ("shipped", "skipped", ["order_cancelled"]),
        ("out_for_delivery", "skipped", ["order_cancelled"]),
        ("delivered", "skipped", ["order_cancelled"]),
    ]
    assert run.state.status == "cancelled"
    assert run.state.cancelled_at == T0 + HOUR
    cancel_facts = [f for f in run.facts if f.type == "cancelled"]
    assert [f.detail for f in cancel_facts] == ["customer"]


def test_cancelled_before_placed_is_not_confirmed():
    """Shop webhooks are not ordered: a cancellation processed before the order itself must not be
    followed by an order confirmation for an order the state already knows is cancelled."""
    run = run_orders(cancelled(T0 + HOUR), placed(T0))
    assert run.state.status == "cancelled"
    assert types(run.intents) == []
    assert ("order_confirmation", "skipped", ["order_cancelled"]) in audits(run)


def test_refunded_order_still_reports_delivery():
    run = run_orders(
        placed(T0),
        order_event("refunded", T0 + HOUR, reason="goodwill", amount=10.0),
        fulfilled(),
        scan("delivered", T0 + 44 * HOUR),
    )
    assert run.state.status == "refunded"
    assert types(run.intents) == ["order_confirmation", "shipped", "delivered"]
    assert [f.detail for f in run.facts if f.type == "refunded"] == ["goodwill"]


# --- staleness with a wall clock -------------------------------------------------------------


@pytest.mark.parametrize(
    "events, ttl",
    [
        ([placed(T0)], 24 * HOUR),
        ([placed(T0 - 10 * DAY), fulfilled(T0)], 48 * HOUR),
        ([placed(T0 - 10 * DAY), scan("out_for_delivery", T0)], 12 * HOUR),
        ([placed(T0 - 10 * DAY), scan("delivered", T0)], 72 * HOUR),
    ],
    ids=["order_confirmation", "shipped", "out_for_delivery", "delivered"],
)
def test_news_older_than_its_ttl_is_dropped_and_never_proposed_again(events, ttl):
    *setup, event = events
    intent_type = {"placed": "order_confirmation", "fulfilled": "shipped"}.get(
        getattr(event, "type", None), getattr(event, "status", None)
    )

    # Exactly at the TTL it still goes out...
    fresh = run_orders(*setup, now=event.event_time).feed(event, now=event.event_time + ttl)
    assert intent_type in types(fresh.intents)

    # ...one millisecond later it is dropped, with a reason.
    run = run_orders(*setup, now=event.event_time).feed(event, now=event.event_time + ttl + 1)
    assert intent_type not in types(run.intents)
    assert (intent_type, "dropped", ["stale:event_too_old"]) in audits(run)
    n_commands, n_audit = len(run.commands), len(run.audit)

    # A fresh copy of the same news (new event id) later does not resurrect the occasion.
    again = (
        placed(event.event_time, event_id="again")
        if intent_type == "order_confirmation"
        else fulfilled(event.event_time, event_id="again")
        if intent_type == "shipped"
        else scan(event.status, event.event_time, event_id="again")
    )
    run.feed(again, now=event.event_time + MINUTE)
    assert [c for c in run.commands[n_commands:] if c.kind == "candidate_intent"] == []
    assert intent_type not in types(run.intents)
    assert all(a.reasons != ["stale:event_too_old"] for a in run.audit[n_audit:])


def test_stale_placed_still_reports_the_placed_fact():
    run = run_orders(placed(T0), now=T0 + 2 * DAY)
    assert [f.type for f in run.facts] == ["placed"]
    assert run.intents == []


# --- determinism and state -------------------------------------------------------------------


def test_same_timeline_in_a_fresh_state_gives_the_same_ids_and_commands():
    timeline = full_lifecycle(contact(sms=True))
    first = run_orders(*timeline)
    second = run_orders(*timeline)
    assert types(first.intents) == [
        "order_confirmation",
        "shipped",
        "out_for_delivery",
        "delivery_attempt_failed",
        "delay_warning",
        "out_for_delivery",
        "delivered",
    ]
    assert [i.intent_id for i in first.intents] == [i.intent_id for i in second.intents]
    assert first.commands == second.commands
    assert first.audit == second.audit
    assert len({i.intent_id for i in first.intents}) == len(first.intents)


def test_same_timeline_twice_in_one_state_gives_nothing_the_second_time():
    timeline = full_lifecycle()
    run = run_orders(*timeline)
    n_commands, n_audit = len(run.commands), len(run.audit)
    run.feed(*timeline, now=T0 + 100 * HOUR)
    assert run.duplicates == len(timeline)
    assert run.commands[n_commands:] == [] and run.audit[n_audit:] == []


def test_state_stored_between_events_gives_the_same_decisions():
    """The app stores state as a dict after each event and rebuilds it for the next one."""
    timeline = full_lifecycle(contact(sms=True))
    direct = run_orders(*timeline)
    commands, audit, stored = [], [], None
    for event in timeline:
        decision = decide_order(OrderState.from_dict(stored) if stored else None, event, event.event_time)
        stored = json_roundtrip(decision.state.to_dict())
        commands += decision.commands
        audit += decision.audit
    assert commands == direct.commands
    assert audit == direct.audit
    assert OrderState.from_dict(stored) == direct.state


def test_order_state_round_trip_after_a_full_lifecycle():
    run = run_orders(
        *full_lifecycle(contact(sms=True, push=True)),
        cancelled(T0 + 90 * HOUR),
        order_event("refunded", T0 + 91 * HOUR, amount=1.5),
    )
    state = run.state
    assert state.shipments[SHIPMENT].status == "delivered"
    assert state.problems and state.notified and state.items and state.contact
    data = state.to_dict()
    assert OrderState.from_dict(data) == state
    assert OrderState.from_dict(orjson.loads(orjson.dumps(data))) == state
    assert OrderState.from_dict(data).to_dict() == data


def test_full_lifecycle_outputs():
    run = run_orders(*full_lifecycle(contact(sms=True)))
    assert [(i.intent_type, i.channel, i.reason_codes) for i in run.intents] == [
        ("order_confirmation", "email", ["order_placed"]),
        ("shipped", "email", ["order_fulfilled"]),
        ("out_for_delivery", "sms", ["scan:out_for_delivery"]),
        ("delivery_attempt_failed", "sms", ["scan:attempt_failed:recipient_unavailable"]),
        # The failed attempt pushes the carrier's estimate past the promise: warn before they ask.
        ("delay_warning", "email", ["p_late:0.90", "basis:carrier_eta"]),
        ("out_for_delivery", "sms", ["scan:out_for_delivery"]),
        ("delivered", "email", ["scan:delivered", "delivered_late"]),
    ]
    assert run.state.timers == {}  # a delivered parcel leaves nothing scheduled
    assert [(f.type, f.detail) for f in run.facts] == [
        ("placed", None),
        ("delivery_problem", "attempt_failed:recipient_unavailable"),
        ("delivery_problem", "delay:predicted"),
        ("delivered", "late"),
    ]
    assert run.audit == []
    assert run.state.notified == [
        "order_confirmation",
        f"shipped:{SHIPMENT}",
        f"out_for_delivery:{SHIPMENT}:0",
        f"delivery_attempt_failed:{SHIPMENT}:0",
        f"delay_warning:{SHIPMENT}",
        f"out_for_delivery:{SHIPMENT}:1",
        f"delivered:{SHIPMENT}",
    ]


# --- catch-up must not depend on which topic was read first ----------------------------------


def test_placed_after_fulfilled_and_info_received_still_proposes_shipped():
    """Same facts as placed -> fulfilled -> info_received (which proposes "shipped"), only the
    order feed lagged. The latest news of the shipment is the shop's fulfilment."""
    in_order = run_orders(placed(T0), fulfilled(T0 + HOUR), scan("info_received", T0 + 2 * HOUR))
    assert types(in_order.intents) == ["order_confirmation", "shipped"]

    lagged = run_orders(fulfilled(T0 + HOUR), scan("info_received", T0 + 2 * HOUR))
    lagged.feed(placed(T0), now=T0 + 3 * HOUR)
    assert types(lagged.intents) == ["order_confirmation", "shipped"]


@pytest.mark.parametrize("scan_customer", [None, CUSTOMER])
def test_late_delivery_seen_before_placed_is_reported_late(scan_customer):
    """The promise is only known once "placed" is processed: a delivery scan processed before it
    must still reach the customer stage as a late delivery, once, with the late reason."""
    run = run_orders(scan("delivered", T0 + 80 * HOUR, customer_id=scan_customer))
    run.feed(placed(T0, promised=T0 + 72 * HOUR), now=T0 + 81 * HOUR)
    assert [(f.type, f.detail) for f in run.facts if f.type == "delivered"] == [("delivered", "late")]
    (delivered,) = [i for i in run.intents if i.intent_type == "delivered"]
    assert "delivered_late" in delivered.reason_codes


@pytest.mark.parametrize(
    "early",
    [cancelled(T0 + HOUR, reason="customer"), order_event("refunded", T0 + HOUR, reason="customer", amount=1.0)],
    ids=["cancelled", "refunded"],
)
def test_cancel_or_refund_processed_before_placed_still_reaches_the_customer_stage(early):
    """In order, the customer stage gets a "cancelled"/"refunded" fact (last_cancel_at/last_refund_at).
    Out of order it must get the same fact once the order is known, not lose it."""
    in_order = run_orders(placed(T0), early)
    assert [(f.type, f.detail) for f in in_order.facts] == [("placed", None), (early.type, "customer")]

    lagged = run_orders(early, placed(T0))
    assert sorted((f.type, f.detail or "") for f in lagged.facts) == sorted([(early.type, "customer"), ("placed", "")])


def test_placed_after_fulfilled_and_returned_to_sender_does_not_announce_shipped():
    """In order, a fulfilment after "returned_to_sender" is dropped as superseded (SUPERSEDES_SHIPPED);
    the catch-up for a lagging order feed must not announce "shipped" for that parcel either."""
    in_order = run_orders(
        placed(T0), scan("returned_to_sender", T0 + 5 * HOUR, sub_status="return"), fulfilled(T0 + HOUR)
    )
    assert "shipped" not in types(in_order.intents)

    lagged = run_orders(fulfilled(T0 + HOUR), scan("returned_to_sender", T0 + 5 * HOUR, sub_status="return"))
    lagged.feed(placed(T0), now=T0 + 6 * HOUR)
    assert types(lagged.intents) == ["order_confirmation"]
