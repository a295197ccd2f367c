"""The JSON views of stored order and customer state (streams/live_state.py), on state records as the
core stores them."""

from __future__ import annotations

from streams.core.model import DecisionAudit
from streams.core.state import ChannelState, CustomerState, OrderState, Shipment
from streams.live_state import customer_view, merge_decisions, order_view, recent_decisions

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000


def stored_order(**extra) -> dict:
    order = OrderState(
        order_id="O-1",
        customer_id="C-1",
        placed_at=T0,
        paid_at=T0 + HOUR,
        promised_delivery_at=T0 + 72 * HOUR,
        problems=["O-1-S2:exception:customs_delay"],
        notified=["order_confirmation", "shipped:O-1-S1"],
        updated_at=T0 + 50 * HOUR,
    )
    order.shipments = {
        "O-1-S1": Shipment(
            "O-1-S1",
            "dhl",
            tracking_number="TRK1",
            fulfilled_at=T0 + 5 * HOUR,
            status="delivered",
            first_scan_at=T0 + 20 * HOUR,
            last_scan_at=T0 + 44 * HOUR,
            delivered_at=T0 + 44 * HOUR,
        ),
        "O-1-S2": Shipment(
            "O-1-S2",
            "ups",
            tracking_number="TRK2",
            status="exception",
            sub_status="customs_delay",
            last_scan_at=T0 + 50 * HOUR,
        ),
    }
    return {**order.to_dict(), **extra}


def test_order_view_serves_the_stored_state_and_what_follows_from_it():
    stored = stored_order()
    view = order_view(stored, {"intents": [], "audit": []}, now_ms=T0 + 80 * HOUR)
    assert view["state"] == stored and view["order_id"] == "O-1"
    derived = view["derived"]
    assert derived["tracking"]["O-1-S1"]["status"] == "delivered"
    assert derived["tracking"]["O-1-S2"] == {
        "status": "exception",
        "sub_status": "customs_delay",
        "carrier": "ups",
        "tracking_number": "TRK2",
        "last_scan": "2026-01-03T02:00:00Z",
        "delivered": None,
    }
    assert derived["promised_delivery"] == "2026-01-04T00:00:00Z"
    assert derived["late"] is True  # S2 is still out past the promise
    assert derived["open_problems"] == ["O-1-S2:exception:customs_delay"]
    assert derived["notified"] == ["order_confirmation", "shipped:O-1-S1"]
    assert [(e["what"], e.get("shipment_id")) for e in derived["timeline"]] == [
        ("placed", None),
        ("paid", None),
        ("fulfilled", "O-1-S1"),
        ("first_scan", "O-1-S1"),
        ("last_scan", "O-1-S1"),
        ("delivered", "O-1-S1"),
        ("last_scan", "O-1-S2"),
        ("promised_delivery", None),
    ]


def test_fields_the_core_adds_later_are_served_and_join_the_timeline():
    stored = stored_order(returned_at=T0 + 100 * HOUR, loyalty_tier="gold")
    view = order_view(stored, {"intents": [], "audit": []}, now_ms=T0)
    assert view["state"]["loyalty_tier"] == "gold"
    assert view["derived"]["timeline"][-1] == {
        "what": "returned",
        "at": T0 + 100 * HOUR,
        "time": "2026-01-05T04:00:00Z",
    }


def test_lateness():
    on_time = stored_order()
    on_time["shipments"]["O-1-S2"]["delivered_at"] = T0 + 60 * HOUR
    assert order_view(on_time, {}, now_ms=T0 + 999 * HOUR)["derived"]["late"] is False
    assert order_view(stored_order(), {}, now_ms=T0 + 10 * HOUR)["derived"]["late"] is False
    assert order_view(stored_order(promised_delivery_at=None), {}, now_ms=T0)["derived"]["late"] is None


def test_customer_view_consent_and_reachability_per_channel():
    customer = CustomerState(
        customer_id="C-1",
        orders_count=2,
        open_tickets=["T-9"],
        recent_intents=[{"intent_id": "i1", "at": T0}, {"intent_id": "i2", "at": T0 + HOUR}],
    )
    customer.channels = {
        "email": ChannelState(reachable=True, marketing_consent=True),
        "sms": ChannelState(reachable=True, bounced=True),
        "push": ChannelState(reachable=True, unsubscribed_all=True),
    }
    view = customer_view(customer.to_dict(), {"intents": [], "audit": []})
    derived = view["derived"]
    assert derived["channels"] == {
        "email": {"consent": "marketing_and_transactional", "reachable": True, "bounced": False},
        "sms": {"consent": "transactional_only", "reachable": False, "bounced": True},
        "push": {"consent": "none", "reachable": False, "bounced": False},
    }
    assert derived["reachable_channels"] == ["email"] and derived["bounced_channels"] == ["sms"]
    assert (derived["orders_count"], derived["open_tickets"]) == (2, ["T-9"])
    assert derived["last_contacted"] == "2026-01-01T01:00:00Z"
    assert derived["engaged_hours"] == []  # no opens or clicks yet


def test_customer_view_says_when_the_customer_engages():
    hours = [0.0] * 24
    hours[19], hours[8], hours[12] = 3.5, 1.2, 0.4
    customer = CustomerState(customer_id="C-2", send_time={"hours": hours, "days": [0.7] * 7, "at": T0})
    assert customer_view(customer.to_dict(), {"intents": [], "audit": []})["derived"]["engaged_hours"] == [19, 8, 12]


def audit(audit_id: str, order_id: str, customer_id: str, at: int) -> DecisionAudit:
    return DecisionAudit(
        audit_id=audit_id,
        decided_at=at,
        customer_id=customer_id,
        intent_type="delivered",
        decision="dropped",
        reasons=["stale:after_delivered"],
        source_event_id="e",
        order_id=order_id,
    )


def test_recent_decisions_of_one_order_merged_across_workers():
    recent = {"intents": [], "audit": [audit("a1", "O-1", "C-1", T0), audit("a2", "O-2", "C-1", T0 + 1)]}
    mine = recent_decisions(recent, order_id="O-1")
    assert [a["audit_id"] for a in mine["audit"]] == ["a1"] and mine["intents"] == []
    assert [a["audit_id"] for a in recent_decisions(recent, customer_id="C-1")["audit"]] == ["a1", "a2"]
    theirs = {"intents": [], "audit": [{**mine["audit"][0]}, {"audit_id": "a0", "decided_at": T0 - 5}]}
    assert [a["audit_id"] for a in merge_decisions(mine, theirs)["audit"]] == ["a0", "a1"]
