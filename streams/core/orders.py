"""Order stage: folds order events and carrier scans into the order's state and proposes messages.

Runs on the partition that owns the order (orders and scans are co-partitioned by order id).
Its messages are candidates: the customer stage checks them against consent and reachability
before they become intents.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from . import ids
from .model import (
    CarrierScan, ContactChannels, ContentHints, CustomerCommand, DecisionAudit, ItemHint,
    MessageIntent, OrderEvent, OrderFact, Schedule,
)
from .state import OrderState, Shipment
from .tracking import PROBLEMS, apply_scan
from .transactional import SCAN_TOUCHPOINT, TOUCHPOINTS, occasion, preferred_channel


class Trigger(NamedTuple):
    """The event a decision answers to: its id for audit and ids, its time for expiry."""

    event_id: str
    event_time: int


@dataclass(slots=True)
class OrderDecision:
    state: OrderState
    commands: list[CustomerCommand] = field(default_factory=list)  # to the customer stage
    audit: list[DecisionAudit] = field(default_factory=list)
    schedule: list[Schedule] = field(default_factory=list)  # call me back (see model.Schedule)
    lanes: dict = field(default_factory=dict)  # lane key -> updated LaneStats dict, to store
    duplicate: bool = False


def decide_order(state: OrderState | None, event: OrderEvent | CarrierScan, now: int) -> OrderDecision:
    """Fold one event into the order. Takes ownership of `state` (it may be changed in place)."""
    if state is None:
        state = OrderState(order_id=event.order_id)
    decision = OrderDecision(state)
    if not state.first_time(event.event_id):
        decision.duplicate = True
        return decision
    state.updated_at = max(state.updated_at or 0, event.event_time)
    if isinstance(event, OrderEvent):
        _on_order_event(decision, event, now)
    else:
        _on_scan(decision, event, now)
    return decision


# --- order events ----------------------------------------------------------------------------

def _on_order_event(decision: OrderDecision, event: OrderEvent, now: int) -> None:
    state = decision.state
    state.customer_id = event.customer_id
    if event.type == "placed":
        repeated = state.placed_at is not None
        _record_placement(state, event)
        if repeated:
            return  # the shop re-sent the order (new event id): details refreshed, nothing new to say
        _fact(decision, event, "placed")
        if state.status == "cancelled":
            # The cancellation overtook the order: confirming it now would only confuse.
            _audit(decision, event, "order_confirmation", "skipped", ["order_cancelled"], now,
                   occasion("order_confirmation"))
            state.notified.append(occasion("order_confirmation"))
        elif any(s.status == "delivered" for s in state.shipments.values()):
            # The order feed lagged behind the carrier's: a confirmation after delivery is noise.
            _audit(decision, event, "order_confirmation", "dropped", ["stale:superseded_by_delivery"], now,
                   occasion("order_confirmation"))
            state.notified.append(occasion("order_confirmation"))
        else:
            _propose(decision, event, "order_confirmation", None, ["order_placed"], now)
        _catch_up(decision, now)
    elif event.type == "paid":
        state.paid_at = event.event_time
    elif event.type == "cancelled":
        state.status = "cancelled"
        state.cancelled_at = event.event_time
        state.cancel_reason = event.reason
        _fact(decision, event, "cancelled", detail=event.reason)
    elif event.type == "refunded":
        if state.status == "open":
            state.status = "refunded"
        state.refunded_at = event.event_time
        state.refund_reason = event.reason
        _fact(decision, event, "refunded", detail=event.reason)
    elif event.type == "fulfilled":
        f = event.fulfillment
        shipment = state.shipments.get(f.shipment_id)
        if shipment is None:
            shipment = state.shipments[f.shipment_id] = Shipment(shipment_id=f.shipment_id, carrier=f.carrier)
        shipment.carrier = f.carrier
        shipment.service_level = f.service_level or shipment.service_level
        shipment.tracking_number = f.tracking_number or shipment.tracking_number
        shipment.skus = list(f.skus) or shipment.skus
        shipment.fulfilled_at = event.event_time
        shipment.fulfilled_event_id = event.event_id
        if shipment.status in SUPERSEDES_SHIPPED:
            # The carrier's news is ahead of the shop's: "shipped" now would be old news.
            occ = occasion("shipped", shipment.shipment_id)
            if occ not in state.notified:
                state.notified.append(occ)
                _audit(decision, event, "shipped", "dropped", [f"stale:superseded_by_{shipment.status}"], now, occ)
        else:
            _propose(decision, event, "shipped", shipment, ["order_fulfilled"], now)


def _catch_up(decision: OrderDecision, now: int) -> None:
    """Scans can be processed before the order itself (topics are consumed independently). Once the
    order is known, tell the customer stage what happened, and announce only the latest news of
    each shipment, never the whole backlog."""
    state = decision.state
    # A cancellation or refund processed before the order: the customer stage still needs to know.
    for fact_type, at, reason in (("cancelled", state.cancelled_at, state.cancel_reason),
                                  ("refunded", state.refunded_at, state.refund_reason)):
        if at is not None:
            _fact(decision, Trigger(f"{state.order_id}:{fact_type}:{at}", at), fact_type, detail=reason)
    for shipment in state.shipments.values():
        news = CATCH_UP_NEWS.get(shipment.status) if shipment.status else None
        if news is not None and shipment.last_scan_event_id is not None:
            trigger = Trigger(shipment.last_scan_event_id, shipment.last_scan_at)
            reasons = [f"scan:{shipment.status}", "catch_up"]
        elif shipment.fulfilled_event_id is not None and shipment.status not in SUPERSEDES_SHIPPED:
            news, trigger, reasons = "shipped", Trigger(shipment.fulfilled_event_id, shipment.fulfilled_at), ["order_fulfilled", "catch_up"]
        else:
            news = None
        problem = next((p for p in reversed(state.problems) if p.startswith(f"{shipment.shipment_id}:")), None)
        if problem is not None and shipment.last_scan_event_id is not None:
            _fact(decision, Trigger(shipment.last_scan_event_id, shipment.last_scan_at), "delivery_problem",
                  detail=problem.split(":", 1)[1])
        if shipment.status == "delivered":
            late = _delivered_late(state, shipment.delivered_at)
            _fact(decision, trigger, "delivered", detail="late" if late else "on_time")
            if late:
                reasons.append("delivered_late")
        if news is not None:
            _propose(decision, trigger, news, shipment, reasons, now, attempt=shipment.failed_attempts)


def _delivered_late(state: OrderState, delivered_at: int | None) -> bool:
    return state.promised_delivery_at is not None and delivered_at is not None and delivered_at > state.promised_delivery_at


SUPERSEDES_SHIPPED = frozenset({"out_for_delivery", "available_for_pickup", "delivered", "returned_to_sender", "expired"})

# The one message worth sending for a shipment whose scans came before its order.
CATCH_UP_NEWS = {
    "in_transit": "shipped", "exception": "shipped", "attempt_failed": "shipped", "available_for_pickup": "shipped",
    "out_for_delivery": "out_for_delivery", "delivered": "delivered",
}


def _record_placement(state: OrderState, event: OrderEvent) -> None:
    state.placed_at = min(state.placed_at or event.event_time, event.event_time)
    state.promised_delivery_at = event.promised_delivery_at
    state.total = event.total
    state.items = [
        {"sku": li.sku, "title": li.title, "category": li.category, "quantity": li.quantity}
        for li in event.line_items
    ]
    if event.shipping is not None:
        state.time_zone = event.shipping.time_zone
        state.region = f"{event.shipping.country}-{event.shipping.region}" if event.shipping.region else event.shipping.country
    if event.contact is not None:
        state.contact = _contact_dict(event.contact)
        state.locale = event.contact.locale


def _contact_dict(contact: ContactChannels) -> dict:
    return {
        "email": contact.email, "sms": contact.sms, "push": contact.push,
        "marketing_email": contact.marketing_email, "marketing_sms": contact.marketing_sms,
        "locale": contact.locale,
    }


# --- carrier scans ---------------------------------------------------------------------------

def _on_scan(decision: OrderDecision, scan: CarrierScan, now: int) -> None:
    state = decision.state
    if state.customer_id is None and scan.customer_id:
        state.customer_id = scan.customer_id
    shipment = state.shipments.get(scan.shipment_id)
    if shipment is None:
        shipment = state.shipments[scan.shipment_id] = Shipment(
            shipment_id=scan.shipment_id, carrier=scan.carrier, service_level=scan.service_level,
            tracking_number=scan.tracking_number,
        )
    attempt = shipment.failed_attempts
    outcome = apply_scan(shipment, scan)
    touchpoint = SCAN_TOUCHPOINT.get(scan.status)
    if not outcome.applied:
        # Old news that arrives late is recorded as dropped, so ops can see why nothing went out.
        if touchpoint and touchpoint != "shipped":
            _audit(decision, scan, touchpoint, "dropped", [f"stale:{outcome.stale_reason}"], now,
                   occasion(touchpoint, shipment.shipment_id, attempt))
        return
    if scan.status in PROBLEMS:
        state.problems.append(f"{shipment.shipment_id}:{scan.status}:{scan.sub_status or ''}")
        _fact(decision, scan, "delivery_problem", detail=f"{scan.status}:{scan.sub_status or ''}")
    if touchpoint == "shipped":
        # A first transit scan announces the shipment when the shop never sent "fulfilled".
        _propose(decision, scan, "shipped", shipment, [f"scan:{scan.status}"], now)
    elif touchpoint == "out_for_delivery":
        _propose(decision, scan, "out_for_delivery", shipment, [f"scan:{scan.status}"], now, attempt=attempt)
    elif touchpoint == "delivered":
        reasons = [f"scan:{scan.status}"]
        late = _delivered_late(state, scan.event_time)
        if late:
            reasons.append("delivered_late")
        _fact(decision, scan, "delivered", detail="late" if late else "on_time")
        _propose(decision, scan, "delivered", shipment, reasons, now)


# --- outputs ---------------------------------------------------------------------------------

def _propose(decision: OrderDecision, event, intent_type: str, shipment: Shipment | None,
             reasons: list[str], now: int, attempt: int = 0) -> None:
    """Propose one message for an occasion, unless it was already decided, is moot or is stale."""
    state = decision.state
    touchpoint = TOUCHPOINTS[intent_type]
    occ = occasion(intent_type, shipment.shipment_id if shipment else None, attempt)
    if occ in state.notified:
        return
    if intent_type != "order_confirmation" and state.status == "cancelled":
        _audit(decision, event, intent_type, "skipped", ["order_cancelled"], now, occ)
        state.notified.append(occ)
        return
    if state.placed_at is None:
        # A scan or fulfilment before the order itself: wait, the order brings customer and contacts.
        return
    state.notified.append(occ)
    if now - event.event_time > touchpoint.ttl_ms:
        _audit(decision, event, intent_type, "dropped", ["stale:event_too_old"], now, occ)
        return
    channel = preferred_channel(touchpoint, state.contact)
    intent = MessageIntent(
        intent_id=ids.intent_id(state.customer_id, state.order_id, intent_type, occ, channel),
        decided_at=now,
        order_id=state.order_id,
        customer_id=state.customer_id,
        intent_type=intent_type,
        kind="transactional",
        channel=channel,
        send_at=max(now, event.event_time),
        expires_at=event.event_time + touchpoint.ttl_ms,
        priority=touchpoint.priority,
        content=_content(state, shipment),
        reason_codes=reasons,
        source_event_id=event.event_id,
        locale=state.locale,
        time_zone=state.time_zone,
    )
    decision.commands.append(CustomerCommand(
        command_id=ids.stable_id("candidate", intent.intent_id),
        event_time=event.event_time,
        customer_id=state.customer_id,
        order_id=state.order_id,
        kind="candidate_intent",
        intent=intent,
    ))


def _content(state: OrderState, shipment: Shipment | None) -> ContentHints:
    items = state.items
    if shipment is not None and shipment.skus:
        wanted = set(shipment.skus)
        items = [i for i in items if i["sku"] in wanted]
    hints = [ItemHint(i["sku"], i["title"], i["category"], i["quantity"]) for i in items]
    main = max(items, key=lambda i: i["quantity"], default=None)
    return ContentHints(
        items=hints,
        category=main["category"] if main else None,
        carrier=shipment.carrier if shipment else None,
        tracking_number=shipment.tracking_number if shipment else None,
        window_start=None,
        window_end=shipment.carrier_eta if shipment else state.promised_delivery_at,
    )


def _fact(decision: OrderDecision, event, fact_type: str, detail: str | None = None) -> None:
    state = decision.state
    if state.placed_at is None:
        return  # before the order is known: _catch_up reports it once the order arrives
    contact = None
    if fact_type == "placed" and state.contact is not None:
        contact = ContactChannels(**state.contact)
    decision.commands.append(CustomerCommand(
        command_id=ids.stable_id("fact", event.event_id, fact_type),
        event_time=event.event_time,
        customer_id=state.customer_id,
        order_id=state.order_id,
        kind="order_fact",
        fact=OrderFact(
            type=fact_type,
            total=state.total if fact_type == "placed" else None,
            categories=sorted({i["category"] for i in state.items}) if fact_type == "placed" else [],
            time_zone=state.time_zone,
            contact=contact,
            detail=detail,
        ),
    ))


def _audit(decision: OrderDecision, event, intent_type: str, verdict: str, reasons: list[str],
           now: int, occ: str) -> None:
    state = decision.state
    decision.audit.append(DecisionAudit(
        audit_id=ids.audit_id(event.event_id, intent_type, verdict, occ),
        decided_at=now,
        customer_id=state.customer_id or "unknown",
        intent_type=intent_type,
        decision=verdict,
        reasons=reasons,
        source_event_id=event.event_id,
        order_id=state.order_id,
    ))
