"""The return journey in the order stage (streams/core/orders.py, returns section) and its guard in
the customer stage: each step the customer waits for is said once per return, whatever order the
facts come in; a refund later than the shop's usual time is said before the customer asks; the
return parcel's scans never become delivery messages; reviews and promotions wait while it is open."""

from __future__ import annotations

from helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    ORDER,
    T0,
    CustomerRun,
    OrderRun,
    fact_command,
    fulfilled,
    item,
    json_roundtrip,
    order_event,
    placed,
    scan,
    types,
)
from streams.core.guard import customer_block
from streams.core.model import Due, ReturnInfo, ReturnItem, ReturnLabel
from streams.core.orders import REFUND_KEY, decide_order
from streams.core.policy import PolicyConfig
from streams.core.state import OrderState

DELIVERED = T0 + 2 * DAY
RETURN = "R1"
LABEL = "RT-9"


def ret(type_: str, at: int, return_id: str = RETURN, **info) -> object:
    items = info.pop("items", [ReturnItem("TEE", 1, "size_too_small")])
    return order_event(type_, at, return_info=ReturnInfo(return_id, items=items, **info))


def delivered_order() -> OrderRun:
    return OrderRun().feed(
        placed(T0), fulfilled(T0 + 5 * HOUR), scan("in_transit", T0 + DAY), scan("delivered", DELIVERED)
    )


def label(at: int) -> object:
    return ret("return_label_created", at, label=ReturnLabel(LABEL, "dhl", "RTRK9"))


def journey_until_received(run: OrderRun) -> OrderRun:
    return run.feed(
        ret("return_requested", DELIVERED + DAY, resolution="refund"),
        ret("return_approved", DELIVERED + DAY + HOUR),
        label(DELIVERED + DAY + 2 * HOUR),
        scan("in_transit", DELIVERED + 2 * DAY, shipment_id=LABEL, tracking="RTRK9"),
        scan("delivered", DELIVERED + 4 * DAY, shipment_id=LABEL, tracking="RTRK9"),
    )


def fire(run: OrderRun, kind: str, lanes: dict | None = None) -> OrderRun:
    due_at = run.state.timers[kind]
    decision = decide_order(run.state, Due(ORDER, kind, due_at, due_at), due_at, lanes or {})
    run.state = decision.state
    run.commands.extend(decision.commands)
    run.audit.extend(decision.audit)
    return run


def test_a_return_from_request_to_refund_says_each_step_once_and_the_parcel_back_is_no_delivery():
    run = journey_until_received(delivered_order())
    before = len(run.intents)
    run.feed(
        ret("return_received", DELIVERED + 4 * DAY + HOUR),  # the shop says it too: no second message
        ret("return_inspected", DELIVERED + 5 * DAY, disposition="restocked"),
        order_event("refunded", DELIVERED + 6 * DAY, amount=25.0, currency="EUR", return_info=ReturnInfo(RETURN)),
        ret("return_closed", DELIVERED + 6 * DAY + HOUR),
    )
    said = types(run.intents)
    assert said[:4] == ["order_confirmation", "shipped", "delivered", "return_label_ready"]
    assert said[before - 1 :] == ["return_received", "refund_issued"]
    assert said.count("delivered") == 1 and "shipped" not in said[3:]  # the return parcel is not news
    label_ready, received, refunded = [i for i in run.intents if i.content.return_id == RETURN]
    assert (label_ready.content.carrier, label_ready.content.tracking_number) == ("dhl", "RTRK9")
    assert [(i.sku, i.title, i.quantity) for i in label_ready.content.items] == [("TEE", "Tee", 1)]
    assert received.reason_codes == ["return_scan:delivered"]
    assert (refunded.content.amount, refunded.content.currency) == (25.0, "EUR")
    journey = run.state.returns[RETURN]
    assert journey.status == "closed" and journey.disposition == "restocked"
    assert "refund_due:R1" not in run.state.timers and LABEL not in run.state.shipments
    facts = [(f.type, f.detail) for f in run.facts if f.type.startswith("return")]
    assert facts == [("return_opened", RETURN), ("return_closed", "R1:refunded")]
    assert OrderState.from_dict(json_roundtrip(run.state.to_dict())) == run.state


def test_a_refund_later_than_usual_is_announced_once_before_it_comes():
    run = journey_until_received(delivered_order())
    due = run.state.timers["refund_due:R1"]
    assert due - (DELIVERED + 4 * DAY) >= 5 * DAY  # five business days without history
    fire(run, "refund_due:R1")
    (delayed,) = [i for i in run.intents if i.intent_type == "refund_delayed"]
    assert delayed.kind == "service" and delayed.reason_codes == ["no_refund_after:5.0bd", "basis:default"]
    run.feed(order_event("refunded", due + DAY, amount=25.0, return_info=ReturnInfo(RETURN)))
    assert run.intents[-1].intent_type == "refund_issued"
    assert run.intents[-1].reason_codes == ["refund_issued", "after:refund_delayed"]


def test_the_usual_refund_time_is_learned_from_the_shops_own_refunds():
    learned: dict = {}
    for n in range(25):  # refunds 2 business days after the parcel is back
        order = f"O-{n}"
        state = None
        base = T0 + n * 7 * DAY
        for event in [
            placed(base, order_id=order),
            order_event("return_requested", base + DAY, order_id=order, return_info=ReturnInfo(f"R{n}")),
            order_event("return_received", base + 2 * DAY, order_id=order, return_info=ReturnInfo(f"R{n}")),
            order_event("refunded", base + 2 * DAY, order_id=order, return_info=ReturnInfo(f"R{n}"), amount=1.0),
        ]:
            decision = decide_order(state, event, event.event_time, learned)
            state = decision.state
            learned.update(decision.lanes)
    assert REFUND_KEY in learned
    run = OrderRun()
    run.state = None
    for event in [placed(T0), ret("return_requested", T0 + DAY), ret("return_received", T0 + 2 * DAY)]:
        decision = decide_order(run.state, event, event.event_time, learned)
        run.state = decision.state
    due = run.state.timers["refund_due:R1"]
    assert due - (T0 + 2 * DAY) < 5 * DAY  # learned: sooner than the five-day default


def test_scans_of_the_return_parcel_before_its_label_are_the_return_not_a_delivery():
    run = delivered_order().feed(ret("return_requested", DELIVERED + DAY))
    run.feed(scan("in_transit", DELIVERED + 2 * DAY, shipment_id=LABEL, tracking="RTRK9"))
    run.feed(scan("delivered", DELIVERED + 3 * DAY, shipment_id=LABEL, tracking="RTRK9"))
    assert types(run.intents)[-1] == "return_received"
    assert types(run.intents).count("delivered") == 1 and LABEL not in run.state.shipments
    run.feed(label(DELIVERED + DAY + HOUR))  # the label event arrives last: its message is old news by now
    assert run.state.returns[RETURN].label_shipment_id == LABEL


def test_a_declined_return_says_so_and_closes():
    run = delivered_order().feed(
        ret("return_requested", DELIVERED + DAY),
        ret("return_declined", DELIVERED + DAY + HOUR, note="Outside the 30-day window"),
    )
    assert types(run.intents)[-1] == "return_declined"
    assert [(f.type, f.detail) for f in run.facts if f.type.startswith("return")] == [
        ("return_opened", RETURN),
        ("return_closed", "R1:declined"),
    ]


def test_an_exchange_order_is_not_confirmed_and_ships_as_an_exchange():
    original = delivered_order().feed(
        ret("return_requested", DELIVERED + DAY, resolution="exchange"),
        ret("exchange_created", DELIVERED + DAY + HOUR, exchange_order_id="O-X"),
    )
    assert "refund_due:R1" not in original.state.timers
    exchange = OrderRun().feed(
        order_event(
            "placed",
            DELIVERED + DAY + HOUR,
            order_id="O-X",
            line_items=[],
            exchange_of=ORDER,
        ),
        fulfilled(DELIVERED + 2 * DAY, order_id="O-X", shipment_id="S-X", skus=()),
    )
    assert types(exchange.intents) == ["exchange_shipped"]
    assert [(a.intent_type, a.decision, a.reasons[0]) for a in exchange.audit] == [
        ("order_confirmation", "skipped", "exchange_order")
    ]


def test_reviews_and_promotions_wait_while_a_return_is_open_and_for_a_cool_down_after():
    config = PolicyConfig()
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", T0, items=[item("TEE", "fashion")]))
    assert customer_block(run.state, T0 + DAY, config) is None
    run.feed(fact_command("return_opened", T0 + DAY, detail=RETURN))
    block = customer_block(run.state, T0 + 2 * DAY, config)
    assert block.reasons == ["guard:return_open"] and block.until is None
    run.feed(fact_command("return_closed", T0 + 5 * DAY, detail="R1:refunded"))
    block = customer_block(run.state, T0 + 6 * DAY, config)
    assert block.reasons == ["guard:return"] and block.until == T0 + 5 * DAY + config.refund_cooldown_ms
    assert run.state.orders[ORDER].returned and not run.state.open_returns
    assert customer_block(run.state, T0 + 5 * DAY + config.refund_cooldown_ms, config) is None


def test_a_declined_return_lifts_the_hold_without_a_cool_down():
    config = PolicyConfig()
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", T0, items=[item("TEE", "fashion")]))
    run.feed(fact_command("return_opened", T0 + DAY, detail=RETURN))
    run.feed(fact_command("return_closed", T0 + 2 * DAY, detail="R1:declined"))
    assert customer_block(run.state, T0 + 3 * DAY, config) is None
    assert not run.state.orders[ORDER].returned


def test_customer_id_is_kept_on_return_facts():
    run = journey_until_received(delivered_order())
    assert all(c.customer_id == CUSTOMER for c in run.commands)


def test_the_order_view_answers_where_is_my_refund():
    from streams.live_state import order_view

    run = journey_until_received(delivered_order())
    stored = json_roundtrip(run.state.to_dict())
    due = run.state.timers["refund_due:R1"]
    view = order_view(stored, {"intents": [], "audit": []}, due - HOUR)["derived"]
    refund = view["returns"][RETURN]["refund"]
    assert view["returns"][RETURN]["status"] == "received" and refund["state"] == "expected"
    assert {"requested", "label", "shipped", "received"} <= {e["what"] for e in view["returns"][RETURN]["timeline"]}
    assert any(e.get("return_id") == RETURN for e in view["timeline"])
    assert (
        order_view(stored, {"intents": [], "audit": []}, due + HOUR)["derived"]["returns"][RETURN]["refund"]["state"]
        == "overdue"
    )
    run.feed(order_event("refunded", due - DAY, amount=25.0, return_info=ReturnInfo(RETURN, refund_method="gift_card")))
    refund = order_view(json_roundtrip(run.state.to_dict()), {}, due)["derived"]["returns"][RETURN]["refund"]
    assert (refund["state"], refund["amount"], refund["method"]) == ("refunded", 25.0, "gift_card")


def test_the_cool_down_after_a_return_does_not_hold_the_messages_of_its_exchange_order():
    config = PolicyConfig()
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", T0, items=[item("TEE", "fashion")]))
    run.feed(fact_command("return_opened", T0 + DAY, detail=RETURN))
    run.feed(fact_command("placed", T0 + 2 * DAY, order_id="O-X", detail=f"exchange_of:{ORDER}"))
    run.feed(fact_command("return_closed", T0 + 2 * DAY, detail="R1:exchanged"))
    assert customer_block(run.state, T0 + 3 * DAY, config).reasons == ["guard:return"]
    assert customer_block(run.state, T0 + 3 * DAY, config, "O-X") is None


def test_care_tips_and_onboarding_stop_when_everything_delivered_goes_back():
    run = CustomerRun(fire_dues=True)
    run.feed(fact_command("placed", T0, items=[item("TEE", "fashion")]))
    run.feed(fact_command("delivered", T0 + DAY, items=[item("TEE", "fashion")]))
    run.feed(fact_command("return_opened", T0 + DAY + HOUR, detail=RETURN, items=[item("TEE", "fashion")]))
    assert run.state.orders[ORDER].returning == [RETURN]
    run.advance(T0 + 20 * DAY)
    assert "care_tips" not in types(run.intents)
    skipped = [(a.intent_type, a.reasons) for a in run.audit if a.intent_type == "care_tips"]
    assert skipped and all("order_returned" in reasons for _, reasons in skipped)
    run.feed(fact_command("return_closed", T0 + 21 * DAY, detail="R1:declined"))
    assert run.state.orders[ORDER].returning == [] and not run.state.orders[ORDER].returned


def test_a_partial_return_keeps_the_rest_of_the_orders_care_tips():
    run = CustomerRun(fire_dues=True)
    both = [item("TEE", "fashion"), item("MUG", "home")]
    run.feed(fact_command("placed", T0, items=both), fact_command("delivered", T0 + DAY, items=both))
    run.feed(fact_command("return_opened", T0 + DAY + HOUR, detail=RETURN, items=[item("TEE", "fashion")]))
    assert run.state.orders[ORDER].returning == []


def test_returning_one_of_two_of_the_same_item_is_a_partial_return():
    run = CustomerRun(fire_dues=True)
    two = [item("TEE", "fashion", quantity=2)]
    run.feed(fact_command("placed", T0, items=two), fact_command("delivered", T0 + DAY, items=two))
    run.feed(fact_command("return_opened", T0 + DAY + HOUR, detail=RETURN, items=[item("TEE", "fashion")]))
    assert run.state.orders[ORDER].returning == []
    run.feed(fact_command("return_opened", T0 + DAY + 2 * HOUR, detail="R2", items=[item("TEE", "fashion", 2)]))
    assert run.state.orders[ORDER].returning == ["R2"]


def test_a_return_parcel_scanned_before_its_return_is_known_waits_for_it():
    run = delivered_order()
    back = dict(shipment_id=LABEL, tracking="RTRK9")
    first = [scan("in_transit", DELIVERED + 2 * DAY, **back), scan("delivered", DELIVERED + 3 * DAY, **back)]
    for s in first:
        s.direction = "return"  # the tracker knows a return label
    run.feed(*first)
    assert types(run.intents).count("delivered") == 1 and LABEL not in run.state.shipments
    assert types(run.intents)[-1] == "delivered"  # nothing said yet: no return known
    run.feed(ret("return_requested", DELIVERED + DAY, resolution="refund"))
    assert types(run.intents)[-1] == "return_received"
    assert list(run.state.returns) == [RETURN] and run.state.returns[RETURN].label_shipment_id == LABEL
    assert "refund_due:R1" in run.state.timers
